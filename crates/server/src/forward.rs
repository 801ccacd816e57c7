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
//!
//! Every signed checkpoint follows the records it vouches for, so that the
//! SIEM keeps the checkpoints too, out of reach of whoever can write the
//! data directory: as a syslog message with MSGID `checkpoint`, or as a
//! webhook POST of its own with `X-Tracklog-Event: checkpoint` whose body
//! is the published line. Their cursor is saved as `NAME/checkpoints`.

use std::collections::HashMap;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::Instrument;
use tracklog_domain::audit::chain::Checkpoint;
use tracklog_domain::audit::format::{
    octet_frame, syslog, syslog_checkpoint, webhook_body, webhook_signature,
};
use tracklog_domain::audit::standalone::PublishedCheckpoint;
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

/// A syslog collector over TCP, plain or TLS.
struct SyslogSink {
    address: String,
    hostname: String,
    tls: Option<Tls>,
    connection: Option<Connection>,
}

impl SyslogSink {
    /// Writes frames, connecting first if needed.
    async fn write(&mut self, frames: &[u8]) -> anyhow::Result<()> {
        if self.connection.as_mut().is_some_and(Connection::closed) {
            // What was written last may not have been read.
            self.connection = None;
            anyhow::bail!("the syslog server closed the connection");
        }
        if self.connection.is_none() {
            let stream = tokio::time::timeout(
                Duration::from_secs(5),
                TcpStream::connect(self.address.as_str()),
            )
            .await??;
            stream.set_nodelay(true)?;
            self.connection = Some(match &self.tls {
                None => Connection::Plain(stream),
                Some(tls) => Connection::Tls(Box::new(
                    tls.connector
                        .connect(tls.server_name.clone(), stream)
                        .await?,
                )),
            });
        }
        let connection = self.connection.as_mut().expect("connected above");
        if let Err(error) = connection.write_all(frames).await {
            self.connection = None;
            return Err(error.into());
        }
        Ok(())
    }
}

/// An HTTP endpoint taking signed POSTs.
struct WebhookSink {
    url: String,
    secret: Vec<u8>,
    http: reqwest::Client,
}

impl WebhookSink {
    /// POSTs one signed body; a 2xx acknowledges it. `event` tells records
    /// from checkpoints.
    async fn post(&self, event: &'static str, body: Vec<u8>) -> anyhow::Result<()> {
        let response = self
            .http
            .post(self.url.as_str())
            .header("Content-Type", "application/json")
            .header("X-Tracklog-Event", event)
            .header(
                "X-Tracklog-Signature",
                webhook_signature(&self.secret, &body),
            )
            .body(body)
            .send()
            .await?;
        if !response.status().is_success() {
            anyhow::bail!("the webhook answered {}", response.status());
        }
        Ok(())
    }
}

/// A destination.
enum Sink {
    Syslog(SyslogSink),
    Webhook(WebhookSink),
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
            ForwarderKind::Syslog => Sink::Syslog(SyslogSink {
                address: config.address.clone().unwrap_or_default(),
                hostname: config.hostname.clone(),
                tls: tls_settings(config)?,
                connection: None,
            }),
            ForwarderKind::Webhook => Sink::Webhook(WebhookSink {
                url: config.url.clone().unwrap_or_default(),
                secret: config.secret.clone().unwrap_or_default().into_bytes(),
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap_or_default(),
            }),
        })
    }

    /// Whether a success means the records were received.
    fn acknowledges(&self) -> bool {
        matches!(self, Sink::Webhook(_))
    }

    /// Whether the destination still looks reachable (syslog only).
    fn alive(&mut self) -> bool {
        match self {
            Sink::Syslog(syslog) => {
                if syslog.connection.as_mut().is_some_and(Connection::closed) {
                    syslog.connection = None;
                    false
                } else {
                    true
                }
            }
            Sink::Webhook(_) => true,
        }
    }

    fn reset(&mut self) {
        if let Sink::Syslog(syslog) = self {
            syslog.connection = None;
        }
    }

    async fn send(&mut self, hits: &[AuditHit]) -> anyhow::Result<()> {
        match self {
            Sink::Syslog(sink) => {
                let mut frames = String::new();
                for hit in hits {
                    let damage = hit.integrity.as_ref().map(ToString::to_string);
                    frames.push_str(&octet_frame(&syslog(
                        &hit.record,
                        &sink.hostname,
                        damage.as_deref(),
                    )));
                }
                sink.write(frames.as_bytes()).await
            }
            Sink::Webhook(sink) => {
                let records: Vec<serde_json::Value> =
                    hits.iter().map(crate::api::audit::hit_json).collect();
                sink.post("records", webhook_body(&records)?).await
            }
        }
    }

    /// Sends signed checkpoints: one syslog message, or one webhook POST,
    /// each.
    async fn send_checkpoints(
        &mut self,
        org: &str,
        checkpoints: &[Checkpoint],
    ) -> anyhow::Result<()> {
        let published = checkpoints.iter().map(|c| PublishedCheckpoint::new(org, c));
        match self {
            Sink::Syslog(sink) => {
                let frames: String = published
                    .map(|p| octet_frame(&syslog_checkpoint(&p, &sink.hostname)))
                    .collect();
                sink.write(frames.as_bytes()).await
            }
            Sink::Webhook(sink) => {
                for line in published.map(|p| p.to_line()) {
                    sink.post("checkpoint", line.into_bytes()).await?;
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
    /// The same two for checkpoint numbers.
    checkpoints_sent: i64,
    checkpoints_saved: i64,
}

impl Position {
    /// Forgets what was written but not known to be delivered.
    fn rewind(&mut self) {
        self.sent = self.saved;
        self.checkpoints_sent = self.checkpoints_saved;
    }
}

/// What one step moved.
#[derive(Debug, Clone, Copy, Default)]
struct Moved {
    records: u64,
    checkpoints: u64,
}

/// The store's name of a forwarder's checkpoint cursor.
fn checkpoint_cursor(forwarder: &str) -> String {
    format!("{forwarder}/checkpoints")
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
                    state
                        .metrics
                        .audit_checkpoints_forwarded
                        .get_or_create(&label)
                        .inc_by(moved.checkpoints);
                    if moved.records > 0 {
                        state
                            .metrics
                            .audit_forwarded
                            .get_or_create(&label)
                            .inc_by(moved.records);
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
                    positions.values_mut().for_each(Position::rewind);
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

/// Sends one batch per org that has records, then the checkpoints whose
/// records went; returns how many of each.
async fn step(
    state: &AppState,
    config: &ForwarderConfig,
    sink: &mut Sink,
    positions: &mut HashMap<OrgId, Position>,
) -> anyhow::Result<Moved> {
    let stores = &state.stores;
    let orgs = match &config.org {
        Some(name) => {
            let name = OrgName::parse(name.as_str())?;
            stores.meta.org_by_name(&name).await?.into_iter().collect()
        }
        None => stores.meta.list_orgs().await?,
    };
    let mut moved = Moved::default();
    let checkpoints_name = checkpoint_cursor(&config.name);
    for org in orgs {
        let mut position = match positions.get(&org.id) {
            Some(p) => *p,
            None => {
                let audit = &stores.audit;
                let saved = audit.forward_cursor(config.name.clone(), org.id).await?;
                let checkpoints_saved = audit
                    .forward_cursor(checkpoints_name.clone(), org.id)
                    .await?;
                Position {
                    sent: saved,
                    saved,
                    checkpoints_sent: checkpoints_saved,
                    checkpoints_saved,
                }
            }
        };
        let hits = stores
            .audit
            .audit_after(org.id, position.sent, config.batch)
            .await?;
        if let Some(last) = hits.last().and_then(|h| h.record.sequence) {
            sink.send(&hits).await?;
            moved.records += hits.len() as u64;
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
                position.saved = saved;
            }
            position.sent = last;
        }

        // The checkpoints whose records are all written, in number order,
        // up to the first that must wait: the cursor never passes one.
        let mut checkpoints = stores
            .audit
            .checkpoints_after(org.id, position.checkpoints_sent, config.batch)
            .await?;
        let ready = checkpoints
            .iter()
            .take_while(|c| c.sequence <= position.sent)
            .count();
        checkpoints.truncate(ready);
        let wrote_checkpoints = !checkpoints.is_empty();
        if let Some(newest) = checkpoints.last().map(|c| c.number) {
            sink.send_checkpoints(org.name.as_str(), &checkpoints)
                .await?;
            moved.checkpoints += checkpoints.len() as u64;
            if sink.acknowledges() {
                stores
                    .audit
                    .save_forward_cursor(checkpoints_name.clone(), org.id, newest)
                    .await?;
                position.checkpoints_saved = newest;
            }
            position.checkpoints_sent = newest;
        }

        if hits.is_empty() && !wrote_checkpoints {
            // Idle: once the connection is still alive after a pause, what
            // was written is taken as delivered.
            let unsaved = position.saved < position.sent
                || position.checkpoints_saved < position.checkpoints_sent;
            if unsaved {
                if !sink.alive() {
                    anyhow::bail!("the connection closed after the last batch");
                }
                let audit = &stores.audit;
                if position.saved < position.sent {
                    audit
                        .save_forward_cursor(config.name.clone(), org.id, position.sent)
                        .await?;
                    position.saved = position.sent;
                }
                if position.checkpoints_saved < position.checkpoints_sent {
                    audit
                        .save_forward_cursor(
                            checkpoints_name.clone(),
                            org.id,
                            position.checkpoints_sent,
                        )
                        .await?;
                    position.checkpoints_saved = position.checkpoints_sent;
                }
            }
        }
        positions.insert(org.id, position);
    }
    Ok(moved)
}
