//! A signal that ends every open stream, for a server's graceful shutdown.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use std::sync::OnceLock;
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::sync::{Notify, futures::OwnedNotified};
use tokio::time::Instant;

use crate::error::GraceElapsed;

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
    // When the signal was first triggered (the start of every shutdown grace
    // period); set means triggered. Reading it is one atomic load.
    triggered_at: OnceLock<Instant>,
    notify: Arc<Notify>,
}

impl Shutdown {
    /// A signal that has not been triggered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ends every stream that watches this signal, now and from now on.
    pub fn trigger(&self) {
        let _ = self.inner.triggered_at.set(Instant::now());
        self.inner.notify.notify_waiters();
    }

    /// Whether [`trigger`](Shutdown::trigger) has been called.
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered_at.get().is_some()
    }

    /// Triggers this signal when `signal` completes: the future it returns
    /// waits for `signal` (whatever its output), then calls
    /// [`trigger`](Shutdown::trigger), and completes with `()`, as servers'
    /// graceful-shutdown futures do.
    ///
    /// It is the one line between the shutdown signal an app already has
    /// (Ctrl-C, a `CancellationToken`, a channel) and its streams: give it
    /// to the server's graceful shutdown, or spawn it.
    ///
    /// ```no_run
    /// use tokio_util::sync::CancellationToken;
    /// use tower_sse::{Shutdown, SseConfig};
    ///
    /// # #[tokio::main]
    /// # async fn main() -> std::io::Result<()> {
    /// let shutdown = Shutdown::new();
    /// let config = SseConfig::new().shutdown(shutdown.clone());
    /// # let _ = config;
    ///
    /// // As the graceful-shutdown future of `axum::serve`:
    /// let app = axum::Router::new(); // with SSE routes and an SseConfigLayer
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let server = axum::serve(listener, app)
    ///     .with_graceful_shutdown(shutdown.trigger_on(tokio::signal::ctrl_c()));
    ///
    /// // From an app-wide `CancellationToken`:
    /// let token = CancellationToken::new();
    /// tokio::spawn(shutdown.trigger_on(token.clone().cancelled_owned()));
    /// # let _ = server;
    /// # Ok(())
    /// # }
    /// ```
    pub fn trigger_on<F: IntoFuture>(&self, signal: F) -> TriggerOn<F::IntoFuture> {
        TriggerOn {
            signal: signal.into_future(),
            shutdown: self.clone(),
        }
    }

    /// Waits until the signal is triggered.
    pub async fn triggered(&self) {
        let mut watcher = self.watch();
        std::future::poll_fn(|cx| watcher.poll_triggered(cx)).await;
    }

    /// Drives `server` (a server future such as `axum::serve(..)
    /// .with_graceful_shutdown(..)`) to completion, but for no longer than
    /// `grace` after this signal is triggered.
    ///
    /// A graceful shutdown waits for every open connection; a connection whose
    /// client has stopped reading may never finish. Guard connections with a
    /// [`ConnectionGuard`](crate::ConnectionGuard) so that they are closed
    /// after its grace period; this bound is the last line: whatever still
    /// runs when `grace` has passed is left behind (connection tasks that the
    /// server spawned end with the runtime).
    ///
    /// # Errors
    ///
    /// [`GraceElapsed`] when `grace` passed after the trigger before `server`
    /// completed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_sse::Shutdown;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let shutdown = Shutdown::new();
    /// shutdown.trigger();
    /// // A server that never finishes, bounded:
    /// let outcome = shutdown
    ///     .within_grace(Duration::from_secs(5), std::future::pending::<()>())
    ///     .await;
    /// assert!(outcome.is_err());
    /// # }
    /// ```
    pub async fn within_grace<F>(
        &self,
        grace: Duration,
        server: F,
    ) -> Result<F::Output, GraceElapsed>
    where
        F: IntoFuture,
    {
        let server = server.into_future();
        let mut server = std::pin::pin!(server);
        let mut watcher = self.watch();
        let finished = std::future::poll_fn(|cx| {
            if let Poll::Ready(output) = server.as_mut().poll(cx) {
                return Poll::Ready(Some(output));
            }
            watcher.poll_triggered(cx).map(|()| None)
        })
        .await;
        if let Some(output) = finished {
            return Ok(output);
        }
        let triggered_at = self.triggered_at().unwrap_or_else(Instant::now);
        // A grace period too long to represent never ends.
        let Some(deadline) = triggered_at.checked_add(grace) else {
            return Ok(server.await);
        };
        tokio::time::timeout_at(deadline, server)
            .await
            .map_err(|_| GraceElapsed::new())
    }

    /// When the signal was first triggered.
    pub(crate) fn triggered_at(&self) -> Option<Instant> {
        self.inner.triggered_at.get().copied()
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

pin_project! {
    /// The future returned by [`Shutdown::trigger_on`]: waits for a signal,
    /// then triggers the [`Shutdown`].
    #[must_use = "futures do nothing unless polled"]
    pub struct TriggerOn<F> {
        #[pin]
        signal: F,
        shutdown: Shutdown,
    }
}

impl<F: Future> Future for TriggerOn<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        std::task::ready!(this.signal.poll(cx));
        this.shutdown.trigger();
        Poll::Ready(())
    }
}

impl<F> fmt::Debug for TriggerOn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TriggerOn")
            .field("shutdown", &self.shutdown)
            .finish_non_exhaustive()
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

    /// When the signal was first triggered.
    pub(crate) fn triggered_at(&self) -> Option<Instant> {
        self.shutdown.triggered_at()
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
