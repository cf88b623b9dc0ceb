//! An end-to-end load test: tower-sse behind axum against axum's own SSE, on
//! one server on 127.0.0.1, in one run.
//!
//! ```text
//! bash -c 'ulimit -n 20000 && cargo run --release --example loadtest --features axum -- --seconds 5 --idle 10000 --slow 1000'
//! ```
//!
//! Options: `--seconds N` (5) per measurement, `--idle N` (10000) idle
//! connections and `--slow N` (1000) slow clients (`0` skips either test),
//! `--shape static|shared` (`shared`) for how the events are held, and
//! `--frame-bytes N` for [`SseConfig::max_frame_bytes`] on the tower-sse
//! routes (the library's default if not given; the report's header says which).
//!
//! One axum router serves both contestants: `/tower-sse` (a
//! [`SseResponse`]) and `/axum` (axum's `Sse`), each an endless, always-ready
//! stream of typical events (id `12345`, type `update`, 256 bytes of JSON),
//! with a keep-alive every 15 s, and `?events=N` to end after `N` events. Both
//! contestants send the same events, built from data held in one of two
//! shapes:
//!
//! - `static`: the JSON a `&'static str`, the id the literal `12345`;
//! - `shared` (the default), data as applications hold it: the JSON one
//!   `Arc<str>` shared by every event (tower-sse takes `&Arc<str>` without a
//!   copy; axum gets `&str`), the id a `String` made at startup.
//!
//! The server runs on a tokio runtime of its own (2 workers) whose threads are
//! all named `server`, so its CPU time is read per thread from
//! `/proc/self/task/*/schedstat`, apart from the clients' (`client` threads).
//!
//! Clients speak raw HTTP/1.1 over TCP and count events in the raw bytes as
//! they arrive: a blank line (`\n\n`) ends an event, and the chunked encoding
//! around the events adds only `\r\n`-ended lines, two carriage returns a
//! chunk, which also count the frames the server wrote. A pre-check asks each
//! route for `?events=1000` and checks both the raw count and the de-chunked
//! body, byte for byte, whatever the shape.
//!
//! Then, for each contestant in turn: 1 client, then 64 clients, each for
//! `--seconds` after a 1 s warm-up: events/s and server CPU time per event.
//! Each client also counts its own events, so the report shows how fairly the
//! server shares itself: the fewest and the most events one connection read in
//! the measured window, and their ratio max/min (1 is perfectly even).
//!
//! Then, memory per idle connection: for each contestant a fresh server
//! process (this program, `--serve`) gets `--idle` connections to a route
//! whose stream never yields, and its resident memory is read before and
//! after. A fresh process each, so neither contestant reuses memory the other
//! freed, and the clients' memory is not counted. Both processes need a file
//! descriptor per connection: hence `ulimit -n`.
//!
//! Last, slow clients: for each contestant a fresh server process again, and
//! `--slow` clients of the always-ready stream (in the chosen shape), each
//! with a 16 KiB receive buffer asked for, reading at most 4 KiB then sleeping
//! 20 ms, over and over, for `--seconds`: slower than the server writes, so
//! the socket buffers fill and the server holds whatever it has made but
//! cannot send. The report gives the server's peak resident memory (`VmHWM`)
//! and its resident memory at the end (`VmRSS`, the connections still open),
//! in MiB, and per connection in KiB above the memory before the slow
//! connections, for both contestants and tower-sse / axum; and how fast the
//! clients read and how many of their reads found a full 4 KiB waiting (near
//! 100%: the clients were the slow side). The clients then stop by themselves
//! and the server process is ended. The descriptors needed are capped by
//! `ulimit -n` as for `--idle`.

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::response::IntoResponse;
use axum::response::sse as axum_sse;
use axum::routing::get;
use futures_util::stream::{self, Stream, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::runtime::Runtime;
use tower_sse::axum::SseResponse;

mod support;

use support::{ThreadsCpu, user_system_ticks};
use tower_sse::{BoxError, Event, KeepAlive, SseConfig};

const EVENT_ID: u32 = 12345;
const JSON_BYTES: usize = 256;
const KEEP_ALIVE: Duration = Duration::from_secs(15);
const WARM_UP: Duration = Duration::from_secs(1);
const MANY_CLIENTS: usize = 64;
const CHECK_EVENTS: u64 = 1000;
const READ_BUFFER: usize = 256 * 1024;
/// Connections being opened at once in the idle test: well under the
/// listener's backlog, so that no SYN is dropped and retried a second later.
const OPENING_AT_ONCE: usize = 128;
/// File descriptors kept for everything but the idle connections.
const SPARE_FDS: u64 = 100;
/// A child server process exits by itself after this long, whatever happens.
const CHILD_LIFETIME: Duration = Duration::from_secs(300);
/// A slow client reads at most this much at a time...
const SLOW_READ: usize = 4 * 1024;
/// ...then sleeps this long: 200 KiB/s at most, less than the server writes.
const SLOW_PAUSE: Duration = Duration::from_millis(20);
/// The receive buffer asked for each slow client's socket (Linux doubles it),
/// the same for both contestants: the socket buffers fill within a few pauses.
const SLOW_RECV_BUFFER: u32 = 16 * 1024;

fn main() -> Result<(), BoxError> {
    let args = Args::parse(std::env::args().skip(1))?;
    if args.serve {
        return serve_child(args.server());
    }

    let machine = Machine::read();
    println!("# tower-sse end-to-end load test\n");
    println!("{machine}\n");

    let json: &'static str = Box::leak(typical_json().into_boxed_str());
    let addr = start_server(args.server())?;
    println!("server: http://{addr} (2 worker threads)");
    println!("{}", args.settings());

    for contestant in Contestant::ALL {
        check(addr, contestant, json)?;
        println!(
            "pre-check {} ({}): {CHECK_EVENTS} events counted, body exact, connection closed",
            contestant.name(),
            args.shape.name()
        );
    }

    let mut throughput = Vec::new();
    for clients in [1, MANY_CLIENTS] {
        for contestant in Contestant::ALL {
            let result = measure_throughput(addr, contestant, clients, args.seconds)?;
            println!(
                "{clients:>2} client(s), {:<9}: {:>10.0} events/s, {:>6.0} ns server CPU/event, \
                 events/connection min {} max {} (max/min {:.2})",
                contestant.name(),
                result.events_per_s(),
                result.server_ns_per_event(),
                result.min_per_client,
                result.max_per_client,
                result.fairness(),
            );
            throughput.push((clients, contestant, result));
            // Lets the server drop the connections just closed.
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    let idle_connections = fit_fd_limit(args.idle, "idle");
    let mut idle = Vec::new();
    for contestant in Contestant::ALL.into_iter().filter(|_| idle_connections > 0) {
        let result = measure_idle(&args, contestant, idle_connections)?;
        println!(
            "idle {:<9}: {} connections, {:.1} KiB/connection",
            contestant.name(),
            result.connections,
            result.kib_per_connection()
        );
        idle.push((contestant, result));
    }

    let slow_connections = fit_fd_limit(args.slow, "slow");
    let mut slow = Vec::new();
    for contestant in Contestant::ALL.into_iter().filter(|_| slow_connections > 0) {
        let result = measure_slow(&args, contestant, slow_connections)?;
        println!(
            "slow {:<9}: {} connections, peak RSS {:.1} MiB ({:.1} KiB/connection), \
             end RSS {:.1} MiB ({:.1} KiB/connection), clients read {:.0} KiB/s each, \
             {:.0}% of reads full",
            contestant.name(),
            result.connections,
            result.peak_mib(),
            result.peak_kib_per_connection(),
            result.end_mib(),
            result.end_kib_per_connection(),
            result.read_kib_per_s_per_connection(),
            result.full_read_share() * 100.0,
        );
        slow.push((contestant, result));
    }
    if let [(_, ours), (_, theirs)] = slow.as_slice() {
        println!(
            "slow tower-sse / axum: peak RSS {:.2}x, end RSS {:.2}x, \
             peak KiB/connection {:.2}x, end KiB/connection {:.2}x",
            ours.peak_mib() / theirs.peak_mib(),
            ours.end_mib() / theirs.end_mib(),
            ours.peak_kib_per_connection() / theirs.peak_kib_per_connection(),
            ours.end_kib_per_connection() / theirs.end_kib_per_connection(),
        );
    }

    report(&machine, &args, &throughput, &idle, &slow);
    Ok(())
}

const USAGE: &str = "usage: loadtest [--seconds N] [--idle N] [--slow N] \
                     [--shape static|shared] [--frame-bytes N]";

struct Args {
    seconds: u64,
    idle: u64,
    slow: u64,
    shape: Shape,
    frame_bytes: Option<usize>,
    /// Be a child server process (`--serve`, or `--serve-idle` as before).
    serve: bool,
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, BoxError> {
        let mut parsed = Self {
            seconds: 5,
            idle: 10_000,
            slow: 1000,
            shape: Shape::Shared,
            frame_bytes: None,
            serve: false,
        };
        while let Some(arg) = args.next() {
            let mut value = |name: &str| -> Result<String, BoxError> {
                Ok(args
                    .next()
                    .ok_or(format!("{name} needs a value; {USAGE}"))?)
            };
            let number = |name: &str, value: String| -> Result<u64, BoxError> {
                value
                    .parse()
                    .map_err(|_| format!("{name}: not a number: {value}").into())
            };
            match arg.as_str() {
                "--seconds" => parsed.seconds = number(&arg, value(&arg)?)?.max(1),
                "--idle" => parsed.idle = number(&arg, value(&arg)?)?,
                "--slow" => parsed.slow = number(&arg, value(&arg)?)?,
                "--shape" => parsed.shape = Shape::parse(&value(&arg)?)?,
                "--frame-bytes" => {
                    let bytes = number(&arg, value(&arg)?)?;
                    parsed.frame_bytes = Some(usize::try_from(bytes)?);
                }
                "--serve" | "--serve-idle" => parsed.serve = true,
                other => return Err(format!("unknown argument {other}; {USAGE}").into()),
            }
        }
        Ok(parsed)
    }

    /// What a server needs to know, in this process or a child.
    fn server(&self) -> ServerSettings {
        ServerSettings {
            shape: self.shape,
            frame_bytes: self.frame_bytes,
        }
    }

    /// The shape of the events and tower-sse's frame bound, for the reports.
    fn settings(&self) -> String {
        let frame_bytes = match self.frame_bytes {
            Some(bytes) => format!("{bytes} (--frame-bytes)"),
            None => format!("{} (library default)", SseConfig::DEFAULT_MAX_FRAME_BYTES),
        };
        format!(
            "shape: {} ({}); tower-sse max_frame_bytes: {frame_bytes}",
            self.shape.name(),
            self.shape.describe()
        )
    }
}

/// How the events' data and id are held.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// The JSON a `&'static str`, the id a literal.
    Static,
    /// The JSON one `Arc<str>` shared by every event, the id a `String` made
    /// at startup: data as applications hold it.
    Shared,
}

impl Shape {
    fn parse(name: &str) -> Result<Self, BoxError> {
        match name {
            "static" => Ok(Self::Static),
            "shared" => Ok(Self::Shared),
            other => Err(format!("--shape: static or shared, not {other}").into()),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Static => "static",
            Self::Shared => "shared",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Static => "JSON a &'static str, id a literal",
            Self::Shared => "JSON one Arc<str> for every event, id a String made at startup",
        }
    }
}

/// What a server process serves: the shape of the events and tower-sse's
/// frame bound.
#[derive(Clone, Copy)]
struct ServerSettings {
    shape: Shape,
    frame_bytes: Option<usize>,
}

impl ServerSettings {
    /// The arguments that make a child server process serve the same.
    fn child_args(self) -> Vec<String> {
        let mut args = vec!["--serve".into(), "--shape".into(), self.shape.name().into()];
        if let Some(bytes) = self.frame_bytes {
            args.extend(["--frame-bytes".into(), bytes.to_string()]);
        }
        args
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Contestant {
    TowerSse,
    Axum,
}

impl Contestant {
    const ALL: [Self; 2] = [Self::TowerSse, Self::Axum];

    fn name(self) -> &'static str {
        match self {
            Self::TowerSse => "tower-sse",
            Self::Axum => "axum",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Self::TowerSse => "/tower-sse",
            Self::Axum => "/axum",
        }
    }

    fn idle_path(self) -> &'static str {
        match self {
            Self::TowerSse => "/tower-sse/idle",
            Self::Axum => "/axum/idle",
        }
    }
}

/// 256 bytes of JSON with no line breaks, built once.
fn typical_json() -> String {
    let head =
        r#"{"type":"update","symbol":"TWR","price":101.25,"volume":123456,"seq":12345,"note":""#;
    let tail = r#""}"#;
    let mut json = String::with_capacity(JSON_BYTES);
    json.push_str(head);
    json.extend(std::iter::repeat_n(
        'x',
        JSON_BYTES - head.len() - tail.len(),
    ));
    json.push_str(tail);
    debug_assert_eq!(json.len(), JSON_BYTES);
    json
}

// ---- The server ------------------------------------------------------------

#[derive(Clone)]
struct App {
    /// The JSON of the `static` shape.
    json: &'static str,
    /// The JSON of the `shared` shape: one allocation for every event.
    shared_json: Arc<str>,
    /// The id of the `shared` shape, made at startup.
    id: String,
    config: SseConfig,
}

fn router(settings: ServerSettings) -> Router {
    let mut config = SseConfig::new().keep_alive(KeepAlive::new().interval(KEEP_ALIVE));
    if let Some(bytes) = settings.frame_bytes {
        config = config.max_frame_bytes(bytes);
    }
    let app = App {
        json: Box::leak(typical_json().into_boxed_str()),
        shared_json: Arc::from(typical_json()),
        id: EVENT_ID.to_string(),
        config,
    };
    let (tower_sse, axum) = match settings.shape {
        Shape::Static => (get(tower_sse_events), get(axum_events)),
        Shape::Shared => (get(tower_sse_shared), get(axum_shared)),
    };
    Router::new()
        .route("/tower-sse", tower_sse)
        .route("/tower-sse/idle", get(tower_sse_idle))
        .route("/axum", axum)
        .route("/axum/idle", get(axum_idle))
        .with_state(app)
}

/// The `shared` shape: the events' JSON one `Arc<str>` (`&Arc<str>` becomes
/// event data without a copy), the id a `String`.
async fn tower_sse_shared(
    State(app): State<App>,
    RawQuery(query): RawQuery,
) -> SseResponse<impl Stream<Item = Event> + Send> {
    let (json, id) = (app.shared_json, app.id);
    let events =
        stream::repeat_with(move || Event::new().id(id.as_str()).event("update").data(&json))
            .take(event_limit(query.as_deref()));
    SseResponse::new(events).config(app.config)
}

/// The `shared` shape, the same events, for axum.
async fn axum_shared(State(app): State<App>, RawQuery(query): RawQuery) -> impl IntoResponse {
    let (json, id) = (app.shared_json, app.id);
    let events = stream::repeat_with(move || {
        Ok::<_, Infallible>(
            axum_sse::Event::default()
                .id(id.as_str())
                .event("update")
                .data(&*json),
        )
    })
    .take(event_limit(query.as_deref()));
    axum_sse::Sse::new(events).keep_alive(axum_sse::KeepAlive::new().interval(KEEP_ALIVE))
}

/// The `static` shape: the JSON a `&'static str`, the id a literal.
async fn tower_sse_events(
    State(app): State<App>,
    RawQuery(query): RawQuery,
) -> SseResponse<impl Stream<Item = Event> + Send> {
    let json = app.json;
    let events = stream::repeat_with(move || Event::new().id(EVENT_ID).event("update").data(json))
        .take(event_limit(query.as_deref()));
    SseResponse::new(events).config(app.config)
}

async fn tower_sse_idle(State(app): State<App>) -> SseResponse<impl Stream<Item = Event> + Send> {
    SseResponse::new(stream::pending()).config(app.config)
}

async fn axum_events(State(app): State<App>, RawQuery(query): RawQuery) -> impl IntoResponse {
    let json = app.json;
    let events = stream::repeat_with(move || {
        Ok::<_, Infallible>(
            axum_sse::Event::default()
                .id("12345")
                .event("update")
                .data(json),
        )
    })
    .take(event_limit(query.as_deref()));
    axum_sse::Sse::new(events).keep_alive(axum_sse::KeepAlive::new().interval(KEEP_ALIVE))
}

async fn axum_idle() -> impl IntoResponse {
    let events = stream::pending::<Result<axum_sse::Event, Infallible>>();
    axum_sse::Sse::new(events).keep_alive(axum_sse::KeepAlive::new().interval(KEEP_ALIVE))
}

/// `events=N` in the query ends the stream after `N` events.
fn event_limit(query: Option<&str>) -> usize {
    query
        .into_iter()
        .flat_map(|query| query.split('&'))
        .find_map(|pair| pair.strip_prefix("events=")?.parse().ok())
        .unwrap_or(usize::MAX)
}

/// Serves the router on 127.0.0.1 from threads of its own, all named
/// `server`, for as long as the process lives.
fn start_server(settings: ServerSettings) -> Result<SocketAddr, BoxError> {
    support::start_server(router(settings))
}

/// `--serve` (or `--serve-idle`): a server process of its own for the idle
/// and slow-client tests, serving the same router (with `--shape` and
/// `--frame-bytes`). It prints its address and serves until its standard
/// input closes.
fn serve_child(settings: ServerSettings) -> Result<(), BoxError> {
    std::thread::spawn(|| {
        std::thread::sleep(CHILD_LIFETIME);
        eprintln!("child server: still running after {CHILD_LIFETIME:?}, exiting");
        std::process::exit(2);
    });
    let addr = start_server(settings)?;
    println!("listening {addr}");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    Ok(())
}

// ---- Clients ---------------------------------------------------------------

fn request(path: &str, close: bool) -> String {
    let connection = if close { "connection: close\r\n" } else { "" };
    format!(
        "GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: text/event-stream\r\n{connection}\r\n"
    )
}

/// Reads a response head into `buf`; returns the head's length and how many
/// bytes of `buf` are filled (the head and the body's first bytes).
async fn read_head(stream: &mut TcpStream, buf: &mut [u8]) -> Result<(usize, usize), BoxError> {
    let mut filled = 0;
    loop {
        if let Some(end) = find(&buf[..filled], b"\r\n\r\n") {
            let head = &buf[..end + 4];
            if !head.starts_with(b"HTTP/1.1 200 ") {
                let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
                return Err(
                    format!("unexpected response: {}", String::from_utf8_lossy(line)).into(),
                );
            }
            return Ok((end + 4, filled));
        }
        if filled == buf.len() {
            return Err("response head too long".into());
        }
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Err("connection closed before the response head".into());
        }
        filled += n;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Counts, across reads, the blank lines that end events (`\n\n`) and the
/// carriage returns of the chunked encoding (two a chunk) in a response body's
/// raw bytes. Events hold no `\r`, and a chunk's framing never makes a `\n\n`.
#[derive(Default)]
struct Scan {
    last_was_lf: bool,
}

impl Scan {
    /// Returns (events, carriage returns) in `bytes`.
    fn feed(&mut self, bytes: &[u8]) -> (u64, u64) {
        let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
            return (0, 0);
        };
        let across = u64::from(self.last_was_lf && first == b'\n');
        self.last_was_lf = last == b'\n';
        (across + count_lf_pairs(bytes), count_byte(bytes, b'\r'))
    }
}

// The client must read faster than the server writes: these count in blocks
// of at most 255 bytes with a `u8` sum, which the compiler vectorizes (about
// ten times faster than a plain `filter().count()`).
const BLOCK: usize = 255;

fn count_byte(bytes: &[u8], byte: u8) -> u64 {
    bytes
        .chunks(BLOCK)
        .map(|block| {
            let count = block.iter().map(|&b| u8::from(b == byte));
            u64::from(count.fold(0, u8::wrapping_add))
        })
        .sum()
}

/// The `\n\n` in `bytes`, overlapping ones included.
fn count_lf_pairs(bytes: &[u8]) -> u64 {
    let Some(next) = bytes.get(1..) else {
        return 0;
    };
    bytes
        .chunks(BLOCK)
        .zip(next.chunks(BLOCK))
        .map(|(this, next)| {
            let pairs = this.iter().zip(next);
            let count = pairs.map(|(&a, &b)| u8::from(a == b'\n') & u8::from(b == b'\n'));
            u64::from(count.fold(0, u8::wrapping_add))
        })
        .sum()
}

/// What the clients of one measurement have read so far.
#[derive(Default)]
struct Counters {
    events: AtomicU64,
    crs: AtomicU64,
    bytes: AtomicU64,
    reads: AtomicU64,
    /// The events each client has read, by client: how evenly the server
    /// shares itself between connections.
    per_client: Vec<ClientEvents>,
}

impl Counters {
    fn new(clients: usize) -> Self {
        Self {
            per_client: (0..clients).map(|_| ClientEvents::default()).collect(),
            ..Self::default()
        }
    }
}

/// One client's event count, on a cache line of its own so that clients on
/// different threads do not slow each other down.
#[derive(Default)]
#[repr(align(128))]
struct ClientEvents(AtomicU64);

/// Reads an event stream until `stop`, counting as it goes.
async fn read_events(
    addr: SocketAddr,
    path: &'static str,
    client: usize,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) -> Result<(), BoxError> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(request(path, false).as_bytes()).await?;
    let mut buf = vec![0; READ_BUFFER];
    let (head, filled) = read_head(&mut stream, &mut buf).await?;
    let mut scan = Scan::default();
    let mut bytes = &buf[head..filled];
    loop {
        let (events, crs) = scan.feed(bytes);
        counters.events.fetch_add(events, Ordering::Relaxed);
        counters.per_client[client]
            .0
            .fetch_add(events, Ordering::Relaxed);
        counters.crs.fetch_add(crs, Ordering::Relaxed);
        counters
            .bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        counters.reads.fetch_add(1, Ordering::Relaxed);
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err("the server ended an endless stream".into());
        }
        bytes = &buf[..n];
    }
}

/// Asks `route?events=1000` and checks the raw count, the body byte for byte,
/// and that the response ends.
fn check(addr: SocketAddr, contestant: Contestant, json: &'static str) -> Result<(), BoxError> {
    let expected = Event::new()
        .id(EVENT_ID)
        .event("update")
        .data(json)
        .encode()?
        .into_bytes();
    let runtime = client_runtime(1)?;
    let response = runtime.block_on(async {
        let exchange = async {
            let mut stream = TcpStream::connect(addr).await?;
            let path = format!("{}?events={CHECK_EVENTS}", contestant.path());
            stream.write_all(request(&path, true).as_bytes()).await?;
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await?;
            Ok::<_, BoxError>(response)
        };
        tokio::time::timeout(Duration::from_secs(10), exchange).await
    });
    let response = response.map_err(|_| format!("{}: no end in 10 s", contestant.name()))??;
    let name = contestant.name();
    let head_end = find(&response, b"\r\n\r\n").ok_or(format!("{name}: no response head"))? + 4;
    let head = String::from_utf8_lossy(&response[..head_end]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200 ")
        || !head.contains("content-type: text/event-stream")
        || !head.contains("transfer-encoding: chunked")
    {
        return Err(format!("{name}: unexpected response head:\n{head}").into());
    }
    let body = &response[head_end..];
    let (events, _) = Scan::default().feed(body);
    if events != CHECK_EVENTS {
        return Err(format!("{name}: counted {events} events, not {CHECK_EVENTS}").into());
    }
    let content = dechunk(body).map_err(|error| format!("{name}: {error}"))?;
    let exact = content.len() == expected.len() * CHECK_EVENTS as usize
        && content
            .chunks(expected.len())
            .all(|event| event == expected);
    if !exact {
        return Err(format!("{name}: the body is not {CHECK_EVENTS} typical events").into());
    }
    Ok(())
}

/// The content of a chunked body, which must end with its last chunk.
fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut content = Vec::new();
    loop {
        let line_end = find(body, b"\r\n").ok_or("a chunk size line without an end")?;
        let size = std::str::from_utf8(&body[..line_end])
            .ok()
            .and_then(|size| usize::from_str_radix(size, 16).ok())
            .ok_or("a chunk size that is not hexadecimal")?;
        body = &body[line_end + 2..];
        if size == 0 {
            return if body == b"\r\n" {
                Ok(content)
            } else {
                Err("bytes after the last chunk".into())
            };
        }
        if body.len() < size + 2 || &body[size..size + 2] != b"\r\n" {
            return Err("a chunk shorter than its size".into());
        }
        content.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

fn client_runtime(threads: usize) -> std::io::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("client")
        .enable_all()
        .build()
}

// ---- Throughput ------------------------------------------------------------

/// The counters and CPU times at one moment.
struct Sample {
    at: Instant,
    events: u64,
    per_client: Vec<u64>,
    crs: u64,
    bytes: u64,
    reads: u64,
    server: ThreadsCpu,
    client: ThreadsCpu,
    others_ticks: u64,
}

impl Sample {
    fn take(counters: &Counters) -> Self {
        Self {
            at: Instant::now(),
            events: counters.events.load(Ordering::Relaxed),
            per_client: (counters.per_client.iter())
                .map(|client| client.0.load(Ordering::Relaxed))
                .collect(),
            crs: counters.crs.load(Ordering::Relaxed),
            bytes: counters.bytes.load(Ordering::Relaxed),
            reads: counters.reads.load(Ordering::Relaxed),
            server: ThreadsCpu::read("server"),
            client: ThreadsCpu::read("client"),
            others_ticks: others_cpu_ticks(),
        }
    }
}

/// What happened between two samples.
struct Throughput {
    seconds: f64,
    events: u64,
    /// The fewest and the most events one connection read.
    min_per_client: u64,
    max_per_client: u64,
    frames: u64,
    bytes: u64,
    reads: u64,
    server: ThreadsCpu,
    client: ThreadsCpu,
    others_ticks: u64,
}

impl Throughput {
    fn between(before: Sample, after: Sample) -> Self {
        let per_client: Vec<u64> = (after.per_client.iter())
            .zip(&before.per_client)
            .map(|(after, before)| after - before)
            .collect();
        Self {
            seconds: (after.at - before.at).as_secs_f64(),
            events: after.events - before.events,
            min_per_client: per_client.iter().copied().min().unwrap_or(0),
            max_per_client: per_client.iter().copied().max().unwrap_or(0),
            frames: (after.crs - before.crs) / 2,
            bytes: after.bytes - before.bytes,
            reads: after.reads - before.reads,
            server: after.server.since(before.server),
            client: after.client.since(before.client),
            others_ticks: after.others_ticks.saturating_sub(before.others_ticks),
        }
    }

    fn events_per_s(&self) -> f64 {
        self.events as f64 / self.seconds
    }

    fn server_ns_per_event(&self) -> f64 {
        self.server.ns as f64 / self.events.max(1) as f64
    }

    /// The most events one connection read over the fewest: 1 is perfectly
    /// fair; infinite if a connection read nothing.
    fn fairness(&self) -> f64 {
        self.max_per_client as f64 / self.min_per_client as f64
    }

    fn client_ns_per_event(&self) -> f64 {
        self.client.ns as f64 / self.events.max(1) as f64
    }

    fn server_cores(&self) -> f64 {
        self.server.ns as f64 / 1e9 / self.seconds
    }

    fn client_cores(&self) -> f64 {
        self.client.ns as f64 / 1e9 / self.seconds
    }

    fn others_cores(&self) -> f64 {
        self.others_ticks as f64 / USER_HZ / self.seconds
    }

    fn events_per_frame(&self) -> f64 {
        self.events as f64 / self.frames.max(1) as f64
    }

    fn kib_per_read(&self) -> f64 {
        self.bytes as f64 / 1024.0 / self.reads.max(1) as f64
    }

    fn mib_per_s(&self) -> f64 {
        self.bytes as f64 / (1024.0 * 1024.0) / self.seconds
    }
}

fn measure_throughput(
    addr: SocketAddr,
    contestant: Contestant,
    clients: usize,
    seconds: u64,
) -> Result<Throughput, BoxError> {
    let runtime = client_runtime(clients.min(2))?;
    let counters = Arc::new(Counters::new(clients));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let path = contestant.path();
            let task = read_events(addr, path, client, counters.clone(), stop.clone());
            runtime.spawn(task)
        })
        .collect();

    std::thread::sleep(WARM_UP);
    let before = Sample::take(&counters);
    std::thread::sleep(Duration::from_secs(seconds));
    let after = Sample::take(&counters);
    stop.store(true, Ordering::Relaxed);

    let ended = runtime.block_on(async {
        let all = futures_util::future::join_all(tasks);
        tokio::time::timeout(Duration::from_secs(10), all).await
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    for result in ended.map_err(|_| "clients did not stop in 10 s")? {
        result?.map_err(|error| format!("{} client: {error}", contestant.name()))?;
    }
    Ok(Throughput::between(before, after))
}

/// The unit of `/proc/stat` and `/proc/<pid>/stat` times: `USER_HZ`, 100 on
/// Linux whatever the kernel's tick rate.
const USER_HZ: f64 = 100.0;

/// The CPU time, in `USER_HZ` ticks, that every process but this one has used
/// since boot: other work on the machine competes with the measurement.
fn others_cpu_ticks() -> u64 {
    let busy = std::fs::read_to_string("/proc/stat").ok().and_then(|stat| {
        let times: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .map_while(|field| field.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal: all but idle, iowait.
        let busy = times.get(..8)?;
        Some(busy[0] + busy[1] + busy[2] + busy[5] + busy[6] + busy[7])
    });
    let ours = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| user_system_ticks(&stat))
        .map(|(user, system)| user + system);
    busy.zip(ours)
        .map_or(0, |(busy, ours)| busy.saturating_sub(ours))
}

// ---- Idle connections ------------------------------------------------------

struct Idle {
    connections: u64,
    rss_before_kib: u64,
    rss_after_kib: u64,
}

impl Idle {
    fn kib_per_connection(&self) -> f64 {
        self.rss_after_kib.saturating_sub(self.rss_before_kib) as f64 / self.connections as f64
    }
}

/// Ends a child process that is still running when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !matches!(self.0.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a child server process (this program, `--serve`) serving what
/// `args` asks for; returns it, its process id and its address.
fn spawn_server(args: &Args) -> Result<(ChildGuard, u32, SocketAddr), BoxError> {
    let child = Command::new(std::env::current_exe()?)
        .args(args.server().child_args())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut child = ChildGuard(child);
    let pid = child.0.id();
    let stdout = child
        .0
        .stdout
        .take()
        .ok_or("no stdout from the child server")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening ")
        .and_then(|addr| addr.parse().ok())
        .ok_or_else(|| format!("child server said {line:?}"))?;
    Ok((child, pid, addr))
}

fn measure_idle(args: &Args, contestant: Contestant, connections: u64) -> Result<Idle, BoxError> {
    let (child, pid, addr) = spawn_server(args)?;
    let path = contestant.idle_path();
    let runtime = client_runtime(2)?;
    let idle = runtime.block_on(async {
        // First connections pay for what every server pays once.
        drop(open_many(addr, path, 64, None).await?);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_before_kib = status_kib(pid, "VmRSS")?;
        let open = open_many(addr, path, connections, None).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss_after_kib = status_kib(pid, "VmRSS")?;
        drop(open);
        Ok::<_, BoxError>(Idle {
            connections,
            rss_before_kib,
            rss_after_kib,
        })
    })?;
    runtime.shutdown_timeout(Duration::from_secs(1));
    drop(child);
    Ok(idle)
}

/// Opens `count` SSE connections to `path`, each with a receive buffer of
/// `recv_buffer` bytes when given, and waits for every response head.
async fn open_many(
    addr: SocketAddr,
    path: &str,
    count: u64,
    recv_buffer: Option<u32>,
) -> Result<Vec<TcpStream>, BoxError> {
    let request = request(path, false);
    let open = stream::iter(0..count)
        .map(|_| async {
            let socket = TcpSocket::new_v4()?;
            if let Some(size) = recv_buffer {
                socket.set_recv_buffer_size(size)?;
            }
            let mut stream = socket.connect(addr).await?;
            stream.write_all(request.as_bytes()).await?;
            read_head(&mut stream, &mut [0; 1024]).await?;
            Ok::<_, BoxError>(stream)
        })
        .buffer_unordered(OPENING_AT_ONCE)
        .collect::<Vec<_>>();
    let opened = tokio::time::timeout(Duration::from_secs(120), open)
        .await
        .map_err(|_| format!("{count} connections not open in 120 s"))?;
    opened.into_iter().collect()
}

/// A memory figure of a process, in KiB, from `/proc/<pid>/status`: `VmRSS`
/// (resident now) or `VmHWM` (the most it has been resident).
fn status_kib(pid: u32, field: &str) -> Result<u64, BoxError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|kib| kib.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no {field} in /proc/<pid>/status").into())
}

// ---- Slow clients ----------------------------------------------------------

/// One figure of a slow-client measurement, for the report.
type SlowFigure = fn(&Slow) -> f64;

struct Slow {
    connections: u64,
    seconds: f64,
    /// Resident memory once warm, before the slow connections.
    rss_before_kib: u64,
    /// The most the process has had resident (`VmHWM`), at the end.
    peak_kib: u64,
    /// Resident memory at the end, the connections still open.
    rss_end_kib: u64,
    /// What the clients read in the measured window.
    bytes: u64,
    reads: u64,
    full_reads: u64,
}

impl Slow {
    fn peak_mib(&self) -> f64 {
        self.peak_kib as f64 / 1024.0
    }

    fn end_mib(&self) -> f64 {
        self.rss_end_kib as f64 / 1024.0
    }

    /// Above the memory before the slow connections.
    fn peak_kib_per_connection(&self) -> f64 {
        self.peak_kib.saturating_sub(self.rss_before_kib) as f64 / self.connections as f64
    }

    /// Above the memory before the slow connections.
    fn end_kib_per_connection(&self) -> f64 {
        self.rss_end_kib.saturating_sub(self.rss_before_kib) as f64 / self.connections as f64
    }

    fn read_kib_per_s_per_connection(&self) -> f64 {
        self.bytes as f64 / 1024.0 / self.seconds / self.connections as f64
    }

    /// The reads that found a full [`SLOW_READ`] waiting: near 1 when the
    /// clients are slower than the server and the socket buffers stay full.
    fn full_read_share(&self) -> f64 {
        self.full_reads as f64 / self.reads.max(1) as f64
    }
}

/// What the slow clients have read so far.
#[derive(Default)]
struct SlowCounters {
    bytes: AtomicU64,
    reads: AtomicU64,
    full_reads: AtomicU64,
}

/// `connections` slow clients of the always-ready stream, on a fresh server
/// process, for `--seconds`: its peak and final resident memory.
fn measure_slow(args: &Args, contestant: Contestant, connections: u64) -> Result<Slow, BoxError> {
    let (child, pid, addr) = spawn_server(args)?;
    let runtime = client_runtime(2)?;
    let counters = Arc::new(SlowCounters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (rss_before_kib, open) = runtime.block_on(async {
        // First connections pay for what every server pays once.
        drop(open_many(addr, contestant.idle_path(), 64, None).await?);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_before_kib = status_kib(pid, "VmRSS")?;
        let open = open_many(addr, contestant.path(), connections, Some(SLOW_RECV_BUFFER)).await?;
        Ok::<_, BoxError>((rss_before_kib, open))
    })?;
    let tasks: Vec<_> = open
        .into_iter()
        .map(|stream| runtime.spawn(read_slowly(stream, counters.clone(), stop.clone())))
        .collect();

    let take = || {
        (
            Instant::now(),
            counters.bytes.load(Ordering::Relaxed),
            counters.reads.load(Ordering::Relaxed),
            counters.full_reads.load(Ordering::Relaxed),
        )
    };
    let before = take();
    std::thread::sleep(Duration::from_secs(args.seconds));
    let after = take();
    let peak_kib = status_kib(pid, "VmHWM")?;
    let rss_end_kib = status_kib(pid, "VmRSS")?;
    stop.store(true, Ordering::Relaxed);

    let ended = runtime.block_on(async {
        let all = futures_util::future::join_all(tasks);
        tokio::time::timeout(Duration::from_secs(10), all).await
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    drop(child);
    for result in ended.map_err(|_| "slow clients did not stop in 10 s")? {
        result?.map_err(|error| format!("{} slow client: {error}", contestant.name()))?;
    }
    Ok(Slow {
        connections,
        seconds: (after.0 - before.0).as_secs_f64(),
        rss_before_kib,
        peak_kib,
        rss_end_kib,
        bytes: after.1 - before.1,
        reads: after.2 - before.2,
        full_reads: after.3 - before.3,
    })
}

/// Reads at most [`SLOW_READ`] bytes, sleeps [`SLOW_PAUSE`], and again, until
/// `stop`.
async fn read_slowly(
    mut stream: TcpStream,
    counters: Arc<SlowCounters>,
    stop: Arc<AtomicBool>,
) -> Result<(), BoxError> {
    let mut buf = vec![0; SLOW_READ];
    while !stop.load(Ordering::Relaxed) {
        // A read that waits long is cut short, to look at `stop` again.
        let Ok(read) =
            tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await
        else {
            continue;
        };
        let n = read?;
        if n == 0 {
            return Err("the server ended an endless stream".into());
        }
        counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
        counters.reads.fetch_add(1, Ordering::Relaxed);
        if n == SLOW_READ {
            counters.full_reads.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(SLOW_PAUSE).await;
    }
    Ok(())
}

/// Lowers a connection count to what the open-file limit allows: the client
/// side and each server process need a descriptor per connection.
fn fit_fd_limit(wanted: u64, what: &str) -> u64 {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits
                .lines()
                .find(|line| line.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse::<u64>().ok()
        });
    match soft {
        Some(soft) if soft < wanted + SPARE_FDS => {
            let fits = soft.saturating_sub(SPARE_FDS);
            eprintln!(
                "warning: open files limited to {soft}: {fits} {what} connections, not {wanted} \
                 (raise it with `ulimit -n {}`)",
                wanted + SPARE_FDS
            );
            fits
        }
        _ => wanted,
    }
}

// ---- Report ----------------------------------------------------------------

struct Machine {
    cpus: usize,
    model: String,
    kernel: String,
}

impl Machine {
    fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name")?.split_once(':'))
            .map_or("unknown".into(), |(_, model)| model.trim().to_owned());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or("unknown".into(), |release| release.trim().to_owned());
        Self {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            model,
            kernel,
        }
    }
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "machine: {} CPUs ({}), Linux {}",
            self.cpus, self.model, self.kernel
        )
    }
}

fn report(
    machine: &Machine,
    args: &Args,
    throughput: &[(usize, Contestant, Throughput)],
    idle: &[(Contestant, Idle)],
    slow: &[(Contestant, Slow)],
) {
    let find = |clients: usize, contestant: Contestant| {
        throughput
            .iter()
            .find(|(c, who, _)| *c == clients && *who == contestant)
            .map(|(_, _, result)| result)
    };
    println!("\n## Results\n");
    println!(
        "{machine}; {} s per measurement after a {} s warm-up; typical event: id, type, {JSON_BYTES} bytes of JSON\n",
        args.seconds,
        WARM_UP.as_secs()
    );
    println!("{}\n", args.settings());
    println!("| measurement | tower-sse | axum | tower-sse / axum |");
    println!("| --- | ---: | ---: | ---: |");
    for clients in [1, MANY_CLIENTS] {
        let (Some(ours), Some(theirs)) = (
            find(clients, Contestant::TowerSse),
            find(clients, Contestant::Axum),
        ) else {
            continue;
        };
        let label = if clients == 1 {
            "1 connection".to_owned()
        } else {
            format!("{clients} connections")
        };
        println!(
            "| {label}: events/s | {:.0} | {:.0} | {:.2}x |",
            ours.events_per_s(),
            theirs.events_per_s(),
            ours.events_per_s() / theirs.events_per_s()
        );
        println!(
            "| {label}: server CPU ns/event | {:.0} | {:.0} | {:.2}x |",
            ours.server_ns_per_event(),
            theirs.server_ns_per_event(),
            ours.server_ns_per_event() / theirs.server_ns_per_event()
        );
        if clients > 1 {
            println!(
                "| {label}: events/connection max/min | {:.2} | {:.2} | {:.2}x |",
                ours.fairness(),
                theirs.fairness(),
                ours.fairness() / theirs.fairness()
            );
        }
    }
    if let [(_, ours), (_, theirs)] = idle {
        println!(
            "| {} idle connections: server KiB/connection | {:.1} | {:.1} | {:.2}x |",
            ours.connections,
            ours.kib_per_connection(),
            theirs.kib_per_connection(),
            ours.kib_per_connection() / theirs.kib_per_connection()
        );
    }
    if let [(_, ours), (_, theirs)] = slow {
        let n = ours.connections;
        let rows: [(&str, SlowFigure); 4] = [
            ("server peak RSS (MiB)", Slow::peak_mib),
            ("server RSS at the end (MiB)", Slow::end_mib),
            ("server peak KiB/connection", Slow::peak_kib_per_connection),
            (
                "server KiB/connection at the end",
                Slow::end_kib_per_connection,
            ),
        ];
        for (what, value) in rows {
            println!(
                "| {n} slow connections: {what} | {:.1} | {:.1} | {:.2}x |",
                value(ours),
                value(theirs),
                value(ours) / value(theirs)
            );
        }
    }

    println!("\n### Details\n");
    println!(
        "| run | events/s | MiB/s | events/frame | KiB/read | server CPU (cores) \
         | server ns/event | of which user mode | client CPU (cores) | client ns/event \
         | other processes' CPU (cores) | min events/connection | max events/connection \
         | max/min |"
    );
    println!(
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: \
         | ---: | ---: | ---: |"
    );
    for (clients, contestant, result) in throughput {
        println!(
            "| {} × {clients} | {:.0} | {:.0} | {:.1} | {:.1} | {:.2} | {:.0} | {:.0}% | {:.2} | {:.0} | {:.2} \
             | {} | {} | {:.2} |",
            contestant.name(),
            result.events_per_s(),
            result.mib_per_s(),
            result.events_per_frame(),
            result.kib_per_read(),
            result.server_cores(),
            result.server_ns_per_event(),
            result.server.user_share() * 100.0,
            result.client_cores(),
            result.client_ns_per_event(),
            result.others_cores(),
            result.min_per_client,
            result.max_per_client,
            result.fairness(),
        );
    }
    println!();
    println!("| idle server | connections | RSS before (KiB) | RSS after (KiB) | KiB/connection |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (contestant, result) in idle {
        println!(
            "| {} | {} | {} | {} | {:.1} |",
            contestant.name(),
            result.connections,
            result.rss_before_kib,
            result.rss_after_kib,
            result.kib_per_connection()
        );
    }
    if slow.is_empty() {
        return;
    }
    println!();
    println!(
        "| slow server | connections | RSS before (KiB) | peak RSS (KiB) | RSS at the end (KiB) \
         | peak KiB/connection | KiB/connection at the end | read KiB/s/connection | full reads |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (contestant, result) in slow {
        println!(
            "| {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.0} | {:.0}% |",
            contestant.name(),
            result.connections,
            result.rss_before_kib,
            result.peak_kib,
            result.rss_end_kib,
            result.peak_kib_per_connection(),
            result.end_kib_per_connection(),
            result.read_kib_per_s_per_connection(),
            result.full_read_share() * 100.0,
        );
    }
}
