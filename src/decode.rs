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
use std::error::Error;
use std::fmt;
use std::mem;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Buf;
use futures_core::{FusedStream, Stream};
use http_body::Body;
use memchr::{memchr, memchr2};
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
/// most [`max_event_len`](Decoder::max_event_len) bytes.
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
    lines: LineReader,
    fields: FieldState,
    max_line_len: usize,
    ended: bool,
    poisoned: Option<Exceeded>,
    // Comments are items (`next_item`), not dropped.
    comments: bool,
}

impl Decoder {
    /// Creates a decoder with the default limits: lines of 64 KiB and events of
    /// 1 MiB.
    pub fn new() -> Self {
        Self {
            lines: LineReader::new(),
            fields: FieldState::new(),
            max_line_len: DEFAULT_MAX_LINE_LEN,
            ended: false,
            poisoned: None,
            comments: false,
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
    /// Nothing is parsed until [`next_event`](Decoder::next_event) is called.
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
        self.lines.push(chunk);
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
    pub fn next_event(&mut self) -> Result<Option<MessageEvent>, DecodeError> {
        loop {
            match self.next_item()? {
                Some(DecodedItem::Event(event)) => return Ok(Some(event)),
                Some(DecodedItem::Comment(_)) => {}
                None => return Ok(None),
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
        if let Some(exceeded) = self.poisoned {
            return Err(exceeded.into());
        }
        match self.parse() {
            Ok(item) => Ok(item),
            Err(exceeded) => {
                self.poisoned = Some(exceeded);
                self.lines = LineReader::new();
                self.fields.discard_block();
                Err(exceeded.into())
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
        self.fields.last_event_id.clear();
        self.fields.last_event_id.push_str(id);
        self.fields.id_buffer.clone_from(&self.fields.last_event_id);
        self
    }

    /// Returns the last event id: the value of the last `id` field of a block
    /// that was closed by an empty line, which a client sends back as
    /// `Last-Event-ID` when it reconnects (unless it is empty).
    pub fn last_event_id(&self) -> &str {
        &self.fields.last_event_id
    }

    /// Returns the reconnection time set by the last valid `retry` field, if any.
    pub fn reconnection_time(&self) -> Option<Duration> {
        self.fields.reconnection_time
    }

    fn parse(&mut self) -> Result<Option<DecodedItem>, Exceeded> {
        loop {
            match self.lines.next_line(self.max_line_len)? {
                Some(line) => {
                    if self.comments {
                        if let Some(comment) = line.strip_prefix(b":") {
                            let comment = comment.strip_prefix(b" ").unwrap_or(comment);
                            return Ok(Some(DecodedItem::Comment(utf8_lossy(comment).into())));
                        }
                    }
                    if let Some(event) = self.fields.line(line)? {
                        return Ok(Some(DecodedItem::Event(event)));
                    }
                }
                None => {
                    if self.ended {
                        self.start_next_stream();
                    }
                    return Ok(None);
                }
            }
        }
    }

    fn start_next_stream(&mut self) {
        self.lines = LineReader::new();
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
            .field("buffered", &self.lines.buffered())
            .field("last_event_id", &self.fields.last_event_id)
            .field("reconnection_time", &self.fields.reconnection_time)
            .field("ended", &self.ended)
            .field("poisoned", &self.poisoned.is_some())
            .field("comments", &self.comments)
            .finish_non_exhaustive()
    }
}

/// Splits buffered bytes into lines: strips the byte-order mark and recognises
/// CRLF, LF and lone CR, across chunk boundaries.
#[derive(Clone, Debug)]
struct LineReader {
    buf: Vec<u8>,
    /// Where the unread bytes of `buf` start: the lines before it have been
    /// handed out. They are dropped when more bytes are pushed, so that
    /// handing out a line costs no move of the rest.
    pos: usize,
    /// How far into `buf` the line starting at `pos` has been searched for a
    /// line end in vain, so that a long line arriving in many chunks is
    /// scanned only once.
    scanned: usize,
    /// No byte of the stream has been looked at yet: a BOM may still come.
    at_stream_start: bool,
    /// The last line ended with a CR at the end of the buffer: an LF arriving
    /// next completes that CRLF rather than ending an empty line.
    skip_lf: bool,
}

impl LineReader {
    fn new() -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            scanned: 0,
            at_stream_start: true,
            skip_lf: false,
        }
    }

    fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn push(&mut self, chunk: &[u8]) {
        // Dropping the lines already handed out first lets the buffer reuse
        // that room.
        let pos = mem::take(&mut self.pos);
        if pos == self.buf.len() {
            self.buf.clear();
        } else if pos > 0 {
            self.buf.drain(..pos);
        }
        self.scanned = self.scanned.saturating_sub(pos);
        self.buf.extend_from_slice(chunk);
    }

    /// Returns the next complete line without its line end, or `None` when
    /// more bytes are needed.
    fn next_line(&mut self, max_line_len: usize) -> Result<Option<&[u8]>, Exceeded> {
        if self.at_stream_start {
            let unread = self.buf.get(self.pos..).unwrap_or_default();
            if unread.len() < BOM.len() && BOM.starts_with(unread) {
                return Ok(None);
            }
            if unread.starts_with(BOM) {
                self.pos += BOM.len();
            }
            self.at_stream_start = false;
        }

        if self.skip_lf {
            match self.buf.get(self.pos) {
                None => return Ok(None),
                Some(&byte) => {
                    if byte == b'\n' {
                        self.pos += 1;
                    }
                    self.skip_lf = false;
                }
            }
        }

        let start = self.pos;
        let from = self.scanned.max(start);
        let unscanned = self.buf.get(from..).unwrap_or_default();
        let Some(offset) = find_line_end(unscanned) else {
            self.scanned = self.buf.len();
            if self.buf.len() - start > max_line_len {
                return Err(Exceeded::Line(max_line_len));
            }
            return Ok(None);
        };
        let end = from + offset;
        if end - start > max_line_len {
            return Err(Exceeded::Line(max_line_len));
        }

        let line_end_len = match (self.buf.get(end), self.buf.get(end + 1)) {
            (Some(b'\r'), Some(b'\n')) => 2,
            (Some(b'\r'), None) => {
                self.skip_lf = true;
                1
            }
            _ => 1,
        };
        self.pos = end + line_end_len;
        Ok(Some(self.buf.get(start..end).unwrap_or_default()))
    }
}

/// The offset of the first CR or LF in `bytes`.
///
/// Most lines of a stream are short (`id`, `event`, the empty line), and for
/// those a vectorised search costs more to set up than it saves: the first
/// bytes are checked a word at a time, the rest with `memchr2`.
fn find_line_end(bytes: &[u8]) -> Option<usize> {
    const HEAD: usize = 24;
    let head = bytes.get(..HEAD).unwrap_or(bytes);
    let mut words = head.chunks_exact(8);
    let mut offset = 0;
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().unwrap_or_default());
        let found = has_byte(word, b'\n') | has_byte(word, b'\r');
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    if let Some(at) = memchr2(b'\r', b'\n', words.remainder()) {
        return Some(offset + at);
    }
    let searched = head.len();
    memchr2(b'\r', b'\n', bytes.get(searched..).unwrap_or_default()).map(|at| searched + at)
}

/// The high bit of every byte of `word` that equals `byte` (exact, no false
/// positives, so the lowest set bit marks the first match).
fn has_byte(word: u64, byte: u8) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let x = word ^ (u64::from(byte) * 0x0101_0101_0101_0101);
    // A byte of `x` is zero iff both its high bit and its low seven bits are
    // clear; adding LOW7 to the low seven bits carries into the high bit
    // unless they are all zero, and never carries across bytes.
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// The buffers of the "interpreting an event stream" rules, and what outlives
/// them.
#[derive(Clone, Debug)]
struct FieldState {
    data: String,
    event_type: String,
    id_buffer: String,
    last_event_id: String,
    reconnection_time: Option<Duration>,
    max_event_len: usize,
}

impl FieldState {
    fn new() -> Self {
        Self {
            data: String::new(),
            event_type: String::new(),
            id_buffer: String::new(),
            last_event_id: String::new(),
            reconnection_time: None,
            max_event_len: DEFAULT_MAX_EVENT_LEN,
        }
    }

    /// Drops the pending block, including an `id` it set, as at the end of a
    /// stream.
    fn discard_block(&mut self) {
        self.data = String::new();
        self.event_type = String::new();
        self.id_buffer.clone_from(&self.last_event_id);
    }

    fn line(&mut self, line: &[u8]) -> Result<Option<MessageEvent>, Exceeded> {
        let (field, value) = match split_field(line) {
            Line::Empty => return Ok(self.dispatch()),
            Line::Comment => return Ok(None),
            Line::Field(field, value) => (field, value.strip_prefix(b" ").unwrap_or(value)),
        };

        match field {
            Field::Data => {
                let value = utf8_lossy(value);
                let len = self.data.len() + value.len() + 1 + self.event_type.len();
                if len > self.max_event_len {
                    return Err(Exceeded::Event(self.max_event_len));
                }
                // One reservation for the value and its LF: pushing the LF
                // alone would often grow (and copy) the buffer a second time.
                self.data.reserve(value.len() + 1);
                self.data.push_str(&value);
                self.data.push('\n');
            }
            Field::Event => {
                let value = utf8_lossy(value);
                if self.data.len() + value.len() > self.max_event_len {
                    return Err(Exceeded::Event(self.max_event_len));
                }
                self.event_type.clear();
                self.event_type.push_str(&value);
            }
            // An id holding NUL is ignored as a whole, not truncated.
            Field::Id if !value.contains(&0) => {
                self.id_buffer.clear();
                self.id_buffer.push_str(&utf8_lossy(value));
            }
            Field::Retry => {
                if let Some(millis) = parse_retry(value) {
                    self.reconnection_time = Some(Duration::from_millis(millis));
                }
            }
            _ => {}
        }
        Ok(None)
    }

    fn dispatch(&mut self) -> Option<MessageEvent> {
        self.last_event_id.clone_from(&self.id_buffer);
        if self.data.is_empty() {
            self.event_type.clear();
            return None;
        }
        let mut data = mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        let event_type = if self.event_type.is_empty() {
            String::from("message")
        } else {
            mem::take(&mut self.event_type)
        };
        Some(MessageEvent {
            event_type,
            data,
            last_event_id: self.last_event_id.clone(),
        })
    }
}

/// A line of the stream, as the "interpreting" rules see it.
enum Line<'a> {
    Empty,
    Comment,
    /// The field and its value (everything after the first colon, its
    /// leading space still there).
    Field(Field, &'a [u8]),
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

fn split_field(line: &[u8]) -> Line<'_> {
    if line.is_empty() {
        return Line::Empty;
    }
    // The usual lines, without searching for the colon: a line that starts
    // with `data:` has its first colon right there.
    if let Some(value) = line.strip_prefix(b"data:") {
        return Line::Field(Field::Data, value);
    }
    if let Some(value) = line.strip_prefix(b"id:") {
        return Line::Field(Field::Id, value);
    }
    if let Some(value) = line.strip_prefix(b"event:") {
        return Line::Field(Field::Event, value);
    }
    let (name, value) = match memchr(b':', line) {
        None => (line, &b""[..]),
        Some(0) => return Line::Comment,
        Some(colon) => (
            line.get(..colon).unwrap_or_default(),
            line.get(colon + 1..).unwrap_or_default(),
        ),
    };
    let field = match name {
        b"data" => Field::Data,
        b"event" => Field::Event,
        b"id" => Field::Id,
        b"retry" => Field::Retry,
        _ => Field::Unknown,
    };
    Line::Field(field, value)
}

/// Decodes UTF-8, replacing invalid bytes with U+FFFD. Valid input (the
/// usual case) takes the standard library's fast validation and is borrowed;
/// only invalid input takes the slower replacing path.
fn utf8_lossy(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
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
    pub struct DecodeStream<B> {
        #[pin]
        body: B,
        decoder: Decoder,
        state: State,
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
        Self {
            body,
            decoder,
            state: State::Reading,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_line_in_many_chunks_is_scanned_once() {
        let mut decoder = Decoder::new();
        decoder.push(b"data: ");
        for _ in 0..100 {
            decoder.push(b"xxxxxxxxxx");
            assert_eq!(decoder.next_event().ok(), Some(None));
            assert_eq!(decoder.lines.scanned, decoder.lines.buf.len());
        }
        decoder.push(b"\n\n");
        let event = decoder.next_event().ok().flatten();
        assert_eq!(event.map(|event| event.data.len()), Some(1000));
    }

    #[test]
    fn consumed_lines_are_released_on_push() {
        let mut decoder = Decoder::new();
        decoder.push(b"data: a\n\n");
        assert!(decoder.next_event().ok().flatten().is_some());
        decoder.push(b"x");
        assert_eq!(decoder.lines.buf, b"x");
    }

    #[test]
    fn line_end_search_finds_the_first_cr_or_lf_anywhere() {
        // Bytes that differ from CR and LF in one bit only, or by the high
        // bit, must not be taken for them.
        let filler = [b'x', 0x8a, 0x8d, 0x0b, 0x0c, 0x09, 0x2a, 0x00, 0xff];
        for len in 0..80 {
            for &fill in &filler {
                let mut bytes = vec![fill; len];
                assert_eq!(find_line_end(&bytes), None, "{len} x {fill:#x}");
                for at in 0..len {
                    for end in [b'\r', b'\n'] {
                        bytes[at] = end;
                        assert_eq!(
                            find_line_end(&bytes),
                            Some(at),
                            "{len} x {fill:#x}, {end} at {at}"
                        );
                        bytes[at] = fill;
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
