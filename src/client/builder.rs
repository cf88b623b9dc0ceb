//! The request and the policy of an [`EventSource`].

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CACHE_CONTROL, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, Uri};
use http_body::Body;
use tower_service::Service;

use super::EventSource;
use super::transport::{ServiceTransport, http_client};
use crate::decode::Decoder;
use crate::{BoxError, LAST_EVENT_ID};

/// What a browser waits before reconnecting when the server sent no
/// `retry:` field (Chromium's default).
const DEFAULT_RECONNECTION_TIME: Duration = Duration::from_secs(3);
const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The fetch standard's bound.
const DEFAULT_MAX_REDIRECTS: usize = 20;

/// Builds an [`EventSource`]: the request it sends, and how it reconnects.
///
/// Made by [`EventSource::builder`]. Like [`http::request::Builder`], setters
/// never fail: an invalid URI, header or id is kept until the source is
/// built, and then is the first item of its stream, a fatal
/// [`ClientError`](super::ClientError) (`is_invalid_request`).
///
/// # Example
///
/// A `POST` with a JSON body, resent on every reconnection, over an
/// authenticated transport of your own (here hyper-util's client):
///
/// ```no_run
/// use std::time::Duration;
///
/// use bytes::Bytes;
/// use http::Method;
/// use http_body_util::Full;
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
/// use tower_sse::client::EventSource;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
/// let source = EventSource::builder("http://127.0.0.1:8080/v1/completions")
///     .method(Method::POST)
///     .header("content-type", "application/json")
///     .header("authorization", "Bearer token")
///     .body(r#"{"prompt":"hello","stream":true}"#)
///     .idle_timeout(Duration::from_secs(45))
///     .build(http);
/// # drop(source);
/// # }
/// ```
#[derive(Clone)]
#[must_use]
pub struct EventSourceBuilder {
    config: Result<Config, String>,
}

/// Everything an [`EventSource`] was built with.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) uri: Uri,
    pub(crate) method: Method,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) last_event_id: String,
    pub(crate) reconnection_time: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_redirects: usize,
    pub(crate) retry_server_errors: bool,
    pub(crate) max_line_len: Option<usize>,
    pub(crate) max_event_len: Option<usize>,
    /// The transport speaks plain HTTP only (`build_http`): a redirect to
    /// another scheme is refused rather than attempted.
    pub(crate) http_only: bool,
}

impl Config {
    /// The default policy for a `GET` of `uri`.
    pub(crate) fn new(uri: Uri) -> Self {
        Self {
            uri,
            method: Method::GET,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            last_event_id: String::new(),
            reconnection_time: DEFAULT_RECONNECTION_TIME,
            max_backoff: DEFAULT_MAX_BACKOFF,
            idle_timeout: None,
            max_redirects: DEFAULT_MAX_REDIRECTS,
            retry_server_errors: false,
            max_line_len: None,
            max_event_len: None,
            http_only: false,
        }
    }

    /// A decoder with the configured limits, starting from the saved last
    /// event id; each later connection [`reset`](Decoder::reset)s it, which
    /// keeps the last event id and the reconnection time.
    pub(crate) fn decoder(&self) -> Decoder {
        let mut decoder = Decoder::new().with_last_event_id(&self.last_event_id);
        if let Some(limit) = self.max_line_len {
            decoder = decoder.max_line_len(limit);
        }
        if let Some(limit) = self.max_event_len {
            decoder = decoder.max_event_len(limit);
        }
        decoder
    }
}

impl EventSourceBuilder {
    pub(crate) fn new<T>(uri: T) -> Self
    where
        T: TryInto<Uri>,
        T::Error: Into<http::Error>,
    {
        let config = uri
            .try_into()
            .map_err(|error| error.into().to_string())
            .and_then(|uri: Uri| {
                if uri.scheme().is_none() || uri.authority().is_none() {
                    return Err(format!("{uri} is not an absolute URI"));
                }
                Ok(uri)
            })
            .map(Config::new);
        Self { config }
    }

    fn map(mut self, f: impl FnOnce(Config) -> Result<Config, String>) -> Self {
        self.config = self.config.and_then(f);
        self
    }

    /// Sets the request method (default `GET`).
    pub fn method(self, method: Method) -> Self {
        self.map(|mut config| {
            config.method = method;
            Ok(config)
        })
    }

    /// Adds a request header, sent on every connection.
    ///
    /// `Accept: text/event-stream` and `Cache-Control: no-store` are sent
    /// unless set here; `Last-Event-ID` is the source's own (see
    /// [`last_event_id`](EventSourceBuilder::last_event_id)) and is never
    /// taken from here.
    pub fn header<K, V>(self, name: K, value: V) -> Self
    where
        K: TryInto<HeaderName>,
        K::Error: Into<http::Error>,
        V: TryInto<HeaderValue>,
        V::Error: Into<http::Error>,
    {
        self.map(|mut config| {
            let name = name.try_into().map_err(|e| e.into().to_string())?;
            let value = value.try_into().map_err(|e| e.into().to_string())?;
            config.headers.append(name, value);
            Ok(config)
        })
    }

    /// Sets the request body, sent again on every reconnection (default
    /// empty).
    pub fn body(self, body: impl Into<Bytes>) -> Self {
        let body = body.into();
        self.map(|mut config| {
            config.body = body;
            Ok(config)
        })
    }

    /// Starts from a last event id saved earlier: the first request already
    /// sends it as `Last-Event-ID` (default none).
    ///
    /// An id with CR, LF or NUL cannot have come from a stream and is an
    /// invalid request.
    pub fn last_event_id(self, id: impl Into<String>) -> Self {
        let id = id.into();
        self.map(|mut config| {
            if id.contains(['\r', '\n', '\0']) {
                return Err("a last event id cannot hold CR, LF or NUL".to_owned());
            }
            config.last_event_id = id;
            Ok(config)
        })
    }

    /// Sets the reconnection time used until the server sends a `retry:`
    /// field (default 3 s, as Chromium).
    pub fn reconnection_time(self, time: Duration) -> Self {
        self.map(|mut config| {
            config.reconnection_time = time;
            Ok(config)
        })
    }

    /// Sets the cap of the exponential backoff after failed connections
    /// (default 30 s). A server's `retry:` above the cap is still honoured.
    pub fn max_backoff(self, max: Duration) -> Self {
        self.map(|mut config| {
            config.max_backoff = max;
            Ok(config)
        })
    }

    /// Reconnects when no byte has arrived for `timeout`, while waiting for a
    /// response or reading one (default: never). Set it above the server's
    /// keep-alive interval to notice a connection that silently died.
    pub fn idle_timeout(self, timeout: Duration) -> Self {
        self.map(|mut config| {
            config.idle_timeout = Some(timeout);
            Ok(config)
        })
    }

    /// Sets how many redirects one connection follows before giving up
    /// (default 20, as the fetch standard).
    pub fn max_redirects(self, max: usize) -> Self {
        self.map(|mut config| {
            config.max_redirects = max;
            Ok(config)
        })
    }

    /// Reconnects (with backoff, honouring `Retry-After` in seconds) after a
    /// `5xx` or `429` response instead of giving up (default: give up, as a
    /// browser does).
    pub fn retry_server_errors(self, retry: bool) -> Self {
        self.map(|mut config| {
            config.retry_server_errors = retry;
            Ok(config)
        })
    }

    /// Sets the decoder's longest line (see [`Decoder::max_line_len`]).
    pub fn max_line_len(self, limit: usize) -> Self {
        self.map(|mut config| {
            config.max_line_len = Some(limit);
            Ok(config)
        })
    }

    /// Sets the decoder's largest event (see [`Decoder::max_event_len`]).
    pub fn max_event_len(self, limit: usize) -> Self {
        self.map(|mut config| {
            config.max_event_len = Some(limit);
            Ok(config)
        })
    }

    /// Builds the source over `service`, any tower HTTP service: hyper-util's
    /// client with your connector (TLS), and your layers (timeouts, auth,
    /// tracing).
    ///
    /// The request body type `B` is made from the configured `Bytes`
    /// (`http_body_util::Full<Bytes>` is the usual one). Nothing is sent
    /// until the source is polled.
    pub fn build<S, B, ResBody>(self, service: S) -> EventSource
    where
        S: Service<Request<B>, Response = Response<ResBody>> + Send + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
        B: From<Bytes> + 'static,
        ResBody: Body + Send + 'static,
        ResBody::Error: Into<BoxError>,
    {
        EventSource::new(self.config, Box::new(ServiceTransport::new(service)))
    }

    /// Builds the source over hyper-util's pooled HTTP/1 client, for plain
    /// `http://` URIs (any other scheme, and a redirect to one, is an
    /// invalid request: bring a client with a TLS connector to
    /// [`build`](Self::build)). Needs a tokio runtime when polled.
    pub fn build_http(self) -> EventSource {
        self.map(|config| {
            if config.uri.scheme_str() != Some("http") {
                return Err("build_http serves http:// URIs only".to_owned());
            }
            Ok(Config {
                http_only: true,
                ..config
            })
        })
        .build(http_client())
    }
}

impl fmt::Debug for EventSourceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.config {
            Ok(config) => f
                .debug_struct("EventSourceBuilder")
                .field("uri", &config.uri)
                .field("method", &config.method)
                .field("headers", &config.headers.len())
                .field("body", &config.body.len())
                .field("last_event_id", &config.last_event_id)
                .field("reconnection_time", &config.reconnection_time)
                .field("max_backoff", &config.max_backoff)
                .field("idle_timeout", &config.idle_timeout)
                .field("max_redirects", &config.max_redirects)
                .field("retry_server_errors", &config.retry_server_errors)
                .finish_non_exhaustive(),
            Err(error) => f
                .debug_struct("EventSourceBuilder")
                .field("error", error)
                .finish(),
        }
    }
}

/// The headers of every request: the configured ones, what a browser adds,
/// and `Last-Event-ID` when the last event id is not empty.
pub(crate) fn request_headers(configured: &HeaderMap, last_event_id: &str) -> HeaderMap {
    let mut headers = configured.clone();
    headers.remove(&LAST_EVENT_ID);
    if !headers.contains_key(ACCEPT) {
        headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
    }
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if !last_event_id.is_empty() {
        match HeaderValue::from_bytes(last_event_id.as_bytes()) {
            Ok(value) => {
                headers.insert(LAST_EVENT_ID.clone(), value);
            }
            Err(_) => tracing::debug!("last event id cannot be sent as a header value"),
        }
    }
    headers
}
