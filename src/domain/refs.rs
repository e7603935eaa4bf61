//! Weave refs (API.md §11.2): `weave:///entity/project/object/name:version[/edge/value]...`,
//! the same with `op`, `weave:///entity/project/table/<digest>` and `.../call/<id>`. Edges are
//! `key`, `attr`, `index` and `id` (a table row's digest); names and edge values are
//! percent-encoded.
use super::ProjectId;

/// What a ref points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An object or op version (`kind` is `object` or `op`).
    Object {
        kind: String,
        name: String,
        version: String,
    },
    Table {
        digest: String,
    },
    Call {
        id: String,
    },
}

/// One step into a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edge {
    /// A dict key (`key`) or an object attribute (`attr`; stored objects are dicts).
    Key(String),
    /// A list position.
    Index(usize),
    /// A table row, by its digest.
    Id(String),
}

/// A parsed ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    pub project: ProjectId,
    pub target: Target,
    pub extra: Vec<Edge>,
}

/// The prefix every ref starts with.
pub const PREFIX: &str = "weave:///";

impl Ref {
    /// Parse a ref, or say why it is not one.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid ref {text:?}: {why}");
        let rest = text.strip_prefix(PREFIX).ok_or_else(|| bad("it must start with weave:///"))?;
        let mut parts = rest.split('/');
        let (entity, project, kind) = match (parts.next(), parts.next(), parts.next()) {
            (Some(e), Some(p), Some(k)) => (decode(e), decode(p), k),
            _ => return Err(bad("it must name entity/project/kind")),
        };
        let project = ProjectId::parse(&format!("{entity}/{project}")).ok_or_else(|| bad("bad entity/project"))?;
        let head = parts.next().ok_or_else(|| bad("nothing after the kind"))?;
        let target = match kind {
            "object" | "op" => {
                let (name, version) = head.rsplit_once(':').ok_or_else(|| bad("name:version expected"))?;
                if name.is_empty() || version.is_empty() {
                    return Err(bad("name:version expected"));
                }
                Target::Object { kind: kind.to_string(), name: decode(name), version: decode(version) }
            }
            "table" => Target::Table { digest: decode(head) },
            "call" => Target::Call { id: decode(head) },
            other => return Err(bad(&format!("unknown kind {other:?}"))),
        };
        let rest: Vec<&str> = parts.collect();
        if rest.len() % 2 != 0 {
            return Err(bad("extra path steps come in pairs"));
        }
        let extra = rest
            .chunks(2)
            .map(|pair| {
                let value = decode(pair[1]);
                match pair[0] {
                    "key" | "attr" => Ok(Edge::Key(value)),
                    "index" => value.parse().map(Edge::Index).map_err(|_| bad("an index must be a number")),
                    "id" => Ok(Edge::Id(value)),
                    other => Err(bad(&format!("unknown edge {other:?}"))),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Ref { project, target, extra })
    }

    /// `weave:///entity/project/object/name:digest` for an object version.
    pub fn object_uri(project: &ProjectId, kind: &str, name: &str, digest: &str) -> String {
        format!("{PREFIX}{project}/{kind}/{}:{digest}", encode(name))
    }

    /// `weave:///entity/project/table/digest`.
    pub fn table_uri(project: &ProjectId, digest: &str) -> String {
        format!("{PREFIX}{project}/table/{digest}")
    }
}

/// Where walking a ref's extra path into a value ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Walk {
    /// The value at the end of the path (null where the path leaves the value).
    Done(serde_json::Value),
    /// The path runs into another ref: read what it names, then walk `rest` into it.
    Follow { target: Ref, rest: Vec<Edge> },
    /// The path cannot be walked (an `id` step into something that is not a table).
    Invalid(String),
}

/// Walk `edges` into `value`, stopping at the first ref met on the way (API.md §11.2:
/// `refs/read_batch` follows refs into other objects and table rows).
pub fn walk(mut value: serde_json::Value, edges: &[Edge]) -> Walk {
    use serde_json::Value;
    for (i, edge) in edges.iter().enumerate() {
        if let Value::String(text) = &value {
            if text.starts_with(PREFIX) {
                return match Ref::parse(text) {
                    Ok(mut target) => {
                        let mut rest = std::mem::take(&mut target.extra);
                        rest.extend_from_slice(&edges[i..]);
                        Walk::Follow { target, rest }
                    }
                    Err(_) => Walk::Done(Value::Null),
                };
            }
        }
        value = match (edge, value) {
            (_, Value::Null) => return Walk::Done(Value::Null),
            (Edge::Key(key), Value::Object(mut map)) => map.remove(key).unwrap_or(Value::Null),
            (Edge::Index(index), Value::Array(mut items)) if *index < items.len() => items.swap_remove(*index),
            (Edge::Id(_), _) => return Walk::Invalid("an id step needs a table".into()),
            _ => Value::Null,
        };
    }
    Walk::Done(value)
}

/// Percent-decode (a malformed escape is kept as written).
fn decode(text: &str) -> String {
    if !text.contains('%') {
        return text.to_string();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encode everything but `A-Za-z0-9_.-~` (Python's `quote(s, safe="")`): safe in a ref, a
/// URL path or a `Location`.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_refs_split_on_the_last_colon_and_carry_their_extra_path() {
        let r = Ref::parse("weave:///acme/app/object/qa:uW31/attr/rows/id/7h5u/key/question").unwrap();
        assert_eq!(r.project.as_str(), "acme/app");
        assert_eq!(r.target, Target::Object { kind: "object".into(), name: "qa".into(), version: "uW31".into() });
        assert_eq!(r.extra, vec![Edge::Key("rows".into()), Edge::Id("7h5u".into()), Edge::Key("question".into())]);
        let r = Ref::parse("weave:///acme/app/op/My%20op:v3/index/2").unwrap();
        assert_eq!(r.target, Target::Object { kind: "op".into(), name: "My op".into(), version: "v3".into() });
        assert_eq!(r.extra, vec![Edge::Index(2)]);
    }

    #[test]
    fn walking_stops_at_the_first_ref_and_carries_the_rest_of_the_path() {
        let value = serde_json::json!({"a": {"b": [10, 20]}, "rows": "weave:///e/p/table/t1", "cfg": "weave:///e/p/object/c:d/key/x"});
        assert_eq!(
            walk(value.clone(), &[Edge::Key("a".into()), Edge::Key("b".into()), Edge::Index(1)]),
            Walk::Done(20.into())
        );
        assert_eq!(
            walk(value.clone(), &[Edge::Key("a".into()), Edge::Key("zz".into()), Edge::Index(1)]),
            Walk::Done(serde_json::Value::Null)
        );
        assert_eq!(walk(value.clone(), &[Edge::Key("a".into()), Edge::Index(0)]), Walk::Done(serde_json::Value::Null));
        match walk(value.clone(), &[Edge::Key("rows".into()), Edge::Id("r1".into()), Edge::Key("q".into())]) {
            Walk::Follow { target, rest } => {
                assert_eq!(target.target, Target::Table { digest: "t1".into() });
                assert_eq!(rest, vec![Edge::Id("r1".into()), Edge::Key("q".into())]);
            }
            other => panic!("{other:?}"),
        }
        match walk(value.clone(), &[Edge::Key("cfg".into()), Edge::Key("y".into())]) {
            Walk::Follow { rest, .. } => assert_eq!(rest, vec![Edge::Key("x".into()), Edge::Key("y".into())]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(walk(value, &[Edge::Key("a".into()), Edge::Id("r".into())]), Walk::Invalid(_)));
    }

    #[test]
    fn table_and_call_refs_parse_and_malformed_ones_say_why() {
        assert_eq!(Ref::parse("weave:///a/b/table/abc").unwrap().target, Target::Table { digest: "abc".into() });
        assert_eq!(Ref::parse("weave:///a/b/call/c1").unwrap().target, Target::Call { id: "c1".into() });
        for bad in [
            "weave://a/b/object/x:1",
            "weave:///a/object/x:1",
            "weave:///a/b/thing/x",
            "weave:///a/b/object/x",
            "weave:///a/b/object/x:1/key",
            "weave:///a/b/object/x:1/index/z",
            "weave:///a/b/object/x:1/up/1",
        ] {
            assert!(Ref::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Ref::object_uri(&ProjectId::parse("a/b").unwrap(), "op", "f g", "d"), "weave:///a/b/op/f%20g:d");
    }
}
