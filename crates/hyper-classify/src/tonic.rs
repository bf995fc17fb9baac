//! Transparent retries for tonic 0.14 channels (hyper 1).
//!
//! tonic retries nothing: a unary RPC that a draining server refused with a
//! `GOAWAY` or `REFUSED_STREAM` reaches the caller as a failed `Status`
//! (`Internal`, `Unavailable` or `Unknown`, depending on tonic's features),
//! although the server never ran it. gRPC's own
//! retry design (gRFC A6) retries such RPCs transparently. [`GrpcRetryLayer`]
//! does that for a tonic `Channel`, with hyper-classify's retry policy:
//!
//! - An RPC the server never processed (a refusal, a request hyper handed
//!   back unsent) is sent again at once, the first time, whatever the
//!   method; later refusals back off and draw on the retry budget, at most
//!   [`max_refusals`](crate::retry::RetryConfig::max_refusals) times.
//! - An RPC that may have been processed (a lost connection, a timeout) is
//!   retried only if its method was declared idempotent
//!   ([`idempotent_methods`](GrpcRetryLayer::idempotent_methods), or the
//!   [`Idempotent`] extension on one request), within `max_attempts`.
//! - A gRPC status in a response is the server's answer, not retried.
//!
//! Only a request whose body the client has whole when the call starts can
//! be sent again: a unary or server-streaming RPC's message. A client- or
//! bidi-streaming RPC is sent once, as without the layer.
//!
//! Errors reach tonic as the channel's own error, so `Status` codes are the
//! ones tonic gives without the layer; when the policy stopped for a
//! reason of its own (its deadline), the error is the [`RetryError`].
//!
//! ```
//! use hyper_classify::tonic::{GrpcRetry, GrpcRetryLayer};
//! use tower::ServiceBuilder;
//!
//! /// `channel` is a `tonic::transport::Channel`, say
//! /// `Endpoint::from_static("http://127.0.0.1:50051").connect_lazy()`;
//! /// a generated client takes the result: `OrdersClient::new(with_retries(channel))`.
//! fn with_retries<C>(channel: C) -> GrpcRetry<C> {
//!     let retries = GrpcRetryLayer::new().idempotent_methods(["/orders.Orders/Get"]);
//!     ServiceBuilder::new().layer(retries).service(channel)
//! }
//! ```
//!
//! tonic 0.11 and earlier run on hyper 0.14 and `http-body` 0.4, which this
//! layer does not speak; their errors classify all the same
//! (`classify(&status)` reads a `Status`'s source).

use std::collections::{HashSet, VecDeque};
use std::error::Error;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ::tonic::body::Body as TonicBody;
use ::tonic::Status;
use bytes::{Buf, Bytes, BytesMut};
use http::Request;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use tower_layer::Layer;
use tower_service::Service;

use crate::retry::{self, ClassifyRetry, Idempotent, RetryConfig, RetryError, RetryPolicy};
use classify_h2_04::retry::{HttpReplay, ReplayBody};

/// The error type of a [`GrpcRetry`] service: tonic's own boxed error.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// The largest request body kept for a replay, by default: 4 MiB, tonic's
/// default largest message.
const DEFAULT_REPLAY_LIMIT: usize = 4 * 1024 * 1024;

/// A `Layer` that retries RPCs over a tonic 0.14 `Channel` (or any service
/// of `http::Request<tonic::body::Body>`): see the [module docs](self).
///
/// ```
/// use hyper_classify::tonic::GrpcRetryLayer;
///
/// let layer = GrpcRetryLayer::new().idempotent_methods(["/orders.Orders/Get"]);
/// assert!(layer.is_idempotent("/orders.Orders/Get"));
/// assert!(!layer.is_idempotent("/orders.Orders/Place"));
/// assert_eq!(layer.policy().stats().requests, 0);
/// ```
#[derive(Clone, Debug)]
pub struct GrpcRetryLayer {
    policy: RetryPolicy,
    idempotent: Arc<HashSet<String>>,
    replay_limit: usize,
}

impl GrpcRetryLayer {
    /// The layer with [`default_config`](Self::default_config).
    pub fn new() -> Self {
        let policy = retry::policy(GrpcRetryLayer::default_config())
            .expect("the default configuration is valid");
        GrpcRetryLayer::with_policy(policy)
    }

    /// The layer retrying with `policy` (its clones share stats and budget).
    pub fn with_policy(policy: RetryPolicy) -> Self {
        GrpcRetryLayer {
            policy,
            idempotent: Arc::default(),
            replay_limit: DEFAULT_REPLAY_LIMIT,
        }
    }

    /// The retry policy's defaults, without the per-attempt and handover
    /// timeouts: a gRPC call carries its own deadline (`grpc-timeout`), and
    /// tonic's channel queues a request in a buffer that would still send
    /// an attempt given up there.
    ///
    /// ```
    /// let config = hyper_classify::tonic::GrpcRetryLayer::default_config();
    /// assert_eq!(config.max_attempts_value(), 3);
    /// ```
    pub fn default_config() -> RetryConfig {
        RetryConfig::default()
            .attempt_timeout(None)
            .handover_timeout(None)
    }

    /// Declares these methods (paths, `/package.Service/Method`) idempotent:
    /// their RPCs are retried even after an error that leaves in doubt
    /// whether the server ran them.
    pub fn idempotent_methods<I, P>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        let mut idempotent = (*self.idempotent).clone();
        idempotent.extend(paths.into_iter().map(Into::into));
        self.idempotent = Arc::new(idempotent);
        self
    }

    /// Whether the method at `path` was declared idempotent.
    pub fn is_idempotent(&self, path: &str) -> bool {
        self.idempotent.contains(path)
    }

    /// Keeps request bodies of up to `bytes` for replays (4 MiB by
    /// default); an RPC with a larger message is sent once.
    pub fn replay_limit(mut self, bytes: usize) -> Self {
        self.replay_limit = bytes;
        self
    }

    /// The policy, for its [`stats`](RetryPolicy::stats).
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
}

impl Default for GrpcRetryLayer {
    fn default() -> Self {
        GrpcRetryLayer::new()
    }
}

impl<S> Layer<S> for GrpcRetryLayer {
    type Service = GrpcRetry<S>;

    fn layer(&self, inner: S) -> GrpcRetry<S> {
        let retry = retry::ClassifyRetryLayer::new(self.policy.clone(), HttpReplay);
        GrpcRetry {
            retry: retry.layer(ToTonic(inner)),
            idempotent: self.idempotent.clone(),
            replay_limit: self.replay_limit,
        }
    }
}

/// A service that retries RPCs; made by [`GrpcRetryLayer`].
#[derive(Clone, Debug)]
pub struct GrpcRetry<S> {
    retry: ClassifyRetry<ToTonic<S>, HttpReplay>,
    idempotent: Arc<HashSet<String>>,
    replay_limit: usize,
}

impl<S> GrpcRetry<S> {
    /// The policy, for its [`stats`](RetryPolicy::stats).
    pub fn policy(&self) -> &RetryPolicy {
        self.retry.policy()
    }
}

impl<S, ResBody> Service<Request<TonicBody>> for GrpcRetry<S>
where
    S: Service<Request<TonicBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Error + Send + Sync + 'static,
    ResBody: Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Every attempt waits for its own clone of the inner service.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<TonicBody>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        if self.idempotent.contains(parts.uri.path()) {
            parts.extensions.insert(Idempotent);
        }
        let (mut retry, limit) = (self.retry.clone(), self.replay_limit);
        Box::pin(async move {
            let body = GrpcBody::read(body, limit).await;
            retry
                .call(Request::from_parts(parts, body))
                .await
                .map_err(into_tonic_error)
        })
    }
}

/// The last attempt's own error where there is one, so tonic maps it to
/// the code it would give without the layer.
fn into_tonic_error<E: Error + Send + Sync + 'static>(err: RetryError<E>) -> BoxError {
    if err.last_error().is_none() {
        return Box::new(err);
    }
    Box::new(err.into_last_error().expect("checked above"))
}

/// Hands each attempt to the inner service as tonic's body.
#[derive(Clone, Debug)]
struct ToTonic<S>(S);

impl<S: Service<Request<TonicBody>>> Service<Request<GrpcBody>> for ToTonic<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<GrpcBody>) -> S::Future {
        self.0.call(request.map(TonicBody::new))
    }
}

/// A request body as the layer holds it: whole (it can be sent again), or
/// a stream still being written (sent once).
#[derive(Debug)]
struct GrpcBody(Kind);

#[derive(Debug)]
enum Kind {
    Whole(Full<Bytes>),
    Streaming(Streaming),
}

/// What was read of a streaming body, then the rest of it.
#[derive(Debug)]
struct Streaming {
    read: VecDeque<Frame<Bytes>>,
    failed: Option<Status>,
    rest: TonicBody,
}

impl GrpcBody {
    /// Reads what `body` has ready now, up to `limit` bytes: all of it
    /// (tonic encodes a unary request's message before the call) or what
    /// came before it would have to wait.
    async fn read(mut body: TonicBody, limit: usize) -> GrpcBody {
        let mut read = VecDeque::new();
        let mut size = 0;
        let failed = loop {
            if body.is_end_stream() {
                return GrpcBody::whole(read);
            }
            // One poll, never a wait: a stream that is not ready is a
            // stream the caller is still writing.
            match poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await {
                Poll::Ready(None) => return GrpcBody::whole(read),
                Poll::Ready(Some(Ok(frame))) => {
                    let trailers = frame.is_trailers();
                    size += frame.data_ref().map_or(0, Buf::remaining);
                    read.push_back(frame);
                    if trailers || size > limit {
                        break None;
                    }
                }
                Poll::Ready(Some(Err(status))) => break Some(status),
                Poll::Pending => break None,
            }
        };
        GrpcBody(Kind::Streaming(Streaming {
            read,
            failed,
            rest: body,
        }))
    }

    /// The data frames `read`, joined.
    fn whole(read: VecDeque<Frame<Bytes>>) -> GrpcBody {
        let mut data = BytesMut::new();
        for frame in read {
            if let Ok(chunk) = frame.into_data() {
                data.extend_from_slice(&chunk);
            }
        }
        GrpcBody(Kind::Whole(Full::new(data.freeze())))
    }
}

impl ReplayBody for GrpcBody {
    fn try_copy_body(&self) -> Option<Self> {
        match &self.0 {
            Kind::Whole(full) => Some(GrpcBody(Kind::Whole(full.clone()))),
            Kind::Streaming(_) => None,
        }
    }
}

impl Body for GrpcBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        match &mut self.0 {
            Kind::Whole(full) => Pin::new(full)
                .poll_frame(cx)
                .map_err(|never| match never {}),
            Kind::Streaming(streaming) => {
                if let Some(frame) = streaming.read.pop_front() {
                    return Poll::Ready(Some(Ok(frame)));
                }
                if let Some(status) = streaming.failed.take() {
                    return Poll::Ready(Some(Err(status)));
                }
                Pin::new(&mut streaming.rest).poll_frame(cx)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Whole(full) => full.is_end_stream(),
            Kind::Streaming(streaming) => {
                streaming.read.is_empty()
                    && streaming.failed.is_none()
                    && streaming.rest.is_end_stream()
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Whole(full) => full.size_hint(),
            Kind::Streaming(_) => SizeHint::default(),
        }
    }
}
