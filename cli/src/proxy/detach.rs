//! A future that finishes even when whoever awaits it goes: polled in place while it is awaited
//! (no task of its own, no hand-over), and, if dropped before it is done, spawned to run to its
//! end. The proxy's exchanges are such futures: a callback whose client left is still settled
//! by the upstream's answer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio_util::task::TaskTracker;

/// `future`, boxed once, finishing on `tracker`'s watch if dropped unfinished.
pub struct Detach<F: Future + Send + 'static>
where
    F::Output: Send,
{
    future: Option<Pin<Box<F>>>,
    tracker: TaskTracker,
}

impl<F: Future + Send + 'static> Detach<F>
where
    F::Output: Send,
{
    pub fn new(future: F, tracker: &TaskTracker) -> Self {
        Self {
            future: Some(Box::pin(future)),
            tracker: tracker.clone(),
        }
    }
}

impl<F: Future + Send + 'static> Future for Detach<F>
where
    F::Output: Send,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let Some(future) = self.future.as_mut() else {
            // Polled again after it finished: it stays pending, as a finished future may.
            return Poll::Pending;
        };
        let output = std::task::ready!(future.as_mut().poll(cx));
        self.future = None;
        Poll::Ready(output)
    }
}

impl<F: Future + Send + 'static> Drop for Detach<F>
where
    F::Output: Send,
{
    fn drop(&mut self) {
        if let Some(future) = self.future.take() {
            // A runtime is there: drops happen on its threads (connections are its tasks).
            self.tracker.spawn(future);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn awaited_it_runs_in_place_and_dropped_it_runs_to_its_end() {
        let tracker = TaskTracker::new();
        assert_eq!(Detach::new(async { 7 }, &tracker).await, 7);
        assert!(
            tracker.is_empty(),
            "nothing spawned when awaited to its end"
        );

        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let finished = Arc::new(AtomicBool::new(false));
        let done = finished.clone();
        let detached = Detach::new(
            async move {
                let _ = wait.await;
                done.store(true, Ordering::SeqCst);
            },
            &tracker,
        );
        drop(detached);
        assert_eq!(tracker.len(), 1, "spawned when dropped unfinished");
        go.send(()).unwrap();
        tracker.close();
        tracker.wait().await;
        assert!(finished.load(Ordering::SeqCst));
    }
}
