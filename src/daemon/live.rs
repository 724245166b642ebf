//! Client work on a live mount, done by the mount daemon for a caller on its control
//! channel: the share stays online while a client is added (an existing folder's files
//! adopted), exported, shredded, or given a new key. One operation runs at a time; each is
//! recorded in the audit log with who asked, when it starts and how it ends, so nothing is
//! half-done without a record.

use crate::crypto::secret::Key32;
use crate::daemon::control::server::{Caller, Handler};
use crate::daemon::control::Request;
use crate::error::{Error, Result};
use crate::fs::{Fs, Options, RekeyStats, Subject};
use crate::offline::clients::{self, check_new, new_record, zone_named};
use crate::vault::Vault;
use serde_json::json;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Keys derived from the master key that the daemon works with. A live `rekey --all`
/// replaces them all at once (the daemon never holds the master key itself).
pub struct LiveKeys {
    pub policy: Key32,
    /// Authenticates a re-read config.
    pub config: Key32,
    pub audit: crate::audit::Keys,
    pub control: Key32,
}

impl LiveKeys {
    pub fn of(v: &Vault) -> LiveKeys {
        LiveKeys {
            policy: v.policy_key(),
            config: v.config_key(),
            audit: v.audit_keys(),
            control: v.control_key(),
        }
    }
}

pub type SharedKeys = Arc<std::sync::RwLock<LiveKeys>>;

pub struct Live {
    fs: Arc<Fs>,
    keys: SharedKeys,
    vault: Mutex<Vault>,
    /// The operation under way, if any (a second one is refused, naming it).
    busy: Mutex<Option<String>>,
    /// The user asked for a read-only mount (as opposed to one made read-only until an
    /// interrupted rekey is finished).
    user_read_only: bool,
    /// Clients locked now (`tutela lock`, or idle): their keys, and the zone-wrap key that
    /// would bring them back from the config, are not in memory.
    locked: Mutex<Vec<String>>,
}

type Answer = Result<(String, serde_json::Value)>;

fn subject(c: Caller) -> Subject {
    Subject {
        uid: c.uid,
        gid: c.gid,
        pid: c.pid,
    }
}

fn progress_of(progress: &mut dyn FnMut(&str)) -> impl FnMut(RekeyStats) + '_ {
    let mut last = std::time::Instant::now();
    move |s: RekeyStats| {
        if last.elapsed().as_millis() >= 250 {
            last = std::time::Instant::now();
            progress(&format!(
                "re-encrypted {} entries, {} MiB",
                s.entries,
                s.bytes >> 20
            ));
        }
    }
}

/// Gives `path` and everything below it to `uid`:`gid` (never following a symlink).
fn give_tree(path: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    let md = std::fs::symlink_metadata(path)?;
    if md.is_dir() {
        for e in std::fs::read_dir(path)? {
            give_tree(&e?.path(), uid, gid)?;
        }
    }
    Ok(())
}

fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

impl Live {
    pub fn new(fs: Arc<Fs>, vault: Vault, user_read_only: bool, keys: SharedKeys) -> Live {
        Live {
            fs,
            keys,
            vault: Mutex::new(vault),
            busy: Mutex::new(None),
            user_read_only,
            locked: Mutex::new(Vec::new()),
        }
    }

    /// Clients locked now, by name.
    pub fn locked_clients(&self) -> Vec<String> {
        self.locked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Overwrites, in the vault's copy of the zone table, the keys of the locked clients, and
    /// while any is locked also the zone-wrap key (with which the daemon could read them back
    /// from the config): none of them stays in memory.
    fn forget_locked_keys(&self, v: &mut Vault) -> Result<()> {
        let locked = self.locked_clients();
        if locked.is_empty() {
            return Ok(());
        }
        for z in v.zones.iter_mut().filter(|z| locked.contains(&z.name)) {
            z.key = Key32::random()?;
        }
        let (_, config_mac) = v.saving_keys();
        v.set_saving_keys((Key32::random()?, config_mac));
        Ok(())
    }

    /// Locks client `name`: its key leaves the daemon's memory, the kernel forgets its
    /// names and cached pages, and its folder answers ENOKEY until an unlock. Refused while
    /// its files are open, unless `force` (their handles are then revoked). `why` goes into
    /// the answer ("idle for 15m", or nothing when asked for).
    pub fn lock_client(&self, name: &str, force: bool) -> Answer {
        let mut v = self.vault();
        if self.locked_clients().iter().any(|n| n == name) {
            return Ok((
                format!("client '{name}' is already locked"),
                json!({ "client": name, "locked": true, "already": true }),
            ));
        }
        let rec = zone_named(&v, name)?;
        let (id, path) = (rec.id, rec.path.clone());
        let family = self.fs.family_of(&id).ok_or(Error::NotFound)?;
        let open = self.fs.open_in_family(family);
        if open > 0 && !force {
            return Err(Error::Busy(format!(
                "client '{name}' has {open} open file{}: close {} first, or lock --force (their \
                 handles are revoked: reads and writes on them fail)",
                if open == 1 { "" } else { "s" },
                if open == 1 { "it" } else { "them" }
            )));
        }
        let held = self.fs.exclusive();
        let names = self.fs.zone_names(family);
        let revoked = self.fs.lock_zone(&held, family)?;
        drop(held);
        self.fs.forget_zone(&names);
        self.locked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(name.to_string());
        self.forget_locked_keys(&mut v)?;
        Ok((
            format!(
                "client '{name}' locked: its key is out of the mount daemon's memory; {path} \
                 answers \"Required key not available\" until tutela unlock{}",
                if revoked > 0 {
                    format!(" ({revoked} open files were closed on their users)")
                } else {
                    String::new()
                }
            ),
            json!({ "client": name, "path": path, "locked": true, "revoked_open_files": revoked }),
        ))
    }

    /// Unlocks client `name` with the zone-wrap key the caller sent (sealed under the
    /// control key): the zone table is read from the config again, which the config MAC
    /// key the daemon kept authenticates, and the client's key taken from it.
    fn unlock_client(&self, name: &str, sealed: &str) -> Answer {
        if !self.locked_clients().iter().any(|n| n == name) {
            let known = zone_named(&self.vault(), name).is_ok();
            return Err(Error::Usage(if known {
                format!("client '{name}' is not locked")
            } else {
                format!("no client named '{name}' (see tutela client list)")
            }));
        }
        let control = self
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .control
            .duplicate();
        let zone_wrap = crate::daemon::control::open_zone_wrap(&control, sealed)?;
        let mut v = self.vault();
        let (_, config_mac) = v.saving_keys();
        v.set_saving_keys((zone_wrap, config_mac.duplicate()));
        if let Err(e) = v.reload() {
            // Whatever failed, the daemon holds no zone-wrap key afterwards.
            v.set_saving_keys((Key32::random()?, config_mac));
            return Err(Error::ControlRefused(format!(
                "the zone table does not open with that key ({e}): nothing was unlocked"
            )));
        }
        let rec = zone_named(&v, name)?;
        let family = self.fs.family_of(&rec.id).ok_or(Error::NotFound)?;
        let path = rec.path.clone();
        {
            let held = self.fs.exclusive();
            self.fs.unlock_zone(&held, family, &rec.key);
        }
        self.locked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|n| n != name);
        self.forget_locked_keys(&mut v)?;
        Ok((
            format!("client '{name}' unlocked: {path} opens again"),
            json!({ "client": name, "path": path, "locked": false }),
        ))
    }

    /// Locks every client nobody used for `idle` (and with no open file): `--client-idle`.
    /// Each lock is recorded as the daemon's own.
    pub fn lock_idle(&self, idle: std::time::Duration) {
        let families = self.fs.idle_families(idle.as_secs().max(1));
        if families.is_empty() {
            return;
        }
        let ids = self.fs.zone_ids(&families);
        let names: Vec<(String, String)> = {
            let v = self.vault();
            v.zones
                .iter()
                .filter(|z| ids.contains(&z.id))
                .map(|z| (z.name.clone(), z.path.clone()))
                .collect()
        };
        for (name, path) in names {
            let (result, detail) = match self.lock_client(&name, false) {
                Ok(_) => (
                    "ok",
                    format!("idle for {}", humantime::format_duration(idle)),
                ),
                Err(e) => ("failed", e.to_string()),
            };
            self.fs.record_request(
                &crate::offline::clients::me(),
                "client-lock",
                &path,
                &name,
                result,
                Some(detail),
            );
        }
    }

    fn vault(&self) -> std::sync::MutexGuard<'_, Vault> {
        self.vault.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn writable(&self) -> Result<()> {
        if self.fs.read_only() {
            return Err(Error::Usage(if self.user_read_only {
                "the vault is mounted read-only: remount it read-write for client changes".into()
            } else {
                "the mount is read-only until the interrupted rekey is finished: run `tutela \
                 rekey VAULT --resume`"
                    .into()
            }));
        }
        Ok(())
    }

    fn add(&self, who: Caller, name: &str, path: &str, progress: &mut dyn FnMut(&str)) -> Answer {
        self.writable()?;
        let mut v = self.vault();
        v.reload()?;
        let path = check_new(&v, name, path)?;
        let held = self.fs.exclusive();
        let (_, holds_files, made) = self
            .fs
            .folder_at(&held, &path, true)?
            .ok_or(Error::NotFound)?;
        if !holds_files {
            let rec = new_record(name, &path, None)?;
            let (id, key) = (rec.id, rec.key.duplicate());
            v.zones.push(rec);
            v.save()?;
            self.fs.add_zone(&held, id, &key, &path);
            drop(held);
            // The kernel may hold the folders made here as absent.
            for (parent, n) in &made {
                self.fs.entry_changed(*parent, n);
            }
            return Ok((
                format!(
                    "client '{name}' added: files created in {path} are encrypted under its own key"
                ),
                json!({ "client": name, "path": path, "adopted": false }),
            ));
        }
        // The folder holds files of the root zone: they move to the new key, in place,
        // while the mount serves them. The saved record (with the root zone's key as the
        // retiring one) is the commit point; a crash is finished by `rekey --resume`.
        let rec = new_record(name, &path, Some(&v.zones[0]))?;
        let (id, key) = (rec.id, rec.key.duplicate());
        let (from_id, from_key) = (v.zones[0].id, v.zones[0].key.duplicate());
        v.zones.push(rec);
        v.save()?;
        crate::faults::point("adopt-committed");
        let k = self
            .fs
            .adopt_zone(&held, id, &key, &path, from_id, &from_key);
        drop(held);
        progress(&format!("re-encrypting the files already in {path}"));
        let stats = self.fs.rekey_zone(k, &mut progress_of(progress))?;
        self.finish_rekey(&mut v, &[(id, k)])?;
        let _ = who;
        Ok((
            format!(
                "client '{name}' added: the {} entries already in {path} ({} bytes) were re-encrypted under its own key",
                stats.entries, stats.bytes
            ),
            json!({ "client": name, "path": path, "adopted": true, "entries": stats.entries, "bytes": stats.bytes }),
        ))
    }

    /// Drops the retiring keys of zones `done` (ids with their indices) from the config and
    /// from memory, once their walks are complete.
    fn finish_rekey(&self, v: &mut Vault, done: &[(crate::crypto::Id, usize)]) -> Result<()> {
        crate::faults::point("rekey-walked");
        let held = self.fs.exclusive();
        v.reload()?;
        for z in v.zones.iter_mut() {
            if done.iter().any(|(id, _)| *id == z.id) {
                z.retiring = None;
                z.adopting = None;
            }
        }
        v.save()?;
        for (_, k) in done {
            self.fs.end_rekey(&held, *k);
        }
        drop(held);
        if !self.fs.rekey_pending() {
            self.fs.rekey_cleanup()?;
        }
        Ok(())
    }

    fn export(
        &self,
        who: Caller,
        name: &str,
        output: &Path,
        progress: &mut dyn FnMut(&str),
    ) -> Answer {
        if !output.is_absolute() {
            return Err(Error::Usage(format!(
                "{}: the daemon needs an absolute output path",
                output.display()
            )));
        }
        let mut v = self.vault();
        v.reload()?;
        let zone = zone_named(&v, name)?;
        // A view of its own (no policy: the caller holds the vault's keys), reading what the
        // mount writes; a file that changes while it is read is read again.
        let fs = Fs::new(
            &v,
            Options {
                read_only: true,
                ..Options::default()
            },
        )?;
        let path = zone.path.clone();
        drop(v);
        progress(&format!("exporting client '{name}'"));
        let total = std::cell::Cell::new(0u64);
        let last = std::cell::Cell::new(std::time::Instant::now());
        let progress = std::cell::RefCell::new(progress);
        let rep = crate::offline::export::export_from(
            &fs,
            &path,
            name,
            output,
            true,
            &|t| total.set(t),
            &|done| {
                if last.get().elapsed().as_millis() >= 250 {
                    last.set(std::time::Instant::now());
                    (progress.borrow_mut())(&format!(
                        "exported {} of {} MiB",
                        done >> 20,
                        total.get() >> 20
                    ));
                }
            },
        )?;
        // The export is the caller's (the daemon may run as root).
        if crate::sys::geteuid() == 0 && who.uid != 0 {
            give_tree(output, who.uid, who.gid)?;
        }
        let changed = if rep.changed.is_empty() {
            String::new()
        } else {
            format!(
                "; {} files were being changed and are listed in {}",
                rep.changed.len(),
                crate::offline::export::CHANGED
            )
        };
        Ok((
            format!(
                "exported client '{name}' to {}: {} files, {} folders, {} symlinks, {} bytes; checksums in {}{changed}",
                output.display(),
                rep.files,
                rep.dirs,
                rep.symlinks,
                rep.bytes,
                crate::offline::export::MANIFEST
            ),
            json!({ "client": name, "output": output, "export": rep }),
        ))
    }

    /// Closes (or reopens) client `name`'s matter: the zone table records the date, and the
    /// fence makes the folder read-only for all but admins from the next request on. A close
    /// waits for nobody: with the client's files open it is refused, saying how many.
    fn close_client(&self, name: &str, reopen: bool, reason: &str, at: Option<u64>) -> Answer {
        self.writable()?;
        let mut v = self.vault();
        v.reload()?;
        let i = crate::offline::clients::zone_index(&v, name)?;
        let closed = v.zones[i].meta.closed_ms.is_some();
        if closed != reopen {
            return Err(Error::Usage(format!(
                "client '{name}' is {} already",
                if closed { "closed" } else { "open" }
            )));
        }
        if !reopen {
            let family = self.fs.family_of(&v.zones[i].id).ok_or(Error::NotFound)?;
            let open = self.fs.open_in_family(family);
            if open > 0 {
                return Err(Error::Busy(format!(
                    "client '{name}' has {open} open file{} (held by {}): {} must close {} before the matter closes",
                    if open == 1 { "" } else { "s" },
                    holders(&self.fs.openers_in_family(family)),
                    if open == 1 { "its user" } else { "their users" },
                    if open == 1 { "it" } else { "them" }
                )));
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let before = crate::policy::closed::of_zones(&v.zones);
        v.zones[i].meta.closed_ms = (!reopen).then_some(at.unwrap_or(now));
        let after = crate::policy::closed::of_zones(&v.zones);
        let key = self
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .policy
            .duplicate();
        let (dir, vid) = (v.dir.clone(), v.config.vault_id);
        crate::policy::closed::save_around(&dir, &key, &vid, (&before, &after), || v.save())?;
        self.fs.set_closed(crate::fs::closed_of(&v.zones));
        let path = v.zones[i].path.clone();
        Ok((
            if reopen {
                format!("client '{name}' reopened ({reason}): {path} is writable again")
            } else {
                format!("client '{name}' closed ({reason}): {path} is read-only for all but admins; its retention runs from now")
            },
            json!({ "client": name, "path": path, "closed": !reopen }),
        ))
    }

    /// Changes client `name`'s life cycle metadata from `before` to `after`, unless it is
    /// no longer `before` (someone changed it since the command read it).
    fn set_meta(
        &self,
        name: &str,
        before: &crate::format::zones::ClientMeta,
        after: &crate::format::zones::ClientMeta,
        detail: &str,
    ) -> Answer {
        self.writable()?;
        if detail.chars().any(char::is_control) {
            return Err(Error::Usage(
                "the change's description has control characters".into(),
            ));
        }
        crate::offline::lifecycle::check_meta(after)?;
        let mut v = self.vault();
        v.reload()?;
        let i = crate::offline::clients::zone_index(&v, name)?;
        if v.zones[i].meta != *before {
            return Err(Error::Busy(format!(
                "client '{name}' was changed since this command read it: run it again"
            )));
        }
        // Closing and reopening has its own request (it moves the fence): not through here.
        if after.closed_ms != before.closed_ms {
            return Err(Error::Usage(
                "a close or reopen goes through `tutela client close|reopen`".into(),
            ));
        }
        v.zones[i].meta = after.clone();
        v.save()?;
        Ok((
            format!("client '{name}': {detail}"),
            json!({ "client": name, "meta": after }),
        ))
    }

    fn shred(&self, who: Caller, name: &str) -> Answer {
        self.writable()?;
        let mut v = self.vault();
        v.reload()?;
        let rec = zone_named(&v, name)?;
        // The daemon's zone table is the one that counts: a hold set since the command read
        // its copy still stops the shred.
        crate::offline::lifecycle::check_not_held(&rec.meta, name)?;
        if !v.rekey_pending().is_empty() {
            return Err(Error::Usage(
                "a rekey is not finished: run `tutela rekey VAULT --resume` first".into(),
            ));
        }
        let (id, path) = (rec.id, rec.path.clone());
        let (files, bytes) = clients::list(&v)?
            .into_iter()
            .find(|c| c.name == name)
            .map_or((0, 0), |c| (c.files, c.bytes));
        // Recorded before anything is destroyed: a crash leaves a started shred on record.
        self.fs.record_request(
            &subject(who),
            "client-shred",
            &path,
            name,
            "started",
            Some(format!("{files} files, {bytes} bytes")),
        );
        let family = self.fs.family_of(&id).ok_or(Error::NotFound)?;
        let graveyard = v.dir.join(clients::GRAVEYARD);
        std::fs::create_dir_all(&graveyard)?;
        let held = self.fs.exclusive();
        let names = self.fs.zone_names(family);
        // From here nothing in the zone opens, and handles open on it (a Samba user's, say)
        // fail: the key is about to go.
        let revoked = self.fs.erase_zone(&held, family);
        let me = clients::me();
        if self.fs.folder_at(&held, &path, false)?.is_some() {
            self.fs.detach_dir(&me, &path, &graveyard.join(hex(&id)))?;
        }
        drop(held);
        // The kernel forgets every name it cached in the zone (outside the gate).
        self.fs.forget_zone(&names);
        crate::faults::point("shred-detached");
        v.zones.retain(|z| z.id != id);
        v.drop_client_slots_of(&id);
        v.save()?;
        crate::faults::point("shred-key-destroyed");
        drop(v);
        clients::remove_graveyard(&graveyard)?;
        Ok((
            format!(
                "client '{name}' shredded: its key is destroyed and its {files} files are deleted{}",
                if revoked > 0 {
                    format!(" ({revoked} open files were closed on their users)")
                } else {
                    String::new()
                }
            ),
            json!({ "client": name, "path": path, "files": files, "bytes": bytes, "revoked_open_files": revoked }),
        ))
    }

    fn rekey(&self, name: &str, progress: &mut dyn FnMut(&str)) -> Answer {
        self.writable()?;
        let mut v = self.vault();
        v.reload()?;
        if !v.rekey_pending().is_empty() {
            return Err(Error::Usage(
                "a rekey is not finished: run `tutela rekey VAULT --resume` first".into(),
            ));
        }
        let id = zone_named(&v, name)?.id;
        let new = Key32::random()?;
        let held = self.fs.exclusive();
        if let Some(z) = v.zones.iter_mut().find(|z| z.id == id) {
            let old = std::mem::replace(&mut z.key, new.duplicate());
            z.retiring = Some(old);
        }
        // A contractor's key to this client holds the old key: it goes now.
        v.drop_client_slots_of(&id);
        v.save()?;
        let family = self.fs.family_of(&id).ok_or(Error::NotFound)?;
        self.fs.begin_rekey(&held, family, &new)?;
        drop(held);
        progress(&format!("re-encrypting client '{name}'"));
        let stats = self.fs.rekey_zone(family, &mut progress_of(progress))?;
        self.finish_rekey(&mut v, &[(id, family)])?;
        Ok((
            format!(
                "rekeyed {name}: {} entries ({} bytes) re-encrypted; the old keys are destroyed",
                stats.entries, stats.bytes
            ),
            json!({ "zones": [name], "entries": stats.entries, "bytes": stats.bytes }),
        ))
    }

    /// `rekey --all` on the live mount: a new master key (made and sealed by the command) and
    /// new keys for every zone. With every request held back, the daemon closes its audit
    /// log, re-seals it and the policy under the new key beside the old ones, commits the
    /// config, puts them in place, reopens the log and takes the new derived keys; then the
    /// zones are re-encrypted while the mount serves, as for one client.
    fn rekey_all(
        &self,
        who: Caller,
        sealed: &str,
        slot: &crate::daemon::control::WireSlot,
        devices: &[String],
        progress: &mut dyn FnMut(&str),
    ) -> Answer {
        use crate::offline::rekey;
        self.writable()?;
        let slot = slot.to_slot()?;
        let devices = devices
            .iter()
            .map(|d| crate::daemon::control::device_slot_from_wire(d))
            .collect::<Result<Vec<_>>>()?;
        let mut v = self.vault();
        v.reload()?;
        if !v.rekey_pending().is_empty() {
            return Err(Error::Usage(
                "a rekey is not finished: run `tutela rekey VAULT --resume` first".into(),
            ));
        }
        let (old_policy_key, old_audit, old_control) = {
            let k = self.keys.read().unwrap_or_else(|p| p.into_inner());
            (
                k.policy.duplicate(),
                k.audit.duplicate(),
                k.control.duplicate(),
            )
        };
        let master = crate::daemon::control::open_master(&old_control, sealed)?;
        let policy = crate::policy::store::read_bound(
            &v.dir,
            &old_policy_key,
            &v.config.vault_id,
            v.config.policy,
        )?;
        progress("re-sealing the audit log and the policy under the new master key");
        let held = self.fs.exclusive();
        // The policy watcher waits for the new keys (it would otherwise try the new config
        // with the old key and refuse it).
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        self.fs.close_audit();
        let old_saving = v.saving_keys();
        let committed = (|| -> Result<()> {
            let records = rekey::read_log_for_reseal(&v.dir, &old_audit)?;
            rekey::retire_all_zone_keys(&mut v)?;
            v.install_master(master, slot, devices);
            let mut rec = crate::audit::Record::by("rekey-all", "/", who.uid, who.pid);
            rec.user = crate::sys::user_name(who.uid).unwrap_or_default();
            rekey::commit_all(&mut v, policy.as_deref(), records, rec)
        })();
        // After the commit the new log is put in place (or at the next unlock, if that
        // fails); before it nothing changed that counts: back to the vault as it is.
        let settled = match &committed {
            Ok(()) => rekey::settle(&v),
            Err(_) => {
                v.set_saving_keys(old_saving);
                let _ = v.reload();
                Ok(())
            }
        };
        let reopen_keys = match (&committed, &settled) {
            (Ok(()), Ok(())) => v.audit_keys(),
            _ => old_audit.duplicate(),
        };
        if let Err(e) = self.fs.reopen_audit(&v.dir, reopen_keys) {
            log::error!("the audit log could not be reopened after rekey --all: {e}");
        }
        if committed.is_err() || settled.is_err() {
            v.forget_master()?;
        }
        committed?;
        settled?;
        *keys = LiveKeys::of(&v);
        drop(keys);
        let mut done = Vec::new();
        for z in v.zones.iter() {
            let f = self.fs.family_of(&z.id).ok_or(Error::NotFound)?;
            self.fs.begin_rekey(&held, f, &z.key)?;
            done.push((z.id, f));
        }
        v.forget_master()?;
        drop(held);
        let mut total = RekeyStats::default();
        for (_, f) in &done {
            progress("re-encrypting every zone");
            let s = self.fs.rekey_zone(*f, &mut progress_of(progress))?;
            total.entries += s.entries;
            total.bytes += s.bytes;
        }
        self.finish_rekey(&mut v, &done)?;
        Ok((
            format!(
                "rekeyed all zones: {} entries ({} bytes) re-encrypted under a new master key; the old keys are destroyed",
                total.entries, total.bytes
            ),
            json!({ "all": true, "entries": total.entries, "bytes": total.bytes }),
        ))
    }

    /// Finishes every rotation or adoption that was interrupted (by a crash of an earlier
    /// daemon, or of an offline command), while the mount serves.
    pub fn resume(&self, progress: &mut dyn FnMut(&str)) -> Answer {
        if self.user_read_only {
            return Err(Error::Usage(
                "the vault is mounted read-only: remount it read-write to finish the rekey".into(),
            ));
        }
        let mut v = self.vault();
        v.reload()?;
        let pending: Vec<(crate::crypto::Id, String)> = v
            .zones
            .iter()
            .filter(|z| z.retiring.is_some())
            .map(|z| {
                (
                    z.id,
                    if z.name.is_empty() {
                        "(vault root)".to_string()
                    } else {
                        z.name.clone()
                    },
                )
            })
            .collect();
        if pending.is_empty() {
            return Err(Error::Usage(
                "no rekey to resume: the vault's keys are all current".into(),
            ));
        }
        let mut total = RekeyStats::default();
        let mut done = Vec::new();
        for (id, name) in &pending {
            let family = self.fs.family_of(id).ok_or(Error::NotFound)?;
            progress(&format!("re-encrypting {name}"));
            let s = self.fs.rekey_zone(family, &mut progress_of(progress))?;
            total.entries += s.entries;
            total.bytes += s.bytes;
            done.push((*id, family));
        }
        self.finish_rekey(&mut v, &done)?;
        if !self.user_read_only {
            self.fs.set_writable();
        }
        let names: Vec<&str> = pending.iter().map(|(_, n)| n.as_str()).collect();
        Ok((
            format!(
                "finished the rekey that was interrupted earlier\nrekeyed {}: {} entries ({} bytes) re-encrypted; the old keys are destroyed",
                names.join(", "),
                total.entries,
                total.bytes
            ),
            json!({ "zones": names, "entries": total.entries, "bytes": total.bytes, "resumed": true }),
        ))
    }

    fn dispatch(&self, who: Caller, req: &Request, progress: &mut dyn FnMut(&str)) -> Answer {
        let locked = self.locked_clients();
        let lock_op = matches!(
            req,
            Request::ClientLock { .. } | Request::ClientUnlock { .. }
        );
        if !locked.is_empty() && !lock_op {
            // Changing the zone table needs every zone's key, and the daemon holds none of
            // the locked ones (nor the key that would read them back).
            return Err(Error::ClientLocked(locked.join(", ")));
        }
        match req {
            Request::ClientLock { name, force } => self.lock_client(name, *force),
            Request::ClientUnlock { name, zone_wrap } => self.unlock_client(name, zone_wrap),
            Request::ClientAdd { name, path } => self.add(who, name, path, progress),
            Request::ClientExport { name, output } => self.export(who, name, output, progress),
            Request::ClientShred { name } => self.shred(who, name),
            Request::ClientClose {
                name,
                reopen,
                reason,
                closed_ms,
            } => self.close_client(name, *reopen, reason, *closed_ms),
            Request::ClientMeta {
                name,
                before,
                after,
                detail,
                ..
            } => self.set_meta(name, before, after, detail),
            Request::Record {
                what,
                client,
                detail,
            } => self.record(who, what, client.as_deref(), detail),
            Request::Rekey { client } => self.rekey(client, progress),
            Request::RekeyResume => self.resume(progress),
            Request::RekeyAll {
                master,
                slot,
                devices,
            } => self.rekey_all(who, master, slot, devices, progress),
        }
    }

    /// What the audit record names: the client and its folder, where known.
    fn target(&self, req: &Request) -> (String, String) {
        let name = match req {
            Request::ClientAdd { name, path } => return (name.clone(), path.clone()),
            Request::ClientExport { name, .. }
            | Request::ClientShred { name }
            | Request::ClientClose { name, .. }
            | Request::ClientMeta { name, .. }
            | Request::ClientLock { name, .. }
            | Request::ClientUnlock { name, .. }
            | Request::Rekey { client: name } => name.clone(),
            Request::RekeyResume | Request::RekeyAll { .. } | Request::Record { .. } => {
                return (String::new(), "/".into())
            }
        };
        let path = self
            .vault()
            .zones
            .iter()
            .find(|z| z.name == name)
            .map_or_else(|| "/".to_string(), |z| z.path.clone());
        (name, path)
    }
}

impl Live {
    /// Writes a command's audit record (`Request::Record`).
    fn record(&self, who: Caller, op: &str, client: Option<&str>, detail: &str) -> Answer {
        if !record_ok(op, client, detail) {
            return Err(Error::Usage("a malformed audit record".into()));
        }
        let path = client
            .and_then(|c| {
                self.vault()
                    .zones
                    .iter()
                    .find(|z| z.name == c)
                    .map(|z| z.path.clone())
            })
            .unwrap_or_else(|| "/".into());
        self.fs.record_request(
            &subject(who),
            op,
            &path,
            client.unwrap_or(""),
            "ok",
            Some(detail.to_string()),
        );
        Ok(("recorded".into(), json!({ "op": op })))
    }
}

impl Handler for Live {
    fn run(&self, who: Caller, req: Request, progress: &mut dyn FnMut(&str)) -> Answer {
        if let Request::Record {
            what,
            client,
            detail,
        } = &req
        {
            // Waits for nothing: a record is not an operation on the vault.
            return self.record(who, what, client.as_deref(), detail);
        }
        let name = match &req {
            Request::ClientAdd { name, .. }
            | Request::ClientExport { name, .. }
            | Request::ClientShred { name }
            | Request::ClientClose { name, .. }
            | Request::ClientMeta { name, .. }
            | Request::ClientLock { name, .. }
            | Request::ClientUnlock { name, .. }
            | Request::Rekey { client: name } => name.clone(),
            Request::RekeyResume | Request::RekeyAll { .. } | Request::Record { .. } => {
                String::new()
            }
        };
        {
            // Checked before anything waits on the vault, which the running operation holds.
            let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(running) = busy.as_ref() {
                let e = Error::Busy(format!(
                    "the mount daemon is busy with {running}: try again when it is done"
                ));
                self.fs.record_request(
                    &subject(who),
                    req.op(),
                    "/",
                    &name,
                    "refused",
                    Some(e.to_string()),
                );
                return Err(e);
            }
            *busy = Some(format!("{} {name}", req.op()).trim_end().to_string());
        }
        let (client, path) = self.target(&req);
        let r = self.dispatch(who, &req, progress);
        *self.busy.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let (result, detail) = match &r {
            Ok((msg, _)) => ("ok", msg.lines().last().unwrap_or_default().to_string()),
            Err(e) => ("failed", e.to_string()),
        };
        self.fs.record_request(
            &subject(who),
            req.op(),
            &path,
            &client,
            result,
            Some(detail),
        );
        r
    }

    fn refused(&self, who: Caller, why: &str) {
        self.fs.record_request(
            &subject(who),
            "control",
            "/",
            "",
            "refused",
            Some(why.into()),
        );
    }
}

/// Whether a command's record (`Request::Record`) may go into the log: an operation name of
/// lowercase letters and dashes, text without control characters (a record is one line
/// wherever it is shown or forwarded), within bounds.
fn record_ok(op: &str, client: Option<&str>, detail: &str) -> bool {
    let text_ok = |t: &str, max: usize| t.len() <= max && !t.chars().any(char::is_control);
    !op.is_empty()
        && op.len() <= 40
        && op.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
        && text_ok(detail, 4096)
        && client.is_none_or(|c| text_ok(c, 255))
}

/// Who holds a client's files open, for a refused close: `alice (pid 812, soffice.bin)`,
/// one per process, at most eight named.
fn holders(openers: &[(u32, u32)]) -> String {
    const SHOWN: usize = 8;
    let mut out: Vec<String> = openers
        .iter()
        .take(SHOWN)
        .map(|&(uid, pid)| {
            let user = crate::sys::user_name(uid).unwrap_or_else(|| format!("uid {uid}"));
            let prog = crate::sys::process_name(pid);
            let user = crate::text::escape(&user);
            if prog.is_empty() {
                format!("{user} (pid {pid}, gone)")
            } else {
                format!("{user} (pid {pid}, {})", crate::text::escape(&prog))
            }
        })
        .collect();
    if openers.len() > SHOWN {
        out.push(format!("{} more", openers.len() - SHOWN));
    }
    if out.is_empty() {
        "nobody known".into()
    } else {
        out.join(", ")
    }
}

#[cfg(test)]
mod record_tests {
    #[test]
    fn a_commands_record_is_one_clean_line() {
        use super::record_ok;
        assert!(record_ok("client-import", None, "client 'acme': 3 files"));
        assert!(record_ok("audit-report", Some("acme"), ""));
        for (op, client, detail) in [
            ("", None, "x"),
            ("Client-Import", None, "x"),
            ("client import", None, "x"),
            ("x", None, "two\nlines"),
            ("x", Some("a\u{1b}[31m"), "x"),
            ("x", None, &"y".repeat(4097)[..]),
        ] {
            assert!(
                !record_ok(op, client, detail),
                "{op:?} {client:?} {detail:?}"
            );
        }
    }
}
