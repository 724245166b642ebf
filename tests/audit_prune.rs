//! `tutela audit prune`: a retention limit for the audit log, through the real binary, on an
//! unmounted vault and beside a live mount. What stays must still verify, the prune itself is
//! recorded, and pruning never becomes a way to cut evidence unnoticed.

mod common;

use common::{audit_chain_dir, run_ok, tutela, unit_value, TestVault};
use std::path::Path;
use std::process::Output;
use tutela::error::exit;

fn cmd(v: &TestVault, args: &[&str]) -> Output {
    tutela()
        .args(&args[..2])
        .arg(&v.vault)
        .arg("--passfile")
        .arg(&v.passfile)
        .args(&args[2..])
        .output()
        .expect("spawn")
}

fn ok(v: &TestVault, args: &[&str]) -> String {
    let out = cmd(v, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn segments(v: &TestVault) -> Vec<String> {
    let mut s: Vec<String> = std::fs::read_dir(audit_chain_dir(&v.vault))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    s.sort();
    s
}

fn policy_file(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("policy.toml");
    std::fs::write(
        &p,
        "admins = [\"root\"]\n[clients.acme]\npath = \"/clients/acme\"\nread = [\"root\"]\nwrite = [\"root\"]\n",
    )
    .unwrap();
    p
}

/// An unmounted vault whose log holds two segments of one record each (each offline command
/// that records something writes a segment of its own).
fn vault_with_two_segments() -> TestVault {
    let v = TestVault::new_unmounted();
    let pol = policy_file(v.tmp.path());
    ok(&v, &["policy", "set", pol.to_str().unwrap()]);
    ok(&v, &["policy", "clear"]);
    v
}

#[test]
fn pruning_an_unmounted_vault_keeps_the_rest_verifiable_and_records_the_prune() {
    let v = vault_with_two_segments();
    let pol = policy_file(v.tmp.path());
    ok(&v, &["policy", "set", pol.to_str().unwrap()]);
    assert_eq!(segments(&v).len(), 3);

    // Bad input changes nothing and says why.
    let out = cmd(&v, &["audit", "prune", "--before", "last tuesday", "--yes"]);
    assert_eq!(out.status.code(), Some(exit::USAGE));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a time"));
    // Without --yes and without a terminal to ask on: refused, nothing removed.
    let out = cmd(&v, &["audit", "prune", "--before", "0s"]);
    assert_eq!(out.status.code(), Some(exit::USAGE));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    let wrong = tutela()
        .args(["audit", "prune"])
        .arg(&v.vault)
        .args(["--before", "0s", "--yes", "--extpass", "echo wrong"])
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(exit::WRONG_PASSPHRASE));
    let dry = ok(&v, &["audit", "prune", "--before", "0s", "--dry-run"]);
    assert!(
        dry.contains("would remove 2 records in 2 segments"),
        "{dry}"
    );
    assert_eq!(segments(&v).len(), 3);

    let done = ok(&v, &["audit", "prune", "--before", "0s", "--yes", "--json"]);
    let j: serde_json::Value = serde_json::from_str(done.trim()).unwrap();
    assert_eq!(j["removed"]["records"], 2, "{done}");
    assert_eq!(j["kept"]["records"], 1, "{done}");
    assert_eq!(j["first_seq"], 2, "{done}");
    // The oldest two segments are gone; the prune's own record starts a new one.
    assert_eq!(
        segments(&v),
        vec!["0000000000000002.seg", "0000000000000003.seg"]
    );
    let verify = ok(&v, &["audit", "verify"]);
    assert!(verify.contains("audit log ok: 2 records"), "{verify}");
    assert!(
        verify.contains("pruned: records before sequence 2"),
        "{verify}"
    );
    let out = cmd(&v, &["audit", "show", "--json"]);
    // Whoever reads a pruned log is told what it no longer covers (not in the JSON).
    assert!(String::from_utf8_lossy(&out.stderr).contains("note: records older than"));
    let show = String::from_utf8_lossy(&out.stdout).into_owned();
    let recs: Vec<serde_json::Value> = show
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 2, "{show}");
    assert_eq!(recs[1]["op"], "audit-prune");
    assert_eq!(recs[1]["uid"], tutela::sys::getuid());
    assert!(recs[1]["detail"]
        .as_str()
        .unwrap()
        .contains("2 removed in all"));

    // fsck checks the pruned chain too.
    run_ok(
        tutela()
            .arg("fsck")
            .arg(&v.vault)
            .arg("--passfile")
            .arg(&v.passfile),
    );

    // Removing the checkpoint, or another segment, is tampering.
    let cp = audit_chain_dir(&v.vault).join("pruned");
    let saved = std::fs::read(&cp).unwrap();
    std::fs::remove_file(&cp).unwrap();
    let out = cmd(&v, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(exit::AUDIT_TAMPERED));
    assert!(String::from_utf8_lossy(&out.stderr).contains("earlier segments are missing"));
    // ... and prune refuses to work on a log that does not verify.
    let out = cmd(&v, &["audit", "prune", "--before", "0s", "--yes"]);
    assert_eq!(out.status.code(), Some(exit::AUDIT_TAMPERED));
    std::fs::write(&cp, saved).unwrap();
    ok(&v, &["audit", "verify"]);
}

#[test]
fn pruning_beside_a_live_mount_is_recorded_by_the_daemon() {
    let Some(mut v) = TestVault::new("pruning_beside_a_live_mount_is_recorded_by_the_daemon")
    else {
        return;
    };
    v.mount();
    std::fs::write(v.p("first-letter.txt"), b"old").unwrap();
    v.remount();
    std::fs::write(v.p("second-letter.txt"), b"new").unwrap();
    let before = segments(&v);
    assert!(before.len() >= 2, "{before:?}");

    let done = ok(&v, &["audit", "prune", "--before", "0s", "--yes"]);
    assert!(done.contains("removed"), "{done}");
    // Only the live mount's segment is left; the daemon records the prune within a second.
    assert_eq!(segments(&v), vec![before.last().unwrap().clone()]);
    common::wait_until(
        || ok(&v, &["audit", "show"]).contains("audit-prune"),
        "the daemon's record of the prune",
    );
    let show = ok(&v, &["audit", "show"]);
    assert!(show.contains("second-letter.txt"), "{show}");
    assert!(!show.contains("first-letter.txt"), "{show}");
    v.unmount();
    let verify = ok(&v, &["audit", "verify"]);
    assert!(
        verify.contains("pruned: records before sequence"),
        "{verify}"
    );
    let show = ok(&v, &["audit", "show", "--json"]);
    let prune: Vec<serde_json::Value> = show
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["op"] == "audit-prune")
        .collect();
    assert_eq!(prune.len(), 1, "{show}");
    assert_eq!(prune[0]["uid"], tutela::sys::getuid());
    // A remount continues the chain after the prune.
    v.mount();
    std::fs::write(v.p("third-letter.txt"), b"x").unwrap();
    v.unmount();
    assert!(ok(&v, &["audit", "show"]).contains("third-letter.txt"));
    ok(&v, &["audit", "verify"]);
}

#[test]
fn the_shipped_retention_unit_runs_its_prune_as_written() {
    let v = vault_with_two_segments();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/systemd");
    let unit = std::fs::read_to_string(dir.join("tutela-audit-prune.service")).unwrap();
    assert_eq!(unit_value(&unit, "Type"), "oneshot");
    let timer = std::fs::read_to_string(dir.join("tutela-audit-prune.timer")).unwrap();
    assert_eq!(unit_value(&timer, "OnCalendar"), "monthly");
    // What systemd does with LoadCredentialEncrypted=: the credential, decrypted, in a private
    // directory (tests/system.rs seals and opens one with the real systemd-creds).
    let cred = unit_value(&unit, "LoadCredentialEncrypted");
    let (name, _) = cred.split_once(':').unwrap();
    let creds = v.tmp.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    std::fs::copy(&v.passfile, creds.join(name)).unwrap();
    let start = unit_value(&unit, "ExecStart")
        .replace("/usr/local/bin/tutela", common::bin().to_str().unwrap())
        .replace("/srv/tutela/vault", v.vault.to_str().unwrap());
    let run = |start: &str| {
        run_ok(
            std::process::Command::new("sh")
                .arg("-c")
                .arg(start)
                .env("CREDENTIALS_DIRECTORY", &creds)
                .env("TUTELA_TEST_INSECURE_KDF", "1")
                .stdin(std::process::Stdio::null()),
        )
    };
    // Seven years of retention: nothing in a new log is old enough.
    let out = run(&start);
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to prune"));
    assert_eq!(segments(&v).len(), 2);
    // The same command with a retention the records are past removes them, unattended.
    let out = run(&start.replace("2555d", "0s"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed 1 record in 1 segment"));
    ok(&v, &["audit", "verify"]);
}

#[test]
fn an_anchor_kept_outside_the_vault_catches_records_cut_off_the_end() {
    let v = vault_with_two_segments();
    let verify = ok(&v, &["audit", "verify"]);
    let head = verify
        .lines()
        .find_map(|l| l.strip_prefix("head: "))
        .unwrap_or_else(|| panic!("no head in {verify}"))
        .to_string();
    // This copy's chain (r-<16 hex>/), its second record.
    assert!(
        head.starts_with("r-") && head[18..].starts_with("/1:"),
        "{head}"
    );
    let out = ok(&v, &["audit", "verify", "--expect", &head]);
    assert!(out.contains("anchors: 1 reached unchanged"), "{out}");
    let out = cmd(&v, &["audit", "verify", "--expect", "1:nothex"]);
    assert_eq!(out.status.code(), Some(exit::USAGE));
    // Someone deletes the newest segment: the shorter log verifies alone, not against the
    // anchor.
    let last = segments(&v).pop().unwrap();
    std::fs::remove_file(audit_chain_dir(&v.vault).join(last)).unwrap();
    ok(&v, &["audit", "verify"]);
    let out = cmd(&v, &["audit", "verify", "--expect", &head]);
    assert_eq!(out.status.code(), Some(exit::AUDIT_TAMPERED));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cut off its end"));
}
