//! The verdict vocabulary: what failed, whether a retry is safe, and how soon.

use std::fmt;

use crate::{Reason, RequestBody};

/// The answer to "should this failed request be retried, and is it safe to?".
///
/// A verdict is made by [`Classifier::classify`](crate::Classifier::classify)
/// (or the `hyper-classify` facade's `classify`). It says what the error chain
/// held ([`cause`](Verdict::cause)), which requests may be replayed
/// ([`safety`](Verdict::safety)) and how soon ([`pace`](Verdict::pace)).
///
/// ```
/// use classify_core::{Classifier, Cause, RetrySafety};
///
/// let err = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
/// let verdict = Classifier::new(&[]).classify(&err);
/// assert_eq!(verdict.cause(), Cause::ConnectionLost);
/// assert_eq!(verdict.safety(), RetrySafety::IdempotentOnly);
/// assert!(verdict.permits_retry(true));
/// assert!(!verdict.permits_retry(false));
/// println!("{verdict}"); // connection lost after the request was sent: retry idempotent requests only, after backoff
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Verdict {
    cause: Cause,
    safety: RetrySafety,
    pace: Pace,
}

impl Verdict {
    /// A verdict from its parts. Classification makes these; a retry policy
    /// or a test may want to make its own.
    pub const fn new(cause: Cause, safety: RetrySafety, pace: Pace) -> Self {
        Verdict {
            cause,
            safety,
            pace,
        }
    }

    /// What the error chain held.
    pub const fn cause(&self) -> Cause {
        self.cause
    }

    /// Which requests may be replayed.
    pub const fn safety(&self) -> RetrySafety {
        self.safety
    }

    /// How soon a retry should go out. Meaningless when
    /// [`safety`](Verdict::safety) is [`RetrySafety::Never`].
    pub const fn pace(&self) -> Pace {
        self.pace
    }

    /// Whether a request may be retried, given whether it is idempotent
    /// (by method, by an `Idempotency-Key`, or by the caller's word).
    pub const fn permits_retry(&self, idempotent: bool) -> bool {
        match self.safety {
            RetrySafety::AnyRequest => true,
            RetrySafety::IdempotentOnly => idempotent,
            RetrySafety::Never => false,
        }
    }

    /// Whether the request may be sent again as it was sent, over the same
    /// protocol: [`permits_retry`](Self::permits_retry), unless the peer
    /// asked for HTTP/1.1 ([`requires_http1`](Self::requires_http1)), which
    /// a retry over HTTP/2 would meet again. What a retry hook that cannot
    /// change the protocol (the AWS SDK's, reqwest's) asks.
    ///
    /// ```
    /// use classify_core::{Cause, Initiator, Pace, Reason, RetrySafety, Verdict};
    ///
    /// let http1 = Verdict::new(
    ///     Cause::GoAway { reason: Reason::HTTP_1_1_REQUIRED, initiator: Initiator::Remote },
    ///     RetrySafety::AnyRequest,
    ///     Pace::Immediate,
    /// );
    /// assert!(http1.permits_retry(false));
    /// assert!(!http1.permits_retry_as_sent(false));
    /// ```
    pub fn permits_retry_as_sent(&self, idempotent: bool) -> bool {
        !self.requires_http1() && self.permits_retry(idempotent)
    }

    /// Whether the peer asked for HTTP/1.1 (`HTTP_1_1_REQUIRED`, in a
    /// `GOAWAY` or an `RST_STREAM`): a retry should go out over HTTP/1.1.
    pub fn requires_http1(&self) -> bool {
        matches!(
            self.cause,
            Cause::GoAway { reason, .. } | Cause::StreamReset { reason, .. }
                if reason == Reason::HTTP_1_1_REQUIRED
        )
    }
    /// The verdict for a request whose body was as `body` when the client
    /// dispatched it.
    ///
    /// A peer's `GOAWAY` usually fails only streams the server never
    /// processed (those above its `last_stream_id`), but hyper (0.14 and 1,
    /// `proto/h2/client.rs`) also fails a request with it when the GOAWAY
    /// arrives between `send_request` and the dispatcher's next
    /// `poll_ready`: that request's HEADERS are already queued, but its
    /// body is never piped, so `END_STREAM` never leaves. Only a request
    /// whose HEADERS carried `END_STREAM` (an empty body) can have reached
    /// the server whole that way; one with a body never did, and any
    /// method may be replayed. A request [parked](Cause::Parked) at the
    /// peer's stream limit when its connection ended is the same: its body
    /// was never piped. Every other verdict is returned as it is.
    ///
    /// A server that acts on a request's HEADERS before its body has
    /// arrived is outside this promise.
    ///
    /// ```
    /// use classify_core::{Cause, Initiator, Pace, Reason, RequestBody, RetrySafety, Verdict};
    ///
    /// let go_away = Verdict::new(
    ///     Cause::GoAway { reason: Reason::NO_ERROR, initiator: Initiator::Remote },
    ///     RetrySafety::IdempotentOnly,
    ///     Pace::Immediate,
    /// );
    /// assert_eq!(go_away.for_body(RequestBody::NonEmpty).safety(), RetrySafety::AnyRequest);
    /// assert_eq!(go_away.for_body(RequestBody::Empty).safety(), RetrySafety::IdempotentOnly);
    /// ```
    pub const fn for_body(self, body: RequestBody) -> Verdict {
        match (self.cause, self.safety, body) {
            (
                Cause::GoAway {
                    initiator: Initiator::Remote,
                    ..
                }
                | Cause::Parked { .. },
                RetrySafety::IdempotentOnly,
                RequestBody::NonEmpty,
            ) => Verdict::new(self.cause, RetrySafety::AnyRequest, self.pace),
            _ => self,
        }
    }

    /// The verdict for an error met after the response's head had arrived
    /// (while its body was read): the server answered, so it took the
    /// request on. A `GOAWAY` or `RST_STREAM(REFUSED_STREAM)` then is no
    /// refusal: only idempotent requests are replayed, after backoff.
    ///
    /// ```
    /// use classify_core::{Cause, Initiator, Pace, Reason, RetrySafety, Verdict};
    ///
    /// let refused = Verdict::new(
    ///     Cause::StreamReset { reason: Reason::REFUSED_STREAM, initiator: Initiator::Remote },
    ///     RetrySafety::AnyRequest,
    ///     Pace::Immediate,
    /// );
    /// let late = refused.after_response_head();
    /// assert_eq!(late.safety(), RetrySafety::IdempotentOnly);
    /// assert!(!late.is_refusal() && !late.is_never_processed());
    /// ```
    pub const fn after_response_head(self) -> Verdict {
        let safety = match self.safety {
            RetrySafety::AnyRequest => RetrySafety::IdempotentOnly,
            safety => safety,
        };
        let pace = match self.pace {
            Pace::Immediate => Pace::Backoff,
            pace => pace,
        };
        Verdict::new(self.cause, safety, pace)
    }

    /// Whether the request was turned away without being processed and the
    /// server is fine: a draining `GOAWAY(NO_ERROR)` or `REFUSED_STREAM`
    /// from the peer, or a request handed back unsent. Such a retry adds no
    /// load to a struggling server.
    pub fn is_refusal(&self) -> bool {
        self.pace == Pace::Immediate
            && !self.requires_http1()
            && matches!(
                self.cause,
                Cause::GoAway { .. } | Cause::StreamReset { .. } | Cause::NotSent
            )
    }

    /// Whether the request certainly never reached the server's application:
    /// a retry is safe for any request, and the cause is a refusal, a
    /// request handed back, or one whose body never left (not a failed
    /// connect).
    pub fn is_never_processed(&self) -> bool {
        matches!(self.safety, RetrySafety::AnyRequest)
            && matches!(
                self.cause,
                Cause::GoAway { .. }
                    | Cause::StreamReset { .. }
                    | Cause::NotSent
                    | Cause::Parked { .. }
            )
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.cause, self.safety)?;
        if self.safety != RetrySafety::Never {
            write!(f, ", {}", self.pace)?;
        }
        Ok(())
    }
}

/// Which requests may be replayed after an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetrySafety {
    /// The request was never processed by the server: any method may be
    /// replayed, `POST` included.
    AnyRequest,
    /// The server may have processed the request: replay it only if it is
    /// idempotent.
    IdempotentOnly,
    /// Do not retry: the error will happen again, or it is the caller's own.
    Never,
}

impl fmt::Display for RetrySafety {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RetrySafety::AnyRequest => "retry any request",
            RetrySafety::IdempotentOnly => "retry idempotent requests only",
            RetrySafety::Never => "do not retry",
        })
    }
}

/// How soon a retry should go out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Pace {
    /// At once: the server is fine, it just did not take this request on that
    /// connection (a draining GOAWAY, `REFUSED_STREAM`, a request handed back).
    Immediate,
    /// After the usual exponential backoff.
    Backoff,
    /// After a longer backoff: the peer said it is overloaded
    /// (`ENHANCE_YOUR_CALM`).
    Throttled,
}

impl fmt::Display for Pace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pace::Immediate => "immediately",
            Pace::Backoff => "after backoff",
            Pace::Throttled => "after a throttled backoff",
        })
    }
}

/// Who made an HTTP/2 `GOAWAY` or `RST_STREAM`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Initiator {
    /// The peer sent it.
    Remote,
    /// Our side's user of h2 (hyper, or the application) asked for it.
    Local,
    /// Our own h2 library made it, having noticed a protocol problem.
    Library,
}

impl fmt::Display for Initiator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Initiator::Remote => "from the peer",
            Initiator::Local => "sent by this side",
            Initiator::Library => "made by our h2",
        })
    }
}

/// Why a connection could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectKind {
    /// Nothing listened there (yet): `ECONNREFUSED`.
    Refused,
    /// The connection was reset or aborted while it was being set up.
    Reset,
    /// Name resolution failed.
    Dns,
    /// Connecting took too long.
    Timeout,
    /// The host or network cannot be reached.
    Unreachable,
    /// Anything else, TLS handshake failures among them.
    Other,
}

impl fmt::Display for ConnectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectKind::Refused => "refused",
            ConnectKind::Reset => "reset",
            ConnectKind::Dns => "name resolution failed",
            ConnectKind::Timeout => "timed out",
            ConnectKind::Unreachable => "unreachable",
            ConnectKind::Other => "failed",
        })
    }
}

/// What an error chain held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Cause {
    /// An HTTP/2 `GOAWAY` the peer sent. Usually the request's stream was
    /// above its `last_stream_id` or never sent, but hyper can also attach
    /// it to a request it had just sent, so only idempotent requests are
    /// replayed, unless the request had a body
    /// ([`Verdict::for_body`](crate::Verdict::for_body)).
    GoAway {
        /// The `GOAWAY` error code.
        reason: Reason,
        /// Who sent it; always [`Initiator::Remote`] for this cause.
        initiator: Initiator,
    },
    /// An HTTP/2 `RST_STREAM` the peer sent.
    StreamReset {
        /// The `RST_STREAM` error code.
        reason: Reason,
        /// Who sent it; always [`Initiator::Remote`] for this cause.
        initiator: Initiator,
    },
    /// No connection could be made.
    Connect(ConnectKind),
    /// The client handed the request back unsent (hyper's `Canceled`), or
    /// the connection closed before the request was handed to it.
    NotSent,
    /// The connection ended while it held the request without having sent
    /// its body: the request was waiting for a stream at the peer's
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`. Its HEADERS may have left, with
    /// `END_STREAM` if its body was empty, so only idempotent requests are
    /// replayed, unless the request had a body
    /// ([`Verdict::for_body`](crate::Verdict::for_body)).
    Parked {
        /// The `GOAWAY` code that ended the connection, when the client
        /// said (hyper 1.13 does for codes other than `NO_ERROR`).
        reason: Option<Reason>,
    },
    /// The connection broke after the request was sent.
    ConnectionLost,
    /// Something took too long.
    Timeout,
    /// A protocol violation, one of our own h2's `GOAWAY`s or resets among
    /// them, or a response that did not parse.
    Protocol,
    /// The caller's own error: a bad request, a failing request body.
    User,
    /// Nothing in the chain was recognised.
    Unrecognized {
        /// The chain looked like an h2 error (a `GoAway(..)` or `Reset(..)`
        /// in its `Debug`) that no enabled backend could read: most likely an
        /// h2 version that no enabled feature covers.
        h2_shaped: bool,
    },
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::GoAway { reason, initiator } => write!(f, "GOAWAY {reason} {initiator}"),
            Cause::StreamReset { reason, initiator } => {
                write!(f, "RST_STREAM {reason} {initiator}")
            }
            Cause::Connect(kind) => write!(f, "connect {kind}"),
            Cause::NotSent => f.write_str("request handed back unsent"),
            Cause::Parked { reason: None } => {
                f.write_str("connection ended while the request waited for a stream")
            }
            Cause::Parked {
                reason: Some(reason),
            } => write!(
                f,
                "connection ended by GOAWAY {reason} while the request waited for a stream"
            ),
            Cause::ConnectionLost => f.write_str("connection lost after the request was sent"),
            Cause::Timeout => f.write_str("timed out"),
            Cause::Protocol => f.write_str("protocol error"),
            Cause::User => f.write_str("caller error"),
            Cause::Unrecognized { h2_shaped: false } => f.write_str("unrecognized error"),
            Cause::Unrecognized { h2_shaped: true } => {
                f.write_str("unrecognized h2-shaped error (an h2 version no backend covers?)")
            }
        }
    }
}
