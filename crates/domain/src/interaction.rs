//! Portal interactions (PRODUCT.md §4.1): the four built-in types, their
//! fields, and the decoder for one untrusted JSON item.

use serde_json::{Map, Value};

use crate::ids::{ContactId, IdError, InteractionId, PortalId, SessionId};
use crate::ingest::{Limits, Reason, Rejection};
use crate::time::UtcMillis;

/// A built-in interaction type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    ViewKnowledgeArticle,
    ViewBlogPost,
    ViewForumThread,
    Search,
}

/// One field of a built-in type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    pub name: &'static str,
    pub required: bool,
    pub description: &'static str,
}

const fn field(name: &'static str, required: bool, description: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        required,
        description,
    }
}

const KNOWLEDGE_ARTICLE_FIELDS: &[FieldSpec] = &[
    field("portal_knowledgearticleid", true, "Knowledge article id"),
    field("portal_knowledgetitle", false, "Article title"),
    field("language", false, "Article language"),
];
const BLOG_POST_FIELDS: &[FieldSpec] = &[
    field("portal_blogpostid", true, "Blog post id"),
    field("portal_blogtitle", false, "Blog post title"),
];
const FORUM_THREAD_FIELDS: &[FieldSpec] = &[
    field("portal_forumthreadid", true, "Forum thread id"),
    field("portal_forumthreadtitle", false, "Forum thread title"),
];
const SEARCH_FIELDS: &[FieldSpec] = &[field("portal_searchstring", true, "The search text")];

impl Builtin {
    /// All built-in types.
    pub const ALL: [Builtin; 4] = [
        Builtin::ViewKnowledgeArticle,
        Builtin::ViewBlogPost,
        Builtin::ViewForumThread,
        Builtin::Search,
    ];

    /// The type's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::ViewKnowledgeArticle => "portal_viewknowledgearticle",
            Builtin::ViewBlogPost => "portal_viewblogpost",
            Builtin::ViewForumThread => "portal_viewforumthread",
            Builtin::Search => "portal_search",
        }
    }

    /// The name shown to people.
    pub fn display_name(self) -> &'static str {
        match self {
            Builtin::ViewKnowledgeArticle => "Knowledge article",
            Builtin::ViewBlogPost => "Blog post",
            Builtin::ViewForumThread => "Forum thread",
            Builtin::Search => "Portal search",
        }
    }

    /// The type-specific fields. The id (or search text) is required; titles
    /// and language are optional, because portals do not always know them.
    pub fn fields(self) -> &'static [FieldSpec] {
        match self {
            Builtin::ViewKnowledgeArticle => KNOWLEDGE_ARTICLE_FIELDS,
            Builtin::ViewBlogPost => BLOG_POST_FIELDS,
            Builtin::ViewForumThread => FORUM_THREAD_FIELDS,
            Builtin::Search => SEARCH_FIELDS,
        }
    }

    /// Looks a built-in up by its wire name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }
}

/// The fields every interaction carries, whatever its type.
pub const COMMON_FIELDS: [&str; 6] = [
    "portal_interactionid",
    "type",
    "portal_contactid",
    "portal_timestamp",
    "portal_portalid",
    "session_id",
];

/// What the org's type catalogue says about a type name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeStatus {
    /// Captured; built-in types carry their field rules.
    Captured(Option<Builtin>),
    /// Known, but disabled or deleted.
    NotCaptured,
    /// No such type.
    Unknown,
}

/// The catalogue of a fresh org: the four built-ins, all captured.
pub fn builtin_catalogue(name: &str) -> TypeStatus {
    match Builtin::from_name(name) {
        Some(b) => TypeStatus::Captured(Some(b)),
        None => TypeStatus::Unknown,
    }
}

/// What an org captures: which types (and the rules of its custom types), and
/// from which portals.
pub trait Catalogue: Sync {
    /// The status of a type name.
    fn type_status(&self, name: &str) -> TypeStatus;
    /// Checks the fields of a captured custom type against its schema.
    fn check_custom_fields(
        &self,
        _name: &str,
        _fields: &Map<String, Value>,
    ) -> Result<(), Rejection> {
        Ok(())
    }
    /// Whether interactions from this portal are captured. Portals that were
    /// never registered are; a deleted integration's portal is not.
    fn portal_captured(&self, _portal: &PortalId) -> bool {
        true
    }
}

/// The catalogue of a fresh org: built-ins only, every portal.
pub struct Builtins;

impl Catalogue for Builtins {
    fn type_status(&self, name: &str) -> TypeStatus {
        builtin_catalogue(name)
    }
}

/// A decoded, valid interaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Interaction {
    pub id: InteractionId,
    pub interaction_type: String,
    pub contact_id: Option<ContactId>,
    pub timestamp: UtcMillis,
    pub portal_id: PortalId,
    pub session_id: Option<SessionId>,
    /// The type-specific fields and any extra properties, without the common ones.
    pub fields: Map<String, Value>,
}

impl Interaction {
    /// The stored shape of §4.1: common fields and type fields in one object.
    pub fn to_json(&self) -> Value {
        let mut object = Map::with_capacity(self.fields.len() + COMMON_FIELDS.len());
        object.insert("portal_interactionid".into(), self.id.as_str().into());
        object.insert("type".into(), self.interaction_type.clone().into());
        object.insert(
            "portal_contactid".into(),
            self.contact_id
                .as_ref()
                .map_or(Value::Null, |c| c.as_str().into()),
        );
        object.insert(
            "portal_timestamp".into(),
            self.timestamp.to_rfc3339().into(),
        );
        object.insert("portal_portalid".into(), self.portal_id.as_str().into());
        object.insert(
            "session_id".into(),
            self.session_id
                .as_ref()
                .map_or(Value::Null, |s| s.as_str().into()),
        );
        for (key, value) in &self.fields {
            object.insert(key.clone(), value.clone());
        }
        Value::Object(object)
    }
}

/// What the decoder needs to know about the request it serves.
pub struct DecodeContext<'a> {
    pub limits: &'a Limits,
    /// The portal a portal-scoped credential is limited to.
    pub portal_scope: Option<&'a PortalId>,
    /// The org's catalogue of types and portals.
    pub catalogue: &'a dyn Catalogue,
}

/// Decodes one item. On failure the rejection names the field at fault; the
/// caller places it in the batch with [`Rejection::at`].
pub fn decode_interaction(raw: &str, ctx: &DecodeContext<'_>) -> Result<Interaction, Rejection> {
    if raw.len() > ctx.limits.max_item_bytes {
        return Err(Rejection::item(
            Reason::ItemTooLarge,
            format!(
                "the item has {} bytes, over the limit max_item_bytes = {}",
                raw.len(),
                ctx.limits.max_item_bytes
            ),
        ));
    }
    let value: Value = serde_json::from_str(raw)
        .map_err(|e| Rejection::item(Reason::InvalidJson, e.to_string()))?;
    let Value::Object(object) = value else {
        return Err(Rejection::item(
            Reason::NotAnObject,
            "each item must be a JSON object",
        ));
    };
    decode_object(object, ctx)
}

/// Decodes an item that is already a JSON object (the Segment edge builds these).
pub fn decode_object(
    mut object: Map<String, Value>,
    ctx: &DecodeContext<'_>,
) -> Result<Interaction, Rejection> {
    let limits = ctx.limits;
    let id = required_id(
        &mut object,
        "portal_interactionid",
        InteractionId::parse,
        limits,
    )?;
    let with_id = |r: Rejection| r.at(0, Some(id.as_str().to_owned()));

    let interaction_type = required_text(&mut object, "type", limits).map_err(with_id)?;
    let builtin = match ctx.catalogue.type_status(&interaction_type) {
        TypeStatus::Captured(builtin) => builtin,
        TypeStatus::NotCaptured => {
            return Err(with_id(Rejection::field(
                Reason::InteractionTypeNotCaptured,
                "type",
                format!(
                    "interactions of type {interaction_type:?} are not captured: the type is disabled or deleted"
                ),
            )));
        }
        TypeStatus::Unknown => {
            return Err(with_id(Rejection::field(
                Reason::UnknownInteractionType,
                "type",
                format!("unknown interaction type {interaction_type:?}"),
            )));
        }
    };
    let timestamp_text = required_text(&mut object, "portal_timestamp", limits).map_err(with_id)?;
    let timestamp = UtcMillis::parse_rfc3339(&timestamp_text).map_err(|e| {
        with_id(Rejection::field(
            Reason::InvalidField,
            "portal_timestamp",
            e.to_string(),
        ))
    })?;
    let contact_id =
        optional_id(&mut object, "portal_contactid", ContactId::parse, limits).map_err(with_id)?;
    let session_id =
        optional_id(&mut object, "session_id", SessionId::parse, limits).map_err(with_id)?;
    let portal_id = match optional_id(&mut object, "portal_portalid", PortalId::parse, limits)
        .map_err(with_id)?
    {
        Some(portal) => {
            if let Some(scope) = ctx.portal_scope
                && &portal != scope
            {
                return Err(with_id(Rejection::field(
                    Reason::PortalOutOfScope,
                    "portal_portalid",
                    format!("this credential may only send for portal {scope:?}"),
                )));
            }
            portal
        }
        None => match ctx.portal_scope {
            Some(scope) => scope.clone(),
            None => {
                return Err(with_id(Rejection::field(
                    Reason::MissingField,
                    "portal_portalid",
                    "portal_portalid is required",
                )));
            }
        },
    };
    if !ctx.catalogue.portal_captured(&portal_id) {
        return Err(with_id(Rejection::field(
            Reason::PortalNotCaptured,
            "portal_portalid",
            format!(
                "interactions from portal {portal_id:?} are not captured: its integration was deleted"
            ),
        )));
    }
    match builtin {
        Some(builtin) => check_builtin_fields(builtin, &object, limits).map_err(with_id)?,
        None => ctx
            .catalogue
            .check_custom_fields(&interaction_type, &object)
            .map_err(with_id)?,
    }
    check_extra_fields(&object, limits).map_err(with_id)?;
    Ok(Interaction {
        id,
        interaction_type,
        contact_id,
        timestamp,
        portal_id,
        session_id,
        fields: object,
    })
}

fn check_builtin_fields(
    builtin: Builtin,
    object: &Map<String, Value>,
    limits: &Limits,
) -> Result<(), Rejection> {
    for spec in builtin.fields() {
        match object.get(spec.name) {
            None | Some(Value::Null) if spec.required => {
                return Err(Rejection::field(
                    Reason::MissingField,
                    spec.name,
                    format!("{} is required for {}", spec.name, builtin.name()),
                ));
            }
            None | Some(Value::Null) => {}
            Some(Value::String(text)) => {
                if spec.required && text.trim().is_empty() {
                    return Err(Rejection::field(
                        Reason::MissingField,
                        spec.name,
                        format!("{} must not be empty", spec.name),
                    ));
                }
                check_length(spec.name, text, limits)?;
            }
            Some(_) => {
                return Err(Rejection::field(
                    Reason::InvalidField,
                    spec.name,
                    format!("{} must be a string", spec.name),
                ));
            }
        }
    }
    Ok(())
}

fn check_extra_fields(object: &Map<String, Value>, limits: &Limits) -> Result<(), Rejection> {
    for (key, value) in object {
        if key.len() > 128 {
            return Err(Rejection::field(
                Reason::FieldTooLong,
                &key.chars().take(32).collect::<String>(),
                "field names are limited to 128 bytes",
            ));
        }
        if let Value::String(text) = value {
            check_length(key, text, limits)?;
        }
    }
    Ok(())
}

fn check_length(name: &str, text: &str, limits: &Limits) -> Result<(), Rejection> {
    if text.len() > limits.max_field_bytes {
        return Err(Rejection::field(
            Reason::FieldTooLong,
            name,
            format!(
                "{name} has {} bytes, over the limit max_field_bytes = {}",
                text.len(),
                limits.max_field_bytes
            ),
        ));
    }
    Ok(())
}

fn required_text(
    object: &mut Map<String, Value>,
    name: &str,
    limits: &Limits,
) -> Result<String, Rejection> {
    match object.remove(name) {
        None | Some(Value::Null) => Err(Rejection::field(
            Reason::MissingField,
            name,
            format!("{name} is required"),
        )),
        Some(Value::String(text)) => {
            check_length(name, &text, limits)?;
            Ok(text)
        }
        Some(_) => Err(Rejection::field(
            Reason::InvalidField,
            name,
            format!("{name} must be a string"),
        )),
    }
}

fn id_rejection(name: &str, error: IdError) -> Rejection {
    let reason = match error {
        IdError::Empty => Reason::MissingField,
        IdError::TooLong { .. } => Reason::FieldTooLong,
        IdError::ControlCharacter | IdError::BadCharacter => Reason::InvalidField,
    };
    Rejection::field(reason, name, format!("{name} {error}"))
}

fn required_id<T>(
    object: &mut Map<String, Value>,
    name: &str,
    parse: fn(String) -> Result<T, IdError>,
    limits: &Limits,
) -> Result<T, Rejection> {
    let text = required_text(object, name, limits)?;
    parse(text).map_err(|e| id_rejection(name, e))
}

fn optional_id<T>(
    object: &mut Map<String, Value>,
    name: &str,
    parse: fn(String) -> Result<T, IdError>,
    limits: &Limits,
) -> Result<Option<T>, Rejection> {
    match object.get(name) {
        None | Some(Value::Null) => {
            object.remove(name);
            Ok(None)
        }
        Some(Value::String(text)) if text.is_empty() => {
            object.remove(name);
            Ok(None)
        }
        _ => required_id(object, name, parse, limits).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn decode_with(value: Value, scope: Option<&PortalId>) -> Result<Interaction, Rejection> {
        let limits = Limits::default();
        let ctx = DecodeContext {
            limits: &limits,
            portal_scope: scope,
            catalogue: &Builtins,
        };
        decode_interaction(&value.to_string(), &ctx)
    }

    fn decode(value: Value) -> Result<Interaction, Rejection> {
        decode_with(value, None)
    }

    fn article() -> Value {
        json!({
            "portal_interactionid": "i-1",
            "type": "portal_viewknowledgearticle",
            "portal_contactid": "c-1",
            "portal_timestamp": "2026-03-01T10:00:00Z",
            "portal_portalid": "support",
            "session_id": "s-1",
            "portal_knowledgearticleid": "KA-1",
            "portal_knowledgetitle": "Reset your password",
            "language": "en-US"
        })
    }

    #[test]
    fn decodes_and_round_trips_the_stored_shape() {
        let interaction = decode(article()).unwrap();
        assert_eq!(interaction.contact_id.as_ref().unwrap().as_str(), "c-1");
        assert_eq!(interaction.fields.len(), 3);
        let mut stored = interaction.to_json();
        stored["portal_timestamp"] = json!("2026-03-01T10:00:00Z");
        assert_eq!(stored, article());
    }

    #[test]
    fn every_builtin_requires_its_id_field() {
        for builtin in Builtin::ALL {
            let required = builtin.fields().iter().find(|f| f.required).unwrap();
            let item = json!({
                "portal_interactionid": "i", "type": builtin.name(),
                "portal_timestamp": "2026-03-01T10:00:00Z", "portal_portalid": "p",
            });
            let rejection = decode(item).unwrap_err();
            assert_eq!(rejection.reason, Reason::MissingField);
            assert_eq!(rejection.field.as_deref(), Some(required.name));
            assert_eq!(rejection.id.as_deref(), Some("i"));
        }
    }

    #[test]
    fn unknown_type_and_missing_common_fields() {
        let mut item = article();
        item["type"] = json!("portal_viewvideo");
        assert_eq!(
            decode(item).unwrap_err().reason,
            Reason::UnknownInteractionType
        );
        for name in [
            "portal_interactionid",
            "type",
            "portal_timestamp",
            "portal_portalid",
        ] {
            let mut item = article();
            item.as_object_mut().unwrap().remove(name);
            let rejection = decode(item).unwrap_err();
            assert_eq!(rejection.reason, Reason::MissingField, "{name}");
            assert_eq!(rejection.field.as_deref(), Some(name));
        }
    }

    #[test]
    fn anonymous_visitors_have_no_contact() {
        let mut item = article();
        item["portal_contactid"] = Value::Null;
        assert!(decode(item).unwrap().contact_id.is_none());
    }

    #[test]
    fn bad_values_name_their_field() {
        let mut item = article();
        item["portal_timestamp"] = json!("last tuesday");
        let rejection = decode(item).unwrap_err();
        assert_eq!(
            (rejection.reason, rejection.field.as_deref()),
            (Reason::InvalidField, Some("portal_timestamp"))
        );
        let mut item = article();
        item["portal_knowledgetitle"] = json!("x".repeat(9000));
        let rejection = decode(item).unwrap_err();
        assert_eq!(
            (rejection.reason, rejection.field.as_deref()),
            (Reason::FieldTooLong, Some("portal_knowledgetitle"))
        );
        assert!(rejection.message.contains("max_field_bytes"));
        let mut item = article();
        item["portal_knowledgearticleid"] = json!(42);
        assert_eq!(decode(item).unwrap_err().reason, Reason::InvalidField);
    }

    #[test]
    fn portal_scope_fills_and_guards_the_portal() {
        let scope = PortalId::parse("support").unwrap();
        let mut item = article();
        item.as_object_mut().unwrap().remove("portal_portalid");
        assert_eq!(decode_with(item, Some(&scope)).unwrap().portal_id, scope);
        let mut item = article();
        item["portal_portalid"] = json!("partners");
        assert_eq!(
            decode_with(item, Some(&scope)).unwrap_err().reason,
            Reason::PortalOutOfScope
        );
    }

    struct NothingCaptured;

    impl Catalogue for NothingCaptured {
        fn type_status(&self, _name: &str) -> TypeStatus {
            TypeStatus::NotCaptured
        }
    }

    struct DeletedPortal;

    impl Catalogue for DeletedPortal {
        fn type_status(&self, name: &str) -> TypeStatus {
            builtin_catalogue(name)
        }
        fn portal_captured(&self, _portal: &PortalId) -> bool {
            false
        }
    }

    #[test]
    fn not_captured_types_and_portals_are_refused() {
        let limits = Limits::default();
        let ctx = DecodeContext {
            limits: &limits,
            portal_scope: None,
            catalogue: &NothingCaptured,
        };
        let rejection = decode_interaction(&article().to_string(), &ctx).unwrap_err();
        assert_eq!(rejection.reason, Reason::InteractionTypeNotCaptured);
        let ctx = DecodeContext {
            catalogue: &DeletedPortal,
            ..ctx
        };
        let rejection = decode_interaction(&article().to_string(), &ctx).unwrap_err();
        assert_eq!(rejection.reason, Reason::PortalNotCaptured);
        assert_eq!(rejection.field.as_deref(), Some("portal_portalid"));
    }

    proptest! {
        #[test]
        fn decoder_never_panics_on_arbitrary_text(text in ".{0,300}") {
            let limits = Limits::default();
            let ctx = DecodeContext { limits: &limits, portal_scope: None, catalogue: &Builtins };
            let _ = decode_interaction(&text, &ctx);
        }

        #[test]
        fn any_string_values_either_decode_or_name_a_reason(
            id in ".{0,140}", ts in ".{0,40}", contact in proptest::option::of(".{0,140}"),
        ) {
            let item = json!({
                "portal_interactionid": id, "type": "portal_search",
                "portal_timestamp": ts, "portal_portalid": "p",
                "portal_contactid": contact, "portal_searchstring": "printer",
            });
            match decode(item) {
                Ok(interaction) => prop_assert_eq!(interaction.interaction_type, "portal_search"),
                Err(rejection) => prop_assert!(rejection.field.is_some()),
            }
        }
    }
}

/// A decoded batch: the valid interactions, and a rejection for every other item.
#[derive(Debug, Default)]
pub struct DecodedBatch {
    pub interactions: Vec<Interaction>,
    pub rejected: Vec<Rejection>,
    /// Each accepted interaction's index in the request, for reporting.
    pub indexes: Vec<usize>,
}

/// Splits a request body into items and decodes each one. Body-level problems
/// (not JSON, too many items) fail the whole request; item-level problems are
/// reported per item.
pub fn decode_batch(
    body: &[u8],
    ndjson: bool,
    ctx: &DecodeContext<'_>,
) -> Result<DecodedBatch, crate::ingest::BodyError> {
    let items = crate::ingest::split_items(body, ndjson, ctx.limits)?;
    let mut batch = DecodedBatch {
        interactions: Vec::with_capacity(items.len()),
        ..DecodedBatch::default()
    };
    for (index, item) in items.into_iter().enumerate() {
        let decoded = match item {
            crate::ingest::RawItem::Json(raw) => decode_interaction(raw.get(), ctx),
            crate::ingest::RawItem::Unparsable(message) => {
                Err(Rejection::item(Reason::InvalidJson, message))
            }
        };
        match decoded {
            Ok(interaction) => {
                batch.interactions.push(interaction);
                batch.indexes.push(index);
            }
            Err(rejection) => batch.rejected.push(rejection.at(index, None)),
        }
    }
    Ok(batch)
}

/// Encodes an interaction's fields for storage. Built-in types store their
/// known fields positionally — `["KA-1","Title","en-US"]`, with any extra
/// properties as a trailing object — because the field names would otherwise
/// repeat on every row. Custom types store their object as is.
pub fn encode_fields(interaction_type: &str, fields: &Map<String, Value>) -> String {
    let Some(builtin) = Builtin::from_name(interaction_type) else {
        return Value::Object(fields.clone()).to_string();
    };
    let specs = builtin.fields();
    let mut values: Vec<Value> = specs
        .iter()
        .map(|spec| fields.get(spec.name).cloned().unwrap_or(Value::Null))
        .collect();
    let extras: Map<String, Value> = fields
        .iter()
        .filter(|(key, _)| !specs.iter().any(|spec| spec.name == key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    if !extras.is_empty() {
        values.push(Value::Object(extras));
    }
    // Trailing nulls carry nothing.
    while values.last() == Some(&Value::Null) {
        values.pop();
    }
    Value::Array(values).to_string()
}

/// Reverses [`encode_fields`].
pub fn decode_fields(interaction_type: &str, stored: &str) -> Result<Map<String, Value>, String> {
    let value: Value = serde_json::from_str(stored).map_err(|e| e.to_string())?;
    match (value, Builtin::from_name(interaction_type)) {
        (Value::Object(object), _) => Ok(object),
        (Value::Array(values), Some(builtin)) => {
            let specs = builtin.fields();
            let mut fields = Map::new();
            for (index, value) in values.into_iter().enumerate() {
                match specs.get(index) {
                    Some(spec) if !value.is_null() => {
                        fields.insert(spec.name.to_owned(), value);
                    }
                    Some(_) => {}
                    None => match value {
                        Value::Object(extras) => fields.extend(extras),
                        _ => return Err("unexpected trailing value".into()),
                    },
                }
            }
            Ok(fields)
        }
        _ => Err(format!(
            "stored fields of {interaction_type} have the wrong shape"
        )),
    }
}

#[cfg(test)]
mod storage_tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn builtins_are_stored_positionally() {
        let fields = json!({"portal_knowledgearticleid": "KA-1", "language": "en"});
        let Value::Object(fields) = fields else {
            unreachable!()
        };
        let stored = encode_fields("portal_viewknowledgearticle", &fields);
        assert_eq!(stored, r#"["KA-1",null,"en"]"#);
        assert_eq!(
            decode_fields("portal_viewknowledgearticle", &stored).unwrap(),
            fields
        );
    }

    proptest! {
        #[test]
        fn fields_round_trip(
            type_index in 0usize..5,
            values in proptest::collection::btree_map(
                prop_oneof![
                    Just("portal_knowledgearticleid".to_owned()),
                    Just("portal_knowledgetitle".to_owned()),
                    Just("language".to_owned()),
                    Just("portal_searchstring".to_owned()),
                    Just("portal_blogpostid".to_owned()),
                    "[a-z_]{1,12}",
                ],
                prop_oneof![
                    ".{0,20}".prop_map(Value::from),
                    any::<i64>().prop_map(Value::from),
                    Just(json!({"nested": [1, 2]})),
                ],
                0..6,
            ),
        ) {
            let names = [
                "portal_viewknowledgearticle", "portal_viewblogpost",
                "portal_viewforumthread", "portal_search", "custom_type",
            ];
            let fields: Map<String, Value> = values.into_iter().collect();
            let stored = encode_fields(names[type_index], &fields);
            prop_assert_eq!(decode_fields(names[type_index], &stored).unwrap(), fields);
        }
    }
}
