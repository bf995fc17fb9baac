//! The hyper 1 / h2 0.4 / hyper-util backend of `hyper-classify`.
//!
//! This crate is the only place that names h2 0.4's, hyper 1's and
//! hyper-util's error types. It views them for the version-independent
//! decision table in `classify-core`, and does nothing else. Use it through
//! the `hyper-classify` facade's `modern` feature.
//!
//! The h2 it downcasts to is the very h2 that hyper 1 wraps: `cargo xtask
//! pins` fails the build if the two ever resolve to different packages (as
//! they would if a hyper 1.x moved to h2 0.5).
//!
//! ```
//! use classify_core::Classifier;
//! use classify_h2_04::Hyper1;
//!
//! let classifier = Classifier::new(&[&Hyper1]);
//! assert_eq!(classifier.backend_names().next(), Some("hyper 1 / h2 0.4"));
//! ```

#![deny(missing_docs)]

use std::error::Error;

use classify_core::backend::{text_contains, Backend, HyperView, View};
use classify_core::{view_h2_error, view_hyper_error};

#[cfg(feature = "retry")]
pub mod retry;

/// The backend for hyper 1 (`hyper::Error`), hyper-util's legacy client
/// (`hyper_util::client::legacy::Error`) and h2 0.4 (`h2::Error`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Hyper1;

impl Backend for Hyper1 {
    fn name(&self) -> &'static str {
        "hyper 1 / h2 0.4"
    }

    fn view<'e>(&self, link: &'e (dyn Error + 'static)) -> Option<View<'e>> {
        if let Some(err) = link.downcast_ref::<h2::Error>() {
            return Some(View::H2(view_h2_error!(err)));
        }
        if let Some(err) = link.downcast_ref::<hyper_util::client::legacy::Error>() {
            // Only `is_connect` is public. A hyper::Error behind it says the
            // rest; without one, its Display names its kind ("client error
            // (UserAbsoluteUriRequired)").
            let mut view = HyperView::default();
            view.connect = err.is_connect();
            // A request that waited for a connect another request made, when
            // that connect failed: hyper-util's pool hands it back
            // ("request was canceled", its `CheckoutNoLongerWanted`) under
            // the `Connect` kind. It never left the client, as hyper 0.14's
            // "request has been canceled" for the same case.
            let handed_back = || cause_says(err, "request was canceled");
            if view.connect && handed_back() {
                view.connect = false;
                view.canceled = true;
            }
            if err.source().is_none() && !view.connect {
                view.user = text_contains(err, &["(User"]);
            }
            // The `Canceled` kind is a request that never left the client,
            // whatever error it carries: its connection handed it back, or
            // it waited on a connect that another request's h2 connection
            // (or ALPN upgrade, "ALPN upgraded to HTTP/2") made moot and
            // then found no connection in the pool.
            if !view.connect && text_contains(err, &["(Canceled)"]) {
                view.canceled = true;
            }
            // A fresh connection's handshake and readiness errors are
            // `SendRequest` too ("connection closed before message
            // completed" when it died first), but only an error from a
            // request sent on a connection carries its `connect_info()`:
            // without one, no request was handed over.
            if !view.connect
                && !view.canceled
                && err.connect_info().is_none()
                && text_contains(err, &["(SendRequest)"])
            {
                view.closed = true;
            }
            return Some(View::Hyper(view));
        }
        let err = link.downcast_ref::<hyper::Error>()?;
        let mut view = view_hyper_error!(err);
        // hyper 1.13 fails a request parked at the peer's stream limit with
        // `Canceled("connection closed")` when a graceful GOAWAY or an io
        // error ends the connection, and keeps no request to hand back; its
        // HEADERS may have left. A queued request dropped with its
        // connection carries the same words, and hyper-util shows that one
        // as its own `Canceled` kind (seen above, and it wins); under
        // hyper's own `send_request` the two cannot be told apart, so both
        // are taken as parked.
        if view.canceled && cause_says(err, "connection closed") {
            view.canceled = false;
            view.abandoned = true;
        }
        Some(View::Hyper(view))
    }
}

/// Whether `err`'s own cause prints `words`.
fn cause_says(err: &dyn Error, words: &'static str) -> bool {
    err.source()
        .is_some_and(|source| text_contains(&format_args!("{source}"), &[words]))
}
