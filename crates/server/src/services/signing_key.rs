//! The Ed25519 key that signs the activity log's checkpoints: where it is
//! read from, and how a new one is made.
//!
//! A key kept in the data directory proves only that nobody changed the log
//! without also having the data directory, which an insider with the disk
//! has. So the key can come from elsewhere, in this order of precedence:
//!
//! 1. `audit.signing_key`, base64, usually injected as the environment
//!    variable `TRACKLOG_AUDIT__SIGNING_KEY` by a secret store;
//! 2. `audit.signing_key_file`, a file outside the data directory (raw 32
//!    bytes or base64), made with `tracklog audit keygen --out FILE`;
//! 3. `audit-signing.key` in the data directory, created at the first start.
//!
//! An external key that cannot be read stops the server: falling back to a
//! data-directory key would sign with a key the auditors do not hold.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;

use crate::config::Config;

/// The file in the data directory holding the checkpoint signing key when
/// no external one is configured.
pub const KEY_FILE: &str = "audit-signing.key";

/// Where the signing key in use came from, for logs and `doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `audit.signing_key` (typically the environment).
    Configured,
    /// `audit.signing_key_file`.
    File(std::path::PathBuf),
    /// `audit-signing.key` in the data directory.
    DataDirectory,
}

impl KeySource {
    /// Whether the key lives where the log lives.
    pub fn is_in_data_directory(&self) -> bool {
        matches!(self, Self::DataDirectory)
    }
}

/// Loads the key the configuration names, creating the data directory's own
/// key only when no external key is configured: what the server does.
pub fn load_key(config: &Config) -> anyhow::Result<(SigningKey, KeySource)> {
    resolve(config, true)
}

/// [`load_key`] for commands that check rather than sign: a missing key is
/// an error, never a new key to check against.
pub fn find_key(config: &Config) -> anyhow::Result<(SigningKey, KeySource)> {
    resolve(config, false)
}

fn resolve(config: &Config, create: bool) -> anyhow::Result<(SigningKey, KeySource)> {
    if let Some(secret) = &config.audit.signing_key {
        let key = decode_seed(secret.0.as_bytes())
            .context("audit.signing_key (TRACKLOG_AUDIT__SIGNING_KEY)")?;
        warn_if_shadowed(config);
        return Ok((key, KeySource::Configured));
    }
    if let Some(path) = &config.audit.signing_key_file {
        let bytes = std::fs::read(path).map_err(|error| {
            anyhow::anyhow!(
                "cannot read the audit signing key {}: {error}; make one with \
                 `tracklog audit keygen --out {}`",
                path.display(),
                path.display()
            )
        })?;
        let key = decode_seed(&bytes).with_context(|| path.display().to_string())?;
        warn_if_shadowed(config);
        return Ok((key, KeySource::File(path.clone())));
    }
    let path = config.data_dir.join(KEY_FILE);
    if !create && !path.exists() {
        bail!(
            "no audit signing key: {} does not exist and none is configured \
             (audit.signing_key_file, or TRACKLOG_AUDIT__SIGNING_KEY)",
            path.display()
        );
    }
    Ok((
        load_or_create_key(&config.data_dir)?,
        KeySource::DataDirectory,
    ))
}

/// The public key that checks an org's checkpoints, for commands that check
/// rather than sign. With no key anywhere and no checkpoint signed yet (a
/// data directory only the command line has written), nothing needs a key
/// and the chain alone is checked; with checkpoints, a missing key is an
/// error.
pub async fn verifying_key_for(
    config: &Config,
    stores: &tracklog_store::Stores,
    org: tracklog_domain::ids::OrgId,
) -> anyhow::Result<ed25519_dalek::VerifyingKey> {
    match find_key(config) {
        Ok((key, _)) => Ok(key.verifying_key()),
        Err(error) => {
            if stores.audit.latest_checkpoint(org).await?.is_some() {
                return Err(error);
            }
            // No signature will be checked under it.
            Ok(SigningKey::from_bytes(&[0; 32]).verifying_key())
        }
    }
}

/// A data-directory key beside an external one is left over from before the
/// external key was set; checkpoints it signed verify only under its own
/// public key.
fn warn_if_shadowed(config: &Config) {
    let leftover = config.data_dir.join(KEY_FILE);
    if leftover.exists() {
        tracing::warn!(
            path = %leftover.display(),
            "an audit signing key is still in the data directory, but the configured \
             external key signs; checkpoints signed before the switch verify only under \
             the old key's public key"
        );
    }
}

/// A seed given as 32 raw bytes or as base64 (surrounding whitespace allowed).
fn decode_seed(bytes: &[u8]) -> anyhow::Result<SigningKey> {
    if let Ok(seed) = <[u8; 32]>::try_from(bytes) {
        return Ok(SigningKey::from_bytes(&seed));
    }
    let text = std::str::from_utf8(bytes)
        .ok()
        .map(str::trim)
        .unwrap_or_default();
    let decoded = STANDARD.decode(text).ok();
    match decoded.as_deref().map(<[u8; 32]>::try_from) {
        Some(Ok(seed)) => Ok(SigningKey::from_bytes(&seed)),
        _ => bail!("not a 32-byte Ed25519 seed (raw, or base64)"),
    }
}

/// Loads the Ed25519 key in the data directory, creating it (mode 0600) at
/// the first start.
pub fn load_or_create_key(data_dir: &Path) -> anyhow::Result<SigningKey> {
    let path = data_dir.join(KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let seed: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| anyhow::anyhow!("{} is not a 32-byte Ed25519 seed", path.display()))?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir)?;
            match write_new_seed(&path) {
                Ok(key) => {
                    tracing::info!(path = %path.display(), "created the audit signing key");
                    Ok(key)
                }
                // Another process created it first: use theirs.
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                    load_or_create_key(data_dir)
                }
                Err(error) => Err(error.into()),
            }
        }
        Err(error) => Err(anyhow::anyhow!("cannot read {}: {error}", path.display())),
    }
}

/// Writes a new random key to `path` (which must not exist), as base64 with
/// a newline so that it survives copying through text tools, mode 0600.
pub fn generate_key_file(path: &Path) -> anyhow::Result<SigningKey> {
    let key = write_seed(path, true).map_err(|error| {
        anyhow::anyhow!("cannot create the key file {}: {error}", path.display())
    })?;
    Ok(key)
}

fn write_new_seed(path: &Path) -> std::io::Result<SigningKey> {
    write_seed(path, false)
}

fn write_seed(path: &Path, base64: bool) -> std::io::Result<SigningKey> {
    let seed: [u8; 32] = rand::random();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    if base64 {
        writeln!(file, "{}", STANDARD.encode(seed))?;
    } else {
        file.write_all(&seed)?;
    }
    file.sync_all()?;
    Ok(SigningKey::from_bytes(&seed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn config(dir: &Path) -> Config {
        Config {
            data_dir: dir.join("data"),
            ..Config::default()
        }
    }

    #[test]
    fn an_external_key_wins_and_the_data_directory_gets_none() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("signing.key");
        let made = generate_key_file(&file).unwrap();
        let mut config = config(dir.path());
        config.audit.signing_key_file = Some(file.clone());
        let (key, source) = load_key(&config).unwrap();
        assert_eq!(key.to_bytes(), made.to_bytes());
        assert_eq!(source, KeySource::File(file));
        assert!(!config.data_dir.join(KEY_FILE).exists());

        // The variable wins over the file.
        let other = SigningKey::from_bytes(&[7; 32]);
        config.audit.signing_key = Some(Secret(format!(" {}\n", STANDARD.encode([7; 32]))));
        let (key, source) = load_key(&config).unwrap();
        assert_eq!(key.to_bytes(), other.to_bytes());
        assert_eq!(source, KeySource::Configured);
    }

    #[test]
    fn a_missing_or_malformed_external_key_stops_rather_than_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        config.audit.signing_key_file = Some(dir.path().join("absent.key"));
        let error = load_key(&config).unwrap_err().to_string();
        assert!(error.contains("tracklog audit keygen --out"), "{error}");
        assert!(!config.data_dir.join(KEY_FILE).exists());

        std::fs::write(dir.path().join("short.key"), b"abc").unwrap();
        config.audit.signing_key_file = Some(dir.path().join("short.key"));
        assert!(load_key(&config).is_err());

        config.audit.signing_key = Some(Secret("not base64!".into()));
        let error = format!("{:#}", load_key(&config).unwrap_err());
        assert!(error.contains("TRACKLOG_AUDIT__SIGNING_KEY"), "{error}");
        assert!(!error.contains("not base64!"), "the secret is never echoed");
    }

    #[test]
    fn keygen_refuses_to_overwrite_and_writes_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k");
        generate_key_file(&file).unwrap();
        assert!(generate_key_file(&file).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0);
        }
    }

    #[test]
    fn without_configuration_the_data_directory_key_is_made_once() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let (first, source) = load_key(&config).unwrap();
        assert!(source.is_in_data_directory());
        let (second, _) = find_key(&config).unwrap();
        assert_eq!(first.to_bytes(), second.to_bytes());
    }

    #[test]
    fn checking_never_makes_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let error = find_key(&config).unwrap_err().to_string();
        assert!(error.contains("audit.signing_key_file"), "{error}");
        assert!(!config.data_dir.join(KEY_FILE).exists());
    }
}
