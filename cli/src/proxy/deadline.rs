//! The upstream timeout, kept for every request by one task on a tick of [`TICK`]: a request
//! waiting on the upstream leaves its waker on a shared board, and the task wakes those whose
//! deadline has passed. tokio's timeout sets a timer in its wheel for each request and cancels
//! it after (about 1 000 instructions per callback and a clock read); a place on the board is
//! a few short, uncontended locks.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use slab::Slab;

/// How often deadlines are looked at: a request times out within two of these after its
/// timeout, never before.
pub const TICK: Duration = Duration::from_millis(100);

/// Requests waiting, and the ticks counted; each clone shares them.
#[derive(Clone, Default)]
pub struct Deadlines(Arc<Mutex<Board>>);

#[derive(Default)]
struct Board {
    /// Ticks since the keeper started, under the wakers' lock: a request that finds its
    /// deadline ahead is on the board before the tick that passes it.
    now: u64,
    wakers: Slab<(u64, Waker)>,
}

/// The upstream took longer than its timeout.
#[derive(Debug)]
pub struct Elapsed;

fn lock(board: &Mutex<Board>) -> MutexGuard<'_, Board> {
    // Nothing panics while the lock is held; a poisoned one is still whole.
    board.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Deadlines {
    /// `future`, given `timeout` from now: then it is dropped, and [`Elapsed`] is the answer.
    pub fn within<F: Future>(&self, timeout: Duration, future: F) -> Within<'_, F> {
        // The tick under way may end at once, so it is not counted.
        let ticks = timeout.as_nanos().div_ceil(TICK.as_nanos()) + 1;
        Within {
            future,
            board: &self.0,
            ticks: u64::try_from(ticks).unwrap_or(u64::MAX),
            place: None,
        }
    }

    /// Counts ticks and wakes each request whose deadline has passed, for ever (a task of the
    /// runtime); ticks are never early, so neither is a deadline.
    pub async fn keep(self) {
        super::tick::every(TICK, || {
            let mut board = lock(&self.0);
            board.now += 1;
            let now = board.now;
            for (_, (due, waker)) in &board.wakers {
                if *due <= now {
                    waker.wake_by_ref();
                }
            }
        })
        .await;
    }
}

pin_project_lite::pin_project! {
    /// A future with a deadline on the board.
    pub struct Within<'a, F> {
        #[pin]
        future: F,
        board: &'a Mutex<Board>,
        // Its timeout, in ticks.
        ticks: u64,
        // Its waker's place on the board and its deadline, once it has waited: the deadline
        // is set then, under the lock it takes anyway, since a future is first polled at once.
        place: Option<(usize, u64)>,
    }

    impl<'a, F> PinnedDrop for Within<'a, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some((place, _)) = this.place.take() {
                lock(this.board).wakers.try_remove(place);
            }
        }
    }
}

impl<F: Future> Future for Within<'_, F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        let mut board = lock(this.board);
        match *this.place {
            None => {
                let due = board.now.saturating_add(*this.ticks);
                let place = board.wakers.insert((due, cx.waker().clone()));
                *this.place = Some((place, due));
            }
            Some((place, due)) if board.now >= due => {
                board.wakers.try_remove(place);
                *this.place = None;
                return Poll::Ready(Err(Elapsed));
            }
            Some((place, _)) => {
                if let Some((_, waker)) = board.wakers.get_mut(place) {
                    waker.clone_from(cx.waker());
                }
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_future_past_its_timeout_is_elapsed_never_before() {
        let deadlines = Deadlines::default();
        tokio::spawn(deadlines.clone().keep());
        // Part-way through a tick, as requests are.
        tokio::time::sleep(TICK * 3 / 2).await;
        let timeout = Duration::from_secs(2);
        let started = Instant::now();
        let answer = deadlines
            .within(timeout, std::future::pending::<()>())
            .await;
        assert!(answer.is_err());
        let waited = started.elapsed();
        assert!(waited >= timeout, "{waited:?}");
        assert!(waited <= timeout + 2 * TICK, "{waited:?}");
        // Its place was given back.
        assert!(lock(&deadlines.0).wakers.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_future_that_finishes_in_time_is_its_own_answer_and_leaves_the_board() {
        let deadlines = Deadlines::default();
        tokio::spawn(deadlines.clone().keep());
        let answer = deadlines
            .within(Duration::from_secs(2), async {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                7
            })
            .await;
        assert_eq!(answer.unwrap(), 7);
        assert!(lock(&deadlines.0).wakers.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn many_waiting_each_get_their_own_deadline() {
        let deadlines = Deadlines::default();
        tokio::spawn(deadlines.clone().keep());
        let started = Instant::now();
        let waits: Vec<_> = (1..=5u64)
            .map(|secs| {
                let deadlines = deadlines.clone();
                tokio::spawn(async move {
                    let answer = deadlines
                        .within(Duration::from_secs(secs), std::future::pending::<()>())
                        .await;
                    (secs, answer.is_err(), Instant::now())
                })
            })
            .collect();
        for wait in waits {
            let (secs, elapsed, at) = wait.await.unwrap();
            assert!(elapsed);
            let waited = at - started;
            assert!(waited >= Duration::from_secs(secs), "{secs}: {waited:?}");
            assert!(
                waited <= Duration::from_secs(secs) + 2 * TICK,
                "{secs}: {waited:?}"
            );
        }
    }
}
