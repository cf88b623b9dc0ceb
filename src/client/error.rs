//! Why a connection of an [`EventSource`](super::EventSource) ended.

use std::error::Error;
use std::fmt;

use http::StatusCode;

use crate::BoxError;
use crate::decode::DecodeError;

/// Why a connection ended, or why the source gave up for good.
///
/// The stream of an [`EventSource`](super::EventSource) yields it as
/// `Err(error)` when it gives up (its last item), and inside
/// [`SourceEvent::Reconnecting`](super::SourceEvent::Reconnecting) when it will
/// try again. [`is_fatal`](ClientError::is_fatal) tells which kind of reason it
/// is.
pub struct ClientError {
    kind: Kind,
}

#[derive(Debug)]
pub(crate) enum Kind {
    /// The request could not be built (a bad URI, header or redirect target).
    InvalidRequest(BoxError),
    /// The server answered `204 No Content`: stop reconnecting.
    NoContent,
    /// A status the source does not stream from.
    Status { status: StatusCode, fatal: bool },
    /// A successful status with a `Content-Type` other than `text/event-stream`.
    ContentType,
    /// More redirects than the bound.
    TooManyRedirects { limit: usize },
    /// The stream broke a decoder limit.
    Decode(DecodeError),
    /// The transport failed to deliver a response.
    Transport(BoxError),
    /// The response body failed.
    Body(BoxError),
    /// No byte arrived within the idle timeout.
    IdleTimeout,
    /// The server ended the response.
    Ended,
}

impl ClientError {
    pub(crate) fn new(kind: Kind) -> Self {
        Self { kind }
    }

    /// Returns true if the source gave up for good because of this error;
    /// false if it reconnects.
    pub fn is_fatal(&self) -> bool {
        match &self.kind {
            Kind::InvalidRequest(_)
            | Kind::NoContent
            | Kind::ContentType
            | Kind::TooManyRedirects { .. }
            | Kind::Decode(_) => true,
            Kind::Status { fatal, .. } => *fatal,
            Kind::Transport(_) | Kind::Body(_) | Kind::IdleTimeout | Kind::Ended => false,
        }
    }

    /// The request could not be built: an invalid URI or header given to the
    /// builder, or a redirect to a location that is not a valid URI.
    pub fn is_invalid_request(&self) -> bool {
        matches!(self.kind, Kind::InvalidRequest(_))
    }

    /// The server answered `204 No Content`, which tells a client to stop
    /// reconnecting.
    pub fn is_no_content(&self) -> bool {
        matches!(self.kind, Kind::NoContent)
    }

    /// The status of a response that was not streamed (any status but `204`
    /// and a successful one); `None` for every other kind of error.
    pub fn status(&self) -> Option<StatusCode> {
        match self.kind {
            Kind::Status { status, .. } => Some(status),
            _ => None,
        }
    }

    /// A successful response whose `Content-Type` was not `text/event-stream`.
    pub fn is_content_type(&self) -> bool {
        matches!(self.kind, Kind::ContentType)
    }

    /// The server redirected more times than the bound set with
    /// [`EventSourceBuilder::max_redirects`](super::EventSourceBuilder::max_redirects).
    pub fn is_too_many_redirects(&self) -> bool {
        matches!(self.kind, Kind::TooManyRedirects { .. })
    }

    /// The stream broke a limit of the decoder (a line or an event too long);
    /// the [`DecodeError`] is returned by [`decode_error`](ClientError::decode_error).
    pub fn is_decode(&self) -> bool {
        matches!(self.kind, Kind::Decode(_))
    }

    /// The decoder's error, when the stream broke one of its limits.
    pub fn decode_error(&self) -> Option<&DecodeError> {
        match &self.kind {
            Kind::Decode(error) => Some(error),
            _ => None,
        }
    }

    /// The transport (the HTTP service) failed before a response arrived; its
    /// error is the [`source`](Error::source).
    pub fn is_transport(&self) -> bool {
        matches!(self.kind, Kind::Transport(_))
    }

    /// Reading the response body failed; its error is the
    /// [`source`](Error::source).
    pub fn is_body(&self) -> bool {
        matches!(self.kind, Kind::Body(_))
    }

    /// No byte arrived for the idle timeout set with
    /// [`EventSourceBuilder::idle_timeout`](super::EventSourceBuilder::idle_timeout).
    pub fn is_idle_timeout(&self) -> bool {
        matches!(self.kind, Kind::IdleTimeout)
    }

    /// The server ended the response.
    pub fn is_ended(&self) -> bool {
        matches!(self.kind, Kind::Ended)
    }
}

impl fmt::Debug for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ClientError").field(&self.kind).finish()
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::InvalidRequest(_) => f.write_str("invalid event source request"),
            Kind::NoContent => f.write_str("the server answered 204 No Content: stop reconnecting"),
            Kind::Status { status, .. } => {
                write!(f, "the server answered {status} instead of an event stream")
            }
            Kind::ContentType => f.write_str("the response is not a text/event-stream"),
            Kind::TooManyRedirects { limit } => {
                write!(f, "more than {limit} redirects")
            }
            Kind::Decode(error) => write!(f, "the event stream broke a limit: {error}"),
            Kind::Transport(_) => f.write_str("the request failed"),
            Kind::Body(_) => f.write_str("reading the event stream failed"),
            Kind::IdleTimeout => f.write_str("no byte arrived within the idle timeout"),
            Kind::Ended => f.write_str("the server ended the event stream"),
        }
    }
}

impl Error for ClientError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match &self.kind {
            Kind::InvalidRequest(error) | Kind::Transport(error) | Kind::Body(error) => {
                Some(&**error)
            }
            Kind::Decode(error) => Some(error),
            _ => None,
        }
    }
}
