//! One node of a `RedisHub`: its local hub state (a generation per epoch),
//! the channels it follows, and the follower task that keeps its logs in
//! step with Redis.
//!
//! The follower is the only writer of the node's logs. Redis delivers the
//! messages of one pub/sub connection in the order it ran the publishes, so
//! events reach the logs in position order, as the local merge of several
//! logs needs. After the connection is lost, the follower subscribes again,
//! then reads every followed stream after the last position it delivered
//! through one position read after the subscription (so that everything
//! later comes by pub/sub), appends what it missed in order, and passes over
//! what pub/sub then brings again.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_core::Stream;
use redis::Value;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::{mpsc, oneshot};

use crate::event::EncodedEvent;
use crate::hub::id::Epoch;
use crate::hub::log::Kind;
use crate::hub::registry::{AfterUnlock, Registry, Resume, Resync, window};
use crate::hub::subscription::Start;
use crate::hub::{HubConfig, HubError, Shared};

use super::connection::Connection;
use super::{numbered, scripts};

/// How many channels one `SUBSCRIBE`, and how many logs one read, takes
/// when the node catches up after reconnecting.
const CHUNK: usize = 256;
/// How often an idle pub/sub connection is pinged.
const PING_EVERY: Duration = Duration::from_secs(5);
/// The first and the longest wait before connecting again.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Buckets of names for forgotten (expired) logs, as in the local hub.
const BUCKETS: u64 = 4096;

/// Why the node could not use Redis, when Redis itself did not say (its
/// own errors and timeouts are passed on as they are).
#[derive(Debug)]
pub(super) struct Away(&'static str);

impl std::fmt::Display for Away {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Away {}

const STOPPED: Away = Away("the hub's node has stopped");

/// A topic or user feed, as Redis names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Channel {
    kind: Kind,
    name: Arc<str>,
}

impl Channel {
    pub(super) fn new(kind: Kind, name: Arc<str>) -> Self {
        Self { kind, name }
    }

    fn letter(&self) -> char {
        match self.kind {
            Kind::Topic => 't',
            Kind::User => 'u',
        }
    }

    /// The name's bucket, the same on every node: FNV-1a of kind and name.
    fn bucket(&self) -> u64 {
        let mut hasher = Fnv(0xcbf2_9ce4_8422_2325);
        hasher.write(&[self.letter() as u8]);
        hasher.write(self.name.as_bytes());
        hasher.finish() % BUCKETS
    }
}

/// FNV-1a: a hash every node computes alike (std's are seeded).
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3);
        }
    }
}

/// The names of the hub's keys and channels.
#[derive(Debug)]
struct Keys {
    prefix: String,
    epoch: String,
    seq: String,
    forgotten: String,
}

impl Keys {
    fn new(prefix: String) -> Self {
        Self {
            epoch: format!("{prefix}:epoch"),
            seq: format!("{prefix}:seq"),
            forgotten: format!("{prefix}:forgotten"),
            prefix,
        }
    }

    fn stream(&self, channel: &Channel) -> String {
        format!("{}:s:{}:{}", self.prefix, channel.letter(), channel.name)
    }

    fn meta(&self, channel: &Channel) -> String {
        format!("{}:m:{}:{}", self.prefix, channel.letter(), channel.name)
    }

    fn channel(&self, channel: &Channel) -> String {
        format!("{}:c:{}:{}", self.prefix, channel.letter(), channel.name)
    }

    /// The topic or user feed of a channel name of this prefix.
    fn parse_channel<'a>(&self, name: &'a str) -> Option<(Kind, &'a str)> {
        let rest = name
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(":c:")?;
        match rest.split_at_checked(2)? {
            ("t:", name) => Some((Kind::Topic, name)),
            ("u:", name) => Some((Kind::User, name)),
            _ => None,
        }
    }
}

/// What a read of some logs found.
#[derive(Debug)]
pub(super) struct Read {
    pub(super) epoch: Epoch,
    /// The newest position in Redis.
    pub(super) head: u64,
    /// Logs whose events after the position are not all there.
    incomplete: Vec<Channel>,
    /// The events read, by position, with their logs.
    events: Vec<(u64, Channel, EncodedEvent)>,
}

/// What a node asks of its follower.
#[derive(Debug)]
enum Command {
    /// Follow these channels; answer with the position after which every
    /// event of them reaches the node's logs.
    Follow {
        channels: Vec<Channel>,
        reply: oneshot::Sender<Result<u64, HubError>>,
    },
    /// A read found this epoch in Redis: sync again unless it is the
    /// node's already.
    EpochMoved(Epoch),
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) connected: AtomicBool,
    pub(super) outages: AtomicU64,
    pub(super) published: AtomicU64,
    pub(super) publish_errors: AtomicU64,
    pub(super) history_lost: AtomicU64,
}

#[derive(Debug)]
pub(super) struct Node {
    redis: Connection,
    keys: Keys,
    config: HubConfig,
    /// The local state of the current epoch; replaced when Redis loses the
    /// history.
    generation: Mutex<Arc<Shared>>,
    /// Followed channels, each with the position after which every one of
    /// its events reaches the node's logs.
    followed: Mutex<HashMap<Channel, u64>>,
    commands: mpsc::UnboundedSender<Command>,
    /// Where forgotten logs are reported, for the follower to unfollow.
    forgotten: mpsc::UnboundedSender<(Kind, Arc<str>)>,
    runtime: tokio::runtime::Handle,
    pub(super) counters: Counters,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) => Some(text.as_bytes()),
        _ => None,
    }
}

fn number(value: &Value) -> Option<u64> {
    match value {
        Value::Int(number) => u64::try_from(*number).ok(),
        _ => std::str::from_utf8(bytes(value)?).ok()?.parse().ok(),
    }
}

/// `{epoch, position}`, as the epoch and publish scripts answer.
fn epoch_and_position(value: &Value) -> Option<(Epoch, u64)> {
    match value {
        Value::Array(items) if items.len() == 2 => {
            Some((Epoch::from_hex(bytes(&items[0])?)?, number(&items[1])?))
        }
        _ => None,
    }
}

/// An answer from Redis that is not what the hub's scripts return: another
/// program wrote the hub's keys.
#[derive(Debug)]
struct Unexpected;

impl std::fmt::Display for Unexpected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("unexpected answer from Redis (are the hub's keys written by another program?)")
    }
}

impl std::error::Error for Unexpected {}

impl Node {
    /// Reads the epoch, builds the node and starts its follower.
    pub(super) async fn start(
        redis: Connection,
        prefix: String,
        config: HubConfig,
    ) -> Result<(Arc<Self>, tokio::task::AbortHandle), HubError> {
        let keys = Keys::new(prefix);
        let (epoch, _) = epoch(&redis, &keys).await?;
        let (commands, command_queue) = mpsc::unbounded_channel();
        let (forgotten, forgotten_queue) = mpsc::unbounded_channel();
        let node = Arc::new(Self {
            generation: Mutex::new(Arc::new(generation(&config, epoch, &forgotten))),
            redis,
            keys,
            config,
            followed: Mutex::new(HashMap::new()),
            commands,
            forgotten,
            runtime: tokio::runtime::Handle::current(),
            counters: Counters::default(),
        });
        let follower = Follower {
            node: Arc::clone(&node),
            commands: command_queue,
            forgotten: forgotten_queue,
            last: 0,
            backoff: BACKOFF_MIN,
        };
        let task = node.runtime.spawn(follower.run());
        Ok((node, task.abort_handle()))
    }

    pub(super) fn config(&self) -> &HubConfig {
        &self.config
    }

    pub(super) fn prefix(&self) -> &str {
        &self.keys.prefix
    }

    /// The local state of the current epoch.
    pub(super) fn current(&self) -> Arc<Shared> {
        Arc::clone(&lock(&self.generation))
    }

    pub(super) fn followed_count(&self) -> usize {
        lock(&self.followed).len()
    }

    /// Ends every subscription (the node is stopping).
    pub(super) fn close(&self) {
        let mut after = AfterUnlock::default();
        self.current().lock().close_all(&mut after);
        after.run();
    }

    pub(super) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        drop(self.runtime.spawn(task));
    }

    /// When every channel is followed: the position after which all their
    /// events reach the node's logs.
    pub(super) fn since(&self, channels: &[Channel]) -> Option<u64> {
        let followed = lock(&self.followed);
        channels
            .iter()
            .try_fold(0, |since, channel| Some(since.max(*followed.get(channel)?)))
    }

    /// The maximum age of a log's events in milliseconds (0: none), at most
    /// what Redis takes for `PEXPIRE` (its deadline must fit in 64 bits).
    fn max_age_ms(&self, kind: Kind) -> u64 {
        const MAX_EXPIRE_MS: u64 = 1 << 50;
        window(&self.config, kind).max_age.map_or(0, |age| {
            u64::try_from(age.as_millis())
                .unwrap_or(u64::MAX)
                .clamp(1, MAX_EXPIRE_MS)
        })
    }

    /// Appends an event (encoded without an id) to a log in Redis.
    pub(super) async fn publish(
        &self,
        channel: &Channel,
        encoded: &[u8],
    ) -> Result<crate::hub::EventId, HubError> {
        let window = window(&self.config, channel.kind);
        let mut script = scripts::PUBLISH.prepare_invoke();
        script
            .key(&self.keys.epoch)
            .key(&self.keys.seq)
            .key(&self.keys.forgotten)
            .key(self.keys.stream(channel))
            .key(self.keys.meta(channel))
            .arg(Epoch::random().to_hex())
            .arg(encoded)
            .arg(window.max_events)
            .arg(window.max_bytes)
            .arg(self.max_age_ms(channel.kind))
            .arg(channel.bucket())
            .arg(self.keys.channel(channel));
        let answer = self.redis.run(&script).await?;
        let (epoch, seq) =
            epoch_and_position(&answer).ok_or_else(|| HubError::unavailable(Unexpected))?;
        Ok(crate::hub::EventId::new(epoch, seq))
    }

    /// Reads the events of `channels` after position `after`, through
    /// `through` (or the newest).
    pub(super) async fn read(
        &self,
        after: u64,
        through: Option<u64>,
        channels: &[Channel],
    ) -> Result<Read, HubError> {
        let mut script = scripts::READ.prepare_invoke();
        script
            .key(&self.keys.epoch)
            .key(&self.keys.seq)
            .key(&self.keys.forgotten)
            .arg(after)
            .arg(
                through
                    .map(|through| through.to_string())
                    .unwrap_or_default(),
            )
            .arg(Epoch::random().to_hex());
        for channel in channels {
            script
                .key(self.keys.stream(channel))
                .key(self.keys.meta(channel))
                .arg(self.max_age_ms(channel.kind))
                .arg(channel.bucket());
        }
        let answer = self.redis.run(&script).await?;
        parse_read(&answer, channels).ok_or_else(|| HubError::unavailable(Unexpected))
    }

    /// Starts a subscription: follows its channels if need be, reads what it
    /// resumes from Redis, and hands the start to the subscription (`None`
    /// when Redis did not answer in time: the stream ends).
    pub(super) async fn start_subscription(
        self: Arc<Self>,
        shared: Arc<Shared>,
        channels: Vec<Channel>,
        resume: Resume,
        reply: oneshot::Sender<Option<Start>>,
    ) {
        let start = self.try_start(&shared, channels, resume).await;
        if let Err(error) = &start {
            tracing::warn!(%error, "sse redis hub subscription could not start");
        }
        let _ = reply.send(start.ok());
    }

    async fn try_start(
        &self,
        shared: &Shared,
        channels: Vec<Channel>,
        resume: Resume,
    ) -> Result<Start, HubError> {
        let since = match self.since(&channels) {
            Some(since) => since,
            None => {
                let (reply, answer) = oneshot::channel();
                let follow = Command::Follow {
                    channels: channels.clone(),
                    reply,
                };
                self.commands
                    .send(follow)
                    .map_err(|_| HubError::unavailable(STOPPED))?;
                tokio::time::timeout(self.redis.timeout().saturating_mul(2), answer)
                    .await
                    .map_err(|_| HubError::unavailable(super::connection::TimedOut))?
                    .map_err(|_| HubError::unavailable(STOPPED))??
            }
        };
        let after = match resume {
            Resume::Live => {
                return Ok(Start {
                    first: Vec::new(),
                    skip_through: since,
                });
            }
            Resume::After(after) => after,
            Resume::Unknown => u64::MAX,
        };
        let logs = if after == u64::MAX {
            &[][..]
        } else {
            &channels[..]
        };
        let Read {
            epoch,
            head,
            incomplete,
            events,
        } = self.read(after, None, logs).await?;
        if epoch != shared.epoch {
            // Redis has a new history that this node has not taken up yet
            // (its data was flushed while the node's connection stayed up):
            // the follower takes it up, and the client comes back then.
            let _ = self.commands.send(Command::EpochMoved(epoch));
            return Err(HubError::unavailable(Away(
                "Redis has a new history that this node has not taken up yet",
            )));
        }
        let resync = if after > head {
            Some(Resync::UnknownId)
        } else if !incomplete.is_empty() {
            Some(Resync::Expired)
        } else {
            None
        };
        shared.lock().count_resume(resync.is_none());
        let first = match resync {
            Some(resync) => shared.resync_signal(resync, head).into_iter().collect(),
            None => events.into_iter().map(|(_, _, event)| event).collect(),
        };
        Ok(Start {
            first,
            skip_through: since.max(head),
        })
    }
}

fn parse_read(answer: &Value, channels: &[Channel]) -> Option<Read> {
    let Value::Array(items) = answer else {
        return None;
    };
    let epoch = Epoch::from_hex(bytes(items.first()?)?)?;
    let head = number(items.get(1)?)?;
    // Two items a log, or none when the position is past the head: a reply
    // of another length is not the script's.
    if items.len() != 2 && items.len() != 2 + 2 * channels.len() {
        return None;
    }
    let mut incomplete = Vec::new();
    let mut events = Vec::new();
    for (channel, log) in channels.iter().zip(items[2..].chunks_exact(2)) {
        if number(&log[0])? == 0 {
            incomplete.push(channel.clone());
            continue;
        }
        let Value::Array(entries) = &log[1] else {
            return None;
        };
        for entry in entries.chunks_exact(2) {
            let id = std::str::from_utf8(bytes(&entry[0])?).ok()?;
            let seq: u64 = id.strip_suffix("-0")?.parse().ok()?;
            events.push((
                seq,
                channel.clone(),
                numbered(epoch, seq, bytes(&entry[1])?),
            ));
        }
    }
    events.sort_unstable_by_key(|(seq, _, _)| *seq);
    Some(Read {
        epoch,
        head,
        incomplete,
        events,
    })
}

/// Reads the epoch (making it when Redis has none) and the newest position.
async fn epoch(redis: &Connection, keys: &Keys) -> Result<(Epoch, u64), HubError> {
    let mut script = scripts::EPOCH.prepare_invoke();
    script
        .key(&keys.epoch)
        .key(&keys.seq)
        .arg(Epoch::random().to_hex());
    let answer = redis.run(&script).await?;
    epoch_and_position(&answer).ok_or_else(|| HubError::unavailable(Unexpected))
}

/// The local state of one epoch; its forgotten logs are reported to the
/// follower.
fn generation(
    config: &HubConfig,
    epoch: Epoch,
    forgotten: &mpsc::UnboundedSender<(Kind, Arc<str>)>,
) -> Shared {
    let shared = Shared::new(config.clone(), epoch);
    shared.lock().cache = Some(forgotten.clone());
    shared
}

/// Why the follower stopped following on one connection.
#[derive(Debug)]
enum Break {
    /// The connection failed or Redis did not answer in time.
    Lost(HubError),
    /// Redis's epoch is not the node's: sync again.
    Epoch,
}

impl From<HubError> for Break {
    fn from(error: HubError) -> Self {
        Break::Lost(error)
    }
}

/// The task that keeps the node's logs in step with Redis.
struct Follower {
    node: Arc<Node>,
    commands: mpsc::UnboundedReceiver<Command>,
    forgotten: mpsc::UnboundedReceiver<(Kind, Arc<str>)>,
    /// The newest position appended to the node's logs.
    last: u64,
    /// The wait before the next connection attempt.
    backoff: Duration,
}

impl Follower {
    async fn run(mut self) {
        loop {
            match self.follow().await {
                // Following ended: the node is gone.
                Ok(()) => return,
                Err(Break::Epoch) => continue,
                Err(Break::Lost(error)) => {
                    let node = &self.node;
                    if node.counters.connected.swap(false, Ordering::Relaxed) {
                        node.counters.outages.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%error, "sse redis hub lost Redis; open streams stay open, publishing fails until it is back");
                    } else {
                        tracing::debug!(%error, "sse redis hub could not reach Redis");
                    }
                }
            }
            // Wait, answering what can be answered without Redis.
            let wait = crate::jitter::between(self.backoff / 2, self.backoff);
            self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
            let sleep = tokio::time::sleep(wait);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    command = self.commands.recv() => match command {
                        Some(Command::Follow { reply, .. }) => {
                            let _ = reply.send(Err(HubError::unavailable(Away("the node is reconnecting to Redis"))));
                        }
                        // Syncing comes next anyway.
                        Some(Command::EpochMoved(_)) => {}
                        None => return,
                    },
                    forgotten = self.forgotten.recv() => match forgotten {
                        // Not subscribed on any connection now: nothing to undo.
                        Some((kind, name)) => drop(self.forget(kind, name)),
                        None => return,
                    },
                }
            }
        }
    }

    /// Connects, catches up, and follows until the connection fails (an
    /// error) or the node is gone (`Ok`).
    async fn follow(&mut self) -> Result<(), Break> {
        let node = Arc::clone(&self.node);
        let (mut sink, mut stream) = node.redis.pubsub().await?.split();
        self.sync(&mut sink).await?;
        if !node.counters.connected.swap(true, Ordering::Relaxed) {
            tracing::info!("sse redis hub is following Redis");
        }
        self.backoff = BACKOFF_MIN;
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.reset();
        loop {
            tokio::select! {
                message = next(&mut stream) => match message {
                    Some(message) => {
                        self.deliver(message.get_channel_name(), message.get_payload_bytes())?;
                        ping.reset();
                    }
                    None => return Err(Break::Lost(HubError::unavailable(Away("the pub/sub connection to Redis closed")))),
                },
                command = self.commands.recv() => match command {
                    Some(Command::Follow { channels, reply }) => {
                        let answer = self.subscribe(&mut sink, channels).await;
                        let failed = answer.as_ref().err().cloned();
                        let _ = reply.send(answer);
                        if let Some(error) = failed {
                            return Err(Break::Lost(error));
                        }
                    }
                    Some(Command::EpochMoved(epoch)) => {
                        // Reads of older subscriptions may report it again.
                        if epoch != node.current().epoch {
                            return Err(Break::Epoch);
                        }
                    }
                    None => return Ok(()),
                },
                forgotten = self.forgotten.recv() => match forgotten {
                    Some((kind, name)) => {
                        if let Some(channel) = self.forget(kind, name) {
                            let name = node.keys.channel(&channel);
                            timed(&node, sink.unsubscribe(name)).await?;
                        }
                    }
                    None => return Ok(()),
                },
                _ = ping.tick() => {
                    timed(&node, sink.ping::<Value>()).await?;
                }
            }
        }
    }

    /// After (re)connecting: takes up a new epoch, or subscribes again to
    /// every followed channel and reads what was missed.
    async fn sync(&mut self, sink: &mut PubSubSink) -> Result<(), Break> {
        let node = Arc::clone(&self.node);
        let (epoch, head) = epoch(&node.redis, &node.keys).await?;
        let current = node.current().epoch;
        if epoch == current && head < self.last {
            // Redis came back from an older snapshot: positions after `head`
            // would be given again, to other events. Make a new epoch.
            self.renew_in_redis(current).await?;
            return Err(Break::Epoch);
        }
        let channels: Vec<Channel> = lock(&node.followed).keys().cloned().collect();
        for chunk in channels.chunks(CHUNK) {
            let names: Vec<String> = chunk
                .iter()
                .map(|channel| node.keys.channel(channel))
                .collect();
            timed(&node, sink.subscribe(names)).await?;
        }
        let through = node.redis.counter(&node.keys.seq).await?;
        if epoch != current {
            self.renew(epoch, through);
            return Ok(());
        }
        if through > self.last {
            let mut events = Vec::new();
            let mut incomplete = Vec::new();
            for chunk in channels.chunks(CHUNK) {
                let read = node.read(self.last, Some(through), chunk).await?;
                if read.epoch != current {
                    return Err(Break::Epoch);
                }
                events.extend(read.events);
                incomplete.extend(read.incomplete);
            }
            events.sort_unstable_by_key(|(seq, _, _)| *seq);
            let shared = node.current();
            let mut after = AfterUnlock::default();
            {
                let mut registry = shared.lock();
                // Logs whose missed events Redis no longer has end; their
                // clients reconnect and are told.
                for channel in &incomplete {
                    registry.end_log(channel.kind, &channel.name, &mut after);
                }
                for (seq, channel, event) in events {
                    append(
                        &shared,
                        &mut registry,
                        (channel.kind, &channel.name),
                        seq,
                        event,
                        &mut after,
                    );
                }
            }
            after.run();
            if !incomplete.is_empty() {
                tracing::warn!(
                    logs = incomplete.len(),
                    "sse redis hub: events missed while Redis was away are gone from Redis; those streams end"
                );
            }
        }
        self.last = self.last.max(through);
        Ok(())
    }

    /// Makes a new epoch in Redis, unless another node already has.
    async fn renew_in_redis(&self, stale: Epoch) -> Result<(), HubError> {
        let node = &self.node;
        let mut script = scripts::RENEW.prepare_invoke();
        script
            .key(&node.keys.epoch)
            .arg(stale.to_hex())
            .arg(Epoch::random().to_hex());
        node.redis.run(&script).await.map(drop)
    }

    /// Takes up a new epoch: the node's state starts anew, every open
    /// stream ends (its client reconnects and gets the resync signal).
    fn renew(&mut self, epoch: Epoch, through: u64) {
        let node = &self.node;
        node.counters.history_lost.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            "sse redis hub: Redis lost the history; open streams end and resume with the resync signal"
        );
        let fresh = Arc::new(generation(&node.config, epoch, &node.forgotten));
        let stale = std::mem::replace(&mut *lock(&node.generation), fresh);
        for since in lock(&node.followed).values_mut() {
            *since = through;
        }
        self.last = through;
        let mut after = AfterUnlock::default();
        stale.lock().close_all(&mut after);
        after.run();
    }

    /// Follows `channels`; answers with the position after which all their
    /// events reach the node.
    async fn subscribe(
        &mut self,
        sink: &mut PubSubSink,
        channels: Vec<Channel>,
    ) -> Result<u64, HubError> {
        let node = Arc::clone(&self.node);
        let new: Vec<Channel> = {
            let followed = lock(&node.followed);
            channels
                .iter()
                .filter(|channel| !followed.contains_key(*channel))
                .cloned()
                .collect()
        };
        if !new.is_empty() {
            let names: Vec<String> = new
                .iter()
                .map(|channel| node.keys.channel(channel))
                .collect();
            timed(&node, sink.subscribe(names)).await?;
            // Read after the subscription took effect: every later event
            // comes by pub/sub.
            let since = node.redis.counter(&node.keys.seq).await?;
            let mut followed = lock(&node.followed);
            for channel in new {
                followed.insert(channel, since);
            }
        }
        // Every channel is followed by now.
        Ok(node.since(&channels).unwrap_or_default())
    }

    /// A log was forgotten: stop following it unless it is held again.
    /// Returns the channel to unsubscribe from.
    fn forget(&mut self, kind: Kind, name: Arc<str>) -> Option<Channel> {
        let node = &self.node;
        let shared = node.current();
        let registry = shared.lock();
        if registry.holds(kind, &name) {
            return None;
        }
        let channel = Channel::new(kind, name);
        lock(&node.followed).remove(&channel).map(|_| channel)
    }

    /// A message from pub/sub: appends the event to its log.
    fn deliver(&mut self, channel: &str, payload: &[u8]) -> Result<(), Break> {
        let node = &self.node;
        // Borrowed: no allocation per message.
        let Some((kind, name)) = node.keys.parse_channel(channel) else {
            return Ok(());
        };
        let Some((epoch, seq, encoded)) = parse_message(payload) else {
            tracing::warn!(
                "sse redis hub: a message on the hub's channel is not the hub's; passed over"
            );
            return Ok(());
        };
        let shared = node.current();
        if epoch != shared.epoch {
            return Err(Break::Epoch);
        }
        if seq <= self.last {
            return Ok(());
        }
        self.last = seq;
        let event = numbered(epoch, seq, encoded);
        let mut after = AfterUnlock::default();
        append(
            &shared,
            &mut shared.lock(),
            (kind, name),
            seq,
            event,
            &mut after,
        );
        after.run();
        Ok(())
    }
}

/// Appends an event from Redis to the node's log of `(kind, name)`, if it holds
/// one (someone here reads it).
fn append(
    shared: &Shared,
    registry: &mut Registry,
    (kind, name): (Kind, &str),
    seq: u64,
    event: EncodedEvent,
    after: &mut AfterUnlock,
) {
    registry.append_at(
        kind,
        name,
        seq,
        event,
        &shared.config,
        &shared.committed,
        after,
    );
}

/// `{epoch}:{position}:{encoded event}`.
fn parse_message(payload: &[u8]) -> Option<(Epoch, u64, &[u8])> {
    let (epoch, rest) = payload.split_at_checked(12)?;
    let rest = rest.strip_prefix(b":")?;
    let colon = rest.iter().position(|&byte| byte == b':')?;
    let seq = std::str::from_utf8(&rest[..colon]).ok()?.parse().ok()?;
    Some((Epoch::from_hex(epoch)?, seq, &rest[colon + 1..]))
}

async fn next(stream: &mut PubSubStream) -> Option<redis::Msg> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *stream).poll_next(cx)).await
}

/// A pub/sub call with the hub's timeout.
async fn timed<T>(
    node: &Node,
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, HubError> {
    tokio::time::timeout(node.redis.timeout(), call)
        .await
        .map_err(|_| HubError::unavailable(super::connection::TimedOut))?
        .map_err(HubError::unavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_round_trip_and_others_are_not_ours() {
        let keys = Keys::new("app".to_owned());
        for channel in [
            Channel::new(Kind::Topic, Arc::from("news")),
            Channel::new(Kind::User, Arc::from("ada:lovelace")),
            Channel::new(Kind::Topic, Arc::from("")),
        ] {
            let name = keys.channel(&channel);
            assert_eq!(
                keys.parse_channel(&name),
                Some((channel.kind, &*channel.name))
            );
        }
        for other in [
            "app:c:x:news",
            "app:s:t:news",
            "other:c:t:news",
            "app:c:t",
            "app",
        ] {
            assert_eq!(keys.parse_channel(other), None, "{other}");
        }
    }

    #[test]
    fn messages_parse_and_malformed_ones_are_refused() {
        let (epoch, seq, event) = parse_message(b"00000000002a:17:data: a:b\n\n").unwrap();
        assert_eq!(
            (epoch, seq, event),
            (
                Epoch::from_hex(b"00000000002a").unwrap(),
                17,
                &b"data: a:b\n\n"[..]
            )
        );
        for bad in [
            &b""[..],
            b"00000000002a",
            b"00000000002a:",
            b"00000000002a:17",
            b"00000000002A:17:x",
            b"00000000002a:x:y",
            b"0000000002a:17:x",
            b"00000000002a:-1:x",
        ] {
            assert!(parse_message(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn buckets_are_the_same_on_every_node() {
        // FNV-1a of `uada`, modulo 4096: fixed, whatever the process or
        // the machine.
        assert_eq!(Channel::new(Kind::User, Arc::from("ada")).bucket(), 1868);
    }
}
