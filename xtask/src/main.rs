//! Project automation: `cargo xtask test` runs what CI runs; `cargo xtask
//! pins` checks that each backend reads the very h2 its hyper wraps; `cargo
//! xtask fork-patch` checks the AWS SDK fork patch against the real crate;
//! `cargo xtask hyper-patch` measures hyper's GOAWAY race with and without
//! the fix in `patches/`; `cargo xtask msrv` and `cargo xtask package`
//! check the publishable crates as a user and crates.io would see them.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

mod fork;
mod pins;
mod race;
mod release;
mod resolved;
mod scratch;

#[derive(Parser)]
#[command(about = "hyper-classify's project automation")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Everything CI checks: format, lints, the feature matrix, the tests of
    /// each stack alone and both together, the h2 pin check, the docs, the
    /// MSRV and the packages.
    #[command(alias = "ci")]
    Test {
        /// Instead: the lints, the tests and the pin check on a scratch copy
        /// resolved to the newest compatible releases (`cargo update`).
        #[arg(long, conflicts_with = "oldest")]
        newest: bool,
        /// Instead: the same on the lowest versions the manifests admit
        /// (`cargo +nightly update -Z direct-minimal-versions`).
        #[arg(long)]
        oldest: bool,
    },
    /// Fail unless each backend's h2 is the very h2 its hyper version wraps.
    Pins {
        /// The workspace to check (its `Cargo.toml`).
        #[arg(long, value_name = "PATH")]
        manifest_path: Option<PathBuf>,
        /// Read `cargo metadata --format-version 1` output from this file
        /// instead of running cargo.
        #[arg(long, value_name = "FILE", conflicts_with = "manifest_path")]
        metadata: Option<PathBuf>,
        /// Check against the newest semver-compatible releases (as
        /// `cargo update` would pick them), leaving Cargo.lock as it was.
        #[arg(long, conflicts_with_all = ["manifest_path", "metadata"])]
        latest: bool,
    },
    /// Apply the documented AWS SDK fork patch to the locked
    /// aws-smithy-http-client source and build it with warnings denied.
    ForkPatch,
    /// Apply the GOAWAY race fix in `patches/` to the locked hyper 0.14 and
    /// 1, and run the race storm on patched and on stock hyper.
    HyperPatch,
    /// Check the publishable crates, every feature on, with the toolchain
    /// their `rust-version` names (installed with rustup if missing).
    Msrv,
    /// Package each publishable crate and build it from its package.
    Package,
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(task: Task) -> Result<()> {
    match task {
        Task::Test {
            newest: false,
            oldest: false,
        } => test(),
        Task::Test { newest, .. } => {
            let resolution = match newest {
                true => resolved::Resolution::Newest,
                false => resolved::Resolution::Oldest,
            };
            let skip = missing_peers()?;
            resolved::test(&root(), resolution, &skip)?;
            report_skipped(&skip, None);
            Ok(())
        }
        Task::ForkPatch => {
            println!("{}", fork::check(&root())?);
            Ok(())
        }
        Task::Msrv => {
            let check = release::check_msrv(&root())?;
            println!("{}", check.summary);
            match check.unbuilt {
                Some(toolchain) => {
                    bail!("not built on Rust {toolchain}: it could not be installed")
                }
                None => Ok(()),
            }
        }
        Task::Package => {
            println!("{}", release::check_package(&root())?);
            Ok(())
        }
        Task::HyperPatch => {
            print_lines(race::check(&root())?);
            Ok(())
        }
        Task::Pins { latest: true, .. } => {
            print_lines(pins::check_latest(&root())?);
            Ok(())
        }
        Task::Pins {
            manifest_path,
            metadata,
            ..
        } => {
            let metadata = match metadata {
                Some(file) => pins::read_metadata(&file)?,
                None => {
                    pins::run_metadata(&manifest_path.unwrap_or_else(|| root().join("Cargo.toml")))?
                }
            };
            print_lines(pins::check(&metadata)?);
            Ok(())
        }
    }
}

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// hyper-classify's features for clients on hyper 1 (each implies `modern`).
const CLIENT_FEATURES: &str = "reqwest-012,reqwest-013,reqwest-middleware-05,tonic-014";

/// The names those features had before they were named for their major:
/// aliases, each checked alone but kept out of the powerset (an alias and
/// its feature on together are the feature alone).
const CLIENT_FEATURE_ALIASES: &str = "reqwest,reqwest-middleware,tonic";

fn test() -> Result<()> {
    ensure_cargo_hack()?;
    // The client integrations that imply `modern` are checked together in
    // the powerset (one more dimension, not four) and each alone below.
    let powerset = [
        "hack",
        "--feature-powerset",
        "--at-least-one-of",
        "legacy,modern",
        "--group-features",
        CLIENT_FEATURES,
        "--exclude-features",
        CLIENT_FEATURE_ALIASES,
        "--package",
        "hyper-classify",
    ];
    let steps: &[(&str, Vec<&str>)] = &[
        ("format", vec!["fmt", "--all", "--", "--check"]),
        (
            "lints",
            vec![
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        ("feature matrix", [&powerset[..], &["check"]].concat()),
        (
            "feature matrix without dev-dependencies",
            [&powerset[..], &["--no-dev-deps", "check"]].concat(),
        ),
        (
            "feature matrix of the retry crate (tower 0.4, tower 0.5)",
            vec![
                "hack",
                "--feature-powerset",
                "--package",
                "classify-retry",
                "check",
                "--all-targets",
            ],
        ),
    ];
    for (name, args) in steps {
        cargo(name, args, &[])?;
    }
    for feature in CLIENT_FEATURES
        .split(',')
        .chain(CLIENT_FEATURE_ALIASES.split(','))
    {
        cargo(
            &format!("the {feature} feature alone"),
            &[
                "check",
                "--package",
                "hyper-classify",
                "--no-default-features",
                "--features",
                feature,
            ],
            &[],
        )?;
    }
    // A test that needs a server this machine lacks is skipped by name, so
    // it is not counted as passed, and said so at the end.
    let skip = missing_peers()?;
    let with_skips = |args: &[&'static str]| -> Vec<&'static str> {
        let mut args = args.to_vec();
        if !skip.is_empty() {
            args.push("--");
            args.extend(skip.iter().flat_map(|name| ["--skip", *name]));
        }
        args
    };
    cargo(
        "tests, both stacks",
        &with_skips(&["test", "--workspace"]),
        &[],
    )?;
    cargo("xtask's own tests", &["test", "--package", "xtask"], &[])?;
    for (stack, feature) in [("hyper 0.14", "legacy"), ("hyper 1", "modern")] {
        let features = format!("hyper-classify/{feature},hyper-classify-tests/{feature}");
        let mut args = vec![
            "test",
            "--package",
            "hyper-classify-tests",
            "--package",
            "hyper-classify",
            "--no-default-features",
            "--features",
            &features,
        ];
        args.extend(with_skips(&[]));
        cargo(&format!("tests, {stack} only ({feature})"), &args, &[])?;
    }
    step("h2 pins", || {
        print_lines(pins::check(&pins::run_metadata(
            &root().join("Cargo.toml"),
        )?)?);
        Ok(())
    })?;
    step("h2 pins against the newest compatible releases", || {
        print_lines(pins::check_latest(&root())?);
        Ok(())
    })?;
    step("the AWS SDK fork patch applies and builds", || {
        println!("{}", fork::check(&root())?);
        Ok(())
    })?;
    step(
        "hyper's GOAWAY race: the fix in patches/, on patched and stock hyper",
        || {
            print_lines(race::check(&root())?);
            Ok(())
        },
    )?;
    step("a build with no backend fails, naming the features", || {
        let out = Command::new(cargo_bin())
            .args([
                "check",
                "--package",
                "hyper-classify",
                "--no-default-features",
            ])
            .current_dir(root())
            .output()
            .context("running cargo")?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || !stderr.contains("enable the `legacy` feature") {
            bail!("expected a compile error naming the features, got:\n{stderr}");
        }
        Ok(())
    })?;
    cargo(
        "docs",
        &["doc", "--workspace", "--no-deps", "--all-features"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    let mut unbuilt = None;
    step("the publishable crates on their rust-version", || {
        let check = release::check_msrv(&root())?;
        println!("{}", check.summary);
        unbuilt = check.unbuilt;
        Ok(())
    })?;
    step(
        "the publishable crates package and build from their packages",
        || {
            println!("{}", release::check_package(&root())?);
            Ok(())
        },
    )?;
    report_skipped(&skip, unbuilt);
    Ok(())
}

/// Says loudly what was skipped: the tests against missing `servers`, the
/// build on an `unbuilt` toolchain.
fn report_skipped(servers: &[&str], unbuilt: Option<String>) {
    for server in servers {
        println!(
            "\n!!! xtask: the tests against {server} were SKIPPED ({server} is not installed: \
             apt-get install -y --no-install-recommends nginx haproxy)"
        );
    }
    let mut skipped: Vec<String> = servers.iter().map(|server| server.to_string()).collect();
    if let Some(toolchain) = unbuilt {
        println!(
            "\n!!! xtask: the build on Rust {toolchain} was SKIPPED (the toolchain could not be \
             installed: rustup toolchain install {toolchain}); only the dependencies' \
             rust-versions were checked"
        );
        skipped.push(format!("the build on Rust {toolchain}"));
    }
    match skipped.is_empty() {
        true => println!("\nxtask: every check passed"),
        false => println!(
            "\nxtask: every check that ran passed; {} skipped",
            skipped.join(", ")
        ),
    }
}

/// The real peers the tests start (their test names contain the server's
/// name) that this machine does not have. Under `CI=true` a missing one is
/// an error: CI installs them.
fn missing_peers() -> Result<Vec<&'static str>> {
    const DIRS: [&str; 4] = ["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"];
    let missing: Vec<&'static str> = ["nginx", "haproxy"]
        .into_iter()
        .filter(|server| !DIRS.iter().any(|dir| Path::new(dir).join(server).exists()))
        .collect();
    if !missing.is_empty() && std::env::var("CI").is_ok_and(|v| v == "true") {
        bail!(
            "{} not installed; CI must install them",
            missing.join(" and ")
        );
    }
    Ok(missing)
}

fn print_lines(lines: Vec<String>) {
    for line in lines {
        println!("{line}");
    }
}

fn cargo(name: &str, args: &[&str], env: &[(&str, &str)]) -> Result<()> {
    step(name, || {
        let status = Command::new(cargo_bin())
            .args(args)
            .envs(env.iter().copied())
            .current_dir(root())
            .status()
            .context("running cargo")?;
        if !status.success() {
            bail!("`cargo {}` failed ({status})", args.join(" "));
        }
        Ok(())
    })
}

fn step(name: &str, run: impl FnOnce() -> Result<()>) -> Result<()> {
    println!("\n==> xtask: {name}");
    let started = Instant::now();
    run().with_context(|| format!("step `{name}` failed"))?;
    println!("<== xtask: {name} ok ({:.1?})", started.elapsed());
    Ok(())
}

fn cargo_bin() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// The cargo-hack release the feature matrix is run with.
const CARGO_HACK_VERSION: &str = "0.6.46";

/// The feature matrix needs cargo-hack; install it the first time.
fn ensure_cargo_hack() -> Result<()> {
    let installed = Command::new(cargo_bin())
        .args(["hack", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    if installed {
        return Ok(());
    }
    cargo(
        "install cargo-hack (needed once, for the feature matrix)",
        &[
            "install",
            "cargo-hack",
            "--locked",
            "--version",
            CARGO_HACK_VERSION,
        ],
        &[],
    )
}
