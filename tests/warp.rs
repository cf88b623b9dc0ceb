//! The warp adapter end to end: a `warp::serve` server on 127.0.0.1, a hyper
//! client, and every stream read back through `tower_sse::decode`.
//!
//! These tests wait on the network, so they run on the real clock with
//! bounded waits; every one of them ends by itself.

#![cfg(feature = "warp")]

mod support;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::stream;
use http::StatusCode;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::Layer;
use tower_sse::decode::DecodeStream;
use tower_sse::warp::{SseReply, apply_config, last_event_id, last_event_id_header};
use tower_sse::{
    CloseReason, Event, Farewell, KeepAlive, LastEventId, LastEventIdHeader, Shutdown, SseConfig,
    SseConfigLayer,
};
use warp::Filter;
use warp::reply::Reply;

use support::client::{self, Connection, open_events as open};
use support::server::{self, serve_one};
use support::{
    CloseRecorder, EventStream, all_events, assert_sse_headers, framing_events,
    framing_events_after_41, next_event, one_then_idle, receive_at_least, triple, within,
};

/// Serves `routes` on a fresh 127.0.0.1 port until `stop` resolves (or
/// forever), with warp's graceful shutdown.
async fn serve<F, R>(
    routes: F,
    stop: impl Future<Output = ()> + Send + 'static,
) -> (SocketAddr, JoinHandle<()>)
where
    F: Filter<Extract = (R,), Error = warp::Rejection> + Clone + Send + Sync + 'static,
    R: Reply,
{
    let (listener, addr) = server::bind().await;
    let server = warp::serve(routes).incoming(listener).graceful(stop).run();
    (addr, tokio::spawn(server))
}

fn events_route() -> impl Filter<Extract = (SseReply<EventStream>,), Error = warp::Rejection> + Clone
{
    warp::path("events").map(|| SseReply::new(one_then_idle("hi")))
}

#[tokio::test]
async fn events_arrive_exactly_as_sent_with_sse_headers() {
    let routes = warp::path("events")
        .and(last_event_id())
        .map(|last_event_id| SseReply::new(stream::iter(framing_events(last_event_id))));
    let (addr, _server) = serve(routes, std::future::pending()).await;

    let mut connection = Connection::open(addr).await;
    let response = connection
        .send(client::event_source(addr, "/events", Some("41")))
        .await;
    assert_sse_headers(&response);

    assert_eq!(
        all_events(DecodeStream::new(response.into_body())).await,
        framing_events_after_41()
    );
}

#[tokio::test]
async fn applied_config_keeps_an_idle_stream_alive() {
    let config = SseConfig::new().keep_alive(
        KeepAlive::new()
            .interval(Duration::from_millis(50))
            .text("ping"),
    );
    let (addr, _server) = serve(apply_config(events_route(), config), std::future::pending()).await;

    let mut connection = Connection::open(addr).await;
    let response = connection
        .send(client::event_source(addr, "/events", None))
        .await;
    let expected = b"id: 1\ndata: hi\n\n: ping\n\n: ping\n\n";
    let received = receive_at_least(&mut response.into_body(), expected.len()).await;
    assert_eq!(received, expected);
}

#[tokio::test]
async fn reply_config_wins_over_the_applied_config() {
    let from_routes = CloseRecorder::new();
    let from_reply = CloseRecorder::new();
    let reply_config = SseConfig::new().on_close(from_reply.hook());
    let route = warp::path("events").map(move || {
        SseReply::new(stream::iter([Event::new().data("only")])).config(reply_config.clone())
    });
    let routes = apply_config(route, SseConfig::new().on_close(from_routes.hook()));
    let (addr, _server) = serve(routes, std::future::pending()).await;

    let (_connection, events) = open(addr, "/events", None).await;
    assert_eq!(all_events(events).await, [triple("message", "only", "")]);
    assert_eq!(from_reply.wait_for(1).await, [CloseReason::StreamEnded]);
    assert_eq!(from_routes.reasons(), []);
}

#[tokio::test]
async fn last_event_id_filter_yields_only_a_valid_header() {
    let routes = warp::path("id")
        .and(last_event_id())
        .map(|id: Option<LastEventId>| {
            id.map_or_else(|| "none".to_owned(), LastEventId::into_string)
        });
    let (addr, _server) = serve(routes, std::future::pending()).await;

    let cases: [(&[&str], &str); 5] = [
        (&["42"], "42"),
        (&["événement-7"], "événement-7"),
        (&[], "none"),
        (&["a\tb"], "none"),
        (&["1", "2"], "none"),
    ];
    for (ids, expected) in cases {
        let mut request = client::event_source(addr, "/id", None);
        for id in ids {
            request
                .headers_mut()
                .append("last-event-id", id.parse().unwrap());
        }
        let (status, body) = client::fetch(addr, request).await;
        assert_eq!(
            (status, &body[..]),
            (StatusCode::OK, expected.as_bytes()),
            "{ids:?}"
        );
    }
}

#[tokio::test]
async fn last_event_id_header_filter_tells_invalid_from_absent() {
    let routes = warp::path("id")
        .and(last_event_id_header())
        .map(|header: LastEventIdHeader| match header.for_resume() {
            None => "absent".to_owned(),
            Some(LastEventIdHeader::INVALID_MARKER) => "invalid".to_owned(),
            Some(id) => format!("valid {id}"),
        });
    let (addr, _server) = serve(routes, std::future::pending()).await;

    let cases: [(&[&[u8]], &str); 5] = [
        (&[], "absent"),
        (&[b"42"], "valid 42"),
        (&[b"4\t2"], "invalid"),
        (&[b"\xff\xfe"], "invalid"),
        (&[b"1", b"2"], "invalid"),
    ];
    for (ids, expected) in cases {
        let mut request = client::event_source(addr, "/id", None);
        for id in ids {
            request
                .headers_mut()
                .append("last-event-id", http::HeaderValue::from_bytes(id).unwrap());
        }
        let (status, body) = client::fetch(addr, request).await;
        assert_eq!(
            (status, &body[..]),
            (StatusCode::OK, expected.as_bytes()),
            "{ids:?}"
        );
    }
}

#[tokio::test]
async fn require_accept_through_apply_config_answers_406_to_sse_replies_only() {
    let closes = CloseRecorder::new();
    let routes = events_route()
        .map(Reply::into_response)
        .or(warp::path("json").map(|| "{}"));
    let routes = apply_config(
        routes,
        SseConfig::new()
            .require_accept(true)
            .on_close(closes.hook()),
    );
    let (addr, _server) = serve(routes, std::future::pending()).await;

    let json = |path: &str| {
        let mut request = client::event_source(addr, path, None);
        request
            .headers_mut()
            .insert(http::header::ACCEPT, "application/json".parse().unwrap());
        request
    };
    let (status, body) = client::fetch(addr, json("/events")).await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
    assert!(body.is_empty());
    let (status, body) = client::fetch(addr, json("/json")).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"{}"[..]));
    let (_connection, mut events) = open(addr, "/events", None).await;
    assert_eq!(next_event(&mut events).await.unwrap().data, "hi");
    assert_eq!(closes.reasons(), []);
}

#[tokio::test]
async fn a_replys_own_require_accept_is_honoured_inside_apply_config() {
    let events = warp::path("events")
        .map(|| SseReply::new(one_then_idle("hi")).config(SseConfig::new().require_accept(true)));
    let routes = apply_config(events, SseConfig::new());
    let (addr, _server) = serve(routes, std::future::pending()).await;

    let mut request = client::event_source(addr, "/events", None);
    request
        .headers_mut()
        .insert(http::header::ACCEPT, "application/json".parse().unwrap());
    let (status, body) = client::fetch(addr, request).await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
    assert!(body.is_empty());
    let (_connection, mut events) = open(addr, "/events", None).await;
    assert_eq!(next_event(&mut events).await.unwrap().data, "hi");
}

#[tokio::test]
async fn no_content_tells_the_client_to_stop() {
    let closes = CloseRecorder::new();
    let route = warp::path("events")
        .and(last_event_id())
        .map(|id: Option<LastEventId>| match id {
            // This client has seen everything there is.
            Some(_) => StatusCode::NO_CONTENT.into_response(),
            None => SseReply::new(stream::iter([Event::new().id(1).data("all")])).into_response(),
        });
    let routes = apply_config(route, SseConfig::new().on_close(closes.hook()));
    let (addr, _server) = serve(routes, std::future::pending()).await;

    let (_connection, events) = open(addr, "/events", None).await;
    assert_eq!(all_events(events).await, [triple("message", "all", "1")]);

    let (status, body) =
        client::fetch(addr, client::event_source(addr, "/events", Some("1"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(body.is_empty());
    assert_eq!(closes.reasons(), [CloseReason::StreamEnded]);
}

#[tokio::test]
async fn client_disconnect_is_reported() {
    let closes = CloseRecorder::new();
    let routes = apply_config(events_route(), SseConfig::new().on_close(closes.hook()));
    let (addr, _server) = serve(routes, std::future::pending()).await;

    let (connection, mut events) = open(addr, "/events", None).await;
    assert_eq!(next_event(&mut events).await.unwrap().data, "hi");
    assert_eq!(closes.reasons(), []);
    drop(events);
    drop(connection);
    assert_eq!(closes.wait_for(1).await, [CloseReason::ClientGone]);
}

#[tokio::test]
async fn graceful_shutdown_completes_with_clients_connected() {
    let shutdown = Shutdown::new();
    let closes = CloseRecorder::new();
    let config = SseConfig::new()
        .shutdown(shutdown.clone())
        .farewell(Farewell::new().event(Event::new().event("bye").data("restarting")))
        .on_close(closes.hook());
    let routes = apply_config(events_route(), config);

    // What an application writes: warp's graceful future triggers the SSE
    // shutdown signal.
    let (stop, stopped) = oneshot::channel::<()>();
    let (addr, server) = serve(routes, async move {
        let _ = stopped.await;
        shutdown.trigger();
    })
    .await;

    let mut clients = Vec::new();
    for _ in 0..2 {
        let (connection, mut events) = open(addr, "/events", None).await;
        assert_eq!(next_event(&mut events).await.unwrap().data, "hi");
        clients.push((connection, events));
    }
    stop.send(()).unwrap();

    for (_connection, events) in clients {
        assert_eq!(all_events(events).await, [triple("bye", "restarting", "1")]);
    }
    within("the server to shut down", server).await.unwrap();
    assert_eq!(
        closes.reasons(),
        [CloseReason::Shutdown, CloseReason::Shutdown]
    );
}

#[tokio::test]
async fn config_layer_applies_to_warp_as_a_tower_service() {
    let closes = CloseRecorder::new();
    let service = SseConfigLayer::new(SseConfig::new().on_close(closes.hook()))
        .layer(warp::service(events_route()));
    let (addr, _server) = serve_one(service, None).await;

    let (connection, mut events) = open(addr, "/events", None).await;
    assert_eq!(next_event(&mut events).await.unwrap().data, "hi");
    drop(events);
    drop(connection);
    assert_eq!(closes.wait_for(1).await, [CloseReason::ClientGone]);
}
