//! Remote access to a box through the fleet (docs/remote-access.md): the box dials one
//! WebSocket to the fleet's relay, and over it the fleet opens streams to local ports of the
//! box — multiplexed with yamux, so each stream has its own flow-control window and a
//! stream nobody reads stops only itself.
//!
//! - [`ws_io::WsIo`] turns a WebSocket into a byte stream (binary messages).
//! - [`device::serve`] is the box's end: it answers the streams the fleet opens, to the
//!   ports its [`device::Policy`] allows and nothing else.
//! - [`relay::connect`] is the fleet's end: a [`relay::Tunnel`] handle that opens streams,
//!   and the driver future that runs the connection.
//! - [`listen::Relay`] is the fleet's listener: mutual TLS (the box's certificate names
//!   the device), the WebSocket, and the register of the boxes connected now.
//! - [`dial::Dialer`] is the box's side of the connection: dials the relay, serves the
//!   tunnel, dials again with backoff when it drops.
//!
//! Each stream starts with one line from the fleet, `R58T/1 open <port>`, answered by the
//! box with `OK` or `NO <reason>` ([`header`]); then it carries the bytes of one TCP
//! connection to `127.0.0.1:<port>` on the box.

pub mod activity;
pub mod device;
pub mod dial;
pub mod error;
pub mod header;
pub mod identity;
pub mod listen;
pub mod relay;
pub mod ws_io;

pub use error::TunnelError;

/// The yamux settings of both ends: at most `max_streams` open streams.
pub(crate) fn yamux_config(max_streams: usize) -> yamux::Config {
    let mut cfg = yamux::Config::default();
    cfg.set_max_num_streams(max_streams);
    cfg
}
