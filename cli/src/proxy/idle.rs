//! The head timeout: a connection with no request in flight, and none begun or ended, for the
//! timeout is closed, so that a client that sends nothing, trickles a head or sits kept-alive
//! cannot hold the proxy's sockets. One task judges every connection on a tick of a quarter
//! of the timeout. hyper's own head timeout sets a timer for each request and cancels it once
//! the head is in (about 900 instructions per callback and a clock read), and a timer polled
//! beside each connection costs most of that again; here a request costs a few counter updates.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::task::AbortHandle;

/// Ticks in one timeout: the timeout is kept to within a quarter of itself, never early.
const TICKS: u32 = 4;

/// What one connection's requests have done; each clone shares it.
#[derive(Clone, Default)]
pub struct Activity(Arc<Counters>);

#[derive(Default)]
struct Counters {
    /// Requests whose answer is not yet handed to hyper.
    in_flight: AtomicUsize,
    /// Requests begun and ended, so that a tick can tell whether anything happened since the
    /// last one.
    events: AtomicU64,
}

impl Activity {
    /// Marks a request begun: `future`, its answer, marks it ended when done or dropped.
    pub fn track<F>(&self, future: F) -> Tracked<F> {
        self.0.in_flight.fetch_add(1, Ordering::Relaxed);
        self.0.events.fetch_add(1, Ordering::Relaxed);
        Tracked {
            future,
            _busy: Busy(Arc::clone(&self.0)),
        }
    }
}

/// Marks its request ended when dropped: answered, refused or cut short alike.
struct Busy(Arc<Counters>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.events.fetch_add(1, Ordering::Relaxed);
    }
}

pin_project_lite::pin_project! {
    /// A request's answer, counted in flight until it is dropped.
    pub struct Tracked<F> {
        #[pin]
        future: F,
        _busy: Busy,
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().future.poll(cx)
    }
}

/// The connections being watched; each clone shares them.
#[derive(Clone, Default)]
pub struct Watchdog(Arc<Mutex<Vec<Watched>>>);

struct Watched {
    /// Gone once the connection has ended: then it is no longer watched.
    activity: Weak<Counters>,
    /// The connection's task, aborted (its socket closed) once quiet for the timeout.
    close: AbortHandle,
    /// `events` at the last tick; `None` until the first, so that no tick before the
    /// connection was watched counts towards its quiet spell.
    seen: Option<u64>,
    /// Quiet ticks in a row.
    quiet: u32,
}

impl Watchdog {
    /// Watches the connection whose requests `activity` counts, served by the task `close`.
    pub fn watch(&self, activity: &Activity, close: AbortHandle) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Watched {
                activity: Arc::downgrade(&activity.0),
                close,
                seen: None,
                quiet: 0,
            });
    }

    /// Closes each connection once it has been quiet for `timeout`: never sooner, and at most
    /// a quarter of `timeout` later. Runs for ever (a task of the runtime).
    pub async fn close_quiet(self, timeout: Duration) {
        super::tick::every(timeout / TICKS, || self.tick()).await;
    }

    /// One tick: counts each connection's quiet spell, closes those that reached the timeout,
    /// and forgets those that have ended.
    fn tick(&self) {
        let mut watched = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        watched.retain_mut(|connection| {
            let Some(activity) = connection.activity.upgrade() else {
                return false;
            };
            let events = activity.events.load(Ordering::Relaxed);
            // Quiet since the last tick: nothing in flight, nothing begun or ended. The first
            // quiet tick after a request ended comes at least one period after it, so the
            // `TICKS`-th comes at least the timeout after it.
            if connection.seen == Some(events) && activity.in_flight.load(Ordering::Relaxed) == 0 {
                connection.quiet += 1;
            } else {
                connection.seen = Some(events);
                connection.quiet = 0;
            }
            if connection.quiet < TICKS {
                return true;
            }
            connection.close.abort();
            false
        });
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(8);

    /// A connection's stand-in: a task that holds its activity until aborted, and says when.
    fn connection(watchdog: &Watchdog) -> (Activity, tokio::task::JoinHandle<()>) {
        let activity = Activity::default();
        let held = activity.clone();
        let task = tokio::spawn(async move {
            let _held = held;
            std::future::pending::<()>().await;
        });
        watchdog.watch(&activity, task.abort_handle());
        (activity, task)
    }

    /// Runs the watchdog; returns when `task` was closed, measured from now.
    async fn closed_after(task: tokio::task::JoinHandle<()>) -> Duration {
        let started = Instant::now();
        assert!(task.await.unwrap_err().is_cancelled());
        started.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_connection_is_closed_after_the_timeout_and_no_sooner() {
        let watchdog = Watchdog::default();
        tokio::spawn(watchdog.clone().close_quiet(TIMEOUT));
        // Watched part-way through a tick, as connections are.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (_activity, task) = connection(&watchdog);
        let waited = closed_after(task).await;
        assert!(waited >= TIMEOUT, "{waited:?}");
        assert!(waited <= TIMEOUT + TIMEOUT / 4, "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_keeps_the_connection_and_its_end_restarts_the_count() {
        let watchdog = Watchdog::default();
        tokio::spawn(watchdog.clone().close_quiet(TIMEOUT));
        let (activity, task) = connection(&watchdog);
        let request = activity.track(std::future::pending::<()>());
        // In flight for three timeouts: never closed meanwhile.
        tokio::time::sleep(TIMEOUT * 3).await;
        assert!(!task.is_finished());
        drop(request);
        let waited = closed_after(task).await;
        assert!(waited >= TIMEOUT, "{waited:?}");
        assert!(waited <= TIMEOUT + TIMEOUT / 4, "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn requests_one_after_another_keep_the_connection() {
        let watchdog = Watchdog::default();
        tokio::spawn(watchdog.clone().close_quiet(TIMEOUT));
        let (activity, task) = connection(&watchdog);
        // A short request every 5 s, for a minute: no quiet spell reaches the timeout.
        for _ in 0..12 {
            tokio::time::sleep(Duration::from_secs(5)).await;
            activity.track(async {}).await;
            assert!(!task.is_finished());
        }
        let waited = closed_after(task).await;
        assert!(waited >= TIMEOUT, "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_ended_connection_is_forgotten() {
        let watchdog = Watchdog::default();
        let (_, task) = connection(&watchdog);
        task.abort();
        let _ = task.await;
        watchdog.tick();
        assert!(watchdog.0.lock().unwrap().is_empty());
    }
}
