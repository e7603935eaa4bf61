-- Writes of new calls add their own rollup rows (README "How /calls/stats stays fast",
-- store::slots::append). A transaction that only inserts calls into a quarter hour appends a
-- row of their counts and latencies (and token sums) to that slot's rollups and marks its
-- dirty mark `covered`: /calls/stats may then keep reading the slot's rollups, which add up
-- its rows, instead of reading the slot's calls raw until the next rebuild. A mark that is not
-- covered (an update, a delete, a late end) still sends its slot to the raw path. The
-- refresher rebuilds covered slots as before, folding the appended rows into one.
--
-- A slot can now hold several rows per key: the unique keys become plain indexes.
alter table rollup_dirty add column covered boolean not null default false;

alter table call_slots drop constraint call_slots_pkey;
create index call_slots_slot on call_slots (project_id, minutes, slot);

alter table usage_slots drop constraint usage_slots_pkey;
create index usage_slots_slot on usage_slots (project_id, slot, model);
