//! Topic names. Device ids are 1-64 characters of `a-z 0-9 - _` (they are also the MQTT
//! client id and the certificate CN, and the broker holds a device to them).

pub const PREFIX: &str = "r58/v1";

/// Names that are never a device: the broker gives the certificate CN `fleet` the whole
/// tree, so a device certificate under that name would hold the fleet's rights.
pub const RESERVED_IDS: &[&str] = &["fleet", "admin", "operator", "mosquitto", "broker"];

/// Whether `id` may name a device: the syntax of [`valid_device_id`] and not reserved.
pub fn assignable_device_id(id: &str) -> bool {
    valid_device_id(id) && !RESERVED_IDS.contains(&id)
}

/// A telemetry stream name (`telemetry/<stream>`): 1-32 characters of a-z, 0-9, '-', '_'.
pub fn valid_stream_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

pub fn valid_device_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

pub fn state(device: &str) -> String {
    format!("{PREFIX}/{device}/state")
}
pub fn telemetry(device: &str, stream: &str) -> String {
    format!("{PREFIX}/{device}/telemetry/{stream}")
}
pub fn twin_desired(device: &str) -> String {
    format!("{PREFIX}/{device}/twin/desired")
}
pub fn twin_reported(device: &str) -> String {
    format!("{PREFIX}/{device}/twin/reported")
}
pub fn cmd(device: &str, name: &str) -> String {
    format!("{PREFIX}/{device}/cmd/{name}")
}
pub fn cmd_filter(device: &str) -> String {
    format!("{PREFIX}/{device}/cmd/+")
}
pub fn cmd_status(device: &str) -> String {
    format!("{PREFIX}/{device}/cmd/status")
}
/// OTA jobs (`jobs/next`, `jobs/{job_id}/update`).
pub fn jobs(device: &str, rest: &str) -> String {
    format!("{PREFIX}/{device}/jobs/{rest}")
}
pub fn jobs_next(device: &str) -> String {
    jobs(device, "next")
}
pub fn job_update(device: &str, job_id: &str) -> String {
    format!("{PREFIX}/{device}/jobs/{job_id}/update")
}

/// What an inbound topic addresses, for one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Command(String),
    TwinDesired,
    Jobs(String),
}

/// Parses a topic published to `device`; None when it is not one of its inbound topics.
pub fn parse_inbound(device: &str, topic: &str) -> Option<Inbound> {
    let rest = topic
        .strip_prefix(PREFIX)?
        .strip_prefix('/')?
        .strip_prefix(device)?
        .strip_prefix('/')?;
    if rest == "twin/desired" {
        return Some(Inbound::TwinDesired);
    }
    if let Some(name) = rest.strip_prefix("cmd/") {
        if name != "status" && !name.is_empty() && !name.contains('/') {
            return Some(Inbound::Command(name.to_string()));
        }
        return None;
    }
    rest.strip_prefix("jobs/")
        .map(|j| Inbound::Jobs(j.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names_are_never_device_ids() {
        assert!(assignable_device_id("r58-0001"));
        for id in ["fleet", "admin", "mosquitto"] {
            assert!(valid_device_id(id) && !assignable_device_id(id), "{id}");
        }
        assert!(!assignable_device_id("Fleet"));
    }

    #[test]
    fn parses_only_this_devices_inbound_topics() {
        assert_eq!(
            parse_inbound("a", "r58/v1/a/cmd/ping"),
            Some(Inbound::Command("ping".into()))
        );
        assert_eq!(
            parse_inbound("a", "r58/v1/a/twin/desired"),
            Some(Inbound::TwinDesired)
        );
        assert_eq!(parse_inbound("a", "r58/v1/a/cmd/status"), None);
        assert_eq!(parse_inbound("a", "r58/v1/ab/cmd/ping"), None);
        assert_eq!(parse_inbound("a", "r58/v1/a/cmd/x/y"), None);
        assert_eq!(parse_inbound("a", "r58/v2/a/cmd/ping"), None);
        assert!(
            valid_device_id("r58-0001")
                && !valid_device_id("R58")
                && !valid_device_id("a/b")
                && !valid_device_id("a+")
        );
    }
}
