//! Feedback (API.md §11.2): `/feedback/create`, `/feedback/batch/create`, `/feedback/query`,
//! `/feedback/purge`, `/feedback/replace`. Reactions and notes on calls (`weave_ref` names the
//! call), and scores the SDK's evaluations write.
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{check_paging, AppJson, Caller};
use super::shared::SortBy;
use crate::domain::expr::{ids_named, Query};
use crate::domain::feedback::{check_payload, PayloadProblem};
use crate::domain::ingest::new_id;
use crate::domain::{ProjectId, Timestamp};
use crate::error::{ApiError, Result};
use crate::state::AppState;
use crate::store::expr::{compile, Target, FEEDBACK_TEXT_COLUMNS};
use crate::store::feedback::{self as feedback_store, FeedbackRow, SortKey};
use crate::store::projects;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_feedback))
        .routes(routes!(create_feedback_batch))
        .routes(routes!(query_feedback))
        .routes(routes!(purge_feedback))
        .routes(routes!(replace_feedback))
}

/// Feedback to store (`FeedbackCreateReq`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"project_id": "demo/app", "weave_ref": "weave:///demo/app/call/q-0000", "feedback_type": "wandb.reaction.1", "payload": {"emoji": "👍"}}))]
pub struct FeedbackCreateReq {
    pub project_id: ProjectId,
    /// What the feedback is about: `weave:///entity/project/call/<id>` for a call (≤ 1024 bytes).
    #[serde(deserialize_with = "crate::domain::call::op_name")]
    pub weave_ref: String,
    /// `wandb.reaction.1` (`{"emoji"}`), `wandb.note.1` (`{"note"}`), `wandb.runnable.<name>`
    /// (`{"output"}`, a scorer's result), or any other type with any payload (≤ 1024 bytes).
    #[serde(deserialize_with = "crate::domain::call::op_name")]
    pub feedback_type: String,
    #[schema(value_type = Object)]
    pub payload: Map<String, Value>,
    /// Chosen by the client (the SDK's batches name theirs), else generated (≤ 512 bytes).
    #[serde(default, deserialize_with = "crate::domain::call::optional_id")]
    pub id: Option<String>,
    #[serde(default)]
    pub creator: Option<String>,
    #[serde(default)]
    pub annotation_ref: Option<String>,
    #[serde(default)]
    pub runnable_ref: Option<String>,
    #[serde(default)]
    pub call_ref: Option<String>,
    #[serde(default)]
    pub trigger_ref: Option<String>,
    #[serde(default)]
    pub queue_id: Option<String>,
    /// Ignored: the key's user is recorded.
    #[serde(default)]
    pub wb_user_id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub scorer_tags: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub scorer_tag_reasons: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub scorer_tag_confidences: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub scorer_ratings: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub scorer_rating_reasons: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub scorer_rating_confidences: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub scorer_trace_id: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub span_agent_name: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub span_agent_version: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub span_status_code: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub span_conversation_id: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub span_trace_id: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackCreateRes {
    pub id: String,
    pub created_at: Timestamp,
    pub wb_user_id: String,
    /// The payload as stored (reactions gain `alias`, `detoned`, `detoned_alias`).
    #[schema(value_type = Object)]
    pub payload: Value,
}

impl FeedbackCreateReq {
    /// The row to store, with the payload checked and completed (400 when it does not fit its
    /// type).
    fn into_row(self, user: &str) -> Result<FeedbackRow> {
        let payload = check_payload(&self.feedback_type, self.payload).map_err(|problem| match problem {
            PayloadProblem(why) => ApiError::BadRequest(why),
        })?;
        if self.feedback_type.starts_with("wandb.runnable") && self.runnable_ref.is_none() {
            return Err(ApiError::BadRequest("runnable_ref is required for runnable feedback".into()));
        }
        if self.id.as_ref().is_some_and(String::is_empty) {
            return Err(ApiError::BadRequest("a feedback id may not be empty".into()));
        }
        let extra: Map<String, Value> = [
            ("scorer_tags", self.scorer_tags),
            ("scorer_tag_reasons", self.scorer_tag_reasons),
            ("scorer_tag_confidences", self.scorer_tag_confidences),
            ("scorer_ratings", self.scorer_ratings),
            ("scorer_rating_reasons", self.scorer_rating_reasons),
            ("scorer_rating_confidences", self.scorer_rating_confidences),
            ("scorer_trace_id", self.scorer_trace_id),
            ("span_agent_name", self.span_agent_name),
            ("span_agent_version", self.span_agent_version),
            ("span_status_code", self.span_status_code),
            ("span_conversation_id", self.span_conversation_id),
            ("span_trace_id", self.span_trace_id),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.map(|v| (key.to_string(), v)))
        .collect();
        Ok(FeedbackRow {
            id: self.id.unwrap_or_else(new_id),
            project_id: self.project_id.to_string(),
            weave_ref: self.weave_ref,
            feedback_type: self.feedback_type,
            payload,
            creator: self.creator,
            created_at: Timestamp::now(),
            wb_user_id: user.to_string(),
            annotation_ref: self.annotation_ref,
            runnable_ref: self.runnable_ref,
            call_ref: self.call_ref,
            trigger_ref: self.trigger_ref,
            queue_id: self.queue_id,
            extra: Value::Object(extra),
        })
    }
}

fn created(row: &FeedbackRow) -> FeedbackCreateRes {
    FeedbackCreateRes {
        id: row.id.clone(),
        created_at: row.created_at,
        wb_user_id: row.wb_user_id.clone(),
        payload: row.payload.clone(),
    }
}

/// Store feedback rows in one transaction (each project checked first).
async fn store(state: &AppState, caller: &Caller, requests: Vec<FeedbackCreateReq>) -> Result<Vec<FeedbackRow>> {
    for req in &requests {
        caller.authorize(&req.project_id)?;
    }
    let rows = requests.into_iter().map(|req| req.into_row(&caller.0.user_id)).collect::<Result<Vec<_>>>()?;
    let mut projects: Vec<&str> = rows.iter().map(|r| r.project_id.as_str()).collect();
    projects.sort_unstable();
    projects.dedup();
    let mut tx = state.db.begin().await?;
    projects::register(&mut *tx, &projects).await?;
    feedback_store::insert(&mut tx, &rows).await?;
    tx.commit().await?;
    Ok(rows)
}

/// Add feedback to a call (or to any ref).
#[utoipa::path(post, path = "/feedback/create", request_body = FeedbackCreateReq, tag = "feedback",
    responses((status = 200, body = FeedbackCreateRes)))]
async fn create_feedback(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<FeedbackCreateReq>,
) -> Result<Json<FeedbackCreateRes>> {
    let rows = store(&state, &caller, vec![req]).await?;
    Ok(Json(created(&rows[0])))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"batch": [{"project_id": "demo/app", "weave_ref": "weave:///demo/app/call/q-0000", "feedback_type": "wandb.reaction.1", "payload": {"emoji": "👍"}}]}))]
pub struct FeedbackBatchCreateReq {
    /// At most 1000 items, stored together or not at all.
    #[serde(deserialize_with = "crate::domain::required_bounded_list")]
    pub batch: Vec<FeedbackCreateReq>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackBatchCreateRes {
    pub res: Vec<FeedbackCreateRes>,
}

/// Add several feedback items in one transaction (how the SDK sends them).
#[utoipa::path(post, path = "/feedback/batch/create", request_body = FeedbackBatchCreateReq, tag = "feedback",
    responses((status = 200, body = FeedbackBatchCreateRes)))]
async fn create_feedback_batch(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<FeedbackBatchCreateReq>,
) -> Result<Json<FeedbackBatchCreateRes>> {
    let rows = store(&state, &caller, req.batch).await?;
    Ok(Json(FeedbackBatchCreateRes { res: rows.iter().map(created).collect() }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"project_id": "demo/app", "query": {"$expr": {"$eq": [{"$getField": "weave_ref"}, {"$literal": "weave:///demo/app/call/q-0000"}]}}, "limit": 10}))]
pub struct FeedbackQueryReq {
    pub project_id: ProjectId,
    /// Keys to return (default: all); `payload.x` paths pick parts of the payload.
    #[serde(default)]
    pub fields: Option<Vec<String>>,
    /// A query expression over the columns and `payload.` paths.
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
pub struct FeedbackQueryRes {
    #[schema(value_type = Vec<Object>)]
    pub result: Vec<Map<String, Value>>,
}

/// The JSON of a feedback row: its columns, and the request's other fields.
fn row_json(row: FeedbackRow) -> Map<String, Value> {
    let extra = match &row.extra {
        Value::Object(extra) => extra.clone(),
        _ => Map::new(),
    };
    let mut out = match serde_json::to_value(&row) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    out.remove("extra");
    out.extend(extra);
    out
}

/// Feedback matching a query, oldest first by default.
#[utoipa::path(post, path = "/feedback/query", request_body = FeedbackQueryReq, tag = "feedback",
    responses((status = 200, body = FeedbackQueryRes)))]
async fn query_feedback(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<FeedbackQueryReq>,
) -> Result<Json<FeedbackQueryRes>> {
    caller.authorize(&req.project_id)?;
    check_paging(req.limit, req.offset)?;
    let condition =
        req.query.as_ref().map(|q| compile(q, Target::Feedback)).transpose().map_err(ApiError::BadRequest)?;
    let sort = req
        .sort_by
        .unwrap_or_default()
        .iter()
        .map(|s| Ok((sort_key(&s.field)?, s.direction.is_descending())))
        .collect::<Result<Vec<_>>>()?;
    let rows =
        feedback_store::query(&state.db, req.project_id.as_str(), condition.as_ref(), &sort, req.limit, req.offset)
            .await?;
    let result = rows
        .into_iter()
        .map(|row| {
            let full = row_json(row);
            match &req.fields {
                None => full,
                Some(fields) => fields
                    .iter()
                    .filter_map(|field| {
                        let name = if field == "payload_dump" { "payload" } else { field.as_str() };
                        pick(&full, name).map(|v| (name.to_string(), v))
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(Json(FeedbackQueryRes { result }))
}

/// A field of a feedback row's JSON, `payload.a.b` reaching into the payload.
fn pick(row: &Map<String, Value>, field: &str) -> Option<Value> {
    let mut parts = field.split('.');
    let mut value = row.get(parts.next()?)?;
    for part in parts {
        value = value.get(part)?;
    }
    Some(value.clone())
}

fn sort_key(field: &str) -> Result<SortKey> {
    if field == "created_at" {
        return Ok(SortKey::Column("created_at"));
    }
    if let Some(column) = FEEDBACK_TEXT_COLUMNS.iter().find(|c| **c == field) {
        return Ok(SortKey::Column(column));
    }
    match field.strip_prefix("payload.") {
        Some(path) if !path.split('.').any(str::is_empty) => {
            Ok(SortKey::Payload(path.split('.').map(str::to_string).collect()))
        }
        _ => Err(ApiError::BadRequest(format!("Field {field} is not allowed"))),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"project_id": "demo/app", "query": {"$expr": {"$eq": [{"$getField": "id"}, {"$literal": "a-feedback-id"}]}}}))]
pub struct FeedbackPurgeReq {
    pub project_id: ProjectId,
    /// Only `$eq` on `id`, or `$or` of such, as Weave allows.
    pub query: Query,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackPurgeRes {}

/// Delete feedback by id.
#[utoipa::path(post, path = "/feedback/purge", request_body = FeedbackPurgeReq, tag = "feedback",
    responses((status = 200, body = FeedbackPurgeRes)))]
async fn purge_feedback(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<FeedbackPurgeReq>,
) -> Result<Json<FeedbackPurgeRes>> {
    caller.authorize(&req.project_id)?;
    let Some(ids) = ids_named(&req.query.expr) else {
        return Err(ApiError::BadRequest("Can only purge feedback by specifying one or more feedback ids".into()));
    };
    let mut tx = state.db.begin().await?;
    feedback_store::delete(&mut tx, req.project_id.as_str(), &ids).await?;
    tx.commit().await?;
    Ok(Json(FeedbackPurgeRes {}))
}

/// A create request plus the id of the feedback it replaces.
#[derive(Debug, Deserialize)]
pub struct FeedbackReplaceReq {
    /// The feedback to replace.
    pub feedback_id: String,
    #[serde(flatten)]
    pub feedback: FeedbackCreateReq,
}

// Documented as one object (the create request's fields and `feedback_id`): a flattened schema
// would be an `allOf` of two closed objects, which no body satisfies.
impl utoipa::PartialSchema for FeedbackReplaceReq {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
        use utoipa::openapi::RefOr;
        let mut schema = <FeedbackCreateReq as utoipa::PartialSchema>::schema();
        if let RefOr::T(Schema::Object(object)) = &mut schema {
            let id = ObjectBuilder::new().schema_type(Type::String).description(Some("The feedback to replace."));
            object.properties.insert("feedback_id".into(), id.into());
            object.required.push("feedback_id".into());
            object.example = Some(
                serde_json::json!({"project_id": "demo/app", "weave_ref": "weave:///demo/app/call/q-0000", "feedback_type": "wandb.reaction.1", "payload": {"emoji": "🎉"}, "feedback_id": "a-feedback-id"}),
            );
        }
        schema
    }
}

impl ToSchema for FeedbackReplaceReq {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        <FeedbackCreateReq as ToSchema>::schemas(schemas);
    }
}

/// Replace a feedback item: the new one is stored and the old one deleted, together.
#[utoipa::path(post, path = "/feedback/replace", request_body = FeedbackReplaceReq, tag = "feedback",
    responses((status = 200, body = FeedbackCreateRes)))]
async fn replace_feedback(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<FeedbackReplaceReq>,
) -> Result<Json<FeedbackCreateRes>> {
    caller.authorize(&req.feedback.project_id)?;
    let project = req.feedback.project_id.to_string();
    let row = req.feedback.into_row(&caller.0.user_id)?;
    let mut tx = state.db.begin().await?;
    feedback_store::delete(&mut tx, &project, std::slice::from_ref(&req.feedback_id)).await?;
    feedback_store::insert(&mut tx, std::slice::from_ref(&row)).await?;
    tx.commit().await?;
    Ok(Json(created(&row)))
}
