//! Spec-exact Server-Sent Events for the tower ecosystem.
//!
//! `tower-sse` turns any service that answers with a [`Stream`] of events
//! into a correctly framed, flushed, keep-alive-pinged `text/event-stream`
//! response, with the behaviour a live feed needs in production:
//!
//! - **Lossless framing.** Every line break in data becomes its own `data:`
//!   line, empty data and leading spaces survive, and an id or event type
//!   that cannot be represented is a typed [`EventError`], never broken bytes
//!   or a panic.
//! - **Flushed, batched, pinged.** Every ready event is sent before the body
//!   waits; ready events share a frame up to a bound; an idle stream is pinged
//!   after an interval, without a timer operation per event.
//! - **Resumption.** The `Last-Event-ID` reaches the handler as a
//!   [`LastEventIdHeader`] request extension (absent, valid or invalid, so an
//!   unusable id is never mistaken for none), and a valid one as a
//!   [`LastEventId`].
//! - **Lifecycle.** A [`Shutdown`] signal ends every open stream so that a
//!   server's graceful shutdown completes, a maximum age spreads reconnects,
//!   stream errors end the response cleanly, and a hook is told why each stream
//!   ended ([`CloseReason`]), including when the client went away.
//! - **Stalled clients.** A [`ConnectionGuard`] closes a connection whose
//!   writes make no progress for a write timeout, or that is still blocked
//!   a grace period after the shutdown signal, so that a client that stops
//!   reading holds neither memory nor a graceful shutdown for long.
//! - **A decoder** ([`decode`]) that reads a stream exactly as a browser's
//!   `EventSource` does, for Rust clients and tests.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//!
//! use futures_util::StreamExt;
//! use http::{Request, Response};
//! use http_body_util::BodyExt;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tower_sse::{Event, KeepAlive, LastEventId, SseConfig, SseLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let config = SseConfig::new().keep_alive(KeepAlive::new().interval(Duration::from_secs(15)));
//!
//! let service = ServiceBuilder::new()
//!     .layer(SseLayer::with_config(config))
//!     .service(service_fn(|request: Request<()>| async move {
//!         // Resume after the last event the client saw.
//!         let start = request
//!             .extensions()
//!             .get::<LastEventId>()
//!             .and_then(|id| id.parse::<u64>().ok())
//!             .map_or(0, |id| id + 1);
//!         let events = futures_util::stream::iter(start..start + 3)
//!             .map(|n| Event::new().id(n).event("tick").data(format!("tick {n}")));
//!         Ok::<_, Infallible>(Response::new(events))
//!     }));
//!
//! let request = Request::get("/ticks").header("last-event-id", "41").body(()).unwrap();
//! let response = service.oneshot(request).await.unwrap();
//! assert_eq!(response.headers()["content-type"], "text/event-stream");
//!
//! let body = response.into_body().collect().await.unwrap().to_bytes();
//! assert!(body.starts_with(b"id: 42\nevent: tick\ndata: tick 42\n\n"));
//! # }
//! ```
//!
//! # Feature flags
//!
//! - `json`: `Event::json_data`, serializing data with `serde_json`.
//! - `hub`: `tower_sse::hub`, a broadcast hub with topics, per-user feeds,
//!   replay for `Last-Event-ID`, a lag policy and forgetting of idle topics.
//! - `axum`: `tower_sse::axum`, a response type, `Last-Event-ID` extractors
//!   and a guarded listener for `axum::serve` (axum 0.8).
//! - `warp`: `tower_sse::warp`, a reply type and a `last_event_id` filter for
//!   warp 0.4.
//! - `client`: `tower_sse::client`, a reconnecting `EventSource` over any
//!   tower HTTP service.
//! - `redis`: `tower_sse::hub::RedisHub`, the hub across many server
//!   processes on Redis Streams and pub/sub (implies `hub`).

#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]
#![forbid(unsafe_code)]

mod body;
mod config;
mod config_layer;
mod connection;
mod error;
mod event;
mod future;
mod jitter;
mod keep_alive;
mod last_event_id;
mod layer;
mod response;
mod service;
mod shutdown;
mod sse_or;
mod trace;

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod client;
pub mod decode;
#[cfg(feature = "hub")]
#[cfg_attr(docsrs, doc(cfg(feature = "hub")))]
pub mod hub;
#[cfg(feature = "warp")]
#[cfg_attr(docsrs, doc(cfg(feature = "warp")))]
pub mod warp;

pub use body::SseBody;
pub use config::{CloseReason, Farewell, SseConfig};
pub use config_layer::{ApplySseConfig, ApplySseConfigFuture, SseConfigLayer};
pub use connection::{ConnectionGuard, ConnectionStatus, GuardedIo};
pub use error::{BoxError, EventError, GraceElapsed, InvalidLastEventId, Lagged};
pub use event::{Data, EncodedEvent, Event, IntoEncodedEvent, IntoId};
pub use future::ResponseFuture;
pub use keep_alive::KeepAlive;
pub use last_event_id::{LAST_EVENT_ID, LastEventId, LastEventIdHeader};
pub use layer::SseLayer;
pub use service::Sse;
pub use shutdown::{Shutdown, TriggerOn};
pub use sse_or::{IntoSseBody, SseOr, SseOrBody};

#[doc(no_inline)]
pub use futures_core::Stream;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
