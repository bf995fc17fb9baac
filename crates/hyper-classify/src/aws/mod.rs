//! The AWS SDK for Rust: a connector error mapping for SDK forks, and a
//! retry classifier for everyone else.
//!
//! The SDK's HTTP clients (`aws-smithy-http-client`) turn a hyper error into
//! a [`ConnectorError`] in a function called `to_connector_error`, and the
//! SDK's retry classifiers decide from that error's kind. That function is
//! where a GOAWAY was once missed: its hyper 0.14 client downcast to h2
//! 0.4's `Error`, which hyper 0.14 never produces.
//!
//! # For forks: replace `to_connector_error`
//!
//! [`to_connector_error`] takes any error from either hyper stack (boxed or
//! not) and returns the `ConnectorError` its verdict calls for. A fork keeps
//! the SDK's own checks (its timeout and DNS error types are private to it)
//! and replaces the rest with one line. In
//! `aws-smithy-http-client/src/hyper_legacy.rs` (hyper 0.14):
//!
//! ```text
//!  fn to_connector_error(err: hyper_0_14::Error) -> ConnectorError {
//!      if err.is_timeout() || find_source::<HttpTimeoutError>(&err).is_some() {
//!          return ConnectorError::timeout(err.into());
//!      }
//! -    if err.is_user() {
//! -        ...
//! -    ConnectorError::other(err.into(), None)
//! +    hyper_classify::aws::to_connector_error(err)
//!  }
//! ```
//!
//! and in `aws-smithy-http-client/src/client.rs` (hyper 1), at the end of
//! `downcast_error`, which also sees hyper-util's connect errors:
//!
//! ```text
//!      if find_source::<ResolveDnsError>(err.as_ref()).is_some() {
//!          return ConnectorError::io(err);
//!      }
//! -    // generally, the top of chain will probably be a hyper error. Go through a set of hyper specific
//! -    ... (to the end, and the now unused `to_connector_error` after it)
//! +    if find_source::<timeout::HttpTimeoutError>(err.as_ref()).is_some() {
//! +        return ConnectorError::timeout(err);
//! +    }
//! +    hyper_classify::aws::to_connector_error(err)
//!  }
//! ```
//!
//! with `hyper-classify = { version = "0.1", features = ["legacy", "modern",
//! "aws-smithy"] }` in its `Cargo.toml`. The whole patch, checked against
//! the real crate in CI, is `integrations/fork/aws-smithy-http-client.patch`
//! in this crate's repository.
//!
//! The mapping follows the verdict: connect failures, requests handed back
//! unsent, GOAWAYs, resets from the peer and lost connections are
//! [`io`](ConnectorError::io) (the SDK retries them); a peer that said
//! `ENHANCE_YOUR_CALM` is `other` with [`ErrorKind::ThrottlingError`];
//! timeouts are [`timeout`](ConnectorError::timeout), the caller's errors
//! [`user`](ConnectorError::user); what must not be retried (our own h2's
//! protocol errors, a peer requiring HTTP/1.1) and what nothing recognised
//! are `other` with no kind. A `ConnectorError` cannot say "idempotent
//! requests only": add [`TransportErrorClassifier`] for that.
//!
//! # For everyone: add [`TransportErrorClassifier`]
//!
//! It implements the SDK's [`ClassifyRetry`], finds the transport error
//! behind a connector or response error, and answers from its verdict. It
//! works whatever the SDK's connector made of the error, so it also fixes
//! SDK versions whose `to_connector_error` missed a GOAWAY. With a generated
//! SDK client (`aws-sdk-s3` here):
//!
//! ```ignore
//! use hyper_classify::aws::TransportErrorClassifier;
//!
//! // Every operation of this client is safe to replay (reads, or writes that
//! // carry an idempotency token):
//! let s3 = aws_sdk_s3::Client::from_conf(
//!     aws_sdk_s3::config::Builder::from(&sdk_config)
//!         .retry_classifier(TransportErrorClassifier::idempotent())
//!         .build(),
//! );
//!
//! // Or one operation at a time, on a client without the classifier:
//! s3.get_object()
//!     .bucket("b")
//!     .key("k")
//!     .customize()
//!     .config_override(
//!         aws_sdk_s3::config::Builder::default()
//!             .retry_classifier(TransportErrorClassifier::idempotent()),
//!     )
//!     .send()
//!     .await?;
//! ```

use std::error::Error;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::orchestrator::OrchestratorError;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::retries::classifiers::{
    ClassifyRetry, RetryAction, RetryClassifierPriority,
};
use aws_smithy_types::retry::ErrorKind;

mod refusals;

pub use refusals::RefusalRetries;

use crate::{classify, Cause, Pace, RequestBody, RetrySafety, Verdict, WithRequestBody};
use classify_core::Occurrences;

/// A [`ConnectorError`] for any error from hyper 0.14, hyper 1 or
/// hyper-util's client, of the kind its verdict calls for.
///
/// A drop-in body for `aws-smithy-http-client`'s hyper 0.14
/// `to_connector_error` (see the [module docs](self)).
///
/// ```
/// use hyper_classify::aws::to_connector_error;
///
/// let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
/// let err = to_connector_error(refused);
/// assert!(err.is_io());
/// ```
pub fn to_connector_error<E>(err: E) -> ConnectorError
where
    E: Into<BoxError>,
{
    let err = err.into();
    let make = constructor(classify(&*err));
    make(err)
}

/// [`to_connector_error`] for the error of a request whose body was `body`
/// when it was sent: the error is marked with it ([`WithRequestBody`]), so
/// [`TransportErrorClassifier`] downstream knows that a peer's `GOAWAY` hit
/// a request the server never received whole, and lets even a
/// non-idempotent operation be replayed.
///
/// ```
/// use hyper_classify::aws::to_connector_error_with_body;
/// use hyper_classify::RequestBody;
///
/// let lost = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
/// let err = to_connector_error_with_body(lost, RequestBody::NonEmpty);
/// assert!(err.is_io());
/// assert_eq!(err.to_string(), "io error");
/// ```
pub fn to_connector_error_with_body<E>(err: E, body: RequestBody) -> ConnectorError
where
    E: Into<BoxError>,
{
    to_connector_error(WithRequestBody::new(err, body))
}

/// The unrecognised errors [`to_connector_error`] has mapped, by kind: a
/// failing peer sends the same one with every request.
static UNRECOGNIZED: Occurrences = Occurrences::new();

fn constructor(verdict: Verdict) -> fn(BoxError) -> ConnectorError {
    match verdict.cause() {
        Cause::User => ConnectorError::user,
        Cause::Timeout => ConnectorError::timeout,
        // The classifier has already warned about an h2-shaped one.
        Cause::Unrecognized { h2_shaped: true } => |err| ConnectorError::other(err, None),
        Cause::Unrecognized { h2_shaped: false } => |err| {
            if let Some(occurrences) = UNRECOGNIZED.count(&err, []) {
                tracing::warn!(
                    error = %err,
                    occurrences,
                    "unrecognized error from hyper; it will not be retried \
                     (further ones of this kind are warned about at every power of ten)"
                );
            }
            ConnectorError::other(err, None)
        },
        _ if verdict.safety() == RetrySafety::Never || verdict.requires_http1() => {
            |err| ConnectorError::other(err, None)
        }
        Cause::Connect(_) => |err| ConnectorError::io(err).never_connected(),
        _ if verdict.pace() == Pace::Throttled => {
            |err| ConnectorError::other(err, Some(ErrorKind::ThrottlingError))
        }
        _ => ConnectorError::io,
    }
}

/// The SDK retry classifier that answers from hyper-classify's verdict on
/// the transport error behind a failed attempt.
///
/// It looks at connector and response errors only, and answers:
///
/// | verdict (refined by the request's body, see [`requests_have_bodies`](Self::requests_have_bodies)) | action |
/// |---|---|
/// | any request may be retried | [`transient_error`](RetryAction::transient_error), or [`throttling_error`](RetryAction::throttling_error) when the peer said `ENHANCE_YOUR_CALM` |
/// | idempotent requests only | the same if the classifier was made with [`idempotent`](Self::idempotent), else [`RetryForbidden`](RetryAction::RetryForbidden) |
/// | never, or the peer requires HTTP/1.1 | [`RetryForbidden`](RetryAction::RetryForbidden) |
/// | nothing recognised | [`NoActionIndicated`](RetryAction::NoActionIndicated): the SDK's classifiers decide |
///
/// A retry classifier sees the error, not the operation (the SDK gives it
/// neither the request nor the config bag), so whether the operation is
/// idempotent is said by choosing the constructor where the classifier is
/// attached: on a client whose operations are all safe to replay, or on one
/// operation's `config_override`. The SDK stops at the first
/// `RetryForbidden`, so a client-wide [`new`](Self::new) wins over an
/// operation's [`idempotent`](Self::idempotent): attach one or the other.
///
/// It runs after the SDK's transient error classifier, so its answer
/// (throttling rather than transient; forbidden for a request that may have
/// been processed) is the one that counts.
///
/// ```
/// use aws_smithy_runtime_api::client::interceptors::context::{Input, InterceptorContext};
/// use aws_smithy_runtime_api::client::orchestrator::OrchestratorError;
/// use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction};
/// use hyper_classify::aws::{to_connector_error, TransportErrorClassifier};
///
/// let mut ctx = InterceptorContext::new(Input::erase(()));
/// let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
/// ctx.set_output_or_error(Err(OrchestratorError::connector(to_connector_error(refused))));
///
/// let classifier = TransportErrorClassifier::new();
/// assert_eq!(classifier.classify_retry(&ctx), RetryAction::transient_error());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportErrorClassifier {
    idempotent: bool,
    body: RequestBody,
}

impl TransportErrorClassifier {
    /// A classifier for operations not known to be idempotent: a request
    /// that may have been processed is not replayed.
    pub const fn new() -> Self {
        TransportErrorClassifier {
            idempotent: false,
            body: RequestBody::Empty,
        }
    }

    /// A classifier for idempotent operations (reads, or writes that carry
    /// an idempotency token): a request that may have been processed is
    /// replayed too.
    pub const fn idempotent() -> Self {
        TransportErrorClassifier {
            idempotent: true,
            body: RequestBody::Empty,
        }
    }

    /// The same classifier, for operations whose requests all carry a body:
    /// a peer's `GOAWAY` then means the server never received the request
    /// whole, and even a non-idempotent operation is replayed (see
    /// [`Verdict::for_body`]).
    ///
    /// Every operation of an `awsJson` or `awsQuery` service (DynamoDB, SQS,
    /// STS, Kinesis...) is a `POST` with a JSON or form body, so a client of
    /// one can say so client-wide. For REST services say it per operation,
    /// and only where the payload cannot be empty (an empty `PutObject`
    /// sends none).
    ///
    /// Why it cannot find out by itself: a retry classifier is given only
    /// the `InterceptorContext`, whose request the orchestrator has taken
    /// out to send (its checkpoint copy is private), and not the config bag
    /// an interceptor could have written to. An interceptor could only mark
    /// the error by rebuilding the `ConnectorError`, which loses its
    /// connection metadata. A fork's connector, which holds the request,
    /// marks the error itself ([`to_connector_error_with_body`]); this
    /// classifier reads that mark whatever it was made with.
    ///
    /// ```
    /// use aws_smithy_runtime_api::client::orchestrator::OrchestratorError;
    /// use aws_smithy_runtime_api::client::retries::classifiers::RetryAction;
    /// use hyper_classify::aws::TransportErrorClassifier;
    ///
    /// let classifier = TransportErrorClassifier::new().requests_have_bodies();
    /// assert!(classifier.assumes_request_bodies());
    /// // A lost connection may still have been processed.
    /// let lost = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
    /// let err = OrchestratorError::<std::io::Error>::response(lost.into());
    /// assert_eq!(classifier.action(&err), RetryAction::RetryForbidden);
    /// ```
    pub const fn requests_have_bodies(mut self) -> Self {
        self.body = RequestBody::NonEmpty;
        self
    }

    /// Whether it was made with [`requests_have_bodies`](Self::requests_have_bodies).
    pub const fn assumes_request_bodies(&self) -> bool {
        matches!(self.body, RequestBody::NonEmpty)
    }

    /// Whether it was made with [`idempotent`](Self::idempotent).
    pub const fn is_idempotent(&self) -> bool {
        self.idempotent
    }

    /// The action for one failed attempt's error.
    ///
    /// ```
    /// use aws_smithy_runtime_api::client::orchestrator::OrchestratorError;
    /// use aws_smithy_runtime_api::client::retries::classifiers::RetryAction;
    /// use hyper_classify::aws::TransportErrorClassifier;
    ///
    /// let lost = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
    /// let err = OrchestratorError::<std::io::Error>::response(lost.into());
    /// assert_eq!(TransportErrorClassifier::new().action(&err), RetryAction::RetryForbidden);
    /// assert_eq!(
    ///     TransportErrorClassifier::idempotent().action(&err),
    ///     RetryAction::transient_error()
    /// );
    /// ```
    pub fn action<E>(&self, err: &OrchestratorError<E>) -> RetryAction
    where
        E: Error + 'static,
    {
        match attempt_verdict(err, self.body) {
            Some(verdict) => self.action_for_verdict(verdict),
            None => RetryAction::NoActionIndicated,
        }
    }

    fn action_for_verdict(&self, verdict: Verdict) -> RetryAction {
        if matches!(verdict.cause(), Cause::Unrecognized { .. }) {
            return RetryAction::NoActionIndicated;
        }
        if !verdict.permits_retry_as_sent(self.idempotent) {
            tracing::debug!(%verdict, idempotent = self.idempotent, "retry forbidden");
            return RetryAction::RetryForbidden;
        }
        match verdict.pace() {
            Pace::Throttled => RetryAction::throttling_error(),
            _ => RetryAction::transient_error(),
        }
    }
}

impl ClassifyRetry for TransportErrorClassifier {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        match ctx.output_or_error() {
            Some(Err(err)) => self.action(err),
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "hyper-classify transport errors"
    }

    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}

/// The verdict on the transport error behind a failed attempt, for a
/// request whose body was as `body`: a connector error (no response yet),
/// or a response error (the response's body failed while being read, so the
/// server had answered: [`Verdict::after_response_head`]).
fn attempt_verdict<E>(err: &OrchestratorError<E>, body: RequestBody) -> Option<Verdict>
where
    E: Error + 'static,
{
    match err.as_connector_error() {
        Some(connector) => Some(classify(connector).for_body(body)),
        None if err.is_response_error() => Some(classify(err).after_response_head()),
        None => None,
    }
}
