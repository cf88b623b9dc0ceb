//! The real-`redis-server` test harness itself: commands, and what survives
//! a SIGKILL and a restart with and without an append-only file.
//!
//! Skipped (loudly) without `redis-server`, unless `CI` is set.

#[path = "support/redis_server.rs"]
mod redis_server;

use std::net::TcpStream;

use redis_server::{Persistence, RedisServer};

#[test]
fn commands_reach_a_private_server() {
    let Some(server) = RedisServer::start(Persistence::None) else {
        return;
    };
    assert_eq!(
        server.url(),
        format!("redis://127.0.0.1:{}/", server.port())
    );
    assert_ne!(server.port(), 6379, "never the system's redis");

    assert_eq!(server.command(&["PING"]), "+PONG");
    assert_eq!(server.command(&["SET", "k", "v"]), "+OK");
    assert_eq!(server.command(&["GET", "k"]), "v");
    assert_eq!(server.command(&["SET", "empty", ""]), "+OK");
    assert_eq!(server.command(&["GET", "empty"]), "");
    assert_eq!(server.command(&["GET", "missing"]), "$-1");
    assert_eq!(server.command(&["DEL", "k", "missing"]), ":1");
    assert_eq!(server.command(&["GET", "k"]), "$-1");
    assert_eq!(server.command(&["DEBUG", "SLEEP", "0"]), "+OK");
    assert_eq!(server.command(&["SET", "k", "v"]), "+OK");
    assert_eq!(server.command(&["FLUSHALL"]), "+OK");
    assert_eq!(server.command(&["DBSIZE"]), ":0");
    assert!(server.command(&["NO-SUCH-COMMAND"]).starts_with("-ERR"));
}

#[test]
fn aof_keeps_acknowledged_writes_across_sigkill() {
    let Some(mut server) = RedisServer::start(Persistence::Aof) else {
        return;
    };
    let port = server.port();
    assert_eq!(server.command(&["SET", "k", "v"]), "+OK");
    assert_eq!(server.command(&["RPUSH", "list", "a", "b"]), ":2");

    server.kill();
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens after the kill"
    );
    server.restart();
    assert_eq!(server.port(), port);
    assert_eq!(server.command(&["GET", "k"]), "v");
    assert_eq!(server.command(&["LLEN", "list"]), ":2");

    // A restart of a running server kills it first.
    assert_eq!(server.command(&["SET", "k", "w"]), "+OK");
    server.restart();
    assert_eq!(server.command(&["GET", "k"]), "w");
}

#[test]
fn without_persistence_a_restart_starts_empty() {
    let Some(mut server) = RedisServer::start(Persistence::None) else {
        return;
    };
    let port = server.port();
    assert_eq!(server.command(&["SET", "k", "v"]), "+OK");
    assert_eq!(server.command(&["GET", "k"]), "v");

    server.kill();
    server.restart();
    assert_eq!(server.port(), port);
    assert_eq!(server.command(&["GET", "k"]), "$-1");
    assert_eq!(server.command(&["DBSIZE"]), ":0");
}
