//! Backups of the backing directory with real tools: what rsync and restic copy is ciphertext,
//! a restore into a new place mounts and reads back identical contents, and a one-block change
//! in a large file stays local (rsync transfers kilobytes, not the file).

mod common;

use common::{pattern, run_ok, TestVault};
use std::fs;
use std::path::Path;
use std::process::Command;

fn fill(v: &TestVault) {
    fs::create_dir_all(v.p("clients/Acme/2025")).unwrap();
    fs::write(v.p("clients/Acme/2025/ledger.csv"), pattern(300_000, 1)).unwrap();
    fs::write(v.p("clients/Acme/letter.txt"), b"Dear Acme, CONFIDENTIAL\n").unwrap();
    std::os::unix::fs::symlink("2025/ledger.csv", v.p("clients/Acme/latest")).unwrap();
}

/// Mounts `vault` (a restored copy) at a fresh mountpoint and checks the contents.
fn check_restored(v: &TestVault, vault: &Path) {
    let mnt = v.tmp.path().join(format!(
        "restored-mnt-{}",
        vault.file_name().unwrap().to_string_lossy()
    ));
    fs::create_dir_all(&mnt).unwrap();
    run_ok(
        common::tutela()
            .arg("mount")
            .arg(vault)
            .arg(&mnt)
            .arg("--passfile")
            .arg(&v.passfile),
    );
    let ledger = fs::read(mnt.join("clients/Acme/2025/ledger.csv"));
    let letter = fs::read(mnt.join("clients/Acme/letter.txt"));
    let link = fs::read_link(mnt.join("clients/Acme/latest"));
    run_ok(common::tutela().arg("unmount").arg(&mnt));
    assert_eq!(ledger.unwrap(), pattern(300_000, 1));
    assert_eq!(letter.unwrap(), b"Dear Acme, CONFIDENTIAL\n");
    assert_eq!(link.unwrap().to_str().unwrap(), "2025/ledger.csv");
    // The restored copy passes fsck.
    let out = common::tutela()
        .arg("fsck")
        .arg(vault)
        .arg("--passfile")
        .arg(&v.passfile)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fsck of the restored copy: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn rsync_backup_while_mounted_and_unmounted_restores_whole() {
    let Some(mut v) = TestVault::new("rsync backup") else {
        return;
    };
    if !common::need("rsync", "rsync backup") {
        return;
    }
    v.mount();
    fill(&v);
    let live = v.tmp.path().join("backup-live");
    run_ok(
        Command::new("rsync")
            .arg("-aHX")
            .arg(format!("{}/", v.vault.display()))
            .arg(&live),
    );
    v.unmount();
    let cold = v.tmp.path().join("backup-cold");
    run_ok(
        Command::new("rsync")
            .arg("-aHX")
            .arg(format!("{}/", v.vault.display()))
            .arg(&cold),
    );
    for b in [&live, &cold] {
        // What the backup tool saw is ciphertext only.
        common::assert_no_plaintext(b, &[b"CONFIDENTIAL", b"Acme", b"ledger", b"clients"]);
        check_restored(&v, b);
    }
}

#[test]
fn one_block_change_in_a_large_file_transfers_kilobytes() {
    let Some(mut v) = TestVault::new("rsync locality") else {
        return;
    };
    if !common::need("rsync", "rsync locality") {
        return;
    }
    v.mount();
    let big = v.p("big.bin");
    let data = pattern(100 << 20, 9);
    fs::write(&big, &data).unwrap();
    fs::write(v.p("other.txt"), b"untouched").unwrap();
    v.unmount();
    let backup = v.tmp.path().join("backup");
    run_ok(
        Command::new("rsync")
            .arg("-a")
            .arg(format!("{}/", v.vault.display()))
            .arg(&backup),
    );
    let before: Vec<(std::path::PathBuf, Vec<u8>)> = v.backing_files();
    // rsync's quick check compares mtimes in whole seconds: a change within the same second
    // as the last backup would be skipped (as on any filesystem).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    v.mount();
    {
        use std::os::unix::fs::FileExt;
        let f = fs::OpenOptions::new().write(true).open(&big).unwrap();
        f.write_all_at(&[0xEE; 4096], 50 << 20).unwrap();
        f.sync_all().unwrap();
    }
    v.unmount();
    // Only that file changed (the audit log only gained a new segment; nothing was rewritten).
    let after = v.backing_files();
    for (p, c) in &before {
        let now = after.iter().find(|(q, _)| q == p).map(|(_, c)| c);
        let is_big = c.len() as u64 == tutela::crypto::content::cipher_size(100 << 20);
        if !is_big {
            assert_eq!(
                now,
                Some(c),
                "{} changed on a write to another file",
                p.display()
            );
        }
    }
    let (literal, stats) = rsync_delta(&v.vault, &backup);
    assert!(
        literal < 256 * 1024,
        "a 4 KiB change sent {literal} literal bytes:\n{stats}"
    );
    // Appending does not rewrite the rest either.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    v.mount();
    {
        let mut f = fs::OpenOptions::new().append(true).open(&big).unwrap();
        std::io::Write::write_all(&mut f, &[0xAB; 10_000]).unwrap();
        f.sync_all().unwrap();
    }
    v.unmount();
    let (literal, stats) = rsync_delta(&v.vault, &backup);
    assert!(
        literal < 256 * 1024,
        "a 10 KB append sent {literal} literal bytes:\n{stats}"
    );
    check_restored_big(&v, &backup);
}

/// An incremental rsync of the vault into `backup`: (literal bytes sent, the --stats text).
fn rsync_delta(vault: &Path, backup: &Path) -> (u64, String) {
    let out = run_ok(
        Command::new("rsync")
            .arg("-a")
            .arg("--no-whole-file")
            .arg("--stats")
            .arg(format!("{}/", vault.display()))
            .arg(backup),
    );
    let stats = String::from_utf8_lossy(&out.stdout).into_owned();
    (literal_bytes(&stats), stats)
}

fn literal_bytes(stats: &str) -> u64 {
    stats
        .lines()
        .find_map(|l| l.strip_prefix("Literal data: "))
        .and_then(|s| s.split_whitespace().next())
        .map(|s| s.replace(',', ""))
        .and_then(|s| s.parse().ok())
        .expect("rsync --stats prints Literal data")
}

fn check_restored_big(v: &TestVault, vault: &Path) {
    let mnt = v.tmp.path().join("big-mnt");
    fs::create_dir_all(&mnt).unwrap();
    run_ok(
        common::tutela()
            .arg("mount")
            .arg(vault)
            .arg(&mnt)
            .arg("--passfile")
            .arg(&v.passfile),
    );
    let got = fs::read(mnt.join("big.bin"));
    run_ok(common::tutela().arg("unmount").arg(&mnt));
    let mut want = pattern(100 << 20, 9);
    want[50 << 20..(50 << 20) + 4096].fill(0xEE);
    want.extend_from_slice(&[0xAB; 10_000]);
    let got = got.unwrap();
    assert_eq!(got.len(), want.len());
    if let Some(i) = (0..want.len()).find(|&i| got[i] != want[i]) {
        panic!(
            "restored big file differs from byte {i} (block {})",
            i / 4096
        );
    }
}

#[test]
fn restic_backup_and_restore_round_trip() {
    let Some(mut v) = TestVault::new("restic") else {
        return;
    };
    if !common::need("restic", "restic") {
        return;
    }
    v.mount();
    fill(&v);
    let repo = v.tmp.path().join("restic-repo");
    let cache = v.tmp.path().join("restic-cache");
    let restic = |args: &[&str]| {
        let mut c = Command::new("restic");
        c.env("RESTIC_PASSWORD", "backup-repo-password")
            .env("RESTIC_CACHE_DIR", &cache);
        c.arg("--repo").arg(&repo).arg("--quiet").args(args);
        run_ok(&mut c)
    };
    restic(&["init"]);
    restic(&["backup", v.vault.to_str().unwrap()]); // while mounted
    v.unmount();
    restic(&["backup", v.vault.to_str().unwrap()]); // and while not
    let target = v.tmp.path().join("restored");
    restic(&["restore", "latest", "--target", target.to_str().unwrap()]);
    let restored = target.join(v.vault.strip_prefix("/").unwrap());
    check_restored(&v, &restored);
}
