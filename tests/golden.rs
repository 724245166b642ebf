//! The golden vault: a vault made once (with the test KDF) and checked in as
//! `tests/fixtures/golden-vault.tar` (tar keeps the backing files' modes and xattrs). Every
//! build must open it and read back exactly what was put in: a change to the on-disk format
//! that does not come with a new version (and a reader for the old one) fails here.
//! It holds a client zone made by adopting a folder, a policy, a pruned audit log (checkpoint
//! and two segments), a long name, a symlink, an xattr and a 10 KB file.
//! Regenerate only for a deliberate, versioned format change:
//! `cargo test --test golden -- --ignored` (needs FUSE).

mod common;

use common::{run_ok, tutela};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const PASS: &str = "golden vault passphrase";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden-vault.tar")
}

/// What the golden vault holds: path -> contents (`None` for a folder, `Some(b"->target")`
/// for a symlink).
fn expected() -> Vec<(String, Option<Vec<u8>>)> {
    let long = format!("{}.txt", "a-very-long-file-name-".repeat(10));
    vec![
        ("office".into(), None),
        (
            "office/handbook.txt".into(),
            Some(b"firm handbook\n".to_vec()),
        ),
        ("clients".into(), None),
        ("clients/acme".into(), None),
        ("clients/acme/letters".into(), None),
        (
            "clients/acme/letters/engagement.txt".into(),
            Some(b"Dear Acme, we are pleased to act for you.\n".to_vec()),
        ),
        (
            format!("clients/acme/{long}"),
            Some(b"long name\n".to_vec()),
        ),
        (
            "clients/acme/latest".into(),
            Some(b"->letters/engagement.txt".to_vec()),
        ),
        (
            "clients/acme/ledger.bin".into(),
            Some((0..10_000u32).map(|i| (i % 251) as u8).collect()),
        ),
    ]
}

fn passfile(dir: &Path) -> PathBuf {
    let p = dir.join("pass");
    fs::write(&p, format!("{PASS}\n")).unwrap();
    fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    p
}

fn tv(vault: &Path, pass: &Path, args: &[&str]) -> std::process::Output {
    let mut c = tutela();
    let mut rest = args.iter();
    let first = rest.next().unwrap();
    c.arg(first);
    if ["client", "audit", "policy"].contains(first) {
        c.arg(rest.next().unwrap());
    }
    run_ok(c.arg(vault).args(rest).arg("--passfile").arg(pass))
}

/// Mounts `vault` at `dir`/mnt.
fn mount(dir: &Path, vault: &Path, pass: &Path, extra: &[&str]) -> PathBuf {
    let mnt = dir.join("mnt");
    fs::create_dir(&mnt).unwrap();
    run_ok(
        tutela()
            .arg("mount")
            .arg(vault)
            .arg(&mnt)
            .args(extra)
            .arg("--passfile")
            .arg(pass),
    );
    mnt
}

#[test]
fn the_golden_vault_opens_and_reads_back_what_was_put_in() {
    let t = tempfile::tempdir().unwrap();
    run_ok(
        Command::new("tar")
            .args(["--xattrs", "--xattrs-include=user.*", "-xf"])
            .arg(fixture())
            .arg("-C")
            .arg(t.path()),
    );
    let vault = t.path().join("vault");
    let pass = passfile(t.path());
    // The zone table, policy and audit log as written then.
    let o = tv(&vault, &pass, &["client", "list"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("acme\t/clients/acme\t4 files"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let o = tv(&vault, &pass, &["policy", "show"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("[clients.acme]"));
    let o = tv(&vault, &pass, &["audit", "verify"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("audit log ok"), "{out}");
    assert!(out.contains("pruned: records before sequence"), "{out}");
    tv(&vault, &pass, &["fsck"]);
    // Every name, content and symlink, through an export (no mount needed).
    let out = t.path().join("export");
    tv(
        &vault,
        &pass,
        &[
            "client",
            "export",
            "acme",
            "--output",
            out.to_str().unwrap(),
        ],
    );
    for (path, want) in expected() {
        let Some(rel) = path.strip_prefix("clients/") else {
            continue;
        };
        let p = out.join(rel);
        match want {
            None => assert!(p.is_dir(), "{path}"),
            Some(w) if w.starts_with(b"->") => {
                assert_eq!(
                    fs::read_link(&p).unwrap().as_os_str().as_encoded_bytes(),
                    &w[2..],
                    "{path}"
                )
            }
            Some(w) => assert_eq!(fs::read(&p).unwrap(), w, "{path}"),
        }
    }
    // With FUSE: the whole tree, and the xattr, through a read-only mount.
    if common::fuse_missing().is_some() {
        return;
    }
    let mnt = mount(t.path(), &vault, &pass, &["--read-only"]);
    let check = || {
        for (path, want) in expected() {
            let p = mnt.join(&path);
            match want {
                None => assert!(p.is_dir(), "{path}"),
                Some(w) if w.starts_with(b"->") => assert_eq!(
                    fs::read_link(&p).unwrap().as_os_str().as_encoded_bytes(),
                    &w[2..]
                ),
                Some(w) => assert_eq!(fs::read(&p).unwrap(), w, "{path}"),
            }
        }
        if common::have("getfattr") {
            let o = Command::new("getfattr")
                .args(["--only-values", "-n", "user.matter"])
                .arg(mnt.join("clients/acme/letters/engagement.txt"))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&o.stdout), "2026-001");
        }
    };
    let r = std::panic::catch_unwind(check);
    run_ok(tutela().arg("unmount").arg(&mnt));
    if let Err(e) = r {
        std::panic::resume_unwind(e);
    }
}

/// Makes the golden vault (run on purpose only: see the top of this file).
#[test]
#[ignore]
fn make_golden_vault() {
    assert!(common::fuse_missing().is_none(), "needs FUSE");
    let t = tempfile::tempdir().unwrap();
    let vault = t.path().join("vault");
    let pass = passfile(t.path());
    run_ok(
        tutela()
            .arg("init")
            .arg(&vault)
            .arg("--passfile")
            .arg(&pass),
    );
    let mnt = mount(t.path(), &vault, &pass, &[]);
    for (path, want) in expected() {
        let p = mnt.join(&path);
        match want {
            None => fs::create_dir_all(&p).unwrap(),
            Some(w) if w.starts_with(b"->") => std::os::unix::fs::symlink(
                std::ffi::OsStr::from_encoded_bytes_unchecked_safe(&w[2..]),
                &p,
            )
            .unwrap(),
            Some(w) => fs::write(&p, w).unwrap(),
        }
    }
    run_ok(
        Command::new("setfattr")
            .args(["-n", "user.matter", "-v", "2026-001"])
            .arg(mnt.join("clients/acme/letters/engagement.txt")),
    );
    run_ok(tutela().arg("unmount").arg(&mnt));
    // The files moved into the client's own zone (an adoption), then a policy.
    tv(
        &vault,
        &pass,
        &["client", "add", "acme", "--path", "/clients/acme"],
    );
    let policy = t.path().join("policy.toml");
    fs::write(
        &policy,
        "admins = [\"root\"]\ndefault = \"allow\"\n\n[clients.acme]\npath = \"/clients/acme\"\nread = [\"root\"]\nwrite = [\"root\"]\n",
    )
    .unwrap();
    tv(&vault, &pass, &["policy", "set", policy.to_str().unwrap()]);
    // A pruned audit log: the older segments removed behind a sealed checkpoint.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    tv(
        &vault,
        &pass,
        &["audit", "prune", "--before", "1s", "--yes"],
    );
    assert!(vault.join("tutela.audit/pruned").exists());
    run_ok(
        Command::new("tar")
            .args(["--xattrs", "--xattrs-include=user.*", "--sort=name", "-cf"])
            .arg(fixture())
            .arg("-C")
            .arg(t.path())
            .arg("vault"),
    );
}

/// `OsStr` from bytes that came from this file (valid on Unix).
trait FromBytes {
    fn from_encoded_bytes_unchecked_safe(b: &[u8]) -> &std::ffi::OsStr;
}

impl FromBytes for std::ffi::OsStr {
    fn from_encoded_bytes_unchecked_safe(b: &[u8]) -> &std::ffi::OsStr {
        std::os::unix::ffi::OsStrExt::from_bytes(b)
    }
}
