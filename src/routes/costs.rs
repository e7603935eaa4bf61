//! The price table (API.md §6): `/cost/create`, `/cost/query`, `/cost/purge`.
use std::collections::{BTreeMap, HashSet};

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{check_paging, AppJson, Caller};
use super::shared::{Empty, SortBy};
use crate::domain::costs::Price;
use crate::domain::expr::{ids_named, Query};
use crate::domain::ingest::new_id;
use crate::domain::{ProjectId, Timestamp};
use crate::error::{ApiError, Result, ValidationDetail};
use crate::state::AppState;
use crate::store::expr::{compile, Target};
use crate::store::prices::{self as prices_store, Listing};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_costs))
        .routes(routes!(query_costs))
        .routes(routes!(query_default_costs))
        .routes(routes!(purge_costs))
}

/// One model's price, USD per token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CostInput {
    pub prompt_token_cost: f64,
    pub completion_token_cost: f64,
    #[serde(default)]
    pub cache_read_input_token_cost: Option<f64>,
    #[serde(default)]
    pub cache_creation_input_token_cost: Option<f64>,
    /// Default: now.
    #[serde(default)]
    pub effective_date: Option<Timestamp>,
    /// Default: `default`.
    #[serde(default)]
    pub provider_id: Option<String>,
    #[serde(default)]
    pub prompt_token_cost_unit: Option<String>,
    #[serde(default)]
    pub completion_token_cost_unit: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"project_id": "demo/app", "costs": {"my-finetune": {"prompt_token_cost": 2e-06, "completion_token_cost": 8e-06}}}))]
pub struct CostCreateReq {
    pub project_id: ProjectId,
    /// Prices by model (`llm_id`).
    pub costs: BTreeMap<String, CostInput>,
    /// Accepted and ignored: the key's user is recorded as `created_by`.
    #[serde(default)]
    pub wb_user_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CostCreateRes {
    /// `[id, llm_id]` for each row created.
    #[schema(value_type = Vec<Vec<String>>)]
    pub ids: Vec<(String, String)>,
}

/// Add project-level prices.
#[utoipa::path(post, path = "/cost/create", request_body = CostCreateReq, tag = "costs",
    responses((status = 200, body = CostCreateRes)))]
async fn create_costs(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<CostCreateReq>,
) -> Result<Json<CostCreateRes>> {
    caller.authorize(&req.project_id)?;
    let mut problems = Vec::new();
    let mut prices = Vec::new();
    for (llm_id, input) in req.costs {
        if llm_id.is_empty() || llm_id.len() > crate::domain::call::MAX_OP_NAME_BYTES {
            problems.push(ValidationDetail::value_error(
                &["costs"],
                "Value error, llm_id must be 1 to 1024 bytes",
                json!(llm_id),
            ));
        }
        let rates = [
            ("prompt_token_cost", Some(input.prompt_token_cost)),
            ("completion_token_cost", Some(input.completion_token_cost)),
            ("cache_read_input_token_cost", input.cache_read_input_token_cost),
            ("cache_creation_input_token_cost", input.cache_creation_input_token_cost),
        ];
        for (name, rate) in rates {
            if let Some(rate) = rate.filter(|r| !r.is_finite() || *r < 0.0) {
                problems.push(ValidationDetail::value_error(
                    &["costs", &llm_id, name],
                    "Value error, a price is a number ≥ 0",
                    json!(rate),
                ));
            }
        }
        prices.push(Price {
            id: new_id(),
            pricing_level: "project".into(),
            pricing_level_id: req.project_id.to_string(),
            provider_id: input.provider_id.unwrap_or_else(|| "default".into()),
            prompt_token_cost: input.prompt_token_cost,
            completion_token_cost: input.completion_token_cost,
            cache_read_input_token_cost: input.cache_read_input_token_cost.unwrap_or(0.0),
            cache_creation_input_token_cost: input.cache_creation_input_token_cost.unwrap_or(0.0),
            prompt_token_cost_unit: input.prompt_token_cost_unit.unwrap_or_else(|| "USD".into()),
            completion_token_cost_unit: input.completion_token_cost_unit.unwrap_or_else(|| "USD".into()),
            effective_date: input.effective_date.unwrap_or_else(Timestamp::now),
            created_at: Timestamp::now(),
            created_by: caller.0.user_id.clone(),
            llm_id,
        });
    }
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    let mut tx = state.db.begin().await?;
    prices_store::create(&mut tx, &prices).await?;
    tx.commit().await?;
    Ok(Json(CostCreateRes { ids: prices.into_iter().map(|p| (p.id, p.llm_id)).collect() }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"project_id": "demo/app", "query": {"$expr": {"$eq": [{"$getField": "llm_id"}, {"$literal": "gpt-4o"}]}}, "limit": 10}))]
pub struct CostQueryReq {
    pub project_id: ProjectId,
    /// Keys to return (default: all).
    #[serde(default)]
    pub fields: Option<Vec<String>>,
    /// A query expression over the price fields.
    #[serde(default)]
    pub query: Option<Query>,
    #[serde(default)]
    pub sort_by: Option<Vec<SortBy>>,
    #[serde(default)]
    pub limit: Option<i64>,
    #[serde(default)]
    pub offset: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CostQueryRes {
    #[schema(value_type = Vec<Object>)]
    pub results: Vec<Map<String, Value>>,
}

/// The project's own prices, as Weave answers (the shipped defaults: `/cost/query_defaults`).
#[utoipa::path(post, path = "/cost/query", request_body = CostQueryReq, tag = "costs",
    responses((status = 200, body = CostQueryRes)))]
async fn query_costs(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<CostQueryReq>,
) -> Result<Json<CostQueryRes>> {
    list_prices(&state, &caller, req, Listing::Project).await.map(Json)
}

/// The default prices that ship with the server (those a project's calls fall back to); the
/// same request as `/cost/query`.
#[utoipa::path(post, path = "/cost/query_defaults", request_body = CostQueryReq, tag = "costs",
    responses((status = 200, body = CostQueryRes)))]
async fn query_default_costs(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<CostQueryReq>,
) -> Result<Json<CostQueryRes>> {
    list_prices(&state, &caller, req, Listing::Defaults).await.map(Json)
}

async fn list_prices(state: &AppState, caller: &Caller, req: CostQueryReq, listing: Listing) -> Result<CostQueryRes> {
    caller.authorize(&req.project_id)?;
    check_paging(req.limit, req.offset)?;
    let condition = req.query.as_ref().map(|q| compile(q, Target::Prices)).transpose().map_err(ApiError::BadRequest)?;
    let sort = req
        .sort_by
        .unwrap_or_default()
        .iter()
        .map(|s| match Price::field(&s.field) {
            Some((column, _)) => Ok((column, s.direction.is_descending())),
            None => Err(ApiError::BadRequest(format!("Field {} is not allowed", s.field))),
        })
        .collect::<Result<Vec<_>>>()?;
    let prices = prices_store::query(
        &state.db,
        req.project_id.as_str(),
        listing,
        condition.as_ref(),
        &sort,
        req.limit,
        req.offset,
    )
    .await?;
    let keep: Option<HashSet<String>> = req.fields.map(|f| f.into_iter().collect());
    let results = prices
        .iter()
        .map(|price| {
            let mut out = price.to_json();
            if let Some(keep) = &keep {
                out.retain(|k, _| keep.contains(k));
            }
            out
        })
        .collect();
    Ok(CostQueryRes { results })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"project_id": "demo/app", "query": {"$expr": {"$eq": [{"$getField": "id"}, {"$literal": "a-price-id"}]}}}))]
pub struct CostPurgeReq {
    pub project_id: ProjectId,
    /// Which of the project's own prices to delete.
    pub query: Query,
}

/// Delete project-level prices by id (defaults are never deleted). As in Weave, the query may
/// only name ids (`$eq` or `$in` on `id`, or `$or` of those); anything else is 400.
#[utoipa::path(post, path = "/cost/purge", request_body = CostPurgeReq, tag = "costs",
    responses((status = 200, body = Empty)))]
async fn purge_costs(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<CostPurgeReq>,
) -> Result<Json<Empty>> {
    caller.authorize(&req.project_id)?;
    let Some(ids) = ids_named(&req.query.expr) else {
        return Err(ApiError::BadRequest("Can only purge costs by specifying one or more cost ids".into()));
    };
    prices_store::purge(&state.db, req.project_id.as_str(), &ids).await?;
    Ok(Json(Empty {}))
}
