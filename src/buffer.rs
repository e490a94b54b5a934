//! Buffering the request body through `http_body_util::Limited`, without copying a body that
//! arrives in one chunk, and with room only for what has arrived: a `Content-Length` is the
//! client's claim, and a client that claims a megabyte and trickles a few bytes must not hold a
//! megabyte of memory for them.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body::Body;
use http_body_util::Limited;
use pin_project_lite::pin_project;

use crate::BoxError;

pin_project! {
    /// Resolves to the whole body as one `Bytes`, or to `Limited`'s error once it passes the
    /// limit. A single data frame is handed on as it came (zero-copy for `Bytes` data); later
    /// frames are joined into one buffer that grows as they arrive.
    pub(crate) struct Buffered<B> {
        #[pin]
        body: Limited<B>,
        first: Option<Bytes>,
        joined: Option<BytesMut>,
    }
}

impl<B> Buffered<B> {
    pub(crate) fn new(body: B, limit: usize) -> Self {
        Self {
            body: Limited::new(body, limit),
            first: None,
            joined: None,
        }
    }
}

impl<B> Future for Buffered<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Output = Result<Bytes, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let Some(frame) = ready!(this.body.as_mut().poll_frame(cx)?) else {
                let body = match this.joined.take() {
                    Some(joined) => joined.freeze(),
                    None => this.first.take().unwrap_or_default(),
                };
                return Poll::Ready(Ok(body));
            };
            // Trailers carry nothing that was signed: skipped.
            let Ok(mut data) = frame.into_data() else {
                continue;
            };
            if let Some(joined) = this.joined.as_mut() {
                joined.put(data);
            } else if let Some(first) = this.first.take() {
                // Room for what arrived; it doubles as more does.
                let mut joined = BytesMut::with_capacity(first.len() + data.remaining());
                joined.put(first);
                joined.put(data);
                *this.joined = Some(joined);
            } else {
                *this.first = Some(data.copy_to_bytes(data.remaining()));
            }
        }
    }
}

/// The body's length as its `Content-Length` header declares it.
pub(crate) fn declared_len(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use std::convert::Infallible;

    /// Frames handed out one per poll; `declared` says whether the body tells its length (as a
    /// body with a Content-Length does).
    struct Chunks {
        parts: Vec<&'static [u8]>,
        declared: bool,
        /// A length claimed instead of the true one.
        claimed: Option<u64>,
    }

    impl Body for Chunks {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
            let next = (!self.parts.is_empty()).then(|| self.parts.remove(0));
            Poll::Ready(next.map(|c| Ok(http_body::Frame::data(Bytes::from_static(c)))))
        }

        fn size_hint(&self) -> http_body::SizeHint {
            match self.declared {
                true => http_body::SizeHint::with_exact(
                    self.claimed.unwrap_or(self.parts.concat().len() as u64),
                ),
                false => http_body::SizeHint::default(),
            }
        }
    }

    fn chunks(parts: &[&'static [u8]]) -> Chunks {
        Chunks {
            parts: parts.to_vec(),
            declared: false,
            claimed: None,
        }
    }

    #[tokio::test]
    async fn one_chunk_is_not_copied() {
        let data = Bytes::from(vec![7u8; 100]);
        let out = Buffered::new(Full::new(data.clone()), 100).await.unwrap();
        assert_eq!(out.as_ptr(), data.as_ptr());
    }

    #[tokio::test]
    async fn a_declared_length_is_not_reserved_before_it_arrives() {
        static CHUNK: [u8; 1000] = [1; 1000];
        // It claims a megabyte and sends two kilobytes.
        let body = Chunks {
            parts: vec![&CHUNK; 2],
            declared: true,
            claimed: Some(1_000_000),
        };
        let out = Buffered::new(body, 2_000_000).await.unwrap();
        assert_eq!(out.len(), 2_000);
        assert!(BytesMut::from(out).capacity() < 10_000);
    }

    #[tokio::test]
    async fn chunks_are_joined_and_the_limit_is_inclusive() {
        let out = Buffered::new(chunks(&[b"ab", b"cd", b"e"]), 5)
            .await
            .unwrap();
        assert_eq!(out, "abcde");
        let err = Buffered::new(chunks(&[b"ab", b"cd", b"ef"]), 5)
            .await
            .unwrap_err();
        assert!(err.is::<http_body_util::LengthLimitError>());
        assert_eq!(Buffered::new(chunks(&[]), 5).await.unwrap(), "");
    }
}
