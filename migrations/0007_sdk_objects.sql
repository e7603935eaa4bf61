-- What the weave SDK stores besides calls (API.md §11): projects, versioned objects and ops,
-- tables of rows, files, feedback; and renames that may reach the server before their call.

-- Projects, registered by GraphQL upsertModel or by their first write; listed by
-- /api/v1/sessions and the dashboard.
create table projects (
    project_id text        primary key,
    created_at timestamptz not null default now()
);
insert into projects (project_id) select distinct project_id from calls on conflict do nothing;

-- One row per version of an object or op. A version is content-addressed: its digest hashes
-- `val_dump`, the canonical JSON of the value (sorted keys, Python's separators), so the
-- same content is the same version. Versions of an object_id are numbered in the order their
-- digests first arrived; deleted versions keep their number.
create table objects (
    project_id        text        not null,
    object_id         text        not null,
    digest            text        not null,
    kind              text        not null check (kind in ('object', 'op')),
    base_object_class text,
    leaf_object_class text,
    val_dump          text        not null,
    version_index     integer     not null,
    created_at        timestamptz not null default now(),
    wb_user_id        text,
    deleted_at        timestamptz,
    primary key (project_id, object_id, digest)
);
create unique index objects_version on objects (project_id, object_id, version_index);
create index objects_created on objects (project_id, created_at);

-- Table rows, content-addressed and shared by every table of a project that holds them.
create table table_rows (
    project_id text not null,
    digest     text not null,
    val_dump   text not null,
    primary key (project_id, digest)
);

-- A table is its ordered list of row digests; its digest hashes that list. Entries are rows
-- of their own, so a page of a 100k-row table is an index range scan.
create table tables (
    project_id text        not null,
    digest     text        not null,
    row_count  integer     not null,
    created_at timestamptz not null default now(),
    primary key (project_id, digest)
);
create table table_entries (
    project_id   text    not null,
    table_digest text    not null,
    row_index    integer not null,
    row_digest   text    not null,
    primary key (project_id, table_digest, row_index)
);
create index table_entries_row on table_entries (project_id, table_digest, row_digest);

-- Files (an op's source code, images, ...), content-addressed.
create table files (
    project_id text        not null,
    digest     text        not null,
    content    bytea       not null,
    created_at timestamptz not null default now(),
    primary key (project_id, digest)
);
-- Read whole, never searched; often already compressed (images): skip compression.
alter table files alter column content set storage external;

-- Feedback on calls (reactions, notes, scores).
create table feedback (
    project_id     text        not null,
    id             text        not null,
    weave_ref      text        not null,
    feedback_type  text        not null,
    payload        jsonb       not null,
    creator        text,
    created_at     timestamptz not null default now(),
    wb_user_id     text        not null,
    annotation_ref text,
    runnable_ref   text,
    call_ref       text,
    trigger_ref    text,
    queue_id       text,
    -- The request's other fields (scorer_* and span_*), returned as they came.
    extra          jsonb       not null default '{}',
    primary key (project_id, id)
);
create index feedback_ref on feedback (project_id, weave_ref);
create index feedback_created on feedback (project_id, created_at);

-- A rename (`/call/update`) may arrive before the call's start (the SDK sends it from another
-- thread): it is kept on the call's row, and a start that arrives later keeps the rename.
alter table calls add column renamed_at timestamptz;

-- Sorting by a JSON path (calls and table rows), as Weave orders mixed values: numbers
-- (numerically) before strings (byte order), other values after them, and null or missing
-- last, in both directions (the rank always ascends; the keys take the direction).
create function weave_json_sort_rank(value jsonb) returns integer
language sql immutable parallel safe as $$
    select case coalesce(jsonb_typeof(value), 'null') when 'number' then 0 when 'string' then 1 when 'null' then 3 else 2 end
$$;
create function weave_json_sort_number(value jsonb) returns numeric
language sql immutable parallel safe as $$
    select case jsonb_typeof(value) when 'number' then value::text::numeric end
$$;
