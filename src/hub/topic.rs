//! A topic: its replay window and its subscribers.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tokio::time::Instant;

use crate::event::EncodedEvent;

use super::config::HubConfig;
use super::queue::Queue;

/// A subscriber's registration in a topic or a client's entry.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub(crate) key: u64,
    pub(crate) queue: Arc<Queue>,
}

/// An event held for replay.
#[derive(Debug)]
struct Retained {
    seq: u64,
    event: EncodedEvent,
    /// When it was published; read only when a maximum age is configured.
    at: Option<Instant>,
}

/// Events retained, summed over every topic, for the metrics.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Retention {
    pub(crate) events: usize,
    pub(crate) bytes: usize,
}

/// One topic. The window holds the topic's newest events in publish order;
/// `evicted_through` remembers the position of the newest event that left
/// it, which is what tells a resume point inside the window from one before
/// it.
#[derive(Debug, Default)]
pub(crate) struct Topic {
    window: VecDeque<Retained>,
    window_bytes: usize,
    evicted_through: u64,
    subscribers: Vec<Slot>,
    /// Where each subscriber sits in `subscribers`, so that leaving is O(1).
    positions: HashMap<u64, usize>,
}

impl Topic {
    /// Adds a published event to the window, then trims the window to the
    /// configured bounds.
    pub(crate) fn retain(
        &mut self,
        seq: u64,
        event: EncodedEvent,
        now: Option<Instant>,
        config: &HubConfig,
        retention: &mut Retention,
    ) {
        retention.events += 1;
        retention.bytes += event.len();
        self.window_bytes += event.len();
        self.window.push_back(Retained {
            seq,
            event,
            at: now,
        });
        while self.window.len() > config.replay_max_events
            || self.window_bytes > config.replay_max_bytes
        {
            self.evict_oldest(retention);
        }
        self.evict_expired(now, config, retention);
    }

    /// Drops events older than the configured maximum age.
    pub(crate) fn evict_expired(
        &mut self,
        now: Option<Instant>,
        config: &HubConfig,
        retention: &mut Retention,
    ) {
        let (Some(now), Some(max_age)) = (now, config.replay_max_age) else {
            return;
        };
        while let Some(oldest) = self.window.front() {
            match oldest.at {
                Some(at) if now.saturating_duration_since(at) <= max_age => break,
                _ => self.evict_oldest(retention),
            }
        }
    }

    fn evict_oldest(&mut self, retention: &mut Retention) {
        if let Some(oldest) = self.window.pop_front() {
            self.window_bytes -= oldest.event.len();
            retention.events -= 1;
            retention.bytes -= oldest.event.len();
            self.evicted_through = oldest.seq;
        }
    }

    /// Whether every event published here after position `seq` is still in
    /// the window.
    pub(crate) fn holds_everything_after(&self, seq: u64) -> bool {
        self.evicted_through <= seq
    }

    /// The retained events after position `seq`, oldest first.
    pub(crate) fn replay_after(&self, seq: u64) -> impl Iterator<Item = (u64, &EncodedEvent)> {
        let start = self.window.partition_point(|retained| retained.seq <= seq);
        self.window
            .range(start..)
            .map(|retained| (retained.seq, &retained.event))
    }

    pub(crate) fn subscribers(&self) -> &[Slot] {
        &self.subscribers
    }

    pub(crate) fn add_subscriber(&mut self, slot: Slot) {
        self.positions.insert(slot.key, self.subscribers.len());
        self.subscribers.push(slot);
    }

    pub(crate) fn remove_subscriber(&mut self, key: u64) {
        let Some(position) = self.positions.remove(&key) else {
            return;
        };
        self.subscribers.swap_remove(position);
        if let Some(moved) = self.subscribers.get(position) {
            self.positions.insert(moved.key, position);
        }
    }

    /// Whether the topic can be forgotten without losing anything: nothing
    /// was ever published to it and no one listens. A topic that was
    /// published to is kept, because its `evicted_through` is what tells a
    /// late resume that it missed events.
    pub(crate) fn is_unused(&self) -> bool {
        self.subscribers.is_empty() && self.window.is_empty() && self.evicted_through == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    fn event(bytes: usize) -> EncodedEvent {
        // "data: " + payload + "\n\n"
        Event::new().data("x".repeat(bytes - 8)).encode().unwrap()
    }

    fn seqs_after(topic: &Topic, seq: u64) -> Vec<u64> {
        topic.replay_after(seq).map(|(seq, _)| seq).collect()
    }

    #[test]
    fn window_keeps_the_newest_events_within_both_bounds() {
        let config = HubConfig::new().replay_max_events(3).replay_max_bytes(250);
        let mut retention = Retention::default();
        let mut topic = Topic::default();
        for seq in [2, 4, 6, 8] {
            topic.retain(seq, event(100), None, &config, &mut retention);
        }
        assert_eq!(seqs_after(&topic, 0), [6, 8]);
        assert_eq!(retention.events, 2);
        assert_eq!(retention.bytes, 200);
        assert!(topic.holds_everything_after(4));
        assert!(!topic.holds_everything_after(3));
        assert_eq!(seqs_after(&topic, 6), [8]);
        assert_eq!(seqs_after(&topic, 7), [8]);
    }

    #[test]
    fn removing_a_subscriber_keeps_the_others_reachable() {
        let mut topic = Topic::default();
        for key in 0..4 {
            topic.add_subscriber(Slot {
                key,
                queue: Arc::default(),
            });
        }
        topic.remove_subscriber(1);
        topic.remove_subscriber(1);
        topic.remove_subscriber(0);
        let mut keys: Vec<u64> = topic.subscribers().iter().map(|slot| slot.key).collect();
        keys.sort_unstable();
        assert_eq!(keys, [2, 3]);
        topic.remove_subscriber(3);
        topic.remove_subscriber(2);
        assert!(topic.is_unused());
    }
}
