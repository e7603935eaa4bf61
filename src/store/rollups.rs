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

/// One slot's usage rows of one model (and op, root-ness), summed.
#[derive(Debug)]
pub struct UsageSlot {
    pub slot: DateTime<Utc>,
    pub model: String,
    pub rows: i64,
    pub input_tokens: i128,
    pub output_tokens: i128,
    pub total_tokens: i128,
    pub cache_read_input_tokens: i128,
    pub cache_creation_input_tokens: i128,
    pub uncached_input_tokens: i128,
}

/// Rebuild the slots in `[from, to)` that writes have touched since they were last built.
///
/// Refreshes of a project take turns (an advisory lock), so the last rollup written is always
/// from the newest snapshot. Only marks visible when the refresh starts are consumed; the
/// rebuild reads a later snapshot, so every write a consumed mark stands for is in it.
pub async fn refresh(db: &PgPool, project: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query("select pg_advisory_xact_lock(hashtextextended('weave rollups ' || $1, 0))")
        .bind(project)
        .execute(&mut *tx)
        .await?;
    let mut slots: Vec<DateTime<Utc>> = sqlx::query_scalar(
        "delete from rollup_dirty where project_id = $1 and slot >= $2 and slot < $3 returning slot",
    )
    .bind(project)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *tx)
    .await?;
    if slots.is_empty() {
        return tx.commit().await;
    }
    slots.sort_unstable();
    slots.dedup();
    for table in ["call_rollups", "usage_rollups"] {
        sqlx::query(&format!("delete from {table} where project_id = $1 and slot = any($2)"))
            .bind(project)
            .bind(&slots)
            .execute(&mut *tx)
            .await?;
    }
    // Each slot is an index range scan of calls_project_started.
    sqlx::query(
        "insert into call_rollups (project_id, slot, op_name, is_root, calls, errors, latencies)
         select $1, s.slot, c.op_name, c.parent_id is null, count(*), count(c.exception),
                coalesce(string_agg(float8send(c.latency_ms), ''::bytea), ''::bytea)
         from unnest($2::timestamptz[]) s(slot)
         join calls c on c.project_id = $1 and c.deleted_at is null
                     and c.started_at >= s.slot and c.started_at < s.slot + interval '15 minutes'
         group by s.slot, c.op_name, c.parent_id is null",
    )
    .bind(project)
    .bind(&slots)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "insert into usage_rollups (project_id, slot, op_name, is_root, model, usage_rows, input_tokens,
                                    output_tokens, total_tokens, cache_read_input_tokens,
                                    cache_creation_input_tokens, uncached_input_tokens)
         select $1, s.slot, c.op_name, c.parent_id is null, u.model, count(*), sum(u.input_tokens),
                sum(u.output_tokens), sum(u.total_tokens), sum(u.cache_read_input_tokens),
                sum(u.cache_creation_input_tokens),
                sum(weave_uncached_input(u.input_tokens, u.cache_read_input_tokens, u.cache_creation_input_tokens))
         from unnest($2::timestamptz[]) s(slot)
         join calls c on c.project_id = $1 and c.deleted_at is null
                     and c.started_at >= s.slot and c.started_at < s.slot + interval '15 minutes'
         join call_usage u on u.project_id = c.project_id and u.call_id = c.id
         group by s.slot, c.op_name, c.parent_id is null, u.model",
    )
    .bind(project)
    .bind(&slots)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Rollup rows of `[from, to)` matching `filter` (alias `r`).
fn slot_rows<'a>(
    select: &str,
    project: &'a str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    filter: &SlotFilter,
) -> QueryBuilder<'a, Postgres> {
    let mut qb = QueryBuilder::new(select);
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
    let mut qb = slot_rows("select r.slot, r.calls, r.errors, r.latencies from call_rollups r", project, from, to, filter);
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
    // Sums are numeric (a sum of bigints can pass i64); text carries them exactly.
    let mut qb = slot_rows(
        "select r.slot, r.model, r.usage_rows, r.input_tokens::text, r.output_tokens::text, r.total_tokens::text,
                r.cache_read_input_tokens::text, r.cache_creation_input_tokens::text, r.uncached_input_tokens::text
         from usage_rollups r",
        project,
        from,
        to,
        filter,
    );
    type Row = (DateTime<Utc>, String, i64, String, String, String, String, String, String);
    let mut rows = qb.build_query_as::<Row>().fetch(db);
    let number = |text: &str| text.parse::<i128>().map_err(|e| sqlx::Error::Decode(Box::new(e)));
    while let Some((slot, model, rows_count, input, output, total, cache_read, cache_creation, uncached)) =
        rows.try_next().await?
    {
        each(UsageSlot {
            slot,
            model,
            rows: rows_count,
            input_tokens: number(&input)?,
            output_tokens: number(&output)?,
            total_tokens: number(&total)?,
            cache_read_input_tokens: number(&cache_read)?,
            cache_creation_input_tokens: number(&cache_creation)?,
            uncached_input_tokens: number(&uncached)?,
        });
    }
    Ok(())
}
