//! Domain types: parsed once from requests, so handlers and the store only see valid data.
//!
//! Deserialisation errors raised here are written `"<pydantic type>|<message>"`; the JSON
//! extractor splits them into the `type` and `msg` of a 422 detail (see `routes::extract`).

/// Calls as stored and returned, and their computed fields (API.md §2.1, §7.3).
pub mod call;
/// Prices and costs (API.md §6).
pub mod costs;
/// Content addressing: canonical JSON and digests as Weave computes them.
pub mod digest;
/// Query expressions (API.md §7.2).
pub mod expr;
/// Feedback payloads: reactions and notes.
pub mod feedback;
/// `CallsFilter` (API.md §7.1).
pub mod filter;
/// The GraphQL the SDK sends W&B before it traces.
pub mod graphql;
/// Ingestion planning: call halves into rows to write.
pub mod ingest;
/// API keys as values: principals, hashes, lookup prefixes.
pub mod keys;
/// Object names and versions.
pub mod objects;
/// `entity/project` ids.
pub mod project;
/// Weave refs: parse and print.
pub mod refs;
/// LangSmith's filter language (API.md §12.4).
pub mod run_filter;
/// Usage rolled up through parent links (API.md §5.1).
pub mod subtree;
/// Datetimes as the API reads and writes them (API.md §1).
pub mod time;
/// Usage normalisation (API.md §3).
pub mod usage;

pub use project::ProjectId;
pub use time::Timestamp;

/// Raise a typed deserialisation error (see the module comment).
pub(crate) fn de_error<E: serde::de::Error>(kind: &str, msg: impl std::fmt::Display) -> E {
    E::custom(format_args!("{kind}|{msg}"))
}

/// Most values a list field of a request may hold (API.md §7.1, §2.2).
pub const MAX_LIST_LEN: usize = 1000;

/// Deserialise an optional list of at most [`MAX_LIST_LEN`] items.
pub(crate) fn bounded_list<'de, D, T>(deserializer: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    let list = <Option<Vec<T>> as serde::Deserialize>::deserialize(deserializer)?;
    if let Some(items) = &list {
        if items.len() > MAX_LIST_LEN {
            return Err(de_error(
                "too_long",
                format_args!("List should have at most {MAX_LIST_LEN} items after validation, not {}", items.len()),
            ));
        }
    }
    Ok(list)
}

/// Deserialise a required list of at most [`MAX_LIST_LEN`] items (null reads as empty).
pub(crate) fn required_bounded_list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    bounded_list(deserializer).map(Option::unwrap_or_default)
}
