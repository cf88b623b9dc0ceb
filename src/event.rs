//! Events and their encoding into the `text/event-stream` wire format.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{BoxError, EventError, EventErrorKind};

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
    comments: Vec<Text>,
    id: Option<Field>,
    event_type: Option<Field>,
    retry: Option<u64>,
    data: Data,
    error: Option<EventError>,
}

/// A string an event holds: borrowed for the whole program or owned, never
/// copied on the way in.
type Text = Cow<'static, str>;

/// The event's data: usually one string, so one value needs no `Vec`.
#[derive(Clone, Default)]
enum Data {
    #[default]
    None,
    One(Text),
    Many(Vec<Text>),
}

impl Data {
    fn push(&mut self, text: Text) {
        *self = match std::mem::take(self) {
            Data::None => Data::One(text),
            Data::One(first) => Data::Many(vec![first, text]),
            Data::Many(mut all) => {
                all.push(text);
                Data::Many(all)
            }
        };
    }

    fn as_slice(&self) -> &[Text] {
        match self {
            Data::None => &[],
            Data::One(one) => std::slice::from_ref(one),
            Data::Many(all) => all,
        }
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
    /// bytes, only after a CORS preflight. Setting the id again replaces it.
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
        self.id = Some(field);
        self
    }

    /// Sets the event type, which a browser dispatches to listeners added with
    /// `addEventListener(type, ..)`; without it the event is a `message`.
    ///
    /// A value holding CR or LF is an error, returned by
    /// [`encode`](Event::encode). Setting the type again replaces it.
    #[must_use]
    pub fn event(mut self, event_type: impl AsRef<str>) -> Self {
        let event_type = event_type.as_ref().as_bytes();
        if memchr::memchr2(b'\r', b'\n', event_type).is_some() {
            self.set_error(EventErrorKind::InvalidEventType);
            return self;
        }
        let mut field = Field::new();
        field.push(event_type);
        self.event_type = Some(field);
        self
    }

    /// Sets the client's reconnection time, written in whole milliseconds.
    #[must_use]
    pub fn retry(mut self, retry: Duration) -> Self {
        self.retry = Some(u64::try_from(retry.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Sets the event's data.
    ///
    /// Takes a `&'static str`, a `String` or a `Cow<'static, str>` and keeps
    /// it as it is, without a copy: the data is copied once, when the event is
    /// encoded into the response. (For a borrowed `&str`, pass
    /// `s.to_owned()`.)
    ///
    /// Each line of `data` is written as its own `data:` line; the client joins
    /// them with LF. Calling `data` again appends: the client receives the two
    /// values joined by one LF.
    #[must_use]
    pub fn data(mut self, data: impl Into<Cow<'static, str>>) -> Self {
        self.data.push(data.into());
        self
    }

    /// Adds a comment, which clients ignore; a multi-line comment is written as
    /// one `:` line per line. Comments are written first in the block.
    #[must_use]
    pub fn comment(mut self, comment: impl Into<Cow<'static, str>>) -> Self {
        self.comments.push(comment.into());
        self
    }

    /// Sets the event's data to `value` serialized as JSON, written straight
    /// into the event's own data buffer.
    ///
    /// A serialization error is returned by [`encode`](Event::encode).
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    #[must_use]
    pub fn json_data<T: serde::Serialize + ?Sized>(mut self, value: &T) -> Self {
        let mut json = Vec::with_capacity(128);
        match serde_json::to_writer(&mut json, value) {
            // serde_json writes only valid UTF-8.
            Ok(()) => match String::from_utf8(json) {
                Ok(json) => self.data.push(Cow::Owned(json)),
                Err(error) => self.set_error(EventErrorKind::Json(std::sync::Arc::new(
                    serde_json::Error::io(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        error,
                    )),
                ))),
            },
            Err(error) => self.set_error(EventErrorKind::Json(std::sync::Arc::new(error))),
        }
        self
    }

    /// Whether an id has been set.
    #[cfg_attr(not(feature = "hub"), allow(dead_code))]
    pub(crate) fn has_id(&self) -> bool {
        self.id.is_some()
    }

    /// The first error this event was given, if any.
    pub fn error(&self) -> Option<&EventError> {
        self.error.as_ref()
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
    pub fn encode(self) -> Result<EncodedEvent, EventError> {
        if let Some(error) = self.error {
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
    pub fn encode_into(self, buf: &mut BytesMut) -> Result<(), EventError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        self.write_to(buf);
        Ok(())
    }

    fn set_error(&mut self, kind: EventErrorKind) {
        if self.error.is_none() {
            self.error = Some(EventError::new(kind));
        }
    }

    fn write_to(&self, buf: &mut BytesMut) {
        for comment in &self.comments {
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
        if let Some(retry) = self.retry {
            put_line(buf, RETRY, itoa::Buffer::new().format(retry).as_bytes());
        }
        for data in self.data.as_slice() {
            put_lines(buf, DATA, data.as_bytes());
        }
        buf.put_u8(b'\n');
    }

    /// The exact length of the encoded event.
    fn encoded_len(&self) -> usize {
        let mut len = 1;
        for comment in &self.comments {
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
        if let Some(retry) = self.retry {
            len += RETRY.len() + itoa::Buffer::new().format(retry).len() + 1;
        }
        for data in self.data.as_slice() {
            len += lines_len(DATA, data.as_bytes());
        }
        len
    }
}

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
    while let Some(at) = memchr::memchr2(b'\r', b'\n', rest) {
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

/// Writes `value` as one `prefix` line per line.
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
            .field("comments", &self.comments)
            .field("id", &field(&self.id))
            .field("event_type", &field(&self.event_type))
            .field("retry", &self.retry)
            .field("data", &self.data.as_slice())
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
                match (bytes.get_mut(start..end), u8::try_from(end)) {
                    (Some(room), Ok(end)) => {
                        room.copy_from_slice(more);
                        *len = end;
                    }
                    _ => {
                        let mut vec = Vec::with_capacity(end);
                        vec.extend_from_slice(&bytes[..start]);
                        vec.extend_from_slice(more);
                        *self = Field::Heap(vec);
                    }
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
}

impl IntoEncodedEvent for Event {
    fn into_encoded_event(self) -> Result<EncodedEvent, BoxError> {
        self.encode().map_err(Into::into)
    }

    fn encode_into(self, buf: &mut BytesMut) -> Result<(), BoxError> {
        Event::encode_into(self, buf).map_err(Into::into)
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
    fn setting_a_field_again_replaces_it() {
        assert_eq!(
            wire(Event::new().data("a").id(1).id(2).event("e").event("f")),
            "id: 2\nevent: f\ndata: a\n\n"
        );
    }

    #[test]
    fn static_data_is_not_copied_into_the_event() {
        let event = Event::new().data("static");
        assert!(matches!(event.data, Data::One(Cow::Borrowed(_))));
    }

    #[test]
    fn encode_into_appends_after_other_events() {
        let mut buf = BytesMut::from(&b"data: 1\n\n"[..]);
        Event::new().data("2").encode_into(&mut buf).unwrap();
        assert!(Event::new().id("x\n").encode_into(&mut buf).is_err());
        assert_eq!(&buf[..], b"data: 1\n\ndata: 2\n\n");
    }
}
