//! Classification cost on real chains from both stacks: hyper-classify's
//! `classify` against the naive single-version `find_source` loop that
//! shipped the bug, side by side, with heap allocations per call.
//!
//! ```text
//! cargo bench -p hyper-classify --features legacy,modern --bench classify
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::error::Error;
use std::hint::black_box;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use h2_frame_server::{FrameServer, Reason};
use http_body_util::Empty;

/// Counts heap allocations, so "no allocation" is measured, not assumed.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

type Chain = Box<dyn Error + Send + Sync>;

/// What shipped: look for h2 0.4's error along `source()`.
fn naive(err: &(dyn Error + 'static)) -> Option<h2_04::Reason> {
    let mut next = Some(err);
    while let Some(link) = next {
        if let Some(h2) = link.downcast_ref::<h2_04::Error>() {
            return h2.reason();
        }
        next = link.source();
    }
    None
}

async fn server(action: fn(u32) -> Action) -> FrameServer {
    FrameServer::start(move |mut conn| async move {
        conn.handshake().await?;
        if let Some(stream) = conn.next_request().await? {
            match action(stream) {
                Action::GoAway => conn.go_away(0, Reason::NO_ERROR).await?,
                Action::Reset => conn.reset(stream, Reason::REFUSED_STREAM).await?,
                Action::Close => {
                    conn.go_away(stream, Reason::NO_ERROR).await?;
                    return conn.close().await;
                }
            }
        }
        conn.drain().await
    })
    .await
    .expect("bind")
}

enum Action {
    GoAway,
    Reset,
    Close,
}

async fn legacy_error(url: &str) -> Chain {
    let client = hyper_0_14::Client::builder()
        .http2_only(true)
        .build_http::<hyper_0_14::Body>();
    Box::new(client.get(url.parse().unwrap()).await.unwrap_err())
}

async fn modern_error(url: &str) -> Chain {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Empty<Bytes>>();
    Box::new(client.get(url.parse().unwrap()).await.unwrap_err())
}

#[derive(Debug)]
struct Unknown;
impl std::fmt::Display for Unknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an application error")
    }
}
impl Error for Unknown {}

/// Real chains from both stacks, named.
fn chains() -> Vec<(String, Chain)> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let go_away = server(|_| Action::GoAway).await;
        let reset = server(|_| Action::Reset).await;
        let close = server(|_| Action::Close).await;
        let refused = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}/", listener.local_addr().unwrap())
        };
        let mut chains: Vec<(String, Chain)> = vec![
            ("0.14 GOAWAY".into(), legacy_error(&go_away.url()).await),
            ("1 GOAWAY".into(), modern_error(&go_away.url()).await),
            (
                "0.14 REFUSED_STREAM".into(),
                legacy_error(&reset.url()).await,
            ),
            ("1 REFUSED_STREAM".into(), modern_error(&reset.url()).await),
            ("0.14 connect refused".into(), legacy_error(&refused).await),
            ("1 connect refused".into(), modern_error(&refused).await),
            (
                "1 io (close in flight)".into(),
                modern_error(&close.url()).await,
            ),
            ("unrecognized".into(), Box::new(Unknown)),
        ];
        for depth in 1..=6 {
            let mut chain = modern_error(&go_away.url()).await;
            for _ in 1..depth {
                chain = Box::new(io::Error::other(chain));
            }
            chains.push((format!("1 GOAWAY, depth {depth}"), chain));
        }
        chains
    })
}

/// ns per call of `f` over `chain`, measured over `iterations` calls.
fn time<T>(
    iterations: u32,
    chain: &(dyn Error + 'static),
    f: impl Fn(&(dyn Error + 'static)) -> T,
) -> f64 {
    let started = Instant::now();
    for _ in 0..iterations {
        black_box(f(black_box(chain)));
    }
    started.elapsed().as_nanos() as f64 / f64::from(iterations)
}

fn side_by_side(c: &mut Criterion) {
    let chains = chains();
    println!(
        "\n{:<24} {:>14} {:>14} {:>7} {:>18} {:>10}",
        "chain", "classify ns", "naive ns", "ratio", "allocs/classify", "verdict"
    );
    for (name, chain) in &chains {
        let chain: &(dyn Error + 'static) = &**chain;
        // Warm up, then measure both in the same run, interleaved.
        time(10_000, chain, hyper_classify::classify);
        let (mut ours, mut theirs) = (0.0, 0.0);
        for _ in 0..5 {
            ours += time(20_000, chain, hyper_classify::classify);
            theirs += time(20_000, chain, naive);
        }
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for _ in 0..1000 {
            black_box(hyper_classify::classify(black_box(chain)));
        }
        let allocations = (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / 1000.0;
        let verdict = hyper_classify::classify(chain);
        println!(
            "{:<24} {:>14.1} {:>14.1} {:>7.2} {:>18} {:>10}",
            name,
            ours / 5.0,
            theirs / 5.0,
            ours / theirs,
            allocations,
            format!("{:?}", verdict.cause())
                .split([' ', '{', '('])
                .next()
                .unwrap_or("")
        );
    }
    println!(
        "ratio: classify / naive. The naive loop reads one h2 version and answers nothing else.\n"
    );

    let mut group = c.benchmark_group("classify");
    for (name, chain) in &chains {
        group.bench_function(format!("hyper-classify/{name}"), |b| {
            b.iter(|| hyper_classify::classify(black_box(&**chain)))
        });
        group.bench_function(format!("naive/{name}"), |b| {
            b.iter(|| naive(black_box(&**chain)))
        });
    }
    group.finish();
}

criterion_group!(benches, side_by_side);
criterion_main!(benches);
