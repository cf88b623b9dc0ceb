//! Helpers shared by the integration tests.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::stream::{self, Stream};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tower_sse::CloseReason;

/// Waits for the body's next frame: `Some(bytes)` for a data frame, `None`
/// at the end. Panics on an error or a trailers frame.
pub(crate) async fn next_frame<B>(body: &mut B) -> Option<Bytes>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Debug,
{
    let frame = body.frame().await?.expect("body yielded an error");
    Some(frame.into_data().expect("a data frame"))
}

/// Polls the body once, without waiting: `Pending` when no frame is ready.
pub(crate) fn poll_frame_now<B>(body: &mut B) -> Poll<Option<Bytes>>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Debug,
{
    match next_frame(body).now_or_never() {
        Some(frame) => Poll::Ready(frame),
        None => Poll::Pending,
    }
}

/// Every frame of the body until it ends.
pub(crate) async fn collect_frames<B>(body: &mut B) -> Vec<Bytes>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Debug,
{
    let mut frames = Vec::new();
    while let Some(frame) = next_frame(body).await {
        frames.push(frame);
    }
    frames
}

/// A stream fed by hand: items sent on the sender come out of the stream,
/// which ends when the sender is dropped.
pub(crate) fn channel<T>() -> (mpsc::UnboundedSender<T>, impl Stream<Item = T> + Unpin) {
    let (sender, mut receiver) = mpsc::unbounded_channel();
    (sender, stream::poll_fn(move |cx| receiver.poll_recv(cx)))
}

/// Records every reason given to an `on_close` hook.
#[derive(Clone, Debug, Default)]
pub(crate) struct CloseRecorder(Arc<Mutex<Vec<CloseReason>>>);

impl CloseRecorder {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A hook for `SseConfig::on_close` that records into this recorder.
    pub(crate) fn hook(&self) -> impl Fn(CloseReason) + Send + Sync + 'static {
        let reasons = self.0.clone();
        move |reason| reasons.lock().unwrap().push(reason)
    }

    /// The reasons recorded so far, in order.
    pub(crate) fn reasons(&self) -> Vec<CloseReason> {
        self.0.lock().unwrap().clone()
    }
}

/// The whole body as one buffer. Panics on a body error.
pub(crate) async fn collect_bytes<B>(body: B) -> Bytes
where
    B: Body,
    B::Error: Debug,
{
    body.collect()
        .await
        .expect("body yielded an error")
        .to_bytes()
}

/// A stream that records whether it was ever polled, then delegates.
pub(crate) struct PollFlag<S> {
    inner: std::pin::Pin<Box<S>>,
    polled: Arc<std::sync::atomic::AtomicBool>,
}

impl<S> PollFlag<S> {
    /// Wraps `inner`; the returned flag turns true at the first poll.
    pub(crate) fn new(inner: S) -> (Self, Arc<std::sync::atomic::AtomicBool>) {
        let polled = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stream = Self {
            inner: Box::pin(inner),
            polled: polled.clone(),
        };
        (stream, polled)
    }
}

impl<S: Stream> Stream for PollFlag<S> {
    type Item = S::Item;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<S::Item>> {
        self.polled.store(true, std::sync::atomic::Ordering::SeqCst);
        self.inner.as_mut().poll_next(cx)
    }
}
