//! `hyper_classify::reqwest` as reqwest 0.12's retry classifier, with a real
//! reqwest client against a server that fails the first request one exact
//! way and answers the rest.

mod support;

use std::time::Duration;

use h2_frame_server::Reason as Wire;
use hyper_classify::RequestBody;
use reqwest_0_12 as reqwest;

use support::{First, Server};

/// Every request here is bounded: a hang fails the test.
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

async fn send(request: reqwest::RequestBuilder) -> reqwest::Result<String> {
    tokio::time::timeout(LIMIT, async { request.send().await?.text().await })
        .await
        .expect("the request ends within the limit")
}

#[tokio::test]
async fn a_get_refused_by_a_go_away_is_retried_and_succeeds() {
    let server = Server::h2c(First::GoAway(Wire::NO_ERROR)).await;
    let client = client(hyper_classify::reqwest::for_host("127.0.0.1"));
    let body = send(client.get(server.url()))
        .await
        .expect("the retry succeeds");
    assert_eq!(body, "ok");
    assert_eq!((server.requests(), server.processed()), (2, 1));
}

#[tokio::test]
async fn a_post_refused_by_a_go_away_is_not_retried_when_its_body_is_unknown() {
    let server = Server::h2c(First::GoAway(Wire::NO_ERROR)).await;
    let client = client(hyper_classify::reqwest::for_host("127.0.0.1"));
    let err = send(client.post(server.url()).body("{}"))
        .await
        .expect_err("a POST that may have been processed is not replayed");
    assert!(hyper_classify::classify(&err).is_refusal(), "{err:?}");
    assert_eq!((server.requests(), server.processed()), (1, 0));
}

#[tokio::test]
async fn a_post_with_a_body_refused_by_a_go_away_is_retried_when_the_body_is_known() {
    let server = Server::h2c(First::GoAway(Wire::NO_ERROR)).await;
    // Every POST this client sends has a body: say so.
    let policy = reqwest::retry::for_host("127.0.0.1").classify_fn(|attempt| {
        let body = match attempt.method() {
            &reqwest::Method::POST => RequestBody::NonEmpty,
            _ => RequestBody::Empty,
        };
        let method = attempt.method().clone();
        if hyper_classify::reqwest::permits_retry_with_body(&method, attempt.error(), body) {
            attempt.retryable()
        } else {
            attempt.success()
        }
    });
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
    let client = client(hyper_classify::reqwest::for_host("127.0.0.1"));
    let body = send(client.post(server.url()).body("{}"))
        .await
        .expect("the retry succeeds");
    assert_eq!(body, "ok");
    assert_eq!((server.requests(), server.processed()), (2, 1));
}

#[tokio::test]
async fn enhance_your_calm_is_not_retried_at_once() {
    let server = Server::h2c(First::Reset(Wire::ENHANCE_YOUR_CALM)).await;
    let client = client(hyper_classify::reqwest::for_host("127.0.0.1"));
    send(client.get(server.url()))
        .await
        .expect_err("a throttled request is not replayed without backoff");
    assert_eq!(server.requests(), 1);
}

/// reqwest 0.12 checks a policy's scope before the second retry, not the
/// first: a request to another host is still retried once. A refusal is
/// safe to retry anywhere, so this only matters for the budget; the test
/// says so if reqwest changes it.
#[tokio::test]
async fn reqwest_applies_the_scope_from_the_second_retry_on() {
    let server = Server::h2c(First::Reset(Wire::REFUSED_STREAM)).await;
    let client =
        client(hyper_classify::reqwest::for_host("api.example.com").max_retries_per_request(5));
    send(client.post(server.url()).body("{}"))
        .await
        .expect("the first retry ignores the scope");
    assert_eq!((server.requests(), server.processed()), (2, 1));
}
