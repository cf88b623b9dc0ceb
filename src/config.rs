//! The policy applied to every stream: keep-alive, shutdown, maximum age,
//! errors and the close hook.

use std::fmt;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};

use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tracing::Span;

use crate::connection::ConnectionStatus;
use crate::error::BoxError;
use crate::event::{EncodedEvent, Event};
use crate::jitter;
use crate::keep_alive::KeepAlive;
use crate::shutdown::Shutdown;

/// Why a stream ended, as reported to the [`on_close`](SseConfig::on_close)
/// hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// The response body was dropped before the stream ended: the client went
    /// away, or the server dropped the connection.
    ClientGone,
    /// The event stream ended.
    StreamEnded,
    /// The [`Shutdown`] signal was triggered.
    Shutdown,
    /// The connection reached its [maximum age](SseConfig::max_age).
    MaxAge,
    /// The event stream yielded an error, or an event that could not be
    /// encoded.
    Error,
    /// The event stream yielded [`Lagged`](crate::Lagged): the subscriber fell
    /// too far behind.
    Lagged,
    /// The connection's writes made no progress for its write timeout (the
    /// client stopped reading), and the connection was closed; see
    /// [`ConnectionGuard::write_timeout`](crate::ConnectionGuard::write_timeout).
    WriteTimeout,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CloseReason::ClientGone => "client gone",
            CloseReason::StreamEnded => "stream ended",
            CloseReason::Shutdown => "shutdown",
            CloseReason::MaxAge => "max age",
            CloseReason::Error => "error",
            CloseReason::Lagged => "lagged",
            CloseReason::WriteTimeout => "write timeout",
        })
    }
}

/// The last event sent to each open stream when the [`Shutdown`] signal is
/// triggered.
///
/// Its main use is a jittered `retry:`, so that clients disconnected all at
/// once by a restart do not all reconnect in the same instant.
///
/// ```
/// use std::time::Duration;
/// use tower_sse::{Event, Farewell};
///
/// let farewell = Farewell::new()
///     .event(Event::new().event("restarting").data("back soon"))
///     .retry_between(Duration::from_secs(1), Duration::from_secs(10));
/// # let _ = farewell;
/// ```
#[derive(Clone, Debug, Default)]
pub struct Farewell {
    event: Option<Event>,
    retry: Option<RangeInclusive<Duration>>,
}

impl Farewell {
    /// A farewell with no fields: configure at least one of
    /// [`event`](Farewell::event) and [`retry_between`](Farewell::retry_between).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends this event. An event holding an error is not sent.
    #[must_use]
    pub fn event(mut self, event: Event) -> Self {
        self.event = Some(event);
        self
    }

    /// Adds a `retry:` field, chosen for each stream uniformly between `min` and
    /// `max` (inclusive; the two are swapped if `min > max`).
    #[must_use]
    pub fn retry_between(mut self, min: Duration, max: Duration) -> Self {
        self.retry = Some(min.min(max)..=max.max(min));
        self
    }

    /// Encodes the farewell for one stream, with its own jittered retry.
    pub(crate) fn encode(&self) -> Option<EncodedEvent> {
        if self.event.is_none() && self.retry.is_none() {
            return None;
        }
        let mut event = self.event.clone().unwrap_or_default();
        if let Some(range) = &self.retry {
            event = event.retry(jitter::between(*range.start(), *range.end()));
        }
        match event.encode() {
            Ok(event) => Some(event),
            Err(error) => {
                tracing::warn!(%error, "sse farewell event not sent");
                None
            }
        }
    }
}

type ErrorEventFn = dyn Fn(&BoxError) -> Event + Send + Sync;
type OnCloseFn = dyn Fn(CloseReason) + Send + Sync;

/// The policy applied to every stream served with it: keep-alive, shutdown,
/// maximum connection age, what a stream error does, and a hook told why each
/// stream ended.
///
/// Configure it once and give it to [`SseLayer`](crate::SseLayer) (or to
/// [`SseBody::with_config`](crate::SseBody::with_config)). Cloning is cheap.
///
/// ```
/// use std::time::Duration;
/// use tower_sse::{CloseReason, KeepAlive, Shutdown, SseConfig};
///
/// let shutdown = Shutdown::new();
/// let config = SseConfig::new()
///     .keep_alive(KeepAlive::new().interval(Duration::from_secs(20)))
///     .shutdown(shutdown.clone())
///     .max_age(Duration::from_secs(3600))
///     .max_age_jitter(Duration::from_secs(300))
///     .on_close(|reason: CloseReason| tracing::info!(%reason, "sse stream closed"));
/// # let _ = config;
/// ```
#[derive(Clone)]
pub struct SseConfig {
    inner: Arc<Inner>,
}

impl Default for SseConfig {
    /// The default policy, shared: a body or a response made with it costs no
    /// allocation for its policy.
    fn default() -> Self {
        static DEFAULT: OnceLock<SseConfig> = OnceLock::new();
        DEFAULT
            .get_or_init(|| SseConfig {
                inner: Arc::new(Inner::default()),
            })
            .clone()
    }
}

#[derive(Clone)]
pub(crate) struct Inner {
    pub(crate) keep_alive: Option<KeepAlive>,
    pub(crate) shutdown: Option<Shutdown>,
    pub(crate) farewell: Option<Farewell>,
    pub(crate) max_age: Option<Duration>,
    pub(crate) max_age_jitter: Duration,
    pub(crate) error_event: Option<Arc<ErrorEventFn>>,
    pub(crate) on_close: Option<Arc<OnCloseFn>>,
    pub(crate) require_accept: bool,
    pub(crate) max_frame_bytes: usize,
    pub(crate) open_with_comment: bool,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            keep_alive: Some(KeepAlive::new()),
            shutdown: None,
            farewell: None,
            max_age: None,
            max_age_jitter: Duration::ZERO,
            error_event: None,
            on_close: None,
            require_accept: false,
            max_frame_bytes: SseConfig::DEFAULT_MAX_FRAME_BYTES,
            open_with_comment: false,
        }
    }
}

impl SseConfig {
    /// The default bound on the bytes of ready events joined into one frame:
    /// 16 KiB.
    pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024;

    /// The default policy: keep-alive every 15 seconds, no shutdown signal, no
    /// maximum age, stream errors end the response cleanly, no close hook, no
    /// `Accept` check.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Sets the keep-alive policy.
    #[must_use]
    pub fn keep_alive(mut self, keep_alive: KeepAlive) -> Self {
        self.inner_mut().keep_alive = Some(keep_alive);
        self
    }

    /// Turns keep-alive off: an idle stream sends nothing.
    #[must_use]
    pub fn without_keep_alive(mut self) -> Self {
        self.inner_mut().keep_alive = None;
        self
    }

    /// Ends every stream when `shutdown` is triggered, after the
    /// [`farewell`](SseConfig::farewell) if one is set.
    #[must_use]
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.inner_mut().shutdown = Some(shutdown);
        self
    }

    /// Sends this event to every open stream when the shutdown signal is
    /// triggered, just before the stream ends.
    #[must_use]
    pub fn farewell(mut self, farewell: Farewell) -> Self {
        self.inner_mut().farewell = Some(farewell);
        self
    }

    /// Ends each stream once it has been open this long; the client then
    /// reconnects (to another server behind a load balancer, say).
    ///
    /// A `max_age` of zero ends every stream at its first poll.
    #[must_use]
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.inner_mut().max_age = Some(max_age);
        self
    }

    /// Ends each stream at a random time between `max_age - jitter` and
    /// `max_age`, so that clients connected together do not all reconnect
    /// together. Has no effect without [`max_age`](SseConfig::max_age).
    #[must_use]
    pub fn max_age_jitter(mut self, jitter: Duration) -> Self {
        self.inner_mut().max_age_jitter = jitter;
        self
    }

    /// Sends the event that `make_event` builds from a stream error before the
    /// response ends. By default a stream error ends the response without one.
    ///
    /// The error may hold details that a client should not see: choose what the
    /// event says.
    #[must_use]
    pub fn error_event<F>(mut self, make_event: F) -> Self
    where
        F: Fn(&BoxError) -> Event + Send + Sync + 'static,
    {
        self.inner_mut().error_event = Some(Arc::new(make_event));
        self
    }

    /// Calls `hook` once for each stream, when it ends, with the reason.
    #[must_use]
    pub fn on_close<F>(mut self, hook: F) -> Self
    where
        F: Fn(CloseReason) + Send + Sync + 'static,
    {
        self.inner_mut().on_close = Some(Arc::new(hook));
        self
    }

    /// Answers `406 Not Acceptable` to a request whose `Accept` header does not
    /// allow `text/event-stream`. A request with no `Accept` header is served.
    ///
    /// The check needs the request, so it is made where a request is seen:
    ///
    /// - [`SseLayer`](crate::SseLayer) answers `406` without calling the inner
    ///   service;
    /// - [`SseConfigLayer`](crate::SseConfigLayer) (and warp's
    ///   `apply_config`) cannot know before the handler answers whether a
    ///   route streams events, so the handler runs; its SSE response becomes
    ///   an empty `406` whose stream is dropped unpolled, with no close
    ///   reported. Other responses are untouched. It applies to every SSE
    ///   response inside the layer, including one with a config of its own
    ///   (inside `SseConfigLayer`, a response whose own config requires it is
    ///   refused too).
    ///
    /// A body or a framework response made with such a config outside these
    /// layers never sees the request: put the setting on the layer.
    #[must_use]
    pub fn require_accept(mut self, require: bool) -> Self {
        self.inner_mut().require_accept = require;
        self
    }

    /// Bounds the bytes of ready events joined into one frame.
    ///
    /// Events that are ready together are written together, which saves the
    /// server a write per event; the bound keeps a connection whose stream is
    /// always ready from holding its worker thread for long. An event larger
    /// than the bound is still sent, alone. `0` sends every event in a frame of
    /// its own.
    ///
    /// It also bounds what a slow client makes the server hold. hyper asks a
    /// body for up to 16 frames (about 400 KiB) before it writes them; while
    /// a frame's worth (`max_frame_bytes`, or 16 KiB if that is larger) of
    /// a body's own frame buffers waits in the server, each further frame
    /// carries one event. A connection whose client reads slowly therefore
    /// holds at most about that much plus 15 single events of its own (the
    /// hub's shared events and large data pieces are shared, not copied, and
    /// not counted).
    #[must_use]
    pub fn max_frame_bytes(mut self, max_frame_bytes: usize) -> Self {
        self.inner_mut().max_frame_bytes = max_frame_bytes;
        self
    }

    /// Starts every stream with an empty comment (`:`), sent at once,
    /// before the first event (default: off).
    ///
    /// Some HTTP/2 proxies and load balancers hold a response's head until
    /// its first body byte: a stream whose first event comes late would look
    /// like a request that hangs, and a client's `open` would wait for it.
    /// The comment is ignored by every client.
    #[must_use]
    pub fn open_with_comment(mut self, open_with_comment: bool) -> Self {
        self.inner_mut().open_with_comment = open_with_comment;
        self
    }

    /// The time at which a stream opened now should end, if any.
    pub(crate) fn pick_max_age(&self) -> Option<Duration> {
        let max_age = self.inner.max_age?;
        let jitter = self.inner.max_age_jitter.min(max_age);
        Some(jitter::between(max_age - jitter, max_age))
    }
}

impl fmt::Debug for SseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("SseConfig")
            .field("keep_alive", &inner.keep_alive)
            .field("shutdown", &inner.shutdown)
            .field("farewell", &inner.farewell)
            .field("max_age", &inner.max_age)
            .field("max_age_jitter", &inner.max_age_jitter)
            .field("error_event", &inner.error_event.is_some())
            .field("on_close", &inner.on_close.is_some())
            .field("require_accept", &inner.require_accept)
            .field("max_frame_bytes", &inner.max_frame_bytes)
            .field("open_with_comment", &inner.open_with_comment)
            .finish()
    }
}

/// A response extension through which [`SseConfigLayer`](crate::SseConfigLayer)
/// (or warp's `apply_config`) gives a body made before it saw the response
/// what only it knows: the app's policy, the request's connection, and
/// whether the request refused `text/event-stream`.
///
/// Framework adapters make the SSE body inside the handler, where the app's
/// policy is not known; the body reads the slot at its first poll.
#[derive(Clone, Default)]
pub(crate) struct ConfigSlot(Arc<SlotInner>);

#[derive(Default)]
struct SlotInner {
    config: OnceLock<SseConfig>,
    connection: OnceLock<ConnectionStatus>,
    span: OnceLock<Span>,
    refused: AtomicBool,
    // The response has a config of its own: the layer's is not taken.
    explicit: bool,
    // The response's own config requires `Accept: text/event-stream`.
    requires_accept: bool,
}

impl ConfigSlot {
    /// A slot for a response made with `explicit` as its own policy, or
    /// without one.
    #[cfg_attr(not(any(feature = "axum", feature = "warp")), allow(dead_code))]
    pub(crate) fn new(explicit: Option<&SseConfig>) -> Self {
        Self(Arc::new(SlotInner {
            explicit: explicit.is_some(),
            requires_accept: explicit.is_some_and(|config| config.inner().require_accept),
            ..SlotInner::default()
        }))
    }

    /// Whether the response's own policy requires `Accept: text/event-stream`.
    #[cfg_attr(not(any(feature = "axum", feature = "warp")), allow(dead_code))]
    pub(crate) fn requires_accept(&self) -> bool {
        self.0.requires_accept
    }

    /// Fills the slot; the first policy given wins (the innermost layer). A
    /// response with its own policy keeps it.
    pub(crate) fn set(&self, config: SseConfig) {
        if !self.0.explicit {
            let _ = self.0.config.set(config);
        }
    }

    /// The policy an outer layer provided. Read once per body, when it
    /// settles its policy (at its first poll, or when dropped unpolled).
    ///
    /// A response with no policy of its own that finds none here runs on the
    /// default policy, without the app's shutdown signal: in axum, the
    /// symptom of a `SseConfigLayer` added before the route. That is warned
    /// about once per process (see [`warn_no_layer`]).
    pub(crate) fn get(&self) -> Option<&SseConfig> {
        let config = self.0.config.get();
        if config.is_none() && !self.0.explicit {
            warn_no_layer();
        }
        config
    }

    /// Tells the body which connection it is served on.
    pub(crate) fn set_connection(&self, connection: ConnectionStatus) {
        let _ = self.0.connection.set(connection);
    }

    pub(crate) fn connection(&self) -> Option<&ConnectionStatus> {
        self.0.connection.get()
    }

    /// Gives the body the span of the request it answers.
    pub(crate) fn set_span(&self, span: Span) {
        let _ = self.0.span.set(span);
    }

    pub(crate) fn span(&self) -> Option<&Span> {
        self.0.span.get()
    }

    /// The response was answered `406 Not Acceptable`: the body ends at once,
    /// unpolled, and reports nothing.
    #[cfg_attr(not(any(feature = "axum", feature = "warp")), allow(dead_code))]
    pub(crate) fn refuse(&self) {
        self.0.refused.store(true, Ordering::Release);
    }

    pub(crate) fn is_refused(&self) -> bool {
        self.0.refused.load(Ordering::Acquire)
    }
}

/// Warns, once per process, that a framework SSE response runs on the
/// default policy because no [`SseConfigLayer`](crate::SseConfigLayer)
/// wrapped its route.
///
/// Once, because the cause is in how the app is put together, not in one
/// request: the first stream shows it at start-up, and every later one would
/// only repeat it. An app that means to use the default policy says so with
/// a config of its own on the response (`SseConfig::new()`), and is never
/// warned.
fn warn_no_layer() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "an SSE response found no SseConfigLayer around its route and has no config of its \
             own: it runs on the default policy, which has no shutdown signal, so a graceful \
             shutdown waits until its client leaves. In axum, a layer wraps only the routes \
             added before it: call .layer(SseConfigLayer::new(..)) after the last .route(..). \
             To use the default policy on purpose, give the response \
             .config(SseConfig::new()). (Warned once per process.)"
        );
    }
}

impl fmt::Debug for ConfigSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigSlot")
            .field("config", &self.0.config.get())
            .field("connection", &self.0.connection.get())
            .field("refused", &self.is_refused())
            .field("explicit", &self.0.explicit)
            .finish()
    }
}
