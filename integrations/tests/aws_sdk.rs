//! hyper-classify in the AWS SDK's real retry loop.
//!
//! Every test runs an operation through aws-smithy-runtime's orchestrator
//! (the code path every generated SDK client takes), with the SDK's own
//! standard retry strategy and its default classifiers, against a server
//! that fails the first request one exact way. Two kinds of HTTP client:
//!
//! - the SDK's own (`aws-smithy-http-client`): its hyper 0.14 client over
//!   h2c, and its hyper 1 client over TLS (it offers HTTP/2 only by ALPN);
//! - a fork's: a connector that sends with its own hyper client and maps
//!   errors with a `to_connector_error` of our choosing: the shipped one that
//!   downcast to the wrong h2, or hyper-classify's (the documented patch).

mod support;

use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_async::rt::sleep::TokioSleep;
use aws_smithy_runtime::client::orchestrator::operation::Operation;
use aws_smithy_runtime::client::retries::classifiers::{
    HttpStatusCodeClassifier, TransientErrorClassifier,
};
use aws_smithy_runtime::client::retries::{RetryPartition, TokenBucket};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{
    http_client_fn, HttpConnector, HttpConnectorFuture, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse, OrchestratorError};
use aws_smithy_runtime_api::client::result::{ConnectorError, SdkError};
use aws_smithy_runtime_api::client::retries::classifiers::{
    ClassifyRetry, RetryAction, RetryClassifierPriority, SharedRetryClassifier,
};
use aws_smithy_runtime_api::client::runtime_plugin::{SharedRuntimePlugin, StaticRuntimePlugin};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::Layer;
use aws_smithy_types::retry::{ErrorKind, RetryConfig};
use aws_smithy_types::timeout::TimeoutConfig;
use h2_frame_server::Reason as Wire;
use hyper_classify::aws::{RefusalRetries, TransportErrorClassifier};
use hyper_classify::{Chain, Reason, RequestBody};

use support::{assert_go_away, assert_reset, First, Server};

/// The hyper stacks the SDK ships clients for.
#[derive(Clone, Copy, Debug)]
enum Stack {
    /// hyper 0.14, h2 0.3.
    Legacy,
    /// hyper 1, hyper-util, h2 0.4.
    Modern,
}

const STACKS: [Stack; 2] = [Stack::Legacy, Stack::Modern];

// ---------------------------------------------------------------------------
// HTTP clients

/// The SDK's own HTTP client for `stack`, talking HTTP/2 to `server`.
fn sdk_client(stack: Stack, server: &Server) -> SharedHttpClient {
    match stack {
        Stack::Legacy => {
            let mut hyper = hyper_0_14::Client::builder();
            hyper.http2_only(true);
            aws_smithy_http_client::hyper_014::HyperClientBuilder::new()
                .hyper_builder(hyper)
                .build(hyper_0_14::client::HttpConnector::new())
        }
        Stack::Modern => {
            use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
            let trust = tls::TrustStore::empty()
                .with_native_roots(false)
                .with_pem_certificate(server.certificate_pem().as_bytes().to_vec());
            let context = tls::TlsContext::builder()
                .with_trust_store(trust)
                .build()
                .expect("a TLS context");
            aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
                .tls_context(context)
                .build_https()
        }
    }
}

/// The server each stack's SDK client can reach over HTTP/2.
async fn server_for(stack: Stack, first: First) -> Server {
    match stack {
        Stack::Legacy => Server::h2c(first).await,
        Stack::Modern => Server::h2_tls(first).await,
    }
}

/// A fork's `to_connector_error` for hyper 0.14.
type LegacyMapping = fn(hyper_0_14::Error, RequestBody) -> ConnectorError;
/// A fork's mapping for hyper 1: the part of `downcast_error` after the
/// SDK's own checks (its timeouts, DNS errors and ready-made connector
/// errors, which do not occur here).
type ModernMapping = fn(BoxError, RequestBody) -> ConnectorError;

/// How a fork maps hyper errors.
#[derive(Clone, Copy)]
enum Mapping {
    Legacy(LegacyMapping),
    Modern(ModernMapping),
}

impl Mapping {
    /// hyper-classify's, as the documented patch puts it.
    fn patched(stack: Stack) -> Mapping {
        match stack {
            Stack::Legacy => Mapping::Legacy(hyper_classify::aws::to_connector_error_with_body),
            Stack::Modern => Mapping::Modern(hyper_classify::aws::to_connector_error_with_body),
        }
    }

    /// One that downcasts to the other stack's h2: the bug as shipped for
    /// hyper 0.14, and what a hyper 1 moving to a newer h2 would do to a
    /// downcast to h2 0.4.
    fn wrong_h2(stack: Stack) -> Mapping {
        match stack {
            Stack::Legacy => Mapping::Legacy(as_shipped::legacy),
            Stack::Modern => Mapping::Modern(as_shipped::modern),
        }
    }
}

/// `to_connector_error` as `aws-smithy-http-client` 1.0.2 shipped it for
/// hyper 0.14 (then its timeout check, which does not matter here), with
/// the h2 it downcast to; and its hyper 1 twin downcasting to h2 0.3.
mod as_shipped {
    use super::*;

    pub fn legacy(err: hyper_0_14::Error, _: RequestBody) -> ConnectorError {
        if err.is_user() {
            return ConnectorError::user(err.into());
        }
        if err.is_closed() || err.is_canceled() || find_source::<std::io::Error>(&err) {
            return ConnectorError::io(err.into());
        }
        if err.is_incomplete_message() {
            return ConnectorError::other(err.into(), Some(ErrorKind::TransientError));
        }
        // hyper 0.14 wraps h2 0.3's Error; this is h2 0.4's.
        if find_h2_04_go_away_or_refused(&err) {
            return ConnectorError::io(err.into());
        }
        ConnectorError::other(err.into(), None)
    }

    pub fn modern(err: BoxError, _: RequestBody) -> ConnectorError {
        let hyper = links(&*err).find_map(|link| link.downcast_ref::<hyper_1::Error>());
        match hyper {
            Some(hyper) => modern_to_connector_error(hyper)(err),
            None if links(&*err).any(|link| {
                link.downcast_ref::<hyper_util::client::legacy::Error>()
                    .is_some_and(|err| err.is_connect())
            }) =>
            {
                ConnectorError::io(err)
            }
            None => ConnectorError::other(err, None),
        }
    }

    fn modern_to_connector_error(err: &hyper_1::Error) -> fn(BoxError) -> ConnectorError {
        if err.is_user() {
            return ConnectorError::user;
        }
        if err.is_closed() || err.is_canceled() || find_source::<std::io::Error>(err) {
            return ConnectorError::io;
        }
        if find_h2_03_go_away_or_refused(err) {
            return ConnectorError::io;
        }
        |err| ConnectorError::other(err, None)
    }

    fn find_source<E: Error + 'static>(err: &(dyn Error + 'static)) -> bool {
        links(err).any(|link| link.is::<E>())
    }

    macro_rules! finder {
        ($name:ident, $h2:ident) => {
            pub fn $name(err: &(dyn Error + 'static)) -> bool {
                links(err)
                    .filter_map(|link| link.downcast_ref::<$h2::Error>())
                    .any(|h2| {
                        h2.is_go_away()
                            || (h2.is_reset() && h2.reason() == Some($h2::Reason::REFUSED_STREAM))
                    })
            }
        };
    }
    finder!(find_h2_04_go_away_or_refused, h2_04);
    finder!(find_h2_03_go_away_or_refused, h2_03);

    /// The SDK's `find_source` walk: `source()` only.
    fn links<'a>(
        err: &'a (dyn Error + 'static),
    ) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
        std::iter::successors(Some(err), |err: &&'a (dyn Error + 'static)| (*err).source()).take(32)
    }
}

/// A fork of `aws-smithy-http-client`, reduced to what matters here: it
/// sends with its own hyper client (HTTP/2 by prior knowledge) and maps
/// errors with its `to_connector_error`.
#[derive(Clone)]
enum ForkConnector {
    Legacy {
        client: hyper_0_14::Client<hyper_0_14::client::HttpConnector, SdkBody>,
        map: LegacyMapping,
    },
    Modern {
        client: hyper_util::client::legacy::Client<
            hyper_util::client::legacy::connect::HttpConnector,
            SdkBody,
        >,
        map: ModernMapping,
    },
}

impl std::fmt::Debug for ForkConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ForkConnector")
    }
}

impl ForkConnector {
    fn client(mapping: Mapping) -> SharedHttpClient {
        let connector = match mapping {
            Mapping::Legacy(map) => ForkConnector::Legacy {
                client: hyper_0_14::Client::builder()
                    .http2_only(true)
                    .build(hyper_0_14::client::HttpConnector::new()),
                map,
            },
            Mapping::Modern(map) => ForkConnector::Modern {
                client: hyper_util::client::legacy::Client::builder(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .http2_only(true)
                .build_http(),
                map,
            },
        };
        http_client_fn(move |_, _| SharedHttpConnector::new(connector.clone()))
    }
}

impl HttpConnector for ForkConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let user = |err: aws_smithy_runtime_api::http::HttpError| {
            HttpConnectorFuture::ready(Err(ConnectorError::user(err.into())))
        };
        match self.clone() {
            ForkConnector::Legacy { client, map } => {
                let request = match request.try_into_http02x() {
                    Ok(request) => request,
                    Err(err) => return user(err),
                };
                let body = RequestBody::from_end_stream(hyper_0_14::body::HttpBody::is_end_stream(
                    request.body(),
                ));
                HttpConnectorFuture::new(async move {
                    let response = client
                        .request(request)
                        .await
                        .map_err(|err| map(err, body))?;
                    HttpResponse::try_from(response.map(SdkBody::from_body_0_4))
                        .map_err(|err| ConnectorError::other(err.into(), None))
                })
            }
            ForkConnector::Modern { client, map } => {
                let request = match request.try_into_http1x() {
                    Ok(request) => request,
                    Err(err) => return user(err),
                };
                let body = RequestBody::from_end_stream(hyper_1::body::Body::is_end_stream(
                    request.body(),
                ));
                HttpConnectorFuture::new(async move {
                    let response = client
                        .request(request)
                        .await
                        .map_err(|err| map(err.into(), body))?;
                    HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                        .map_err(|err| ConnectorError::other(err.into(), None))
                })
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Classifiers

/// A classifier as a user would write it to work around a connector that
/// misses GOAWAY: it downcasts to one h2 version's `Error`.
#[derive(Debug)]
struct DowncastingClassifier {
    finds: fn(&(dyn Error + 'static)) -> bool,
}

impl DowncastingClassifier {
    /// Downcasts to the other stack's h2 (the shipped bug's mistake).
    fn wrong_h2(stack: Stack) -> Self {
        DowncastingClassifier {
            finds: match stack {
                Stack::Legacy => as_shipped::find_h2_04_go_away_or_refused,
                Stack::Modern => as_shipped::find_h2_03_go_away_or_refused,
            },
        }
    }
}

impl ClassifyRetry for DowncastingClassifier {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        match ctx.output_or_error() {
            Some(Err(err)) if (self.finds)(err) => RetryAction::transient_error(),
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "downcasts to one h2"
    }
}

/// Wraps a classifier and keeps every action it returned.
#[derive(Debug)]
struct Recording<C> {
    inner: C,
    actions: Arc<Mutex<Vec<RetryAction>>>,
}

impl<C: ClassifyRetry> ClassifyRetry for Recording<C> {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let action = self.inner.classify_retry(ctx);
        // Classifiers also run on a success; keep the failures' actions.
        if matches!(ctx.output_or_error(), Some(Err(_))) {
            self.actions.lock().unwrap().push(action.clone());
        }
        action
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn priority(&self) -> RetryClassifierPriority {
        self.inner.priority()
    }
}

/// The classifiers a generated SDK client registers for transport errors.
fn sdk_defaults() -> Vec<SharedRetryClassifier> {
    vec![
        SharedRetryClassifier::new(TransientErrorClassifier::<std::io::Error>::new()),
        SharedRetryClassifier::new(HttpStatusCodeClassifier::default()),
    ]
}

// ---------------------------------------------------------------------------
// The operation

/// What one invocation did.
struct Outcome {
    result: Result<String, SdkError<std::io::Error, HttpResponse>>,
    /// What the recorded classifier returned, failed attempt by failed
    /// attempt.
    actions: Vec<RetryAction>,
}

impl Outcome {
    fn error(&self) -> &(dyn Error + 'static) {
        match &self.result {
            Ok(body) => panic!("expected an error, got {body:?}"),
            Err(err) => err,
        }
    }
}

/// Invokes a POST operation (up to 3 attempts, the SDK's standard retry
/// strategy) with the SDK's default classifiers and `recorded`, whose
/// actions are kept.
async fn invoke(
    http_client: SharedHttpClient,
    url: &str,
    recorded: impl ClassifyRetry + 'static,
    body: &'static str,
    plugins: Vec<SharedRuntimePlugin>,
) -> Outcome {
    let actions = Arc::new(Mutex::new(Vec::new()));
    let mut builder = Operation::builder()
        .service_name("test")
        .operation_name("PutThing")
        .http_client(http_client)
        .endpoint_url(url)
        .no_auth()
        .sleep_impl(TokioSleep::new())
        .timeout_config(TimeoutConfig::disabled())
        .standard_retry(
            &RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(1)),
        )
        .retry_classifier(Recording {
            inner: recorded,
            actions: actions.clone(),
        });
    for classifier in sdk_defaults() {
        builder = builder.retry_classifier(classifier);
    }
    for plugin in plugins {
        builder = builder.runtime_plugin(plugin);
    }
    let operation = builder
        .serializer(move |_: ()| {
            let mut request = HttpRequest::new(SdkBody::from(body));
            request.set_method("POST")?;
            Ok(request)
        })
        .deserializer(|response: &HttpResponse| {
            let body = response.body().bytes().unwrap_or_default();
            if response.status().is_success() {
                Ok(String::from_utf8_lossy(body).into_owned())
            } else {
                Err(OrchestratorError::operation(std::io::Error::other(
                    "not a success",
                )))
            }
        })
        .build();
    let result = tokio::time::timeout(Duration::from_secs(30), operation.invoke(()))
        .await
        .expect("the operation finishes");
    let actions = actions.lock().unwrap().clone();
    Outcome { result, actions }
}

/// Which HTTP client an operation goes through.
#[derive(Clone, Copy)]
enum Via {
    /// The SDK's own, against a server it can reach over HTTP/2.
    Sdk,
    /// A fork's, over h2c.
    Fork(Mapping),
}

/// Starts a server that fails the first request as `first` says, and
/// invokes the operation (a `POST` of `{}`) through `via` with `classifier`
/// recorded.
async fn attempt(
    stack: Stack,
    via: Via,
    first: First,
    classifier: impl ClassifyRetry + 'static,
) -> (Server, Outcome) {
    attempt_with_body(stack, via, first, classifier, "{}").await
}

/// [`attempt`] with an operation that sends `body` (none when empty).
async fn attempt_with_body(
    stack: Stack,
    via: Via,
    first: First,
    classifier: impl ClassifyRetry + 'static,
    body: &'static str,
) -> (Server, Outcome) {
    attempt_with_plugins(stack, via, first, classifier, body, Vec::new()).await
}

/// [`attempt_with_body`] with these runtime plugins added to the operation.
async fn attempt_with_plugins(
    stack: Stack,
    via: Via,
    first: First,
    classifier: impl ClassifyRetry + 'static,
    body: &'static str,
    plugins: Vec<SharedRuntimePlugin>,
) -> (Server, Outcome) {
    let (server, client) = match via {
        Via::Sdk => {
            let server = server_for(stack, first).await;
            let client = sdk_client(stack, &server);
            (server, client)
        }
        Via::Fork(mapping) => (Server::h2c(first).await, ForkConnector::client(mapping)),
    };
    let outcome = invoke(client, &server.url(), classifier, body, plugins).await;
    (server, outcome)
}

/// Asserts that the operation succeeded after one retry that `action`
/// allowed: the server saw two requests and processed one.
fn assert_retried_once(outcome: &Outcome, server: &Server, action: RetryAction, stack: Stack) {
    assert_eq!(outcome.result.as_deref().ok(), Some("ok"), "{stack:?}");
    assert_eq!(outcome.actions, [action], "{stack:?}");
    assert_eq!(
        (server.requests(), server.processed()),
        (2, 1),
        "{stack:?}: requests seen and processed"
    );
}

/// Asserts that the classifier forbade a retry after the first attempt.
fn assert_forbidden_after_one_attempt(outcome: &Outcome, server: &Server, stack: Stack) {
    assert_eq!(outcome.actions, [RetryAction::RetryForbidden], "{stack:?}");
    assert_eq!(server.requests(), 1, "{stack:?}: never retried");
}

// ---------------------------------------------------------------------------
// The SDK's own HTTP clients, with the classifier added

#[tokio::test]
async fn the_classifier_retries_a_go_away_once_for_an_idempotent_operation() {
    for stack in STACKS {
        let (server, outcome) = attempt(
            stack,
            Via::Sdk,
            First::GoAway(Wire::NO_ERROR),
            TransportErrorClassifier::idempotent(),
        )
        .await;
        assert_retried_once(&outcome, &server, RetryAction::transient_error(), stack);
    }
}

#[tokio::test]
async fn the_classifier_does_not_replay_a_go_away_for_an_operation_not_known_idempotent() {
    for stack in STACKS {
        let (server, outcome) = attempt(
            stack,
            Via::Sdk,
            First::GoAway(Wire::NO_ERROR),
            TransportErrorClassifier::new(),
        )
        .await;
        // The SDK's transient classifier alone would replay it (its connector
        // calls a GOAWAY an io error); hyper can attach a GOAWAY to a request
        // it had just sent, so a POST not known to be idempotent stops here.
        assert_go_away(outcome.error(), Reason::NO_ERROR);
        assert_forbidden_after_one_attempt(&outcome, &server, stack);
    }
}

#[tokio::test]
async fn refused_stream_from_the_peer_is_retried_for_any_operation() {
    for stack in STACKS {
        let (server, outcome) = attempt(
            stack,
            Via::Sdk,
            First::Reset(Wire::REFUSED_STREAM),
            TransportErrorClassifier::new(),
        )
        .await;
        assert_retried_once(&outcome, &server, RetryAction::transient_error(), stack);
    }
}

/// A `REFUSED_STREAM` after the response head refuses nothing: the server
/// answered. The SDK reads the body after the connector returned, so this
/// is a response error, not a connector one.
#[tokio::test]
async fn a_refused_stream_after_the_response_head_is_retried_only_when_idempotent() {
    for stack in STACKS {
        let after_head = First::ResetAfterHead(Wire::REFUSED_STREAM);
        let classifier = TransportErrorClassifier::new().requests_have_bodies();
        let (server, outcome) = attempt(stack, Via::Sdk, after_head, classifier).await;
        assert_reset(outcome.error(), Reason::REFUSED_STREAM);
        assert_forbidden_after_one_attempt(&outcome, &server, stack);
        assert_eq!(server.processed(), 1, "{stack:?}");

        let classifier = TransportErrorClassifier::idempotent();
        let (server, outcome) = attempt(stack, Via::Sdk, after_head, classifier).await;
        assert_eq!(outcome.result.as_deref().ok(), Some("ok"), "{stack:?}");
        assert_eq!(
            outcome.actions,
            [RetryAction::transient_error()],
            "{stack:?}"
        );
        assert_eq!(server.processed(), 2, "{stack:?}: both attempts processed");
    }
}

#[tokio::test]
async fn enhance_your_calm_is_a_throttling_retry_for_idempotent_operations_only() {
    for stack in STACKS {
        let (server, outcome) = attempt(
            stack,
            Via::Sdk,
            First::Reset(Wire::ENHANCE_YOUR_CALM),
            TransportErrorClassifier::idempotent(),
        )
        .await;
        assert_retried_once(&outcome, &server, RetryAction::throttling_error(), stack);

        let (server, outcome) = attempt(
            stack,
            Via::Sdk,
            First::Reset(Wire::ENHANCE_YOUR_CALM),
            TransportErrorClassifier::new(),
        )
        .await;
        assert_reset(outcome.error(), Reason::ENHANCE_YOUR_CALM);
        assert_forbidden_after_one_attempt(&outcome, &server, stack);
    }
}

/// h2 0.3 resets a stream whose response headers are too large with a
/// REFUSED_STREAM of its own. The SDK's hyper 0.14 client takes any
/// REFUSED_STREAM for the peer's and replays a request that was processed;
/// the classifier forbids it.
#[tokio::test]
async fn our_own_refused_stream_is_not_replayed() {
    let too_big = First::BigHeader((16 << 20) + 1024);
    let sdk_alone = TransientErrorClassifier::<std::io::Error>::new();
    let (server, outcome) = attempt(Stack::Legacy, Via::Sdk, too_big, sdk_alone).await;
    assert!(outcome.result.is_err());
    assert_eq!(server.processed(), 3, "the SDK alone processes it 3 times");

    let classifier = TransportErrorClassifier::idempotent();
    let (server, outcome) = attempt(Stack::Legacy, Via::Sdk, too_big, classifier).await;
    assert!(outcome.result.is_err());
    assert_eq!(outcome.actions, [RetryAction::RetryForbidden]);
    assert_eq!(server.processed(), 1);
}

// ---------------------------------------------------------------------------
// The shipped bug, and the classifier as the fix for unforked users

#[tokio::test]
async fn a_connector_that_downcasts_to_the_wrong_h2_surfaces_a_go_away() {
    for stack in STACKS {
        let (server, outcome) = attempt(
            stack,
            Via::Fork(Mapping::wrong_h2(stack)),
            First::GoAway(Wire::NO_ERROR),
            DowncastingClassifier::wrong_h2(stack),
        )
        .await;
        let err = outcome.error();
        assert_go_away(err, Reason::NO_ERROR);
        let connector = Chain::new(err)
            .find_map(|link| link.downcast_ref::<ConnectorError>())
            .expect("a connector error");
        assert!(
            connector.is_other() && connector.as_other().is_none(),
            "{stack:?}: the wrong downcast leaves it unclassified: {connector:?}"
        );
        assert_eq!(
            outcome.actions,
            [RetryAction::NoActionIndicated],
            "{stack:?}: a classifier downcasting to the wrong h2 finds nothing"
        );
        assert_eq!(server.requests(), 1, "{stack:?}: never retried");
    }
}

#[tokio::test]
async fn the_classifier_retries_a_go_away_the_connector_missed() {
    for stack in STACKS {
        let (server, outcome) = attempt(
            stack,
            Via::Fork(Mapping::wrong_h2(stack)),
            First::GoAway(Wire::NO_ERROR),
            TransportErrorClassifier::idempotent(),
        )
        .await;
        assert_retried_once(&outcome, &server, RetryAction::transient_error(), stack);
    }
}

// ---------------------------------------------------------------------------
// A fork with the documented patch, and only the SDK's own classifiers

#[tokio::test]
async fn a_patched_fork_retries_a_go_away_with_the_sdks_own_classifiers() {
    for stack in STACKS {
        let (server, outcome) = attempt(
            stack,
            Via::Fork(Mapping::patched(stack)),
            First::GoAway(Wire::NO_ERROR),
            TransientErrorClassifier::<std::io::Error>::new(),
        )
        .await;
        assert_retried_once(&outcome, &server, RetryAction::transient_error(), stack);
    }
}

#[tokio::test]
async fn a_patched_fork_says_enhance_your_calm_is_throttling() {
    for stack in STACKS {
        let (server, outcome) = attempt(
            stack,
            Via::Fork(Mapping::patched(stack)),
            First::Reset(Wire::ENHANCE_YOUR_CALM),
            TransientErrorClassifier::<std::io::Error>::new(),
        )
        .await;
        assert_retried_once(
            &outcome,
            &server,
            RetryAction::retryable_error(ErrorKind::ThrottlingError),
            stack,
        );
    }
}

#[tokio::test]
async fn a_patched_fork_with_the_classifier_keeps_a_go_away_on_a_bodiless_operation() {
    for stack in STACKS {
        let (server, outcome) = attempt_with_body(
            stack,
            Via::Fork(Mapping::patched(stack)),
            First::GoAway(Wire::NO_ERROR),
            TransportErrorClassifier::new(),
            "",
        )
        .await;
        assert_go_away(outcome.error(), Reason::NO_ERROR);
        assert_forbidden_after_one_attempt(&outcome, &server, stack);
    }
}

/// The fork marks the error with the request's body, so the classifier
/// knows a peer's GOAWAY hit a request the server never received whole.
#[tokio::test]
async fn a_patched_fork_with_the_classifier_replays_a_go_away_on_an_operation_with_a_body() {
    for stack in STACKS {
        let (server, outcome) = attempt(
            stack,
            Via::Fork(Mapping::patched(stack)),
            First::GoAway(Wire::NO_ERROR),
            TransportErrorClassifier::new(),
        )
        .await;
        assert_retried_once(&outcome, &server, RetryAction::transient_error(), stack);
    }
}

/// The SDK's own clients cannot mark the error; a client whose operations
/// all send a body says so.
#[tokio::test]
async fn the_classifier_replays_a_go_away_for_operations_said_to_send_a_body() {
    for stack in STACKS {
        let (server, outcome) = attempt(
            stack,
            Via::Sdk,
            First::GoAway(Wire::NO_ERROR),
            TransportErrorClassifier::new().requests_have_bodies(),
        )
        .await;
        assert_retried_once(&outcome, &server, RetryAction::transient_error(), stack);
    }
}

#[tokio::test]
async fn a_patched_fork_calls_a_refused_connection_io_and_never_connected() {
    let url = support::refused_url();
    for stack in STACKS {
        let outcome = invoke(
            ForkConnector::client(Mapping::patched(stack)),
            &url,
            TransportErrorClassifier::new(),
            "{}",
            Vec::new(),
        )
        .await;
        let err = outcome.error();
        let connector = Chain::new(err)
            .find_map(|link| link.downcast_ref::<ConnectorError>())
            .expect("a connector error");
        assert!(connector.is_io(), "{stack:?}: {connector:?}");
        assert!(connector.connection_metadata().is_none());
        assert_eq!(
            outcome.actions,
            vec![RetryAction::transient_error(); 3],
            "{stack:?}: a refused connect is safe to retry for any operation"
        );
    }
}

#[test]
fn the_classifier_has_the_last_word_over_the_sdks_transient_classifier() {
    // Classifiers run in ascending priority and a later answer overrides an
    // earlier one: running after the transient classifier keeps our
    // throttling (not its transient) and our forbidden.
    assert!(
        TransportErrorClassifier::new().priority()
            > TransientErrorClassifier::<std::io::Error>::priority()
    );
}

/// An error no classifier knows: the caller's own.
#[derive(Debug)]
struct Unknown;

impl std::fmt::Display for Unknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the caller's own failure")
    }
}

impl Error for Unknown {}

#[test]
fn an_unrecognized_error_is_warned_about_once_then_at_powers_of_ten() {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || Log(writer.clone()))
        .with_ansi(false)
        .finish();
    let errors: Vec<ConnectorError> = tracing::subscriber::with_default(subscriber, || {
        (0..12)
            .map(|_| hyper_classify::aws::to_connector_error(Unknown))
            .collect()
    });
    assert!(errors.iter().all(|err| err.is_other()));
    let log = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
    assert_eq!(log.matches("WARN").count(), 2, "{log}");
    assert!(log.contains("occurrences=1"), "{log}");
    assert!(log.contains("occurrences=10"), "{log}");
}

struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// RefusalRetries: refusals retried without the token bucket

/// A retry partition whose token bucket has no tokens left, as after a
/// storm of refusals.
fn empty_token_bucket() -> SharedRuntimePlugin {
    let mut layer = Layer::new("empty token bucket");
    layer.store_put(
        RetryPartition::custom("empty")
            .token_bucket(TokenBucket::new(0))
            .build(),
    );
    SharedRuntimePlugin::new(StaticRuntimePlugin::new().with_config(layer.freeze()))
}

#[tokio::test]
async fn an_empty_token_bucket_fails_a_refusal_that_refusal_retries_retry() {
    for stack in STACKS {
        let (server, outcome) = attempt_with_plugins(
            stack,
            Via::Sdk,
            First::Reset(Wire::REFUSED_STREAM),
            TransportErrorClassifier::new(),
            "{}",
            vec![empty_token_bucket()],
        )
        .await;
        assert_reset(outcome.error(), Reason::REFUSED_STREAM);
        assert_eq!(server.requests(), 1, "{stack:?}: no token, no retry");

        let (server, outcome) = attempt_with_plugins(
            stack,
            Via::Sdk,
            First::Reset(Wire::REFUSED_STREAM),
            TransportErrorClassifier::new(),
            "{}",
            vec![
                empty_token_bucket(),
                SharedRuntimePlugin::new(RefusalRetries::new()),
            ],
        )
        .await;
        assert_retried_once(&outcome, &server, RetryAction::transient_error(), stack);
    }
}

#[tokio::test]
async fn refusal_retries_do_not_replay_what_the_classifier_forbids() {
    for stack in STACKS {
        // A bodiless POST refused by GOAWAY may have been processed
        // (hyper's race), and is not known to be idempotent.
        let (server, outcome) = attempt_with_plugins(
            stack,
            Via::Sdk,
            First::GoAway(Wire::NO_ERROR),
            TransportErrorClassifier::new(),
            "",
            vec![SharedRuntimePlugin::new(RefusalRetries::new())],
        )
        .await;
        assert_go_away(outcome.error(), Reason::NO_ERROR);
        assert_forbidden_after_one_attempt(&outcome, &server, stack);
    }
}

#[tokio::test]
async fn refusal_retries_give_up_after_max_refusals() {
    let server = Server::h2c_failing_every_request(First::Reset(Wire::REFUSED_STREAM)).await;
    let client = sdk_client(Stack::Legacy, &server);
    let plugins = vec![SharedRuntimePlugin::new(
        RefusalRetries::new().max_refusals(4),
    )];
    let outcome = invoke(
        client,
        &server.url(),
        TransportErrorClassifier::new(),
        "{}",
        plugins,
    )
    .await;
    assert_reset(outcome.error(), Reason::REFUSED_STREAM);
    // 4 refusals retried, then the standard strategy's 3 attempts.
    assert_eq!(server.requests(), 1 + 4 + 2, "requests sent");
}
