//! A request parked at the peer's stream limit when the connection ends.
//!
//! The server (the `h2` crate's) allows one stream at a time. The client
//! sends `GET /slow`, which the server holds; then the request under test,
//! which hyper hands to h2 and h2 parks, its stream unable to open. Then the
//! server ends the connection: a graceful shutdown (`GOAWAY` `NO_ERROR` in
//! two phases), an abrupt one with a reason, or a bare TCP close.
//!
//! hyper 0.14 and 1.12 drop the parked request ("dispatch task is gone");
//! hyper 1.13 fails it with `Canceled` or with the `GOAWAY`'s reason alone.
//! Whatever the version, the verdict must say: a `GET` may be retried, a
//! request with a body may be retried whatever its method (its body was
//! never piped), a bodiless `POST` whose HEADERS may have left is not, and
//! the pace follows the reason when the error carries one. The server keeps
//! a ledger, so a verdict of "any request" is checked against what it
//! really processed.

mod support;

use std::collections::BTreeMap;
use std::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h2_04 as h2;
use hyper_classify::{Cause, Pace, Reason, RequestBody, RetrySafety, Verdict};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::time::timeout;

/// How the server ends the connection once the request is parked.
#[derive(Clone, Copy, Debug)]
enum End {
    /// `graceful_shutdown()`: `GOAWAY(2^31-1, NO_ERROR)`, a PING, then
    /// `GOAWAY(last_stream_id, NO_ERROR)`.
    Graceful,
    /// `abrupt_shutdown(reason)`.
    Abrupt(h2::Reason),
    /// The TCP connection closes, with no `GOAWAY`.
    Close,
}

const ENDS: [End; 4] = [
    End::Graceful,
    End::Abrupt(h2::Reason::ENHANCE_YOUR_CALM),
    End::Abrupt(h2::Reason::INTERNAL_ERROR),
    End::Close,
];

/// The request under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Parked {
    Get,
    PostWithBody,
    BodilessPost,
}

const PARKED: [Parked; 3] = [Parked::Get, Parked::PostWithBody, Parked::BodilessPost];

impl Parked {
    fn is_post(self) -> bool {
        self != Parked::Get
    }

    fn body(self) -> &'static str {
        match self {
            Parked::PostWithBody => "a body",
            _ => "",
        }
    }

    fn request_body(self) -> RequestBody {
        RequestBody::from_end_stream(self.body().is_empty())
    }
}

/// What the server saw of `/parked` requests.
#[derive(Default)]
struct Ledger {
    /// HEADERS received.
    heads: AtomicUsize,
    /// Received complete (END_STREAM seen): processed.
    complete: AtomicUsize,
}

/// One trial's server: `/slow` is held until the test says `end`.
struct TrialServer {
    url: String,
    slow_arrived: oneshot::Receiver<()>,
    end_now: oneshot::Sender<()>,
    ledger: Arc<Ledger>,
}

/// `answer_first`: answer `/slow` first, then drive the connection this
/// many times before ending it (so the parked stream opens as it ends).
async fn trial_server(end: End, answer_first: Option<u32>) -> TrialServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (arrived_tx, slow_arrived) = oneshot::channel();
    let (end_now, end_rx) = oneshot::channel();
    let ledger = Arc::new(Ledger::default());
    let seen = ledger.clone();
    tokio::spawn(async move {
        let mut script = Some((arrived_tx, end_rx));
        // A client may open a second connection (hyper-util replays what it
        // was handed back): every connection is served and counted.
        while let Ok((tcp, _)) = listener.accept().await {
            let script = script.take();
            tokio::spawn(serve(tcp, end, answer_first, script, seen.clone()));
        }
    });
    TrialServer {
        url,
        slow_arrived,
        end_now,
        ledger,
    }
}

type Script = (oneshot::Sender<()>, oneshot::Receiver<()>);

async fn serve(
    tcp: tokio::net::TcpStream,
    end: End,
    answer_first: Option<u32>,
    script: Option<Script>,
    ledger: Arc<Ledger>,
) {
    let _ = tcp.set_nodelay(true);
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(1)
        .handshake::<_, Bytes>(tcp);
    let Ok(Ok(mut conn)) = timeout(Duration::from_secs(5), handshake).await else {
        return;
    };
    if let Some((arrived, end_rx)) = script {
        let Some(Ok((_, mut slow))) = conn.accept().await else {
            return;
        };
        let _ = arrived.send(());
        // Drive the connection until the test says the request is parked.
        tokio::pin!(end_rx);
        loop {
            tokio::select! {
                _ = &mut end_rx => break,
                next = conn.accept() => match next {
                    Some(Ok((req, respond))) => {
                        tokio::spawn(record(req, respond, ledger.clone()));
                    }
                    _ => return,
                },
            }
        }
        if let Some(polls) = answer_first {
            let _ = slow.send_response(http::Response::new(()), true);
            for _ in 0..polls {
                tokio::select! {
                    biased;
                    next = conn.accept() => match next {
                        Some(Ok((req, respond))) => {
                            tokio::spawn(record(req, respond, ledger.clone()));
                        }
                        _ => return,
                    },
                    _ = tokio::task::yield_now() => {}
                }
            }
        }
        match end {
            End::Graceful => conn.graceful_shutdown(),
            End::Abrupt(reason) => conn.abrupt_shutdown(reason),
            // The connection first: `/slow`'s stream must not end (and
            // free the parked request's slot) before it.
            End::Close => {
                drop(conn);
                drop(slow);
                return;
            }
        }
        let _ = slow.send_response(http::Response::new(()), true);
    }
    let drive = async {
        while let Some(Ok((req, respond))) = conn.accept().await {
            tokio::spawn(record(req, respond, ledger.clone()));
        }
    };
    let _ = timeout(Duration::from_secs(3), drive).await;
}

/// Reads a request to its end, counting a `/parked` one, and answers it.
async fn record(
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    ledger: Arc<Ledger>,
) {
    let parked = req.uri().path() == "/parked";
    if parked {
        ledger.heads.fetch_add(1, Ordering::SeqCst);
    }
    let mut body = req.into_body();
    while let Some(chunk) = body.data().await {
        let Ok(chunk) = chunk else { return };
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    if parked {
        ledger.complete.fetch_add(1, Ordering::SeqCst);
    }
    let _ = respond.send_response(http::Response::new(()), true);
}

/// How each stack sends one request; the error boxed for classifying.
type Outcome = Result<(), Box<dyn Error + Send + Sync>>;

#[derive(Clone, Copy, Debug)]
enum Stack {
    #[cfg(feature = "legacy")]
    Legacy,
    #[cfg(feature = "modern")]
    Modern,
}

const STACKS: &[Stack] = &[
    #[cfg(feature = "legacy")]
    Stack::Legacy,
    #[cfg(feature = "modern")]
    Stack::Modern,
];

/// A fresh HTTP/2 client of `stack`: a function sending `(method, url,
/// body)`.
fn client(stack: Stack) -> Arc<dyn Fn(bool, String, &'static str) -> Sending + Send + Sync> {
    match stack {
        #[cfg(feature = "legacy")]
        Stack::Legacy => {
            let client = hyper_0_14::Client::builder()
                .http2_only(true)
                .build_http::<hyper_0_14::Body>();
            Arc::new(move |post, url, body| {
                let client = client.clone();
                Box::pin(async move {
                    let req = hyper_0_14::Request::builder()
                        .method(if post { "POST" } else { "GET" })
                        .uri(url)
                        .body(hyper_0_14::Body::from(body))
                        .unwrap();
                    client.request(req).await.map(drop).map_err(Into::into)
                })
            })
        }
        #[cfg(feature = "modern")]
        Stack::Modern => {
            use hyper_util::client::legacy::Client;
            let client = Client::builder(hyper_util::rt::TokioExecutor::new())
                .http2_only(true)
                .build_http::<http_body_util::Full<Bytes>>();
            Arc::new(move |post, url, body| {
                let client = client.clone();
                Box::pin(async move {
                    let req = http::Request::builder()
                        .method(if post { "POST" } else { "GET" })
                        .uri(url)
                        .body(http_body_util::Full::new(Bytes::from_static(
                            body.as_bytes(),
                        )))
                        .unwrap();
                    client.request(req).await.map(drop).map_err(Into::into)
                })
            })
        }
    }
}

type Sending = std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send>>;

/// What one trial gave.
struct Trial {
    /// The parked request's verdict (refined by its body), `None` if it
    /// succeeded.
    verdict: Option<Verdict>,
    /// The error's shape, for the report.
    shape: String,
    heads: usize,
    complete: usize,
}

/// One trial: `/slow`, then `parked` behind it, then the server's `end`.
async fn trial(stack: Stack, parked: Parked, end: End, answer_first: Option<u32>) -> Trial {
    let mut server = trial_server(end, answer_first).await;
    let send = client(stack);
    let slow = tokio::spawn(send(false, format!("{}/slow", server.url), ""));
    timeout(Duration::from_secs(5), &mut server.slow_arrived)
        .await
        .expect("/slow reaches the server")
        .unwrap();
    let under_test = tokio::spawn(send(
        parked.is_post(),
        format!("{}/parked", server.url),
        parked.body(),
    ));
    // Long enough for hyper to hand it to h2 and h2 to park it.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let _ = server.end_now.send(());
    let outcome = timeout(Duration::from_secs(10), under_test)
        .await
        .expect("the parked request ends")
        .unwrap();
    let _ = timeout(Duration::from_secs(10), slow).await;
    let (verdict, shape) = match &outcome {
        Ok(()) => (None, "answered".to_owned()),
        Err(err) => (
            Some(hyper_classify::classify(&**err).for_body(parked.request_body())),
            shape_of(&**err),
        ),
    };
    Trial {
        verdict,
        shape,
        heads: server.ledger.heads.load(Ordering::SeqCst),
        complete: server.ledger.complete.load(Ordering::SeqCst),
    }
}

/// The error's chain, each link's `Debug` up to its first `(` or `{`
/// detail: enough to tell hyper's shapes apart in the report.
fn shape_of(err: &(dyn Error + 'static)) -> String {
    let debug = format!("{err:?}");
    debug
        .chars()
        .filter(|c| !c.is_whitespace())
        .take(90)
        .collect()
}

/// Asserts what must hold of one trial's verdict.
fn check(stack: Stack, parked: Parked, end: End, t: &Trial) {
    let context = format!("{stack:?} {parked:?} {end:?}: {}", t.shape);
    assert!(t.complete <= 1, "{context}: processed twice");
    let Some(v) = t.verdict else { return };
    assert!(v.permits_retry(true), "{context}: {v}: a GET is retried");
    if v.safety() == RetrySafety::AnyRequest {
        assert_eq!(t.complete, 0, "{context}: {v}, but the server processed it");
    }
    match parked {
        // Its body was never piped. (Once `/slow` ends, its stream may
        // open and its body leave: then the io error is the verdict's.)
        Parked::PostWithBody
            if matches!(v.cause(), Cause::Parked { .. } | Cause::GoAway { .. }) =>
        {
            assert_eq!(v.safety(), RetrySafety::AnyRequest, "{context}: {v}")
        }
        // Its HEADERS carried END_STREAM and may have left: only a request
        // handed back or refused by the peer is safe for any method.
        Parked::BodilessPost if !(v.cause() == Cause::NotSent || is_refused(v)) => {
            assert_ne!(v.safety(), RetrySafety::AnyRequest, "{context}: {v}")
        }
        _ => {}
    }
    if is_refused(v) {
        return;
    }
    if let End::Abrupt(wire) = end {
        let reason = Reason::from(u32::from(wire));
        let expected = match reason {
            Reason::ENHANCE_YOUR_CALM => Pace::Throttled,
            _ => Pace::Backoff,
        };
        match v.cause() {
            Cause::GoAway { reason: said, .. } | Cause::Parked { reason: Some(said) } => {
                assert_eq!(said, reason, "{context}");
                assert_eq!(v.pace(), expected, "{context}: {v}");
            }
            // hyper 0.14 and 1.12 drop the request and the reason with it.
            // Or `/slow` ended first, the stream opened and the connection
            // closed under it.
            Cause::Parked { reason: None } | Cause::ConnectionLost => {}
            _ => panic!("{context}: {v}"),
        }
    }
}

/// The server's h2 refused the stream (`RST_STREAM(REFUSED_STREAM)`): it
/// came after the shutdown, and no application saw it.
fn is_refused(v: Verdict) -> bool {
    matches!(
        v.cause(),
        Cause::StreamReset { reason, .. } if reason == Reason::REFUSED_STREAM
    )
}

/// Runs `trials` of every row on every stack, checking each and printing
/// how often each shape came.
async fn run_rows(trials: usize) {
    for &stack in STACKS {
        for parked in PARKED {
            for end in ENDS {
                let mut shapes = BTreeMap::<String, usize>::new();
                for _ in 0..trials {
                    let t = trial(stack, parked, end, None).await;
                    check(stack, parked, end, &t);
                    let verdict = t.verdict.map_or("-".to_owned(), |v| v.to_string());
                    *shapes
                        .entry(format!("{verdict} <- {}", t.shape))
                        .or_default() += 1;
                }
                for (shape, n) in shapes {
                    eprintln!("{stack:?} {parked:?} {end:?}: {n}x {shape}");
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_request_is_retried_as_its_body_allows_on_every_stack() {
    run_rows(10).await;
}

/// A server that acts on a request's HEADERS alone: a bodiless `POST`'s
/// HEADERS carry `END_STREAM`, so one that may have left must never be
/// replayed. The connection ends as `/slow`'s answer frees the stream, so
/// the parked request often opens just as the `GOAWAY` comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bodiless_post_that_may_have_left_is_never_replayed() {
    const TRIALS: usize = 1000;
    let (mut replayed_after_head, mut errors_after_head) = (0, 0);
    let mut shapes = BTreeMap::<String, usize>::new();
    for i in 0..TRIALS {
        let stack = STACKS[i % STACKS.len()];
        let end = [End::Graceful, End::Abrupt(h2::Reason::ENHANCE_YOUR_CALM)][i / 2 % 2];
        let answer_first = u32::try_from(i / 4 % 4).ok();
        let t = trial(stack, Parked::BodilessPost, end, answer_first).await;
        check(stack, Parked::BodilessPost, end, &t);
        if let Some(v) = t.verdict {
            if t.heads > 0 {
                errors_after_head += 1;
                replayed_after_head += usize::from(v.permits_retry(false));
                *shapes.entry(format!("{v} <- {}", t.shape)).or_default() += 1;
            }
        }
    }
    eprintln!(
        "{TRIALS} trials: {errors_after_head} failed after the server acted on their HEADERS, \
         {replayed_after_head} of them would be replayed"
    );
    for (shape, n) in shapes {
        eprintln!("  {n}x {shape}");
    }
    assert_eq!(replayed_after_head, 0);
}
