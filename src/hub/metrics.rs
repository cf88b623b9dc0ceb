//! A snapshot of what a hub holds and has done.

/// What a [`Hub`](super::Hub) holds now and has done since it was created, as
/// returned by [`Hub::metrics`](super::Hub::metrics).
///
/// The counters are kept under the lock that publish and subscribe take
/// anyway, so a snapshot is consistent: every field describes the same
/// instant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HubMetrics {
    /// Open subscriptions: created, not yet dropped, not cut off for lag.
    pub subscribers: usize,
    /// Client ids with at least one open subscription.
    pub clients: usize,
    /// Topics known to the hub: published to, or subscribed to right now.
    pub topics: usize,
    /// Events retained for replay, over all topics.
    pub retained_events: usize,
    /// Encoded bytes retained for replay, over all topics.
    pub retained_bytes: usize,
    /// Events published to topics.
    pub published: u64,
    /// Events sent to clients with [`send_to`](super::Hub::send_to) that
    /// reached at least one connection.
    pub sent: u64,
    /// Events placed in subscribers' queues, live and replayed: one per
    /// subscriber per event.
    pub delivered: u64,
    /// Subscribers cut off because their queue was full
    /// ([`LagPolicy::Disconnect`](super::LagPolicy::Disconnect)).
    pub lag_disconnects: u64,
    /// Events dropped from full queues
    /// ([`LagPolicy::DropOldest`](super::LagPolicy::DropOldest)).
    pub lag_dropped: u64,
    /// Subscriptions resumed from their `Last-Event-ID` out of the window.
    pub replay_hits: u64,
    /// Subscriptions whose `Last-Event-ID` was unknown or older than the
    /// window, and that got the resync signal instead.
    pub replay_misses: u64,
}
