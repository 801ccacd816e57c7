//! # tracklog-server
//!
//! Tracklog's HTTP server, as a library: [`run`] takes a configuration, a bound
//! listener and a shutdown signal, and serves until the signal fires. `main`
//! only parses the command line; tests bind `127.0.0.1:0` and get the real
//! server.
//!
//! - [`config`]: layered, typed configuration.
//! - [`api`]: the JSON API under `/api/v1` and the operations endpoints;
//!   thin handlers over the stores and [`services`].
//! - [`auth`]: access-policy credentials (SAS and Basic).
//! - [`edge`]: ingestion bodies — limits, gzip, NDJSON.
//! - [`sdk`]: the browser tracker, `GET /sdk/tracker.js`.
//! - [`services`]: management actions shared with the CLI, each audited.
//! - [`ui`]: server-rendered pages and sign-in.
//! - [`error`]: the one error type of the HTTP boundary.
//! - [`jobs`]: background jobs: audit checkpoints, retention, forwarding.
//! - [`forward`]: SIEM forwarders (syslog over TCP, signed webhooks).
//! - [`metrics`]: every Prometheus metric, documented in one place.

pub mod api;
pub mod auth;
pub mod catalogue;
pub mod channel_health;
pub use tracklog_config as config;
pub mod cors;
pub mod edge;
pub mod error;
pub mod forward;
pub mod jobs;
pub mod listener;
pub mod metrics;
pub mod publish;
pub mod retention;
pub mod sdk;
pub mod services;
pub mod state;
pub mod store_options;
pub mod ui;

use std::future::Future;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;
use tracklog_store::Stores;
use tracklog_store::sqlite::SqliteStore;
use utoipa_axum::routes;

pub use config::Config;
pub use state::AppState;

use crate::metrics::HttpLabel;

/// Opens the stores the configuration names: today, the embedded SQLite store
/// in `data_dir`.
pub fn open_stores(config: &Config) -> Result<Stores, tracklog_store::StoreError> {
    SqliteStore::open_stores(&config.data_dir, store_options::sqlite_options(config))
}

/// The full application: API, operations endpoints and UI.
pub fn app(state: AppState) -> Router {
    let (api, openapi) = api::router()
        .routes(routes!(ui::pages::home))
        .routes(routes!(ui::pages::login_form, ui::pages::login))
        .routes(routes!(ui::pages::logout))
        .routes(routes!(ui::users::users_page, ui::users::add_user))
        .routes(routes!(ui::users::user_action))
        .routes(routes!(ui::journeys::cases_page))
        .routes(routes!(ui::journeys::open_case))
        .routes(routes!(ui::journeys::journey_page))
        .routes(routes!(ui::journeys::embed_journey))
        .routes(routes!(ui::journeys::portals_page))
        .routes(routes!(ui::journeys::portal_page))
        .routes(routes!(ui::analytics::live_page))
        .routes(routes!(ui::analytics::live_stream))
        .routes(routes!(ui::analytics::drill_page))
        .routes(routes!(ui::analytics::session_page))
        .routes(routes!(ui::analytics::history_page))
        .routes(routes!(ui::analytics::me_page))
        .routes(routes!(ui::sentiment::my_stream))
        .routes(routes!(ui::sentiment::dissatisfied_page))
        .routes(routes!(ui::health::health_page))
        .routes(routes!(ui::audit::audit_page))
        .routes(routes!(ui::audit::record_page))
        .routes(routes!(ui::audit::export_download))
        .split_for_parts();
    let openapi = std::sync::Arc::new(document_itself(openapi));
    api.route(
        "/api/v1/openapi.json",
        get(move || {
            let openapi = openapi.clone();
            async move { Json(openapi.as_ref().clone()) }
        }),
    )
    .route("/static/app.css", get(ui::stylesheet))
    .route("/static/live.js", get(ui::analytics::live_script))
    .layer(middleware::from_fn(security_headers))
    .layer(middleware::from_fn_with_state(
        state.clone(),
        cors::public_ingest_cors,
    ))
    .layer(middleware::from_fn_with_state(
        state.clone(),
        cors::channel_sdk_cors,
    ))
    .layer(middleware::from_fn_with_state(
        state.clone(),
        count_requests,
    ))
    .layer(
        TraceLayer::new_for_http().make_span_with(|request: &Request| {
            // The path only: query strings may carry tokens.
            let route = request.extensions().get::<MatchedPath>().map_or_else(
                || request.uri().path().to_owned(),
                |p| p.as_str().to_owned(),
            );
            tracing::info_span!("request", method = %request.method(), route = %route)
        }),
    )
    .with_state(state)
}

/// Adds the document's own endpoint and the stylesheet, which are served
/// outside the documented router.
fn document_itself(mut openapi: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::HttpMethod;
    use utoipa::openapi::path::OperationBuilder;
    use utoipa::openapi::response::ResponseBuilder;
    let get = |summary: &str, tag: &str, description: &str| {
        OperationBuilder::new()
            .summary(Some(summary))
            .tag(tag)
            .response(
                "200",
                ResponseBuilder::new().description(description).build(),
            )
            .build()
    };
    openapi.paths.add_path_operation(
        "/api/v1/openapi.json",
        vec![HttpMethod::Get],
        get(
            "This OpenAPI 3.1 document",
            "operations",
            "The document, as JSON",
        ),
    );
    openapi.paths.add_path_operation(
        "/static/app.css",
        vec![HttpMethod::Get],
        get("The web UI's stylesheet", "ui", "CSS"),
    );
    openapi.paths.add_path_operation(
        "/static/live.js",
        vec![HttpMethod::Get],
        get("The live page's script", "ui", "JavaScript"),
    );
    document_common_answers(&mut openapi);
    openapi
}

/// Every operation that takes a credential answers 401 to a missing,
/// wrong, expired or revoked one and 403 to one without the right or scope
/// (`auth.rs`), before its own work, and every one that takes a body, a
/// query or a path parameter 400 to one it cannot read: documented once
/// here for all of them, with the parameter schemas every operation shares
/// (names in paths, empty times, cursors).
fn document_common_answers(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::response::ResponseBuilder;
    use utoipa::openapi::{ContentBuilder, Ref};
    let answer = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                    .build(),
            )
            .build()
    };
    for item in openapi.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            if operation.security.as_ref().is_none_or(Vec::is_empty) {
                continue;
            }
            let takes_body = operation.request_body.is_some();
            let takes_query = operation.parameters.iter().flatten().any(|parameter| {
                parameter.parameter_in == utoipa::openapi::path::ParameterIn::Query
            });
            let takes_path = operation.parameters.iter().flatten().any(|parameter| {
                parameter.parameter_in == utoipa::openapi::path::ParameterIn::Path
            });
            for parameter in operation.parameters.iter_mut().flatten() {
                match parameter.parameter_in {
                    utoipa::openapi::path::ParameterIn::Path => {
                        refuse_control_characters(parameter)
                    }
                    utoipa::openapi::path::ParameterIn::Query => {
                        allow_empty_time(parameter);
                        describe_cursor(parameter);
                    }
                    _ => {}
                }
            }
            let responses = &mut operation.responses.responses;
            if takes_path {
                responses.entry("400".into()).or_insert_with(|| {
                    answer("A path parameter is not a valid name or id; `field` names it").into()
                });
            }
            if takes_query {
                responses.entry("400".into()).or_insert_with(|| {
                    answer("A query parameter is not valid; `field` names it").into()
                });
            }
            if takes_body {
                responses.entry("400".into()).or_insert_with(|| {
                    answer("The body cannot be read: a wrong Content-Type, not JSON, or empty")
                        .into()
                });
            }
            responses.entry("401".into()).or_insert_with(|| {
                answer("No credential, or a wrong, expired or revoked one").into()
            });
            responses.entry("403".into()).or_insert_with(|| {
                answer("The credential lacks the right or the scope this operation needs").into()
            });
        }
    }
}

/// Every name and id in a path is refused when empty or when it holds a
/// control character (`tracklog_domain::ids`); a path parameter documented
/// as a plain string says so.
fn refuse_control_characters(parameter: &mut utoipa::openapi::path::Parameter) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{Schema, SchemaType, Type};
    if let Some(RefOr::T(Schema::Object(object))) = parameter.schema.as_mut()
        && object.schema_type == SchemaType::Type(Type::String)
        && object.pattern.is_none()
    {
        object.pattern = Some("^[^\\x00-\\x1F\\x7F-\\x9F]+$".into());
        object.min_length = Some(1);
    }
}

/// A query parameter left empty (`to=`, as a form with a blank field sends
/// it) counts as absent ([`api::extract::ApiQuery`]); a time parameter's
/// schema says so.
fn allow_empty_time(parameter: &mut utoipa::openapi::path::Parameter) {
    use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
    use utoipa::openapi::{RefOr, Schema};
    let Some(RefOr::T(Schema::Object(object))) = parameter.schema.as_ref() else {
        return;
    };
    if object.format != Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)) {
        return;
    }
    let time = object.clone();
    let empty = ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(0))
        .build();
    parameter.schema = Some(
        AnyOfBuilder::new()
            .item(Schema::Object(time))
            .item(Schema::Object(empty))
            .into(),
    );
}

/// Every `cursor` parameter is a [`tracklog_store::Cursor`]; its schema is
/// the cursor's pattern, or empty (absent).
fn describe_cursor(parameter: &mut utoipa::openapi::path::Parameter) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::Schema;
    if parameter.name != "cursor" {
        return;
    }
    if let Some(RefOr::T(Schema::Object(object))) = parameter.schema.as_mut() {
        let whole = tracklog_store::Cursor::PATTERN
            .trim_start_matches('^')
            .trim_end_matches('$');
        object.pattern = Some(format!("^({whole})?$"));
        object.description = Some("The `next_cursor` of the previous page, as given".into());
    }
}

async fn count_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let response = next.run(request).await;
    state
        .metrics
        .http_requests
        .get_or_create(&HttpLabel {
            method,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    let is_html = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if is_html {
        // A page that sets its own policy (the embeddable journey, framed
        // by the CRMs its policy names) keeps it; every other page may be
        // framed by no one, in browsers that know only X-Frame-Options too.
        if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
                ),
            );
            headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        }
        headers.insert(
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish
/// (up to `shutdown_grace_seconds`) and drains the write queue before
/// returning, so every acknowledged write is on disk.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let stores = open_stores(&config)?;
    run_with_stores(config, stores, listener, shutdown).await
}

/// [`run`] on stores the caller opened.
pub async fn run_with_stores(
    config: Config,
    stores: Stores,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let grace = Duration::from_secs(config.shutdown_grace_seconds);
    let state_interval = config.retention.interval_seconds;
    if let Some(path) = &config.audit.checkpoint_file {
        // Found at start, not as a warning every second afterwards.
        publish::check_writable(path).map_err(|error| {
            anyhow::anyhow!(
                "cannot append to {} (key `audit.checkpoint_file`): {error}",
                path.display()
            )
        })?;
    }
    let (audit_key, key_source) = services::signing_key::load_key(&config)?;
    if key_source.is_in_data_directory() {
        tracing::info!(
            "the audit signing key is in the data directory; set audit.signing_key_file \
             to keep it where the log's writers cannot reach"
        );
    }
    for (key, path) in [
        ("audit.signing_key_file", &config.audit.signing_key_file),
        ("audit.checkpoint_file", &config.audit.checkpoint_file),
    ] {
        if path
            .as_ref()
            .is_some_and(|p| p.starts_with(&config.data_dir))
        {
            tracing::warn!(
                key,
                "this file is inside the data directory, where whoever can rewrite the log \
                 can reach it too"
            );
        }
    }
    let state = AppState::new(stores.clone(), config, audit_key);
    let address = listener.local_addr()?;
    tracing::info!(%address, "serving");
    let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
    let state_for_jobs = state.clone();
    let (limits, metrics) = (state.config.http.clone(), state.metrics.clone());
    let server = listener::serve(listener, app(state), limits, metrics, async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = stopping_tx.send(true);
    });
    let purger = retention::spawn(
        stores.clone(),
        state_for_jobs.metrics.clone(),
        Duration::from_secs(state_interval),
        stopping_rx.clone(),
    );
    let jobs = jobs::spawn(state_for_jobs, stopping_rx.clone());
    let mut stopping = stopping_rx.clone();
    tokio::select! {
        () = server => {},
        _ = async {
            let _ = stopping.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!("in-flight requests did not finish within the grace period"),
    }
    purger.abort();
    jobs.stop().await;
    stores.lifecycle.close().await;
    tracing::info!("stopped");
    Ok(())
}
