//! Query expressions → one SQL condition (API.md §7.2). Every value the client sent is bound;
//! only SQL written here, and column names from our allow-list, are spliced. The reading
//! rules live in the SQL functions of migration 0003 and mirror `domain::expr::evaluate`.
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{Postgres, QueryBuilder};

use crate::domain::costs::{Price, PriceFieldKind};
use crate::domain::expr::{Comparison, ConvertTo, FieldRef, Operand, Operation, Query};
use crate::domain::Timestamp;

/// A compiled condition: SQL pieces and the values bound between them.
#[derive(Debug, Clone, Default)]
pub struct Condition(Vec<Piece>);

#[derive(Debug, Clone)]
enum Piece {
    Sql(&'static str),
    Column(&'static str),
    Text(String),
    Numeric(String),
    Bool(bool),
    Time(DateTime<Utc>),
    Path(Vec<String>),
}

impl Condition {
    fn sql(s: &'static str) -> Self {
        Self(vec![Piece::Sql(s)])
    }

    fn then(mut self, other: Condition) -> Self {
        self.0.extend(other.0);
        self
    }

    fn and_sql(mut self, s: &'static str) -> Self {
        self.0.push(Piece::Sql(s));
        self
    }

    fn wrap(open: &'static str, inner: Condition, close: &'static str) -> Self {
        Self::sql(open).then(inner).and_sql(close)
    }

    /// Append ` and (<condition>)` to a query over the calls table aliased `alias`.
    pub fn push(&self, qb: &mut QueryBuilder<'_, Postgres>, alias: &'static str) {
        qb.push(" and (");
        for piece in &self.0 {
            match piece {
                Piece::Sql(s) => {
                    qb.push(*s);
                }
                Piece::Column(c) => {
                    qb.push(format_args!("{alias}.{c}"));
                }
                Piece::Text(t) => {
                    qb.push_bind(t.clone()).push("::text");
                }
                Piece::Numeric(n) => {
                    qb.push_bind(n.clone()).push("::numeric");
                }
                Piece::Bool(b) => {
                    qb.push_bind(*b).push("::boolean");
                }
                Piece::Time(t) => {
                    qb.push_bind(*t).push("::timestamptz");
                }
                Piece::Path(p) => {
                    qb.push_bind(p.clone()).push("::text[]");
                }
            }
        }
        qb.push(")");
    }
}

/// An operand compiled to SQL with the type it has there.
#[derive(Debug, Clone)]
enum Typed {
    Text(Condition),
    Number(Condition),
    Bool(Condition),
    Time(Condition),
    /// A raw `jsonb` value (SQL null when the path is missing).
    Json(Condition),
    /// The literal null.
    Null,
}

/// Why a well-formed expression cannot be run (answered 400).
pub type CompileError = String;

/// The table a query selects from, which decides the fields it may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `calls`: the fields of API.md §7.2.
    Calls,
    /// `llm_token_prices`: the price row's fields (`/cost/query`, `/cost/purge`).
    Prices,
    /// `feedback`: its columns and JSON paths under `payload.` (`/feedback/query`, `/feedback/purge`).
    Feedback,
}

/// Compile a query; unknown fields and unreadable datetime literals are errors.
pub fn compile(query: &Query, target: Target) -> Result<Condition, CompileError> {
    for name in crate::domain::expr::fields(&query.expr) {
        resolve(name, target)?;
    }
    Compiler { target }.operation(&query.expr)
}

fn resolve(name: &str, target: Target) -> Result<Typed, CompileError> {
    let not_allowed = || format!("Field {name} is not allowed");
    match target {
        Target::Calls => FieldRef::resolve(name).map(field).ok_or_else(not_allowed),
        Target::Prices => price_field(name).ok_or_else(not_allowed),
        Target::Feedback => feedback_field(name).ok_or_else(not_allowed),
    }
}

/// The text columns of feedback a query may name.
pub const FEEDBACK_TEXT_COLUMNS: [&str; 11] = [
    "id",
    "project_id",
    "weave_ref",
    "feedback_type",
    "creator",
    "wb_user_id",
    "annotation_ref",
    "runnable_ref",
    "call_ref",
    "trigger_ref",
    "queue_id",
];

fn feedback_field(name: &str) -> Option<Typed> {
    let column = |c: &'static str| Condition(vec![Piece::Column(c)]);
    if let Some(c) = FEEDBACK_TEXT_COLUMNS.iter().find(|c| **c == name) {
        return Some(Typed::Text(column(c)));
    }
    if name == "created_at" {
        return Some(Typed::Time(column("created_at")));
    }
    let path = if name == "payload" {
        Some(Vec::new())
    } else {
        name.strip_prefix("payload.").map(|p| p.split('.').map(str::to_string).collect::<Vec<_>>())
    }?;
    if path.iter().any(String::is_empty) {
        return None;
    }
    Some(Typed::Json(
        Condition::sql("(")
            .then(column("payload"))
            .and_sql(" #> ")
            .then(Condition(vec![Piece::Path(path)]))
            .and_sql(")"),
    ))
}

fn price_field(name: &str) -> Option<Typed> {
    let (column, kind) = Price::field(name)?;
    let column = Condition(vec![Piece::Column(column)]);
    Some(match kind {
        PriceFieldKind::Text => Typed::Text(column),
        PriceFieldKind::Number => Typed::Number(column.and_sql("::numeric")),
        PriceFieldKind::Time => Typed::Time(column),
    })
}

struct Compiler {
    target: Target,
}

impl Compiler {
    /// A boolean condition (SQL null when unknown).
    fn operation(&self, op: &Operation) -> Result<Condition, CompileError> {
        Ok(match op {
            Operation::And(ops) | Operation::Or(ops) => {
                let joiner = if matches!(op, Operation::And(_)) { " and " } else { " or " };
                let mut out = Condition::sql("(");
                for (i, op) in ops.iter().enumerate() {
                    if i > 0 {
                        out = out.and_sql(joiner);
                    }
                    out = out.then(self.operation(op)?);
                }
                out.and_sql(")")
            }
            Operation::Not(inner) => Condition::wrap("(not ", self.operation(inner)?, ")"),
            // Comparisons keep SQL's unknown (a missing or unreadable value), so `$not` and
            // `$or` follow three-valued logic; the condition as a whole matches only when true.
            Operation::Compare(cmp, a, b) => compare(*cmp, self.operand(a)?, self.operand(b)?)?,
            Operation::In(a, list) => {
                let a = self.operand(a)?;
                let mut out = Condition::sql("(false");
                for item in list {
                    out = out.and_sql(" or ").then(compare(Comparison::Eq, a.clone(), self.operand(item)?)?);
                }
                out.and_sql(")")
            }
            Operation::Contains { input, substr, case_insensitive } => {
                // A missing or null JSON path reads as the empty string here, as in Weave.
                let haystack = match self.operand(input)? {
                    json @ Typed::Json(_) => Condition::wrap("coalesce(", as_text(json), ", '')"),
                    other => as_text(other),
                };
                let needle = as_text(self.operand(substr)?);
                let (open, close) = if *case_insensitive { ("lower(", ")") } else { ("(", ")") };
                Condition::sql("(strpos(")
                    .then(Condition::wrap(open, haystack, close))
                    .and_sql(", ")
                    .then(Condition::wrap(open, needle, close))
                    .and_sql(") > 0)")
            }
        })
    }

    fn operand(&self, operand: &Operand) -> Result<Typed, CompileError> {
        Ok(match operand {
            Operand::Literal(value) => literal(value),
            Operand::Field(name) => resolve(name, self.target)?,
            Operand::Convert(inner, to) => {
                let inner = self.operand(inner)?;
                match to {
                    ConvertTo::Exists => Typed::Bool(match inner {
                        Typed::Null => Condition::sql("false"),
                        other => Condition::wrap("(", sql_of(other), " is not null)"),
                    }),
                    ConvertTo::Double => Typed::Number(as_number(inner)),
                    ConvertTo::Int => Typed::Number(Condition::wrap("trunc(", as_number(inner), ")")),
                    ConvertTo::Bool => Typed::Bool(as_bool(inner)),
                    ConvertTo::String => Typed::Text(as_text(inner)),
                }
            }
            Operand::Op(op) => Typed::Bool(self.operation(op)?),
        })
    }
}

fn literal(value: &Value) -> Typed {
    match value {
        Value::Null => Typed::Null,
        Value::Bool(b) => Typed::Bool(Condition(vec![Piece::Bool(*b)])),
        Value::Number(n) => Typed::Number(Condition(vec![Piece::Numeric(n.to_string())])),
        Value::String(s) => Typed::Text(Condition(vec![Piece::Text(s.clone())])),
        other => Typed::Json(Condition(vec![Piece::Text(other.to_string()), Piece::Sql("::jsonb")])),
    }
}

fn field(field: FieldRef) -> Typed {
    let column = |c: &'static str| Condition(vec![Piece::Column(c)]);
    match field {
        FieldRef::Column(c @ ("started_at" | "ended_at")) => Typed::Time(column(c)),
        FieldRef::Column(c @ ("wb_run_step" | "wb_run_step_end")) => Typed::Number(column(c).and_sql("::numeric")),
        FieldRef::Column(c) => Typed::Text(column(c)),
        FieldRef::Computed("latency_ms") => Typed::Number(column("latency_ms").and_sql("::numeric")),
        FieldRef::Computed("status") => Typed::Text(
            Condition::sql("weave_status(")
                .then(column("exception"))
                .and_sql(", ")
                .then(column("summary"))
                .and_sql(", ")
                .then(column("ended_at"))
                .and_sql(")"),
        ),
        FieldRef::Computed(_) => Typed::Text(
            Condition::sql("weave_trace_name(")
                .then(column("display_name"))
                .and_sql(", ")
                .then(column("op_name"))
                .and_sql(")"),
        ),
        FieldRef::Json(root, path) => Typed::Json(
            Condition::sql("(")
                .then(column(root))
                .and_sql(" #> ")
                .then(Condition(vec![Piece::Path(path)]))
                .and_sql(")"),
        ),
    }
}

fn sql_of(typed: Typed) -> Condition {
    match typed {
        Typed::Text(c) | Typed::Number(c) | Typed::Bool(c) | Typed::Time(c) | Typed::Json(c) => c,
        Typed::Null => Condition::sql("null"),
    }
}

fn as_number(typed: Typed) -> Condition {
    match typed {
        Typed::Number(c) => c,
        Typed::Json(c) => Condition::wrap("weave_json_number(", c, ")"),
        Typed::Text(c) => Condition::wrap("weave_text_number(", c, ")"),
        Typed::Time(c) => Condition::wrap("extract(epoch from ", c, ")"),
        Typed::Bool(_) | Typed::Null => Condition::sql("null::numeric"),
    }
}

fn as_bool(typed: Typed) -> Condition {
    match typed {
        Typed::Bool(c) => c,
        Typed::Json(c) => Condition::wrap("weave_json_bool(", c, ")"),
        Typed::Text(c) => Condition::wrap("(case ", c, " when 'true' then true when 'false' then false end)"),
        Typed::Number(_) | Typed::Time(_) | Typed::Null => Condition::sql("null::boolean"),
    }
}

fn as_text(typed: Typed) -> Condition {
    match typed {
        Typed::Text(c) => c,
        Typed::Json(c) => Condition::wrap("weave_json_text(", c, ")"),
        Typed::Number(c) => Condition::wrap("trim_scale(", c, ")::text"),
        Typed::Bool(c) => Condition::wrap("(case ", c, " when true then 'true' when false then 'false' end)"),
        Typed::Time(c) => Condition::wrap("to_char(", c, " at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"),
        Typed::Null => Condition::sql("null::text"),
    }
}

/// A time operand: dates compare with numbers as unix seconds and with strings as datetimes.
fn as_time(typed: Typed) -> Result<Condition, CompileError> {
    Ok(match typed {
        Typed::Time(c) => c,
        Typed::Number(c) => Condition::wrap("to_timestamp(", c, "::double precision)"),
        Typed::Text(Condition(pieces)) => match pieces.as_slice() {
            [Piece::Text(text)] => {
                let t = Timestamp::parse(text).ok_or_else(|| format!("{text:?} is not a datetime"))?;
                Condition(vec![Piece::Time(t.0)])
            }
            _ => Condition::sql("null::timestamptz"),
        },
        Typed::Json(_) | Typed::Bool(_) | Typed::Null => Condition::sql("null::timestamptz"),
    })
}

fn is_literal(typed: &Typed) -> bool {
    match typed {
        Typed::Null => true,
        Typed::Text(Condition(p)) | Typed::Number(Condition(p)) | Typed::Bool(Condition(p)) => {
            matches!(p.as_slice(), [Piece::Text(_)] | [Piece::Numeric(_)] | [Piece::Bool(_)])
        }
        Typed::Json(Condition(p)) => matches!(p.as_slice(), [Piece::Text(_), Piece::Sql("::jsonb")]),
        Typed::Time(_) => false,
    }
}

#[derive(Clone, Copy)]
enum Domain {
    Text,
    Number,
    Bool,
    Time,
}

/// The type two operands compare as: a literal's type decides (dates read numbers as unix
/// seconds and strings as datetimes); two fields of one type compare as that type; else text.
fn domain(a: &Typed, b: &Typed) -> Domain {
    let (literal, other) = match (is_literal(a), is_literal(b)) {
        (false, true) => (Some(b), a),
        (true, false) => (Some(a), b),
        _ => (None, a),
    };
    match (literal, other, b) {
        (Some(_), Typed::Time(_), _) => Domain::Time,
        (Some(Typed::Number(_)), _, _) => Domain::Number,
        (Some(Typed::Bool(_)), _, _) => Domain::Bool,
        (Some(_), _, _) => Domain::Text,
        (None, Typed::Number(_), Typed::Number(_)) => Domain::Number,
        (None, Typed::Time(_), Typed::Time(_)) => Domain::Time,
        (None, Typed::Bool(_), Typed::Bool(_)) => Domain::Bool,
        (None, Typed::Number(_), Typed::Json(_)) | (None, Typed::Json(_), Typed::Number(_)) => Domain::Number,
        (None, Typed::Bool(_), Typed::Json(_)) | (None, Typed::Json(_), Typed::Bool(_)) => Domain::Bool,
        _ => Domain::Text,
    }
}

fn compare(cmp: Comparison, a: Typed, b: Typed) -> Result<Condition, CompileError> {
    // `$eq` with the null literal is IS NULL; any other comparison with null matches nothing.
    if let (Typed::Null, other) | (other, Typed::Null) = (&a, &b) {
        return Ok(match (cmp, other) {
            (Comparison::Eq, Typed::Null) => Condition::sql("true"),
            (Comparison::Eq, Typed::Json(c)) => {
                Condition::sql("(").then(c.clone()).and_sql(" is null or ").then(c.clone()).and_sql(" = 'null'::jsonb)")
            }
            (Comparison::Eq, other) => Condition::wrap("(", sql_of(other.clone()), " is null)"),
            _ => Condition::sql("null::boolean"),
        });
    }
    let op = match cmp {
        Comparison::Eq => " = ",
        Comparison::Gt => " > ",
        Comparison::Gte => " >= ",
        Comparison::Lt => " < ",
        Comparison::Lte => " <= ",
    };
    let (left, right) = match domain(&a, &b) {
        Domain::Number => (as_number(a), as_number(b)),
        Domain::Bool => (as_bool(a), as_bool(b)),
        Domain::Time => (as_time(a)?, as_time(b)?),
        Domain::Text => {
            // Byte order for text, whatever the database's collation.
            (Condition::wrap("(", as_text(a), r#") collate "C""#), as_text(b))
        }
    };
    Ok(Condition::wrap("(", left, "").and_sql(op).then(right).and_sql(")"))
}
