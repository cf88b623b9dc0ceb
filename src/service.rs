//! `Sse<S>`: the middleware service.

use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use crate::config::SseConfig;
use crate::connection::ConnectionStatus;
use crate::future::ResponseFuture;
use crate::last_event_id::{LastEventId, LastEventIdHeader};
use crate::response::accepts_event_stream;
use crate::sse_or::IntoSseBody;

/// Middleware that serves an inner service's event stream as an SSE response;
/// made by [`SseLayer`](crate::SseLayer).
#[derive(Clone, Debug)]
pub struct Sse<S> {
    inner: S,
    config: SseConfig,
}

impl<S> Sse<S> {
    /// Wraps `inner`, applying `config` to every stream it answers with.
    pub fn new(inner: S, config: SseConfig) -> Self {
        Self { inner, config }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming the middleware.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, St> Service<Request<ReqBody>> for Sse<S>
where
    S: Service<Request<ReqBody>, Response = Response<St>>,
    St: IntoSseBody,
{
    type Response = Response<St::Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        if self.config.inner().require_accept && !accepts_event_stream(request.headers()) {
            return ResponseFuture::not_acceptable();
        }
        // Values set by an outer layer must not pass for the client's: both
        // extensions are replaced or removed.
        let header = LastEventIdHeader::from_headers(request.headers());
        let extensions = request.extensions_mut();
        match header.valid() {
            Some(id) => extensions.insert(id.clone()),
            None => extensions.remove::<LastEventId>(),
        };
        extensions.insert(header);
        let connection = ConnectionStatus::of_request(extensions);
        let span = crate::trace::stream_span(request.method(), request.uri());
        ResponseFuture::new(
            self.inner.call(request),
            self.config.clone(),
            connection,
            span,
        )
    }
}
