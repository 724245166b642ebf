//! `tutela client export`: a client's files, decrypted, as a standard tar archive or a plain
//! directory, with `MANIFEST.sha256` (the format `sha256sum -c` checks). Reads the vault
//! directly; no mount is needed.

use crate::error::{Error, Result};
use crate::fs::inode::Kind;
use crate::fs::{Attr, Fh, Fs, Ino, Subject};
use crate::offline::clients::{me, read_only_fs, resolve, zone_named};
use crate::vault::Vault;
use sha2::{Digest, Sha256};
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub const MANIFEST: &str = "MANIFEST.sha256";

#[derive(Debug, Default, serde::Serialize)]
pub struct ExportReport {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    /// Special files (FIFOs, sockets, devices) hold no data and are left out.
    pub skipped: u64,
    /// Files that kept changing while a live mount was exported (each is exported as it
    /// was at one moment while it was read; `CHANGED.txt` in the export lists them).
    pub changed: Vec<String>,
}

/// Lists the files that changed during a live export.
pub const CHANGED: &str = "CHANGED.txt";

/// Tries to read a file that changes meanwhile this many times.
const TRIES: u32 = 3;

/// Where the export goes: a tar archive (plain, gzip or zstd), or a directory (new or empty).
enum Sink {
    Tar(Box<tar::Builder<crate::offline::archive::Writer>>),
    Dir(PathBuf),
}

struct Export<'a> {
    fs: &'a Fs,
    who: Subject,
    sink: Sink,
    manifest: String,
    report: ExportReport,
    progress: &'a dyn Fn(u64),
    /// Others may write meanwhile (a live mount): each file is read until it did not
    /// change while it was read.
    live: bool,
    /// Where scratch copies go: beside the export, where the plaintext is asked to go.
    spool_dir: PathBuf,
}

/// Exports client `name` to `output`. `progress` sees the bytes written so far; `total`
/// (bytes) is returned first through `start` so a progress bar can be sized.
pub fn export(
    vault: &Vault,
    name: &str,
    output: &Path,
    start: &dyn Fn(u64),
    progress: &dyn Fn(u64),
) -> Result<ExportReport> {
    let zone = zone_named(vault, name)?;
    let fs = read_only_fs(vault)?;
    export_from(&fs, &zone.path, name, output, false, start, progress)
}

/// Exports client `keys.name` with a client key (the client's keys only): its folder, found
/// by its directory id, read through a filesystem that knows that client's zone alone. The
/// export is recorded in the vault's audit log, in the sealed chain a scoped writer uses.
pub fn export_scoped(
    dir: &Path,
    config: &crate::format::config::Config,
    keys: &crate::vault::client_slots::ClientKeys,
    output: &Path,
    start: &dyn Fn(u64),
    progress: &dyn Fn(u64),
) -> Result<ExportReport> {
    let top = crate::fs::scoped::find_dir_by_id(dir, &keys.top_dir_id)?;
    let fs = Fs::new_scoped(
        &top,
        keys.top_dir_id,
        (keys.zone_id, &keys.zone_key, &keys.path),
        crate::fs::Options {
            read_only: true,
            ..crate::fs::Options::default()
        },
    )?;
    // The log first: an export that cannot be recorded is not made.
    let sink = crate::audit::Sink::start_scoped(
        dir,
        config.vault_id,
        &keys.zone_id,
        keys.audit_public,
        None,
    )?;
    let rep = export_from(&fs, "/", &keys.name, output, false, start, progress);
    let mut r = crate::audit::Record::now("client-export", &keys.path);
    r.user = crate::sys::user_name(r.uid).unwrap_or_default();
    r.client = Some(keys.name.clone());
    match &rep {
        Ok(x) => {
            r.detail = Some(format!(
                "client '{}' (client key '{}'): {} files, {} bytes",
                keys.name, keys.label, x.files, x.bytes
            ))
        }
        Err(e) => {
            r.result = "failed".into();
            r.detail = Some(e.to_string());
        }
    }
    sink.record(r);
    sink.close();
    rep
}

/// Exports the client `name` whose folder is `path` in `fs`. `live`: others write meanwhile.
pub fn export_from(
    fs: &Fs,
    path: &str,
    name: &str,
    output: &Path,
    live: bool,
    start: &dyn Fn(u64),
    progress: &dyn Fn(u64),
) -> Result<ExportReport> {
    let zone_path = path;
    let who = me();
    let top = resolve(fs, &who, zone_path)?.ok_or_else(|| {
        Error::Usage(format!(
            "client '{name}' has no folder at {zone_path} (deleted?)"
        ))
    })?;
    let kind = crate::offline::archive::kind_of(output)?;
    let sink = if kind != crate::offline::archive::Kind::Folder {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(output)
            .map_err(|e| {
                Error::Usage(format!(
                    "cannot create {}: {e} (it must not exist yet)",
                    output.display()
                ))
            })?;
        let mut b = tar::Builder::new(crate::offline::archive::Writer::new(kind, f)?);
        b.follow_symlinks(false);
        Sink::Tar(Box::new(b))
    } else {
        // A client's files in plaintext: only the exporting user may look until they say.
        crate::sys::ensure_empty_dir(output, 0o700).map_err(|_| {
            Error::Usage(format!(
                "{} must be a new or empty folder (or name a .tar, .tar.gz or .tar.zst file)",
                output.display()
            ))
        })?;
        Sink::Dir(output.to_path_buf())
    };
    let archive = matches!(sink, Sink::Tar(_));
    let written = (|| {
        let mut total = 0;
        size_of_tree(fs, &who, top, &mut total)?;
        start(total);
        let mut ex = Export {
            fs,
            who,
            sink,
            manifest: String::new(),
            report: ExportReport::default(),
            progress,
            live,
            spool_dir: match output.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            },
        };
        let top_attr = fs.getattr(&who, top, None)?;
        ex.dir_entry(name.as_bytes(), &top_attr)?;
        ex.walk(top, name.as_bytes().to_vec())?;
        ex.finish()
    })();
    // Leave no half-written archive that looks complete (only the one made here: an existing
    // file of that name was refused above and is never touched).
    if written.is_err() && archive {
        let _ = std::fs::remove_file(output);
    }
    written
}

fn size_of_tree(fs: &Fs, who: &Subject, dir: Ino, total: &mut u64) -> Result<()> {
    for e in fs.readdir(who, dir)? {
        if e.name == "." || e.name == ".." {
            continue;
        }
        let a = fs.lookup(who, dir, &e.name)?;
        match a.kind {
            Kind::Dir => size_of_tree(fs, who, a.ino, total)?,
            Kind::File => *total += a.size,
            _ => {}
        }
    }
    Ok(())
}

/// One manifest line as `sha256sum` writes it (names with a newline or backslash escaped).
fn manifest_line(hash: &[u8], path: &[u8]) -> String {
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    let p = String::from_utf8_lossy(path);
    if p.contains('\n') || p.contains('\\') {
        format!(
            "\\{hex}  {}\n",
            p.replace('\\', "\\\\").replace('\n', "\\n")
        )
    } else {
        format!("{hex}  {p}\n")
    }
}

/// Reads a file through the filesystem core, hashing as it goes.
struct PlainReader<'a> {
    fs: &'a Fs,
    fh: Fh,
    off: u64,
    hasher: Sha256,
    done: u64,
    progress: &'a dyn Fn(u64),
    base: u64,
}

impl<'a> PlainReader<'a> {
    /// Reads open file `fh` from its start, hashing, with progress counted from `base`.
    fn new(fs: &'a Fs, fh: Fh, progress: &'a dyn Fn(u64), base: u64) -> PlainReader<'a> {
        PlainReader {
            fs,
            fh,
            off: 0,
            hasher: Sha256::new(),
            done: 0,
            progress,
            base,
        }
    }
}

impl Read for PlainReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = buf.len().min(1 << 20) as u32;
        let data = self
            .fs
            .read(self.fh, self.off, want)
            .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))?;
        buf[..data.len()].copy_from_slice(&data);
        self.hasher.update(&data);
        self.off += data.len() as u64;
        self.done += data.len() as u64;
        (self.progress)(self.base + self.done);
        Ok(data.len())
    }
}

impl Export<'_> {
    fn walk(&mut self, dir: Ino, path: Vec<u8>) -> Result<()> {
        let mut entries = self.fs.readdir(&self.who, dir)?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        for e in entries {
            if e.name == "." || e.name == ".." {
                continue;
            }
            let a = self.fs.lookup(&self.who, dir, &e.name)?;
            let mut p = path.clone();
            p.push(b'/');
            p.extend_from_slice(e.name.as_bytes());
            match a.kind {
                Kind::Dir => {
                    self.dir_entry(&p, &a)?;
                    self.walk(a.ino, p)?;
                }
                Kind::File => self.file(&p, &a)?,
                Kind::Symlink => {
                    let target = self.fs.readlink(&self.who, a.ino)?;
                    self.symlink(&p, &target, &a)?;
                }
                _ => self.report.skipped += 1,
            }
        }
        Ok(())
    }

    fn header(kind: tar::EntryType, a: &Attr, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(u32::from(a.perm));
        h.set_mtime(a.mtime.0.max(0) as u64);
        h.set_uid(u64::from(a.uid));
        h.set_gid(u64::from(a.gid));
        h.set_size(size);
        h
    }

    fn dir_entry(&mut self, path: &[u8], a: &Attr) -> Result<()> {
        self.report.dirs += 1;
        match &mut self.sink {
            Sink::Tar(b) => {
                let mut h = Self::header(tar::EntryType::Directory, a, 0);
                b.append_data(&mut h, OsStr::from_bytes(path), std::io::empty())?;
            }
            Sink::Dir(root) => {
                std::fs::create_dir_all(root.join(OsStr::from_bytes(path)))?;
            }
        }
        Ok(())
    }

    fn symlink(&mut self, path: &[u8], target: &[u8], a: &Attr) -> Result<()> {
        self.report.symlinks += 1;
        match &mut self.sink {
            Sink::Tar(b) => {
                let mut h = Self::header(tar::EntryType::Symlink, a, 0);
                b.append_link(&mut h, OsStr::from_bytes(path), OsStr::from_bytes(target))?;
            }
            Sink::Dir(root) => {
                std::os::unix::fs::symlink(
                    OsStr::from_bytes(target),
                    root.join(OsStr::from_bytes(path)),
                )?;
            }
        }
        Ok(())
    }

    fn file(&mut self, path: &[u8], a: &Attr) -> Result<()> {
        if !self.live {
            return self.file_once(path, a);
        }
        // A live mount: read into a scratch copy, then keep it only if the file did not
        // change while it was read (size, mtime and ctime the same before and after).
        let stamp = |a: &Attr| (a.size, a.mtime, a.ctime);
        let mut last_err = None;
        for _ in 0..TRIES {
            let before = self.fs.getattr(&self.who, a.ino, None)?;
            let spool = match self.spool(&before) {
                Ok(s) => s,
                Err(e) => {
                    last_err = Some(e);
                    continue;
                }
            };
            let after = self.fs.getattr(&self.who, a.ino, None)?;
            if stamp(&before) == stamp(&after) {
                return self.append_spooled(path, &before, spool);
            }
        }
        // It kept changing: the last whole read is kept, and the export says so.
        let before = self.fs.getattr(&self.who, a.ino, None)?;
        let spool = match self.spool(&before) {
            Ok(s) => s,
            Err(e) => return Err(last_err.unwrap_or(e)),
        };
        self.report
            .changed
            .push(String::from_utf8_lossy(path).into_owned());
        self.append_spooled(path, &before, spool)
    }

    /// Reads the whole file into an unnamed scratch file; returns it, its hash and length.
    fn spool(&self, a: &Attr) -> Result<(std::fs::File, Vec<u8>, u64)> {
        let fh = self.fs.open(&self.who, a.ino, libc::O_RDONLY)?;
        let mut r = PlainReader::new(self.fs, fh, self.progress, self.report.bytes);
        let res = tempfile::tempfile_in(&self.spool_dir).and_then(|mut f| {
            std::io::copy(&mut r, &mut f)?;
            Ok(f)
        });
        self.fs.release(fh);
        let f = res?;
        Ok((f, r.hasher.finalize().to_vec(), r.done))
    }

    fn append_spooled(
        &mut self,
        path: &[u8],
        a: &Attr,
        (mut f, hash, len): (std::fs::File, Vec<u8>, u64),
    ) -> Result<()> {
        use std::io::Seek;
        f.rewind()?;
        match &mut self.sink {
            Sink::Tar(b) => {
                let mut h = Self::header(tar::EntryType::Regular, a, len);
                b.append_data(&mut h, OsStr::from_bytes(path), &mut f)?;
            }
            Sink::Dir(root) => {
                use std::os::unix::fs::PermissionsExt;
                let dest = root.join(OsStr::from_bytes(path));
                let mut out = std::fs::File::create(&dest)?;
                std::io::copy(&mut f, &mut out)?;
                out.set_permissions(std::fs::Permissions::from_mode(u32::from(a.perm)))?;
                out.set_modified(
                    std::time::UNIX_EPOCH
                        + std::time::Duration::new(a.mtime.0.max(0) as u64, a.mtime.1 as u32),
                )?;
                out.sync_all()?;
            }
        }
        self.report.files += 1;
        self.report.bytes += len;
        self.manifest.push_str(&manifest_line(&hash, path));
        Ok(())
    }

    fn file_once(&mut self, path: &[u8], a: &Attr) -> Result<()> {
        let fh = self.fs.open(&self.who, a.ino, libc::O_RDONLY)?;
        let mut r = PlainReader::new(self.fs, fh, self.progress, self.report.bytes);
        let res = match &mut self.sink {
            Sink::Tar(b) => {
                let mut h = Self::header(tar::EntryType::Regular, a, a.size);
                // Exactly the size in the header: a file that changed meanwhile fails loudly.
                let mut limited = (&mut r).take(a.size);
                b.append_data(&mut h, OsStr::from_bytes(path), &mut limited)
                    .map_err(Error::Io)
            }
            Sink::Dir(root) => {
                use std::os::unix::fs::PermissionsExt;
                let dest = root.join(OsStr::from_bytes(path));
                let res = std::fs::File::create(&dest).and_then(|mut f| {
                    std::io::copy(&mut r, &mut f)?;
                    f.set_permissions(std::fs::Permissions::from_mode(u32::from(a.perm)))?;
                    f.set_modified(
                        std::time::UNIX_EPOCH
                            + std::time::Duration::new(a.mtime.0.max(0) as u64, a.mtime.1 as u32),
                    )?;
                    f.sync_all()
                });
                res.map_err(Error::Io)
            }
        };
        self.fs.release(fh);
        res?;
        if r.done != a.size {
            return Err(Error::Io(std::io::Error::other(format!(
                "a file changed size during the export ({} of {} bytes read)",
                r.done, a.size
            ))));
        }
        self.report.files += 1;
        self.report.bytes += r.done;
        let hash = r.hasher.finalize();
        self.manifest.push_str(&manifest_line(&hash, path));
        Ok(())
    }

    /// Writes the manifest and closes the archive (ending its compressed stream) or folder.
    fn finish(self) -> Result<ExportReport> {
        match self.sink {
            Sink::Tar(mut b) => {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(self.manifest.len() as u64);
                h.set_mtime(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0),
                );
                b.append_data(&mut h, MANIFEST, self.manifest.as_bytes())?;
                if !self.report.changed.is_empty() {
                    let text = changed_text(&self.report.changed);
                    h.set_size(text.len() as u64);
                    b.append_data(&mut h, CHANGED, text.as_bytes())?;
                }
                b.into_inner()?.finish()?;
            }
            Sink::Dir(root) => {
                let mut f = std::fs::File::create(root.join(MANIFEST))?;
                f.write_all(self.manifest.as_bytes())?;
                f.sync_all()?;
                if !self.report.changed.is_empty() {
                    std::fs::write(root.join(CHANGED), changed_text(&self.report.changed))?;
                }
            }
        }
        Ok(self.report)
    }
}

fn changed_text(paths: &[String]) -> String {
    let mut t = String::from(
        "These files were being changed while the export read them, again and again; each is \
         exported as it was at one moment during the export (its checksum in MANIFEST.sha256 \
         matches what was exported):\n",
    );
    for p in paths {
        t.push_str(&crate::text::escape(p));
        t.push('\n');
    }
    t
}

#[cfg(test)]
mod tests {
    use super::manifest_line;

    #[test]
    fn manifest_lines_match_sha256sum() {
        assert_eq!(
            manifest_line(&[0xab, 0x01], b"acme/a b"),
            "ab01  acme/a b\n"
        );
        assert_eq!(manifest_line(&[0xab], b"acme/x\ny"), "\\ab  acme/x\\ny\n");
    }
}
