//! SQL for calls: batched upserts of starts and ends, reads, soft deletes and counts.
//!
//! Writes are set-based (`insert ... select from unnest(...)`), one statement per kind of row
//! for a whole batch, so ingesting a batch costs a handful of round trips whatever its size.
use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor, PgPool, Postgres, QueryBuilder};
use tokio::sync::mpsc;

use super::filter::Selection;
use super::slots::WrittenCall;
use super::{visible_calls, VISIBLE};
use crate::domain::call::{self, Call};
use crate::domain::ingest::{EndRow, StartRow, Writes};
use crate::domain::usage::{Counters, UsageRow};
use crate::domain::Timestamp;

/// Write a planned batch: whole calls, then lone starts, then lone ends; then the rollup rows
/// of the calls it inserted or ended while they ran (`slots::append`).
#[tracing::instrument(level = "debug", skip_all, fields(calls = writes.calls()))]
pub async fn write(conn: &mut PgConnection, writes: &Writes) -> Result<(), sqlx::Error> {
    let complete = upsert_complete(conn, &writes.complete).await?;
    let starts = upsert_starts(conn, &writes.starts).await?;
    let ends = upsert_ends(conn, &writes.ends).await?;
    // Appended usage comes from complete calls and from lone ends of running calls; any other
    // lone end updates a call (its slot is then not covered) or inserts one without a start
    // (not counted).
    let usage: HashMap<(&str, &str), &[UsageRow]> = writes
        .complete
        .iter()
        .map(|(_, e)| e)
        .chain(&writes.ends)
        .map(|e| ((e.project_id.as_str(), e.id.as_str()), e.usage.as_slice()))
        .collect();
    let written: Vec<(WrittenCall, &[UsageRow])> = complete
        .into_iter()
        .chain(starts)
        .chain(ends)
        .map(|call| {
            let rows = usage.get(&(call.project_id.as_str(), call.id.as_str())).copied().unwrap_or_default();
            (call, rows)
        })
        .collect();
    super::slots::append(conn, &written).await
}

/// Write starts (last write wins for every start column).
async fn upsert_starts(conn: &mut PgConnection, rows: &[StartRow]) -> Result<Vec<WrittenCall>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let starts: Vec<&StartRow> = rows.iter().collect();
    let sql = format!(
        r#"insert into calls as c (project_id, id, trace_id, parent_id, thread_id, turn_id, op_name, display_name,
                              started_at, attributes, inputs, otel_dump, wb_user_id, wb_run_id, wb_run_step, input_refs)
           select s.project_id, s.id, s.trace_id, s.parent_id, s.thread_id, s.turn_id, s.op_name, s.display_name,
                  s.started_at, s.attributes::jsonb, s.inputs::jsonb, s.otel_dump::jsonb, s.wb_user_id, s.wb_run_id,
                  s.wb_run_step, array(select jsonb_array_elements_text(s.input_refs))
           from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                       $9::timestamptz[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[],
                       $15::int8[], $16::jsonb[])
                as s(project_id, id, trace_id, parent_id, thread_id, turn_id, op_name, display_name,
                     started_at, attributes, inputs, otel_dump, wb_user_id, wb_run_id, wb_run_step, input_refs)
           on conflict (project_id, id) do update set
               trace_id = excluded.trace_id, parent_id = excluded.parent_id, thread_id = excluded.thread_id,
               turn_id = excluded.turn_id, op_name = excluded.op_name,
               display_name = case when c.renamed_at is null then excluded.display_name else c.display_name end,
               started_at = excluded.started_at, attributes = excluded.attributes, inputs = excluded.inputs,
               otel_dump = excluded.otel_dump, wb_user_id = excluded.wb_user_id, wb_run_id = excluded.wb_run_id,
               wb_run_step = excluded.wb_run_step, input_refs = excluded.input_refs {}"#,
        WrittenCall::RETURNING
    );
    bind_starts(sqlx::query_as(&sql), &starts).fetch_all(conn).await
}

/// An upsert of calls, returning what it wrote.
type CallsUpsert<'q> = sqlx::query::QueryAs<'q, Postgres, WrittenCall, sqlx::postgres::PgArguments>;

/// Bind the start columns of `rows`: `$1`–`$16` of both upserts that write starts.
fn bind_starts<'q>(query: CallsUpsert<'q>, rows: &[&'q StartRow]) -> CallsUpsert<'q> {
    let text = |f: fn(&'q StartRow) -> Option<&'q str>| rows.iter().map(|r| f(r)).collect::<Vec<_>>();
    query
        .bind(text(|r| Some(r.project_id.as_str())))
        .bind(text(|r| Some(r.id.as_str())))
        .bind(text(|r| Some(r.trace_id.as_str())))
        .bind(text(|r| r.parent_id.as_deref()))
        .bind(text(|r| r.thread_id.as_deref()))
        .bind(text(|r| r.turn_id.as_deref()))
        .bind(text(|r| Some(r.op_name.as_str())))
        .bind(text(|r| r.display_name.as_deref()))
        .bind(rows.iter().map(|r| r.started_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.attributes.get()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.inputs.get()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.otel_dump.as_deref().map(RawValue::get)).collect::<Vec<_>>())
        .bind(text(|r| Some(r.wb_user_id.as_str())))
        .bind(text(|r| r.wb_run_id.as_deref()))
        .bind(rows.iter().map(|r| r.wb_run_step).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| Json(&r.input_refs)).collect::<Vec<_>>())
}

/// Bind the end columns of `rows` (from `ended_at` to `output_refs`), next after what is bound
/// already: `$4`–`$9` of the end upsert, `$17`–`$22` of the whole-call upsert.
fn bind_ends<'q>(query: CallsUpsert<'q>, rows: &[&'q EndRow]) -> CallsUpsert<'q> {
    query
        .bind(rows.iter().map(|r| r.ended_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.exception.as_deref()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.output.as_deref().map(RawValue::get)).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| &r.summary).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.wb_run_step_end).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| Json(&r.output_refs)).collect::<Vec<_>>())
}

/// Write ends and replace their usage rows (last write wins).
async fn upsert_ends(conn: &mut PgConnection, rows: &[EndRow]) -> Result<Vec<WrittenCall>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let running = running(conn, rows).await?;
    let sql = format!(
        r#"insert into calls as c (project_id, id, trace_id, ended_at, exception, output, summary, wb_run_step_end, output_refs)
           select e.project_id, e.id, e.trace_id, e.ended_at, e.exception, e.output::jsonb, e.summary, e.wb_run_step_end,
                  array(select jsonb_array_elements_text(e.output_refs))
           from unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[], $7::jsonb[],
                       $8::int8[], $9::jsonb[])
                as e(project_id, id, trace_id, ended_at, exception, output, summary, wb_run_step_end, output_refs)
           on conflict (project_id, id) do update set
               trace_id = coalesce(c.trace_id, excluded.trace_id), ended_at = excluded.ended_at,
               exception = excluded.exception, output = excluded.output, summary = excluded.summary,
               wb_run_step_end = excluded.wb_run_step_end, output_refs = excluded.output_refs {}"#,
        WrittenCall::RETURNING
    );
    let ends: Vec<&EndRow> = rows.iter().collect();
    let query = sqlx::query_as(&sql)
        .bind(rows.iter().map(|r| r.project_id.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.trace_id.as_deref()).collect::<Vec<_>>());
    let mut written = bind_ends(query, &ends).fetch_all(&mut *conn).await?;
    for call in &mut written {
        call.ended_running = running.contains(&(call.project_id.as_str(), call.id.as_str()));
    }
    replace_usage(conn, &ends, &written).await?;
    Ok(written)
}

/// The running calls (`$1` the project, `$2` the ids), locked. One primary-key probe per id
/// (`offset 0` keeps the lateral read per id): joined instead, the planner expects few running
/// calls (or has no statistics yet) and scans the project's whole start index for them (13 ms
/// against 0.4 for 100 ends at 40k calls, and growing with the project).
pub const LOCK_RUNNING: &str = "select l.id from unnest($2::text[]) as e(id), lateral (
    select c.id from calls c
    where c.project_id = $1 and c.id = e.id
      and c.started_at is not null and c.ended_at is null and c.exception is null and c.deleted_at is null
    offset 0 for update
) l";

/// Which of the calls these ends belong to are running now (started, not ended, not deleted),
/// locked until the transaction ends: their ends can append to the rollups (`slots::append`).
/// The lock is what makes the answer hold for the upsert that follows: a concurrent end of the
/// same call waits, then finds it ended (a snapshot read alone would let both count the end).
/// Skipped for a project with more ends than `slots::append` appends for.
async fn running<'a>(conn: &mut PgConnection, rows: &'a [EndRow]) -> Result<HashSet<(&'a str, &'a str)>, sqlx::Error> {
    let mut projects: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for row in rows {
        projects.entry(row.project_id.as_str()).or_default().push(row.id.as_str());
    }
    let mut running = HashSet::new();
    for (project, ids) in projects.into_iter().filter(|(_, ids)| super::slots::appends_for(ids.len())) {
        let found: Vec<String> =
            sqlx::query_scalar(LOCK_RUNNING).bind(project).bind(&ids).fetch_all(&mut *conn).await?;
        let found: HashSet<String> = found.into_iter().collect();
        running.extend(ids.into_iter().filter(|id| found.contains(*id)).map(|id| (project, id)));
    }
    Ok(running)
}

/// Replace the usage rows of the calls these ends belong to. `written` is what the upsert
/// returned for them: only the calls it updated can have old rows to delete, since a call's
/// usage rows are written and deleted only with its row (a write inserting a call skips the
/// delete, one index probe per call).
async fn replace_usage(conn: &mut PgConnection, rows: &[&EndRow], written: &[WrittenCall]) -> Result<(), sqlx::Error> {
    // One delete per project: a statement naming its project stays on one shard under Citus.
    let mut updated: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for call in written.iter().filter(|call| !call.inserted) {
        updated.entry(call.project_id.as_str()).or_default().push(call.id.as_str());
    }
    for (project, ids) in updated {
        sqlx::query(
            "delete from call_usage u using unnest($2::text[]) as e(id) where u.project_id = $1 and u.call_id = e.id",
        )
        .bind(project)
        .bind(ids)
        .execute(&mut *conn)
        .await?;
    }
    let usage: Vec<(&EndRow, &UsageRow)> = rows.iter().flat_map(|r| r.usage.iter().map(move |u| (*r, u))).collect();
    if usage.is_empty() {
        return Ok(());
    }
    let counter = |f: fn(&Counters) -> i64| usage.iter().map(|(_, u)| f(&u.counters)).collect::<Vec<_>>();
    sqlx::query(
        r#"insert into call_usage (project_id, call_id, model, requests, input_tokens, output_tokens, total_tokens,
                                   cache_read_input_tokens, cache_creation_input_tokens)
           select * from unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[], $7::int8[],
                                $8::int8[], $9::int8[])"#,
    )
    .bind(usage.iter().map(|(r, _)| r.project_id.as_str()).collect::<Vec<_>>())
    .bind(usage.iter().map(|(r, _)| r.id.as_str()).collect::<Vec<_>>())
    .bind(usage.iter().map(|(_, u)| u.model.as_str()).collect::<Vec<_>>())
    .bind(counter(|u| u.requests))
    .bind(counter(|u| u.input_tokens))
    .bind(counter(|u| u.output_tokens))
    .bind(counter(|u| u.total_tokens))
    .bind(counter(|u| u.cache_read_input_tokens))
    .bind(counter(|u| u.cache_creation_input_tokens))
    .execute(conn)
    .await?;
    Ok(())
}

/// Write calls whose start and end arrive together as one row each (half the index work of
/// a start followed by an end), then replace their usage rows. Last write wins, as for halves.
async fn upsert_complete(
    conn: &mut PgConnection,
    rows: &[(StartRow, EndRow)],
) -> Result<Vec<WrittenCall>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let starts: Vec<&StartRow> = rows.iter().map(|(s, _)| s).collect();
    let ends: Vec<&EndRow> = rows.iter().map(|(_, e)| e).collect();
    let sql = format!(
        r#"insert into calls as c (project_id, id, trace_id, parent_id, thread_id, turn_id, op_name, display_name,
                              started_at, attributes, inputs, otel_dump, wb_user_id, wb_run_id, wb_run_step, input_refs,
                              ended_at, exception, output, summary, wb_run_step_end, output_refs)
           select s.project_id, s.id, s.trace_id, s.parent_id, s.thread_id, s.turn_id, s.op_name, s.display_name,
                  s.started_at, s.attributes::jsonb, s.inputs::jsonb, s.otel_dump::jsonb, s.wb_user_id, s.wb_run_id,
                  s.wb_run_step, array(select jsonb_array_elements_text(s.input_refs)),
                  s.ended_at, s.exception, s.output::jsonb, s.summary, s.wb_run_step_end,
                  array(select jsonb_array_elements_text(s.output_refs))
           from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                       $9::timestamptz[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[],
                       $15::int8[], $16::jsonb[], $17::timestamptz[], $18::text[], $19::text[], $20::jsonb[],
                       $21::int8[], $22::jsonb[])
                as s(project_id, id, trace_id, parent_id, thread_id, turn_id, op_name, display_name,
                     started_at, attributes, inputs, otel_dump, wb_user_id, wb_run_id, wb_run_step, input_refs,
                     ended_at, exception, output, summary, wb_run_step_end, output_refs)
           on conflict (project_id, id) do update set
               trace_id = excluded.trace_id, parent_id = excluded.parent_id, thread_id = excluded.thread_id,
               turn_id = excluded.turn_id, op_name = excluded.op_name,
               display_name = case when c.renamed_at is null then excluded.display_name else c.display_name end,
               started_at = excluded.started_at, attributes = excluded.attributes, inputs = excluded.inputs,
               otel_dump = excluded.otel_dump, wb_user_id = excluded.wb_user_id, wb_run_id = excluded.wb_run_id,
               wb_run_step = excluded.wb_run_step, input_refs = excluded.input_refs,
               ended_at = excluded.ended_at, exception = excluded.exception, output = excluded.output,
               summary = excluded.summary, wb_run_step_end = excluded.wb_run_step_end, output_refs = excluded.output_refs {}"#,
        WrittenCall::RETURNING
    );
    let written = bind_ends(bind_starts(sqlx::query_as(&sql), &starts), &ends).fetch_all(&mut *conn).await?;
    replace_usage(conn, &ends, &written).await?;
    Ok(written)
}

/// The trace ids of known calls of `project` (started or not), by call id.
pub async fn trace_ids_of(
    db: impl PgExecutor<'_>,
    project: &str,
    ids: &[String],
) -> Result<HashMap<String, String>, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "select id, trace_id from calls where project_id = $1 and id = any($2) and trace_id is not null",
    )
    .bind(project)
    .bind(ids)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().collect())
}

/// A visible call as stored.
#[derive(Debug, sqlx::FromRow)]
pub struct CallRow {
    pub project_id: String,
    pub id: String,
    pub trace_id: Option<String>,
    pub parent_id: Option<String>,
    pub thread_id: Option<String>,
    pub turn_id: Option<String>,
    pub op_name: Option<String>,
    pub display_name: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub exception: Option<String>,
    /// JSON text (`jsonb::text`): passed to the client without being parsed.
    pub attributes: Option<String>,
    pub inputs: Option<String>,
    pub output: Option<String>,
    pub summary: Option<Value>,
    pub wb_user_id: Option<String>,
    pub wb_run_id: Option<String>,
    pub wb_run_step: Option<i64>,
    pub wb_run_step_end: Option<i64>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub latency_ms: Option<f64>,
    /// The call's usage rows, when the query asked for them (see [`USAGE_COLUMN`]).
    #[sqlx(default)]
    pub usage_rows: Option<Value>,
}

/// An extra column with a call's usage rows, as `[[model, requests, input, output, total,
/// cache_read, cache_creation], ...]`; [`CallRow::usage`] reads it back. The project is the
/// statement's first parameter (as in [`VISIBLE`](super::VISIBLE)): the explicit equality keeps
/// the subquery on one shard under Citus.
pub const USAGE_COLUMN: &str = ", (select coalesce(jsonb_agg(jsonb_build_array(u.model, u.requests, u.input_tokens, \
     u.output_tokens, u.total_tokens, u.cache_read_input_tokens, u.cache_creation_input_tokens)), '[]'::jsonb) \
     from call_usage u where u.project_id = $1 and u.call_id = c.id) as usage_rows";

impl CallRow {
    /// The usage rows selected with [`USAGE_COLUMN`] (none when it was not selected).
    pub fn usage(&self) -> Vec<UsageRow> {
        let Some(Value::Array(rows)) = &self.usage_rows else { return Vec::new() };
        rows.iter()
            .filter_map(|row| {
                let row = row.as_array()?;
                let int = |i: usize| row.get(i).and_then(Value::as_i64).unwrap_or(0);
                Some(UsageRow {
                    model: row.first()?.as_str()?.to_string(),
                    counters: Counters {
                        requests: int(1),
                        input_tokens: int(2),
                        output_tokens: int(3),
                        total_tokens: int(4),
                        cache_read_input_tokens: int(5),
                        cache_creation_input_tokens: int(6),
                    },
                })
            })
            .collect()
    }
}

impl From<CallRow> for Call {
    /// The API's view of a stored call, with the computed `summary.weave` fields.
    fn from(row: CallRow) -> Self {
        let op_name = row.op_name.unwrap_or_default();
        let trace_name = call::trace_name(row.display_name.as_deref(), &op_name).to_string();
        let summary = call::summary_with_computed_fields(
            row.summary,
            row.exception.as_deref(),
            row.ended_at.is_some(),
            row.latency_ms,
            &trace_name,
        );
        Call {
            id: row.id,
            project_id: row.project_id,
            trace_id: row.trace_id.unwrap_or_default(),
            op_name,
            display_name: row.display_name,
            parent_id: row.parent_id,
            thread_id: row.thread_id,
            turn_id: row.turn_id,
            started_at: Timestamp::from(row.started_at),
            ended_at: row.ended_at.map(Timestamp::from),
            exception: row.exception,
            attributes: call::raw_json(row.attributes.as_deref().unwrap_or("{}")),
            inputs: call::raw_json(row.inputs.as_deref().unwrap_or("{}")),
            output: call::raw_json(row.output.as_deref().unwrap_or("null")),
            summary,
            wb_user_id: row.wb_user_id,
            wb_run_id: row.wb_run_id,
            wb_run_step: row.wb_run_step,
            wb_run_step_end: row.wb_run_step_end,
            deleted_at: row.deleted_at.map(Timestamp::from),
        }
    }
}

/// The columns of [`CallRow`], for the calls table aliased `c`.
pub const CALL_COLUMNS: &str = "c.project_id, c.id, c.trace_id, c.parent_id, c.thread_id, c.turn_id, c.op_name, \
     c.display_name, c.started_at, c.ended_at, c.exception, c.attributes::text as attributes, c.inputs::text as inputs, \
     c.output::text as output, c.summary, \
     c.wb_user_id, c.wb_run_id, c.wb_run_step, c.wb_run_step_end, c.deleted_at, c.latency_ms";

/// A call that has started and is not deleted (with its usage rows when `with_usage`).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn read(
    db: impl PgExecutor<'_>,
    project: &str,
    id: &str,
    with_usage: bool,
) -> Result<Option<CallRow>, sqlx::Error> {
    let usage = if with_usage { USAGE_COLUMN } else { "" };
    sqlx::query_as(&format!("select {CALL_COLUMNS}{usage} from calls c where {VISIBLE} and c.id = $2"))
        .bind(project)
        .bind(id)
        .fetch_optional(db)
        .await
}

/// Rename a call (`None` clears the name). The call need not have arrived: the rename is kept
/// on its row and outlasts a start written later (the SDK sends renames from another thread).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn rename(
    db: impl PgExecutor<'_>,
    project: &str,
    id: &str,
    display_name: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into calls (project_id, id, display_name, renamed_at) values ($1, $2, $3, clock_timestamp())
         on conflict (project_id, id) do update set display_name = excluded.display_name, renamed_at = excluded.renamed_at",
    )
    .bind(project)
    .bind(id)
    .bind(display_name)
    .execute(db)
    .await?;
    Ok(())
}

/// Soft-delete calls and every descendant (parent cycles included, each once). Returns how many
/// visible calls were newly deleted.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn delete_subtrees(db: impl PgExecutor<'_>, project: &str, ids: &[String]) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        r#"with recursive subtree(id) as (
               select id from calls where project_id = $1 and id = any($2)
               union
               select c.id from calls c join subtree s on c.parent_id = s.id where c.project_id = $1
           ), deleted as (
               update calls set deleted_at = now()
               where project_id = $1 and id in (select id from subtree) and deleted_at is null
               returning started_at
           )
           select count(*) filter (where started_at is not null) from deleted"#,
    )
    .bind(project)
    .bind(ids)
    .fetch_one(db)
    .await
}

/// How many visible calls of `project` match `filter`, counting at most `cap` of them.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn count(
    db: impl PgExecutor<'_>,
    project: &str,
    selection: &Selection,
    cap: Option<i64>,
) -> Result<i64, sqlx::Error> {
    let mut qb = visible_calls("select count(*) from (select 1", project, selection);
    if let Some(cap) = cap {
        qb.push(" limit ").push_bind(cap);
    }
    qb.push(") matched");
    qb.build_query_scalar().fetch_one(db).await
}

/// How `/calls/stream_query` orders calls: a column or expression of ours, never user text.
#[derive(Debug, Clone)]
pub enum SortKey {
    /// A top-level column of `calls` (checked against an allow-list by the caller).
    Column(&'static str),
    /// `summary.weave.status`.
    Status,
    /// `summary.weave.trace_name`.
    TraceName,
    /// A JSON path under `inputs`, `output`, `attributes` or `summary` (the column is ours,
    /// the path is bound).
    JsonPath(&'static str, Vec<String>),
}

/// What `/calls/stream_query` asks for, besides the selection.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// Order by these first (descending when true), then by start and id (byte order).
    pub sort: Vec<(SortKey, bool)>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// Stream the visible calls of `project` matching `selection`, in `page`'s order and window,
/// with their usage rows when `with_usage` (see [`super::spawn_rows`]).
pub fn stream(
    db: PgPool,
    project: String,
    selection: &Selection,
    page: &Page,
    with_usage: bool,
) -> mpsc::Receiver<Result<CallRow, sqlx::Error>> {
    super::spawn_rows(db, stream_query(project, selection, page, with_usage))
}

/// The statement behind [`stream`].
fn stream_query(
    project: String,
    selection: &Selection,
    page: &Page,
    with_usage: bool,
) -> QueryBuilder<'static, Postgres> {
    let usage = if with_usage { USAGE_COLUMN } else { "" };
    let Page { sort, limit, offset } = page;
    let mut qb = visible_calls(format!("select {CALL_COLUMNS}{usage}"), project, selection);
    qb.push(" order by ");
    for (key, descending) in sort {
        let direction = if *descending { " desc nulls last, " } else { " asc nulls last, " };
        match key {
            SortKey::Column(column) => {
                // Text sorts in byte order, whatever the database's collation.
                let collate = if matches!(
                    *column,
                    "latency_ms" | "started_at" | "ended_at" | "wb_run_step" | "wb_run_step_end"
                ) {
                    ""
                } else {
                    r#" collate "C""#
                };
                qb.push(format_args!("c.{column}{collate}"));
            }
            SortKey::Status => {
                qb.push("weave_status(c.exception, c.summary, c.ended_at)");
            }
            SortKey::TraceName => {
                qb.push("weave_trace_name(c.display_name, c.op_name)");
            }
            SortKey::JsonPath(column, path) => {
                // As Weave orders mixed values: numbers (numerically) before strings (byte
                // order) before other values, and null or missing last, in both directions.
                qb.push(format_args!("weave_json_sort_rank(c.{column} #> "))
                    .push_bind(path.clone())
                    .push("::text[]), ");
                qb.push(format_args!("weave_json_sort_number(c.{column} #> "))
                    .push_bind(path.clone())
                    .push("::text[])");
                qb.push(direction);
                qb.push(format_args!("weave_json_text(c.{column} #> "))
                    .push_bind(path.clone())
                    .push(r#"::text[]) collate "C""#);
            }
        }
        qb.push(direction);
    }
    qb.push(r#"c.started_at asc, c.id collate "C" asc"#);
    if let Some(limit) = *limit {
        qb.push(" limit ").push_bind(limit);
    }
    if let Some(offset) = *offset {
        qb.push(" offset ").push_bind(offset);
    }
    qb
}

/// Every distinct op name of a project's calls (at most `limit`), in byte order: a loose index
/// scan, one probe per name, however many calls there are.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn op_names(db: impl PgExecutor<'_>, project: &str, limit: i64) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        r#"with recursive names(op_name, i) as (
               (select op_name, 1 from calls where project_id = $1 and op_name is not null order by op_name limit 1)
               union all
               select (select c.op_name from calls c where c.project_id = $1 and c.op_name > n.op_name
                       order by c.op_name limit 1), n.i + 1
               from names n where n.op_name is not null and n.i < $2
           )
           select op_name from names where op_name is not null order by op_name collate "C" limit $2"#,
    )
    .bind(project)
    .bind(limit)
    .fetch_all(db)
    .await
}
