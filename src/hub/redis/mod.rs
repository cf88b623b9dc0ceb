//! The hub across many server processes, on Redis (feature `redis`).
//!
//! A [`RedisHub`] is a [`Hub`](super::Hub) whose history lives in Redis, so
//! that every server process (node) behind a load balancer serves the same
//! feed, and a client resumes with its `Last-Event-ID` on whichever node its
//! reconnect lands.

mod connection;
mod node;
mod scripts;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::event::Event;

use super::id::{Epoch, Unnumbered};
use super::log::Kind;
use super::registry::{AfterUnlock, Resume};
use super::{EventId, HubConfig, HubError, HubMetrics, Subscription, check, sorted_names};

use connection::Connection;
use node::{Channel, Node};

/// The default prefix of the hub's keys and channels in Redis.
const DEFAULT_PREFIX: &str = "tower-sse";
/// The default timeout of each Redis call.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// A [`Hub`](super::Hub) shared by many server processes through Redis.
///
/// It has the hub's API, with two differences: publishing is `async`, since
/// the id comes from Redis, and it fails with
/// [`HubError::is_unavailable`] when Redis cannot be reached. Subscribing
/// is the same call and returns the same [`Subscription`], so handlers do
/// not change.
///
/// # How it works
///
/// - **Publishing is one script** in Redis: it numbers the event from one
///   counter (`INCR`), appends it to the log's stream (`XADD`), trims the
///   log's window by count, bytes and age (`XTRIM`), and publishes it on the
///   log's channel (`PUBLISH`). The event is encoded once, by the publisher.
/// - **Ids are positions in Redis**: `{epoch}-{position}`, as for the
///   in-process hub. The epoch is kept in Redis beside the counter; when
///   Redis loses its data, a new epoch is made, so that an id from lost
///   history gets the resync signal rather than a silent gap.
/// - **Each node follows each topic and user feed its clients read once**
///   (one `SUBSCRIBE` on one pub/sub connection, whatever the number of
///   clients), and appends what arrives to a local log that its clients
///   read, as in the in-process hub: one copy per event per node.
/// - **Resuming reads Redis**: a subscription with a `Last-Event-ID` reads
///   its logs' streams after that id in one script (`XRANGE`), merges them
///   by position, then goes on live with no gap and no duplicate.
/// - **When Redis is away**, publishing returns an error
///   ([`HubError::is_unavailable`]); open streams stay open (their
///   keep-alives go on) and a new subscription that needs Redis ends, at
///   once while the node is reconnecting and otherwise after the timeout,
///   so that its client retries. The node reconnects with backoff and
///   reads what it missed from the streams, after the last position it
///   delivered. Should Redis come back without the history (a restart
///   without persistence, a flush, a restore of an older snapshot), open
///   streams end and their clients get the resync signal on reconnecting.
///
/// Every Redis call has a timeout ([`RedisHubBuilder::timeout`]). Redis
/// Cluster is not supported: the keys of a publish live in different slots.
///
/// # Example
///
/// ```no_run
/// use tower_sse::Event;
/// use tower_sse::hub::RedisHub;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_sse::hub::HubError> {
/// let hub = RedisHub::connect("redis://127.0.0.1:6379/").await?;
/// let id = hub.publish("prices", Event::new().data("101.5")).await?;
/// // A client that saw `id` resumes after it, on any node:
/// let resumed = hub.subscribe(["prices"], Some(&id.to_string()));
/// # drop(resumed);
/// # Ok(())
/// # }
/// ```
///
/// Cloning is cheap and every clone is the same node. When the last clone
/// is dropped, the node stops following Redis and every subscription's
/// stream ends.
#[derive(Clone)]
pub struct RedisHub {
    handle: Arc<Handle>,
}

/// Every `RedisHub` clone shares one `Handle`: dropping the last stops the
/// node.
struct Handle {
    node: Arc<Node>,
    follower: tokio::task::AbortHandle,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.follower.abort();
        self.node.close();
    }
}

/// Builds a [`RedisHub`]: the Redis URL, the hub's policy, the key prefix
/// and the timeout of Redis calls.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_sse::hub::{HubConfig, RedisHub};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_sse::hub::HubError> {
/// let hub = RedisHub::builder("redis://127.0.0.1:6379/")
///     .config(HubConfig::new().replay_max_events(10_000))
///     .prefix("my-app:sse")
///     .timeout(Duration::from_secs(1))
///     .connect()
///     .await?;
/// # drop(hub);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use]
pub struct RedisHubBuilder {
    url: String,
    config: HubConfig,
    prefix: String,
    timeout: Duration,
}

impl RedisHubBuilder {
    /// The hub's policy: every node of one feed should use the same. The
    /// windows bound both what Redis retains (trimmed by each publish) and
    /// what a node keeps of each log its clients read; `max_lag` and the
    /// lag policy apply to each node's subscribers as in the in-process hub.
    pub fn config(mut self, config: HubConfig) -> Self {
        self.config = config;
        self
    }

    /// The prefix of every key and channel the hub uses (default
    /// `tower-sse`): hubs with different prefixes share a Redis and nothing
    /// else.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long one Redis call may take (default 2 s): connecting, a
    /// publish, a resume's read, a subscription to a channel.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connects to Redis, reads (or makes) the epoch, and starts following.
    /// Must be called within a tokio runtime, whose tasks the node uses.
    ///
    /// # Errors
    ///
    /// [`HubError::is_unavailable`]: the URL is not a Redis URL, or Redis
    /// did not answer in time.
    pub async fn connect(self) -> Result<RedisHub, HubError> {
        let client = redis::Client::open(self.url.as_str()).map_err(HubError::unavailable)?;
        let connection = Connection::new(client, self.timeout);
        let (node, follower) = Node::start(connection, self.prefix, self.config).await?;
        Ok(RedisHub {
            handle: Arc::new(Handle { node, follower }),
        })
    }
}

/// What a [`RedisHub`] node holds and has done, and how its Redis is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisHubMetrics {
    /// The node's local state, as for the in-process hub; `published` and
    /// `sent` count the events that reached the node from Redis for its
    /// subscribers, `retained_*` what it keeps of them.
    pub hub: HubMetrics,
    /// Whether the node is following Redis now.
    pub connected: bool,
    /// How many times the node lost Redis.
    pub outages: u64,
    /// Topics and user feeds the node follows (one Redis subscription each).
    pub followed: usize,
    /// Events published through this node.
    pub published: u64,
    /// Publishes and sends that failed because Redis was away.
    pub publish_errors: u64,
    /// Times Redis was found without the history (a new epoch).
    pub history_lost: u64,
}

impl RedisHub {
    /// A node on the Redis at `url` (`redis://host:port/db`), with the
    /// default policy, prefix and timeout.
    ///
    /// # Errors
    ///
    /// As for [`RedisHubBuilder::connect`].
    pub async fn connect(url: &str) -> Result<Self, HubError> {
        Self::builder(url).connect().await
    }

    /// A builder for a node on the Redis at `url`.
    pub fn builder(url: &str) -> RedisHubBuilder {
        RedisHubBuilder {
            url: url.to_owned(),
            config: HubConfig::default(),
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    fn node(&self) -> &Arc<Node> {
        &self.handle.node
    }

    /// Publishes `event` to `topic` through Redis: every node's subscribers
    /// of `topic` get it, and a client resumes it on any node. Returns the
    /// id Redis gave it.
    ///
    /// # Errors
    ///
    /// As for [`Hub::publish`](super::Hub::publish), and
    /// [`HubError::is_unavailable`] when Redis could not be reached in
    /// time; such an event reaches no one (unless the answer alone was lost).
    pub async fn publish(&self, topic: &str, event: Event) -> Result<EventId, HubError> {
        self.append(Kind::Topic, topic, event).await
    }

    /// Sends `event` to the user `user` through Redis: every connection of
    /// that user, on any node, gets it. Returns the id Redis gave it.
    ///
    /// # Errors
    ///
    /// As for [`publish`](RedisHub::publish).
    pub async fn send_to(&self, user: &str, event: Event) -> Result<EventId, HubError> {
        self.append(Kind::User, user, event).await
    }

    async fn append(&self, kind: Kind, name: &str, event: Event) -> Result<EventId, HubError> {
        check(&event)?;
        let encoded = event.encode().map_err(HubError::event)?;
        let node = self.node();
        let result = node
            .publish(&Channel::new(kind, Arc::from(name)), encoded.as_bytes())
            .await;
        match &result {
            Ok(_) => node.counters.published.fetch_add(1, Ordering::Relaxed),
            Err(_) => node.counters.publish_errors.fetch_add(1, Ordering::Relaxed),
        };
        result
    }

    /// Subscribes to `topics`, resuming after `last_event_id` when given:
    /// as [`Hub::subscribe`](super::Hub::subscribe), across every node.
    ///
    /// Returns at once. The subscription's first poll waits, when it must,
    /// for the node to follow a topic it did not follow yet, and for a
    /// resume's read from Redis; when Redis does not answer in time the
    /// stream ends (its client retries with the same id).
    pub fn subscribe<I>(&self, topics: I, last_event_id: Option<&str>) -> Subscription
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.register(None, topics, last_event_id)
    }

    /// Like [`subscribe`](RedisHub::subscribe), and also reads the feed of
    /// `user`: as [`Hub::subscribe_client`](super::Hub::subscribe_client).
    pub fn subscribe_client<I>(
        &self,
        user: &str,
        topics: I,
        last_event_id: Option<&str>,
    ) -> Subscription
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.register(Some(user), topics, last_event_id)
    }

    /// The feed of `user` alone.
    pub fn subscribe_user(&self, user: &str, last_event_id: Option<&str>) -> Subscription {
        self.register(Some(user), [] as [&str; 0], last_event_id)
    }

    fn register<I>(
        &self,
        user: Option<&str>,
        topics: I,
        last_event_id: Option<&str>,
    ) -> Subscription
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let node = self.node();
        let shared = node.current();
        let topics: Vec<I::Item> = topics.into_iter().collect();
        let names = sorted_names(&topics);
        let resume = shared.resume(last_event_id);

        // Cursors at the end of the node's logs: live events from here on;
        // what came before is read from Redis.
        let mut after = AfterUnlock::default();
        let subscribed =
            shared
                .lock()
                .subscribe(&names, user, Resume::Live, &shared.config, &mut after);
        after.run();
        let channels: Vec<Channel> = subscribed
            .cursors
            .iter()
            .map(|cursor| Channel::new(cursor.log.kind, Arc::clone(&cursor.log.name)))
            .collect();
        tracing::debug!(
            topics = names.len(),
            user,
            resume = ?resume,
            "sse redis hub subscriber connected"
        );

        let since = node.since(&channels);
        match (resume, since) {
            // Every log is followed already: live at once, no Redis call.
            (Resume::Live, Some(since)) => {
                Subscription::starting(Arc::clone(&shared), subscribed.cursors, since, None)
            }
            _ => {
                let (reply, start) = tokio::sync::oneshot::channel();
                let task = Arc::clone(node).start_subscription(
                    Arc::clone(&shared),
                    channels,
                    resume,
                    reply,
                );
                node.spawn(task);
                Subscription::starting(shared, subscribed.cursors, 0, Some(start))
            }
        }
    }

    /// The id of the newest event published through Redis, by any node.
    ///
    /// # Errors
    ///
    /// [`HubError::is_unavailable`] when Redis could not be reached in time.
    pub async fn latest_id(&self) -> Result<EventId, HubError> {
        let read = self.node().read(0, None, &[]).await?;
        Ok(EventId::new(read.epoch, read.head))
    }

    /// A snapshot of the node's state and of its link to Redis.
    pub fn metrics(&self) -> RedisHubMetrics {
        let node = self.node();
        RedisHubMetrics {
            hub: node.current().metrics(),
            connected: node.counters.connected.load(Ordering::Relaxed),
            outages: node.counters.outages.load(Ordering::Relaxed),
            followed: node.followed_count(),
            published: node.counters.published.load(Ordering::Relaxed),
            publish_errors: node.counters.publish_errors.load(Ordering::Relaxed),
            history_lost: node.counters.history_lost.load(Ordering::Relaxed),
        }
    }

    /// The hub's policy.
    pub fn config(&self) -> &HubConfig {
        self.node().config()
    }
}

impl fmt::Debug for RedisHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let node = self.node();
        f.debug_struct("RedisHub")
            .field("epoch", &EventId::new(node.current().epoch, 0))
            .field("prefix", &node.prefix())
            .field("config", node.config())
            .finish_non_exhaustive()
    }
}

/// An event read from Redis (published by some node, encoded without its
/// id), with its id line written in front.
fn numbered(epoch: Epoch, seq: u64, encoded: &[u8]) -> crate::event::EncodedEvent {
    Unnumbered::from_encoded(encoded).with_id(EventId::new(epoch, seq))
}
