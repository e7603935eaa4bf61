//! Costs (API.md §6): which price applies to a usage row, and what the row costs.
//!
//! Prices are few (the shipped defaults plus a project's own rows), so a project's whole price
//! book is loaded once per request and every usage row is priced here, in memory, rather than
//! by a lateral join per row in SQL.
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::usage::{Counters, UsageRow};
use super::Timestamp;

/// One row of the price table, USD per token. Its serde form is the row as the API shows it
/// (`/cost/query`) and as the store reads and writes it (a JSON record of the table), so the
/// fields are written down once, here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Price {
    pub id: String,
    pub llm_id: String,
    pub provider_id: String,
    pub pricing_level: String,
    pub pricing_level_id: String,
    pub prompt_token_cost: f64,
    pub completion_token_cost: f64,
    pub cache_read_input_token_cost: f64,
    pub cache_creation_input_token_cost: f64,
    pub prompt_token_cost_unit: String,
    pub completion_token_cost_unit: String,
    pub effective_date: Timestamp,
    pub created_at: Timestamp,
    pub created_by: String,
}

/// How a price field reads in a query expression (`/cost/query`, `/cost/purge`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceFieldKind {
    Text,
    Number,
    Time,
}

impl Price {
    /// Every field of a price, in the table's order, with its kind.
    pub const FIELDS: [(&'static str, PriceFieldKind); 14] = [
        ("id", PriceFieldKind::Text),
        ("pricing_level", PriceFieldKind::Text),
        ("pricing_level_id", PriceFieldKind::Text),
        ("provider_id", PriceFieldKind::Text),
        ("llm_id", PriceFieldKind::Text),
        ("prompt_token_cost", PriceFieldKind::Number),
        ("completion_token_cost", PriceFieldKind::Number),
        ("cache_read_input_token_cost", PriceFieldKind::Number),
        ("cache_creation_input_token_cost", PriceFieldKind::Number),
        ("prompt_token_cost_unit", PriceFieldKind::Text),
        ("completion_token_cost_unit", PriceFieldKind::Text),
        ("effective_date", PriceFieldKind::Time),
        ("created_at", PriceFieldKind::Time),
        ("created_by", PriceFieldKind::Text),
    ];

    /// The field named `name`, as the static name of its column.
    pub fn field(name: &str) -> Option<(&'static str, PriceFieldKind)> {
        Self::FIELDS.iter().copied().find(|(field, _)| *field == name)
    }

    fn is_project(&self) -> bool {
        self.pricing_level == "project"
    }

    /// The price as a JSON object.
    pub fn to_json(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }
}

/// The prices that apply to one project: its own rows and the defaults, by `llm_id`.
#[derive(Debug, Clone, Default)]
pub struct PriceBook {
    by_llm: HashMap<String, Vec<Price>>,
}

impl PriceBook {
    pub fn new(prices: Vec<Price>) -> Self {
        Self::default().with(prices)
    }

    /// This book with `more` prices added (a project's own rows on top of the defaults).
    pub fn with(&self, more: impl IntoIterator<Item = Price>) -> Self {
        let mut by_llm = self.by_llm.clone();
        for price in more {
            by_llm.entry(price.llm_id.clone()).or_default().push(price);
        }
        Self { by_llm }
    }

    /// The price of `model` for a call that started at `started_at`: candidates are the rows
    /// for the model itself, else for its base name; among them effective ones first
    /// (`effective_date ≤ started_at`), then project before default, then the latest date.
    pub fn price_for(&self, model: &str, started_at: DateTime<Utc>) -> Option<&Price> {
        let candidates = self.candidates(model)?;
        candidates.iter().max_by(|a, b| {
            let key = |p: &Price| (p.effective_date.0 <= started_at, p.is_project(), p.effective_date);
            key(a).cmp(&key(b)).then_with(|| a.id.cmp(&b.id))
        })
    }

    /// Whether one price applies to `model` for every start in `[from, to)`: no candidate
    /// becomes effective strictly inside it.
    pub fn is_constant_over(&self, model: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        self.candidates(model)
            .is_none_or(|prices| !prices.iter().any(|p| from < p.effective_date.0 && p.effective_date.0 < to))
    }

    /// Every instant at which some price takes effect.
    pub fn effective_dates(&self) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        self.by_llm.values().flatten().map(|p| p.effective_date.0)
    }

    fn candidates(&self, model: &str) -> Option<&Vec<Price>> {
        self.by_llm.get(model).or_else(|| self.by_llm.get(base_name(model)))
    }
}

/// A model name without a `provider/` prefix and without a trailing date (`-YYYY-MM-DD` or
/// `-YYYYMMDD`): `openai/gpt-4o-2024-08-06` → `gpt-4o`.
pub fn base_name(model: &str) -> &str {
    let name = model.rsplit_once('/').map_or(model, |(_, name)| name);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(stem) = name.len().checked_sub(11).and_then(|i| name.get(..i)) {
        let tail = &name[stem.len()..];
        let parts: Vec<&str> = tail.split('-').collect();
        if let ["", y, m, d] = parts.as_slice() {
            if y.len() == 4 && m.len() == 2 && d.len() == 2 && digits(y) && digits(m) && digits(d) {
                return stem;
            }
        }
    }
    if let Some(stem) = name.len().checked_sub(9).and_then(|i| name.get(..i)) {
        let tail = &name[stem.len()..];
        if tail.starts_with('-') && tail.len() == 9 && digits(&tail[1..]) {
            return stem;
        }
    }
    name
}

/// What one usage row costs, in USD.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    pub cache_creation: f64,
}

impl Cost {
    pub fn total(&self) -> f64 {
        self.input + self.output + self.cache_read + self.cache_creation
    }

    pub fn add(&mut self, other: &Cost) {
        self.input += other.input;
        self.output += other.output;
        self.cache_read += other.cache_read;
        self.cache_creation += other.cache_creation;
    }
}

/// Token counts summed over usage rows that share a price: what their costs need. Summed costs
/// are summed tokens × rate, so they are exact up to one rounding per price and the same
/// whether the rows come from the calls table or from rollups.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TokenSums {
    /// Input tokens minus cached ones, floored at 0 per row: what the prompt rate applies to.
    pub uncached_input: i128,
    pub output: i128,
    pub cache_read: i128,
    pub cache_creation: i128,
}

impl TokenSums {
    /// The sums of one row.
    pub fn of_row(counters: &Counters) -> Self {
        let mut sums = Self::default();
        sums.add_row(counters);
        sums
    }

    /// Cached tokens are billed at their own rates, so the input rate applies only to the rest,
    /// never to a negative count.
    pub fn add_row(&mut self, c: &Counters) {
        let uncached = c
            .input_tokens
            .saturating_sub(c.cache_read_input_tokens)
            .saturating_sub(c.cache_creation_input_tokens)
            .max(0);
        self.uncached_input += i128::from(uncached);
        self.output += i128::from(c.output_tokens);
        self.cache_read += i128::from(c.cache_read_input_tokens);
        self.cache_creation += i128::from(c.cache_creation_input_tokens);
    }

    pub fn add(&mut self, other: &TokenSums) {
        self.uncached_input += other.uncached_input;
        self.output += other.output;
        self.cache_read += other.cache_read;
        self.cache_creation += other.cache_creation;
    }

    /// What these tokens cost at a price; no price costs 0 (and the rows count as unpriced).
    pub fn cost(&self, price: Option<&Price>) -> Cost {
        let Some(price) = price else { return Cost::default() };
        // Through i64 when it fits: the same correctly rounded value, without the slow
        // 128-bit conversion (run statistics price a million runs one by one).
        let f = |n: i128| i64::try_from(n).map_or(n as f64, |n| n as f64);
        Cost {
            input: f(self.uncached_input) * price.prompt_token_cost,
            output: f(self.output) * price.completion_token_cost,
            cache_read: f(self.cache_read) * price.cache_read_input_token_cost,
            cache_creation: f(self.cache_creation) * price.cache_creation_input_token_cost,
        }
    }
}

/// The cost of one usage row at a price.
pub fn cost(counters: &Counters, price: Option<&Price>) -> Cost {
    TokenSums::of_row(counters).cost(price)
}

/// What one call's usage cost: an entry per priced model (`summary.weave.costs`), and the
/// models no price applies to (`summary.weave.unpriced_models`, so they stay visible).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallCosts {
    pub priced: Map<String, Value>,
    pub unpriced: Vec<String>,
}

/// The costs of one call's usage rows. Each entry carries the usage, what it cost, and every
/// field of the price applied (Weave's keys: `prompt_tokens`, `completion_tokens`, `requests`,
/// `total_tokens`, `prompt_token_cost`, ..., `created_at`, `created_by`; plus the cache counts
/// and costs, `total_cost`, and the price's `id` as `price_id`).
pub fn call_costs(usage: &[UsageRow], started_at: DateTime<Utc>, book: &PriceBook) -> CallCosts {
    let mut out = CallCosts::default();
    for row in usage {
        let c = &row.counters;
        let Some(price) = book.price_for(&row.model, started_at) else {
            out.unpriced.push(row.model.clone());
            continue;
        };
        let cost = cost(c, Some(price));
        let mut entry = json!({
            "prompt_tokens": c.input_tokens, "completion_tokens": c.output_tokens, "requests": c.requests,
            "total_tokens": c.total_tokens, "cache_read_input_tokens": c.cache_read_input_tokens,
            "cache_creation_input_tokens": c.cache_creation_input_tokens,
            "prompt_tokens_total_cost": cost.input, "completion_tokens_total_cost": cost.output,
            "cache_read_input_tokens_total_cost": cost.cache_read,
            "cache_creation_input_tokens_total_cost": cost.cache_creation, "total_cost": cost.total(),
        });
        if let Value::Object(entry) = &mut entry {
            let mut rates = price.to_json();
            if let Some(id) = rates.remove("id") {
                entry.insert("price_id".into(), id);
            }
            entry.extend(rates);
        }
        out.priced.insert(row.model.clone(), entry);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn price(id: &str, llm: &str, level: &str, effective: &str, prompt: f64) -> Price {
        Price {
            id: id.into(),
            llm_id: llm.into(),
            provider_id: "p".into(),
            pricing_level: level.into(),
            pricing_level_id: if level == "project" { "acme/app".into() } else { "default".into() },
            prompt_token_cost: prompt,
            completion_token_cost: 0.0,
            cache_read_input_token_cost: 0.0,
            cache_creation_input_token_cost: 0.0,
            prompt_token_cost_unit: "USD".into(),
            completion_token_cost_unit: "USD".into(),
            effective_date: at(effective).into(),
            created_at: at(effective).into(),
            created_by: "t".into(),
        }
    }

    #[test]
    fn base_names_drop_the_provider_prefix_and_a_trailing_date() {
        assert_eq!(base_name("openai/gpt-4o-2024-08-06"), "gpt-4o");
        assert_eq!(base_name("claude-3-5-sonnet-20241022"), "claude-3-5-sonnet");
        assert_eq!(base_name("gpt-4o"), "gpt-4o");
        assert_eq!(base_name("bedrock/anthropic/claude-3-haiku"), "claude-3-haiku");
        assert_eq!(base_name("model-2024-8-06"), "model-2024-8-06");
        assert_eq!(base_name("x-12345678"), "x");
        assert_eq!(base_name("-20240101"), "");
    }

    #[test]
    fn effective_prices_win_then_project_then_latest() {
        let book = PriceBook::new(vec![
            price("d1", "m", "default", "2024-01-01T00:00:00Z", 1.0),
            price("d2", "m", "default", "2025-01-01T00:00:00Z", 2.0),
            price("p1", "m", "project", "2024-06-01T00:00:00Z", 3.0),
            price("p2", "m", "project", "2026-01-01T00:00:00Z", 4.0),
        ]);
        assert_eq!(book.price_for("m", at("2025-06-01T00:00:00Z")).unwrap().id, "p1");
        assert_eq!(book.price_for("m", at("2024-03-01T00:00:00Z")).unwrap().id, "d1");
        assert_eq!(book.price_for("m", at("2026-06-01T00:00:00Z")).unwrap().id, "p2");
        // Nothing effective yet: project first, then the latest date.
        assert_eq!(book.price_for("m", at("2023-01-01T00:00:00Z")).unwrap().id, "p2");
        assert!(book.price_for("other", at("2025-01-01T00:00:00Z")).is_none());
    }

    #[test]
    fn a_dated_or_prefixed_model_falls_back_to_its_base_name_only_without_its_own_rows() {
        let book = PriceBook::new(vec![
            price("base", "gpt-4o", "default", "2024-01-01T00:00:00Z", 1.0),
            price("own", "gpt-4o-2024-08-06", "default", "2024-01-01T00:00:00Z", 2.0),
        ]);
        let t = at("2025-01-01T00:00:00Z");
        assert_eq!(book.price_for("openai/gpt-4o-2024-05-13", t).unwrap().id, "base");
        assert_eq!(book.price_for("gpt-4o-2024-08-06", t).unwrap().id, "own");
    }

    #[test]
    fn cache_tokens_are_billed_apart_and_input_cost_is_never_negative() {
        let mut p = price("p", "m", "default", "2024-01-01T00:00:00Z", 1.0);
        p.completion_token_cost = 2.0;
        p.cache_read_input_token_cost = 0.5;
        p.cache_creation_input_token_cost = 0.25;
        let tokens = |input, output, cache_read, cache_creation| Counters {
            input_tokens: input,
            output_tokens: output,
            cache_read_input_tokens: cache_read,
            cache_creation_input_tokens: cache_creation,
            ..Default::default()
        };
        let c = cost(&tokens(100, 10, 30, 20), Some(&p));
        assert_eq!((c.input, c.output, c.cache_read, c.cache_creation, c.total()), (50.0, 20.0, 15.0, 5.0, 90.0));
        let over = cost(&tokens(10, 0, 30, 0), Some(&p));
        assert_eq!((over.input, over.cache_read), (0.0, 15.0));
        assert_eq!(cost(&tokens(10, 0, 0, 0), None), Cost::default());
    }
}
