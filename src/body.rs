//! `SseBody`: the streaming `text/event-stream` response body.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::config::{CloseReason, ConfigSlot, SseConfig};
use crate::connection::ConnectionStatus;
use crate::error::{BoxError, Lagged};
use crate::event::{IntoEncodedEvent, Split};
use crate::keep_alive::KeepAlive;
use crate::shutdown::Shutdown;
use crate::shutdown::Watcher;

/// At most this many ready events are joined into one frame, whatever their
/// size, so that one poll does a bounded amount of work.
pub(crate) const MAX_FRAME_EVENTS: usize = 256;

/// Data of at least this many bytes (one line, held as shared bytes or
/// moved in) is sent as a piece of its own, not copied into the frame.
pub(crate) const MIN_PIECE: usize = 8 * 1024;

/// While this much of a body's own frame buffers (or `max_frame_bytes`, if
/// larger) waits unwritten in the server, each frame carries one event: small
/// frames are still gathered up to it.
const MIN_BACKLOG: usize = 16 * 1024;

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
    /// The keep-alive timer is held inline, so the body is `!Unpin`, as most
    /// bodies are; servers pin the bodies they poll. To call
    /// `http_body_util::BodyExt` methods such as `frame()` on it directly, pin
    /// it first (`Box::pin(body)` or `std::pin::pin!(body)`).
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
        // `None` once the body has ended: the stream is dropped at once.
        #[pin]
        stream: Option<S>,
        // Created at the first poll when keep-alive is on.
        #[pin]
        keep_alive: Option<Sleep>,
        // When the last frame was written; `None` until the first poll. The
        // keep-alive timer is re-armed from it only when it fires.
        last_write: Option<Instant>,
        // The waker the keep-alive timer last registered: while the timer has
        // not fired and the task's waker is the same, polling it again would
        // only register the same waker again.
        keep_alive_waker: Option<Waker>,
        // What most bodies never need, out of line so that an idle
        // connection carries no room for it.
        rare: Option<Box<Rare>>,
        config: SseConfig,
        // The size of the previous frame: the next frame buffer's first guess.
        last_frame_len: u32,
        // The bytes of this body's own frame buffers that the server holds
        // and has not written (and dropped) yet; made with the first one.
        unwritten: Option<Arc<AtomicUsize>>,
        // The close hook has been told why the body ended (or an empty body
        // has nothing to tell).
        reported: bool,
    }

    impl<S> PinnedDrop for SseBody<S> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // A body dropped before it ended: the client went away.
            report(this.config, this.rare, this.reported, CloseReason::ClientGone);
        }
    }
}

/// The parts of a body's state that most bodies do without.
#[derive(Default)]
struct Rare {
    // Until the first poll, what an outer layer may provide.
    slot: Option<ConfigSlot>,
    // The guarded connection the body is served on, to tell a client gone
    // from a connection closed for stalling.
    connection: Option<ConnectionStatus>,
    max_age: Option<Pin<Box<Sleep>>>,
    shutdown: Option<Watcher>,
    // An event that did not fit into the previous frame.
    carried: Option<Bytes>,
    // The rest of an event split around a large piece: sent before anything
    // else, so that nothing can come between its parts.
    pieces: VecDeque<Bytes>,
    // What the stream did after the events of the previous frame.
    deferred: Option<Deferred>,
    // The span of the request the stream answers, when traced.
    span: Option<tracing::Span>,
}

impl Rare {
    fn is_empty(&self) -> bool {
        self.slot.is_none()
            && self.connection.is_none()
            && self.max_age.is_none()
            && self.shutdown.is_none()
            && self.carried.is_none()
            && self.pieces.is_empty()
            && self.deferred.is_none()
            && self.span.is_none()
    }
}

enum Deferred {
    End,
    Error(BoxError),
}

impl<S> SseBody<S> {
    /// A body over `stream` with the default [`SseConfig`].
    pub fn new(stream: S) -> Self {
        Self::with_config(stream, SseConfig::default())
    }

    /// A body over `stream` with the given policy.
    pub fn with_config(stream: S, config: SseConfig) -> Self {
        Self {
            stream: Some(stream),
            keep_alive: None,
            last_write: None,
            keep_alive_waker: None,
            rare: None,
            config,
            last_frame_len: 0,
            unwritten: None,
            reported: false,
        }
    }

    /// A body that reads `slot` at the first poll: its policy is `config`,
    /// else the one an outer [`SseConfigLayer`](crate::SseConfigLayer) put
    /// in the slot, else the default.
    #[cfg_attr(not(any(feature = "axum", feature = "warp")), allow(dead_code))]
    pub(crate) fn with_config_slot(stream: S, config: Option<SseConfig>, slot: ConfigSlot) -> Self {
        let mut body = Self::with_config(stream, config.unwrap_or_default());
        body.rare = Some(Box::new(Rare {
            slot: Some(slot),
            ..Rare::default()
        }));
        body
    }

    /// Tells the body which guarded connection it is served on.
    pub(crate) fn on_connection(mut self, connection: Option<ConnectionStatus>) -> Self {
        if connection.is_some() {
            rare_mut(&mut self.rare).connection = connection;
        }
        self
    }

    /// Logs in the span of the request the body answers.
    pub(crate) fn in_span(mut self, span: Option<tracing::Span>) -> Self {
        if span.is_some() {
            rare_mut(&mut self.rare).span = span;
        }
        self
    }

    /// A body that ends at once, for responses that carry no stream.
    pub(crate) fn empty() -> Self {
        Self {
            stream: None,
            keep_alive: None,
            last_write: None,
            keep_alive_waker: None,
            rare: None,
            config: SseConfig::default(),
            last_frame_len: 0,
            unwritten: None,
            reported: true,
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
        let Some(mut stream) = this.stream.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        if this.last_write.is_none() {
            let refused = start(
                this.config,
                this.rare,
                this.keep_alive.as_mut(),
                this.last_write,
            );
            if refused {
                // Answered `406` by an outer layer: nothing to send or report.
                this.stream.set(None);
                *this.reported = true;
                return Poll::Ready(None);
            }
        }
        let config = &*this.config;
        if let Some(rare) = this.rare.as_deref_mut() {
            if let Some(piece) = rare.pieces.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(piece))));
            }
            match rare.deferred.take() {
                Some(Deferred::End) => {
                    end(
                        this.stream,
                        config,
                        this.rare,
                        this.reported,
                        CloseReason::StreamEnded,
                    );
                    return Poll::Ready(None);
                }
                Some(Deferred::Error(error)) => {
                    return Poll::Ready(fail(this.stream, config, this.rare, this.reported, error));
                }
                None => {}
            }
            if rare.shutdown.as_ref().is_some_and(Watcher::is_triggered) {
                return Poll::Ready(shut_down(this.stream, config, this.rare, this.reported));
            }
            if let Some(max_age) = &rare.max_age {
                if Instant::now() >= max_age.deadline() {
                    end(
                        this.stream,
                        config,
                        this.rare,
                        this.reported,
                        CloseReason::MaxAge,
                    );
                    return Poll::Ready(None);
                }
            }
        }

        // The server holds at most one frame's worth of this body's own
        // frame buffers that it has not written (at least `MIN_BACKLOG`),
        // plus single events: hyper asks for up to 16 frames (about 400 KiB)
        // before it writes, and while that much is unwritten (the client
        // reads slowly, or hyper is gathering frames for one write), each
        // frame carries one event. Waiting for the write instead would never
        // end for a caller that keeps the frames (`collect` does), and giving
        // way once to let hyper write cost fast connections more than these
        // single events do (measured with `examples/loadtest.rs`).
        let unwritten = this
            .unwritten
            .as_ref()
            .map_or(0, |unwritten| unwritten.load(Ordering::Relaxed));
        let max_frame_bytes = config.inner().max_frame_bytes;
        let backlog = max_frame_bytes.max(MIN_BACKLOG);
        let limit = backlog.saturating_sub(unwritten).min(max_frame_bytes);

        // One unit of the task's cooperative budget per frame: a connection
        // whose stream is always ready yields to the others on its worker
        // after a bounded number of frames (and hyper polls a body again
        // after every frame it queues).
        let Poll::Ready(coop) = tokio::task::coop::poll_proceed(cx) else {
            return Poll::Pending;
        };
        let carried = this
            .rare
            .as_deref_mut()
            .and_then(|rare| rare.carried.take());
        let mut batch = Batch::new(carried, limit, *this.last_frame_len as usize);
        while batch.wants_more() {
            match stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => match batch.push(item) {
                    Ok(Pushed::Joined) => {}
                    Ok(Pushed::Overflow(overflow)) => {
                        rare_mut(this.rare).carried = Some(overflow);
                        break;
                    }
                    Ok(Pushed::Split(split)) => {
                        let pieces = &mut rare_mut(this.rare).pieces;
                        pieces.push_back(split.piece);
                        if !split.tail.is_empty() {
                            pieces.push_back(Bytes::from_static(split.tail));
                        }
                        break;
                    }
                    Err(error) => {
                        if batch.is_empty() {
                            return Poll::Ready(fail(
                                this.stream,
                                config,
                                this.rare,
                                this.reported,
                                error,
                            ));
                        }
                        rare_mut(this.rare).deferred = Some(Deferred::Error(error));
                        break;
                    }
                },
                Poll::Ready(None) => {
                    if batch.is_empty() {
                        end(
                            this.stream,
                            config,
                            this.rare,
                            this.reported,
                            CloseReason::StreamEnded,
                        );
                        return Poll::Ready(None);
                    }
                    rare_mut(this.rare).deferred = Some(Deferred::End);
                    break;
                }
                Poll::Pending => break,
            }
        }

        if let Some(frame) = batch.finish(this.unwritten) {
            coop.made_progress();
            *this.last_frame_len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
            if this.keep_alive.is_some() {
                *this.last_write = Some(Instant::now());
            }
            return Poll::Ready(Some(Ok(Frame::data(frame))));
        }

        // The stream is idle: register for every way this body can go on.
        if let Some(rare) = this.rare.as_deref_mut() {
            if let Some(watcher) = rare.shutdown.as_mut() {
                if watcher.poll_triggered(cx).is_ready() {
                    return Poll::Ready(shut_down(this.stream, config, this.rare, this.reported));
                }
            }
            if let Some(max_age) = rare.max_age.as_mut() {
                if max_age.as_mut().poll(cx).is_ready() {
                    end(
                        this.stream,
                        config,
                        this.rare,
                        this.reported,
                        CloseReason::MaxAge,
                    );
                    return Poll::Ready(None);
                }
            }
        }
        if let (Some(keep_alive), Some(mut sleep)) = (
            config.inner().keep_alive.as_ref(),
            this.keep_alive.as_mut().as_pin_mut(),
        ) {
            loop {
                if !sleep.is_elapsed() {
                    let registered = this.keep_alive_waker.as_ref();
                    if registered.is_some_and(|waker| waker.will_wake(cx.waker())) {
                        return Poll::Pending;
                    }
                    if sleep.as_mut().poll(cx).is_pending() {
                        *this.keep_alive_waker = Some(cx.waker().clone());
                        return Poll::Pending;
                    }
                }
                // Re-arming forgets the registration: the next round polls.
                *this.keep_alive_waker = None;
                let now = Instant::now();
                let last_write = this.last_write.unwrap_or(now);
                let due = last_write + keep_alive.get_interval();
                if now < due {
                    // Events were sent since the timer was armed.
                    sleep.as_mut().reset(due);
                    continue;
                }
                *this.last_write = Some(now);
                sleep.as_mut().reset(now + keep_alive.get_interval());
                return Poll::Ready(Some(Ok(Frame::data(keep_alive.ping().clone()))));
            }
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.stream.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// The first poll: settles the policy (an outer layer's, if it provided one)
/// and starts the timers it asks for. Returns whether an outer layer refused
/// the response.
fn start(
    config: &mut SseConfig,
    rare: &mut Option<Box<Rare>>,
    mut keep_alive: Pin<&mut Option<Sleep>>,
    last_write: &mut Option<Instant>,
) -> bool {
    if let Some(slot) = take_slot(rare) {
        if slot.is_refused() {
            return true;
        }
        if let Some(provided) = slot.get() {
            *config = provided.clone();
        }
        if let Some(connection) = slot.connection() {
            rare_mut(rare).connection = Some(connection.clone());
        }
        if let Some(span) = slot.span() {
            rare_mut(rare).span = Some(span.clone());
        }
    }
    let now = Instant::now();
    *last_write = Some(now);
    let inner = config.inner();
    if let Some(interval) = inner.keep_alive.as_ref().map(KeepAlive::get_interval) {
        keep_alive.set(Some(tokio::time::sleep_until(now + interval)));
    }
    let max_age = config.pick_max_age();
    if max_age.is_some() || inner.shutdown.is_some() {
        let rare = rare_mut(rare);
        rare.max_age = max_age.map(|age| Box::pin(tokio::time::sleep_until(now + age)));
        rare.shutdown = inner.shutdown.as_ref().map(Shutdown::watch);
    }
    if inner.open_with_comment {
        rare_mut(rare).carried = Some(Bytes::from_static(b":\n\n"));
    }
    if rare.as_deref().is_some_and(Rare::is_empty) {
        *rare = None;
    }
    false
}

/// Takes the slot through which an outer layer provides what it knows.
fn take_slot(rare: &mut Option<Box<Rare>>) -> Option<ConfigSlot> {
    rare.as_deref_mut()?.slot.take()
}

fn rare_mut(rare: &mut Option<Box<Rare>>) -> &mut Rare {
    rare.get_or_insert_with(Box::default)
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
    /// are handed back for the next frame; when it holds a large piece, what
    /// comes before the piece ends this frame and the piece is handed back;
    /// an invalid item adds nothing.
    #[inline]
    fn push<I: IntoEncodedEvent>(&mut self, item: I) -> Result<Pushed, BoxError> {
        match &mut self.contents {
            Contents::Joined(buf) => append(buf, &mut self.events, self.limit, item),
            Contents::Empty if item.is_encoded() => {
                self.contents = Contents::Lone(item.into_encoded_event()?.into_bytes());
                self.events = 1;
                Ok(Pushed::Joined)
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
                    // A frame bounded low (its connection has a frame
                    // unwritten) must not reserve room for a large one; a
                    // frame of one event gets what its encoding reserves.
                    .min(match self.limit {
                        0 => 0,
                        limit => limit.saturating_add(512),
                    })
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

    /// The frame. A buffer of joined events is counted in `unwritten` until
    /// the server drops it; a lone event's bytes are shared (a hub's, say),
    /// and a single event made past the bound is one of at most 16 frames
    /// hyper queues: neither is counted.
    #[inline]
    fn finish(self, unwritten: &mut Option<Arc<AtomicUsize>>) -> Option<Bytes> {
        match self.contents {
            Contents::Empty => None,
            Contents::Lone(bytes) => Some(bytes),
            Contents::Joined(buf) if self.limit == 0 => Some(buf.freeze()),
            Contents::Joined(buf) => {
                let unwritten = unwritten.get_or_insert_with(Arc::default);
                Some(Bytes::from_owner(Unwritten::new(buf, unwritten)))
            }
        }
    }
}

/// A frame buffer, counted in its body's unwritten bytes until the server
/// drops it (after writing it, or with the connection).
struct Unwritten {
    buf: BytesMut,
    count: Arc<AtomicUsize>,
}

impl Unwritten {
    fn new(buf: BytesMut, count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(buf.capacity(), Ordering::Relaxed);
        Self {
            buf,
            count: Arc::clone(count),
        }
    }
}

impl AsRef<[u8]> for Unwritten {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Unwritten {
    fn drop(&mut self) {
        self.count.fetch_sub(self.buf.capacity(), Ordering::Relaxed);
    }
}

/// What adding an item to a batch did.
enum Pushed {
    /// It joined the frame.
    Joined,
    /// It would take the frame past its bound: its bytes, for the next frame.
    Overflow(Bytes),
    /// Its start ended the frame; its large piece (and what follows) go next.
    Split(Split),
}

#[cfg(test)]
impl Pushed {
    fn is_joined(&self) -> bool {
        matches!(self, Pushed::Joined)
    }

    fn into_overflow(self) -> Option<Bytes> {
        match self {
            Pushed::Overflow(bytes) => Some(bytes),
            _ => None,
        }
    }
}

/// Encodes `item` at the end of `buf`, the batch's joined events, counting it
/// in `events`; hands back its bytes when it takes the frame past `limit`,
/// and its large piece when it has one.
// Always inlined: it is the per-event step, and an out-of-line call would
// move each event once more.
#[inline(always)]
fn append<I: IntoEncodedEvent>(
    buf: &mut BytesMut,
    events: &mut usize,
    limit: usize,
    item: I,
) -> Result<Pushed, BoxError> {
    let before = buf.len();
    let split = match item.encode_split(buf, MIN_PIECE) {
        Ok(split) => split,
        Err(error) => {
            buf.truncate(before);
            return Err(error);
        }
    };
    *events += 1;
    if let Some(split) = split {
        return Ok(Pushed::Split(split));
    }
    if *events > 1 && buf.len() > limit {
        *events -= 1;
        return Ok(Pushed::Overflow(buf.split_off(before).freeze()));
    }
    Ok(Pushed::Joined)
}

/// Ends the body: drops the stream now, releasing what it holds, and tells
/// the close hook why.
fn end<S>(
    mut stream: Pin<&mut Option<S>>,
    config: &SseConfig,
    rare: &mut Option<Box<Rare>>,
    reported: &mut bool,
    reason: CloseReason,
) {
    stream.set(None);
    report(config, rare, reported, reason);
}

/// Tells the close hook why the body ended, once. A body that ends before
/// its first poll takes the hook from an outer layer's policy, if any. A body
/// dropped because its guarded connection was closed for stalling reports
/// why the connection was closed.
fn report(
    config: &SseConfig,
    rare: &mut Option<Box<Rare>>,
    reported: &mut bool,
    mut reason: CloseReason,
) {
    if std::mem::replace(reported, true) {
        return;
    }
    let slot = take_slot(rare);
    if slot.as_ref().is_some_and(ConfigSlot::is_refused) {
        return;
    }
    if reason == CloseReason::ClientGone {
        let connection = rare
            .as_deref()
            .and_then(|rare| rare.connection.as_ref())
            .or_else(|| slot.as_ref().and_then(ConfigSlot::connection));
        if let Some(closed) = connection.and_then(ConnectionStatus::close_reason) {
            reason = closed;
        }
    }
    let provided = slot.as_ref().and_then(ConfigSlot::get);
    let span = rare.as_deref().and_then(|rare| rare.span.as_ref());
    crate::trace::stream_closed(span.or(slot.as_ref().and_then(ConfigSlot::span)), reason);
    if let Some(hook) = &provided.unwrap_or(config).inner().on_close {
        hook(reason);
    }
}

fn fail<S>(
    stream: Pin<&mut Option<S>>,
    config: &SseConfig,
    rare: &mut Option<Box<Rare>>,
    reported: &mut bool,
    error: BoxError,
) -> Option<Result<Frame<Bytes>, BoxError>> {
    if error.is::<Lagged>() {
        // What is still buffered for a client that fell behind is not worth
        // waiting for: on a guarded connection the body ends with the error,
        // so that the server drops the response at once (a client that
        // reconnects resumes from its last id either way).
        let guarded = rare
            .as_deref()
            .is_some_and(|rare| rare.connection.is_some());
        end(stream, config, rare, reported, CloseReason::Lagged);
        return guarded.then_some(Err(error));
    }
    crate::trace::stream_failed(rare.as_deref().and_then(|rare| rare.span.as_ref()), &error);
    end(stream, config, rare, reported, CloseReason::Error);
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
    stream: Pin<&mut Option<S>>,
    config: &SseConfig,
    rare: &mut Option<Box<Rare>>,
    reported: &mut bool,
) -> Option<Result<Frame<Bytes>, BoxError>> {
    end(stream, config, rare, reported, CloseReason::Shutdown);
    let farewell = config.inner().farewell.as_ref()?.encode()?;
    Some(Ok(Frame::data(farewell.into_bytes())))
}

impl<S: fmt::Debug> fmt::Debug for SseBody<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SseBody")
            .field("stream", &self.stream)
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
        assert!(batch.push(one.clone()).unwrap().is_joined());
        let frame = batch.finish(&mut None).unwrap();
        assert_eq!(frame.as_ptr(), one.as_bytes().as_ptr());
    }

    #[test]
    fn events_are_encoded_into_one_buffer() {
        let mut batch = Batch::new(None, LIMIT, 0);
        assert!(batch.push(encoded(10)).unwrap().is_joined());
        assert!(batch.push(Event::new().data("b")).unwrap().is_joined());
        assert_eq!(batch.finish(&mut None).unwrap(), "data: xx\n\ndata: b\n\n");
    }

    #[test]
    fn batch_stops_at_byte_bound() {
        let mut batch = Batch::new(None, LIMIT, 0);
        assert!(batch.push(encoded(LIMIT - 10)).unwrap().is_joined());
        let overflow = batch.push(encoded(20)).unwrap().into_overflow();
        assert_eq!(overflow.map(|b| b.len()), Some(20));
        assert_eq!(batch.finish(&mut None).unwrap().len(), LIMIT - 10);
    }

    #[test]
    fn zero_limit_sends_one_event_per_frame() {
        let mut batch = Batch::new(None, 0, 0);
        assert!(batch.wants_more());
        assert!(batch.push(Event::new().data("a")).unwrap().is_joined());
        assert!(!batch.wants_more());
        let overflow = batch.push(Event::new().data("b")).unwrap().into_overflow();
        assert_eq!(overflow.as_deref(), Some(&b"data: b\n\n"[..]));
        assert_eq!(batch.finish(&mut None).unwrap(), "data: a\n\n");
    }

    #[test]
    fn invalid_event_adds_nothing() {
        let mut batch = Batch::new(None, LIMIT, 0);
        assert!(batch.push(Event::new().data("a")).unwrap().is_joined());
        assert!(batch.push(Event::new().data("b").id("\n")).is_err());
        assert_eq!(batch.finish(&mut None).unwrap(), "data: a\n\n");
    }

    #[test]
    fn large_data_is_handed_back_as_a_piece_of_its_own() {
        let data = bytes::Bytes::from(vec![b'x'; MIN_PIECE]);
        let mut batch = Batch::new(None, LIMIT, 0);
        assert!(batch.push(Event::new().data("a")).unwrap().is_joined());
        let event = Event::new()
            .id(7)
            .data(crate::Data::try_from(data.clone()).unwrap());
        let Pushed::Split(split) = batch.push(event).unwrap() else {
            panic!("not split");
        };
        assert_eq!(split.piece.as_ptr(), data.as_ptr(), "not copied");
        assert_eq!(split.tail, b"\n\n");
        assert_eq!(batch.finish(&mut None).unwrap(), "data: a\n\nid: 7\ndata: ");
    }

    #[test]
    fn large_data_with_a_line_break_is_copied() {
        let mut text = "x".repeat(MIN_PIECE);
        text.push('\n');
        let mut batch = Batch::new(None, LIMIT, 0);
        assert!(batch.push(Event::new().data(text)).unwrap().is_joined());
        assert_eq!(batch.finish(&mut None).unwrap().len(), MIN_PIECE + 15);
    }

    #[test]
    fn batch_stops_at_event_bound() {
        let mut batch = Batch::new(None, LIMIT, 0);
        while batch.wants_more() {
            assert!(batch.push(Event::new()).unwrap().is_joined());
        }
        assert_eq!(batch.finish(&mut None).unwrap().len(), MAX_FRAME_EVENTS);
    }
}
