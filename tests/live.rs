//! Client work on a live, shared mount (issue: the office never goes offline): while another
//! user works through the mount, `client add` (new and existing folders), `rekey --client`,
//! `client export` and `client shred` run to completion through the daemon's control
//! channel; strangers and forged requests are refused; a daemon killed in the middle of a
//! rekey finishes it at the next mount. Needs root (users, /run/tutela) and FUSE.

mod common;

use common::{code, run_ok, text, tutela, TestVault};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use tutela::error::exit;

const ALICE: &str = "tutela_live_alice";

fn setup(test: &str) -> Option<TestVault> {
    let reason = common::fuse_missing()
        .or_else(|| (!common::is_root()).then(|| "needs root to create users".to_string()));
    if common::skip_unless(reason, test) {
        return None;
    }
    common::ensure_user(ALICE);
    let mut v = TestVault::new_unmounted();
    v.mount_args(&["--allow-other"]);
    Some(v)
}

fn cmd(v: &TestVault, args: &[&str]) -> Command {
    let mut c = tutela();
    c.arg(args[0]);
    let mut rest = args[1..].iter();
    if ["client", "audit", "policy"].contains(&args[0]) {
        c.arg(rest.next().unwrap());
    }
    c.arg(&v.vault)
        .args(rest)
        .arg("--passfile")
        .arg(&v.passfile);
    c
}

fn as_alice(script: &str) -> Output {
    Command::new("runuser")
        .args(["-u", ALICE, "--", "sh", "-c", script])
        .output()
        .unwrap()
}

/// Alice at work in the background: appends numbered lines to a log in the shared part,
/// rewrites a note in the client's folder, reads the client's big file, and writes to one
/// file of the client through a handle she keeps open the whole time. Every failure goes
/// to `errors`. Stops when `stop` exists; prints how many lines she wrote through the held
/// handle.
fn alice_works(m: &Path, stop: &Path, errors: &Path) -> Child {
    let m = m.display();
    let script = format!(
        "exec 3>>{m}/clients/acme/held || exit 9
         i=0
         while [ ! -e {stop} ]; do
           echo $i >> {m}/work/log || echo \"log $i\" >> {errors}
           echo note-$i > {m}/clients/acme/note || echo \"note $i\" >> {errors}
           cat {m}/clients/acme/note > /dev/null || echo \"read note $i\" >> {errors}
           cmp -s {m}/clients/acme/big {m}/work/big.orig || echo \"big $i\" >> {errors}
           echo held-$i >&3 || echo \"held $i\" >> {errors}
           i=$((i+1))
         done
         echo $i",
        stop = stop.display(),
        errors = errors.display()
    );
    Command::new("runuser")
        .args(["-u", ALICE, "--", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

fn audit(v: &TestVault) -> String {
    text(&run_ok(&mut cmd(v, &["audit", "show"])))
}

fn inos(dir: &Path) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().ino(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn client_work_runs_on_the_live_mount_while_another_user_works() {
    let Some(mut v) = setup("live client work") else {
        return;
    };
    let big = common::pattern(6 << 20, 7);
    // The shared part and an existing client folder, both alice's.
    fs::create_dir_all(v.p("work")).unwrap();
    fs::create_dir_all(v.p("clients/acme/letters")).unwrap();
    fs::write(v.p("work/big.orig"), &big).unwrap();
    fs::write(v.p("clients/acme/big"), &big).unwrap();
    fs::write(v.p("clients/acme/letters/a.txt"), b"Dear client").unwrap();
    fs::hard_link(
        v.p("clients/acme/letters/a.txt"),
        v.p("clients/acme/a-link.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink("letters/a.txt", v.p("clients/acme/shortcut")).unwrap();
    fs::write(v.p("clients/acme/held"), b"").unwrap();
    let status = Command::new("setfattr")
        .args(["-n", "user.matter", "-v", "2026-017"])
        .arg(v.p("clients/acme/letters/a.txt"))
        .status();
    let xattrs = status.is_ok_and(|s| s.success());
    run_ok(
        Command::new("chown")
            .arg("-R")
            .arg(ALICE)
            .arg(v.p("work"))
            .arg(v.p("clients")),
    );
    // Symlinks are rebuilt (their targets are sealed too); everything else keeps its inode.
    let keep = |d: &Path| -> Vec<(String, u64)> {
        inos(d)
            .into_iter()
            .filter(|(n, _)| n != "shortcut" && n != "note")
            .collect()
    };
    let before = keep(&v.p("clients/acme"));
    let stop = v.tmp.path().join("stop");
    let errors = v.tmp.path().join("errors");
    fs::write(&errors, b"").unwrap();
    fs::set_permissions(&errors, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let mut alice = alice_works(&v.mnt, &stop, &errors);
    std::thread::sleep(std::time::Duration::from_millis(300));

    // An existing folder with files becomes a client: its files move to the client's key
    // while alice reads and writes them.
    let o = run_ok(&mut cmd(
        &v,
        &["client", "add", "acme", "--path", "/clients/acme"],
    ));
    assert!(
        text(&o).contains("re-encrypted under its own key"),
        "{}",
        text(&o)
    );
    // A rotation of that client's key, a new client, an export: all live.
    let o = run_ok(&mut cmd(&v, &["rekey", "--client", "acme"]));
    assert!(text(&o).contains("rekeyed acme"), "{}", text(&o));
    run_ok(&mut cmd(
        &v,
        &["client", "add", "newco", "--path", "/clients/newco"],
    ));
    let out = v.tmp.path().join("acme.tar");
    let o = run_ok(&mut cmd(
        &v,
        &[
            "client",
            "export",
            "acme",
            "--output",
            out.to_str().unwrap(),
        ],
    ));
    assert!(text(&o).contains("exported client 'acme'"), "{}", text(&o));
    std::thread::sleep(std::time::Duration::from_millis(300));
    fs::write(&stop, b"").unwrap();
    let mut written = String::new();
    alice
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut written)
        .unwrap();
    assert!(alice.wait().unwrap().success());
    let written: usize = written.trim().parse().unwrap();
    assert!(written > 0);

    // Alice never saw an error, and everything she wrote is there.
    assert_eq!(fs::read_to_string(&errors).unwrap(), "", "alice saw errors");
    let log = fs::read_to_string(v.p("work/log")).unwrap();
    assert_eq!(log.lines().count(), written);
    let held = fs::read_to_string(v.p("clients/acme/held")).unwrap();
    let want: String = (0..written).map(|i| format!("held-{i}\n")).collect();
    assert_eq!(held, want, "writes through a handle held across the rekey");
    assert_eq!(fs::read(v.p("clients/acme/big")).unwrap(), big);
    assert_eq!(
        fs::read(v.p("clients/acme/shortcut")).unwrap(),
        b"Dear client"
    );
    // Inode numbers (hence hard links, open handles, git's index) survive.
    assert_eq!(keep(&v.p("clients/acme")), before);
    assert_eq!(
        fs::metadata(v.p("clients/acme/a-link.txt")).unwrap().ino(),
        fs::metadata(v.p("clients/acme/letters/a.txt"))
            .unwrap()
            .ino()
    );
    if xattrs {
        let o = Command::new("getfattr")
            .args(["--only-values", "-n", "user.matter"])
            .arg(v.p("clients/acme/letters/a.txt"))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout), "2026-017");
    }
    // The new client is there and takes files.
    fs::write(v.p("clients/newco/first"), b"x").unwrap();
    // The export is whole and its manifest checks.
    let x = v.tmp.path().join("x");
    fs::create_dir(&x).unwrap();
    run_ok(Command::new("tar").arg("xf").arg(&out).arg("-C").arg(&x));
    assert_eq!(fs::read(x.join("acme/big")).unwrap(), big);
    run_ok(
        Command::new("sha256sum")
            .args(["-c", "--quiet", "MANIFEST.sha256"])
            .current_dir(&x),
    );

    // Each step is in the audit log with who asked.
    let log = audit(&v);
    for op in ["client-add", "rekey", "client-export"] {
        assert!(
            log.lines()
                .any(|l| l.contains(op) && l.contains("root(0)") && l.ends_with("ok")),
            "{op} not audited: {log}"
        );
    }
    v.unmount();
    // Nothing of the old keys is left to find, and the vault checks clean.
    assert!(!v.vault.join("tutela.rekey").exists());
    run_ok(&mut cmd(&v, &["fsck"]));
    let o = run_ok(&mut cmd(&v, &["client", "list"]));
    assert!(text(&o).contains("acme\t/clients/acme\t"), "{}", text(&o));
}

#[test]
fn a_live_export_says_which_files_changed_while_it_read_them() {
    let Some(v) = setup("live export") else {
        return;
    };
    fs::create_dir_all(v.p("clients/busy")).unwrap();
    fs::write(v.p("clients/busy/steady"), b"unchanging").unwrap();
    fs::write(v.p("clients/busy/ledger"), common::pattern(1 << 20, 1)).unwrap();
    run_ok(&mut cmd(
        &v,
        &["client", "add", "busy", "--path", "/clients/busy"],
    ));
    // Someone rewrites the ledger without pause during the export.
    let stop = v.tmp.path().join("stop");
    let ledger = v.p("clients/busy/ledger");
    let stop2 = stop.clone();
    let writer = std::thread::spawn(move || {
        let mut n = 0u64;
        while !stop2.exists() {
            let mut f = fs::OpenOptions::new().write(true).open(&ledger).unwrap();
            f.write_all(&common::pattern(1 << 20, n)).unwrap();
            n += 1;
        }
    });
    let out = v.tmp.path().join("busy-export");
    let o = run_ok(&mut cmd(
        &v,
        &[
            "client",
            "export",
            "busy",
            "--output",
            out.to_str().unwrap(),
        ],
    ));
    fs::write(&stop, b"").unwrap();
    writer.join().unwrap();
    // Every exported file matches its checksum; a file that kept changing is named.
    run_ok(
        Command::new("sha256sum")
            .args(["-c", "--quiet", "MANIFEST.sha256"])
            .current_dir(&out),
    );
    assert_eq!(fs::read(out.join("busy/steady")).unwrap(), b"unchanging");
    let ledger = fs::read(out.join("busy/ledger")).unwrap();
    assert_eq!(ledger.len(), 1 << 20);
    if let Ok(changed) = fs::read_to_string(out.join("CHANGED.txt")) {
        assert!(changed.contains("busy/ledger"), "{changed}");
        assert!(text(&o).contains("CHANGED.txt"), "{}", text(&o));
    }
}

#[test]
fn a_live_shred_closes_open_files_and_leaves_nothing_cached() {
    let Some(mut v) = setup("live shred") else {
        return;
    };
    fs::create_dir_all(v.p("clients/gone")).unwrap();
    fs::write(v.p("clients/gone/secret"), b"the client's secret").unwrap();
    fs::write(v.p("office.txt"), b"stays").unwrap();
    run_ok(
        Command::new("chown")
            .arg("-R")
            .arg(ALICE)
            .arg(v.p("clients")),
    );
    run_ok(&mut cmd(
        &v,
        &["client", "add", "gone", "--path", "/clients/gone"],
    ));
    // Alice has the file open and has read it (its pages are in the kernel's cache); she
    // reads it again after the shred through the same handle.
    let go = v.tmp.path().join("go");
    let f = v.p("clients/gone/secret").display().to_string();
    let mut reader = Command::new("runuser")
        .args([
            "-u",
            ALICE,
            "--",
            "sh",
            "-c",
            &format!(
                "exec 3<{f}; cat <&3; while [ ! -e {go} ]; do sleep 0.05; done; \
                 cat /proc/self/fd/3 2>/dev/null; dd bs=64 count=1 <&3 2>/dev/null; \
                 head -c 5 {f} 2>&1; echo; echo end",
                go = go.display()
            ),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let o = run_ok(&mut cmd(&v, &["client", "shred", "gone", "--yes"]));
    assert!(
        text(&o).contains("1 open files were closed"),
        "{}",
        text(&o)
    );
    fs::write(&go, b"").unwrap();
    let mut out = String::new();
    reader
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    reader.wait().unwrap();
    assert_eq!(
        out.matches("the client's secret").count(),
        1,
        "read after the shred: {out}"
    );
    assert!(out.contains("No such file"), "{out}");
    assert!(!v.p("clients/gone").exists());
    assert_eq!(fs::read(v.p("office.txt")).unwrap(), b"stays");
    let log = audit(&v);
    assert!(
        log.contains("client-shred") && log.contains("started"),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("client-shred") && l.ends_with("ok")),
        "{log}"
    );
    // A new client may take the same folder.
    run_ok(&mut cmd(
        &v,
        &["client", "add", "gone2", "--path", "/clients/gone"],
    ));
    fs::write(v.p("clients/gone/new"), b"new").unwrap();
    v.unmount();
    assert!(!v.vault.join("tutela.shred").exists());
    v.assert_no_plaintext(&[b"the client's secret"]);
    run_ok(&mut cmd(&v, &["fsck"]));
}

/// The daemon's control socket (root's daemon: /run/tutela).
fn socket_of(v: &TestVault) -> PathBuf {
    let dir = PathBuf::from("/run/tutela");
    let id = {
        // The vault id: the config's bytes 16..32 (FORMAT.md).
        let c = fs::read(v.vault.join("tutela.conf")).unwrap();
        c[16..32]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    dir.join(format!("control-{id}.sock"))
}

#[test]
fn the_control_channel_refuses_strangers_forgeries_and_a_second_operation() {
    let Some(v) = setup("control channel") else {
        return;
    };
    let sock = socket_of(&v);
    assert!(sock.exists(), "no socket at {}", sock.display());
    let md = fs::metadata(&sock).unwrap();
    assert_eq!(md.mode() & 0o777, 0o600);
    // A request signed with another key is refused (exit code 26) and audited.
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let mut hello = String::new();
    std::io::BufReader::new(s.try_clone().unwrap()).read_line_compat(&mut hello);
    assert!(hello.contains("challenge"), "{hello}");
    writeln!(
        s,
        r#"{{"request":"{{\"op\":\"client-shred\",\"name\":\"x\"}}","mac":"{}"}}"#,
        "00".repeat(32)
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(
        answer.contains(&format!("\"code\":{}", exit::CONTROL_REFUSED)),
        "{answer}"
    );
    // A user who is neither root nor the daemon's: even where a careless chmod lets her
    // reach the socket, the daemon checks who she is.
    let dir = sock.parent().unwrap().to_path_buf();
    let dir_mode = fs::metadata(&dir).unwrap().mode() & 0o7777;
    let chmod = |p: &Path, m: u32| {
        fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(m)).unwrap()
    };
    chmod(&dir, 0o711);
    chmod(&sock, 0o666);
    let o = as_alice(&format!(
        "python3 -c 'import socket; s=socket.socket(socket.AF_UNIX); s.connect(\"{}\"); print(s.recv(4096).decode())'",
        sock.display()
    ));
    chmod(&sock, 0o600);
    chmod(&dir, dir_mode);
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("neither root nor"), "{said}{}", text(&o));
    assert!(!said.contains("challenge"), "{said}");
    common::wait_until(
        || {
            let log = audit(&v);
            log.lines()
                .any(|l| l.contains("control") && l.contains("neither root nor"))
        },
        "alice's refusal in the audit log",
    );
}

#[test]
fn one_operation_at_a_time_and_a_rekey_survives_its_daemon_dying() {
    let Some(mut v) = setup("live rekey crash") else {
        return;
    };
    fs::create_dir_all(v.p("clients/slow/sub")).unwrap();
    let mut want = Vec::new();
    for i in 0..12 {
        let rel = format!("clients/slow/{}f{i}", if i % 2 == 0 { "sub/" } else { "" });
        let data = common::pattern(50_000 + i * 1000, i as u64);
        fs::write(v.p(&rel), &data).unwrap();
        want.push((rel, data));
    }
    run_ok(&mut cmd(
        &v,
        &["client", "add", "slow", "--path", "/clients/slow"],
    ));
    v.unmount();
    v.mount_env(
        &["--allow-other"],
        &[("TUTELA_TEST_PAUSE_AT", "rekey-step:150")],
    );
    let rekey = cmd(&v, &["rekey", "--client", "slow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A second operation while the rekey runs: refused, naming what runs; nothing changes.
    // (Asked first with a request that changes nothing either way, until the rekey runs.)
    common::wait_until(
        || {
            let o = cmd(
                &v,
                &[
                    "client",
                    "export",
                    "nosuch",
                    "--output",
                    "/nonexistent/x.tar",
                ],
            )
            .output()
            .unwrap();
            code(&o) == exit::BUSY
        },
        "the rekey to be running",
    );
    let o = cmd(&v, &["client", "add", "other", "--path", "/clients/other"])
        .output()
        .unwrap();
    assert_eq!(code(&o), exit::BUSY, "{}", text(&o));
    assert!(text(&o).contains("busy with rekey slow"), "{}", text(&o));
    // Files read and write meanwhile.
    for (rel, data) in &want {
        assert_eq!(&fs::read(v.p(rel)).unwrap(), data, "{rel} during the rekey");
    }
    fs::write(v.p("clients/slow/during"), b"written during the rekey").unwrap();
    let o = rekey.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(!v.p("clients/other").exists());
    v.unmount();

    // The daemon dies in the middle of a rekey (after some files were converted in place):
    // the command says so; the next mount finishes the rekey while it serves.
    v.mount_env(
        &["--allow-other"],
        &[("TUTELA_TEST_CRASH_AT", "rekey-copied:3")],
    );
    let o = cmd(&v, &["rekey", "--client", "slow"]).output().unwrap();
    assert_ne!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("without an answer"), "{}", text(&o));
    let _ = Command::new("fusermount3").arg("-u").arg(&v.mnt).status();
    let _ = Command::new("umount").arg("-l").arg(&v.mnt).status();
    v.mounted = false;
    v.mount_env(&["--allow-other"], &[]);
    // The mount finishes it by itself; meanwhile a resume asked for is refused as busy,
    // and once it is done there is nothing left to resume.
    common::wait_until(
        || {
            let o = cmd(&v, &["rekey", "--resume"]).output().unwrap();
            match code(&o) {
                exit::BUSY => false,
                0 | exit::USAGE => true,
                _ => panic!("{}", text(&o)),
            }
        },
        "the interrupted rekey to finish at mount",
    );
    let log = audit(&v);
    assert!(
        log.lines()
            .any(|l| l.contains("rekey") && l.contains("rekeyed slow") && l.ends_with("ok")),
        "{log}"
    );
    for (rel, data) in &want {
        assert_eq!(&fs::read(v.p(rel)).unwrap(), data, "{rel} after the crash");
    }
    assert_eq!(
        fs::read(v.p("clients/slow/during")).unwrap(),
        b"written during the rekey"
    );
    fs::write(v.p("clients/slow/after"), b"the mount is writable").unwrap();
    v.unmount();
    assert!(!v.vault.join("tutela.rekey").exists());
    run_ok(&mut cmd(&v, &["fsck"]));
}

trait ReadLine {
    fn read_line_compat(&mut self, s: &mut String);
}

impl<R: Read> ReadLine for std::io::BufReader<R> {
    fn read_line_compat(&mut self, s: &mut String) {
        use std::io::BufRead;
        self.read_line(s).unwrap();
    }
}

#[test]
fn rekey_all_on_the_live_mount_replaces_the_master_key_while_it_serves() {
    let Some(mut v) = setup("live rekey --all") else {
        return;
    };
    fs::create_dir_all(v.p("clients/acme")).unwrap();
    fs::create_dir_all(v.p("office")).unwrap();
    let mut want = Vec::new();
    for i in 0..6u64 {
        for dir in ["clients/acme", "office"] {
            let rel = format!("{dir}/f{i}");
            let data = common::pattern(20_000 + i as usize * 777, i);
            fs::write(v.p(&rel), &data).unwrap();
            want.push((rel, data));
        }
    }
    run_ok(&mut cmd(
        &v,
        &["client", "add", "acme", "--path", "/clients/acme"],
    ));
    let policy = v.tmp.path().join("policy.toml");
    fs::write(
        &policy,
        "admins = [\"root\"]\ndefault = \"allow\"\n\n[clients.acme]\npath = \"/clients/acme\"\nread = [\"root\"]\nwrite = [\"root\"]\n",
    )
    .unwrap();
    run_ok(&mut cmd(&v, &["policy", "set", policy.to_str().unwrap()]));
    let bob = v.tmp.path().join("bob");
    fs::write(&bob, "bob's passphrase\n").unwrap();
    run_ok(
        tutela()
            .args(["key", "add"])
            .arg(&v.vault)
            .args(["--label", "bob", "--new-passfile"])
            .arg(&bob)
            .arg("--passfile")
            .arg(&v.passfile),
    );
    // Someone keeps working in the office folder meanwhile.
    let stop = v.tmp.path().join("stop");
    let (s2, office) = (stop.clone(), v.p("office/worklog"));
    let worker = std::thread::spawn(move || {
        let mut n = 0u64;
        while !s2.exists() {
            let mut f = fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&office)
                .unwrap();
            writeln!(f, "{n}").unwrap();
            n += 1;
        }
        n
    });
    let o = run_ok(&mut cmd(&v, &["rekey", "--all", "--yes"]));
    let said = text(&o);
    assert!(said.contains("new master key"), "{said}");
    assert!(
        said.contains("Keys removed") && said.contains("bob"),
        "{said}"
    );
    let rk = common::recovery_key_in(&said);
    fs::write(&stop, b"").unwrap();
    let n = worker.join().unwrap();
    let log = fs::read_to_string(v.p("office/worklog")).unwrap();
    assert_eq!(log.lines().count() as u64, n, "the worker's lines");
    for (rel, data) in &want {
        assert_eq!(&fs::read(v.p(rel)).unwrap(), data, "{rel}");
    }
    // The mount's control channel and audit log run on under the new keys.
    run_ok(&mut cmd(
        &v,
        &["client", "add", "after", "--path", "/clients/after"],
    ));
    fs::write(v.p("clients/after/x"), b"x").unwrap();
    v.unmount();
    // bob's passphrase wrapped the old key: gone. The new recovery key opens the vault.
    common::assert_passphrase_refused(&v, &bob);
    common::passwd_with_recovery_key(&v, &rk);
    let o = run_ok(&mut cmd(&v, &["audit", "verify"]));
    assert!(text(&o).contains("audit log ok"), "{}", text(&o));
    let log = audit(&v);
    assert!(
        log.lines()
            .any(|l| l.contains("rekey-all") && l.contains("root(0)")),
        "{log}"
    );
    assert!(
        log.contains("client-add"),
        "records after the rotation: {log}"
    );
    let o = run_ok(&mut cmd(&v, &["policy", "show"]));
    assert!(text(&o).contains("[clients.acme]"));
    assert!(!v.vault.join("tutela.rekey").exists());
    assert!(!v.vault.join("tutela.audit-next").exists());
    run_ok(&mut cmd(&v, &["fsck"]));
    v.mount();
    for (rel, data) in &want {
        assert_eq!(&fs::read(v.p(rel)).unwrap(), data, "{rel} after remount");
    }
    v.unmount();
}
