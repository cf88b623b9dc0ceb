//! Helpers shared by the integration tests.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::borrow::BorrowMut;
use std::fmt::Debug;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::stream::{self, Stream, StreamExt};
use http::{Response, StatusCode, header};
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::mpsc;
use tower_sse::decode::{DecodeStream, MessageEvent};
use tower_sse::{CloseReason, Event, LastEventId};

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

    /// Waits until `count` reasons are recorded, then returns them all.
    pub(crate) async fn wait_for(&self, count: usize) -> Vec<CloseReason> {
        within("the close hook", async {
            while self.reasons().len() < count {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        self.reasons()
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

/// A boxed stream of events, for handlers that return different streams.
pub(crate) type EventStream = Pin<Box<dyn Stream<Item = Event> + Send>>;

/// One event with id 1, then nothing for ever.
pub(crate) fn one_then_idle(data: &'static str) -> EventStream {
    Box::pin(stream::iter([Event::new().id(1).data(data)]).chain(stream::pending()))
}

/// Events that try the framing: every kind of line end, empty data, text
/// beyond ASCII, leading spaces and a trailing LF, a comment (never
/// dispatched) and data that looks like a field. Ids count up from the one
/// after the client's `Last-Event-ID`, or from 0.
pub(crate) fn framing_events(last_event_id: Option<LastEventId>) -> [Event; 6] {
    let next = last_event_id
        .and_then(|id| id.parse::<u64>().ok())
        .map_or(0, |id| id + 1);
    [
        Event::new()
            .id(next)
            .event("greeting")
            .data("line one\nline two\r\nline three\rline four"),
        Event::new().data(""),
        Event::new().id(next + 1).data("héllo wörld ✓ 🌍 日本語"),
        Event::new().data("  two leading spaces, one trailing newline\n"),
        Event::new().comment("not dispatched"),
        Event::new()
            .id(next + 2)
            .event("bye")
            .data("data: not a field"),
    ]
}

/// The [`fields`] a browser dispatches for [`framing_events`] resumed after
/// id 41.
pub(crate) fn framing_events_after_41() -> [(String, String, String); 5] {
    [
        triple(
            "greeting",
            "line one\nline two\nline three\nline four",
            "42",
        ),
        triple("message", "", "42"),
        triple("message", "héllo wörld ✓ 🌍 日本語", "43"),
        triple(
            "message",
            "  two leading spaces, one trailing newline\n",
            "43",
        ),
        triple("bye", "data: not a field", "44"),
    ]
}

/// A dispatched event as (type, data, last event id).
pub(crate) fn fields(event: MessageEvent) -> (String, String, String) {
    (event.event_type, event.data, event.last_event_id)
}

/// An expected event as (type, data, last event id).
pub(crate) fn triple(
    event_type: &str,
    data: &str,
    last_event_id: &str,
) -> (String, String, String) {
    (event_type.into(), data.into(), last_event_id.into())
}

/// The next event of the stream, `None` at its end. Panics if it does not
/// decode.
pub(crate) async fn next_event(events: &mut DecodeStream<Incoming>) -> Option<MessageEvent> {
    within("the next event", events.next())
        .await
        .map(|event| event.expect("the stream decodes"))
}

/// The [`fields`] of every event until the stream ends. Takes the stream or
/// a `&mut` to it, for reading its decoder afterwards.
pub(crate) async fn all_events(
    mut events: impl BorrowMut<DecodeStream<Incoming>>,
) -> Vec<(String, String, String)> {
    let mut received = Vec::new();
    while let Some(event) = next_event(events.borrow_mut()).await {
        received.push(fields(event));
    }
    received
}

/// Reads the body's data frames until at least `len` bytes have arrived.
/// Panics if the body ends first.
pub(crate) async fn receive_at_least<B>(body: &mut B, len: usize) -> Vec<u8>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Debug,
{
    let mut received = Vec::new();
    while received.len() < len {
        let frame = within("a frame", next_frame(body))
            .await
            .expect("the stream stays open");
        received.extend_from_slice(&frame);
    }
    received
}

/// Checks the head of a successful SSE response: status, content type, no
/// caching, no proxy buffering, no content length.
pub(crate) fn assert_sse_headers<B>(response: &Response<B>) {
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers[header::CONTENT_TYPE], "text/event-stream");
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache, no-transform");
    assert_eq!(headers["x-accel-buffering"], "no");
    assert!(!headers.contains_key(header::CONTENT_LENGTH));
}

/// Plain hyper servers for end-to-end tests.
pub(crate) mod server {
    use std::net::SocketAddr;
    use std::pin::pin;

    use http::{Request, Response};
    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;
    use tower_sse::{BoxError, Shutdown};

    /// A listener on a fresh `127.0.0.1` port, and its address.
    pub(crate) async fn bind() -> (TcpListener, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (listener, addr)
    }

    /// Serves the first connection accepted on a fresh `127.0.0.1` port with
    /// `service`. When `shutdown` is triggered the connection shuts down
    /// gracefully: the response in flight may finish, then the connection
    /// closes.
    pub(crate) async fn serve_one<S, B>(
        service: S,
        shutdown: Option<Shutdown>,
    ) -> (SocketAddr, JoinHandle<hyper::Result<()>>)
    where
        S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let (listener, addr) = bind().await;
        let task = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            let mut connection = pin!(connection);
            let Some(shutdown) = shutdown else {
                return connection.await;
            };
            tokio::select! {
                result = connection.as_mut() => result,
                () = shutdown.triggered() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            }
        });
        (addr, task)
    }
}

/// A plain HTTP/1.1 client for end-to-end tests.
pub(crate) mod client {
    use std::net::SocketAddr;

    use bytes::Bytes;
    use http::{Request, Response, StatusCode, header};
    use http_body_util::Full;
    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpStream;
    use tokio::task::JoinHandle;
    use tower_sse::decode::DecodeStream;

    /// One client connection; dropping it closes the connection.
    pub(crate) struct Connection {
        sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
        /// `None` only once [`Connection::finish`] has taken it.
        task: Option<JoinHandle<hyper::Result<()>>>,
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
                task: Some(tokio::spawn(connection)),
            }
        }

        /// Sends `request` and waits for the response head.
        pub(crate) async fn send(&mut self, request: Request<Full<Bytes>>) -> Response<Incoming> {
            super::within("the response", self.sender.send_request(request))
                .await
                .expect("a response")
        }

        /// Closes the connection from the client's side and waits for it to
        /// end, returning how it ended.
        pub(crate) async fn finish(mut self) -> hyper::Result<()> {
            let task = self.task.take().expect("the connection task");
            drop(self);
            super::within("the client connection", task)
                .await
                .expect("the connection task does not panic")
        }
    }

    impl Drop for Connection {
        fn drop(&mut self) {
            if let Some(task) = &self.task {
                task.abort();
            }
        }
    }

    /// Opens an event stream at `path` as a browser's `EventSource` does,
    /// checks that the response is one, and returns its decoder.
    pub(crate) async fn open_events(
        addr: SocketAddr,
        path: &str,
        last_event_id: Option<&str>,
    ) -> (Connection, DecodeStream<Incoming>) {
        let mut connection = Connection::open(addr).await;
        let response = connection
            .send(event_source(addr, path, last_event_id))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/event-stream"
        );
        (connection, DecodeStream::new(response.into_body()))
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

    /// Sends an `EventSource`-like `GET` of `path` from a socket with a tiny
    /// receive buffer, reads the response head (and whatever body bytes come
    /// with it), and returns the socket: the caller then stops reading, as a
    /// stalled client does.
    pub(crate) async fn open_stalled(addr: SocketAddr, path: &str) -> TcpStream {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket
            .set_recv_buffer_size(4096)
            .expect("a receive buffer size");
        let mut stream = socket.connect(addr).await.expect("connect");
        let request =
            format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut head = Vec::new();
        let mut buf = [0; 1024];
        while !head.windows(4).any(|window| window == b"\r\n\r\n") {
            let n = super::within("the response head", stream.read(&mut buf))
                .await
                .expect("read");
            assert!(n > 0, "the connection closed before the response head");
            head.extend_from_slice(&buf[..n]);
        }
        assert!(head.starts_with(b"HTTP/1.1 200 OK\r\n"), "{head:?}");
        stream
    }

    /// Reads `stream` until the server closes it (an end or a reset); panics
    /// if that takes longer than [`super::PATIENCE`].
    pub(crate) async fn read_until_closed(stream: &mut TcpStream) {
        use tokio::io::AsyncReadExt;

        let mut buf = vec![0; 64 * 1024];
        super::within("the server to close the connection", async {
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
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

/// A `tracing` subscriber that records every event with its level, its
/// fields and the fields of its span, for tests of what is logged.
///
/// It is the process's global subscriber, and records only on a thread that
/// is capturing: a subscriber set per thread would race with other tests
/// over `tracing`'s cache of which call sites are enabled.
pub(crate) mod logs {
    use std::cell::RefCell;
    use std::fmt::{self, Write as _};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::subscriber::Interest;
    use tracing::{Event, Level, Metadata, Subscriber};

    /// One logged event: its level, its message and fields
    /// (`message k=v ...`), and the fields of its span (`name k=v ...`).
    #[derive(Clone, Debug)]
    pub(crate) struct Logged {
        pub(crate) level: Level,
        pub(crate) text: String,
        pub(crate) span: Option<String>,
    }

    /// What one thread logged while capturing.
    #[derive(Clone, Default)]
    pub(crate) struct Logs(Arc<Inner>);

    #[derive(Default)]
    struct Inner {
        spans: Mutex<Vec<(u64, String)>>,
        current: Mutex<Vec<u64>>,
        events: Mutex<Vec<Logged>>,
    }

    thread_local! {
        static CAPTURING: RefCell<Option<Logs>> = const { RefCell::new(None) };
    }

    /// Stops the capture of its thread when dropped.
    pub(crate) struct CaptureGuard(());

    impl Drop for CaptureGuard {
        fn drop(&mut self) {
            CAPTURING.with(|capturing| capturing.borrow_mut().take());
        }
    }

    fn capturing() -> Option<Logs> {
        CAPTURING.with(|capturing| capturing.borrow().clone())
    }

    struct Text<'a>(&'a mut String);

    impl Visit for Text<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            if field.name() == "message" {
                let _ = write!(self.0, "{value:?}");
            } else {
                let _ = write!(self.0, " {}={value:?}", field.name());
            }
        }

        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "message" {
                self.0.push_str(value);
            } else {
                let _ = write!(self.0, " {}={value}", field.name());
            }
        }
    }

    impl Logs {
        /// Records what is logged on this thread until the guard is dropped.
        pub(crate) fn capture() -> (Self, CaptureGuard) {
            static INSTALL: std::sync::Once = std::sync::Once::new();
            INSTALL.call_once(|| {
                tracing::subscriber::set_global_default(Global::default())
                    .expect("no other global subscriber in the tests");
            });
            let logs = Logs::default();
            CAPTURING.with(|capturing| *capturing.borrow_mut() = Some(logs.clone()));
            (logs, CaptureGuard(()))
        }

        /// Everything logged so far.
        pub(crate) fn events(&self) -> Vec<Logged> {
            self.0.events.lock().unwrap().clone()
        }

        /// The fields of every span so far, as `name k=v ...`.
        pub(crate) fn spans(&self) -> Vec<String> {
            let spans = self.0.spans.lock().unwrap();
            spans.iter().map(|(_, text)| text.clone()).collect()
        }

        fn span_text(&self, id: u64) -> Option<String> {
            let spans = self.0.spans.lock().unwrap();
            spans.iter().find(|(i, _)| *i == id).map(|(_, t)| t.clone())
        }
    }

    #[derive(Default)]
    struct Global {
        next_id: AtomicU64,
    }

    impl Subscriber for Global {
        fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
            // Ask `enabled` every time: it depends on the thread.
            Interest::sometimes()
        }

        fn enabled(&self, _: &Metadata<'_>) -> bool {
            capturing().is_some()
        }

        fn new_span(&self, span: &Attributes<'_>) -> Id {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some(logs) = capturing() {
                let mut text = span.metadata().name().to_owned();
                span.record(&mut Text(&mut text));
                logs.0.spans.lock().unwrap().push((id, text));
            }
            Id::from_u64(id)
        }

        fn record(&self, span: &Id, values: &Record<'_>) {
            let Some(logs) = capturing() else { return };
            let mut spans = logs.0.spans.lock().unwrap();
            if let Some((_, text)) = spans.iter_mut().find(|(i, _)| *i == span.into_u64()) {
                values.record(&mut Text(text));
            }
        }

        fn record_follows_from(&self, _: &Id, _: &Id) {}

        fn event(&self, event: &Event<'_>) {
            let Some(logs) = capturing() else { return };
            let mut text = String::new();
            event.record(&mut Text(&mut text));
            let parent = match event.parent() {
                Some(id) => Some(id.into_u64()),
                None if event.is_contextual() => logs.0.current.lock().unwrap().last().copied(),
                None => None,
            };
            let span = parent.and_then(|id| logs.span_text(id));
            logs.0.events.lock().unwrap().push(Logged {
                level: *event.metadata().level(),
                text,
                span,
            });
        }

        fn enter(&self, span: &Id) {
            if let Some(logs) = capturing() {
                logs.0.current.lock().unwrap().push(span.into_u64());
            }
        }

        fn exit(&self, _: &Id) {
            if let Some(logs) = capturing() {
                logs.0.current.lock().unwrap().pop();
            }
        }
    }
}
