//! Retrying failed requests on the verdicts, safely.
//!
//! Everything in [`classify_retry`] is here, plus constructors that use
//! this build's backends. A hyper-util (hyper 1) client wrapped in the retry
//! layer:
//!
//! ```no_run
//! # #[cfg(feature = "modern")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use hyper_classify::retry::{self, RetryConfig};
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! let client = Client::builder(TokioExecutor::new())
//!     .build_http::<http_body_util::Full<bytes::Bytes>>();
//! let policy = retry::policy(RetryConfig::default())?;
//! let mut client = ServiceBuilder::new()
//!     .layer(retry::modern_layer(policy.clone()))
//!     .service(client);
//! let request = http::Request::post("http://127.0.0.1:8080/orders")
//!     .body(http_body_util::Full::new(bytes::Bytes::from("{}")))?;
//! match client.ready().await?.call(request).await {
//!     Ok(response) => println!("{}", response.status()),
//!     Err(err) if err.is_budget_exhausted() => eprintln!("shedding load: {err}"),
//!     Err(err) => eprintln!("{err}"),
//! }
//! println!("{:?}", policy.stats());
//! # Ok(()) }
//! ```

pub use classify_retry::*;

use crate::CLASSIFIER;

/// A retry policy that classifies with every backend this build enables.
///
/// ```
/// let policy = hyper_classify::retry::policy(Default::default()).unwrap();
/// assert_eq!(policy.stats().requests, 0);
/// ```
pub fn policy(config: RetryConfig) -> Result<RetryPolicy, InvalidConfig> {
    RetryPolicy::new(config, CLASSIFIER)
}

/// The retry layer for hyper 0.14 clients (`http` 0.2 requests).
#[cfg(feature = "legacy")]
pub fn legacy_layer(policy: RetryPolicy) -> ClassifyRetryLayer<classify_h2_03::retry::HttpReplay> {
    ClassifyRetryLayer::new(policy, classify_h2_03::retry::HttpReplay)
}

/// The retry layer for hyper 1 clients (`http` 1 requests).
#[cfg(feature = "modern")]
pub fn modern_layer(policy: RetryPolicy) -> ClassifyRetryLayer<classify_h2_04::retry::HttpReplay> {
    ClassifyRetryLayer::new(policy, classify_h2_04::retry::HttpReplay)
}
