//! The Redis store as production runs it, against real `redis-server` processes on loopback: a
//! 3-master Redis Cluster, a TLS-only Redis with a certificate the test makes, a Redis whose
//! eviction policy could drop replay keys, and configuring a store after it was cloned.
#![cfg(feature = "redis")]

use crate::common;

#[cfg(any(feature = "redis-cluster", feature = "redis-tls"))]
use std::time::Duration;

use common::redis_servers::RedisServer;
#[cfg(any(feature = "redis-cluster", feature = "redis-tls"))]
use common::*;
#[cfg(any(feature = "redis-cluster", feature = "redis-tls"))]
use http::StatusCode;
use vonage_secure_callbacks::replay::RedisReplayStore;

#[cfg(any(feature = "redis-cluster", feature = "redis-tls"))]
const BODY: &[u8] = br#"{"id":"b40ef09b","status":"started"}"#;

#[cfg(any(feature = "redis-cluster", feature = "redis-tls"))]
fn prefix(test: &str) -> String {
    format!("{test}-{}", vonage_secure_callbacks::test_util::fresh_jti())
}

#[tokio::test]
async fn the_eviction_policy_is_checked_at_connect() {
    let safe = RedisServer::start();
    let store = RedisReplayStore::connect(&safe.url()).await.unwrap();
    assert!(!store.may_evict());
    let risky = RedisServer::start_with(&[
        "--save",
        "",
        "--maxmemory",
        "100mb",
        "--maxmemory-policy",
        "volatile-lru",
    ]);
    let store = RedisReplayStore::connect(&risky.url()).await.unwrap();
    assert!(store.may_evict(), "{store:?}");
    // A limit with noeviction is safe: writes fail (503, retried) rather than forget.
    let strict = RedisServer::start_with(&[
        "--save",
        "",
        "--maxmemory",
        "100mb",
        "--maxmemory-policy",
        "noeviction",
    ]);
    assert!(!RedisReplayStore::connect(&strict.url())
        .await
        .unwrap()
        .may_evict());
}

#[tokio::test]
async fn keys_are_set_where_the_store_is_built_and_never_ambiguous() {
    use vonage_secure_callbacks::replay::ReplayKey;
    let server = RedisServer::start();
    let default = RedisReplayStore::connect(&server.url()).await.unwrap();
    let other = RedisReplayStore::builder(&server.url())
        .prefix("other")
        .connect()
        .await
        .unwrap();
    // Vonage's keys and jtis: the same key as 0.2 wrote, so an upgrade forgets nothing.
    let key = ReplayKey::new("a1b2c3d4", "c5ba8f24-1a14-4c1e-93e6-a98f1b0a0a1b");
    assert_eq!(
        default.redis_key(&key),
        "vonage-secure-callbacks:a1b2c3d4:c5ba8f24-1a14-4c1e-93e6-a98f1b0a0a1b"
    );
    assert!(other.redis_key(&key).starts_with("other:a1b2c3d4:"));
    // Parts that hold the separator no longer meet at one key.
    let (left, right) = (ReplayKey::new("a:b", "c"), ReplayKey::new("a", "b:c"));
    assert_ne!(default.redis_key(&left), default.redis_key(&right));
    assert_eq!(default.redis_key(&left), "vonage-secure-callbacks:a%3Ab:c");
    let escaped = ReplayKey::new("a%3Ab", "c");
    assert_ne!(default.redis_key(&escaped), default.redis_key(&left));
}

#[cfg(feature = "redis-cluster")]
#[tokio::test]
async fn two_instances_share_replay_protection_through_a_redis_cluster() {
    use common::redis_servers::RedisCluster;
    let cluster = RedisCluster::start();
    let urls = cluster.urls();
    let prefix = prefix("cluster");
    let connect = || async {
        RedisReplayStore::cluster_builder(urls.clone())
            .timeout(Duration::from_secs(1))
            .prefix(&prefix)
            .connect()
            .await
            .unwrap()
    };
    let a = serve_axum(echo_app(layer().replay_store(connect().await))).await;
    let b = serve_axum(echo_app(layer().replay_store(connect().await))).await;
    for _ in 0..30 {
        let auth = bearer(BODY);
        assert_eq!(post(a, Some(&auth), BODY).await.status, StatusCode::OK);
        assert_eq!(post(b, Some(&auth), BODY).await.error(), "replayed_token");
        assert_eq!(post(a, Some(&auth), BODY).await.error(), "replayed_token");
    }
    // 30 keys over 16 384 slots: every master holds some (a chance of 3 * (2/3)^30 < 1e-5 that
    // one holds none).
    let counts = cluster.key_counts();
    assert_eq!(counts.iter().sum::<usize>(), 30, "{counts:?}");
    assert!(counts.iter().all(|&n| n > 0), "{counts:?}");
}

#[cfg(feature = "redis-tls")]
#[tokio::test]
async fn replay_protection_over_tls_with_a_private_ca() {
    use common::certificates::TestCertificates;
    let certificates = TestCertificates::make();
    let server = certificates.start_server();
    let url = format!("rediss://127.0.0.1:{}/", server.port);

    // Without the CA, the server's certificate is not trusted: no connection.
    let untrusted = RedisReplayStore::builder(&url)
        .timeout(Duration::from_secs(2))
        .connect()
        .await;
    assert!(untrusted.is_err(), "connected without trusting the CA");
    // Plain text to a TLS-only port fails too.
    let plain = RedisReplayStore::builder(&format!("redis://127.0.0.1:{}/", server.port))
        .timeout(Duration::from_millis(500))
        .connect()
        .await;
    assert!(plain.is_err());

    let prefix = prefix("tls");
    let connect = || async {
        RedisReplayStore::builder(&url)
            .root_certificate(certificates.ca_pem())
            .timeout(Duration::from_secs(2))
            .prefix(&prefix)
            .connect()
            .await
            .unwrap()
    };
    let a = serve_axum(echo_app(layer().replay_store(connect().await))).await;
    let b = serve_axum(echo_app(layer().replay_store(connect().await))).await;
    let auth = bearer(BODY);
    assert_eq!(post(a, Some(&auth), BODY).await.status, StatusCode::OK);
    assert_eq!(post(b, Some(&auth), BODY).await.error(), "replayed_token");
}
