//! `ResponseFuture`: replay lookup, buffering, reservation, the inner call and settling, as one
//! state machine without boxing. Each state carries its own future and what it needs, the
//! request being checked among it, so that no state can be reached without what it needs.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response};
use http_body::Body;
use http_body_util::LengthLimitError;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::body::{ResponseBody, VerifiedBody};
use crate::buffer::{declared_len, Buffered};
use crate::diagnosis::RejectionDetails;
use crate::explain::FirstFailure;
use crate::rejection::Rejection;
use crate::replay::{Held, Lookup, Outcome, ReplayStore, ReplayStoreError, Reservation};
use crate::scheme::{Known, Scheme};
use crate::shared::Shared;
use crate::stopwatch::Stopwatch;
use crate::BoxError;

pin_project! {
    /// Response future of [`SecureCallbackService`](crate::SecureCallbackService): the steps of
    /// one callback as a state machine, without boxing.
    pub struct ResponseFuture<S, B, R>
    where
        S: Service<Request<VerifiedBody>>,
        R: ReplayStore,
    {
        #[pin]
        state: State<S, B, R>,
        shared: Arc<Shared<R>>,
    }
}

pin_project! {
    /// Each state holds, pinned, the future it waits on, and what only it needs.
    #[project = StateProj]
    #[project_replace = StateTake]
    enum State<S, B, R>
    where
        S: Service<Request<VerifiedBody>>,
        R: ReplayStore,
    {
        // Refused by the checks made before anything is awaited: answered on the first poll.
        // The facts are boxed: only refused requests pay for them.
        Refused { rejection: Rejection, details: Box<RejectionDetails>, stopwatch: Stopwatch },
        // The token passed: is its `jti` delivered already? Asked before the body is read, so
        // that a replay costs no body.
        LookingUp { #[pin] lookup: R::LookupFuture, body: B, request: Checked<S> },
        // Not delivered: the body, read up to the limit, for the payload hash.
        Buffering { #[pin] body: Buffered<B>, request: Checked<S> },
        // The hash matched: hold the `jti`, so that a copy arriving meanwhile is refused.
        Reserving { #[pin] reserve: R::ReserveFuture, body: Bytes, request: Checked<S> },
        // Held: the inner service acts on the callback.
        Calling { #[pin] call: S::Future, held: Held<R> },
        // Its answer decides (2xx: delivered, else released); the answer waits for the store,
        // so that a 2xx never leaves before the `jti` is marked.
        Settling { #[pin] settle: R::SettleFuture, held: Held<R>, output: Result<S::Response, S::Error> },
        // Answered, or moving between states.
        Done,
    }
}

/// What the state's future produced: the input of the one transition.
enum Event<S: Service<Request<VerifiedBody>>> {
    Refused,
    LookedUp(Result<Lookup, ReplayStoreError>),
    Buffered(Result<Bytes, BoxError>),
    Reserved(Result<Reservation, ReplayStoreError>),
    Called(Result<S::Response, S::Error>),
    Settled(Result<(), ReplayStoreError>),
}

/// Where a transition leads. The next state is moved, not boxed: a box would cost every
/// callback an allocation.
#[allow(clippy::large_enum_variant)]
enum Next<S: Service<Request<VerifiedBody>>, B, R: ReplayStore> {
    State(State<S, B, R>),
    Refuse(Refusal),
    Answer(Result<S::Response, S::Error>),
}

/// A refusal and its facts, from any state.
struct Refusal {
    rejection: Rejection,
    details: Box<RejectionDetails>,
    stopwatch: Stopwatch,
    /// The body's length when it was read (the metrics count bodies read, not declared).
    body_read: Option<usize>,
}

/// A request that passed the checks made so far, with the readied inner service.
struct Checked<S> {
    parts: Parts,
    known: Known,
    /// "Now" for this callback, read once.
    now: u64,
    inner: S,
    stopwatch: Stopwatch,
}

impl<S> Checked<S> {
    /// Refused after the head was checked, by the body or the replay store: what the store
    /// said of an earlier delivery, and the body's length where it was read.
    fn refused_by_store(
        self,
        rejection: Rejection,
        body_len: Option<usize>,
        delivered_at: Option<u64>,
    ) -> Refusal {
        let mut details = self.known.facts(self.now, body_len);
        details.delivered_at = delivered_at;
        details.note_headers(&self.parts.headers);
        Refusal {
            rejection,
            details: Box::new(details),
            stopwatch: self.stopwatch,
            body_read: body_len,
        }
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
        let scheme = &shared.scheme;
        let now = scheme.now();
        // The declared size, or what the body itself promises: refused unread when too large.
        let declared = declared_len(&parts.headers).max(Some(body.size_hint().lower()));
        let mut stopwatch = Stopwatch::default();
        let mut failure = FirstFailure::default();
        let checked = stopwatch.time(|| scheme.check_head(&parts, declared, now, &mut failure));
        let state = match checked {
            Err(rejection) => {
                let mut details = failure.take();
                details.note_headers(&parts.headers);
                State::Refused {
                    rejection,
                    details,
                    stopwatch,
                }
            }
            Ok(known) => {
                let lookup = known
                    .early_attempt()
                    .map(|attempt| shared.store.lookup(attempt));
                let request = Checked {
                    parts,
                    known,
                    now,
                    inner,
                    stopwatch,
                };
                match lookup {
                    Some(lookup) => State::LookingUp {
                        lookup,
                        body,
                        request,
                    },
                    // The replay key is in the body: read it first, reserve after.
                    None => State::Buffering {
                        body: Buffered::new(body, scheme.limit()),
                        request,
                    },
                }
            }
        };
        Self { state, shared }
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
        loop {
            // Poll the state's future; once it is ready, the state moves out by value and the
            // event decides the next one.
            let event = match this.state.as_mut().project() {
                StateProj::Refused { .. } => Event::Refused,
                StateProj::LookingUp { lookup, .. } => Event::LookedUp(ready!(lookup.poll(cx))),
                StateProj::Buffering { body, .. } => Event::Buffered(ready!(body.poll(cx))),
                StateProj::Reserving { reserve, .. } => Event::Reserved(ready!(reserve.poll(cx))),
                StateProj::Calling { call, .. } => Event::Called(ready!(call.poll(cx))),
                StateProj::Settling { settle, .. } => Event::Settled(ready!(settle.poll(cx))),
                StateProj::Done => panic!("ResponseFuture polled after completion"),
            };
            let taken = this.state.as_mut().project_replace(State::Done);
            match transition(taken, event, this.shared) {
                Next::State(state) => this.state.set(state),
                Next::Answer(output) => {
                    return Poll::Ready(output.map(|response| response.map(ResponseBody::inner)))
                }
                Next::Refuse(refusal) => return Poll::Ready(Ok(refuse(refusal, this.shared))),
            }
        }
    }
}

impl<S, B, R> fmt::Debug for ResponseFuture<S, B, R>
where
    S: Service<Request<VerifiedBody>>,
    R: ReplayStore,
{
    /// The state's name only: the request, its body and its claims stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Refused { rejection, .. } => rejection.code(),
            State::LookingUp { .. } => "looking_up",
            State::Buffering { .. } => "buffering",
            State::Reserving { .. } => "reserving",
            State::Calling { .. } => "calling",
            State::Settling { .. } => "settling",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

/// The one place where a callback moves on: from the state it was in, by what its future
/// produced. Each state's step is a function of its own, below.
fn transition<S, B, R, ResBody>(
    taken: StateTake<S, B, R>,
    event: Event<S>,
    shared: &Shared<R>,
) -> Next<S, B, R>
where
    S: Service<Request<VerifiedBody>, Response = Response<ResBody>>,
    B: Body,
    B::Error: Into<BoxError>,
    R: ReplayStore,
{
    match (taken, event) {
        (
            StateTake::Refused {
                rejection,
                details,
                stopwatch,
            },
            Event::Refused,
        ) => Next::Refuse(Refusal {
            rejection,
            details,
            stopwatch,
            body_read: None,
        }),
        (StateTake::LookingUp { body, request, .. }, Event::LookedUp(looked)) => {
            looked_up(looked, body, request, shared)
        }
        (StateTake::Buffering { request, .. }, Event::Buffered(read)) => {
            buffered(read, request, shared)
        }
        (StateTake::Reserving { body, request, .. }, Event::Reserved(reserved)) => {
            reserved_or_not(reserved, body, request, shared)
        }
        (StateTake::Calling { held, .. }, Event::Called(output)) => called(output, held),
        (StateTake::Settling { held, output, .. }, Event::Settled(result)) => {
            // The inner service has acted on the callback: its answer stands, and a failed
            // settle goes on in the background.
            held.finish(result);
            Next::Answer(output)
        }
        // `poll` makes each event by polling the state it pairs it with.
        _ => unreachable!("each event is produced by its own state"),
    }
}

/// Looked up before the body: unknown goes on to read it; delivered, outside the window or
/// unanswered is refused.
fn looked_up<S, B, R>(
    looked: Result<Lookup, ReplayStoreError>,
    body: B,
    request: Checked<S>,
    shared: &Shared<R>,
) -> Next<S, B, R>
where
    S: Service<Request<VerifiedBody>>,
    R: ReplayStore,
{
    let (rejection, delivered_at) = match looked {
        Ok(Lookup::Unknown) => {
            let body = Buffered::new(body, shared.scheme.limit());
            return Next::State(State::Buffering { body, request });
        }
        Ok(Lookup::Delivered { at }) => (Rejection::ReplayedToken, at),
        Ok(Lookup::OutsideWindow) => (Rejection::ReplayWindowExceeded, None),
        Err(err) => (store_failed(&err), None),
    };
    Next::Refuse(request.refused_by_store(rejection, None, delivered_at))
}

/// The body read: checked against the token (or, for SMS, verified), then reserved.
fn buffered<S, B, R>(
    read: Result<Bytes, BoxError>,
    request: Checked<S>,
    shared: &Shared<R>,
) -> Next<S, B, R>
where
    S: Service<Request<VerifiedBody>>,
    R: ReplayStore,
{
    let body = match read {
        Ok(body) => body,
        Err(err) => {
            let rejection = if err.is::<LengthLimitError>() {
                Rejection::BodyTooLarge
            } else {
                Rejection::BodyReadError
            };
            return Next::Refuse(request.refused_by_store(rejection, None, None));
        }
    };
    let Checked {
        parts,
        known,
        now,
        inner,
        mut stopwatch,
    } = request;
    let mut failure = FirstFailure::default();
    let scheme = &shared.scheme;
    let checked = stopwatch.time(|| scheme.check_body(known, &parts, &body, now, &mut failure));
    match checked {
        Err(rejection) => {
            let mut details = failure.take();
            details.note_headers(&parts.headers);
            Next::Refuse(Refusal {
                rejection,
                details,
                stopwatch,
                body_read: Some(body.len()),
            })
        }
        Ok((known, attempt)) => Next::State(State::Reserving {
            reserve: shared.store.reserve(attempt),
            body,
            request: Checked {
                parts,
                known,
                now,
                inner,
                stopwatch,
            },
        }),
    }
}

/// Reserved: the inner service is called, holding the reservation; otherwise refused.
fn reserved_or_not<S, B, R>(
    reserved: Result<Reservation, ReplayStoreError>,
    body: Bytes,
    mut request: Checked<S>,
    shared: &Shared<R>,
) -> Next<S, B, R>
where
    S: Service<Request<VerifiedBody>>,
    R: ReplayStore,
{
    let (rejection, delivered_at) = match reserved {
        Ok(Reservation::Reserved(lease)) => {
            if R::LEASE_FOR_HANDLER {
                // For a handler that marks the delivery in its own transaction.
                request.parts.extensions.insert(lease.clone());
            }
            let held = Held::new(shared.store.clone(), lease);
            let call = call_inner(request, body, &shared.scheme);
            return Next::State(State::Calling { call, held });
        }
        Ok(Reservation::InFlight) => (Rejection::DuplicateInFlight, None),
        Ok(Reservation::AlreadyDone { at }) => (Rejection::ReplayedToken, at),
        Ok(Reservation::OutsideWindow) => (Rejection::ReplayWindowExceeded, None),
        Err(err) => (store_failed(&err), None),
    };
    Next::Refuse(request.refused_by_store(rejection, Some(body.len()), delivered_at))
}

/// The inner service answered: its 2xx marks the callback delivered, anything else releases
/// it; the answer waits for that.
fn called<S, B, R, ResBody>(
    output: Result<S::Response, S::Error>,
    mut held: Held<R>,
) -> Next<S, B, R>
where
    S: Service<Request<VerifiedBody>, Response = Response<ResBody>>,
    R: ReplayStore,
{
    let outcome = match &output {
        Ok(response) if response.status().is_success() => Outcome::Delivered,
        _ => Outcome::NotDelivered,
    };
    // Until the settle is done, dropping `held` settles it in the background.
    let settle = held.settle(outcome);
    Next::State(State::Settling {
        settle,
        held,
        output,
    })
}

/// Hands the verified request to the inner service, with what was verified in its extensions.
fn call_inner<S>(request: Checked<S>, body: Bytes, scheme: &Scheme) -> S::Future
where
    S: Service<Request<VerifiedBody>>,
{
    let Checked {
        mut parts,
        known,
        mut inner,
        stopwatch,
        ..
    } = request;
    known.accept(
        &mut parts.extensions,
        stopwatch,
        scheme.secrets(),
        body.len(),
    );
    inner.call(Request::from_parts(parts, VerifiedBody::new(body)))
}

fn store_failed(_err: &ReplayStoreError) -> Rejection {
    #[cfg(feature = "tracing")]
    tracing::warn!(target: "vonage_secure_callbacks", error = %_err, "replay store failed");
    Rejection::ReplayStoreUnavailable
}

/// The response for a refusal, with the rejection and its facts in its extensions.
fn refuse<B, R>(refusal: Refusal, shared: &Shared<R>) -> Response<ResponseBody<B>> {
    let Refusal {
        rejection,
        details,
        stopwatch,
        body_read,
    } = refusal;
    stopwatch.refused(
        shared.scheme.secrets(),
        rejection,
        details.api_key.as_deref(),
        body_read,
    );
    #[cfg(feature = "tracing")]
    log_rejection(rejection, &details);
    let mut response = shared
        .on_rejection
        .response_with_details(rejection, &details)
        .map(ResponseBody::rejection);
    response.extensions_mut().insert(rejection);
    response.extensions_mut().insert(*details);
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
                // Only where it was gathered (an unknown key): an empty list would say that
                // no key is configured.
                configured_api_keys = (!d.configured_api_keys.is_empty())
                    .then(|| tracing::field::debug(&d.configured_api_keys)),
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
