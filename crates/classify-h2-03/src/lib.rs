//! The hyper 0.14 / h2 0.3 backend of `hyper-classify`.
//!
//! This crate is the only place that names h2 0.3's and hyper 0.14's error
//! types. It views them for the version-independent decision table in
//! `classify-core`, and does nothing else. Use it through the
//! `hyper-classify` facade's `legacy` feature.
//!
//! The h2 it downcasts to is the very h2 that hyper 0.14 wraps: `cargo xtask
//! pins` fails the build if the two ever resolve to different packages.
//!
//! ```
//! use classify_core::Classifier;
//! use classify_h2_03::Hyper014;
//!
//! let classifier = Classifier::new(&[&Hyper014]);
//! assert_eq!(classifier.backend_names().next(), Some("hyper 0.14 / h2 0.3"));
//! ```

#![deny(missing_docs)]

use std::error::Error;

use classify_core::backend::{Backend, View};
use classify_core::{view_h2_error, view_hyper_error};

#[cfg(feature = "retry")]
pub mod retry;

/// The backend for hyper 0.14 (`hyper::Error`) and h2 0.3 (`h2::Error`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Hyper014;

impl Backend for Hyper014 {
    fn name(&self) -> &'static str {
        "hyper 0.14 / h2 0.3"
    }

    fn view<'e>(&self, link: &'e (dyn Error + 'static)) -> Option<View<'e>> {
        if let Some(err) = link.downcast_ref::<h2::Error>() {
            return Some(View::H2(view_h2_error!(err)));
        }
        let err = link.downcast_ref::<hyper::Error>()?;
        let mut view = view_hyper_error!(err);
        view.connect = err.is_connect();
        Some(View::Hyper(view))
    }
}
