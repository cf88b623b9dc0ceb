//! `SseLayer` as a user sees it: response headers, status handling,
//! `Last-Event-ID`, the `Accept` check, readiness and the layer's config.

mod support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use futures_util::stream::{self, BoxStream, StreamExt};
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_sse::{
    CloseReason, Event, Farewell, KeepAlive, LAST_EVENT_ID, LastEventId, LastEventIdHeader,
    Shutdown, SseConfig, SseLayer, SseOr,
};

use support::{CloseRecorder, PollFlag, collect_bytes};

type Events = BoxStream<'static, Event>;

fn events(data: &[&'static str]) -> Events {
    stream::iter(data.to_vec())
        .map(|data| Event::new().data(data))
        .boxed()
}

/// A stream that fails the test if anything polls it.
fn must_not_be_polled() -> Events {
    stream::poll_fn(|_| -> Poll<Option<Event>> { panic!("the event stream was polled") }).boxed()
}

/// Serves `request` through `SseLayer::with_config(config)` around a handler
/// that answers with `response`.
async fn serve(
    config: SseConfig,
    request: Request<()>,
    response: Response<Events>,
) -> Response<tower_sse::SseBody<Events>> {
    let response = Mutex::new(Some(response));
    ServiceBuilder::new()
        .layer(SseLayer::with_config(config))
        .service(service_fn(move |_: Request<()>| {
            let response = response.lock().unwrap().take().expect("called twice");
            async move { Ok::<_, Infallible>(response) }
        }))
        .oneshot(request)
        .await
        .unwrap()
}

fn get() -> Request<()> {
    Request::get("/events").body(()).unwrap()
}

/// The `LastEventId` extension that a handler behind the layer sees.
async fn seen_last_event_id(request: Request<()>) -> Option<LastEventId> {
    let seen = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&seen);
    let response = ServiceBuilder::new()
        .layer(SseLayer::new())
        .service(service_fn(move |request: Request<()>| {
            *slot.lock().unwrap() = Some(request.extensions().get::<LastEventId>().cloned());
            async { Ok::<_, Infallible>(Response::new(events(&[]))) }
        }))
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen = seen.lock().unwrap().take();
    seen.expect("the handler was not called")
}

fn with_last_event_id(value: HeaderValue) -> Request<()> {
    Request::get("/events")
        .header(&LAST_EVENT_ID, value)
        .body(())
        .unwrap()
}

// ---- response headers and status ----

#[tokio::test]
async fn ok_response_gets_sse_headers() {
    let response = serve(SseConfig::new(), get(), Response::new(events(&["a"]))).await;

    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers[header::CONTENT_TYPE], "text/event-stream");
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache, no-transform");
    assert_eq!(headers["x-accel-buffering"], "no");
    assert_eq!(collect_bytes(response.into_body()).await, "data: a\n\n");
}

#[tokio::test]
async fn framing_headers_set_by_the_handler_are_removed() {
    let response = Response::builder()
        .header(header::CONTENT_LENGTH, "10")
        .header(header::TRANSFER_ENCODING, "chunked")
        .header(header::CONNECTION, "keep-alive")
        .body(events(&["a", "b"]))
        .unwrap();
    let response = serve(SseConfig::new(), get(), response).await;

    let headers = response.headers();
    assert!(!headers.contains_key(header::CONTENT_LENGTH));
    assert!(!headers.contains_key(header::TRANSFER_ENCODING));
    assert!(!headers.contains_key(header::CONNECTION));
    assert_eq!(response.body().size_hint().exact(), None);
    assert_eq!(
        collect_bytes(response.into_body()).await,
        "data: a\n\ndata: b\n\n"
    );
}

#[tokio::test]
async fn handler_cache_control_and_extra_headers_are_kept() {
    let response = Response::builder()
        .header(header::CACHE_CONTROL, "no-store")
        .header("x-feed", "prices")
        .header(header::SET_COOKIE, "a=1")
        .header(header::SET_COOKIE, "b=2")
        .body(events(&["a"]))
        .unwrap();
    let response = serve(SseConfig::new(), get(), response).await;

    let headers = response.headers();
    let cache_control: Vec<_> = headers.get_all(header::CACHE_CONTROL).iter().collect();
    assert_eq!(cache_control, ["no-store"]);
    assert_eq!(headers["x-feed"], "prices");
    let cookies: Vec<_> = headers.get_all(header::SET_COOKIE).iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert_eq!(headers[header::CONTENT_TYPE], "text/event-stream");
}

#[tokio::test]
async fn handler_content_type_is_replaced_by_event_stream() {
    let response = Response::builder()
        .header(header::CONTENT_TYPE, "text/plain")
        .body(events(&["a"]))
        .unwrap();
    let response = serve(SseConfig::new(), get(), response).await;

    let content_types: Vec<_> = response
        .headers()
        .get_all(header::CONTENT_TYPE)
        .iter()
        .collect();
    assert_eq!(content_types, ["text/event-stream"]);
}

#[tokio::test]
async fn no_content_gets_an_empty_body_without_polling_the_stream() {
    let (stream, polled) = PollFlag::new(must_not_be_polled());
    let response = Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(stream.boxed())
        .unwrap();
    let response = serve(SseConfig::new(), get(), response).await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(!response.headers().contains_key(header::CONTENT_TYPE));
    assert!(response.body().is_end_stream());
    assert!(collect_bytes(response.into_body()).await.is_empty());
    assert!(!polled.load(Ordering::SeqCst));
}

#[tokio::test]
async fn non_ok_response_releases_the_stream_at_once() {
    let held = Arc::new(());
    let in_stream = Arc::clone(&held);
    let stream = stream::once(async move {
        let _held = in_stream;
        Event::new().data("never sent")
    })
    .boxed();
    let response = Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(stream)
        .unwrap();
    let response = serve(SseConfig::new(), get(), response).await;

    // The response is still alive, but the stream it would have carried is not.
    assert_eq!(Arc::strong_count(&held), 1);
    drop(response);
}

#[tokio::test]
async fn other_non_ok_statuses_get_an_empty_body_without_polling_the_stream() {
    for status in [
        StatusCode::CREATED,
        StatusCode::MOVED_PERMANENTLY,
        StatusCode::UNAUTHORIZED,
        StatusCode::NOT_FOUND,
        StatusCode::TOO_MANY_REQUESTS,
        StatusCode::INTERNAL_SERVER_ERROR,
        StatusCode::SERVICE_UNAVAILABLE,
    ] {
        let (stream, polled) = PollFlag::new(must_not_be_polled());
        let response = Response::builder()
            .status(status)
            .header(header::CONTENT_LENGTH, "12")
            .header("retry-after", "5")
            .body(stream.boxed())
            .unwrap();
        let response = serve(SseConfig::new(), get(), response).await;

        assert_eq!(response.status(), status);
        let headers = response.headers();
        assert!(!headers.contains_key(header::CONTENT_TYPE), "{status}");
        assert!(!headers.contains_key(header::CONTENT_LENGTH), "{status}");
        assert_eq!(headers["retry-after"], "5", "{status}");
        assert!(
            collect_bytes(response.into_body()).await.is_empty(),
            "{status}"
        );
        assert!(!polled.load(Ordering::SeqCst), "{status}");
    }
}

// ---- Last-Event-ID ----

#[tokio::test]
async fn valid_last_event_id_reaches_the_handler() {
    let seen = seen_last_event_id(with_last_event_id(HeaderValue::from_static("41"))).await;
    assert_eq!(seen.as_deref(), Some("41"));
}

#[tokio::test]
async fn last_event_id_is_passed_exactly() {
    for value in [
        "inner  spaces".to_owned(),
        "événement-7".to_owned(),
        "a b:c,d;e".to_owned(),
        "x".repeat(LastEventId::MAX_LEN),
    ] {
        let header = HeaderValue::from_bytes(value.as_bytes()).unwrap();
        let seen = seen_last_event_id(with_last_event_id(header)).await;
        assert_eq!(seen.as_deref(), Some(value.as_str()));
    }
}

#[tokio::test]
async fn last_event_id_with_spaces_at_its_ends_is_absent() {
    // HTTP trims them, so only an in-process request can carry them; no
    // event id has them.
    for value in [" 7", "7 "] {
        let header = HeaderValue::from_static(value);
        assert_eq!(seen_last_event_id(with_last_event_id(header)).await, None);
    }
}

#[tokio::test]
async fn too_long_last_event_id_is_absent() {
    let value = "x".repeat(LastEventId::MAX_LEN + 1);
    let header = HeaderValue::from_str(&value).unwrap();
    assert_eq!(seen_last_event_id(with_last_event_id(header)).await, None);
}

#[tokio::test]
async fn last_event_id_with_a_control_character_is_absent() {
    let header = HeaderValue::from_static("4\t1");
    assert_eq!(seen_last_event_id(with_last_event_id(header)).await, None);
}

#[tokio::test]
async fn non_utf8_last_event_id_is_absent() {
    let header = HeaderValue::from_bytes(b"41\xff\xfe").unwrap();
    assert_eq!(seen_last_event_id(with_last_event_id(header)).await, None);
}

#[tokio::test]
async fn empty_last_event_id_is_absent() {
    let header = HeaderValue::from_static("");
    assert_eq!(seen_last_event_id(with_last_event_id(header)).await, None);
}

#[tokio::test]
async fn repeated_last_event_id_is_absent() {
    let request = Request::get("/events")
        .header(&LAST_EVENT_ID, "41")
        .header(&LAST_EVENT_ID, "42")
        .body(())
        .unwrap();
    assert_eq!(seen_last_event_id(request).await, None);
}

#[tokio::test]
async fn outer_extension_is_removed_when_the_header_is_absent() {
    let mut request = get();
    request
        .extensions_mut()
        .insert(LastEventId::new("forged").unwrap());
    assert_eq!(seen_last_event_id(request).await, None);
}

#[tokio::test]
async fn outer_extension_is_removed_when_the_header_is_invalid() {
    let mut request = with_last_event_id(HeaderValue::from_static(""));
    request
        .extensions_mut()
        .insert(LastEventId::new("forged").unwrap());
    assert_eq!(seen_last_event_id(request).await, None);
}

#[tokio::test]
async fn outer_extension_is_replaced_by_a_valid_header() {
    let mut request = with_last_event_id(HeaderValue::from_static("41"));
    request
        .extensions_mut()
        .insert(LastEventId::new("forged").unwrap());
    let seen = seen_last_event_id(request).await;
    assert_eq!(seen.as_deref(), Some("41"));
}

/// The `LastEventIdHeader` extension that a handler behind the layer sees.
async fn seen_last_event_id_header(request: Request<()>) -> Option<LastEventIdHeader> {
    let seen = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&seen);
    ServiceBuilder::new()
        .layer(SseLayer::new())
        .service(service_fn(move |request: Request<()>| {
            *slot.lock().unwrap() = Some(request.extensions().get::<LastEventIdHeader>().cloned());
            async { Ok::<_, Infallible>(Response::new(events(&[]))) }
        }))
        .oneshot(request)
        .await
        .unwrap();
    let seen = seen.lock().unwrap().take();
    seen.expect("the handler was not called")
}

#[tokio::test]
async fn malformed_last_event_id_is_visible_as_invalid_not_absent() {
    let repeated = Request::get("/events")
        .header(&LAST_EVENT_ID, "41")
        .header(&LAST_EVENT_ID, "42")
        .body(())
        .unwrap();
    for request in [
        with_last_event_id(HeaderValue::from_bytes(b"41\xff\xfe").unwrap()),
        with_last_event_id(HeaderValue::from_static("4\t1")),
        with_last_event_id(HeaderValue::from_str(&"x".repeat(LastEventId::MAX_LEN + 1)).unwrap()),
        repeated,
    ] {
        let seen = seen_last_event_id_header(request)
            .await
            .expect("an extension");
        assert!(seen.is_invalid(), "{seen:?}");
        assert_eq!(seen.for_resume(), Some(LastEventIdHeader::INVALID_MARKER));
    }
}

#[tokio::test]
async fn last_event_id_header_extension_tells_absent_and_valid() {
    let seen = seen_last_event_id_header(get()).await;
    assert_eq!(seen, Some(LastEventIdHeader::Absent));
    let seen = seen_last_event_id_header(with_last_event_id(HeaderValue::from_static("41"))).await;
    assert_eq!(
        seen.as_ref().and_then(LastEventIdHeader::for_resume),
        Some("41")
    );
}

#[tokio::test]
async fn outer_last_event_id_header_extension_is_replaced() {
    let mut request = get();
    request.extensions_mut().insert(LastEventIdHeader::Valid(
        LastEventId::new("forged").unwrap(),
    ));
    assert_eq!(
        seen_last_event_id_header(request).await,
        Some(LastEventIdHeader::Absent)
    );
}

// ---- Accept ----

/// Serves a request with the given `Accept` headers; returns the status and
/// whether the inner service was called.
async fn serve_accepting(config: SseConfig, accept: &[&'static str]) -> (StatusCode, bool) {
    let called = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&called);
    let mut request = get();
    for value in accept {
        request
            .headers_mut()
            .append(header::ACCEPT, HeaderValue::from_static(value));
    }
    let response = ServiceBuilder::new()
        .layer(SseLayer::with_config(config))
        .service(service_fn(move |_: Request<()>| {
            flag.store(true, Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new(events(&["a"]))) }
        }))
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let body = collect_bytes(response.into_body()).await;
    if status == StatusCode::OK {
        assert_eq!(body, "data: a\n\n");
    } else {
        assert!(body.is_empty());
    }
    (status, called.load(Ordering::SeqCst))
}

#[tokio::test]
async fn required_accept_refuses_json_without_calling_the_handler() {
    let config = SseConfig::new().require_accept(true);
    let (status, called) = serve_accepting(config, &["application/json"]).await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
    assert!(!called);
}

#[tokio::test]
async fn required_accept_serves_event_stream_wildcards_and_no_accept() {
    for accept in [
        &["text/event-stream"][..],
        &["*/*"],
        &["text/html, */*;q=0.8"],
        &["application/json", "text/event-stream"],
        &[],
    ] {
        let config = SseConfig::new().require_accept(true);
        let (status, called) = serve_accepting(config, accept).await;
        assert_eq!(status, StatusCode::OK, "{accept:?}");
        assert!(called, "{accept:?}");
    }
}

#[tokio::test]
async fn default_config_serves_any_accept() {
    let (status, called) = serve_accepting(SseConfig::new(), &["application/json"]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(called);
}

// ---- readiness and errors ----

type MockResponse = Response<stream::Iter<std::vec::IntoIter<Event>>>;

#[derive(Debug, PartialEq)]
struct InnerError(&'static str);

impl std::fmt::Display for InnerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for InnerError {}

#[tokio::test]
async fn readiness_follows_the_inner_service() {
    let (mut service, mut handle) =
        tower_test::mock::spawn_layer::<Request<()>, MockResponse, _>(SseLayer::new());

    handle.allow(0);
    assert!(service.poll_ready().is_pending());
    assert!(!service.is_woken());

    handle.allow(1);
    assert!(service.is_woken(), "the inner service's wake-up is lost");
    assert!(matches!(service.poll_ready(), Poll::Ready(Ok(()))));

    let call = service.call(get());
    let (_request, respond) = handle.next_request().await.unwrap();
    respond.send_response(Response::new(stream::iter(vec![Event::new().data("x")])));
    let response = call.await.unwrap();
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    assert_eq!(collect_bytes(response.into_body()).await, "data: x\n\n");
}

#[tokio::test]
async fn readiness_errors_pass_through_unchanged() {
    let (mut service, mut handle) =
        tower_test::mock::spawn_layer::<Request<()>, MockResponse, _>(SseLayer::new());

    handle.send_error(InnerError("not ready"));
    let Poll::Ready(Err(error)) = service.poll_ready() else {
        panic!("the inner service's error was not returned");
    };
    assert_eq!(error.downcast_ref(), Some(&InnerError("not ready")));
}

#[tokio::test]
async fn call_errors_pass_through_unchanged() {
    let (mut service, mut handle) =
        tower_test::mock::spawn_layer::<Request<()>, MockResponse, _>(SseLayer::new());

    assert!(matches!(service.poll_ready(), Poll::Ready(Ok(()))));
    let call = service.call(get());
    let (_request, respond) = handle.next_request().await.unwrap();
    respond.send_error(InnerError("handler failed"));

    let error = call.await.unwrap_err();
    assert_eq!(error.downcast_ref(), Some(&InnerError("handler failed")));
}

// ---- the layer's config reaches every stream ----

#[tokio::test]
async fn on_close_hook_of_the_layer_reports_stream_ended() {
    let log = CloseRecorder::new();
    let config = SseConfig::new().on_close(log.hook());
    let response = serve(config, get(), Response::new(events(&["a", "b"]))).await;
    assert_eq!(log.reasons(), []);

    let body = collect_bytes(response.into_body()).await;
    assert_eq!(body, "data: a\n\ndata: b\n\n");
    assert_eq!(log.reasons(), [CloseReason::StreamEnded]);
}

#[tokio::test]
async fn on_close_hook_of_the_layer_reports_client_gone() {
    let log = CloseRecorder::new();
    let config = SseConfig::new().on_close(log.hook());
    let stream = stream::iter([Event::new().data("a")])
        .chain(stream::pending())
        .boxed();
    let response = serve(config, get(), Response::new(stream)).await;
    let mut body = Box::pin(response.into_body());
    let frame = body.frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "data: a\n\n");

    drop(body);
    assert_eq!(log.reasons(), [CloseReason::ClientGone]);
}

#[tokio::test(start_paused = true)]
async fn keep_alive_of_the_layer_pings_an_idle_stream() {
    let config = SseConfig::new().keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(3))
            .text("ping"),
    );
    let response = serve(config, get(), Response::new(stream::pending().boxed())).await;
    let mut body = Box::pin(response.into_body());

    let start = tokio::time::Instant::now();
    let frame = body.frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), ": ping\n\n");
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn shutdown_of_the_layer_ends_the_stream_after_the_farewell() {
    let shutdown = Shutdown::new();
    let log = CloseRecorder::new();
    let config = SseConfig::new()
        .shutdown(shutdown.clone())
        .farewell(Farewell::new().event(Event::new().event("bye").data("restarting")))
        .on_close(log.hook());
    let stream = stream::iter([Event::new().data("a")])
        .chain(stream::pending())
        .boxed();
    let response = serve(config, get(), Response::new(stream)).await;
    let mut body = Box::pin(response.into_body());
    let first = body.frame().await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "data: a\n\n");

    let trigger = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        shutdown.trigger();
    });
    let farewell = body.frame().await.unwrap().unwrap();
    assert_eq!(
        farewell.into_data().unwrap(),
        "event: bye\ndata: restarting\n\n"
    );
    assert!(body.frame().await.is_none());
    assert!(body.is_end_stream());
    assert_eq!(log.reasons(), [CloseReason::Shutdown]);
    trigger.await.unwrap();
}

#[tokio::test]
async fn error_event_of_the_layer_is_sent_when_the_stream_fails() {
    let config = SseConfig::new().error_event(|_| Event::new().event("error").data("try later"));
    let response = ServiceBuilder::new()
        .layer(SseLayer::with_config(config))
        .service(service_fn(|_: Request<()>| async {
            let stream = stream::iter([
                Ok(Event::new().data("a")),
                Err(std::io::Error::other("database down")),
                Ok(Event::new().data("never sent")),
            ]);
            Ok::<_, Infallible>(Response::new(stream))
        }))
        .oneshot(get())
        .await
        .unwrap();
    let body = collect_bytes(response.into_body()).await;
    assert_eq!(body, "data: a\n\nevent: error\ndata: try later\n\n");
}

/// Serves one request through `SseLayer` around a handler answering with
/// `response`, whose body is an `SseOr`.
async fn serve_sse_or(
    response: Response<SseOr<Events, String>>,
) -> Response<tower_sse::SseOrBody<Events, String>> {
    let response = Mutex::new(Some(response));
    ServiceBuilder::new()
        .layer(SseLayer::new())
        .service(service_fn(move |_: Request<()>| {
            let response = response.lock().unwrap().take().expect("called twice");
            async move { Ok::<_, Infallible>(response) }
        }))
        .oneshot(get())
        .await
        .unwrap()
}

#[tokio::test]
async fn an_error_status_answered_with_sse_or_body_keeps_its_body_and_headers() {
    for status in [StatusCode::UNAUTHORIZED, StatusCode::NOT_FOUND] {
        let response = Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, "17")
            .body(SseOr::Body(r#"{"error":"nope"}"#.to_owned() + "\n"))
            .unwrap();
        let response = serve_sse_or(response).await;
        assert_eq!(response.status(), status);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(response.headers()[header::CONTENT_LENGTH], "17");
        assert!(!response.body().is_events());
        assert_eq!(
            collect_bytes(response.into_body()).await,
            "{\"error\":\"nope\"}\n"
        );
    }
}

#[tokio::test]
async fn sse_or_events_stream_like_a_bare_stream() {
    let response = serve_sse_or(Response::new(SseOr::Events(events(&["a", "b"])))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    assert!(response.body().is_events());
    assert_eq!(
        collect_bytes(response.into_body()).await,
        "data: a\n\ndata: b\n\n"
    );

    let mut no_content = Response::new(SseOr::Events(must_not_be_polled()));
    *no_content.status_mut() = StatusCode::NO_CONTENT;
    let response = serve_sse_or(no_content).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(collect_bytes(response.into_body()).await.is_empty());
}

#[tokio::test]
async fn an_invalid_event_is_a_warning_naming_the_request_the_field_and_the_character() {
    let (logs, _guard) = support::logs::Logs::capture();
    let response = ServiceBuilder::new()
        .layer(SseLayer::new())
        .service(service_fn(|_: Request<()>| async {
            let items = stream::iter([
                Event::new().data("sent"),
                Event::new().id("a\tb").data("never sent"),
            ]);
            Ok::<_, Infallible>(Response::new(items))
        }))
        .oneshot(Request::get("/feed/prices?x=1").body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(collect_bytes(response.into_body()).await, "data: sent\n\n");

    let events = logs.events();
    let warning = events
        .iter()
        .find(|logged| logged.level == tracing::Level::WARN)
        .unwrap_or_else(|| panic!("no warning in {events:?}"));
    assert!(
        warning.text.contains("id has U+0009 at byte 1"),
        "{warning:?}"
    );
    let span = warning
        .span
        .as_deref()
        .expect("the warning is in the stream's span");
    assert!(span.starts_with("sse_stream"), "{span}");
    assert!(
        span.contains("method=GET") && span.contains("path=/feed/prices"),
        "{span}"
    );
    assert!(
        logs.spans()
            .iter()
            .any(|span| span.contains("close_reason=error")),
        "{:?}",
        logs.spans()
    );
}

#[tokio::test]
async fn a_stream_span_records_why_the_stream_closed() {
    let (logs, _guard) = support::logs::Logs::capture();
    let response = serve(SseConfig::new(), get(), Response::new(events(&["a"]))).await;
    collect_bytes(response.into_body()).await;
    let spans = logs.spans();
    assert!(
        spans.iter().any(|span| span.contains("method=GET")
            && span.contains("path=/events")
            && span.contains("close_reason=stream ended")),
        "{spans:?}"
    );
}
