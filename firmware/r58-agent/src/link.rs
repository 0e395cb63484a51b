//! Connectivity as an explicit state machine.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// A connection attempt is under way (attempt number since the last success).
    Connecting {
        attempt: u32,
    },
    Online,
    /// Waiting before the next attempt.
    Backoff {
        attempt: u32,
        wait: Duration,
    },
    /// Clean shutdown: `offline` published, disconnecting.
    Stopping,
}

/// Exponential backoff with jitter: 0.5 s, 1 s, 2 s … capped at `max`, ±25 %.
pub fn backoff(attempt: u32, max: Duration, jitter_seed: u64) -> Duration {
    let base = Duration::from_millis(500)
        .saturating_mul(1u32 << attempt.min(16))
        .min(max);
    let spread = base.as_millis() as u64 / 4;
    let jitter = if spread == 0 {
        0
    } else {
        jitter_seed % (2 * spread + 1)
    };
    (base + Duration::from_millis(jitter))
        .saturating_sub(Duration::from_millis(spread))
        .max(Duration::from_millis(100))
}

impl Link {
    pub fn name(&self) -> &'static str {
        match self {
            Link::Connecting { .. } => "connecting",
            Link::Online => "online",
            Link::Backoff { .. } => "backoff",
            Link::Stopping => "stopping",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let max = Duration::from_secs(10);
        let b0 = backoff(0, max, 0);
        let b3 = backoff(3, max, 0);
        assert!(b0 < b3);
        for seed in 0..50 {
            let b = backoff(20, max, seed * 7919);
            assert!(
                b >= Duration::from_millis(7500) && b <= Duration::from_millis(12500),
                "{b:?}"
            );
        }
        assert_ne!(backoff(5, max, 1), backoff(5, max, 999));
    }
}
