//! One subscriber's bounded queue: filled by fan-out, drained by its
//! [`Subscription`](super::Subscription).

use std::collections::VecDeque;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::event::EncodedEvent;

use super::config::LagPolicy;

/// A bounded queue of shared, encoded events with a single consumer.
///
/// Pushes never block and never grow it past its capacity; what happens when
/// it is full is the [`LagPolicy`]. The lock is held only to move one handle
/// in or out, so a slow consumer cannot hold up a publisher.
///
/// A consumer that finds nothing new is answered without the lock: when it
/// takes the last event, or finds the queue empty, it leaves its waker and
/// marks the queue idle; until something is queued (which clears the mark
/// and collects the waker), polls with the same waker return `Pending` after
/// one atomic load. A body polls its stream until it is pending after every
/// event, and a server polls the body again after every frame, so this saves
/// two lock round trips per delivery.
///
/// A push wakes only a consumer that is waiting, and collects no waker that
/// one already collected in the same fan-out would wake anyway (the same
/// task polls several subscriptions): that waker stays in the queue, and the
/// consumer's next registration, finding it there, clones nothing.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    state: Mutex<State>,
    /// The queue is empty, not ended, and holds the waker the consumer left
    /// last. Set by the consumer and cleared by producers, both under the
    /// lock; read by the consumer without it.
    idle: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    events: Events,
    waker: Option<Waker>,
    /// Events were dropped to make room ([`LagPolicy::DropOldest`]): every
    /// event now queued comes after the missing ones.
    gap: bool,
    end: Option<End>,
}

/// Queued events in order. The oldest is held inline, so that a queue that
/// its consumer keeps up with (at most one event waiting, the usual case)
/// never touches a second allocation.
#[derive(Debug, Default)]
struct Events {
    /// The oldest event; `None` only when the queue is empty.
    first: Option<EncodedEvent>,
    rest: VecDeque<EncodedEvent>,
}

impl Events {
    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    fn push_back(&mut self, event: EncodedEvent) {
        if self.first.is_none() {
            self.first = Some(event);
        } else {
            self.rest.push_back(event);
        }
    }

    fn pop_front(&mut self) -> Option<EncodedEvent> {
        let first = self.first.take()?;
        self.first = self.rest.pop_front();
        Some(first)
    }
}

/// Which waker the consumer left in the queue, compared as
/// [`Waker::will_wake`] compares wakers. Only the consumer reads it, and only
/// while the queue is idle, that is while the queue still holds that waker,
/// so the task it points to is alive and the address cannot have been reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WakerKey {
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

/// Why a queue takes no more events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// It overflowed under [`LagPolicy::Disconnect`].
    Lagged,
    /// The hub was dropped.
    Closed,
}

/// What a push did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// The event is queued.
    Queued,
    /// The event is queued, and the oldest queued event was dropped for it;
    /// `first` when no drop was pending since the consumer last took events.
    DroppedOldest { first: bool },
    /// The queue was full and is now ended as lagged; the event is not queued.
    Lagged,
    /// The queue had already ended; the event is not queued.
    Ended,
}

/// What the consumer gets next.
#[derive(Debug)]
pub(crate) enum Popped {
    Event(EncodedEvent),
    /// Events are missing here (dropped for room).
    Gap,
    End(End),
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; should something, the queue
        // is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `event` under `policy`, collecting the consumer's waker into
    /// `wakers` so that it can be woken once the hub's lock is released.
    #[inline]
    pub(crate) fn push(
        &self,
        event: &EncodedEvent,
        capacity: usize,
        policy: LagPolicy,
        wakers: &mut Vec<Waker>,
    ) -> Pushed {
        // Cloned before the lock is taken: a shorter critical section.
        let event = event.clone();
        let mut guard = self.lock();
        let state = &mut *guard;
        if state.end.is_some() {
            return Pushed::Ended;
        }
        let pushed = if state.events.len() < capacity {
            Pushed::Queued
        } else {
            match policy {
                LagPolicy::Disconnect => {
                    state.end = Some(End::Lagged);
                    self.wake(state, wakers);
                    return Pushed::Lagged;
                }
                LagPolicy::DropOldest => {
                    state.events.pop_front();
                    let first = !state.gap;
                    state.gap = true;
                    Pushed::DroppedOldest { first }
                }
            }
        };
        // Into the inline slot when the consumer keeps up (the usual case).
        state.events.push_back(event);
        self.wake(state, wakers);
        pushed
    }

    /// Ends the queue: the consumer gets what is queued, then `end`.
    pub(crate) fn end(&self, end: End, wakers: &mut Vec<Waker>) {
        let mut state = self.lock();
        if state.end.is_none() {
            state.end = Some(end);
        }
        self.wake(&mut state, wakers);
    }

    /// Something changed for the consumer: if it is waiting (the queue is
    /// idle), the mark is cleared and its waker goes to `wakers`.
    ///
    /// A consumer that is not waiting has been answered `Ready` or woken since
    /// it last waited, so it polls again by itself. When the waker collected
    /// last wakes the same task (several subscriptions polled by one task),
    /// that wake is enough: this one stays in the queue, where the consumer's
    /// next registration finds it and need not clone its own.
    #[inline]
    fn wake(&self, state: &mut State, wakers: &mut Vec<Waker>) {
        // Written only under the lock, which is held.
        if !self.idle.load(Ordering::Relaxed) {
            return;
        }
        self.idle.store(false, Ordering::Release);
        let Some(waker) = &state.waker else {
            return;
        };
        if wakers.last().is_some_and(|last| last.will_wake(waker)) {
            return;
        }
        if let Some(waker) = state.waker.take() {
            wakers.push(waker);
        }
    }

    /// Whether the consumer would find nothing new: the queue is idle and
    /// `waker` is the one it left, `left`. Needs no lock.
    #[inline]
    pub(crate) fn is_idle_for(&self, waker: &Waker, left: Option<WakerKey>) -> bool {
        self.idle.load(Ordering::Acquire) && left == Some(WakerKey::of(waker))
    }

    /// Takes the next event, or the gap or end marker; when there is nothing,
    /// leaves the consumer's waker and marks the queue idle. `left` is the
    /// consumer's own record of the waker it left last.
    #[inline]
    pub(crate) fn poll_pop(
        &self,
        cx: &mut Context<'_>,
        left: &mut Option<WakerKey>,
    ) -> Poll<Popped> {
        let mut guard = self.lock();
        let state = &mut *guard;
        if state.gap {
            state.gap = false;
            return Poll::Ready(Popped::Gap);
        }
        if let Some(event) = state.events.pop_front() {
            if state.events.first.is_none() && state.end.is_none() {
                // The consumer polls again until it is pending: register now,
                // while the lock is held anyway.
                self.leave_waker(state, cx, left);
            }
            return Poll::Ready(Popped::Event(event));
        }
        if let Some(end) = state.end {
            return Poll::Ready(Popped::End(end));
        }
        self.leave_waker(state, cx, left);
        Poll::Pending
    }

    /// Stores the consumer's waker in the empty, open queue and marks it idle.
    fn leave_waker(&self, state: &mut State, cx: &Context<'_>, left: &mut Option<WakerKey>) {
        match &mut state.waker {
            Some(waker) => waker.clone_from(cx.waker()),
            None => state.waker = Some(cx.waker().clone()),
        }
        *left = Some(WakerKey::of(cx.waker()));
        self.idle.store(true, Ordering::Release);
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().events.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::task::{Wake, Waker};

    use super::*;
    use crate::event::Event;

    fn event(n: usize) -> EncodedEvent {
        Event::new().data(n.to_string()).encode().unwrap()
    }

    /// A queue's consumer, polling with the no-op waker unless told otherwise.
    #[derive(Default)]
    struct Consumer {
        left: Option<WakerKey>,
    }

    impl Consumer {
        fn pop(&mut self, queue: &Queue) -> Poll<Popped> {
            self.pop_with(queue, Waker::noop())
        }

        fn pop_with(&mut self, queue: &Queue, waker: &Waker) -> Poll<Popped> {
            if queue.is_idle_for(waker, self.left) {
                return Poll::Pending;
            }
            queue.poll_pop(&mut Context::from_waker(waker), &mut self.left)
        }
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

    #[test]
    fn disconnect_policy_keeps_what_was_queued_then_ends() {
        let queue = Queue::default();
        let mut consumer = Consumer::default();
        let mut wakers = Vec::new();
        for n in 0..2 {
            assert_eq!(
                queue.push(&event(n), 2, LagPolicy::Disconnect, &mut wakers),
                Pushed::Queued
            );
        }
        assert_eq!(
            queue.push(&event(2), 2, LagPolicy::Disconnect, &mut wakers),
            Pushed::Lagged
        );
        assert_eq!(
            queue.push(&event(3), 2, LagPolicy::Disconnect, &mut wakers),
            Pushed::Ended
        );
        assert!(matches!(consumer.pop(&queue), Poll::Ready(Popped::Event(e)) if e == event(0)));
        assert!(matches!(consumer.pop(&queue), Poll::Ready(Popped::Event(e)) if e == event(1)));
        assert!(matches!(
            consumer.pop(&queue),
            Poll::Ready(Popped::End(End::Lagged))
        ));
    }

    #[test]
    fn drop_oldest_policy_marks_the_gap_before_the_survivors() {
        let queue = Queue::default();
        let mut consumer = Consumer::default();
        let mut wakers = Vec::new();
        for n in 0..3 {
            queue.push(&event(n), 2, LagPolicy::DropOldest, &mut wakers);
        }
        assert!(matches!(consumer.pop(&queue), Poll::Ready(Popped::Gap)));
        assert!(matches!(consumer.pop(&queue), Poll::Ready(Popped::Event(e)) if e == event(1)));
        assert!(matches!(consumer.pop(&queue), Poll::Ready(Popped::Event(e)) if e == event(2)));
        assert!(consumer.pop(&queue).is_pending());
    }

    #[test]
    fn a_push_hands_over_the_waiting_consumers_waker_once() {
        let queue = Queue::default();
        let mut consumer = Consumer::default();
        let mut wakers = Vec::new();
        assert!(consumer.pop(&queue).is_pending());
        queue.push(&event(0), 8, LagPolicy::Disconnect, &mut wakers);
        queue.push(&event(1), 8, LagPolicy::Disconnect, &mut wakers);
        assert_eq!(wakers.len(), 1);
    }

    #[test]
    fn taking_the_last_event_leaves_the_waker_for_the_next_push() {
        let queue = Queue::default();
        let mut consumer = Consumer::default();
        let (count, waker) = counting_waker();
        let mut wakers = Vec::new();
        queue.push(&event(0), 8, LagPolicy::Disconnect, &mut wakers);
        assert!(consumer.pop_with(&queue, &waker).is_ready());
        assert!(consumer.pop_with(&queue, &waker).is_pending());
        assert!(consumer.pop_with(&queue, &waker).is_pending());
        queue.push(&event(1), 8, LagPolicy::Disconnect, &mut wakers);
        wakers.drain(..).for_each(Waker::wake);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(
            matches!(consumer.pop_with(&queue, &waker), Poll::Ready(Popped::Event(e)) if e == event(1))
        );
    }

    #[test]
    fn a_consumer_polled_with_another_waker_is_woken_through_that_one() {
        let queue = Queue::default();
        let mut consumer = Consumer::default();
        let (first_count, first) = counting_waker();
        let (second_count, second) = counting_waker();
        let mut wakers = Vec::new();
        assert!(consumer.pop_with(&queue, &first).is_pending());
        assert!(consumer.pop_with(&queue, &second).is_pending());
        queue.push(&event(0), 8, LagPolicy::Disconnect, &mut wakers);
        wakers.drain(..).for_each(Waker::wake);
        assert_eq!(first_count.0.load(Ordering::SeqCst), 0);
        assert_eq!(second_count.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn one_task_waiting_on_several_queues_is_collected_once_per_fan_out() {
        let queues = [Queue::default(), Queue::default()];
        let mut consumers = [Consumer::default(), Consumer::default()];
        let (count, waker) = counting_waker();
        let (other_count, other) = counting_waker();
        let third = Queue::default();
        let mut third_consumer = Consumer::default();
        for (queue, consumer) in queues.iter().zip(&mut consumers) {
            assert!(consumer.pop_with(queue, &waker).is_pending());
        }
        assert!(third_consumer.pop_with(&third, &other).is_pending());
        for round in 0..3 {
            let mut wakers = Vec::new();
            for queue in queues.iter().chain([&third]) {
                queue.push(&event(round), 8, LagPolicy::Disconnect, &mut wakers);
            }
            assert_eq!(wakers.len(), 2);
            wakers.drain(..).for_each(Waker::wake);
            assert_eq!(count.0.load(Ordering::SeqCst), round + 1);
            assert_eq!(other_count.0.load(Ordering::SeqCst), round + 1);
            for (queue, consumer) in queues.iter().zip(&mut consumers) {
                assert!(
                    matches!(consumer.pop_with(queue, &waker), Poll::Ready(Popped::Event(e)) if e == event(round))
                );
                assert!(consumer.pop_with(queue, &waker).is_pending());
            }
            assert!(matches!(
                third_consumer.pop_with(&third, &other),
                Poll::Ready(Popped::Event(_))
            ));
            assert!(third_consumer.pop_with(&third, &other).is_pending());
        }
        // A queue pushed alone still wakes the task through the waker it kept.
        let mut wakers = Vec::new();
        queues[1].push(&event(9), 8, LagPolicy::Disconnect, &mut wakers);
        assert_eq!(wakers.len(), 1);
        wakers.drain(..).for_each(Waker::wake);
        assert_eq!(count.0.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn ending_an_idle_queue_wakes_its_consumer() {
        let queue = Queue::default();
        let mut consumer = Consumer::default();
        let (count, waker) = counting_waker();
        let mut wakers = Vec::new();
        assert!(consumer.pop_with(&queue, &waker).is_pending());
        queue.end(End::Closed, &mut wakers);
        wakers.drain(..).for_each(Waker::wake);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(matches!(
            consumer.pop_with(&queue, &waker),
            Poll::Ready(Popped::End(End::Closed))
        ));
    }
}
