//! The decoder on arbitrary bytes: it never panics, stays within its limits,
//! decodes the same whatever the chunk boundaries, and its shared events
//! (`next_shared_event`) are its owned ones.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_sse::decode::{DecodeError, DecodedItem, Decoder, MessageEvent, SharedEvent};

/// Pushes `chunks` into `decoder`, taking every item with `next` after each
/// and after the end: the items, the error if any, and the last event id.
fn run<T>(
    mut decoder: Decoder,
    chunks: &[&[u8]],
    mut next: impl FnMut(&mut Decoder) -> Result<Option<T>, DecodeError>,
) -> (Vec<T>, Option<String>, String) {
    let mut items = Vec::new();
    let mut error = None;
    let mut take = |decoder: &mut Decoder, items: &mut Vec<T>| loop {
        match next(decoder) {
            Ok(Some(item)) => items.push(item),
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

fn decoder() -> Decoder {
    Decoder::new().max_line_len(256).max_event_len(1024)
}

/// Everything a client observes: the items, then the error if any, and the
/// last event id.
fn decode(chunks: &[&[u8]], comments: bool) -> (Vec<DecodedItem>, Option<String>, String) {
    let decoder = if comments {
        decoder().with_comments()
    } else {
        decoder()
    };
    run(decoder, chunks, |decoder| {
        let item = decoder.next_item()?;
        if let Some(DecodedItem::Event(event)) = &item {
            assert!(event.data.len() + event.event_type.len() <= 1024 + 1);
        }
        Ok(item)
    })
}

/// The events (and the error, if any, and the last event id) read with
/// `next_shared_event`, all kept until the end, so that the decoder cannot
/// reuse a buffer that an event still slices.
fn decode_shared(chunks: &[&[u8]]) -> (Vec<SharedEvent>, Option<String>, String) {
    run(decoder(), chunks, Decoder::next_shared_event)
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
        let (shared, shared_error, shared_last_event_id) = decode_shared(&chunks);
        assert_eq!(shared, events);
        assert_eq!(
            (&shared_error, &shared_last_event_id),
            (error, last_event_id)
        );
    }
});
