//! One subscriber's bounded queue: filled by fan-out, drained by its
//! [`Subscription`](super::Subscription).

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::event::EncodedEvent;

use super::config::LagPolicy;

/// A bounded queue of shared, encoded events with a single consumer.
///
/// Pushes never block and never grow it past its capacity; what happens when
/// it is full is the [`LagPolicy`]. The lock is held only to move one handle
/// in or out, so a slow consumer cannot hold up a publisher.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    events: VecDeque<EncodedEvent>,
    waker: Option<Waker>,
    /// Events were dropped to make room ([`LagPolicy::DropOldest`]): every
    /// event now queued comes after the missing ones.
    gap: bool,
    end: Option<End>,
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
    pub(crate) fn push(
        &self,
        event: &EncodedEvent,
        capacity: usize,
        policy: LagPolicy,
        wakers: &mut Vec<Waker>,
    ) -> Pushed {
        let mut state = self.lock();
        if state.end.is_some() {
            return Pushed::Ended;
        }
        let pushed = if state.events.len() < capacity {
            Pushed::Queued
        } else {
            match policy {
                LagPolicy::Disconnect => {
                    state.end = Some(End::Lagged);
                    Pushed::Lagged
                }
                LagPolicy::DropOldest => {
                    state.events.pop_front();
                    let first = !state.gap;
                    state.gap = true;
                    Pushed::DroppedOldest { first }
                }
            }
        };
        if pushed != Pushed::Lagged {
            state.events.push_back(event.clone());
        }
        if let Some(waker) = state.waker.take() {
            wakers.push(waker);
        }
        pushed
    }

    /// Ends the queue: the consumer gets what is queued, then `end`.
    pub(crate) fn end(&self, end: End, wakers: &mut Vec<Waker>) {
        let mut state = self.lock();
        if state.end.is_none() {
            state.end = Some(end);
        }
        if let Some(waker) = state.waker.take() {
            wakers.push(waker);
        }
    }

    pub(crate) fn poll_pop(&self, cx: &mut Context<'_>) -> Poll<Popped> {
        let mut state = self.lock();
        if state.gap {
            state.gap = false;
            return Poll::Ready(Popped::Gap);
        }
        if let Some(event) = state.events.pop_front() {
            return Poll::Ready(Popped::Event(event));
        }
        if let Some(end) = state.end {
            return Poll::Ready(Popped::End(end));
        }
        match &mut state.waker {
            Some(waker) => waker.clone_from(cx.waker()),
            None => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().events.len()
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;
    use crate::event::Event;

    fn event(n: usize) -> EncodedEvent {
        Event::new().data(n.to_string()).encode().unwrap()
    }

    fn pop(queue: &Queue) -> Poll<Popped> {
        queue.poll_pop(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn disconnect_policy_keeps_what_was_queued_then_ends() {
        let queue = Queue::default();
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
        assert!(matches!(pop(&queue), Poll::Ready(Popped::Event(e)) if e == event(0)));
        assert!(matches!(pop(&queue), Poll::Ready(Popped::Event(e)) if e == event(1)));
        assert!(matches!(pop(&queue), Poll::Ready(Popped::End(End::Lagged))));
    }

    #[test]
    fn drop_oldest_policy_marks_the_gap_before_the_survivors() {
        let queue = Queue::default();
        let mut wakers = Vec::new();
        for n in 0..3 {
            queue.push(&event(n), 2, LagPolicy::DropOldest, &mut wakers);
        }
        assert!(matches!(pop(&queue), Poll::Ready(Popped::Gap)));
        assert!(matches!(pop(&queue), Poll::Ready(Popped::Event(e)) if e == event(1)));
        assert!(matches!(pop(&queue), Poll::Ready(Popped::Event(e)) if e == event(2)));
        assert!(pop(&queue).is_pending());
    }

    #[test]
    fn a_push_hands_over_the_waiting_consumers_waker_once() {
        let queue = Queue::default();
        let mut wakers = Vec::new();
        assert!(pop(&queue).is_pending());
        queue.push(&event(0), 8, LagPolicy::Disconnect, &mut wakers);
        queue.push(&event(1), 8, LagPolicy::Disconnect, &mut wakers);
        assert_eq!(wakers.len(), 1);
    }
}
