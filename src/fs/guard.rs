//! Policy enforcement and audit for the filesystem core. Every operation that reads or changes
//! a path asks `allow` first (refusals are audited there), and operations worth recording call
//! `record` with their result. Reads and writes on open handles were checked at open.

use super::op::Op;
use super::refusals::{Key, Refusals, Summary, Who};
use super::{lock, Fs, Ino, Subject};
use crate::audit::{Record, Sink};
use crate::error::{Error, Result};
use crate::policy::{Access, Creds, Policy};
use crate::sys;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Where a caller's supplementary groups come from. A mounted daemon reads them from /proc
/// (`ProcGroups`); tests inject a table, so every role can be played without root.
pub trait CredSource: Send + Sync {
    fn groups(&self, who: &Subject) -> Vec<u32>;
}

/// The groups of the task that made the request, from /proc (see `sys::caller_groups`).
pub struct ProcGroups;

impl CredSource for ProcGroups {
    fn groups(&self, who: &Subject) -> Vec<u32> {
        sys::caller_groups(who.pid, who.uid, who.gid)
    }
}

/// Where audit records go.
enum Trail {
    Log(Sink),
    /// Tests read back what the fence recorded.
    #[cfg(test)]
    Memory(Arc<Mutex<Vec<Record>>>),
}

pub struct Guard {
    policy: RwLock<Option<Arc<Policy>>>,
    audit: Option<Trail>,
    creds: Arc<dyn CredSource>,
    names: Mutex<HashMap<u32, String>>,
    refusals: Mutex<Refusals>,
}

impl Default for Guard {
    fn default() -> Guard {
        Guard::new(None, None)
    }
}

impl Guard {
    pub fn new(policy: Option<Policy>, audit: Option<Sink>) -> Guard {
        Guard {
            policy: RwLock::new(policy.map(Arc::new)),
            audit: audit.map(Trail::Log),
            creds: Arc::new(ProcGroups),
            names: Mutex::new(HashMap::new()),
            refusals: Mutex::new(Refusals::default()),
        }
    }

    /// The same guard reading callers' groups from `source`.
    pub fn with_creds(mut self, source: Arc<dyn CredSource>) -> Guard {
        self.creds = source;
        self
    }

    /// A guard whose records are kept in memory, for tests.
    #[cfg(test)]
    pub(crate) fn recording(policy: Option<Policy>) -> (Guard, Arc<Mutex<Vec<Record>>>) {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let mut g = Guard::new(policy, None);
        g.audit = Some(Trail::Memory(kept.clone()));
        (g, kept)
    }

    /// The caller of one request; its groups are read only if a group rule needs them, and
    /// only for this request (`Creds`).
    fn creds(&self, who: &Subject) -> Creds {
        let (source, who) = (self.creds.clone(), *who);
        Creds::lazy(who.uid, who.gid, Box::new(move || source.groups(&who)))
    }

    pub fn policy(&self) -> Option<Arc<Policy>> {
        self.policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_policy(&self, p: Option<Policy>) {
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = p.map(Arc::new);
    }

    fn user_name(&self, uid: u32) -> String {
        let mut names = lock(&self.names);
        names
            .entry(uid)
            .or_insert_with(|| sys::user_name(uid).unwrap_or_else(|| uid.to_string()))
            .clone()
    }

    /// Records one event (no-op without an audit log).
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        who: &Subject,
        op: &str,
        path: &str,
        path2: Option<&str>,
        client: Option<&str>,
        result: &str,
        detail: Option<String>,
    ) {
        if self.audit.is_none() {
            return;
        }
        let mut r = Record::by(op, path, who.uid, who.pid);
        r.user = self.user_name(who.uid);
        r.program = PROGRAMS.get(who);
        r.path2 = path2.map(str::to_string);
        r.client = client.map(str::to_string);
        r.result = result.to_string();
        r.detail = detail;
        self.write(r);
    }

    fn write(&self, r: Record) {
        match &self.audit {
            Some(Trail::Log(sink)) => sink.record(r),
            #[cfg(test)]
            Some(Trail::Memory(kept)) => lock(kept).push(r),
            None => {}
        }
    }

    /// Records a refusal: the first of its kind in a window exactly, repeats as one counted
    /// record (`refusals`).
    fn record_denied(&self, who: &Subject, op: &str, path: &str, client: Option<&str>) {
        if self.audit.is_none() {
            return;
        }
        let key = Key {
            uid: who.uid,
            op: op.to_string(),
            path: path.to_string(),
        };
        let program = PROGRAMS.get(who);
        let from = Who {
            pid: who.pid,
            program: &program,
            client,
        };
        let (exact, due) = lock(&self.refusals).note(key, from, Instant::now());
        self.record_summaries(due);
        if exact {
            self.record(who, op, path, None, client, "denied", None);
        }
    }

    /// One record per summary, named after the program of the last repeat (taken when it
    /// was refused: by the time the window ends that process is often gone).
    fn record_summaries(&self, due: Vec<Summary>) {
        for s in due {
            let mut r = Record::by(&s.key.op, &s.key.path, s.key.uid, s.pid);
            r.user = self.user_name(s.key.uid);
            r.program = s.program;
            r.client = s.client;
            r.result = "denied".into();
            r.detail = Some(format!(
                "refused {} more time{} in {} s",
                s.repeats,
                if s.repeats == 1 { "" } else { "s" },
                s.over.as_secs().max(1)
            ));
            self.write(r);
        }
    }

    /// Writes the counts of refusal windows that are over (all of them with `all`).
    pub fn flush_refusals(&self, all: bool) {
        if self.audit.is_none() {
            return;
        }
        let due = lock(&self.refusals).flush((!all).then(Instant::now));
        self.record_summaries(due);
    }

    pub fn close(&self) {
        self.flush_refusals(true);
        if let Some(Trail::Log(s)) = self.audit.as_ref() {
            s.close();
        }
    }

    /// Reopens a closed log with new keys (see `Sink::reopen`).
    pub fn reopen(&self, vault: &std::path::Path, keys: crate::audit::Keys) -> Result<()> {
        match self.audit.as_ref() {
            Some(Trail::Log(s)) => s.reopen(vault, keys),
            _ => Ok(()),
        }
    }
}

/// Program names for audit records, read from /proc at most once a second per task and
/// identity: a name is never given to a request of another user that reused the pid.
struct ProgramNames(Mutex<Option<HashMap<TaskIdentity, (Instant, String)>>>);

/// (pid, uid, gid) of a request.
type TaskIdentity = (u32, u32, u32);

impl ProgramNames {
    fn get(&self, who: &Subject) -> String {
        const FRESH: Duration = Duration::from_secs(1);
        let key = (who.pid, who.uid, who.gid);
        let now = Instant::now();
        let mut g = lock(&self.0);
        let map = g.get_or_insert_with(HashMap::new);
        if let Some((t, v)) = map.get(&key) {
            if now.duration_since(*t) < FRESH {
                return v.clone();
            }
        }
        if map.len() > 4096 {
            map.retain(|_, (t, _)| now.duration_since(*t) < FRESH);
        }
        let v = sys::process_name(who.pid);
        map.insert(key, (now, v.clone()));
        v
    }
}

static PROGRAMS: ProgramNames = ProgramNames(Mutex::new(None));

/// The errno name for an audit record.
pub fn result_name<T>(r: &Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(Error::PermissionDenied) => "denied".into(),
        Err(e) => match e.errno() {
            libc::ENOENT => "ENOENT".into(),
            libc::EEXIST => "EEXIST".into(),
            libc::EIO => "EIO".into(),
            libc::EXDEV => "EXDEV".into(),
            libc::ENOTEMPTY => "ENOTEMPTY".into(),
            libc::EPERM => "EPERM".into(),
            libc::EBUSY => "EBUSY".into(),
            // The client is locked on this mount (`tutela lock`).
            libc::ENOKEY => "ENOKEY".into(),
            n => format!("errno {n}"),
        },
    }
}

impl Fs {
    /// The policy in force (None: Unix modes alone decide).
    pub fn policy_in_force(&self) -> Option<Arc<Policy>> {
        self.guard.policy()
    }

    pub fn policy_active(&self) -> bool {
        self.guard.policy().is_some()
    }

    pub fn set_policy(&self, p: Option<Policy>) {
        self.guard.set_policy(p);
    }

    /// Names the kernel may have cached: after a policy change they are invalidated, so no
    /// walk rides on an entry cached under the old rules.
    pub fn known_names(&self) -> Vec<(u64, Vec<u8>)> {
        lock(&self.inodes).names()
    }

    pub fn known_dirs(&self) -> Vec<u64> {
        lock(&self.inodes).dirs()
    }

    /// Whether the kernel may cache directory `ino`'s listing for every user who opens it
    /// (each open still reaches the daemon and is checked). True unless a policy hides some
    /// of its entries from some users: a directory holding a client's top, or an ancestor of
    /// one. Inside a client's subtree every entry belongs to that client, and outside the
    /// clients every entry has the same rule as the directory itself, so whoever may open
    /// the directory may see the whole listing. Cached listings are dropped on every policy
    /// change.
    pub fn listing_cacheable(&self, ino: Ino) -> bool {
        let ino = ino.0;
        let Some(p) = self.guard.policy() else {
            return true;
        };
        match self.path_of(ino) {
            Ok(path) => !p.is_above_client(&path),
            Err(_) => false,
        }
    }

    /// Whether the kernel must ask again on every use of this entry (entry and attribute
    /// timeouts of zero). Kernel caches are shared by all users, so every place where the
    /// policy answers differently for different users must not be cached: a client's top
    /// directory and (with `default = "deny"`) everything outside the clients. Below a client's top directory caching is safe: every path walk passes
    /// through the top directory, which is looked up, and so checked, for each caller; opens,
    /// creates and changes always reach the daemon.
    pub fn must_revalidate(&self, ino: Ino) -> bool {
        let ino = ino.0;
        let Some(p) = self.guard.policy() else {
            return false;
        };
        let Ok(path) = self.path_of(ino) else {
            return true;
        };
        // With `default = "allow"` the directories above a client read the same for everyone
        // (moving or removing them always reaches the daemon), so only the tops need this.
        p.clients.iter().any(|c| c.path == path)
            || (!p.default_allow && p.client_of(&path).is_none())
    }

    /// Whether the kernel may remember that `name` is absent from `parent` for everyone.
    /// Without a policy the answer is the same for every caller. With one, a caller the
    /// policy refuses gets EACCES, not ENOENT, so an absence may be cached only where every
    /// caller who can reach it gets the same answer: strictly below a client's top, which
    /// every path walk passes through and which is checked for each caller (the rule for
    /// positive entries in `must_revalidate`). Spares git a LOOKUP per directory for each
    /// `.gitignore` it probes on every `git status`.
    pub fn absence_cacheable(&self, parent: Ino, name: &OsStr) -> bool {
        let parent = parent.0;
        let Some(p) = self.guard.policy() else {
            return true;
        };
        let Ok(path) = self.child_path(parent, name) else {
            return false;
        };
        p.client_of(&path).is_some_and(|c| c.path != path)
    }

    /// The entries naming each client's top directory, where the directory holding it is
    /// known: after a policy change they are dropped from the kernel's cache, so no absence
    /// cached before a name became a client's top answers for a caller the policy refuses.
    /// (Dropping a known name drops the absences cached beneath it too; this catches the
    /// ones in the mount's root, cached while no policy was in force.)
    pub fn client_top_entries(&self) -> Vec<(u64, Vec<u8>)> {
        let Some(p) = self.guard.policy() else {
            return Vec::new();
        };
        let inodes = lock(&self.inodes);
        let dirs: HashMap<Vec<u8>, u64> = inodes
            .dirs()
            .into_iter()
            .filter_map(|ino| inodes.plain_path(ino).map(|path| (path, ino)))
            .collect();
        p.clients
            .iter()
            .filter_map(|c| {
                let (parent, name) = c.path.rsplit_once('/')?;
                let parent = if parent.is_empty() { "/" } else { parent };
                let ino = dirs.get(parent.as_bytes())?;
                Some((*ino, name.as_bytes().to_vec()))
            })
            .collect()
    }

    /// Records a control request (client add, export, shred, rekey) by the caller `who`,
    /// about the client `client` at `path`.
    pub fn record_request(
        &self,
        who: &Subject,
        op: &str,
        path: &str,
        client: &str,
        result: &str,
        detail: Option<String>,
    ) {
        self.guard
            .record(who, op, path, None, Some(client), result, detail);
    }

    /// Records an event that is not tied to one request (mount, policy change).
    pub fn record_event(&self, op: &str, result: &str, detail: Option<String>) {
        self.record_event_as(sys::getuid(), op, result, detail);
    }

    /// An event the daemon saw another tutela process of user `uid` cause (a prune).
    pub fn record_event_as(&self, uid: u32, op: &str, result: &str, detail: Option<String>) {
        let who = Subject {
            uid,
            gid: sys::getgid(),
            pid: std::process::id(),
        };
        self.guard.record(&who, op, "/", None, None, result, detail);
    }

    /// Called now and then by the daemon: writes the counts of repeated refusals whose
    /// window is over.
    pub fn audit_tick(&self) {
        self.guard.flush_refusals(false);
    }

    pub fn close_audit(&self) {
        self.guard.close();
    }

    /// Opens the audit log again after `close_audit`, under `keys`.
    pub fn reopen_audit(&self, vault: &std::path::Path, keys: crate::audit::Keys) -> Result<()> {
        self.guard.reopen(vault, keys)
    }

    pub(super) fn path_of(&self, ino: u64) -> Result<String> {
        let p = lock(&self.inodes).plain_path(ino).ok_or(Error::Stale)?;
        Ok(String::from_utf8_lossy(&p).into_owned())
    }

    pub(super) fn child_path(&self, parent: u64, name: &OsStr) -> Result<String> {
        let mut p = self.path_of(parent)?;
        if p != "/" {
            p.push('/');
        }
        p.push_str(&String::from_utf8_lossy(name.as_bytes()));
        Ok(p)
    }

    /// Checks the policy; a refusal is audited and returns EACCES. Returns the client.
    pub(super) fn allow(
        &self,
        who: &Subject,
        op: Op,
        path: &str,
        access: Access,
    ) -> Result<Option<String>> {
        // A closed matter's folder is read-only for everyone but the policy's admins.
        if access == Access::Write {
            if let Some(name) = self.closed_client(path) {
                if !self.is_admin(who) {
                    self.guard
                        .record_denied(who, op.as_str(), path, Some(name.as_str()));
                    return Err(Error::PermissionDenied);
                }
            }
        }
        let Some(p) = self.guard.policy() else {
            return Ok(None);
        };
        let d = p.decide(&self.guard.creds(who), path, access);
        let client = d.client.map(str::to_string);
        if !d.allowed {
            self.guard
                .record_denied(who, op.as_str(), path, client.as_deref());
            return Err(Error::PermissionDenied);
        }
        Ok(client)
    }

    /// Whether a directory entry at `path` is shown to `who` (hidden when it may not be read).
    pub(super) fn visible(&self, creds: &Creds, policy: &Policy, path: &str) -> bool {
        policy.decide(creds, path, Access::Read).allowed
    }

    pub(super) fn guard_policy(&self) -> Option<Arc<Policy>> {
        self.guard.policy()
    }

    pub(super) fn is_admin(&self, who: &Subject) -> bool {
        self.guard
            .policy()
            .is_some_and(|p| p.is_admin(&self.guard.creds(who)))
    }

    pub(super) fn creds_of(&self, who: &Subject) -> Creds {
        self.guard.creds(who)
    }

    /// Whether the caller is in group `gid` (primary or supplementary).
    pub(super) fn in_group(&self, who: &Subject, gid: u32) -> bool {
        who.gid == gid || self.guard.creds.groups(who).contains(&gid)
    }

    /// Audits the outcome of an operation.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn audited<T>(
        &self,
        who: &Subject,
        op: Op,
        path: &str,
        path2: Option<&str>,
        client: Option<&str>,
        detail: Option<String>,
        r: Result<T>,
    ) -> Result<T> {
        self.guard.record(
            who,
            op.as_str(),
            path,
            path2,
            client,
            &result_name(&r),
            detail,
        );
        r
    }

    /// Rename and link may not cross client boundaries nor move a directory that holds a
    /// client's subtree.
    pub(super) fn check_move(&self, from: &str, to: &str) -> Result<()> {
        let Some(p) = self.guard.policy() else {
            return Ok(());
        };
        if p.is_above_client(from) || p.is_above_client(to) {
            return Err(Error::Busy(
                "a directory holding a client's subtree cannot be moved".into(),
            ));
        }
        let a = p.client_of(from).map(|c| c.name.as_str());
        let b = p.client_of(to).map(|c| c.name.as_str());
        let top = |path: &str| p.clients.iter().any(|c| c.path == path);
        if a != b || top(from) || top(to) {
            return Err(Error::CrossDevice);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{new_fs, ME};
    use super::super::Ino;
    use std::ffi::OsStr;

    fn policy(text: &str) -> crate::policy::Policy {
        crate::policy::parse(text, "p", &|_, _| None).unwrap()
    }

    /// What the kernel may keep, by place: the same for everyone without a policy; with one,
    /// a client's top is asked for on every walk, and an absence is kept only inside a client.
    #[test]
    fn what_the_kernel_may_cache_follows_the_policy() {
        let (_t, fs) = new_fs();
        let clients = fs
            .mkdir(&ME, Ino::ROOT, OsStr::new("clients"), 0o755, 0)
            .unwrap();
        let acme = fs
            .mkdir(&ME, clients.ino, OsStr::new("acme"), 0o755, 0)
            .unwrap();
        let inner = fs
            .mkdir(&ME, acme.ino, OsStr::new("letters"), 0o755, 0)
            .unwrap();
        assert!(fs.absence_cacheable(Ino::ROOT, OsStr::new("x")));
        assert!(!fs.must_revalidate(acme.ino));
        assert!(fs.client_top_entries().is_empty());

        fs.set_policy(Some(policy(
            "[clients.acme]\npath = \"/clients/acme\"\nread = [\"4242\"]\n",
        )));
        assert!(!fs.absence_cacheable(Ino::ROOT, OsStr::new("x")));
        assert!(!fs.absence_cacheable(clients.ino, OsStr::new("acme")));
        assert!(!fs.absence_cacheable(clients.ino, OsStr::new("other")));
        assert!(fs.absence_cacheable(acme.ino, OsStr::new(".gitignore")));
        assert!(fs.absence_cacheable(inner.ino, OsStr::new(".gitignore")));
        assert!(fs.must_revalidate(acme.ino));
        assert!(!fs.must_revalidate(inner.ino));
        assert!(!fs.must_revalidate(clients.ino));
        assert_eq!(
            fs.client_top_entries(),
            vec![(clients.ino.0, b"acme".to_vec())]
        );

        // A top directly in the root, and one whose parent the kernel has not seen yet.
        fs.set_policy(Some(policy(
            "[clients.top]\npath = \"/top\"\nread = [\"4242\"]\n\
             [clients.deep]\npath = \"/nowhere/deep\"\nread = [\"4242\"]\n",
        )));
        assert_eq!(
            fs.client_top_entries(),
            vec![(Ino::ROOT.0, b"top".to_vec())]
        );
        assert!(!fs.absence_cacheable(Ino::ROOT, OsStr::new("top")));
    }
}
