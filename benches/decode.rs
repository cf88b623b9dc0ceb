//! Decoding throughput: tower-sse's `Decoder` (and its `DecodeStream` over a
//! body) beside the parsers Rust clients use today, `eventsource-stream`
//! (used by `reqwest-eventsource`) and `sse-stream`, on the same bytes,
//! delivered in the same 16 KiB chunks.
//!
//! Every contestant decodes the bytes into the owned events its users get,
//! hands their type, data and id to the bench as `&str`s, and drops them (so
//! the cost of freeing them counts too):
//!
//! - `tower-sse Decoder`: `Decoder::next_event`, a `MessageEvent` of three
//!   `String`s.
//! - `tower-sse Decoder (shared)`: `Decoder::next_shared_event`, a
//!   `SharedEvent`: its three strings are slices of the decoded chunk, under
//!   one reference count; `'static`, `Send` and cheap to clone.
//! - `tower-sse DecodeStream` and `DecodeStream (shared)`: the same over an
//!   `http_body::Body` of the chunks.
//! - `eventsource-stream`: an `Event` of `String`s (type, data, id; retry).
//! - `sse-stream`: a raw block, `Sse`, of `Option<String>`s: it does not
//!   carry the last id over to later events (every event here that has an id
//!   has its own) or default the type to "message", and it yields
//!   metadata-only blocks too; the bench skips those and reads a missing type
//!   as "message".
//!
//! Before timing, every contestant's output is checked to be the same events
//! (type, data, id). Shapes: typical (id, event type, 256-byte JSON data),
//! multiline (16 lines of 40 characters) and large (one 64 KiB line).
//!
//! ```sh
//! cargo bench --bench decode -- --warm-up-time 2 --measurement-time 5
//! ```

use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::FutureExt;
use futures_util::stream::{self, Stream, StreamExt};
use http_body::Frame;
use http_body_util::StreamBody;
use tower_sse::decode::{DecodeStream, Decoder};

/// The size of the chunks the bytes arrive in, as from a socket.
const CHUNK: usize = 16 * 1024;

/// The other parsers have no line limit; tower-sse's default (64 KiB, the
/// field name included) would refuse the large shape.
fn decoder() -> Decoder {
    Decoder::new().max_line_len(1024 * 1024)
}

/// What the bench reads of each event: (type, data, id).
type Each<'a> = &'a mut dyn FnMut(&str, &str, &str);

struct Shape {
    name: &'static str,
    bytes: Vec<u8>,
    events: usize,
}

fn typical() -> Shape {
    let events = 2_000;
    let mut bytes = Vec::new();
    for n in 0..events {
        let json = format!(
            r#"{{"id":{n:>8},"symbol":"ACME","price":101.25,"volume":1200,"bid":101.2,"ask":101.3,"exchange":"XNAS","currency":"USD","time":"2024-05-01T12:00:00.000Z","note":"a typical JSON payload of an SSE event","seq":{n:>8},"flags":["live","delayed"]}}"#
        );
        let json = format!("{json:<256}");
        assert_eq!(json.len(), 256);
        bytes.extend_from_slice(format!("id: {n}\nevent: price\ndata: {json}\n\n").as_bytes());
    }
    Shape {
        name: "typical",
        bytes,
        events,
    }
}

fn multiline() -> Shape {
    let events = 1_000;
    let mut bytes = Vec::new();
    for n in 0..events {
        for line in 0..16 {
            let text = format!("event {n:>6} line {line:>2} of sixteen lines..");
            let text = format!("{text:<40}");
            assert_eq!(text.len(), 40);
            bytes.extend_from_slice(format!("data: {text}\n").as_bytes());
        }
        bytes.push(b'\n');
    }
    Shape {
        name: "multiline",
        bytes,
        events,
    }
}

fn large() -> Shape {
    let events = 16;
    let line = "x".repeat(64 * 1024);
    let mut bytes = Vec::new();
    for _ in 0..events {
        bytes.extend_from_slice(format!("data: {line}\n\n").as_bytes());
    }
    Shape {
        name: "large",
        bytes,
        events,
    }
}

fn chunks(bytes: &[u8]) -> Vec<Bytes> {
    bytes.chunks(CHUNK).map(Bytes::copy_from_slice).collect()
}

// Each parser is an out-of-line function, so that a profiler can single it
// out: `valgrind --tool=callgrind --toggle-collect='*decode::sse_stream*'
// target/release/deps/decode-* --bench --profile-time 2 typical/sse-stream`.

/// Drains a stream whose every item is ready.
fn drain<S: Stream + Unpin>(mut stream: S, mut each: impl FnMut(S::Item)) {
    while let Some(item) = stream.next().now_or_never().expect("every chunk is ready") {
        each(item);
    }
}

/// The chunks as the frames of an `http_body::Body`.
fn body(chunks: &[Bytes]) -> impl http_body::Body<Data = Bytes, Error = Infallible> + Unpin {
    StreamBody::new(stream::iter(
        chunks
            .iter()
            .cloned()
            .map(|chunk| Ok::<_, Infallible>(Frame::data(chunk))),
    ))
}

#[inline(never)]
fn tower_sse_decoder(chunks: &[Bytes], each: Each<'_>) {
    let mut decoder = decoder();
    for chunk in chunks {
        decoder.push(chunk);
        while let Some(event) = decoder.next_event().expect("decodes") {
            each(&event.event_type, &event.data, &event.last_event_id);
        }
    }
    decoder.finish();
    while let Some(event) = decoder.next_event().expect("decodes") {
        each(&event.event_type, &event.data, &event.last_event_id);
    }
}

#[inline(never)]
fn tower_sse_decoder_shared(chunks: &[Bytes], each: Each<'_>) {
    let mut decoder = decoder();
    for chunk in chunks {
        decoder.push(chunk);
        while let Some(event) = decoder.next_shared_event().expect("decodes") {
            each(event.event_type(), event.data(), event.last_event_id());
        }
    }
    decoder.finish();
    while let Some(event) = decoder.next_shared_event().expect("decodes") {
        each(event.event_type(), event.data(), event.last_event_id());
    }
}

#[inline(never)]
fn tower_sse_stream(chunks: &[Bytes], each: Each<'_>) {
    drain(
        DecodeStream::with_decoder(body(chunks), decoder()),
        |event| {
            let event = event.expect("decodes");
            each(&event.event_type, &event.data, &event.last_event_id);
        },
    );
}

#[inline(never)]
fn tower_sse_stream_shared(chunks: &[Bytes], each: Each<'_>) {
    drain(
        DecodeStream::shared_with_decoder(body(chunks), decoder()),
        |event| {
            let event = event.expect("decodes");
            each(event.event_type(), event.data(), event.last_event_id());
        },
    );
}

#[inline(never)]
fn eventsource_stream(chunks: &[Bytes], each: Each<'_>) {
    let bytes = stream::iter(chunks.iter().cloned().map(Ok::<_, Infallible>));
    drain(eventsource_stream::EventStream::new(bytes), |event| {
        let event = event.expect("decodes");
        each(&event.event, &event.data, &event.id);
    });
}

#[inline(never)]
fn sse_stream(chunks: &[Bytes], each: Each<'_>) {
    let bytes = stream::iter(chunks.iter().cloned().map(Ok::<_, std::io::Error>));
    drain(sse_stream::SseByteStream::new(bytes), |block| {
        let block = block.expect("decodes");
        if let Some(data) = &block.data {
            let event_type = block.event.as_deref().unwrap_or("message");
            each(event_type, data, block.id.as_deref().unwrap_or_default());
        }
    });
}

type Parser = fn(&[Bytes], Each<'_>);

const PARSERS: [(&str, Parser); 6] = [
    ("tower-sse Decoder", tower_sse_decoder),
    ("tower-sse Decoder (shared)", tower_sse_decoder_shared),
    ("tower-sse DecodeStream", tower_sse_stream),
    ("tower-sse DecodeStream (shared)", tower_sse_stream_shared),
    ("eventsource-stream", eventsource_stream),
    ("sse-stream", sse_stream),
];

/// An event as every parser reports it: (type, data, id).
type Fields = (String, String, String);

fn collect(parser: Parser, chunks: &[Bytes]) -> Vec<Fields> {
    let mut events = Vec::new();
    parser(chunks, &mut |event_type, data, id| {
        events.push((event_type.to_owned(), data.to_owned(), id.to_owned()));
    });
    events
}

fn decode(c: &mut Criterion) {
    for shape in [typical(), multiline(), large()] {
        let chunks = chunks(&shape.bytes);

        let reference = collect(tower_sse_decoder, &chunks);
        assert_eq!(reference.len(), shape.events, "{}", shape.name);
        for (name, parser) in PARSERS {
            assert!(
                collect(parser, &chunks) == reference,
                "{name} decodes {} differently",
                shape.name
            );
        }

        let mut group = c.benchmark_group(format!("decode/{}", shape.name));
        group.throughput(Throughput::ElementsAndBytes {
            elements: shape.events as u64,
            bytes: shape.bytes.len() as u64,
        });
        for (name, parser) in PARSERS {
            group.bench_function(name, |b| {
                b.iter(|| {
                    let mut count = 0usize;
                    parser(black_box(&chunks), &mut |event_type, data, id| {
                        black_box((event_type, data, id));
                        count += 1;
                    });
                    count
                });
            });
        }
        group.finish();
    }
}

criterion_group!(benches, decode);
criterion_main!(benches);
