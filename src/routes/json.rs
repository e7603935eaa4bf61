//! JSON request bodies: parsed into typed requests, every failure explained as a pydantic-style
//! 422 detail (`type`, `loc`, `msg`, `input`), the shape the Weave clients read.
//!
//! The body is parsed once into a `serde_json::Value` and then deserialised by [`ValueDe`], a
//! deserializer over that value whose errors are typed: it knows which type each field asked
//! for (`deserialize_str`, `deserialize_u32`, ...), so a mismatch becomes `string_type`,
//! `int_parsing`, ... without reading any message text. The domain's own validation errors
//! arrive as `"<type>|<message>"` (see `domain::de_error`).
use std::fmt;

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeOwned, DeserializeSeed, EnumAccess, IntoDeserializer, VariantAccess, Visitor};
use serde_json::{json, Map, Value};

use crate::error::{ApiError, ValidationDetail};

/// Parse a request body into `T`, or the 422 that explains why not.
///
/// A valid body is read straight into `T` (no intermediate `Value`, so memory stays a small
/// multiple of the body); only a body that fails is parsed again, into a `Value`, for the
/// typed errors of [`ValueDe`].
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if !has_nul_escape(bytes) {
        let mut direct = serde_json::Deserializer::from_slice(bytes);
        if let Ok(value) = T::deserialize(&mut direct).and_then(|value| direct.end().map(|()| value)) {
            return Ok(value);
        }
    }
    explain(bytes)
}

/// Parse a body that did not read straight into `T`: the 422 saying why (or `T`, for what
/// only the direct reader refuses, such as a repeated key).
fn explain<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::Validation(vec![ValidationDetail::new(
            "missing",
            vec![json!("body")],
            "Field required",
            Value::Null,
        )]));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        let offset = if e.is_eof() { bytes.len() } else { byte_offset(bytes, e.line(), e.column()) };
        ApiError::Validation(vec![ValidationDetail::new(
            "json_invalid",
            vec![json!("body"), json!(offset)],
            format!("JSON decode error: {e}"),
            json!({}),
        )])
    })?;
    // Postgres text and jsonb cannot hold U+0000; refuse it here rather than fail in the database.
    if has_nul_escape(bytes) {
        if let Some(path) = find_nul(&value, &mut vec![json!("body")]) {
            return Err(ApiError::Validation(vec![ValidationDetail::new(
                "string_unicode",
                path,
                "Strings may not contain the NUL character (\\u0000)",
                Value::Null,
            )]));
        }
    }
    serde_path_to_error::deserialize(ValueDe(&value)).map_err(|e| ApiError::Validation(vec![detail(&value, e)]))
}

fn has_nul_escape(bytes: &[u8]) -> bool {
    bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000"))
}

fn find_nul(value: &Value, path: &mut Vec<Value>) -> Option<Vec<Value>> {
    match value {
        Value::String(s) if s.contains('\0') => Some(path.clone()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| {
            path.push(json!(i));
            let found = find_nul(v, path);
            path.pop();
            found
        }),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            path.push(json!(k));
            let found = if k.contains('\0') { Some(path.clone()) } else { find_nul(v, path) };
            path.pop();
            found
        }),
        _ => None,
    }
}

/// serde_json reports 1-based lines and columns; the API reports a byte offset.
fn byte_offset(bytes: &[u8], line: usize, column: usize) -> usize {
    let line_start: usize = bytes.split(|b| *b == b'\n').take(line.saturating_sub(1)).map(|l| l.len() + 1).sum();
    (line_start + column.saturating_sub(1)).min(bytes.len())
}

/// The JSON type a field asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    String,
    Bool,
    Int,
    Float,
    List,
    Dict,
    Literal,
}

/// Why a value does not fit the request type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeError {
    /// A required field is absent.
    Missing(&'static str),
    /// A field the type does not have.
    Extra(String),
    /// A value of another JSON type than the field's.
    Type(Expected),
    /// A number below the least value of the field's (unsigned) type.
    Below(i64),
    /// A string that is none of an enumeration's values.
    Variant(&'static [&'static str]),
    /// A domain validation error, `"<type>|<message>"`.
    Domain { kind: String, msg: String },
    /// Anything else.
    Other(String),
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, msg) = self.kind_and_message();
        write!(f, "{kind}: {msg}")
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        let text = msg.to_string();
        match text.split_once('|') {
            Some((kind, msg)) if !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') => {
                Self::Domain { kind: kind.to_string(), msg: msg.to_string() }
            }
            _ => Self::Other(text),
        }
    }

    fn missing_field(field: &'static str) -> Self {
        Self::Missing(field)
    }

    fn unknown_field(field: &str, _expected: &'static [&'static str]) -> Self {
        Self::Extra(field.to_string())
    }

    fn unknown_variant(_variant: &str, expected: &'static [&'static str]) -> Self {
        Self::Variant(expected)
    }
}

impl DeError {
    fn kind_and_message(&self) -> (String, String) {
        let (kind, msg): (&str, String) = match self {
            Self::Missing(_) => ("missing", "Field required".into()),
            Self::Extra(_) => ("extra_forbidden", "Extra inputs are not permitted".into()),
            Self::Type(Expected::String) => ("string_type", "Input should be a valid string".into()),
            Self::Type(Expected::Bool) => ("bool_parsing", "Input should be a valid boolean".into()),
            Self::Type(Expected::Int) => ("int_parsing", "Input should be a valid integer".into()),
            Self::Type(Expected::Float) => ("float_parsing", "Input should be a valid number".into()),
            Self::Type(Expected::List) => ("list_type", "Input should be a valid list".into()),
            Self::Type(Expected::Dict) => ("dict_type", "Input should be a valid dictionary or object".into()),
            Self::Type(Expected::Literal) => ("literal_error", "Input should be one of the allowed values".into()),
            Self::Below(min) => ("greater_than_equal", format!("Input should be greater than or equal to {min}")),
            Self::Variant(allowed) => ("literal_error", format!("Input should be {}", one_of(allowed))),
            Self::Domain { kind, msg } => (kind.as_str(), msg.clone()),
            Self::Other(text) => ("value_error", text.clone()),
        };
        (kind.to_string(), msg)
    }
}

/// `'a', 'b' or 'c'`, as pydantic lists literals.
fn one_of(allowed: &[&str]) -> String {
    let quoted: Vec<String> = allowed.iter().map(|a| format!("'{a}'")).collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => "nothing".into(),
    }
}

/// One 422 detail: `loc` from the error's path in the body, `type` and `msg` from its kind.
fn detail(body: &Value, error: serde_path_to_error::Error<DeError>) -> ValidationDetail {
    let mut loc = vec![json!("body")];
    for segment in error.path().iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => loc.push(json!(index)),
            serde_path_to_error::Segment::Map { key } => loc.push(json!(key)),
            serde_path_to_error::Segment::Enum { variant } => loc.push(json!(variant)),
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    let inner = error.into_inner();
    // A missing or unknown field is not a step of the path: name it at the end of `loc`.
    if let DeError::Missing(field) = &inner {
        push_unless_last(&mut loc, field);
    }
    if let DeError::Extra(field) = &inner {
        push_unless_last(&mut loc, field);
    }
    let (kind, msg) = inner.kind_and_message();
    let input = lookup(body, &loc[1..]).cloned().unwrap_or(Value::Null);
    ValidationDetail::new(&kind, loc, msg, input)
}

fn push_unless_last(loc: &mut Vec<Value>, field: &str) {
    if loc.last() != Some(&json!(field)) {
        loc.push(json!(field));
    }
}

fn lookup<'a>(value: &'a Value, path: &[Value]) -> Option<&'a Value> {
    path.iter().try_fold(value, |current, segment| match segment {
        Value::String(key) => current.get(key.as_str()),
        Value::Number(index) => current.get(index.as_u64()? as usize),
        _ => None,
    })
}

/// The name serde_json's `RawValue` is deserialised under.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// A deserializer over a parsed JSON value whose errors say which type was expected.
#[derive(Clone, Copy)]
pub struct ValueDe<'a>(pub &'a Value);

impl<'de> IntoDeserializer<'de, DeError> for ValueDe<'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> ValueDe<'de> {
    /// An integer field of range `[min, max]`.
    fn integer<V: Visitor<'de>>(self, visitor: V, min: i128, max: i128) -> Result<V::Value, DeError> {
        let Value::Number(n) = self.0 else { return Err(DeError::Type(Expected::Int)) };
        let value = match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i128::from(i),
            (None, Some(u)) => i128::from(u),
            _ => return Err(DeError::Type(Expected::Int)),
        };
        if value < min {
            return Err(if min == 0 { DeError::Below(0) } else { DeError::Type(Expected::Int) });
        }
        if value > max {
            return Err(DeError::Type(Expected::Int));
        }
        match u64::try_from(value) {
            Ok(u) => visitor.visit_u64(u),
            Err(_) => visitor.visit_i64(value as i64),
        }
    }

    fn seq<V: Visitor<'de>>(items: &'de [Value], visitor: V) -> Result<V::Value, DeError> {
        let mut seq = SeqDeserializer::new(items.iter().map(ValueDe));
        let value = visitor.visit_seq(&mut seq)?;
        seq.end()?;
        Ok(value)
    }

    fn map<V: Visitor<'de>>(map: &'de Map<String, Value>, visitor: V) -> Result<V::Value, DeError> {
        let mut entries = MapDeserializer::new(map.iter().map(|(k, v)| (k.as_str(), ValueDe(v))));
        let value = visitor.visit_map(&mut entries)?;
        entries.end()?;
        Ok(value)
    }
}

macro_rules! integers {
    ($($method:ident: $t:ty),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            self.integer(visitor, i128::from(<$t>::MIN), i128::from(<$t>::MAX))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for ValueDe<'de> {
    type Error = DeError;

    integers!(deserialize_i8: i8, deserialize_i16: i16, deserialize_i32: i32, deserialize_i64: i64,
              deserialize_u8: u8, deserialize_u16: u16, deserialize_u32: u32, deserialize_u64: u64);

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => visitor.visit_u64(u),
                (None, Some(i)) => visitor.visit_i64(i),
                _ => visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => Self::seq(items, visitor),
            Value::Object(map) => Self::map(map, visitor),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Bool(b) => visitor.visit_bool(*b),
            _ => Err(DeError::Type(Expected::Bool)),
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Number(n) => visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN)),
            _ => Err(DeError::Type(Expected::Float)),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::String(s) => visitor.visit_borrowed_str(s),
            _ => Err(DeError::Type(Expected::String)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        // serde_json's `RawValue` asks for itself by this name, and takes its JSON text as a
        // one-entry map (the protocol of serde_json's own value deserializer).
        if name == RAW_VALUE_TOKEN {
            let text = serde_json::to_string(self.0).map_err(|e| DeError::Other(e.to_string()))?;
            let entry = std::iter::once((RAW_VALUE_TOKEN, text));
            return visitor.visit_map(MapDeserializer::new(entry));
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Array(items) => Self::seq(items, visitor),
            _ => Err(DeError::Type(Expected::List)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Object(map) => Self::map(map, visitor),
            _ => Err(DeError::Type(Expected::Dict)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.0 {
            Value::String(variant) => visitor.visit_enum(Variant { name: variant, value: None }),
            Value::Object(map) if map.len() == 1 => {
                let (name, value) = map.iter().next().expect("one entry");
                visitor.visit_enum(Variant { name, value: Some(value) })
            }
            _ => Err(DeError::Type(Expected::Literal)),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

/// An enum written as `"variant"` or `{"variant": value}`.
struct Variant<'de> {
    name: &'de str,
    value: Option<&'de Value>,
}

impl<'de> EnumAccess<'de> for Variant<'de> {
    type Error = DeError;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self), DeError> {
        let name = seed.deserialize(de::value::BorrowedStrDeserializer::<DeError>::new(self.name))?;
        Ok((name, self))
    }
}

impl<'de> VariantAccess<'de> for Variant<'de> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        match self.value {
            None | Some(Value::Null) => Ok(()),
            Some(_) => Err(DeError::Type(Expected::String)),
        }
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, DeError> {
        seed.deserialize(ValueDe(self.value.unwrap_or(&Value::Null)))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_seq(ValueDe(self.value.unwrap_or(&Value::Null)), visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_map(ValueDe(self.value.unwrap_or(&Value::Null)), visitor)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Req {
        name: String,
        limit: Option<u32>,
        flag: Option<bool>,
        items: Option<Vec<i64>>,
        mode: Option<Mode>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Fast,
        Slow,
    }

    fn first_detail(body: Value) -> (String, Vec<Value>, String) {
        match parse_body::<Req>(body.to_string().as_bytes()) {
            Err(ApiError::Validation(details)) => {
                let d = &details[0];
                (d.kind.clone(), d.loc.clone(), d.msg.clone())
            }
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn each_mismatch_is_named_by_the_type_the_field_asked_for() {
        assert_eq!(first_detail(json!({"name": 5})).0, "string_type");
        assert_eq!(first_detail(json!({"name": "a", "limit": "x"})).0, "int_parsing");
        assert_eq!(first_detail(json!({"name": "a", "limit": 1.5})).0, "int_parsing");
        assert_eq!(first_detail(json!({"name": "a", "limit": 5_000_000_000_u64})).0, "int_parsing");
        assert_eq!(first_detail(json!({"name": "a", "flag": "yes"})).0, "bool_parsing");
        assert_eq!(first_detail(json!({"name": "a", "items": {}})).0, "list_type");
        let (kind, loc, _) = first_detail(json!({"name": "a", "items": [1, "2"]}));
        assert_eq!((kind.as_str(), loc), ("int_parsing", vec![json!("body"), json!("items"), json!(1)]));
    }

    #[test]
    fn a_negative_number_for_an_unsigned_field_is_greater_than_equal() {
        let (kind, loc, msg) = first_detail(json!({"name": "a", "limit": -1}));
        assert_eq!(kind, "greater_than_equal");
        assert_eq!(loc, vec![json!("body"), json!("limit")]);
        assert_eq!(msg, "Input should be greater than or equal to 0");
    }

    #[test]
    fn missing_unknown_and_unlisted_values_are_named_at_their_field() {
        let (kind, loc, msg) = first_detail(json!({}));
        assert_eq!(
            (kind.as_str(), loc, msg.as_str()),
            ("missing", vec![json!("body"), json!("name")], "Field required")
        );
        let (kind, loc, _) = first_detail(json!({"name": "a", "colour": "red"}));
        assert_eq!((kind.as_str(), loc), ("extra_forbidden", vec![json!("body"), json!("colour")]));
        let (kind, loc, msg) = first_detail(json!({"name": "a", "mode": "medium"}));
        assert_eq!((kind.as_str(), loc), ("literal_error", vec![json!("body"), json!("mode")]));
        assert_eq!(msg, "Input should be 'fast' or 'slow'");
    }

    #[test]
    fn raw_json_fields_read_through_the_typed_deserializer_too() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct WithRaw {
            inputs: Box<serde_json::value::RawValue>,
            n: u8,
        }
        // Valid: both paths give the text; invalid elsewhere: the error is found, not the raw field.
        let direct: WithRaw = parse_body(br#"{"inputs": {"a": [1, 2]}, "n": 1}"#).unwrap();
        assert_eq!(direct.inputs.get(), r#"{"a": [1, 2]}"#);
        match parse_body::<WithRaw>(br#"{"inputs": {"a": [1, 2]}, "n": 300}"#) {
            Err(ApiError::Validation(d)) => {
                assert_eq!((d[0].kind.as_str(), d[0].loc.clone()), ("int_parsing", vec![json!("body"), json!("n")]))
            }
            other => panic!("{other:?}"),
        }
        let value = json!({"inputs": {"a": [1, 2]}, "n": 1});
        let typed: WithRaw = serde_path_to_error::deserialize(ValueDe(&value)).unwrap();
        assert_eq!(typed.inputs.get(), r#"{"a":[1,2]}"#);
    }

    #[test]
    fn a_valid_body_parses_whole() {
        let req: Req =
            parse_body(br#"{"name": "a", "limit": 3, "flag": true, "items": [-1, 2], "mode": "slow"}"#).unwrap();
        assert_eq!((req.name.as_str(), req.limit, req.items), ("a", Some(3), Some(vec![-1, 2])));
    }

    #[test]
    fn byte_offsets_count_from_the_start_of_the_body() {
        let body = b"{\n  \"a\": ,\n}";
        let err = serde_json::from_slice::<Value>(body).unwrap_err();
        assert_eq!(byte_offset(body, err.line(), err.column()), 9);
    }
}
