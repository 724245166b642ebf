//! fsck finds and locates damage (with plaintext paths) and repairs what needs no guessing;
//! fsync'ed data survives the daemon being killed (kill -9) under a write load.

mod common;

use common::{fsck, pattern, run_ok, tutela, TestVault};
use std::fs;
use std::io::Write;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tutela::error::exit;

#[test]
fn fsck_reports_damage_with_plaintext_paths_and_repairs_what_it_can() {
    let Some(mut v) = TestVault::new("fsck") else {
        return;
    };
    v.mount();
    fs::create_dir_all(v.p("clients/acme")).unwrap();
    fs::write(v.p("clients/acme/ledger.bin"), pattern(5 * 4096, 3)).unwrap();
    fs::write(v.p("clients/acme/fine.txt"), b"fine").unwrap();
    v.unmount();
    let (code, out) = fsck(&v, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("clean"), "{out}");

    // Damage: a flipped bit in block 3 of the ledger; the clients dir's .tutela.dir deleted;
    // an orphaned long-name record; a stray sync-tool file; a half-made temp directory.
    let ct = tutela::crypto::content::cipher_size(5 * 4096);
    let (ledger, mut bytes) = v
        .backing_files()
        .into_iter()
        .find(|(_, c)| c.len() as u64 == ct)
        .unwrap();
    bytes[tutela::crypto::content::block_offset(3) as usize + 50] ^= 4;
    fs::write(&ledger, &bytes).unwrap();
    let clients = common::first_backing_dir(&v.vault);
    let had_xattr = {
        let c = common::cpath(&clients);
        let n = std::ffi::CString::new("user.tutela.dirid").unwrap();
        // SAFETY: valid strings, null buffer asks for the size.
        unsafe { libc::getxattr(c.as_ptr(), n.as_ptr(), std::ptr::null_mut(), 0) >= 0 }
    };
    if had_xattr {
        fs::remove_file(clients.join(".tutela.dir")).unwrap();
    }
    fs::write(
        clients.join("~AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.name"),
        b"junk",
    )
    .unwrap();
    fs::write(v.vault.join("notes (conflicted copy 2026-11-23).txt"), b"x").unwrap();
    fs::create_dir(v.vault.join(".tutela.tmp.12345")).unwrap();

    let before = v.backing_files();
    let (code, out) = fsck(&v, &[]);
    assert_eq!(code, exit::FSCK_PROBLEMS, "{out}");
    assert!(
        out.contains("/clients/acme/ledger.bin")
            && out.contains("blocks 3)")
            && out.contains("data lost"),
        "{out}"
    );
    assert!(out.contains("orphaned long-name record"), "{out}");
    assert!(
        out.contains("conflicted copy") && out.contains("stray file"),
        "{out}"
    );
    assert!(out.contains("half-made"), "{out}");
    if had_xattr {
        assert!(
            out.contains("/clients (") && out.contains(".tutela.dir lost"),
            "{out}"
        );
    }
    assert_eq!(
        v.backing_files(),
        before,
        "fsck without --repair changes nothing"
    );

    // JSON for scripts.
    let (_, json) = fsck(&v, &["--json"]);
    let j: serde_json::Value = serde_json::from_str(
        json.lines()
            .take_while(|l| !l.starts_with("tutela:"))
            .collect::<Vec<_>>()
            .join("\n")
            .as_str(),
    )
    .unwrap();
    assert!(j["problems"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["path"] == "/clients/acme/ledger.bin" && p["data_lost"] == true));

    // --repair fixes the directory ID, the orphan and the temp dir; the damaged block and the
    // stray file are reported again (nothing is guessed).
    let (code, out) = fsck(&v, &["--repair"]);
    assert_eq!(code, exit::FSCK_PROBLEMS, "{out}");
    assert!(out.contains("repaired"), "{out}");
    let (_, out) = fsck(&v, &[]);
    assert!(
        !out.contains("orphaned")
            && !out.contains("half-made")
            && !out.contains(".tutela.dir lost"),
        "{out}"
    );
    assert!(
        out.contains("ledger.bin") && out.contains("stray file"),
        "{out}"
    );
    fs::remove_file(v.vault.join("notes (conflicted copy 2026-11-23).txt")).unwrap();
    v.mount();
    fs::remove_file(v.p("clients/acme/ledger.bin")).unwrap();
    assert_eq!(fs::read(v.p("clients/acme/fine.txt")).unwrap(), b"fine");
    v.unmount();
    let (code, out) = fsck(&v, &[]);
    assert_eq!(code, 0, "{out}");
}

/// Kills the daemon with SIGKILL at random moments under a write load; every file whose fsync
/// returned must read back exactly after a remount, and fsck may only complain about files
/// that were being written when the daemon died.
#[test]
fn fsynced_data_survives_kill_9_of_the_daemon() {
    let Some(v) = TestVault::new("crash") else {
        return;
    };
    let iterations: usize = std::env::var("TUTELA_CRASH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let mut synced: Vec<(String, Vec<u8>)> = Vec::new();
    for it in 0..iterations {
        let mut child = tutela()
            .arg("mount")
            .arg(&v.vault)
            .arg(&v.mnt)
            .arg("--passfile")
            .arg(&v.passfile)
            .arg("--foreground")
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        common::wait_until(|| common::is_mountpoint(&v.mnt), "mount");
        let done = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (done, stop, mnt) = (done.clone(), stop.clone(), v.mnt.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("it{it}-f{i}");
                    let data =
                        pattern(1000 + ((i * 7919) % 200_000) as usize, it as u64 * 1000 + i);
                    let r = (|| -> std::io::Result<()> {
                        let mut f = fs::File::create(mnt.join(&name))?;
                        f.write_all(&data)?;
                        f.sync_all()?;
                        Ok(())
                    })();
                    if r.is_err() {
                        break;
                    }
                    done.lock().unwrap().push((name, data));
                    i += 1;
                }
            })
        };
        let delay = 50 + (it as u64 * 37) % 250;
        std::thread::sleep(std::time::Duration::from_millis(delay));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        // The dead mount must be detached before the writer can notice and a remount can happen.
        let _ = Command::new("umount").arg("-l").arg(&v.mnt).output();
        let _ = Command::new("fusermount3").arg("-uz").arg(&v.mnt).output();
        writer.join().unwrap();
        synced.extend(done.lock().unwrap().drain(..));
    }
    assert!(!synced.is_empty(), "the writer got nothing fsync'ed");
    let mut v = v;
    v.mount();
    for (name, data) in &synced {
        assert_eq!(
            &fs::read(v.p(name)).unwrap(),
            data,
            "{name} was fsync'ed but did not survive"
        );
    }
    v.unmount();
    let (_, out) = fsck(&v, &[]);
    for (name, _) in &synced {
        assert!(
            !out.contains(&format!("/{name} (")),
            "fsck reports a file that was fsync'ed: {name}\n{out}"
        );
    }
    run_ok(
        tutela()
            .args(["audit", "verify"])
            .arg(&v.vault)
            .arg("--passfile")
            .arg(&v.passfile),
    );
}
