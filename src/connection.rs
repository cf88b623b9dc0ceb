//! Guarding a connection's writes: a write timeout, and a bound on how long a
//! stalled client can hold a graceful shutdown.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Extensions;
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::shutdown::{Shutdown, Watcher};

/// The settings of [`GuardedIo`]: how long a connection's writes may make no
/// progress, and how long a stalled connection may hold a graceful shutdown.
///
/// A server writes to a connection only as fast as the client reads. A client
/// that stops reading (a suspended laptop, a stuck proxy) blocks the
/// connection's writes: the server then stops polling the response body, so
/// no timer or shutdown signal inside the body can end it, and the connection
/// holds its buffers, and a graceful shutdown, for as long as the client
/// wants. A guarded connection fails its blocked writes instead:
///
/// - after [`write_timeout`](ConnectionGuard::write_timeout) without progress
///   (30 s by default); the close hook of an SSE response on it hears
///   [`CloseReason::WriteTimeout`](crate::CloseReason::WriteTimeout);
/// - once the [`shutdown`](ConnectionGuard::shutdown) signal has been
///   triggered for [`shutdown_grace`](ConnectionGuard::shutdown_grace) (5 s by
///   default), at its first blocked write; the close hook hears
///   [`CloseReason::Shutdown`](crate::CloseReason::Shutdown).
///
/// The server then closes the connection. And when an SSE stream on a
/// guarded connection ends because it yielded [`Lagged`](crate::Lagged), its
/// body ends with that error rather than cleanly, so that the server drops
/// what it still holds for the client at once (HTTP/1 closes the connection,
/// HTTP/2 resets only that stream; the close hook has heard `Lagged`). While
/// the socket is blocked the server stops polling the body, so a stream cut
/// then is only seen once the client reads a little, or ends with the write
/// timeout.
///
/// Writes that go through cost one extra branch; a timer is armed only when
/// a write blocks.
///
/// Wrap each accepted connection with [`wrap`](ConnectionGuard::wrap) (with
/// axum, wrap the listener: `tower_sse::axum::GuardedListener`), and give
/// the connection's [`ConnectionStatus`] to the requests it carries, so that
/// SSE responses can report why it closed.
///
/// ```
/// use std::time::Duration;
/// use tower_sse::{ConnectionGuard, Shutdown};
///
/// let shutdown = Shutdown::new();
/// let guard = ConnectionGuard::new()
///     .write_timeout(Duration::from_secs(20))
///     .shutdown(shutdown.clone())
///     .shutdown_grace(Duration::from_secs(3));
/// # let _ = guard;
/// ```
#[derive(Clone, Debug)]
pub struct ConnectionGuard {
    write_timeout: Option<Duration>,
    shutdown: Option<Shutdown>,
    shutdown_grace: Duration,
}

impl Default for ConnectionGuard {
    fn default() -> Self {
        Self {
            write_timeout: Some(Self::DEFAULT_WRITE_TIMEOUT),
            shutdown: None,
            shutdown_grace: Self::DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

impl ConnectionGuard {
    /// The default write timeout: 30 seconds.
    pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

    /// The default shutdown grace period: 5 seconds.
    pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

    /// A write timeout of 30 seconds, no shutdown signal, and a grace period
    /// of 5 seconds once one is given.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Closes a connection whose writes have made no progress for `timeout`.
    ///
    /// Choose it well above the time a slow but live client takes to read
    /// what the server buffers for it; any progress restarts it.
    #[must_use]
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = Some(timeout);
        self
    }

    /// Never closes a connection for slow writes (a shutdown grace still
    /// applies).
    #[must_use]
    pub fn without_write_timeout(mut self) -> Self {
        self.write_timeout = None;
        self
    }

    /// Closes a connection whose writes are blocked once `shutdown` has been
    /// triggered for the [`shutdown_grace`](ConnectionGuard::shutdown_grace)
    /// period, so that no stalled client holds a graceful shutdown longer.
    ///
    /// Give it the same [`Shutdown`] as the [`SseConfig`](crate::SseConfig):
    /// streams on connections that can still be written to end at once (after
    /// their farewell); only stalled ones wait for the grace period.
    #[must_use]
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = Some(shutdown);
        self
    }

    /// How long, after the shutdown signal, a connection's writes may still
    /// be blocked before it is closed (default 5 seconds).
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Guards one connection's IO.
    pub fn wrap<IO>(&self, io: IO) -> GuardedIo<IO> {
        GuardedIo {
            io,
            stall: Stall {
                since: None,
                timer: None,
                write_timeout: self.write_timeout,
                shutdown: self.shutdown.as_ref().map(Shutdown::watch),
                shutdown_grace: self.shutdown_grace,
                status: ConnectionStatus::new(),
            },
        }
    }
}

/// Why a guarded connection was closed, shared by the connection's IO and the
/// responses served on it.
///
/// Get it from [`GuardedIo::status`] and put it in the request extensions of
/// the connection's requests (with axum, `tower_sse::axum::GuardedListener`
/// makes it the connection's `ConnectInfo`). [`SseLayer`](crate::SseLayer)
/// and [`SseConfigLayer`](crate::SseConfigLayer) hand it to the SSE bodies
/// they serve, so that a body dropped because its connection was closed for
/// stalling reports [`CloseReason::WriteTimeout`](crate::CloseReason::WriteTimeout)
/// (or [`CloseReason::Shutdown`](crate::CloseReason::Shutdown) after the
/// shutdown grace period) rather than `ClientGone`.
#[derive(Clone, Default)]
pub struct ConnectionStatus(Arc<AtomicU8>);

const OPEN: u8 = 0;
const WRITE_TIMED_OUT: u8 = 1;
const SHUTDOWN_GRACE_ELAPSED: u8 = 2;

impl ConnectionStatus {
    fn new() -> Self {
        Self::default()
    }

    /// Whether the connection was closed because its writes made no progress
    /// for the write timeout.
    pub fn is_write_timed_out(&self) -> bool {
        self.0.load(Ordering::Acquire) == WRITE_TIMED_OUT
    }

    /// Whether the connection was closed because its writes were still blocked
    /// when the shutdown grace period ended.
    pub fn is_shutdown_grace_elapsed(&self) -> bool {
        self.0.load(Ordering::Acquire) == SHUTDOWN_GRACE_ELAPSED
    }

    fn close(&self, why: u8) {
        let _ = self
            .0
            .compare_exchange(OPEN, why, Ordering::AcqRel, Ordering::Acquire);
    }

    /// The close reason a body on this connection reports instead of
    /// `ClientGone`, if the guard closed the connection.
    pub(crate) fn close_reason(&self) -> Option<crate::CloseReason> {
        match self.0.load(Ordering::Acquire) {
            WRITE_TIMED_OUT => Some(crate::CloseReason::WriteTimeout),
            SHUTDOWN_GRACE_ELAPSED => Some(crate::CloseReason::Shutdown),
            _ => None,
        }
    }

    /// The status of the connection a request came on, if it was guarded and
    /// the status was put in its extensions (directly, or as axum's
    /// `ConnectInfo`).
    pub(crate) fn of_request(extensions: &Extensions) -> Option<Self> {
        if let Some(status) = extensions.get::<Self>() {
            return Some(status.clone());
        }
        #[cfg(feature = "axum")]
        if let Some(info) = extensions.get::<::axum::extract::ConnectInfo<Self>>() {
            return Some(info.0.clone());
        }
        None
    }
}

impl fmt::Debug for ConnectionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.0.load(Ordering::Acquire) {
            WRITE_TIMED_OUT => "write timed out",
            SHUTDOWN_GRACE_ELAPSED => "shutdown grace elapsed",
            _ => "open",
        };
        f.debug_tuple("ConnectionStatus").field(&state).finish()
    }
}

pin_project! {
    /// A connection's IO whose blocked writes fail after a write timeout or a
    /// shutdown grace period; made by [`ConnectionGuard::wrap`].
    ///
    /// It implements tokio's `AsyncRead` and `AsyncWrite`; with hyper, wrap it
    /// in `hyper_util::rt::TokioIo`. Reads pass through untouched.
    ///
    /// ```
    /// use tower_sse::{ConnectionGuard, ConnectionStatus};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let guard = ConnectionGuard::new();
    /// # let addr = listener.local_addr()?;
    /// # let _client = tokio::net::TcpStream::connect(addr).await?;
    /// let (stream, _) = listener.accept().await?;
    /// let io = guard.wrap(stream);
    /// let status: ConnectionStatus = io.status();
    /// // Serve `hyper_util::rt::TokioIo::new(io)` with a service that inserts
    /// // `status.clone()` into each request's extensions.
    /// # let _ = status;
    /// # Ok(())
    /// # }
    /// ```
    pub struct GuardedIo<IO> {
        #[pin]
        io: IO,
        stall: Stall,
    }
}

/// The state of a guarded connection's writes.
struct Stall {
    // When the blocked write began to wait; `None` while writes go through.
    since: Option<Instant>,
    // Armed at the first blocked write, reset only when a new stall begins.
    timer: Option<Pin<Box<Sleep>>>,
    write_timeout: Option<Duration>,
    shutdown: Option<Watcher>,
    shutdown_grace: Duration,
    status: ConnectionStatus,
}

impl Stall {
    /// A write went through.
    fn progressed(&mut self) {
        self.since = None;
    }

    /// A write is blocked: fails it when a deadline has passed, and otherwise
    /// arms the timer of the earliest one.
    fn blocked<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let now = Instant::now();
        let since = *self.since.get_or_insert(now);
        // A deadline too far to represent is no deadline.
        let mut deadline = self
            .write_timeout
            .and_then(|timeout| since.checked_add(timeout))
            .map(|at| (at, WRITE_TIMED_OUT));
        if let Some(watcher) = self.shutdown.as_mut() {
            if watcher.poll_triggered(cx).is_ready() {
                let triggered_at = watcher.triggered_at().unwrap_or(now);
                if let Some(grace_end) = triggered_at.checked_add(self.shutdown_grace) {
                    if deadline.is_none_or(|(at, _)| grace_end < at) {
                        deadline = Some((grace_end, SHUTDOWN_GRACE_ELAPSED));
                    }
                }
            }
        }
        let Some((at, why)) = deadline else {
            return Poll::Pending;
        };
        if now < at {
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
            if timer.deadline() != at {
                timer.as_mut().reset(at);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        self.status.close(why);
        let message = if why == WRITE_TIMED_OUT {
            "connection writes made no progress for the write timeout"
        } else {
            "connection writes still blocked at the end of the shutdown grace period"
        };
        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, message)))
    }

    fn after_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(result) => {
                if result.is_ok() {
                    self.progressed();
                }
                Poll::Ready(result)
            }
            Poll::Pending => self.blocked(cx),
        }
    }
}

impl<IO> GuardedIo<IO> {
    /// The status shared with the responses served on this connection.
    pub fn status(&self) -> ConnectionStatus {
        self.stall.status.clone()
    }

    /// The wrapped IO.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// The wrapped IO, mutably.
    pub fn get_mut(&mut self) -> &mut IO {
        &mut self.io
    }

    /// The wrapped IO, consuming the guard.
    pub fn into_inner(self) -> IO {
        self.io
    }
}

impl<IO: AsyncRead> AsyncRead for GuardedIo<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite> AsyncWrite for GuardedIo<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let poll = this.io.poll_write(cx, buf);
        this.stall.after_write(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let poll = this.io.poll_write_vectored(cx, bufs);
        this.stall.after_write(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let poll = this.io.poll_flush(cx);
        this.stall.after_write(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let poll = this.io.poll_shutdown(cx);
        this.stall.after_write(cx, poll)
    }
}

impl<IO: fmt::Debug> fmt::Debug for GuardedIo<IO> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedIo")
            .field("io", &self.io)
            .field("write_timeout", &self.stall.write_timeout)
            .field("shutdown_grace", &self.stall.shutdown_grace)
            .field("status", &self.stall.status)
            .finish_non_exhaustive()
    }
}
