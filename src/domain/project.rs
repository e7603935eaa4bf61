//! `entity/project` ids: two non-empty parts and exactly one `/` (API.md §1).
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use super::de_error;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ProjectId(String);

impl ProjectId {
    /// Longest project id, in bytes (it is indexed with every row).
    pub const MAX_BYTES: usize = 256;

    pub fn parse(text: &str) -> Option<Self> {
        if text.len() > Self::MAX_BYTES {
            return None;
        }
        let (entity, project) = text.split_once('/')?;
        (!entity.is_empty() && !project.is_empty() && !project.contains('/')).then(|| Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn entity(&self) -> &str {
        self.0.split_once('/').map(|(e, _)| e).unwrap_or_default()
    }

    /// The project part of the id.
    pub fn name(&self) -> &str {
        self.0.split_once('/').map(|(_, p)| p).unwrap_or_default()
    }

    /// The project's UUID for LangSmith clients (a session id): UUIDv5 of the id in our own
    /// namespace, so it is the same on every server and across restarts.
    pub fn uuid(&self) -> uuid::Uuid {
        uuid::Uuid::new_v5(&ID_NAMESPACE, format!("project:{}", self.0).as_bytes())
    }

    /// The entity's UUID (LangSmith's `tenant_id`).
    pub fn tenant_uuid(&self) -> uuid::Uuid {
        uuid::Uuid::new_v5(&ID_NAMESPACE, format!("entity:{}", self.entity()).as_bytes())
    }
}

/// The namespace of the UUIDs derived from project and entity names (fixed forever: changing
/// it would change every session id clients have stored).
const ID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x8c2a_61f4_7d3e_4b0a_9e55_2f1c_0b6d_a713);

impl fmt::Display for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ProjectId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ProjectId::parse(&text).ok_or_else(|| {
            de_error(
                "value_error",
                format_args!(
                    "Value error, project_id must be 'entity/project' (at most {} bytes), got {:?}",
                    ProjectId::MAX_BYTES,
                    text.chars().take(300).collect::<String>()
                ),
            )
        })
    }
}

impl utoipa::PartialSchema for ProjectId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[^/]+/[^/]+$"))
            .examples([serde_json::json!("demo/app")])
            .into()
    }
}

impl utoipa::ToSchema for ProjectId {}

#[cfg(test)]
mod tests {
    use super::ProjectId;

    #[test]
    fn project_ids_need_two_non_empty_parts_and_one_slash() {
        assert_eq!(ProjectId::parse("acme/app").unwrap().entity(), "acme");
        for bad in ["acme", "/app", "acme/", "a/b/c", ""] {
            assert!(ProjectId::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn project_uuids_are_stable_and_differ_by_project_and_kind() {
        let app = ProjectId::parse("acme/app").unwrap();
        assert_eq!(
            app.uuid().to_string(),
            "53d3032b-a9bc-54fb-966e-013619dc4a30",
            "fixed across releases (Python: uuid5(namespace, \"project:acme/app\"))"
        );
        assert_eq!(app.uuid().get_version_num(), 5);
        assert_ne!(app.uuid(), ProjectId::parse("acme/other").unwrap().uuid());
        assert_eq!(app.tenant_uuid(), ProjectId::parse("acme/other").unwrap().tenant_uuid());
        assert_ne!(app.uuid(), app.tenant_uuid());
    }
}
