//! The nine preconfigured reports of the reference (PRODUCT.md §5.5), as
//! data: each is a name, a title and a predicate over a record's columns.
//! Stores translate a [`Predicate`] into their own query language; the
//! pure [`Predicate::matches`] is the reference semantics they must agree with.

use super::AuditRecord;
use super::settings::USER_ACCESS_OPERATIONS;

/// Conditions on a record, all of which must hold. An empty list imposes
/// nothing. Entity and service names compare case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Predicate {
    /// `Operation` is one of these.
    pub operations: &'static [&'static str],
    /// `Operation` starts with one of these.
    pub operation_prefixes: &'static [&'static str],
    /// The record names an entity.
    pub has_entity: bool,
    /// `EntityName` is one of these.
    pub entities: &'static [&'static str],
    /// `EntityName` is none of these.
    pub not_entities: &'static [&'static str],
    /// `Some(true)`: a custom entity, whose name has a publisher prefix
    /// (`new_project`) other than the product's own ([`PRODUCT_PREFIXES`]);
    /// `Some(false)`: any other entity.
    pub custom_entity: Option<bool>,
    /// `ServiceName` is one of these.
    pub services: &'static [&'static str],
    /// `operations` also takes the org's own sign-in and sign-out
    /// operations (`OrgAuditSettings::sign_in_operations`), which the
    /// caller passes beside the predicate.
    pub org_sign_in_operations: bool,
}

const ANY: Predicate = Predicate {
    operations: &[],
    operation_prefixes: &[],
    has_entity: false,
    entities: &[],
    not_entities: &[],
    custom_entity: None,
    services: &[],
    org_sign_in_operations: false,
};

/// Tracklog's own management records: what the home page lists as recent
/// management activity.
pub const TRACKLOG_MANAGEMENT: Predicate = Predicate {
    services: &["Tracklog"],
    ..ANY
};

/// Entities that come with the product.
pub const OUT_OF_BOX_ENTITIES: &[&str] = &[
    "account",
    "contact",
    "lead",
    "opportunity",
    "incident",
    "quote",
    "salesorder",
    "invoice",
    "product",
    "pricelevel",
    "campaign",
    "competitor",
    "contract",
    "entitlement",
    "activitypointer",
    "email",
    "phonecall",
    "task",
    "appointment",
    "annotation",
    "knowledgearticle",
    "queue",
    "queueitem",
    "goal",
    "connection",
    "list",
];

/// Entities that configure the system rather than hold business data.
pub const ADMIN_ENTITIES: &[&str] = &[
    "systemuser",
    "team",
    "role",
    "businessunit",
    "organization",
    "solution",
    "publisher",
    "privilege",
    "fieldsecurityprofile",
    "pluginassembly",
    "plugintype",
    "sdkmessageprocessingstep",
    "workflow",
    "audit",
    // Tracklog's own management entities.
    "user",
    "policy",
    "audit_settings",
    "audit_entity_settings",
    "org",
];

/// Prefixes of solution entities shipped with the product: such an entity is
/// not custom, so it falls to "accessed other entity type" unless listed.
pub const PRODUCT_PREFIXES: &[&str] = &["msdyn_", "adx_", "mspp_", "msdynce_", "audit_"];

/// One preconfigured report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// The URL name: `/api/v1/audit/reports/{name}`.
    pub name: &'static str,
    pub title: &'static str,
    pub predicate: Predicate,
}

/// The nine reports, in the reference's order.
pub const REPORTS: [Report; 9] = [
    Report {
        name: "accessed-out-of-box-entity",
        title: "Accessed out-of-box entity",
        predicate: Predicate {
            has_entity: true,
            entities: OUT_OF_BOX_ENTITIES,
            ..ANY
        },
    },
    Report {
        name: "accessed-custom-entity",
        title: "Accessed custom entity",
        predicate: Predicate {
            has_entity: true,
            custom_entity: Some(true),
            ..ANY
        },
    },
    Report {
        name: "accessed-admin-entity",
        title: "Accessed admin entity",
        predicate: Predicate {
            has_entity: true,
            entities: ADMIN_ENTITIES,
            ..ANY
        },
    },
    Report {
        name: "performed-bulk-actions",
        title: "Performed bulk actions (such as delete and import)",
        predicate: Predicate {
            operation_prefixes: &[
                "Bulk",
                "Import",
                "ExecuteMultiple",
                "CreateMultiple",
                "UpdateMultiple",
                "UpsertMultiple",
                "DeleteMultiple",
            ],
            ..ANY
        },
    },
    Report {
        name: "accessed-other-entity-type",
        title: "Accessed other entity type",
        predicate: Predicate {
            has_entity: true,
            custom_entity: Some(false),
            not_entities: OTHER_EXCLUDES,
            ..ANY
        },
    },
    Report {
        name: "accessed-admin-center",
        title: "Accessed admin center",
        predicate: Predicate {
            services: &[
                "AdminCenter",
                "Dynamics 365 admin center",
                "PowerPlatformAdminCenter",
            ],
            ..ANY
        },
    },
    Report {
        name: "accessed-internal-management-tool",
        title: "Accessed internal management tool",
        predicate: Predicate {
            services: &["InternalManagementTool", "Tracklog"],
            ..ANY
        },
    },
    Report {
        name: "signed-in-or-out",
        title: "Signed in or out",
        predicate: Predicate {
            operations: &USER_ACCESS_OPERATIONS,
            org_sign_in_operations: true,
            ..ANY
        },
    },
    Report {
        name: "activated-process-or-plug-in",
        title: "Activated process or plug-in",
        predicate: Predicate {
            operation_prefixes: &[
                "Activate",
                "ExecuteWorkflow",
                "SetWorkflowState",
                "EnablePlugin",
            ],
            ..ANY
        },
    },
];

/// Out-of-box and admin entities together: "other" is everything else.
const OTHER_EXCLUDES: &[&str] = &[
    "account",
    "contact",
    "lead",
    "opportunity",
    "incident",
    "quote",
    "salesorder",
    "invoice",
    "product",
    "pricelevel",
    "campaign",
    "competitor",
    "contract",
    "entitlement",
    "activitypointer",
    "email",
    "phonecall",
    "task",
    "appointment",
    "annotation",
    "knowledgearticle",
    "queue",
    "queueitem",
    "goal",
    "connection",
    "list",
    "systemuser",
    "team",
    "role",
    "businessunit",
    "organization",
    "solution",
    "publisher",
    "privilege",
    "fieldsecurityprofile",
    "pluginassembly",
    "plugintype",
    "sdkmessageprocessingstep",
    "workflow",
    "audit",
    "user",
    "policy",
    "audit_settings",
    "audit_entity_settings",
    "org",
];

/// Whether a lower-case entity name is a custom entity's.
pub fn is_custom(lower: &str) -> bool {
    lower.contains('_') && !PRODUCT_PREFIXES.iter().any(|p| lower.starts_with(p))
}

/// Finds a report by its URL name, or by its name or title as the reference
/// writes it: case, spaces, `_` and `-` do not matter, so
/// `Accessed out-of-box entity` finds `accessed-out-of-box-entity`. The
/// reference's product-specific title of the admin-center report is
/// accepted too.
pub fn report(name: &str) -> Option<&'static Report> {
    let wanted = slug(name);
    let wanted = match wanted.as_str() {
        "accessed-dynamics-365-admin-center" => "accessed-admin-center".to_owned(),
        _ => wanted,
    };
    REPORTS
        .iter()
        .find(|r| r.name == wanted || slug(r.title) == wanted)
}

/// Lower case, with every run of spaces, `_` and `-` made one `-`.
fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.trim().chars() {
        if c == ' ' || c == '_' || c == '-' {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

fn one_of(list: &[&str], value: &str) -> bool {
    list.iter().any(|item| item.eq_ignore_ascii_case(value))
}

impl Predicate {
    /// The reference semantics: whether `record` satisfies every condition,
    /// for an org without sign-in operations of its own.
    pub fn matches(&self, record: &AuditRecord) -> bool {
        self.matches_in(record, &[])
    }

    /// [`Predicate::matches`] for an org whose own sign-in and sign-out
    /// operations are `org_sign_in`.
    pub fn matches_in(&self, record: &AuditRecord, org_sign_in: &[String]) -> bool {
        let operation = record.operation.as_str();
        let own = self.org_sign_in_operations && org_sign_in.iter().any(|o| o == operation);
        let entity = record.entity_name.as_deref().filter(|e| !e.is_empty());
        let lower = entity.map(str::to_ascii_lowercase);
        let service = record.service_name.as_deref().unwrap_or("");
        (self.operations.is_empty() || self.operations.contains(&operation) || own)
            && (self.operation_prefixes.is_empty()
                || self
                    .operation_prefixes
                    .iter()
                    .any(|p| operation.starts_with(p)))
            && (!self.has_entity || entity.is_some())
            && (self.entities.is_empty() || entity.is_some_and(|e| one_of(self.entities, e)))
            && entity.is_none_or(|e| !one_of(self.not_entities, e))
            && self
                .custom_entity
                .is_none_or(|custom| lower.as_deref().is_some_and(|e| is_custom(e) == custom))
            && (self.services.is_empty() || one_of(self.services, service))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(operation: &str, entity: Option<&str>, service: Option<&str>) -> AuditRecord {
        AuditRecord {
            operation: operation.into(),
            entity_name: entity.map(Into::into),
            service_name: service.map(Into::into),
            ..AuditRecord::default()
        }
    }

    fn reports_of(record: &AuditRecord) -> Vec<&'static str> {
        REPORTS
            .iter()
            .filter(|r| r.predicate.matches(record))
            .map(|r| r.name)
            .collect()
    }

    #[test]
    fn nine_reports_with_distinct_names() {
        let mut names: Vec<_> = REPORTS.iter().map(|r| r.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 9);
        assert!(report("signed-in-or-out").is_some());
        assert!(report("nope").is_none());
        // As the reference and PRODUCT.md write them.
        for (asked, found) in [
            ("accessed out-of-box entity", "accessed-out-of-box-entity"),
            ("Accessed Custom Entity", "accessed-custom-entity"),
            ("signed_in_or_out", "signed-in-or-out"),
            (
                "Accessed Dynamics 365 admin center",
                "accessed-admin-center",
            ),
            (
                "Performed bulk actions (such as delete and import)",
                "performed-bulk-actions",
            ),
        ] {
            assert_eq!(report(asked).map(|r| r.name), Some(found), "{asked}");
        }
    }

    #[test]
    fn records_land_in_the_right_reports() {
        assert_eq!(
            reports_of(&record("Retrieve", Some("Account"), None)),
            ["accessed-out-of-box-entity"]
        );
        assert_eq!(
            reports_of(&record("Update", Some("new_project"), None)),
            ["accessed-custom-entity"]
        );
        // A product solution's entity is neither out-of-box nor custom: the
        // reference makes "other" the report for the rest.
        assert_eq!(
            reports_of(&record("Update", Some("msdyn_workorder"), None)),
            ["accessed-other-entity-type"]
        );
        assert_eq!(
            reports_of(&record("Create", Some("systemuser"), None)),
            ["accessed-admin-entity"]
        );
        assert_eq!(
            reports_of(&record("BulkDelete", None, None)),
            ["performed-bulk-actions"]
        );
        assert_eq!(
            reports_of(&record("Retrieve", Some("sharepointsite"), None)),
            ["accessed-other-entity-type"]
        );
        assert_eq!(
            reports_of(&record("Open", None, Some("AdminCenter"))),
            ["accessed-admin-center"]
        );
        assert_eq!(
            reports_of(&record("SignIn", Some("user"), Some("Tracklog"))),
            [
                "accessed-admin-entity",
                "accessed-internal-management-tool",
                "signed-in-or-out"
            ]
        );
        assert_eq!(
            reports_of(&record("ActivateWorkflow", None, None)),
            ["activated-process-or-plug-in"]
        );
    }

    #[test]
    fn sign_ins_as_crms_and_office_365_write_them_and_as_an_org_adds_them() {
        let signed = report("signed-in-or-out").unwrap().predicate;
        for operation in [
            "SignIn",
            "UserSignIn",
            "UserSignOut",
            "UserLoggedIn",
            "UserLoginFailed",
        ] {
            assert!(
                signed.matches(&record(operation, None, None)),
                "{operation}"
            );
        }
        let own = record("PortalVisitorAuthenticated", None, None);
        assert!(!signed.matches(&own));
        let extra = vec!["PortalVisitorAuthenticated".to_owned()];
        assert!(signed.matches_in(&own, &extra));
        // Only the sign-in report takes the org's list.
        let bulk = report("performed-bulk-actions").unwrap().predicate;
        assert!(!bulk.matches_in(&own, &extra));
        assert!(!signed.matches(&record("Retrieve", Some("account"), None)));
    }
}
