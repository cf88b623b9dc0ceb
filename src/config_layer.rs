//! `SseConfigLayer`: one policy for every SSE response of an application.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{Method, Request, Response, Uri};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::config::{ConfigSlot, SseConfig};
use crate::connection::ConnectionStatus;
use crate::response::{accepts_event_stream, settle_slot};

/// A [`Layer`] that applies one [`SseConfig`] to every SSE response made
/// inside it by a framework adapter, whatever the response body type.
///
/// [`SseLayer`](crate::SseLayer) wraps a service answering with a stream.
/// A framework router answers with its own body type instead, and its SSE
/// responses are made inside handlers (for example by
/// `tower_sse::axum::SseResponse`). Put `SseConfigLayer` around the router,
/// and every such response that did not set a config of its own takes this
/// layer's keep-alive, shutdown signal, maximum age, error policy and close
/// hook. Other responses pass through untouched. When layers are nested, the
/// innermost one wins.
///
/// The layer also hands each SSE response the request's
/// [`ConnectionStatus`] (a request extension, or axum's
/// `ConnectInfo<ConnectionStatus>`), so that a connection closed by a
/// [`ConnectionGuard`](crate::ConnectionGuard) is reported as such, and
/// honours [`SseConfig::require_accept`]: an SSE response to a request that
/// does not accept `text/event-stream` becomes an empty `406 Not Acceptable`
/// (the handler has run; its stream is dropped unpolled).
#[derive(Clone, Debug, Default)]
pub struct SseConfigLayer {
    config: SseConfig,
}

impl SseConfigLayer {
    /// A layer that applies `config`.
    #[must_use]
    pub fn new(config: SseConfig) -> Self {
        Self { config }
    }
}

impl<S> Layer<S> for SseConfigLayer {
    type Service = ApplySseConfig<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ApplySseConfig {
            inner,
            config: self.config.clone(),
        }
    }
}

/// Middleware that applies an [`SseConfig`] to the SSE responses of the
/// inner service; made by [`SseConfigLayer`].
#[derive(Clone, Debug)]
pub struct ApplySseConfig<S> {
    inner: S,
    config: SseConfig,
}

impl<S> ApplySseConfig<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, consuming the middleware.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ApplySseConfig<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ApplySseConfigFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let accepts = accepts_event_stream(request.headers());
        let connection = ConnectionStatus::of_request(request.extensions());
        // Cheap clones (shared bytes); the span is made only for an SSE
        // response. (Asking `span_enabled!` first would ask about another
        // target and name than the span's, which filters can tell apart.)
        let request_line = Some((request.method().clone(), request.uri().clone()));
        ApplySseConfigFuture {
            future: self.inner.call(request),
            config: Some(self.config.clone()),
            connection,
            request_line,
            accepts,
        }
    }
}

pin_project! {
    /// The response future of [`ApplySseConfig`].
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct ApplySseConfigFuture<F> {
        #[pin]
        future: F,
        config: Option<SseConfig>,
        connection: Option<ConnectionStatus>,
        // For the stream's span.
        request_line: Option<(Method, Uri)>,
        // The request accepts `text/event-stream`.
        accepts: bool,
    }
}

impl<F, B, E> Future for ApplySseConfigFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.future.poll(cx))?;
        if let Some(slot) = response.extensions_mut().remove::<ConfigSlot>() {
            if let Some(config) = this.config.take() {
                settle_slot(&mut response, &slot, config, *this.accepts);
            }
            if let Some(connection) = this.connection.take() {
                slot.set_connection(connection);
            }
            if let Some((method, uri)) = this.request_line.take() {
                if let Some(span) = crate::trace::stream_span(&method, &uri) {
                    slot.set_span(span);
                }
            }
        }
        Poll::Ready(Ok(response))
    }
}
