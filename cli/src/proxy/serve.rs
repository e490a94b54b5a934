//! The public listener: at most `max_connections` connections at once (one more is answered 503
//! and closed), each served by hyper's HTTP/1.1 server, over TLS when configured, behind a
//! graceful-shutdown watcher. hyper's header timeout bounds the wait for each request's head,
//! the idle time between kept-alive requests included; the gate bounds the body.

use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;
use vonage_secure_callbacks::replay::ReplayStore;

use super::forward::TARGET;
use super::gate::Gate;

/// Counted for each connection refused because `max_connections` were open.
pub const CONNECTIONS_REFUSED: &str = "vonage_proxy_connections_refused_total";
/// The public connections open now.
pub const CONNECTIONS_OPEN: &str = "vonage_proxy_connections_open";

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The answer to a connection over the limit: Vonage retries a 503.
const TOO_MANY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\
Content-Type: application/json\r\nContent-Length: 32\r\nConnection: close\r\n\r\n\
{\"error\":\"too_many_connections\"}";

/// How the listener is bounded.
#[derive(Clone, Copy)]
pub struct Bounds {
    /// How long a client may take to send a request's head, and a kept-alive connection may
    /// sit idle.
    pub head: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// For connections and exchanges to finish once the proxy is told to stop.
    pub shutdown: Duration,
}

/// Serves `gate` until `stop` says so, then lets connections and exchanges finish within the
/// shutdown timeout. Returns whether they all did.
pub async fn serve<R: ReplayStore>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    gate: Gate<R>,
    mut stop: watch::Receiver<bool>,
    bounds: Bounds,
) -> bool {
    let gate = Arc::new(gate);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(bounds.max_connections));
    let open = metrics::gauge!(CONNECTIONS_OPEN);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                // A failed accept (out of descriptors, say) must not end the server, nor spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            refuse(tcp, tls.is_some());
            continue;
        };
        // Answers are single writes: Nagle's wait would only delay them.
        let _ = tcp.set_nodelay(true);
        let gate = Arc::clone(&gate);
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let open = open.clone();
        open.increment(1.0);
        tokio::spawn(async move {
            match tls {
                None => connection(TokioIo::new(tcp), gate, watcher, bounds.head).await,
                Some(acceptor) => {
                    let handshake = acceptor.accept(tcp);
                    // A client that fails or stalls the handshake is simply gone.
                    if let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                        connection(TokioIo::new(tls), gate, watcher, bounds.head).await;
                    }
                }
            }
            open.decrement(1.0);
            drop(slot);
        });
    }
    drop(listener);
    gate.exchanges().close();
    tokio::time::timeout(bounds.shutdown, async {
        graceful.shutdown().await;
        gate.exchanges().wait().await;
    })
    .await
    .is_ok()
}

/// Answers a connection over the limit with a 503 if its socket takes it at once (a plain
/// one), and closes it: nothing is read, and nothing waits on the client.
fn refuse(tcp: TcpStream, tls: bool) {
    metrics::counter!(CONNECTIONS_REFUSED).increment(1);
    tracing::warn!(target: TARGET, "connection refused: --max-connections are open");
    if !tls {
        let _ = tcp.try_write(TOO_MANY);
    }
}

/// One client connection, until it closes, is closed by the head timeout, or the shutdown.
async fn connection<I, R>(io: I, gate: Arc<Gate<R>>, watcher: Watcher, head: Duration)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    R: ReplayStore,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(head);
    let service = service_fn(move |request| {
        let gate = Arc::clone(&gate);
        async move { gate.handle(request).await }
    });
    // A connection's end (a client gone, a reset, a timeout) is no error of the proxy's.
    let _ = watcher.watch(builder.serve_connection(io, service)).await;
}
