//! LangSmith's filter language (API.md §12.4), parsed into a typed tree that `store::runs`
//! compiles to SQL with every value bound: `and(eq(name, "chat"), gt(latency, "2s"))`.
//!
//! Values are checked against their attribute here (a time must parse, a latency is seconds or
//! a `"2s"` / `"500ms"` string, booleans are booleans), so every error carries the character
//! offset where it is. Comparisons are two-valued: a run whose attribute is missing (a running
//! run's latency, a root's parent) does not match `eq`/`gt`/..., and does match `neq`/`not`.
use std::fmt;

use chrono::{DateTime, Utc};

use super::Timestamp;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum RunFilter {
    And(Vec<RunFilter>),
    Or(Vec<RunFilter>),
    Not(Box<RunFilter>),
    Compare(Cmp, Attr, Value),
    /// `eq(attr, null)` (or `neq`, negated: is not null).
    IsNull(Attr, bool),
    In(Attr, Vec<Value>),
    /// `has(tags, "x")` (also `eq(tags, "x")`).
    HasTag(String),
    /// `eq(metadata_key, "k")` alone, or `in(metadata_key, [...])`: one of the keys is present.
    MetadataKey(Vec<String>),
    /// `and(eq(metadata_key, "k"), eq(metadata_value, "v"))`: `attributes.k` reads as `"v"`.
    Metadata {
        key: String,
        value: String,
    },
    /// Case-insensitive substring of the run's name, inputs or output (as JSON text).
    Search(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Cmp {
    /// Whether `ordering` (of the run's value against the literal) satisfies this comparison.
    pub fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Cmp::Eq => ordering == Equal,
            Cmp::Neq => ordering != Equal,
            Cmp::Gt => ordering == Greater,
            Cmp::Gte => ordering != Less,
            Cmp::Lt => ordering == Less,
            Cmp::Lte => ordering != Greater,
        }
    }
}

/// The attributes a comparison may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attr {
    Id,
    TraceId,
    ParentRunId,
    Name,
    RunType,
    Status,
    Error,
    IsRoot,
    StartTime,
    EndTime,
    /// Seconds.
    Latency,
    TotalTokens,
    PromptTokens,
    CompletionTokens,
    /// USD; compared after the run's cost is computed (see [`take_cost_conditions`]).
    TotalCost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Bool,
    Time,
    Seconds,
    Number,
}

impl Attr {
    const NAMES: [(&'static str, Attr); 15] = [
        ("id", Attr::Id),
        ("trace_id", Attr::TraceId),
        ("parent_run_id", Attr::ParentRunId),
        ("name", Attr::Name),
        ("run_type", Attr::RunType),
        ("status", Attr::Status),
        ("error", Attr::Error),
        ("is_root", Attr::IsRoot),
        ("start_time", Attr::StartTime),
        ("end_time", Attr::EndTime),
        ("latency", Attr::Latency),
        ("total_tokens", Attr::TotalTokens),
        ("prompt_tokens", Attr::PromptTokens),
        ("completion_tokens", Attr::CompletionTokens),
        ("total_cost", Attr::TotalCost),
    ];

    fn kind(self) -> Kind {
        match self {
            Attr::Id | Attr::TraceId | Attr::ParentRunId | Attr::Name | Attr::RunType | Attr::Status => Kind::Text,
            Attr::Error | Attr::IsRoot => Kind::Bool,
            Attr::StartTime | Attr::EndTime => Kind::Time,
            Attr::Latency => Kind::Seconds,
            Attr::TotalTokens | Attr::PromptTokens | Attr::CompletionTokens | Attr::TotalCost => Kind::Number,
        }
    }
}

/// A literal, already read as its attribute's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    /// A decimal number as text (exact; bound as `numeric`).
    Number(String),
    Bool(bool),
    Time(DateTime<Utc>),
}

/// Why a filter is malformed, and where (a character offset into the filter text).
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at character {})", self.message, self.offset)
    }
}

/// Longest filter text accepted.
pub const MAX_CHARS: usize = 64 * 1024;
/// Deepest nesting of calls accepted.
pub const MAX_DEPTH: usize = 64;
/// Most values one filter may hold (every `in` list and comparison counts).
pub const MAX_VALUES: usize = 4000;

/// Parse a filter.
pub fn parse(text: &str) -> Result<RunFilter, ParseError> {
    if text.chars().count() > MAX_CHARS {
        return Err(ParseError { offset: MAX_CHARS, message: format!("A filter is at most {MAX_CHARS} characters") });
    }
    let tokens = lex(text)?;
    let mut parser = Parser { tokens, at: 0, end: text.chars().count(), values: 0 };
    let node = parser.call(0)?;
    if let Some(token) = parser.tokens.get(parser.at) {
        return Err(ParseError { offset: token.offset, message: "Unexpected text after the filter".into() });
    }
    resolve(node, false)
}

/// `total_cost <cmp> value`, checked on each run's computed cost.
pub type CostCondition = (Cmp, f64);

/// Split a filter into what SQL runs and the `total_cost` comparisons, which are checked once
/// each run's cost is known. Those may only stand at the top level (alone or inside the top
/// `and`), where removing them leaves the meaning of the rest unchanged.
pub fn take_cost_conditions(filter: RunFilter) -> Result<(Option<RunFilter>, Vec<CostCondition>), String> {
    let mut costs = Vec::new();
    let rest = match filter {
        RunFilter::And(items) => {
            let mut kept = Vec::new();
            for item in flatten_and(items) {
                match item {
                    RunFilter::Compare(cmp, Attr::TotalCost, value) => costs.push((cmp, number_of(&value))),
                    other => kept.push(other),
                }
            }
            (!kept.is_empty()).then_some(RunFilter::And(kept))
        }
        RunFilter::Compare(cmp, Attr::TotalCost, value) => {
            costs.push((cmp, number_of(&value)));
            None
        }
        other => Some(other),
    };
    if rest.as_ref().is_some_and(mentions_cost) {
        return Err(
            "total_cost may only be compared at the top level of the filter (alone or inside its top and(...))".into(),
        );
    }
    Ok((rest, costs))
}

/// Whether a filter compares `total_cost` anywhere (refused in trace and tree filters).
pub fn mentions_cost(filter: &RunFilter) -> bool {
    match filter {
        RunFilter::And(items) | RunFilter::Or(items) => items.iter().any(mentions_cost),
        RunFilter::Not(inner) => mentions_cost(inner),
        RunFilter::Compare(_, attr, _) | RunFilter::IsNull(attr, _) | RunFilter::In(attr, _) => {
            *attr == Attr::TotalCost
        }
        _ => false,
    }
}

fn flatten_and(items: Vec<RunFilter>) -> Vec<RunFilter> {
    items
        .into_iter()
        .flat_map(|item| match item {
            RunFilter::And(inner) => flatten_and(inner),
            other => vec![other],
        })
        .collect()
}

fn number_of(value: &Value) -> f64 {
    match value {
        Value::Number(n) => n.parse().unwrap_or(f64::NAN),
        _ => f64::NAN,
    }
}

// ---- lexing ----

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    Open,
    Close,
    LBracket,
    RBracket,
    Comma,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    offset: usize,
}

fn lex(text: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let simple = match c {
            '(' => Some(Tok::Open),
            ')' => Some(Tok::Close),
            '[' => Some(Tok::LBracket),
            ']' => Some(Tok::RBracket),
            ',' => Some(Tok::Comma),
            _ => None,
        };
        if let Some(tok) = simple {
            tokens.push(Token { tok, offset: i });
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '"' || c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(ParseError { offset: start, message: "Unterminated string".into() }),
                    Some('\\') => {
                        match chars.get(i + 1) {
                            Some(&e @ ('"' | '\'' | '\\')) => s.push(e),
                            Some('n') => s.push('\n'),
                            Some('t') => s.push('\t'),
                            _ => return Err(ParseError { offset: i, message: "Unknown escape in a string".into() }),
                        }
                        i += 2;
                    }
                    Some(&q) if q == c => {
                        i += 1;
                        break;
                    }
                    Some(&other) => {
                        s.push(other);
                        i += 1;
                    }
                }
            }
            tokens.push(Token { tok: Tok::Str(s), offset: start });
        } else if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' {
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '.' | '-' | '+'))
                && !(i > start && matches!(chars[i], '-' | '+') && !matches!(chars[i - 1], 'e' | 'E'))
            {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            if !is_decimal(&text) {
                return Err(ParseError { offset: start, message: format!("{text:?} is not a number") });
            }
            tokens.push(Token { tok: Tok::Num(text), offset: start });
        } else if c.is_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(Token { tok: Tok::Ident(chars[start..i].iter().collect()), offset: start });
        } else {
            return Err(ParseError { offset: i, message: format!("Unexpected character {c:?}") });
        }
    }
    Ok(tokens)
}

/// A plain decimal number, optionally with an exponent (what Postgres' numeric reads exactly).
fn is_decimal(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.len() <= 3 && digits(e)
    });
    !(int.is_empty() && frac.is_empty()) && digits(int) && digits(frac) && exponent_ok
}

// ---- parsing ----

/// A call or argument before attributes and values are resolved.
#[derive(Debug, Clone)]
enum Node {
    Call { name: String, offset: usize, args: Vec<Node> },
    Ident(String, usize),
    Literal(Lit, usize),
    List(Vec<(Lit, usize)>, usize),
}

#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Str(String),
    Num(String),
    Bool(bool),
    Null,
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    end: usize,
    values: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn offset(&self) -> usize {
        self.peek().map_or(self.end, |t| t.offset)
    }

    fn expect(&mut self, want: Tok, what: &str) -> Result<(), ParseError> {
        match self.peek() {
            Some(t) if t.tok == want => {
                self.at += 1;
                Ok(())
            }
            _ => Err(ParseError { offset: self.offset(), message: format!("Expected {what}") }),
        }
    }

    fn count_value(&mut self, offset: usize) -> Result<(), ParseError> {
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(ParseError { offset, message: format!("A filter holds at most {MAX_VALUES} values") });
        }
        Ok(())
    }

    /// `name(args)`.
    fn call(&mut self, depth: usize) -> Result<Node, ParseError> {
        let offset = self.offset();
        if depth > MAX_DEPTH {
            return Err(ParseError { offset, message: format!("A filter nests at most {MAX_DEPTH} calls deep") });
        }
        let name = match self.peek() {
            Some(Token { tok: Tok::Ident(name), .. }) => name.clone(),
            _ => return Err(ParseError { offset, message: "Expected a function such as eq(...) or and(...)".into() }),
        };
        self.at += 1;
        self.expect(Tok::Open, "'(' after the function name")?;
        let mut args = Vec::new();
        if self.peek().is_some_and(|t| t.tok == Tok::Close) {
            self.at += 1;
            return Ok(Node::Call { name, offset, args });
        }
        loop {
            args.push(self.argument(depth)?);
            match self.peek().map(|t| &t.tok) {
                Some(Tok::Comma) => self.at += 1,
                Some(Tok::Close) => {
                    self.at += 1;
                    return Ok(Node::Call { name, offset, args });
                }
                _ => return Err(ParseError { offset: self.offset(), message: "Expected ',' or ')'".into() }),
            }
        }
    }

    fn argument(&mut self, depth: usize) -> Result<Node, ParseError> {
        let Some(token) = self.peek().cloned() else {
            return Err(ParseError { offset: self.end, message: "Expected an argument".into() });
        };
        match token.tok {
            Tok::Ident(name) => {
                if self.tokens.get(self.at + 1).is_some_and(|t| t.tok == Tok::Open) {
                    return self.call(depth + 1);
                }
                self.at += 1;
                match name.as_str() {
                    "true" | "false" => {
                        self.count_value(token.offset)?;
                        Ok(Node::Literal(Lit::Bool(name == "true"), token.offset))
                    }
                    "null" => Ok(Node::Literal(Lit::Null, token.offset)),
                    _ => Ok(Node::Ident(name, token.offset)),
                }
            }
            Tok::Str(_) | Tok::Num(_) => {
                self.at += 1;
                self.count_value(token.offset)?;
                Ok(Node::Literal(literal(token.tok), token.offset))
            }
            Tok::LBracket => {
                self.at += 1;
                let mut items = Vec::new();
                if self.peek().is_some_and(|t| t.tok == Tok::RBracket) {
                    self.at += 1;
                    return Ok(Node::List(items, token.offset));
                }
                loop {
                    let item = self.peek().cloned();
                    match item {
                        Some(Token { tok: tok @ (Tok::Str(_) | Tok::Num(_)), offset }) => {
                            self.at += 1;
                            self.count_value(offset)?;
                            items.push((literal(tok), offset));
                        }
                        Some(Token { tok: Tok::Ident(word), offset }) if word == "true" || word == "false" => {
                            self.at += 1;
                            self.count_value(offset)?;
                            items.push((Lit::Bool(word == "true"), offset));
                        }
                        _ => {
                            return Err(ParseError {
                                offset: self.offset(),
                                message: "Expected a string or number".into(),
                            })
                        }
                    }
                    match self.peek().map(|t| &t.tok) {
                        Some(Tok::Comma) => self.at += 1,
                        Some(Tok::RBracket) => {
                            self.at += 1;
                            return Ok(Node::List(items, token.offset));
                        }
                        _ => return Err(ParseError { offset: self.offset(), message: "Expected ',' or ']'".into() }),
                    }
                }
            }
            _ => Err(ParseError { offset: token.offset, message: "Expected an argument".into() }),
        }
    }
}

fn literal(tok: Tok) -> Lit {
    match tok {
        Tok::Str(s) => Lit::Str(s),
        Tok::Num(n) => Lit::Num(n),
        _ => Lit::Null,
    }
}

// ---- resolving calls, attributes and values ----

/// What an argument in attribute position names.
enum Target {
    Attr(Attr),
    Tags,
    MetadataKey,
    MetadataValue,
}

fn target(node: &Node) -> Result<(Target, usize), ParseError> {
    let Node::Ident(name, offset) = node else {
        return Err(ParseError { offset: node_offset(node), message: "Expected an attribute name".into() });
    };
    let target = match name.as_str() {
        "tags" | "tag" => Target::Tags,
        "metadata_key" => Target::MetadataKey,
        "metadata_value" => Target::MetadataValue,
        _ => match Attr::NAMES.iter().find(|(n, _)| *n == name) {
            Some((_, attr)) => Target::Attr(*attr),
            None => {
                let known: Vec<&str> = Attr::NAMES.iter().map(|(n, _)| *n).collect();
                return Err(ParseError {
                    offset: *offset,
                    message: format!(
                        "Unknown attribute {name:?} (known: {}, tags, metadata_key, metadata_value)",
                        known.join(", ")
                    ),
                });
            }
        },
    };
    Ok((target, *offset))
}

fn node_offset(node: &Node) -> usize {
    match node {
        Node::Call { offset, .. } | Node::Ident(_, offset) | Node::Literal(_, offset) | Node::List(_, offset) => {
            *offset
        }
    }
}

/// A metadata half waiting for its pair inside an `and`.
enum Half {
    Key(String),
    Value(String, usize),
}

/// Resolve a parsed call. `in_and`: metadata halves may pair with siblings.
fn resolve(node: Node, in_and: bool) -> Result<RunFilter, ParseError> {
    resolve_part(node, in_and).and_then(|part| match part {
        Part::Filter(f) => Ok(f),
        Part::Half(Half::Key(key)) => Ok(RunFilter::MetadataKey(vec![key])),
        Part::Half(Half::Value(_, offset)) => Err(lone_value(offset)),
    })
}

fn lone_value(offset: usize) -> ParseError {
    ParseError { offset, message: "eq(metadata_value, ...) needs an eq(metadata_key, ...) in the same and(...)".into() }
}

enum Part {
    Filter(RunFilter),
    Half(Half),
}

fn resolve_part(node: Node, in_and: bool) -> Result<Part, ParseError> {
    let (name, offset, args) = match node {
        Node::Call { name, offset, args } => (name, offset, args),
        other => {
            return Err(ParseError {
                offset: node_offset(&other),
                message: "Expected a function such as eq(...) or and(...)".into(),
            })
        }
    };
    let arity = |n: usize| -> Result<(), ParseError> {
        if args.len() == n {
            Ok(())
        } else {
            Err(ParseError {
                offset,
                message: format!("{name}(...) takes {n} argument{}", if n == 1 { "" } else { "s" }),
            })
        }
    };
    let filter = match name.as_str() {
        "and" | "or" => {
            if args.is_empty() {
                return Err(ParseError { offset, message: format!("{name}(...) takes at least one argument") });
            }
            if name == "or" {
                RunFilter::Or(args.into_iter().map(|a| resolve(a, false)).collect::<Result<_, _>>()?)
            } else {
                let mut items = Vec::new();
                let mut keys = Vec::new();
                let mut values = Vec::new();
                for arg in args {
                    match resolve_part(arg, true)? {
                        Part::Filter(f) => items.push(f),
                        Part::Half(Half::Key(k)) => keys.push(k),
                        Part::Half(Half::Value(v, at)) => values.push((v, at)),
                    }
                }
                if values.len() > keys.len() {
                    return Err(lone_value(values[keys.len()].1));
                }
                let mut keys = keys.into_iter();
                for ((value, _), key) in values.into_iter().zip(keys.by_ref()) {
                    items.push(RunFilter::Metadata { key, value });
                }
                items.extend(keys.map(|k| RunFilter::MetadataKey(vec![k])));
                RunFilter::And(items)
            }
        }
        "not" => {
            arity(1)?;
            RunFilter::Not(Box::new(resolve(args.into_iter().next().unwrap_or_else(|| unreachable!()), false)?))
        }
        "search" => {
            arity(1)?;
            match args.into_iter().next() {
                Some(Node::Literal(Lit::Str(s), _)) => RunFilter::Search(s),
                Some(other) => {
                    return Err(ParseError {
                        offset: node_offset(&other),
                        message: "search(...) takes a string".into(),
                    })
                }
                None => unreachable!(),
            }
        }
        "has" => {
            arity(2)?;
            let mut args = args.into_iter();
            let (target, at) = target(&args.next().unwrap_or_else(|| unreachable!()))?;
            let value = args.next().unwrap_or_else(|| unreachable!());
            match (target, value) {
                (Target::Tags, Node::Literal(Lit::Str(tag), _)) => RunFilter::HasTag(tag),
                (Target::Tags, other) => {
                    return Err(ParseError {
                        offset: node_offset(&other),
                        message: "has(tags, ...) takes a string".into(),
                    })
                }
                _ => return Err(ParseError { offset: at, message: "has(...) applies to tags".into() }),
            }
        }
        "in" => {
            arity(2)?;
            let mut args = args.into_iter();
            let (target, at) = target(&args.next().unwrap_or_else(|| unreachable!()))?;
            let (items, list_at) = match args.next() {
                Some(Node::List(items, at)) => (items, at),
                Some(other) => {
                    return Err(ParseError { offset: node_offset(&other), message: "in(...) takes a [list]".into() })
                }
                None => unreachable!(),
            };
            if items.is_empty() {
                return Err(ParseError { offset: list_at, message: "in(...) needs at least one value".into() });
            }
            match target {
                Target::Attr(attr) => RunFilter::In(
                    attr,
                    items.into_iter().map(|(lit, at)| value(attr, lit, at)).collect::<Result<_, _>>()?,
                ),
                Target::Tags => RunFilter::Or(
                    items
                        .into_iter()
                        .map(|(lit, at)| text_of(lit, at).map(RunFilter::HasTag))
                        .collect::<Result<_, _>>()?,
                ),
                Target::MetadataKey => RunFilter::MetadataKey(
                    items.into_iter().map(|(lit, at)| text_of(lit, at)).collect::<Result<_, _>>()?,
                ),
                Target::MetadataValue => {
                    return Err(ParseError { offset: at, message: "in(metadata_value, ...) is not supported".into() })
                }
            }
        }
        "eq" | "neq" | "gt" | "gte" | "lt" | "lte" => {
            arity(2)?;
            let cmp = match name.as_str() {
                "eq" => Cmp::Eq,
                "neq" => Cmp::Neq,
                "gt" => Cmp::Gt,
                "gte" => Cmp::Gte,
                "lt" => Cmp::Lt,
                _ => Cmp::Lte,
            };
            let mut args = args.into_iter();
            let (target, at) = target(&args.next().unwrap_or_else(|| unreachable!()))?;
            let (lit, lit_at) = match args.next() {
                Some(Node::Literal(lit, at)) => (lit, at),
                Some(other) => {
                    return Err(ParseError {
                        offset: node_offset(&other),
                        message: "Expected a string, number or boolean".into(),
                    })
                }
                None => unreachable!(),
            };
            let only_eq = |what: &str| -> Result<(), ParseError> {
                if cmp == Cmp::Eq {
                    Ok(())
                } else {
                    Err(ParseError { offset, message: format!("{what} takes only eq(...)") })
                }
            };
            match target {
                Target::Tags => match cmp {
                    Cmp::Eq => RunFilter::HasTag(text_of(lit, lit_at)?),
                    Cmp::Neq => RunFilter::Not(Box::new(RunFilter::HasTag(text_of(lit, lit_at)?))),
                    _ => return Err(ParseError { offset, message: "tags take has(...), eq(...) or neq(...)".into() }),
                },
                Target::MetadataKey => {
                    only_eq("metadata_key")?;
                    let key = text_of(lit, lit_at)?;
                    return Ok(if in_and {
                        Part::Half(Half::Key(key))
                    } else {
                        Part::Filter(RunFilter::MetadataKey(vec![key]))
                    });
                }
                Target::MetadataValue => {
                    only_eq("metadata_value")?;
                    let value = match lit {
                        Lit::Num(n) => n,
                        other => text_of(other, lit_at)?,
                    };
                    if !in_and {
                        return Err(lone_value(at));
                    }
                    return Ok(Part::Half(Half::Value(value, at)));
                }
                Target::Attr(attr) => comparison(cmp, attr, lit, lit_at, offset)?,
            }
        }
        other => {
            return Err(ParseError {
                offset,
                message: format!(
                    "Unknown function {other:?} (known: and, or, not, eq, neq, gt, gte, lt, lte, in, has, search)"
                ),
            })
        }
    };
    Ok(Part::Filter(filter))
}

fn comparison(cmp: Cmp, attr: Attr, lit: Lit, lit_at: usize, offset: usize) -> Result<RunFilter, ParseError> {
    if lit == Lit::Null {
        if !matches!(cmp, Cmp::Eq | Cmp::Neq) {
            return Err(ParseError { offset: lit_at, message: "null takes only eq(...) or neq(...)".into() });
        }
        // `error` is "the run failed": null means it did not.
        if attr == Attr::Error {
            return Ok(RunFilter::Compare(Cmp::Eq, Attr::Error, Value::Bool(cmp == Cmp::Neq)));
        }
        return Ok(RunFilter::IsNull(attr, cmp == Cmp::Neq));
    }
    if attr.kind() == Kind::Bool && !matches!(cmp, Cmp::Eq | Cmp::Neq) {
        return Err(ParseError { offset, message: "A true/false attribute takes only eq(...) or neq(...)".into() });
    }
    Ok(RunFilter::Compare(cmp, attr, value(attr, lit, lit_at)?))
}

fn text_of(lit: Lit, at: usize) -> Result<String, ParseError> {
    match lit {
        Lit::Str(s) => Ok(s),
        _ => Err(ParseError { offset: at, message: "Expected a string".into() }),
    }
}

/// Read a literal as `attr`'s type.
fn value(attr: Attr, lit: Lit, at: usize) -> Result<Value, ParseError> {
    let wrong = |want: &str| ParseError { offset: at, message: format!("Expected {want} for this attribute") };
    match (attr.kind(), lit) {
        (Kind::Text, Lit::Str(s)) => Ok(Value::Text(s)),
        (Kind::Text, _) => Err(wrong("a string")),
        (Kind::Bool, Lit::Bool(b)) => Ok(Value::Bool(b)),
        (Kind::Bool, Lit::Str(s)) if s == "true" || s == "false" => Ok(Value::Bool(s == "true")),
        (Kind::Bool, _) => Err(wrong("true or false")),
        (Kind::Time, Lit::Str(s)) => {
            Timestamp::parse(&s).map(|t| Value::Time(t.0)).ok_or_else(|| wrong("an ISO 8601 datetime"))
        }
        (Kind::Time, _) => Err(wrong("an ISO 8601 datetime string")),
        (Kind::Number, Lit::Num(n)) => Ok(Value::Number(n)),
        (Kind::Number, _) => Err(wrong("a number")),
        (Kind::Seconds, Lit::Num(n)) => Ok(Value::Number(n)),
        (Kind::Seconds, Lit::Str(s)) => {
            seconds(&s).map(Value::Number).ok_or_else(|| wrong("seconds, \"2s\" or \"500ms\""))
        }
        (Kind::Seconds, _) => Err(wrong("seconds, \"2s\" or \"500ms\"")),
    }
}

/// `"2s"`, `"1.5s"`, `"500ms"`, `"2"` as exact seconds (decimal text).
fn seconds(text: &str) -> Option<String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, "e-3")
    } else if let Some(n) = text.strip_suffix('s') {
        (n, "")
    } else {
        (text, "")
    };
    let number = number.trim();
    (is_decimal(number) && !number.contains(['e', 'E'])).then(|| format!("{number}{scale}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> ParseError {
        parse(text).unwrap_err()
    }

    #[test]
    fn comparisons_read_their_values_as_the_attribute_s_type() {
        assert_eq!(
            parse(r#"and(eq(name, "chat"), gt(latency, "500ms"), gte(total_tokens, 10), eq(is_root, true))"#).unwrap(),
            RunFilter::And(vec![
                RunFilter::Compare(Cmp::Eq, Attr::Name, Value::Text("chat".into())),
                RunFilter::Compare(Cmp::Gt, Attr::Latency, Value::Number("500e-3".into())),
                RunFilter::Compare(Cmp::Gte, Attr::TotalTokens, Value::Number("10".into())),
                RunFilter::Compare(Cmp::Eq, Attr::IsRoot, Value::Bool(true)),
            ])
        );
        assert_eq!(
            parse(r#"lt(start_time, "2025-01-02T00:00:00Z")"#).unwrap(),
            RunFilter::Compare(Cmp::Lt, Attr::StartTime, Value::Time("2025-01-02T00:00:00Z".parse().unwrap()))
        );
        assert_eq!(
            parse("gt(latency, 2)").unwrap(),
            RunFilter::Compare(Cmp::Gt, Attr::Latency, Value::Number("2".into()))
        );
        assert_eq!(
            parse(r#"gt(latency, "1.5s")"#).unwrap(),
            RunFilter::Compare(Cmp::Gt, Attr::Latency, Value::Number("1.5".into()))
        );
    }

    #[test]
    fn null_error_and_parent_comparisons_mean_what_langsmith_users_write() {
        assert_eq!(parse("neq(error, null)").unwrap(), RunFilter::Compare(Cmp::Eq, Attr::Error, Value::Bool(true)));
        assert_eq!(parse("eq(error, null)").unwrap(), RunFilter::Compare(Cmp::Eq, Attr::Error, Value::Bool(false)));
        assert_eq!(parse("eq(parent_run_id, null)").unwrap(), RunFilter::IsNull(Attr::ParentRunId, false));
        assert_eq!(err("gt(end_time, null)").offset, 13);
    }

    #[test]
    fn metadata_keys_and_values_pair_inside_an_and() {
        assert_eq!(
            parse(r#"and(eq(metadata_key, "env"), eq(metadata_value, "prod"))"#).unwrap(),
            RunFilter::And(vec![RunFilter::Metadata { key: "env".into(), value: "prod".into() }])
        );
        assert_eq!(parse(r#"eq(metadata_key, 'env')"#).unwrap(), RunFilter::MetadataKey(vec!["env".into()]));
        assert_eq!(
            parse(r#"in(metadata_key, ["a", "b"])"#).unwrap(),
            RunFilter::MetadataKey(vec!["a".into(), "b".into()])
        );
        let lone = err(r#"or(eq(metadata_value, "prod"))"#);
        assert_eq!(lone.offset, 6, "{lone}");
    }

    #[test]
    fn tags_search_in_and_not_parse() {
        assert_eq!(parse(r#"has(tags, "beta")"#).unwrap(), RunFilter::HasTag("beta".into()));
        assert_eq!(
            parse(r#"not(search("Hello \"x\""))"#).unwrap(),
            RunFilter::Not(Box::new(RunFilter::Search("Hello \"x\"".into())))
        );
        assert_eq!(
            parse(r#"in(run_type, ["llm", "tool"])"#).unwrap(),
            RunFilter::In(Attr::RunType, vec![Value::Text("llm".into()), Value::Text("tool".into())])
        );
    }

    #[test]
    fn syntax_and_type_errors_give_the_character_offset() {
        assert_eq!(err("eq(name, \"x\"").offset, 12, "missing close paren at the end");
        assert_eq!(err("eq(nam, \"x\")").offset, 3, "unknown attribute");
        assert_eq!(err("eq(name, 3)").offset, 9, "a number for a text attribute");
        assert_eq!(err("gt(start_time, \"yesterday\")").offset, 15);
        assert_eq!(err("eq(name, \"x\") junk").offset, 14);
        assert_eq!(err("frob(name)").offset, 0);
        assert_eq!(err("eq(name, \"unterminated)").offset, 9);
        assert_eq!(err("gt(is_root, true)").offset, 0);
        assert_eq!(err("eq(name; \"x\")").offset, 7);
        assert_eq!(err("gt(latency, \"2 hours\")").offset, 12);
        assert_eq!(err("").offset, 0);
    }

    #[test]
    fn nesting_and_value_counts_are_bounded() {
        let deep = format!("{}eq(id, \"x\"){}", "not(".repeat(MAX_DEPTH + 2), ")".repeat(MAX_DEPTH + 2));
        assert!(err(&deep).message.contains("nests"));
        let list = (0..=MAX_VALUES).map(|i| format!("\"{i}\"")).collect::<Vec<_>>().join(",");
        assert!(err(&format!("in(id, [{list}])")).message.contains("at most"));
    }

    #[test]
    fn total_cost_is_taken_out_only_at_the_top_level() {
        let (rest, costs) = take_cost_conditions(parse(r#"and(gt(total_cost, 0.5), eq(name, "x"))"#).unwrap()).unwrap();
        assert_eq!(costs, vec![(Cmp::Gt, 0.5)]);
        assert_eq!(rest, Some(RunFilter::And(vec![RunFilter::Compare(Cmp::Eq, Attr::Name, Value::Text("x".into()))])));
        assert!(take_cost_conditions(parse(r#"or(gt(total_cost, 0.5), eq(name, "x"))"#).unwrap()).is_err());
        let (rest, costs) = take_cost_conditions(parse("lte(total_cost, 1)").unwrap()).unwrap();
        assert_eq!((rest, costs), (None, vec![(Cmp::Lte, 1.0)]));
    }

    #[test]
    fn numbers_are_plain_decimals() {
        for good in ["1", "-2.5", "0.125", "1e-3", ".5"] {
            assert!(is_decimal(good), "{good}");
        }
        for bad in ["1e", "--1", "1.2.3", "e5", "1e1000", "0x10", ""] {
            assert!(!is_decimal(bad), "{bad}");
        }
    }
}
