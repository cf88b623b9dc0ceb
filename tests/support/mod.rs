//! Helpers shared by the integration tests.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::stream::{self, Stream};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tower_sse::CloseReason;

/// Waits for the body's next frame: `Some(bytes)` for a data frame, `None`
/// at the end. Panics on an error or a trailers frame.
pub(crate) async fn next_frame<B>(body: &mut B) -> Option<Bytes>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Debug,
{
    let frame = body.frame().await?.expect("body yielded an error");
    Some(frame.into_data().expect("a data frame"))
}

/// Polls the body once, without waiting: `Pending` when no frame is ready.
pub(crate) fn poll_frame_now<B>(body: &mut B) -> Poll<Option<Bytes>>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Debug,
{
    match next_frame(body).now_or_never() {
        Some(frame) => Poll::Ready(frame),
        None => Poll::Pending,
    }
}

/// Every frame of the body until it ends.
pub(crate) async fn collect_frames<B>(body: &mut B) -> Vec<Bytes>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Debug,
{
    let mut frames = Vec::new();
    while let Some(frame) = next_frame(body).await {
        frames.push(frame);
    }
    frames
}

/// A stream fed by hand: items sent on the sender come out of the stream,
/// which ends when the sender is dropped.
pub(crate) fn channel<T>() -> (mpsc::UnboundedSender<T>, impl Stream<Item = T> + Unpin) {
    let (sender, mut receiver) = mpsc::unbounded_channel();
    (sender, stream::poll_fn(move |cx| receiver.poll_recv(cx)))
}

/// Records every reason given to an `on_close` hook.
#[derive(Clone, Debug, Default)]
pub(crate) struct CloseRecorder(Arc<Mutex<Vec<CloseReason>>>);

impl CloseRecorder {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A hook for `SseConfig::on_close` that records into this recorder.
    pub(crate) fn hook(&self) -> impl Fn(CloseReason) + Send + Sync + 'static {
        let reasons = self.0.clone();
        move |reason| reasons.lock().unwrap().push(reason)
    }

    /// The reasons recorded so far, in order.
    pub(crate) fn reasons(&self) -> Vec<CloseReason> {
        self.0.lock().unwrap().clone()
    }
}

/// The whole body as one buffer. Panics on a body error.
pub(crate) async fn collect_bytes<B>(body: B) -> Bytes
where
    B: Body,
    B::Error: Debug,
{
    body.collect()
        .await
        .expect("body yielded an error")
        .to_bytes()
}

/// A stream that records whether it was ever polled, then delegates.
pub(crate) struct PollFlag<S> {
    inner: std::pin::Pin<Box<S>>,
    polled: Arc<std::sync::atomic::AtomicBool>,
}

impl<S> PollFlag<S> {
    /// Wraps `inner`; the returned flag turns true at the first poll.
    pub(crate) fn new(inner: S) -> (Self, Arc<std::sync::atomic::AtomicBool>) {
        let polled = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stream = Self {
            inner: Box::pin(inner),
            polled: polled.clone(),
        };
        (stream, polled)
    }
}

impl<S: Stream> Stream for PollFlag<S> {
    type Item = S::Item;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<S::Item>> {
        self.polled.store(true, std::sync::atomic::Ordering::SeqCst);
        self.inner.as_mut().poll_next(cx)
    }
}

/// How long end-to-end tests wait for anything: long enough for a loaded CI
/// machine, never reached by a passing test.
pub(crate) const PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Awaits `future`, panicking with `what` if it takes longer than
/// [`PATIENCE`].
pub(crate) async fn within<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// A plain HTTP/1.1 client for end-to-end tests.
pub(crate) mod client {
    use std::net::SocketAddr;

    use bytes::Bytes;
    use http::{Request, Response, header};
    use http_body_util::Full;
    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpStream;
    use tokio::task::JoinHandle;

    /// One client connection; dropping it closes the connection.
    pub(crate) struct Connection {
        sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
        task: JoinHandle<hyper::Result<()>>,
    }

    impl Connection {
        /// Opens a connection to `addr`.
        pub(crate) async fn open(addr: SocketAddr) -> Self {
            let stream = TcpStream::connect(addr).await.expect("connect");
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .expect("http/1.1 handshake");
            Self {
                sender,
                task: tokio::spawn(connection),
            }
        }

        /// Sends `request` and waits for the response head.
        pub(crate) async fn send(&mut self, request: Request<Full<Bytes>>) -> Response<Incoming> {
            super::within("the response", self.sender.send_request(request))
                .await
                .expect("a response")
        }
    }

    impl Drop for Connection {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    /// The request a browser's `EventSource` sends, with `Last-Event-ID` when
    /// it reconnects.
    pub(crate) fn event_source(
        addr: SocketAddr,
        path: &str,
        last_event_id: Option<&str>,
    ) -> Request<Full<Bytes>> {
        let mut request = Request::get(path)
            .header(header::HOST, addr.to_string())
            .header(header::ACCEPT, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-store");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        request.body(Full::default()).expect("a valid request")
    }

    /// A `POST` of `body` to `path`.
    pub(crate) fn post(addr: SocketAddr, path: &str, body: &str) -> Request<Full<Bytes>> {
        Request::post(path)
            .header(header::HOST, addr.to_string())
            .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
            .expect("a valid request")
    }

    /// Sends one request on a fresh connection, and returns the status and
    /// the whole body.
    pub(crate) async fn fetch(
        addr: SocketAddr,
        request: Request<Full<Bytes>>,
    ) -> (http::StatusCode, Bytes) {
        let mut connection = Connection::open(addr).await;
        let response = connection.send(request).await;
        let status = response.status();
        let body = super::within("the body", super::collect_bytes(response.into_body())).await;
        (status, body)
    }
}
