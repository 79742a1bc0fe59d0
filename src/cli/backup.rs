//! `kwi backup` and `kwi restore` for the embedded default (SQLite). PostgreSQL has its own
//! tools (`pg_dump`/`pg_restore`, docs/operations.md); both commands say so on a PostgreSQL URL.
//!
//! A backup is written beside its destination as `*.partial`, checked (`PRAGMA
//! integrity_check`), then renamed into place: a file under the destination's name is always a
//! whole, checked copy. A restore never deletes the database it replaces: it keeps it beside,
//! renamed `*.before-restore-<UTC time>` (with its write-ahead log folded in first).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::Utc;

use crate::config::{BackupArgs, GlobalOpts, RestoreArgs};

/// The file of an SQLite URL (`sqlite:PATH`, `sqlite://PATH`, options after `?` ignored).
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?.trim_start_matches("//");
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

const POSTGRES: &str = "the database is PostgreSQL: back it up with pg_dump --format=custom --file FILE \"$KWI_DATABASE_URL\" and restore with pg_restore --clean --if-exists --dbname \"$KWI_DATABASE_URL\" FILE (docs/operations.md)";

/// `path` + `suffix` (`kwi.db` → `kwi.db.partial`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// `kwi backup --out FILE`.
pub async fn backup(global: &GlobalOpts, args: &BackupArgs) -> anyhow::Result<()> {
    let url = global.database_url();
    if sqlite_file(&url).is_none() {
        bail!("{POSTGRES}");
    }
    if args.out.exists() {
        bail!(
            "{} exists: kwi backup never overwrites a file; choose another --out",
            args.out.display()
        );
    }
    let store = super::open_store(global).await?;
    let partial = with_suffix(&args.out, ".partial");
    if partial.exists() {
        // Left by a backup that was interrupted: never a usable copy.
        std::fs::remove_file(&partial)
            .with_context(|| format!("cannot remove the stale {}", partial.display()))?;
    }
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let started = std::time::Instant::now();
    if let Err(e) = store.backup_into(&partial).await {
        let _ = std::fs::remove_file(&partial);
        return Err(anyhow::Error::new(e).context(format!("cannot write {}", partial.display())));
    }
    let checked = kwi_store::check_sqlite_file(&partial).await;
    let (observations, keywords) = match checked {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(anyhow::Error::new(e).context("the copy failed its check; nothing written"));
        }
    };
    std::fs::rename(&partial, &args.out)
        .with_context(|| format!("cannot move the copy to {}", args.out.display()))?;
    let bytes = std::fs::metadata(&args.out).map(|m| m.len()).unwrap_or(0);
    println!(
        "backup written to {}: {bytes} bytes, {observations} observations, {keywords} keywords, integrity ok ({:.1} s)",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `kwi restore --from FILE [--force]`.
pub async fn restore(global: &GlobalOpts, args: &RestoreArgs) -> anyhow::Result<()> {
    let url = global.database_url();
    let Some(target) = sqlite_file(&url) else {
        bail!("{POSTGRES}");
    };
    if !args.from.is_file() {
        bail!("no backup file {}", args.from.display());
    }
    let (observations, keywords) = kwi_store::check_sqlite_file(&args.from)
        .await
        .with_context(|| format!("{} is not a readable kwi backup", args.from.display()))?;
    let mut kept = None;
    if target.exists() {
        if !args.force {
            bail!(
                "{} exists: pass --force to replace it (it is kept beside, renamed *.before-restore-<time>)",
                target.display()
            );
        }
        // Its log folded in first, so the kept file holds every committed transaction.
        if !kwi_store::checkpoint_sqlite_file(&target)
            .await
            .with_context(|| format!("cannot read {}", target.display()))?
        {
            bail!(
                "{} is in use: stop kwi serve and kwi worker first",
                target.display()
            );
        }
        let aside = with_suffix(
            &target,
            &format!(".before-restore-{}", Utc::now().format("%Y%m%dT%H%M%SZ")),
        );
        // The main file with its (now empty) log and shared-memory files, under one name.
        for suffix in ["", "-wal", "-shm"] {
            let from = with_suffix(&target, suffix);
            if from.exists() {
                std::fs::rename(&from, with_suffix(&aside, suffix))
                    .with_context(|| format!("cannot move {} aside", from.display()))?;
            }
        }
        kept = Some(aside);
    }
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let partial = with_suffix(&target, ".partial");
    std::fs::copy(&args.from, &partial).with_context(|| {
        format!(
            "cannot copy {} to {}",
            args.from.display(),
            partial.display()
        )
    })?;
    std::fs::rename(&partial, &target)
        .with_context(|| format!("cannot move the copy to {}", target.display()))?;
    // Opening applies the migrations a backup from an older version lacks.
    super::open_store(global).await?;
    println!(
        "restored {} into {}: {observations} observations, {keywords} keywords{}",
        args.from.display(),
        target.display(),
        kept.map(|k| format!("; the replaced database is kept as {}", k.display()))
            .unwrap_or_default()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(sqlite_file("sqlite:/tmp/k.db"), Some("/tmp/k.db".into()));
        assert_eq!(
            sqlite_file("sqlite:///tmp/k.db?mode=rwc"),
            Some("/tmp/k.db".into())
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://u@h/db"), None);
    }
}
