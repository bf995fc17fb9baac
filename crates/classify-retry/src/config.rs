//! Retry settings and their defaults.

use std::time::Duration;

use super::InvalidConfig;

/// How a [`RetryPolicy`](super::RetryPolicy) retries.
///
/// The defaults:
///
/// | setting | default |
/// |---|---|
/// | [`max_attempts`](RetryConfig::max_attempts) | 3, the first one included |
/// | [`max_refusals`](RetryConfig::max_refusals) | 10 more sends of a request the server turned away |
/// | [`backoff`](RetryConfig::backoff) | 50 ms base, doubling, full jitter |
/// | [`throttled_backoff`](RetryConfig::throttled_backoff) | 1 s base, doubling, at least half of it |
/// | [`max_backoff`](RetryConfig::max_backoff) | 20 s |
/// | [`deadline`](RetryConfig::deadline) | none |
/// | [`attempt_timeout`](RetryConfig::attempt_timeout) | 30 s to the response head (the layer only) |
/// | [`handover_timeout`](RetryConfig::handover_timeout) | 5 s for the client to hand an attempt to a connection (the layer only) |
/// | [`startup_grace`](RetryConfig::startup_grace) | 5 s |
/// | [`budget`](RetryConfig::budget) | 20% of requests, plus 10 retries a second, over 10 s |
///
/// ```
/// use classify_retry::{RetryBudget, RetryConfig};
/// use std::time::Duration;
///
/// let config = RetryConfig::default()
///     .max_attempts(4)
///     .deadline(Duration::from_secs(30))
///     .startup_grace(Duration::from_secs(10))
///     .budget(Some(RetryBudget::new(Duration::from_secs(10), 5, 0.1)));
/// assert_eq!(config.max_attempts_value(), 4);
/// ```
#[derive(Clone, Debug)]
pub struct RetryConfig {
    pub(crate) max_attempts: u32,
    pub(crate) max_refusals: u32,
    pub(crate) backoff: Duration,
    pub(crate) throttled_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) deadline: Option<Duration>,
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) handover_timeout: Option<Duration>,
    pub(crate) startup_grace: Duration,
    pub(crate) budget: Option<RetryBudget>,
    pub(crate) go_away_never_processed: bool,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 3,
            max_refusals: 10,
            backoff: Duration::from_millis(50),
            throttled_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(20),
            deadline: None,
            attempt_timeout: Some(Duration::from_secs(30)),
            handover_timeout: Some(Duration::from_secs(5)),
            startup_grace: Duration::from_secs(5),
            budget: Some(RetryBudget::default()),
            go_away_never_processed: false,
        }
    }
}

impl RetryConfig {
    /// How many attempts a request gets, the first one included. Retries
    /// after a refusal (see [`max_refusals`](Self::max_refusals)) and
    /// startup-grace retries do not count. Must be at least 1.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// How many more times a request is sent after the server turned it
    /// away: a draining `GOAWAY(NO_ERROR)`, `REFUSED_STREAM`, a request
    /// handed back unsent, or a peer's `GOAWAY` on a request with a body
    /// (which it never processed, whatever the code). The first such retry
    /// is immediate and free of the budget; the others back off and draw on
    /// the budget. None counts against
    /// [`max_attempts`](Self::max_attempts): a request the server keeps
    /// turning away while it processes others is not given up after three
    /// tries. A refusal of a request that may have been processed (a
    /// `GOAWAY` on a bodiless request) is retried only if the request is
    /// idempotent. 0 turns these retries off.
    pub fn max_refusals(mut self, refusals: u32) -> Self {
        self.max_refusals = refusals;
        self
    }

    /// The base of the exponential backoff for transient errors: the n-th
    /// backoff waits a random time up to `base * 2^(n-1)` ("full jitter").
    pub fn backoff(mut self, base: Duration) -> Self {
        self.backoff = base;
        self
    }

    /// The base of the backoff after the peer said it is overloaded
    /// ([`Pace::Throttled`](crate::Pace::Throttled)). Such a wait is at least
    /// half of `base * 2^(n-1)`: a peer that asked us to calm down must not
    /// see a retry a millisecond later.
    pub fn throttled_backoff(mut self, base: Duration) -> Self {
        self.throttled_backoff = base;
        self
    }

    /// The longest single wait.
    pub fn max_backoff(mut self, cap: Duration) -> Self {
        self.max_backoff = cap;
        self
    }

    /// How long a request may take in all, its retries and waits included.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// How long one attempt may wait for its response head before it is
    /// given up as a [`Cause::Timeout`](crate::Cause::Timeout) (retried for
    /// idempotent requests only: nothing says whether the server processed
    /// it), or `None` to wait as long as the connection lives.
    ///
    /// The default, 30 s, keeps a request from waiting forever on a
    /// connection that stopped making progress without failing. Raise it
    /// for long polls. The [`ClassifyRetryLayer`](super::ClassifyRetryLayer) applies it; a
    /// tower `Retry` with [`ClassifyPolicy`](super::ClassifyPolicy) needs
    /// tower's own `Timeout` layer inside it, its boxed error mapped to an
    /// `Error` type (`map_err` with a function that calls
    /// `io::Error::other`: a box is not an `Error`, and the classifier sees
    /// through the `io::Error` to tower's `Elapsed`).
    pub fn attempt_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// How long the client may hold an attempt before it hands it to a
    /// connection, or `None` for no limit. An attempt still in the client
    /// by then is given up and sent again as one that never left (see
    /// [`Cause::NotSent`](crate::Cause::NotSent)): safe for any request,
    /// bounded by [`max_refusals`](Self::max_refusals) and the budget.
    ///
    /// The default, 5 s, rescues a request lost in a closing connection's
    /// dispatch queue, which otherwise waits forever (hyper's client can
    /// lose one there when a `GOAWAY` arrives as it is sent). The time
    /// includes waiting for a connect, so raise it where connects (a TLS
    /// handshake over a long path, say) take longer. Only the
    /// [`ClassifyRetryLayer`](super::ClassifyRetryLayer) can tell, through
    /// [`Replay::mark`](super::Replay::mark).
    pub fn handover_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.handover_timeout = timeout;
        self
    }

    /// For how long after the policy is made, until a first request
    /// succeeds, a connect that nobody answers (refused, reset or
    /// unreachable) and a request hyper hands back while its first
    /// connection is being made are retried with backoff whatever
    /// [`max_attempts`](Self::max_attempts) says. Zero turns the grace off.
    ///
    /// An application that starts before its sidecar proxy gets "connection
    /// refused" until the proxy listens, often for a second or two. Three
    /// attempts with sub-second backoff give up long before that; a grace of
    /// a few seconds rides it out. Those requests reached nobody, so these
    /// retries are safe for any request, and they are bounded by the
    /// grace's window rather than the budget: a start-up sends many requests
    /// at once, more than the budget's reserve. A request's backoff starts
    /// again from its base when the grace ends. Once a request has
    /// succeeded a refused connect is an outage, not a
    /// start-up, and costs the usual attempts; a name that does not resolve,
    /// a connect timeout or a TLS failure never gets the grace, since waiting
    /// a few seconds does not heal them.
    pub fn startup_grace(mut self, grace: Duration) -> Self {
        self.startup_grace = grace;
        self
    }

    /// The retry budget shared by every clone of the policy, or `None` for
    /// no budget.
    pub fn budget(mut self, budget: Option<RetryBudget>) -> Self {
        self.budget = budget;
        self
    }

    /// Whether a peer's `GOAWAY` means the request was never processed,
    /// whatever its body. Off by default, and only for a client whose hyper
    /// carries the GOAWAY race fix (`patches/` in this crate's repository):
    /// stock hyper can fail a request with a `GOAWAY` after sending it, and
    /// a bodiless one may then have been processed (see
    /// [`Verdict::for_body`](crate::Verdict::for_body)).
    pub fn go_away_never_processed(mut self, never_processed: bool) -> Self {
        self.go_away_never_processed = never_processed;
        self
    }

    /// The configured [`max_attempts`](Self::max_attempts).
    pub fn max_attempts_value(&self) -> u32 {
        self.max_attempts
    }

    pub(crate) fn validate(&self) -> Result<(), InvalidConfig> {
        if self.max_attempts == 0 {
            return Err(InvalidConfig("max_attempts must be at least 1"));
        }
        if let Some(budget) = &self.budget {
            budget.validate()?;
        }
        Ok(())
    }
}

/// A cap on retries as a share of requests (the Finagle and Envoy kind),
/// shared by every clone of a policy.
///
/// Each request deposits into the budget and each retry withdraws from it;
/// deposits count for `ttl`. On top of `percent` of the requests, `min_per_sec`
/// retries a second are always allowed, so a client that sends few requests
/// can still retry. It is tower's `TpsBudget`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryBudget {
    pub(crate) ttl: Duration,
    pub(crate) min_per_sec: u32,
    pub(crate) percent: f32,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget::new(Duration::from_secs(10), 10, 0.2)
    }
}

impl RetryBudget {
    /// A budget of `percent` (0.2 is 20%) of the requests of the last `ttl`
    /// (1 to 60 s), plus `min_per_sec` retries a second.
    pub fn new(ttl: Duration, min_per_sec: u32, percent: f32) -> Self {
        RetryBudget {
            ttl,
            min_per_sec,
            percent,
        }
    }

    fn validate(&self) -> Result<(), InvalidConfig> {
        if self.ttl < Duration::from_secs(1) || self.ttl > Duration::from_secs(60) {
            return Err(InvalidConfig(
                "the budget's ttl must be between 1 and 60 seconds",
            ));
        }
        if !(0.0..=1000.0).contains(&self.percent) {
            return Err(InvalidConfig(
                "the budget's percent must be between 0 and 1000",
            ));
        }
        if self.min_per_sec >= i32::MAX as u32 {
            return Err(InvalidConfig("the budget's min_per_sec is too large"));
        }
        Ok(())
    }
}
