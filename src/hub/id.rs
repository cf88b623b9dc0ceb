//! Event ids assigned by the hub: `{epoch}-{seq}`, short and ASCII.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// Hex digits of the epoch in an id: 48 random bits.
const EPOCH_DIGITS: usize = 12;
const EPOCH_MASK: u64 = (1 << (4 * EPOCH_DIGITS)) - 1;
/// Decimal digits of the longest `u64`.
const MAX_SEQ_DIGITS: usize = 20;

/// A random value that tells one hub's ids from another's, so that an id
/// from an earlier process (or another hub) is never misread as a position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Epoch(u64);

impl Epoch {
    /// A fresh epoch: std's random hasher keys, the hub's creation count and
    /// the wall clock, hashed together.
    pub(crate) fn random() -> Self {
        static CREATED: AtomicU64 = AtomicU64::new(0);
        let mut hasher = RandomState::new().build_hasher();
        CREATED.fetch_add(1, Ordering::Relaxed).hash(&mut hasher);
        SystemTime::now().hash(&mut hasher);
        Self(hasher.finish() & EPOCH_MASK)
    }
}

/// The id of an event published through a [`Hub`](super::Hub), as the client
/// receives it in the `id:` field and sends it back in `Last-Event-ID`.
///
/// Written as `{epoch}-{seq}`: twelve lowercase hex digits that identify the
/// hub, a dash, and the event's position in the hub's publish order, in
/// decimal (for example `3f09a1c27b5e-42`). Positions grow by one with every
/// event published on the hub, so within one topic they increase in publish
/// order but skip the positions of other topics' events.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventId {
    epoch: Epoch,
    seq: u64,
}

impl EventId {
    pub(crate) fn new(epoch: Epoch, seq: u64) -> Self {
        Self { epoch, seq }
    }

    /// The event's position in its hub's publish order: 1 for the first event
    /// published, 0 for "before the first event".
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Reads an id written by [`Display`](fmt::Display), or `None` for anything
    /// else. Bounded and panic-free on any input.
    pub(crate) fn parse(value: &str) -> Option<Self> {
        if value.len() > EPOCH_DIGITS + 1 + MAX_SEQ_DIGITS {
            return None;
        }
        let (epoch, seq) = value.split_once('-')?;
        let is_lower_hex = |byte: &u8| matches!(byte, b'0'..=b'9' | b'a'..=b'f');
        if epoch.len() != EPOCH_DIGITS || !epoch.as_bytes().iter().all(is_lower_hex) {
            return None;
        }
        // Only the canonical form: digits, no sign, no leading zero.
        if seq.is_empty()
            || !seq.bytes().all(|byte| byte.is_ascii_digit())
            || (seq.len() > 1 && seq.starts_with('0'))
        {
            return None;
        }
        Some(Self {
            epoch: Epoch(u64::from_str_radix(epoch, 16).ok()?),
            seq: seq.parse().ok()?,
        })
    }

    pub(crate) fn epoch(&self) -> Epoch {
        self.epoch
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:0width$x}-{}",
            self.epoch.0,
            self.seq,
            width = EPOCH_DIGITS
        )
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        for seq in [0, 1, 42, u64::MAX] {
            let id = EventId::new(Epoch::random(), seq);
            let text = id.to_string();
            assert!(text.len() <= 33 && text.is_ascii(), "{text}");
            assert_eq!(EventId::parse(&text), Some(id));
        }
    }

    #[test]
    fn epoch_with_leading_zeros_keeps_its_width() {
        let id = EventId::new(Epoch(0xab), 7);
        assert_eq!(id.to_string(), "0000000000ab-7");
        assert_eq!(EventId::parse("0000000000ab-7"), Some(id));
    }

    #[test]
    fn non_canonical_forms_are_not_ids() {
        for text in [
            "",
            "-",
            "42",
            "0000000000ab-",
            "0000000000ab-+7",
            "0000000000ab-07",
            "0000000000ab- 7",
            "0000000000AB-7",
            "000000000ab-7",
            "00000000000ab-7",
            "0000000000ab-7-8",
            "0000000000ab-18446744073709551616",
            "ééééééé-1",
        ] {
            assert_eq!(EventId::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn fresh_epochs_differ() {
        assert_ne!(Epoch::random(), Epoch::random());
    }
}
