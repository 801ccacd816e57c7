//! Identifiers. Each is parsed once at the edge; inside Tracklog it cannot be
//! empty, over-long or contain control characters.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("longer than {max} characters")]
    TooLong { max: usize },
    #[error("contains a control character")]
    ControlCharacter,
    #[error("may contain only letters, digits, '-', '_' and '.'")]
    BadCharacter,
}

pub fn check_text(text: &str, max: usize) -> Result<(), IdError> {
    if text.is_empty() {
        return Err(IdError::Empty);
    }
    if text.chars().count() > max {
        return Err(IdError::TooLong { max });
    }
    if text.chars().any(char::is_control) {
        return Err(IdError::ControlCharacter);
    }
    Ok(())
}

fn check_name(text: &str, max: usize) -> Result<(), IdError> {
    check_text(text, max)?;
    if !text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(IdError::BadCharacter);
    }
    Ok(())
}

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $max:expr, $check:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The longest value accepted, in characters.
            pub const MAX_LEN: usize = $max;

            /// Parses and checks a value.
            pub fn parse(text: impl Into<String>) -> Result<Self, IdError> {
                let text = text.into();
                $check(&text, $max)?;
                Ok(Self(text))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(text: String) -> Result<Self, IdError> {
                Self::parse(text)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                id_schema(stringify!($check), $max)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

/// The schema of an identifier: exactly the text `check_text` or
/// `check_name` accepts, so the API document says what the server takes.
#[cfg(feature = "openapi")]
fn id_schema(check: &str, max: usize) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::ObjectBuilder;
    use utoipa::openapi::schema::Type;
    // `char::is_control` is Unicode's Cc: U+0000-U+001F and U+007F-U+009F.
    let (pattern, description) = match check {
        "check_name" => (
            format!("^[A-Za-z0-9._-]{{1,{max}}}$"),
            format!("1 to {max} letters, digits, '-', '_' or '.'"),
        ),
        "check_text" => (
            format!("^[^\\x00-\\x1F\\x7F-\\x9F]{{1,{max}}}$"),
            format!("1 to {max} characters, none of them a control character"),
        ),
        // A new check needs its own pattern, or the document would lie.
        other => unreachable!("no schema for the identifier check {other}"),
    };
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(pattern))
        .description(Some(description))
        .into()
}

text_id!(
    /// The CRM's id of a contact (`portal_contactid`).
    ContactId, 128, check_text
);
text_id!(
    /// A portal's id (`portal_portalid`).
    PortalId, 128, check_text
);
text_id!(
    /// A browser session's id (`session_id`, or Segment's `anonymousId`).
    SessionId, 128, check_text
);
text_id!(
    /// The idempotency key of an interaction (`portal_interactionid`).
    InteractionId, 128, check_text
);
text_id!(
    /// The CRM's id of a support case.
    CaseId, 128, check_text
);
text_id!(
    /// The name of an interaction type, built-in or custom.
    TypeName, 64, check_name
);
text_id!(
    /// An access policy's name; the `skn` of a SAS token and the Basic user name.
    PolicyName, 64, check_name
);
text_id!(
    /// An organisation's name, such as `default`.
    OrgName, 64, check_name
);
text_id!(
    /// A sign-in name of a person.
    UserName, 64, check_name
);

/// The numeric key of an org inside a store. Never shown to users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OrgId(pub i64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_ids_refuse_empty_long_and_control() {
        assert_eq!(ContactId::parse(""), Err(IdError::Empty));
        assert_eq!(
            ContactId::parse("x".repeat(129)),
            Err(IdError::TooLong { max: 128 })
        );
        assert_eq!(ContactId::parse("a\nb"), Err(IdError::ControlCharacter));
        assert!(ContactId::parse("Jäger 42").is_ok());
    }

    #[test]
    fn names_are_restricted() {
        assert!(PolicyName::parse("portal-writer_1.x").is_ok());
        assert_eq!(PolicyName::parse("a b"), Err(IdError::BadCharacter));
        assert_eq!(PolicyName::parse("a:b"), Err(IdError::BadCharacter));
    }

    #[test]
    fn serde_parses_at_the_edge() {
        let ok: Result<PolicyName, _> = serde_json::from_str("\"ops\"");
        assert!(ok.is_ok());
        let bad: Result<PolicyName, _> = serde_json::from_str("\"\"");
        assert!(bad.is_err());
    }
}
