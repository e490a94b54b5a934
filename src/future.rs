//! `ResponseFuture`: buffering, replay reservation, the inner call and settling, as one state
//! machine without boxing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::{header, Request, Response};
use http_body::Body;
use http_body_util::LengthLimitError;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::BoxError;

use crate::body::{ResponseBody, VerifiedBody};
use crate::buffer::Buffered;
use crate::claims::VonageClaims;
use crate::layer::Shared;
use crate::rejection::{OnRejection, Rejection};
use crate::replay::{Held, ReplayKey, ReplayStore, Reservation, Retention};

pin_project! {
    /// Response future of [`SecureCallbackService`](crate::SecureCallbackService).
    pub struct ResponseFuture<S, B, R, F>
    where
        S: Service<Request<VerifiedBody>>,
        B: Body,
    B::Error: Into<BoxError>,
        B::Error: Into<BoxError>,
        R: ReplayStore,
    {
        #[pin]
        state: State<Buffered<B>, R::ReserveFuture, S::Future, R::SettleFuture, Result<S::Response, S::Error>>,
        shared: Arc<Shared<R, F>>,
        // The readied inner service, until it is called.
        inner: Option<S>,
        // The request, between the states that need it.
        verified: Option<Verified>,
        // The `jti` reservation, between reserving and settling.
        held: Option<Held<R>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<Buffer, Reserve, Call, Settle, Output> {
        Rejected { rejection: Rejection },
        Buffering { #[pin] body: Buffer },
        Reserving { #[pin] reserve: Reserve, key: Option<ReplayKey>, body: Option<Bytes> },
        Calling { #[pin] call: Call },
        Settling { #[pin] settle: Settle, output: Option<Output> },
        Done,
    }
}

/// What has been verified of the request so far.
struct Verified {
    parts: Parts,
    claims: VonageClaims,
    retention: Retention,
}

impl<S, B, R, F> ResponseFuture<S, B, R, F>
where
    S: Service<Request<VerifiedBody>>,
    B: Body,
    B::Error: Into<BoxError>,
    R: ReplayStore,
{
    pub(crate) fn new(request: Request<B>, inner: S, shared: Arc<Shared<R, F>>) -> Self {
        let (parts, body) = request.into_parts();
        let now = shared.verifier.now();
        let (state, verified) = match Self::check_headers(&parts, &body, &shared, now) {
            Err(rejection) => (State::Rejected { rejection }, None),
            Ok(claims) => {
                let limit = shared.verifier.limit();
                let retention = shared.verifier.retention(&claims, now);
                let verified = Verified {
                    parts,
                    claims,
                    retention,
                };
                let body = Buffered::new(body, limit);
                (State::Buffering { body }, Some(verified))
            }
        };
        Self {
            state,
            shared,
            inner: Some(inner),
            verified,
            held: None,
        }
    }

    /// Everything decided before the body is read: declared size, then the token.
    fn check_headers(
        parts: &Parts,
        body: &B,
        shared: &Shared<R, F>,
        now: u64,
    ) -> Result<VonageClaims, Rejection> {
        let limit = shared.verifier.limit() as u64;
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit) || body.size_hint().lower() > limit {
            return Err(Rejection::BodyTooLarge);
        }
        shared.verifier.verify_headers(&parts.headers, now)
    }
}

impl<S, B, R, F, ResBody> Future for ResponseFuture<S, B, R, F>
where
    S: Service<Request<VerifiedBody>, Response = Response<ResBody>>,
    B: Body,
    B::Error: Into<BoxError>,
    R: ReplayStore,
    F: OnRejection,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let rejection = match this.state.as_mut().project() {
                StateProj::Rejected { rejection } => *rejection,
                StateProj::Buffering { body } => {
                    let verified = this.verified.as_mut().expect("buffering keeps the request");
                    match ready!(body.poll(cx)) {
                        Err(err) if err.is::<LengthLimitError>() => Rejection::BodyTooLarge,
                        Err(_) => Rejection::BodyReadError,
                        Ok(body) => {
                            match this.shared.verifier.check_request(
                                &verified.claims,
                                &verified.parts,
                                &body,
                            ) {
                                Err(rejection) => rejection,
                                Ok(()) => {
                                    let key = ReplayKey::new(
                                        verified.claims.api_key(),
                                        verified.claims.jti(),
                                    );
                                    let reserve = this.shared.store.reserve(&key);
                                    this.state.set(State::Reserving {
                                        reserve,
                                        key: Some(key),
                                        body: Some(body),
                                    });
                                    continue;
                                }
                            }
                        }
                    }
                }
                StateProj::Reserving { reserve, key, body } => match ready!(reserve.poll(cx)) {
                    Ok(Reservation::Reserved) => {
                        let key = key.take().expect("reserving holds the key");
                        let body = body.take().expect("reserving holds the body");
                        let Verified {
                            parts,
                            claims,
                            retention,
                        } = this.verified.take().expect("reserving keeps the request");
                        *this.held = Some(Held::new(this.shared.store.clone(), key, retention));
                        let mut request = Request::from_parts(parts, VerifiedBody::new(body));
                        request.extensions_mut().insert(claims);
                        let mut inner =
                            this.inner.take().expect("the inner service is called once");
                        let call = inner.call(request);
                        this.state.set(State::Calling { call });
                        continue;
                    }
                    Ok(Reservation::InFlight) => Rejection::DuplicateInFlight,
                    Ok(Reservation::AlreadyDone) => Rejection::ReplayedToken,
                    Err(_err) => {
                        #[cfg(feature = "tracing")]
                        tracing::warn!(target: "vonage_secure_callbacks", error = %_err, "replay store failed");
                        Rejection::ReplayStoreUnavailable
                    }
                },
                StateProj::Calling { call } => {
                    let output = ready!(call.poll(cx));
                    let success = matches!(&output, Ok(response) if response.status().is_success());
                    let held = this
                        .held
                        .take()
                        .expect("a called request holds its reservation");
                    let settle = held.settle(success);
                    this.state.set(State::Settling {
                        settle,
                        output: Some(output),
                    });
                    continue;
                }
                StateProj::Settling { settle, output } => {
                    if let Err(_err) = ready!(settle.poll(cx)) {
                        // The inner service has acted on the callback: its answer stands. The
                        // store's own expiry bounds what a lost settle costs.
                        #[cfg(feature = "tracing")]
                        tracing::warn!(target: "vonage_secure_callbacks", error = %_err, "replay store settle failed");
                    }
                    let output = output.take().expect("settling holds the output");
                    this.state.set(State::Done);
                    return Poll::Ready(output.map(|response| response.map(ResponseBody::inner)));
                }
                StateProj::Done => panic!("ResponseFuture polled after completion"),
            };
            this.state.set(State::Done);
            return Poll::Ready(Ok(reject(&this.shared.on_rejection, rejection)));
        }
    }
}

/// The response for `rejection`, with the rejection in its extensions.
fn reject<F: OnRejection, B>(on_rejection: &F, rejection: Rejection) -> Response<ResponseBody<B>> {
    #[cfg(feature = "tracing")]
    tracing::info!(target: "vonage_secure_callbacks", reason = rejection.code(), "callback rejected");
    let mut response = on_rejection
        .response(rejection)
        .map(ResponseBody::rejection);
    response.extensions_mut().insert(rejection);
    response
}
