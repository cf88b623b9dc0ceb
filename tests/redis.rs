//! `RedisHub` against a real `redis-server` of each test's own: several
//! nodes on one Redis, resumes across nodes, Redis killed and restarted,
//! Redis losing its data.
//!
//! Skipped (loudly) without `redis-server`, unless `CI` is set.
#![cfg(feature = "redis")]

#[path = "support/redis_server.rs"]
mod redis_server;
mod support;

use std::time::Duration;

use futures_util::StreamExt;
use redis_server::{Persistence, RedisServer};
use tower_sse::Event;
use tower_sse::decode::Decoder;
use tower_sse::hub::{HubConfig, RESYNC_EVENT, RedisHub, Subscription};

/// One event as a client sees it: (id, type, data).
type Seen = (String, String, String);

/// The next event of a subscription, decoded; panics after 10 s.
async fn next(subscription: &mut Subscription) -> Option<Seen> {
    let item = tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("an event within 10 s")?;
    let event = item.expect("not lagged");
    let mut decoder = Decoder::new();
    decoder.push(event.as_bytes());
    let event = decoder.next_event().unwrap().expect("one whole event");
    Some((event.last_event_id, event.event_type, event.data))
}

/// The next `count` events.
async fn take(subscription: &mut Subscription, count: usize) -> Vec<Seen> {
    let mut seen = Vec::with_capacity(count);
    for _ in 0..count {
        seen.push(next(subscription).await.expect("the stream goes on"));
    }
    seen
}

/// Whether nothing more arrives for a while.
async fn quiet(subscription: &mut Subscription) -> bool {
    tokio::time::timeout(Duration::from_millis(300), subscription.next())
        .await
        .is_err()
}

/// How many connections are subscribed to `channel`.
async fn numsub(server: &RedisServer, channel: &str) -> u64 {
    let client = redis::Client::open(server.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let (_, count): (String, u64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(&mut connection)
        .await
        .unwrap();
    count
}

async fn node(server: &RedisServer) -> RedisHub {
    RedisHub::builder(&server.url())
        .timeout(Duration::from_secs(1))
        .connect()
        .await
        .expect("Redis answers")
}

async fn publish(hub: &RedisHub, topic: &str, data: &str) -> String {
    hub.publish(topic, Event::new().event(topic).data(data.to_owned()))
        .await
        .expect("published")
        .to_string()
}

async fn send(hub: &RedisHub, user: &str, data: &str) -> String {
    hub.send_to(user, Event::new().data(data.to_owned()))
        .await
        .expect("sent")
        .to_string()
}

/// Waits until a live subscription has started (followed its channels), by
/// publishing markers until one arrives.
async fn started(hub: &RedisHub, subscription: &mut Subscription, topic: &str) {
    let started = async {
        loop {
            publish(hub, topic, "marker").await;
            match tokio::time::timeout(Duration::from_millis(200), subscription.next()).await {
                Ok(Some(_)) => {
                    // Drain the markers still on their way.
                    while !quiet(subscription).await {}
                    return;
                }
                Ok(None) => panic!("the subscription ended before it started"),
                Err(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), started)
        .await
        .expect("the subscription starts within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_see_every_event_once_in_one_order() {
    let Some(server) = RedisServer::start(Persistence::None) else {
        return;
    };
    let nodes = [
        node(&server).await,
        node(&server).await,
        node(&server).await,
    ];
    let mut subscriptions = Vec::new();
    for hub in &nodes {
        let mut both = hub.subscribe(["a", "b"], None);
        started(hub, &mut both, "a").await;
        let mut only_b = hub.subscribe(["b"], None);
        started(hub, &mut only_b, "b").await;
        subscriptions.push((both, only_b));
    }
    // One Redis subscription per topic per node, whatever its subscribers.
    assert_eq!(numsub(&server, "tower-sse:c:t:b").await, 3);
    assert_eq!(numsub(&server, "tower-sse:c:t:a").await, 3);
    assert_eq!(
        nodes
            .iter()
            .map(|hub| hub.metrics().followed)
            .collect::<Vec<_>>(),
        [2, 2, 2]
    );
    // What other subscriptions' markers left behind.
    for (both, only_b) in &mut subscriptions {
        while !quiet(both).await {}
        while !quiet(only_b).await {}
    }

    // Publishers on every node at once.
    let publishers = nodes.iter().enumerate().map(|(at, hub)| async move {
        let mut ids = Vec::new();
        for n in 0..30 {
            let topic = if n % 3 == 0 { "b" } else { "a" };
            ids.push((publish(hub, topic, &format!("{at}-{n}")).await, topic));
        }
        ids
    });
    let published: Vec<(String, &str)> = futures_util::future::join_all(publishers)
        .await
        .into_iter()
        .flatten()
        .collect();
    let of_b = published.iter().filter(|(_, topic)| *topic == "b").count();

    let mut orders = Vec::new();
    for (both, only_b) in &mut subscriptions {
        let seen = take(both, published.len()).await;
        assert!(quiet(both).await, "nothing twice");
        let positions: Vec<u64> = seen.iter().map(|(id, _, _)| position(id)).collect();
        assert!(
            positions.windows(2).all(|pair| pair[0] < pair[1]),
            "in id order"
        );
        let mut ids: Vec<&str> = seen.iter().map(|(id, _, _)| id.as_str()).collect();
        ids.sort_unstable();
        let mut expected: Vec<&str> = published.iter().map(|(id, _)| id.as_str()).collect();
        expected.sort_unstable();
        assert_eq!(ids, expected, "every event once");
        orders.push(seen);

        let seen_b = take(only_b, of_b).await;
        assert!(seen_b.iter().all(|(_, kind, _)| kind == "b"));
        assert!(quiet(only_b).await, "only its topic");
    }
    assert!(
        orders.windows(2).all(|pair| pair[0] == pair[1]),
        "one order on every node"
    );
}

fn position(id: &str) -> u64 {
    id.rsplit_once('-').unwrap().1.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_on_another_node_with_exactly_the_missed_events() {
    let Some(server) = RedisServer::start(Persistence::None) else {
        return;
    };
    let (a, b) = (node(&server).await, node(&server).await);

    // Topics, several at once.
    let mut first = a.subscribe(["news", "prices"], None);
    started(&a, &mut first, "news").await;
    let seen_id = publish(&a, "prices", "p1").await;
    assert_eq!(next(&mut first).await.unwrap().0, seen_id);
    drop(first);
    let missed = [
        publish(&b, "news", "n2").await,
        publish(&a, "other", "o1").await,
        publish(&a, "prices", "p2").await,
    ];
    let mut again = b.subscribe(["prices", "news"], Some(&seen_id));
    let replayed = take(&mut again, 2).await;
    assert_eq!(
        replayed,
        [
            (missed[0].clone(), "news".into(), "n2".into()),
            (missed[2].clone(), "prices".into(), "p2".into()),
        ]
    );
    // Then live, with nothing twice.
    let live = publish(&a, "news", "n3").await;
    assert_eq!(next(&mut again).await.unwrap().0, live);
    assert!(quiet(&mut again).await);

    // A user's feed, merged with a topic.
    let mut user = a.subscribe_client("ada", ["news"], None);
    started(&a, &mut user, "news").await;
    let sent = send(&a, "ada", "hello").await;
    assert_eq!(next(&mut user).await.unwrap().0, sent);
    drop(user);
    let to_ada = b
        .send_to("ada", Event::new().data("while away"))
        .await
        .unwrap();
    b.send_to("grace", Event::new().data("not hers"))
        .await
        .unwrap();
    let news = publish(&b, "news", "n4").await;
    let mut back = b.subscribe_client("ada", ["news"], Some(&sent));
    let replayed = take(&mut back, 2).await;
    assert_eq!(replayed[0].0, to_ada.to_string());
    assert_eq!(replayed[0].2, "while away");
    assert_eq!(replayed[1].0, news);
    assert!(quiet(&mut back).await);
    assert_eq!(b.metrics().hub.replay_hits, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_that_cannot_be_honoured_get_the_resync_signal() {
    let Some(server) = RedisServer::start(Persistence::None) else {
        return;
    };
    let config = HubConfig::new().replay_max_events(3);
    let hub = RedisHub::builder(&server.url())
        .config(config)
        .connect()
        .await
        .unwrap();
    let old = publish(&hub, "t", "0").await;
    for n in 1..=4 {
        publish(&hub, "t", &n.to_string()).await;
    }
    // Trimmed away in Redis.
    let mut expired = hub.subscribe(["t"], Some(&old));
    let (id, kind, data) = next(&mut expired).await.unwrap();
    assert_eq!((kind.as_str(), data.as_str()), (RESYNC_EVENT, "expired"));
    assert_eq!(id, hub.latest_id().await.unwrap().to_string());

    // Not an id of this history; and a position not given yet.
    for unknown in ["3f09a1c27b5e-1", "garbage"] {
        let mut subscription = hub.subscribe(["t"], Some(unknown));
        let (_, kind, data) = next(&mut subscription).await.unwrap();
        assert_eq!((kind.as_str(), data.as_str()), (RESYNC_EVENT, "unknown-id"));
    }
    let latest = hub.latest_id().await.unwrap();
    let future = format!("{}-{}", &latest.to_string()[..12], latest.seq() + 100);
    let mut ahead = hub.subscribe(["t"], Some(&future));
    assert_eq!(next(&mut ahead).await.unwrap().2, "unknown-id");

    // The stream deleted behind the hub's back: its hash says more.
    let recent = publish(&hub, "t", "5").await;
    publish(&hub, "t", "6").await;
    server.command(&["DEL", "tower-sse:s:t:t"]);
    let mut lost = hub.subscribe(["t"], Some(&recent));
    assert_eq!(next(&mut lost).await.unwrap().2, "expired");
    assert_eq!(hub.metrics().hub.replay_misses, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_away_publish_fails_streams_stay_and_nodes_catch_up() {
    let Some(mut server) = RedisServer::start(Persistence::Aof) else {
        return;
    };
    let (a, b) = (node(&server).await, node(&server).await);
    let mut on_b = b.subscribe(["t"], None);
    started(&b, &mut on_b, "t").await;
    let before = publish(&a, "t", "before").await;
    assert_eq!(next(&mut on_b).await.unwrap().0, before);

    server.kill();
    let refused = a.publish("t", Event::new().data("refused")).await;
    assert!(
        refused.unwrap_err().is_unavailable(),
        "an error, not a silent drop"
    );
    server.restart();

    // Node A publishes as soon as it can; B's stream, open all along, gets
    // every event published since, once, in order.
    let mut published = Vec::new();
    for n in 0..20 {
        loop {
            match a
                .publish("t", Event::new().data(format!("after {n}")))
                .await
            {
                Ok(id) => break published.push(id.to_string()),
                Err(error) => {
                    assert!(error.is_unavailable());
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
    let seen: Vec<String> = take(&mut on_b, published.len())
        .await
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    assert_eq!(seen, published);
    assert!(quiet(&mut on_b).await);
    let metrics = b.metrics();
    assert!(metrics.connected);
    assert_eq!(metrics.outages, 1);
    assert!(a.metrics().publish_errors >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_without_its_data_ends_streams_and_resumes_resync() {
    let Some(mut server) = RedisServer::start(Persistence::None) else {
        return;
    };
    let hub = node(&server).await;
    let mut live = hub.subscribe(["t"], None);
    started(&hub, &mut live, "t").await;
    let last = publish(&hub, "t", "last").await;
    assert_eq!(next(&mut live).await.unwrap().0, last);

    server.restart();
    // The open stream ends once the node sees the new history.
    assert_eq!(next(&mut live).await, None);
    let mut again = hub.subscribe(["t"], Some(&last));
    let (id, kind, data) = next(&mut again).await.unwrap();
    assert_eq!((kind.as_str(), data.as_str()), (RESYNC_EVENT, "unknown-id"));
    assert_ne!(id[..12], last[..12], "a new epoch");
    let fresh = publish(&hub, "t", "fresh").await;
    assert_eq!(next(&mut again).await.unwrap().0, fresh);
    assert_eq!(hub.metrics().history_lost, 1);
}

/// A small seeded generator (xorshift), so that a failing run can be played
/// again with its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// Publishers on three nodes, clients hopping between the nodes with their
/// `Last-Event-ID`, Redis killed and restarted (with its append-only file,
/// so it loses nothing it acknowledged): every client gets every event
/// published successfully, once, in order, and never a resync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_lost_zero_duplicated_zero_reordered_zero() {
    let Some(mut server) = RedisServer::start(Persistence::Aof) else {
        return;
    };
    let seeds: Vec<u64> = match std::env::var("CHAOS_SEED") {
        Ok(seed) => vec![seed.parse().expect("CHAOS_SEED is a number")],
        Err(_) => vec![0x5eed, 0xc0ffee],
    };
    for seed in seeds {
        chaos_run(&mut server, seed).await;
    }
}

async fn chaos_run(server: &mut RedisServer, seed: u64) {
    const TOPICS: [&str; 2] = ["x", "y"];
    const PER_PUBLISHER: usize = 120;
    let nodes = std::sync::Arc::new([node(server).await, node(server).await, node(server).await]);
    let start = nodes[0].latest_id().await.unwrap().to_string();
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));

    let publishers: Vec<_> = (0..3)
        .map(|at| {
            let nodes = std::sync::Arc::clone(&nodes);
            let progress = std::sync::Arc::clone(&progress);
            tokio::spawn(async move {
                let mut rng = Rng(seed ^ ((at as u64 + 1) * 0x9e37_79b9));
                let (mut published, mut failed) = (Vec::new(), Vec::new());
                for n in 0..PER_PUBLISHER {
                    let topic = TOPICS[rng.below(2) as usize];
                    let data = format!("{at}/{n}");
                    loop {
                        let event = Event::new().event(topic).data(data.clone());
                        match nodes[at].publish(topic, event).await {
                            Ok(id) => {
                                progress.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                break published.push((id.seq(), topic));
                            }
                            Err(error) => {
                                assert!(error.is_unavailable(), "{error}");
                                // Redis may have taken it and lost only the answer.
                                failed.push(data.clone());
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(rng.below(4))).await;
                }
                (published, failed)
            })
        })
        .collect();

    let clients: Vec<_> = (0..4)
        .map(|client| {
            let nodes = std::sync::Arc::clone(&nodes);
            let start = start.clone();
            tokio::spawn(async move {
                let mut rng = Rng(seed ^ ((client as u64 + 7) * 0x85eb_ca6b));
                let topics: &[&str] = if client % 2 == 0 {
                    &TOPICS
                } else {
                    &TOPICS[..1]
                };
                let mut last = start;
                let mut seen: Vec<(u64, String)> = Vec::new();
                let mut hops = 0;
                // Reads until told to stop, hopping now and then.
                while seen.len() < 10_000 {
                    let at = rng.below(3) as usize;
                    let mut subscription = nodes[at].subscribe(topics, Some(&last));
                    let reads = 1 + rng.below(25);
                    hops += 1;
                    for _ in 0..reads {
                        match tokio::time::timeout(Duration::from_secs(2), subscription.next())
                            .await
                        {
                            Ok(Some(Ok(event))) => {
                                let mut decoder = Decoder::new();
                                decoder.push(event.as_bytes());
                                let event = decoder.next_event().unwrap().unwrap();
                                assert_ne!(
                                    event.event_type, RESYNC_EVENT,
                                    "seed {seed:#x}: {}",
                                    event.data
                                );
                                seen.push((position(&event.last_event_id), event.data));
                                last = event.last_event_id;
                            }
                            // Ended (Redis away when it started): come back.
                            Ok(Some(Err(_)) | None) => {
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                break;
                            }
                            // Nothing for a while: all is read, or hop.
                            Err(_) => return (topics, seen, hops),
                        }
                    }
                }
                (topics, seen, hops)
            })
        })
        .collect();

    // Redis goes away at a seeded point of the run, while all publish.
    let kill_at = PER_PUBLISHER + Rng(seed).below(PER_PUBLISHER as u64) as usize;
    while progress.load(std::sync::atomic::Ordering::Relaxed) < kill_at {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart();

    let (mut published, mut failed) = (Vec::new(), Vec::new());
    for publisher in publishers {
        let (acknowledged, unanswered) = publisher.await.unwrap();
        published.extend(acknowledged);
        failed.extend(unanswered);
    }
    published.sort_unstable();
    assert_eq!(published.len(), 3 * PER_PUBLISHER);
    assert!(
        !failed.is_empty(),
        "seed {seed:#x}: publishes met the outage"
    );
    for client in clients {
        let (topics, seen, hops) = client.await.unwrap();
        assert!(hops > 1, "seed {seed:#x}: the client hopped");
        let positions: Vec<u64> = seen.iter().map(|(seq, _)| *seq).collect();
        assert!(
            positions.windows(2).all(|pair| pair[0] < pair[1]),
            "seed {seed:#x}: in order, once"
        );
        let expected: Vec<u64> = published
            .iter()
            .filter(|(_, topic)| topics.contains(topic))
            .map(|(seq, _)| *seq)
            .collect();
        let lost: Vec<&u64> = expected
            .iter()
            .filter(|seq| positions.binary_search(seq).is_err())
            .collect();
        assert!(lost.is_empty(), "seed {seed:#x}: lost {lost:?}");
        // Anything more is an attempt whose answer was lost, never an
        // event no one published.
        for (seq, data) in &seen {
            if expected.binary_search(seq).is_err() {
                assert!(
                    failed.contains(data),
                    "seed {seed:#x}: {seq} {data} unexplained"
                );
            }
        }
    }
}

#[cfg(feature = "axum")]
/// Serves `GET /events` (topic `feed`, resuming after `Last-Event-ID`) from
/// an axum server on a fresh `127.0.0.1` port: one node.
async fn serve_axum(hub: RedisHub) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use axum::Router;
    use axum::extract::State;
    use axum::routing::get;
    use tower_sse::LastEventIdHeader;
    use tower_sse::axum::SseResponse;

    async fn events(
        State(hub): State<RedisHub>,
        last_event_id: LastEventIdHeader,
    ) -> SseResponse<Subscription> {
        SseResponse::new(hub.subscribe(["feed"], last_event_id.for_resume()))
    }

    let router = Router::new().route("/events", get(events)).with_state(hub);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (addr, server)
}

#[cfg(feature = "axum")]
/// The next event over HTTP, as (id, data); the stream must be open.
async fn next_over_http(
    events: &mut tower_sse::decode::DecodeStream<hyper::body::Incoming>,
) -> (String, String) {
    let event = tokio::time::timeout(Duration::from_secs(10), support::next_event(events))
        .await
        .expect("an event within 10 s")
        .expect("the stream is open");
    (event.last_event_id, event.data)
}

/// Two axum servers on one Redis, over real HTTP: a client reads from the
/// first, its connection drops, and it resumes on the second with the
/// `Last-Event-ID` it saw, getting exactly what it missed, then live events.
#[cfg(feature = "axum")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_axum_servers_one_redis_resume_over_http() {
    use support::client::open_events as open;

    let Some(server) = RedisServer::start(Persistence::None) else {
        return;
    };
    let (a, b) = (node(&server).await, node(&server).await);
    let (addr_a, server_a) = serve_axum(a.clone()).await;
    let (addr_b, server_b) = serve_axum(b.clone()).await;
    let (connection_a, mut on_a) = open(addr_a, "/events", None).await;
    // Live from the moment it is followed: publish until one arrives.
    loop {
        publish(&b, "feed", "hello").await;
        let first = tokio::time::timeout(Duration::from_millis(200), next_over_http(&mut on_a));
        if first.await.is_ok() {
            break;
        }
    }
    let seen = publish(&b, "feed", "seen").await;
    while next_over_http(&mut on_a).await.0 != seen {}
    drop((on_a, connection_a));
    let missed = [
        publish(&a, "feed", "m1").await,
        publish(&b, "feed", "m2").await,
    ];

    let (_connection_b, mut on_b) = open(addr_b, "/events", Some(&seen)).await;
    assert_eq!(
        next_over_http(&mut on_b).await,
        (missed[0].clone(), "m1".to_owned())
    );
    assert_eq!(
        next_over_http(&mut on_b).await,
        (missed[1].clone(), "m2".to_owned())
    );
    let live = publish(&a, "feed", "live").await;
    assert_eq!(next_over_http(&mut on_b).await, (live, "live".to_owned()));
    server_a.abort();
    server_b.abort();
}

/// A node that stops ends its streams; its clients resume on another node,
/// and a node started afresh serves resumes from Redis alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_node_dies_its_clients_resume_elsewhere() {
    let Some(server) = RedisServer::start(Persistence::None) else {
        return;
    };
    let (a, b) = (node(&server).await, node(&server).await);
    let mut on_a = a.subscribe(["t"], None);
    started(&a, &mut on_a, "t").await;
    let seen = publish(&b, "t", "seen").await;
    assert_eq!(next(&mut on_a).await.unwrap().0, seen);

    drop(a);
    assert_eq!(next(&mut on_a).await, None, "the stream ends with its node");
    let missed = publish(&b, "t", "missed").await;
    let mut on_b = b.subscribe(["t"], Some(&seen));
    assert_eq!(next(&mut on_b).await.unwrap().0, missed);

    // A new node, which never followed `t`, replays from Redis.
    let restarted = node(&server).await;
    let mut again = restarted.subscribe(["t"], Some(&seen));
    assert_eq!(next(&mut again).await.unwrap().0, missed);
    let live = publish(&b, "t", "live").await;
    assert_eq!(next(&mut again).await.unwrap().0, live);
    assert_eq!(next(&mut on_b).await.unwrap().0, live);
}

/// Subscriptions dropped: the node forgets the logs and unsubscribes their
/// channels; user feeds expire in Redis (keys and all), and a late resume
/// into an expired feed is told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_logs_are_given_back_on_the_node_and_in_redis() {
    let Some(server) = RedisServer::start(Persistence::None) else {
        return;
    };
    let config = HubConfig::new().user_replay_max_age(Duration::from_millis(300));
    let hub = RedisHub::builder(&server.url())
        .config(config)
        .connect()
        .await
        .unwrap();
    let mut user = hub.subscribe_client("ada", ["news"], None);
    started(&hub, &mut user, "news").await;
    let sent = send(&hub, "ada", "one").await;
    assert_eq!(next(&mut user).await.unwrap().0, sent);
    assert_eq!(hub.metrics().followed, 2);
    assert_eq!(server.command(&["EXISTS", "tower-sse:s:u:ada"]), ":1");
    drop(user);

    let given_back = async {
        while hub.metrics().followed != 0 || numsub(&server, "tower-sse:c:t:news").await != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), given_back)
        .await
        .expect("channels given back");
    let metrics = hub.metrics();
    assert_eq!((metrics.hub.topics, metrics.hub.user_feeds), (0, 0));

    // Sent while away, then expired in Redis: the keys are gone.
    let early = hub.send_to("ada", Event::new().data("two")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        server.command(&["EXISTS", "tower-sse:s:u:ada", "tower-sse:m:u:ada"]),
        ":0"
    );
    let mut late = hub.subscribe_user("ada", Some(&sent));
    let (id, kind, data) = next(&mut late).await.unwrap();
    assert_eq!((kind.as_str(), data.as_str()), (RESYNC_EVENT, "expired"));
    assert!(position(&id) >= early.seq());
    // A resume from after the expired event is honoured: nothing missed.
    let mut current = hub.subscribe_user("ada", Some(&early.to_string()));
    let after = hub
        .send_to("ada", Event::new().data("three"))
        .await
        .unwrap();
    assert_eq!(next(&mut current).await.unwrap().0, after.to_string());
}

/// A log whose missed events Redis trimmed while the node was away ends its
/// streams, and the node stops following it once they are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_trimmed_while_its_node_was_away_ends_and_is_unfollowed() {
    let Some(server) = RedisServer::start(Persistence::None) else {
        return;
    };
    let config = HubConfig::new().replay_max_events(2);
    let connect = || {
        RedisHub::builder(&server.url())
            .config(config.clone())
            .connect()
    };
    let (a, b) = (connect().await.unwrap(), connect().await.unwrap());
    let mut on_a = a.subscribe(["t"], None);
    started(&a, &mut on_a, "t").await;

    // Node A's pub/sub connection drops; it reconnects after 25 to 50 ms,
    // by when more than the window was published.
    server.command(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    for n in 0..5 {
        publish(&b, "t", &n.to_string()).await;
    }
    let ended = async { while next(&mut on_a).await.is_some() {} };
    tokio::time::timeout(Duration::from_secs(10), ended)
        .await
        .expect("the stream ends");
    drop(on_a);

    let unfollowed = async {
        while a.metrics().followed != 0 || numsub(&server, "tower-sse:c:t:t").await != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), unfollowed)
        .await
        .expect("node A stops following the ended log");
}

/// Windows whose age has no practical limit (`Duration::MAX`) still take
/// events: the expiry Redis is given is clamped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_of_any_age_take_events() {
    let Some(server) = RedisServer::start(Persistence::None) else {
        return;
    };
    let config = HubConfig::new()
        .replay_max_age(Duration::MAX)
        .user_replay_max_age(Duration::MAX);
    let hub = RedisHub::builder(&server.url())
        .config(config)
        .connect()
        .await
        .unwrap();
    let first = publish(&hub, "t", "first").await;
    let second = publish(&hub, "t", "second").await;
    send(&hub, "ada", "hello").await;
    let mut resumed = hub.subscribe(["t"], Some(&first));
    assert_eq!(next(&mut resumed).await.unwrap().0, second);
}

/// A subscriber that falls too far behind is cut off, as on the in-process
/// hub, and resumes from Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_subscriber_is_cut_off_and_resumes() {
    let Some(server) = RedisServer::start(Persistence::None) else {
        return;
    };
    let hub = RedisHub::builder(&server.url())
        .config(HubConfig::new().max_lag(4))
        .connect()
        .await
        .unwrap();
    let mut slow = hub.subscribe(["t"], None);
    started(&hub, &mut slow, "t").await;
    let seen = publish(&hub, "t", "seen").await;
    assert_eq!(next(&mut slow).await.unwrap().0, seen);
    let mut published = Vec::new();
    for n in 0..10 {
        published.push(publish(&hub, "t", &n.to_string()).await);
    }
    let mut watcher = hub.subscribe(["t"], Some(&seen));
    assert_eq!(take(&mut watcher, 10).await.last().unwrap().0, published[9]);

    // The `retry:` hint, then the error that ends the response.
    let hint = tokio::time::timeout(Duration::from_secs(5), slow.next())
        .await
        .unwrap();
    assert_eq!(hint.unwrap().unwrap().as_bytes(), b"retry: 1000\n\n");
    let item = tokio::time::timeout(Duration::from_secs(5), slow.next())
        .await
        .unwrap();
    assert!(matches!(item, Some(Err(_))), "lagged: {item:?}");
    assert_eq!(hub.metrics().hub.lag_disconnects, 1);
    let mut resumed = hub.subscribe(["t"], Some(&seen));
    let replayed: Vec<String> = take(&mut resumed, 10)
        .await
        .into_iter()
        .map(|seen| seen.0)
        .collect();
    assert_eq!(replayed, published);
}

/// Redis flushed under a node whose connection stays up: the next resume
/// finds no history, a new epoch starts, open streams end, and clients get
/// the resync signal, even with no publish to bring the news.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_flushed_under_a_connected_node_gives_the_resync_signal() {
    let Some(server) = RedisServer::start(Persistence::None) else {
        return;
    };
    let hub = node(&server).await;
    let mut live = hub.subscribe(["t"], None);
    started(&hub, &mut live, "t").await;
    let last = publish(&hub, "t", "last").await;
    assert_eq!(next(&mut live).await.unwrap().0, last);

    assert_eq!(server.command(&["FLUSHALL"]), "+OK");
    // The first resume finds the history gone; its stream ends, and so
    // does every open stream once the node has taken up the new history.
    let mut first = hub.subscribe(["t"], Some(&last));
    assert_eq!(next(&mut first).await, None);
    assert_eq!(next(&mut live).await, None);
    let mut again = hub.subscribe(["t"], Some(&last));
    let (id, kind, data) = next(&mut again).await.unwrap();
    assert_eq!((kind.as_str(), data.as_str()), (RESYNC_EVENT, "unknown-id"));
    assert_ne!(id[..12], last[..12]);
    assert_eq!(hub.metrics().history_lost, 1);
}
