//! The chain walk and the "never silently" guarantee, on real errors.

mod support;

use std::error::Error;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};

use hyper_classify::{classify, Cause, Classify, Initiator, Pace, Reason, RetrySafety, MAX_LINKS};
use proptest::prelude::*;

const GO_AWAY: Cause = Cause::GoAway {
    reason: Reason::NO_ERROR,
    initiator: Initiator::Remote,
};

/// A real hyper 0.14 error for a GOAWAY(NO_ERROR) that refused the request.
#[cfg(feature = "legacy")]
async fn legacy_go_away() -> hyper_0_14::Error {
    let server = support::go_away_on_first_request(0, h2_frame_server::Reason::NO_ERROR).await;
    support::legacy::h2_get(&server.url()).await.unwrap_err()
}

/// A real hyper-util (hyper 1) error for a GOAWAY(NO_ERROR) that refused the request.
#[cfg(feature = "modern")]
async fn modern_go_away() -> hyper_util::client::legacy::Error {
    let server = support::go_away_on_first_request(0, h2_frame_server::Reason::NO_ERROR).await;
    support::modern::h2_get(&server.url()).await.unwrap_err()
}

#[allow(dead_code)] // unused in the `legacy`-only leg
/// What the connector that shipped the bug did: look for h2 0.4's error
/// anywhere in the chain, whatever hyper version made the chain.
fn find_h2_04_error<'e>(err: &'e (dyn Error + 'static)) -> Option<&'e h2_04::Error> {
    let mut next = Some(err);
    while let Some(link) = next {
        if let Some(h2) = link.downcast_ref::<h2_04::Error>() {
            return Some(h2);
        }
        next = link.source();
    }
    None
}

/// Runs `f` with a `tracing` subscriber and returns what it logged.
fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || Sink(writer.clone()))
        .with_ansi(false)
        .finish();
    let value = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
    (value, text)
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(feature = "legacy")]
#[tokio::test]
async fn the_shipped_bug_a_downcast_to_h2_0_4_misses_hyper_0_14s_go_away() {
    let err = legacy_go_away().await;
    assert!(
        find_h2_04_error(&err).is_none(),
        "the wrong-version downcast compiles and never matches"
    );
    assert_eq!(err.classify().cause(), GO_AWAY);
    assert_eq!(err.classify().safety(), RetrySafety::IdempotentOnly);
}

#[cfg(feature = "legacy")]
#[tokio::test]
async fn a_backend_that_cannot_read_the_error_says_so_loudly() {
    let err = legacy_go_away().await;
    let modern_only = hyper_classify::Classifier::new(&[&classify_h2_04::Hyper1]);
    let (verdict, log) = logged(|| modern_only.classify(&err));
    assert_eq!(verdict.cause(), Cause::Unrecognized { h2_shaped: true });
    assert_eq!(verdict.safety(), RetrySafety::Never);
    assert!(log.contains("WARN"), "{log}");
    assert!(log.contains("h2 major version"), "{log}");
    assert!(
        log.contains("hyper 1 / h2 0.4"),
        "names the backends it had: {log}"
    );
}

/// An error type of the caller's that carries hyper's GOAWAY as its source.
#[cfg(feature = "legacy")]
#[derive(Debug)]
struct Wrapped(Box<dyn Error + Send + Sync>);

#[cfg(feature = "legacy")]
impl fmt::Display for Wrapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request failed")
    }
}

#[cfg(feature = "legacy")]
impl Error for Wrapped {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.0)
    }
}

/// A drain fails every request with the same unread GOAWAY: one warning for
/// the kind, every occurrence counted.
#[cfg(feature = "legacy")]
#[tokio::test]
async fn an_unread_go_away_is_warned_about_once_and_counted() {
    let err = Wrapped(Box::new(legacy_go_away().await));
    let modern_only = hyper_classify::Classifier::new(&[&classify_h2_04::Hyper1]);
    let before = hyper_classify::unread_h2_errors();
    let (verdicts, log) = logged(|| {
        (0..5)
            .map(|_| modern_only.classify(&err))
            .collect::<Vec<_>>()
    });
    assert!(verdicts
        .iter()
        .all(|v| v.cause() == Cause::Unrecognized { h2_shaped: true }));
    assert_eq!(log.matches("WARN").count(), 1, "{log}");
    assert!(log.contains("occurrences=1"), "{log}");
    assert!(hyper_classify::unread_h2_errors() >= before + 5);
}

#[cfg(feature = "modern")]
#[tokio::test]
async fn a_legacy_only_classifier_flags_hyper_1s_go_away_as_h2_shaped() {
    let err = modern_go_away().await;
    let legacy_only = hyper_classify::Classifier::new(&[&classify_h2_03::Hyper014]);
    let (verdict, log) = logged(|| legacy_only.classify(&err));
    assert_eq!(verdict.cause(), Cause::Unrecognized { h2_shaped: true });
    assert!(log.contains("h2 major version"), "{log}");
}

/// The build the bug would have been: only `modern` enabled, a hyper 0.14
/// error to classify. (Runs in the feature matrix's `modern` leg.)
#[cfg(all(feature = "modern", not(feature = "legacy")))]
#[tokio::test]
async fn a_modern_only_build_flags_hyper_0_14s_go_away() {
    let server = support::go_away_on_first_request(0, h2_frame_server::Reason::NO_ERROR).await;
    let err = support::legacy::h2_get(&server.url()).await.unwrap_err();
    assert!(find_h2_04_error(&err).is_none());
    let (verdict, log) = logged(|| classify(&err));
    assert_eq!(verdict.cause(), Cause::Unrecognized { h2_shaped: true });
    assert!(log.contains("`legacy`"), "{log}");
}

/// And the other way round, in the `legacy` leg.
#[cfg(all(feature = "legacy", not(feature = "modern")))]
#[tokio::test]
async fn a_legacy_only_build_flags_hyper_1s_go_away() {
    let server = support::go_away_on_first_request(0, h2_frame_server::Reason::NO_ERROR).await;
    let err = support::modern::h2_get(&server.url()).await.unwrap_err();
    let (verdict, log) = logged(|| classify(&err));
    assert_eq!(verdict.cause(), Cause::Unrecognized { h2_shaped: true });
    assert!(log.contains("`modern`"), "{log}");
}

#[cfg(all(feature = "legacy", feature = "modern"))]
#[tokio::test]
async fn both_stacks_in_one_process() {
    let (legacy, modern) = (legacy_go_away().await, modern_go_away().await);
    assert_eq!(legacy.classify().cause(), GO_AWAY);
    assert_eq!(modern.classify().cause(), GO_AWAY);
    assert_eq!(hyper_classify::BACKENDS.len(), 2);
}

#[cfg(feature = "modern")]
#[tokio::test]
async fn a_go_away_wrapped_in_io_errors_and_boxes_is_still_found() {
    let err = modern_go_away().await;
    let wrapped = io::Error::other(err);
    assert_eq!(wrapped.classify().cause(), GO_AWAY);
    let twice = io::Error::new(io::ErrorKind::BrokenPipe, wrapped);
    assert_eq!(twice.classify().cause(), GO_AWAY);
    let boxed: Box<dyn Error + Send + Sync> = Box::new(twice);
    assert_eq!(boxed.classify().cause(), GO_AWAY);
}

#[tokio::test]
async fn a_refused_connect_outside_any_connector_is_a_connect_error() {
    let addr = support::closed_port().await;
    let err = tokio::net::TcpStream::connect(addr).await.unwrap_err();
    let verdict = classify(&err);
    assert_eq!(
        verdict.cause(),
        Cause::Connect(hyper_classify::ConnectKind::Refused)
    );
    assert_eq!(verdict.safety(), RetrySafety::AnyRequest);
}

#[tokio::test]
async fn tokio_timeouts_are_timeouts() {
    let elapsed = tokio::time::timeout(
        std::time::Duration::from_millis(1),
        std::future::pending::<()>(),
    )
    .await
    .unwrap_err();
    let verdict = classify(&io::Error::other(elapsed));
    assert_eq!(verdict.cause(), Cause::Timeout);
    assert_eq!(verdict.safety(), RetrySafety::IdempotentOnly);
    assert_eq!(verdict.pace(), Pace::Backoff);
}

/// `hyper::upgrade::on` fails with `Canceled` when its connection is gone
/// before the upgrade: that request was answered, so it is not unsent.
/// hyper 1 prints only "operation was canceled" (the upgrade is the
/// error's source), hyper 0.14 prints both.
#[tokio::test]
async fn an_abandoned_upgrade_is_not_a_request_handed_back_unsent() {
    #[cfg(feature = "modern")]
    {
        let err = support::modern::abandoned_upgrade().await;
        assert!(err.is_canceled(), "{err:?}");
        assert_ne!(classify(&err).cause(), Cause::NotSent, "{err:?}");
        assert_eq!(classify(&err).safety(), RetrySafety::Never);
    }
    #[cfg(feature = "legacy")]
    {
        let err = support::legacy::abandoned_upgrade().await;
        assert!(err.is_canceled(), "{err:?}");
        assert_ne!(classify(&err).cause(), Cause::NotSent, "{err:?}");
        assert_eq!(classify(&err).safety(), RetrySafety::Never);
    }
}

/// tower's `Timeout` (0.4 and 0.5) gives up with its own `Elapsed`, boxed:
/// the error a `Retry` around a `Timeout` sees.
#[tokio::test]
async fn tower_timeouts_are_timeouts() {
    let never = |_: ()| std::future::pending::<Result<(), io::Error>>();
    let limit = std::time::Duration::from_millis(1);
    let timeout_05 = tower::timeout::Timeout::new(tower::service_fn(never), limit);
    let err_05 = tower::ServiceExt::oneshot(timeout_05, ())
        .await
        .unwrap_err();
    let timeout_04 = tower_04::timeout::Timeout::new(tower_04::service_fn(never), limit);
    let err_04 = tower_04::ServiceExt::oneshot(timeout_04, ())
        .await
        .unwrap_err();
    for err in [err_05, err_04] {
        let verdict = classify(&*err);
        assert_eq!(verdict.cause(), Cause::Timeout, "{err}");
        assert_eq!(verdict.safety(), RetrySafety::IdempotentOnly);
    }
    // The same words inside a longer message are not a timer's.
    let wordy = io::Error::other("the request timed out, said the proxy");
    assert_ne!(classify(&wordy).cause(), Cause::Timeout);
}

/// An error of the caller's own, with an optional cause and an optional
/// self-loop (a buggy `source()` that returns itself).
#[derive(Debug)]
struct Custom {
    text: String,
    next: Option<Box<dyn Error + Send + Sync>>,
    self_loop: bool,
}

impl fmt::Display for Custom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Error for Custom {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        if self.self_loop {
            return Some(self);
        }
        self.next.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

fn custom(text: &str, next: Option<Box<dyn Error + Send + Sync>>) -> Custom {
    Custom {
        text: text.into(),
        next,
        self_loop: false,
    }
}

#[test]
fn an_unknown_error_is_unrecognized_and_never_retried() {
    let verdict = classify(&custom("the caller's own failure", None));
    assert_eq!(verdict.cause(), Cause::Unrecognized { h2_shaped: false });
    assert_eq!(verdict.safety(), RetrySafety::Never);
}

#[test]
fn a_self_sourced_error_does_not_hang() {
    let mut err = custom("loops", None);
    err.self_loop = true;
    assert_eq!(
        classify(&err).cause(),
        Cause::Unrecognized { h2_shaped: false }
    );
}

#[test]
fn a_10_000_deep_chain_is_walked_only_to_the_bound() {
    let mut err: Box<dyn Error + Send + Sync> =
        Box::new(io::Error::from(io::ErrorKind::BrokenPipe));
    for depth in 0..10_000 {
        err = Box::new(custom(&format!("layer {depth}"), Some(err)));
    }
    assert_eq!(hyper_classify::Chain::new(&*err).count(), MAX_LINKS);
    // The broken pipe is 10,000 links down: out of sight, so nothing is known.
    assert_eq!(
        err.classify().cause(),
        Cause::Unrecognized { h2_shaped: false }
    );

    let mut shallow: Box<dyn Error + Send + Sync> =
        Box::new(io::Error::from(io::ErrorKind::BrokenPipe));
    for depth in 0..MAX_LINKS - 1 {
        shallow = Box::new(custom(&format!("layer {depth}"), Some(shallow)));
    }
    assert_eq!(shallow.classify().cause(), Cause::ConnectionLost);

    // Dropping a deep chain recurses; unwind it link by link instead.
    let mut next = Some(err);
    while let Some(link) = next.take() {
        next = match link.downcast::<Custom>() {
            Ok(mut custom) => custom.next.take(),
            Err(_) => None,
        };
    }
}

/// One link of an arbitrary chain.
#[derive(Clone, Debug)]
enum Spec {
    Io(usize),
    Text(String),
    SelfLoop,
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        (0..support::IO_KINDS.len()).prop_map(Spec::Io),
        "(GoAway\\(|Reset\\(|dns error|[a-z ]{0,12}){1,3}".prop_map(Spec::Text),
        Just(Spec::SelfLoop),
    ]
}

fn build(specs: &[Spec]) -> Box<dyn Error + Send + Sync> {
    let mut next: Option<Box<dyn Error + Send + Sync>> = None;
    for spec in specs.iter().rev() {
        next = Some(match spec {
            Spec::Io(k) => match next {
                Some(inner) => Box::new(io::Error::new(support::IO_KINDS[*k], inner)),
                None => Box::new(io::Error::from(support::IO_KINDS[*k])),
            },
            Spec::Text(text) => Box::new(custom(text, next)),
            Spec::SelfLoop => Box::new(Custom {
                text: "loop".into(),
                next,
                self_loop: true,
            }),
        });
    }
    next.unwrap_or_else(|| Box::new(custom("empty", None)))
}

proptest! {
    #[test]
    fn classify_never_panics_and_is_deterministic(specs in prop::collection::vec(spec(), 0..48)) {
        let err = build(&specs);
        let verdict = err.classify();
        prop_assert_eq!(verdict, err.classify());
        prop_assert!(hyper_classify::Chain::new(&*err).count() <= MAX_LINKS);
        if let Cause::Unrecognized { .. } = verdict.cause() {
            prop_assert_eq!(verdict.safety(), RetrySafety::Never);
        }
    }

    #[test]
    fn wrapping_in_an_io_error_of_kind_other_changes_nothing(specs in prop::collection::vec(spec(), 1..8)) {
        let err = build(&specs);
        let verdict = err.classify();
        let wrapped = io::Error::other(err);
        prop_assert_eq!(wrapped.classify(), verdict);
    }
}
