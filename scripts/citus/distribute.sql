-- Optional: spread a weave-trace-server database over a Citus cluster (README "Scaling out").
-- Run once on the coordinator, after the server has applied its migrations there
-- (`weave-trace-server migrate`) and before the first write:
--
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f scripts/citus/distribute.sql
--
-- Every per-project table is distributed by project_id and co-located with calls, so each
-- statement the server sends (all filter by one project) runs on one shard. Keys and prices are
-- small and read everywhere: reference tables. Not tested here (Citus is not installable on
-- the machine this was written on); the SQL is plain Postgres the server also runs unchanged.
create extension if not exists citus;

-- The dirty-mark triggers on calls run on each shard (migration 0010 keeps them to what Citus
-- supports); Citus wants this said out loud.
set citus.enable_unsafe_triggers = on;
do $$ begin execute format('alter database %I set citus.enable_unsafe_triggers = on', current_database()); end $$;

select create_reference_table('api_keys');
select create_reference_table('llm_token_prices');

select create_distributed_table('calls', 'project_id');
select create_distributed_table('call_usage', 'project_id', colocate_with => 'calls');
select create_distributed_table('rollup_dirty', 'project_id', colocate_with => 'calls');
select create_distributed_table('call_slots', 'project_id', colocate_with => 'calls');
select create_distributed_table('call_op_slots', 'project_id', colocate_with => 'calls');
select create_distributed_table('call_latency_pages', 'project_id', colocate_with => 'calls');
select create_distributed_table('usage_slots', 'project_id', colocate_with => 'calls');
select create_distributed_table('usage_op_slots', 'project_id', colocate_with => 'calls');
select create_distributed_table('run_slots', 'project_id', colocate_with => 'calls');
select create_distributed_table('projects', 'project_id', colocate_with => 'calls');
select create_distributed_table('objects', 'project_id', colocate_with => 'calls');
select create_distributed_table('table_rows', 'project_id', colocate_with => 'calls');
select create_distributed_table('tables', 'project_id', colocate_with => 'calls');
select create_distributed_table('table_entries', 'project_id', colocate_with => 'calls');
select create_distributed_table('files', 'project_id', colocate_with => 'calls');
select create_distributed_table('feedback', 'project_id', colocate_with => 'calls');
