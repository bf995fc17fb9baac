//! The warning about h2-shaped errors no backend read: loud once per kind
//! ([`Occurrences`]), then counted ([`unread_h2_errors`]).

use std::error::Error;

use crate::{Classifier, Occurrences};

static UNREAD: Occurrences = Occurrences::new();

/// How many errors that look like an h2 `GOAWAY` or `RST_STREAM`, but that
/// no enabled backend could read, this process has classified (each one a
/// [`Cause::Unrecognized { h2_shaped: true }`](crate::Cause::Unrecognized)).
///
/// Anything above zero means a missing feature or an h2 version drift:
/// export it as a metric and alert on it.
///
/// ```
/// assert_eq!(classify_core::unread_h2_errors(), 0);
/// ```
pub fn unread_h2_errors() -> u64 {
    UNREAD.total()
}

/// Counts `err`, and warns if it is the first of its kind (its outer type
/// and the backends that missed it) or its count is a power of ten.
pub(crate) fn report(err: &(dyn Error + 'static), classifier: &Classifier<'_>) {
    let Some(occurrences) = UNREAD.count(&err, classifier.backend_names()) else {
        return;
    };
    tracing::warn!(
        error = %err,
        backends = ?classifier,
        occurrences,
        "an error that looks like an HTTP/2 GOAWAY or RST_STREAM was not recognised \
         by any enabled backend: most likely it comes from an h2 major version that no \
         enabled hyper-classify feature covers (hyper 0.14 needs `legacy`, hyper 1 \
         needs `modern`); further ones of this kind are counted (unread_h2_errors) and \
         warned about at every power of ten"
    );
}
