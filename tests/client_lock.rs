//! Locking one client on a live mount (`tutela lock` / `unlock`, `--client-idle`): the
//! client's key leaves the daemon's memory (checked by reading that memory), its folder
//! answers ENOKEY, the other clients stay open, open handles block the lock (or are revoked
//! with --force), status shows it, the audit log records it, and nothing is lost. Needs root
//! (to read the daemon's memory) and FUSE.

mod common;

use common::{code, daemon_pid, errno_of, run_ok, text, tutela, TestVault};
use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use tutela::error::exit;

fn setup(test: &str) -> Option<TestVault> {
    let reason = common::fuse_missing()
        .or_else(|| (!common::is_root()).then(|| "needs root to read the daemon's memory".into()));
    if common::skip_unless(reason, test) {
        return None;
    }
    let v = TestVault::new_unmounted();
    for (name, path) in [("acme", "/clients/acme"), ("bluebird", "/clients/bluebird")] {
        run_ok(&mut cmd(
            &v,
            &[
                "client",
                "add",
                &v.vault.display().to_string(),
                name,
                "--path",
                path,
            ],
        ));
    }
    Some(v)
}

/// `tutela ARGS... --passfile PASS`.
fn cmd(v: &TestVault, args: &[&str]) -> Command {
    let mut c = tutela();
    c.args(args).arg("--passfile").arg(&v.passfile);
    c
}

fn lock(v: &TestVault, args: &[&str]) -> Output {
    let mnt = v.mnt.display().to_string();
    let mut all = vec![args[0], mnt.as_str()];
    all.extend_from_slice(&args[1..]);
    cmd(v, &all).output().unwrap()
}

/// Acme's zone key and the vault's zone-wrap key, from the vault itself.
fn secrets(v: &TestVault) -> (Vec<u8>, Vec<u8>) {
    let pass = tutela::vault::passphrase::from_file(&v.passfile, "passphrase").unwrap();
    let vault =
        tutela::offline::open_vault(&v.vault, &tutela::vault::Unlock::Passphrase(pass), None)
            .unwrap();
    let acme = vault.zones.iter().find(|z| z.name == "acme").unwrap();
    (
        acme.key.as_bytes().to_vec(),
        vault.zone_wrap_key().as_bytes().to_vec(),
    )
}

/// What status says is locked, once it says `want` (it is published within a second).
fn locked_becomes(v: &TestVault, want: &[&str]) {
    common::wait_until(|| locked(v) == want, "status to show the locked clients");
}

fn locked(v: &TestVault) -> Vec<String> {
    common::status_of(&v.mnt)["locked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

fn audit(v: &TestVault) -> String {
    let vault = v.vault.display().to_string();
    text(&run_ok(&mut cmd(v, &["audit", "show", &vault])))
}

#[test]
fn one_client_locks_while_the_others_stay_open() {
    let Some(mut v) = setup("one client locks") else {
        return;
    };
    v.mount();
    fs::write(v.p("clients/acme/a.txt"), b"acme's file").unwrap();
    fs::write(v.p("clients/bluebird/b.txt"), b"bluebird's file").unwrap();
    let (acme_key, zone_wrap) = secrets(&v);
    let pid = daemon_pid(&v);
    // The check can see a key: before the lock both are in the daemon's memory.
    assert!(
        !common::memory_hits(pid, &acme_key).is_empty(),
        "acme's key not found before the lock"
    );
    assert!(
        !common::memory_hits(pid, &zone_wrap).is_empty(),
        "the zone-wrap key not found before the lock"
    );

    let o = lock(&v, &["lock", "acme"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("locked"), "{}", text(&o));
    assert!(
        common::memory_hits(pid, &acme_key).is_empty(),
        "acme's key is still in the daemon's memory"
    );
    assert!(
        common::memory_hits(pid, &zone_wrap).is_empty(),
        "the zone-wrap key is still in memory"
    );
    // Acme's folder answers "Required key not available"; bluebird works as before.
    assert_eq!(errno_of(fs::read(v.p("clients/acme/a.txt"))), libc::ENOKEY);
    assert_eq!(errno_of(fs::read_dir(v.p("clients/acme"))), libc::ENOKEY);
    assert_eq!(
        errno_of(fs::write(v.p("clients/acme/new.txt"), b"x")),
        libc::ENOKEY
    );
    assert_eq!(
        fs::read(v.p("clients/bluebird/b.txt")).unwrap(),
        b"bluebird's file"
    );
    fs::write(v.p("clients/bluebird/c.txt"), b"more").unwrap();
    locked_becomes(&v, &["acme"]);
    // Changing the zone table needs every key: refused, with its own exit code.
    let vault = v.vault.display().to_string();
    let add_cobalt = || {
        cmd(
            &v,
            &[
                "client",
                "add",
                &vault,
                "cobalt",
                "--path",
                "/clients/cobalt",
            ],
        )
    };
    let o = add_cobalt().output().unwrap();
    assert_eq!(code(&o), exit::CLIENT_LOCKED, "{}", text(&o));
    // Locking again says so; unlocking what is not locked is a usage error.
    assert!(text(&lock(&v, &["lock", "acme"])).contains("already locked"));
    assert_eq!(code(&lock(&v, &["unlock", "bluebird"])), exit::USAGE);

    let o = lock(&v, &["unlock", "acme"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(fs::read(v.p("clients/acme/a.txt")).unwrap(), b"acme's file");
    fs::write(v.p("clients/acme/new.txt"), b"after").unwrap();
    locked_becomes(&v, &[]);
    // With nothing locked, the zone table can change again.
    run_ok(&mut add_cobalt());

    // An open file keeps its client from locking, unless --force, which revokes the handle.
    let held = fs::File::open(v.p("clients/acme/a.txt")).unwrap();
    let o = lock(&v, &["lock", "acme"]);
    assert_eq!(code(&o), exit::BUSY, "{}", text(&o));
    assert!(text(&o).contains("open file"), "{}", text(&o));
    let o = lock(&v, &["lock", "acme", "--force"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        text(&o).contains("1 open files were closed"),
        "{}",
        text(&o)
    );
    let mut buf = [0u8; 4];
    assert!(std::os::unix::fs::FileExt::read_at(&held, &mut buf, 0).is_err());
    drop(held);
    run_ok(&mut cmd(
        &v,
        &["unlock", &v.mnt.display().to_string(), "acme"],
    ));

    v.unmount();
    let log = audit(&v);
    for want in ["client-lock", "client-unlock", "1 open files were closed"] {
        assert!(log.contains(want), "{want} not in the audit log:\n{log}");
    }
    // Nothing was lost.
    v.mount();
    assert_eq!(fs::read(v.p("clients/acme/new.txt")).unwrap(), b"after");
    assert_eq!(fs::read(v.p("clients/bluebird/c.txt")).unwrap(), b"more");
}

#[test]
fn a_client_locks_after_its_own_idle_time_while_another_stays_open() {
    let Some(mut v) = setup("client idle") else {
        return;
    };
    v.mount_args(&["--client-idle", "3s"]);
    fs::write(v.p("clients/acme/a.txt"), b"acme").unwrap();
    fs::write(v.p("clients/bluebird/b.txt"), b"bluebird").unwrap();
    // Bluebird is in use the whole time; acme is left alone.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(8) && locked(&v) != ["acme"] {
        assert_eq!(
            fs::read(v.p("clients/bluebird/b.txt")).unwrap(),
            b"bluebird"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(locked(&v), ["acme"], "acme idle, bluebird in use");
    assert_eq!(errno_of(fs::read(v.p("clients/acme/a.txt"))), libc::ENOKEY);
    run_ok(&mut cmd(
        &v,
        &["unlock", &v.mnt.display().to_string(), "acme"],
    ));
    assert_eq!(fs::read(v.p("clients/acme/a.txt")).unwrap(), b"acme");
    let status = text(&run_ok(tutela().args(["status"])));
    assert!(
        status.contains("locks each client after 3s idle"),
        "{status}"
    );
    v.unmount();
    let log = audit(&v);
    assert!(
        log.lines()
            .any(|l| l.contains("client-lock idle for 3s") && l.contains("[acme]")),
        "{log}"
    );
}

#[test]
fn lock_refuses_bad_input_clearly() {
    let Some(mut v) = setup("lock bad input") else {
        return;
    };
    // Not mounted: nothing to lock.
    let o = lock(&v, &["lock", "acme"]);
    assert_eq!(code(&o), exit::NOT_MOUNTED, "{}", text(&o));
    let vault = v.vault.display().to_string();
    let o = cmd(&v, &["lock", &vault, "acme"]).output().unwrap();
    assert_eq!(code(&o), exit::NOT_MOUNTED, "{}", text(&o));
    v.mount();
    let o = lock(&v, &["lock", "nobody"]);
    assert_eq!(code(&o), exit::USAGE, "{}", text(&o));
    assert!(
        text(&o).contains("no client named 'nobody'"),
        "{}",
        text(&o)
    );
    // A wrong passphrase: refused before anything reaches the daemon.
    let wrong = v.tmp.path().join("wrong");
    fs::write(&wrong, "not the passphrase\n").unwrap();
    let o = tutela()
        .args(["unlock", &v.mnt.display().to_string(), "acme", "--passfile"])
        .arg(&wrong)
        .output()
        .unwrap();
    assert_eq!(code(&o), exit::WRONG_PASSPHRASE, "{}", text(&o));
    // A client key (bluebird's) cannot unlock acme: it says whose key it is.
    let bb = v.tmp.path().join("bluebird.pass");
    fs::write(&bb, "bluebird's contractor passphrase\n").unwrap();
    let vault = v.vault.display().to_string();
    run_ok(&mut cmd(
        &v,
        &[
            "key",
            "add",
            &vault,
            "--label",
            "bb",
            "--client",
            "bluebird",
            "--new-passfile",
            bb.to_str().unwrap(),
        ],
    ));
    let o = tutela()
        .args(["unlock", &v.mnt.display().to_string(), "acme", "--passfile"])
        .arg(&bb)
        .output()
        .unwrap();
    assert_eq!(code(&o), exit::CLIENT_KEY_ONLY, "{}", text(&o));
    assert!(
        text(&o).contains("opens only client 'bluebird'"),
        "{}",
        text(&o)
    );
    // A directory that is neither a mount nor a vault.
    let o = cmd(&v, &["lock", "/tmp", "acme"]).output().unwrap();
    assert_eq!(code(&o), exit::NOT_MOUNTED, "{}", text(&o));
    let _ = Path::new("/");
}
