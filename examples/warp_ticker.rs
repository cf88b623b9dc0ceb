//! A price ticker over Server-Sent Events, served by warp.
//!
//! ```text
//! cargo run --example warp_ticker --features warp            # http://127.0.0.1:3030/
//! PORT=8080 cargo run --example warp_ticker --features warp  # another port
//! ```
//!
//! - `GET /ticks` streams a `tick` event every second. Tick `n` is the `n`th
//!   second since the server started and its price depends on `n` alone, so a
//!   client that reconnects with `Last-Event-ID: n` first gets the ticks it
//!   missed (up to a minute of them), then the live ones.
//! - `GET /` is a page that shows the ticks and the connection state.
//!
//! Ctrl-C ends every stream with a farewell event and a jittered `retry:`,
//! and the server exits once the streams are closed, or 5 s after Ctrl-C if
//! a client that stopped reading holds its connection (`warp::serve` takes no
//! guarded listener, so the bound is `Shutdown::within_grace`).

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::stream::{self, Stream};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tower_sse::warp::{SseReply, apply_config, last_event_id};
use tower_sse::{BoxError, Event, Farewell, KeepAlive, LastEventId, Shutdown, SseConfig};
use warp::Filter;

/// The most ticks a reconnecting client is sent to catch up.
const CATCH_UP: u64 = 60;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let port = match std::env::var("PORT") {
        Ok(port) => port
            .parse::<u16>()
            .map_err(|_| "PORT must be a port number")?,
        Err(_) => 3030,
    };
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    let addr = listener.local_addr()?;
    let started = Instant::now();

    let page = warp::path::end().map(|| warp::reply::html(PAGE));
    let ticks = warp::path("ticks")
        .and(warp::path::end())
        .and(last_event_id())
        .map(move |last_event_id: Option<LastEventId>| {
            let after = last_event_id.and_then(|id| id.parse::<u64>().ok());
            SseReply::new(ticks(started, after))
        });

    let shutdown = Shutdown::new();
    // One policy for every SSE reply of these routes.
    let config = SseConfig::new()
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .shutdown(shutdown.clone())
        .farewell(
            Farewell::new()
                .event(Event::new().event("bye").data("server shutting down"))
                .retry_between(Duration::from_secs(1), Duration::from_secs(5)),
        );
    let routes = apply_config(page.or(ticks), config);

    println!("warp_ticker: open http://{addr}/ (Ctrl-C to stop)");
    let signal = shutdown.clone();
    let server = warp::serve(routes)
        .incoming(listener)
        .graceful(async move {
            let _ = tokio::signal::ctrl_c().await;
            println!("shutting down: ending every stream");
            signal.trigger();
        })
        .run();
    match shutdown.within_grace(Duration::from_secs(5), server).await {
        Ok(()) => println!("bye"),
        Err(_) => println!("bye, leaving stalled connections behind"),
    }
    Ok(())
}

/// Ticks from the one after `after` (when it is recent) or from now on.
fn ticks(started: Instant, after: Option<u64>) -> impl Stream<Item = Event> + Send {
    let now = started.elapsed().as_secs();
    let first = after
        .and_then(|n| n.checked_add(1))
        .filter(|&n| n <= now && now - n <= CATCH_UP)
        .unwrap_or(now);
    stream::unfold(first, move |n| async move {
        // Ticks already due are sent at once.
        tokio::time::sleep_until(started + Duration::from_secs(n)).await;
        let event = Event::new()
            .id(n)
            .event("tick")
            .data(format!("{:.2}", price(n)));
        Some((event, n + 1))
    })
}

/// A price that depends on the tick alone, so every client sees the same.
fn price(n: u64) -> f64 {
    let t = n as f64;
    100.0 + 4.0 * (t / 17.0).sin() + 1.5 * (t / 3.3).sin() + 0.5 * (t * 1.7).sin()
}

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>tower-sse · warp ticker</title>
<style>
  body { font: 15px/1.5 system-ui, sans-serif; background: #0f1419; color: #e6edf3; margin: 40px; }
  #price { font-size: 48px; font-weight: 600; font-variant-numeric: tabular-nums; }
  #state { color: #8b98a5; }
  .up { color: #3fb950; } .down { color: #f85149; }
  ol { font: 13px/1.6 ui-monospace, monospace; color: #8b98a5; list-style: none; padding: 0; }
</style>
</head>
<body>
<h1>TWR <small id="state">connecting…</small></h1>
<div id="price">–</div>
<ol id="ticks"></ol>
<script>
  const $ = (id) => document.getElementById(id);
  const source = new EventSource("/ticks");
  let last = null;
  source.addEventListener("tick", (event) => {
    const price = Number(event.data);
    $("price").textContent = price.toFixed(2);
    $("price").className = last === null ? "" : price >= last ? "up" : "down";
    last = price;
    const item = document.createElement("li");
    item.textContent = `#${event.lastEventId}  ${event.data}`;
    $("ticks").prepend(item);
    while ($("ticks").children.length > 10) $("ticks").lastChild.remove();
  });
  source.addEventListener("bye", (event) => { $("state").textContent = event.data; });
  source.onopen = () => { $("state").textContent = "live"; };
  source.onerror = () => { $("state").textContent = "reconnecting…"; };
</script>
</body>
</html>
"#;
