//! Verdicts against HTTP/2 servers nobody here wrote: nginx and haproxy,
//! started as processes on 127.0.0.1. Skipped, loudly, where they are not
//! installed; under `CI=true` their absence fails the tests.

mod support;

macro_rules! peer_tests {
    ($stack:ident, $retry:ident) => {
        mod $stack {
            use std::time::Duration;

            use h2_frame_server::peers::{self, Kind, Peer};
            use hyper_classify::retry::{self, RetryConfig};
            use hyper_classify::{
                classify, Cause, ConnectKind, Initiator, Pace, Reason, RetrySafety,
            };
            use tokio::task::JoinSet;

            use crate::support::{$retry as retrying, $stack as stack, KeepAlive};

            /// An open connection's next request after `signal` is handed
            /// back (or refused by a GOAWAY), and new connects are refused.
            async fn stopped_peer_hands_back_then_refuses(peer: Peer, signal: &str) {
                let mut send = stack::h2_conn(peer.addr(), KeepAlive::Off).await;
                let url = peer.url();
                let first = send
                    .send_request(stack::request(stack::Method::GET, &url))
                    .await;
                assert!(first.is_ok());
                peer.signal(signal).unwrap();
                tokio::time::sleep(Duration::from_millis(300)).await;
                let request = stack::request(stack::Method::POST, &url);
                let err = send.send_request(request).await.unwrap_err();
                let cause = classify(&err).cause();
                assert!(cause == Cause::NotSent || cause == GO_AWAY, "{err:?}");
                let err = stack::h2_get(&url).await.unwrap_err();
                let refused = Cause::Connect(ConnectKind::Refused);
                assert_eq!(classify(&err).cause(), refused, "{err:?}");
            }

            async fn futures_results<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
                let mut results = Vec::new();
                for future in futures {
                    results.push(future.await);
                }
                results
            }

            const GO_AWAY: Cause = Cause::GoAway {
                reason: Reason::NO_ERROR,
                initiator: Initiator::Remote,
            };

            #[tokio::test]
            async fn nginx_keepalive_requests_go_away_fails_the_streams_above_it() {
                let Some(nginx) = peers::find(Kind::Nginx) else {
                    return;
                };
                let peer = Peer::nginx(&nginx, "keepalive_requests 3;").unwrap();
                let mut send = stack::h2_conn(peer.addr(), KeepAlive::Off).await;
                let url = peer.url();
                let mut in_flight = Vec::new();
                let mut not_ready = Vec::new();
                for _ in 0..8 {
                    match std::future::poll_fn(|cx| send.poll_ready(cx)).await {
                        Ok(()) => in_flight
                            .push(send.send_request(stack::request(stack::Method::GET, &url))),
                        Err(err) => not_ready.push(err),
                    }
                }
                let (mut ok, mut refused) = (0, 0);
                for result in futures_results(in_flight).await {
                    match result {
                        Ok(_) => ok += 1,
                        Err(err) => {
                            // hyper refuses it with the GOAWAY, or hands it back
                            // when it saw the GOAWAY before sending it.
                            let verdict = classify(&err);
                            let cause = verdict.cause();
                            assert!(cause == GO_AWAY || cause == Cause::NotSent, "{err:?}");
                            assert_eq!(verdict.pace(), Pace::Immediate);
                            refused += 1;
                        }
                    }
                }
                // A connection that is gone before a request is handed to it
                // (its readiness fails) is one no request was sent on.
                for err in not_ready {
                    assert!(err.is_closed() || err.is_canceled(), "{err:?}");
                    assert!(classify(&err).permits_retry(true), "{err:?}");
                    refused += 1;
                }
                assert_eq!(
                    (ok, refused),
                    (3, 5),
                    "nginx answers 3 streams, refuses the rest"
                );
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn nginx_keepalive_requests_gets_all_succeed_through_the_retry_layer() {
                let Some(nginx) = peers::find(Kind::Nginx) else {
                    return;
                };
                let peer = Peer::nginx(&nginx, "keepalive_requests 50;").unwrap();
                let policy = retry::policy(RetryConfig::default()).unwrap();
                let client = retrying::retry_client(policy.clone());
                let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
                let mut requests = JoinSet::new();
                for id in 0..400 {
                    let (client, url) = (client.clone(), peer.url());
                    let slot = slots.clone().acquire_owned().await.unwrap();
                    requests.spawn(async move {
                        let request = retrying::request_with_id(stack::Method::GET, &url, id);
                        let result = retrying::send(&client, request).await;
                        drop(slot);
                        result
                    });
                }
                while let Some(joined) = requests.join_next().await {
                    assert_eq!(joined.unwrap().unwrap(), 200);
                }
                // 400 requests over connections of 50: nginx drained 8 of them,
                // refusing the streams in flight above each last_stream_id.
                let stats = policy.stats();
                assert!(stats.retries > 0, "{stats:?}");
            }

            /// nginx draining every 100 requests (`GOAWAY(NO_ERROR)` with its
            /// real `last_stream_id`) in front of a backend that counts every
            /// request it receives whole: 20,000 GETs and 20,000 POSTs with
            /// bodies at 64 in flight through the retry layer with its
            /// defaults. Nothing reaches the caller, every request is
            /// processed, and no POST twice. A GET may be: hyper can fail a
            /// bodiless request with a `GOAWAY` that arrived after its HEADERS
            /// left (the README's "hyper's GOAWAY race"), and a GET is
            /// replayed after an error that leaves its processing in doubt.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn nginx_draining_every_100_requests_loses_nothing_and_duplicates_nothing() {
                const EACH: u64 = 20_000;
                let Some(nginx) = peers::find(Kind::Nginx) else {
                    return;
                };
                let (backend, ledger) = h2_frame_server::ledger::serve_http1().await;
                let peer = Peer::nginx_proxy(&nginx, "keepalive_requests 100;", backend).unwrap();
                let policy = retry::policy(RetryConfig::default()).unwrap();
                let client = retrying::retry_client(policy.clone());
                let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
                let mut requests = JoinSet::new();
                for id in 0..2 * EACH {
                    let (client, url) = (client.clone(), peer.url());
                    let slot = slots.clone().acquire_owned().await.unwrap();
                    requests.spawn(async move {
                        let (method, body) = if id % 2 == 0 {
                            (stack::Method::POST, &b"order"[..])
                        } else {
                            (stack::Method::GET, &b""[..])
                        };
                        let request = retrying::request_with_body(method, &url, id, body);
                        let sent = retrying::send(&client, request);
                        let result = tokio::time::timeout(Duration::from_secs(20), sent).await;
                        drop(slot);
                        (id, result)
                    });
                }
                let mut failed = Vec::new();
                while let Some(joined) = requests.join_next().await {
                    match joined.unwrap() {
                        (_, Ok(Ok(200))) => {}
                        (id, Ok(result)) => failed.push(format!("{id}: {result:?}")),
                        (id, Err(_)) => failed.push(format!("{id}: no answer in 20 s")),
                    }
                }
                let stats = policy.stats();
                // Even ids are POSTs, odd ones GETs.
                let not_once: Vec<(u64, u32)> = (0..2 * EACH)
                    .map(|id| (id, ledger.times_processed(id)))
                    .filter(|&(id, times)| times == 0 || (times > 1 && id % 2 == 0))
                    .collect();
                let gets_twice = (0..2 * EACH)
                    .filter(|id| id % 2 == 1 && ledger.times_processed(*id) > 1)
                    .count();
                println!(
                    "nginx drain ({}): {} requests, {} reached the backend, {} retries ({} free, \
                     {} refusal streak, {} after the handover timeout), {} failed, {} never processed \
                     or POSTs processed twice, {} GETs processed twice",
                    stringify!($stack),
                    2 * EACH,
                    ledger.streams.load(std::sync::atomic::Ordering::SeqCst),
                    stats.retries,
                    stats.transparent_retries,
                    stats.refusal_retries,
                    stats.handover_timeouts,
                    failed.len(),
                    not_once.len(),
                    gets_twice,
                );
                assert!(
                    failed.is_empty(),
                    "{} failed, e.g. {:?}",
                    failed.len(),
                    &failed[..failed.len().min(5)]
                );
                assert!(
                    not_once.is_empty(),
                    "(id, times processed): {:?}",
                    &not_once[..not_once.len().min(20)]
                );
                assert!(stats.transparent_retries > 0, "nginx must drain: {stats:?}");
            }

            #[tokio::test]
            async fn nginx_graceful_quit_hands_requests_back_and_then_refuses_connects() {
                let Some(nginx) = peers::find(Kind::Nginx) else {
                    return;
                };
                let peer = Peer::nginx(&nginx, "").unwrap();
                stopped_peer_hands_back_then_refuses(peer, "QUIT").await;
            }

            #[tokio::test]
            async fn haproxy_reject_is_a_throttled_reset_from_the_peer() {
                let Some(haproxy) = peers::find(Kind::Haproxy) else {
                    return;
                };
                let peer = Peer::haproxy(&haproxy, "http-request reject").unwrap();
                let err = stack::h2_get(&peer.url()).await.unwrap_err();
                let verdict = classify(&err);
                let reset = Cause::StreamReset {
                    reason: Reason::ENHANCE_YOUR_CALM,
                    initiator: Initiator::Remote,
                };
                assert_eq!(verdict.cause(), reset, "{err:?}");
                assert_eq!(
                    (verdict.safety(), verdict.pace()),
                    (RetrySafety::IdempotentOnly, Pace::Throttled)
                );
            }

            #[tokio::test]
            async fn haproxy_soft_stop_hands_requests_back_and_then_refuses_connects() {
                let Some(haproxy) = peers::find(Kind::Haproxy) else {
                    return;
                };
                let peer = Peer::haproxy(&haproxy, "").unwrap();
                stopped_peer_hands_back_then_refuses(peer, "USR1").await;
            }
        }
    };
}

#[cfg(feature = "legacy")]
peer_tests!(legacy, legacy_retry);

#[cfg(feature = "modern")]
peer_tests!(modern, modern_retry);
