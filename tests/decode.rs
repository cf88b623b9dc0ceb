//! The decoder against every parsing rule of the event-stream format (WHATWG HTML
//! "Server-sent events"), chunked any way, and `DecodeStream` over real bodies.

use std::convert::Infallible;
use std::error::Error as _;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http::HeaderMap;
use http_body::Frame;
use http_body_util::{Full, StreamBody};
use proptest::prelude::*;
use tower_sse::decode::{
    DecodeError, DecodeItems, DecodeStream, DecodedItem, Decoder, MessageEvent, SharedEvent,
};

/// Everything a client can observe after feeding a whole stream.
#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<MessageEvent>,
    error: Option<String>,
    last_event_id: String,
    reconnection_time: Option<Duration>,
}

/// Pushes `chunks` one at a time, taking every event after each, then ends the
/// stream and takes what is left.
fn decode_chunks_with(decoder: Decoder, chunks: &[&[u8]]) -> Outcome {
    decode_chunks_taking(decoder, chunks, Decoder::next_event)
}

/// [`decode_chunks_with`], taking the events with `next_shared_event`.
fn decode_shared_chunks_with(decoder: Decoder, chunks: &[&[u8]]) -> Outcome {
    decode_chunks_taking(decoder, chunks, |decoder| {
        Ok(decoder.next_shared_event()?.map(MessageEvent::from))
    })
}

/// [`decode_chunks_with`], taking each event with `take`.
fn decode_chunks_taking(
    mut decoder: Decoder,
    chunks: &[&[u8]],
    take: fn(&mut Decoder) -> Result<Option<MessageEvent>, DecodeError>,
) -> Outcome {
    let mut events = Vec::new();
    let mut error = None;
    let mut drain = |decoder: &mut Decoder, error: &mut Option<String>| loop {
        match take(decoder) {
            Ok(Some(event)) => events.push(event),
            Ok(None) => return true,
            Err(err) => {
                *error = Some(err.to_string());
                return false;
            }
        }
    };
    let mut ok = true;
    for chunk in chunks {
        decoder.push(chunk);
        ok = drain(&mut decoder, &mut error);
        if !ok {
            break;
        }
    }
    if ok {
        decoder.finish();
        drain(&mut decoder, &mut error);
    }
    Outcome {
        events,
        error,
        last_event_id: decoder.last_event_id().to_owned(),
        reconnection_time: decoder.reconnection_time(),
    }
}

fn decode_chunks(chunks: &[&[u8]]) -> Outcome {
    decode_chunks_with(Decoder::new(), chunks)
}

/// Decodes a whole stream that must not fail and returns its events.
fn events(input: &[u8]) -> Vec<MessageEvent> {
    let outcome = decode_chunks(&[input]);
    assert_eq!(outcome.error, None);
    outcome.events
}

fn event(event_type: &str, data: &str, last_event_id: &str) -> MessageEvent {
    MessageEvent {
        event_type: event_type.to_owned(),
        data: data.to_owned(),
        last_event_id: last_event_id.to_owned(),
    }
}

fn message(data: &str) -> MessageEvent {
    event("message", data, "")
}

fn datas(input: &[u8]) -> Vec<String> {
    events(input).into_iter().map(|event| event.data).collect()
}

// Rule 1: UTF-8, invalid bytes decode to U+FFFD.

#[test]
fn invalid_utf8_becomes_replacement_char() {
    assert_eq!(datas(b"data: a\xFFb\n\n"), ["a\u{FFFD}b"]);
    assert_eq!(datas(b"data: \xC3\n\n"), ["\u{FFFD}"]);
    assert_eq!(datas(b"data: \xF0\x9F\x98\n\n"), ["\u{FFFD}"]);
    assert_eq!(
        events(b"event: \xFEx\nid: \xFF\ndata: 1\n\n"),
        [event("\u{FFFD}x", "1", "\u{FFFD}")]
    );
}

#[test]
fn multibyte_char_split_across_chunks_is_decoded_whole() {
    let outcome = decode_chunks(&[b"data: caf\xC3", b"\xA9\n\n"]);
    assert_eq!(outcome.events, [message("caf\u{E9}")]);
}

// Rule 2: one BOM, only at the very start.

#[test]
fn bom_stripped_only_at_start() {
    assert_eq!(datas(b"\xEF\xBB\xBFdata: a\n\n"), ["a"]);
    assert_eq!(datas(b"data: a\n\n\xEF\xBB\xBFdata: b\n\n"), ["a"]);
}

#[test]
fn second_bom_is_kept_in_data() {
    assert_eq!(datas(b"\xEF\xBB\xBFdata: \xEF\xBB\xBFx\n\n"), ["\u{FEFF}x"]);
    // The second BOM becomes part of the field name, which is then unknown.
    assert_eq!(events(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n"), []);
}

#[test]
fn bom_split_across_chunks() {
    let outcome = decode_chunks(&[b"\xEF", b"\xBB", b"\xBFdata: a\n\n"]);
    assert_eq!(outcome.events, [message("a")]);
    let outcome = decode_chunks(&[b"", b"\xEF\xBB", b"", b"\xBF", b"data: b\n\n"]);
    assert_eq!(outcome.events, [message("b")]);
}

#[test]
fn incomplete_bom_is_not_stripped() {
    assert_eq!(events(b"\xEF\xBBdata: a\n\n"), []);
    let outcome = decode_chunks(&[b"\xEF", b"\xBBdata: a\n\n"]);
    assert_eq!(outcome.events, []);
}

#[test]
fn bom_prefix_then_line_end_is_a_line() {
    assert_eq!(datas(b"\xEF\xBB\ndata: a\n\n"), ["a"]);
    let outcome = decode_chunks(&[b"\xEF", b"\n", b"data: a\n\n"]);
    assert_eq!(outcome.events, [message("a")]);
}

// Rule 3: CRLF, LF and lone CR end a line, across chunks too.

#[test]
fn crlf_lf_cr_each_end_a_line() {
    assert_eq!(
        datas(b"data: a\r\ndata: b\ndata: c\rdata: d\n\n"),
        ["a\nb\nc\nd"]
    );
    assert_eq!(
        datas(b"data: 1\r\n\r\ndata: 2\n\ndata: 3\r\rdata: 4\n\r"),
        ["1", "2", "3", "4"]
    );
}

#[test]
fn lf_then_cr_is_two_line_ends() {
    assert_eq!(datas(b"data: a\n\rdata: b\r\n\n"), ["a", "b"]);
}

#[test]
fn cr_at_chunk_end_then_lf_is_one_line_end() {
    let outcome = decode_chunks(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]);
    assert_eq!(outcome.events, [message("a\nb")]);
}

#[test]
fn cr_at_chunk_end_then_cr_is_an_empty_line() {
    let outcome = decode_chunks(&[b"data: a\r", b"\r"]);
    assert_eq!(outcome.events, [message("a")]);
}

#[test]
fn cr_at_chunk_end_then_other_byte_starts_a_new_line() {
    let outcome = decode_chunks(&[b"data: a\r", b"data: b\r", b"\r"]);
    assert_eq!(outcome.events, [message("a\nb")]);
}

#[test]
fn trailing_cr_dispatches_without_waiting_for_the_next_byte() {
    let mut decoder = Decoder::new();
    decoder.push(b"data: a\r\r");
    assert_eq!(decoder.next_event().ok(), Some(Some(message("a"))));
    // A following LF completes the CRLF and is not another (empty) line.
    decoder.push(b"\ndata: b\n\n");
    assert_eq!(decoder.next_event().ok(), Some(Some(message("b"))));
    assert_eq!(decoder.next_event().ok(), Some(None));
}

#[test]
fn cr_lf_split_does_not_create_an_empty_line() {
    // If the LF after a chunk-final CR counted as an empty line, "a" would be
    // dispatched on its own.
    let outcome = decode_chunks(&[b"data: a\r", b"\n", b"data: b\n\n"]);
    assert_eq!(outcome.events, [message("a\nb")]);
}

// Rule 4: an empty line dispatches.

#[test]
fn empty_line_dispatches_pending_event() {
    let mut decoder = Decoder::new();
    decoder.push(b"data: a\n");
    assert_eq!(decoder.next_event().ok(), Some(None));
    decoder.push(b"\n");
    assert_eq!(decoder.next_event().ok(), Some(Some(message("a"))));
}

#[test]
fn extra_empty_lines_dispatch_nothing() {
    assert_eq!(datas(b"\n\n\ndata: a\n\n\n\n"), ["a"]);
}

// Rule 5: comments.

#[test]
fn comment_lines_ignored() {
    assert_eq!(datas(b": hello\ndata: a\n:data: b\n:\n\n"), ["a"]);
    assert_eq!(events(b": keep-alive\n\n:\n\n"), []);
}

// Rule 6: field name and value.

#[test]
fn one_leading_space_removed_only() {
    assert_eq!(datas(b"data:a\n\n"), ["a"]);
    assert_eq!(datas(b"data: a\n\n"), ["a"]);
    assert_eq!(datas(b"data:  a\n\n"), [" a"]);
    assert_eq!(datas(b"data: a \n\n"), ["a "]);
}

#[test]
fn tab_not_removed() {
    assert_eq!(datas(b"data:\ta\n\n"), ["\ta"]);
    assert_eq!(datas(b"data: \ta\n\n"), ["\ta"]);
}

#[test]
fn value_keeps_later_colons() {
    assert_eq!(datas(b"data: a: b:c\n\n"), ["a: b:c"]);
    assert_eq!(datas(b"data::\n\n"), [":"]);
}

#[test]
fn line_without_colon_is_field_with_empty_value() {
    assert_eq!(datas(b"data\n\n"), [""]);
    assert_eq!(datas(b"data\ndata\n\n"), ["\n"]);
    assert_eq!(datas(b"data: a\ndata\n\n"), ["a\n"]);
}

#[test]
fn space_before_colon_is_part_of_the_name() {
    assert_eq!(events(b"data : a\n\n"), []);
    assert_eq!(events(b" data: a\n\n"), []);
}

// Rule 7: exact field names, unknown ones ignored.

#[test]
fn field_names_case_sensitive() {
    assert_eq!(events(b"Data: a\nDATA: b\n\n"), []);
    assert_eq!(events(b"Event: x\ndata: y\n\n"), [message("y")]);
    assert_eq!(events(b"ID: 1\ndata: y\n\n"), [message("y")]);
}

#[test]
fn unknown_fields_ignored() {
    assert_eq!(
        events(b"foo: bar\ndata: a\nbaz\ndatas: b\nevents: c\n\n"),
        [message("a")]
    );
    assert_eq!(events(b"foo: bar\n\n"), []);
}

// Rule 8: data.

#[test]
fn data_lines_joined_with_lf() {
    assert_eq!(datas(b"data: a\ndata: b\ndata: c\n\n"), ["a\nb\nc"]);
}

#[test]
fn bare_data_dispatches_empty_string() {
    assert_eq!(events(b"data:\n\n"), [message("")]);
    assert_eq!(events(b"data\n\n"), [message("")]);
    assert_eq!(events(b"data: \n\n"), [message("")]);
}

#[test]
fn only_one_trailing_lf_removed() {
    assert_eq!(datas(b"data: a\ndata:\n\n"), ["a\n"]);
    assert_eq!(datas(b"data:\ndata:\n\n"), ["\n"]);
    assert_eq!(datas(b"data:\ndata:\ndata:\n\n"), ["\n\n"]);
}

// Rule 9: event.

#[test]
fn event_sets_type_for_one_event_only() {
    assert_eq!(
        events(b"event: add\ndata: 1\n\ndata: 2\n\n"),
        [event("add", "1", ""), message("2")]
    );
}

#[test]
fn last_event_field_wins() {
    assert_eq!(
        events(b"event: a\nevent: b\ndata: x\n\n"),
        [event("b", "x", "")]
    );
    assert_eq!(events(b"event: a\nevent:\ndata: x\n\n"), [message("x")]);
}

#[test]
fn event_only_block_dispatches_nothing_and_type_does_not_leak() {
    assert_eq!(events(b"event: add\n\ndata: x\n\n"), [message("x")]);
}

#[test]
fn event_type_message_can_be_explicit() {
    assert_eq!(events(b"event: message\ndata: x\n\n"), [message("x")]);
}

// Rule 10: id.

#[test]
fn id_sets_last_event_id() {
    let outcome = decode_chunks(&[b"id: 42\ndata: x\n\n"]);
    assert_eq!(outcome.events, [event("message", "x", "42")]);
    assert_eq!(outcome.last_event_id, "42");
}

#[test]
fn id_with_nul_is_ignored() {
    let outcome = decode_chunks(&[b"id: 1\n\nid: a\0b\ndata: x\n\n"]);
    assert_eq!(outcome.events, [event("message", "x", "1")]);
    assert_eq!(outcome.last_event_id, "1");
    let outcome = decode_chunks(&[b"id: 1\nid: \0\ndata: x\n\n"]);
    assert_eq!(outcome.events, [event("message", "x", "1")]);
}

#[test]
fn empty_id_resets_last_event_id() {
    let outcome =
        decode_chunks(&[b"id: 1\ndata: a\n\nid\ndata: b\n\nid: 2\ndata: c\n\nid:\ndata: d\n\n"]);
    assert_eq!(
        outcome.events,
        [
            event("message", "a", "1"),
            event("message", "b", ""),
            event("message", "c", "2"),
            event("message", "d", ""),
        ]
    );
    assert_eq!(outcome.last_event_id, "");
}

#[test]
fn id_keeps_spaces_after_the_first() {
    assert_eq!(
        events(b"id:  7 \ndata: x\n\n"),
        [event("message", "x", " 7 ")]
    );
}

#[test]
fn last_event_id_kept_across_events() {
    let outcome = decode_chunks(&[b"id: 1\ndata: a\n\ndata: b\n\n", b"data: c\n\n"]);
    assert_eq!(
        outcome.events,
        [
            event("message", "a", "1"),
            event("message", "b", "1"),
            event("message", "c", "1"),
        ]
    );
    assert_eq!(outcome.last_event_id, "1");
}

#[test]
fn id_only_block_sets_id_without_dispatch() {
    let mut decoder = Decoder::new();
    decoder.push(b"id: 5\n\n");
    assert_eq!(decoder.next_event().ok(), Some(None));
    assert_eq!(decoder.last_event_id(), "5");
    decoder.push(b"data: x\n\n");
    assert_eq!(
        decoder.next_event().ok(),
        Some(Some(event("message", "x", "5")))
    );
}

#[test]
fn id_takes_effect_when_its_block_ends() {
    let mut decoder = Decoder::new();
    decoder.push(b"id: 9\ndata: x\n");
    assert_eq!(decoder.next_event().ok(), Some(None));
    assert_eq!(decoder.last_event_id(), "");
    decoder.push(b"\n");
    assert_eq!(
        decoder.next_event().ok(),
        Some(Some(event("message", "x", "9")))
    );
    assert_eq!(decoder.last_event_id(), "9");
}

#[test]
fn id_in_discarded_final_block_is_lost() {
    let outcome = decode_chunks(&[b"id: 1\n\nid: 2\ndata: x\n"]);
    assert_eq!(outcome.events, []);
    assert_eq!(outcome.last_event_id, "1");
}

// Rule 11: retry.

#[test]
fn retry_sets_reconnection_time_in_milliseconds() {
    let outcome = decode_chunks(&[b"retry: 1500\n"]);
    assert_eq!(outcome.reconnection_time, Some(Duration::from_millis(1500)));
    let outcome = decode_chunks(&[b"retry:5\n", b"retry: 007\n"]);
    assert_eq!(outcome.reconnection_time, Some(Duration::from_millis(7)));
    let outcome = decode_chunks(&[b"retry: 0\n"]);
    assert_eq!(outcome.reconnection_time, Some(Duration::ZERO));
}

#[test]
fn retry_digits_only() {
    for invalid in [
        &b"retry: 1.5\n"[..],
        b"retry: -1\n",
        b"retry: +5\n",
        b"retry:\n",
        b"retry\n",
        b"retry: \n",
        b"retry:  5\n",
        b"retry: 5 \n",
        b"retry: 5\t\n",
        b"retry: 1e3\n",
        b"retry: 0x10\n",
        b"retry: \xEF\xBC\x95\n",
        b"Retry: 5\n",
    ] {
        let outcome = decode_chunks(&[b"retry: 1500\n", invalid]);
        assert_eq!(
            outcome.reconnection_time,
            Some(Duration::from_millis(1500)),
            "{:?} must be ignored",
            String::from_utf8_lossy(invalid),
        );
    }
}

#[test]
fn retry_too_large_for_u64_is_ignored() {
    let outcome = decode_chunks(&[b"retry: 1500\nretry: 99999999999999999999999\n"]);
    assert_eq!(outcome.reconnection_time, Some(Duration::from_millis(1500)));
    let outcome = decode_chunks(&[b"retry: 18446744073709551615\n"]);
    assert_eq!(
        outcome.reconnection_time,
        Some(Duration::from_millis(u64::MAX))
    );
}

#[test]
fn retry_takes_effect_without_dispatch() {
    let mut decoder = Decoder::new();
    decoder.push(b"retry: 10\ndata: x\n");
    assert_eq!(decoder.next_event().ok(), Some(None));
    assert_eq!(decoder.reconnection_time(), Some(Duration::from_millis(10)));
    assert_eq!(events(b"retry: 10\n\n"), []);
}

// Rule 12: dispatch.

#[test]
fn dispatch_order_applies_id_even_without_data() {
    let outcome = decode_chunks(&[b"id: a\nevent: x\n\ndata: 1\n\n"]);
    assert_eq!(outcome.events, [event("message", "1", "a")]);
}

#[test]
fn event_carries_all_three_fields() {
    assert_eq!(
        events(b"event: update\nid: 3\ndata: {\"n\":1}\n\n"),
        [event("update", "{\"n\":1}", "3")]
    );
}

// Rule 13: an unterminated final block is discarded.

#[test]
fn unterminated_final_block_discarded() {
    assert_eq!(datas(b"data: a\n\ndata: b\n"), ["a"]);
    assert_eq!(datas(b"data: a\n\ndata: b"), ["a"]);
    assert_eq!(datas(b"data: a\n\ndata: b\r"), ["a"]);
    assert_eq!(datas(b"data: a\n\n\n"), ["a"]);
}

#[test]
fn unterminated_final_line_is_not_a_line() {
    // "data: b" has no line end, so the empty line before it is the last one.
    assert_eq!(datas(b"data: a\n\ndata: b"), ["a"]);
    // Without the line end the final empty line does not exist either.
    assert_eq!(datas(b"data: a\n"), Vec::<String>::new());
}

#[test]
fn finish_still_returns_events_already_buffered() {
    let mut decoder = Decoder::new();
    decoder.push(b"data: a\n\ndata: b\n\ndata: c\n");
    decoder.finish();
    assert_eq!(decoder.next_event().ok(), Some(Some(message("a"))));
    assert_eq!(decoder.next_event().ok(), Some(Some(message("b"))));
    assert_eq!(decoder.next_event().ok(), Some(None));
    assert_eq!(decoder.next_event().ok(), Some(None));
}

#[test]
fn push_after_finish_starts_a_new_stream() {
    let mut decoder = Decoder::new();
    decoder.push(b"retry: 20\nid: 1\ndata: a\n\nid: 2\ndata: lost\n");
    assert_eq!(
        decoder.next_event().ok(),
        Some(Some(event("message", "a", "1")))
    );
    decoder.finish();
    assert_eq!(decoder.next_event().ok(), Some(None));

    // The new stream may start with a BOM again; the old pending block is gone.
    decoder.push(b"\xEF\xBB\xBFdata: b\n\n");
    assert_eq!(
        decoder.next_event().ok(),
        Some(Some(event("message", "b", "1")))
    );
    assert_eq!(decoder.last_event_id(), "1");
    assert_eq!(decoder.reconnection_time(), Some(Duration::from_millis(20)));
}

#[test]
fn push_after_finish_drops_what_was_not_taken() {
    let mut decoder = Decoder::new();
    decoder.push(b"data: a\n\ndata: b\n");
    decoder.finish();
    decoder.push(b"\n");
    assert_eq!(decoder.next_event().ok(), Some(None));
}

#[test]
fn reset_drops_what_the_old_connection_left_but_keeps_id_and_retry() {
    let mut decoder = Decoder::new();
    decoder.push(b"retry: 20\nid: 1\ndata: a\n\nid: 2\ndata: b\n\nid: 3\ndata: partial\n");
    assert_eq!(
        decoder.next_event().ok(),
        Some(Some(event("message", "a", "1")))
    );
    decoder.finish();
    decoder.reset();
    // Not "b": that event belonged to the old connection.
    assert_eq!(decoder.next_event().ok(), Some(None));
    assert_eq!(decoder.last_event_id(), "1");
    assert_eq!(decoder.reconnection_time(), Some(Duration::from_millis(20)));

    // The new stream may start with a BOM again.
    decoder.push(b"\xEF\xBB\xBFdata: c\n\n");
    assert_eq!(
        decoder.next_event().ok(),
        Some(Some(event("message", "c", "1")))
    );
}

#[test]
fn reset_without_finish_drops_a_half_received_line() {
    let mut decoder = Decoder::new();
    decoder.push(b"data: a\n\ndata: half");
    decoder.reset();
    decoder.push(b" line\n\n");
    assert_eq!(decoder.next_event().ok(), Some(None));
    decoder.push(b"data: fresh\n\n");
    assert_eq!(decoder.next_event().ok(), Some(Some(message("fresh"))));
}

#[test]
fn reset_clears_an_error_of_the_old_connection() {
    let mut decoder = Decoder::new().max_line_len(8);
    decoder.push(b"data: far too long\n\n");
    assert!(decoder.next_event().is_err());
    decoder.reset();
    decoder.push(b"data: ok\n\n");
    assert_eq!(decoder.next_event().ok(), Some(Some(message("ok"))));
}

// Limits.

#[test]
fn line_too_long_is_error() {
    let decoder = || Decoder::new().max_line_len(8);
    let outcome = decode_chunks_with(decoder(), &[b"data: 12\n\n"]);
    assert_eq!(outcome.events, [message("12")]);
    assert_eq!(outcome.error, None);

    let outcome = decode_chunks_with(decoder(), &[b"data: a\n\ndata: 123\n\n"]);
    assert_eq!(outcome.events, [message("a")]);
    assert_eq!(
        outcome.error.as_deref(),
        Some("sse line exceeds the limit of 8 bytes")
    );
}

#[test]
fn line_limit_does_not_count_the_line_end() {
    let outcome = decode_chunks_with(Decoder::new().max_line_len(8), &[b"data: 12\r\n\r\n"]);
    assert_eq!(outcome.events, [message("12")]);
    assert_eq!(outcome.error, None);
}

#[test]
fn unterminated_line_too_long_is_error_before_its_end_arrives() {
    let mut decoder = Decoder::new().max_line_len(8);
    decoder.push(b"data: 12");
    assert_eq!(decoder.next_event().ok(), Some(None));
    decoder.push(b"3");
    let error = decoder
        .next_event()
        .expect_err("a partial line over the limit");
    assert!(error.is_line_too_long());
    assert!(!error.is_event_too_long());
    assert!(!error.is_body());
    assert!(error.source().is_none());
}

#[test]
fn line_limit_applies_to_comments_and_unknown_fields() {
    let decoder = || Decoder::new().max_line_len(8);
    let outcome = decode_chunks_with(decoder(), &[b": 34567890\n"]);
    assert_eq!(
        outcome.error.as_deref(),
        Some("sse line exceeds the limit of 8 bytes")
    );
    let outcome = decode_chunks_with(decoder(), &[b"x", b"xxxxxxxxx"]);
    assert!(outcome.error.is_some());
}

#[test]
fn default_line_limit_is_64_kib() {
    let mut line = b"data: ".to_vec();
    line.resize(65536, b'x');
    let mut input = line.clone();
    input.extend_from_slice(b"\n\n");
    let outcome = decode_chunks(&[&input]);
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.events.len(), 1);

    line.push(b'x');
    let outcome = decode_chunks(&[&line]);
    assert_eq!(
        outcome.error.as_deref(),
        Some("sse line exceeds the limit of 65536 bytes")
    );
}

#[test]
fn event_too_long_is_error() {
    let decoder = || Decoder::new().max_event_len(10);
    // "123456789" plus its LF is exactly 10 bytes.
    let outcome = decode_chunks_with(decoder(), &[b"data: 123456789\n\n"]);
    assert_eq!(outcome.events, [message("123456789")]);
    assert_eq!(outcome.error, None);

    let outcome = decode_chunks_with(decoder(), &[b"data: 1234567890\n\n"]);
    assert_eq!(outcome.events, []);
    assert_eq!(
        outcome.error.as_deref(),
        Some("sse event exceeds the limit of 10 bytes")
    );

    let outcome = decode_chunks_with(decoder(), &[b"data: 12345\ndata: 1234\n\n"]);
    assert_eq!(
        outcome.error.as_deref(),
        Some("sse event exceeds the limit of 10 bytes")
    );
}

#[test]
fn event_limit_counts_the_event_type() {
    let decoder = || Decoder::new().max_event_len(10);
    let outcome = decode_chunks_with(decoder(), &[b"event: abcde\ndata: 1234\n\n"]);
    assert_eq!(outcome.events, [event("abcde", "1234", "")]);
    let outcome = decode_chunks_with(decoder(), &[b"event: abcdef\ndata: 1234\n\n"]);
    assert!(outcome.error.is_some());
    let outcome = decode_chunks_with(decoder(), &[b"data: 1234\nevent: abcdef\n\n"]);
    assert!(outcome.error.is_some());
}

#[test]
fn event_limit_applies_per_event() {
    let outcome = decode_chunks_with(
        Decoder::new().max_event_len(4),
        &[b"data: 123\n\ndata: 456\n\ndata: 789\n\n"],
    );
    assert_eq!(outcome.error, None);
    assert_eq!(
        outcome.events,
        [message("123"), message("456"), message("789")]
    );
}

#[test]
fn event_limit_error_has_predicate() {
    let mut decoder = Decoder::new().max_event_len(3);
    decoder.push(b"data: abc\n");
    let error = decoder.next_event().expect_err("an event over the limit");
    assert!(error.is_event_too_long());
    assert!(!error.is_line_too_long());
    assert!(!error.is_body());
}

#[test]
fn default_event_limit_is_1_mib() {
    let mut line = b"data: ".to_vec();
    line.resize(60_000, b'x');
    line.push(b'\n');
    let mut decoder = Decoder::new();
    let mut error = None;
    for _ in 0..20 {
        decoder.push(&line);
        if let Err(err) = decoder.next_event() {
            error = Some(err);
            break;
        }
    }
    let error = error.expect("20 lines of 60 000 bytes exceed 1 MiB");
    assert!(error.is_event_too_long());
    assert_eq!(
        error.to_string(),
        "sse event exceeds the limit of 1048576 bytes"
    );
}

#[test]
fn poisoned_after_error() {
    let mut decoder = Decoder::new().max_line_len(4);
    decoder.push(b"data: too long\n\n");
    assert!(decoder.next_event().is_err_and(|e| e.is_line_too_long()));
    decoder.push(b"id\n\n");
    assert!(decoder.next_event().is_err_and(|e| e.is_line_too_long()));
    decoder.finish();
    assert!(decoder.next_event().is_err_and(|e| e.is_line_too_long()));

    let mut decoder = Decoder::new().max_event_len(2);
    decoder.push(b"data: abc\n\n");
    assert!(decoder.next_event().is_err_and(|e| e.is_event_too_long()));
    decoder.push(b"data\n\n");
    assert!(decoder.next_event().is_err_and(|e| e.is_event_too_long()));
}

#[test]
fn decoder_is_clone_debug_default() {
    let mut decoder = Decoder::default();
    decoder.push(b"id: 1\n\ndata: x\n");
    assert_eq!(decoder.next_event().ok(), Some(None));
    let mut copy = decoder.clone();
    copy.push(b"\n");
    assert_eq!(
        copy.next_event().ok(),
        Some(Some(event("message", "x", "1")))
    );
    assert_eq!(decoder.next_event().ok(), Some(None));
    assert!(format!("{decoder:?}").starts_with("Decoder"));
}

#[test]
fn decode_error_is_send_sync_error() {
    fn assert_error<E: std::error::Error + Send + Sync + 'static>() {}
    assert_error::<DecodeError>();
}

// DecodeStream.

fn frames(chunks: &[&'static [u8]]) -> Vec<Result<Frame<Bytes>, Infallible>> {
    chunks
        .iter()
        .map(|chunk| Ok(Frame::data(Bytes::from_static(chunk))))
        .collect()
}

async fn collect<B>(stream: DecodeStream<B>) -> Vec<Result<MessageEvent, DecodeError>>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    stream.collect().await
}

#[tokio::test]
async fn decode_stream_over_full_body() {
    let body = Full::new(Bytes::from_static(
        b"event: a\ndata: 1\n\nid: x\ndata: 2\n\ndata: 3\n",
    ));
    let events: Vec<_> = collect(DecodeStream::new(body))
        .await
        .into_iter()
        .map(Result::ok)
        .collect();
    assert_eq!(
        events,
        [Some(event("a", "1", "")), Some(event("message", "2", "x"))]
    );
}

#[tokio::test]
async fn decode_stream_over_frames_split_anywhere() {
    let body = StreamBody::new(stream::iter(frames(&[
        b"\xEF",
        b"\xBB\xBFda",
        b"ta: a\r",
        b"\n",
        b"data: b\r",
        b"\r",
        b"id: 7\n",
        b"\n",
    ])));
    let events: Vec<_> = collect(DecodeStream::new(body))
        .await
        .into_iter()
        .map(Result::ok)
        .collect();
    assert_eq!(events, [Some(message("a\nb"))]);
}

#[tokio::test]
async fn decode_stream_ignores_trailers() {
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", http::HeaderValue::from_static("abc"));
    let items: Vec<Result<Frame<Bytes>, Infallible>> = vec![
        Ok(Frame::data(Bytes::from_static(b"data: a\n"))),
        Ok(Frame::trailers(trailers)),
        Ok(Frame::data(Bytes::from_static(b"\n"))),
    ];
    let body = StreamBody::new(stream::iter(items));
    let events: Vec<_> = collect(DecodeStream::new(body))
        .await
        .into_iter()
        .map(Result::ok)
        .collect();
    assert_eq!(events, [Some(message("a"))]);
}

#[tokio::test]
async fn decode_stream_discards_unterminated_final_block() {
    let body = StreamBody::new(stream::iter(frames(&[b"data: a\n\n", b"data: b\n"])));
    let mut stream = DecodeStream::new(body);
    assert_eq!(stream.next().await.and_then(Result::ok), Some(message("a")));
    assert!(stream.next().await.is_none());
    assert!(stream.next().await.is_none());
}

#[tokio::test]
async fn decode_stream_exposes_decoder_state() {
    let body = StreamBody::new(stream::iter(frames(&[
        b"retry: 3000\nid: 1\ndata: a\n\n",
        b"id: 2\n\n",
    ])));
    let mut stream = DecodeStream::new(body);
    assert_eq!(
        stream.next().await.and_then(Result::ok),
        Some(event("message", "a", "1"))
    );
    assert_eq!(stream.decoder().last_event_id(), "1");
    assert!(stream.next().await.is_none());
    assert_eq!(stream.decoder().last_event_id(), "2");
    assert_eq!(
        stream.decoder().reconnection_time(),
        Some(Duration::from_millis(3000))
    );
}

#[tokio::test]
async fn decode_stream_with_decoder_keeps_its_state_and_limits() {
    let mut decoder = Decoder::new().max_line_len(16);
    decoder.push(b"id: 9\n\n");
    assert_eq!(decoder.next_event().ok(), Some(None));
    decoder.finish();

    let body = StreamBody::new(stream::iter(frames(&[
        b"data: a\n\n",
        b"data: far too long for the limit\n\n",
    ])));
    let results = collect(DecodeStream::with_decoder(body, decoder)).await;
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].as_ref().ok(), Some(&event("message", "a", "9")));
    assert!(results[1].as_ref().is_err_and(|e| e.is_line_too_long()));
}

#[tokio::test]
async fn decode_stream_ends_after_limit_error() {
    let body = StreamBody::new(stream::iter(frames(&[
        b"data: 0123456789\n\n",
        b"data: a\n\n",
    ])));
    let mut stream = DecodeStream::with_decoder(body, Decoder::new().max_event_len(4));
    assert!(
        stream
            .next()
            .await
            .is_some_and(|r| r.is_err_and(|e| e.is_event_too_long()))
    );
    assert!(stream.next().await.is_none());
    assert!(futures_util::stream::FusedStream::is_terminated(&stream));
}

#[tokio::test]
async fn body_error_surfaces_as_is_body() {
    let items: Vec<Result<Frame<Bytes>, io::Error>> = vec![
        Ok(Frame::data(Bytes::from_static(b"data: a\n\ndata: b\n"))),
        Err(io::Error::other("connection reset")),
        Ok(Frame::data(Bytes::from_static(b"\n"))),
    ];
    let mut stream = DecodeStream::new(StreamBody::new(stream::iter(items)));
    assert_eq!(stream.next().await.and_then(Result::ok), Some(message("a")));

    let error = stream
        .next()
        .await
        .and_then(Result::err)
        .expect("the body error");
    assert!(error.is_body());
    assert!(!error.is_line_too_long());
    assert!(!error.is_event_too_long());
    assert_eq!(error.to_string(), "failed to read the sse body");
    let source = error.source().expect("the body error as source");
    assert_eq!(source.to_string(), "connection reset");
    assert!(source.downcast_ref::<io::Error>().is_some());

    assert!(stream.next().await.is_none());
}

#[tokio::test]
async fn decode_stream_drains_buffered_events_before_polling_body() {
    let polled = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&polled);
    let body = StreamBody::new(
        stream::iter(frames(&[
            b"data: 1\n\ndata: 2\n\ndata: 3\n\n",
            b"data: 4\n\n",
        ]))
        .inspect(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        }),
    );
    let mut stream = DecodeStream::new(body);
    for expected in ["1", "2", "3"] {
        assert_eq!(
            stream.next().await.and_then(Result::ok),
            Some(message(expected))
        );
        assert_eq!(polled.load(Ordering::SeqCst), 1);
    }
    assert_eq!(stream.next().await.and_then(Result::ok), Some(message("4")));
    assert_eq!(polled.load(Ordering::SeqCst), 2);
    assert!(stream.next().await.is_none());
}

// Chunking never changes the result; the decoder matches a naive model.

/// The stream decoded the way the standard describes it: the whole byte stream
/// to text first, then lines, then fields.
fn reference(input: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(input);
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(&text);

    let mut lines = Vec::new();
    let mut line = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                lines.push(std::mem::take(&mut line));
            }
            '\n' => lines.push(std::mem::take(&mut line)),
            c => line.push(c),
        }
    }

    let mut outcome = Outcome {
        events: Vec::new(),
        error: None,
        last_event_id: String::new(),
        reconnection_time: None,
    };
    let (mut data, mut event_type, mut id) = (String::new(), String::new(), String::new());
    for line in lines {
        if line.is_empty() {
            outcome.last_event_id = id.clone();
            if data.is_empty() {
                event_type.clear();
                continue;
            }
            data.pop();
            outcome.events.push(MessageEvent {
                event_type: if event_type.is_empty() {
                    "message".to_owned()
                } else {
                    std::mem::take(&mut event_type)
                },
                data: std::mem::take(&mut data),
                last_event_id: id.clone(),
            });
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (name, value) = match line.split_once(':') {
            Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_str(), ""),
        };
        match name {
            "data" => {
                data.push_str(value);
                data.push('\n');
            }
            "event" => event_type = value.to_owned(),
            "id" if !value.contains('\0') => id = value.to_owned(),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(millis) = value.parse() {
                    outcome.reconnection_time = Some(Duration::from_millis(millis));
                }
            }
            _ => {}
        }
    }
    outcome
}

/// Byte strings that look like event streams: mostly field lines with odd
/// names, separators, values and line ends, with stray bytes mixed in.
fn sse_bytes() -> impl Strategy<Value = Vec<u8>> {
    fn select(options: &[&'static [u8]]) -> impl Strategy<Value = Vec<u8>> + use<> {
        prop::sample::select(options.to_vec()).prop_map(<[u8]>::to_vec)
    }
    let name = select(&[
        b"data",
        b"data",
        b"data",
        b"id",
        b"id",
        b"event",
        b"retry",
        b"retry",
        b"",
        b"Data",
        b"dat",
        b"data ",
        b"\xEF\xBB\xBFdata",
    ]);
    let separator = select(&[b"", b":", b":", b": ", b": ", b":  ", b":\t"]);
    let value = prop::collection::vec(
        select(&[
            b"a",
            b"7",
            b"0",
            b"12",
            b" ",
            b"\0",
            b"\xFF",
            b"\xC3",
            b"\xA9",
            b"\xEF\xBB\xBF",
            b":",
            b".",
            b"-",
            b"+",
        ]),
        0..4,
    )
    .prop_map(|pieces| pieces.concat());
    let line_end = select(&[
        b"\n",
        b"\n",
        b"\r",
        b"\r\n",
        b"\n\n",
        b"\r\r",
        b"\r\n\r\n",
        b"\n\r",
        b"",
    ]);
    let line = (name, separator, value, line_end)
        .prop_map(|(name, separator, value, line_end)| [name, separator, value, line_end].concat());
    let stray = prop_oneof![
        select(&[
            b"\r",
            b"\n",
            b"\xEF",
            b"\xBB",
            b"\xBF",
            b"\xEF\xBB\xBF",
            b":",
            b"\0"
        ]),
        any::<u8>().prop_map(|byte| vec![byte]),
    ];
    let piece = prop_oneof![6 => line, 1 => stray];
    prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

fn decoders() -> impl Strategy<Value = Decoder> {
    prop_oneof![
        Just(Decoder::new()),
        (0usize..24, 0usize..32)
            .prop_map(|(line, event)| { Decoder::new().max_line_len(line).max_event_len(event) }),
    ]
}

fn split_at_points<'a>(input: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut chunks = Vec::new();
    let mut start = 0;
    for &point in points {
        chunks.push(&input[start..point]);
        start = point;
    }
    chunks.push(&input[start..]);
    chunks
}

proptest! {
    #[test]
    fn one_split_anywhere_gives_the_same_result(input in sse_bytes(), decoder in decoders()) {
        let whole = decode_chunks_with(decoder.clone(), &[&input]);
        for point in 0..=input.len() {
            let split = decode_chunks_with(decoder.clone(), &split_at_points(&input, &[point]));
            prop_assert_eq!(&split, &whole, "split at {}", point);
        }
    }

    #[test]
    fn many_splits_give_the_same_result(
        input in sse_bytes(),
        decoder in decoders(),
        points in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let whole = decode_chunks_with(decoder.clone(), &[&input]);
        let mut points: Vec<usize> =
            points.iter().map(|index| index.index(input.len() + 1)).collect();
        points.sort_unstable();
        let split = decode_chunks_with(decoder.clone(), &split_at_points(&input, &points));
        prop_assert_eq!(&split, &whole);

        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        let byte_by_byte = decode_chunks_with(decoder, &bytes);
        prop_assert_eq!(&byte_by_byte, &whole);
    }

    #[test]
    fn decoder_matches_the_reference_model(input in sse_bytes()) {
        prop_assert_eq!(decode_chunks(&[&input]), reference(&input));
    }

    #[test]
    fn shared_events_are_the_events_whatever_the_chunks(
        input in sse_bytes(),
        decoder in decoders(),
        points in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut points: Vec<usize> =
            points.iter().map(|index| index.index(input.len() + 1)).collect();
        points.sort_unstable();
        let chunks = split_at_points(&input, &points);
        prop_assert_eq!(
            decode_shared_chunks_with(decoder.clone(), &chunks),
            decode_chunks_with(decoder, &chunks)
        );
    }
}

// Events whose strings are shared: `SharedEvent`.

fn shared_events(decoder: &mut Decoder) -> Vec<SharedEvent> {
    std::iter::from_fn(|| decoder.next_shared_event().expect("no limit is hit")).collect()
}

#[test]
fn shared_events_read_their_parts_as_str() {
    let mut decoder = Decoder::new();
    decoder.push(b"id: 7\nevent: greeting\ndata: h\xC3\xA9llo\ndata: world\n\ndata: x\n\n");
    let events = shared_events(&mut decoder);
    assert_eq!(events.len(), 2);
    let first = &events[0];
    assert_eq!(
        (first.event_type(), first.data(), first.last_event_id()),
        ("greeting", "h\u{e9}llo\nworld", "7")
    );
    let second = &events[1];
    assert_eq!(
        (second.event_type(), second.data(), second.last_event_id()),
        ("message", "x", "7")
    );
    assert_eq!(
        format!("{second:?}"),
        r#"SharedEvent { event_type: "message", data: "x", last_event_id: "7" }"#
    );
}

#[test]
fn shared_events_compare_and_convert_as_message_events() {
    let mut decoder = Decoder::new();
    decoder.push(b"event: e\ndata: one\ndata: two\n\ndata: x\n\ndata: x\n\n");
    let events = shared_events(&mut decoder);
    assert_eq!(events[0], event("e", "one\ntwo", ""));
    assert_eq!(
        MessageEvent::from(events[0].clone()),
        event("e", "one\ntwo", "")
    );
    assert_eq!(events[1], events[2]);
    assert_ne!(events[0], events[1]);
    assert_eq!(events[1].clone(), message("x"));
}

#[test]
fn shared_events_outlive_the_decoder() {
    let mut decoder = Decoder::new();
    decoder.push(b"id: 1\ndata: first\n\nid: 2\ndata: second\n\n");
    let events = shared_events(&mut decoder);
    drop(decoder);
    let read: Vec<(&str, &str)> = events
        .iter()
        .map(|event| (event.last_event_id(), event.data()))
        .collect();
    assert_eq!(read, [("1", "first"), ("2", "second")]);
}

#[test]
fn values_read_before_a_chunk_ends_are_kept_after_it() {
    let mut decoder = Decoder::new();
    // The block's type and id, and then the last event id, outlive the
    // lines they were read from.
    decoder.push(b"event: e\nid: 1\n");
    assert!(shared_events(&mut decoder).is_empty());
    decoder.push(b"data: x\n");
    decoder.push(b"\n");
    decoder.push(b"data: y\n\n");
    assert_eq!(
        shared_events(&mut decoder),
        [event("e", "x", "1"), event("message", "y", "1")]
    );
    decoder.push(b"event: f\ndata: z1\r\ndata: z2\r\n\r\n");
    assert_eq!(shared_events(&mut decoder), [event("f", "z1\nz2", "1")]);
    assert_eq!(decoder.last_event_id(), "1");
}

#[test]
fn a_reset_keeps_the_last_event_id_read_from_lines_since_released() {
    let mut decoder = Decoder::new();
    decoder.push(b"id: 41\ndata: a\n\n");
    assert_eq!(shared_events(&mut decoder).len(), 1);
    decoder.reset();
    decoder.push(b"data: b\n\n");
    let events = shared_events(&mut decoder);
    assert_eq!(events[0].last_event_id(), "41");
}

#[tokio::test]
async fn shared_decode_stream_over_frames() {
    let body = StreamBody::new(stream::iter(frames(&[
        b"id: 1\nevent: tick\ndata: a",
        b"\n\ndata: b\n",
        b"\n",
    ])));
    let mut events = DecodeStream::shared(body);
    let mut read = Vec::new();
    while let Some(event) = events.next().await {
        read.push(MessageEvent::from(event.expect("decodes")));
    }
    let _: &DecodeStream<_, SharedEvent> = &events;
    assert_eq!(read, [event("tick", "a", "1"), event("message", "b", "1")]);
    assert!(futures_util::stream::FusedStream::is_terminated(&events));
    assert_eq!(events.decoder().last_event_id(), "1");
}

#[test]
fn comments_are_items_only_when_asked_for() {
    let bytes = b": first\n:\n\ndata: x\n:second\n\n";
    let mut plain = Decoder::new();
    plain.push(bytes);
    let event = plain.next_item().unwrap();
    assert!(
        matches!(event, Some(DecodedItem::Event(ref e)) if e.data == "x"),
        "{event:?}"
    );
    assert_eq!(plain.next_item().unwrap(), None);

    let mut with_comments = Decoder::new().with_comments();
    with_comments.push(bytes);
    let mut items = Vec::new();
    while let Some(item) = with_comments.next_item().unwrap() {
        items.push(item);
    }
    assert_eq!(items.len(), 4, "{items:?}");
    assert_eq!(items[0], DecodedItem::Comment("first".to_owned()));
    assert_eq!(items[1], DecodedItem::Comment(String::new()));
    assert_eq!(items[2], DecodedItem::Comment("second".to_owned()));
    assert!(matches!(&items[3], DecodedItem::Event(e) if e.data == "x"));

    // `next_event` skips comments either way.
    let mut events = Decoder::new().with_comments();
    events.push(bytes);
    assert_eq!(
        events.next_event().unwrap().map(|e| e.data),
        Some("x".to_owned())
    );
    assert_eq!(events.next_event().unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn a_test_sees_keep_alive_pings_through_decode_items() {
    let config = tower_sse::SseConfig::new()
        .keep_alive(tower_sse::KeepAlive::new().interval(Duration::from_secs(15)));
    let body = tower_sse::SseBody::with_config(
        stream::iter([tower_sse::Event::new().data("hello")]).chain(stream::pending()),
        config,
    );
    let mut items = DecodeItems::new(Box::pin(body));
    let first = items.next().await.unwrap().unwrap();
    assert!(
        matches!(first, DecodedItem::Event(ref e) if e.data == "hello"),
        "{first:?}"
    );
    let ping = tokio::time::timeout(Duration::from_secs(16), items.next()).await;
    assert_eq!(
        ping.unwrap().unwrap().unwrap(),
        DecodedItem::Comment(String::new())
    );
}
