-- The schema of weave-trace-server.
--
-- A call arrives in two halves (start and end) that may come in any order, so one row holds
-- both and a row whose start has not arrived (started_at is null) is invisible to queries.
-- Everything the statistics need is extracted at write time: latency as a generated column,
-- usage as one typed row per (call, model) in call_usage, refs as text arrays. No query of
-- /calls/stats or the usage endpoints has to read JSON.

create table api_keys (
    id           text primary key,
    -- first 16 hex digits of the key's sha256: narrows the lookup, the full hash is then
    -- compared in constant time by the server.
    lookup       text        not null,
    secret_hash  bytea       not null,
    user_id      text        not null,
    entities     text[]      not null default '{}',
    is_admin     boolean     not null default false,
    created_at   timestamptz not null default now(),
    revoked_at   timestamptz
);
create index api_keys_lookup on api_keys (lookup) where revoked_at is null;

create table calls (
    project_id       text not null,
    id               text not null,
    trace_id         text,
    parent_id        text,
    thread_id        text,
    turn_id          text,
    op_name          text,
    display_name     text,
    started_at       timestamptz,
    ended_at         timestamptz,
    exception        text,
    attributes       jsonb,
    inputs           jsonb,
    output           jsonb,
    summary          jsonb,
    otel_dump        jsonb,
    wb_user_id       text,
    wb_run_id        text,
    wb_run_step      bigint,
    wb_run_step_end  bigint,
    deleted_at       timestamptz,
    -- refs (strings starting with weave:///) found anywhere in inputs / output.
    input_refs       text[] not null default '{}',
    output_refs      text[] not null default '{}',
    -- milliseconds with microsecond precision; null while running.
    latency_ms       double precision generated always as
                     ((extract(epoch from (ended_at - started_at)) * 1000)::double precision) stored,
    primary key (project_id, id)
);

create index calls_project_started on calls (project_id, started_at) include (ended_at, exception, latency_ms)
    where deleted_at is null;
create index calls_project_trace on calls (project_id, trace_id);
create index calls_project_parent on calls (project_id, parent_id);
create index calls_project_op on calls (project_id, op_name, started_at);
create index calls_project_thread on calls (project_id, thread_id) where thread_id is not null;
create index calls_project_turn on calls (project_id, turn_id) where turn_id is not null;
create index calls_project_user on calls (project_id, wb_user_id);
create index calls_project_run on calls (project_id, wb_run_id) where wb_run_id is not null;
create index calls_input_refs on calls using gin (input_refs);
create index calls_output_refs on calls using gin (output_refs);

-- One normalised usage row per (call, model), API.md §3; replaced whenever the call's end is written.
create table call_usage (
    project_id                  text   not null,
    call_id                     text   not null,
    model                       text   not null,
    requests                    bigint not null,
    input_tokens                bigint not null,
    output_tokens               bigint not null,
    total_tokens                bigint not null,
    cache_read_input_tokens     bigint not null,
    cache_creation_input_tokens bigint not null,
    primary key (project_id, call_id, model)
);
