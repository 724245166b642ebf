//! Several passphrases on one vault: add, list, remove, change, and the recovery key setting a
//! new passphrase when all are forgotten. Config rewrites are atomic (temp file + rename).

mod common;

use common::{run_ok, tutela, TestVault};
use std::fs;
use std::path::{Path, PathBuf};
use tutela::error::exit;

fn passfile(dir: &Path, name: &str, pass: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, format!("{pass}\n")).unwrap();
    fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    p
}

fn list(vault: &Path, pf: &Path) -> (i32, String) {
    let out = tutela()
        .args(["key", "list"])
        .arg(vault)
        .arg("--passfile")
        .arg(pf)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn add_list_remove_and_change_passphrases() {
    let mut v = TestVault::new_unmounted();
    let t = v.tmp.path().to_path_buf();
    let bob = passfile(&t, "bob", "bob's own passphrase");
    run_ok(
        tutela()
            .args(["key", "add"])
            .arg(&v.vault)
            .args(["--label", "bob"])
            .arg("--passfile")
            .arg(&v.passfile)
            .arg("--new-passfile")
            .arg(&bob),
    );
    assert_eq!(list(&v.vault, &v.passfile), (0, "default\nbob\n".into()));
    assert_eq!(list(&v.vault, &bob), (0, "default\nbob\n".into()));
    let out = run_ok(
        tutela()
            .args(["key", "list", "--json"])
            .arg(&v.vault)
            .arg("--passfile")
            .arg(&bob),
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["keys"], serde_json::json!(["default", "bob"]));
    // A duplicate label is refused, and nothing changes.
    let before = fs::read(v.vault.join("tutela.conf")).unwrap();
    let out = tutela()
        .args(["key", "add"])
        .arg(&v.vault)
        .args(["--label", "bob"])
        .arg("--passfile")
        .arg(&bob)
        .arg("--new-passfile")
        .arg(&bob)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(exit::USAGE));
    assert_eq!(fs::read(v.vault.join("tutela.conf")).unwrap(), before);
    // Remove the first passphrase with bob's: it no longer opens the vault.
    run_ok(
        tutela()
            .args(["key", "remove"])
            .arg(&v.vault)
            .arg("default")
            .arg("--passfile")
            .arg(&bob),
    );
    assert_eq!(list(&v.vault, &v.passfile).0, exit::WRONG_PASSPHRASE);
    // The last passphrase cannot be removed.
    let out = tutela()
        .args(["key", "remove"])
        .arg(&v.vault)
        .arg("bob")
        .arg("--passfile")
        .arg(&bob)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(exit::USAGE));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only passphrase"));
    // Change bob's passphrase.
    let bob2 = passfile(&t, "bob2", "bob's new passphrase");
    run_ok(
        tutela()
            .arg("passwd")
            .arg(&v.vault)
            .arg("--passfile")
            .arg(&bob)
            .arg("--new-passfile")
            .arg(&bob2),
    );
    assert_eq!(list(&v.vault, &bob).0, exit::WRONG_PASSPHRASE);
    assert_eq!(list(&v.vault, &bob2), (0, "bob\n".into()));
    // A wrong passphrase changes nothing.
    let before = fs::read(v.vault.join("tutela.conf")).unwrap();
    let out = tutela()
        .arg("passwd")
        .arg(&v.vault)
        .arg("--passfile")
        .arg(&bob)
        .arg("--new-passfile")
        .arg(&bob)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(exit::WRONG_PASSPHRASE));
    assert_eq!(fs::read(v.vault.join("tutela.conf")).unwrap(), before);
    // The vault still mounts with the new passphrase.
    if common::fuse_missing().is_none() {
        v.passfile = bob2.clone();
        v.mount();
        fs::write(v.p("f"), b"x").unwrap();
        v.unmount();
    }
    // Every change is in the audit log.
    let out = run_ok(
        tutela()
            .args(["audit", "show"])
            .arg(&v.vault)
            .arg("--passfile")
            .arg(&bob2),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for op in ["key-add", "key-remove", "passwd"] {
        assert!(text.contains(op), "{op} not audited:\n{text}");
    }
}

#[test]
fn the_recovery_key_sets_a_new_passphrase_when_all_are_forgotten() {
    let tmp = tempfile::tempdir().unwrap();
    let pf = passfile(tmp.path(), "p", "forgotten soon");
    let vault = tmp.path().join("v");
    let out = run_ok(tutela().arg("init").arg(&vault).arg("--passfile").arg(&pf));
    let text = String::from_utf8(out.stdout).unwrap();
    let key = text
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 80 && l.matches('-').count() == 8)
        .unwrap();
    let kf = passfile(tmp.path(), "rk", key);
    let newp = passfile(tmp.path(), "new", "remembered this time");
    run_ok(
        tutela()
            .arg("passwd")
            .arg(&vault)
            .arg("--recovery-key")
            .arg(&kf)
            .arg("--new-passfile")
            .arg(&newp),
    );
    assert_eq!(list(&vault, &pf).0, exit::WRONG_PASSPHRASE);
    assert_eq!(list(&vault, &newp), (0, "default\n".into()));
    // A mistyped recovery key is refused with a clear message and changes nothing.
    let bad = passfile(
        tmp.path(),
        "bad",
        &key.replacen('a', "b", 1).replacen('0', "1", 1),
    );
    let out = tutela()
        .arg("passwd")
        .arg(&vault)
        .arg("--recovery-key")
        .arg(&bad)
        .arg("--new-passfile")
        .arg(&pf)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(list(&vault, &newp).0, 0);
}

/// `tutela ARGS... VAULT MORE... --passfile PF`: exit code and everything printed.
fn run_as(args: &[&str], vault: &Path, more: &[&str], pf: &Path) -> (i32, String) {
    let out = tutela()
        .args(args)
        .arg(vault)
        .args(more)
        .arg("--passfile")
        .arg(pf)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A contractor's key (`key add --client acme`) opens acme's keys only: every vault-wide
/// command refuses it with its own exit code and says which client it is for; rekeying the
/// client revokes it for good; it is listed with its client, and removed like any key.
#[test]
fn a_client_key_opens_one_client_and_no_vault_wide_command() {
    let v = TestVault::new_unmounted();
    let t = v.tmp.path().to_path_buf();
    for (name, path) in [("acme", "/clients/acme"), ("bluebird", "/clients/bluebird")] {
        run_ok(
            tutela()
                .args(["client", "add"])
                .arg(&v.vault)
                .args([name, "--path", path, "--passfile"])
                .arg(&v.passfile),
        );
    }
    let contractor = passfile(&t, "contractor", "the contractor's own passphrase");
    let add = |label: &str, client: &str| {
        run_as(
            &["key", "add"],
            &v.vault,
            &[
                "--label",
                label,
                "--client",
                client,
                "--new-passfile",
                contractor.to_str().unwrap(),
            ],
            &v.passfile,
        )
    };
    let before = fs::read(v.vault.join("tutela.conf")).unwrap();
    let (code, out) = add("contractor", "nobody");
    assert_eq!(code, exit::USAGE, "{out}");
    assert!(out.contains("no client named 'nobody'"), "{out}");
    assert_eq!(fs::read(v.vault.join("tutela.conf")).unwrap(), before);
    let (code, out) = add("contractor", "acme");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("opens client 'acme' only"), "{out}");
    let (code, out) = add("contractor", "bluebird");
    assert_eq!(code, exit::USAGE, "a label is unique across kinds: {out}");

    let (code, out) = list(&v.vault, &v.passfile);
    assert_eq!(
        (code, out.as_str()),
        (0, "default\ncontractor  (client 'acme' only)\n")
    );
    let (_, json) = run_as(&["key", "list", "--json"], &v.vault, &[], &v.passfile);
    let j: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(j["keys"], serde_json::json!(["default", "contractor"]));
    assert_eq!(j["slots"][1]["kind"], "client-passphrase");
    assert_eq!(j["slots"][1]["client"], "acme");

    // Every vault-wide command refuses it, naming its client; nothing is written.
    let before = fs::read(v.vault.join("tutela.conf")).unwrap();
    let mnt = t.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let commands: &[(&[&str], &[&str])] = &[
        (&["key", "list"], &[]),
        (&["key", "remove"], &["default"]),
        (&["client", "list"], &[]),
        (
            &["client", "export"],
            &["bluebird", "--output", "/tmp/tutela-never.tar"],
        ),
        (&["policy", "show"], &[]),
        (&["audit", "show"], &[]),
        (&["rekey"], &["--all", "--yes"]),
        (&["mount"], &[mnt.to_str().unwrap(), "--foreground"]),
    ];
    for (args, more) in commands {
        let (code, out) = run_as(args, &v.vault, more, &contractor);
        assert_eq!(code, exit::CLIENT_KEY_ONLY, "{args:?}: {out}");
        assert!(out.contains("opens only client 'acme'"), "{args:?}: {out}");
    }
    assert_eq!(fs::read(v.vault.join("tutela.conf")).unwrap(), before);
    // Its own client it may export (recorded in the log, sealed).
    let out_tar = t.join("acme.tar");
    let (code, out) = run_as(
        &["client", "export"],
        &v.vault,
        &["acme", "--output", out_tar.to_str().unwrap()],
        &contractor,
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("exported client 'acme'"), "{out}");
    assert!(out_tar.exists());
    let (_, log) = run_as(&["audit", "show"], &v.vault, &[], &v.passfile);
    assert!(log.contains("client key 'contractor'"), "{log}");
    // A wrong passphrase is still just wrong.
    let wrong = passfile(&t, "wrong", "nobody's passphrase");
    assert_eq!(list(&v.vault, &wrong).0, exit::WRONG_PASSPHRASE);

    // Rekeying the client revokes the contractor for good.
    let (code, out) = run_as(&["rekey"], &v.vault, &["--client", "acme"], &v.passfile);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("removed the client keys") && out.contains("contractor"),
        "{out}"
    );
    assert_eq!(list(&v.vault, &v.passfile).1, "default\n");
    assert_eq!(list(&v.vault, &contractor).0, exit::WRONG_PASSPHRASE);

    // Added again, and removed by label like any key; both are in the audit log.
    assert_eq!(add("contractor", "acme").0, 0);
    let (code, out) = run_as(&["key", "remove"], &v.vault, &["contractor"], &v.passfile);
    assert_eq!(code, 0, "{out}");
    assert_eq!(list(&v.vault, &contractor).0, exit::WRONG_PASSPHRASE);
    let (_, log) = run_as(&["audit", "show"], &v.vault, &[], &v.passfile);
    assert!(
        log.contains("key 'contractor', client 'acme' only"),
        "{log}"
    );
}

/// A key slot of a kind a later tutela writes (a hardware token, say) is kept byte for byte
/// when this tutela rewrites the config, listed as skipped, and never stops the vault opening
/// through its other slots.
#[test]
fn a_slot_of_an_unknown_kind_is_kept_and_skipped() {
    let v = TestVault::new_unmounted();
    let pass = tutela::vault::passphrase::from_file(&v.passfile, "passphrase").unwrap();
    let mut vault =
        tutela::offline::open_vault(&v.vault, &tutela::vault::Unlock::Passphrase(pass), None)
            .unwrap();
    let future = tutela::format::config::OtherSlot {
        kind: 9,
        body: b"a slot of a later tutela".to_vec(),
    };
    vault.config.other_slots.push(future.clone());
    vault.save().unwrap();
    drop(vault);
    let (code, out) = list(&v.vault, &v.passfile);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("(kind 9)  (a key slot of a later tutela: skipped, kept)"),
        "{out}"
    );
    // A rewrite of the config (a key added) keeps it as it was.
    let bob = passfile(v.tmp.path(), "bob", "bob's own passphrase");
    run_ok(
        tutela()
            .args(["key", "add"])
            .arg(&v.vault)
            .args(["--label", "bob", "--passfile"])
            .arg(&v.passfile)
            .arg("--new-passfile")
            .arg(&bob),
    );
    let (config, _) = tutela::vault::Vault::read_config(&v.vault).unwrap();
    assert_eq!(config.other_slots, vec![future]);
    assert_eq!(list(&v.vault, &bob).0, 0);
    // A passphrase that opens none of the slots this tutela knows: still exit 10, and the
    // message says slots were skipped that a later tutela might open.
    let wrong = passfile(v.tmp.path(), "wrong", "not any passphrase of this vault");
    let (code, out) = run_as(&["key", "list"], &v.vault, &[], &wrong);
    assert_eq!(code, exit::WRONG_PASSPHRASE, "{out}");
    assert!(
        out.contains("1 key slot(s) of a kind this tutela does not know"),
        "{out}"
    );
}
