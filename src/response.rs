//! Turning a handler's response into an SSE response, and the request checks.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};

use crate::body::SseBody;
use crate::config::{ConfigSlot, SseConfig};
use crate::connection::ConnectionStatus;

static TEXT_EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");
// `no-transform`: intermediaries must not transform (compress, re-chunk) the
// stream, which would hold events back.
static NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache, no-transform");
static NO: HeaderValue = HeaderValue::from_static("no");
static X_ACCEL_BUFFERING: header::HeaderName = header::HeaderName::from_static("x-accel-buffering");

/// Makes the SSE response for a handler's response whose body is an event
/// stream.
///
/// A `200 OK` streams the events with the SSE headers set (the handler's own
/// `Cache-Control` is kept). Any other status, `204 No Content` above all (it
/// tells a browser to stop reconnecting), is sent with an empty body and the
/// stream is dropped unpolled (a handler that must send a body with another
/// status answers with [`SseOr`](crate::SseOr)). Headers that would break a stream
/// (`Content-Length`, `Transfer-Encoding`, `Connection`) are removed.
pub(crate) fn sse_response<S>(
    response: Response<S>,
    config: &SseConfig,
    connection: Option<ConnectionStatus>,
    span: Option<tracing::Span>,
) -> Response<SseBody<S>> {
    let (mut parts, stream) = response.into_parts();
    strip_framing_headers(&mut parts.headers);
    if parts.status != StatusCode::OK {
        return Response::from_parts(parts, SseBody::empty());
    }
    set_sse_headers(&mut parts.headers);
    let body = SseBody::with_config(stream, config.clone())
        .on_connection(connection)
        .in_span(span);
    Response::from_parts(parts, body)
}

/// The `200 OK` SSE response that a framework adapter makes inside a handler.
///
/// With an `explicit` config the body uses it. Without one, the body takes its
/// policy from an outer [`SseConfigLayer`](crate::SseConfigLayer) if there is
/// one, else the default. Either way the outer layer gives the body, through
/// a [`ConfigSlot`] response extension, the request's connection, or turns
/// the response into a `406` (see [`refuse`]).
#[cfg_attr(not(any(feature = "axum", feature = "warp")), allow(dead_code))]
pub(crate) fn stream_response<S>(stream: S, explicit: Option<SseConfig>) -> Response<SseBody<S>> {
    let slot = ConfigSlot::new(explicit.as_ref());
    let mut response = Response::new(SseBody::with_config_slot(stream, explicit, slot.clone()));
    response.extensions_mut().insert(slot);
    set_sse_headers(response.headers_mut());
    response
}

/// What an outer config layer does to an SSE response made inside it: a
/// request that does not accept `text/event-stream` gets an empty `406` when
/// the layer's policy or the response's own requires it; then the slot gets
/// the layer's policy (which a response with a policy of its own ignores).
pub(crate) fn settle_slot<B>(
    response: &mut Response<B>,
    slot: &ConfigSlot,
    config: SseConfig,
    accepts: bool,
) {
    if !accepts && (config.inner().require_accept || slot.requires_accept()) {
        refuse(response, slot);
    }
    slot.set(config);
}

/// Turns an SSE response made by a framework adapter into an empty
/// `406 Not Acceptable`: the body ends at its first poll, with its stream
/// unpolled and no close reported.
fn refuse<B>(response: &mut Response<B>, slot: &ConfigSlot) {
    slot.refuse();
    *response.status_mut() = StatusCode::NOT_ACCEPTABLE;
    let headers = response.headers_mut();
    headers.remove(header::CONTENT_TYPE);
    headers.remove(&X_ACCEL_BUFFERING);
}

fn strip_framing_headers(headers: &mut HeaderMap) {
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::TRANSFER_ENCODING);
    headers.remove(header::CONNECTION);
}

fn set_sse_headers(headers: &mut HeaderMap) {
    headers.insert(header::CONTENT_TYPE, TEXT_EVENT_STREAM.clone());
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, NO_CACHE.clone());
    }
    if !headers.contains_key(&X_ACCEL_BUFFERING) {
        headers.insert(X_ACCEL_BUFFERING.clone(), NO.clone());
    }
}

/// Whether a request's `Accept` headers allow `text/event-stream`.
///
/// No `Accept` header allows anything. Otherwise the most specific matching
/// media range (`text/event-stream`, then `text/*`, then `*/*`) decides, and
/// a quality of zero refuses.
pub(crate) fn accepts_event_stream(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(header::ACCEPT).iter().peekable();
    if values.peek().is_none() {
        return true;
    }
    // (specificity, acceptable) of the best match so far.
    let mut best: Option<(u8, bool)> = None;
    for value in values {
        // A range that is not UTF-8 is skipped, not the whole header value.
        let ranges = value.as_bytes().split(|&byte| byte == b',');
        for range in ranges.filter_map(|range| std::str::from_utf8(range).ok()) {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim();
            let specificity = if media.eq_ignore_ascii_case("text/event-stream") {
                3
            } else if media.eq_ignore_ascii_case("text/*") {
                2
            } else if media == "*/*" {
                1
            } else {
                continue;
            };
            let acceptable = !parts.any(|param| is_zero_quality(param.trim()));
            if best.is_none_or(|(best, _)| specificity > best) {
                best = Some((specificity, acceptable));
            }
        }
    }
    best.is_some_and(|(_, acceptable)| acceptable)
}

fn is_zero_quality(param: &str) -> bool {
    let Some((name, value)) = param.split_once('=') else {
        return false;
    };
    if !name.trim().eq_ignore_ascii_case("q") {
        return false;
    }
    let value = value.trim();
    value.strip_prefix('0').is_some_and(|rest| {
        rest.is_empty()
            || rest
                .strip_prefix('.')
                .is_some_and(|d| d.bytes().all(|b| b == b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(values: &[&str]) -> bool {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        }
        accepts_event_stream(&headers)
    }

    #[test]
    fn accept_header_rules() {
        assert!(accepts(&[]));
        assert!(accepts(&["text/event-stream"]));
        assert!(accepts(&["TEXT/Event-Stream; charset=utf-8"]));
        assert!(accepts(&["*/*"]));
        assert!(accepts(&["text/*;q=0.5"]));
        assert!(accepts(&["application/json", "text/event-stream"]));
        assert!(!accepts(&["application/json"]));
        assert!(!accepts(&["text/html, application/json"]));
        assert!(!accepts(&["text/event-stream;q=0"]));
        assert!(!accepts(&["text/event-stream; q=0.000, */*"]));
        assert!(accepts(&["text/event-stream;q=0.01"]));
        assert!(accepts(&["text/*;q=0, text/event-stream"]));
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_bytes(b"text/x-caf\xc3\xa9\xff, text/event-stream").unwrap();
        headers.insert(header::ACCEPT, value);
        assert!(accepts_event_stream(&headers));
    }
}
