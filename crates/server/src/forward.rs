//! Continuous forwarding of the activity log to SIEMs (PRODUCT.md §5.5):
//! RFC 5424 syslog over TCP with octet-counting framing, or an HTTP webhook
//! whose body is signed with HMAC-SHA256.
//!
//! Each forwarder walks every org's log in `Sequence` order from a cursor it
//! saves in the store, so a restart resumes where it left off. Delivery is at
//! least once: a webhook's 2xx is its acknowledgement; plain TCP syslog has
//! none, so the saved cursor trails the last batch written by one batch and
//! is only moved to the end once the connection was seen alive afterwards.
//! After any failure the forwarder reconnects and resends from the saved
//! cursor, backing off exponentially, and counts the failure in
//! `tracklog_audit_forward_failures_total`.

use std::collections::HashMap;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::Instrument;
use tracklog_domain::audit::format::{octet_frame, syslog, webhook_body, webhook_signature};
use tracklog_domain::ids::{OrgId, OrgName};
use tracklog_store::AuditHit;

use crate::config::{ForwarderConfig, ForwarderKind};
use crate::metrics::ForwarderLabel;
use crate::state::AppState;

/// How long an idle forwarder waits before looking for new records.
const POLL: Duration = Duration::from_millis(300);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A syslog connection, plain or TLS.
enum Connection {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Connection {
    /// Whether the peer closed it (it never sends anything else).
    fn closed(&mut self) -> bool {
        match self {
            Connection::Plain(stream) => peer_closed(stream),
            Connection::Tls(stream) => {
                use futures::FutureExt;
                use tokio::io::AsyncReadExt;
                let mut byte = [0u8; 1];
                // Session tickets are handled inside rustls; only a close or
                // an error completes the read.
                matches!(stream.read(&mut byte).now_or_never(), Some(Ok(0) | Err(_)))
            }
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Connection::Plain(stream) => {
                stream.write_all(bytes).await?;
                stream.flush().await
            }
            Connection::Tls(stream) => {
                stream.write_all(bytes).await?;
                stream.flush().await
            }
        }
    }
}

/// TLS settings of a syslog forwarder.
struct Tls {
    connector: tokio_rustls::TlsConnector,
    server_name: rustls_pki_types::ServerName<'static>,
}

fn tls_settings(config: &ForwarderConfig) -> anyhow::Result<Option<Tls>> {
    use rustls_pki_types::pem::PemObject;
    if !config.tls {
        return Ok(None);
    }
    let file = config
        .tls_ca_file
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("tls_ca_file is required with tls"))?;
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for certificate in rustls_pki_types::CertificateDer::pem_file_iter(file)? {
        roots.add(certificate?)?;
    }
    let config_tls = tokio_rustls::rustls::ClientConfig::builder_with_provider(
        std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider()),
    )
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let host = match &config.tls_server_name {
        Some(name) => name.clone(),
        None => config
            .address
            .as_deref()
            .and_then(|a| a.rsplit_once(':'))
            .map(|(host, _)| host.trim_matches(['[', ']']).to_owned())
            .unwrap_or_default(),
    };
    Ok(Some(Tls {
        connector: tokio_rustls::TlsConnector::from(std::sync::Arc::new(config_tls)),
        server_name: rustls_pki_types::ServerName::try_from(host)?,
    }))
}

/// A destination.
enum Sink {
    Syslog {
        address: String,
        hostname: String,
        tls: Option<Tls>,
        connection: Option<Connection>,
    },
    Webhook {
        url: String,
        secret: Vec<u8>,
        http: reqwest::Client,
    },
}

/// Whether the peer closed a connection it never writes on.
fn peer_closed(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.try_read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => error.kind() != std::io::ErrorKind::WouldBlock,
    }
}

impl Sink {
    fn new(config: &ForwarderConfig) -> anyhow::Result<Self> {
        Ok(match config.kind {
            ForwarderKind::Syslog => Sink::Syslog {
                address: config.address.clone().unwrap_or_default(),
                hostname: config.hostname.clone(),
                tls: tls_settings(config)?,
                connection: None,
            },
            ForwarderKind::Webhook => Sink::Webhook {
                url: config.url.clone().unwrap_or_default(),
                secret: config.secret.clone().unwrap_or_default().into_bytes(),
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap_or_default(),
            },
        })
    }

    /// Whether a success means the records were received.
    fn acknowledges(&self) -> bool {
        matches!(self, Sink::Webhook { .. })
    }

    /// Whether the destination still looks reachable (syslog only).
    fn alive(&mut self) -> bool {
        match self {
            Sink::Syslog { connection, .. } => {
                if connection.as_mut().is_some_and(Connection::closed) {
                    *connection = None;
                    false
                } else {
                    true
                }
            }
            Sink::Webhook { .. } => true,
        }
    }

    fn reset(&mut self) {
        if let Sink::Syslog { connection, .. } = self {
            *connection = None;
        }
    }

    async fn send(&mut self, hits: &[AuditHit]) -> anyhow::Result<()> {
        match self {
            Sink::Syslog {
                address,
                hostname,
                tls,
                connection,
            } => {
                if connection.as_mut().is_some_and(Connection::closed) {
                    // What was written last may not have been read.
                    *connection = None;
                    anyhow::bail!("the syslog server closed the connection");
                }
                if connection.is_none() {
                    let stream = tokio::time::timeout(
                        Duration::from_secs(5),
                        TcpStream::connect(address.as_str()),
                    )
                    .await??;
                    stream.set_nodelay(true)?;
                    *connection = Some(match tls {
                        None => Connection::Plain(stream),
                        Some(tls) => Connection::Tls(Box::new(
                            tls.connector
                                .connect(tls.server_name.clone(), stream)
                                .await?,
                        )),
                    });
                }
                let mut frames = String::new();
                for hit in hits {
                    let damage = hit.integrity.as_ref().map(ToString::to_string);
                    frames.push_str(&octet_frame(&syslog(
                        &hit.record,
                        hostname,
                        damage.as_deref(),
                    )));
                }
                let stream = connection.as_mut().expect("connected above");
                let written = stream.write_all(frames.as_bytes()).await;
                if let Err(error) = written {
                    *connection = None;
                    return Err(error.into());
                }
                Ok(())
            }
            Sink::Webhook { url, secret, http } => {
                let records: Vec<serde_json::Value> =
                    hits.iter().map(crate::api::audit::hit_json).collect();
                let body = webhook_body(&records)?;
                let response = http
                    .post(url.as_str())
                    .header("Content-Type", "application/json")
                    .header("X-Tracklog-Signature", webhook_signature(secret, &body))
                    .body(body)
                    .send()
                    .await?;
                if !response.status().is_success() {
                    anyhow::bail!("the webhook answered {}", response.status());
                }
                Ok(())
            }
        }
    }
}

/// Where one org's forwarding stands.
#[derive(Debug, Clone, Copy, Default)]
struct Position {
    /// The last sequence written.
    sent: i64,
    /// The saved cursor: everything up to it is delivered.
    saved: i64,
}

/// Runs one forwarder until `stopping` turns true.
pub async fn run(state: AppState, config: ForwarderConfig, mut stopping: watch::Receiver<bool>) {
    let span = tracing::info_span!("audit_forwarder", forwarder = %config.name);
    async move {
        let mut sink = match Sink::new(&config) {
            Ok(sink) => sink,
            Err(error) => {
                tracing::error!(%error, "the forwarder cannot start");
                state
                    .metrics
                    .audit_forward_failures
                    .get_or_create(&ForwarderLabel {
                        forwarder: config.name.clone(),
                    })
                    .inc();
                return;
            }
        };
        let mut positions: HashMap<OrgId, Position> = HashMap::new();
        let mut backoff = Duration::from_millis(200);
        let label = ForwarderLabel {
            forwarder: config.name.clone(),
        };
        loop {
            if *stopping.borrow() {
                return;
            }
            match step(&state, &config, &mut sink, &mut positions).await {
                Ok(moved) => {
                    backoff = Duration::from_millis(200);
                    if moved > 0 {
                        state
                            .metrics
                            .audit_forwarded
                            .get_or_create(&label)
                            .inc_by(moved);
                        continue;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(POLL) => {}
                        _ = stopping.wait_for(|s| *s) => return,
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "forwarding failed; retrying");
                    state
                        .metrics
                        .audit_forward_failures
                        .get_or_create(&label)
                        .inc();
                    sink.reset();
                    // Resend everything not known to be delivered.
                    for position in positions.values_mut() {
                        position.sent = position.saved;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stopping.wait_for(|s| *s) => return,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
    .instrument(span)
    .await;
}

/// Sends one batch per org that has records; returns how many went.
async fn step(
    state: &AppState,
    config: &ForwarderConfig,
    sink: &mut Sink,
    positions: &mut HashMap<OrgId, Position>,
) -> anyhow::Result<u64> {
    let stores = &state.stores;
    let orgs = match &config.org {
        Some(name) => {
            let name = OrgName::parse(name.as_str())?;
            stores.meta.org_by_name(&name).await?.into_iter().collect()
        }
        None => stores.meta.list_orgs().await?,
    };
    let mut moved = 0;
    for org in orgs {
        let position = match positions.get(&org.id) {
            Some(p) => *p,
            None => {
                let saved = stores
                    .audit
                    .forward_cursor(config.name.clone(), org.id)
                    .await?;
                Position { sent: saved, saved }
            }
        };
        let hits = stores
            .audit
            .audit_after(org.id, position.sent, config.batch)
            .await?;
        let Some(last) = hits.last().and_then(|h| h.record.sequence) else {
            // Idle: once the connection is still alive after a pause, what
            // was written is taken as delivered.
            if position.saved < position.sent {
                if !sink.alive() {
                    anyhow::bail!("the connection closed after the last batch");
                }
                stores
                    .audit
                    .save_forward_cursor(config.name.clone(), org.id, position.sent)
                    .await?;
                positions.insert(
                    org.id,
                    Position {
                        saved: position.sent,
                        ..position
                    },
                );
            }
            positions.entry(org.id).or_insert(position);
            continue;
        };
        sink.send(&hits).await?;
        moved += hits.len() as u64;
        let saved = if sink.acknowledges() {
            last
        } else {
            // Trail by one batch: the one just written is not yet known
            // to have arrived.
            position.sent
        };
        if saved > position.saved {
            stores
                .audit
                .save_forward_cursor(config.name.clone(), org.id, saved)
                .await?;
        }
        positions.insert(
            org.id,
            Position {
                sent: last,
                saved: saved.max(position.saved),
            },
        );
    }
    Ok(moved)
}
