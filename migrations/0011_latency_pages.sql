-- Exact latency percentiles that read only the latencies near each percentile (README "How
-- /calls/stats stays fast", store::slots, stats::binned). A call rollup row with more than a
-- few latencies keeps their summary and a histogram (count per ~2%-wide bin) in `latencies`;
-- the latencies themselves, sorted, go to call_latency_pages, a small row per 240 of them, so
-- a request reads only the pages that hold each percentile's bin. `part` numbers a slot's
-- rollup rows: 0 for call_slots' row, 1.. for its call_op_slots rows.
--
-- The rollups are rebuilt by the server (in Rust, from the same read as the usage and run
-- rollups): empty the old rows and mark every slot dirty.
truncate call_slots, call_op_slots;
alter table call_op_slots add column part integer not null;
-- Small now (a summary, or a few latencies): kept in the row.
alter table call_slots alter column latencies set storage extended;
alter table call_op_slots alter column latencies set storage extended;

create table call_latency_pages (
    project_id text        not null,
    slot       timestamptz not null,
    part       integer     not null,
    page       integer     not null,
    -- Up to 240 latencies, ascending (f64::total_cmp), 8 big-endian bytes each; page 0 holds the
    -- largest (stats::binned::page_ranks).
    latencies  bytea       not null,
    primary key (project_id, slot, part, page)
);
-- Under 2 KB: never compressed or moved out of the row, so a page is one index probe.
alter table call_latency_pages alter column latencies set storage plain;

insert into rollup_dirty (project_id, slot)
select distinct project_id, weave_slot(started_at) from calls where started_at is not null
on conflict do nothing;
