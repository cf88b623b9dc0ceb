//! Fan-out cost: one event published to N subscribers (N = 10, 100, 1000),
//! then every subscriber's queue drained, as the response bodies of N
//! connections would. Throughput is set to N, so reports read as deliveries
//! per second. Contestants, on the same event:
//!
//! - `hub`: `Hub::publish` (an id, one encoding, retained for replay, a
//!   handle pushed into each subscriber's bounded queue), then each
//!   `Subscription` polled until it is pending;
//! - `broadcast_encode_each`: the usual hand-rolled way: a
//!   `tokio::sync::broadcast` channel carrying the un-encoded message, each
//!   subscriber cloning it and encoding its own copy (with tower-sse's own
//!   `Event::encode`, as axum isn't a dependency here; axum's encoder is
//!   not cheaper);
//! - `broadcast_shared_bytes`: a `tokio::sync::broadcast` channel carrying
//!   the event encoded once, as a floor for the fan-out mechanism alone (no
//!   ids, no replay, no lag policy).
//!
//! The subscribers are polled without a runtime (`now_or_never`), so the
//! numbers are the hub's own cost, not a scheduler's. Before timing, every
//! contestant is checked to deliver the same data to every subscriber.
//!
//! Run: `cargo bench --bench fanout --features hub`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::{FutureExt, StreamExt};
use tokio::sync::broadcast;
use tower_sse::decode::Decoder;
use tower_sse::hub::{Hub, Subscription};
use tower_sse::{EncodedEvent, Event};

const SUBSCRIBERS: [usize; 3] = [10, 100, 1000];
const TOPIC: &str = "prices";
/// A typical small JSON payload.
const DATA: &str = r#"{"symbol":"ACME","bid":101.25,"ask":101.5,"volume":1200,"venue":"XNAS","time":"12:00:01.250"}"#;

/// The application's message, as the naive approach broadcasts it.
#[derive(Clone, Debug)]
struct Tick {
    id: u64,
    data: String,
}

fn tick_event(data: String) -> Event {
    Event::new().event("price").data(data)
}

/// Everything ready in each subscription, drained; returns the deliveries.
fn drain_hub(subscriptions: &mut [Subscription]) -> usize {
    let mut delivered = 0;
    for subscription in subscriptions {
        while let Some(Some(event)) = subscription.next().now_or_never() {
            black_box(event.expect("no lag: every queue is drained"));
            delivered += 1;
        }
    }
    delivered
}

fn drain_encoding_each(receivers: &mut [broadcast::Receiver<Tick>]) -> usize {
    let mut delivered = 0;
    for receiver in receivers {
        while let Ok(tick) = receiver.try_recv() {
            let event = tick_event(tick.data).id(tick.id).encode().expect("valid");
            black_box(event);
            delivered += 1;
        }
    }
    delivered
}

fn drain_shared(receivers: &mut [broadcast::Receiver<Bytes>]) -> usize {
    let mut delivered = 0;
    for receiver in receivers {
        while let Ok(bytes) = receiver.try_recv() {
            black_box(bytes);
            delivered += 1;
        }
    }
    delivered
}

fn data_of(bytes: &[u8]) -> String {
    let mut decoder = Decoder::new();
    decoder.push(bytes);
    decoder
        .next_event()
        .expect("decodes")
        .expect("an event")
        .data
}

/// Every contestant delivers the same event to every subscriber.
fn check_same_deliveries(n: usize) {
    let hub = Hub::new();
    let mut subscriptions: Vec<Subscription> =
        (0..n).map(|_| hub.subscribe([TOPIC], None)).collect();
    hub.publish(TOPIC, tick_event(DATA.to_owned())).unwrap();
    for subscription in &mut subscriptions {
        let event: EncodedEvent = subscription
            .next()
            .now_or_never()
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(data_of(event.as_bytes()), DATA);
    }

    let (sender, _) = broadcast::channel::<Tick>(16);
    let mut receivers: Vec<_> = (0..n).map(|_| sender.subscribe()).collect();
    sender
        .send(Tick {
            id: 1,
            data: DATA.to_owned(),
        })
        .unwrap();
    for receiver in &mut receivers {
        let tick = receiver.try_recv().unwrap();
        let event = tick_event(tick.data).id(tick.id).encode().unwrap();
        assert_eq!(data_of(event.as_bytes()), DATA);
    }

    let (sender, _) = broadcast::channel::<Bytes>(16);
    let mut receivers: Vec<_> = (0..n).map(|_| sender.subscribe()).collect();
    let encoded = tick_event(DATA.to_owned()).id(1).encode().unwrap();
    sender.send(encoded.into_bytes()).unwrap();
    for receiver in &mut receivers {
        assert_eq!(data_of(&receiver.try_recv().unwrap()), DATA);
    }
}

fn fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout");
    for n in SUBSCRIBERS {
        check_same_deliveries(n);
        group.throughput(Throughput::Elements(n as u64));

        group.bench_with_input(BenchmarkId::new("hub", n), &n, |b, &n| {
            let hub = Hub::new();
            let mut subscriptions: Vec<Subscription> =
                (0..n).map(|_| hub.subscribe([TOPIC], None)).collect();
            b.iter(|| {
                hub.publish(TOPIC, tick_event(DATA.to_owned())).unwrap();
                assert_eq!(drain_hub(&mut subscriptions), n);
            });
        });

        group.bench_with_input(BenchmarkId::new("broadcast_encode_each", n), &n, |b, &n| {
            let (sender, _) = broadcast::channel::<Tick>(1024);
            let mut receivers: Vec<_> = (0..n).map(|_| sender.subscribe()).collect();
            let mut id = 0;
            b.iter(|| {
                id += 1;
                let tick = Tick {
                    id,
                    data: DATA.to_owned(),
                };
                sender.send(tick).unwrap();
                assert_eq!(drain_encoding_each(&mut receivers), n);
            });
        });

        group.bench_with_input(
            BenchmarkId::new("broadcast_shared_bytes", n),
            &n,
            |b, &n| {
                let (sender, _) = broadcast::channel::<Bytes>(1024);
                let mut receivers: Vec<_> = (0..n).map(|_| sender.subscribe()).collect();
                let mut id = 0_u64;
                b.iter(|| {
                    id += 1;
                    let event = tick_event(DATA.to_owned()).id(id).encode().unwrap();
                    sender.send(event.into_bytes()).unwrap();
                    assert_eq!(drain_shared(&mut receivers), n);
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
