//! The filesystem core: plaintext operations over the encrypted backing directory. No fuser
//! types here: every operation takes plain values and returns `Result`, so the whole core is
//! testable without a kernel mount (see the tests at the bottom of each file).

mod attr;
mod checked;
mod conflicts;
pub(crate) use conflicts::{identify as identify_conflict, sync_tool_file};
mod dir;
mod entry;
#[cfg(test)]
mod fence_table;
mod file;
mod guard;
pub mod inode;
mod op;
mod refusals;
mod rekey;
mod rootmode;
pub mod scoped;
mod stream;
mod xattr;
mod zones;

use crate::crypto::names::{NameCipher, Stored};
use crate::crypto::secret::Key32;
use crate::crypto::{kdf, Id};
use crate::error::{Error, Result};
use crate::sys;
use crate::vault::Vault;
use inode::{DirRef, InodeTable, Kind, Life, ROOT_INO};
use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use attr::{Attr, SetAttr, Statfs};
pub use dir::DirEntryOut;
pub(crate) use dir::{
    alternate_dir_ids, dir_id_copies, full_encoded, write_dir_id_file, write_long_record,
};
pub use entry::RenameFlags;
pub use guard::{CredSource, Guard, ProcGroups};
pub use op::Op;
pub use rekey::RekeyStats;

/// An inode number as the kernel knows it (the FUSE node ID), not the backing file's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ino(pub u64);

impl Ino {
    /// The mount's root.
    pub const ROOT: Ino = Ino(ROOT_INO);
}

/// An open file's handle number, given out by `open` and `create`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fh(pub u64);

/// Who is asking: the identity the kernel gives each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub read_only: bool,
    /// Give new files to the caller (possible when the daemon runs as root).
    pub chown_new: bool,
    /// `-o noatime`: reading a file leaves its access time alone (the kernel leaves atime of
    /// a FUSE mount to the daemon, whose reads of the backing file would set it).
    pub noatime: bool,
    /// `-o strictatime`: every open that reads reaches the daemon (no page cache kept), so
    /// the backing file's access time moves as its filesystem's rule says, and the kernel
    /// is told after each read.
    pub strictatime: bool,
}

/// A zone's keys, unlocked.
pub struct Zone {
    pub id: Id,
    pub key: Key32,
    pub names: NameCipher,
    /// Plaintext path of the zone's top directory.
    pub path: Vec<u8>,
    /// While a rekey is under way a zone has two generations, each an entry of `Fs::zones`:
    /// the current key (`family` is its own index) and the retiring key (`family` points at
    /// the current one). An inode's zone index says which generation its name and content use.
    pub family: usize,
    pub retiring: Option<usize>,
    /// Shredded while mounted: its key is gone and nothing in it may be reached again. (The
    /// slot stays, so that the indices of other zones held by inodes do not move.)
    pub erased: bool,
    /// Locked on the live mount (`tutela lock`): its key is not in memory until an unlock
    /// brings it back; its entries answer ENOKEY.
    pub locked: bool,
    /// When an entry of the zone was last looked up or opened (seconds since the epoch), for
    /// locking a client after its own idle time.
    pub last_used: std::sync::atomic::AtomicU64,
}

impl Zone {
    pub fn new(id: Id, key: &Key32, path: &[u8], family: usize) -> Zone {
        Zone {
            id,
            key: key.duplicate(),
            names: NameCipher::new(&kdf::name_key(key, &id), &kdf::xattr_key(key, &id)),
            path: path.to_vec(),
            family,
            retiring: None,
            erased: false,
            locked: false,
            last_used: std::sync::atomic::AtomicU64::new(now_secs()),
        }
    }
}

/// Seconds since the epoch (a vDSO call: cheap enough for every lookup).
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Proof that the request gate is held exclusively (see `Fs::exclusive`): what changes the
/// zone table takes one, so it cannot be called while requests run.
pub struct Exclusive<'a>(#[allow(dead_code)] RwLockWriteGuard<'a, ()>);

/// Tells the kernel that its cached attributes of an inode are out of date, and with
/// `true` its cached contents too.
pub type Invalidate = Box<dyn Fn(u64, bool) + Send + Sync>;
/// Tells the kernel to forget a name it cached: (parent inode, plaintext name).
pub type InvalidateEntry = Box<dyn Fn(u64, &[u8]) + Send + Sync>;

pub struct Fs {
    root: OwnedFd,
    root_backing_ino: u64,
    /// The mount root's mode where the vault directory is closed (`rootmode`).
    root_mode: AtomicU32,
    /// The zone table. It changes while mounted (client add, shred, rekey); entries are
    /// never removed or moved, so an index held by an inode stays meaningful.
    zones: RwLock<Vec<Arc<Zone>>>,
    inodes: Mutex<InodeTable>,
    files: file::OpenFiles,
    next_fh: AtomicU64,
    opts: Options,
    /// Read-only for now: the user asked, or an interrupted rekey waits to be finished.
    read_only: AtomicBool,
    guard: Guard,
    /// Set by the daemon once mounted; unit tests run without.
    invalidate: std::sync::OnceLock<Invalidate>,
    invalidate_entry: std::sync::OnceLock<InvalidateEntry>,
    /// Every request holds this shared; work that rewrites entries behind the tree's back
    /// (a live rekey, a shred) holds it exclusively for one step at a time.
    gate: RwLock<()>,
    /// Other directory IDs names in a directory were sealed under, by the directory's inode
    /// (see `dir::alternate_dir_ids`); empty unless a sync tool merged a directory made on
    /// two machines. `has_alt_ids` spares every failed lookup the lock while it is empty.
    alt_ids: Mutex<std::collections::HashMap<u64, Vec<Id>>>,
    has_alt_ids: AtomicBool,
    /// Whether lookups note when each zone was last used: only `--client-idle` reads it, so
    /// without it no lookup pays the clock read.
    track_use: AtomicBool,
    /// Backing names met in listings that are neither an entry nor a known copy of one, by
    /// directory (bounded): warned about once each, and counted for `tutela status`.
    strays: Mutex<std::collections::HashSet<(u64, std::ffi::OsString)>>,
    /// Client folders whose matter is closed (`tutela client close`), as (path, name): read-only
    /// for everyone but the policy's admins. `any_closed` spares every write the lock while
    /// there are none.
    closed: RwLock<Vec<(String, String)>>,
    any_closed: AtomicBool,
}

/// Upper bound on cached directory descriptors.
const MAX_CACHED_DIR_FDS: usize = 4096;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these tables half-updated in a way that
    // matters more than refusing service, so recover the guard instead of propagating.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The closed clients of a zone table, as `Fs::set_closed` takes them.
pub fn closed_of(zones: &[crate::format::zones::ZoneRecord]) -> Vec<(String, String)> {
    zones
        .iter()
        .skip(1)
        .filter(|z| z.meta.closed_ms.is_some())
        .map(|z| (z.path.clone(), z.name.clone()))
        .collect()
}

impl Fs {
    pub fn new(vault: &Vault, opts: Options) -> Result<Fs> {
        let root = sys::open_dir(&vault.dir)?;
        let mut zones: Vec<Zone> = vault
            .zones
            .iter()
            .enumerate()
            .map(|(i, z)| Zone::new(z.id, &z.key, z.path.as_bytes(), i))
            .collect();
        for (i, z) in vault.zones.iter().enumerate() {
            if let Some(old) = &z.retiring {
                zones[i].retiring = Some(zones.len());
                zones.push(Zone::new(z.retiring_id(), old, z.path.as_bytes(), i));
            }
        }
        let fs = Self::with_root(root, vault.config.root_dir_id, zones, b"/", opts)?;
        fs.set_closed(closed_of(&vault.zones));
        Ok(fs)
    }

    /// Sets the closed client folders (at mount, and when a client is closed or reopened).
    pub fn set_closed(&self, closed: Vec<(String, String)>) {
        self.any_closed.store(!closed.is_empty(), Ordering::Relaxed);
        *self.closed.write().unwrap_or_else(|p| p.into_inner()) = closed;
    }

    pub(crate) fn any_closed(&self) -> bool {
        self.any_closed.load(Ordering::Relaxed)
    }

    /// The closed client `path` is in, if any.
    pub(crate) fn closed_client(&self, path: &str) -> Option<String> {
        if !self.any_closed.load(Ordering::Relaxed) {
            return None;
        }
        self.closed
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(top, _)| crate::policy::within(path, top))
            .map(|(_, name)| name.clone())
    }

    /// The filesystem of one client's folder alone (a client-scoped mount): `top` is the
    /// backing directory of the client's folder, whose id is `top_id`; only the client's
    /// zone (`id`, `key`, folder `path`) is known, so nothing of any other zone can be
    /// decrypted. Plaintext paths are the full mount's (`/clients/acme/...`).
    pub fn new_scoped(
        top: &std::path::Path,
        top_id: crate::crypto::Id,
        zone: (crate::crypto::Id, &Key32, &str),
        opts: Options,
    ) -> Result<Fs> {
        let root = sys::open_dir(top)?;
        let (id, key, path) = zone;
        let zones = vec![Zone::new(id, key, path.as_bytes(), 0)];
        Self::with_root(root, top_id, zones, path.as_bytes(), opts)
    }

    fn with_root(
        root: OwnedFd,
        root_id: crate::crypto::Id,
        zones: Vec<Zone>,
        root_plain: &[u8],
        opts: Options,
    ) -> Result<Fs> {
        let st = sys::fstat(root.as_fd())?;
        let zones = zones.into_iter().map(Arc::new).collect();
        let root_mode = AtomicU32::new(rootmode::read(root.as_fd()));
        let root_ref = DirRef {
            fd: Arc::new(sys::open_beneath(
                root.as_fd(),
                b"",
                libc::O_PATH | libc::O_DIRECTORY,
                0,
            )?),
            id: root_id,
            gen: 0,
        };
        let mut inodes = InodeTable::new(root_ref);
        inodes.set_root_plain(root_plain);
        let fs = Fs {
            root,
            root_backing_ino: st.st_ino,
            root_mode,
            zones: RwLock::new(zones),
            inodes: Mutex::new(inodes),
            files: file::OpenFiles::default(),
            next_fh: AtomicU64::new(1),
            read_only: AtomicBool::new(opts.read_only),
            opts,
            guard: Guard::default(),
            invalidate: std::sync::OnceLock::new(),
            invalidate_entry: std::sync::OnceLock::new(),
            gate: RwLock::new(()),
            alt_ids: Mutex::new(std::collections::HashMap::new()),
            has_alt_ids: AtomicBool::new(false),
            track_use: AtomicBool::new(false),
            strays: Mutex::new(std::collections::HashSet::new()),
            closed: RwLock::new(Vec::new()),
            any_closed: AtomicBool::new(false),
        };
        fs.refresh_root_gen()?;
        Ok(fs)
    }

    /// Works out which generation the root directory's names use (see `names_generation`).
    fn refresh_root_gen(&self) -> Result<()> {
        let id = lock(&self.inodes)
            .get(ROOT_INO)
            .and_then(|n| n.dir.as_ref().map(|d| d.id))
            .ok_or(Error::Stale)?;
        let zone = lock(&self.inodes).get(ROOT_INO).map_or(0, |n| n.zone);
        let gen = self.names_generation(self.root.as_fd(), &id, zone)?;
        lock(&self.inodes).set_dir_gen(ROOT_INO, gen);
        Ok(())
    }

    /// Installs the policy/audit guard (the daemon does; core unit tests run without).
    pub fn set_guard(&mut self, g: Guard) {
        self.guard = g;
    }

    /// Installs how the daemon tells the kernel about attribute changes the kernel did not
    /// ask for (set once).
    pub fn set_invalidator(&self, f: Invalidate) {
        let _ = self.invalidate.set(f);
    }

    /// Installs how the daemon tells the kernel to forget a cached name (set once).
    pub fn set_entry_invalidator(&self, f: InvalidateEntry) {
        let _ = self.invalidate_entry.set(f);
    }

    /// The daemon changed a name behind the kernel's back (a live rekey replaced a symlink,
    /// a shred removed a client's folder). Never called with the gate held: the kernel may
    /// wait for a request in flight before it answers.
    pub(crate) fn entry_changed(&self, parent: u64, name: &[u8]) {
        if let Some(f) = self.invalidate_entry.get() {
            f(parent, name);
        }
    }

    /// Held by every request for its duration (shared).
    pub fn enter(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Held by one step of a rekey or shred, or while the zone table changes: no request
    /// is in flight meanwhile.
    pub fn exclusive(&self) -> Exclusive<'_> {
        Exclusive(self.gate.write().unwrap_or_else(|p| p.into_inner()))
    }

    /// The daemon changed `ino`'s attributes on its own (set-ID bits cleared by a write): the
    /// kernel's copy must not be served for the rest of its lifetime.
    fn attrs_changed(&self, ino: u64) {
        if let Some(f) = self.invalidate.get() {
            f(ino, false);
        }
    }

    /// Drops what the kernel caches of `ino`, contents included (a shred: pages cached from
    /// before must not be served to a handle that is revoked). Not with the gate held.
    pub(crate) fn contents_gone(&self, ino: u64) {
        if let Some(f) = self.invalidate.get() {
            f(ino, true);
        }
    }

    pub fn strict_atime(&self) -> bool {
        self.opts.strictatime
    }

    pub fn read_only(&self) -> bool {
        self.read_only.load(Ordering::Relaxed)
    }

    /// Lifts the read-only state an interrupted rekey imposed, once it is finished.
    pub fn set_writable(&self) {
        self.read_only.store(false, Ordering::Relaxed);
    }

    fn check_writable(&self) -> Result<()> {
        if self.read_only() {
            Err(Error::ReadOnly)
        } else {
            Ok(())
        }
    }

    fn new_fh(&self) -> u64 {
        self.next_fh.fetch_add(1, Ordering::Relaxed)
    }

    /// Kernel inode number for a backing inode number: the backing root is 1, and a backing
    /// entry that happens to have number 1 takes the root's backing number instead.
    fn fuse_ino(&self, backing_ino: u64) -> u64 {
        if backing_ino == self.root_backing_ino {
            ROOT_INO
        } else if backing_ino == ROOT_INO {
            self.root_backing_ino
        } else {
            backing_ino
        }
    }

    /// Number of inodes currently tracked (for memory tests).
    pub fn tracked_inodes(&self) -> usize {
        lock(&self.inodes).len()
    }

    fn node_info(&self, ino: u64) -> Result<(Vec<u8>, Kind, usize)> {
        let t = lock(&self.inodes);
        let n = t.get(ino).ok_or(Error::Stale)?;
        let path = t.backing_path(ino).ok_or(Error::Stale)?;
        Ok((path, n.kind, n.zone))
    }

    /// Opens the backing object of `ino` itself (never through a symlink).
    fn open_ino(&self, ino: u64, flags: i32) -> Result<OwnedFd> {
        if ino == ROOT_INO {
            return sys::open_beneath(self.root.as_fd(), b"", flags, 0);
        }
        let (dir, name) = self.parent_of(ino)?;
        sys::openat(dir.as_fd(), &name, flags, 0)
    }

    /// The directory holding `ino` and its backing name there. The root has no parent; an
    /// entry removed from the backing directory is not found (an open handle may still serve
    /// it), and one that lost its only known name is stale (the kernel then looks it up).
    fn parent_of(&self, ino: u64) -> Result<(Arc<OwnedFd>, std::ffi::OsString)> {
        if ino == ROOT_INO {
            return Err(Error::Invalid);
        }
        let (parent, name) = {
            let t = lock(&self.inodes);
            let n = t.get(ino).ok_or(Error::Stale)?;
            match n.life {
                Life::Named => {}
                Life::Removed => return Err(Error::NotFound),
                Life::Unnamed => return Err(Error::Stale),
            }
            (n.parent, n.backing.clone())
        };
        Ok((self.dir_fd(parent)?, name))
    }

    /// A descriptor of directory `ino`'s backing directory (for operations that seal no
    /// name: see `dir_of` for those).
    fn dir_fd(&self, ino: u64) -> Result<Arc<OwnedFd>> {
        {
            let t = lock(&self.inodes);
            let n = t.get(ino).ok_or(Error::Stale)?;
            // A removed directory's kept descriptor answers fstat only (`keep_removed_dir`).
            if n.life == Life::Removed {
                return Err(Error::NotFound);
            }
            if let Some(d) = &n.dir {
                return Ok(d.fd.clone());
            }
            if t.cached_fds() >= MAX_CACHED_DIR_FDS {
                if n.kind != Kind::Dir {
                    return Err(Error::NotDir);
                }
                let path = t.backing_path(ino).ok_or(Error::Stale)?;
                drop(t);
                return Ok(Arc::new(self.open_backing_dir(&path)?));
            }
        }
        Ok(self.dir_of(ino)?.1.fd)
    }

    fn open_backing_dir(&self, path: &[u8]) -> Result<OwnedFd> {
        sys::open_beneath(self.root.as_fd(), path, libc::O_PATH | libc::O_DIRECTORY, 0)
    }

    /// Directory `ino`'s zone and its backing directory with the ID its children's names are
    /// sealed with, both of one directory object (`DirRef`): the ID is read through the
    /// descriptor returned, never taken from another directory that once had the number.
    /// The id of directory `ino` (what its children's names are sealed with).
    pub fn dir_id(&self, ino: Ino) -> Result<crate::crypto::Id> {
        Ok(self.dir_of(ino.0)?.1.id)
    }

    fn dir_of(&self, ino: u64) -> Result<(usize, DirRef)> {
        let (path, generation) = {
            let t = lock(&self.inodes);
            let n = t.get(ino).ok_or(Error::Stale)?;
            if n.kind != Kind::Dir {
                return Err(Error::NotDir);
            }
            if n.life == Life::Removed {
                return Err(Error::NotFound);
            }
            if let Some(d) = &n.dir {
                return Ok((n.zone, d.clone()));
            }
            (t.backing_path(ino).ok_or(Error::Stale)?, n.generation)
        };
        let fd = self.open_backing_dir(&path)?;
        let readable = sys::openat(
            fd.as_fd(),
            OsStr::new("."),
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        )?;
        let (id, other) = dir::read_dir_ids(readable.as_fd(), !self.read_only())?;
        if let Some(other) = other {
            self.remember_alt_ids(ino, vec![other]);
        }
        let zone = lock(&self.inodes).get(ino).ok_or(Error::Stale)?.zone;
        let gen = self.names_generation(readable.as_fd(), &id, zone)?;
        let d = DirRef {
            fd: Arc::new(fd),
            id,
            gen,
        };
        // A bounded number of descriptors stay cached (each one is an open file of the
        // daemon); past that, directories are opened (and their IDs read) per request.
        let mut t = lock(&self.inodes);
        t.cache_dir(ino, generation, &d, MAX_CACHED_DIR_FDS);
        let zone = t.get(ino).ok_or(Error::Stale)?.zone;
        Ok((zone, d))
    }

    /// The key generation the names in a directory use: during a rekey a directory's
    /// names are converted all in one step (under the gate), so one name tells for all;
    /// an empty directory takes the current key.
    fn names_generation(
        &self,
        dir: std::os::fd::BorrowedFd<'_>,
        id: &crate::crypto::Id,
        zone: usize,
    ) -> Result<usize> {
        let gens: Vec<usize> = self.generations(zone)?.collect();
        if gens.len() == 1 {
            return Ok(gens[0]);
        }
        for e in sys::read_dir(dir)? {
            let b = e.name.as_bytes();
            if dir::is_internal(b, false) || b.starts_with(b".") {
                continue;
            }
            let Ok(full) = full_encoded(dir, b) else {
                continue;
            };
            for g in &gens {
                if self.zone(*g)?.names.decrypt(id, &full).is_ok() {
                    return Ok(*g);
                }
            }
        }
        Ok(gens[0])
    }

    /// The zone (family: its current key) a new child `name` of directory `parent` belongs to.
    fn child_zone(&self, parent: u64, name: &[u8]) -> Result<usize> {
        let t = lock(&self.inodes);
        let p = t.get(parent).ok_or(Error::Stale)?;
        let mut path = t.plain_path(parent).ok_or(Error::Stale)?;
        if path != b"/" {
            path.push(b'/');
        }
        path.extend_from_slice(name);
        let zones = self.zones.read().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = zones
            .iter()
            .enumerate()
            .position(|(i, z)| z.path == path && z.family == i && !z.erased)
        {
            return Ok(i);
        }
        Ok(zones.get(p.zone).map_or(p.zone, |z| z.family))
    }

    fn zone(&self, idx: usize) -> Result<Arc<Zone>> {
        let zones = self.zones.read().unwrap_or_else(|p| p.into_inner());
        match zones.get(idx) {
            Some(z) if z.erased => Err(Error::NotFound),
            Some(z) if z.locked => Err(Error::ClientLocked(
                String::from_utf8_lossy(&z.path).into_owned(),
            )),
            Some(z) => {
                if self.track_use.load(std::sync::atomic::Ordering::Relaxed) {
                    let now = now_secs();
                    // Stored only when it changes: no cache line bouncing between lookups.
                    if z.last_used.load(std::sync::atomic::Ordering::Relaxed) != now {
                        z.last_used.store(now, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                Ok(z.clone())
            }
            None => Err(Error::Corrupt { what: "zone index" }),
        }
    }

    /// A copy of the zone table (for walks that look at every zone).
    fn zones_now(&self) -> Vec<Arc<Zone>> {
        self.zones.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The key generations an entry of zone `idx` may use: the current one first, then the
    /// retiring one during a rekey (no allocation: this is on every lookup).
    fn generations(&self, idx: usize) -> Result<impl Iterator<Item = usize> + Clone> {
        let fam = self.zone(idx)?.family;
        Ok(std::iter::once(fam).chain(self.zone(fam)?.retiring))
    }

    /// True while some zone is being rekeyed.
    pub fn rekey_pending(&self) -> bool {
        self.zones_now()
            .iter()
            .any(|z| z.retiring.is_some() && !z.erased)
    }

    /// Seals `name` for a child of directory `d`, in the key generation its names use.
    fn seal_in(&self, (_, d): &(usize, DirRef), name: &OsStr) -> Result<Stored> {
        self.zone(d.gen)?.names.encrypt(&d.id, name.as_bytes())
    }

    /// Notes a stray backing name met in directory `ino`; true the first time (to warn once).
    fn note_stray(&self, ino: u64, name: &OsStr) -> bool {
        const MAX_STRAYS: usize = 10_000;
        let mut s = lock(&self.strays);
        s.len() < MAX_STRAYS && s.insert((ino, name.to_os_string()))
    }

    /// How many stray backing names listings have met since the mount (see `note_stray`).
    pub fn strays_seen(&self) -> usize {
        lock(&self.strays).len()
    }

    /// Records other IDs names in directory `ino` may be sealed under.
    fn remember_alt_ids(&self, ino: u64, ids: Vec<Id>) {
        if ids.is_empty() {
            return;
        }
        let mut m = lock(&self.alt_ids);
        let known = m.entry(ino).or_default();
        for id in ids {
            if !known.contains(&id) {
                known.push(id);
            }
        }
        self.has_alt_ids.store(true, Ordering::Relaxed);
    }

    /// The other IDs known for directory `ino` (empty almost always, and then without a lock).
    fn alt_ids_of(&self, ino: u64) -> Vec<Id> {
        if !self.has_alt_ids.load(Ordering::Relaxed) {
            return Vec::new();
        }
        lock(&self.alt_ids).get(&ino).cloned().unwrap_or_default()
    }

    /// The backing name of an existing entry `name`: its encrypted name, or, when there is
    /// no such entry and `name` is how a sync tool's conflict copy is shown, that copy's
    /// backing name (so it can be removed, or renamed to a plain name, which adopts it).
    fn existing_in(&self, parent: u64, pd: &(usize, DirRef), name: &OsStr) -> Result<Stored> {
        let stored = self.seal_in(pd, name)?;
        let d = &pd.1;
        let missing = |s: &Stored| {
            matches!(
                sys::fstatat(d.fd.as_fd(), OsStr::new(s.backing_name())),
                Err(Error::NotFound)
            )
        };
        let alts = self.alt_ids_of(parent);
        if !alts.is_empty() && missing(&stored) {
            for alt in alts {
                let other = self.zone(d.gen)?.names.encrypt(&alt, name.as_bytes())?;
                if !missing(&other) {
                    return Ok(other);
                }
            }
        }
        if conflicts::may_be_display(name.as_bytes())
            && matches!(
                sys::fstatat(d.fd.as_fd(), OsStr::new(stored.backing_name())),
                Err(Error::NotFound)
            )
        {
            if let Some((backing, _)) =
                self.find_conflict(pd.0, d.fd.as_fd(), &d.id, name.as_bytes())?
            {
                return Ok(Stored::Short(backing.to_string_lossy().into_owned()));
            }
        }
        Ok(stored)
    }

    /// Sets owner of a new backing entry to the caller, when the daemon may.
    fn give_to(&self, dir: &OwnedFd, name: &OsStr, who: &Subject, gid: u32) -> Result<()> {
        if self.opts.chown_new {
            sys::fchownat(dir.as_fd(), name, Some(who.uid), Some(gid))?;
        }
        Ok(())
    }

    /// The set-ID bits of `requested` (mode bits after the umask) that a new file keeps, as
    /// ext4 decides at creation: set-user-ID always; set-group-ID with group-execute only if
    /// the creator is root or in the file's group `gid` (xfstests generic/633). The daemon's
    /// chown to the caller clears both, so they are put back afterwards.
    fn kept_set_id(&self, who: &Subject, gid: u32, requested: u32) -> u32 {
        let mut keep = requested & libc::S_ISUID;
        if requested & libc::S_ISGID != 0 {
            let exec = requested & libc::S_IXGRP != 0;
            let member = who.uid == 0 || self.in_group(who, gid);
            if !exec || member {
                keep |= libc::S_ISGID;
            }
        }
        keep
    }

    /// The group a new entry gets: the parent's for setgid directories, else the caller's.
    fn new_gid(&self, parent_dir: &OwnedFd, who: &Subject) -> Result<(u32, bool)> {
        let st = sys::fstat(parent_dir.as_fd())?;
        if st.st_mode & libc::S_ISGID != 0 {
            Ok((st.st_gid, true))
        } else {
            Ok((who.gid, false))
        }
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use crate::crypto::secret::Passphrase;
    use crate::vault::{Vault, KDF_TEST};

    pub const ME: Subject = Subject {
        uid: 0,
        gid: 0,
        pid: 1,
    };

    /// The vault `new_fs` made, unlocked again (as a new mount would).
    pub fn reopen(t: &tempfile::TempDir) -> Vault {
        Vault::unlock(
            &t.path().join("vault"),
            &crate::vault::Unlock::Passphrase(Passphrase::new(b"pw".to_vec())),
            None,
        )
        .unwrap()
    }

    pub fn new_fs() -> (tempfile::TempDir, Fs) {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("vault");
        let (v, _) = Vault::create(
            &dir,
            &Passphrase::new(b"pw".to_vec()),
            "default",
            KDF_TEST,
            None,
        )
        .unwrap();
        let fs = Fs::new(&v, Options::default()).unwrap();
        (t, fs)
    }
}
