//! `proxy`: a verifying reverse proxy, so that an app in any language gets the layer's whole
//! protection. Each request runs through the library's layer (JWT, or the SMS `sig` scheme on
//! the paths given), and only a verified one is forwarded, byte for byte, with what was verified
//! in `X-Vonage-*` headers. The upstream's answer goes back unchanged, and decides delivery: the
//! `jti` is burnt only on its 2xx.

mod admin;
mod body_deadline;
mod detach;
mod exchange;
#[cfg(test)]
mod exchange_vs_hyper;
mod forward;
mod gate;
mod headers;
mod log;
mod pool;
mod serve;
mod target;
mod tls;
mod upkeep;
mod upstream;

use std::net::SocketAddr;
use std::time::Duration;

use http::Uri;
use tower::Layer;
use vonage_secure_callbacks::replay::{ReplayStore, SqliteReplayStore};
use vonage_secure_callbacks::sms::{SignatureMethod, SmsVerifier};
use vonage_secure_callbacks::{CallbackVerifier, MemoryReplayStore, SecureCallbackLayer};

use crate::keys::KeyArgs;
use crate::Error;
use forward::Forward;

/// How the proxy runs: flags, each with an environment variable.
#[derive(clap::Args)]
pub struct ProxyArgs {
    /// Where Vonage's callbacks arrive. The default is loopback, which only this host can
    /// reach: give 0.0.0.0:8080 to take Vonage's callbacks directly.
    #[arg(
        long,
        env = "VONAGE_PROXY_LISTEN",
        hide_env_values = true,
        default_value = "127.0.0.1:8080"
    )]
    listen: SocketAddr,
    /// Where verified callbacks go (http://host:port, with an optional path prefix).
    #[arg(long, env = "VONAGE_PROXY_UPSTREAM", hide_env_values = true)]
    upstream: Uri,
    /// The admin listener (/healthz, /metrics), apart from the public one.
    #[arg(
        long,
        env = "VONAGE_PROXY_ADMIN_LISTEN",
        hide_env_values = true,
        default_value = "127.0.0.1:9090"
    )]
    admin_listen: SocketAddr,
    /// A path served with the SMS `sig` scheme, as PATH=METHOD (`/vonage/sms=sha256`);
    /// repeatable. Every other path uses the JWT scheme.
    #[arg(
        long,
        env = "VONAGE_PROXY_SMS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    sms: Vec<String>,
    /// Where delivered callbacks are remembered: memory, sqlite:PATH or redis://… .
    #[arg(
        long,
        env = "VONAGE_REPLAY_STORE",
        hide_env_values = true,
        default_value = "sqlite:replay-window.sqlite3"
    )]
    replay_store: String,
    /// Largest body accepted, in bytes: a callback's, and the upstream's answer (a longer
    /// answer is 502, and Vonage retries).
    #[arg(long, env = "VONAGE_PROXY_BODY_LIMIT", hide_env_values = true, default_value_t = 1024 * 1024)]
    body_limit: usize,
    /// How long the upstream may take to answer, in seconds (then 504; Vonage retries). A
    /// callback's reservation lives this long and 5 s more, so that after a crash Vonage's
    /// retries get through within seconds.
    #[arg(
        long,
        env = "VONAGE_PROXY_UPSTREAM_TIMEOUT",
        hide_env_values = true,
        default_value_t = 10
    )]
    upstream_timeout: u64,
    /// How long callbacks in flight may take to finish after SIGTERM or SIGINT, in seconds.
    #[arg(
        long,
        env = "VONAGE_PROXY_SHUTDOWN_TIMEOUT",
        hide_env_values = true,
        default_value_t = 20
    )]
    shutdown_timeout: u64,
    /// How long a client may take to send a request's head, and a kept-alive connection may
    /// sit idle, in seconds: then the connection is closed.
    #[arg(
        long,
        env = "VONAGE_PROXY_HEAD_TIMEOUT",
        hide_env_values = true,
        default_value_t = 30
    )]
    head_timeout: u64,
    /// How long a client may take to send a request's body once its head is in, in seconds:
    /// then it is refused 400 `body_read_error` and its connection closed, however the bytes
    /// are paced. Vonage expects an answer within 5 s, so a body still arriving later is not
    /// one it waits on.
    #[arg(
        long,
        env = "VONAGE_PROXY_BODY_TIMEOUT",
        hide_env_values = true,
        default_value_t = 5
    )]
    body_timeout: u64,
    /// Most client connections open at once; one more is answered 503 (Vonage retries) and
    /// closed. Memory for bodies is bounded by this times --body-limit.
    #[arg(
        long,
        env = "VONAGE_PROXY_MAX_CONNECTIONS",
        hide_env_values = true,
        default_value_t = 512
    )]
    max_connections: usize,
    /// Verify GET requests' `payload_hash` against their query parameters as compact JSON, as
    /// Voice's answer webhook signs them, instead of against the empty body.
    #[arg(long, env = "VONAGE_PROXY_VERIFY_GET_QUERY", hide_env_values = true)]
    verify_get_query: bool,
    /// Forward the `Authorization` header too (dropped by default: the upstream has the
    /// verified facts, and a token it might log is a replayable callback elsewhere).
    #[arg(long, env = "VONAGE_PROXY_KEEP_AUTHORIZATION", hide_env_values = true)]
    keep_authorization: bool,
    /// Terminate TLS (HTTP/1.1) on the public listener with this certificate chain (PEM, leaf
    /// first); with --tls-key.
    #[arg(
        long,
        env = "VONAGE_PROXY_TLS_CERT",
        hide_env_values = true,
        value_name = "FILE",
        requires = "tls_key"
    )]
    tls_cert: Option<std::path::PathBuf>,
    /// The certificate's private key (PEM); with --tls-cert.
    #[arg(
        long,
        env = "VONAGE_PROXY_TLS_KEY",
        hide_env_values = true,
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_key: Option<std::path::PathBuf>,
    /// Threads serving callbacks. One (the default) serves tens of thousands a second at the
    /// least CPU per callback; more spread the load over cores, each callback then costing more
    /// (its halves may run on different threads).
    #[arg(
        long,
        env = "VONAGE_PROXY_WORKERS",
        hide_env_values = true,
        default_value_t = 1
    )]
    workers: usize,
    /// Log one JSON object per line instead of text. Lines go to stderr, written by a thread of
    /// their own.
    #[arg(long, env = "VONAGE_PROXY_JSON_LOGS", hide_env_values = true)]
    json_logs: bool,
    #[command(flatten)]
    key: KeyArgs,
}

/// An SMS path and its method, from `PATH=METHOD`.
fn sms_path(setting: &str) -> Result<(String, SignatureMethod), Error> {
    let (path, method) = setting
        .split_once('=')
        .ok_or_else(|| format!("--sms {setting:?}: give PATH=METHOD, e.g. /vonage/sms=sha256"))?;
    if !path.starts_with('/') {
        return Err(format!("--sms {setting:?}: the path must start with /").into());
    }
    Ok((
        path.to_owned(),
        method.parse().map_err(|err| format!("--sms: {err}"))?,
    ))
}

pub fn run(args: ProxyArgs) -> Result<bool, Error> {
    // Checked here, before anything starts: a bad --upstream stops the proxy naming it.
    let upstream_timeout = Duration::from_secs(args.upstream_timeout);
    let forward = Forward::new(
        &args.upstream,
        upstream_timeout,
        args.body_limit,
        args.keep_authorization,
    )?;
    let sms: Vec<(String, SignatureMethod)> = args
        .sms
        .iter()
        .map(|s| sms_path(s))
        .collect::<Result<_, _>>()?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => None,
    };
    for (setting, value) in [
        ("--head-timeout", args.head_timeout),
        ("--body-timeout", args.body_timeout),
        ("--upstream-timeout", args.upstream_timeout),
    ] {
        if value == 0 {
            return Err(format!("{setting} must be at least 1 (second)").into());
        }
    }
    if args.max_connections == 0 {
        return Err("--max-connections must be at least 1".into());
    }
    let secrets = args.key.secrets()?;
    let runtime = match args.workers {
        0 => return Err("--workers must be at least 1".into()),
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?,
    };
    // Logs on stderr (stdout says where the proxy listens); the last lines are written when
    // the guard goes, at exit.
    let _log = log::init(args.json_logs);
    // A reservation outlives its exchange only by this margin: after a crash, Vonage's retries
    // get through once it passes.
    let in_flight_ttl = upstream_timeout + IN_FLIGHT_MARGIN;
    runtime.block_on(async {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .map_err(|err| format!("metrics: {err}"))?;
        upkeep::drain_every(recorder.clone(), upkeep::PERIOD)?;
        vonage_secure_callbacks::metrics::describe();
        let setting = args.replay_store.clone();
        let setup = Setup {
            args,
            forward,
            secrets,
            sms,
            tls,
            recorder,
            store: describe_store(&setting),
        };
        match setting.as_str() {
            "memory" => {
                let store = MemoryReplayStore::builder()
                    .in_flight_ttl(in_flight_ttl)
                    .build();
                serve(setup, store).await
            }
            s if s.starts_with("sqlite:") => {
                let store = SqliteReplayStore::builder(&s["sqlite:".len()..])
                    .in_flight_ttl(in_flight_ttl)
                    .open()
                    .map_err(|err| format!("--replay-store: {err}"))?;
                serve(setup, store).await
            }
            #[cfg(feature = "redis")]
            s if s.starts_with("redis://") || s.starts_with("rediss://") => {
                let store = vonage_secure_callbacks::replay::RedisReplayStore::builder(s)
                    .in_flight_ttl(in_flight_ttl)
                    .connect()
                    .await
                    .map_err(|err| format!("--replay-store: {err}"))?;
                serve(setup, store).await
            }
            #[cfg(not(feature = "redis"))]
            s if s.starts_with("redis://") || s.starts_with("rediss://") => Err(
                "--replay-store: this build has no Redis store (cargo install vonage-callbacks --features redis)"
                    .into(),
            ),
            _ => Err("--replay-store must be memory, sqlite:PATH or redis://…".into()),
        }
    })
}

/// How much longer than the upstream timeout a reservation lives: room for the replay store's
/// own calls around the exchange.
const IN_FLIGHT_MARGIN: Duration = Duration::from_secs(5);

/// The replay store as the start line names it: where it keeps the window, and for how long,
/// never a password.
fn describe_store(setting: &str) -> String {
    if let Some(path) = setting.strip_prefix("sqlite:") {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.into());
        return format!("sqlite:{} (kept across restarts)", path.display());
    }
    if let Some((scheme, rest)) = setting.split_once("://") {
        let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        return format!("{scheme}://{host} (shared by every instance that uses it)");
    }
    format!("{setting} (this process only: a restart forgets which callbacks were delivered)")
}

/// What the proxy runs with, once the configuration was read.
struct Setup {
    args: ProxyArgs,
    forward: Forward,
    secrets: vonage_secure_callbacks::Secrets,
    sms: Vec<(String, SignatureMethod)>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    recorder: metrics_exporter_prometheus::PrometheusHandle,
    /// The replay store, as the start lines name it.
    store: String,
}

async fn serve<R: ReplayStore>(setup: Setup, store: R) -> Result<bool, Error> {
    let Setup {
        args,
        forward,
        secrets,
        sms,
        tls,
        recorder,
        store: store_said,
    } = setup;
    let mut jwt = CallbackVerifier::new(secrets.clone()).body_limit(args.body_limit);
    if args.verify_get_query {
        jwt = jwt.verify_get_query();
    }
    let jwt = SecureCallbackLayer::new(jwt).replay_store(store.clone());
    let sms_services = sms
        .iter()
        .map(|(path, method)| {
            let verifier = SmsVerifier::new(secrets.clone(), *method).body_limit(args.body_limit);
            let layer = SecureCallbackLayer::sms(verifier).replay_store(store.clone());
            (path.clone(), layer.layer(forward.clone()))
        })
        .collect();
    let gate = gate::Gate::new(
        jwt.layer(forward),
        sms_services,
        Duration::from_secs(args.body_timeout),
    );
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let admin_listener = tokio::net::TcpListener::bind(args.admin_listen).await?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!(
        "proxy: listening on {scheme}://{}, forwarding verified callbacks to {}; admin on http://{}",
        listener.local_addr()?,
        args.upstream,
        admin_listener.local_addr()?
    );
    if args.listen.ip().is_loopback() {
        println!(
            "proxy: {} is a loopback address: Vonage cannot reach it; give --listen \
             0.0.0.0:8080 (VONAGE_PROXY_LISTEN) to take callbacks from outside this host",
            args.listen.ip()
        );
    }
    println!("proxy: replay store {store_said}");
    for api_key in secrets.api_keys() {
        let labels: Vec<String> = secrets
            .secrets_for(api_key)
            .iter()
            .enumerate()
            .map(|(i, secret)| {
                // As X-Vonage-Secret names it: the label, else `#` and its position.
                secret
                    .label()
                    .map_or_else(|| format!("#{i}"), str::to_owned)
            })
            .collect();
        println!("proxy: api key {api_key}, secrets {}", labels.join(", "));
    }
    for (path, method) in &sms {
        println!("proxy: {path} verified as SMS ({method})");
    }
    let admin = admin::router(store, recorder);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let admin_task = tokio::spawn({
        let mut stopped = stopped.clone();
        async move {
            let shutdown = async move {
                let _ = stopped.changed().await;
            };
            axum::serve(admin_listener, admin)
                .with_graceful_shutdown(shutdown)
                .await
        }
    });
    let bounds = serve::Bounds {
        head: Duration::from_secs(args.head_timeout),
        max_connections: args.max_connections,
        // In-flight callbacks finish (and settle) within this bound.
        shutdown: Duration::from_secs(args.shutdown_timeout),
    };
    let server = tokio::spawn(serve::serve(listener, tls, gate, stopped, bounds));
    signal().await;
    tracing::info!(target: "vonage_callbacks::proxy", "stopping: no new connections; finishing callbacks in flight");
    let _ = stop.send(true);
    let finished = server.await.unwrap_or(false);
    let _ = admin_task.await;
    if !finished {
        tracing::warn!(target: "vonage_callbacks::proxy", "callbacks still in flight after the shutdown timeout: their reservations expire with the in-flight TTL");
    }
    Ok(true)
}

/// SIGTERM or SIGINT.
async fn signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler can be installed");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
