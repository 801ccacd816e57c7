//! People who sign in to the web UI, and their roles.

use serde::{Deserialize, Serialize};

/// A user's role in their org.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Supervisor,
    Agent,
    Auditor,
}

impl Role {
    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Supervisor => "supervisor",
            Role::Agent => "agent",
            Role::Auditor => "auditor",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "admin" => Ok(Role::Admin),
            "supervisor" => Ok(Role::Supervisor),
            "agent" => Ok(Role::Agent),
            "auditor" => Ok(Role::Auditor),
            other => Err(format!(
                "unknown role {other:?}: expected admin, supervisor, agent or auditor"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip() {
        for role in [Role::Admin, Role::Supervisor, Role::Agent, Role::Auditor] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
