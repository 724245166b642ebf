//! `tutela client import`: takes a client on from an existing plaintext tree (an unencrypted
//! share, another encrypted filesystem's mount). Copies regular files, folders and symbolic
//! links into the client's folder, hashing each source file as it is read (SHA-256), then
//! reads every file back from the vault's plaintext and checks it against that manifest.
//! What cannot be carried (sockets, FIFOs, devices, POSIX ACLs, files changed while being
//! read) is reported, never silently dropped. With `resume`, files already in the vault with
//! the source's hash are kept, so an interrupted import finishes where it stopped.

use crate::error::{Error, Result};
use crate::fs::{Fs, Ino, SetAttr, Subject};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Where imported entries go: the vault's own filesystem core (unmounted), or the live
/// mount's folder (mounted: the daemon writes, as for any program).
pub trait Target {
    fn mkdir(&mut self, rel: &Path, mode: u32) -> Result<()>;
    /// Writes a file from `src`; returns the SHA-256 of what was read, and whether the source
    /// changed while it was read.
    fn file(&mut self, rel: &Path, src: &Path, mode: u32) -> Result<([u8; 32], bool)>;
    fn symlink(&mut self, rel: &Path, target: &[u8]) -> Result<()>;
    /// SHA-256 of the file as the vault now holds it (None: not there).
    fn read_back(&mut self, rel: &Path) -> Result<Option<[u8; 32]>>;
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    /// Kept from an earlier, interrupted import (`--resume`).
    pub already: u64,
    /// What could not be carried, and why.
    pub skipped: Vec<(String, String)>,
    /// Files that changed while they were read (copied as read; import again to take them).
    pub changed: Vec<String>,
    /// Files whose copy does not match the source's hash.
    pub mismatched: Vec<String>,
    /// `sha256  path` lines, as `sha256sum -c` reads them.
    #[serde(skip)]
    pub manifest: Vec<String>,
}

fn has_acl(p: &Path) -> bool {
    use std::os::fd::AsFd;
    std::fs::File::open(p)
        .ok()
        .and_then(|f| crate::sys::flistxattr(f.as_fd()).ok())
        .map(|names| {
            names.iter().any(|n| {
                n.as_slice() == b"system.posix_acl_access"
                    || n.as_slice() == b"system.posix_acl_default"
            })
        })
        .unwrap_or(false)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Copies the tree `src` into `t`, then checks every file back. `progress` gets the bytes
/// copied so far.
pub fn import(
    src: &Path,
    t: &mut dyn Target,
    resume: bool,
    progress: &mut dyn FnMut(u64),
) -> Result<Report> {
    let mut rep = Report::default();
    let mut hashes: Vec<(PathBuf, [u8; 32])> = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = src.join(&rel);
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| Error::Usage(format!("cannot read {}: {e}", dir.display())))?
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let r = rel.join(e.file_name());
            let p = e.path();
            let shown = crate::text::escape(&String::from_utf8_lossy(r.as_os_str().as_bytes()))
                .into_owned();
            let md = match std::fs::symlink_metadata(&p) {
                Ok(m) => m,
                Err(e) => {
                    rep.skipped.push((shown, format!("cannot read it: {e}")));
                    continue;
                }
            };
            let ft = md.file_type();
            if (ft.is_file() || ft.is_dir()) && has_acl(&p) {
                rep.skipped.push((
                    shown.clone(),
                    "its POSIX ACL (the entry itself is imported, with its mode)".into(),
                ));
            }
            if ft.is_dir() {
                match t.mkdir(&r, md.mode() & 0o7777) {
                    Ok(()) | Err(Error::Exists) => {}
                    Err(e) => return Err(e),
                }
                rep.dirs += 1;
                stack.push(r);
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&p)?;
                match t.symlink(&r, target.as_os_str().as_bytes()) {
                    Ok(()) => rep.symlinks += 1,
                    Err(Error::Exists) if resume => rep.symlinks += 1,
                    Err(e) => return Err(e),
                }
            } else if ft.is_file() {
                if resume {
                    if let Some(have) = t.read_back(&r)? {
                        let (want, _) = hash_file(&p)?;
                        if have == want {
                            rep.already += 1;
                            rep.bytes += md.len();
                            hashes.push((r, want));
                            continue;
                        }
                    }
                }
                let (h, changed) = t.file(&r, &p, md.mode() & 0o7777)?;
                if changed {
                    rep.changed.push(shown);
                }
                rep.files += 1;
                rep.bytes += md.len();
                progress(rep.bytes);
                hashes.push((r, h));
            } else {
                let what = if ft.is_socket() {
                    "a socket"
                } else if ft.is_fifo() {
                    "a FIFO"
                } else if ft.is_block_device() || ft.is_char_device() {
                    "a device"
                } else {
                    "of an unknown kind"
                };
                rep.skipped.push((
                    shown,
                    format!("it is {what}: only files, folders and symbolic links are imported"),
                ));
            }
        }
    }
    // The check: every file read back from the vault's plaintext against the source's hash.
    for (r, want) in &hashes {
        let shown = String::from_utf8_lossy(r.as_os_str().as_bytes()).into_owned();
        if t.read_back(r)? != Some(*want) {
            rep.mismatched
                .push(crate::text::escape(&shown).into_owned());
        }
        // sha256sum's own escape: a name with a backslash or newline starts its line with `\`.
        if shown.contains(['\\', '\n']) {
            let esc = shown.replace('\\', "\\\\").replace('\n', "\\n");
            rep.manifest.push(format!("\\{}  {}", hex(want), esc));
        } else {
            rep.manifest.push(format!("{}  {}", hex(want), shown));
        }
    }
    Ok(rep)
}

/// What reading a source file gave: its SHA-256, whether it changed while it was read (size
/// or mtime moved), and its metadata from before.
pub struct SourceRead {
    pub sha256: [u8; 32],
    pub changed: bool,
    pub before: std::fs::Metadata,
}

/// Reads `p` in 1 MiB pieces, hashing each and handing it to `sink` with its offset.
fn read_hashed(p: &Path, mut sink: impl FnMut(u64, &[u8]) -> Result<()>) -> Result<SourceRead> {
    let mut f = std::fs::File::open(p)?;
    let before = f.metadata()?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        sink(off, &buf[..n])?;
        off += n as u64;
    }
    let after = std::fs::metadata(p)?;
    let changed = after.len() != before.len()
        || after.mtime_nsec() != before.mtime_nsec()
        || after.mtime() != before.mtime();
    Ok(SourceRead {
        sha256: h.finalize().into(),
        changed,
        before,
    })
}

/// SHA-256 of a file, and whether it changed while it was read.
fn hash_file(p: &Path) -> Result<([u8; 32], bool)> {
    read_hashed(p, |_, _| Ok(())).map(|r| (r.sha256, r.changed))
}

/// Imports into the vault's filesystem core (the vault is not mounted).
pub struct FsTarget<'a> {
    pub fs: &'a Fs,
    pub who: Subject,
    /// The client's folder.
    pub top: Ino,
}

impl FsTarget<'_> {
    fn parent_of(&self, rel: &Path) -> Result<(Ino, std::ffi::OsString)> {
        let mut ino = self.top;
        let parts: Vec<&OsStr> = rel.iter().collect();
        let (last, dirs) = parts.split_last().ok_or(Error::Invalid)?;
        for d in dirs {
            ino = self.fs.lookup(&self.who, ino, d)?.ino;
        }
        Ok((ino, last.to_os_string()))
    }

    fn find(&self, rel: &Path) -> Result<Option<Ino>> {
        let (parent, name) = self.parent_of(rel)?;
        match self.fs.lookup(&self.who, parent, &name) {
            Ok(a) => Ok(Some(a.ino)),
            Err(Error::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl Target for FsTarget<'_> {
    fn mkdir(&mut self, rel: &Path, mode: u32) -> Result<()> {
        let (parent, name) = self.parent_of(rel)?;
        self.fs.mkdir(&self.who, parent, &name, mode, 0).map(|_| ())
    }

    fn file(&mut self, rel: &Path, src: &Path, mode: u32) -> Result<([u8; 32], bool)> {
        let (parent, name) = self.parent_of(rel)?;
        let fh = match self.fs.create(
            &self.who,
            parent,
            &name,
            mode,
            0,
            libc::O_WRONLY | libc::O_EXCL,
        ) {
            Ok((_, fh)) => fh,
            Err(Error::Exists) => {
                let ino = self.fs.lookup(&self.who, parent, &name)?.ino;
                self.fs
                    .open(&self.who, ino, libc::O_WRONLY | libc::O_TRUNC)?
            }
            Err(e) => return Err(e),
        };
        let r = (|| {
            let got = read_hashed(src, |off, data| {
                let mut done = 0;
                while done < data.len() {
                    done += self.fs.write(fh, off + done as u64, &data[done..], None)? as usize;
                }
                Ok(())
            })?;
            // The source's times, as cp -a keeps them.
            let set = SetAttr {
                mtime: Some(Some((got.before.mtime(), got.before.mtime_nsec()))),
                ..SetAttr::default()
            };
            let ino = self.fs.lookup(&self.who, parent, &name)?.ino;
            let _ = self.fs.setattr(&self.who, ino, &set, None);
            Ok::<_, Error>((got.sha256, got.changed))
        })();
        self.fs.release(fh);
        r
    }

    fn symlink(&mut self, rel: &Path, target: &[u8]) -> Result<()> {
        let (parent, name) = self.parent_of(rel)?;
        self.fs
            .symlink(&self.who, parent, &name, target)
            .map(|_| ())
    }

    fn read_back(&mut self, rel: &Path) -> Result<Option<[u8; 32]>> {
        let Some(ino) = self.find(rel)? else {
            return Ok(None);
        };
        let fh = self.fs.open(&self.who, ino, libc::O_RDONLY)?;
        let mut h = Sha256::new();
        let mut off = 0u64;
        let r = loop {
            match self.fs.read(fh, off, 1 << 20) {
                Ok(d) if d.is_empty() => break Ok(()),
                Ok(d) => {
                    off += d.len() as u64;
                    h.update(&d);
                }
                Err(e) => break Err(e),
            }
        };
        self.fs.release(fh);
        r?;
        Ok(Some(h.finalize().into()))
    }
}

/// Imports through a live mount: the client's folder under the mountpoint.
pub struct MountTarget {
    pub dir: PathBuf,
}

impl Target for MountTarget {
    fn mkdir(&mut self, rel: &Path, mode: u32) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        match std::fs::DirBuilder::new()
            .mode(mode)
            .create(self.dir.join(rel))
        {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::Exists),
            Err(e) => Err(e.into()),
        }
    }

    fn file(&mut self, rel: &Path, src: &Path, mode: u32) -> Result<([u8; 32], bool)> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(self.dir.join(rel))?;
        let got = read_hashed(src, |_, data| Ok(out.write_all(data)?))?;
        out.sync_all()?;
        let _ = out.set_modified(got.before.modified()?);
        Ok((got.sha256, got.changed))
    }

    fn symlink(&mut self, rel: &Path, target: &[u8]) -> Result<()> {
        match std::os::unix::fs::symlink(OsStr::from_bytes(target), self.dir.join(rel)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::Exists),
            Err(e) => Err(e.into()),
        }
    }

    fn read_back(&mut self, rel: &Path) -> Result<Option<[u8; 32]>> {
        let p = self.dir.join(rel);
        if std::fs::symlink_metadata(&p).is_err() {
            return Ok(None);
        }
        hash_file(&p).map(|(h, _)| Some(h))
    }
}
