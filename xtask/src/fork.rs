//! The AWS SDK fork patch (`integrations/fork/aws-smithy-http-client.patch`)
//! applied to the real `aws-smithy-http-client` source the workspace locks,
//! and built with warnings denied: the patch the README documents is the
//! patch that works, and an upstream change that breaks it fails CI.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use cargo_metadata::semver::Version;
use cargo_metadata::{Metadata, Package};

use crate::pins::run_metadata;

/// The crate the patch is for.
const CRATE: &str = "aws-smithy-http-client";

/// The patch, relative to the workspace root.
pub const PATCH: &str = "integrations/fork/aws-smithy-http-client.patch";

/// Copies the locked source under `target/fork-patch`, applies the patch,
/// adds hyper-classify as a dependency and builds both stacks' clients.
pub fn check(root: &Path) -> Result<String> {
    let metadata = run_metadata(&root.join("Cargo.toml"))?;
    let package = locked_package(&metadata, CRATE, |_| true)?;
    let fork = patched_copy(root, package, PATCH, &root.join("target/fork-patch"))?;

    let manifest = fork.join("Cargo.toml");
    let mut text = fs::read_to_string(&manifest)?;
    text.push_str(&format!(
        "\n[dependencies.hyper-classify]\npath = {:?}\nfeatures = [\"legacy\", \"modern\", \"aws-smithy\"]\n\n[workspace]\n",
        root.join("crates/hyper-classify").display().to_string()
    ));
    fs::write(&manifest, text)?;
    fs::copy(root.join("Cargo.lock"), fork.join("Cargo.lock"))?;

    let built = Command::new(crate::cargo_bin())
        .args([
            "rustc",
            "--lib",
            "--profile",
            "check",
            "--features",
            "hyper-014,rustls-ring",
            "--",
            "-D",
            "warnings",
        ])
        .env("CARGO_TARGET_DIR", root.join("target"))
        .current_dir(&fork)
        .status()
        .context("running cargo")?;
    if !built.success() {
        bail!("{CRATE} {} with {PATCH} does not build", package.version);
    }
    Ok(format!(
        "{PATCH} applies to {CRATE} {} and builds without warnings",
        package.version
    ))
}

/// The package `name` the workspace locks, of a version `wanted` accepts.
pub fn locked_package<'m>(
    metadata: &'m Metadata,
    name: &str,
    wanted: impl Fn(&Version) -> bool,
) -> Result<&'m Package> {
    metadata
        .packages
        .iter()
        .find(|package| package.name.as_str() == name && wanted(&package.version))
        .with_context(|| format!("{name} is not in the workspace's dependency graph"))
}

/// Copies `package`'s source into `under`/NAME-VERSION and applies `patch`
/// (relative to the workspace root) to it; returns the copy's directory.
pub fn patched_copy(root: &Path, package: &Package, patch: &str, under: &Path) -> Result<PathBuf> {
    let source = package
        .manifest_path
        .parent()
        .context("a manifest has a directory")?;
    let copy = under.join(format!("{}-{}", package.name, package.version));
    if copy.exists() {
        fs::remove_dir_all(&copy).with_context(|| format!("removing {}", copy.display()))?;
    }
    copy_dir(source.as_std_path(), &copy)?;
    let applied = Command::new("git")
        .args(["apply", "-p1"])
        .arg(root.join(patch))
        .current_dir(&copy)
        .status()
        .context("running git apply")?;
    if !applied.success() {
        bail!(
            "{patch} no longer applies to {} {}: update the patch and the README",
            package.name,
            package.version
        );
    }
    Ok(copy)
}

fn copy_dir(from: &Path, to: &PathBuf) -> Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}
