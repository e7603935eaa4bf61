//! `POST /graphql` (API.md §11.1): the few questions `weave.init` asks W&B before it traces:
//! who the key's user is and its default entity (`viewer`), whether a project exists
//! (`project`), to create it (`upsertModel`), and where the UI is (`serverInfo`).
//! Answers follow GraphQL: status 200 with `data`, and `errors` for what could not be
//! answered (a key without access to the entity: `extensions.code = "PERMISSION_ERROR"`).
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{AppJson, Caller};
use crate::domain::graphql::{self, Field, Kind};
use crate::domain::ProjectId;
use crate::error::Result;
use crate::state::AppState;
use crate::store::projects;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(graphql))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"query": "{ viewer { username defaultEntity { name } } }"}))]
pub struct GraphqlReq {
    /// The GraphQL document.
    pub query: String,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub variables: Option<Map<String, Value>>,
    #[serde(default, rename = "operationName")]
    pub operation_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GraphqlRes {
    #[schema(value_type = Option<Object>)]
    pub data: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<Value>,
}

/// Why a field has no answer.
struct FieldError {
    message: String,
    code: Option<&'static str>,
}

impl FieldError {
    fn permission(entity: &str) -> Self {
        FieldError {
            message: format!("permission denied: this key cannot access entity {entity:?}"),
            code: Some("PERMISSION_ERROR"),
        }
    }

    fn plain(message: impl Into<String>) -> Self {
        FieldError { message: message.into(), code: None }
    }
}

/// Answer a GraphQL request (the operations the `weave` SDK sends; others get an error).
#[utoipa::path(post, path = "/graphql", request_body = GraphqlReq, tag = "service",
    responses((status = 200, body = GraphqlRes)))]
async fn graphql(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<GraphqlReq>,
) -> Result<Json<GraphqlRes>> {
    let variables = req.variables.unwrap_or_default();
    let operation = match graphql::parse(&req.query, req.operation_name.as_deref(), &variables) {
        Ok(operation) => operation,
        Err(message) => return Ok(Json(GraphqlRes { data: None, errors: vec![json!({"message": message})] })),
    };
    let mut data = Map::new();
    let mut errors = Vec::new();
    for field in &operation.fields {
        let typename = if operation.kind == Kind::Mutation { "Mutation" } else { "Query" };
        match resolve(&state, &caller, operation.kind, field).await? {
            Ok(value) => {
                data.insert(field.key.clone(), graphql::shape(&value, &field.selection, typename));
            }
            Err(error) => {
                data.insert(field.key.clone(), Value::Null);
                let mut entry = json!({"message": error.message, "path": [field.key]});
                if let Some(code) = error.code {
                    entry["extensions"] = json!({"code": code});
                }
                errors.push(entry);
            }
        }
    }
    Ok(Json(GraphqlRes { data: Some(data), errors }))
}

/// The value of one root field (`Err` inside for a GraphQL error, outside for a failure of
/// the server itself).
async fn resolve(
    state: &AppState,
    caller: &Caller,
    kind: Kind,
    field: &Field,
) -> Result<std::result::Result<Value, FieldError>> {
    let principal = &caller.0;
    let arg = |name: &str| field.arguments.get(name).and_then(Value::as_str).map(str::to_string);
    Ok(match (kind, field.name.as_str()) {
        (_, "__typename") => Ok(Value::from(if kind == Kind::Mutation { "Mutation" } else { "Query" })),
        (Kind::Query, "viewer") => {
            // The key's first entity is its default; an admin key's is its user's name.
            let entity = principal.entities.first().cloned().unwrap_or_else(|| principal.user_id.clone());
            Ok(json!({
                "__typename": "User", "id": principal.key_id, "username": principal.user_id, "name": principal.user_id,
                "admin": principal.is_admin, "defaultEntity": {"__typename": "Entity", "id": entity, "name": entity},
                "entity": entity, "teams": {"edges": principal.entities.iter().map(|e| json!({"node": {"name": e}})).collect::<Vec<_>>()},
            }))
        }
        (Kind::Query, "serverInfo") => {
            Ok(json!({"__typename": "ServerInfo", "frontendHost": state.settings.public_url}))
        }
        (Kind::Query, "entity") => match arg("name") {
            Some(name) if principal.can_access(&name) => {
                Ok(json!({"__typename": "Entity", "id": name, "name": name, "readOnly": false}))
            }
            Some(name) => Err(FieldError::permission(&name)),
            None => Err(FieldError::plain("entity needs a name")),
        },
        (Kind::Query, "project") => {
            let (Some(name), Some(entity)) = (arg("name"), arg("entityName")) else {
                return Ok(Err(FieldError::plain("project needs name and entityName")));
            };
            match project_id(principal, &entity, &name) {
                Err(error) => Err(error),
                Ok(project) => Ok(match projects::get(&state.db, project.as_str()).await? {
                    Some(row) => project_json(&entity, &name, row.created_at),
                    None => Value::Null,
                }),
            }
        }
        (Kind::Mutation, "upsertModel") => {
            let input = field.arguments.get("input").cloned().unwrap_or(Value::Null);
            let text = |key: &str| input.get(key).and_then(Value::as_str).map(str::to_string);
            let (Some(name), Some(entity)) = (text("name"), text("entityName")) else {
                return Ok(Err(FieldError::plain("upsertModel needs input.name and input.entityName")));
            };
            match project_id(principal, &entity, &name) {
                Err(error) => Err(error),
                Ok(project) => {
                    let existed = projects::get(&state.db, project.as_str()).await?.is_some();
                    projects::register(&state.db, &[project.as_str()]).await?;
                    let created_at = projects::get(&state.db, project.as_str()).await?.map(|p| p.created_at);
                    let mut model = created_at.map_or(Value::Null, |at| project_json(&entity, &name, at));
                    if let Some(description) = input.get("description") {
                        model["description"] = description.clone();
                    }
                    Ok(json!({"__typename": "UpsertModelPayload", "model": model, "inserted": !existed}))
                }
            }
        }
        (Kind::Query, other) => Err(FieldError::plain(format!("Cannot query field \"{other}\" on type \"Query\"."))),
        (Kind::Mutation, other) => {
            Err(FieldError::plain(format!("Cannot query field \"{other}\" on type \"Mutation\".")))
        }
    })
}

/// The project `entity/name`, if this key may use it.
fn project_id(
    principal: &crate::domain::keys::Principal,
    entity: &str,
    name: &str,
) -> std::result::Result<ProjectId, FieldError> {
    let project = ProjectId::parse(&format!("{entity}/{name}"))
        .ok_or_else(|| FieldError::plain(format!("{entity:?}/{name:?} is not a valid project")))?;
    if principal.can_access(project.entity()) {
        Ok(project)
    } else {
        Err(FieldError::permission(entity))
    }
}

fn project_json(entity: &str, name: &str, created_at: chrono::DateTime<chrono::Utc>) -> Value {
    json!({
        "__typename": "Project", "id": format!("{entity}/{name}"), "name": name, "entityName": entity,
        "entity": {"name": entity}, "description": null,
        "createdAt": crate::domain::Timestamp::from(created_at),
    })
}
