//! The h2 pin check.
//!
//! hyper wraps its h2's errors; a backend recognises them by downcasting to
//! its own h2's `Error`. If the two are different packages (hyper 1.x moving
//! to h2 0.5 while `classify-h2-04` stays on 0.4), the downcast compiles and
//! never matches: the bug this project exists to prevent. hyper documents its
//! error sources as unstable, so this is checked on every CI run, against the
//! resolved dependency graph.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use cargo_metadata::{Metadata, MetadataCommand, Node, Package, PackageId};

/// Each backend crate and the hyper major version it reads.
pub const BACKENDS: [(&str, &str); 2] = [("classify-h2-03", "0.14"), ("classify-h2-04", "1")];

/// Runs `cargo metadata` on a workspace.
pub fn run_metadata(manifest: &Path) -> Result<Metadata> {
    MetadataCommand::new()
        .manifest_path(manifest)
        .exec()
        .with_context(|| format!("cargo metadata --manifest-path {}", manifest.display()))
}

/// Reads saved `cargo metadata --format-version 1` output.
pub fn read_metadata(file: &Path) -> Result<Metadata> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    MetadataCommand::parse(text)
        .with_context(|| format!("{} is not cargo metadata output", file.display()))
}

/// Checks the workspace at `root` against the newest semver-compatible
/// releases: a hyper 1.x that moved to a new h2 fails here before it reaches
/// anyone's lock file. Cargo.lock is put back as it was, whatever happens.
pub fn check_latest(root: &Path) -> Result<Vec<String>> {
    with_lockfile_restored(root, || {
        let status = Command::new(crate::cargo_bin())
            .args(["update", "--quiet"])
            .current_dir(root)
            .status()
            .context("running cargo update")?;
        if !status.success() {
            bail!("cargo update failed ({status})");
        }
        check(&run_metadata(&root.join("Cargo.toml"))?)
    })
}

/// Runs `check` with the workspace's Cargo.lock free to change, and puts the
/// lock file back as it was afterwards, whatever happened.
pub fn with_lockfile_restored<T>(root: &Path, check: impl FnOnce() -> Result<T>) -> Result<T> {
    let lock = root.join("Cargo.lock");
    let saved = std::fs::read(&lock).context("reading Cargo.lock")?;
    let result = check();
    std::fs::write(&lock, saved).context("restoring Cargo.lock")?;
    result
}

/// Checks every backend; returns a line per backend, or every mismatch.
pub fn check(metadata: &Metadata) -> Result<Vec<String>> {
    let mut report = Vec::new();
    let mut problems = Vec::new();
    for (backend, hyper_major) in BACKENDS {
        match check_backend(metadata, backend, hyper_major) {
            Ok(line) => report.push(line),
            Err(problem) => problems.push(format!("{problem:#}")),
        }
    }
    if !problems.is_empty() {
        bail!("h2 pin check failed:\n  {}", problems.join("\n  "));
    }
    Ok(report)
}

fn check_backend(metadata: &Metadata, backend: &str, hyper_major: &str) -> Result<String> {
    let resolve = metadata
        .resolve
        .as_ref()
        .context("the metadata has no resolved dependency graph")?;
    let node = |id: &PackageId| resolve.nodes.iter().find(|n| &n.id == id);
    let backend_node = resolve
        .nodes
        .iter()
        .find(|n| package(metadata, &n.id).is_some_and(|p| p.name.as_str() == backend))
        .with_context(|| format!("{backend} is not in the dependency graph"))?;

    let our_h2 = dependency(metadata, backend_node, "h2")
        .with_context(|| format!("{backend} does not depend on h2"))?;
    let hyper = dependency(metadata, backend_node, "hyper")
        .with_context(|| format!("{backend} does not depend on hyper"))?;
    if !version_is(hyper, hyper_major) {
        bail!(
            "{backend} should read hyper {hyper_major}, but depends on hyper {}",
            hyper.version
        );
    }
    let hyper_node = node(&hyper.id).context("hyper is not in the dependency graph")?;
    let hyper_h2 = dependency(metadata, hyper_node, "h2").with_context(|| {
        format!(
            "hyper {} has no h2 dependency (is its `http2` feature on?)",
            hyper.version
        )
    })?;
    if hyper_h2.id != our_h2.id {
        bail!(
            "{backend} downcasts to h2 {ours}, but hyper {hyper_version} wraps h2 {theirs}: \
             its GOAWAY and RST_STREAM downcasts would compile and never match. \
             Move {backend} to h2 {theirs}, or keep hyper on a release that uses h2 {ours}.",
            ours = our_h2.version,
            theirs = hyper_h2.version,
            hyper_version = hyper.version,
        );
    }
    Ok(format!(
        "ok: {backend} reads h2 {}, the h2 that hyper {} wraps",
        our_h2.version, hyper.version
    ))
}

fn package<'m>(metadata: &'m Metadata, id: &PackageId) -> Option<&'m Package> {
    metadata.packages.iter().find(|p| &p.id == id)
}

/// The package `node` depends on (as a normal dependency) whose name is `name`.
fn dependency<'m>(metadata: &'m Metadata, node: &Node, name: &str) -> Option<&'m Package> {
    node.deps
        .iter()
        .filter(|dep| {
            dep.dep_kinds
                .iter()
                .any(|k| k.kind == cargo_metadata::DependencyKind::Normal)
        })
        .filter_map(|dep| package(metadata, &dep.pkg))
        .find(|p| p.name.as_str() == name)
}

/// Whether `package`'s version is in the semver-compatible range of `major`
/// (`"0.14"` or `"1"`).
fn version_is(package: &Package, major: &str) -> bool {
    let v = &package.version;
    match major.split_once('.') {
        Some((maj, min)) => v.major.to_string() == maj && v.minor.to_string() == min,
        None => v.major.to_string() == major,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn workspace() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf()
    }

    #[test]
    fn this_workspace_passes() {
        let metadata = run_metadata(&workspace().join("Cargo.toml")).unwrap();
        let report = check(&metadata).unwrap();
        assert_eq!(report.len(), 2, "{report:?}");
    }

    /// A workspace in which classify-h2-04 reads h2 0.3 while hyper 1 wraps
    /// h2 0.4: the same drift as a future hyper 1.x on h2 0.5.
    #[test]
    fn a_drifted_workspace_fails_naming_both_versions() {
        let fixture = workspace().join("xtask/fixtures/h2-drift/Cargo.toml");
        let metadata = run_metadata(&fixture).unwrap();
        let err = format!("{:#}", check(&metadata).unwrap_err());
        assert!(err.contains("classify-h2-04 downcasts to h2 0.3."), "{err}");
        assert!(err.contains("wraps h2 0.4."), "{err}");
        assert!(
            !err.contains("classify-h2-03"),
            "only the drifted backend fails: {err}"
        );
    }

    /// The same drift, made by rewiring the real graph's edge.
    #[test]
    fn rewiring_the_real_graph_fails() {
        let mut metadata = run_metadata(&workspace().join("Cargo.toml")).unwrap();
        let h2_03 = metadata
            .packages
            .iter()
            .find(|p| p.name.as_str() == "h2" && p.version.major == 0 && p.version.minor == 3)
            .unwrap()
            .id
            .clone();
        let resolve = metadata.resolve.as_mut().unwrap();
        let backend = resolve
            .nodes
            .iter_mut()
            .find(|n| n.id.repr.contains("classify-h2-04"))
            .unwrap();
        for dep in &mut backend.deps {
            if dep.name == "h2" {
                dep.pkg = h2_03.clone();
            }
        }
        let err = format!("{:#}", check(&metadata).unwrap_err());
        assert!(
            err.contains("h2 0.3.") && err.contains("wraps h2 0.4."),
            "{err}"
        );
    }
}
