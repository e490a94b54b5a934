//! A replay store on Redis (feature `redis`), shared by every instance of a receiver.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Cmd, Pipeline, RedisFuture, Script, Value};

use super::{
    Attempt, Lease, Lookup, Outcome, ReplayStore, ReplayStoreError, Reservation,
    DEFAULT_IN_FLIGHT_TTL,
};

/// Default key prefix: the crate's name.
pub const DEFAULT_PREFIX: &str = "vonage-secure-callbacks";
/// Default bound on each Redis round trip: well under the few seconds Vonage waits for an
/// answer, so that a slow Redis turns into a 503 (retried later) rather than a timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1500);

/// Value of a key whose callback was answered 2xx: `done:<Unix seconds it was verified>` (keys
/// written by 0.2 hold `done` alone). An in-flight key holds `in-flight:<owner>`.
const DONE: &str = "done";

/// Whether a key's value says delivered, and if so when, when it says.
fn delivered(value: &str) -> Option<Option<u64>> {
    match value.strip_prefix(DONE)? {
        "" => Some(None),
        rest => Some(rest.strip_prefix(':')?.parse().ok()),
    }
}

/// Reserves the key unless it exists, and says what was there: one round trip. A script rather
/// than `SET NX GET` (Redis 7.0+) so that any Redis with scripting (2.6.12+) serves.
const RESERVE: &str = r"local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false";

/// Deletes the key only while this very reservation holds it: a late release never frees a
/// reservation that another request took over, nor forgets a delivered callback.
const RELEASE: &str = r"if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, ReplayStoreError>> + Send>>;

/// Replay protection shared across processes through Redis.
///
/// Per callback: a `GET` before the body is read (a delivered `jti` is refused without reading
/// its body), one scripted round trip to reserve (which also tells an in-flight duplicate from a
/// delivered one), and one to settle (`SET key done:<now> PX <until stale>` after a 2xx, or a scripted
/// delete of this reservation's own in-flight value otherwise). Keys are
/// `<prefix>:<api_key>:<jti>`, so projects and apps can share one Redis. No `KEYS` or `SCAN`.
///
/// Redis unreachable or slower than the timeout: the callback is refused with
/// `replay_store_unavailable` (503), Vonage retries it later, and nothing is lost. The
/// connection reconnects by itself when Redis comes back. If marking a delivered callback fails,
/// or the request is dropped while it is being marked, the store keeps trying in the background
/// for up to the in-flight TTL, so a delivered callback ends up remembered.
///
/// Redis must keep what it was told: run it with persistence (`appendonly yes`) and without an
/// eviction policy that may drop these keys (`maxmemory-policy noeviction`, or no `maxmemory`).
/// A Redis restarted empty, or one that evicts, forgets delivered `jti`s. [`connect`] warns
/// (feature `tracing`) when the eviction policy may drop them; see
/// [`may_evict`](Self::may_evict).
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
///
/// [`connect`]: Self::connect
#[derive(Clone)]
pub struct RedisReplayStore {
    connection: Connection,
    settings: Arc<Settings>,
}

#[derive(Clone)]
struct Settings {
    prefix: String,
    timeout: Duration,
    in_flight_ttl: Duration,
    may_evict: bool,
    reserve: Script,
    release: Script,
}

/// One Redis, or a Redis Cluster (feature `redis-cluster`); both reconnect by themselves.
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    #[cfg(feature = "redis-cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            #[cfg(feature = "redis-cluster")]
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "redis-cluster")]
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            #[cfg(feature = "redis-cluster")]
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

/// How to reach Redis: from [`RedisReplayStore::builder`]; [`connect`](Self::connect) ends it.
#[derive(Clone)]
pub struct RedisStoreBuilder {
    nodes: Vec<String>,
    cluster: bool,
    timeout: Duration,
    prefix: String,
    in_flight_ttl: Duration,
    #[cfg(feature = "redis-tls")]
    root_certificate: Option<Vec<u8>>,
}

impl RedisStoreBuilder {
    /// Namespace of the keys (default [`DEFAULT_PREFIX`]): layers that share it share one
    /// replay window.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Lifetime of an in-flight reservation (default [`DEFAULT_IN_FLIGHT_TTL`]); make it longer
    /// than your slowest handler.
    pub fn in_flight_ttl(mut self, ttl: Duration) -> Self {
        self.in_flight_ttl = ttl;
        self
    }

    /// Bound on connecting and on every round trip (default [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Trust this PEM certificate (a private CA) for `rediss://` URLs, instead of the system's
    /// roots.
    #[cfg(feature = "redis-tls")]
    pub fn root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificate = Some(pem.into());
        self
    }

    /// Connects, checks the server (its version; whether it may evict these keys) and returns
    /// the store.
    pub async fn connect(self) -> Result<RedisReplayStore, ReplayStoreError> {
        let timeout = self.timeout;
        let connect = async {
            if self.cluster {
                self.connect_cluster().await
            } else {
                self.connect_single().await
            }
        };
        let mut connection = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| ReplayStoreError::new("timed out connecting to Redis"))??;
        let may_evict = tokio::time::timeout(timeout, check_server(&mut connection))
            .await
            .map_err(|_| ReplayStoreError::new("timed out checking the Redis server"))??;
        Ok(RedisReplayStore {
            connection,
            settings: Arc::new(Settings {
                prefix: self.prefix,
                timeout,
                in_flight_ttl: self.in_flight_ttl,
                may_evict,
                reserve: Script::new(RESERVE),
                release: Script::new(RELEASE),
            }),
        })
    }

    fn client(&self, url: &str) -> Result<Client, ReplayStoreError> {
        #[cfg(feature = "redis-tls")]
        if let Some(pem) = &self.root_certificate {
            let certificates = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            };
            return Client::build_with_tls(url, certificates).map_err(store_error);
        }
        Client::open(url).map_err(store_error)
    }

    async fn connect_single(&self) -> Result<Connection, ReplayStoreError> {
        let url = self.nodes.first().map(String::as_str).unwrap_or_default();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            // Reconnect quickly and keep trying: the store must heal without a restart.
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1))
            .set_number_of_retries(usize::MAX);
        let manager = ConnectionManager::new_with_config(self.client(url)?, config)
            .await
            .map_err(store_error)?;
        Ok(Connection::Single(manager))
    }

    #[cfg(feature = "redis-cluster")]
    async fn connect_cluster(&self) -> Result<Connection, ReplayStoreError> {
        let builder = redis::cluster::ClusterClientBuilder::new(self.nodes.clone())
            .connection_timeout(self.timeout)
            .response_timeout(self.timeout);
        #[cfg(feature = "redis-tls")]
        let builder = match &self.root_certificate {
            Some(pem) => builder.certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            }),
            None => builder,
        };
        let client = builder.build().map_err(store_error)?;
        let connection = client.get_async_connection().await.map_err(store_error)?;
        Ok(Connection::Cluster(connection))
    }

    #[cfg(not(feature = "redis-cluster"))]
    async fn connect_cluster(&self) -> Result<Connection, ReplayStoreError> {
        Err(ReplayStoreError::new(
            "Redis Cluster needs feature `redis-cluster`",
        ))
    }
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // URLs may carry a password: only their number is shown.
        f.debug_struct("RedisStoreBuilder")
            .field("nodes", &self.nodes.len())
            .field("cluster", &self.cluster)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The oldest Redis whose commands the store needs (`SET ... PX`, scripting).
const MIN_VERSION: (u32, u32, u32) = (2, 6, 12);

/// Refuses a Redis too old for the store's commands; tells whether it may evict these keys.
/// Servers that forbid `INFO` or `CONFIG` (managed offerings) are taken as they are.
async fn check_server(connection: &mut Connection) -> Result<bool, ReplayStoreError> {
    let info: Result<String, _> = redis::cmd("INFO")
        .arg("server")
        .query_async(connection)
        .await;
    if let Some(version) = info.ok().as_deref().and_then(redis_version) {
        if version < MIN_VERSION {
            let (a, b, c) = version;
            return Err(ReplayStoreError::new(format!(
                "Redis {a}.{b}.{c} is older than 2.6.12, which the store's commands need"
            )));
        }
    }
    let config: Result<Vec<String>, _> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory*")
        .query_async(connection)
        .await;
    let may_evict = config.ok().is_some_and(|pairs| evicts(&pairs));
    if may_evict {
        #[cfg(feature = "tracing")]
        tracing::warn!(
            target: "vonage_secure_callbacks",
            "Redis has a maxmemory and an eviction policy that may drop replay keys, forgetting \
             delivered callbacks: set `maxmemory-policy noeviction` for the replay store"
        );
    }
    Ok(may_evict)
}

/// `redis_version:7.0.15` in `INFO server`.
fn redis_version(info: &str) -> Option<(u32, u32, u32)> {
    let line = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))?;
    let mut parts = line.trim().split('.').map(|p| p.parse::<u32>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

/// From `CONFIG GET maxmemory*` name/value pairs: a memory limit with a policy other than
/// `noeviction` may evict the store's keys (they all have a TTL, so `volatile-*` too).
fn evicts(pairs: &[String]) -> bool {
    let value = |name: &str| {
        pairs
            .chunks_exact(2)
            .find(|kv| kv[0] == name)
            .map(|kv| kv[1].as_str())
    };
    let limited = value("maxmemory").is_some_and(|m| m != "0");
    limited && value("maxmemory-policy").is_some_and(|p| p != "noeviction")
}

impl RedisReplayStore {
    /// Connects to the Redis at `url` (`redis://host:port/db`; `rediss://` with feature
    /// `redis-tls`) with the default prefix, timeout and in-flight TTL.
    pub async fn connect(url: &str) -> Result<Self, ReplayStoreError> {
        Self::builder(url).connect().await
    }

    /// Starts configuring a connection to the Redis at `url`.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), vonage_secure_callbacks::replay::ReplayStoreError> {
    /// use std::time::Duration;
    /// use vonage_secure_callbacks::replay::RedisReplayStore;
    /// let store = RedisReplayStore::builder("redis://127.0.0.1:6379/")
    ///     .prefix("callbacks")
    ///     .in_flight_ttl(Duration::from_secs(120))
    ///     .timeout(Duration::from_millis(500))
    ///     .connect()
    ///     .await?;
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder(url: &str) -> RedisStoreBuilder {
        RedisStoreBuilder {
            nodes: vec![url.to_owned()],
            cluster: false,
            timeout: DEFAULT_TIMEOUT,
            prefix: DEFAULT_PREFIX.to_owned(),
            in_flight_ttl: DEFAULT_IN_FLIGHT_TTL,
            #[cfg(feature = "redis-tls")]
            root_certificate: None,
        }
    }

    /// Starts configuring a connection to a Redis Cluster through some of its nodes.
    #[cfg(feature = "redis-cluster")]
    pub fn cluster_builder<I, U>(nodes: I) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = U>,
        U: Into<String>,
    {
        RedisStoreBuilder {
            nodes: nodes.into_iter().map(Into::into).collect(),
            cluster: true,
            timeout: DEFAULT_TIMEOUT,
            prefix: DEFAULT_PREFIX.to_owned(),
            in_flight_ttl: DEFAULT_IN_FLIGHT_TTL,
            #[cfg(feature = "redis-tls")]
            root_certificate: None,
        }
    }

    /// True when the server, as checked at connect, has a memory limit and an eviction policy
    /// that may drop replay keys (and so forget delivered callbacks).
    pub fn may_evict(&self) -> bool {
        self.settings.may_evict
    }

    /// The Redis key of `key`: `prefix:api_key:jti`, with `%` and `:` inside the API key or the
    /// `jti` written `%25` and `%3A`, so that no two callbacks share a key (`a:b` + `c` and
    /// `a` + `b:c` would). Vonage's API keys and `jti`s (UUIDs) hold neither character, so their
    /// keys are those of 0.2 unchanged: upgrading forgets no delivered callback.
    pub fn redis_key(&self, key: &super::ReplayKey) -> String {
        let prefix = &self.settings.prefix;
        let (api_key, jti) = (key.api_key(), key.jti());
        let mut out = String::with_capacity(prefix.len() + api_key.len() + jti.len() + 2);
        out.push_str(prefix);
        for part in [api_key, jti] {
            out.push(':');
            for c in part.chars() {
                match c {
                    '%' => out.push_str("%25"),
                    ':' => out.push_str("%3A"),
                    c => out.push(c),
                }
            }
        }
        out
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

    fn complete(&self, lease: &Lease) -> BoxFuture<()> {
        let mut connection = self.connection.clone();
        let mut set = redis::cmd("SET");
        set.arg(self.redis_key(lease.key()))
            .arg(format!("{DONE}:{}", lease.attempt().now()))
            .arg("PX")
            .arg(millis(lease.attempt().retention().ttl()));
        self.bounded(async move { set.query_async(&mut connection).await })
    }

    fn release(&self, lease: &Lease) -> BoxFuture<()> {
        let mut connection = self.connection.clone();
        let settings = Arc::clone(&self.settings);
        let (key, value) = (self.redis_key(lease.key()), in_flight_value(lease));
        self.bounded(async move {
            let mut invocation = settings.release.key(key);
            let _: i64 = invocation.arg(value).invoke_async(&mut connection).await?;
            Ok(())
        })
    }
}

/// The value of a key while `lease` holds it.
fn in_flight_value(lease: &Lease) -> String {
    format!("in-flight:{:016x}", lease.owner())
}

fn store_error(err: redis::RedisError) -> ReplayStoreError {
    // The category only: a Redis error can quote a command, and so a key.
    ReplayStoreError::new(format!("Redis error ({:?})", err.kind()))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl ReplayStore for RedisReplayStore {
    type LookupFuture = BoxFuture<Lookup>;
    type ReserveFuture = BoxFuture<Reservation>;
    type SettleFuture = BoxFuture<()>;

    fn lookup(&self, attempt: &Attempt) -> Self::LookupFuture {
        let mut connection = self.connection.clone();
        let mut get = redis::cmd("GET");
        get.arg(self.redis_key(attempt.key()));
        self.bounded(async move {
            let held: Option<String> = get.query_async(&mut connection).await?;
            Ok(match held.as_deref().and_then(delivered) {
                Some(at) => Lookup::Delivered { at },
                None => Lookup::Unknown,
            })
        })
    }

    fn reserve(&self, attempt: Attempt) -> Self::ReserveFuture {
        let mut connection = self.connection.clone();
        let lease = Lease::new(attempt);
        let settings = Arc::clone(&self.settings);
        let key = self.redis_key(lease.key());
        self.bounded(async move {
            let mut invocation = settings.reserve.key(key);
            invocation
                .arg(in_flight_value(&lease))
                .arg(millis(settings.in_flight_ttl));
            let held: Option<String> = invocation.invoke_async(&mut connection).await?;
            Ok(match held.as_deref() {
                None => Reservation::Reserved(lease),
                Some(value) => match delivered(value) {
                    Some(at) => Reservation::AlreadyDone { at },
                    None => Reservation::InFlight,
                },
            })
        })
    }

    fn settle(&self, lease: &Lease, outcome: Outcome) -> Self::SettleFuture {
        match outcome {
            Outcome::Delivered => self.complete(lease),
            Outcome::NotDelivered => self.release(lease),
        }
    }

    /// On the current tokio runtime: a delivered callback is marked done with retries (backoff
    /// 50 ms to 1 s) for up to the in-flight TTL; a release is tried once (the in-flight TTL
    /// frees the key otherwise).
    fn settle_detached(&self, lease: Lease, outcome: Outcome) {
        let within = self.settings.in_flight_ttl;
        super::retry::settle_in_background(self.clone(), lease, outcome, within, "Redis");
    }
}

impl fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplayStore")
            .field("prefix", &self.settings.prefix)
            .field("timeout", &self.settings.timeout)
            .field("in_flight_ttl", &self.settings.in_flight_ttl)
            .field("may_evict", &self.settings.may_evict)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivered_values_old_and_new() {
        assert_eq!(delivered("done"), Some(None));
        assert_eq!(delivered("done:1800000000"), Some(Some(1_800_000_000)));
        assert_eq!(delivered("done:?"), Some(None));
        assert_eq!(delivered("in-flight:00000000000000ab"), None);
        assert_eq!(delivered("doneX"), None);
    }

    #[test]
    fn reads_the_version_from_info() {
        let info = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n";
        assert_eq!(redis_version(info), Some((7, 0, 15)));
        assert_eq!(redis_version("redis_version:2.6\r\n"), Some((2, 6, 0)));
        assert!(redis_version("redis_version:2.6.11").unwrap() < MIN_VERSION);
        assert_eq!(redis_version("nothing"), None);
    }

    #[test]
    fn only_a_memory_limit_with_an_evicting_policy_evicts() {
        let pairs = |m: &str, p: &str| {
            ["maxmemory", m, "maxmemory-policy", p]
                .map(str::to_owned)
                .to_vec()
        };
        assert!(!evicts(&pairs("0", "allkeys-lru")));
        assert!(!evicts(&pairs("1000000", "noeviction")));
        assert!(evicts(&pairs("1000000", "allkeys-lru")));
        assert!(evicts(&pairs("1000000", "volatile-ttl")));
    }
}
