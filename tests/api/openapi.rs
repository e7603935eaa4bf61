//! The checked-in OpenAPI document must match the generated one.
use std::path::Path;

#[test]
fn the_checked_in_openapi_document_matches_the_generated_one() {
    let generated = weave_trace_server::routes::openapi().to_pretty_json().unwrap() + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "openapi/openapi.json is out of date; regenerate it with `UPDATE_OPENAPI=1 cargo test --test api openapi`"
    );
}
