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
pub use hyper_1::{Error, Method, Request};

use super::KeepAlive;

/// The h2 that hyper 1 wraps.
pub use h2_04 as h2;
use hyper_util::client::legacy::connect::dns::Name;
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

/// `GET url` through a client whose name resolution always fails.
pub async fn get_with_failing_dns(url: &str) -> hyper_util::client::legacy::Error {
    let resolver = tower::service_fn(|_: Name| async {
        Err::<std::vec::IntoIter<SocketAddr>, _>(io::Error::other("no such host"))
    });
    Client::builder(TokioExecutor::new())
        .build::<_, Body>(HttpConnector::new_with_resolver(resolver))
        .request(request(Method::GET, url))
        .await
        .unwrap_err()
}

/// A single HTTP/2 connection, driven in the background.
pub async fn h2_conn(addr: SocketAddr, keep_alive: KeepAlive) -> http2::SendRequest<Body> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    if let KeepAlive::Every50ms = keep_alive {
        let period = Duration::from_millis(50);
        builder
            .timer(TokioTimer::new())
            .keep_alive_interval(period)
            .keep_alive_timeout(period)
            .keep_alive_while_idle(true);
    }
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, connection) = builder.handshake(TokioIo::new(tcp)).await.unwrap();
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

/// The error `hyper::upgrade::on` gives when the connection it waited on is
/// dropped before the upgrade completes: a hyper 1 server receives an
/// upgrade request, and its connection task is aborted while the service
/// still holds the request.
pub async fn abandoned_upgrade() -> Error {
    use hyper_1::server::conn::http1 as server;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (upgrades, upgrade) = tokio::sync::mpsc::unbounded_channel();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let service =
            hyper_1::service::service_fn(move |mut req: Request<hyper_1::body::Incoming>| {
                let _ = upgrades.send(hyper_1::upgrade::on(&mut req));
                std::future::pending::<Result<hyper_1::Response<Body>, io::Error>>()
            });
        let _ = server::Builder::new()
            .serve_connection(TokioIo::new(tcp), service)
            .with_upgrades()
            .await;
    });
    super::abandon_upgrade(addr, upgrade, server).await
}
