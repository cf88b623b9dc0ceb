//! End to end, one topic to many clients: the hub behind axum against what
//! an axum app does without it (a `tokio::sync::broadcast` channel of the
//! message, each connection encoding its own axum `Event`), on one server on
//! 127.0.0.1, in one run.
//!
//! ```text
//! bash -c 'ulimit -n 8192 && cargo run --release --example hub_loadtest --features axum,hub -- --clients 1000 --rates 100,1000 --seconds 5'
//! ```
//!
//! The server runs on a tokio runtime of its own (2 workers) whose threads
//! are named `server`, so its CPU time is read per thread from
//! `/proc/self/task/*/schedstat`, apart from the clients' (`client` threads)
//! and the publisher's. Routes: `/hub` (a hub subscription in a
//! `SseResponse`, keep-alive on) and `/axum` (axum's `Sse` over the
//! receiver, keep-alive on). Each event is a typical one: an id, type
//! `tick`, 256 bytes of JSON holding the time it was published.
//!
//! For each contestant in turn, `--clients` connections are opened; then a
//! publisher thread publishes at each of `--rates` (events per second to the
//! topic) for `--seconds`, after a warm-up second. Clients decode what they
//! get with `tower_sse::decode`, check that ids arrive in order without a
//! gap, and record each event's latency (publish to decode). Reported per
//! contestant and rate: deliveries per second, server CPU per delivery, and
//! latency percentiles.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::response::sse as axum_sse;
use axum::routing::get;
use futures_util::stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::broadcast;
use tower_sse::axum::SseResponse;

mod support;

use support::ThreadsCpu;
use tower_sse::decode::Decoder;
use tower_sse::hub::{Hub, HubConfig, Subscription};
use tower_sse::{BoxError, Event};

const TOPIC: &str = "ticks";
const JSON_BYTES: usize = 256;
const WARM_UP: Duration = Duration::from_secs(1);
/// Room in the broadcast channel and in the hub's lag bound: neither
/// contestant drops events at the rates measured.
const BACKLOG: usize = 16 * 1024;

/// The instant every timestamp counts from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// 256 bytes of JSON that say when they were published.
fn tick_json(published_ns: u64) -> String {
    let mut json = format!(r#"{{"t":{published_ns:020},"symbol":"ACME","pad":""#);
    while json.len() < JSON_BYTES - 2 {
        json.push('x');
    }
    json.push_str("\"}");
    json
}

fn published_ns(data: &str) -> Option<u64> {
    data.get(5..25)?.parse().ok()
}

/// The axum app's message: shared, so that each receiver's copy is a
/// reference count.
#[derive(Clone)]
struct Tick {
    id: u64,
    json: Arc<str>,
}

#[derive(Clone)]
struct App {
    hub: Hub,
    sender: broadcast::Sender<Tick>,
    /// The id of the last message broadcast.
    last_id: Arc<AtomicU64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Contestant {
    Hub,
    Axum,
}

impl Contestant {
    const ALL: [Self; 2] = [Self::Hub, Self::Axum];

    fn name(self) -> &'static str {
        match self {
            Self::Hub => "tower-sse hub",
            Self::Axum => "axum + broadcast",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Self::Hub => "/hub",
            Self::Axum => "/axum",
        }
    }
}

async fn hub_events(State(app): State<App>) -> SseResponse<Subscription> {
    SseResponse::new(app.hub.subscribe([TOPIC], None))
}

async fn axum_events(State(app): State<App>) -> impl IntoResponse {
    let events = stream::unfold(app.sender.subscribe(), |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok(tick) => {
                    let event = axum_sse::Event::default()
                        .id(tick.id.to_string())
                        .event("tick")
                        .data(&*tick.json);
                    return Some((Ok::<_, std::convert::Infallible>(event), receiver));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    axum_sse::Sse::new(events).keep_alive(axum_sse::KeepAlive::default())
}

fn start_server(app: App) -> Result<SocketAddr, BoxError> {
    let router = Router::new()
        .route("/hub", get(hub_events))
        .route("/axum", get(axum_events))
        .with_state(app);
    support::start_server(router)
}

/// Latency buckets of one microsecond, up to a second; the last one holds
/// everything slower.
const BUCKETS: usize = 1_000_001;

/// What the clients saw while `recording` was set.
struct Seen {
    deliveries: AtomicU64,
    latency_us: Vec<AtomicU64>,
    out_of_order: AtomicU64,
}

impl Seen {
    fn new() -> Self {
        Self {
            deliveries: AtomicU64::new(0),
            latency_us: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            out_of_order: AtomicU64::new(0),
        }
    }

    fn record(&self, latency_ns: u64) {
        let bucket = ((latency_ns / 1000) as usize).min(BUCKETS - 1);
        self.latency_us[bucket].fetch_add(1, Ordering::Relaxed);
        self.deliveries.fetch_add(1, Ordering::Relaxed);
    }

    fn clear(&self) {
        self.deliveries.store(0, Ordering::Relaxed);
        for bucket in &self.latency_us {
            bucket.store(0, Ordering::Relaxed);
        }
    }

    /// The latency below which a share `p` of the events arrived, in ms.
    fn percentile(&self, p: f64) -> f64 {
        let total = self.deliveries.load(Ordering::Relaxed);
        let wanted = ((total as f64 * p).ceil() as u64).max(1);
        let mut seen = 0;
        for (us, bucket) in self.latency_us.iter().enumerate() {
            seen += bucket.load(Ordering::Relaxed);
            if seen >= wanted {
                return us as f64 / 1000.0;
            }
        }
        f64::NAN
    }
}

/// One client: a raw HTTP/1.1 `GET`, then the body de-chunked and decoded
/// as it arrives.
async fn client(
    addr: SocketAddr,
    path: &'static str,
    recording: Arc<AtomicBool>,
    seen: Arc<Seen>,
) -> Result<(), BoxError> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut buf = vec![0; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut head_done = false;
    let mut body = Dechunk::default();
    let mut decoder = Decoder::new();
    let mut last_id: Option<u64> = None;
    loop {
        let read = stream.read(&mut buf).await?;
        if read == 0 {
            return Ok(());
        }
        let mut bytes = &buf[..read];
        if !head_done {
            pending.extend_from_slice(bytes);
            let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            head_done = true;
            let rest = pending.split_off(end + 4);
            pending = rest;
            bytes = &pending;
            body.push(bytes, &mut decoder);
            pending.clear();
        } else {
            body.push(bytes, &mut decoder);
        }
        let received = now_ns();
        while let Some(event) = decoder.next_event()? {
            let id: u64 = event
                .last_event_id
                .rsplit('-')
                .next()
                .unwrap_or("")
                .parse()?;
            if last_id.is_some_and(|last| id != last + 1) {
                seen.out_of_order.fetch_add(1, Ordering::Relaxed);
            }
            last_id = Some(id);
            if recording.load(Ordering::Relaxed) {
                let published = published_ns(&event.data).ok_or("no time in the data")?;
                seen.record(received.saturating_sub(published));
            }
        }
    }
}

/// Removes HTTP/1.1 chunked framing as bytes arrive and feeds the decoder.
#[derive(Default)]
struct Dechunk {
    /// Bytes left in the current chunk's data.
    left: usize,
    /// A chunk-size line being read.
    line: Vec<u8>,
    /// The CRLF after a chunk's data still to skip.
    crlf: usize,
}

impl Dechunk {
    fn push(&mut self, mut bytes: &[u8], decoder: &mut Decoder) {
        while !bytes.is_empty() {
            if self.crlf > 0 {
                let skip = self.crlf.min(bytes.len());
                self.crlf -= skip;
                bytes = &bytes[skip..];
                continue;
            }
            if self.left > 0 {
                let take = self.left.min(bytes.len());
                decoder.push(&bytes[..take]);
                self.left -= take;
                bytes = &bytes[take..];
                if self.left == 0 {
                    self.crlf = 2;
                }
                continue;
            }
            match bytes.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    self.line.extend_from_slice(&bytes[..end]);
                    bytes = &bytes[end + 1..];
                    let text = String::from_utf8_lossy(&self.line);
                    self.left = usize::from_str_radix(text.trim(), 16).unwrap_or(0);
                    self.line.clear();
                }
                None => {
                    self.line.extend_from_slice(bytes);
                    bytes = &[];
                }
            }
        }
    }
}

struct Args {
    clients: usize,
    rates: Vec<u64>,
    seconds: u64,
}

impl Args {
    fn parse() -> Result<Self, BoxError> {
        let mut args = Self {
            clients: 1000,
            rates: vec![100, 1000],
            seconds: 5,
        };
        let mut iter = std::env::args().skip(1);
        while let Some(arg) = iter.next() {
            let value = iter.next().ok_or_else(|| format!("{arg} needs a value"))?;
            match arg.as_str() {
                "--clients" => args.clients = value.parse()?,
                "--seconds" => args.seconds = value.parse()?,
                "--rates" => {
                    args.rates = value.split(',').map(str::parse).collect::<Result<_, _>>()?;
                }
                other => return Err(format!("unknown option {other}").into()),
            }
        }
        Ok(args)
    }
}

/// Publishes `rate` events per second to the contestant until `stop`.
fn publisher(app: App, contestant: Contestant, rate: u64, stop: Arc<AtomicBool>) {
    let period = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let start = Instant::now();
    let mut sent = 0_u32;
    while !stop.load(Ordering::Relaxed) {
        let json = tick_json(now_ns());
        match contestant {
            Contestant::Hub => {
                let event = Event::new().event("tick").data(json);
                app.hub.publish(TOPIC, event).expect("a valid event");
            }
            Contestant::Axum => {
                let tick = Tick {
                    id: app.last_id.fetch_add(1, Ordering::Relaxed) + 1,
                    json: Arc::from(json),
                };
                let _ = app.sender.send(tick);
            }
        }
        sent += 1;
        if let Some(wait) = (start + period * sent).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

fn main() -> Result<(), BoxError> {
    let args = Args::parse()?;
    epoch();
    let (sender, _) = broadcast::channel(BACKLOG);
    let app = App {
        hub: Hub::with_config(HubConfig::new().max_lag(BACKLOG as u64)),
        sender,
        last_id: Arc::new(AtomicU64::new(0)),
    };
    let addr = start_server(app.clone())?;
    let clients_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("client")
        .enable_all()
        .build()?;
    println!(
        "# hub end to end: {} clients of one topic, {} s a rate, server 2 workers, 127.0.0.1\n",
        args.clients, args.seconds
    );
    println!(
        "| contestant | rate (events/s) | deliveries/s | server CPU per delivery | p50 latency | p99 latency | max latency |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let order: Vec<Contestant> = if std::env::var_os("AXUM_FIRST").is_some() {
        Contestant::ALL.into_iter().rev().collect()
    } else {
        Contestant::ALL.to_vec()
    };
    for contestant in order {
        let recording = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Seen::new());
        let tasks: Vec<_> = (0..args.clients)
            .map(|_| {
                clients_runtime.spawn(client(
                    addr,
                    contestant.path(),
                    Arc::clone(&recording),
                    Arc::clone(&seen),
                ))
            })
            .collect();
        // Every client connected and subscribed.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let subscribed = match contestant {
                Contestant::Hub => app.hub.metrics().subscribers,
                Contestant::Axum => app.sender.receiver_count(),
            };
            if subscribed >= args.clients {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("only {subscribed} clients connected").into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for &rate in &args.rates {
            let stop = Arc::new(AtomicBool::new(false));
            let publishing = {
                let (app, stop) = (app.clone(), Arc::clone(&stop));
                std::thread::spawn(move || publisher(app, contestant, rate, stop))
            };
            std::thread::sleep(WARM_UP);
            seen.clear();
            recording.store(true, Ordering::Relaxed);
            let cpu_before = ThreadsCpu::read("server").ns;
            let started = Instant::now();
            std::thread::sleep(Duration::from_secs(args.seconds));
            recording.store(false, Ordering::Relaxed);
            let elapsed = started.elapsed().as_secs_f64();
            let cpu = ThreadsCpu::read("server").ns - cpu_before;
            stop.store(true, Ordering::Relaxed);
            publishing.join().expect("the publisher");
            std::thread::sleep(Duration::from_millis(500));
            let deliveries = seen.deliveries.load(Ordering::Relaxed);
            println!(
                "| {} | {rate} | {:.0} | {:.0} ns | {:.2} ms | {:.2} ms | {:.2} ms |",
                contestant.name(),
                deliveries as f64 / elapsed,
                cpu as f64 / deliveries.max(1) as f64,
                seen.percentile(0.5),
                seen.percentile(0.99),
                seen.percentile(1.0),
            );
        }
        let gaps = seen.out_of_order.load(Ordering::Relaxed);
        if gaps > 0 {
            println!(
                "  {}: {gaps} events out of order or missing",
                contestant.name()
            );
        }
        for task in tasks {
            task.abort();
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}
