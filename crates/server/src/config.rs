//! Typed configuration: defaults, then an optional TOML file, then `TRACKLOG_`
//! environment variables, then command-line flags, each overriding the last.
//!
//! Unknown keys and bad values are refused at start-up with a message that
//! names the key, so a typo never silently falls back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use tracklog_domain::ingest::Limits;
use tracklog_store::Durability;
use tracklog_store::log::LogOptions;
use tracklog_store::sqlite::SqliteOptions;

/// Everything a server needs to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where the embedded store keeps its files.
    pub data_dir: PathBuf,
    /// `text` for people, `json` for log collectors.
    pub log_format: LogFormat,
    pub ingest: IngestConfig,
    pub storage: StorageConfig,
    pub http: HttpConfig,
    pub ui: UiConfig,
    pub retention: RetentionConfig,
    pub audit: AuditConfig,
    pub channel: ChannelConfig,
    /// Seconds to wait for in-flight requests at shutdown.
    pub shutdown_grace_seconds: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./tracklog-data"),
            log_format: LogFormat::Text,
            ingest: IngestConfig::default(),
            storage: StorageConfig::default(),
            http: HttpConfig::default(),
            ui: UiConfig::default(),
            retention: RetentionConfig::default(),
            audit: AuditConfig::default(),
            channel: ChannelConfig::default(),
            shutdown_grace_seconds: 30,
        }
    }
}

/// The background purge of data past its retention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Seconds between purges. Each portal's `retention_days` decides what goes.
    pub interval_seconds: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            interval_seconds: 3600,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The ingestion pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// `fsync` (default): acknowledged writes survive a power cut.
    /// `os`: they survive a crash of Tracklog, not of the machine.
    pub durability: Durability,
    /// A group commit closes at this many items...
    pub commit_max_items: usize,
    /// ...or this many milliseconds after its first write arrived.
    pub commit_linger_ms: u64,
    /// Items that may wait for the writer before requests get 503.
    pub queue_max_items: usize,
    /// Largest request body, after decompression.
    pub max_body_bytes: usize,
    /// Most items in one request.
    pub max_batch_items: usize,
    /// Longest string value in an item.
    pub max_field_bytes: usize,
    /// Largest single item.
    pub max_item_bytes: usize,
    /// Bytes the write-ahead log may hold that the materialisers have not
    /// applied yet, before requests get 503.
    pub log_max_bytes: u64,
    /// Size at which a log segment is closed and a new one started.
    pub log_segment_bytes: u64,
    /// Writes get 503 while the disk holding the data directory has less
    /// free than this, kept for applying what was already acknowledged
    /// (0 turns the reserve off).
    pub log_min_free_bytes: u64,
    /// Milliseconds a read waits for the writes it must see to be applied,
    /// before it gets 503.
    pub read_your_writes_ms: u64,
    /// `/readyz` answers 503 while a materialiser's oldest unapplied item
    /// is older than this.
    pub ready_max_lag_ms: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        let limits = Limits::default();
        let store = SqliteOptions::default();
        Self {
            durability: Durability::Fsync,
            commit_max_items: store.batch_max_items,
            commit_linger_ms: store.batch_linger.as_millis() as u64,
            queue_max_items: store.queue_max_items,
            max_body_bytes: limits.max_body_bytes,
            max_batch_items: limits.max_batch_items,
            max_field_bytes: limits.max_field_bytes,
            max_item_bytes: limits.max_item_bytes,
            log_max_bytes: store.log.max_bytes,
            log_segment_bytes: store.log.segment_bytes,
            log_min_free_bytes: store.log.min_free_bytes,
            read_your_writes_ms: store.settle_timeout.as_millis() as u64,
            ready_max_lag_ms: 5_000,
        }
    }
}

/// The embedded store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub read_connections: u32,
    pub busy_timeout_ms: u64,
    /// WAL pages before the writer checkpoints by itself (a backstop).
    pub wal_autocheckpoint_pages: u32,
    /// How often a background thread checkpoints the WAL.
    pub checkpoint_interval_ms: u64,
    /// `serve` runs SQLite's quick check of the database before it opens
    /// it, and refuses to start on a damaged one.
    pub check_at_start: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        let store = SqliteOptions::default();
        Self {
            read_connections: store.read_connections,
            busy_timeout_ms: store.busy_timeout.as_millis() as u64,
            wal_autocheckpoint_pages: store.wal_autocheckpoint_pages,
            checkpoint_interval_ms: store.checkpoint_interval.as_millis() as u64,
            check_at_start: true,
        }
    }
}

/// Limits at the HTTP edge ([`crate::listener`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Connections open at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// A request's head must arrive within this many milliseconds.
    pub header_read_timeout_ms: u64,
    /// The most bytes a request's head may take (431 past it).
    pub max_header_bytes: usize,
    /// The longest URI, path and query (414 past it).
    pub max_uri_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            header_read_timeout_ms: 10_000,
            max_header_bytes: 65_536,
            max_uri_bytes: 8_192,
        }
    }
}

/// The web UI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiConfig {
    /// Hours a sign-in lasts.
    pub session_hours: u64,
    /// `auto`: Secure cookies unless the request came to a loopback host over
    /// plain HTTP. `always` or `never` force it.
    pub secure_cookies: SecureCookies,
    /// The CSP `frame-ancestors` of the embeddable journey
    /// (`/embed/cases/{id}`): the CRM origins allowed to frame it, such as
    /// `'self' https://crm.example.com`.
    pub embed_frame_ancestors: String,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            session_hours: 12,
            secure_cookies: SecureCookies::Auto,
            embed_frame_ancestors: "'self'".into(),
        }
    }
}

/// Channel analytics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelConfig {
    /// Origins of agent desktops that may call the channel ingestion
    /// endpoints from a browser with the SDK (`/sdk/channel-analytics.js`),
    /// such as `https://crm.example.com`. Empty: same origin only.
    pub sdk_allowed_origins: Vec<String>,
    /// Seconds between evaluations of the alert rules.
    pub alert_interval_seconds: u64,
    /// A provider that has sent nothing for this many seconds is silent:
    /// its health shows it, and the alerts job raises an alert.
    pub provider_silence_seconds: u64,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        Self {
            sdk_allowed_origins: Vec::new(),
            alert_interval_seconds: 30,
            provider_silence_seconds: 900,
        }
    }
}

/// The activity log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Records whose JSON is longer than this are stored as parts.
    pub split_threshold_bytes: usize,
    /// Each org's first this many records train its zstd dictionary, and
    /// later records are stored compressed with it; 0 compresses nothing.
    pub compress_after_records: usize,
    /// Days records are kept, for orgs that set none of their own.
    pub retention_days: u32,
    /// How often the retention purge runs.
    pub purge_interval_seconds: u64,
    /// A signed checkpoint is made once this many records arrived since the last...
    pub checkpoint_every_records: u64,
    /// ...or this many seconds after the last, if any record arrived since.
    pub checkpoint_every_seconds: u64,
    /// Continuous forwarding to SIEMs.
    pub forwarders: Vec<ForwarderConfig>,
}

/// Where a forwarder sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwarderKind {
    /// RFC 5424 over TCP with octet-counting framing.
    Syslog,
    /// HTTP POST of a JSON array, signed with HMAC-SHA256.
    Webhook,
}

/// One SIEM forwarder. Each resumes from its own saved cursor per org.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwarderConfig {
    /// Unique; names the saved cursor and the metrics.
    pub name: String,
    pub kind: ForwarderKind,
    /// `host:port` for syslog.
    #[serde(default)]
    pub address: Option<String>,
    /// The URL for webhooks.
    #[serde(default)]
    pub url: Option<String>,
    /// The webhook's HMAC key.
    #[serde(default)]
    pub secret: Option<String>,
    /// Only this org's records; every org's when absent.
    #[serde(default)]
    pub org: Option<String>,
    /// Records per delivery.
    #[serde(default = "default_forward_batch")]
    pub batch: usize,
    /// The HOSTNAME of syslog messages.
    #[serde(default = "default_forward_hostname")]
    pub hostname: String,
    /// Syslog over TLS (RFC 5425 framing is the same octet counting).
    #[serde(default)]
    pub tls: bool,
    /// PEM file of the certificates to trust for TLS; required with `tls`.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// The name the server's certificate must carry; the host part of
    /// `address` when absent.
    #[serde(default)]
    pub tls_server_name: Option<String>,
}

fn default_forward_batch() -> usize {
    500
}

fn default_forward_hostname() -> String {
    "tracklog".into()
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            split_threshold_bytes: 3072,
            compress_after_records: 2_000,
            retention_days: 90,
            purge_interval_seconds: 3600,
            checkpoint_every_records: 1000,
            checkpoint_every_seconds: 60,
            forwarders: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecureCookies {
    Auto,
    Always,
    Never,
}

/// A configuration that could not be used; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

/// Flags given on the command line; `None` leaves the lower layers in force.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConfigOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
}

impl Config {
    /// Loads the layers in order: defaults, `file`, `TRACKLOG_*` variables
    /// (nested keys with `__`, as in `TRACKLOG_INGEST__DURABILITY=os`), flags.
    pub fn load(file: Option<&Path>, overrides: &ConfigOverrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError(format!(
                    "the config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        let figment = figment
            .merge(
                Env::prefixed("TRACKLOG_")
                    .split("__")
                    .filter(|key| key.as_str() != "config"),
            )
            .merge(Serialized::defaults(overrides));
        let config: Config = figment.extract().map_err(|e| ConfigError(describe(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ingest = &self.ingest;
        let positive = [
            ("ingest.commit_max_items", ingest.commit_max_items),
            ("ingest.queue_max_items", ingest.queue_max_items),
            ("ingest.max_body_bytes", ingest.max_body_bytes),
            ("ingest.max_batch_items", ingest.max_batch_items),
            ("ingest.max_field_bytes", ingest.max_field_bytes),
            ("ingest.max_item_bytes", ingest.max_item_bytes),
            (
                "storage.read_connections",
                self.storage.read_connections as usize,
            ),
            ("ui.session_hours", self.ui.session_hours as usize),
            (
                "retention.interval_seconds",
                self.retention.interval_seconds as usize,
            ),
            (
                "audit.split_threshold_bytes",
                self.audit.split_threshold_bytes,
            ),
            ("audit.retention_days", self.audit.retention_days as usize),
            (
                "audit.purge_interval_seconds",
                self.audit.purge_interval_seconds as usize,
            ),
            (
                "audit.checkpoint_every_records",
                self.audit.checkpoint_every_records as usize,
            ),
            (
                "audit.checkpoint_every_seconds",
                self.audit.checkpoint_every_seconds as usize,
            ),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError(format!("{key} must be greater than 0")));
        }
        if ingest.queue_max_items > u32::MAX as usize {
            return Err(ConfigError(format!(
                "ingest.queue_max_items must be at most {}",
                u32::MAX
            )));
        }
        for (i, forwarder) in self.audit.forwarders.iter().enumerate() {
            let key = format!("audit.forwarders[{i}]");
            let needs = match forwarder.kind {
                ForwarderKind::Syslog => ("address", forwarder.address.is_some()),
                ForwarderKind::Webhook => ("url", forwarder.url.is_some()),
            };
            if !needs.1 {
                return Err(ConfigError(format!("{key}.{} is required", needs.0)));
            }
            if forwarder.tls && forwarder.tls_ca_file.is_none() {
                return Err(ConfigError(format!(
                    "{key}.tls_ca_file is required with tls = true"
                )));
            }
            if forwarder.kind == ForwarderKind::Webhook && forwarder.secret.is_none() {
                return Err(ConfigError(format!("{key}.secret is required")));
            }
            if forwarder.batch == 0 || forwarder.name.is_empty() {
                return Err(ConfigError(format!(
                    "{key}.name and {key}.batch must not be empty"
                )));
            }
        }
        if self.audit.split_threshold_bytes < 256 {
            return Err(ConfigError(
                "audit.split_threshold_bytes must be at least 256".into(),
            ));
        }
        if ingest.commit_linger_ms > 1_000 {
            return Err(ConfigError(
                "ingest.commit_linger_ms must be at most 1000".into(),
            ));
        }
        let ancestors = &self.ui.embed_frame_ancestors;
        if ancestors.trim().is_empty()
            || ancestors
                .chars()
                .any(|c| c.is_control() || c == ';' || c == ',')
        {
            return Err(ConfigError(
                "ui.embed_frame_ancestors must be a space-separated list of sources, such as 'self' https://crm.example.com".into(),
            ));
        }
        Ok(())
    }

    /// The ingestion limits.
    pub fn limits(&self) -> Limits {
        Limits {
            max_body_bytes: self.ingest.max_body_bytes,
            max_batch_items: self.ingest.max_batch_items,
            max_field_bytes: self.ingest.max_field_bytes,
            max_item_bytes: self.ingest.max_item_bytes,
        }
    }

    /// The embedded store's options.
    pub fn sqlite_options(&self) -> SqliteOptions {
        SqliteOptions {
            durability: self.ingest.durability,
            batch_max_items: self.ingest.commit_max_items,
            batch_linger: Duration::from_millis(self.ingest.commit_linger_ms),
            queue_max_items: self.ingest.queue_max_items,
            read_connections: self.storage.read_connections,
            busy_timeout: Duration::from_millis(self.storage.busy_timeout_ms),
            wal_autocheckpoint_pages: self.storage.wal_autocheckpoint_pages,
            checkpoint_interval: Duration::from_millis(self.storage.checkpoint_interval_ms.max(10)),
            audit_split_threshold_bytes: self.audit.split_threshold_bytes,
            audit_compress_after_records: self.audit.compress_after_records,
            log: LogOptions {
                durability: self.ingest.durability,
                queue_max_items: self.ingest.queue_max_items,
                max_bytes: self.ingest.log_max_bytes,
                segment_bytes: self.ingest.log_segment_bytes.max(4096),
                min_free_bytes: self.ingest.log_min_free_bytes,
                ..LogOptions::default()
            },
            settle_timeout: Duration::from_millis(self.ingest.read_your_writes_ms.max(1)),
            check_at_start: self.storage.check_at_start,
            ..SqliteOptions::default()
        }
    }
}

/// Figment's error, phrased around the key at fault.
fn describe(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let source = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            let kind = e.kind.to_string();
            if key.is_empty() {
                format!("{kind}{source}")
            } else {
                format!("key `{key}`: {kind}{source}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
// figment's Jail API returns its own large error type; that is its design.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn defaults_run_out_of_the_box() {
        Jail::expect_with(|_| {
            let config = Config::load(None, &ConfigOverrides::default()).unwrap();
            assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
            assert_eq!(config.data_dir, PathBuf::from("./tracklog-data"));
            assert_eq!(config.ingest.durability, Durability::Fsync);
            Ok(())
        });
    }

    #[test]
    fn layers_override_in_order() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "tracklog.toml",
                "listen = \"127.0.0.1:9000\"\ndata_dir = \"/from-file\"\n[ingest]\ndurability = \"os\"\n",
            )?;
            jail.set_env("TRACKLOG_DATA_DIR", "/from-env");
            let overrides = ConfigOverrides {
                listen: Some("127.0.0.1:9100".into()),
                ..ConfigOverrides::default()
            };
            let config = Config::load(Some(Path::new("tracklog.toml")), &overrides).unwrap();
            assert_eq!(config.listen.to_string(), "127.0.0.1:9100");
            assert_eq!(config.data_dir, PathBuf::from("/from-env"));
            assert_eq!(config.ingest.durability, Durability::Os);
            Ok(())
        });
    }

    #[test]
    fn forwarders_need_their_destination() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "t.toml",
                "[[audit.forwarders]]\nname = \"siem\"\nkind = \"syslog\"\ntls = true\naddress = \"h:1\"\n",
            )?;
            let error =
                Config::load(Some(Path::new("t.toml")), &ConfigOverrides::default()).unwrap_err();
            assert!(
                error
                    .to_string()
                    .contains("audit.forwarders[0].tls_ca_file"),
                "{error}"
            );
            jail.create_file(
                "w.toml",
                "[[audit.forwarders]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://x\"\n",
            )?;
            let error =
                Config::load(Some(Path::new("w.toml")), &ConfigOverrides::default()).unwrap_err();
            assert!(
                error.to_string().contains("audit.forwarders[0].secret"),
                "{error}"
            );
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_their_key() {
        Jail::expect_with(|jail| {
            jail.set_env("TRACKLOG_LISTEN", "not-an-address");
            let error = Config::load(None, &ConfigOverrides::default()).unwrap_err();
            assert!(error.to_string().contains("listen"), "{error}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.create_file("t.toml", "[ingest]\ndurabilty = \"os\"\n")?;
            let error =
                Config::load(Some(Path::new("t.toml")), &ConfigOverrides::default()).unwrap_err();
            assert!(error.to_string().contains("durabilty"), "{error}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("TRACKLOG_INGEST__MAX_BATCH_ITEMS", "0");
            let error = Config::load(None, &ConfigOverrides::default()).unwrap_err();
            assert!(
                error.to_string().contains("ingest.max_batch_items"),
                "{error}"
            );
            Ok(())
        });
    }
}
