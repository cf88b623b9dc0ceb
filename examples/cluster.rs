//! The dashboard of `examples/dashboard.rs` on a cluster: several server
//! nodes, each with a [`RedisHub`] of its own, share one feed through Redis.
//!
//! ```text
//! redis-server --port 6379 --save '' --appendonly no    # in another terminal
//! cargo run --example cluster --features axum,redis     # nodes on :3000 and :3001, a balancer on :3002
//! cargo run --example cluster --features axum,redis -- --nodes 3 --port 4000 --redis redis://127.0.0.1:6380/
//! ```
//!
//! The nodes run in one process, but share nothing except Redis: each has
//! its own connections and its own local state, as separate processes
//! would. Each serves the dashboard page and its event stream:
//!
//! - open `http://127.0.0.1:3000/` and `http://127.0.0.1:3001/`: both tabs get
//!   the same events, with the same ids. The feed is published through each
//!   node in turn (the clock line says which);
//! - the port after the nodes' (`:3002`) is a round-robin TCP balancer, and
//!   every stream response closes its connection when it ends: a tab opened
//!   there reconnects to the next node each time its stream ends (about once
//!   a minute) and resumes there with its `Last-Event-ID`. The terminal shows
//!   which node serves each stream;
//! - `POST /notify` (the page's form) on any node reaches every tab.
//!
//! A new tab starts from a snapshot of recent values. Each node builds its
//! own from the feed it follows (a subscription of its own), with the id of
//! the newest event in it, and the tab's stream resumes after that id: every
//! event is either in the snapshot or in the stream, as in `dashboard.rs`.
//!
//! `--no-feed` serves without publishing: run it on other ports (`--port
//! 3010 --no-feed`) beside a first process, and its nodes join the same feed
//! from another process. The metrics card counts the streams of the nodes
//! in the publishing process only.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use futures_util::stream::{self, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tower_sse::axum::SseResponse;
use tower_sse::decode::Decoder;
use tower_sse::hub::{RESYNC_EVENT, RedisHub};
use tower_sse::{BoxError, Event, LastEventIdHeader, Shutdown, SseConfigLayer};

#[path = "support/cli.rs"]
mod cli;
mod support;

use support::dashboard::{self as page, History, PAGE, Sample, TOPICS, Walk};

/// The prefix of the cluster's keys in Redis.
const PREFIX: &str = "tower-sse:cluster-example";

const USAGE: &str = "\
usage: cluster [--nodes N] [--port P] [--redis URL] [--no-feed]

  --nodes N    server nodes, each with a RedisHub of its own (default 2)
  --port P     the first node's port; the others follow, then the balancer (default 3000)
  --redis URL  the Redis they share (default redis://127.0.0.1:6379/)
  --no-feed    serve, do not publish (join the feed of another process)";

struct Args {
    nodes: u16,
    port: u16,
    redis: String,
    feed: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        nodes: 2,
        port: 3000,
        redis: "redis://127.0.0.1:6379/".to_owned(),
        feed: true,
    };
    let mut given = std::env::args().skip(1);
    while let Some(arg) = given.next() {
        let mut value = |name: &str| given.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--nodes" => {
                args.nodes = value("--nodes")?
                    .parse()
                    .ok()
                    .filter(|nodes| (1..=64).contains(nodes))
                    .ok_or("--nodes must be 1 to 64")?;
            }
            "--port" => {
                args.port = value("--port")?
                    .parse()
                    .map_err(|_| "--port must be a port number")?;
            }
            "--redis" => args.redis = value("--redis")?,
            "--no-feed" => args.feed = false,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.port.checked_add(args.nodes).is_none() {
        return Err("--port is too high for that many nodes".to_owned());
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    cli::run_main(parse_args(), USAGE, run).await
}

async fn run(args: Args) -> Result<(), BoxError> {
    let count = usize::from(args.nodes);
    // Counted by the example, so that the metrics card shows the tabs' own.
    let internal = Arc::new(Internal::default());
    let mut nodes = Vec::with_capacity(count);
    let mut listeners = Vec::with_capacity(count);
    for index in 1..=args.nodes {
        // Each node connects on its own, as a process of its own would.
        let hub = RedisHub::builder(&args.redis)
            .prefix(PREFIX)
            .connect()
            .await
            .map_err(|error| redis_unreachable(&args.redis, &error))?;
        let latest = hub
            .latest_id()
            .await
            .map_err(|error| redis_unreachable(&args.redis, &error))?;
        let port = args.port + index - 1;
        listeners.push(bind(port).await?);
        nodes.push(Node {
            index,
            count: args.nodes,
            port,
            hub,
            recorded: Arc::new(Mutex::new(Recorded {
                history: History::default(),
                last_id: latest.to_string(),
            })),
            internal: Arc::clone(&internal),
        });
    }
    let balancer_port = args.port + args.nodes;
    let balancer = bind(balancer_port).await?;

    let shutdown = Shutdown::new();
    let mut servers = Vec::with_capacity(count);
    for (node, listener) in nodes.iter().zip(listeners) {
        tokio::spawn(record(node.clone()));
        let server = axum::serve(listener, router(node.clone(), shutdown.clone()))
            .with_graceful_shutdown({
                let shutdown = shutdown.clone();
                async move { shutdown.triggered().await }
            });
        servers.push(tokio::spawn(async move { server.await }));
    }
    let addrs = nodes
        .iter()
        .map(|node| SocketAddr::from((Ipv4Addr::LOCALHOST, node.port)))
        .collect();
    let balancing = tokio::spawn(balance(balancer, addrs));
    let feeding = args.feed.then(|| tokio::spawn(produce(nodes.clone())));

    println!(
        "cluster: {count} node(s) sharing one feed through Redis at {}",
        args.redis
    );
    for node in &nodes {
        println!("  node {}: http://127.0.0.1:{}/", node.index, node.port);
    }
    println!(
        "  balancer: http://127.0.0.1:{balancer_port}/ (round robin: each reconnect of a tab lands on the next node and resumes there)"
    );
    let first = nodes[0].port;
    println!("  from a shell: curl -N http://127.0.0.1:{first}/events");
    if args.feed {
        println!(
            "open the nodes in tabs side by side: the same events, the same ids (Ctrl-C to stop)"
        );
    } else {
        println!(
            "--no-feed: the feed comes from another cluster process on this Redis (Ctrl-C to stop)"
        );
    }

    let _ = tokio::signal::ctrl_c().await;
    println!("shutting down: ending every stream");
    if let Some(feeding) = feeding {
        feeding.abort();
    }
    shutdown.trigger();
    for server in servers {
        server.await??;
    }
    balancing.abort();
    println!("bye");
    Ok(())
}

fn redis_unreachable(url: &str, error: &tower_sse::hub::HubError) -> String {
    let port = url
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.trim_end_matches('/').split('/').next())
        .and_then(|port| port.parse::<u16>().ok())
        .unwrap_or(6379);
    // The hub's error says "unavailable"; its sources say why.
    let mut why = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !why.ends_with(&text) {
            why = format!("{why}: {text}");
        }
        source = cause.source();
    }
    format!(
        "cannot reach Redis at {url}: {why}\n\
         start Redis: redis-server --port {port} --save '' --appendonly no"
    )
}

async fn bind(port: u16) -> Result<TcpListener, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .await
        .map_err(|error| {
            format!("cannot listen on 127.0.0.1:{port}: {error} (pick other ports with --port)")
        })
}

/// One server node: its hub and what it recorded of the feed.
#[derive(Clone)]
struct Node {
    /// From 1.
    index: u16,
    count: u16,
    port: u16,
    hub: RedisHub,
    recorded: Arc<Mutex<Recorded>>,
    internal: Arc<Internal>,
}

/// The recent values of the feed as this node received it, and the id of
/// the newest event among them.
struct Recorded {
    history: History,
    last_id: String,
}

/// What the example itself subscribes, beside the tabs: each node's
/// recorder, and a resume after the snapshot for each new tab.
#[derive(Default)]
struct Internal {
    resumes: AtomicU64,
    resyncs: AtomicU64,
}

fn router(node: Node, shutdown: Shutdown) -> Router {
    let index = node.index;
    let config = page::sse_config(shutdown)
        .on_close(move |reason| println!("node {index}: stream closed: {reason}"));
    let label = format!("cluster · page from node {index} of {}", node.count);
    let page = PAGE.replace("live dashboard over Server-Sent Events", &label);
    Router::new()
        .route("/", get(move || async move { Html(page.clone()) }))
        .route("/events", get(events))
        .route("/notify", post(notify))
        .with_state(node)
        .layer(SseConfigLayer::new(config))
}

/// `GET /events`: a snapshot then the events after it for a new tab, the
/// missed events for a tab that reconnects (from any node), then live
/// events.
async fn events(State(node): State<Node>, last_event_id: LastEventIdHeader) -> impl IntoResponse {
    // An unusable id is passed on too: the hub answers it with its resync
    // signal, and the page reloads its state.
    let (snapshot, subscription) = match last_event_id.for_resume() {
        Some(id) => {
            println!("node {}: a tab resumes after {id}", node.index);
            (None, node.hub.subscribe(TOPICS, Some(id)))
        }
        None => {
            println!("node {}: a new tab", node.index);
            node.internal.resumes.fetch_add(1, Ordering::Relaxed);
            let recorded = node.recorded.lock().unwrap();
            let subscription = node.hub.subscribe(TOPICS, Some(&recorded.last_id));
            (Some(recorded.history.snapshot()), subscription)
        }
    };
    // The stream's end closes its connection, so that the reconnection
    // opens a new one: through the balancer, to the next node.
    (
        [(header::CONNECTION, "close")],
        SseResponse::new(stream::iter(snapshot.map(Ok)).chain(subscription)),
    )
}

/// `POST /notify`: the body, as plain text, goes to every open tab of every
/// node.
async fn notify(State(node): State<Node>, text: String) -> StatusCode {
    let Some((_, event)) = page::notice(&text) else {
        return StatusCode::UNPROCESSABLE_ENTITY;
    };
    match node.hub.publish("notices", event).await {
        Ok(_) => StatusCode::ACCEPTED,
        Err(error) => {
            eprintln!("node {}: notice not published: {error}", node.index);
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

/// Follows the feed on `node` for its snapshots, for ever: resumes after
/// the newest event it recorded whenever its stream ends.
async fn record(node: Node) {
    loop {
        let last_id = node.recorded.lock().unwrap().last_id.clone();
        node.internal.resumes.fetch_add(1, Ordering::Relaxed);
        let mut subscription = node.hub.subscribe(TOPICS, Some(&last_id));
        let mut decoder = Decoder::new();
        // Ends when Redis is away or lost the history, or on lag.
        while let Some(Ok(encoded)) = subscription.next().await {
            decoder.push(encoded.as_bytes());
            while let Ok(Some(event)) = decoder.next_event() {
                let mut recorded = node.recorded.lock().unwrap();
                if event.event_type == RESYNC_EVENT {
                    // What came before is gone: start afresh after its id.
                    recorded.history = History::default();
                    node.internal.resyncs.fetch_add(1, Ordering::Relaxed);
                }
                recorded.history.record(&event.event_type, &event.data);
                if !event.last_event_id.is_empty() {
                    recorded.last_id = event.last_event_id;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Moves the ticker and samples the metrics, for ever, spreading the
/// publishes over the nodes.
async fn produce(nodes: Vec<Node>) {
    let started = Instant::now();
    let mut price = Walk::new(100.0);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut failing = false;
    let mut delivered_before = 0;
    for n in 0_usize.. {
        tick.tick().await;
        let node = &nodes[n % nodes.len()];
        let (_, event) = page::ticker(price.step());
        publish(node, "ticker", event, &mut failing).await;
        if n % 2 == 1 {
            continue;
        }

        // The tabs' own numbers: without each node's recorder, and without
        // the resumes after new tabs' snapshots.
        let metrics: Vec<_> = nodes.iter().map(|node| node.hub.metrics().hub).collect();
        // Each event that reached a node went to its recorder too.
        let delivered = metrics
            .iter()
            .map(|hub| hub.delivered.saturating_sub(hub.published))
            .sum();
        let internal = &nodes[0].internal;
        let sample = Sample {
            streams: (metrics.iter().map(|hub| hub.subscribers).sum::<usize>())
                .saturating_sub(nodes.len()),
            events_per_s: u64::saturating_sub(delivered, delivered_before),
            resumed: (metrics.iter().map(|hub| hub.replay_hits).sum::<u64>())
                .saturating_sub(internal.resumes.load(Ordering::Relaxed)),
            resynced: (metrics.iter().map(|hub| hub.replay_misses).sum::<u64>())
                .saturating_sub(internal.resyncs.load(Ordering::Relaxed)),
        };
        delivered_before = delivered;
        // Every second through the next node, so that the clock line shows
        // them taking turns.
        let node = &nodes[n / 2 % nodes.len()];
        publish(node, "metrics", page::metrics(&sample).1, &mut failing).await;
        // No event type: the page's `onmessage` gets it.
        let clock = format!(
            "{} · published by node {}",
            page::uptime(started),
            node.index
        );
        publish(node, "clock", Event::new().data(clock), &mut failing).await;
    }
}

/// Publishes through `node`; says once when publishing fails, and once when
/// it works again.
async fn publish(node: &Node, topic: &str, event: Event, failing: &mut bool) {
    match node.hub.publish(topic, event).await {
        Ok(_) if *failing => {
            *failing = false;
            println!("node {}: publishing again", node.index);
        }
        Ok(_) => {}
        Err(error) if !*failing => {
            *failing = true;
            eprintln!("node {}: not published: {error} (going on)", node.index);
        }
        Err(_) => {}
    }
}

/// A round-robin TCP balancer: each connection goes to the next node that
/// accepts it.
async fn balance(listener: TcpListener, nodes: Vec<SocketAddr>) {
    let mut next = 0;
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        let first = next;
        next = (next + 1) % nodes.len();
        let nodes = nodes.clone();
        tokio::spawn(async move {
            for k in 0..nodes.len() {
                let addr = nodes[(first + k) % nodes.len()];
                if let Ok(mut server) = TcpStream::connect(addr).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    return;
                }
            }
        });
    }
}
