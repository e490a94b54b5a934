//! A replay store on Redis (feature `redis`), shared by every instance of a receiver.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};

use super::{ReplayKey, ReplayStore, ReplayStoreError, Reservation, Retention};

/// Default key prefix: the crate's name.
pub const DEFAULT_PREFIX: &str = "vonage-secure-callbacks";
/// Default bound on each Redis round trip: well under the few seconds Vonage waits for an
/// answer, so that a slow Redis turns into a 503 (retried later) rather than a timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1500);
/// Default lifetime of an in-flight reservation: if the process dies while handling a
/// callback, Vonage's retry is accepted once this has passed.
pub const DEFAULT_IN_FLIGHT_TTL: Duration = Duration::from_secs(60);

/// Value of a key while its callback is being handled.
const IN_FLIGHT: &str = "in-flight";
/// Value of a key whose callback was answered 2xx.
const DONE: &str = "done";

/// Deletes the key only while it is still in flight: a release never forgets a delivered
/// callback. One round trip.
const RELEASE: &str = r"if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, ReplayStoreError>> + Send>>;

/// Replay protection shared across processes through Redis.
///
/// Per callback: one round trip to reserve (`SET key in-flight NX GET PX <in-flight TTL>`,
/// which also tells an in-flight duplicate from a delivered one), one to settle (`SET key done
/// PX <until stale>` after a 2xx, or a scripted delete of the in-flight value otherwise). Keys
/// are `<prefix>:<api_key>:<jti>`, so projects and apps can share one Redis. No `KEYS` or
/// `SCAN` is ever sent.
///
/// Redis unreachable or slower than the timeout: the callback is refused with
/// `replay_store_unavailable` (503), Vonage retries it later, and nothing is lost. The
/// connection manager reconnects by itself when Redis comes back.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use vonage_secure_callbacks::replay::RedisReplayStore;
/// use vonage_secure_callbacks::{Secrets, SecureCallbackLayer};
///
/// let store = RedisReplayStore::connect("redis://127.0.0.1:6379/").await?;
/// let layer = SecureCallbackLayer::new(Secrets::new()).replay_store(store);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisReplayStore {
    connection: ConnectionManager,
    settings: Arc<Settings>,
}

struct Settings {
    prefix: String,
    timeout: Duration,
    in_flight_ttl: Duration,
    release: Script,
}

impl RedisReplayStore {
    /// Connects to the Redis at `url` (`redis://host:port/db`), with the default prefix,
    /// timeout and in-flight TTL.
    pub async fn connect(url: &str) -> Result<Self, ReplayStoreError> {
        Self::connect_with(url, DEFAULT_TIMEOUT).await
    }

    /// Connects with `timeout` as the bound on connecting and on every round trip.
    pub async fn connect_with(url: &str, timeout: Duration) -> Result<Self, ReplayStoreError> {
        let client = Client::open(url).map_err(store_error)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            // Reconnect quickly and keep trying: the store must heal without a restart.
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1))
            .set_number_of_retries(usize::MAX);
        let connect = ConnectionManager::new_with_config(client, config);
        let connection = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| ReplayStoreError::new("timed out connecting to Redis"))?
            .map_err(store_error)?;
        Ok(Self {
            connection,
            settings: Arc::new(Settings {
                prefix: DEFAULT_PREFIX.to_owned(),
                timeout,
                in_flight_ttl: DEFAULT_IN_FLIGHT_TTL,
                release: Script::new(RELEASE),
            }),
        })
    }

    fn settings_mut(&mut self) -> &mut Settings {
        Arc::get_mut(&mut self.settings).expect("configure the store before cloning it")
    }

    /// Namespace of the keys (default [`DEFAULT_PREFIX`]).
    ///
    /// # Panics
    /// If the store was cloned already: configure it first.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.settings_mut().prefix = prefix.into();
        self
    }

    /// Lifetime of an in-flight reservation (default [`DEFAULT_IN_FLIGHT_TTL`]); make it longer
    /// than your slowest handler.
    ///
    /// # Panics
    /// If the store was cloned already: configure it first.
    pub fn in_flight_ttl(mut self, ttl: Duration) -> Self {
        self.settings_mut().in_flight_ttl = ttl;
        self
    }

    /// The Redis key of `key`.
    pub fn redis_key(&self, key: &ReplayKey) -> String {
        format!("{}:{}:{}", self.settings.prefix, key.api_key(), key.jti())
    }

    /// Runs `command` within the timeout.
    fn bounded<T, F>(&self, command: F) -> BoxFuture<T>
    where
        F: Future<Output = redis::RedisResult<T>> + Send + 'static,
    {
        let timeout = self.settings.timeout;
        Box::pin(async move {
            tokio::time::timeout(timeout, command)
                .await
                .map_err(|_| ReplayStoreError::new("Redis did not answer in time"))?
                .map_err(store_error)
        })
    }

    fn release_future(&self, key: &ReplayKey) -> BoxFuture<()> {
        let mut connection = self.connection.clone();
        let redis_key = self.redis_key(key);
        let settings = Arc::clone(&self.settings);
        self.bounded(async move {
            let _: i64 = settings
                .release
                .key(redis_key)
                .arg(IN_FLIGHT)
                .invoke_async(&mut connection)
                .await?;
            Ok(())
        })
    }
}

fn store_error(err: redis::RedisError) -> ReplayStoreError {
    // The category only: a Redis error can quote a command, and so a key.
    ReplayStoreError::new(format!("Redis error ({:?})", err.kind()))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl ReplayStore for RedisReplayStore {
    type ReserveFuture = BoxFuture<Reservation>;
    type SettleFuture = BoxFuture<()>;

    fn reserve(&self, key: &ReplayKey) -> Self::ReserveFuture {
        let mut connection = self.connection.clone();
        let mut set = redis::cmd("SET");
        set.arg(self.redis_key(key))
            .arg(IN_FLIGHT)
            .arg("NX")
            .arg("GET")
            .arg("PX")
            .arg(millis(self.settings.in_flight_ttl));
        self.bounded(async move {
            let previous: Option<String> = set.query_async(&mut connection).await?;
            Ok(match previous.as_deref() {
                None => Reservation::Reserved,
                Some(DONE) => Reservation::AlreadyDone,
                Some(_) => Reservation::InFlight,
            })
        })
    }

    fn complete(&self, key: &ReplayKey, retention: Retention) -> Self::SettleFuture {
        let mut connection = self.connection.clone();
        let mut set = redis::cmd("SET");
        set.arg(self.redis_key(key))
            .arg(DONE)
            .arg("PX")
            .arg(millis(retention.ttl()));
        self.bounded(async move {
            let () = set.query_async(&mut connection).await?;
            Ok(())
        })
    }

    fn release(&self, key: &ReplayKey) -> Self::SettleFuture {
        self.release_future(key)
    }

    /// Spawns the release on the current tokio runtime; without one, the in-flight TTL
    /// frees the key.
    fn abandon(&self, key: &ReplayKey) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let release = self.release_future(key);
            runtime.spawn(async move {
                let _ = release.await;
            });
        }
    }
}

impl fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplayStore")
            .field("prefix", &self.settings.prefix)
            .field("timeout", &self.settings.timeout)
            .field("in_flight_ttl", &self.settings.in_flight_ttl)
            .finish_non_exhaustive()
    }
}
