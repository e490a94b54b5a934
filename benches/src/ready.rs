//! An inner service that answers 200 at once, and polling a future that is ready at once: for
//! driving the layer in-process without a runtime (the `service` bench, the profile example).

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Empty;
use tower::Service;
use vonage_secure_callbacks::VerifiedBody;

#[derive(Clone)]
pub struct Ok200;

impl Service<Request<VerifiedBody>> for Ok200 {
    type Response = Response<Empty<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<VerifiedBody>) -> Self::Future {
        drop(black_box(req));
        ready(Ok(Response::new(Empty::new())))
    }
}

/// The output of `f`, which must be ready at its first poll.
pub fn now<F: Future>(f: F) -> F::Output {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => unreachable!("every future here is ready at once"),
    }
}
