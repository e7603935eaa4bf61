//! SQL for the price table: a project's price book, and `/cost/create|query|purge`.
//!
//! Rows travel as JSON records of the table (`to_jsonb` out, `jsonb_populate_recordset` in),
//! so the fields of a price are written down once, in `domain::costs::Price`.
use std::sync::Arc;

use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor, PgPool, Postgres, QueryBuilder};
use tokio::sync::OnceCell;

use super::expr::Condition;
use crate::domain::costs::{Price, PriceBook};

/// The project's own rows, with `p` the table alias.
fn own(project: String) -> QueryBuilder<'static, Postgres> {
    let mut qb = QueryBuilder::new(
        "select to_jsonb(p) from llm_token_prices p where p.pricing_level = 'project' and p.pricing_level_id = ",
    );
    qb.push_bind(project);
    qb
}

/// The default rows, with `p` the table alias.
fn defaults() -> QueryBuilder<'static, Postgres> {
    QueryBuilder::new("select to_jsonb(p) from llm_token_prices p where p.pricing_level = 'default'")
}

/// The default prices, read from the table once per process: only migrations write them (the
/// API never does), and reading their ~300 rows costs a few milliseconds, most of what a small
/// priced request costs. An operator who edits them by hand restarts the server.
#[derive(Debug, Default)]
pub struct Defaults(OnceCell<Arc<PriceBook>>);

/// Every price that applies to `project` (the defaults and its own rows): its price book.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn book(db: &PgPool, defaults: &Defaults, project: &str) -> Result<Arc<PriceBook>, sqlx::Error> {
    let defaults = defaults
        .0
        .get_or_try_init(|| async {
            let rows: Vec<Json<Price>> = self::defaults().build_query_scalar().fetch_all(db).await?;
            Ok::<_, sqlx::Error>(Arc::new(PriceBook::new(rows.into_iter().map(|row| row.0).collect())))
        })
        .await?;
    let own: Vec<Json<Price>> = self::own(project.to_string()).build_query_scalar().fetch_all(db).await?;
    Ok(if own.is_empty() { defaults.clone() } else { Arc::new(defaults.with(own.into_iter().map(|row| row.0))) })
}

/// Insert prices (each a whole row, project level).
#[tracing::instrument(level = "debug", skip_all, fields(prices = prices.len()))]
pub async fn create(conn: &mut PgConnection, prices: &[Price]) -> Result<(), sqlx::Error> {
    sqlx::query("insert into llm_token_prices select * from jsonb_populate_recordset(null::llm_token_prices, $1)")
        .bind(Json(prices))
        .execute(conn)
        .await?;
    Ok(())
}

/// Which rows a price query lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// The project's own rows (`/cost/query`).
    Project,
    /// The defaults that ship with the server (`/cost/query_defaults`).
    Defaults,
}

/// Prices of `project` matching `query`, ordered by `sort` (allow-listed columns) then id.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn query(
    db: impl PgExecutor<'_>,
    project: &str,
    listing: Listing,
    query: Option<&Condition>,
    sort: &[(&'static str, bool)],
    limit: Option<i64>,
    offset: Option<i64>,
) -> Result<Vec<Price>, sqlx::Error> {
    let mut qb = match listing {
        Listing::Project => own(project.to_string()),
        Listing::Defaults => defaults(),
    };
    if let Some(condition) = query {
        condition.push(&mut qb, "p");
    }
    qb.push(" order by ");
    for (column, descending) in sort {
        qb.push(format_args!("p.{column} {}, ", if *descending { "desc" } else { "asc" }));
    }
    qb.push(r#"p.id collate "C""#);
    if let Some(limit) = limit {
        qb.push(" limit ").push_bind(limit);
    }
    if let Some(offset) = offset {
        qb.push(" offset ").push_bind(offset);
    }
    let rows: Vec<Json<Price>> = qb.build_query_scalar().fetch_all(db).await?;
    Ok(rows.into_iter().map(|row| row.0).collect())
}

/// Delete the project's own rows with these ids; defaults are never deleted.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn purge(db: impl PgExecutor<'_>, project: &str, ids: &[String]) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "delete from llm_token_prices where pricing_level = 'project' and pricing_level_id = $1 and id = any($2)",
    )
    .bind(project)
    .bind(ids)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
