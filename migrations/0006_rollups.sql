-- 15-minute rollups for /calls/stats (README "How /calls/stats stays fast").
--
-- Every wall-clock bucket boundary of every timezone in use today falls on a quarter hour of
-- UTC, so a bucket of 15 minutes or more is a union of whole UTC quarter hours ("slots"). A
-- slot's rollup keeps what the exact answers need: counts, and every latency itself (so
-- percentiles stay exact), per op and root-ness; token sums per model. The server merges
-- slots into buckets and reads raw calls only at unaligned edges or for other filters.
--
-- Freshness: triggers on calls record the slots a transaction touches in
-- rollup_dirty, in that same transaction. A reader first rebuilds the dirty slots of its
-- window (store::rollups::refresh). Marks carry the writer's transaction id, so writers never
-- wait on one another, and a refresh deletes only marks it can see: a write still in flight
-- keeps its mark and is picked up by the next refresh. Usage rows change only with their
-- call's end (and so its summary), so the calls triggers cover them too.

create function weave_slot(t timestamptz) returns timestamptz
    language sql immutable strict parallel safe
    return date_bin('15 minutes', t, timestamptz '2000-01-01 00:00:00+00');

create table rollup_dirty (
    project_id text        not null,
    slot       timestamptz not null,
    txid       bigint      not null default txid_current(),
    primary key (project_id, slot, txid)
);

-- Each slot is rolled up twice: whole (read by unfiltered requests, so those rows lie
-- together) and per (op, root-ness) (read by op and root filters).
create table call_slots (
    project_id text        not null,
    slot       timestamptz not null,
    calls      bigint      not null,
    errors     bigint      not null,
    -- float8send(latency_ms) of each finished call, concatenated (8 bytes each, big-endian).
    latencies  bytea       not null,
    primary key (project_id, slot)
);
create table call_op_slots (
    project_id text        not null,
    slot       timestamptz not null,
    op_name    text,
    is_root    boolean     not null,
    calls      bigint      not null,
    errors     bigint      not null,
    latencies  bytea       not null
);
create index call_op_slots_slot on call_op_slots (project_id, slot);
create index call_op_slots_op on call_op_slots (project_id, op_name, slot);
-- Read whole, never searched: skip compression.
alter table call_slots alter column latencies set storage external;
alter table call_op_slots alter column latencies set storage external;

-- Token sums per model. A sum beyond bigint is stored null: requests over it read raw rows.
create table usage_slots (
    project_id                  text        not null,
    slot                        timestamptz not null,
    model                       text        not null,
    usage_rows                  bigint      not null,
    input_tokens                bigint,
    output_tokens               bigint,
    total_tokens                bigint,
    cache_read_input_tokens     bigint,
    cache_creation_input_tokens bigint,
    -- input tokens minus cached ones, floored at 0 per row: what the prompt rate applies to.
    uncached_input_tokens       bigint,
    primary key (project_id, slot, model)
);
create table usage_op_slots (
    project_id                  text        not null,
    slot                        timestamptz not null,
    op_name                     text,
    is_root                     boolean     not null,
    model                       text        not null,
    usage_rows                  bigint      not null,
    input_tokens                bigint,
    output_tokens               bigint,
    total_tokens                bigint,
    cache_read_input_tokens     bigint,
    cache_creation_input_tokens bigint,
    uncached_input_tokens       bigint
);
create index usage_op_slots_slot on usage_op_slots (project_id, slot);
create index usage_op_slots_op on usage_op_slots (project_id, op_name, slot);

-- A numeric sum as bigint, or null when it does not fit.
create function weave_bigint_or_null(n numeric) returns bigint
    language sql immutable strict parallel safe
    return case when n between -9223372036854775808 and 9223372036854775807 then n::bigint end;

create function weave_mark_inserted_calls() returns trigger language plpgsql as $$
begin
    insert into rollup_dirty (project_id, slot)
    select distinct project_id, weave_slot(started_at) from new_calls where started_at is not null
    on conflict do nothing;
    return null;
end $$;

create function weave_mark_updated_calls() returns trigger language plpgsql as $$
begin
    insert into rollup_dirty (project_id, slot)
    select distinct s.project_id, weave_slot(s.started_at)
    from old_calls o join new_calls n on n.project_id = o.project_id and n.id = o.id,
         lateral (values (o.project_id, o.started_at), (n.project_id, n.started_at)) as s(project_id, started_at)
    where s.started_at is not null
      and (o.started_at, o.ended_at, o.exception, o.deleted_at, o.op_name, o.parent_id, o.summary)
          is distinct from (n.started_at, n.ended_at, n.exception, n.deleted_at, n.op_name, n.parent_id, n.summary)
    on conflict do nothing;
    return null;
end $$;

create function weave_mark_deleted_calls() returns trigger language plpgsql as $$
begin
    insert into rollup_dirty (project_id, slot)
    select distinct project_id, weave_slot(started_at) from old_calls where started_at is not null
    on conflict do nothing;
    return null;
end $$;

create trigger calls_mark_inserted after insert on calls
    referencing new table as new_calls for each statement execute function weave_mark_inserted_calls();
create trigger calls_mark_updated after update on calls
    referencing old table as old_calls new table as new_calls for each statement execute function weave_mark_updated_calls();
create trigger calls_mark_deleted after delete on calls
    referencing old table as old_calls for each statement execute function weave_mark_deleted_calls();

-- Everything already stored is dirty once.
insert into rollup_dirty (project_id, slot)
select distinct project_id, weave_slot(started_at) from calls where started_at is not null
on conflict do nothing;

-- Input tokens the prompt rate applies to, as domain::costs::TokenSums::add_row counts them
-- (each subtraction saturating at the bigint range, the result floored at 0).
create function weave_uncached_input(input bigint, cache_read bigint, cache_creation bigint) returns numeric
    language sql immutable strict parallel safe
    return greatest(least(greatest(least(input::numeric - cache_read, 9223372036854775807), -9223372036854775808)
                          - cache_creation, 9223372036854775807), 0);
