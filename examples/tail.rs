//! Tails a Server-Sent Events URL: prints every event as it arrives and
//! resumes across disconnects (like `curl -N`, but it reconnects with
//! `Last-Event-ID`).
//!
//! ```sh
//! cargo run --example tail --features client -- http://127.0.0.1:3000/events
//! cargo run --example tail --features client -- --last-event-id 41 --idle 45 URL
//! ```
//!
//! Plain `http://` only: for `https://`, build the source over a TLS client
//! (see the `tower_sse::client` docs).

use std::process::ExitCode;
use std::time::Duration;

use futures_util::StreamExt;
use tower_sse::client::{EventSource, SourceEvent};

const USAGE: &str = "usage: tail [--last-event-id ID] [--idle SECONDS] [--retry-server-errors] URL";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut url = None;
    let mut last_event_id = None;
    let mut idle = None;
    let mut retry_server_errors = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--last-event-id" => last_event_id = args.next(),
            "--idle" => match args.next().and_then(|s| s.parse::<u64>().ok()) {
                Some(seconds) => idle = Some(Duration::from_secs(seconds)),
                None => return usage(),
            },
            "--retry-server-errors" => retry_server_errors = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ if url.is_none() && !arg.starts_with('-') => url = Some(arg),
            _ => return usage(),
        }
    }
    let Some(url) = url else {
        return usage();
    };

    let mut builder = EventSource::builder(url.as_str()).retry_server_errors(retry_server_errors);
    if let Some(id) = last_event_id {
        builder = builder.last_event_id(id);
    }
    if let Some(idle) = idle {
        builder = builder.idle_timeout(idle);
    }
    let mut source = builder.build_http();
    while let Some(item) = source.next().await {
        match item {
            Ok(SourceEvent::Open) => eprintln!("# connected to {url}"),
            Ok(SourceEvent::Message(event)) => {
                if !event.last_event_id.is_empty() {
                    println!("id: {}", event.last_event_id);
                }
                println!("event: {}", event.event_type);
                for line in event.data.split('\n') {
                    println!("data: {line}");
                }
                println!();
            }
            Ok(SourceEvent::Reconnecting { error, delay }) => {
                eprintln!("# {error}; reconnecting in {delay:?}");
            }
            Ok(_) => {}
            Err(error) => {
                eprintln!("# gave up: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::FAILURE
}
