//! The decision table, written once for every h2 and hyper version.

use std::io;

use crate::view::{H2Frame, H2View, HyperView};
use crate::{Cause, ConnectKind, Initiator, Pace, Reason, RequestBody, RetrySafety, Verdict};

/// Everything the walk found in one error chain.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Evidence {
    /// The first h2 error that came from a `GOAWAY` or `RST_STREAM` frame.
    pub(crate) h2_frame: Option<(H2Frame, Reason, Initiator)>,
    /// The first h2 error that was a reason alone (hyper makes them).
    pub(crate) bare_reason: Option<Reason>,
    /// An h2 error with no frame, no reason and no io error behind it.
    pub(crate) h2_other: bool,
    /// What all the hyper links said, merged.
    pub(crate) hyper: HyperView,
    /// The innermost io error kind other than `Other` (which says nothing).
    pub(crate) io: Option<io::ErrorKind>,
    /// A timer gave up (tokio's, tower's or reqwest's "time is up").
    pub(crate) elapsed: bool,
    /// A connector said name resolution failed.
    pub(crate) dns: bool,
    /// A connector said the URL was unusable.
    pub(crate) invalid_url: bool,
    /// A backend recognised a link (a hyper or h2 error).
    pub(crate) client_error: bool,
    /// What the request's body was, if a link said
    /// ([`WithRequestBody`](crate::WithRequestBody)).
    pub(crate) body: RequestBody,
}

impl Evidence {
    pub(crate) fn add_h2(&mut self, h2: &H2View<'_>) {
        match (h2.frame, h2.reason) {
            (H2Frame::GoAway | H2Frame::Reset, Some(reason)) if self.h2_frame.is_none() => {
                self.h2_frame = Some((h2.frame, reason, h2.initiator));
            }
            (H2Frame::BareReason, Some(reason)) if self.bare_reason.is_none() => {
                self.bare_reason = Some(reason);
            }
            (H2Frame::None, _) if h2.io.is_none() => self.h2_other = true,
            _ => {}
        }
    }

    pub(crate) fn add_io(&mut self, kind: io::ErrorKind) {
        if kind != io::ErrorKind::Other {
            self.io = Some(kind);
        }
    }

    /// Whether a hyper or h2 error was in the chain.
    fn saw_client_error(&self) -> bool {
        self.client_error
    }

    /// Whether anything at all was recognised.
    pub(crate) fn is_empty(&self) -> bool {
        self.h2_frame.is_none()
            && self.bare_reason.is_none()
            && !self.h2_other
            && self.hyper == HyperView::default()
            && self.io.is_none()
            && !self.elapsed
    }
}

/// The table. Rows are tried in order; the first that matches decides.
pub(crate) fn decide(ev: &Evidence) -> Verdict {
    use RetrySafety::*;

    let timed_out = ev.hyper.timeout || ev.elapsed || ev.io == Some(io::ErrorKind::TimedOut);

    // hyper only hands a request back when it never started writing it, so
    // this outranks whatever connection error is behind it.
    if ev.hyper.canceled {
        return Verdict::new(Cause::NotSent, AnyRequest, Pace::Immediate);
    }
    if ev.hyper.user || ev.hyper.body_write_aborted {
        return never(Cause::User);
    }
    if let Some((frame, reason, initiator)) = ev.h2_frame {
        return h2_frame(frame, reason, initiator);
    }
    // hyper 1.13 fails a request parked at the peer's stream limit with the
    // connection's GOAWAY code alone (`h2::Error::from(reason)`), or with
    // `Canceled("connection closed")` after a graceful one or an io error;
    // hyper 1.12 and 0.14 drop it ("dispatch task is gone"), as every
    // version does when a keep-alive timeout ends the connection. hyper
    // never piped its body, but its HEADERS may have left just before.
    if let Some(reason) = ev.bare_reason {
        let cause = Cause::Parked {
            reason: Some(reason),
        };
        return Verdict::new(cause, IdempotentOnly, go_away_pace(reason));
    }
    if ev.hyper.abandoned {
        let cause = Cause::Parked { reason: None };
        return Verdict::new(cause, IdempotentOnly, Pace::Backoff);
    }
    // The connection closed before the request was handed to it (a fresh
    // connection that died during its handshake, a pooled one found closed).
    // Not a refusal: a connection that dies that way may die again.
    if ev.hyper.closed {
        return Verdict::new(Cause::NotSent, AnyRequest, Pace::Backoff);
    }
    if ev.hyper.connect && ev.invalid_url {
        return never(Cause::User);
    }
    if ev.hyper.connect {
        let kind = match ev.io.and_then(connect_kind) {
            Some(kind) => kind,
            None if timed_out => ConnectKind::Timeout,
            None if ev.dns => ConnectKind::Dns,
            None => ConnectKind::Other,
        };
        return Verdict::new(Cause::Connect(kind), AnyRequest, Pace::Backoff);
    }
    if timed_out {
        return Verdict::new(Cause::Timeout, IdempotentOnly, Pace::Backoff);
    }
    if ev.h2_other || ev.hyper.parse {
        return never(Cause::Protocol);
    }
    match ev.io {
        // Only a bare io error: under hyper or h2 the connection was made,
        // and a refused or unreachable error is the kernel reporting an
        // established connection's death, after the request went out.
        Some(kind) if connect_only(kind) && !ev.saw_client_error() => {
            let kind = connect_kind(kind).unwrap_or(ConnectKind::Other);
            return Verdict::new(Cause::Connect(kind), AnyRequest, Pace::Backoff);
        }
        Some(kind) if connection_lost(kind) || connect_only(kind) => return lost(),
        _ => {}
    }
    if ev.hyper.incomplete_message {
        return lost();
    }
    never(Cause::Unrecognized { h2_shaped: false })
}

/// GOAWAY and RST_STREAM, by who sent them and why.
fn h2_frame(frame: H2Frame, reason: Reason, initiator: Initiator) -> Verdict {
    use RetrySafety::*;

    if initiator != Initiator::Remote {
        // Ours (h2 0.3's REFUSED_STREAM for oversized response headers is
        // one): the peer may well have processed the request.
        return never(Cause::Protocol);
    }
    match frame {
        // h2 fails the streams above the GOAWAY's last_stream_id with it,
        // and those were never processed (RFC 9113 §6.8). But hyper (0.14
        // and 1) also hands a clone of it to a request whose HEADERS it has
        // just queued, when the connection's second `poll_ready` fails after
        // `send_request`: that request may well have been processed (a
        // two-phase graceful GOAWAY with last_stream_id 2^31-1 makes it
        // likely). The error cannot tell the two apart, so only idempotent
        // requests are replayed.
        H2Frame::GoAway => Verdict::new(
            Cause::GoAway { reason, initiator },
            IdempotentOnly,
            go_away_pace(reason),
        ),
        H2Frame::Reset => {
            let cause = Cause::StreamReset { reason, initiator };
            match reason {
                // RFC 9113 §8.7: refused before any processing.
                Reason::REFUSED_STREAM => Verdict::new(cause, AnyRequest, Pace::Immediate),
                Reason::ENHANCE_YOUR_CALM => Verdict::new(cause, IdempotentOnly, Pace::Throttled),
                _ => Verdict::new(cause, IdempotentOnly, Pace::Backoff),
            }
        }
        H2Frame::BareReason | H2Frame::None => never(Cause::Protocol),
    }
}

/// How soon to retry after the peer's `GOAWAY` with `reason`.
fn go_away_pace(reason: Reason) -> Pace {
    match reason {
        Reason::NO_ERROR | Reason::HTTP_1_1_REQUIRED => Pace::Immediate,
        Reason::ENHANCE_YOUR_CALM => Pace::Throttled,
        _ => Pace::Backoff,
    }
}

/// io error kinds that only happen while a connection is being made.
fn connect_only(kind: io::ErrorKind) -> bool {
    use io::ErrorKind::*;
    matches!(
        kind,
        ConnectionRefused | HostUnreachable | NetworkUnreachable | AddrNotAvailable
    )
}

fn connect_kind(kind: io::ErrorKind) -> Option<ConnectKind> {
    use io::ErrorKind::*;
    Some(match kind {
        ConnectionRefused => ConnectKind::Refused,
        ConnectionReset | ConnectionAborted => ConnectKind::Reset,
        TimedOut => ConnectKind::Timeout,
        HostUnreachable | NetworkUnreachable => ConnectKind::Unreachable,
        _ => return None,
    })
}

/// io error kinds that mean an established connection broke.
fn connection_lost(kind: io::ErrorKind) -> bool {
    use io::ErrorKind::*;
    matches!(
        kind,
        BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof | NotConnected | WriteZero
    )
}

fn lost() -> Verdict {
    Verdict::new(
        Cause::ConnectionLost,
        RetrySafety::IdempotentOnly,
        Pace::Backoff,
    )
}

fn never(cause: Cause) -> Verdict {
    Verdict::new(cause, RetrySafety::Never, Pace::Backoff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(frame: H2Frame, reason: Reason) -> Verdict {
        h2_frame(frame, reason, Initiator::Remote)
    }

    #[test]
    fn go_away_pace_follows_the_reason() {
        let pace = |r| remote(H2Frame::GoAway, r).pace();
        assert_eq!(pace(Reason::NO_ERROR), Pace::Immediate);
        assert_eq!(pace(Reason::HTTP_1_1_REQUIRED), Pace::Immediate);
        assert_eq!(pace(Reason::ENHANCE_YOUR_CALM), Pace::Throttled);
        assert_eq!(pace(Reason::INTERNAL_ERROR), Pace::Backoff);
        assert_eq!(pace(Reason::from(0xff)), Pace::Backoff);
    }

    #[test]
    fn a_remote_go_away_is_safe_for_idempotent_requests_whatever_the_code() {
        for code in 0..=0xe {
            let v = remote(H2Frame::GoAway, Reason::from(code));
            assert_eq!(v.safety(), RetrySafety::IdempotentOnly, "{v}");
        }
    }

    #[test]
    fn refused_or_unreachable_under_hyper_is_a_lost_connection() {
        let mut bare = Evidence::default();
        bare.add_io(io::ErrorKind::ConnectionRefused);
        assert_eq!(decide(&bare).cause(), Cause::Connect(ConnectKind::Refused));
        let mut under_hyper = bare;
        under_hyper.client_error = true; // hyper::Error(Io) sets no flag
        assert_eq!(decide(&under_hyper).cause(), Cause::ConnectionLost);
    }

    #[test]
    fn a_connection_closed_before_the_handover_is_not_a_refusal() {
        let mut ev = Evidence::default();
        ev.hyper.closed = true;
        let v = decide(&ev);
        assert_eq!(v.cause(), Cause::NotSent);
        assert_eq!(v.safety(), RetrySafety::AnyRequest);
        assert!(!v.is_refusal(), "{v}");
        assert!(v.is_never_processed(), "{v}");
    }

    #[test]
    fn a_parked_request_is_replayed_as_its_body_allows_at_its_reasons_pace() {
        let ev = Evidence {
            bare_reason: Some(Reason::ENHANCE_YOUR_CALM),
            ..Evidence::default()
        };
        let v = decide(&ev);
        assert_eq!(
            v.cause(),
            Cause::Parked {
                reason: Some(Reason::ENHANCE_YOUR_CALM)
            }
        );
        assert_eq!(v.safety(), RetrySafety::IdempotentOnly);
        assert_eq!(v.pace(), Pace::Throttled);
        let with_body = v.for_body(RequestBody::NonEmpty);
        assert_eq!(with_body.safety(), RetrySafety::AnyRequest);
        assert!(with_body.is_never_processed());
        assert_eq!(v.for_body(RequestBody::Empty), v);

        let mut ev = Evidence::default();
        ev.hyper.abandoned = true;
        let v = decide(&ev);
        assert_eq!(v.cause(), Cause::Parked { reason: None });
        assert_eq!(v.safety(), RetrySafety::IdempotentOnly);
    }

    #[test]
    fn only_a_refused_stream_reset_is_safe_for_any_request() {
        for code in 0..=0xe {
            let v = remote(H2Frame::Reset, Reason::from(code));
            let expected = if code == 7 {
                RetrySafety::AnyRequest
            } else {
                RetrySafety::IdempotentOnly
            };
            assert_eq!(v.safety(), expected, "{v}");
        }
    }

    #[test]
    fn our_own_frames_are_protocol_errors() {
        for initiator in [Initiator::Local, Initiator::Library] {
            for frame in [H2Frame::GoAway, H2Frame::Reset] {
                let v = h2_frame(frame, Reason::REFUSED_STREAM, initiator);
                assert_eq!(v.cause(), Cause::Protocol);
                assert_eq!(v.safety(), RetrySafety::Never);
            }
        }
    }

    #[test]
    fn handed_back_outranks_the_connection_error_behind_it() {
        let mut ev = Evidence::default();
        ev.hyper.canceled = true;
        ev.add_io(io::ErrorKind::BrokenPipe);
        assert_eq!(decide(&ev).cause(), Cause::NotSent);
    }

    #[test]
    fn the_innermost_specific_io_kind_wins() {
        let mut ev = Evidence::default();
        ev.add_io(io::ErrorKind::ConnectionReset);
        ev.add_io(io::ErrorKind::Other);
        assert_eq!(ev.io, Some(io::ErrorKind::ConnectionReset));
        ev.add_io(io::ErrorKind::ConnectionRefused);
        assert_eq!(decide(&ev).cause(), Cause::Connect(ConnectKind::Refused));
    }
}
