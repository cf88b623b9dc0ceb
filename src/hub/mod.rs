//! A broadcast hub: topics, per-user feeds, replay for `Last-Event-ID`, and a
//! policy for slow consumers.
//!
//! A [`Hub`] turns tower-sse from a framing helper into a live-feed system:
//!
//! - **Encode once, append once.** [`Hub::publish`] encodes an event once and
//!   appends it to the topic's log, a bounded ring that is at once the replay
//!   window and what every live subscriber reads, each at its own position.
//!   Publishing costs the same whatever the number of subscribers; it only
//!   wakes those that are waiting, after every lock is released.
//! - **Resume without gaps or duplicates.** The hub gives every event an id
//!   ([`EventId`]). A client that reconnects with the last id it saw gets
//!   exactly the events it missed, in publish order, then live events, even
//!   while publishers keep publishing, and across all the topics of its
//!   subscription and its user feed: one id resumes them all.
//! - **A clear signal when it cannot.** When the id is not one of this hub's
//!   (malformed, from an earlier process, from another hub) or the missed
//!   events have left the replay window, the stream starts with a
//!   [`RESYNC_EVENT`] instead, then goes on live.
//! - **Slow consumers harm no one.** A live subscriber holds no queue of its
//!   own; publishing never waits for anyone, and a subscriber that falls too
//!   far behind is handled by the [`LagPolicy`].
//! - **Per-user feeds that resume.** [`Hub::send_to`] appends to a user's
//!   own log; every connection registered with [`Hub::subscribe_client`]
//!   for that user gets it, and a connection that comes back with its
//!   `Last-Event-ID` gets what was sent while it was away.
//! - **Idle topics and users are forgotten**, and their memory given back.
//!
//! # Ids and the replay window
//!
//! Ids look like `3f09a1c27b5e-42`: a random epoch that identifies the hub,
//! then the event's position in the hub's publish order. Positions are
//! hub-wide, so ids increase in publish order within every topic and across
//! topics and user feeds, and one id tells a subscriber of several topics
//! where it stands in each of them. An event that already has an id is
//! refused ([`HubError::is_id_set`]): an id the hub did not assign could not
//! be resumed from. [`EventId`] parses with [`str::parse`].
//!
//! Each topic retains its newest events, bounded by count, by encoded bytes
//! and optionally by age; each user feed too, with bounds of its own
//! ([`HubConfig`]). A resume is honoured when every event of the subscribed
//! topics and user feed after the client's id is still retained; otherwise
//! the client gets the resync signal, and nothing is replayed.
//!
//! # Forgetting
//!
//! A topic or user feed with no subscriber is forgotten, its memory freed,
//! once its window is empty or every event in it has expired (so only logs
//! with a maximum age, or never published to, are forgotten: a topic without
//! one keeps its newest events for the hub's life, to tell a late resume what
//! it missed). Forgetting is lazy: every publish, send, subscribe and
//! unsubscribe forgets a few expired logs, and [`Hub::metrics`] forgets all
//! that are due. A late resume to a forgotten topic or feed gets the resync
//! signal, never a silent gap (the hub remembers, in 4096 buckets of names,
//! the newest position each bucket has forgotten; a resume from before it
//! into a log made anew is resynced).
//!
//! # The resync signal
//!
//! An event of type [`RESYNC_EVENT`] (`tower-sse-resync`) means "events are
//! missing here: reload your state". Its data says why:
//!
//! - `unknown-id`: the `Last-Event-ID` is not an id of this hub;
//! - `expired`: the missed events have left the replay window;
//! - `lagged`: the subscriber fell behind and events were skipped
//!   ([`LagPolicy::DropOldest`]).
//!
//! The first two open the stream and carry the id of the newest event at that
//! moment, so that a client that reconnects again resumes from there. A page
//! handles it by fetching a fresh snapshot:
//!
//! ```text
//! source.addEventListener("tower-sse-resync", () => reloadState());
//! ```
//!
//! # What it costs
//!
//! Measured on 64-bit Linux with `examples/hub_memory.rs` (growth of the
//! resident set over 100,000 of each): an idle subscription of one topic
//! costs about 170 bytes; a topic with a subscriber about 290 bytes beyond
//! the subscription; a retained event about 85 bytes beyond its encoded
//! size; a user feed holding one short notification about 470 bytes in
//! all. A slow subscriber holds nothing more: it reads the shared log.
//!
//! # Observability
//!
//! [`Hub::metrics`] returns a [`HubMetrics`] snapshot. The hub emits
//! `tracing` events at debug level: connects, disconnects and lag
//! disconnects (counted in the metrics).

mod config;
mod error;
mod id;
mod log;
mod metrics;
#[cfg(feature = "redis")]
mod redis;
mod registry;
mod subscription;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::event::{EncodedEvent, Event};

pub use config::{HubConfig, LagPolicy};
pub use error::{HubError, InvalidEventId};
pub use id::EventId;
pub use metrics::HubMetrics;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::{RedisHub, RedisHubBuilder, RedisHubMetrics};
pub use subscription::Subscription;

use id::{Epoch, Unnumbered};
use log::Kind;
use registry::{AfterUnlock, Registry, Resume, Resync};

/// The event type of the signal that events are missing and the client
/// should reload its state: `tower-sse-resync`. See the
/// [module docs](self#the-resync-signal).
pub const RESYNC_EVENT: &str = "tower-sse-resync";

/// The resync signal for events a lagging subscriber skipped
/// ([`LagPolicy::DropOldest`]), encoded: the same for every hub.
const GAP_SIGNAL: &[u8] = b"event: tower-sse-resync\ndata: lagged\n\n";

/// A broadcast hub: publish events to topics or send them to clients; serve
/// each connection a [`Subscription`] that resumes from `Last-Event-ID`.
///
/// Cloning is cheap and every clone is the same hub; it is `Send + Sync`.
/// When the last clone is dropped, every subscription's stream ends.
///
/// # Example
///
/// ```
/// use futures_util::StreamExt;
/// use tower_sse::Event;
/// use tower_sse::decode::Decoder;
/// use tower_sse::hub::Hub;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let hub = Hub::new();
///
/// // A client connects and receives an event.
/// let mut first = hub.subscribe(["prices"], None);
/// let id = hub.publish("prices", Event::new().event("price").data("101.5"))?;
/// let event = first.next().await.unwrap()?;
/// let mut decoder = Decoder::new();
/// decoder.push(event.as_bytes());
/// let event = decoder.next_event()?.unwrap();
/// assert_eq!((event.event_type.as_str(), event.data.as_str()), ("price", "101.5"));
/// assert_eq!(event.last_event_id, id.to_string());
///
/// // It disconnects; an event is published meanwhile.
/// drop(first);
/// hub.publish("prices", Event::new().event("price").data("102.0"))?;
///
/// // It reconnects with `Last-Event-ID: {id}` and gets what it missed.
/// let last_event_id = id.to_string();
/// let mut again = hub.subscribe(["prices"], Some(&last_event_id));
/// let missed = again.next().await.unwrap()?;
/// decoder.push(missed.as_bytes());
/// assert_eq!(decoder.next_event()?.unwrap().data, "102.0");
/// # Ok(())
/// # }
/// ```
///
/// Serving a subscription from a tower service behind
/// [`SseLayer`](crate::SseLayer):
///
/// ```
/// use std::convert::Infallible;
///
/// use http::{Request, Response};
/// use tower::{ServiceBuilder, service_fn};
/// use tower_sse::hub::Hub;
/// use tower_sse::{LastEventIdHeader, SseLayer};
///
/// let hub = Hub::new();
/// let service = ServiceBuilder::new()
///     .layer(SseLayer::new())
///     .service(service_fn(move |request: Request<()>| {
///         // A header that was sent but is unusable resumes nothing: the
///         // stream opens with the resync signal.
///         let last = request.extensions().get::<LastEventIdHeader>();
///         let events = hub.subscribe(["news"], last.and_then(LastEventIdHeader::for_resume));
///         async move { Ok::<_, Infallible>(Response::new(events)) }
///     }));
/// # drop(service);
/// ```
#[derive(Clone)]
pub struct Hub {
    handle: Arc<Handle>,
}

/// Every `Hub` clone shares one `Handle`; subscriptions hold only the
/// `Shared` state, so that dropping the last `Hub` can end their streams.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let mut after = AfterUnlock::default();
        self.shared.lock().close_all(&mut after);
        after.run();
    }
}

/// What the hub and its subscriptions share.
#[derive(Debug)]
struct Shared {
    registry: Mutex<Registry>,
    /// The position of the newest event appended to its log: every event up
    /// to it can be read. Stored under the log's lock (see `Log::append`).
    committed: AtomicU64,
    /// Counted by subscriptions as they read, outside the hub's lock.
    delivered: AtomicU64,
    lag_disconnects: AtomicU64,
    lag_dropped: AtomicU64,
    config: HubConfig,
    epoch: Epoch,
    /// The `retry:` block sent before a lagging subscriber's stream ends.
    lag_hint: Option<EncodedEvent>,
}

impl Shared {
    fn new(config: HubConfig, epoch: Epoch) -> Self {
        let lag_hint = config
            .lag_retry
            .and_then(|retry| Event::new().retry(retry).encode().ok());
        Self {
            registry: Mutex::new(Registry::default()),
            committed: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            lag_disconnects: AtomicU64::new(0),
            lag_dropped: AtomicU64::new(0),
            config,
            epoch,
            lag_hint,
        }
    }

    /// Where a subscription with this `Last-Event-ID` starts.
    fn resume(&self, last_event_id: Option<&str>) -> Resume {
        match last_event_id {
            None | Some("") => Resume::Live,
            Some(id) => match id.parse::<EventId>().ok() {
                Some(id) if id.epoch() == self.epoch => Resume::After(id.seq()),
                _ => Resume::Unknown,
            },
        }
    }

    /// The resync signal, carrying the id of `position` to resume from.
    fn resync_signal(&self, resync: Resync, position: u64) -> Option<EncodedEvent> {
        Event::new()
            .id(EventId::new(self.epoch, position))
            .event(RESYNC_EVENT)
            .data(resync.as_str())
            .encode()
            .ok()
    }

    fn metrics(&self) -> HubMetrics {
        let mut after = AfterUnlock::default();
        let snapshot = {
            let mut registry = self.lock();
            registry.forget_expired(&self.config, &mut after);
            registry.metrics()
        };
        after.run();
        HubMetrics {
            subscribers: snapshot.subscribers,
            clients: snapshot.clients,
            topics: snapshot.topics,
            user_feeds: snapshot.user_feeds,
            retained_events: snapshot.retained_events,
            retained_bytes: snapshot.retained_bytes,
            published: snapshot.published,
            sent: snapshot.sent,
            delivered: self.delivered.load(Ordering::Relaxed),
            lag_disconnects: self.lag_disconnects.load(Ordering::Relaxed),
            lag_dropped: self.lag_dropped.load(Ordering::Relaxed),
            replay_hits: snapshot.replay_hits,
            replay_misses: snapshot.replay_misses,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        // Nothing panics while holding the lock; should something, the
        // registry is still consistent enough to serve.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    /// A hub with the default [`HubConfig`].
    pub fn new() -> Self {
        Self::with_config(HubConfig::default())
    }

    /// A hub with the given policy.
    pub fn with_config(config: HubConfig) -> Self {
        Self {
            handle: Arc::new(Handle {
                shared: Arc::new(Shared::new(config, Epoch::random())),
            }),
        }
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// Publishes `event` to `topic`: gives it the next id, encodes it once
    /// and appends it to the topic's log, where every subscriber reads it and
    /// a reconnecting client replays it.
    ///
    /// Never waits for a subscriber, and costs the same whatever their
    /// number (waking those that wait is done after the hub's locks are
    /// released). Returns the id the event was given.
    ///
    /// # Errors
    ///
    /// When `event` already has an id ([`HubError::is_id_set`]) or holds an
    /// [`EventError`](crate::EventError) ([`HubError::event_error`]). A
    /// refused event takes no id and reaches no one.
    pub fn publish(&self, topic: &str, event: Event) -> Result<EventId, HubError> {
        self.append(Kind::Topic, topic, event)
    }

    /// Sends `event` to the user `user`: appends it to the user's feed, which
    /// every subscription made with [`subscribe_client`](Hub::subscribe_client)
    /// for that user reads. Returns the id the event was given.
    ///
    /// The feed retains events within its own window
    /// ([`HubConfig::user_replay_max_events`] and the like), so a connection
    /// that comes back with its `Last-Event-ID` gets what was sent while it
    /// was away, on any of the user's connections. A user with no
    /// connection gets the event only by resuming; one that never connects
    /// costs the hub the event until its window expires.
    ///
    /// # Errors
    ///
    /// As for [`publish`](Hub::publish).
    pub fn send_to(&self, user: &str, event: Event) -> Result<EventId, HubError> {
        self.append(Kind::User, user, event)
    }

    fn append(&self, kind: Kind, name: &str, event: Event) -> Result<EventId, HubError> {
        check(&event)?;
        // Encoded before the lock is taken; the id goes in under it.
        let event = Unnumbered::encode(event).map_err(HubError::event)?;
        let shared = self.shared();
        let mut after = AfterUnlock::default();
        let id = shared.lock().publish(
            kind,
            name,
            event,
            shared.epoch,
            &shared.config,
            &shared.committed,
            &mut after,
        );
        after.run();
        Ok(id)
    }

    /// Subscribes to `topics`, resuming after `last_event_id` when given.
    ///
    /// Without `last_event_id` (or with an empty one) the subscription gets
    /// live events only. With one of this hub's ids, it first gets every
    /// retained event of `topics` published after that id, in publish order,
    /// then live events, with nothing missing and nothing twice. Otherwise it
    /// first gets the [`RESYNC_EVENT`]. Duplicate topics count once.
    ///
    /// `last_event_id` usually comes from the request's
    /// [`LastEventIdHeader::for_resume`](crate::LastEventIdHeader::for_resume),
    /// which passes an unusable header on as a marker that gets the resync
    /// signal; any string is safe.
    pub fn subscribe<I>(&self, topics: I, last_event_id: Option<&str>) -> Subscription
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.register(None, topics, last_event_id)
    }

    /// Like [`subscribe`](Hub::subscribe), and also reads the feed of
    /// `user`, so that what [`send_to`](Hub::send_to) sends to that user
    /// reaches it, merged with the topics' events in publish order. A user
    /// may have several subscriptions open (several tabs, devices); each gets
    /// everything sent. One `Last-Event-ID` resumes the topics and the feed
    /// together. Pass no topics (`[] as [&str; 0]`) for the user's feed
    /// alone.
    pub fn subscribe_client<I>(
        &self,
        user: &str,
        topics: I,
        last_event_id: Option<&str>,
    ) -> Subscription
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.register(Some(user), topics, last_event_id)
    }

    /// The feed of `user` alone: [`subscribe_client`](Hub::subscribe_client)
    /// with no topics (where an empty array would need a type).
    pub fn subscribe_user(&self, user: &str, last_event_id: Option<&str>) -> Subscription {
        self.register(Some(user), [] as [&str; 0], last_event_id)
    }

    fn register<I>(
        &self,
        user: Option<&str>,
        topics: I,
        last_event_id: Option<&str>,
    ) -> Subscription
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let shared = self.shared();
        let topics: Vec<I::Item> = topics.into_iter().collect();
        let names = sorted_names(&topics);
        let resume = shared.resume(last_event_id);

        let mut after = AfterUnlock::default();
        let subscribed = shared
            .lock()
            .subscribe(&names, user, resume, &shared.config, &mut after);
        after.run();

        let signal = subscribed
            .resync
            .and_then(|resync| shared.resync_signal(resync, subscribed.position));
        tracing::debug!(
            topics = names.len(),
            user,
            resync = subscribed.resync.map(|resync| resync.as_str()),
            "sse hub subscriber connected"
        );
        Subscription::new(Arc::clone(shared), subscribed.cursors, signal)
    }

    /// The id of the newest event published, or the position before the
    /// first event when none has been.
    ///
    /// A page rendered with a snapshot of the state can carry this id, so
    /// that its event stream resumes exactly after the snapshot.
    pub fn latest_id(&self) -> EventId {
        let shared = self.shared();
        EventId::new(shared.epoch, shared.lock().last_seq())
    }

    /// A snapshot of what the hub holds and has done. Idle topics and user
    /// feeds whose events have all expired are forgotten first, so the
    /// snapshot counts only what the hub still holds.
    pub fn metrics(&self) -> HubMetrics {
        self.shared().metrics()
    }

    /// The hub's policy.
    pub fn config(&self) -> &HubConfig {
        &self.shared().config
    }
}

/// The topic names of a subscription, sorted, without duplicates.
fn sorted_names<T: AsRef<str>>(topics: &[T]) -> Vec<&str> {
    let mut names: Vec<&str> = topics.iter().map(AsRef::as_ref).collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Refuses an event that cannot be encoded or already has an id, before
/// taking the hub's lock.
fn check(event: &Event) -> Result<(), HubError> {
    if let Some(error) = event.error() {
        return Err(HubError::event(error.clone()));
    }
    if event.has_id() {
        return Err(HubError::id_set());
    }
    Ok(())
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = self.shared();
        f.debug_struct("Hub")
            .field("epoch", &EventId::new(shared.epoch, 0))
            .field("config", &shared.config)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn the_gap_signal_is_the_lagged_resync_event() {
        let encoded = Event::new()
            .event(RESYNC_EVENT)
            .data("lagged")
            .encode()
            .unwrap();
        assert_eq!(encoded.as_bytes(), GAP_SIGNAL);
    }

    #[test]
    fn hub_and_subscription_are_send_and_sync() {
        assert_send_sync::<Hub>();
        assert_send_sync::<Subscription>();
    }
}
