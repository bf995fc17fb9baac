//! tower adapters: a retrying `Service` and `Layer`, and a retry `Policy`
//! for tower's own `Retry`.
//!
//! `Service` and `Layer` come from tower-service and tower-layer 0.3, which
//! tower 0.4 and 0.5 share, so [`ClassifyRetry`] wraps a hyper 0.14 `Client` and a
//! hyper-util `Client` alike. All that differs between the stacks is how a
//! request is copied for a retry: the [`Replay`] each backend crate provides.

use std::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower::ServiceExt;
use tower_layer::Layer;
use tower_service::Service;

use super::{Decision, HandoverMarker, RequestFacts, RetryError, RetryPolicy, RetryState};

/// How to read and copy one kind of request: implemented by each backend for
/// its `http::Request<B>`.
pub trait Replay<Req>: Clone {
    /// The facts retries are decided on (method, `Idempotency-Key`, the
    /// [`Idempotent`](super::Idempotent) marker, what follows the head).
    /// Whether the body replays is not asked here: the adapters learn it
    /// from [`try_copy_request`](Self::try_copy_request), so a body is not copied just
    /// to find out.
    fn facts(&self, req: &Req) -> RequestFacts;

    /// A copy of `req` to send again, or `None` if its body cannot be
    /// replayed (now: a body that replays only so often may say `None`
    /// later, and the request then stops with
    /// [`StopReason::BodyNotReplayable`](super::StopReason::BodyNotReplayable)).
    fn try_copy_request(&self, req: &Req) -> Option<Req>;

    /// Puts `marker` into the attempt's request (its extensions), so the
    /// [`ClassifyRetryLayer`] can tell an attempt that never left the client (see
    /// [`RetryConfig::handover_timeout`](super::RetryConfig::handover_timeout)).
    /// The default drops it: every attempt then counts as handed over, and
    /// none is given up early.
    fn mark(&self, req: &mut Req, marker: HandoverMarker) {
        let _ = (req, marker);
    }
}

/// A `Layer` that retries requests with a [`RetryPolicy`]; its errors are
/// [`RetryError`]s, which say why the last error was not retried.
#[derive(Clone, Debug)]
pub struct ClassifyRetryLayer<R> {
    policy: RetryPolicy,
    replay: R,
}

impl<R> ClassifyRetryLayer<R> {
    /// Retries with `policy`, copying requests with `replay`.
    pub fn new(policy: RetryPolicy, replay: R) -> Self {
        ClassifyRetryLayer { policy, replay }
    }
}

impl<S, R: Clone> Layer<S> for ClassifyRetryLayer<R> {
    type Service = ClassifyRetry<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        ClassifyRetry {
            inner,
            policy: self.policy.clone(),
            replay: self.replay.clone(),
        }
    }
}

/// A `Service` that retries requests with a [`RetryPolicy`]. Made by
/// [`ClassifyRetryLayer`].
#[derive(Clone, Debug)]
pub struct ClassifyRetry<S, R> {
    inner: S,
    policy: RetryPolicy,
    replay: R,
}

impl<S, R> ClassifyRetry<S, R> {
    /// The policy, for its [`stats`](RetryPolicy::stats).
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
}

impl<S, R, Req> Service<Req> for ClassifyRetry<S, R>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send + 'static,
    S::Error: Error + Send + Sync + 'static,
    R: Replay<Req> + Send + Sync + 'static,
    Req: Send + 'static,
{
    type Response = S::Response;
    type Error = RetryError<S::Error>;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Every attempt waits for its own clone of the inner service.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        // One copy kept aside, from which each retry is copied again; it is
        // also how the policy learns whether the body replays.
        let template = self.replay.try_copy_request(&req);
        let facts = self.replay.facts(&req).replayable(template.is_some());
        let (policy, replay, inner) =
            (self.policy.clone(), self.replay.clone(), self.inner.clone());
        let mut first = Some(req);
        Box::pin(async move {
            policy
                .run(facts, move |marker| {
                    let mut req = first
                        .take()
                        .or_else(|| template.as_ref().and_then(|t| replay.try_copy_request(t)))?;
                    replay.mark(&mut req, marker);
                    Some(inner.clone().oneshot(req))
                })
                .await
        })
    }
}

/// A tower retry `Policy` that decides with a [`RetryPolicy`]: for tower
/// 0.5's `Retry` with the feature `tower-05`, for tower 0.4's with
/// `tower-04`, whichever hyper the requests are for.
///
/// tower's `Retry` hands the last error back unchanged, so unlike
/// [`ClassifyRetryLayer`] this cannot mark why it stopped: read the policy's
/// [`stats`](RetryPolicy::stats) or its `tracing` events. A request's clock
/// (for the deadline) starts when tower first copies it, just before its
/// first attempt, as the layer's starts at the call. It never sees a request
/// whose body cannot be copied (tower does not retry those).
#[derive(Clone, Debug)]
pub struct ClassifyPolicy<R> {
    policy: RetryPolicy,
    replay: R,
    state: Option<RetryState>,
    began: Began,
}

/// When tower first copied the current request: its clock starts then, as
/// the layer's starts at the call. Nanoseconds since the policy was made,
/// plus one (0: not yet), in an atomic because tower 0.4 copies requests
/// through `&self`; each copy of the policy has its own.
#[derive(Debug, Default)]
struct Began(AtomicU64);

impl Began {
    fn set(&self, epoch: Instant, now: Instant) {
        let since = now.saturating_duration_since(epoch).as_nanos();
        let mark = u64::try_from(since).unwrap_or(u64::MAX - 1) + 1;
        self.0.store(mark, Ordering::Relaxed);
    }

    fn get(&self, epoch: Instant) -> Option<Instant> {
        let since = self.0.load(Ordering::Relaxed).checked_sub(1)?;
        epoch.checked_add(Duration::from_nanos(since))
    }
}

impl Clone for Began {
    fn clone(&self) -> Self {
        Began(AtomicU64::new(self.0.load(Ordering::Relaxed)))
    }
}

impl<R> ClassifyPolicy<R> {
    /// Decides with `policy`, copying requests with `replay`.
    pub fn new(policy: RetryPolicy, replay: R) -> Self {
        ClassifyPolicy {
            policy,
            replay,
            state: None,
            began: Began::default(),
        }
    }

    /// The policy, for its [`stats`](RetryPolicy::stats).
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// A copy of `req` for a retry. tower calls this once per request before
    /// its first attempt (counted then, for the budget) and once per retry.
    pub fn copy_request<Req>(&self, req: &Req) -> Option<Req>
    where
        R: Replay<Req>,
    {
        // tower copies a request before its first attempt on the service's
        // own policy, which never decides (no state), and before each retry
        // on the request's copy, which has.
        if self.state.is_none() {
            self.policy.record_request();
            self.began.set(self.policy.created(), Instant::now());
        }
        self.replay.try_copy_request(req)
    }

    /// How long to wait before retrying `req` after `err`, or `None` to stop.
    pub fn retry_after<Req>(&mut self, req: &Req, err: &(dyn Error + 'static)) -> Option<Duration>
    where
        R: Replay<Req>,
    {
        let (policy, replay, began) = (&self.policy, &self.replay, &self.began);
        let state = self.state.get_or_insert_with(|| {
            let began = began.get(policy.created()).unwrap_or_else(Instant::now);
            policy.start_at(replay.facts(req), began)
        });
        match policy.on_error(state, err) {
            Decision::Retry { delay, .. } => Some(delay),
            Decision::Stop { .. } => None,
        }
    }
}

#[cfg(feature = "tower-05")]
impl<R, Req, Res, E> tower::retry::Policy<Req, Res, E> for ClassifyPolicy<R>
where
    R: Replay<Req>,
    E: Error + 'static,
{
    type Future = tokio::time::Sleep;

    fn retry(&mut self, req: &mut Req, result: &mut Result<Res, E>) -> Option<Self::Future> {
        let Err(err) = result else {
            self.policy.record_success();
            return None;
        };
        self.retry_after(req, err).map(tokio::time::sleep)
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        self.copy_request(req)
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::RetryConfig;
    use crate::{Classifier, RequestBody};

    /// A request that carries what [`Replay::mark`] gives it, as an
    /// `http::Request` carries extensions.
    struct Request(Option<HandoverMarker>);

    #[derive(Clone)]
    struct PostReplay;

    impl Replay<Request> for PostReplay {
        fn facts(&self, _: &Request) -> RequestFacts {
            RequestFacts::new("POST", false).body(RequestBody::NonEmpty)
        }

        fn try_copy_request(&self, _: &Request) -> Option<Request> {
            Some(Request(None))
        }

        fn mark(&self, req: &mut Request, marker: HandoverMarker) {
            req.0 = Some(marker);
        }
    }

    /// A layer with default settings around `respond`, which is given the
    /// attempt's number and request; returns the layer and the attempts.
    #[allow(clippy::type_complexity)]
    fn layer_around<F, Fut>(
        respond: F,
    ) -> (
        ClassifyRetry<
            impl Service<Request, Response = &'static str, Error = io::Error, Future: Send>
                + Clone
                + Send
                + 'static,
            PostReplay,
        >,
        Arc<AtomicU32>,
    )
    where
        F: Fn(u32, Request) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Result<&'static str, io::Error>> + Send + 'static,
    {
        let policy = RetryPolicy::new(RetryConfig::default(), Classifier::new(&[])).unwrap();
        let attempts = Arc::new(AtomicU32::new(0));
        let counted = attempts.clone();
        let service = tower::service_fn(move |req: Request| {
            respond.clone()(counted.fetch_add(1, Ordering::SeqCst), req)
        });
        (
            ClassifyRetryLayer::new(policy, PostReplay).layer(service),
            attempts,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_the_client_still_holds_is_sent_again_after_the_handover_timeout() {
        // The first attempt keeps its request and never completes: a request
        // lost in a closed connection's dispatch queue.
        let (mut retry, attempts) = layer_around(|attempt, req| async move {
            if attempt == 0 {
                let _held = req;
                std::future::pending::<()>().await;
            }
            Ok("done")
        });
        let started = tokio::time::Instant::now();
        let answer = retry.call(Request(None)).await.unwrap();
        assert_eq!(answer, "done");
        assert_eq!(attempts.load(Ordering::SeqCst), 2, "a POST sent again");
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        let stats = retry.policy().stats();
        assert_eq!((stats.handover_timeouts, stats.retries_not_sent), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_handed_over_waits_for_its_answer() {
        // The request is handed over (its marker dropped) and answered late.
        let (mut retry, attempts) = layer_around(|_, req| async move {
            drop(req);
            tokio::time::sleep(Duration::from_secs(12)).await;
            Ok("late")
        });
        assert_eq!(retry.call(Request(None)).await.unwrap(), "late");
        assert_eq!(attempts.load(Ordering::SeqCst), 1, "sent once");
        assert_eq!(retry.policy().stats().handover_timeouts, 0);
    }

    /// A body that can be copied once, then no more.
    #[derive(Clone)]
    struct ReplaysOnce(Arc<AtomicU32>);

    impl Replay<Request> for ReplaysOnce {
        fn facts(&self, _: &Request) -> RequestFacts {
            RequestFacts::new("PUT", false)
        }

        fn try_copy_request(&self, _: &Request) -> Option<Request> {
            (self.0.fetch_add(1, Ordering::SeqCst) == 0).then_some(Request(None))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_replaying_stops_the_retries_without_a_panic() {
        let policy = RetryPolicy::new(RetryConfig::default(), Classifier::new(&[])).unwrap();
        let reset = || io::Error::from(io::ErrorKind::ConnectionReset);
        let service = tower::service_fn(move |_: Request| async move { Err::<(), _>(reset()) });
        let mut retry = ClassifyRetryLayer::new(policy, ReplaysOnce(Arc::default())).layer(service);
        let err = retry.call(Request(None)).await.unwrap_err();
        // The copy kept aside was the one copy: the retry finds none.
        assert_eq!(err.reason(), super::super::StopReason::BodyNotReplayable);
        assert_eq!(err.attempts(), 1, "{err}");
        let last = err.last_error().map(io::Error::kind);
        assert_eq!(last, Some(io::ErrorKind::ConnectionReset));
    }

    #[cfg(feature = "tower-05")]
    #[tokio::test(start_paused = true)]
    async fn a_tower_policys_deadline_counts_from_the_call_as_the_layers_does() {
        let config = RetryConfig::default()
            .deadline(Duration::from_secs(1))
            .startup_grace(Duration::ZERO)
            .backoff(Duration::ZERO);
        let policy = RetryPolicy::new(config, Classifier::new(&[])).unwrap();
        let attempts = Arc::new(AtomicU32::new(0));
        let counted = attempts.clone();
        // The first attempt takes 2 s, past the deadline, and then fails.
        let service = tower::service_fn(move |_: Request| {
            counted.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                Err::<(), _>(io::Error::from(io::ErrorKind::ConnectionRefused))
            }
        });
        let classify = ClassifyPolicy::new(policy.clone(), PostReplay);
        let mut retry = tower::retry::Retry::new(classify, service);
        for _ in 0..2 {
            let err = tower::ServiceExt::ready(&mut retry)
                .await
                .unwrap()
                .call(Request(None))
                .await;
            assert!(err.is_err());
        }
        assert_eq!(attempts.load(Ordering::SeqCst), 2, "one attempt a request");
        assert_eq!(policy.stats().requests, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_the_client_never_hands_over_is_given_up_after_max_refusals() {
        let (mut retry, attempts) = layer_around(|_, req| async move {
            let _held = req;
            std::future::pending::<()>().await;
            Ok("never")
        });
        let err = retry.call(Request(None)).await.unwrap_err();
        assert_eq!(
            err.reason(),
            super::super::StopReason::RefusalsExhausted,
            "{err}"
        );
        // The first send and `max_refusals` (10) more.
        assert_eq!(attempts.load(Ordering::SeqCst), 11);
    }
}
