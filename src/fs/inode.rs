//! The inode table: which backing entry each kernel inode number stands for. Entries live while
//! the kernel holds a lookup reference or a child entry still names them as parent, and are
//! evicted on FORGET, so memory does not grow with the number of files ever seen.

use crate::crypto::Id;
use std::collections::HashMap;
use std::ffi::OsString;

pub const ROOT_INO: u64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDev,
    BlockDev,
}

impl Kind {
    pub fn from_mode(mode: u32) -> Kind {
        match mode & libc::S_IFMT {
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFLNK => Kind::Symlink,
            libc::S_IFIFO => Kind::Fifo,
            libc::S_IFSOCK => Kind::Socket,
            libc::S_IFCHR => Kind::CharDev,
            libc::S_IFBLK => Kind::BlockDev,
            _ => Kind::File,
        }
    }

    pub fn from_dtype(t: u8) -> Option<Kind> {
        Some(match t {
            libc::DT_DIR => Kind::Dir,
            libc::DT_LNK => Kind::Symlink,
            libc::DT_FIFO => Kind::Fifo,
            libc::DT_SOCK => Kind::Socket,
            libc::DT_CHR => Kind::CharDev,
            libc::DT_BLK => Kind::BlockDev,
            libc::DT_REG => Kind::File,
            _ => return None,
        })
    }
}

/// A directory's backing descriptor and the ID its children's names are sealed with, read
/// through that very descriptor. They are cached together or not at all: the descriptor pins
/// the backing inode, so while the pair is cached its number cannot be handed to a new
/// directory, and a name is never sealed under one directory's ID and written into another.
#[derive(Debug, Clone)]
pub struct DirRef {
    pub fd: std::sync::Arc<std::os::fd::OwnedFd>,
    pub id: Id,
    /// The zone key generation its children's names are sealed with (they differ only
    /// while a rekey is under way).
    pub gen: usize,
}

/// Whether a node's backing entry is still where the table says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    /// Reachable under its recorded name.
    Named,
    /// Its only known name was unlinked, but the file lives on under a name the kernel has
    /// not shown us yet (a hard link): operations by path answer ESTALE, so the kernel looks
    /// the name up again.
    Unnamed,
    /// Its last name is gone from the backing directory. The backing filesystem may hand its
    /// inode number to the next new entry; that entry then gets a new generation.
    Removed,
}

#[derive(Debug)]
pub struct Node {
    pub parent: u64,
    /// Name in the backing directory (ciphertext, or the hashed long form).
    pub backing: OsString,
    /// Plaintext name (for zone membership, policy and audit; never logged).
    pub plain: Vec<u8>,
    pub kind: Kind,
    /// Index into the filesystem's zone list: the zone this entry belongs to.
    pub zone: usize,
    /// The backing directory and its ID (directories only; see `DirRef`). It follows the
    /// directory through renames.
    pub dir: Option<DirRef>,
    /// The FUSE generation: (inode number, generation) names one entry for the life of the
    /// mount, so the kernel never mistakes a new entry for a removed one that had its number.
    pub generation: u64,
    pub life: Life,
    /// Other names of a hard-linked file that the kernel has seen: when the primary name is
    /// unlinked, the inode is reached through one of these (the kernel may still hold a
    /// cached dentry for it). Their parents are not reference-counted; a name whose parent
    /// was evicted is dropped when it is needed.
    alt: Vec<(u64, OsString, Vec<u8>)>,
    nlookup: u64,
    children: u64,
}

/// At most this many other names are remembered per inode.
const MAX_ALT_NAMES: usize = 8;

#[derive(Debug)]
pub struct InodeTable {
    nodes: HashMap<u64, Node>,
    /// How many nodes hold a cached directory descriptor.
    fds: usize,
    /// The last generation handed out (unique for the life of the mount).
    last_generation: u64,
    /// The plaintext path the root stands for: empty (`/`) for a whole vault, the client's
    /// folder (`/clients/acme`) for a client-scoped mount, so that the policy and the audit
    /// log see the same paths as on a full mount.
    root_plain: Vec<u8>,
}

impl InodeTable {
    /// A table holding the root, whose directory (`root`) is always known.
    pub fn new(root: DirRef) -> InodeTable {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT_INO,
            Node {
                parent: 0,
                backing: OsString::new(),
                plain: Vec::new(),
                kind: Kind::Dir,
                zone: 0,
                dir: Some(root),
                generation: 0,
                life: Life::Named,
                alt: Vec::new(),
                nlookup: 1,
                children: 0,
            },
        );
        InodeTable {
            nodes,
            fds: 0,
            last_generation: 0,
            root_plain: Vec::new(),
        }
    }

    /// Makes the root stand for plaintext path `path` (a client-scoped mount's folder).
    pub fn set_root_plain(&mut self, path: &[u8]) {
        self.root_plain = if path == b"/" {
            Vec::new()
        } else {
            path.to_vec()
        };
    }

    /// Caches directory `dir` on `ino` unless `max` are cached already or the node is no
    /// longer the one of generation `generation` (removed, or its number reused meanwhile).
    pub fn cache_dir(&mut self, ino: u64, generation: u64, dir: &DirRef, max: usize) {
        if self.fds >= max {
            return;
        }
        if let Some(n) = self.nodes.get_mut(&ino) {
            if n.dir.is_none()
                && n.kind == Kind::Dir
                && n.generation == generation
                && n.life == Life::Named
            {
                n.dir = Some(dir.clone());
                self.fds += 1;
            }
        }
    }

    /// Sets the names generation of a cached directory (the root's is always cached).
    pub fn set_dir_gen(&mut self, ino: u64, gen: usize) {
        if let Some(d) = self.nodes.get_mut(&ino).and_then(|n| n.dir.as_mut()) {
            d.gen = gen;
        }
    }

    /// Moves nodes to other zones (a zone's generations were renumbered by a rekey or an
    /// adoption): `f` gives a node's new zone, or None to leave it. Cached directories of
    /// moved nodes are dropped (their names generation is worked out again), the root's
    /// excepted (its caller sets it).
    pub fn rezone(&mut self, f: impl Fn(u64, &Node) -> Option<usize>) {
        let moves: Vec<(u64, usize)> = self
            .nodes
            .iter()
            .filter_map(|(i, n)| f(*i, n).map(|z| (*i, z)))
            .collect();
        for (ino, zone) in moves {
            if let Some(n) = self.nodes.get_mut(&ino) {
                n.zone = zone;
                if ino != ROOT_INO {
                    Self::drop_dir(&mut self.fds, n);
                }
            }
        }
    }

    /// Gives directory `ino`, about to be recorded as removed, a descriptor of its backing
    /// directory (already unlinked) for `getattr` to answer from. No names are ever sealed in
    /// it (creating in a removed directory fails in the backing filesystem).
    pub fn keep_removed_dir(&mut self, ino: u64, fd: std::os::fd::OwnedFd) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            if n.kind == Kind::Dir {
                if n.dir.is_none() {
                    self.fds += 1;
                }
                n.dir = Some(DirRef {
                    fd: std::sync::Arc::new(fd),
                    id: [0; 16],
                    gen: n.zone,
                });
            }
        }
    }

    /// Forgets the cached directory of `ino` (its names were converted: look again).
    pub fn uncache_dir(&mut self, ino: u64) {
        if ino == ROOT_INO {
            return;
        }
        if let Some(n) = self.nodes.get_mut(&ino) {
            Self::drop_dir(&mut self.fds, n);
        }
    }

    /// Forgets cached directories whose names use generation `gen` (it was retired).
    pub fn uncache_gen(&mut self, gen: usize) {
        let fds = &mut self.fds;
        for (ino, n) in self.nodes.iter_mut() {
            if *ino != ROOT_INO && n.dir.as_ref().is_some_and(|d| d.gen == gen) {
                Self::drop_dir(fds, n);
            }
        }
    }

    /// Every node with its number (for rezoning by path).
    pub fn inos(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    pub fn cached_fds(&self) -> usize {
        self.fds
    }

    pub fn get(&self, ino: u64) -> Option<&Node> {
        self.nodes.get(&ino)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    fn drop_dir(fds: &mut usize, n: &mut Node) {
        if n.dir.take().is_some() && n.parent != 0 {
            *fds -= 1;
        }
    }

    /// Records that the kernel learnt `ino` as (`parent`, name); counts one lookup unless
    /// `count` is false (for entries reported without a lookup reference). Returns the
    /// entry's generation. A number whose entry was removed (or that now names another kind
    /// of entry) starts a new generation with nothing cached: whatever the kernel still holds
    /// under the old one is a different, dead inode to it.
    #[allow(clippy::too_many_arguments)]
    pub fn remember(
        &mut self,
        ino: u64,
        parent: u64,
        backing: OsString,
        plain: Vec<u8>,
        kind: Kind,
        zone: usize,
        count: bool,
    ) -> u64 {
        if ino == ROOT_INO {
            return 0;
        }
        let add = u64::from(count);
        let (old_parent, generation) = match self.nodes.get_mut(&ino) {
            Some(n) => {
                // Lookups of the old generation stay counted: the kernel forgets them by
                // number, not by generation.
                n.nlookup += add;
                if n.life == Life::Removed || n.kind != kind {
                    self.last_generation += 1;
                    n.generation = self.last_generation;
                    Self::drop_dir(&mut self.fds, n);
                    n.alt.clear();
                } else if kind != Kind::Dir
                    && n.life == Life::Named
                    && (n.parent != parent || n.backing != backing)
                {
                    // Another name of the same file: keep the old one as an alternative.
                    n.alt.retain(|(p, b, _)| !(*p == parent && *b == backing));
                    if n.alt.len() < MAX_ALT_NAMES {
                        n.alt.push((n.parent, n.backing.clone(), n.plain.clone()));
                    }
                }
                n.life = Life::Named;
                n.kind = kind;
                n.zone = zone;
                n.backing = backing;
                n.plain = plain;
                let old = n.parent;
                n.parent = parent;
                (Some(old), n.generation)
            }
            None => {
                self.last_generation += 1;
                self.nodes.insert(
                    ino,
                    Node {
                        parent,
                        backing,
                        plain,
                        kind,
                        zone,
                        dir: None,
                        generation: self.last_generation,
                        life: Life::Named,
                        alt: Vec::new(),
                        nlookup: add,
                        children: 0,
                    },
                );
                (None, self.last_generation)
            }
        };
        if old_parent != Some(parent) {
            if let Some(p) = self.nodes.get_mut(&parent) {
                p.children += 1;
            }
            if let Some(old) = old_parent {
                self.release_child(old);
            }
        }
        if !count {
            self.maybe_evict(ino);
        }
        generation
    }

    /// Records that `ino`'s last name (`parent`, `backing`) was removed from the backing
    /// directory (unlink of the last link, rmdir, or replaced by a rename). Nothing cached
    /// for it is used again, and its number gets a new generation when it is reused.
    pub fn removed(&mut self, ino: u64, parent: u64, backing: &std::ffi::OsStr) {
        if ino == ROOT_INO {
            return;
        }
        if let Some(n) = self.nodes.get_mut(&ino) {
            if n.parent == parent && n.backing == backing {
                n.life = Life::Removed;
                n.alt.clear();
                // A removed directory keeps the descriptor `keep_removed_dir` gave it (for
                // fstat through a handle still open); anything else cached goes.
                if n.kind != Kind::Dir {
                    Self::drop_dir(&mut self.fds, n);
                }
            } else {
                n.alt.retain(|(p, b, _)| !(*p == parent && b == backing));
            }
        }
    }

    /// Forgets the name (`parent`, `backing`) of `ino` after it was unlinked or renamed over
    /// while other links remain; if it was the primary name, another known name of the file
    /// takes its place, or the node is `Unnamed` until the kernel looks one up.
    pub fn unlinked(&mut self, ino: u64, parent: u64, backing: &std::ffi::OsStr) {
        let alts = match self.nodes.get_mut(&ino) {
            Some(n) if n.parent == parent && n.backing == backing => std::mem::take(&mut n.alt),
            Some(n) => {
                n.alt.retain(|(p, b, _)| !(*p == parent && b == backing));
                return;
            }
            None => return,
        };
        let mut alts = alts;
        while let Some((p, b, plain)) = alts.pop() {
            if self.nodes.contains_key(&p) {
                self.moved(ino, p, b, plain);
                if let Some(n) = self.nodes.get_mut(&ino) {
                    n.alt = alts;
                }
                return;
            }
        }
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.life = Life::Unnamed;
        }
    }

    /// Records a rename of the name `from` of `ino`: the primary name moves, or, for another
    /// hard-link name, that alternative moves.
    pub fn renamed(
        &mut self,
        ino: u64,
        from: (u64, &std::ffi::OsStr),
        parent: u64,
        backing: OsString,
        plain: Vec<u8>,
    ) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            if n.parent != from.0 || n.backing != from.1 {
                n.alt.retain(|(p, b, _)| !(*p == from.0 && b == from.1));
                if n.alt.len() < MAX_ALT_NAMES {
                    n.alt.push((parent, backing, plain));
                }
                return;
            }
        }
        self.moved(ino, parent, backing, plain);
    }

    /// Moves an entry after a rename (no change in lookup count).
    pub fn moved(&mut self, ino: u64, parent: u64, backing: OsString, plain: Vec<u8>) {
        let old = match self.nodes.get_mut(&ino) {
            Some(n) => {
                n.backing = backing;
                n.plain = plain;
                if n.life == Life::Unnamed {
                    n.life = Life::Named;
                }
                let old = n.parent;
                n.parent = parent;
                old
            }
            None => return,
        };
        if old != parent {
            if let Some(p) = self.nodes.get_mut(&parent) {
                p.children += 1;
            }
            self.release_child(old);
        }
    }

    pub fn forget(&mut self, ino: u64, n: u64) {
        if ino == ROOT_INO {
            return;
        }
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.nlookup = node.nlookup.saturating_sub(n);
        }
        self.maybe_evict(ino);
    }

    fn release_child(&mut self, parent: u64) {
        if let Some(p) = self.nodes.get_mut(&parent) {
            p.children = p.children.saturating_sub(1);
        }
        self.maybe_evict(parent);
    }

    fn maybe_evict(&mut self, ino: u64) {
        let mut cur = ino;
        while cur != ROOT_INO {
            let parent = match self.nodes.get(&cur) {
                Some(n) if n.nlookup == 0 && n.children == 0 => n.parent,
                _ => return,
            };
            if self.nodes.remove(&cur).is_some_and(|n| n.dir.is_some()) {
                self.fds -= 1;
            }
            match self.nodes.get_mut(&parent) {
                Some(p) => p.children = p.children.saturating_sub(1),
                None => return,
            }
            cur = parent;
        }
    }

    /// The chain of backing names from the root to `ino` ("" for the root).
    pub fn backing_path(&self, ino: u64) -> Option<Vec<u8>> {
        let mut parts: Vec<&OsString> = Vec::new();
        let mut cur = ino;
        let mut guard = 0;
        while cur != ROOT_INO {
            let n = self.nodes.get(&cur).filter(|n| n.life == Life::Named)?;
            parts.push(&n.backing);
            cur = n.parent;
            guard += 1;
            if guard > 4096 {
                return None;
            }
        }
        let mut out = Vec::new();
        for p in parts.iter().rev() {
            if !out.is_empty() {
                out.push(b'/');
            }
            out.extend_from_slice(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()));
        }
        Some(out)
    }

    /// Every (parent, plaintext name) the kernel may hold a cached entry for.
    pub fn names(&self) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::with_capacity(self.nodes.len());
        for (ino, n) in &self.nodes {
            if *ino == ROOT_INO || n.life != Life::Named {
                continue;
            }
            out.push((n.parent, n.plain.clone()));
            out.extend(n.alt.iter().map(|(p, _, plain)| (*p, plain.clone())));
        }
        out
    }

    /// Every directory inode the kernel knows of, the root included.
    pub fn dirs(&self) -> Vec<u64> {
        let mut out: Vec<u64> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.kind == Kind::Dir && n.life == Life::Named)
            .map(|(ino, _)| *ino)
            .collect();
        if !out.contains(&ROOT_INO) {
            out.push(ROOT_INO);
        }
        out
    }

    /// The plaintext path of `ino` ("/" for the root), for zone/policy/audit decisions.
    pub fn plain_path(&self, ino: u64) -> Option<Vec<u8>> {
        let mut parts: Vec<&[u8]> = Vec::new();
        let mut cur = ino;
        let mut guard = 0;
        while cur != ROOT_INO {
            let n = self.nodes.get(&cur).filter(|n| n.life == Life::Named)?;
            parts.push(&n.plain);
            cur = n.parent;
            guard += 1;
            if guard > 4096 {
                return None;
            }
        }
        let mut out = self.root_plain.clone();
        for p in parts.iter().rev() {
            out.push(b'/');
            out.extend_from_slice(p);
        }
        if out.is_empty() {
            out.push(b'/');
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> OsString {
        OsString::from(s)
    }

    fn table() -> InodeTable {
        InodeTable::new(root_ref([1; 16]))
    }

    fn root_ref(id: Id) -> DirRef {
        let fd = std::fs::File::open("/").unwrap();
        DirRef {
            fd: std::sync::Arc::new(fd.into()),
            id,
            gen: 0,
        }
    }

    #[test]
    fn a_removed_directorys_number_reused_by_a_new_directory_starts_afresh() {
        let mut t = table();
        let g1 = t.remember(10, ROOT_INO, os("A"), b"a".to_vec(), Kind::Dir, 0, true);
        t.cache_dir(10, g1, &root_ref([7; 16]), 10);
        assert_eq!(t.cached_fds(), 1);
        t.removed(10, ROOT_INO, &os("A"));
        // A removed directory keeps its descriptor for fstat only: `Fs::dir_of` refuses a
        // removed node before it looks at the cache.
        assert_eq!(t.get(10).unwrap().life, Life::Removed);
        assert!(t.backing_path(10).is_none(), "a removed entry has no path");
        // The kernel has not forgotten the old directory yet when the number comes back.
        let g2 = t.remember(10, ROOT_INO, os("B"), b"b".to_vec(), Kind::Dir, 0, true);
        assert_ne!(g1, g2, "a reused number is a new generation");
        let n = t.get(10).unwrap();
        assert!(n.dir.is_none(), "the old directory's ID is not inherited");
        assert_eq!(t.plain_path(10).unwrap(), b"/b");
        // A late cache fill for the old generation is refused.
        t.cache_dir(10, g1, &root_ref([7; 16]), 10);
        assert!(t.get(10).unwrap().dir.is_none());
        // Both generations' lookups are forgotten by number: the node lives until both are.
        t.forget(10, 1);
        assert!(t.get(10).is_some());
        t.forget(10, 1);
        assert!(t.get(10).is_none());
    }

    #[test]
    fn a_removed_files_number_reused_by_another_kind_starts_afresh() {
        let mut t = table();
        let g1 = t.remember(11, ROOT_INO, os("F"), b"f".to_vec(), Kind::File, 0, true);
        t.removed(11, ROOT_INO, &os("F"));
        let g2 = t.remember(11, ROOT_INO, os("D"), b"d".to_vec(), Kind::Dir, 0, true);
        assert_ne!(g1, g2);
        assert_eq!(t.get(11).unwrap().kind, Kind::Dir);
        // Same kind, same name, removed in between: still a new generation.
        t.removed(11, ROOT_INO, &os("D"));
        let g3 = t.remember(11, ROOT_INO, os("D"), b"d".to_vec(), Kind::Dir, 0, true);
        assert!(g3 != g2 && g3 != g1);
        // A lookup of a live entry keeps its generation.
        let g4 = t.remember(11, ROOT_INO, os("D"), b"d".to_vec(), Kind::Dir, 0, true);
        assert_eq!(g3, g4);
    }

    #[test]
    fn a_hard_link_whose_known_name_is_unlinked_is_stale_until_looked_up_again() {
        let mut t = table();
        let g = t.remember(12, ROOT_INO, os("X"), b"x".to_vec(), Kind::File, 0, true);
        t.unlinked(12, ROOT_INO, &os("X"));
        assert_eq!(t.get(12).unwrap().life, Life::Unnamed);
        assert!(t.backing_path(12).is_none(), "the old name is not used");
        let again = t.remember(12, ROOT_INO, os("Y"), b"y".to_vec(), Kind::File, 0, true);
        assert_eq!(
            g, again,
            "the same file keeps its generation (open files stay valid)"
        );
        assert_eq!(t.backing_path(12).unwrap(), b"Y");
    }

    #[test]
    fn forget_evicts_leaf_then_unreferenced_parents() {
        let mut t = table();
        t.remember(10, ROOT_INO, os("A"), b"a".to_vec(), Kind::Dir, 0, true);
        t.remember(11, 10, os("B"), b"b".to_vec(), Kind::File, 0, true);
        assert_eq!(t.backing_path(11).unwrap(), b"A/B");
        assert_eq!(t.plain_path(11).unwrap(), b"/a/b");
        t.forget(10, 1);
        assert!(t.get(10).is_some(), "parent stays while a child names it");
        t.forget(11, 1);
        assert!(t.get(11).is_none());
        assert!(t.get(10).is_none());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn move_updates_paths() {
        let mut t = table();
        t.remember(10, ROOT_INO, os("A"), b"a".to_vec(), Kind::Dir, 0, true);
        t.remember(11, ROOT_INO, os("B"), b"b".to_vec(), Kind::File, 0, true);
        t.moved(11, 10, os("C"), b"c".to_vec());
        assert_eq!(t.backing_path(11).unwrap(), b"A/C");
        t.forget(10, 1);
        assert!(t.get(10).is_some());
        t.forget(11, 1);
        assert_eq!(t.len(), 1);
    }
}
