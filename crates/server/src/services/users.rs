//! People: adding users, hashing and checking passwords.
//!
//! Passwords are hashed with argon2id (the `argon2` crate's defaults, which
//! follow OWASP's recommendation). Hashing is slow on purpose, so it runs on
//! the blocking pool.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde_json::json;
use tracklog_domain::ids::{OrgId, UserName};
use tracklog_domain::time::UtcMillis;
use tracklog_domain::user::Role;
use tracklog_store::{StoreError, Stores, User};

use super::selfaudit::{self, Action, Actor};

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// Hashes a password with argon2id and a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt_bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut salt_bytes);
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| format!("salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| format!("could not hash the password: {e}"))
}

/// Checks a password against a stored hash.
pub fn verify_password(password: &str, stored_hash: &str) -> bool {
    PasswordHash::new(stored_hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash of a random password, checked against when the user does not exist so
/// that a wrong user name takes as long as a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password that never matches").unwrap_or_default())
}

/// Why a user could not be added.
#[derive(Debug, thiserror::Error)]
pub enum AddUserError {
    #[error("the password must have at least {MIN_PASSWORD_CHARS} characters")]
    WeakPassword,
    #[error("{0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub async fn add(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    name: UserName,
    role: Role,
    password: String,
) -> Result<User, AddUserError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AddUserError::WeakPassword);
    }
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| AddUserError::Hash(e.to_string()))?
        .map_err(AddUserError::Hash)?;
    let user = User {
        org,
        name,
        role,
        password_hash: hash,
        created_at: UtcMillis::now(),
    };
    let result = stores.meta.create_user(user.clone()).await;
    selfaudit::record(
        stores,
        org,
        actor,
        Action {
            operation: "CreateUser",
            entity_name: "user",
            entity_id: user.name.as_str(),
            success: result.is_ok(),
            fields: Some(json!({ "role": role.as_str() })),
        },
    )
    .await;
    result?;
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterY", &hash));
        assert!(!verify_password("x", "not a hash"));
    }
}
