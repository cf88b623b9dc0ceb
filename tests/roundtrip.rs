//! Property tests: whatever `Event` accepts, a spec-exact client receives
//! exactly (line breaks normalised to LF), however the bytes are split, and
//! whatever it rejects never reaches the wire.

use std::time::Duration;

use futures_util::stream;
use http_body_util::BodyExt;
use proptest::prelude::*;
use tower_sse::decode::{Decoder, MessageEvent};
use tower_sse::{EncodedEvent, Event, LastEventId, LastEventIdHeader, SseBody, SseConfig};

/// What a test event is made of, so that the expected decoding can be worked
/// out independently of the encoder.
#[derive(Clone, Debug)]
struct Spec {
    id: Option<String>,
    event_type: Option<String>,
    retry: Option<u64>,
    comment: Option<String>,
    data: Vec<String>,
}

impl Spec {
    fn build(&self) -> Event {
        let mut event = Event::new();
        if let Some(comment) = &self.comment {
            event = event.comment(comment.clone());
        }
        if let Some(id) = &self.id {
            event = event.id(id);
        }
        if let Some(event_type) = &self.event_type {
            event = event.event(event_type);
        }
        if let Some(retry) = self.retry {
            event = event.retry(Duration::from_millis(retry));
        }
        for data in &self.data {
            event = event.data(data.clone());
        }
        event
    }
}

/// Text with the characters that matter to the format, and any Unicode.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just('\n'),
            Just('\r'),
            Just(' '),
            Just(':'),
            Just('\0'),
            Just('\u{feff}'),
            Just('\t'),
            any::<char>(),
            prop::char::range('a', 'e'),
        ],
        0..24,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

/// Text that an id or event type may hold.
fn field(forbidden: &'static [char]) -> impl Strategy<Value = String> {
    text().prop_map(move |s| s.chars().filter(|c| !forbidden.contains(c)).collect())
}

/// Text that an id may hold: no control character, no space at either end.
fn id() -> impl Strategy<Value = String> {
    text().prop_map(|s| {
        let s: String = s.chars().filter(|c| !c.is_control()).collect();
        s.trim_matches(' ').to_owned()
    })
}

/// Any text, weighted towards what decides whether an id comes back: C0
/// controls, spaces, DEL, C1 controls, the rest of Latin-1 and beyond; some
/// of it long enough to meet the limit.
fn id_candidate() -> impl Strategy<Value = String> {
    let chars = prop::collection::vec(
        prop_oneof![
            prop::char::range('\0', '\u{1f}'),
            Just(' '),
            Just('\u{7f}'),
            prop::char::range('\u{80}', '\u{9f}'),
            prop::char::range('\u{a0}', '\u{ff}'),
            prop::char::range('!', '~'),
            any::<char>(),
        ],
        0..12,
    )
    .prop_map(|chars| chars.into_iter().collect::<String>());
    let padding = prop::sample::select(vec![0usize, 0, 0, 1010, 1020, 1024]);
    (padding, chars).prop_map(|(padding, chars)| "x".repeat(padding) + &chars)
}

/// What a server behind hyper reads from a request carrying `id` in its
/// `Last-Event-ID` header, sent byte for byte as a browser sends it; `None`
/// when hyper refuses the request.
fn through_hyper(runtime: &tokio::runtime::Runtime, id: &str) -> Option<LastEventIdHeader> {
    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    runtime.block_on(async {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        let service = {
            let seen = seen.clone();
            hyper::service::service_fn(move |request: http::Request<Incoming>| {
                *seen.lock().unwrap() = Some(LastEventIdHeader::from_headers(request.headers()));
                async { Ok::<_, std::convert::Infallible>(http::Response::new(String::new())) }
            })
        };
        let connection = tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(server), service),
        );
        let mut request = b"GET /events HTTP/1.1\r\nhost: 127.0.0.1\r\nlast-event-id: ".to_vec();
        request.extend_from_slice(id.as_bytes());
        request.extend_from_slice(b"\r\nconnection: close\r\n\r\n");
        client.write_all(&request).await.unwrap();
        let mut response = Vec::new();
        client.read_to_end(&mut response).await.unwrap();
        let _ = connection.await;
        seen.lock().unwrap().take()
    })
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::option::of(id()),
        prop::option::of(field(&['\r', '\n'])),
        prop::option::of(any::<u32>().prop_map(u64::from)),
        prop::option::of(text()),
        prop::collection::vec(text(), 0..3),
    )
        .prop_map(|(id, event_type, retry, comment, data)| Spec {
            id,
            event_type,
            retry,
            comment,
            data,
        })
}

/// What a browser's `EventSource` dispatches for these events, worked out
/// from the spec rather than from the encoder: data strings joined by LF with
/// every CRLF, CR and LF turned into LF; type `message` when empty; the last
/// event id carried along.
fn expected(specs: &[Spec]) -> (Vec<MessageEvent>, String) {
    let mut last_event_id = String::new();
    let mut events = Vec::new();
    for spec in specs {
        if let Some(id) = &spec.id {
            last_event_id.clone_from(id);
        }
        if spec.data.is_empty() {
            continue;
        }
        let data = spec
            .data
            .iter()
            .map(|d| d.replace("\r\n", "\n").replace('\r', "\n"))
            .collect::<Vec<_>>()
            .join("\n");
        let event_type = match spec.event_type.as_deref() {
            None | Some("") => "message".to_owned(),
            Some(other) => other.to_owned(),
        };
        events.push(MessageEvent {
            event_type,
            data,
            last_event_id: last_event_id.clone(),
        });
    }
    (events, last_event_id)
}

fn decode_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> (Vec<MessageEvent>, Decoder) {
    let mut decoder = Decoder::new();
    let mut events = Vec::new();
    for chunk in chunks {
        decoder.push(chunk);
        while let Some(event) = decoder.next_event().expect("within limits") {
            events.push(event);
        }
    }
    decoder.finish();
    (events, decoder)
}

fn encode_all(specs: &[Spec]) -> Vec<u8> {
    specs
        .iter()
        .flat_map(|spec| spec.build().encode().expect("accepted").into_bytes())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn accepted_events_decode_to_what_was_put_in(specs in prop::collection::vec(spec(), 1..6)) {
        let wire = encode_all(&specs);
        let (events, decoder) = decode_chunks([wire.as_slice()]);
        let (want, last_event_id) = expected(&specs);
        prop_assert_eq!(events, want);
        prop_assert_eq!(decoder.last_event_id(), last_event_id.as_str());
        let retry = specs.iter().rev().find_map(|s| s.retry).map(Duration::from_millis);
        prop_assert_eq!(decoder.reconnection_time(), retry);
    }

    #[test]
    fn any_split_decodes_like_the_whole(
        specs in prop::collection::vec(spec(), 1..4),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let wire = encode_all(&specs);
        let whole = decode_chunks([wire.as_slice()]).0;
        for at in 0..=wire.len() {
            let (split, _) = decode_chunks([&wire[..at], &wire[at..]]);
            prop_assert_eq!(&split, &whole, "split at {}", at);
        }
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for point in points {
            chunks.push(&wire[start..point]);
            start = point;
        }
        chunks.push(&wire[start..]);
        prop_assert_eq!(decode_chunks(chunks).0, whole);
    }

    #[test]
    fn event_ids_are_exactly_the_last_event_ids_and_come_back_through_hyper(id in id_candidate()) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let encoded = Event::new().id(id.as_str()).data("x").encode();
        // The empty id resets the client's id; as a header it is absent.
        let header_accepts = id.is_empty() || LastEventId::new(&id).is_ok();
        prop_assert_eq!(encoded.is_ok(), header_accepts, "{:?}", encoded.err());
        let Ok(encoded) = encoded else { return Ok(()) };
        // The browser's side: what the client keeps as its last event id.
        let (_, decoder) = decode_chunks([encoded.as_bytes()]);
        prop_assert_eq!(decoder.last_event_id(), id.as_str());
        if id.is_empty() {
            return Ok(());
        }
        // And back, in the header of the next request.
        let seen = through_hyper(&runtime, &id);
        prop_assert_eq!(seen, Some(LastEventIdHeader::Valid(LastEventId::new(&id).unwrap())));
    }

    #[test]
    fn rejected_ids_never_produce_bytes(prefix in field(&[]), bad in prop::sample::select(vec!['\r', '\n', '\0', '\t', '\u{1b}', '\u{7f}', '\u{85}']), suffix in text()) {
        let id = format!("{prefix}{bad}{suffix}");
        let result = Event::new().id(&id).data("payload").encode();
        prop_assert!(result.is_err_and(|e| e.is_invalid_id()));
    }

    #[test]
    fn rejected_event_types_never_produce_bytes(prefix in text(), bad in prop::sample::select(vec!['\r', '\n']), suffix in text()) {
        let name = format!("{prefix}{bad}{suffix}");
        let result = Event::new().event(&name).data("payload").encode();
        prop_assert!(result.is_err_and(|e| e.is_invalid_event_type()));
    }

    #[test]
    fn body_output_decodes_like_the_events(
        specs in prop::collection::vec(spec(), 1..40),
        frame_bytes in prop::sample::select(vec![0usize, 64, 1024, 32 * 1024]),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let items: Vec<Event> = specs.iter().map(Spec::build).collect();
        let config = SseConfig::new().max_frame_bytes(frame_bytes);
        let body = SseBody::with_config(stream::iter(items), config);
        let bytes = runtime.block_on(body.collect()).expect("infallible").to_bytes();
        let want = encode_all(&specs);
        prop_assert_eq!(bytes.as_ref(), want.as_slice());
    }

    #[test]
    fn a_rejected_event_in_a_stream_sends_only_what_came_before(
        before in prop::collection::vec(spec(), 0..5),
        after in prop::collection::vec(spec(), 0..5),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let mut items: Vec<Event> = before.iter().map(Spec::build).collect();
        items.push(Event::new().id("evil\nevent: injected").data("never sent"));
        items.extend(after.iter().map(Spec::build));
        let body = SseBody::new(stream::iter(items));
        let bytes = runtime.block_on(body.collect()).expect("ends cleanly").to_bytes();
        let want = encode_all(&before);
        prop_assert_eq!(bytes.as_ref(), want.as_slice());
    }
}

#[test]
fn an_encoded_event_sent_twice_decodes_twice() {
    let encoded: EncodedEvent = Event::new().id(1).data("same").encode().unwrap();
    let wire = [encoded.as_bytes(), encoded.as_bytes()].concat();
    let (events, _) = decode_chunks([wire.as_slice()]);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0], events[1]);
    assert_eq!(events[0].data, "same");
}
