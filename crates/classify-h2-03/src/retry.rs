//! Retrying hyper 0.14 requests: how an `http::Request` (http 0.2) is
//! copied, and a tower 0.4 retry `Policy`.
//!
//! ```
//! use classify_core::retry::{RetryConfig, RetryLayer, RetryPolicy};
//! use classify_core::Classifier;
//! use classify_h2_03::retry::HttpReplay;
//! use classify_h2_03::Legacy;
//!
//! let policy = RetryPolicy::new(RetryConfig::default(), Classifier::new(&[&Legacy])).unwrap();
//! let layer = RetryLayer::new(policy, HttpReplay);
//! # let _ = layer;
//! ```

use std::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use classify_core::retry::{
    ClassifyPolicy, HandoverMarker, Idempotent, Replay, RequestFacts, RetryPolicy,
};
use classify_core::{copy_http_request_head, http_request_facts};
use http::Request;
use http_body::{Body as HttpBody, Empty, Full, SizeHint};

/// A request body that can be sent again.
pub trait ReplayBody: Sized {
    /// A fresh copy of the body, or `None` if it cannot be replayed.
    fn try_replay(&self) -> Option<Self>;
}

/// Only an empty `hyper::Body` replays: a full one's bytes are not reachable.
/// Use `http_body::Full` for bodies that should be retried.
impl ReplayBody for hyper::Body {
    fn try_replay(&self) -> Option<Self> {
        (HttpBody::size_hint(self).exact() == Some(0)).then(hyper::Body::empty)
    }
}

impl<D: Clone> ReplayBody for Full<D> {
    fn try_replay(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl<D> ReplayBody for Empty<D> {
    fn try_replay(&self) -> Option<Self> {
        Some(Empty::new())
    }
}

/// A body that is never replayed (a stream, say): requests with it are sent
/// once, and a retryable error says the body was why it was not retried.
#[derive(Debug)]
pub struct NotReplayable<B>(pub B);

impl<B> ReplayBody for NotReplayable<B> {
    fn try_replay(&self) -> Option<Self> {
        None
    }
}

impl<B: HttpBody + Unpin> HttpBody for NotReplayable<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_data(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<B::Data, B::Error>>> {
        Pin::new(&mut self.0).poll_data(cx)
    }

    fn poll_trailers(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<http::HeaderMap>, B::Error>> {
        Pin::new(&mut self.0).poll_trailers(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

/// Copies `http::Request<B>` (http 0.2) for a retry.
#[derive(Clone, Copy, Debug, Default)]
pub struct HttpReplay;

impl<B: ReplayBody + HttpBody> Replay<Request<B>> for HttpReplay {
    fn facts(&self, req: &Request<B>) -> RequestFacts {
        http_request_facts!(req, end_stream = req.body().is_end_stream())
    }

    fn try_replay(&self, req: &Request<B>) -> Option<Request<B>> {
        let mut copy = copy_http_request_head!(req => Request::new(req.body().try_replay()?));
        // http 0.2's extensions cannot be cloned; keep the marker that matters here.
        if req.extensions().get::<Idempotent>().is_some() {
            copy.extensions_mut().insert(Idempotent);
        }
        Some(copy)
    }

    fn mark(&self, req: &mut Request<B>, marker: HandoverMarker) {
        req.extensions_mut().insert(marker);
    }
}

/// A tower 0.4 retry `Policy` (for `tower::retry::Retry` 0.4) that decides
/// with a [`RetryPolicy`]: the tower 0.5 [`ClassifyPolicy`] for the hyper
/// 0.14 generation of tower.
#[derive(Clone, Debug)]
pub struct LegacyPolicy(ClassifyPolicy<HttpReplay>);

impl LegacyPolicy {
    /// Decides with `policy`.
    pub fn new(policy: RetryPolicy) -> Self {
        LegacyPolicy(ClassifyPolicy::new(policy, HttpReplay))
    }

    /// The policy, for its stats.
    pub fn policy(&self) -> &RetryPolicy {
        self.0.policy()
    }
}

impl<B, Res, E> tower::retry::Policy<Request<B>, Res, E> for LegacyPolicy
where
    B: ReplayBody + HttpBody,
    E: Error + 'static,
{
    type Future = Pin<Box<dyn Future<Output = Self> + Send>>;

    fn retry(&self, req: &Request<B>, result: Result<&Res, &E>) -> Option<Self::Future> {
        let Err(err) = result else {
            self.policy().record_success();
            return None;
        };
        let mut next = self.clone();
        let delay = next.0.retry_after(req, err)?;
        Some(Box::pin(async move {
            tokio::time::sleep(delay).await;
            next
        }))
    }

    fn clone_request(&self, req: &Request<B>) -> Option<Request<B>> {
        self.0.copy_request(req)
    }
}
