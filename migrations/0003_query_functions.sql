-- How query expressions (API.md §7.2) read JSON values, in one place, mirrored by the Rust
-- evaluator in domain::query. None of these raise an error on any input: a value that cannot be
-- read as the asked type reads as null, which matches nothing.

-- A JSON value as a number: numbers as they are, strings that spell a number parsed.
create function weave_json_number(value jsonb) returns numeric
language sql immutable parallel safe as $$
    select case jsonb_typeof(value)
        when 'number' then value::text::numeric
        when 'string' then case
            when value #>> '{}' ~ '^\s*[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]{1,3})?\s*$'
            then (value #>> '{}')::numeric
        end
    end
$$;

-- A JSON value as a boolean: only JSON booleans.
create function weave_json_bool(value jsonb) returns boolean
language sql immutable parallel safe as $$
    select case jsonb_typeof(value) when 'boolean' then value::text::boolean end
$$;

-- A JSON value as text: strings as they are, numbers normalised (5.0 -> 5), booleans
-- true/false, objects and arrays as their JSON text; JSON null reads as null.
create function weave_json_text(value jsonb) returns text
language sql immutable parallel safe as $$
    select case jsonb_typeof(value)
        when 'string' then value #>> '{}'
        when 'number' then trim_scale(value::text::numeric)::text
        when 'null' then null
        else value::text
    end
$$;

-- Text as a number, when it spells one.
create function weave_text_number(value text) returns numeric
language sql immutable parallel safe as $$
    select case when value ~ '^\s*[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]{1,3})?\s*$' then value::numeric end
$$;
