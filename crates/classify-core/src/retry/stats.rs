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
            _ => return,
        };
        Self::bump(by_cause);
    }

    pub(crate) fn handover_timeout(&self) {
        Self::bump(&self.handover_timeouts);
    }

    pub(crate) fn stop(&self, reason: StopReason) {
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
