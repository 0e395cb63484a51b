//! The one place where recorder errors become HTTP statuses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::capture::whip::WhipError;
use crate::error::RecorderError;
use crate::guests::InviteError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub reason: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, reason: impl Into<String>) -> Self {
        Self {
            status,
            code,
            reason: reason.into(),
        }
    }
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", reason)
    }
    pub fn not_found(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", reason)
    }
}

impl From<RecorderError> for ApiError {
    fn from(e: RecorderError) -> Self {
        let (status, code) = match &e {
            RecorderError::UnknownInput(_) => (StatusCode::NOT_FOUND, "unknown_input"),
            RecorderError::InputDisabled(_) => (StatusCode::CONFLICT, "input_disabled"),
            RecorderError::DiskFull { .. } => (StatusCode::INSUFFICIENT_STORAGE, "disk_full"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        Self::new(status, code, r58_log::error_chain(&e))
    }
}

impl From<InviteError> for ApiError {
    fn from(e: InviteError) -> Self {
        match e {
            InviteError::Unknown | InviteError::Expired(_) | InviteError::UsedUp => {
                ApiError::new(StatusCode::UNAUTHORIZED, "bad_invite", e.to_string())
            }
            InviteError::Random(_) | InviteError::Store(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                r58_log::error_chain(&e),
            ),
        }
    }
}

impl From<WhipError> for ApiError {
    fn from(e: WhipError) -> Self {
        let (status, code) = match &e {
            WhipError::BadOffer(_) => (StatusCode::BAD_REQUEST, "bad_offer"),
            WhipError::NoCodec => (StatusCode::UNPROCESSABLE_ENTITY, "unsupported_codec"),
            WhipError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "guests_full"),
            WhipError::Answer(_) => (StatusCode::INTERNAL_SERVER_ERROR, "answer_failed"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "error": self.code, "reason": self.reason })),
        )
            .into_response()
    }
}

/// A JSON body as `T`, or a 400 naming the field and what was wrong with it.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        ApiError::bad_request(format!("body field `{path}`: {}", e.into_inner()))
    })
}
