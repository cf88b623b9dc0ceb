//! A reconnecting client: a browser's `EventSource`, for Rust, over any tower
//! HTTP service.
//!
//! [`EventSource`] is a [`Stream`] of what a browser's `EventSource` fires: an
//! [`Open`](SourceEvent::Open) per connection, every
//! [`Message`](SourceEvent::Message) exactly as the spec dispatches it (decoded
//! by [`Decoder`]), and a [`Reconnecting`](SourceEvent::Reconnecting) notice
//! when a connection ends. It reconnects as the WHATWG rules say, sending
//! `Last-Event-ID`, and gives up for good with a typed [`ClientError`] (its
//! last item) when a browser would: on `204 No Content`, another status that
//! is not a success, or a `Content-Type` other than `text/event-stream`.
//!
//! The transport is any tower `Service<http::Request<B>>` whose response body
//! is an [`http_body::Body`]: bring hyper-util's client with your own TLS
//! connector, timeouts, authentication and tracing layers.
//! [`EventSource::http`] builds one over hyper-util's client for plain
//! `http://` URIs.
//!
//! # Reconnection
//!
//! - After a connection ends or fails, the source waits the reconnection time
//!   (the server's last `retry:`, else 3 s as in Chromium), then reconnects.
//! - After a connection that delivered no event (or failed to open), the
//!   delay doubles, with jitter, up to [`max_backoff`](EventSourceBuilder::max_backoff)
//!   (30 s by default), never below the reconnection time; a connection that
//!   delivers an event resets it.
//! - It gives up on `204`, on any other status that is not a success (unless
//!   [`retry_server_errors`](EventSourceBuilder::retry_server_errors) lets it
//!   retry `5xx` and `429`, honouring `Retry-After`), on a wrong
//!   `Content-Type`, on more than [`max_redirects`](EventSourceBuilder::max_redirects)
//!   redirects, and when the stream breaks a limit of the decoder (a line or
//!   an event too long), so that a hostile server cannot grow its memory.
//! - With an [`idle_timeout`](EventSourceBuilder::idle_timeout), a connection
//!   on which no byte arrived for that long is dropped and reconnected.
//!
//! # Example
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use tower_sse::client::{EventSource, SourceEvent};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_sse::client::ClientError> {
//! let mut source = EventSource::http("http://127.0.0.1:3000/events");
//! while let Some(item) = source.next().await {
//!     match item? {
//!         SourceEvent::Open => println!("connected"),
//!         SourceEvent::Message(event) => println!("{}: {}", event.event_type, event.data),
//!         SourceEvent::Reconnecting { error, delay } => {
//!             println!("{error}; reconnecting in {delay:?}");
//!         }
//!         _ => {}
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # `https://`
//!
//! tower-sse has no TLS dependency: build hyper-util's client over a TLS
//! connector and hand it to [`EventSourceBuilder::build`]. With
//! `hyper-rustls` (features `http1`, `webpki-roots` or `native-tokio`) and
//! `rustls` in your own `Cargo.toml`:
//!
//! ```ignore
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower_sse::client::EventSource;
//!
//! let https = hyper_rustls::HttpsConnectorBuilder::new()
//!     .with_webpki_roots()
//!     .https_only()
//!     .enable_http1()
//!     .build();
//! let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(https);
//! let source = EventSource::builder("https://example.com/events").build(client);
//! ```

mod backoff;
mod builder;
mod error;
mod redirect;
mod transport;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures_core::{FusedStream, Stream};
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use tokio::time::{Instant, Sleep};

pub use builder::EventSourceBuilder;
pub use error::ClientError;

use crate::decode::{Decoder, MessageEvent};
use backoff::Backoff;
use builder::{Config, request_headers};
use error::Kind;
use transport::{ResponseBody, ResponseFuture, Transport};

/// What an [`EventSource`] yields: what a browser's `EventSource` fires.
#[derive(Debug)]
#[non_exhaustive]
pub enum SourceEvent {
    /// A connection opened: the response is a `text/event-stream` (the
    /// browser's `open` event).
    Open,
    /// An event was dispatched, as the browser's `message` (or named) event.
    Message(MessageEvent),
    /// The connection ended or could not be made; the source reconnects after
    /// `delay` (the browser's `error` event while it reconnects).
    Reconnecting {
        /// Why the connection ended.
        error: ClientError,
        /// How long the source waits before it reconnects.
        delay: Duration,
    },
}

/// A reconnecting Server-Sent Events client: a [`Stream`] of
/// [`SourceEvent`]s that ends after a fatal [`ClientError`].
///
/// Made with [`EventSource::http`] or [`EventSource::builder`]. Nothing is
/// sent until it is polled (in a tokio runtime: it uses tokio's timers).
/// Dropping it, or calling [`close`](EventSource::close), closes the
/// connection.
///
/// See the [module documentation](self) for the reconnection rules.
#[must_use = "streams do nothing unless polled"]
pub struct EventSource {
    config: Config,
    transport: Box<dyn Transport>,
    /// The current (or last) connection's decoder; it holds the last event id
    /// and the server's reconnection time.
    decoder: Decoder,
    backoff: Backoff,
    state: State,
    /// The idle timeout's timer, armed when a byte is expected.
    idle: Option<Pin<Box<Sleep>>>,
    /// When the last bytes arrived: the timer is moved past it only when it
    /// fires, not at every frame.
    last_byte: Option<Instant>,
}

enum State {
    /// The builder's error, to be yielded.
    Invalid(ClientError),
    /// About to send a request, once the transport is ready.
    Ready(Attempt),
    /// Waiting for the response head.
    Requesting {
        future: ResponseFuture,
        attempt: Attempt,
    },
    /// Reading the event stream.
    Streaming {
        body: ResponseBody,
        delivered: bool,
    },
    /// Waiting to reconnect.
    Waiting(Pin<Box<Sleep>>),
    Closed,
}

/// One request of a connection attempt: the configured one, or where a
/// redirect led.
struct Attempt {
    uri: Uri,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
    redirects: usize,
}

/// What a response head means for the source.
enum Next {
    Stream(ResponseBody),
    Redirect(Box<Attempt>),
    Retry(Kind, Option<Duration>),
    GiveUp(Kind),
}

impl EventSource {
    /// A source that connects to `uri` (a plain `http://` URI), once polled,
    /// with a `GET` over hyper-util's pooled client and the default policy.
    ///
    /// Use [`builder`](EventSource::builder) for another method, headers, a
    /// body, your own transport (TLS, layers) or another policy.
    pub fn http<T>(uri: T) -> Self
    where
        T: TryInto<Uri>,
        T::Error: Into<http::Error>,
    {
        Self::builder(uri).build_http()
    }

    /// Starts building a source that connects to `uri`, an absolute URI.
    pub fn builder<T>(uri: T) -> EventSourceBuilder
    where
        T: TryInto<Uri>,
        T::Error: Into<http::Error>,
    {
        EventSourceBuilder::new(uri)
    }

    pub(crate) fn new(config: Result<Config, String>, transport: Box<dyn Transport>) -> Self {
        let (config, state) = match config {
            Ok(config) => {
                let attempt = Attempt::first(&config);
                (config, State::Ready(attempt))
            }
            Err(error) => {
                let config = Config::new(Uri::from_static("http://invalid/"));
                let error = ClientError::new(Kind::InvalidRequest(error.into()));
                (config, State::Invalid(error))
            }
        };
        let decoder = config.decoder();
        Self {
            backoff: Backoff::new(config.max_backoff),
            config,
            transport,
            decoder,
            state,
            idle: None,
            last_byte: None,
        }
    }

    /// The last event id: what the source sends as `Last-Event-ID` when it
    /// reconnects (nothing when empty).
    pub fn last_event_id(&self) -> &str {
        self.decoder.last_event_id()
    }

    /// The reconnection time: the server's last valid `retry:`, else the
    /// configured default. Backoff after failures waits longer.
    pub fn reconnection_time(&self) -> Duration {
        self.decoder
            .reconnection_time()
            .unwrap_or(self.config.reconnection_time)
    }

    /// Closes the source for good: the connection, if any, is dropped and the
    /// stream ends.
    pub fn close(&mut self) {
        self.state = State::Closed;
        self.idle = None;
    }

    /// Starts (or restarts) the idle timer, if there is an idle timeout.
    fn arm_idle(&mut self) {
        let Some(timeout) = self.config.idle_timeout else {
            return;
        };
        let now = Instant::now();
        self.last_byte = Some(now);
        // A timeout too long to represent never fires.
        let Some(deadline) = now.checked_add(timeout) else {
            return;
        };
        match &mut self.idle {
            Some(sleep) => sleep.as_mut().reset(deadline),
            None => self.idle = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
    }

    /// Bytes arrived: one clock read, no timer operation.
    fn saw_bytes(&mut self) {
        if self.idle.is_some() {
            self.last_byte = Some(Instant::now());
        }
    }

    /// Whether no byte has arrived for the idle timeout (registering for the
    /// timer's wake-up if not). A timer that fires after bytes arrived is
    /// moved to one timeout after the last of them.
    fn idle_elapsed(&mut self, cx: &mut Context<'_>) -> bool {
        let (Some(sleep), Some(timeout)) = (self.idle.as_mut(), self.config.idle_timeout) else {
            return false;
        };
        loop {
            if sleep.as_mut().poll(cx).is_pending() {
                return false;
            }
            let due = self.last_byte.and_then(|last| last.checked_add(timeout));
            match due {
                Some(due) if due > sleep.deadline() => sleep.as_mut().reset(due),
                _ => return true,
            }
        }
    }

    /// Gives up: yields the error, then the stream ends.
    fn give_up(&mut self, kind: Kind) -> Poll<Option<Result<SourceEvent, ClientError>>> {
        let error = ClientError::new(kind);
        tracing::debug!(%error, "event source gave up");
        self.close();
        Poll::Ready(Some(Err(error)))
    }

    /// Ends the connection and waits to reconnect.
    fn reconnect(
        &mut self,
        kind: Kind,
        at_least: Option<Duration>,
    ) -> Poll<Option<Result<SourceEvent, ClientError>>> {
        if let State::Streaming {
            delivered: true, ..
        } = self.state
        {
            self.backoff.succeeded();
        }
        self.idle = None;
        let delay = self
            .backoff
            .next_delay(self.reconnection_time())
            .max(at_least.unwrap_or_default());
        let error = ClientError::new(kind);
        tracing::debug!(%error, ?delay, "event source reconnecting");
        self.state = State::Waiting(Box::pin(tokio::time::sleep(delay)));
        Poll::Ready(Some(Ok(SourceEvent::Reconnecting { error, delay })))
    }

    /// What the response head of `attempt` means.
    fn classify(&self, response: Response<ResponseBody>, attempt: &Attempt) -> Next {
        let status = response.status();
        if redirect::is_redirect(status) {
            if attempt.redirects >= self.config.max_redirects {
                return Next::GiveUp(Kind::TooManyRedirects {
                    limit: self.config.max_redirects,
                });
            }
            return match redirect::follow(status, &attempt.uri, &attempt.method, response.headers())
            {
                // The plain HTTP client would fail to connect, and every
                // reconnection would be redirected there again.
                Ok(redirected)
                    if self.config.http_only && redirected.uri.scheme_str() != Some("http") =>
                {
                    Next::GiveUp(Kind::InvalidRequest(
                        "a redirect to https:// on a client for http:// only (build_http)".into(),
                    ))
                }
                Ok(redirected) => Next::Redirect(Box::new(attempt.redirected(redirected))),
                Err(error) => Next::GiveUp(Kind::InvalidRequest(error)),
            };
        }
        if status == StatusCode::NO_CONTENT {
            return Next::GiveUp(Kind::NoContent);
        }
        if status.is_success() {
            let is_event_stream = response
                .headers()
                .get(CONTENT_TYPE)
                .is_some_and(|value| is_event_stream(value.as_bytes()));
            if !is_event_stream {
                return Next::GiveUp(Kind::ContentType);
            }
            return Next::Stream(response.into_body());
        }
        let retryable = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
        if retryable && self.config.retry_server_errors {
            let retry_after = backoff::retry_after(response.headers());
            return Next::Retry(
                Kind::Status {
                    status,
                    fatal: false,
                },
                retry_after,
            );
        }
        Next::GiveUp(Kind::Status {
            status,
            fatal: true,
        })
    }
}

impl Attempt {
    fn first(config: &Config) -> Self {
        Self {
            uri: config.uri.clone(),
            method: config.method.clone(),
            headers: config.headers.clone(),
            body: config.body.clone(),
            redirects: 0,
        }
    }

    fn redirected(&self, redirected: redirect::Redirected) -> Self {
        let mut headers = self.headers.clone();
        let mut body = self.body.clone();
        if redirected.drop_body {
            body = Bytes::new();
            headers.remove(CONTENT_TYPE);
            headers.remove(CONTENT_LENGTH);
            headers.remove(CONTENT_ENCODING);
        }
        if redirected.drop_credentials {
            redirect::remove_credentials(&mut headers);
        }
        Self {
            uri: redirected.uri,
            method: redirected.method,
            headers,
            body,
            redirects: self.redirects + 1,
        }
    }

    fn request(&self, last_event_id: &str) -> Request<Bytes> {
        let mut request = Request::new(self.body.clone());
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = request_headers(&self.headers, last_event_id);
        request
    }
}

/// Whether a `Content-Type` is `text/event-stream`, parameters aside.
fn is_event_stream(content_type: &[u8]) -> bool {
    let essence = content_type
        .split(|&byte| byte == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    essence.eq_ignore_ascii_case(b"text/event-stream")
}

impl Stream for EventSource {
    type Item = Result<SourceEvent, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Closed => return Poll::Ready(None),
                State::Invalid(_) => {
                    let State::Invalid(error) = std::mem::replace(&mut this.state, State::Closed)
                    else {
                        return Poll::Ready(None);
                    };
                    return Poll::Ready(Some(Err(error)));
                }
                State::Waiting(sleep) => {
                    ready!(sleep.as_mut().poll(cx));
                    this.state = State::Ready(Attempt::first(&this.config));
                }
                State::Ready(attempt) => {
                    if let Err(error) = ready!(this.transport.poll_ready(cx)) {
                        return this.reconnect(Kind::Transport(error), None);
                    }
                    let request = attempt.request(this.decoder.last_event_id());
                    let future = this.transport.call(request);
                    let State::Ready(attempt) = std::mem::replace(&mut this.state, State::Closed)
                    else {
                        return Poll::Ready(None);
                    };
                    this.state = State::Requesting { future, attempt };
                    this.arm_idle();
                }
                State::Requesting { future, .. } => {
                    let response = match future.as_mut().poll(cx) {
                        Poll::Ready(Ok(response)) => response,
                        Poll::Ready(Err(error)) => {
                            return this.reconnect(Kind::Transport(error), None);
                        }
                        Poll::Pending => {
                            if this.idle_elapsed(cx) {
                                return this.reconnect(Kind::IdleTimeout, None);
                            }
                            return Poll::Pending;
                        }
                    };
                    let State::Requesting { attempt, .. } =
                        std::mem::replace(&mut this.state, State::Closed)
                    else {
                        return Poll::Ready(None);
                    };
                    match this.classify(response, &attempt) {
                        Next::Stream(body) => {
                            // A new stream: its own lines, the same last event
                            // id and reconnection time.
                            this.decoder.reset();
                            this.state = State::Streaming {
                                body,
                                delivered: false,
                            };
                            this.arm_idle();
                            return Poll::Ready(Some(Ok(SourceEvent::Open)));
                        }
                        Next::Redirect(next) => this.state = State::Ready(*next),
                        Next::Retry(kind, retry_after) => return this.reconnect(kind, retry_after),
                        Next::GiveUp(kind) => return this.give_up(kind),
                    }
                }
                State::Streaming { body, delivered } => {
                    match this.decoder.next_event() {
                        Ok(Some(event)) => {
                            *delivered = true;
                            return Poll::Ready(Some(Ok(SourceEvent::Message(event))));
                        }
                        Ok(None) => {}
                        Err(error) => return this.give_up(Kind::Decode(error)),
                    }
                    match body.as_mut().poll_frame(cx) {
                        Poll::Ready(Some(Ok(frame))) => {
                            if let Ok(data) = frame.into_data() {
                                this.decoder.push(&data);
                                this.saw_bytes();
                            }
                        }
                        Poll::Ready(Some(Err(error))) => {
                            return this.reconnect(Kind::Body(error), None);
                        }
                        Poll::Ready(None) => return this.reconnect(Kind::Ended, None),
                        Poll::Pending => {
                            if this.idle_elapsed(cx) {
                                return this.reconnect(Kind::IdleTimeout, None);
                            }
                            return Poll::Pending;
                        }
                    }
                }
            }
        }
    }
}

impl FusedStream for EventSource {
    fn is_terminated(&self) -> bool {
        matches!(self.state, State::Closed)
    }
}

impl fmt::Debug for EventSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Invalid(_) => "invalid",
            State::Ready(_) | State::Requesting { .. } => "connecting",
            State::Streaming { .. } => "open",
            State::Waiting(_) => "waiting to reconnect",
            State::Closed => "closed",
        };
        f.debug_struct("EventSource")
            .field("uri", &self.config.uri)
            .field("state", &state)
            .field("last_event_id", &self.last_event_id())
            .field("reconnection_time", &self.reconnection_time())
            .finish_non_exhaustive()
    }
}
