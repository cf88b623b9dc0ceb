//! `ResponseFuture`: the future of [`Sse`](crate::Sse).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;
use pin_project_lite::pin_project;
use tracing::Span;

use crate::config::SseConfig;
use crate::connection::ConnectionStatus;
use crate::sse_or::IntoSseBody;

pin_project! {
    /// The response future of [`Sse`](crate::Sse).
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<F> {
        Inner {
            #[pin] future: F,
            config: SseConfig,
            connection: Option<ConnectionStatus>,
            span: Option<Span>,
        },
        NotAcceptable,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(
        future: F,
        config: SseConfig,
        connection: Option<ConnectionStatus>,
        span: Option<Span>,
    ) -> Self {
        Self {
            kind: Kind::Inner {
                future,
                config,
                connection,
                span,
            },
        }
    }

    pub(crate) fn not_acceptable() -> Self {
        Self {
            kind: Kind::NotAcceptable,
        }
    }
}

impl<F, St, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<St>, E>>,
    St: IntoSseBody,
{
    type Output = Result<Response<St::Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner {
                future,
                config,
                connection,
                span,
            } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(St::into_sse_response(
                    response,
                    config,
                    connection.take(),
                    span.take(),
                )))
            }
            KindProj::NotAcceptable => Poll::Ready(Ok(St::not_acceptable())),
        }
    }
}
