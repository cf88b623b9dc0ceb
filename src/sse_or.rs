//! What the inner service of [`SseLayer`](crate::SseLayer) answers with:
//! events, or a plain body for an answer that is not a stream.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use http::{Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tracing::Span;

use crate::body::SseBody;
use crate::config::SseConfig;
use crate::connection::ConnectionStatus;
use crate::error::BoxError;
use crate::event::IntoEncodedEvent;
use crate::response::sse_response;

/// The body of an inner service's response: a stream of events, or a plain
/// body sent as it is.
///
/// Behind [`SseLayer`](crate::SseLayer), a handler answers with a
/// `Response` whose body is a stream of events: a `200 OK` streams them,
/// and any other status (`204 No Content` to stop a browser reconnecting)
/// is sent with an empty body. A handler that must refuse with a body of its
/// own (a `401` or `404` with a JSON error, say) answers with
/// `Response<SseOr<St, B>>` instead: [`SseOr::Events`] is served as a bare
/// stream would be, and [`SseOr::Body`] is sent as it is, with the
/// response's status and headers untouched. The layer's response body is
/// then an [`SseOrBody`].
///
/// ```
/// use std::convert::Infallible;
///
/// use futures_util::stream;
/// use http::{Request, Response, StatusCode};
/// use http_body_util::{BodyExt, Full};
/// use bytes::Bytes;
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// use tower_sse::{Event, SseLayer, SseOr};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let service = ServiceBuilder::new()
///     .layer(SseLayer::new())
///     .service(service_fn(|request: Request<()>| async move {
///         if !request.headers().contains_key("authorization") {
///             let error = Full::new(Bytes::from_static(br#"{"error":"unauthorized"}"#));
///             let response = Response::builder()
///                 .status(StatusCode::UNAUTHORIZED)
///                 .header("content-type", "application/json")
///                 .body(SseOr::Body(error))
///                 .unwrap();
///             return Ok::<_, Infallible>(response);
///         }
///         let events = stream::iter([Event::new().data("hello")]);
///         Ok(Response::new(SseOr::Events(events)))
///     }));
///
/// let response = service.oneshot(Request::new(())).await.unwrap();
/// assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
/// let body = response.into_body().collect().await.unwrap().to_bytes();
/// assert_eq!(body, r#"{"error":"unauthorized"}"#);
/// # }
/// ```
#[derive(Clone, Debug)]
pub enum SseOr<St, B> {
    /// Events, served as a bare stream is.
    Events(St),
    /// A plain body, sent as it is.
    Body(B),
}

/// What the inner service of [`SseLayer`](crate::SseLayer) may answer with,
/// as the body of its `Response`: any [`Stream`] of events (see
/// [`IntoEncodedEvent`]), served as an [`SseBody`], or an [`SseOr`], served
/// as an [`SseOrBody`]. Sealed.
pub trait IntoSseBody: sealed::Sealed + Sized {
    /// The body of the layer's response.
    type Body: Body<Data = Bytes, Error = BoxError>;

    #[doc(hidden)]
    fn into_sse_response(
        response: Response<Self>,
        config: &SseConfig,
        connection: Option<ConnectionStatus>,
        span: Option<Span>,
    ) -> Response<Self::Body>;

    #[doc(hidden)]
    fn not_acceptable() -> Response<Self::Body>;
}

mod sealed {
    pub trait Sealed {}
}

impl<St> sealed::Sealed for St
where
    St: Stream,
    St::Item: IntoEncodedEvent,
{
}

impl<St> IntoSseBody for St
where
    St: Stream,
    St::Item: IntoEncodedEvent,
{
    type Body = SseBody<St>;

    fn into_sse_response(
        response: Response<Self>,
        config: &SseConfig,
        connection: Option<ConnectionStatus>,
        span: Option<Span>,
    ) -> Response<Self::Body> {
        sse_response(response, config, connection, span)
    }

    fn not_acceptable() -> Response<Self::Body> {
        let mut response = Response::new(SseBody::empty());
        *response.status_mut() = StatusCode::NOT_ACCEPTABLE;
        response
    }
}

impl<St, B> sealed::Sealed for SseOr<St, B> {}

impl<St, B> IntoSseBody for SseOr<St, B>
where
    St: Stream,
    St::Item: IntoEncodedEvent,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Body = SseOrBody<St, B>;

    fn into_sse_response(
        response: Response<Self>,
        config: &SseConfig,
        connection: Option<ConnectionStatus>,
        span: Option<Span>,
    ) -> Response<SseOrBody<St, B>> {
        let (parts, body) = response.into_parts();
        match body {
            SseOr::Events(stream) => {
                let response = Response::from_parts(parts, stream);
                sse_response(response, config, connection, span).map(|body| SseOrBody {
                    kind: Kind::Events { body },
                })
            }
            SseOr::Body(body) => Response::from_parts(
                parts,
                SseOrBody {
                    kind: Kind::Body { body },
                },
            ),
        }
    }

    fn not_acceptable() -> Response<SseOrBody<St, B>> {
        St::not_acceptable().map(|body| SseOrBody {
            kind: Kind::Events { body },
        })
    }
}

pin_project! {
    /// The response body of [`Sse`](crate::Sse) for an inner service
    /// answering with [`SseOr`]: the events as an [`SseBody`], or the plain
    /// body as it is.
    #[must_use = "bodies do nothing unless polled"]
    #[derive(Debug)]
    pub struct SseOrBody<St, B> {
        #[pin]
        kind: Kind<St, B>,
    }
}

pin_project! {
    #[project = KindProj]
    #[project_ref = KindRef]
    #[derive(Debug)]
    enum Kind<St, B> {
        Events { #[pin] body: SseBody<St> },
        Body { #[pin] body: B },
    }
}

impl<St, B> SseOrBody<St, B> {
    /// Whether the body streams events (else it is the plain body).
    pub fn is_events(&self) -> bool {
        matches!(self.kind, Kind::Events { .. })
    }
}

impl<St, B> Body for SseOrBody<St, B>
where
    St: Stream,
    St::Item: IntoEncodedEvent,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            KindProj::Events { body } => body.poll_frame(cx),
            KindProj::Body { body } => body
                .poll_frame(cx)
                .map(|frame| frame.map(|frame| frame.map_err(Into::into))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Events { body } => body.is_end_stream(),
            Kind::Body { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Events { body } => body.size_hint(),
            Kind::Body { body } => body.size_hint(),
        }
    }
}
