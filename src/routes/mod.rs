//! HTTP: the router, its middleware, and the OpenAPI document generated from the handlers.
//!
//! Each module owns its routes (`router()`); this one merges them, adds `/openapi.json` and
//! `/docs`, and wraps everything in the layers every request passes through.
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tower_http::LatencyUnit;
use tracing::Level;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::ApiError;
use crate::state::AppState;
use crate::telemetry;

/// Call ingestion and reads.
pub mod calls;
/// The price table.
pub mod costs;
/// Request extractors: JSON bodies and credentials.
pub mod extract;
/// Feedback on calls.
pub mod feedback;
/// Files.
pub mod files;
/// The W&B GraphQL bootstrap of `weave.init`.
pub mod graphql;
/// JSON bodies into typed requests, with pydantic-style 422s.
pub mod json;
/// LangSmith's run statistics and session lookups.
pub mod langsmith;
/// Versioned objects and ops.
pub mod objects;
/// The projects a key can browse, and their op names.
pub mod projects;
/// Reading refs.
pub mod refs;
/// Health and server info.
pub mod service;
/// Shapes several endpoints share.
pub mod shared;
/// `/calls/stats`.
pub mod stats;
/// `/calls/stream_query`.
pub mod stream;
/// Tables of rows.
pub mod tables;
/// The dashboard's files and the SDK's links into it.
pub mod ui;
/// `/trace/usage` and `/calls/usage`.
pub mod usage;
/// The SDK's v2 write paths (`calls/complete`, eager start/end).
pub mod v2;

#[derive(OpenApi)]
#[openapi(
    info(title = "weave-trace-server", description = "A W&B Weave-compatible trace server on Postgres."),
    modifiers(&SecurityAddon),
    components(schemas(crate::error::ErrorBody, crate::error::ValidationErrorBody)),
    security(("basic" = []), ("bearer" = [])),
    tags((name = "calls", description = "Ingest and read calls"), (name = "stats", description = "Time-bucketed call and usage metrics"), (name = "usage", description = "Usage with descendant rollup"), (name = "costs", description = "Prices per model"), (name = "objects", description = "Versioned objects and ops, and refs"), (name = "tables", description = "Tables of rows (datasets, evaluation results)"), (name = "files", description = "Files (op source code)"), (name = "feedback", description = "Reactions, notes and scores on calls"), (name = "service", description = "Health, versions, and the W&B GraphQL bootstrap"))
)]
struct ApiDoc;

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("basic", SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)));
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// The error answers every endpoint that takes a body can give (API.md §1.1), documented on
/// each operation so clients and contract tests know them.
struct ErrorResponses;

impl utoipa::Modify for ErrorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let response = |description: &str, schema: &str| {
            let content = ContentBuilder::new().schema(Some(RefOr::Ref(Ref::from_schema_name(schema)))).build();
            RefOr::T(ResponseBuilder::new().description(description).content("application/json", content).build())
        };
        let errors = [
            ("400", "A request the server cannot act on", "ErrorBody"),
            ("401", "Missing or unknown credentials", "ErrorBody"),
            ("403", "The key may not access this project", "ErrorBody"),
            ("413", "Body (or result) over the limit", "ErrorBody"),
            ("422", "Invalid request", "ValidationErrorBody"),
            ("503", "The database is unavailable or the request timed out", "ErrorBody"),
        ];
        for item in openapi.paths.paths.values_mut() {
            if let Some(operation) = item.post.as_mut() {
                for (status, description, schema) in errors {
                    operation
                        .responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| response(description, schema));
                }
            }
        }
    }
}

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(calls::router())
        .merge(v2::router())
        .merge(stream::router())
        .merge(stats::router())
        .merge(langsmith::router())
        .merge(projects::router())
        .merge(usage::router())
        .merge(costs::router())
        .merge(objects::router())
        .merge(tables::router())
        .merge(files::router())
        .merge(refs::router())
        .merge(feedback::router())
        .merge(graphql::router())
        .merge(service::router())
}

/// The OpenAPI document, as served at `/openapi.json` and checked in under `openapi/`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    parts().1
}

/// The router and its document, with the error answers added to every operation (they need
/// the paths, which exist only once the routers are merged).
fn parts() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut openapi) = api().split_for_parts();
    utoipa::Modify::modify(&ErrorResponses, &mut openapi);
    (router, openapi)
}

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole application: routes, docs and middleware.
pub fn app(state: AppState) -> Router {
    let settings = state.settings.clone();
    let (mut router, openapi) = parts();
    if settings.public_metrics {
        router = router.merge(service::metrics_router());
    }
    router = router.merge(ui::router());
    router
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .fallback(|| async { ApiError::NotFound("Not found".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(settings.body_limit))
        .layer(cors(&settings.cors_origins))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, settings.request_timeout))
        .layer(axum::middleware::map_response(json_for_bare_errors))
        .layer(CatchPanicLayer::custom(|_| ApiError::internal("handler panicked").into_response()))
        .layer(axum::middleware::from_fn(record_metrics))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let id = request.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
                    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO).latency_unit(LatencyUnit::Micros)),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .layer(axum::middleware::map_request(drop_unfit_request_id))
        .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION, header::COOKIE, extract::X_API_KEY.clone()]))
        // Answers are data, not pages: no sniffing, no framing, no caching of tenant data.
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .with_state(state)
}

/// Longest client-sent request id kept (it is echoed and logged on every line).
const MAX_REQUEST_ID_BYTES: usize = 128;

/// Drop a client's request id that is too long or not plain text, so a fresh one is made.
async fn drop_unfit_request_id(mut request: Request) -> Request {
    let unfit = request
        .headers()
        .get(&REQUEST_ID)
        .is_some_and(|id| id.len() > MAX_REQUEST_ID_BYTES || !id.as_bytes().iter().all(|b| b.is_ascii_graphic()));
    if unfit {
        request.headers_mut().remove(&REQUEST_ID);
    }
    request
}

/// Count every answered request by its route template (never the raw path, which would let
/// clients mint label values).
async fn record_metrics(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_string();
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    telemetry::observe_request(&method, &route, response.status().as_u16(), started.elapsed());
    response
}

/// Middleware that answers with an empty body (the timeout's 503) get the API's JSON body.
async fn json_for_bare_errors(response: Response) -> Response {
    let is_bare = response.headers().get(header::CONTENT_TYPE).is_none();
    if is_bare && response.status() == StatusCode::SERVICE_UNAVAILABLE {
        return ApiError::Unavailable("request timed out".into()).into_response();
    }
    response
}

fn cors(origins: &[String]) -> CorsLayer {
    let allowed: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, HeaderName::from_static("x-weave-retry-id")])
        .allow_credentials(true)
        .max_age(Duration::from_secs(600))
}
