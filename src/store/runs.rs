//! SQL for `/api/v1/runs/stats` (API.md §12): calls read as LangSmith runs, selected by the
//! request's fields and its filter language, streamed one run at a time with the run's usage
//! rows and feedback types. Every client value is bound; the run's derived fields (type,
//! status, tags) are the SQL functions of migration 0008.
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use sqlx::{PgPool, Postgres, QueryBuilder};

use crate::domain::call::trace_name;
use crate::domain::run_filter::{Attr, Cmp, RunFilter, Value};
use crate::domain::usage::{Counters, UsageRow};
use crate::stats::runs::Run;

/// Which runs to read: every condition ANDs.
#[derive(Debug, Clone, Default)]
pub struct RunQuery {
    pub projects: Vec<String>,
    pub ids: Option<Vec<String>>,
    pub trace: Option<String>,
    pub parent_run: Option<String>,
    pub run_type: Option<String>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub error: Option<bool>,
    pub is_root: Option<bool>,
    pub filter: Option<RunFilter>,
    /// The run's trace root must match.
    pub trace_filter: Option<RunFilter>,
    /// Some run of the run's trace must match.
    pub tree_filter: Option<RunFilter>,
    /// Case-insensitive substrings of name, inputs or output (`query`, `search_filter`).
    pub search: Vec<String>,
    pub group_by: Option<GroupBy>,
    /// Read each run's feedback types (only when `feedback_stats` is asked for).
    pub with_feedback: bool,
}

/// What a run's groups are.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupBy {
    Name,
    RunType,
    Tag,
    /// A JSON path under `attributes`; scalar values only (strings as they are, numbers and
    /// booleans as JSON text).
    Metadata(Vec<String>),
}

/// One run as read, with its project and group values.
#[derive(Debug)]
pub struct RunRow {
    pub project_id: String,
    pub groups: Vec<String>,
    pub run: Run,
}

/// One run with its usage rows as parallel arrays (empty without usage).
#[derive(sqlx::FromRow)]
struct Row {
    project_id: String,
    started_at: DateTime<Utc>,
    latency_ms: Option<f64>,
    error: bool,
    is_root: bool,
    running: bool,
    display_name: Option<String>,
    op_name: Option<String>,
    run_type: String,
    models: Vec<String>,
    requests: Vec<i64>,
    input: Vec<i64>,
    output: Vec<i64>,
    total: Vec<i64>,
    cache_read: Vec<i64>,
    cache_creation: Vec<i64>,
    feedback: Vec<String>,
    groups: Vec<String>,
}

impl Row {
    fn into_run_row(self, group_by: Option<&GroupBy>) -> RunRow {
        let usage = (0..self.models.len())
            .map(|i| UsageRow {
                model: self.models[i].clone(),
                counters: Counters {
                    requests: self.requests[i],
                    input_tokens: self.input[i],
                    output_tokens: self.output[i],
                    total_tokens: self.total[i],
                    cache_read_input_tokens: self.cache_read[i],
                    cache_creation_input_tokens: self.cache_creation[i],
                },
            })
            .collect();
        // The name in Rust (the SQL function's regex costs microseconds a row).
        let name = trace_name(self.display_name.as_deref(), self.op_name.as_deref().unwrap_or_default()).to_string();
        let status = if self.error {
            "error"
        } else if self.running {
            "pending"
        } else {
            "success"
        };
        let groups = match group_by {
            Some(GroupBy::Name) => vec![name.clone()],
            Some(GroupBy::RunType) => vec![self.run_type.clone()],
            _ => self.groups,
        };
        RunRow {
            project_id: self.project_id,
            groups,
            run: Run {
                started_at: self.started_at,
                latency_ms: self.latency_ms,
                error: self.error,
                is_root: self.is_root,
                name,
                run_type: self.run_type,
                status: status.to_string(),
                usage,
                feedback: self.feedback,
            },
        }
    }
}

/// A run's columns (everything [`Row`] reads but its feedback and groups), over calls `c` and
/// their usage aggregated as [`USAGE_ARRAYS`] in `u`.
const RUN_COLUMNS: &str = concat!(
    "c.project_id, ",
    call_facts!(),
    ", c.ended_at is null as running, c.display_name,
    weave_run_type(c.attributes, u.models is not null) as run_type,
    coalesce(u.models, '{}') as models, coalesce(u.requests, '{}') as requests,
    coalesce(u.input, '{}') as input, coalesce(u.output, '{}') as output,
    coalesce(u.total, '{}') as total, coalesce(u.cache_read, '{}') as cache_read,
    coalesce(u.cache_creation, '{}') as cache_creation"
);

/// A run's usage rows as parallel arrays.
const USAGE_ARRAYS: &str = "array_agg(u.model) as models, array_agg(u.requests) as requests,
    array_agg(u.input_tokens) as input, array_agg(u.output_tokens) as output,
    array_agg(u.total_tokens) as total, array_agg(u.cache_read_input_tokens) as cache_read,
    array_agg(u.cache_creation_input_tokens) as cache_creation";

/// Feed every visible call of a project starting in one of `slots` to `each`, as a run with
/// its op name, as rows arrive (for the rollups: a rebuild of many busy quarter hours would
/// otherwise hold all their runs at once). `with` is a WITH clause (or nothing) the statement
/// runs in the same snapshot; it may use `$1` (the project) and `$2` (the slots).
pub(super) async fn runs_of_slots(
    tx: &mut sqlx::PgConnection,
    project: &str,
    slots: &[DateTime<Utc>],
    with: &str,
    mut each: impl FnMut(Option<String>, Run),
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "{with} select {RUN_COLUMNS}, '{{}}'::text[] as feedback, '{{}}'::text[] as groups
         from unnest($2::timestamptz[]) s(slot), lateral (
             -- offset 0 keeps this a per-slot index range scan (the planner would flatten it).
             select * from calls c where c.project_id = $1 and c.deleted_at is null
                 and c.started_at >= s.slot and c.started_at < s.slot + interval '15 minutes' offset 0
         ) c
         left join lateral (select {USAGE_ARRAYS} from call_usage u
             where u.project_id = $1 and u.call_id = c.id) u on true"
    );
    let mut rows = sqlx::query_as::<_, Row>(&sql).bind(project).bind(slots).fetch(&mut *tx);
    while let Some(row) = rows.try_next().await? {
        let op_name = row.op_name.clone();
        each(op_name, row.into_run_row(None).run);
    }
    Ok(())
}

/// Feedback counts by (group value, feedback type) of the runs `query` selects in `ranges`:
/// what the rollup path adds, since run rollups hold no feedback. Without a group, the value
/// is the empty string.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn feedback_counts(
    db: &PgPool,
    query: &RunQuery,
    ranges: &[(DateTime<Utc>, DateTime<Utc>)],
) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
    let mut out = Vec::new();
    for &(from, to) in ranges {
        let ranged = RunQuery {
            start: Some(query.start.map_or(from, |s| s.max(from))),
            end: Some(query.end.map_or(to, |e| e.min(to))),
            ..query.clone()
        };
        let group = match ranged.group_by {
            Some(GroupBy::Name) => "weave_trace_name(c.display_name, c.op_name)",
            Some(GroupBy::RunType) => {
                "weave_run_type(c.attributes, exists (select 1 from call_usage u
                  where u.project_id = c.project_id and u.call_id = c.id))"
            }
            _ => "''",
        };
        // Feedback is far smaller than calls: from each feedback to its call by primary key.
        let mut qb = QueryBuilder::new(format!(
            "select coalesce({group}, '') as value, f.feedback_type, count(*) from feedback f
             join calls c on c.project_id = f.project_id
                 and c.id = substr(f.weave_ref, length('weave:///' || f.project_id || '/call/') + 1)
                 and f.weave_ref = 'weave:///' || c.project_id || '/call/' || c.id"
        ));
        push_conditions(&mut qb, &ranged);
        qb.push(" and f.project_id = any(").push_bind(ranged.projects.clone()).push(") group by 1, 2");
        out.extend(qb.build_query_as::<(String, String, i64)>().fetch_all(db).await?);
    }
    Ok(out)
}

/// Feed every selected run to `each`, as rows arrive, until it returns false.
#[tracing::instrument(level = "debug", skip_all, fields(projects = query.projects.len()))]
pub async fn scan(db: &PgPool, query: &RunQuery, mut each: impl FnMut(RunRow) -> bool) -> Result<(), sqlx::Error> {
    let mut qb = QueryBuilder::new(format_args!("select {RUN_COLUMNS}, ").to_string());
    if query.with_feedback {
        qb.push("coalesce(f.types, '{}') as feedback, ");
    } else {
        qb.push("'{}'::text[] as feedback, ");
    }
    match &query.group_by {
        None | Some(GroupBy::Name | GroupBy::RunType) => qb.push("'{}'::text[] as groups"),
        Some(GroupBy::Tag) => qb.push("weave_run_tags(c.attributes) as groups"),
        Some(GroupBy::Metadata(path)) => qb
            .push("case when jsonb_typeof(c.attributes #> ")
            .push_bind(path.clone())
            .push("::text[]) in ('string', 'number', 'boolean') then array[weave_json_text(c.attributes #> ")
            .push_bind(path.clone())
            .push("::text[])] else '{}'::text[] end as groups"),
    };
    if query.ids.is_some() || query.trace.is_some() || query.parent_run.is_some() {
        // A few runs: their usage through the primary key.
        qb.push(format_args!(
            " from calls c left join lateral (select {USAGE_ARRAYS} from call_usage u
              where u.project_id = c.project_id and u.call_id = c.id) u on true"
        ));
    } else {
        // Many runs: the projects' usage grouped once (in key order, merged with the calls),
        // not a probe and a small aggregate per run.
        qb.push(format_args!(" from calls c left join (select u.project_id, u.call_id, {USAGE_ARRAYS} from call_usage u where u.project_id = any("))
            .push_bind(query.projects.clone())
            .push(") group by u.project_id, u.call_id) u on u.project_id = c.project_id and u.call_id = c.id");
    }
    if query.with_feedback {
        // Feedback is far smaller than calls: one hash join, not a probe per run.
        qb.push(" left join (select project_id, weave_ref, array_agg(feedback_type) as types from feedback where project_id = any(")
            .push_bind(query.projects.clone())
            .push(") group by project_id, weave_ref) f on f.project_id = c.project_id and f.weave_ref = 'weave:///' || c.project_id || '/call/' || c.id");
    }
    push_conditions(&mut qb, query);
    // One long read: compiling it to machine code costs more than it saves.
    let mut tx = db.begin().await?;
    sqlx::query("set local jit = off").execute(&mut *tx).await?;
    {
        let mut rows = qb.build_query_as::<Row>().fetch(&mut *tx);
        while let Some(row) = rows.try_next().await? {
            if !each(row.into_run_row(query.group_by.as_ref())) {
                break;
            }
        }
    }
    tx.rollback().await
}

fn push_conditions(qb: &mut QueryBuilder<'_, Postgres>, query: &RunQuery) {
    qb.push(" where c.project_id = any(").push_bind(query.projects.clone()).push(")");
    qb.push(" and c.started_at is not null and c.deleted_at is null");
    if let Some(ids) = &query.ids {
        qb.push(" and c.id = any(").push_bind(ids.clone()).push(")");
    }
    if let Some(trace) = &query.trace {
        qb.push(" and c.trace_id = ").push_bind(trace.clone());
    }
    if let Some(parent) = &query.parent_run {
        qb.push(" and c.parent_id = ").push_bind(parent.clone());
    }
    if let Some(run_type) = &query.run_type {
        qb.push(" and ");
        push_attr(qb, Attr::RunType, "c");
        qb.push(" = ").push_bind(run_type.clone());
    }
    if let Some(start) = query.start {
        qb.push(" and c.started_at >= ").push_bind(start);
    }
    if let Some(end) = query.end {
        qb.push(" and c.started_at < ").push_bind(end);
    }
    if let Some(error) = query.error {
        qb.push(" and (c.exception is not null) = ").push_bind(error);
    }
    if let Some(is_root) = query.is_root {
        qb.push(" and (c.parent_id is null) = ").push_bind(is_root);
    }
    for text in &query.search {
        qb.push(" and ");
        push_filter(qb, &RunFilter::Search(text.clone()), "c");
    }
    if let Some(filter) = &query.filter {
        qb.push(" and ");
        push_filter(qb, filter, "c");
    }
    if let Some(filter) = &query.trace_filter {
        qb.push(
            " and exists (select 1 from calls t where t.project_id = c.project_id and t.trace_id = c.trace_id
              and t.parent_id is null and t.started_at is not null and t.deleted_at is null and ",
        );
        push_filter(qb, filter, "t");
        qb.push(")");
    }
    if let Some(filter) = &query.tree_filter {
        qb.push(
            " and exists (select 1 from calls t where t.project_id = c.project_id and t.trace_id = c.trace_id
              and t.started_at is not null and t.deleted_at is null and ",
        );
        push_filter(qb, filter, "t");
        qb.push(")");
    }
}

/// A filter as one SQL condition over the calls row `alias`. Comparisons are two-valued (a
/// missing value compares false), so `not` and `neq` match the runs `eq` does not.
fn push_filter(qb: &mut QueryBuilder<'_, Postgres>, filter: &RunFilter, alias: &str) {
    match filter {
        RunFilter::And(items) | RunFilter::Or(items) => {
            let joiner = if matches!(filter, RunFilter::And(_)) { " and " } else { " or " };
            qb.push("(");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    qb.push(joiner);
                }
                push_filter(qb, item, alias);
            }
            qb.push(")");
        }
        RunFilter::Not(inner) => {
            qb.push("(not ");
            push_filter(qb, inner, alias);
            qb.push(")");
        }
        RunFilter::Compare(cmp, attr, value) => {
            let op = match cmp {
                Cmp::Eq | Cmp::Neq => " = ",
                Cmp::Gt => " > ",
                Cmp::Gte => " >= ",
                Cmp::Lt => " < ",
                Cmp::Lte => " <= ",
            };
            qb.push(if *cmp == Cmp::Neq { "(not coalesce(" } else { "coalesce(" });
            push_attr(qb, *attr, alias);
            if matches!(value, Value::Text(_)) && *cmp != Cmp::Eq && *cmp != Cmp::Neq {
                // Byte order, whatever the database's collation.
                qb.push(r#" collate "C""#);
            }
            qb.push(op);
            push_value(qb, value);
            qb.push(if *cmp == Cmp::Neq { ", false))" } else { ", false)" });
        }
        RunFilter::IsNull(attr, negated) => {
            qb.push("(");
            push_attr(qb, *attr, alias);
            qb.push(if *negated { " is not null)" } else { " is null)" });
        }
        RunFilter::In(attr, values) => {
            qb.push("coalesce(");
            push_attr(qb, *attr, alias);
            qb.push(" in (");
            for (i, value) in values.iter().enumerate() {
                if i > 0 {
                    qb.push(", ");
                }
                push_value(qb, value);
            }
            qb.push("), false)");
        }
        RunFilter::HasTag(tag) => {
            qb.push("(").push_bind(tag.clone()).push(format_args!("::text = any(weave_run_tags({alias}.attributes)))"));
        }
        RunFilter::MetadataKey(keys) => {
            qb.push(format_args!("coalesce(jsonb_exists_any({alias}.attributes, "))
                .push_bind(keys.clone())
                .push("::text[]), false)");
        }
        RunFilter::Metadata { key, value } => {
            qb.push(format_args!("coalesce(weave_json_text({alias}.attributes -> "))
                .push_bind(key.clone())
                .push("::text) = ")
                .push_bind(value.clone())
                .push("::text, false)");
        }
        RunFilter::Search(text) => {
            let needle = text.to_lowercase();
            qb.push(format_args!("(strpos(lower(weave_trace_name({alias}.display_name, {alias}.op_name)), "))
                .push_bind(needle.clone())
                .push(format_args!("::text) > 0 or strpos(lower(coalesce({alias}.inputs::text, '')), "))
                .push_bind(needle.clone())
                .push(format_args!("::text) > 0 or strpos(lower(coalesce({alias}.output::text, '')), "))
                .push_bind(needle)
                .push("::text) > 0)");
        }
    }
}

/// The SQL value of a run attribute of the calls row `alias`.
fn push_attr(qb: &mut QueryBuilder<'_, Postgres>, attr: Attr, alias: &str) {
    let usage = |column: &str| {
        format!(
            "(select coalesce(sum(u.{column}), 0) from call_usage u
              where u.project_id = {alias}.project_id and u.call_id = {alias}.id)"
        )
    };
    let sql = match attr {
        Attr::Id => format!("{alias}.id"),
        Attr::TraceId => format!("{alias}.trace_id"),
        Attr::ParentRunId => format!("{alias}.parent_id"),
        Attr::Name => format!("weave_trace_name({alias}.display_name, {alias}.op_name)"),
        Attr::RunType => format!(
            "weave_run_type({alias}.attributes, exists (select 1 from call_usage u
              where u.project_id = {alias}.project_id and u.call_id = {alias}.id))"
        ),
        Attr::Status => format!("weave_run_status({alias}.exception, {alias}.ended_at)"),
        Attr::Error => format!("({alias}.exception is not null)"),
        Attr::IsRoot => format!("({alias}.parent_id is null)"),
        Attr::StartTime => format!("{alias}.started_at"),
        Attr::EndTime => format!("{alias}.ended_at"),
        Attr::Latency => format!("({alias}.latency_ms::numeric / 1000)"),
        Attr::TotalTokens => usage("total_tokens"),
        Attr::PromptTokens => usage("input_tokens"),
        Attr::CompletionTokens => usage("output_tokens"),
        // Compared in Rust once the run's cost is known (`run_filter::take_cost_conditions`);
        // never reaches SQL.
        Attr::TotalCost => "null::numeric".to_string(),
    };
    qb.push(sql);
}

fn push_value(qb: &mut QueryBuilder<'_, Postgres>, value: &Value) {
    match value {
        Value::Text(s) => qb.push_bind(s.clone()).push("::text"),
        Value::Number(n) => qb.push_bind(n.clone()).push("::numeric"),
        Value::Bool(b) => qb.push_bind(*b).push("::boolean"),
        Value::Time(t) => qb.push_bind(*t).push("::timestamptz"),
    };
}
