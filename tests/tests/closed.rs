//! A connection that closed before any request was handed to it.
//!
//! The server accepts and at once closes its side. The client's connector
//! returns the stream only once that close has arrived, so the connection
//! is dead before hyper's handshake is ready: hyper-util's `connect_to`
//! fails on `SendRequest::ready()` (as `SendRequest`, over the connection's
//! `IncompleteMessage`; hyper 1.13 with hyper-util 0.1.21 hand the request
//! back as `Canceled` instead), hyper 0.14's on `when_ready()`
//! (`ChannelClosed`). No byte of the request left, so the verdict must be
//! "never sent, any request", and the server's ledger must show nothing
//! received. (A connection that dies at once is also what a proxy that
//! accepts before its upstream is up looks like: hence a backoff.)

use std::error::Error;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper_classify::{Cause, Pace, RequestBody, RetrySafety, Verdict};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

/// Every wait here is bounded by this.
const LIMIT: Duration = Duration::from_secs(10);

/// A server that closes each connection's write side at once, then counts
/// the bytes the client sends on it.
struct ClosingServer {
    addr: SocketAddr,
    received: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
}

async fn closing_server() -> ClosingServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let received = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let (counted, seen) = (received.clone(), accepted.clone());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            let counted = counted.clone();
            tokio::spawn(async move {
                stream.shutdown().await.ok();
                let mut buf = [0u8; 1024];
                while let Ok(Ok(n @ 1..)) = timeout(LIMIT, stream.read(&mut buf)).await {
                    counted.fetch_add(n, Ordering::SeqCst);
                }
            });
        }
    });
    ClosingServer {
        addr,
        received,
        accepted,
    }
}

/// Connects to `addr` and returns the stream once the peer's close has
/// arrived (a peek reads end-of-stream).
async fn connect_after_close(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut byte = [0u8; 1];
    match timeout(LIMIT, stream.peek(&mut byte)).await {
        Ok(Ok(0)) => Ok(stream),
        other => panic!("the server's close did not arrive: {other:?}"),
    }
}

/// The verdict every stack must give, for a POST with a body and without.
fn assert_never_sent(err: &(dyn Error + 'static), server: &ClosingServer) {
    let verdict: Verdict = hyper_classify::classify(err);
    println!("{err:?} -> {verdict}");
    assert_eq!(verdict.cause(), Cause::NotSent, "{err:?}");
    for body in [RequestBody::Empty, RequestBody::NonEmpty] {
        let verdict = verdict.for_body(body);
        assert_eq!(verdict.safety(), RetrySafety::AnyRequest, "{err:?}");
        // A handed-back request is retried at once, a dead fresh
        // connection after a backoff; never as throttled.
        assert!(
            matches!(verdict.pace(), Pace::Immediate | Pace::Backoff),
            "{err:?}"
        );
    }
    assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(
        server.received.load(Ordering::SeqCst),
        0,
        "the server received part of a request the verdict says was never sent"
    );
}

#[cfg(feature = "modern")]
#[tokio::test]
async fn hyper_1_a_connection_closed_before_the_handover_is_never_sent() {
    use http_body_util::Full;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let server = closing_server().await;
    let addr = server.addr;
    let connector = tower::service_fn(move |_: http::Uri| {
        Box::pin(async move { connect_after_close(addr).await.map(TokioIo::new) })
    });
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<bytes::Bytes>>(connector);
    let request = http::Request::post(format!("http://{addr}/orders"))
        .body(Full::from("order"))
        .expect("a request");
    let err = timeout(LIMIT, client.request(request))
        .await
        .expect("the request ends within the limit")
        .expect_err("the connection was closed before the request");
    // hyper 1.12 with hyper-util 0.1.20 report the connection's own error
    // under `SendRequest` (`IncompleteMessage`: it closed before a
    // message), with no `connect_info()` as no request was sent on it;
    // hyper 1.13 with hyper-util 0.1.21 hand the request back (`Canceled`).
    let shape = format!("{err:?}");
    assert!(
        (shape.contains("SendRequest") && err.connect_info().is_none())
            || shape.starts_with("hyper_util::client::legacy::Error(Canceled"),
        "expected SendRequest with no connection info, or Canceled: got {err:?}"
    );
    assert_never_sent(&err, &server);
}

#[cfg(feature = "legacy")]
#[tokio::test]
async fn hyper_0_14_a_connection_closed_before_the_handover_is_never_sent() {
    use hyper_0_14 as hyper;

    let server = closing_server().await;
    let addr = server.addr;
    let connector = tower::service_fn(move |_: hyper::Uri| Box::pin(connect_after_close(addr)));
    let client = hyper::Client::builder().build::<_, hyper::Body>(connector);
    let request = hyper::Request::post(format!("http://{addr}/orders"))
        .body(hyper::Body::from("order"))
        .expect("a request");
    let err = timeout(LIMIT, client.request(request))
        .await
        .expect("the request ends within the limit")
        .expect_err("the connection was closed before the request");
    assert!(
        format!("{err:?}").contains("ChannelClosed"),
        "expected hyper's ChannelClosed, got {err:?}"
    );
    assert_never_sent(&err, &server);
}
