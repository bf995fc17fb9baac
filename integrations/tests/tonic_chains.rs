//! tonic turns transport errors into a `Status` whose code says little
//! about retrying (a drain's GOAWAY is `Internal` in 0.11, and in 0.14
//! `Internal` or `Unknown` depending on tonic's features), keeping the
//! error as its source; the facade reads that source:
//! tonic 0.11 (hyper 0.14, h2 0.3) and tonic 0.14 (hyper 1, h2 0.4).

mod support;

use h2_frame_server::Reason as Wire;
use hyper_classify::{Cause, ConnectKind, Pace, Reason, RetrySafety};

use support::{assert_go_away, assert_reset, First, Server};

macro_rules! tonic_chains {
    ($version:ident, $tonic:ident, go_away = $go_away:ident, refused = $refused:ident) => {
        mod $version {
            use super::*;
            use $tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
            use $tonic::{Code, Status};

            /// A codec for empty messages, so no protobuf code is needed.
            #[derive(Clone, Copy, Debug, Default)]
            struct Empty;

            impl Codec for Empty {
                type Encode = ();
                type Decode = ();
                type Encoder = Empty;
                type Decoder = Empty;

                fn encoder(&mut self) -> Empty {
                    Empty
                }

                fn decoder(&mut self) -> Empty {
                    Empty
                }
            }

            impl Encoder for Empty {
                type Item = ();
                type Error = Status;

                fn encode(&mut self, _: (), _: &mut EncodeBuf<'_>) -> Result<(), Status> {
                    Ok(())
                }
            }

            impl Decoder for Empty {
                type Item = ();
                type Error = Status;

                fn decode(&mut self, _: &mut DecodeBuf<'_>) -> Result<Option<()>, Status> {
                    Ok(Some(()))
                }
            }

            /// One unary call on a fresh channel; the status it fails with.
            async fn call(url: String) -> Status {
                let channel = $tonic::transport::Endpoint::from_shared(url)
                    .expect("a valid URL")
                    .connect_lazy();
                let mut grpc = $tonic::client::Grpc::new(channel);
                let ready = grpc.ready().await;
                let result = match ready {
                    Ok(()) => {
                        // tonic 0.11 takes http 0.2's PathAndQuery, 0.14 http 1's.
                        let path = "/test.Orders/Place".parse().expect("a path");
                        grpc.unary($tonic::Request::new(()), path, Empty).await
                    }
                    Err(err) => Err(Status::from_error(err.into())),
                };
                result.expect_err("the first call fails")
            }

            #[tokio::test]
            async fn a_go_away_is_seen_through_a_status() {
                let server = Server::h2c(First::GoAway(Wire::NO_ERROR)).await;
                let status = call(server.url()).await;
                // tonic's code for a drain says little (and changed between
                // versions); the verdict knows it was a GOAWAY(NO_ERROR).
                assert_eq!(status.code(), Code::$go_away, "{status:?}");
                let verdict = assert_go_away(&status, Reason::NO_ERROR);
                assert_eq!(verdict.pace(), Pace::Immediate);
            }

            #[tokio::test]
            async fn a_refused_stream_is_seen_through_a_status() {
                let server = Server::h2c(First::Reset(Wire::REFUSED_STREAM)).await;
                let status = call(server.url()).await;
                assert_eq!(status.code(), Code::$refused, "{status:?}");
                let verdict = assert_reset(&status, Reason::REFUSED_STREAM);
                assert_eq!(verdict.safety(), RetrySafety::AnyRequest);
            }

            #[tokio::test]
            async fn a_refused_connection_is_seen_through_a_status() {
                let url = support::refused_url();
                let status = call(url).await;
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                let verdict = hyper_classify::classify(&status);
                assert_eq!(
                    verdict.cause(),
                    Cause::Connect(ConnectKind::Refused),
                    "{status:?}"
                );
            }
        }
    };
}

// tonic maps the h2 reason to a code (gRPC's table: NO_ERROR is Internal,
// REFUSED_STREAM Unavailable). tonic 0.14 does so only with its `server`
// feature on (here, for the tonic servers of tonic_retry.rs); a client
// built with `channel` alone says Unknown for both.
tonic_chains!(
    tonic_0_11_on_hyper_0_14,
    tonic_0_11,
    go_away = Internal,
    refused = Unavailable
);
tonic_chains!(
    tonic_0_14_on_hyper_1,
    tonic_0_14,
    go_away = Internal,
    refused = Unavailable
);
