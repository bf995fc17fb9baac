//! hyper 1 and hyper-util clients.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_1::body::Frame;
use hyper_1::client::conn::{http1, http2};
pub use hyper_1::{Method, Request};

/// The h2 that hyper 1 wraps.
#[allow(unused_imports)] // used by some test binaries only
pub use h2_04 as h2;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

/// The body every request here sends.
pub type Body = Empty<Bytes>;

/// hyper-util's pooling client, HTTP/2 with prior knowledge.
pub fn h2_client() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// A request with an empty body.
pub fn request(method: Method, url: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(url)
        .body(Empty::new())
        .unwrap()
}

/// `GET url` through a fresh HTTP/2 pooling client.
pub async fn h2_get(
    url: &str,
) -> Result<hyper_1::Response<hyper_1::body::Incoming>, hyper_util::client::legacy::Error> {
    h2_client().request(request(Method::GET, url)).await
}

/// A single HTTP/2 connection, driven in the background.
pub async fn h2_conn(addr: SocketAddr) -> http2::SendRequest<Body> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(connection);
    send
}

/// A single HTTP/2 connection that sends a keep-alive PING every 50 ms and
/// gives up on the connection when one goes unanswered for 50 ms.
pub async fn h2_conn_with_keep_alive(addr: SocketAddr) -> http2::SendRequest<Body> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, connection) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_millis(50))
        .keep_alive_timeout(Duration::from_millis(50))
        .keep_alive_while_idle(true)
        .handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(connection);
    send
}

/// A single HTTP/1.1 connection, driven in the background.
pub async fn h1_conn<B>(addr: SocketAddr) -> http1::SendRequest<B>
where
    B: hyper_1::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, connection) = http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(connection);
    send
}

/// A request body that fails on its first read: the caller's own error.
pub struct FailingBody;

impl hyper_1::body::Body for FailingBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        Poll::Ready(Some(Err(io::Error::other("the caller's body failed"))))
    }
}

/// A `POST` whose body is a [`FailingBody`].
pub fn failing_request(url: &str) -> Request<FailingBody> {
    Request::post(url).body(FailingBody).unwrap()
}
