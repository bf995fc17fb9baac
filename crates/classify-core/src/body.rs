//! What a request's body was when it was dispatched, and an error that
//! carries it, so that a peer's `GOAWAY` can be judged by it.

use std::error::Error;
use std::fmt;

/// What a request carried after its head when the client dispatched it,
/// as hyper decides it: `Body::is_end_stream()` at that moment.
///
/// See [`Verdict::for_body`](crate::Verdict::for_body).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RequestBody {
    /// Nothing: the HEADERS frame ended the stream. Also the answer to give
    /// when the body is not known: it is the cautious one.
    #[default]
    Empty,
    /// A body followed the head (`is_end_stream()` was false).
    NonEmpty,
}

impl RequestBody {
    /// From a body's `is_end_stream()` (http-body 0.4 or 1).
    pub const fn from_end_stream(is_end_stream: bool) -> Self {
        if is_end_stream {
            RequestBody::Empty
        } else {
            RequestBody::NonEmpty
        }
    }
}

/// An error of a request, marked with what the request's body was when it
/// was dispatched.
///
/// Classification looks for this mark anywhere in a chain and refines its
/// verdict with it ([`Verdict::for_body`](crate::Verdict::for_body)), so code
/// that only passes errors along (an SDK's connector, a middleware) can let
/// the classifier downstream know that a peer's `GOAWAY` hit a request with
/// a body, which the server never received whole. It prints as the error
/// it wraps, whose `source()` it is.
///
/// ```
/// use classify_core::{Classifier, RequestBody, WithRequestBody};
///
/// let err = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
/// let marked = WithRequestBody::new(err, RequestBody::NonEmpty);
/// assert_eq!(marked.body(), RequestBody::NonEmpty);
/// assert_eq!(marked.to_string(), "broken pipe");
/// // A lost connection is judged the same either way; a peer's GOAWAY is not.
/// let verdict = Classifier::new(&[]).classify(&marked);
/// assert!(!verdict.permits_retry(false));
/// ```
pub struct WithRequestBody {
    body: RequestBody,
    source: Box<dyn Error + Send + Sync>,
}

impl WithRequestBody {
    /// Marks `err` as an error of a request whose body was `body`.
    pub fn new(err: impl Into<Box<dyn Error + Send + Sync>>, body: RequestBody) -> Self {
        WithRequestBody {
            body,
            source: err.into(),
        }
    }

    /// What the request's body was.
    pub fn body(&self) -> RequestBody {
        self.body
    }

    /// The error it marks.
    pub fn into_inner(self) -> Box<dyn Error + Send + Sync> {
        self.source
    }
}

impl fmt::Debug for WithRequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithRequestBody")
            .field("body", &self.body)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for WithRequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.source, f)
    }
}

impl Error for WithRequestBody {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.source)
    }
}
