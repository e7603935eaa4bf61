//! Extractors: the JSON body (read whatever the `Content-Type`, errors as pydantic-style 422s,
//! see `json`) and the caller's credentials.
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts};
use base64::Engine;
use serde::de::DeserializeOwned;

use crate::domain::expr::Query;
use crate::domain::filter::CallsFilter;
use crate::domain::ProjectId;
use crate::error::{ApiError, ValidationDetail};
use crate::keys::{self, Principal};
use crate::state::AppState;
use crate::store::expr::{compile, Target};
use crate::store::filter::Selection;

/// A JSON request body. Unlike `axum::Json` it ignores `Content-Type` (plain `curl -d` sends
/// form encoding) and reports problems in the FastAPI shape with a `loc` into the body.
pub struct AppJson<T>(pub T);

/// Bodies larger than this are parsed on a blocking thread, off the async workers.
const PARSE_INLINE_BYTES: usize = 256 * 1024;

impl<S: Send + Sync, T: DeserializeOwned + Send + 'static> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge("Request too large".into())
            } else {
                ApiError::BadRequest(rejection.body_text())
            }
        })?;
        if bytes.len() <= PARSE_INLINE_BYTES {
            return super::json::parse_body(&bytes).map(AppJson);
        }
        tokio::task::spawn_blocking(move || super::json::parse_body(&bytes))
            .await
            .map_err(|e| ApiError::internal(format!("body parsing stopped: {e}")))?
            .map(AppJson)
    }
}

/// The calls an endpoint selects: its filter and its compiled query (400 when the query names
/// a field that is not allowed or cannot be run).
pub fn selection(
    project: &ProjectId,
    filter: Option<CallsFilter>,
    query: Option<&Query>,
) -> Result<Selection, ApiError> {
    let query = query.map(|q| compile(q, Target::Calls)).transpose().map_err(ApiError::BadRequest)?;
    Ok(Selection { filter: filter.unwrap_or_default().qualified(project), query })
}

/// 422 unless `limit` and `offset`, when given, are ≥ 0 (both reported at once).
pub fn check_paging(limit: Option<i64>, offset: Option<i64>) -> Result<(), ApiError> {
    let problems: Vec<ValidationDetail> = [("limit", limit), ("offset", offset)]
        .into_iter()
        .filter_map(|(field, value)| value.and_then(|v| ValidationDetail::at_least(field, v, 0)))
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(problems))
    }
}

/// The verified caller. Extracting it answers 401 unless the request carries a live key
/// (`Basic api:<key>` or `Bearer <key>`).
pub struct Caller(pub Principal);

impl Caller {
    /// 403 unless this caller may use `project`.
    pub fn authorize(&self, project: &ProjectId) -> Result<(), ApiError> {
        if self.0.can_access(project.entity()) {
            Ok(())
        } else {
            Err(ApiError::Forbidden("You do not have access to this project".into()))
        }
    }
}

/// LangSmith's credential header (API.md §12), accepted like `Authorization`.
pub static X_API_KEY: header::HeaderName = header::HeaderName::from_static("x-api-key");

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // Several credentials are ambiguous: refuse rather than pick one.
        let authorization = parts.headers.get_all(header::AUTHORIZATION).iter().count();
        let api_key = parts.headers.get_all(&X_API_KEY).iter().count();
        if authorization + api_key > 1 {
            return Err(ApiError::BadRequest("Send one credential: an Authorization or an X-API-Key header".into()));
        }
        let secret = match parts.headers.get(header::AUTHORIZATION) {
            Some(value) => value.to_str().ok().and_then(secret_from_header),
            None => parts.headers.get(&X_API_KEY).and_then(|v| v.to_str().ok()).map(str::trim).map(str::to_string),
        }
        .filter(|secret| !secret.is_empty())
        .ok_or_else(|| ApiError::Unauthorized("Missing or malformed credentials".into()))?;
        match keys::verify(&state.db, &secret).await? {
            Some(principal) => Ok(Caller(principal)),
            None => Err(ApiError::Unauthorized("Invalid API key".into())),
        }
    }
}

/// The API key in an `Authorization` header: `Basic base64(user:key)` or `Bearer key`.
fn secret_from_header(value: &str) -> Option<String> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    let rest = rest.trim();
    let secret = if scheme.eq_ignore_ascii_case("bearer") {
        rest.to_string()
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(rest).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        decoded.split_once(':')?.1.to_string()
    } else {
        return None;
    };
    (!secret.is_empty()).then_some(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_and_bearer_headers_both_carry_the_key() {
        let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("api:sekrit"));
        assert_eq!(secret_from_header(&basic).as_deref(), Some("sekrit"));
        assert_eq!(secret_from_header("Bearer sekrit").as_deref(), Some("sekrit"));
        assert_eq!(secret_from_header("Bearer "), None);
        assert_eq!(secret_from_header("Digest x"), None);
    }
}
