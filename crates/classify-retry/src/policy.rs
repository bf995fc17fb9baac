//! The retry decision, written once for every stack and adapter.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tower::retry::budget::{Budget, TpsBudget};

use super::handover::HandoverWatch;
use super::stats::Counters;
use super::{HandoverMarker, InvalidConfig, RetryConfig, RetryError, RetryStats, StopReason};
use crate::{Cause, Classifier, ConnectKind, Pace, RequestBody, RetrySafety, Verdict};

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
    /// When the policy was made: the startup grace runs from here...
    created: Instant,
    /// ...until the first request that succeeds.
    succeeded: AtomicBool,
    /// Whether the last connect failed and no request has succeeded since:
    /// nobody answers, and a request handed back unsent is then one more
    /// failed try, not a refusal by a server that works.
    unreachable: AtomicBool,
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
/// use classify_retry::RequestFacts;
///
/// assert!(RequestFacts::new("PUT", false).is_idempotent());
/// assert!(!RequestFacts::new("POST", false).is_idempotent());
/// assert!(RequestFacts::new("POST", true).is_idempotent()); // Idempotency-Key
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestFacts {
    idempotent: bool,
    replayable: bool,
    body: RequestBody,
}

impl RequestFacts {
    /// A replayable request with this method and no body;
    /// `has_idempotency_key` is whether it carries an `Idempotency-Key`
    /// header.
    pub fn new(method: &str, has_idempotency_key: bool) -> Self {
        RequestFacts {
            idempotent: is_idempotent_method(method) || has_idempotency_key,
            replayable: true,
            body: RequestBody::Empty,
        }
    }

    /// What followed the request's head (see
    /// [`Verdict::for_body`](crate::Verdict::for_body)): a peer's `GOAWAY`
    /// on a request with a body means it was never processed.
    pub fn body(mut self, body: RequestBody) -> Self {
        self.body = body;
        self
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

    /// Whether its body can be sent again.
    pub fn is_replayable(&self) -> bool {
        self.replayable
    }

    /// What followed its head.
    pub fn body_kind(&self) -> RequestBody {
        self.body
    }
}

/// Whether `method` is idempotent by RFC 9110 §9.2.2.
pub fn is_idempotent_method(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
    )
}

/// Which budget a retry is taken from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RetryKind {
    /// The one free immediate retry after a refusal.
    Free,
    /// A further retry of a request the server never processed: bounded by
    /// [`RetryConfig::max_refusals`], the budget and the deadline, not by
    /// the attempt count.
    Refusal,
    /// A connect error within the startup grace.
    Grace,
    /// Any other retry: an attempt, taken from the budget.
    Counted,
}

/// One request's progress through its retries.
#[derive(Clone, Debug)]
pub struct RetryState {
    facts: RequestFacts,
    started: Instant,
    sent: u32,
    counted: u32,
    refusals: u32,
    backoffs: u32,
    free_retry_used: bool,
    /// Whether the free retry went to a request handed back unsent: if
    /// connects then turn out to fail, that send was an attempt after all.
    free_retry_not_sent: bool,
    lost_retry_used: bool,
    /// Whether the last retry was a startup-grace one: when the grace ends,
    /// the backoff starts again from its base.
    in_grace: bool,
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
                created: Instant::now(),
                succeeded: AtomicBool::new(false),
                unreachable: AtomicBool::new(false),
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

    /// Counts a request that succeeded, which ends the startup grace
    /// ([`RetryConfig::startup_grace`]). [`run`](Self::run) and the tower
    /// adapters call it.
    pub fn record_success(&self) {
        self.shared.counters.success();
        // Loads first: a store on every success would bounce the cache line
        // between the cores of a busy client.
        if !self.shared.succeeded.load(Ordering::Relaxed) {
            self.shared.succeeded.store(true, Ordering::Relaxed);
        }
        if self.shared.unreachable.load(Ordering::Relaxed) {
            self.shared.unreachable.store(false, Ordering::Relaxed);
        }
    }

    /// When the policy was made: the epoch of the adapters' atomic clocks.
    pub(crate) fn created(&self) -> Instant {
        self.shared.created
    }

    /// Whether the last connect failed and nothing succeeded since.
    fn is_unreachable(&self) -> bool {
        self.shared.unreachable.load(Ordering::Relaxed)
    }

    /// Whether the startup grace is on at `now`: the policy has seen no
    /// success yet, and it was made less than `startup_grace` ago.
    fn in_startup(&self, now: Instant) -> bool {
        !self.shared.succeeded.load(Ordering::Relaxed)
            && now.saturating_duration_since(self.shared.created) < self.shared.config.startup_grace
    }

    /// Starts a request's clock (for the deadline).
    pub fn start(&self, facts: RequestFacts) -> RetryState {
        self.start_at(facts, Instant::now())
    }

    /// Starts a request whose clock started at `started`: a tower `Policy`
    /// sees a request first when tower copies it, and decides only after
    /// its first attempt failed.
    pub(crate) fn start_at(&self, facts: RequestFacts, started: Instant) -> RetryState {
        RetryState {
            facts,
            started,
            sent: 1,
            counted: 1,
            refusals: 0,
            backoffs: 0,
            free_retry_used: false,
            free_retry_not_sent: false,
            lost_retry_used: false,
            in_grace: false,
        }
    }

    /// Decides what to do after an attempt failed with `err`, and counts the
    /// retry if there is one (the caller then waits and sends again).
    pub fn on_error(&self, state: &mut RetryState, err: &(dyn Error + 'static)) -> Decision {
        let verdict = self.shared.classifier.classify(err);
        self.on_verdict(state, verdict)
    }

    /// Decides what to do after an attempt ran past
    /// [`RetryConfig::attempt_timeout`]: a timeout, which may have been
    /// processed.
    pub fn on_attempt_timeout(&self, state: &mut RetryState) -> Decision {
        self.on_verdict(state, ATTEMPT_TIMED_OUT)
    }

    fn on_verdict(&self, state: &mut RetryState, verdict: Verdict) -> Decision {
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
        // A body is what makes a peer's GOAWAY mean "never processed".
        let body = match config.go_away_never_processed {
            true => RequestBody::NonEmpty,
            false => state.facts.body,
        };
        let verdict = verdict.for_body(body);
        let stop = |reason| Decision::Stop { reason, verdict };
        // Before safety: a POST answered with HTTP_1_1_REQUIRED needs
        // HTTP/1.1, whether or not it is idempotent.
        if verdict.requires_http1() {
            return stop(StopReason::RequiresHttp1);
        }
        match verdict.safety() {
            RetrySafety::AnyRequest => {}
            RetrySafety::IdempotentOnly if state.facts.idempotent => {}
            RetrySafety::IdempotentOnly => return stop(StopReason::NotIdempotent),
            _ => return stop(StopReason::NotRetryable),
        }
        if !state.facts.replayable {
            return stop(StopReason::BodyNotReplayable);
        }

        let kind = self.kind_of(state, verdict, now);
        // Waits stepped up while nobody listened say nothing about the
        // server that now answers: start its backoff from the base.
        if state.in_grace && kind != RetryKind::Grace {
            state.in_grace = false;
            state.backoffs = 0;
        }
        // Handed back unsent before this policy learnt that connects fail
        // (the failed connect's own request decided later): it was an
        // attempt at an unreachable server, and counts as one now.
        if kind == RetryKind::Counted && state.free_retry_not_sent && self.is_unreachable() {
            state.free_retry_not_sent = false;
            state.counted += 1;
        }
        let delay = match kind {
            RetryKind::Free | RetryKind::Refusal if state.refusals >= config.max_refusals => {
                return stop(StopReason::RefusalsExhausted)
            }
            RetryKind::Free => Duration::ZERO,
            RetryKind::Counted if state.counted >= config.max_attempts => {
                return stop(StopReason::AttemptsExhausted)
            }
            // A connection lost under a request is most often one the
            // server was closing (a drained or idle one): like browsers and
            // Go's transport, resend an idempotent request at once, the
            // first time. It is still an attempt and drawn from the budget.
            RetryKind::Counted
                if verdict.cause() == Cause::ConnectionLost && !state.lost_retry_used =>
            {
                Duration::ZERO
            }
            // A refusal streak backs off like a transient error: the server
            // is up, but it keeps turning this request away.
            RetryKind::Refusal if verdict.pace() == Pace::Immediate => {
                self.backoff(Pace::Backoff, state.backoffs)
            }
            _ => self.backoff(verdict.pace(), state.backoffs),
        };
        if let Some(deadline) = config.deadline {
            let deadline = state.started.checked_add(deadline);
            if deadline.is_some_and(|deadline| now + delay >= deadline) {
                return stop(StopReason::DeadlineExceeded);
            }
        }
        // The grace is bounded by its window, not the budget: a start-up
        // sends many requests at once, more than the budget's reserve, and
        // none of them reached a server (a budget there failed every GET of
        // the lab's late-listener scenario).
        if matches!(kind, RetryKind::Refusal | RetryKind::Counted) {
            if let Some(budget) = &self.shared.budget {
                if !budget.withdraw() {
                    return stop(StopReason::BudgetExhausted);
                }
            }
        }
        match kind {
            RetryKind::Free => {
                state.free_retry_used = true;
                state.free_retry_not_sent = verdict.cause() == Cause::NotSent;
                state.refusals += 1;
            }
            RetryKind::Refusal => state.refusals += 1,
            RetryKind::Grace => state.in_grace = true,
            RetryKind::Counted => {
                state.counted += 1;
                state.lost_retry_used |= verdict.cause() == Cause::ConnectionLost;
            }
        }
        // Only a retry that waited steps the backoff up.
        if !delay.is_zero() {
            state.backoffs += 1;
        }
        state.sent += 1;
        self.shared.counters.retry(verdict.cause(), kind);
        Decision::Retry { delay, verdict }
    }

    /// Which kind of retry `verdict` calls for, and so what bounds it.
    fn kind_of(&self, state: &RetryState, verdict: Verdict, now: Instant) -> RetryKind {
        // At startup, a request that reached nobody because nobody listens
        // yet: a refused, reset or unreachable connect, or one hyper handed
        // back while its first connection was being made. A name that does
        // not resolve, a connect timeout or a TLS failure will not heal in
        // a few seconds, and after a first success a refused connect is an
        // outage, not a start-up.
        let starting = matches!(
            verdict.cause(),
            Cause::Connect(ConnectKind::Refused | ConnectKind::Reset | ConnectKind::Unreachable)
                | Cause::NotSent
        );
        let grace = starting && self.in_startup(now);
        if matches!(verdict.cause(), Cause::Connect(_)) {
            self.shared.unreachable.store(true, Ordering::Relaxed);
        }
        // While connects fail, a request handed back unsent was waiting on
        // one of them: an attempt like the connect's own, so an outage costs
        // `max_attempts` sends a request, not a refusal streak.
        if verdict.cause() == Cause::NotSent && self.is_unreachable() && !grace {
            return RetryKind::Counted;
        }
        if verdict.is_refusal() || verdict.is_never_processed() {
            // The server turned the request away (a drain, a refused
            // stream) or never saw it. Safety was checked above; what is
            // left is load, and a refusal says nothing of the server's
            // health. So the first retry is free and immediate, like
            // gRPC's transparent retry; later ones back off and draw on the
            // budget, bounded by `max_refusals` rather than the attempts.
            if verdict.is_refusal() && !state.free_retry_used {
                return RetryKind::Free;
            }
            if !grace {
                return RetryKind::Refusal;
            }
        }
        if grace {
            return RetryKind::Grace;
        }
        RetryKind::Counted
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
    /// `send` is called once per attempt and must send the request afresh,
    /// carrying the [`HandoverMarker`] it is given in the request's
    /// extensions (see [`Replay::mark`](super::Replay::mark)), or return
    /// `None` if the request cannot be sent again (its body no longer
    /// replays): it then stops with
    /// [`StopReason::BodyNotReplayable`] and the last error. The deadline
    /// and the attempt timeout cut an attempt in flight short; the
    /// [handover timeout](RetryConfig::handover_timeout) gives up one the
    /// client still holds.
    pub async fn run<T, E, F, Fut>(
        &self,
        facts: RequestFacts,
        mut send: F,
    ) -> Result<T, RetryError<E>>
    where
        E: Error + 'static,
        F: FnMut(HandoverMarker) -> Option<Fut>,
        Fut: Future<Output = Result<T, E>>,
    {
        let config = &self.shared.config;
        let mut state = self.begin(facts);
        let deadline = config
            .deadline
            .and_then(|deadline| state.started.checked_add(deadline));
        // The error of the last attempt that had one: what a final error
        // reports when its own last attempt timed out.
        let mut earlier = None;
        let mut last_verdict = None;
        loop {
            let (marker, watch) = HandoverWatch::new();
            let Some(attempt) = send(marker) else {
                // The retry was decided, but the body would not copy again.
                let reason = StopReason::BodyNotReplayable;
                self.shared.counters.stop(reason);
                let err = RetryError::new(reason, last_verdict, state.sent - 1, earlier);
                return Err(err);
            };
            let now = Instant::now();
            let attempt_deadline = config
                .attempt_timeout
                .and_then(|timeout| now.checked_add(timeout));
            let handover_by = config
                .handover_timeout
                .and_then(|timeout| now.checked_add(timeout));
            let until = earliest(deadline, attempt_deadline);
            let (decision, err) = match wait(attempt, until, handover_by, &watch).await {
                Outcome::Done(Ok(value)) => {
                    self.record_success();
                    return Ok(value);
                }
                Outcome::Done(Err(err)) => (self.on_error(&mut state, &err), Some(err)),
                Outcome::NotHandedOver => {
                    self.shared.counters.handover_timeout();
                    tracing::debug!(
                        attempt = state.sent,
                        "the client did not hand the attempt to a connection in time"
                    );
                    (self.on_verdict(&mut state, NOT_HANDED_OVER), None)
                }
                Outcome::TimedOut
                    if deadline.is_some_and(|deadline| Instant::now() >= deadline) =>
                {
                    self.shared.counters.stop(StopReason::DeadlineExceeded);
                    let verdict = Some(ATTEMPT_TIMED_OUT.for_body(state.facts.body));
                    let reason = StopReason::DeadlineExceeded;
                    let err = RetryError::new(reason, verdict, state.sent, None);
                    return Err(err.with_earlier_error(earlier));
                }
                Outcome::TimedOut => (self.on_attempt_timeout(&mut state), None),
            };
            match decision {
                Decision::Retry { delay, verdict } => {
                    earlier = err.or(earlier);
                    last_verdict = Some(verdict);
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                }
                Decision::Stop { reason, verdict } => {
                    let earlier = if err.is_none() { earlier } else { None };
                    let err = RetryError::new(reason, Some(verdict), state.sent, err);
                    return Err(err.with_earlier_error(earlier));
                }
            }
        }
    }
}

/// How one attempt ended.
enum Outcome<R> {
    /// It completed.
    Done(R),
    /// The attempt timeout or the deadline cut it short after it left the
    /// client.
    TimedOut,
    /// A timer ran out while the client still held it.
    NotHandedOver,
}

/// Waits for `attempt` until `until`; at `handover_by`, and whenever a timer
/// runs out, gives it up if the client still holds it.
async fn wait<Fut: Future>(
    attempt: Fut,
    until: Option<Instant>,
    mut handover_by: Option<Instant>,
    watch: &HandoverWatch,
) -> Outcome<Fut::Output> {
    let mut attempt = std::pin::pin!(attempt);
    loop {
        let Some(wake) = earliest(until, handover_by) else {
            return Outcome::Done(attempt.await);
        };
        match tokio::time::timeout_at(wake, attempt.as_mut()).await {
            Ok(output) => return Outcome::Done(output),
            Err(_) if !watch.is_handed_over() => return Outcome::NotHandedOver,
            Err(_) if until.is_some_and(|until| Instant::now() >= until) => {
                return Outcome::TimedOut
            }
            // Handed over in time: from here only `until` bounds it.
            Err(_) => handover_by = None,
        }
    }
}

/// The earlier of two optional instants.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The verdict on an attempt the client had not handed to a connection in
/// time: it reached no server.
const NOT_HANDED_OVER: Verdict =
    Verdict::new(Cause::NotSent, RetrySafety::AnyRequest, Pace::Immediate);

/// The verdict on an attempt cut short by the attempt timeout: nothing says
/// whether the server processed it.
const ATTEMPT_TIMED_OUT: Verdict =
    Verdict::new(Cause::Timeout, RetrySafety::IdempotentOnly, Pace::Backoff);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConnectKind;
    use crate::RetryBudget;
    use classify_core::{Initiator, Reason};

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
    const REFUSED_STREAM: Verdict = Verdict::new(
        Cause::StreamReset {
            reason: Reason::REFUSED_STREAM,
            initiator: Initiator::Remote,
        },
        RetrySafety::AnyRequest,
        Pace::Immediate,
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

    const GO_AWAY_MAYBE_PROCESSED: Verdict = Verdict::new(
        Cause::GoAway {
            reason: Reason::NO_ERROR,
            initiator: Initiator::Remote,
        },
        RetrySafety::IdempotentOnly,
        Pace::Immediate,
    );

    #[tokio::test(start_paused = true)]
    async fn a_refusal_streak_is_bounded_by_max_refusals_not_max_attempts() {
        let p = policy(RetryConfig::default().max_attempts(2).max_refusals(5));
        let mut s = p.begin(RequestFacts::new("POST", false));
        let now = Instant::now();
        assert_eq!(
            p.decide(&mut s, GO_AWAY, now),
            Decision::Retry {
                delay: Duration::ZERO,
                verdict: GO_AWAY
            },
            "the first refusal is retried at once"
        );
        for _ in 0..4 {
            assert!(is_retry(p.decide(&mut s, GO_AWAY, now)));
        }
        assert_eq!(
            stop_reason(p.decide(&mut s, GO_AWAY, now)),
            Some(StopReason::RefusalsExhausted)
        );
        assert_eq!(s.attempts(), 6);
        let stats = p.stats();
        assert_eq!((stats.transparent_retries, stats.refusal_retries), (1, 4));
        // The streak did not use the attempts: a lost connection may still
        // be retried once (GETs only).
        let mut get = p.begin(RequestFacts::new("GET", false));
        for _ in 0..3 {
            assert!(is_retry(p.decide(&mut get, REFUSED_STREAM, now)));
        }
        assert!(is_retry(p.decide(&mut get, LOST, now)));
        assert_eq!(
            stop_reason(p.decide(&mut get, LOST, now)),
            Some(StopReason::AttemptsExhausted)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_go_away_on_a_request_with_a_body_means_it_was_never_processed() {
        let p = policy(RetryConfig::default().max_attempts(1));
        let facts = RequestFacts::new("POST", false).body(RequestBody::NonEmpty);
        let mut with_body = p.begin(facts);
        let decision = p.decide(&mut with_body, GO_AWAY_MAYBE_PROCESSED, Instant::now());
        assert_eq!(
            decision,
            Decision::Retry {
                delay: Duration::ZERO,
                verdict: GO_AWAY
            }
        );
        let mut bodiless = p.begin(RequestFacts::new("POST", false));
        assert_eq!(
            stop_reason(p.decide(&mut bodiless, GO_AWAY_MAYBE_PROCESSED, Instant::now())),
            Some(StopReason::NotIdempotent)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_draining_go_away_on_an_idempotent_request_is_a_refusal_too() {
        let no_budget = RetryBudget::new(Duration::from_secs(1), 0, 0.0);
        let p = policy(
            RetryConfig::default()
                .max_attempts(1)
                .budget(Some(no_budget)),
        );
        let mut get = p.begin(RequestFacts::new("GET", false));
        assert!(is_retry(p.decide(
            &mut get,
            GO_AWAY_MAYBE_PROCESSED,
            Instant::now()
        )));
        assert_eq!(
            stop_reason(p.decide(&mut get, GO_AWAY_MAYBE_PROCESSED, Instant::now())),
            Some(StopReason::BudgetExhausted),
            "only the first is free of the budget"
        );
        // max_refusals(0) turns refusal retries off, the free one included.
        let p = policy(RetryConfig::default().max_refusals(0));
        let mut get = p.begin(RequestFacts::new("GET", false));
        assert_eq!(
            stop_reason(p.decide(&mut get, GO_AWAY_MAYBE_PROCESSED, Instant::now())),
            Some(StopReason::RefusalsExhausted)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn http_1_1_required_is_said_whatever_the_method() {
        let p = policy(RetryConfig::default());
        let required = Verdict::new(
            Cause::GoAway {
                reason: Reason::HTTP_1_1_REQUIRED,
                initiator: Initiator::Remote,
            },
            RetrySafety::IdempotentOnly,
            Pace::Immediate,
        );
        let mut post = p.begin(RequestFacts::new("POST", false));
        assert_eq!(
            stop_reason(p.decide(&mut post, required, Instant::now())),
            Some(StopReason::RequiresHttp1)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_longest_deadline_does_not_overflow() {
        let p = policy(RetryConfig::default().deadline(Duration::MAX));
        let mut s = p.begin(RequestFacts::new("GET", false));
        assert!(is_retry(p.decide(&mut s, LOST, Instant::now())));
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
    async fn the_grace_ends_with_the_first_success() {
        let p = policy(RetryConfig::default());
        let mut before = p.begin(RequestFacts::new("GET", false));
        for _ in 0..5 {
            assert!(is_retry(p.decide(&mut before, REFUSED, Instant::now())));
        }
        p.record_success();
        // An outage now: three attempts, as for any transient error.
        let mut after = p.begin(RequestFacts::new("GET", false));
        assert!(is_retry(p.decide(&mut after, REFUSED, Instant::now())));
        assert!(is_retry(p.decide(&mut after, REFUSED, Instant::now())));
        assert_eq!(
            stop_reason(p.decide(&mut after, REFUSED, Instant::now())),
            Some(StopReason::AttemptsExhausted)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_grace_runs_from_the_policys_creation_and_only_for_nobody_listening() {
        let p = policy(RetryConfig::default().max_attempts(1));
        let dns = verdict(
            Cause::Connect(ConnectKind::Dns),
            RetrySafety::AnyRequest,
            Pace::Backoff,
        );
        let mut s = p.begin(RequestFacts::new("GET", false));
        assert_eq!(
            stop_reason(p.decide(&mut s, dns, Instant::now())),
            Some(StopReason::AttemptsExhausted),
            "a name that does not resolve gets no grace"
        );
        tokio::time::advance(Duration::from_secs(6)).await;
        // A request begun now, long after start-up, gets none either.
        let mut late = p.begin(RequestFacts::new("GET", false));
        assert_eq!(
            stop_reason(p.decide(&mut late, REFUSED, Instant::now())),
            Some(StopReason::AttemptsExhausted)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_grace_is_bounded_by_its_window_not_the_budget() {
        let empty = RetryBudget::new(Duration::from_secs(1), 0, 0.0);
        let p = policy(RetryConfig::default().budget(Some(empty)));
        let mut s = p.begin(RequestFacts::new("GET", false));
        let mut waited = Duration::ZERO;
        let mut retries = 0;
        while let Decision::Retry { delay, .. } = p.decide(&mut s, REFUSED, Instant::now()) {
            tokio::time::advance(delay).await;
            waited += delay;
            retries += 1;
        }
        // 50 ms doubling with full jitter: a handful of retries in 5 s.
        assert!(waited >= Duration::from_secs(4), "{waited:?}");
        assert!((3..=30).contains(&retries), "{retries}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_backoff_starts_again_from_its_base_when_the_grace_ends() {
        let base = Duration::from_secs(1);
        let p = policy(
            RetryConfig::default()
                .backoff(base)
                .max_backoff(Duration::MAX),
        );
        let mut s = p.begin(RequestFacts::new("GET", false));
        for _ in 0..8 {
            assert!(is_retry(p.decide(&mut s, REFUSED, Instant::now())));
        }
        p.record_success();
        // Without the reset this wait could be up to 256 s.
        for _ in 0..20 {
            let mut probe = s.clone();
            match p.decide(&mut probe, REFUSED, Instant::now()) {
                Decision::Retry { delay, .. } => assert!(delay <= base, "{delay:?}"),
                other => panic!("expected a retry, got {other:?}"),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_that_cuts_an_attempt_short_keeps_the_error_before_it() {
        let p = policy(
            RetryConfig::default()
                .deadline(Duration::from_secs(1))
                .startup_grace(Duration::ZERO)
                .backoff(Duration::ZERO),
        );
        let mut attempt = 0;
        let result: Result<(), _> = p
            .run(RequestFacts::new("GET", false), |_marker| {
                attempt += 1;
                let first = attempt == 1;
                Some(async move {
                    if first {
                        return Err(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
                    }
                    std::future::pending().await
                })
            })
            .await;
        let err = result.unwrap_err();
        assert_eq!(err.reason(), StopReason::DeadlineExceeded);
        assert!(err.is_timeout());
        let source = std::error::Error::source(&err).expect("the refused connect");
        assert_eq!(source.to_string(), "connection refused");
        assert!(err.to_string().contains("the one before failed"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn while_connects_fail_a_request_handed_back_is_an_attempt() {
        let p = policy(RetryConfig::default().startup_grace(Duration::ZERO));
        let not_sent = verdict(Cause::NotSent, RetrySafety::AnyRequest, Pace::Immediate);
        // A server that answers: handed back unsent is a refusal, free.
        let mut s = p.begin(RequestFacts::new("GET", false));
        assert!(is_retry(p.decide(&mut s, not_sent, Instant::now())));
        assert_eq!(p.stats().transparent_retries, 1);
        // Once a connect failed: three sends in all, whatever the mix.
        let mut s = p.begin(RequestFacts::new("GET", false));
        assert!(is_retry(p.decide(&mut s, REFUSED, Instant::now())));
        assert!(is_retry(p.decide(&mut s, not_sent, Instant::now())));
        assert_eq!(
            stop_reason(p.decide(&mut s, not_sent, Instant::now())),
            Some(StopReason::AttemptsExhausted)
        );
        assert_eq!(s.attempts(), 3);
        // Handed back before the connect's failure was decided: the free
        // retry it got is counted once the failure is known.
        p.record_success();
        let mut s = p.begin(RequestFacts::new("GET", false));
        assert!(is_retry(p.decide(&mut s, not_sent, Instant::now())));
        assert!(is_retry(p.decide(&mut s, REFUSED, Instant::now())));
        assert_eq!(
            stop_reason(p.decide(&mut s, REFUSED, Instant::now())),
            Some(StopReason::AttemptsExhausted)
        );
        assert_eq!(s.attempts(), 3);
        // A success says the server answers again.
        p.record_success();
        let mut s = p.begin(RequestFacts::new("GET", false));
        assert!(is_retry(p.decide(&mut s, not_sent, Instant::now())));
        assert_eq!(p.stats().transparent_retries, 3);
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
    async fn the_first_retry_after_a_lost_connection_is_immediate_and_counted() {
        let p = policy(RetryConfig::default().backoff(Duration::from_secs(1)));
        let mut get = p.begin(RequestFacts::new("GET", false));
        let delay = |d: Decision| match d {
            Decision::Retry { delay, .. } => delay,
            other => panic!("expected a retry, got {other:?}"),
        };
        assert_eq!(
            delay(p.decide(&mut get, LOST, Instant::now())),
            Duration::ZERO
        );
        // The next one backs off; the third attempt was the last.
        let second = delay(p.decide(&mut get, LOST, Instant::now()));
        assert!(second <= Duration::from_secs(1), "{second:?}");
        assert_eq!(
            stop_reason(p.decide(&mut get, LOST, Instant::now())),
            Some(StopReason::AttemptsExhausted)
        );
        assert_eq!(p.stats().transparent_retries, 0, "not a free retry");
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
        let budget = RetryBudget::new(Duration::from_secs(1), 0, 0.0);
        let p = policy(RetryConfig::default().budget(Some(budget)));
        let mut s = p.begin(RequestFacts::new("GET", false));
        assert_eq!(
            stop_reason(p.decide(&mut s, LOST, Instant::now())),
            Some(StopReason::BudgetExhausted)
        );
        // The free retry after a refusal costs no budget; the next refusal does.
        assert!(is_retry(p.decide(&mut s, GO_AWAY, Instant::now())));
        assert_eq!(
            stop_reason(p.decide(&mut s, GO_AWAY, Instant::now())),
            Some(StopReason::BudgetExhausted)
        );
    }

    /// Sends a GET through `p` whose attempts fail with `errors` in turn,
    /// then succeed.
    async fn get_failing_with(p: &RetryPolicy, errors: &[std::io::ErrorKind]) -> bool {
        let mut errors = errors.iter();
        let result: Result<(), _> = p
            .run(RequestFacts::new("GET", false), |_marker| {
                let error = errors.next().copied();
                Some(async move { error.map_or(Ok(()), |kind| Err(std::io::Error::from(kind))) })
            })
            .await;
        result.is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn the_stats_add_up_every_request_a_success_or_a_failure() {
        use std::io::ErrorKind::{BrokenPipe, ConnectionRefused, PermissionDenied};
        let p = policy(RetryConfig::default().startup_grace(Duration::ZERO));
        assert!(get_failing_with(&p, &[]).await);
        assert!(get_failing_with(&p, &[BrokenPipe]).await);
        assert!(get_failing_with(&p, &[ConnectionRefused, BrokenPipe]).await);
        assert!(!get_failing_with(&p, &[BrokenPipe; 3]).await);
        assert!(!get_failing_with(&p, &[PermissionDenied]).await);
        let stats = p.stats();
        assert!(stats.is_consistent(), "{stats:?}");
        assert_eq!((stats.requests, stats.successes, stats.failures), (5, 3, 2));
        assert_eq!((stats.attempts_exhausted, stats.not_retryable), (1, 1));
        assert_eq!(
            (
                stats.retries,
                stats.retries_connection_lost,
                stats.retries_connect
            ),
            (5, 4, 1)
        );
        assert_eq!(stats.unfinished(), 0);
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        let err = RetryPolicy::new(RetryConfig::default().max_attempts(0), Classifier::new(&[]))
            .unwrap_err();
        assert!(err.to_string().contains("max_attempts"));
        let budget = RetryBudget::new(Duration::from_secs(0), 1, 0.1);
        let err = RetryPolicy::new(
            RetryConfig::default().budget(Some(budget)),
            Classifier::new(&[]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("ttl"));
    }
}
