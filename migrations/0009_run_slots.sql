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

-- Everything already stored is dirty once, so the new rollups get built.
insert into rollup_dirty (project_id, slot)
select distinct project_id, weave_slot(started_at) from calls where started_at is not null
on conflict do nothing;
