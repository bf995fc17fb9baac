//! The retry decision, written once for every stack and adapter.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tower::retry::budget::{Budget, TpsBudget};

use super::stats::Counters;
use super::{InvalidConfig, RetryConfig, RetryError, RetryStats, StopReason};
use crate::{Cause, Classifier, Pace, RetrySafety, Verdict};

/// A retry policy: when to retry a failed request, after how long, and
/// whether it is safe to.
///
/// Clones share the retry budget and the [`stats`](RetryPolicy::stats), so
/// one policy should serve one client. The stack adapters (tower `Policy`
/// and `Layer` for hyper 0.14 and hyper 1) all call
/// [`begin`](RetryPolicy::begin) and [`on_error`](RetryPolicy::on_error),
/// or [`run`](RetryPolicy::run), so they behave the same.
#[derive(Clone)]
pub struct RetryPolicy {
    shared: Arc<Shared>,
}

struct Shared {
    config: RetryConfig,
    classifier: Classifier<'static>,
    budget: Option<TpsBudget>,
    counters: Counters,
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("config", &self.shared.config)
            .field("classifier", &self.shared.classifier)
            .finish()
    }
}

/// What is known about a request that bears on retrying it.
///
/// ```
/// use classify_core::retry::RequestFacts;
///
/// assert!(RequestFacts::new("PUT", false).is_idempotent());
/// assert!(!RequestFacts::new("POST", false).is_idempotent());
/// assert!(RequestFacts::new("POST", true).is_idempotent()); // Idempotency-Key
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestFacts {
    idempotent: bool,
    replayable: bool,
}

impl RequestFacts {
    /// A replayable request with this method; `has_idempotency_key` is
    /// whether it carries an `Idempotency-Key` header.
    pub fn new(method: &str, has_idempotency_key: bool) -> Self {
        RequestFacts {
            idempotent: is_idempotent_method(method) || has_idempotency_key,
            replayable: true,
        }
    }

    /// Marks the request idempotent on the caller's word (or not).
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent |= idempotent;
        self
    }

    /// Whether the request's body can be sent again.
    pub fn replayable(mut self, replayable: bool) -> Self {
        self.replayable = replayable;
        self
    }

    /// Whether replaying it is safe even if the server processed it.
    pub fn is_idempotent(&self) -> bool {
        self.idempotent
    }
}

/// Whether `method` is idempotent by RFC 9110 §9.2.2.
pub fn is_idempotent_method(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
    )
}

/// One request's progress through its retries.
#[derive(Clone, Debug)]
pub struct RetryState {
    facts: RequestFacts,
    started: Instant,
    sent: u32,
    counted: u32,
    backoffs: u32,
    transparent_used: bool,
}

impl RetryState {
    /// How many times the request has been sent.
    pub fn attempts(&self) -> u32 {
        self.sent
    }

    /// The facts the decisions are made on.
    pub fn facts(&self) -> RequestFacts {
        self.facts
    }
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// Send the request again after `delay`.
    Retry {
        /// How long to wait first.
        delay: Duration,
        /// The verdict that allowed it.
        verdict: Verdict,
    },
    /// Surface the error.
    Stop {
        /// Why.
        reason: StopReason,
        /// The verdict on the error.
        verdict: Verdict,
    },
}

impl RetryPolicy {
    /// A policy that classifies with `classifier` (the `hyper-classify`
    /// facade passes the one with every enabled backend).
    pub fn new(
        config: RetryConfig,
        classifier: Classifier<'static>,
    ) -> Result<Self, InvalidConfig> {
        config.validate()?;
        let budget = config
            .budget
            .map(|b| TpsBudget::new(b.ttl, b.min_per_sec, b.percent));
        Ok(RetryPolicy {
            shared: Arc::new(Shared {
                config,
                classifier,
                budget,
                counters: Counters::default(),
            }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &RetryConfig {
        &self.shared.config
    }

    /// What this policy and its clones have done so far.
    pub fn stats(&self) -> RetryStats {
        self.shared.counters.snapshot()
    }

    /// Starts a request: [`record_request`](Self::record_request) and
    /// [`start`](Self::start) in one.
    pub fn begin(&self, facts: RequestFacts) -> RetryState {
        self.record_request();
        self.start(facts)
    }

    /// Counts a request and deposits it into the budget.
    pub fn record_request(&self) {
        if let Some(budget) = &self.shared.budget {
            budget.deposit();
        }
        self.shared.counters.request();
    }

    /// Starts a request's clock (for the startup grace and the deadline).
    pub fn start(&self, facts: RequestFacts) -> RetryState {
        RetryState {
            facts,
            started: Instant::now(),
            sent: 1,
            counted: 1,
            backoffs: 0,
            transparent_used: false,
        }
    }

    /// Decides what to do after an attempt failed with `err`, and counts the
    /// retry if there is one (the caller then waits and sends again).
    pub fn on_error(&self, state: &mut RetryState, err: &(dyn Error + 'static)) -> Decision {
        let verdict = self.shared.classifier.classify(err);
        let decision = self.decide(state, verdict, Instant::now());
        match decision {
            Decision::Retry { delay, verdict } => tracing::debug!(
                %verdict,
                attempt = state.sent,
                delay_ms = delay.as_millis() as u64,
                "retrying request"
            ),
            Decision::Stop { reason, verdict } => {
                self.shared.counters.stop(reason);
                tracing::debug!(%verdict, attempts = state.sent, %reason, "not retrying request");
            }
        }
        decision
    }

    fn decide(&self, state: &mut RetryState, verdict: Verdict, now: Instant) -> Decision {
        let config = &self.shared.config;
        let stop = |reason| Decision::Stop { reason, verdict };
        match verdict.safety() {
            RetrySafety::AnyRequest => {}
            RetrySafety::IdempotentOnly if state.facts.idempotent => {}
            RetrySafety::IdempotentOnly => return stop(StopReason::NotIdempotent),
            _ => return stop(StopReason::NotRetryable),
        }
        if verdict.requires_http1() {
            return stop(StopReason::RequiresHttp1);
        }
        if !state.facts.replayable {
            return stop(StopReason::BodyNotReplayable);
        }

        // Once per request, like gRPC's transparent retry: the server never
        // saw it, so it costs neither an attempt nor budget.
        let transparent = verdict.pace() == Pace::Immediate && !state.transparent_used;
        // A request that reached nobody: a failed connect, or one hyper
        // handed back while its connection was still being made.
        let reached_nobody = matches!(verdict.cause(), Cause::Connect(_) | Cause::NotSent);
        let grace =
            reached_nobody && now.saturating_duration_since(state.started) < config.startup_grace;
        let delay = if transparent {
            state.transparent_used = true;
            Duration::ZERO
        } else {
            if !grace && state.counted >= config.max_attempts {
                return stop(StopReason::AttemptsExhausted);
            }
            self.backoff(verdict.pace(), state.backoffs)
        };
        if let Some(deadline) = config.deadline {
            if now + delay >= state.started + deadline {
                return stop(StopReason::DeadlineExceeded);
            }
        }
        if !transparent && !grace {
            if let Some(budget) = &self.shared.budget {
                if !budget.withdraw() {
                    return stop(StopReason::BudgetExhausted);
                }
            }
            state.counted += 1;
        }
        if !transparent {
            state.backoffs += 1;
        }
        state.sent += 1;
        self.shared
            .counters
            .retry(verdict.cause(), transparent, grace && !transparent);
        Decision::Retry { delay, verdict }
    }

    /// The wait before the `(n + 1)`-th backoff retry.
    fn backoff(&self, pace: Pace, n: u32) -> Duration {
        let config = &self.shared.config;
        let base = match pace {
            Pace::Throttled => config.throttled_backoff,
            _ => config.backoff,
        };
        let ceiling = base
            .saturating_mul(1u32.checked_shl(n).unwrap_or(u32::MAX))
            .min(config.max_backoff);
        let ceiling_ns = ceiling.as_nanos() as u64;
        let floor_ns = match pace {
            Pace::Throttled => ceiling_ns / 2,
            _ => 0,
        };
        Duration::from_nanos(fastrand::u64(floor_ns..=ceiling_ns))
    }

    /// Sends a request with `send` until it succeeds or the policy stops.
    ///
    /// `send` is called once per attempt and must send the request afresh.
    /// The deadline, if any, also cuts an attempt in flight short.
    pub async fn run<T, E, F, Fut>(
        &self,
        facts: RequestFacts,
        mut send: F,
    ) -> Result<T, RetryError<E>>
    where
        E: Error + 'static,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut state = self.begin(facts);
        loop {
            let attempt = send();
            let result = match self.shared.config.deadline {
                Some(deadline) => {
                    let until = state.started + deadline;
                    match tokio::time::timeout_at(until, attempt).await {
                        Ok(result) => result,
                        Err(_elapsed) => {
                            self.shared.counters.stop(StopReason::DeadlineExceeded);
                            return Err(RetryError::new(
                                StopReason::DeadlineExceeded,
                                None,
                                state.sent,
                                None,
                            ));
                        }
                    }
                }
                None => attempt.await,
            };
            let err = match result {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            match self.on_error(&mut state, &err) {
                Decision::Retry { delay, .. } => {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                }
                Decision::Stop { reason, verdict } => {
                    return Err(RetryError::new(
                        reason,
                        Some(verdict),
                        state.sent,
                        Some(err),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConnectKind, Initiator, Reason};

    fn policy(config: RetryConfig) -> RetryPolicy {
        RetryPolicy::new(config, Classifier::new(&[])).unwrap()
    }

    fn verdict(cause: Cause, safety: RetrySafety, pace: Pace) -> Verdict {
        Verdict::new(cause, safety, pace)
    }

    const GO_AWAY: Verdict = Verdict::new(
        Cause::GoAway {
            reason: Reason::NO_ERROR,
            initiator: Initiator::Remote,
        },
        RetrySafety::AnyRequest,
        Pace::Immediate,
    );
    const LOST: Verdict = Verdict::new(
        Cause::ConnectionLost,
        RetrySafety::IdempotentOnly,
        Pace::Backoff,
    );
    const REFUSED: Verdict = Verdict::new(
        Cause::Connect(ConnectKind::Refused),
        RetrySafety::AnyRequest,
        Pace::Backoff,
    );

    fn is_retry(d: Decision) -> bool {
        matches!(d, Decision::Retry { .. })
    }

    fn stop_reason(d: Decision) -> Option<StopReason> {
        match d {
            Decision::Stop { reason, .. } => Some(reason),
            _ => None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_post_is_replayed_only_when_unprocessed() {
        let p = policy(RetryConfig::default());
        let mut post = p.begin(RequestFacts::new("POST", false));
        assert!(is_retry(p.decide(&mut post, GO_AWAY, Instant::now())));
        assert_eq!(
            stop_reason(p.decide(&mut post, LOST, Instant::now())),
            Some(StopReason::NotIdempotent)
        );
        let mut keyed = p.begin(RequestFacts::new("POST", true));
        assert!(is_retry(p.decide(&mut keyed, LOST, Instant::now())));
    }

    #[tokio::test(start_paused = true)]
    async fn one_immediate_retry_is_free_then_attempts_count() {
        let p = policy(RetryConfig::default().max_attempts(2));
        let mut s = p.begin(RequestFacts::new("GET", false));
        let now = Instant::now();
        assert_eq!(
            p.decide(&mut s, GO_AWAY, now),
            Decision::Retry {
                delay: Duration::ZERO,
                verdict: GO_AWAY
            }
        );
        assert!(
            is_retry(p.decide(&mut s, GO_AWAY, now)),
            "the second uses attempt 2"
        );
        assert_eq!(
            stop_reason(p.decide(&mut s, GO_AWAY, now)),
            Some(StopReason::AttemptsExhausted)
        );
        assert_eq!(s.attempts(), 3);
        assert_eq!(p.stats().transparent_retries, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn connect_errors_are_retried_through_the_grace_whatever_max_attempts_says() {
        let p = policy(
            RetryConfig::default()
                .max_attempts(1)
                .startup_grace(Duration::from_secs(5)),
        );
        let mut s = p.begin(RequestFacts::new("POST", false));
        for _ in 0..20 {
            assert!(is_retry(p.decide(&mut s, REFUSED, Instant::now())));
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(
            stop_reason(p.decide(&mut s, REFUSED, Instant::now())),
            Some(StopReason::AttemptsExhausted)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_is_full_jitter_and_throttled_waits_at_least_half() {
        let p = policy(RetryConfig::default());
        for n in 0..8 {
            let ceiling = (Duration::from_millis(50) * 2u32.pow(n)).min(Duration::from_secs(20));
            assert!(p.backoff(Pace::Backoff, n) <= ceiling);
            let throttled = (Duration::from_secs(1) * 2u32.pow(n)).min(Duration::from_secs(20));
            let wait = p.backoff(Pace::Throttled, n);
            assert!(wait >= throttled / 2 && wait <= throttled, "{wait:?}");
        }
        // A huge exponent neither overflows nor passes the cap.
        assert!(p.backoff(Pace::Backoff, 40) <= Duration::from_secs(20));
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_stops_a_wait_that_would_pass_it() {
        let p = policy(
            RetryConfig::default()
                .deadline(Duration::from_millis(10))
                .throttled_backoff(Duration::from_secs(1)),
        );
        let mut s = p.begin(RequestFacts::new("GET", false));
        let calm = verdict(Cause::Timeout, RetrySafety::IdempotentOnly, Pace::Throttled);
        assert_eq!(
            stop_reason(p.decide(&mut s, calm, Instant::now())),
            Some(StopReason::DeadlineExceeded)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_budget_refuses_and_says_so() {
        let budget = super::super::RetryBudget::new(Duration::from_secs(1), 0, 0.0);
        let p = policy(RetryConfig::default().budget(Some(budget)));
        let mut s = p.begin(RequestFacts::new("GET", false));
        assert_eq!(
            stop_reason(p.decide(&mut s, LOST, Instant::now())),
            Some(StopReason::BudgetExhausted)
        );
        // A transparent retry costs no budget.
        assert!(is_retry(p.decide(&mut s, GO_AWAY, Instant::now())));
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        let err = RetryPolicy::new(RetryConfig::default().max_attempts(0), Classifier::new(&[]))
            .unwrap_err();
        assert!(err.to_string().contains("max_attempts"));
        let budget = super::super::RetryBudget::new(Duration::from_secs(0), 1, 0.1);
        let err = RetryPolicy::new(
            RetryConfig::default().budget(Some(budget)),
            Classifier::new(&[]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("ttl"));
    }
}
