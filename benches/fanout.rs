//! Fan-out cost: one event published to N subscribers (N = 10, 100, 1000),
//! then every connection's response body polled until it is pending, as a
//! server polls the bodies of N connections. Throughput is N, so reports read
//! as deliveries per second. Contestants, on the same event:
//!
//! - `tower_sse`: `Hub::publish` (an id, one encoding, retained for replay, a
//!   handle queued for each subscriber); each connection an `SseBody` over its
//!   `Subscription`;
//! - `axum_encode_each`: what an axum app does without a hub: a
//!   `tokio::sync::broadcast` channel carrying the un-encoded message; each
//!   connection an axum `Sse` body over a stream of its receiver, building and
//!   encoding its own `axum::response::sse::Event` with an id;
//! - `tower_sse_keep_alive`, `axum_encode_each_keep_alive`: the same two with
//!   each framework's default keep-alive (15 s) on, as production endpoints
//!   run them;
//! - `hub_only`: `Hub::publish`, then each `Subscription` drained without a
//!   body: the hub's own cost;
//! - `broadcast_shared_bytes`: a broadcast channel carrying the event encoded
//!   once, drained without a body: a floor for the fan-out mechanism alone (no
//!   ids, no replay, no lag policy).
//!
//! Both kinds of body are boxed into `axum::body::Body`, as axum serves them,
//! and polled on one thread with a no-op waker, so the numbers are the
//! libraries' cost, not a scheduler's or a socket's. Before timing, every
//! contestant is checked to deliver the same event (type and data; the ids
//! differ in form) to every subscriber, one frame each.
//!
//! A second group, `publish`, times the publisher alone: the time of one
//! publish to a topic with N = 10, 1,000 and 10,000 subscribers, beside a
//! `tokio::sync::broadcast` sending the same event already encoded (`Bytes`),
//! in two states of the subscribers:
//!
//! - `*_waiting`: every subscriber is waiting, each with a waker of its own
//!   (as N connection tasks are), so the publish wakes N tasks;
//! - `*_busy`: the subscribers were woken by an earlier publish and have not
//!   read yet (a steady stream of events to readers that keep up), so the
//!   publish wakes no one. `broadcast_encode_busy` also encodes the event
//!   (with an id) before sending it, as the hub does.
//!
//! Only the publish is timed; the subscribers read between samples.
//!
//! Run: `cargo bench --bench fanout --features hub`.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::IntoResponse;
use axum::response::sse::{Event as AxumEvent, KeepAlive as AxumKeepAlive, Sse as AxumSse};
use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::{FutureExt, Stream, StreamExt, stream};
use http_body::Body as _;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tower_sse::decode::Decoder;
use tower_sse::hub::{Hub, HubConfig, Subscription};
use tower_sse::{Event, SseBody, SseConfig};

const SUBSCRIBERS: [usize; 3] = [10, 100, 1000];
const TOPIC: &str = "prices";
const EVENT_TYPE: &str = "price";
/// A typical small JSON payload.
const DATA: &str = r#"{"symbol":"ACME","bid":101.25,"ask":101.5,"volume":1200,"venue":"XNAS","time":"12:00:01.250"}"#;
/// Room for every event the timed loop publishes between two drains.
const CHANNEL_CAPACITY: usize = 1024;

/// The application's message, as an app without a hub broadcasts it: the
/// data is shared, so that each receiver's copy costs a reference count, not
/// a string copy.
#[derive(Clone, Debug)]
struct Tick {
    id: u64,
    data: Arc<str>,
}

/// What each connection of the axum app encodes, once per connection.
fn axum_event(tick: &Tick) -> AxumEvent {
    AxumEvent::default()
        .id(itoa::Buffer::new().format(tick.id))
        .event(EVENT_TYPE)
        .data(&*tick.data)
}

/// A connection's event stream in the axum app: its broadcast receiver,
/// encoded as it goes.
fn axum_events(
    receiver: broadcast::Receiver<Tick>,
) -> impl Stream<Item = Result<AxumEvent, Infallible>> + Send + 'static {
    stream::unfold(receiver, |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok(tick) => return Some((Ok(axum_event(&tick)), receiver)),
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return None,
            }
        }
    })
}

/// A hub and one response body per subscriber.
struct TowerSse {
    hub: Hub,
    bodies: Vec<Body>,
}

impl TowerSse {
    fn new(n: usize, config: &SseConfig) -> Self {
        let hub = Hub::new();
        let bodies = (0..n)
            .map(|_| {
                let subscription = hub.subscribe([TOPIC], None);
                Body::new(SseBody::with_config(subscription, config.clone()))
            })
            .collect();
        Self { hub, bodies }
    }

    fn publish(&self) {
        let event = Event::new().event(EVENT_TYPE).data(DATA.to_owned());
        self.hub.publish(TOPIC, event).expect("a valid event");
    }
}

/// A broadcast channel of messages and one axum response body per receiver.
struct AxumEncodeEach {
    sender: broadcast::Sender<Tick>,
    last_id: u64,
    bodies: Vec<Body>,
}

impl AxumEncodeEach {
    fn new(n: usize, keep_alive: bool) -> Self {
        let (sender, _) = broadcast::channel(CHANNEL_CAPACITY);
        let bodies = (0..n)
            .map(|_| {
                let events = axum_events(sender.subscribe());
                let response = if keep_alive {
                    AxumSse::new(events)
                        .keep_alive(AxumKeepAlive::default())
                        .into_response()
                } else {
                    AxumSse::new(events).into_response()
                };
                response.into_body()
            })
            .collect();
        Self {
            sender,
            last_id: 0,
            bodies,
        }
    }

    fn publish(&mut self) {
        self.last_id += 1;
        let tick = Tick {
            id: self.last_id,
            data: Arc::from(DATA),
        };
        self.sender.send(tick).expect("receivers are open");
    }
}

/// Polls every body until it is pending, as a server does after each wake;
/// returns the frames.
fn poll_bodies(bodies: &mut [Body], mut frame: impl FnMut(Bytes)) -> usize {
    let mut cx = Context::from_waker(Waker::noop());
    let mut frames = 0;
    for body in bodies {
        while let Poll::Ready(polled) = Pin::new(&mut *body).poll_frame(&mut cx) {
            let data = polled
                .expect("a body stays open")
                .expect("no error")
                .into_data()
                .expect("a data frame");
            frame(data);
            frames += 1;
        }
    }
    frames
}

/// Everything ready in each subscription, drained; returns the deliveries.
fn drain_hub(subscriptions: &mut [Subscription], mut event: impl FnMut(Bytes)) -> usize {
    let mut delivered = 0;
    for subscription in subscriptions {
        while let Some(Some(next)) = subscription.next().now_or_never() {
            event(next.expect("no lag: every queue is drained").into_bytes());
            delivered += 1;
        }
    }
    delivered
}

fn drain_shared(
    receivers: &mut [broadcast::Receiver<Bytes>],
    mut event: impl FnMut(Bytes),
) -> usize {
    let mut delivered = 0;
    for receiver in receivers {
        while let Ok(bytes) = receiver.try_recv() {
            event(bytes);
            delivered += 1;
        }
    }
    delivered
}

/// Checks that a frame is exactly one event with the published type and data
/// and some id.
fn check_frame(contestant: &str, frame: &[u8]) {
    let mut decoder = Decoder::new();
    decoder.push(frame);
    let event = decoder
        .next_event()
        .expect("decodes")
        .unwrap_or_else(|| panic!("{contestant}: a frame holds an event"));
    assert_eq!(
        (event.event_type.as_str(), event.data.as_str()),
        (EVENT_TYPE, DATA),
        "{contestant}"
    );
    assert!(!event.last_event_id.is_empty(), "{contestant}: an id");
    assert!(
        decoder.next_event().expect("decodes").is_none(),
        "{contestant}: one event a frame"
    );
}

/// Every contestant delivers the same event to each of `n` subscribers.
fn check_same_deliveries(n: usize, keep_alive: &SseConfig, no_keep_alive: &SseConfig) {
    for (name, config) in [
        ("tower_sse", no_keep_alive),
        ("tower_sse_keep_alive", keep_alive),
    ] {
        let mut tower_sse = TowerSse::new(n, config);
        assert_eq!(poll_bodies(&mut tower_sse.bodies, |_| {}), 0);
        tower_sse.publish();
        let frames = poll_bodies(&mut tower_sse.bodies, |frame| check_frame(name, &frame));
        assert_eq!(frames, n, "{name}");
    }

    for (name, keep_alive) in [
        ("axum_encode_each", false),
        ("axum_encode_each_keep_alive", true),
    ] {
        let mut axum = AxumEncodeEach::new(n, keep_alive);
        assert_eq!(poll_bodies(&mut axum.bodies, |_| {}), 0);
        axum.publish();
        let frames = poll_bodies(&mut axum.bodies, |frame| check_frame(name, &frame));
        assert_eq!(frames, n, "{name}");
    }

    let hub = Hub::new();
    let mut subscriptions: Vec<Subscription> =
        (0..n).map(|_| hub.subscribe([TOPIC], None)).collect();
    hub.publish(TOPIC, Event::new().event(EVENT_TYPE).data(DATA))
        .unwrap();
    let delivered = drain_hub(&mut subscriptions, |event| check_frame("hub_only", &event));
    assert_eq!(delivered, n);

    let (sender, _) = broadcast::channel::<Bytes>(16);
    let mut receivers: Vec<_> = (0..n).map(|_| sender.subscribe()).collect();
    let encoded = Event::new().id(1).event(EVENT_TYPE).data(DATA).encode();
    sender.send(encoded.unwrap().into_bytes()).unwrap();
    let delivered = drain_shared(&mut receivers, |event| {
        check_frame("broadcast_shared_bytes", &event);
    });
    assert_eq!(delivered, n);
}

fn fanout(c: &mut Criterion) {
    // Keep-alive timers need a runtime's timer; nothing here is spawned.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _runtime = runtime.enter();
    let keep_alive = SseConfig::new();
    let no_keep_alive = SseConfig::new().without_keep_alive();

    let mut group = c.benchmark_group("fanout");
    for n in SUBSCRIBERS {
        check_same_deliveries(n, &keep_alive, &no_keep_alive);
        group.throughput(Throughput::Elements(n as u64));

        for (name, config) in [
            ("tower_sse", &no_keep_alive),
            ("tower_sse_keep_alive", &keep_alive),
        ] {
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, &n| {
                let mut tower_sse = TowerSse::new(n, config);
                poll_bodies(&mut tower_sse.bodies, drop);
                b.iter(|| {
                    tower_sse.publish();
                    let frames = poll_bodies(&mut tower_sse.bodies, |frame| {
                        black_box(frame);
                    });
                    assert_eq!(frames, n);
                });
            });
        }

        for (name, keep_alive) in [
            ("axum_encode_each", false),
            ("axum_encode_each_keep_alive", true),
        ] {
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, &n| {
                let mut axum = AxumEncodeEach::new(n, keep_alive);
                poll_bodies(&mut axum.bodies, drop);
                b.iter(|| {
                    axum.publish();
                    let frames = poll_bodies(&mut axum.bodies, |frame| {
                        black_box(frame);
                    });
                    assert_eq!(frames, n);
                });
            });
        }

        group.bench_with_input(BenchmarkId::new("hub_only", n), &n, |b, &n| {
            let hub = Hub::new();
            let mut subscriptions: Vec<Subscription> =
                (0..n).map(|_| hub.subscribe([TOPIC], None)).collect();
            b.iter(|| {
                let event = Event::new().event(EVENT_TYPE).data(DATA.to_owned());
                hub.publish(TOPIC, event).unwrap();
                let delivered = drain_hub(&mut subscriptions, |event| {
                    black_box(event);
                });
                assert_eq!(delivered, n);
            });
        });

        group.bench_with_input(
            BenchmarkId::new("broadcast_shared_bytes", n),
            &n,
            |b, &n| {
                let (sender, _) = broadcast::channel::<Bytes>(CHANNEL_CAPACITY);
                let mut receivers: Vec<_> = (0..n).map(|_| sender.subscribe()).collect();
                let mut id = 0_u64;
                b.iter(|| {
                    id += 1;
                    let event = Event::new().id(id).event(EVENT_TYPE).data(DATA.to_owned());
                    sender.send(event.encode().unwrap().into_bytes()).unwrap();
                    let delivered = drain_shared(&mut receivers, |event| {
                        black_box(event);
                    });
                    assert_eq!(delivered, n);
                });
            },
        );
    }
    group.finish();
}

/// A connection task's waker: each subscriber has its own.
#[derive(Default)]
struct TaskWaker(AtomicUsize);

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn task_wakers(n: usize) -> Vec<Waker> {
    (0..n)
        .map(|_| Waker::from(Arc::new(TaskWaker::default())))
        .collect()
}

/// The subscribers of the `publish` group's hub, each polled with its own
/// waker.
struct HubReaders {
    hub: Hub,
    subscriptions: Vec<Subscription>,
    wakers: Vec<Waker>,
}

impl HubReaders {
    fn new(n: usize) -> Self {
        let hub = Hub::with_config(HubConfig::new().max_lag(1 << 20));
        let subscriptions = (0..n).map(|_| hub.subscribe([TOPIC], None)).collect();
        let mut readers = Self {
            hub,
            subscriptions,
            wakers: task_wakers(n),
        };
        assert_eq!(readers.read(), 0);
        readers
    }

    /// Reads everything; every subscriber is waiting again after.
    fn read(&mut self) -> usize {
        let mut read = 0;
        for (subscription, waker) in self.subscriptions.iter_mut().zip(&self.wakers) {
            let mut cx = Context::from_waker(waker);
            while let Poll::Ready(Some(event)) = Pin::new(&mut *subscription).poll_next(&mut cx) {
                black_box(event.expect("not lagged"));
                read += 1;
            }
        }
        read
    }
}

type Recv = Pin<Box<dyn Future<Output = (broadcast::Receiver<Bytes>, Option<Bytes>)> + Send>>;

fn recv(mut receiver: broadcast::Receiver<Bytes>) -> Recv {
    Box::pin(async move {
        let bytes = receiver.recv().await.ok();
        (receiver, bytes)
    })
}

/// The receivers of the `publish` group's broadcast channel, each waiting
/// in a `recv` future polled with its own waker.
struct BroadcastReaders {
    sender: broadcast::Sender<Bytes>,
    bytes: Bytes,
    receivers: Vec<Recv>,
    wakers: Vec<Waker>,
}

impl BroadcastReaders {
    fn new(n: usize) -> Self {
        let (sender, _) = broadcast::channel(CHANNEL_CAPACITY);
        let receivers = (0..n).map(|_| recv(sender.subscribe())).collect();
        let bytes = Event::new()
            .id(1)
            .event(EVENT_TYPE)
            .data(DATA)
            .encode()
            .expect("a valid event")
            .into_bytes();
        let mut readers = Self {
            sender,
            bytes,
            receivers,
            wakers: task_wakers(n),
        };
        assert_eq!(readers.read(), 0);
        readers
    }

    /// Reads everything; every receiver is waiting again after.
    fn read(&mut self) -> usize {
        let mut read = 0;
        for (receiving, waker) in self.receivers.iter_mut().zip(&self.wakers) {
            let mut cx = Context::from_waker(waker);
            while let Poll::Ready((receiver, bytes)) = receiving.as_mut().poll(&mut cx) {
                black_box(bytes.expect("not lagged"));
                read += 1;
                *receiving = recv(receiver);
            }
        }
        read
    }
}

/// How many publishes one sample of the `*_busy` contestants times.
const BURST: u64 = 64;

/// The subscribers' state while the publisher is timed.
#[derive(Clone, Copy)]
enum Readers {
    /// Every subscriber waits: each publish wakes them all.
    Waiting,
    /// Woken by an untimed publish and not read yet: bursts of publishes
    /// wake no one.
    Busy,
}

impl Readers {
    fn name(self) -> &'static str {
        match self {
            Readers::Waiting => "waiting",
            Readers::Busy => "busy",
        }
    }

    /// Times `iters` publishes, the subscribers reading between samples.
    fn time(
        self,
        iters: u64,
        n: usize,
        publish: impl Fn(),
        mut read: impl FnMut() -> usize,
    ) -> Duration {
        let mut elapsed = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let burst = match self {
                Readers::Waiting => 1,
                Readers::Busy => {
                    publish();
                    left.min(BURST)
                }
            };
            let start = Instant::now();
            for _ in 0..burst {
                publish();
            }
            elapsed += start.elapsed();
            let untimed = u64::from(matches!(self, Readers::Busy));
            assert_eq!(read() as u64, (burst + untimed) * n as u64);
            left -= burst;
        }
        elapsed
    }
}

fn publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish");
    group.throughput(Throughput::Elements(1));
    for n in [10, 1_000, 10_000] {
        for readers_state in [Readers::Waiting, Readers::Busy] {
            let id = BenchmarkId::new(format!("hub_{}", readers_state.name()), n);
            group.bench_with_input(id, &n, |b, &n| {
                let mut readers = HubReaders::new(n);
                b.iter_custom(|iters| {
                    let hub = readers.hub.clone();
                    let publish = || {
                        let event = Event::new().event(EVENT_TYPE).data(DATA);
                        black_box(hub.publish(TOPIC, event).expect("a valid event"));
                    };
                    readers_state.time(iters, n, publish, || readers.read())
                });
            });
            let id = BenchmarkId::new(format!("broadcast_{}", readers_state.name()), n);
            group.bench_with_input(id, &n, |b, &n| {
                let mut readers = BroadcastReaders::new(n);
                b.iter_custom(|iters| {
                    let (sender, bytes) = (readers.sender.clone(), readers.bytes.clone());
                    let publish = || {
                        black_box(sender.send(bytes.clone()).expect("receivers are open"));
                    };
                    readers_state.time(iters, n, publish, || readers.read())
                });
            });
        }
        // Like for like with the hub, which takes an `Event`: the publisher
        // encodes the event (with an id) once, then sends it.
        group.bench_with_input(BenchmarkId::new("broadcast_encode_busy", n), &n, |b, &n| {
            let mut readers = BroadcastReaders::new(n);
            b.iter_custom(|iters| {
                let sender = readers.sender.clone();
                let id = std::cell::Cell::new(0_u64);
                let publish = || {
                    id.set(id.get() + 1);
                    let event = Event::new().id(id.get()).event(EVENT_TYPE).data(DATA);
                    let bytes = event.encode().expect("a valid event").into_bytes();
                    black_box(sender.send(bytes).expect("receivers are open"));
                };
                Readers::Busy.time(iters, n, publish, || readers.read())
            });
        });
    }
    group.finish();
}

criterion_group!(benches, fanout, publish);
criterion_main!(benches);
