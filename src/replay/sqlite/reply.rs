//! The future a request awaits while the store's thread serves it: the thread's answer, or an
//! error once the store's timeout has passed.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::sync::oneshot;
use tokio::time::Sleep;

use crate::replay::ReplayStoreError;

pin_project! {
    /// The answer of a [`SqliteReplayStore`](super::SqliteReplayStore) to one call: resolved by
    /// the store's own thread, or with an error once the store's
    /// [timeout](super::SqliteStoreBuilder::timeout) has passed (never a hang).
    pub struct SqliteReply<T> {
        #[pin]
        state: State<T>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<T> {
        /// Refused before it reached the thread (queue full, thread gone).
        Refused { error: Option<ReplayStoreError> },
        /// On a tokio runtime: the answer, or the deadline.
        Bounded {
            answer: oneshot::Receiver<Result<T, ReplayStoreError>>,
            #[pin]
            deadline: Sleep,
            timeout: Duration,
        },
        /// Outside a tokio runtime there is no timer: the thread's own bounded lock wait is the
        /// bound.
        Unbounded { answer: oneshot::Receiver<Result<T, ReplayStoreError>> },
    }
}

impl<T> SqliteReply<T> {
    pub(super) fn refused(error: ReplayStoreError) -> Self {
        Self {
            state: State::Refused { error: Some(error) },
        }
    }

    pub(super) fn waiting(
        answer: oneshot::Receiver<Result<T, ReplayStoreError>>,
        timeout: Duration,
    ) -> Self {
        let state = match tokio::runtime::Handle::try_current() {
            Ok(_) => State::Bounded {
                answer,
                deadline: tokio::time::sleep(timeout),
                timeout,
            },
            Err(_) => State::Unbounded { answer },
        };
        Self { state }
    }
}

/// The thread dropped the request without answering: it stopped (it never does while a store
/// handle is alive, so this is a fault worth a clear message).
fn gone() -> ReplayStoreError {
    ReplayStoreError::new("the SQLite replay store's thread stopped")
}

impl<T> Future for SqliteReply<T> {
    type Output = Result<T, ReplayStoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Refused { error } => Poll::Ready(Err(error.take().unwrap_or_else(gone))),
            StateProj::Bounded {
                answer,
                deadline,
                timeout,
            } => {
                if let Poll::Ready(answer) = Pin::new(answer).poll(cx) {
                    return Poll::Ready(answer.unwrap_or_else(|_| Err(gone())));
                }
                ready!(deadline.poll(cx));
                Poll::Ready(Err(ReplayStoreError::new(format!(
                    "the SQLite replay store did not answer within {timeout:?}"
                ))))
            }
            StateProj::Unbounded { answer } => Pin::new(answer)
                .poll(cx)
                .map(|answer| answer.unwrap_or_else(|_| Err(gone()))),
        }
    }
}

impl<T> fmt::Debug for SqliteReply<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Refused { .. } => "refused",
            State::Bounded { .. } => "waiting (bounded)",
            State::Unbounded { .. } => "waiting",
        };
        f.debug_struct("SqliteReply")
            .field("state", &state)
            .finish()
    }
}
