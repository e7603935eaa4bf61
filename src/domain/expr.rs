//! Query expressions (API.md §7.2): `{"$expr": op}`, parsed into a typed tree.
//!
//! The tree is compiled to one parameterised SQL condition by `store::expr`; `evaluate` here
//! applies the same rules to a call's JSON in Rust, so the two can be checked against each
//! other (a property test does). The rules, in short: a JSON value is read as the type of the
//! literal it is compared with (number, bool, else text with numbers normalised); a value that
//! cannot be read so, or a missing path, matches nothing; `$eq` with a null literal is IS NULL.
use std::fmt;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::de_error;

/// A parsed `{"$expr": ...}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub expr: Operation,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    And(Vec<Operation>),
    Or(Vec<Operation>),
    Not(Box<Operation>),
    Compare(Comparison, Operand, Operand),
    In(Operand, Vec<Operand>),
    Contains { input: Operand, substr: Operand, case_insensitive: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Eq,
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Literal(Value),
    Field(String),
    Convert(Box<Operand>, ConvertTo),
    Op(Box<Operation>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvertTo {
    Double,
    Int,
    Bool,
    String,
    Exists,
}

/// Why an expression is malformed, with the path inside `$expr` where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub path: Vec<String>,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at $expr", self.message)?;
        for p in &self.path {
            write!(f, ".{p}")?;
        }
        Ok(())
    }
}

/// Deepest nesting accepted (deeper expressions are refused, not run).
pub const MAX_DEPTH: usize = 64;
/// Most JSON values an expression may hold (each becomes SQL and bound values).
pub const MAX_VALUES: usize = 4000;
/// Most operands of one `$in`.
pub const MAX_IN_LIST: usize = 1000;

/// How many JSON values `value` holds, counting up to `limit + 1` at most.
fn values_in(value: &Value, limit: usize) -> usize {
    let mut count = 0;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        count += 1;
        if count > limit {
            break;
        }
        match v {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    count
}

impl<'de> Deserialize<'de> for Query {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let Value::Object(map) = &value else {
            return Err(de_error("dict_type", "Input should be an object with a $expr key"));
        };
        if map.len() != 1 || !map.contains_key("$expr") {
            return Err(de_error("value_error", "Value error, a query is {\"$expr\": operation}"));
        }
        if values_in(&map["$expr"], MAX_VALUES) > MAX_VALUES {
            return Err(de_error(
                "value_error",
                format_args!("Value error, an expression holds at most {MAX_VALUES} values"),
            ));
        }
        parse_operation(&map["$expr"], &mut Vec::new())
            .map(|expr| Query { expr })
            .map_err(|e| de_error("value_error", format_args!("Value error, {e}")))
    }
}

impl utoipa::PartialSchema for Query {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .property("$expr", utoipa::openapi::ObjectBuilder::new())
            .required("$expr")
            .description(Some(
                "A query expression: {\"$expr\": {\"$eq\": [{\"$getField\": \"op_name\"}, {\"$literal\": \"x\"}]}}",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Query {}

fn fail<T>(path: &[String], message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError { path: path.to_vec(), message: message.into() })
}

fn single_key<'a>(value: &'a Value, path: &[String], what: &str) -> Result<(&'a str, &'a Value), ParseError> {
    match value {
        Value::Object(map) if map.len() == 1 => {
            let (k, v) = map.iter().next().expect("one entry");
            Ok((k.as_str(), v))
        }
        _ => fail(path, format!("expected {what}: an object with exactly one key")),
    }
}

fn parse_operation(value: &Value, path: &mut Vec<String>) -> Result<Operation, ParseError> {
    if path.len() > MAX_DEPTH {
        return fail(path, format!("expression nested deeper than {MAX_DEPTH} levels"));
    }
    let (key, body) = single_key(value, path, "an operation")?;
    path.push(key.to_string());
    let result = match key {
        "$and" | "$or" => {
            let items = body.as_array().filter(|a| !a.is_empty());
            let Some(items) = items else { return fail(path, "expected a non-empty list of operations") };
            let ops = items
                .iter()
                .enumerate()
                .map(|(i, item)| with_index(path, i, |p| parse_operation(item, p)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if key == "$and" { Operation::And(ops) } else { Operation::Or(ops) })
        }
        "$not" => match body.as_array().map(Vec::as_slice) {
            Some([op]) => Ok(Operation::Not(Box::new(with_index(path, 0, |p| parse_operation(op, p))?))),
            _ => fail(path, "expected a list of one operation"),
        },
        "$eq" | "$gt" | "$gte" | "$lt" | "$lte" => match body.as_array().map(Vec::as_slice) {
            Some([a, b]) => {
                let comparison = match key {
                    "$eq" => Comparison::Eq,
                    "$gt" => Comparison::Gt,
                    "$gte" => Comparison::Gte,
                    "$lt" => Comparison::Lt,
                    _ => Comparison::Lte,
                };
                let a = with_index(path, 0, |p| parse_operand(a, p))?;
                let b = with_index(path, 1, |p| parse_operand(b, p))?;
                Ok(Operation::Compare(comparison, a, b))
            }
            _ => fail(path, "expected a list of two operands"),
        },
        "$in" => match body.as_array().map(Vec::as_slice) {
            Some([_, Value::Array(list)]) if list.len() > MAX_IN_LIST => {
                fail(path, format!("$in takes at most {MAX_IN_LIST} operands"))
            }
            Some([a, Value::Array(list)]) => {
                let a = with_index(path, 0, |p| parse_operand(a, p))?;
                let list = list
                    .iter()
                    .enumerate()
                    .map(|(i, item)| with_index(path, 1, |p| with_index(p, i, |p| parse_operand(item, p))))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Operation::In(a, list))
            }
            _ => fail(path, "expected [operand, [operands...]]"),
        },
        "$contains" => {
            let Value::Object(args) = body else { return fail(path, "expected {input, substr, case_insensitive?}") };
            let get = |name: &str| args.get(name);
            if let Some(extra) = args.keys().find(|k| !["input", "substr", "case_insensitive"].contains(&k.as_str())) {
                return fail(path, format!("unexpected key {extra}"));
            }
            let (Some(input), Some(substr)) = (get("input"), get("substr")) else {
                return fail(path, "expected {input, substr, case_insensitive?}");
            };
            let case_insensitive = match get("case_insensitive") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return fail(path, "case_insensitive must be a boolean"),
            };
            let input = with_key(path, "input", |p| parse_operand(input, p))?;
            let substr = with_key(path, "substr", |p| parse_operand(substr, p))?;
            Ok(Operation::Contains { input, substr, case_insensitive })
        }
        other => fail(path, format!("unknown operation {other}")),
    };
    path.pop();
    result
}

fn parse_operand(value: &Value, path: &mut Vec<String>) -> Result<Operand, ParseError> {
    if path.len() > MAX_DEPTH {
        return fail(path, format!("expression nested deeper than {MAX_DEPTH} levels"));
    }
    let (key, body) = single_key(value, path, "an operand")?;
    match key {
        "$literal" => Ok(Operand::Literal(body.clone())),
        "$getField" => match body {
            Value::String(field) if !field.is_empty() => Ok(Operand::Field(field.clone())),
            _ => fail(path, "$getField takes a field name"),
        },
        "$convert" => {
            let Value::Object(args) = body else { return fail(path, "$convert takes {input, to}") };
            let (Some(input), Some(Value::String(to))) = (args.get("input"), args.get("to")) else {
                return fail(path, "$convert takes {input, to}");
            };
            let to = match to.as_str() {
                "double" => ConvertTo::Double,
                "int" => ConvertTo::Int,
                "bool" => ConvertTo::Bool,
                "string" => ConvertTo::String,
                "exists" => ConvertTo::Exists,
                other => return fail(path, format!("cannot $convert to {other}")),
            };
            let input = with_key(path, "$convert", |p| parse_operand(input, p))?;
            Ok(Operand::Convert(Box::new(input), to))
        }
        _ => parse_operation(value, path).map(|op| Operand::Op(Box::new(op))),
    }
}

fn with_index<T>(path: &mut Vec<String>, i: usize, f: impl FnOnce(&mut Vec<String>) -> T) -> T {
    path.push(i.to_string());
    let out = f(path);
    path.pop();
    out
}

fn with_key<T>(path: &mut Vec<String>, key: &str, f: impl FnOnce(&mut Vec<String>) -> T) -> T {
    path.push(key.to_string());
    let out = f(path);
    path.pop();
    out
}

// ---------------------------------------------------------------------------------------------
// Fields

/// Top-level columns a query may name.
pub const COLUMNS: [&str; 14] = [
    "id",
    "trace_id",
    "parent_id",
    "thread_id",
    "turn_id",
    "op_name",
    "display_name",
    "started_at",
    "ended_at",
    "exception",
    "wb_user_id",
    "wb_run_id",
    "wb_run_step",
    "wb_run_step_end",
];

/// What a field name refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldRef {
    /// A top-level column.
    Column(&'static str),
    /// `summary.weave.status`, `summary.weave.latency_ms`, `summary.weave.trace_name`.
    Computed(&'static str),
    /// `inputs`, `output`, `attributes` or `summary`, or a JSON path under one of them.
    Json(&'static str, Vec<String>),
}

impl FieldRef {
    /// Resolve a field name, or None when it is not allowed.
    pub fn resolve(field: &str) -> Option<Self> {
        if let Some(column) = COLUMNS.iter().find(|c| **c == field) {
            return Some(Self::Column(column));
        }
        for computed in ["status", "latency_ms", "trace_name"] {
            if field.strip_prefix("summary.weave.") == Some(computed) {
                return Some(Self::Computed(computed));
            }
        }
        for root in ["inputs", "output", "attributes", "summary"] {
            if field == root {
                return Some(Self::Json(root, Vec::new()));
            }
            if let Some(rest) = field.strip_prefix(root).and_then(|r| r.strip_prefix('.')) {
                let path: Vec<String> = rest.split('.').map(str::to_string).collect();
                return (!path.iter().any(String::is_empty)).then_some(Self::Json(root, path));
            }
        }
        None
    }
}

/// The ids a query names when it names nothing else: `$eq` on `id`, `$in` on `id`, and `$or`
/// of those (what a purge may delete, as Weave allows).
pub fn ids_named(op: &Operation) -> Option<Vec<String>> {
    let is_id = |o: &Operand| matches!(o, Operand::Field(f) if f == "id");
    let text = |o: &Operand| match o {
        Operand::Literal(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    match op {
        Operation::Or(ops) => ops.iter().map(ids_named).collect::<Option<Vec<_>>>().map(|v| v.concat()),
        Operation::Compare(Comparison::Eq, a, b) if is_id(a) => Some(vec![text(b)?]),
        Operation::Compare(Comparison::Eq, a, b) if is_id(b) => Some(vec![text(a)?]),
        Operation::In(a, list) if is_id(a) => list.iter().map(text).collect(),
        _ => None,
    }
}

/// Every field a query names, for checking them all before compiling.
pub fn fields(op: &Operation) -> Vec<&str> {
    fn in_operand<'a>(operand: &'a Operand, out: &mut Vec<&'a str>) {
        match operand {
            Operand::Field(f) => out.push(f),
            Operand::Convert(inner, _) => in_operand(inner, out),
            Operand::Op(op) => in_operation(op, out),
            Operand::Literal(_) => {}
        }
    }
    fn in_operation<'a>(op: &'a Operation, out: &mut Vec<&'a str>) {
        match op {
            Operation::And(ops) | Operation::Or(ops) => ops.iter().for_each(|o| in_operation(o, out)),
            Operation::Not(inner) => in_operation(inner, out),
            Operation::Compare(_, a, b) => {
                in_operand(a, out);
                in_operand(b, out);
            }
            Operation::In(a, list) => {
                in_operand(a, out);
                list.iter().for_each(|o| in_operand(o, out));
            }
            Operation::Contains { input, substr, .. } => {
                in_operand(input, out);
                in_operand(substr, out);
            }
        }
    }
    let mut out = Vec::new();
    in_operation(op, &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// The same rules in Rust, over one call: the reference the SQL compiler is tested against.

/// What `evaluate` reads of a call: its stored fields (`inputs`, `output`, `attributes`,
/// `summary` as stored, and the top-level columns, datetimes as API strings) and the three
/// computed fields.
pub struct CallView<'a> {
    pub fields: &'a serde_json::Map<String, Value>,
    pub status: &'a str,
    pub latency_ms: Option<f64>,
    pub trace_name: &'a str,
}

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Text(Option<String>),
    Number(Option<f64>),
    Bool(Option<bool>),
    /// Microseconds since the epoch.
    Time(Option<i64>),
    /// A JSON value; None when the path is missing.
    Json(Option<Value>),
    Null,
}

/// Whether `op` holds for the call.
pub fn evaluate(op: &Operation, call: &CallView<'_>) -> bool {
    truth(op, call) == Some(true)
}

/// SQL's three-valued logic: `None` is unknown (a comparison with a missing or unreadable
/// value), and a row matches only when its condition is true.
fn truth(op: &Operation, call: &CallView<'_>) -> Option<bool> {
    match op {
        Operation::And(ops) => {
            let values: Vec<Option<bool>> = ops.iter().map(|o| truth(o, call)).collect();
            if values.contains(&Some(false)) {
                Some(false)
            } else if values.contains(&None) {
                None
            } else {
                Some(true)
            }
        }
        Operation::Or(ops) => any_true(ops.iter().map(|o| truth(o, call))),
        Operation::Not(inner) => truth(inner, call).map(|b| !b),
        Operation::Compare(cmp, a, b) => {
            compare_values(*cmp, (operand_value(a, call), is_lit(a)), (operand_value(b, call), is_lit(b)))
        }
        Operation::In(a, list) => any_true(list.iter().map(|item| {
            compare_values(
                Comparison::Eq,
                (operand_value(a, call), is_lit(a)),
                (operand_value(item, call), is_lit(item)),
            )
        })),
        Operation::Contains { input, substr, case_insensitive } => {
            // A missing or null JSON path reads as the empty string here, as in Weave.
            let haystack = match operand_value(input, call) {
                Val::Json(None) | Val::Json(Some(Value::Null)) => Some(String::new()),
                other => text_of(other),
            };
            let (haystack, needle) = (haystack?, text_of(operand_value(substr, call))?);
            Some(if *case_insensitive {
                haystack.to_lowercase().contains(&needle.to_lowercase())
            } else {
                haystack.contains(&needle)
            })
        }
    }
}

/// SQL's `or`: true if any is true, else unknown if any is unknown, else false.
fn any_true(values: impl Iterator<Item = Option<bool>>) -> Option<bool> {
    let mut unknown = false;
    for value in values {
        match value {
            Some(true) => return Some(true),
            None => unknown = true,
            Some(false) => {}
        }
    }
    if unknown {
        None
    } else {
        Some(false)
    }
}

fn is_lit(operand: &Operand) -> bool {
    matches!(operand, Operand::Literal(_))
}

fn operand_value(operand: &Operand, call: &CallView<'_>) -> Val {
    match operand {
        Operand::Literal(Value::Null) => Val::Null,
        Operand::Literal(Value::Bool(b)) => Val::Bool(Some(*b)),
        Operand::Literal(Value::Number(n)) => Val::Number(n.as_f64()),
        Operand::Literal(Value::String(s)) => Val::Text(Some(s.clone())),
        Operand::Literal(other) => Val::Json(Some(other.clone())),
        Operand::Field(name) => match FieldRef::resolve(name) {
            Some(FieldRef::Column(c @ ("started_at" | "ended_at"))) => Val::Time(
                call.fields
                    .get(c)
                    .and_then(Value::as_str)
                    .and_then(super::Timestamp::parse)
                    .map(|t| t.0.timestamp_micros()),
            ),
            Some(FieldRef::Column(c @ ("wb_run_step" | "wb_run_step_end"))) => {
                Val::Number(call.fields.get(c).and_then(Value::as_f64))
            }
            Some(FieldRef::Column(c)) => Val::Text(call.fields.get(c).and_then(Value::as_str).map(str::to_string)),
            Some(FieldRef::Computed("latency_ms")) => Val::Number(call.latency_ms),
            Some(FieldRef::Computed("status")) => Val::Text(Some(call.status.to_string())),
            Some(FieldRef::Computed(_)) => Val::Text(Some(call.trace_name.to_string())),
            Some(FieldRef::Json(root, path)) => Val::Json(json_at(call.fields.get(root), &path)),
            None => Val::Null,
        },
        Operand::Convert(inner, to) => {
            let inner = operand_value(inner, call);
            match to {
                ConvertTo::Exists => Val::Bool(Some(!matches!(
                    inner,
                    Val::Null
                        | Val::Json(None)
                        | Val::Text(None)
                        | Val::Number(None)
                        | Val::Bool(None)
                        | Val::Time(None)
                ))),
                ConvertTo::Double => Val::Number(number_of(inner)),
                ConvertTo::Int => Val::Number(number_of(inner).map(f64::trunc)),
                ConvertTo::Bool => Val::Bool(bool_of(inner)),
                ConvertTo::String => Val::Text(text_of(inner)),
            }
        }
        Operand::Op(op) => Val::Bool(truth(op, call)),
    }
}

/// `#>` on a JSON value: keys into objects, integer segments into arrays.
fn json_at(root: Option<&Value>, path: &[String]) -> Option<Value> {
    // A null root is a column with nothing stored (SQL null), not a JSON null.
    let mut current = root.filter(|r| !r.is_null())?;
    for segment in path {
        current = match current {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => {
                let index: i64 = segment.parse().ok()?;
                let index = if index < 0 { items.len() as i64 + index } else { index };
                items.get(usize::try_from(index).ok()?)?
            }
            _ => return None,
        };
    }
    Some(current.clone())
}

fn spells_number(text: &str) -> Option<f64> {
    let t = text.trim();
    let unsigned = t.strip_prefix(['-', '+']).unwrap_or(t);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], Some(&unsigned[i + 1..])),
        None => (unsigned, None),
    };
    let digits_ok = {
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        all_digits(int)
            && all_digits(frac)
            && !(int.is_empty() && frac.is_empty())
            && (!int.is_empty() || mantissa.starts_with('.'))
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        (1..=3).contains(&e.len()) && e.bytes().all(|b| b.is_ascii_digit())
    });
    (digits_ok && exponent_ok).then(|| t.parse::<f64>().ok()).flatten()
}

fn number_of(v: Val) -> Option<f64> {
    match v {
        Val::Number(n) => n,
        Val::Json(Some(Value::Number(n))) => n.as_f64(),
        Val::Json(Some(Value::String(s))) | Val::Text(Some(s)) => spells_number(&s),
        Val::Time(t) => t.map(|t| t as f64 / 1e6),
        _ => None,
    }
}

fn bool_of(v: Val) -> Option<bool> {
    match v {
        Val::Bool(b) => b,
        Val::Json(Some(Value::Bool(b))) => Some(b),
        Val::Text(Some(s)) => match s.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Numbers as Postgres' `trim_scale(numeric)::text` prints them (for the values tests use).
fn number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

fn text_of(v: Val) -> Option<String> {
    match v {
        Val::Text(t) => t,
        Val::Number(n) => n.map(number_text),
        Val::Bool(b) => b.map(|b| b.to_string()),
        Val::Json(Some(Value::String(s))) => Some(s),
        Val::Json(Some(Value::Number(n))) => n.as_f64().map(number_text),
        Val::Json(Some(Value::Bool(b))) => Some(b.to_string()),
        Val::Json(Some(Value::Null)) | Val::Json(None) | Val::Null => None,
        Val::Json(Some(other)) => Some(other.to_string()),
        Val::Time(t) => t.map(|t| {
            chrono::DateTime::from_timestamp_micros(t).unwrap_or_default().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
        }),
    }
}

fn time_of(v: Val) -> Option<i64> {
    match v {
        Val::Time(t) => t,
        Val::Number(n) => n.map(|s| (s * 1e6) as i64),
        Val::Text(Some(s)) => super::Timestamp::parse(&s).map(|t| t.0.timestamp_micros()),
        _ => None,
    }
}

fn compare_values(cmp: Comparison, (a, a_lit): (Val, bool), (b, b_lit): (Val, bool)) -> Option<bool> {
    if matches!(a, Val::Null) || matches!(b, Val::Null) {
        let other = if matches!(a, Val::Null) { b } else { a };
        // `$eq` with null is IS NULL; any other comparison with null is unknown.
        return match (cmp, other) {
            (Comparison::Eq, Val::Null) => Some(true),
            (Comparison::Eq, Val::Json(v)) => Some(v.is_none_or(|v| v.is_null())),
            (Comparison::Eq, Val::Text(v)) => Some(v.is_none()),
            (Comparison::Eq, Val::Number(v)) => Some(v.is_none()),
            (Comparison::Eq, Val::Bool(v)) => Some(v.is_none()),
            (Comparison::Eq, Val::Time(v)) => Some(v.is_none()),
            _ => None,
        };
    }
    let literal = match (a_lit, b_lit) {
        (false, true) => Some((&b, &a)),
        (true, false) => Some((&a, &b)),
        _ => None,
    };
    let domain = match literal {
        Some((_, Val::Time(_))) => 'T',
        Some((Val::Number(_), _)) => 'N',
        Some((Val::Bool(_), _)) => 'B',
        Some(_) => 'S',
        None => match (&a, &b) {
            (Val::Number(_), Val::Number(_)) | (Val::Number(_), Val::Json(_)) | (Val::Json(_), Val::Number(_)) => 'N',
            (Val::Time(_), Val::Time(_)) => 'T',
            (Val::Bool(_), Val::Bool(_)) | (Val::Bool(_), Val::Json(_)) | (Val::Json(_), Val::Bool(_)) => 'B',
            _ => 'S',
        },
    };
    let ordering = match domain {
        'N' => number_of(a)?.partial_cmp(&number_of(b)?)?,
        'T' => time_of(a)?.cmp(&time_of(b)?),
        'B' => bool_of(a)?.cmp(&bool_of(b)?),
        _ => text_of(a)?.as_bytes().cmp(text_of(b)?.as_bytes()),
    };
    Some(match cmp {
        Comparison::Eq => ordering.is_eq(),
        Comparison::Gt => ordering.is_gt(),
        Comparison::Gte => ordering.is_ge(),
        Comparison::Lt => ordering.is_lt(),
        Comparison::Lte => ordering.is_le(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_purge_may_name_ids_only() {
        let parse = |v: Value| serde_json::from_value::<Query>(json!({"$expr": v})).unwrap().expr;
        let id = |v: &str| json!({"$eq": [{"$getField": "id"}, {"$literal": v}]});
        let named = ids_named(&parse(json!({"$or": [id("a"), {"$eq": [{"$literal": "b"}, {"$getField": "id"}]},
                                                   {"$in": [{"$getField": "id"}, [{"$literal": "c"}, {"$literal": "d"}]]}]})));
        assert_eq!(named.unwrap(), ["a", "b", "c", "d"]);
        assert_eq!(ids_named(&parse(json!({"$eq": [{"$getField": "llm_id"}, {"$literal": "x"}]}))), None);
        assert_eq!(ids_named(&parse(json!({"$and": [id("a")]}))), None);
        assert_eq!(
            ids_named(&parse(json!({"$or": [id("a"), {"$gt": [{"$getField": "id"}, {"$literal": "b"}]}]}))),
            None
        );
    }
}
