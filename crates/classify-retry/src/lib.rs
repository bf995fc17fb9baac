//! The retry policy for hyper-classify's verdicts, written once for every
//! stack.
//!
//! A [`Verdict`] (from `classify-core`) says whether a retry is safe; a
//! [`RetryPolicy`] acts on it:
//!
//! - **exactly-once safety**: a request the server may have processed is
//!   replayed only if it is idempotent (by method, by an `Idempotency-Key`
//!   header, or on the caller's word); one it never processed
//!   (`REFUSED_STREAM`, handed back unsent, a failed connect) may be replayed
//!   whatever its method; so may one the peer's `GOAWAY` failed when it had
//!   a body (see [`Verdict::for_body`]); a body that cannot be replayed is
//!   never retried, and the error says so;
//! - **one free immediate retry** after a refusal (a draining GOAWAY,
//!   `REFUSED_STREAM`, handed back unsent), outside the budget, as gRPC's
//!   transparent retry; it costs an attempt only when the request may have
//!   been processed;
//! - **refusal streaks**: a request the server never processed is sent
//!   again up to [`RetryConfig::max_refusals`] times, with backoff, from the
//!   budget, whatever `max_attempts` says;
//! - **exponential backoff with full jitter**, a longer one when the peer
//!   says it is overloaded (`ENHANCE_YOUR_CALM`), a cap, and an overall
//!   deadline;
//! - **startup grace**: from the policy's creation until its first success,
//!   connects nobody answers are retried through a window, whatever the
//!   attempt count, so an application that starts before its sidecar proxy
//!   survives, and an outage later costs only the usual attempts (see
//!   [`RetryConfig::startup_grace`]);
//! - **a retry budget** shared by every clone of the policy (tower's
//!   `TpsBudget`), whose exhaustion is marked on the error
//!   ([`RetryError::is_budget_exhausted`]);
//! - a `tracing` event per decision, and [`RetryStats`] counters.
//!
//! The tower adapters are here too, written once for both hyper stacks:
//! [`ClassifyRetryLayer`] (errors that say why they were not retried), and
//! [`ClassifyPolicy`], a retry `Policy` for tower 0.5's `Retry` (feature
//! `tower-05`) and for tower 0.4's (feature `tower-04`). The backend crates
//! add only how their `http::Request` is copied (a [`Replay`]).
//!
//! # Features
//!
//! - `tower-05`: [`ClassifyPolicy`] implements tower 0.5's `retry::Policy`.
//! - `tower-04`: [`ClassifyPolicy`] implements tower 0.4's `retry::Policy`.
//!
//! The layer needs neither: `Service` and `Layer` come from tower-service and
//! tower-layer 0.3, which both towers share.

#![deny(missing_docs)]

mod adapters;
mod config;
mod error;
mod handover;
mod policy;
mod stats;
#[cfg(feature = "tower-04")]
mod tower04;

pub use adapters::{ClassifyPolicy, ClassifyRetry, ClassifyRetryLayer, Replay};
pub use config::{RetryBudget, RetryConfig};
pub use error::{InvalidConfig, RetryError, StopReason};
pub use handover::HandoverMarker;
pub use policy::{is_idempotent_method, Decision, RequestFacts, RetryPolicy, RetryState};
pub use stats::RetryStats;

/// The request-body vocabulary of [`RequestFacts::body`], from `classify-core`.
pub use classify_core::RequestBody;

// The vocabulary the policy decides on, for the modules' paths and links.
use classify_core::{Cause, Classifier, ConnectKind, Pace, RetrySafety, Verdict};

/// A request extension that marks a request idempotent on the caller's word,
/// so it may be replayed after an error that leaves its processing in doubt.
///
/// Insert it into a request's extensions (`req.extensions_mut().insert(Idempotent)`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Idempotent;

/// The [`RequestFacts`] of an `http::Request` of any `http` version (0.2 or
/// 1, whose request APIs are the same), given its body's `is_end_stream()`.
/// Written once here; each backend expands it against its own `http`.
#[doc(hidden)] // for backend crates, not users
#[macro_export]
macro_rules! http_request_facts {
    ($req:expr, end_stream = $end_stream:expr) => {{
        let req = $req;
        $crate::RequestFacts::new(
            req.method().as_str(),
            req.headers().contains_key("idempotency-key"),
        )
        .idempotent(req.extensions().get::<$crate::Idempotent>().is_some())
        .body($crate::RequestBody::from_end_stream($end_stream))
    }};
}

/// Copies an `http::Request`'s method, URI, version and headers (any `http`
/// version) into `copy`, a new request around the replayed body, and returns
/// it; extensions are the caller's to copy (http 0.2's cannot be cloned).
#[doc(hidden)] // for backend crates, not users
#[macro_export]
macro_rules! copy_http_request_head {
    ($req:expr => $copy:expr) => {{
        let req = $req;
        let mut copy = $copy;
        *copy.method_mut() = req.method().clone();
        *copy.uri_mut() = req.uri().clone();
        *copy.version_mut() = req.version();
        *copy.headers_mut() = req.headers().clone();
        copy
    }};
}
