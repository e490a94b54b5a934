//! TLS termination for the public listener, with rustls: a certificate chain and its key from
//! PEM files, read once at start (a bad file stops the proxy naming it). Each connection is
//! served by hyper (HTTP/1.1) behind a graceful-shutdown watcher, as `axum::serve` does for
//! plain HTTP.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::Error;

/// The server configuration of `cert` (a PEM chain, leaf first) and `key` (a PEM private key).
pub fn config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, Error> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| format!("--tls-cert {}: {err}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("--tls-cert {}: no certificate in it", cert.display()).into());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|err| format!("--tls-key {}: {err}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("TLS: {err}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|err| format!("--tls-cert/--tls-key: {err}"))?;
    // HTTP/1.1 only, as Vonage sends its callbacks: an HTTP/2 request refused before its body
    // was read ends in a stream reset that some clients report as an error.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves `app` over TLS until `stop` says so, then lets connections finish within `bound`.
/// Returns whether they all did.
pub async fn serve(
    listener: TcpListener,
    config: rustls::ServerConfig,
    app: Router,
    mut stop: watch::Receiver<bool>,
    bound: Duration,
) -> bool {
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // A failed accept (out of descriptors, say) must not end the server.
                Err(_) => continue,
            },
            _ = stop.changed() => break,
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(app.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // A client that fails the handshake is simply gone.
            let Ok(tls) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
            else {
                return;
            };
            let Ok(tls) = tls else {
                return;
            };
            let builder = Builder::new(TokioExecutor::new()).http1_only();
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            let _ = watcher.watch(connection.into_owned()).await;
        });
    }
    drop(listener);
    tokio::time::timeout(bound, graceful.shutdown())
        .await
        .is_ok()
}
