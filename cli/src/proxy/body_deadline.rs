//! The deadline for a request's body: a body that has not ended by then fails, so that a client
//! that stalls or trickles it is answered and its connection closed, however it paces its bytes.
//! (tower-http's `TimeoutBody` bounds the wait between frames, which a trickle resets.)

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{sleep_until, Instant, Sleep};

/// Counted each time a body misses its deadline.
pub const BODY_DEADLINES: &str = "vonage_proxy_body_deadlines_total";

pin_project! {
    /// `body`, failing with an [`io::ErrorKind::TimedOut`] error once `timeout` has passed from
    /// its making. The timer is set only once the body makes its reader wait: a callback's
    /// body has most often arrived with its head, and then costs none.
    pub struct BodyDeadline<B> {
        #[pin]
        body: B,
        #[pin]
        timer: Option<Sleep>,
        deadline: Instant,
        timeout: Duration,
    }
}

impl<B> BodyDeadline<B> {
    pub fn new(body: B, timeout: Duration) -> Self {
        Self {
            body,
            timer: None,
            deadline: Instant::now() + timeout,
            timeout,
        }
    }
}

impl<B> Body for BodyDeadline<B>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        if let Poll::Ready(frame) = this.body.poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.timer.is_none() {
            this.timer.set(Some(sleep_until(*this.deadline)));
        }
        let expired = match this.timer.as_pin_mut() {
            Some(timer) => timer.poll(cx).is_ready(),
            None => false,
        };
        if expired {
            metrics::counter!(BODY_DEADLINES).increment(1);
            tracing::warn!(
                target: "vonage_callbacks::proxy",
                seconds = this.timeout.as_secs(),
                "request body not received within the body timeout: refused, connection closed"
            );
            let err = io::Error::new(io::ErrorKind::TimedOut, "the body timeout passed");
            return Poll::Ready(Some(Err(err.into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};

    /// A body whose next frame never comes.
    struct Stalled;

    impl Body for Stalled {
        type Data = Bytes;
        type Error = io::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
            Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_never_ends_fails_at_the_deadline() {
        let err = BodyDeadline::new(Stalled, Duration::from_secs(5))
            .collect()
            .await
            .unwrap_err();
        let io = err.downcast_ref::<io::Error>().unwrap();
        assert_eq!(io.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_whole_body_passes() {
        let body = BodyDeadline::new(Full::new(Bytes::from_static(b"{}")), Duration::from_secs(5));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "{}");
    }
}
