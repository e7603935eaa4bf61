-- Call rollups per UTC hour beside the quarter-hour ones (README "How /calls/stats stays
-- fast", stats::slots::Span). A request whose bucket boundaries all fall on hours (UTC, or a
-- zone on whole hours, at hourly or longer buckets) reads its whole hours from these rows and
-- their latency pages: a quarter of the rows, histograms and page reads. `minutes` is 15 for a
-- quarter hour's row, 60 for an hour's; an hour's rows are rebuilt with its four quarters.
--
-- Emptied and marked dirty for the server to rebuild, as in 0011.
truncate call_slots, call_op_slots, call_latency_pages;

alter table call_slots add column minutes smallint not null;
alter table call_slots drop constraint call_slots_pkey;
alter table call_slots add primary key (project_id, minutes, slot);

alter table call_op_slots add column minutes smallint not null;
drop index call_op_slots_slot;
drop index call_op_slots_op;
create index call_op_slots_slot on call_op_slots (project_id, minutes, slot);
create index call_op_slots_op on call_op_slots (project_id, minutes, op_name, slot);

alter table call_latency_pages add column minutes smallint not null;
alter table call_latency_pages drop constraint call_latency_pages_pkey;
alter table call_latency_pages add primary key (project_id, minutes, slot, part, page);

insert into rollup_dirty (project_id, slot)
select distinct project_id, weave_slot(started_at) from calls where started_at is not null
on conflict do nothing;
