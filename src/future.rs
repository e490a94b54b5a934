//! `ResponseFuture`: replay lookup, buffering, reservation, the inner call and settling, as one
//! state machine without boxing. Each state carries what the next one needs.

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
use crate::diagnosis::RejectionDetails;
use crate::rejection::{OnRejection, Rejection};
use crate::replay::{Attempt, Held, Lookup, Outcome, ReplayKey, ReplayStore, Reservation};
use crate::shared::Shared;
use crate::stopwatch::Stopwatch;

pin_project! {
    /// Response future of [`SecureCallbackService`](crate::SecureCallbackService).
    pub struct ResponseFuture<S, B, R>
    where
        S: Service<Request<VerifiedBody>>,
        R: ReplayStore,
    {
        #[pin]
        state: State<
            Checked<S>,
            B,
            R::LookupFuture,
            R::ReserveFuture,
            S::Future,
            R::SettleFuture,
            Held<R>,
            Result<S::Response, S::Error>,
        >,
        shared: Arc<Shared<R>>,
    }
}

pin_project! {
    #[project = StateProj]
    #[project_replace = StateTake]
    enum State<Req, B, Look, Reserve, Call, Settle, Hold, Output> {
        // Boxed: only refused requests pay for the facts.
        Rejected { rejection: Rejection, details: Box<RejectionDetails>, stopwatch: Stopwatch },
        // The token passed; is its `jti` delivered already? Asked before the body is read.
        LookingUp { #[pin] lookup: Look, request: Req, body: B },
        Buffering { #[pin] body: Buffered<B>, request: Req },
        Reserving { #[pin] reserve: Reserve, request: Req, body: Bytes },
        Calling { #[pin] call: Call, held: Hold },
        Settling { #[pin] settle: Settle, held: Hold, output: Output },
        Done,
    }
}

/// A request whose token passed every header check, with the readied inner service.
struct Checked<S> {
    parts: Parts,
    claims: VonageClaims,
    attempt: Attempt,
    inner: S,
    stopwatch: Stopwatch,
}

impl<S> Checked<S> {
    /// The facts of a refusal after the token was verified.
    fn details(&self, body_len: Option<usize>) -> RejectionDetails {
        let (headers, now) = (&self.parts.headers, self.attempt.now());
        RejectionDetails::from_verified(headers, &self.claims, now, body_len)
    }
}

impl<S, B, R> ResponseFuture<S, B, R>
where
    S: Service<Request<VerifiedBody>>,
    B: Body,
    R: ReplayStore,
{
    pub(crate) fn new(request: Request<B>, inner: S, shared: Arc<Shared<R>>) -> Self {
        let (parts, body) = request.into_parts();
        let now = shared.verifier.now();
        let mut stopwatch = Stopwatch::default();
        let state = match stopwatch.time(|| Self::check_headers(&parts, &body, &shared, now)) {
            Err(rejection) => State::Rejected {
                rejection,
                stopwatch,
                details: Box::new(RejectionDetails::from_headers(
                    rejection,
                    &parts.headers,
                    &shared.verifier,
                    now,
                )),
            },
            Ok(claims) => {
                let attempt = Attempt::new(
                    ReplayKey::new(claims.api_key(), claims.jti()),
                    claims.iat(),
                    now,
                    shared.verifier.retention(&claims, now),
                );
                State::LookingUp {
                    lookup: shared.store.lookup(&attempt),
                    request: Checked {
                        parts,
                        claims,
                        attempt,
                        inner,
                        stopwatch,
                    },
                    body,
                }
            }
        };
        Self { state, shared }
    }

    /// Everything decided before the body is read: declared size, then the token.
    fn check_headers(
        parts: &Parts,
        body: &B,
        shared: &Shared<R>,
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

impl<S, B, R, ResBody> Future for ResponseFuture<S, B, R>
where
    S: Service<Request<VerifiedBody>, Response = Response<ResBody>>,
    B: Body,
    B::Error: Into<BoxError>,
    R: ReplayStore,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let mut body_len = None;
        let mut delivered_at = None;
        loop {
            // Each arm polls the state's future; once it is ready, `project_replace` moves the
            // state's other fields out by value for the next state.
            let rejection = match this.state.as_mut().project() {
                StateProj::Rejected { rejection, .. } => *rejection,
                StateProj::LookingUp { lookup, .. } => match ready!(lookup.poll(cx)) {
                    Ok(Lookup::Unknown) => {
                        let StateTake::LookingUp { request, body, .. } =
                            this.state.as_mut().project_replace(State::Done)
                        else {
                            unreachable!("the state was LookingUp")
                        };
                        let body = Buffered::new(body, this.shared.verifier.limit());
                        this.state.set(State::Buffering { body, request });
                        continue;
                    }
                    Ok(Lookup::Delivered { at }) => {
                        delivered_at = at;
                        Rejection::ReplayedToken
                    }
                    Ok(Lookup::OutsideWindow) => Rejection::ReplayWindowExceeded,
                    Err(err) => store_failed(&err),
                },
                StateProj::Buffering { body, request } => match ready!(body.poll(cx)) {
                    Err(err) if err.is::<LengthLimitError>() => Rejection::BodyTooLarge,
                    Err(_) => Rejection::BodyReadError,
                    Ok(body) => {
                        body_len = Some(body.len());
                        let verifier = &this.shared.verifier;
                        let verified = request.stopwatch.time(|| {
                            verifier.check_request(&request.claims, &request.parts, &body)
                        });
                        if let Err(rejection) = verified {
                            rejection
                        } else {
                            let StateTake::Buffering { request, .. } =
                                this.state.as_mut().project_replace(State::Done)
                            else {
                                unreachable!("the state was Buffering")
                            };
                            let reserve = this.shared.store.reserve(request.attempt.clone());
                            this.state.set(State::Reserving {
                                reserve,
                                request,
                                body,
                            });
                            continue;
                        }
                    }
                },
                StateProj::Reserving { reserve, .. } => match ready!(reserve.poll(cx)) {
                    Ok(Reservation::Reserved(lease)) => {
                        let StateTake::Reserving { request, body, .. } =
                            this.state.as_mut().project_replace(State::Done)
                        else {
                            unreachable!("the state was Reserving")
                        };
                        let held = Held::new(this.shared.store.clone(), lease);
                        let Checked {
                            parts,
                            claims,
                            mut inner,
                            stopwatch,
                            ..
                        } = request;
                        stopwatch.accepted(this.shared.verifier.secrets(), &claims, body.len());
                        #[cfg(feature = "tracing")]
                        tracing::debug!(target: "vonage_secure_callbacks", api_key = claims.api_key(),
                            jti = claims.jti(), secret = %claims.secret(), "callback accepted");
                        let mut request = Request::from_parts(parts, VerifiedBody::new(body));
                        request.extensions_mut().insert(claims);
                        let call = inner.call(request);
                        this.state.set(State::Calling { call, held });
                        continue;
                    }
                    Ok(Reservation::InFlight) => Rejection::DuplicateInFlight,
                    Ok(Reservation::AlreadyDone { at }) => {
                        delivered_at = at;
                        Rejection::ReplayedToken
                    }
                    Ok(Reservation::OutsideWindow) => Rejection::ReplayWindowExceeded,
                    Err(err) => store_failed(&err),
                },
                StateProj::Calling { call, .. } => {
                    let output = ready!(call.poll(cx));
                    let outcome = match &output {
                        Ok(response) if response.status().is_success() => Outcome::Delivered,
                        _ => Outcome::NotDelivered,
                    };
                    let StateTake::Calling { mut held, .. } =
                        this.state.as_mut().project_replace(State::Done)
                    else {
                        unreachable!("the state was Calling")
                    };
                    // Until the settle is done, dropping `held` settles it in the background.
                    let settle = held.settle(outcome);
                    this.state.set(State::Settling {
                        settle,
                        held,
                        output,
                    });
                    continue;
                }
                StateProj::Settling { settle, .. } => {
                    let result = ready!(settle.poll(cx));
                    let StateTake::Settling { held, output, .. } =
                        this.state.as_mut().project_replace(State::Done)
                    else {
                        unreachable!("the state was Settling")
                    };
                    // The inner service has acted on the callback: its answer stands, and a
                    // failed settle goes on in the background.
                    held.finish(result);
                    return Poll::Ready(output.map(|response| response.map(ResponseBody::inner)));
                }
                StateProj::Done => panic!("ResponseFuture polled after completion"),
            };
            let (mut details, stopwatch) = match this.state.as_mut().project() {
                StateProj::Rejected {
                    details, stopwatch, ..
                } => (std::mem::take(&mut **details), *stopwatch),
                StateProj::LookingUp { request, .. } | StateProj::Buffering { request, .. } => {
                    (request.details(body_len), request.stopwatch)
                }
                StateProj::Reserving { request, body, .. } => {
                    body_len = Some(body.len());
                    (request.details(body_len), request.stopwatch)
                }
                _ => (RejectionDetails::default(), Stopwatch::default()),
            };
            details.delivered_at = delivered_at;
            this.state.set(State::Done);
            stopwatch.refused(
                this.shared.verifier.secrets(),
                rejection,
                details.api_key.as_deref(),
                body_len,
            );
            return Poll::Ready(Ok(reject(&*this.shared.on_rejection, rejection, details)));
        }
    }
}

fn store_failed(_err: &crate::replay::ReplayStoreError) -> Rejection {
    #[cfg(feature = "tracing")]
    tracing::warn!(target: "vonage_secure_callbacks", error = %_err, "replay store failed");
    Rejection::ReplayStoreUnavailable
}

/// The response for `rejection`, with the rejection and its details in its extensions.
fn reject<B>(
    on_rejection: &dyn OnRejection,
    rejection: Rejection,
    details: RejectionDetails,
) -> Response<ResponseBody<B>> {
    #[cfg(feature = "tracing")]
    log_rejection(rejection, &details);
    let mut response = on_rejection
        .response_with_details(rejection, &details)
        .map(ResponseBody::rejection);
    response.extensions_mut().insert(rejection);
    response.extensions_mut().insert(details);
    response
}

/// One event per refusal, with the facts that point to its cause. Forgeries and replays are
/// someone else's doing (info); a body, clock, key or store problem is likely ours (warn).
#[cfg(feature = "tracing")]
fn log_rejection(rejection: Rejection, d: &RejectionDetails) {
    macro_rules! event {
        ($level:ident) => {
            tracing::$level!(
                target: "vonage_secure_callbacks",
                reason = rejection.code(),
                api_key = d.api_key.as_deref(),
                jti = d.jti.as_deref(),
                delivered_at = d.delivered_at,
                iat_offset_secs = d.iat_offset_secs,
                secrets_tried = d.secrets_tried,
                configured_api_keys = ?d.configured_api_keys,
                body_len = d.body_len,
                content_type = d.content_type.as_deref(),
                content_encoding = d.content_encoding.as_deref(),
                "callback rejected"
            )
        };
    }
    match rejection {
        Rejection::PayloadHashMismatch
        | Rejection::StaleToken
        | Rejection::TokenFromFuture
        | Rejection::UnknownApiKey
        | Rejection::ReplayWindowExceeded
        | Rejection::ReplayStoreUnavailable => event!(warn),
        _ => event!(info),
    }
}
