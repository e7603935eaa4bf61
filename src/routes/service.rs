//! Service endpoints (API.md §8): health and server info. No credentials needed.
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health)).routes(routes!(server_info))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthRes {
    /// `ok`, or `unavailable` when the database does not answer.
    pub status: &'static str,
}

/// 200 when the database answers, 503 otherwise.
#[utoipa::path(get, path = "/health", tag = "service",
    responses((status = 200, body = HealthRes), (status = 503, body = HealthRes)))]
async fn health(State(state): State<AppState>) -> (StatusCode, Json<HealthRes>) {
    match crate::store::ping(&state.db).await {
        Ok(()) => (StatusCode::OK, Json(HealthRes { status: "ok" })),
        Err(error) => {
            tracing::warn!(%error, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, Json(HealthRes { status: "unavailable" }))
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServerInfoRes {
    pub min_required_weave_python_version: &'static str,
    pub trace_server_version: &'static str,
}

/// Versions: the oldest compatible `weave` client and this server's.
#[utoipa::path(get, path = "/server_info", tag = "service", responses((status = 200, body = ServerInfoRes)))]
async fn server_info() -> Json<ServerInfoRes> {
    Json(ServerInfoRes { min_required_weave_python_version: "0.52.0", trace_server_version: env!("CARGO_PKG_VERSION") })
}
