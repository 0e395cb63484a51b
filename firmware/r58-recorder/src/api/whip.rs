//! WHIP (RFC 9725) for guests: `POST /whip` with an SDP offer and the invite's token as the
//! bearer → `201 Created`, the answer, the session's `Location` and the TURN servers as
//! `Link: <…>; rel="ice-server"`; `DELETE` on the session ends it; `OPTIONS` answers CORS
//! preflights (with the ICE servers for a valid invite, `401` for a bad one); `PATCH` is
//! `405`: the answer carries every candidate (no trickle ICE). Public on purpose: the invite
//! is the credential.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use std::sync::Arc;

use axum::extract::Query;
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::capture::whip::{check_offer, GuestPort};
use crate::guests::{Invite, InviteError};

/// How long an answer may take (the guest's pipeline, ICE gathering).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

/// The CORS headers of every WHIP answer: a guest page may be served from elsewhere (the
/// fleet's public path).
fn cors(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("OPTIONS, POST, DELETE, PATCH"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type, If-Match"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, Link, ETag"),
    );
}

fn with_cors(e: ApiError) -> Response {
    let mut resp = e.into_response();
    cors(&mut resp);
    resp
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// `?resume=<session>`: the guest comes back after its session `<session>` ended.
#[derive(Debug, Default, Deserialize)]
pub struct Resume {
    resume: Option<String>,
}

/// The returning guest's input, if any.
type Back = Option<(String, Arc<GuestPort>)>;

/// Who is asking and where they may go: the invite, its token, and for a guest coming back
/// (`resume` names the session that ended on a free input less than
/// [`RETURN_WINDOW`](crate::capture::whip::RETURN_WINDOW) ago, its guest not removed) that
/// input — which takes no use of the invite. Anyone else needs an invite with uses left.
fn admit(
    rec: &AppState,
    headers: &HeaderMap,
    resume: Option<&str>,
) -> Result<(Invite, String, Back), ApiError> {
    let token = bearer(headers).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing bearer token: the guest's invite",
        )
    })?;
    let invite = rec.invites.find(token)?;
    let back = resume.and_then(|s| {
        rec.inputs.iter().find_map(|(id, i)| {
            i.guest
                .as_ref()
                .filter(|p| p.returning(s))
                .map(|p| (id.clone(), p.clone()))
        })
    });
    if back.is_none() && invite.uses_left == 0 {
        return Err(InviteError::UsedUp.into());
    }
    Ok((invite, token.to_string(), back))
}

/// How long a guest's TURN credentials last at most (and never past the invite).
const GUEST_TURN_TTL: Duration = Duration::from_secs(12 * 3600);

/// `Link` values for the TURN servers of the invite's guest: credentials of its own, lasting
/// until the invite expires (at most [`GUEST_TURN_TTL`], and what the provider allows);
/// none when no provider answers.
async fn ice_links(rec: &AppState, guest: &Invite) -> Vec<HeaderValue> {
    let Some(turn) = rec.turn.get() else {
        return Vec::new();
    };
    let left = (guest.expires_at - chrono::Utc::now())
        .to_std()
        .unwrap_or_default()
        .clamp(Duration::from_secs(60), GUEST_TURN_TTL);
    let creds = match turn.service.for_guest(&guest.id, left).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(invite = %guest.id, error = %e, "no TURN credentials for a guest");
            return Vec::new();
        }
    };
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    creds
        .ice_servers
        .iter()
        .flat_map(|s| {
            s.urls.iter().map(move |url| {
                let mut v = format!("<{url}>; rel=\"ice-server\"");
                if let (Some(u), Some(c)) = (&s.username, &s.credential) {
                    v += &format!(
                        "; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
                        quote(u),
                        quote(c)
                    );
                }
                v
            })
        })
        .filter_map(|v| HeaderValue::from_str(&v).ok())
        .collect()
}

/// A CORS preflight (no credentials) gets `204`; with an invite as the bearer, the ICE
/// servers too, and a bad invite is a `401` with the reason (the guest page shows it before
/// it tries to connect).
pub async fn options(
    State(rec): State<AppState>,
    Query(q): Query<Resume>,
    headers: HeaderMap,
) -> Response {
    let guest = match bearer(&headers).map(|_| admit(&rec, &headers, q.resume.as_deref())) {
        Some(Ok((guest, _, _))) => Some(guest),
        Some(Err(e)) => return with_cors(e),
        None => None,
    };
    let mut resp = StatusCode::NO_CONTENT.into_response();
    cors(&mut resp);
    resp.headers_mut()
        .insert("accept-post", HeaderValue::from_static("application/sdp"));
    if let Some(guest) = guest {
        for link in ice_links(&rec, &guest).await {
            resp.headers_mut().append(header::LINK, link);
        }
    }
    resp
}

pub async fn publish(
    State(rec): State<AppState>,
    Query(q): Query<Resume>,
    headers: HeaderMap,
    body: String,
) -> Response {
    match publish_inner(rec, q, headers, body).await {
        Ok(r) => r,
        Err(e) => with_cors(e),
    }
}

async fn publish_inner(
    rec: AppState,
    q: Resume,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let (guest, token, back) = admit(&rec, &headers, q.resume.as_deref())?;
    let returning = back.is_some();
    let sdp_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().map(str::trim) == Some("application/sdp"));
    if !sdp_type {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the offer must be sent as application/sdp",
        ));
    }
    let offer = check_offer(&body).map_err(ApiError::from)?;
    let free = back.or_else(|| {
        rec.inputs
            .iter()
            .filter_map(|(id, i)| i.guest.as_ref().map(|p| (id.clone(), p.clone())))
            .find(|(_, p)| p.session().is_none())
    });
    let Some((input, port)) = free else {
        let mut e = with_cors(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "guests_full",
            "every guest input of this box is in use",
        ));
        e.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
        return Ok(e);
    };
    let session = crate::guests::random_hex(12)?;
    let (port2, session2) = (port.clone(), session.clone());
    let answer =
        tokio::task::spawn_blocking(move || port2.connect(&session2, offer, ANSWER_TIMEOUT))
            .await
            .map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            })?
            .map_err(ApiError::from)?;
    // Counted once the guest is in: a failed attempt does not use the invite up, nor does
    // coming back.
    if !returning {
        if let Err(e) = rec.invites.redeem(&token) {
            port.end(&session);
            return Err(e.into());
        }
    }
    tracing::info!(%input, %session, guest = %guest.name, invite = %guest.id, returning, "guest joined");
    let mut resp = (StatusCode::CREATED, answer).into_response();
    cors(&mut resp);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    if let Ok(loc) = HeaderValue::from_str(&format!("whip/{input}/{session}")) {
        h.insert(header::LOCATION, loc);
    }
    for link in ice_links(&rec, &guest).await {
        resp.headers_mut().append(header::LINK, link);
    }
    Ok(resp)
}

/// `DELETE /whip/<input>/<session>`: the guest leaves. The session id is the credential.
pub async fn delete(
    State(rec): State<AppState>,
    Path((input, session)): Path<(String, String)>,
) -> Response {
    let ended = rec
        .inputs
        .get(&input)
        .and_then(|i| i.guest.as_ref())
        .is_some_and(|p| p.end(&session));
    if ended {
        tracing::info!(%input, %session, "guest left (DELETE)");
        let mut resp = StatusCode::OK.into_response();
        cors(&mut resp);
        resp
    } else {
        with_cors(ApiError::not_found("no such WHIP session"))
    }
}

/// `PATCH`: trickle ICE is not taken (RFC 9725 §4.3.1).
pub async fn patch() -> Response {
    let mut resp = with_cors(ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "no_trickle",
        "this endpoint does not take trickle ICE: the answer carries every candidate",
    ));
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("DELETE, OPTIONS"));
    resp
}
