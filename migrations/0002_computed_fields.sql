-- The computed fields of API.md §7.3 in SQL, mirroring domain::call and domain::usage, so
-- sorting (and later filtering) by them agrees exactly with what /call/read returns.

-- A counter read as API.md §3 reads it: integers as they are, numbers truncated toward zero,
-- strings of digits parsed, anything else 0.
create function weave_counter(value jsonb) returns numeric
language sql immutable parallel safe as $$
    select case jsonb_typeof(value)
        when 'number' then trunc(value::text::numeric)
        when 'string' then case when value #>> '{}' ~ '^-?[0-9]+$' then (value #>> '{}')::numeric else 0 end
        else 0
    end
$$;

create function weave_status(exception text, summary jsonb, ended_at timestamptz) returns text
language sql immutable parallel safe as $$
    select case
        when exception is not null then 'error'
        when coalesce(weave_counter(summary #> '{status_counts,error}'), 0) > 0 then 'descendant_error'
        when ended_at is null then 'running'
        else 'success'
    end
$$;

create function weave_trace_name(display_name text, op_name text) returns text
language sql immutable parallel safe as $$
    select coalesce(
        nullif(display_name, ''),
        nullif(substring(op_name from '^weave:///[^/]*/[^/]*/op/([^:]*)'), ''),
        op_name
    )
$$;
