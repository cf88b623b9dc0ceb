//! Encode then decode arbitrary events: an event that encodes decodes to
//! exactly what was put in, its id comes back as a valid `Last-Event-ID`,
//! and an event that does not encode broke a documented rule.

#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tower_sse::decode::Decoder;
use tower_sse::{Event, LastEventId};

#[derive(Arbitrary, Debug)]
struct Input {
    comment: Option<String>,
    id: Option<String>,
    event_type: Option<String>,
    retry: Option<u32>,
    data: Vec<String>,
}

fuzz_target!(|input: Input| {
    let mut event = Event::new();
    if let Some(comment) = &input.comment {
        event = event.comment(comment.clone());
    }
    if let Some(id) = &input.id {
        event = event.id(id.as_str());
    }
    if let Some(event_type) = &input.event_type {
        event = event.event(event_type);
    }
    if let Some(retry) = input.retry {
        event = event.retry(Duration::from_millis(u64::from(retry)));
    }
    for data in &input.data {
        event = event.data(data.clone());
    }

    let id_ok = input
        .id
        .as_deref()
        .is_none_or(|id| id.is_empty() || LastEventId::new(id).is_ok());
    let type_ok = input
        .event_type
        .as_deref()
        .is_none_or(|t| !t.contains(['\r', '\n']));
    let encoded = match event.encode() {
        Ok(encoded) => encoded,
        Err(error) => {
            assert!(!id_ok || !type_ok, "refused a valid event: {error}");
            return;
        }
    };
    assert!(id_ok && type_ok, "encoded an invalid event: {input:?}");

    let mut decoder = Decoder::new();
    decoder.push(encoded.as_bytes());
    let decoded = decoder.next_event().expect("within the default limits");
    assert_eq!(decoder.next_event().expect("no error"), None);
    if let Some(id) = &input.id {
        assert_eq!(decoder.last_event_id(), id);
    }
    if let Some(retry) = input.retry {
        assert_eq!(
            decoder.reconnection_time(),
            Some(Duration::from_millis(u64::from(retry)))
        );
    }
    if input.data.is_empty() {
        assert_eq!(decoded, None);
        return;
    }
    let decoded = decoded.expect("an event with data is dispatched");
    let data: Vec<String> = input
        .data
        .iter()
        .map(|d| d.replace("\r\n", "\n").replace('\r', "\n"))
        .collect();
    assert_eq!(decoded.data, data.join("\n"));
    let event_type = match input.event_type.as_deref() {
        None | Some("") => "message",
        Some(other) => other,
    };
    assert_eq!(decoded.event_type, event_type);
});
