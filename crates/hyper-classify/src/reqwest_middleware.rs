//! A retry strategy for reqwest-retry 0.9 (reqwest-middleware 0.5,
//! reqwest 0.13).
//!
//! reqwest-retry's default strategy never looks at HTTP/2: a peer's
//! `GOAWAY` or `REFUSED_STREAM` is fatal to it, and it retries timeouts and
//! lost connections whatever the method. [`VerdictStrategy`] answers from
//! the verdict instead:
//!
//! | error | answer |
//! |---|---|
//! | never processed: the peer's `REFUSED_STREAM`, a refused connect, a request handed back unsent; a peer's `GOAWAY` on a request with a body | `Transient` |
//! | may have been processed: a peer's `GOAWAY` on a bodiless request, a lost connection, a timeout | `Transient` if the strategy was made [`idempotent`](VerdictStrategy::idempotent), else `Fatal` |
//! | a throttled peer (`ENHANCE_YOUR_CALM`) | the same as above (the retry policy's backoff paces it) |
//! | never retried: a protocol error of our own, a peer requiring HTTP/1.1 | `Fatal` |
//! | nothing recognised | reqwest-retry's default |
//!
//! Responses are reqwest-retry's default's to judge (5xx, 408, 429).
//!
//! A strategy sees the result, not the request, so idempotency and bodies
//! are said where the strategy is made: one middleware for a client whose
//! requests are all safe to replay, another for one whose requests all
//! carry a body.
//!
//! ```
//! use hyper_classify::reqwest_middleware::VerdictStrategy;
//! use reqwest_retry::policies::ExponentialBackoff;
//! use reqwest_retry::RetryTransientMiddleware;
//!
//! let policy = ExponentialBackoff::builder().build_with_max_retries(3);
//! let retries =
//!     RetryTransientMiddleware::new_with_policy_and_strategy(policy, VerdictStrategy::idempotent());
//! let client = reqwest_middleware::ClientBuilder::new(reqwest_middleware::reqwest::Client::new())
//!     .with(retries)
//!     .build();
//! # let _ = client;
//! ```

use ::reqwest_middleware::reqwest::Response;
use ::reqwest_middleware::Error;
use reqwest_retry::{default_on_request_failure, default_on_request_success};
use reqwest_retry::{Retryable, RetryableStrategy};

use crate::{classify, Cause, RequestBody};

/// reqwest-retry's `RetryableStrategy`, answering from hyper-classify's
/// verdict: see the [module docs](self).
///
/// ```
/// use hyper_classify::reqwest_middleware::VerdictStrategy;
///
/// let strategy = VerdictStrategy::new().requests_have_bodies();
/// assert!(!strategy.is_idempotent());
/// assert!(strategy.assumes_request_bodies());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerdictStrategy {
    idempotent: bool,
    body: RequestBody,
}

impl VerdictStrategy {
    /// For requests not known to be idempotent: one that may have been
    /// processed is not sent again.
    pub const fn new() -> Self {
        VerdictStrategy {
            idempotent: false,
            body: RequestBody::Empty,
        }
    }

    /// For idempotent requests (`GET`, `PUT`, `DELETE`, or any carrying an
    /// idempotency key): one that may have been processed is sent again too.
    pub const fn idempotent() -> Self {
        VerdictStrategy {
            idempotent: true,
            body: RequestBody::Empty,
        }
    }

    /// The same strategy, for requests that all carry a body: a peer's
    /// `GOAWAY` then means the server never received the request whole
    /// (see [`Verdict::for_body`](crate::Verdict::for_body)).
    pub const fn requests_have_bodies(mut self) -> Self {
        self.body = RequestBody::NonEmpty;
        self
    }

    /// Whether it was made with [`idempotent`](Self::idempotent).
    pub const fn is_idempotent(&self) -> bool {
        self.idempotent
    }

    /// Whether it was made with [`requests_have_bodies`](Self::requests_have_bodies).
    pub const fn assumes_request_bodies(&self) -> bool {
        matches!(self.body, RequestBody::NonEmpty)
    }

    /// The answer for a failed request.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use hyper_classify::reqwest_middleware::VerdictStrategy;
    /// use reqwest_retry::Retryable;
    ///
    /// // A port nothing listens on: the connect is refused, and the
    /// // request never reached a server.
    /// let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    /// let client = reqwest_middleware::ClientBuilder::new(reqwest_middleware::reqwest::Client::new())
    ///     .build();
    /// let err = client.post(format!("http://127.0.0.1:{port}/")).send().await.unwrap_err();
    /// assert!(matches!(VerdictStrategy::new().on_error(&err), Some(Retryable::Transient)));
    /// # Ok(()) }
    /// ```
    pub fn on_error(&self, err: &Error) -> Option<Retryable> {
        let verdict = classify(err).for_body(self.body);
        if matches!(verdict.cause(), Cause::Unrecognized { .. }) {
            return default_on_request_failure(err);
        }
        if !verdict.permits_retry_as_sent(self.idempotent) {
            return Some(Retryable::Fatal);
        }
        Some(Retryable::Transient)
    }
}

impl RetryableStrategy for VerdictStrategy {
    fn handle(&self, res: &Result<Response, Error>) -> Option<Retryable> {
        match res {
            Ok(response) => default_on_request_success(response),
            Err(err) => self.on_error(err),
        }
    }
}
