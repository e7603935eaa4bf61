//! SQL for `/calls/stats`: stream the counted calls and usage rows (raw) and the 15-minute
//! slots and hours (rollups) of a read plan into the tallies of `stats::tally`, as rows arrive, so
//! memory holds only what a bucket needs, never the rows.
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder};

use super::filter::{Selection, SlotFilter};
use super::{for_each, slots, USAGE_ROW_COLUMNS};
use crate::domain::usage::UsageRow;
use crate::stats::slots::{Plan, Range};
use crate::stats::tally::{CallTally, UsageTally};

/// The calls API.md §4.2 counts in `[start, end)`: in the project, not deleted, and matching
/// the selection.
fn counted_calls<'a>(
    select: &str,
    project: &'a str,
    (start, end): Range,
    selection: &Selection,
) -> QueryBuilder<'a, Postgres> {
    let mut qb = QueryBuilder::new(select);
    qb.push(" where c.project_id = ").push_bind(project);
    qb.push(" and c.deleted_at is null and c.started_at >= ").push_bind(start);
    qb.push(" and c.started_at < ").push_bind(end);
    super::filter::push_conditions(&mut qb, "c", selection);
    qb
}

/// Feed the counted calls of `plan` to `tally`: slots from rollups, the rest raw, then the
/// latency pages the percentiles of its paged slots need.
#[tracing::instrument(level = "debug", skip_all, fields(slot_ranges = plan.slots.len(), raw_ranges = plan.raw.len()))]
pub async fn tally_calls(
    db: &PgPool,
    project: &str,
    plan: &Plan,
    slot_filter: &SlotFilter,
    selection: &Selection,
    tally: &mut CallTally<'_>,
) -> Result<(), sqlx::Error> {
    // One snapshot: the pages read last must be those of the rollup rows read first.
    let mut tx = db.begin().await?;
    sqlx::query("set transaction isolation level repeatable read, read only").execute(&mut *tx).await?;
    for read in plan.call_spans() {
        for_each(slots::call_slots(project, read, slot_filter), &mut *tx, |slot| tally.add_slot(slot)).await?;
    }
    for &range in &plan.raw {
        let qb = counted_calls(
            "select c.started_at, c.latency_ms, c.exception is not null as is_error from calls c",
            project,
            range,
            selection,
        );
        for_each(qb, &mut *tx, |(started_at, latency_ms, is_error): (DateTime<Utc>, Option<f64>, bool)| {
            tally.add_call(started_at, latency_ms, is_error)
        })
        .await?;
    }
    let read = std::time::Instant::now();
    let pages = tally.pages();
    let planned = std::time::Instant::now();
    if !pages.is_empty() {
        slots::for_each_page(&mut tx, project, &pages, |slot, latencies| tally.add_page(slot, latencies)).await?;
    }
    let paged = std::time::Instant::now();
    tracing::debug!(
        slices = pages.len(),
        plan_ms = (planned - read).as_secs_f64() * 1000.0,
        read_ms = (paged - planned).as_secs_f64() * 1000.0,
        "latency pages"
    );
    tally
        .resolve()
        .map_err(|_| sqlx::Error::Decode("a call rollup's latency pages do not match its histogram".into()))?;
    tx.commit().await
}

/// A usage row of a counted call, with the call's start.
#[derive(sqlx::FromRow)]
struct TimedUsage {
    started_at: DateTime<Utc>,
    #[sqlx(flatten)]
    row: UsageRow,
}

/// Feed the usage rows of the counted calls of `plan` to `tally`: slots from rollups, the
/// rest raw, then the rows of any slot whose sums overflowed.
#[tracing::instrument(level = "debug", skip_all, fields(slot_ranges = plan.slots.len(), raw_ranges = plan.raw.len()))]
pub async fn tally_usage(
    db: &PgPool,
    project: &str,
    plan: &Plan,
    slot_filter: &SlotFilter,
    selection: &Selection,
    tally: &mut UsageTally<'_>,
) -> Result<(), sqlx::Error> {
    let select = format!(
        "select c.started_at, {USAGE_ROW_COLUMNS}
         from calls c join call_usage u on u.project_id = $1 and u.call_id = c.id"
    );
    for &range in &plan.slots {
        slots::for_each_usage_slot(db, project, range, slot_filter, |slot| tally.add_slot(slot)).await?;
    }
    for &range in &plan.raw {
        for_each(counted_calls(&select, project, range, selection), db, |u: TimedUsage| {
            tally.add_row(u.started_at, &u.row)
        })
        .await?;
    }
    for (slot, models) in tally.take_overflowed() {
        let range = (slot, crate::stats::slots::slot_end(slot));
        for_each(counted_calls(&select, project, range, selection), db, |u: TimedUsage| {
            if models.contains(&u.row.model) {
                tally.add_row(u.started_at, &u.row);
            }
        })
        .await?;
    }
    Ok(())
}
