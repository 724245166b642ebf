//! The thin fuser adapter: convert the request, call the filesystem core, reply exactly once.
//! No logic lives here beyond conversions; errors map to errno in `Error::errno` only.

use crate::error::{Error, Result};
use crate::fs::inode::Kind;
use crate::fs::{Attr, Fh, Fs, Ino, RenameFlags, SetAttr, Subject};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, KernelConfig,
    LockOwner, OpenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
    WriteFlags,
};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long the kernel may cache entries and attributes. Every change to the tree goes through
/// this daemon (offline commands refuse while mounted), and the kernel drops or updates its copy
/// on each change it sends us, so a long lifetime is safe and spares a round trip per stat
/// (securefs uses 30 s too). Where an access policy makes the answer depend on who asks, the
/// lifetime of the name is zero instead (`must_revalidate`): every path walk through it asks
/// the daemon, which checks the caller.
const TTL: Duration = Duration::from_secs(30);

/// File contents change only through this daemon, and the kernel updates or drops its cached
/// pages on every write and truncate it sends us, so an open need not throw them away.
const KEEP_CACHE: FopenFlags = FopenFlags::FOPEN_KEEP_CACHE;

/// Called on every request (the idle timer hangs off it).
pub type Activity = Arc<dyn Fn() + Send + Sync>;

pub struct Adapter {
    fs: Arc<Fs>,
    activity: Activity,
    /// Other users may use the mount (--allow-other; always with a policy).
    shared: bool,
}

impl Adapter {
    pub fn new(fs: Arc<Fs>, activity: Activity, shared: bool) -> Adapter {
        Adapter {
            fs,
            activity,
            shared,
        }
    }

    /// Open files keep the kernel's cached pages, except under strictatime: there every open
    /// that reads must reach the daemon, which sets the access time.
    fn file_cache(&self) -> FopenFlags {
        if self.fs.strict_atime() {
            FopenFlags::empty()
        } else {
            KEEP_CACHE
        }
    }

    fn ttl_for(&self, ino: Ino) -> Duration {
        if self.fs.must_revalidate(ino) {
            Duration::ZERO
        } else {
            TTL
        }
    }

    /// Notes activity and holds the request gate (shared) for the request's duration: a
    /// live rekey or shred step waits for requests in flight and holds new ones back.
    fn touch(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        (self.activity)();
        self.fs.enter()
    }
}

fn who(req: &Request) -> Subject {
    Subject {
        uid: req.uid(),
        gid: req.gid(),
        pid: req.pid(),
    }
}

fn errno(e: &Error) -> Errno {
    Errno::from_i32(e.errno())
}

fn time((s, ns): (i64, i64)) -> SystemTime {
    if s >= 0 {
        UNIX_EPOCH + Duration::new(s as u64, ns.clamp(0, 999_999_999) as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(s.unsigned_abs())
    }
}

fn kind(k: Kind) -> FileType {
    match k {
        Kind::File => FileType::RegularFile,
        Kind::Dir => FileType::Directory,
        Kind::Symlink => FileType::Symlink,
        Kind::Fifo => FileType::NamedPipe,
        Kind::Socket => FileType::Socket,
        Kind::CharDev => FileType::CharDevice,
        Kind::BlockDev => FileType::BlockDevice,
    }
}

fn attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino.0),
        size: a.size,
        blocks: a.blocks,
        atime: time(a.atime),
        mtime: time(a.mtime),
        ctime: time(a.ctime),
        crtime: time(a.ctime),
        kind: kind(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: a.blksize,
        flags: 0,
    }
}

fn timespec(t: Option<TimeOrNow>) -> crate::sys::TimeSpec {
    t.map(|t| match t {
        TimeOrNow::Now => None,
        TimeOrNow::SpecificTime(st) => Some(match st.duration_since(UNIX_EPOCH) {
            Ok(d) => (d.as_secs() as i64, d.subsec_nanos() as i64),
            Err(e) => (-(e.duration().as_secs() as i64), 0),
        }),
    })
}

fn entry(reply: ReplyEntry, a: &Adapter, r: Result<Attr>) {
    match r {
        // Only the name needs asking again where a policy applies (the walk through it is
        // where the daemon sees who is asking); its attributes may stay cached.
        Ok(at) => reply.entry_with_ttls(
            &TTL,
            &a.ttl_for(at.ino),
            &attr(&at),
            Generation(at.generation),
        ),
        Err(e) => reply.error(errno(&e)),
    }
}

fn empty(reply: ReplyEmpty, r: Result<()>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(&e)),
    }
}

fn xattr_reply(reply: ReplyXattr, r: Result<Vec<u8>>, size: u32) {
    match r {
        Ok(v) if size == 0 => reply.size(v.len() as u32),
        Ok(v) if v.len() > size as usize => reply.error(Errno::from_i32(libc::ERANGE)),
        Ok(v) => reply.data(&v),
        Err(e) => reply.error(errno(&e)),
    }
}

impl fuser::Filesystem for Adapter {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(1024 * 1024);
        // The kernel offers its own readahead (128 KiB) as the most we may ask for here;
        // `mount::raise_readahead` lifts it afterwards where the daemon has the rights.
        let _ = config.set_max_readahead(1024 * 1024);
        let _ = config.set_max_background(64);
        // READDIRPLUS: a listing carries each entry's attributes, so `ls -l`, `git status`
        // and friends need no LOOKUP per entry.
        let _ = config.add_capabilities(fuser::InitFlags::FUSE_DO_READDIRPLUS);
        // We clear set-ID bits on unprivileged writes and truncates ourselves, so the kernel
        // need not ask for `security.capability` (a GETXATTR round trip) before every write,
        // nor re-read attributes before every chown. That xattr is never stored here.
        let _ = config.add_capabilities(fuser::InitFlags::FUSE_HANDLE_KILLPRIV_V2);
        // Lookups in one directory may run side by side (git's parallel lstat), and symlink
        // targets (which never change) may stay in the page cache.
        let _ = config.add_capabilities(
            fuser::InitFlags::FUSE_PARALLEL_DIROPS | fuser::InitFlags::FUSE_CACHE_SYMLINKS,
        );
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let _gate = self.touch();
        match self.fs.lookup(&who(req), Ino(parent.0), name) {
            // A negative entry the kernel may cache where the answer is the same for every
            // caller (`Fs::absence_cacheable`); every create goes through us and replaces it.
            Err(Error::NotFound) if self.fs.absence_cacheable(Ino(parent.0), name) => {
                let mut neg = attr(&Attr {
                    ino: Ino(0),
                    generation: 0,
                    size: 0,
                    blocks: 0,
                    atime: (0, 0),
                    mtime: (0, 0),
                    ctime: (0, 0),
                    kind: Kind::File,
                    perm: 0,
                    nlink: 0,
                    uid: 0,
                    gid: 0,
                    rdev: 0,
                    blksize: 0,
                });
                neg.ino = INodeNo(0);
                reply.entry(&TTL, &neg, Generation(0));
            }
            r => entry(reply, self, r),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(Ino(ino.0), nlookup);
    }

    fn getattr(&self, req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let _gate = self.touch();
        match self.fs.getattr(&who(req), Ino(ino.0), fh.map(|f| Fh(f.0))) {
            Ok(a) => reply.attr(&TTL, &attr(&a)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let _gate = self.touch();
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: timespec(atime),
            mtime: timespec(mtime),
            // fuser does not pass FATTR_KILL_SUIDGID on; the kernel sets it for truncates by
            // callers without CAP_FSETID, which the caller's uid stands in for here.
            kill_suid: (size.is_some() && req.uid() != 0).then(|| who(req)),
        };
        match self
            .fs
            .setattr(&who(req), Ino(ino.0), &set, fh.map(|f| Fh(f.0)))
        {
            Ok(a) => reply.attr(&TTL, &attr(&a)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        let _gate = self.touch();
        match self.fs.readlink(&who(req), Ino(ino.0)) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let _gate = self.touch();
        entry(
            reply,
            self,
            self.fs
                .mknod(&who(req), Ino(parent.0), name, mode, umask, rdev),
        );
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let _gate = self.touch();
        entry(
            reply,
            self,
            self.fs.mkdir(&who(req), Ino(parent.0), name, mode, umask),
        );
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _gate = self.touch();
        empty(reply, self.fs.unlink(&who(req), Ino(parent.0), name));
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _gate = self.touch();
        empty(reply, self.fs.rmdir(&who(req), Ino(parent.0), name));
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let _gate = self.touch();
        entry(
            reply,
            self,
            self.fs.symlink(
                &who(req),
                Ino(parent.0),
                link_name,
                target.as_os_str().as_bytes(),
            ),
        );
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        let _gate = self.touch();
        if flags.contains(fuser::RenameFlags::RENAME_WHITEOUT) {
            return reply.error(Errno::from_i32(libc::EINVAL));
        }
        let f = RenameFlags {
            noreplace: flags.contains(fuser::RenameFlags::RENAME_NOREPLACE),
            exchange: flags.contains(fuser::RenameFlags::RENAME_EXCHANGE),
        };
        empty(
            reply,
            self.fs
                .rename(&who(req), Ino(parent.0), name, Ino(newparent.0), newname, f),
        );
    }

    fn link(
        &self,
        req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let _gate = self.touch();
        entry(
            reply,
            self,
            self.fs
                .link(&who(req), Ino(ino.0), Ino(newparent.0), newname),
        );
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let _gate = self.touch();
        match self.fs.open(&who(req), Ino(ino.0), flags.0) {
            Ok(fh) => reply.opened(FileHandle(fh.0), self.file_cache()),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let _gate = self.touch();
        // The data is replied from the reader's buffer; the reply stays here for errors.
        let mut slot = Some(reply);
        let r = self.fs.read_with(Fh(fh.0), offset, size, |d| {
            if let Some(reply) = slot.take() {
                reply.data(d);
            }
        });
        if let (Err(e), Some(reply)) = (r, slot.take()) {
            reply.error(errno(&e));
        }
    }

    fn write(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let _gate = self.touch();
        let caller = who(req);
        let kill_suid = write_flags
            .contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID)
            .then_some(&caller);
        match self.fs.write(Fh(fh.0), offset, data, kill_suid) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Writes go straight to the backing file and locks are the kernel's, so a close has
        // nothing to report here. ENOSYS makes the kernel stop sending FLUSH at all, which
        // saves a round trip on every close().
        reply.error(Errno::ENOSYS);
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.fs.release(Fh(fh.0));
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let _gate = self.touch();
        empty(reply, self.fs.fsync(Fh(fh.0), datasync));
    }

    /// Listings are served statelessly from the offset in each READDIR, so no handle is
    /// needed. A private mount answers ENOSYS: the kernel then never sends OPENDIR or
    /// RELEASEDIR again (two round trips per directory listed) and caches listings itself
    /// (dropped whenever the directory changes). A shared mount checks each open (the
    /// policy); the kernel caches the listing only where every user who may open the
    /// directory sees the same entries (`Fs::listing_cacheable`).
    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let _gate = self.touch();
        if !self.shared {
            return reply.error(Errno::ENOSYS);
        }
        match self.fs.open_listing(&who(req), Ino(ino.0)) {
            Ok(()) => {
                // Without KEEP_CACHE the kernel drops the cached listing at every open.
                let flags = if self.fs.listing_cacheable(Ino(ino.0)) {
                    FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE
                } else {
                    FopenFlags::empty()
                };
                reply.opened(FileHandle(0), flags)
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readdir(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let _gate = self.touch();
        let mut added = false;
        let r = self
            .fs
            .readdir_at(&who(req), Ino(ino.0), offset, !self.shared, |e, next| {
                let full = reply.add(INodeNo(e.ino.0), next, kind(e.kind), &e.name);
                added |= !full;
                !full
            });
        match r {
            // Entries already added stand; the error comes again on the next call.
            Err(e) if !added => reply.error(errno(&e)),
            _ => reply.ok(),
        }
    }

    fn readdirplus(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let _gate = self.touch();
        let me = who(req);
        let mut added = false;
        let r = self
            .fs
            .readdir_at(&me, Ino(ino.0), offset, !self.shared, |e, next| {
                // "." and ".." carry attributes but no lookup reference (the kernel skips them).
                if e.name == "." || e.name == ".." {
                    let Ok(a) = self.fs.getattr(&me, e.ino, None) else {
                        return true;
                    };
                    let full = reply.add(
                        INodeNo(e.ino.0),
                        next,
                        &e.name,
                        &Duration::ZERO,
                        &attr(&a),
                        Generation(0),
                    );
                    added |= !full;
                    return !full;
                }
                // Every other entry is a lookup: counted now, given back if it does not fit.
                let Ok(a) = self.fs.lookup(&me, Ino(ino.0), &e.name) else {
                    return true;
                };
                if reply.add(
                    INodeNo(a.ino.0),
                    next,
                    &e.name,
                    &self.ttl_for(a.ino),
                    &attr(&a),
                    Generation(a.generation),
                ) {
                    self.fs.forget(a.ino, 1);
                    return false;
                }
                added = true;
                true
            });
        match r {
            // Entries already added (and their lookups counted) stand.
            Err(e) if !added => reply.error(errno(&e)),
            _ => reply.ok(),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        empty(reply, self.fs.fsyncdir(Ino(ino.0), datasync));
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: fuser::AccessFlags, reply: ReplyEmpty) {
        let _gate = self.touch();
        match self.fs.access(&who(req), Ino(ino.0), mask.bits()) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.fs.statfs() {
            Ok(s) => reply.statfs(
                s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize,
            ),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let _gate = self.touch();
        empty(
            reply,
            self.fs.setxattr(&who(req), Ino(ino.0), name, value, flags),
        );
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let _gate = self.touch();
        xattr_reply(reply, self.fs.getxattr(&who(req), Ino(ino.0), name), size);
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let _gate = self.touch();
        xattr_reply(reply, self.fs.listxattr(&who(req), Ino(ino.0)), size);
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _gate = self.touch();
        empty(reply, self.fs.removexattr(&who(req), Ino(ino.0), name));
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let _gate = self.touch();
        match self
            .fs
            .create(&who(req), Ino(parent.0), name, mode, umask, flags)
        {
            Ok((a, fh)) => reply.created(
                &self.ttl_for(a.ino),
                &attr(&a),
                Generation(a.generation),
                FileHandle(fh.0),
                self.file_cache(),
            ),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn fallocate(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let _gate = self.touch();
        // The kernel passes no kill flag for fallocate; as for truncates, the caller's uid
        // stands in for CAP_FSETID.
        let caller = who(req);
        let kill_suid = (req.uid() != 0).then_some(&caller);
        empty(
            reply,
            self.fs.fallocate(Fh(fh.0), mode, offset, length, kill_suid),
        );
    }
}
