//! Error types.

use std::fmt;

/// A type-erased error, as used for the error type of [`SseBody`](crate::SseBody).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An [`Event`](crate::Event) field held a value that the event-stream format
/// cannot carry.
///
/// Returned by [`Event::encode`](crate::Event::encode) for the first invalid
/// value the event was given. An invalid event never produces bytes.
#[derive(Debug, Clone)]
pub struct EventError {
    kind: EventErrorKind,
}

#[derive(Debug, Clone)]
pub(crate) enum EventErrorKind {
    /// An `id` value contained CR, LF or NUL.
    InvalidId,
    /// An `event` (type) value contained CR or LF.
    InvalidEventType,
    /// Serializing JSON data failed.
    #[cfg(feature = "json")]
    Json(std::sync::Arc<serde_json::Error>),
}

impl EventError {
    pub(crate) fn new(kind: EventErrorKind) -> Self {
        Self { kind }
    }

    /// The id held CR, LF or NUL.
    pub fn is_invalid_id(&self) -> bool {
        matches!(self.kind, EventErrorKind::InvalidId)
    }

    /// The event type held CR or LF.
    pub fn is_invalid_event_type(&self) -> bool {
        matches!(self.kind, EventErrorKind::InvalidEventType)
    }

    /// Serializing the JSON data failed.
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn is_json(&self) -> bool {
        matches!(self.kind, EventErrorKind::Json(_))
    }
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            EventErrorKind::InvalidId => {
                f.write_str("sse event id contains a line break (CR or LF) or NUL")
            }
            EventErrorKind::InvalidEventType => {
                f.write_str("sse event type contains a line break (CR or LF)")
            }
            #[cfg(feature = "json")]
            EventErrorKind::Json(_) => {
                f.write_str("sse event data could not be serialized as JSON")
            }
        }
    }
}

impl std::error::Error for EventError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            #[cfg(feature = "json")]
            EventErrorKind::Json(e) => Some(&**e),
            _ => None,
        }
    }
}

/// A `Last-Event-ID` value that cannot be used.
///
/// Returned by [`LastEventId::new`](crate::LastEventId::new), and carried by
/// [`LastEventIdHeader::Invalid`](crate::LastEventIdHeader::Invalid) when a
/// client sent a header that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidLastEventId {
    kind: InvalidLastEventIdKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InvalidLastEventIdKind {
    Empty,
    TooLong,
    NotUtf8,
    ControlCharacter,
    Repeated,
}

impl InvalidLastEventId {
    pub(crate) fn new(kind: InvalidLastEventIdKind) -> Self {
        Self { kind }
    }

    /// Whether the request carried more than one `Last-Event-ID` header.
    pub fn is_repeated(&self) -> bool {
        self.kind == InvalidLastEventIdKind::Repeated
    }
}

impl fmt::Display for InvalidLastEventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.kind {
            InvalidLastEventIdKind::Empty => "is empty",
            InvalidLastEventIdKind::TooLong => "is longer than the limit",
            InvalidLastEventIdKind::NotUtf8 => "is not valid UTF-8",
            InvalidLastEventIdKind::ControlCharacter => "contains a control character",
            InvalidLastEventIdKind::Repeated => "header sent more than once",
        };
        write!(f, "last-event-id {why}")
    }
}

impl std::error::Error for InvalidLastEventId {}

/// A stream error meaning "this subscriber fell too far behind and was cut
/// off"; the client should reconnect and catch up.
///
/// A stream that yields `Err(Lagged)` ends its response cleanly, without the
/// configured error event, and the close hook is told
/// [`CloseReason::Lagged`](crate::CloseReason::Lagged).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lagged(());

impl Lagged {
    /// The error a lagging subscriber's stream yields.
    pub fn new() -> Self {
        Self(())
    }
}

impl fmt::Display for Lagged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sse subscriber lagged behind and was disconnected")
    }
}

impl std::error::Error for Lagged {}

/// A server did not finish within the shutdown grace period; returned by
/// [`Shutdown::within_grace`](crate::Shutdown::within_grace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraceElapsed(());

impl GraceElapsed {
    pub(crate) fn new() -> Self {
        Self(())
    }
}

impl fmt::Display for GraceElapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("server still running at the end of the shutdown grace period")
    }
}

impl std::error::Error for GraceElapsed {}
