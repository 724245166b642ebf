//! `tutela audit verify|show` (and the time grammar of `--since`/`--until`); `prune` is
//! in prune.rs.

use crate::cli::AuditCmd;
use crate::common::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tutela::audit::{self, Record};
use tutela::error::{Error, Result};
use tutela::text::escape;

/// Parses --since/--until: a date, a date and time (UTC), or an age ("72h", "3days").
pub fn parse_time(s: &str) -> Result<u64> {
    let t = s.trim();
    // A bare number could be a year: an age needs its unit here ("90s", "72h").
    let bare = !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if let Some(d) = (!bare)
        .then(|| tutela::daemon::mount::parse_duration(t).ok())
        .flatten()
    {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        return Ok(now.saturating_sub(d).as_millis() as u64);
    }
    let full = if t.len() == 10 {
        format!("{t}T00:00:00Z")
    } else {
        t.to_string()
    };
    humantime::parse_rfc3339_weak(&full)
        .map(|st| st.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0))
        .map_err(|_| Error::Usage(format!("'{s}' is not a time: use 2026-11-20, \"2026-11-20 14:00:00\" (UTC) or an age like 72h")))
}

fn under(path: &str, prefix: &str) -> bool {
    let p = prefix.trim_end_matches('/');
    p.is_empty()
        || path == p
        || (path.starts_with(p) && path.as_bytes().get(p.len()) == Some(&b'/'))
}

/// One record as one line: every field that came from a name, a program or a user is escaped,
/// so a file name with a newline or a terminal escape cannot forge or hide a record.
fn human(r: &Record) -> String {
    let t = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(r.time_ms));
    let mut line = format!(
        "{t}  {}({})  {}[{}]  {}",
        escape(&r.user),
        r.uid,
        escape(&r.program),
        r.pid,
        escape(&r.op)
    );
    if let Some(d) = &r.detail {
        line.push_str(&format!(" {}", escape(d)));
    }
    line.push_str(&format!("  {}", escape(&r.path)));
    if let Some(p2) = &r.path2 {
        line.push_str(&format!(" -> {}", escape(p2)));
    }
    if let Some(c) = &r.client {
        line.push_str(&format!("  [{}]", escape(c)));
    }
    line.push_str(&format!("  {}", escape(&r.result)));
    line
}

/// Each chain's head (the anchor to keep) and pruning point; with several chains (a vault
/// mounted from copies on several machines), one line per chain first.
/// The first chain that no longer reaches the head a `rekey --all` recorded for it (records
/// cut off its end since), or that is gone.
fn unreached_heads(
    rep: &audit::LogReport,
    superseded: &[tutela::offline::rekey::Superseded],
) -> Option<String> {
    superseded.iter().find_map(|s| {
        let c = rep
            .chains
            .iter()
            .find(|c| c.chain.replica == s.head.chain);
        match c {
            None => Some(format!(
                "a rekey --all recorded the chain of head {}, which the log no longer holds (it was removed)",
                s.head
            )),
            Some(c) if !s.renumbered && c.report.head.is_none_or(|h| h.seq < s.head.seq) => {
                Some(format!(
                    "{}: ends before record {}, which a rekey --all recorded it reached: records were cut off its end",
                    c.chain.label(),
                    s.head.seq
                ))
            }
            Some(_) => None,
        }
    })
}

fn print_chains(rep: &audit::LogReport) {
    let several = rep.chains.len() > 1;
    for c in &rep.chains {
        let r = &c.report;
        if several {
            println!(
                "chain {}: {} records in {} segments",
                c.chain.label(),
                r.records,
                r.segments
            );
        }
        if let Some(head) = &r.head {
            println!("head: {head}");
        }
        if let Some(cp) = &r.pruned {
            println!(
                "pruned{}: {} on {} by {}({})",
                if several {
                    format!(" ({})", c.chain.label())
                } else {
                    String::new()
                },
                cp.describe(),
                audit::prune::stamp(cp.pruned_at_ms),
                tutela::sys::user_name(cp.uid).unwrap_or_default(),
                cp.uid
            );
        }
    }
}

pub fn audit(cmd: AuditCmd) -> Result<()> {
    match cmd {
        AuditCmd::Verify {
            vault,
            pass,
            expect,
            anchors_from,
        } => {
            let mut anchors = expect
                .iter()
                .map(|a| audit::anchor::Anchor::parse(a))
                .collect::<Result<Vec<_>>>()?;
            // Exports are read before the vault is opened: a missing one is a typo to fix.
            let exports = anchors_from
                .iter()
                .map(|f| {
                    tutela::sys::read_vault_file(f, 4 << 30, false)
                        .map(|b| (f, String::from_utf8_lossy(&b).into_owned()))
                        .map_err(|e| Error::Usage(format!("cannot read {}: {e}", f.display())))
                })
                .collect::<Result<Vec<_>>>()?;
            let v = unlock(&vault, &pass)?;
            for (f, text) in &exports {
                let found = audit::forward::anchors_in(text, &v.config.vault_id);
                println!(
                    "anchors from {}: {} of this vault found",
                    f.display(),
                    found.len()
                );
                for a in found {
                    if !anchors.contains(&a) {
                        anchors.push(a);
                    }
                }
            }
            // A rekey --all re-sealed the log under a new key: anchors kept from before it
            // cannot be compared, and its own record lists the heads it superseded.
            // Every rotation's list sets anchors aside; only the latest one's is in the log's
            // present numbering (a later rotation may renumber a pruned chain), so only it says
            // which records each chain must still reach.
            let rotations_of = |rotations: &mut Vec<Vec<tutela::offline::rekey::Superseded>>,
                                r: &audit::Record| {
                if r.op == "rekey-all" && r.result == "ok" {
                    if let Some(d) = &r.detail {
                        rotations.push(tutela::offline::rekey::superseded_in(d));
                    }
                }
            };
            let mut rotations = Vec::new();
            let mut rep = audit::read_all_anchored(&v.dir, &v.audit_keys(), &anchors, |r| {
                rotations_of(&mut rotations, &r)
            })?;
            let mut set_aside = 0;
            if rep.bad.is_some() && !anchors.is_empty() {
                // The read stopped at the first anchor that differs: the rotations' records
                // may lie beyond it.
                rotations.clear();
                audit::read_all(&v.dir, &v.audit_keys(), |r| {
                    rotations_of(&mut rotations, &r)
                })?;
                let superseded: Vec<_> = rotations.iter().flatten().copied().collect();
                let (before_rekey, after): (Vec<_>, Vec<_>) = anchors
                    .iter()
                    .partition(|a| superseded.iter().any(|s| s.covers(a)));
                if !before_rekey.is_empty() {
                    let again = audit::read_all_anchored(&v.dir, &v.audit_keys(), &after, |_| {})?;
                    if again.bad.is_none() {
                        rep = again;
                        set_aside = before_rekey.len() as u64;
                    }
                }
            }
            if rep.bad.is_none() {
                rep.bad = unreached_heads(&rep, rotations.last().map_or(&[][..], |l| &l[..]));
            }
            if let Some(bad) = &rep.bad {
                return Err(Error::AuditTampered(format!(
                    "{bad} ({} records before it verified)",
                    rep.records()
                )));
            }
            println!(
                "audit log ok: {} records in {} segments",
                rep.records(),
                rep.segments()
            );
            print_chains(&rep);
            for c in &rep.segment_copies {
                println!(
                    "note: {} is a copy of a segment under another name (a sync tool's conflict \
                     copy, when two machines wrote the same chain: a cloned machine): its records \
                     are not in this log; keep the file",
                    tutela::text::escape(c),
                );
            }
            let checked = anchors.len() as u64 - rep.anchors_pruned - set_aside;
            if checked > 0 {
                println!("anchors: {checked} reached unchanged");
            }
            if set_aside > 0 {
                println!(
                    "anchors: {set_aside} made before a rekey --all (under the key it replaced: nothing to compare; the re-sealed chains still reach every head it recorded)"
                );
            }
            if rep.anchors_pruned > 0 {
                println!(
                    "anchors: {} lie before the pruning point (removed by a prune; nothing to compare)",
                    rep.anchors_pruned
                );
            }
            if rep.cross_checked > 0 {
                println!(
                    "replicas: {} heads one copy saw of another's chain reached unchanged",
                    rep.cross_checked
                );
            }
            if rep.torn_tail() {
                println!("note: a record was cut short by a crash (the last moment before it is lost); this is not tampering");
            }
            Ok(())
        }
        AuditCmd::Prune {
            vault,
            before,
            dry_run,
            yes,
            pass,
            json,
        } => crate::prune::run(crate::prune::Args {
            vault: &vault,
            before: &before,
            dry_run,
            yes,
            pass: &pass,
            json,
        }),
        AuditCmd::Report {
            vault,
            pass,
            client,
            user,
            since,
            until,
            output,
            format,
            no_paths,
            verify,
            pubkey,
        } => match (verify, vault, output) {
            (Some(f), _, _) => crate::report::verify(&f, pubkey.as_deref()),
            (None, Some(vault), Some(output)) => crate::report::report(crate::report::ReportArgs {
                vault,
                pass,
                clients: client,
                users: user,
                since,
                until,
                output,
                format,
                no_paths,
            }),
            _ => Err(Error::Usage(
                "audit report needs VAULT and --output FILE (or --verify FILE)".into(),
            )),
        },
        AuditCmd::Pubkey { vault, pass } => crate::report::pubkey(&vault, &pass),
        AuditCmd::Review {
            vault,
            pass,
            client,
            since,
            json,
        } => crate::report::review(&vault, &pass, &client, &since, json),
        AuditCmd::Show {
            vault,
            pass,
            client,
            user,
            path,
            since,
            until,
            denied,
            json,
        } => {
            let since = since.as_deref().map(parse_time).transpose()?;
            let until = until.as_deref().map(parse_time).transpose()?;
            let uid = user.as_deref().map(|u| {
                u.parse::<u32>()
                    .ok()
                    .or_else(|| tutela::sys::user_by_name(u))
            });
            if let (Some(None), Some(u)) = (&uid, &user) {
                return Err(Error::Usage(format!("unknown user '{u}'")));
            }
            let uid = uid.flatten();
            let v = unlock(&vault, &pass)?;
            // With copies on several machines, each line says whose chain it came from.
            let several = audit::chain::all(&v.dir)?.len() > 1;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let rep = audit::read_all(&v.dir, &v.audit_keys(), |r| {
                let keep = client
                    .as_ref()
                    .is_none_or(|c| r.client.as_deref() == Some(c.as_str()))
                    && uid.is_none_or(|u| r.uid == u)
                    && path.as_ref().is_none_or(|p| {
                        under(&r.path, p) || r.path2.as_deref().is_some_and(|p2| under(p2, p))
                    })
                    && since.is_none_or(|s| r.time_ms >= s)
                    && until.is_none_or(|u| r.time_ms <= u)
                    && (!denied || r.result == "denied");
                if keep {
                    use std::io::Write;
                    let line = if json {
                        serde_json::to_string(&r).unwrap_or_default()
                    } else {
                        let mut line = human(&r);
                        if let (true, Some(c)) = (several, &r.replica) {
                            line.push_str(&format!("  @{}", escape(c)));
                        }
                        line
                    };
                    let _ = writeln!(out, "{line}");
                }
            })?;
            drop(out);
            if let Some(bad) = rep.bad {
                return Err(Error::AuditTampered(format!(
                    "{bad}: records after it are not shown"
                )));
            }
            // An investigator asking about a time the log no longer covers must be told.
            if let Some(cp) = rep
                .chains
                .iter()
                .filter_map(|c| c.report.pruned.clone())
                .filter(|cp| since.is_none_or(|s| s < cp.cutoff_ms))
                .max_by_key(|cp| cp.cutoff_ms)
            {
                eprintln!(
                    "tutela: note: records older than {} were pruned on {}",
                    audit::prune::stamp(cp.cutoff_ms),
                    audit::prune::stamp(cp.pruned_at_ms)
                );
            }
            Ok(())
        }
    }
}
