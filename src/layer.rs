//! `SseLayer`: the tower layer.

use tower_layer::Layer;

use crate::config::SseConfig;
use crate::service::Sse;

/// A [`Layer`] that turns a service answering with an event stream into one
/// answering with a framed, flushed, keep-alive-pinged `text/event-stream`
/// response.
///
/// The inner service answers with an `http::Response` whose body is a
/// [`Stream`](futures_core::Stream) of events (see
/// [`IntoEncodedEvent`](crate::IntoEncodedEvent)), so that it can choose the
/// status and extra headers. The layer applies one [`SseConfig`] to every
/// stream, and hands the request's `Last-Event-ID` to the inner service as a
/// [`LastEventIdHeader`](crate::LastEventIdHeader) request extension (absent,
/// valid or invalid), plus a [`LastEventId`](crate::LastEventId) extension
/// when it is valid.
///
/// ```
/// use std::convert::Infallible;
/// use futures_util::stream;
/// use http::{Request, Response};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// use tower_sse::{Event, LastEventId, SseLayer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let service = ServiceBuilder::new()
///     .layer(SseLayer::new())
///     .service(service_fn(|request: Request<()>| async move {
///         // The client's valid `Last-Event-ID`, if it sent one.
///         let next = request
///             .extensions()
///             .get::<LastEventId>()
///             .and_then(|id| id.parse::<u64>().ok())
///             .map_or(1, |id| id.saturating_add(1));
///         let events = stream::iter([Event::new().id(next).data("hello")]);
///         Ok::<_, Infallible>(Response::new(events))
///     }));
///
/// let response = service.oneshot(Request::new(())).await.unwrap();
/// assert_eq!(response.headers()["content-type"], "text/event-stream");
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct SseLayer {
    config: SseConfig,
}

impl SseLayer {
    /// A layer with the default [`SseConfig`].
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A layer that applies `config` to every stream.
    #[must_use]
    pub fn with_config(config: SseConfig) -> Self {
        Self { config }
    }

    /// The policy this layer applies.
    pub fn config(&self) -> &SseConfig {
        &self.config
    }
}

impl<S> Layer<S> for SseLayer {
    type Service = Sse<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Sse::new(inner, self.config.clone())
    }
}
