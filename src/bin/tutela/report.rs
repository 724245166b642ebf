//! `tutela audit report|pubkey|review`: evidence out of the audit log.

use crate::cli::PassArgs;
use crate::common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};
use tutela::error::{Error, Result};
use tutela::offline::report::{self, render, review, signed};
use tutela::text::escape;

pub struct ReportArgs {
    pub vault: PathBuf,
    pub pass: PassArgs,
    pub clients: Vec<String>,
    pub users: Vec<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub output: PathBuf,
    pub format: String,
    pub no_paths: bool,
}

fn uid_of(u: &str) -> Result<u32> {
    u.parse::<u32>()
        .ok()
        .or_else(|| tutela::sys::user_by_name(u))
        .ok_or_else(|| Error::Usage(format!("unknown user '{}'", escape(u))))
}

pub fn report(a: ReportArgs) -> Result<()> {
    let format = render::Format::parse(&a.format).ok_or_else(|| {
        Error::Usage(format!(
            "--format {}: use html, md or json",
            escape(&a.format)
        ))
    })?;
    let since = a
        .since
        .as_deref()
        .map(crate::audit::parse_time)
        .transpose()?;
    let until = a
        .until
        .as_deref()
        .map(crate::audit::parse_time)
        .transpose()?;
    if let (Some(s), Some(u)) = (since, until) {
        if s > u {
            return Err(Error::Usage("--since is after --until".into()));
        }
    }
    let uids = a
        .users
        .iter()
        .map(|u| uid_of(u))
        .collect::<Result<Vec<_>>>()?;
    if a.output.exists() || a.output.symlink_metadata().is_ok() {
        return Err(Error::Usage(format!(
            "{} exists: choose another --output (a report is never written over a file)",
            a.output.display()
        )));
    }
    let v = unlock(&a.vault, &a.pass)?;
    let zones: Vec<report::Zone> = v
        .zones
        .iter()
        .skip(1)
        .map(|z| report::Zone {
            name: z.name.clone(),
            path: z.path.clone(),
        })
        .collect();
    for c in &a.clients {
        if !zones.iter().any(|z| &z.name == c) {
            return Err(Error::Usage(format!(
                "no client named '{}' (see tutela client list)",
                escape(c)
            )));
        }
    }
    let scope = report::Scope {
        clients: a.clients.clone(),
        users: uids,
        since_ms: since,
        until_ms: until,
        paths: !a.no_paths,
    };
    let me = tutela::sys::user_name(tutela::sys::getuid()).unwrap_or_default();
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} reading the audit log: {msg} records")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let mut rep = report::build(&v.dir, &v.audit_keys(), &zones, &scope, &me, &mut |n| {
        bar.set_message(n.to_string());
        bar.tick();
    });
    bar.finish_and_clear();
    if let Ok(r) = rep.as_mut() {
        r.scope_users = a.users.clone();
    }
    let rep = rep?;
    let body = render::render(&rep, format);
    let signed = signed::sign_body(&body, format, &v.report_seed())?;
    write_new(&a.output, &signed)?;
    offline_record(
        &v,
        "audit-report",
        Some(format!(
            "{} records, clients: {}{}",
            rep.totals.total(),
            if a.clients.is_empty() {
                "all".into()
            } else {
                a.clients.join(", ")
            },
            if a.no_paths { ", no paths" } else { "" }
        )),
    );
    println!(
        "report written to {} ({} accesses, {} refusals, {} flagged){}",
        a.output.display(),
        rep.totals.total() - rep.totals.refused,
        rep.totals.refused,
        rep.flags.len(),
        if rep.verification.ok {
            String::new()
        } else {
            "; the log did NOT verify: the report says where".into()
        }
    );
    println!(
        "signed by {} (check it with: tutela audit report --verify FILE --pubkey {})",
        signed::public_hex(&v.report_seed()),
        signed::public_hex(&v.report_seed())
    );
    if rep.paths.is_some() {
        println!("it holds plaintext paths (its annex): share it only with those who must see them, or make it again with --no-paths");
    }
    Ok(())
}

/// Writes a new file (never over one), mode 0600: a report names clients and files.
fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::Usage(format!("cannot write {}: {e}", path.display())))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

pub fn verify(file: &Path, pubkey: Option<&str>) -> Result<()> {
    let bytes = tutela::sys::read_vault_file(file, 1 << 30, false)
        .map_err(|e| Error::Usage(format!("cannot read {}: {e}", file.display())))?;
    let pk = signed::verify(&bytes, pubkey)?;
    println!("report signature ok: signed by {pk}");
    if pubkey.is_none() {
        println!("note: compare that key with the one the vault's owner gave you (tutela audit pubkey), or pass it with --pubkey");
    }
    Ok(())
}

pub fn pubkey(vault: &Path, pass: &PassArgs) -> Result<()> {
    let v = unlock(vault, pass)?;
    println!("{}", signed::public_hex(&v.report_seed()));
    Ok(())
}

fn stamp(t: Option<u64>) -> String {
    t.map_or_else(
        || "never".into(),
        |t| humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(t)).to_string(),
    )
}

pub fn review(vault: &Path, pass: &PassArgs, client: &str, since: &str, json: bool) -> Result<()> {
    let since_ms = crate::audit::parse_time(since)?;
    let v = unlock(vault, pass)?;
    let z = v
        .zones
        .iter()
        .skip(1)
        .find(|z| z.name == client)
        .ok_or_else(|| {
            Error::Usage(format!(
                "no client named '{}' (see tutela client list)",
                escape(client)
            ))
        })?;
    let policy = v
        .read_policy()?
        .map(|t| tutela::daemon::mount::parse_policy(&t, "tutela.policy"))
        .transpose()?;
    let r = review::review(
        &v.dir,
        &v.audit_keys(),
        policy.as_ref(),
        client,
        &z.path,
        since_ms,
    )?;
    if json {
        println!("{}", serde_json::to_string(&r).unwrap_or_default());
        return Ok(());
    }
    println!(
        "access review of client '{}' ({}) since {}",
        escape(&r.client),
        escape(&r.path),
        stamp(Some(r.since_ms))
    );
    if !r.policy {
        println!("no policy is in force: Unix permissions alone decide who may open the client's files (tutela policy set)");
    } else {
        println!("policy in force since {}", stamp(r.policy_since_ms));
    }
    println!("\nmay access (current policy):");
    for g in &r.may_access {
        println!(
            "  {:<16} {:<6} via {:<20} {} accesses, last {}",
            escape(&g.user),
            g.grant,
            escape(&g.via),
            g.accesses,
            stamp(g.last_access_ms)
        );
    }
    println!("\ndid access:");
    for u in &r.did_access {
        println!(
            "  {:<16} {} accesses, {} refused, last {}{}",
            escape(&u.user),
            u.accesses,
            u.refused,
            stamp(u.last_access_ms),
            if u.granted || !r.policy {
                ""
            } else {
                "  (holds no grant now)"
            }
        );
    }
    println!("\nhold access but never used it in the period (candidates for removal):");
    if r.never_used.is_empty() {
        println!("  nobody");
    }
    for u in &r.never_used {
        println!("  {}", escape(u));
    }
    Ok(())
}
