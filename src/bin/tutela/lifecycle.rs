//! `tutela client info|set|hold|release|due|expire|verify-certificate`, and the erasure
//! certificate `client shred` writes.

use crate::cli::PassArgs;
use crate::common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tutela::daemon::control::MetaChange;
use tutela::error::{Error, Result};
use tutela::format::zones::Hold;
use tutela::offline::lifecycle::{self as lc, Standing};
use tutela::offline::pending_cert::Draft;
use tutela::text::escape;
use tutela::vault::Vault;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn stamp(t: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(t)).to_string()
}

fn zone_index(v: &Vault, name: &str) -> Result<usize> {
    tutela::offline::clients::zone_index(v, name)
}

fn date_arg(flag: &str, s: &str) -> Result<u64> {
    lc::parse_date(s.trim())
        .ok_or_else(|| Error::Usage(format!("{flag} {}: not a date (use YYYY-MM-DD)", escape(s))))
}

fn me() -> (String, u32) {
    let uid = tutela::sys::getuid();
    (tutela::sys::user_name(uid).unwrap_or_default(), uid)
}

pub fn info(vault: &Path, pass: &PassArgs, name: &str, json: bool) -> Result<()> {
    let v = unlock(vault, pass)?;
    let z = &v.zones[zone_index(&v, name)?];
    let st = lc::standing(z, now_ms())?;
    if json {
        println!(
            "{}",
            serde_json::json!({"client": z.name, "path": z.path, "meta": z.meta, "retention": st})
        );
        return Ok(());
    }
    let m = &z.meta;
    let opt = |o: &Option<String>| {
        o.as_deref()
            .map_or("—".to_string(), |s| escape(s).into_owned())
    };
    let day = |o: Option<u64>| o.map_or("—".to_string(), lc::date);
    println!("client:      {} ({})", escape(&z.name), escape(&z.path));
    println!("reference:   {}", opt(&m.reference));
    println!("responsible: {}", opt(&m.responsible));
    println!("opened:      {}", day(m.opened_ms));
    println!("closed:      {}", day(m.closed_ms));
    println!("retain:      {}", opt(&m.retain));
    let state = match st.standing {
        Standing::Due => format!(
            "retention ended on {}: `client expire` shreds it",
            day(st.due_ms)
        ),
        Standing::Held => "under legal hold: never due".into(),
        Standing::Retained => format!("kept until {}", day(st.due_ms)),
        Standing::Open => "the matter is open: retention starts when it closes".into(),
        Standing::NoRule => "no retention rule".into(),
    };
    println!("retention:   {state}");
    match &m.hold {
        Some(h) => println!(
            "legal hold:  since {} by {}: {}",
            lc::date(h.since_ms),
            escape(&h.by),
            escape(&h.reason)
        ),
        None => println!("legal hold:  none"),
    }
    Ok(())
}

pub struct SetArgs {
    pub retain: Option<String>,
    pub reference: Option<String>,
    pub responsible: Option<String>,
    pub opened: Option<String>,
}

pub fn set(vault: &Path, pass: &PassArgs, name: &str, a: SetArgs) -> Result<()> {
    // Everything is checked before the vault is opened: a typo changes nothing.
    let retain = match a.retain.as_deref() {
        Some("none") => Some(None),
        Some(r) => {
            lc::parse_retain(r)?;
            Some(Some(r.trim().to_string()))
        }
        None => None,
    };
    let opened = a
        .opened
        .as_deref()
        .map(|d| date_arg("--opened", d))
        .transpose()?;
    for (flag, t) in [("--ref", &a.reference), ("--responsible", &a.responsible)] {
        if let Some(t) = t {
            if t.chars().any(char::is_control) || t.len() > 200 {
                return Err(Error::Usage(format!(
                    "{flag}: at most 200 characters, no control characters"
                )));
            }
        }
    }
    let mut v = unlock(vault, pass)?;
    let i = zone_index(&v, name)?;
    let before = v.zones[i].meta.clone();
    let m = &mut v.zones[i].meta;
    let mut changed = Vec::new();
    if let Some(r) = retain {
        changed.push(format!("retain {}", r.as_deref().unwrap_or("none")));
        m.retain = r;
    }
    if let Some(r) = a.reference {
        changed.push(format!("ref {r}"));
        m.reference = Some(r);
    }
    if let Some(r) = a.responsible {
        changed.push(format!("responsible {r}"));
        m.responsible = Some(r);
    }
    if let Some(t) = opened {
        changed.push(format!("opened {}", lc::date(t)));
        m.opened_ms = Some(t);
    }
    if changed.is_empty() {
        return Err(Error::Usage(
            "nothing to set: give --retain, --ref, --responsible or --opened".into(),
        ));
    }
    let detail = changed.join(", ");
    if save_meta(&mut v, i, before, MetaChange::Set, &detail)? {
        offline_record(&v, "client-set", Some(format!("client '{name}': {detail}")));
    }
    println!("client '{}': {}", escape(name), escape(&detail));
    Ok(())
}

/// Saves client `i`'s changed metadata: offline into the zone table, or, on a live mount,
/// through its daemon (which records the change in the audit log it holds, and refuses if
/// the metadata changed since `before` was read). True when the caller should write the
/// audit record (offline).
fn save_meta(
    v: &mut Vault,
    i: usize,
    before: tutela::format::zones::ClientMeta,
    change: MetaChange,
    detail: &str,
) -> Result<bool> {
    if let Some(d) = live_daemon(v)? {
        let req = tutela::daemon::control::Request::ClientMeta {
            name: v.zones[i].name.clone(),
            change,
            before: Box::new(before),
            after: Box::new(v.zones[i].meta.clone()),
            detail: detail.to_string(),
        };
        tutela::daemon::control::client::call(d, &v.control_key(), &req, &mut |_| {})?;
        return Ok(false);
    }
    v.save()?;
    Ok(true)
}

/// `client close` / `client reopen`: offline in the zone table, or through the live mount's
/// daemon, whose fence makes the folder read-only at once.
/// How `close` goes: a close date other than today, how long to wait for open files (on a
/// live mount), or a reopen.
pub struct CloseHow<'a> {
    pub date: Option<&'a str>,
    pub wait: Option<Duration>,
    pub reopen: bool,
}

pub fn close(
    vault: &Path,
    pass: &PassArgs,
    name: &str,
    reason: &str,
    how: CloseHow<'_>,
) -> Result<()> {
    let CloseHow { date, wait, reopen } = how;
    if reason.trim().is_empty() || reason.chars().any(char::is_control) {
        return Err(Error::Usage("--reason: say why, on one line".into()));
    }
    let at = date.map(|d| date_arg("--date", d)).transpose()?;
    if at.is_some_and(|t| t > now_ms()) {
        return Err(Error::Usage(
            "--date: a matter cannot close in the future".into(),
        ));
    }
    let mut v = unlock(vault, pass)?;
    let i = zone_index(&v, name)?;
    if live_daemon(&v)?.is_some() {
        let req = tutela::daemon::control::Request::ClientClose {
            name: name.to_string(),
            reopen,
            reason: reason.to_string(),
            closed_ms: at,
        };
        // With --wait, a close refused for open files is asked again every second until
        // they are closed or the time is up, saying who holds them when that changes.
        let deadline = wait.map(|w| std::time::Instant::now() + w);
        let mut said = String::new();
        loop {
            let d = live_daemon(&v)?.ok_or(Error::NotFound)?;
            match remote(d, &v, &req, false) {
                Err(Error::Daemon { code, msg: why })
                    if code == tutela::error::exit::BUSY
                        && why.contains("open file")
                        && deadline.is_some_and(|t| std::time::Instant::now() < t) =>
                {
                    if why != said {
                        eprintln!("tutela: waiting: {}", escape(&why));
                        said = why;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
                r => return r,
            }
        }
    }
    let closed = v.zones[i].meta.closed_ms.is_some();
    if closed != reopen {
        return Err(Error::Usage(format!(
            "client '{}' is {} already",
            escape(name),
            if closed { "closed" } else { "open" }
        )));
    }
    let before = tutela::policy::closed::of_zones(&v.zones);
    v.zones[i].meta.closed_ms = (!reopen).then(|| at.unwrap_or_else(now_ms));
    let after = tutela::policy::closed::of_zones(&v.zones);
    let (dir, key, vid) = (v.dir.clone(), v.policy_key(), v.config.vault_id);
    tutela::policy::closed::save_around(&dir, &key, &vid, (&before, &after), || v.save())?;
    let op = if reopen {
        "client-reopen"
    } else {
        "client-close"
    };
    offline_record(&v, op, Some(format!("client '{name}': {reason}")));
    println!(
        "client '{}' {}",
        escape(name),
        if reopen {
            "reopened: its folder is writable again"
        } else {
            "closed: its folder is read-only for all but admins on every mount; its retention runs from the close date"
        }
    );
    Ok(())
}

pub fn hold(vault: &Path, pass: &PassArgs, name: &str, reason: &str, on: bool) -> Result<()> {
    if reason.trim().is_empty() || reason.chars().any(char::is_control) {
        return Err(Error::Usage("--reason: say why, on one line".into()));
    }
    let mut v = unlock(vault, pass)?;
    let i = zone_index(&v, name)?;
    let (user, _) = me();
    let before = v.zones[i].meta.clone();
    let m = &mut v.zones[i].meta;
    match (on, &m.hold) {
        (true, Some(h)) => {
            return Err(Error::Usage(format!(
                "client '{}' is under legal hold already (since {}: {})",
                escape(name),
                lc::date(h.since_ms),
                escape(&h.reason)
            )))
        }
        (false, None) => {
            return Err(Error::Usage(format!(
                "client '{}' is not under legal hold",
                escape(name)
            )))
        }
        (true, None) => {
            m.hold = Some(Hold {
                reason: reason.to_string(),
                since_ms: now_ms(),
                by: user,
            })
        }
        (false, Some(_)) => m.hold = None,
    }
    let (op, change) = if on {
        ("client-hold", MetaChange::Hold)
    } else {
        ("client-release", MetaChange::Release)
    };
    if save_meta(&mut v, i, before, change, reason)? {
        offline_record(&v, op, Some(format!("client '{name}': {reason}")));
    }
    println!(
        "client '{}' {}",
        escape(name),
        if on {
            "is under legal hold: shred and expire are refused until it is released"
        } else {
            "is released from legal hold"
        }
    );
    Ok(())
}

pub fn due(vault: &Path, pass: &PassArgs, json: bool) -> Result<()> {
    let v = unlock(vault, pass)?;
    settle_drafts(&v);
    let list = lc::due(&v.zones, now_ms())?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "now_ms": now_ms(), "clients": list })
        );
        return Ok(());
    }
    for e in &list {
        let what = match e.standing {
            Standing::Due => format!(
                "DUE since {} ({})",
                e.due_ms.map(lc::date).unwrap_or_default(),
                escape(e.retain.as_deref().unwrap_or(""))
            ),
            Standing::Held => format!("legal hold: {}", escape(e.hold.as_deref().unwrap_or(""))),
            Standing::Retained => {
                format!("kept until {}", e.due_ms.map(lc::date).unwrap_or_default())
            }
            Standing::Open => "open matter".into(),
            Standing::NoRule => "no retention rule".into(),
        };
        println!("{:<24} {what}", escape(&e.client));
    }
    Ok(())
}

/// What may still hold a shredded client's key, for the certificate.
fn remains(v: &Vault, oldest_backup: Option<u64>) -> Vec<String> {
    let mut out = Vec::new();
    match &v.keystore {
        Some(k) => {
            out.push(format!(
                "Copies of the key store {} made before {} (a backup of it) still hold the key; backups of the vault directory alone do not.",
                k.path.display(),
                stamp(now_ms())
            ));
        }
        None => out.push(match oldest_backup {
            Some(t) => format!(
                "This vault keeps its keys in its config: backups of the vault directory taken before {} still hold the key, and with a vault passphrase or the recovery key open the client's files; the oldest such backup the practice named dates from {}.",
                stamp(now_ms()),
                lc::date(t)
            ),
            None => format!(
                "This vault keeps its keys in its config: every backup of the vault directory taken before {} still holds the key, and with a vault passphrase or the recovery key opens the client's files, until those backups are destroyed.",
                stamp(now_ms())
            ),
        }),
    }
    out.push("Decrypted copies made earlier (client exports, files copied out of a mount) are outside tutela's reach.".into());
    out
}

/// The draft of a certificate, taken from client `i`'s zone record before the record goes,
/// and written into the vault (`pending_cert`) before the key goes: a crash between the
/// erasure and the certificate does not lose the certificate.
pub fn draft(
    v: &Vault,
    i: usize,
    how: &str,
    to: Option<&Path>,
    oldest_backup: Option<u64>,
    live: bool,
) -> Result<Draft> {
    let z = &v.zones[i];
    let (files, bytes) = tutela::offline::clients::list(v)?
        .into_iter()
        .find(|c| c.name == z.name)
        .map_or((0, 0), |c| (c.files, c.bytes));
    let cwd = std::env::current_dir()?;
    let (by_user, by_uid) = me();
    let d = Draft {
        client: z.name.clone(),
        zone_id: z.id,
        folder: z.path.clone(),
        meta: z.meta.clone(),
        how: how.to_string(),
        files,
        bytes,
        to: to.map_or(cwd.clone(), |p| cwd.join(p)),
        oldest_backup,
        live,
        started_ms: now_ms(),
        by_user,
        by_uid,
        pid: std::process::id(),
    };
    tutela::offline::pending_cert::write(v, &d)?;
    Ok(d)
}

/// After an erasure that failed: its draft goes unless the key is gone after all (then the
/// draft is what writes its certificate). Returns `err`.
pub fn failed(v: &mut Vault, d: &Draft, err: Error) -> Error {
    if v.reload().is_ok() && v.zones.iter().any(|z| z.id == d.zone_id) {
        let _ = tutela::offline::pending_cert::remove(v, &d.zone_id);
    }
    err
}

/// Writes the certificates of erasures that finished without one (a crash, a lost
/// terminal), from their drafts; says so on stderr. Run by the client commands that open
/// the vault for its clients' life cycle.
pub fn settle_drafts(v: &Vault) {
    let (done, bad) = tutela::offline::pending_cert::finished(v);
    for why in bad {
        eprintln!("tutela: warning: an erasure's certificate draft cannot be read: {why}");
    }
    for d in done {
        let late = format!(
            "The erasure began {} and had finished when tutela next opened the vault; this certificate was written then, from what was recorded before the key was destroyed, because the process that erased the client stopped before writing it.",
            stamp(d.started_ms)
        );
        match certify(v, &d, Some(late)) {
            Ok(path) => {
                offline_record(
                    v,
                    "erasure-certificate",
                    Some(format!(
                        "client '{}': certificate of an interrupted erasure written to {}",
                        d.client,
                        path.display()
                    )),
                );
                eprintln!(
                    "tutela: client '{}' was erased by a command that stopped before writing its certificate; written now: {}",
                    escape(&d.client),
                    path.display()
                );
            }
            Err(e) => eprintln!(
                "tutela: warning: the certificate of client '{}''s erasure could not be written yet: {e}",
                escape(&d.client)
            ),
        }
    }
}

/// Writes the signed erasure certificate of an erasure done, from its draft (`late`: the
/// certificate is written after an interruption); removes the draft; returns its path.
pub fn certify(v: &Vault, d: &Draft, late: Option<String>) -> Result<PathBuf> {
    let now = now_ms();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    // The log's head right after the erasure's record: where the evidence is.
    let anchor = tutela::audit::read_all(&v.dir, &v.audit_keys(), |_| {})
        .ok()
        .and_then(|r| r.heads().last().map(|a| a.to_string()));
    let mut destroyed = vec![format!(
        "the client's zone key in the zone table sealed in {}",
        v.dir.join("tutela.conf").display()
    )];
    if let Some(k) = &v.keystore {
        destroyed.push(format!(
            "the client's zone key in the key store {} (its earlier generation dropped)",
            k.path.display()
        ));
    }
    if d.live {
        destroyed.push("the key in the memory of the mount daemon serving the vault".into());
    }
    destroyed.push("the client's encrypted files in the vault directory (deleted)".into());
    let c = lc::Certificate {
        format: 1,
        vault_id: hex(&v.config.vault_id),
        client: d.client.clone(),
        zone_id: hex(&d.zone_id),
        folder: d.folder.clone(),
        erased_ms: now,
        erased_at: stamp(now),
        by_user: d.by_user.clone(),
        by_uid: d.by_uid,
        how: d.how.clone(),
        reference: d.meta.reference.clone(),
        retain: d.meta.retain.clone(),
        closed_ms: d.meta.closed_ms,
        files: d.files,
        bytes: d.bytes,
        audit_anchor: anchor,
        destroyed,
        remains: remains(v, d.oldest_backup),
        started_ms: Some(d.started_ms),
        late: late.clone(),
    };
    let bytes = lc::sign_certificate(&c, &v.report_seed())?;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let create = |p: &Path| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(p)
    };
    // A named file was checked before the erasure; a default name takes the next free
    // number (a second client of that name erased the same day): the erasure is done, its
    // certificate must not be lost to a name clash.
    let mut to = d.to.as_path();
    if late.is_some() && !to.is_dir() && to.symlink_metadata().is_ok() {
        // The interrupted command may have created the named file: never written over, the
        // certificate takes the default name beside it.
        to = to.parent().unwrap_or(Path::new("."));
    }
    let (name, to) = (&d.client, Some(to));
    let (path, opened) = match to.filter(|p| !p.is_dir()) {
        Some(p) => (p.to_path_buf(), create(p)),
        None => {
            let dir = to.map_or_else(PathBuf::new, Path::to_path_buf);
            let mut n = 1;
            loop {
                let base = default_name(name, now);
                let file = if n == 1 {
                    base
                } else {
                    base.replace(".json", &format!("-{n}.json"))
                };
                let p = dir.join(file);
                match create(&p) {
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                    r => break (p, r),
                }
            }
        }
    };
    let mut f = opened.map_err(|e| {
        Error::Usage(format!(
            "the client is erased, but its certificate could not be written to {}: {e}",
            path.display()
        ))
    })?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    if let Err(e) = tutela::offline::pending_cert::remove(v, &d.zone_id) {
        eprintln!("tutela: warning: the erasure's draft stays in the vault: {e}");
    }
    Ok(path)
}

/// A client's name as a part of a file name safe on any file system.
fn safe_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `acme-erased-2026-12-07.json`.
fn default_name(name: &str, now: u64) -> String {
    format!("{}-erased-{}.json", safe_name(name), lc::date(now))
}

pub fn oldest_backup(s: Option<&str>) -> Result<Option<u64>> {
    s.map(|d| date_arg("--oldest-backup", d)).transpose()
}

pub fn verify_certificate(file: &Path, pubkey: Option<&str>) -> Result<()> {
    let bytes = tutela::sys::read_vault_file(file, 1 << 20, false)
        .map_err(|e| Error::Usage(format!("cannot read {}: {e}", file.display())))?;
    let (c, pk) = lc::verify_certificate(&bytes, pubkey)?;
    println!(
        "certificate ok: client '{}' erased {} by {} ({}), signed by {pk}",
        escape(&c.client),
        c.erased_at,
        escape(&c.by_user),
        c.how
    );
    if pubkey.is_none() {
        println!("note: compare that key with the vault's (tutela audit pubkey), or pass it with --pubkey");
    }
    Ok(())
}

pub struct ExpireArgs {
    pub dry_run: bool,
    pub yes: bool,
    pub certificates: Option<PathBuf>,
    pub oldest_backup: Option<String>,
    pub trust_clock: bool,
}

pub fn expire(vault: &Path, pass: &PassArgs, a: ExpireArgs) -> Result<()> {
    let oldest = oldest_backup(a.oldest_backup.as_deref())?;
    if let Some(d) = &a.certificates {
        if !d.is_dir() {
            return Err(Error::Usage(format!(
                "--certificates {}: not a directory",
                d.display()
            )));
        }
    }
    let mut v = unlock(vault, pass)?;
    settle_drafts(&v);
    let now = now_ms();
    let (due, rest): (Vec<lc::DueEntry>, Vec<lc::DueEntry>) = lc::due(&v.zones, now)?
        .into_iter()
        .partition(|e| e.standing == Standing::Due);
    let held: Vec<String> = rest
        .into_iter()
        .filter(|e| e.standing == Standing::Held)
        .map(|e| e.client)
        .collect();
    if !held.is_empty() {
        println!(
            "under legal hold (kept): {}",
            held.iter()
                .map(|h| escape(h).into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if due.is_empty() {
        println!("no client's retention has ended ({})", stamp(now));
        return Ok(());
    }
    let names: Vec<String> = due.iter().map(|e| escape(&e.client).into_owned()).collect();
    // A clock far off (set back before the log's newest record, or a year past it) would
    // destroy what must be kept: never act on it without a person saying so.
    let mut last = 0u64;
    let _ = tutela::audit::read_all(&v.dir, &v.audit_keys(), |r| last = last.max(r.time_ms));
    let clock_odd = last > 0 && (now + 60_000 < last || now > last + 366 * 86_400_000);
    if clock_odd && !a.trust_clock {
        let why = if now < last {
            format!(
                "the clock ({}) is before the audit log's newest record ({})",
                stamp(now),
                stamp(last)
            )
        } else {
            format!(
                "the clock ({}) is more than a year after the audit log's newest record ({})",
                stamp(now),
                stamp(last)
            )
        };
        if a.yes || a.dry_run {
            return Err(Error::Usage(format!(
                "{why}: nothing was shredded; check the clock, or add --trust-clock. Would shred: {}",
                names.join(", ")
            )));
        }
        confirm(
            &format!("{why}: confirm on a terminal (or add --trust-clock)"),
            &format!(
                "{why}. Clients that would be shredded: {}",
                names.join(", ")
            ),
            "shred",
        )?;
    }
    if a.dry_run {
        for e in &due {
            println!(
                "would shred '{}' (retention {} ended {})",
                escape(&e.client),
                escape(e.retain.as_deref().unwrap_or("")),
                e.due_ms.map(lc::date).unwrap_or_default()
            );
        }
        return Ok(());
    }
    if !a.yes {
        confirm(
            "expire shreds clients for good: confirm on a terminal, or pass --yes",
            &format!("This shreds, with no undo: {}", names.join(", ")),
            "expire",
        )?;
    }
    for e in due {
        let i = zone_index(&v, &e.client)?;
        let daemon = live_daemon(&v)?;
        let d = draft(
            &v,
            i,
            "expire",
            a.certificates.as_deref(),
            oldest,
            daemon.is_some(),
        )?;
        if let Some(daemon) = daemon {
            let req = tutela::daemon::control::Request::ClientShred {
                name: e.client.clone(),
            };
            if let Err(e) = remote(daemon, &v, &req, false) {
                return Err(failed(&mut v, &d, e));
            }
            v.reload()?;
        } else {
            let what = format!(
                "client '{}' at {}: retention ended ({})",
                e.client,
                d.folder,
                e.retain.as_deref().unwrap_or("")
            );
            offline_record_result(&v, "client-shred", "started", Some(what.clone()));
            let s = tutela::offline::clients::shred(&mut v, &e.client)
                .map_err(|err| failed(&mut v, &d, err))?;
            offline_record(
                &v,
                "client-shred",
                Some(format!(
                    "{what}: key destroyed, {} files ({} bytes) deleted",
                    s.files, s.bytes
                )),
            );
        }
        tutela::faults::point("expire-before-certificate");
        let cert = certify(&v, &d, None)?;
        println!(
            "client '{}' shredded (retention ended); certificate: {}",
            escape(&e.client),
            cert.display()
        );
    }
    Ok(())
}

pub struct ImportArgs {
    pub vault: PathBuf,
    pub name: String,
    pub src: PathBuf,
    pub path: Option<String>,
    pub resume: bool,
    pub manifest: Option<PathBuf>,
    pub pass: PassArgs,
    pub json: bool,
}

pub fn import(a: ImportArgs) -> Result<()> {
    let src = std::fs::canonicalize(&a.src)
        .ok()
        .filter(|p| p.is_dir())
        .ok_or_else(|| Error::Usage(format!("{}: not a folder to import", a.src.display())))?;
    let vault_dir = std::fs::canonicalize(&a.vault).unwrap_or_else(|_| a.vault.clone());
    if src.starts_with(&vault_dir) || vault_dir.starts_with(&src) {
        return Err(Error::Usage(
            "the source and the vault overlap: import from a folder outside the vault".into(),
        ));
    }
    let path = a
        .path
        .clone()
        .unwrap_or_else(|| format!("/clients/{}", a.name));
    let manifest = a
        .manifest
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}-import.sha256", safe_name(&a.name))));
    if manifest.symlink_metadata().is_ok() && !a.resume {
        return Err(Error::Usage(format!(
            "{} exists: choose another --manifest",
            manifest.display()
        )));
    }
    let mut v = unlock(&a.vault, &a.pass)?;
    let exists = v.zones.iter().skip(1).any(|z| z.name == a.name);
    match (exists, a.resume) {
        (true, false) => {
            return Err(Error::Usage(format!(
                "client '{}' exists: import makes a new client (or finish an interrupted import with --resume)",
                escape(&a.name)
            )))
        }
        (false, true) => {
            return Err(Error::Usage(format!(
                "client '{}' does not exist: nothing to resume",
                escape(&a.name)
            )))
        }
        _ => {}
    }
    let live = tutela::daemon::mount::mount_of(&v.dir);
    if !exists {
        if let Some(d) = live_daemon(&v)? {
            let req = tutela::daemon::control::Request::ClientAdd {
                name: a.name.clone(),
                path: path.clone(),
            };
            remote(d, &v, &req, false)?;
            v.reload()?;
        } else {
            tutela::offline::clients::add(&mut v, &a.name, &path, &mut |_| {})?;
            offline_record(&v, "client-add", Some(format!("client '{}'", a.name)));
        }
    }
    let path = v
        .zones
        .iter()
        .find(|z| z.name == a.name)
        .map(|z| z.path.clone())
        .ok_or(Error::NotFound)?;
    let total: u64 = walk_size(&src);
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} importing")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let rep = match &live {
        Some(m) => {
            let mut t = tutela::offline::import::MountTarget {
                dir: m.mountpoint.join(path.trim_start_matches('/')),
            };
            tutela::offline::import::import(&src, &mut t, a.resume, &mut |b| bar.set_position(b))
        }
        None => {
            let fs = tutela::fs::Fs::new(&v, tutela::fs::Options::default())?;
            let who = tutela::offline::clients::me();
            let top =
                tutela::offline::clients::resolve(&fs, &who, &path)?.ok_or(Error::NotFound)?;
            let mut t = tutela::offline::import::FsTarget { fs: &fs, who, top };
            tutela::offline::import::import(&src, &mut t, a.resume, &mut |b| bar.set_position(b))
        }
    };
    bar.finish_and_clear();
    let rep = rep?;
    let mut text = rep.manifest.join("\n");
    text.push('\n');
    std::fs::write(&manifest, text)?;
    offline_record(
        &v,
        "client-import",
        Some(format!(
            "client '{}': {} files, {} folders, {} links, {} bytes, {} not carried, {} changed while read, {} mismatched",
            a.name,
            rep.files + rep.already,
            rep.dirs,
            rep.symlinks,
            rep.bytes,
            rep.skipped.len(),
            rep.changed.len(),
            rep.mismatched.len()
        )),
    );
    if a.json {
        println!(
            "{}",
            serde_json::json!({"client": a.name, "path": path, "manifest": manifest, "import": rep})
        );
    } else {
        println!(
            "client '{}' imported into {}: {} files ({} bytes), {} folders, {} links{}; manifest {}",
            escape(&a.name),
            escape(&path),
            rep.files + rep.already,
            rep.bytes,
            rep.dirs,
            rep.symlinks,
            if rep.already > 0 {
                format!(" ({} already there from the interrupted import)", rep.already)
            } else {
                String::new()
            },
            manifest.display()
        );
        for (p, why) in &rep.skipped {
            println!("not carried: {p}: {why}");
        }
        for p in &rep.changed {
            println!(
                "changed while it was read (copied as read; import it again with --resume): {p}"
            );
        }
    }
    if !rep.mismatched.is_empty() {
        return Err(Error::Corrupt {
            what: "imported files that do not match the source's manifest",
        });
    }
    if rep.mismatched.is_empty() && !a.json {
        println!("every file was read back from the vault and matches the source's SHA-256");
    }
    Ok(())
}

/// The bytes of regular files under `dir` (for the progress bar).
fn walk_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if let Ok(m) = e.path().symlink_metadata() {
                if m.is_dir() {
                    stack.push(e.path());
                } else if m.is_file() {
                    total += m.len();
                }
            }
        }
    }
    total
}
