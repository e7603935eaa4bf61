//! The 15-minute rollups of migrations 0006 and 0011 (and the run rollups of 0009, rebuilt
//! with them): rebuild the dirty slots of a window, then stream a window's slots and the
//! latency pages their percentiles need. `stats::slots` decides when a request may use them.
//!
//! A call rollup's `latencies` is a format byte, then either (0) each latency as 8 big-endian
//! bytes, or (1, past `binned::LISTED_MAX` of them) their summary: count, sum in µs (zigzag),
//! min and max (8 bytes each), counts of exact zeros and ones, and the histogram (a count of
//! bins, then per bin its distance from the previous one and its count); the latencies
//! themselves, sorted, are in `call_latency_pages` (8 bytes each, cut into rows from the top:
//! see `binned::page_ranks`).
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, PgPool, Postgres, QueryBuilder, Row};

use super::filter::{push_name_match, SlotFilter};
use super::packed::{floats, put, put_f64, put_floats, put_signed_wide, take, take_f64, take_signed_wide};
use crate::domain::usage::UsageRow;
use crate::stats::binned::{self, PageSlice, Summary, LISTED_MAX};
use crate::stats::runs::RunSlots;
use crate::stats::slots::{all_time, whole_hours, Range, Span};
use crate::stats::tally::{
    stored_sum, CallRollup, CallSlot, Counting, SlotLatencies, SlotSums, UsageRollup, UsageSlot, UsageSums,
};

impl<'r> FromRow<'r, PgRow> for CallSlot {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        let bytes: &[u8] = row.try_get("latencies")?;
        let minutes: i16 = row.try_get("minutes")?;
        Ok(CallSlot {
            span: Span::from_minutes(minutes)
                .ok_or_else(|| sqlx::Error::Decode(format!("a call rollup spans {minutes} minutes").into()))?,
            slot: row.try_get("slot")?,
            part: row.try_get("part")?,
            calls: row.try_get("calls")?,
            errors: row.try_get("errors")?,
            latencies: decode_latencies(bytes).ok_or_else(|| {
                sqlx::Error::Decode("a call rollup's latencies are cut short or of an unknown format".into())
            })?,
        })
    }
}

/// A group's latencies (sorted by `f64::total_cmp`) as stored: the row's `latencies`, and its
/// pages when it has more than [`LISTED_MAX`] and `rows` are rebuilt ones (appended rows list
/// every latency: their pages would be numbered like the rebuilt row's).
fn encode_latencies(sorted: &[f64], rows: Rows) -> (Vec<u8>, Vec<Vec<u8>>) {
    let summary = match Summary::of_sorted(sorted) {
        Some(summary) if sorted.len() > LISTED_MAX && rows == Rows::Rebuilt => summary,
        _ => {
            let mut out = vec![0u8];
            put_floats(&mut out, sorted);
            return (out, Vec::new());
        }
    };
    let mut out = vec![1u8];
    put(&mut out, summary.count);
    put_signed_wide(&mut out, summary.micros);
    put_f64(&mut out, summary.min);
    put_f64(&mut out, summary.max);
    put(&mut out, summary.zeros);
    put(&mut out, summary.ones);
    put(&mut out, summary.bins.len() as u64);
    let mut previous = 0;
    for &(bin, count) in &summary.bins {
        put(&mut out, u64::from(bin - previous));
        put(&mut out, count);
        previous = bin;
    }
    // Page k holds `binned::page_ranks(n, k)`: cut from the top.
    let pages = binned::pages(sorted).map(|page| {
        let mut bytes = Vec::with_capacity(8 * page.len());
        put_floats(&mut bytes, page);
        bytes
    });
    (out, pages.collect())
}

fn decode_latencies(bytes: &[u8]) -> Option<SlotLatencies> {
    let (&format, mut bytes) = bytes.split_first()?;
    match format {
        0 => Some(SlotLatencies::Listed(floats(bytes)?.collect())),
        1 => {
            let bytes = &mut bytes;
            let (count, micros) = (take(bytes)?, take_signed_wide(bytes)?);
            let (min, max) = (take_f64(bytes)?, take_f64(bytes)?);
            let (zeros, ones, bin_count) = (take(bytes)?, take(bytes)?, take(bytes)?);
            let mut bins = Vec::with_capacity(usize::try_from(bin_count).ok()?.min(bytes.len()));
            let mut bin = 0u32;
            for _ in 0..bin_count {
                bin = bin.checked_add(u32::try_from(take(bytes)?).ok()?)?;
                bins.push((bin, take(bytes)?));
            }
            let summary = Summary { count, micros, min, max, zeros, ones, bins };
            bytes.is_empty().then_some(SlotLatencies::Paged(summary))
        }
        _ => None,
    }
}

/// The latencies of the slices in `pages` (of the call rollups of `project`, each tagged with
/// its bucket), read in one statement and concatenated per bucket: one row a bucket, since
/// per-row costs would outweigh the few latencies each slice holds. Slices of consecutive pages
/// of a group are read by one index range probe (see [`binned::page_runs`]).
#[tracing::instrument(level = "debug", skip_all, fields(pages = pages.len()))]
pub(super) async fn for_each_page(
    tx: &mut PgConnection,
    project: &str,
    pages: &[(usize, PageSlice)],
    mut each: impl FnMut(usize, &[f64]),
) -> Result<(), sqlx::Error> {
    use futures_util::TryStreamExt;
    let runs = binned::page_runs(pages);
    tracing::debug!(runs = runs.len(), "page runs");
    let column = |f: fn(&binned::PageRun) -> i32| runs.iter().map(f).collect::<Vec<i32>>();
    let slots: Vec<DateTime<Utc>> = runs.iter().map(|r| r.head.slot).collect();
    let minutes: Vec<i16> = runs.iter().map(|r| r.head.span.minutes()).collect();
    // One index probe a run. Knowing the array's length, the planner would rather sort every
    // page of the project for a merge join (3× slower at 3M calls, worse as it grows).
    sqlx::query("select set_config('enable_mergejoin', 'off', true), set_config('enable_hashjoin', 'off', true)")
        .execute(&mut *tx)
        .await?;
    let mut rows = sqlx::query_as::<_, (i32, Vec<u8>)>(
        "select bucket, string_agg(latencies, ''::bytea) from (
             select x.bucket, case p.page
                 when x.head_page then substring(p.latencies from x.head_first * 8 + 1 for x.head_count * 8)
                 when x.tail_page then substring(p.latencies from x.tail_first * 8 + 1 for x.tail_count * 8)
                 else p.latencies end as latencies
             from unnest($2::int4[], $3::int2[], $4::timestamptz[], $5::int4[], $6::int4[], $7::int4[],
                         $8::int4[], $9::int4[], $10::int4[], $11::int4[])
                  x(bucket, minutes, slot, part, head_page, head_first, head_count, tail_page, tail_first, tail_count)
             join call_latency_pages p on p.project_id = $1 and p.minutes = x.minutes and p.slot = x.slot
                 and p.part = x.part and p.page between x.head_page and x.tail_page
             -- offset 0: aggregate the slices, not the pages they are cut from.
             offset 0
         ) s group by bucket",
    )
    .bind(project)
    .bind(column(|r| r.bucket as i32))
    .bind(minutes)
    .bind(slots)
    .bind(column(|r| r.head.part))
    .bind(column(|r| r.head.page))
    .bind(column(|r| r.head.first))
    .bind(column(|r| r.head.count))
    .bind(column(|r| r.tail.page))
    .bind(column(|r| r.tail.first))
    .bind(column(|r| r.tail.count))
    .fetch(&mut *tx);
    let mut values = Vec::new();
    while let Some((bucket, bytes)) = rows.try_next().await? {
        values.clear();
        values.extend(floats(&bytes).ok_or_else(|| sqlx::Error::Decode("a latency page is cut short".into()))?);
        each(usize::try_from(bucket).unwrap_or(usize::MAX), &values);
    }
    Ok(())
}

/// One model's usage rollup rows of a window, each column as an array (see
/// [`for_each_usage_slot`]).
#[derive(FromRow)]
struct ModelSlots {
    model: String,
    slots: Vec<DateTime<Utc>>,
    usage_rows: Vec<i64>,
    /// Per slot: input, output, total, cache read, cache creation, uncached input; a sum is null
    /// when it passed the bigint range.
    input_tokens: Vec<Option<i64>>,
    output_tokens: Vec<Option<i64>>,
    total_tokens: Vec<Option<i64>>,
    cache_read_input_tokens: Vec<Option<i64>>,
    cache_creation_input_tokens: Vec<Option<i64>>,
    uncached_input_tokens: Vec<Option<i64>>,
}

/// Feed the usage rollup rows of `range` matching `filter` to `each`. They come one row per
/// model with arrays: streaming a row per slot and model cost more than summing it.
#[tracing::instrument(level = "debug", skip_all)]
pub(super) async fn for_each_usage_slot(
    db: &PgPool,
    project: &str,
    range: Range,
    filter: &SlotFilter,
    mut each: impl FnMut(&UsageSlot),
) -> Result<(), sqlx::Error> {
    const USAGE: &str = "r.model, array_agg(r.slot) as slots, array_agg(r.usage_rows) as usage_rows,
         array_agg(r.input_tokens) as input_tokens, array_agg(r.output_tokens) as output_tokens,
         array_agg(r.total_tokens) as total_tokens, array_agg(r.cache_read_input_tokens) as cache_read_input_tokens,
         array_agg(r.cache_creation_input_tokens) as cache_creation_input_tokens,
         array_agg(r.uncached_input_tokens) as uncached_input_tokens";
    let mut qb = slot_rows((USAGE, USAGE), ("usage_slots", "usage_op_slots"), project, range, filter);
    qb.push(" group by r.model");
    let models: Vec<ModelSlots> = qb.build_query_as().fetch_all(db).await?;
    for m in models {
        let mut slot = UsageSlot { slot: DateTime::<Utc>::UNIX_EPOCH, model: m.model, usage_rows: 0, sums: None };
        let sums_at = |i: usize| {
            let sum = |column: &[Option<i64>]| column.get(i).copied().flatten();
            Some(SlotSums {
                input_tokens: sum(&m.input_tokens)?,
                output_tokens: sum(&m.output_tokens)?,
                total_tokens: sum(&m.total_tokens)?,
                cache_read_input_tokens: sum(&m.cache_read_input_tokens)?,
                cache_creation_input_tokens: sum(&m.cache_creation_input_tokens)?,
                uncached_input_tokens: sum(&m.uncached_input_tokens)?,
            })
        };
        // A slot holds several rows when writes appended theirs. One that overflowed sends the
        // slot's rows of this model to the raw path: its other rows must not count as well.
        let overflowed: BTreeSet<DateTime<Utc>> =
            (0..m.slots.len()).filter(|&i| sums_at(i).is_none()).map(|i| m.slots[i]).collect();
        for (i, (&start, &rows)) in m.slots.iter().zip(&m.usage_rows).enumerate() {
            slot.slot = start;
            slot.usage_rows = rows;
            slot.sums = if overflowed.contains(&start) { None } else { sums_at(i) };
            each(&slot);
        }
    }
    Ok(())
}

/// Slots rebuilt per transaction (24 whole hours): progress survives a long backlog, and no
/// statement nears the statement timeout.
const SLOTS_PER_REFRESH: usize = 96;

/// Rebuild the slots in `[from, to)` that writes have touched since they were last built;
/// how many were.
///
/// Refreshes of a project take turns (an advisory lock), so the last rollup written is always
/// from the newest snapshot. A rebuild consumes the marks its read of the calls can see (see
/// [`rebuild`]): a write landing meanwhile keeps its mark for the next refresh.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn refresh(db: &PgPool, project: &str, range: Range) -> Result<usize, sqlx::Error> {
    // The slots dirty now: writes landing meanwhile wait for the next request, so a reader
    // never chases a busy writer.
    let dirty = dirty_slots(db, project, range, Stale::AnyMark).await?;
    for slots in whole_hours(&dirty).chunks(SLOTS_PER_REFRESH) {
        rebuild(db, project, slots).await?;
    }
    Ok(dirty.len())
}

/// Which dirty marks make a slot stale for a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// Every mark: for the run rollups, which writes never append to, and for rebuilds.
    AnyMark,
    /// Marks whose writes did not append their own rows (see [`append`]): for the call and
    /// usage rollups.
    Uncovered,
}

/// The marked slots of `[from, to)`, ascending.
async fn dirty_slots(
    db: &PgPool,
    project: &str,
    (from, to): Range,
    stale: Stale,
) -> Result<Vec<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "select distinct slot from rollup_dirty
         where project_id = $1 and slot >= $2 and slot < $3 and ($4 or not covered) order by slot",
    )
    .bind(project)
    .bind(from)
    .bind(to)
    .bind(stale == Stale::AnyMark)
    .fetch_all(db)
    .await
}

/// Most dirty slots a request reads raw rather than rebuilding them first.
const DIRTY_SLOTS_READ_RAW: usize = SLOTS_PER_REFRESH;

/// The slots of `span` whose rollups are stale, for the caller to read raw (a few quarter
/// hours of calls cost less than rebuilding them, and a request never queues behind another
/// refresh of its project, which is what live writes into the current quarter hour caused); or,
/// past [`DIRTY_SLOTS_READ_RAW`] (a backlog, say after an upgrade), none: they are rebuilt
/// first. The background refresher rebuilds them either way.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn stale_or_refresh(
    db: &PgPool,
    project: &str,
    range: Range,
    stale: Stale,
) -> Result<Vec<DateTime<Utc>>, sqlx::Error> {
    let dirty = dirty_slots(db, project, range, stale).await?;
    if dirty.len() <= DIRTY_SLOTS_READ_RAW {
        return Ok(dirty);
    }
    for slots in whole_hours(&dirty).chunks(SLOTS_PER_REFRESH) {
        rebuild(db, project, slots).await?;
    }
    Ok(Vec::new())
}

/// The rollup tables, which every rebuild rewrites.
const ROLLUP_TABLES: [&str; 7] =
    ["rollup_dirty", "call_slots", "call_op_slots", "call_latency_pages", "usage_slots", "usage_op_slots", "run_slots"];
/// The rollup tables with rows per quarter hour and per hour (`minutes`).
const SPANNED_TABLES: [&str; 3] = ["call_slots", "call_op_slots", "call_latency_pages"];
/// The tables they are built from.
const SOURCE_TABLES: [&str; 2] = ["calls", "call_usage"];

/// The background refresher: keeps the rollups close to the writes, so a dashboard read rarely
/// rebuilds much. Reads stay exact either way: they rebuild what is still dirty in their window.
///
/// Every rebuild deletes and rewrites rows, so after a burst of writes the rollup tables hold
/// more dead rows than live ones and the planner's statistics are stale; nothing else may clean
/// them (autovacuum can be off, or slow to notice). After each round the refresher vacuums and
/// analyzes them itself when [`needs_maintenance`] says so.
pub async fn refresh_forever(db: PgPool, every: std::time::Duration) {
    let mut busy = false;
    let mut maintained = std::time::Instant::now();
    loop {
        // Back to back while writes keep it busy, so the rollups trail the last write by the
        // rebuild's own time rather than by a whole pause more.
        if !busy {
            tokio::time::sleep(every).await;
        }
        let round = async {
            let rebuilt = refresh_everything(&db).await?;
            if maintenance_due(rebuilt, maintained.elapsed()) && needs_maintenance(&db).await? {
                maintain(&db).await?;
                maintained = std::time::Instant::now();
            }
            Ok::<_, sqlx::Error>(rebuilt)
        };
        busy = match round.await {
            Ok(rebuilt) => rebuilt > 0,
            Err(error) => {
                tracing::warn!(%error, "background rollup refresh failed; retrying next round");
                false
            }
        };
    }
}

/// While writes keep the refresher rebuilding, it maintains the tables at most this often: a
/// vacuum and analyze took ~1.5 s of each round under a 1M-call ingest, delaying the next
/// round's rebuilds, and the rows it cleaned were rewritten by that round anyway. The round
/// after the writes stop rebuilds nothing and maintains at once.
const MAINTAIN_WHILE_BUSY: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether a round that rebuilt `rebuilt` slots, `since` the last maintenance, may maintain.
fn maintenance_due(rebuilt: usize, since: std::time::Duration) -> bool {
    rebuilt == 0 || since >= MAINTAIN_WHILE_BUSY
}

/// Whether the rollup tables hold more than 20% dead rows (and over 1,000), or any of them,
/// `calls` or `call_usage` changed by more than 20% (and over 1,000 rows) since last analyzed.
pub async fn needs_maintenance(db: &PgPool) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "select coalesce(sum(n_dead_tup) filter (where relname = any($1)) >
                    greatest(1000, sum(n_live_tup) filter (where relname = any($1)) / 5)
                or bool_or(n_mod_since_analyze > greatest(1000, n_live_tup / 5)), false)
         from pg_stat_user_tables where relname = any($1) or relname = any($2)",
    )
    .bind(ROLLUP_TABLES)
    .bind(SOURCE_TABLES)
    .fetch_one(db)
    .await
}

/// Vacuum and analyze the rollup tables, and analyze the tables they are built from.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn maintain(db: &PgPool) -> Result<(), sqlx::Error> {
    let started = std::time::Instant::now();
    // VACUUM refuses to run inside a transaction, even the implicit one around several
    // statements: the simple protocol sends it alone.
    sqlx::raw_sql(&format!("vacuum (analyze) {}", ROLLUP_TABLES.join(", "))).execute(db).await?;
    sqlx::query(&format!("analyze {}", SOURCE_TABLES.join(", "))).execute(db).await?;
    tracing::info!(ms = started.elapsed().as_millis() as u64, "rollup tables vacuumed and analyzed");
    Ok(())
}

/// Rebuild every dirty slot of every project (the background refresher's round), so reads
/// after a burst of writes find little left to do; how many slots were rebuilt.
pub async fn refresh_everything(db: &PgPool) -> Result<usize, sqlx::Error> {
    let projects: Vec<String> =
        sqlx::query_scalar("select distinct project_id from rollup_dirty").fetch_all(db).await?;
    let mut rebuilt = 0;
    for project in projects {
        rebuilt += refresh(db, &project, all_time()).await?;
    }
    Ok(rebuilt)
}

/// Consume the marks of `slots` (whole hours: callers pass chunks of [`whole_hours`]) and
/// rebuild their rollups, in one transaction.
///
/// The marks and rollup rows the rebuild replaces are deleted by the statement that reads the
/// calls, so all three come from one snapshot: a write committing at any moment is either in
/// the read with its mark and appended rows deleted, or outside it with both kept. (Deleted by
/// an earlier statement, a write committing in between would be read and keep its appended
/// rows: counted twice.)
async fn rebuild(db: &PgPool, project: &str, slots: &[DateTime<Utc>]) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query("select pg_advisory_xact_lock(hashtextextended('weave rollups ' || $1, 0))")
        .bind(project)
        .execute(&mut *tx)
        .await?;
    let marked: Vec<DateTime<Utc>> =
        sqlx::query_scalar("select distinct slot from rollup_dirty where project_id = $1 and slot = any($2)")
            .bind(project)
            .bind(slots)
            .fetch_all(&mut *tx)
            .await?;
    if marked.is_empty() {
        // Another refresh got there first.
        return tx.commit().await;
    }
    // An hour's rollups are built from all four of its slots (another refresh may have
    // consumed some of the marks).
    let slots = whole_hours(&marked);
    // The call tables are keyed (project, minutes, slot): naming both spans lets the delete
    // probe its key (without them, a scan of the project's rows: 240 ms against 8 for a day of
    // call_op_slots at 300k calls).
    let spans = format!("minutes in ({}, {}) and ", Span::Quarter.minutes(), Span::Hour.minutes());
    let consume = ROLLUP_TABLES
        .iter()
        .enumerate()
        .map(|(i, table)| {
            let spans = if SPANNED_TABLES.contains(table) { spans.as_str() } else { "" };
            format!("consumed_{i} as (delete from {table} where project_id = $1 and {spans}slot = any($2))")
        })
        .collect::<Vec<_>>()
        .join(", ");
    // One read of the slots' calls with their usage rows gives every rollup (grouped here, as
    // the rows arrive: the SQL grouping cost more than the read).
    let mut calls: BTreeMap<(Span, DateTime<Utc>), CallRollup> = BTreeMap::new();
    let mut usage: BTreeMap<DateTime<Utc>, UsageRollup> = BTreeMap::new();
    let mut runs = RunSlots::default();
    super::runs::runs_of_slots(&mut tx, project, &slots, &format!("with {consume}"), |op_name, run| {
        let slot = Span::Quarter.floor(run.started_at);
        count_call(&mut calls, slot, op_name.as_deref(), run.is_root, run.latency_ms, run.error, Counting::Call);
        if !run.usage.is_empty() {
            usage.entry(slot).or_default().add(op_name.as_deref(), run.is_root, &run.usage);
        }
        runs.add(slot, run);
    })
    .await?;
    write_calls(&mut tx, project, calls, Rows::Rebuilt).await?;
    write_usage(&mut tx, project, &usage).await?;
    super::run_slots::write(&mut tx, project, runs).await?;
    tx.commit().await
}

/// Count a call starting in the quarter hour `slot` (or its end) into its quarter hour's and
/// its hour's call rollups (a rebuild and an append count alike).
fn count_call(
    calls: &mut BTreeMap<(Span, DateTime<Utc>), CallRollup>,
    slot: DateTime<Utc>,
    op_name: Option<&str>,
    is_root: bool,
    latency_ms: Option<f64>,
    is_error: bool,
    counting: Counting,
) {
    for key in [(Span::Quarter, slot), (Span::Hour, Span::Hour.floor(slot))] {
        calls.entry(key).or_default().add(op_name, is_root, latency_ms, is_error, counting);
    }
}

/// Which rollup rows a write adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rows {
    /// A slot's rows, rebuilt from all its calls.
    Rebuilt,
    /// Rows a write transaction appends for the calls it inserted.
    Appended,
}

/// A call as an upsert wrote it (its `returning` clause is [`WrittenCall::RETURNING`]): what
/// the rollups count of it, and whether the statement inserted it.
#[derive(Debug, sqlx::FromRow)]
pub struct WrittenCall {
    pub project_id: String,
    pub id: String,
    /// Inserted by the statement, rather than updated.
    pub inserted: bool,
    /// Updated by an end while it was running (started, not ended, not deleted; see
    /// `calls::running`): what the rollups count of it changes only by its end's latency, error
    /// and usage. Set by the caller, not by `RETURNING`.
    #[sqlx(default)]
    pub ended_running: bool,
    pub started_at: Option<DateTime<Utc>>,
    pub op_name: Option<String>,
    pub is_root: bool,
    pub latency_ms: Option<f64>,
    pub error: bool,
}

impl WrittenCall {
    /// The `returning` clause for `insert into calls as c ... on conflict do update`. A row an
    /// insert wrote has no `xmax` yet; one it updated has the updater's.
    pub const RETURNING: &str = concat!("returning c.project_id, c.id, c.xmax = 0 as inserted, ", call_facts!());
}

/// Whether [`append`] appends for a transaction writing `calls` calls of a project. A bulk
/// write is left to the rebuild, which reads its slots once either way: appending rows the
/// refresher folds seconds later cost ~20% of the ingest rate (300k calls sent 500 at a time,
/// ~100 to a slot), and appended rows list every latency.
pub(super) fn appends_for(calls: usize) -> bool {
    calls <= LISTED_MAX
}

/// Append rollup rows for the calls a write transaction inserted or ended while they ran
/// (`written`, each with the usage rows it wrote), so a stats request keeps reading their
/// slots' rollups rather than their calls. A slot is covered only when every call the
/// transaction wrote in it is new or a running call's first end (whose rows add its latency,
/// error and usage, not the call again): any other change (an update, a second end) leaves its
/// mark uncovered, and its slot is read raw until rebuilt, as is a slot whose appended token
/// sums would not fit a bigint, and every slot of a transaction writing more than
/// [`LISTED_MAX`] calls of a project.
#[tracing::instrument(level = "debug", skip_all, fields(calls = written.len()))]
pub async fn append(conn: &mut PgConnection, written: &[(WrittenCall, &[UsageRow])]) -> Result<(), sqlx::Error> {
    // Per project, each counted call (one with a start) with its quarter hour.
    type Slotted<'a> = (DateTime<Utc>, &'a WrittenCall, &'a [UsageRow]);
    let mut projects: BTreeMap<&str, Vec<Slotted>> = BTreeMap::new();
    for (call, rows) in written {
        if let Some(started) = call.started_at {
            projects.entry(call.project_id.as_str()).or_default().push((Span::Quarter.floor(started), call, rows));
        }
    }
    for (project, written) in projects {
        if !appends_for(written.len()) {
            continue;
        }
        // Slots changed otherwise than by new calls and first ends.
        let mut uncovered: BTreeSet<DateTime<Utc>> = written
            .iter()
            .filter(|(_, call, _)| !call.inserted && !call.ended_running)
            .map(|&(slot, _, _)| slot)
            .collect();
        let mut usage: BTreeMap<DateTime<Utc>, UsageRollup> = BTreeMap::new();
        for &(slot, call, rows) in &written {
            if !rows.is_empty() && !uncovered.contains(&slot) {
                usage.entry(slot).or_default().add(call.op_name.as_deref(), call.is_root, rows);
            }
        }
        // Sums past bigint are stored null and read raw: not covered either.
        let overflowed: Vec<DateTime<Utc>> =
            usage.iter().filter(|(_, rollup)| rollup.overflows()).map(|(&slot, _)| slot).collect();
        for slot in overflowed {
            usage.remove(&slot);
            uncovered.insert(slot);
        }
        let mut calls: BTreeMap<(Span, DateTime<Utc>), CallRollup> = BTreeMap::new();
        let mut covered = BTreeSet::new();
        for &(slot, call, _) in &written {
            if uncovered.contains(&slot) {
                continue;
            }
            covered.insert(slot);
            let counting = if call.inserted { Counting::Call } else { Counting::End };
            count_call(&mut calls, slot, call.op_name.as_deref(), call.is_root, call.latency_ms, call.error, counting);
        }
        if covered.is_empty() {
            continue;
        }
        write_calls(conn, project, calls, Rows::Appended).await?;
        write_usage(conn, project, &usage).await?;
        // The insert trigger marked these slots dirty in this transaction (one mark per
        // transaction and slot): say its writes are in the rollups already.
        sqlx::query(
            "update rollup_dirty set covered = true
             where project_id = $1 and slot = any($2) and txid = txid_current()",
        )
        .bind(project)
        .bind(covered.into_iter().collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The call rollup rows and latency pages of the rebuilt slots (their old rows already
/// deleted).
async fn write_calls(
    tx: &mut PgConnection,
    project: &str,
    calls: BTreeMap<(Span, DateTime<Utc>), CallRollup>,
    kind: Rows,
) -> Result<(), sqlx::Error> {
    /// Rows of `call_slots`, or of `call_op_slots` with `op` filled.
    #[derive(Default)]
    struct Rows {
        minutes: Vec<i16>,
        slot: Vec<DateTime<Utc>>,
        calls: Vec<i64>,
        errors: Vec<i64>,
        latencies: Vec<Vec<u8>>,
        /// (part, op name, is root) of `call_op_slots` rows.
        op: (Vec<i32>, Vec<Option<String>>, Vec<bool>),
    }
    /// Rows of `call_latency_pages`.
    #[derive(Default)]
    struct Pages {
        minutes: Vec<i16>,
        slot: Vec<DateTime<Utc>>,
        part: Vec<i32>,
        page: Vec<i32>,
        latencies: Vec<Vec<u8>>,
    }
    let (mut whole, mut per_op, mut pages) = (Rows::default(), Rows::default(), Pages::default());
    for ((span, slot), rollup) in calls {
        let groups =
            std::iter::once((None, rollup.whole)).chain(rollup.per_op.into_iter().map(|(op, g)| (Some(op), g)));
        for (part, (op, mut group)) in groups.enumerate() {
            let part = part as i32;
            group.latencies.sort_unstable_by(f64::total_cmp);
            let (latencies, group_pages) = encode_latencies(&group.latencies, kind);
            let rows = match op {
                None => &mut whole,
                Some((op_name, is_root)) => {
                    per_op.op.0.push(part);
                    per_op.op.1.push(op_name);
                    per_op.op.2.push(is_root);
                    &mut per_op
                }
            };
            rows.minutes.push(span.minutes());
            rows.slot.push(slot);
            rows.calls.push(group.calls);
            rows.errors.push(group.errors);
            rows.latencies.push(latencies);
            for (page, bytes) in group_pages.into_iter().enumerate() {
                pages.minutes.push(span.minutes());
                pages.slot.push(slot);
                pages.part.push(part);
                pages.page.push(page as i32);
                pages.latencies.push(bytes);
            }
        }
    }
    sqlx::query(
        "insert into call_slots (project_id, minutes, slot, calls, errors, latencies)
         select $1, * from unnest($2::int2[], $3::timestamptz[], $4::int8[], $5::int8[], $6::bytea[])",
    )
    .bind(project)
    .bind(whole.minutes)
    .bind(whole.slot)
    .bind(whole.calls)
    .bind(whole.errors)
    .bind(whole.latencies)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "insert into call_op_slots (project_id, minutes, slot, part, op_name, is_root, calls, errors, latencies)
         select $1, * from unnest($2::int2[], $3::timestamptz[], $4::int4[], $5::text[], $6::bool[], $7::int8[],
                                  $8::int8[], $9::bytea[])",
    )
    .bind(project)
    .bind(per_op.minutes)
    .bind(per_op.slot)
    .bind(per_op.op.0)
    .bind(per_op.op.1)
    .bind(per_op.op.2)
    .bind(per_op.calls)
    .bind(per_op.errors)
    .bind(per_op.latencies)
    .execute(&mut *tx)
    .await?;
    if pages.page.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "insert into call_latency_pages (project_id, minutes, slot, part, page, latencies)
         select $1, * from unnest($2::int2[], $3::timestamptz[], $4::int4[], $5::int4[], $6::bytea[])",
    )
    .bind(project)
    .bind(pages.minutes)
    .bind(pages.slot)
    .bind(pages.part)
    .bind(pages.page)
    .bind(pages.latencies)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The usage rollup rows of the rebuilt slots (their old rows already deleted).
async fn write_usage(
    tx: &mut PgConnection,
    project: &str,
    usage: &BTreeMap<DateTime<Utc>, UsageRollup>,
) -> Result<(), sqlx::Error> {
    #[derive(Default)]
    struct Columns {
        slot: Vec<DateTime<Utc>>,
        op_name: Vec<Option<String>>,
        is_root: Vec<bool>,
        model: Vec<String>,
        rows: Vec<i64>,
        sums: [Vec<Option<i64>>; 6],
    }
    impl Columns {
        fn push(&mut self, slot: DateTime<Utc>, model: &str, (rows, sums): &UsageSums) {
            self.slot.push(slot);
            self.model.push(model.to_string());
            self.rows.push(*rows);
            for (column, sum) in self.sums.iter_mut().zip(sums) {
                column.push(stored_sum(*sum));
            }
        }
    }
    let (mut whole, mut per_op) = (Columns::default(), Columns::default());
    for (&slot, rollup) in usage {
        for (model, totals) in &rollup.whole {
            whole.push(slot, model, totals);
        }
        for ((op_name, is_root, model), totals) in &rollup.per_op {
            per_op.push(slot, model, totals);
            per_op.op_name.push(op_name.clone());
            per_op.is_root.push(*is_root);
        }
    }
    const SUMS: &str =
        "input_tokens, output_tokens, total_tokens, cache_read_input_tokens, cache_creation_input_tokens,
         uncached_input_tokens";
    if whole.slot.is_empty() {
        return Ok(());
    }
    let whole_sql = format!(
        "insert into usage_slots (project_id, slot, model, usage_rows, {SUMS})
         select $1, * from unnest($2::timestamptz[], $3::text[], $4::int8[], $5::int8[], $6::int8[], $7::int8[],
                                  $8::int8[], $9::int8[], $10::int8[])"
    );
    let whole_insert = sqlx::query(&whole_sql).bind(project).bind(whole.slot).bind(whole.model).bind(whole.rows);
    whole.sums.into_iter().fold(whole_insert, |q, sums| q.bind(sums)).execute(&mut *tx).await?;
    let per_op_sql = format!(
        "insert into usage_op_slots (project_id, slot, op_name, is_root, model, usage_rows, {SUMS})
         select $1, * from unnest($2::timestamptz[], $3::text[], $4::bool[], $5::text[], $6::int8[], $7::int8[],
                                  $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::int8[])"
    );
    let per_op_insert = sqlx::query(&per_op_sql)
        .bind(project)
        .bind(per_op.slot)
        .bind(per_op.op_name)
        .bind(per_op.is_root)
        .bind(per_op.model)
        .bind(per_op.rows);
    per_op.sums.into_iter().fold(per_op_insert, |q, sums| q.bind(sums)).execute(&mut *tx).await?;
    Ok(())
}

/// Rollup rows of `range` matching `filter`, from the whole-slot table when it has no
/// condition, else from the per-op table (aliased `r` either way), with the columns for it.
fn slot_rows<'a>(
    columns: (&str, &str),
    tables: (&str, &str),
    project: &'a str,
    (from, to): Range,
    filter: &SlotFilter,
) -> QueryBuilder<'a, Postgres> {
    let whole = filter.op_names.is_none() && !filter.roots_only;
    let (table, columns) = if whole { (tables.0, columns.0) } else { (tables.1, columns.1) };
    let mut qb = QueryBuilder::new(format!("select {columns} from {table} r"));
    qb.push(" where r.project_id = ").push_bind(project);
    qb.push(" and r.slot >= ").push_bind(from).push(" and r.slot < ").push_bind(to);
    if let Some(names) = &filter.op_names {
        push_name_match(&mut qb, "r", "op_name", names);
    }
    if filter.roots_only {
        qb.push(" and r.is_root");
    }
    qb
}

/// The call rollup rows ([`CallSlot`]) of `span` in `range` matching `filter`.
pub(super) fn call_slots<'a>(
    project: &'a str,
    (span, range): (Span, Range),
    filter: &SlotFilter,
) -> QueryBuilder<'a, Postgres> {
    let mut qb = slot_rows(
        (
            "r.minutes, r.slot, 0 as part, r.calls, r.errors, r.latencies",
            "r.minutes, r.slot, r.part, r.calls, r.errors, r.latencies",
        ),
        ("call_slots", "call_op_slots"),
        project,
        range,
        filter,
    );
    qb.push(" and r.minutes = ").push_bind(span.minutes());
    qb
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_busy_refresher_maintains_at_most_every_thirty_seconds_and_an_idle_one_at_once() {
        assert!(!maintenance_due(12, Duration::from_secs(5)));
        assert!(maintenance_due(12, Duration::from_secs(30)));
        assert!(maintenance_due(0, Duration::from_secs(1)));
    }
}
