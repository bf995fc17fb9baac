//! The GOAWAY storm: what a server that drains every 100 requests costs each
//! stack, bare and with hyper-classify, measured side by side against the
//! same server with no connection limit.
//!
//! Each figure is the median of `--runs` runs (drain and no-limit runs
//! alternate), with the spread (lowest to highest) beside it. The
//! in-process server runs on a runtime of its own, so client and server do
//! not queue behind each other's tasks; nginx is a process of its own.

use std::time::Instant;

use h2_frame_server::ledger::{self, Chaos};
use h2_frame_server::peers::{self, Kind as PeerKind, Peer};

use crate::drive::{self, ClientTally, Kind, Mode, Stack};

/// Options of `goaway-lab storm`.
#[derive(clap::Args)]
pub struct StormArgs {
    /// Requests per run (in turn a GET, a POST with a body, a POST without).
    #[arg(long, default_value_t = 60_000)]
    requests: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Streams per connection before the draining server sends GOAWAY.
    #[arg(long, default_value_t = 100)]
    drain_every: usize,
    /// Runs per figure; the tables give the median and the spread.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Also run against nginx (`keepalive_requests` = `--drain-every`,
    /// against nginx without a limit).
    #[arg(long)]
    nginx: bool,
    /// Skip the in-process server (with `--nginx`: nginx only).
    #[arg(long, requires = "nginx")]
    nginx_only: bool,
}

/// One run.
struct Measured {
    tally: ClientTally,
    seconds: f64,
    duplicates: Option<u64>,
}

impl Measured {
    /// Successful requests a second, of `kind` or (`None`) of every kind.
    fn successes_per_second(&self, kind: Option<Kind>) -> f64 {
        let ok = match kind {
            Some(kind) => self.tally.ok.get(&kind).copied().unwrap_or(0),
            None => self.tally.successes(),
        };
        ok as f64 / self.seconds
    }

    /// The `p`-quantile of `kind`'s latencies, in ms.
    fn percentile(&self, kind: Kind, p: f64) -> f64 {
        let mut sorted = self
            .tally
            .latencies_us
            .get(&kind)
            .cloned()
            .unwrap_or_default();
        sorted.sort_unstable();
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted.get(index).copied().unwrap_or(0) as f64 / 1000.0
    }
}

/// The median and the spread of some runs' figure.
struct Spread {
    median: f64,
    low: f64,
    high: f64,
}

impl Spread {
    fn of(runs: &[Measured], figure: impl Fn(&Measured) -> f64) -> Spread {
        let mut values: Vec<f64> = runs.iter().map(figure).collect();
        values.sort_by(f64::total_cmp);
        Spread {
            median: values[values.len() / 2],
            low: values[0],
            high: values[values.len() - 1],
        }
    }

    fn show(&self, decimals: usize) -> String {
        format!(
            "{:.*} ({:.*}–{:.*})",
            decimals, self.median, decimals, self.low, decimals, self.high
        )
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
) -> Result<Measured, String> {
    let (url, own, _nginx) = match server {
        Server::InProcess(drain) => {
            let chaos = Chaos {
                go_away_every: drain.unwrap_or(usize::MAX),
                ..Chaos::default()
            };
            let own = OwnRuntime::serve(chaos)?;
            (format!("http://{}/", own.addr), Some(own), None)
        }
        Server::Nginx(keepalive) => {
            let binary = peers::find(PeerKind::Nginx).ok_or("nginx is not installed")?;
            let directives = format!("keepalive_requests {keepalive};");
            let peer = Peer::nginx(&binary, &directives).map_err(|e| e.to_string())?;
            (peer.url(), None, Some(peer))
        }
    };
    let started = Instant::now();
    let tally = drive::run(
        stack,
        mode,
        &drive::Target::h2c(url),
        args.requests,
        args.concurrency,
        false,
        || {},
    )
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let duplicates = own.map(|own| {
        let duplicates = own.ledger.duplicates();
        own.stop();
        duplicates
            .into_iter()
            .filter(|id| Kind::of(*id, false) != Kind::Get)
            .count() as u64
    });
    Ok(Measured {
        tally,
        seconds,
        duplicates,
    })
}

/// The in-process server on a runtime of its own (one worker thread).
struct OwnRuntime {
    runtime: tokio::runtime::Runtime,
    addr: std::net::SocketAddr,
    ledger: std::sync::Arc<ledger::Ledger>,
}

impl OwnRuntime {
    fn serve(chaos: Chaos) -> Result<OwnRuntime, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        // Started from a thread of its own: a runtime cannot block on
        // another from inside the client's.
        let (addr, ledger) = std::thread::scope(|scope| {
            scope
                .spawn(|| runtime.block_on(ledger::serve(chaos)))
                .join()
                .expect("starting the server")
        });
        Ok(OwnRuntime {
            runtime,
            addr,
            ledger,
        })
    }

    fn stop(self) {
        self.runtime.shutdown_background();
    }
}

/// Runs the storm and prints the figures.
pub async fn run(args: &StormArgs) -> Result<(), String> {
    if args.requests == 0 || args.concurrency == 0 || args.drain_every == 0 || args.runs == 0 {
        return Err(
            "--requests, --concurrency, --drain-every and --runs must be at least 1".into(),
        );
    }
    println!(
        "GOAWAY storm: {} requests per run, {} in flight, drain every {} streams \
         (in-process: graceful GOAWAY; nginx: keepalive_requests), TCP_NODELAY on; \
         median (lowest–highest) of {} runs",
        args.requests, args.concurrency, args.drain_every, args.runs
    );
    println!(
        "{:<10} {:<10} {:<14} {:>24} {:>24} {:>6} {:>9} {:>22} {:>22} {:>6} {:>17} {:>8} {:>5}",
        "server",
        "stack",
        "mode",
        "ok/s draining",
        "ok/s no limit",
        "ratio",
        "GET ratio",
        "GET p99 ms draining",
        "GET p99 ms no limit",
        "ratio",
        "errors G/P+b/P",
        "retries",
        "dups"
    );
    let mut servers = Vec::new();
    if !args.nginx_only {
        servers.push((
            "in-process",
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
                let (mut drains, mut opens) = (Vec::new(), Vec::new());
                for _ in 0..args.runs {
                    drains.push(measure(stack, mode, draining, args).await?);
                    opens.push(measure(stack, mode, open, args).await?);
                }
                let ok = |runs: &[Measured]| Spread::of(runs, |m| m.successes_per_second(None));
                let get_ok = |runs: &[Measured]| {
                    Spread::of(runs, |m| m.successes_per_second(Some(Kind::Get)))
                };
                let get_p99 =
                    |runs: &[Measured]| Spread::of(runs, |m| m.percentile(Kind::Get, 0.99));
                let errors: Vec<String> = Kind::ALL
                    .into_iter()
                    .map(|kind| {
                        let total: u64 = drains.iter().map(|m| m.tally.errors_of(kind)).sum();
                        total.to_string()
                    })
                    .collect();
                let retries: u64 = drains.iter().map(|m| m.tally.retries).sum();
                let dups: Option<u64> = drains.iter().map(|m| m.duplicates).sum();
                println!(
                    "{:<10} {:<10} {:<14} {:>24} {:>24} {:>6.3} {:>9.3} {:>22} {:>22} {:>6.2} {:>17} {:>8} {:>5}",
                    server_name,
                    stack.name(),
                    mode.name(),
                    ok(&drains).show(0),
                    ok(&opens).show(0),
                    ok(&drains).median / ok(&opens).median,
                    get_ok(&drains).median / get_ok(&opens).median,
                    get_p99(&drains).show(1),
                    get_p99(&opens).show(1),
                    get_p99(&drains).median / get_p99(&opens).median,
                    errors.join("/"),
                    retries,
                    dups.map_or_else(|| "-".to_string(), |d| d.to_string()),
                );
            }
        }
    }
    println!(
        "ok/s: successful requests a second. ratio: draining / no limit, medians (1.0 = no cost). \
         errors (GET / POST with body / POST without), retries and dups (POSTs processed twice): \
         summed over the draining runs."
    );
    Ok(())
}
