//! `SseBody` through its public API: framing and batching, keep-alive,
//! shutdown, maximum age, stream errors and the close hook.

mod support;

use std::io;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http_body::Body;
use tokio::time::{Instant, advance, timeout};
use tower_sse::{
    CloseReason, Data, EncodedEvent, Event, EventError, Farewell, KeepAlive, Shutdown, SseBody,
    SseConfig,
};

use support::{CloseRecorder, channel, collect_frames, next_frame, poll_frame_now};

const KIB: usize = 1024;
const MAX_FRAME: usize = SseConfig::DEFAULT_MAX_FRAME_BYTES;

fn numbered(n: usize) -> Event {
    Event::new().id(n).data(format!("event {n}"))
}

fn encoded(event: Event) -> Bytes {
    event.encode().expect("valid event").into_bytes()
}

fn ping() -> Poll<Option<Bytes>> {
    Poll::Ready(Some(Bytes::from_static(b":\n\n")))
}

fn ended() -> Poll<Option<Bytes>> {
    Poll::Ready(None)
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn secs(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// Asserts that `frames` carry exactly `events`, in order, each frame a run of
/// whole events; returns how many events each frame holds.
fn events_per_frame(frames: &[Bytes], events: &[Bytes]) -> Vec<usize> {
    let mut events = events.iter();
    let mut counts = Vec::new();
    for (index, frame) in frames.iter().enumerate() {
        let mut rest = &frame[..];
        let mut count = 0;
        while !rest.is_empty() {
            let event = events
                .next()
                .unwrap_or_else(|| panic!("frame {index} holds bytes beyond the events sent"));
            assert!(
                rest.starts_with(event),
                "frame {index} does not continue with the next event"
            );
            rest = &rest[event.len()..];
            count += 1;
        }
        assert!(count > 0, "frame {index} is empty");
        counts.push(count);
    }
    assert_eq!(events.len(), 0, "events missing from the frames");
    counts
}

// Frames

#[tokio::test(start_paused = true)]
async fn ready_events_are_batched_into_fewer_frames_in_order() {
    let count = 1000;
    let expected: Vec<Bytes> = (0..count).map(|n| encoded(numbered(n))).collect();
    let mut body = Box::pin(SseBody::new(stream::iter((0..count).map(numbered))));

    let frames = collect_frames(&mut body).await;

    assert!(
        frames.len() < count,
        "{} frames for {count} events",
        frames.len()
    );
    assert_eq!(frames.concat(), expected.concat());
    events_per_frame(&frames, &expected);
}

#[tokio::test(start_paused = true)]
async fn frames_stay_within_the_default_bound_unless_one_event_is_larger() {
    let big = 64 * KIB;
    let events: Vec<Event> = (0..200)
        .map(|n| {
            if n == 100 {
                // Two lines: copied into a frame of its own, not sent as a
                // piece.
                return Event::new()
                    .id(n)
                    .data(format!("{}\n{}", "x".repeat(big), "x"));
            }
            Event::new().id(n).data("x".repeat(1000 + n))
        })
        .collect();
    let expected: Vec<Bytes> = events.iter().cloned().map(encoded).collect();
    let mut body = Box::pin(SseBody::new(stream::iter(events)));

    let frames = collect_frames(&mut body).await;

    let counts = events_per_frame(&frames, &expected);
    for (frame, count) in frames.iter().zip(&counts) {
        assert!(
            frame.len() <= MAX_FRAME || *count == 1,
            "a frame of {} bytes holds {count} events",
            frame.len()
        );
    }
    let oversized: Vec<&Bytes> = frames.iter().filter(|f| f.len() > MAX_FRAME).collect();
    assert_eq!(oversized, [&expected[100]]);
    assert!(counts.iter().any(|&count| count > 1), "no batching at all");
}

fn events_in(frame: &Bytes) -> usize {
    frame.windows(2).filter(|pair| pair == b"\n\n").count()
}

fn kilobyte_events() -> impl futures_util::Stream<Item = Event> {
    stream::iter((0..).map(|n| Event::new().id(n).data("x".repeat(1000))))
}

/// Polls `body` for frames that the caller keeps (the server has not
/// written them) until one carries a single event; returns the frames before
/// it.
async fn batches_until_a_single_event<B>(body: &mut B) -> Vec<Bytes>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    let mut batches = Vec::new();
    loop {
        let frame = next_frame(body).await.expect("the stream is endless");
        if events_in(&frame) == 1 {
            return batches;
        }
        batches.push(frame);
        assert!(batches.len() < 100, "no single event");
    }
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_holds_a_frame_unwritten_gets_one_event_per_frame() {
    let mut body = Box::pin(SseBody::new(kilobyte_events()));

    // The server holds what it got (a slow client has not read it): about a
    // frame's worth of batched events, then one event a frame. (A frame's
    // bound ends with the event that crosses it.)
    let batches = batches_until_a_single_event(&mut body).await;
    let held: usize = batches.iter().map(Bytes::len).sum();
    assert!(
        (MAX_FRAME - 1100..=MAX_FRAME + 1100).contains(&held),
        "{held} bytes in batches"
    );
    for _ in 0..15 {
        assert_eq!(events_in(&next_frame(&mut body).await.unwrap()), 1);
    }
    // Written and dropped: batches again.
    drop(batches);
    let frame = next_frame(&mut body).await.unwrap();
    assert!(events_in(&frame) > 1, "batching resumes");
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_writes_each_frame_gets_full_batches() {
    let mut body = Box::pin(SseBody::new(kilobyte_events()));
    let mut pauses = 0;
    for _ in 0..20 {
        // A fast client: the server writes the frame and drops it.
        match poll_frame_now(&mut body) {
            Poll::Ready(Some(frame)) => {
                assert!(events_in(&frame) > 10, "{} events", events_in(&frame));
                assert!(frame.len() <= MAX_FRAME);
            }
            Poll::Pending => pauses += 1,
            Poll::Ready(None) => panic!("the stream is endless"),
        }
    }
    assert_eq!(pauses, 0, "a written frame leaves nothing to wait for");
}

#[tokio::test(start_paused = true)]
async fn small_frames_are_batched_until_16_kib_wait_unwritten() {
    let config = SseConfig::new().max_frame_bytes(4 * KIB);
    let mut body = Box::pin(SseBody::with_config(kilobyte_events(), config));
    let batches = batches_until_a_single_event(&mut body).await;
    assert!(batches.iter().all(|frame| frame.len() <= 4 * KIB));
    let held: usize = batches.iter().map(Bytes::len).sum();
    assert!(
        (16 * KIB - 1100..=16 * KIB + 1100).contains(&held),
        "{held} bytes in batches"
    );
}

#[tokio::test]
async fn an_always_ready_stream_yields_its_worker_after_a_bounded_number_of_frames() {
    let events = stream::iter((0..).map(numbered));
    let config = SseConfig::new().max_frame_bytes(0);
    let mut body = Box::pin(SseBody::with_config(events, config));
    // All the frames one poll of the task gets before the body gives way.
    let frames = std::future::poll_fn(|cx| {
        let mut frames = 0_usize;
        while frames < 100_000 {
            match body.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(_))) => frames += 1,
                Poll::Pending => break,
                other => panic!("the stream is endless: {other:?}"),
            }
        }
        Poll::Ready(frames)
    })
    .await;
    assert!((1..=128).contains(&frames), "{frames} frames in one poll");
    // It goes on once the task runs again.
    assert!(next_frame(&mut body).await.is_some());
}

#[tokio::test(start_paused = true)]
async fn max_frame_bytes_sets_the_batch_bound() {
    let events: Vec<Event> = (0..50).map(numbered).collect();
    let expected: Vec<Bytes> = events.iter().cloned().map(encoded).collect();
    let config = SseConfig::new().max_frame_bytes(100);
    let mut body = Box::pin(SseBody::with_config(stream::iter(events), config));

    let frames = collect_frames(&mut body).await;

    let counts = events_per_frame(&frames, &expected);
    assert!(frames.iter().all(|frame| frame.len() <= 100));
    assert!(counts.iter().any(|&count| count > 1), "no batching at all");
}

#[tokio::test(start_paused = true)]
async fn zero_max_frame_bytes_sends_one_event_per_frame() {
    let events: Vec<Event> = (0..10).map(numbered).collect();
    let expected: Vec<Bytes> = events.iter().cloned().map(encoded).collect();
    let config = SseConfig::new().max_frame_bytes(0);
    let mut body = Box::pin(SseBody::with_config(stream::iter(events), config));

    let frames = collect_frames(&mut body).await;

    assert_eq!(frames, expected);
}

#[tokio::test(start_paused = true)]
async fn large_data_goes_out_as_a_piece_of_its_own_without_a_copy() {
    let payload = Bytes::from(vec![b'y'; 64 * KIB]);
    let small = Event::new().data("before");
    let big = Event::new()
        .id("a-1")
        .event("blob")
        .data(Data::try_from(payload.clone()).unwrap());
    let after = Event::new().data("after");
    let expected = [
        encoded(small.clone()),
        encoded(big.clone()),
        encoded(after.clone()),
    ];
    let mut body = Box::pin(SseBody::new(stream::iter([small, big, after])));

    let frames = collect_frames(&mut body).await;

    assert_eq!(frames.concat(), expected.concat());
    assert_eq!(frames[0], "data: before\n\nid: a-1\nevent: blob\ndata: ");
    assert_eq!(
        frames[1].as_ptr(),
        payload.as_ptr(),
        "the payload was copied"
    );
    assert_eq!(frames[1].len(), payload.len());
    assert_eq!(frames[2], "\n\n");
}

#[tokio::test(start_paused = true)]
async fn shared_data_of_every_form_is_written_exactly() {
    let shared: Arc<str> = Arc::from("shared ∑ data");
    let large: Arc<str> = Arc::from("z".repeat(64 * KIB));
    let borrowed = String::from("borrowed");
    let events = vec![
        Event::new().data(&shared),
        Event::new().data(Arc::clone(&shared)),
        Event::new().data(Data::try_from(Bytes::from_static("bytes ∑".as_bytes())).unwrap()),
        Event::new().data(Data::from_text_bytes(Bytes::from_static(b"known text"))),
        Event::new().data(&borrowed),
        Event::new().data(Data::copied(borrowed.as_str())),
        Event::new().id(9).data(&large),
        Event::new().comment(Arc::clone(&shared)).data("x"),
    ];
    let mut expected = String::new();
    for data in [
        &*shared,
        &*shared,
        "bytes ∑",
        "known text",
        "borrowed",
        "borrowed",
    ] {
        expected.push_str(&format!("data: {data}\n\n"));
    }
    expected.push_str(&format!("id: 9\ndata: {large}\n\n: {shared}\ndata: x\n\n"));
    let mut body = Box::pin(SseBody::new(stream::iter(events)));

    let frames = collect_frames(&mut body).await;

    assert_eq!(frames.concat(), expected.as_bytes());
}

#[test]
fn bytes_that_are_not_utf8_are_refused_as_data() {
    assert!(Data::try_from(Bytes::from_static(b"\xff")).is_err());
}

#[tokio::test(start_paused = true)]
async fn each_event_comes_out_as_soon_as_it_is_sent() {
    let (sender, events) = channel();
    let mut body = Box::pin(SseBody::new(events));
    assert_eq!(poll_frame_now(&mut body), Poll::Pending);

    for n in 0..5 {
        sender.send(numbered(n)).unwrap();
        assert_eq!(
            poll_frame_now(&mut body),
            Poll::Ready(Some(encoded(numbered(n))))
        );
        assert_eq!(poll_frame_now(&mut body), Poll::Pending);
    }
}

#[tokio::test(start_paused = true)]
async fn events_sent_together_come_out_together_without_waiting() {
    let (sender, events) = channel();
    let mut body = Box::pin(SseBody::new(events));
    assert_eq!(poll_frame_now(&mut body), Poll::Pending);

    sender.send(numbered(1)).unwrap();
    sender.send(numbered(2)).unwrap();
    let frame = poll_frame_now(&mut body);

    let both = [encoded(numbered(1)), encoded(numbered(2))].concat();
    assert_eq!(frame, Poll::Ready(Some(Bytes::from(both))));
    assert_eq!(poll_frame_now(&mut body), Poll::Pending);
}

// Keep-alive

#[tokio::test(start_paused = true)]
async fn idle_stream_is_pinged_every_15_seconds_by_default() {
    let (_sender, events) = channel::<Event>();
    let mut body = Box::pin(SseBody::new(events));
    assert_eq!(poll_frame_now(&mut body), Poll::Pending);

    advance(ms(14_900)).await;
    assert_eq!(poll_frame_now(&mut body), Poll::Pending);
    advance(ms(200)).await;
    assert_eq!(poll_frame_now(&mut body), ping());
    assert_eq!(poll_frame_now(&mut body), Poll::Pending);

    advance(ms(14_800)).await;
    assert_eq!(poll_frame_now(&mut body), Poll::Pending);
    advance(ms(200)).await;
    assert_eq!(poll_frame_now(&mut body), ping());
}

#[tokio::test(start_paused = true)]
async fn custom_interval_and_text_set_the_ping() {
    let keep_alive = KeepAlive::new().interval(secs(5)).text("ping");
    let (_sender, events) = channel::<Event>();
    let mut body = Box::pin(SseBody::with_config(
        events,
        SseConfig::new().keep_alive(keep_alive),
    ));
    assert_eq!(poll_frame_now(&mut body), Poll::Pending);

    advance(ms(4_900)).await;
    assert_eq!(poll_frame_now(&mut body), Poll::Pending);
    advance(ms(200)).await;
    assert_eq!(
        poll_frame_now(&mut body),
        Poll::Ready(Some(Bytes::from_static(b": ping\n\n")))
    );
}

#[tokio::test(start_paused = true)]
async fn ping_can_be_an_event() -> Result<(), EventError> {
    let keep_alive = KeepAlive::new()
        .interval(secs(5))
        .event(Event::new().event("ping").data("").encode()?);
    let (_sender, events) = channel::<Event>();
    let mut body = Box::pin(SseBody::with_config(
        events,
        SseConfig::new().keep_alive(keep_alive),
    ));
    assert_eq!(poll_frame_now(&mut body), Poll::Pending);

    advance(ms(5_100)).await;
    assert_eq!(
        poll_frame_now(&mut body),
        Poll::Ready(Some(Bytes::from_static(b"event: ping\ndata: \n\n")))
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn no_ping_while_events_flow() {
    let (sender, events) = channel();
    let mut body = Box::pin(SseBody::new(events));
    let mut sent = Vec::new();
    let mut received = Vec::new();

    // An event every 5 seconds for a minute, with the default 15 s interval.
    for n in 0..=12 {
        if n > 0 {
            advance(secs(5)).await;
        }
        assert_eq!(poll_frame_now(&mut body), Poll::Pending, "at {}s", n * 5);
        sender.send(numbered(n)).unwrap();
        sent.push(encoded(numbered(n)));
        match poll_frame_now(&mut body) {
            Poll::Ready(Some(frame)) => received.push(frame),
            other => panic!("at {}s: {other:?}", n * 5),
        }
    }

    assert_eq!(received, sent);
}

#[tokio::test(start_paused = true)]
async fn ping_comes_an_interval_after_the_last_event() {
    let (sender, events) = channel();
    let mut body = Box::pin(SseBody::new(events));
    assert_eq!(poll_frame_now(&mut body), Poll::Pending);

    advance(secs(10)).await;
    sender.send(numbered(1)).unwrap();
    assert_eq!(
        poll_frame_now(&mut body),
        Poll::Ready(Some(encoded(numbered(1))))
    );

    // t = 15.1 s: an interval since the body opened, not since the event.
    advance(ms(5_100)).await;
    assert_eq!(poll_frame_now(&mut body), Poll::Pending);
    // t = 24.9 s
    advance(ms(9_800)).await;
    assert_eq!(poll_frame_now(&mut body), Poll::Pending);
    // t = 25.1 s
    advance(ms(200)).await;
    assert_eq!(poll_frame_now(&mut body), ping());
}

#[tokio::test(start_paused = true)]
async fn pings_fall_only_between_whole_events() {
    let keep_alive = KeepAlive::new().interval(secs(1));
    let (sender, events) = channel();
    let mut body = Box::pin(SseBody::with_config(
        events,
        SseConfig::new().keep_alive(keep_alive),
    ));
    let mut sent = Vec::new();
    let mut frames = Vec::new();

    for step in 0..300_u64 {
        advance(ms(350 * (step % 7))).await;
        for k in 0..step % 4 {
            let event = Event::new()
                .id(step * 10 + k)
                .event("multi")
                .data(format!("step {step}\nline two\n\nline four {k}"));
            sent.push(encoded(event.clone()));
            sender.send(event).unwrap();
        }
        while let Poll::Ready(frame) = poll_frame_now(&mut body) {
            frames.push(frame.expect("the body is open"));
        }
    }

    let wire = String::from_utf8(frames.concat()).unwrap();
    assert!(wire.ends_with("\n\n"));
    let mut events = Vec::new();
    let mut pings = 0;
    for block in wire.split_terminator("\n\n") {
        if block == ":" {
            pings += 1;
        } else {
            events.push(format!("{block}\n\n"));
        }
    }
    let sent: Vec<String> = sent
        .iter()
        .map(|event| String::from_utf8(event.to_vec()).unwrap())
        .collect();
    assert_eq!(events, sent);
    assert!(pings > 0, "the script never left the stream idle");
}

#[tokio::test(start_paused = true)]
async fn without_keep_alive_an_idle_stream_sends_nothing() {
    let (sender, events) = channel();
    let mut body = Box::pin(SseBody::with_config(
        events,
        SseConfig::new().without_keep_alive(),
    ));
    assert_eq!(poll_frame_now(&mut body), Poll::Pending);

    advance(secs(3600)).await;
    assert_eq!(poll_frame_now(&mut body), Poll::Pending);

    sender.send(numbered(1)).unwrap();
    assert_eq!(
        poll_frame_now(&mut body),
        Poll::Ready(Some(encoded(numbered(1))))
    );
}

#[test]
fn body_built_outside_a_runtime_runs_inside_one() {
    let (sender, events) = channel();
    let config = SseConfig::new().keep_alive(KeepAlive::new().interval(secs(1)));
    let mut body = Box::pin(SseBody::with_config(events, config));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(poll_frame_now(&mut body), Poll::Pending);
        advance(ms(1_100)).await;
        assert_eq!(poll_frame_now(&mut body), ping());
        sender.send(numbered(1)).unwrap();
        assert_eq!(
            poll_frame_now(&mut body),
            Poll::Ready(Some(encoded(numbered(1))))
        );
    });
}

// Shutdown

#[tokio::test(start_paused = true)]
async fn shutdown_ends_an_idle_stream() {
    let shutdown = Shutdown::new();
    let closed = CloseRecorder::new();
    let config = SseConfig::new()
        .shutdown(shutdown.clone())
        .on_close(closed.hook());
    let (sender, events) = channel::<Event>();
    let mut body = Box::pin(SseBody::with_config(events, config));
    assert_eq!(poll_frame_now(&mut body), Poll::Pending);

    tokio::spawn(async move {
        tokio::time::sleep(secs(1)).await;
        shutdown.trigger();
    });
    // Well before the first ping: only the shutdown can wake the body.
    let start = Instant::now();
    let end = timeout(secs(5), next_frame(&mut body))
        .await
        .expect("the body ends");

    assert_eq!(end, None);
    // `timeout` polls the body once more when it expires: the body must have
    // ended when the signal woke it, not then.
    let waited = start.elapsed();
    assert!(
        waited < secs(2),
        "the shutdown did not wake the body: {waited:?}"
    );
    assert!(body.is_end_stream());
    assert!(sender.is_closed(), "the stream is dropped at shutdown");
    drop(body);
    assert_eq!(closed.reasons(), [CloseReason::Shutdown]);
}

#[tokio::test(start_paused = true)]
async fn stream_opened_after_shutdown_ends_at_first_poll() {
    let shutdown = Shutdown::new();
    let closed = CloseRecorder::new();
    let config = SseConfig::new()
        .shutdown(shutdown.clone())
        .on_close(closed.hook());
    shutdown.trigger();

    let mut body = Box::pin(SseBody::with_config(
        stream::repeat(Event::new().data("x")),
        config,
    ));

    assert_eq!(poll_frame_now(&mut body), ended());
    assert_eq!(closed.reasons(), [CloseReason::Shutdown]);
}

#[tokio::test(start_paused = true)]
async fn farewell_is_sent_at_shutdown_then_the_stream_ends() {
    let shutdown = Shutdown::new();
    let closed = CloseRecorder::new();
    let farewell = Farewell::new()
        .event(Event::new().event("bye").data("x"))
        .retry_between(secs(1), secs(10));
    let config = SseConfig::new()
        .shutdown(shutdown.clone())
        .farewell(farewell)
        .on_close(closed.hook());
    let (_sender, events) = channel::<Event>();
    let mut body = Box::pin(SseBody::with_config(events, config));
    assert_eq!(poll_frame_now(&mut body), Poll::Pending);

    shutdown.trigger();
    let frame = next_frame(&mut body).await.expect("a farewell frame");

    let block = std::str::from_utf8(&frame).unwrap();
    let lines = block
        .strip_suffix("\n\n")
        .unwrap_or_else(|| panic!("not one event block: {block:?}"));
    let mut lines: Vec<&str> = lines.split('\n').collect();
    lines.sort_unstable();
    let [data, event, retry] = lines[..] else {
        panic!("expected three fields: {block:?}");
    };
    assert_eq!((data, event), ("data: x", "event: bye"));
    let retry: u64 = retry
        .strip_prefix("retry: ")
        .and_then(|millis| millis.parse().ok())
        .unwrap_or_else(|| panic!("no retry field: {block:?}"));
    assert!((1000..=10_000).contains(&retry), "retry: {retry}");

    assert_eq!(next_frame(&mut body).await, None);
    assert_eq!(closed.reasons(), [CloseReason::Shutdown]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_ends_an_always_ready_stream() {
    let shutdown = Shutdown::new();
    let closed = CloseRecorder::new();
    let config = SseConfig::new()
        .shutdown(shutdown.clone())
        .on_close(closed.hook());
    let mut body = Box::pin(SseBody::with_config(
        stream::repeat(Event::new().data("x")),
        config,
    ));
    for _ in 0..3 {
        assert!(next_frame(&mut body).await.is_some());
    }

    shutdown.trigger();

    assert_eq!(next_frame(&mut body).await, None);
    assert_eq!(closed.reasons(), [CloseReason::Shutdown]);
}

// Maximum age

#[tokio::test(start_paused = true)]
async fn max_age_ends_an_idle_stream_at_that_age() {
    let closed = CloseRecorder::new();
    let config = SseConfig::new()
        .without_keep_alive()
        .max_age(secs(60))
        .on_close(closed.hook());
    let (_sender, events) = channel::<Event>();
    let mut body = Box::pin(SseBody::with_config(events, config));
    let start = Instant::now();
    assert_eq!(poll_frame_now(&mut body), Poll::Pending);

    advance(ms(59_900)).await;
    assert_eq!(poll_frame_now(&mut body), Poll::Pending);
    assert_eq!(closed.reasons(), []);

    let end = timeout(secs(10), next_frame(&mut body))
        .await
        .expect("the max age wakes the idle body");
    assert_eq!(end, None);
    let age = start.elapsed();
    assert!(age >= secs(60) && age < ms(60_010), "ended at {age:?}");
    assert_eq!(closed.reasons(), [CloseReason::MaxAge]);
}

#[tokio::test(start_paused = true)]
async fn max_age_jitter_ends_streams_spread_over_the_window() {
    let config = SseConfig::new()
        .without_keep_alive()
        .max_age(secs(60))
        .max_age_jitter(secs(10));
    let mut ages = Vec::new();
    for _ in 0..20 {
        let (_sender, events) = channel::<Event>();
        let mut body = Box::pin(SseBody::with_config(events, config.clone()));
        let start = Instant::now();
        let end = timeout(secs(120), next_frame(&mut body))
            .await
            .expect("the max age ends the body");
        assert_eq!(end, None);
        ages.push(start.elapsed());
    }

    for age in &ages {
        assert!(*age >= secs(50) && *age < ms(60_010), "ended at {age:?}");
    }
    assert!(
        ages.iter().any(|age| *age != ages[0]),
        "every stream ended at {:?}",
        ages[0]
    );
}

#[tokio::test(start_paused = true)]
async fn max_age_ends_a_busy_stream() {
    let closed = CloseRecorder::new();
    let config = SseConfig::new().max_age(secs(60)).on_close(closed.hook());
    let mut body = Box::pin(SseBody::with_config(
        stream::repeat(Event::new().data("x")),
        config,
    ));

    for second in 0..60 {
        assert!(
            next_frame(&mut body).await.is_some(),
            "ended early, at {second}s"
        );
        advance(secs(1)).await;
    }

    assert_eq!(next_frame(&mut body).await, None);
    assert_eq!(closed.reasons(), [CloseReason::MaxAge]);
}

#[tokio::test(start_paused = true)]
async fn zero_max_age_ends_the_stream_at_first_poll() {
    let closed = CloseRecorder::new();
    let config = SseConfig::new()
        .max_age(Duration::ZERO)
        .on_close(closed.hook());
    let mut body = Box::pin(SseBody::with_config(
        stream::repeat(Event::new().data("x")),
        config,
    ));

    assert_eq!(poll_frame_now(&mut body), ended());
    assert_eq!(closed.reasons(), [CloseReason::MaxAge]);
}

// Errors

#[tokio::test(start_paused = true)]
async fn stream_error_ends_the_body_cleanly_after_the_events_before_it() {
    let closed = CloseRecorder::new();
    let items: Vec<Result<Event, io::Error>> = vec![
        Ok(numbered(1)),
        Ok(numbered(2)),
        Err(io::Error::other("database gone")),
        Ok(numbered(3)),
    ];
    let config = SseConfig::new().on_close(closed.hook());
    let mut body = Box::pin(SseBody::with_config(stream::iter(items), config));

    // `next_frame` panics on an error frame.
    let frames = collect_frames(&mut body).await;

    let expected = [encoded(numbered(1)), encoded(numbered(2))].concat();
    assert_eq!(frames.concat(), expected);
    assert_eq!(next_frame(&mut body).await, None);
    assert_eq!(closed.reasons(), [CloseReason::Error]);
}

#[tokio::test(start_paused = true)]
async fn error_as_first_item_ends_the_body_with_no_bytes() {
    let closed = CloseRecorder::new();
    let items: Vec<Result<Event, io::Error>> =
        vec![Err(io::Error::other("no feed")), Ok(numbered(1))];
    let config = SseConfig::new().on_close(closed.hook());
    let mut body = Box::pin(SseBody::with_config(stream::iter(items), config));

    assert_eq!(poll_frame_now(&mut body), ended());
    assert_eq!(closed.reasons(), [CloseReason::Error]);
}

#[tokio::test(start_paused = true)]
async fn invalid_event_mid_stream_ends_the_body_without_its_bytes() {
    let closed = CloseRecorder::new();
    let events = [
        numbered(1),
        Event::new().id("a\nb").data("secret"),
        numbered(3),
    ];
    let config = SseConfig::new().on_close(closed.hook());
    let mut body = Box::pin(SseBody::with_config(stream::iter(events), config));

    let frames = collect_frames(&mut body).await;

    assert_eq!(frames.concat(), encoded(numbered(1)));
    assert_eq!(closed.reasons(), [CloseReason::Error]);
}

#[tokio::test(start_paused = true)]
async fn error_event_is_sent_then_the_body_ends() {
    let closed = CloseRecorder::new();
    let items: Vec<Result<Event, io::Error>> = vec![
        Ok(numbered(1)),
        Err(io::Error::other("boom")),
        Ok(numbered(2)),
    ];
    let config = SseConfig::new()
        .error_event(|error| Event::new().event("error").data(error.to_string()))
        .on_close(closed.hook());
    let mut body = Box::pin(SseBody::with_config(stream::iter(items), config));

    let frames = collect_frames(&mut body).await;

    let expected = [
        encoded(numbered(1)),
        Bytes::from_static(b"event: error\ndata: boom\n\n"),
    ]
    .concat();
    assert_eq!(frames.concat(), expected);
    assert_eq!(closed.reasons(), [CloseReason::Error]);
}

// The close hook and the body's state

#[tokio::test(start_paused = true)]
async fn stream_is_not_polled_after_it_ends() {
    // `unfold` panics when polled after it has ended.
    let events = Box::pin(stream::unfold(0, |n| async move {
        (n < 2).then(|| (numbered(n), n + 1))
    }));
    let mut body = Box::pin(SseBody::new(events));

    let frames = collect_frames(&mut body).await;

    assert_eq!(
        frames.concat(),
        [encoded(numbered(0)), encoded(numbered(1))].concat()
    );
    assert_eq!(next_frame(&mut body).await, None);
}

#[tokio::test(start_paused = true)]
async fn finite_stream_reports_stream_ended_once() {
    let closed = CloseRecorder::new();
    let config = SseConfig::new().on_close(closed.hook());
    let mut body = Box::pin(SseBody::with_config(
        stream::iter((0..3).map(numbered)),
        config,
    ));

    let frames = collect_frames(&mut body).await;
    assert_eq!(
        frames.concat(),
        (0..3)
            .map(|n| encoded(numbered(n)))
            .collect::<Vec<_>>()
            .concat()
    );
    assert_eq!(next_frame(&mut body).await, None);
    drop(body);

    assert_eq!(closed.reasons(), [CloseReason::StreamEnded]);
}

#[tokio::test(start_paused = true)]
async fn body_dropped_mid_stream_reports_client_gone() {
    let closed = CloseRecorder::new();
    let (sender, events) = channel();
    let mut body = Box::pin(SseBody::with_config(
        events,
        SseConfig::new().on_close(closed.hook()),
    ));
    sender.send(numbered(1)).unwrap();
    assert_eq!(
        poll_frame_now(&mut body),
        Poll::Ready(Some(encoded(numbered(1))))
    );
    assert_eq!(poll_frame_now(&mut body), Poll::Pending);
    assert_eq!(closed.reasons(), []);

    drop(body);

    assert_eq!(closed.reasons(), [CloseReason::ClientGone]);
    assert!(sender.is_closed(), "the stream is dropped with the body");
}

#[test]
fn body_dropped_before_first_poll_reports_client_gone() {
    let closed = CloseRecorder::new();
    let (_sender, events) = channel::<Event>();
    let body = Box::pin(SseBody::with_config(
        events,
        SseConfig::new().on_close(closed.hook()),
    ));

    drop(body);

    assert_eq!(closed.reasons(), [CloseReason::ClientGone]);
}

#[tokio::test(start_paused = true)]
async fn end_of_stream_is_known_and_size_is_never_exact() {
    let mut body = Box::pin(SseBody::new(stream::iter([numbered(1)])));
    assert!(!body.is_end_stream());
    assert_eq!(body.size_hint().exact(), None);

    assert_eq!(next_frame(&mut body).await, Some(encoded(numbered(1))));
    assert_eq!(body.size_hint().exact(), None);

    assert_eq!(next_frame(&mut body).await, None);
    assert!(body.is_end_stream());
    assert_eq!(body.size_hint().exact(), None);
}

// Pre-encoded events

#[tokio::test(start_paused = true)]
async fn encoded_events_pass_through_byte_identical() {
    let events: Vec<EncodedEvent> = (0..10).map(|n| numbered(n).encode().unwrap()).collect();
    let expected: Vec<u8> = events.iter().flat_map(|e| e.as_bytes().to_vec()).collect();
    let items: Vec<Result<EncodedEvent, io::Error>> = events.into_iter().map(Ok).collect();
    let mut body = Box::pin(SseBody::new(stream::iter(items)));

    let frames = collect_frames(&mut body).await;

    assert_eq!(frames.concat(), expected);
}

#[tokio::test(start_paused = true)]
async fn lone_encoded_event_is_sent_without_a_copy() {
    let event = Event::new()
        .event("tick")
        .data("z".repeat(1000))
        .encode()
        .unwrap();
    let (sender, events) = channel();
    let mut body = Box::pin(SseBody::new(events));

    sender.send(event.clone()).unwrap();
    let Poll::Ready(Some(frame)) = poll_frame_now(&mut body) else {
        panic!("the event is not sent at once");
    };

    assert_eq!(frame.as_ref(), event.as_bytes());
    assert_eq!(frame.as_ptr(), event.as_bytes().as_ptr());
}

#[tokio::test(start_paused = true)]
async fn open_with_comment_sends_a_comment_at_once_before_any_event() {
    let config = SseConfig::new().open_with_comment(true);
    let (events, stream) = channel::<Event>();
    let mut body = Box::pin(SseBody::with_config(stream, config.clone()));
    // Nothing is ready, and the comment goes out all the same.
    assert_eq!(
        poll_frame_now(&mut body),
        Poll::Ready(Some(Bytes::from_static(b":\n\n")))
    );
    assert_eq!(poll_frame_now(&mut body), Poll::Pending);
    events.send(Event::new().data("first")).unwrap();
    assert_eq!(next_frame(&mut body).await.unwrap(), "data: first\n\n");

    // Events already ready follow the comment, in order.
    let mut body = Box::pin(SseBody::with_config(
        stream::iter([Event::new().data("a")]),
        config,
    ));
    let frames = collect_frames(&mut body).await.concat();
    assert_eq!(frames, b":\n\ndata: a\n\n"[..]);
}

#[tokio::test(start_paused = true)]
async fn streams_open_without_a_comment_by_default() {
    let (_events, stream) = channel::<Event>();
    let mut body = Box::pin(SseBody::new(stream));
    assert_eq!(poll_frame_now(&mut body), Poll::Pending);
}
