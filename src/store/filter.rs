//! `CallsFilter` → SQL conditions (API.md §7.1). The one place a filter becomes SQL: every
//! value is bound, and only column names written here are spliced in.
use sqlx::{Postgres, QueryBuilder};

use super::expr::Condition;
use crate::domain::filter::{active, CallsFilter, NamePatterns};

/// Which calls an endpoint selects: a structured filter and an optional compiled query.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub filter: CallsFilter,
    pub query: Option<Condition>,
}

/// The part of a selection rollups can apply: they keep calls apart only by op and root-ness.
#[derive(Debug, Clone, Default)]
pub struct SlotFilter {
    pub op_names: Option<Vec<String>>,
    pub roots_only: bool,
}

impl Selection {
    /// The selection as rollups can apply it, or None when it asks about anything else.
    pub fn slot_filter(&self) -> Option<SlotFilter> {
        // Exhaustive, so a new filter field cannot slip past the rollups unnoticed.
        let CallsFilter {
            op_names,
            input_refs,
            output_refs,
            parent_ids,
            trace_ids,
            call_ids,
            thread_ids,
            turn_ids,
            wb_user_ids,
            wb_run_ids,
            trace_roots_only,
        } = &self.filter;
        let others =
            [input_refs, output_refs, parent_ids, trace_ids, call_ids, thread_ids, turn_ids, wb_user_ids, wb_run_ids];
        if self.query.is_some() || others.iter().any(|list| active(list).is_some()) {
            return None;
        }
        Some(SlotFilter {
            op_names: active(op_names).map(<[String]>::to_vec),
            roots_only: *trace_roots_only == Some(true),
        })
    }
}

/// Append ` and <condition>` for the filter's active fields and the query, on the calls table
/// aliased `alias` (a literal from our code, never user input).
pub fn push_conditions(qb: &mut QueryBuilder<'_, Postgres>, alias: &'static str, selection: &Selection) {
    push_filter(qb, alias, &selection.filter);
    if let Some(query) = &selection.query {
        query.push(qb, alias);
    }
}

fn push_filter(qb: &mut QueryBuilder<'_, Postgres>, alias: &'static str, filter: &CallsFilter) {
    if let Some(names) = active(&filter.op_names) {
        push_name_match(qb, alias, "op_name", names);
    }
    if let Some(refs) = active(&filter.input_refs) {
        push_ref_match(qb, alias, "input_refs", refs);
    }
    if let Some(refs) = active(&filter.output_refs) {
        push_ref_match(qb, alias, "output_refs", refs);
    }
    let id_lists = [
        ("parent_id", &filter.parent_ids),
        ("trace_id", &filter.trace_ids),
        ("id", &filter.call_ids),
        ("thread_id", &filter.thread_ids),
        ("turn_id", &filter.turn_ids),
        ("wb_user_id", &filter.wb_user_ids),
        ("wb_run_id", &filter.wb_run_ids),
    ];
    for (column, values) in id_lists {
        if let Some(values) = active(values) {
            qb.push(format_args!(" and {alias}.{column} = any(")).push_bind(values.to_vec()).push(")");
        }
    }
    if filter.trace_roots_only == Some(true) {
        qb.push(format_args!(" and {alias}.parent_id is null"));
    }
}

pub(super) fn push_name_match(qb: &mut QueryBuilder<'_, Postgres>, alias: &str, column: &str, names: &[String]) {
    let patterns = NamePatterns::split(names);
    qb.push(" and (false");
    if !patterns.exact.is_empty() {
        qb.push(format_args!(" or {alias}.{column} = any(")).push_bind(patterns.exact).push(")");
    }
    if !patterns.prefixes.is_empty() {
        qb.push(format_args!(" or exists (select 1 from unnest("))
            .push_bind(patterns.prefixes)
            .push(format_args!("::text[]) p where starts_with({alias}.{column}, p))"));
    }
    qb.push(")");
}

fn push_ref_match(qb: &mut QueryBuilder<'_, Postgres>, alias: &str, column: &str, refs: &[String]) {
    let patterns = NamePatterns::split(refs);
    // Implied by either match below; said so the partial ref indexes (migration 0016) apply.
    qb.push(format_args!(" and {alias}.{column} <> '{{}}' and (false"));
    if !patterns.exact.is_empty() {
        qb.push(format_args!(" or {alias}.{column} && ")).push_bind(patterns.exact).push("::text[]");
    }
    if !patterns.prefixes.is_empty() {
        qb.push(format_args!(" or exists (select 1 from unnest({alias}.{column}) r, unnest("))
            .push_bind(patterns.prefixes)
            .push("::text[]) p where starts_with(r, p))");
    }
    qb.push(")");
}
