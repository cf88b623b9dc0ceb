//! Clients that stop reading, over real HTTP/1.1 on 127.0.0.1: the write
//! timeout closes their connections and says so, a stream cut for lag does
//! not keep a stalled connection open, and a graceful shutdown completes
//! within its grace period whatever they do.
//!
//! A stalled client is a raw socket with a tiny receive buffer that reads the
//! response head and then nothing. These tests run on tokio's paused clock:
//! when every task waits, time jumps to the next timer, so the write timeout
//! and the grace period pass at once, and no test waits for them in real time.

mod support;

use std::convert::Infallible;
use std::time::Duration;

use futures_util::stream;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::task::JoinHandle;
use tower::{ServiceBuilder, service_fn};
use tower_sse::{
    CloseReason, ConnectionGuard, ConnectionStatus, EncodedEvent, Event, Lagged, Shutdown,
    SseConfig, SseLayer,
};

use support::client::{open_stalled, read_until_closed};
use support::{CloseRecorder, channel, server, within};

/// Shorter than the tests' patience (`support::PATIENCE`), so that it is
/// the first timer the paused clock reaches.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// One large event, encoded once: a few hundred of them fill every buffer
/// between the server and a client that does not read.
fn large_event() -> EncodedEvent {
    Event::new()
        .event("bulk")
        .data("x".repeat(64 * 1024))
        .encode()
        .unwrap()
}

fn http1() -> hyper::server::conn::http1::Builder {
    hyper::server::conn::http1::Builder::new()
}

/// Serves the first connection on a fresh 127.0.0.1 port through `guard`,
/// with `service` behind `SseLayer`; each request carries the connection's
/// `ConnectionStatus`. Returns the address, the status, and the connection's
/// outcome.
async fn serve_one_guarded<St>(
    http1: hyper::server::conn::http1::Builder,
    guard: ConnectionGuard,
    config: SseConfig,
    make_stream: impl Fn() -> St + Clone + Send + 'static,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Receiver<ConnectionStatus>,
    JoinHandle<hyper::Result<()>>,
)
where
    St: futures_util::Stream + Send + 'static,
    St::Item: tower_sse::IntoEncodedEvent,
{
    let (listener, addr) = server::bind().await;
    let (status_sender, status) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let io = guard.wrap(stream);
        let connection = io.status();
        let _ = status_sender.send(connection.clone());
        let service = ServiceBuilder::new()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(connection.clone());
                request
            })
            .layer(SseLayer::with_config(config))
            .service(service_fn(move |_: Request<Incoming>| {
                let stream = make_stream();
                async move { Ok::<_, Infallible>(Response::new(stream)) }
            }));
        http1
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
            .await
    });
    (addr, status, task)
}

/// [`serve_one_guarded`] with a stream fed by the returned sender: the
/// hub's items (`Lagged` included) as a test sends them.
async fn serve_one_fed(
    http1: hyper::server::conn::http1::Builder,
    guard: ConnectionGuard,
    config: SseConfig,
) -> (
    tokio::sync::mpsc::UnboundedSender<Result<EncodedEvent, Lagged>>,
    std::net::SocketAddr,
    tokio::sync::oneshot::Receiver<ConnectionStatus>,
    JoinHandle<hyper::Result<()>>,
) {
    let (sender, events) = channel::<Result<EncodedEvent, Lagged>>();
    let events = std::sync::Arc::new(std::sync::Mutex::new(Some(events)));
    let (addr, status, server) = serve_one_guarded(http1, guard, config, move || {
        events.lock().unwrap().take().expect("one request")
    })
    .await;
    (sender, addr, status, server)
}

#[tokio::test(start_paused = true)]
async fn stalled_client_is_closed_after_the_write_timeout_and_reported() {
    let closes = CloseRecorder::new();
    let guard = ConnectionGuard::new().write_timeout(WRITE_TIMEOUT);
    let config = SseConfig::new().on_close(closes.hook());
    let event = large_event();
    let (addr, status, server) = serve_one_guarded(http1(), guard, config, move || {
        stream::repeat(event.clone())
    })
    .await;

    let mut client = open_stalled(addr, "/events").await;
    let status = status.await.unwrap();

    // Nothing is read from here on: the server's writes block, and the write
    // timeout closes the connection.
    let outcome = within("the server connection", server).await.unwrap();
    assert!(
        outcome.is_err(),
        "the connection ended cleanly: {outcome:?}"
    );
    assert!(status.is_write_timed_out(), "{status:?}");
    assert!(!status.is_shutdown_grace_elapsed());
    assert_eq!(closes.wait_for(1).await, [CloseReason::WriteTimeout]);

    read_until_closed(&mut client).await;
}

#[tokio::test(start_paused = true)]
async fn lagged_stream_of_a_client_that_reads_nothing_is_closed_by_the_write_timeout() {
    let closes = CloseRecorder::new();
    let guard = ConnectionGuard::new().write_timeout(WRITE_TIMEOUT);
    let config = SseConfig::new().on_close(closes.hook());
    let (sender, addr, status, server) = serve_one_fed(http1(), guard, config).await;

    let mut client = open_stalled(addr, "/events").await;
    let status = status.await.unwrap();
    // More than every buffer on the way holds, then the cut: what a hub does
    // to a subscriber whose client does not read.
    let event = large_event();
    for _ in 0..400 {
        sender.send(Ok(event.clone())).unwrap();
    }
    sender.send(Err(Lagged::new())).unwrap();

    let _ = within("the server connection", server).await.unwrap();
    read_until_closed(&mut client).await;
    assert!(status.is_write_timed_out(), "{status:?}");
    assert_eq!(closes.wait_for(1).await, [CloseReason::WriteTimeout]);
    // The stream was dropped with the connection.
    assert!(sender.send(Ok(event)).is_err());
}

#[tokio::test(start_paused = true)]
async fn lagged_stream_seen_while_the_socket_is_blocked_closes_the_connection_at_once() {
    let closes = CloseRecorder::new();
    // No write timeout: only the cut can close the connection.
    let guard = ConnectionGuard::new().without_write_timeout();
    let config = SseConfig::new().on_close(closes.hook());
    // A write buffer larger than the whole stream: the server keeps polling
    // the body while the socket is blocked, so the body sees the cut then.
    let mut http1 = http1();
    http1.writev(false).max_buf_size(64 << 20);
    let (sender, addr, status, server) = serve_one_fed(http1, guard, config).await;

    let mut client = open_stalled(addr, "/events").await;
    let status = status.await.unwrap();
    let event = large_event();
    for _ in 0..400 {
        sender.send(Ok(event.clone())).unwrap();
    }
    sender.send(Err(Lagged::new())).unwrap();

    let outcome = within("the server connection", server).await.unwrap();
    assert!(
        outcome.is_err(),
        "the connection ended cleanly: {outcome:?}"
    );
    assert_eq!(closes.reasons(), [CloseReason::Lagged]);
    assert!(!status.is_write_timed_out());
    read_until_closed(&mut client).await;
}

#[tokio::test(start_paused = true)]
async fn writes_fail_only_after_the_write_timeout_without_progress() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (near, mut far) = tokio::io::duplex(1024);
    let mut io = ConnectionGuard::new()
        .write_timeout(Duration::from_secs(10))
        .wrap(near);
    let status = io.status();
    let chunk = [b'x'; 512];
    let mut buf = [0; 1024];

    // Fill the pipe; the next write blocks.
    io.write_all(&[b'x'; 1024]).await.unwrap();
    for _ in 0..5 {
        // Blocked for 6 s, then the reader takes some: progress within the
        // timeout, every time.
        let blocked = tokio::time::timeout(Duration::from_secs(6), io.write_all(&chunk)).await;
        assert!(blocked.is_err(), "the write went through without a reader");
        far.read_exact(&mut buf[..512]).await.unwrap();
        io.write_all(&chunk).await.unwrap();
        assert!(!status.is_write_timed_out());
    }

    // Nobody reads any more.
    let error = io.write_all(&chunk).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
    assert!(status.is_write_timed_out());
}

#[tokio::test(start_paused = true)]
async fn without_a_write_timeout_a_blocked_write_waits() {
    use tokio::io::AsyncWriteExt;

    let (near, _far) = tokio::io::duplex(16);
    let mut io = ConnectionGuard::new().without_write_timeout().wrap(near);
    io.write_all(&[0; 16]).await.unwrap();
    let blocked = tokio::time::timeout(Duration::from_secs(3600), io.write_all(&[0; 1])).await;
    assert!(blocked.is_err());
    assert!(!io.status().is_write_timed_out());
}

#[tokio::test(start_paused = true)]
async fn shutdown_grace_fails_a_blocked_write_after_the_trigger() {
    use tokio::io::AsyncWriteExt;

    let shutdown = Shutdown::new();
    let (near, _far) = tokio::io::duplex(16);
    let mut io = ConnectionGuard::new()
        .without_write_timeout()
        .shutdown(shutdown.clone())
        .shutdown_grace(Duration::from_secs(5))
        .wrap(near);
    io.write_all(&[0; 16]).await.unwrap();
    let blocked = tokio::time::timeout(Duration::from_secs(60), io.write_all(&[0; 1])).await;
    assert!(blocked.is_err(), "failed before the trigger");

    shutdown.trigger();
    let error = io.write_all(&[0; 1]).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
    assert!(io.status().is_shutdown_grace_elapsed());
}

#[tokio::test(start_paused = true)]
async fn deadlines_too_far_to_represent_never_fire_and_never_panic() {
    use tokio::io::AsyncWriteExt;

    let shutdown = Shutdown::new();
    let (near, _far) = tokio::io::duplex(16);
    let mut io = ConnectionGuard::new()
        .write_timeout(Duration::MAX)
        .shutdown(shutdown.clone())
        .shutdown_grace(Duration::MAX)
        .wrap(near);
    io.write_all(&[0; 16]).await.unwrap();
    shutdown.trigger();
    let blocked = tokio::time::timeout(Duration::from_secs(3600), io.write_all(&[0; 1])).await;
    assert!(blocked.is_err(), "a blocked write failed");
    let status = io.status();
    assert!(!status.is_write_timed_out() && !status.is_shutdown_grace_elapsed());

    // A future that is not ready at once, so that the grace's deadline is
    // computed.
    let served = shutdown
        .within_grace(Duration::MAX, async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            "done"
        })
        .await;
    assert_eq!(served.unwrap(), "done");
}

#[tokio::test(start_paused = true)]
async fn a_lagged_stream_ends_its_guarded_connection_even_when_the_client_reads() {
    let closes = CloseRecorder::new();
    let guard = ConnectionGuard::new().without_write_timeout();
    let config = SseConfig::new().on_close(closes.hook());
    let (sender, addr, _status, server) = serve_one_fed(http1(), guard, config).await;

    let (_connection, mut events) = support::client::open_events(addr, "/events", None).await;
    sender
        .send(Ok(Event::new().data("read").encode().unwrap()))
        .unwrap();
    assert!(support::next_event(&mut events).await.is_some());
    sender.send(Err(Lagged::new())).unwrap();

    // The connection is not kept for another request: the response ends
    // with the error, and the server drops the connection.
    let outcome = within("the server connection", server).await.unwrap();
    assert!(outcome.is_err(), "the connection lived on: {outcome:?}");
    assert_eq!(closes.reasons(), [CloseReason::Lagged]);
}

/// With axum: `axum::serve` over a `GuardedListener`, the router behind
/// `SseConfigLayer`, the README's pattern.
#[cfg(feature = "axum")]
mod axum_serve {
    use super::*;

    use axum::Router;
    use axum::routing::get;
    use tower_sse::axum::{GuardedListener, SseResponse};
    use tower_sse::{Farewell, GraceElapsed, KeepAlive, SseConfigLayer};

    use support::client::open_events;
    use support::{all_events, next_event, one_then_idle, triple};

    const GRACE: Duration = Duration::from_secs(5);

    fn app(config: SseConfig) -> Router {
        Router::new()
            .route(
                "/events",
                get(|| async { SseResponse::new(one_then_idle("hi")) }),
            )
            .route(
                "/bulk",
                get(|| async { SseResponse::new(stream::repeat(large_event())) }),
            )
            .layer(SseConfigLayer::new(config))
    }

    /// Serves `app` with `guard` on a fresh 127.0.0.1 port until `shutdown`
    /// is triggered, and for at most a second more than the guard's grace
    /// period after that (the paused clock makes this exact).
    async fn serve(
        app: Router,
        guard: ConnectionGuard,
        shutdown: &Shutdown,
    ) -> (
        std::net::SocketAddr,
        JoinHandle<Result<std::io::Result<()>, GraceElapsed>>,
    ) {
        let (listener, addr) = server::bind().await;
        let signal = shutdown.clone();
        let server = axum::serve(
            GuardedListener::new(listener, guard),
            app.into_make_service_with_connect_info::<ConnectionStatus>(),
        )
        .with_graceful_shutdown(async move { signal.triggered().await });
        let shutdown = shutdown.clone();
        let task = tokio::spawn(async move {
            shutdown
                .within_grace(GRACE + Duration::from_secs(1), server)
                .await
        });
        (addr, task)
    }

    #[tokio::test(start_paused = true)]
    async fn stalled_client_cannot_hold_graceful_shutdown_beyond_the_grace_period() {
        let shutdown = Shutdown::new();
        let closes = CloseRecorder::new();
        let config = SseConfig::new()
            .shutdown(shutdown.clone())
            .farewell(Farewell::new().event(Event::new().event("bye").data("restarting")))
            .on_close(closes.hook());
        let guard = ConnectionGuard::new()
            .without_write_timeout()
            .shutdown(shutdown.clone())
            .shutdown_grace(GRACE);
        let (addr, server) = serve(app(config), guard, &shutdown).await;

        let mut readers = Vec::new();
        for _ in 0..2 {
            let (connection, mut events) = open_events(addr, "/events", None).await;
            assert_eq!(next_event(&mut events).await.unwrap().data, "hi");
            readers.push((connection, events));
        }
        let mut stalled = open_stalled(addr, "/bulk").await;
        // Every task waits once the stalled connection's buffers are full.
        tokio::time::sleep(Duration::from_secs(1)).await;

        shutdown.trigger();
        for (_connection, events) in readers {
            assert_eq!(all_events(events).await, [triple("bye", "restarting", "1")]);
        }
        let outcome = within("the server", server).await.unwrap();
        assert!(
            matches!(outcome, Ok(Ok(()))),
            "the server did not complete within the grace period: {outcome:?}"
        );
        assert_eq!(closes.wait_for(3).await, [CloseReason::Shutdown; 3]);
        read_until_closed(&mut stalled).await;
    }

    #[tokio::test(start_paused = true)]
    async fn write_timeout_closes_a_stalled_client_and_the_router_layer_reports_it() {
        let shutdown = Shutdown::new();
        let closes = CloseRecorder::new();
        // Pings every second: the reading client's connection keeps writing.
        let config = SseConfig::new()
            .on_close(closes.hook())
            .keep_alive(KeepAlive::new().interval(WRITE_TIMEOUT / 2));
        let guard = ConnectionGuard::new().write_timeout(WRITE_TIMEOUT);
        let (addr, _server) = serve(app(config), guard, &shutdown).await;

        let (_connection, mut events) = open_events(addr, "/events", None).await;
        assert_eq!(next_event(&mut events).await.unwrap().data, "hi");
        let mut stalled = open_stalled(addr, "/bulk").await;

        assert_eq!(closes.wait_for(1).await, [CloseReason::WriteTimeout]);
        read_until_closed(&mut stalled).await;
        // The reading client is still served, its pings written, write
        // timeouts later.
        tokio::time::sleep(3 * WRITE_TIMEOUT).await;
        assert_eq!(closes.reasons(), [CloseReason::WriteTimeout]);
        drop(events);
    }
}

#[tokio::test]
async fn trigger_on_triggers_when_the_signal_completes() {
    let shutdown = Shutdown::new();
    let (send, receive) = tokio::sync::oneshot::channel::<&str>();
    let waiting = tokio::spawn(shutdown.trigger_on(receive));
    tokio::task::yield_now().await;
    assert!(!shutdown.is_triggered());
    send.send("stop").unwrap();
    waiting.await.unwrap();
    assert!(shutdown.is_triggered());
}

#[tokio::test]
async fn a_cancellation_token_triggers_the_shutdown_in_one_line() {
    let shutdown = Shutdown::new();
    let token = tokio_util::sync::CancellationToken::new();
    let waiting = tokio::spawn(shutdown.trigger_on(token.clone().cancelled_owned()));
    tokio::task::yield_now().await;
    assert!(!shutdown.is_triggered());
    token.cancel();
    waiting.await.unwrap();
    assert!(shutdown.is_triggered());
}
