-- 15-minute rollups for /api/v1/runs/stats (README "LangSmith run statistics"): per UTC
-- quarter hour and per (name, run type, root-ness, status), the runs' count, last start,
-- every finished run's latency and every run's usage, so percentiles stay exact. Built by the
-- server (store::run_slots) from the same dirty marks as the 0006 rollups, in the same
-- transaction; costs are priced when read, so a new price needs no rebuild.
create table run_slots (
    project_id text        not null,
    slot       timestamptz not null,
    -- Every (name, run type, root-ness, status) group of the slot with its runs' count, last
    -- start, latencies and usage, packed by store::run_slots (one row a slot: a month is
    -- ~3,000 rows to read, not ~100,000).
    groups     bytea       not null,
    primary key (project_id, slot)
);
alter table run_slots alter column groups set storage external;

-- A run's name and type come from its display name and attributes: changes to either mark
-- the slot too.
create or replace function weave_mark_updated_calls() returns trigger language plpgsql as $$
begin
    insert into rollup_dirty (project_id, slot)
    select distinct s.project_id, weave_slot(s.started_at)
    from old_calls o join new_calls n on n.project_id = o.project_id and n.id = o.id,
         lateral (values (o.project_id, o.started_at), (n.project_id, n.started_at)) as s(project_id, started_at)
    where s.started_at is not null
      and (o.started_at, o.ended_at, o.exception, o.deleted_at, o.op_name, o.parent_id, o.summary,
           o.display_name, o.attributes)
          is distinct from (n.started_at, n.ended_at, n.exception, n.deleted_at, n.op_name, n.parent_id, n.summary,
                            n.display_name, n.attributes)
    on conflict do nothing;
    return null;
end $$;

-- Everything already stored is dirty once, so the new rollups get built.
insert into rollup_dirty (project_id, slot)
select distinct project_id, weave_slot(started_at) from calls where started_at is not null
on conflict do nothing;
