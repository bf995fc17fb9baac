//! `hyper_classify::reqwest_012` and `reqwest_013` as reqwest's retry
//! classifier, each with a real client of its reqwest against a server that
//! fails the first request one exact way and answers the rest. The cases are
//! written once, for both majors.

mod support;

macro_rules! reqwest_retry_tests {
    ($module:ident, $reqwest:ident) => {
        mod $module {
            use std::sync::atomic::{AtomicU64, Ordering};
            use std::sync::Arc;
            use std::time::Duration;

            use h2_frame_server::Reason as Wire;
            use hyper_classify::$module as rules;
            use hyper_classify::RequestBody;
            use $reqwest as reqwest;

            use crate::support::drain::drain;
            use crate::support::{First, Server};


/// reqwest's timeout for every request here; a test that waits longer than
/// twice this for one fails.
const LIMIT: Duration = Duration::from_secs(10);

fn client(policy: reqwest::retry::Builder) -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .tcp_nodelay(true)
        .timeout(LIMIT)
        .retry(policy)
        .build()
        .expect("a client")
}

/// `builder` classifying with the body known: every POST in these tests has
/// one, every GET none. Counts the retries it allows in `retries`.
fn knowing_post_bodies(
    builder: reqwest::retry::Builder,
    retries: Arc<AtomicU64>,
) -> reqwest::retry::Builder {
    builder.classify_fn(move |attempt| {
        let body = match *attempt.method() {
            reqwest::Method::POST => RequestBody::NonEmpty,
            _ => RequestBody::Empty,
        };
        if rules::permits_retry_with_body(attempt.method(), attempt.error(), body)
        {
            retries.fetch_add(1, Ordering::Relaxed);
            attempt.retryable()
        } else {
            attempt.success()
        }
    })
}

async fn send(request: reqwest::RequestBuilder) -> reqwest::Result<String> {
    tokio::time::timeout(2 * LIMIT, async { request.send().await?.text().await })
        .await
        .expect("the request ends within the limit")
}

#[tokio::test]
async fn a_get_refused_by_a_go_away_is_retried_and_succeeds() {
    let server = Server::h2c(First::GoAway(Wire::NO_ERROR)).await;
    let client = client(rules::for_host("127.0.0.1"));
    let body = send(client.get(server.url()))
        .await
        .expect("the retry succeeds");
    assert_eq!(body, "ok");
    assert_eq!((server.requests(), server.processed()), (2, 1));
}

#[tokio::test]
async fn a_post_refused_by_a_go_away_is_not_retried_when_its_body_is_unknown() {
    let server = Server::h2c(First::GoAway(Wire::NO_ERROR)).await;
    let client = client(rules::for_host("127.0.0.1"));
    let err = send(client.post(server.url()).body("{}"))
        .await
        .expect_err("a POST that may have been processed is not replayed");
    assert!(hyper_classify::classify(&err).is_refusal(), "{err:?}");
    assert_eq!((server.requests(), server.processed()), (1, 0));
}

#[tokio::test]
async fn a_post_with_a_body_refused_by_a_go_away_is_retried_when_the_body_is_known() {
    let server = Server::h2c(First::GoAway(Wire::NO_ERROR)).await;
    let policy = knowing_post_bodies(reqwest::retry::for_host("127.0.0.1"), Arc::default());
    let body = send(client(policy).post(server.url()).body("{}"))
        .await
        .expect("the retry succeeds");
    assert_eq!(body, "ok");
    assert_eq!(
        (server.requests(), server.processed()),
        (2, 1),
        "processed once"
    );
}

#[tokio::test]
async fn a_post_refused_by_refused_stream_is_retried_and_processed_once() {
    let server = Server::h2c(First::Reset(Wire::REFUSED_STREAM)).await;
    let client = client(rules::for_host("127.0.0.1"));
    let body = send(client.post(server.url()).body("{}"))
        .await
        .expect("the retry succeeds");
    assert_eq!(body, "ok");
    assert_eq!((server.requests(), server.processed()), (2, 1));
}

/// A peer that requires HTTP/1.1 would refuse the same request over
/// HTTP/2 again: reqwest's retry cannot change the protocol, so it is not
/// retried.
#[tokio::test]
async fn a_peer_requiring_http1_is_not_retried_over_http2() {
    let server = Server::h2c(First::GoAway(Wire::HTTP_1_1_REQUIRED)).await;
    let client = client(rules::for_host("127.0.0.1"));
    let err = send(client.get(server.url()))
        .await
        .expect_err("the same request over HTTP/2 would be refused again");
    assert!(hyper_classify::classify(&err).requires_http1(), "{err:?}");
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn enhance_your_calm_is_not_retried_at_once() {
    let server = Server::h2c(First::Reset(Wire::ENHANCE_YOUR_CALM)).await;
    let client = client(rules::for_host("127.0.0.1"));
    send(client.get(server.url()))
        .await
        .expect_err("a throttled request is not replayed without backoff");
    assert_eq!(server.requests(), 1);
}

/// reqwest (0.12 and 0.13) checks a policy's scope before the second retry, not the
/// first: a request to another host is still retried once. A refusal is
/// safe to retry anywhere, so this only matters for the budget; the test
/// says so if reqwest changes it.
#[tokio::test]
async fn reqwest_applies_the_scope_from_the_second_retry_on() {
    let server = Server::h2c(First::Reset(Wire::REFUSED_STREAM)).await;
    let client =
        client(rules::for_host("api.example.com").max_retries_per_request(5));
    send(client.post(server.url()).body("{}"))
        .await
        .expect("the first retry ignores the scope");
    assert_eq!((server.requests(), server.processed()), (2, 1));
}

/// GETs and POSTs with bodies, 64 in flight, through nginx draining every
/// connection after 100 requests (`keepalive_requests 100`) to a backend
/// that counts the requests it received whole.
///
/// About a quarter of the requests are refused once (about 1,050 retries
/// a run). reqwest's default budget (20 % extra load) cannot pay for that:
/// with it, 190 to 290 of the 4,000 requests failed, none of them processed,
/// whether 2 or 5 retries were allowed; without it, none with 2. The policy
/// here has no budget (a refusal adds no load to the server) and five
/// retries for margin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_draining_every_100_requests_fails_nothing_and_processes_no_post_twice() {
    use h2_frame_server::peers::{self, Kind, Peer};

    const EACH: u64 = 2_000;
    let Some(nginx) = peers::find(Kind::Nginx) else {
        return;
    };
    let (backend, ledger) = h2_frame_server::ledger::serve_http1().await;
    let peer = Peer::nginx_proxy(&nginx, "keepalive_requests 100;", backend).unwrap();
    let retried = Arc::new(AtomicU64::new(0));
    let policy = knowing_post_bodies(
        reqwest::retry::for_host("127.0.0.1")
            .no_budget()
            .max_retries_per_request(5),
        retried.clone(),
    );
    let client = client(policy);
    let url = peer.url();
    let run = drain(0..2 * EACH, &ledger, |id| {
        let request = match id % 2 {
            0 => client.post(&url).body("order"),
            _ => client.get(&url),
        };
        send(request.header("x-request-id", id))
    })
    .await;
    println!(
        "reqwest through nginx draining every 100: {} requests, {} reached the backend, \
         {} retries, {} failed, {} lost in the client until the timeout {:?}, \
         {} otherwise never processed, {} POSTs processed twice",
        2 * EACH,
        ledger.streams.load(Ordering::SeqCst),
        retried.load(Ordering::Relaxed),
        run.failed.len(),
        run.lost.len(),
        run.lost,
        run.never,
        run.posts_twice,
    );
    run.assert_clean();
    assert!(
        retried.load(Ordering::Relaxed) > 0,
        "the drain refused nothing: the test tested nothing"
    );
}
        }
    };
}

reqwest_retry_tests!(reqwest_012, reqwest_0_12);
reqwest_retry_tests!(reqwest_013, reqwest_0_13);
