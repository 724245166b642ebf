//! Client rights and key rotation, through the real binary and real mounts: a separate key
//! store, client export (tar and folder, checked with tar and sha256sum), crypto-erasure
//! proven on a backup taken before it, rekey of one client and of the whole vault, and
//! crashes in the middle of rekey, passwd and key remove.

mod common;

use common::{fuse_missing, run_ok, skip_unless, tree, tutela, TestVault};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tutela::error::exit;

fn cmd(v: &TestVault, args: &[&str]) -> Command {
    let mut c = tutela();
    c.args(&args[..1]).arg(&v.vault).args(&args[1..]);
    c.arg("--passfile").arg(&v.passfile);
    c
}

/// `tutela SUB VAULT ARGS.. --passfile P` for subcommands with a sub-subcommand.
fn cmd2(v: &TestVault, sub: &[&str], args: &[&str]) -> Command {
    let mut c = tutela();
    c.args(sub).arg(&v.vault).args(args);
    c.arg("--passfile").arg(&v.passfile);
    c
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A vault with client acme (some files, a hard link, a symlink, a long name) and a file
/// outside it. Returns the mounted tree for later comparison.
fn populate(v: &mut TestVault) -> BTreeMap<PathBuf, Vec<u8>> {
    run_ok(&mut cmd2(
        v,
        &["client", "add"],
        &["acme", "--path", "/clients/acme"],
    ));
    v.mount();
    let a = v.p("clients/acme");
    fs::create_dir_all(a.join("2026/tax")).unwrap();
    for i in 0..12 {
        fs::write(
            a.join(format!("2026/tax/return {i}.txt")),
            format!("acme confidential return {i}\n").repeat(i * 40 + 1),
        )
        .unwrap();
    }
    fs::write(a.join("ledger.db"), common::pattern(200_000, 7)).unwrap();
    fs::hard_link(a.join("ledger.db"), a.join("ledger-link.db")).unwrap();
    std::os::unix::fs::symlink("2026/tax/return 1.txt", a.join("latest")).unwrap();
    fs::write(a.join("n".repeat(200)), b"long name").unwrap();
    fs::write(v.p("office-notes.txt"), b"not a client file").unwrap();
    let t = tree(&v.mnt);
    v.unmount();
    t
}

fn mounted_tree(v: &mut TestVault, extra: &[&str]) -> BTreeMap<PathBuf, Vec<u8>> {
    v.mount_args(extra);
    let t = tree(&v.mnt);
    v.unmount();
    t
}

#[test]
fn keystore_keeps_zone_keys_out_of_the_backing_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let ks = tmp.path().join("vault.keys");
    if skip_unless(fuse_missing(), "keystore") {
        return;
    }
    let mut v = TestVault::new_unmounted_with(&[OsStr::new("--keystore"), ks.as_os_str()]);
    assert!(ks.is_file(), "init writes the key store");
    let before = populate(&mut v);
    // Without the key store the vault does not open, and says why (exit 24).
    let moved = tmp.path().join("elsewhere.keys");
    fs::rename(&ks, &moved).unwrap();
    let o = cmd2(&v, &["client", "list"], &[]).output().unwrap();
    assert_eq!(code(&o), exit::KEY_STORE, "{}", stderr(&o));
    assert!(stderr(&o).contains("vault.keys"), "{}", stderr(&o));
    // --keystore PATH overrides the recorded place, for every command.
    let o = run_ok(&mut cmd2(
        &v,
        &["client", "list"],
        &["--keystore", moved.to_str().unwrap()],
    ));
    assert!(String::from_utf8_lossy(&o.stdout).contains("acme"));
    assert_eq!(
        mounted_tree(&mut v, &["--keystore", moved.to_str().unwrap()]),
        before
    );
    // A key store of another vault is refused.
    let other = TestVault::new_unmounted_with(&[
        OsStr::new("--keystore"),
        tmp.path().join("other.keys").as_os_str(),
    ]);
    let o = cmd2(
        &v,
        &["client", "list"],
        &[
            "--keystore",
            tmp.path().join("other.keys").to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    assert_eq!(code(&o), exit::KEY_STORE);
    assert!(stderr(&o).contains("another vault"), "{}", stderr(&o));
    drop(other);
    // init refuses a key store inside the vault or over an existing file.
    let o = tutela()
        .arg("init")
        .arg(tmp.path().join("v2"))
        .arg("--passfile")
        .arg(&v.passfile)
        .arg("--keystore")
        .arg(&moved)
        .output()
        .unwrap();
    assert_eq!(code(&o), exit::USAGE, "{}", stderr(&o));
    assert!(
        !tmp.path().join("v2").exists(),
        "nothing created on refusal"
    );
}

#[test]
fn export_writes_tar_and_folder_with_checked_manifest() {
    let Some(mut v) = TestVault::new("export") else {
        return;
    };
    let before = populate(&mut v);
    let out = v.tmp.path().join("acme.tar");
    run_ok(&mut cmd2(
        &v,
        &["client", "export"],
        &["acme", "--output", out.to_str().unwrap()],
    ));
    // A standard tar: GNU tar extracts it and sha256sum accepts its manifest.
    let x = v.tmp.path().join("x");
    fs::create_dir(&x).unwrap();
    run_ok(Command::new("tar").arg("xf").arg(&out).current_dir(&x));
    run_ok(
        Command::new("sha256sum")
            .args(["-c", "--strict", "MANIFEST.sha256"])
            .current_dir(&x),
    );
    let manifest = fs::read_to_string(x.join("MANIFEST.sha256")).unwrap();
    assert_eq!(manifest.lines().count(), 15, "{manifest}");
    // Same files, same bytes, as the mount showed.
    let exported = tree(&x.join("acme"));
    for (rel, data) in &before {
        if let Ok(r) = rel.strip_prefix("clients/acme") {
            if !r.as_os_str().is_empty() {
                assert_eq!(exported.get(r), Some(data), "{}", r.display());
            }
        }
    }
    assert!(!exported.keys().any(|k| k.ends_with("office-notes.txt")));
    // To a folder as well.
    let dir = v.tmp.path().join("folder");
    run_ok(&mut cmd2(
        &v,
        &["client", "export"],
        &["acme", "-o", dir.to_str().unwrap()],
    ));
    run_ok(
        Command::new("sha256sum")
            .args(["-c", "--strict", "MANIFEST.sha256"])
            .current_dir(&dir),
    );
    // Compressed archives by their suffix: GNU tar reads each, with the same manifest.
    for (file, flag) in [
        ("acme.tar.gz", "z"),
        ("acme.tgz", "z"),
        ("acme.tar.zst", "--zstd"),
    ] {
        let arch = v.tmp.path().join(file);
        run_ok(&mut cmd2(
            &v,
            &["client", "export"],
            &["acme", "-o", arch.to_str().unwrap()],
        ));
        let y = v.tmp.path().join(format!("x-{file}"));
        fs::create_dir(&y).unwrap();
        let mut tar = Command::new("tar");
        if flag == "z" {
            tar.arg("xzf");
        } else {
            tar.args([flag, "-xf"]);
        }
        run_ok(tar.arg(&arch).current_dir(&y));
        run_ok(
            Command::new("sha256sum")
                .args(["-c", "--strict", "MANIFEST.sha256"])
                .current_dir(&y),
        );
        assert_eq!(tree(&y.join("acme")), exported, "{file}");
    }
    // An unknown suffix is refused with the accepted ones (it once made a folder so named).
    let zip = v.tmp.path().join("acme.zip");
    let o = cmd2(
        &v,
        &["client", "export"],
        &["acme", "-o", zip.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert_eq!(code(&o), exit::USAGE, "{}", stderr(&o));
    assert!(stderr(&o).contains(".tar.gz"), "{}", stderr(&o));
    assert!(!zip.exists());
    // Refusals: an existing archive (left as it was), an unknown client, a mounted vault.
    let before = fs::read(&out).unwrap();
    let o = cmd2(
        &v,
        &["client", "export"],
        &["acme", "-o", out.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert_eq!(code(&o), exit::USAGE, "{}", stderr(&o));
    assert_eq!(
        fs::read(&out).unwrap(),
        before,
        "the existing archive is untouched"
    );
    let o = cmd2(&v, &["client", "export"], &["nobody", "-o", "/tmp/x.tar"])
        .output()
        .unwrap();
    assert_eq!(code(&o), exit::USAGE, "{}", stderr(&o));
    // While mounted, the daemon exports (tests/live.rs covers it with others at work).
    v.mount();
    let y = v.tmp.path().join("y.tar");
    run_ok(&mut cmd2(
        &v,
        &["client", "export"],
        &["acme", "-o", y.to_str().unwrap()],
    ));
    assert!(y.exists());
    v.unmount();
    let o = run_ok(&mut cmd2(&v, &["audit", "show"], &[]));
    assert!(String::from_utf8_lossy(&o.stdout).contains("client-export client 'acme'"));
}

fn copy_dir(from: &Path, to: &Path) {
    run_ok(Command::new("cp").arg("-a").arg(from).arg(to));
}

#[test]
fn shred_reaches_backups_taken_before_it() {
    let tmp = tempfile::tempdir().unwrap();
    let ks = tmp.path().join("vault.keys");
    if skip_unless(fuse_missing(), "shred") {
        return;
    }
    let mut v = TestVault::new_unmounted_with(&[OsStr::new("--keystore"), ks.as_os_str()]);
    populate(&mut v);
    let rk_vault = v.tmp.path().join("backup");
    copy_dir(&v.vault, &rk_vault);
    // No terminal and no --yes: refused, nothing changed.
    let o = cmd2(&v, &["client", "shred"], &["acme"]).output().unwrap();
    assert_eq!(code(&o), exit::USAGE, "{}", stderr(&o));
    assert!(stderr(&o).contains("--yes"));
    run_ok(&mut cmd2(&v, &["client", "shred"], &["acme", "--yes"]));
    let now = mounted_tree(&mut v, &[]);
    assert!(now.contains_key(Path::new("office-notes.txt")));
    assert!(
        !now.keys().any(|k| k.starts_with("clients/acme")),
        "{now:?}"
    );
    let o = run_ok(&mut cmd2(&v, &["client", "list"], &[]));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("acme"));
    let o = run_ok(&mut cmd2(&v, &["audit", "show"], &[]));
    assert!(String::from_utf8_lossy(&o.stdout).contains("client-shred client 'acme'"));
    run_ok(&mut cmd(&v, &["fsck"]));
    // The backup copy from before the shred, opened with the passphrase and the key store
    // as it is now: the other files read, the client's files are gone for good.
    let mut old = TestVault::new_unmounted();
    old.vault = rk_vault;
    old.passfile = v.passfile.clone();
    let t = mounted_tree(&mut old, &[]);
    assert!(t.contains_key(Path::new("office-notes.txt")), "{t:?}");
    assert!(
        !t.keys()
            .any(|k| k.starts_with("clients/acme/") && k != Path::new("clients/acme")),
        "shredded files readable from an old backup: {t:?}"
    );
    old.mounted = false;
}

/// Backing files of the vault: relative path -> bytes.
fn backing(v: &TestVault) -> BTreeMap<PathBuf, Vec<u8>> {
    v.backing_files()
        .into_iter()
        .filter(|(p, _)| !p.to_string_lossy().contains("tutela.audit"))
        .map(|(p, b)| (p.strip_prefix(&v.vault).unwrap().to_path_buf(), b))
        .collect()
}

#[test]
fn rekey_client_then_all_re_encrypts_and_retires_old_keys() {
    let Some(mut v) = TestVault::new("rekey") else {
        return;
    };
    let before = populate(&mut v);
    let bob = v.tmp.path().join("bob");
    fs::write(&bob, "bob's passphrase\n").unwrap();
    run_ok(&mut cmd2(
        &v,
        &["key", "add"],
        &["--label", "bob", "--new-passfile", bob.to_str().unwrap()],
    ));
    let old_backing = backing(&v);
    let old_conf = fs::read(v.vault.join("tutela.conf")).unwrap();
    let o = run_ok(&mut cmd(&v, &["rekey", "--client", "acme"]));
    assert!(String::from_utf8_lossy(&o.stdout).contains("rekeyed acme"));
    assert_eq!(mounted_tree(&mut v, &[]), before);
    // Every name below acme changed (new key); the rest of the vault was not touched.
    let new_backing = backing(&v);
    let changed = old_backing
        .keys()
        .filter(|k| !new_backing.contains_key(*k))
        .count();
    assert!(changed >= 15, "only {changed} backing names changed");
    // Hard links survive.
    v.mount();
    let md = |p: &str| fs::metadata(v.p(p)).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&md("clients/acme/ledger.db")),
        std::os::unix::fs::MetadataExt::ino(&md("clients/acme/ledger-link.db"))
    );
    v.unmount();
    // The old config (old acme key) no longer reads acme's files.
    let hybrid = v.tmp.path().join("hybrid");
    copy_dir(&v.vault, &hybrid);
    fs::write(hybrid.join("tutela.conf"), &old_conf).unwrap();
    let mut h = TestVault::new_unmounted();
    h.vault = hybrid.clone();
    h.passfile = v.passfile.clone();
    let t = mounted_tree(&mut h, &[]);
    assert!(t.contains_key(Path::new("office-notes.txt")));
    assert!(
        !t.keys()
            .any(|k| k.starts_with("clients/acme") && k != Path::new("clients/acme")),
        "{t:?}"
    );

    // A stored policy moves to the new master key with --all.
    let pol = v.tmp.path().join("policy.toml");
    let pol_text = "admins = [\"root\"]\ndefault = \"allow\"\n\n[clients.acme]\npath = \"/clients/acme\"\nread = [\"root\"]\nwrite = [\"root\"]\n";
    fs::write(&pol, pol_text).unwrap();
    run_ok(&mut cmd2(&v, &["policy", "set"], &[pol.to_str().unwrap()]));

    // --all: new master key; bob's slot goes; a new recovery key is printed.
    let conf_before_all = fs::read(v.vault.join("tutela.conf")).unwrap();
    // Without a terminal it asks for --yes and changes nothing.
    let o = cmd(&v, &["rekey", "--all"]).output().unwrap();
    assert_eq!(code(&o), exit::USAGE, "{}", stderr(&o));
    assert!(stderr(&o).contains("--yes"), "{}", stderr(&o));
    assert_eq!(
        fs::read(v.vault.join("tutela.conf")).unwrap(),
        conf_before_all
    );
    let o = run_ok(&mut cmd(&v, &["rekey", "--all", "--yes"]));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(text.contains("Keys removed"), "{text}");
    assert!(text.contains("bob"), "{text}");
    let rk = common::recovery_key_in(&text);
    assert_eq!(mounted_tree(&mut v, &[]), before);
    common::assert_passphrase_refused(&v, &bob);
    // The new recovery key opens the vault.
    common::passwd_with_recovery_key(&v, &rk);
    assert_eq!(mounted_tree(&mut v, &[]), before);
    // The config from before --all opens (old master key) but reads no current data, and
    // the policy and audit log moved to the new key with the chain intact.
    let hybrid2 = v.tmp.path().join("hybrid2");
    copy_dir(&v.vault, &hybrid2);
    fs::write(hybrid2.join("tutela.conf"), &conf_before_all).unwrap();
    // The policy was re-sealed under the new key: the old config does not accept it (it is
    // not the file that config was bound to), and deleting it does not lift the fence
    // either; whoever holds the old passphrase can clear the old config's policy.
    let o = tutela()
        .args(["policy", "show"])
        .arg(&hybrid2)
        .arg("--passfile")
        .arg(&v.passfile)
        .output()
        .unwrap();
    assert_eq!(code(&o), exit::POLICY_INVALID, "{}", stderr(&o));
    fs::remove_file(hybrid2.join("tutela.policy")).unwrap();
    let o = tutela()
        .args(["policy", "show"])
        .arg(&hybrid2)
        .arg("--passfile")
        .arg(&v.passfile)
        .output()
        .unwrap();
    assert_eq!(code(&o), exit::POLICY_INVALID, "{}", stderr(&o));
    run_ok(
        tutela()
            .args(["policy", "clear"])
            .arg(&hybrid2)
            .arg("--passfile")
            .arg(&v.passfile),
    );
    h.vault = hybrid2;
    let t = mounted_tree(&mut h, &[]);
    assert!(t.is_empty(), "old config reads current data: {t:?}");
    h.mounted = false;
    let o = run_ok(&mut cmd2(&v, &["audit", "verify"], &[]));
    assert!(String::from_utf8_lossy(&o.stdout).contains("audit log ok"));
    let o = run_ok(&mut cmd2(&v, &["policy", "show"], &[]));
    assert_eq!(String::from_utf8_lossy(&o.stdout), pol_text);
    let o = run_ok(&mut cmd2(&v, &["audit", "show"], &[]));
    let log = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        log.contains("rekey-all") && log.contains("client-add"),
        "{log}"
    );
    run_ok(&mut cmd(&v, &["fsck"]));
    assert!(!v.vault.join("tutela.rekey").exists());
}

/// Runs `args` with a crash at `point`; returns true if it crashed there.
fn crash_at(v: &TestVault, args: &[&str], point: &str) -> bool {
    let o = cmd(v, args)
        .env("TUTELA_TEST_CRASH_AT", point)
        .output()
        .unwrap();
    if o.status.success() {
        return false;
    }
    assert!(
        stderr(&o).contains("test crash at"),
        "{args:?} at {point} failed without crashing: {}",
        stderr(&o)
    );
    true
}

#[test]
fn rekey_resumes_after_crashes_at_every_stage() {
    let Some(mut v) = TestVault::new("rekey-crash") else {
        return;
    };
    let before = populate(&mut v);
    let points = [
        "rekey-step:1",
        "rekey-built:3",
        "rekey-linked:5",
        "rekey-step:9",
        "rekey-linked:14",
        "rekey-copied:2",
        "rekey-walked:1",
        "rekey-copied:7",
    ];
    for (i, p) in points.iter().enumerate() {
        let args: &[&str] = if i % 2 == 0 {
            &["rekey", "--client", "acme"]
        } else {
            &["rekey", "--all", "--yes"]
        };
        assert!(crash_at(&v, args, p), "no crash at {p}");
        // Interrupted: fsck and client add wait for the rekey to finish.
        let o = cmd(&v, &["fsck"]).output().unwrap();
        assert_eq!(code(&o), exit::USAGE);
        if i % 3 == 2 {
            // A read-only mount leaves the rekey alone; every file reads back.
            v.mount_args(&["--read-only"]);
            assert_eq!(tree(&v.mnt), before, "after crash at {p}");
            v.unmount();
        }
        if i % 2 == 0 {
            let o = run_ok(&mut cmd(&v, &["rekey", "--resume"]));
            assert!(String::from_utf8_lossy(&o.stdout).contains("interrupted"));
        } else if !args.contains(&"--all") || p.starts_with("rekey-step:1") {
            // A mount finishes it while it serves (a rekey --all interrupted after its
            // commit re-sealed the log: the mount takes it from there too).
            v.mount();
            assert_eq!(tree(&v.mnt), before, "while finishing after a crash at {p}");
            common::wait_until(
                || {
                    let o = cmd(&v, &["rekey", "--resume"]).output().unwrap();
                    code(&o) == exit::USAGE
                },
                "the mount to finish the rekey",
            );
            fs::write(v.p("x"), b"x").unwrap();
            fs::remove_file(v.p("x")).unwrap();
            v.unmount();
        } else {
            run_ok(&mut cmd(&v, &["rekey", "--resume"]));
        }
        assert_eq!(mounted_tree(&mut v, &[]), before, "after resume from {p}");
    }
    // The commit points of --all.
    for p in [
        "rekey-all-resealed:1",
        "atomic-renamed:2",
        "rekey-all-committed:1",
    ] {
        assert!(
            crash_at(&v, &["rekey", "--all", "--yes"], p),
            "no crash at {p}"
        );
        let _ = cmd(&v, &["rekey", "--resume"]).output().unwrap();
        assert_eq!(mounted_tree(&mut v, &[]), before, "after crash at {p}");
        run_ok(&mut cmd2(&v, &["audit", "verify"], &[]));
    }
    run_ok(&mut cmd(&v, &["fsck"]));
    v.mount();
    fs::write(v.p("clients/acme/after"), b"written after").unwrap();
    v.unmount();
}

#[test]
fn passwd_and_key_remove_survive_crashes() {
    for keystore in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let ks = tmp.path().join("k.keys");
        let mut v = if keystore {
            TestVault::new_unmounted_with(&[OsStr::new("--keystore"), ks.as_os_str()])
        } else {
            TestVault::new_unmounted()
        };
        if fuse_missing().is_none() {
            v.mount();
            fs::write(v.p("file"), b"still here").unwrap();
            v.unmount();
        }
        let newp = v.tmp.path().join("new");
        fs::write(&newp, "the new passphrase\n").unwrap();
        let opens = |pf: &Path| {
            tutela()
                .args(["key", "list"])
                .arg(&v.vault)
                .arg("--passfile")
                .arg(pf)
                .output()
                .unwrap()
                .status
                .success()
        };
        // Each atomic write of the change, crashed before and after its rename.
        let writes = if keystore { 3 } else { 1 };
        for n in 1..=writes {
            for point in ["atomic-write", "atomic-renamed"] {
                let p = format!("{point}:{n}");
                let crashed = crash_at(
                    &v,
                    &["passwd", "--new-passfile", newp.to_str().unwrap()],
                    &p,
                );
                assert!(crashed, "no crash at {p}");
                let (old_ok, new_ok) = (opens(&v.passfile), opens(&newp));
                assert!(
                    old_ok ^ new_ok,
                    "{p}: old opens {old_ok}, new opens {new_ok}"
                );
                if new_ok {
                    // Put the old passphrase back for the next round.
                    run_ok(
                        tutela()
                            .arg("passwd")
                            .arg(&v.vault)
                            .arg("--passfile")
                            .arg(&newp)
                            .arg("--new-passfile")
                            .arg(&v.passfile),
                    );
                }
            }
        }
        // key remove: crash around its write; the vault always opens with what is left.
        run_ok(&mut cmd2(
            &v,
            &["key", "add"],
            &[
                "--label",
                "second",
                "--new-passfile",
                newp.to_str().unwrap(),
            ],
        ));
        for point in ["atomic-write:1", "atomic-renamed:1"] {
            let mut c = cmd2(&v, &["key", "remove"], &["second"]);
            let o = c.env("TUTELA_TEST_CRASH_AT", point).output().unwrap();
            assert!(!o.status.success());
            assert!(opens(&v.passfile), "{point}");
        }
        assert!(!opens(&newp) || keystore, "key remove did not take");
        if fuse_missing().is_none() {
            v.mount();
            assert_eq!(fs::read(v.p("file")).unwrap(), b"still here");
            v.unmount();
        }
    }
}
