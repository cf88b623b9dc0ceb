//! The live dashboard that `dashboard` (one server, a `Hub`) and `cluster`
//! (several nodes, a `RedisHub` each) serve: the page, the SSE policy, the
//! simulated feed's events, and the history a new tab starts from.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tower_sse::{EncodedEvent, Event, Farewell, KeepAlive, Shutdown, SseConfig};

/// What every tab subscribes to.
pub(crate) const TOPICS: [&str; 4] = ["metrics", "ticker", "notices", "clock"];
/// Points of history in a new tab's snapshot.
const HISTORY: usize = 120;

/// The policy for every SSE route: keep-alives, a maximum age (so that tabs
/// reconnect and resume now and then), and a farewell on shutdown.
pub(crate) fn sse_config(shutdown: Shutdown) -> SseConfig {
    SseConfig::new()
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .max_age(Duration::from_secs(75))
        .max_age_jitter(Duration::from_secs(30))
        .shutdown(shutdown)
        .farewell(
            Farewell::new()
                .event(Event::new().event("bye").data("server shutting down"))
                .retry_between(Duration::from_secs(1), Duration::from_secs(5)),
        )
}

/// A `ticker` event: the quote, and the event that carries it.
pub(crate) fn ticker(price: f64) -> (Value, Event) {
    let quote = json!({ "symbol": "TWR", "price": price, "t": unix_millis() });
    let event = Event::new().event("ticker").data(quote.to_string());
    (quote, event)
}

/// What a `metrics` sample reports.
pub(crate) struct Sample {
    pub(crate) streams: usize,
    pub(crate) events_per_s: u64,
    pub(crate) resumed: u64,
    pub(crate) resynced: u64,
}

/// A `metrics` event: the sample, and the event that carries it.
pub(crate) fn metrics(sample: &Sample) -> (Value, Event) {
    let sample = json!({
        "t": unix_millis(),
        "streams": sample.streams,
        "memory_mib": resident_memory_mib(),
        "events_per_s": sample.events_per_s,
        "resumed": sample.resumed,
        "resynced": sample.resynced,
    });
    let event = Event::new().event("metrics").data(sample.to_string());
    (sample, event)
}

/// The server's uptime, for the plain (unnamed) `clock` message.
pub(crate) fn uptime(started: Instant) -> String {
    let up = started.elapsed().as_secs();
    format!("up {}m {:02}s", up / 60, up % 60)
}

/// A `notice` event from a `POST /notify` body; `None` when the text is
/// empty or longer than 200 characters.
pub(crate) fn notice(text: &str) -> Option<(Value, Event)> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > 200 {
        return None;
    }
    let notice = json!({ "text": text, "at": unix_millis() });
    let event = Event::new().event("notice").data(notice.to_string());
    Some((notice, event))
}

/// Recent values, for the snapshot a new tab starts from.
#[derive(Default)]
pub(crate) struct History {
    metrics: VecDeque<Value>,
    ticker: VecDeque<Value>,
    notices: VecDeque<Value>,
}

impl History {
    pub(crate) fn metrics(&mut self, sample: Value) {
        push_bounded(&mut self.metrics, sample, HISTORY);
    }

    pub(crate) fn ticker(&mut self, quote: Value) {
        push_bounded(&mut self.ticker, quote, HISTORY);
    }

    pub(crate) fn notice(&mut self, notice: Value) {
        push_bounded(&mut self.notices, notice, 5);
    }

    /// Records an event of the feed as a tab received it (type and data).
    pub(crate) fn record(&mut self, event_type: &str, data: &str) {
        let Ok(value) = serde_json::from_str(data) else {
            return;
        };
        match event_type {
            "metrics" => self.metrics(value),
            "ticker" => self.ticker(value),
            "notice" => self.notice(value),
            _ => {}
        }
    }

    pub(crate) fn snapshot(&self) -> EncodedEvent {
        let snapshot = json!({
            "metrics": self.metrics,
            "ticker": self.ticker,
            "notices": self.notices,
        });
        // No id: the tab's last event id stays that of a hub event.
        Event::new()
            .event("snapshot")
            .data(snapshot.to_string())
            .encode()
            .expect("a valid event")
    }
}

fn push_bounded(values: &mut VecDeque<Value>, value: Value, bound: usize) {
    if values.len() == bound {
        values.pop_front();
    }
    values.push_back(value);
}

/// A random walk for the simulated ticker.
pub(crate) struct Walk {
    value: f64,
    state: u64,
}

impl Walk {
    pub(crate) fn new(value: f64) -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.subsec_nanos().into());
        Self {
            value,
            state: seed | 1,
        }
    }

    pub(crate) fn step(&mut self) -> f64 {
        // xorshift64: plenty for a demo.
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let unit = (self.state >> 11) as f64 / (1_u64 << 53) as f64;
        self.value = (self.value * (1.0 + (unit - 0.5) * 0.01)).max(1.0);
        (self.value * 100.0).round() / 100.0
    }
}

/// This process's resident memory, on Linux.
fn resident_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some((kib / 1024.0 * 10.0).round() / 10.0)
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(crate) const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tower-sse · live dashboard</title>
<style>
  :root { --bg: #0f1419; --card: #182029; --line: #263241; --text: #e6edf3; --dim: #8b98a5;
          --blue: #4ea1ff; --green: #3fb950; --amber: #d29922; --pink: #db61a2; --red: #f85149; }
  * { box-sizing: border-box; }
  body { margin: 0; background: var(--bg); color: var(--text);
         font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; }
  header { display: flex; align-items: center; justify-content: space-between;
           padding: 18px 28px; border-bottom: 1px solid var(--line); }
  h1 { margin: 0; font-size: 20px; font-weight: 600; }
  h1 small { color: var(--dim); font-weight: 400; margin-left: 8px; }
  .badge { display: flex; align-items: center; gap: 8px; padding: 6px 12px; border-radius: 999px;
           background: var(--card); border: 1px solid var(--line); font-size: 13px; }
  .dot { width: 9px; height: 9px; border-radius: 50%; background: var(--amber); }
  .live .dot { background: var(--green); box-shadow: 0 0 8px var(--green); }
  .down .dot { background: var(--red); }
  main { padding: 22px 28px; display: grid; gap: 18px; }
  .cards { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 18px; }
  .row { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 18px; }
  .card { min-width: 0; background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 16px 18px; }
  .card h2 { margin: 0 0 6px; font-size: 12px; letter-spacing: .06em; text-transform: uppercase;
             color: var(--dim); font-weight: 600; }
  .value { font-size: 28px; font-weight: 600; font-variant-numeric: tabular-nums; }
  .value small { font-size: 13px; color: var(--dim); font-weight: 400; margin-left: 4px; }
  svg { width: 100%; height: 64px; margin-top: 8px; display: block; }
  form { display: flex; gap: 8px; margin: 8px 0 12px; }
  input { flex: 1; padding: 8px 10px; border-radius: 6px; border: 1px solid var(--line);
          background: var(--bg); color: var(--text); font: inherit; }
  button { padding: 8px 14px; border-radius: 6px; border: 0; background: var(--blue); color: #07121f;
           font: inherit; font-weight: 600; cursor: pointer; }
  ul, ol { list-style: none; margin: 0; padding: 0; }
  #notices li { padding: 8px 10px; margin-bottom: 6px; border-radius: 6px; background: #1f2a36;
                border-left: 3px solid var(--pink); }
  #notices time, #log .type { color: var(--dim); font-size: 12px; margin-right: 8px; }
  #notices .empty { color: var(--dim); background: none; border: 0; padding: 0; }
  dl { display: grid; grid-template-columns: auto 1fr; gap: 2px 14px; margin: 6px 0 12px; }
  dt { color: var(--dim); } dd { margin: 0; font-variant-numeric: tabular-nums; }
  #log { font: 12px/1.6 ui-monospace, SFMono-Regular, Menlo, monospace; height: 150px; overflow: hidden; }
  #log li { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
  #log .type { display: inline-block; width: 64px; }
</style>
</head>
<body>
<header>
  <h1>tower-sse <small>live dashboard over Server-Sent Events</small></h1>
  <div id="badge" class="badge"><span class="dot"></span><span id="state">connecting…</span></div>
</header>
<main>
  <section class="cards">
    <article class="card"><h2>Open streams</h2><div class="value" id="v-streams">–</div><svg id="c-streams"></svg></article>
    <article class="card"><h2>Process memory</h2><div class="value" id="v-memory">–</div><svg id="c-memory"></svg></article>
    <article class="card"><h2>Events delivered</h2><div class="value" id="v-rate">–</div><svg id="c-rate"></svg></article>
    <article class="card"><h2>Ticker · TWR</h2><div class="value" id="v-ticker">–</div><svg id="c-ticker"></svg></article>
  </section>
  <section class="row">
    <article class="card">
      <h2>Notifications</h2>
      <form id="notify"><input id="text" maxlength="200" placeholder="Say something to every open tab" autocomplete="off"><button>Send</button></form>
      <ul id="notices"><li class="empty">Nothing yet: send one, it arrives in every tab.</li></ul>
    </article>
    <article class="card">
      <h2>Stream</h2>
      <dl>
        <dt>Server</dt><dd id="uptime">–</dd>
        <dt>Last event id</dt><dd id="last-id">–</dd>
        <dt>Reconnections</dt><dd id="reconnects">0</dd>
        <dt>Last resumed after</dt><dd id="resumed-from">–</dd>
        <dt>All tabs</dt><dd id="server-resumes">–</dd>
      </dl>
      <ol id="log"></ol>
    </article>
  </section>
</main>
<script>
const MAX_POINTS = 120;
const charts = {
  streams: { color: "#4ea1ff", points: [] },
  memory: { color: "#3fb950", points: [] },
  rate: { color: "#d29922", points: [] },
  ticker: { color: "#db61a2", points: [] },
};
const $ = (id) => document.getElementById(id);
let source = null, opened = false, reconnects = 0, lastId = "";

function draw(name) {
  const { color, points } = charts[name];
  const svg = $("c-" + name);
  const w = svg.clientWidth || 240, h = 64;
  const values = points.filter((v) => v !== null);
  if (values.length < 2) { svg.innerHTML = ""; return; }
  let lo = Math.min(...values), hi = Math.max(...values);
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  const step = w / (MAX_POINTS - 1);
  const x0 = w - step * (points.length - 1);
  const xy = points.map((v, i) => [x0 + i * step, h - 4 - ((v ?? lo) - lo) / (hi - lo) * (h - 8)]);
  const line = xy.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.innerHTML =
    `<polygon points="${x0},${h} ${line} ${w},${h}" fill="${color}" opacity="0.15"/>` +
    `<polyline points="${line}" fill="none" stroke="${color}" stroke-width="2" stroke-linejoin="round"/>`;
}

function push(name, value, label) {
  const points = charts[name].points;
  points.push(value);
  if (points.length > MAX_POINTS) points.shift();
  $("v-" + name).innerHTML = label;
  draw(name);
}

function metrics(m) {
  push("streams", m.streams, `${m.streams}`);
  push("memory", m.memory_mib, m.memory_mib === null ? "n/a" : `${m.memory_mib.toFixed(1)}<small>MiB</small>`);
  push("rate", m.events_per_s, `${m.events_per_s}<small>/s</small>`);
  $("server-resumes").textContent = `${m.resumed} resumed, ${m.resynced} resynced`;
}

function ticker(q) { push("ticker", q.price, `${q.price.toFixed(2)}`); }

function notice(n) {
  const list = $("notices");
  list.querySelector(".empty")?.remove();
  const item = document.createElement("li");
  const time = document.createElement("time");
  time.textContent = new Date(n.at).toLocaleTimeString();
  item.append(time, document.createTextNode(n.text));
  list.prepend(item);
  while (list.children.length > 5) list.lastChild.remove();
}

function log(event) {
  const item = document.createElement("li");
  const type = document.createElement("span");
  type.className = "type";
  type.textContent = event.type;
  const id = event.lastEventId ? `#${event.lastEventId} ` : "";
  item.append(type, document.createTextNode(id + event.data));
  $("log").prepend(item);
  while ($("log").children.length > 8) $("log").lastChild.remove();
  if (event.lastEventId) {
    lastId = event.lastEventId;
    $("last-id").textContent = lastId;
  }
}

function setState(kind, text) {
  $("badge").className = "badge " + kind;
  $("state").textContent = text;
}

function connect() {
  source = new EventSource("/events");
  const on = (type, handle) => source.addEventListener(type, (event) => {
    log(event);
    handle(event.data);
  });
  on("snapshot", (data) => {
    const s = JSON.parse(data);
    for (const chart of Object.values(charts)) chart.points = [];
    s.metrics.forEach(metrics);
    s.ticker.forEach(ticker);
    s.notices.forEach(notice);
  });
  on("metrics", (data) => metrics(JSON.parse(data)));
  on("ticker", (data) => ticker(JSON.parse(data)));
  on("notice", (data) => notice(JSON.parse(data)));
  on("message", (data) => { $("uptime").textContent = data; });
  on("bye", (data) => setState("down", data));
  // The events this tab missed are gone (or the server restarted): start
  // afresh, from a snapshot.
  on("tower-sse-resync", () => {
    source.close();
    setState("", "resyncing…");
    connect();
  });
  source.onopen = () => {
    if (opened) {
      $("reconnects").textContent = ++reconnects;
      $("resumed-from").textContent = lastId ? `#${lastId}` : "–";
    }
    opened = true;
    setState("live", reconnects ? "live · resumed" : "live");
  };
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) setState("down", "closed");
    else if (!$("badge").classList.contains("down")) setState("", "reconnecting…");
  };
}
connect();

$("notify").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  const response = await fetch("/notify", { method: "POST", body: text });
  if (response.ok) $("text").value = "";
});
window.addEventListener("resize", () => Object.keys(charts).forEach(draw));
</script>
</body>
</html>
"##;
