//! What a hub costs in memory, measured as the growth of this process's
//! resident set (Linux `/proc/self/statm`) over 100,000 of each thing:
//!
//! - a user feed holding one notification, and what is left of 100,000 of
//!   them once their window has expired and the hub has forgotten them;
//! - an idle subscription of one topic;
//! - a topic with one subscriber (beyond the subscription);
//! - a retained event, beyond its encoded size.
//!
//! Time is tokio's paused clock, so expiry takes no waiting. Between
//! measurements, glibc's `malloc_trim` hands freed memory back to the
//! system, so that each one grows from a clean start; after the feeds are
//! forgotten the resident set is shown both before it (what glibc keeps in
//! its heap for reuse) and after it.
//!
//! ```text
//! cargo run --release --example hub_memory --features hub
//! ```

use std::time::Duration;

use tower_sse::Event;
use tower_sse::hub::{Hub, HubConfig, Subscription};

const COUNT: usize = 100_000;

/// Resident set size in bytes, from `/proc/self/statm` (Linux).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|pages| pages.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Returns the allocator's free memory to the system (glibc only).
#[allow(unsafe_code)]
fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn per_item(before: usize, after: usize) -> f64 {
    after.saturating_sub(before) as f64 / COUNT as f64
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(measure());
}

async fn measure() {
    println!("growth of the resident set, per item, over {COUNT} items:");
    let user_window = Duration::from_secs(300);
    let hub = Hub::with_config(
        HubConfig::new()
            .replay_max_events(COUNT)
            .replay_max_bytes(usize::MAX)
            .user_replay_max_age(user_window),
    );
    let names: Vec<String> = (0..COUNT).map(|n| format!("name-{n:06}")).collect();
    // Warm up the hub's tables.
    drop(hub.subscribe(["warm-up"], None));
    trim();

    let start = rss();
    for name in &names {
        let notice = Event::new().event("notice").data("your export is ready");
        hub.send_to(name, notice).expect("a valid event");
    }
    let full = rss();
    let held = hub.metrics().user_feeds;
    println!(
        "user feed with one notification:  {:>4.0} bytes ({held} feeds held)",
        per_item(start, full)
    );
    tokio::time::advance(user_window + Duration::from_secs(1)).await;
    let held = hub.metrics().user_feeds;
    let forgotten = rss();
    trim();
    let trimmed = rss();
    println!(
        "  after the window expired: {held} feeds held; resident set {:.1} MiB at the start, \
         {:.1} MiB full, {:.1} MiB forgotten (glibc keeps it for reuse), \
         {:.1} MiB after malloc_trim ({:+.1} MiB)",
        mib(start),
        mib(full),
        mib(forgotten),
        mib(trimmed),
        mib(trimmed) - mib(start)
    );

    let before = rss();
    let subscriptions: Vec<Subscription> =
        (0..COUNT).map(|_| hub.subscribe(["news"], None)).collect();
    let after = rss();
    println!(
        "idle subscription of one topic:   {:>4.0} bytes",
        per_item(before, after)
    );
    drop(subscriptions);
    trim();

    let before = rss();
    let subscriptions: Vec<Subscription> = names
        .iter()
        .map(|name| hub.subscribe([name.as_str()], None))
        .collect();
    let after = rss();
    println!(
        "subscription with its own topic:  {:>4.0} bytes (a topic with an 11-byte name, and the subscription)",
        per_item(before, after)
    );
    drop(subscriptions);
    trim();

    let data: String = "x".repeat(100);
    let before = rss();
    let before_bytes = hub.metrics().retained_bytes;
    for _ in 0..COUNT {
        hub.publish("retained", Event::new().event("update").data(data.clone()))
            .expect("a valid event");
    }
    let after = rss();
    let encoded = (hub.metrics().retained_bytes - before_bytes) / COUNT;
    println!(
        "retained event:                   {:>4.0} bytes beyond its {encoded} encoded bytes",
        per_item(before, after) - encoded as f64
    );
}
