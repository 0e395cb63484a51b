//! Sections used by the recorder service and its HTTP API.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{range_check, Validate};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Address of the HTTP API (status, control, HLS, downloads).
    pub listen: SocketAddr,
    /// Bearer token for every endpoint but `/healthz`. Empty: they answer 403.
    pub token: String,
    /// Host names (the `Host` header, without port) the API answers besides IP addresses,
    /// `localhost` and the box's own host name (`<hostname>`, `<hostname>.local`); any other
    /// is refused (a web page that rebinds its DNS name to the box gets nothing).
    pub allowed_hosts: Vec<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8000)),
            token: String::new(),
            allowed_hosts: Vec::new(),
        }
    }
}

impl Validate for ApiConfig {
    fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !self.token.is_empty() && self.token.len() < 16 {
            out.push((
                "token".into(),
                "must be at least 16 characters (or empty to disable the API)".into(),
            ));
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecorderConfig {
    /// The writable data partition; recordings go to `<data_dir>/recordings`.
    pub data_dir: PathBuf,
    /// Length of one recording segment in seconds (cut at the next key frame).
    pub segment_seconds: u32,
    /// Start recording every input when the service starts.
    pub record_on_start: bool,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("/data"),
            segment_seconds: 60,
            record_on_start: false,
        }
    }
}

impl Validate for RecorderConfig {
    fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        range_check(&mut out, "segment_seconds", self.segment_seconds, 2, 3600);
        if !self.data_dir.is_absolute() {
            out.push((
                "data_dir".into(),
                format!("{} is not an absolute path", self.data_dir.display()),
            ));
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Below this many MiB free, the oldest finished sessions are removed; if that is not
    /// enough, recording stops with reason `disk_full`.
    pub min_free_mib: u64,
    /// Finished sessions older than this are removed. 0 keeps them forever.
    pub max_age_days: u32,
    /// How often the guard looks at the disk, in seconds.
    pub check_interval_seconds: u32,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            min_free_mib: 2048,
            max_age_days: 30,
            check_interval_seconds: 5,
        }
    }
}

impl Validate for StorageConfig {
    fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        range_check(
            &mut out,
            "check_interval_seconds",
            self.check_interval_seconds,
            1,
            3600,
        );
        out
    }
}

/// H.264 profile. Browsers play all three; baseline has no B-frames or CABAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum H264Profile {
    Baseline,
    Main,
    High,
}

impl H264Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Baseline => "constrained-baseline",
            Self::Main => "main",
            Self::High => "high",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncoderConfig {
    /// `auto` probes mpph264enc, V4L2 stateful encoders, x264enc, openh264enc in that order;
    /// any other value names the GStreamer element factory to use.
    pub video: String,
    pub bitrate_kbps: u32,
    /// Key frame interval in seconds (also the HLS and recording cut granularity).
    pub gop_seconds: u32,
    pub profile: H264Profile,
    /// x264enc speed preset (software encoding only).
    pub x264_preset: String,
    pub audio_bitrate_kbps: u32,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self {
            video: "auto".into(),
            bitrate_kbps: 6000,
            gop_seconds: 1,
            profile: H264Profile::High,
            x264_preset: "superfast".into(),
            audio_bitrate_kbps: 128,
        }
    }
}

const X264_PRESETS: &[&str] = &[
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
];

impl Validate for EncoderConfig {
    fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        range_check(&mut out, "bitrate_kbps", self.bitrate_kbps, 100, 100_000);
        range_check(&mut out, "gop_seconds", self.gop_seconds, 1, 10);
        range_check(
            &mut out,
            "audio_bitrate_kbps",
            self.audio_bitrate_kbps,
            32,
            512,
        );
        if !X264_PRESETS.contains(&self.x264_preset.as_str()) {
            out.push((
                "x264_preset".into(),
                format!("{:?} is not one of {X264_PRESETS:?}", self.x264_preset),
            ));
        }
        if self.video.is_empty() {
            out.push((
                "video".into(),
                "must be \"auto\" or an element factory name".into(),
            ));
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtspConfig {
    pub enabled: bool,
    /// Address the RTSP server binds, `rtsp://<box>:<port>/<input>`.
    pub address: String,
    pub port: u16,
}

impl Default for RtspConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            address: "0.0.0.0".into(),
            port: 8554,
        }
    }
}

/// Remote guests (`whip` inputs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuestsConfig {
    /// The local addresses the guests' ICE uses (e.g. the venue network's); empty: every
    /// interface but loopback.
    pub ice_addresses: Vec<String>,
}

impl Validate for GuestsConfig {
    fn validate(&self) -> Vec<(String, String)> {
        self.ice_addresses
            .iter()
            .filter(|a| a.parse::<std::net::IpAddr>().is_err())
            .map(|a| {
                (
                    "ice_addresses".into(),
                    format!("{a:?} is not an IP address"),
                )
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HlsConfig {
    pub enabled: bool,
    /// Where live playlists and segments are written (a tmpfs on the appliance).
    pub dir: PathBuf,
    pub segment_seconds: u32,
    pub playlist_length: u32,
}

impl Default for HlsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: PathBuf::from("/run/r58/hls"),
            segment_seconds: 2,
            playlist_length: 6,
        }
    }
}

impl Validate for HlsConfig {
    fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        range_check(&mut out, "segment_seconds", self.segment_seconds, 1, 30);
        range_check(&mut out, "playlist_length", self.playlist_length, 2, 60);
        out
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchdogConfig {
    /// A pipeline that produces no encoded buffer for this long counts as stalled:
    /// the systemd watchdog is no longer fed and the service gets restarted.
    pub stall_seconds: u32,
    /// An input without a frame for this long shows the "no signal" slate.
    pub signal_timeout_ms: u32,
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        Self {
            stall_seconds: 10,
            signal_timeout_ms: 1000,
        }
    }
}

impl Validate for WatchdogConfig {
    fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        range_check(&mut out, "stall_seconds", self.stall_seconds, 2, 600);
        range_check(
            &mut out,
            "signal_timeout_ms",
            self.signal_timeout_ms,
            100,
            60_000,
        );
        out
    }
}
