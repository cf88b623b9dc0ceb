//! Event ids assigned by the hub: `{epoch}-{seq}`, short and ASCII, and how
//! they get into an event encoded before its id was known.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bytes::{Buf, BufMut, BytesMut};

use crate::error::EventError;
use crate::event::{EncodedEvent, Event};

use super::error::InvalidEventId;

/// Hex digits of the epoch in an id: 48 random bits.
const EPOCH_DIGITS: usize = 12;
const EPOCH_MASK: u64 = (1 << (4 * EPOCH_DIGITS)) - 1;
/// Decimal digits of the longest `u64`.
const MAX_SEQ_DIGITS: usize = 20;
/// The longest id: `{epoch}-{seq}`.
const MAX_ID_LEN: usize = EPOCH_DIGITS + 1 + MAX_SEQ_DIGITS;
/// The longest `id:` line: `id: {epoch}-{seq}\n`.
const MAX_ID_LINE: usize = b"id: ".len() + MAX_ID_LEN + 1;

/// A random value that tells one hub's ids from another's, so that an id
/// from an earlier process (or another hub) is never misread as a position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Epoch(u64);

impl Epoch {
    /// A fresh epoch: std's random hasher keys, the hub's creation count and
    /// the wall clock, hashed together.
    pub(crate) fn random() -> Self {
        static CREATED: AtomicU64 = AtomicU64::new(0);
        let created = CREATED.fetch_add(1, Ordering::Relaxed);
        Self(RandomState::new().hash_one((created, SystemTime::now())) & EPOCH_MASK)
    }

    /// The epoch as an id writes it: twelve lowercase hex digits.
    #[cfg(feature = "redis")]
    pub(crate) fn to_hex(self) -> String {
        format!("{:012x}", self.0)
    }

    /// Reads twelve lowercase hex digits, as [`to_hex`](Self::to_hex) writes.
    #[cfg(feature = "redis")]
    pub(crate) fn from_hex(text: &[u8]) -> Option<Self> {
        let is_lower_hex = |byte: &u8| matches!(byte, b'0'..=b'9' | b'a'..=b'f');
        if text.len() != EPOCH_DIGITS || !text.iter().all(is_lower_hex) {
            return None;
        }
        let text = std::str::from_utf8(text).ok()?;
        u64::from_str_radix(text, 16).ok().map(Self)
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
    fn parse(value: &str) -> Option<Self> {
        if value.len() > MAX_ID_LEN {
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

    /// Writes the id at the end of `out`, which holds at least
    /// `MAX_ID_LEN` bytes; returns its length. The one writer of ids: for
    /// `Display`, and for the id line written under the hub's lock.
    fn write_right_aligned(&self, out: &mut [u8]) -> usize {
        let mut seq = itoa::Buffer::new();
        let seq = seq.format(self.seq).as_bytes();
        let len = EPOCH_DIGITS + 1 + seq.len();
        let start = out.len() - len;
        let (epoch, rest) = out[start..].split_at_mut(EPOCH_DIGITS);
        for (at, digit) in epoch.iter_mut().enumerate() {
            let shift = 4 * (EPOCH_DIGITS - 1 - at);
            *digit = b"0123456789abcdef"[((self.epoch.0 >> shift) & 0xf) as usize];
        }
        rest[0] = b'-';
        rest[1..].copy_from_slice(seq);
        len
    }
}

impl FromStr for EventId {
    type Err = InvalidEventId;

    /// Reads an id as [`Display`](fmt::Display) writes it, and nothing else:
    /// twelve lowercase hex digits, a dash, and the position in decimal
    /// without sign or leading zero. Bounded and panic-free on any input.
    ///
    /// ```
    /// use tower_sse::hub::EventId;
    ///
    /// let id: EventId = "3f09a1c27b5e-42".parse().unwrap();
    /// assert_eq!(id.seq(), 42);
    /// assert_eq!(id.to_string(), "3f09a1c27b5e-42");
    /// assert!("42".parse::<EventId>().is_err());
    /// ```
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::parse(value).ok_or(InvalidEventId(()))
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = [0; MAX_ID_LEN];
        let len = self.write_right_aligned(&mut text);
        // Hex digits, a dash and decimal digits: always ASCII.
        let text = std::str::from_utf8(&text[MAX_ID_LEN - len..]).map_err(|_| fmt::Error)?;
        f.write_str(text)
    }
}

/// An event encoded without its id, with room in front for its `id:` line.
///
/// Encoding happens before the hub's lock is taken; under the lock, where the
/// id is assigned, only the id line is written. The block reads as if the
/// event had been encoded with the id (a client dispatches the same fields,
/// whatever their order); comment lines, if any, come after the id line.
#[derive(Debug)]
pub(crate) struct Unnumbered {
    /// `MAX_ID_LINE` bytes of room, then the encoded event.
    buf: BytesMut,
}

impl Unnumbered {
    /// Encodes `event`, which must have no id.
    pub(crate) fn encode(event: Event) -> Result<Self, EventError> {
        // One allocation, nearly always: room for the id line and the event.
        let mut buf = BytesMut::with_capacity(MAX_ID_LINE + event.len_hint());
        buf.put_bytes(0, MAX_ID_LINE);
        event.encode_into(&mut buf)?;
        Ok(Self { buf })
    }

    /// An event that was encoded without an id elsewhere (by the node that
    /// published it through Redis): its bytes, with room for the id line.
    #[cfg(feature = "redis")]
    pub(crate) fn from_encoded(encoded: &[u8]) -> Self {
        let mut buf = BytesMut::with_capacity(MAX_ID_LINE + encoded.len());
        buf.put_bytes(0, MAX_ID_LINE);
        buf.extend_from_slice(encoded);
        Self { buf }
    }

    /// The encoded event, led by the `id:` line of `id`.
    pub(crate) fn with_id(mut self, id: EventId) -> EncodedEvent {
        let newline = MAX_ID_LINE - 1;
        self.buf[newline] = b'\n';
        let len = id.write_right_aligned(&mut self.buf[..newline]);
        let start = newline - len - b"id: ".len();
        self.buf[start..newline - len].copy_from_slice(b"id: ");
        self.buf.advance(start);
        EncodedEvent::from_bytes(self.buf.freeze())
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
            assert_eq!(text, format!("{:012x}-{seq}", id.epoch.0));
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
    fn an_unnumbered_event_gets_the_id_line_it_would_have_been_encoded_with() {
        for seq in [1, 42, u64::MAX] {
            for epoch in [Epoch(0), Epoch(0xab), Epoch(EPOCH_MASK), Epoch::random()] {
                let id = EventId::new(epoch, seq);
                let event = || Event::new().event("price").data("a\nb");
                let numbered = Unnumbered::encode(event()).unwrap().with_id(id);
                assert_eq!(numbered, event().id(id).encode().unwrap());
            }
        }
    }

    #[test]
    fn fresh_epochs_differ() {
        assert_ne!(Epoch::random(), Epoch::random());
    }
}
