//! Should this failed HTTP request be retried, and is it safe to?
//!
//! `hyper-classify` answers that for errors from hyper 0.14 (h2 0.3) and
//! hyper 1 (h2 0.4, hyper-util), in one process if need be. Each stack has a
//! backend crate that alone names its version's error types, so an HTTP/2
//! `GOAWAY` can never be missed by downcasting to the wrong `h2::Error`: the
//! failure that let draining servers' GOAWAYs reach applications as fatal
//! errors.
//!
//! # Features
//!
//! | feature | stack | backend crate |
//! |---|---|---|
//! | `modern` (default) | hyper 1, hyper-util, h2 0.4 | `classify-h2-04` |
//! | `legacy` | hyper 0.14, h2 0.3 | `classify-h2-03` |
//! | `retry` | the [`retry`] policy, its layer and tower 0.5's retry `Policy` | `classify-retry` |
//! | `tower-04` | with `retry`: the retry `Policy` for tower 0.4's `Retry` too | `classify-retry` |
//! | `aws-smithy` | the AWS SDK's connector error, retry classifier and refusal retries ([`aws`]) | - |
//! | `reqwest-012` (alias `reqwest`) | with `modern`: a classifier for reqwest 0.12's retries ([`reqwest_012`]) | `classify-h2-04` |
//! | `reqwest-013` | with `modern`: a classifier for reqwest 0.13's retries ([`reqwest_013`]) | `classify-h2-04` |
//! | `reqwest-middleware-05` (alias `reqwest-middleware`) | with `modern`: a retry strategy for reqwest-retry 0.9 on reqwest-middleware 0.5 ([`reqwest_middleware`](mod@reqwest_middleware)) | `classify-h2-04` |
//! | `tonic-014` (alias `tonic`) | with `modern` and `retry`: transparent retries for tonic 0.14 channels ([`tonic`](mod@tonic)) | `classify-h2-04`, `classify-retry` |
//!
//! The integration features are named for the major they target: a new
//! major gets a feature of its own beside the old one, and the old one
//! keeps building the old major.
//!
//! `legacy` and `modern` are additive. With neither, the crate does not
//! build: a classifier that cannot see GOAWAY must not build silently.
//!
//! # Example
//!
//! ```
//! use hyper_classify::{classify, Cause, Classify, ConnectKind, RetrySafety};
//! use std::io;
//!
//! let err = io::Error::from(io::ErrorKind::ConnectionRefused);
//! let verdict = err.classify();
//! assert_eq!(verdict.cause(), Cause::Connect(ConnectKind::Refused));
//! assert_eq!(verdict.safety(), RetrySafety::AnyRequest);
//!
//! // Any error chain works, boxed or borrowed:
//! let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(err);
//! assert_eq!(classify(&*boxed), verdict);
//! ```
//!
//! With hyper 1 (`modern`), on a real request:
//!
//! ```no_run
//! # #[cfg(feature = "modern")]
//! # async fn run() {
//! use hyper_classify::Classify;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//!
//! let client = Client::builder(TokioExecutor::new())
//!     .build_http::<http_body_util::Empty<bytes::Bytes>>();
//! if let Err(err) = client.get("http://127.0.0.1:8080/".parse().unwrap()).await {
//!     let verdict = err.classify();
//!     if verdict.permits_retry(true) {
//!         println!("retrying a GET: {verdict}");
//!     }
//! }
//! # }
//! ```
//!
//! The decision table is in [`classify_core`]'s documentation and in the
//! README.

#![deny(missing_docs)]

#[cfg(not(any(feature = "legacy", feature = "modern")))]
compile_error!(
    "hyper-classify has no backend: enable the `legacy` feature for hyper 0.14 (h2 0.3), \
     `modern` for hyper 1 (h2 0.4), or both. Without one, HTTP/2 GOAWAY cannot be recognised."
);

use std::error::Error;

pub use classify_core::backend::Backend;
pub use classify_core::unread_h2_errors;
pub use classify_core::{
    Cause, Chain, Classifier, ConnectKind, Initiator, Pace, Reason, RequestBody, RetrySafety,
    Verdict, WithRequestBody, MAX_LINKS,
};

/// The hyper 0.14 / h2 0.3 backend and the versions it reads.
#[cfg(feature = "legacy")]
pub use classify_h2_03 as legacy;

/// The hyper 1 / h2 0.4 backend and the versions it reads.
#[cfg(feature = "modern")]
pub use classify_h2_04 as modern;

// First: its macros are in scope only after it.
#[cfg(any(feature = "reqwest-012", feature = "reqwest-013"))]
#[macro_use]
mod reqwest_retries;

#[cfg(feature = "retry")]
pub mod retry;

#[cfg(feature = "aws-smithy")]
pub mod aws;

#[cfg(feature = "reqwest-012")]
#[doc = module_docs!("0.12")]
pub mod reqwest_012;
#[cfg(feature = "reqwest-013")]
#[doc = module_docs!("0.13")]
pub mod reqwest_013;
#[cfg(feature = "reqwest-middleware-05")]
pub mod reqwest_middleware;
#[cfg(feature = "tonic-014")]
pub mod tonic;

/// Every backend this build's features enable.
pub const BACKENDS: &[&dyn Backend] = &[
    #[cfg(feature = "legacy")]
    &classify_h2_03::Hyper014,
    #[cfg(feature = "modern")]
    &classify_h2_04::Hyper1,
];

/// The classifier with every enabled backend.
pub const CLASSIFIER: Classifier<'static> = Classifier::new(BACKENDS);

/// The verdict on any error chain, read by every enabled backend.
///
/// ```
/// let err = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
/// let verdict = hyper_classify::classify(&err);
/// assert_eq!(verdict.cause(), hyper_classify::Cause::ConnectionLost);
/// ```
pub fn classify(err: &(dyn Error + 'static)) -> Verdict {
    CLASSIFIER.classify(err)
}

/// Errors that can be classified directly: `err.classify()`.
///
/// Implemented for hyper 0.14's error (`legacy`), hyper 1's and hyper-util's
/// legacy client error (`modern`), `std::io::Error` and boxed errors.
pub trait Classify {
    /// The verdict on this error and its chain of causes.
    fn classify(&self) -> Verdict;
}

macro_rules! classify_by_chain {
    ($($(#[$cfg:meta])* $ty:ty),* $(,)?) => {$(
        $(#[$cfg])*
        impl Classify for $ty {
            fn classify(&self) -> Verdict {
                classify(self)
            }
        }
    )*};
}

classify_by_chain!(
    std::io::Error,
    #[cfg(feature = "legacy")]
    hyper_0_14::Error,
    #[cfg(feature = "modern")]
    hyper_1::Error,
    #[cfg(feature = "modern")]
    hyper_util::client::legacy::Error,
);

impl Classify for Box<dyn Error + Send + Sync> {
    fn classify(&self) -> Verdict {
        classify(&**self)
    }
}

impl Classify for Box<dyn Error> {
    fn classify(&self) -> Verdict {
        classify(&**self)
    }
}
