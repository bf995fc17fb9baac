//! Counters a user can read.

use std::sync::atomic::{AtomicU64, Ordering};

use super::policy::RetryKind;
use super::StopReason;
use crate::Cause;

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// What a policy and its clones have done so far.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct RetryStats {
            $($(#[$doc])* pub $name: u64,)*
        }

        #[derive(Debug, Default)]
        pub(crate) struct Counters {
            $($name: AtomicU64,)*
        }

        impl Counters {
            pub(crate) fn snapshot(&self) -> RetryStats {
                RetryStats { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters! {
    /// Requests begun.
    requests,
    /// Requests that succeeded (an answer came, whatever its status).
    successes,
    /// Requests that failed: the sum of the stop reasons below.
    failures,
    /// Attempts sent, retries included.
    attempts,
    /// Retries of every kind.
    retries,
    /// Free immediate retries, one at most per request, after a refusal
    /// (`Verdict::is_refusal`); they are not taken from the budget.
    transparent_retries,
    /// Further retries of requests the server never processed, bounded by
    /// `max_refusals` and the budget rather than `max_attempts`.
    refusal_retries,
    /// Connect-error retries within the startup grace.
    grace_retries,
    /// Retries after a GOAWAY.
    retries_go_away,
    /// Retries after an RST_STREAM.
    retries_stream_reset,
    /// Retries after a connect error.
    retries_connect,
    /// Retries of requests hyper handed back unsent, or that it had not
    /// handed to a connection within the handover timeout.
    retries_not_sent,
    /// Attempts given up because the client had not handed them to a
    /// connection within `handover_timeout`.
    handover_timeouts,
    /// Retries after a lost connection.
    retries_connection_lost,
    /// Retries after a timeout.
    retries_timeout,
    /// Retries after any other cause (a protocol error, say).
    retries_other,
    /// Requests whose retry was refused because the budget was spent.
    budget_exhausted,
    /// Requests that failed with every attempt used.
    attempts_exhausted,
    /// Requests that failed because the server refused them `max_refusals`
    /// times more.
    refusals_exhausted,
    /// Requests not replayed because they were not idempotent.
    not_idempotent,
    /// Requests not retried because their body could not be replayed.
    body_not_replayable,
    /// Requests that failed with an error that is never retried.
    not_retryable,
    /// Requests that needed HTTP/1.1.
    requires_http1,
    /// Requests that ran past their deadline.
    deadline_exceeded,
}

impl RetryStats {
    /// Requests begun that have neither succeeded nor failed: in flight,
    /// or dropped by their caller.
    pub fn unfinished(&self) -> u64 {
        self.requests
            .saturating_sub(self.successes.saturating_add(self.failures))
    }

    /// Whether the counters agree: every attempt is a request or a retry,
    /// every retry has a cause, every failure a stop reason, and no more
    /// requests finished than began. The counters are read one by one, so
    /// only a snapshot taken while no request is in flight must agree.
    ///
    /// ```
    /// use classify_retry::{RetryConfig, RetryPolicy};
    /// use classify_core::Classifier;
    ///
    /// let policy = RetryPolicy::new(RetryConfig::default(), Classifier::new(&[])).unwrap();
    /// policy.record_request();
    /// policy.record_success();
    /// assert!(policy.stats().is_consistent());
    /// assert_eq!(policy.stats().unfinished(), 0);
    /// policy.record_success();
    /// assert!(!policy.stats().is_consistent(), "more successes than requests");
    /// ```
    pub fn is_consistent(&self) -> bool {
        let by_cause = [
            self.retries_go_away,
            self.retries_stream_reset,
            self.retries_connect,
            self.retries_not_sent,
            self.retries_connection_lost,
            self.retries_timeout,
            self.retries_other,
        ];
        let by_reason = [
            self.budget_exhausted,
            self.attempts_exhausted,
            self.refusals_exhausted,
            self.not_idempotent,
            self.body_not_replayable,
            self.not_retryable,
            self.requires_http1,
            self.deadline_exceeded,
        ];
        let free_kinds = self.transparent_retries + self.refusal_retries + self.grace_retries;
        self.attempts == self.requests + self.retries
            && self.retries == by_cause.iter().sum::<u64>()
            && self.failures == by_reason.iter().sum::<u64>()
            && free_kinds <= self.retries
            && self.successes + self.failures <= self.requests
    }
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn request(&self) {
        Self::bump(&self.requests);
        Self::bump(&self.attempts);
    }

    pub(crate) fn retry(&self, cause: Cause, kind: RetryKind) {
        Self::bump(&self.retries);
        Self::bump(&self.attempts);
        match kind {
            RetryKind::Free => Self::bump(&self.transparent_retries),
            RetryKind::Refusal => Self::bump(&self.refusal_retries),
            RetryKind::Grace => Self::bump(&self.grace_retries),
            RetryKind::Counted => {}
        }
        let by_cause = match cause {
            Cause::GoAway { .. } => &self.retries_go_away,
            Cause::StreamReset { .. } => &self.retries_stream_reset,
            Cause::Connect(_) => &self.retries_connect,
            Cause::NotSent => &self.retries_not_sent,
            Cause::ConnectionLost => &self.retries_connection_lost,
            Cause::Timeout => &self.retries_timeout,
            _ => &self.retries_other,
        };
        Self::bump(by_cause);
    }

    pub(crate) fn handover_timeout(&self) {
        Self::bump(&self.handover_timeouts);
    }

    pub(crate) fn success(&self) {
        Self::bump(&self.successes);
    }

    pub(crate) fn stop(&self, reason: StopReason) {
        Self::bump(&self.failures);
        Self::bump(match reason {
            StopReason::BudgetExhausted => &self.budget_exhausted,
            StopReason::AttemptsExhausted => &self.attempts_exhausted,
            StopReason::RefusalsExhausted => &self.refusals_exhausted,
            StopReason::NotIdempotent => &self.not_idempotent,
            StopReason::BodyNotReplayable => &self.body_not_replayable,
            StopReason::NotRetryable => &self.not_retryable,
            StopReason::RequiresHttp1 => &self.requires_http1,
            StopReason::DeadlineExceeded => &self.deadline_exceeded,
        });
    }
}
