//! Scratch copies of the workspace, for checks that must resolve their own
//! lock file: as a user of the publishable crates would (who never sees the
//! test crates' needs), or on the lowest versions the manifests admit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use toml_edit::{DocumentMut, Item, Table};

use crate::pins::run_metadata;

/// Copies the files git knows of (tracked, or untracked and not ignored)
/// from `root` to a fresh `scratch`.
pub fn copy_workspace(root: &Path, scratch: &Path) -> Result<()> {
    let out = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root)
        .output()
        .context("running git ls-files")?;
    if !out.status.success() {
        bail!(
            "git ls-files failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if scratch.exists() {
        std::fs::remove_dir_all(scratch)
            .with_context(|| format!("removing {}", scratch.display()))?;
    }
    for file in out.stdout.split(|&b| b == 0).filter(|f| !f.is_empty()) {
        let file = PathBuf::from(String::from_utf8_lossy(file).into_owned());
        let (from, to) = (root.join(&file), scratch.join(&file));
        // A tracked file deleted in the work tree is not copied.
        if !from.is_file() {
            continue;
        }
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::copy(&from, &to).with_context(|| format!("copying {}", file.display()))?;
    }
    Ok(())
}

/// Makes `scratch` a workspace of `crates` alone, plus the workspace crates
/// they reach by path (their dev-dependencies among them), so that a
/// resolution there sees only what those crates ask for. The test crates'
/// higher bounds would otherwise lift the versions a user would get.
pub fn keep_only(scratch: &Path, crates: &[String]) -> Result<()> {
    let metadata = run_metadata(&scratch.join("Cargo.toml"))?;
    let packages = metadata.workspace_packages();
    let by_name: HashMap<_, _> = packages.iter().map(|p| (p.name.as_str(), *p)).collect();
    let mut members: Vec<&str> = crates.iter().map(String::as_str).collect();
    let mut next = 0;
    while next < members.len() {
        let package = by_name
            .get(members[next])
            .with_context(|| format!("{} is not a workspace member", members[next]))?;
        for dep in &package.dependencies {
            if dep.path.is_some()
                && by_name.contains_key(dep.name.as_str())
                && !members.contains(&dep.name.as_str())
            {
                members.push(dep.name.as_str());
            }
        }
        next += 1;
    }
    let mut dirs = toml_edit::Array::new();
    for name in members {
        let dir = by_name[name]
            .manifest_path
            .parent()
            .context("a manifest path without a directory")?
            .strip_prefix(scratch)
            .context("a member outside the scratch copy")?;
        dirs.push(dir.as_str());
    }
    edit(&scratch.join("Cargo.toml"), |manifest| {
        let workspace = manifest["workspace"]
            .as_table_mut()
            .context("no [workspace] table")?;
        workspace.insert("members", toml_edit::value(dirs));
        workspace.remove("default-members");
        Ok(())
    })
}

/// Raises every version requirement on a crate to the highest one any
/// manifest of the workspace states for that crate (per semver-compatible
/// series). `-Z direct-minimal-versions` picks each direct requirement's
/// exact minimum, so where the test crates need more than the library does,
/// the workspace resolves only once the two agree.
pub fn unify_requirements(scratch: &Path) -> Result<()> {
    let metadata = run_metadata(&scratch.join("Cargo.toml"))?;
    let mut manifests: Vec<PathBuf> = metadata
        .workspace_packages()
        .iter()
        .map(|p| p.manifest_path.clone().into_std_path_buf())
        .collect();
    manifests.push(scratch.join("Cargo.toml"));
    let mut highest: HashMap<(String, String), (Vec<u64>, String)> = HashMap::new();
    for manifest in &manifests {
        let text = std::fs::read_to_string(manifest)?;
        let document: DocumentMut = text.parse().context("parsing a manifest")?;
        for_each_requirement(document.as_table(), &mut |crate_name, requirement| {
            if let Some((series, parts)) = series(requirement) {
                let entry = highest
                    .entry((crate_name.to_owned(), series))
                    .or_insert_with(|| (parts.clone(), requirement.to_owned()));
                if parts > entry.0 {
                    *entry = (parts, requirement.to_owned());
                }
            }
        });
    }
    for manifest in &manifests {
        edit(manifest, |document| {
            for_each_requirement_mut(document.as_table_mut(), &mut |crate_name, requirement| {
                let series = series(requirement.as_str()?)?.0;
                let (_, top) = highest.get(&(crate_name.to_owned(), series))?;
                Some(top.clone())
            });
            Ok(())
        })?;
    }
    Ok(())
}

/// The semver-compatible series of a bare requirement (`"1.8"`, `"0.14.32"`)
/// and its parts; `None` for anything with an operator, which is left alone.
fn series(requirement: &str) -> Option<(String, Vec<u64>)> {
    let bare = requirement.strip_prefix('^').unwrap_or(requirement);
    let parts: Vec<u64> = bare
        .split('.')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let series = match parts.as_slice() {
        [0, 0, ..] => bare.to_owned(),
        [0, minor, ..] => format!("0.{minor}"),
        [major, ..] => major.to_string(),
        [] => return None,
    };
    Some((series, parts))
}

/// The dependency tables of a manifest: `[workspace.dependencies]`, the
/// three kinds, and each `[target.*]`'s.
fn dependency_tables(manifest: &Table) -> Vec<Vec<String>> {
    let kinds = ["dependencies", "dev-dependencies", "build-dependencies"];
    let mut paths: Vec<Vec<String>> = kinds.iter().map(|k| vec![k.to_string()]).collect();
    paths.push(vec!["workspace".into(), "dependencies".into()]);
    if let Some(targets) = manifest.get("target").and_then(Item::as_table) {
        for (target, _) in targets.iter() {
            for kind in kinds {
                paths.push(vec!["target".into(), target.into(), kind.into()]);
            }
        }
    }
    paths
}

fn table_at<'a>(manifest: &'a Table, path: &[String]) -> Option<&'a dyn toml_edit::TableLike> {
    let mut item = manifest.get(&path[0])?;
    for key in &path[1..] {
        item = item.as_table_like()?.get(key)?;
    }
    item.as_table_like()
}

/// Calls `visit(crate name, requirement)` for each dependency with a version.
fn for_each_requirement(manifest: &Table, visit: &mut impl FnMut(&str, &str)) {
    for path in dependency_tables(manifest) {
        let Some(table) = table_at(manifest, &path) else {
            continue;
        };
        for (key, dep) in table.iter() {
            let (name, version) = match dep {
                Item::Value(toml_edit::Value::String(version)) => (key, version.value().as_str()),
                _ => match dep.as_table_like() {
                    Some(spec) => match spec.get("version").and_then(Item::as_str) {
                        Some(version) => (
                            spec.get("package").and_then(Item::as_str).unwrap_or(key),
                            version,
                        ),
                        None => continue,
                    },
                    None => continue,
                },
            };
            visit(name, version);
        }
    }
}

/// Replaces each dependency's requirement with what `replace(crate name,
/// requirement)` returns, where it returns one.
fn for_each_requirement_mut(
    manifest: &mut Table,
    replace: &mut impl FnMut(&str, &toml_edit::Value) -> Option<String>,
) {
    for path in dependency_tables(manifest) {
        let mut item = manifest.get_mut(&path[0]);
        for key in &path[1..] {
            item = item
                .and_then(|i| i.as_table_like_mut())
                .and_then(|t| t.get_mut(key));
        }
        let Some(table) = item.and_then(Item::as_table_like_mut) else {
            continue;
        };
        for (key, dep) in table.iter_mut() {
            let key = key.get().to_owned();
            if let Some(version) = dep.as_value_mut().filter(|v| v.is_str()) {
                if let Some(new) = replace(&key, version) {
                    *version = new.into();
                }
                continue;
            }
            let Some(spec) = dep.as_table_like_mut() else {
                continue;
            };
            let name = spec
                .get("package")
                .and_then(Item::as_str)
                .unwrap_or(&key)
                .to_owned();
            if let Some(version) = spec.get_mut("version").and_then(Item::as_value_mut) {
                if let Some(new) = replace(&name, version) {
                    *version = new.into();
                }
            }
        }
    }
}

fn edit(manifest: &Path, change: impl FnOnce(&mut DocumentMut) -> Result<()>) -> Result<()> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let mut document: DocumentMut = text
        .parse()
        .with_context(|| format!("parsing {}", manifest.display()))?;
    change(&mut document)?;
    std::fs::write(manifest, document.to_string())
        .with_context(|| format!("writing {}", manifest.display()))
}
