//! Changing the zone table while mounted: a client zone is added (empty, or adopting a
//! folder that already holds files), rekeyed, or erased, without a remount. Each change is
//! made with the request gate held exclusively, so no request sees a half-changed table,
//! and entries of the table are never removed or moved (inodes hold their indices).

use super::inode::ROOT_INO;
use super::{lock, Exclusive, Fs, Zone};
use crate::crypto::secret::Key32;
use crate::crypto::Id;
use crate::policy::within;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Fs {
    /// The index of the live zone (its current key) with id `id`.
    pub fn family_of(&self, id: &Id) -> Option<usize> {
        self.zones_now()
            .iter()
            .enumerate()
            .position(|(i, z)| z.family == i && !z.erased && z.id == *id)
    }

    /// Moves tracked inodes (and open files) to other zones: `pick` sees a node's plaintext
    /// path and zone and gives its new zone, if it moves.
    fn rezone_by(&self, pick: impl Fn(&str, usize) -> Option<usize>) {
        let mut t = lock(&self.inodes);
        let mut moves: HashMap<u64, usize> = HashMap::new();
        for ino in t.inos() {
            let (Some(path), Some(zone)) = (t.plain_path(ino), t.get(ino).map(|n| n.zone)) else {
                continue;
            };
            if let Some(z) = pick(&String::from_utf8_lossy(&path), zone) {
                moves.insert(ino, z);
            }
        }
        t.rezone(|ino, _| moves.get(&ino).copied());
        if let Some(z) = moves.get(&ROOT_INO) {
            t.set_dir_gen(ROOT_INO, *z);
        }
        drop(t);
        for (ino, (node, _)) in lock(&self.files.nodes).iter() {
            if let Some(z) = moves.get(ino) {
                node.zone.store(*z, Ordering::Relaxed);
            }
        }
    }

    fn push_zone(zones: &mut Vec<Arc<Zone>>, z: Zone) -> usize {
        zones.push(Arc::new(z));
        zones.len() - 1
    }

    /// Adds client zone `id` at `path`, whose folder is new or empty. Returns its index.
    pub fn add_zone(&self, _held: &Exclusive<'_>, id: Id, key: &Key32, path: &str) -> usize {
        let idx = {
            let mut zones = self.zones.write().unwrap_or_else(|p| p.into_inner());
            let n = zones.len();
            Self::push_zone(&mut zones, Zone::new(id, key, path.as_bytes(), n))
        };
        self.rezone_by(|p, _| (p == path).then_some(idx));
        idx
    }

    /// Adds client zone `id` at `path` over a folder that holds files of the zone with id
    /// `from_id` and key `from_key`: they are that zone's until `rekey_zone` has moved them.
    pub fn adopt_zone(
        &self,
        _held: &Exclusive<'_>,
        id: Id,
        key: &Key32,
        path: &str,
        from_id: Id,
        from_key: &Key32,
    ) -> usize {
        let (k, j) = {
            let mut zones = self.zones.write().unwrap_or_else(|p| p.into_inner());
            let k = zones.len();
            let mut cur = Zone::new(id, key, path.as_bytes(), k);
            cur.retiring = Some(k + 1);
            Self::push_zone(&mut zones, cur);
            let j = Self::push_zone(&mut zones, Zone::new(from_id, from_key, path.as_bytes(), k));
            (k, j)
        };
        self.rezone_by(|p, _| {
            if p == path {
                Some(k)
            } else if within(p, path) {
                Some(j)
            } else {
                None
            }
        });
        k
    }

    /// Starts a rekey of zone `family`: `new` becomes its key; what is sealed with the old
    /// one is read with it until `rekey_zone` has converted it.
    pub fn begin_rekey(
        &self,
        _held: &Exclusive<'_>,
        family: usize,
        new: &Key32,
    ) -> crate::error::Result<()> {
        let j = {
            let mut zones = self.zones.write().unwrap_or_else(|p| p.into_inner());
            let old = zones
                .get(family)
                .cloned()
                .ok_or(crate::error::Error::Corrupt { what: "zone index" })?;
            let j = zones.len();
            let mut cur = Zone::new(old.id, new, &old.path, family);
            cur.retiring = Some(j);
            zones[family] = Arc::new(cur);
            Self::push_zone(&mut zones, Zone::new(old.id, &old.key, &old.path, family));
            j
        };
        self.rezone_by(|_, z| (z == family).then_some(j));
        Ok(())
    }

    /// Ends a rekey (or adoption) of zone `family` once `rekey_zone` has converted
    /// everything: the retiring key is dropped from memory.
    pub fn end_rekey(&self, _held: &Exclusive<'_>, family: usize) {
        let j = {
            let mut zones = self.zones.write().unwrap_or_else(|p| p.into_inner());
            let Some(cur) = zones.get(family).cloned() else {
                return;
            };
            let Some(j) = cur.retiring else { return };
            let mut done = Zone::new(cur.id, &cur.key, &cur.path, family);
            done.retiring = None;
            zones[family] = Arc::new(done);
            zones[j] = Arc::new(erased(&zones[j]));
            j
        };
        self.rezone_by(|_, z| (z == j).then_some(family));
        lock(&self.inodes).uncache_gen(j);
    }

    /// Erases zone `family` (a shred): nothing in it can be looked up or opened from now on,
    /// and every open handle of its files fails. Returns how many files were open.
    pub fn erase_zone(&self, _held: &Exclusive<'_>, family: usize) -> usize {
        {
            let mut zones = self.zones.write().unwrap_or_else(|p| p.into_inner());
            let Some(cur) = zones.get(family).cloned() else {
                return 0;
            };
            if let Some(j) = cur.retiring {
                zones[j] = Arc::new(erased(&zones[j]));
            }
            zones[family] = Arc::new(erased(&cur));
        }
        self.revoke_family(family)
    }

    /// The folder at plaintext `path`, made (with its missing parents, mode 0755) if `make`;
    /// returns its inode, whether it holds anything, and the names it made (parent inode,
    /// name: the kernel may hold them as absent). The daemon's own walk: no policy, names in
    /// any key generation.
    #[allow(clippy::type_complexity)]
    pub fn folder_at(
        &self,
        _held: &Exclusive<'_>,
        path: &str,
        make: bool,
    ) -> crate::error::Result<Option<(u64, bool, Vec<(u64, Vec<u8>)>)>> {
        use crate::error::Error;
        use std::ffi::OsStr;
        let me = super::Subject {
            uid: crate::sys::getuid(),
            gid: crate::sys::getgid(),
            pid: std::process::id(),
        };
        let mut made = Vec::new();
        let mut ino = ROOT_INO;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            ino = match self.lookup_inner(&me, ino, OsStr::new(part)) {
                Ok(a) if a.kind != super::inode::Kind::Dir => {
                    return Err(Error::Usage(format!("{path}: '{part}' is not a directory")))
                }
                Ok(a) => a.ino.0,
                Err(Error::NotFound) if make => {
                    made.push((ino, part.as_bytes().to_vec()));
                    self.mkdir_inner(&me, ino, OsStr::new(part), 0o755, 0)?
                        .ino
                        .0
                }
                Err(Error::NotFound) => return Ok(None),
                Err(e) => return Err(e),
            };
        }
        Ok(Some((ino, self.list_dir(ino)?.len() > 2, made)))
    }

    /// After a shred: the kernel forgets every name and cached page of the zone's entries
    /// (`names` from `zone_names`, taken before). Not with the gate held.
    pub fn forget_zone(&self, names: &[(u64, u64, Vec<u8>)]) {
        for (ino, parent, name) in names {
            self.contents_gone(*ino);
            self.entry_changed(*parent, name);
        }
    }

    /// Entries of zone `family` the kernel may hold (inode, parent inode, plaintext name).
    pub fn zone_names(&self, family: usize) -> Vec<(u64, u64, Vec<u8>)> {
        let zones = self.zones_now();
        let t = lock(&self.inodes);
        t.inos()
            .into_iter()
            .filter_map(|ino| {
                let n = t.get(ino)?;
                let z = zones.get(n.zone)?;
                (z.family == family && ino != ROOT_INO).then(|| (ino, n.parent, n.plain.clone()))
            })
            .collect()
    }
}

impl Fs {
    /// Locks zone `family` (`tutela lock`): its key leaves memory (the zone's entry is
    /// replaced by a keyless placeholder; the old one is dropped, and its key zeroized, when
    /// the last request using it ends), and every handle of its files is revoked. Returns how
    /// many were open. A zone being rekeyed cannot be locked (the rekey needs both keys).
    pub fn lock_zone(&self, _held: &Exclusive<'_>, family: usize) -> crate::error::Result<usize> {
        {
            let mut zones = self.zones.write().unwrap_or_else(|p| p.into_inner());
            let Some(cur) = zones.get(family).cloned() else {
                return Err(crate::error::Error::NotFound);
            };
            if cur.retiring.is_some() {
                return Err(crate::error::Error::Busy(
                    "the client is being rekeyed: lock it when the rekey is done".into(),
                ));
            }
            let mut l = erased(&cur);
            l.erased = false;
            l.locked = true;
            zones[family] = Arc::new(l);
        }
        Ok(self.revoke_family(family))
    }

    /// Unlocks zone `family` with its key again.
    pub fn unlock_zone(&self, _held: &Exclusive<'_>, family: usize, key: &Key32) {
        let mut zones = self.zones.write().unwrap_or_else(|p| p.into_inner());
        if let Some(cur) = zones.get(family).cloned() {
            if cur.locked {
                zones[family] = Arc::new(Zone::new(cur.id, key, &cur.path, family));
            }
        }
    }

    /// Files of zone `family` open now.
    pub fn open_in_family(&self, family: usize) -> usize {
        let zones = self.zones_now();
        lock(&self.files.nodes)
            .values()
            .filter(|(node, _)| {
                let z = node.zone.load(Ordering::Relaxed);
                zones.get(z).is_some_and(|z| z.family == family)
            })
            .count()
    }

    /// Who holds files of zone family `family` open: (uid, pid) of each opener, once each.
    pub fn openers_in_family(&self, family: usize) -> Vec<(u32, u32)> {
        let zones = self.zones_now();
        let mut out: Vec<(u32, u32)> = lock(&self.files.handles)
            .values()
            .filter(|h| {
                let z = h.node.zone.load(Ordering::Relaxed);
                zones.get(z).is_some_and(|z| z.family == family)
            })
            .map(|h| h.opener)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// From now on, lookups note when each zone was last used (`--client-idle`).
    pub fn track_client_use(&self) {
        self.track_use.store(true, Ordering::Relaxed);
    }

    /// Client zones (current key, not locked, not erased, not being rekeyed) that nobody has
    /// used for `idle_secs` and that have no open file: what `--client-idle` locks (after
    /// `track_client_use`).
    pub fn idle_families(&self, idle_secs: u64) -> Vec<usize> {
        let now = super::now_secs();
        self.zones_now()
            .iter()
            .enumerate()
            .filter(|(i, z)| {
                *i > 0
                    && z.family == *i
                    && !z.erased
                    && !z.locked
                    && z.retiring.is_none()
                    && now.saturating_sub(z.last_used.load(Ordering::Relaxed)) >= idle_secs
            })
            .map(|(i, _)| i)
            .filter(|i| self.open_in_family(*i) == 0)
            .collect()
    }

    /// The ids of zones `families`.
    pub fn zone_ids(&self, families: &[usize]) -> Vec<crate::crypto::Id> {
        let zones = self.zones_now();
        families
            .iter()
            .filter_map(|i| zones.get(*i).map(|z| z.id))
            .collect()
    }

    /// Whether zone `family` is locked now.
    pub fn is_locked(&self, family: usize) -> bool {
        self.zones_now().get(family).is_some_and(|z| z.locked)
    }
}

/// The placeholder of an erased zone: same id and path, no key.
fn erased(z: &Zone) -> Zone {
    let mut e = Zone::new(z.id, &Key32::from_bytes([0; 32]), &z.path, z.family);
    e.erased = true;
    e
}
