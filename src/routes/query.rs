//! `POST /calls/stream_query` (API.md §2.2): calls as JSON lines, streamed from the database
//! row by row through a small channel, so memory stays flat however many calls match.
use std::collections::HashSet;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::calls::call_from_row;
use super::extract::{check_paging, selection, AppJson, Caller};
use crate::domain::call::Call;
use crate::domain::costs::PriceBook;
use crate::domain::filter::CallsFilter;
use crate::domain::query::{FieldRef, Query};
use crate::domain::ProjectId;
use crate::error::{ApiError, Result};
use crate::store::calls::{self as calls_store, CallRow, SortKey};
use crate::store::prices as prices_store;
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stream_query))
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortDirection {
    Asc,
    Desc,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SortBy {
    /// A top-level field, `summary.weave.latency_ms|status|trace_name`, or a JSON path under
    /// `inputs.`, `output.`, `attributes.`, `summary.`.
    pub field: String,
    pub direction: SortDirection,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
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
    /// Fields to return (the identifying fields are always returned).
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
    check_paging(req.limit, req.offset)?;
    let sort: Vec<(SortKey, bool)> = req
        .sort_by
        .unwrap_or_default()
        .iter()
        .map(|s| sort_key(&s.field).map(|key| (key, matches!(s.direction, SortDirection::Desc))))
        .collect::<Result<_>>()?;
    let keep: Option<HashSet<String>> = req.columns.map(|columns| {
        let requested = columns.iter().map(|c| c.split('.').next().unwrap_or_default().to_string());
        requested.chain(IDENTIFYING.iter().map(|c| c.to_string())).collect()
    });
    let selection = selection(req.filter, req.query.as_ref())?;
    let include_costs = req.include_costs == Some(true);
    let book = if include_costs {
        Some(PriceBook::new(prices_store::for_project(&state.db, req.project_id.as_str()).await?))
    } else {
        None
    };
    let query = calls_store::stream_query(
        req.project_id.as_str().to_string(),
        &selection,
        &sort,
        req.limit,
        req.offset,
        include_costs,
    );

    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes>>(64);
    let db = state.db.clone();
    tokio::spawn(async move {
        let mut query = query;
        let mut rows = query.build_query_as::<CallRow>().fetch(&db);
        loop {
            let item = match rows.try_next().await {
                Ok(Some(row)) => Ok(render_line(row, keep.as_ref(), book.as_ref())),
                Ok(None) => break,
                Err(error) => Err(ApiError::from(error)),
            };
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break; // the client went away, or the query failed
            }
        }
    });

    // Wait for the first line, so a query that fails at once gets a proper error status.
    let first = match rx.recv().await {
        Some(Err(error)) => return Err(error),
        first => first,
    };
    let lines = futures_util::stream::unfold((first, rx), |(pending, mut rx)| async move {
        let item = match pending {
            Some(item) => item,
            None => rx.recv().await?,
        };
        if let Err(error) = &item {
            tracing::error!(%error, "stream_query failed mid-stream");
        }
        Some((item, (None, rx)))
    });
    Ok(([(header::CONTENT_TYPE, "application/jsonl")], Body::from_stream(lines)).into_response())
}

fn render_line(row: CallRow, keep: Option<&HashSet<String>>, book: Option<&PriceBook>) -> Bytes {
    let (usage, started_at) = (row.usage(), row.started_at);
    let mut call = call_from_row(row);
    if let Some(book) = book {
        super::costs::attach_costs(&mut call, super::costs::call_costs(&usage, started_at, book));
    }
    let mut value = serde_json::to_value(call).unwrap_or(Value::Null);
    if let (Some(keep), Value::Object(map)) = (keep, &mut value) {
        map.retain(|key, _| keep.contains(key));
    }
    let mut line = serde_json::to_vec(&value).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}
