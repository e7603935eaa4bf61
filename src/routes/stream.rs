//! `POST /calls/stream_query` (API.md §2.2): calls as JSON lines, streamed from the database
//! row by row through a small channel, so memory stays flat however many calls match.
use std::collections::HashSet;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{check_paging, selection, AppJson, Caller};
use super::shared::SortBy;
use crate::domain::call::{raw_json, Call};
use crate::domain::costs::{self, PriceBook};
use crate::domain::expr::{FieldRef, Query};
use crate::domain::filter::CallsFilter;
use crate::domain::ProjectId;
use crate::error::{ApiError, Result};
use crate::state::AppState;
use crate::store::calls::{self as calls_store, CallRow, Page, SortKey};
use crate::store::prices as prices_store;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stream_query))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"project_id": "demo/app", "filter": {"trace_roots_only": true}, "sort_by": [{"field": "started_at", "direction": "desc"}], "limit": 5}))]
pub struct CallsQueryReq {
    pub project_id: ProjectId,
    #[serde(default)]
    pub filter: Option<CallsFilter>,
    /// A query expression (`{"$expr": ...}`).
    #[serde(default)]
    pub query: Option<Query>,
    /// Default: `started_at` ascending, then `id` in byte order.
    #[serde(default)]
    pub sort_by: Option<Vec<SortBy>>,
    #[serde(default)]
    pub limit: Option<i64>,
    #[serde(default)]
    pub offset: Option<i64>,
    /// Fields to fill (the identifying fields always are; the others keep their keys with empty
    /// values). Weave's storage names (`output_dump`, `summary_dump`, ...) are accepted.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Adds `summary.weave.costs` to each call.
    #[serde(default)]
    pub include_costs: Option<bool>,
    /// Accepted and ignored.
    #[serde(default)]
    pub expand_columns: Option<Vec<String>>,
    /// Accepted and ignored.
    #[serde(default)]
    pub include_feedback: Option<bool>,
    /// Accepted and ignored.
    #[serde(default)]
    pub include_storage_size: Option<bool>,
    /// Accepted and ignored.
    #[serde(default)]
    pub include_total_storage_size: Option<bool>,
    /// Accepted and ignored.
    #[serde(default)]
    pub include_usernames: Option<bool>,
    /// Accepted and ignored (every read here is of the latest version).
    #[serde(default)]
    pub latest_only: Option<bool>,
    /// Accepted and ignored.
    #[serde(default)]
    pub return_expanded_column_values: Option<bool>,
}

/// Fields always returned, whatever `columns` says.
const IDENTIFYING: [&str; 5] = ["id", "project_id", "trace_id", "op_name", "started_at"];

/// The call fields `columns` names, as Weave reads them: a dotted name selects its first part
/// (`inputs.a` → `inputs`), storage names select their field (`output_dump` → `output`),
/// `summary` brings the fields its computed part needs, names of other stored data are
/// accepted and select nothing more.
fn selected_fields(columns: &[String]) -> HashSet<String> {
    let mut keep: HashSet<String> = IDENTIFYING.iter().map(|c| c.to_string()).collect();
    for column in columns {
        let base = column.split('.').next().unwrap_or_default();
        let base = base.strip_suffix("_dump").unwrap_or(base);
        if base == "summary" {
            keep.extend(["ended_at", "exception", "display_name"].map(String::from));
        }
        keep.insert(base.to_string());
    }
    keep
}

/// A call with only the selected fields filled: the others keep their keys, as the SDK's
/// `Call` model wants them, with empty values (`{}` for attributes and inputs, null else) and,
/// for the summary, just its computed `weave` part.
fn shape(mut call: Call, keep: &HashSet<String>) -> Call {
    let drop = |field: &str| !keep.contains(field);
    if drop("attributes") {
        call.attributes = raw_json("{}");
    }
    if drop("inputs") {
        call.inputs = raw_json("{}");
    }
    if drop("output") {
        call.output = raw_json("null");
    }
    if drop("summary") {
        let weave = call.summary.get_mut("weave").map(Value::take).unwrap_or_else(|| Value::Object(Default::default()));
        call.summary = serde_json::json!({ "weave": weave });
    }
    let clear = |value: &mut Option<String>, field: &str| {
        if drop(field) {
            *value = None;
        }
    };
    clear(&mut call.display_name, "display_name");
    clear(&mut call.parent_id, "parent_id");
    clear(&mut call.thread_id, "thread_id");
    clear(&mut call.turn_id, "turn_id");
    clear(&mut call.exception, "exception");
    clear(&mut call.wb_user_id, "wb_user_id");
    clear(&mut call.wb_run_id, "wb_run_id");
    if drop("ended_at") {
        call.ended_at = None;
    }
    if drop("deleted_at") {
        call.deleted_at = None;
    }
    if drop("wb_run_step") {
        call.wb_run_step = None;
    }
    if drop("wb_run_step_end") {
        call.wb_run_step_end = None;
    }
    call
}

/// Resolve a sort field with the query language's field rules; unknown fields are a 400.
fn sort_key(field: &str) -> Result<SortKey> {
    Ok(match FieldRef::resolve(field) {
        Some(FieldRef::Column(column)) => SortKey::Column(column),
        Some(FieldRef::Computed("latency_ms")) => SortKey::Column("latency_ms"),
        Some(FieldRef::Computed("status")) => SortKey::Status,
        Some(FieldRef::Computed(_)) => SortKey::TraceName,
        Some(FieldRef::Json(root, path)) => SortKey::JsonPath(root, path),
        None => return Err(ApiError::BadRequest(format!("Field {field} is not allowed"))),
    })
}

/// Calls matching a filter, one JSON object per line.
#[utoipa::path(post, path = "/calls/stream_query", request_body = CallsQueryReq, tag = "calls",
    responses((status = 200, content_type = "application/jsonl", body = Call, description = "One call per line")))]
async fn stream_query(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<CallsQueryReq>,
) -> Result<Response> {
    caller.authorize(&req.project_id)?;
    // Held until the last line is sent.
    let heavy = state.heavy.enter(&caller.0.key_id).await?;
    check_paging(req.limit, req.offset)?;
    let sort = req
        .sort_by
        .unwrap_or_default()
        .iter()
        .map(|s| sort_key(&s.field).map(|key| (key, s.direction.is_descending())))
        .collect::<Result<_>>()?;
    let page = Page { sort, limit: req.limit, offset: req.offset };
    let keep: Option<HashSet<String>> = req.columns.as_deref().map(selected_fields);
    let selection = selection(&req.project_id, req.filter, req.query.as_ref())?;
    let include_costs = req.include_costs == Some(true);
    let book = if include_costs {
        Some(prices_store::book(&state.db, &state.default_prices, req.project_id.as_str()).await?)
    } else {
        None
    };
    let mut rows =
        calls_store::stream(state.db.clone(), req.project_id.as_str().to_string(), &selection, &page, include_costs);

    // Wait for the first row, so a query that fails at once gets a proper error status.
    let first = match rows.recv().await {
        Some(Err(error)) => return Err(error.into()),
        first => first,
    };
    let lines = futures_util::stream::unfold(
        (first, rows, keep, book, heavy),
        |(pending, mut rows, keep, book, heavy)| async move {
            let item = match pending {
                Some(item) => item,
                None => rows.recv().await?,
            };
            let line = item.map(|row| render_line(row, keep.as_ref(), book.as_deref())).map_err(|error| {
                tracing::error!(%error, "stream_query failed mid-stream");
                ApiError::from(error)
            });
            Some((line, (None, rows, keep, book, heavy)))
        },
    );
    Ok(([(header::CONTENT_TYPE, "application/jsonl")], Body::from_stream(lines)).into_response())
}

fn render_line(row: CallRow, keep: Option<&HashSet<String>>, book: Option<&PriceBook>) -> Bytes {
    let (usage, started_at) = (row.usage(), row.started_at);
    let mut call = Call::from(row);
    if let Some(book) = book {
        call.attach_costs(costs::call_costs(&usage, started_at, book));
    }
    if let Some(keep) = keep {
        call = shape(call, keep);
    }
    let mut line = serde_json::to_vec(&call).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}
