//! The README's demo examples answer exactly what the README shows, on the `demo` data.
use serde_json::Value;
use sqlx::PgPool;
use weave_trace_server::store::MIGRATOR;

use crate::support::*;

/// `(path, request body, expected answer)` of every `<!-- demo example -->` in the README.
fn examples() -> Vec<(String, Value, Value)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let block = |text: &str, fence: &str| -> String {
        let start = text.find(fence).unwrap_or_else(|| panic!("no {fence} block")) + fence.len();
        let end = start + text[start..].find("```").unwrap();
        text[start..end].to_string()
    };
    readme
        .split("<!-- demo example -->")
        .skip(1)
        .map(|part| {
            let command = block(part, "```sh\n");
            let path = command.split("localhost:6345").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
            let body = command.split(" -d '").nth(1).unwrap().rsplit_once('\'').unwrap().0.to_string();
            let answer = block(&part[part.find("```json").unwrap()..], "```json\n");
            (path, serde_json::from_str(&body).unwrap(), serde_json::from_str(&answer).unwrap())
        })
        .collect()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_readme_demo_examples_answer_what_the_readme_shows(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    weave_trace_server::demo::load(&pool, "demo/app").await.unwrap();
    let admin = weave_trace_server::keys::create(&pool, "admin", &[], true).await.unwrap().secret;
    let examples = examples();
    assert!(examples.len() >= 4, "{} examples", examples.len());
    for (path, body, expected) in examples {
        let reply = app.send(&path, body.to_string(), Some(&basic_auth(&admin)), "application/json").await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(reply.body, expected, "{path} {body}");
    }
}

#[test]
fn every_setting_is_in_the_readme_table_and_in_env_example() {
    let root = env!("CARGO_MANIFEST_DIR");
    let read = |name: &str| std::fs::read_to_string(format!("{root}/{name}")).unwrap();
    let (config, readme, example) = (read("src/config.rs"), read("README.md"), read(".env.example"));
    let settings: Vec<&str> = config.split("env = \"").skip(1).map(|rest| rest.split('"').next().unwrap()).collect();
    assert!(settings.len() >= 20, "{settings:?}");
    for name in settings {
        assert!(readme.contains(&format!("| `{name}` |")), "{name} is not in the README's configuration table");
        assert!(example.contains(&format!("{name}=")), "{name} is not in .env.example");
    }
}
