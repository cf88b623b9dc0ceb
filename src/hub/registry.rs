//! What the hub keeps under its lock: the positions, the topics and user
//! feeds by name, the logs waiting to be forgotten and the counters.
//!
//! The lock orders publishes: a position is assigned and the event appended
//! to its log in one critical section, so positions are dense and each log
//! is in position order. It is held for the append itself, never for a
//! subscriber: readers take only their logs' own locks, and wakers are woken
//! once every lock is released.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;

use super::config::{HubConfig, Window};
use super::id::{Epoch, EventId, Unnumbered};
use super::log::{Cursor, Forgettable, Kind, Log, Retention, Woken, wake};
use crate::event::EncodedEvent;

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

/// What is left to do once the hub's lock is released: readers to wake, and
/// forgotten logs to free (a publisher should not pay for either under the
/// lock).
#[derive(Debug, Default)]
pub(crate) struct AfterUnlock {
    woken: Vec<Woken>,
    forgotten: Vec<Arc<Log>>,
}

impl AfterUnlock {
    fn wake(&mut self, woken: Option<Woken>) {
        if let Some(woken) = woken {
            self.woken.push(woken);
        }
    }

    pub(crate) fn run(self) {
        self.woken.into_iter().for_each(wake);
        drop(self.forgotten);
    }
}

/// A subscription as registered.
#[derive(Debug)]
pub(crate) struct Subscribed {
    pub(crate) cursors: Vec<Cursor>,
    pub(crate) resync: Option<Resync>,
    /// The newest position at registration: where a resync restarts from.
    pub(crate) position: u64,
}

/// A log with no subscriber, to be looked at again at `at`.
#[derive(Debug)]
struct Idle {
    at: Instant,
    log: Arc<Log>,
}

impl PartialEq for Idle {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Idle {}

impl PartialOrd for Idle {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Idle {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

/// How many buckets remember the newest position of forgotten logs.
const FORGOTTEN_BUCKETS: usize = 4096;
/// How many idle logs a publish, subscribe or unsubscribe looks at, at most.
const SWEEP_BUDGET: usize = 4;

#[derive(Debug, Default)]
struct Counters {
    published: u64,
    sent: u64,
    replay_hits: u64,
    replay_misses: u64,
}

#[derive(Debug)]
pub(crate) struct Registry {
    /// The position of the newest event published; 0 before the first.
    last_seq: u64,
    topics: HashMap<Arc<str>, Arc<Log>>,
    users: HashMap<Arc<str>, Arc<Log>>,
    /// User feeds with at least one subscriber.
    clients: usize,
    subscribers: usize,
    /// Logs with no subscriber whose events expire, earliest first.
    idle: BinaryHeap<Reverse<Idle>>,
    /// For each bucket of names, the newest position any forgotten log of
    /// that bucket held: a log made anew starts as if its events through
    /// there had been evicted, so that a late resume gets the resync signal
    /// instead of a silent gap.
    forgotten: Box<[u64]>,
    bucket_hasher: RandomState,
    /// Sweeps asked for without a clock reading; only every 16th looks.
    unclocked_sweeps: u8,
    retention: Retention,
    counters: Counters,
    /// Set for a hub whose events come from Redis: its logs only cache what
    /// its subscribers read (the history is in Redis), so a log is forgotten
    /// as soon as no one reads it, and each forgotten log is reported here.
    #[cfg(feature = "redis")]
    pub(crate) cache: Option<tokio::sync::mpsc::UnboundedSender<(Kind, Arc<str>)>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            last_seq: 0,
            topics: HashMap::new(),
            users: HashMap::new(),
            clients: 0,
            subscribers: 0,
            idle: BinaryHeap::new(),
            forgotten: vec![0; FORGOTTEN_BUCKETS].into_boxed_slice(),
            bucket_hasher: RandomState::new(),
            unclocked_sweeps: 0,
            retention: Retention::default(),
            counters: Counters::default(),
            #[cfg(feature = "redis")]
            cache: None,
        }
    }
}

pub(super) fn window(config: &HubConfig, kind: Kind) -> &Window {
    match kind {
        Kind::Topic => &config.topics,
        Kind::User => &config.users,
    }
}

/// The current time, read only when a window of `kind` has a maximum age.
fn now_for(config: &HubConfig, kind: Kind) -> Option<Instant> {
    window(config, kind).max_age.map(|_| Instant::now())
}

impl Registry {
    /// The topics' or the user feeds' logs by name.
    fn logs(&self, kind: Kind) -> &HashMap<Arc<str>, Arc<Log>> {
        match kind {
            Kind::Topic => &self.topics,
            Kind::User => &self.users,
        }
    }

    fn logs_mut(&mut self, kind: Kind) -> &mut HashMap<Arc<str>, Arc<Log>> {
        match kind {
            Kind::Topic => &mut self.topics,
            Kind::User => &mut self.users,
        }
    }

    /// Appends an event numbered `seq` to `log` within its window and counts
    /// it; returns the clock reading taken for the window, if any.
    #[allow(clippy::too_many_arguments)]
    fn append_to(
        &mut self,
        log: &Log,
        seq: u64,
        event: EncodedEvent,
        config: &HubConfig,
        committed: &AtomicU64,
        after: &mut AfterUnlock,
    ) -> Option<Instant> {
        let window = window(config, log.kind);
        let now = window.max_age.map(|_| Instant::now());
        after.wake(log.append(seq, event, now, window, committed, &mut self.retention));
        match log.kind {
            Kind::Topic => self.counters.published += 1,
            Kind::User => self.counters.sent += 1,
        }
        now
    }

    fn bucket(&self, kind: Kind, name: &str) -> usize {
        (self.bucket_hasher.hash_one((kind, name)) as usize) % FORGOTTEN_BUCKETS
    }

    fn log(&mut self, kind: Kind, name: &str) -> Arc<Log> {
        let map = self.logs(kind);
        if let Some(log) = map.get(name) {
            return Arc::clone(log);
        }
        let evicted_through = self.forgotten[self.bucket(kind, name)];
        let name: Arc<str> = Arc::from(name);
        let log = Arc::new(Log::new(kind, Arc::clone(&name), evicted_through));
        let map = self.logs_mut(kind);
        map.insert(name, Arc::clone(&log));
        log
    }

    /// The position of the newest event published.
    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Assigns the next position, gives `event` its id and appends it to the
    /// log of `name`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn publish(
        &mut self,
        kind: Kind,
        name: &str,
        event: Unnumbered,
        epoch: Epoch,
        config: &HubConfig,
        committed: &AtomicU64,
        after: &mut AfterUnlock,
    ) -> EventId {
        let id = EventId::new(epoch, self.last_seq + 1);
        let event = event.with_id(id);
        self.last_seq = id.seq();
        let log = self.log(kind, name);
        let now = self.append_to(&log, id.seq(), event, config, committed, after);
        // Without a maximum age, a log that holds an event is kept.
        if window(config, kind).max_age.is_some() && log.subscribers.load(Ordering::Relaxed) == 0 {
            self.consider_idle(&log, now, config, after);
        }
        self.sweep(now, config, SWEEP_BUDGET, after);
        id
    }

    /// Appends an event that Redis numbered `seq` to the log of `name`, if
    /// this hub holds one (someone here reads it); positions come in order.
    #[cfg(feature = "redis")]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn append_at(
        &mut self,
        kind: Kind,
        name: &str,
        seq: u64,
        event: EncodedEvent,
        config: &HubConfig,
        committed: &AtomicU64,
        after: &mut AfterUnlock,
    ) -> bool {
        let Some(log) = self.logs(kind).get(name).cloned() else {
            return false;
        };
        self.last_seq = self.last_seq.max(seq);
        self.append_to(&log, seq, event, config, committed, after);
        true
    }

    /// Counts a resume that a hub on Redis honoured (`true`) or answered
    /// with the resync signal.
    #[cfg(feature = "redis")]
    pub(crate) fn count_resume(&mut self, honoured: bool) {
        if honoured {
            self.counters.replay_hits += 1;
        } else {
            self.counters.replay_misses += 1;
        }
    }

    /// Whether the hub holds a log for `name`.
    #[cfg(feature = "redis")]
    pub(crate) fn holds(&self, kind: Kind, name: &str) -> bool {
        self.logs(kind).contains_key(name)
    }

    /// Removes the log of `name` and ends it: its readers get what it holds,
    /// then the end of their streams (events are missing that Redis no
    /// longer has; they reconnect and are told).
    #[cfg(feature = "redis")]
    pub(crate) fn end_log(&mut self, kind: Kind, name: &str, after: &mut AfterUnlock) {
        let map = self.logs_mut(kind);
        if let Some(log) = map.remove(name) {
            log.discard(&mut self.retention);
            self.report_gone(&log);
            after.wake(log.close());
            after.forgotten.push(log);
        }
    }

    /// Tells the Redis follower, if any, that `log` is no longer held, so
    /// that it stops following it unless a new one is held by then.
    fn report_gone(&self, log: &Log) {
        #[cfg(feature = "redis")]
        if let Some(cache) = &self.cache {
            // The follower is gone only when the hub is.
            let _ = cache.send((log.kind, Arc::clone(&log.name)));
        }
        #[cfg(not(feature = "redis"))]
        let _ = log;
    }

    /// Registers a subscription to `topics` (sorted, without duplicates) and
    /// `user`'s feed, starting where `resume` says.
    pub(crate) fn subscribe(
        &mut self,
        topics: &[&str],
        user: Option<&str>,
        resume: Resume,
        config: &HubConfig,
        after: &mut AfterUnlock,
    ) -> Subscribed {
        let mut logs: Vec<Arc<Log>> = topics
            .iter()
            .map(|name| self.log(Kind::Topic, name))
            .collect();
        if let Some(user) = user {
            logs.push(self.log(Kind::User, user));
        }
        self.subscribers += 1;
        for log in &logs {
            if log.subscribers.fetch_add(1, Ordering::Relaxed) == 0 && log.kind == Kind::User {
                self.clients += 1;
            }
        }

        let clock = config.topics.max_age.is_some() || config.users.max_age.is_some();
        let now = clock.then(Instant::now);
        let mut resync = match resume {
            Resume::Live => None,
            Resume::Unknown => Some(Resync::UnknownId),
            Resume::After(seq) if seq > self.last_seq => Some(Resync::UnknownId),
            Resume::After(_) => None,
        };
        let mut cursors = Vec::with_capacity(logs.len());
        if let (Resume::After(seq), None) = (resume, resync) {
            for log in &logs {
                let window = window(config, log.kind);
                match log.cursor_after(seq, now, window, &mut self.retention) {
                    Some(cursor) => cursors.push(cursor),
                    None => {
                        resync = Some(Resync::Expired);
                        cursors.clear();
                        break;
                    }
                }
            }
        }
        if cursors.is_empty() {
            cursors.extend(logs.iter().map(Log::cursor_at_end));
        }
        match (resume, resync) {
            (Resume::Live, _) => {}
            (_, Some(_)) => self.counters.replay_misses += 1,
            (_, None) => self.counters.replay_hits += 1,
        }
        self.sweep(now, config, SWEEP_BUDGET, after);
        Subscribed {
            cursors,
            resync,
            position: self.last_seq,
        }
    }

    /// Removes a subscription from its logs; logs left with no subscriber
    /// are forgotten when they can be.
    pub(crate) fn unsubscribe<'a>(
        &mut self,
        logs: impl Iterator<Item = &'a Arc<Log>>,
        config: &HubConfig,
        after: &mut AfterUnlock,
    ) {
        self.subscribers -= 1;
        let mut now = None;
        for log in logs {
            if log.subscribers.fetch_sub(1, Ordering::Relaxed) != 1 {
                continue;
            }
            if log.kind == Kind::User {
                self.clients -= 1;
            }
            #[cfg(feature = "redis")]
            if self.cache.is_some() {
                self.forget(log, after);
                continue;
            }
            now = now.or_else(|| now_for(config, log.kind));
            self.consider_idle(log, now, config, after);
        }
        self.sweep(now, config, SWEEP_BUDGET, after);
    }

    /// A log has just been left with no subscriber, or appended to while it
    /// had none: forgets it now, queues it for when its events expire, or
    /// keeps it.
    fn consider_idle(
        &mut self,
        log: &Arc<Log>,
        now: Option<Instant>,
        config: &HubConfig,
        after: &mut AfterUnlock,
    ) {
        if log.idle_queued.load(Ordering::Relaxed) {
            return;
        }
        match log.forgettable(now, window(config, log.kind), &mut self.retention) {
            Forgettable::Now => self.forget(log, after),
            Forgettable::At(at) => {
                log.idle_queued.store(true, Ordering::Relaxed);
                self.idle.push(Reverse(Idle {
                    at,
                    log: Arc::clone(log),
                }));
            }
            Forgettable::Never => {}
        }
    }

    /// Looks at up to `budget` idle logs whose events have expired by `now`
    /// and forgets those that are still idle.
    fn sweep(
        &mut self,
        now: Option<Instant>,
        config: &HubConfig,
        budget: usize,
        after: &mut AfterUnlock,
    ) {
        if self.idle.is_empty() {
            return;
        }
        let now = match now {
            Some(now) => now,
            // Without a clock reading at hand (a topic without a maximum
            // age), look only every 16th time: a clock read per publish would
            // cost more than this lazy forgetting is worth.
            None if budget == usize::MAX => Instant::now(),
            None => {
                self.unclocked_sweeps = self.unclocked_sweeps.wrapping_add(1);
                if self.unclocked_sweeps % 16 != 0 {
                    return;
                }
                Instant::now()
            }
        };
        for _ in 0..budget {
            match self.idle.peek() {
                Some(Reverse(idle)) if idle.at <= now => {}
                _ => break,
            }
            let Some(Reverse(Idle { log, .. })) = self.idle.pop() else {
                break;
            };
            log.idle_queued.store(false, Ordering::Relaxed);
            if log.subscribers.load(Ordering::Relaxed) == 0 {
                self.consider_idle(&log, Some(now), config, after);
            }
        }
    }

    /// Forgets every idle log whose events have all expired.
    pub(crate) fn forget_expired(&mut self, config: &HubConfig, after: &mut AfterUnlock) {
        self.sweep(None, config, usize::MAX, after);
    }

    fn forget(&mut self, log: &Arc<Log>, after: &mut AfterUnlock) {
        let newest = log.discard(&mut self.retention);
        if newest > 0 {
            let bucket = self.bucket(log.kind, &log.name);
            self.forgotten[bucket] = self.forgotten[bucket].max(newest);
        }
        let map = match log.kind {
            Kind::Topic => &mut self.topics,
            Kind::User => &mut self.users,
        };
        // Only this very log: one of the same name may have replaced it.
        let current = map
            .get(&log.name)
            .is_some_and(|held| Arc::ptr_eq(held, log));
        let removed = current.then(|| map.remove(&log.name)).flatten();
        // Give back the tables' memory once most of it is unused.
        if map.len() < map.capacity() / 4 {
            map.shrink_to(map.len() * 2);
        }
        if self.idle.len() < self.idle.capacity() / 4 {
            self.idle.shrink_to(self.idle.len() * 2);
        }
        if let Some(removed) = removed {
            self.report_gone(&removed);
            after.forgotten.push(removed);
        }
    }

    /// Ends every log (the hub is gone).
    pub(crate) fn close_all(&mut self, after: &mut AfterUnlock) {
        for log in self.topics.values().chain(self.users.values()) {
            after.wake(log.close());
        }
    }

    pub(crate) fn metrics(&self) -> Snapshot {
        Snapshot {
            subscribers: self.subscribers,
            clients: self.clients,
            topics: self.topics.len(),
            user_feeds: self.users.len(),
            retained_events: self.retention.events,
            retained_bytes: self.retention.bytes,
            published: self.counters.published,
            sent: self.counters.sent,
            replay_hits: self.counters.replay_hits,
            replay_misses: self.counters.replay_misses,
        }
    }
}

/// What the registry counts, for [`HubMetrics`](super::HubMetrics).
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) subscribers: usize,
    pub(crate) clients: usize,
    pub(crate) topics: usize,
    pub(crate) user_feeds: usize,
    pub(crate) retained_events: usize,
    pub(crate) retained_bytes: usize,
    pub(crate) published: u64,
    pub(crate) sent: u64,
    pub(crate) replay_hits: u64,
    pub(crate) replay_misses: u64,
}
