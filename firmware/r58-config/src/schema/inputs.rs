//! `[inputs.<id>]`: what the recorder captures.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{range_check, Validate};

/// `url` with the password of its user information replaced by `redacted`
/// (`rtsp://admin:secret@cam/1` → `rtsp://admin:redacted@cam/1`), for anything that leaves the
/// box or a log: the fleet's `config.get`, the recorder's `/api/inputs`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let Some(colon) = authority[..at].find(':') else {
        return url.to_string();
    };
    format!(
        "{}{}:redacted{}",
        &url[..scheme_end],
        &authority[..colon],
        &rest[at..]
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputKind {
    /// A V4L2 capture device, e.g. the RK3588 `hdmirx` (DV timings are queried).
    V4l2,
    /// An IP camera pulled over RTSP, reconnected with backoff.
    Rtsp,
    /// An SRT caller (`srt://host:port`), reconnected with backoff.
    Srt,
    /// Video and audio test sources with a burnt-in clock (simulation and tests).
    Test,
    /// A remote guest publishing from a browser over WHIP (RFC 9725): one guest at a time;
    /// the slate while nobody is connected.
    Whip,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InputConfig {
    pub kind: InputKind,
    pub enabled: bool,
    /// Device node for `v4l2` (a stable name from the udev rules, e.g. `/dev/r58-hdmi0`).
    pub device: Option<PathBuf>,
    /// ALSA device of a `v4l2` input's audio (e.g. `hw:CARD=rockchiphdmiin`). Without it a
    /// `v4l2` input with `audio = true` carries silence.
    pub audio_device: Option<String>,
    /// Source URL for `rtsp` and `srt`.
    pub url: Option<String>,
    /// `videotestsrc` pattern for `test` inputs (e.g. `smpte`, `ball`, `snow`).
    pub pattern: String,
    /// Encoded picture size and rate; the source is scaled and rate-converted to it.
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Capture and encode audio as well.
    pub audio: bool,
    /// Jitter buffer for network sources in milliseconds.
    pub latency_ms: u32,
    /// Upper bound of the reconnect backoff for network sources and lost devices.
    pub reconnect_max_seconds: u32,
}

impl InputConfig {
    /// This input as it may leave the box: the password in its URL redacted.
    pub fn redacted(&self) -> Self {
        Self {
            url: self.url.as_deref().map(redact_url),
            ..self.clone()
        }
    }
}

impl Default for InputConfig {
    fn default() -> Self {
        Self {
            kind: InputKind::Test,
            enabled: true,
            device: None,
            audio_device: None,
            url: None,
            pattern: "smpte".into(),
            width: 1920,
            height: 1080,
            fps: 30,
            audio: true,
            latency_ms: 200,
            reconnect_max_seconds: 30,
        }
    }
}

impl Validate for InputConfig {
    fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        range_check(&mut out, "width", self.width, 160, 4096);
        range_check(&mut out, "height", self.height, 120, 2160);
        range_check(&mut out, "fps", self.fps, 1, 60);
        range_check(&mut out, "latency_ms", self.latency_ms, 0, 10_000);
        range_check(
            &mut out,
            "reconnect_max_seconds",
            self.reconnect_max_seconds,
            1,
            600,
        );
        if self.width % 2 != 0 || self.height % 2 != 0 {
            out.push((
                "width".into(),
                "width and height must be even (4:2:0 video)".into(),
            ));
        }
        match self.kind {
            InputKind::V4l2 => match &self.device {
                None => out.push(("device".into(), "a v4l2 input needs `device`".into())),
                Some(d) if !d.is_absolute() => out.push((
                    "device".into(),
                    format!("{} is not an absolute path", d.display()),
                )),
                Some(_) => {}
            },
            InputKind::Rtsp | InputKind::Srt => {
                let scheme = if self.kind == InputKind::Rtsp {
                    "rtsp"
                } else {
                    "srt"
                };
                match &self.url {
                    None => out.push(("url".into(), format!("a {scheme} input needs `url`"))),
                    Some(u)
                        if !u.starts_with(&format!("{scheme}://"))
                            && !u.starts_with("rtsps://") =>
                    {
                        out.push(("url".into(), format!("{u:?} is not a {scheme}:// URL")))
                    }
                    Some(_) => {}
                }
            }
            InputKind::Whip => {}
            InputKind::Test => {
                if self.pattern.is_empty() {
                    out.push(("pattern".into(), "must name a videotestsrc pattern".into()));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_redacted_and_nothing_else_changes() {
        for (url, want) in [
            (
                "rtsp://admin:s3cr%40t@10.0.0.5:554/ch1?x=a@b",
                "rtsp://admin:redacted@10.0.0.5:554/ch1?x=a@b",
            ),
            ("rtsp://a:b:c@cam/1", "rtsp://a:redacted@cam/1"),
            ("rtsp://a:p@ss@cam/1", "rtsp://a:redacted@cam/1"),
            ("srt://user:pw@host:9000", "srt://user:redacted@host:9000"),
            ("rtsp://admin@cam/1", "rtsp://admin@cam/1"),
            ("rtsp://cam/1?auth=a:b@c", "rtsp://cam/1?auth=a:b@c"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }
}
