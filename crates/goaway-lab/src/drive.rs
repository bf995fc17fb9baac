//! The clients: each stack driven three ways.

use std::collections::BTreeMap;
use std::error::Error;
use std::sync::Arc;

use bytes::Bytes;
use hyper_classify::retry::{self, RetryConfig, RetryPolicy, RetryStats};
use hyper_classify::{classify, Cause};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower::{Layer, ServiceExt};

type BoxError = Box<dyn Error + Send + Sync>;

/// A request that takes longer than this, retries included, counts as an
/// error (a stuck request must not hang the lab).
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

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

/// What one run of requests saw, client side.
#[derive(Clone, Debug, Default)]
pub struct ClientTally {
    /// Requests sent by the caller.
    pub requests: u64,
    /// Requests that succeeded.
    pub ok: u64,
    /// Errors that reached the caller.
    pub errors: u64,
    /// Retries made.
    pub retries: u64,
    /// Failed attempts, by cause (hyper-classify's verdict on each).
    pub causes: BTreeMap<String, u64>,
    /// Each request's latency, in microseconds.
    pub latencies_us: Vec<u64>,
}

/// Sends `requests` requests (even ids `POST`, odd ids `GET`; only `GET`s
/// when `gets_only`) to `url`, `concurrency` at a time.
pub async fn run(
    stack: Stack,
    mode: Mode,
    url: &str,
    requests: u64,
    concurrency: usize,
    gets_only: bool,
    on_done: impl Fn() + Send + Sync + 'static,
) -> ClientTally {
    let policy = retry::policy(RetryConfig::default()).expect("the default config is valid");
    let client = Client::new(stack, mode, policy.clone());
    let slots = Arc::new(Semaphore::new(concurrency));
    let on_done = Arc::new(on_done);
    let mut tasks = JoinSet::new();
    for id in 0..requests {
        let slot = slots.clone().acquire_owned().await.expect("never closed");
        let (client, url, on_done) = (client.clone(), url.to_owned(), on_done.clone());
        let method = if gets_only || id % 2 == 1 {
            "GET"
        } else {
            "POST"
        };
        tasks.spawn(async move {
            let started = tokio::time::Instant::now();
            let outcome = tokio::time::timeout(REQUEST_TIMEOUT, client.send(method, &url, id))
                .await
                .unwrap_or_else(|elapsed| Outcome {
                    failed_attempts: vec![classify(&elapsed).cause()],
                    result: Err(Box::new(elapsed)),
                    retries: 0,
                });
            drop(slot);
            on_done();
            (outcome, started.elapsed())
        });
    }
    let mut tally = ClientTally {
        requests,
        ..ClientTally::default()
    };
    while let Some(joined) = tasks.join_next().await {
        let (outcome, elapsed) = joined.expect("a request task panicked");
        tally.latencies_us.push(elapsed.as_micros() as u64);
        tally.retries += outcome.retries;
        for cause in &outcome.failed_attempts {
            *tally.causes.entry(cause_name(*cause)).or_default() += 1;
        }
        match outcome.result {
            Ok(()) => tally.ok += 1,
            Err(_) => tally.errors += 1,
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
    ];
    for (name, n) in by_cause {
        if n > 0 {
            *tally.causes.entry(name.into()).or_default() += n;
        }
    }
}

struct Outcome {
    result: Result<(), BoxError>,
    retries: u64,
    failed_attempts: Vec<Cause>,
}

/// One stack's client, in one mode.
#[derive(Clone)]
struct Client {
    inner: Inner,
    /// Retry what the shipped classifier would have retried.
    naive: bool,
}

#[derive(Clone)]
enum Inner {
    Legacy(hyper_0_14::Client<hyper_0_14::client::HttpConnector, http_body_04::Full<Bytes>>),
    Modern(
        hyper_util::client::legacy::Client<
            hyper_util::client::legacy::connect::HttpConnector,
            http_body_util::Full<Bytes>,
        >,
    ),
    LegacyRetry(
        retry::Retry<
            hyper_0_14::Client<hyper_0_14::client::HttpConnector, http_body_04::Full<Bytes>>,
            hyper_classify::legacy::retry::HttpReplay,
        >,
    ),
    ModernRetry(
        retry::Retry<
            hyper_util::client::legacy::Client<
                hyper_util::client::legacy::connect::HttpConnector,
                http_body_util::Full<Bytes>,
            >,
            hyper_classify::modern::retry::HttpReplay,
        >,
    ),
}

impl Client {
    fn new(stack: Stack, mode: Mode, policy: RetryPolicy) -> Self {
        let legacy = || hyper_0_14::Client::builder().http2_only(true).build_http();
        let modern = || {
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .http2_only(true)
                .build_http()
        };
        let inner = match (stack, mode) {
            (Stack::Legacy, Mode::Classify) => {
                Inner::LegacyRetry(retry::legacy_layer(policy).layer(legacy()))
            }
            (Stack::Modern, Mode::Classify) => {
                Inner::ModernRetry(retry::modern_layer(policy).layer(modern()))
            }
            (Stack::Legacy, _) => Inner::Legacy(legacy()),
            (Stack::Modern, _) => Inner::Modern(modern()),
        };
        Client {
            inner,
            naive: mode == Mode::Naive,
        }
    }

    async fn send(&self, method: &str, url: &str, id: u64) -> Outcome {
        let mut outcome = Outcome {
            result: Ok(()),
            retries: 0,
            failed_attempts: Vec::new(),
        };
        loop {
            let result = self.send_once(method, url, id).await;
            let Err(err) = result else {
                outcome.result = Ok(());
                return outcome;
            };
            match &self.inner {
                Inner::LegacyRetry(_) | Inner::ModernRetry(_) => {
                    outcome.failed_attempts.extend(last_verdict(&*err));
                }
                _ => outcome.failed_attempts.push(classify(&*err).cause()),
            }
            if self.naive && naive_says_retry(&*err) && outcome.retries < 2 {
                outcome.retries += 1;
                continue;
            }
            outcome.result = Err(err);
            return outcome;
        }
    }

    async fn send_once(&self, method: &str, url: &str, id: u64) -> Result<(), BoxError> {
        match &self.inner {
            Inner::Legacy(client) => {
                let response = client.request(legacy_request(method, url, id)).await?;
                hyper_0_14::body::to_bytes(response.into_body()).await?;
            }
            Inner::LegacyRetry(client) => {
                let response = client
                    .clone()
                    .oneshot(legacy_request(method, url, id))
                    .await?;
                hyper_0_14::body::to_bytes(response.into_body()).await?;
            }
            Inner::Modern(client) => {
                let response = client.request(modern_request(method, url, id)).await?;
                http_body_util::BodyExt::collect(response.into_body()).await?;
            }
            Inner::ModernRetry(client) => {
                let response = client
                    .clone()
                    .oneshot(modern_request(method, url, id))
                    .await?;
                http_body_util::BodyExt::collect(response.into_body()).await?;
            }
        }
        Ok(())
    }
}

/// The verdict a final `RetryError` carries.
fn last_verdict(err: &(dyn Error + 'static)) -> Option<Cause> {
    let legacy = err.downcast_ref::<retry::RetryError<hyper_0_14::Error>>();
    let modern = err.downcast_ref::<retry::RetryError<hyper_util::client::legacy::Error>>();
    let verdict = legacy
        .and_then(|e| e.verdict())
        .or_else(|| modern.and_then(|e| e.verdict()));
    verdict.map(|v| v.cause())
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
    method: &str,
    url: &str,
    id: u64,
) -> hyper_0_14::Request<http_body_04::Full<Bytes>> {
    hyper_0_14::Request::builder()
        .method(method)
        .uri(url)
        .header("x-request-id", id)
        .body(http_body_04::Full::new(Bytes::from_static(b"order")))
        .expect("a valid request")
}

fn modern_request(
    method: &str,
    url: &str,
    id: u64,
) -> hyper_1::Request<http_body_util::Full<Bytes>> {
    hyper_1::Request::builder()
        .method(method)
        .uri(url)
        .header("x-request-id", id)
        .body(http_body_util::Full::new(Bytes::from_static(b"order")))
        .expect("a valid request")
}
