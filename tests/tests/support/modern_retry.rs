//! hyper-util (hyper 1) clients behind hyper-classify's retry layer.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_1::{Method, Request};
use hyper_classify::modern::retry::{HttpReplay, NotReplayable};
use hyper_classify::retry::{self, ClassifyPolicy, ClassifyRetry, RetryError, RetryPolicy};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};

use super::{into_io, sender, Sending};

/// The body retried requests carry.
pub type ReplayableBody = Full<Bytes>;

/// A hyper-util HTTP/2 client behind hyper-classify's retry layer.
pub type RetryClient = ClassifyRetry<Client<HttpConnector, ReplayableBody>, HttpReplay>;

/// The final error of a retried request.
pub type RetryFailure = RetryError<hyper_util::client::legacy::Error>;

/// Wraps a fresh HTTP/2 client (TCP_NODELAY on) in the retry layer.
pub fn retry_client(policy: RetryPolicy) -> RetryClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(connector);
    retry::modern_layer(policy).layer(client)
}

/// A request carrying `x-request-id: id` and a small body.
pub fn request_with_id(method: Method, url: &str, id: u64) -> Request<ReplayableBody> {
    request_with_body(method, url, id, b"order")
}

/// A request carrying `x-request-id: id` and `body` (none when empty: its
/// HEADERS frame then ends the stream).
pub fn request_with_body(
    method: Method,
    url: &str,
    id: u64,
    body: &'static [u8],
) -> Request<ReplayableBody> {
    Request::builder()
        .method(method)
        .uri(url)
        .header("x-request-id", id)
        .body(Full::new(Bytes::from_static(body)))
        .unwrap()
}

/// Sends `req` and reads the whole response; returns its status.
pub async fn send(client: &RetryClient, req: Request<ReplayableBody>) -> Result<u16, RetryFailure> {
    let response = client.clone().oneshot(req).await?;
    let status = response.status().as_u16();
    // The retry layer's work ends with the response head; a body cut off
    // after it (a TCP close mid-response) is not what these tests are about.
    let _ = response.into_body().collect().await;
    Ok(status)
}

/// `POST`s a body that cannot be replayed through the retry layer.
pub async fn post_not_replayable(policy: RetryPolicy, url: &str) -> Result<u16, RetryFailure> {
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<NotReplayable<ReplayableBody>>();
    let body = NotReplayable(Full::new(Bytes::from_static(b"stream")));
    let req = Request::post(url)
        .header("x-request-id", 7)
        .body(body)
        .unwrap();
    let response = retry::modern_layer(policy)
        .layer(client)
        .oneshot(req)
        .await?;
    Ok(response.status().as_u16())
}

/// `GET url` through tower 0.5's own `Retry` with hyper-classify's `Policy`.
pub async fn get_with_tower_policy(
    policy: RetryPolicy,
    url: &str,
) -> Result<u16, hyper_util::client::legacy::Error> {
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<ReplayableBody>();
    let retrying = tower::retry::Retry::new(ClassifyPolicy::new(policy, HttpReplay), client);
    let response = retrying
        .oneshot(request_with_id(Method::GET, url, 1))
        .await?;
    Ok(response.status().as_u16())
}

/// A GET without a body, or a POST with one.
fn hostile_request(is_post: bool, url: &str, id: u64) -> Request<ReplayableBody> {
    match is_post {
        true => request_with_body(Method::POST, url, id, b"order"),
        false => request_with_body(Method::GET, url, id, b""),
    }
}

/// The hostile-server suite's requests through the retry layer.
pub fn hostile_layer(
    policy: RetryPolicy,
    url: String,
    _attempt_timeout: Duration,
) -> impl Fn(bool, u64) -> Sending {
    let layer = retry_client(policy);
    sender(layer, move |is_post, id| hostile_request(is_post, &url, id))
}

/// The hostile-server suite's requests through tower 0.5's `Retry` with
/// [`ClassifyPolicy`], around tower's `Timeout`.
pub fn hostile_tower_05(
    policy: RetryPolicy,
    url: String,
    attempt_timeout: Duration,
) -> impl Fn(bool, u64) -> Sending {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(connector);
    let timed = tower::timeout::Timeout::new(client, attempt_timeout).map_err(into_io);
    let retrying = tower::retry::Retry::new(ClassifyPolicy::new(policy, HttpReplay), timed);
    sender(retrying, move |is_post, id| {
        hostile_request(is_post, &url, id)
    })
}
