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

impl CallsFilter {
    /// The filter with bare run ids (`run-1`) qualified to the project's (`entity/project/run-1`),
    /// as the SDK stores them.
    pub fn qualified(mut self, project: &super::ProjectId) -> Self {
        if let Some(runs) = &mut self.wb_run_ids {
            for run in runs.iter_mut().filter(|r| !r.contains('/')) {
                *run = format!("{project}/{run}");
            }
        }
        self
    }
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
    fn bare_run_ids_are_qualified_with_the_project() {
        let filter =
            CallsFilter { wb_run_ids: Some(vec!["run-1".into(), "other/app/run-2".into()]), ..Default::default() };
        let project = super::super::ProjectId::parse("acme/app").unwrap();
        assert_eq!(filter.qualified(&project).wb_run_ids.unwrap(), ["acme/app/run-1", "other/app/run-2"]);
    }

    #[test]
    fn a_colon_star_suffix_is_a_prefix_match_and_anything_else_is_exact() {
        let patterns =
            NamePatterns::split(&["weave:///e/p/op/foo:*".into(), "weave:///e/p/op/bar:abc".into(), "x*".into()]);
        assert_eq!(patterns.prefixes, vec!["weave:///e/p/op/foo:"]);
        assert_eq!(patterns.exact, vec!["weave:///e/p/op/bar:abc", "x*"]);
    }
}
