//! Credentials: rights, Azure shared access signatures and Basic credentials.
//!
//! The SAS algorithm is Azure's, as published for Event Hubs: the signature is
//! base64 of HMAC-SHA256, keyed by the bytes of the key *string*, over
//! `sr + "\n" + se`, where `sr` is the URL-encoded resource exactly as it appears
//! in the token. Tokens from Python's helpers (`%3A`) and .NET's (`%3a`) both
//! verify, because the signed text is never re-encoded here.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::ids::PolicyName;

type HmacSha256 = Hmac<Sha256>;

/// One right of an access policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Right {
    /// Administer the org: policies, portals, settings. Implies write and read.
    Manage,
    /// Send events (Event Hubs' "Send").
    Write,
    /// Query data (Event Hubs' "Listen").
    Read,
}

impl Right {
    /// The right's name in the API and CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Right::Manage => "manage",
            Right::Write => "write",
            Right::Read => "read",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Right::Manage => 1,
            Right::Write => 2,
            Right::Read => 4,
        }
    }
}

impl std::str::FromStr for Right {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "manage" => Ok(Right::Manage),
            "write" | "send" => Ok(Right::Write),
            "read" | "listen" => Ok(Right::Read),
            other => Err(format!(
                "unknown right {other:?}: expected manage, write or read"
            )),
        }
    }
}

/// The set of rights a policy holds.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rights(u8);

impl FromIterator<Right> for Rights {
    fn from_iter<I: IntoIterator<Item = Right>>(rights: I) -> Self {
        Self(rights.into_iter().fold(0, |acc, r| acc | r.bit()))
    }
}

impl Rights {
    /// Whether the set grants `right`; `manage` implies `write` and `read`.
    pub fn allows(self, right: Right) -> bool {
        self.0 & Right::Manage.bit() != 0 || self.0 & right.bit() != 0
    }

    /// The rights as stored: a small bit mask.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// Rebuilds a set from [`Rights::bits`], ignoring unknown bits.
    pub fn from_bits(bits: u8) -> Self {
        Self(bits & 0b111)
    }

    /// The members, in the order manage, write, read.
    pub fn to_vec(self) -> Vec<Right> {
        [Right::Manage, Right::Write, Right::Read]
            .into_iter()
            .filter(|r| self.0 & r.bit() != 0)
            .collect()
    }

    /// Parses `manage,write,read`.
    pub fn parse_list(text: &str) -> Result<Self, String> {
        let rights = text
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(str::parse)
            .collect::<Result<Vec<Right>, _>>()?;
        if rights.is_empty() {
            return Err("at least one right is needed: manage, write or read".into());
        }
        Ok(rights.into_iter().collect())
    }
}

impl fmt::Debug for Rights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.to_vec().iter().map(|r| r.as_str()))
            .finish()
    }
}

/// A policy key: the base64 text of 32 random bytes. Never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct PolicyKey(String);

impl PolicyKey {
    /// Builds a key from 32 random bytes.
    pub fn from_random_bytes(bytes: [u8; 32]) -> Self {
        Self(BASE64.encode(bytes))
    }

    /// Wraps a stored key.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    /// The key text, for signing and for showing once to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares with a presented key in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

impl fmt::Debug for PolicyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PolicyKey(<redacted>)")
    }
}

/// Why a credential was not accepted. Every variant ends in 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("the Authorization header is not a SharedAccessSignature or Basic credential")]
    UnknownScheme,
    #[error("the SAS token is malformed: {0}")]
    MalformedSas(&'static str),
    #[error("the Basic credential is malformed")]
    MalformedBasic,
}

/// Characters escaped in a SAS `sr` or `sig` value; Python's `quote_plus` escapes
/// all of these and .NET's `UrlEncode` the same set.
const SAS_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A parsed `SharedAccessSignature` token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SasToken {
    /// `sr` exactly as it appears in the token (URL-encoded); this is what is signed.
    pub resource_raw: String,
    /// `sig`, URL-decoded: the base64 text of the signature.
    pub signature: String,
    /// `se`: expiry in Unix seconds.
    pub expiry: i64,
    /// `skn`: the policy name.
    pub key_name: String,
}

impl SasToken {
    /// Parses the part of an `Authorization` header after `SharedAccessSignature `.
    pub fn parse(text: &str) -> Result<Self, CredentialError> {
        let (mut sr, mut sig, mut se, mut skn) = (None, None, None, None);
        for pair in text.trim().split('&') {
            let (key, value) = pair
                .split_once('=')
                .ok_or(CredentialError::MalformedSas("a field without '='"))?;
            let slot = match key {
                "sr" => &mut sr,
                "sig" => &mut sig,
                "se" => &mut se,
                "skn" => &mut skn,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(CredentialError::MalformedSas("a field appears twice"));
            }
        }
        let resource_raw = sr.ok_or(CredentialError::MalformedSas("sr is missing"))?;
        let signature = sig.ok_or(CredentialError::MalformedSas("sig is missing"))?;
        let expiry = se.ok_or(CredentialError::MalformedSas("se is missing"))?;
        let key_name = skn.ok_or(CredentialError::MalformedSas("skn is missing"))?;
        let signature = percent_decode_str(signature)
            .decode_utf8()
            .map_err(|_| CredentialError::MalformedSas("sig is not UTF-8"))?
            .into_owned();
        let key_name = percent_decode_str(key_name)
            .decode_utf8()
            .map_err(|_| CredentialError::MalformedSas("skn is not UTF-8"))?
            .into_owned();
        let expiry = expiry
            .parse::<i64>()
            .map_err(|_| CredentialError::MalformedSas("se is not a number"))?;
        Ok(Self {
            resource_raw: resource_raw.to_owned(),
            signature,
            expiry,
            key_name,
        })
    }

    /// Whether the signature was made with `key`. Constant time in the signature.
    pub fn signed_with(&self, key: &PolicyKey) -> bool {
        let Ok(presented) = BASE64.decode(self.signature.as_bytes()) else {
            return false;
        };
        let mut mac = mac_for(key.expose());
        mac.update(self.resource_raw.as_bytes());
        mac.update(b"\n");
        mac.update(self.expiry.to_string().as_bytes());
        mac.verify_slice(&presented).is_ok()
    }

    /// Whether the token has expired at `now_unix_seconds`.
    pub fn expired_at(&self, now_unix_seconds: i64) -> bool {
        self.expiry <= now_unix_seconds
    }

    /// The resource, URL-decoded.
    pub fn resource(&self) -> String {
        percent_decode_str(&self.resource_raw.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    }

    /// Whether the request path falls under the token's resource. The resource
    /// may be a full URI (`https://host/api/v1`) or a path; only the path is
    /// compared, case-insensitively and on segment boundaries.
    pub fn covers_path(&self, request_path: &str) -> bool {
        resource_covers(&self.resource(), request_path)
    }
}

fn mac_for(key: &str) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    HmacSha256::new_from_slice(key.as_bytes()).expect("HMAC takes any key length")
}

/// The path part of a resource URI: what follows `scheme://host[:port]`.
fn resource_path(resource: &str) -> &str {
    match resource.find("://") {
        Some(scheme_end) => {
            let after = &resource[scheme_end + 3..];
            after.find('/').map_or("", |slash| &after[slash..])
        }
        None => resource,
    }
}

fn resource_covers(resource: &str, request_path: &str) -> bool {
    let prefix = resource_path(resource)
        .trim_end_matches('/')
        .to_ascii_lowercase();
    let path = request_path.to_ascii_lowercase();
    if prefix.is_empty() {
        return true;
    }
    path == prefix
        || (path.starts_with(&prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// Makes a SAS token with Azure's algorithm: `resource_uri` is URL-encoded,
/// signed with `key` and expires at `expiry_unix_seconds`.
pub fn make_sas_token(
    resource_uri: &str,
    policy: &PolicyName,
    key: &PolicyKey,
    expiry_unix_seconds: i64,
) -> String {
    let encoded = utf8_percent_encode(resource_uri, SAS_ESCAPE).to_string();
    let mut mac = mac_for(key.expose());
    mac.update(encoded.as_bytes());
    mac.update(b"\n");
    mac.update(expiry_unix_seconds.to_string().as_bytes());
    let signature = BASE64.encode(mac.finalize().into_bytes());
    format!(
        "SharedAccessSignature sr={encoded}&sig={}&se={expiry_unix_seconds}&skn={policy}",
        utf8_percent_encode(&signature, SAS_ESCAPE)
    )
}

/// A credential as presented in an `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Sas(SasToken),
    /// `Basic base64(policy:key)`.
    Basic {
        policy: String,
        key: String,
    },
}

impl Credential {
    /// Parses an `Authorization` header value.
    pub fn parse(header: &str) -> Result<Self, CredentialError> {
        let header = header.trim();
        if let Some(rest) = strip_prefix_ignore_case(header, "SharedAccessSignature ") {
            return SasToken::parse(rest).map(Credential::Sas);
        }
        if let Some(rest) = strip_prefix_ignore_case(header, "Basic ") {
            let decoded = BASE64
                .decode(rest.trim())
                .map_err(|_| CredentialError::MalformedBasic)?;
            let text = String::from_utf8(decoded).map_err(|_| CredentialError::MalformedBasic)?;
            let (user, password) = text
                .rsplit_once(':')
                .ok_or(CredentialError::MalformedBasic)?;
            // A Segment write key `<policy>:<key>` arrives as the user name with an
            // empty password, so the user name itself holds `policy:key`.
            let (policy, key) = if password.is_empty() {
                user.split_once(':')
                    .ok_or(CredentialError::MalformedBasic)?
            } else {
                (user, password)
            };
            return Ok(Credential::Basic {
                policy: policy.to_owned(),
                key: key.to_owned(),
            });
        }
        Err(CredentialError::UnknownScheme)
    }

    /// The policy the credential names.
    pub fn policy_name(&self) -> &str {
        match self {
            Credential::Sas(token) => &token.key_name,
            Credential::Basic { policy, .. } => policy,
        }
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(text: &str) -> PolicyKey {
        PolicyKey::from_stored(text.to_owned())
    }

    fn policy(name: &str) -> PolicyName {
        PolicyName::parse(name).unwrap()
    }

    /// Signs `sr` exactly as given, the way Azure's helpers do once they have
    /// URL-encoded the resource themselves.
    fn sign_raw(sr: &str, expiry: i64, key_text: &str) -> String {
        let mut mac = mac_for(key_text);
        mac.update(format!("{sr}\n{expiry}").as_bytes());
        BASE64.encode(mac.finalize().into_bytes())
    }

    #[test]
    fn known_vector_from_azure_algorithm() {
        // Computed independently with Python:
        // hmac.new(b"secret", b"http%3A%2F%2Fexample.com%2Fapi\n1700000000", sha256)
        let token = SasToken::parse(&format!(
            "sr=http%3A%2F%2Fexample.com%2Fapi&sig={}&se=1700000000&skn=p",
            utf8_percent_encode(
                &sign_raw("http%3A%2F%2Fexample.com%2Fapi", 1_700_000_000, "secret"),
                SAS_ESCAPE
            )
        ))
        .unwrap();
        assert!(token.signed_with(&key("secret")));
        assert!(!token.signed_with(&key("Secret")));
        assert_eq!(token.resource(), "http://example.com/api");
    }

    #[test]
    fn lowercase_escapes_verify_over_the_raw_text() {
        let sr = "http%3a%2f%2fexample.com%2fapi";
        let sig = sign_raw(sr, 42, "k");
        let token = SasToken::parse(&format!(
            "sr={sr}&sig={}&se=42&skn=p",
            sig.replace('+', "%2b")
                .replace('/', "%2f")
                .replace('=', "%3d")
        ))
        .unwrap();
        assert!(token.signed_with(&key("k")));
        assert!(token.covers_path("/api/v1/interactions"));
    }

    #[test]
    fn covers_on_segment_boundaries() {
        assert!(resource_covers(
            "http://h:8080/api/v1",
            "/api/v1/interactions"
        ));
        assert!(resource_covers("http://h:8080/api/v1/", "/api/v1"));
        assert!(!resource_covers("http://h/api/v1", "/api/v10"));
        assert!(!resource_covers(
            "http://h/api/v1/policies",
            "/api/v1/interactions"
        ));
        assert!(resource_covers("https://h", "/anything"));
        assert!(resource_covers("/API/V1", "/api/v1/x"));
    }

    #[test]
    fn parse_refuses_missing_and_repeated_fields() {
        assert!(SasToken::parse("sr=a&sig=b&se=1").is_err());
        assert!(SasToken::parse("sr=a&sig=b&se=x&skn=p").is_err());
        assert!(SasToken::parse("sr=a&sr=b&sig=b&se=1&skn=p").is_err());
        assert!(SasToken::parse("garbage").is_err());
    }

    #[test]
    fn basic_and_segment_write_keys() {
        let basic = format!("Basic {}", BASE64.encode("ops:abc="));
        assert_eq!(
            Credential::parse(&basic).unwrap(),
            Credential::Basic {
                policy: "ops".into(),
                key: "abc=".into()
            }
        );
        let segment = format!("Basic {}", BASE64.encode("ops:abc=:"));
        assert_eq!(
            Credential::parse(&segment).unwrap(),
            Credential::Basic {
                policy: "ops".into(),
                key: "abc=".into()
            }
        );
        assert_eq!(
            Credential::parse("Bearer x"),
            Err(CredentialError::UnknownScheme)
        );
    }

    #[test]
    fn manage_implies_the_others() {
        let manage: Rights = [Right::Manage].into_iter().collect();
        assert!(manage.allows(Right::Read) && manage.allows(Right::Write));
        let read = Rights::parse_list("read").unwrap();
        assert!(read.allows(Right::Read) && !read.allows(Right::Write));
        assert!(Rights::parse_list("").is_err());
        assert!(Rights::parse_list("read,admin").is_err());
        assert_eq!(Rights::from_bits(read.bits()), read);
    }

    #[test]
    fn keys_do_not_print() {
        assert_eq!(format!("{:?}", key("top-secret")), "PolicyKey(<redacted>)");
    }

    proptest! {
        #[test]
        fn minted_tokens_verify_and_cover_their_resource(
            key_bytes in any::<[u8; 32]>(),
            segments in proptest::collection::vec("[a-zA-Z0-9_ .~-]{1,12}", 0..4),
            expiry in 1i64..4_000_000_000,
        ) {
            let key = PolicyKey::from_random_bytes(key_bytes);
            let path = format!("/{}", segments.join("/"));
            let uri = format!("http://127.0.0.1:8080{path}");
            let header = make_sas_token(&uri, &policy("p"), &key, expiry);
            let Credential::Sas(token) = Credential::parse(&header).unwrap() else {
                panic!("not a SAS token");
            };
            prop_assert!(token.signed_with(&key));
            prop_assert!(token.covers_path(&path));
            prop_assert_eq!(token.expired_at(expiry), true);
            prop_assert_eq!(token.expired_at(expiry - 1), false);
        }

        #[test]
        fn any_other_key_or_tampered_field_fails(
            key_bytes in any::<[u8; 32]>(),
            other_bytes in any::<[u8; 32]>(),
            expiry in 1i64..4_000_000_000,
            flip in 0usize..43,
        ) {
            prop_assume!(key_bytes != other_bytes);
            let key = PolicyKey::from_random_bytes(key_bytes);
            let header = make_sas_token("http://h/api/v1", &policy("p"), &key, expiry);
            let Credential::Sas(token) = Credential::parse(&header).unwrap() else {
                panic!("not a SAS token");
            };
            prop_assert!(!token.signed_with(&PolicyKey::from_random_bytes(other_bytes)));

            let mut later = token.clone();
            later.expiry += 1;
            prop_assert!(!later.signed_with(&key));

            let mut moved = token.clone();
            moved.resource_raw.push_str("%2Fother");
            prop_assert!(!moved.signed_with(&key));

            let mut forged = token.clone();
            let mut sig = forged.signature.into_bytes();
            let index = flip % sig.len();
            sig[index] = if sig[index] == b'A' { b'B' } else { b'A' };
            forged.signature = String::from_utf8(sig).unwrap();
            prop_assert!(!forged.signed_with(&key));
        }

        #[test]
        fn parser_never_panics(text in ".{0,200}") {
            let _ = Credential::parse(&text);
            let _ = SasToken::parse(&text);
        }
    }
}
