//! The fleet's MQTT side: the shared-subscription ingest of what devices send, the
//! publishing connection, and the documents the fleet retains for devices.

pub mod ingest;
pub mod publisher;

use serde_json::Value;

/// The retained `twin/desired` document of `version` (`r58_proto::TwinDesired`, the type
/// the agent reads). `settings` is the object the API accepted.
pub(crate) fn desired_doc(version: i64, settings: &Value) -> String {
    let doc = r58_proto::TwinDesired {
        version: u64::try_from(version).unwrap_or(0),
        settings: settings
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
    };
    serde_json::to_string(&doc).unwrap_or_default()
}
