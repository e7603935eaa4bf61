//! SQL for the price table: a project's price book, and `/cost/create|query|purge`.
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor, Postgres, QueryBuilder};

use super::query::Condition;
use crate::domain::costs::Price;

#[derive(Debug, sqlx::FromRow)]
struct PriceRow {
    id: String,
    llm_id: String,
    provider_id: String,
    pricing_level: String,
    pricing_level_id: String,
    prompt_token_cost: f64,
    completion_token_cost: f64,
    cache_read_input_token_cost: f64,
    cache_creation_input_token_cost: f64,
    prompt_token_cost_unit: String,
    completion_token_cost_unit: String,
    effective_date: DateTime<Utc>,
    created_at: DateTime<Utc>,
    created_by: String,
}

impl From<PriceRow> for Price {
    fn from(r: PriceRow) -> Self {
        Price {
            id: r.id,
            llm_id: r.llm_id,
            provider_id: r.provider_id,
            pricing_level: r.pricing_level,
            pricing_level_id: r.pricing_level_id,
            prompt_token_cost: r.prompt_token_cost,
            completion_token_cost: r.completion_token_cost,
            cache_read_input_token_cost: r.cache_read_input_token_cost,
            cache_creation_input_token_cost: r.cache_creation_input_token_cost,
            prompt_token_cost_unit: r.prompt_token_cost_unit,
            completion_token_cost_unit: r.completion_token_cost_unit,
            effective_date: r.effective_date,
            created_at: r.created_at,
            created_by: r.created_by,
        }
    }
}

const COLUMNS: &str = "p.id, p.llm_id, p.provider_id, p.pricing_level, p.pricing_level_id, p.prompt_token_cost, \
     p.completion_token_cost, p.cache_read_input_token_cost, p.cache_creation_input_token_cost, \
     p.prompt_token_cost_unit, p.completion_token_cost_unit, p.effective_date, p.created_at, p.created_by";

/// The rows that apply to `project`: the defaults and its own, with `p` the table alias.
fn applicable(project: String) -> QueryBuilder<'static, Postgres> {
    let mut qb = QueryBuilder::new(format!(
        "select {COLUMNS} from llm_token_prices p where (p.pricing_level = 'default' or \
         (p.pricing_level = 'project' and p.pricing_level_id = "
    ));
    qb.push_bind(project).push("))");
    qb
}

/// Every price that applies to `project` (its price book).
pub async fn for_project(db: impl PgExecutor<'_>, project: &str) -> Result<Vec<Price>, sqlx::Error> {
    let rows: Vec<PriceRow> = applicable(project.to_string()).build_query_as().fetch_all(db).await?;
    Ok(rows.into_iter().map(Price::from).collect())
}

/// A project-level price to create.
pub struct NewPrice {
    pub id: String,
    pub llm_id: String,
    pub provider_id: String,
    pub prompt_token_cost: f64,
    pub completion_token_cost: f64,
    pub cache_read_input_token_cost: f64,
    pub cache_creation_input_token_cost: f64,
    pub prompt_token_cost_unit: String,
    pub completion_token_cost_unit: String,
    pub effective_date: DateTime<Utc>,
}

pub async fn create(
    conn: &mut PgConnection,
    project: &str,
    user: &str,
    prices: &[NewPrice],
) -> Result<(), sqlx::Error> {
    for p in prices {
        sqlx::query(
            "insert into llm_token_prices (id, pricing_level, pricing_level_id, provider_id, llm_id, prompt_token_cost,
                 completion_token_cost, cache_read_input_token_cost, cache_creation_input_token_cost,
                 prompt_token_cost_unit, completion_token_cost_unit, effective_date, created_by)
             values ($1, 'project', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&p.id)
        .bind(project)
        .bind(&p.provider_id)
        .bind(&p.llm_id)
        .bind(p.prompt_token_cost)
        .bind(p.completion_token_cost)
        .bind(p.cache_read_input_token_cost)
        .bind(p.cache_creation_input_token_cost)
        .bind(&p.prompt_token_cost_unit)
        .bind(&p.completion_token_cost_unit)
        .bind(p.effective_date)
        .bind(user)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Prices that apply to `project` and match `query`, ordered by `sort` (allow-listed columns)
/// then id.
pub async fn query(
    db: impl PgExecutor<'_>,
    project: &str,
    query: Option<&Condition>,
    sort: &[(&'static str, bool)],
    limit: Option<i64>,
    offset: Option<i64>,
) -> Result<Vec<Price>, sqlx::Error> {
    let mut qb = applicable(project.to_string());
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
    let rows: Vec<PriceRow> = qb.build_query_as().fetch_all(db).await?;
    Ok(rows.into_iter().map(Price::from).collect())
}

/// Delete the project's own rows matching `query`; defaults are never deleted.
pub async fn purge(db: impl PgExecutor<'_>, project: &str, query: &Condition) -> Result<u64, sqlx::Error> {
    let mut qb: QueryBuilder<Postgres> =
        QueryBuilder::new("delete from llm_token_prices p where p.pricing_level = 'project' and p.pricing_level_id = ");
    qb.push_bind(project.to_string());
    query.push(&mut qb, "p");
    Ok(qb.build().execute(db).await?.rows_affected())
}
