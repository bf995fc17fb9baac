//! The SDK's standard retry strategy, fit for servers that drain.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aws_smithy_runtime::client::retries::classifiers::run_classifiers_on_ctx;
use aws_smithy_runtime::client::retries::strategy::StandardRetryStrategy;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextMut, FinalizerInterceptorContextRef, InterceptorContext,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::retries::{RequestAttempts, RetryStrategy, ShouldAttempt};
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};
use aws_smithy_runtime_api::client::runtime_plugin::RuntimePlugin;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use aws_smithy_types::retry::RetryConfig;

use super::attempt_verdict;
use crate::RequestBody;

/// A runtime plugin that makes the SDK's standard retry strategy survive a
/// server that drains its connections.
///
/// The standard strategy pays for every retry from a token bucket shared by
/// the whole client (500 tokens, 10 a retry after a transient error, 1
/// back for each first-attempt success), so that a client stops retrying
/// when a service is failing. A drain is not a failure: a server that sends
/// `GOAWAY(NO_ERROR)` or `REFUSED_STREAM` is fine and never processed the
/// requests it turned away, yet each of them costs a retry. Under load the
/// bucket empties and those requests reach the caller as errors (measured
/// in the crate's `BENCHMARKS.md`). Two things drain it:
///
/// - Refusals cost tokens. Under this plugin a retry of a request the
///   server turned away without processing it (a refusal, see
///   [`Verdict::is_refusal`](crate::Verdict::is_refusal)) takes no token and
///   does not count towards `max_attempts`. The first one is sent again at
///   once, later ones back off (from the retry config's initial backoff,
///   doubling, full jitter), at most [`max_refusals`](Self::max_refusals)
///   per operation.
/// - The strategy keeps a retry's token in one slot per client, not per
///   operation: when two operations of a client are retrying at once, the
///   second one's token replaces the first one's, which is never returned.
///   Under this plugin each operation gets a standard strategy of its own.
///
/// Whether an error may be retried at all is still the retry classifiers'
/// call (add [`TransportErrorClassifier`](super::TransportErrorClassifier)):
/// a refusal the classifiers forbid to retry, such as a `GOAWAY` on a
/// bodiless request not known to be idempotent, is not retried. Everything
/// else (errors other than refusals, the token bucket, the adaptive rate
/// limiter) is the standard strategy's.
///
/// On a generated SDK client's config, with the classifier:
///
/// ```ignore
/// use hyper_classify::aws::{RefusalRetries, TransportErrorClassifier};
///
/// let dynamodb = aws_sdk_dynamodb::Client::from_conf(
///     aws_sdk_dynamodb::config::Builder::from(&sdk_config)
///         .retry_classifier(TransportErrorClassifier::idempotent().requests_have_bodies())
///         .runtime_plugin(RefusalRetries::new())
///         .build(),
/// );
/// ```
///
/// ```
/// use hyper_classify::aws::RefusalRetries;
///
/// let plugin = RefusalRetries::new().max_refusals(5);
/// assert_eq!(plugin.max_refusals_value(), 5);
/// ```
#[derive(Clone, Debug)]
pub struct RefusalRetries {
    components: RuntimeComponentsBuilder,
    max_refusals: u32,
}

impl RefusalRetries {
    /// The plugin, allowing 10 refusals per operation.
    pub fn new() -> Self {
        RefusalRetries::with_max_refusals(10)
    }

    /// How many times one operation is sent again after the server turned
    /// it away, on top of its `max_attempts`.
    pub fn max_refusals(self, refusals: u32) -> Self {
        RefusalRetries::with_max_refusals(refusals)
    }

    /// The most refusals retried per operation.
    pub fn max_refusals_value(&self) -> u32 {
        self.max_refusals
    }

    fn with_max_refusals(max_refusals: u32) -> Self {
        let components = RuntimeComponentsBuilder::new("hyper-classify refusal retries")
            .with_retry_strategy(Some(Strategy { max_refusals }))
            .with_interceptor(PerOperation);
        RefusalRetries {
            components,
            max_refusals,
        }
    }
}

impl Default for RefusalRetries {
    fn default() -> Self {
        RefusalRetries::new()
    }
}

impl RuntimePlugin for RefusalRetries {
    fn runtime_components(
        &self,
        _current_components: &RuntimeComponentsBuilder,
    ) -> Cow<'_, RuntimeComponentsBuilder> {
        Cow::Borrowed(&self.components)
    }
}

/// One operation's retry state, in its config bag.
#[derive(Debug)]
struct OperationState {
    standard: StandardRetryStrategy,
    refusals: AtomicU32,
}

impl Storable for OperationState {
    type Storer = StoreReplace<Self>;
}

/// Gives each operation its state, and hides refused attempts from the
/// standard strategy's attempt count.
#[derive(Debug)]
struct PerOperation;

impl Intercept for PerOperation {
    fn name(&self) -> &'static str {
        "hyper-classify refusal retries"
    }

    fn modify_before_retry_loop(
        &self,
        _context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(OperationState {
            standard: StandardRetryStrategy::new(),
            refusals: AtomicU32::new(0),
        });
        Ok(())
    }

    fn read_after_attempt(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // The orchestrator numbers every attempt; the standard strategy
        // compares that number with `max_attempts`. Refused attempts are
        // not attempts at a server that works: take them out. The
        // orchestrator stores its own number again before the next attempt.
        let refusals = cfg
            .load::<OperationState>()
            .map_or(0, |state| state.refusals.load(Ordering::Relaxed));
        if let Some(attempts) = cfg.load::<RequestAttempts>().map(|a| a.attempts()) {
            let counted = attempts.saturating_sub(refusals).max(1);
            cfg.interceptor_state()
                .store_put(RequestAttempts::new(counted));
        }
        Ok(())
    }
}

/// The strategy: refusals here, the rest to the operation's own standard
/// strategy.
#[derive(Debug)]
struct Strategy {
    max_refusals: u32,
}

impl Strategy {
    fn state(cfg: &ConfigBag) -> Result<&OperationState, BoxError> {
        cfg.load::<OperationState>().ok_or_else(|| {
            "hyper-classify's refusal retries: no operation state (its interceptor did not run)"
                .into()
        })
    }

    /// Whether the attempt failed with a refusal.
    fn is_refusal(ctx: &InterceptorContext) -> bool {
        match ctx.output_or_error() {
            Some(Err(err)) => {
                attempt_verdict(err, RequestBody::Empty).is_some_and(|v| v.is_refusal())
            }
            _ => false,
        }
    }

    /// The wait before the `n`th retry of a refusal (from 1): none for the
    /// first, then the config's backoff, doubling, full jitter.
    fn backoff(cfg: &ConfigBag, n: u32) -> Duration {
        if n <= 1 {
            return Duration::ZERO;
        }
        let (base, cap) = cfg.load::<RetryConfig>().map_or(
            (Duration::from_secs(1), Duration::from_secs(20)),
            |config| (config.initial_backoff(), config.max_backoff()),
        );
        let ceiling = base
            .saturating_mul(1u32.checked_shl(n - 2).unwrap_or(u32::MAX))
            .min(cap);
        Duration::from_nanos(fastrand::u64(0..=ceiling.as_nanos() as u64))
    }
}

impl RetryStrategy for Strategy {
    fn should_attempt_initial_request(
        &self,
        runtime_components: &RuntimeComponents,
        cfg: &ConfigBag,
    ) -> Result<ShouldAttempt, BoxError> {
        Strategy::state(cfg)?
            .standard
            .should_attempt_initial_request(runtime_components, cfg)
    }

    fn should_attempt_retry(
        &self,
        ctx: &InterceptorContext,
        runtime_components: &RuntimeComponents,
        cfg: &ConfigBag,
    ) -> Result<ShouldAttempt, BoxError> {
        let state = Strategy::state(cfg)?;
        let refusals = state.refusals.load(Ordering::Relaxed);
        if refusals < self.max_refusals && Strategy::is_refusal(ctx) {
            // A refusal is this strategy's to decide, the classifiers'
            // answer first (run once: classifiers may count their calls).
            if !run_classifiers_on_ctx(runtime_components.retry_classifiers(), ctx).should_retry() {
                return Ok(ShouldAttempt::No);
            }
            state.refusals.store(refusals + 1, Ordering::Relaxed);
            let delay = Strategy::backoff(cfg, refusals + 1);
            tracing::debug!(refusals = refusals + 1, ?delay, "retrying a refusal");
            return Ok(ShouldAttempt::YesAfterDelay(delay));
        }
        state
            .standard
            .should_attempt_retry(ctx, runtime_components, cfg)
    }
}
