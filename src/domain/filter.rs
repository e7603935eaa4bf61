//! `CallsFilter` (API.md §7.1): the structured filter every call-selecting endpoint takes.
//! `store::filter` turns it into SQL; this is only its shape and its matching rule for names.
use serde::Deserialize;
use utoipa::ToSchema;

/// All lists: null or `[]` means no condition; at most 1000 values each. Conditions are ANDed.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallsFilter {
    /// Exact op names, or `<prefix>:*` for every version of an op.
    #[serde(default, deserialize_with = "super::bounded_list")]
    pub op_names: Option<Vec<String>>,
    /// Refs found anywhere in the call's inputs (same `:*` rule).
    #[serde(default, deserialize_with = "super::bounded_list")]
    pub input_refs: Option<Vec<String>>,
    /// Refs found anywhere in the call's output (same `:*` rule).
    #[serde(default, deserialize_with = "super::bounded_list")]
    pub output_refs: Option<Vec<String>>,
    #[serde(default, deserialize_with = "super::bounded_list")]
    pub parent_ids: Option<Vec<String>>,
    #[serde(default, deserialize_with = "super::bounded_list")]
    pub trace_ids: Option<Vec<String>>,
    #[serde(default, deserialize_with = "super::bounded_list")]
    pub call_ids: Option<Vec<String>>,
    #[serde(default, deserialize_with = "super::bounded_list")]
    pub thread_ids: Option<Vec<String>>,
    #[serde(default, deserialize_with = "super::bounded_list")]
    pub turn_ids: Option<Vec<String>>,
    #[serde(default, deserialize_with = "super::bounded_list")]
    pub wb_user_ids: Option<Vec<String>>,
    #[serde(default, deserialize_with = "super::bounded_list")]
    pub wb_run_ids: Option<Vec<String>>,
    /// True: only calls without a parent.
    #[serde(default)]
    pub trace_roots_only: Option<bool>,
}

/// A list of names split into exact values and `:*` prefixes (the prefix keeps its colon).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct NamePatterns {
    pub exact: Vec<String>,
    pub prefixes: Vec<String>,
}

impl NamePatterns {
    pub fn split(values: &[String]) -> Self {
        let mut patterns = Self::default();
        for value in values {
            match value.strip_suffix('*').filter(|v| v.ends_with(':')) {
                Some(prefix) => patterns.prefixes.push(prefix.to_string()),
                None => patterns.exact.push(value.clone()),
            }
        }
        patterns
    }
}

/// `Some(list)` only when a list field holds values (null and `[]` mean no condition).
pub fn active(list: &Option<Vec<String>>) -> Option<&[String]> {
    list.as_deref().filter(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_colon_star_suffix_is_a_prefix_match_and_anything_else_is_exact() {
        let patterns =
            NamePatterns::split(&["weave:///e/p/op/foo:*".into(), "weave:///e/p/op/bar:abc".into(), "x*".into()]);
        assert_eq!(patterns.prefixes, vec!["weave:///e/p/op/foo:"]);
        assert_eq!(patterns.exact, vec!["weave:///e/p/op/bar:abc", "x*"]);
    }
}
