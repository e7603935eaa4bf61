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
}

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
}
