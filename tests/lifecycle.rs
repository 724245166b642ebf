//! A client's life: metadata and a retention rule, the clock moved on (libfaketime, the real
//! binary under a faked clock) until retention ends, `client due`, a legal hold that blocks
//! shred and expire, `client expire` (and the shipped monthly timer's ExecStart), and signed
//! erasure certificates that verify offline while a tampered one does not.

mod common;

use common::{as_user, code, text, tutela, TestVault};
use std::path::Path;
use std::process::{Command, Output};
use tutela::error::exit;

/// `tutela ARGS[..2] VAULT ARGS[2..] --passfile P`, under a clock faked to `at` (or the real one).
fn tv_at(v: &TestVault, at: Option<&str>, args: &[&str]) -> Output {
    let mut c = match at {
        Some(t) => {
            let mut c = Command::new("faketime");
            c.arg(t).arg(common::bin());
            c.env("TUTELA_TEST_INSECURE_KDF", "1");
            c.stdin(std::process::Stdio::null());
            c
        }
        None => tutela(),
    };
    c.args(&args[..2])
        .arg(&v.vault)
        .args(&args[2..])
        .arg("--passfile")
        .arg(&v.passfile);
    c.output().unwrap()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", text(&o));
    text(&o)
}

fn vault_with_clients() -> Option<TestVault> {
    if !common::need("faketime", "lifecycle") {
        return None;
    }
    let v = TestVault::new_unmounted();
    for (c, p) in [("acme", "/clients/acme"), ("bluebird", "/clients/bluebird")] {
        ok(tv_at(&v, None, &["client", "add", c, "--path", p]));
    }
    // Without --path, a client's folder is /clients/NAME.
    ok(tv_at(&v, None, &["client", "add", "cobalt"]));
    assert!(ok(tv_at(&v, None, &["client", "list"])).contains("cobalt\t/clients/cobalt\t"));
    Some(v)
}

fn due(v: &TestVault, at: &str) -> serde_json::Value {
    let o = ok(tv_at(v, Some(at), &["client", "due", "--json"]));
    serde_json::from_str(o.lines().find(|l| l.starts_with('{')).unwrap()).unwrap()
}

fn standing(d: &serde_json::Value, client: &str) -> String {
    d["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client"] == client)
        .unwrap()["standing"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn retention_runs_out_under_a_faked_clock_and_a_hold_keeps_a_client() {
    let Some(v) = vault_with_clients() else {
        return;
    };
    // Taking a client on opens its matter: the date is there from `client add` on.
    let info: serde_json::Value = serde_json::from_str(&ok(tv_at(
        &v,
        None,
        &["client", "info", "cobalt", "--json"],
    )))
    .unwrap();
    let opened = info["meta"]["opened_ms"].as_u64().expect("opened at add");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(now - opened < 600_000, "{info}");
    let certs = v.tmp.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    ok(tv_at(
        &v,
        None,
        &[
            "client",
            "set",
            "acme",
            "--retain",
            "7y",
            "--ref",
            "M-2026-014",
            "--responsible",
            "Ana Ortiz",
            "--opened",
            "2026-01-05",
        ],
    ));
    ok(tv_at(
        &v,
        None,
        &["client", "set", "bluebird", "--retain", "2y after close"],
    ));
    ok(tv_at(
        &v,
        None,
        &["client", "close", "bluebird", "--date", "2026-06-30"],
    ));
    // A rule that does not parse says where, and changes nothing.
    let o = tv_at(
        &v,
        None,
        &["client", "set", "cobalt", "--retain", "7 years"],
    );
    assert_eq!(code(&o), exit::USAGE);
    assert!(text(&o).contains("--retain:1:"), "{}", text(&o));
    let info: serde_json::Value =
        serde_json::from_str(&ok(tv_at(&v, None, &["client", "info", "acme", "--json"]))).unwrap();
    assert_eq!(info["meta"]["reference"], "M-2026-014");
    assert_eq!(
        info["retention"]["standing"], "open",
        "retention starts at the close"
    );
    ok(tv_at(
        &v,
        None,
        &[
            "client",
            "close",
            "acme",
            "--date",
            "2026-03-15",
            "--reason",
            "matter concluded",
        ],
    ));
    let o = tv_at(&v, None, &["client", "close", "acme"]);
    assert_eq!(code(&o), exit::USAGE, "closed already: {}", text(&o));
    assert!(ok(tv_at(&v, None, &["client", "info", "acme"])).contains("kept until 2033-03-15"));

    // 2028-07-01: bluebird's two years are over, acme's seven are not; cobalt has no rule.
    let d = due(&v, "2028-07-01 12:00:00");
    assert_eq!(standing(&d, "bluebird"), "due");
    assert_eq!(standing(&d, "acme"), "retained");
    assert_eq!(standing(&d, "cobalt"), "no-rule");
    // The log's newest record is from today: a clock two years on looks wrong; expire says
    // so, names the clients, and shreds nothing.
    let o = tv_at(
        &v,
        Some("2028-07-01 12:00:00"),
        &["client", "expire", "--yes"],
    );
    assert_eq!(code(&o), exit::USAGE, "{}", text(&o));
    assert!(
        text(&o).contains("bluebird") && text(&o).contains("clock"),
        "{}",
        text(&o)
    );
    assert_eq!(standing(&due(&v, "2028-07-01 12:00:00"), "bluebird"), "due");
    // Someone worked in the vault in June 2028: the clock is believable again.
    ok(tv_at(
        &v,
        Some("2028-06-20 09:00:00"),
        &["client", "set", "cobalt", "--ref", "M-2028-001"],
    ));
    let o = ok(tv_at(
        &v,
        Some("2028-07-01 12:00:00"),
        &["client", "expire", "--dry-run"],
    ));
    assert!(o.contains("would shred 'bluebird'"), "{o}");
    // A legal hold keeps acme past its retention; the shipped timer's ExecStart (under the
    // faked clock; the hold, a month before, is the log's newest record) shreds what is due
    // and nothing held.
    ok(tv_at(
        &v,
        Some("2033-03-01 09:00:00"),
        &[
            "client",
            "hold",
            "acme",
            "--reason",
            "litigation Acme v. Bluebird",
        ],
    ));
    let d = due(&v, "2033-04-01 12:00:00");
    assert_eq!(standing(&d, "acme"), "held");
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/systemd/tutela-client-expire.service"),
    )
    .unwrap();
    let timer = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/systemd/tutela-client-expire.timer"),
    )
    .unwrap();
    assert_eq!(common::unit_value(&timer, "OnCalendar"), "monthly");
    let creds = v.tmp.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::copy(&v.passfile, creds.join("passphrase")).unwrap();
    let start = common::unit_value(&unit, "ExecStart")
        .replace("/usr/local/bin/tutela", common::bin().to_str().unwrap())
        .replace("/srv/tutela/vault", v.vault.to_str().unwrap())
        .replace("/var/lib/tutela/certificates", certs.to_str().unwrap());
    let o = Command::new("faketime")
        .arg("2033-04-01 12:00:00")
        .args(["sh", "-c", &start])
        .env("CREDENTIALS_DIRECTORY", &creds)
        .env("TUTELA_TEST_INSECURE_KDF", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let said = ok(o);
    assert!(said.contains("client 'bluebird' shredded"), "{said}");
    assert!(said.contains("under legal hold (kept): acme"), "{said}");
    let d = due(&v, "2033-04-01 12:00:00");
    assert!(d["clients"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["client"] != "bluebird"));
    // Shred is refused under the hold, with its reason; after the release, expire takes acme.
    let o = tv_at(
        &v,
        Some("2033-04-02 09:00:00"),
        &["client", "shred", "acme", "--yes"],
    );
    assert_eq!(code(&o), exit::USAGE, "{}", text(&o));
    assert!(text(&o).contains("litigation"), "{}", text(&o));
    ok(tv_at(
        &v,
        Some("2033-05-02 09:00:00"),
        &["client", "release", "acme", "--reason", "settled"],
    ));
    let said = ok(tv_at(
        &v,
        Some("2033-05-02 10:00:00"),
        &[
            "client",
            "expire",
            "--yes",
            "--certificates",
            certs.to_str().unwrap(),
            "--oldest-backup",
            "2031-01-01",
        ],
    ));
    assert!(said.contains("client 'acme' shredded"), "{said}");

    // Two certificates, each verifying offline against the vault's key; acme's names the
    // matter and its retention, what was destroyed, and the backups that still hold the key.
    let pk = ok(tv_at(&v, None, &["audit", "pubkey"])).trim().to_string();
    let mut files: Vec<_> = std::fs::read_dir(&certs)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    let acme = files
        .iter()
        .find(|f| f.to_string_lossy().contains("acme-erased-2033-05-02"))
        .unwrap();
    let c: serde_json::Value = serde_json::from_slice(&std::fs::read(acme).unwrap()).unwrap();
    let cert = &c["certificate"];
    assert_eq!(cert["client"], "acme");
    assert_eq!(cert["how"], "expire");
    assert_eq!(cert["reference"], "M-2026-014");
    assert!(cert["audit_anchor"].as_str().is_some());
    assert!(
        cert["remains"][0].as_str().unwrap().contains("2031-01-01"),
        "{cert}"
    );
    let check = |f: &Path, extra: &[&str]| {
        tutela()
            .args(["client", "verify-certificate"])
            .arg(f)
            .args(extra)
            .output()
            .unwrap()
    };
    for f in &files {
        assert!(
            check(f, &["--pubkey", &pk]).status.success(),
            "{}",
            text(&check(f, &[]))
        );
    }
    let forged = v.tmp.path().join("forged.json");
    std::fs::write(
        &forged,
        std::fs::read_to_string(acme)
            .unwrap()
            .replace("\"acme\"", "\"acne\""),
    )
    .unwrap();
    assert_eq!(code(&check(&forged, &[])), exit::AUDIT_TAMPERED);
    assert_eq!(
        code(&check(acme, &["--pubkey", &"cd".repeat(32)])),
        exit::AUDIT_TAMPERED
    );
    // Every step is in the audit log.
    let log = ok(tv_at(&v, None, &["audit", "show"]));
    for op in [
        "client-set",
        "client-hold",
        "client-release",
        "client-shred",
    ] {
        assert!(log.contains(op), "{op} not in the log");
    }
}

#[test]
fn shred_on_a_live_mount_writes_its_certificate() {
    let Some(mut v) = TestVault::new("shred_on_a_live_mount_writes_its_certificate") else {
        return;
    };
    ok(tv_at(
        &v,
        None,
        &["client", "add", "acme", "--path", "/clients/acme"],
    ));
    v.mount();
    std::fs::write(v.p("clients/acme/brief.txt"), b"x").unwrap();
    // A hold set while mounted reaches the daemon: its shred is refused.
    ok(tv_at(
        &v,
        None,
        &["client", "hold", "acme", "--reason", "subpoena"],
    ));
    let o = tv_at(&v, None, &["client", "shred", "acme", "--yes"]);
    assert_eq!(code(&o), exit::USAGE, "{}", text(&o));
    assert!(text(&o).contains("subpoena"), "{}", text(&o));
    ok(tv_at(
        &v,
        None,
        &["client", "release", "acme", "--reason", "withdrawn"],
    ));
    // Metadata changes go through the daemon, which records them in the log it holds.
    ok(tv_at(
        &v,
        None,
        &["client", "set", "acme", "--ref", "M-2026-099"],
    ));
    let info: serde_json::Value =
        serde_json::from_str(&ok(tv_at(&v, None, &["client", "info", "acme", "--json"]))).unwrap();
    assert_eq!(info["meta"]["reference"], "M-2026-099");
    // (The daemon writes its records out every half second.)
    common::wait_until(
        || {
            let log = ok(tv_at(&v, None, &["audit", "show"]));
            [
                ("client-hold", "subpoena"),
                ("client-release", "withdrawn"),
                ("client-set", "M-2026-099"),
            ]
            .iter()
            .all(|(op, what)| log.lines().any(|l| l.contains(op) && l.contains(what)))
        },
        "hold, release and set in the live mount's audit log",
    );
    let cert = v.tmp.path().join("acme-cert.json");
    let said = ok(tv_at(
        &v,
        None,
        &[
            "client",
            "shred",
            "acme",
            "--yes",
            "--certificate",
            cert.to_str().unwrap(),
        ],
    ));
    assert!(said.contains("erasure certificate"), "{said}");
    let c: serde_json::Value = serde_json::from_slice(&std::fs::read(&cert).unwrap()).unwrap();
    let destroyed = c["certificate"]["destroyed"].to_string();
    assert!(
        destroyed.contains("memory of the mount daemon"),
        "{destroyed}"
    );
    assert!(c["certificate"]["remains"][0]
        .as_str()
        .unwrap()
        .contains("keeps its keys in its config"));
    // A certificate is never written over a file.
    ok(tv_at(
        &v,
        None,
        &["client", "add", "bluebird", "--path", "/clients/bluebird"],
    ));
    let o = tv_at(
        &v,
        None,
        &[
            "client",
            "shred",
            "bluebird",
            "--yes",
            "--certificate",
            cert.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), exit::USAGE, "{}", text(&o));
    assert!(
        v.p("clients/bluebird").exists(),
        "refused before anything was destroyed"
    );
}

#[test]
fn a_closed_matter_is_read_only_for_all_but_admins_live_and_at_the_next_mount() {
    let reason = common::fuse_missing()
        .or_else(|| (!common::is_root()).then(|| "needs root to create users".to_string()));
    if common::skip_unless(reason, "closed matter") {
        return;
    }
    for u in ["tutela_lalice", "tutela_ladmin"] {
        common::ensure_shell_user(u, &[]);
    }
    let mut v = TestVault::new_unmounted();
    ok(tv_at(
        &v,
        None,
        &["client", "add", "acme", "--path", "/clients/acme"],
    ));
    v.mount();
    for d in ["clients", "clients/acme"] {
        std::fs::set_permissions(v.p(d), std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
    }
    v.unmount();
    let pf = v.tmp.path().join("policy.toml");
    std::fs::write(
        &pf,
        "admins = [\"tutela_ladmin\"]\n[clients.acme]\npath = \"/clients/acme\"\nread = [\"tutela_lalice\"]\nwrite = [\"tutela_lalice\"]\n",
    )
    .unwrap();
    ok(tv_at(&v, None, &["policy", "set", pf.to_str().unwrap()]));
    v.mount_args(&["--allow-other"]);
    let f = v.p("clients/acme/brief.txt");
    let f = f.display();
    assert!(
        as_user("tutela_lalice", &format!("umask 0; echo draft > {f}"))
            .status
            .success()
    );
    // A file held open: the close waits for nobody and says so.
    let mut holder = Command::new("runuser")
        .args([
            "-u",
            "tutela_lalice",
            "--",
            "sh",
            "-c",
            &format!("exec 3>>{f}; sleep 30"),
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let o = tv_at(&v, None, &["client", "close", "acme"]);
    assert_eq!(code(&o), exit::BUSY, "{}", text(&o));
    assert!(text(&o).contains("1 open file"), "{}", text(&o));
    // ... and who holds it.
    assert!(
        text(&o).contains("held by tutela_lalice (pid "),
        "{}",
        text(&o)
    );
    // With --wait the close waits for her, saying who it waits for, and goes through once
    // the file is closed (runuser's child holds it: every process of alice's ends).
    let waiting = tutela()
        .args(["client", "close"])
        .arg(&v.vault)
        .args([
            "acme",
            "--reason",
            "matter concluded",
            "--wait",
            "30s",
            "--passfile",
        ])
        .arg(&v.passfile)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let _ = Command::new("pkill").args(["-u", "tutela_lalice"]).output();
    let _ = holder.kill();
    let _ = holder.wait();
    let o = waiting.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("waiting: client 'acme' has 1 open file (held by tutela_lalice"),
        "{}",
        text(&o)
    );
    // Closed: alice reads but cannot change anything; the admin can.
    let o = as_user("tutela_lalice", &format!("echo more >> {f}"));
    assert!(
        !o.status.success() && text(&o).contains("Permission denied"),
        "{}",
        text(&o)
    );
    let o = as_user("tutela_lalice", &format!("rm {f}"));
    assert!(!o.status.success(), "{}", text(&o));
    assert!(as_user("tutela_lalice", &format!("cat {f}"))
        .status
        .success());
    assert!(as_user("tutela_ladmin", &format!("echo note >> {f}"))
        .status
        .success());
    let log = ok(tv_at(&v, None, &["audit", "show", "--denied"]));
    assert!(log.contains("tutela_lalice"), "{log}");
    // Reopened with a reason: writable again.
    ok(tv_at(
        &v,
        None,
        &["client", "reopen", "acme", "--reason", "appeal filed"],
    ));
    assert!(as_user("tutela_lalice", &format!("echo appeal >> {f}"))
        .status
        .success());
    // Closed again, it stays read-only across a remount.
    ok(tv_at(&v, None, &["client", "close", "acme"]));
    v.unmount();
    v.mount_args(&["--allow-other"]);
    let o = as_user("tutela_lalice", &format!("echo late >> {f}"));
    assert!(!o.status.success(), "{}", text(&o));
    let log = ok(tv_at(&v, None, &["audit", "show"]));
    for op in ["client-close", "client-reopen"] {
        assert!(log.contains(op), "{op}: {log}");
    }
}

#[test]
fn import_takes_a_client_on_checks_every_file_and_resumes() {
    let Some(mut v) = TestVault::new("import_takes_a_client_on") else {
        return;
    };
    // A share to move in: folders, files, a link, and what cannot be carried.
    let src = v.tmp.path().join("share");
    std::fs::create_dir_all(src.join("letters/2026")).unwrap();
    std::fs::write(src.join("engagement.pdf"), common::pattern(300_000, 1)).unwrap();
    std::fs::write(src.join("letters/2026/reply.txt"), b"Dear Sir").unwrap();
    std::fs::write(src.join("letters/empty.txt"), b"").unwrap();
    std::fs::write(src.join("letters/two\nlines.txt"), b"odd name").unwrap();
    std::os::unix::fs::symlink("letters/2026/reply.txt", src.join("latest")).unwrap();
    // What must arrive (read before the FIFO exists: reading one would wait for a writer).
    let want = common::tree(&src);
    let _ = Command::new("mkfifo").arg(src.join("pipe")).output();
    let _sock = std::os::unix::net::UnixListener::bind(src.join("agent.sock")).unwrap();
    let manifest = v.tmp.path().join("acme.sha256");
    let o = tv_at(
        &v,
        None,
        &[
            "client",
            "import",
            "acme",
            src.to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
        ],
    );
    let said = ok(o);
    assert!(said.contains("4 files"), "{said}");
    assert!(
        said.contains("not carried: pipe") && said.contains("not carried: agent.sock"),
        "{said}"
    );
    assert!(said.contains("matches the source's SHA-256"), "{said}");
    // The vault holds exactly the tree (less what could not be carried), and the manifest
    // checks with sha256sum inside the mounted client folder.
    v.mount();
    assert_eq!(common::tree(&v.p("clients/acme")), want);
    let o = Command::new("sha256sum")
        .arg("-c")
        .arg(&manifest)
        .current_dir(v.p("clients/acme"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    // An interrupted import (a file missing): --resume copies only what is missing.
    std::fs::remove_file(v.p("clients/acme/letters/2026/reply.txt")).unwrap();
    let said = ok(tv_at(
        &v,
        None,
        &[
            "client",
            "import",
            "acme",
            src.to_str().unwrap(),
            "--resume",
            "--manifest",
            manifest.to_str().unwrap(),
            "--json",
        ],
    ));
    let j: serde_json::Value =
        serde_json::from_str(said.lines().find(|l| l.starts_with('{')).unwrap()).unwrap();
    assert_eq!(j["import"]["files"], 1, "{j}");
    assert_eq!(j["import"]["already"], 3, "{j}");
    assert_eq!(
        std::fs::read(v.p("clients/acme/letters/2026/reply.txt")).unwrap(),
        b"Dear Sir"
    );
    // On the live mount, a second client from the same share; bad input refused.
    ok(tv_at(
        &v,
        None,
        &[
            "client",
            "import",
            "bluebird",
            src.to_str().unwrap(),
            "--manifest",
            v.tmp.path().join("bb.sha256").to_str().unwrap(),
        ],
    ));
    assert_eq!(
        std::fs::read(v.p("clients/bluebird/letters/2026/reply.txt")).unwrap(),
        b"Dear Sir"
    );
    for bad in [
        &["client", "import", "acme", src.to_str().unwrap()][..],
        &["client", "import", "cobalt", "/no/such/dir"],
        &["client", "import", "cobalt", v.vault.to_str().unwrap()],
    ] {
        assert_eq!(code(&tv_at(&v, None, bad)), exit::USAGE, "{bad:?}");
    }
    let log = ok(tv_at(&v, None, &["audit", "show"]));
    assert!(log.contains("client-import"), "{log}");
    // The live import's own record, which the daemon writes for the command.
    common::wait_until(
        || {
            ok(tv_at(&v, None, &["audit", "show"]))
                .lines()
                .any(|l| l.contains("client-import") && l.contains("client 'bluebird'"))
        },
        "the live import's record",
    );
}

#[test]
fn a_source_that_changes_during_the_import_is_named() {
    let v = TestVault::new_unmounted();
    let src = v.tmp.path().join("share");
    std::fs::create_dir(&src).unwrap();
    let busy = src.join("ledger.db");
    std::fs::write(&busy, common::pattern(32 << 20, 7)).unwrap();
    // Someone still works in the share: the ledger grows while it is read.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (busy, stop) = (busy.clone(), stop.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&busy)
                .unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                f.write_all(b"new entry\n").unwrap();
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
    };
    let o = tv_at(
        &v,
        None,
        &[
            "client",
            "import",
            "acme",
            src.to_str().unwrap(),
            "--manifest",
            v.tmp.path().join("m").to_str().unwrap(),
        ],
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let said = ok(o);
    assert!(
        said.contains("changed while it was read") && said.contains("ledger.db"),
        "{said}"
    );
}

/// A shred interrupted after the key is destroyed and before its certificate is written (a
/// power cut, a killed terminal) does not lose the certificate: what it says was sealed into
/// the vault before the key went, and the next client command writes it, marked as late,
/// where the shred was told to; it verifies. Offline, then on a live mount.
#[test]
fn an_erasure_interrupted_before_its_certificate_still_gets_one() {
    let Some(mut v) =
        TestVault::new("an_erasure_interrupted_before_its_certificate_still_gets_one")
    else {
        return;
    };
    for (c, p) in [("acme", "/clients/acme"), ("bluebird", "/clients/bluebird")] {
        ok(tv_at(&v, None, &["client", "add", c, "--path", p]));
    }
    ok(tv_at(
        &v,
        None,
        &["client", "set", "acme", "--ref", "M-2026-014"],
    ));
    let crash = |v: &TestVault, name: &str, cert: &Path| {
        let o = tutela()
            .args(["client", "shred"])
            .arg(&v.vault)
            .args([name, "--yes", "--certificate"])
            .arg(cert)
            .arg("--passfile")
            .arg(&v.passfile)
            .env(tutela::faults::ENV, "shred-before-certificate:1")
            .output()
            .unwrap();
        assert!(!o.status.success(), "the crash point: {}", text(&o));
        assert!(!cert.exists(), "no certificate yet");
        assert!(
            v.vault.join("tutela.erasing").is_dir(),
            "the draft is there"
        );
    };
    let pubkey = ok(tv_at(&v, None, &["audit", "pubkey"]));
    let pubkey = pubkey.trim();
    let check = |cert: &Path, client: &str| {
        let c: serde_json::Value = serde_json::from_slice(&std::fs::read(cert).unwrap()).unwrap();
        let c = &c["certificate"];
        assert_eq!(c["client"], client);
        assert!(
            c["late"]
                .as_str()
                .unwrap()
                .contains("stopped before writing it"),
            "{c}"
        );
        assert!(c["started_ms"].as_u64().unwrap() <= c["erased_ms"].as_u64().unwrap());
        let o = tutela()
            .args(["client", "verify-certificate"])
            .arg(cert)
            .args(["--pubkey", pubkey])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
    };
    // Offline.
    let cert = v.tmp.path().join("acme-cert.json");
    crash(&v, "acme", &cert);
    let o = tv_at(&v, None, &["client", "list"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("written now"), "{}", text(&o));
    check(&cert, "acme");
    let c: serde_json::Value = serde_json::from_slice(&std::fs::read(&cert).unwrap()).unwrap();
    assert_eq!(c["certificate"]["reference"], "M-2026-014");
    assert!(
        !v.vault.join("tutela.erasing").exists(),
        "the draft is gone"
    );
    // Written once: the next command finds nothing to do.
    let o = tv_at(&v, None, &["client", "list"]);
    assert!(!text(&o).contains("written now"), "{}", text(&o));
    // On a live mount (the daemon erased; the command stopped before the certificate).
    v.mount();
    std::fs::write(v.p("clients/bluebird/a.txt"), b"x").unwrap();
    let cert = v.tmp.path().join("bluebird-cert.json");
    crash(&v, "bluebird", &cert);
    assert!(!v.p("clients/bluebird").exists());
    let o = tv_at(&v, None, &["client", "due"]);
    assert!(text(&o).contains("written now"), "{}", text(&o));
    check(&cert, "bluebird");
    let c: serde_json::Value = serde_json::from_slice(&std::fs::read(&cert).unwrap()).unwrap();
    assert!(c["certificate"]["destroyed"]
        .to_string()
        .contains("memory of the mount daemon"));
    v.unmount();
    let log = ok(tv_at(&v, None, &["audit", "show"]));
    for want in ["client-shred", "started", "erasure-certificate"] {
        assert!(log.contains(want), "{want}: {log}");
    }
    // A new master key would leave a draft unreadable: rekey --all writes it first.
    ok(tv_at(&v, None, &["client", "add", "cobalt"]));
    let cert = v.tmp.path().join("cobalt-cert.json");
    crash(&v, "cobalt", &cert);
    let o = tv_at(&v, None, &["rekey", "--all", "--yes"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("written now"), "{}", text(&o));
    let c: serde_json::Value = serde_json::from_slice(&std::fs::read(&cert).unwrap()).unwrap();
    assert_eq!(c["certificate"]["client"], "cobalt");
    assert!(!v.vault.join("tutela.erasing").exists());
}

/// An expire stopped between one client's erasure and its certificate resumes: the next run
/// writes that certificate first, then shreds what is still due, and every certificate
/// verifies.
#[test]
fn an_interrupted_expire_resumes_with_every_certificate() {
    let Some(mut v) = vault_with_clients() else {
        return;
    };
    if common::skip_unless(common::fuse_missing(), "interrupted expire") {
        return;
    }
    for c in ["acme", "bluebird"] {
        ok(tv_at(
            &v,
            None,
            &["client", "set", c, "--retain", "2020-01-01"],
        ));
    }
    let certs = v.tmp.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let (vault, passfile) = (v.vault.clone(), v.passfile.clone());
    let expire = |crash: bool| {
        let mut c = tutela();
        c.args(["client", "expire"])
            .arg(&vault)
            .args(["--yes", "--certificates"])
            .arg(&certs)
            .arg("--passfile")
            .arg(&passfile);
        if crash {
            c.env(tutela::faults::ENV, "expire-before-certificate:1");
        }
        c.output().unwrap()
    };
    let o = expire(true);
    assert!(!o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read_dir(&certs).unwrap().count(), 0);
    // Resumed on the live mount: the late certificate first, then the daemon shreds the rest.
    v.mount();
    let o = expire(false);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("written now"), "{}", text(&o));
    let mut names: Vec<String> = std::fs::read_dir(&certs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].starts_with("acme-erased-") && names[1].starts_with("bluebird-erased-"));
    for n in &names {
        let o = tutela()
            .args(["client", "verify-certificate"])
            .arg(certs.join(n))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
    }
    let c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(certs.join(&names[1])).unwrap()).unwrap();
    assert!(c["certificate"]["destroyed"]
        .to_string()
        .contains("memory of the mount daemon"));
    assert!(c["certificate"].get("late").is_none(), "{c}");
    let o = ok(tv_at(&v, None, &["client", "list"]));
    assert!(
        o.contains("cobalt") && !o.contains("acme") && !o.contains("bluebird"),
        "{o}"
    );
    assert!(!v.p("clients/bluebird").exists());
    v.unmount();
}

/// Someone with the backing directory plants a file, or a link to another directory, where
/// erasure drafts go: the shred is refused before anything is erased (exit 25), and nothing
/// is written through the link.
#[test]
fn a_planted_draft_directory_refuses_the_shred_before_the_erasure() {
    let v = TestVault::new_unmounted();
    ok(tv_at(&v, None, &["client", "add", "acme"]));
    let drafts = v.vault.join("tutela.erasing");
    let elsewhere = v.tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    for plant in ["file", "link"] {
        if plant == "file" {
            std::fs::write(&drafts, b"planted").unwrap();
        } else {
            std::os::unix::fs::symlink(&elsewhere, &drafts).unwrap();
        }
        let o = tv_at(&v, None, &["client", "shred", "acme", "--yes"]);
        assert_eq!(code(&o), exit::UNSAFE_FILE, "{plant}: {}", text(&o));
        assert!(text(&o).contains("Nothing was erased"), "{}", text(&o));
        assert!(ok(tv_at(&v, None, &["client", "list"])).contains("acme"));
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
        std::fs::remove_file(&drafts).unwrap();
    }
    ok(tv_at(&v, None, &["client", "shred", "acme", "--yes"]));
}
