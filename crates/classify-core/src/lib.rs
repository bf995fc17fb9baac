//! The version-independent core of `hyper-classify`.
//!
//! This crate holds the verdict vocabulary ([`Verdict`], [`Cause`],
//! [`RetrySafety`], [`Pace`], [`Reason`]) and all of the logic: the bounded
//! walk down an error chain ([`Chain`]), the reading of io error kinds, and
//! the decision table for h2 and hyper errors. It names no h2 or hyper type.
//! Each supported stack is a [`Backend`] in a crate of its
//! own that only *views* its version's error types (`classify-h2-03` for
//! hyper 0.14 and h2 0.3, `classify-h2-04` for hyper 1 and h2 0.4), through
//! the interface in [`backend`].
//!
//! Most users want the `hyper-classify` facade, which picks the backends by
//! feature and adds a `Classify` trait for the concrete error types. The
//! retry policy that acts on verdicts is the `classify-retry` crate.
//!
//! # The decision table
//!
//! Rows are tried in this order; the first that matches decides.
//!
//! | what the chain holds | cause | safety | pace |
//! |---|---|---|---|
//! | request handed back unsent (hyper `is_canceled`) | [`NotSent`](Cause::NotSent) | any request | immediate |
//! | the caller's own error (`is_user`, aborted body) | [`User`](Cause::User) | never | - |
//! | `GOAWAY` from the peer, any code | [`GoAway`](Cause::GoAway) | idempotent only (hyper can attach it to a request already sent); any request if the request had a body ([`Verdict::for_body`]) | `NO_ERROR`, `HTTP_1_1_REQUIRED`: immediate; `ENHANCE_YOUR_CALM`: throttled; others: backoff |
//! | `RST_STREAM(REFUSED_STREAM)` from the peer | [`StreamReset`](Cause::StreamReset) | any request | immediate |
//! | `RST_STREAM(ENHANCE_YOUR_CALM)` from the peer | [`StreamReset`](Cause::StreamReset) | idempotent only | throttled |
//! | `RST_STREAM`, any other code, from the peer | [`StreamReset`](Cause::StreamReset) | idempotent only | backoff |
//! | `GOAWAY` or `RST_STREAM` made by our own side or our h2 | [`Protocol`](Cause::Protocol) | never | - |
//! | a request parked at the peer's stream limit when the connection ended: a bare h2 reason (hyper 1.13), `Canceled("connection closed")` under hyper 1's own API or hyper-util's `SendRequest` (hyper 1.13), "dispatch task is gone" (hyper 0.14, 1.12, a keep-alive timeout) | [`Parked`](Cause::Parked) | idempotent only (its HEADERS may have left); any request if it had a body ([`Verdict::for_body`]) | by the reason, when there is one; else backoff |
//! | the connection closed before the request was handed to it (`is_closed`) | [`NotSent`](Cause::NotSent) | any request | backoff |
//! | connector says the URL is unusable | [`User`](Cause::User) | never | - |
//! | connect error (refused, reset, DNS, timeout, unreachable, TLS) | [`Connect`](Cause::Connect) | any request | backoff |
//! | timeout (hyper, h2 keep-alive, io `TimedOut`, a timer's `Elapsed` (tokio, tower) or reqwest's `TimedOut`) | [`Timeout`](Cause::Timeout) | idempotent only | backoff |
//! | other h2 error, or a response that did not parse | [`Protocol`](Cause::Protocol) | never | - |
//! | a bare io `ConnectionRefused` / unreachable (no hyper or h2 error) | [`Connect`](Cause::Connect) | any request | backoff |
//! | io error after the request was sent, incomplete message | [`ConnectionLost`](Cause::ConnectionLost) | idempotent only | backoff |
//! | nothing recognised | [`Unrecognized`](Cause::Unrecognized) | never | - |
//!
//! When nothing is recognised but a link prints like an h2 `GOAWAY` or
//! `RST_STREAM`, the cause is `Unrecognized { h2_shaped: true }` and a
//! `tracing` warning names the likely reason: an h2 version no enabled
//! backend covers. That is the failure this crate exists to make loud. The
//! warning comes once per kind of error, then at its 10th, 100th, ...
//! occurrence, so a drain does not flood the log; [`unread_h2_errors`]
//! counts every one, for a metric.

#![deny(missing_docs)]

mod body;
mod chain;
mod classifier;
mod decide;
mod occurrences;
mod reason;
mod text;
mod unread;
mod verdict;
mod view;

pub use body::{RequestBody, WithRequestBody};
pub use chain::{Chain, MAX_LINKS};
pub use classifier::Classifier;
pub use occurrences::Occurrences;
pub use reason::Reason;
pub use unread::unread_h2_errors;
pub use verdict::{Cause, ConnectKind, Initiator, Pace, RetrySafety, Verdict};
// The backend interface, for this crate's own paths.
use view::{Backend, View};

pub mod backend {
    //! The interface a backend crate implements: what `classify-h2-03` and
    //! `classify-h2-04` use, and nothing a user of the classifier needs.
    //!
    //! A backend is a [`Backend`] whose `view` downcasts one link of a chain
    //! to its version's h2 or hyper error and describes it as a [`View`].
    //! h2's and hyper's error APIs are the same in every version, so the
    //! description is written once, in two macros each backend expands
    //! against its own types: `view_h2_error!(err)` (an [`H2View`] of an
    //! `h2::Error`) and `view_hyper_error!(err)` (a [`HyperView`] of a
    //! `hyper::Error`). They are macros, not traits, because a backend cannot
    //! implement a trait of this crate for h2's or hyper's types (the orphan
    //! rule): a trait would need a newtype and the same delegation written in
    //! both backends. They are hidden from the crate root's docs, where
    //! `macro_export` puts them.

    pub use crate::text::text_contains;
    pub use crate::view::{Backend, H2View, HyperView, View};
}
