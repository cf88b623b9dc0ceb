//! The client side: turning a `text/event-stream` body back into events.
//!
//! [`Decoder`] is an incremental parser that follows the WHATWG HTML rules for
//! "parsing an event stream" and "interpreting an event stream" to the letter, so
//! that it fires exactly the [`MessageEvent`]s a browser's `EventSource` would
//! fire for the same bytes, however those bytes are split into chunks. It is
//! bounded: a line longer than [`Decoder::max_line_len`] or an event larger than
//! [`Decoder::max_event_len`] is a [`DecodeError`], never unbounded buffering.
//!
//! [`DecodeStream`] drives a [`Decoder`] over any [`http_body::Body`], which is
//! how a client reads the response of an SSE endpoint, or how a test checks what
//! a server wrote.
//!
//! Events come as [`MessageEvent`]s, of `String`s ([`Decoder::next_event`],
//! [`DecodeStream::new`]), or as [`SharedEvent`]s
//! ([`Decoder::next_shared_event`], [`DecodeStream::shared`]): slices of the
//! buffer each chunk's lines were decoded into, which cost no allocation or
//! copy per event. The shared form is the fastest way to read a stream.
//!
//! # Example
//!
//! ```
//! use tower_sse::decode::Decoder;
//!
//! let mut decoder = Decoder::new();
//! decoder.push(b"event: greeting\nid: 7\ndata: hello\n");
//! // The block is not complete until its empty line arrives.
//! assert_eq!(decoder.next_event()?, None);
//!
//! decoder.push(b"\n");
//! let event = decoder.next_event()?.expect("the empty line dispatches the event");
//! assert_eq!(event.event_type, "greeting");
//! assert_eq!(event.data, "hello");
//! assert_eq!(event.last_event_id, "7");
//! assert_eq!(decoder.last_event_id(), "7");
//! # Ok::<(), tower_sse::decode::DecodeError>(())
//! ```

use std::borrow::Cow;
use std::collections::VecDeque;
use std::error::Error;
use std::fmt;
use std::marker::PhantomData;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Buf;
use futures_core::{FusedStream, Stream};
use http_body::Body;
use memchr::{memchr, memchr2, memrchr2};
use pin_project_lite::pin_project;

use crate::BoxError;

const BOM: &[u8] = b"\xEF\xBB\xBF";
const DEFAULT_MAX_LINE_LEN: usize = 64 * 1024;
const DEFAULT_MAX_EVENT_LEN: usize = 1024 * 1024;

/// An incremental, spec-exact parser of `text/event-stream` bytes.
///
/// Feed it bytes with [`push`](Decoder::push) as they arrive, take events with
/// [`next_event`](Decoder::next_event) until it returns `Ok(None)`, and call
/// [`finish`](Decoder::finish) when the stream ends. Chunk boundaries never change
/// the result: a CR at the end of one chunk and an LF at the start of the next
/// are one line end, and a byte-order mark split across chunks is still stripped.
///
/// Memory is bounded by the bytes pushed but not yet parsed, one line of at most
/// [`max_line_len`](Decoder::max_line_len) bytes, and one pending event of at
/// most [`max_event_len`](Decoder::max_event_len) bytes. The lines a chunk
/// completes are decoded from UTF-8 when it is pushed, into one buffer that
/// [`SharedEvent`]s slice: such a buffer lives as long as the last event that
/// slices it.
///
/// # Example
///
/// ```
/// use tower_sse::decode::Decoder;
///
/// let mut decoder = Decoder::new().max_line_len(1024);
/// decoder.push(b"retry: 2500\r\ndata: a\r");
/// decoder.push(b"\ndata: b\r\n\r\n");
///
/// let event = decoder.next_event()?.expect("one event");
/// assert_eq!(event.event_type, "message");
/// assert_eq!(event.data, "a\nb");
/// assert_eq!(decoder.next_event()?, None);
/// assert_eq!(
///     decoder.reconnection_time(),
///     Some(std::time::Duration::from_millis(2500)),
/// );
/// # Ok::<(), tower_sse::decode::DecodeError>(())
/// ```
#[derive(Clone)]
pub struct Decoder {
    input: Input,
    fields: FieldState,
    max_line_len: usize,
    ended: bool,
    poisoned: Option<Exceeded>,
    // Comments are items (`next_item`), not dropped.
    comments: bool,
    /// The comment read last, for `next_item`.
    comment: String,
}

impl Decoder {
    /// Creates a decoder with the default limits: lines of 64 KiB and events of
    /// 1 MiB.
    pub fn new() -> Self {
        Self {
            input: Input::new(),
            fields: FieldState::new(),
            max_line_len: DEFAULT_MAX_LINE_LEN,
            ended: false,
            poisoned: None,
            comments: false,
            comment: String::new(),
        }
    }

    /// Keeps comments: [`next_item`](Decoder::next_item) then returns each
    /// comment line, in stream order with the events, as
    /// [`DecodedItem::Comment`]. A browser ignores comments, and so does
    /// this decoder by default; tests of a server use this to see its
    /// keep-alive pings. [`next_event`](Decoder::next_event) skips comments
    /// either way.
    ///
    /// ```
    /// use tower_sse::decode::{DecodedItem, Decoder};
    ///
    /// let mut decoder = Decoder::new().with_comments();
    /// decoder.push(b":\n\n: hello\ndata: x\n\n");
    /// assert_eq!(decoder.next_item()?, Some(DecodedItem::Comment(String::new())));
    /// assert_eq!(decoder.next_item()?, Some(DecodedItem::Comment("hello".to_owned())));
    /// assert!(matches!(decoder.next_item()?, Some(DecodedItem::Event(event)) if event.data == "x"));
    /// assert_eq!(decoder.next_item()?, None);
    /// # Ok::<(), tower_sse::decode::DecodeError>(())
    /// ```
    #[must_use]
    pub fn with_comments(mut self) -> Self {
        self.comments = true;
        self
    }

    /// Sets the longest line accepted, in bytes, not counting its line end
    /// (default 64 KiB).
    ///
    /// A longer line is an error as soon as more than that many bytes of it are
    /// buffered, even before its line end arrives.
    #[must_use]
    pub fn max_line_len(mut self, limit: usize) -> Self {
        self.max_line_len = limit;
        self
    }

    /// Sets the largest event accepted, in bytes (default 1 MiB).
    ///
    /// What counts is the pending event's data buffer (each `data` value plus the
    /// LF appended after it, as decoded UTF-8) plus its event type.
    #[must_use]
    pub fn max_event_len(mut self, limit: usize) -> Self {
        self.fields.max_event_len = limit;
        self
    }

    /// Appends bytes received from the stream.
    ///
    /// The lines they complete are decoded from UTF-8 at once, but nothing is
    /// interpreted until [`next_event`](Decoder::next_event) is called.
    /// Bytes pushed after [`finish`](Decoder::finish) begin a new stream (a
    /// reconnection): whatever the ended stream still held is discarded, a
    /// byte-order mark is stripped again at the new start, and the last event id
    /// and reconnection time carry over. Bytes pushed into a decoder that has
    /// returned an error are dropped.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.poisoned.is_some() {
            return;
        }
        if self.ended {
            self.start_next_stream();
        }
        self.input.push(chunk, &mut self.fields.spare_region);
    }

    /// Parses buffered lines until an event is dispatched or no complete line is
    /// left.
    ///
    /// Returns `Ok(None)` when more bytes are needed. Blocks that dispatch
    /// nothing (only comments, `id`, `event` or `retry` fields) still take
    /// effect on [`last_event_id`](Decoder::last_event_id) and
    /// [`reconnection_time`](Decoder::reconnection_time).
    ///
    /// # Errors
    ///
    /// Fails when a line exceeds [`max_line_len`](Decoder::max_line_len) (this
    /// includes a still unterminated line already buffered) or the pending event
    /// exceeds [`max_event_len`](Decoder::max_event_len). The decoder is then
    /// poisoned: its buffers are released and every later call returns an error
    /// of the same kind.
    ///
    /// [`next_shared_event`](Decoder::next_shared_event) returns the same
    /// events without copying their strings.
    pub fn next_event(&mut self) -> Result<Option<MessageEvent>, DecodeError> {
        Ok(self.next_shared_event()?.map(MessageEvent::from))
    }

    /// Like [`next_event`](Decoder::next_event), but the event is a
    /// [`SharedEvent`], whose strings are slices of the buffer its bytes were
    /// decoded into, made without allocating or copying. The fastest way to
    /// read a stream.
    ///
    /// ```
    /// use tower_sse::decode::Decoder;
    ///
    /// let mut decoder = Decoder::new();
    /// decoder.push(b"id: 7\nevent: greeting\ndata: hello\n\n");
    /// let event = decoder.next_shared_event()?.expect("an event");
    /// assert_eq!(
    ///     (event.event_type(), event.data(), event.last_event_id()),
    ///     ("greeting", "hello", "7"),
    /// );
    /// # Ok::<(), tower_sse::decode::DecodeError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`next_event`](Decoder::next_event).
    // Inlined into the caller, so that the event is made where it is used:
    // returned through memory, it would be moved there with loads wider than
    // the stores that wrote it, which stalls. The parsing is not inlined.
    #[inline(always)]
    pub fn next_shared_event(&mut self) -> Result<Option<SharedEvent>, DecodeError> {
        loop {
            match self.step() {
                Ok(Step::Event) => return Ok(Some(self.fields.take_event())),
                Ok(Step::Comment) => {}
                Ok(Step::More) => return Ok(None),
                Err(exceeded) => return Err(exceeded.into()),
            }
        }
    }

    /// Like [`next_event`](Decoder::next_event), but also returns comments
    /// when the decoder was made [`with_comments`](Decoder::with_comments).
    ///
    /// # Errors
    ///
    /// As [`next_event`](Decoder::next_event).
    pub fn next_item(&mut self) -> Result<Option<DecodedItem>, DecodeError> {
        match self.step()? {
            Step::Event => Ok(Some(DecodedItem::Event(self.fields.take_event().into()))),
            Step::Comment => Ok(Some(DecodedItem::Comment(mem::take(&mut self.comment)))),
            Step::More => Ok(None),
        }
    }

    /// Parses until an event is ready for [`FieldState::take_event`], a
    /// comment is in `comment`, or more bytes are needed. Its result is two
    /// words, returned in registers.
    #[inline(never)]
    fn step(&mut self) -> Result<Step, Exceeded> {
        if let Some(exceeded) = self.poisoned {
            return Err(exceeded);
        }
        match self.parse() {
            Ok(step) => Ok(step),
            Err(exceeded) => {
                self.poisoned = Some(exceeded);
                self.input = Input::new();
                self.fields.discard_block();
                Err(exceeded)
            }
        }
    }

    /// Tells the decoder that the stream has ended.
    ///
    /// Events whose lines are complete in the buffer are still returned by
    /// [`next_event`](Decoder::next_event); after them, the unterminated final
    /// line and a block that lacks its closing empty line are discarded, as a
    /// browser discards them, and `next_event` returns `Ok(None)`.
    /// [`last_event_id`](Decoder::last_event_id) and
    /// [`reconnection_time`](Decoder::reconnection_time) are kept for the next
    /// stream. To drop the events not yet taken as well (a reader that
    /// reconnects at once), call [`reset`](Decoder::reset).
    pub fn finish(&mut self) {
        self.ended = true;
    }

    /// Prepares the decoder for a new connection (a reconnection): discards
    /// everything the previous connection left, whether taken or not
    /// (buffered bytes, complete events not yet returned by
    /// [`next_event`](Decoder::next_event), the pending block, an error), so
    /// that `next_event` returns `Ok(None)` until bytes of the new stream are
    /// pushed, and a byte-order mark is stripped again at the new start.
    ///
    /// As the WHATWG spec says for a reconnecting `EventSource`, the
    /// [`last_event_id`](Decoder::last_event_id) and the
    /// [`reconnection_time`](Decoder::reconnection_time) carry over, and so do
    /// the limits.
    ///
    /// ```
    /// use tower_sse::decode::Decoder;
    ///
    /// let mut decoder = Decoder::new();
    /// decoder.push(b"id: 7\ndata: seen\n\ndata: not taken\n\n");
    /// assert_eq!(decoder.next_event()?.map(|event| event.data).as_deref(), Some("seen"));
    ///
    /// // The connection dropped: reconnect with `Last-Event-ID: 7`.
    /// decoder.reset();
    /// assert_eq!(decoder.next_event()?, None);
    /// assert_eq!(decoder.last_event_id(), "7");
    /// # Ok::<(), tower_sse::decode::DecodeError>(())
    /// ```
    pub fn reset(&mut self) {
        self.poisoned = None;
        self.start_next_stream();
    }

    /// Starts with `id` as the last event id, as if a stream before had set
    /// it (a client resuming from a saved id). `id` holds no CR, LF or NUL.
    #[cfg(feature = "client")]
    pub(crate) fn with_last_event_id(mut self, id: &str) -> Self {
        self.fields.set_last_event_id(id);
        self
    }

    /// Returns the last event id: the value of the last `id` field of a block
    /// that was closed by an empty line, which a client sends back as
    /// `Last-Event-ID` when it reconnects (unless it is empty).
    pub fn last_event_id(&self) -> &str {
        self.fields.last_event_id()
    }

    /// Returns the reconnection time set by the last valid `retry` field, if any.
    pub fn reconnection_time(&self) -> Option<Duration> {
        self.fields.reconnection_time
    }

    #[inline(always)]
    fn parse(&mut self) -> Result<Step, Exceeded> {
        loop {
            let Some(region) = &self.input.current else {
                // What is left is the start of a line.
                if !self.input.at_stream_start && self.input.pending.len() > self.max_line_len {
                    return Err(Exceeded::Line(self.max_line_len));
                }
                if self.ended {
                    self.start_next_stream();
                }
                return Ok(Step::More);
            };
            self.fields.read_from(region);
            let bytes = region.as_bytes();
            let mut pos = self.input.pos;
            while let Some(&first) = bytes.get(pos) {
                let rest = bytes.get(pos..).unwrap_or_default();
                if first == b'\n' || first == b'\r' {
                    pos += line_end_len(rest, 0);
                    if self.fields.end_block() {
                        self.input.pos = pos;
                        return Ok(Step::Event);
                    }
                    continue;
                }
                if !self.input.one_line {
                    // The usual fields, each on a path of its own. Their
                    // name is read before the line end is searched for,
                    // which then starts at the value: no CR or LF is in a
                    // name.
                    let known = match first {
                        // Data values are often long: a vector search at
                        // once.
                        b'd' if rest.starts_with(b"data:") => {
                            Some((Field::Data, value_and_len::<0>(rest, 5)))
                        }
                        b'i' if rest.starts_with(b"id:") => {
                            Some((Field::Id, value_and_len::<3>(rest, 3)))
                        }
                        b'e' if rest.starts_with(b"event:") => {
                            Some((Field::Event, value_and_len::<3>(rest, 6)))
                        }
                        _ => None,
                    };
                    if let Some((field, (value, len))) = known {
                        if len > self.max_line_len {
                            return Err(Exceeded::Line(self.max_line_len));
                        }
                        let span = Span {
                            start: pos + value,
                            end: pos + len,
                        };
                        match field {
                            Field::Data => self.fields.data(span)?,
                            Field::Id => {
                                let value = rest.get(value..len).unwrap_or_default();
                                self.fields.id(span, value);
                            }
                            // `Field::Event`, the only other one matched.
                            _ => self.fields.event_type(span)?,
                        }
                        pos += len + line_end_len(rest, len);
                        continue;
                    }
                }
                let len = if self.input.one_line {
                    let end = if rest.ends_with(b"\r\n") { 2 } else { 1 };
                    rest.len().saturating_sub(end)
                } else {
                    find_line_end::<3>(rest).unwrap_or(rest.len())
                };
                if len > self.max_line_len {
                    return Err(Exceeded::Line(self.max_line_len));
                }
                let line = rest.get(..len).unwrap_or_default();
                let start = pos;
                pos += len + line_end_len(rest, len);
                if first == b':' {
                    if self.comments {
                        self.input.pos = pos;
                        let comment = region.get(start + 1..start + len).unwrap_or_default();
                        let comment = comment.strip_prefix(' ').unwrap_or(comment);
                        self.comment.clear();
                        self.comment.push_str(comment);
                        return Ok(Step::Comment);
                    }
                    continue;
                }
                self.fields.field(line, start)?;
            }
            self.input.advance();
        }
    }

    fn start_next_stream(&mut self) {
        self.input = Input::new();
        self.fields.discard_block();
        self.ended = false;
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoder")
            .field("max_line_len", &self.max_line_len)
            .field("max_event_len", &self.fields.max_event_len)
            .field("buffered", &self.input.buffered())
            .field("last_event_id", &self.fields.last_event_id())
            .field("reconnection_time", &self.fields.reconnection_time)
            .field("ended", &self.ended)
            .field("poisoned", &self.poisoned.is_some())
            .field("comments", &self.comments)
            .finish_non_exhaustive()
    }
}

/// The stream's bytes on their way to lines: complete lines are decoded from
/// UTF-8 as soon as they are pushed, into shared buffers that
/// [`SharedEvent`]s slice; the start of a line still arriving waits as bytes.
///
/// Decoding only complete lines gives the result of decoding the whole
/// stream at once: CR and LF are ASCII, so no UTF-8 sequence, valid or not,
/// straddles a line end.
#[derive(Clone, Debug)]
struct Input {
    /// The decoded lines being read, from `pos`; every buffer ends with a
    /// line end.
    current: Option<Arc<String>>,
    pos: usize,
    /// `current` is one line that arrived in pieces, already searched for
    /// its end: its line end is its last byte (or two, for a CRLF).
    one_line: bool,
    /// Decoded lines to read after `current`, and whether each is one line.
    queue: VecDeque<(Arc<String>, bool)>,
    /// The bytes after the last line end pushed: the start of a line whose
    /// end has not arrived.
    pending: Vec<u8>,
    /// The length of the last line that arrived in pieces, if it was long.
    long_line: usize,
    /// No byte of the stream has been looked at yet: a BOM may still come.
    at_stream_start: bool,
    /// The last byte pushed was a CR: an LF arriving next completes that
    /// CRLF rather than ending an empty line.
    skip_lf: bool,
}

impl Input {
    fn new() -> Self {
        Self {
            current: None,
            pos: 0,
            one_line: false,
            queue: VecDeque::new(),
            pending: Vec::new(),
            long_line: 0,
            at_stream_start: true,
            skip_lf: false,
        }
    }

    fn buffered(&self) -> usize {
        let current = self
            .current
            .as_ref()
            .map_or(0, |current| current.len() - self.pos);
        let queued: usize = self.queue.iter().map(|(region, _)| region.len()).sum();
        current + queued + self.pending.len()
    }

    /// Moves on to the next decoded lines, if any.
    fn advance(&mut self) {
        let next = self.queue.pop_front();
        self.one_line = next.as_ref().is_some_and(|(_, one_line)| *one_line);
        self.current = next.map(|(lines, _)| lines);
        self.pos = 0;
    }

    /// Appends `chunk`; `spare` is a buffer of lines read before, to decode
    /// into if no event holds it any more.
    fn push(&mut self, mut chunk: &[u8], spare: &mut Option<Arc<String>>) {
        // Let the lines read go now rather than at the next read.
        if self
            .current
            .as_ref()
            .is_some_and(|current| self.pos >= current.len())
        {
            self.advance();
        }
        if self.skip_lf {
            let Some((&first, rest)) = chunk.split_first() else {
                return;
            };
            if first == b'\n' {
                chunk = rest;
            }
            self.skip_lf = false;
        }
        if self.at_stream_start {
            self.pending.extend_from_slice(chunk);
            if self.pending.len() < BOM.len() && BOM.starts_with(&self.pending) {
                return;
            }
            self.at_stream_start = false;
            let bytes = mem::take(&mut self.pending);
            self.absorb(bytes.strip_prefix(BOM).unwrap_or(&bytes), spare);
            return;
        }
        self.absorb(chunk, spare);
    }

    /// Decodes the lines that `chunk` completes and keeps the rest.
    fn absorb(&mut self, chunk: &[u8], spare: &mut Option<Arc<String>>) {
        let Some(&last_byte) = chunk.last() else {
            return;
        };
        let mut rest = chunk;
        if !self.pending.is_empty() {
            // The line begun in earlier chunks ends here: its own buffer.
            let Some(end) = find_line_end::<3>(chunk) else {
                self.pending.extend_from_slice(chunk);
                return;
            };
            let end = end + line_end_len(chunk, end);
            let (head, tail) = chunk.split_at(end);
            self.pending.extend_from_slice(head);
            let lines = if self.pending.len() < LONG_LINE {
                // A short line is copied, and the buffer kept for the next.
                let lines = Arc::new(decode(&self.pending).into_owned());
                self.pending.clear();
                self.long_line = 0;
                lines
            } else {
                // A long one keeps its bytes, and the next long line gets a
                // buffer of its size at once rather than growing one: that
                // of an earlier long line if no event holds it any more,
                // since allocating and freeing such buffers for every line
                // costs page faults.
                self.long_line = self.pending.len();
                let lines = Arc::new(decode_owned(mem::take(&mut self.pending)));
                if let Some(buffer) = spare.as_mut().and_then(Arc::get_mut) {
                    if buffer.capacity() >= self.long_line {
                        self.pending = mem::take(buffer).into_bytes();
                        self.pending.clear();
                        *spare = None;
                    }
                }
                lines
            };
            self.enqueue(lines, true);
            rest = tail;
        }
        let tail = match memrchr2(b'\r', b'\n', rest) {
            Some(last) => {
                let (lines, tail) = rest.split_at(last + 1);
                self.enqueue(decode_into(lines, spare), false);
                tail
            }
            None => rest,
        };
        if self.pending.is_empty() && tail.len() < self.long_line {
            self.pending.reserve(self.long_line);
        }
        self.pending.extend_from_slice(tail);
        // A CR at the very end may be the first half of a CRLF.
        self.skip_lf = last_byte == b'\r';
    }

    fn enqueue(&mut self, lines: Arc<String>, one_line: bool) {
        if self.current.is_none() {
            self.current = Some(lines);
            self.one_line = one_line;
            self.pos = 0;
        } else {
            self.queue.push_back((lines, one_line));
        }
    }
}

/// A line that arrives in pieces and is at least this long keeps the buffer
/// it was gathered in; a shorter one is copied out of it.
const LONG_LINE: usize = 4096;

/// How many bytes the line end at `at` takes: 2 for a CRLF, else 1 (0 past
/// the end).
fn line_end_len(bytes: &[u8], at: usize) -> usize {
    match (bytes.get(at), bytes.get(at + 1)) {
        (Some(b'\r'), Some(b'\n')) => 2,
        (Some(_), _) => 1,
        (None, _) => 0,
    }
}

/// Decodes UTF-8, replacing invalid bytes with U+FFFD as a browser does.
/// Valid input (the usual case) is checked with `simdutf8` and borrowed;
/// only invalid input takes the slower replacing path.
fn decode(bytes: &[u8]) -> Cow<'_, str> {
    match simdutf8::basic::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// [`decode`] into `spare` when no event holds it any more, sparing two
/// allocations (the buffer and its count) per chunk.
fn decode_into(bytes: &[u8], spare: &mut Option<Arc<String>>) -> Arc<String> {
    let text = decode(bytes);
    if let Some(mut lines) = spare.take() {
        if let Some(buffer) = Arc::get_mut(&mut lines) {
            // A buffer much larger than needed (a long line's) is kept for
            // the next long line.
            if buffer.capacity() > 2 * text.len() + SMALL_BUFFER {
                *spare = Some(lines);
                return Arc::new(text.into_owned());
            }
            buffer.clear();
            buffer.push_str(&text);
            return lines;
        }
    }
    Arc::new(text.into_owned())
}

/// The size up to which any spare buffer may take a chunk's lines.
const SMALL_BUFFER: usize = 16 * 1024;

/// [`decode`] for bytes already owned: valid input keeps its buffer.
fn decode_owned(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
}

/// The offset of the first CR or LF in `bytes`.
///
/// Most lines of a stream are short (`id`, `event`, the empty line), and for
/// those a vectorised search costs more to set up than it saves: the first
/// `HEAD_WORDS` words of bytes are checked a word at a time, the rest with
/// `memchr2`.
#[inline(always)]
fn find_line_end<const HEAD_WORDS: usize>(bytes: &[u8]) -> Option<usize> {
    let mut rest = bytes;
    let mut offset = 0;
    for _ in 0..HEAD_WORDS {
        let Some((word, tail)) = rest.split_first_chunk::<8>() else {
            // Fewer than 8 bytes left.
            return rest
                .iter()
                .position(|&byte| byte == b'\r' || byte == b'\n')
                .map(|at| offset + at);
        };
        let word = u64::from_le_bytes(*word);
        // CR and LF are control characters, which text seldom holds: one
        // test finds them all, and the rare others are stepped over.
        let mut controls = controls(word);
        while controls != 0 {
            let at = controls.trailing_zeros() / 8;
            let byte = (word >> (at * 8)) as u8;
            if byte == b'\n' || byte == b'\r' {
                return Some(offset + at as usize);
            }
            controls &= controls - 1;
        }
        offset += 8;
        rest = tail;
    }
    memchr2(b'\r', b'\n', rest).map(|at| offset + at)
}

/// The high bit of every byte of `word` below 0x0E, which CR (0x0D) and LF
/// (0x0A) are (exact, no false positives).
fn controls(word: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Adding 0x72 to the low seven bits of a byte carries into its high bit
    // exactly when they are 0x0E or more, and never across bytes.
    !(((word & LOW7) + 0x7272_7272_7272_7272) | word) & HIGH
}

/// The buffers of the "interpreting an event stream" rules, and what outlives
/// them.
///
/// Values are kept as spans of the decoded lines being read, `region`, and
/// become the parts of a [`SharedEvent`] when it is dispatched: a reference
/// is counted per event, not per line or field. Values still needed when the decoder
/// moves on to other lines (those of a block split across chunks, and the
/// last event id) are copied into a small buffer of their own, `carry`.
/// The spans are plain numbers, and which buffer each refers to a bit: no
/// value is moved as a whole, which would cost a store-to-load stall per
/// line.
#[derive(Clone, Debug)]
struct FieldState {
    /// The decoded lines that the spans refer to, unless carried.
    region: Option<Arc<String>>,
    /// The values kept from lines read before `region`.
    carry: Option<Arc<String>>,
    /// A buffer for the next `carry`.
    spare_carry: String,
    /// The lines read before `region`, for [`Input::push`] to decode new
    /// lines into.
    spare_region: Option<Arc<String>>,
    /// What the block set: `DATA_ONE` or `DATA_JOINED`, `EVENT_TYPE`, `ID`.
    set: u8,
    /// What the block last ended had set, for its event.
    dispatched: u8,
    /// Which spans refer to `carry`: the same bits, and `LAST_EVENT_ID`.
    carried: u8,
    /// Where the values are ([`DATA`]: the block's one `data` value, when
    /// `set` has `DATA_ONE`; [`TYPE`]; [`ID_BUFFER`]: the id buffer, when the
    /// block set it, otherwise it equals the last event id; [`LAST_ID`]).
    /// Starts and ends are apart, not in pairs, so that a span is never read
    /// as one piece after its two halves were stored: that would stall.
    starts: [usize; 4],
    ends: [usize; 4],
    /// The data buffer's length as the rules count it: every value plus the
    /// LF appended after it.
    data_len: usize,
    /// The values of a block of several `data` lines, joined with LF, when
    /// `set` has `DATA_JOINED`.
    joined: String,
    reconnection_time: Option<Duration>,
    max_event_len: usize,
}

/// Where a value is in its buffer.
#[derive(Clone, Copy, Debug, Default)]
struct Span {
    start: usize,
    end: usize,
}

impl Span {
    fn len(self) -> usize {
        self.end - self.start
    }
}

/// The indices of the spans of [`FieldState`].
const DATA: usize = 0;
const TYPE: usize = 1;
const ID_BUFFER: usize = 2;
const LAST_ID: usize = 3;

const DATA_ONE: u8 = 1;
const DATA_JOINED: u8 = 2;
const EVENT_TYPE: u8 = 4;
const ID: u8 = 8;
const LAST_EVENT_ID: u8 = 16;

/// A joined data buffer kept for the next event up to this capacity, to
/// spare an allocation per event of several lines without holding much.
const KEPT_JOINED_CAPACITY: usize = 16 * 1024;

impl FieldState {
    fn new() -> Self {
        Self {
            region: None,
            carry: None,
            spare_carry: String::new(),
            spare_region: None,
            set: 0,
            dispatched: 0,
            carried: LAST_EVENT_ID,
            starts: [0; 4],
            ends: [0; 4],
            data_len: 0,
            joined: String::new(),
            reconnection_time: None,
            max_event_len: DEFAULT_MAX_EVENT_LEN,
        }
    }

    fn span(&self, index: usize) -> Span {
        Span {
            start: self.starts.get(index).copied().unwrap_or_default(),
            end: self.ends.get(index).copied().unwrap_or_default(),
        }
    }

    fn set_span(&mut self, index: usize, span: Span) {
        if let (Some(start), Some(end)) = (self.starts.get_mut(index), self.ends.get_mut(index)) {
            (*start, *end) = (span.start, span.end);
        }
    }

    /// The buffer that the span of `bit` refers to.
    fn buffer(&self, bit: u8) -> Option<&Arc<String>> {
        if self.carried & bit == 0 {
            self.region.as_ref()
        } else {
            self.carry.as_ref()
        }
    }

    fn str(&self, bit: u8, span: Span) -> &str {
        self.buffer(bit)
            .and_then(|buffer| buffer.get(span.start..span.end))
            .unwrap_or_default()
    }

    /// Makes `region` the lines that new spans refer to, first copying the
    /// values still needed out of the lines read before.
    #[inline(always)]
    fn read_from(&mut self, region: &Arc<String>) {
        if self
            .region
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, region))
        {
            return;
        }
        self.move_to(region);
    }

    #[cold]
    #[inline(never)]
    fn move_to(&mut self, region: &Arc<String>) {
        self.carry_values(None);
        // Once its events are dropped, the buffer of the lines read can take
        // the lines of a chunk pushed later.
        self.spare_region = self.region.replace(Arc::clone(region));
    }

    /// Copies every value still needed into a new `carry`, with `id` as the
    /// last event id if given.
    fn carry_values(&mut self, last_event_id: Option<&str>) {
        let mut live = self.set & (DATA_ONE | EVENT_TYPE | ID);
        if last_event_id.is_none() {
            live |= LAST_EVENT_ID;
        }
        if self.carried & live == live && last_event_id.is_none() {
            // All in `carry` already (the usual case: only the last event id
            // is needed, and it was carried before).
            return;
        }
        let mut carried = 0;
        let live = [
            (DATA_ONE, self.set & DATA_ONE != 0, self.span(DATA)),
            (EVENT_TYPE, self.set & EVENT_TYPE != 0, self.span(TYPE)),
            (ID, self.set & ID != 0, self.span(ID_BUFFER)),
            (LAST_EVENT_ID, last_event_id.is_none(), self.span(LAST_ID)),
        ];
        let len: usize = live
            .iter()
            .filter(|(_, live, _)| *live)
            .map(|(_, _, span)| span.len())
            .sum();
        let mut carry = mem::take(&mut self.spare_carry);
        carry.clear();
        carry.reserve(len + last_event_id.map_or(0, str::len));
        let mut spans = [Span::default(); 4];
        for ((bit, live, span), new) in live.into_iter().zip(&mut spans) {
            if live {
                let start = carry.len();
                carry.push_str(self.str(bit, span));
                *new = Span {
                    start,
                    end: carry.len(),
                };
                carried |= bit;
            }
        }
        if let Some(id) = last_event_id {
            let start = carry.len();
            carry.push_str(id);
            spans[3] = Span {
                start,
                end: carry.len(),
            };
            carried |= LAST_EVENT_ID;
        }
        for (index, span) in spans.into_iter().enumerate() {
            self.set_span(index, span);
        }
        self.carried = carried;
        // The old buffer is taken over when no event holds it any more.
        match self.carry.as_mut().and_then(Arc::get_mut) {
            Some(old) => {
                mem::swap(old, &mut carry);
                if carry.capacity() <= KEPT_JOINED_CAPACITY {
                    self.spare_carry = carry;
                }
            }
            None => self.carry = Some(Arc::new(carry)),
        }
    }

    fn last_event_id(&self) -> &str {
        self.str(LAST_EVENT_ID, self.span(LAST_ID))
    }

    #[cfg(feature = "client")]
    fn set_last_event_id(&mut self, id: &str) {
        self.set &= !ID;
        self.carry_values(Some(id));
    }

    /// Drops the pending block, including an `id` it set, as at the end of a
    /// stream.
    fn discard_block(&mut self) {
        self.set = 0;
        self.data_len = 0;
        self.joined = String::new();
    }

    /// Interprets a field line (not empty, not a comment): `line`, at `start`
    /// in the region, without its line end.
    // Inlined into the parser's loop: a call per line costs more than the
    // work of most lines.
    #[inline(always)]
    fn field(&mut self, line: &[u8], start: usize) -> Result<(), Exceeded> {
        let (field, offset) = split_field(line);
        // One leading space is not part of the value.
        let offset = offset + usize::from(line.get(offset) == Some(&b' '));
        let value = line.get(offset..).unwrap_or_default();
        let span = Span {
            start: start + offset,
            end: start + line.len(),
        };
        match field {
            Field::Data => self.data(span)?,
            Field::Event => self.event_type(span)?,
            Field::Id => self.id(span, value),
            Field::Retry => {
                if let Some(millis) = parse_retry(value) {
                    self.reconnection_time = Some(Duration::from_millis(millis));
                }
            }
            Field::Unknown => {}
        }
        Ok(())
    }

    /// Interprets a `data` field whose value is at `span`.
    #[inline(always)]
    fn data(&mut self, span: Span) -> Result<(), Exceeded> {
        let event_type_len = if self.set & EVENT_TYPE != 0 {
            self.span(TYPE).len()
        } else {
            0
        };
        let data_len = self.data_len + span.len() + 1;
        if data_len + event_type_len > self.max_event_len {
            return Err(Exceeded::Event(self.max_event_len));
        }
        self.data_len = data_len;
        if self.set & (DATA_ONE | DATA_JOINED) == 0 {
            self.set |= DATA_ONE;
            self.carried &= !DATA_ONE;
            self.set_span(DATA, span);
            return Ok(());
        }
        let mut joined = mem::take(&mut self.joined);
        if self.set & DATA_ONE != 0 {
            let first = self.str(DATA_ONE, self.span(DATA));
            joined.clear();
            joined.reserve(first.len() + 1 + span.len());
            joined.push_str(first);
            self.set = self.set & !DATA_ONE | DATA_JOINED;
        } else {
            // One reservation for the LF and the value: pushing the LF alone
            // would often grow (and copy) the buffer a second time.
            joined.reserve(1 + span.len());
        }
        joined.push('\n');
        joined.push_str(self.str(0, span));
        self.joined = joined;
        Ok(())
    }

    /// Interprets an `event` field whose value is at `span`.
    #[inline(always)]
    fn event_type(&mut self, span: Span) -> Result<(), Exceeded> {
        if self.data_len + span.len() > self.max_event_len {
            return Err(Exceeded::Event(self.max_event_len));
        }
        self.set |= EVENT_TYPE;
        self.carried &= !EVENT_TYPE;
        self.set_span(TYPE, span);
        Ok(())
    }

    /// Interprets an `id` field whose value, `value`, is at `span`.
    #[inline(always)]
    fn id(&mut self, span: Span, value: &[u8]) {
        // An id holding NUL is ignored as a whole, not truncated.
        if !has_nul(value) {
            self.set |= ID;
            self.carried &= !ID;
            self.set_span(ID_BUFFER, span);
        }
    }

    /// Ends the block at an empty line: its `id`, if any, becomes the last
    /// event id. Returns whether it dispatches an event (it has data), which
    /// [`take_event`](FieldState::take_event) then makes.
    #[inline(always)]
    fn end_block(&mut self) -> bool {
        let set = mem::take(&mut self.set);
        self.data_len = 0;
        self.dispatched = set;
        if set & ID != 0 {
            let id = self.span(ID_BUFFER);
            self.set_span(LAST_ID, id);
            if self.carried & ID != 0 {
                self.carried |= LAST_EVENT_ID;
            } else {
                self.carried &= !LAST_EVENT_ID;
            }
        }
        set & (DATA_ONE | DATA_JOINED) != 0
    }

    /// The event of the block that [`end_block`](FieldState::end_block)
    /// ended, if it dispatches one; called before any other line is read.
    // Inlined into the caller of `next_shared_event`: see there.
    #[inline(always)]
    fn take_event(&mut self) -> SharedEvent {
        let set = self.dispatched;
        // The block's id, if it had one, is the last event id now.
        let (event_type, data, id) = (self.span(TYPE), self.span(DATA), self.span(LAST_ID));
        let carried = self.carried;
        let has_type = set & EVENT_TYPE != 0 && event_type.len() > 0;
        if set & DATA_ONE == 0 {
            return self.joined_event(has_type.then_some(event_type), id, LAST_EVENT_ID);
        }
        // A part is in the lines being read (buffer 0) or in the carry
        // buffer (1); only the buffers used are counted.
        let source = |bit: u8| {
            if carried & bit == 0 {
                Source::Region
            } else {
                Source::Carry
            }
        };
        let data_source = source(DATA_ONE);
        let (type_source, type_start, type_end) = if has_type {
            (source(EVENT_TYPE), event_type.start, event_type.end)
        } else {
            (Source::Static, 0, STATIC_TEXT.len())
        };
        let (id_source, id_start, id_end) = if id.len() > 0 {
            (source(LAST_EVENT_ID), id.start, id.end)
        } else {
            (Source::Static, 0, 0)
        };
        let uses =
            |source: Source| type_source == source || data_source == source || id_source == source;
        let region = if uses(Source::Region) {
            self.region.clone()
        } else {
            None
        };
        let carry = if uses(Source::Carry) {
            self.carry.clone()
        } else {
            None
        };
        SharedEvent {
            buffers: [region, carry],
            parts: [
                Part {
                    source: type_source,
                    start: type_start,
                    end: type_end,
                },
                Part {
                    source: data_source,
                    start: data.start,
                    end: data.end,
                },
                Part {
                    source: id_source,
                    start: id_start,
                    end: id_end,
                },
            ],
        }
    }

    /// An event of several `data` lines: its joined data get a buffer of
    /// their own, and its type and id are copied there too, so that it
    /// counts one reference.
    #[cold]
    #[inline(never)]
    fn joined_event(&mut self, event_type: Option<Span>, id: Span, id_bit: u8) -> SharedEvent {
        let event_type = event_type.map_or("", |span| self.str(EVENT_TYPE, span));
        let id = self.str(id_bit, id);
        let mut buffer = String::with_capacity(self.joined.len() + event_type.len() + id.len());
        let mut part = |text: &str| {
            let start = buffer.len();
            buffer.push_str(text);
            Part {
                source: Source::Region,
                start,
                end: buffer.len(),
            }
        };
        let data = part(&self.joined);
        let event_type = if event_type.is_empty() {
            Part::MESSAGE
        } else {
            part(event_type)
        };
        let id = part(id);
        if self.joined.capacity() > KEPT_JOINED_CAPACITY {
            self.joined = String::new();
        }
        SharedEvent {
            buffers: [Some(Arc::new(buffer)), None],
            parts: [event_type, data, id],
        }
    }
}

/// The field names the rules know; any other name is ignored.
#[derive(Clone, Copy)]
enum Field {
    Data,
    Event,
    Id,
    Retry,
    Unknown,
}

/// Where the value of a line of a known field starts, in `rest` (the line
/// and what follows it), and how long the line is: its name and colon take
/// `name` bytes, and one space after them is not part of the value.
#[inline(always)]
fn value_and_len<const HEAD_WORDS: usize>(rest: &[u8], name: usize) -> (usize, usize) {
    let value = name + usize::from(rest.get(name) == Some(&b' '));
    let after = rest.get(value..).unwrap_or_default();
    let len = find_line_end::<HEAD_WORDS>(after).unwrap_or(after.len());
    (value, value + len)
}

/// Splits a field line (not empty, not a comment) into its field and where
/// its value starts: after the first colon, its leading space still there.
fn split_field(line: &[u8]) -> (Field, usize) {
    let (name, value) = match memchr(b':', line) {
        None => (line, line.len()),
        Some(colon) => (line.get(..colon).unwrap_or_default(), colon + 1),
    };
    let field = match name {
        b"data" => Field::Data,
        b"event" => Field::Event,
        b"id" => Field::Id,
        b"retry" => Field::Retry,
        _ => Field::Unknown,
    };
    (field, value)
}

/// Whether `value` holds a NUL: a plain loop for the usual short ids, where
/// `memchr`'s setup costs more than it saves.
fn has_nul(value: &[u8]) -> bool {
    if value.len() < 32 {
        // A loop: `contains` would call `memchr`.
        for &byte in value {
            if byte == 0 {
                return true;
            }
        }
        false
    } else {
        memchr(0, value).is_some()
    }
}

/// Reads a `retry` value: ASCII digits only, else `None`. A value too large for
/// a `u64` of milliseconds is ignored too.
fn parse_retry(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |millis, &byte| {
        if !byte.is_ascii_digit() {
            return None;
        }
        millis.checked_mul(10)?.checked_add(u64::from(byte - b'0'))
    })
}

/// What [`Decoder::parse`] reached: an event, which
/// [`FieldState::take_event`] makes, a comment (when asked for), in
/// [`Decoder`]'s `comment`, or the end of the lines pushed.
#[derive(Clone, Copy, Debug)]
enum Step {
    Event,
    Comment,
    More,
}

/// What a [`Decoder`] made [`with_comments`](Decoder::with_comments) reads
/// from a stream: events and comments, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodedItem {
    /// An event, as [`next_event`](Decoder::next_event) returns it.
    Event(MessageEvent),
    /// A comment line's text: what follows the `:`, without one leading
    /// space (a keep-alive ping's is usually empty).
    Comment(String),
}

/// An event as a browser's `EventSource` would fire it.
///
/// [`SharedEvent`] is the same event without a copy of its strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageEvent {
    /// The event's type: the block's `event` field, or `"message"` when it had
    /// none.
    pub event_type: String,
    /// The event's data: the block's `data` values joined with LF.
    pub data: String,
    /// The stream's last event id when the event was dispatched: set by the
    /// latest `id` field, in this block or an earlier one.
    pub last_event_id: String,
}

impl From<SharedEvent> for MessageEvent {
    fn from(event: SharedEvent) -> Self {
        Self {
            event_type: event.event_type().to_owned(),
            data: event.data().to_owned(),
            last_event_id: event.last_event_id().to_owned(),
        }
    }
}

/// A [`MessageEvent`] read without a copy: its type, data and last event id
/// are slices of the buffer the decoder decoded the stream's lines into.
///
/// Made by [`Decoder::next_shared_event`] and [`DecodeStream::shared`], with
/// no allocation or copy per event (one for an event of several `data`
/// lines, whose values are joined). It is `'static`, `Send` and `Sync`, and
/// cloning it counts a reference. The buffer (about one pushed chunk) lives
/// as long as the last event that slices it: to keep an event for long, keep
/// a [`MessageEvent`] (`MessageEvent::from(event)`) instead.
///
/// ```
/// use tower_sse::decode::{Decoder, MessageEvent};
///
/// let mut decoder = Decoder::new();
/// decoder.push(b"id: 7\nevent: price\ndata: {\"bid\":101.25}\n\n");
/// let event = decoder.next_shared_event()?.expect("an event");
/// assert_eq!(event.event_type(), "price");
/// assert_eq!(event.data(), r#"{"bid":101.25}"#);
/// assert_eq!(event.last_event_id(), "7");
/// let owned = MessageEvent::from(event);
/// assert_eq!(owned.data, r#"{"bid":101.25}"#);
/// # Ok::<(), tower_sse::decode::DecodeError>(())
/// ```
#[derive(Clone)]
pub struct SharedEvent {
    /// The buffers the parts slice: the lines being read, and the values the
    /// decoder kept from lines read before (or an event's own buffer). The
    /// usual event needs the first only: one reference count.
    buffers: [Option<Arc<String>>; 2],
    /// The type, the data and the last event id, in that order.
    parts: [Part; 3],
}

/// Where a part of a [`SharedEvent`] is.
#[derive(Clone, Copy, Debug)]
struct Part {
    source: Source,
    start: usize,
    end: usize,
}

/// The buffer a [`Part`] slices. A word, as the other fields of a part: a
/// smaller field makes moves of parts stall. Its values unused are a niche,
/// which makes `Option<SharedEvent>` and the `Result` that
/// [`Decoder::next_shared_event`] returns the size of a `SharedEvent`, with
/// its fields where they are in the event: the caller takes the event out
/// without moving it (moving it, with loads wider than the stores that wrote
/// it, would stall).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
enum Source {
    /// `buffers[0]`.
    Region = 0,
    /// `buffers[1]`.
    Carry = 1,
    /// [`STATIC_TEXT`].
    Static = 2,
}

/// What a part of [`Source::Static`] slices: the default event type.
const STATIC_TEXT: &str = "message";

impl Part {
    const MESSAGE: Self = Self {
        source: Source::Static,
        start: 0,
        end: STATIC_TEXT.len(),
    };
}

impl SharedEvent {
    /// The event's type: the block's `event` field, or `"message"` when it
    /// had none.
    #[inline]
    pub fn event_type(&self) -> &str {
        self.part(0)
    }

    /// The event's data: the block's `data` values joined with LF.
    #[inline]
    pub fn data(&self) -> &str {
        self.part(1)
    }

    /// The stream's last event id when the event was dispatched: set by the
    /// latest `id` field, in this block or an earlier one.
    #[inline]
    pub fn last_event_id(&self) -> &str {
        self.part(2)
    }

    #[inline]
    fn part(&self, index: usize) -> &str {
        let Some(part) = self.parts.get(index) else {
            return "";
        };
        let buffer = match part.source {
            Source::Region => self.buffers[0].as_deref(),
            Source::Carry => self.buffers[1].as_deref(),
            Source::Static => return STATIC_TEXT.get(part.start..part.end).unwrap_or_default(),
        };
        let buffer = buffer.map_or("", String::as_str);
        buffer.get(part.start..part.end).unwrap_or_default()
    }
}

impl fmt::Debug for SharedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedEvent")
            .field("event_type", &self.event_type())
            .field("data", &self.data())
            .field("last_event_id", &self.last_event_id())
            .finish()
    }
}

impl PartialEq for SharedEvent {
    fn eq(&self, other: &Self) -> bool {
        self.event_type() == other.event_type()
            && self.data() == other.data()
            && self.last_event_id() == other.last_event_id()
    }
}

impl Eq for SharedEvent {}

impl PartialEq<MessageEvent> for SharedEvent {
    fn eq(&self, other: &MessageEvent) -> bool {
        self.event_type() == other.event_type
            && self.data() == other.data
            && self.last_event_id() == other.last_event_id
    }
}

/// The error of [`Decoder::next_event`] and [`DecodeStream`]: a limit was
/// exceeded or the body failed.
pub struct DecodeError {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    LineTooLong { limit: usize },
    EventTooLong { limit: usize },
    Body(BoxError),
}

/// Which limit poisoned a decoder, kept to repeat the error.
#[derive(Clone, Copy, Debug)]
enum Exceeded {
    Line(usize),
    Event(usize),
}

impl From<Exceeded> for DecodeError {
    fn from(exceeded: Exceeded) -> Self {
        let kind = match exceeded {
            Exceeded::Line(limit) => Kind::LineTooLong { limit },
            Exceeded::Event(limit) => Kind::EventTooLong { limit },
        };
        Self { kind }
    }
}

impl DecodeError {
    fn body(error: BoxError) -> Self {
        Self {
            kind: Kind::Body(error),
        }
    }

    /// Returns true if a line exceeded [`Decoder::max_line_len`].
    pub fn is_line_too_long(&self) -> bool {
        matches!(self.kind, Kind::LineTooLong { .. })
    }

    /// Returns true if an event exceeded [`Decoder::max_event_len`].
    pub fn is_event_too_long(&self) -> bool {
        matches!(self.kind, Kind::EventTooLong { .. })
    }

    /// Returns true if the body being decoded failed; the body's error is the
    /// [`source`](Error::source).
    pub fn is_body(&self) -> bool {
        matches!(self.kind, Kind::Body(_))
    }
}

impl fmt::Debug for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DecodeError").field(&self.kind).finish()
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::LineTooLong { limit } => {
                write!(f, "sse line exceeds the limit of {limit} bytes")
            }
            Kind::EventTooLong { limit } => {
                write!(f, "sse event exceeds the limit of {limit} bytes")
            }
            Kind::Body(_) => f.write_str("failed to read the sse body"),
        }
    }
}

impl Error for DecodeError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match &self.kind {
            Kind::Body(error) => Some(&**error),
            Kind::LineTooLong { .. } | Kind::EventTooLong { .. } => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Reading,
    BodyEnded,
    Done,
}

pin_project! {
    /// A [`Stream`] of the events in an [`http_body::Body`] holding a
    /// `text/event-stream`.
    ///
    /// It decodes with a [`Decoder`] and returns every event already buffered
    /// before it polls the body again, so that it holds at most one frame and
    /// one partial line. Trailers are ignored. When the body ends, a block left
    /// without its closing empty line is discarded; after an error, the stream
    /// ends.
    ///
    /// Its events are [`MessageEvent`]s ([`Decoder::next_event`]), or
    /// [`SharedEvent`]s for a stream made with [`shared`](DecodeStream::shared)
    /// ([`Decoder::next_shared_event`]: no copy per event).
    ///
    /// # Example
    ///
    /// ```
    /// use bytes::Bytes;
    /// use futures_util::StreamExt;
    /// use http_body_util::Full;
    /// use tower_sse::decode::DecodeStream;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_sse::decode::DecodeError> {
    /// let body = Full::new(Bytes::from_static(b"id: 1\ndata: first\n\ndata: second\n\n"));
    /// let mut events = DecodeStream::new(body);
    ///
    /// let first = events.next().await.expect("an event")?;
    /// assert_eq!(first.data, "first");
    /// let second = events.next().await.expect("an event")?;
    /// assert_eq!((second.data.as_str(), second.last_event_id.as_str()), ("second", "1"));
    /// assert!(events.next().await.is_none());
    /// assert_eq!(events.decoder().last_event_id(), "1");
    /// # Ok(())
    /// # }
    /// ```
    #[must_use = "streams do nothing unless polled"]
    #[derive(Debug)]
    pub struct DecodeStream<B, E = MessageEvent> {
        #[pin]
        body: B,
        decoder: Decoder,
        state: State,
        events: PhantomData<fn() -> E>,
    }
}

impl<B> DecodeStream<B> {
    /// Decodes `body` with a [`Decoder`] of default limits.
    pub fn new(body: B) -> Self {
        Self::with_decoder(body, Decoder::new())
    }

    /// Decodes `body` with `decoder`, to set limits or to carry the last event
    /// id and reconnection time over from an earlier connection.
    pub fn with_decoder(body: B, decoder: Decoder) -> Self {
        Self::from_parts(body, decoder)
    }
}

impl<B> DecodeStream<B, SharedEvent> {
    /// Decodes `body` with a [`Decoder`] of default limits into
    /// [`SharedEvent`]s, as [`Decoder::next_shared_event`] returns them.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use futures_util::StreamExt;
    /// use http_body_util::Full;
    /// use tower_sse::decode::DecodeStream;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_sse::decode::DecodeError> {
    /// let body = Full::new(Bytes::from_static(b"event: tick\ndata: 1\n\n"));
    /// let mut events = DecodeStream::shared(body);
    /// let event = events.next().await.expect("an event")?;
    /// assert_eq!((event.event_type(), event.data()), ("tick", "1"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn shared(body: B) -> Self {
        Self::shared_with_decoder(body, Decoder::new())
    }

    /// [`shared`](DecodeStream::shared) with `decoder`, as
    /// [`with_decoder`](DecodeStream::with_decoder).
    pub fn shared_with_decoder(body: B, decoder: Decoder) -> Self {
        Self::from_parts(body, decoder)
    }
}

impl<B, E> DecodeStream<B, E> {
    fn from_parts(body: B, decoder: Decoder) -> Self {
        Self {
            body,
            decoder,
            state: State::Reading,
            events: PhantomData,
        }
    }

    /// Returns the decoder, to read its last event id and reconnection time.
    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }
}

impl<B> Stream for DecodeStream<B>
where
    B: Body,
    B::Data: Buf,
    B::Error: Into<BoxError>,
{
    type Item = Result<MessageEvent, DecodeError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        poll_decoded(this.body, this.decoder, this.state, cx, Decoder::next_event)
    }
}

impl<B> Stream for DecodeStream<B, SharedEvent>
where
    B: Body,
    B::Data: Buf,
    B::Error: Into<BoxError>,
{
    type Item = Result<SharedEvent, DecodeError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        poll_decoded(
            this.body,
            this.decoder,
            this.state,
            cx,
            Decoder::next_shared_event,
        )
    }
}

/// Reads `body` into `decoder` until `next` has an item for it, the body
/// ends, or an error: the loop of [`DecodeStream`] and [`DecodeItems`].
fn poll_decoded<B, T>(
    mut body: Pin<&mut B>,
    decoder: &mut Decoder,
    state: &mut State,
    cx: &mut Context<'_>,
    mut next: impl FnMut(&mut Decoder) -> Result<Option<T>, DecodeError>,
) -> Poll<Option<Result<T, DecodeError>>>
where
    B: Body,
    B::Data: Buf,
    B::Error: Into<BoxError>,
{
    loop {
        if *state == State::Done {
            return Poll::Ready(None);
        }
        match next(decoder) {
            Ok(Some(item)) => return Poll::Ready(Some(Ok(item))),
            Ok(None) => {}
            Err(error) => {
                *state = State::Done;
                return Poll::Ready(Some(Err(error)));
            }
        }
        if *state == State::BodyEnded {
            *state = State::Done;
            return Poll::Ready(None);
        }
        match ready!(body.as_mut().poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Ok(mut data) = frame.into_data() {
                    while data.has_remaining() {
                        let chunk = data.chunk();
                        let len = chunk.len();
                        decoder.push(chunk);
                        data.advance(len);
                    }
                }
            }
            Some(Err(error)) => {
                *state = State::Done;
                return Poll::Ready(Some(Err(DecodeError::body(error.into()))));
            }
            None => {
                decoder.finish();
                *state = State::BodyEnded;
            }
        }
    }
}

pin_project! {
    /// A [`Stream`] of the events and comments in an [`http_body::Body`]
    /// holding a `text/event-stream`: [`DecodeStream`] for tests that must
    /// see comments, such as keep-alive pings.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use futures_util::StreamExt;
    /// use http_body_util::Full;
    /// use tower_sse::decode::{DecodeItems, DecodedItem};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_sse::decode::DecodeError> {
    /// let body = Full::new(Bytes::from_static(b":\n\ndata: first\n\n"));
    /// let mut items = DecodeItems::new(body);
    /// assert_eq!(items.next().await.expect("a ping")?, DecodedItem::Comment(String::new()));
    /// assert!(matches!(items.next().await.expect("an event")?, DecodedItem::Event(_)));
    /// assert!(items.next().await.is_none());
    /// # Ok(())
    /// # }
    /// ```
    #[must_use = "streams do nothing unless polled"]
    #[derive(Debug)]
    pub struct DecodeItems<B> {
        #[pin]
        body: B,
        decoder: Decoder,
        state: State,
    }
}

impl<B> DecodeItems<B> {
    /// Decodes `body` with a [`Decoder`] of default limits that keeps
    /// comments.
    pub fn new(body: B) -> Self {
        Self::with_decoder(body, Decoder::new())
    }

    /// Decodes `body` with `decoder`, made to keep comments.
    pub fn with_decoder(body: B, decoder: Decoder) -> Self {
        Self {
            body,
            decoder: decoder.with_comments(),
            state: State::Reading,
        }
    }

    /// Returns the decoder, to read its last event id and reconnection time.
    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }
}

impl<B> Stream for DecodeItems<B>
where
    B: Body,
    B::Data: Buf,
    B::Error: Into<BoxError>,
{
    type Item = Result<DecodedItem, DecodeError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        poll_decoded(this.body, this.decoder, this.state, cx, Decoder::next_item)
    }
}

impl<B> FusedStream for DecodeStream<B>
where
    B: Body,
    B::Data: Buf,
    B::Error: Into<BoxError>,
{
    fn is_terminated(&self) -> bool {
        self.state == State::Done
    }
}

impl<B> FusedStream for DecodeStream<B, SharedEvent>
where
    B: Body,
    B::Data: Buf,
    B::Error: Into<BoxError>,
{
    fn is_terminated(&self) -> bool {
        self.state == State::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_line_in_many_chunks_waits_as_bytes_until_its_end() {
        let mut decoder = Decoder::new();
        decoder.push(b"data: ");
        for n in 1..=100 {
            decoder.push(b"xxxxxxxxxx");
            assert_eq!(decoder.next_event().ok(), Some(None));
            assert!(decoder.input.current.is_none());
            assert_eq!(decoder.input.pending.len(), 6 + 10 * n);
        }
        decoder.push(b"\n\n");
        assert!(decoder.input.pending.is_empty());
        let event = decoder.next_event().ok().flatten();
        assert_eq!(event.map(|event| event.data.len()), Some(1000));
    }

    #[test]
    fn a_short_line_in_pieces_is_copied_and_a_long_one_sizes_the_next_buffer() {
        let mut decoder = Decoder::new();
        decoder.push(b"data: a");
        decoder.push(b"b\n\ndata: c");
        // The short line was copied out: its buffer holds the next one.
        assert_eq!(decoder.input.pending, b"data: c");
        assert_eq!(decoder.input.long_line, 0);

        let long = vec![b'x'; LONG_LINE];
        decoder.push(&long);
        decoder.push(b"\n\ndata: ");
        assert_eq!(decoder.input.long_line, 7 + LONG_LINE + 1);
        assert!(decoder.input.pending.capacity() >= decoder.input.long_line);
        let events: Vec<_> = std::iter::from_fn(|| decoder.next_event().ok().flatten()).collect();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].data.len(), 1 + LONG_LINE);
    }

    #[test]
    fn lines_read_are_released_on_push() {
        let mut decoder = Decoder::new();
        decoder.push(b"data: a\n\n");
        assert!(decoder.next_event().ok().flatten().is_some());
        decoder.push(b"x");
        assert!(decoder.input.current.is_none());
        assert_eq!(decoder.input.pending, b"x");
    }

    #[test]
    fn a_chunk_of_whole_lines_is_one_buffer_that_events_slice() {
        let mut decoder = Decoder::new();
        decoder.push(b"data: a\n\nid: 1\nevent: e\ndata: b\n\ndata: c");
        assert_eq!(
            (decoder.input.queue.len() + usize::from(decoder.input.current.is_some())),
            1
        );
        assert_eq!(decoder.input.pending, b"data: c");
        let first = decoder.next_shared_event().ok().flatten();
        let second = decoder.next_shared_event().ok().flatten();
        // The event's buffers, and the buffer of each of its parts.
        let buffers = |event: &SharedEvent| {
            let buffers = event
                .buffers
                .each_ref()
                .map(|buffer| buffer.as_ref().map(Arc::as_ptr));
            let parts = event
                .parts
                .map(|part| buffers.get(part.source as usize).copied().flatten());
            (buffers, parts)
        };
        let region = decoder.input.current.as_ref().map(Arc::as_ptr);
        assert!(region.is_some());
        assert_eq!(
            first.as_ref().map(buffers),
            Some(([region, None], [None, region, None]))
        );
        assert_eq!(
            second.as_ref().map(buffers),
            Some(([region, None], [region; 3]))
        );
    }

    #[test]
    fn an_event_of_several_data_lines_has_a_buffer_of_its_own() {
        let mut decoder = Decoder::new();
        decoder.push(b"id: 1\n\n");
        assert_eq!(decoder.next_event().ok(), Some(None));
        decoder.push(b"event: e\ndata: a\ndata: b\n\n");
        let event = decoder.next_shared_event().ok().flatten();
        let event = event.as_ref();
        assert!(
            event.is_some_and(|event| event.buffers[0].is_some() && event.buffers[1].is_none())
        );
        assert_eq!(
            event.map(|event| (event.event_type(), event.data(), event.last_event_id())),
            Some(("e", "a\nb", "1"))
        );
    }

    #[test]
    fn a_line_across_chunks_is_a_buffer_of_its_own() {
        let mut decoder = Decoder::new();
        decoder.push(b"data: a\ndata: b");
        decoder.push(b"c\r");
        assert_eq!(
            (decoder.input.queue.len() + usize::from(decoder.input.current.is_some())),
            2
        );
        assert!(!decoder.input.one_line);
        assert_eq!(
            decoder.input.queue.front().map(|(_, one_line)| *one_line),
            Some(true)
        );
        assert!(decoder.input.skip_lf);
        decoder.push(b"\n\r\ndata: d\n");
        assert_eq!(
            (decoder.input.queue.len() + usize::from(decoder.input.current.is_some())),
            3
        );
        assert_eq!(
            decoder.next_event().ok().flatten().map(|event| event.data),
            Some("a\nbc".to_owned())
        );
    }

    #[test]
    fn line_end_search_finds_the_first_cr_or_lf_anywhere() {
        // Bytes that differ from CR and LF in one bit only, or by the high
        // bit, must not be taken for them.
        let filler = [b'x', 0x8a, 0x8d, 0x0b, 0x0c, 0x09, 0x2a, 0x00, 0xff];
        for len in 0..80 {
            for &fill in &filler {
                let mut bytes = vec![fill; len];
                assert_eq!(find_line_end::<3>(&bytes), None, "{len} x {fill:#x}");
                assert_eq!(find_line_end::<1>(&bytes), None, "{len} x {fill:#x}");
                for at in 0..len {
                    for end in [b'\r', b'\n'] {
                        bytes[at] = end;
                        assert_eq!(
                            find_line_end::<3>(&bytes),
                            Some(at),
                            "{len} x {fill:#x}, {end} at {at}"
                        );
                        assert_eq!(
                            find_line_end::<1>(&bytes),
                            Some(at),
                            "{len} x {fill:#x}, {end} at {at}"
                        );
                        bytes[at] = fill;
                    }
                }
            }
        }
    }

    /// The lines of `data`, `id` and `event` fields, read on paths of their
    /// own when a chunk holds them whole, decode as they do when they
    /// arrive in pieces (and take the general path), whatever their line
    /// ends and wherever the chunks split them, a CR at the end of one
    /// chunk and an LF at the start of the next included.
    #[test]
    fn known_fields_decode_alike_whole_or_in_pieces() {
        let long = "a value longer than the words looked at before a vector search";
        for name in ["data", "id", "event"] {
            for (separator, values) in [
                ("", &["" as &str][..]),
                (":", &["", "v", " v", long][..]),
                (": ", &["", "v", " v", long][..]),
            ] {
                for &value in values {
                    for end in ["\n", "\r", "\r\n"] {
                        let input = format!("{name}{separator}{value}{end}data: x{end}{end}");
                        // What follows the colon, less one leading space.
                        let value = match separator {
                            ":" => value.strip_prefix(' ').unwrap_or(value),
                            _ => value,
                        };
                        let expected = match name {
                            "data" => ("message".to_owned(), format!("{value}\nx"), String::new()),
                            "id" => ("message".to_owned(), "x".to_owned(), value.to_owned()),
                            _ => (
                                if value.is_empty() { "message" } else { value }.to_owned(),
                                "x".to_owned(),
                                String::new(),
                            ),
                        };
                        let expected = [expected];
                        let input = input.as_bytes();
                        let decode = |chunks: &[&[u8]]| {
                            let mut decoder = Decoder::new();
                            let mut events = Vec::new();
                            for chunk in chunks {
                                decoder.push(chunk);
                                while let Some(event) = decoder.next_shared_event().ok().flatten() {
                                    events.push((
                                        event.event_type().to_owned(),
                                        event.data().to_owned(),
                                        event.last_event_id().to_owned(),
                                    ));
                                }
                            }
                            events
                        };
                        assert_eq!(decode(&[input]), expected, "{input:?}");
                        for first in 0..=input.len() {
                            let (head, tail) = input.split_at(first);
                            assert_eq!(decode(&[head, tail]), expected, "{input:?} at {first}");
                            for second in first..=input.len() {
                                let (middle, tail) = tail.split_at(second - first);
                                assert_eq!(
                                    decode(&[head, middle, tail]),
                                    expected,
                                    "{input:?} at {first} and {second}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn retry_overflow_is_ignored() {
        assert_eq!(parse_retry(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_retry(b"18446744073709551616"), None);
    }
}
