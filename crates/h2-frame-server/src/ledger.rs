//! A real h2 server that counts what it processes, and misbehaves on
//! schedule: drains with GOAWAY, refuses streams, closes TCP connections.
//!
//! Requests carry an `x-request-id` header. The [`Ledger`] counts, per id,
//! the heads it saw, the requests that arrived whole and the times it
//! processed one, so a duplicate is visible and so is a request that was
//! cut off. When a request counts as processed is the server's kind
//! ([`ActsOn`]): once it arrived whole, as almost every server does, or on
//! its HEADERS alone.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use h2::server::{self, SendResponse};
pub use h2::Reason as H2Reason;
use h2::Reason;
use h2::RecvStream;
use tokio::net::{TcpListener, TcpStream};

use crate::linger::Lingering;

/// When the server misbehaves.
#[derive(Clone, Copy, Debug)]
pub struct Chaos {
    /// Graceful GOAWAY (a real `last_stream_id`) after this many streams on
    /// a connection.
    pub go_away_every: usize,
    /// `REFUSED_STREAM` for request ids divisible by this, the first time
    /// each is seen (so a retried request gets through).
    pub refuse_ids_divisible_by: u64,
    /// The connection that accepts the n-th stream (counting from 1 across
    /// all connections), for each n here, closes its TCP connection without
    /// GOAWAY right after, with streams in flight.
    pub close_at_streams: &'static [usize],
    /// Answer every stream with `RST_STREAM(reason)` instead.
    pub reset_everything: Option<Reason>,
    /// After this many streams on a connection, send `GOAWAY(last processed
    /// stream, reason)` and close the connection once it is flushed (h2's
    /// abrupt shutdown): a single-phase GOAWAY mid-flight.
    pub shut_down_every: Option<(usize, Reason)>,
    /// When a request counts as processed.
    pub acts_on: ActsOn,
}

impl Default for Chaos {
    fn default() -> Self {
        Chaos {
            go_away_every: usize::MAX,
            refuse_ids_divisible_by: 0,
            close_at_streams: &[],
            reset_everything: None,
            shut_down_every: None,
            acts_on: ActsOn::CompleteRequest,
        }
    }
}

/// When a server counts a request as processed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ActsOn {
    /// Once the whole request has arrived (`END_STREAM` received, the body
    /// read without error), as almost every server does: a request whose
    /// body was cut off is never processed.
    #[default]
    CompleteRequest,
    /// As soon as the HEADERS arrive, before the body is read (RFC 9113
    /// §8.1 allows it): it answers at once and reads the body afterwards.
    Headers,
}

/// What the server saw of one request id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// Streams that carried this id's HEADERS (refused ones included).
    pub heads: u32,
    /// Of those, how many arrived whole: `END_STREAM` received and the
    /// body read without error.
    pub complete: u32,
    /// How many times it was processed (see [`ActsOn`]).
    pub processed: u32,
}

/// What the server saw and did.
#[derive(Debug, Default)]
pub struct Ledger {
    /// What was seen of each request id (`x-request-id`).
    requests: Mutex<HashMap<u64, Seen>>,
    /// Streams opened by clients.
    pub streams: AtomicUsize,
    /// Connections accepted.
    pub connections: AtomicUsize,
    /// GOAWAYs sent.
    pub go_aways: AtomicUsize,
    /// Streams refused.
    pub refused: AtomicUsize,
    /// Connections closed without GOAWAY.
    pub closes: AtomicUsize,
}

impl Ledger {
    /// Request ids processed more than once.
    pub fn duplicates(&self) -> Vec<u64> {
        let requests = self.requests.lock().unwrap();
        let mut ids: Vec<u64> = requests
            .iter()
            .filter(|(_, seen)| seen.processed > 1)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// How many times request `id` was processed.
    pub fn times_processed(&self, id: u64) -> u32 {
        self.seen(id).processed
    }

    /// What was seen of request `id`.
    pub fn seen(&self, id: u64) -> Seen {
        self.requests
            .lock()
            .unwrap()
            .get(&id)
            .copied()
            .unwrap_or_default()
    }

    /// Heads that never became a complete request (cut off, reset or
    /// refused), over all ids.
    pub fn incomplete(&self) -> u64 {
        let requests = self.requests.lock().unwrap();
        requests
            .values()
            .map(|seen| u64::from(seen.heads - seen.complete))
            .sum()
    }

    fn record(&self, id: u64, update: impl FnOnce(&mut Seen)) {
        update(self.requests.lock().unwrap().entry(id).or_default());
    }
}

/// Starts the server on 127.0.0.1.
pub async fn serve(chaos: Chaos) -> (SocketAddr, Arc<Ledger>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    (listener.local_addr().unwrap(), serve_on(listener, chaos))
}

/// Runs the server on `listener`.
pub fn serve_on(listener: TcpListener, chaos: Chaos) -> Arc<Ledger> {
    let ledger = Arc::new(Ledger::default());
    tokio::spawn(run(listener, chaos, ledger.clone()));
    ledger
}

/// Starts an HTTP/1.1 backend on 127.0.0.1 that counts what it receives in
/// a [`Ledger`]: a request is processed once it arrived whole (its body
/// read to the end). Put a proxy (nginx, haproxy) in front of it to test a
/// real HTTP/2 peer with an honest count.
pub async fn serve_http1() -> (SocketAddr, Arc<Ledger>) {
    use http_body_util::{BodyExt, Full};
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ledger = Arc::new(Ledger::default());
    let shared = ledger.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            shared.connections.fetch_add(1, Ordering::SeqCst);
            let _ = tcp.set_nodelay(true);
            let ledger = shared.clone();
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let ledger = ledger.clone();
                async move {
                    ledger.streams.fetch_add(1, Ordering::SeqCst);
                    let id = request_id(request.headers());
                    ledger.record(id, |seen| seen.heads += 1);
                    if request.into_body().collect().await.is_ok() {
                        ledger.record(id, |seen| {
                            seen.complete += 1;
                            seen.processed += 1;
                        });
                    }
                    Ok::<_, hyper::Error>(http::Response::new(Full::new(Bytes::from_static(
                        b"done",
                    ))))
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service),
            );
        }
    });
    (addr, ledger)
}

/// The request's `x-request-id`, or `u64::MAX` without one.
fn request_id(headers: &http::HeaderMap) -> u64 {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Binds `addr` only after `delay`, then serves: a sidecar proxy that
/// starts late. Connects before then are refused.
pub fn serve_late(addr: SocketAddr, delay: Duration, chaos: Chaos) -> Arc<Ledger> {
    let ledger = Arc::new(Ledger::default());
    let shared = ledger.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let listener = TcpListener::bind(addr)
            .await
            .expect("bind the late listener");
        run(listener, chaos, shared).await;
    });
    ledger
}

async fn run(listener: TcpListener, chaos: Chaos, ledger: Arc<Ledger>) {
    let seen = Arc::new(Mutex::new(HashSet::new()));
    while let Ok((tcp, _)) = listener.accept().await {
        ledger.connections.fetch_add(1, Ordering::SeqCst);
        let _ = tcp.set_nodelay(true);
        tokio::spawn(serve_connection(tcp, chaos, ledger.clone(), seen.clone()));
    }
}

async fn serve_connection(
    tcp: TcpStream,
    chaos: Chaos,
    ledger: Arc<Ledger>,
    refused_once: Arc<Mutex<HashSet<u64>>>,
) {
    let Ok(mut conn) = server::handshake(Lingering::new(tcp)).await else {
        return;
    };
    let mut accepted = 0;
    while let Some(Ok((request, mut respond))) = conn.accept().await {
        accepted += 1;
        let nth = ledger.streams.fetch_add(1, Ordering::SeqCst) + 1;
        let id = request_id(request.headers());
        ledger.record(id, |seen| seen.heads += 1);
        if let Some(reason) = chaos.reset_everything {
            respond.send_reset(reason);
        } else {
            let divisor = chaos.refuse_ids_divisible_by;
            if divisor > 0 && id % divisor == 0 && refused_once.lock().unwrap().insert(id) {
                ledger.refused.fetch_add(1, Ordering::SeqCst);
                respond.send_reset(Reason::REFUSED_STREAM);
            } else {
                tokio::spawn(process(request, respond, id, chaos.acts_on, ledger.clone()));
            }
        }
        if let Some((every, reason)) = chaos.shut_down_every {
            if accepted == every {
                ledger.go_aways.fetch_add(1, Ordering::SeqCst);
                conn.abrupt_shutdown(reason);
            }
        }
        if accepted == chaos.go_away_every {
            ledger.go_aways.fetch_add(1, Ordering::SeqCst);
            conn.graceful_shutdown();
        }
        if chaos.close_at_streams.contains(&nth) {
            ledger.closes.fetch_add(1, Ordering::SeqCst);
            return; // drops the connection: TCP close, no GOAWAY
        }
    }
}

/// Reads, counts and answers one request, acting when `acts_on` says.
async fn process(
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    id: u64,
    acts_on: ActsOn,
    ledger: Arc<Ledger>,
) {
    let answer = |respond: &mut SendResponse<Bytes>| {
        if let Ok(mut stream) = respond.send_response(http::Response::new(()), false) {
            let _ = stream.send_data(Bytes::from_static(b"done"), true);
        }
    };
    if acts_on == ActsOn::Headers {
        ledger.record(id, |seen| seen.processed += 1);
        answer(&mut respond);
    }
    let complete = read_whole_body(request.into_body()).await;
    if complete {
        ledger.record(id, |seen| {
            seen.complete += 1;
            if acts_on == ActsOn::CompleteRequest {
                seen.processed += 1;
            }
        });
        if acts_on == ActsOn::CompleteRequest {
            answer(&mut respond);
        }
    }
}

/// Reads a request body to its end; whether it ended cleanly (`END_STREAM`
/// received, no reset or connection error on the way).
async fn read_whole_body(mut body: RecvStream) -> bool {
    while let Some(chunk) = body.data().await {
        match chunk {
            Ok(chunk) => {
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            Err(_) => return false,
        }
    }
    body.trailers().await.is_ok()
}
