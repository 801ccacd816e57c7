//! The sections of the configuration, one struct per TOML table, each with
//! its defaults.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tracklog_domain::ingest::{Durability, Limits};

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
        // The store's own defaults; the server's tests check that they agree.
        let limits = Limits::default();
        Self {
            durability: Durability::Fsync,
            commit_max_items: 20_000,
            commit_linger_ms: 1,
            queue_max_items: 200_000,
            max_body_bytes: limits.max_body_bytes,
            max_batch_items: limits.max_batch_items,
            max_field_bytes: limits.max_field_bytes,
            max_item_bytes: limits.max_item_bytes,
            log_max_bytes: 2 << 30,
            log_segment_bytes: 64 << 20,
            log_min_free_bytes: 256 << 20,
            read_your_writes_ms: 10_000,
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
        Self {
            read_connections: 4,
            busy_timeout_ms: 5_000,
            wal_autocheckpoint_pages: 131_072,
            checkpoint_interval_ms: 500,
            check_at_start: true,
        }
    }
}

/// Limits at the HTTP edge (the server's listener).
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
    /// Limits on failed sign-ins (the web UI's sign-in throttle).
    pub sign_in: SignInLimits,
}

/// How many failed sign-ins lock a user name or a client address out, and
/// for how long. A locked-out attempt is answered 429 with Retry-After and
/// its password is not even checked; each lockout is recorded in the
/// activity log as `SignInLockedOut`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignInLimits {
    /// Failed sign-ins to one user name within `window_seconds`.
    pub failures_per_user: u32,
    /// Failed sign-ins from one client address (an IPv6 /64) within
    /// `window_seconds`, whatever user names they tried.
    pub failures_per_address: u32,
    /// The window the failures are counted in, from the first.
    pub window_seconds: u64,
    /// How long a lockout lasts.
    pub lockout_seconds: u64,
    /// User names and addresses remembered at once; past it the oldest
    /// are forgotten first.
    pub max_tracked: usize,
}

impl Default for SignInLimits {
    fn default() -> Self {
        Self {
            failures_per_user: 5,
            failures_per_address: 20,
            window_seconds: 900,
            lockout_seconds: 900,
            max_tracked: 100_000,
        }
    }
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            session_hours: 12,
            secure_cookies: SecureCookies::Auto,
            embed_frame_ancestors: "'self'".into(),
            sign_in: SignInLimits::default(),
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
    /// The checkpoint signing key's file (a 32-byte Ed25519 seed, raw or
    /// base64), kept outside the data directory so that someone who can
    /// write the data directory cannot re-sign a rewritten log. Absent:
    /// `audit-signing.key` in the data directory, created at first start.
    pub signing_key_file: Option<PathBuf>,
    /// The key itself, base64, usually from `TRACKLOG_AUDIT__SIGNING_KEY`
    /// (a secret store's injection); it wins over `signing_key_file`.
    pub signing_key: Option<Secret>,
    /// Every signed checkpoint is appended to this file as one JSON line,
    /// and synced: a record kept outside the data directory (make it
    /// append-only, `chattr +a`, or on another machine's mount) for
    /// `tracklog audit verify --checkpoints`.
    pub checkpoint_file: Option<PathBuf>,
}

/// A secret from the configuration: never printed, not even by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(redacted)")
    }
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
            signing_key_file: None,
            signing_key: None,
            checkpoint_file: None,
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
