//! Secrets hygiene of a running daemon: the passphrase is not on its command line, in its
//! environment or anywhere in its memory once the vault is mounted; the master key is not in
//! its memory either (the daemon keeps only the keys it needs); core dumps are off. Reading
//! another process's memory needs root (or ptrace rights): skips with a reason otherwise.

mod common;

use common::{daemon_pid, is_root, memory_hits, run_ok, skip_unless, tutela, TestVault};
use std::fs;

#[test]
fn the_daemon_holds_no_passphrase_and_no_master_key() {
    let reason = common::fuse_missing()
        .or_else(|| (!is_root()).then(|| "reading another process's memory needs root".into()));
    if skip_unless(reason, "secrets") {
        return;
    }
    // A vault whose passphrase and recovery key we know.
    let v0 = TestVault::new_unmounted();
    let pass = "Zq8-unique-passphrase-for-the-memory-scan";
    fs::write(&v0.passfile, format!("{pass}\n")).unwrap();
    let vault = v0.tmp.path().join("v2");
    let o = run_ok(
        tutela()
            .arg("init")
            .arg(&vault)
            .arg("--passfile")
            .arg(&v0.passfile),
    );
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let rk: String = text
        .lines()
        .map(str::trim)
        .find(|l| l.len() > 60 && l.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
        .expect("recovery key printed")
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect();
    let master: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&rk[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let mut v = v0;
    v.vault = vault;
    v.mount();
    fs::write(v.p("work.txt"), b"some work").unwrap();
    // Client work through the daemon (it saves the zone table) brings no key back.
    fs::create_dir(v.p("acme")).unwrap();
    fs::write(v.p("acme/letter"), b"dear acme").unwrap();
    run_ok(
        tutela()
            .args(["client", "add"])
            .arg(&v.vault)
            .args(["acme", "--path", "/acme", "--passfile"])
            .arg(&v.passfile),
    );
    run_ok(
        tutela()
            .args(["rekey"])
            .arg(&v.vault)
            .args(["--client", "acme", "--passfile"])
            .arg(&v.passfile),
    );
    let pid = daemon_pid(&v);
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let environ = fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(!common::contains(&cmdline, pass.as_bytes()));
    assert!(!common::contains(&environ, pass.as_bytes()));
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    assert!(
        limits.lines().any(
            |l| l.starts_with("Max core file size") && l.split_whitespace().nth(4) == Some("0")
        ),
        "core dumps not disabled:\n{limits}"
    );
    let hits = memory_hits(pid, pass.as_bytes());
    assert!(hits.is_empty(), "passphrase in daemon memory: {hits:?}");
    let hits = memory_hits(pid, &master);
    assert!(hits.is_empty(), "master key in daemon memory: {hits:?}");
    v.unmount();
}

/// Offline commands hold keys too (key list, rekey, export): their core dumps are off from
/// the first instruction, before any passphrase is read.
#[test]
fn offline_commands_run_without_core_dumps() {
    let v = TestVault::new_unmounted();
    let mut child = tutela()
        .args(["key", "list"])
        .arg(&v.vault)
        .args(["--extpass", "sleep 2; echo never-used"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let limits = fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let soft = core.split_whitespace().nth(4).unwrap();
    assert_eq!(soft, "0", "{core}");
}
