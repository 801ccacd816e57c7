//! # tracklog-config
//!
//! Typed configuration: defaults, then an optional TOML file, then `TRACKLOG_`
//! environment variables, then command-line flags, each overriding the last.
//!
//! Unknown keys and bad values are refused at start-up with a message that
//! names the key, so a typo never silently falls back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use tracklog_domain::ingest::Limits;

mod sections;
pub use sections::*;

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
        Self::extract(figment)
    }

    /// A configuration file's text over the defaults, without the
    /// environment or flags: what `load` makes of the file alone.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Self::extract(
            Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(text)),
        )
    }

    fn extract(figment: Figment) -> Result<Self, ConfigError> {
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
                "ui.sign_in.failures_per_user",
                self.ui.sign_in.failures_per_user as usize,
            ),
            (
                "ui.sign_in.failures_per_address",
                self.ui.sign_in.failures_per_address as usize,
            ),
            (
                "ui.sign_in.window_seconds",
                self.ui.sign_in.window_seconds as usize,
            ),
            (
                "ui.sign_in.lockout_seconds",
                self.ui.sign_in.lockout_seconds as usize,
            ),
            ("ui.sign_in.max_tracked", self.ui.sign_in.max_tracked),
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
            // Each name keys saved cursors (`NAME` and `NAME/checkpoints`).
            if forwarder.name.contains('/') {
                return Err(ConfigError(format!("{key}.name must not contain '/'")));
            }
            let same = self.audit.forwarders[..i]
                .iter()
                .any(|other| other.name == forwarder.name);
            if same {
                return Err(ConfigError(format!(
                    "{key}.name {:?} is used by another forwarder; each keeps its own position",
                    forwarder.name
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
    use tracklog_domain::ingest::Durability;

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
