//! Operators: roles, and who a token belongs to.

use serde::{Deserialize, Serialize};

/// What an operator may do, each role all of the one before:
/// `viewer` reads (inventory, telemetry, configuration, commands, rollouts, events);
/// `operator` also sends commands, sets desired configuration and tags;
/// `admin` also publishes bundles and starts, pauses, resumes and cancels rollouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// `GET /api/v1/whoami` and the answer to `POST /api/v1/session`: the operator a token or
/// session belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub operator: String,
    pub role: Role,
}

/// `POST /api/v1/session`: an operator token, for the dashboard's session cookie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub token: String,
}
