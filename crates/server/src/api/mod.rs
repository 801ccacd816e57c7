//! The JSON API under `/api/v1`, and the operations endpoints. Handlers are
//! thin: they parse, authorise, call a store or a service, and shape the reply.
//! Every route is registered through utoipa-axum, so the OpenAPI document at
//! `/api/v1/openapi.json` cannot miss one.

pub mod analytics;
pub mod audit;
pub mod audit_reports;
pub mod audit_settings;
pub mod channel;
pub mod channel_config;
pub mod channel_records;
pub mod contacts;
pub mod extract;
pub mod health;
pub mod interactions;
pub mod policies;
pub mod portals;
pub mod reports;
pub mod segment;
pub mod types;
pub mod users;

use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// The error envelope of every non-2xx JSON answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code, such as `payload_too_large` or `forbidden`.
    pub code: String,
    pub message: String,
    /// The field or limit at fault, when there is one.
    pub field: Option<String>,
}

/// An ingestion body: one JSON object, or an array whose items are each
/// checked on their own and answered with their outcome (NDJSON is taken
/// too, as `application/x-ndjson`). Anything else is refused whole with 400.
pub struct ItemsBody;

impl utoipa::PartialSchema for ItemsBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Object))
            .item(ArrayBuilder::new().items(
                ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::AnyValue),
            ))
            .into()
    }
}

impl ToSchema for ItemsBody {}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "sas",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`SharedAccessSignature sr=<resource>&sig=<signature>&se=<expiry>&skn=<policy>`",
            ))),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("`<policy>:<key>`"))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tracklog",
        description = "Activity hub: portal interactions and customer journeys, channel analytics, and compliance activity logging."
    ),
    modifiers(&Security),
    components(schemas(
        tracklog_domain::ids::ContactId,
        tracklog_domain::ids::CaseId,
        tracklog_domain::ids::PortalId,
        tracklog_domain::ids::TypeName,
        tracklog_domain::ids::PolicyName,
        tracklog_domain::ids::UserName,
        tracklog_domain::audit::Category,
        tracklog_domain::audit::format::Format,
        tracklog_domain::channel::query_schema::MetricName,
        tracklog_domain::channel::query_schema::MetricNameList,
        tracklog_domain::channel::query_schema::TimeZoneName,
        tracklog_domain::channel::query_schema::IntervalName,
        tracklog_domain::channel::query_schema::DimensionName,
        crate::services::forecast::ForecastInterval,
        contacts::ConfirmErase,
    )),
    tags(
        (name = "interactions", description = "Portal interactions and contact timelines"),
        (name = "segment", description = "Segment-spec ingestion for Segment's clients (write key as the Basic user)"),
        (name = "sdk", description = "The browser tracker"),
        (name = "policies", description = "Access policies and their keys"),
        (name = "users", description = "People who sign in to the web UI"),
        (name = "portals", description = "Portals, their public ingest keys and insights"),
        (name = "interaction-types", description = "Built-in and custom interaction types"),
        (name = "contacts", description = "Contacts (profiles)"),
        (name = "cases", description = "Support cases and their journeys"),
        (name = "privacy", description = "Contact export and erasure"),
        (name = "audit", description = "The activity log: records, settings, search, export, reports, integrity"),
        (name = "channel", description = "Channel analytics capture: providers, KPI event definitions, queues, conversations, sessions, participants, KPI events"),
        (name = "analytics", description = "Contact-centre metrics, drill-down, real time"),
        (name = "operations", description = "Health, readiness, metrics"),
        (name = "ui", description = "Server-rendered web pages"),
    )
)]
struct ApiDoc;

/// Every route with its OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(interactions::post_interactions))
        .routes(routes!(interactions::contact_interactions))
        .routes(routes!(segment::batch))
        .routes(routes!(segment::track))
        .routes(routes!(segment::page))
        .routes(routes!(segment::identify))
        .routes(routes!(crate::sdk::tracker_js))
        .routes(routes!(crate::sdk::channel_analytics_js))
        .routes(routes!(policies::list_policies, policies::create_policy))
        .routes(routes!(policies::get_policy, policies::delete_policy))
        .routes(routes!(policies::rotate_policy))
        .routes(routes!(users::list_users, users::create_user))
        .routes(routes!(
            users::get_user,
            users::patch_user,
            users::delete_user
        ))
        .routes(routes!(users::reset_password))
        .routes(routes!(portals::list_portals, portals::create_portal))
        .routes(routes!(
            portals::get_portal,
            portals::update_portal,
            portals::delete_portal
        ))
        .routes(routes!(portals::update_configuration))
        .routes(routes!(portals::portal_insights))
        .routes(routes!(types::list_types, types::create_type))
        .routes(routes!(
            types::get_type,
            types::patch_type,
            types::delete_type
        ))
        .routes(routes!(types::restore_type))
        .routes(routes!(contacts::list_contacts, contacts::upsert_contacts))
        .routes(routes!(contacts::get_contact, contacts::erase_contact))
        .routes(routes!(contacts::export_contact))
        .routes(routes!(contacts::list_cases, contacts::upsert_cases))
        .routes(routes!(contacts::get_case))
        .routes(routes!(contacts::case_journey))
        .routes(routes!(audit::post_records))
        .routes(routes!(audit::get_record))
        .routes(routes!(
            audit_settings::get_settings,
            audit_settings::put_settings
        ))
        .routes(routes!(
            audit_settings::get_entity_settings,
            audit_settings::put_entity_settings
        ))
        .routes(routes!(audit::search))
        .routes(routes!(audit::export))
        .routes(routes!(audit_reports::list_reports))
        .routes(routes!(audit_reports::get_report))
        .routes(routes!(audit::verify))
        .routes(routes!(audit::public_key))
        .routes(routes!(channel::post_init))
        .routes(routes!(channel::post_events))
        .routes(routes!(
            channel_config::list_providers,
            channel_config::put_provider
        ))
        .routes(routes!(
            channel_config::get_provider,
            channel_config::patch_provider,
            channel_config::delete_provider
        ))
        .routes(routes!(
            channel_config::list_definitions,
            channel_config::create_definition
        ))
        .routes(routes!(
            channel_config::get_definition,
            channel_config::patch_definition,
            channel_config::delete_definition
        ))
        .routes(routes!(channel_config::list_queues))
        .routes(routes!(channel_config::put_queue))
        .routes(routes!(
            channel_records::list_conversations,
            channel_records::create_conversations
        ))
        .routes(routes!(channel_records::get_conversation))
        .routes(routes!(
            channel_records::list_sessions,
            channel_records::create_sessions
        ))
        .routes(routes!(channel_records::get_session))
        .routes(routes!(
            channel_records::list_participants,
            channel_records::create_participants
        ))
        .routes(routes!(
            channel_records::list_kpi_events,
            channel_records::create_kpi_events
        ))
        .routes(routes!(analytics::list_metrics))
        .routes(routes!(analytics::query_metrics))
        .routes(routes!(analytics::drilldown))
        .routes(routes!(reports::dissatisfied))
        .routes(routes!(reports::provider_health))
        .routes(routes!(analytics::realtime))
        .routes(routes!(analytics::rebuild))
        .routes(routes!(analytics::forecast))
        .routes(routes!(
            analytics::list_alert_rules,
            analytics::put_alert_rule
        ))
        .routes(routes!(analytics::delete_alert_rule))
        .routes(routes!(analytics::list_alerts))
        .routes(routes!(analytics::evaluate_alerts))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
}
