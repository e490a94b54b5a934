//! The upstream's kept-alive connections: each a hyper HTTP/1.1 client connection (hyper's
//! framing and parser), driven in the callback's own task while it exchanges (no task of its
//! own to hand each request to and each answer back from), and kept idle in a short list
//! between callbacks. One address, so no keys and no hashing: a lock around a `Vec`.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::Mutex;
use std::task::Poll;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Idle connections kept for reuse: a callback's exchange is short, so a few carry a steady
/// load.
const IDLE_CONNECTIONS: usize = 32;

/// Why no answer came.
pub enum Failure {
    /// No connection could be made, or it closed or reset before the answer.
    Unreachable,
    /// The answer was not HTTP/1.1 as hyper's parser reads it.
    Invalid,
}

/// One connection to the upstream: where requests go in, and the connection that carries them.
pub struct Upstream {
    sender: SendRequest<Full<Bytes>>,
    connection: http1::Connection<TokioIo<TcpStream>, Full<Bytes>>,
}

impl Upstream {
    /// Runs `future` (which waits on this connection) while driving the connection, until the
    /// future is done; a connection that ends first has failed it.
    pub async fn drive<T>(&mut self, future: impl Future<Output = T>) -> Result<T, Failure> {
        let mut future = pin!(future);
        let connection = &mut self.connection;
        poll_fn(|cx| {
            // The connection first: what it reads is then there for the future at once.
            let ended = Pin::new(&mut *connection).poll(cx);
            if let Poll::Ready(output) = future.as_mut().poll(cx) {
                return Poll::Ready(Ok(output));
            }
            match ended {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Err(err)) => Poll::Ready(Err(failure_of(&err))),
                Poll::Ready(Ok(())) => Poll::Ready(Err(Failure::Unreachable)),
            }
        })
        .await
    }

    /// Whether the connection is still open and idle, as far as what it has read shows.
    async fn is_open(&mut self) -> bool {
        let connection = &mut self.connection;
        let sender = &mut self.sender;
        poll_fn(|cx| {
            Poll::Ready(
                Pin::new(&mut *connection).poll(cx).is_pending()
                    && sender.poll_ready(cx).is_ready(),
            )
        })
        .await
            && self.sender.is_ready()
    }
}

pub struct Pool {
    /// `host:port`.
    addr: String,
    idle: Mutex<Vec<Upstream>>,
}

impl Pool {
    pub fn new(addr: String) -> Self {
        Self {
            addr,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends `request` on an idle connection, or a new one; the answer's head, and the
    /// connection, to drive while its body is read and to [`give_back`](Self::give_back) once
    /// it was read whole. A request that an idle connection closed before it was written is
    /// sent again on a new one: it never reached the upstream.
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<(Response<Incoming>, Upstream), Failure> {
        let mut upstream = match self.idle_upstream().await {
            Some(upstream) => upstream,
            None => self.connect().await?,
        };
        let sent = upstream.sender.try_send_request(request);
        let request = match upstream.drive(sent).await {
            Ok(Ok(answer)) => return Ok((answer, upstream)),
            Ok(Err(mut err)) => match err.take_message() {
                Some(unsent) => unsent,
                None => return Err(failure_of(err.error())),
            },
            Err(failure) => return Err(failure),
        };
        let mut upstream = self.connect().await?;
        let sent = upstream.sender.send_request(request);
        match upstream.drive(sent).await? {
            Ok(answer) => Ok((answer, upstream)),
            Err(err) => Err(failure_of(&err)),
        }
    }

    /// Keeps `upstream` for the next callback, if there is room.
    pub fn give_back(&self, upstream: Upstream) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE_CONNECTIONS {
            idle.push(upstream);
        }
    }

    /// The most recently used idle connection that is still open.
    async fn idle_upstream(&self) -> Option<Upstream> {
        loop {
            let mut upstream = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()?;
            if upstream.is_open().await {
                return Some(upstream);
            }
        }
    }

    /// A new connection (the caller's timeout bounds how long that may take).
    async fn connect(&self) -> Result<Upstream, Failure> {
        let tcp = TcpStream::connect(&self.addr)
            .await
            .map_err(|_| Failure::Unreachable)?;
        // Requests are single writes: Nagle's wait would only delay them.
        let _ = tcp.set_nodelay(true);
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(tcp))
            .await
            .map_err(|_| Failure::Unreachable)?;
        Ok(Upstream { sender, connection })
    }
}

/// An answer hyper could not parse is invalid; anything else left the upstream unreachable.
pub fn failure_of(err: &hyper::Error) -> Failure {
    if err.is_parse() || err.is_parse_status() || err.is_parse_too_large() {
        Failure::Invalid
    } else {
        Failure::Unreachable
    }
}
