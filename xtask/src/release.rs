//! Release checks: the publishable crates build on their declared
//! `rust-version`, and each packages (as `cargo publish` would upload it)
//! and builds from the package alone.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::pins::run_metadata;

/// Features of the publishable crates whose dependencies need a newer Rust
/// than the crates' `rust-version`, and why. The MSRV check builds every
/// other feature; the README names these with their minimum.
pub const ABOVE_MSRV: &[(&str, &str)] = &[
    ("hyper-classify/reqwest-013", "reqwest 0.13 needs Rust 1.85"),
    (
        "hyper-classify/reqwest-middleware-05",
        "reqwest-retry 0.9 needs rand 0.10 (edition 2024, Rust 1.85)",
    ),
    (
        "hyper-classify/reqwest-middleware",
        "the alias of reqwest-middleware-05",
    ),
];

/// Every feature of `crates` but those in [`ABOVE_MSRV`], as
/// `crate/feature`.
fn msrv_features(root: &Path, crates: &[String]) -> Result<Vec<String>> {
    let metadata = run_metadata(&root.join("Cargo.toml"))?;
    let mut features = Vec::new();
    for package in metadata.workspace_packages() {
        if !crates.contains(&package.name.to_string()) {
            continue;
        }
        for feature in package.features.keys() {
            let feature = format!("{}/{feature}", package.name);
            if !ABOVE_MSRV.iter().any(|(above, _)| *above == feature) {
                features.push(feature);
            }
        }
    }
    Ok(features)
}

/// The publishable crates' features the MSRV check leaves out, for the log.
fn above_msrv_note() -> String {
    ABOVE_MSRV
        .iter()
        .map(|(feature, why)| format!("; {feature} left out: {why}"))
        .collect()
}

/// The workspace's publishable crates (those without `publish = false`) and
/// the `rust-version` they declare, which must be one for all of them.
pub fn publishable(root: &Path) -> Result<(Vec<String>, String)> {
    let metadata = run_metadata(&root.join("Cargo.toml"))?;
    let crates: Vec<_> = metadata
        .workspace_packages()
        .into_iter()
        .filter(|package| package.publish.as_ref().is_none_or(|to| !to.is_empty()))
        .collect();
    let mut versions: Vec<String> = crates
        .iter()
        .map(|package| {
            package
                .rust_version
                .as_ref()
                .map(ToString::to_string)
                .with_context(|| format!("{} declares no rust-version", package.name))
        })
        .collect::<Result<_>>()?;
    versions.dedup();
    let [version] = &versions[..] else {
        bail!("the publishable crates declare different rust-versions: {versions:?}");
    };
    // `rust-version = "1.83"` names the toolchain 1.83.0.
    let toolchain = match version.matches('.').count() {
        1 => format!("{version}.0"),
        _ => version.clone(),
    };
    let names = crates.iter().map(|p| p.name.to_string()).collect();
    Ok((names, toolchain))
}

/// Checks the publishable crates, every feature on (but [`ABOVE_MSRV`]),
/// with the toolchain their `rust-version` names, against dependencies
/// resolved as cargo's MSRV-aware resolver picks them for a user on it. The
/// resolution is made in a scratch workspace of those crates alone
/// (`target/xtask/msrv`): a user never sees the test crates' bounds.
///
/// Where that toolchain cannot be installed, it says so loudly and checks
/// what it can without it: that every dependency the crates build with
/// declares a `rust-version` no newer than theirs (std API use is checked by
/// clippy's `incompatible_msrv`, in the lint step).
pub fn check_msrv(root: &Path) -> Result<MsrvCheck> {
    let (crates, toolchain) = publishable(root)?;
    let features = msrv_features(root, &crates)?;
    let scratch = root.join("target").join("xtask").join("msrv");
    crate::scratch::copy_workspace(root, &scratch)?;
    crate::scratch::keep_only(&scratch, &crates)?;
    resolve_for_msrv(&scratch)?;
    if !toolchain_usable(&toolchain) {
        let installed = Command::new("rustup")
            .args(["toolchain", "install", &toolchain, "--profile", "minimal"])
            .current_dir(root)
            .status()
            .is_ok_and(|status| status.success());
        if !installed || !toolchain_usable(&toolchain) {
            println!(
                "\n!!! xtask: Rust {toolchain} could not be installed: NOT built on it; \
                 checking the dependencies' rust-versions only"
            );
            let summary = check_dependency_rust_versions(&scratch, &crates, &features, &toolchain)?;
            return Ok(MsrvCheck {
                summary,
                unbuilt: Some(toolchain),
            });
        }
    }
    let mut check = Command::new("rustup");
    check.args(["run", &toolchain, "cargo", "check", "--features"]);
    check.arg(features.join(","));
    check
        .arg("--target-dir")
        .arg(root.join("target").join("msrv"));
    check.args(crates.iter().flat_map(|name| ["--package", name]));
    // The proxy's choice for the outer cargo must not leak into the inner.
    check
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env_remove("RUSTC");
    run(&mut check, &scratch)?;
    Ok(MsrvCheck {
        summary: format!(
            "{} build on Rust {toolchain}{}",
            crates.join(", "),
            above_msrv_note()
        ),
        unbuilt: None,
    })
}

/// What [`check_msrv`] checked.
pub struct MsrvCheck {
    /// One line for the log.
    pub summary: String,
    /// The toolchain the crates were *not* built on, because it could not
    /// be installed (only their dependencies' rust-versions were checked).
    pub unbuilt: Option<String>,
}

fn toolchain_usable(toolchain: &str) -> bool {
    Command::new("rustup")
        .args(["run", toolchain, "cargo", "--version"])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// Resolves `scratch`'s Cargo.lock as cargo's MSRV-aware resolver would for
/// a user on the crates' rust-version.
fn resolve_for_msrv(scratch: &Path) -> Result<()> {
    run(
        Command::new(crate::cargo_bin())
            .args(["generate-lockfile", "--quiet"])
            .env("CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS", "fallback"),
        scratch,
    )
}

/// Fails if a crate that `crates` build with (normal and build
/// dependencies, `features` on) declares a newer rust-version than
/// `toolchain`.
fn check_dependency_rust_versions(
    root: &Path,
    crates: &[String],
    features: &[String],
    toolchain: &str,
) -> Result<String> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .manifest_path(root.join("Cargo.toml"))
        .features(cargo_metadata::CargoOpt::SomeFeatures(features.to_vec()))
        .exec()
        .context("cargo metadata")?;
    let msrv = cargo_metadata::semver::Version::parse(toolchain)?;
    let resolve = metadata.resolve.as_ref().context("no resolve graph")?;
    let nodes: std::collections::HashMap<_, _> =
        resolve.nodes.iter().map(|node| (&node.id, node)).collect();
    let mut queue: Vec<_> = metadata
        .workspace_packages()
        .into_iter()
        .filter(|package| crates.contains(&package.name.to_string()))
        .map(|package| &package.id)
        .collect();
    let mut seen: std::collections::HashSet<_> = queue.iter().copied().collect();
    let mut too_new = Vec::new();
    while let Some(id) = queue.pop() {
        let package = &metadata[id];
        if let Some(version) = &package.rust_version {
            if *version > msrv {
                too_new.push(format!(
                    "{} {} needs {version}",
                    package.name, package.version
                ));
            }
        }
        let Some(node) = nodes.get(id) else { continue };
        for dep in &node.deps {
            let builds = dep
                .dep_kinds
                .iter()
                .any(|kind| kind.kind != cargo_metadata::DependencyKind::Development);
            if builds && seen.insert(&dep.pkg) {
                queue.push(&dep.pkg);
            }
        }
    }
    if !too_new.is_empty() {
        bail!(
            "dependencies newer than Rust {toolchain}: {}",
            too_new.join(", ")
        );
    }
    Ok(format!(
        "{}: every dependency declares Rust {toolchain} or older (not built on it){}",
        crates.join(", "),
        above_msrv_note()
    ))
}

/// Packages each publishable crate and builds it from its package, the
/// workspace crates it depends on served from their packages too.
pub fn check_package(root: &Path) -> Result<String> {
    let (crates, _) = publishable(root)?;
    let mut package = Command::new(crate::cargo_bin());
    package.args(["package", "--allow-dirty", "--target-dir", "target/package"]);
    package.args(crates.iter().flat_map(|name| ["--package", name]));
    run(&mut package, root)?;
    Ok(format!(
        "{} package and build from their packages",
        crates.join(", ")
    ))
}

fn run(command: &mut Command, root: &Path) -> Result<()> {
    let shown = format!("{command:?}");
    let status = command
        .current_dir(root)
        .status()
        .with_context(|| format!("running {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}
