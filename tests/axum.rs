//! The axum adapter end to end: an `axum::serve` server on 127.0.0.1, a
//! hyper client, and every stream read back through `tower_sse::decode`.
//!
//! These tests wait on the network, so they run on the real clock with
//! bounded waits; every one of them ends by itself.

#![cfg(feature = "axum")]

mod support;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::get;
use futures_util::stream::{self, StreamExt};
use http::{Request, Response};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::{ServiceBuilder, service_fn};
use tower_sse::axum::SseResponse;
use tower_sse::decode::DecodeStream;
use tower_sse::{
    CloseReason, Event, Farewell, KeepAlive, LastEventId, LastEventIdHeader, Shutdown, SseConfig,
    SseConfigLayer, SseLayer,
};

use support::client::{self, Connection, open_events as open};
use support::{
    CloseRecorder, EventStream, all_events, assert_sse_headers, framing_events,
    framing_events_after_41, next_event, one_then_idle, receive_at_least, server, triple, within,
};

/// Serves `app` on a fresh 127.0.0.1 port until `stop` resolves (or forever),
/// with axum's graceful shutdown.
async fn serve<F>(app: Router, stop: F) -> (SocketAddr, JoinHandle<std::io::Result<()>>)
where
    F: Future<Output = ()> + Send + 'static,
{
    let (listener, addr) = server::bind().await;
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
    });
    (addr, server)
}

#[tokio::test]
async fn events_arrive_exactly_as_sent_with_sse_headers() {
    async fn handler(last_event_id: Option<LastEventId>) -> SseResponse<EventStream> {
        SseResponse::new(Box::pin(stream::iter(framing_events(last_event_id))))
    }
    let app = Router::new().route("/events", get(handler));
    let (addr, _server) = serve(app, std::future::pending()).await;

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
async fn router_layer_keeps_an_idle_stream_alive() {
    let config = SseConfig::new().keep_alive(
        KeepAlive::new()
            .interval(Duration::from_millis(50))
            .text("ping"),
    );
    let app = Router::new()
        .route(
            "/events",
            get(|| async { SseResponse::new(one_then_idle("hi")) }),
        )
        .layer(SseConfigLayer::new(config));
    let (addr, _server) = serve(app, std::future::pending()).await;

    let mut connection = Connection::open(addr).await;
    let response = connection
        .send(client::event_source(addr, "/events", None))
        .await;
    let expected = b"id: 1\ndata: hi\n\n: ping\n\n: ping\n\n";
    let received = receive_at_least(&mut response.into_body(), expected.len()).await;
    assert_eq!(received, expected);
}

#[tokio::test]
async fn response_config_wins_over_the_router_layer() {
    let from_layer = CloseRecorder::new();
    let from_response = CloseRecorder::new();
    let hook = from_response.hook();
    let response_config = SseConfig::new().on_close(hook);
    let app =
        Router::new()
            .route(
                "/events",
                get(move || {
                    let config = response_config.clone();
                    async move {
                        SseResponse::new(stream::iter([Event::new().data("only")])).config(config)
                    }
                }),
            )
            .layer(SseConfigLayer::new(
                SseConfig::new().on_close(from_layer.hook()),
            ));
    let (addr, _server) = serve(app, std::future::pending()).await;

    let (_connection, events) = open(addr, "/events", None).await;
    assert_eq!(all_events(events).await, [triple("message", "only", "")]);
    assert_eq!(from_response.wait_for(1).await, [CloseReason::StreamEnded]);
    assert_eq!(from_layer.reasons(), []);
}

#[tokio::test]
async fn last_event_id_extractor_accepts_only_a_valid_header() {
    let app = Router::new()
        .route(
            "/required",
            get(|id: LastEventId| async move { id.into_string() }),
        )
        .route(
            "/optional",
            get(|id: Option<LastEventId>| async move {
                id.map_or_else(|| "none".to_owned(), LastEventId::into_string)
            }),
        );
    let (addr, _server) = serve(app, std::future::pending()).await;

    let request = |path: &str, ids: &[&str]| {
        let mut request = client::event_source(addr, path, None);
        for id in ids {
            request
                .headers_mut()
                .append("last-event-id", id.parse().unwrap());
        }
        request
    };
    let cases: [(&[&str], StatusCode, &str, &str); 5] = [
        (&["42"], StatusCode::OK, "42", "42"),
        (
            &["événement-7"],
            StatusCode::OK,
            "événement-7",
            "événement-7",
        ),
        (
            &[],
            StatusCode::BAD_REQUEST,
            "missing last-event-id header",
            "none",
        ),
        (
            &["a\tb"],
            StatusCode::BAD_REQUEST,
            "last-event-id contains a control character",
            "none",
        ),
        (
            &["1", "2"],
            StatusCode::BAD_REQUEST,
            "last-event-id header sent more than once",
            "none",
        ),
    ];
    for (ids, status, required, optional) in cases {
        let (got_status, body) = client::fetch(addr, request("/required", ids)).await;
        assert_eq!(
            (got_status, &body[..]),
            (status, required.as_bytes()),
            "{ids:?}"
        );
        let (got_status, body) = client::fetch(addr, request("/optional", ids)).await;
        assert_eq!(
            (got_status, &body[..]),
            (StatusCode::OK, optional.as_bytes()),
            "{ids:?}"
        );
    }
}

#[tokio::test]
async fn last_event_id_header_extractor_tells_invalid_from_absent() {
    let app = Router::new().route(
        "/events",
        get(|header: LastEventIdHeader| async move {
            let what = match &header {
                LastEventIdHeader::Absent => "absent".to_owned(),
                LastEventIdHeader::Valid(id) => format!("valid {id}"),
                LastEventIdHeader::Invalid(_) => "invalid".to_owned(),
            };
            assert_eq!(
                header.is_invalid(),
                header.for_resume() == Some(LastEventIdHeader::INVALID_MARKER)
            );
            what
        }),
    );
    let (addr, _server) = serve(app, std::future::pending()).await;

    let cases: [(&[&[u8]], &str); 5] = [
        (&[], "absent"),
        (&[b"42"], "valid 42"),
        (&[b"4\t2"], "invalid"),
        (&[b"\xff\xfe"], "invalid"),
        (&[b"1", b"2"], "invalid"),
    ];
    for (ids, expected) in cases {
        let mut request = client::event_source(addr, "/events", None);
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
async fn require_accept_through_sse_config_layer_answers_406_to_sse_routes_only() {
    let closes = CloseRecorder::new();
    let (stream, polled) = support::PollFlag::new(stream::iter([Event::new().data("x")]));
    let stream = std::sync::Arc::new(std::sync::Mutex::new(Some(stream)));
    let app = Router::new()
        .route(
            "/events",
            get(move || {
                let stream = stream.lock().unwrap().take().expect("one request");
                async move { SseResponse::new(stream) }
            }),
        )
        .route("/json", get(|| async { "{}" }))
        .layer(SseConfigLayer::new(
            SseConfig::new()
                .require_accept(true)
                .on_close(closes.hook()),
        ));
    let (addr, _server) = serve(app, std::future::pending()).await;

    let json = |path: &str| {
        let mut request = client::event_source(addr, path, None);
        request
            .headers_mut()
            .insert(header::ACCEPT, "application/json".parse().unwrap());
        request
    };
    let (status, body) = client::fetch(addr, json("/events")).await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
    assert!(body.is_empty());
    assert!(!polled.load(std::sync::atomic::Ordering::SeqCst));
    let (status, body) = client::fetch(addr, json("/json")).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"{}"[..]));
    assert_eq!(closes.reasons(), []);
}

#[tokio::test]
async fn require_accept_through_sse_config_layer_serves_an_event_source() {
    let app = Router::new()
        .route(
            "/events",
            get(|| async { SseResponse::new(stream::iter([Event::new().data("x")])) }),
        )
        .layer(SseConfigLayer::new(SseConfig::new().require_accept(true)));
    let (addr, _server) = serve(app, std::future::pending()).await;
    let (_connection, events) = open(addr, "/events", None).await;
    assert_eq!(all_events(events).await, [triple("message", "x", "")]);
}

#[tokio::test]
async fn no_content_tells_the_client_to_stop() {
    let closes = CloseRecorder::new();
    let app = Router::new()
        .route(
            "/events",
            get(|id: Option<LastEventId>| async move {
                if id.is_some() {
                    // This client has seen everything there is.
                    return Err(StatusCode::NO_CONTENT);
                }
                Ok(SseResponse::new(stream::iter([Event::new()
                    .id(1)
                    .data("all")])))
            }),
        )
        .layer(SseConfigLayer::new(
            SseConfig::new().on_close(closes.hook()),
        ));
    let (addr, _server) = serve(app, std::future::pending()).await;

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
    let app = Router::new()
        .route(
            "/events",
            get(|| async { SseResponse::new(one_then_idle("hi")) }),
        )
        .layer(SseConfigLayer::new(
            SseConfig::new().on_close(closes.hook()),
        ));
    let (addr, _server) = serve(app, std::future::pending()).await;

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
    let app = Router::new()
        .route(
            "/events",
            get(|| async { SseResponse::new(one_then_idle("hi")) }),
        )
        .route("/health", get(|| async { "ok" }))
        .layer(SseConfigLayer::new(config));

    // What an application writes: the server's shutdown future triggers the
    // SSE shutdown signal.
    let (stop, stopped) = oneshot::channel::<()>();
    let (addr, server) = serve(app, async move {
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
    within("the server to shut down", server)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        closes.reasons(),
        [CloseReason::Shutdown, CloseReason::Shutdown]
    );
}

#[tokio::test]
async fn core_service_mounts_with_route_service() {
    let service = ServiceBuilder::new()
        .layer(SseLayer::new())
        .service(service_fn(
            |request: Request<axum::body::Body>| async move {
                let id = request.extensions().get::<LastEventId>().cloned();
                let data = id.map_or_else(|| "none".to_owned(), LastEventId::into_string);
                Ok::<_, Infallible>(Response::new(stream::iter([Event::new().data(data)])))
            },
        ));
    let app = Router::new().route_service("/events", service);
    let (addr, _server) = serve(app, std::future::pending()).await;

    let (_connection, events) = open(addr, "/events", Some("9")).await;
    assert_eq!(all_events(events).await, [triple("message", "9", "")]);
}

#[tokio::test]
async fn handler_headers_and_status_compose_with_the_response() {
    let app = Router::new().route(
        "/events",
        get(|| async {
            (
                [
                    (header::CACHE_CONTROL, "no-store"),
                    (header::VARY, "cookie"),
                ],
                SseResponse::new(stream::iter([Event::new().data("x")])),
            )
        }),
    );
    let (addr, _server) = serve(app, std::future::pending()).await;

    let mut connection = Connection::open(addr).await;
    let response = connection
        .send(client::event_source(addr, "/events", None))
        .await;
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(response.headers()[header::VARY], "cookie");
    let events = pin!(DecodeStream::new(response.into_body()));
    let events: Vec<_> = within("the stream", events.collect::<Vec<_>>()).await;
    assert_eq!(events.len(), 1);
}

#[tokio::test]
async fn the_config_layer_gives_each_stream_a_span_of_its_request() {
    use tower::ServiceExt;

    let (logs, _guard) = support::logs::Logs::capture();
    let app = Router::new()
        .route(
            "/feed/{topic}",
            get(|| async { SseResponse::new(stream::iter([Event::new().id("a\u{85}")])) }),
        )
        .layer(SseConfigLayer::new(SseConfig::new()));
    let request = Request::get("/feed/news")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    support::collect_bytes(response.into_body()).await;

    let events = logs.events();
    let warning = events
        .iter()
        .find(|logged| logged.level == tracing::Level::WARN)
        .unwrap_or_else(|| panic!("no warning in {events:?}"));
    assert!(warning.text.contains("U+0085 at byte 1"), "{warning:?}");
    let span = warning.span.as_deref().unwrap_or_default();
    assert!(
        span.contains("method=GET") && span.contains("path=/feed/news"),
        "{warning:?} {:?}",
        logs.spans()
    );
    assert!(
        logs.spans()
            .iter()
            .any(|span| span.contains("close_reason=error")),
        "{:?}",
        logs.spans()
    );
}
