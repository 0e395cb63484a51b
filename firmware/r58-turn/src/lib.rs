//! TURN credentials for the browsers of remote guests.
//!
//! `GET /api/turn-credentials` on the box answers `{"iceServers": [...], "expiresAt": ...}`,
//! where `iceServers` is what `RTCPeerConnection` takes. The credentials come from
//! providers in configured order — the operators' fleet API first, Cloudflare's TURN API
//! directly as an optional fallback — and are cached until shortly before they expire,
//! refreshed in the background at ~80 % of their lifetime, fetched once for any number of
//! concurrent requests, and served stale-but-valid when every provider fails.

mod cache;
mod cloudflare;
pub mod coturn;
mod fleet;
mod ice;
mod provider;
mod ratelimit;

pub use cache::{TurnError, TurnService, TurnSettings};
pub use cloudflare::{CloudflareProvider, CLOUDFLARE_API};
pub use fleet::{CredentialsRequest, FleetProvider};
pub use ice::{drop_port_53, Credentials, IceServer};
pub use provider::{ProviderError, TurnProvider};
pub use ratelimit::RateLimiter;
