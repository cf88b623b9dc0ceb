//! `Subscription`: one connection's stream of events from a hub.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::{FusedStream, Stream};

use crate::error::Lagged;
use crate::event::EncodedEvent;

use super::queue::{End, Popped, Queue, WakerKey};
use super::{GAP_SIGNAL, Shared};

/// One connection's stream of events from a [`Hub`](super::Hub), made by
/// [`Hub::subscribe`](super::Hub::subscribe) or
/// [`Hub::subscribe_client`](super::Hub::subscribe_client).
///
/// It yields, in order: the resync signal if its `Last-Event-ID` could not be
/// honoured, else the retained events after that id; then live events as they
/// are published or sent. Serve it as the body of an SSE response: its items
/// are `Result<EncodedEvent, Lagged>`, which
/// [`SseBody`](crate::SseBody) accepts directly.
///
/// The stream ends (`None`) when every [`Hub`](super::Hub) handle has been
/// dropped. If it falls behind under
/// [`LagPolicy::Disconnect`](super::LagPolicy::Disconnect) it yields the
/// events already queued, the `retry:` hint, then `Err(Lagged)`, then ends.
///
/// Dropping it unregisters it at once: from its topics and, for a client's
/// subscription, from the client registry.
#[must_use = "streams do nothing unless polled"]
pub struct Subscription {
    shared: Arc<Shared>,
    key: u64,
    queue: Arc<Queue>,
    /// The resync signal or the replayed events, yielded before the queue.
    replay: VecDeque<EncodedEvent>,
    phase: Phase,
    /// The waker this subscription last left in its queue.
    left: Option<WakerKey>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Live,
    /// The queue ended for lag; `Err(Lagged)` is next.
    Lagged,
    Done,
}

impl Subscription {
    pub(super) fn new(
        shared: Arc<Shared>,
        key: u64,
        queue: Arc<Queue>,
        replay: VecDeque<EncodedEvent>,
    ) -> Self {
        Self {
            shared,
            key,
            queue,
            replay,
            phase: Phase::Live,
            left: None,
        }
    }

    /// How many events are ready to be yielded: replayed events not yet taken
    /// plus the live queue. The live queue never holds more than
    /// [`HubConfig::queue_capacity`](super::HubConfig::queue_capacity).
    pub fn queued(&self) -> usize {
        self.replay.len() + self.queue.len()
    }

    /// Everything but the idle poll: the replay, then the queue, then how
    /// the stream ends.
    fn poll_queue(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<EncodedEvent, Lagged>>> {
        if let Some(event) = self.replay.pop_front() {
            return Poll::Ready(Some(Ok(event)));
        }
        match self.phase {
            Phase::Live => {}
            Phase::Lagged => {
                self.phase = Phase::Done;
                return Poll::Ready(Some(Err(Lagged::new())));
            }
            Phase::Done => return Poll::Ready(None),
        }
        match self.queue.poll_pop(cx, &mut self.left) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Popped::Event(event)) => Poll::Ready(Some(Ok(event))),
            Poll::Ready(Popped::Gap) => {
                let signal = EncodedEvent::from_bytes(Bytes::from_static(GAP_SIGNAL));
                Poll::Ready(Some(Ok(signal)))
            }
            Poll::Ready(Popped::End(End::Lagged)) => match &self.shared.lag_hint {
                Some(hint) => {
                    self.phase = Phase::Lagged;
                    Poll::Ready(Some(Ok(hint.clone())))
                }
                None => {
                    self.phase = Phase::Done;
                    Poll::Ready(Some(Err(Lagged::new())))
                }
            },
            Poll::Ready(Popped::End(End::Closed)) => {
                self.phase = Phase::Done;
                Poll::Ready(None)
            }
        }
    }
}

impl Stream for Subscription {
    type Item = Result<EncodedEvent, Lagged>;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        // The common poll: nothing new since the last one. Inlined into the
        // body that polls, so that it costs one atomic load and no call. The
        // queue is marked idle only by `poll_queue` once the replay is
        // drained, in the live phase, and never after it has ended, so
        // nothing else can be waiting.
        if this.queue.is_idle_for(cx.waker(), this.left) {
            return Poll::Pending;
        }
        this.poll_queue(cx)
    }
}

impl FusedStream for Subscription {
    fn is_terminated(&self) -> bool {
        // The replay is drained before the phase can move on.
        self.phase == Phase::Done
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if self.shared.lock().unsubscribe(self.key) {
            tracing::debug!(subscriber = self.key, "sse hub subscriber disconnected");
        }
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("key", &self.key)
            .field("queued", &self.queued())
            .field("phase", &self.phase)
            .finish()
    }
}
