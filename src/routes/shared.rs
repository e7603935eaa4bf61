//! Request and response shapes several endpoints share.
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An empty JSON object (no other properties, so a batch result is exactly one of its kinds).
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortDirection {
    Asc,
    Desc,
}

impl SortDirection {
    pub fn is_descending(self) -> bool {
        matches!(self, Self::Desc)
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SortBy {
    /// A top-level field, `summary.weave.latency_ms|status|trace_name`, or a JSON path under
    /// `inputs.`, `output.`, `attributes.`, `summary.`.
    pub field: String,
    pub direction: SortDirection,
}
