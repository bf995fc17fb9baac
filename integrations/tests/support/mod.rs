//! A server that fails the first request one exact way and answers the rest.

#![allow(dead_code)] // each test file uses its own part

pub mod drain;

use std::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use h2_frame_server::{FrameServer, Reason};
use hyper_classify::{Cause, Initiator, Verdict};

/// How the first request the server sees fails.
#[derive(Clone, Copy, Debug)]
pub enum First {
    /// `GOAWAY(last_stream_id = 0, reason)`: the stream was never processed.
    GoAway(Reason),
    /// `RST_STREAM(reason)` on the request's stream.
    Reset(Reason),
    /// `200 OK` HEADERS, then `RST_STREAM(reason)` instead of the body: the
    /// server answered, so it processed the request.
    ResetAfterHead(Reason),
    /// Every response carries a header of this many bytes (so every request
    /// is processed, and the client rejects every response).
    BigHeader(usize),
}

/// The server and what it saw.
pub struct Server {
    frames: FrameServer,
    requests: Arc<AtomicUsize>,
    processed: Arc<AtomicUsize>,
}

impl Server {
    /// Plain TCP, HTTP/2 by prior knowledge.
    pub async fn h2c(first: First) -> Server {
        Self::start(first, false, false).await
    }

    /// Plain TCP, failing every request the way `First` says, for clients
    /// that retry by themselves.
    pub async fn h2c_failing_every_request(failure: First) -> Server {
        Self::start(failure, false, true).await
    }

    /// TLS offering `h2` by ALPN.
    pub async fn h2_tls(first: First) -> Server {
        Self::start(first, true, false).await
    }

    async fn start(first: First, tls: bool, every: bool) -> Server {
        let requests = Arc::new(AtomicUsize::new(0));
        let processed = Arc::new(AtomicUsize::new(0));
        let (seen, done) = (requests.clone(), processed.clone());
        let script = move |mut conn: h2_frame_server::Conn| {
            let (seen, done) = (seen.clone(), done.clone());
            async move {
                conn.handshake().await?;
                while let Some(stream) = conn.next_request().await? {
                    let first_request = seen.fetch_add(1, Ordering::SeqCst) == 0 || every;
                    match first {
                        First::BigHeader(len) => {
                            done.fetch_add(1, Ordering::SeqCst);
                            conn.respond_with_big_header(stream, len).await?;
                        }
                        First::GoAway(reason) if first_request => {
                            conn.go_away(0, reason).await?;
                            return conn.drain().await;
                        }
                        First::Reset(reason) if first_request => conn.reset(stream, reason).await?,
                        First::ResetAfterHead(reason) if first_request => {
                            done.fetch_add(1, Ordering::SeqCst);
                            conn.respond_head(stream).await?;
                            conn.reset(stream, reason).await?;
                        }
                        _ => {
                            done.fetch_add(1, Ordering::SeqCst);
                            conn.respond(stream, b"ok").await?;
                        }
                    }
                }
                Ok(())
            }
        };
        let frames = if tls {
            FrameServer::start_tls(script).await
        } else {
            FrameServer::start(script).await
        }
        .expect("bind 127.0.0.1");
        Server {
            frames,
            requests,
            processed,
        }
    }

    /// `http://127.0.0.1:PORT/` or `https://…`.
    pub fn url(&self) -> String {
        self.frames.url()
    }

    /// The PEM of its certificate, when it speaks TLS.
    pub fn certificate_pem(&self) -> &str {
        self.frames.certificate_pem().expect("a TLS server")
    }

    /// Requests that reached it (HEADERS frames).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Requests it processed and answered.
    pub fn processed(&self) -> usize {
        self.processed.load(Ordering::SeqCst)
    }
}

/// `http://127.0.0.1:PORT/` where nothing listens: connects are refused.
pub fn refused_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let url = format!("http://{}/", listener.local_addr().expect("an address"));
    drop(listener);
    url
}

/// Asserts that the facade reads `err`'s chain as a GOAWAY the peer sent with
/// `reason`.
pub fn assert_go_away(err: &(dyn Error + 'static), reason: hyper_classify::Reason) -> Verdict {
    let verdict = hyper_classify::classify(err);
    assert_eq!(
        verdict.cause(),
        Cause::GoAway {
            reason,
            initiator: Initiator::Remote
        },
        "{err:?}"
    );
    verdict
}

/// Asserts that the facade reads `err`'s chain as a reset the peer sent with
/// `reason`.
pub fn assert_reset(err: &(dyn Error + 'static), reason: hyper_classify::Reason) -> Verdict {
    let verdict = hyper_classify::classify(err);
    assert_eq!(
        verdict.cause(),
        Cause::StreamReset {
            reason,
            initiator: Initiator::Remote
        },
        "{err:?}"
    );
    verdict
}
