//! hyper 0.14 clients.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper_0_14::body::HttpBody;

use hyper_0_14::client::conn::{self, SendRequest};
use hyper_0_14::client::connect::dns::Name;
use hyper_0_14::client::HttpConnector;
pub use hyper_0_14::{Body, Client, Error, Method, Request, Response};

use super::KeepAlive;

/// The h2 that hyper 0.14 wraps.
pub use h2_03 as h2;
use tokio::net::TcpStream;

/// The pooling client, HTTP/2 with prior knowledge.
pub fn h2_client() -> Client<HttpConnector, Body> {
    Client::builder().http2_only(true).build_http()
}

/// A request with an empty body.
pub fn request(method: Method, url: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(url)
        .body(Body::empty())
        .unwrap()
}

/// `GET url` through a fresh HTTP/2 pooling client.
pub async fn h2_get(url: &str) -> Result<Response<Body>, hyper_0_14::Error> {
    h2_client().request(request(Method::GET, url)).await
}

/// `GET url` through a client whose name resolution always fails.
pub async fn get_with_failing_dns(url: &str) -> Error {
    let resolver = tower::service_fn(|_: Name| async {
        Err::<std::vec::IntoIter<SocketAddr>, _>(io::Error::other("no such host"))
    });
    Client::builder()
        .build::<_, Body>(HttpConnector::new_with_resolver(resolver))
        .request(request(Method::GET, url))
        .await
        .unwrap_err()
}

/// A single HTTP/2 connection, driven in the background.
pub async fn h2_conn(addr: SocketAddr, keep_alive: KeepAlive) -> SendRequest<Body> {
    let mut builder = conn::Builder::new();
    builder.http2_only(true);
    if let KeepAlive::Every50ms = keep_alive {
        let period = Duration::from_millis(50);
        builder
            .http2_keep_alive_interval(period)
            .http2_keep_alive_timeout(period)
            .http2_keep_alive_while_idle(true);
    }
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, connection) = builder.handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    send
}

/// A single HTTP/1.1 connection, driven in the background.
pub async fn h1_conn<B>(addr: SocketAddr) -> SendRequest<B>
where
    B: HttpBody + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, connection) = conn::Builder::new().handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    send
}

/// A request body that fails on its first read: the caller's own error.
pub struct FailingBody;

impl HttpBody for FailingBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_data(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, io::Error>>> {
        Poll::Ready(Some(Err(io::Error::other("the caller's body failed"))))
    }

    fn poll_trailers(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Result<Option<hyper_0_14::HeaderMap>, io::Error>> {
        Poll::Ready(Ok(None))
    }
}

/// A `POST` whose body is a [`FailingBody`].
pub fn failing_request(url: &str) -> Request<FailingBody> {
    Request::post(url).body(FailingBody).unwrap()
}

/// The error `hyper::upgrade::on` gives when the connection it waited on is
/// dropped before the upgrade completes: a hyper 0.14 server receives an
/// upgrade request, and its connection task is aborted while the service
/// still holds the request.
pub async fn abandoned_upgrade() -> Error {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (upgrades, upgrade) = tokio::sync::mpsc::unbounded_channel();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let service = hyper_0_14::service::service_fn(move |mut req: Request<Body>| {
            let _ = upgrades.send(hyper_0_14::upgrade::on(&mut req));
            std::future::pending::<Result<Response<Body>, io::Error>>()
        });
        let _ = hyper_0_14::server::conn::Http::new()
            .serve_connection(tcp, service)
            .with_upgrades()
            .await;
    });
    super::abandon_upgrade(addr, upgrade, server).await
}
