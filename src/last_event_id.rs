//! The `Last-Event-ID` request header, validated.

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::error::{Fault, InvalidLastEventId, InvalidLastEventIdKind};

/// The name of the header a reconnecting client sends: `last-event-id`.
pub static LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// The id of the last event a reconnecting client received, from its
/// `Last-Event-ID` header.
///
/// [`SseLayer`](crate::SseLayer) parses the header and puts a `LastEventId` in
/// the request's extensions when it is valid. The value comes from the client:
/// treat it as untrusted. A valid value is non-empty UTF-8 of at most
/// [`MAX_LEN`](LastEventId::MAX_LEN) bytes without control characters and
/// without a space at either end, sent in exactly one header: exactly the
/// non-empty ids that [`Event::id`](crate::Event::id) accepts, so that every
/// id a server sends comes back usable. A `LastEventId` alone cannot tell a client that
/// sent no id from one that sent an unusable one: to tell them apart (and
/// resume or resync, never silently restart), read the
/// [`LastEventIdHeader`] that the layer, the axum extractor and the warp
/// filter also provide.
///
/// ```
/// use http::Request;
/// use tower_sse::LastEventId;
///
/// let request = Request::get("/events")
///     .header("last-event-id", "42")
///     .body(())
///     .unwrap();
/// let id = LastEventId::from_headers(request.headers()).unwrap();
/// assert_eq!(id.as_str(), "42");
/// assert_eq!(id.parse::<u64>().ok(), Some(42));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LastEventId(Box<str>);

/// A request's `Last-Event-ID` header as a handler must see it: absent, a
/// usable id, or sent but unusable.
///
/// A client that sent an id must be resumed or told that it cannot be (with
/// the hub: its `tower-sse-resync` signal), never silently restarted as if it
/// were new. [`SseLayer`](crate::SseLayer) puts a `LastEventIdHeader` in
/// every request's extensions (replacing any an outer layer set); with axum it
/// is an extractor that never rejects, and with warp the
/// `tower_sse::warp::last_event_id_header()` filter extracts it.
///
/// A value is valid when it is non-empty UTF-8 of at most
/// [`LastEventId::MAX_LEN`] bytes without control characters or a space at
/// either end, in exactly one header (the non-empty ids that
/// [`Event::id`](crate::Event::id) accepts). An empty header counts as
/// absent: it is what a client whose last event id was reset by an empty
/// `id:` means, and it sends none at all.
///
/// To pass it on to the hub, or to anything that takes an `Option<&str>` and
/// treats `None` (or `""`) as "no id", use
/// [`for_resume`](LastEventIdHeader::for_resume): an invalid header becomes
/// [`INVALID_MARKER`](LastEventIdHeader::INVALID_MARKER), a non-empty string
/// that is never a valid id, so the hub answers it with its resync signal.
///
/// ```
/// use http::Request;
/// use tower_sse::LastEventIdHeader;
///
/// let request = Request::get("/events")
///     .header("last-event-id", "4\t2")
///     .body(())
///     .unwrap();
/// let header = LastEventIdHeader::from_headers(request.headers());
/// assert!(header.is_invalid());
/// assert_eq!(header.for_resume(), Some(LastEventIdHeader::INVALID_MARKER));
///
/// let request = Request::get("/events").header("last-event-id", "42").body(()).unwrap();
/// let header = LastEventIdHeader::from_headers(request.headers());
/// assert_eq!(header.for_resume(), Some("42"));
///
/// let request = Request::get("/events").body(()).unwrap();
/// assert_eq!(LastEventIdHeader::from_headers(request.headers()).for_resume(), None);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LastEventIdHeader {
    /// No `Last-Event-ID` header (or an empty one): the client has no id.
    #[default]
    Absent,
    /// One header holding a usable id.
    Valid(LastEventId),
    /// A header was sent but cannot be used: not UTF-8, too long, holding a
    /// control character, or sent more than once.
    Invalid(InvalidLastEventId),
}

impl LastEventIdHeader {
    /// What [`for_resume`](LastEventIdHeader::for_resume) gives for an
    /// invalid header: `"\u{1}invalid-last-event-id"`.
    ///
    /// It is not empty (so it is not taken for "no id"), and it starts with a
    /// control character, so it is never a valid [`LastEventId`] nor an id the
    /// hub assigned: resuming from it always gets the resync signal.
    pub const INVALID_MARKER: &'static str = "\u{1}invalid-last-event-id";

    /// Reads the `Last-Event-ID` header of a request's headers.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        match LastEventId::from_single_header(headers) {
            Ok(id) => Self::Valid(id),
            Err(Unusable::Missing) => Self::Absent,
            Err(Unusable::Invalid(error)) => Self::Invalid(error),
        }
    }

    /// What to resume from, for the hub's `subscribe` (or anything that takes
    /// an `Option<&str>`): `None` when absent, the id when valid, and
    /// [`INVALID_MARKER`](LastEventIdHeader::INVALID_MARKER) when invalid.
    ///
    /// ```ignore
    /// let events = hub.subscribe(["news"], header.for_resume());
    /// ```
    pub fn for_resume(&self) -> Option<&str> {
        match self {
            Self::Absent => None,
            Self::Valid(id) => Some(id.as_str()),
            Self::Invalid(_) => Some(Self::INVALID_MARKER),
        }
    }

    /// The valid id, if the client sent one.
    pub fn valid(&self) -> Option<&LastEventId> {
        match self {
            Self::Valid(id) => Some(id),
            _ => None,
        }
    }

    /// The valid id, if the client sent one, consuming the header.
    pub fn into_valid(self) -> Option<LastEventId> {
        match self {
            Self::Valid(id) => Some(id),
            _ => None,
        }
    }

    /// Whether the request had no `Last-Event-ID` (or an empty one).
    pub fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }

    /// Whether the client sent a `Last-Event-ID` that cannot be used.
    pub fn is_invalid(&self) -> bool {
        matches!(self, Self::Invalid(_))
    }
}

/// The one rule for ids, shared by [`Event::id`](crate::Event::id) and
/// [`LastEventId`]: what is wrong with the non-empty `value` (UTF-8) as an id
/// that survives the round trip from the server to a browser and back in a
/// `Last-Event-ID` header, or `None` when nothing is.
///
/// - at most [`LastEventId::MAX_LEN`] bytes (a bound on what a server takes
///   from a client);
/// - no control character (`char::is_control`: C0, DEL, C1): browsers send
///   a tab and C1 characters back verbatim, hyper refuses a request holding
///   the other C0 characters or DEL with `400`, and ids holding them were
///   never valid `Last-Event-ID`s;
/// - no space at either end: HTTP trims the whitespace around a header
///   value, so the id would come back without it.
///
/// The empty id is the caller's business: for an event it resets the
/// client's last event id, and a `Last-Event-ID` header holding it is absent.
/// An event checks a short ASCII id a word at a time first
/// (`event.rs`: `pack_plain`) and calls this for anything else.
pub(crate) fn id_fault(value: &[u8]) -> Option<Fault> {
    if value.len() > LastEventId::MAX_LEN {
        return Some(Fault::TooLong { len: value.len() });
    }
    for (at, &byte) in value.iter().enumerate() {
        if byte < 0x20 || byte == 0x7f {
            return Some(Fault::Char {
                at,
                ch: char::from(byte),
            });
        }
        // U+0080 to U+009F are 0xC2 followed by the code point's own byte.
        if byte == 0xc2 {
            if let Some(&next @ 0x80..=0x9f) = value.get(at + 1) {
                return Some(Fault::Char {
                    at,
                    ch: char::from(next),
                });
            }
        }
    }
    match (value.first(), value.last()) {
        (Some(b' '), _) => Some(Fault::Space { at: 0 }),
        (_, Some(b' ')) => Some(Fault::Space {
            at: value.len() - 1,
        }),
        _ => None,
    }
}

/// Why a request's headers hold no usable `Last-Event-ID`.
#[derive(Debug)]
pub(crate) enum Unusable {
    /// No header, or an empty one.
    Missing,
    Invalid(InvalidLastEventId),
}

impl LastEventId {
    /// The longest accepted value, in bytes.
    pub const MAX_LEN: usize = 1024;

    /// Validates `value` as a last event id.
    ///
    /// # Errors
    ///
    /// When `value` is empty, longer than [`MAX_LEN`](LastEventId::MAX_LEN)
    /// bytes, holds a control character (C0, DEL or C1: `char::is_control`),
    /// or starts or ends with a space.
    pub fn new(value: &str) -> Result<Self, InvalidLastEventId> {
        if value.is_empty() {
            return Err(InvalidLastEventId::new(InvalidLastEventIdKind::Empty));
        }
        match id_fault(value.as_bytes()) {
            None => Ok(Self(value.into())),
            Some(Fault::TooLong { .. }) => {
                Err(InvalidLastEventId::new(InvalidLastEventIdKind::TooLong))
            }
            Some(Fault::Char { .. }) => Err(InvalidLastEventId::new(
                InvalidLastEventIdKind::ControlCharacter,
            )),
            Some(Fault::Space { .. }) => Err(InvalidLastEventId::new(
                InvalidLastEventIdKind::SurroundingSpace,
            )),
        }
    }

    /// Validates a header value as a last event id.
    ///
    /// # Errors
    ///
    /// As [`new`](LastEventId::new), and when the value is not UTF-8.
    pub fn from_header_value(value: &HeaderValue) -> Result<Self, InvalidLastEventId> {
        if value.len() > Self::MAX_LEN {
            return Err(InvalidLastEventId::new(InvalidLastEventIdKind::TooLong));
        }
        let value = std::str::from_utf8(value.as_bytes())
            .map_err(|_| InvalidLastEventId::new(InvalidLastEventIdKind::NotUtf8))?;
        Self::new(value)
    }

    /// The valid `Last-Event-ID` of a request's headers; `None` when the header
    /// is missing, invalid, or present more than once. To tell these apart,
    /// use [`LastEventIdHeader::from_headers`].
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        Self::from_single_header(headers).ok()
    }

    /// The valid `Last-Event-ID` of a request's headers, or why there is none
    /// to use: the one place that says a usable header is present exactly once.
    pub(crate) fn from_single_header(headers: &HeaderMap) -> Result<Self, Unusable> {
        let mut values = headers.get_all(&LAST_EVENT_ID).iter();
        let value = values.next().ok_or(Unusable::Missing)?;
        if values.next().is_some() {
            return Err(Unusable::Invalid(InvalidLastEventId::new(
                InvalidLastEventIdKind::Repeated,
            )));
        }
        if value.is_empty() {
            return Err(Unusable::Missing);
        }
        Self::from_header_value(value).map_err(Unusable::Invalid)
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as an owned string.
    pub fn into_string(self) -> String {
        self.0.into()
    }
}

impl std::ops::Deref for LastEventId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for LastEventId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LastEventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LastEventId").field(&self.0).finish()
    }
}

impl fmt::Display for LastEventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for LastEventId {
    type Err = InvalidLastEventId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_is_not_an_id() {
        assert!(LastEventId::new("").is_err());
        assert!(LastEventId::new("a\tb").is_err());
        assert!(LastEventId::new("a\u{7f}").is_err());
        assert!(LastEventId::new("a\u{85}").is_err());
        assert!(LastEventId::new(" a").is_err());
        assert!(LastEventId::new("a ").is_err());
        assert!(LastEventId::new("a b").is_ok());
        assert!(LastEventId::new("\u{a0}").is_ok());
        assert!(LastEventId::new(&"x".repeat(LastEventId::MAX_LEN + 1)).is_err());
        assert!(LastEventId::new(&"x".repeat(LastEventId::MAX_LEN)).is_ok());
        let not_utf8 = HeaderValue::from_bytes(b"\xff\xfe").unwrap();
        assert!(LastEventId::from_header_value(&not_utf8).is_err());
    }

    #[test]
    fn accepts_unicode() {
        assert_eq!(
            LastEventId::new("événement-7").unwrap().as_str(),
            "événement-7"
        );
    }

    #[test]
    fn duplicate_headers_are_ignored() {
        let mut headers = HeaderMap::new();
        headers.append(&LAST_EVENT_ID, HeaderValue::from_static("1"));
        headers.append(&LAST_EVENT_ID, HeaderValue::from_static("2"));
        assert_eq!(LastEventId::from_headers(&headers), None);
        let header = LastEventIdHeader::from_headers(&headers);
        assert!(matches!(header, LastEventIdHeader::Invalid(ref e) if e.is_repeated()));
    }

    #[test]
    fn invalid_marker_is_never_a_valid_id() {
        assert!(!LastEventIdHeader::INVALID_MARKER.is_empty());
        assert!(LastEventId::new(LastEventIdHeader::INVALID_MARKER).is_err());
    }

    #[test]
    fn empty_header_is_absent() {
        let mut headers = HeaderMap::new();
        headers.insert(&LAST_EVENT_ID, HeaderValue::from_static(""));
        assert_eq!(
            LastEventIdHeader::from_headers(&headers),
            LastEventIdHeader::Absent
        );
    }
}
