//! `GET /api/v1/tunnels`: the boxes whose remote-access tunnel is open now.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelList {
    /// Device ids, sorted.
    pub devices: Vec<String>,
}
