//! A fixed workload for profilers (callgrind, perf) and for quick timing:
//! the encode benchmark's events through an `SseBody`, the hand-written lower
//! bound on the same events, the fan-out benchmark's hub delivery, or the
//! publisher's side alone (publishes to a topic whose 1,000 subscribers are
//! busy elsewhere), or the decode benchmark's streams through a `Decoder`.
//!
//! ```sh
//! cargo run --release --example profile -- encode typical
//! cargo run --release --example profile -- lower-bound tiny
//! cargo run --release --example profile --features hub -- fanout
//! cargo run --release --example profile --features hub -- publish
//! cargo run --release --example profile -- decode typical
//! valgrind --tool=callgrind target/release/examples/profile encode typical --rounds 20
//! ```
//!
//! Options: `--rounds N` (default 300), `--no-keep-alive`, `--shared` (the
//! encode workload's data as one shared `Arc<str>`, its id a run-time string;
//! the decode workload's events as `SharedEvent`s). It prints the best
//! and the median time per event (or per delivery) over the rounds; the best
//! is the steadier figure on a shared machine.

use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::{BufMut, BytesMut};
use futures_util::stream::{self, StreamExt};
use http_body::Body;
use tower_sse::{Event, SseBody, SseConfig};

const EVENTS: usize = 10_000;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One round of a workload; returns how many units (events or deliveries) it
/// handled.
type Run = Box<dyn FnMut(&mut Context<'_>) -> Result<usize, BoxError>>;

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let workload = args.first().map_or("encode", String::as_str);
    let shape = args
        .get(1)
        .filter(|arg| !arg.starts_with("--"))
        .map_or("typical", String::as_str);
    let rounds = match args.iter().position(|arg| arg == "--rounds") {
        Some(at) => args.get(at + 1).ok_or("--rounds needs a number")?.parse()?,
        None => 300,
    };
    let keep_alive = !args.iter().any(|arg| arg == "--no-keep-alive");
    let shared = args.iter().any(|arg| arg == "--shared");
    let config = if keep_alive {
        SseConfig::new()
    } else {
        SseConfig::new().without_keep_alive()
    };
    if workload == "decode" {
        return run_rounds(workload, shape, rounds, decode(shape, shared)?);
    }
    let data: &'static str = match shape {
        "tiny" => "x",
        "typical" => Box::leak(typical_json().into_boxed_str()),
        other => return Err(format!("unknown shape {other}: tiny or typical").into()),
    };
    let typical = shape == "typical";

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let _guard = runtime.enter();
    let run: Run = match workload {
        "encode" => Box::new(move |cx| Ok(encode(cx, data, typical, shared, config.clone()))),
        "lower-bound" => Box::new(move |cx| Ok(lower_bound(cx, data, typical))),
        "fanout" => fanout(config)?,
        "publish" => publish()?,
        other => return Err(format!("unknown workload {other}").into()),
    };
    run_rounds(workload, shape, rounds, run)
}

/// Runs `rounds` rounds of `run` and prints the best and the median time per
/// unit.
fn run_rounds(workload: &str, shape: &str, rounds: usize, mut run: Run) -> Result<(), BoxError> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        let units = run(&mut cx)?;
        times.push(start.elapsed().as_secs_f64() * 1e9 / units as f64);
    }
    times.sort_by(f64::total_cmp);
    let best = times.first().copied().unwrap_or_default();
    let median = times.get(times.len() / 2).copied().unwrap_or_default();
    println!("{workload} {shape}: best {best:.1} ns, median {median:.1} ns per unit");
    Ok(())
}

/// The encode benchmark's typical data: 256 bytes of JSON.
fn typical_json() -> String {
    let mut json = String::from("{\"symbol\":\"ACME\",\"prices\":[");
    while json.len() < 254 {
        json.push_str("1234,");
    }
    json.truncate(254);
    json.push_str("]}");
    json
}

/// An `SseBody` over 10,000 ready events, polled to its end. With
/// `shared`, the data is one `Arc<str>` shared by every event and the id a
/// string made at run time, as applications that fan out hold them.
fn encode(
    cx: &mut Context<'_>,
    data: &'static str,
    typical: bool,
    shared: bool,
    config: SseConfig,
) -> usize {
    let shared_data: std::sync::Arc<str> = std::sync::Arc::from(data.to_owned());
    let shared_id = String::from("12345");
    let events = stream::iter(0..EVENTS).map(move |_| {
        let event = if typical {
            Event::new().id(shared_id.as_str()).event("update")
        } else {
            Event::new()
        };
        if shared {
            event.data(&shared_data)
        } else {
            event.data(data)
        }
    });
    let mut body = Box::pin(SseBody::with_config(events, config));
    let mut bytes = 0;
    while let Poll::Ready(Some(frame)) = body.as_mut().poll_frame(cx) {
        if let Ok(Ok(data)) = frame.map(|frame| frame.into_data()) {
            bytes += data.len();
        }
    }
    std::hint::black_box(bytes);
    EVENTS
}

/// The same bytes written by hand from a stream of data strings, one buffer
/// per frame of up to 32 KiB: the encode benchmark's lower bound.
fn lower_bound(cx: &mut Context<'_>, data: &'static str, typical: bool) -> usize {
    let mut items = stream::iter(0..EVENTS).map(move |_| data);
    let mut bytes = 0;
    loop {
        let mut buf = BytesMut::new();
        while buf.len() < SseConfig::DEFAULT_MAX_FRAME_BYTES {
            let Poll::Ready(Some(data)) = items.poll_next_unpin(cx) else {
                break;
            };
            if buf.capacity() == 0 {
                buf.reserve(SseConfig::DEFAULT_MAX_FRAME_BYTES + 1024);
            }
            if typical {
                buf.put_slice(b"id: 12345\nevent: update\n");
            }
            for line in data.split('\n') {
                buf.put_slice(b"data: ");
                buf.put_slice(line.as_bytes());
                buf.put_u8(b'\n');
            }
            buf.put_u8(b'\n');
        }
        if buf.is_empty() {
            break;
        }
        bytes += std::hint::black_box(buf.freeze()).len();
    }
    std::hint::black_box(bytes);
    EVENTS
}

/// A hub with 1,000 subscribers, each behind its own body; each run
/// publishes 20 events and polls every body until it is pending.
#[cfg(feature = "hub")]
fn fanout(config: SseConfig) -> Result<Run, BoxError> {
    use tower_sse::hub::Hub;

    const SUBSCRIBERS: usize = 1_000;
    const PUBLISHES: usize = 20;
    let hub = Hub::new();
    let mut bodies: Vec<_> = (0..SUBSCRIBERS)
        .map(|_| {
            Box::pin(SseBody::with_config(
                hub.subscribe(["prices"], None),
                config.clone(),
            ))
        })
        .collect();
    Ok(Box::new(move |cx| {
        for _ in 0..PUBLISHES {
            let event = Event::new()
                .event("price")
                .data(r#"{"symbol":"ACME","bid":101.25}"#);
            hub.publish("prices", event)?;
            for body in &mut bodies {
                while let Poll::Ready(Some(frame)) = body.as_mut().poll_frame(cx) {
                    std::hint::black_box(frame?);
                }
            }
        }
        Ok(SUBSCRIBERS * PUBLISHES)
    }))
}

#[cfg(not(feature = "hub"))]
fn fanout(_: SseConfig) -> Result<Run, BoxError> {
    Err("the fanout workload needs --features hub".into())
}

/// A hub with 1,000 subscribers that are not waiting (never polled); each
/// run publishes 10,000 typical events: the publisher's cost alone.
#[cfg(feature = "hub")]
fn publish() -> Result<Run, BoxError> {
    use tower_sse::hub::{Hub, HubConfig};

    let hub = Hub::with_config(HubConfig::new().max_lag(u64::MAX));
    let subscriptions: Vec<_> = (0..1_000)
        .map(|_| hub.subscribe(["prices"], None))
        .collect();
    let data: &'static str = Box::leak(typical_json().into_boxed_str());
    Ok(Box::new(move |_| {
        let _subscribers = &subscriptions;
        for _ in 0..EVENTS {
            let event = Event::new().event("price").data(data);
            std::hint::black_box(hub.publish("prices", event)?);
        }
        Ok(EVENTS)
    }))
}

#[cfg(not(feature = "hub"))]
fn publish() -> Result<Run, BoxError> {
    Err("the publish workload needs --features hub".into())
}

/// The decode benchmark's stream of `shape` (typical, multiline or large) in
/// 16 KiB chunks; each run decodes all of it with a new `Decoder`, into
/// `MessageEvent`s (`next_event`) or, with `shared`, `SharedEvent`s
/// (`next_shared_event`).
fn decode(shape: &str, shared: bool) -> Result<Run, BoxError> {
    let (events, bytes) = decode_shape(shape)?;
    let chunks: Vec<Vec<u8>> = bytes.chunks(16 * 1024).map(<[u8]>::to_vec).collect();
    Ok(Box::new(move |_| {
        let mut decoder = tower_sse::decode::Decoder::new().max_line_len(1024 * 1024);
        let mut count = 0;
        for chunk in &chunks {
            decoder.push(chunk);
            // As the decode benchmark, the event's strings are read.
            if shared {
                while let Some(event) = decoder.next_shared_event()? {
                    std::hint::black_box((event.event_type(), event.data(), event.last_event_id()));
                    count += 1;
                }
            } else {
                while let Some(event) = decoder.next_event()? {
                    std::hint::black_box((&event.event_type, &event.data, &event.last_event_id));
                    count += 1;
                }
            }
        }
        if count != events {
            return Err(format!("decoded {count} events of {events}").into());
        }
        Ok(count)
    }))
}

/// The bytes of the decode benchmark's shapes (see `benches/decode.rs`) and
/// how many events they hold.
fn decode_shape(shape: &str) -> Result<(usize, Vec<u8>), BoxError> {
    let mut bytes = Vec::new();
    let events = match shape {
        "typical" => {
            for n in 0..2_000 {
                let json = format!(
                    r#"{{"id":{n:>8},"symbol":"ACME","price":101.25,"volume":1200,"bid":101.2,"ask":101.3,"exchange":"XNAS","currency":"USD","time":"2024-05-01T12:00:00.000Z","note":"a typical JSON payload of an SSE event","seq":{n:>8},"flags":["live","delayed"]}}"#
                );
                let json = format!("{json:<256}");
                bytes.extend_from_slice(
                    format!("id: {n}\nevent: price\ndata: {json}\n\n").as_bytes(),
                );
            }
            2_000
        }
        "multiline" => {
            for n in 0..1_000 {
                for line in 0..16 {
                    let text = format!("event {n:>6} line {line:>2} of sixteen lines..");
                    bytes.extend_from_slice(format!("data: {text:<40}\n").as_bytes());
                }
                bytes.push(b'\n');
            }
            1_000
        }
        "large" => {
            let line = "x".repeat(64 * 1024);
            for _ in 0..16 {
                bytes.extend_from_slice(format!("data: {line}\n\n").as_bytes());
            }
            16
        }
        other => return Err(format!("unknown shape {other}: typical, multiline or large").into()),
    };
    Ok((events, bytes))
}
