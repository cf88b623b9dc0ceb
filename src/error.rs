//! Error types.

use std::fmt;

/// A type-erased error, as used for the error type of [`SseBody`](crate::SseBody).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An [`Event`](crate::Event) field held a value that the event-stream format
/// cannot carry.
///
/// Returned by [`Event::encode`](crate::Event::encode) for the first invalid
/// value the event was given. An invalid event never produces bytes. It says
/// which field was refused and, when a character was the reason, which one
/// and where ([`invalid_char`](EventError::invalid_char),
/// [`position`](EventError::position)):
///
/// ```
/// use tower_sse::Event;
///
/// let error = Event::new().id("a\tb").encode().unwrap_err();
/// assert!(error.is_invalid_id());
/// assert_eq!((error.invalid_char(), error.position()), (Some('\t'), Some(1)));
/// assert_eq!(
///     error.to_string(),
///     "sse event id has U+0009 at byte 1: an id cannot hold a control character",
/// );
/// ```
#[derive(Debug, Clone)]
pub struct EventError {
    kind: EventErrorKind,
}

#[derive(Debug, Clone)]
pub(crate) enum EventErrorKind {
    /// An `id` value that would not come back as a `Last-Event-ID`.
    InvalidId(Fault),
    /// An `event` (type) value holding CR or LF.
    InvalidEventType(Fault),
    /// Serializing JSON data failed.
    #[cfg(feature = "json")]
    Json(std::sync::Arc<serde_json::Error>),
}

/// What is wrong with an id or event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// A character the field cannot hold, at this byte offset.
    Char { at: usize, ch: char },
    /// A space at the start or the end (at this byte offset), which an HTTP
    /// header value cannot keep.
    Space { at: usize },
    /// Longer than the limit.
    TooLong { len: usize },
}

impl EventError {
    pub(crate) fn new(kind: EventErrorKind) -> Self {
        Self { kind }
    }

    fn fault(&self) -> Option<Fault> {
        match self.kind {
            EventErrorKind::InvalidId(fault) | EventErrorKind::InvalidEventType(fault) => {
                Some(fault)
            }
            #[cfg(feature = "json")]
            EventErrorKind::Json(_) => None,
        }
    }

    /// The id cannot be sent: it holds a control character (C0, DEL or C1),
    /// starts or ends with a space, or is longer than
    /// [`LastEventId::MAX_LEN`](crate::LastEventId::MAX_LEN) bytes, so the
    /// client could not send it back as a valid `Last-Event-ID`.
    pub fn is_invalid_id(&self) -> bool {
        matches!(self.kind, EventErrorKind::InvalidId(_))
    }

    /// The event type held CR or LF.
    pub fn is_invalid_event_type(&self) -> bool {
        matches!(self.kind, EventErrorKind::InvalidEventType(_))
    }

    /// The character that made the id or event type invalid, if a character
    /// did (a space at either end of an id counts; a length does not).
    pub fn invalid_char(&self) -> Option<char> {
        match self.fault()? {
            Fault::Char { ch, .. } => Some(ch),
            Fault::Space { .. } => Some(' '),
            Fault::TooLong { .. } => None,
        }
    }

    /// The byte offset, in the id or event type, of
    /// [`invalid_char`](EventError::invalid_char).
    pub fn position(&self) -> Option<usize> {
        match self.fault()? {
            Fault::Char { at, .. } | Fault::Space { at } => Some(at),
            Fault::TooLong { .. } => None,
        }
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
        // Event types only ever fail on CR or LF; ids on the id rule.
        match &self.kind {
            EventErrorKind::InvalidId(Fault::Char { at, ch }) => write!(
                f,
                "sse event id has U+{:04X} at byte {at}: an id cannot hold a control character",
                u32::from(*ch)
            ),
            EventErrorKind::InvalidId(Fault::Space { at }) => write!(
                f,
                "sse event id has a space at byte {at}: an id cannot start or end with one \
                 (the Last-Event-ID header would lose it)"
            ),
            EventErrorKind::InvalidId(Fault::TooLong { len }) => write!(
                f,
                "sse event id is {len} bytes long: an id is at most {} bytes",
                crate::LastEventId::MAX_LEN
            ),
            EventErrorKind::InvalidEventType(fault) => match *fault {
                Fault::Char { at, ch } => write!(
                    f,
                    "sse event type has U+{:04X} at byte {at}: a type cannot hold CR or LF",
                    u32::from(ch)
                ),
                Fault::Space { at } => write!(f, "sse event type has a space at byte {at}"),
                Fault::TooLong { len } => write!(f, "sse event type is {len} bytes long"),
            },
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
    SurroundingSpace,
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
            InvalidLastEventIdKind::SurroundingSpace => "starts or ends with a space",
            InvalidLastEventIdKind::Repeated => "header sent more than once",
        };
        write!(f, "last-event-id {why}")
    }
}

impl std::error::Error for InvalidLastEventId {}

/// A stream error meaning "this subscriber fell too far behind and was cut
/// off"; the client should reconnect and catch up.
///
/// A stream that yields `Err(Lagged)` ends its response without the
/// configured error event, and the close hook is told
/// [`CloseReason::Lagged`](crate::CloseReason::Lagged). The response ends
/// cleanly, except on a connection guarded by a
/// [`ConnectionGuard`](crate::ConnectionGuard): there the body ends with the
/// error, so that the server drops what it still buffers for a client that
/// fell behind instead of waiting to write it.
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
