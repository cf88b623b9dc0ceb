//! The command connection of a `RedisHub`: one multiplexed connection (so
//! concurrent calls are pipelined), made again after it fails, with a
//! timeout on every call.

use std::time::Duration;

use redis::aio::{MultiplexedConnection, PubSub};
use redis::{AsyncConnectionConfig, Client, RedisError, ScriptInvocation, Value};

use crate::hub::HubError;

#[derive(Debug)]
pub(super) struct Connection {
    client: Client,
    slot: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    timeout: Duration,
}

/// A Redis call that took longer than the hub's timeout.
#[derive(Debug)]
pub(super) struct TimedOut;

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redis did not answer within the hub's timeout")
    }
}

impl std::error::Error for TimedOut {}

impl Connection {
    pub(super) fn new(client: Client, timeout: Duration) -> Self {
        Self {
            client,
            slot: tokio::sync::Mutex::new(None),
            timeout,
        }
    }

    pub(super) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The connection, made when there is none; one caller makes it while
    /// the others wait for it.
    async fn connection(&self) -> Result<MultiplexedConnection, HubError> {
        let mut slot = self.slot.lock().await;
        if let Some(connection) = &*slot {
            return Ok(connection.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.timeout);
        let connection = tokio::time::timeout(
            self.timeout,
            self.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(|_| HubError::unavailable(TimedOut))?
        .map_err(HubError::unavailable)?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// Forgets a connection that failed, so that the next call makes one.
    async fn reset(&self, error: Option<&RedisError>) {
        let broken = error.is_none_or(|error| {
            error.is_io_error()
                || error.is_timeout()
                || error.is_connection_dropped()
                || error.is_connection_refusal()
        });
        if broken {
            *self.slot.lock().await = None;
        }
    }

    /// Runs a script.
    pub(super) async fn run(&self, script: &ScriptInvocation<'_>) -> Result<Value, HubError> {
        let mut connection = self.connection().await?;
        self.finish(script.invoke_async(&mut connection)).await
    }

    /// Reads a counter (0 when it is not set).
    pub(super) async fn counter(&self, key: &str) -> Result<u64, HubError> {
        let mut connection = self.connection().await?;
        let get = redis::cmd("GET").arg(key).to_owned();
        let value = self
            .finish(get.query_async::<Option<u64>>(&mut connection))
            .await?;
        Ok(value.unwrap_or(0))
    }

    /// Waits for a call within the timeout; forgets the connection when it
    /// failed.
    async fn finish<T>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, HubError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                self.reset(Some(&error)).await;
                Err(HubError::unavailable(error))
            }
            Err(_) => {
                self.reset(None).await;
                Err(HubError::unavailable(TimedOut))
            }
        }
    }

    /// A new connection for pub/sub.
    pub(super) async fn pubsub(&self) -> Result<PubSub, HubError> {
        tokio::time::timeout(self.timeout, self.client.get_async_pubsub())
            .await
            .map_err(|_| HubError::unavailable(TimedOut))?
            .map_err(HubError::unavailable)
    }
}
