//! End to end over HTTP/2 (h2c, prior knowledge) on 127.0.0.1: one listener
//! serving HTTP/1.1 and HTTP/2 with hyper-util's auto builder, graceful
//! shutdown with hyper-util's `GracefulShutdown` driven by tower-sse's
//! `Shutdown`, a hyper HTTP/2 client, and the stream read back through
//! `tower_sse::decode`.
//!
//! These tests wait on the network, so they run on the real clock with
//! generous timeouts; every one of them ends by itself.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use http::{Request, Response, Version, header};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tower::{ServiceBuilder, service_fn};
use tower_sse::decode::DecodeStream;
use tower_sse::{Event, Farewell, LastEventId, Shutdown, SseConfig, SseLayer};

use support::{fields, server, within};

/// Ticks numbered after the request's `Last-Event-ID`, one every 20 ms.
fn ticks_after(
    request: &Request<Incoming>,
) -> impl futures_util::Stream<Item = Event> + Send + use<> {
    let start = request
        .extensions()
        .get::<LastEventId>()
        .and_then(|id| id.parse::<u64>().ok())
        .map_or(1, |id| id + 1);
    stream::iter(start..).then(|n| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Event::new().id(n).event("tick").data(n.to_string())
    })
}

/// Serves HTTP/1.1 and HTTP/2 on a fresh `127.0.0.1` port until `shutdown`
/// is triggered; then every connection shuts down gracefully, and the task
/// ends when the last one has closed.
async fn serve_auto(shutdown: Shutdown) -> (SocketAddr, JoinHandle<()>) {
    let config = SseConfig::new()
        .shutdown(shutdown.clone())
        .farewell(Farewell::new().event(Event::new().event("bye").data("restarting")));
    let service = ServiceBuilder::new()
        .layer(SseLayer::with_config(config))
        .service(service_fn(|request: Request<Incoming>| async move {
            Ok::<_, Infallible>(Response::new(ticks_after(&request)))
        }));
    let (listener, addr) = server::bind().await;
    let task = tokio::spawn(async move {
        let builder = auto::Builder::new(TokioExecutor::new());
        let graceful = GracefulShutdown::new();
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => accepted.unwrap().0,
                () = shutdown.triggered() => break,
            };
            let connection = builder
                .serve_connection(
                    TokioIo::new(stream),
                    TowerToHyperService::new(service.clone()),
                )
                .into_owned();
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                let _ = connection.await;
            });
        }
        drop(listener);
        graceful.shutdown().await;
    });
    (addr, task)
}

/// A prior-knowledge HTTP/2 client connection to `addr`.
async fn h2_client(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<Empty<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    sender
}

#[tokio::test]
async fn events_resume_and_end_on_shutdown_over_http2() {
    let shutdown = Shutdown::new();
    let (addr, server) = serve_auto(shutdown.clone()).await;
    let mut client = h2_client(addr).await;

    let request = Request::get(format!("http://{addr}/events"))
        .header("last-event-id", "41")
        .body(Empty::new())
        .unwrap();
    let response = within("the response head", client.send_request(request))
        .await
        .unwrap();
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    // Connection-specific headers are forbidden in HTTP/2.
    assert!(!response.headers().contains_key(header::CONNECTION));
    assert!(!response.headers().contains_key(header::TRANSFER_ENCODING));

    let mut events = DecodeStream::new(response.into_body());
    for n in 42..45_u64 {
        let event = within("a tick", events.next()).await.unwrap().unwrap();
        assert_eq!(
            fields(event),
            ("tick".to_owned(), n.to_string(), n.to_string())
        );
    }

    // A second stream on the same connection, then the shutdown ends both.
    let second = Request::get(format!("http://{addr}/events"))
        .body(Empty::new())
        .unwrap();
    let second = within("the second head", client.send_request(second))
        .await
        .unwrap();
    let mut second = DecodeStream::new(second.into_body());
    let first_tick = within("a tick", second.next()).await.unwrap().unwrap();
    assert_eq!(first_tick.last_event_id, "1");

    shutdown.trigger();
    for stream in [&mut events, &mut second] {
        let mut last = None;
        while let Some(event) = within("the end of the stream", stream.next()).await {
            last = Some(event.unwrap());
        }
        let last = last.expect("the farewell");
        assert_eq!(
            (last.event_type.as_str(), last.data.as_str()),
            ("bye", "restarting")
        );
    }
    within("the server's graceful shutdown", server)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_same_listener_serves_http1() {
    let shutdown = Shutdown::new();
    let (addr, server) = serve_auto(shutdown.clone()).await;
    let (_connection, mut events) = support::client::open_events(addr, "/events", None).await;
    let tick = within("a tick", events.next()).await.unwrap().unwrap();
    assert_eq!(tick.data, "1");
    shutdown.trigger();
    while let Some(event) = within("the end of the stream", events.next()).await {
        event.unwrap();
    }
    within("the server's graceful shutdown", server)
        .await
        .unwrap();
}
