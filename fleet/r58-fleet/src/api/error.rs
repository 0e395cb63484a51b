//! API errors and their HTTP statuses, in one place. Bodies are `{"error": code, "reason": …}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing operator token (Authorization: Bearer … or the session cookie)")]
    NoToken,
    #[error("unknown or revoked operator token")]
    BadToken,
    /// A cookie-authenticated change that did not come from the dashboard's own pages.
    #[error("{0}")]
    CrossSite(String),
    /// The operator's role does not allow this.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("no device {0:?}")]
    NoDevice(String),
    #[error("no command {0:?}")]
    NoCommand(String),
    #[error("no broker configured: this server cannot reach devices")]
    NoBroker,
    #[error("publishing to the broker: {0}")]
    Publish(String),
    #[error("no {0}")]
    NotFound(String),
    /// The request is well-formed but cannot be done in the current state.
    #[error("{0}")]
    Conflict(String),
    /// The uploaded content is refused (e.g. a bundle whose signature does not verify).
    #[error("{0}")]
    Unprocessable(String),
    #[error("no remote-access relay configured on this server")]
    NoRelay,
    /// The fleet-wide remote-access switch is off.
    #[error(
        "remote access is off for this fleet (an admin turns it on: PUT /api/v1/remote-access)"
    )]
    RemoteAccessOff,
    /// The box could not be reached through its tunnel.
    #[error("{0}")]
    BadGateway(String),
    /// A rate limit of the public guest path; try again after `retry_after_s`.
    #[error("too many requests {what}; try again in {retry_after_s} s")]
    RateLimited { what: String, retry_after_s: u64 },
    #[error("{0}")]
    TooLarge(String),
    #[error("storage: {0}")]
    Storage(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl ApiError {
    pub fn status(&self) -> (StatusCode, &'static str) {
        match self {
            Self::NoToken | Self::BadToken => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::CrossSite(_) => (StatusCode::FORBIDDEN, "cross_site"),
            Self::RemoteAccessOff => (StatusCode::FORBIDDEN, "remote_access_off"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::NoDevice(_) | Self::NoCommand(_) | Self::NotFound(_) => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            Self::Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, "storage"),
            Self::NoBroker | Self::Publish(_) | Self::NoRelay => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            Self::BadGateway(_) => (StatusCode::BAD_GATEWAY, "bad_gateway"),
            Self::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Self::Db(_) => (StatusCode::SERVICE_UNAVAILABLE, "database"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status();
        if status.is_server_error() {
            tracing::error!(error = %r58_log::error_chain(&self), "API request failed");
        }
        let mut resp = (
            status,
            Json(r58_fleet_api::ErrorBody {
                error: code.into(),
                reason: r58_log::error_chain(&self),
            }),
        )
            .into_response();
        if let Self::RateLimited { retry_after_s, .. } = self {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, retry_after_s.into());
        }
        resp
    }
}

/// JSON body extraction with the serde error (path and reason) as a 400.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de)
        .map_err(|e| ApiError::BadRequest(format!("body: {} at {}", e.inner(), e.path())))
}
