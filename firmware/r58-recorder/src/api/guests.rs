//! Guests, with the API token: invites (`/api/guests/invites`: make one, its token in the
//! answer once; list; revoke) and ending a guest's session (`DELETE /api/guests/{input}`).

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{parse_body, ApiError, AppState};
use crate::guests::Invite;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewInvite {
    name: String,
    /// Seconds from now (default a day, at most 30 days).
    expires_in_seconds: Option<u64>,
    /// How many times it may connect (default 1, at most 100).
    uses: Option<u32>,
}

#[derive(Debug, Serialize)]
struct Made {
    invite: Invite,
    /// Shown once: what the guest's link carries.
    token: String,
    /// The guest page with the invite, relative to the box.
    url: String,
}

#[derive(Debug, Serialize)]
struct List {
    invites: Vec<Invite>,
}

pub async fn create(
    State(rec): State<AppState>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let n: NewInvite = parse_body(&body)?;
    let name = n.name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request("name: 1-64 printable characters"));
    }
    let secs = n.expires_in_seconds.unwrap_or(86_400);
    if !(1..=30 * 86_400).contains(&secs) {
        return Err(ApiError::bad_request(format!(
            "expires_in_seconds {secs} is out of range 1..=2592000"
        )));
    }
    let uses = n.uses.unwrap_or(1);
    if !(1..=100).contains(&uses) {
        return Err(ApiError::bad_request(format!(
            "uses {uses} is out of range 1..=100"
        )));
    }
    let (invite, token) = rec.invites.create(name, Duration::from_secs(secs), uses)?;
    tracing::info!(invite = %invite.id, name = %invite.name, expires_at = %invite.expires_at, uses, "guest invite made");
    let url = format!("/guest_join?invite={token}");
    Ok((StatusCode::CREATED, Json(Made { invite, token, url })))
}

pub async fn list(State(rec): State<AppState>) -> Json<impl Serialize> {
    Json(List {
        invites: rec.invites.list(),
    })
}

pub async fn revoke(
    State(rec): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if rec.invites.revoke(&id)? {
        tracing::info!(invite = %id, "guest invite revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no invite {id:?}")))
    }
}

/// `DELETE /api/guests/{input}`: ends the session of the guest connected to `input` (kick).
pub async fn kick(
    State(rec): State<AppState>,
    Path(input): Path<String>,
) -> Result<StatusCode, ApiError> {
    let port = rec
        .inputs
        .get(&input)
        .and_then(|i| i.guest.as_ref())
        .ok_or_else(|| ApiError::not_found(format!("no guest input {input:?}")))?;
    if port.remove() {
        tracing::info!(%input, "guest removed by the box's operator");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no guest on {input:?}")))
    }
}
