//! `tutela audit prune`: a retention limit for the audit log (the work is in audit::prune).

use crate::audit::parse_time;
use crate::cli::PassArgs;
use crate::common::unlock;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};
use tutela::audit::prune;
use tutela::error::Result;

pub struct Args<'a> {
    pub vault: &'a Path,
    pub before: &'a str,
    pub dry_run: bool,
    pub yes: bool,
    pub pass: &'a PassArgs,
    pub json: bool,
}

pub fn run(a: Args<'_>) -> Result<()> {
    let cutoff = parse_time(a.before)?;
    let v = unlock(a.vault, a.pass)?;
    let keys = v.audit_keys();
    let _lock = prune::lock(&v.dir)?;
    let uid = tutela::sys::getuid();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let plan = prune::plan(&v.dir, &keys, cutoff, uid, now)?;
    let go = plan.prunes() && !a.dry_run;
    if go && !a.yes {
        confirm(&plan)?;
    }
    if !a.dry_run {
        // Also clears segments an interrupted prune left behind.
        prune::execute(&keys, &plan)?;
    }
    // While the vault is mounted, the daemon records it when it sees the checkpoint.
    if go && tutela::daemon::mount::mount_of(&v.dir).is_none() {
        crate::common::offline_record(&v, "audit-prune", Some(plan.describe()));
    }
    if a.json {
        println!("{}", json(&plan, a.dry_run, cutoff));
    } else {
        println!("{}", human(&plan, a.dry_run, cutoff));
    }
    Ok(())
}

fn span(from: Option<u64>, to: Option<u64>) -> String {
    match (from, to) {
        (Some(f), Some(t)) => format!("{} .. {}", prune::stamp(f), prune::stamp(t)),
        _ => "no records".into(),
    }
}

fn human(p: &prune::Plan, dry_run: bool, cutoff: u64) -> String {
    let kept = match p.kept_from_ms {
        Some(t) => format!(
            "{} {}, from {} on",
            count(p.kept_records, "record"),
            if p.kept_records == 1 { "stays" } else { "stay" },
            prune::stamp(t)
        ),
        None => "no records stay (the newest segment, now empty, does)".into(),
    };
    if !p.prunes() {
        return format!(
            "nothing to prune: no whole segment before the newest holds only records older than {}; {kept}",
            prune::stamp(cutoff)
        );
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    format!(
        "{verb} {} in {} ({}); {kept}",
        count(p.records, "record"),
        count(p.segments, "segment"),
        span(p.oldest_ms, p.newest_ms)
    )
}

fn json(p: &prune::Plan, dry_run: bool, cutoff: u64) -> serde_json::Value {
    serde_json::json!({
        "dry_run": dry_run,
        "cutoff_ms": cutoff,
        "removed": {
            "records": p.records,
            "segments": p.segments,
            "oldest_ms": p.oldest_ms,
            "newest_ms": p.newest_ms,
        },
        "kept": { "records": p.kept_records, "oldest_ms": p.kept_from_ms },
        "first_seq": p.parts.iter().find_map(|c| c.next.as_ref()).map(|c| c.first_seq),
        "chains": p.parts.iter().map(|c| serde_json::json!({
            "chain": c.chain.label(),
            "first_seq": c.next.as_ref().map(|n| n.first_seq),
        })).collect::<Vec<_>>(),
    })
}

fn confirm(p: &prune::Plan) -> Result<()> {
    crate::common::confirm(
        "prune removes audit records for good: confirm on a terminal, or pass --yes (see --dry-run)",
        &format!(
            "This removes {} ({}) from the audit log for good.",
            count(p.records, "record"),
            span(p.oldest_ms, p.newest_ms)
        ),
        "prune",
    )
}

fn count(n: u64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}
