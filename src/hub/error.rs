//! The hub's error type.

use std::fmt;

use crate::error::EventError;

/// An event that the hub refused: it could not be encoded, it already had
/// an id, or (for a hub on Redis) Redis could not be reached in time.
///
/// Returned by [`Hub::publish`](super::Hub::publish) and
/// [`Hub::send_to`](super::Hub::send_to), and by `RedisHub`'s. A refused
/// event reaches no one, except that Redis may have published an event whose
/// answer alone was lost (see [`is_unavailable`](HubError::is_unavailable)).
#[derive(Debug, Clone)]
pub struct HubError {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Event(EventError),
    IdSet,
    #[cfg(feature = "redis")]
    Unavailable(std::sync::Arc<dyn std::error::Error + Send + Sync>),
}

impl HubError {
    pub(crate) fn event(error: EventError) -> Self {
        Self {
            kind: Kind::Event(error),
        }
    }

    pub(crate) fn id_set() -> Self {
        Self { kind: Kind::IdSet }
    }

    #[cfg(feature = "redis")]
    pub(crate) fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            kind: Kind::Unavailable(std::sync::Arc::new(error)),
        }
    }

    /// Redis could not be reached, or did not answer in time: the event was
    /// not published (or, when the answer was lost, may have been; its id is
    /// unknown). Try again later. Only a `RedisHub` returns it.
    pub fn is_unavailable(&self) -> bool {
        #[cfg(feature = "redis")]
        if let Kind::Unavailable(_) = self.kind {
            return true;
        }
        false
    }

    /// The event already had an id. The hub assigns every id itself, so that
    /// a client's `Last-Event-ID` always names a position it can resume from.
    pub fn is_id_set(&self) -> bool {
        matches!(self.kind, Kind::IdSet)
    }

    /// The event's own error, when it could not be encoded.
    pub fn event_error(&self) -> Option<&EventError> {
        match &self.kind {
            Kind::Event(error) => Some(error),
            _ => None,
        }
    }
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Event(_) => f.write_str("sse hub event could not be encoded"),
            Kind::IdSet => f.write_str("sse hub event already has an id; the hub assigns ids"),
            #[cfg(feature = "redis")]
            Kind::Unavailable(cause) => write!(f, "sse hub could not use Redis: {cause}"),
        }
    }
}

impl std::error::Error for HubError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::Event(error) => Some(error),
            Kind::IdSet => None,
            #[cfg(feature = "redis")]
            Kind::Unavailable(error) => Some(&**error),
        }
    }
}

/// A string that is not an [`EventId`](super::EventId) of any hub: returned
/// by `str::parse::<EventId>()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidEventId(pub(crate) ());

impl fmt::Display for InvalidEventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a hub event id (`{epoch}-{position}`: 12 lowercase hex digits, a dash, a decimal position)")
    }
}

impl std::error::Error for InvalidEventId {}
