//! The reconnecting client: reconnection timing on tokio's paused clock over
//! an in-memory transport, and faults over real HTTP on 127.0.0.1.

#![cfg(feature = "client")]

mod support;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream;
use http::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tower::service_fn;
use tower_sse::client::{ClientError, EventSource, EventSourceBuilder, SourceEvent};

use support::within;

type TestBody = BoxBody<Bytes, Infallible>;

// ---------------------------------------------------------------------------
// An in-memory transport: scripted responses, recorded requests.

/// A request as the transport saw it, and when (on tokio's clock).
#[derive(Debug)]
struct Seen {
    at: Instant,
    method: Method,
    uri: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Seen {
    fn last_event_id(&self) -> Option<&str> {
        self.headers
            .get("last-event-id")
            .map(|value| value.to_str().unwrap())
    }
}

/// Answers requests with the scripted responses in order, then with `204`.
#[derive(Clone, Default)]
struct Script {
    replies: Arc<Mutex<VecDeque<Response<TestBody>>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Script {
    fn new(replies: impl IntoIterator<Item = Response<TestBody>>) -> Self {
        let script = Self::default();
        script.replies.lock().unwrap().extend(replies);
        script
    }

    /// A source over this script with the builder's policy.
    fn source(&self, builder: EventSourceBuilder) -> EventSource {
        let script = self.clone();
        builder.build(service_fn(move |request: Request<Bytes>| {
            let script = script.clone();
            async move {
                let (parts, body) = request.into_parts();
                script.seen.lock().unwrap().push(Seen {
                    at: Instant::now(),
                    method: parts.method,
                    uri: parts.uri.to_string(),
                    headers: parts.headers,
                    body,
                });
                let reply = script.replies.lock().unwrap().pop_front();
                Ok::<_, Infallible>(reply.unwrap_or_else(|| status(StatusCode::NO_CONTENT)))
            }
        }))
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Vec<Seen>> {
        self.seen.lock().unwrap()
    }
}

fn builder() -> EventSourceBuilder {
    EventSource::builder("http://source.test/events")
}

/// A complete event stream.
fn sse(body: &'static str) -> Response<TestBody> {
    Response::builder()
        .header(CONTENT_TYPE, "text/event-stream")
        .body(Full::new(Bytes::from_static(body.as_bytes())).boxed())
        .unwrap()
}

/// An event stream fed by hand; it ends when the sender is dropped.
fn open_stream() -> (mpsc::UnboundedSender<&'static str>, Response<TestBody>) {
    let (sender, receiver) = mpsc::unbounded_channel::<&'static str>();
    let frames = stream::unfold(receiver, |mut receiver| async move {
        let chunk = receiver.recv().await?;
        Some((
            Ok::<_, Infallible>(Frame::data(Bytes::from_static(chunk.as_bytes()))),
            receiver,
        ))
    });
    let response = Response::builder()
        .header(CONTENT_TYPE, "text/event-stream")
        .body(BodyExt::boxed(StreamBody::new(frames)))
        .unwrap();
    (sender, response)
}

fn status(status: StatusCode) -> Response<TestBody> {
    Response::builder()
        .status(status)
        .body(Full::default().boxed())
        .unwrap()
}

/// The next item, which must be there.
async fn next(source: &mut EventSource) -> Result<SourceEvent, ClientError> {
    source.next().await.expect("the source yields another item")
}

async fn expect_open(source: &mut EventSource) {
    match next(source).await {
        Ok(SourceEvent::Open) => {}
        other => panic!("expected Open, got {other:?}"),
    }
}

/// The next item as (type, data, last event id) of a message.
async fn expect_message(source: &mut EventSource) -> (String, String, String) {
    match next(source).await {
        Ok(SourceEvent::Message(event)) => support::fields(event),
        other => panic!("expected a message, got {other:?}"),
    }
}

/// The next item as a reconnection notice: its error and delay.
async fn expect_reconnecting(source: &mut EventSource) -> (ClientError, Duration) {
    match next(source).await {
        Ok(SourceEvent::Reconnecting { error, delay }) => (error, delay),
        other => panic!("expected Reconnecting, got {other:?}"),
    }
}

/// The next item as the fatal error, after which the stream ends.
async fn expect_gave_up(source: &mut EventSource) -> ClientError {
    let error = match next(source).await {
        Err(error) => error,
        other => panic!("expected the fatal error, got {other:?}"),
    };
    assert!(error.is_fatal(), "{error:?}");
    assert!(
        source.next().await.is_none(),
        "the stream ends after a fatal error"
    );
    error
}

#[test]
fn an_event_source_can_move_between_tasks() {
    fn assert_send_unpin<T: Send + Unpin + 'static>() {}
    assert_send_unpin::<EventSource>();
    assert_send_unpin::<ClientError>();
    fn assert_sync<T: Sync>() {}
    assert_sync::<ClientError>();
    assert_sync::<EventSourceBuilder>();
}

// ---------------------------------------------------------------------------
// Reconnection timing, on the paused clock.

#[tokio::test(start_paused = true)]
async fn waits_the_server_retry_and_resumes_with_last_event_id() {
    let script = Script::new([
        sse("retry: 500\nid: 1\ndata: a\n\n"),
        sse("id: 2\ndata: b\n\n"),
    ]);
    let mut source = script.source(builder());

    expect_open(&mut source).await;
    assert_eq!(
        expect_message(&mut source).await,
        support::triple("message", "a", "1")
    );
    let (error, delay) = expect_reconnecting(&mut source).await;
    assert!(error.is_ended() && !error.is_fatal());
    assert_eq!(delay, Duration::from_millis(500));
    assert_eq!(source.reconnection_time(), Duration::from_millis(500));
    assert_eq!(source.last_event_id(), "1");

    expect_open(&mut source).await;
    assert_eq!(
        expect_message(&mut source).await,
        support::triple("message", "b", "2")
    );
    let (_, delay) = expect_reconnecting(&mut source).await;
    assert_eq!(delay, Duration::from_millis(500), "retry: carries over");
    assert!(expect_gave_up(&mut source).await.is_no_content());

    let seen = script.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[1].at - seen[0].at, Duration::from_millis(500));
    assert_eq!(seen[2].at - seen[1].at, Duration::from_millis(500));
    let ids: Vec<_> = seen.iter().map(Seen::last_event_id).collect();
    assert_eq!(ids, [None, Some("1"), Some("2")]);
}

#[tokio::test(start_paused = true)]
async fn waits_three_seconds_when_the_server_sends_no_retry() {
    let script = Script::new([sse("data: a\n\n")]);
    let mut source = script.source(builder());

    expect_open(&mut source).await;
    expect_message(&mut source).await;
    let (_, delay) = expect_reconnecting(&mut source).await;
    assert_eq!(delay, Duration::from_secs(3));
    expect_gave_up(&mut source).await;
    let seen = script.seen();
    assert_eq!(seen[1].at - seen[0].at, Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn backs_off_exponentially_with_jitter_up_to_the_cap() {
    // Streams that open and end without an event are failures.
    let script = Script::new((0..8).map(|_| sse(": nothing\n\n")));
    let mut source = script.source(
        builder()
            .reconnection_time(Duration::from_secs(1))
            .max_backoff(Duration::from_secs(8)),
    );

    let mut delays = Vec::new();
    for _ in 0..8 {
        expect_open(&mut source).await;
        delays.push(expect_reconnecting(&mut source).await.1);
    }
    assert_eq!(delays[0], Duration::from_secs(1));
    for (delay, grown) in delays[1..].iter().zip([2, 4, 8, 8, 8, 8, 8]) {
        let grown = Duration::from_secs(grown);
        assert!(
            *delay >= grown / 2 && *delay <= grown,
            "{delay:?} outside {grown:?}/2..={grown:?}: {delays:?}"
        );
    }
    let seen = script.seen();
    // One request per announced delay, so that every delay is checked below.
    assert_eq!(seen.len(), delays.len(), "{seen:?}");
    for (pair, delay) in seen.windows(2).zip(&delays) {
        assert_eq!(
            pair[1].at - pair[0].at,
            *delay,
            "the source waits the delay it announces"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_delivers_events_resets_the_backoff() {
    let script = Script::new([
        status(StatusCode::SERVICE_UNAVAILABLE),
        status(StatusCode::SERVICE_UNAVAILABLE),
        status(StatusCode::SERVICE_UNAVAILABLE),
        sse("data: finally\n\n"),
        status(StatusCode::SERVICE_UNAVAILABLE),
    ]);
    let mut source = script.source(
        builder()
            .reconnection_time(Duration::from_secs(1))
            .retry_server_errors(true),
    );

    let mut delays = Vec::new();
    for _ in 0..3 {
        let (error, delay) = expect_reconnecting(&mut source).await;
        assert_eq!(error.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
        delays.push(delay);
    }
    assert!(
        delays[2] >= Duration::from_secs(2),
        "backed off: {delays:?}"
    );
    expect_open(&mut source).await;
    expect_message(&mut source).await;
    let (_, delay) = expect_reconnecting(&mut source).await;
    assert_eq!(delay, Duration::from_secs(1), "reset by the event");
    let (_, delay) = expect_reconnecting(&mut source).await;
    assert!(delay >= Duration::from_secs(1) && delay <= Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn server_errors_are_retried_after_retry_after_when_asked() {
    let mut unavailable = status(StatusCode::SERVICE_UNAVAILABLE);
    unavailable
        .headers_mut()
        .insert(RETRY_AFTER, "120".parse().unwrap());
    let script = Script::new([unavailable, status(StatusCode::TOO_MANY_REQUESTS)]);
    let mut source = script.source(builder().retry_server_errors(true));

    let (error, delay) = expect_reconnecting(&mut source).await;
    assert_eq!(error.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(delay, Duration::from_secs(120));
    let (error, _) = expect_reconnecting(&mut source).await;
    assert_eq!(error.status(), Some(StatusCode::TOO_MANY_REQUESTS));
    expect_gave_up(&mut source).await;
    let seen = script.seen();
    assert_eq!(seen[1].at - seen[0].at, Duration::from_secs(120));
}

#[tokio::test(start_paused = true)]
async fn reconnects_when_no_byte_arrives_for_the_idle_timeout() {
    let (sender, stream) = open_stream();
    let script = Script::new([stream, sse("data: again\n\n")]);
    let mut source = script.source(
        builder()
            .idle_timeout(Duration::from_secs(10))
            .reconnection_time(Duration::from_secs(1)),
    );

    expect_open(&mut source).await;
    sender.send("data: first\n\n").unwrap();
    expect_message(&mut source).await;
    let started = Instant::now();
    // A keep-alive comment 8 s later postpones the timeout.
    let keep_alive = async {
        tokio::time::sleep(Duration::from_secs(8)).await;
        sender.send(":\n").unwrap();
    };
    let (reconnecting, ()) = tokio::join!(expect_reconnecting(&mut source), keep_alive);
    assert!(reconnecting.0.is_idle_timeout(), "{:?}", reconnecting.0);
    assert_eq!(Instant::now() - started, Duration::from_secs(18));
    assert_eq!(reconnecting.1, Duration::from_secs(1));

    expect_open(&mut source).await;
    assert_eq!(expect_message(&mut source).await.1, "again");
    drop(sender);
}

#[tokio::test(start_paused = true)]
async fn an_idle_timeout_too_long_to_represent_never_fires() {
    let (sender, stream) = open_stream();
    let script = Script::new([stream]);
    let mut source = script.source(builder().idle_timeout(Duration::MAX));
    expect_open(&mut source).await;
    sender.send("data: a\n\n").unwrap();
    expect_message(&mut source).await;
    let waited = tokio::time::timeout(Duration::from_secs(365 * 24 * 3600), source.next()).await;
    assert!(waited.is_err(), "still open after a year: {waited:?}");
    drop(sender);
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_also_bounds_the_wait_for_a_response() {
    let script = Script::default();
    let hung = script.clone();
    let mut source = builder()
        .idle_timeout(Duration::from_secs(5))
        .build(service_fn(move |request: Request<Bytes>| {
            let hung = hung.clone();
            async move {
                let first = hung.seen().is_empty();
                hung.seen().push(Seen {
                    at: Instant::now(),
                    method: request.method().clone(),
                    uri: request.uri().to_string(),
                    headers: request.headers().clone(),
                    body: Bytes::new(),
                });
                if first {
                    std::future::pending::<()>().await;
                }
                Ok::<_, Infallible>(status(StatusCode::NO_CONTENT))
            }
        }));

    let started = Instant::now();
    let (error, _) = expect_reconnecting(&mut source).await;
    assert!(error.is_idle_timeout());
    assert_eq!(Instant::now() - started, Duration::from_secs(5));
    expect_gave_up(&mut source).await;
}

// ---------------------------------------------------------------------------
// The request, and what the client gives up on.

#[tokio::test(start_paused = true)]
async fn a_post_with_its_body_and_headers_is_resent_on_every_reconnection() {
    let script = Script::new([sse("id: 7\ndata: a\n\n"), sse("data: b\n\n")]);
    let mut source = script.source(
        builder()
            .method(Method::POST)
            .header(CONTENT_TYPE, "application/json")
            .header("authorization", "Bearer secret")
            .body(r#"{"stream":true}"#),
    );
    while source.next().await.is_some() {}

    let seen = script.seen();
    assert_eq!(seen.len(), 3);
    for request in seen.iter() {
        assert_eq!(request.method, Method::POST);
        assert_eq!(request.uri, "http://source.test/events");
        assert_eq!(request.body, r#"{"stream":true}"#);
        assert_eq!(request.headers[CONTENT_TYPE], "application/json");
        assert_eq!(request.headers["authorization"], "Bearer secret");
        assert_eq!(request.headers["accept"], "text/event-stream");
        assert_eq!(request.headers["cache-control"], "no-store");
    }
    let ids: Vec<_> = seen.iter().map(Seen::last_event_id).collect();
    assert_eq!(ids, [None, Some("7"), Some("7")]);
}

#[tokio::test(start_paused = true)]
async fn an_id_reset_sends_no_last_event_id() {
    let script = Script::new([sse("id: 1\ndata: a\n\nid\ndata: b\n\n")]);
    let mut source = script.source(builder());

    expect_open(&mut source).await;
    assert_eq!(expect_message(&mut source).await.2, "1");
    assert_eq!(expect_message(&mut source).await.2, "");
    expect_reconnecting(&mut source).await;
    expect_gave_up(&mut source).await;
    let seen = script.seen();
    assert_eq!(seen[1].last_event_id(), None);
    assert!(!seen[1].headers.contains_key("last-event-id"));
}

#[tokio::test(start_paused = true)]
async fn a_saved_last_event_id_is_sent_first_and_kept_by_events_without_ids() {
    let script = Script::new([sse("data: a\n\n")]);
    let mut source = script.source(builder().last_event_id("41"));
    assert_eq!(source.last_event_id(), "41");

    expect_open(&mut source).await;
    assert_eq!(
        expect_message(&mut source).await,
        support::triple("message", "a", "41")
    );
    while source.next().await.is_some() {}
    let seen = script.seen();
    let ids: Vec<_> = seen.iter().map(Seen::last_event_id).collect();
    assert_eq!(ids, [Some("41"), Some("41")]);
}

#[tokio::test(start_paused = true)]
async fn a_byte_order_mark_is_stripped_on_every_connection() {
    let script = Script::new([
        sse("\u{feff}id: 1\ndata: a\n\n"),
        sse("\u{feff}data: b\n\n"),
    ]);
    let mut source = script.source(builder());

    expect_open(&mut source).await;
    assert_eq!(
        expect_message(&mut source).await,
        support::triple("message", "a", "1")
    );
    expect_reconnecting(&mut source).await;
    expect_open(&mut source).await;
    assert_eq!(
        expect_message(&mut source).await,
        support::triple("message", "b", "1")
    );
}

#[tokio::test(start_paused = true)]
async fn an_incomplete_block_at_the_end_of_a_connection_is_discarded() {
    let script = Script::new([
        sse("id: 1\ndata: a\n\nid: 2\ndata: cut"),
        sse("data: b\n\n"),
    ]);
    let mut source = script.source(builder());

    expect_open(&mut source).await;
    expect_message(&mut source).await;
    expect_reconnecting(&mut source).await;
    expect_open(&mut source).await;
    assert_eq!(
        expect_message(&mut source).await,
        support::triple("message", "b", "1")
    );
    assert_eq!(script.seen()[1].last_event_id(), Some("1"));
}

/// Whether an error is the one a case expects.
type Check = fn(&ClientError) -> bool;

#[tokio::test(start_paused = true)]
async fn gives_up_on_no_content_other_statuses_and_other_content_types() {
    let cases: [(Response<TestBody>, Check); 4] = [
        (status(StatusCode::NO_CONTENT), ClientError::is_no_content),
        (status(StatusCode::INTERNAL_SERVER_ERROR), |error| {
            error.status() == Some(StatusCode::INTERNAL_SERVER_ERROR)
        }),
        (status(StatusCode::NOT_FOUND), |error| {
            error.status() == Some(StatusCode::NOT_FOUND)
        }),
        (
            Response::builder()
                .header(CONTENT_TYPE, "text/plain")
                .body(Full::new(Bytes::from_static(b"data: x\n\n")).boxed())
                .unwrap(),
            ClientError::is_content_type,
        ),
    ];
    for (reply, is_expected) in cases {
        let script = Script::new([reply]);
        let mut source = script.source(builder());
        let error = expect_gave_up(&mut source).await;
        assert!(is_expected(&error), "{error:?}");
        assert_eq!(script.seen().len(), 1, "no reconnection after {error}");
    }
}

#[tokio::test(start_paused = true)]
async fn content_type_parameters_and_case_are_ignored() {
    let reply = Response::builder()
        .header(CONTENT_TYPE, "Text/Event-Stream; charset=utf-8")
        .body(Full::new(Bytes::from_static(b"data: x\n\n")).boxed())
        .unwrap();
    let script = Script::new([reply]);
    let mut source = script.source(builder());
    expect_open(&mut source).await;
    assert_eq!(expect_message(&mut source).await.1, "x");
}

#[tokio::test(start_paused = true)]
async fn an_invalid_request_is_the_only_item() {
    for builder in [
        EventSource::builder("/relative"),
        EventSource::builder("http://source.test/ bad"),
        builder().header("bad header", "x"),
        builder().last_event_id("a\nb"),
    ] {
        let script = Script::default();
        let mut source = script.source(builder);
        let error = expect_gave_up(&mut source).await;
        assert!(error.is_invalid_request(), "{error:?}");
        assert!(script.seen().is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn a_line_beyond_the_limit_is_a_fatal_decode_error() {
    let (sender, stream) = open_stream();
    let script = Script::new([stream]);
    let mut source = script.source(builder().max_line_len(1024));

    expect_open(&mut source).await;
    let feeding = async {
        sender.send("data: ").unwrap();
        for _ in 0..10 {
            sender.send("0123456789abcdef0123456789abcdef").unwrap();
            tokio::task::yield_now().await;
        }
        // A hostile server goes on for ever; the client stops reading first.
        for _ in 0..1000 {
            if sender.send("0123456789abcdef0123456789abcdef").is_err() {
                break;
            }
            tokio::task::yield_now().await;
        }
    };
    let (error, ()) = tokio::join!(expect_gave_up(&mut source), feeding);
    assert!(error.is_decode());
    assert!(error.decode_error().unwrap().is_line_too_long());
    assert!(sender.is_closed(), "the connection is dropped");
}

#[tokio::test(start_paused = true)]
async fn redirects_are_followed_and_reconnections_start_from_the_original_uri() {
    let mut first = status(StatusCode::TEMPORARY_REDIRECT);
    first
        .headers_mut()
        .insert(LOCATION, "/moved".parse().unwrap());
    let script = Script::new([first, sse("data: a\n\n")]);
    let mut source = script.source(builder());

    expect_open(&mut source).await;
    expect_message(&mut source).await;
    expect_reconnecting(&mut source).await;
    expect_gave_up(&mut source).await;
    let uris: Vec<_> = script.seen().iter().map(|seen| seen.uri.clone()).collect();
    assert_eq!(
        uris,
        [
            "http://source.test/events",
            "http://source.test/moved",
            "http://source.test/events"
        ]
    );
}

// ---------------------------------------------------------------------------
// Faults over real HTTP on 127.0.0.1.

/// A hyper server on 127.0.0.1 that can be killed (every connection dropped
/// at once) and started again on the same port.
struct TestServer {
    addr: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
    connections: Arc<Mutex<tokio::task::JoinSet<()>>>,
}

type Handler = Arc<dyn Fn(&Request<hyper::body::Incoming>) -> Response<TestBody> + Send + Sync>;

impl TestServer {
    async fn start(addr: SocketAddr, handler: Handler) -> Self {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(Mutex::new(tokio::task::JoinSet::new()));
        let tasks = connections.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let handler = handler.clone();
                let service = hyper::service::service_fn(move |request| {
                    let response = handler(&request);
                    async move { Ok::<_, Infallible>(response) }
                });
                tasks.lock().unwrap().spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            accept,
            connections,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops listening and drops every connection mid-stream.
    fn kill(&self) {
        self.accept.abort();
        self.connections.lock().unwrap().abort_all();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Numbers its events itself: each connection gets the three events after
/// the `Last-Event-ID` it sends, then stays open.
fn numbering_server() -> Handler {
    Arc::new(|request| {
        let after = request
            .headers()
            .get("last-event-id")
            .and_then(|id| id.to_str().ok()?.parse::<u64>().ok())
            .unwrap_or(0);
        let events = (after + 1..=after + 3).map(|n| {
            Ok(Frame::data(Bytes::from(format!(
                "id: {n}\ndata: event {n}\n\n"
            ))))
        });
        let body = StreamBody::new(stream::iter(events).chain(stream::pending()));
        Response::builder()
            .header(CONTENT_TYPE, "text/event-stream")
            .body(BodyExt::boxed(body))
            .unwrap()
    })
}

/// The data of the next `count` messages, skipping opens and reconnections.
async fn messages(source: &mut EventSource, count: usize) -> Vec<String> {
    let mut data = Vec::new();
    while data.len() < count {
        match within("the next message", next(source)).await {
            Ok(SourceEvent::Message(event)) => data.push(event.data),
            Ok(_) => {}
            Err(error) => panic!("gave up: {error:?}"),
        }
    }
    data
}

#[tokio::test]
async fn resumes_after_a_server_restart_without_losing_or_repeating_events() {
    let server = TestServer::start(any_port(), numbering_server()).await;
    let mut source = EventSource::builder(server.url("/numbers"))
        .reconnection_time(Duration::from_millis(20))
        .build_http();

    assert_eq!(
        messages(&mut source, 3).await,
        ["event 1", "event 2", "event 3"]
    );
    let addr = server.addr;
    drop(server);
    let (error, _) = within("the reconnection", expect_reconnecting(&mut source)).await;
    assert!(error.is_body() || error.is_ended(), "{error:?}");

    let restarted = TestServer::start(addr, numbering_server()).await;
    assert_eq!(
        messages(&mut source, 3).await,
        ["event 4", "event 5", "event 6"]
    );
    assert_eq!(source.last_event_id(), "6");
    drop(restarted);
}

/// Answers every request with a copy of one response head and body.
fn fixed(
    status: StatusCode,
    headers: &[(&'static str, &'static str)],
    body: &'static str,
) -> Handler {
    let headers = headers.to_vec();
    Arc::new(move |_| {
        let mut response = Response::builder().status(status);
        for (name, value) in &headers {
            response = response.header(*name, *value);
        }
        response
            .body(Full::new(Bytes::from_static(body.as_bytes())).boxed())
            .unwrap()
    })
}

#[tokio::test]
async fn gives_up_on_a_wrong_content_type_over_http() {
    let server = TestServer::start(
        any_port(),
        fixed(
            StatusCode::OK,
            &[("content-type", "text/html")],
            "data: x\n\n",
        ),
    )
    .await;
    let mut source = EventSource::http(server.url("/"));
    let error = within("the error", expect_gave_up(&mut source)).await;
    assert!(error.is_content_type(), "{error:?}");
}

#[tokio::test]
async fn gives_up_on_204_over_http() {
    let server = TestServer::start(any_port(), fixed(StatusCode::NO_CONTENT, &[], "")).await;
    let mut source = EventSource::http(server.url("/"));
    let error = within("the error", expect_gave_up(&mut source)).await;
    assert!(error.is_no_content(), "{error:?}");
}

/// Counts requests; answers `500` (with `Retry-After: 0`) to the first
/// `failures`, then `204`.
fn failing_then_done(failures: usize) -> (Handler, Arc<Mutex<usize>>) {
    let count = Arc::new(Mutex::new(0));
    let counter = count.clone();
    let handler: Handler = Arc::new(move |_| {
        let mut count = counter.lock().unwrap();
        *count += 1;
        let status = if *count <= failures {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::NO_CONTENT
        };
        Response::builder()
            .status(status)
            .header(RETRY_AFTER, "0")
            .body(Full::default().boxed())
            .unwrap()
    });
    (handler, count)
}

#[tokio::test]
async fn gives_up_on_500_over_http_unless_told_to_retry() {
    let (handler, count) = failing_then_done(2);
    let server = TestServer::start(any_port(), handler).await;
    let mut source = EventSource::http(server.url("/"));
    let error = within("the error", expect_gave_up(&mut source)).await;
    assert_eq!(error.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
    assert_eq!(*count.lock().unwrap(), 1);

    let (handler, count) = failing_then_done(2);
    let server = TestServer::start(any_port(), handler).await;
    let mut source = EventSource::builder(server.url("/"))
        .reconnection_time(Duration::from_millis(10))
        .max_backoff(Duration::from_millis(50))
        .retry_server_errors(true)
        .build_http();
    for _ in 0..2 {
        let (error, _) = within("a retry", expect_reconnecting(&mut source)).await;
        assert_eq!(error.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
    }
    let error = within("the error", expect_gave_up(&mut source)).await;
    assert!(error.is_no_content(), "{error:?}");
    assert_eq!(*count.lock().unwrap(), 3);
}

/// `/hop/N` redirects to `/hop/N-1` (a relative location), `/hop/0` to the
/// absolute URL of `/events`; `/loop` redirects to itself.
fn redirecting_server(
    addr_slot: Arc<Mutex<Option<SocketAddr>>>,
    seen: Arc<Mutex<Vec<String>>>,
) -> Handler {
    Arc::new(move |request| {
        let path = request.uri().path().to_owned();
        seen.lock().unwrap().push(path.clone());
        let location = if path == "/loop" {
            "/loop".to_owned()
        } else if let Some(hop) = path.strip_prefix("/hop/") {
            match hop.parse::<u32>().unwrap() {
                0 => format!("http://{}/events", addr_slot.lock().unwrap().unwrap()),
                n => format!("{}", n - 1),
            }
        } else {
            return Response::builder()
                .header(CONTENT_TYPE, "text/event-stream")
                .body(Full::new(Bytes::from_static(b"data: arrived\n\n")).boxed())
                .unwrap();
        };
        Response::builder()
            .status(StatusCode::FOUND)
            .header(LOCATION, location)
            .body(Full::default().boxed())
            .unwrap()
    })
}

#[tokio::test]
async fn follows_a_redirect_chain_and_gives_up_on_a_loop_beyond_the_bound() {
    let addr_slot = Arc::new(Mutex::new(None));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server = TestServer::start(
        any_port(),
        redirecting_server(addr_slot.clone(), seen.clone()),
    )
    .await;
    *addr_slot.lock().unwrap() = Some(server.addr);

    let mut source = EventSource::http(server.url("/hop/3"));
    assert_eq!(messages(&mut source, 1).await, ["arrived"]);
    assert_eq!(
        *seen.lock().unwrap(),
        ["/hop/3", "/hop/2", "/hop/1", "/hop/0", "/events"]
    );
    source.close();
    assert!(source.next().await.is_none());

    seen.lock().unwrap().clear();
    let mut source = EventSource::builder(server.url("/loop"))
        .max_redirects(5)
        .build_http();
    let error = within("the error", expect_gave_up(&mut source)).await;
    assert!(error.is_too_many_redirects(), "{error:?}");
    assert_eq!(
        seen.lock().unwrap().len(),
        6,
        "the request and five redirects"
    );
}

#[tokio::test]
async fn the_plain_http_client_gives_up_on_a_redirect_to_https() {
    let server = TestServer::start(
        any_port(),
        Arc::new(|_| {
            Response::builder()
                .status(StatusCode::FOUND)
                // Never connected to: the client gives up first.
                .header(LOCATION, "https://127.0.0.1:9/events")
                .body(Full::default().boxed())
                .unwrap()
        }),
    )
    .await;
    let mut source = EventSource::http(server.url("/events"));
    let error = within("the error", expect_gave_up(&mut source)).await;
    assert!(error.is_invalid_request(), "{error:?}");
}

#[tokio::test]
async fn an_endless_line_ends_with_the_line_too_long_error() {
    let chunk = Bytes::from(vec![b'x'; 16 * 1024]);
    let handler: Handler = Arc::new(move |_| {
        let chunk = chunk.clone();
        let endless = stream::once(async { Bytes::from_static(b"data: ") })
            .chain(stream::repeat(chunk))
            .map(|bytes| Ok(Frame::data(bytes)));
        Response::builder()
            .header(CONTENT_TYPE, "text/event-stream")
            .body(BodyExt::boxed(StreamBody::new(endless)))
            .unwrap()
    });
    let server = TestServer::start(any_port(), handler).await;
    let mut source = EventSource::builder(server.url("/endless"))
        .max_line_len(256 * 1024)
        .build_http();
    expect_open(&mut source).await;
    let error = within("the error", expect_gave_up(&mut source)).await;
    let decode = error.decode_error().expect("a decode error");
    assert!(decode.is_line_too_long(), "{error:?}");
}
