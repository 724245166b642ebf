//! The policy and audit commands (the CLI's behaviour; argument shapes are in cli.rs).

use crate::cli::{AuditCmd, ClientCmd, KeyCmd, PassArgs, PolicyCmd};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tutela::audit::{self, Record};
use tutela::error::{Error, Result};
use tutela::policy::store;
use tutela::text::escape;
use tutela::vault::passphrase::{self, Source};
use tutela::vault::{Unlock, Vault};

pub fn unlock(vault: &Path, pass: &PassArgs) -> Result<Vault> {
    Vault::read_config(vault)?;
    let src = Source {
        passfile: pass.passfile.clone(),
        extpass: pass.extpass.clone(),
    };
    tutela::offline::open_vault(
        vault,
        &Unlock::Passphrase(passphrase::existing(&src)?),
        pass.keystore.as_deref(),
    )
}

pub fn offline_record(v: &Vault, op: &str, detail: Option<String>) {
    let mut r = Record::now(op, "/");
    r.user = tutela::sys::user_name(r.uid).unwrap_or_default();
    r.detail = detail;
    // While the vault is mounted the daemon holds the log and records the change itself.
    if let Err(e) = audit::append_offline(&v.dir, v.audit_keys(), &[r]) {
        if !matches!(e, Error::Busy(_)) {
            eprintln!("tutela: warning: could not write the audit record: {e}");
        }
    }
}

/// The control channel of the daemon serving `v`, if the vault is mounted. A mounted vault
/// whose daemon cannot be reached is an error: offline work would race the daemon.
fn live_daemon(v: &Vault) -> Result<Option<std::os::unix::net::UnixStream>> {
    let Some(m) = tutela::daemon::mount::mount_of(&v.dir) else {
        return Ok(None);
    };
    match tutela::daemon::control::client::connect(&v.config.vault_id) {
        Some(s) => Ok(Some(s)),
        None => Err(Error::Busy(format!(
            "the vault is mounted at {}, but its daemon's control channel cannot be reached \
             from this user (only root and the user who mounted it can reach it; a daemon \
             started by an older tutela has none): run the command as one of them, or \
             unmount first",
            m.mountpoint.display()
        ))),
    }
}

/// Passes `req` to the mount daemon and prints its answer.
fn remote(
    stream: std::os::unix::net::UnixStream,
    v: &Vault,
    req: &tutela::daemon::control::Request,
    json: bool,
) -> Result<()> {
    remote_with(stream, &v.control_key(), req, json)
}

fn remote_with(
    stream: std::os::unix::net::UnixStream,
    key: &tutela::crypto::secret::Key32,
    req: &tutela::daemon::control::Request,
    json: bool,
) -> Result<()> {
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} (on the live mount)")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let res = tutela::daemon::control::client::call(stream, key, req, &mut |p| {
        bar.set_message(escape(p).into_owned())
    });
    bar.finish_and_clear();
    let (message, detail) = res?;
    if json {
        println!("{detail}");
    } else {
        for line in message.lines() {
            println!("{}", escape(line));
        }
    }
    Ok(())
}

pub fn policy(cmd: PolicyCmd) -> Result<()> {
    match cmd {
        PolicyCmd::Check { file } => {
            let text = read_policy_file(&file)?;
            let p = tutela::daemon::mount::parse_policy(&text, &file.display().to_string())?;
            println!(
                "{}: ok ({} clients, {} admins)",
                file.display(),
                p.clients.len(),
                p.admins.len()
            );
            Ok(())
        }
        PolicyCmd::Set { vault, file, pass } => {
            let text = read_policy_file(&file)?;
            let p = tutela::daemon::mount::parse_policy(&text, &file.display().to_string())?;
            let mut v = unlock(&vault, &pass)?;
            v.store_policy(&text)?;
            offline_record(
                &v,
                "policy-set",
                Some(format!("{} clients", p.clients.len())),
            );
            println!(
                "policy stored ({} clients); a live mount applies it within a second",
                p.clients.len()
            );
            Ok(())
        }
        PolicyCmd::Show { vault, pass } => {
            let v = unlock(&vault, &pass)?;
            match v.read_policy()? {
                Some(t) => print!("{t}"),
                None => println!("# no policy stored: Unix owners and modes alone decide access"),
            }
            Ok(())
        }
        PolicyCmd::Clear { vault, pass } => {
            let mut v = unlock(&vault, &pass)?;
            v.clear_policy()?;
            offline_record(&v, "policy-clear", None);
            println!("policy removed");
            Ok(())
        }
    }
}

fn read_policy_file(file: &Path) -> Result<String> {
    let bytes = std::fs::read(file)
        .map_err(|e| Error::PolicyInvalid(format!("{}: cannot read: {e}", file.display())))?;
    String::from_utf8(bytes)
        .map_err(|_| Error::PolicyInvalid(format!("{}:1:1: the file is not UTF-8", file.display())))
}

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

pub fn audit(cmd: AuditCmd) -> Result<()> {
    match cmd {
        AuditCmd::Verify {
            vault,
            pass,
            expect,
        } => {
            let anchors = expect
                .iter()
                .map(|a| audit::anchor::Anchor::parse(a))
                .collect::<Result<Vec<_>>>()?;
            let v = unlock(&vault, &pass)?;
            let rep = audit::read_all_anchored(&v.dir, &v.audit_keys(), &anchors, |_| {})?;
            if let Some(bad) = rep.bad {
                return Err(Error::AuditTampered(format!(
                    "{bad} ({} records before it verified)",
                    rep.records
                )));
            }
            println!(
                "audit log ok: {} records in {} segments",
                rep.records, rep.segments
            );
            if let Some(head) = &rep.head {
                println!("head: {head}");
            }
            for c in &rep.segment_copies {
                println!(
                    "note: {} in {}/ is a copy of a segment under another name (a sync tool's \
                     conflict copy, when two machines mounted copies of this vault at once): its \
                     records are not in this log; keep the file",
                    tutela::text::escape(c),
                    audit::DIR_NAME
                );
            }
            let checked = anchors.len() as u64 - rep.anchors_pruned;
            if checked > 0 {
                println!("anchors: {checked} reached unchanged");
            }
            if rep.anchors_pruned > 0 {
                println!(
                    "anchors: {} lie before the pruning point (removed by a prune; nothing to compare)",
                    rep.anchors_pruned
                );
            }
            if let Some(cp) = &rep.pruned {
                println!(
                    "pruned: {} on {} by {}({})",
                    cp.describe(),
                    audit::prune::stamp(cp.pruned_at_ms),
                    tutela::sys::user_name(cp.uid).unwrap_or_default(),
                    cp.uid
                );
            }
            if rep.torn_tail {
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
                        human(&r)
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
                .pruned
                .filter(|cp| since.is_none_or(|s| s < cp.cutoff_ms))
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

pub fn fsck(vault: &Path, pass: &PassArgs, repair: bool, json: bool) -> Result<()> {
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
    let rep = tutela::offline::fsck::check(&v, repair, &mut progress)?;
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

/// A new passphrase (from FILE, or asked twice), judged for strength (`strict`: refused when
/// weak).
fn new_passphrase(file: Option<&Path>, strict: bool) -> Result<tutela::crypto::secret::Passphrase> {
    let p = match file {
        Some(f) => passphrase::from_file(f, "new passphrase"),
        None => passphrase::new(&Source::default()),
    }?;
    passphrase::check_strength(&p, strict)?;
    Ok(p)
}

pub fn passwd(
    vault: &Path,
    pass: &PassArgs,
    recovery: Option<&Path>,
    label: Option<&str>,
    new_file: Option<&Path>,
    strict: bool,
) -> Result<()> {
    let mut v = match recovery {
        Some(f) => {
            Vault::read_config(vault)?;
            let text = passphrase::recovery_key(Some(f))?;
            tutela::offline::open_vault(
                vault,
                &Unlock::RecoveryKey(text.to_string()),
                pass.keystore.as_deref(),
            )?
        }
        None => unlock(vault, pass)?,
    };
    let p = new_passphrase(new_file, strict)?;
    let label = v.change_passphrase(label, &p)?;
    offline_record(&v, "passwd", Some(format!("key '{label}'")));
    println!("passphrase '{label}' changed");
    Ok(())
}

pub fn key(cmd: KeyCmd) -> Result<()> {
    match cmd {
        KeyCmd::Add {
            vault,
            label,
            pass,
            new_passfile,
            strict,
        } => {
            let mut v = unlock(&vault, &pass)?;
            let p = new_passphrase(new_passfile.as_deref(), strict)?;
            v.add_slot(&label, &p)?;
            offline_record(&v, "key-add", Some(format!("key '{label}'")));
            println!(
                "passphrase '{label}' added ({} in all)",
                v.config.slots.len()
            );
            Ok(())
        }
        KeyCmd::List { vault, pass, json } => {
            let v = unlock(&vault, &pass)?;
            let labels = v.slot_labels();
            if json {
                println!("{}", serde_json::json!({ "keys": labels }));
            } else {
                for l in labels {
                    println!("{}", escape(&l));
                }
            }
            Ok(())
        }
        KeyCmd::Remove { vault, label, pass } => {
            let mut v = unlock(&vault, &pass)?;
            v.remove_slot(&label)?;
            offline_record(&v, "key-remove", Some(format!("key '{label}'")));
            println!("passphrase '{label}' removed (an old copy of the config still opens with it: see README)");
            Ok(())
        }
    }
}

pub fn client(cmd: ClientCmd) -> Result<()> {
    match cmd {
        ClientCmd::Add {
            vault,
            name,
            path,
            pass,
        } => {
            let mut v = unlock(&vault, &pass)?;
            if let Some(d) = live_daemon(&v)? {
                let req = tutela::daemon::control::Request::ClientAdd {
                    name: name.clone(),
                    path: path.clone(),
                };
                return remote(d, &v, &req, false);
            }
            let bar = indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::stderr(),
            );
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} re-encrypting: {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            let res = tutela::offline::clients::add(&mut v, &name, &path, &mut |s| {
                bar.set_message(format!("{} entries, {} MiB", s.entries, s.bytes >> 20));
                bar.tick();
            });
            bar.finish_and_clear();
            let added = res?;
            offline_record(&v, "client-add", Some(format!("client '{name}'")));
            if added.adopted {
                println!(
                    "client '{name}' added: the {} entries already in {path} ({} bytes) were re-encrypted under its own key",
                    added.stats.entries, added.stats.bytes
                );
            } else {
                println!(
                    "client '{name}' added: files created in {path} are encrypted under its own key"
                );
            }
            Ok(())
        }
        ClientCmd::Export {
            vault,
            name,
            output,
            pass,
            json,
        } => {
            let v = unlock(&vault, &pass)?;
            if let Some(d) = live_daemon(&v)? {
                // The daemon writes the export: it needs the path from here, whole.
                let output = std::path::absolute(&output).map_err(Error::Io)?;
                let req = tutela::daemon::control::Request::ClientExport {
                    name: name.clone(),
                    output,
                };
                return remote(d, &v, &req, json);
            }
            // The export is recorded in the audit log, which a live mount holds.
            let lock = tutela::audit::lock(&v.dir)?;
            let bar = indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::stderr(),
            );
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "exporting {bytes}/{total_bytes} [{bar:30}] {eta} left",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            let res = tutela::offline::export::export(
                &v,
                &name,
                &output,
                &|total| bar.set_length(total),
                &|done| bar.set_position(done),
            );
            bar.finish_and_clear();
            let rep = res?;
            drop(lock);
            offline_record(
                &v,
                "client-export",
                Some(format!(
                    "client '{name}': {} files, {} bytes",
                    rep.files, rep.bytes
                )),
            );
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "client": name, "output": output, "export": rep })
                );
            } else {
                println!(
                    "exported client '{name}' to {}: {} files, {} folders, {} symlinks, {} bytes; checksums in {}{}",
                    output.display(),
                    rep.files,
                    rep.dirs,
                    rep.symlinks,
                    rep.bytes,
                    tutela::offline::export::MANIFEST,
                    if rep.skipped > 0 {
                        format!(" ({} special files such as FIFOs left out)", rep.skipped)
                    } else {
                        String::new()
                    }
                );
            }
            Ok(())
        }
        ClientCmd::Shred {
            vault,
            name,
            yes,
            pass,
        } => {
            let mut v = unlock(&vault, &pass)?;
            if !v.zones.iter().skip(1).any(|z| z.name == name) {
                return Err(Error::Usage(format!(
                    "no client named '{name}' (see tutela client list)"
                )));
            }
            if !yes {
                confirm(
                    "shred destroys the client's files for good: confirm on a terminal, or pass --yes",
                    &format!("This destroys client '{name}' and every file in its folder, with no undo."),
                    &name,
                )?;
            }
            if let Some(d) = live_daemon(&v)? {
                let req = tutela::daemon::control::Request::ClientShred { name: name.clone() };
                return remote(d, &v, &req, false);
            }
            let bar = indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::stderr(),
            );
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} shredding client '{msg}'")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.set_message(name.clone());
            bar.enable_steady_tick(Duration::from_millis(120));
            let res = tutela::offline::clients::shred(&mut v, &name);
            bar.finish_and_clear();
            let s = res?;
            offline_record(
                &v,
                "client-shred",
                Some(format!(
                    "client '{name}' at {}: key destroyed, {} files ({} bytes) deleted",
                    s.path, s.files, s.bytes
                )),
            );
            println!(
                "client '{name}' shredded: its key is destroyed and its {} files are deleted.",
                s.files
            );
            if v.keystore.is_none() {
                println!("note: this vault keeps its keys in its config, so a backup of the vault taken before now still holds the key (see README, Client rights).");
            }
            Ok(())
        }
        ClientCmd::List { vault, pass, json } => {
            let v = unlock(&vault, &pass)?;
            let list = tutela::offline::clients::list(&v)?;
            if json {
                println!("{}", serde_json::json!({ "clients": list }));
            } else {
                for c in list {
                    println!(
                        "{}\t{}\t{} files\t{} bytes",
                        escape(&c.name),
                        escape(&c.path),
                        c.files,
                        c.bytes
                    );
                }
            }
            Ok(())
        }
    }
}

#[derive(serde::Serialize)]
struct MountStatus {
    vault: String,
    mountpoint: String,
    read_only: bool,
    policy: bool,
    clients: Option<usize>,
    idle_s: Option<u64>,
    pid: Option<u32>,
    uptime_s: Option<u64>,
}

pub fn status(json: bool) -> Result<()> {
    // Without the daemons' reports the mounts are still listed, with fewer details; say why.
    let daemons = tutela::daemon::status::live_or_why().unwrap_or_else(|why| {
        eprintln!("tutela: no mount details ({why})");
        Vec::new()
    });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut out = Vec::new();
    for m in tutela::daemon::mount::mounts()
        .into_iter()
        .filter(|m| m.is_tutela())
    {
        let vault = m.source.trim_start_matches("tutela:").to_string();
        let mountpoint = m.mountpoint.display().to_string();
        let d = daemons.iter().find(|d| d.mountpoint == mountpoint);
        out.push(MountStatus {
            read_only: m.options.split(',').any(|o| o == "ro"),
            // The daemon's own report when it can be read; the policy file's presence else.
            policy: d
                .map(|d| d.policy)
                .unwrap_or_else(|| Path::new(&vault).join(store::FILE_NAME).exists()),
            clients: d.map(|d| d.clients),
            idle_s: d.and_then(|d| d.idle_s),
            pid: d.map(|d| d.pid),
            uptime_s: d.map(|d| now.saturating_sub(d.started_unix)),
            vault,
            mountpoint,
        });
    }
    if json {
        println!("{}", serde_json::json!({ "mounts": out }));
    } else if out.is_empty() {
        println!("no tutela mounts");
    } else {
        for s in out {
            let mut extra = Vec::new();
            extra.push(
                if s.read_only {
                    "read-only"
                } else {
                    "read-write"
                }
                .to_string(),
            );
            if s.policy {
                extra.push("access policy".into());
            }
            if let Some(c) = s.clients {
                extra.push(format!("{c} clients"));
            }
            if let Some(i) = s.idle_s {
                extra.push(format!(
                    "unmounts after {} idle",
                    humantime::format_duration(Duration::from_secs(i))
                ));
            }
            if let Some(u) = s.uptime_s {
                extra.push(format!(
                    "up {}",
                    humantime::format_duration(Duration::from_secs(u))
                ));
            }
            if let Some(p) = s.pid {
                extra.push(format!("pid {p}"));
            }
            println!("{} on {} ({})", s.vault, s.mountpoint, extra.join(", "));
        }
    }
    Ok(())
}

/// Asks on the terminal for `answer` (typed back) before something that cannot be undone;
/// without a terminal, refuses with `refusal` (scripts pass --yes instead).
pub fn confirm(refusal: &str, prompt: &str, answer: &str) -> Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(refusal.into()));
    }
    eprint!("{prompt}\nType '{answer}' to confirm: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if line.trim() != answer {
        return Err(Error::Usage("not confirmed: nothing was changed".into()));
    }
    Ok(())
}

pub fn rekey(
    vault: &Path,
    pass: &PassArgs,
    client: Option<&str>,
    all: bool,
    resume: bool,
    yes: bool,
) -> Result<()> {
    use tutela::offline::rekey::Scope;
    Vault::read_config(vault)?;
    let src = Source {
        passfile: pass.passfile.clone(),
        extpass: pass.extpass.clone(),
    };
    let p = passphrase::existing(&src)?;
    let p2 = tutela::crypto::secret::Passphrase::new(p.as_bytes().to_vec());
    let mut v =
        tutela::offline::open_vault(vault, &Unlock::Passphrase(p), pass.keystore.as_deref())?;
    let label = v
        .unlocked_slot
        .and_then(|i| v.slot_labels().get(i).cloned())
        .unwrap_or_else(|| "default".into());
    if all && client.is_none() && !yes {
        let others: Vec<String> = v
            .slot_labels()
            .into_iter()
            .filter(|l| *l != label)
            .map(|l| format!("'{}'", escape(&l)))
            .collect();
        let removed = if others.is_empty() {
            "No other passphrase exists.".to_string()
        } else {
            format!("The passphrases {} will be removed.", others.join(", "))
        };
        confirm(
            "rekey --all asks first (it removes every other passphrase and makes earlier audit \
             anchors stop matching): run it on a terminal, or add --yes; nothing was changed",
            &format!(
                "rekey --all gives {} a new master key and every client a new key. {removed} \
                 Audit anchors taken before now will no longer match, and a new recovery key is \
                 printed.",
                vault.display()
            ),
            "rekey",
        )?;
    }
    if let Some(d) = live_daemon(&v)? {
        let req = match (client, all) {
            (Some(c), _) => tutela::daemon::control::Request::Rekey {
                client: c.to_string(),
            },
            (None, true) => {
                // The new master key and its key slot (for this passphrase) are made here,
                // where the passphrase is; the daemon gets the key sealed under the current
                // control key, and does the rest while the mount serves.
                let control = v.control_key();
                let dropped: Vec<String> = v
                    .slot_labels()
                    .into_iter()
                    .filter(|l| *l != label)
                    .collect();
                let rk = v.rotate_master(&label, &p2)?;
                let req = tutela::daemon::control::Request::RekeyAll {
                    master: tutela::daemon::control::seal_master(&control, v.master())?,
                    slot: tutela::daemon::control::WireSlot::from_slot(&v.config.slots[0]),
                };
                remote_with(d, &control, &req, false)?;
                print_new_master(&rk, &dropped);
                return Ok(());
            }
            _ => tutela::daemon::control::Request::RekeyResume,
        };
        return remote(d, &v, &req, false);
    }
    let scope = match (client, all, resume) {
        (Some(c), _, _) => Scope::Client(c),
        (None, true, _) => Scope::All {
            label: &label,
            pass: &p2,
        },
        _ => Scope::Resume,
    };
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} re-encrypting: {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let res = tutela::offline::rekey::run(&mut v, scope, &mut |s| {
        bar.set_message(format!("{} entries, {} MiB", s.entries, s.bytes >> 20));
        bar.tick();
    });
    bar.finish_and_clear();
    let out = res?;
    let zones = if out.zones.is_empty() {
        "nothing".to_string()
    } else {
        out.zones.join(", ")
    };
    offline_record(
        &v,
        "rekey",
        Some(format!(
            "{}{}: {} entries, {} bytes re-encrypted; old keys destroyed",
            if all { "all keys, " } else { "" },
            zones,
            out.stats.entries,
            out.stats.bytes
        )),
    );
    if out.resumed {
        println!("finished the rekey that was interrupted earlier");
    }
    println!(
        "rekeyed {zones}: {} entries ({} bytes) re-encrypted; the old keys are destroyed",
        out.stats.entries, out.stats.bytes
    );
    if let Some(rk) = &out.recovery_key {
        print_new_master(rk, &out.dropped_slots);
    }
    Ok(())
}

/// What a user must know after a new master key: the new recovery key (shown once), the
/// passphrases that went, and that old audit anchors no longer match.
fn print_new_master(rk: &str, dropped_slots: &[String]) {
    println!();
    println!("New master key. The old recovery key and every old copy of the config no longer open current data.");
    if !dropped_slots.is_empty() {
        println!(
                "Passphrases removed (they wrapped the old key; add them again with tutela key add): {}",
                dropped_slots.join(", ")
            );
    }
    println!();
    println!("New recovery key:");
    println!();
    println!("    {}", rk);
    println!();
    println!("Write it down and store it offline; it is shown only this once.");
    println!();
    // The log was re-sealed under the new master key: old anchors name old MACs.
    println!("The audit log was re-sealed under the new key and numbered afresh: audit anchors taken before now no longer match. Take a new one with tutela audit verify.");
}
