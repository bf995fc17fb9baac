//! Retrying hyper 1 requests: how an `http::Request` (http 1) is copied.
//!
//! ```
//! use classify_retry::{RetryConfig, ClassifyRetryLayer, RetryPolicy};
//! use classify_core::Classifier;
//! use classify_h2_04::retry::HttpReplay;
//! use classify_h2_04::Hyper1;
//!
//! let policy = RetryPolicy::new(RetryConfig::default(), Classifier::new(&[&Hyper1])).unwrap();
//! let layer = ClassifyRetryLayer::new(policy, HttpReplay);
//! # let _ = layer;
//! ```

use std::pin::Pin;
use std::task::{Context, Poll};

use classify_retry::{copy_http_request_head, http_request_facts};
use classify_retry::{HandoverMarker, Replay, RequestFacts};
use http::Request;
use http_body_util::{Empty, Full};
use hyper::body::{Body, Frame, SizeHint};

/// A request body that can be sent again.
pub trait ReplayBody: Sized {
    /// A fresh copy of the body, or `None` if it cannot be replayed.
    fn try_copy_body(&self) -> Option<Self>;
}

impl<D: Clone> ReplayBody for Full<D> {
    fn try_copy_body(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl<D> ReplayBody for Empty<D> {
    fn try_copy_body(&self) -> Option<Self> {
        Some(Empty::new())
    }
}

impl ReplayBody for String {
    fn try_copy_body(&self) -> Option<Self> {
        Some(self.clone())
    }
}

/// A body that is never replayed (a stream, say): requests with it are sent
/// once, and a retryable error says the body was why it was not retried.
#[derive(Debug)]
pub struct NotReplayable<B>(pub B);

impl<B> ReplayBody for NotReplayable<B> {
    fn try_copy_body(&self) -> Option<Self> {
        None
    }
}

impl<B: Body + Unpin> Body for NotReplayable<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

/// Copies `http::Request<B>` (http 1) for a retry.
#[derive(Clone, Copy, Debug, Default)]
pub struct HttpReplay;

impl<B: ReplayBody + Body> Replay<Request<B>> for HttpReplay {
    fn facts(&self, req: &Request<B>) -> RequestFacts {
        http_request_facts!(req, end_stream = req.body().is_end_stream())
    }

    fn try_copy_request(&self, req: &Request<B>) -> Option<Request<B>> {
        let mut copy = copy_http_request_head!(req => Request::new(req.body().try_copy_body()?));
        *copy.extensions_mut() = req.extensions().clone();
        Some(copy)
    }

    fn mark(&self, req: &mut Request<B>, marker: HandoverMarker) {
        req.extensions_mut().insert(marker);
    }
}
