//! A classifier for reqwest 0.12's retries (`reqwest::retry`, 0.12.23 and
//! later), answered from the verdict with the safety rules of this crate.
//!
//! reqwest's own check for a peer's `GOAWAY(NO_ERROR)` and `REFUSED_STREAM`
//! is private, and a policy with a classifier of its own replaces it. This
//! one retries what the verdict permits:
//!
//! - a request the server never processed (`REFUSED_STREAM` from the peer,
//!   a refused connect, a request hyper handed back unsent), whatever its
//!   method;
//! - one it may have processed (a peer's `GOAWAY`, a lost connection), only
//!   if its method is idempotent. reqwest does not show a classifier the
//!   request's body, so the verdict cannot be narrowed by it
//!   ([`Verdict::for_body`](crate::Verdict::for_body)): a `GOAWAY` refusal
//!   of a POST is not retried here. Use
//!   [`permits_retry_with_body`] in a classifier of your own where you know
//!   the body;
//! - nothing throttled (`ENHANCE_YOUR_CALM`): reqwest retries at once, with
//!   no backoff, and an immediate retry would add to the overload;
//! - nothing a peer refused for wanting HTTP/1.1 (`HTTP_1_1_REQUIRED`):
//!   reqwest's retry goes out over HTTP/2 again;
//! - no response: statuses are the caller's to judge.
//!
//! reqwest's retry budget (20 % extra load by default) and its limit of
//! retries per request stay in force.
//!
//! ```
//! let client = reqwest::Client::builder()
//!     .retry(hyper_classify::reqwest::for_host("api.example.com"))
//!     .build()
//!     .unwrap();
//! # drop(client);
//! ```

use std::error::Error;

use ::reqwest::retry::Builder;
use ::reqwest::Method;

use crate::{Pace, RequestBody};

/// A retry policy for requests to `host`, classified by this crate.
///
/// ```
/// let policy = hyper_classify::reqwest::for_host("api.example.com")
///     .max_retries_per_request(3);
/// let client = reqwest::Client::builder().retry(policy).build().unwrap();
/// # drop(client);
/// ```
pub fn for_host<S>(host: S) -> Builder
where
    S: for<'a> PartialEq<&'a str> + Send + Sync + 'static,
{
    classify(::reqwest::retry::for_host(host))
}

/// `builder` with this crate's classifier (replacing any it had).
///
/// ```
/// let policy = hyper_classify::reqwest::classify(
///     reqwest::retry::for_host("api.example.com").max_extra_load(0.5),
/// );
/// # drop(policy);
/// ```
pub fn classify(builder: Builder) -> Builder {
    builder.classify_fn(|attempt| {
        if permits_retry(attempt.method(), attempt.error()) {
            attempt.retryable()
        } else {
            attempt.success()
        }
    })
}

/// Whether a request of `method` that ended in `error` may be retried at
/// once: the rule [`classify`] applies, for a classifier of your own
/// (`classify_fn(|attempt| …)`). `None` (a response) is never retried.
///
/// ```
/// use reqwest::Method;
///
/// let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
/// assert!(hyper_classify::reqwest::permits_retry(&Method::POST, Some(&refused)));
/// assert!(!hyper_classify::reqwest::permits_retry(&Method::GET, None));
/// ```
pub fn permits_retry(method: &Method, error: Option<&(dyn Error + 'static)>) -> bool {
    // Unknown is the cautious answer: see `RequestBody::Empty`.
    permits_retry_with_body(method, error, RequestBody::Empty)
}

/// [`permits_retry`] for a request whose body was as `body` when it was
/// sent: a peer's `GOAWAY` that failed a request with a body may be retried
/// whatever its method, since that body never reached the server.
pub fn permits_retry_with_body(
    method: &Method,
    error: Option<&(dyn Error + 'static)>,
    body: RequestBody,
) -> bool {
    let Some(error) = error else {
        return false;
    };
    let verdict = crate::classify(error).for_body(body);
    verdict.pace() != Pace::Throttled && verdict.permits_retry_as_sent(method.is_idempotent())
}
