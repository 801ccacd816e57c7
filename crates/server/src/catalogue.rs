//! Each org's catalogue — which interaction types and portals it captures —
//! kept in memory for the ingestion path, with compiled JSON Schemas for its
//! custom types.
//!
//! Ingestion consults the catalogue for every item, so it is read from the
//! store once and reused. Changes made through this server invalidate it at
//! once; changes made by another process (the CLI on the same data directory)
//! are picked up within [`REFRESH`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tracklog_domain::ids::{OrgId, PortalId};
use tracklog_domain::ingest::{Reason, Rejection};
use tracklog_domain::interaction::{Builtin, Catalogue, TypeStatus};
use tracklog_domain::portal::{TypeDef, TypeState, catalogue};
use tracklog_store::{StoreError, Stores};

/// How long a cached catalogue is trusted.
pub const REFRESH: Duration = Duration::from_secs(2);

/// Compiles a custom type's schema, or says why it is not one.
pub fn compile_schema(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::validator_for(schema).map_err(|e| e.to_string())
}

struct TypeEntry {
    state: TypeState,
    builtin: Option<Builtin>,
    validator: Option<jsonschema::Validator>,
}

/// One org's catalogue, ready for the decoder.
pub struct OrgCatalogue {
    types: HashMap<String, TypeEntry>,
    deleted_portals: HashSet<PortalId>,
}

impl OrgCatalogue {
    pub fn new(defs: Vec<TypeDef>, deleted_portals: Vec<PortalId>) -> Self {
        let types = catalogue(defs)
            .into_iter()
            .map(|def| {
                let validator = match (&def.fields_schema, def.builtin) {
                    (Some(schema), false) => match compile_schema(schema) {
                        Ok(v) => Some(v),
                        Err(error) => {
                            // Stored schemas were compiled when they were
                            // saved; a failure here means the library changed.
                            tracing::error!(r#type = %def.name, %error, "a stored schema no longer compiles");
                            None
                        }
                    },
                    _ => None,
                };
                let builtin = Builtin::from_name(def.name.as_str()).filter(|_| def.builtin);
                (
                    def.name.to_string(),
                    TypeEntry {
                        state: def.state,
                        builtin,
                        validator,
                    },
                )
            })
            .collect();
        Self {
            types,
            deleted_portals: deleted_portals.into_iter().collect(),
        }
    }
}

impl Catalogue for OrgCatalogue {
    fn type_status(&self, name: &str) -> TypeStatus {
        match self.types.get(name) {
            None => TypeStatus::Unknown,
            Some(entry) if entry.state == TypeState::Enabled => TypeStatus::Captured(entry.builtin),
            Some(_) => TypeStatus::NotCaptured,
        }
    }

    fn check_custom_fields(
        &self,
        name: &str,
        fields: &Map<String, Value>,
    ) -> Result<(), Rejection> {
        let Some(validator) = self.types.get(name).and_then(|e| e.validator.as_ref()) else {
            return Ok(());
        };
        let instance = Value::Object(fields.clone());
        match validator.iter_errors(&instance).next() {
            None => Ok(()),
            Some(error) => {
                let path = error.instance_path().to_string();
                let field = path.trim_start_matches('/').split('/').next().unwrap_or("");
                let field = if field.is_empty() { "fields" } else { field };
                Err(Rejection::field(
                    Reason::InvalidField,
                    field,
                    format!("does not match the schema of {name}: {error}"),
                ))
            }
        }
    }

    fn portal_captured(&self, portal: &PortalId) -> bool {
        !self.deleted_portals.contains(portal)
    }
}

/// The cache of every org's catalogue.
#[derive(Default)]
pub struct Catalogues {
    cache: Mutex<HashMap<OrgId, (Instant, Arc<OrgCatalogue>)>>,
}

impl Catalogues {
    /// The org's catalogue, read from the store when missing or stale.
    pub async fn get(&self, stores: &Stores, org: OrgId) -> Result<Arc<OrgCatalogue>, StoreError> {
        if let Some((at, found)) = self.cache.lock().expect("catalogue lock").get(&org)
            && at.elapsed() < REFRESH
        {
            return Ok(found.clone());
        }
        let defs = stores.portals.stored_types(org).await?;
        let deleted = stores.portals.deleted_portals(org).await?;
        let fresh = Arc::new(OrgCatalogue::new(defs, deleted));
        self.cache
            .lock()
            .expect("catalogue lock")
            .insert(org, (Instant::now(), fresh.clone()));
        Ok(fresh)
    }

    /// Forgets an org's catalogue after a change.
    pub fn invalidate(&self, org: OrgId) {
        self.cache.lock().expect("catalogue lock").remove(&org);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tracklog_domain::ids::TypeName;
    use tracklog_domain::time::UtcMillis;

    fn custom(name: &str, schema: Value, state: TypeState) -> TypeDef {
        TypeDef {
            name: TypeName::parse(name).unwrap(),
            display_name: name.into(),
            fields_schema: Some(schema),
            state,
            builtin: false,
            updated_at: UtcMillis::from_millis(0),
        }
    }

    #[test]
    fn custom_types_are_checked_against_their_schema() {
        let catalogue = OrgCatalogue::new(
            vec![
                custom(
                    "video_view",
                    json!({"type": "object", "required": ["video_id"],
                           "properties": {"video_id": {"type": "string"}, "seconds": {"type": "integer", "minimum": 0}}}),
                    TypeState::Enabled,
                ),
                custom("old", json!({}), TypeState::Deleted),
            ],
            vec![PortalId::parse("gone").unwrap()],
        );
        assert_eq!(
            catalogue.type_status("video_view"),
            TypeStatus::Captured(None)
        );
        assert_eq!(catalogue.type_status("old"), TypeStatus::NotCaptured);
        assert_eq!(catalogue.type_status("nope"), TypeStatus::Unknown);
        assert_eq!(
            catalogue.type_status("portal_search"),
            TypeStatus::Captured(Some(Builtin::Search))
        );
        let ok = json!({"video_id": "v1", "seconds": 3});
        assert!(
            catalogue
                .check_custom_fields("video_view", ok.as_object().unwrap())
                .is_ok()
        );
        let bad = json!({"video_id": "v1", "seconds": -3});
        let rejection = catalogue
            .check_custom_fields("video_view", bad.as_object().unwrap())
            .unwrap_err();
        assert_eq!(rejection.reason, Reason::InvalidField);
        assert_eq!(rejection.field.as_deref(), Some("seconds"));
        let missing = json!({});
        let rejection = catalogue
            .check_custom_fields("video_view", missing.as_object().unwrap())
            .unwrap_err();
        assert_eq!(rejection.field.as_deref(), Some("fields"));
        assert!(!catalogue.portal_captured(&PortalId::parse("gone").unwrap()));
        assert!(catalogue.portal_captured(&PortalId::parse("help").unwrap()));
    }
}
