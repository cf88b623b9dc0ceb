//! The `Last-Event-ID` request header, validated.

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::error::{InvalidLastEventId, InvalidLastEventIdKind};

/// The name of the header a reconnecting client sends: `last-event-id`.
pub static LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// The id of the last event a reconnecting client received, from its
/// `Last-Event-ID` header.
///
/// [`SseLayer`](crate::SseLayer) parses the header and puts a `LastEventId` in
/// the request's extensions when it is valid. The value comes from the client:
/// treat it as untrusted. A valid value is non-empty UTF-8 of at most
/// [`MAX_LEN`](LastEventId::MAX_LEN) bytes without control characters;
/// anything else is treated as absent.
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

/// Why a request's headers hold no usable `Last-Event-ID`.
#[derive(Debug)]
// Only the axum extractor tells the cases apart.
#[cfg_attr(not(feature = "axum"), allow(dead_code))]
pub(crate) enum Unusable {
    Missing,
    Repeated,
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
    /// bytes, or holds a control character.
    pub fn new(value: &str) -> Result<Self, InvalidLastEventId> {
        if value.is_empty() {
            return Err(InvalidLastEventId::new(InvalidLastEventIdKind::Empty));
        }
        if value.len() > Self::MAX_LEN {
            return Err(InvalidLastEventId::new(InvalidLastEventIdKind::TooLong));
        }
        if value.chars().any(char::is_control) {
            return Err(InvalidLastEventId::new(
                InvalidLastEventIdKind::ControlCharacter,
            ));
        }
        Ok(Self(value.into()))
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
    /// is missing, invalid, or present more than once.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        Self::from_single_header(headers).ok()
    }

    /// The valid `Last-Event-ID` of a request's headers, or why there is none
    /// to use: the one place that says a usable header is present exactly once.
    pub(crate) fn from_single_header(headers: &HeaderMap) -> Result<Self, Unusable> {
        let mut values = headers.get_all(&LAST_EVENT_ID).iter();
        let value = values.next().ok_or(Unusable::Missing)?;
        if values.next().is_some() {
            return Err(Unusable::Repeated);
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
    }
}
