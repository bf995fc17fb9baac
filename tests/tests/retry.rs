//! The retry policy on both stacks: real clients behind the retry layer,
//! real servers that drain, refuse, reset, close, throttle and start late.

mod support;

/// The same tests, once per stack: `$stack` is the stack's `support` module,
/// `$retry` its retry helpers.
macro_rules! retry_tests {
    ($stack:ident, $retry:ident) => {
        mod $stack {
            use std::collections::BTreeMap;
            use std::sync::atomic::Ordering;
            use std::sync::Arc;
            use std::time::Duration;

            use h2_frame_server::{FrameServer, Reason as Wire};
            use hyper_classify::retry::{self, RetryBudget, RetryConfig, StopReason};
            use hyper_classify::{Cause, ConnectKind};
            use tokio::sync::Semaphore;
            use tokio::task::JoinSet;
            use tokio::time::Instant;

            use crate::support::ledger::{self, Chaos};
            use crate::support::{$retry as stack, $stack::Method};

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn no_post_is_processed_twice_and_every_get_succeeds() {
                const REQUESTS: u64 = 3000;
                let chaos = Chaos {
                    go_away_every: 100,
                    refuse_ids_divisible_by: 10,
                    close_at_streams: &[700, 1900],
                    ..Chaos::default()
                };
                let (addr, ledger) = ledger::serve(chaos).await;
                let policy = retry::policy(RetryConfig::default().budget(None)).unwrap();
                let client = stack::retry_client(policy.clone());
                let url = format!("http://{addr}/");

                let in_flight = Arc::new(Semaphore::new(64));
                let mut requests = JoinSet::new();
                for id in 0..REQUESTS {
                    let permit = in_flight.clone().acquire_owned().await.unwrap();
                    let (client, url) = (client.clone(), url.clone());
                    let method = if id % 2 == 0 { Method::POST } else { Method::GET };
                    requests.spawn(async move {
                        let result = stack::send(&client, stack::request_with_id(method, &url, id)).await;
                        drop(permit);
                        (id, result)
                    });
                }

                let mut failed_posts = BTreeMap::new();
                while let Some(joined) = requests.join_next().await {
                    let (id, result) = joined.unwrap();
                    let Err(err) = result else { continue };
                    assert!(id % 2 == 0, "GET {id} failed: {err}");
                    let verdict = err.verdict().unwrap_or_else(|| panic!("POST {id}: unclassified {err}"));
                    assert!(!matches!(verdict.cause(), Cause::Unrecognized { .. }), "POST {id}: {err}");
                    assert!(ledger.times_processed(id) <= 1);
                    *failed_posts.entry(format!("{:?}", err.reason())).or_insert(0) += 1;
                }

                // GETs may be processed twice (they are idempotent); POSTs never.
                let duplicates: Vec<u64> = ledger.duplicates().into_iter().filter(|id| id % 2 == 0).collect();
                let get_duplicates = ledger.duplicates().len() - duplicates.len();
                let stats = policy.stats();
                println!(
                    "exactly-once ({}): {REQUESTS} requests, {} streams, {} GOAWAYs, {} refused, \
                     {} TCP closes, {} retries ({} immediate), POSTs failed {:?}, GETs processed twice {}, \
                     POSTs processed twice {}",
                    stringify!($stack),
                    ledger.streams.load(Ordering::SeqCst),
                    ledger.go_aways.load(Ordering::SeqCst),
                    ledger.refused.load(Ordering::SeqCst),
                    ledger.closes.load(Ordering::SeqCst),
                    stats.retries,
                    stats.transparent_retries,
                    failed_posts,
                    get_duplicates,
                    duplicates.len(),
                );
                assert!(duplicates.is_empty(), "POSTs processed twice: {duplicates:?}");
                assert!(ledger.go_aways.load(Ordering::SeqCst) > 0, "the chaos must happen");
                assert!(ledger.refused.load(Ordering::SeqCst) > 0, "the chaos must happen");
                assert_eq!(ledger.closes.load(Ordering::SeqCst), 2, "the chaos must happen");
                assert!(stats.retries > 0);
            }

            /// Binds `addr` after 1.5 s, as a sidecar proxy that starts late.
            fn listen_late(addr: std::net::SocketAddr) {
                ledger::serve_late(addr, Duration::from_millis(1500), Chaos::default());
            }

            #[tokio::test(start_paused = true)]
            async fn startup_grace_rides_out_a_late_sidecar() {
                let addr = crate::support::closed_port().await;
                listen_late(addr);
                let policy = retry::policy(RetryConfig::default()).unwrap();
                let started = Instant::now();
                let url = format!("http://{addr}/");
                let request = stack::request_with_id(Method::POST, &url, 1);
                let status = stack::send(&stack::retry_client(policy.clone()), request).await;
                assert_eq!(status.unwrap(), 200);
                assert!(started.elapsed() >= Duration::from_millis(1500));
                assert!(policy.stats().grace_retries >= 3, "{:?}", policy.stats());
            }

            #[tokio::test(start_paused = true)]
            async fn without_startup_grace_a_late_sidecar_fails_the_request() {
                let addr = crate::support::closed_port().await;
                listen_late(addr);
                let config = RetryConfig::default().startup_grace(Duration::ZERO);
                let policy = retry::policy(config).unwrap();
                let url = format!("http://{addr}/");
                let request = stack::request_with_id(Method::POST, &url, 1);
                let err = stack::send(&stack::retry_client(policy), request).await.unwrap_err();
                assert_eq!(err.reason(), StopReason::AttemptsExhausted, "{err}");
                assert_eq!(err.attempts(), 3);
                let cause = err.verdict().unwrap().cause();
                assert_eq!(cause, Cause::Connect(ConnectKind::Refused));
            }

            #[tokio::test]
            async fn retries_stay_within_the_budget() {
                const REQUESTS: usize = 100;
                let chaos = Chaos {
                    reset_everything: Some(h2_04::Reason::INTERNAL_ERROR),
                    ..Chaos::default()
                };
                let (addr, ledger) = ledger::serve(chaos).await;
                // 10% of requests plus 1 a second over 10 s: 10 + 10 retries.
                let budget = RetryBudget::new(Duration::from_secs(10), 1, 0.1);
                let policy = retry::policy(RetryConfig::default().budget(Some(budget))).unwrap();
                let client = stack::retry_client(policy.clone());
                let url = format!("http://{addr}/");
                let mut requests = JoinSet::new();
                for id in 0..REQUESTS as u64 {
                    let client = client.clone();
                    let request = stack::request_with_id(Method::GET, &url, id);
                    requests.spawn(async move { stack::send(&client, request).await });
                }
                let mut exhausted = 0;
                while let Some(joined) = requests.join_next().await {
                    let err = joined.unwrap().unwrap_err();
                    exhausted += usize::from(err.is_budget_exhausted());
                }
                let retries = ledger.streams.load(Ordering::SeqCst) - REQUESTS;
                // Without the budget, 3 attempts each would be 200 retries.
                assert!((10..=20).contains(&retries), "{retries} retries reached the server");
                assert!(exhausted > 0);
                assert_eq!(policy.stats().budget_exhausted as usize, exhausted);
            }

            #[tokio::test(start_paused = true)]
            async fn enhance_your_calm_is_retried_only_after_a_throttled_backoff() {
                let server = FrameServer::start(|mut conn| async move {
                    conn.handshake().await?;
                    if let Some(stream) = conn.next_request().await? {
                        match conn.index() {
                            0 => conn.go_away(0, Wire::ENHANCE_YOUR_CALM).await?,
                            _ => conn.respond(stream, b"calm").await?,
                        }
                    }
                    conn.drain().await
                })
                .await
                .unwrap();
                let policy = retry::policy(RetryConfig::default()).unwrap();
                let started = Instant::now();
                let request = stack::request_with_id(Method::GET, &server.url(), 1);
                let status = stack::send(&stack::retry_client(policy.clone()), request).await;
                assert_eq!(status.unwrap(), 200);
                // Throttled waits are at least half the 1 s throttled base.
                assert!(started.elapsed() >= Duration::from_millis(500), "{:?}", started.elapsed());
                let stats = policy.stats();
                assert_eq!((stats.retries, stats.transparent_retries, stats.retries_go_away), (1, 0, 1));
            }

            #[tokio::test]
            async fn a_body_that_cannot_be_replayed_is_not_retried_and_the_error_says_why() {
                let chaos = Chaos {
                    reset_everything: Some(h2_04::Reason::REFUSED_STREAM),
                    ..Chaos::default()
                };
                let (addr, ledger) = ledger::serve(chaos).await;
                let policy = retry::policy(RetryConfig::default()).unwrap();
                let err = stack::post_not_replayable(policy, &format!("http://{addr}/"))
                    .await
                    .unwrap_err();
                assert_eq!(err.reason(), StopReason::BodyNotReplayable);
                assert!(err.to_string().contains("body cannot be replayed"), "{err}");
                assert_eq!(ledger.streams.load(Ordering::SeqCst), 1);
            }

            #[tokio::test]
            async fn http_1_1_required_says_the_request_needs_http_1_1() {
                let server = crate::support::go_away_on_first_request(0, Wire::HTTP_1_1_REQUIRED).await;
                let policy = retry::policy(RetryConfig::default()).unwrap();
                let request = stack::request_with_id(Method::GET, &server.url(), 1);
                let err = stack::send(&stack::retry_client(policy), request).await.unwrap_err();
                assert_eq!(err.reason(), StopReason::RequiresHttp1);
                assert!(err.to_string().contains("requires HTTP/1.1"), "{err}");
            }

            #[tokio::test]
            async fn the_tower_retry_policy_retries_a_draining_go_away() {
                let server = FrameServer::start(|mut conn| async move {
                    conn.handshake().await?;
                    if let Some(stream) = conn.next_request().await? {
                        match conn.index() {
                            0 => conn.go_away(0, Wire::NO_ERROR).await?,
                            _ => conn.respond(stream, b"hello").await?,
                        }
                    }
                    conn.drain().await
                })
                .await
                .unwrap();
                let policy = retry::policy(RetryConfig::default()).unwrap();
                let status = stack::get_with_tower_policy(policy.clone(), &server.url()).await;
                assert_eq!(status.unwrap(), 200);
                assert_eq!(policy.stats().transparent_retries, 1);
                assert_eq!(server.accepted(), 2);
            }
        }
    };
}

#[cfg(feature = "legacy")]
retry_tests!(legacy, legacy_retry);

#[cfg(feature = "modern")]
retry_tests!(modern, modern_retry);
