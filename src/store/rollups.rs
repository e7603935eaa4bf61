//! The 15-minute rollups of migration 0006: rebuild the dirty slots of a window, then stream
//! a window's slots. `stats::slots` decides when a request may use them.
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use sqlx::{PgPool, Postgres, QueryBuilder};

use super::filter::{push_name_match, SlotFilter};

/// One slot's calls of one op (and root-ness).
#[derive(Debug, sqlx::FromRow)]
pub struct CallSlot {
    pub slot: DateTime<Utc>,
    pub calls: i64,
    pub errors: i64,
    /// `float8send` of each finished call's latency, concatenated.
    pub latencies: Vec<u8>,
}

impl CallSlot {
    pub fn latencies(&self) -> impl Iterator<Item = f64> + '_ {
        self.latencies.chunks_exact(8).map(|b| f64::from_be_bytes(b.try_into().expect("chunks of 8")))
    }
}

/// One slot's usage rows of one model (and op, root-ness), summed; a sum is None when it
/// passed the bigint range.
#[derive(Debug, sqlx::FromRow)]
pub struct UsageSlot {
    pub slot: DateTime<Utc>,
    pub model: String,
    pub usage_rows: i64,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub total_tokens: Option<i64>,
    pub cache_read_input_tokens: Option<i64>,
    pub cache_creation_input_tokens: Option<i64>,
    pub uncached_input_tokens: Option<i64>,
}

/// Slots rebuilt per transaction: progress survives a long backlog, and no statement nears
/// the statement timeout.
const SLOTS_PER_REFRESH: usize = 96;

/// Rebuild the slots in `[from, to)` that writes have touched since they were last built.
///
/// Refreshes of a project take turns (an advisory lock), so the last rollup written is always
/// from the newest snapshot. Only marks visible when a refresh starts are consumed; the
/// rebuild reads a later snapshot, so every write a consumed mark stands for is in it.
pub async fn refresh(db: &PgPool, project: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<(), sqlx::Error> {
    // The slots dirty now: writes landing meanwhile wait for the next request, so a reader
    // never chases a busy writer.
    let dirty: Vec<DateTime<Utc>> = sqlx::query_scalar(
        "select distinct slot from rollup_dirty where project_id = $1 and slot >= $2 and slot < $3 order by slot",
    )
    .bind(project)
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await?;
    for slots in dirty.chunks(SLOTS_PER_REFRESH) {
        rebuild(db, project, slots).await?;
    }
    Ok(())
}

/// The background refresher: keeps the rollups close to the writes, so a dashboard read rarely
/// rebuilds much. Reads stay exact either way: they rebuild what is still dirty in their window.
pub async fn refresh_forever(db: PgPool, every: std::time::Duration) {
    loop {
        tokio::time::sleep(every).await;
        if let Err(error) = refresh_everything(&db).await {
            tracing::warn!(%error, "background rollup refresh failed; retrying next round");
        }
    }
}

/// Rebuild every dirty slot of every project (the background refresher's round), so reads
/// after a burst of writes find little left to do.
pub async fn refresh_everything(db: &PgPool) -> Result<(), sqlx::Error> {
    let projects: Vec<String> =
        sqlx::query_scalar("select distinct project_id from rollup_dirty").fetch_all(db).await?;
    // Every instant a call can start at (years 1 to 9999).
    let first = DateTime::from_timestamp(-62_135_596_800, 0).expect("year 1");
    let last = DateTime::from_timestamp(253_402_300_800, 0).expect("year 10000");
    for project in projects {
        refresh(db, &project, first, last).await?;
    }
    Ok(())
}

/// Consume the marks of `slots` and rebuild their rollups, in one transaction.
async fn rebuild(db: &PgPool, project: &str, slots: &[DateTime<Utc>]) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query("select pg_advisory_xact_lock(hashtextextended('weave rollups ' || $1, 0))")
        .bind(project)
        .execute(&mut *tx)
        .await?;
    let mut slots: Vec<DateTime<Utc>> =
        sqlx::query_scalar("delete from rollup_dirty where project_id = $1 and slot = any($2) returning slot")
            .bind(project)
            .bind(slots)
            .fetch_all(&mut *tx)
            .await?;
    if slots.is_empty() {
        // Another refresh got there first.
        return tx.commit().await;
    }
    slots.sort_unstable();
    slots.dedup();
    for table in ["call_slots", "call_op_slots", "usage_slots", "usage_op_slots"] {
        sqlx::query(&format!("delete from {table} where project_id = $1 and slot = any($2)"))
            .bind(project)
            .bind(&slots)
            .execute(&mut *tx)
            .await?;
    }
    // One pass over the slots' calls fills both tables.
    sqlx::query(
        "with rolled as (
             select s.slot, grouping(c.op_name) = 1 as whole, c.op_name, c.parent_id is null as is_root,
                    count(*) as calls, count(c.exception) as errors,
                    coalesce(string_agg(float8send(c.latency_ms), ''::bytea), ''::bytea) as latencies
             from unnest($2::timestamptz[]) s(slot), lateral (
                 -- offset 0 keeps this a per-slot index range scan (the planner would flatten it).
                 select * from calls c where c.project_id = $1 and c.deleted_at is null
                     and c.started_at >= s.slot and c.started_at < s.slot + interval '15 minutes' offset 0
             ) c
             group by grouping sets ((s.slot), (s.slot, c.op_name, c.parent_id is null))
         ), whole as (
             insert into call_slots (project_id, slot, calls, errors, latencies)
             select $1, slot, calls, errors, latencies from rolled where whole order by slot
         )
         insert into call_op_slots (project_id, slot, op_name, is_root, calls, errors, latencies)
         select $1, slot, op_name, is_root, calls, errors, latencies from rolled where not whole order by slot",
    )
    .bind(project)
    .bind(&slots)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "with rolled as (
             select s.slot, grouping(c.op_name) = 1 as whole, c.op_name, c.parent_id is null as is_root, u.model,
                    count(*) as usage_rows,
                    weave_bigint_or_null(sum(u.input_tokens)) as input_tokens,
                    weave_bigint_or_null(sum(u.output_tokens)) as output_tokens,
                    weave_bigint_or_null(sum(u.total_tokens)) as total_tokens,
                    weave_bigint_or_null(sum(u.cache_read_input_tokens)) as cache_read_input_tokens,
                    weave_bigint_or_null(sum(u.cache_creation_input_tokens)) as cache_creation_input_tokens,
                    weave_bigint_or_null(sum(weave_uncached_input(
                        u.input_tokens, u.cache_read_input_tokens, u.cache_creation_input_tokens))) as uncached_input_tokens
             from unnest($2::timestamptz[]) s(slot), lateral (
                 select c.project_id, c.id, c.op_name, c.parent_id from calls c
                 where c.project_id = $1 and c.deleted_at is null
                     and c.started_at >= s.slot and c.started_at < s.slot + interval '15 minutes' offset 0
             ) c
             join call_usage u on u.project_id = c.project_id and u.call_id = c.id
             group by grouping sets ((s.slot, u.model), (s.slot, c.op_name, c.parent_id is null, u.model))
         ), whole as (
             insert into usage_slots (project_id, slot, model, usage_rows, input_tokens, output_tokens, total_tokens,
                                      cache_read_input_tokens, cache_creation_input_tokens, uncached_input_tokens)
             select $1, slot, model, usage_rows, input_tokens, output_tokens, total_tokens, cache_read_input_tokens,
                    cache_creation_input_tokens, uncached_input_tokens
             from rolled where whole order by slot, model
         )
         insert into usage_op_slots (project_id, slot, op_name, is_root, model, usage_rows, input_tokens, output_tokens,
                                     total_tokens, cache_read_input_tokens, cache_creation_input_tokens, uncached_input_tokens)
         select $1, slot, op_name, is_root, model, usage_rows, input_tokens, output_tokens, total_tokens,
                cache_read_input_tokens, cache_creation_input_tokens, uncached_input_tokens
         from rolled where not whole order by slot",
    )
    .bind(project)
    .bind(&slots)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Rollup rows of `[from, to)` matching `filter`, from the whole-slot table when it has no
/// condition, else from the per-op table (aliased `r` either way).
fn slot_rows<'a>(
    columns: &str,
    tables: (&str, &str),
    project: &'a str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    filter: &SlotFilter,
) -> QueryBuilder<'a, Postgres> {
    let whole = filter.op_names.is_none() && !filter.roots_only;
    let table = if whole { tables.0 } else { tables.1 };
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

/// Feed every call rollup row of `[from, to)` matching `filter` to `each`.
pub async fn for_each_call_slot(
    db: &PgPool,
    project: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    filter: &SlotFilter,
    mut each: impl FnMut(CallSlot),
) -> Result<(), sqlx::Error> {
    let mut qb =
        slot_rows("r.slot, r.calls, r.errors, r.latencies", ("call_slots", "call_op_slots"), project, from, to, filter);
    let mut rows = qb.build_query_as::<CallSlot>().fetch(db);
    while let Some(row) = rows.try_next().await? {
        each(row);
    }
    Ok(())
}

/// Feed every usage rollup row of `[from, to)` matching `filter` to `each`.
pub async fn for_each_usage_slot(
    db: &PgPool,
    project: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    filter: &SlotFilter,
    mut each: impl FnMut(UsageSlot),
) -> Result<(), sqlx::Error> {
    let mut qb = slot_rows(
        "r.slot, r.model, r.usage_rows, r.input_tokens, r.output_tokens, r.total_tokens, r.cache_read_input_tokens,
         r.cache_creation_input_tokens, r.uncached_input_tokens",
        ("usage_slots", "usage_op_slots"),
        project,
        from,
        to,
        filter,
    );
    let mut rows = qb.build_query_as::<UsageSlot>().fetch(db);
    while let Some(row) = rows.try_next().await? {
        each(row);
    }
    Ok(())
}
