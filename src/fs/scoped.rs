//! Where a client-scoped mount starts: the backing directory of the client's folder, found by
//! its directory id (the client key carries it; the names above the folder are sealed with
//! keys the scoped mount does not hold). A whole walk of the backing tree, done once per
//! mount; symlinks are never followed, and an id claimed by two directories (a crafted
//! backing directory, or a copy made outside tutela) is refused rather than guessed.

use crate::crypto::Id;
use crate::error::{Error, Result};
use crate::format::dirfile;
use std::path::{Path, PathBuf};

/// The backing directory under `vault` whose `.tutela.dir` holds `id`.
pub fn find_dir_by_id(vault: &Path, id: &Id) -> Result<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![vault.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            let n = name.as_encoded_bytes();
            // The vault's own files, and tutela's own names inside directories.
            if (dir == vault && n.starts_with(b"tutela.")) || n.starts_with(b".tutela.") {
                continue;
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(e.path());
            }
        }
        if dir == vault {
            continue;
        }
        let file = dir.join(dirfile::FILE_NAME);
        if let Ok(b) = crate::sys::read_vault_file(&file, dirfile::LEN as u64 * 2, false) {
            if dirfile::parse(&b).as_ref() == Some(id) {
                found.push(dir);
            }
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Error::NotFound),
        n => Err(Error::UnsafeFile(format!(
            "{n} folders in the vault claim the client's folder id (a copy made outside tutela, \
             or a planted one): not mounting; a vault passphrase holder can sort it out with \
             tutela fsck"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_folder_by_its_id_never_two_never_through_a_symlink() {
        let t = tempfile::tempdir().unwrap();
        let v = t.path();
        let put = |rel: &str, id: u8| {
            let d = v.join(rel);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(dirfile::FILE_NAME), dirfile::encode(&[id; 16])).unwrap();
        };
        put("a", 1);
        put("a/b", 2);
        put("c", 3);
        assert_eq!(find_dir_by_id(v, &[2; 16]).unwrap(), v.join("a/b"));
        assert!(matches!(find_dir_by_id(v, &[9; 16]), Err(Error::NotFound)));
        // A link to the folder is not a second claim, and is not followed.
        std::os::unix::fs::symlink(v.join("a/b"), v.join("c/link")).unwrap();
        assert_eq!(find_dir_by_id(v, &[2; 16]).unwrap(), v.join("a/b"));
        // A planted copy of its id elsewhere: refused, not guessed.
        put("c/d", 2);
        assert!(matches!(
            find_dir_by_id(v, &[2; 16]),
            Err(Error::UnsafeFile(_))
        ));
    }
}
