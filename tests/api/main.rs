//! API tests: each runs against a fresh, migrated Postgres database (`#[sqlx::test]`) and drives
//! the real router. One test binary, so the suite links once.
mod auth;
mod calls;
mod citus;
mod costs;
mod errors;
mod expr;
mod feedback;
mod files;
mod filters;
mod graphql;
mod hostile;
mod limits;
mod objects;
mod official_client;
mod openapi;
mod query;
mod readme;
mod rollups;
mod runs;
mod service;
mod stats;
mod support;
mod tables;
mod usage;
