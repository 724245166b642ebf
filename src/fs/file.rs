//! File contents: open/create, block-wise read and write (read-modify-write only for partial
//! blocks at the edges of a request), truncate, fallocate, fsync. Per-inode state (the file's
//! cipher, derived once) is shared by every handle of the inode and guarded by one RwLock, so
//! concurrent readers and writers of one file see consistent data.

use super::stream::Stream;
use super::{lock, Attr, Fh, Fs, Ino, Subject};
use crate::crypto::content::{self, FileCipher, BLOCK, CT_BLOCK, HEADER_LEN, OVERHEAD};
use crate::crypto::kdf;
use crate::error::{Error, Result};
use crate::sys;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::LocalKey;

pub(super) enum Content {
    /// No header yet: the file is empty.
    Empty,
    Ready(Box<FileCipher>),
    /// The header does not parse: reads and writes fail with EIO until truncated to 0.
    Damaged,
}

pub(super) struct FileNode {
    /// The zone key generation the content is sealed with (a live rekey moves it).
    pub(super) zone: AtomicUsize,
    pub(super) content: RwLock<Content>,
    /// Its client was shredded: every handle fails from now on.
    revoked: AtomicBool,
}

pub(super) struct Handle {
    pub ino: u64,
    pub fd: OwnedFd,
    pub(super) node: Arc<FileNode>,
    /// Who opened it (uid, pid): a refused `client close` names them.
    pub(super) opener: (u32, u32),
    reads: Mutex<Stream>,
    writes: Mutex<Stream>,
}

impl Handle {
    /// Notes an access of plaintext `[off, end)` stored as ciphertext `[ct_start, ct_end)`
    /// and passes the streaming hints on to the kernel. `old`: the access reads or rewrites
    /// ciphertext that was already there (not an append).
    fn streamed(
        &self,
        files: &OpenFiles,
        (off, end): (u64, u64),
        (ct_start, ct_end): (u64, u64),
        write: bool,
        old: bool,
    ) {
        let s = if write { &self.writes } else { &self.reads };
        let advice = lock(s).advance(off, end, ct_start, ct_end, write);
        if let Some((at, len)) = advice.write_back {
            sys::start_writeback(self.fd.as_fd(), at, len);
        }
        if let Some((at, len)) = advice.drop {
            sys::drop_cached(self.fd.as_fd(), at, len);
            files.dropped_from(self.ino);
        } else if advice.fresh && old && off > 0 && files.take_dropped(self.ino) {
            // (A run starting at offset 0 is most likely another front-to-back pass, which
            // readahead serves; the next access elsewhere decides.)
            self.refill();
        }
    }

    /// Asks for the whole ciphertext back in the page cache, in the background: one
    /// sequential sweep instead of a disk wait per block for the random accesses to come.
    /// Files large next to memory are left to fetch what they touch.
    fn refill(&self) {
        let Ok(len) = ct_len(&self.fd) else { return };
        if len == 0 || len > refill_limit() {
            return;
        }
        let Ok(fd) = self.fd.try_clone() else { return };
        // The sweep allocates and queues up to `len` of page cache: not inside a request.
        let _ = std::thread::Builder::new()
            .name("tutela-refill".into())
            .spawn(move || sys::prefetch(fd.as_fd(), 0, len));
    }
}

/// Largest ciphertext brought back whole after a drop: 1/32 of the machine's memory.
fn refill_limit() -> u64 {
    static LIMIT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| sys::total_memory().map_or(256 << 20, |m| m / 32))
}

/// Files whose ciphertext was dropped from the page cache are remembered by inode, up to
/// this many (the oldest are forgotten first; forgetting only costs speed).
const DROPPED_MAX: usize = 256;

#[derive(Default)]
pub(super) struct OpenFiles {
    pub(super) handles: Mutex<HashMap<u64, Arc<Handle>>>,
    pub(super) nodes: Mutex<HashMap<u64, (Arc<FileNode>, usize)>>,
    /// Inodes with ciphertext dropped behind a stream, oldest first. Outlives the handles:
    /// a file is typically streamed through one open and patched through the next.
    dropped: Mutex<std::collections::VecDeque<u64>>,
}

impl OpenFiles {
    fn dropped_from(&self, ino: u64) {
        let mut d = lock(&self.dropped);
        if !d.contains(&ino) {
            if d.len() == DROPPED_MAX {
                d.pop_front();
            }
            d.push_back(ino);
        }
    }

    fn take_dropped(&self, ino: u64) -> bool {
        let mut d = lock(&self.dropped);
        match d.iter().position(|i| *i == ino) {
            Some(at) => {
                d.remove(at);
                true
            }
            None => false,
        }
    }

    /// Some open handle of inode `ino`, if any.
    pub fn any_handle_of(&self, ino: u64) -> Option<Arc<Handle>> {
        lock(&self.handles).values().find(|h| h.ino == ino).cloned()
    }

    pub fn handle(&self, fh: u64) -> Option<Arc<Handle>> {
        lock(&self.handles).get(&fh).cloned()
    }
}

fn pread_full(f: &File, buf: &mut [u8], off: u64) -> Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], off + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Io(e)),
        }
    }
    Ok(done)
}

fn as_file<R>(fd: &OwnedFd, f: impl FnOnce(&File) -> R) -> R {
    sys::borrow_file(fd.as_fd(), f)
}

fn ct_len(fd: &OwnedFd) -> Result<u64> {
    Ok(sys::fstat(fd.as_fd())?.st_size as u64)
}

/// Clears set-user-ID, and set-group-ID where it means "run as group" (group-execute set),
/// as a write or truncate by an unprivileged process does on a local disk. The daemon writes
/// the backing file with its own (often root's) rights, which the backing filesystem would not
/// strip them for, so with FUSE_HANDLE_KILLPRIV_V2 this is our job.
/// True when a bit was cleared.
fn drop_suid(fs: &Fs, fd: BorrowedFd<'_>, who: &Subject) -> Result<bool> {
    let st = sys::fstat(fd)?;
    match without_suid(st.st_mode, || fs.in_group(who, st.st_gid)) {
        Some(m) => sys::fchmod(fd, m).map(|()| true),
        None => Ok(false),
    }
}

/// The permission bits of `mode` once the set-ID bits a change by `who` may not keep are
/// dropped (as the kernel's `setattr_should_drop_sgid`): set-user-ID always; set-group-ID
/// when group-execute is set, or when the caller is not in the file's group (`member`,
/// asked only then). None when nothing changes.
pub(super) fn without_suid(mode: u32, member: impl FnOnce() -> bool) -> Option<u32> {
    let mut kill = mode & libc::S_ISUID;
    if mode & libc::S_ISGID != 0 && (mode & libc::S_IXGRP != 0 || !member()) {
        kill |= libc::S_ISGID;
    }
    (kill != 0).then_some(mode & 0o7777 & !kill)
}

fn plain_len(fd: &OwnedFd) -> Result<u64> {
    content::plain_size(ct_len(fd)?).ok_or(Error::Corrupt {
        what: "ciphertext size",
    })
}

thread_local! {
    // Per-thread scratch space for request-sized ciphertext and plaintext: a 1 MiB request
    // would otherwise allocate, zero and page-fault fresh buffers every time.
    static CT_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static PLAIN_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on `len` bytes of this thread's buffer `buf`, whose contents are unspecified
/// (callers overwrite what they use). A re-entrant use gets a fresh buffer instead.
fn scratch<R>(
    buf: &'static LocalKey<RefCell<Vec<u8>>>,
    len: usize,
    f: impl FnOnce(&mut [u8]) -> R,
) -> R {
    buf.with(|b| match b.try_borrow_mut() {
        Ok(mut b) => {
            if b.len() < len {
                b.resize(len, 0);
            }
            f(&mut b[..len])
        }
        Err(_) => f(&mut vec![0u8; len]),
    })
}

/// The plaintext size of `ct_len` bytes of consecutive sealed blocks.
fn opened_len(ct_len: usize) -> Result<usize> {
    let n = ct_len.div_ceil(CT_BLOCK as usize);
    if !ct_len.is_multiple_of(CT_BLOCK as usize) && (ct_len % CT_BLOCK as usize) as u64 <= OVERHEAD
    {
        return Err(Error::Corrupt {
            what: "content block (truncated)",
        });
    }
    Ok(ct_len - n * OVERHEAD as usize)
}

/// Decrypts the ciphertext of consecutive blocks starting at `first` into `plain`, which is
/// exactly `opened_len(ct.len())` bytes.
fn open_blocks(c: &FileCipher, first: u64, ct: &[u8], plain: &mut [u8]) -> Result<()> {
    let n = ct.len().div_ceil(CT_BLOCK as usize);
    let open_range = |first_i: usize, ct: &[u8], plain: &mut [u8]| -> Result<()> {
        for (i, (chunk, dst)) in ct
            .chunks(CT_BLOCK as usize)
            .zip(plain.chunks_mut(BLOCK as usize))
            .enumerate()
        {
            c.open_block(first + (first_i + i) as u64, chunk, dst)?;
        }
        Ok(())
    };
    let workers = crypto_workers(n);
    if workers <= 1 {
        return open_range(0, ct, plain);
    }
    // Large requests: the blocks are independent, so split them across cores; this thread
    // takes the first share itself.
    let per = n.div_ceil(workers);
    std::thread::scope(|sc| {
        let mut parts = ct
            .chunks(per * CT_BLOCK as usize)
            .zip(plain.chunks_mut(per * BLOCK as usize))
            .enumerate();
        let mine = parts.next();
        let handles: Vec<_> = parts
            .map(|(k, (ct, pl))| sc.spawn(move || open_range(k * per, ct, pl)))
            .collect();
        let here = match mine {
            Some((_, (ct, pl))) => open_range(0, ct, pl),
            None => Ok(()),
        };
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(Error::Invalid)))
            .fold(here, |acc, r| acc.and(r))
    })
}

/// How many threads to use for `blocks` blocks of crypto in one request: one below 64
/// blocks (256 KiB; a thread costs more than it saves), else up to the cores, at most 4.
fn crypto_workers(blocks: usize) -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cores = *CORES.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    if blocks < 64 {
        1
    } else {
        cores.min(4)
    }
}

/// Blocks per piece of a large write: each piece is sealed, then written, by one thread.
const WRITE_PIECE: usize = 32;

/// A piece of a write: index of its first block in the request, its plaintext blocks and the
/// space for their ciphertext.
type Piece<'a> = (usize, &'a [&'a [u8]], &'a mut [u8]);

/// Seals consecutive blocks `first..` from `plains` (each at most BLOCK bytes; all but the
/// last exactly BLOCK) into `ct`, which is exactly their sealed size, and writes them to the
/// backing file. Large writes are cut into pieces dealt out to the cores: while one thread
/// copies its sealed piece into the page cache (the backing filesystem lets one writer in at
/// a time), the others seal theirs. The daemon holds the file's content lock throughout, so
/// the order in which pieces land is not visible.
fn seal_and_write(
    fd: &OwnedFd,
    c: &FileCipher,
    first: u64,
    plains: &[&[u8]],
    ct: &mut [u8],
) -> Result<()> {
    let seal_write = |first_i: usize, plains: &[&[u8]], ct: &mut [u8]| -> Result<()> {
        c.seal_blocks(first + first_i as u64, plains, ct)?;
        let at = content::block_offset(first + first_i as u64);
        as_file(fd, |f| f.write_all_at(ct, at)).map_err(Error::from)
    };
    let workers = crypto_workers(plains.len());
    if workers <= 1 {
        return seal_write(0, plains, ct);
    }
    let mut shares: Vec<Vec<Piece<'_>>> = (0..workers).map(|_| Vec::new()).collect();
    let mut rest = ct;
    for (k, group) in plains.chunks(WRITE_PIECE).enumerate() {
        let len: usize = group.iter().map(|p| p.len() + OVERHEAD as usize).sum();
        let (mine, tail) = rest.split_at_mut(len);
        rest = tail;
        shares[k % workers].push((k * WRITE_PIECE, group, mine));
    }
    let run = |share: Vec<Piece<'_>>| -> Result<()> {
        share
            .into_iter()
            .try_for_each(|(first_i, group, ct)| seal_write(first_i, group, ct))
    };
    std::thread::scope(|sc| {
        let mut shares = shares.into_iter();
        let here = shares.next().unwrap_or_default();
        let handles: Vec<_> = shares.map(|sh| sc.spawn(move || run(sh))).collect();
        let mine = run(here);
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(Error::Invalid)))
            .fold(mine, |acc, r| acc.and(r))
    })
}

/// Reads and decrypts one block (empty when past EOF).
fn read_block(fd: &OwnedFd, c: &FileCipher, blk: u64) -> Result<Vec<u8>> {
    let mut ct = vec![0u8; CT_BLOCK as usize];
    let n = as_file(fd, |f| pread_full(f, &mut ct, content::block_offset(blk)))?;
    ct.truncate(n);
    let mut out = vec![0u8; opened_len(n)?];
    open_blocks(c, blk, &ct, &mut out)?;
    Ok(out)
}

fn write_block(fd: &OwnedFd, c: &FileCipher, blk: u64, plain: &[u8]) -> Result<()> {
    let mut ct = vec![0u8; plain.len() + OVERHEAD as usize];
    c.seal_block(blk, plain, &mut ct)?;
    as_file(fd, |f| f.write_all_at(&ct, content::block_offset(blk)))?;
    Ok(())
}

/// Grows a file from `old` to `new` plaintext bytes: the old partial last block is padded
/// with zeros, and the rest becomes a hole (zero ciphertext reads as zero plaintext).
/// What a growing write needs to put a file back as it was: its ciphertext length, and the
/// ciphertext of its partial last block (which the write re-seals longer).
struct Undo {
    ct_len: u64,
    tail: Option<(u64, Vec<u8>)>,
}

impl Undo {
    fn save(fd: &OwnedFd, ct_len: u64, plain: u64) -> Result<Undo> {
        let tail = if ct_len > 0 && !plain.is_multiple_of(BLOCK) {
            let at = content::block_offset(plain / BLOCK);
            let mut b = vec![0u8; (ct_len - at) as usize];
            as_file(fd, |f| f.read_exact_at(&mut b, at))?;
            Some((at, b))
        } else {
            None
        };
        Ok(Undo { ct_len, tail })
    }

    /// Best effort: cutting back frees what the failed write allocated, so putting the old
    /// tail back needs no new space.
    fn restore(self, fd: &OwnedFd) {
        let back = as_file(fd, |f| {
            f.set_len(self.ct_len)?;
            if let Some((at, b)) = &self.tail {
                f.write_all_at(b, *at)?;
            }
            Ok::<(), std::io::Error>(())
        });
        if let Err(e) = back {
            log::warn!("a failed write could not be undone: {e}");
        }
    }
}

fn extend(fd: &OwnedFd, c: &FileCipher, old: u64, new: u64) -> Result<()> {
    if !old.is_multiple_of(BLOCK) {
        let blk = old / BLOCK;
        let mut b = read_block(fd, c, blk)?;
        b.resize((new - blk * BLOCK).min(BLOCK) as usize, 0);
        write_block(fd, c, blk, &b)?;
    }
    as_file(fd, |f| f.set_len(content::cipher_size(new)))?;
    Ok(())
}

fn shrink(fd: &OwnedFd, c: &FileCipher, new: u64) -> Result<()> {
    if !new.is_multiple_of(BLOCK) {
        let blk = new / BLOCK;
        let mut b = read_block(fd, c, blk)?;
        b.truncate((new % BLOCK) as usize);
        write_block(fd, c, blk, &b)?;
    }
    as_file(fd, |f| f.set_len(content::cipher_size(new)))?;
    Ok(())
}

impl Fs {
    fn node_for(&self, ino: u64, zone: usize, fd: &OwnedFd) -> Result<Arc<FileNode>> {
        let mut nodes = lock(&self.files.nodes);
        if let Some((n, count)) = nodes.get_mut(&ino) {
            *count += 1;
            return Ok(n.clone());
        }
        let (content, zone) = self.load_content(fd, zone)?;
        let n = Arc::new(FileNode {
            zone: AtomicUsize::new(zone),
            content: RwLock::new(content),
            revoked: AtomicBool::new(false),
        });
        nodes.insert(ino, (n.clone(), 1));
        Ok(n)
    }

    fn unref_node(&self, ino: u64) {
        let mut nodes = lock(&self.files.nodes);
        if let Some((_, count)) = nodes.get_mut(&ino) {
            *count -= 1;
            if *count == 0 {
                nodes.remove(&ino);
            }
        }
    }

    /// The file's cipher and the key generation it uses. Outside a rekey that is the
    /// zone's current key; during one, the first block says which generation sealed it (a
    /// file may have been renamed or linked under a new-key name before its content was
    /// converted).
    fn load_content(&self, fd: &OwnedFd, zone: usize) -> Result<(Content, usize)> {
        let mut h = [0u8; HEADER_LEN as usize];
        let n = as_file(fd, |f| pread_full(f, &mut h, 0))?;
        let gens: Vec<usize> = self.generations(zone)?.collect();
        if n == 0 {
            return Ok((Content::Empty, gens[0]));
        }
        let Ok(id) = content::decode_header(&h[..n]) else {
            log::warn!("file header does not parse (damaged file)");
            return Ok((Content::Damaged, gens[0]));
        };
        if gens.len() > 1 {
            let mut ct = vec![0u8; CT_BLOCK as usize];
            let got = as_file(fd, |f| pread_full(f, &mut ct, content::block_offset(0)))?;
            if got as u64 > OVERHEAD && ct[..got].iter().any(|&b| b != 0) {
                let mut plain = vec![0u8; got - OVERHEAD as usize];
                for g in &gens {
                    let c = self.cipher_for(*g, id)?;
                    if c.open_block(0, &ct[..got], &mut plain).is_ok() {
                        return Ok((Content::Ready(Box::new(c)), *g));
                    }
                }
            }
        }
        Ok((
            Content::Ready(Box::new(self.cipher_for(gens[0], id)?)),
            gens[0],
        ))
    }

    fn cipher_for(&self, zone: usize, id: crate::crypto::Id) -> Result<FileCipher> {
        let z = self.zone(zone)?;
        Ok(FileCipher::new(&kdf::content_key(&z.key, &id), id))
    }

    fn open_handle(&self, ino: u64, fd: OwnedFd, who: Option<&Subject>) -> Result<u64> {
        let zone = self.node_info(ino)?.2;
        // A file of a zone being shredded is not opened again.
        self.zone(zone)?;
        let node = self.node_for(ino, zone, &fd)?;
        let fh = self.new_fh();
        lock(&self.files.handles).insert(
            fh,
            Arc::new(Handle {
                ino,
                fd,
                node,
                opener: who.map_or((0, 0), |w| (w.uid, w.pid)),
                reads: Mutex::default(),
                writes: Mutex::default(),
            }),
        );
        Ok(fh)
    }

    /// Opens the backing file read-write where possible (partial-block writes must read),
    /// falling back to the access mode asked for.
    fn open_backing(&self, ino: u64, flags: i32) -> Result<OwnedFd> {
        let acc = flags & libc::O_ACCMODE;
        let want = if self.opts.read_only {
            libc::O_RDONLY
        } else {
            libc::O_RDWR
        };
        let opened = match self.open_ino(ino, want | self.noatime_flag()) {
            Err(Error::PermissionDenied) if want != acc => {
                self.open_ino(ino, acc | self.noatime_flag())
            }
            other => other,
        };
        match opened {
            // O_NOATIME needs the file's owner or CAP_FOWNER: without, a plain open.
            Err(Error::NotPermitted) if self.noatime_flag() != 0 => {
                match self.open_ino(ino, want) {
                    Err(Error::PermissionDenied) if want != acc => self.open_ino(ino, acc),
                    other => other,
                }
            }
            other => other,
        }
    }

    fn noatime_flag(&self) -> i32 {
        // A read-only mount changes nothing, access times included (xfstests 003).
        if self.opts.noatime || self.opts.read_only {
            libc::O_NOATIME
        } else {
            0
        }
    }

    pub(super) fn open_inner(&self, who: &Subject, ino: u64, flags: i32) -> Result<u64> {
        if flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0 {
            self.check_writable()?;
        }
        let fd = self.open_backing(ino, flags)?;
        let fh = self.open_handle(ino, fd, Some(who))?;
        if flags & libc::O_TRUNC != 0 {
            self.truncate(ino, Some(fh), 0)?;
        }
        Ok(fh)
    }

    pub(super) fn create_inner(
        &self,
        who: &Subject,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
    ) -> Result<(Attr, u64)> {
        self.check_writable()?;
        let pd = self.dir_of(parent)?;
        let stored = self.seal_in(&pd, name)?;
        let dir = pd.1.fd;
        let (gid, inherited) = self.new_gid(&dir, who)?;
        let bname = OsStr::new(stored.backing_name());
        self.write_long_record(&dir, &stored)?;
        let created = match sys::openat(
            dir.as_fd(),
            bname,
            libc::O_CREAT | libc::O_EXCL | libc::O_RDWR,
            mode & !umask & 0o7777,
        ) {
            Ok(fd) => fd,
            Err(Error::Exists) if flags & libc::O_EXCL == 0 => {
                // It exists after all (created behind the kernel's back): open it as usual.
                let attr = self.lookup_inner(who, parent, name)?;
                let fh =
                    self.open_inner(who, attr.ino.0, flags & !libc::O_CREAT & !libc::O_EXCL)?;
                return Ok((self.getattr_inner(attr.ino.0, Some(fh))?, fh));
            }
            Err(e) => {
                if !matches!(e, Error::Exists) {
                    self.remove_long_record(&dir, &stored);
                }
                return Err(e);
            }
        };
        // The fresh file is served through the descriptor that created it: no second
        // lookup or open of the backing path.
        // The backing filesystem already gave the file the daemon's user and the group the
        // caller should get when those match (root creating in a root mount): a chown would
        // cost a journalled inode update per file.
        // The daemon never changes its own ids: ask once, not per file.
        static OWN: std::sync::OnceLock<(u32, u32)> = std::sync::OnceLock::new();
        let own = *OWN.get_or_init(|| (sys::geteuid(), sys::getegid()));
        if self.opts.chown_new && !(who.uid == own.0 && (inherited || gid == own.1)) {
            sys::fchown(created.as_fd(), who.uid, gid)?;
            // The chown cleared set-ID bits the new file may keep (`kept_set_id`).
            let requested = mode & !umask & 0o7777;
            let keep = self.kept_set_id(who, gid, requested);
            if keep != 0 {
                sys::fchmod(created.as_fd(), (requested & 0o777) | keep)?;
            }
        }
        let st = sys::fstat(created.as_fd())?;
        let mut attr = self.to_attr(&st, None);
        let zone = self.child_zone(parent, name.as_bytes())?;
        attr.generation = lock(&self.inodes).remember(
            attr.ino.0,
            parent,
            bname.to_os_string(),
            name.as_bytes().to_vec(),
            attr.kind,
            zone,
            true,
        );
        let fh = self.open_handle(attr.ino.0, created, Some(who))?;
        Ok((attr, fh))
    }

    pub fn release(&self, fh: Fh) {
        if let Some(h) = lock(&self.files.handles).remove(&fh.0) {
            self.unref_node(h.ino);
        }
    }

    /// Revokes every open handle of files in zone family `family` (a shred): reads and
    /// writes through them fail from now on. Returns how many files were open.
    pub(super) fn revoke_family(&self, family: usize) -> usize {
        let zones = self.zones_now();
        let mut n = 0;
        for (node, _) in lock(&self.files.nodes).values() {
            let z = node.zone.load(Ordering::Relaxed);
            if zones.get(z).is_some_and(|z| z.family == family) {
                node.revoked.store(true, Ordering::Relaxed);
                n += 1;
            }
        }
        n
    }

    /// Holds the node of file `ino` (made from `fd` if no handle has it open) for a live
    /// rekey step, which takes its content lock; `unpin_node` lets it go.
    pub(super) fn pin_node(&self, ino: u64, zone: usize, fd: &OwnedFd) -> Result<Arc<FileNode>> {
        self.node_for(ino, zone, fd)
    }

    pub(super) fn unpin_node(&self, ino: u64) {
        self.unref_node(ino)
    }

    fn handle(&self, fh: Fh) -> Result<Arc<Handle>> {
        let h = self.files.handle(fh.0).ok_or(Error::Invalid)?;
        if h.node.revoked.load(Ordering::Relaxed) {
            return Err(Error::Revoked);
        }
        Ok(h)
    }

    pub fn read(&self, fh: Fh, offset: u64, size: u32) -> Result<Vec<u8>> {
        self.read_with(fh, offset, size, |d| d.to_vec())
    }

    /// Reads up to `size` bytes at `offset` and hands them to `f` (from per-thread buffers,
    /// so a FUSE reply is sent without copying them again).
    pub fn read_with<R>(
        &self,
        fh: Fh,
        offset: u64,
        size: u32,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        let h = self.handle(fh)?;
        let content = h.node.content.read().unwrap_or_else(|p| p.into_inner());
        let c = match &*content {
            Content::Empty => return Ok(f(&[])),
            Content::Damaged => {
                return Err(Error::Corrupt {
                    what: "file header",
                })
            }
            Content::Ready(c) => c,
        };
        if size == 0 {
            return Ok(f(&[]));
        }
        let first = offset / BLOCK;
        let last = (offset + size as u64 - 1) / BLOCK;
        let ct_len = ((last - first + 1) * CT_BLOCK) as usize;
        scratch(&CT_BUF, ct_len, |ct| {
            let n = as_file(&h.fd, |file| {
                pread_full(file, ct, content::block_offset(first))
            })?;
            let ct = &ct[..n];
            let ct_start = content::block_offset(first);
            h.streamed(
                &self.files,
                (offset, offset + size as u64),
                (ct_start, ct_start + n as u64),
                false,
                true,
            );
            scratch(&PLAIN_BUF, opened_len(n)?, |plain| {
                open_blocks(c, first, ct, plain).inspect_err(|_| {
                    log::warn!(
                        "inode {}: block in {}..={} does not authenticate",
                        h.ino,
                        first,
                        last
                    );
                })?;
                if self.opts.strictatime {
                    // The backing file's access time moved by its filesystem's own rule
                    // (setting it here would change its ctime too): the kernel must ask.
                    self.attrs_changed(h.ino);
                }
                let skip = (offset - first * BLOCK) as usize;
                if skip >= plain.len() {
                    return Ok(f(&[]));
                }
                let end = (skip + size as usize).min(plain.len());
                Ok(f(&plain[skip..end]))
            })
        })
    }

    /// `kill_suid`: the writer may not keep set-user/group-ID bits (the kernel leaves
    /// clearing them to us, see `drop_suid`).
    pub fn write(
        &self,
        fh: Fh,
        offset: u64,
        data: &[u8],
        kill_suid: Option<&Subject>,
    ) -> Result<u32> {
        self.check_writable()?;
        let h = self.handle(fh)?;
        if data.is_empty() {
            return Ok(0);
        }
        if let Some(who) = kill_suid {
            if drop_suid(self, h.fd.as_fd(), who)? {
                self.attrs_changed(h.ino);
            }
        }
        offset
            .checked_add(data.len() as u64)
            .filter(|e| *e < (1 << 62))
            .ok_or(Error::TooBig)?;
        let mut content = h.node.content.write().unwrap_or_else(|p| p.into_inner());
        self.ensure_header(&h, &mut content)?;
        let Content::Ready(c) = &*content else {
            return Err(Error::Corrupt {
                what: "file header",
            });
        };
        let ct = ct_len(&h.fd)?;
        let mut size = content::plain_size(ct).ok_or(Error::Corrupt {
            what: "ciphertext size",
        })?;
        let old = offset < size;
        let end = offset + data.len() as u64;
        // A write that grows the file re-seals its partial last block longer and allocates
        // past it; if the disk is full halfway, that block would be left cut short (its old
        // bytes unreadable). Its ciphertext is kept here to be put back on failure.
        let undo = if end > size {
            Some(Undo::save(&h.fd, ct, size)?)
        } else {
            None
        };
        let r = self.write_blocks(&h, c, offset, data, &mut size, old, end);
        if r.is_err() {
            if let Some(u) = undo {
                u.restore(&h.fd);
            }
        }
        r
    }

    /// The body of `write`, once the file's cipher and old size are known.
    #[allow(clippy::too_many_arguments)]
    fn write_blocks(
        &self,
        h: &Handle,
        c: &FileCipher,
        offset: u64,
        data: &[u8],
        size: &mut u64,
        old: bool,
        end: u64,
    ) -> Result<u32> {
        if offset > *size {
            extend(&h.fd, c, *size, offset)?;
            *size = offset;
        }
        let size = *size;
        let first = offset / BLOCK;
        let last = (end - 1) / BLOCK;
        // Whole blocks are sealed straight from the request; only a partial first or last
        // block is read, merged and re-sealed.
        let mut merged: Vec<(u64, Vec<u8>)> = Vec::new();
        for blk in [first, last] {
            let bstart = blk * BLOCK;
            let lo = offset.max(bstart);
            let hi = end.min(bstart + BLOCK);
            let existing = size.saturating_sub(bstart).min(BLOCK);
            if (lo == bstart && hi - bstart >= existing) || merged.iter().any(|(b, _)| *b == blk) {
                continue;
            }
            let new_len = existing.max(hi - bstart) as usize;
            let mut b = read_block(&h.fd, c, blk)?;
            b.resize(new_len, 0);
            b[(lo - bstart) as usize..(hi - bstart) as usize]
                .copy_from_slice(&data[(lo - offset) as usize..(hi - offset) as usize]);
            merged.push((blk, b));
        }
        let mut plains: Vec<&[u8]> = Vec::with_capacity((last - first + 1) as usize);
        for blk in first..=last {
            if let Some((_, b)) = merged.iter().find(|(b, _)| *b == blk) {
                plains.push(b);
                continue;
            }
            let bstart = blk * BLOCK;
            let lo = offset.max(bstart);
            let hi = end.min(bstart + BLOCK);
            plains.push(&data[(lo - offset) as usize..(hi - offset) as usize]);
        }
        let total: usize = plains.iter().map(|p| p.len() + OVERHEAD as usize).sum();
        scratch(&CT_BUF, total, |ct| {
            seal_and_write(&h.fd, c, first, &plains, ct)
        })?;
        let ct_start = content::block_offset(first);
        h.streamed(
            &self.files,
            (offset, end),
            (ct_start, ct_start + total as u64),
            true,
            old,
        );
        Ok(data.len() as u32)
    }

    fn ensure_header(&self, h: &Handle, content: &mut Content) -> Result<()> {
        if let Content::Empty = content {
            let zone = h.node.zone.load(Ordering::Relaxed);
            if ct_len(&h.fd)? != 0 {
                let (c, g) = self.load_content(&h.fd, zone)?;
                *content = c;
                h.node.zone.store(g, Ordering::Relaxed);
                return Ok(());
            }
            // New content is always sealed with the zone's current key.
            let fam = self.zone(zone)?.family;
            let id = crate::crypto::random_id()?;
            as_file(&h.fd, |f| f.write_all_at(&content::encode_header(&id), 0))?;
            *content = Content::Ready(Box::new(self.cipher_for(fam, id)?));
            h.node.zone.store(fam, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Truncates (or extends) to `size`, through an open handle when one is given.
    pub(super) fn truncate(&self, ino: u64, fh: Option<u64>, size: u64) -> Result<()> {
        self.check_writable()?;
        let (h, temp) = match fh.and_then(|f| self.files.handle(f)) {
            Some(h) => (h, None),
            None => {
                let fh = self.open_handle(ino, self.open_backing(ino, libc::O_WRONLY)?, None)?;
                (self.handle(Fh(fh))?, Some(Fh(fh)))
            }
        };
        let result = self.truncate_handle(&h, size);
        if let Some(t) = temp {
            self.release(t);
        }
        result
    }

    fn truncate_handle(&self, h: &Handle, size: u64) -> Result<()> {
        let mut content = h.node.content.write().unwrap_or_else(|p| p.into_inner());
        if size == 0 {
            as_file(&h.fd, |f| f.set_len(0))?;
            *content = Content::Empty;
            return Ok(());
        }
        self.ensure_header(h, &mut content)?;
        let Content::Ready(c) = &*content else {
            return Err(Error::Corrupt {
                what: "file header",
            });
        };
        let old = plain_len(&h.fd)?;
        match size.cmp(&old) {
            std::cmp::Ordering::Greater => extend(&h.fd, c, old, size),
            std::cmp::Ordering::Less => shrink(&h.fd, c, size),
            std::cmp::Ordering::Equal => Ok(()),
        }
    }

    /// `kill_suid`: the caller may not keep set-ID bits (as for a write: ext4 clears them on
    /// fallocate too, xfstests generic/683).
    pub fn fallocate(
        &self,
        fh: Fh,
        mode: i32,
        offset: u64,
        len: u64,
        kill_suid: Option<&Subject>,
    ) -> Result<()> {
        self.check_writable()?;
        let h = self.handle(fh)?;
        let end = offset.checked_add(len).ok_or(Error::TooBig)?;
        if let Some(who) = kill_suid {
            if drop_suid(self, h.fd.as_fd(), who)? {
                self.attrs_changed(h.ino);
            }
        }
        if len == 0 {
            return Err(Error::Invalid);
        }
        const PUNCH: i32 = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        const ZERO: i32 = libc::FALLOC_FL_ZERO_RANGE;
        const ZERO_KEEP: i32 = libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE;
        match mode {
            0 | libc::FALLOC_FL_KEEP_SIZE => {}
            PUNCH | ZERO | ZERO_KEEP => {
                return self.zero_range(fh, &h, offset, end, mode != PUNCH, mode == ZERO)
            }
            _ => return Err(Error::NotSupported),
        }
        if mode == 0 && end > plain_len(&h.fd)? {
            // The size moves as a truncate moves it (the last block is re-sealed longer).
            self.truncate_handle(&h, end)?;
        }
        // Reserve the ciphertext blocks of the range in the backing file, so that a later
        // write there cannot fail for want of space (xfstests generic/568). The backing size
        // is never changed here: it is the plaintext size's, set above.
        let first = offset / BLOCK;
        let last = (end - 1) / BLOCK;
        let ct_start = content::block_offset(first);
        let ct_end = content::block_offset(last) + CT_BLOCK;
        sys::fallocate(
            h.fd.as_fd(),
            libc::FALLOC_FL_KEEP_SIZE,
            ct_start,
            ct_end - ct_start,
        )
    }

    /// Makes `offset..end` read as zeros (punch-hole; zero-range with `reserve`, which also
    /// extends the file unless told to keep its size). Whole blocks in the range become holes
    /// in the backing file (an all-zero ciphertext block reads as zeros, FORMAT.md "File
    /// contents"), so punching frees their space; the partial blocks at either end are
    /// re-sealed with zeros written over the range.
    fn zero_range(
        &self,
        fh: Fh,
        h: &Handle,
        offset: u64,
        end: u64,
        reserve: bool,
        extend: bool,
    ) -> Result<()> {
        let size = plain_len(&h.fd)?;
        if extend && end > size {
            // The new part of the file reads as zeros already.
            self.truncate_handle(h, end)?;
        }
        let zend = end.min(size);
        if offset < zend {
            let first_full = offset.div_ceil(BLOCK);
            let end_full = zend / BLOCK;
            if first_full < end_full {
                let _content = h.node.content.write().unwrap_or_else(|p| p.into_inner());
                let (a, b) = (
                    content::block_offset(first_full),
                    content::block_offset(end_full),
                );
                sys::fallocate(
                    h.fd.as_fd(),
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    a,
                    b - a,
                )?;
            }
            // The partial blocks at the ends (or the one block the range lies in).
            let zeros = [0u8; BLOCK as usize];
            let head_end = zend.min(first_full * BLOCK);
            if offset < head_end {
                self.write(fh, offset, &zeros[..(head_end - offset) as usize], None)?;
            }
            let tail_start = offset.max(end_full * BLOCK);
            if first_full <= end_full && tail_start < zend {
                self.write(fh, tail_start, &zeros[..(zend - tail_start) as usize], None)?;
            }
        }
        if reserve && offset < end {
            // Zero-range allocates: a later write there must not fail for want of space.
            let (a, b) = (
                content::block_offset(offset / BLOCK),
                content::block_offset((end - 1) / BLOCK) + CT_BLOCK,
            );
            sys::fallocate(h.fd.as_fd(), libc::FALLOC_FL_KEEP_SIZE, a, b - a)?;
        }
        Ok(())
    }

    pub fn fsync(&self, fh: Fh, datasync: bool) -> Result<()> {
        let h = self.handle(fh)?;
        sys::fsync(h.fd.as_fd(), datasync)
    }

    pub fn fsyncdir(&self, ino: Ino, datasync: bool) -> Result<()> {
        let fd = self.open_ino(ino.0, libc::O_RDONLY | libc::O_DIRECTORY)?;
        sys::fsync(fd.as_fd(), datasync)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{new_fs, ME};
    use super::super::Ino;
    use super::*;

    fn pattern(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn write_read_at_block_boundaries() {
        let (_t, fs) = new_fs();
        for (i, n) in [0usize, 1, 4095, 4096, 4097, 10000, 65536 + 3]
            .into_iter()
            .enumerate()
        {
            let name = format!("f{i}");
            let (_, fh) = fs
                .create(&ME, Ino::ROOT, OsStr::new(&name), 0o644, 0, libc::O_RDWR)
                .unwrap();
            let data = pattern(n, i as u8);
            fs.write(fh, 0, &data, None).unwrap();
            assert_eq!(fs.read(fh, 0, n as u32 + 100).unwrap(), data, "size {n}");
            let a = fs.getattr(&ME, Ino(0), Some(fh)).unwrap();
            assert_eq!(a.size, n as u64);
            fs.release(fh);
        }
    }

    /// Requests of 1 MiB and more are sealed and written in pieces by several threads (and
    /// read on several): unaligned ends, pieces of every size and a short last block.
    #[test]
    fn large_unaligned_writes_split_across_threads_read_back() {
        let (_t, fs) = new_fs();
        let (_, fh) = fs
            .create(&ME, Ino::ROOT, OsStr::new("big"), 0o644, 0, libc::O_RDWR)
            .unwrap();
        let mut model = pattern(3 << 20, 3);
        fs.write(fh, 0, &model, None).unwrap();
        for (off, len, seed) in [
            (5000usize, (1 << 20) + 100, 9u8),
            (0, 1 << 20, 4),
            (123, 700_001, 5),
        ] {
            let patch = pattern(len, seed);
            fs.write(fh, off as u64, &patch, None).unwrap();
            model[off..off + len].copy_from_slice(&patch);
        }
        let tail = pattern((1 << 20) + 77, 6);
        fs.write(fh, model.len() as u64, &tail, None).unwrap();
        model.extend_from_slice(&tail);
        let mut back = Vec::new();
        let mut at = 0u64;
        while at < model.len() as u64 {
            let chunk = fs.read(fh, at, 1 << 20).unwrap();
            assert!(!chunk.is_empty());
            at += chunk.len() as u64;
            back.extend_from_slice(&chunk);
        }
        assert!(back == model, "read back differs from what was written");
        fs.release(fh);
    }

    #[test]
    fn overwrite_in_the_middle_and_past_eof_with_holes() {
        let (_t, fs) = new_fs();
        let (_, fh) = fs
            .create(&ME, Ino::ROOT, OsStr::new("f"), 0o644, 0, libc::O_RDWR)
            .unwrap();
        let mut model = pattern(9000, 1);
        fs.write(fh, 0, &model, None).unwrap();
        let patch = pattern(5000, 7);
        fs.write(fh, 3000, &patch, None).unwrap();
        model[3000..8000].copy_from_slice(&patch);
        // Past EOF: a hole of zeros, then data.
        fs.write(fh, 20000, b"tail", None).unwrap();
        model.resize(20000, 0);
        model.extend_from_slice(b"tail");
        assert_eq!(fs.read(fh, 0, 30000).unwrap(), model);
        assert_eq!(fs.read(fh, 12000, 10).unwrap(), vec![0; 10]);
        fs.release(fh);
    }

    /// Punch-hole and zero-range against a model, at every kind of edge: inside one block,
    /// across whole blocks, up to a partial last block, past the end; punched whole blocks
    /// give their space back.
    #[test]
    fn punch_hole_and_zero_range_read_as_zeros() {
        let (_t, fs) = new_fs();
        let (a, fh) = fs
            .create(&ME, Ino::ROOT, OsStr::new("f"), 0o644, 0, libc::O_RDWR)
            .unwrap();
        let mut model = pattern(5 * 4096 + 1000, 3);
        fs.write(fh, 0, &model, None).unwrap();
        let blocks = || {
            let h = fs.handle(fh).unwrap();
            sys::fstat(h.fd.as_fd()).unwrap().st_blocks
        };
        let before = blocks();
        const PUNCH: i32 = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        for (mode, off, len) in [
            (PUNCH, 100u64, 200u64),         // inside one block
            (PUNCH, 3000, 4096 * 3 + 2000),  // partial, three whole blocks, partial
            (PUNCH, 4096 * 4 + 10, 100_000), // to the partial last block and past the end
            (
                libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
                50,
                10,
            ),
        ] {
            fs.fallocate(fh, mode, off, len, None).unwrap();
            let end = ((off + len) as usize).min(model.len());
            model[off as usize..end].fill(0);
            assert_eq!(
                fs.read(fh, 0, 1 << 20).unwrap(),
                model,
                "after {mode} {off}+{len}"
            );
            assert_eq!(
                fs.getattr(&ME, a.ino, Some(fh)).unwrap().size,
                model.len() as u64
            );
        }
        let after = blocks();
        assert!(
            after < before,
            "punched blocks kept their space ({before} -> {after})"
        );
        // Zero-range without KEEP_SIZE extends the file with zeros.
        fs.fallocate(fh, libc::FALLOC_FL_ZERO_RANGE, 30_000, 5000, None)
            .unwrap();
        model.resize(35_000, 0);
        assert_eq!(fs.read(fh, 0, 1 << 20).unwrap(), model);
        // Other modes are still refused.
        assert!(matches!(
            fs.fallocate(fh, libc::FALLOC_FL_COLLAPSE_RANGE, 0, 4096, None),
            Err(Error::NotSupported)
        ));
        fs.release(fh);
    }

    #[test]
    fn truncate_down_and_up() {
        let (_t, fs) = new_fs();
        let (a, fh) = fs
            .create(&ME, Ino::ROOT, OsStr::new("f"), 0o644, 0, libc::O_RDWR)
            .unwrap();
        let data = pattern(10000, 3);
        fs.write(fh, 0, &data, None).unwrap();
        fs.truncate(a.ino.0, Some(fh.0), 5000).unwrap();
        assert_eq!(fs.read(fh, 0, 20000).unwrap(), data[..5000]);
        fs.truncate(a.ino.0, None, 9000).unwrap();
        let mut want = data[..5000].to_vec();
        want.resize(9000, 0);
        assert_eq!(fs.read(fh, 0, 20000).unwrap(), want);
        fs.truncate(a.ino.0, Some(fh.0), 0).unwrap();
        assert_eq!(fs.read(fh, 0, 100).unwrap(), Vec::<u8>::new());
        fs.write(fh, 0, b"again", None).unwrap();
        assert_eq!(fs.read(fh, 0, 100).unwrap(), b"again");
        fs.release(fh);
    }

    #[test]
    fn flipped_ciphertext_bit_gives_eio_and_other_files_still_read() {
        let (t, fs) = new_fs();
        let (_, fh) = fs
            .create(&ME, Ino::ROOT, OsStr::new("victim"), 0o644, 0, libc::O_RDWR)
            .unwrap();
        fs.write(fh, 0, &pattern(8192, 1), None).unwrap();
        fs.release(fh);
        let (_, fh2) = fs
            .create(&ME, Ino::ROOT, OsStr::new("other"), 0o644, 0, libc::O_RDWR)
            .unwrap();
        fs.write(fh2, 0, b"fine", None).unwrap();
        // Find the victim's backing file by size and flip a bit in its second block.
        let vault = t.path().join("vault");
        let victim = std::fs::read_dir(&vault)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| std::fs::metadata(p).unwrap().len() == content::cipher_size(8192))
            .unwrap();
        let mut b = std::fs::read(&victim).unwrap();
        let off = content::block_offset(1) as usize + 100;
        b[off] ^= 0x01;
        std::fs::write(&victim, &b).unwrap();
        let a = fs.lookup(&ME, Ino::ROOT, OsStr::new("victim")).unwrap();
        let fh = fs.open(&ME, a.ino, libc::O_RDONLY).unwrap();
        assert_eq!(fs.read(fh, 0, 4096).unwrap(), pattern(8192, 1)[..4096]);
        assert!(matches!(
            fs.read(fh, 4096, 4096),
            Err(Error::AuthFailed { .. })
        ));
        assert_eq!(fs.read(fh2, 0, 10).unwrap(), b"fine");
    }
}
