//! Files (API.md §11.2): `/file/create` (multipart upload) and `/file/content`. A file is
//! named by the digest of its bytes, which the SDK computes too (an op's source code is
//! referenced from the op object by that digest, sometimes before the upload arrives).
use axum::body::Bytes;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{AppJson, Caller};
use super::objects::check_expected_digest;
use crate::domain::digest::bytes_digest;
use crate::domain::ProjectId;
use crate::error::{ApiError, Result, ValidationDetail};
use crate::state::AppState;
use crate::store::{files as files_store, projects};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_file)).routes(routes!(file_content))
}

/// The form `/file/create` takes.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the form; the handler reads it part by part
pub struct FileCreateForm {
    /// `entity/project`.
    project_id: String,
    /// A digest the client computed; a different one answers 409.
    expected_digest: Option<String>,
    /// The file (its name is not stored: files are named by their digest).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FileCreateRes {
    pub digest: String,
}

fn missing(field: &str) -> ApiError {
    ApiError::Validation(vec![ValidationDetail::new(
        "missing",
        vec![json!("body"), json!(field)],
        "Field required",
        Value::Null,
    )])
}

fn unreadable(error: axum::extract::multipart::MultipartError) -> ApiError {
    if error.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge("Request too large".into())
    } else {
        ApiError::BadRequest(format!("Unreadable multipart body: {}", error.body_text()))
    }
}

/// Store a file; answers its digest.
#[utoipa::path(post, path = "/file/create", tag = "files",
    request_body(content = FileCreateForm, content_type = "multipart/form-data"),
    responses((status = 200, body = FileCreateRes), (status = 409, description = "`expected_digest` differs from the server's", body = crate::error::ErrorBody)))]
async fn create_file(
    State(state): State<AppState>,
    caller: Caller,
    form: std::result::Result<Multipart, MultipartRejection>,
) -> Result<Json<FileCreateRes>> {
    let mut form = form.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let (mut project, mut expected, mut content): (Option<String>, Option<String>, Option<Bytes>) = (None, None, None);
    while let Some(field) = form.next_field().await.map_err(unreadable)? {
        match field.name() {
            Some("project_id") => project = Some(field.text().await.map_err(unreadable)?),
            Some("expected_digest") => expected = Some(field.text().await.map_err(unreadable)?),
            Some("file") => content = Some(field.bytes().await.map_err(unreadable)?),
            _ => {} // other parts are ignored, as extra form fields
        }
    }
    let project = project.ok_or_else(|| missing("project_id"))?;
    let project = ProjectId::parse(&project).ok_or_else(|| {
        ApiError::Validation(vec![ValidationDetail::value_error(
            &["project_id"],
            format!("Value error, project_id must be 'entity/project', got {project:?}"),
            json!(project),
        )])
    })?;
    caller.authorize(&project)?;
    let content = content.ok_or_else(|| missing("file"))?;
    let digest = bytes_digest(&content);
    check_expected_digest(expected.as_deref().filter(|e| !e.is_empty()), &digest, "file")?;
    let mut tx = state.db.begin().await?;
    projects::register(&mut *tx, &[project.as_str()]).await?;
    files_store::create(&mut *tx, project.as_str(), &digest, &content).await?;
    tx.commit().await?;
    Ok(Json(FileCreateRes { digest }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"project_id": "demo/app", "digest": "LPJNulXwow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ"}))]
pub struct FileContentReq {
    pub project_id: ProjectId,
    pub digest: String,
}

/// A file's bytes (`application/octet-stream`).
#[utoipa::path(post, path = "/file/content", request_body = FileContentReq, tag = "files",
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>, description = "The file's bytes"),
              (status = 404, description = "No such file", body = crate::error::ErrorBody)))]
async fn file_content(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<FileContentReq>,
) -> Result<impl IntoResponse> {
    caller.authorize(&req.project_id)?;
    match files_store::content(&state.db, req.project_id.as_str(), &req.digest).await? {
        Some(content) => Ok(([(header::CONTENT_TYPE, "application/octet-stream")], content)),
        None => Err(ApiError::NotFound(format!("File {} not found", req.digest))),
    }
}
