//! Kept-alive HTTP/1.1 connections to the one upstream. A request takes an idle connection or
//! opens one, and gives it back only once the whole answer was read; a connection whose
//! exchange was cut short (a timeout, an error, an answer over the limit) is dropped, which
//! closes it. One host, no HTTP/2 and no task per connection make this much cheaper per
//! callback than a general client's pool.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Response;

use super::exchange::{Connection, Outbound, UpstreamError};
#[cfg(test)]
use super::headers::Facts;

/// Idle connections kept at most; more are closed once their answer is read.
const MAX_IDLE: usize = 256;
/// An idle connection older than this is closed rather than reused: upstream servers close
/// theirs after a while, and a request must not race that close.
const IDLE_FOR: Duration = Duration::from_secs(30);

/// Connections to `authority` (`host:port`).
pub struct Pool {
    authority: String,
    /// The longest answer body read; a longer one is [`UpstreamError::TooLarge`].
    answer_limit: usize,
    idle: Mutex<Vec<(Connection, Instant)>>,
}

impl Pool {
    pub fn new(authority: String, answer_limit: usize) -> Self {
        Self {
            authority,
            answer_limit,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends `request` and reads the whole answer. `now` is the caller's clock reading, taken
    /// just before: idle times are measured from it rather than from readings of their own. A
    /// connection given back is stamped with it, so its idle time is counted from before its
    /// exchange, never from after: it is closed early, never late. Once written, a request is
    /// never sent twice: a failure after that is the caller's 502.
    pub async fn send(
        &self,
        request: &Outbound<'_>,
        now: Instant,
    ) -> Result<Response<Bytes>, UpstreamError> {
        let mut connection = match self.take(now) {
            Some(connection) => connection,
            None => Connection::open(&self.authority).await?,
        };
        // An error here drops the connection: one with an answer unread is not kept.
        let (response, keep) = connection.exchange(request, self.answer_limit).await?;
        if keep {
            self.give_back(connection, now);
        }
        Ok(response)
    }

    fn take(&self, now: Instant) -> Option<Connection> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        // Newest first: the likeliest to be open still.
        while let Some((connection, since)) = idle.pop() {
            if now.saturating_duration_since(since) < IDLE_FOR && connection.is_usable() {
                return Some(connection);
            }
        }
        None
    }

    fn give_back(&self, connection: Connection, now: Instant) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        // The oldest are at the bottom, where a quiet spell after a burst leaves them: close
        // those past their time rather than keep them (and the upstream's side) open.
        let stale = idle
            .iter()
            .take_while(|(_, since)| now.saturating_duration_since(*since) >= IDLE_FOR)
            .count();
        idle.drain(..stale);
        if idle.len() < MAX_IDLE {
            idle.push((connection, now));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use http_body_util::Full;
    use hyper_util::rt::TokioIo;
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

    /// A GET of `/` through `pool`.
    async fn get(pool: &Pool, addr: &str) -> Result<Response<Bytes>, UpstreamError> {
        let host = http::HeaderValue::from_str(addr).unwrap();
        let (headers, body) = (http::HeaderMap::new(), Bytes::new());
        let request = Outbound {
            method: &http::Method::GET,
            target: ["", "/"],
            host: &host,
            headers: &headers,
            facts: &Facts::default(),
            body: &body,
        };
        pool.send(&request, Instant::now()).await
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_while_idle_is_not_used_again() {
        let (addr, connections, requests) = upstream(Upstream::AnswersThenCloses).await;
        let pool = Pool::new(addr.clone(), LIMIT);
        for round in 1..=3 {
            let response = get(&pool, &addr).await.unwrap();
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
        assert!(get(&pool, &addr).await.is_err());
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
            let response = get(&pool, &addr).await.unwrap();
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
        let response = get(&pool, &addr).await.unwrap();
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
            let err = get(&pool, &addr).await.unwrap_err();
            assert!(matches!(err, UpstreamError::TooLarge), "{err}");
            assert!(pool.take(Instant::now()).is_none());
        }
        // At the limit exactly: read.
        let exact = b"HTTP/1.1 200 OK\r\ncontent-length: 16\r\n\r\n0123456789012345";
        let (addr, _, _) = upstream(Upstream::Answers(exact)).await;
        let pool = Pool::new(addr.clone(), LIMIT);
        let response = get(&pool, &addr).await.unwrap();
        assert_eq!(response.body().len(), LIMIT);
    }
}
