//! `Subscription`: one connection's stream of events from a hub.

use std::collections::VecDeque;
use std::fmt;
#[cfg(feature = "redis")]
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::{FusedStream, Stream};

use crate::error::Lagged;
use crate::event::EncodedEvent;

use super::log::{Cursor, Read};
use super::registry::AfterUnlock;
use super::{GAP_SIGNAL, Shared};

/// The most events a subscription of one log takes out of it per lock.
const BATCH: usize = 64;

/// One connection's stream of events from a [`Hub`](super::Hub), made by
/// [`Hub::subscribe`](super::Hub::subscribe) or
/// [`Hub::subscribe_client`](super::Hub::subscribe_client) (or the same
/// methods of `RedisHub`).
///
/// It yields, in order: the resync signal if its `Last-Event-ID` could not be
/// honoured, else the retained events after that id; then live events as they
/// are published or sent. Serve it as the body of an SSE response: its items
/// are `Result<EncodedEvent, Lagged>`, which
/// [`SseBody`](crate::SseBody) accepts directly.
///
/// The stream ends (`None`) when every [`Hub`](super::Hub) handle has been
/// dropped, after the events it can still read. If it falls behind under
/// [`LagPolicy::Disconnect`](super::LagPolicy::Disconnect) it yields the
/// `retry:` hint, then `Err(Lagged)`, then ends. A `RedisHub`'s also ends
/// when Redis does not answer its start in time, when Redis lost its
/// history, and when events it missed were trimmed away: its client
/// reconnects and is told.
///
/// It reads its topics' shared logs at its own position and holds no queue
/// of its own: an idle subscription costs a few hundred bytes whatever is
/// published. (A `RedisHub`'s resume is the exception: the events it missed
/// are read from Redis into the subscription, at most the replay windows of
/// its logs, until it has yielded them.) Dropping it unregisters it at
/// once.
#[must_use = "streams do nothing unless polled"]
pub struct Subscription {
    shared: Arc<Shared>,
    /// One per log read: the topics, then the user feed.
    cursors: Box<[Cursor]>,
    /// Events taken from the logs, not yet yielded; the resync signal.
    ready: VecDeque<EncodedEvent>,
    /// Scratch space for merging several logs by position.
    merge: Vec<(u64, EncodedEvent)>,
    phase: Phase,
    /// Still counted by the hub: not cut off for lag, not dropped.
    registered: bool,
    /// Events at or before this position are not taken from the logs: they
    /// were replayed already, or came before the subscription's start.
    skip_through: u64,
    /// How the subscription starts, when that is still being found out
    /// (a hub on Redis asks Redis).
    #[cfg(feature = "redis")]
    start: Option<tokio::sync::oneshot::Receiver<Option<Start>>>,
}

/// How a subscription starts, found out after it was made: the events to
/// yield first (the resync signal or replayed events), and the position
/// through which its logs' events are not taken.
#[cfg(feature = "redis")]
#[derive(Debug)]
pub(crate) struct Start {
    pub(crate) first: Vec<EncodedEvent>,
    pub(crate) skip_through: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Live,
    /// Cut off for lag, the hint yielded; `Err(Lagged)` is next.
    Lagged,
    Done,
}

impl Subscription {
    pub(super) fn new(
        shared: Arc<Shared>,
        cursors: Vec<Cursor>,
        first: Option<EncodedEvent>,
    ) -> Self {
        Self {
            shared,
            cursors: cursors.into_boxed_slice(),
            ready: first.into_iter().collect(),
            merge: Vec::new(),
            phase: Phase::Live,
            registered: true,
            skip_through: 0,
            #[cfg(feature = "redis")]
            start: None,
        }
    }

    /// A subscription that takes no event at or before `skip_through`, and
    /// first waits for `start` (`None` there: it could not start, and ends).
    #[cfg(feature = "redis")]
    pub(super) fn starting(
        shared: Arc<Shared>,
        cursors: Vec<Cursor>,
        skip_through: u64,
        start: Option<tokio::sync::oneshot::Receiver<Option<Start>>>,
    ) -> Self {
        let mut subscription = Self::new(shared, cursors, None);
        subscription.skip_through = skip_through;
        subscription.start = start;
        subscription
    }

    /// Waits for the subscription's start; `Ready(false)` when it could not
    /// start.
    #[cfg(feature = "redis")]
    fn poll_start(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let Some(start) = &mut self.start else {
            return Poll::Ready(true);
        };
        let started = std::task::ready!(Pin::new(start).poll(cx));
        self.start = None;
        match started.ok().flatten() {
            Some(Start {
                first,
                skip_through,
            }) => {
                self.ready.extend(first);
                self.skip_through = self.skip_through.max(skip_through);
                Poll::Ready(true)
            }
            None => Poll::Ready(false),
        }
    }

    /// How many events are ready to be yielded: taken and not yet yielded,
    /// plus those in its logs after its position (replayed or live).
    pub fn queued(&self) -> usize {
        let in_logs: u64 = self.cursors.iter().map(Cursor::available).sum();
        self.ready.len() + usize::try_from(in_logs).unwrap_or(usize::MAX)
    }

    /// Takes the next events from the logs into `ready`, or registers for a
    /// wake-up when there are none.
    fn fill(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<EncodedEvent, Lagged>>> {
        let config = &self.shared.config;
        let (max_lag, policy) = (config.max_lag, config.lag_policy);
        let mut skipped = 0;
        let skip_through = self.skip_through;
        if let [cursor] = &mut *self.cursors {
            let ready = &mut self.ready;
            loop {
                match cursor.read(cx, u64::MAX, BATCH, max_lag, policy, |seq, event| {
                    if seq > skip_through {
                        ready.push_back(event.clone());
                    }
                }) {
                    // Events before the start may all have been passed over:
                    // read on until one is taken or the waker is in place.
                    Read::Took {
                        skipped: dropped,
                        parked,
                        ..
                    } => {
                        skipped += dropped;
                        if parked || skipped > 0 || !ready.is_empty() {
                            break;
                        }
                    }
                    Read::Lagged => return self.lagged(),
                    Read::Closed => return self.end(),
                }
            }
        } else {
            loop {
                // Every event up to `through` is in its log by now; one after
                // it may still be on its way into another log, so it waits.
                let through = self.shared.committed.load(Ordering::Acquire);
                let merge = &mut self.merge;
                let (mut parked, mut closed) = (true, false);
                for cursor in &mut *self.cursors {
                    match cursor.read(cx, through, usize::MAX, max_lag, policy, |seq, event| {
                        if seq > skip_through {
                            merge.push((seq, event.clone()));
                        }
                    }) {
                        Read::Took {
                            skipped: dropped,
                            parked: done,
                            ..
                        } => {
                            skipped += dropped;
                            parked &= done;
                        }
                        Read::Lagged => {
                            merge.clear();
                            return self.lagged();
                        }
                        Read::Closed => closed = true,
                    }
                }
                if !merge.is_empty() {
                    merge.sort_unstable_by_key(|&(seq, _)| seq);
                    self.ready.extend(merge.drain(..).map(|(_, event)| event));
                    break;
                }
                if skipped > 0 {
                    break;
                }
                if closed {
                    return self.end();
                }
                if parked {
                    return Poll::Pending;
                }
            }
        }
        // `ready` was empty when `fill` was called: all it holds was taken.
        self.shared
            .delivered
            .fetch_add(self.ready.len() as u64, Ordering::Relaxed);
        if skipped > 0 {
            self.shared
                .lag_dropped
                .fetch_add(skipped, Ordering::Relaxed);
            self.ready
                .push_front(EncodedEvent::from_bytes(Bytes::from_static(GAP_SIGNAL)));
        }
        match self.ready.pop_front() {
            Some(event) => Poll::Ready(Some(Ok(event))),
            None => Poll::Pending,
        }
    }

    /// Cut off for lag: leaves the hub at once, then yields the hint (if
    /// any) and `Err(Lagged)`.
    fn lagged(&mut self) -> Poll<Option<Result<EncodedEvent, Lagged>>> {
        self.shared.lag_disconnects.fetch_add(1, Ordering::Relaxed);
        tracing::debug!("sse hub subscriber lagged and was disconnected");
        self.unregister();
        match &self.shared.lag_hint {
            Some(hint) => {
                self.phase = Phase::Lagged;
                Poll::Ready(Some(Ok(hint.clone())))
            }
            None => {
                self.phase = Phase::Done;
                Poll::Ready(Some(Err(Lagged::new())))
            }
        }
    }

    fn end(&mut self) -> Poll<Option<Result<EncodedEvent, Lagged>>> {
        self.phase = Phase::Done;
        Poll::Ready(None)
    }

    /// Takes its wakers out of its logs and its counts out of the hub.
    fn unregister(&mut self) {
        for cursor in &mut *self.cursors {
            cursor.leave();
        }
        if !std::mem::take(&mut self.registered) {
            return;
        }
        let shared = &self.shared;
        let mut after = AfterUnlock::default();
        shared.lock().unsubscribe(
            self.cursors.iter().map(|cursor| &cursor.log),
            &shared.config,
            &mut after,
        );
        after.run();
    }
}

impl Stream for Subscription {
    type Item = Result<EncodedEvent, Lagged>;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        #[cfg(feature = "redis")]
        if this.start.is_some() {
            match this.poll_start(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(true) => {}
                Poll::Ready(false) => {
                    tracing::warn!("sse hub subscription could not start: Redis did not answer");
                    this.unregister();
                    this.phase = Phase::Done;
                    return Poll::Ready(None);
                }
            }
        }
        if let Some(event) = this.ready.pop_front() {
            return Poll::Ready(Some(Ok(event)));
        }
        match this.phase {
            Phase::Live => {}
            Phase::Lagged => {
                this.phase = Phase::Done;
                return Poll::Ready(Some(Err(Lagged::new())));
            }
            Phase::Done => return Poll::Ready(None),
        }
        // The common poll: nothing new since the last one. One atomic load
        // per log, no lock.
        if this
            .cursors
            .iter()
            .all(|cursor| cursor.is_parked_for(cx.waker()))
        {
            return Poll::Pending;
        }
        this.fill(cx)
    }
}

impl FusedStream for Subscription {
    fn is_terminated(&self) -> bool {
        // What is ready is yielded before the phase can move on.
        self.phase == Phase::Done
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let registered = self.registered;
        self.unregister();
        if registered {
            tracing::debug!("sse hub subscriber disconnected");
        }
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("logs", &self.cursors.len())
            .field("ready", &self.ready.len())
            .field("phase", &self.phase)
            .finish()
    }
}
