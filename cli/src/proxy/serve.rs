//! The public listener: each connection served by hyper's HTTP/1.1 server, over TLS when
//! configured, behind a graceful-shutdown watcher; each request goes to the verifying service
//! of its path. No router: the proxy has one decision to make per request, and hyper's own
//! connection is the cheapest way to serve it.

use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::util::Oneshot;
use tower::ServiceExt;
use vonage_secure_callbacks::replay::ReplayStore;
use vonage_secure_callbacks::SecureCallbackService;

use super::forward::Forward;

/// How long things may take.
#[derive(Clone, Copy)]
pub struct Timeouts {
    /// For a client to send a request's head (kept-alive connections wait for the next head
    /// under it too); a connection that trickles one, or sends nothing, is closed, so that idle
    /// or slow clients cannot hold the proxy's sockets.
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

/// Each connection's handle on the paths' services.
struct Connection<R>(Arc<Paths<R>>);

impl<R: ReplayStore> hyper::service::Service<Request<Incoming>> for Connection<R> {
    type Response = <Verifying<R> as tower::Service<Request<Incoming>>>::Response;
    type Error = <Verifying<R> as tower::Service<Request<Incoming>>>::Error;
    type Future = Oneshot<Verifying<R>, Request<Incoming>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let paths = &self.0;
        let service = paths
            .sms
            .iter()
            .find(|(path, _)| path == request.uri().path())
            .map_or(&paths.jwt, |(_, service)| service);
        // Readied, then called: the tower contract, at the cost of one clone of a few `Arc`s.
        service.clone().oneshot(request)
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
        let service = Connection(Arc::clone(&paths));
        let watcher = graceful.watcher();
        match &tls {
            None => {
                tokio::spawn(connection(
                    TokioIo::new(tcp),
                    service,
                    watcher,
                    timeouts.head,
                ));
            }
            Some(acceptor) => {
                let handshake = acceptor.accept(tcp);
                tokio::spawn(async move {
                    // A client that fails or stalls the handshake is simply gone.
                    if let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                        connection(TokioIo::new(tls), service, watcher, timeouts.head).await;
                    }
                });
            }
        }
    }
    drop(listener);
    tokio::time::timeout(timeouts.shutdown, graceful.shutdown())
        .await
        .is_ok()
}

/// One client connection, until it closes (or is closed by the shutdown).
async fn connection<I, R>(io: I, service: Connection<R>, watcher: Watcher, head: Duration)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    R: ReplayStore,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(head);
    // A connection's end (a client gone, a reset) is no error of the proxy's.
    let _ = watcher.watch(builder.serve_connection(io, service)).await;
}
