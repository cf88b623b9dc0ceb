//! A snapshot of what a hub holds and has done.

/// What a [`Hub`](super::Hub) holds now and has done since it was created, as
/// returned by [`Hub::metrics`](super::Hub::metrics).
///
/// What the hub holds and what publishers and subscribers did is read under
/// the hub's lock, so those fields describe the same instant; `delivered`
/// and the lag counters are counted by subscribers as they read and may be a
/// moment behind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HubMetrics {
    /// Open subscriptions: created, not yet dropped, not cut off for lag.
    pub subscribers: usize,
    /// Users with at least one open subscription.
    pub clients: usize,
    /// Topics the hub holds: subscribed to, or published to and not yet
    /// forgotten.
    pub topics: usize,
    /// User feeds the hub holds: subscribed to, or sent to and not yet
    /// forgotten.
    pub user_feeds: usize,
    /// Events retained, over all topics and user feeds.
    pub retained_events: usize,
    /// Encoded bytes retained, over all topics and user feeds.
    pub retained_bytes: usize,
    /// Events published to topics.
    pub published: u64,
    /// Events sent to users with [`send_to`](super::Hub::send_to).
    pub sent: u64,
    /// Events taken by subscribers, live and replayed: one per subscriber
    /// per event.
    pub delivered: u64,
    /// Subscribers cut off for falling behind
    /// ([`LagPolicy::Disconnect`](super::LagPolicy::Disconnect)).
    pub lag_disconnects: u64,
    /// Events skipped by subscribers that fell behind
    /// ([`LagPolicy::DropOldest`](super::LagPolicy::DropOldest)).
    pub lag_dropped: u64,
    /// Subscriptions resumed from their `Last-Event-ID` out of the window.
    pub replay_hits: u64,
    /// Subscriptions whose `Last-Event-ID` was unknown or older than the
    /// window, and that got the resync signal instead.
    pub replay_misses: u64,
}
