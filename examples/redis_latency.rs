//! End-to-end latency through Redis: an event published on node A reaches
//! the subscribers of node B, two `RedisHub`s with connections of their own.
//!
//! ```text
//! cargo run --release --example redis_latency --features redis
//! cargo run --release --example redis_latency --features redis -- --rate 5000 --seconds 10 --subscribers 1000
//! cargo run --release --example redis_latency --features redis -- --redis redis://127.0.0.1:6379/
//! ```
//!
//! Without `--redis`, it starts a private `redis-server` (free port,
//! temporary directory, no persistence). Node A publishes `--rate` events a
//! second for `--seconds` (one publish at a time, each awaited: past about
//! one round trip per event the achieved rate falls short, and says so);
//! each event's data holds the time just before its publish call. Each of
//! the `--subscribers` subscriptions on node B (one task each, as one
//! connection each) takes the time on receiving it. Reported: latency from
//! the publish call to each delivery (p50, p99, p99.9, max), the publish
//! call's own time, and the CPU time of this process (both nodes, the
//! publisher, the subscribers) and of redis-server, per event.

#[path = "support/cli.rs"]
mod cli;
#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis_server::{Persistence, RedisServer};
use tower_sse::hub::{RedisHub, Subscription};
use tower_sse::{BoxError, Event};

const TOPIC: &str = "latency";
/// Fixed, so that runs against a shared Redis reuse the same few keys.
const PREFIX: &str = "tower-sse:latency-example";
/// The size of each event's data, as a typical small JSON payload.
const DATA_LEN: usize = 256;

const USAGE: &str = "\
usage: redis_latency [--redis URL] [--rate N] [--seconds S] [--subscribers N]

  --redis URL        the Redis to use (default: start a private redis-server)
  --rate N           events a second published on node A (default 1000)
  --seconds S        how long to publish (default 5)
  --subscribers N    subscriptions on node B (default 100)";

struct Args {
    redis: Option<String>,
    rate: f64,
    seconds: f64,
    subscribers: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        redis: None,
        rate: 1000.0,
        seconds: 5.0,
        subscribers: 100,
    };
    let mut given = std::env::args().skip(1);
    while let Some(arg) = given.next() {
        let mut value = |name: &str| given.next().ok_or(format!("{name} needs a value"));
        let positive = |text: String, name: &str| {
            text.parse::<f64>()
                .ok()
                .filter(|value| *value > 0.0 && value.is_finite())
                .ok_or(format!("{name} must be a positive number"))
        };
        match arg.as_str() {
            "--redis" => args.redis = Some(value("--redis")?),
            "--rate" => args.rate = positive(value("--rate")?, "--rate")?,
            "--seconds" => args.seconds = positive(value("--seconds")?, "--seconds")?,
            "--subscribers" => {
                args.subscribers = value("--subscribers")?
                    .parse()
                    .ok()
                    .filter(|count| *count > 0)
                    .ok_or("--subscribers must be a positive whole number")?;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    cli::run_main(parse_args(), USAGE, run).await
}

async fn run(args: Args) -> Result<(), BoxError> {
    // Dropped (killed) at the end of `run`.
    let mut private = None;
    let url = match &args.redis {
        Some(url) => url.clone(),
        None => {
            if !on_path("redis-server") {
                return Err("redis-server not found on PATH: install it (Debian: apt-get install -y redis-server) or pass --redis URL".into());
            }
            let server = tokio::task::spawn_blocking(|| RedisServer::start(Persistence::None))
                .await?
                .ok_or("redis-server did not start")?;
            let url = server.url();
            private = Some(server);
            url
        }
    };
    let connect = |url: &str| {
        RedisHub::builder(url)
            .prefix(PREFIX)
            .timeout(Duration::from_secs(5))
            .connect()
    };
    let unreachable = |error| format!("cannot reach Redis at {url}: {error}");
    let node_a = connect(&url).await.map_err(unreachable)?;
    let node_b = connect(&url).await.map_err(unreachable)?;

    // Every time is nanoseconds since `base`, in this one process.
    let base = Instant::now();
    let ready = Arc::new(AtomicUsize::new(0));
    let subscribers: Vec<_> = (0..args.subscribers)
        .map(|_| {
            let subscription = node_b.subscribe([TOPIC], None);
            tokio::spawn(receive(subscription, base, Arc::clone(&ready)))
        })
        .collect();

    // Until every subscription is live on node B: a warm-up event every
    // 20 ms, which the subscribers do not time.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ready.load(Ordering::Relaxed) < args.subscribers {
        if Instant::now() > deadline {
            return Err("the subscribers on node B got no event within 10 s".into());
        }
        node_a
            .publish(TOPIC, Event::new().event("warmup").data("{}"))
            .await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let total = (args.rate * args.seconds).round().max(1.0) as u64;
    let mut redis_cpu = RedisCpu::connect(&url).await;
    let redis_before = redis_cpu.read().await;
    let cpu_before = ProcessCpu::read();
    let started = Instant::now();
    let mut calls = Vec::with_capacity(total as usize);
    for n in 0..total {
        let due = started + Duration::from_secs_f64(n as f64 / args.rate);
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        let sent = base.elapsed().as_nanos() as u64;
        let event = Event::new().event("tick").data(payload(sent, n));
        node_a.publish(TOPIC, event).await?;
        calls.push(base.elapsed().as_nanos() as u64 - sent);
    }
    let published_in = started.elapsed();
    node_a
        .publish(TOPIC, Event::new().event("end").data("{}"))
        .await?;

    let mut latencies = Vec::with_capacity(total as usize * args.subscribers);
    let mut cut_off = 0;
    for subscriber in subscribers {
        match tokio::time::timeout(Duration::from_secs(10), subscriber).await {
            Ok(Ok(Received { times, ended })) => {
                latencies.extend(times);
                cut_off += usize::from(!ended);
            }
            _ => cut_off += 1,
        }
    }
    let cpu = ProcessCpu::read().since(cpu_before);
    let redis_after = redis_cpu.read().await;
    let lag = node_b.metrics().hub.lag_disconnects;
    drop((node_a, node_b));
    drop(private);

    let expected = total as usize * args.subscribers;
    let delivered = latencies.len();
    latencies.sort_unstable();
    calls.sort_unstable();
    println!(
        "command: {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    println!(
        "redis: {} | {total} events of {DATA_LEN} B at {:.0}/s asked, {:.0}/s achieved | node A publishes, node B: {} subscribers",
        if args.redis.is_some() {
            url.as_str()
        } else {
            "a private redis-server"
        },
        args.rate,
        total as f64 / published_in.as_secs_f64(),
        args.subscribers,
    );
    println!(
        "deliveries: {delivered} of {expected}{}",
        if cut_off > 0 || lag > 0 {
            format!(" ({cut_off} subscribers cut off, {lag} for lag)")
        } else {
            String::new()
        }
    );
    println!();
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>10}",
        "", "p50", "p99", "p99.9", "max"
    );
    for (name, sorted) in [
        ("publish on A -> delivery on B", &latencies),
        ("publish call on A", &calls),
    ] {
        println!(
            "{name:<28} {:>10} {:>10} {:>10} {:>10}",
            micros(percentile(sorted, 50.0)),
            micros(percentile(sorted, 99.0)),
            micros(percentile(sorted, 99.9)),
            micros(sorted.last().copied()),
        );
    }
    println!();
    println!(
        "{:<28} {:>10} {:>14} {:>14}",
        "CPU time", "total", "per event", "per delivery"
    );
    println!(
        "{:<28} {:>10} {:>14} {:>14}",
        format!("this process ({:.0}% user)", cpu.user_share() * 100.0),
        format!("{:.0} ms", cpu.ns as f64 / 1e6),
        format!("{:.1} µs", cpu.ns as f64 / 1e3 / total as f64),
        format!("{:.0} ns", cpu.ns as f64 / delivered.max(1) as f64),
    );
    match (redis_before, redis_after) {
        (Some(before), Some(after)) => {
            let (user, system) = (after.0 - before.0, after.1 - before.1);
            let seconds = user + system;
            println!(
                "{:<28} {:>10} {:>14} {:>14}",
                format!(
                    "redis-server ({:.0}% user)",
                    user / seconds.max(1e-9) * 100.0
                ),
                format!("{:.0} ms", seconds * 1e3),
                format!("{:.1} µs", seconds * 1e6 / total as f64),
                "",
            );
        }
        _ => println!("redis-server: CPU time not available (INFO cpu failed)"),
    }
    Ok(())
}

/// The event's data: the publish time, the event's number, and padding to
/// [`DATA_LEN`] bytes.
fn payload(sent: u64, n: u64) -> String {
    let mut data = format!(r#"{{"sent_ns":{sent},"n":{n},"pad":""#);
    let pad = DATA_LEN.saturating_sub(data.len() + 2);
    data.extend(std::iter::repeat_n('x', pad));
    data.push_str(r#""}"#);
    data
}

/// What a subscriber on node B received.
struct Received {
    /// The latency of each timed event, in nanoseconds.
    times: Vec<u64>,
    /// Whether it got the `end` event (rather than being cut off).
    ended: bool,
}

async fn receive(
    mut subscription: Subscription,
    base: Instant,
    ready: Arc<AtomicUsize>,
) -> Received {
    let mut received = Received {
        times: Vec::new(),
        ended: false,
    };
    let mut warm = false;
    while let Some(Ok(event)) = subscription.next().await {
        let now = base.elapsed().as_nanos() as u64;
        let bytes = event.as_bytes();
        if let Some(sent) = sent_ns(bytes) {
            received.times.push(now.saturating_sub(sent));
        } else if contains(bytes, b"\nevent: warmup\n") {
            if !warm {
                warm = true;
                ready.fetch_add(1, Ordering::Relaxed);
            }
        } else if contains(bytes, b"\nevent: end\n") {
            received.ended = true;
            break;
        }
    }
    received
}

/// The `sent_ns` of an encoded `tick` event.
fn sent_ns(encoded: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"sent_ns\":";
    let at = encoded
        .windows(KEY.len())
        .position(|window| window == KEY)?
        + KEY.len();
    let digits = &encoded[at..];
    let end = digits.iter().position(|byte| !byte.is_ascii_digit())?;
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

fn percentile(sorted: &[u64], percent: f64) -> Option<u64> {
    let last = sorted.len().checked_sub(1)?;
    let rank = ((sorted.len() as f64 * percent / 100.0).ceil() as usize).saturating_sub(1);
    Some(sorted[rank.min(last)])
}

fn micros(ns: Option<u64>) -> String {
    match ns {
        Some(ns) if ns >= 10_000_000 => format!("{:.1} ms", ns as f64 / 1e6),
        Some(ns) => format!("{:.0} µs", ns as f64 / 1e3),
        None => "–".to_owned(),
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// The CPU time of this process: every thread's time on CPU (`schedstat`,
/// in nanoseconds), and the user/kernel split from `stat` (in ticks).
#[derive(Clone, Copy, Default)]
struct ProcessCpu {
    ns: u64,
    user_ticks: u64,
    system_ticks: u64,
}

impl ProcessCpu {
    fn read() -> Self {
        let mut cpu = Self::default();
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for task in tasks.flatten() {
                let schedstat = std::fs::read_to_string(task.path().join("schedstat"));
                let ns = schedstat
                    .ok()
                    .and_then(|text| text.split_whitespace().next()?.parse::<u64>().ok());
                cpu.ns += ns.unwrap_or(0);
            }
        }
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // utime and stime: fields 14 and 15, counted after the `)` that
            // ends the command's name.
            let mut fields = stat
                .rsplit_once(')')
                .map_or("", |(_, rest)| rest)
                .split_whitespace()
                .skip(11);
            cpu.user_ticks = fields
                .next()
                .and_then(|field| field.parse().ok())
                .unwrap_or(0);
            cpu.system_ticks = fields
                .next()
                .and_then(|field| field.parse().ok())
                .unwrap_or(0);
        }
        cpu
    }

    fn since(self, before: Self) -> Self {
        Self {
            ns: self.ns.saturating_sub(before.ns),
            user_ticks: self.user_ticks.saturating_sub(before.user_ticks),
            system_ticks: self.system_ticks.saturating_sub(before.system_ticks),
        }
    }

    fn user_share(self) -> f64 {
        self.user_ticks as f64 / (self.user_ticks + self.system_ticks).max(1) as f64
    }
}

/// redis-server's CPU time, from `INFO cpu`, over a connection of its own.
struct RedisCpu(Option<redis::aio::MultiplexedConnection>);

impl RedisCpu {
    async fn connect(url: &str) -> Self {
        let client = redis::Client::open(url).ok();
        let connection = match client {
            Some(client) => client.get_multiplexed_async_connection().await.ok(),
            None => None,
        };
        Self(connection)
    }

    /// `used_cpu_user` and `used_cpu_sys`, in seconds.
    async fn read(&mut self) -> Option<(f64, f64)> {
        let connection = self.0.as_mut()?;
        let info: String = redis::cmd("INFO")
            .arg("cpu")
            .query_async(connection)
            .await
            .ok()?;
        let field = |name: &str| -> Option<f64> {
            info.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))?
                .trim()
                .parse()
                .ok()
        };
        Some((field("used_cpu_user")?, field("used_cpu_sys")?))
    }
}
