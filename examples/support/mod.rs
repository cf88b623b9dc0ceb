//! What the examples share: for the load tests, a server on a runtime of its
//! own and the CPU time of a process's threads by name; for `dashboard` and
//! `cluster`, the dashboard ([`dashboard`]).

// Each example uses the part it needs.
#![allow(dead_code)]

pub(crate) mod dashboard;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tower_sse::BoxError;

/// Serves `router` on a fresh `127.0.0.1` port from a tokio runtime of its
/// own (2 workers), whose threads are all named `server`, so that their CPU
/// time can be told apart from the clients'; returns the address.
pub(crate) fn start_server(router: Router) -> Result<SocketAddr, BoxError> {
    let (bound, addr) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("server".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("server")
                .enable_all()
                .build();
            let runtime = match runtime {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = bound.send(Err(error));
                    return;
                }
            };
            runtime.block_on(async move {
                let listener = match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await {
                    Ok(listener) => listener,
                    Err(error) => {
                        let _ = bound.send(Err(error));
                        return;
                    }
                };
                let _ = bound.send(listener.local_addr());
                if let Err(error) = axum::serve(listener, router).await {
                    eprintln!("server failed: {error}");
                }
            });
        })?;
    Ok(addr.recv_timeout(Duration::from_secs(10))??)
}

/// The CPU time of this process's threads named `name`.
#[derive(Clone, Copy, Default)]
pub(crate) struct ThreadsCpu {
    /// On CPU, in nanoseconds: the first field of each thread's `schedstat`.
    pub(crate) ns: u64,
    /// In user and in kernel mode, in `USER_HZ` ticks: fields 14 and 15 of
    /// each thread's `stat`, coarse but enough to split `ns`.
    user_ticks: u64,
    system_ticks: u64,
}

impl ThreadsCpu {
    pub(crate) fn read(name: &str) -> Self {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return Self::default();
        };
        tasks
            .flatten()
            .filter(|task| {
                std::fs::read_to_string(task.path().join("comm"))
                    .is_ok_and(|comm| comm.trim_end() == name)
            })
            .filter_map(|task| {
                let schedstat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
                let ns = schedstat.split_whitespace().next()?.parse().ok()?;
                let (user_ticks, system_ticks) =
                    user_system_ticks(&std::fs::read_to_string(task.path().join("stat")).ok()?)?;
                Some(Self {
                    ns,
                    user_ticks,
                    system_ticks,
                })
            })
            .fold(Self::default(), |sum, thread| Self {
                ns: sum.ns + thread.ns,
                user_ticks: sum.user_ticks + thread.user_ticks,
                system_ticks: sum.system_ticks + thread.system_ticks,
            })
    }

    pub(crate) fn since(self, before: Self) -> Self {
        Self {
            ns: self.ns.saturating_sub(before.ns),
            user_ticks: self.user_ticks.saturating_sub(before.user_ticks),
            system_ticks: self.system_ticks.saturating_sub(before.system_ticks),
        }
    }

    /// The share of the time spent in user mode, in the application and its
    /// libraries rather than in the kernel's TCP stack.
    pub(crate) fn user_share(self) -> f64 {
        self.user_ticks as f64 / (self.user_ticks + self.system_ticks).max(1) as f64
    }
}

/// utime and stime from a `stat` line: fields 14 and 15, counted after the
/// command's closing `)`.
pub(crate) fn user_system_ticks(stat: &str) -> Option<(u64, u64)> {
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
}
