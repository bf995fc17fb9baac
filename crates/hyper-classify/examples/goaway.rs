//! Real HTTP/2 failures, from a real server, through real hyper 0.14 and
//! hyper 1 clients: what a single-version classifier sees, and what
//! hyper-classify sees.
//!
//! ```text
//! cargo run -p hyper-classify --features legacy,modern --example goaway
//! ```
//!
//! The "h2 0.4 downcast" column is the classifier that shipped the bug: it
//! looks for h2 0.4's `Error` in the chain, which hyper 0.14 never holds.

use std::error::Error;
use std::io;

use bytes::Bytes;
use h2_frame_server::{FrameServer, Reason};
use http_body_util::Empty;
use hyper_classify::classify;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// What the server does when the first request arrives.
#[derive(Clone, Copy)]
enum Scenario {
    GoAway(Reason),
    Reset(Reason),
    CloseInFlight,
}

impl Scenario {
    fn name(self) -> String {
        match self {
            Scenario::GoAway(r) => format!("GOAWAY {}", reason_name(r)),
            Scenario::Reset(r) => format!("RST_STREAM {}", reason_name(r)),
            Scenario::CloseInFlight => "TCP close, stream in flight".into(),
        }
    }

    async fn serve(self) -> io::Result<FrameServer> {
        FrameServer::start(move |mut conn| async move {
            conn.handshake().await?;
            let Some(stream) = conn.next_request().await? else {
                return Ok(());
            };
            match self {
                Scenario::GoAway(reason) => conn.go_away(0, reason).await?,
                Scenario::Reset(reason) => conn.reset(stream, reason).await?,
                Scenario::CloseInFlight => {
                    conn.go_away(stream, Reason::NO_ERROR).await?;
                    return conn.close().await;
                }
            }
            conn.drain().await
        })
        .await
    }
}

fn reason_name(reason: Reason) -> String {
    hyper_classify::Reason::from(reason.0).to_string()
}

/// The classifier that shipped the bug: h2 0.4's `Error`, wherever it is.
fn naive_h2_04(err: &(dyn Error + 'static)) -> String {
    let mut next = Some(err);
    while let Some(link) = next {
        if let Some(h2) = link.downcast_ref::<h2_04::Error>() {
            return match (h2.is_go_away(), h2.reason()) {
                (true, Some(reason)) => format!("GOAWAY {reason:?}: retry"),
                (false, Some(reason)) => format!("{reason:?}: give up"),
                _ => "give up".into(),
            };
        }
        next = link.source();
    }
    "not h2: give up".into()
}

async fn legacy_request(url: &str) -> Box<dyn Error + Send + Sync> {
    let client = hyper_0_14::Client::builder()
        .http2_only(true)
        .build_http::<hyper_0_14::Body>();
    match client.get(url.parse().expect("a valid URL")).await {
        Ok(response) => format!("unexpected {}", response.status()).into(),
        Err(err) => Box::new(err),
    }
}

async fn modern_request(url: &str) -> Box<dyn Error + Send + Sync> {
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Empty<Bytes>>();
    match client.get(url.parse().expect("a valid URL")).await {
        Ok(response) => format!("unexpected {}", response.status()).into(),
        Err(err) => Box::new(err),
    }
}

#[tokio::main]
async fn main() -> io::Result<()> {
    let scenarios = [
        Scenario::GoAway(Reason::NO_ERROR),
        Scenario::GoAway(Reason::ENHANCE_YOUR_CALM),
        Scenario::Reset(Reason::REFUSED_STREAM),
        Scenario::Reset(Reason::CANCEL),
        Scenario::CloseInFlight,
    ];
    println!(
        "{:<30} {:<11} {:<32} hyper-classify",
        "server does", "client", "h2 0.4 downcast"
    );
    println!("{}", "-".repeat(128));
    for scenario in scenarios {
        for stack in ["hyper 0.14", "hyper 1"] {
            let server = scenario.serve().await?;
            let err = match stack {
                "hyper 0.14" => legacy_request(&server.url()).await,
                _ => modern_request(&server.url()).await,
            };
            println!(
                "{:<30} {:<11} {:<32} {}",
                scenario.name(),
                stack,
                naive_h2_04(&*err),
                classify(&*err)
            );
        }
    }
    Ok(())
}
