//! The misbehaving servers, one per canonical failure.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use h2_frame_server::ledger::{self, Chaos, H2Reason, Ledger};
use tokio::net::TcpListener;

/// A canonical way for an HTTP/2 server to fail requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Graceful two-phase GOAWAY(NO_ERROR) every 50 streams, as a draining
    /// server (h2, hyper, Envoy) does.
    Drain,
    /// GOAWAY(NO_ERROR) with the real last_stream_id every 50 streams, then
    /// the connection closes with streams in flight.
    GoAwayMidFlight,
    /// RST_STREAM(REFUSED_STREAM) the first time each fifth request arrives.
    RefusedStream,
    /// GOAWAY(ENHANCE_YOUR_CALM) every 50 streams.
    EnhanceYourCalm,
    /// GOAWAY(HTTP_1_1_REQUIRED) on every connection's first stream.
    Http11Required,
    /// TCP close without GOAWAY at a few points, streams in flight.
    TcpClose,
    /// Nothing listens for the first 1.5 s (a sidecar that starts late).
    LateListener,
}

impl Scenario {
    /// Every scenario, in the order they are run.
    pub const ALL: [Scenario; 7] = [
        Scenario::Drain,
        Scenario::GoAwayMidFlight,
        Scenario::RefusedStream,
        Scenario::EnhanceYourCalm,
        Scenario::Http11Required,
        Scenario::TcpClose,
        Scenario::LateListener,
    ];

    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Drain => "drain (graceful GOAWAY)",
            Scenario::GoAwayMidFlight => "GOAWAY mid-flight",
            Scenario::RefusedStream => "REFUSED_STREAM",
            Scenario::EnhanceYourCalm => "ENHANCE_YOUR_CALM",
            Scenario::Http11Required => "HTTP_1_1_REQUIRED",
            Scenario::TcpClose => "TCP close",
            Scenario::LateListener => "late listener",
        }
    }

    fn chaos(self) -> Chaos {
        let defaults = Chaos::default();
        match self {
            Scenario::Drain => Chaos {
                go_away_every: 50,
                ..defaults
            },
            Scenario::GoAwayMidFlight => Chaos {
                shut_down_every: Some((50, H2Reason::NO_ERROR)),
                ..defaults
            },
            Scenario::RefusedStream => Chaos {
                refuse_ids_divisible_by: 5,
                ..defaults
            },
            Scenario::EnhanceYourCalm => Chaos {
                shut_down_every: Some((50, H2Reason::ENHANCE_YOUR_CALM)),
                ..defaults
            },
            Scenario::Http11Required => Chaos {
                shut_down_every: Some((1, H2Reason::HTTP_1_1_REQUIRED)),
                ..defaults
            },
            Scenario::TcpClose => Chaos {
                close_at_streams: &[40, 120, 300, 700, 1500, 3100],
                ..defaults
            },
            Scenario::LateListener => defaults,
        }
    }

    /// Starts this scenario's server on 127.0.0.1.
    pub async fn start(self) -> std::io::Result<(SocketAddr, Arc<Ledger>)> {
        if self != Scenario::LateListener {
            return Ok(ledger::serve(self.chaos()).await);
        }
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        drop(listener);
        let late = ledger::serve_late(addr, Duration::from_millis(1500), Chaos::default());
        Ok((addr, late))
    }
}
