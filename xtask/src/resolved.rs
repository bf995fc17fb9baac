//! The behaviour suite on the versions users resolve, not only on our lock
//! file: `cargo xtask test --newest` (what `cargo update` picks today) and
//! `cargo xtask test --oldest` (the lowest versions the manifests admit).
//!
//! Users of a library do not get its `Cargo.lock`. hyper documents its
//! error sources as unstable, so a new hyper or h2 release can change an
//! error's shape under an unchanged verdict table; and a lower bound no one
//! builds against is a guess. Each leg copies the workspace (tracked and
//! untracked files, not ignored ones) to a scratch directory, resolves it
//! there, and runs the lints, every test and the h2 pin check on it.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{cargo_bin, pins, print_lines, scratch, step};

/// Which versions a leg resolves.
#[derive(Clone, Copy, Debug)]
pub enum Resolution {
    /// The newest semver-compatible releases (`cargo update`).
    Newest,
    /// The lowest versions every direct dependency's requirement admits
    /// (`cargo +nightly update -Z direct-minimal-versions`); indirect ones
    /// are the newest that fit.
    Oldest,
}

impl Resolution {
    fn name(self) -> &'static str {
        match self {
            Resolution::Newest => "newest",
            Resolution::Oldest => "oldest",
        }
    }
}

/// The packages whose resolved versions a leg prints: those whose error
/// shapes and APIs the verdicts and integrations depend on.
const WATCHED: &[&str] = &[
    "hyper",
    "h2",
    "hyper-util",
    "tower",
    "tokio",
    "rustls",
    "aws-smithy-runtime",
    "aws-smithy-runtime-api",
    "aws-smithy-http-client",
    "reqwest",
    "reqwest-middleware",
    "reqwest-retry",
    "tonic",
];

/// Which crates a leg's scratch workspace holds.
#[derive(Clone, Copy)]
enum Members {
    /// Every member, each requirement on a crate raised to the highest any
    /// manifest states (see [`scratch::unify_requirements`]).
    All,
    /// The publishable crates and what they reach by path: the versions a
    /// user of those crates resolves, free of the test crates' bounds.
    Publishable,
}

/// Runs the suite on `resolution`, in `target/xtask/<name>/` (the build
/// shares the workspace's target directory, so unchanged dependencies are
/// built once). On the oldest versions it first runs the publishable crates
/// alone, on their own lower bounds.
pub fn test(root: &Path, resolution: Resolution, skip: &[&str]) -> Result<()> {
    if let Resolution::Oldest = resolution {
        leg(root, resolution, Members::Publishable, skip)?;
    }
    leg(root, resolution, Members::All, skip)
}

fn leg(root: &Path, resolution: Resolution, members: Members, skip: &[&str]) -> Result<()> {
    let (name, what) = match members {
        Members::All => (resolution.name().to_owned(), "the workspace"),
        Members::Publishable => (
            format!("{}-publishable", resolution.name()),
            "the publishable crates alone",
        ),
    };
    let scratch = root.join("target").join("xtask").join(&name);
    step(
        &format!(
            "a scratch copy of {what}, resolved to the {} versions",
            resolution.name()
        ),
        || {
            scratch::copy_workspace(root, &scratch)?;
            match members {
                Members::Publishable => {
                    scratch::keep_only(&scratch, &crate::release::publishable(root)?.0)?
                }
                Members::All => {
                    if let Resolution::Oldest = resolution {
                        scratch::unify_requirements(&scratch)?;
                    }
                }
            }
            resolve(&scratch, resolution)?;
            print_lines(versions(&scratch)?);
            Ok(())
        },
    )?;
    let target = root.join("target");
    let run = |step_name: &str, args: &[&str]| {
        step(&format!("{step_name} ({name} versions)"), || {
            let status = Command::new(cargo_bin())
                .args(args)
                .env("CARGO_TARGET_DIR", &target)
                .current_dir(&scratch)
                .status()
                .context("running cargo")?;
            if !status.success() {
                bail!("`cargo {}` failed ({status})", args.join(" "));
            }
            Ok(())
        })
    };
    let lints = [
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ];
    run("lints, every feature", &lints)?;
    let mut tests = vec!["test", "--workspace"];
    if !skip.is_empty() {
        tests.push("--");
        tests.extend(skip.iter().flat_map(|name| ["--skip", *name]));
    }
    run("tests, both stacks", &tests)?;
    step(&format!("h2 pins ({name} versions)"), || {
        print_lines(pins::check(&pins::run_metadata(
            &scratch.join("Cargo.toml"),
        )?)?);
        Ok(())
    })
}

fn resolve(scratch: &Path, resolution: Resolution) -> Result<()> {
    let (cargo, args): (String, &[&str]) = match resolution {
        Resolution::Newest => (cargo_bin(), &["update", "--quiet"]),
        // The `-Z` flag needs a nightly cargo: through rustup's proxy.
        Resolution::Oldest => (
            "cargo".into(),
            &[
                "+nightly",
                "update",
                "--quiet",
                "-Z",
                "direct-minimal-versions",
            ],
        ),
    };
    let status = Command::new(cargo)
        .args(args)
        .env_remove("RUSTUP_TOOLCHAIN")
        .current_dir(scratch)
        .status()
        .context("running cargo update")?;
    match (status.success(), resolution) {
        (true, _) => Ok(()),
        (false, Resolution::Newest) => bail!("cargo update failed ({status})"),
        (false, Resolution::Oldest) => bail!(
            "`cargo +nightly update -Z direct-minimal-versions` failed ({status}): a lower \
             bound is false (raise the one the error names), or nightly is missing \
             (rustup toolchain install nightly --profile minimal)"
        ),
    }
}

/// One line per watched package: the versions resolved.
fn versions(scratch: &Path) -> Result<Vec<String>> {
    let metadata = pins::run_metadata(&scratch.join("Cargo.toml"))?;
    Ok(WATCHED
        .iter()
        .filter_map(|&name| {
            let mut found: Vec<String> = metadata
                .packages
                .iter()
                .filter(|p| p.name.as_str() == name)
                .map(|p| p.version.to_string())
                .collect();
            found.sort();
            (!found.is_empty()).then(|| format!("  {name} {}", found.join(", ")))
        })
        .collect())
}
