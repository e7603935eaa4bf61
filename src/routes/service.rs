//! Service endpoints: health, server info and metrics. No credentials needed.
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;
use crate::telemetry::{self, PoolGauges};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health)).routes(routes!(server_info))
}

/// `GET /metrics`, on the API's port or on a listener of its own (`METRICS_BIND`). Not part of
/// the API document: it is for the operator's scraper, not for clients.
pub fn metrics_router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
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
    match crate::store::ping(&state.health_db).await {
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
/// database pool. Holds no project data, so it needs no credentials (give it its own listener
/// with `METRICS_BIND` to keep it off the public network).
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let pool =
        PoolGauges { open: state.db.size(), idle: state.db.num_idle(), max: state.db.options().get_max_connections() };
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], telemetry::render_metrics(pool))
}
