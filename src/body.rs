//! `SseBody`: the streaming `text/event-stream` response body.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::config::{CloseReason, ConfigSlot, SseConfig};
use crate::error::{BoxError, Lagged};
use crate::event::IntoEncodedEvent;
use crate::shutdown::Watcher;

/// At most this many ready events are joined into one frame, whatever their
/// size, so that one poll does a bounded amount of work.
pub(crate) const MAX_FRAME_EVENTS: usize = 256;

/// The largest buffer a frame starts with; larger events grow it as needed.
const MAX_FIRST_CAPACITY: usize = 1 << 20;

pin_project! {
    /// A streaming `text/event-stream` body over a [`Stream`] of events.
    ///
    /// The stream's items are [`Event`](crate::Event)s,
    /// [`EncodedEvent`](crate::EncodedEvent)s, or `Result`s of either (see
    /// [`IntoEncodedEvent`]). The body:
    ///
    /// - hands over every event the stream has ready before it returns
    ///   `Pending`, joining ready events into one frame up to a bound and never
    ///   waiting for more;
    /// - sends a keep-alive ping after an idle interval, only between events,
    ///   without a timer operation per event;
    /// - ends when the stream ends, when the shutdown signal is triggered, when
    ///   the connection reaches its maximum age, or (by default) when the
    ///   stream yields an error, and tells the close hook why, including when
    ///   the body is dropped early because the client went away.
    ///
    /// Timers are created at the first poll, so a body can be built outside a
    /// Tokio runtime; it must be polled inside one.
    ///
    /// ```
    /// use futures_util::stream;
    /// use http_body_util::BodyExt;
    /// use tower_sse::{Event, SseBody};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let events = stream::iter([Event::new().data("a"), Event::new().data("b")]);
    /// let body = SseBody::new(events);
    /// let bytes = body.collect().await.unwrap().to_bytes();
    /// assert_eq!(bytes, "data: a\n\ndata: b\n\n");
    /// # }
    /// ```
    #[must_use = "bodies do nothing unless polled"]
    pub struct SseBody<S> {
        #[pin]
        state: State<S>,
        config: SseConfig,
        timers: Option<Pin<Box<Timers>>>,
        // An event that did not fit into the previous frame.
        carried: Option<Bytes>,
        // The size of the previous frame: the next frame buffer's first guess.
        frame_capacity: usize,
        // What the stream did after the events of the previous frame.
        deferred: Option<Deferred>,
        close: CloseGuard,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S> {
        Streaming { #[pin] stream: S },
        Done,
    }
}

enum Deferred {
    End,
    Error(BoxError),
}

pin_project! {
    /// Everything time-related, created at the first poll.
    struct Timers {
        #[pin]
        keep_alive: Option<Sleep>,
        // The waker the keep-alive timer last registered: while the timer has
        // not fired and the task's waker is the same, polling it again would
        // only register the same waker again.
        keep_alive_waker: Option<Waker>,
        // When the last frame was written; the keep-alive timer is re-armed
        // from it only when it fires.
        last_write: Instant,
        max_age_deadline: Option<Instant>,
        // Boxed: most streams have no maximum age, and an idle connection
        // should not carry room for a timer it does not use.
        max_age: Option<Pin<Box<Sleep>>>,
        shutdown: Option<Watcher>,
    }
}

impl<S> SseBody<S> {
    /// A body over `stream` with the default [`SseConfig`].
    pub fn new(stream: S) -> Self {
        Self::with_config(stream, SseConfig::default())
    }

    /// A body over `stream` with the given policy.
    pub fn with_config(stream: S, config: SseConfig) -> Self {
        let close = CloseGuard::new(&config);
        Self {
            state: State::Streaming { stream },
            config,
            timers: None,
            carried: None,
            frame_capacity: 0,
            deferred: None,
            close,
        }
    }

    /// A body whose policy is taken from `slot` at the first poll when an
    /// outer [`SseConfigLayer`](crate::SseConfigLayer) has filled it, and is
    /// the default otherwise.
    #[cfg_attr(not(any(feature = "axum", feature = "warp")), allow(dead_code))]
    pub(crate) fn with_config_slot(stream: S, slot: ConfigSlot) -> Self {
        let mut body = Self::new(stream);
        body.close.slot = Some(slot);
        body
    }

    /// A body that ends at once, for responses that carry no stream.
    pub(crate) fn empty() -> Self {
        Self {
            state: State::Done,
            config: SseConfig::default(),
            timers: None,
            carried: None,
            frame_capacity: 0,
            deferred: None,
            close: CloseGuard::disarmed(),
        }
    }
}

impl<S> Body for SseBody<S>
where
    S: Stream,
    S::Item: IntoEncodedEvent,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        let mut stream = match this.state.as_mut().project() {
            StateProj::Streaming { stream } => stream,
            StateProj::Done => return Poll::Ready(None),
        };
        if this.timers.is_none() {
            if let Some(config) = this.close.resolve_slot() {
                *this.config = config;
            }
        }
        let config = this.config;
        let timers = this
            .timers
            .get_or_insert_with(|| Box::pin(Timers::start(config)))
            .as_mut();
        let mut timers = timers.project();

        match this.deferred.take() {
            Some(Deferred::End) => {
                finish(this.state, this.close, CloseReason::StreamEnded);
                return Poll::Ready(None);
            }
            Some(Deferred::Error(error)) => {
                return Poll::Ready(fail(this.state, this.close, config, error));
            }
            None => {}
        }

        if timers.shutdown.as_ref().is_some_and(Watcher::is_triggered) {
            return Poll::Ready(shut_down(this.state, this.close, config));
        }

        let now = if timers.keep_alive.is_some() || timers.max_age_deadline.is_some() {
            Some(Instant::now())
        } else {
            None
        };
        if let (Some(deadline), Some(now)) = (*timers.max_age_deadline, now) {
            if now >= deadline {
                finish(this.state, this.close, CloseReason::MaxAge);
                return Poll::Ready(None);
            }
        }

        let mut batch = Batch::new(
            this.carried.take(),
            config.inner().max_frame_bytes,
            *this.frame_capacity,
        );
        while batch.wants_more() {
            match stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => match batch.push(item) {
                    Ok(None) => {}
                    Ok(Some(overflow)) => {
                        *this.carried = Some(overflow);
                        break;
                    }
                    Err(error) => {
                        if batch.is_empty() {
                            return Poll::Ready(fail(this.state, this.close, config, error));
                        }
                        *this.deferred = Some(Deferred::Error(error));
                        break;
                    }
                },
                Poll::Ready(None) => {
                    if batch.is_empty() {
                        finish(this.state, this.close, CloseReason::StreamEnded);
                        return Poll::Ready(None);
                    }
                    *this.deferred = Some(Deferred::End);
                    break;
                }
                Poll::Pending => break,
            }
        }

        if let Some(frame) = batch.finish() {
            *this.frame_capacity = frame.len();
            if let Some(now) = now {
                *timers.last_write = now;
            }
            return Poll::Ready(Some(Ok(Frame::data(frame))));
        }

        // The stream is idle: register for every way this body can go on.
        if let Some(watcher) = timers.shutdown.as_mut() {
            if watcher.poll_triggered(cx).is_ready() {
                return Poll::Ready(shut_down(this.state, this.close, config));
            }
        }
        if let Some(max_age) = timers.max_age.as_mut() {
            if max_age.as_mut().poll(cx).is_ready() {
                finish(this.state, this.close, CloseReason::MaxAge);
                return Poll::Ready(None);
            }
        }
        if let Some(keep_alive) = &config.inner().keep_alive {
            if let Some(mut sleep) = timers.keep_alive.as_mut().as_pin_mut() {
                loop {
                    if !sleep.is_elapsed() {
                        let registered = timers.keep_alive_waker.as_ref();
                        if registered.is_some_and(|waker| waker.will_wake(cx.waker())) {
                            return Poll::Pending;
                        }
                        if sleep.as_mut().poll(cx).is_pending() {
                            *timers.keep_alive_waker = Some(cx.waker().clone());
                            return Poll::Pending;
                        }
                    }
                    // Re-arming forgets the registration: the next round polls.
                    *timers.keep_alive_waker = None;
                    let now = Instant::now();
                    let due = *timers.last_write + keep_alive.get_interval();
                    if now < due {
                        // Events were sent since the timer was armed.
                        sleep.as_mut().reset(due);
                        continue;
                    }
                    *timers.last_write = now;
                    sleep.as_mut().reset(now + keep_alive.get_interval());
                    return Poll::Ready(Some(Ok(Frame::data(keep_alive.ping().clone()))));
                }
            }
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Timers {
    fn start(config: &SseConfig) -> Self {
        let now = Instant::now();
        let inner = config.inner();
        let max_age_deadline = config.pick_max_age().map(|age| now + age);
        Self {
            keep_alive: inner
                .keep_alive
                .as_ref()
                .map(|keep_alive| tokio::time::sleep_until(now + keep_alive.get_interval())),
            keep_alive_waker: None,
            last_write: now,
            max_age_deadline,
            max_age: max_age_deadline.map(|deadline| Box::pin(tokio::time::sleep_until(deadline))),
            shutdown: inner.shutdown.as_ref().map(|shutdown| shutdown.watch()),
        }
    }
}

/// Ready events gathered into one frame. A lone pre-encoded event passes
/// through without a copy; otherwise events are encoded straight into one
/// buffer.
struct Batch {
    contents: Contents,
    events: usize,
    limit: usize,
    /// The size of the previous frame: the first guess for this one's buffer.
    last_frame_len: usize,
}

/// What a batch holds so far.
enum Contents {
    Empty,
    /// One event's bytes, sent as they are if nothing joins them.
    Lone(Bytes),
    Joined(BytesMut),
}

impl Batch {
    #[inline]
    fn new(carried: Option<Bytes>, limit: usize, last_frame_len: usize) -> Self {
        let (contents, events) = match carried {
            Some(bytes) => (Contents::Lone(bytes), 1),
            None => (Contents::Empty, 0),
        };
        Self {
            contents,
            events,
            limit,
            last_frame_len,
        }
    }

    #[inline]
    fn is_empty(&self) -> bool {
        self.events == 0
    }

    #[inline]
    fn len(&self) -> usize {
        match &self.contents {
            Contents::Empty => 0,
            Contents::Lone(bytes) => bytes.len(),
            Contents::Joined(buf) => buf.len(),
        }
    }

    #[inline]
    fn wants_more(&self) -> bool {
        self.events == 0 || (self.events < MAX_FRAME_EVENTS && self.len() < self.limit)
    }

    /// Adds an item. When it makes the frame larger than the bound, its bytes
    /// are handed back for the next frame; an invalid item adds nothing.
    #[inline]
    fn push<I: IntoEncodedEvent>(&mut self, item: I) -> Result<Option<Bytes>, BoxError> {
        match &mut self.contents {
            Contents::Joined(buf) => append(buf, &mut self.events, self.limit, item),
            Contents::Empty if item.is_encoded() => {
                self.contents = Contents::Lone(item.into_encoded_event()?.into_bytes());
                self.events = 1;
                Ok(None)
            }
            contents => {
                // Room for a frame like the last one plus a quarter: a batch
                // ends with the event that crosses the bound, and it must fit
                // without moving the whole frame to a larger allocation.
                let lone_len = match contents {
                    Contents::Lone(lone) => lone.len(),
                    _ => 0,
                };
                let capacity = self
                    .last_frame_len
                    .saturating_add(self.last_frame_len / 4)
                    .saturating_add(512)
                    .min(MAX_FIRST_CAPACITY)
                    .max(2 * lone_len);
                let mut buf = BytesMut::with_capacity(capacity);
                if let Contents::Lone(lone) = contents {
                    buf.extend_from_slice(lone);
                }
                let pushed = append(&mut buf, &mut self.events, self.limit, item);
                *contents = Contents::Joined(buf);
                pushed
            }
        }
    }

    #[inline]
    fn finish(self) -> Option<Bytes> {
        match self.contents {
            Contents::Empty => None,
            Contents::Lone(bytes) => Some(bytes),
            Contents::Joined(buf) => Some(buf.freeze()),
        }
    }
}

/// Encodes `item` at the end of `buf`, the batch's joined events, counting it
/// in `events`; hands back its bytes when it takes the frame past `limit`.
// Always inlined: it is the per-event step, and an out-of-line call would
// move each event once more.
#[inline(always)]
fn append<I: IntoEncodedEvent>(
    buf: &mut BytesMut,
    events: &mut usize,
    limit: usize,
    item: I,
) -> Result<Option<Bytes>, BoxError> {
    let before = buf.len();
    if let Err(error) = item.encode_into(buf) {
        buf.truncate(before);
        return Err(error);
    }
    *events += 1;
    if *events > 1 && buf.len() > limit {
        *events -= 1;
        return Ok(Some(buf.split_off(before).freeze()));
    }
    Ok(None)
}

fn finish<S>(mut state: Pin<&mut State<S>>, close: &mut CloseGuard, reason: CloseReason) {
    // Drops the stream now, releasing what it holds.
    state.set(State::Done);
    close.report(reason);
}

fn fail<S>(
    state: Pin<&mut State<S>>,
    close: &mut CloseGuard,
    config: &SseConfig,
    error: BoxError,
) -> Option<Result<Frame<Bytes>, BoxError>> {
    if error.is::<Lagged>() {
        finish(state, close, CloseReason::Lagged);
        return None;
    }
    tracing::debug!(%error, "sse stream failed");
    finish(state, close, CloseReason::Error);
    let make_event = config.inner().error_event.as_ref()?;
    match make_event(&error).encode() {
        Ok(event) => Some(Ok(Frame::data(event.into_bytes()))),
        Err(error) => {
            tracing::warn!(%error, "sse error event not sent");
            None
        }
    }
}

fn shut_down<S>(
    state: Pin<&mut State<S>>,
    close: &mut CloseGuard,
    config: &SseConfig,
) -> Option<Result<Frame<Bytes>, BoxError>> {
    finish(state, close, CloseReason::Shutdown);
    let farewell = config.inner().farewell.as_ref()?.encode()?;
    Some(Ok(Frame::data(farewell.into_bytes())))
}

/// Reports the end of a stream to the close hook exactly once; a body dropped
/// before it ended reports [`CloseReason::ClientGone`].
struct CloseGuard {
    hook: Option<std::sync::Arc<dyn Fn(CloseReason) + Send + Sync>>,
    // Until the first poll, the policy an outer layer may provide.
    slot: Option<ConfigSlot>,
    reported: bool,
}

impl CloseGuard {
    fn new(config: &SseConfig) -> Self {
        Self {
            hook: config.inner().on_close.clone(),
            slot: None,
            reported: false,
        }
    }

    fn disarmed() -> Self {
        Self {
            hook: None,
            slot: None,
            reported: true,
        }
    }

    /// Settles the policy an outer layer provided, if it did: takes its close
    /// hook and returns it for the body. Called at the first poll, and at the
    /// report of a body that was never polled.
    fn resolve_slot(&mut self) -> Option<SseConfig> {
        let config = self.slot.take()?.get()?.clone();
        self.hook = config.inner().on_close.clone();
        Some(config)
    }

    fn report(&mut self, reason: CloseReason) {
        if std::mem::replace(&mut self.reported, true) {
            return;
        }
        self.resolve_slot();
        tracing::debug!(%reason, "sse stream closed");
        if let Some(hook) = &self.hook {
            hook(reason);
        }
    }
}

impl Drop for CloseGuard {
    fn drop(&mut self) {
        self.report(CloseReason::ClientGone);
    }
}

impl<S: fmt::Debug> fmt::Debug for SseBody<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stream = match &self.state {
            State::Streaming { stream } => Some(stream),
            State::Done => None,
        };
        f.debug_struct("SseBody")
            .field("stream", &stream)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EncodedEvent, Event};

    const LIMIT: usize = 32 * 1024;

    /// An encoded event of exactly `len` bytes (at least 8).
    fn encoded(len: usize) -> EncodedEvent {
        Event::new().data("x".repeat(len - 8)).encode().unwrap()
    }

    #[test]
    fn lone_encoded_event_is_not_copied() {
        let one = encoded(10);
        let mut batch = Batch::new(None, LIMIT, 0);
        assert!(batch.push(one.clone()).unwrap().is_none());
        let frame = batch.finish().unwrap();
        assert_eq!(frame.as_ptr(), one.as_bytes().as_ptr());
    }

    #[test]
    fn events_are_encoded_into_one_buffer() {
        let mut batch = Batch::new(None, LIMIT, 0);
        assert!(batch.push(encoded(10)).unwrap().is_none());
        assert!(batch.push(Event::new().data("b")).unwrap().is_none());
        assert_eq!(batch.finish().unwrap(), "data: xx\n\ndata: b\n\n");
    }

    #[test]
    fn batch_stops_at_byte_bound() {
        let mut batch = Batch::new(None, LIMIT, 0);
        assert!(batch.push(encoded(LIMIT - 10)).unwrap().is_none());
        let overflow = batch.push(encoded(20)).unwrap();
        assert_eq!(overflow.map(|b| b.len()), Some(20));
        assert_eq!(batch.finish().unwrap().len(), LIMIT - 10);
    }

    #[test]
    fn zero_limit_sends_one_event_per_frame() {
        let mut batch = Batch::new(None, 0, 0);
        assert!(batch.wants_more());
        assert!(batch.push(Event::new().data("a")).unwrap().is_none());
        assert!(!batch.wants_more());
        let overflow = batch.push(Event::new().data("b")).unwrap();
        assert_eq!(overflow.as_deref(), Some(&b"data: b\n\n"[..]));
        assert_eq!(batch.finish().unwrap(), "data: a\n\n");
    }

    #[test]
    fn invalid_event_adds_nothing() {
        let mut batch = Batch::new(None, LIMIT, 0);
        assert!(batch.push(Event::new().data("a")).unwrap().is_none());
        assert!(batch.push(Event::new().data("b").id("\n")).is_err());
        assert_eq!(batch.finish().unwrap(), "data: a\n\n");
    }

    #[test]
    fn batch_stops_at_event_bound() {
        let mut batch = Batch::new(None, LIMIT, 0);
        while batch.wants_more() {
            assert!(batch.push(Event::new()).unwrap().is_none());
        }
        assert_eq!(batch.finish().unwrap().len(), MAX_FRAME_EVENTS);
    }
}
