//! What is recorded (PRODUCT.md §5.3): the org's switches, the per-entity
//! switches, the excluded messages, and the decision that combines them.

use serde::{Deserialize, Serialize};

use super::Category;

/// The SDK messages the reference never records; each org starts with this
/// list and may edit it.
pub const DEFAULT_EXCLUDED_MESSAGES: [&str; 25] = [
    "WhoAmI",
    "RetrieveFilteredForms",
    "TriggerServiceEndpointCheck",
    "QueryExpressionToFetchXml",
    "FetchXmlToQueryExpression",
    "FireNotificationEvent",
    "RetrieveMetadataChanges",
    "RetrieveEntityChanges",
    "RetrieveProvisionedLanguagePackVersion",
    "RetrieveInstalledLanguagePackVersion",
    "RetrieveProvisionedLanguages",
    "RetrieveAvailableLanguages",
    "RetrieveDeprovisionedLanguages",
    "RetrieveInstalledLanguagePacks",
    "GetAllTimeZonesWithDisplayName",
    "GetTimeZoneCodeByLocalizedName",
    "IsReportingDataConnectorInstalled",
    "LocalTimeFromUtcTime",
    "IsBackOfficeInstalled",
    "FormatAddress",
    "IsSupportUserRole",
    "IsComponentCustomizable",
    "ConfigureReportingDataConnector",
    "CheckClientCompatibility",
    "RetrieveAttribute",
];

/// Operations that record a person signing in or out, or failing to:
/// Tracklog's own, and the names CRMs, Office 365 and identity providers
/// write. `user_access_auditing` governs them and the "Signed in or out"
/// report counts them, together with each org's own
/// [`OrgAuditSettings::sign_in_operations`]. Names match exactly, as §5.2's
/// operation names do.
pub const USER_ACCESS_OPERATIONS: [&str; 21] = [
    // Tracklog's own, and Dynamics 365's user access record.
    "SignIn",
    "SignOut",
    "SignInFailed",
    "UserAccess",
    // CRMs and portals.
    "UserSignIn",
    "UserSignOut",
    "UserSignInFailed",
    "UserLogin",
    "UserLogout",
    "Login",
    "Logout",
    "LoginFailed",
    // Office 365's unified audit log and Entra ID.
    "UserLoggedIn",
    "UserLoggedOut",
    "UserLoginFailed",
    "MailboxLogin",
    "SignInEvent",
    // Windows-style names.
    "Logon",
    "Logoff",
    "LogonFailed",
    "UserLoggedOff",
];

/// The org's audit settings (`GET/PUT /api/v1/audit/settings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OrgAuditSettings {
    /// Master switch: nothing sent by clients is recorded when false.
    pub auditing_enabled: bool,
    /// Records of people signing in and out.
    pub user_access_auditing: bool,
    /// Read and ReadMultiple records, subject also to the entity's settings.
    pub read_auditing: bool,
    /// Messages (operations) never recorded.
    pub excluded_messages: Vec<String>,
    /// The org's own operations that record a sign-in or sign-out, beside
    /// [`USER_ACCESS_OPERATIONS`]: governed by `user_access_auditing` and
    /// counted by the "Signed in or out" report. Empty when left out.
    #[serde(default)]
    pub sign_in_operations: Vec<String>,
}

impl OrgAuditSettings {
    /// Whether `operation` records a person signing in or out.
    pub fn is_user_access(&self, operation: &str) -> bool {
        USER_ACCESS_OPERATIONS.contains(&operation)
            || self.sign_in_operations.iter().any(|o| o == operation)
    }
}

impl Default for OrgAuditSettings {
    fn default() -> Self {
        Self {
            auditing_enabled: true,
            user_access_auditing: true,
            read_auditing: true,
            excluded_messages: DEFAULT_EXCLUDED_MESSAGES
                .iter()
                .map(|m| (*m).to_owned())
                .collect(),
            sign_in_operations: Vec::new(),
        }
    }
}

/// One entity's audit settings (`GET/PUT /api/v1/audit/settings/entities/{entity}`).
/// An entity never configured has every switch on, and so does a switch a
/// PUT leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, default)]
pub struct EntityAuditSettings {
    pub auditing: bool,
    /// "Log a record when opened": Read records.
    pub single_record_read: bool,
    /// "Log all records displayed on an opened page": ReadMultiple records.
    pub multiple_record_read: bool,
}

impl Default for EntityAuditSettings {
    fn default() -> Self {
        Self {
            auditing: true,
            single_record_read: true,
            multiple_record_read: true,
        }
    }
}

/// Whether a record is kept, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Keep,
    Exclude(ExclusionReason),
}

/// Why a record was not recorded. The code is stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ExclusionReason {
    /// The message is on the org's exclusion list.
    ExcludedMessage,
    /// `auditing_enabled` is off.
    AuditingDisabled,
    /// A sign-in or sign-out while `user_access_auditing` is off.
    UserAccessAuditingOff,
    /// The entity's `auditing` is off.
    EntityAuditingOff,
    /// A read that the org or the entity does not audit.
    ReadAuditingOff,
}

impl ExclusionReason {
    /// The reason code sent to clients and used as a metric label.
    pub fn code(self) -> &'static str {
        match self {
            ExclusionReason::ExcludedMessage => "excluded_message",
            ExclusionReason::AuditingDisabled => "auditing_disabled",
            ExclusionReason::UserAccessAuditingOff => "user_access_auditing_off",
            ExclusionReason::EntityAuditingOff => "entity_auditing_off",
            ExclusionReason::ReadAuditingOff => "read_auditing_off",
        }
    }
}

/// Decides whether one record is kept. `message` is the record's `Message`,
/// or its `Operation` when it has none; `entity` is the settings of its
/// `EntityName` (the defaults when it has none or it was never configured).
///
/// A Read or ReadMultiple record is kept only when both the org and the
/// entity allow it.
pub fn decide(
    org: &OrgAuditSettings,
    entity: &EntityAuditSettings,
    operation: &str,
    message: Option<&str>,
    category: Category,
) -> Decision {
    use ExclusionReason::*;
    let excluded = |name: &str| {
        org.excluded_messages
            .iter()
            .any(|m| m.eq_ignore_ascii_case(name))
    };
    if excluded(operation) || message.is_some_and(excluded) {
        return Decision::Exclude(ExcludedMessage);
    }
    if !org.auditing_enabled {
        return Decision::Exclude(AuditingDisabled);
    }
    if org.is_user_access(operation) {
        return if org.user_access_auditing {
            Decision::Keep
        } else {
            Decision::Exclude(UserAccessAuditingOff)
        };
    }
    if !entity.auditing {
        return Decision::Exclude(EntityAuditingOff);
    }
    let read_allowed = match category {
        Category::Read => org.read_auditing && entity.single_record_read,
        Category::ReadMultiple => org.read_auditing && entity.multiple_record_read,
        _ => true,
    };
    if read_allowed {
        Decision::Keep
    } else {
        Decision::Exclude(ReadAuditingOff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Category::*;
    use ExclusionReason::*;

    fn org(enabled: bool, access: bool, read: bool) -> OrgAuditSettings {
        OrgAuditSettings {
            auditing_enabled: enabled,
            user_access_auditing: access,
            read_auditing: read,
            ..OrgAuditSettings::default()
        }
    }

    fn entity(auditing: bool, single: bool, multiple: bool) -> EntityAuditSettings {
        EntityAuditSettings {
            auditing,
            single_record_read: single,
            multiple_record_read: multiple,
        }
    }

    #[test]
    fn a_switch_left_out_is_on() {
        let partial: EntityAuditSettings =
            serde_json::from_str(r#"{"single_record_read": false}"#).unwrap();
        assert_eq!(partial, entity(true, false, true));
        assert!(serde_json::from_str::<EntityAuditSettings>(r#"{"nope": 1}"#).is_err());
    }

    #[test]
    fn the_reference_list_is_seeded() {
        let settings = OrgAuditSettings::default();
        assert_eq!(settings.excluded_messages.len(), 25);
        assert!(settings.excluded_messages.contains(&"WhoAmI".to_owned()));
        assert!(
            settings
                .excluded_messages
                .contains(&"RetrieveAttribute".to_owned())
        );
    }

    #[test]
    fn decision_table() {
        let on = entity(true, true, true);
        #[rustfmt::skip]
        let cases: Vec<(OrgAuditSettings, EntityAuditSettings, &str, Category, Decision)> = vec![
            // Reads need both the org and the entity.
            (org(true, true, true),   on,                        "Retrieve",         Read,         Decision::Keep),
            (org(true, true, false),  on,                        "Retrieve",         Read,         Decision::Exclude(ReadAuditingOff)),
            (org(true, true, true),   entity(true, false, true), "Retrieve",         Read,         Decision::Exclude(ReadAuditingOff)),
            (org(true, true, true),   entity(true, false, true), "RetrieveMultiple", ReadMultiple, Decision::Keep),
            (org(true, true, true),   entity(true, true, false), "RetrieveMultiple", ReadMultiple, Decision::Exclude(ReadAuditingOff)),
            (org(true, true, false),  entity(true, true, true),  "RetrieveMultiple", ReadMultiple, Decision::Exclude(ReadAuditingOff)),
            (org(true, true, true),   entity(true, true, false), "Retrieve",         Read,         Decision::Keep),
            // Writes ignore the read switches.
            (org(true, true, false),  entity(true, false, false), "Create",          Create,       Decision::Keep),
            (org(true, true, true),   entity(false, true, true), "Update",           Update,       Decision::Exclude(EntityAuditingOff)),
            (org(false, true, true),  on,                        "Delete",           Delete,       Decision::Exclude(AuditingDisabled)),
            // The exclusion list wins over everything.
            (org(true, true, true),   on,                        "WhoAmI",           Other,        Decision::Exclude(ExcludedMessage)),
            (org(true, true, true),   on,                        "RetrieveAttribute", Read,        Decision::Exclude(ExcludedMessage)),
            // User access.
            (org(true, false, true),  on,                        "SignIn",           Other,        Decision::Exclude(UserAccessAuditingOff)),
            (org(true, true, true),   entity(false, false, false), "SignOut",        Other,        Decision::Keep),
        ];
        for (org, entity, operation, category, expected) in cases {
            assert_eq!(
                decide(&org, &entity, operation, None, category),
                expected,
                "{operation} with {org:?} {entity:?}"
            );
        }
    }

    #[test]
    fn the_message_field_is_checked_too() {
        let decision = decide(
            &OrgAuditSettings::default(),
            &EntityAuditSettings::default(),
            "Execute",
            Some("whoami"),
            Other,
        );
        assert_eq!(decision, Decision::Exclude(ExcludedMessage));
    }
}
