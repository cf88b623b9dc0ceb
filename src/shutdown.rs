//! A signal that ends every open stream, for a server's graceful shutdown.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::sync::{Notify, futures::OwnedNotified};

/// A shutdown signal shared by every stream served with the same
/// [`SseConfig`](crate::SseConfig).
///
/// SSE responses never end by themselves, so a server's graceful shutdown
/// would wait for them forever. Give the config a `Shutdown`, and
/// [`trigger`](Shutdown::trigger) it when the server starts shutting down:
/// every open stream ends cleanly (after the configured
/// [`Farewell`](crate::Farewell), if any), and streams opened afterwards end at
/// once.
///
/// ```
/// use tower_sse::{SseConfig, Shutdown};
///
/// let shutdown = Shutdown::new();
/// let config = SseConfig::new().shutdown(shutdown.clone());
/// // ... serve, and when the server is asked to stop:
/// shutdown.trigger();
/// assert!(shutdown.is_triggered());
/// # let _ = config;
/// ```
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    triggered: AtomicBool,
    notify: Arc<Notify>,
}

impl Shutdown {
    /// A signal that has not been triggered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ends every stream that watches this signal, now and from now on.
    pub fn trigger(&self) {
        self.inner.triggered.store(true, Ordering::Release);
        self.inner.notify.notify_waiters();
    }

    /// Whether [`trigger`](Shutdown::trigger) has been called.
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::Acquire)
    }

    /// Waits until the signal is triggered.
    pub async fn triggered(&self) {
        let mut watcher = self.watch();
        std::future::poll_fn(|cx| watcher.poll_triggered(cx)).await;
    }

    pub(crate) fn watch(&self) -> Watcher {
        let mut notified = Box::pin(self.inner.notify.clone().notified_owned());
        // Registers the waiter before the flag is read, so that a trigger
        // between the two is not missed.
        notified.as_mut().enable();
        Watcher {
            shutdown: self.clone(),
            notified,
        }
    }
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shutdown")
            .field("triggered", &self.is_triggered())
            .finish()
    }
}

/// One stream's view of a [`Shutdown`].
pub(crate) struct Watcher {
    shutdown: Shutdown,
    notified: Pin<Box<OwnedNotified>>,
}

impl Watcher {
    /// Checks the flag only: one atomic load, for the hot path.
    pub(crate) fn is_triggered(&self) -> bool {
        self.shutdown.is_triggered()
    }

    /// Checks the flag and registers for a wake-up when it is not set.
    pub(crate) fn poll_triggered(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_triggered() {
            return Poll::Ready(());
        }
        if self.notified.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl fmt::Debug for Watcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watcher")
            .field("shutdown", &self.shutdown)
            .finish_non_exhaustive()
    }
}
