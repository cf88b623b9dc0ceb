//! Server-Sent Events in [axum]: a response type for handlers, a
//! `Last-Event-ID` extractor, and one policy for a whole router.
//!
//! A handler returns an [`SseResponse`] over any [`Stream`] of events. The
//! app's policy (keep-alive, [`Shutdown`](crate::Shutdown), maximum age,
//! error event, close hook) is set once, by layering
//! [`SseConfigLayer`](crate::SseConfigLayer) around the router; a response
//! that needs a policy of its own sets it with [`SseResponse::config`].
//! [`LastEventIdHeader`] is an extractor that tells a missing header from an
//! invalid one (pass it to the hub with
//! [`for_resume`](LastEventIdHeader::for_resume)); [`LastEventId`] is one
//! too, usually taken as `Option<LastEventId>` since a client's first request
//! has none.
//!
//! ```
//! use std::time::Duration;
//!
//! use axum::{Router, routing::get};
//! use futures_util::stream::{self, StreamExt};
//! use http_body_util::BodyExt;
//! use tower::ServiceExt;
//! use tower_sse::axum::SseResponse;
//! use tower_sse::{Event, KeepAlive, LastEventId, Shutdown, SseConfig, SseConfigLayer};
//!
//! async fn ticks(last_event_id: Option<LastEventId>) -> SseResponse<impl tower_sse::Stream<Item = Event>> {
//!     // Resume after the last tick the client saw.
//!     let start = last_event_id
//!         .and_then(|id| id.parse::<u64>().ok())
//!         .map_or(0, |id| id.saturating_add(1));
//!     let events = stream::iter(start..start.saturating_add(3))
//!         .map(|n| Event::new().id(n).event("tick").data(n.to_string()));
//!     SseResponse::new(events)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let shutdown = Shutdown::new();
//! let config = SseConfig::new()
//!     .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
//!     .shutdown(shutdown.clone());
//! let app = Router::new()
//!     .route("/ticks", get(ticks))
//!     .layer(SseConfigLayer::new(config));
//!
//! // Served with `axum::serve(listener, app).with_graceful_shutdown(..)`, where
//! // the shutdown future calls `shutdown.trigger()`; here, one request:
//! let request = http::Request::get("/ticks")
//!     .header("last-event-id", "41")
//!     .body(axum::body::Body::empty())
//!     .unwrap();
//! let response = app.oneshot(request).await.unwrap();
//! assert_eq!(response.headers()["content-type"], "text/event-stream");
//! let body = response.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(
//!     body,
//!     "id: 42\nevent: tick\ndata: 42\n\n\
//!      id: 43\nevent: tick\ndata: 43\n\n\
//!      id: 44\nevent: tick\ndata: 44\n\n"
//! );
//! # }
//! ```
//!
//! # Where the layer goes
//!
//! In axum, `Router::layer` wraps the routes added *before* it, and no
//! route added after. Put [`SseConfigLayer`](crate::SseConfigLayer) after
//! the last `.route(..)`, as above: an [`SseResponse`] of a route outside
//! it finds no policy and runs on the default one, which has no shutdown
//! signal, so the server's graceful shutdown waits until that stream's
//! client leaves. tower-sse logs a warning (once per process, at its first
//! such stream) when that happens; a response that should run on the
//! default policy on purpose says so with
//! `SseResponse::new(..).config(SseConfig::new())` and is never warned
//! about. [`Shutdown::within_grace`](crate::Shutdown::within_grace) and a
//! [`GuardedListener`] (below) bound a shutdown at the connection level
//! whatever the policy: with them, such a stream holds the server for the
//! grace period at most, instead of until its client leaves.
//!
//! # Names beside axum's own SSE
//!
//! tower-sse replaces `axum::response::sse`, whose `Event`, `Sse` and
//! `KeepAlive` have the same names as tower-sse's. Import neither module's
//! items by name when both are in scope; name tower-sse's through a short
//! alias:
//!
//! ```
//! use tower_sse::{self as sse, axum::SseResponse};
//!
//! async fn handler() -> SseResponse<impl sse::Stream<Item = sse::Event>> {
//!     let events = futures_util::stream::iter([sse::Event::new().data("hello")]);
//!     SseResponse::new(events)
//! }
//! # let _ = axum::Router::<()>::new().route("/", axum::routing::get(handler));
//! ```
//!
//! # Errors before the stream
//!
//! A handler that must refuse (`401`, `404`) answers with any other axum
//! response, its body included: return
//! `Result<SseResponse<S>, (StatusCode, Json<Error>)>` or
//! `Result<SseResponse<S>, Response>`. A browser's `EventSource` gives up for
//! good on any status but `200`; `204 No Content` tells it to stop without an
//! error.
//!
//! # Compression
//!
//! tower-http's `CompressionLayer` (0.6) does not compress `text/event-stream`
//! with its default predicate. Forced compression (a predicate that allows
//! it) still delivers events as they are written with current versions of
//! async-compression (which tower-http uses: it flushes the encoder per
//! frame), but it costs CPU and compressor memory per connection; tower-sse's
//! `Cache-Control: no-cache, no-transform` asks intermediaries not to
//! transform the stream.
//!
//! # Graceful shutdown
//!
//! SSE responses never end by themselves, so `axum::serve`'s graceful
//! shutdown would wait for them for ever. Trigger the config's
//! [`Shutdown`](crate::Shutdown) from the shutdown future: every stream whose
//! connection can still be written to ends at once (after the
//! [`Farewell`](crate::Farewell), if any). A client that has stopped reading
//! blocks its connection's writes, and hyper then never polls its body again:
//! serve through a [`GuardedListener`], whose [`ConnectionGuard`] closes such a
//! connection once the grace period after the trigger has passed (and any
//! connection whose writes make no progress for the write timeout). The
//! server then completes within the grace period.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use axum::Router;
//! use tower_sse::axum::GuardedListener;
//! use tower_sse::{ConnectionGuard, ConnectionStatus, Shutdown, SseConfig, SseConfigLayer};
//!
//! # #[tokio::main]
//! # async fn main() -> std::io::Result<()> {
//! let shutdown = Shutdown::new();
//! let app = Router::new() // .route(..) with SSE handlers
//!     .layer(SseConfigLayer::new(SseConfig::new().shutdown(shutdown.clone())));
//!
//! let guard = ConnectionGuard::new()
//!     .shutdown(shutdown.clone())
//!     .shutdown_grace(Duration::from_secs(5));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(
//!     GuardedListener::new(listener, guard),
//!     // Hands each request its connection's status, for the close hook.
//!     app.into_make_service_with_connect_info::<ConnectionStatus>(),
//! )
//! .with_graceful_shutdown(async move {
//!     let _ = tokio::signal::ctrl_c().await;
//!     shutdown.trigger();
//! })
//! .await
//! # }
//! ```
//!
//! The tower service [`Sse`](crate::Sse) mounts as it is, with
//! `Router::route_service`.
//!
//! [axum]: https://docs.rs/axum

use std::fmt;
use std::future::{Future, ready};

use axum_core::body::Body;
use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use futures_core::Stream;
use http::StatusCode;
use http::request::Parts;

use ::axum::extract::connect_info::Connected;
use ::axum::serve::{IncomingStream, Listener};

use crate::config::SseConfig;
use crate::connection::{ConnectionGuard, ConnectionStatus, GuardedIo};
use crate::event::IntoEncodedEvent;
use crate::last_event_id::{LastEventId, LastEventIdHeader, Unusable};
use crate::response::stream_response;

/// An axum response that streams events as `text/event-stream`.
///
/// Return it from a handler. The stream's items are
/// [`Event`](crate::Event)s, [`EncodedEvent`](crate::EncodedEvent)s, or
/// `Result`s of either (see [`IntoEncodedEvent`]). The response is
/// `200 OK` with the SSE headers; to tell a client to stop reconnecting,
/// answer `StatusCode::NO_CONTENT` instead.
///
/// Without [`config`](SseResponse::config), the response follows the policy of
/// the nearest [`SseConfigLayer`](crate::SseConfigLayer) around its route,
/// or the default policy when there is none (then a warning is logged once
/// per process: see [where the layer goes](self#where-the-layer-goes)).
///
/// ```
/// use std::time::Duration;
///
/// use futures_util::stream;
/// use tower_sse::axum::SseResponse;
/// use tower_sse::{Event, KeepAlive, SseConfig};
///
/// async fn handler() -> SseResponse<impl tower_sse::Stream<Item = Event>> {
///     let events = stream::iter([Event::new().event("greeting").data("hello")]);
///     SseResponse::new(events).config(
///         SseConfig::new().keep_alive(KeepAlive::new().interval(Duration::from_secs(5))),
///     )
/// }
/// # let _ = axum::Router::<()>::new().route("/", axum::routing::get(handler));
/// ```
#[derive(Clone)]
#[must_use = "an SseResponse does nothing until a handler returns it"]
pub struct SseResponse<S> {
    stream: S,
    config: Option<SseConfig>,
}

impl<S> SseResponse<S> {
    /// A response over `stream`, with the policy of the surrounding
    /// [`SseConfigLayer`](crate::SseConfigLayer).
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            config: None,
        }
    }

    /// Uses this policy for this response, whatever the surrounding layer's.
    /// `SseConfig::new()` runs it on the default policy on purpose.
    pub fn config(mut self, config: SseConfig) -> Self {
        self.config = Some(config);
        self
    }
}

impl<S> IntoResponse for SseResponse<S>
where
    S: Stream + Send + 'static,
    S::Item: IntoEncodedEvent,
{
    fn into_response(self) -> Response {
        stream_response(self.stream, self.config).map(Body::new)
    }
}

impl<S> fmt::Debug for SseResponse<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SseResponse")
            .field("stream", &std::any::type_name::<S>())
            .field("config", &self.config)
            .finish()
    }
}

/// Extracts the client's `Last-Event-ID`.
///
/// As `LastEventId`, a request without a valid header is rejected with
/// [`LastEventIdRejection`] (`400 Bad Request`). As `Option<LastEventId>`, a
/// missing or invalid header is `None`. A header sent more than once counts as
/// invalid. To tell a missing header from an invalid one without rejecting
/// (a browser never retries after a `400`), extract [`LastEventIdHeader`].
impl<S> FromRequestParts<S> for LastEventId {
    type Rejection = LastEventIdRejection;

    fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> impl Future<Output = Result<Self, Self::Rejection>> + Send {
        ready(LastEventId::from_single_header(&parts.headers).map_err(LastEventIdRejection))
    }
}

impl<S> OptionalFromRequestParts<S> for LastEventId {
    type Rejection = std::convert::Infallible;

    fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> impl Future<Output = Result<Option<Self>, Self::Rejection>> + Send {
        ready(Ok(LastEventId::from_headers(&parts.headers)))
    }
}

/// Extracts the client's `Last-Event-ID` as absent, valid or invalid; never
/// rejects.
///
/// ```
/// use tower_sse::LastEventIdHeader;
///
/// async fn handler(last_event_id: LastEventIdHeader) -> String {
///     match last_event_id {
///         LastEventIdHeader::Absent => "a new client".to_owned(),
///         LastEventIdHeader::Valid(id) => format!("resume after {id}"),
///         LastEventIdHeader::Invalid(error) => format!("resync: {error}"),
///     }
/// }
/// # let _ = axum::Router::<()>::new().route("/", axum::routing::get(handler));
/// ```
impl<S> FromRequestParts<S> for LastEventIdHeader {
    type Rejection = std::convert::Infallible;

    fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> impl Future<Output = Result<Self, Self::Rejection>> + Send {
        ready(Ok(LastEventIdHeader::from_headers(&parts.headers)))
    }
}

/// The rejection of the [`LastEventId`] extractor: the request had no valid
/// `Last-Event-ID` header. Answers `400 Bad Request`.
#[derive(Debug)]
pub struct LastEventIdRejection(Unusable);

impl LastEventIdRejection {
    /// Whether the request had no `Last-Event-ID` header at all.
    pub fn is_missing(&self) -> bool {
        matches!(self.0, Unusable::Missing)
    }
}

impl fmt::Display for LastEventIdRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Unusable::Missing => f.write_str("missing last-event-id header"),
            Unusable::Invalid(error) => fmt::Display::fmt(error, f),
        }
    }
}

impl std::error::Error for LastEventIdRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0 {
            Unusable::Invalid(error) => Some(error),
            Unusable::Missing => None,
        }
    }
}

impl IntoResponse for LastEventIdRejection {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, self.to_string()).into_response()
    }
}

/// A listener for `axum::serve` whose connections are guarded by a
/// [`ConnectionGuard`]: blocked writes fail after the write timeout, or once
/// the shutdown grace period has passed, so that a client that stops reading
/// cannot hold its connection, or the server's graceful shutdown, for ever.
///
/// Serve the router with
/// `into_make_service_with_connect_info::<ConnectionStatus>()`: each request
/// then carries its connection's [`ConnectionStatus`] (as
/// `ConnectInfo<ConnectionStatus>`), and an
/// [`SseConfigLayer`](crate::SseConfigLayer) around the router hands it to
/// the SSE responses, whose close hook then hears
/// [`CloseReason::WriteTimeout`](crate::CloseReason::WriteTimeout) when their
/// connection was closed for stalling.
///
/// ```no_run
/// use std::time::Duration;
///
/// use axum::Router;
/// use tower_sse::axum::GuardedListener;
/// use tower_sse::{ConnectionGuard, ConnectionStatus, Shutdown, SseConfig, SseConfigLayer};
///
/// # #[tokio::main]
/// # async fn main() -> std::io::Result<()> {
/// let shutdown = Shutdown::new();
/// let app = Router::new() // .route(..) with SSE handlers
///     .layer(SseConfigLayer::new(SseConfig::new().shutdown(shutdown.clone())));
///
/// let guard = ConnectionGuard::new()
///     .write_timeout(Duration::from_secs(30))
///     .shutdown(shutdown.clone())
///     .shutdown_grace(Duration::from_secs(5));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// let server = axum::serve(
///     GuardedListener::new(listener, guard),
///     app.into_make_service_with_connect_info::<ConnectionStatus>(),
/// )
/// .with_graceful_shutdown({
///     let shutdown = shutdown.clone();
///     async move {
///         let _ = tokio::signal::ctrl_c().await;
///         shutdown.trigger();
///     }
/// });
/// // Stalled connections are closed 5 s after the trigger; this bound is the
/// // last line for anything else that would hold the server.
/// match shutdown.within_grace(Duration::from_secs(10), server).await {
///     Ok(result) => result,
///     Err(_) => Ok(()),
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct GuardedListener<L> {
    listener: L,
    guard: ConnectionGuard,
}

impl<L> GuardedListener<L> {
    /// Guards every connection `listener` accepts with `guard`.
    pub fn new(listener: L, guard: ConnectionGuard) -> Self {
        Self { listener, guard }
    }

    /// The wrapped listener.
    pub fn get_ref(&self) -> &L {
        &self.listener
    }

    /// The wrapped listener, consuming the guard.
    pub fn into_inner(self) -> L {
        self.listener
    }
}

impl<L: Listener> Listener for GuardedListener<L> {
    type Io = GuardedIo<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = self.listener.accept().await;
        (self.guard.wrap(io), addr)
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// The connection's [`ConnectionStatus`] as axum's `ConnectInfo`, for
/// `into_make_service_with_connect_info::<ConnectionStatus>()`.
impl<L: Listener> Connected<IncomingStream<'_, GuardedListener<L>>> for ConnectionStatus {
    fn connect_info(stream: IncomingStream<'_, GuardedListener<L>>) -> Self {
        stream.io().status()
    }
}
