//! `SseConfigLayer`: one policy for every SSE response of an application.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::config::{ConfigSlot, SseConfig};

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
        ApplySseConfigFuture {
            future: self.inner.call(request),
            config: Some(self.config.clone()),
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
                slot.set(config);
            }
        }
        Poll::Ready(Ok(response))
    }
}
