//! The clients: each stack driven three ways.

use std::collections::BTreeMap;
use std::error::Error;
use std::sync::Arc;

use bytes::Bytes;
use hyper_classify::retry::{self, RetryConfig, RetryPolicy, RetryStats, StopReason};
use hyper_classify::{classify, Cause, Verdict};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceExt};

use crate::tls::TlsConnector;

type BoxError = Box<dyn Error + Send + Sync>;

/// A request that takes longer than this, retries included, counts as an
/// error (a stuck request must not hang the lab).
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// A hyper major version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Stack {
    /// hyper 0.14, h2 0.3.
    #[serde(rename = "hyper 0.14")]
    Legacy,
    /// hyper 1, hyper-util, h2 0.4.
    #[serde(rename = "hyper 1")]
    Modern,
}

impl Stack {
    /// Both, in the order they are run.
    pub const ALL: [Stack; 2] = [Stack::Legacy, Stack::Modern];

    /// The name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Stack::Legacy => "hyper 0.14",
            Stack::Modern => "hyper 1",
        }
    }
}

/// How failures are handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Mode {
    /// No retries: every error reaches the caller.
    Bare,
    /// The classifier that shipped the bug: it looks for h2 0.4's error and
    /// retries a GOAWAY(NO_ERROR) or REFUSED_STREAM it finds, up to 3
    /// attempts, whatever the method.
    #[serde(rename = "h2 0.4 downcast")]
    Naive,
    /// hyper-classify's retry policy.
    #[serde(rename = "hyper-classify")]
    Classify,
}

impl Mode {
    /// All three, in the order they are run.
    pub const ALL: [Mode; 3] = [Mode::Bare, Mode::Naive, Mode::Classify];

    /// The name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Bare => "bare client",
            Mode::Naive => "h2 0.4 downcast",
            Mode::Classify => "hyper-classify",
        }
    }
}

/// What a request is: the columns of the tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Kind {
    /// `GET`, no body.
    #[serde(rename = "GET")]
    Get,
    /// `POST` with a small body.
    #[serde(rename = "POST with body")]
    PostWithBody,
    /// `POST` without a body: its HEADERS end the stream.
    #[serde(rename = "POST without body")]
    PostWithoutBody,
}

impl Kind {
    /// All three, in column order.
    pub const ALL: [Kind; 3] = [Kind::Get, Kind::PostWithBody, Kind::PostWithoutBody];

    /// Request `id`'s kind: ids go GET, POST with body, POST without body
    /// in turn (only GETs when `gets_only`).
    pub fn of(id: u64, gets_only: bool) -> Kind {
        match id % 3 {
            _ if gets_only => Kind::Get,
            0 => Kind::Get,
            1 => Kind::PostWithBody,
            _ => Kind::PostWithoutBody,
        }
    }

    fn method(self) -> &'static str {
        match self {
            Kind::Get => "GET",
            _ => "POST",
        }
    }

    fn body(self) -> &'static [u8] {
        match self {
            Kind::PostWithBody => b"order",
            _ => b"",
        }
    }
}

/// A request whose error reached the caller.
#[derive(Clone, Debug)]
pub struct Failure {
    /// Its `x-request-id`.
    pub id: u64,
    /// What it was.
    pub kind: Kind,
    /// Why it stopped: the retry layer's `StopReason`, or the cause of an
    /// error nothing retried.
    pub why: String,
}

/// What one run of requests saw, client side.
#[derive(Clone, Debug, Default)]
pub struct ClientTally {
    /// Requests sent by the caller.
    pub requests: u64,
    /// Requests sent, by kind.
    pub sent: BTreeMap<Kind, u64>,
    /// Requests that succeeded, by kind.
    pub ok: BTreeMap<Kind, u64>,
    /// Retries made.
    pub retries: u64,
    /// Failed attempts, by cause (hyper-classify's verdict on each).
    pub causes: BTreeMap<String, u64>,
    /// Each request's latency, in microseconds, by kind.
    pub latencies_us: BTreeMap<Kind, Vec<u64>>,
    /// The requests whose error reached the caller.
    pub failures: Vec<Failure>,
}

impl ClientTally {
    /// Errors that reached the caller, of one kind.
    pub fn errors_of(&self, kind: Kind) -> u64 {
        self.failures.iter().filter(|f| f.kind == kind).count() as u64
    }

    /// Successful requests, of every kind.
    pub fn successes(&self) -> u64 {
        self.ok.values().sum()
    }
}

/// Sends `requests` requests (ids in turn a `GET`, a `POST` with a body and
/// a `POST` without one; only `GET`s when `gets_only`) to `target`,
/// `concurrency` at a time.
pub async fn run(
    stack: Stack,
    mode: Mode,
    target: &Target,
    requests: u64,
    concurrency: usize,
    gets_only: bool,
    on_done: impl Fn() + Send + Sync + 'static,
) -> ClientTally {
    let policy = retry::policy(RetryConfig::default()).expect("the default config is valid");
    let client = Client::new(stack, mode, policy.clone(), target);
    let url = target.url.as_str();
    let slots = Arc::new(Semaphore::new(concurrency));
    let on_done = Arc::new(on_done);
    let mut tasks = JoinSet::new();
    for id in 0..requests {
        let slot = slots.clone().acquire_owned().await.expect("never closed");
        let (client, url, on_done) = (client.clone(), url.to_owned(), on_done.clone());
        let kind = Kind::of(id, gets_only);
        tasks.spawn(async move {
            let started = tokio::time::Instant::now();
            let outcome = tokio::time::timeout(REQUEST_TIMEOUT, client.send(kind, &url, id))
                .await
                .unwrap_or_else(|elapsed| Outcome {
                    failed_attempts: vec![classify(&elapsed).cause()],
                    result: Err("no answer in time".into()),
                    retries: 0,
                });
            drop(slot);
            on_done();
            (id, kind, outcome, started.elapsed())
        });
    }
    let mut tally = ClientTally {
        requests,
        ..ClientTally::default()
    };
    while let Some(joined) = tasks.join_next().await {
        let (id, kind, outcome, elapsed) = joined.expect("a request task panicked");
        let latencies = tally.latencies_us.entry(kind).or_default();
        latencies.push(elapsed.as_micros() as u64);
        *tally.sent.entry(kind).or_default() += 1;
        tally.retries += outcome.retries;
        for cause in &outcome.failed_attempts {
            *tally.causes.entry(cause_name(*cause)).or_default() += 1;
        }
        match outcome.result {
            Ok(()) => *tally.ok.entry(kind).or_default() += 1,
            Err(why) => tally.failures.push(Failure { id, kind, why }),
        }
    }
    if mode == Mode::Classify {
        let stats = policy.stats();
        tally.retries = stats.retries;
        add_retry_causes(&mut tally, &stats);
    }
    tally
}

/// The short name of a cause, for tables.
pub fn cause_name(cause: Cause) -> String {
    match cause {
        Cause::GoAway { reason, .. } => format!("GOAWAY {reason}"),
        Cause::StreamReset { reason, .. } => format!("RST {reason}"),
        Cause::Connect(kind) => format!("connect {kind}"),
        Cause::NotSent => "not sent".into(),
        Cause::ConnectionLost => "conn lost".into(),
        Cause::Timeout => "timeout".into(),
        Cause::Protocol => "protocol".into(),
        Cause::User => "user".into(),
        Cause::Unrecognized { h2_shaped: true } => "UNRECOGNIZED h2".into(),
        Cause::Unrecognized { .. } => "unrecognized".into(),
        _ => "other".into(),
    }
}

/// The retry layer's attempts are not visible one by one; its counters are.
fn add_retry_causes(tally: &mut ClientTally, stats: &RetryStats) {
    let by_cause = [
        ("GOAWAY (retried)", stats.retries_go_away),
        ("RST (retried)", stats.retries_stream_reset),
        ("connect (retried)", stats.retries_connect),
        ("conn lost (retried)", stats.retries_connection_lost),
        ("not sent (retried)", stats.retries_not_sent),
        ("timeout (retried)", stats.retries_timeout),
    ];
    for (name, n) in by_cause {
        if n > 0 {
            *tally.causes.entry(name.into()).or_default() += n;
        }
    }
}

/// What became of one request.
pub struct Outcome {
    /// On failure, why it stopped.
    pub result: Result<(), String>,
    retries: u64,
    failed_attempts: Vec<Cause>,
}

/// Where the lab sends its requests.
#[derive(Clone)]
pub struct Target {
    /// `http://HOST:PORT/PATH` (HTTP/2 by prior knowledge) or `https://…`.
    pub url: String,
    /// The TLS connector for an `https` URL.
    pub tls: Option<TlsConnector>,
}

impl Target {
    /// An h2c URL.
    pub fn h2c(url: String) -> Target {
        Target { url, tls: None }
    }
}

/// One stack's client, in one mode.
#[derive(Clone)]
pub struct Client {
    inner: Inner,
    /// Retry what the shipped classifier would have retried.
    naive: bool,
}

type LegacyRequest = hyper_0_14::Request<http_body_04::Full<Bytes>>;
type ModernRequest = hyper_1::Request<http_body_util::Full<Bytes>>;

/// Each stack's client, bare or in the retry layer, over whichever
/// connector; boxed so that one `send_once` arm serves each stack.
#[derive(Clone)]
enum Inner {
    Legacy(BoxCloneSyncService<LegacyRequest, hyper_0_14::Response<hyper_0_14::Body>, BoxError>),
    Modern(
        BoxCloneSyncService<ModernRequest, hyper_1::Response<hyper_1::body::Incoming>, BoxError>,
    ),
}

impl Client {
    /// The client `stack` is driven with in `mode` towards `target`,
    /// retrying with `policy`.
    pub fn new(stack: Stack, mode: Mode, policy: RetryPolicy, target: &Target) -> Self {
        let retrying = (mode == Mode::Classify).then_some(policy);
        let inner = match (stack, &target.tls) {
            (Stack::Legacy, Some(tls)) => Inner::Legacy(legacy(tls.clone(), retrying)),
            (Stack::Modern, Some(tls)) => Inner::Modern(modern(tls.clone(), retrying)),
            // Both connectors default to Nagle's algorithm, which alone
            // turns a drain's p99 from a few ms into tens.
            (Stack::Legacy, None) => {
                let mut connector = hyper_0_14::client::HttpConnector::new();
                connector.set_nodelay(true);
                Inner::Legacy(legacy(connector, retrying))
            }
            (Stack::Modern, None) => {
                let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
                connector.set_nodelay(true);
                Inner::Modern(modern(connector, retrying))
            }
        };
        Client {
            inner,
            naive: mode == Mode::Naive,
        }
    }

    /// Sends request `id` of `kind`, retried as the mode says.
    pub async fn send(&self, kind: Kind, url: &str, id: u64) -> Outcome {
        let mut outcome = Outcome {
            result: Ok(()),
            retries: 0,
            failed_attempts: Vec::new(),
        };
        loop {
            let result = self.send_once(kind, url, id).await;
            let Err(err) = result else {
                outcome.result = Ok(());
                return outcome;
            };
            let stopped = retry_stop(&*err);
            match stopped {
                Some((_, verdict)) => outcome.failed_attempts.extend(verdict.map(|v| v.cause())),
                None => outcome.failed_attempts.push(classify(&*err).cause()),
            }
            if self.naive && naive_says_retry(&*err) && outcome.retries < 2 {
                outcome.retries += 1;
                continue;
            }
            outcome.result = Err(match stopped {
                Some((reason, _)) => format!("{reason:?}"),
                None => format!("not retried: {}", cause_name(classify(&*err).cause())),
            });
            return outcome;
        }
    }

    async fn send_once(&self, kind: Kind, url: &str, id: u64) -> Result<(), BoxError> {
        // The response body is read, but a body cut off after the head is
        // not the request's failure: the server answered.
        match &self.inner {
            Inner::Legacy(client) => {
                let response = client
                    .clone()
                    .oneshot(legacy_request(kind, url, id))
                    .await?;
                let _ = hyper_0_14::body::to_bytes(response.into_body()).await;
            }
            Inner::Modern(client) => {
                let response = client
                    .clone()
                    .oneshot(modern_request(kind, url, id))
                    .await?;
                let _ = http_body_util::BodyExt::collect(response.into_body()).await;
            }
        }
        Ok(())
    }
}

/// A hyper 0.14 client over `connector`, HTTP/2 only, in the retry layer
/// when there is a policy.
fn legacy<C>(
    connector: C,
    policy: Option<RetryPolicy>,
) -> BoxCloneSyncService<LegacyRequest, hyper_0_14::Response<hyper_0_14::Body>, BoxError>
where
    C: hyper_0_14::client::connect::Connect + Clone + Send + Sync + 'static,
{
    let client = hyper_0_14::Client::builder()
        .http2_only(true)
        .build(connector);
    match policy {
        Some(policy) => BoxCloneSyncService::new(
            retry::legacy_layer(policy)
                .layer(client)
                .map_err(BoxError::from),
        ),
        None => BoxCloneSyncService::new(client.map_err(BoxError::from)),
    }
}

/// A hyper-util client over `connector`, HTTP/2 only, in the retry layer
/// when there is a policy.
fn modern<C>(
    connector: C,
    policy: Option<RetryPolicy>,
) -> BoxCloneSyncService<ModernRequest, hyper_1::Response<hyper_1::body::Incoming>, BoxError>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build(connector);
    match policy {
        Some(policy) => BoxCloneSyncService::new(
            retry::modern_layer(policy)
                .layer(client)
                .map_err(BoxError::from),
        ),
        None => BoxCloneSyncService::new(client.map_err(BoxError::from)),
    }
}

/// Why the retry layer stopped, and its verdict, if `err` is its error.
fn retry_stop(err: &(dyn Error + 'static)) -> Option<(StopReason, Option<Verdict>)> {
    if let Some(err) = err.downcast_ref::<retry::RetryError<hyper_0_14::Error>>() {
        return Some((err.reason(), err.verdict()));
    }
    let err = err.downcast_ref::<retry::RetryError<hyper_util::client::legacy::Error>>()?;
    Some((err.reason(), err.verdict()))
}

/// The shipped classifier: find h2 0.4's error by `source()`, and retry a
/// GOAWAY(NO_ERROR) or REFUSED_STREAM.
fn naive_says_retry(err: &(dyn Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(link) = next {
        if let Some(h2) = link.downcast_ref::<h2_04::Error>() {
            return h2.reason() == Some(h2_04::Reason::NO_ERROR) && h2.is_go_away()
                || h2.reason() == Some(h2_04::Reason::REFUSED_STREAM);
        }
        next = link.source();
    }
    false
}

fn legacy_request(
    kind: Kind,
    url: &str,
    id: u64,
) -> hyper_0_14::Request<http_body_04::Full<Bytes>> {
    hyper_0_14::Request::builder()
        .method(kind.method())
        .uri(url)
        .header("x-request-id", id)
        .body(http_body_04::Full::new(Bytes::from_static(kind.body())))
        .expect("a valid request")
}

fn modern_request(kind: Kind, url: &str, id: u64) -> hyper_1::Request<http_body_util::Full<Bytes>> {
    hyper_1::Request::builder()
        .method(kind.method())
        .uri(url)
        .header("x-request-id", id)
        .body(http_body_util::Full::new(Bytes::from_static(kind.body())))
        .expect("a valid request")
}
