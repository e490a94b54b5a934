//! Kept-alive HTTP/1.1 connections to the one upstream. A request takes an idle connection or
//! opens one, and gives it back only once the whole answer was read; a connection whose
//! exchange was cut short (a timeout, an error, an answer over the limit) is dropped, which
//! closes it. One host and no HTTP/2 make this much cheaper per callback than a general
//! client's pool.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// An upstream failure, for the 502's log line.
pub type PoolError = Box<dyn std::error::Error + Send + Sync>;

/// Idle connections kept at most; more are closed once their answer is read.
const MAX_IDLE: usize = 256;
/// An idle connection older than this is closed rather than reused: upstream servers close
/// theirs after a while, and a request must not race that close.
const IDLE_FOR: Duration = Duration::from_secs(30);

/// An answer whose body is longer than the limit: the upstream's fault, so a 502.
#[derive(Debug)]
pub struct AnswerTooLarge;

impl std::fmt::Display for AnswerTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the upstream's answer is longer than the body limit")
    }
}

impl std::error::Error for AnswerTooLarge {}

/// Connections to `authority` (`host:port`).
pub struct Pool {
    authority: String,
    /// The longest answer body read; a longer one is [`AnswerTooLarge`].
    answer_limit: usize,
    idle: Mutex<Vec<(SendRequest<Full<Bytes>>, Instant)>>,
}

impl Pool {
    pub fn new(authority: String, answer_limit: usize) -> Self {
        Self {
            authority,
            answer_limit,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends `request` (origin-form URI, with its Host header) and reads the whole answer.
    /// `now` is the caller's clock reading, taken just before: idle times are measured from it
    /// rather than from readings of their own. A connection given back is stamped with it, so
    /// its idle time is counted from before its exchange, never from after: it is closed early,
    /// never late.
    pub async fn send(
        &self,
        mut request: Request<Full<Bytes>>,
        now: Instant,
    ) -> Result<Response<Bytes>, PoolError> {
        // An idle connection the upstream closed meanwhile hands the request back unsent, and
        // the next one (or a new one) takes it. Once written, a request is never sent twice.
        while let Some(mut sender) = self.take(now) {
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(request).await {
                Ok(response) => return self.read(sender, response, now).await,
                Err(mut err) => match err.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(err.into_error().into()),
                },
            }
        }
        let mut sender = self.connect().await?;
        let response = sender.send_request(request).await?;
        self.read(sender, response, now).await
    }

    async fn read(
        &self,
        sender: SendRequest<Full<Bytes>>,
        response: Response<hyper::body::Incoming>,
        now: Instant,
    ) -> Result<Response<Bytes>, PoolError> {
        let (parts, body) = response.into_parts();
        // An error here drops `sender`: a connection with an answer unread is not kept.
        let body = whole(body, self.answer_limit).await?;
        self.give_back(sender, now);
        Ok(Response::from_parts(parts, body))
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, PoolError> {
        let stream = tokio::net::TcpStream::connect(self.authority.as_str()).await?;
        // Each callback is one small write: waiting to coalesce it only adds latency.
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        // The connection's own task reads and writes; it ends when the connection closes.
        tokio::spawn(connection);
        Ok(sender)
    }

    fn take(&self, now: Instant) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        // Newest first: the likeliest to be open still.
        while let Some((sender, since)) = idle.pop() {
            if !sender.is_closed() && now.saturating_duration_since(since) < IDLE_FOR {
                return Some(sender);
            }
        }
        None
    }

    fn give_back(&self, sender: SendRequest<Full<Bytes>>, now: Instant) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        // The oldest are at the bottom, where a quiet spell after a burst leaves them: close
        // those past their time rather than keep them (and the upstream's side) open.
        let stale = idle
            .iter()
            .take_while(|(_, since)| now.saturating_duration_since(*since) >= IDLE_FOR)
            .count();
        idle.drain(..stale);
        if idle.len() < MAX_IDLE {
            idle.push((sender, now));
        }
    }
}

/// The whole of `body`, at most `limit` bytes. An answer in one frame (a callback's nearly
/// always is) is that frame's bytes as they came; frames after it are joined.
async fn whole(mut body: hyper::body::Incoming, limit: usize) -> Result<Bytes, PoolError> {
    // A declared length over the limit is refused before any of it is read.
    if body.size_hint().lower() > u64::try_from(limit).unwrap_or(u64::MAX) {
        return Err(AnswerTooLarge.into());
    }
    let mut first = Bytes::new();
    let mut joined: Option<BytesMut> = None;
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        // Trailers are not forwarded.
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        len = len.saturating_add(data.len());
        if len > limit {
            return Err(AnswerTooLarge.into());
        }
        match &mut joined {
            None if first.is_empty() => first = data,
            None => {
                let mut all = BytesMut::with_capacity(len);
                all.extend_from_slice(&first);
                all.extend_from_slice(&data);
                joined = Some(all);
            }
            Some(all) => all.extend_from_slice(&data),
        }
    }
    Ok(joined.map_or(first, BytesMut::freeze))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// What the upstream does with each connection once it has read one request's head.
    /// The tests' answer limit.
    const LIMIT: usize = 16;

    #[derive(Clone, Copy)]
    enum Upstream {
        /// Answers (keep-alive), then closes the connection a moment later.
        AnswersThenCloses,
        /// Closes the connection without answering.
        ClosesUnanswered,
        /// Answers with `answer` and keeps the connection open.
        Answers(&'static [u8]),
    }

    /// A raw TCP upstream on loopback; counts the connections and the request heads it read.
    async fn upstream(behaviour: Upstream) -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (connections, requests) =
            (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (c, r) = (Arc::clone(&connections), Arc::clone(&requests));
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                c.fetch_add(1, Ordering::SeqCst);
                let r = Arc::clone(&r);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    r.fetch_add(1, Ordering::SeqCst);
                    match behaviour {
                        Upstream::AnswersThenCloses => {
                            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            let _ = socket.write_all(answer).await;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Upstream::ClosesUnanswered => {}
                        Upstream::Answers(answer) => {
                            let _ = socket.write_all(answer).await;
                            tokio::time::sleep(Duration::from_secs(5)).await;
                        }
                    }
                });
            }
        });
        (addr, connections, requests)
    }

    fn request(addr: &str) -> Request<Full<Bytes>> {
        Request::get("/")
            .header(http::header::HOST, addr)
            .body(Full::new(Bytes::new()))
            .unwrap()
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_while_idle_is_not_used_again() {
        let (addr, connections, requests) = upstream(Upstream::AnswersThenCloses).await;
        let pool = Pool::new(addr.clone(), LIMIT);
        for round in 1..=3 {
            let response = pool.send(request(&addr), Instant::now()).await.unwrap();
            assert_eq!(response.body().as_ref(), b"ok");
            // The upstream has closed it by now: the next request must go on a new one.
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(connections.load(Ordering::SeqCst), round);
        }
        assert_eq!(requests.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_request_written_and_unanswered_is_an_error_and_never_sent_twice() {
        let (addr, connections, requests) = upstream(Upstream::ClosesUnanswered).await;
        let pool = Pool::new(addr.clone(), LIMIT);
        assert!(pool.send(request(&addr), Instant::now()).await.is_err());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(requests.load(Ordering::SeqCst), 1);
        assert_eq!(connections.load(Ordering::SeqCst), 1);
        // And the connection is not kept.
        assert!(pool.take(Instant::now()).is_none());
    }

    #[tokio::test]
    async fn a_connection_kept_alive_is_reused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        let app = hyper::service::service_fn(|_| async {
            Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        });
        tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), app),
                );
            }
        });
        let pool = Pool::new(addr.clone(), LIMIT);
        for _ in 0..5 {
            let response = pool.send(request(&addr), Instant::now()).await.unwrap();
            assert_eq!(response.body().as_ref(), b"ok");
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_answer_in_chunks_is_read_whole() {
        let answer = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
            5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        let (addr, _, _) = upstream(Upstream::Answers(answer)).await;
        let pool = Pool::new(addr.clone(), LIMIT);
        let response = pool.send(request(&addr), Instant::now()).await.unwrap();
        assert_eq!(response.body().as_ref(), b"hello world");
        // Read whole, so kept for the next request.
        assert!(pool.take(Instant::now()).is_some());
    }

    #[tokio::test]
    async fn an_answer_over_the_limit_is_an_error_and_its_connection_is_not_kept() {
        let declared = b"HTTP/1.1 200 OK\r\ncontent-length: 17\r\n\r\n01234567890123456";
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
            a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n";
        for answer in [&declared[..], &chunked[..]] {
            let (addr, _, _) = upstream(Upstream::Answers(answer)).await;
            let pool = Pool::new(addr.clone(), LIMIT);
            let err = pool.send(request(&addr), Instant::now()).await.unwrap_err();
            assert!(err.is::<AnswerTooLarge>(), "{err}");
            assert!(pool.take(Instant::now()).is_none());
        }
        // At the limit exactly: read.
        let exact = b"HTTP/1.1 200 OK\r\ncontent-length: 16\r\n\r\n0123456789012345";
        let (addr, _, _) = upstream(Upstream::Answers(exact)).await;
        let pool = Pool::new(addr.clone(), LIMIT);
        let response = pool.send(request(&addr), Instant::now()).await.unwrap();
        assert_eq!(response.body().len(), LIMIT);
    }
}
