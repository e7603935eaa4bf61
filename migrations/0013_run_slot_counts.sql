-- How many runs each run_slots row holds, readable without decoding `groups`: run statistics
-- sum it over the window first and refuse a request over STATS_MAX_VALUES runs before reading
-- any latencies (docs/api.md, LangSmith run statistics). Rows written before this migration have
-- no count (null): the server then counts them from their groups, still without keeping
-- their values. Written by store::run_slots with `groups`.
alter table run_slots add column runs bigint;
