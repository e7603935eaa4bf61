-- Calls read as LangSmith runs (README "LangSmith run statistics"): the three derived fields
-- /api/v1/runs/stats groups and filters by. Written once here, so the filter language and the
-- statistics read them the same way.

-- The run type: the op's kind (attributes.weave.kind) mapped to LangSmith's names; without a
-- kind, `llm` when the call has usage (it called a model), else `chain`.
create function weave_run_type(attributes jsonb, has_usage boolean) returns text
language sql immutable parallel safe as $$
    select case coalesce(jsonb_typeof(attributes #> '{weave,kind}'), 'null')
        when 'null' then case when has_usage then 'llm' else 'chain' end
        when 'string' then case attributes #>> '{weave,kind}'
            when 'llm' then 'llm' when 'tool' then 'tool' when 'search' then 'retriever' else 'chain' end
        else 'chain'
    end
$$;

-- LangSmith's status: error, pending (still running) or success.
create function weave_run_status(exception text, ended_at timestamptz) returns text
language sql immutable parallel safe as $$
    select case when exception is not null then 'error' when ended_at is null then 'pending' else 'success' end
$$;

-- The run's tags: attributes.tags when it is a list of strings (each once), else none.
create function weave_run_tags(attributes jsonb) returns text[]
language sql immutable parallel safe as $$
    select case
        when jsonb_typeof(attributes -> 'tags') = 'array'
             and not exists (select 1 from jsonb_array_elements(attributes -> 'tags') e where jsonb_typeof(e) <> 'string')
        then array(select distinct t from jsonb_array_elements_text(attributes -> 'tags') t)
        else '{}'::text[]
    end
$$;
