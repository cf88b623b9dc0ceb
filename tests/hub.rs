//! The broadcast hub through its public API: fan-out, ids, replay and the
//! resync signal, the lag policies, per-user feeds, forgetting, metrics,
//! and a randomized test of concurrent publishers with subscribers joining,
//! leaving and resuming.

#![cfg(feature = "hub")]

mod support;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_util::stream::FusedStream;
use futures_util::{FutureExt, Stream, StreamExt};
use proptest::prelude::*;
use tower_sse::decode::Decoder;
use tower_sse::hub::{Hub, HubConfig, LagPolicy, RESYNC_EVENT, Subscription};
use tower_sse::{CloseReason, EncodedEvent, Event, Lagged, SseBody, SseConfig};

use support::{CloseRecorder, collect_bytes};

/// An event as a browser would fire it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Received {
    event: String,
    data: String,
    id: String,
}

impl Received {
    fn resync(reason: &str, id: impl ToString) -> Self {
        Self {
            event: RESYNC_EVENT.into(),
            data: reason.into(),
            id: id.to_string(),
        }
    }
}

/// Decodes one encoded event the way a browser would; `None` when the block
/// dispatches nothing (a bare `retry:` hint).
fn decode(event: &EncodedEvent) -> Option<Received> {
    let mut decoder = Decoder::new();
    decoder.push(event.as_bytes());
    let message = decoder.next_event().expect("a decodable event")?;
    assert_eq!(decoder.next_event().unwrap(), None, "one block per event");
    Some(Received {
        event: message.event_type,
        data: message.data,
        id: message.last_event_id,
    })
}

/// Every item the subscription has ready now, without waiting.
fn ready(subscription: &mut Subscription) -> Vec<Result<EncodedEvent, Lagged>> {
    let mut items = Vec::new();
    while let Some(Some(item)) = subscription.next().now_or_never() {
        items.push(item);
    }
    items
}

/// Every event the subscription has ready now, decoded. Panics on `Lagged`.
fn ready_events(subscription: &mut Subscription) -> Vec<Received> {
    ready(subscription)
        .into_iter()
        .filter_map(|item| decode(&item.expect("not lagged")))
        .collect()
}

fn data_of(events: &[Received]) -> Vec<&str> {
    events.iter().map(|event| event.data.as_str()).collect()
}

fn message(data: impl Into<String>) -> Event {
    Event::new().data(data.into())
}

fn ended(subscription: &mut Subscription) -> bool {
    matches!(subscription.next().now_or_never(), Some(None))
}

#[test]
fn every_subscriber_gets_the_same_encoded_bytes() {
    let hub = Hub::new();
    let mut subscriptions: Vec<Subscription> =
        (0..3).map(|_| hub.subscribe(["news"], None)).collect();

    hub.publish("news", Event::new().event("headline").data("hello"))
        .unwrap();

    let received: Vec<EncodedEvent> = subscriptions
        .iter_mut()
        .map(|subscription| {
            let mut items = ready(subscription);
            assert_eq!(items.len(), 1);
            items.remove(0).unwrap()
        })
        .collect();
    // One encoding, shared: every subscriber holds the very same bytes.
    let first = received[0].as_bytes();
    for event in &received {
        assert_eq!(event.as_bytes().as_ptr(), first.as_ptr());
        assert_eq!(event.as_bytes(), first);
    }
}

#[test]
fn ids_follow_publish_order_within_and_across_topics() {
    let hub = Hub::new();
    let before = hub.latest_id();
    assert_eq!(before.seq(), 0);
    let mut a = hub.subscribe(["a"], None);
    let mut both = hub.subscribe(["a", "b"], None);

    let ids: Vec<_> = ["a", "b", "a"]
        .iter()
        .enumerate()
        .map(|(n, topic)| hub.publish(topic, message(n.to_string())).unwrap())
        .collect();

    assert_eq!(ids.iter().map(|id| id.seq()).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(hub.latest_id(), ids[2]);
    let epoch = before.to_string().split_once('-').unwrap().0.to_owned();
    for id in &ids {
        let text = id.to_string();
        assert!(text.is_ascii() && text.len() < 40, "{text}");
        assert_eq!(text, format!("{epoch}-{}", id.seq()));
    }
    let on_a = ready_events(&mut a);
    assert_eq!(
        on_a.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        [ids[0].to_string(), ids[2].to_string()]
    );
    assert_eq!(data_of(&ready_events(&mut both)), ["0", "1", "2"]);
}

#[test]
fn event_with_its_own_id_is_refused_and_reaches_no_one() {
    let hub = Hub::new();
    let mut subscription = hub.subscribe_client("alice", ["news"], None);

    let error = hub
        .publish("news", Event::new().id(7).data("x"))
        .unwrap_err();
    assert!(error.is_id_set());
    assert!(error.event_error().is_none());
    let error = hub
        .send_to("alice", Event::new().data("x").id("mine"))
        .unwrap_err();
    assert!(error.is_id_set());

    assert_eq!(hub.latest_id().seq(), 0);
    assert!(ready(&mut subscription).is_empty());
    assert_eq!(hub.metrics().published, 0);
}

#[test]
fn invalid_event_is_refused_with_its_error() {
    let hub = Hub::new();
    let mut subscription = hub.subscribe(["news"], None);

    let error = hub
        .publish("news", Event::new().event("a\nb").data("x"))
        .unwrap_err();
    assert!(error.event_error().unwrap().is_invalid_event_type());
    assert!(!error.is_id_set());
    assert!(std::error::Error::source(&error).is_some());

    assert_eq!(hub.latest_id().seq(), 0);
    assert!(ready(&mut subscription).is_empty());
}

#[test]
fn resuming_replays_exactly_the_missed_events_then_goes_live() {
    let hub = Hub::new();
    let mut first = hub.subscribe(["news"], None);
    for n in 1..=3 {
        hub.publish("news", message(n.to_string())).unwrap();
    }
    let seen = ready_events(&mut first);
    assert_eq!(data_of(&seen), ["1", "2", "3"]);
    // The client processed two of them before the connection dropped.
    let last_event_id = seen[1].id.clone();
    drop(first);
    for n in 4..=5 {
        hub.publish("news", message(n.to_string())).unwrap();
    }

    let mut resumed = hub.subscribe(["news"], Some(&last_event_id));
    assert_eq!(data_of(&ready_events(&mut resumed)), ["3", "4", "5"]);
    hub.publish("news", message("6")).unwrap();
    assert_eq!(data_of(&ready_events(&mut resumed)), ["6"]);
}

#[test]
fn one_id_resumes_every_topic_of_a_subscription() {
    let hub = Hub::new();
    let mut first = hub.subscribe(["a", "b"], None);
    hub.publish("a", message("a1")).unwrap();
    hub.publish("b", message("b1")).unwrap();
    let last_event_id = ready_events(&mut first).pop().unwrap().id;
    drop(first);

    for (topic, data) in [
        ("b", "b2"),
        ("c", "c1"),
        ("a", "a2"),
        ("b", "b3"),
        ("a", "a3"),
    ] {
        hub.publish(topic, message(data)).unwrap();
    }

    // The topics may be listed in any order, and more than once.
    let mut resumed = hub.subscribe(["b", "a", "b"], Some(&last_event_id));
    assert_eq!(
        data_of(&ready_events(&mut resumed)),
        ["b2", "a2", "b3", "a3"]
    );
}

#[test]
fn resuming_from_the_latest_id_replays_nothing() {
    let hub = Hub::new();
    hub.publish("news", message("old")).unwrap();
    let latest = hub.latest_id().to_string();

    let mut subscription = hub.subscribe(["news"], Some(&latest));
    assert!(ready(&mut subscription).is_empty());
    hub.publish("news", message("new")).unwrap();
    assert_eq!(data_of(&ready_events(&mut subscription)), ["new"]);
    assert_eq!(hub.metrics().replay_hits, 1);
}

#[test]
fn unknown_ids_get_the_resync_signal_then_live_events() {
    let hub = Hub::new();
    let first = hub.publish("news", message("before")).unwrap();
    let other_hub = Hub::new();
    let from_other_hub = other_hub.publish("news", message("x")).unwrap().to_string();
    let epoch = first.to_string().split_once('-').unwrap().0.to_owned();
    let from_the_future = format!("{epoch}-1000000");

    for last_event_id in [
        "garbage",
        "1",
        from_other_hub.as_str(),
        from_the_future.as_str(),
        "ünïcödé-∞",
        &"9".repeat(5000),
    ] {
        let latest = hub.latest_id();
        let mut subscription = hub.subscribe(["news"], Some(last_event_id));
        assert_eq!(
            ready_events(&mut subscription),
            [Received::resync("unknown-id", latest)],
            "{last_event_id:?}"
        );
        let id = hub.publish("news", message("live")).unwrap();
        assert_eq!(
            ready_events(&mut subscription),
            [Received {
                event: "message".into(),
                data: "live".into(),
                id: id.to_string()
            }]
        );
    }
    assert_eq!(hub.metrics().replay_misses, 6);
    assert_eq!(hub.metrics().replay_hits, 0);
}

#[test]
fn an_empty_last_event_id_means_a_new_client() {
    let hub = Hub::new();
    hub.publish("news", message("before")).unwrap();
    let mut subscription = hub.subscribe(["news"], Some(""));
    assert!(ready(&mut subscription).is_empty());
    let metrics = hub.metrics();
    assert_eq!((metrics.replay_hits, metrics.replay_misses), (0, 0));
}

#[test]
fn id_before_the_count_window_gets_the_resync_signal() {
    let hub = Hub::with_config(HubConfig::new().replay_max_events(3));
    let ids: Vec<String> = (1..=5)
        .map(|n| {
            hub.publish("news", message(n.to_string()))
                .unwrap()
                .to_string()
        })
        .collect();
    // The window holds 3, 4, 5.
    let mut inside = hub.subscribe(["news"], Some(&ids[1]));
    assert_eq!(data_of(&ready_events(&mut inside)), ["3", "4", "5"]);

    let mut outside = hub.subscribe(["news"], Some(&ids[0]));
    assert_eq!(
        ready_events(&mut outside),
        [Received::resync("expired", &ids[4])]
    );
    // Nothing is replayed after the signal; live events follow.
    hub.publish("news", message("6")).unwrap();
    assert_eq!(data_of(&ready_events(&mut outside)), ["6"]);
    assert_eq!(hub.metrics().retained_events, 3);
}

#[test]
fn a_multi_topic_resume_needs_every_topic_inside_its_window() {
    let hub = Hub::with_config(HubConfig::new().replay_max_events(2));
    let start = hub.latest_id().to_string();
    hub.publish("quiet", message("q1")).unwrap();
    for n in 1..=3 {
        hub.publish("busy", message(format!("b{n}"))).unwrap();
    }
    // "quiet" still holds everything after `start`; "busy" lost b1.
    let mut quiet = hub.subscribe(["quiet"], Some(&start));
    assert_eq!(data_of(&ready_events(&mut quiet)), ["q1"]);
    let mut both = hub.subscribe(["quiet", "busy"], Some(&start));
    assert_eq!(
        ready_events(&mut both),
        [Received::resync("expired", hub.latest_id())]
    );
}

#[test]
fn byte_window_bounds_what_is_retained() {
    let payload = "x".repeat(100);
    let hub = Hub::with_config(HubConfig::new().replay_max_bytes(1000));
    let ids: Vec<String> = (0..50)
        .map(|_| {
            hub.publish("news", message(payload.as_str()))
                .unwrap()
                .to_string()
        })
        .collect();

    let metrics = hub.metrics();
    assert!(metrics.retained_bytes <= 1000, "{metrics:?}");
    assert!(metrics.retained_events >= 5, "{metrics:?}");
    let retained = metrics.retained_events;

    let mut inside = hub.subscribe(["news"], Some(&ids[49 - retained]));
    assert_eq!(ready_events(&mut inside).len(), retained);
    let mut outside = hub.subscribe(["news"], Some(&ids[48 - retained]));
    assert_eq!(ready_events(&mut outside)[0].event, RESYNC_EVENT);
}

#[test]
fn an_event_larger_than_the_byte_window_is_the_only_one_retained() {
    let hub = Hub::with_config(HubConfig::new().replay_max_bytes(64));
    let start = hub.latest_id().to_string();
    let mut live = hub.subscribe(["news"], None);
    let big = "y".repeat(100);
    let first = hub.publish("news", message(big.as_str())).unwrap();
    assert_eq!(ready_events(&mut live).len(), 1);
    assert_eq!(hub.metrics().retained_events, 1);
    let mut resumed = hub.subscribe(["news"], Some(&start));
    assert_eq!(data_of(&ready_events(&mut resumed)), [big.as_str()]);

    hub.publish("news", message(big.as_str())).unwrap();
    assert_eq!(hub.metrics().retained_events, 1);
    let mut resumed = hub.subscribe(["news"], Some(&start));
    assert_eq!(ready_events(&mut resumed)[0].data, "expired");
    let mut resumed = hub.subscribe(["news"], Some(&first.to_string()));
    assert_eq!(data_of(&ready_events(&mut resumed)), [big.as_str()]);
}

#[tokio::test(start_paused = true)]
async fn events_older_than_the_age_window_are_not_replayed() {
    let hub = Hub::with_config(HubConfig::new().replay_max_age(Duration::from_secs(60)));
    let start = hub.latest_id().to_string();
    let first = hub.publish("news", message("1")).unwrap().to_string();
    tokio::time::advance(Duration::from_secs(40)).await;
    hub.publish("news", message("2")).unwrap();
    tokio::time::advance(Duration::from_secs(30)).await;

    // "1" is 70 s old, "2" is 30 s old.
    let mut inside = hub.subscribe(["news"], Some(&first));
    assert_eq!(data_of(&ready_events(&mut inside)), ["2"]);
    let mut outside = hub.subscribe(["news"], Some(&start));
    assert_eq!(
        ready_events(&mut outside),
        [Received::resync("expired", hub.latest_id())]
    );
    assert_eq!(hub.metrics().retained_events, 1);

    tokio::time::advance(Duration::from_secs(31)).await;
    hub.publish("news", message("3")).unwrap();
    assert_eq!(hub.metrics().retained_events, 1);
}

#[test]
fn the_resync_id_lets_a_client_resume_from_there() {
    let hub = Hub::new();
    hub.publish("news", message("1")).unwrap();
    let mut subscription = hub.subscribe(["news"], Some("stale"));
    let signal = ready_events(&mut subscription).remove(0);
    assert_eq!(signal.event, RESYNC_EVENT);
    drop(subscription);
    hub.publish("news", message("2")).unwrap();

    // Reconnecting before any other event: the signal's id is the position.
    let mut resumed = hub.subscribe(["news"], Some(&signal.id));
    assert_eq!(data_of(&ready_events(&mut resumed)), ["2"]);
}

#[test]
fn a_subscriber_that_falls_behind_is_cut_off_while_others_get_everything() {
    let hub = Hub::with_config(HubConfig::new().max_lag(4));
    let mut slow = hub.subscribe(["news"], None);
    let mut fast = hub.subscribe(["news"], None);

    hub.publish("news", message("1")).unwrap();
    let first = ready_events(&mut slow);
    assert_eq!(data_of(&first), ["1"]);
    let mut fast_seen = ready_events(&mut fast);
    for n in 2..=100 {
        hub.publish("news", message(n.to_string())).unwrap();
        fast_seen.extend(ready_events(&mut fast));
    }
    let expected: Vec<String> = (1..=100).map(|n: u32| n.to_string()).collect();
    assert_eq!(data_of(&fast_seen), expected);
    // Behind, but holding nothing of its own: it reads the topic's log.
    assert_eq!(slow.queued(), 99);

    // It notices when it reads: a retry hint, then Lagged.
    let items = ready(&mut slow);
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].as_ref().unwrap().as_bytes(), b"retry: 1000\n\n");
    assert_eq!(items[1], Err(Lagged::new()));
    assert!(slow.is_terminated());
    assert!(ended(&mut slow));
    let metrics = hub.metrics();
    assert_eq!(metrics.lag_disconnects, 1);
    assert_eq!(metrics.subscribers, 1);

    // It reconnects and loses nothing.
    let mut resumed = hub.subscribe(["news"], Some(&first[0].id));
    let replayed = ready_events(&mut resumed);
    assert_eq!(data_of(&replayed), expected[1..]);
}

#[test]
fn a_replay_longer_than_max_lag_is_not_lag() {
    let hub = Hub::with_config(HubConfig::new().max_lag(2));
    let start = hub.latest_id().to_string();
    for n in 1..=10 {
        hub.publish("news", message(n.to_string())).unwrap();
    }
    let mut resumed = hub.subscribe(["news"], Some(&start));
    let first = resumed.next().now_or_never().unwrap().unwrap().unwrap();
    assert_eq!(decode(&first).unwrap().data, "1");
    // Two more while it replays: within the bound.
    hub.publish("news", message("11")).unwrap();
    hub.publish("news", message("12")).unwrap();
    let expected: Vec<String> = (2..=12).map(|n: u32| n.to_string()).collect();
    assert_eq!(data_of(&ready_events(&mut resumed)), expected);
}

#[test]
fn lag_retry_hint_can_be_turned_off() {
    let hub = Hub::with_config(HubConfig::new().max_lag(1).lag_retry(None));
    let mut slow = hub.subscribe(["news"], None);
    hub.publish("news", message("1")).unwrap();
    assert_eq!(data_of(&ready_events(&mut slow)), ["1"]);
    hub.publish("news", message("2")).unwrap();
    hub.publish("news", message("3")).unwrap();
    assert_eq!(ready(&mut slow), [Err(Lagged::new())]);
}

#[tokio::test]
async fn a_lagging_subscriber_ends_its_sse_response_with_close_reason_lagged() {
    let hub = Hub::with_config(HubConfig::new().max_lag(2));
    let closes = CloseRecorder::new();
    let body = SseBody::with_config(
        hub.subscribe(["news"], None),
        SseConfig::new().on_close(closes.hook()),
    );
    for n in 1..=3 {
        hub.publish("news", message(n.to_string())).unwrap();
    }
    let bytes = collect_bytes(body).await;
    let mut decoder = Decoder::new();
    decoder.push(&bytes);
    assert_eq!(decoder.next_event().unwrap(), None);
    assert_eq!(decoder.reconnection_time(), Some(Duration::from_secs(1)));
    assert_eq!(&bytes[..], b"retry: 1000\n\n");
    assert_eq!(closes.reasons(), [CloseReason::Lagged]);
}

#[test]
fn drop_oldest_policy_keeps_the_newest_events_and_marks_the_gap() {
    let hub = Hub::with_config(
        HubConfig::new()
            .max_lag(3)
            .lag_policy(LagPolicy::DropOldest),
    );
    let mut slow = hub.subscribe(["news"], None);
    for n in 1..=10 {
        hub.publish("news", message(n.to_string())).unwrap();
    }
    assert_eq!(slow.queued(), 10);

    let events = ready_events(&mut slow);
    assert_eq!(events[0].event, RESYNC_EVENT);
    assert_eq!(events[0].data, "lagged");
    assert_eq!(data_of(&events[1..]), ["8", "9", "10"]);

    // Still subscribed, no signal without a new gap.
    hub.publish("news", message("11")).unwrap();
    assert_eq!(data_of(&ready_events(&mut slow)), ["11"]);
    let metrics = hub.metrics();
    assert_eq!(metrics.lag_dropped, 7);
    assert_eq!(metrics.lag_disconnects, 0);
    assert_eq!(metrics.subscribers, 1);
}

#[test]
fn send_to_reaches_every_connection_of_that_user_and_no_other() {
    let hub = Hub::new();
    let mut alice_phone = hub.subscribe_client("alice", ["news"], None);
    let mut alice_laptop = hub.subscribe_client("alice", [] as [&str; 0], None);
    let mut bob = hub.subscribe_client("bob", ["news"], None);
    let mut anonymous = hub.subscribe(["news"], None);

    let id = hub
        .send_to("alice", Event::new().event("dm").data("hi alice"))
        .unwrap();
    for subscription in [&mut alice_phone, &mut alice_laptop] {
        assert_eq!(
            ready_events(subscription),
            [Received {
                event: "dm".into(),
                data: "hi alice".into(),
                id: id.to_string(),
            }]
        );
    }
    assert!(ready(&mut bob).is_empty());
    assert!(ready(&mut anonymous).is_empty());
    hub.send_to("nobody", message("kept for a while")).unwrap();
    let metrics = hub.metrics();
    assert_eq!((metrics.sent, metrics.delivered), (2, 2));
    assert_eq!((metrics.clients, metrics.user_feeds), (2, 3));
}

#[test]
fn a_user_that_comes_back_gets_what_was_sent_while_it_was_away_on_any_connection() {
    let hub = Hub::new();
    let mut phone = hub.subscribe_client("alice", ["news"], None);
    hub.publish("news", message("n1")).unwrap();
    hub.send_to("alice", message("private")).unwrap();

    // Read as a browser does: one decoder over the whole stream.
    let mut decoder = Decoder::new();
    for item in ready(&mut phone) {
        decoder.push(item.unwrap().as_bytes());
    }
    let news = decoder.next_event().unwrap().unwrap();
    let private = decoder.next_event().unwrap().unwrap();
    assert_eq!(
        (news.data.as_str(), private.data.as_str()),
        ("n1", "private")
    );
    assert!(news.last_event_id < private.last_event_id);
    drop(phone);

    hub.send_to("alice", message("away 1")).unwrap();
    hub.publish("news", message("n2")).unwrap();
    hub.send_to("bob", message("not for alice")).unwrap();
    hub.send_to("alice", message("away 2")).unwrap();

    // Back on the phone: the topic's and the feed's events, in order.
    let mut phone = hub.subscribe_client("alice", ["news"], Some(&private.last_event_id));
    assert_eq!(
        data_of(&ready_events(&mut phone)),
        ["away 1", "n2", "away 2"]
    );
    // Or on a connection to the feed alone, with the same id.
    let mut laptop = hub.subscribe_client("alice", [] as [&str; 0], Some(&private.last_event_id));
    assert_eq!(data_of(&ready_events(&mut laptop)), ["away 1", "away 2"]);
    // Both get what comes next.
    hub.send_to("alice", message("live")).unwrap();
    assert_eq!(data_of(&ready_events(&mut phone)), ["live"]);
    assert_eq!(data_of(&ready_events(&mut laptop)), ["live"]);
}

#[tokio::test(start_paused = true)]
async fn a_user_away_longer_than_its_window_gets_the_resync_signal() {
    let hub = Hub::with_config(HubConfig::new().user_replay_max_age(Duration::from_secs(60)));
    let mut tab = hub.subscribe_client("alice", [] as [&str; 0], None);
    hub.send_to("alice", message("seen")).unwrap();
    let seen = ready_events(&mut tab).remove(0);
    drop(tab);
    hub.send_to("alice", message("missed")).unwrap();
    tokio::time::advance(Duration::from_secs(61)).await;

    let mut tab = hub.subscribe_client("alice", [] as [&str; 0], Some(&seen.id));
    assert_eq!(
        ready_events(&mut tab),
        [Received::resync("expired", hub.latest_id())]
    );
}

#[tokio::test(start_paused = true)]
async fn idle_user_feeds_and_topics_are_forgotten_once_their_events_expire() {
    const USERS: usize = 100_000;
    let hub = Hub::with_config(
        HubConfig::new()
            .replay_max_age(Duration::from_secs(30))
            .user_replay_max_age(Duration::from_secs(60)),
    );
    let before = hub.latest_id().to_string();
    for n in 0..USERS {
        hub.send_to(&format!("user-{n}"), message("you have mail"))
            .unwrap();
    }
    hub.publish("scores", message("1-0")).unwrap();
    let metrics = hub.metrics();
    assert_eq!((metrics.user_feeds, metrics.topics), (USERS, 1));
    assert_eq!(metrics.retained_events, USERS + 1);

    tokio::time::advance(Duration::from_secs(31)).await;
    let metrics = hub.metrics();
    assert_eq!((metrics.user_feeds, metrics.topics), (USERS, 0));

    tokio::time::advance(Duration::from_secs(30)).await;
    let metrics = hub.metrics();
    assert_eq!((metrics.user_feeds, metrics.topics), (0, 0));
    assert_eq!((metrics.retained_events, metrics.retained_bytes), (0, 0));

    // A late resume into a forgotten feed or topic is told, never silently
    // restarted.
    let mut late = hub.subscribe_client("user-7", ["scores"], Some(&before));
    assert_eq!(
        ready_events(&mut late),
        [Received::resync("expired", hub.latest_id())]
    );
    // While someone is subscribed, a feed is kept, and forgotten once left.
    hub.send_to("user-7", message("hello")).unwrap();
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(hub.metrics().user_feeds, 1);
    drop(late);
    assert_eq!(hub.metrics().user_feeds, 0);
}

#[test]
fn user_feeds_with_nothing_retained_are_forgotten_when_their_connections_close() {
    let hub = Hub::new();
    let alice_phone = hub.subscribe_client("alice", ["news"], None);
    let alice_laptop = hub.subscribe_client("alice", ["sports"], None);
    let bob = hub.subscribe_client("bob", [] as [&str; 0], None);
    let metrics = hub.metrics();
    assert_eq!((metrics.clients, metrics.subscribers), (2, 3));

    drop(alice_phone);
    assert_eq!(hub.metrics().clients, 2);
    drop(alice_laptop);
    drop(bob);

    let metrics = hub.metrics();
    assert_eq!(
        (
            metrics.clients,
            metrics.subscribers,
            metrics.topics,
            metrics.user_feeds
        ),
        (0, 0, 0, 0)
    );
}

#[test]
fn a_lagging_user_connection_leaves_the_registry() {
    let hub = Hub::with_config(HubConfig::new().max_lag(1));
    let mut slow = hub.subscribe_client("alice", [] as [&str; 0], None);
    for n in 1..=3 {
        hub.send_to("alice", message(n.to_string())).unwrap();
    }
    assert_eq!(hub.metrics().clients, 1);
    assert_eq!(ready(&mut slow).last(), Some(&Err(Lagged::new())));
    let metrics = hub.metrics();
    assert_eq!((metrics.clients, metrics.lag_disconnects), (0, 1));
}

#[test]
fn dropping_subscriptions_unregisters_them_at_once() {
    let hub = Hub::new();
    let subscriptions: Vec<Subscription> = (0..10)
        .map(|n| hub.subscribe([format!("topic-{}", n % 3)], None))
        .collect();
    assert_eq!(hub.metrics().subscribers, 10);
    assert_eq!(hub.metrics().topics, 3);
    hub.publish("topic-0", message("x")).unwrap();
    drop(subscriptions);
    let metrics = hub.metrics();
    assert_eq!(metrics.subscribers, 0);
    // Topics never published to are forgotten; published ones keep their window.
    assert_eq!(metrics.topics, 1);
}

#[test]
fn subscriptions_end_when_the_last_hub_handle_is_dropped() {
    let hub = Hub::new();
    let publisher = hub.clone();
    let mut subscription = hub.subscribe(["news"], None);
    drop(hub);
    publisher.publish("news", message("last")).unwrap();
    assert_eq!(data_of(&ready_events(&mut subscription)), ["last"]);
    assert!(!ended(&mut subscription));
    assert!(!subscription.is_terminated());

    drop(publisher);
    assert!(ended(&mut subscription));
    assert!(subscription.is_terminated());
    assert!(ended(&mut subscription));
}

#[tokio::test]
async fn a_waiting_subscriber_is_woken_by_a_publish() {
    let hub = Hub::new();
    let mut subscription = hub.subscribe(["news"], None);
    let waiting = tokio::spawn(async move { subscription.next().await });
    tokio::task::yield_now().await;
    hub.publish("news", message("wake up")).unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("woken")
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(decode(&event).unwrap().data, "wake up");
}

/// A waker that counts how often it is woken.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl CountingWaker {
    fn new() -> (Arc<Self>, Waker) {
        let count = Arc::new(Self::default());
        (Arc::clone(&count), Waker::from(Arc::clone(&count)))
    }

    fn woken(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn poll_with(
    subscription: &mut Subscription,
    waker: &Waker,
) -> Poll<Option<Result<EncodedEvent, Lagged>>> {
    Pin::new(subscription).poll_next(&mut Context::from_waker(waker))
}

#[test]
fn a_subscriber_that_took_everything_is_woken_once_by_the_next_publishes() {
    let hub = Hub::new();
    let mut subscription = hub.subscribe(["news"], None);
    let (count, waker) = CountingWaker::new();
    hub.publish("news", message("1")).unwrap();
    assert!(poll_with(&mut subscription, &waker).is_ready());
    assert!(poll_with(&mut subscription, &waker).is_pending());
    assert!(poll_with(&mut subscription, &waker).is_pending());

    hub.publish("news", message("2")).unwrap();
    hub.publish("news", message("3")).unwrap();
    assert_eq!(count.woken(), 1);
    assert_eq!(data_of(&ready_events(&mut subscription)), ["2", "3"]);
}

#[test]
fn a_subscription_polled_from_another_task_is_woken_there() {
    let hub = Hub::new();
    let mut subscription = hub.subscribe(["news"], None);
    let (first, first_waker) = CountingWaker::new();
    let (second, second_waker) = CountingWaker::new();
    assert!(poll_with(&mut subscription, &first_waker).is_pending());
    assert!(poll_with(&mut subscription, &first_waker).is_pending());
    assert!(poll_with(&mut subscription, &second_waker).is_pending());

    hub.publish("news", message("moved")).unwrap();
    assert_eq!((first.woken(), second.woken()), (0, 1));
    assert_eq!(data_of(&ready_events(&mut subscription)), ["moved"]);
}

#[test]
fn a_waiting_subscriber_is_woken_when_the_hub_is_dropped() {
    let hub = Hub::new();
    let mut subscription = hub.subscribe(["news"], None);
    let (count, waker) = CountingWaker::new();
    assert!(poll_with(&mut subscription, &waker).is_pending());
    assert!(poll_with(&mut subscription, &waker).is_pending());
    drop(hub);
    assert_eq!(count.woken(), 1);
    assert!(matches!(
        poll_with(&mut subscription, &waker),
        Poll::Ready(None)
    ));
}

#[test]
fn metrics_count_publishes_deliveries_and_replays() {
    let hub = Hub::new();
    let mut a = hub.subscribe(["a"], None);
    let mut b = hub.subscribe(["a", "b"], None);
    let first = hub.publish("a", message("1")).unwrap().to_string();
    hub.publish("b", message("2")).unwrap();
    hub.publish("c", message("3")).unwrap();
    let mut resumed = hub.subscribe(["a", "b"], Some(&first));
    let mut unknown = hub.subscribe(["a"], Some("nope"));
    for subscription in [&mut a, &mut b, &mut resumed, &mut unknown] {
        ready(subscription);
    }

    let metrics = hub.metrics();
    assert_eq!(metrics.published, 3);
    // 2 + 1 + 0 live, 1 replayed.
    assert_eq!(metrics.delivered, 4);
    assert_eq!((metrics.replay_hits, metrics.replay_misses), (1, 1));
    assert_eq!(metrics.subscribers, 4);
    assert_eq!(metrics.topics, 3);
    assert_eq!(metrics.retained_events, 3);
    assert!(metrics.retained_bytes > 0);
}

proptest! {
    #[test]
    fn any_last_event_id_is_safe_and_resyncs(
        // Arbitrary text, and text shaped like ids (of other hubs, or almost
        // canonical) that takes the parser past its first checks.
        last_event_id in prop_oneof![
            any::<String>(),
            "[0-9a-f]{12}-[0-9]{1,21}",
            "[0-9a-fA-F]{10,14}-[-+0-9]{0,22}",
        ],
    ) {
        let hub = Hub::new();
        hub.publish("news", message("x")).unwrap();
        let mut subscription = hub.subscribe(["news"], Some(&last_event_id));
        let events = ready_events(&mut subscription);
        if last_event_id.is_empty() {
            prop_assert!(events.is_empty());
        } else {
            prop_assert_eq!(events, vec![Received::resync("unknown-id", hub.latest_id())]);
        }
    }

    #[test]
    fn resuming_from_any_id_replays_exactly_the_later_events_of_its_topics(
        topics in proptest::collection::vec(0..4_usize, 1..60),
        subscribed in proptest::collection::btree_set(0..4_usize, 1..4),
        resume_at in any::<prop::sample::Index>(),
    ) {
        let hub = Hub::new();
        let names = ["t0", "t1", "t2", "t3"];
        let mut published = vec![(hub.latest_id().to_string(), usize::MAX)];
        for (n, &topic) in topics.iter().enumerate() {
            let id = hub.publish(names[topic], message(n.to_string())).unwrap();
            published.push((id.to_string(), topic));
        }
        let at = resume_at.index(published.len());
        let subscription_topics: Vec<&str> = subscribed.iter().map(|&t| names[t]).collect();
        let mut subscription = hub.subscribe(subscription_topics, Some(&published[at].0));

        let expected: Vec<String> = (at + 1..published.len())
            .filter(|&n| subscribed.contains(&published[n].1))
            .map(|n| (n - 1).to_string())
            .collect();
        let received = ready_events(&mut subscription);
        prop_assert_eq!(data_of(&received), expected);
    }
}

/// A tiny seeded generator (xorshift64*), so that every run of the
/// randomized test is reproducible from its seed.
#[derive(Clone, Debug)]
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform enough in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn fork(&mut self) -> Self {
        Self::new(self.next())
    }
}

const TOPICS: [&str; 4] = ["t0", "t1", "t2", "t3"];
const PUBLISHERS: usize = 4;
const EVENTS_PER_PUBLISHER: usize = 1500;
const SUBSCRIBERS: usize = 12;
const SEEDS: u64 = 6;

/// What a publisher published: `(position, topic, data)`.
type Published = Vec<(u64, usize, String)>;

#[test]
fn concurrent_publishers_and_resuming_subscribers_see_each_event_once_in_order() {
    for seed in 1..=SEEDS {
        concurrent_scenario(seed);
    }
}

#[test]
fn subscribers_on_other_threads_are_woken_for_every_event() {
    const EVENTS: usize = 20_000;
    let hub = Hub::with_config(
        HubConfig::new()
            .replay_max_events(EVENTS)
            .max_lag(EVENTS as u64),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    // Each waits for every event; a lost wake-up leaves one waiting forever,
    // which the timeout turns into a failure.
    let subscribers: Vec<_> = (0..8)
        .map(|_| {
            let mut subscription = hub.subscribe(["news"], None);
            runtime.spawn(async move {
                let mut data = Vec::with_capacity(EVENTS);
                while data.len() < EVENTS {
                    let next = tokio::time::timeout(Duration::from_secs(10), subscription.next());
                    let event = next.await.expect("woken").unwrap().unwrap();
                    data.push(decode(&event).unwrap().data);
                }
                data
            })
        })
        .collect();
    let publisher = std::thread::spawn(move || {
        for n in 0..EVENTS {
            hub.publish("news", message(n.to_string())).unwrap();
            // Vary the pace so that subscribers often go idle just as an
            // event comes.
            if n % 3 == 0 {
                std::thread::yield_now();
            }
        }
        hub
    });
    let _hub = publisher.join().unwrap();
    let expected: Vec<String> = (0..EVENTS).map(|n| n.to_string()).collect();
    for subscriber in subscribers {
        assert_eq!(runtime.block_on(subscriber).unwrap(), expected);
    }
}

#[test]
fn subscribers_of_a_topic_and_a_user_feed_on_other_threads_get_both_in_order() {
    const EACH: usize = 5_000;
    let hub = Hub::with_config(
        HubConfig::new()
            .replay_max_events(2 * EACH)
            .replay_max_bytes(usize::MAX)
            .user_replay_max_events(2 * EACH)
            .user_replay_max_bytes(usize::MAX)
            .max_lag(4 * EACH as u64),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    // Each waits for every event of the topic and of its feed, in position
    // order; a lost wake-up leaves one waiting, which the timeout turns into
    // a failure, and an event taken out of order fails the check.
    let subscribers: Vec<_> = (0..6)
        .map(|_| {
            let mut subscription = hub.subscribe_client("alice", ["news"], None);
            runtime.spawn(async move {
                let mut seen = Vec::with_capacity(2 * EACH);
                while seen.len() < 2 * EACH {
                    let next = tokio::time::timeout(Duration::from_secs(10), subscription.next());
                    let event = next.await.expect("woken").unwrap().unwrap();
                    let event = decode(&event).unwrap();
                    let seq: u64 = event.id.rsplit('-').next().unwrap().parse().unwrap();
                    seen.push((seq, event.data));
                }
                seen
            })
        })
        .collect();
    let news = {
        let hub = hub.clone();
        std::thread::spawn(move || {
            (0..EACH)
                .map(|n| {
                    let id = hub.publish("news", message(format!("news {n}"))).unwrap();
                    if n % 3 == 0 {
                        std::thread::yield_now();
                    }
                    (id.seq(), format!("news {n}"))
                })
                .collect::<Vec<_>>()
        })
    };
    let direct: Vec<(u64, String)> = (0..EACH)
        .map(|n| {
            let id = hub.send_to("alice", message(format!("dm {n}"))).unwrap();
            if n % 5 == 0 {
                std::thread::yield_now();
            }
            (id.seq(), format!("dm {n}"))
        })
        .collect();
    let mut expected = news.join().unwrap();
    expected.extend(direct);
    expected.sort_unstable();
    for subscriber in subscribers {
        assert_eq!(runtime.block_on(subscriber).unwrap(), expected);
    }
}

fn concurrent_scenario(seed: u64) {
    let mut rng = XorShift::new(seed);
    // A small bound makes subscribers lag and resume; a large one does not.
    let max_lag = [2, 32, 100_000][rng.below(3) as usize];
    let hub = Hub::with_config(
        HubConfig::new()
            .replay_max_events(usize::MAX)
            .replay_max_bytes(usize::MAX)
            .max_lag(max_lag),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));

    let subscribers: Vec<_> = (0..SUBSCRIBERS)
        .map(|_| {
            let mut rng = rng.fork();
            let mut topics: Vec<usize> = (0..TOPICS.len()).filter(|_| rng.below(2) == 0).collect();
            if topics.is_empty() {
                topics.push(rng.below(TOPICS.len() as u64) as usize);
            }
            let task = runtime.spawn(subscriber(hub.clone(), topics.clone(), rng, done.clone()));
            (topics, task)
        })
        .collect();

    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|publisher| {
            let hub = hub.clone();
            let mut rng = rng.fork();
            std::thread::spawn(move || {
                let mut published = Published::new();
                for n in 0..EVENTS_PER_PUBLISHER {
                    let topic = rng.below(TOPICS.len() as u64) as usize;
                    let data = format!("p{publisher}-{n}");
                    let id = hub
                        .publish(TOPICS[topic], Event::new().event("e").data(data.clone()))
                        .unwrap();
                    published.push((id.seq(), topic, data));
                    if rng.below(16) == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                published
            })
        })
        .collect();

    // What was published at each position.
    let total = PUBLISHERS * EVENTS_PER_PUBLISHER;
    let mut truth: Vec<Option<(usize, String)>> = vec![None; total + 1];
    for publisher in publishers {
        let published = publisher.join().unwrap();
        // A publisher's own events take increasing positions.
        assert!(published.windows(2).all(|pair| pair[0].0 < pair[1].0));
        for (seq, topic, data) in published {
            truth[seq as usize] = Some((topic, data));
        }
    }
    assert!(
        truth[1..].iter().all(Option::is_some),
        "positions are dense"
    );
    done.store(true, Ordering::SeqCst);

    for (topics, task) in subscribers {
        let seen = runtime.block_on(task).unwrap();
        check_exactly_once_in_order(seed, &topics, &seen, &truth);
    }
    drop(runtime);
    let metrics = hub.metrics();
    assert_eq!(metrics.subscribers, 0, "seed {seed}: {metrics:?}");
    assert_eq!(metrics.published, total as u64);
}

/// What a subscriber saw: every event as `(position, data)`, and the newest
/// positions just before and just after its first (live) subscription.
#[derive(Debug, Default)]
struct Seen {
    events: Vec<(u64, String)>,
    joined_between: (u64, u64),
}

/// Subscribes, reads a random number of events, leaves, and resumes from the
/// last id it saw, until the publishers are done; then resumes once more and
/// takes everything left.
async fn subscriber(
    hub: Hub,
    topics: Vec<usize>,
    mut rng: XorShift,
    done: Arc<AtomicBool>,
) -> Seen {
    tokio::time::sleep(Duration::from_micros(rng.below(50_000))).await;
    let names: Vec<&str> = topics.iter().map(|&topic| TOPICS[topic]).collect();
    let epoch = hub
        .latest_id()
        .to_string()
        .split_once('-')
        .unwrap()
        .0
        .to_owned();
    let mut last_event_id: Option<String> = None;
    let mut seen = Seen::default();
    loop {
        let finishing = done.load(Ordering::SeqCst);
        let before = hub.latest_id().seq();
        let mut subscription = hub.subscribe(&names, last_event_id.as_deref());
        if last_event_id.is_none() {
            seen.joined_between = (before, hub.latest_id().seq());
        }
        let budget = rng.below(300);
        let mut taken = 0;
        while finishing || taken < budget {
            let item = if finishing {
                match subscription.next().now_or_never() {
                    Some(item) => item,
                    None => break,
                }
            } else {
                match tokio::time::timeout(Duration::from_millis(5), subscription.next()).await {
                    Ok(item) => item,
                    Err(_) => break,
                }
            };
            match item {
                Some(Ok(event)) => {
                    // The lag hint dispatches nothing.
                    let Some(event) = decode(&event) else {
                        continue;
                    };
                    assert_ne!(event.event, RESYNC_EVENT, "the window holds everything");
                    let seq = event
                        .id
                        .strip_prefix(&format!("{epoch}-"))
                        .and_then(|seq| seq.parse().ok())
                        .expect("an id of this hub");
                    seen.events.push((seq, event.data));
                    last_event_id = Some(event.id);
                    taken += 1;
                }
                Some(Err(Lagged { .. })) => break,
                None => panic!("the hub is still there"),
            }
        }
        drop(subscription);
        if finishing {
            return seen;
        }
        if rng.below(4) == 0 {
            // Away for a while.
            tokio::time::sleep(Duration::from_micros(rng.below(5_000))).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
}

fn check_exactly_once_in_order(
    seed: u64,
    topics: &[usize],
    seen: &Seen,
    truth: &[Option<(usize, String)>],
) {
    let context = format!("seed {seed}, topics {topics:?}");
    let (joined_after, joined_before) = seen.joined_between;
    let seen = &seen.events;
    for pair in seen.windows(2) {
        assert!(
            pair[0].0 < pair[1].0,
            "{context}: {} then {}: a duplicate or out of order",
            pair[0].0,
            pair[1].0
        );
    }
    for (seq, data) in seen {
        let (topic, expected) = truth[*seq as usize].as_ref().unwrap();
        assert!(topics.contains(topic), "{context}: got topic {topic}");
        assert_eq!(data, expected, "{context}: at {seq}");
    }
    let wanted: Vec<u64> = (1..truth.len() as u64)
        .filter(|&seq| topics.contains(&truth[seq as usize].as_ref().unwrap().0))
        .collect();
    // A live subscription starts after what was published before it and
    // includes everything published once it was registered.
    let must_see = wanted.iter().copied().find(|&seq| seq > joined_before);
    let Some(&(first, _)) = seen.first() else {
        assert_eq!(must_see, None, "{context}: saw nothing");
        return;
    };
    assert!(
        first > joined_after,
        "{context}: {first} was published before joining"
    );
    if let Some(must_see) = must_see {
        assert!(
            first <= must_see,
            "{context}: missed {must_see} after joining"
        );
    }
    let expected: Vec<u64> = wanted.into_iter().filter(|&seq| seq >= first).collect();
    let got: Vec<u64> = seen.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(got, expected, "{context}: a gap");
}
