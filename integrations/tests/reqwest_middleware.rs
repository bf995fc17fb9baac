//! `hyper_classify::reqwest_middleware::VerdictStrategy` in reqwest-retry
//! 0.9's `RetryTransientMiddleware`, with a real reqwest 0.13 client
//! (reqwest-middleware 0.5) against a server that fails the first request
//! one exact way, and through nginx draining every connection.
//!
//! reqwest's own retries are off in every client here, so what retries is
//! the middleware alone.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use h2_frame_server::Reason as Wire;
use hyper_classify::reqwest_middleware::VerdictStrategy;
use reqwest_middleware::reqwest;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use reqwest_retry::policies::ExponentialBackoff;
use reqwest_retry::{DefaultRetryableStrategy, RetryTransientMiddleware, RetryableStrategy};

use support::drain::{drain, Drained};
use support::{First, Server};

/// reqwest's timeout for every request here; a test that waits longer than
/// twice this for one fails.
const LIMIT: Duration = Duration::from_secs(10);

/// Counts the attempts the retry middleware sends.
#[derive(Clone, Default)]
struct CountAttempts(Arc<AtomicU64>);

#[async_trait::async_trait]
impl Middleware for CountAttempts {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        self.0.fetch_add(1, Ordering::Relaxed);
        next.run(req, extensions).await
    }
}

/// A client retrying with `strategy`, at most `retries` times, with a short
/// backoff; `attempts` counts what it sends.
fn client<S>(strategy: S, retries: u32, attempts: CountAttempts) -> ClientWithMiddleware
where
    S: RetryableStrategy + Send + Sync + 'static,
{
    let reqwest = reqwest::Client::builder()
        .http2_prior_knowledge()
        .tcp_nodelay(true)
        .timeout(LIMIT)
        .retry(reqwest::retry::never())
        .build()
        .expect("a client");
    let policy = ExponentialBackoff::builder()
        .retry_bounds(Duration::from_millis(1), Duration::from_millis(50))
        .build_with_max_retries(retries);
    ClientBuilder::new(reqwest)
        .with(RetryTransientMiddleware::new_with_policy_and_strategy(
            policy, strategy,
        ))
        .with(attempts)
        .build()
}

async fn send(request: reqwest_middleware::RequestBuilder) -> reqwest_middleware::Result<String> {
    tokio::time::timeout(2 * LIMIT, async { Ok(request.send().await?.text().await?) })
        .await
        .expect("the request ends within the limit")
}

#[tokio::test]
async fn a_get_refused_by_a_go_away_is_retried_and_succeeds() {
    let server = Server::h2c(First::GoAway(Wire::NO_ERROR)).await;
    let client = client(VerdictStrategy::idempotent(), 2, CountAttempts::default());
    let body = send(client.get(server.url()))
        .await
        .expect("the retry succeeds");
    assert_eq!(body, "ok");
    assert_eq!((server.requests(), server.processed()), (2, 1));
}

/// The gap this fills: reqwest-retry's default strategy gives a drain's
/// `GOAWAY` up (it is neither a connect error nor a timeout to it).
#[tokio::test]
async fn the_default_strategy_gives_a_go_away_up() {
    let server = Server::h2c(First::GoAway(Wire::NO_ERROR)).await;
    let client = client(DefaultRetryableStrategy, 2, CountAttempts::default());
    let err = send(client.get(server.url()))
        .await
        .expect_err("the default strategy does not retry a GOAWAY");
    assert!(hyper_classify::classify(&err).is_refusal(), "{err:?}");
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn a_bodiless_post_refused_by_a_go_away_is_not_replayed() {
    let server = Server::h2c(First::GoAway(Wire::NO_ERROR)).await;
    let client = client(VerdictStrategy::new(), 2, CountAttempts::default());
    let err = send(client.post(server.url()))
        .await
        .expect_err("a POST that may have been processed is not replayed");
    assert!(hyper_classify::classify(&err).is_refusal(), "{err:?}");
    assert_eq!((server.requests(), server.processed()), (1, 0));
}

#[tokio::test]
async fn a_post_with_a_body_refused_by_a_go_away_is_retried_and_processed_once() {
    let server = Server::h2c(First::GoAway(Wire::NO_ERROR)).await;
    let strategy = VerdictStrategy::new().requests_have_bodies();
    let client = client(strategy, 2, CountAttempts::default());
    let body = send(client.post(server.url()).body("{}"))
        .await
        .expect("the retry succeeds");
    assert_eq!(body, "ok");
    assert_eq!((server.requests(), server.processed()), (2, 1));
}

#[tokio::test]
async fn a_post_refused_by_refused_stream_is_retried_and_processed_once() {
    let server = Server::h2c(First::Reset(Wire::REFUSED_STREAM)).await;
    let client = client(VerdictStrategy::new(), 2, CountAttempts::default());
    let body = send(client.post(server.url()).body("{}"))
        .await
        .expect("the retry succeeds");
    assert_eq!(body, "ok");
    assert_eq!((server.requests(), server.processed()), (2, 1));
}

#[tokio::test]
async fn enhance_your_calm_is_retried_with_backoff_for_idempotent_requests_only() {
    let server = Server::h2c(First::Reset(Wire::ENHANCE_YOUR_CALM)).await;
    let posts = client(VerdictStrategy::new(), 2, CountAttempts::default());
    send(posts.post(server.url()).body("{}"))
        .await
        .expect_err("a throttled POST may have been processed");
    assert_eq!(server.requests(), 1);

    let server = Server::h2c(First::Reset(Wire::ENHANCE_YOUR_CALM)).await;
    let gets = client(VerdictStrategy::idempotent(), 2, CountAttempts::default());
    let body = send(gets.get(server.url()))
        .await
        .expect("the retry succeeds");
    assert_eq!(body, "ok");
    assert_eq!(server.requests(), 2);
}

const EACH: u64 = 2_000;

/// GETs through `gets` and POSTs with bodies through `posts`, ids from
/// `first`; and the retries `attempts` counted.
async fn drain_with(
    url: String,
    gets: ClientWithMiddleware,
    posts: ClientWithMiddleware,
    attempts: CountAttempts,
    ledger: &h2_frame_server::ledger::Ledger,
    first: u64,
) -> (Drained, u64) {
    let run = drain(first..first + 2 * EACH, ledger, |id| {
        let request = match id % 2 {
            0 => posts.post(&url).body("order"),
            _ => gets.get(&url),
        };
        send(request.header("x-request-id", id))
    })
    .await;
    (run, attempts.0.load(Ordering::Relaxed) - 2 * EACH)
}

/// GETs and POSTs with bodies, 64 in flight, through nginx draining every
/// connection after 100 requests to a backend that counts the requests it
/// received whole: first with reqwest-retry's default strategy, then with
/// GETs through a client whose strategy is [`VerdictStrategy::idempotent`]
/// and POSTs through one with `new().requests_have_bodies()`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_draining_every_100_requests_fails_nothing_and_processes_no_post_twice() {
    use h2_frame_server::peers::{self, Kind, Peer};

    let Some(nginx) = peers::find(Kind::Nginx) else {
        return;
    };
    let (backend, ledger) = h2_frame_server::ledger::serve_http1().await;
    let peer = Peer::nginx_proxy(&nginx, "keepalive_requests 100;", backend).unwrap();

    let attempts = CountAttempts::default();
    let default = client(DefaultRetryableStrategy, 5, attempts.clone());
    let (bare, _) = drain_with(peer.url(), default.clone(), default, attempts, &ledger, 0).await;

    let attempts = CountAttempts::default();
    let gets = client(VerdictStrategy::idempotent(), 5, attempts.clone());
    let strategy = VerdictStrategy::new().requests_have_bodies();
    let posts = client(strategy, 5, attempts.clone());
    let (run, retries) = drain_with(peer.url(), gets, posts, attempts, &ledger, 2 * EACH).await;
    println!(
        "reqwest-retry through nginx draining every 100, {} requests: default strategy \
         {} failed; VerdictStrategy {} retries, {} failed, {} lost in the client until the \
         timeout {:?}, {} otherwise never processed, {} POSTs processed twice",
        2 * EACH,
        bare.failed.len() + bare.lost.len(),
        retries,
        run.failed.len(),
        run.lost.len(),
        run.lost,
        run.never,
        run.posts_twice,
    );
    assert!(
        !bare.failed.is_empty(),
        "the default strategy lost nothing: the drain refused nothing"
    );
    run.assert_clean();
    assert!(
        retries > 0,
        "the drain refused nothing: the test tested nothing"
    );
}
