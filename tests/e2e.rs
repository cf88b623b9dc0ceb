//! End to end over real HTTP/1.1 on 127.0.0.1: a hyper server running a tower
//! service behind `SseLayer`, a hyper client, and the stream read back through
//! `tower_sse::decode`.
//!
//! These tests wait on the network, so they run on the real clock with
//! generous timeouts; every one of them ends by itself.

mod support;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use http::{Request, Response};
use hyper::body::Incoming;
use tokio::sync::mpsc;
use tower::{ServiceBuilder, service_fn};
use tower_sse::decode::DecodeStream;
use tower_sse::{CloseReason, Event, Farewell, LastEventId, Shutdown, SseConfig, SseLayer};

use support::client::{Connection, event_source};
use support::server::serve_one;
use support::{CloseRecorder, all_events, assert_sse_headers, fields, triple, within};

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

    let mut client = Connection::open(addr).await;
    let response = client.send(event_source(addr, "/events", Some("41"))).await;
    assert_sse_headers(&response);

    let mut events = DecodeStream::new(response.into_body());
    assert_eq!(
        all_events(&mut events).await,
        [
            triple(
                "greeting",
                "line one\nline two\nline three\nline four",
                "42"
            ),
            triple("message", "", "42"),
            triple("message", "héllo wörld ✓ 🌍 日本語", "43"),
            triple(
                "message",
                "  two leading spaces, one trailing newline\n",
                "43"
            ),
            triple("update", "\n", "44"),
            triple("with retry", "data: not a field\nid: nor this", "44"),
            triple("message", "id reset", ""),
            triple("bye", "last", "45"),
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

    client.finish().await.unwrap();
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

    let mut client = Connection::open(addr).await;
    let response = client.send(event_source(addr, "/events", None)).await;
    let mut events = DecodeStream::new(response.into_body());
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

    let mut client = Connection::open(addr).await;
    let response = client.send(event_source(addr, "/events", None)).await;
    let mut events = DecodeStream::new(response.into_body());
    let first = within("the first event", events.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fields(first), triple("tick", "1", "1"));

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
    client.finish().await.unwrap();
}
