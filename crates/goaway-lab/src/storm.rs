//! The GOAWAY storm: what a server that drains every 100 requests costs each
//! stack, bare and with hyper-classify, measured side by side against the
//! same server with no connection limit.

use std::time::Instant;

use h2_frame_server::ledger::{self, Chaos};
use h2_frame_server::peers::{self, Kind, Peer};

use crate::drive::{self, ClientTally, Mode, Stack};

/// Options of `goaway-lab storm`.
#[derive(clap::Args)]
pub struct StormArgs {
    /// Requests per stack, server and mode.
    #[arg(long, default_value_t = 100_000)]
    requests: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Streams per connection before the draining server sends GOAWAY.
    #[arg(long, default_value_t = 100)]
    drain_every: usize,
    /// Also run against nginx (`keepalive_requests` = `--drain-every`,
    /// against nginx without a limit).
    #[arg(long)]
    nginx: bool,
    /// Skip the in-process server (with `--nginx`: nginx only).
    #[arg(long, requires = "nginx")]
    nginx_only: bool,
}

struct Measured {
    tally: ClientTally,
    seconds: f64,
}

impl Measured {
    fn throughput(&self) -> f64 {
        self.tally.requests as f64 / self.seconds
    }

    fn percentile(&self, p: f64) -> f64 {
        let mut sorted = self.tally.latencies_us.clone();
        sorted.sort_unstable();
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted.get(index).copied().unwrap_or(0) as f64 / 1000.0
    }
}

/// The server a storm runs against.
#[derive(Clone, Copy)]
enum Server {
    /// The in-process h2 server; draining every n streams, or never.
    InProcess(Option<usize>),
    /// nginx with `keepalive_requests n`.
    Nginx(u64),
}

async fn measure(
    stack: Stack,
    mode: Mode,
    server: Server,
    args: &StormArgs,
) -> Result<(Measured, Option<u64>), String> {
    let (url, ledger, _nginx) = match server {
        Server::InProcess(drain) => {
            let chaos = Chaos {
                go_away_every: drain.unwrap_or(usize::MAX),
                ..Chaos::default()
            };
            let (addr, ledger) = ledger::serve(chaos).await;
            (format!("http://{addr}/"), Some(ledger), None)
        }
        Server::Nginx(keepalive) => {
            let binary = peers::find(Kind::Nginx).ok_or("nginx is not installed")?;
            let directives = format!("keepalive_requests {keepalive};");
            let peer = Peer::nginx(&binary, &directives).map_err(|e| e.to_string())?;
            (peer.url(), None, Some(peer))
        }
    };
    let started = Instant::now();
    let tally = drive::run(
        stack,
        mode,
        &url,
        args.requests,
        args.concurrency,
        false,
        || {},
    )
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let duplicates =
        ledger.map(|l| l.duplicates().into_iter().filter(|id| id % 2 == 0).count() as u64);
    Ok((Measured { tally, seconds }, duplicates))
}

/// Runs the storm and prints the figures.
pub async fn run(args: &StormArgs) -> Result<(), String> {
    if args.requests == 0 || args.concurrency == 0 || args.drain_every == 0 {
        return Err("--requests, --concurrency and --drain-every must be at least 1".into());
    }
    println!(
        "GOAWAY storm: {} requests per run, {} in flight, drain every {} streams (in-process: graceful GOAWAY; nginx: keepalive_requests)",
        args.requests, args.concurrency, args.drain_every
    );
    println!(
        "{:<14} {:<11} {:<15} {:>12} {:>12} {:>9} {:>9} {:>9} {:>8} {:>8} {:>6}",
        "server",
        "stack",
        "mode",
        "req/s drain",
        "req/s open",
        "ratio",
        "p50 ratio",
        "p99 ratio",
        "errors",
        "retries",
        "dups"
    );
    let mut servers = Vec::new();
    if !args.nginx_only {
        servers.push((
            "in-process h2",
            Server::InProcess(Some(args.drain_every)),
            Server::InProcess(None),
        ));
    }
    if args.nginx {
        servers.push((
            "nginx",
            Server::Nginx(args.drain_every as u64),
            Server::Nginx(1_000_000_000),
        ));
    }
    for (server_name, draining, open) in servers {
        for stack in Stack::ALL {
            for mode in [Mode::Bare, Mode::Classify] {
                let (drain, duplicates) = measure(stack, mode, draining, args).await?;
                let (open, _) = measure(stack, mode, open, args).await?;
                println!(
                    "{:<14} {:<11} {:<15} {:>12.0} {:>12.0} {:>9.3} {:>9.3} {:>9.3} {:>8} {:>8} {:>6}",
                    server_name,
                    stack.name(),
                    mode.name(),
                    drain.throughput(),
                    open.throughput(),
                    drain.throughput() / open.throughput(),
                    drain.percentile(0.5) / open.percentile(0.5),
                    drain.percentile(0.99) / open.percentile(0.99),
                    drain.tally.errors,
                    drain.tally.retries,
                    duplicates.map_or_else(|| "-".to_string(), |d| d.to_string()),
                );
            }
        }
    }
    println!("ratio: draining server / same server without a limit (1.0 = no cost). errors: reached the caller.");
    Ok(())
}
