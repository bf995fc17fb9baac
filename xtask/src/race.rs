//! hyper's GOAWAY race and its fix (`patches/hyper-*.patch`), measured on
//! hyper itself.
//!
//! Stock hyper fails a request with a GOAWAY that arrived between
//! `send_request` and its dispatcher's next `poll_ready`, although the
//! request's HEADERS may already be on the wire. The patches pipe such a
//! request instead, so its stream's own future reports the GOAWAY only when
//! the peer refused it. This step applies them to the hyper versions the
//! workspace locks, and runs the exactly-once storm that takes every peer
//! GOAWAY as "never processed" (bodiless POSTs, a server acting on HEADERS)
//! on the patched hyper, where a duplicate fails it, and on stock hyper,
//! where it shows what the race costs.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::fork::{locked_package, patched_copy};
use crate::pins::run_metadata;

/// Each patch: the hyper minor it is for, the file, the `[patch]` key.
const PATCHES: [(u64, u64, &str, &str); 2] = [
    (1, 0, "patches/hyper-1.patch", "hyper"),
    (0, 14, "patches/hyper-0.14.patch", "hyper-0-14"),
];

/// The ignored storm test each stack has.
const RACE_TESTS: [&str; 2] = ["legacy::go_away_race", "modern::go_away_race"];

/// Applies the patches, runs the race storm on patched and on stock hyper,
/// and returns what each printed.
pub fn check(root: &Path) -> Result<Vec<String>> {
    let metadata = run_metadata(&root.join("Cargo.toml"))?;
    let under = root.join("target/hyper-patch");
    let mut config = Vec::new();
    for (major, minor, patch, key) in PATCHES {
        let package = locked_package(&metadata, "hyper", |v| {
            v.major == major && (major > 0 || v.minor == minor)
        })?;
        let copy = patched_copy(root, package, patch, &under)?;
        config.push(format!(
            "patch.crates-io.{key}.path={:?}",
            copy.display().to_string()
        ));
        config.push(format!("patch.crates-io.{key}.package=\"hyper\""));
    }

    // Patching rewrites the lock file; the stock run needs it as it was.
    let lock = root.join("Cargo.lock");
    let locked = fs::read(&lock).context("reading Cargo.lock")?;
    let patched = run_storm(root, &config, true);
    fs::write(&lock, locked).context("restoring Cargo.lock")?;
    let mut lines = patched?;
    lines.extend(run_storm(root, &[], false)?);
    Ok(lines)
}

/// Runs the race storms; `fixed` says the hyper under test carries the fix.
fn run_storm(root: &Path, config: &[String], fixed: bool) -> Result<Vec<String>> {
    let mut command = Command::new(crate::cargo_bin());
    command.arg("test");
    for entry in config {
        command.args(["--config", entry]);
    }
    command
        .args(["--package", "hyper-classify-tests", "--test", "retry", "--"])
        .args(["--ignored", "--exact", "--nocapture"])
        .args(RACE_TESTS)
        .current_dir(root);
    if fixed {
        command.env("HYPER_GOAWAY_RACE_FIXED", "1");
    }
    let out = command.output().context("running cargo test")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if String::from_utf8_lossy(&out.stderr).contains("was not used in the crate graph") {
        bail!("a hyper patch was not used: the locked hyper versions moved");
    }
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let hyper = if fixed { "patched" } else { "stock" };
        bail!("the GOAWAY race storm failed on {hyper} hyper:\n{stdout}\n{stderr}");
    }
    let lines: Vec<String> = stdout
        .lines()
        .filter(|line| line.starts_with("GOAWAY race"))
        .map(str::to_owned)
        .collect();
    if lines.len() != 2 * RACE_TESTS.len() {
        bail!("the GOAWAY race storm did not run both stacks:\n{stdout}");
    }
    Ok(lines)
}
