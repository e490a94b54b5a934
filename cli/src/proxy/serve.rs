//! The public listener: each connection served by hyper's HTTP/1.1 server, over TLS when
//! configured, behind a graceful-shutdown watcher; each request goes to the verifying service
//! of its path. No router: the proxy has one decision to make per request, and hyper's own
//! connection is the cheapest way to serve it.

use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::util::Oneshot;
use tower::ServiceExt;
use vonage_secure_callbacks::replay::ReplayStore;
use vonage_secure_callbacks::SecureCallbackService;

use super::forward::Forward;
use super::idle::{Activity, Tracked, Watchdog};

/// How long things may take.
#[derive(Clone, Copy)]
pub struct Timeouts {
    /// How long a connection may go with no request in flight and none begun or ended (one
    /// that trickles a head, sends nothing, or sits kept-alive); then it is closed, so that idle
    /// or slow clients cannot hold the proxy's sockets. Kept to within a quarter of itself.
    pub head: Duration,
    /// For connections to finish once the proxy is told to stop.
    pub shutdown: Duration,
}

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The library's layer over the forwarder: what serves each request.
pub type Verifying<R> = SecureCallbackService<Forward, R>;

/// The verifying service of each path: the SMS scheme's on the paths given, the JWT scheme's on
/// every other.
pub struct Paths<R> {
    sms: Vec<(String, Verifying<R>)>,
    jwt: Verifying<R>,
}

impl<R> Paths<R> {
    pub fn new(jwt: Verifying<R>, sms: Vec<(String, Verifying<R>)>) -> Self {
        Self { sms, jwt }
    }
}

/// Each connection's handle on the paths' services, and what its requests have done.
struct Connection<R> {
    paths: Arc<Paths<R>>,
    activity: Activity,
}

impl<R: ReplayStore> hyper::service::Service<Request<Incoming>> for Connection<R> {
    type Response = <Verifying<R> as tower::Service<Request<Incoming>>>::Response;
    type Error = <Verifying<R> as tower::Service<Request<Incoming>>>::Error;
    type Future = Tracked<Oneshot<Verifying<R>, Request<Incoming>>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let paths = &self.paths;
        let service = paths
            .sms
            .iter()
            .find(|(path, _)| path == request.uri().path())
            .map_or(&paths.jwt, |(_, service)| service);
        // Readied, then called: the tower contract, at the cost of one clone of a few `Arc`s.
        self.activity.track(service.clone().oneshot(request))
    }
}

/// Serves `paths` until `stop` says so, then lets connections finish within the shutdown
/// timeout. Returns whether they all did.
pub async fn serve<R: ReplayStore>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    paths: Paths<R>,
    mut stop: watch::Receiver<bool>,
    timeouts: Timeouts,
) -> bool {
    let paths = Arc::new(paths);
    let graceful = GracefulShutdown::new();
    let watchdog = Watchdog::default();
    let closing_quiet = tokio::spawn(watchdog.clone().close_quiet(timeouts.head));
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // A failed accept (out of descriptors, say) must not end the server, nor spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        // Answers are single writes: Nagle's wait would only delay them.
        let _ = tcp.set_nodelay(true);
        let activity = Activity::default();
        let service = Connection {
            paths: Arc::clone(&paths),
            activity: activity.clone(),
        };
        let watcher = graceful.watcher();
        let task = match &tls {
            None => tokio::spawn(connection(TokioIo::new(tcp), service, watcher)),
            Some(acceptor) => {
                let handshake = acceptor.accept(tcp);
                tokio::spawn(async move {
                    // A client that fails or stalls the handshake is simply gone.
                    if let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                        connection(TokioIo::new(tls), service, watcher).await;
                    }
                })
            }
        };
        watchdog.watch(&activity, task.abort_handle());
    }
    drop(listener);
    // Quiet connections are still closed meanwhile: that only speeds the shutdown.
    let finished = tokio::time::timeout(timeouts.shutdown, graceful.shutdown())
        .await
        .is_ok();
    closing_quiet.abort();
    finished
}

/// One client connection, until it closes or is closed: by the shutdown, or by the watchdog
/// once quiet for the head timeout (its task aborted; quiet means nothing in flight, so that
/// cuts no callback short).
async fn connection<I, R>(io: I, service: Connection<R>, watcher: Watcher)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    R: ReplayStore,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    // No timer for hyper: the head timeout is the watchdog's.
    builder.header_read_timeout(None);
    // A connection's end (a client gone, a reset) is no error of the proxy's.
    let _ = watcher.watch(builder.serve_connection(io, service)).await;
}
