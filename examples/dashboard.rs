//! A live monitoring dashboard over Server-Sent Events, served by axum, fed by
//! a tower-sse [`Hub`].
//!
//! ```text
//! cargo run --example dashboard --features axum,hub            # http://127.0.0.1:3000/
//! PORT=8080 cargo run --example dashboard --features axum,hub  # another port
//! ```
//!
//! Open the page in a few tabs. Every tab's `EventSource` gets:
//!
//! - `metrics` every second: open streams, process memory, events delivered
//!   per second; `ticker` every 500 ms: a simulated price; and a plain
//!   (unnamed) message with the server's uptime;
//! - `notice` when anyone sends a notification from the page (`POST /notify`):
//!   it arrives in every open tab;
//! - on a fresh connection, a `snapshot` with the recent history; on a
//!   reconnection, exactly the events it missed, found by the hub from its
//!   `Last-Event-ID` (or the hub's resync signal when they are gone, and the
//!   page then starts afresh).
//!
//! Streams end at a maximum age of about a minute, so each tab reconnects and
//! resumes now and then: watch the connection badge. Ctrl-C sends every tab a
//! farewell with a jittered `retry:`, ends every stream, and the server exits.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::{get, post};
use futures_util::stream::{self, Stream, StreamExt};
use tokio::net::TcpListener;
use tower_sse::axum::SseResponse;
use tower_sse::hub::Hub;
use tower_sse::{
    BoxError, EncodedEvent, Event, Lagged, LastEventIdHeader, Shutdown, SseConfigLayer,
};

mod support;

use support::dashboard::{self as page, History, PAGE, Sample, TOPICS, Walk};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let port = match std::env::var("PORT") {
        Ok(port) => port
            .parse::<u16>()
            .map_err(|_| "PORT must be a port number")?,
        Err(_) => 3000,
    };
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    let addr = listener.local_addr()?;

    let shutdown = Shutdown::new();
    // The policy for every SSE route of the router.
    let config =
        page::sse_config(shutdown.clone()).on_close(|reason| println!("stream closed: {reason}"));

    let app = App::default();
    let router = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/events", get(events))
        .route("/notify", post(notify))
        .with_state(app.clone())
        .layer(SseConfigLayer::new(config));

    tokio::spawn(produce(app));
    println!("dashboard: open http://{addr}/ in a few tabs (Ctrl-C to stop)");
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            println!("shutting down: ending every stream");
            shutdown.trigger();
        })
        .await?;
    println!("bye");
    Ok(())
}

#[derive(Clone, Default)]
struct App {
    hub: Hub,
    /// Recent values for new tabs. Publishing and subscribing both hold this
    /// lock, so every event is either in a tab's snapshot or in its stream,
    /// never in both and never in neither.
    history: Arc<Mutex<History>>,
}

impl App {
    fn publish(&self, topic: &str, event: Event, record: impl FnOnce(&mut History)) {
        let mut history = self.history.lock().unwrap();
        record(&mut history);
        if let Err(error) = self.hub.publish(topic, event) {
            eprintln!("event not published: {error}");
        }
    }
}

/// `GET /events`: a snapshot for a new tab, the missed events for a tab that
/// reconnects, then live events.
async fn events(
    State(app): State<App>,
    last_event_id: LastEventIdHeader,
) -> SseResponse<impl Stream<Item = Result<EncodedEvent, Lagged>> + Send> {
    // An unusable id is passed on too: the hub answers it with its resync
    // signal, and the page reloads its state.
    let last_event_id = last_event_id.for_resume();
    let (snapshot, subscription) = {
        let history = app.history.lock().unwrap();
        let subscription = app.hub.subscribe(TOPICS, last_event_id);
        let snapshot = last_event_id.is_none().then(|| history.snapshot());
        (snapshot, subscription)
    };
    SseResponse::new(stream::iter(snapshot.map(Ok)).chain(subscription))
}

/// `POST /notify`: the body, as plain text, goes to every open tab.
async fn notify(State(app): State<App>, text: String) -> StatusCode {
    let Some((notice, event)) = page::notice(&text) else {
        return StatusCode::UNPROCESSABLE_ENTITY;
    };
    app.publish("notices", event, |history| history.notice(notice));
    StatusCode::ACCEPTED
}

/// Samples the metrics and moves the ticker, for ever.
async fn produce(app: App) {
    let started = Instant::now();
    let mut price = Walk::new(100.0);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut delivered_before = 0;
    for n in 0_u64.. {
        tick.tick().await;
        let (quote, event) = page::ticker(price.step());
        app.publish("ticker", event, |history| history.ticker(quote));
        if n % 2 == 1 {
            continue;
        }

        let hub = app.hub.metrics();
        let (sample, event) = page::metrics(&Sample {
            streams: hub.subscribers,
            events_per_s: hub.delivered - delivered_before,
            resumed: hub.replay_hits,
            resynced: hub.replay_misses,
        });
        delivered_before = hub.delivered;
        app.publish("metrics", event, |history| history.metrics(sample));

        // No event type: the page's `onmessage` gets it.
        let event = Event::new().data(page::uptime(started));
        app.publish("clock", event, |_| {});
    }
}
