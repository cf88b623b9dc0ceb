//! Random durations for jitter, without a random-number dependency.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

/// A duration drawn uniformly from `min..=max` (`min` if `max <= min`).
///
/// The randomness comes from the standard library's randomly keyed hasher:
/// not for cryptography, plenty to spread reconnects apart.
pub(crate) fn between(min: Duration, max: Duration) -> Duration {
    let (Ok(low), Ok(high)) = (u64::try_from(min.as_nanos()), u64::try_from(max.as_nanos())) else {
        return min;
    };
    if high <= low {
        return min;
    }
    let span = high - low;
    let random = RandomState::new().hash_one(std::time::Instant::now());
    let offset = if span == u64::MAX {
        random
    } else {
        random % (span + 1)
    };
    Duration::from_nanos(low + offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_bounds() {
        let min = Duration::from_millis(100);
        let max = Duration::from_millis(200);
        for _ in 0..1000 {
            let d = between(min, max);
            assert!(d >= min && d <= max, "{d:?}");
        }
    }

    #[test]
    fn spreads_values() {
        let min = Duration::ZERO;
        let max = Duration::from_secs(10);
        let first = between(min, max);
        assert!((0..100).any(|_| between(min, max) != first));
    }

    #[test]
    fn empty_range_is_min() {
        let d = Duration::from_secs(3);
        assert_eq!(between(d, d), d);
        assert_eq!(between(d, Duration::from_secs(1)), d);
    }
}
