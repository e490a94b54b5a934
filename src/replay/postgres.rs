//! A replay store in PostgreSQL (feature `postgres`): the window in the database the app
//! already has, shared by every instance, and a delivery mark that a handler can commit in its
//! own transaction, so that its effects happen exactly once.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Row;

use super::{
    Attempt, Lease, Lookup, Outcome, ReplayStore, ReplayStoreError, Reservation,
    DEFAULT_IN_FLIGHT_TTL,
};

/// The table the window is kept in unless [`PostgresStoreBuilder::table`] says otherwise.
pub const DEFAULT_TABLE: &str = "vonage_replay";

/// How long one statement (and the wait for a pooled connection) may take before the callback
/// is refused with 503, which Vonage retries.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1500);

/// Connections the store opens when it makes its own pool.
const DEFAULT_MAX_CONNECTIONS: u32 = 8;

/// How often expired rows are removed.
const DEFAULT_PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Rows removed per pruning statement: each is a short transaction on the expiry index, so no
/// lock is held for long whatever the backlog.
const PRUNE_BATCH: i64 = 1000;

/// At most this many batches per pruning round; the rest waits for the next round.
const PRUNE_BATCHES: usize = 100;

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, ReplayStoreError>> + Send>>;

/// A replay window in one PostgreSQL table, shared by every instance that uses it.
///
/// Same contract as the Redis store: [`lookup`](ReplayStore::lookup) before the body is read,
/// [`reserve`](ReplayStore::reserve) with an owner (a request that dies holds its `jti` for the
/// [in-flight TTL](PostgresStoreBuilder::in_flight_ttl) at most), a delivery kept for the
/// token's retention and never forgotten, a release that frees only its own reservation, and a
/// delivery mark that failed retried in the background. One round trip per step, each bounded
/// by the [timeout](PostgresStoreBuilder::timeout): when the database cannot be reached or
/// the pool has no connection free in time, the callback is refused with 503 (Vonage retries),
/// never accepted unchecked.
///
/// **Exactly once.** The layer puts the reservation's [`Lease`] in the request extensions. A
/// handler that writes to the same database can commit [`mark_delivered`](Self::mark_delivered)
/// in its own transaction: its writes and the delivery mark then commit together or not at all,
/// so a crash between them and the answer cannot make Vonage's retry run them again (see
/// `guide::replay_stores`).
///
/// The table (one row per `jti`: 262 bytes with its indexes, measured over 5 000 `jti`s) is created at
/// [`connect`](PostgresStoreBuilder::connect) unless told not to; [`migration`](Self::migration)
/// is the SQL, to run it yourself. Expired rows are removed every minute, a thousand per
/// statement.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use vonage_secure_callbacks::replay::PostgresReplayStore;
/// use vonage_secure_callbacks::{Secrets, SecureCallbackLayer};
///
/// let store = PostgresReplayStore::connect("postgres://app@127.0.0.1/app").await?;
/// let layer = SecureCallbackLayer::new(Secrets::from_env()?).replay_store(store);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresReplayStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    table: String,
    sql: Statements,
    timeout: Duration,
    in_flight_ttl: Duration,
    /// The latest "now" a callback brought (the verifier's clock): pruning removes what that
    /// clock calls expired, so that a test clock and the store never disagree.
    latest_now: AtomicU64,
}

/// The statements, with the table's name written in once.
struct Statements {
    lookup: String,
    reserve: String,
    deliver: String,
    release: String,
    prune: String,
}

impl Statements {
    fn for_table(t: &str) -> Self {
        Self {
            lookup: format!(
                "SELECT delivered_at FROM {t} \
                 WHERE api_key = $1 AND jti = $2 AND delivered_at IS NOT NULL AND expires_at > $3"
            ),
            // Takes the row when there is none or when it expired; otherwise says what holds
            // it (the CTE's read sees the row as it was before this statement).
            reserve: format!(
                "WITH taken AS ( \
                   INSERT INTO {t} AS r (api_key, jti, owner, delivered_at, expires_at) \
                   VALUES ($1, $2, $3, NULL, $4) \
                   ON CONFLICT (api_key, jti) DO UPDATE \
                     SET owner = EXCLUDED.owner, delivered_at = NULL, expires_at = EXCLUDED.expires_at \
                     WHERE r.expires_at <= $5 \
                   RETURNING owner) \
                 SELECT (SELECT owner FROM taken) AS taken, \
                        (SELECT delivered_at FROM {t} WHERE api_key = $1 AND jti = $2) AS delivered_at, \
                        EXISTS (SELECT 1 FROM {t} WHERE api_key = $1 AND jti = $2) AS held"
            ),
            // Written whatever holds the row: a delivery is a fact, even one whose reservation
            // expired or was taken over meanwhile.
            deliver: format!(
                "INSERT INTO {t} AS r (api_key, jti, owner, delivered_at, expires_at) \
                 VALUES ($1, $2, NULL, $3, $4) \
                 ON CONFLICT (api_key, jti) DO UPDATE \
                   SET owner = NULL, delivered_at = COALESCE(r.delivered_at, EXCLUDED.delivered_at), \
                       expires_at = GREATEST(r.expires_at, EXCLUDED.expires_at)"
            ),
            release: format!(
                "DELETE FROM {t} \
                 WHERE api_key = $1 AND jti = $2 AND owner = $3 AND delivered_at IS NULL"
            ),
            prune: format!(
                "DELETE FROM {t} WHERE ctid = ANY (ARRAY ( \
                   SELECT ctid FROM {t} WHERE expires_at <= $1 LIMIT $2))"
            ),
        }
    }
}

/// Where the store's connections come from.
#[derive(Clone)]
enum Source {
    Url(String),
    Pool(PgPool),
}

/// Settings of a [`PostgresReplayStore`], read like the server's own configuration.
#[derive(Clone)]
pub struct PostgresStoreBuilder {
    source: Source,
    table: String,
    timeout: Duration,
    in_flight_ttl: Duration,
    max_connections: u32,
    create_table: bool,
    prune_every: Duration,
}

impl PostgresStoreBuilder {
    /// The table's name (default [`DEFAULT_TABLE`]): lower-case letters, digits and `_`,
    /// optionally after a schema name and a dot.
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// The longest a store operation may take, the wait for a pooled connection included
    /// (default 1.5 s); past it the callback is refused with 503. With a pool of its own the
    /// store also sets it as the connections' `statement_timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a reservation holds a `jti` when its request never settles (default 60 s).
    pub fn in_flight_ttl(mut self, ttl: Duration) -> Self {
        self.in_flight_ttl = ttl;
        self
    }

    /// The size of the store's own pool (default 8; ignored with
    /// [`from_pool`](PostgresReplayStore::from_pool)).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Whether [`connect`](Self::connect) creates the table and its index when missing
    /// (default true). Off, the table must exist: run [`PostgresReplayStore::migration`].
    pub fn create_table(mut self, create: bool) -> Self {
        self.create_table = create;
        self
    }

    /// How often expired rows are removed (default one minute).
    pub fn prune_every(mut self, every: Duration) -> Self {
        self.prune_every = every.max(Duration::from_millis(10));
        self
    }

    /// Connects, checks (or creates) the table, and starts pruning.
    pub async fn connect(self) -> Result<PostgresReplayStore, ReplayStoreError> {
        check_table_name(&self.table)?;
        let pool = match &self.source {
            Source::Pool(pool) => pool.clone(),
            Source::Url(url) => {
                let options: PgConnectOptions = url
                    .parse()
                    .map_err(|_| ReplayStoreError::new("the PostgreSQL URL cannot be read"))?;
                let statement_ms = self.timeout.as_millis().max(1).to_string();
                let options = options.options([("statement_timeout", statement_ms.as_str())]);
                PgPoolOptions::new()
                    .max_connections(self.max_connections)
                    .acquire_timeout(self.timeout)
                    .connect_lazy_with(options)
            }
        };
        let inner = Arc::new(Inner {
            pool,
            sql: Statements::for_table(&self.table),
            table: self.table,
            timeout: self.timeout,
            in_flight_ttl: self.in_flight_ttl,
            latest_now: AtomicU64::new(0),
        });
        let store = PostgresReplayStore { inner };
        let check = async {
            if self.create_table {
                store.create_table().await
            } else {
                store.check_table().await
            }
        };
        tokio::time::timeout(self.timeout.max(Duration::from_secs(5)), check)
            .await
            .map_err(|_| ReplayStoreError::new("PostgreSQL did not answer in time"))??;
        spawn_pruning(Arc::downgrade(&store.inner), self.prune_every);
        Ok(store)
    }
}

impl fmt::Debug for PostgresStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A URL may carry a password: not shown.
        f.debug_struct("PostgresStoreBuilder")
            .field("table", &self.table)
            .field("timeout", &self.timeout)
            .field("in_flight_ttl", &self.in_flight_ttl)
            .field("create_table", &self.create_table)
            .finish_non_exhaustive()
    }
}

/// A name that can be written into the statements as it is (no quoting, no injection).
fn check_table_name(table: &str) -> Result<(), ReplayStoreError> {
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 63
            && p.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    let parts: Vec<&str> = table.split('.').collect();
    if parts.len() <= 2 && parts.iter().all(|p| part_ok(p)) {
        Ok(())
    } else {
        Err(ReplayStoreError::new(format!(
            "{table:?} is not a table name this store accepts (lower-case letters, digits, _)"
        )))
    }
}

/// Removes expired rows every `every`, until the last handle of the store is gone.
fn spawn_pruning(inner: Weak<Inner>, every: Duration) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(inner) = inner.upgrade() else {
                return;
            };
            let store = PostgresReplayStore { inner };
            // A failed round is tried again at the next one.
            let _ = store.prune().await;
        }
    });
}

impl PostgresReplayStore {
    /// Connects with the default settings; see [`builder`](Self::builder).
    pub async fn connect(url: &str) -> Result<Self, ReplayStoreError> {
        Self::builder(url).connect().await
    }

    /// Starts configuring a store that opens its own pool to `url`
    /// (`postgres://user:password@host:port/database`).
    pub fn builder(url: &str) -> PostgresStoreBuilder {
        Self::with_source(Source::Url(url.to_owned()))
    }

    /// Starts configuring a store on the app's own pool (its size and timeouts are the
    /// pool's; the store still bounds each operation by its [timeout](PostgresStoreBuilder::timeout)).
    pub fn from_pool(pool: PgPool) -> PostgresStoreBuilder {
        Self::with_source(Source::Pool(pool))
    }

    fn with_source(source: Source) -> PostgresStoreBuilder {
        PostgresStoreBuilder {
            source,
            table: DEFAULT_TABLE.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            in_flight_ttl: DEFAULT_IN_FLIGHT_TTL,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            create_table: true,
            prune_every: DEFAULT_PRUNE_EVERY,
        }
    }

    /// The SQL that creates `table` and its expiry index (what [`connect`](PostgresStoreBuilder::connect)
    /// runs unless told not to), for a migration of your own.
    pub fn migration(table: &str) -> String {
        let index = table.replace('.', "_");
        format!(
            "CREATE TABLE IF NOT EXISTS {table} (\n\
             \x20   api_key      text   NOT NULL,\n\
             \x20   jti          text   NOT NULL,\n\
             \x20   owner        bigint,           -- the request holding it; NULL once delivered\n\
             \x20   delivered_at bigint,           -- Unix seconds; NULL while in flight\n\
             \x20   expires_at   bigint NOT NULL,  -- Unix seconds: the in-flight TTL, then the token's retention\n\
             \x20   PRIMARY KEY (api_key, jti)\n\
             );\n\
             CREATE INDEX IF NOT EXISTS {index}_expires_at ON {table} (expires_at);\n"
        )
    }

    /// The pool the store uses: the one a handler's transaction for
    /// [`mark_delivered`](Self::mark_delivered) can come from. A pool the store opened itself
    /// gives its connections the store's timeout as `statement_timeout`; a handler with longer
    /// statements should build the store [`from_pool`](Self::from_pool) on its own pool.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The table the window is kept in.
    pub fn table(&self) -> &str {
        &self.inner.table
    }

    /// Lifetime of an in-flight reservation.
    pub fn in_flight_ttl(&self) -> Duration {
        self.inner.in_flight_ttl
    }

    /// Marks `lease`'s callback delivered through `executor`, typically the handler's own
    /// transaction (`&mut *tx`): committed with the handler's writes, rolled back with them.
    /// The layer's own mark after the 2xx then finds the work done. Any reservation still holds
    /// the row until the transaction ends, so no other instance can run the same callback
    /// meanwhile.
    ///
    /// ```no_run
    /// # #[cfg(feature = "axum")]
    /// # mod app {
    /// use axum::{extract::State, Extension};
    /// use http::StatusCode;
    /// use vonage_secure_callbacks::replay::{Lease, PostgresReplayStore};
    /// use vonage_secure_callbacks::VonageClaims;
    ///
    /// async fn on_callback(
    ///     State(store): State<PostgresReplayStore>,
    ///     Extension(lease): Extension<Lease>,
    ///     claims: VonageClaims,
    /// ) -> Result<StatusCode, StatusCode> {
    ///     let fail = |_| StatusCode::SERVICE_UNAVAILABLE; // Vonage retries a 5xx
    ///     let mut tx = store.pool().begin().await.map_err(fail)?;
    ///     sqlx::query("INSERT INTO events (jti) VALUES ($1)")
    ///         .bind(claims.jti())
    ///         .execute(&mut *tx)
    ///         .await
    ///         .map_err(fail)?;
    ///     store.mark_delivered(&mut *tx, &lease).await.map_err(fail)?;
    ///     tx.commit().await.map_err(fail)?;
    ///     Ok(StatusCode::OK)
    /// }
    /// # }
    /// ```
    pub async fn mark_delivered<'e, E>(&self, executor: E, lease: &Lease) -> Result<(), sqlx::Error>
    where
        E: sqlx::PgExecutor<'e>,
    {
        let (api_key, jti, at, until) = delivery(lease);
        sqlx::query(&self.inner.sql.deliver)
            .bind(api_key)
            .bind(jti)
            .bind(at)
            .bind(until)
            .execute(executor)
            .await?;
        Ok(())
    }

    /// Removes expired rows now, in batches of a thousand; returns how many went.
    pub async fn prune(&self) -> Result<u64, ReplayStoreError> {
        let now = self.inner.latest_now.load(Ordering::Relaxed);
        if now == 0 {
            return Ok(0);
        }
        let mut removed = 0;
        for _ in 0..PRUNE_BATCHES {
            let done = self
                .bounded(|inner| async move {
                    sqlx::query(&inner.sql.prune)
                        .bind(secs(now))
                        .bind(PRUNE_BATCH)
                        .execute(&inner.pool)
                        .await
                        .map(|r| r.rows_affected())
                })
                .await?;
            removed += done;
            if done < PRUNE_BATCH as u64 {
                break;
            }
        }
        Ok(removed)
    }

    async fn create_table(&self) -> Result<(), ReplayStoreError> {
        let mut tx = self.inner.pool.begin().await.map_err(store_error)?;
        // Two instances starting at once would race on the catalogue: one at a time.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(&self.inner.table)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        sqlx::raw_sql(&Self::migration(&self.inner.table))
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        self.check_table().await
    }

    async fn check_table(&self) -> Result<(), ReplayStoreError> {
        let probe = format!(
            "SELECT api_key, jti, owner, delivered_at, expires_at FROM {} LIMIT 0",
            self.inner.table
        );
        sqlx::query(&probe)
            .execute(&self.inner.pool)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01") => {
                    ReplayStoreError::new(format!(
                        "table {} does not exist: run PostgresReplayStore::migration or let the \
                         store create it",
                        self.inner.table
                    ))
                }
                _ => store_error(e),
            })?;
        Ok(())
    }

    /// Runs `op` on the store's state within the timeout.
    fn bounded<T, F, Fut>(&self, op: F) -> BoxFuture<T>
    where
        F: FnOnce(Arc<Inner>) -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>> + Send + 'static,
        T: Send + 'static,
    {
        let timeout = self.inner.timeout;
        let op = op(Arc::clone(&self.inner));
        Box::pin(async move {
            tokio::time::timeout(timeout, op)
                .await
                .map_err(|_| ReplayStoreError::new("PostgreSQL did not answer in time"))?
                .map_err(store_error)
        })
    }

    fn saw(&self, now: u64) {
        self.inner.latest_now.fetch_max(now, Ordering::Relaxed);
    }
}

/// The delivery row's values: key, `delivered_at`, retained until.
fn delivery(lease: &Lease) -> (String, String, i64, i64) {
    let attempt = lease.attempt();
    (
        attempt.key().api_key().to_owned(),
        attempt.key().jti().to_owned(),
        secs(attempt.now()),
        secs(attempt.retention().until()),
    )
}

/// Unix seconds as PostgreSQL's `bigint`.
fn secs(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// The owner token as `bigint` (the same 64 bits).
fn owner(lease: &Lease) -> i64 {
    i64::from_ne_bytes(lease.owner().to_ne_bytes())
}

fn store_error(err: sqlx::Error) -> ReplayStoreError {
    // The category only: a database error can quote a statement's values, and so a key.
    let what = match &err {
        sqlx::Error::PoolTimedOut => "no connection free in the pool within the timeout".into(),
        sqlx::Error::PoolClosed => "the pool is closed".into(),
        // What the socket or TLS said (a refused connection, an unknown certificate issuer):
        // no statement, no value.
        sqlx::Error::Io(e) => format!("cannot reach PostgreSQL ({e})"),
        sqlx::Error::Tls(e) => format!("TLS with PostgreSQL failed ({e})"),
        sqlx::Error::Protocol(_) => "a PostgreSQL protocol error".into(),
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("PostgreSQL error {code}"),
            None => "a PostgreSQL error".into(),
        },
        _ => "a PostgreSQL client error".into(),
    };
    ReplayStoreError::new(what)
}

impl ReplayStore for PostgresReplayStore {
    type LookupFuture = BoxFuture<Lookup>;
    type ReserveFuture = BoxFuture<Reservation>;
    type SettleFuture = BoxFuture<()>;

    const LEASE_FOR_HANDLER: bool = true;

    fn lookup(&self, attempt: &Attempt) -> Self::LookupFuture {
        let (api_key, jti) = (attempt.key().api_key(), attempt.key().jti());
        let (api_key, jti, now) = (api_key.to_owned(), jti.to_owned(), secs(attempt.now()));
        self.bounded(|inner| async move {
            let row = sqlx::query(&inner.sql.lookup)
                .bind(api_key)
                .bind(jti)
                .bind(now)
                .fetch_optional(&inner.pool)
                .await?;
            Ok(match row {
                Some(row) => Lookup::Delivered {
                    at: row
                        .try_get::<i64, _>(0)
                        .ok()
                        .and_then(|t| u64::try_from(t).ok()),
                },
                None => Lookup::Unknown,
            })
        })
    }

    fn reserve(&self, attempt: Attempt) -> Self::ReserveFuture {
        self.saw(attempt.now());
        let ttl = self.inner.in_flight_ttl.as_secs().max(1);
        let lease = Lease::new(attempt);
        let key = lease.key();
        let (api_key, jti) = (key.api_key().to_owned(), key.jti().to_owned());
        let now = lease.attempt().now();
        let (owner, now, until) = (owner(&lease), secs(now), secs(now.saturating_add(ttl)));
        self.bounded(move |inner| async move {
            let row = sqlx::query(&inner.sql.reserve)
                .bind(api_key)
                .bind(jti)
                .bind(owner)
                .bind(until)
                .bind(now)
                .fetch_one(&inner.pool)
                .await?;
            let taken: Option<i64> = row.try_get("taken")?;
            let delivered_at: Option<i64> = row.try_get("delivered_at")?;
            Ok(match (taken, delivered_at) {
                (Some(_), _) => Reservation::Reserved(lease),
                (None, Some(at)) => Reservation::AlreadyDone {
                    at: u64::try_from(at).ok(),
                },
                // Held by a request in flight (or, had it just been removed, the retry that
                // the 503 brings finds it free).
                (None, None) => Reservation::InFlight,
            })
        })
    }

    fn settle(&self, lease: &Lease, outcome: Outcome) -> Self::SettleFuture {
        match outcome {
            Outcome::Delivered => {
                let (api_key, jti, at, until) = delivery(lease);
                self.bounded(move |inner| async move {
                    sqlx::query(&inner.sql.deliver)
                        .bind(api_key)
                        .bind(jti)
                        .bind(at)
                        .bind(until)
                        .execute(&inner.pool)
                        .await?;
                    Ok(())
                })
            }
            Outcome::NotDelivered => {
                let key = lease.key();
                let (api_key, jti) = (key.api_key().to_owned(), key.jti().to_owned());
                let owner = owner(lease);
                self.bounded(move |inner| async move {
                    sqlx::query(&inner.sql.release)
                        .bind(api_key)
                        .bind(jti)
                        .bind(owner)
                        .execute(&inner.pool)
                        .await?;
                    Ok(())
                })
            }
        }
    }

    fn settle_detached(&self, lease: Lease, outcome: Outcome) {
        let within = self.inner.in_flight_ttl;
        super::retry::settle_in_background(self.clone(), lease, outcome, within, "PostgreSQL");
    }
}

impl fmt::Debug for PostgresReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresReplayStore")
            .field("table", &self.inner.table)
            .field("timeout", &self.inner.timeout)
            .field("in_flight_ttl", &self.inner.in_flight_ttl)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_plain_identifiers() {
        for ok in ["vonage_replay", "app.replay_window", "_t1"] {
            assert!(check_table_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Replay",
            "a;drop table x",
            "a.b.c",
            "1abc",
            "a-b",
            "a b",
            "\"q\"",
        ] {
            assert!(check_table_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_migration_names_the_table_and_its_index() {
        let sql = PostgresReplayStore::migration("app.replay");
        assert!(sql.contains("CREATE TABLE IF NOT EXISTS app.replay ("));
        assert!(sql.contains("CREATE INDEX IF NOT EXISTS app_replay_expires_at ON app.replay"));
    }

    #[test]
    fn owners_keep_all_64_bits() {
        let lease = Lease::new(Attempt::new(
            super::super::ReplayKey::new("k", "j"),
            1,
            1,
            super::super::Retention::new(2, 1),
        ));
        let back = u64::from_ne_bytes(owner(&lease).to_ne_bytes());
        assert_eq!(back, lease.owner());
    }
}
