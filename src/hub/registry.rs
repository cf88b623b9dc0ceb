//! Everything the hub keeps under its one lock: the sequence, the topics with
//! their windows and subscribers, the client registry and the counters.
//!
//! One lock is what makes the ordering guarantees simple. A position is
//! assigned, the event is added to its topic's window and pushed into every
//! subscriber's queue in the same critical section, so every queue is in
//! position order; a subscription collects its replay and registers its queue
//! in one critical section too, so nothing published can fall between the two
//! or land in both.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::task::Waker;

use tokio::time::Instant;

use crate::event::EncodedEvent;

use super::config::HubConfig;
use super::id::{Epoch, EventId, Unnumbered};
use super::metrics::HubMetrics;
use super::queue::{End, Pushed, Queue};
use super::topic::{Retention, Slot, Topic};

/// Where a new subscription starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resume {
    /// No `Last-Event-ID`: live events only.
    Live,
    /// After this position of this hub.
    After(u64),
    /// A `Last-Event-ID` that names no position of this hub.
    Unknown,
}

/// Why a subscription could not resume where it asked to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resync {
    UnknownId,
    Expired,
}

impl Resync {
    /// The data of the resync event.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Resync::UnknownId => "unknown-id",
            Resync::Expired => "expired",
        }
    }
}

/// What a fan-out leaves to do once the hub's lock is released: consumers to
/// wake, and lag to report (a log sink may be slow; publishers must not wait
/// for it).
#[derive(Debug, Default)]
pub(crate) struct AfterUnlock {
    wakers: Vec<Waker>,
    lagged: Vec<u64>,
    started_dropping: Vec<u64>,
}

impl AfterUnlock {
    pub(crate) fn run(self) {
        self.wakers.into_iter().for_each(Waker::wake);
        for subscriber in self.lagged {
            tracing::info!(subscriber, "sse hub subscriber lagged and was disconnected");
        }
        for subscriber in self.started_dropping {
            tracing::debug!(
                subscriber,
                "sse hub subscriber lagged; dropping its oldest events"
            );
        }
    }
}

/// A subscription as registered.
#[derive(Debug)]
pub(crate) struct Subscribed {
    pub(crate) key: u64,
    pub(crate) queue: Arc<Queue>,
    pub(crate) replay: VecDeque<EncodedEvent>,
    pub(crate) resync: Option<Resync>,
    /// The newest position at registration: where a resync restarts from.
    pub(crate) position: u64,
}

#[derive(Debug)]
struct Registration {
    queue: Arc<Queue>,
    topics: Vec<Arc<str>>,
    client: Option<Arc<str>>,
}

#[derive(Debug, Default)]
struct Counters {
    published: u64,
    sent: u64,
    delivered: u64,
    lag_disconnects: u64,
    lag_dropped: u64,
    replay_hits: u64,
    replay_misses: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Registry {
    /// The position of the newest event published; 0 before the first.
    last_seq: u64,
    topics: HashMap<Arc<str>, Topic>,
    subscribers: HashMap<u64, Registration>,
    clients: HashMap<Arc<str>, Vec<Slot>>,
    next_key: u64,
    retention: Retention,
    counters: Counters,
}

impl Registry {
    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Assigns the next position, gives `event` its id, retains it and fans
    /// it out.
    pub(crate) fn publish(
        &mut self,
        topic: &str,
        event: Unnumbered,
        epoch: Epoch,
        config: &HubConfig,
        after: &mut AfterUnlock,
    ) -> EventId {
        let id = EventId::new(epoch, self.last_seq + 1);
        let event = event.with_id(id);
        self.last_seq = id.seq();
        let now = config.replay_max_age.map(|_| Instant::now());

        let entry = match self.topics.get_mut(topic) {
            Some(entry) => entry,
            None => self.topics.entry(Arc::from(topic)).or_default(),
        };
        entry.retain(id.seq(), event.clone(), now, config, &mut self.retention);
        after.wakers.reserve(entry.subscribers().len());
        let delivered = fan_out(
            entry.subscribers(),
            &event,
            config,
            &mut self.counters,
            after,
        );
        self.counters.published += 1;
        self.counters.delivered += delivered as u64;
        self.cut_off_lagged(after);
        id
    }

    /// Pushes `event` to every open subscription of `client`; returns how
    /// many took it.
    pub(crate) fn send_to(
        &mut self,
        client: &str,
        event: &EncodedEvent,
        config: &HubConfig,
        after: &mut AfterUnlock,
    ) -> usize {
        let Some(slots) = self.clients.get(client) else {
            return 0;
        };
        let delivered = fan_out(slots, event, config, &mut self.counters, after);
        if delivered > 0 {
            self.counters.sent += 1;
        }
        self.counters.delivered += delivered as u64;
        self.cut_off_lagged(after);
        delivered
    }

    /// Registers a subscription to `topics` (sorted, without duplicates) and
    /// collects what it must replay first.
    pub(crate) fn subscribe(
        &mut self,
        topics: &[&str],
        client: Option<&str>,
        resume: Resume,
        config: &HubConfig,
    ) -> Subscribed {
        let names: Vec<Arc<str>> = topics
            .iter()
            .map(|&name| match self.topics.get_key_value(name) {
                Some((name, _)) => Arc::clone(name),
                None => {
                    let name: Arc<str> = Arc::from(name);
                    self.topics.insert(Arc::clone(&name), Topic::default());
                    name
                }
            })
            .collect();

        let mut replay = VecDeque::new();
        let resync = match resume {
            Resume::Live => None,
            Resume::Unknown => Some(Resync::UnknownId),
            Resume::After(seq) if seq > self.last_seq => Some(Resync::UnknownId),
            Resume::After(seq) => self.collect_replay(&names, seq, config, &mut replay),
        };
        match (resume, resync) {
            (Resume::Live, _) => {}
            (_, Some(_)) => self.counters.replay_misses += 1,
            (_, None) => {
                self.counters.replay_hits += 1;
                self.counters.delivered += replay.len() as u64;
            }
        }

        let key = self.next_key;
        self.next_key += 1;
        let queue = Arc::new(Queue::default());
        let slot = Slot {
            key,
            queue: Arc::clone(&queue),
        };
        for name in &names {
            if let Some(topic) = self.topics.get_mut(name) {
                topic.add_subscriber(slot.clone());
            }
        }
        let client = client.map(|client| match self.clients.get_key_value(client) {
            Some((client, _)) => Arc::clone(client),
            None => Arc::from(client),
        });
        if let Some(client) = &client {
            self.clients
                .entry(Arc::clone(client))
                .or_default()
                .push(slot);
        }
        self.subscribers.insert(
            key,
            Registration {
                queue: Arc::clone(&queue),
                topics: names,
                client,
            },
        );
        Subscribed {
            key,
            queue,
            replay,
            resync,
            position: self.last_seq,
        }
    }

    /// Fills `replay` with the events of `names` after `seq`, in position
    /// order, or says why it cannot.
    fn collect_replay(
        &mut self,
        names: &[Arc<str>],
        seq: u64,
        config: &HubConfig,
        replay: &mut VecDeque<EncodedEvent>,
    ) -> Option<Resync> {
        let now = config.replay_max_age.map(|_| Instant::now());
        let mut events: Vec<(u64, EncodedEvent)> = Vec::new();
        for name in names {
            let Some(topic) = self.topics.get_mut(name) else {
                continue;
            };
            topic.evict_expired(now, config, &mut self.retention);
            if !topic.holds_everything_after(seq) {
                return Some(Resync::Expired);
            }
            events.extend(topic.replay_after(seq).map(|(seq, e)| (seq, e.clone())));
        }
        // Each topic's events are in order already; several topics interleave.
        if names.len() > 1 {
            events.sort_unstable_by_key(|&(seq, _)| seq);
        }
        replay.extend(events.into_iter().map(|(_, event)| event));
        None
    }

    /// Removes a subscription; returns whether it was registered.
    pub(crate) fn unsubscribe(&mut self, key: u64) -> bool {
        let Some(registration) = self.subscribers.remove(&key) else {
            return false;
        };
        for name in &registration.topics {
            if let Some(topic) = self.topics.get_mut(name) {
                topic.remove_subscriber(key);
                if topic.is_unused() {
                    self.topics.remove(name);
                }
            }
        }
        if let Some(client) = &registration.client {
            if let Some(slots) = self.clients.get_mut(client) {
                slots.retain(|slot| slot.key != key);
                if slots.is_empty() {
                    self.clients.remove(client);
                }
            }
        }
        true
    }

    /// Unregisters the subscriptions whose queue just overflowed; their
    /// streams end after what is queued.
    fn cut_off_lagged(&mut self, after: &AfterUnlock) {
        for &key in &after.lagged {
            if self.unsubscribe(key) {
                self.counters.lag_disconnects += 1;
            }
        }
    }

    /// Ends every subscription's stream (the hub is gone).
    pub(crate) fn close_all(&mut self, after: &mut AfterUnlock) {
        for registration in self.subscribers.values() {
            registration.queue.end(End::Closed, &mut after.wakers);
        }
    }

    pub(crate) fn metrics(&self) -> HubMetrics {
        let counters = &self.counters;
        HubMetrics {
            subscribers: self.subscribers.len(),
            clients: self.clients.len(),
            topics: self.topics.len(),
            retained_events: self.retention.events,
            retained_bytes: self.retention.bytes,
            published: counters.published,
            sent: counters.sent,
            delivered: counters.delivered,
            lag_disconnects: counters.lag_disconnects,
            lag_dropped: counters.lag_dropped,
            replay_hits: counters.replay_hits,
            replay_misses: counters.replay_misses,
        }
    }
}

/// Pushes `event` into every slot's queue; returns how many queued it.
/// Queues that overflowed under the disconnect policy are noted in `after`.
fn fan_out(
    slots: &[Slot],
    event: &EncodedEvent,
    config: &HubConfig,
    counters: &mut Counters,
    after: &mut AfterUnlock,
) -> usize {
    let mut delivered = 0;
    for slot in slots {
        let pushed = slot.queue.push(
            event,
            config.queue_capacity,
            config.lag_policy,
            &mut after.wakers,
        );
        match pushed {
            Pushed::Queued => delivered += 1,
            Pushed::DroppedOldest { first } => {
                delivered += 1;
                counters.lag_dropped += 1;
                if first {
                    after.started_dropping.push(slot.key);
                }
            }
            Pushed::Lagged => after.lagged.push(slot.key),
            Pushed::Ended => {}
        }
    }
    delivered
}
