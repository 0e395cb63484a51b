//! The fleet's REST API on the wire (`/api/v1/…`, `/healthz`, `/turn/credentials`): one type
//! per request body and per answer, used by the server's handlers, by the operator CLI and
//! by the tests, so that both ends read the same fields.
//!
//! Requests reject unknown fields (a misspelt option is an error, not a default); answers
//! accept them, so that an older CLI still reads a newer server.

pub mod commands;
pub mod devices;
pub mod error;
pub mod events;
pub mod health;
pub mod ota;
pub mod paths;
pub mod session;
pub mod tunnels;

pub use commands::{
    Command, CommandAnswer, CommandList, CommandsSent, SendCommand, SendToMany, Target,
};
pub use devices::{
    DesiredVersion, Device, DeviceConfig, DeviceDetail, DeviceList, SetConfig, SetTags,
    TelemetryPage, TelemetrySample,
};
pub use error::ErrorBody;
pub use events::Event;
pub use health::Health;
pub use ota::{
    Bundle, BundleAnswer, BundleList, CreateRollout, Job, Rollout, RolloutDetail, RolloutList,
    RolloutSummary,
};
pub use session::{Login, Role, Session};
pub use tunnels::{
    RemoteAccessSwitch, SetRemoteAccess, TunnelList, TunnelSession, TunnelSessionList,
};
