//! Token buckets by key (a source address, a device): a burst of `per_minute` requests,
//! refilled evenly over the minute. The table is bounded: when it is full, buckets that
//! have refilled completely (their keys idle) are dropped, and if none has, the caller
//! is refused rather than the table growing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// How many keys one limiter remembers at most.
const MAX_KEYS: usize = 65_536;

pub struct RateLimit {
    per_minute: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute: f64::from(per_minute.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request for `key` at `now`: `Ok` when allowed, else the whole seconds
    /// until the next one would be.
    pub fn take(&self, key: &str, now: Instant) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !buckets.contains_key(key) && buckets.len() >= MAX_KEYS {
            buckets.retain(|_, b| self.refilled(*b, now) < self.per_minute);
            if buckets.len() >= MAX_KEYS {
                return Err(1);
            }
        }
        let b = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: self.per_minute,
            at: now,
        });
        b.tokens = self.refilled(*b, now);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let per_second = self.per_minute / 60.0;
            Err(((1.0 - b.tokens) / per_second).ceil().max(1.0) as u64)
        }
    }

    fn refilled(&self, b: Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        (b.tokens + elapsed * self.per_minute / 60.0).min(self.per_minute)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_refused_until_refilled_and_keys_are_apart() {
        let r = RateLimit::new(6); // one every 10 s
        let t0 = Instant::now();
        for _ in 0..6 {
            assert_eq!(r.take("a", t0), Ok(()));
        }
        assert_eq!(r.take("a", t0), Err(10));
        assert_eq!(r.take("b", t0), Ok(()), "another key has its own bucket");
        assert_eq!(r.take("a", t0 + Duration::from_secs(4)), Err(6));
        assert_eq!(r.take("a", t0 + Duration::from_secs(10)), Ok(()));
        assert_eq!(r.take("a", t0 + Duration::from_secs(10)), Err(10));
        // Idle for long: a full burst again, not more.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..6 {
            assert_eq!(r.take("a", later), Ok(()));
        }
        assert!(r.take("a", later).is_err());
    }
}
