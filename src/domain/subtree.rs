//! Usage with descendant rollup (API.md §5.1), as a pure function over a set of calls.
//!
//! Each call's total is its own usage plus that of every call of the set reachable from it
//! through parent links that stay inside the set. Calls on a parent cycle keep only their own
//! usage and receive nobody's. One pass: children are summed before parents (post-order), so a
//! 10,000-call chain costs 10,000 merges, not 50 million.
use std::collections::HashMap;
use std::sync::Arc;

use super::costs::Cost;
use super::usage::Counters;

/// Usage of one model, as the usage endpoints return it: counters and their costs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UsageTotals {
    pub counters: Counters,
    pub cost: Cost,
}

impl UsageTotals {
    pub fn add(&mut self, other: &Self) {
        self.counters.add(&other.counters);
        self.cost.add(&other.cost);
    }
}

/// Usage by model, in byte order of model. A call names a few models, so a sorted list of
/// shared names beats a map: a 10,000-call trace allocated a map node and a name per call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageMap(Vec<(Arc<str>, UsageTotals)>);

impl UsageMap {
    /// Add `usage` to the model's total (a model not yet listed starts at it).
    pub fn add(&mut self, model: &Arc<str>, usage: &UsageTotals) {
        match self.0.binary_search_by(|(m, _)| (**m).cmp(model)) {
            Ok(i) => self.0[i].1.add(usage),
            Err(i) => self.0.insert(i, (Arc::clone(model), *usage)),
        }
    }

    /// The model's total, if listed.
    pub fn get(&self, model: &str) -> Option<&UsageTotals> {
        self.0.binary_search_by(|(m, _)| (**m).cmp(model)).ok().map(|i| &self.0[i].1)
    }

    /// Models and totals, in byte order of model.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &UsageTotals)> {
        self.0.iter().map(|(m, u)| (&**m, u))
    }
}

/// Roll usage up the parent links of `calls` (`(id, parent_id)` pairs). `own` holds each
/// call's own usage, in the order of `calls`. Returns every call's total, in that order.
pub fn subtree_totals(calls: &[(&str, Option<&str>)], own: Vec<UsageMap>) -> Vec<UsageMap> {
    let n = calls.len();
    let index: HashMap<&str, usize> = calls.iter().enumerate().map(|(i, &(id, _))| (id, i)).collect();
    let parent: Vec<Option<usize>> = calls.iter().map(|&(_, p)| p.and_then(|p| index.get(p).copied())).collect();
    let on_cycle = cycle_members(&parent);

    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut roots = Vec::new();
    for i in 0..n {
        match parent[i] {
            _ if on_cycle[i] => {}
            Some(p) if !on_cycle[p] => children[p].push(i),
            _ => roots.push(i),
        }
    }

    let mut totals = own;
    totals.resize_with(n, UsageMap::default);
    // Iterative post-order from each root: a node is finished after all its children.
    for root in roots {
        let mut stack = vec![(root, false)];
        while let Some((node, children_done)) = stack.pop() {
            if children_done {
                if let Some(p) = parent[node].filter(|&p| !on_cycle[p] && !on_cycle[node]) {
                    let child = std::mem::take(&mut totals[node]);
                    merge_into(&mut totals[p], &child);
                    totals[node] = child;
                }
                continue;
            }
            stack.push((node, true));
            stack.extend(children[node].iter().map(|&c| (c, false)));
        }
    }
    totals
}

fn merge_into(target: &mut UsageMap, source: &UsageMap) {
    for (model, usage) in &source.0 {
        target.add(model, usage);
    }
}

/// Which calls lie on a parent cycle (a self-parent included).
fn cycle_members(parent: &[Option<usize>]) -> Vec<bool> {
    const NEW: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![NEW; parent.len()];
    let mut on_cycle = vec![false; parent.len()];
    for start in 0..parent.len() {
        let mut path = Vec::new();
        let mut node = Some(start);
        while let Some(i) = node {
            match state[i] {
                NEW => {
                    state[i] = ON_PATH;
                    path.push(i);
                    node = parent[i];
                }
                ON_PATH => {
                    // The path from the first visit of `i` onwards is a cycle.
                    let from = path.iter().position(|&p| p == i).expect("i is on the path");
                    path[from..].iter().for_each(|&c| on_cycle[c] = true);
                    break;
                }
                _ => break,
            }
        }
        path.iter().for_each(|&i| state[i] = DONE);
    }
    on_cycle
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(tokens: i64) -> UsageMap {
        let mut map = UsageMap::default();
        let usage = UsageTotals {
            counters: Counters { requests: 1, input_tokens: tokens, total_tokens: tokens, ..Default::default() },
            cost: Cost::default(),
        };
        map.add(&Arc::from("m"), &usage);
        map
    }

    fn calls<'a>(pairs: &[(&'a str, Option<&'a str>)]) -> Vec<(&'a str, Option<&'a str>)> {
        pairs.to_vec()
    }

    fn tokens(map: &UsageMap) -> i64 {
        map.get("m").map_or(0, |u| u.counters.input_tokens)
    }

    #[test]
    fn a_call_totals_its_own_usage_and_all_its_descendants_in_the_set() {
        let set = calls(&[
            ("root", None),
            ("a", Some("root")),
            ("b", Some("a")),
            ("c", Some("root")),
            ("orphan", Some("missing")),
        ]);
        let own = vec![UsageMap::default(), usage(1), usage(10), usage(100), usage(1000)];
        let totals = subtree_totals(&set, own);
        assert_eq!(totals.iter().map(tokens).collect::<Vec<_>>(), [111, 11, 10, 100, 1000]);
        assert_eq!(totals[0].get("m").unwrap().counters.requests, 3);
    }

    #[test]
    fn cycle_members_keep_their_own_usage_and_receive_none() {
        let set = calls(&[
            ("x", Some("y")),
            ("y", Some("x")),
            ("self", Some("self")),
            ("below", Some("x")),
            ("leaf", Some("below")),
        ]);
        let own = vec![usage(1), usage(2), usage(4), usage(8), usage(16)];
        let totals = subtree_totals(&set, own);
        assert_eq!(totals.iter().map(tokens).collect::<Vec<_>>(), [1, 2, 4, 24, 16]);
    }

    #[test]
    fn a_ten_thousand_call_chain_rolls_up_without_recursion() {
        let ids: Vec<String> = (0..10_000).map(|i| i.to_string()).collect();
        let set: Vec<(&str, Option<&str>)> =
            ids.iter().enumerate().map(|(i, id)| (id.as_str(), i.checked_sub(1).map(|p| ids[p].as_str()))).collect();
        let own = vec![usage(1); ids.len()];
        let totals = subtree_totals(&set, own);
        assert_eq!(tokens(&totals[0]), 10_000);
        assert_eq!(tokens(&totals[9_999]), 1);
    }
}
