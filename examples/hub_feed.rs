//! A live feed from a broadcast [`Hub`] with plain hyper and tower: topics,
//! resumption with `Last-Event-ID`, per-client messages.
//!
//! ```text
//! cargo run --example hub_feed --features hub            # http://127.0.0.1:3000/
//! PORT=8080 cargo run --example hub_feed --features hub  # another port
//! ```
//!
//! - `GET /events?topics=clock,chat&client=alice` streams the listed topics
//!   (and, with `client`, messages sent to that client). A reconnecting
//!   client sends `Last-Event-ID` and gets exactly what it missed, or a
//!   `tower-sse-resync` event when that has left the replay window.
//! - `POST /publish/chat` publishes the request body as an event of type
//!   `chat` and answers with its id. Clients may publish only to the topics
//!   in `PUBLISHABLE`: a hub keeps every topic published to, so topic names
//!   from clients would let them grow the server's memory without bound.
//! - `POST /send/{client}` sends the body to every connection of that client
//!   and answers with how many it reached.
//! - `GET /metrics` shows the hub's metrics; `GET /` is a page that uses all
//!   of this.
//!
//! A task publishes the time to the `clock` topic every second. Ctrl-C ends
//! every stream (with a jittered `retry:`) and exits once connections close.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_sse::hub::{Hub, HubConfig, Subscription};
use tower_sse::{
    BoxError, Event, Farewell, LastEventIdHeader, Shutdown, SseBody, SseConfig, SseLayer,
};

/// Bounds on what a request may ask for: the names come from the client.
const MAX_TOPICS: usize = 8;
const MAX_NAME_LEN: usize = 64;
const MAX_BODY: usize = 16 * 1024;
/// The topics clients may publish to (`clock` is the server's own).
const PUBLISHABLE: [&str; 1] = ["chat"];

type Body = Either<SseBody<Subscription>, Full<Bytes>>;

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

    let hub = Hub::with_config(
        HubConfig::new()
            .replay_max_events(1000)
            .replay_max_age(Duration::from_secs(600)),
    );
    let clock = tokio::spawn(publish_the_time(hub.clone()));

    let shutdown = Shutdown::new();
    let config = SseConfig::new()
        .shutdown(shutdown.clone())
        .farewell(Farewell::new().retry_between(Duration::from_secs(1), Duration::from_secs(5)));
    let events = ServiceBuilder::new()
        .layer(SseLayer::with_config(config))
        .service_fn({
            let hub = hub.clone();
            move |request| subscribe(hub.clone(), request)
        });
    let app = service_fn(move |request: Request<Incoming>| {
        let events = events.clone();
        let hub = hub.clone();
        async move {
            let path = request.uri().path().to_owned();
            let response: Response<Body> = match (request.method(), path.as_str()) {
                (&Method::GET, "/events") => events.oneshot(request).await?.map(Either::Left),
                (&Method::POST, path) if path.starts_with("/publish/") => {
                    let topic = &path["/publish/".len()..];
                    if !PUBLISHABLE.contains(&topic) {
                        let allowed = PUBLISHABLE.join(", ");
                        return Ok(text(
                            StatusCode::NOT_FOUND,
                            format!("clients may publish to: {allowed}\n"),
                        ));
                    }
                    match read_text(request).await {
                        Ok(data) => {
                            match hub.publish(topic, Event::new().event(topic).data(data)) {
                                Ok(id) => text(StatusCode::OK, format!("{id}\n")),
                                Err(error) => text(StatusCode::BAD_REQUEST, format!("{error}\n")),
                            }
                        }
                        Err(response) => response,
                    }
                }
                (&Method::POST, path) if path.starts_with("/send/") => {
                    let client = &path["/send/".len()..];
                    match read_text(request).await {
                        Ok(data) => {
                            match hub.send_to(client, Event::new().event("direct").data(data)) {
                                Ok(id) => text(StatusCode::OK, format!("{id}\n")),
                                Err(error) => text(StatusCode::BAD_REQUEST, format!("{error}\n")),
                            }
                        }
                        Err(response) => response,
                    }
                }
                (&Method::GET, "/metrics") => {
                    text(StatusCode::OK, format!("{:#?}\n", hub.metrics()))
                }
                (&Method::GET, "/") => page(),
                _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
            };
            Ok::<_, Infallible>(response)
        }
    });

    println!("hub feed on http://{addr}/ (open it in two browser tabs)");
    println!("  curl -N 'http://{addr}/events?topics=clock,chat'");
    println!("  curl -d 'hello' http://{addr}/publish/chat");
    println!("  curl -N -H 'Last-Event-ID: <an id>' 'http://{addr}/events?topics=chat'");
    println!("Ctrl-C to stop");

    let mut connections = JoinSet::new();
    let mut ctrl_c = pin!(tokio::signal::ctrl_c());
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    eprintln!("accept failed: {error}");
                    continue;
                }
            },
            _ = ctrl_c.as_mut() => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            let mut connection = pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = shutdown.triggered() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            match result {
                Err(error) if !error.is_incomplete_message() => {
                    eprintln!("connection from {peer}: {error}");
                }
                _ => {}
            }
        });
        while connections.try_join_next().is_some() {}
    }

    drop(listener);
    clock.abort();
    println!(
        "shutting down: ending {} open connection(s)",
        connections.len()
    );
    shutdown.trigger();
    tokio::select! {
        () = async { while connections.join_next().await.is_some() {} } => println!("bye"),
        _ = tokio::signal::ctrl_c() => println!("quitting with connections open"),
    }
    Ok(())
}

/// The handler behind `SseLayer`: subscribes the connection to the topics in
/// the query, under the client id if one is given, resuming after the
/// client's `Last-Event-ID`.
async fn subscribe(
    hub: Hub,
    request: Request<Incoming>,
) -> Result<Response<Subscription>, Infallible> {
    let query = request.uri().query().unwrap_or("");
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
    };
    let topics: Vec<&str> = param("topics")
        .unwrap_or("")
        .split(',')
        .filter(|topic| !topic.is_empty() && topic.len() <= MAX_NAME_LEN)
        .take(MAX_TOPICS)
        .collect();
    let client =
        param("client").filter(|client| !client.is_empty() && client.len() <= MAX_NAME_LEN);
    let last = request
        .extensions()
        .get::<LastEventIdHeader>()
        .and_then(LastEventIdHeader::for_resume);

    let subscription = match client {
        Some(client) => hub.subscribe_client(client, &topics, last),
        None => hub.subscribe(&topics, last),
    };
    println!(
        "subscribed: topics {topics:?}, client {client:?}, last event id {last:?}, {} event(s) to catch up",
        subscription.queued()
    );
    Ok(Response::new(subscription))
}

async fn publish_the_time(hub: Hub) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    loop {
        ticks.tick().await;
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let (hours, minutes, seconds) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
        let time = format!("{hours:02}:{minutes:02}:{seconds:02} UTC");
        if let Err(error) = hub.publish("clock", Event::new().event("clock").data(time)) {
            eprintln!("clock not published: {error}");
        }
    }
}

/// The request body as UTF-8 text, at most [`MAX_BODY`] bytes; otherwise the
/// response to send instead.
async fn read_text(request: Request<Incoming>) -> Result<String, Response<Body>> {
    let body = Limited::new(request.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| text(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n".into()))?
        .to_bytes();
    String::from_utf8(Vec::from(body))
        .map_err(|_| text(StatusCode::BAD_REQUEST, "body is not UTF-8\n".into()))
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Either::Right(Full::new(Bytes::from(body))))
        .expect("a valid response")
}

fn page() -> Response<Body> {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .body(Either::Right(Full::new(Bytes::from_static(
            PAGE.as_bytes(),
        ))))
        .expect("a valid response")
}

const PAGE: &str = r##"<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>tower-sse hub feed</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 40em; }
  #log { font: 12px monospace; white-space: pre; height: 20em; overflow: auto;
         background: #f4f4f4; padding: .5em; }
</style>
<h1>tower-sse hub feed</h1>
<p>You are <b id="me"></b> &middot; Connection: <b id="status">connecting</b>
   &middot; Clock: <b id="clock">&hellip;</b></p>
<form id="chat"><input id="text" placeholder="say something to every tab" size="40">
  <button>Publish to chat</button></form>
<h2>Events</h2>
<div id="log"></div>
<script>
  const $ = (id) => document.getElementById(id);
  const log = (line) => { $("log").textContent = line + "\n" + $("log").textContent.slice(0, 8000); };
  const me = "tab-" + Math.random().toString(36).slice(2, 8);
  $("me").textContent = me + " (curl -d hi http://" + location.host + "/send/" + me + ")";

  const source = new EventSource("/events?topics=clock,chat&client=" + me);
  source.onopen = () => { $("status").textContent = "open"; };
  source.onerror = () => { $("status").textContent = "reconnecting"; };
  source.addEventListener("clock", (event) => { $("clock").textContent = event.data; });
  source.addEventListener("chat", (event) => log("#" + event.lastEventId + " chat: " + event.data));
  source.addEventListener("direct", (event) => log("to me: " + event.data));
  // Events were missed (unknown id, left the replay window, or dropped for
  // lag): a real page reloads its state here, e.g. fetches a snapshot.
  source.addEventListener("tower-sse-resync", (event) => log("resync (" + event.data + "): reload state"));

  $("chat").addEventListener("submit", async (event) => {
    event.preventDefault();
    await fetch("/publish/chat", { method: "POST", body: $("text").value });
    $("text").value = "";
  });
</script>
</html>
"##;
