//! The hub's policy: replay windows for topics and user feeds, lag.

use std::time::Duration;

/// What happens to a subscriber that has fallen more than
/// [`HubConfig::max_lag`] events behind the newest event of one of its topics
/// (or whose next event has already left the replay window).
///
/// Either way [`publish`](super::Hub::publish) never waits for a subscriber,
/// and no other subscriber notices: subscribers read one shared log per topic
/// at their own pace, so a slow one holds no memory of its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LagPolicy {
    /// End the subscriber's stream: it yields the events it had already taken,
    /// then (when [`HubConfig::lag_retry`] is set) a `retry:` hint, then
    /// [`Lagged`](crate::Lagged), which ends an SSE response cleanly. The
    /// client reconnects with its `Last-Event-ID` and replays what it missed
    /// from the window, so nothing is lost while the window holds it (keep
    /// `max_lag` below the window's event bound).
    #[default]
    Disconnect,
    /// Keep the subscriber, skip it ahead to the newest `max_lag` events, and
    /// put a [`RESYNC_EVENT`](super::RESYNC_EVENT) with data `lagged` in the
    /// stream where events are missing. Suits feeds where only the latest
    /// state matters.
    DropOldest,
}

/// The bounds of one log's replay window: a topic's, or a user feed's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) max_events: usize,
    pub(crate) max_bytes: usize,
    pub(crate) max_age: Option<Duration>,
}

/// The policy of a [`Hub`](super::Hub): how much each topic and each user
/// feed retains for replay, how far a subscriber may fall behind, and what
/// happens when it does.
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
///         .user_replay_max_events(100)
///         .user_replay_max_age(Duration::from_secs(600))
///         .max_lag(5_000)
///         .lag_policy(LagPolicy::Disconnect)
///         .lag_retry(Some(Duration::from_millis(500))),
/// );
/// # drop(hub);
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct HubConfig {
    pub(crate) topics: Window,
    pub(crate) users: Window,
    pub(crate) max_lag: u64,
    pub(crate) lag_policy: LagPolicy,
    pub(crate) lag_retry: Option<Duration>,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            topics: Window {
                max_events: Self::DEFAULT_REPLAY_MAX_EVENTS,
                max_bytes: Self::DEFAULT_REPLAY_MAX_BYTES,
                max_age: None,
            },
            users: Window {
                max_events: Self::DEFAULT_USER_REPLAY_MAX_EVENTS,
                max_bytes: Self::DEFAULT_USER_REPLAY_MAX_BYTES,
                max_age: Some(Self::DEFAULT_USER_REPLAY_MAX_AGE),
            },
            max_lag: Self::DEFAULT_MAX_LAG,
            lag_policy: LagPolicy::Disconnect,
            lag_retry: Some(Self::DEFAULT_LAG_RETRY),
        }
    }
}

impl HubConfig {
    /// Default bound on the events each topic retains: 1024.
    pub const DEFAULT_REPLAY_MAX_EVENTS: usize = 1024;
    /// Default bound on the encoded bytes each topic retains: 1 MiB.
    pub const DEFAULT_REPLAY_MAX_BYTES: usize = 1024 * 1024;
    /// Default bound on the events each user feed retains: 64.
    pub const DEFAULT_USER_REPLAY_MAX_EVENTS: usize = 64;
    /// Default bound on the encoded bytes each user feed retains: 64 KiB.
    pub const DEFAULT_USER_REPLAY_MAX_BYTES: usize = 64 * 1024;
    /// Default age after which a user feed's events leave its window: five
    /// minutes. A feed with no connection and nothing left in its window is
    /// forgotten, so this is also how long a user's feed outlives its last
    /// connection and its last event.
    pub const DEFAULT_USER_REPLAY_MAX_AGE: Duration = Duration::from_secs(300);
    /// Default bound on how far a subscriber may fall behind: 512 events,
    /// half the default topic window, so that a subscriber cut off for lag
    /// can still resume from the window.
    pub const DEFAULT_MAX_LAG: u64 = 512;
    /// Default reconnection time suggested to a subscriber cut off for lag:
    /// one second.
    pub const DEFAULT_LAG_RETRY: Duration = Duration::from_secs(1);

    /// The default policy: each topic retains its last 1024 events and at most
    /// 1 MiB of them, of any age; each user feed its last 64 events, at most
    /// 64 KiB, for five minutes; a subscriber more than 512 events behind is
    /// disconnected with a one-second `retry:` hint.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bounds the number of events each topic retains; at least 1.
    ///
    /// A topic's window is also where its live subscribers read: the newest
    /// event is always retained, whatever the bounds, until a newer one
    /// comes or it expires.
    pub fn replay_max_events(mut self, max: usize) -> Self {
        self.topics.max_events = max.max(1);
        self
    }

    /// Bounds the encoded bytes each topic retains. The oldest events are
    /// dropped first; the newest event is retained even when it alone is
    /// larger than the bound.
    pub fn replay_max_bytes(mut self, max: usize) -> Self {
        self.topics.max_bytes = max;
        self
    }

    /// Drops a topic's events once they are older than `max_age`, and lets a
    /// topic with no subscriber be forgotten once all its events have.
    ///
    /// Without a maximum age (the default) a topic that has been published
    /// to is kept, with its newest events, for the hub's life.
    pub fn replay_max_age(mut self, max_age: Duration) -> Self {
        self.topics.max_age = Some(max_age);
        self
    }

    /// Bounds the number of events each user feed retains; at least 1.
    pub fn user_replay_max_events(mut self, max: usize) -> Self {
        self.users.max_events = max.max(1);
        self
    }

    /// Bounds the encoded bytes each user feed retains (the newest event is
    /// always retained).
    pub fn user_replay_max_bytes(mut self, max: usize) -> Self {
        self.users.max_bytes = max;
        self
    }

    /// Drops a user feed's events once they are older than `max_age`; a feed
    /// with no connection is forgotten once all its events have. `None`
    /// keeps them for the hub's life (then every user ever sent to stays in
    /// memory: only for a bounded set of users).
    pub fn user_replay_max_age(mut self, max_age: impl Into<Option<Duration>>) -> Self {
        self.users.max_age = max_age.into();
        self
    }

    /// Bounds how many events a subscriber may fall behind the newest event
    /// of any of its topics (or its user feed) before the [`LagPolicy`]
    /// applies; at least 1.
    ///
    /// A subscriber whose next event has left the replay window has lagged
    /// too, whatever this bound. Lagging costs no memory (subscribers read
    /// the shared window); the bound is about how stale a connection may be
    /// and about keeping a lagged client's resume point inside the window.
    pub fn max_lag(mut self, events: u64) -> Self {
        self.max_lag = events.max(1);
        self
    }

    /// Sets what happens to a subscriber that has fallen behind.
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
