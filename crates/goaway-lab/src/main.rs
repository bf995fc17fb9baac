//! goaway-lab: real hyper 0.14 and hyper 1 clients against HTTP/2 servers
//! that drain, refuse, throttle and close, each driven three ways (bare, with
//! the single-version classifier that shipped the bug, with hyper-classify),
//! side by side.
//!
//! ```text
//! cargo run --release -p goaway-lab                      # every scenario, both stacks
//! cargo run --release -p goaway-lab -- --json            # the same, as JSON
//! cargo run --release -p goaway-lab -- --target http://127.0.0.1:8080/
//! cargo run --release -p goaway-lab -- --target https://example.com/ [--ca-file ca.pem]
//! cargo run --release -p goaway-lab -- storm             # the GOAWAY storm benchmark
//! cargo run --release -p goaway-lab -- soak              # a million requests: memory and counters
//! ```

mod drive;
mod report;
mod scenario;
mod soak;
mod storm;
mod tls;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::drive::{ClientTally, Kind, Mode, Stack, Target};
use crate::report::Row;
use crate::scenario::Scenario;
use crate::tls::TlsConnector;

#[derive(Parser)]
#[command(
    version,
    about = "Real hyper 0.14 and hyper 1 clients against misbehaving HTTP/2 servers, with and without hyper-classify"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Requests per stack, scenario and mode.
    #[arg(long, default_value_t = 400)]
    requests: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Probe a real HTTP/2 server instead, with GETs: http://… by prior
    /// knowledge, or https://… (TLS, h2 by ALPN).
    #[arg(long, value_name = "URL")]
    target: Option<String>,
    /// For an https --target: trust the certificates in this PEM file
    /// instead of the system's roots.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// Run only these scenarios (repeatable).
    #[arg(long, value_enum)]
    scenario: Vec<Scenario>,
}

#[derive(Subcommand)]
enum Command {
    /// The GOAWAY storm: throughput, latency and errors with a server that
    /// drains every 100 requests, against the same server without a limit.
    Storm(storm::StormArgs),
    /// A million requests per stack through the retry layer against a
    /// draining server: the client's memory and the retry counters.
    Soak(soak::SoakArgs),
    /// The soak's server, run by `soak` as a child process.
    #[command(hide = true)]
    SoakServer(soak::ServerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The soak's server builds its own runtime (it must not share the
    // client's threads), so only the other commands run inside this one.
    let result = match cli.command {
        Some(Command::SoakServer(ref args)) => soak::serve(args),
        _ => tokio::runtime::Runtime::new()
            .map_err(|err| format!("cannot start a runtime: {err}"))
            .and_then(|runtime| {
                runtime.block_on(async {
                    match cli.command {
                        Some(Command::Storm(ref args)) => storm::run(args).await,
                        Some(Command::Soak(ref args)) => soak::run(args).await,
                        _ => lab(&cli).await,
                    }
                })
            }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn lab(cli: &Cli) -> Result<(), String> {
    if cli.requests == 0 || cli.concurrency == 0 {
        return Err("--requests and --concurrency must be at least 1".into());
    }
    let target = match (cli.target.as_deref(), cli.ca_file.as_deref()) {
        (Some(url), ca_file) => Some(check_target(url, ca_file)?),
        (None, Some(_)) => return Err("--ca-file goes with an https --target".into()),
        (None, None) => None,
    };
    let scenarios: Vec<Scenario> = match (&target, cli.scenario.is_empty()) {
        (Some(_), _) => Vec::new(),
        (None, true) => Scenario::ALL.to_vec(),
        (None, false) => cli.scenario.clone(),
    };
    let runs = scenarios.len().max(1) * Stack::ALL.len() * Mode::ALL.len();
    let progress = if cli.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(runs as u64 * cli.requests)
    };
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} requests {msg}")
            .expect("a valid template"),
    );

    let mut rows = Vec::new();
    let mut broken = Vec::new();
    for stack in Stack::ALL {
        if let Some(target) = &target {
            for mode in Mode::ALL {
                progress.set_message(format!("{} · {}", stack.name(), mode.name()));
                let bar = progress.clone();
                let tally = drive::run(
                    stack,
                    mode,
                    target,
                    cli.requests,
                    cli.concurrency,
                    true,
                    move || bar.inc(1),
                )
                .await;
                rows.push(Row::new(stack, target.url.clone(), mode, &tally));
            }
            continue;
        }
        for &scenario in &scenarios {
            for mode in Mode::ALL {
                progress.set_message(format!(
                    "{} · {} · {}",
                    stack.name(),
                    scenario.name(),
                    mode.name()
                ));
                let (addr, ledger) = scenario.start().await.map_err(|e| e.to_string())?;
                let url = format!("http://{addr}/");
                let bar = progress.clone();
                let tally = drive::run(
                    stack,
                    mode,
                    &Target::h2c(url),
                    cli.requests,
                    cli.concurrency,
                    false,
                    move || bar.inc(1),
                )
                .await;
                let mut row = Row::new(stack, scenario.name().to_string(), mode, &tally);
                row.go_aways = Some(ledger.go_aways.load(Ordering::SeqCst) as u64);
                row.resets = Some(ledger.refused.load(Ordering::SeqCst) as u64);
                let processed = tally
                    .failures
                    .iter()
                    .filter(|failure| ledger.times_processed(failure.id) > 0)
                    .count();
                row.failed_yet_processed = Some(processed as u64);
                let posts_twice = ledger
                    .duplicates()
                    .into_iter()
                    .filter(|id| Kind::of(*id, false) != Kind::Get)
                    .count();
                row.duplicates = Some(posts_twice as u64);
                if mode == Mode::Classify {
                    broken.extend(promise_broken(scenario, &row, &tally, posts_twice));
                }
                rows.push(row);
            }
        }
    }
    progress.finish_and_clear();

    if cli.json {
        let json = serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?;
        println!("{json}");
    } else {
        report::print_tables(&rows);
        println!(
            "\nGET err, POST+body, POST err: requests whose error reached the caller \
             (POST: without a body)."
        );
        if target.is_none() {
            println!(
                "processed: failed requests the server had processed all the same. \
                 dups: POSTs the server processed twice (must be 0)."
            );
        }
    }
    if !broken.is_empty() {
        return Err(format!(
            "hyper-classify broke its promise: {}",
            broken.join("; ")
        ));
    }
    Ok(())
}

/// What hyper-classify promises in every scenario: no POST is processed
/// twice, and no GET fails, unless the server wants HTTP/1.1 for everything.
fn promise_broken(
    scenario: Scenario,
    row: &Row,
    tally: &ClientTally,
    posts_twice: usize,
) -> Vec<String> {
    let context = format!("{} · {}", row.stack.name(), row.scenario);
    let mut broken = Vec::new();
    let failed_gets = tally
        .failures
        .iter()
        .filter(|f| f.kind == Kind::Get && scenario != Scenario::Http11Required)
        .count();
    if failed_gets > 0 {
        broken.push(format!("{context}: {failed_gets} GETs failed"));
    }
    if posts_twice > 0 {
        broken.push(format!("{context}: {posts_twice} POSTs processed twice"));
    }
    broken
}

/// An h2c (prior knowledge) target, `http://HOST:PORT/PATH`, or an
/// `https://` one (TLS, `h2` by ALPN) trusting `ca_file` or the system's
/// roots.
fn check_target(target: &str, ca_file: Option<&Path>) -> Result<Target, String> {
    let uri: hyper_1::Uri = target
        .parse()
        .map_err(|e| format!("--target {target:?} is not a URL: {e}"))?;
    let url = target.to_string();
    match uri.scheme_str() {
        _ if uri.host().is_none() => Err(format!(
            "--target {target:?} must look like http://HOST:PORT/PATH or https://HOST:PORT/PATH"
        )),
        Some("http") if ca_file.is_some() => {
            Err("--ca-file is for https targets; this one is http".into())
        }
        Some("http") => Ok(Target::h2c(url)),
        Some("https") => Ok(Target {
            url,
            tls: Some(TlsConnector::new(ca_file)?),
        }),
        _ => Err(format!(
            "--target {target:?} must be an http:// or https:// URL"
        )),
    }
}
