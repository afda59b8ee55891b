//! The check of witplug's released WIT (`wit/released.toml`), run by `cargo xtask test`:
//! each release's folder at its release commit, read back from git, against the same
//! folder now, both ways, with `witplug-wit` (the library behind `witplug wit-check`).

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};
use serde::Deserialize;
use witplug_wit::{Direction, WitSource};

use crate::util::{self, Paths};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Releases {
    release: Vec<Release>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Release {
    /// `namespace:name@version`, as the folder's `package` line says.
    package: String,
    commit: String,
    /// Relative to the repository root, at the commit and now.
    folder: String,
}

/// Checks every release listed in `wit/released.toml`; says what it checked.
pub(crate) fn check(paths: &Paths) -> anyhow::Result<Vec<String>> {
    let list = paths.root.join("wit/released.toml");
    let text = std::fs::read_to_string(&list)
        .with_context(|| format!("cannot read {}", list.display()))?;
    let releases: Releases =
        toml::from_str(&text).with_context(|| format!("{} is not valid", list.display()))?;
    let mut checked = Vec::new();
    for release in &releases.release {
        let baseline = tempfile::tempdir().context("cannot create a temporary directory")?;
        extract(
            &paths.root,
            &release.commit,
            &release.folder,
            baseline.path(),
        )
        .with_context(|| format!("cannot read {} as released", release.package))?;
        let old = baseline.path().join(&release.folder);
        let new = paths.root.join(&release.folder);
        compare(&release.package, &old, &new)?;
        checked.push(format!(
            "{} ({} since {})",
            release.package,
            release.folder,
            &release.commit[..release.commit.len().min(10)]
        ));
    }
    Ok(checked)
}

/// Fails unless `new` holds the same package as `old`, and plugins and hosts of either fit
/// the other.
fn compare(package: &str, old: &Path, new: &Path) -> anyhow::Result<()> {
    let old = WitSource::load(old)?;
    let new = WitSource::load(new)?;
    if old.name() != package {
        bail!(
            "wit/released.toml says its commit holds {package}, but {} there holds {}",
            old.path().display(),
            old.name()
        );
    }
    if new.name() != package {
        bail!(
            "{} was released as {package} and now holds {}: released WIT is never edited; \
             put the new version in a folder of its own",
            new.path().display(),
            new.name()
        );
    }
    let report = witplug_wit::check(&old, &new, None)?;
    if !report.holds(Direction::OldPluginsOnNewHosts)
        || !report.holds(Direction::NewPluginsOnOldHosts)
    {
        bail!(
            "{package} was changed in a way that breaks plugins or hosts built against its \
             release:\n{report}"
        );
    }
    Ok(())
}

/// Writes `folder` as it was at `commit` under `into`, from git (no work tree touched).
fn extract(root: &Path, commit: &str, folder: &str, into: &Path) -> anyhow::Result<()> {
    let git = || {
        let mut cmd = Command::new("git");
        cmd.arg("-C").arg(root);
        cmd
    };
    util::run_captured(
        git()
            .args(["cat-file", "-e"])
            .arg(format!("{commit}^{{commit}}")),
    )
    .with_context(|| {
        format!("commit {commit} is not in this clone (a shallow clone? `git fetch --unshallow`)")
    })?;
    let listed = util::run_captured(
        git()
            .args(["ls-tree", "-r", "-z", "--name-only", commit, "--"])
            .arg(folder),
    )?;
    let files: Vec<&[u8]> = listed
        .stdout
        .split(|b| *b == 0)
        .filter(|name| name.ends_with(b".wit"))
        .collect();
    if files.is_empty() {
        bail!("{folder} has no .wit file at {commit}");
    }
    for name in files {
        let name = std::str::from_utf8(name).context("a file name that is not UTF-8")?;
        let shown = util::run_captured(git().arg("show").arg(format!("{commit}:{name}")))?;
        let path = into.join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(&path, shown.stdout)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACKAGE: &str = "witplug:plugin@0.1.0";

    /// The 0.1.0 release's folder as git has it, in a temporary directory.
    fn released() -> tempfile::TempDir {
        let copy = tempfile::tempdir().expect("tempdir");
        extract(
            &Paths::new().root,
            "f10741fea0af6a2fe64b09fa3ce75fd8c675ba48",
            "wit",
            copy.path(),
        )
        .expect("the 0.1.0 release is in this clone");
        copy
    }

    /// A copy of the release with `change` applied to the text of each of `files`.
    fn changed(files: &[&str], change: impl Fn(String) -> String) -> tempfile::TempDir {
        let copy = released();
        for file in files {
            let path = copy.path().join("wit").join(file);
            let text = std::fs::read_to_string(&path).expect("released file");
            let edited = change(text.clone());
            assert_ne!(edited, text, "{file} changed since: fix this test");
            std::fs::write(&path, edited).expect("write");
        }
        copy
    }

    fn compare_with_release(new: &tempfile::TempDir) -> anyhow::Result<()> {
        compare(
            PACKAGE,
            &released().path().join("wit"),
            &new.path().join("wit"),
        )
    }

    #[test]
    fn the_tree_matches_its_releases() {
        let checked = check(&Paths::new()).expect("released WIT unchanged");
        assert!(
            checked.iter().any(|c| c.starts_with(PACKAGE)),
            "{checked:?}"
        );
    }

    #[test]
    fn a_doc_comment_edit_passes() {
        let new = changed(&["types.wit"], |text| {
            text.replacen("/// The value of one field.", "/// One field's value.", 1)
        });
        compare_with_release(&new).expect("a comment changes nothing");
    }

    #[test]
    fn an_added_variant_case_fails_and_is_named() {
        let new = changed(&["types.wit"], |text| {
            text.replacen("        null,\n", "        null,\n        missing,\n", 1)
        });
        let error = compare_with_release(&new).expect_err("a new case breaks 0.1.0's hosts");
        assert!(format!("{error:#}").contains("missing"), "{error:#}");
    }

    #[test]
    fn a_version_bump_in_place_fails() {
        let new = changed(&["aggregate.wit", "transform.wit", "types.wit"], |text| {
            text.replacen(PACKAGE, "witplug:plugin@0.2.0", 1)
        });
        let error = compare_with_release(&new).expect_err("0.1.0's folder must keep 0.1.0");
        assert!(format!("{error:#}").contains("never edited"), "{error:#}");
    }
}
