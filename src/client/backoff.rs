//! How long to wait before reconnecting.

use std::time::Duration;

use http::HeaderMap;
use http::header::RETRY_AFTER;

use crate::jitter;

/// The smallest delay that backoff grows from, so that a server answering
/// `retry: 0` and then failing does not get a tight loop of reconnects.
const BACKOFF_FLOOR: Duration = Duration::from_millis(100);

/// The longest `Retry-After` honoured: a day.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// Consecutive failed connections, and the delay they lead to.
///
/// After a connection that delivered events the delay is exactly the
/// reconnection time, as in a browser. Each failure after that doubles it (from
/// at least [`BACKOFF_FLOOR`]) up to the cap, with "equal jitter": a uniform
/// draw from the upper half, never below the reconnection time.
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub(crate) fn new(max: Duration) -> Self {
        Self { max, failures: 0 }
    }

    /// A connection delivered events: the next delay is the reconnection time.
    pub(crate) fn succeeded(&mut self) {
        self.failures = 0;
    }

    /// The delay before the next attempt, counting one more failure for the
    /// attempt after it.
    pub(crate) fn next_delay(&mut self, reconnection_time: Duration) -> Duration {
        let failures = self.failures;
        self.failures = self.failures.saturating_add(1);
        if failures == 0 {
            return reconnection_time;
        }
        let factor = 1u32 << failures.min(30);
        let grown = reconnection_time
            .max(BACKOFF_FLOOR)
            .saturating_mul(factor)
            .min(self.max);
        if grown <= reconnection_time {
            return reconnection_time;
        }
        let delay = jitter::between((grown / 2).max(reconnection_time), grown);
        // Whole milliseconds: tokio's timers have no finer resolution.
        let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(millis).max(reconnection_time)
    }
}

/// The delay a `Retry-After` header asks for, when it is a number of seconds
/// (an HTTP date is ignored), at most a day.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if value.is_empty() || !value.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let seconds = value.parse::<u64>().unwrap_or(u64::MAX);
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_delay_is_the_reconnection_time() {
        let mut backoff = Backoff::new(Duration::from_secs(30));
        assert_eq!(
            backoff.next_delay(Duration::from_secs(3)),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn failures_double_within_jitter_up_to_the_cap() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(10);
        let mut backoff = Backoff::new(max);
        assert_eq!(backoff.next_delay(base), base);
        for grown in [2, 4, 8, 10, 10, 10].map(Duration::from_secs) {
            let delay = backoff.next_delay(base);
            assert!(
                delay >= grown / 2 && delay <= grown,
                "{delay:?} for {grown:?}"
            );
        }
        for _ in 0..100 {
            assert!(backoff.next_delay(base) <= max);
        }
    }

    #[test]
    fn server_retry_beyond_the_cap_is_honoured() {
        let mut backoff = Backoff::new(Duration::from_secs(1));
        let retry = Duration::from_secs(5);
        for _ in 0..5 {
            assert_eq!(backoff.next_delay(retry), retry);
        }
    }

    #[test]
    fn success_resets_the_delay() {
        let base = Duration::from_secs(1);
        let mut backoff = Backoff::new(Duration::from_secs(60));
        for _ in 0..5 {
            backoff.next_delay(base);
        }
        backoff.succeeded();
        assert_eq!(backoff.next_delay(base), base);
    }

    #[test]
    fn huge_reconnection_times_do_not_overflow() {
        let mut backoff = Backoff::new(Duration::MAX);
        let base = Duration::from_millis(u64::MAX);
        for _ in 0..40 {
            assert!(backoff.next_delay(base) >= base);
        }
    }

    #[test]
    fn retry_after_reads_seconds_only() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "120".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(120)));
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "-1".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "99999999999999999999999".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER));
    }
}
