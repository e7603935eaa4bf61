//! Content addressing as Weave's server does it (API.md §11.2), so a digest the SDK computes
//! itself agrees with ours.
//!
//! - A JSON value's digest hashes its canonical text: Python's `json.dumps(v, sort_keys=True)`
//!   (`", "` and `": "` separators, keys sorted by code point, non-ASCII escaped as `\uXXXX`,
//!   floats printed as Python's `repr`), with SHA-256, written in URL-safe base64 without
//!   padding and with `-` and `_` replaced by `X` and `Y` (43 letters and digits).
//! - A file's digest is the same over its bytes.
//! - A table's digest is the lowercase hex SHA-256 of its row digests concatenated in order.
//!
//! Integers beyond 64 bits are held as floats by our JSON parser, so their canonical text (and
//! digest) differs from Python's; nothing the SDK sends has them.
use std::fmt::Write;

use base64::Engine;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The digest of some bytes: URL-safe base64 of their SHA-256, `-` → `X`, `_` → `Y`, no padding.
pub fn bytes_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash).replace('-', "X").replace('_', "Y")
}

/// The digest of a JSON value, and the canonical text it hashes.
pub fn value_digest(value: &Value) -> (String, String) {
    let text = canonical_json(value);
    (bytes_digest(text.as_bytes()), text)
}

/// The digest of a table: SHA-256 of its row digests, in order, as lowercase hex.
pub fn table_digest<'a>(row_digests: impl IntoIterator<Item = &'a str>) -> String {
    let mut hasher = Sha256::new();
    for digest in row_digests {
        hasher.update(digest.as_bytes());
    }
    hasher.finalize().iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Python's `json.dumps(value, sort_keys=True)`.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out);
    out
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => {
                let _ = write!(out, "{i}");
            }
            (None, Some(u), _) => {
                let _ = write!(out, "{u}");
            }
            (_, _, Some(f)) => out.push_str(&python_float(f)),
            _ => out.push_str("null"),
        },
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(map, out),
    }
}

fn write_object(map: &Map<String, Value>, out: &mut String) {
    // Rust strings compare by UTF-8 bytes, which orders as Python orders by code point.
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push('{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_string(key, out);
        out.push_str(": ");
        write_value(value, out);
    }
    out.push('}');
}

/// A JSON string as Python writes it with `ensure_ascii`: short escapes for the usual
/// controls, `\uXXXX` (UTF-16 units, lowercase hex) for other controls, DEL and non-ASCII.
fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// A float as Python's `repr` prints it: the shortest digits that read back to the same
/// value, in positional form for decimal exponents from -4 to 15 (with `.0` when integral),
/// else as `d.ddde±XX`.
pub fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0".into() } else { "0.0".into() };
    }
    // `{:e}` prints the shortest round-trip digits: `d[.ddd]e<exp>`.
    let sci = format!("{f:e}");
    let (mantissa, exponent) = sci.split_once('e').expect("{:e} has an exponent");
    let exponent: i32 = exponent.parse().expect("an integer exponent");
    let (sign, mantissa) = mantissa.strip_prefix('-').map_or(("", mantissa), |m| ("-", m));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if !(-4..16).contains(&exponent) {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        return format!("{sign}{first}{fraction}e{exp_sign}{:02}", exponent.abs());
    }
    let point = exponent + 1; // digits before the decimal point
    if point <= 0 {
        format!("{sign}0.{}{digits}", "0".repeat((-point) as usize))
    } else if point as usize >= digits.len() {
        format!("{sign}{digits}{}.0", "0".repeat(point as usize - digits.len()))
    } else {
        let (whole, fraction) = digits.split_at(point as usize);
        format!("{sign}{whole}.{fraction}")
    }
}

/// What kind of thing an object value is, and its classes (Weave's `process_incoming_object_val`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectClasses {
    /// `op` for a serialised op, else `object`.
    pub kind: &'static str,
    pub base_object_class: Option<String>,
    pub leaf_object_class: Option<String>,
}

/// The kind and classes of an object value: a `weave.Object` value carries `_class_name` and
/// `_bases` (ending `[..., "Object" | "BaseObject", "BaseModel"]`); its leaf class is its own,
/// its base class the one just above `Object` (or its own when it derives from `Object`).
pub fn object_classes(val: &Value) -> ObjectClasses {
    let kind = if is_op(val) { "op" } else { "object" };
    let classes = val.as_object().and_then(|map| {
        let bases: Vec<&str> = map.get("_bases")?.as_array()?.iter().filter_map(Value::as_str).collect();
        let class_name = map.get("_class_name")?.as_str()?;
        let n = bases.len();
        if n < 2 || bases[n - 1] != "BaseModel" || !matches!(bases[n - 2], "Object" | "BaseObject") {
            return None;
        }
        let base = if n > 2 { bases[n - 3] } else { class_name };
        Some((base.to_string(), class_name.to_string()))
    });
    let (base_object_class, leaf_object_class) = classes.unzip();
    ObjectClasses { kind, base_object_class, leaf_object_class }
}

/// A serialised op: `{"_type": ..., "weave_type": {"type": "Op"}}` (or `_type` `Op` itself).
fn is_op(val: &Value) -> bool {
    let Some(map) = val.as_object() else { return false };
    if !map.contains_key("_type") {
        return false;
    }
    let kind = match map.get("weave_type") {
        Some(weave_type) => weave_type.get("type"),
        None => map.get("_type"),
    };
    kind.and_then(Value::as_str) == Some("Op")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Vectors computed with Weave's own digest code (`weave.trace.serialization.digest`).
    #[test]
    fn object_digests_equal_the_ones_weave_computes() {
        let cases = [
            (json!({"a": 1, "b": [1, 2]}), "{\"a\": 1, \"b\": [1, 2]}", "5vIL3DdX5eeXTjFt7YQZbxnPWVTYx2sYliKGgPze9mw"),
            (json!({"b": [1, 2], "a": 1}), "{\"a\": 1, \"b\": [1, 2]}", "5vIL3DdX5eeXTjFt7YQZbxnPWVTYx2sYliKGgPze9mw"),
            (json!("hello world"), "\"hello world\"", "nd7XRDWyHZAUOeVG1UoUoXWjSTuf2PvzjZ6m08v3CCY"),
            (
                json!([1, "two", {"three": 3}]),
                "[1, \"two\", {\"three\": 3}]",
                "M3FCV8xuuSXNFTDaBRLLVCCIkn1P1kj74JElqi0kXdo",
            ),
            (json!(null), "null", "dCNOmKYnSYX12vHzasLXiswzlGT5UHA7jAGYkvmCuQs"),
            (json!({}), "{}", "RBNvo1WzZ4oRRq0W9XhknpT7T8If536DEMBg9hyqY4o"),
            (json!({"x": 1}), "{\"x\": 1}", "YTYlqmU0Pbsbmr5qusZ3P1yRvWDT8vX34urmnh24sic"),
        ];
        for (value, text, digest) in cases {
            assert_eq!(value_digest(&value), (digest.to_string(), text.to_string()), "{value}");
        }
    }

    #[test]
    fn floats_print_as_python_repr_and_strings_escape_as_ensure_ascii() {
        let value: Value =
            serde_json::from_str(r#"{"x": 1.0, "y": 1e16, "z": 1e-5, "w": 0.1, "big": 12345678901234567890}"#).unwrap();
        assert_eq!(
            value_digest(&value),
            (
                "yZwLcOlUfOV7K2kE8ngNaRPf5FHKTNTpyUv0bW6ypXw".to_string(),
                "{\"big\": 12345678901234567890, \"w\": 0.1, \"x\": 1.0, \"y\": 1e+16, \"z\": 1e-05}".to_string()
            )
        );
        let value = json!({"emoji": "👍", "é": "ü", "nl": "a\nb", "slash": "a/b", "ctrl": "\u{1}\u{7f}"});
        let (digest, text) = value_digest(&value);
        assert_eq!(
            text,
            r#"{"ctrl": "\u0001\u007f", "emoji": "\ud83d\udc4d", "nl": "a\nb", "slash": "a/b", "\u00e9": "\u00fc"}"#
        );
        assert_eq!(digest, "JY0Y5X4rcWxeJ1KDUvQXmeEdNe49N9C6xz2C2Sgs1c0");
        for (f, repr) in [
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (1.2345e-7, "1.2345e-07"),
            (1.5e16, "1.5e+16"),
            (123456789012345680.0, "1.2345678901234568e+17"),
            (0.01, "0.01"),
            (1.1, "1.1"),
            (-2.5, "-2.5"),
            (100.0, "100.0"),
            (-0.0, "-0.0"),
            (0.7, "0.7"),
            (123.456, "123.456"),
        ] {
            assert_eq!(python_float(f), repr, "{f}");
        }
    }

    #[test]
    fn weave_objects_carry_their_classes_and_ops_their_kind() {
        let cfg = json!({"_type": "MyCfg", "name": "mycfg", "description": null, "temperature": 0.7, "tags": ["x"],
                         "_class_name": "MyCfg", "_bases": ["Object", "BaseModel"]});
        assert_eq!(value_digest(&cfg).0, "BCu0UjQ4klLyW9TcMTtKs3Y43ECyfH9X1geRdMYD2f4");
        let classes = object_classes(&cfg);
        assert_eq!(
            (classes.kind, classes.base_object_class.as_deref(), classes.leaf_object_class.as_deref()),
            ("object", Some("MyCfg"), Some("MyCfg"))
        );
        let model = json!({"_type": "MyModel", "name": null, "description": null, "prefix": "ans:",
            "predict": "weave:///acme/app/op/MyModel.predict:fCvut4M6IyRvGPo8fQDzYjcFvmqsunR6GqlN0D8n8dg",
            "_class_name": "MyModel", "_bases": ["Model", "Object", "BaseModel"]});
        assert_eq!(value_digest(&model).0, "hg859aprTkSonc0Fx6EYtfQEbsoBTaDff5eGXeOQLTU");
        let classes = object_classes(&model);
        assert_eq!(
            (classes.base_object_class.as_deref(), classes.leaf_object_class.as_deref()),
            (Some("Model"), Some("MyModel"))
        );
        let op = json!({"_type": "CustomWeaveType", "weave_type": {"type": "Op"},
                        "files": {"obj.py": "p56UMHX7GShIy4YTzVH2c9Iqu0YM6gh3oZQvZtEA5aI"}});
        assert_eq!(value_digest(&op).0, "mpAz9Zk9RcLqUOXtSbBu7aUC1aXrFDt1H6stniZNyNQ");
        assert_eq!(object_classes(&op), ObjectClasses { kind: "op", base_object_class: None, leaf_object_class: None });
        assert_eq!(object_classes(&json!({"a": 1})).kind, "object");
        assert_eq!(object_classes(&json!({"_class_name": "X", "_bases": ["BaseModel"]})).leaf_object_class, None);
    }

    #[test]
    fn table_and_file_digests_equal_the_ones_weave_computes() {
        let rows = [json!({"x": 1}), json!({"x": 2})];
        let digests: Vec<String> = rows.iter().map(|r| value_digest(r).0).collect();
        assert_eq!(digests[1], "JPVyYA4VDTIwE4OFqgAGyhuZO0a7Qn90bMaQyY2TJBM");
        assert_eq!(
            table_digest(digests.iter().map(String::as_str)),
            "ed8bd1f8cb829eeb6b3fef95a7cd8401f7e5af825c4c9aa144a1ceb9f32c3654"
        );
        assert_eq!(table_digest([]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(bytes_digest(b"hello"), "LPJNulXwow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ");
        assert_eq!(bytes_digest(b""), "47DEQpj8HBSaXYTImWX5JCeuQeRkm5NMpJWZG3hSuFU");
        assert_eq!(
            bytes_digest(b"import weave\n\n@weave.op\ndef f(x: int) -> int:\n    return x + 1\n"),
            "p56UMHX7GShIy4YTzVH2c9Iqu0YM6gh3oZQvZtEA5aI"
        );
    }
}
