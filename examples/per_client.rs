//! One event stream per client, and a way to send a client an event.
//!
//! ```text
//! cargo run --example per_client --features axum,hub
//!
//! # one terminal: client "alice" connects
//! curl -N http://127.0.0.1:3040/sse/connect/alice
//!
//! # another: send alice a `depositCreated` event
//! curl -X POST http://127.0.0.1:3040/sse/send/alice \
//!      -H 'content-type: application/json' \
//!      -d '{"event": "depositCreated", "data": {"amount": "12.50", "currency": "EUR"}}'
//! ```
//!
//! alice's stream then holds one block, type and data together:
//!
//! ```text
//! event: depositCreated
//! data: {"amount":"12.50","currency":"EUR"}
//! ```
//!
//! A client may be connected several times (tabs, devices): each connection
//! gets the event. Events sent while a client is away wait in its feed (for
//! five minutes by default): a client that reconnects with `Last-Event-ID`
//! gets them. A feed with no connection is forgotten once its events expire.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tokio::net::TcpListener;
use tower_sse::axum::SseResponse;
use tower_sse::hub::{Hub, Subscription};
use tower_sse::{BoxError, Event, KeepAlive, LastEventId, Shutdown, SseConfig, SseConfigLayer};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let port = match std::env::var("PORT") {
        Ok(port) => port
            .parse::<u16>()
            .map_err(|_| "PORT must be a port number")?,
        Err(_) => 3040,
    };
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    let addr = listener.local_addr()?;

    let shutdown = Shutdown::new();
    let config = SseConfig::new()
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .shutdown(shutdown.clone())
        .on_close(|reason| println!("a stream closed: {reason}"));
    let app = Router::new()
        .route("/sse/connect/{client_id}", get(connect))
        .route("/sse/send/{client_id}", post(send))
        .with_state(Hub::new())
        .layer(SseConfigLayer::new(config));

    println!("per_client: listening on http://{addr}");
    println!("  curl -N http://{addr}/sse/connect/alice");
    println!(
        "  curl -X POST http://{addr}/sse/send/alice -H 'content-type: application/json' \
         -d '{{\"event\": \"depositCreated\", \"data\": {{\"amount\": \"12.50\"}}}}'"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            shutdown.trigger();
        })
        .await?;
    Ok(())
}

/// `GET /sse/connect/{client_id}`: this client's stream, resumed after its
/// `Last-Event-ID`.
async fn connect(
    State(hub): State<Hub>,
    Path(client_id): Path<String>,
    last_event_id: Option<LastEventId>,
) -> SseResponse<Subscription> {
    println!("{client_id} connected");
    // The client's feed alone: no topics.
    let last = last_event_id.as_ref().map(LastEventId::as_str);
    SseResponse::new(hub.subscribe_client(&client_id, [] as [&str; 0], last))
}

#[derive(Deserialize)]
struct Message {
    event: String,
    data: serde_json::Value,
}

/// `POST /sse/send/{client_id}`: one event, of the given type, to every
/// connection of the client, now or when it comes back.
async fn send(
    State(hub): State<Hub>,
    Path(client_id): Path<String>,
    Json(message): Json<Message>,
) -> (StatusCode, String) {
    let event = Event::new()
        .event(&message.event)
        .data(message.data.to_string());
    match hub.send_to(&client_id, event) {
        Ok(id) => (StatusCode::ACCEPTED, format!("sent as {id}\n")),
        // An event type with a line break, say.
        Err(error) => {
            let why = error
                .event_error()
                .map_or(error.to_string(), ToString::to_string);
            (StatusCode::UNPROCESSABLE_ENTITY, format!("{why}\n"))
        }
    }
}
