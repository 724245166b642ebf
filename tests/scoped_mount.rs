//! One client's folder mounted alone (`mount --client acme`): a contractor's key, used as the
//! contractor's own Unix user on their own copy of the vault, mounts acme's folder and
//! nothing else; the daemon holds acme's key and not bluebird's (checked in its memory);
//! ordinary tools and fsx work on it; a crafted backing directory cannot point it at another
//! folder; every access lands in the audit log, which the vault's keys verify. Needs root
//! (users, reading the daemon's memory) and FUSE.

mod common;

use common::{code, run_ok, text, tutela, TestVault};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tutela::error::exit;

const CONTRACTOR: &str = "tutela_contractor";

/// A vault with clients acme and bluebird, some files in each, and a client key for acme
/// (passphrase in the returned file).
fn setup(test: &str) -> Option<(TestVault, PathBuf)> {
    let reason = common::fuse_missing()
        .or_else(|| (!common::is_root()).then(|| "needs root (users, daemon memory)".into()));
    if common::skip_unless(reason, test) {
        return None;
    }
    let mut v = TestVault::new_unmounted();
    for (name, path) in [("acme", "/clients/acme"), ("bluebird", "/clients/bluebird")] {
        run_ok(
            tutela()
                .args(["client", "add"])
                .arg(&v.vault)
                .args([name, "--path", path, "--passfile"])
                .arg(&v.passfile),
        );
    }
    v.mount();
    fs::write(v.p("clients/acme/brief.txt"), b"acme's brief").unwrap();
    fs::create_dir(v.p("clients/acme/letters")).unwrap();
    fs::write(v.p("clients/acme/letters/one.txt"), b"letter one").unwrap();
    fs::write(v.p("clients/bluebird/secret.txt"), b"bluebird only").unwrap();
    v.unmount();
    let pass = v.tmp.path().join("contractor.pass");
    fs::write(&pass, "the contractor's passphrase\n").unwrap();
    run_ok(
        tutela()
            .args(["key", "add"])
            .arg(&v.vault)
            .args(["--label", "contractor", "--client", "acme", "--passfile"])
            .arg(&v.passfile)
            .arg("--new-passfile")
            .arg(&pass),
    );
    Some((v, pass))
}

/// The contractor's own copy of the vault (as a sync tool would give them), owned by them,
/// with their passphrase file and an empty mountpoint.
fn contractor_copy(v: &TestVault, pass: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let uid = common::ensure_user(CONTRACTOR);
    let home = v.tmp.path().join("contractor");
    fs::create_dir(&home).unwrap();
    let (vault, mnt, pf) = (home.join("vault"), home.join("acme"), home.join("pass"));
    run_ok(Command::new("cp").arg("-a").arg(&v.vault).arg(&vault));
    fs::create_dir(&mnt).unwrap();
    fs::copy(pass, &pf).unwrap();
    run_ok(
        Command::new("chown")
            .args(["-R", &uid.to_string()])
            .arg(&home),
    );
    // The test's temporary directory must let the contractor through.
    let mut p = home.clone();
    while let Some(parent) = p.parent() {
        let _ = Command::new("chmod").arg("o+x").arg(parent).output();
        p = parent.to_path_buf();
    }
    (vault, mnt, pf)
}

fn as_contractor(args: &[&str]) -> Output {
    Command::new("runuser")
        .args(["-u", CONTRACTOR, "--"])
        .arg(common::bin())
        .args(args)
        .output()
        .unwrap()
}

fn sh_as_contractor(script: &str) -> Output {
    Command::new("runuser")
        .args(["-u", CONTRACTOR, "--", "sh", "-c", script])
        .output()
        .unwrap()
}

fn zone_key(vault: &Path, passfile: &Path, client: &str) -> Vec<u8> {
    let pass = tutela::vault::passphrase::from_file(passfile, "passphrase").unwrap();
    let v =
        tutela::offline::open_vault(vault, &tutela::vault::Unlock::Passphrase(pass), None).unwrap();
    v.zones
        .iter()
        .find(|z| z.name == client)
        .unwrap()
        .key
        .as_bytes()
        .to_vec()
}

#[test]
fn a_contractor_mounts_acme_alone_as_their_own_user() {
    let Some((v, pass)) = setup("scoped mount") else {
        return;
    };
    let (vault, mnt, pf) = contractor_copy(&v, &pass);
    let (vs, ms, ps) = (
        vault.to_str().unwrap(),
        mnt.to_str().unwrap(),
        pf.to_str().unwrap(),
    );
    // The whole vault, or another client: refused, naming the one client the key opens.
    let o = as_contractor(&["mount", vs, ms, "--passfile", ps]);
    assert_eq!(code(&o), exit::CLIENT_KEY_ONLY, "{}", text(&o));
    let o = as_contractor(&["mount", vs, ms, "--client", "bluebird", "--passfile", ps]);
    assert_eq!(code(&o), exit::CLIENT_KEY_ONLY, "{}", text(&o));
    assert!(
        text(&o).contains("opens only client 'acme'"),
        "{}",
        text(&o)
    );

    let (o, o2, status) = common::with_dev_fuse_for_users(|| {
        let o = as_contractor(&["mount", vs, ms, "--client", "acme", "--passfile", ps]);
        assert_eq!(code(&o), 0, "{}", text(&o));
        // Acme's folder is the mount's root; ordinary tools work as the contractor.
        let o2 = sh_as_contractor(&format!(
            "cd {ms} && ls && cat brief.txt && cat letters/one.txt && echo new > notes.txt && \
             mkdir drafts && mv notes.txt drafts/ && cat drafts/notes.txt && cp -a letters copy && \
             ls copy && rm -r copy"
        ));
        let status = common::status_of_as(&mnt, CONTRACTOR);
        (o, o2, status)
    });
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(code(&o2), 0, "{}", text(&o2));
    let out = text(&o2);
    for want in ["brief.txt", "letters", "acme's brief", "letter one", "new"] {
        assert!(out.contains(want), "{want}: {out}");
    }
    assert!(!out.contains("bluebird"), "{out}");
    // The daemon holds acme's key, never bluebird's.
    assert_eq!(status["client"], "acme", "{status}");
    let pid = status["pid"].as_u64().unwrap() as u32;
    assert!(!common::memory_hits(pid, &zone_key(&v.vault, &v.passfile, "acme")).is_empty());
    assert!(common::memory_hits(pid, &zone_key(&v.vault, &v.passfile, "bluebird")).is_empty());
    let o = as_contractor(&["unmount", ms]);
    assert_eq!(code(&o), 0, "{}", text(&o));

    // Back at the office: the contractor's records are in the log, sealed, and the vault's
    // keys verify them with everything else.
    let vault_pf = v.passfile.to_str().unwrap();
    let o = run_ok(tutela().args(["audit", "verify", vs, "--passfile", vault_pf]));
    assert!(text(&o).contains("audit log ok"), "{}", text(&o));
    let o = run_ok(tutela().args(["audit", "show", vs, "--passfile", vault_pf]));
    let log = text(&o);
    for want in [
        "/clients/acme/drafts/notes.txt",
        "client 'acme' only",
        CONTRACTOR,
    ] {
        assert!(log.contains(want), "{want} not in the log:\n{log}");
    }
    // And the contractor's copy still opens whole with the vault's passphrase.
    let o = run_ok(tutela().args(["fsck", vs, "--passfile", vault_pf]));
    assert_eq!(code(&o), 0, "{}", text(&o));
}

#[test]
fn a_crafted_backing_dir_cannot_point_a_scoped_mount_at_another_folder() {
    let Some((mut v, pass)) = setup("scoped mount crafted") else {
        return;
    };
    // Acme's folder's id planted in bluebird's backing folder too. Under the backing folder
    // of /clients: acme's holds a folder (letters), bluebird's none.
    let clients = common::first_backing_dir(&v.vault);
    let subdirs = |d: &Path| -> Vec<PathBuf> {
        fs::read_dir(d)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect()
    };
    let (acme, bluebird): (Vec<PathBuf>, Vec<PathBuf>) = subdirs(&clients)
        .into_iter()
        .partition(|d| !subdirs(d).is_empty());
    let (acme, bluebird) = (acme[0].clone(), bluebird[0].clone());
    let saved = fs::read(bluebird.join(".tutela.dir")).unwrap();
    fs::write(
        bluebird.join(".tutela.dir"),
        fs::read(acme.join(".tutela.dir")).unwrap(),
    )
    .unwrap();
    let o = tutela()
        .args(["mount"])
        .arg(&v.vault)
        .arg(&v.mnt)
        .args(["--client", "acme", "--passfile"])
        .arg(&pass)
        .output()
        .unwrap();
    assert_eq!(code(&o), exit::UNSAFE_FILE, "{}", text(&o));
    assert!(
        text(&o).contains("claim the client's folder id"),
        "{}",
        text(&o)
    );
    fs::write(bluebird.join(".tutela.dir"), saved).unwrap();

    // Bluebird's encrypted files copied into acme's backing folder: the scoped mount has no
    // key for them, shows nothing of them, and reads none of their content.
    let mut planted = Vec::new();
    for e in fs::read_dir(&bluebird).unwrap().flatten() {
        let name = e.file_name();
        if e.path().is_file() && !name.to_string_lossy().starts_with(".tutela") {
            fs::copy(e.path(), acme.join(&name)).unwrap();
            planted.push(acme.join(&name));
        }
    }
    assert!(!planted.is_empty());
    v.mount_args(&["--client", "acme"]);
    let mut names: Vec<String> = fs::read_dir(&v.mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["brief.txt", "letters"]);
    let all = common::tree(&v.mnt);
    assert!(
        !all.values().any(|c| common::contains(c, b"bluebird only")),
        "bluebird's content read through acme's mount"
    );
    v.unmount();
    for p in planted {
        fs::remove_file(p).unwrap();
    }

    // An unknown client: a clear message, nothing mounted.
    let o = tutela()
        .args(["mount"])
        .arg(&v.vault)
        .arg(&v.mnt)
        .args(["--client", "nobody", "--passfile"])
        .arg(&v.passfile)
        .output()
        .unwrap();
    assert_eq!(code(&o), exit::USAGE, "{}", text(&o));
    assert!(
        text(&o).contains("no client named 'nobody'"),
        "{}",
        text(&o)
    );
    assert!(!common::is_mountpoint(&v.mnt));
    // A vault passphrase mounts one client alone too.
    v.mount_args(&["--client", "acme"]);
    assert_eq!(fs::read(v.p("brief.txt")).unwrap(), b"acme's brief");
    assert!(!v.p("clients").exists());
}

/// The same third-party checkers as on a full mount: pjdfstest passes every case and fsx
/// verifies its data, on a mount of acme's folder alone.
#[test]
fn pjdfstest_and_fsx_pass_on_a_scoped_mount() {
    let Some((mut v, _)) = setup("scoped pjdfstest") else {
        return;
    };
    if !common::need("pjdfstest", "scoped pjdfstest") || !common::need("fsx", "scoped fsx") {
        return;
    }
    common::ensure_pjdfstest_users();
    v.mount_args(&["--client", "acme", "--allow-other"]);
    fs::set_permissions(&v.mnt, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let work = v.p("pjd");
    fs::create_dir(&work).unwrap();
    fs::set_permissions(&work, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let ((failed, skipped, passed), report) = common::pjdfstest(&work);
    eprintln!("pjdfstest on a scoped mount: {failed} failed, {skipped} skipped, {passed} passed");
    let bad: Vec<&str> = report
        .lines()
        .filter(|l| l.trim_end().ends_with("FAILED"))
        .collect();
    assert_eq!(failed, 0, "{}", bad.join("\n"));
    assert!(passed > 100, "{report}");
    common::fsx(&v, 7, 30_000);
}

/// Acme readable by `readers` only (a TOML list's inside), writable by nobody but the admin.
fn set_policy(v: &TestVault, readers: &str) {
    let policy = v.tmp.path().join("policy.toml");
    fs::write(
        &policy,
        format!(
            "admins = [\"root\"]\ndefault = \"deny\"\n\n[clients.acme]\n\
             path = \"/clients/acme\"\nread = [{readers}]\nwrite = []\n"
        ),
    )
    .unwrap();
    run_ok(
        tutela()
            .args(["policy", "set"])
            .arg(&v.vault)
            .arg(&policy)
            .arg("--passfile")
            .arg(&v.passfile),
    );
}

/// The access policy applies inside a scoped mount as on a full one (same plaintext paths):
/// on a shared mount of acme's folder alone, the reader the policy names reads, a writer
/// writes, and someone the policy leaves out is refused, with each refusal audited.
#[test]
fn the_policy_applies_inside_a_scoped_mount() {
    let Some((mut v, _)) = setup("scoped policy") else {
        return;
    };
    common::ensure_user("tutela_scoped_reader");
    common::ensure_user("tutela_scoped_outsider");
    set_policy(&v, "\"tutela_scoped_reader\"");
    v.mount_args(&["--client", "acme", "--allow-other"]);
    let as_user = |user: &str, script: &str| {
        Command::new("runuser")
            .args(["-u", user, "--", "sh", "-c", script])
            .output()
            .unwrap()
    };
    let brief = v.p("brief.txt").display().to_string();
    let o = as_user("tutela_scoped_reader", &format!("cat {brief}"));
    assert_eq!(text(&o), "acme's brief", "{}", text(&o));
    let o = as_user("tutela_scoped_reader", &format!("echo x >> {brief}"));
    assert!(text(&o).contains("Permission denied"), "{}", text(&o));
    let o = as_user("tutela_scoped_outsider", &format!("cat {brief}"));
    assert!(text(&o).contains("Permission denied"), "{}", text(&o));
    // A policy set while it is mounted applies within a second, as on a full mount.
    set_policy(&v, "\"tutela_scoped_reader\", \"tutela_scoped_outsider\"");
    common::wait_until(
        || text(&as_user("tutela_scoped_outsider", &format!("cat {brief}"))) == "acme's brief",
        "the new policy on the scoped mount",
    );
    v.unmount();
    let o = run_ok(
        tutela()
            .args(["audit", "show"])
            .arg(&v.vault)
            .args(["--denied", "--passfile"])
            .arg(&v.passfile),
    );
    let log = text(&o);
    assert!(
        log.contains("tutela_scoped_outsider") && log.contains("/clients/acme/brief.txt"),
        "{log}"
    );
}

/// Directory churn (threads creating, removing, renaming and listing in overlapping trees) on
/// a mount of acme's folder alone: after a remount the tree is exactly the union of the
/// workers' models, and the whole vault's fsck is clean.
#[test]
fn directory_churn_on_a_scoped_mount_matches_a_model_after_remount() {
    use common::churn::{churn, read_tree, Model};
    use std::time::{Duration, Instant};
    let Some((mut v, _)) = setup("scoped churn") else {
        return;
    };
    v.mount_args(&["--client", "acme"]);
    let shared = ["s0", "s1", "s2"];
    for s in shared {
        fs::create_dir(v.p(s)).unwrap();
    }
    let until = Instant::now() + Duration::from_secs(10);
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let root = v.mnt.clone();
            std::thread::spawn(move || churn(root, w, until))
        })
        .collect();
    let mut want = Model::new();
    for s in shared {
        want.insert(s.to_string(), None);
    }
    want.insert("brief.txt".into(), Some(b"acme's brief".to_vec()));
    want.insert("letters".into(), None);
    want.insert("letters/one.txt".into(), Some(b"letter one".to_vec()));
    for w in workers {
        want.extend(w.join().expect("a worker failed"));
    }
    v.unmount();
    v.mount_args(&["--client", "acme"]);
    let mut got = Model::new();
    read_tree(&v.mnt, "", &mut got);
    assert_eq!(
        got, want,
        "the tree after a remount differs from the workers' models"
    );
    v.unmount();
    let (code, out) = common::fsck(&v, &[]);
    assert_eq!(code, 0, "fsck found problems:\n{out}");
}

/// A closed matter is read-only on a scoped mount too. The client key cannot read the zone
/// table, so the close reaches the scoped mount through `tutela.closed` (sealed under the
/// policy key): at mount, and within a second when a sync tool brings the office's close
/// while the contractor has it mounted. A list that does not open closes the folder (fail
/// closed), and fsck names it and writes it again.
#[test]
fn a_closed_matter_is_read_only_on_a_scoped_mount_too() {
    let Some((mut v, _)) = setup("scoped closed matter") else {
        return;
    };
    let (vault, passfile) = (v.vault.clone(), v.passfile.clone());
    let lifecycle = |verb: &str| {
        run_ok(
            tutela()
                .args(["client", verb])
                .arg(&vault)
                .args(["acme", "--reason", "matter concluded", "--passfile"])
                .arg(&passfile),
        );
    };
    let list = v.vault.join("tutela.closed");
    lifecycle("close");
    let closed_copy = fs::read(&list).expect("a close writes tutela.closed");
    v.mount_args(&["--client", "acme"]);
    let brief = v.p("brief.txt");
    let denied = |r: std::io::Result<()>| matches!(r, Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied);
    let append = |p: &Path| {
        use std::io::Write;
        fs::OpenOptions::new()
            .append(true)
            .open(p)
            .and_then(|mut f| f.write_all(b" more"))
    };
    assert_eq!(fs::read(&brief).unwrap(), b"acme's brief");
    assert!(denied(append(&brief)), "a write in a closed matter");
    assert!(denied(fs::write(v.p("new.txt"), b"x")), "a new file");
    assert!(denied(fs::remove_file(v.p("letters/one.txt"))), "a delete");
    v.unmount();
    // Reopened: writable again.
    lifecycle("reopen");
    let reopened_copy = fs::read(&list).unwrap();
    v.mount_args(&["--client", "acme"]);
    append(&brief).unwrap();
    // On this machine, vault-wide work waits for the scoped mount to go, and says why.
    let o = tutela()
        .args(["client", "close"])
        .arg(&vault)
        .args(["acme", "--reason", "x", "--passfile"])
        .arg(&passfile)
        .output()
        .unwrap();
    assert_eq!(code(&o), exit::BUSY, "{}", text(&o));
    assert!(text(&o).contains("as client 'acme' alone"), "{}", text(&o));
    // The office's close arrives by sync while mounted (renamed into place, as Syncthing does).
    let arrive = |bytes: &[u8]| {
        let tmp = vault.join(".syncthing.tutela.closed.tmp");
        fs::write(&tmp, bytes).unwrap();
        fs::rename(&tmp, &list).unwrap();
    };
    arrive(&closed_copy);
    common::wait_until(
        || denied(append(&brief)),
        "the synced close on the scoped mount",
    );
    arrive(&reopened_copy);
    common::wait_until(|| append(&brief).is_ok(), "the synced reopen");
    // A list that does not open (damaged, or planted): read-only, not open.
    arrive(b"TUTCLOSD\x01\x00not sealed under this vault's policy key");
    common::wait_until(|| denied(append(&brief)), "fail closed on a bad list");
    v.unmount();
    let o = tutela()
        .args(["fsck"])
        .arg(&v.vault)
        .args(["--repair", "--passfile"])
        .arg(&v.passfile)
        .output()
        .unwrap();
    assert!(text(&o).contains("closed-clients list"), "{}", text(&o));
    assert_eq!(
        fs::read(&list).ok().map(|b| b.len()),
        Some(reopened_copy.len())
    );
    v.mount_args(&["--client", "acme"]);
    append(&brief).unwrap();
    v.unmount();
    let o = run_ok(
        tutela()
            .args(["audit", "show"])
            .arg(&v.vault)
            .arg("--passfile")
            .arg(&v.passfile),
    );
    let log = text(&o);
    for want in [
        "/clients/acme/brief.txt",
        "client-close",
        "client-reopen",
        "denied",
    ] {
        assert!(log.contains(want), "{want}: {log}");
    }
}
