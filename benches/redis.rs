//! Publishing through Redis: the time of one `RedisHub::publish` (a script
//! in Redis that numbers the event, appends it to the topic's stream, trims
//! the stream's window and publishes it on the topic's channel), beside the
//! in-process `Hub::publish` of the same event.
//!
//! - `hub_in_process`: `Hub::publish`, no subscribers;
//! - `redis_sequential`: `RedisHub::publish`, each awaited before the next:
//!   a round trip to Redis per event;
//! - `redis_pipelined_64`: 64 publishes in flight at once on one `RedisHub`
//!   (`join_all`), which its multiplexed connection pipelines.
//!
//! The event: an id from the hub, type `update`, 256 bytes of JSON data
//! shared as an `Arc<str>`. No node subscribes to the topic, so this is the
//! publisher's cost and Redis's, not the fan-out's (see the `fanout` bench
//! and `examples/redis_latency.rs`). The topic's window is the default
//! (1,024 events): after the warm-up every publish also trims one entry.
//!
//! A private `redis-server` (free port, temporary directory, no persistence)
//! runs on the same machine, on a tokio current-thread runtime's connection.
//! Without `redis-server` on `PATH`, the bench says so and measures nothing.
//!
//! Run: `cargo bench --bench redis --features redis`.

#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::future::join_all;
use redis_server::{Persistence, RedisServer};
use tower_sse::Event;
use tower_sse::hub::{Hub, RedisHub};

const TOPIC: &str = "prices";
/// Publishes in flight at once in the pipelined case.
const IN_FLIGHT: usize = 64;

/// 256 bytes of JSON, as an app shares one payload between its events.
fn data() -> Arc<str> {
    let head = r#"{"symbol":"ACME","bid":101.25,"ask":101.5,"volume":1200,"venue":"XNAS","note":""#;
    let tail = r#""}"#;
    let json = format!("{head}{}{tail}", "x".repeat(256 - head.len() - tail.len()));
    assert_eq!(json.len(), 256);
    Arc::from(json)
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn publish(c: &mut Criterion) {
    if !on_path("redis-server") {
        eprintln!(
            "NOTICE: redis-server not found on PATH: the redis bench measured nothing \
             (Debian: apt-get install -y redis-server)"
        );
        return;
    }
    let server = RedisServer::start(Persistence::None).expect("redis-server is on PATH");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let hub = runtime
        .block_on(RedisHub::builder(&server.url()).prefix("bench").connect())
        .expect("connect to the private redis-server");
    let data = data();
    let event = || Event::new().event("update").data(Arc::clone(&data));

    // Each pipelined publish gets an id of its own, in one run of positions.
    let ids = runtime.block_on(join_all(
        (0..IN_FLIGHT).map(|_| hub.publish(TOPIC, event())),
    ));
    let mut positions: Vec<u64> = ids
        .into_iter()
        .map(|id| id.expect("published").seq())
        .collect();
    positions.sort_unstable();
    positions.dedup();
    assert_eq!(positions.len(), IN_FLIGHT);
    assert_eq!(
        positions[IN_FLIGHT - 1] - positions[0],
        IN_FLIGHT as u64 - 1
    );

    let mut group = c.benchmark_group("publish");
    group.throughput(Throughput::Elements(1));

    let local = Hub::new();
    group.bench_function("hub_in_process", |b| {
        b.iter(|| black_box(local.publish(TOPIC, event()).expect("published")));
    });

    group.bench_function("redis_sequential", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(hub.publish(TOPIC, event()).await.expect("published"));
                }
                start.elapsed()
            })
        });
    });

    group.bench_function("redis_pipelined_64", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                let mut left = iters;
                while left > 0 {
                    let batch = left.min(IN_FLIGHT as u64);
                    let ids = join_all((0..batch).map(|_| hub.publish(TOPIC, event()))).await;
                    for id in ids {
                        black_box(id.expect("published"));
                    }
                    left -= batch;
                }
                start.elapsed()
            })
        });
    });
    group.finish();

    let metrics = hub.metrics();
    assert_eq!(metrics.publish_errors, 0);
    drop(hub);
    drop(runtime);
    drop(server);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = publish
}
criterion_main!(benches);
