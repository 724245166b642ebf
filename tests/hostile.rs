//! An attacker who can write the backing directory: each attack from docs/threat-model.md's table is
//! played here, and tutela must never return data that does not authenticate, never follow
//! what was planted, never panic or hang, and keep plaintext out of its log. Attacks that are
//! documented as undetected (whole-file swap, rollback, truncation at a block boundary) are
//! played too, to pin down exactly what the reader then sees.

mod common;

use common::{contains, errno_of, pattern, TestVault};
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn mounted(name: &str) -> Option<TestVault> {
    let mut v = TestVault::new(name)?;
    v.mount();
    Some(v)
}

/// The backing file of the only regular file whose plaintext size is `size`.
fn backing_of_size(v: &TestVault, size: u64) -> PathBuf {
    let ct = tutela::crypto::content::cipher_size(size);
    let hits: Vec<_> = v
        .backing_files()
        .into_iter()
        .filter(|(p, c)| c.len() as u64 == ct && !p.to_string_lossy().contains("tutela."))
        .collect();
    assert_eq!(hits.len(), 1, "expected one backing file of {ct} bytes");
    hits[0].0.clone()
}

/// Runs `f` in a thread and fails if it does not finish within `secs` (a hang).
fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("{what} hung for {secs}s"))
}

fn log_has_no(v: &TestVault, names: &[&str]) {
    let log = fs::read(&v.log).unwrap_or_default();
    for n in names {
        assert!(
            !contains(&log, n.as_bytes()),
            "plaintext {n:?} in the daemon log"
        );
    }
}

#[test]
fn whole_file_swap_and_rollback_read_authentic_old_data_as_documented() {
    let Some(mut v) = mounted("swap/rollback") else {
        return;
    };
    let a = pattern(10_000, 1);
    let b = pattern(20_000, 2);
    fs::write(v.p("invoice-a.txt"), &a).unwrap();
    fs::write(v.p("invoice-b.txt"), &b).unwrap();
    v.unmount();
    let (ba, bb) = (backing_of_size(&v, 10_000), backing_of_size(&v, 20_000));
    let old_a = fs::read(&ba).unwrap();
    // Swap the two files' ciphertext: undetected (contents are not bound to names), and
    // each name then shows the other file's authentic contents, never garbage.
    let tmp = ba.with_extension("t");
    fs::rename(&ba, &tmp).unwrap();
    fs::rename(&bb, &ba).unwrap();
    fs::rename(&tmp, &bb).unwrap();
    v.mount();
    assert_eq!(fs::read(v.p("invoice-a.txt")).unwrap(), b);
    assert_eq!(fs::read(v.p("invoice-b.txt")).unwrap(), a);
    // Roll a file back: change it, then put its old ciphertext back.
    fs::write(v.p("invoice-b.txt"), pattern(10_000, 3)).unwrap();
    v.unmount();
    fs::write(&bb, &old_a).unwrap();
    v.mount();
    assert_eq!(
        fs::read(v.p("invoice-b.txt")).unwrap(),
        a,
        "rollback reads the old version"
    );
    log_has_no(&v, &["invoice-a", "invoice-b"]);
}

#[test]
fn truncation_at_a_block_boundary_and_inside_a_block() {
    let Some(mut v) = mounted("truncate") else {
        return;
    };
    let data = pattern(3 * 4096 + 100, 4);
    fs::write(v.p("ledger.db"), &data).unwrap();
    v.unmount();
    let b = backing_of_size(&v, data.len() as u64);
    let cut = tutela::crypto::content::cipher_size(2 * 4096);
    fs::OpenOptions::new()
        .write(true)
        .open(&b)
        .unwrap()
        .set_len(cut)
        .unwrap();
    v.mount();
    // At a boundary: undetected, the file reads shorter and what remains is authentic.
    assert_eq!(fs::read(v.p("ledger.db")).unwrap(), &data[..2 * 4096]);
    v.unmount();
    fs::OpenOptions::new()
        .write(true)
        .open(&b)
        .unwrap()
        .set_len(cut - 10)
        .unwrap();
    v.mount();
    // Inside a block: the cut block fails authentication (EIO), earlier blocks still read.
    let f = fs::File::open(v.p("ledger.db")).unwrap();
    let mut buf = vec![0u8; 4096];
    f.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(buf, &data[..4096]);
    assert_eq!(errno_of(f.read_exact_at(&mut buf, 4096)), libc::EIO);
}

#[test]
fn replaced_directory_record_hides_names_but_never_panics() {
    let Some(mut v) = mounted("dir record") else {
        return;
    };
    fs::create_dir(v.p("Acme")).unwrap();
    fs::create_dir(v.p("Bluebird")).unwrap();
    fs::write(v.p("Acme/acme-plan.txt"), b"plan").unwrap();
    fs::write(v.p("Bluebird/bluebird-plan.txt"), b"plan").unwrap();
    v.unmount();
    // Copy one directory's ID record over the other's (file and xattr copies both).
    let dirs = common::backing_dirs(&v.vault);
    assert_eq!(dirs.len(), 2);
    let rec = fs::read(dirs[0].join(".tutela.dir")).unwrap();
    let target = dirs[1].join(".tutela.dir");
    let mut perm = fs::metadata(&target).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o644);
    fs::set_permissions(&target, perm).unwrap();
    fs::write(&target, &rec).unwrap();
    let _ = std::process::Command::new("setfattr")
        .args(["-x", "user.tutela.dirid"])
        .arg(&dirs[1])
        .output();
    v.mount();
    // One of the two directories now lists nothing (its names do not decrypt under the
    // planted ID): skipped with a warning, no error, no panic, the other one is intact.
    let a = fs::read_dir(v.p("Acme")).unwrap().count();
    let b = fs::read_dir(v.p("Bluebird")).unwrap().count();
    assert_eq!(
        a + b,
        1,
        "exactly the untouched directory still lists its file"
    );
    assert!(fs::read_dir(&v.mnt).unwrap().count() == 2);
    log_has_no(&v, &["acme-plan", "bluebird-plan", "Acme", "Bluebird"]);
}

#[test]
fn planted_fifos_and_symlinks_never_hang_or_lead_outside() {
    let Some(mut v) = mounted("planted") else {
        return;
    };
    fs::create_dir(v.p("folder")).unwrap();
    fs::write(v.p("folder/inside.txt"), b"inside").unwrap();
    fs::write(v.p("report.txt"), pattern(777, 5)).unwrap();
    v.unmount();
    let file = backing_of_size(&v, 777);
    let dir = common::first_backing_dir(&v.vault);
    // A FIFO in place of a file's ciphertext, and one in place of a directory.
    fs::remove_file(&file).unwrap();
    nix_mkfifo(&file);
    let moved = dir.with_extension("away");
    fs::rename(&dir, &moved).unwrap();
    nix_mkfifo(&dir);
    v.mount();
    let mnt = v.mnt.clone();
    let r = within(10, "stat/list of planted FIFOs", move || {
        let kinds: Vec<_> = fs::read_dir(&mnt)
            .unwrap()
            .map(|e| e.unwrap().file_type().unwrap())
            .collect();
        let folder = fs::read_dir(mnt.join("folder")).map(|d| d.count());
        (kinds.len(), folder.is_err())
    });
    assert_eq!(
        r,
        (2, true),
        "both entries listed; the folder cannot be entered"
    );
    // The planted FIFO is shown as what it is; a non-blocking open does not hang the daemon.
    let p = v.p("report.txt");
    within(10, "open of a planted FIFO", move || {
        let _ = fs::OpenOptions::new()
            .read(true)
            .custom_flags_nonblock()
            .open(&p);
    });
    v.unmount();
    // A symlink planted in place of a directory pointing outside the vault: never followed.
    fs::remove_file(&dir).unwrap();
    let outside = v.tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("bait"), b"outside data").unwrap();
    std::os::unix::fs::symlink(&outside, &dir).unwrap();
    v.mount();
    let start = Instant::now();
    assert!(fs::read_dir(v.p("folder")).map(|d| d.count()).unwrap_or(0) == 0);
    assert!(fs::read(v.p("folder/bait")).is_err());
    assert!(start.elapsed() < Duration::from_secs(10));
    v.unmount();
    fs::remove_file(&dir).unwrap();
    fs::rename(&moved, &dir).unwrap();
    v.mount();
    assert_eq!(fs::read(v.p("folder/inside.txt")).unwrap(), b"inside");
}

fn nix_mkfifo(p: &std::path::Path) {
    let c = common::cpath(p);
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}
impl NonBlock for fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::custom_flags(self, libc::O_NONBLOCK)
    }
}

#[test]
fn huge_sparse_files_and_absurd_names_are_handled() {
    let Some(mut v) = mounted("huge/long") else {
        return;
    };
    fs::write(v.p("small.bin"), pattern(5000, 6)).unwrap();
    v.unmount();
    let b = backing_of_size(&v, 5000);
    // Made huge (sparse, 1 TiB): holes read as zeros, nothing is allocated for them.
    fs::OpenOptions::new()
        .write(true)
        .open(&b)
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    // A name far beyond NAME_MAX cannot exist on Linux; the longest possible backing name,
    // a long-name entry whose record is huge, and one whose record is missing.
    fs::write(v.vault.join("Z".repeat(255)), b"junk").unwrap();
    let long = format!("~{}", "A".repeat(43));
    fs::write(v.vault.join(&long), b"junk").unwrap();
    fs::write(v.vault.join(format!("{long}.name")), vec![b'Q'; 10 << 20]).unwrap();
    fs::write(v.vault.join(format!("~{}", "B".repeat(43))), b"junk").unwrap();
    v.mount();
    let mnt = v.mnt.clone();
    let names = within(20, "listing with planted names", move || {
        fs::read_dir(&mnt)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>()
    });
    assert_eq!(names, vec![std::ffi::OsString::from("small.bin")]);
    let md = fs::metadata(v.p("small.bin")).unwrap();
    assert!(md.len() > (1 << 39), "the huge size shows");
    let f = fs::File::open(v.p("small.bin")).unwrap();
    let mut buf = vec![1u8; 1 << 20];
    f.read_exact_at(&mut buf, 1 << 39).unwrap();
    assert!(buf.iter().all(|&x| x == 0), "holes read as zeros");
    let mut head = vec![0u8; 4096];
    f.read_exact_at(&mut head, 0).unwrap();
    assert_eq!(head, &pattern(5000, 6)[..4096]);
    // The old last block, now followed by more data, is no longer a valid full block.
    assert_eq!(errno_of(f.read_exact_at(&mut head, 4096)), libc::EIO);
}
