//! Events and their encoding into the `text/event-stream` wire format.

use std::fmt::{self, Write as _};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{BoxError, EventError, EventErrorKind};

/// One server-sent event: optional id, event type and retry, data and comments.
///
/// `Event` is a builder. Every setter takes and returns `self`, so an event is
/// written as one expression. Values are encoded as they are set, so that
/// [`encode`](Event::encode) only has to close the block.
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
    /// Lines written so far, without the blank line that ends the block.
    buf: BytesMut,
    /// Small fields set before any data or comment: held back so that the
    /// first real write can reserve room for everything at once.
    pending: Pending,
    /// Whether `pending` has been written into `buf`; from then on every field
    /// is written straight into `buf`.
    flushed: bool,
    has_id: bool,
    error: Option<EventError>,
}

#[derive(Clone, Default)]
struct Pending {
    id: Option<Field>,
    event: Option<Field>,
    retry: Option<u64>,
}

impl Pending {
    fn encoded_len(&self) -> usize {
        let mut len = 0;
        if let Some(id) = &self.id {
            len += ID.len() + id.as_bytes().len() + 1;
        }
        if let Some(event) = &self.event {
            len += EVENT.len() + event.as_bytes().len() + 1;
        }
        if self.retry.is_some() {
            len += RETRY.len() + 20 + 1;
        }
        len
    }
}

const ID: &[u8] = b"id: ";
const EVENT: &[u8] = b"event: ";
const RETRY: &[u8] = b"retry: ";
const DATA: &[u8] = b"data: ";

impl Event {
    /// An empty event. Encoded as it is, it is a lone blank line, which a client
    /// ignores.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the event's id, which the client sends back as `Last-Event-ID` when
    /// it reconnects.
    ///
    /// Any [`Display`](fmt::Display) value works: numbers, strings, UUIDs. A value
    /// holding CR, LF or NUL is an error, returned by [`encode`](Event::encode).
    /// An empty id resets the client's last event id. Ids are best kept short and
    /// ASCII: browsers send a `Last-Event-ID` longer than 128 bytes, or with other
    /// bytes, only after a CORS preflight.
    #[must_use]
    pub fn id(mut self, id: impl fmt::Display) -> Self {
        let mut field = Field::new();
        // Writing into a `Field` cannot fail; a `Display` impl that reports an
        // error leaves a partial value, which is validated like any other.
        let _ = write!(field, "{id}");
        if memchr::memchr3(b'\r', b'\n', 0, field.as_bytes()).is_some() {
            self.set_error(EventErrorKind::InvalidId);
            return self;
        }
        self.has_id = true;
        if self.flushed {
            put_line(&mut self.buf, ID, field.as_bytes());
        } else {
            self.pending.id = Some(field);
        }
        self
    }

    /// Sets the event type, which a browser dispatches to listeners added with
    /// `addEventListener(type, ..)`; without it the event is a `message`.
    ///
    /// A value holding CR or LF is an error, returned by
    /// [`encode`](Event::encode).
    #[must_use]
    pub fn event(mut self, event_type: impl AsRef<str>) -> Self {
        let event_type = event_type.as_ref().as_bytes();
        if memchr::memchr2(b'\r', b'\n', event_type).is_some() {
            self.set_error(EventErrorKind::InvalidEventType);
            return self;
        }
        if self.flushed {
            put_line(&mut self.buf, EVENT, event_type);
        } else {
            let mut field = Field::new();
            field.push(event_type);
            self.pending.event = Some(field);
        }
        self
    }

    /// Sets the client's reconnection time, written in whole milliseconds.
    #[must_use]
    pub fn retry(mut self, retry: Duration) -> Self {
        let millis = u64::try_from(retry.as_millis()).unwrap_or(u64::MAX);
        if self.flushed {
            put_line(
                &mut self.buf,
                RETRY,
                itoa::Buffer::new().format(millis).as_bytes(),
            );
        } else {
            self.pending.retry = Some(millis);
        }
        self
    }

    /// Sets the event's data.
    ///
    /// Each line of `data` is written as its own `data:` line; the client joins
    /// them with LF. Calling `data` again appends: the client receives the two
    /// values joined by one LF.
    #[must_use]
    pub fn data(mut self, data: impl AsRef<str>) -> Self {
        self.write_lines(DATA, data.as_ref().as_bytes());
        self
    }

    /// Adds a comment, which clients ignore; a multi-line comment is written as
    /// one `:` line per line.
    #[must_use]
    pub fn comment(mut self, comment: impl AsRef<str>) -> Self {
        let comment = comment.as_ref().as_bytes();
        if comment.is_empty() {
            self.reserve_and_flush(2);
            self.buf.put_slice(b":\n");
        } else {
            self.write_lines(b": ", comment);
        }
        self
    }

    /// Sets the event's data to `value` serialized as JSON, written straight
    /// into the event's buffer.
    ///
    /// A serialization error is returned by [`encode`](Event::encode).
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    #[must_use]
    pub fn json_data<T: serde::Serialize + ?Sized>(mut self, value: &T) -> Self {
        self.reserve_and_flush(DATA.len() + 128);
        let start = self.buf.len();
        self.buf.put_slice(DATA);
        let value_start = self.buf.len();
        let mut writer = (&mut self.buf).writer();
        if let Err(error) = serde_json::to_writer(&mut writer, value) {
            self.buf.truncate(start);
            self.set_error(EventErrorKind::Json(std::sync::Arc::new(error)));
            return self;
        }
        // Compact JSON holds no raw line break, but a `RawValue` may: split it
        // like any other data so that the framing stays intact.
        if memchr::memchr2(b'\r', b'\n', &self.buf[value_start..]).is_some() {
            let json = self.buf.split_off(value_start);
            self.buf.truncate(start);
            self.write_lines(DATA, &json);
        } else {
            self.buf.put_u8(b'\n');
        }
        self
    }

    /// Whether an id has been set.
    #[cfg_attr(not(feature = "hub"), allow(dead_code))]
    pub(crate) fn has_id(&self) -> bool {
        self.has_id
    }

    /// The first error this event was given, if any.
    pub fn error(&self) -> Option<&EventError> {
        self.error.as_ref()
    }

    /// Encodes the event, ending it with the blank line that makes a client
    /// dispatch it.
    ///
    /// The result is a cheap handle: clone it to send the same bytes to many
    /// connections without encoding again.
    ///
    /// # Errors
    ///
    /// The first invalid value given to the event: an id with CR, LF or NUL, an
    /// event type with CR or LF, or JSON data that failed to serialize.
    pub fn encode(mut self) -> Result<EncodedEvent, EventError> {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        self.reserve_and_flush(1);
        self.buf.put_u8(b'\n');
        Ok(EncodedEvent(self.buf.freeze()))
    }

    fn set_error(&mut self, kind: EventErrorKind) {
        if self.error.is_none() {
            self.error = Some(EventError::new(kind));
        }
    }

    /// Makes room for `additional` bytes plus the held-back fields, and writes
    /// the held-back fields.
    fn reserve_and_flush(&mut self, additional: usize) {
        if self.flushed {
            self.buf.reserve(additional);
            return;
        }
        self.flushed = true;
        let pending = std::mem::take(&mut self.pending);
        self.buf.reserve(pending.encoded_len() + additional);
        if let Some(id) = &pending.id {
            put_line(&mut self.buf, ID, id.as_bytes());
        }
        if let Some(event) = &pending.event {
            put_line(&mut self.buf, EVENT, event.as_bytes());
        }
        if let Some(retry) = pending.retry {
            put_line(
                &mut self.buf,
                RETRY,
                itoa::Buffer::new().format(retry).as_bytes(),
            );
        }
    }

    /// Writes `value` as one `prefix` line per line, splitting on CRLF, lone CR
    /// and lone LF, trailing empty lines included.
    fn write_lines(&mut self, prefix: &[u8], value: &[u8]) {
        // An upper bound on the number of line breaks: a CRLF counts twice.
        let breaks = memchr::memchr2_iter(b'\r', b'\n', value).count();
        // Room for every line, plus one byte for the block's closing blank line.
        self.reserve_and_flush(value.len() + (breaks + 1) * (prefix.len() + 1) + 1);
        let mut rest = value;
        while let Some(at) = memchr::memchr2(b'\r', b'\n', rest) {
            put_line(&mut self.buf, prefix, &rest[..at]);
            let skip = if rest[at] == b'\r' && rest.get(at + 1) == Some(&b'\n') {
                2
            } else {
                1
            };
            rest = &rest[at + skip..];
        }
        put_line(&mut self.buf, prefix, rest);
    }
}

fn put_line(buf: &mut BytesMut, prefix: &[u8], value: &[u8]) {
    buf.reserve(prefix.len() + value.len() + 1);
    buf.put_slice(prefix);
    buf.put_slice(value);
    buf.put_u8(b'\n');
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut lines = String::from_utf8_lossy(&self.buf).into_owned();
        if let Some(id) = &self.pending.id {
            lines.push_str(&format!("id: {}\n", String::from_utf8_lossy(id.as_bytes())));
        }
        if let Some(event) = &self.pending.event {
            lines.push_str(&format!(
                "event: {}\n",
                String::from_utf8_lossy(event.as_bytes())
            ));
        }
        if let Some(retry) = self.pending.retry {
            lines.push_str(&format!("retry: {retry}\n"));
        }
        f.debug_struct("Event")
            .field("lines", &lines)
            .field("error", &self.error)
            .finish()
    }
}

/// A short string kept inline, so that typical ids and event types cost no
/// allocation.
#[derive(Clone)]
enum Field {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Vec<u8>),
}

const INLINE: usize = 30;

impl Field {
    fn new() -> Self {
        Field::Inline {
            len: 0,
            bytes: [0; INLINE],
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Field::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Field::Heap(vec) => vec,
        }
    }

    fn push(&mut self, more: &[u8]) {
        match self {
            Field::Inline { len, bytes } => {
                let start = usize::from(*len);
                let end = start + more.len();
                if end <= INLINE {
                    bytes[start..end].copy_from_slice(more);
                    // `end <= INLINE < 256`, so this cannot truncate.
                    *len = end as u8;
                } else {
                    let mut vec = Vec::with_capacity(end);
                    vec.extend_from_slice(&bytes[..start]);
                    vec.extend_from_slice(more);
                    *self = Field::Heap(vec);
                }
            }
            Field::Heap(vec) => vec.extend_from_slice(more),
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
    /// The encoded bytes: one complete event block, ending in a blank line.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The encoded bytes as a shared [`Bytes`] handle.
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

/// An item of an event stream that can be served: an [`Event`], an
/// [`EncodedEvent`], or a `Result` of either.
///
/// An `Err` item, or an event holding an [`EventError`], is a stream error:
/// what it does is set by the layer's error policy (by default the response
/// ends cleanly and the client reconnects). Implement this trait for your own
/// message type to serve a stream of it directly.
pub trait IntoEncodedEvent {
    /// Encodes the item, or returns the error it stands for.
    fn into_encoded_event(self) -> Result<EncodedEvent, BoxError>;
}

impl IntoEncodedEvent for Event {
    fn into_encoded_event(self) -> Result<EncodedEvent, BoxError> {
        self.encode().map_err(Into::into)
    }
}

impl IntoEncodedEvent for EncodedEvent {
    fn into_encoded_event(self) -> Result<EncodedEvent, BoxError> {
        Ok(self)
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(event: Event) -> String {
        String::from_utf8(event.encode().unwrap().into_bytes().to_vec()).unwrap()
    }

    #[test]
    fn typical_event_needs_one_allocation() {
        let json = "x".repeat(256);
        let event = Event::new().id(12345).event("update").data(&json);
        let capacity = event.buf.capacity();
        let encoded = event.encode().unwrap();
        // Everything fitted in the one reservation made by `data`.
        assert_eq!(encoded.len(), 10 + 14 + 6 + 256 + 1 + 1);
        assert!(capacity >= encoded.len());
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
    fn fields_after_data_follow_it() {
        assert_eq!(
            wire(
                Event::new()
                    .data("a")
                    .id(1)
                    .event("e")
                    .retry(Duration::from_secs(2))
            ),
            "data: a\nid: 1\nevent: e\nretry: 2000\n\n"
        );
    }
}
