-- The dirty-mark triggers of 0006, rewritten:
-- * as SQL that Citus (distributed Postgres, tables distributed by project_id) runs as well as
--   plain Postgres (README "Scaling out"): they read their transition tables in a loop of
--   single-row inserts, since Citus cannot ship a transition table to a shard inside
--   `insert ... select`. Batches touch few quarter hours, so the loop is short.
-- * for the run rollups of 0009: a run's name and type come from its display name and
--   attributes, so changes to either mark the slot too.
create or replace function weave_mark_inserted_calls() returns trigger language plpgsql as $$
declare
    mark record;
begin
    for mark in select distinct project_id, weave_slot(started_at) as slot from new_calls where started_at is not null loop
        insert into rollup_dirty (project_id, slot) values (mark.project_id, mark.slot) on conflict do nothing;
    end loop;
    return null;
end $$;

create or replace function weave_mark_updated_calls() returns trigger language plpgsql as $$
declare
    mark record;
begin
    for mark in
        select distinct s.project_id, weave_slot(s.started_at) as slot
        from old_calls o join new_calls n on n.project_id = o.project_id and n.id = o.id,
             lateral (values (o.project_id, o.started_at), (n.project_id, n.started_at)) as s(project_id, started_at)
        where s.started_at is not null
          and (o.started_at, o.ended_at, o.exception, o.deleted_at, o.op_name, o.parent_id, o.summary,
               o.display_name, o.attributes)
              is distinct from (n.started_at, n.ended_at, n.exception, n.deleted_at, n.op_name, n.parent_id, n.summary,
                                n.display_name, n.attributes)
    loop
        insert into rollup_dirty (project_id, slot) values (mark.project_id, mark.slot) on conflict do nothing;
    end loop;
    return null;
end $$;

create or replace function weave_mark_deleted_calls() returns trigger language plpgsql as $$
declare
    mark record;
begin
    for mark in select distinct project_id, weave_slot(started_at) as slot from old_calls where started_at is not null loop
        insert into rollup_dirty (project_id, slot) values (mark.project_id, mark.slot) on conflict do nothing;
    end loop;
    return null;
end $$;
