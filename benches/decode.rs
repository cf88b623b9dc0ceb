//! Decoding throughput: tower-sse's `Decoder` (and its `DecodeStream` over a
//! body) beside the parsers Rust clients use today, `eventsource-stream`
//! (used by `reqwest-eventsource`) and `sse-stream`, on the same bytes,
//! delivered in the same 16 KiB chunks.
//!
//! Before timing, every parser's output is checked to be the same events
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

/// An event as every parser reports it: (type, data, id).
type Fields = (String, String, String);

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

#[inline(never)]
fn tower_sse_decoder(chunks: &[Bytes], mut each: impl FnMut(Fields)) {
    let mut decoder = decoder();
    for chunk in chunks {
        decoder.push(chunk);
        while let Some(event) = decoder.next_event().expect("decodes") {
            each((event.event_type, event.data, event.last_event_id));
        }
    }
    decoder.finish();
    while let Some(event) = decoder.next_event().expect("decodes") {
        each((event.event_type, event.data, event.last_event_id));
    }
}

#[inline(never)]
fn tower_sse_stream(chunks: &[Bytes], mut each: impl FnMut(Fields)) {
    let frames = stream::iter(
        chunks
            .iter()
            .cloned()
            .map(|chunk| Ok::<_, Infallible>(Frame::data(chunk))),
    );
    drain(
        DecodeStream::with_decoder(StreamBody::new(frames), decoder()),
        |event| {
            let event = event.expect("decodes");
            each((event.event_type, event.data, event.last_event_id));
        },
    );
}

#[inline(never)]
fn eventsource_stream(chunks: &[Bytes], mut each: impl FnMut(Fields)) {
    let bytes = stream::iter(chunks.iter().cloned().map(Ok::<_, Infallible>));
    drain(eventsource_stream::EventStream::new(bytes), |event| {
        let event = event.expect("decodes");
        each((event.event, event.data, event.id));
    });
}

#[inline(never)]
fn sse_stream(chunks: &[Bytes], mut each: impl FnMut(Fields)) {
    let bytes = stream::iter(chunks.iter().cloned().map(Ok::<_, std::io::Error>));
    drain(sse_stream::SseByteStream::new(bytes), |block| {
        let block = block.expect("decodes");
        // Raw blocks: metadata-only blocks are skipped, the type defaults to
        // "message", and an id is the block's own (every event here that has
        // an id has its own).
        if let Some(data) = block.data {
            let event_type = block.event.unwrap_or_else(|| "message".to_owned());
            each((event_type, data, block.id.unwrap_or_default()));
        }
    });
}

type Parser = fn(&[Bytes], &mut dyn FnMut(Fields));

const PARSERS: [(&str, Parser); 4] = [
    ("tower-sse Decoder", |chunks, each| {
        tower_sse_decoder(chunks, each)
    }),
    ("tower-sse DecodeStream", |chunks, each| {
        tower_sse_stream(chunks, each)
    }),
    ("eventsource-stream", |chunks, each| {
        eventsource_stream(chunks, each)
    }),
    ("sse-stream", |chunks, each| sse_stream(chunks, each)),
];

fn decode(c: &mut Criterion) {
    for shape in [typical(), multiline(), large()] {
        let chunks = chunks(&shape.bytes);

        let mut reference = Vec::new();
        tower_sse_decoder(&chunks, |fields| reference.push(fields));
        assert_eq!(reference.len(), shape.events, "{}", shape.name);
        for (name, parser) in PARSERS {
            let mut events = Vec::new();
            parser(&chunks, &mut |fields| events.push(fields));
            assert!(
                events == reference,
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
                    parser(black_box(&chunks), &mut |fields| {
                        black_box(fields);
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
