//! Events and their encoding into the `text/event-stream` wire format.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{BoxError, EventError, EventErrorKind, Fault};

/// One server-sent event: optional id, event type and retry, data and comments.
///
/// `Event` is a builder. Every setter takes and returns `self`, so an event is
/// written as one expression. An event holds its values as they were given
/// (data is moved in, not copied; short ids and types are kept inline) and is
/// written out once: by [`encode`](Event::encode) into a buffer of its own, or
/// by a response body straight into the frame it shares with other ready
/// events.
///
/// Data is carried losslessly: every line break in it (CRLF, lone CR or lone LF)
/// becomes its own `data:` line, so a client receives exactly the string that was
/// set, except that each line break arrives as one LF. An empty string is still
/// dispatched, and leading spaces survive.
///
/// The id and the event type cannot hold a line break, and the id cannot hold
/// NUL; such a value is not written, and the error is carried to
/// [`encode`](Event::encode), which returns it. An event that holds an error never
/// produces bytes. This is the pattern of `http`'s request builder: a chain of
/// setters that cannot fail, and one place to handle the first error.
///
/// # Example
///
/// ```
/// use tower_sse::Event;
///
/// let event = Event::new()
///     .id(42)
///     .event("update")
///     .data("first line\nsecond line")
///     .encode()?;
///
/// assert_eq!(
///     event.as_bytes(),
///     "id: 42\nevent: update\ndata: first line\ndata: second line\n\n".as_bytes(),
/// );
/// # Ok::<(), tower_sse::EventError>(())
/// ```
///
/// Untrusted values get a typed error instead of broken framing:
///
/// ```
/// use tower_sse::Event;
///
/// let from_client = "abc\nevent: injected";
/// let error = Event::new().id(from_client).data("x").encode().unwrap_err();
/// assert!(error.is_invalid_id());
/// ```
#[derive(Clone, Default)]
pub struct Event {
    id: Option<Field>,
    event_type: Option<Field>,
    /// The first data value; the usual event has exactly one.
    data: Option<Text>,
    /// What most events do not have, kept out of line so that an event stays
    /// small to move.
    extras: Option<Box<Extras>>,
}

#[derive(Clone, Default)]
struct Extras {
    comments: Vec<Text>,
    retry: Option<u64>,
    /// Data values after the first.
    more_data: Vec<Text>,
    error: Option<EventError>,
}

/// A string an event holds, as the application held it.
type Text = Data;

/// Text for an event's data or comment, held as the application holds it:
/// never copied on the way in, and copied once on the way out, into the
/// response (or, for a large value, not at all: see
/// [`SseBody`](crate::SseBody)).
///
/// [`Event::data`] takes anything that converts into `Data`:
///
/// | you hold | conversion | cost |
/// | --- | --- | --- |
/// | `&'static str` | `From` | none |
/// | `String`, `Box<str>`, `Cow<'static, str>` | `From` | none (moved in) |
/// | `Arc<str>`, `&Arc<str>` (one message shared by many events) | `From` | a reference count |
/// | `Bytes` known to be UTF-8 (a message read from a bus or a socket) | `TryFrom`, checked | one validation pass |
/// | `Bytes` you know is text | [`Data::from_text_bytes`], not checked | none |
/// | `&String`, a borrowed `&str` | `From<&String>`, [`Data::copied`] | one copy |
///
/// ```
/// use std::sync::Arc;
///
/// use bytes::Bytes;
/// use tower_sse::{Data, Event};
///
/// let shared: Arc<str> = Arc::from(r#"{"price":101.5}"#);
/// let from_bus = Bytes::from_static(b"hello");
/// let borrowed: &str = &String::from("borrowed");
///
/// let events = [
///     Event::new().data("static"),
///     Event::new().data(String::from("owned")),
///     Event::new().data(&shared),
///     Event::new().data(Data::try_from(from_bus)?),
///     Event::new().data(Data::copied(borrowed)),
/// ];
/// # assert_eq!(events.len(), 5);
/// # Ok::<(), std::str::Utf8Error>(())
/// ```
#[derive(Clone)]
pub struct Data(Repr);

#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Owned(String),
    Shared(Arc<str>),
    /// UTF-8 (checked) or known to be text by the application.
    Bytes(Bytes),
}

impl Data {
    /// Takes `bytes` as text without checking that they are UTF-8: for bytes
    /// the application knows are text (it wrote them itself, say), to skip
    /// the validation pass of `Data::try_from`. Nothing unsafe happens if
    /// they are not: a client then decodes each invalid sequence as U+FFFD,
    /// as a browser does.
    pub fn from_text_bytes(bytes: Bytes) -> Self {
        Self(Repr::Bytes(bytes))
    }

    /// Copies a borrowed string, for data that lives no longer than the
    /// caller (an event is `'static`, so that it can wait in a stream).
    pub fn copied(text: &str) -> Self {
        Self(Repr::Owned(text.to_owned()))
    }

    /// The text's length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Static(text) => text.as_bytes(),
            Repr::Owned(text) => text.as_bytes(),
            Repr::Shared(text) => text.as_bytes(),
            Repr::Bytes(bytes) => bytes,
        }
    }

    /// The text as shared bytes, without copying it.
    fn into_bytes(self) -> Bytes {
        match self.0 {
            Repr::Static(text) => Bytes::from_static(text.as_bytes()),
            Repr::Owned(text) => Bytes::from(text),
            Repr::Shared(text) => Bytes::from_owner(SharedText(text)),
            Repr::Bytes(bytes) => bytes,
        }
    }
}

/// An `Arc<str>` as the owner of a `Bytes`.
struct SharedText(Arc<str>);

impl AsRef<[u8]> for SharedText {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl From<&'static str> for Data {
    #[inline]
    fn from(text: &'static str) -> Self {
        Self(Repr::Static(text))
    }
}

impl From<String> for Data {
    #[inline]
    fn from(text: String) -> Self {
        Self(Repr::Owned(text))
    }
}

impl From<&String> for Data {
    /// Copies the string.
    #[inline]
    fn from(text: &String) -> Self {
        Self::copied(text)
    }
}

impl From<Box<str>> for Data {
    #[inline]
    fn from(text: Box<str>) -> Self {
        Self(Repr::Owned(text.into_string()))
    }
}

impl From<Cow<'static, str>> for Data {
    #[inline]
    fn from(text: Cow<'static, str>) -> Self {
        match text {
            Cow::Borrowed(text) => Self(Repr::Static(text)),
            Cow::Owned(text) => Self(Repr::Owned(text)),
        }
    }
}

impl From<Arc<str>> for Data {
    #[inline]
    fn from(text: Arc<str>) -> Self {
        Self(Repr::Shared(text))
    }
}

impl From<&Arc<str>> for Data {
    #[inline]
    fn from(text: &Arc<str>) -> Self {
        Self(Repr::Shared(Arc::clone(text)))
    }
}

impl TryFrom<Bytes> for Data {
    type Error = std::str::Utf8Error;

    /// Takes `bytes` as text once they are checked to be UTF-8.
    fn try_from(bytes: Bytes) -> Result<Self, Self::Error> {
        std::str::from_utf8(&bytes)?;
        Ok(Self(Repr::Bytes(bytes)))
    }
}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&String::from_utf8_lossy(self.as_bytes()), f)
    }
}

const ID: &[u8] = b"id: ";
const EVENT: &[u8] = b"event: ";
const RETRY: &[u8] = b"retry: ";
const DATA: &[u8] = b"data: ";
const COMMENT: &[u8] = b": ";

impl Event {
    /// An empty event. Encoded as it is, it is a lone blank line, which a client
    /// ignores.
    #[must_use]
    #[inline]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the event's id, which the client sends back as `Last-Event-ID` when
    /// it reconnects.
    ///
    /// Integers and strings work (see [`IntoId`]); for any other
    /// [`Display`](fmt::Display) value, such as a UUID, pass
    /// `format_args!("{uuid}")`.
    ///
    /// An id is accepted exactly when the client can send it back as a valid
    /// [`LastEventId`](crate::LastEventId): at most
    /// [`LastEventId::MAX_LEN`](crate::LastEventId::MAX_LEN) bytes, no control
    /// character (C0 such as tab, DEL, C1), no space at either end. Anything
    /// else is an error, returned by [`encode`](Event::encode), that says
    /// which character and where. An empty id is accepted too: it resets the
    /// client's last event id, so its next reconnection sends no
    /// `Last-Event-ID` (absent, as [`LastEventIdHeader`](crate::LastEventIdHeader)
    /// says). Ids are best kept short and ASCII: across origins, browsers send
    /// a `Last-Event-ID` longer than 128 bytes, or with other bytes, only
    /// after a CORS preflight. Setting the id again replaces it.
    #[must_use]
    // Always inlined, like every hot setter: the work is done in place by a
    // method on `&mut self`, so that a chain of setters never moves the event.
    #[inline(always)]
    pub fn id(mut self, id: impl IntoId) -> Self {
        self.set_id(id);
        self
    }

    /// Sets the event type, which a browser dispatches to listeners added with
    /// `addEventListener(type, ..)`; without it the event is a `message`.
    ///
    /// A value holding CR or LF is an error, returned by
    /// [`encode`](Event::encode). Setting the type again replaces it.
    #[must_use]
    #[inline(always)]
    pub fn event(mut self, event_type: impl AsRef<str>) -> Self {
        self.set_event_type(event_type.as_ref().as_bytes());
        self
    }

    /// Sets the client's reconnection time, written in whole milliseconds.
    #[must_use]
    #[inline]
    pub fn retry(mut self, retry: Duration) -> Self {
        self.extras_mut().retry = Some(u64::try_from(retry.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Sets the event's data.
    ///
    /// Takes the data as the application holds it ([`Data`]): a `&'static
    /// str`, a `String`, a shared `Arc<str>` or UTF-8 `Bytes`, without a
    /// copy; the data is copied once, when the event is encoded into the
    /// response, and not at all when it is large enough to go out as its own
    /// piece of the response. A borrowed `&str` is copied with
    /// [`Data::copied`].
    ///
    /// Each line of `data` is written as its own `data:` line; the client joins
    /// them with LF. Calling `data` again appends: the client receives the two
    /// values joined by one LF.
    #[must_use]
    #[inline(always)]
    pub fn data(mut self, data: impl Into<Data>) -> Self {
        self.push_data(data.into());
        self
    }

    /// Adds a comment, which clients ignore; a multi-line comment is written as
    /// one `:` line per line. Comments are written first in the block.
    #[must_use]
    pub fn comment(mut self, comment: impl Into<Data>) -> Self {
        self.extras_mut().comments.push(comment.into());
        self
    }

    /// Sets the event's data to `value` serialized as JSON; the serialized
    /// string becomes the event's data without a further copy.
    ///
    /// A serialization error is returned by [`encode`](Event::encode).
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    #[must_use]
    pub fn json_data<T: serde::Serialize + ?Sized>(mut self, value: &T) -> Self {
        match serde_json::to_string(value) {
            Ok(json) => self.push_data(Data::from(json)),
            Err(error) => self.set_error(EventErrorKind::Json(std::sync::Arc::new(error))),
        }
        self
    }

    /// Whether an id has been set.
    #[cfg_attr(not(feature = "hub"), allow(dead_code))]
    #[inline]
    pub(crate) fn has_id(&self) -> bool {
        self.id.is_some()
    }

    /// The first error this event was given, if any.
    pub fn error(&self) -> Option<&EventError> {
        self.extras.as_ref()?.error.as_ref()
    }

    /// Encodes the event, ending it with the blank line that makes a client
    /// dispatch it: exactly one allocation, of exactly the encoded size.
    ///
    /// The result is a cheap handle: clone it to send the same bytes to many
    /// connections without encoding again.
    ///
    /// # Errors
    ///
    /// The first invalid value given to the event: an id with CR, LF or NUL, an
    /// event type with CR or LF, or JSON data that failed to serialize.
    pub fn encode(mut self) -> Result<EncodedEvent, EventError> {
        if let Some(error) = self.take_error() {
            return Err(error);
        }
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        self.write_to(&mut buf);
        Ok(EncodedEvent(buf.freeze()))
    }

    /// Appends the encoded event to `buf`, which may already hold other
    /// events: what a body does to join ready events into one frame.
    ///
    /// # Errors
    ///
    /// As [`encode`](Event::encode); nothing is written then.
    #[inline]
    pub fn encode_into(self, buf: &mut BytesMut) -> Result<(), EventError> {
        if self.extras.is_none() {
            self.write_plain(buf);
            return Ok(());
        }
        self.encode_extras_into(buf)
    }

    /// [`encode_into`](Event::encode_into) for an event with comments, a
    /// retry, more than one data value or an error.
    fn encode_extras_into(mut self, buf: &mut BytesMut) -> Result<(), EventError> {
        if let Some(error) = self.take_error() {
            return Err(error);
        }
        buf.reserve(self.plain_len_estimate() + 32);
        self.write_to(buf);
        Ok(())
    }

    /// Like [`encode_into`](Event::encode_into), but when the event is an id,
    /// a type and one line of data of at least `min_piece` bytes, writes only
    /// what comes before the data and hands the data back as shared bytes,
    /// without copying it: the caller sends it, then the event's end.
    pub(crate) fn encode_split(
        mut self,
        buf: &mut BytesMut,
        min_piece: usize,
    ) -> Result<Option<Bytes>, EventError> {
        let large = self.extras.is_none()
            && self.data.as_ref().is_some_and(|data| {
                data.len() >= min_piece && !may_hold_line_break(data.as_bytes())
            });
        if !large {
            self.encode_into(buf)?;
            return Ok(None);
        }
        let head = |prefix: &[u8], field: Option<&Field>| {
            field.map_or(0, |field| prefix.len() + field.as_bytes().len() + 1)
        };
        buf.reserve(
            head(ID, self.id.as_ref()) + head(EVENT, self.event_type.as_ref()) + DATA.len(),
        );
        if let Some(id) = &self.id {
            put_line(buf, ID, id.as_bytes());
        }
        if let Some(event_type) = &self.event_type {
            put_line(buf, EVENT, event_type.as_bytes());
        }
        buf.put_slice(DATA);
        Ok(self.data.take().map(Data::into_bytes))
    }

    /// Writes an event that has at most an id, a type and one data value:
    /// nearly every event. When the data has no byte below 14 (so certainly
    /// no line break), the size is known up front and the event is written
    /// with one reservation; other data takes the general, line-splitting
    /// path.
    #[inline]
    fn write_plain(&self, buf: &mut BytesMut) {
        let data = self.data.as_ref().map(Data::as_bytes);
        if data.is_some_and(may_hold_line_break) {
            buf.reserve(self.plain_len_estimate() + 32);
            self.write_to(buf);
            return;
        }
        let id = self.id.as_ref().map(Field::as_bytes);
        let event_type = self.event_type.as_ref().map(Field::as_bytes);
        let line_len = |prefix: &[u8], value: Option<&[u8]>| {
            value.map_or(0, |value| prefix.len() + value.len() + 1)
        };
        buf.reserve(line_len(ID, id) + line_len(EVENT, event_type) + line_len(DATA, data) + 1);
        if let Some(id) = id {
            buf.put_slice(ID);
            buf.put_slice(id);
            buf.put_u8(b'\n');
        }
        if let Some(event_type) = event_type {
            buf.put_slice(EVENT);
            buf.put_slice(event_type);
            buf.put_u8(b'\n');
        }
        match data {
            Some(data) => {
                buf.put_slice(DATA);
                buf.put_slice(data);
                buf.put_slice(b"\n\n");
            }
            None => buf.put_u8(b'\n'),
        }
    }

    /// The encoded size of the id, the type and the first data value as if
    /// it were one line: what one reservation covers before writing.
    /// Room enough for the encoded event in nearly every case, found
    /// without scanning the data: exact, give or take the field labels, for
    /// an event with at most an id, a type and one line of data.
    #[cfg_attr(not(feature = "hub"), allow(dead_code))]
    pub(crate) fn len_hint(&self) -> usize {
        if self.extras.is_none() {
            self.plain_len_estimate() + 32
        } else {
            self.encoded_len()
        }
    }

    fn plain_len_estimate(&self) -> usize {
        let field_len = |field: &Option<Field>| field.as_ref().map_or(0, |f| f.as_bytes().len());
        field_len(&self.id)
            + field_len(&self.event_type)
            + self.data.as_ref().map_or(0, |data| data.len())
    }

    #[inline]
    fn set_id(&mut self, id: impl IntoId) {
        let field = match id.as_integer() {
            Some((magnitude, negative)) => Ok(Field::integer(magnitude, negative)),
            None => id.visit_bytes(Field::checked_id),
        };
        match field {
            Ok(field) => self.id = Some(field),
            Err(fault) => self.set_error(EventErrorKind::InvalidId(fault)),
        }
    }

    #[inline]
    fn set_event_type(&mut self, event_type: &[u8]) {
        match Field::checked_event_type(event_type) {
            Ok(field) => self.event_type = Some(field),
            Err(fault) => self.set_error(EventErrorKind::InvalidEventType(fault)),
        }
    }

    #[cold]
    fn set_error(&mut self, kind: EventErrorKind) {
        let extras = self.extras_mut();
        if extras.error.is_none() {
            extras.error = Some(EventError::new(kind));
        }
    }

    #[inline]
    fn take_error(&mut self) -> Option<EventError> {
        self.extras.as_mut()?.error.take()
    }

    fn extras_mut(&mut self) -> &mut Extras {
        self.extras.get_or_insert_with(Box::default)
    }

    #[inline]
    fn push_data(&mut self, data: Text) {
        if self.data.is_none() {
            self.data = Some(data);
        } else {
            self.extras_mut().more_data.push(data);
        }
    }

    /// Every data value, in order.
    fn data_values(&self) -> impl Iterator<Item = &Text> {
        let more = self
            .extras
            .as_deref()
            .map_or(&[][..], |extras| &extras.more_data);
        self.data.iter().chain(more)
    }

    fn comments(&self) -> &[Text] {
        self.extras
            .as_deref()
            .map_or(&[], |extras| &extras.comments)
    }

    fn retry_millis(&self) -> Option<u64> {
        self.extras.as_deref()?.retry
    }

    #[inline]
    fn write_to(&self, buf: &mut BytesMut) {
        for comment in self.comments() {
            if comment.is_empty() {
                buf.put_slice(b":\n");
            } else {
                put_lines(buf, COMMENT, comment.as_bytes());
            }
        }
        if let Some(id) = &self.id {
            put_line(buf, ID, id.as_bytes());
        }
        if let Some(event_type) = &self.event_type {
            put_line(buf, EVENT, event_type.as_bytes());
        }
        if let Some(retry) = self.retry_millis() {
            put_line(buf, RETRY, itoa::Buffer::new().format(retry).as_bytes());
        }
        for data in self.data_values() {
            put_lines(buf, DATA, data.as_bytes());
        }
        buf.put_u8(b'\n');
    }

    /// The exact length of the encoded event.
    fn encoded_len(&self) -> usize {
        let mut len = 1;
        for comment in self.comments() {
            len += if comment.is_empty() {
                2
            } else {
                lines_len(COMMENT, comment.as_bytes())
            };
        }
        if let Some(id) = &self.id {
            len += ID.len() + id.as_bytes().len() + 1;
        }
        if let Some(event_type) = &self.event_type {
            len += EVENT.len() + event_type.as_bytes().len() + 1;
        }
        if let Some(retry) = self.retry_millis() {
            len += RETRY.len() + itoa::Buffer::new().format(retry).len() + 1;
        }
        for data in self.data_values() {
            len += lines_len(DATA, data.as_bytes());
        }
        len
    }
}

#[inline]
fn put_line(buf: &mut BytesMut, prefix: &[u8], value: &[u8]) {
    buf.reserve(prefix.len() + value.len() + 1);
    buf.put_slice(prefix);
    buf.put_slice(value);
    buf.put_u8(b'\n');
}

/// Splits `value` on CRLF, lone CR and lone LF and yields each line, trailing
/// empty line included.
fn for_each_line(value: &[u8], mut line: impl FnMut(&[u8])) {
    let mut rest = value;
    while let Some(at) = find_line_break(rest) {
        line(&rest[..at]);
        let skip = if rest[at] == b'\r' && rest.get(at + 1) == Some(&b'\n') {
            2
        } else {
            1
        };
        rest = &rest[at + skip..];
    }
    line(rest);
}

/// The position of the first CR or LF. Short values are searched with a plain
/// loop, which beats setting up a vectorized search.
#[inline]
fn find_line_break(value: &[u8]) -> Option<usize> {
    if value.len() < 32 {
        value.iter().position(|&b| b == b'\r' || b == b'\n')
    } else {
        memchr::memchr2(b'\r', b'\n', value)
    }
}

/// `value` (1 to 16 bytes) as a big-endian number, when every byte is
/// plain; `None` otherwise, and for other lengths.
///
/// For an event type (`ID` false) a plain byte is one of 14 and above (CR
/// and LF are below). For an id (`ID` true) it is printable ASCII (0x20 to
/// 0x7E: no control character, nothing that may start one), and a space at
/// either end is not plain either: the precise check,
/// [`id_fault`](crate::last_event_id::id_fault), takes everything else.
#[inline]
fn pack_plain<const ID: bool>(value: &[u8]) -> Option<u128> {
    let not_plain = |word: u64| {
        if ID {
            has_byte_below(word, 0x20) | has_byte_from_7f(word)
        } else {
            has_byte_below(word, 14)
        }
    };
    // `&&` short-circuits, so a value that is not plain skips this.
    let plain_ends = || !ID || (value.first() != Some(&b' ') && value.last() != Some(&b' '));
    let len = value.len();
    if len >= 8 {
        let first = u64::from_be_bytes(*value.first_chunk::<8>()?);
        let last = u64::from_be_bytes(*value.last_chunk::<8>()?);
        let low = not_plain(first) | not_plain(last);
        // The two words overlap on equal bytes.
        (!low && len <= PACKED && plain_ends())
            .then(|| u128::from(first) << (8 * (len - 8)) | u128::from(last))
    } else if len >= 4 {
        let first = u32::from_be_bytes(*value.first_chunk::<4>()?);
        let last = u32::from_be_bytes(*value.last_chunk::<4>()?);
        // One word of both halves: every byte of the value is in it.
        let low = not_plain(u64::from(first) << 32 | u64::from(last));
        (!low && plain_ends()).then(|| u128::from(first) << (8 * (len - 4)) | u128::from(last))
    } else if len > 0 {
        let mut packed = 0u128;
        for &byte in value {
            let plain = if ID {
                (0x20..0x7f).contains(&byte)
            } else {
                byte > b'\r'
            };
            if !plain {
                return None;
            }
            packed = packed << 8 | u128::from(byte);
        }
        plain_ends().then_some(packed)
    } else {
        None
    }
}

/// Whether any byte of `word` is below `n` (the classic test, exact for `n`
/// up to 128).
#[inline]
fn has_byte_below(word: u64, n: u64) -> bool {
    const ONES: u64 = u64::MAX / 255;
    word.wrapping_sub(ONES * n) & !word & (ONES * 128) != 0
}

/// Whether any byte of `word` is 0x7F or above: its high bit is set, or its
/// low seven bits are all ones (adding one to them then sets the high bit,
/// and never carries into the next byte).
#[inline]
fn has_byte_from_7f(word: u64) -> bool {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES * 128;
    (word | ((word & !HIGH) + ONES)) & HIGH != 0
}

/// Whether `value` may hold CR or LF: `false` proves it holds neither.
///
/// Both are below 14, so this looks for any byte below 14, in blocks that
/// the compiler turns into vector comparisons. A `true` can be a false alarm
/// (a tab or another control byte); the caller then takes the general path,
/// which finds the real line breaks itself.
#[inline]
fn may_hold_line_break(value: &[u8]) -> bool {
    const BLOCK: usize = 128;
    let low = |block: &[u8]| block.iter().fold(false, |low, &byte| low | (byte <= b'\r'));
    let mut blocks = value.chunks_exact(BLOCK);
    blocks.any(low) || low(blocks.remainder())
}

/// Writes `value` as one `prefix` line per line.
#[inline]
fn put_lines(buf: &mut BytesMut, prefix: &[u8], value: &[u8]) {
    // Enough for a value without line breaks; more lines grow the buffer.
    buf.reserve(prefix.len() + value.len() + 1);
    for_each_line(value, |line| {
        buf.put_slice(prefix);
        buf.put_slice(line);
        buf.put_u8(b'\n');
    });
}

fn lines_len(prefix: &[u8], value: &[u8]) -> usize {
    let mut len = 0;
    for_each_line(value, |line| len += prefix.len() + line.len() + 1);
    len
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = |field: &Option<Field>| {
            field
                .as_ref()
                .map(|field| String::from_utf8_lossy(field.as_bytes()).into_owned())
        };
        f.debug_struct("Event")
            .field("comments", &self.comments())
            .field("id", &field(&self.id))
            .field("event_type", &field(&self.event_type))
            .field("retry", &self.retry_millis())
            .field("data", &self.data_values().collect::<Vec<_>>())
            .field("error", &self.error())
            .finish()
    }
}

/// A short string kept inline, so that typical ids and event types cost no
/// allocation.
///
/// Inline values are right-aligned, so that a value of up to 16 bytes (a
/// short id or type, or an integer id of up to 15 digits assembled from its
/// last digit up) is held in a `u128` and put in place with one 16-byte
/// store.
#[derive(Clone)]
enum Field {
    /// The value is `bytes[start..]`.
    Inline {
        start: u8,
        bytes: [u8; INLINE],
    },
    Heap(Box<[u8]>),
}

/// Inline room: with the start and the tag, a `Field` is 24 bytes.
const INLINE: usize = 22;

/// Values up to this long are held in a `u128` on their way into a field.
const PACKED: usize = 16;

/// The start of an inline value of `len` bytes (`len <= INLINE`).
#[inline]
fn inline_start(len: usize) -> u8 {
    u8::try_from(INLINE.saturating_sub(len)).unwrap_or(0)
}

impl Field {
    #[inline]
    fn new() -> Self {
        Field::Inline {
            start: inline_start(0),
            bytes: [0; INLINE],
        }
    }

    /// An inline field holding the low `len` bytes of `packed`, most
    /// significant first (`len <= PACKED`).
    #[inline]
    fn packed(packed: u128, len: usize) -> Self {
        let mut bytes = [0; INLINE];
        bytes[INLINE - PACKED..].copy_from_slice(&packed.to_be_bytes());
        Field::Inline {
            start: inline_start(len),
            bytes,
        }
    }

    /// A field holding the id `value`, or what is wrong with it (see
    /// [`id_fault`](crate::last_event_id::id_fault): the id must come back
    /// as a valid `Last-Event-ID`).
    #[inline]
    fn checked_id(value: &[u8]) -> Result<Self, Fault> {
        // The usual id: at most 16 bytes of printable ASCII. It is loaded with
        // two overlapping word loads, checked a word at a time and stored with
        // one 16-byte store.
        if let Some(packed) = pack_plain::<true>(value) {
            return Ok(Self::packed(packed, value.len()));
        }
        Self::checked_id_rare(value)
    }

    /// [`checked_id`](Field::checked_id) for an empty or long id, or one
    /// with a byte outside printable ASCII or a space at either end.
    #[cold]
    #[inline(never)]
    fn checked_id_rare(value: &[u8]) -> Result<Self, Fault> {
        match crate::last_event_id::id_fault(value) {
            Some(fault) => Err(fault),
            None => Ok(Self::unchecked(value)),
        }
    }

    /// A field holding the event type `value`, or where its first CR or LF
    /// is.
    #[inline]
    fn checked_event_type(value: &[u8]) -> Result<Self, Fault> {
        // The usual type: at most 16 bytes, none below 14 (CR and LF are).
        if let Some(packed) = pack_plain::<false>(value) {
            return Ok(Self::packed(packed, value.len()));
        }
        Self::checked_event_type_rare(value)
    }

    /// [`checked_event_type`](Field::checked_event_type) for a long type or
    /// one with a control byte.
    #[cold]
    #[inline(never)]
    fn checked_event_type_rare(value: &[u8]) -> Result<Self, Fault> {
        match memchr::memchr2(b'\r', b'\n', value) {
            Some(at) => Err(Fault::Char {
                at,
                ch: char::from(value[at]),
            }),
            None => Ok(Self::unchecked(value)),
        }
    }

    fn unchecked(value: &[u8]) -> Self {
        if value.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[INLINE - value.len()..].copy_from_slice(value);
            return Field::Inline {
                start: inline_start(value.len()),
                bytes,
            };
        }
        Field::Heap(value.into())
    }

    /// The decimal form of an integer: its magnitude, with a `-` in front
    /// when `negative`.
    #[inline]
    fn integer(mut magnitude: u64, negative: bool) -> Self {
        // Up to 15 digits and the sign fit in a `u128`, built from the last
        // digit up.
        if magnitude < 1_000_000_000_000_000 {
            let mut packed = 0u128;
            let mut len = 0;
            loop {
                // A digit: `magnitude % 10` is below 10.
                let digit = b'0' + u8::try_from(magnitude % 10).unwrap_or(0);
                packed |= u128::from(digit) << (8 * len);
                len += 1;
                magnitude /= 10;
                if magnitude == 0 {
                    break;
                }
            }
            if negative {
                packed |= u128::from(b'-') << (8 * len);
                len += 1;
            }
            return Self::packed(packed, len);
        }
        let mut field = Field::new();
        if negative {
            field.push(b"-");
        }
        field.push(itoa::Buffer::new().format(magnitude).as_bytes());
        field
    }

    #[inline]
    fn as_bytes(&self) -> &[u8] {
        match self {
            Field::Inline { start, bytes } => bytes.get(usize::from(*start)..).unwrap_or_default(),
            Field::Heap(vec) => vec,
        }
    }

    fn push(&mut self, more: &[u8]) {
        match self {
            Field::Inline { start, bytes } => {
                let old = usize::from(*start).min(INLINE);
                match old.checked_sub(more.len()) {
                    Some(new) => {
                        bytes.copy_within(old.., new);
                        bytes[INLINE - more.len()..].copy_from_slice(more);
                        *start = inline_start(INLINE - new);
                    }
                    None => {
                        let mut vec = Vec::with_capacity(INLINE - old + more.len());
                        vec.extend_from_slice(&bytes[old..]);
                        vec.extend_from_slice(more);
                        *self = Field::Heap(vec.into_boxed_slice());
                    }
                }
            }
            Field::Heap(boxed) => {
                let mut vec = std::mem::take(boxed).into_vec();
                vec.extend_from_slice(more);
                *boxed = vec.into_boxed_slice();
            }
        }
    }
}

impl fmt::Write for Field {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

/// An event already encoded into its wire form: a cheap, clonable handle to
/// shared bytes.
///
/// Made by [`Event::encode`]. Sending one `EncodedEvent` to many connections
/// clones a reference-counted handle; the event is never encoded again.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EncodedEvent(Bytes);

impl EncodedEvent {
    /// Wraps bytes that already hold exactly one complete, valid event block.
    #[cfg_attr(not(feature = "hub"), allow(dead_code))]
    #[inline]
    pub(crate) fn from_bytes(bytes: Bytes) -> Self {
        Self(bytes)
    }

    /// The encoded bytes: one complete event block, ending in a blank line.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The encoded bytes as a shared [`Bytes`] handle.
    #[inline]
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// The length of the encoded block in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always `false`: an encoded event holds at least its closing blank line.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for EncodedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("EncodedEvent")
            .field(&String::from_utf8_lossy(&self.0))
            .finish()
    }
}

impl From<EncodedEvent> for Bytes {
    fn from(event: EncodedEvent) -> Self {
        event.0
    }
}

impl TryFrom<Event> for EncodedEvent {
    type Error = EventError;

    fn try_from(event: Event) -> Result<Self, Self::Error> {
        event.encode()
    }
}

/// A value that can be an event id: an integer or a string.
///
/// Implemented for every primitive integer, `str`, `String`, `Cow<str>`,
/// `Box<str>`, `Arc<str>`, [`LastEventId`](crate::LastEventId),
/// `fmt::Arguments` (for any other `Display` value:
/// `event.id(format_args!("{uuid}"))`), and references to these. Integers
/// are written without going through `fmt`.
///
/// ```
/// use tower_sse::Event;
///
/// let by_number = Event::new().id(42u64).encode()?;
/// let by_string = Event::new().id("42").encode()?;
/// let by_display = Event::new().id(format_args!("{}", 42.0)).encode()?;
/// assert_eq!(by_number, by_string);
/// assert_eq!(by_display.as_bytes(), b"id: 42\n\n");
/// # Ok::<(), tower_sse::EventError>(())
/// ```
pub trait IntoId: sealed::Sealed {
    /// Calls `f` with the id's UTF-8 bytes.
    #[doc(hidden)]
    fn visit_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R;

    /// The id as an integer that fits a `u64` in magnitude, if it is one:
    /// the magnitude and whether it is negative.
    #[doc(hidden)]
    fn as_integer(&self) -> Option<(u64, bool)> {
        None
    }
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! integer_ids {
    (@impl $int:ty, |$n:ident| $integer:expr) => {
        impl sealed::Sealed for $int {}
        impl IntoId for $int {
            fn visit_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
                f(itoa::Buffer::new().format(*self).as_bytes())
            }

            #[inline]
            fn as_integer(&self) -> Option<(u64, bool)> {
                let $n = *self;
                $integer
            }
        }
    };
    (unsigned: $($int:ty),*) => {$(
        integer_ids!(@impl $int, |n| Some((u64::try_from(n).ok()?, false)));
    )*};
    (signed: $($int:ty),*) => {$(
        integer_ids!(@impl $int, |n| Some((u64::try_from(n.unsigned_abs()).ok()?, n < 0)));
    )*};
}

integer_ids!(unsigned: u8, u16, u32, u64, u128, usize);
integer_ids!(signed: i8, i16, i32, i64, i128, isize);

macro_rules! string_ids {
    ($($string:ty),*) => {$(
        impl sealed::Sealed for $string {}
        impl IntoId for $string {
            #[inline]
            fn visit_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
                f(AsRef::<str>::as_ref(self).as_bytes())
            }
        }
    )*};
}

string_ids!(
    str,
    String,
    Cow<'_, str>,
    Box<str>,
    std::sync::Arc<str>,
    std::rc::Rc<str>,
    crate::LastEventId
);

impl sealed::Sealed for fmt::Arguments<'_> {}
impl IntoId for fmt::Arguments<'_> {
    fn visit_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        let mut field = Field::new();
        // Writing into a `Field` cannot fail; a `Display` impl that reports an
        // error leaves a partial value, which is validated like any other.
        let _ = field.write_fmt(*self);
        f(field.as_bytes())
    }
}

#[cfg(feature = "hub")]
impl sealed::Sealed for crate::hub::EventId {}
#[cfg(feature = "hub")]
impl IntoId for crate::hub::EventId {
    fn visit_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        format_args!("{self}").visit_bytes(f)
    }
}

impl<T: sealed::Sealed + ?Sized> sealed::Sealed for &T {}
impl<T: IntoId + ?Sized> IntoId for &T {
    #[inline]
    fn visit_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        (**self).visit_bytes(f)
    }

    #[inline]
    fn as_integer(&self) -> Option<(u64, bool)> {
        (**self).as_integer()
    }
}

/// An item of an event stream that can be served: an [`Event`], an
/// [`EncodedEvent`], or a `Result` of either.
///
/// An `Err` item, or an event holding an [`EventError`], is a stream error:
/// what it does is set by the error policy (by default the response ends
/// cleanly and the client reconnects). Implement this trait for your own
/// message type to serve a stream of it directly.
pub trait IntoEncodedEvent {
    /// Encodes the item alone, or returns the error it stands for.
    fn into_encoded_event(self) -> Result<EncodedEvent, BoxError>;

    /// Appends the encoded item to `buf`, which may already hold other
    /// events, or returns the error it stands for (writing nothing).
    ///
    /// The default encodes the item alone and copies it.
    fn encode_into(self, buf: &mut BytesMut) -> Result<(), BoxError>
    where
        Self: Sized,
    {
        buf.extend_from_slice(self.into_encoded_event()?.as_bytes());
        Ok(())
    }

    /// Whether the item is already encoded, so that a frame holding only this
    /// item can send its bytes without a copy. The default is `false`.
    fn is_encoded(&self) -> bool {
        false
    }

    /// Appends the item to `buf` as [`encode_into`](Self::encode_into) does,
    /// or, when part of it is at least `min_piece` bytes that it holds as
    /// shared bytes, appends what comes before that part and returns the part
    /// and what follows it, so that a body can send the part as a piece of
    /// its own instead of copying it. The default never splits.
    ///
    /// Not meant to be called by applications; implement it only to hand a
    /// body large parts without a copy.
    #[doc(hidden)]
    fn encode_split(self, buf: &mut BytesMut, min_piece: usize) -> Result<Option<Split>, BoxError>
    where
        Self: Sized,
    {
        let _ = min_piece;
        self.encode_into(buf)?;
        Ok(None)
    }
}

/// A large part of an encoded item, sent as its own piece of a response, and
/// what follows it.
#[doc(hidden)]
#[derive(Debug)]
pub struct Split {
    /// The large part, not copied.
    pub piece: Bytes,
    /// The end of the item after the piece.
    pub tail: &'static [u8],
}

impl IntoEncodedEvent for Event {
    fn into_encoded_event(self) -> Result<EncodedEvent, BoxError> {
        self.encode().map_err(Into::into)
    }

    #[inline]
    fn encode_into(self, buf: &mut BytesMut) -> Result<(), BoxError> {
        Event::encode_into(self, buf).map_err(Into::into)
    }

    #[inline]
    fn encode_split(self, buf: &mut BytesMut, min_piece: usize) -> Result<Option<Split>, BoxError> {
        let piece = Event::encode_split(self, buf, min_piece)?;
        Ok(piece.map(|piece| Split {
            piece,
            tail: b"\n\n",
        }))
    }
}

impl IntoEncodedEvent for EncodedEvent {
    fn into_encoded_event(self) -> Result<EncodedEvent, BoxError> {
        Ok(self)
    }

    fn encode_into(self, buf: &mut BytesMut) -> Result<(), BoxError> {
        buf.extend_from_slice(&self.0);
        Ok(())
    }

    fn is_encoded(&self) -> bool {
        true
    }

    fn encode_split(self, buf: &mut BytesMut, min_piece: usize) -> Result<Option<Split>, BoxError> {
        if self.0.len() < min_piece {
            buf.extend_from_slice(&self.0);
            return Ok(None);
        }
        Ok(Some(Split {
            piece: self.0,
            tail: b"",
        }))
    }
}

impl<T, E> IntoEncodedEvent for Result<T, E>
where
    T: IntoEncodedEvent,
    E: Into<BoxError>,
{
    fn into_encoded_event(self) -> Result<EncodedEvent, BoxError> {
        self.map_err(Into::into)?.into_encoded_event()
    }

    fn encode_into(self, buf: &mut BytesMut) -> Result<(), BoxError> {
        self.map_err(Into::into)?.encode_into(buf)
    }

    fn is_encoded(&self) -> bool {
        self.as_ref().is_ok_and(T::is_encoded)
    }

    fn encode_split(self, buf: &mut BytesMut, min_piece: usize) -> Result<Option<Split>, BoxError> {
        self.map_err(Into::into)?.encode_split(buf, min_piece)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(event: Event) -> String {
        String::from_utf8(event.encode().unwrap().into_bytes().to_vec()).unwrap()
    }

    #[test]
    fn encode_allocates_exactly_the_encoded_size() {
        let event = Event::new()
            .comment("c\r\nd")
            .id(12345)
            .event("update")
            .retry(Duration::from_secs(3))
            .data("a\r\nb\rc\n")
            .data("");
        let expected_len = event.encoded_len();
        let mut buf = BytesMut::with_capacity(expected_len);
        event.write_to(&mut buf);
        // Written without growing: `encode` allocates once.
        assert_eq!((buf.len(), buf.capacity()), (expected_len, expected_len));
        let encoded = event.encode().unwrap();
        assert_eq!(encoded.len(), expected_len);
        assert_eq!(
            encoded.as_bytes(),
            b": c\n: d\nid: 12345\nevent: update\nretry: 3000\ndata: a\ndata: b\ndata: c\ndata: \ndata: \n\n"
        );
    }

    #[test]
    fn long_fields_spill_to_the_heap() {
        let id = "i".repeat(100);
        assert_eq!(
            wire(Event::new().id(&id).data("")),
            format!("id: {id}\ndata: \n\n")
        );
    }

    #[test]
    // One case passes a reference on purpose: `&T` forwards to `T`.
    #[allow(clippy::needless_borrows_for_generic_args)]
    fn integer_ids_are_written_in_decimal() {
        fn id_line(event: Event) -> String {
            wire(event.data(""))
                .trim_end_matches("data: \n\n")
                .to_owned()
        }
        let cases: [(Event, String); 12] = [
            (Event::new().id(0u8), "0".into()),
            (Event::new().id(-1i8), "-1".into()),
            (Event::new().id(12345u32), "12345".into()),
            (
                Event::new().id(999_999_999_999_999u64),
                "999999999999999".into(),
            ),
            (
                Event::new().id(-999_999_999_999_999i64),
                "-999999999999999".into(),
            ),
            (
                Event::new().id(1_000_000_000_000_000u64),
                "1000000000000000".into(),
            ),
            (Event::new().id(u64::MAX), u64::MAX.to_string()),
            (Event::new().id(i64::MIN), i64::MIN.to_string()),
            (Event::new().id(i128::MIN), i128::MIN.to_string()),
            (Event::new().id(u128::MAX), u128::MAX.to_string()),
            (Event::new().id(&-42isize), "-42".into()),
            (Event::new().id(usize::MAX), usize::MAX.to_string()),
        ];
        for (event, expected) in cases {
            assert_eq!(id_line(event), format!("id: {expected}\n"));
        }
    }

    #[test]
    fn fields_accept_exactly_the_values_without_forbidden_bytes() {
        let specials = [
            0u8, 9, b'\n', 11, b'\r', 14, 31, b' ', b'~', 0x7f, 0x80, 0xc2, 0xff,
        ];
        for len in 0..=24 {
            for at in 0..len.max(1) {
                for &special in &specials {
                    let mut value: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                    if let Some(byte) = value.get_mut(at) {
                        *byte = special;
                    }
                    let type_valid = !value.iter().any(|&b| b == b'\r' || b == b'\n');
                    let field = Field::checked_event_type(&value);
                    assert_eq!(field.is_ok(), type_valid, "{value:?}");
                    if let Ok(field) = field {
                        assert_eq!(field.as_bytes(), &value[..]);
                    }
                    // The fast path agrees with the one rule.
                    let id_valid = crate::last_event_id::id_fault(&value).is_none();
                    let field = Field::checked_id(&value);
                    assert_eq!(
                        field.as_ref().err(),
                        crate::last_event_id::id_fault(&value).as_ref()
                    );
                    assert_eq!(field.is_ok(), id_valid, "{value:?}");
                    if let Ok(field) = field {
                        assert_eq!(field.as_bytes(), &value[..]);
                    }
                }
            }
        }
    }

    #[test]
    fn c1_controls_make_an_id_invalid_wherever_they_are() {
        for len in 2..=24 {
            for at in 0..len - 1 {
                for second in [0x80u8, 0x85, 0x9f] {
                    let mut value = vec![b'a'; len];
                    value[at] = 0xc2;
                    value[at + 1] = second;
                    assert_eq!(
                        Field::checked_id(&value).err(),
                        Some(Fault::Char {
                            at,
                            ch: char::from(second)
                        })
                    );
                }
                let mut value = vec![b'a'; len];
                value[at] = 0xc2;
                value[at + 1] = 0xa0;
                assert!(Field::checked_id(&value).is_ok(), "U+00A0 is not a control");
            }
        }
    }

    #[test]
    fn formatted_ids_grow_from_inline_to_the_heap() {
        for len in [0, 1, 15, 16, 17, 21, 22, 23, 40] {
            let value = "v".repeat(len);
            let event = Event::new().id(format_args!("{value}")).data("");
            assert_eq!(wire(event), format!("id: {value}\ndata: \n\n"));
        }
        let event = Event::new().id(format_args!("{}-{}", "a".repeat(20), 7));
        assert_eq!(wire(event), format!("id: {}-7\n\n", "a".repeat(20)));
    }

    #[test]
    fn setting_a_field_again_replaces_it() {
        assert_eq!(
            wire(Event::new().data("a").id(1).id(2).event("e").event("f")),
            "id: 2\nevent: f\ndata: a\n\n"
        );
    }

    #[test]
    fn static_data_is_not_copied_into_the_event() {
        let event = Event::new().data("static");
        assert!(matches!(event.data, Some(Data(Repr::Static(_)))));
    }

    #[test]
    fn an_event_is_small_to_move() {
        assert!(std::mem::size_of::<Event>() <= 96);
    }

    #[test]
    fn encode_into_appends_after_other_events() {
        let mut buf = BytesMut::from(&b"data: 1\n\n"[..]);
        Event::new().data("2").encode_into(&mut buf).unwrap();
        assert!(Event::new().id("x\n").encode_into(&mut buf).is_err());
        assert_eq!(&buf[..], b"data: 1\n\ndata: 2\n\n");
    }
}
