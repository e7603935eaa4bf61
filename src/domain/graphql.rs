//! The little GraphQL the `weave` SDK speaks to W&B before it traces (API.md §11.1): a parsed
//! operation as plain data (fields, aliases, arguments with variables substituted) and the
//! shaping of a resolver's JSON answer to what the selection asked for. Parsing is
//! `graphql-parser`'s; fragments are expanded, directives ignored.
use std::collections::HashMap;

use graphql_parser::query::{
    parse_query, Definition, Document, OperationDefinition, Selection as GqlSelection, SelectionSet, Value as GqlValue,
};
use serde_json::{Map, Value};

/// One field asked for, with what is asked of its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The key of the answer (the alias, else the name).
    pub key: String,
    pub name: String,
    pub arguments: Map<String, Value>,
    pub selection: Vec<Field>,
}

/// Which kind of operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Query,
    Mutation,
}

/// The operation to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub kind: Kind,
    pub fields: Vec<Field>,
}

/// Deepest selection followed (a deeper one is refused, not walked).
const MAX_DEPTH: usize = 16;
/// Longest document read (the SDK's are a few hundred bytes).
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// How deeply brackets nest in a document, strings aside: checked before parsing, so a
/// hostile document cannot drive the (recursive) parser deep.
fn nesting(text: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0, false, false);
    for c in text.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' | '[' | '(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            '}' | ']' | ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Parse a request's document and pick its operation (by `operation_name` when there are
/// several), substituting `variables`.
pub fn parse(query: &str, operation_name: Option<&str>, variables: &Map<String, Value>) -> Result<Operation, String> {
    if query.len() > MAX_DOCUMENT_BYTES {
        return Err(format!("The document is longer than {MAX_DOCUMENT_BYTES} bytes"));
    }
    if nesting(query) > 2 * MAX_DEPTH {
        return Err("Query is nested too deeply".into());
    }
    let document: Document<'_, String> = parse_query(query).map_err(|e| format!("Syntax error: {e}"))?;
    let fragments: HashMap<&str, &SelectionSet<'_, String>> = document
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::Fragment(f) => Some((f.name.as_str(), &f.selection_set)),
            Definition::Operation(_) => None,
        })
        .collect();
    let operations: Vec<&OperationDefinition<'_, String>> = document
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::Operation(op) => Some(op),
            Definition::Fragment(_) => None,
        })
        .collect();
    let name_of = |op: &OperationDefinition<'_, String>| match op {
        OperationDefinition::Query(q) => q.name.clone(),
        OperationDefinition::Mutation(m) => m.name.clone(),
        OperationDefinition::Subscription(s) => s.name.clone(),
        OperationDefinition::SelectionSet(_) => None,
    };
    let chosen = match operation_name {
        Some(wanted) => operations.iter().find(|op| name_of(op).as_deref() == Some(wanted)),
        None if operations.len() == 1 => operations.first(),
        None => return Err("Must provide operation name if query contains multiple operations".into()),
    };
    let op = chosen.ok_or_else(|| "Unknown operation".to_string())?;
    let (kind, selection) = match op {
        OperationDefinition::Query(q) => (Kind::Query, &q.selection_set),
        OperationDefinition::SelectionSet(s) => (Kind::Query, s),
        OperationDefinition::Mutation(m) => (Kind::Mutation, &m.selection_set),
        OperationDefinition::Subscription(_) => return Err("Subscriptions are not supported".into()),
    };
    let context = Context { fragments, variables };
    Ok(Operation { kind, fields: context.fields(selection, 0)? })
}

struct Context<'d, 'v> {
    fragments: HashMap<&'d str, &'d SelectionSet<'d, String>>,
    variables: &'v Map<String, Value>,
}

impl Context<'_, '_> {
    fn fields(&self, set: &SelectionSet<'_, String>, depth: usize) -> Result<Vec<Field>, String> {
        if depth > MAX_DEPTH {
            return Err("Query is nested too deeply".into());
        }
        let mut out = Vec::new();
        for item in &set.items {
            match item {
                GqlSelection::Field(f) => {
                    let arguments = f
                        .arguments
                        .iter()
                        .map(|(name, value)| Ok((name.clone(), self.value(value)?)))
                        .collect::<Result<_, String>>()?;
                    out.push(Field {
                        key: f.alias.clone().unwrap_or_else(|| f.name.clone()),
                        name: f.name.clone(),
                        arguments,
                        selection: self.fields(&f.selection_set, depth + 1)?,
                    });
                }
                GqlSelection::FragmentSpread(spread) => {
                    let set = self
                        .fragments
                        .get(spread.fragment_name.as_str())
                        .ok_or_else(|| format!("Unknown fragment {}", spread.fragment_name))?;
                    out.extend(self.fields(set, depth + 1)?);
                }
                GqlSelection::InlineFragment(inline) => out.extend(self.fields(&inline.selection_set, depth + 1)?),
            }
        }
        Ok(out)
    }

    fn value(&self, value: &GqlValue<'_, String>) -> Result<Value, String> {
        Ok(match value {
            GqlValue::Variable(name) => self.variables.get(name).cloned().unwrap_or(Value::Null),
            GqlValue::Int(n) => n.as_i64().map(Value::from).ok_or("integer out of range")?,
            GqlValue::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number).unwrap_or(Value::Null),
            GqlValue::String(s) => Value::from(s.as_str()),
            GqlValue::Boolean(b) => Value::from(*b),
            GqlValue::Null => Value::Null,
            GqlValue::Enum(e) => Value::from(e.as_str()),
            GqlValue::List(items) => Value::Array(items.iter().map(|v| self.value(v)).collect::<Result<_, _>>()?),
            GqlValue::Object(map) => {
                Value::Object(map.iter().map(|(k, v)| Ok((k.clone(), self.value(v)?))).collect::<Result<_, String>>()?)
            }
        })
    }
}

/// Shape a resolved value to a selection: objects keep the fields asked for (under their
/// keys; `__typename` answers `typename`), lists are shaped item by item, leaves pass.
pub fn shape(value: &Value, selection: &[Field], typename: &str) -> Value {
    if selection.is_empty() {
        return value.clone();
    }
    match value {
        Value::Array(items) => Value::Array(items.iter().map(|item| shape(item, selection, typename)).collect()),
        Value::Object(map) => Value::Object(
            selection
                .iter()
                .map(|field| {
                    let answer = if field.name == "__typename" {
                        Value::from(map.get("__typename").and_then(Value::as_str).unwrap_or(typename))
                    } else {
                        map.get(&field.name).map_or(Value::Null, |v| shape(v, &field.selection, &field.name))
                    };
                    (field.key.clone(), answer)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The documents `weave` 0.54.0 sends, as `gql` prints them on the wire.
    const PROJECT: &str = "query Project($name: String!, $entityName: String!) {\n  project(name: $name, entityName: $entityName) {\n    name\n  }\n}";
    const UPSERT: &str = "mutation UpsertModel($name: String!, $id: String, $entity: String!, $description: String, $repo: String) {\n  upsertModel(\n    input: {\n      id: $id\n      name: $name\n      entityName: $entity\n      description: $description\n      repo: $repo\n    }\n  ) {\n    model {\n      name\n      description\n    }\n  }\n}";

    #[test]
    fn the_sdks_documents_parse_with_their_variables() {
        let vars = json!({"entityName": "acme", "name": "app"});
        let op = parse(PROJECT, None, vars.as_object().unwrap()).unwrap();
        assert_eq!(op.kind, Kind::Query);
        assert_eq!(op.fields[0].name, "project");
        assert_eq!(Value::Object(op.fields[0].arguments.clone()), json!({"name": "app", "entityName": "acme"}));
        let vars = json!({"name": "newproj", "entity": "acme", "description": null});
        let op = parse(UPSERT, None, vars.as_object().unwrap()).unwrap();
        assert_eq!(op.kind, Kind::Mutation);
        assert_eq!(
            op.fields[0].arguments["input"],
            json!({"id": null, "name": "newproj", "entityName": "acme", "description": null, "repo": null})
        );
        assert_eq!(
            op.fields[0].selection[0].selection.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            ["name", "description"]
        );
    }

    #[test]
    fn answers_keep_only_what_was_asked_under_aliases_and_fragments_expand() {
        let doc = "query { me: viewer { ...V } } fragment V on User { username defaultEntity { name } __typename }";
        let op = parse(doc, None, &Map::new()).unwrap();
        let resolved = json!({"username": "alice", "defaultEntity": {"name": "acme", "id": 1}, "secret": "no"});
        assert_eq!(
            shape(&resolved, &op.fields[0].selection, "User"),
            json!({"username": "alice", "defaultEntity": {"name": "acme"}, "__typename": "User"})
        );
        assert_eq!(op.fields[0].key, "me");
    }

    #[test]
    fn broken_documents_and_ambiguous_operations_are_refused() {
        assert!(parse("query { viewer { ", None, &Map::new()).is_err());
        assert!(parse("query A { a } query B { b }", None, &Map::new()).is_err());
        assert_eq!(parse("query A { a } query B { b }", Some("B"), &Map::new()).unwrap().fields[0].name, "b");
        assert!(parse("subscription { s }", None, &Map::new()).is_err());
        let deep = format!("{{ {}x{} }}", "a { ".repeat(40), " }".repeat(40));
        assert!(parse(&deep, None, &Map::new()).is_err());
        let hostile = format!("{{ a(x: {}1{}) }}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(parse(&hostile, None, &Map::new()).unwrap_err(), "The document is longer than 65536 bytes");
        let hostile = format!("{{ a(x: {}1{}) }}", "[".repeat(1_000), "]".repeat(1_000));
        assert_eq!(parse(&hostile, None, &Map::new()).unwrap_err(), "Query is nested too deeply");
        assert_eq!(nesting(r#"{ a(s: "{{{{[[[") }"#), 2);
    }
}
