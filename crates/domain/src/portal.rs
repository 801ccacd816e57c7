//! Portals and interaction-type definitions: what an org captures, from where.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::contact::RecordError;
use crate::ids::{PolicyName, PortalId, TypeName};
use crate::interaction::Builtin;
use crate::time::UtcMillis;

/// A browser origin, normalised to `scheme://host[:port]` in lower case,
/// with the default port left out — the form browsers send in `Origin`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Origin(String);

impl Origin {
    pub fn parse(text: &str) -> Result<Self, String> {
        let url =
            url::Url::parse(text.trim()).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{text:?} must be an http or https origin"));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "{text:?} must be an origin only: scheme, host and port, without a path"
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("{text:?} must not carry credentials"));
        }
        Ok(Self(url.origin().ascii_serialization()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Origin {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text)
    }
}

impl From<Origin> for String {
    fn from(origin: Origin) -> String {
        origin.0
    }
}

/// A source of interactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Portal {
    pub id: PortalId,
    pub name: String,
    pub allowed_origins: Vec<Origin>,
    /// The access policy the portal's servers send with.
    pub policy: Option<PolicyName>,
    /// Interactions older than this are purged; `None` keeps them.
    pub retention_days: Option<u32>,
    /// The browser tracker's key: write-only, this portal, its origins.
    pub public_key: String,
    pub created_at: UtcMillis,
    pub updated_at: UtcMillis,
}

impl Portal {
    /// The wire shape (PRODUCT.md §8).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "allowed_origins": self.allowed_origins,
            "policy": self.policy,
            "retention_days": self.retention_days,
            "public_key": self.public_key,
            "created_at": self.created_at.to_rfc3339(),
            "updated_at": self.updated_at.to_rfc3339(),
        })
    }

    /// Whether a browser at `origin` may send with the public key.
    pub fn allows_origin(&self, origin: &str) -> bool {
        Origin::parse(origin).is_ok_and(|o| self.allowed_origins.contains(&o))
    }
}

/// The longest retention accepted: a hundred years.
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// Parses the wire list of origins.
pub fn parse_origins(values: &[String]) -> Result<Vec<Origin>, RecordError> {
    let mut origins = Vec::with_capacity(values.len());
    for value in values {
        let origin =
            Origin::parse(value).map_err(|message| RecordError::new("allowed_origins", message))?;
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    Ok(origins)
}

/// Checks a retention period.
pub fn check_retention(days: Option<u32>) -> Result<Option<u32>, RecordError> {
    match days {
        Some(0) => Err(RecordError::new("retention_days", "must be at least 1")),
        Some(d) if d > MAX_RETENTION_DAYS => Err(RecordError::new(
            "retention_days",
            format!("must be at most {MAX_RETENTION_DAYS}"),
        )),
        other => Ok(other),
    }
}

/// Whether a type is captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TypeState {
    Enabled,
    Disabled,
    /// Deleted types keep their definition so they can be restored.
    Deleted,
}

impl TypeState {
    pub fn as_str(self) -> &'static str {
        match self {
            TypeState::Enabled => "enabled",
            TypeState::Disabled => "disabled",
            TypeState::Deleted => "deleted",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Enabled, Self::Disabled, Self::Deleted]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// An interaction type as an org has it: a built-in, or a custom type whose
/// fields are described by a JSON Schema.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeDef {
    pub name: TypeName,
    pub display_name: String,
    pub fields_schema: Option<Value>,
    pub state: TypeState,
    pub builtin: bool,
    pub updated_at: UtcMillis,
}

impl TypeDef {
    /// A built-in in its default, enabled state.
    pub fn builtin(builtin: Builtin) -> Self {
        let properties: serde_json::Map<String, Value> = builtin
            .fields()
            .iter()
            .map(|f| {
                (
                    f.name.to_owned(),
                    serde_json::json!({"type": "string", "description": f.description}),
                )
            })
            .collect();
        let required: Vec<&str> = builtin
            .fields()
            .iter()
            .filter(|f| f.required)
            .map(|f| f.name)
            .collect();
        Self {
            name: TypeName::parse(builtin.name()).expect("built-in names are valid"),
            display_name: builtin.display_name().to_owned(),
            fields_schema: Some(serde_json::json!({
                "type": "object", "properties": properties, "required": required,
            })),
            state: TypeState::Enabled,
            builtin: true,
            updated_at: UtcMillis::from_millis(0),
        }
    }

    /// The wire shape (PRODUCT.md §8).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "name": self.name,
            "display_name": self.display_name,
            "fields_schema": self.fields_schema,
            "enabled": self.state == TypeState::Enabled,
            "state": self.state,
            "builtin": self.builtin,
        })
    }
}

/// Custom type names must not collide with the reserved `portal_` prefix of
/// the built-ins, so a future built-in can never shadow an org's type.
pub fn check_custom_type_name(name: &str) -> Result<TypeName, RecordError> {
    let parsed = TypeName::parse(name).map_err(|e| RecordError::new("name", e.to_string()))?;
    if name.starts_with("portal_") {
        return Err(RecordError::new(
            "name",
            "the portal_ prefix is reserved for built-in types",
        ));
    }
    Ok(parsed)
}

/// Merges the built-ins with an org's stored definitions (custom types and
/// built-ins it disabled), built-ins first.
pub fn catalogue(stored: Vec<TypeDef>) -> Vec<TypeDef> {
    let mut all: Vec<TypeDef> = Builtin::ALL
        .into_iter()
        .map(|b| {
            let default = TypeDef::builtin(b);
            stored
                .iter()
                .find(|s| s.name == default.name)
                .map(|s| TypeDef {
                    state: s.state,
                    updated_at: s.updated_at,
                    ..default.clone()
                })
                .unwrap_or(default)
        })
        .collect();
    all.extend(stored.into_iter().filter(|s| !s.builtin));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalised() {
        assert_eq!(
            Origin::parse("HTTPS://Help.Example.com:443")
                .unwrap()
                .as_str(),
            "https://help.example.com"
        );
        assert_eq!(
            Origin::parse("http://127.0.0.1:8081/").unwrap().as_str(),
            "http://127.0.0.1:8081"
        );
        assert!(Origin::parse("https://x.example/path").is_err());
        assert!(Origin::parse("ftp://x.example").is_err());
        assert!(Origin::parse("not a url").is_err());
    }

    #[test]
    fn custom_names_cannot_take_the_builtin_prefix() {
        assert!(check_custom_type_name("video_view").is_ok());
        assert_eq!(
            check_custom_type_name("portal_video").unwrap_err().field,
            "name"
        );
        assert!(check_custom_type_name("bad name").is_err());
    }

    #[test]
    fn the_catalogue_keeps_builtins_first_with_their_stored_state() {
        let disabled = TypeDef {
            state: TypeState::Disabled,
            ..TypeDef::builtin(Builtin::Search)
        };
        let custom = TypeDef {
            name: TypeName::parse("video_view").unwrap(),
            display_name: "Video".into(),
            fields_schema: None,
            state: TypeState::Enabled,
            builtin: false,
            updated_at: UtcMillis::from_millis(1),
        };
        let all = catalogue(vec![disabled, custom]);
        assert_eq!(all.len(), 5);
        assert_eq!(all[3].name.as_str(), "portal_search");
        assert_eq!(all[3].state, TypeState::Disabled);
        assert_eq!(all[4].name.as_str(), "video_view");
    }
}
