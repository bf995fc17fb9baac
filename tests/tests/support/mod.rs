//! Servers and clients shared by the integration tests.
//!
//! Every error a test classifies comes from a real hyper client (0.14 or 1)
//! talking over a real socket on 127.0.0.1 to a server below.

// Each test binary uses its own part of this module.
#![allow(dead_code, unused_imports)]

use std::error::Error;
use std::io;
use std::net::SocketAddr;

use h2_frame_server::{Conn, FrameServer, Reason};
use hyper_classify::{Cause, Pace, RetrySafety, Verdict};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub use h2_frame_server::ledger;
pub mod hostile;
pub mod legacy;
#[cfg(feature = "legacy")]
pub mod legacy_retry;
pub mod modern;
#[cfg(feature = "modern")]
pub mod modern_retry;

/// The io error kinds the chain tests build chains from: every kind the
/// decision table reads, and two it does not.
pub const IO_KINDS: [io::ErrorKind; 10] = [
    io::ErrorKind::Other,
    io::ErrorKind::BrokenPipe,
    io::ErrorKind::ConnectionRefused,
    io::ErrorKind::ConnectionReset,
    io::ErrorKind::ConnectionAborted,
    io::ErrorKind::TimedOut,
    io::ErrorKind::UnexpectedEof,
    io::ErrorKind::NotConnected,
    io::ErrorKind::NotFound,
    io::ErrorKind::HostUnreachable,
];

/// One request of the hostile-server suite, sent: `Ok` if a response
/// head came back.
pub type Sending = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;

/// A `Fn(is_post, id)` that sends `request(is_post, id)` through `service`
/// (the retry layer, or a tower `Retry` of either tower: both are
/// tower-service 0.3 services).
pub fn sender<S, Req>(
    service: S,
    request: impl Fn(bool, u64) -> Req,
) -> impl Fn(bool, u64) -> Sending
where
    S: tower::Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Display,
    Req: Send + 'static,
{
    move |is_post, id| {
        let (service, req) = (service.clone(), request(is_post, id));
        Box::pin(async move {
            let response = tower::ServiceExt::oneshot(service, req).await;
            response.map(drop).map_err(|e| e.to_string())
        })
    }
}

/// tower's `Timeout` boxes its errors, and a box is not an `Error`: give a
/// tower `Policy` an `io::Error` around it (the classifier looks inside).
pub fn into_io(err: Box<dyn Error + Send + Sync + 'static>) -> io::Error {
    io::Error::other(err)
}

/// Sends an HTTP/1.1 upgrade request to `addr`, whose server task `server`
/// hands each request's pending upgrade to `upgrades`; aborts the server
/// once it holds the upgrade, and returns the error the upgrade gives.
pub async fn abandon_upgrade<U, T, E>(
    addr: SocketAddr,
    mut upgrades: tokio::sync::mpsc::UnboundedReceiver<U>,
    server: tokio::task::JoinHandle<()>,
) -> E
where
    U: std::future::Future<Output = Result<T, E>>,
    T: std::fmt::Debug,
{
    let wait = std::time::Duration::from_secs(5);
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: test\r\n\r\n")
        .await
        .unwrap();
    let on_upgrade = tokio::time::timeout(wait, upgrades.recv())
        .await
        .expect("the server saw the upgrade request")
        .unwrap();
    server.abort();
    tokio::time::timeout(wait, on_upgrade)
        .await
        .expect("the upgrade gave up")
        .expect_err("the connection was dropped before the upgrade")
}

/// Asserts the verdict on `err`, showing the chain when it is not the one
/// expected. `pace` is only checked when a retry is allowed at all.
#[track_caller]
pub fn assert_verdict(err: &(dyn Error + 'static), cause: Cause, safety: RetrySafety, pace: Pace) {
    let verdict = hyper_classify::classify(err);
    let expected = Verdict::new(cause, safety, pace);
    let matches = verdict.cause() == cause
        && verdict.safety() == safety
        && (safety == RetrySafety::Never || verdict.pace() == pace);
    assert!(
        matches,
        "\n  got      {verdict}\n  expected {expected}\n  error    {err:?}"
    );
}

/// Answers the handshake, then runs `on_request` on the first stream the
/// client opens, then keeps the connection open until the client leaves.
pub async fn on_first_request<F, Fut>(on_request: F) -> FrameServer
where
    F: Fn(Conn, u32) -> Fut + Send + Sync + Copy + 'static,
    Fut: std::future::Future<Output = io::Result<Option<Conn>>> + Send + 'static,
{
    FrameServer::start(move |mut conn| async move {
        conn.handshake().await?;
        let Some(stream) = conn.next_request().await? else {
            return Ok(());
        };
        match on_request(conn, stream).await? {
            Some(conn) => conn.drain().await,
            None => Ok(()),
        }
    })
    .await
    .expect("bind a frame server")
}

/// `GOAWAY(last_stream_id, reason)` when the first request arrives. After
/// an error code the connection is closed, as RFC 9113 §5.4.1 requires;
/// after `NO_ERROR` it stays open until the client leaves.
pub async fn go_away_on_first_request(last_stream_id: u32, reason: Reason) -> FrameServer {
    FrameServer::start(move |mut conn| async move {
        conn.handshake().await?;
        if conn.next_request().await?.is_some() {
            conn.go_away(last_stream_id, reason).await?;
            if reason != Reason::NO_ERROR {
                return conn.close().await;
            }
        }
        conn.drain().await
    })
    .await
    .expect("bind a frame server")
}

/// `RST_STREAM(reason)` on every request.
pub async fn reset_every_request(reason: Reason) -> FrameServer {
    FrameServer::start(move |mut conn| async move {
        conn.handshake().await?;
        while let Some(stream) = conn.next_request().await? {
            conn.reset(stream, reason).await?;
        }
        Ok(())
    })
    .await
    .expect("bind a frame server")
}

/// Answers the first request with a header block of `len` bytes.
pub async fn big_header_response(len: usize) -> FrameServer {
    on_first_request(move |mut conn, stream| async move {
        conn.respond_with_big_header(stream, len).await?;
        Ok(Some(conn))
    })
    .await
}

/// Sends a DATA frame on stream 0, which RFC 9113 §6.1 makes a connection
/// error: the client's own h2 answers with GOAWAY(PROTOCOL_ERROR).
pub async fn data_on_stream_zero() -> FrameServer {
    on_first_request(|mut conn, _| async move {
        conn.send_frame(h2_frame_server::kind::DATA, 0, 0, b"x")
            .await?;
        Ok(Some(conn))
    })
    .await
}

/// GOAWAY that keeps the request's stream (`last_stream_id` = its id), then
/// a TCP close with the stream still in flight.
pub async fn go_away_then_close() -> FrameServer {
    on_first_request(|mut conn, stream| async move {
        conn.go_away(stream, Reason::NO_ERROR).await?;
        conn.close().await?;
        Ok(None)
    })
    .await
}

/// A TCP reset as soon as the first request arrives.
pub async fn tcp_reset_on_first_request() -> FrameServer {
    on_first_request(|conn, _| async move {
        conn.abort()?;
        Ok(None)
    })
    .await
}

/// Never answers a PING or a request, so keep-alive times out.
pub async fn deaf_to_pings() -> FrameServer {
    on_first_request(|mut conn, _| async move {
        conn.ignore_pings();
        Ok(Some(conn))
    })
    .await
}

/// An HTTP/1.1 server that reads one request head and then does `then`.
pub async fn http1_server(then: Http1Then) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0];
                while !head.ends_with(b"\r\n\r\n") {
                    if tcp.read(&mut byte).await? == 0 {
                        return Ok::<_, io::Error>(());
                    }
                    head.push(byte[0]);
                }
                match then {
                    Http1Then::Close => tcp.shutdown().await,
                    Http1Then::Hold => {
                        while tcp.read(&mut byte).await? > 0 {}
                        Ok(())
                    }
                    Http1Then::Garbage => {
                        tcp.write_all(b"HTTP/1.1 9999 What\r\n\r\n").await?;
                        tcp.shutdown().await
                    }
                }
            });
        }
    });
    addr
}

/// What [`http1_server`] does after reading a request head.
#[derive(Clone, Copy, Debug)]
pub enum Http1Then {
    /// Close the connection without answering.
    Close,
    /// Keep the connection open without answering.
    Hold,
    /// Answer with a status line that does not parse.
    Garbage,
}

/// Whether an HTTP/2 client connection checks the peer with PINGs.
#[derive(Clone, Copy, Debug)]
pub enum KeepAlive {
    /// No keep-alive PINGs.
    Off,
    /// A PING every 50 ms; the connection fails when one goes unanswered
    /// for 50 ms.
    Every50ms,
}

/// An address on 127.0.0.1 where nothing listens.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}
