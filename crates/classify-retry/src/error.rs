//! Why a request was not retried (again).

use std::error::Error;
use std::fmt;

use crate::Verdict;

/// Why the policy stopped retrying a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StopReason {
    /// The verdict forbids any retry ([`RetrySafety::Never`](crate::RetrySafety::Never)).
    NotRetryable,
    /// The server may have processed the request, and it is not idempotent.
    NotIdempotent,
    /// The request body cannot be sent again.
    BodyNotReplayable,
    /// The peer answered `HTTP_1_1_REQUIRED`: send the request over HTTP/1.1.
    RequiresHttp1,
    /// Every attempt was used.
    AttemptsExhausted,
    /// The server refused the request, unprocessed, every time it was sent
    /// again, [`max_refusals`](super::RetryConfig::max_refusals) times.
    RefusalsExhausted,
    /// The retry budget shared by this client's requests is spent.
    BudgetExhausted,
    /// The request's overall deadline passed, or the next wait would pass it.
    DeadlineExceeded,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopReason::NotRetryable => "the error is not retryable",
            StopReason::NotIdempotent => {
                "the request may have been processed and is not idempotent, so it was not replayed"
            }
            StopReason::BodyNotReplayable => {
                "the request body cannot be replayed, so the request was not retried"
            }
            StopReason::RequiresHttp1 => "the server requires HTTP/1.1 for this request",
            StopReason::AttemptsExhausted => "every attempt was used",
            StopReason::RefusalsExhausted => {
                "the server refused the request, unprocessed, every time it was sent again"
            }
            StopReason::BudgetExhausted => "the retry budget is exhausted",
            StopReason::DeadlineExceeded => "the request's deadline passed",
        })
    }
}

/// A request's final error: the last attempt's error, and why it was not
/// retried.
///
/// ```
/// use classify_retry::{RetryError, StopReason};
/// use std::io;
///
/// let err = RetryError::new(StopReason::BudgetExhausted, None, 2, Some(io::Error::other("reset")));
/// assert!(err.is_budget_exhausted());
/// assert_eq!(
///     err.to_string(),
///     "request failed after 2 attempts (the retry budget is exhausted): reset"
/// );
/// ```
#[derive(Debug)]
pub struct RetryError<E> {
    reason: StopReason,
    verdict: Option<Verdict>,
    attempts: u32,
    source: Option<E>,
    earlier: Option<E>,
}

impl<E> RetryError<E> {
    /// A final error. `source` is `None` only when the last attempt was
    /// cut short by the deadline or the attempt timeout; its verdict then
    /// says [`Cause::Timeout`](crate::Cause::Timeout).
    pub fn new(
        reason: StopReason,
        verdict: Option<Verdict>,
        attempts: u32,
        source: Option<E>,
    ) -> Self {
        RetryError {
            reason,
            verdict,
            attempts,
            source,
            earlier: None,
        }
    }

    /// Adds, to a final error whose last attempt timed out, the error of the
    /// attempt before it: the reason the request needed that last attempt.
    pub fn with_earlier_error(mut self, earlier: Option<E>) -> Self {
        self.earlier = earlier;
        self
    }

    /// Why the request was not retried (again).
    pub fn reason(&self) -> StopReason {
        self.reason
    }

    /// The verdict on the last attempt's error.
    pub fn verdict(&self) -> Option<Verdict> {
        self.verdict
    }

    /// How many times the request was sent.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Whether a retry was refused because the budget was spent.
    pub fn is_budget_exhausted(&self) -> bool {
        self.reason == StopReason::BudgetExhausted
    }

    /// Whether the last attempt was cut short by the deadline or the
    /// attempt timeout (it then has no error of its own).
    pub fn is_timeout(&self) -> bool {
        self.source.is_none()
    }

    /// The last attempt's error.
    pub fn last_error(&self) -> Option<&E> {
        self.source.as_ref()
    }

    /// The last attempt's error, owned.
    pub fn into_last_error(self) -> Option<E> {
        self.source
    }

    /// When the last attempt timed out: the error of the attempt before it,
    /// if there was one.
    pub fn earlier_error(&self) -> Option<&E> {
        self.earlier.as_ref()
    }
}

impl<E: fmt::Display> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.attempts == 1 { "" } else { "s" };
        write!(
            f,
            "request failed after {} attempt{s} ({})",
            self.attempts, self.reason
        )?;
        match (&self.source, &self.earlier) {
            (Some(source), _) => write!(f, ": {source}"),
            (None, Some(earlier)) => {
                write!(
                    f,
                    ": the attempt timed out; the one before failed: {earlier}"
                )
            }
            (None, None) => f.write_str(": the attempt timed out"),
        }
    }
}

impl<E: Error + 'static> Error for RetryError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        // A timed-out last attempt has no error; the one before it is the
        // nearest real cause.
        let source = self.source.as_ref().or(self.earlier.as_ref());
        source.map(|e| e as &(dyn Error + 'static))
    }
}

/// A [`RetryConfig`](super::RetryConfig) that cannot work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidConfig(pub(crate) &'static str);

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid retry configuration: {}", self.0)
    }
}

impl Error for InvalidConfig {}
