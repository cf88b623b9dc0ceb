//! Keep-alive pings sent while a stream is idle.

use std::time::Duration;

use bytes::Bytes;

use crate::event::{EncodedEvent, Event};

/// How a connection is kept alive while its stream has nothing to send.
///
/// After `interval` without a write, a comment (by default an empty one, `:`)
/// or a configured ping event is sent, so that proxies and load balancers do
/// not close an idle connection and a gone client is noticed. Pings go only
/// between events, never inside one, and every write postpones the next ping.
///
/// ```
/// use std::time::Duration;
/// use tower_sse::KeepAlive;
///
/// let keep_alive = KeepAlive::new()
///     .interval(Duration::from_secs(20))
///     .text("ping");
/// # let _ = keep_alive;
/// ```
#[derive(Clone, Debug)]
pub struct KeepAlive {
    interval: Duration,
    ping: Bytes,
}

impl KeepAlive {
    /// The interval used when none is set: 15 seconds.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);

    /// Keep-alive every 15 seconds with an empty comment.
    #[must_use]
    pub fn new() -> Self {
        Self {
            interval: Self::DEFAULT_INTERVAL,
            ping: Bytes::from_static(b":\n\n"),
        }
    }

    /// Sets how long a connection may stay silent before a ping is sent.
    ///
    /// An interval below one millisecond is raised to one millisecond.
    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Sends a comment with this text as the ping; a multi-line text is
    /// written as one comment line per line.
    #[must_use]
    pub fn text(mut self, text: impl AsRef<str>) -> Self {
        // An event with only a comment cannot hold an error.
        if let Ok(ping) = Event::new().comment(text.as_ref().to_owned()).encode() {
            self.ping = ping.into_bytes();
        }
        self
    }

    /// Sends this event as the ping, for clients that need to observe pings
    /// (a browser's `EventSource` does not dispatch comments).
    #[must_use]
    pub fn event(mut self, event: EncodedEvent) -> Self {
        self.ping = event.into_bytes();
        self
    }

    /// The idle interval after which a ping is sent.
    pub fn get_interval(&self) -> Duration {
        self.interval
    }

    pub(crate) fn ping(&self) -> &Bytes {
        &self.ping
    }
}

impl Default for KeepAlive {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ping_is_an_empty_comment() {
        assert_eq!(KeepAlive::new().ping().as_ref(), b":\n\n");
    }

    #[test]
    fn text_ping_is_one_comment_line_per_line() {
        assert_eq!(
            KeepAlive::new().text("a\nb").ping().as_ref(),
            b": a\n: b\n\n"
        );
    }

    #[test]
    fn zero_interval_is_raised() {
        assert_eq!(
            KeepAlive::new().interval(Duration::ZERO).get_interval(),
            Duration::from_millis(1)
        );
    }
}
