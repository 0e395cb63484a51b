//! The body of every error answer.

use serde::{Deserialize, Serialize};

/// `error` is a short code (`bad_request`, `not_found`, `forbidden`, …) for scripts;
/// `reason` says what was wrong, for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub reason: String,
}
