//! Domain types: parsed once from requests, so handlers and the store only see valid data.
//!
//! Deserialisation errors raised here are written `"<pydantic type>|<message>"`; the JSON
//! extractor splits them into the `type` and `msg` of a 422 detail (see `routes::extract`).

/// Calls as stored and returned, and their computed fields (API.md §2.1, §7.3).
pub mod call;
/// Prices and costs (API.md §6).
pub mod costs;
/// Query expressions (API.md §7.2).
pub mod expr;
/// `CallsFilter` (API.md §7.1).
pub mod filter;
/// Ingestion planning: call halves into rows to write.
pub mod ingest;
/// API keys as values: principals, hashes, lookup prefixes.
pub mod keys;
/// `entity/project` ids.
pub mod project;
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
