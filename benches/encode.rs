//! Encoding throughput of `SseBody`: an in-memory stream of ready events,
//! polled to completion, for four event shapes; with the default frame bound,
//! with one event per frame, and with keep-alive off (to show that keep-alive
//! costs no timer operation per event).
//!
//! Run: `cargo bench --bench encode`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::stream::{self, StreamExt};
use http_body_util::BodyExt;
use tower_sse::{Event, KeepAlive, SseBody, SseConfig};

const EVENTS: usize = 10_000;

struct Shape {
    name: &'static str,
    make: fn(&str) -> Event,
    data: String,
}

fn shapes() -> Vec<Shape> {
    let json = {
        let mut json = String::from("{\"symbol\":\"ACME\",\"prices\":[");
        while json.len() < 254 {
            json.push_str("1234,");
        }
        json.truncate(254);
        json.push_str("]}");
        json
    };
    let multiline = vec!["x".repeat(40); 16].join("\n");
    vec![
        Shape {
            name: "tiny",
            make: |data| Event::new().data(data),
            data: "x".into(),
        },
        Shape {
            name: "typical",
            make: |data| Event::new().id(12345).event("update").data(data),
            data: json,
        },
        Shape {
            name: "multiline",
            make: |data| Event::new().data(data),
            data: multiline,
        },
        Shape {
            name: "large",
            make: |data| Event::new().data(data),
            data: "y".repeat(64 * 1024),
        },
    ]
}

/// Polls a body over `EVENTS` ready events to its end; returns the frame count.
async fn drain(shape: &Shape, config: SseConfig) -> usize {
    let data = shape.data.as_str();
    let make = shape.make;
    let events = stream::iter(0..EVENTS).map(move |_| make(data));
    let mut body = SseBody::with_config(events, config);
    let mut frames = 0;
    while let Some(frame) = body.frame().await {
        black_box(frame.expect("infallible"));
        frames += 1;
    }
    frames
}

fn encode(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let keep_alive =
        SseConfig::new().keep_alive(KeepAlive::new().interval(Duration::from_secs(15)));
    let configs = [
        ("batched", keep_alive.clone()),
        ("frame_per_event", keep_alive.clone().max_frame_bytes(0)),
        ("batched_8k", keep_alive.clone().max_frame_bytes(8 * 1024)),
        (
            "batched_128k",
            keep_alive.clone().max_frame_bytes(128 * 1024),
        ),
        (
            "batched_no_keep_alive",
            SseConfig::new().without_keep_alive(),
        ),
    ];

    for shape in shapes() {
        let mut group = c.benchmark_group(format!("encode/{}", shape.name));
        group.throughput(Throughput::Elements(EVENTS as u64));
        if shape.name == "large" {
            group.sample_size(10);
        }
        for (name, config) in &configs {
            let frames = runtime.block_on(drain(&shape, config.clone()));
            println!("{}/{name}: {frames} frames per {EVENTS} events", shape.name);
            group.bench_with_input(BenchmarkId::from_parameter(name), config, |b, config| {
                b.iter(|| runtime.block_on(drain(&shape, config.clone())));
            });
        }
        group.finish();
    }
}

criterion_group!(benches, encode);
criterion_main!(benches);
