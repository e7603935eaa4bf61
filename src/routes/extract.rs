//! Extractors: the JSON body (read whatever the `Content-Type`, errors as pydantic-style 422s)
//! and the caller's credentials.
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts};
use base64::Engine;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

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

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge("Request too large".into())
            } else {
                ApiError::BadRequest(rejection.body_text())
            }
        })?;
        parse_body(&bytes).map(AppJson)
    }
}

/// Parse a request body into `T`, or the 422 that explains why not.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::Validation(vec![ValidationDetail::new(
            "missing",
            vec![json!("body")],
            "Field required",
            Value::Null,
        )]));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        let offset = if e.is_eof() { bytes.len() } else { byte_offset(bytes, e.line(), e.column()) };
        let msg = format!("JSON decode error: {e}");
        ApiError::Validation(vec![ValidationDetail::new(
            "json_invalid",
            vec![json!("body"), json!(offset)],
            msg,
            json!({}),
        )])
    })?;
    // Postgres text and jsonb cannot hold U+0000; refuse it here rather than fail in the database.
    if memchr_nul_escape(bytes) {
        if let Some(path) = find_nul(&value, &mut vec![json!("body")]) {
            return Err(ApiError::Validation(vec![ValidationDetail::new(
                "string_unicode",
                path,
                "Strings may not contain the NUL character (\\u0000)",
                Value::Null,
            )]));
        }
    }
    serde_path_to_error::deserialize(&value).map_err(|e| ApiError::Validation(vec![detail_from_serde(&value, e)]))
}

fn memchr_nul_escape(bytes: &[u8]) -> bool {
    bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000"))
}

fn find_nul(value: &Value, path: &mut Vec<Value>) -> Option<Vec<Value>> {
    match value {
        Value::String(s) if s.contains('\0') => Some(path.clone()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| {
            path.push(json!(i));
            let found = find_nul(v, path);
            path.pop();
            found
        }),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            path.push(json!(k));
            let found = if k.contains('\0') { Some(path.clone()) } else { find_nul(v, path) };
            path.pop();
            found
        }),
        _ => None,
    }
}

/// serde_json reports 1-based lines and columns; the API reports a byte offset.
fn byte_offset(bytes: &[u8], line: usize, column: usize) -> usize {
    let line_start: usize = bytes.split(|b| *b == b'\n').take(line.saturating_sub(1)).map(|l| l.len() + 1).sum();
    (line_start + column.saturating_sub(1)).min(bytes.len())
}

/// Turn a serde error into one pydantic-style detail: `loc` from the path, `type` from the
/// message (our own errors carry it as `"type|msg"`, serde's are recognised by their text).
fn detail_from_serde(body: &Value, error: serde_path_to_error::Error<serde_json::Error>) -> ValidationDetail {
    let mut loc = vec![json!("body")];
    for segment in error.path().iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => loc.push(json!(index)),
            serde_path_to_error::Segment::Map { key } => loc.push(json!(key)),
            serde_path_to_error::Segment::Enum { variant } => loc.push(json!(variant)),
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    let message = error.inner().to_string();
    let (kind, msg) = classify(&message, &mut loc);
    let input = lookup(body, &loc[1..]).cloned().unwrap_or(Value::Null);
    ValidationDetail::new(&kind, loc, msg, input)
}

fn classify(message: &str, loc: &mut Vec<Value>) -> (String, String) {
    if let Some((kind, msg)) = message.split_once('|') {
        if !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return (kind.to_string(), msg.to_string());
        }
    }
    let quoted = |m: &str| m.split('`').nth(1).map(str::to_string);
    if let Some(rest) = message.strip_prefix("missing field ") {
        if let Some(field) = quoted(rest) {
            push_unless_last(loc, &field);
        }
        return ("missing".into(), "Field required".into());
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        if let Some(field) = quoted(rest) {
            push_unless_last(loc, &field);
        }
        return ("extra_forbidden".into(), "Extra inputs are not permitted".into());
    }
    if message.starts_with("unknown variant ") {
        return ("literal_error".into(), format!("Input should be one of the allowed values: {message}"));
    }
    if message.starts_with("invalid type") || message.starts_with("invalid value") {
        let expected = message.rsplit("expected ").next().unwrap_or_default();
        let (kind, msg) = if expected.contains("a string") {
            ("string_type", "Input should be a valid string")
        } else if expected.contains("a boolean") {
            ("bool_parsing", "Input should be a valid boolean")
        } else if ["i64", "u64", "i32", "u32", "usize", "u8", "u16", "i16", "integer"]
            .iter()
            .any(|t| expected.contains(t))
        {
            ("int_parsing", "Input should be a valid integer")
        } else if expected.contains("f64") || expected.contains("number") {
            ("float_parsing", "Input should be a valid number")
        } else if expected.contains("datetime") {
            ("datetime_parsing", "Input should be a valid datetime")
        } else if expected.contains("sequence") {
            ("list_type", "Input should be a valid list")
        } else if expected.contains("map") || expected.contains("struct") {
            ("dict_type", "Input should be a valid dictionary or object")
        } else {
            ("value_error", message)
        };
        return (kind.into(), msg.into());
    }
    ("value_error".into(), message.to_string())
}

fn push_unless_last(loc: &mut Vec<Value>, field: &str) {
    if loc.last() != Some(&json!(field)) {
        loc.push(json!(field));
    }
}

fn lookup<'a>(value: &'a Value, path: &[Value]) -> Option<&'a Value> {
    path.iter().try_fold(value, |current, segment| match segment {
        Value::String(key) => current.get(key.as_str()),
        Value::Number(index) => current.get(index.as_u64()? as usize),
        _ => None,
    })
}

/// The calls an endpoint selects: its filter and its compiled query (400 when the query names
/// a field that is not allowed or cannot be run).
pub fn selection(filter: Option<CallsFilter>, query: Option<&Query>) -> Result<Selection, ApiError> {
    let query = query.map(|q| compile(q, Target::Calls)).transpose().map_err(ApiError::BadRequest)?;
    Ok(Selection { filter: filter.unwrap_or_default(), query })
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

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let secret = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(secret_from_header)
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

    #[test]
    fn byte_offsets_count_from_the_start_of_the_body() {
        let body = b"{\n  \"a\": ,\n}";
        let err = serde_json::from_slice::<Value>(body).unwrap_err();
        assert_eq!(byte_offset(body, err.line(), err.column()), 9);
    }
}
