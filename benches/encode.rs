//! Encoding throughput: an SSE response body over an in-memory stream of
//! 10,000 ready events, polled to completion, keep-alive on (15 s) as a real
//! app runs it. Contestants on identical events:
//!
//! - `tower_sse`: `SseBody` with the default frame bound;
//! - `tower_sse_frame_per_event`: `SseBody` with `max_frame_bytes(0)`;
//! - `tower_sse_no_keep_alive`: keep-alive off (shows keep-alive costs no
//!   timer operation per event);
//! - `axum`: `axum::response::Sse` with its default keep-alive;
//! - `warp`: `warp::sse::reply` with `warp::sse::keep_alive()`;
//! - `lower_bound`: a hand-written body that writes the same bytes straight
//!   into one buffer per frame of ready events: the least work there is.
//!
//! Shapes: `tiny` (`data: x`), `typical` (id `12345`, type `update`, 256 bytes
//! of JSON), `multiline` (16 lines of 40 characters) and `large` (64 KiB, one
//! line), each twice: with `&'static str` data, and (`shared-*`) as
//! applications hold data they fan out: one `Arc<str>` shared by every event
//! (each contestant takes it as its API allows: tower-sse without a copy,
//! axum and warp by copying it), the id a string held at run time.
//!
//! Before timing, every contestant's output is decoded with
//! `tower_sse::decode` and checked to be the same events.
//!
//! Run: `cargo bench --bench encode`.

use std::convert::Infallible;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::response::IntoResponse;
use bytes::{BufMut, Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::stream::{self, Stream, StreamExt};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tower_sse::decode::{Decoder, MessageEvent};
use tower_sse::{Event, KeepAlive, SseBody, SseConfig};
use warp::Reply;

const EVENTS: usize = 10_000;
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// One event shape: optional id and type, and the data.
#[derive(Clone, Copy)]
struct Shape {
    name: &'static str,
    id: Option<&'static str>,
    event_type: Option<&'static str>,
    data: &'static str,
    /// Data held in one `Arc<str>` shared by all events, the id in a string
    /// made at run time.
    shared: bool,
}

/// What a body's events are made from: the shape's values, shared the way
/// the shape says.
#[derive(Clone)]
struct Values {
    id: Option<Arc<str>>,
    data: Arc<str>,
}

impl Values {
    fn of(shape: Shape) -> Self {
        Self {
            id: shape.id.map(|id| Arc::from(id.to_owned())),
            data: Arc::from(shape.data.to_owned()),
        }
    }
}

fn shapes() -> Vec<Shape> {
    let mut json = String::from("{\"symbol\":\"ACME\",\"prices\":[");
    while json.len() < 254 {
        json.push_str("1234,");
    }
    json.truncate(254);
    json.push_str("]}");
    let multiline = vec!["x".repeat(40); 16].join("\n");
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let plain = [
        Shape {
            name: "tiny",
            id: None,
            event_type: None,
            data: "x",
            shared: false,
        },
        Shape {
            name: "typical",
            id: Some("12345"),
            event_type: Some("update"),
            data: leak(json),
            shared: false,
        },
        Shape {
            name: "multiline",
            id: None,
            event_type: None,
            data: leak(multiline),
            shared: false,
        },
        Shape {
            name: "large",
            id: None,
            event_type: None,
            data: leak("y".repeat(64 * 1024)),
            shared: false,
        },
    ];
    let shared = plain.map(|shape| Shape {
        name: leak(format!("shared-{}", shape.name)),
        shared: true,
        ..shape
    });
    plain.into_iter().chain(shared).collect()
}

fn tower_sse_events(shape: Shape) -> impl Stream<Item = Event> + Send + Sync + 'static {
    let values = Values::of(shape);
    stream::iter(0..EVENTS).map(move |_| {
        let mut event = Event::new();
        if shape.shared {
            if let Some(id) = &values.id {
                event = event.id(&**id);
            }
        } else if let Some(id) = shape.id {
            event = event.id(id);
        }
        if let Some(event_type) = shape.event_type {
            event = event.event(event_type);
        }
        if shape.shared {
            event.data(&values.data)
        } else {
            event.data(shape.data)
        }
    })
}

fn tower_sse_body(shape: Shape, config: SseConfig) -> BoxedBody {
    boxed(SseBody::with_config(tower_sse_events(shape), config))
}

fn axum_body(shape: Shape) -> BoxedBody {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let values = Values::of(shape);
    let events = stream::iter(0..EVENTS).map(move |_| {
        let mut event = Event::default();
        if shape.shared {
            if let Some(id) = &values.id {
                event = event.id(&**id);
            }
        } else if let Some(id) = shape.id {
            event = event.id(id);
        }
        if let Some(event_type) = shape.event_type {
            event = event.event(event_type);
        }
        let event = if shape.shared {
            event.data(&*values.data)
        } else {
            event.data(shape.data)
        };
        Ok::<_, Infallible>(event)
    });
    boxed(
        Sse::new(events)
            .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
            .into_response()
            .into_body(),
    )
}

fn warp_body(shape: Shape) -> BoxedBody {
    use warp::sse::Event;
    let values = Values::of(shape);
    let events = stream::iter(0..EVENTS).map(move |_| {
        let mut event = Event::default();
        if shape.shared {
            if let Some(id) = &values.id {
                event = event.id(&**id);
            }
        } else if let Some(id) = shape.id {
            event = event.id(id);
        }
        if let Some(event_type) = shape.event_type {
            event = event.event(event_type);
        }
        let event = if shape.shared {
            event.data(&*values.data)
        } else {
            event.data(shape.data)
        };
        Ok::<_, Infallible>(event)
    });
    let events = warp::sse::keep_alive().interval(KEEP_ALIVE).stream(events);
    boxed(warp::sse::reply(events).into_response().into_body())
}

/// The least work that produces the same bytes from the same stream: each
/// item's fields written straight into one buffer for all ready items, up to
/// the same frame bound, no timers.
struct LowerBound<S> {
    shape: Shape,
    items: S,
}

impl<S, D> Body for LowerBound<S>
where
    S: Stream<Item = D> + Unpin,
    D: AsRef<str>,
{
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let shape = self.shape;
        let mut buf = BytesMut::new();
        while buf.len() < SseConfig::DEFAULT_MAX_FRAME_BYTES {
            let Poll::Ready(Some(data)) = self.items.poll_next_unpin(cx) else {
                break;
            };
            if buf.capacity() == 0 {
                buf.reserve(SseConfig::DEFAULT_MAX_FRAME_BYTES + 1024);
            }
            if let Some(id) = shape.id {
                buf.put_slice(b"id: ");
                buf.put_slice(id.as_bytes());
                buf.put_u8(b'\n');
            }
            if let Some(event_type) = shape.event_type {
                buf.put_slice(b"event: ");
                buf.put_slice(event_type.as_bytes());
                buf.put_u8(b'\n');
            }
            for line in data.as_ref().split('\n') {
                buf.put_slice(b"data: ");
                buf.put_slice(line.as_bytes());
                buf.put_u8(b'\n');
            }
            buf.put_u8(b'\n');
        }
        if buf.is_empty() {
            // An in-memory stream is never pending: empty means ended.
            return Poll::Ready(None);
        }
        Poll::Ready(Some(Ok(Frame::data(buf.freeze()))))
    }
}

/// Polls `body` to its end; returns (frames, bytes) or the whole output.
async fn drain<B: Body<Data = Bytes>>(body: B, keep: bool) -> (usize, Vec<u8>) {
    let mut body = std::pin::pin!(body);
    let mut frames = 0;
    let mut all = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            panic!("body failed")
        };
        if let Ok(data) = frame.into_data() {
            frames += 1;
            if keep {
                all.extend_from_slice(&data);
            }
            black_box(data);
        }
    }
    (frames, all)
}

fn decode(bytes: &[u8]) -> Vec<MessageEvent> {
    let mut decoder = Decoder::new().max_line_len(1 << 20).max_event_len(1 << 20);
    decoder.push(bytes);
    decoder.finish();
    let mut events = Vec::new();
    while let Some(event) = decoder.next_event().expect("decodes") {
        events.push(event);
    }
    events
}

type BoxedBody =
    Pin<Box<dyn Body<Data = Bytes, Error = Box<dyn std::error::Error + Send + Sync>> + Send>>;
type MakeBody = fn(Shape) -> BoxedBody;

fn boxed<B>(body: B) -> BoxedBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Box::pin(body.map_err(Into::into))
}

fn contestants() -> Vec<(&'static str, MakeBody)> {
    vec![
        ("tower_sse", |shape| {
            tower_sse_body(
                shape,
                SseConfig::new().keep_alive(KeepAlive::new().interval(KEEP_ALIVE)),
            )
        }),
        ("tower_sse_frame_per_event", |shape| {
            tower_sse_body(
                shape,
                SseConfig::new()
                    .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
                    .max_frame_bytes(0),
            )
        }),
        ("tower_sse_no_keep_alive", |shape| {
            tower_sse_body(shape, SseConfig::new().without_keep_alive())
        }),
        ("axum", axum_body),
        ("warp", warp_body),
        ("lower_bound", |shape| {
            if shape.shared {
                let data = Values::of(shape).data;
                let items = stream::iter(0..EVENTS).map(move |_| Arc::clone(&data));
                return boxed(LowerBound { shape, items });
            }
            let items = stream::iter(0..EVENTS).map(move |_| shape.data);
            boxed(LowerBound { shape, items })
        }),
    ]
}

fn encode(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    // axum's and warp's bodies create their keep-alive timer when built.
    let _guard = runtime.enter();

    for shape in shapes() {
        // Every contestant must produce the same events before it is timed.
        let reference = decode(&runtime.block_on(drain((contestants()[0].1)(shape), true)).1);
        assert_eq!(reference.len(), EVENTS);
        for (name, make) in contestants() {
            let (frames, bytes) = runtime.block_on(drain(make(shape), true));
            assert_eq!(decode(&bytes), reference, "{name} decodes differently");
            println!(
                "encode/{}/{name}: {frames} frames per {EVENTS} events",
                shape.name
            );
        }

        let mut group = c.benchmark_group(format!("encode/{}", shape.name));
        group.throughput(Throughput::Elements(EVENTS as u64));
        if shape.name.ends_with("large") {
            group.sample_size(10);
        }
        for (name, make) in contestants() {
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| runtime.block_on(drain(make(shape), false)));
            });
        }
        group.finish();
    }
}

criterion_group!(benches, encode);
criterion_main!(benches);
