//! Service endpoints (API.md §8): health, server info and metrics. No credentials needed.
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::metrics::PoolGauges;
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health)).routes(routes!(server_info)).routes(routes!(metrics))
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

/// Prometheus metrics: requests by route and status, latency histograms, calls ingested, the
/// database pool. Holds no project data, so it needs no credentials (keep it off the public
/// network, as any metrics port).
#[utoipa::path(get, path = "/metrics", tag = "service",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4", body = String)))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let pool =
        PoolGauges { open: state.db.size(), idle: state.db.num_idle(), max: state.db.options().get_max_connections() };
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render(pool))
}
