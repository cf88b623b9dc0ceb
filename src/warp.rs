//! Server-Sent Events in [warp]: a reply type, a `Last-Event-ID` filter, and
//! one policy for a whole set of routes.
//!
//! A route replies with an [`SseReply`] over any [`Stream`] of events,
//! framed by tower-sse's encoder. The policy (keep-alive,
//! [`Shutdown`](crate::Shutdown), maximum age, error event, close hook) is set
//! once for all routes with [`apply_config`], or for one reply with
//! [`SseReply::config`]. [`last_event_id_header`] extracts the client's
//! `Last-Event-ID` as absent, valid or invalid; [`last_event_id`] only the
//! valid one.
//!
//! ```
//! use std::time::Duration;
//!
//! use futures_util::stream::{self, StreamExt};
//! use tower_sse::warp::{SseReply, apply_config, last_event_id};
//! use tower_sse::{Event, KeepAlive, LastEventId, Shutdown, SseConfig};
//! use warp::Filter;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let ticks = warp::path("ticks")
//!     .and(last_event_id())
//!     .map(|last_event_id: Option<LastEventId>| {
//!         // Resume after the last tick the client saw.
//!         let start = last_event_id
//!             .and_then(|id| id.parse::<u64>().ok())
//!             .map_or(0, |id| id.saturating_add(1));
//!         let events = stream::iter(start..start.saturating_add(2))
//!             .map(|n| Event::new().id(n).event("tick").data(n.to_string()));
//!         SseReply::new(events)
//!     });
//!
//! let shutdown = Shutdown::new();
//! let config = SseConfig::new()
//!     .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
//!     .shutdown(shutdown.clone());
//! let routes = apply_config(ticks, config);
//!
//! // Served with `warp::serve(routes)...graceful(..)`, where the graceful
//! // future calls `shutdown.trigger()`; here, one request:
//! let response = warp::test::request()
//!     .path("/ticks")
//!     .header("last-event-id", "41")
//!     .reply(&routes)
//!     .await;
//! assert_eq!(response.headers()["content-type"], "text/event-stream");
//! assert_eq!(
//!     response.body(),
//!     "id: 42\nevent: tick\ndata: 42\n\nid: 43\nevent: tick\ndata: 43\n\n"
//! );
//! # }
//! ```
//!
//! # Graceful shutdown
//!
//! Trigger the config's [`Shutdown`](crate::Shutdown) from warp's graceful
//! future: every stream ends (after the [`Farewell`](crate::Farewell), if any),
//! and the server finishes once every connection has. A client that stopped
//! reading blocks its connection, and `warp::serve` takes no listener but its
//! own, so bound the wait with
//! [`Shutdown::within_grace`](crate::Shutdown::within_grace) (the stalled
//! connections are left to end with the runtime). To close stalled
//! connections themselves (and time out slow writes), serve
//! `warp::service(routes)` with hyper over a
//! [`ConnectionGuard`](crate::ConnectionGuard).
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use tower_sse::warp::apply_config;
//! use tower_sse::{Shutdown, SseConfig};
//! use warp::Filter;
//!
//! # #[tokio::main]
//! # async fn main() -> std::io::Result<()> {
//! let shutdown = Shutdown::new();
//! let routes = warp::path::end().map(|| "routes with SSE replies");
//! let routes = apply_config(routes, SseConfig::new().shutdown(shutdown.clone()));
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3030").await?;
//! let signal = shutdown.clone();
//! let server = warp::serve(routes)
//!     .incoming(listener)
//!     .graceful(async move {
//!         let _ = tokio::signal::ctrl_c().await;
//!         signal.trigger();
//!     })
//!     .run();
//! // Done when every connection has closed, or 5 s after Ctrl-C.
//! let _ = shutdown.within_grace(Duration::from_secs(5), server).await;
//! # Ok(())
//! # }
//! ```
//!
//! An [`SseConfigLayer`](crate::SseConfigLayer) around `warp::service(routes)`
//! does what [`apply_config`] does, for a server built on hyper directly.
//!
//! # What the policy covers
//!
//! [`apply_config`] applies to the replies of the filter it is given, and
//! to no route combined with the result afterwards: apply it to the whole
//! set of routes (`apply_config(a.or(b), config)`), last. An [`SseReply`]
//! outside it finds no policy and runs on the default one, which has no
//! shutdown signal, so the server's graceful shutdown waits until that
//! stream's client leaves (bounded by
//! [`Shutdown::within_grace`](crate::Shutdown::within_grace), as above).
//! tower-sse logs a warning, once per process, at the first such stream; a
//! reply meant to run on the default policy says so with
//! `SseReply::new(..).config(SseConfig::new())`.
//!
//! `warp::sse` is not used: its encoder loses leading spaces and splits data
//! on LF only.
//!
//! [warp]: https://docs.rs/warp

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_core::Stream;
use http::HeaderMap;
use http_body::Body as _;
use warp::reply::{Reply, Response};
use warp::{Filter, Rejection};

use crate::body::SseBody;
use crate::config::{ConfigSlot, SseConfig};
use crate::error::BoxError;
use crate::event::IntoEncodedEvent;
use crate::last_event_id::{LastEventId, LastEventIdHeader};
use crate::response::{accepts_event_stream, settle_slot, stream_response};

/// A warp reply that streams events as `text/event-stream`.
///
/// The stream's items are [`Event`](crate::Event)s,
/// [`EncodedEvent`](crate::EncodedEvent)s, or `Result`s of either (see
/// [`IntoEncodedEvent`]). The reply is `200 OK` with the SSE headers; to
/// tell a client to stop reconnecting, reply `StatusCode::NO_CONTENT`
/// instead.
///
/// Without [`config`](SseReply::config), the reply follows the policy given to
/// [`apply_config`] (or to an [`SseConfigLayer`](crate::SseConfigLayer) around
/// `warp::service`), or the default policy when there is none (then a
/// warning is logged once per process).
#[derive(Clone)]
#[must_use = "an SseReply does nothing until a route returns it"]
pub struct SseReply<S> {
    stream: S,
    config: Option<SseConfig>,
}

impl<S> SseReply<S> {
    /// A reply over `stream`, with the policy of the surrounding
    /// [`apply_config`].
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            config: None,
        }
    }

    /// Uses this policy for this reply, whatever the surrounding one.
    pub fn config(mut self, config: SseConfig) -> Self {
        self.config = Some(config);
        self
    }
}

impl<S> Reply for SseReply<S>
where
    S: Stream + Send + 'static,
    S::Item: IntoEncodedEvent,
{
    fn into_response(self) -> Response {
        let (parts, body) = stream_response(self.stream, self.config).into_parts();
        // `reply::stream` is warp's public way to stream a body.
        let body = warp::reply::stream(Frames::new(body))
            .into_response()
            .into_body();
        Response::from_parts(parts, body)
    }
}

impl<S> fmt::Debug for SseReply<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SseReply")
            .field("stream", &std::any::type_name::<S>())
            .field("config", &self.config)
            .finish()
    }
}

/// The data frames of an [`SseBody`], as the `Send + Sync` stream that warp
/// requires.
///
/// The body is only ever reached through `&mut`, so `Mutex::get_mut` never
/// locks: the mutex is there to make the stream `Sync` when the event stream is
/// only `Send`.
struct Frames<S> {
    body: Mutex<Pin<Box<SseBody<S>>>>,
}

impl<S> Frames<S> {
    fn new(body: SseBody<S>) -> Self {
        Self {
            body: Mutex::new(Box::pin(body)),
        }
    }
}

impl<S> Stream for Frames<S>
where
    S: Stream,
    S::Item: IntoEncodedEvent,
{
    type Item = Result<Bytes, BoxError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let body = self
            .get_mut()
            .body
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            match ready!(body.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => {
                    // An SSE body has no trailers; skip any all the same.
                    if let Ok(data) = frame.into_data() {
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
                Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                None => return Poll::Ready(None),
            }
        }
    }
}

/// A filter that extracts the client's `Last-Event-ID`; `None` when the header
/// is missing, invalid, or sent more than once. It never rejects. To tell a
/// missing header from an invalid one, use [`last_event_id_header`].
///
/// ```
/// use tower_sse::LastEventId;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let filter = tower_sse::warp::last_event_id();
/// let id = warp::test::request()
///     .header("last-event-id", "7")
///     .filter(&filter)
///     .await
///     .unwrap();
/// assert_eq!(id, Some(LastEventId::new("7").unwrap()));
/// # }
/// ```
pub fn last_event_id()
-> impl Filter<Extract = (Option<LastEventId>,), Error = Infallible> + Clone + Send + Sync + 'static
{
    // warp lends no borrowed header map, and a repeated header must be seen, so
    // the map is cloned once per request; its values are shared `Bytes`.
    warp::header::headers_cloned().map(|headers: HeaderMap| LastEventId::from_headers(&headers))
}

/// A filter that extracts the client's `Last-Event-ID` as a
/// [`LastEventIdHeader`]: absent, valid, or sent but invalid (including sent
/// more than once). It never rejects.
///
/// ```
/// use tower_sse::LastEventIdHeader;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let filter = tower_sse::warp::last_event_id_header();
/// let header = warp::test::request()
///     .header("last-event-id", "a\tb")
///     .filter(&filter)
///     .await
///     .unwrap();
/// assert!(header.is_invalid());
/// assert_eq!(header.for_resume(), Some(LastEventIdHeader::INVALID_MARKER));
/// # }
/// ```
pub fn last_event_id_header()
-> impl Filter<Extract = (LastEventIdHeader,), Error = Infallible> + Clone + Send + Sync + 'static {
    warp::header::headers_cloned()
        .map(|headers: HeaderMap| LastEventIdHeader::from_headers(&headers))
}

/// Applies `config` to every [`SseReply`] made by `filter` that has no policy
/// of its own: warp's counterpart of [`SseConfigLayer`](crate::SseConfigLayer).
///
/// Other replies pass through untouched. When several are nested, the
/// innermost wins. With [`SseConfig::require_accept`], an SSE reply to a
/// request that does not accept `text/event-stream` becomes an empty
/// `406 Not Acceptable` (its stream is dropped unpolled).
///
/// ```
/// use futures_util::stream;
/// use tower_sse::warp::{SseReply, apply_config};
/// use tower_sse::{Event, Shutdown, SseConfig};
/// use warp::Filter;
///
/// let shutdown = Shutdown::new();
/// let events = warp::path("events")
///     .map(|| SseReply::new(stream::iter([Event::new().data("hello")])));
/// let health = warp::path("health").map(|| "ok");
/// let routes = apply_config(events.or(health), SseConfig::new().shutdown(shutdown.clone()));
/// # let _ = routes;
/// ```
pub fn apply_config<F, R>(
    filter: F,
    config: SseConfig,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static
where
    F: Filter<Extract = (R,), Error = Rejection> + Clone + Send + Sync + 'static,
    R: Reply,
{
    // warp lends no borrowed header map: the map is cloned (its values are
    // shared `Bytes`). The layer's policy or a reply's own may require
    // `text/event-stream`, so it is read for every request.
    let accepts =
        warp::header::headers_cloned().map(|headers: HeaderMap| accepts_event_stream(&headers));
    accepts.and(filter).map(move |accepts: bool, reply: R| {
        let mut response = reply.into_response();
        if let Some(slot) = response.extensions_mut().remove::<ConfigSlot>() {
            settle_slot(&mut response, &slot, config.clone(), accepts);
        }
        response
    })
}
