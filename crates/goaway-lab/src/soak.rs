//! The soak: a million requests through the retry layer against a server
//! that drains every 100 streams, watching the client's memory and the
//! policy's counters.
//!
//! The server runs in a child process (`goaway-lab soak-server`), so its
//! ledger of every request id neither shows in the client's resident set
//! nor competes with the client's runtime. The client keeps nothing per
//! request: a fixed set of workers draws ids from a counter.
//!
//! It fails (exit code 1) when the resident set grows by 10 % or more from
//! the first sample (taken once a tenth of the requests has finished, when
//! pools and allocator arenas are warm) to the largest later one, when the
//! policy's counters disagree with each other or with what the callers saw,
//! when a request hangs, or when a POST is processed twice.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use h2_frame_server::ledger::{self, Chaos};
use hyper_classify::retry::{self, RetryConfig, RetryStats};

use crate::drive::{Client, Kind, Mode, Stack, Target, REQUEST_TIMEOUT};

/// Options of `goaway-lab soak`.
#[derive(clap::Args)]
pub struct SoakArgs {
    /// Requests per stack (in turn a GET, a POST with a body, a POST without).
    #[arg(long, default_value_t = 1_000_000)]
    requests: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Streams per connection before the server sends GOAWAY.
    #[arg(long, default_value_t = 100)]
    drain_every: usize,
    /// Only this stack (both when absent).
    #[arg(long, value_enum)]
    stack: Option<StackArg>,
}

/// `--stack`'s values.
#[derive(Clone, Copy, clap::ValueEnum)]
enum StackArg {
    /// hyper 0.14.
    Legacy,
    /// hyper 1.
    Modern,
}

/// Growth of the resident set, from the first sample to the largest later
/// one, at which the soak fails.
const MAX_RSS_GROWTH: f64 = 0.10;

/// Samples of the resident set: one per tenth of the requests.
const SAMPLES: u64 = 10;

/// Runs the soak on each stack asked for and prints what it saw.
pub async fn run(args: &SoakArgs) -> Result<(), String> {
    if args.requests < SAMPLES || args.concurrency == 0 || args.drain_every == 0 {
        return Err(format!(
            "--requests must be at least {SAMPLES}, --concurrency and --drain-every at least 1"
        ));
    }
    let stacks = match args.stack {
        None => Stack::ALL.to_vec(),
        Some(StackArg::Legacy) => vec![Stack::Legacy],
        Some(StackArg::Modern) => vec![Stack::Modern],
    };
    println!(
        "soak: {} requests per stack through the retry layer (defaults, TCP_NODELAY on), \
         {} in flight, a server in a child process draining every {} streams",
        args.requests, args.concurrency, args.drain_every
    );
    let mut broken = Vec::new();
    for stack in stacks {
        broken.extend(soak(stack, args).await?);
    }
    if broken.is_empty() {
        println!("soak passed");
        Ok(())
    } else {
        Err(format!("soak failed: {}", broken.join("; ")))
    }
}

/// What the callers saw, counted as they saw it.
#[derive(Default)]
struct Tally {
    done: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    hung: AtomicU64,
    /// Failures by stop reason: a handful of keys, whatever the count.
    why: Mutex<BTreeMap<String, u64>>,
}

/// One stack's soak; the promises it broke.
async fn soak(stack: Stack, args: &SoakArgs) -> Result<Vec<String>, String> {
    let mut server = SoakServer::start(args.drain_every)?;
    let url = format!("http://{}/", server.addr);
    let policy = retry::policy(RetryConfig::default()).map_err(|e| e.to_string())?;
    let client = Client::new(
        stack,
        Mode::Classify,
        policy.clone(),
        &Target::h2c(url.clone()),
    );
    let tally = Arc::new(Tally::default());
    let next_id = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let (client, url, tally, next_id) =
            (client.clone(), url.clone(), tally.clone(), next_id.clone());
        let requests = args.requests;
        workers.spawn(async move {
            loop {
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                if id >= requests {
                    return;
                }
                let kind = Kind::of(id, false);
                let sent = client.send(kind, &url, id);
                match tokio::time::timeout(REQUEST_TIMEOUT, sent).await {
                    Ok(outcome) => match outcome.result {
                        Ok(()) => tally.ok.fetch_add(1, Ordering::Relaxed),
                        Err(why) => {
                            let key = format!("{kind:?}: {why}");
                            *tally.why.lock().unwrap().entry(key).or_default() += 1;
                            tally.failed.fetch_add(1, Ordering::Relaxed)
                        }
                    },
                    Err(_elapsed) => tally.hung.fetch_add(1, Ordering::Relaxed),
                };
                tally.done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    println!("\n{}:", stack.name());
    println!(
        "{:>9} {:>10} {:>9} {:>12}",
        "progress", "requests", "RSS MiB", "ok/s since"
    );
    let started = Instant::now();
    let mut samples = Vec::new();
    let (mut last_ok, mut last_at) = (0, started);
    for sample in 1..=SAMPLES {
        let mark = args.requests * sample / SAMPLES;
        while tally.done.load(Ordering::Relaxed) < mark {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let rss = resident_bytes();
        let (ok, now) = (tally.ok.load(Ordering::Relaxed), Instant::now());
        let rate = (ok - last_ok) as f64 / now.duration_since(last_at).as_secs_f64();
        (last_ok, last_at) = (ok, now);
        let rss_text = rss.map_or("n/a".into(), |b| format!("{:.1}", b as f64 / 1048576.0));
        println!(
            "{:>8}% {:>10} {:>9} {:>12.0}",
            sample * 100 / SAMPLES,
            mark,
            rss_text,
            rate
        );
        samples.extend(rss);
    }
    while workers.join_next().await.is_some() {}
    let seconds = started.elapsed().as_secs_f64();
    let server_saw = server.finish()?;
    let stats = policy.stats();

    let mut broken = Vec::new();
    let context = stack.name();
    let (ok, failed, hung) = (
        tally.ok.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
        tally.hung.load(Ordering::Relaxed),
    );
    println!(
        "{ok} succeeded, {failed} failed {:?}, {hung} hung, in {seconds:.1} s ({:.0} ok/s)",
        tally.why.lock().unwrap(),
        ok as f64 / seconds
    );
    print_stats(&stats);
    println!("server: {server_saw}");
    match rss_growth(&samples) {
        Some((first, largest, growth)) => {
            println!(
                "RSS: {:.1} MiB at the first sample, {:.1} MiB at most later: {:+.1} %",
                first as f64 / 1048576.0,
                largest as f64 / 1048576.0,
                growth * 100.0
            );
            if growth >= MAX_RSS_GROWTH {
                broken.push(format!("{context}: RSS grew {:.1} %", growth * 100.0));
            }
        }
        None => {
            println!("RSS: not readable on this system (/proc/self/status); memory not checked")
        }
    }
    if hung > 0 {
        broken.push(format!("{context}: {hung} requests hung"));
    }
    if !stats.is_consistent() || stats.unfinished() != hung {
        broken.push(format!("{context}: the counters disagree: {stats:?}"));
    }
    if stats.requests != args.requests || stats.successes != ok || stats.failures != failed {
        broken.push(format!(
            "{context}: counted {} requests, {} successes, {} failures; the callers saw {}, {ok}, {failed}",
            stats.requests, stats.successes, stats.failures, args.requests
        ));
    }
    if server_saw.post_duplicates > 0 {
        broken.push(format!(
            "{context}: {} POSTs processed twice",
            server_saw.post_duplicates
        ));
    }
    Ok(broken)
}

fn print_stats(stats: &RetryStats) {
    println!(
        "stats: {} requests = {} successes + {} failures + {} unfinished; {} attempts, \
         {} retries ({} after GOAWAY, {} after a lost connection, {} unsent, {} other); \
         consistent: {}",
        stats.requests,
        stats.successes,
        stats.failures,
        stats.unfinished(),
        stats.attempts,
        stats.retries,
        stats.retries_go_away,
        stats.retries_connection_lost,
        stats.retries_not_sent,
        stats.retries_stream_reset
            + stats.retries_connect
            + stats.retries_timeout
            + stats.retries_other,
        if stats.is_consistent() { "yes" } else { "NO" },
    );
}

/// The first sample, the largest later one, and the growth between them.
fn rss_growth(samples: &[u64]) -> Option<(u64, u64, f64)> {
    let (&first, later) = samples.split_first()?;
    let largest = later.iter().copied().max().unwrap_or(first);
    Some((first, largest, largest as f64 / first as f64 - 1.0))
}

/// This process's resident set, in bytes, where `/proc` tells it.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// What the server process saw, printed when its input closes.
struct ServerSaw {
    line: String,
    post_duplicates: u64,
}

impl std::fmt::Display for ServerSaw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.line)
    }
}

/// The server, a child process: `goaway-lab soak-server`.
struct SoakServer {
    child: std::process::Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    addr: String,
}

impl SoakServer {
    fn start(drain_every: usize) -> Result<SoakServer, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .args(["soak-server", "--drain-every", &drain_every.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting the server process: {e}"))?;
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        let addr = match lines.next() {
            Some(Ok(addr)) => addr,
            _ => return Err("the server process did not say where it listens".into()),
        };
        Ok(SoakServer { child, lines, addr })
    }

    /// Closes the server's input, reads what it saw, and waits for it.
    fn finish(&mut self) -> Result<ServerSaw, String> {
        drop(self.child.stdin.take());
        let line = match self.lines.next() {
            Some(Ok(line)) => line,
            _ => return Err("the server process ended without its summary".into()),
        };
        let _ = self.child.wait();
        let post_duplicates = line
            .split_whitespace()
            .last()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("an unreadable server summary: {line:?}"))?;
        Ok(ServerSaw {
            line,
            post_duplicates,
        })
    }
}

impl Drop for SoakServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Options of `goaway-lab soak-server`.
#[derive(clap::Args)]
pub struct ServerArgs {
    /// Streams per connection before the server sends GOAWAY.
    #[arg(long)]
    drain_every: usize,
}

/// The soak's server: prints its address, serves until its input closes,
/// then prints what it saw, ending with the count of POSTs processed twice.
pub fn serve(args: &ServerArgs) -> Result<(), String> {
    // One worker: the client's runtime keeps the other core.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let chaos = Chaos {
        go_away_every: args.drain_every,
        ..Chaos::default()
    };
    let (addr, ledger) = runtime.block_on(ledger::serve(chaos));
    let mut out = std::io::stdout();
    writeln!(out, "{addr}")
        .and_then(|()| out.flush())
        .map_err(|e| e.to_string())?;
    // Blocks this thread, not the runtime's worker, until the client closes stdin.
    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
    let post_duplicates = ledger
        .duplicates()
        .into_iter()
        .filter(|id| Kind::of(*id, false) != Kind::Get)
        .count();
    writeln!(
        out,
        "{} connections, {} streams, {} GOAWAYs, POSTs processed twice {post_duplicates}",
        ledger.connections.load(Ordering::SeqCst),
        ledger.streams.load(Ordering::SeqCst),
        ledger.go_aways.load(Ordering::SeqCst),
    )
    .map_err(|e| e.to_string())
}
