//! Tables (API.md §11.2): `/table/create`, `/table/create_from_digests`, `/table/update`,
//! `/table/query`, `/table/query_stream`, `/table/query_stats`, `/table/query_stats_batch`.
//! Rows are content-addressed with Weave's digest; a table's digest hashes its row digests.
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{check_paging, AppJson, Caller};
use super::objects::check_expected_digest;
use super::shared::SortBy;
use crate::domain::digest::{table_digest, value_digest};
use crate::domain::ProjectId;
use crate::error::{ApiError, Result};
use crate::state::AppState;
use crate::store::projects;
use crate::store::tables::{self as tables_store, RowQuery, TableRow};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_table))
        .routes(routes!(create_table_from_digests))
        .routes(routes!(update_table))
        .routes(routes!(query_table))
        .routes(routes!(query_table_stream))
        .routes(routes!(table_stats))
        .routes(routes!(table_stats_batch))
}

/// Most rows a table may hold (its row digests are handled whole when it is updated).
pub const MAX_TABLE_ROWS: usize = 1_000_000;

/// A row: a JSON object.
type Row = Map<String, Value>;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TableForInsert {
    pub project_id: ProjectId,
    /// The rows, in order (each a JSON object).
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<Row>,
    /// A digest the client computed; a different one answers 409.
    #[serde(default)]
    pub expected_digest: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"table": {"project_id": "demo/app", "rows": [{"x": 1}, {"x": 2}]}}))]
pub struct TableCreateReq {
    pub table: TableForInsert,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TableCreateRes {
    /// `weave:///<project>/table/<digest>` names the table.
    pub digest: String,
    /// Each row's digest, in order (`.../id/<row digest>` names a row).
    pub row_digests: Vec<String>,
}

/// The digest and canonical text of each row.
fn hash_rows(rows: &[Row]) -> Vec<(String, String)> {
    rows.iter().map(|row| value_digest(&Value::Object(row.clone()))).collect()
}

fn check_size(rows: usize) -> Result<()> {
    if rows > MAX_TABLE_ROWS {
        return Err(ApiError::PayloadTooLarge(format!("a table holds at most {MAX_TABLE_ROWS} rows")));
    }
    Ok(())
}

/// Store a table of rows (the same rows in the same order are the same table).
#[utoipa::path(post, path = "/table/create", request_body = TableCreateReq, tag = "tables",
    responses((status = 200, body = TableCreateRes), (status = 409, description = "`expected_digest` differs from the server's", body = crate::error::ErrorBody)))]
async fn create_table(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<TableCreateReq>,
) -> Result<Json<TableCreateRes>> {
    let table = req.table;
    caller.authorize(&table.project_id)?;
    check_size(table.rows.len())?;
    let hashed = hash_rows(&table.rows);
    let row_digests: Vec<String> = hashed.iter().map(|(d, _)| d.clone()).collect();
    let digest = table_digest(row_digests.iter().map(String::as_str));
    check_expected_digest(table.expected_digest.as_deref(), &digest, &format!("table ({} rows)", row_digests.len()))?;
    let project = table.project_id.as_str();
    let mut tx = state.db.begin().await?;
    projects::register(&mut *tx, &[project]).await?;
    tables_store::insert_rows(&mut tx, project, &hashed).await?;
    tables_store::insert_table(&mut tx, project, &digest, &row_digests).await?;
    tx.commit().await?;
    Ok(Json(TableCreateRes { digest, row_digests }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"project_id": "demo/app", "row_digests": ["JPVyYA4VDTIwE4OFqgAGyhuZO0a7Qn90bMaQyY2TJBM", "YTYlqmU0Pbsbmr5qusZ3P1yRvWDT8vX34urmnh24sic"]}))]
pub struct TableCreateFromDigestsReq {
    pub project_id: ProjectId,
    /// Digests of rows stored already, in order.
    pub row_digests: Vec<String>,
    #[serde(default)]
    pub expected_digest: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TableCreateFromDigestsRes {
    pub digest: String,
}

/// Store a table of rows stored already (how the SDK uploads a large table in parts).
#[utoipa::path(post, path = "/table/create_from_digests", request_body = TableCreateFromDigestsReq, tag = "tables",
    responses((status = 200, body = TableCreateFromDigestsRes), (status = 404, description = "A row digest is not a stored row", body = crate::error::ErrorBody),
               (status = 409, description = "`expected_digest` differs from the server's", body = crate::error::ErrorBody)))]
async fn create_table_from_digests(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<TableCreateFromDigestsReq>,
) -> Result<Json<TableCreateFromDigestsRes>> {
    caller.authorize(&req.project_id)?;
    check_size(req.row_digests.len())?;
    let digest = table_digest(req.row_digests.iter().map(String::as_str));
    check_expected_digest(req.expected_digest.as_deref(), &digest, &format!("table ({} rows)", req.row_digests.len()))?;
    let project = req.project_id.as_str();
    let mut distinct = req.row_digests.clone();
    distinct.sort();
    distinct.dedup();
    let mut tx = state.db.begin().await?;
    let known = tables_store::count_known_rows(&mut *tx, project, &distinct).await?;
    if known != distinct.len() as i64 {
        return Err(ApiError::NotFound(format!(
            "{} of the {} row digests are not stored rows of this project",
            distinct.len() as i64 - known,
            distinct.len()
        )));
    }
    projects::register(&mut *tx, &[project]).await?;
    tables_store::insert_table(&mut tx, project, &digest, &req.row_digests).await?;
    tx.commit().await?;
    Ok(Json(TableCreateFromDigestsRes { digest }))
}

/// One change to a table: `{"append": {"row"}}`, `{"pop": {"index"}}` or
/// `{"insert": {"index", "row"}}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum TableUpdateSpec {
    Append(AppendSpec),
    Pop(PopSpec),
    Insert(InsertSpec),
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppendSpec {
    #[schema(value_type = Object)]
    pub row: Row,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PopSpec {
    pub index: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InsertSpec {
    pub index: i64,
    #[schema(value_type = Object)]
    pub row: Row,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"project_id": "demo/app", "base_digest": "ed8bd1f8cb829eeb6b3fef95a7cd8401f7e5af825c4c9aa144a1ceb9f32c3654", "updates": [{"append": {"row": {"x": 3}}}]}))]
pub struct TableUpdateReq {
    pub project_id: ProjectId,
    /// The table to start from (it is kept; the result is a new table).
    pub base_digest: String,
    /// Applied in order.
    pub updates: Vec<TableUpdateSpec>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TableUpdateRes {
    pub digest: String,
    /// The digest of each row appended, popped or inserted, in update order.
    pub updated_row_digests: Vec<String>,
}

/// Make a new table from a stored one and a list of changes.
#[utoipa::path(post, path = "/table/update", request_body = TableUpdateReq, tag = "tables",
    responses((status = 200, body = TableUpdateRes), (status = 404, description = "No such base table", body = crate::error::ErrorBody)))]
async fn update_table(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<TableUpdateReq>,
) -> Result<Json<TableUpdateRes>> {
    caller.authorize(&req.project_id)?;
    let project = req.project_id.as_str();
    let Some(mut digests) = tables_store::row_digests(&state.db, project, &req.base_digest).await? else {
        return Err(ApiError::NotFound(format!("Table {project}:{} not found", req.base_digest)));
    };
    let mut new_rows = Vec::new();
    let mut updated = Vec::with_capacity(req.updates.len());
    for spec in req.updates {
        let in_range = |index: i64, len: usize| usize::try_from(index).ok().filter(|i| *i <= len);
        match spec {
            TableUpdateSpec::Append(AppendSpec { row }) => {
                let (digest, dump) = value_digest(&Value::Object(row));
                digests.push(digest.clone());
                updated.push(digest.clone());
                new_rows.push((digest, dump));
            }
            TableUpdateSpec::Pop(PopSpec { index }) => {
                let i = in_range(index, digests.len()).filter(|i| *i < digests.len());
                let i = i.ok_or_else(|| ApiError::BadRequest("Index out of range".into()))?;
                updated.push(digests.remove(i));
            }
            TableUpdateSpec::Insert(InsertSpec { index, row }) => {
                let i =
                    in_range(index, digests.len()).ok_or_else(|| ApiError::BadRequest("Index out of range".into()))?;
                let (digest, dump) = value_digest(&Value::Object(row));
                digests.insert(i, digest.clone());
                updated.push(digest.clone());
                new_rows.push((digest, dump));
            }
        }
    }
    check_size(digests.len())?;
    let digest = table_digest(digests.iter().map(String::as_str));
    let mut tx = state.db.begin().await?;
    tables_store::insert_rows(&mut tx, project, &new_rows).await?;
    tables_store::insert_table(&mut tx, project, &digest, &digests).await?;
    tx.commit().await?;
    Ok(Json(TableUpdateRes { digest, updated_row_digests: updated }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TableRowFilter {
    /// Only these rows (each occurrence keeps its position).
    #[serde(default, deserialize_with = "crate::domain::bounded_list")]
    pub row_digests: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"project_id": "demo/app", "digest": "ed8bd1f8cb829eeb6b3fef95a7cd8401f7e5af825c4c9aa144a1ceb9f32c3654", "limit": 100, "offset": 0}))]
pub struct TableQueryReq {
    pub project_id: ProjectId,
    pub digest: String,
    #[serde(default)]
    pub filter: Option<TableRowFilter>,
    #[serde(default)]
    pub limit: Option<i64>,
    #[serde(default)]
    pub offset: Option<i64>,
    /// Dot-separated paths into the row; default: the table's order.
    #[serde(default)]
    pub sort_by: Option<Vec<SortBy>>,
}

/// One row as read back (`TableRowSchema`).
#[derive(Debug, Serialize, ToSchema)]
pub struct TableRowRes {
    pub digest: String,
    #[schema(value_type = Object)]
    pub val: Box<RawValue>,
    /// The row's position in the table.
    pub original_index: i32,
}

impl From<TableRow> for TableRowRes {
    fn from(row: TableRow) -> Self {
        let val =
            RawValue::from_string(row.val_dump).unwrap_or_else(|_| RawValue::from_string("null".into()).expect("JSON"));
        TableRowRes { digest: row.digest, val, original_index: row.original_index }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TableQueryRes {
    pub rows: Vec<TableRowRes>,
}

/// The row query a request asks for (400 for a malformed sort path).
fn row_query(req: TableQueryReq) -> Result<RowQuery> {
    check_paging(req.limit, req.offset)?;
    let sort = req
        .sort_by
        .unwrap_or_default()
        .into_iter()
        .map(|s| {
            let path: Vec<String> = s.field.split('.').map(str::to_string).collect();
            if path.iter().any(String::is_empty) {
                return Err(ApiError::BadRequest(format!("Invalid sort field {:?}", s.field)));
            }
            Ok((path, s.direction.is_descending()))
        })
        .collect::<Result<_>>()?;
    Ok(RowQuery { row_digests: req.filter.and_then(|f| f.row_digests), sort, limit: req.limit, offset: req.offset })
}

/// Rows of a table, in its order unless sorted (an unknown table has none).
#[utoipa::path(post, path = "/table/query", request_body = TableQueryReq, tag = "tables",
    responses((status = 200, body = TableQueryRes)))]
async fn query_table(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<TableQueryReq>,
) -> Result<Json<TableQueryRes>> {
    caller.authorize(&req.project_id)?;
    let (project, digest) = (req.project_id.to_string(), req.digest.clone());
    let rows = tables_store::query_rows(&state.db, &project, &digest, &row_query(req)?).await?;
    Ok(Json(TableQueryRes { rows: rows.into_iter().map(TableRowRes::from).collect() }))
}

/// The same rows as `/table/query`, one JSON object a line, streamed.
#[utoipa::path(post, path = "/table/query_stream", request_body = TableQueryReq, tag = "tables",
    responses((status = 200, content_type = "application/jsonl", body = TableRowRes, description = "One row per line")))]
async fn query_table_stream(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<TableQueryReq>,
) -> Result<Response> {
    caller.authorize(&req.project_id)?;
    let (project, digest) = (req.project_id.to_string(), req.digest.clone());
    let mut rows = tables_store::stream_rows(state.db.clone(), project, digest, &row_query(req)?);
    let first = match rows.recv().await {
        Some(Err(error)) => return Err(error.into()),
        first => first,
    };
    let lines = futures_util::stream::unfold((first, rows), |(pending, mut rows)| async move {
        let item = match pending {
            Some(item) => item,
            None => rows.recv().await?,
        };
        let line = item.map_err(ApiError::from).map(|row| {
            let mut line = serde_json::to_vec(&TableRowRes::from(row)).unwrap_or_default();
            line.push(b'\n');
            Bytes::from(line)
        });
        Some((line, (None, rows)))
    });
    Ok(([(header::CONTENT_TYPE, "application/jsonl")], Body::from_stream(lines)).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"project_id": "demo/app", "digest": "ed8bd1f8cb829eeb6b3fef95a7cd8401f7e5af825c4c9aa144a1ceb9f32c3654"}))]
pub struct TableQueryStatsReq {
    pub project_id: ProjectId,
    pub digest: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TableQueryStatsRes {
    /// Rows in the table (0 for an unknown table).
    pub count: i64,
}

/// How many rows a table has.
#[utoipa::path(post, path = "/table/query_stats", request_body = TableQueryStatsReq, tag = "tables",
    responses((status = 200, body = TableQueryStatsRes)))]
async fn table_stats(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<TableQueryStatsReq>,
) -> Result<Json<TableQueryStatsRes>> {
    caller.authorize(&req.project_id)?;
    let counts = tables_store::counts(&state.db, req.project_id.as_str(), &[req.digest], false).await?;
    Ok(Json(TableQueryStatsRes { count: counts.first().map_or(0, |(_, count, _)| *count) }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"project_id": "demo/app", "digests": ["ed8bd1f8cb829eeb6b3fef95a7cd8401f7e5af825c4c9aa144a1ceb9f32c3654"], "include_storage_size": true}))]
pub struct TableQueryStatsBatchReq {
    pub project_id: ProjectId,
    /// At most 1000 digests.
    #[serde(default, deserialize_with = "crate::domain::bounded_list")]
    pub digests: Option<Vec<String>>,
    #[serde(default)]
    pub include_storage_size: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TableStats {
    pub digest: String,
    pub count: i64,
    /// Bytes of the rows' values, with `include_storage_size`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_size_bytes: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TableQueryStatsBatchRes {
    /// The tables that exist, of those asked for.
    pub tables: Vec<TableStats>,
}

/// Row counts of several tables.
#[utoipa::path(post, path = "/table/query_stats_batch", request_body = TableQueryStatsBatchReq, tag = "tables",
    responses((status = 200, body = TableQueryStatsBatchRes)))]
async fn table_stats_batch(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<TableQueryStatsBatchReq>,
) -> Result<Json<TableQueryStatsBatchRes>> {
    caller.authorize(&req.project_id)?;
    let with_size = req.include_storage_size == Some(true);
    let digests = req.digests.unwrap_or_default();
    let counts = tables_store::counts(&state.db, req.project_id.as_str(), &digests, with_size).await?;
    let tables = counts
        .into_iter()
        .map(|(digest, count, size)| TableStats { digest, count, storage_size_bytes: with_size.then_some(size) })
        .collect();
    Ok(Json(TableQueryStatsBatchRes { tables }))
}
