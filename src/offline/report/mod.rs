//! `tutela audit report`: the breach-scope report. One pass over the verified log (records
//! stream through `audit::read_all`; only counters, hourly buckets and, for the annex, the
//! distinct paths are kept) gives what a practice tells a regulator (GDPR Art. 33(3)) and an
//! auditor asks for: how the log was verified, per client who read, created, changed,
//! deleted, exported and was refused what, a timeline, the unusual accesses, the events that
//! changed exposure, and what the encryption means for the notification. Rendered as one
//! self-contained HTML file (inline SVG, no scripts), Markdown or JSON (`render.rs`), signed
//! with the vault's report key (`signed.rs`).

mod flags;
pub mod render;
pub mod review;
pub mod signed;

use crate::audit::{self, Record};
use crate::error::Result;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// What the report covers.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Clients by name; empty: every client (and what lies outside them).
    pub clients: Vec<String>,
    /// Users by uid; empty: everyone.
    pub users: Vec<u32>,
    pub since_ms: Option<u64>,
    pub until_ms: Option<u64>,
    /// Whether the annex of plaintext paths is included (`--no-paths` leaves it out).
    pub paths: bool,
}

/// A client zone: its name and folder (from the zone table).
#[derive(Debug, Clone)]
pub struct Zone {
    pub name: String,
    pub path: String,
}

/// The name under which accesses outside every client folder are counted.
pub const NO_CLIENT: &str = "(outside client folders)";

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub read: u64,
    pub created: u64,
    pub changed: u64,
    pub deleted: u64,
    pub exported: u64,
    pub refused: u64,
    pub listed: u64,
}

impl Counts {
    fn add(&mut self, k: Kind, n: u64) {
        *self.slot(k) += n;
    }
    fn slot(&mut self, k: Kind) -> &mut u64 {
        match k {
            Kind::Read => &mut self.read,
            Kind::Created => &mut self.created,
            Kind::Changed => &mut self.changed,
            Kind::Deleted => &mut self.deleted,
            Kind::Exported => &mut self.exported,
            Kind::Refused => &mut self.refused,
            Kind::Listed => &mut self.listed,
        }
    }
    pub fn total(&self) -> u64 {
        self.read
            + self.created
            + self.changed
            + self.deleted
            + self.exported
            + self.refused
            + self.listed
    }
}

/// What a record did to a client's files, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Read,
    Created,
    Changed,
    Deleted,
    Exported,
    Refused,
    Listed,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Read,
        Kind::Created,
        Kind::Changed,
        Kind::Deleted,
        Kind::Exported,
        Kind::Refused,
        Kind::Listed,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Kind::Read => "read",
            Kind::Created => "created",
            Kind::Changed => "changed",
            Kind::Deleted => "deleted",
            Kind::Exported => "exported",
            Kind::Refused => "refused",
            Kind::Listed => "listed",
        }
    }
}

/// The kind of a file access record; None for records that are not one (mounts, key
/// changes: those are events).
pub fn kind_of(r: &Record) -> Option<Kind> {
    if r.result == "denied" {
        return Some(Kind::Refused);
    }
    if r.result != "ok" {
        return None;
    }
    let d = r.detail.as_deref().unwrap_or("");
    Some(match r.op.as_str() {
        "open" if d.contains('w') => Kind::Changed,
        "open" => Kind::Read,
        "create" | "mkdir" | "symlink" | "link" | "mknod" => Kind::Created,
        "rename" | "setattr" | "setxattr" | "removexattr" => Kind::Changed,
        "unlink" | "rmdir" => Kind::Deleted,
        "client-export" => Kind::Exported,
        "list" => Kind::Listed,
        _ => return None,
    })
}

/// How many events a record stands for: repeated refusals are coalesced into one record
/// ("refused N more times in S s", fs/refusals.rs); every other record is one.
pub fn weight(r: &Record) -> u64 {
    if r.result != "denied" {
        return 1;
    }
    r.detail
        .as_deref()
        .and_then(|d| d.strip_prefix("refused "))
        .and_then(|d| d.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(1)
}

/// Ops that change who or what can read the files: the report lists each.
pub const EXPOSURE_OPS: &[&str] = &[
    "mount",
    "unmount",
    "policy-set",
    "policy-clear",
    "policy-change",
    "rekey",
    "rekey-all",
    "client-add",
    "client-shred",
    "client-export",
    "client-lock",
    "client-unlock",
    "key-add",
    "key-remove",
    "passwd",
    "audit-prune",
    "config-merge",
];

#[derive(Debug, Clone, Serialize)]
pub struct UserCounts {
    pub user: String,
    pub uid: u32,
    pub counts: Counts,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClientReport {
    pub name: String,
    pub path: String,
    /// Records of each kind.
    pub accesses: Counts,
    /// Distinct files (paths) of each kind.
    pub files: Counts,
    pub users: Vec<UserCounts>,
    /// Programs and how many records each made.
    pub programs: Vec<(String, u64)>,
    pub first_ms: Option<u64>,
    pub last_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChainInfo {
    pub label: String,
    pub records: u64,
    pub first_seq: u64,
    pub next_seq: u64,
    pub head: Option<String>,
    pub pruned: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub ok: bool,
    /// The first problem `verify` would name (records after it are not in the report).
    pub problem: Option<String>,
    pub records: u64,
    pub segments: u64,
    pub chains: Vec<ChainInfo>,
    pub torn_tail: bool,
    /// Records dated in the future, or earlier than the one before them in their chain.
    pub clock_notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bucket {
    pub start_ms: u64,
    pub accesses: u64,
    pub refusals: u64,
    pub by_user: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub time_ms: u64,
    pub op: String,
    pub user: String,
    pub uid: u32,
    pub result: String,
    pub detail: Option<String>,
    pub client: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Flag {
    pub kind: String,
    pub time_ms: u64,
    pub user: String,
    pub client: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub format: u32,
    pub vault_id: String,
    pub made_ms: u64,
    pub made_by: String,
    pub since_ms: Option<u64>,
    pub until_ms: Option<u64>,
    pub first_record_ms: Option<u64>,
    pub last_record_ms: Option<u64>,
    pub scope_clients: Vec<String>,
    pub scope_users: Vec<String>,
    pub verification: Verification,
    pub totals: Counts,
    pub clients: Vec<ClientReport>,
    /// Bucket width: an hour, or a day for windows over 14 days.
    pub bucket_ms: u64,
    pub timeline: Vec<Bucket>,
    pub flags: Vec<Flag>,
    pub events: Vec<Event>,
    /// Periods the vault was mounted (unlocked), from its mount and unmount records.
    pub mounted: Vec<(u64, Option<u64>, String)>,
    /// Client -> path -> records; None with `--no-paths`.
    pub paths: Option<BTreeMap<String, BTreeMap<String, u64>>>,
    pub statement: Vec<String>,
}

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

#[derive(Default)]
struct ClientAcc {
    accesses: Counts,
    files: HashMap<Kind, BTreeSet<String>>,
    users: BTreeMap<u32, (String, Counts)>,
    programs: HashMap<String, u64>,
    first_ms: Option<u64>,
    last_ms: Option<u64>,
}

/// The client a path belongs to: the longest zone folder it is in.
fn client_of<'a>(zones: &'a [Zone], path: &str) -> Option<&'a Zone> {
    zones
        .iter()
        .filter(|z| {
            path == z.path
                || (path.starts_with(&z.path) && path.as_bytes().get(z.path.len()) == Some(&b'/'))
        })
        .max_by_key(|z| z.path.len())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Builds the report from the log of the vault in `dir`. `progress` is called with the count
/// of records read, every 10,000.
pub fn build(
    dir: &Path,
    keys: &audit::Keys,
    zones: &[Zone],
    scope: &Scope,
    made_by: &str,
    progress: &mut dyn FnMut(u64),
) -> Result<Report> {
    let in_scope_client =
        |name: &str| scope.clients.is_empty() || scope.clients.iter().any(|c| c == name);
    let mut acc: BTreeMap<String, ClientAcc> = BTreeMap::new();
    let mut totals = Counts::default();
    let mut buckets: BTreeMap<u64, Bucket> = BTreeMap::new();
    let mut events = Vec::new();
    let mut paths: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut flagger = flags::Flagger::default();
    let mut clock_notes = Vec::new();
    let mut last_time: HashMap<String, u64> = HashMap::new();
    let mut mounted: Vec<(u64, Option<u64>, String)> = Vec::new();
    let mut open_mount: HashMap<String, usize> = HashMap::new();
    let (mut first, mut last) = (None::<u64>, None::<u64>);
    let mut seen = 0u64;
    let window = (scope.since_ms, scope.until_ms);
    // Bucket width from the window (or, without one, decided after: hours, merged later).
    let span = match window {
        (Some(s), Some(u)) => u.saturating_sub(s),
        (Some(s), None) => now_ms().saturating_sub(s),
        _ => 0,
    };
    let mut bucket_ms = if span > 14 * DAY_MS { DAY_MS } else { HOUR_MS };
    let now = now_ms();
    let rep = audit::read_all(dir, keys, |r| {
        seen += 1;
        if seen.is_multiple_of(10_000) {
            progress(seen);
        }
        let chain = r.replica.clone().unwrap_or_default();
        // Clock notes: a record from the future, or earlier than its chain's last by over a
        // minute (a clock set back).
        if r.time_ms > now + 60_000 && clock_notes.len() < 20 {
            clock_notes.push(format!(
                "a record of {} is dated {} ms in the future",
                r.op,
                r.time_ms - now
            ));
        }
        if let Some(prev) = last_time.insert(chain.clone(), r.time_ms) {
            if r.time_ms + 60_000 < prev && clock_notes.len() < 20 {
                clock_notes.push(format!(
                    "the clock went back {} s between two records of one chain (at {})",
                    (prev - r.time_ms) / 1000,
                    audit::prune::stamp(r.time_ms)
                ));
            }
        }
        // Mounted periods (whole log: a mount before the window may still be open in it).
        if r.op == "mount" && r.result == "ok" {
            open_mount.insert(chain.clone(), mounted.len());
            mounted.push((r.time_ms, None, r.detail.clone().unwrap_or_default()));
        } else if r.op == "unmount" {
            if let Some(i) = open_mount.remove(&chain) {
                mounted[i].1 = Some(r.time_ms);
            }
        }
        if window.0.is_some_and(|s| r.time_ms < s) || window.1.is_some_and(|u| r.time_ms > u) {
            return;
        }
        if !scope.users.is_empty() && !scope.users.contains(&r.uid) {
            return;
        }
        let zone = r
            .client
            .as_deref()
            .map(|c| c.to_string())
            .or_else(|| named_client(&r))
            .or_else(|| client_of(zones, &r.path).map(|z| z.name.clone()));
        if EXPOSURE_OPS.contains(&r.op.as_str())
            && (scope.clients.is_empty() || zone.as_deref().is_none_or(in_scope_client))
        {
            events.push(Event {
                time_ms: r.time_ms,
                op: r.op.clone(),
                user: r.user.clone(),
                uid: r.uid,
                result: r.result.clone(),
                detail: r.detail.clone(),
                client: zone.clone(),
            });
        }
        let Some(kind) = kind_of(&r) else {
            return;
        };
        let name = zone.unwrap_or_else(|| NO_CLIENT.to_string());
        if !in_scope_client(&name) {
            return;
        }
        first = Some(first.map_or(r.time_ms, |f| f.min(r.time_ms)));
        last = Some(last.map_or(r.time_ms, |l| l.max(r.time_ms)));
        let n = weight(&r);
        totals.add(kind, n);
        let a = acc.entry(name.clone()).or_default();
        a.accesses.add(kind, n);
        a.files.entry(kind).or_default().insert(r.path.clone());
        a.users
            .entry(r.uid)
            .or_insert_with(|| (r.user.clone(), Counts::default()))
            .1
            .add(kind, n);
        *a.programs.entry(r.program.clone()).or_default() += n;
        a.first_ms = Some(a.first_ms.map_or(r.time_ms, |f| f.min(r.time_ms)));
        a.last_ms = Some(a.last_ms.map_or(r.time_ms, |l| l.max(r.time_ms)));
        let b = buckets
            .entry(r.time_ms / HOUR_MS * HOUR_MS)
            .or_insert_with(|| Bucket {
                start_ms: r.time_ms / HOUR_MS * HOUR_MS,
                accesses: 0,
                refusals: 0,
                by_user: BTreeMap::new(),
            });
        if kind == Kind::Refused {
            b.refusals += n;
        } else {
            b.accesses += n;
        }
        *b.by_user.entry(user_label(&r)).or_default() += n;
        flagger.see(&r, kind, &name, n);
        if scope.paths {
            *paths
                .entry(name)
                .or_default()
                .entry(r.path.clone())
                .or_default() += n;
        }
    })?;
    progress(seen);
    // Without a window the span is the records' own.
    if span == 0 {
        if let (Some(f), Some(l)) = (first, last) {
            if l - f > 14 * DAY_MS {
                bucket_ms = DAY_MS;
            }
        }
    }
    let timeline = regroup(buckets, bucket_ms);
    let clients: Vec<ClientReport> = acc
        .into_iter()
        .map(|(name, a)| {
            let mut files = Counts::default();
            for (k, set) in &a.files {
                *files.slot(*k) = set.len() as u64;
            }
            let mut programs: Vec<(String, u64)> = a.programs.into_iter().collect();
            programs.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
            ClientReport {
                path: zones
                    .iter()
                    .find(|z| z.name == name)
                    .map(|z| z.path.clone())
                    .unwrap_or_default(),
                name,
                accesses: a.accesses,
                files,
                users: a
                    .users
                    .into_iter()
                    .map(|(uid, (user, counts))| UserCounts { user, uid, counts })
                    .collect(),
                programs,
                first_ms: a.first_ms,
                last_ms: a.last_ms,
            }
        })
        .collect();
    let verification = Verification {
        ok: rep.bad.is_none(),
        problem: rep.bad.clone(),
        records: rep.records(),
        segments: rep.segments(),
        chains: rep
            .chains
            .iter()
            .map(|c| ChainInfo {
                label: c.chain.label(),
                records: c.report.records,
                first_seq: c.report.first_seq,
                next_seq: c.report.next_seq,
                head: c.report.head.as_ref().map(|h| h.to_string()),
                pruned: c.report.pruned.as_ref().map(|p| {
                    format!(
                        "records before {} pruned on {}",
                        audit::prune::stamp(p.cutoff_ms),
                        audit::prune::stamp(p.pruned_at_ms)
                    )
                }),
            })
            .collect(),
        torn_tail: rep.torn_tail(),
        clock_notes,
    };
    let flags = flagger.finish(&events);
    let mut report = Report {
        format: 1,
        vault_id: keys.vault_id.iter().map(|b| format!("{b:02x}")).collect(),
        made_ms: now,
        made_by: made_by.to_string(),
        since_ms: scope.since_ms,
        until_ms: scope.until_ms,
        first_record_ms: first,
        last_record_ms: last,
        scope_clients: scope.clients.clone(),
        scope_users: Vec::new(),
        verification,
        totals,
        clients,
        bucket_ms,
        timeline,
        flags,
        events,
        mounted,
        paths: scope.paths.then_some(paths),
        statement: Vec::new(),
    };
    report.statement = statement(&report);
    Ok(report)
}

/// The client a command's record names in its detail ("client 'acme': ..."), for records of
/// client commands made offline, which carry the vault root as their path.
pub fn named_client(r: &Record) -> Option<String> {
    if !r.op.starts_with("client-") && r.op != "rekey" {
        return None;
    }
    let d = r.detail.as_deref()?;
    let rest = d.split("client '").nth(1)?;
    rest.rfind('\'')
        .map(|i| rest[..i].to_string())
        .filter(|n| !n.is_empty())
}

fn user_label(r: &Record) -> String {
    if r.user.is_empty() {
        format!("uid {}", r.uid)
    } else {
        r.user.clone()
    }
}

/// Hour buckets merged into `width` buckets.
fn regroup(hours: BTreeMap<u64, Bucket>, width: u64) -> Vec<Bucket> {
    let mut out: BTreeMap<u64, Bucket> = BTreeMap::new();
    for (_, h) in hours {
        let start = h.start_ms / width * width;
        let b = out.entry(start).or_insert_with(|| Bucket {
            start_ms: start,
            accesses: 0,
            refusals: 0,
            by_user: BTreeMap::new(),
        });
        b.accesses += h.accesses;
        b.refusals += h.refusals;
        for (u, n) in h.by_user {
            *b.by_user.entry(u).or_default() += n;
        }
    }
    out.into_values().collect()
}

/// What the encryption means for a notification, from the log's facts (not legal advice).
fn statement(r: &Report) -> Vec<String> {
    let stamp = |t: u64| audit::prune::stamp(t);
    let mut s = vec![
        "tutela keeps every file, name and folder of the vault encrypted at rest (AES-256-GCM-SIV, one key per client); a copy of the vault's directory, a backup or a stolen disk exposes ciphertext only, unless the attacker also holds a key that opens the vault (a passphrase, a device key slot, the recovery key) or a copy of a client's key."
            .to_string(),
    ];
    let in_window = |t: u64| r.since_ms.is_none_or(|s| t >= s) && r.until_ms.is_none_or(|u| t <= u);
    let periods: Vec<String> = r
        .mounted
        .iter()
        .filter(|(start, end, _)| {
            // A period overlapping the window.
            r.until_ms.is_none_or(|u| *start <= u)
                && r.since_ms.is_none_or(|s| end.is_none_or(|e| e >= s))
        })
        .map(|(start, end, how)| {
            format!(
                "{} to {} ({})",
                stamp(*start),
                end.map_or_else(
                    || "no unmount recorded (still mounted, or the machine stopped)".into(),
                    stamp
                ),
                how
            )
        })
        .collect();
    if periods.is_empty() {
        s.push("The log records no mount of the vault in the window: during it, the vault's files were readable in plaintext only to someone who opened the vault's keys outside tutela's record (an offline command with a key is recorded too).".into());
    } else {
        s.push(format!(
            "Plaintext was served only while the vault was mounted (unlocked). The log records {} mounted period(s) overlapping the window: {}. Outside them, only ciphertext was exposed on this machine.",
            periods.len(),
            periods.join("; ")
        ));
    }
    let exports = r
        .events
        .iter()
        .filter(|e| e.op == "client-export" && in_window(e.time_ms))
        .count();
    if exports > 0 {
        s.push(format!("{exports} export(s) in the window wrote decrypted copies of client files outside the vault: those copies are not protected by tutela."));
    }
    if !r.verification.ok {
        s.push("The log did not verify: records after the problem named above are not counted, and the counts may be incomplete.".into());
    }
    s.push("This statement is drawn from the audit log's records; it is not legal advice.".into());
    s
}
