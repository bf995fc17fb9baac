//! reqwest wraps hyper's errors in its own; the facade sees through them:
//! reqwest 0.11 (hyper 0.14, h2 0.3) and reqwest 0.12 (hyper-util, hyper 1,
//! h2 0.4), against a server that fails every request one exact way.
//!
//! Both retry a peer's GOAWAY(NO_ERROR) and REFUSED_STREAM by themselves,
//! twice, whatever the method: a POST among them. The error that reaches
//! the caller after that is the one classified here.

mod support;

use h2_frame_server::Reason as Wire;
use hyper_classify::{Cause, ConnectKind, Pace, Reason, RetrySafety};

use support::{assert_go_away, assert_reset, First, Server};

macro_rules! reqwest_chains {
    ($version:ident, $reqwest:ident) => {
        mod $version {
            use super::*;

            async fn post(url: &str) -> $reqwest::Error {
                let client = $reqwest::Client::builder()
                    .http2_prior_knowledge()
                    .build()
                    .expect("a client");
                client
                    .post(url)
                    .body("{}")
                    .send()
                    .await
                    .expect_err("the first request fails")
            }

            #[tokio::test]
            async fn a_go_away_is_seen_through_reqwests_error() {
                let server = Server::h2c_failing_every_request(First::GoAway(Wire::NO_ERROR)).await;
                let err = post(&server.url()).await;
                assert_eq!(server.requests(), 3, "reqwest's own two retries");
                let verdict = assert_go_away(&err, Reason::NO_ERROR);
                assert_eq!(verdict.safety(), RetrySafety::IdempotentOnly);
                assert_eq!(verdict.pace(), Pace::Immediate);
            }

            #[tokio::test]
            async fn a_refused_stream_is_seen_through_reqwests_error() {
                let server =
                    Server::h2c_failing_every_request(First::Reset(Wire::REFUSED_STREAM)).await;
                let err = post(&server.url()).await;
                assert_eq!(server.requests(), 3, "reqwest's own two retries");
                let verdict = assert_reset(&err, Reason::REFUSED_STREAM);
                assert_eq!(verdict.safety(), RetrySafety::AnyRequest);
            }

            #[tokio::test]
            async fn enhance_your_calm_is_seen_through_reqwests_error() {
                let server = Server::h2c(First::Reset(Wire::ENHANCE_YOUR_CALM)).await;
                let err = post(&server.url()).await;
                assert_eq!(server.requests(), 1, "reqwest does not retry it");
                let verdict = assert_reset(&err, Reason::ENHANCE_YOUR_CALM);
                assert_eq!(verdict.pace(), Pace::Throttled);
            }

            #[tokio::test]
            async fn a_refused_connection_is_seen_through_reqwests_error() {
                let url = support::refused_url();
                let err = post(&url).await;
                assert!(err.is_connect(), "{err:?}");
                let verdict = hyper_classify::classify(&err);
                assert_eq!(
                    verdict.cause(),
                    Cause::Connect(ConnectKind::Refused),
                    "{err:?}"
                );
                assert_eq!(verdict.safety(), RetrySafety::AnyRequest);
            }
        }
    };
}

reqwest_chains!(reqwest_0_11_on_hyper_0_14, reqwest_0_11);
reqwest_chains!(reqwest_0_12_on_hyper_1, reqwest_0_12);
