//! Entries sealed under another directory's ID. Before node identity was fixed, a directory
//! that got a removed directory's inode number could inherit its cached ID, and entries made in
//! it were sealed under the dead directory's ID: invisible after a remount, and the directory
//! could not be removed. An entry whose name opens under another known directory ID is
//! re-sealed in place; one whose ID is gone with its directory (names cannot be recovered
//! without it) but whose contents are the vault's is moved, contents intact, into its zone's
//! `lost+found` as `recovered-N`. Neither needs guessing: the name or content authenticates.

use super::{join_plain, Ctx};
use crate::crypto::content::{self, FileCipher, CT_BLOCK, HEADER_LEN};
use crate::crypto::names::{self, NameCipher, Stored};
use crate::crypto::{kdf, Id};
use crate::error::{Error, Result};
use crate::format::dirfile;
use crate::sys;
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The folder, at the top of each zone, that takes entries whose names are lost.
pub const LOST_FOUND: &str = "lost+found";

/// An entry of the vault whose name opens under no known directory ID.
pub(super) struct Orphan {
    zone: usize,
    /// Backing path of the directory holding it, relative to the vault.
    dir: PathBuf,
    backing: OsString,
    /// Plaintext path of that directory (for the report).
    plain_dir: String,
}

/// Every directory ID in the backing tree (the root's from the config).
fn known_dir_ids(root: BorrowedFd<'_>, root_id: Id) -> Vec<Id> {
    let mut out = vec![root_id];
    collect_ids(root, &mut out, 0);
    out.sort_unstable();
    out.dedup();
    out
}

fn collect_ids(dir: BorrowedFd<'_>, out: &mut Vec<Id>, depth: usize) {
    let Ok(entries) = sys::read_dir(dir) else {
        return;
    };
    if depth > 1024 {
        return;
    }
    for e in entries {
        if e.dtype != libc::DT_DIR && e.dtype != libc::DT_UNKNOWN {
            continue;
        }
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
        if let Ok(sub) = sys::openat(dir, &e.name, flags, 0) {
            let (file, xattr) = crate::fs::dir_id_copies(sub.as_fd());
            out.extend(file.into_iter().chain(xattr));
            collect_ids(sub.as_fd(), out, depth + 1);
        }
    }
}

/// An entry of directory `dir` (`brel` its backing path, `plain` the directory's plaintext
/// path) whose well-formed name `full` does not open under the directory's own ID. Returns
/// its plaintext name and (possibly new) backing name when another ID opens it, so the walk
/// goes on checking it; None when it is reported here.
#[allow(clippy::too_many_arguments)]
pub(super) fn misplaced(
    cx: &mut Ctx<'_>,
    dir: BorrowedFd<'_>,
    brel: &Path,
    plain: &str,
    dir_id: Id,
    zone: usize,
    backing: &OsStr,
    full: &[u8],
) -> Option<(Vec<u8>, OsString)> {
    if cx.known_ids.is_none() {
        cx.known_ids = Some(known_dir_ids(cx.root.as_fd(), cx.root_id));
    }
    let cipher = &cx.zones[zone].1;
    let found = cx
        .known_ids
        .iter()
        .flatten()
        .filter(|id| **id != dir_id)
        .find_map(|id| cipher.decrypt(id, full).ok());
    if let Some(name) = found {
        let what = "name sealed under another directory's ID";
        if !cx.repair {
            let p = join_plain(plain, &name);
            cx.problem(
                Some(&p),
                brel,
                format!("{what} (--repair re-seals it)"),
                false,
                false,
            );
            return Some((name, backing.to_os_string()));
        }
        return match reseal(dir, backing, &name, cipher, &dir_id) {
            Ok((name, new)) => {
                let p = join_plain(plain, &name);
                cx.problem(Some(&p), brel, format!("{what}; re-sealed"), false, true);
                Some((name, new))
            }
            Err(e) => {
                let p = join_plain(plain, &name);
                cx.problem(
                    Some(&p),
                    brel,
                    format!("{what}; cannot re-seal: {e}"),
                    false,
                    false,
                );
                None
            }
        };
    }
    if !belongs(cx, dir, backing, zone) {
        cx.problem(
            None,
            brel,
            "name does not decrypt: a stray file (sync conflict copy, temp file) or damage",
            false,
            false,
        );
        return None;
    }
    if cx.repair {
        cx.orphans.push(Orphan {
            zone,
            dir: brel.parent().unwrap_or(Path::new("")).to_path_buf(),
            backing: backing.to_os_string(),
            plain_dir: plain.to_string(),
        });
    } else {
        cx.problem(
            None,
            brel,
            format!(
                "an entry of {} whose name was sealed under a removed directory's ID: the \
                 name is lost, the contents are intact (--repair moves it to {LOST_FOUND})",
                plain
            ),
            false,
            false,
        );
    }
    None
}

/// Renames `backing` in `dir` to `name` sealed under the directory's own ID; a name taken
/// meanwhile gets " (recovered)" (then " (recovered 2)", ...).
fn reseal(
    dir: BorrowedFd<'_>,
    backing: &OsStr,
    name: &[u8],
    cipher: &NameCipher,
    dir_id: &Id,
) -> Result<(Vec<u8>, OsString)> {
    for n in 0..100u32 {
        let candidate = match n {
            0 => name.to_vec(),
            1 => [name, b" (recovered)"].concat(),
            _ => [name, format!(" (recovered {n})").as_bytes()].concat(),
        };
        let Ok(stored) = cipher.encrypt(dir_id, &candidate) else {
            continue; // too long with the suffix
        };
        if move_to(dir, backing, dir, &stored)? {
            return Ok((candidate, OsString::from(stored.backing_name())));
        }
    }
    Err(Error::Exists)
}

/// Moves `backing` of `from` to the sealed name `to` in `into` unless that name is taken
/// (false); the long-name records of both names follow.
fn move_to(
    from: BorrowedFd<'_>,
    backing: &OsStr,
    into: BorrowedFd<'_>,
    to: &Stored,
) -> Result<bool> {
    let target = OsStr::new(to.backing_name());
    if sys::fstatat(into, target).is_ok() {
        return Ok(false);
    }
    crate::fs::write_long_record(into, to)?;
    match sys::renameat2(from, backing, into, target, libc::RENAME_NOREPLACE) {
        Ok(()) => {}
        Err(Error::Exists) => return Ok(false),
        Err(e) => return Err(e),
    }
    if backing
        .as_bytes()
        .starts_with(names::LONG_PREFIX.as_bytes())
    {
        let rec = names::long_record_name(&backing.to_string_lossy());
        let _ = sys::unlinkat(from, OsStr::new(&rec), false);
    }
    Ok(true)
}

/// Whether an entry is the vault's own (so worth keeping) though its name does not open: a
/// directory with an ID, a file whose first block authenticates under the zone's key, a
/// symlink whose target does, or an empty file or special file tutela made.
fn belongs(cx: &Ctx<'_>, dir: BorrowedFd<'_>, backing: &OsStr, zone: usize) -> bool {
    let Ok(st) = sys::fstatat(dir, backing) else {
        return false;
    };
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => sys::openat(dir, backing, libc::O_RDONLY | libc::O_DIRECTORY, 0)
            .map(|sub| {
                let (a, b) = crate::fs::dir_id_copies(sub.as_fd());
                a.or(b).is_some()
            })
            .unwrap_or(false),
        libc::S_IFREG if st.st_size == 0 => true,
        libc::S_IFREG => first_block_opens(cx, dir, backing, zone).unwrap_or(false),
        libc::S_IFLNK => sys::readlinkat(dir, backing)
            .ok()
            .and_then(|t| cx.zones[zone].1.decrypt_symlink(&t).ok())
            .is_some(),
        _ => true,
    }
}

fn first_block_opens(
    cx: &Ctx<'_>,
    dir: BorrowedFd<'_>,
    backing: &OsStr,
    zone: usize,
) -> Result<bool> {
    let fd = sys::openat(dir, backing, libc::O_RDONLY | libc::O_NONBLOCK, 0)?;
    let mut buf = vec![0u8; (HEADER_LEN + CT_BLOCK) as usize];
    let mut f = std::fs::File::from(fd);
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    if n < HEADER_LEN as usize {
        return Ok(false);
    }
    let Ok(id) = content::decode_header(&buf[..HEADER_LEN as usize]) else {
        return Ok(false);
    };
    if n == HEADER_LEN as usize {
        return Ok(true);
    }
    let block = &buf[HEADER_LEN as usize..n];
    if block.len() as u64 <= content::OVERHEAD {
        return Ok(false);
    }
    let cipher = FileCipher::new(&kdf::content_key(&cx.zones[zone].2, &id), id);
    let mut out = vec![0u8; block.len() - content::OVERHEAD as usize];
    Ok(cipher.open_block(0, block, &mut out).is_ok())
}

/// Moves every orphan into its zone's `lost+found` (made when missing), as `recovered-N`.
pub(super) fn place_orphans(cx: &mut Ctx<'_>, root: BorrowedFd<'_>) {
    let orphans = std::mem::take(&mut cx.orphans);
    for o in orphans {
        let brel = o.dir.join(&o.backing);
        let what = format!(
            "an entry of {} whose name was sealed under a removed directory's ID (the name \
             is lost, the contents are intact)",
            o.plain_dir
        );
        match place(cx, root, &o) {
            Ok(p) => cx.problem(Some(&p), &brel, format!("{what}; moved here"), false, true),
            Err(e) => cx.problem(
                None,
                &brel,
                format!("{what}; cannot move it to {LOST_FOUND}: {e}"),
                false,
                false,
            ),
        }
    }
}

fn place(cx: &Ctx<'_>, root: BorrowedFd<'_>, o: &Orphan) -> Result<String> {
    let (top_rel, top_id) = cx.tops.get(&o.zone).ok_or(Error::NotFound)?;
    let cipher = &cx.zones[o.zone].1;
    let top = open_rel(root, top_rel)?;
    let (lf, lf_id) = lost_found(top.as_fd(), cipher, top_id)?;
    let from = open_rel(root, &o.dir)?;
    let top_plain = if cx.zones[o.zone].0.is_empty() {
        "/".to_string()
    } else {
        cx.zones[o.zone].0.clone()
    };
    let lf_plain = join_plain(&top_plain, LOST_FOUND.as_bytes());
    for n in 1..100_000u32 {
        let name = format!("recovered-{n}");
        let stored = cipher.encrypt(&lf_id, name.as_bytes())?;
        if move_to(from.as_fd(), &o.backing, lf.as_fd(), &stored)? {
            return Ok(join_plain(&lf_plain, name.as_bytes()));
        }
    }
    Err(Error::Exists)
}

fn open_rel(root: BorrowedFd<'_>, rel: &Path) -> Result<OwnedFd> {
    sys::open_beneath(
        root,
        rel.as_os_str().as_bytes(),
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
    )
}

/// The zone's `lost+found` in its top directory `top` and its ID, made (mode 0700) if missing.
fn lost_found(top: BorrowedFd<'_>, cipher: &NameCipher, top_id: &Id) -> Result<(OwnedFd, Id)> {
    let stored = cipher.encrypt(top_id, LOST_FOUND.as_bytes())?;
    let name = OsStr::new(stored.backing_name());
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
    if let Ok(fd) = sys::openat(top, name, flags, 0) {
        let (a, b) = crate::fs::dir_id_copies(fd.as_fd());
        let id = a.or(b).ok_or(Error::Corrupt {
            what: "lost+found has no directory ID",
        })?;
        return Ok((fd, id));
    }
    // Made under a temporary name with its ID inside, then renamed into place (as mkdir).
    let mut rnd = [0u8; 8];
    crate::crypto::random_bytes(&mut rnd)?;
    let tmp = OsString::from(format!(".tutela.tmp.{}", u64::from_le_bytes(rnd)));
    sys::mkdirat(top, &tmp, 0o700)?;
    let sub = sys::openat(top, &tmp, flags, 0)?;
    let id = crate::crypto::random_id()?;
    let _ = sys::fsetxattr(sub.as_fd(), dirfile::XATTR_NAME, &dirfile::encode(&id), 0);
    crate::fs::write_dir_id_file(sub.as_fd(), &id)?;
    crate::fs::write_long_record(top, &stored)?;
    sys::renameat2(top, &tmp, top, name, libc::RENAME_NOREPLACE)?;
    Ok((sub, id))
}
