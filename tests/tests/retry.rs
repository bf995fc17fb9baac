//! The retry policy on both stacks: real clients behind the retry layer,
//! real servers that drain, refuse, reset, close, throttle and start late.

mod support;

use std::sync::Arc;
use std::time::Duration;

use h2_frame_server::ledger::Ledger;

/// How long a test request may take before it counts as hung.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The storms' attempt timeout: an attempt stuck on a connection that no
/// longer makes progress is given up after this long.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// What an exactly-once storm left behind.
struct Storm {
    ledger: Arc<Ledger>,
    post_duplicates: Vec<u64>,
}

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

            use crate::{Storm, ATTEMPT_TIMEOUT, REQUEST_TIMEOUT};

            use crate::support::ledger::{self, ActsOn, Chaos};
            use crate::support::{$retry as stack, $stack::Method};

            /// 3,000 requests, half GETs (no body) and half POSTs (with
            /// `post_body`), at 64 in flight through the retry layer,
            /// against a server that drains every 100 streams, refuses
            /// every tenth id once and drops two TCP connections with
            /// streams in flight. Checks what must hold whatever the
            /// server's kind: no request hangs, every GET succeeds, a POST
            /// fails only when it may have been processed, and a request
            /// the server never processed is never given up.
            async fn storm(acts_on: ActsOn, post_body: &'static [u8]) -> Storm {
                storm_with(acts_on, post_body, RetryConfig::default()).await
            }

            /// [`storm`] with `config` (its budget off, its attempt timeout
            /// [`ATTEMPT_TIMEOUT`]).
            async fn storm_with(acts_on: ActsOn, post_body: &'static [u8], config: RetryConfig) -> Storm {
                const REQUESTS: u64 = 3000;
                let chaos = Chaos {
                    go_away_every: 100,
                    refuse_ids_divisible_by: 10,
                    close_at_streams: &[700, 1900],
                    acts_on,
                    ..Chaos::default()
                };
                let (addr, ledger) = ledger::serve(chaos).await;
                let config = config.budget(None).attempt_timeout(Some(ATTEMPT_TIMEOUT));
                let policy = retry::policy(config).unwrap();
                let client = stack::retry_client(policy.clone());
                let url = format!("http://{addr}/");

                let in_flight = Arc::new(Semaphore::new(64));
                let mut requests = JoinSet::new();
                for id in 0..REQUESTS {
                    let permit = in_flight.clone().acquire_owned().await.unwrap();
                    let (client, url) = (client.clone(), url.clone());
                    let (method, body) = if id % 2 == 0 { (Method::POST, post_body) } else { (Method::GET, &b""[..]) };
                    requests.spawn(async move {
                        let request = stack::request_with_body(method, &url, id, body);
                        let result = tokio::time::timeout(REQUEST_TIMEOUT, stack::send(&client, request)).await;
                        drop(permit);
                        (id, result)
                    });
                }

                let mut failed_posts = BTreeMap::new();
                let mut hung = Vec::new();
                while let Some(joined) = requests.join_next().await {
                    let (id, result) = joined.unwrap();
                    let result = match result {
                        Ok(result) => result,
                        Err(_elapsed) => {
                            hung.push((id, ledger.seen(id)));
                            continue;
                        }
                    };
                    let Err(err) = result else { continue };
                    assert!(id % 2 == 0, "GET {id} failed: {err} ({:?}; {err:?})", err.verdict());
                    let verdict = err.verdict().unwrap_or_else(|| panic!("POST {id}: unclassified {err}"));
                    assert_eq!(err.reason(), StopReason::NotIdempotent, "POST {id}: {err}");
                    assert!(!verdict.is_never_processed(), "POST {id} was given up unprocessed: {err}");
                    *failed_posts.entry(verdict.cause().to_string()).or_insert(0) += 1;
                }
                let stats = policy.stats();
                assert!(
                    hung.is_empty(),
                    "requests still waiting after {REQUEST_TIMEOUT:?} (id, what the server saw): \
                     {hung:?}; {stats:?}"
                );

                let post_duplicates: Vec<u64> = ledger.duplicates().into_iter().filter(|id| id % 2 == 0).collect();
                let get_duplicates = ledger.duplicates().len() - post_duplicates.len();
                println!(
                    "exactly-once ({}, acts on {acts_on:?}, POST body {} bytes): {REQUESTS} requests, \
                     {} streams, {} incomplete, {} GOAWAYs, {} refused, {} TCP closes, {} retries \
                     ({} free, {} refusal streak, {} after GOAWAY, {} after an attempt timeout), \
                     POSTs failed {failed_posts:?}, \
                     GETs processed twice {get_duplicates}, POSTs processed twice {}",
                    stringify!($stack),
                    post_body.len(),
                    ledger.streams.load(Ordering::SeqCst),
                    ledger.incomplete(),
                    ledger.go_aways.load(Ordering::SeqCst),
                    ledger.refused.load(Ordering::SeqCst),
                    ledger.closes.load(Ordering::SeqCst),
                    stats.retries,
                    stats.transparent_retries,
                    stats.refusal_retries,
                    stats.retries_go_away,
                    stats.retries_timeout,
                    post_duplicates.len(),
                );
                assert!(ledger.go_aways.load(Ordering::SeqCst) > 0, "the chaos must happen");
                assert!(ledger.refused.load(Ordering::SeqCst) > 0, "the chaos must happen");
                assert_eq!(ledger.closes.load(Ordering::SeqCst), 2, "the chaos must happen");
                assert!(stats.retries > 0);
                assert_eq!(stats.requests, REQUESTS);
                Storm { ledger, post_duplicates }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn no_post_is_processed_twice_and_every_get_succeeds() {
                let storm = storm(ActsOn::CompleteRequest, b"order").await;
                assert!(storm.post_duplicates.is_empty(), "POSTs processed twice: {:?}", storm.post_duplicates);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn no_bodiless_post_is_processed_twice() {
                let storm = storm(ActsOn::CompleteRequest, b"").await;
                assert!(storm.post_duplicates.is_empty(), "POSTs processed twice: {:?}", storm.post_duplicates);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn no_bodiless_post_is_processed_twice_by_a_server_acting_on_headers() {
                let storm = storm(ActsOn::Headers, b"").await;
                assert!(storm.post_duplicates.is_empty(), "POSTs processed twice: {:?}", storm.post_duplicates);
            }

            /// The one case outside the promise: a server that acts on a
            /// request's HEADERS may have processed a request that hyper
            /// failed with a GOAWAY before sending its body. Every POST it
            /// processed twice must be such a request: one of its streams
            /// never arrived whole.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_server_acting_on_headers_duplicates_only_requests_cut_off_by_a_go_away() {
                let storm = storm(ActsOn::Headers, b"order").await;
                for id in &storm.post_duplicates {
                    let seen = storm.ledger.seen(*id);
                    assert!(seen.complete < seen.heads, "POST {id} processed twice, each time whole: {seen:?}");
                }
            }
            /// hyper's GOAWAY race, measured: every peer GOAWAY taken as
            /// "never processed", POSTs with and without a body, a server
            /// that acts on HEADERS. With stock hyper a POST failed with a
            /// GOAWAY after its HEADERS left can be processed, and is then
            /// replayed; with the fix in `patches/` none is. `cargo xtask hyper-patch` runs
            /// it on both, and sets `HYPER_GOAWAY_RACE_FIXED` for the
            /// patched run, where a duplicate fails it.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "a measurement of hyper itself: cargo xtask hyper-patch runs it"]
            async fn go_away_race() {
                const STORMS: usize = 5;
                let fixed = std::env::var_os("HYPER_GOAWAY_RACE_FIXED").is_some();
                let mut all = Vec::new();
                for (kind, body) in [("bodiless", &b""[..]), ("with a body", &b"order"[..])] {
                    let mut duplicates = Vec::new();
                    for _ in 0..STORMS {
                        let config = RetryConfig::default().go_away_never_processed(true);
                        duplicates.extend(storm_with(ActsOn::Headers, body, config).await.post_duplicates);
                    }
                    println!(
                        "GOAWAY race ({}, {} hyper): {} of {} POSTs {kind} processed twice",
                        stringify!($stack),
                        if fixed { "patched" } else { "stock" },
                        duplicates.len(),
                        STORMS * 1500,
                    );
                    all.extend(duplicates);
                }
                if fixed {
                    assert!(all.is_empty(), "POSTs processed twice: {all:?}");
                }
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

            /// The closed-port experiment: once a request has succeeded on
            /// the policy, a server gone away is an outage, not a start-up.
            /// 50 GETs at 50 in flight fail within their usual backoff, none
            /// through the startup grace, and the budget caps the retries
            /// (its reserve of 100, 20% of the requests, one free retry each
            /// after hyper 0.14 hands a request back when the connect it
            /// waited on failed).
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn after_a_first_success_a_closed_port_gets_no_startup_grace() {
                let server = FrameServer::start(|mut conn| async move {
                    conn.handshake().await?;
                    if let Some(stream) = conn.next_request().await? {
                        conn.respond(stream, b"up").await?;
                    }
                    conn.drain().await
                })
                .await
                .unwrap();
                let policy = retry::policy(RetryConfig::default()).unwrap();
                let client = stack::retry_client(policy.clone());
                let first = stack::send(&client, stack::request_with_id(Method::GET, &server.url(), 0));
                assert_eq!(tokio::time::timeout(Duration::from_secs(10), first).await.unwrap().unwrap(), 200);

                let url = format!("http://{}/", crate::support::closed_port().await);
                let started = Instant::now();
                let mut requests = JoinSet::new();
                for id in 1..=50 {
                    let (client, url) = (client.clone(), url.clone());
                    requests.spawn(async move {
                        let sent = stack::send(&client, stack::request_with_id(Method::GET, &url, id));
                        let outcome = tokio::time::timeout(Duration::from_secs(10), sent).await;
                        (outcome, started.elapsed())
                    });
                }
                let mut attempts = BTreeMap::new();
                let mut took = Vec::new();
                while let Some(joined) = requests.join_next().await {
                    let (outcome, elapsed) = joined.unwrap();
                    took.push(elapsed);
                    let err = outcome.expect("failed within 10 s").unwrap_err();
                    let cause = err.verdict().map(|v| v.cause());
                    assert!(matches!(cause, Some(Cause::Connect(_) | Cause::NotSent)), "{err}");
                    // A request handed back when the connect it waited on
                    // failed is unsent, on both stacks.
                    assert_ne!(cause, Some(Cause::Connect(ConnectKind::Other)), "{err:?}");
                    *attempts.entry(err.attempts()).or_insert(0) += 1;
                }
                let stats = policy.stats();
                took.sort();
                let p99 = took[took.len() * 99 / 100 - 1];
                println!(
                    "closed port after a success ({}): 50 requests failed in {:?}, p99 {p99:?}; \
                     (attempts, requests): {attempts:?}; {} retries",
                    stringify!($stack),
                    started.elapsed(),
                    stats.retries,
                );
                assert_eq!(stats.grace_retries, 0, "{stats:?}");
                // The budget's reserve (100) and 20 % of the 51 requests.
                assert!(stats.retries <= 100 + 11, "{stats:?}");
                let most = attempts.keys().max().copied().unwrap_or(0);
                assert!(most <= 3, "at most max_attempts sends a request: {attempts:?}");
                assert!(p99 <= Duration::from_secs(2), "p99 time to fail {p99:?}");
            }

            /// hyper drops a request's extensions, and with them the
            /// layer's handover marker, when it hands the request to a
            /// connection: a POST the server answers late is waited for,
            /// not sent again when the handover timeout passes.
            #[tokio::test]
            async fn a_post_answered_after_the_handover_timeout_is_sent_once() {
                let server = FrameServer::start(|mut conn| async move {
                    conn.handshake().await?;
                    while let Some(stream) = conn.next_request().await? {
                        tokio::time::sleep(Duration::from_millis(600)).await;
                        conn.respond(stream, b"late").await?;
                    }
                    Ok(())
                })
                .await
                .unwrap();
                let config = RetryConfig::default().handover_timeout(Some(Duration::from_millis(100)));
                let policy = retry::policy(config).unwrap();
                let request = stack::request_with_id(Method::POST, &server.url(), 1);
                let client = stack::retry_client(policy.clone());
                let sent = stack::send(&client, request);
                let status = tokio::time::timeout(Duration::from_secs(10), sent).await.unwrap();
                assert_eq!(status.unwrap(), 200);
                let stats = policy.stats();
                assert_eq!((stats.attempts, stats.handover_timeouts), (1, 0), "{stats:?}");
                assert_eq!(server.accepted(), 1);
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
