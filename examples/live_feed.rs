//! A live feed over Server-Sent Events with plain hyper and tower: no framework.
//!
//! ```text
//! cargo run --example live_feed            # http://127.0.0.1:3000/
//! PORT=8080 cargo run --example live_feed  # another port
//! ```
//!
//! - `GET /events` streams a `price` event every 500 ms and a `clock` event
//!   every second. Ids count up, so a client that reconnects with
//!   `Last-Event-ID: n` carries on at `n + 1`; a browser's `EventSource` does
//!   that by itself.
//! - `GET /` is a page that shows the feed.
//!
//! One listener serves HTTP/1.1 and HTTP/2 (h2c with prior knowledge:
//! `curl --http2-prior-knowledge -N http://127.0.0.1:3000/events`), with
//! hyper-util's auto builder.
//!
//! Ctrl-C stops accepting connections and triggers the [`Shutdown`] signal:
//! every open stream gets a farewell event with a jittered `retry:` and ends,
//! hyper-util's `GracefulShutdown` closes each connection once its responses
//! are done, and the server exits when the last connection has closed. Every connection is guarded
//! ([`ConnectionGuard`]): one whose client stops reading is closed after 30 s
//! without progress, or 5 s after Ctrl-C, so it can hold neither memory nor
//! the shutdown for long.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::time::{Interval, MissedTickBehavior};
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_sse::{
    BoxError, ConnectionGuard, Event, Farewell, LastEventIdHeader, Shutdown, SseBody, SseConfig,
    SseLayer, Stream,
};

const PRICE_EVERY: Duration = Duration::from_millis(500);
const SYMBOLS: [&str; 3] = ["ACME", "GLOBEX", "INITECH"];

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
    let config = SseConfig::new()
        .shutdown(shutdown.clone())
        .farewell(
            Farewell::new()
                .event(Event::new().event("shutdown").data("server restarting"))
                // Spread the reconnects of all clients over a few seconds.
                .retry_between(Duration::from_secs(1), Duration::from_secs(5)),
        )
        .on_close(|reason| println!("stream closed: {reason}"));
    // Blocked writes fail after 30 s without progress, or 5 s after Ctrl-C.
    let guard = ConnectionGuard::new()
        .write_timeout(Duration::from_secs(30))
        .shutdown(shutdown.clone())
        .shutdown_grace(Duration::from_secs(5));
    let feed = ServiceBuilder::new()
        .layer(SseLayer::with_config(config))
        .service_fn(feed);
    let app = service_fn(move |request: Request<Incoming>| {
        let feed = feed.clone();
        async move {
            let response = match (request.method(), request.uri().path()) {
                (&Method::GET, "/events") => feed.oneshot(request).await?.map(Either::Left),
                (&Method::GET, "/") => page().map(Either::Right),
                _ => not_found().map(Either::Right),
            };
            Ok::<Response<Either<SseBody<Feed>, Full<Bytes>>>, Infallible>(response)
        }
    });

    println!("live feed on http://{addr}/ (open it in a browser)");
    println!("  curl -N http://{addr}/events");
    println!("  curl -N -H 'Last-Event-ID: 20' http://{addr}/events   # resume after id 20");
    println!("Ctrl-C to stop");

    // HTTP/1.1 and HTTP/2 (h2c with prior knowledge, e.g.
    // `curl --http2-prior-knowledge`) on the same listener.
    let builder = auto::Builder::new(TokioExecutor::new());
    // Tracks every connection; on shutdown, tells each to finish what is in
    // flight and close (HTTP/2: a GOAWAY), and waits for all of them.
    let graceful = GracefulShutdown::new();
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
        let io = guard.wrap(stream);
        // The requests carry their connection's status, so that a stream on
        // a connection closed for stalling reports `write timeout`.
        let status = io.status();
        let app = app.clone();
        let service =
            TowerToHyperService::new(service_fn(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(status.clone());
                app.clone().oneshot(request)
            }));
        let connection = builder
            .serve_connection(TokioIo::new(io), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that goes away mid-stream is how SSE connections
            // usually end: not worth a message.
            if let Err(error) = connection.await {
                let incomplete = error
                    .downcast_ref::<hyper::Error>()
                    .is_some_and(hyper::Error::is_incomplete_message);
                if !incomplete {
                    eprintln!("connection from {peer}: {error}");
                }
            }
        });
    }

    drop(listener);
    println!("shutting down: ending open connections; Ctrl-C again to quit at once");
    // Every SSE stream ends (after its farewell), so that the connections
    // can finish; a connection whose client stopped reading is closed by its
    // guard 5 s later.
    shutdown.trigger();
    tokio::select! {
        () = graceful.shutdown() => println!("bye"),
        _ = tokio::signal::ctrl_c() => println!("quitting with connections open"),
    }
    Ok(())
}

/// The handler behind `SseLayer`: a feed for one client, resumed after the
/// last event it saw.
async fn feed(request: Request<Incoming>) -> Result<Response<Feed>, Infallible> {
    let last = request.extensions().get::<LastEventIdHeader>();
    let next_id = last
        .and_then(LastEventIdHeader::valid)
        .and_then(|id| id.parse::<u64>().ok())
        .map_or(1, |id| id.saturating_add(1));
    match last {
        Some(LastEventIdHeader::Valid(last)) => println!("client resumes after id {last}"),
        // Prices are live data with nothing to replay: a client whose id is
        // unusable simply gets the current prices.
        Some(LastEventIdHeader::Invalid(why)) => println!("client id unusable ({why}): live"),
        _ => println!("new client"),
    }
    Ok(Response::new(Feed::starting_at(next_id)))
}

/// One client's feed: a price every tick and the clock every other tick, with
/// ids counting up from where the client left off.
struct Feed {
    ticks: Interval,
    next_id: u64,
    ticked: u64,
    clock_due: bool,
}

impl Feed {
    fn starting_at(next_id: u64) -> Self {
        let mut ticks = tokio::time::interval(PRICE_EVERY);
        // A client that was slow to read gets the current price, not a burst
        // of the ones it missed.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        Self {
            ticks,
            next_id,
            ticked: 0,
            clock_due: false,
        }
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id = self.next_id.saturating_add(1);
        id
    }
}

impl Stream for Feed {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        if self.clock_due {
            self.clock_due = false;
            let id = self.take_id();
            return Poll::Ready(Some(Event::new().id(id).event("clock").data(clock())));
        }
        ready!(self.ticks.poll_tick(cx));
        self.ticked += 1;
        self.clock_due = self.ticked % 2 == 1;
        let id = self.take_id();
        let symbol = SYMBOLS[(id % SYMBOLS.len() as u64) as usize];
        let data = format!(r#"{{"symbol":"{symbol}","price":{:.2}}}"#, price(id));
        Poll::Ready(Some(Event::new().id(id).event("price").data(data)))
    }
}

/// A made-up price: a slow wave plus noise, the same for the same id.
fn price(id: u64) -> f64 {
    // splitmix64: plenty of randomness for a demo, without a dependency.
    let mut z = id.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let noise = (z % 1000) as f64 / 1000.0 - 0.5;
    100.0 + 8.0 * (id as f64 / 20.0).sin() + noise
}

/// The time of day, UTC, as `HH:MM:SS`.
fn clock() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let (hours, minutes, seconds) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
    format!("{hours:02}:{minutes:02}:{seconds:02} UTC")
}

fn page() -> Response<Full<Bytes>> {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .body(Full::new(Bytes::from_static(PAGE.as_bytes())))
        .expect("a valid response")
}

fn not_found() -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::NOT_FOUND)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from_static(b"not found\n")))
        .expect("a valid response")
}

const PAGE: &str = r##"<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>tower-sse live feed</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 40em; }
  td { padding: 0 1em 0 0; font-variant-numeric: tabular-nums; }
  #log { font: 12px monospace; white-space: pre; height: 16em; overflow: auto;
         background: #f4f4f4; padding: .5em; }
</style>
<h1>tower-sse live feed</h1>
<p>Connection: <b id="status">connecting</b> &middot; Clock: <b id="clock">&hellip;</b></p>
<table><tbody id="prices"></tbody></table>
<h2>Events</h2>
<div id="log"></div>
<script>
  const $ = (id) => document.getElementById(id);
  const log = (line) => { $("log").textContent = line + "\n" + $("log").textContent.slice(0, 8000); };
  const source = new EventSource("/events");
  source.onopen = () => { $("status").textContent = "open"; };
  source.onerror = () => { $("status").textContent = "reconnecting"; };
  source.addEventListener("price", (event) => {
    const { symbol, price } = JSON.parse(event.data);
    let row = $("price-" + symbol);
    if (!row) {
      row = $("prices").insertRow();
      row.id = "price-" + symbol;
      row.insertCell().textContent = symbol;
      row.insertCell();
    }
    row.cells[1].textContent = price.toFixed(2);
    log("#" + event.lastEventId + " price " + event.data);
  });
  source.addEventListener("clock", (event) => {
    $("clock").textContent = event.data;
    log("#" + event.lastEventId + " clock " + event.data);
  });
  source.addEventListener("shutdown", (event) => {
    $("status").textContent = event.data;
    log("shutdown: " + event.data);
  });
</script>
</html>
"##;
