//! The hub's policy: replay window, subscriber queues, lag.

use std::time::Duration;

/// What happens to a subscriber whose queue is full when an event arrives for
/// it: it has fallen behind the publishers.
///
/// Either way [`publish`](super::Hub::publish) never waits for a subscriber,
/// and no other subscriber notices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LagPolicy {
    /// End the subscriber's stream: it yields the events already queued, then
    /// (when [`HubConfig::lag_retry`] is set) a `retry:` hint, then
    /// [`Lagged`](crate::Lagged), which ends an SSE response cleanly. The
    /// client reconnects with its `Last-Event-ID` and replays what it missed
    /// from the window, so nothing is lost while the window holds it.
    #[default]
    Disconnect,
    /// Keep the subscriber, drop the oldest event in its queue to make room,
    /// and put a [`RESYNC_EVENT`](super::RESYNC_EVENT) with data `lagged` in
    /// the stream where the events are missing. Suits feeds where only the
    /// latest state matters.
    DropOldest,
}

/// The policy of a [`Hub`](super::Hub): how much each topic retains for
/// replay, how many events each subscriber may have waiting, and what happens
/// to a subscriber that falls behind.
///
/// ```
/// use std::time::Duration;
/// use tower_sse::hub::{Hub, HubConfig, LagPolicy};
///
/// let hub = Hub::with_config(
///     HubConfig::new()
///         .replay_max_events(10_000)
///         .replay_max_bytes(4 * 1024 * 1024)
///         .replay_max_age(Duration::from_secs(300))
///         .queue_capacity(256)
///         .lag_policy(LagPolicy::Disconnect)
///         .lag_retry(Some(Duration::from_millis(500))),
/// );
/// # drop(hub);
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct HubConfig {
    pub(crate) replay_max_events: usize,
    pub(crate) replay_max_bytes: usize,
    pub(crate) replay_max_age: Option<Duration>,
    pub(crate) queue_capacity: usize,
    pub(crate) lag_policy: LagPolicy,
    pub(crate) lag_retry: Option<Duration>,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            replay_max_events: Self::DEFAULT_REPLAY_MAX_EVENTS,
            replay_max_bytes: Self::DEFAULT_REPLAY_MAX_BYTES,
            replay_max_age: None,
            queue_capacity: Self::DEFAULT_QUEUE_CAPACITY,
            lag_policy: LagPolicy::Disconnect,
            lag_retry: Some(Self::DEFAULT_LAG_RETRY),
        }
    }
}

impl HubConfig {
    /// Default bound on the events each topic retains for replay: 1024.
    pub const DEFAULT_REPLAY_MAX_EVENTS: usize = 1024;
    /// Default bound on the encoded bytes each topic retains for replay: 1 MiB.
    pub const DEFAULT_REPLAY_MAX_BYTES: usize = 1024 * 1024;
    /// Default bound on the events waiting for one subscriber: 1024.
    pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;
    /// Default reconnection time suggested to a subscriber cut off for lag:
    /// one second.
    pub const DEFAULT_LAG_RETRY: Duration = Duration::from_secs(1);

    /// The default policy: each topic retains its last 1024 events and at most
    /// 1 MiB of them, of any age; each subscriber may have 1024 events
    /// waiting; a subscriber that falls further behind is disconnected with a
    /// one-second `retry:` hint.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bounds the number of events each topic retains for replay. `0` retains
    /// none: every resumed subscription then gets the resync signal once the
    /// topic has published.
    pub fn replay_max_events(mut self, max: usize) -> Self {
        self.replay_max_events = max;
        self
    }

    /// Bounds the encoded bytes each topic retains for replay. The oldest
    /// events are dropped first; an event larger than the bound is not
    /// retained at all.
    pub fn replay_max_bytes(mut self, max: usize) -> Self {
        self.replay_max_bytes = max;
        self
    }

    /// Drops retained events once they are older than `max_age`.
    ///
    /// Age is checked when the topic is published to or subscribed to, so an
    /// idle topic keeps its expired events in memory (within the count and
    /// byte bounds) but never replays them.
    pub fn replay_max_age(mut self, max_age: Duration) -> Self {
        self.replay_max_age = Some(max_age);
        self
    }

    /// Bounds the events waiting in each subscriber's queue; at least 1.
    ///
    /// A subscriber's memory is at most this many handles to shared, already
    /// encoded events.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// Sets what happens to a subscriber whose queue is full.
    pub fn lag_policy(mut self, policy: LagPolicy) -> Self {
        self.lag_policy = policy;
        self
    }

    /// Sets the reconnection time sent in a `retry:` field just before a
    /// lagging subscriber's stream ends ([`LagPolicy::Disconnect`]); `None`
    /// sends no hint.
    ///
    /// A browser keeps a `retry:` value for the rest of the `EventSource`'s
    /// life, so it also applies to later reconnects.
    pub fn lag_retry(mut self, retry: Option<Duration>) -> Self {
        self.lag_retry = retry;
        self
    }
}
