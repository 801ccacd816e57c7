//! KPI event definitions: the built-ins of PRODUCT.md §4.2 and the custom
//! ones an org adds. An event is captured only when its name is defined and
//! the definition is enabled.

use serde::Serialize;

use crate::contact::RecordError;

/// Built-in event names that session facts and metrics read.
pub mod names {
    pub const NOTIFICATION_DISPLAYED: &str = "NotificationDisplayed";
    pub const NOTIFICATION_RESPONSE: &str = "NotificationResponse";
    pub const SESSION_STARTED: &str = "SessionStarted";
    pub const SESSION_SWITCHED: &str = "SessionSwitched";
    pub const SESSION_CLOSED: &str = "SessionClosed";
    pub const CONVERSATION_ENDED: &str = "ConversationEnded";
    pub const HOLD_STARTED: &str = "HoldStarted";
    pub const HOLD_ENDED: &str = "HoldEnded";
    pub const WRAP_UP_STARTED: &str = "WrapUpStarted";
    pub const WRAP_UP_ENDED: &str = "WrapUpEnded";
    pub const TRANSFER_REQUESTED: &str = "TransferRequested";
    pub const AGENT_SIGNED_IN: &str = "AgentSignedIn";
    pub const AGENT_SIGNED_OUT: &str = "AgentSignedOut";
    pub const CSAT_SUBMITTED: &str = "CsatSubmitted";
    pub const SENTIMENT_UPDATED: &str = "SentimentUpdated";
}

/// A KPI event definition as the API shows it (PRODUCT.md §8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Definition {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub builtin: bool,
    pub enabled: bool,
}

/// The built-in definitions: name, display name, description.
pub const BUILTINS: [(&str, &str, &str); 15] = [
    (
        names::NOTIFICATION_DISPLAYED,
        "Notification displayed",
        "An incoming conversation's notification was shown to an agent.",
    ),
    (
        names::NOTIFICATION_RESPONSE,
        "Notification response",
        "The agent answered the notification: notificationResponseAction is Accept, Reject or Timeout.",
    ),
    (
        names::SESSION_STARTED,
        "Session started",
        "A session began in the agent's desktop.",
    ),
    (
        names::SESSION_SWITCHED,
        "Session switched",
        "The agent switched to another session.",
    ),
    (
        names::SESSION_CLOSED,
        "Session closed",
        "The session ended; its time closes the session's handle time.",
    ),
    (
        names::CONVERSATION_ENDED,
        "Conversation ended",
        "The conversation ended for every participant.",
    ),
    (
        names::HOLD_STARTED,
        "Hold started",
        "The customer was put on hold.",
    ),
    (
        names::HOLD_ENDED,
        "Hold ended",
        "The customer was taken off hold.",
    ),
    (
        names::WRAP_UP_STARTED,
        "Wrap-up started",
        "After-contact work began.",
    ),
    (
        names::WRAP_UP_ENDED,
        "Wrap-up ended",
        "After-contact work ended.",
    ),
    (
        names::TRANSFER_REQUESTED,
        "Transfer requested",
        "The agent asked to transfer the session.",
    ),
    (
        names::AGENT_SIGNED_IN,
        "Agent signed in",
        "The agent became available; opens signed-in time.",
    ),
    (
        names::AGENT_SIGNED_OUT,
        "Agent signed out",
        "The agent signed out; closes signed-in time.",
    ),
    (
        names::CSAT_SUBMITTED,
        "CSAT submitted",
        "The customer rated the conversation: customData carries score, 1 to 5.",
    ),
    (
        names::SENTIMENT_UPDATED,
        "Sentiment updated",
        "The customer's sentiment as the conversation goes: customData carries score, from -1 to 1, and optionally label. The last one at or before closed is the session's closing sentiment.",
    ),
];

/// The built-in definitions as records.
pub fn builtins() -> Vec<Definition> {
    BUILTINS
        .iter()
        .map(|(name, display, description)| Definition {
            name: (*name).to_owned(),
            display_name: Some((*display).to_owned()),
            description: Some((*description).to_owned()),
            builtin: true,
            enabled: true,
        })
        .collect()
}

/// Whether `name` is a built-in definition.
pub fn is_builtin(name: &str) -> bool {
    BUILTINS.iter().any(|(builtin, _, _)| *builtin == name)
}

/// Checks a custom definition's name: 1 to 100 letters, digits, `_`, `-`
/// or `.`, starting with a letter, and not a built-in's name.
pub fn parse_custom_name(name: &str) -> Result<String, RecordError> {
    let valid = !name.is_empty()
        && name.len() <= 100
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !valid {
        return Err(RecordError::new(
            "name",
            "must be 1 to 100 letters, digits, '_', '-' or '.', starting with a letter",
        ));
    }
    if is_builtin(name) {
        return Err(RecordError::new(
            "name",
            format!("{name} is a built-in definition"),
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_the_fourteen_of_the_contract() {
        let all = builtins();
        assert_eq!(all.len(), 15);
        assert!(all.iter().all(|d| d.builtin && d.enabled));
        assert!(is_builtin("CsatSubmitted"));
        assert!(!is_builtin("CallHold"));
    }

    #[test]
    fn custom_names() {
        assert_eq!(parse_custom_name("CallHold").unwrap(), "CallHold");
        assert!(parse_custom_name("HoldStarted").is_err());
        assert!(parse_custom_name("1abc").is_err());
        assert!(parse_custom_name("a b").is_err());
        assert!(parse_custom_name("").is_err());
    }
}
