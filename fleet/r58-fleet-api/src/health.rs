//! `GET /healthz`: public, for the load balancer and Coolify's health check.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `ok`, or `degraded` when the database or the broker cannot be reached.
    pub status: String,
    /// `ok`, or why the database cannot be reached.
    pub database: String,
    /// `connected`, `disconnected` or `not configured`.
    pub broker: String,
}
