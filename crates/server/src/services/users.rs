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
use tracklog_store::{StoreError, Stores, User, UserChange};

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

/// Adds a user to the org; the name must be free in every org.
pub async fn add(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    name: UserName,
    role: Role,
    password: String,
) -> Result<User, UserError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(UserError::WeakPassword);
    }
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| UserError::Hash(e.to_string()))?
        .map_err(UserError::Hash)?;
    let user = User {
        org,
        name,
        role,
        password_hash: hash,
        created_at: UtcMillis::now(),
        disabled: false,
        last_sign_in: None,
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

/// Why a change to a user was refused.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("the password must have at least {MIN_PASSWORD_CHARS} characters")]
    WeakPassword,
    #[error("user {0} was not found")]
    NotFound(String),
    /// The org would be left without an enabled admin, and so without
    /// anyone who can manage it from the web UI.
    #[error("{0} is the org's last enabled admin; make another admin first")]
    LastAdmin(String),
    /// A form or request field that cannot be used, said in words.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Hash(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for UserError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(what) => UserError::NotFound(what),
            other => UserError::Store(other),
        }
    }
}

/// What an admin changes about a user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserUpdate {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
}

async fn existing(stores: &Stores, org: OrgId, name: &UserName) -> Result<User, UserError> {
    stores
        .meta
        .user(name)
        .await?
        .filter(|u| u.org == org)
        .ok_or_else(|| UserError::NotFound(name.to_string()))
}

/// Refuses a change that leaves the org without an enabled admin.
async fn keep_an_admin(stores: &Stores, org: OrgId, user: &User) -> Result<(), UserError> {
    if user.role != Role::Admin || user.disabled {
        return Ok(());
    }
    let admins = stores
        .meta
        .list_users(org)
        .await?
        .into_iter()
        .filter(|u| u.role == Role::Admin && !u.disabled)
        .count();
    if admins <= 1 {
        return Err(UserError::LastAdmin(user.name.to_string()));
    }
    Ok(())
}

/// Changes a user's role or switches them off or on. Disabling ends every
/// session of theirs at once. Each change is audited.
pub async fn update(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    name: &UserName,
    update: UserUpdate,
) -> Result<User, UserError> {
    let before = existing(stores, org, name).await?;
    let demoted = update.role.is_some_and(|r| r != Role::Admin);
    if demoted || update.disabled == Some(true) {
        keep_an_admin(stores, org, &before).await?;
    }
    let after = stores
        .meta
        .update_user(
            org,
            name,
            UserChange {
                role: update.role,
                disabled: update.disabled,
                password_hash: None,
            },
        )
        .await?;
    if after.role != before.role {
        record(
            stores,
            org,
            actor,
            "ChangeUserRole",
            name,
            json!({
                "role": {"old": before.role.as_str(), "new": after.role.as_str()}
            }),
        )
        .await;
    }
    if after.disabled != before.disabled {
        let operation = if after.disabled {
            "DisableUser"
        } else {
            "EnableUser"
        };
        record(
            stores,
            org,
            actor,
            operation,
            name,
            json!({
                "disabled": {"old": before.disabled, "new": after.disabled}
            }),
        )
        .await;
    }
    Ok(after)
}

/// Sets a new password, or generates one when none is given, and ends
/// every session of the user. Returns the generated password.
pub async fn reset_password(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    name: &UserName,
    password: Option<String>,
) -> Result<Option<String>, UserError> {
    existing(stores, org, name).await?;
    let (password, generated) = match password {
        Some(password) => (password, false),
        None => (generate_password(), true),
    };
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(UserError::WeakPassword);
    }
    let hash = tokio::task::spawn_blocking({
        let password = password.clone();
        move || hash_password(&password)
    })
    .await
    .map_err(|e| UserError::Hash(e.to_string()))?
    .map_err(UserError::Hash)?;
    stores
        .meta
        .update_user(
            org,
            name,
            UserChange {
                password_hash: Some(hash),
                ..UserChange::default()
            },
        )
        .await?;
    record(
        stores,
        org,
        actor,
        "ResetUserPassword",
        name,
        json!({"generated": generated}),
    )
    .await;
    Ok(generated.then_some(password))
}

/// Removes a user; their sessions end at once.
pub async fn remove(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    name: &UserName,
) -> Result<(), UserError> {
    let user = existing(stores, org, name).await?;
    keep_an_admin(stores, org, &user).await?;
    stores.meta.delete_user(org, name).await?;
    record(
        stores,
        org,
        actor,
        "DeleteUser",
        name,
        json!({"role": user.role.as_str()}),
    )
    .await;
    Ok(())
}

/// A random password of 20 characters from an unambiguous alphabet.
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| {
            let index = rand::Rng::random_range(&mut rng, 0..ALPHABET.len());
            ALPHABET[index] as char
        })
        .collect()
}

async fn record(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    operation: &'static str,
    name: &UserName,
    fields: serde_json::Value,
) {
    selfaudit::record(
        stores,
        org,
        actor,
        Action {
            operation,
            entity_name: "user",
            entity_id: name.as_str(),
            success: true,
            fields: Some(fields),
        },
    )
    .await;
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

    #[test]
    fn generated_passwords_are_long_enough_and_differ() {
        let a = generate_password();
        assert!(a.chars().count() >= MIN_PASSWORD_CHARS);
        assert_ne!(a, generate_password());
    }
}
