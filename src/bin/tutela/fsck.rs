//! `tutela fsck`.

use crate::cli::PassArgs;
use crate::common::*;
use std::path::Path;
use std::time::Duration;
use tutela::error::{Error, Result};

pub fn fsck(
    vault: &Path,
    pass: &PassArgs,
    repair: bool,
    keep: tutela::offline::fsck::Keep,
    json: bool,
) -> Result<()> {
    let v = unlock(vault, pass)?;
    if !v.rekey_pending().is_empty() {
        return Err(Error::Usage(format!(
            "a rekey of {} is not finished: run `tutela rekey {} --resume` first",
            v.rekey_pending().join(", "),
            vault.display()
        )));
    }
    if tutela::daemon::mount::mounts().iter().any(|m| {
        m.is_tutela() && Path::new(m.source.trim_start_matches("tutela:")) == v.dir.as_path()
    }) && repair
    {
        return Err(Error::Busy(
            "the vault is mounted: unmount it before fsck --repair".into(),
        ));
    }
    // A progress line on a terminal, nothing in scripts.
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut last = std::time::Instant::now();
    let mut progress = |files: u64, bytes: u64| {
        if tty && last.elapsed() > Duration::from_millis(200) {
            last = std::time::Instant::now();
            eprint!("\rfsck: {files} files, {} MiB checked", bytes >> 20);
        }
    };
    let rep = tutela::offline::fsck::check_keeping(&v, repair, keep, &mut progress)?;
    if tty {
        eprint!("\r\x1b[K");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rep).unwrap_or_default());
    } else {
        print!("{}", tutela::offline::fsck::render(&rep));
        println!(
            "checked {} directories, {} files ({} bytes), {} audit records: {}",
            rep.directories,
            rep.files,
            rep.bytes,
            rep.audit_records,
            if rep.problems.is_empty() {
                "clean".to_string()
            } else {
                let left = rep.problems.iter().filter(|p| !p.repaired).count();
                format!(
                    "{} problems, {} repaired, {left} remaining",
                    rep.problems.len(),
                    rep.problems.len() - left
                )
            }
        );
    }
    if rep.clean() {
        Ok(())
    } else {
        Err(Error::FsckProblems(format!(
            "fsck found problems{}",
            if repair {
                " it could not repair"
            } else {
                ": see above (--repair fixes what needs no guessing)"
            }
        )))
    }
}
