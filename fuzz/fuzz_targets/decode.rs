//! The decoder on arbitrary bytes: it never panics, stays within its limits,
//! decodes the same whatever the chunk boundaries, and its shared events
//! (`next_shared_event`) are its owned ones.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_sse::decode::{DecodedItem, Decoder, MessageEvent};

/// Everything a client observes: the items, then the error if any, the last
/// event id and the reconnection time.
fn decode(chunks: &[&[u8]], comments: bool) -> (Vec<DecodedItem>, Option<String>, String) {
    let mut decoder = Decoder::new().max_line_len(256).max_event_len(1024);
    if comments {
        decoder = decoder.with_comments();
    }
    let mut items = Vec::new();
    let mut error = None;
    let take = |decoder: &mut Decoder, items: &mut Vec<DecodedItem>| loop {
        match decoder.next_item() {
            Ok(Some(item)) => {
                if let DecodedItem::Event(event) = &item {
                    assert!(event.data.len() + event.event_type.len() <= 1024 + 1);
                }
                items.push(item);
            }
            Ok(None) => return None,
            Err(e) => return Some(e.to_string()),
        }
    };
    for chunk in chunks {
        decoder.push(chunk);
        if error.is_none() {
            error = take(&mut decoder, &mut items);
        }
    }
    decoder.finish();
    if error.is_none() {
        error = take(&mut decoder, &mut items);
    }
    let last_event_id = decoder.last_event_id().to_owned();
    (items, error, last_event_id)
}

/// The events (and the error, if any, and the last event id) read with
/// `next_shared_event`, as owned events.
fn decode_shared(chunks: &[&[u8]]) -> (Vec<MessageEvent>, Option<String>, String) {
    let mut decoder = Decoder::new().max_line_len(256).max_event_len(1024);
    let mut events = Vec::new();
    let mut error = None;
    let take = |decoder: &mut Decoder, events: &mut Vec<MessageEvent>| loop {
        match decoder.next_shared_event() {
            Ok(Some(event)) => events.push(event.into()),
            Ok(None) => return None,
            Err(e) => return Some(e.to_string()),
        }
    };
    for chunk in chunks {
        decoder.push(chunk);
        if error.is_none() {
            error = take(&mut decoder, &mut events);
        }
    }
    decoder.finish();
    if error.is_none() {
        error = take(&mut decoder, &mut events);
    }
    (events, error, decoder.last_event_id().to_owned())
}

fuzz_target!(|input: &[u8]| {
    let Some((&control, bytes)) = input.split_first() else {
        return;
    };
    let comments = control & 1 == 1;
    let whole = decode(&[bytes], comments);
    // The same bytes in chunks of 1 to 8 bytes.
    let size = usize::from(control >> 1 & 7) + 1;
    let chunks: Vec<&[u8]> = bytes.chunks(size).collect();
    let split = decode(&chunks, comments);
    // A line limit can trip at a different point when a line arrives in
    // pieces; without an error, the outcome must be the same.
    if whole.1.is_none() && split.1.is_none() {
        assert_eq!(whole, split);
    }
    if !comments {
        let (items, error, last_event_id) = &split;
        let events: Vec<MessageEvent> = items
            .iter()
            .filter_map(|item| match item {
                DecodedItem::Event(event) => Some(event.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            decode_shared(&chunks),
            (events, error.clone(), last_event_id.clone())
        );
    }
});
