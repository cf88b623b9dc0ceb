//! Any tower HTTP service, seen through one object-safe interface.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::{Request, Response};
use http_body::Body;
use http_body_util::BodyExt;
use tower_service::Service;

use crate::BoxError;

/// A response body with its data as `Bytes`.
pub(crate) type ResponseBody = Pin<Box<dyn Body<Data = Bytes, Error = BoxError> + Send>>;

/// A response on its way.
pub(crate) type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, BoxError>> + Send>>;

/// What the event source needs of a transport: tower's `Service`, with the
/// request body, response body and error types erased.
pub(crate) trait Transport: Send {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>>;
    fn call(&mut self, request: Request<Bytes>) -> ResponseFuture;
}

/// A tower service as a [`Transport`]; `B` is the service's request body,
/// made from the request's `Bytes`.
pub(crate) struct ServiceTransport<S, B> {
    service: S,
    _body: PhantomData<fn(Bytes) -> B>,
}

impl<S, B> ServiceTransport<S, B> {
    pub(crate) fn new(service: S) -> Self {
        Self {
            service,
            _body: PhantomData,
        }
    }
}

impl<S, B, ResBody> Transport for ServiceTransport<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: From<Bytes>,
    ResBody: Body + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.service.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<Bytes>) -> ResponseFuture {
        let future = self.service.call(request.map(B::from));
        Box::pin(async move {
            let response = future.await.map_err(Into::into)?;
            // The data as `Bytes` (no copy when it is already), the error
            // boxed.
            Ok(response.map(|body| {
                let body = body
                    .map_frame(|frame| {
                        frame.map_data(|mut data| data.copy_to_bytes(data.remaining()))
                    })
                    .map_err(Into::into);
                Box::pin(body) as ResponseBody
            }))
        })
    }
}

/// hyper-util's pooled client over plain TCP, as [`EventSource::http`]
/// uses it.
///
/// [`EventSource::http`]: super::EventSource::http
pub(crate) fn http_client() -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<Bytes>,
> {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .build_http()
}
