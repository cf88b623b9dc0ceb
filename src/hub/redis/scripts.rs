//! The Lua scripts a `RedisHub` runs: each is one atomic step in Redis.
//!
//! Keys, for a prefix `P` and a log (`t` for a topic, `u` for a user feed):
//!
//! - `P:epoch`: twelve hex digits naming this history; made anew when Redis
//!   has lost it, so that ids from lost history are told apart;
//! - `P:seq`: the position of the newest event, over every log;
//! - `P:forgotten`: a hash of 4096 buckets of log names, each holding the
//!   newest position sent to a log of that bucket whose history expires;
//! - `P:s:t:{name}`: the log's stream, one entry per event, with the id
//!   `{position}-0` and the fields `d` (the event encoded without its id) and
//!   `t` (Redis's clock at the append, in milliseconds);
//! - `P:m:t:{name}`: the log's hash: `epoch` (of its entries), `trimmed` (the
//!   newest position trimmed away), `last` (the newest appended), `bytes`;
//! - `P:c:t:{name}`: the channel its events are published on, as
//!   `{epoch}:{position}:{encoded event}`.

use std::sync::LazyLock;

use redis::Script;

/// Lua that sets `epoch` to the epoch in `KEYS[1]`, first storing the fresh
/// one in `ARGV[n]` there when Redis has none.
macro_rules! epoch {
    ($fresh:literal) => {
        concat!(
            "
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[",
            $fresh,
            "]
  redis.call('SET', KEYS[1], epoch)
end"
        )
    };
}

/// Gets the epoch and the newest position, making the epoch when there is
/// none. KEYS: epoch, seq. ARGV: a fresh epoch. Returns `{epoch, position}`.
pub(super) static EPOCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        epoch!(1),
        r"
return {epoch, redis.call('GET', KEYS[2]) or '0'}
"
    ))
});

/// Appends an event to a log: numbers it, trims the log's window by count,
/// bytes and age (keeping the new event), keeps the log's hash, lets an
/// expiring log expire whole, and publishes the event on the log's channel.
///
/// KEYS: epoch, seq, forgotten, stream, meta. ARGV: a fresh epoch (used when
/// Redis has none), the encoded event, max events, max bytes, max age in ms
/// (0: none), the name's bucket, the channel. Returns `{epoch, position}`.
pub(super) static PUBLISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        epoch!(1),
        r"
local seq = string.format('%d', redis.call('INCR', KEYS[2]))
local meta = redis.call('HMGET', KEYS[5], 'epoch', 'bytes')
local bytes = 0
if meta[1] ~= epoch then
  -- Entries of an earlier epoch (or none): the log starts anew.
  redis.call('DEL', KEYS[4], KEYS[5])
  redis.call('HSET', KEYS[5], 'epoch', epoch, 'trimmed', '0')
else
  bytes = tonumber(meta[2])
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('XADD', KEYS[4], seq .. '-0', 'd', ARGV[2], 't', now)
bytes = bytes + #ARGV[2]
local max_events, max_bytes, max_age = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local len = redis.call('XLEN', KEYS[4])
local from, trimmed = '-', nil
while len > 1 do
  local over = len > max_events or bytes > max_bytes
  if not over and max_age == 0 then
    break
  end
  local oldest = redis.call('XRANGE', KEYS[4], from, '+', 'COUNT', 1)[1]
  if over or tonumber(oldest[2][4]) <= now - max_age then
    trimmed = string.sub(oldest[1], 1, -3)
    from = '(' .. oldest[1]
    len = len - 1
    bytes = bytes - #oldest[2][2]
  else
    break
  end
end
if trimmed then
  -- Ids are `{position}-0`: every trimmed one is below `{trimmed}-1`.
  redis.call('XTRIM', KEYS[4], 'MINID', trimmed .. '-1')
  redis.call('HSET', KEYS[5], 'last', seq, 'bytes', bytes, 'trimmed', trimmed)
else
  redis.call('HSET', KEYS[5], 'last', seq, 'bytes', bytes)
end
if max_age > 0 then
  redis.call('PEXPIRE', KEYS[4], max_age)
  redis.call('PEXPIRE', KEYS[5], max_age)
  redis.call('HSET', KEYS[3], ARGV[6], seq)
end
redis.call('PUBLISH', ARGV[7], epoch .. ':' .. seq .. ':' .. ARGV[2])
return {epoch, seq}
"
    ))
});

/// Reads the events of some logs after a position, and says for each log
/// whether every one of them is still there.
///
/// KEYS: epoch, seq, forgotten, then a stream and its meta per log. ARGV:
/// the position after which to read, the position through which to read
/// (empty: the newest), a fresh epoch (used when Redis has none), then per
/// log its max age in ms (0: none) and its name's bucket.
///
/// Returns `{epoch, newest position, then per log: complete (1 or 0), {id,
/// event, id, event, ...}}`; logs are read only when the position is not
/// past the newest.
pub(super) static READ: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        // Without an epoch the history is lost: a new one starts, which
        // every node takes up.
        epoch!(3),
        r"
local head = redis.call('GET', KEYS[2]) or '0'
local out = {epoch, head}
local after = tonumber(ARGV[1])
if after > tonumber(head) then
  return out
end
local through = ARGV[2]
if through == '' then
  through = head
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
for i = 0, (#KEYS - 3) / 2 - 1 do
  local stream, meta = KEYS[4 + 2 * i], KEYS[5 + 2 * i]
  local max_age, bucket = tonumber(ARGV[4 + 2 * i]), ARGV[5 + 2 * i]
  local state = redis.call('HMGET', meta, 'epoch', 'trimmed', 'last')
  local complete, events = 1, {}
  if state[1] ~= epoch then
    -- No history in this epoch: none was ever appended, or it expired.
    if max_age > 0 then
      local forgotten = redis.call('HGET', KEYS[3], bucket)
      if forgotten and tonumber(forgotten) > after then
        complete = 0
      end
    end
  elseif tonumber(state[2]) > after then
    complete = 0
  elseif tonumber(state[3]) > after then
    local range = redis.call('XRANGE', stream, '(' .. ARGV[1] .. '-0', through .. '-0')
    local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1]
    if last == nil or last[1] ~= state[3] .. '-0' then
      -- The stream lost entries its hash says it holds (deleted, or lost).
      complete = 0
    elseif #range > 0 and max_age > 0 and tonumber(range[1][2][4]) <= now - max_age then
      complete = 0
    else
      for _, entry in ipairs(range) do
        events[#events + 1] = entry[1]
        events[#events + 1] = entry[2][2]
      end
    end
  end
  out[#out + 1] = complete
  out[#out + 1] = events
end
return out
"
    ))
});

/// Makes a new epoch, unless another node already has: for Redis restored
/// from an older snapshot, whose positions would otherwise be given twice.
/// KEYS: epoch. ARGV: the stale epoch, a fresh one.
pub(super) static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1
",
    )
});
