//! A log: the shared, bounded ring of encoded events of one topic or one user
//! feed, which is at once its replay window and what its live subscribers
//! read, each at its own position (a [`Cursor`]).
//!
//! Publishing appends once and takes the list of waiting readers, whatever
//! the number of subscribers; readers copy handles out under the log's own
//! lock, so a busy topic holds up neither other topics nor the hub's lock.

use std::collections::VecDeque;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Waker};

use tokio::time::Instant;

use crate::event::EncodedEvent;

use super::config::{LagPolicy, Window};

/// Whether a log is a topic's or a user's feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Topic,
    User,
}

/// One topic's or user feed's log.
#[derive(Debug)]
pub(crate) struct Log {
    pub(crate) kind: Kind,
    pub(crate) name: Arc<str>,
    /// Open subscriptions reading this log. Changed only under the hub's
    /// lock; atomic so that the log can be shared.
    pub(crate) subscribers: AtomicUsize,
    /// Whether the hub has the log in its queue of logs to forget. Changed
    /// only under the hub's lock.
    pub(crate) idle_queued: AtomicBool,
    state: Mutex<State>,
    /// Bumped, under the lock, whenever the waiting readers are taken to be
    /// woken. A reader that parked in generation `g` and still reads `g`
    /// knows that its waker is in place and that nothing was appended since.
    generation: AtomicU64,
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    event: EncodedEvent,
    /// When it was appended; only when the window has a maximum age.
    at: Option<Instant>,
}

#[derive(Debug)]
struct State {
    entries: VecDeque<Entry>,
    /// The absolute index of `entries[0]`: how many entries left the ring.
    first: u64,
    bytes: usize,
    /// The position of the newest event that left the window, or a bound on
    /// it for a log that was forgotten and made anew: a resume from before it
    /// cannot be honoured.
    evicted_through: u64,
    /// The position of the newest event ever appended; 0 for none.
    newest: u64,
    waiters: Waiters,
    closed: bool,
}

impl State {
    fn end(&self) -> u64 {
        self.first + self.entries.len() as u64
    }
}

/// Wakers of readers that found nothing new, in slots that a reader can
/// vacate (when it leaves) without a search.
#[derive(Debug, Default)]
struct Waiters {
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
    live: usize,
}

impl Waiters {
    fn insert(&mut self, waker: Waker) -> usize {
        self.live += 1;
        match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(waker);
                slot
            }
            None => {
                self.slots.push(Some(waker));
                self.slots.len() - 1
            }
        }
    }

    fn remove(&mut self, slot: usize) {
        if let Some(entry) = self.slots.get_mut(slot) {
            if entry.take().is_some() {
                self.live -= 1;
                self.free.push(slot);
            }
        }
    }

    /// Takes every waker, leaving the list empty.
    fn take(&mut self) -> Vec<Option<Waker>> {
        self.free.clear();
        self.live = 0;
        std::mem::take(&mut self.slots)
    }
}

/// When a log with no subscriber can be forgotten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Forgettable {
    Now,
    At(Instant),
    Never,
}

/// Wakers taken from a log, to be woken once every lock is released.
pub(crate) type Woken = Vec<Option<Waker>>;

/// Retained events summed over every log, for the metrics. Kept under the
/// hub's lock: only appends and the hub's sweeps evict.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Retention {
    pub(crate) events: usize,
    pub(crate) bytes: usize,
}

impl Log {
    pub(crate) fn new(kind: Kind, name: Arc<str>, evicted_through: u64) -> Self {
        Self {
            kind,
            name,
            subscribers: AtomicUsize::new(0),
            idle_queued: AtomicBool::new(false),
            state: Mutex::new(State {
                entries: VecDeque::new(),
                first: 0,
                bytes: 0,
                evicted_through,
                newest: 0,
                waiters: Waiters::default(),
                closed: false,
            }),
            generation: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; should something, the state
        // is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends the event at position `seq`, trims the window, publishes
    /// `seq` in `committed` and takes the waiting readers' wakers.
    ///
    /// `committed` is stored under this log's lock: a reader that finds the
    /// entry here and then loads `committed` sees at least `seq`, which is
    /// what lets a reader of several logs merge them without a gap.
    pub(crate) fn append(
        &self,
        seq: u64,
        event: EncodedEvent,
        now: Option<Instant>,
        window: &Window,
        committed: &AtomicU64,
        retention: &mut Retention,
    ) -> Option<Woken> {
        let mut state = self.lock();
        retention.events += 1;
        retention.bytes += event.len();
        state.bytes += event.len();
        state.newest = seq;
        if state.entries.capacity() == 0 {
            // Many logs (user feeds) hold one event or a few: start small.
            state.entries.reserve_exact(1);
        }
        state.entries.push_back(Entry {
            seq,
            event,
            at: window.max_age.and(now),
        });
        while state.entries.len() > 1
            && (state.entries.len() > window.max_events || state.bytes > window.max_bytes)
        {
            evict_oldest(&mut state, retention);
        }
        evict_expired(&mut state, now, window, retention);
        committed.store(seq, Ordering::Release);
        self.take_waiters(&mut state)
    }

    fn take_waiters(&self, state: &mut State) -> Option<Woken> {
        if state.waiters.live == 0 {
            return None;
        }
        self.generation.fetch_add(1, Ordering::Release);
        Some(state.waiters.take())
    }

    /// Drops expired events, then says when the log could be forgotten
    /// (were no one subscribed): now when its window is empty, when its
    /// newest event expires, or never (no maximum age).
    pub(crate) fn forgettable(
        &self,
        now: Option<Instant>,
        window: &Window,
        retention: &mut Retention,
    ) -> Forgettable {
        let mut state = self.lock();
        evict_expired(&mut state, now, window, retention);
        match state.entries.back() {
            None => Forgettable::Now,
            Some(newest) => match (newest.at, window.max_age) {
                (Some(at), Some(max_age)) => Forgettable::At(at + max_age),
                _ => Forgettable::Never,
            },
        }
    }

    /// Forgets the log's events (it is being removed from the hub); returns
    /// the position of the newest event it ever held.
    pub(crate) fn discard(&self, retention: &mut Retention) -> u64 {
        let mut state = self.lock();
        while !state.entries.is_empty() {
            evict_oldest(&mut state, retention);
        }
        state.newest
    }

    /// Ends the log (the hub is gone): readers get what is left, then the end.
    pub(crate) fn close(&self) -> Option<Woken> {
        let mut state = self.lock();
        state.closed = true;
        self.take_waiters(&mut state)
    }

    /// A cursor for a new subscription that starts after position `after`,
    /// or `None` when events after `after` have left the window (it cannot
    /// resume there).
    pub(crate) fn cursor_after(
        self: &Arc<Self>,
        after: u64,
        now: Option<Instant>,
        window: &Window,
        retention: &mut Retention,
    ) -> Option<Cursor> {
        let mut state = self.lock();
        evict_expired(&mut state, now, window, retention);
        if state.evicted_through > after {
            return None;
        }
        let skip = state.entries.partition_point(|entry| entry.seq <= after);
        Some(Cursor {
            log: Arc::clone(self),
            next: state.first + skip as u64,
            replay_end: state.end(),
            parked: None,
        })
    }

    /// A cursor at the end of the log: live events only.
    pub(crate) fn cursor_at_end(self: &Arc<Self>) -> Cursor {
        let state = self.lock();
        Cursor {
            log: Arc::clone(self),
            next: state.end(),
            replay_end: state.end(),
            parked: None,
        }
    }
}

fn evict_oldest(state: &mut State, retention: &mut Retention) {
    if let Some(oldest) = state.entries.pop_front() {
        state.first += 1;
        state.bytes -= oldest.event.len();
        state.evicted_through = state.evicted_through.max(oldest.seq);
        retention.events -= 1;
        retention.bytes -= oldest.event.len();
    }
}

fn evict_expired(
    state: &mut State,
    now: Option<Instant>,
    window: &Window,
    retention: &mut Retention,
) {
    let (Some(now), Some(max_age)) = (now, window.max_age) else {
        return;
    };
    while let Some(oldest) = state.entries.front() {
        match oldest.at {
            Some(at) if now.saturating_duration_since(at) < max_age => break,
            _ => evict_oldest(state, retention),
        }
    }
}

/// Which waker a reader left in a log, compared as [`Waker::will_wake`]
/// compares wakers. Read only while the log still holds that waker (the
/// generation has not moved), so the task it points to is alive and the
/// address cannot have been reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct WakerKey {
    data: usize,
    vtable: usize,
}

impl WakerKey {
    #[inline]
    fn of(waker: &Waker) -> Self {
        Self {
            data: waker.data().addr(),
            vtable: ptr::from_ref(waker.vtable()).addr(),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Parked {
    generation: u64,
    slot: usize,
    waker: WakerKey,
}

/// A subscription's position in one log.
#[derive(Debug)]
pub(crate) struct Cursor {
    pub(crate) log: Arc<Log>,
    /// The absolute index of the next entry to read.
    next: u64,
    /// The end of the log when the cursor was made: what it had to replay
    /// is not lag, only what was appended after it started.
    replay_end: u64,
    parked: Option<Parked>,
}

/// What a [`Cursor::read`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Read {
    /// Took `taken` events (after skipping `skipped` under
    /// [`LagPolicy::DropOldest`]); `parked` when nothing was left, so that
    /// the reader's waker is now in the log.
    Took {
        taken: usize,
        skipped: u64,
        parked: bool,
    },
    /// Fell behind under [`LagPolicy::Disconnect`]; nothing taken.
    Lagged,
    /// The log is closed and everything in it was read.
    Closed,
}

impl Cursor {
    /// Whether a poll with `waker` would find nothing new: the reader's
    /// waker is still in the log and nothing was appended since. One atomic
    /// load; no lock.
    #[inline]
    pub(crate) fn is_parked_for(&self, waker: &Waker) -> bool {
        match self.parked {
            Some(parked) => {
                parked.waker == WakerKey::of(waker)
                    && self.log.generation.load(Ordering::Acquire) == parked.generation
            }
            None => false,
        }
    }

    /// Takes up to `max` events with positions up to `through`, passing each
    /// to `take`, unless the cursor has fallen out of the window or more than
    /// `max_lag` events were appended since it started that it has not read
    /// (then `policy` decides). When nothing is left to take, leaves `cx`'s
    /// waker in the log.
    pub(crate) fn read(
        &mut self,
        cx: &Context<'_>,
        through: u64,
        max: usize,
        max_lag: u64,
        policy: LagPolicy,
        mut take: impl FnMut(u64, &EncodedEvent),
    ) -> Read {
        let log = Arc::clone(&self.log);
        let mut state = log.lock();
        let end = state.end();
        let mut skipped = 0;
        if self.next < state.first || end - self.next.max(self.replay_end) > max_lag {
            match policy {
                LagPolicy::Disconnect => return Read::Lagged,
                LagPolicy::DropOldest => {
                    let resume = state.first.max(end.saturating_sub(max_lag));
                    skipped = resume - self.next;
                    self.next = resume;
                }
            }
        }
        let start = (self.next - state.first) as usize;
        let mut taken = 0;
        for entry in state.entries.range(start..) {
            if taken == max || entry.seq > through {
                break;
            }
            take(entry.seq, &entry.event);
            taken += 1;
        }
        self.next += taken as u64;
        if self.next < end {
            return Read::Took {
                taken,
                skipped,
                parked: false,
            };
        }
        if state.closed {
            return if taken == 0 && skipped == 0 {
                Read::Closed
            } else {
                Read::Took {
                    taken,
                    skipped,
                    parked: false,
                }
            };
        }
        self.park(&log, &mut state, cx.waker());
        Read::Took {
            taken,
            skipped,
            parked: true,
        }
    }

    /// Leaves `waker` in the log, reusing this reader's slot when it still
    /// holds one.
    fn park(&mut self, log: &Log, state: &mut State, waker: &Waker) {
        let key = WakerKey::of(waker);
        // Read under the lock, where it is written.
        let generation = log.generation.load(Ordering::Relaxed);
        if let Some(parked) = &mut self.parked {
            if parked.generation == generation {
                if parked.waker != key {
                    if let Some(slot) = state.waiters.slots.get_mut(parked.slot) {
                        match slot {
                            Some(left) => left.clone_from(waker),
                            None => *slot = Some(waker.clone()),
                        }
                    }
                    parked.waker = key;
                }
                return;
            }
        }
        let slot = state.waiters.insert(waker.clone());
        self.parked = Some(Parked {
            generation,
            slot,
            waker: key,
        });
    }

    /// How many events are in the log after the cursor.
    pub(crate) fn available(&self) -> u64 {
        let state = self.log.lock();
        state.end().saturating_sub(self.next.max(state.first))
    }

    /// Takes the reader's waker out of the log, if it is still there.
    pub(crate) fn leave(&mut self) {
        let Some(parked) = self.parked.take() else {
            return;
        };
        let mut state = self.log.lock();
        if self.log.generation.load(Ordering::Relaxed) == parked.generation {
            state.waiters.remove(parked.slot);
        }
    }
}

/// Wakes what was taken from logs.
pub(crate) fn wake(woken: Woken) {
    for waker in woken.into_iter().flatten() {
        waker.wake();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    use super::*;
    use crate::event::Event;

    const WINDOW: Window = Window {
        max_events: 4,
        max_bytes: usize::MAX,
        max_age: None,
    };

    fn event(n: u64) -> EncodedEvent {
        Event::new().data(n.to_string()).encode().unwrap()
    }

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting_waker() -> (Arc<CountingWaker>, Waker) {
        let count = Arc::new(CountingWaker::default());
        (Arc::clone(&count), Waker::from(count))
    }

    struct Fixture {
        log: Arc<Log>,
        committed: AtomicU64,
        retention: Retention,
        seq: u64,
    }

    impl Fixture {
        fn new() -> Self {
            Self {
                log: Arc::new(Log::new(Kind::Topic, Arc::from("t"), 0)),
                committed: AtomicU64::new(0),
                retention: Retention::default(),
                seq: 0,
            }
        }

        fn append(&mut self) -> Option<Woken> {
            self.seq += 1;
            self.log.append(
                self.seq,
                event(self.seq),
                None,
                &WINDOW,
                &self.committed,
                &mut self.retention,
            )
        }
    }

    fn read_all(
        cursor: &mut Cursor,
        waker: &Waker,
        max_lag: u64,
        policy: LagPolicy,
    ) -> (Read, Vec<u64>) {
        let mut seqs = Vec::new();
        let read = cursor.read(
            &Context::from_waker(waker),
            u64::MAX,
            usize::MAX,
            max_lag,
            policy,
            |seq, _| seqs.push(seq),
        );
        (read, seqs)
    }

    #[test]
    fn a_reader_that_took_everything_is_woken_once_by_the_next_appends() {
        let mut fixture = Fixture::new();
        let mut cursor = fixture.log.cursor_at_end();
        let (count, waker) = counting_waker();
        let (read, seqs) = read_all(&mut cursor, &waker, 8, LagPolicy::Disconnect);
        assert_eq!(
            read,
            Read::Took {
                taken: 0,
                skipped: 0,
                parked: true
            }
        );
        assert!(seqs.is_empty());
        assert!(cursor.is_parked_for(&waker));
        wake(fixture.append().expect("a waiter"));
        assert!(fixture.append().is_none(), "taken once");
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(!cursor.is_parked_for(&waker));
        let (read, seqs) = read_all(&mut cursor, &waker, 8, LagPolicy::Disconnect);
        assert_eq!(
            read,
            Read::Took {
                taken: 2,
                skipped: 0,
                parked: true
            }
        );
        assert_eq!(seqs, [1, 2]);
    }

    #[test]
    fn a_reader_polled_with_another_waker_is_woken_through_that_one() {
        let mut fixture = Fixture::new();
        let mut cursor = fixture.log.cursor_at_end();
        let (first_count, first) = counting_waker();
        let (second_count, second) = counting_waker();
        read_all(&mut cursor, &first, 8, LagPolicy::Disconnect);
        assert!(!cursor.is_parked_for(&second));
        read_all(&mut cursor, &second, 8, LagPolicy::Disconnect);
        assert!(cursor.is_parked_for(&second));
        wake(fixture.append().unwrap());
        assert_eq!(first_count.0.load(Ordering::SeqCst), 0);
        assert_eq!(second_count.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_reader_that_leaves_is_not_woken() {
        let mut fixture = Fixture::new();
        let mut cursor = fixture.log.cursor_at_end();
        let (count, waker) = counting_waker();
        read_all(&mut cursor, &waker, 8, LagPolicy::Disconnect);
        cursor.leave();
        assert!(fixture.append().is_none());
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_reader_out_of_the_window_has_lagged() {
        let mut fixture = Fixture::new();
        let mut cursor = fixture.log.cursor_at_end();
        for _ in 0..6 {
            fixture.append();
        }
        let (read, _) = read_all(&mut cursor, Waker::noop(), 100, LagPolicy::Disconnect);
        assert_eq!(read, Read::Lagged);
        let (read, seqs) = read_all(&mut cursor, Waker::noop(), 100, LagPolicy::DropOldest);
        assert_eq!(
            read,
            Read::Took {
                taken: 4,
                skipped: 2,
                parked: true
            }
        );
        assert_eq!(seqs, [3, 4, 5, 6]);
    }

    #[test]
    fn a_reader_further_behind_than_max_lag_has_lagged() {
        let mut fixture = Fixture::new();
        let mut cursor = fixture.log.cursor_at_end();
        for _ in 0..3 {
            fixture.append();
        }
        let (read, _) = read_all(&mut cursor, Waker::noop(), 2, LagPolicy::Disconnect);
        assert_eq!(read, Read::Lagged);
        let (read, seqs) = read_all(&mut cursor, Waker::noop(), 2, LagPolicy::DropOldest);
        assert_eq!(
            read,
            Read::Took {
                taken: 2,
                skipped: 1,
                parked: true
            }
        );
        assert_eq!(seqs, [2, 3]);
    }

    #[test]
    fn the_window_keeps_the_newest_event_whatever_its_size() {
        let mut fixture = Fixture::new();
        let window = Window {
            max_events: 8,
            max_bytes: 1,
            max_age: None,
        };
        fixture.log.append(
            1,
            event(1),
            None,
            &window,
            &fixture.committed,
            &mut fixture.retention,
        );
        assert_eq!(fixture.retention.events, 1);
        fixture.log.append(
            2,
            event(2),
            None,
            &window,
            &fixture.committed,
            &mut fixture.retention,
        );
        assert_eq!(fixture.retention.events, 1);
        assert!(
            fixture
                .log
                .cursor_after(0, None, &window, &mut fixture.retention)
                .is_none()
        );
        assert!(
            fixture
                .log
                .cursor_after(1, None, &window, &mut fixture.retention)
                .is_some()
        );
    }

    #[test]
    fn a_closed_log_ends_after_what_is_left() {
        let mut fixture = Fixture::new();
        let mut cursor = fixture.log.cursor_at_end();
        fixture.append();
        assert!(fixture.log.close().is_none());
        let (read, seqs) = read_all(&mut cursor, Waker::noop(), 8, LagPolicy::Disconnect);
        assert_eq!(
            (read, seqs),
            (
                Read::Took {
                    taken: 1,
                    skipped: 0,
                    parked: false
                },
                vec![1]
            )
        );
        let (read, _) = read_all(&mut cursor, Waker::noop(), 8, LagPolicy::Disconnect);
        assert_eq!(read, Read::Closed);
    }
}
