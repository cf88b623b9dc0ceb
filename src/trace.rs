//! The `tracing` span of each stream, and what is logged in it.

use http::{Method, Uri};
use tracing::Span;

use crate::config::CloseReason;
use crate::error::BoxError;

/// The span of the stream that answers a request: `sse_stream` at info
/// level, with the request's `method` and `path`, and the `close_reason`
/// recorded when the stream ends. `None` when no subscriber wants it, so
/// that a stream nobody traces costs nothing more.
pub(crate) fn stream_span(method: &Method, uri: &Uri) -> Option<Span> {
    let span = tracing::info_span!(
        "sse_stream",
        method = %method,
        path = uri.path(),
        close_reason = tracing::field::Empty,
    );
    (!span.is_disabled()).then_some(span)
}

/// A stream error ended a `200 OK` response: the client sees a stream that
/// ends and reconnects, perhaps into the same failure, so it is a warning,
/// in the stream's span when there is one.
pub(crate) fn stream_failed(span: Option<&Span>, error: &BoxError) {
    const MESSAGE: &str = "sse stream failed: its response ends and the client reconnects";
    match span {
        Some(span) => tracing::warn!(parent: span, %error, "{MESSAGE}"),
        None => tracing::warn!(%error, "{MESSAGE}"),
    }
}

/// A stream ended: its span records why.
pub(crate) fn stream_closed(span: Option<&Span>, reason: CloseReason) {
    match span {
        Some(span) => {
            span.record("close_reason", tracing::field::display(reason));
            tracing::debug!(parent: span, %reason, "sse stream closed");
        }
        None => tracing::debug!(%reason, "sse stream closed"),
    }
}
