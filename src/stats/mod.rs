//! The statistics of `/calls/stats` (API.md §4) and of `/api/v1/runs/stats` (§12) as pure
//! functions: no HTTP, no SQL.
//!
//! `granularity` picks the bucket size, `buckets` lays wall-clock buckets over a window in an
//! IANA timezone (DST gaps and folds included) and maps instants to them, `metrics` turns
//! the values that fall in a bucket into the response's keys (aggregations and exact
//! percentiles), `slots` says which part of a window the 15-minute rollups can answer, and
//! `tally` holds each bucket's values as the store streams rows and slots into it (`binned`
//! finds the percentiles of rolled-up latencies from histograms and a few pages); `runs`
//! summarises runs, whole or per group.

/// Aggregations, percentiles and key names.
pub mod aggregate;
/// Exact percentiles of paged rollup latencies, reading only the bins that hold them.
pub mod binned;
/// Wall-clock buckets in a timezone.
pub mod buckets;
/// Bucket size: auto selection and the bucket cap.
pub mod granularity;
/// LangSmith-style run statistics.
pub mod runs;
/// Which part of a window 15-minute rollups can answer.
pub mod slots;
/// Per-bucket tallies fed by the store, rendered into the response.
pub mod tally;

#[cfg(test)]
mod reference_tests;
