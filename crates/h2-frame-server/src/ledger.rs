//! A real h2 server that counts what it processes, and misbehaves on
//! schedule: drains with GOAWAY, refuses streams, closes TCP connections.
//!
//! Requests carry an `x-request-id` header; the [`Ledger`] counts how many
//! times each id was processed, so a duplicate is visible.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use h2::server;
pub use h2::Reason as H2Reason;
use h2::Reason;
use tokio::net::TcpListener;

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
}

impl Default for Chaos {
    fn default() -> Self {
        Chaos {
            go_away_every: usize::MAX,
            refuse_ids_divisible_by: 0,
            close_at_streams: &[],
            reset_everything: None,
            shut_down_every: None,
        }
    }
}

/// What the server saw and did.
#[derive(Debug, Default)]
pub struct Ledger {
    /// How many times each request id (`x-request-id`) was processed.
    pub processed: Mutex<HashMap<u64, u32>>,
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
        let processed = self.processed.lock().unwrap();
        processed
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(id, _)| *id)
            .collect()
    }

    /// How many times request `id` was processed.
    pub fn times_processed(&self, id: u64) -> u32 {
        self.processed
            .lock()
            .unwrap()
            .get(&id)
            .copied()
            .unwrap_or(0)
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

async fn run(listener: TcpListener, chaos: Chaos, shared: Arc<Ledger>) {
    let seen = Arc::new(Mutex::new(std::collections::HashSet::new()));
    {
        while let Ok((tcp, _)) = listener.accept().await {
            shared.connections.fetch_add(1, Ordering::SeqCst);
            let (ledger, seen) = (shared.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(mut conn) = server::handshake(tcp).await else {
                    return;
                };
                let mut accepted = 0;
                while let Some(Ok((request, mut respond))) = conn.accept().await {
                    accepted += 1;
                    let nth = ledger.streams.fetch_add(1, Ordering::SeqCst) + 1;
                    if let Some(reason) = chaos.reset_everything {
                        respond.send_reset(reason);
                        continue;
                    }
                    let id: u64 = request
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok()?.parse().ok())
                        .unwrap_or(u64::MAX);
                    let divisor = chaos.refuse_ids_divisible_by;
                    if divisor > 0 && id % divisor == 0 && seen.lock().unwrap().insert(id) {
                        ledger.refused.fetch_add(1, Ordering::SeqCst);
                        respond.send_reset(Reason::REFUSED_STREAM);
                    } else {
                        let processed = ledger.clone();
                        tokio::spawn(async move {
                            let mut body = request.into_body();
                            while let Some(Ok(chunk)) = body.data().await {
                                let _ = body.flow_control().release_capacity(chunk.len());
                            }
                            *processed.processed.lock().unwrap().entry(id).or_default() += 1;
                            let response = http::Response::new(());
                            if let Ok(mut stream) = respond.send_response(response, false) {
                                let _ = stream.send_data(Bytes::from_static(b"done"), true);
                            }
                        });
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
            });
        }
    }
}
