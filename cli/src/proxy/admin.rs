//! The admin listener: `/healthz` (the proxy is up and its replay store answers) and
//! `/metrics` (Prometheus text: the library's metrics and the upstream's).

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use http::StatusCode;
use metrics_exporter_prometheus::PrometheusHandle;
use vonage_secure_callbacks::replay::{Attempt, ReplayKey, ReplayStore, Retention};
use vonage_secure_callbacks::{Clock, SystemClock};

pub fn router<R: ReplayStore>(store: R, recorder: PrometheusHandle) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(move || {
                let store = store.clone();
                async move { health(&store).await }
            }),
        )
        .route(
            "/metrics",
            get(move || std::future::ready(recorder.render())),
        )
}

/// Up, and the replay store answers a look-up within a second.
async fn health<R: ReplayStore>(store: &R) -> (StatusCode, &'static str) {
    let now = SystemClock.now();
    let attempt = Attempt::new(
        ReplayKey::new("healthz", "healthz"),
        now,
        now,
        Retention::new(now + 1, now),
    );
    match tokio::time::timeout(Duration::from_secs(1), store.lookup(&attempt)).await {
        Ok(Ok(_)) => (StatusCode::OK, "ok\n"),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "replay store unavailable\n",
        ),
    }
}
