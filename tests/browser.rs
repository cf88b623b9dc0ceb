//! A real browser's `EventSource` against an axum server on 127.0.0.1:
//! headless Chromium, driven through chromedriver.
//!
//! Needs Debian's `chromium` and `chromium-driver` packages. Without them the
//! test fails when `CI` is set, and is skipped (loudly) otherwise.
//!
//! With the `client` feature, tower-sse's own `EventSource` plays the same
//! scenario against the same server, after Chromium, and must dispatch what
//! Chromium dispatched and send the same `Last-Event-ID`s; a second test
//! compares it with Chromium's recorded results, so that it runs without a
//! browser too.

#![cfg(feature = "axum")]

mod support;

#[path = "browser/webdriver.rs"]
mod webdriver;

use std::io::Write;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Html;
use axum::routing::get;
use futures_util::FutureExt;
use futures_util::stream::{self, Stream};
use serde_json::Value;
use tokio::net::TcpListener;
use tower_sse::axum::SseResponse;
use tower_sse::{Event, LastEventId};

use webdriver::{CHROMIUM_FLAGS, Driver, TempDir, find_program};

const PAGE: &str = include_str!("browser/page.html");

type EventStream = Pin<Box<dyn Stream<Item = Event> + Send>>;

/// The `Last-Event-ID` header of every request to `/events`, as sent.
#[derive(Clone, Default)]
struct Requests(Arc<Mutex<Vec<Option<String>>>>);

/// The first connection gets every kind of data, then the stream ends; the
/// reconnection resumes after the `Last-Event-ID` it sends; after that, `204`
/// tells the browser to stop.
async fn events(
    State(requests): State<Requests>,
    headers: HeaderMap,
    last_event_id: Option<LastEventId>,
) -> Result<SseResponse<EventStream>, StatusCode> {
    let sent = headers
        .get("last-event-id")
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    requests.0.lock().unwrap().push(sent);

    let events = match last_event_id.as_ref().map(LastEventId::as_str) {
        None => vec![
            Event::new()
                .retry(Duration::from_millis(100))
                .id(1)
                .data("plain"),
            Event::new().data("line one\nline two\r\nline three\rline four"),
            Event::new()
                .event("greeting")
                .data("héllo wörld ✓ 🌍 日本語"),
            Event::new().data("  two leading spaces"),
            Event::new().data(""),
            Event::new().event("update").data("\n"),
            Event::new().data("trailing newline\n"),
            Event::new().data("nul\0inside"),
            Event::new()
                .id(2)
                .event("greeting")
                .data("last before the stream ends"),
        ],
        Some("2") => vec![
            Event::new().id(3).data("resumed after 2"),
            Event::new().id(4).event("bye").data("done"),
        ],
        Some(_) => return Err(StatusCode::NO_CONTENT),
    };
    Ok(SseResponse::new(Box::pin(stream::iter(events))))
}

async fn serve(requests: Requests) -> SocketAddr {
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/events", get(events))
        .with_state(requests);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Chromium and chromedriver, or `None` when the test is to be skipped.
fn browser_programs() -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let chromium = find_program("chromium").or_else(|| find_program("chromium-browser"));
    let chromedriver = find_program("chromedriver");
    match (chromium, chromedriver) {
        (Some(chromium), Some(chromedriver)) => Some((chromium, chromedriver)),
        _ if std::env::var_os("CI").is_some() => panic!(
            "the browser test needs Chromium and chromedriver: \
             apt-get install -y chromium chromium-driver"
        ),
        _ => {
            // Straight to stderr: the test harness would swallow `eprintln!`.
            let _ = writeln!(
                std::io::stderr(),
                "\n\
                 ********************************************************************\n\
                 * SKIPPED: the browser test needs `chromium` and `chromedriver`.   *\n\
                 * On Debian: apt-get install -y chromium chromium-driver           *\n\
                 ********************************************************************\n"
            );
            None
        }
    }
}

fn event(event_type: &str, data: &str, last_event_id: &str) -> Value {
    serde_json::json!({ "type": event_type, "data": data, "lastEventId": last_event_id })
}

/// What Chromium dispatches for the scenario of [`events`], as recorded by
/// the page.
fn chromium_events() -> Value {
    Value::Array(vec![
        event("message", "plain", "1"),
        event("message", "line one\nline two\nline three\nline four", "1"),
        event("greeting", "héllo wörld ✓ 🌍 日本語", "1"),
        event("message", "  two leading spaces", "1"),
        event("message", "", "1"),
        event("update", "\n", "1"),
        event("message", "trailing newline\n", "1"),
        event("message", "nul\0inside", "1"),
        event("greeting", "last before the stream ends", "2"),
        event("message", "resumed after 2", "3"),
        event("bye", "done", "4"),
    ])
}

/// The `Last-Event-ID` headers Chromium sends in the scenario.
fn chromium_last_event_ids() -> [Option<String>; 3] {
    [None, Some("2".to_owned()), Some("4".to_owned())]
}

/// What tower-sse's `EventSource` does in the scenario: the events it
/// dispatches (as the page records them), how many connections it opened,
/// and that it gives up on the final `204`.
#[cfg(feature = "client")]
async fn rust_client_run(addr: SocketAddr) -> (Value, usize) {
    use futures_util::StreamExt;
    use tower_sse::client::{EventSource, SourceEvent};

    let mut source = EventSource::http(format!("http://{addr}/events"));
    let mut events = Vec::new();
    let mut opens = 0;
    loop {
        match support::within("the client's next item", source.next()).await {
            Some(Ok(SourceEvent::Open)) => opens += 1,
            Some(Ok(SourceEvent::Message(message))) => events.push(event(
                &message.event_type,
                &message.data,
                &message.last_event_id,
            )),
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                assert!(
                    error.is_no_content(),
                    "gave up for another reason: {error:?}"
                );
                break;
            }
            None => panic!("the stream ended without the 204 error"),
        }
    }
    assert!(source.next().await.is_none());
    (Value::Array(events), opens)
}

#[cfg(feature = "client")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_event_source_dispatches_what_chromium_dispatches() {
    let requests = Requests::default();
    let addr = serve(requests.clone()).await;

    let (events, opens) = rust_client_run(addr).await;
    assert_eq!(events, chromium_events());
    assert_eq!(opens, 2);
    assert_eq!(*requests.0.lock().unwrap(), chromium_last_event_ids());
}

/// Opens `url` in headless Chromium and returns the page's `sseState` once
/// its `EventSource` has closed (within 15 s, else panics with `context()`).
async fn run_chromium(
    chromium: &std::path::Path,
    chromedriver: &std::path::Path,
    url: &str,
    context: impl Fn() -> String,
) -> Value {
    let profile = TempDir::new("tower-sse-chromium");
    let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|&flag| flag.to_owned()).collect();
    args.push(format!("--user-data-dir={}", profile.path().display()));
    // Belt and braces: no host name resolves, so nothing but 127.0.0.1 is
    // reachable.
    args.push("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1".to_owned());

    let driver = Driver::start(chromedriver).await;
    let session = driver.session(chromium, &args).await;
    let outcome = AssertUnwindSafe(async {
        session.goto(url).await;
        let poll = async {
            loop {
                let state = session.execute("return window.sseState;").await;
                if state["closed"] == true {
                    return state;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(15), poll)
            .await
            .unwrap_or_else(|_| panic!("the EventSource did not close within 15 s; {}", context()))
    })
    .catch_unwind()
    .await;
    session.close().await;
    drop(driver);
    match outcome {
        Ok(state) => state,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Ids at the edges of what `Event::id` accepts: inner spaces, every
/// printable ASCII character, non-ASCII (Latin-1, no-break spaces at the
/// ends, line and paragraph separators, a BOM, astral), the longest.
fn edge_ids() -> Vec<String> {
    vec![
        "1 2".to_owned(),
        (b'!'..=b'~').map(char::from).collect(),
        "é-7 ÿ".to_owned(),
        "\u{a0}nbsp\u{a0}".to_owned(),
        "\u{2028}\u{2029}".to_owned(),
        "\u{feff}bom".to_owned(),
        "🌍 日本語 \u{fffd}".to_owned(),
        "x".repeat(tower_sse::LastEventId::MAX_LEN),
    ]
}

/// The `Last-Event-ID` each request to `/ids` carried, as the server read it.
#[derive(Clone, Default)]
struct IdRequests(Arc<Mutex<Vec<tower_sse::LastEventIdHeader>>>);

/// Request k gets one event whose id is `edge_ids()[k]`, then the stream
/// ends and the client reconnects with that id; after the last id, `204`.
async fn id_events(
    State(requests): State<IdRequests>,
    header: tower_sse::LastEventIdHeader,
) -> Result<SseResponse<EventStream>, StatusCode> {
    let k = {
        let mut requests = requests.0.lock().unwrap();
        requests.push(header);
        requests.len() - 1
    };
    let id = edge_ids().get(k).cloned().ok_or(StatusCode::NO_CONTENT)?;
    let event = Event::new()
        .retry(Duration::from_millis(10))
        .id(id)
        .data("x");
    assert!(event.error().is_none(), "an edge id is valid");
    Ok(SseResponse::new(Box::pin(stream::iter([event]))))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_id_the_server_sends_comes_back_from_chromium_as_a_valid_last_event_id() {
    let Some((chromium, chromedriver)) = browser_programs() else {
        return;
    };
    let requests = IdRequests::default();
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/ids", get(id_events))
        .with_state(requests.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let url = format!("http://{addr}/?stream=/ids");
    let state = run_chromium(&chromium, &chromedriver, &url, || {
        format!("server saw {:?}", requests.0.lock().unwrap())
    })
    .await;

    let ids = edge_ids();
    let mut expected = vec![tower_sse::LastEventIdHeader::Absent];
    expected.extend(
        ids.iter().map(|id| {
            tower_sse::LastEventIdHeader::Valid(tower_sse::LastEventId::new(id).unwrap())
        }),
    );
    assert_eq!(*requests.0.lock().unwrap(), expected);
    assert_eq!(state["opens"], ids.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_source_receives_exact_data_and_resumes_after_reconnecting() {
    let Some((chromium, chromedriver)) = browser_programs() else {
        return;
    };
    let requests = Requests::default();
    let addr = serve(requests.clone()).await;

    let state = run_chromium(&chromium, &chromedriver, &format!("http://{addr}/"), || {
        format!("server saw {:?}", requests.0.lock().unwrap())
    })
    .await;

    assert_eq!(state["events"], chromium_events());
    // Two streams opened; the third request got 204 and closed the source.
    assert_eq!(state["opens"], 2);
    let chromium_requests = requests.0.lock().unwrap().clone();
    assert_eq!(chromium_requests, chromium_last_event_ids());

    // tower-sse's client, side by side with Chromium on the same server.
    #[cfg(feature = "client")]
    {
        requests.0.lock().unwrap().clear();
        let (events, opens) = rust_client_run(addr).await;
        assert_eq!(events, state["events"]);
        assert_eq!(Value::from(opens), state["opens"]);
        assert_eq!(*requests.0.lock().unwrap(), chromium_requests);
    }
}
