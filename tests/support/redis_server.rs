//! A real `redis-server` for integration tests: one private process per
//! test, on a free 127.0.0.1 port, with its own temporary directory.
//!
//! Include it with `#[path = "support/redis_server.rs"] mod redis_server;`.
//! Without `redis-server` on `PATH`, [`RedisServer::start`] fails when `CI`
//! is set (`.ci/run` installs Debian's package), and otherwise returns `None`
//! after a loud notice on stderr, so that the test returns early.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a started server has to answer `PING` with `+PONG`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`RedisServer::restart`] retries while its port is unavailable.
const PORT_RETRY: Duration = Duration::from_secs(5);
/// The read and write timeout of [`RedisServer::command`].
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// The connect, read and write timeout of one readiness probe.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// How many fresh ports [`RedisServer::start`] tries before giving up.
const START_ATTEMPTS: usize = 5;

/// What the server keeps across a [`RedisServer::kill`] and
/// [`RedisServer::restart`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Persistence {
    /// Nothing (`--appendonly no --save ""`): a restarted server is empty.
    None,
    /// An append-only file fsynced before every reply (`--appendonly yes
    /// --appendfsync always`): whatever the server acknowledged survives a
    /// SIGKILL.
    Aof,
}

/// A running `redis-server` child process on 127.0.0.1; killed, and its
/// directory removed, on drop.
#[derive(Debug)]
pub(crate) struct RedisServer {
    /// The `redis-server` binary found on `PATH`.
    program: PathBuf,
    /// Passed again on every restart.
    persistence: Persistence,
    /// The listening port, kept across restarts.
    port: u16,
    /// The server's working directory (`--dir`), which holds the AOF and logs.
    dir: PathBuf,
    /// The process, `None` once killed.
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server and waits until it answers `PING`; `None` when
    /// `redis-server` is not installed and `CI` is not set.
    ///
    /// Panics when `redis-server` is missing in CI, or when it does not
    /// start.
    pub(crate) fn start(persistence: Persistence) -> Option<RedisServer> {
        let Some(program) = find_program("redis-server") else {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "redis-server is required in CI; .ci/run installs it \
                     (Debian: apt-get install -y redis-server)"
                );
            }
            // Straight to stderr: the test harness would swallow `eprintln!`.
            let _ = writeln!(
                io::stderr(),
                "\n\
                 ********************************************************************\n\
                 * SKIPPED: redis-server not found; this Redis test did not run.    *\n\
                 * On Debian: apt-get install -y redis-server                       *\n\
                 ********************************************************************\n"
            );
            return None;
        };
        let mut server = RedisServer {
            program,
            persistence,
            port: 0,
            dir: unique_temp_dir(),
            child: None,
        };
        // The port is free when picked, but someone may bind it before the
        // server does: then the server exits, and another port is tried.
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            server.port = free_port();
            match server.spawn_and_wait() {
                Ok(()) => return Some(server),
                Err(reason) => failures.push(format!("port {}: {reason}", server.port)),
            }
        }
        panic!(
            "redis-server did not start ({START_ATTEMPTS} attempts):\n{}",
            failures.join("\n")
        );
    }

    /// `redis://127.0.0.1:PORT/`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The listening port, the same across restarts.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The server's working directory (`--dir`): its append-only files and
    /// logs (`redis.log`, `stdio.log`).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// SIGKILLs the server and waits for it to exit; nothing when it is not
    /// running.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server if it runs, then starts it again on the same port,
    /// directory and persistence, and waits until it answers `PING` (with
    /// [`Persistence::Aof`], after it has loaded its append-only file).
    ///
    /// Retries for a few seconds while the port is unavailable; panics when
    /// the server does not come back.
    pub(crate) fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + PORT_RETRY;
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(reason) => panic!(
                    "redis-server did not restart on port {}: {reason}",
                    self.port
                ),
            }
        }
    }

    /// Sends one command over a fresh connection and returns the reply: the
    /// first line as sent (`+OK`, `-ERR …`, `:1`, `$-1` for nil, `*2` for an
    /// array, whose elements are not read), except for a bulk string, whose
    /// content it returns (`GET` answers the value itself).
    ///
    /// Panics when the server cannot be reached or does not answer in time.
    pub(crate) fn command(&self, args: &[&str]) -> String {
        let call = || {
            let mut conn = connect(self.port, COMMAND_TIMEOUT)?;
            call(&mut conn, args)
        };
        call().unwrap_or_else(|error| {
            panic!(
                "redis-server on port {}: {args:?} failed: {error}",
                self.port
            )
        })
    }

    /// Spawns the server on `self.port` and waits until it answers; on
    /// failure the process is gone and the reason carries its log's tail.
    fn spawn_and_wait(&mut self) -> Result<(), String> {
        debug_assert!(self.child.is_none(), "one process at a time");
        let child = self.spawn().map_err(|error| format!("spawn: {error}"))?;
        let pid = child.id();
        self.child = Some(child);
        match self.wait_ready(pid) {
            Ok(()) => Ok(()),
            Err(reason) => {
                self.kill();
                Err(format!("{reason}\n{}", self.log_tail()))
            }
        }
    }

    /// Spawns `redis-server` with this server's options; its stdout and
    /// stderr go to `stdio.log` in its directory.
    fn spawn(&self) -> io::Result<Child> {
        let stdio = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("stdio.log"))?;
        let appendonly = match self.persistence {
            Persistence::None => "no",
            Persistence::Aof => "yes",
        };
        Command::new(&self.program)
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--save", ""])
            .args(["--appendonly", appendonly])
            .args(["--appendfsync", "always"])
            .args(["--protected-mode", "no"])
            .args(["--daemonize", "no"])
            // `DEBUG` (e.g. `DEBUG SLEEP`) from local connections.
            .args(["--enable-debug-command", "local"])
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdio.try_clone()?))
            .stderr(Stdio::from(stdio))
            .spawn()
    }

    /// Polls until the process `pid` answers `PING`, fails when it exits or
    /// after [`READY_TIMEOUT`].
    fn wait_ready(&mut self, pid: u32) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("spawned");
            match child.try_wait() {
                Ok(Some(status)) => return Err(format!("redis-server exited: {status}")),
                Ok(None) => {}
                Err(error) => return Err(format!("waiting for redis-server: {error}")),
            }
            if self.answers(pid) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("no +PONG within {} s", READY_TIMEOUT.as_secs_f32()));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Whether the port answers `PING` with `+PONG`, from our process: a
    /// server that another test started on a port it picked too would answer
    /// as well, with another `process_id`.
    fn answers(&self, pid: u32) -> bool {
        let Ok(mut conn) = connect(self.port, PROBE_TIMEOUT) else {
            return false;
        };
        // `-LOADING …` while the server reads its append-only file.
        if call(&mut conn, &["PING"]).ok().as_deref() != Some("+PONG") {
            return false;
        }
        let expected = format!("process_id:{pid}");
        call(&mut conn, &["INFO", "server"])
            .is_ok_and(|info| info.lines().any(|line| line.trim() == expected))
    }

    /// The last lines of the server's log and of its stdout and stderr.
    fn log_tail(&self) -> String {
        ["redis.log", "stdio.log"]
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(15)..].join("\n");
                format!("--- {name} (last lines) ---\n{tail}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The first file called `name` in a directory of `PATH`.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A 127.0.0.1 port that was free a moment ago: the kernel's pick for port
/// 0, released at once.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A new, empty directory under the system's temporary directory, named
/// after the process, a counter and the time.
fn unique_temp_dir() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let dir = std::env::temp_dir().join(format!(
        "tower-sse-redis-{}-{count}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir(&dir).expect("create the redis-server temporary directory");
    dir
}

/// A connection to 127.0.0.1:`port` with `timeout` for connecting, reading
/// and writing.
fn connect(port: u16, timeout: Duration) -> io::Result<BufReader<TcpStream>> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(BufReader::new(stream))
}

/// Sends `args` as one RESP command and reads the reply as
/// [`RedisServer::command`] describes.
fn call(conn: &mut BufReader<TcpStream>, args: &[&str]) -> io::Result<String> {
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    conn.get_mut().write_all(&request)?;

    let line = read_line(conn)?;
    match line.strip_prefix('$').map(str::parse::<usize>) {
        // A bulk string of that many bytes, then CRLF; `$-1` (nil) does not
        // parse and is returned as is.
        Some(Ok(len)) => {
            let mut content = vec![0; len + 2];
            conn.read_exact(&mut content)?;
            content.truncate(len);
            Ok(String::from_utf8_lossy(&content).into_owned())
        }
        _ => Ok(line),
    }
}

/// One reply line without its CRLF; an error when the connection closes
/// first.
fn read_line(conn: &mut BufReader<TcpStream>) -> io::Result<String> {
    let mut line = String::new();
    if conn.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before a reply",
        ));
    }
    if !line.ends_with("\r\n") {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("incomplete reply line {line:?}"),
        ));
    }
    line.truncate(line.len() - 2);
    Ok(line)
}
