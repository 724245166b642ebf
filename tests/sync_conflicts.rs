//! A vault in a sync folder: what a sync tool does to the backing directory when a file was
//! changed on two machines (it keeps the other version under a decorated backing name), and
//! what the mount and fsck then show. The decorations are made here exactly as Syncthing,
//! Dropbox and Nextcloud make them (a test with two real Syncthing instances is still to come).

mod common;

use common::{audit_chain_dir, TestVault};
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

/// The backing names of the user entries in the vault's top directory.
fn user_entries(v: &TestVault) -> Vec<String> {
    fs::read_dir(&v.vault)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with("tutela.") && !n.starts_with(".tutela"))
        .collect()
}

/// The encrypted name of the one user entry in the vault's top directory.
fn only_entry(v: &TestVault) -> String {
    let names = user_entries(v);
    assert_eq!(names.len(), 1, "{names:?}");
    names[0].clone()
}

/// `tutela ARGS VAULT [EXTRA] --passfile P` with the test vault's passphrase; must succeed.
fn tv(v: &TestVault, args: &[&str], vault: &Path, extra: &[&Path]) -> Output {
    common::run_ok(
        common::tutela()
            .args(args)
            .arg(vault)
            .args(extra)
            .arg("--passfile")
            .arg(&v.passfile),
    )
}

#[test]
fn conflict_copies_are_shown_read_adopted_deleted_and_named_by_fsck() {
    let Some(mut v) = TestVault::new("sync conflicts") else {
        return;
    };
    v.mount();
    fs::write(v.p("report.docx"), b"laptop's version").unwrap();
    v.unmount();
    // The sync tool found the office's edit in conflict and kept the laptop's under these
    // names (one tool's decoration each, as each tool writes it).
    let enc = only_entry(&v);
    let copies = [
        (
            format!("{enc}.sync-conflict-20261204-101112-ABCDEF7"),
            "report (conflict 2026-12-04 10.11.12 ABCDEF7).docx",
        ),
        (
            format!("{enc} (LAPTOP's conflicted copy 2026-12-04)"),
            "report (conflict 2026-12-04 LAPTOP).docx",
        ),
        (
            format!("{enc} (conflicted copy 2026-12-05 090807)"),
            "report (conflict 2026-12-05 09.08.07).docx",
        ),
    ];
    for (backing, _) in &copies {
        fs::copy(v.vault.join(&enc), v.vault.join(backing)).unwrap();
    }
    v.mount();
    fs::write(v.p("report.docx"), b"office's version").unwrap();

    let mut listed: Vec<String> = fs::read_dir(&v.mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    listed.sort();
    let mut want: Vec<String> = copies.iter().map(|(_, s)| s.to_string()).collect();
    want.push("report.docx".into());
    want.sort();
    assert_eq!(listed, want);
    assert_eq!(fs::read(v.p("report.docx")).unwrap(), b"office's version");
    for (_, shown) in &copies {
        assert_eq!(
            fs::read(v.p(shown)).unwrap(),
            b"laptop's version",
            "{shown}"
        );
        assert_eq!(fs::metadata(v.p(shown)).unwrap().len(), 16);
    }
    // Keep one under a plain name (it is an ordinary file from then on), delete another.
    fs::rename(v.p(copies[0].1), v.p("report (laptop).docx")).unwrap();
    assert_eq!(
        fs::read(v.p("report (laptop).docx")).unwrap(),
        b"laptop's version"
    );
    fs::remove_file(v.p(copies[1].1)).unwrap();
    assert!(!v.p(copies[1].1).exists());
    v.unmount();

    // fsck names the one left as a conflict, not as damage, and the vault is clean.
    let (code, out) = common::fsck(&v, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "/{}: a Nextcloud conflict copy of /report.docx",
            copies[2].1
        )),
        "{out}"
    );
    assert!(out.contains("clean"), "{out}");
}

/// Two machines that mounted copies of one vault at once each wrote the same audit segment;
/// the sync tool kept one and renamed the other. `audit verify` still verifies what is in the
/// chain and names the copy, whose records are not in it, instead of staying silent.
#[test]
fn audit_verify_names_a_sync_conflict_copy_of_a_segment() {
    let Some(mut v) = TestVault::new("audit segment conflict") else {
        return;
    };
    v.mount();
    fs::write(v.p("f"), b"x").unwrap();
    v.unmount();
    let audit = audit_chain_dir(&v.vault);
    let seg = fs::read_dir(&audit)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".seg"))
        .max()
        .unwrap();
    let copy = seg.replace(".seg", ".sync-conflict-20261204-101112-ABCDEF7.seg");
    fs::copy(audit.join(&seg), audit.join(&copy)).unwrap();
    let out = tv(&v, &["audit", "verify"], &v.vault, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("audit log ok"), "{text}");
    assert!(
        text.contains(&format!(
            "note: tutela.audit/{}/{copy} is a copy of a segment",
            audit.file_name().unwrap().to_string_lossy()
        )),
        "{text}"
    );
}

/// The vault's config changed on two machines between syncs (a passphrase added on each, a
/// client added on one); the sync tool kept one `tutela.conf` and renamed the other. The next
/// command that opens the vault merges the copy in: every passphrase opens it, the client is
/// there, the copy is gone, and the merge is in the audit log.
#[test]
fn a_config_changed_on_two_machines_is_merged() {
    let v = TestVault::new_unmounted();
    let laptop = v.tmp.path().join("laptop");
    common::run_ok(
        std::process::Command::new("cp")
            .arg("-a")
            .arg(&v.vault)
            .arg(&laptop),
    );
    let second = v.tmp.path().join("second-pass");
    let key_add = |vault: &std::path::Path, label: &str, words: &str| {
        fs::write(&second, format!("{words}\n")).unwrap();
        common::run_ok(
            common::tutela()
                .args(["key", "add"])
                .arg(vault)
                .args(["--label", label])
                .arg("--passfile")
                .arg(&v.passfile)
                .arg("--new-passfile")
                .arg(&second),
        );
    };
    key_add(&v.vault, "office", "office horse battery staple");
    key_add(&laptop, "laptop", "laptop horse battery staple");
    common::run_ok(
        common::tutela()
            .args(["client", "add"])
            .arg(&laptop)
            .args(["bluebird", "--path", "/clients/bluebird", "--passfile"])
            .arg(&v.passfile),
    );
    let copy = v
        .vault
        .join("tutela.sync-conflict-20261204-101112-ABCDEF7.conf");
    fs::copy(laptop.join("tutela.conf"), &copy).unwrap();

    let out = tv(&v, &["key", "list"], &v.vault, &[]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        stderr.contains("merged: key 'laptop', client 'bluebird', and removed"),
        "{stderr}"
    );
    for label in ["default", "office", "laptop"] {
        assert!(stdout.contains(label), "{stdout}");
    }
    assert!(!copy.exists());
    let clients = tv(&v, &["client", "list"], &v.vault, &[]);
    assert!(String::from_utf8_lossy(&clients.stdout).contains("bluebird"));
    // The laptop's passphrase opens the office's copy now.
    fs::write(&second, "laptop horse battery staple\n").unwrap();
    common::run_ok(
        common::tutela()
            .args(["key", "list"])
            .arg(&v.vault)
            .arg("--passfile")
            .arg(&second),
    );
    let shown = tv(&v, &["audit", "show"], &v.vault, &[]);
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("config-merge"),
        "{}",
        String::from_utf8_lossy(&shown.stdout)
    );
}

/// The policy was set on two machines between syncs: the newer generation wins, and the
/// older policy file is kept (and named).
#[test]
fn the_newer_policy_wins_and_the_older_is_kept() {
    let Some(mut v) = TestVault::new("newer policy wins") else {
        return;
    };
    let p1 = v.tmp.path().join("p1.toml");
    let p2 = v.tmp.path().join("p2.toml");
    fs::write(&p1, "admins = [\"root\"]\n# office\n").unwrap();
    fs::write(&p2, "admins = [\"root\"]\n# laptop, set twice\n").unwrap();
    tv(&v, &["policy", "set"], &v.vault, &[&p1]);
    let laptop = v.tmp.path().join("laptop");
    common::run_ok(
        std::process::Command::new("cp")
            .arg("-a")
            .arg(&v.vault)
            .arg(&laptop),
    );
    tv(&v, &["policy", "set"], &laptop, &[&p2]);
    tv(&v, &["policy", "set"], &laptop, &[&p2]);
    // The tool kept the office's files and renamed the laptop's.
    for (from, to) in [
        (
            "tutela.conf",
            "tutela.sync-conflict-20261204-101112-ABCDEF7.conf",
        ),
        (
            "tutela.policy",
            "tutela.sync-conflict-20261204-101112-ABCDEF7.policy",
        ),
    ] {
        fs::copy(laptop.join(from), v.vault.join(to)).unwrap();
    }
    let shown = tv(&v, &["policy", "show"], &v.vault, &[]);
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("laptop, set twice"),
        "{}",
        String::from_utf8_lossy(&shown.stdout)
    );
    assert!(String::from_utf8_lossy(&shown.stderr).contains(
        "the newer policy (generation 3; the older one is kept as tutela.policy.generation-1)"
    ));
    let kept = fs::read(v.vault.join("tutela.policy.generation-1")).unwrap();
    assert!(!kept.is_empty());
    // Mounting accepts the policy in force (the config is bound to it).
    v.mount();
    v.unmount();
}

/// `fsck --repair --keep newest` keeps the newer of a file and its conflict copy under the
/// file's name; the default keeps both.
#[test]
fn fsck_repair_can_keep_the_newer_version() {
    let Some(mut v) = TestVault::new("fsck keep newest") else {
        return;
    };
    v.mount();
    fs::write(v.p("a.txt"), b"old a").unwrap();
    fs::write(v.p("b.txt"), b"new b").unwrap();
    v.unmount();
    let names = user_entries(&v);
    // a.txt's copy is newer than a.txt; b.txt's copy is older than b.txt.
    let set_mtime = |p: &std::path::Path, secs: i64| {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64);
        fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(t)
            .unwrap();
    };
    v.mount();
    let a_ino = std::os::unix::fs::MetadataExt::ino(&fs::metadata(v.p("a.txt")).unwrap());
    v.unmount();
    for n in &names {
        let is_a =
            std::os::unix::fs::MetadataExt::ino(&fs::metadata(v.vault.join(n)).unwrap()) == a_ino;
        let copy = v.vault.join(format!("{n}-LAPTOP"));
        fs::copy(v.vault.join(n), &copy).unwrap();
        set_mtime(&v.vault.join(n), 1_700_000_000);
        set_mtime(&copy, if is_a { 1_800_000_000 } else { 1_600_000_000 });
    }
    let (code, out) = common::fsck(&v, &["--repair"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches("conflict copy of").count(), 2, "{out}");
    let (code, out) = common::fsck(&v, &["--repair", "--keep", "newest"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("copy of /a.txt: the copy was newer: it replaced the file"),
        "{out}"
    );
    assert!(
        out.contains("copy of /b.txt: the file was newer: the copy was removed"),
        "{out}"
    );
    let (_, again) = common::fsck(&v, &[]);
    assert!(!again.contains("conflict copy"), "{again}");
}

/// A name in the vault that is neither an entry nor a known copy of one stays hidden, is
/// warned about once, and `tutela status` counts it.
#[test]
fn tutela_status_counts_strays() {
    let Some(mut v) = TestVault::new("status strays") else {
        return;
    };
    v.mount();
    fs::write(v.p("a"), b"x").unwrap();
    fs::write(v.vault.join("left-by-someone.bin"), b"?").unwrap();
    fs::write(v.vault.join(".stfolder"), b"").unwrap();
    assert_eq!(fs::read_dir(&v.mnt).unwrap().count(), 1);
    assert_eq!(fs::read_dir(&v.mnt).unwrap().count(), 1);
    common::wait_until(
        || common::status_of(&v.mnt)["strays"] == 1,
        "status to count the stray",
    );
    let log = fs::read_to_string(&v.log).unwrap();
    assert_eq!(log.matches("left-by-someone.bin").count(), 1, "{log}");
    assert!(!log.contains(".stfolder"), "{log}");
    v.unmount();
}

/// `rekey --all` re-seals every copy's audit chain under the new key, each in its own
/// directory: the log of a vault used on two machines still verifies after it, with both
/// machines' records.
#[test]
fn a_rekey_reseals_the_audit_chain_of_every_copy() {
    let v = TestVault::new_unmounted();
    tv(
        &v,
        &["client", "add"],
        &v.vault,
        &[
            Path::new("acme"),
            Path::new("--path"),
            Path::new("/clients/acme"),
        ],
    );
    let laptop = v.tmp.path().join("laptop");
    common::run_ok(Command::new("cp").arg("-a").arg(&v.vault).arg(&laptop));
    tv(
        &v,
        &["client", "add"],
        &laptop,
        &[
            Path::new("bluebird"),
            Path::new("--path"),
            Path::new("/clients/bluebird"),
        ],
    );
    // The sync tool carries the laptop's chain over.
    let chain = audit_chain_dir(&v.vault);
    let laptop_chain = fs::read_dir(laptop.join("tutela.audit"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir() && p.file_name() != chain.file_name())
        .expect("the laptop writes a chain of its own");
    common::run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(&laptop_chain)
            .arg(v.vault.join("tutela.audit")),
    );
    let heads = |v: &TestVault| {
        let out = tv(v, &["audit", "verify"], &v.vault, &[]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(text.contains("audit log ok"), "{text}");
        text.matches("head: r-").count()
    };
    assert_eq!(heads(&v), 2);
    tv(&v, &["rekey", "--all", "--yes"], &v.vault, &[]);
    assert_eq!(heads(&v), 2, "each chain re-sealed in its own directory");
    let out = tv(&v, &["audit", "show"], &v.vault, &[]);
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    for want in [
        "client 'acme'",
        "client 'bluebird'",
        "replica-heads-before-rekey",
        "rekey-all",
    ] {
        assert!(shown.contains(want), "{want}:\n{shown}");
    }
}
