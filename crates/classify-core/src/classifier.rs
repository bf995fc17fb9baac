//! Walking a chain, asking the backends, deciding.

use std::error::Error;
use std::fmt;
use std::io;

use crate::decide::{decide, Evidence};
use crate::text::{contains_any, starts_with_any, text_is};

/// How much of a connector error's text is read: enough for its leading
/// words, short of the ": cause" hyper 0.14 appends.
const CONNECTOR_PREFIX: usize = 16;
use crate::{Backend, Cause, Chain, Verdict, View, WithRequestBody};

/// Classifies errors with a chosen set of [`Backend`]s.
///
/// The `hyper-classify` facade holds one with every backend its features
/// enable; make your own to classify with fewer (to see what a build without
/// a backend would do) or with a backend of your own.
///
/// ```
/// use classify_core::{Cause, Classifier, ConnectKind};
/// use std::io;
///
/// let classifier = Classifier::new(&[]);
/// let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
/// assert_eq!(classifier.classify(&refused).cause(), Cause::Connect(ConnectKind::Refused));
/// ```
#[derive(Clone, Copy)]
pub struct Classifier<'b> {
    backends: &'b [&'b dyn Backend],
}

impl fmt::Debug for Classifier<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.backends.iter().map(|b| b.name()))
            .finish()
    }
}

impl<'b> Classifier<'b> {
    /// A classifier that asks `backends`, in order, about every link.
    pub const fn new(backends: &'b [&'b dyn Backend]) -> Self {
        Classifier { backends }
    }

    /// The names of the backends this classifier asks.
    pub fn backend_names(&self) -> impl Iterator<Item = &'static str> + 'b {
        self.backends.iter().map(|b| b.name())
    }

    /// The verdict on `err` and its chain of causes.
    ///
    /// Never panics, never allocates, and looks at no more than
    /// [`MAX_LINKS`](crate::MAX_LINKS) links.
    pub fn classify(&self, err: &(dyn Error + 'static)) -> Verdict {
        let evidence = self.gather(err);
        let verdict = decide(&evidence).for_body(evidence.body);
        if verdict.cause() != (Cause::Unrecognized { h2_shaped: false }) {
            return verdict;
        }
        if evidence.is_empty() && looks_like_h2(err) {
            crate::unread::report(err, self);
            return Verdict::new(
                Cause::Unrecognized { h2_shaped: true },
                verdict.safety(),
                verdict.pace(),
            );
        }
        verdict
    }

    fn gather<'e>(&self, err: &'e (dyn Error + 'static)) -> Evidence {
        let mut evidence = Evidence::default();
        let mut chain = Chain::new(err);
        while let Some(link) = chain.next() {
            let view = self.view(link);
            evidence.client_error |= view.is_some();
            match view {
                Some(View::H2(h2)) => {
                    evidence.add_h2(&h2);
                    if let Some(io) = h2.io {
                        chain.redirect(io);
                    }
                }
                Some(View::Hyper(hyper)) => evidence.hyper.merge(hyper),
                None => {}
            }
            if let Some(io) = link.downcast_ref::<io::Error>() {
                evidence.add_io(io.kind());
            }
            if let Some(marked) = link.downcast_ref::<WithRequestBody>() {
                evidence.body = marked.body();
            }
            if view.is_none() && link.source().is_none() && !link.is::<io::Error>() {
                evidence.elapsed |= is_timer(link);
            }
        }
        if evidence.hyper.connect {
            // hyper's connectors say these only in their text, which begins
            // with them ("dns error: ...", "invalid URL, scheme is not http").
            // Only the connector's own error is read: hyper's and io's text
            // repeat their causes' (and an OS error's text allocates).
            for link in Chain::new(err) {
                if link.is::<io::Error>() || self.view(link).is_some() {
                    continue;
                }
                evidence.dns |= starts_with_any(&link, &["dns error"], CONNECTOR_PREFIX);
                evidence.invalid_url |= starts_with_any(&link, &["invalid URL"], CONNECTOR_PREFIX);
            }
        }
        evidence
    }

    fn view<'e>(&self, link: &'e (dyn Error + 'static)) -> Option<View<'e>> {
        self.backends.iter().find_map(|backend| backend.view(link))
    }
}

/// What the timers of the field print when they give up, each a leaf error
/// with exactly this text: tokio's `time::error::Elapsed`, tower's
/// `timeout::error::Elapsed` (0.4 and 0.5), reqwest's `TimedOut`. Read by
/// text, so the same error classifies the same whatever crates and features
/// a build has.
const TIMER_TEXTS: [&str; 3] = [
    "deadline has elapsed",
    "request timed out",
    "operation timed out",
];

/// Whether `link` is a timer's "time is up".
fn is_timer(link: &(dyn Error + 'static)) -> bool {
    TIMER_TEXTS.iter().any(|text| text_is(&link, text))
}

/// Whether any link prints like an h2 `GOAWAY` or `RST_STREAM` error.
fn looks_like_h2(err: &(dyn Error + 'static)) -> bool {
    // An io::Error's own text is the OS's (and formatting it allocates).
    Chain::new(err)
        .filter(|link| !link.is::<io::Error>())
        .any(|link| {
            contains_any(&["GoAway(", "Reset("], |w| write!(w, "{link:?}"))
                || contains_any(
                    &["connection error received", "stream error received"],
                    |w| write!(w, "{link}"),
                )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RetrySafety;

    /// Read by its text, tokio's `Elapsed` is a timeout in every build:
    /// this crate has no `tokio` feature that would change the answer.
    #[tokio::test(start_paused = true)]
    async fn tokio_elapsed_is_a_timeout_whatever_the_features() {
        let elapsed = tokio::time::timeout(
            std::time::Duration::from_millis(1),
            std::future::pending::<()>(),
        )
        .await
        .unwrap_err();
        let verdict = Classifier::new(&[]).classify(&elapsed);
        assert_eq!(verdict.cause(), Cause::Timeout);
        assert_eq!(verdict.safety(), RetrySafety::IdempotentOnly);
    }
}
