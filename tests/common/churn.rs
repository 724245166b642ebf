//! Directory churn: threads create, remove, rename and list in overlapping trees for a bounded
//! time, each keeping an exact model of what it made (tests/identity.rs, tests/scoped_mount.rs).

use super::Rng;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What one worker believes exists: relative path -> Some(contents) for files, None for
/// directories. Workers only touch names they made (prefixed with their number), inside
/// directories shared by all, so each model stays exact while the trees overlap.
pub type Model = BTreeMap<String, Option<Vec<u8>>>;

pub fn churn(root: PathBuf, worker: usize, until: Instant) -> Model {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((worker as u64 + 1) * 0x1234_5678_9abc));
    let mut m = Model::new();
    let shared = ["s0", "s1", "s2"];
    let mut n = 0u64;
    let mut ops = 0u64;
    while Instant::now() < until {
        ops += 1;
        n += 1;
        let dirs: Vec<String> = shared
            .iter()
            .map(|s| s.to_string())
            .chain(
                m.iter()
                    .filter(|(k, v)| v.is_none() && k.matches('/').count() < 4)
                    .map(|(k, _)| k.clone()),
            )
            .collect();
        let parent = dirs[rng.below(dirs.len())].clone();
        let name = format!("{parent}/w{worker}_{n}");
        let files: Vec<String> = m
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        let own_dirs: Vec<String> = m
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        match rng.below(9) {
            0 | 1 => {
                fs::create_dir(root.join(&name)).unwrap();
                m.insert(name, None);
            }
            2 | 3 => {
                let data = format!("{name}:{n}").into_bytes();
                fs::write(root.join(&name), &data).unwrap();
                m.insert(name, Some(data));
            }
            4 if !files.is_empty() => {
                let f = &files[rng.below(files.len())];
                fs::remove_file(root.join(f)).unwrap();
                m.remove(f);
            }
            5 if !own_dirs.is_empty() => {
                // Remove a whole subtree (files first, then directories bottom-up).
                let d = own_dirs[rng.below(own_dirs.len())].clone();
                fs::remove_dir_all(root.join(&d)).unwrap();
                let prefix = format!("{d}/");
                m.retain(|k, _| *k != d && !k.starts_with(&prefix));
            }
            6 if !files.is_empty() => {
                let f = files[rng.below(files.len())].clone();
                fs::rename(root.join(&f), root.join(&name)).unwrap();
                let v = m.remove(&f).unwrap();
                m.insert(name, v);
            }
            7 if !own_dirs.is_empty() => {
                let d = own_dirs[rng.below(own_dirs.len())].clone();
                let prefix = format!("{d}/");
                if parent == d || parent.starts_with(&prefix) {
                    continue;
                }
                fs::rename(root.join(&d), root.join(&name)).unwrap();
                let moved: Vec<(String, Option<Vec<u8>>)> = m
                    .iter()
                    .filter(|(k, _)| **k == d || k.starts_with(&prefix))
                    .map(|(k, v)| (format!("{name}{}", &k[d.len()..]), v.clone()))
                    .collect();
                m.retain(|k, _| *k != d && !k.starts_with(&prefix));
                m.extend(moved);
            }
            _ => {
                // Churn that frees and reuses inode numbers, then a listing checked against
                // the model (only this worker's names: the others change meanwhile).
                let t = root.join(format!("{parent}/w{worker}_tmp"));
                fs::create_dir(&t).unwrap();
                fs::read_dir(&t).unwrap().for_each(drop);
                fs::remove_dir(&t).unwrap();
                let mine = format!("w{worker}_");
                let seen: Vec<String> = fs::read_dir(root.join(&parent))
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|s| s.starts_with(&mine))
                    .map(|s| format!("{parent}/{s}"))
                    .collect();
                let mut want: Vec<String> = m
                    .keys()
                    .filter(|k| {
                        k.strip_prefix(&format!("{parent}/"))
                            .is_some_and(|rest| !rest.contains('/'))
                    })
                    .cloned()
                    .collect();
                let mut seen = seen;
                seen.sort();
                want.sort();
                assert_eq!(seen, want, "worker {worker}: listing of {parent}");
            }
        }
    }
    eprintln!("worker {worker}: {ops} operations, {} entries", m.len());
    m
}

pub fn read_tree(root: &Path, rel: &str, out: &mut Model) {
    for e in fs::read_dir(root.join(rel)).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        if e.file_type().unwrap().is_dir() {
            out.insert(path.clone(), None);
            read_tree(root, &path, out);
        } else {
            out.insert(path.clone(), Some(fs::read(root.join(&path)).unwrap()));
        }
    }
}
