//! The least a hyper-based hop can do: each client connection served by hyper's HTTP/1 server
//! and paired with one upstream connection of hyper's HTTP/1 client, requests and answers
//! streamed through unchanged, with no verification, timeout, log or metric. What it costs is
//! the floor under any proxy built on hyper and tokio, the verifying proxy among them.

use std::sync::{Arc, Mutex};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// Listens on `127.0.0.1:port` and forwards to `127.0.0.1:upstream` until killed, on one
/// thread, as the proxy and nginx each run on one.
pub fn run(port: u16, upstream: u16) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        loop {
            let Ok((client, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let _ = client.set_nodelay(true);
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    return;
                };
                let _ = upstream.set_nodelay(true);
                let Ok((sender, connection)) =
                    hyper::client::conn::http1::handshake(TokioIo::new(upstream)).await
                else {
                    return;
                };
                tokio::spawn(connection);
                // hyper's server asks for one answer at a time on a connection, so the lock is
                // never contended; it only satisfies `Service::call(&self)`.
                let sender = Arc::new(Mutex::new(sender));
                let service = hyper::service::service_fn(move |request| {
                    forward(Arc::clone(&sender), request)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(client), service)
                    .await;
            });
        }
    });
}

async fn forward(
    sender: Arc<Mutex<SendRequest<Incoming>>>,
    request: Request<Incoming>,
) -> Result<Response<Incoming>, hyper::Error> {
    std::future::poll_fn(|cx| sender.lock().unwrap().poll_ready(cx)).await?;
    let sent = sender.lock().unwrap().send_request(request);
    sent.await
}
