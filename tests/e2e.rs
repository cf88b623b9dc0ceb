//! End to end over real HTTP/1.1 on 127.0.0.1: a hyper server running a tower
//! service behind `SseLayer`, a hyper client, and the stream read back through
//! `tower_sse::decode`.
//!
//! These tests wait on the network, so they run on the real clock with
//! generous timeouts; every one of them ends by itself.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use http::header;
use http::{Request, Response, StatusCode};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tower::{ServiceBuilder, service_fn};
use tower_sse::decode::{DecodeStream, MessageEvent};
use tower_sse::{
    BoxError, CloseReason, Event, Farewell, LastEventId, Shutdown, SseConfig, SseLayer,
};

use support::{CloseRecorder, within};

/// Serves the first connection accepted on a fresh `127.0.0.1` port with
/// `service`. When `shutdown` is triggered the connection shuts down
/// gracefully: the response in flight may finish, then the connection closes.
async fn serve_one<S, B>(
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
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
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

/// Opens an HTTP/1.1 client connection to `addr`.
async fn connect(addr: SocketAddr) -> (SendRequest<Empty<Bytes>>, JoinHandle<hyper::Result<()>>) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    (sender, tokio::spawn(connection))
}

/// The request a browser's `EventSource` sends when it reconnects.
fn event_source_request(addr: SocketAddr, last_event_id: Option<&str>) -> Request<Empty<Bytes>> {
    let mut request = Request::get("/events")
        .header(header::HOST, addr.to_string())
        .header(header::ACCEPT, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-store");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    request.body(Empty::new()).unwrap()
}

/// A dispatched event as (type, data, last event id).
fn fields(event: MessageEvent) -> (String, String, String) {
    (event.event_type, event.data, event.last_event_id)
}

fn expected(event_type: &str, data: &str, last_event_id: &str) -> (String, String, String) {
    (event_type.into(), data.into(), last_event_id.into())
}

/// Events every `period`, forever, numbered from 1.
fn ticks(period: Duration) -> impl futures_util::Stream<Item = Event> + Send {
    stream::unfold(1_u64, move |n| async move {
        tokio::time::sleep(period).await;
        Some((Event::new().id(n).event("tick").data(n.to_string()), n + 1))
    })
}

#[tokio::test]
async fn events_arrive_exactly_as_sent_over_http() {
    let seen = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&seen);
    let closes = CloseRecorder::new();
    let service = ServiceBuilder::new()
        .layer(SseLayer::with_config(
            SseConfig::new()
                .require_accept(true)
                .on_close(closes.hook()),
        ))
        .service(service_fn(move |request: Request<Incoming>| {
            let last = request.extensions().get::<LastEventId>().cloned();
            let next = last
                .as_ref()
                .and_then(|id| id.parse::<u64>().ok())
                .map_or(0, |id| id + 1);
            *slot.lock().unwrap() = Some(last);
            let events = [
                Event::new()
                    .id(next)
                    .event("greeting")
                    .data("line one\nline two\r\nline three\rline four"),
                Event::new().data(""),
                Event::new().id(next + 1).data("héllo wörld ✓ 🌍 日本語"),
                Event::new().data("  two leading spaces, one trailing newline\n"),
                Event::new().comment("a comment is not dispatched"),
                Event::new().id(next + 2).event("update").data("\n"),
                Event::new()
                    .retry(Duration::from_secs(3))
                    .event("with retry")
                    .data("data: not a field\nid: nor this"),
                Event::new().id("").data("id reset"),
                Event::new().id(next + 3).event("bye").data("last"),
            ];
            async move { Ok::<_, Infallible>(Response::new(stream::iter(events))) }
        }));
    let (addr, server) = serve_one(service, None).await;

    let (mut client, client_connection) = connect(addr).await;
    let response = within(
        "the response",
        client.send_request(event_source_request(addr, Some("41"))),
    )
    .await
    .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers[header::CONTENT_TYPE], "text/event-stream");
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
    assert_eq!(headers["x-accel-buffering"], "no");
    assert!(!headers.contains_key(header::CONTENT_LENGTH));

    let mut events = pin!(DecodeStream::new(response.into_body()));
    let mut received = Vec::new();
    while let Some(event) = within("the next event", events.next()).await {
        received.push(fields(event.expect("the stream decodes")));
    }
    assert_eq!(
        received,
        [
            expected(
                "greeting",
                "line one\nline two\nline three\nline four",
                "42"
            ),
            expected("message", "", "42"),
            expected("message", "héllo wörld ✓ 🌍 日本語", "43"),
            expected(
                "message",
                "  two leading spaces, one trailing newline\n",
                "43"
            ),
            expected("update", "\n", "44"),
            expected("with retry", "data: not a field\nid: nor this", "44"),
            expected("message", "id reset", ""),
            expected("bye", "last", "45"),
        ]
    );

    assert_eq!(events.decoder().last_event_id(), "45");
    assert_eq!(
        events.decoder().reconnection_time(),
        Some(Duration::from_secs(3))
    );

    let seen = seen.lock().unwrap().take();
    assert_eq!(seen, Some(Some(LastEventId::new("41").unwrap())));
    assert_eq!(closes.reasons(), [CloseReason::StreamEnded]);

    drop(client);
    within("the client connection", client_connection)
        .await
        .unwrap()
        .unwrap();
    within("the server connection", server)
        .await
        .unwrap()
        .unwrap();
}

/// Serves an endless stream, reads two events, drops the client connection,
/// and returns what the close hook then reports.
async fn close_reason_after_client_disconnects<St>(make_stream: fn() -> St) -> CloseReason
where
    St: futures_util::Stream<Item = Event> + Send + 'static,
{
    let (closes, mut closed) = mpsc::unbounded_channel();
    let config = SseConfig::new().on_close(move |reason| {
        let _ = closes.send(reason);
    });
    let service = ServiceBuilder::new()
        .layer(SseLayer::with_config(config))
        .service(service_fn(move |_: Request<Incoming>| async move {
            Ok::<_, Infallible>(Response::new(make_stream()))
        }));
    let (addr, server) = serve_one(service, None).await;

    let (mut client, client_connection) = connect(addr).await;
    let response = within(
        "the response",
        client.send_request(event_source_request(addr, None)),
    )
    .await
    .unwrap();
    let mut events = Box::pin(DecodeStream::new(response.into_body()));
    for n in 1..=2 {
        let event = within("an event", events.next()).await.unwrap().unwrap();
        assert_eq!(event.data, n.to_string());
    }
    assert!(
        closed.try_recv().is_err(),
        "closed while the client was there"
    );

    drop(events);
    drop(client);
    client_connection.abort();
    let _ = client_connection.await;

    let reason = within("the close hook", closed.recv()).await.unwrap();
    // The server's side of the connection ends too, with an error or without.
    let _ = within("the server connection", server).await.unwrap();
    assert!(closed.try_recv().is_err(), "the hook was called twice");
    reason
}

#[tokio::test]
async fn client_disconnect_while_streaming_reports_client_gone() {
    let reason = close_reason_after_client_disconnects(|| ticks(Duration::from_millis(20))).await;
    assert_eq!(reason, CloseReason::ClientGone);
}

#[tokio::test]
async fn client_disconnect_while_idle_reports_client_gone() {
    let reason = close_reason_after_client_disconnects(|| {
        stream::iter(1..=2)
            .map(|n: u32| Event::new().data(n.to_string()))
            .chain(stream::pending())
    })
    .await;
    assert_eq!(reason, CloseReason::ClientGone);
}

#[tokio::test]
async fn shutdown_ends_the_stream_after_the_farewell_and_the_connection_closes() {
    let shutdown = Shutdown::new();
    let closes = CloseRecorder::new();
    let config = SseConfig::new()
        .shutdown(shutdown.clone())
        .farewell(
            Farewell::new()
                .event(Event::new().event("restarting").data("back soon"))
                .retry_between(Duration::from_secs(1), Duration::from_secs(5)),
        )
        .on_close(closes.hook());
    let service = ServiceBuilder::new()
        .layer(SseLayer::with_config(config))
        .service(service_fn(|_: Request<Incoming>| async {
            Ok::<_, Infallible>(Response::new(ticks(Duration::from_millis(20))))
        }));
    let (addr, server) = serve_one(service, Some(shutdown.clone())).await;

    let (mut client, client_connection) = connect(addr).await;
    let response = within(
        "the response",
        client.send_request(event_source_request(addr, None)),
    )
    .await
    .unwrap();
    let mut events = pin!(DecodeStream::new(response.into_body()));
    let first = within("the first event", events.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fields(first), expected("tick", "1", "1"));

    shutdown.trigger();

    // Ticks already on the way may arrive first; the farewell is last.
    let mut last = None;
    while let Some(event) = within("the end of the stream", events.next()).await {
        last = Some(event.expect("the stream decodes"));
    }
    let farewell = last.expect("no farewell before the end");
    assert_eq!(farewell.event_type, "restarting");
    assert_eq!(farewell.data, "back soon");
    let retry = events.decoder().reconnection_time().expect("a retry");
    assert!(
        (Duration::from_secs(1)..=Duration::from_secs(5)).contains(&retry),
        "{retry:?}"
    );
    assert_eq!(closes.reasons(), [CloseReason::Shutdown]);

    within("the server connection", server)
        .await
        .unwrap()
        .expect("the server connection ends cleanly");
    drop(client);
    within("the client connection", client_connection)
        .await
        .unwrap()
        .unwrap();
}
