//! Every row of the decision table, on both stacks: a real hyper client, a
//! real socket, a real server (raw HTTP/2 frames where the sequence must be
//! exact).

mod support;

/// The same rows, once per stack: `$stack` is a `support` module with the
/// same names for hyper 0.14 (`legacy`) and hyper 1 (`modern`).
macro_rules! table_rows {
    ($stack:ident, big_header = $big_header:expr, oversize_reset = $oversize_reset:ident) => {
        mod $stack {
            use std::time::Duration;

            use h2_frame_server::Reason as Wire;
            use hyper_classify::{
                Cause, Chain, ConnectKind, Initiator, Pace, Reason, RequestBody, RetrySafety::*,
                WithRequestBody,
            };

            use crate::support::{self, assert_verdict, $stack as stack, Http1Then, KeepAlive};

            /// `GET` over a fresh HTTP/1.1 connection to a server that
            /// reads the request and then does `then`.
            async fn h1_get_error(then: Http1Then) -> stack::Error {
                let addr = support::http1_server(then).await;
                let mut send = stack::h1_conn(addr).await;
                let url = format!("http://{addr}/");
                send.send_request(stack::request(stack::Method::GET, &url))
                    .await
                    .unwrap_err()
            }

            #[tokio::test]
            async fn go_away_from_the_peer_any_reason_is_safe_for_idempotent_requests() {
                let cases = [
                    (Wire::NO_ERROR, Reason::NO_ERROR, Pace::Immediate),
                    (
                        Wire::ENHANCE_YOUR_CALM,
                        Reason::ENHANCE_YOUR_CALM,
                        Pace::Throttled,
                    ),
                    (
                        Wire::HTTP_1_1_REQUIRED,
                        Reason::HTTP_1_1_REQUIRED,
                        Pace::Immediate,
                    ),
                    (Wire::INTERNAL_ERROR, Reason::INTERNAL_ERROR, Pace::Backoff),
                ];
                for (wire, reason, pace) in cases {
                    let server = support::go_away_on_first_request(0, wire).await;
                    let err = stack::h2_get(&server.url()).await.unwrap_err();
                    let cause = Cause::GoAway {
                        reason,
                        initiator: Initiator::Remote,
                    };
                    assert_verdict(&err, cause, IdempotentOnly, pace);
                    let verdict = hyper_classify::classify(&err);
                    assert_eq!(
                        verdict.requires_http1(),
                        reason == Reason::HTTP_1_1_REQUIRED
                    );
                    // A request whose body followed its head never reached
                    // the server whole: any request may be replayed.
                    let with_body = WithRequestBody::new(err, RequestBody::NonEmpty);
                    assert_verdict(&with_body, cause, AnyRequest, pace);
                    assert_eq!(verdict.for_body(RequestBody::Empty), verdict);
                }
            }

            #[tokio::test]
            async fn go_away_mid_flight_fails_only_the_streams_above_last_stream_id() {
                let server = h2_frame_server::FrameServer::start(|mut conn| async move {
                    conn.handshake().await?;
                    let first = conn.next_request().await?.unwrap_or_default();
                    let _second = conn.next_request().await?;
                    conn.go_away(first, Wire::NO_ERROR).await?;
                    conn.respond(first, b"kept").await?;
                    conn.drain().await
                })
                .await
                .unwrap();
                let mut send = stack::h2_conn(server.addr(), KeepAlive::Off).await;
                let first = send.send_request(stack::request(stack::Method::POST, &server.url()));
                tokio::time::sleep(Duration::from_millis(20)).await;
                let second = send.send_request(stack::request(stack::Method::POST, &server.url()));
                let (first, second) = tokio::join!(first, second);
                assert!(first.is_ok(), "stream 1 is at last_stream_id: {first:?}");
                let err = second.unwrap_err();
                let cause = Cause::GoAway {
                    reason: Reason::NO_ERROR,
                    initiator: Initiator::Remote,
                };
                assert_verdict(&err, cause, IdempotentOnly, Pace::Immediate);
            }

            #[tokio::test]
            async fn a_request_sent_after_go_away_is_refused_too() {
                let server = support::go_away_on_first_request(0, Wire::NO_ERROR).await;
                let mut send = stack::h2_conn(server.addr(), KeepAlive::Off).await;
                let url = server.url();
                send.send_request(stack::request(stack::Method::GET, &url))
                    .await
                    .unwrap_err();
                let err = send
                    .send_request(stack::request(stack::Method::POST, &url))
                    .await
                    .unwrap_err();
                // hyper hands it back unsent when it already saw the GOAWAY,
                // h2 refuses it with a clone of the GOAWAY when it did not.
                let verdict = hyper_classify::classify(&err);
                let go_away = Cause::GoAway {
                    reason: Reason::NO_ERROR,
                    initiator: Initiator::Remote,
                };
                assert!(
                    matches!(verdict.cause(), Cause::NotSent) || verdict.cause() == go_away,
                    "{verdict}: {err:?}"
                );
                assert_eq!(verdict.pace(), Pace::Immediate);
                assert!(verdict.permits_retry(true), "{verdict}");
            }

            #[tokio::test]
            async fn refused_stream_from_the_peer_is_safe_for_any_request() {
                let server = support::reset_every_request(Wire::REFUSED_STREAM).await;
                let err = stack::h2_get(&server.url()).await.unwrap_err();
                let cause = Cause::StreamReset {
                    reason: Reason::REFUSED_STREAM,
                    initiator: Initiator::Remote,
                };
                assert_verdict(&err, cause, AnyRequest, Pace::Immediate);
            }

            #[tokio::test]
            async fn other_resets_from_the_peer_are_safe_for_idempotent_requests_only() {
                let cases = [
                    (Wire::CANCEL, Reason::CANCEL, Pace::Backoff),
                    (Wire::INTERNAL_ERROR, Reason::INTERNAL_ERROR, Pace::Backoff),
                    (
                        Wire::ENHANCE_YOUR_CALM,
                        Reason::ENHANCE_YOUR_CALM,
                        Pace::Throttled,
                    ),
                ];
                for (wire, reason, pace) in cases {
                    let server = support::reset_every_request(wire).await;
                    let err = stack::h2_get(&server.url()).await.unwrap_err();
                    let cause = Cause::StreamReset {
                        reason,
                        initiator: Initiator::Remote,
                    };
                    assert_verdict(&err, cause, IdempotentOnly, pace);
                }
            }

            #[tokio::test]
            async fn our_own_reset_for_oversized_response_headers_is_never_retried() {
                let server = support::big_header_response($big_header).await;
                let err = stack::h2_get(&server.url()).await.unwrap_err();
                let h2 = Chain::new(&err)
                    .find_map(|link| link.downcast_ref::<stack::h2::Error>())
                    .expect("an h2 error in the chain");
                assert!(h2.is_reset() && h2.is_library(), "{h2:?} {err:?}");
                assert_eq!(
                    h2.reason(),
                    Some(stack::h2::Reason::$oversize_reset),
                    "{err:?}"
                );
                assert_verdict(&err, Cause::Protocol, Never, Pace::Backoff);
            }

            #[tokio::test]
            async fn our_own_go_away_for_a_protocol_violation_is_never_retried() {
                let server = support::data_on_stream_zero().await;
                let err = stack::h2_get(&server.url()).await.unwrap_err();
                let h2 = Chain::new(&err)
                    .find_map(|link| link.downcast_ref::<stack::h2::Error>())
                    .expect("an h2 error in the chain");
                assert!(h2.is_go_away() && h2.is_library(), "{h2:?}");
                assert_verdict(&err, Cause::Protocol, Never, Pace::Backoff);
            }

            #[tokio::test]
            async fn connection_refused_is_a_connect_error() {
                let addr = support::closed_port().await;
                let err = stack::h2_get(&format!("http://{addr}/")).await.unwrap_err();
                assert_verdict(
                    &err,
                    Cause::Connect(ConnectKind::Refused),
                    AnyRequest,
                    Pace::Backoff,
                );
            }

            #[tokio::test]
            async fn a_failed_name_resolution_is_a_connect_error() {
                let err = stack::get_with_failing_dns("http://nowhere.test/").await;
                assert_verdict(
                    &err,
                    Cause::Connect(ConnectKind::Dns),
                    AnyRequest,
                    Pace::Backoff,
                );
            }

            #[tokio::test]
            async fn a_url_the_connector_refuses_is_the_callers_error() {
                // hyper's HttpConnector takes only http:// URLs.
                let err = stack::h2_get("https://127.0.0.1:1/").await.unwrap_err();
                assert_verdict(&err, Cause::User, Never, Pace::Backoff);
            }

            #[tokio::test]
            async fn a_request_handed_back_unsent_is_safe_for_any_request() {
                let addr = support::http1_server(Http1Then::Hold).await;
                let mut send = stack::h1_conn(addr).await;
                let url = format!("http://{addr}/");
                let _in_flight = send.send_request(stack::request(stack::Method::GET, &url));
                let err = send
                    .send_request(stack::request(stack::Method::POST, &url))
                    .await
                    .unwrap_err();
                assert!(err.is_canceled(), "{err:?}");
                assert_verdict(&err, Cause::NotSent, AnyRequest, Pace::Immediate);
            }

            #[tokio::test]
            async fn tcp_close_after_go_away_with_the_stream_in_flight_is_a_lost_connection() {
                let server = support::go_away_then_close().await;
                let err = stack::h2_get(&server.url()).await.unwrap_err();
                assert_verdict(&err, Cause::ConnectionLost, IdempotentOnly, Pace::Backoff);
                // At or below last_stream_id: maybe processed, body or not.
                let with_body = WithRequestBody::new(err, RequestBody::NonEmpty);
                assert_verdict(
                    &with_body,
                    Cause::ConnectionLost,
                    IdempotentOnly,
                    Pace::Backoff,
                );
            }

            #[tokio::test]
            async fn tcp_reset_after_the_request_is_a_lost_connection() {
                let server = support::tcp_reset_on_first_request().await;
                let err = stack::h2_get(&server.url()).await.unwrap_err();
                assert_verdict(&err, Cause::ConnectionLost, IdempotentOnly, Pace::Backoff);
            }

            #[tokio::test]
            async fn http1_close_before_the_response_is_a_lost_connection() {
                let err = h1_get_error(Http1Then::Close).await;
                assert!(err.is_incomplete_message(), "{err:?}");
                assert_verdict(&err, Cause::ConnectionLost, IdempotentOnly, Pace::Backoff);
            }

            #[tokio::test]
            async fn h2_keep_alive_timeout_is_a_timeout() {
                let server = support::deaf_to_pings().await;
                let mut send = stack::h2_conn(server.addr(), KeepAlive::Every50ms).await;
                let err = send
                    .send_request(stack::request(stack::Method::GET, &server.url()))
                    .await
                    .unwrap_err();
                assert!(err.is_timeout(), "{err:?}");
                assert_verdict(&err, Cause::Timeout, IdempotentOnly, Pace::Backoff);
            }

            #[tokio::test]
            async fn a_failing_request_body_is_the_callers_error() {
                let addr = support::http1_server(Http1Then::Hold).await;
                let mut send = stack::h1_conn(addr).await;
                let err = send
                    .send_request(stack::failing_request(&format!("http://{addr}/")))
                    .await
                    .unwrap_err();
                assert_verdict(&err, Cause::User, Never, Pace::Backoff);
            }

            #[tokio::test]
            async fn a_relative_uri_is_the_callers_error() {
                let err = stack::h2_client()
                    .request(stack::request(stack::Method::GET, "/relative"))
                    .await
                    .unwrap_err();
                assert_verdict(&err, Cause::User, Never, Pace::Backoff);
            }

            #[tokio::test]
            async fn a_response_that_does_not_parse_is_a_protocol_error() {
                let err = h1_get_error(Http1Then::Garbage).await;
                assert!(err.is_parse(), "{err:?}");
                assert_verdict(&err, Cause::Protocol, Never, Pace::Backoff);
            }
        }
    };
}

// hyper 0.14 leaves h2's default header list limit (16 MiB) as it is, and
// h2 0.3 resets an oversized response with a REFUSED_STREAM of its own: one
// that must not be mistaken for the peer's (the request *was* processed).
#[cfg(feature = "legacy")]
table_rows!(
    legacy,
    big_header = (16 << 20) + 1024,
    oversize_reset = REFUSED_STREAM
);

// hyper 1 sets the limit to 16 KiB; h2 0.4 resets with PROTOCOL_ERROR.
#[cfg(feature = "modern")]
table_rows!(
    modern,
    big_header = 20 * 1024,
    oversize_reset = PROTOCOL_ERROR
);
