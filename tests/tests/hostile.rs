//! The retry layer and the tower `Policy` adapters against servers that
//! misbehave on every connection: silent, never sending SETTINGS, a head
//! without a body, GOAWAY at once, every stream refused, an answer above
//! the server's own last stream id, endless CONTINUATION, oversized headers.
//!
//! Each test sends 8 requests at once (4 GETs, 4 POSTs with a body) through
//! one adapter on one stack, and checks what the policy promises whatever
//! the server does: no request hangs, each ends by the deadline (+10 %),
//! the retries stay within one free retry per request plus the budget, and
//! nothing panics.

mod support;

use std::future::Future;
use std::time::Duration;

use hyper_classify::retry::{RetryBudget, RetryConfig, RetryPolicy};
use tokio::time::Instant;

/// Each request's deadline.
const DEADLINE: Duration = Duration::from_secs(2);
/// Each attempt's timeout: the layer's own, or tower's `Timeout` inside a
/// tower `Retry`.
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(150);
/// How many requests each test sends, all at once.
const REQUESTS: u64 = 8;
/// What the test budget allows beyond the free retries: a reserve of one
/// retry a second over 10 s, and 10 % of the requests.
const BUDGET_RETRIES: u64 = 10 + REQUESTS / 10;
/// Past this a request counts as hung.
const HUNG: Duration = Duration::from_secs(10);

fn policy() -> RetryPolicy {
    let budget = RetryBudget::new(Duration::from_secs(10), 1, 0.1);
    let config = RetryConfig::default()
        .deadline(DEADLINE)
        .attempt_timeout(Some(ATTEMPT_TIMEOUT))
        .budget(Some(budget));
    hyper_classify::retry::policy(config).unwrap()
}

/// Sends the requests with `send(is_post, id)`, each in its own task, and
/// checks the promises; returns how many succeeded.
async fn check<F, Fut>(policy: &RetryPolicy, send: F) -> u64
where
    F: Fn(bool, u64) -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let mut requests = tokio::task::JoinSet::new();
    for id in 0..REQUESTS {
        let request = send(id % 2 == 0, id);
        requests.spawn(async move {
            let started = Instant::now();
            let outcome = tokio::time::timeout(HUNG, request).await;
            (id, outcome, started.elapsed())
        });
    }
    let (mut succeeded, mut slowest) = (0, Duration::ZERO);
    let mut errors = std::collections::BTreeSet::new();
    while let Some(joined) = requests.join_next().await {
        let (id, outcome, took) = joined.expect("a request panicked");
        let outcome = outcome.unwrap_or_else(|_| panic!("request {id} hung for {HUNG:?}"));
        assert!(
            took <= DEADLINE + DEADLINE / 10,
            "request {id} ended after {took:?}, past its deadline: {outcome:?}"
        );
        succeeded += u64::from(outcome.is_ok());
        if let Err(err) = &outcome {
            errors.insert(err.clone());
        }
        slowest = slowest.max(took);
    }
    let stats = policy.stats();
    println!(
        "{succeeded} of {REQUESTS} succeeded, slowest {slowest:?}, {} attempts, {} retries \
         ({} free, {} refusal, {} grace); errors: {errors:#?}",
        stats.attempts,
        stats.retries,
        stats.transparent_retries,
        stats.refusal_retries,
        stats.grace_retries,
    );
    assert!(
        stats.retries <= REQUESTS + BUDGET_RETRIES,
        "{} retries for {REQUESTS} requests: {stats:?}",
        stats.retries
    );
    succeeded
}

/// The tests for one stack and adapter: `$send` makes, from a policy and a
/// URL, a `Fn(is_post, id)` that sends one request.
macro_rules! hostile_tests {
    ($name:ident, $send:path, big_header = $big_header:expr) => {
        mod $name {
            use super::support::hostile::{serve, Hostile};
            use super::{check, policy, REQUESTS};

            async fn run(hostile: Hostile) -> u64 {
                let server = serve(hostile).await;
                let policy = policy();
                let send = $send(policy.clone(), server.url(), super::ATTEMPT_TIMEOUT);
                check(&policy, send).await
            }

            #[tokio::test]
            async fn a_silent_server() {
                assert_eq!(run(Hostile::Silent).await, 0);
            }

            #[tokio::test]
            async fn a_server_that_never_sends_settings() {
                assert_eq!(run(Hostile::NoSettings).await, 0);
            }

            /// The head is the response: what follows is the caller's to
            /// bound, as it reads the body.
            #[tokio::test]
            async fn a_server_that_sends_the_head_and_never_the_body() {
                assert_eq!(run(Hostile::HeadOnly).await, REQUESTS);
            }

            #[tokio::test]
            async fn a_server_that_sends_go_away_on_every_connection() {
                assert_eq!(run(Hostile::GoAwayAtOnce).await, 0);
            }

            #[tokio::test]
            async fn a_server_that_refuses_every_stream() {
                assert_eq!(run(Hostile::RefuseEveryStream).await, 0);
            }

            #[tokio::test]
            async fn a_server_that_answers_above_its_own_last_stream_id() {
                run(Hostile::GoAwayThenAnswer).await;
            }

            #[tokio::test]
            async fn a_server_whose_headers_never_end() {
                assert_eq!(run(Hostile::EndlessContinuation).await, 0);
            }

            #[tokio::test]
            async fn a_server_whose_headers_are_too_big() {
                assert_eq!(run(Hostile::OversizedHeaders($big_header)).await, 0);
            }
        }
    };
}

#[cfg(feature = "legacy")]
hostile_tests!(
    legacy_layer,
    crate::support::legacy_retry::hostile_layer,
    big_header = (16 << 20) + 1024
);
#[cfg(feature = "legacy")]
hostile_tests!(
    legacy_tower_04,
    crate::support::legacy_retry::hostile_tower_04,
    big_header = (16 << 20) + 1024
);
#[cfg(feature = "legacy")]
hostile_tests!(
    legacy_tower_05,
    crate::support::legacy_retry::hostile_tower_05,
    big_header = (16 << 20) + 1024
);
#[cfg(feature = "modern")]
hostile_tests!(
    modern_layer,
    crate::support::modern_retry::hostile_layer,
    big_header = 20 * 1024
);
#[cfg(feature = "modern")]
hostile_tests!(
    modern_tower_05,
    crate::support::modern_retry::hostile_tower_05,
    big_header = 20 * 1024
);
