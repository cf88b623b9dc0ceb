//! A framework SSE response that no `SseConfigLayer` wraps runs on the
//! default policy, without the app's shutdown signal: that is warned about,
//! once per process (so this file holds one test).

#![cfg(feature = "axum")]

mod support;

use axum::Router;
use axum::routing::get;
use futures_util::stream;
use http::Request;
use tower::ServiceExt;
use tower_sse::axum::SseResponse;
use tower_sse::{Event, Shutdown, SseConfig, SseConfigLayer};

use support::collect_bytes;
use support::logs::{Logged, Logs};

async fn one_event() -> SseResponse<impl tower_sse::Stream<Item = Event>> {
    SseResponse::new(stream::iter([Event::new().data("x")]))
}

async fn one_event_on_purpose() -> SseResponse<impl tower_sse::Stream<Item = Event>> {
    SseResponse::new(stream::iter([Event::new().data("x")])).config(SseConfig::new())
}

async fn get_body(app: &Router, path: &str) {
    let request = Request::get(path).body(axum::body::Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(collect_bytes(response.into_body()).await, "data: x\n\n");
}

fn warnings(logs: &Logs) -> Vec<Logged> {
    let events = logs.events();
    events
        .into_iter()
        .filter(|logged| logged.level == tracing::Level::WARN)
        .collect()
}

#[tokio::test]
async fn a_route_added_after_the_config_layer_is_warned_about_once() {
    let (logs, _guard) = Logs::capture();
    let shutdown = Shutdown::new();
    let app = Router::new()
        .route("/wrapped", get(one_event))
        // Wraps only the routes above.
        .layer(SseConfigLayer::new(SseConfig::new().shutdown(shutdown)))
        .route("/unwrapped", get(one_event))
        .route("/on-purpose", get(one_event_on_purpose));

    get_body(&app, "/wrapped").await;
    get_body(&app, "/on-purpose").await;
    assert!(warnings(&logs).is_empty(), "{:?}", warnings(&logs));

    get_body(&app, "/unwrapped").await;
    get_body(&app, "/unwrapped").await;
    let warnings = warnings(&logs);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].text.contains("no SseConfigLayer")
            && warnings[0].text.contains("after the last .route(..)"),
        "{warnings:?}"
    );
}
