//! One error type for the whole API, rendered as the bodies of API.md §1.1.
//!
//! Validation problems are FastAPI-shaped (`{"detail": [{type, loc, msg, input}]}`) because the
//! Weave clients parse that shape; everything else is `{"reason": ...}`. Database and internal
//! failures are logged here, inside the request's span, and never sent to the client.
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Value};

/// Result alias for handlers and the layers below them.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Most details one 422 lists.
pub const MAX_DETAILS: usize = 100;

/// The cause behind a 500 or 503, kept for the log.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 422: the request is malformed or a value is out of range.
    #[error("invalid request")]
    Validation(Vec<ValidationDetail>),
    /// 400: a valid request that cannot be run as asked.
    #[error("{0}")]
    BadRequest(String),
    /// 401: missing or invalid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the credentials do not reach that project.
    #[error("{0}")]
    Forbidden(String),
    /// 404: unknown route or object.
    #[error("{0}")]
    NotFound(String),
    /// 404: the object version was deleted (the SDK stops retrying when it sees `deleted_at`).
    #[error("{reason}")]
    Deleted { reason: String, deleted_at: String },
    /// 409: a client-computed digest differs from ours; answered with `x-should-retry: false`.
    #[error("{0}")]
    Conflict(String),
    /// 405: known route, other method.
    #[error("Method not allowed")]
    MethodNotAllowed,
    /// 413: body or result over a limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 503 with `Retry-After`: too many heavy requests are running (the server's, or the key's).
    #[error("{0}")]
    Busy(String),
    /// 503: the database is unreachable or too slow; the client may retry.
    #[error("Temporary backend error")]
    Unavailable(#[source] BoxError),
    /// 500: a bug. The cause is logged, never sent.
    #[error("Internal server error")]
    Internal(#[source] BoxError),
}

/// One entry of a 422 `detail` list (pydantic's error shape).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ValidationDetail {
    #[serde(rename = "type")]
    pub kind: String,
    /// Where: `["body", <field>, <index>, ...]`, or `["body", <byte offset>]` for invalid JSON.
    pub loc: Vec<Value>,
    pub msg: String,
    pub input: Value,
}

/// The body of a 422 (API.md §1.1).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ValidationErrorBody {
    pub detail: Vec<ValidationDetail>,
}

/// The body of every other error (API.md §1.1).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub reason: String,
}

impl ValidationDetail {
    pub fn new(kind: &str, loc: Vec<Value>, msg: impl Into<String>, input: Value) -> Self {
        Self { kind: kind.to_string(), loc, msg: msg.into(), input }
    }

    /// `greater_than_equal` at `body.<field>` when `value < min`.
    pub fn at_least(field: &str, value: i64, min: i64) -> Option<Self> {
        (value < min).then(|| {
            Self::new(
                "greater_than_equal",
                vec![json!("body"), json!(field)],
                format!("Input should be greater than or equal to {min}"),
                json!(value),
            )
        })
    }

    /// A `value_error` at `body.<path>`.
    pub fn value_error(path: &[&str], msg: impl Into<String>, input: Value) -> Self {
        let mut loc = vec![json!("body")];
        loc.extend(path.iter().map(|p| json!(p)));
        Self::new("value_error", loc, msg, input)
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) | Self::Deleted { .. } => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable(_) | Self::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            // A few details say what is wrong; thousands would only make a huge answer.
            Self::Validation(detail) => json!({ "detail": &detail[..detail.len().min(MAX_DETAILS)] }),
            Self::Deleted { reason, deleted_at } => json!({ "reason": reason, "deleted_at": deleted_at }),
            Self::Unavailable(cause) => {
                tracing::warn!(cause = %chain(cause.as_ref()), "database unavailable");
                json!({ "reason": self.to_string() })
            }
            Self::Internal(cause) => {
                tracing::error!(cause = %chain(cause.as_ref()), "internal error");
                json!({ "reason": self.to_string() })
            }
            _ => json!({ "reason": self.to_string() }),
        };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"weave\""));
        }
        if matches!(self, Self::Busy(_)) {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if status == StatusCode::CONFLICT {
            // The SDK's HTTP client retries 409s unless told not to; a digest mismatch will not change.
            response.headers_mut().insert("x-should-retry", HeaderValue::from_static("false"));
        }
        response
    }
}

impl ApiError {
    /// A 500 for a broken invariant of our own.
    pub fn internal(what: impl Into<String>) -> Self {
        Self::Internal(what.into().into())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if is_transient(&error) {
            return Self::Unavailable(Box::new(error));
        }
        // Values the database refuses are the request's fault, not ours: a 4xx, never a 500
        // (requests are validated first; this is the net under that).
        let code = match &error {
            sqlx::Error::Database(db) => db.code().map(|c| c.to_string()).unwrap_or_default(),
            _ => String::new(),
        };
        if code == "23505" {
            tracing::info!(cause = %chain(&error), "a write conflicted with a stored row");
            return Self::Conflict("A row with this key exists already".into());
        }
        if code.starts_with("22") || code.starts_with("23") || code.starts_with("54") {
            tracing::info!(cause = %chain(&error), "the database refused a value");
            return Self::BadRequest(
                "A value of the request was refused by the database (too long or out of range)".into(),
            );
        }
        Self::Internal(Box::new(error))
    }
}

/// An error and its sources, `: `-separated, for one log field.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Errors that mean "the database is not answering (in time)" rather than "the query is wrong".
fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // 57014 query_canceled (statement_timeout), 57P0x shutdown, 08xxx connection, 53xxx resources,
            // 40001/40P01 serialization failure and deadlock: all worth a retry.
            code == "57014"
                || code.starts_with("57P")
                || code.starts_with("08")
                || code.starts_with("53")
                || code == "40001"
                || code == "40P01"
        }
        sqlx::Error::Protocol(_) => true,
        _ => false,
    }
}
