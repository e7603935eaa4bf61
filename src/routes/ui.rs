//! The dashboard (`/ui/`): static files compiled into the binary (it works offline, with no
//! CDN and no separate service), and the links the `weave` SDK prints for a project or a call
//! (`/{entity}/{project}/weave`, `/{entity}/{project}/r/call/{id}`), sent to its pages. The
//! pages use only the public API, with the key the user pastes.
use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::domain::refs::encode;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(|| async { asset("index.html") }))
        .route("/ui/{*file}", get(|Path(file): Path<String>| async move { asset(&file) }))
        .route("/{entity}/{project}/weave", get(project_link))
        .route(
            "/{entity}/{project}/weave/{*rest}",
            get(|Path((e, p, _)): Path<(String, String, String)>| async move { project_link(Path((e, p))).await }),
        )
        .route("/{entity}/{project}/r/call/{id}", get(call_link))
}

/// The files, as built into the binary (`ui/` in the repository).
const FILES: [(&str, &str, &[u8]); 6] = [
    ("index.html", "text/html; charset=utf-8", include_bytes!("../../ui/index.html")),
    ("app.js", "text/javascript; charset=utf-8", include_bytes!("../../ui/app.js")),
    ("app.css", "text/css; charset=utf-8", include_bytes!("../../ui/app.css")),
    ("vendor/uPlot.iife.min.js", "text/javascript; charset=utf-8", include_bytes!("../../ui/vendor/uPlot.iife.min.js")),
    ("vendor/uPlot.min.css", "text/css; charset=utf-8", include_bytes!("../../ui/vendor/uPlot.min.css")),
    ("favicon.svg", "image/svg+xml", include_bytes!("../../ui/favicon.svg")),
];

/// Everything from this origin; inline styles only because the chart library sets them.
const CSP: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn asset(name: &str) -> Response {
    let Some((_, content_type, body)) = FILES.iter().find(|(file, _, _)| *file == name) else {
        return (StatusCode::NOT_FOUND, "Not found").into_response();
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
            // The files change only with the binary: revalidate, never serve a stale app.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        *body,
    )
        .into_response()
}

async fn project_link(Path((entity, project)): Path<(String, String)>) -> Redirect {
    Redirect::to(&format!("/ui/#/{}/{}", encode(&entity), encode(&project)))
}

async fn call_link(Path((entity, project, id)): Path<(String, String, String)>) -> Redirect {
    Redirect::to(&format!("/ui/#/{}/{}/call/{}", encode(&entity), encode(&project), encode(&id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_parts_are_percent_encoded() {
        assert_eq!(encode("acme"), "acme");
        assert_eq!(encode("my project/x\r\n"), "my%20project%2Fx%0D%0A");
        assert_eq!(encode("é"), "%C3%A9");
    }
}
