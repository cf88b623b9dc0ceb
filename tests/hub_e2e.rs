//! The hub end to end over real HTTP/1.1 on 127.0.0.1: a hyper server running
//! `SseLayer` over a service that subscribes each request to a `Hub`, a hyper
//! client, and the stream read back through `tower_sse::decode`.
//!
//! These tests wait on the network, so they run on the real clock with
//! generous timeouts; every one of them ends by itself.

#![cfg(feature = "hub")]

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::task::JoinHandle;
use tower::{ServiceBuilder, service_fn};
use tower_sse::decode::{DecodeStream, MessageEvent};
use tower_sse::hub::{Hub, HubConfig, RESYNC_EVENT};
use tower_sse::{CloseReason, Event, LastEventIdHeader, SseConfig, SseLayer};

use support::client::open_events as open;
use support::{CloseRecorder, server, within};

/// Serves every connection accepted on a fresh `127.0.0.1` port: `GET
/// /events?topics=a,b` subscribes to the listed topics, resuming after the
/// request's `Last-Event-ID`. Abort the handle to stop accepting.
async fn serve(hub: Hub, config: SseConfig) -> (SocketAddr, JoinHandle<()>) {
    let service = ServiceBuilder::new()
        .layer(SseLayer::with_config(config))
        .service(service_fn(move |request: Request<Incoming>| {
            let topics: Vec<String> = request
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .filter_map(|pair| pair.strip_prefix("topics="))
                .flat_map(|list| list.split(','))
                .map(str::to_owned)
                .collect();
            let last = request.extensions().get::<LastEventIdHeader>();
            let events = hub.subscribe(topics, last.and_then(LastEventIdHeader::for_resume));
            async move { Ok::<_, Infallible>(Response::new(events)) }
        }));
    let (listener, addr) = server::bind().await;
    let server = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                // A client that goes away mid-stream ends its connection with
                // an error: that is what these tests do.
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, server)
}

/// The next event; the stream must still be open.
async fn next_event(events: &mut DecodeStream<Incoming>) -> MessageEvent {
    support::next_event(events)
        .await
        .expect("the stream is open")
}

/// Waits until the hub has `subscribers` open subscriptions.
async fn wait_for_subscribers(hub: &Hub, subscribers: usize) {
    within("the hub's subscriber count", async {
        while hub.metrics().subscribers != subscribers {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_client_that_reconnects_with_last_event_id_gets_exactly_the_missed_events() {
    let hub = Hub::new();
    let (addr, server) = serve(hub.clone(), SseConfig::new()).await;
    let path = "/events?topics=news,sports";
    let publish = |n: u32| {
        let topic = ["news", "sports", "weather"][n as usize % 3];
        let id = hub
            .publish(topic, Event::new().event(topic).data(n.to_string()))
            .unwrap();
        (topic, id.to_string())
    };

    let (connection, mut events) = open(addr, path, None).await;
    let mut published = Vec::new();
    for n in 1..=6 {
        published.push((n, publish(n)));
    }
    let subscribed: Vec<(u32, String)> = published
        .iter()
        .filter(|(_, (topic, _))| *topic != "weather")
        .map(|(n, (_, id))| (*n, id.clone()))
        .collect();
    // news 1, sports 2, news 4, sports 5; the client reads three, then drops.
    for (n, id) in &subscribed[..3] {
        let event = next_event(&mut events).await;
        assert_eq!(
            (event.data, event.last_event_id),
            (n.to_string(), id.clone())
        );
    }
    let last_event_id = events.decoder().last_event_id().to_owned();
    assert_eq!(last_event_id, subscribed[2].1);
    drop(events);
    drop(connection);
    wait_for_subscribers(&hub, 0).await;

    // Published while the client is away.
    for n in 7..=9 {
        published.push((n, publish(n)));
    }

    let (_connection, mut events) = open(addr, path, Some(&last_event_id)).await;
    let live = publish(10);
    published.push((10, live));
    let missed: Vec<(String, String)> = published
        .iter()
        .filter(|(n, (topic, _))| *n > 4 && *topic != "weather")
        .map(|(n, (_, id))| (n.to_string(), id.clone()))
        .collect();
    assert_eq!(missed.len(), 4, "5, 7, 8 and 10");
    for (data, id) in missed {
        let event = next_event(&mut events).await;
        assert_eq!((event.data, event.last_event_id), (data, id));
    }
    assert_eq!(hub.metrics().replay_hits, 1);
    server.abort();
}

#[tokio::test]
async fn an_id_from_another_hub_gets_the_resync_event_then_live_events() {
    let hub = Hub::new();
    hub.publish("news", Event::new().data("before")).unwrap();
    let (addr, server) = serve(hub.clone(), SseConfig::new()).await;
    let restarted_from = Hub::new()
        .publish("news", Event::new().data("x"))
        .unwrap()
        .to_string();

    let (_connection, mut events) = open(addr, "/events?topics=news", Some(&restarted_from)).await;
    let resync = next_event(&mut events).await;
    assert_eq!(resync.event_type, RESYNC_EVENT);
    assert_eq!(resync.data, "unknown-id");
    assert_eq!(resync.last_event_id, hub.latest_id().to_string());

    let id = hub
        .publish("news", Event::new().data("live"))
        .unwrap()
        .to_string();
    let live = next_event(&mut events).await;
    assert_eq!((live.data, live.last_event_id), ("live".to_owned(), id));
    server.abort();
}

#[tokio::test]
async fn an_unusable_last_event_id_gets_the_resync_event_not_a_silent_restart() {
    let hub = Hub::new();
    let id = hub
        .publish("news", Event::new().data("before"))
        .unwrap()
        .to_string();
    let (addr, server) = serve(hub.clone(), SseConfig::new()).await;
    let not_utf8 = HeaderValue::from_bytes(b"\xff\xfe-1").unwrap();
    let id = HeaderValue::from_str(&id).unwrap();
    for values in [vec![not_utf8], vec![id.clone(), id]] {
        let mut request = support::client::event_source(addr, "/events?topics=news", None);
        for value in values {
            request.headers_mut().append("last-event-id", value);
        }
        let mut connection = support::client::Connection::open(addr).await;
        let response = connection.send(request).await;
        assert_eq!(response.status(), StatusCode::OK);
        let mut events = DecodeStream::new(response.into_body());
        let resync = next_event(&mut events).await;
        assert_eq!(
            (resync.event_type.as_str(), resync.data.as_str()),
            (RESYNC_EVENT, "unknown-id")
        );
        assert_eq!(resync.last_event_id, hub.latest_id().to_string());
    }
    assert_eq!(hub.metrics().replay_misses, 2);
    server.abort();
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_and_resumes_without_loss() {
    let hub = Hub::with_config(
        HubConfig::new()
            .max_lag(16)
            .replay_max_events(1 << 20)
            .replay_max_bytes(1 << 30),
    );
    let closes = CloseRecorder::new();
    let (addr, server) = serve(hub.clone(), SseConfig::new().on_close(closes.hook())).await;
    let path = "/events?topics=bulk";
    let payload = "x".repeat(4096);

    // The client does not read: socket buffers fill up, the server stops
    // writing, and its subscriber falls behind the topic's log.
    let (connection, mut events) = open(addr, path, None).await;
    let mut published = 0_u32;
    within("the subscriber falling behind", async {
        while u64::from(published) < hub.metrics().delivered + 64 {
            for _ in 0..8 {
                published += 1;
                hub.publish("bulk", Event::new().data(format!("{published} {payload}")))
                    .unwrap();
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    let total = published;

    // It reads what was on the way; its subscriber finds itself behind, and
    // the stream ends with a retry hint.
    let mut received = Vec::new();
    while let Some(event) = within("the end of the stream", events.next()).await {
        received.push(event.expect("the stream decodes"));
    }
    assert_eq!(
        events.decoder().reconnection_time(),
        Some(HubConfig::DEFAULT_LAG_RETRY)
    );
    assert_eq!(closes.reasons(), [CloseReason::Lagged]);
    let last_event_id = events.decoder().last_event_id().to_owned();
    drop(events);
    drop(connection);

    // The reconnect replays everything else.
    let (_connection, mut events) = open(addr, path, Some(&last_event_id)).await;
    while received.len() < total as usize {
        received.push(next_event(&mut events).await);
    }
    let numbers: Vec<u32> = received
        .iter()
        .map(|event| event.data.split_once(' ').unwrap().0.parse().unwrap())
        .collect();
    assert_eq!(numbers, (1..=total).collect::<Vec<_>>());
    server.abort();
}

#[tokio::test]
async fn subscribe_user_reads_the_users_feed_alone_and_resumes_it() {
    let hub = Hub::new();
    hub.publish("news", Event::new().data("not for the feed"))
        .unwrap();
    let first = hub.send_to("alice", Event::new().data("one")).unwrap();
    hub.send_to("bob", Event::new().data("not alice's"))
        .unwrap();
    hub.send_to("alice", Event::new().data("two")).unwrap();

    let first = first.to_string();
    let mut feed = hub.subscribe_user("alice", Some(&first));
    let item = within("the replayed event", feed.next()).await.unwrap();
    let bytes = item.unwrap().into_bytes();
    assert!(
        std::str::from_utf8(&bytes)
            .unwrap()
            .ends_with("data: two\n\n"),
        "{bytes:?}"
    );
}
