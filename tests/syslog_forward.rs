//! Audit records and head anchors leave the vault by themselves: a real rsyslogd (started by
//! the test with its own config and socket) receives every record as RFC 5424 with structured
//! data, and the anchors it wrote catch records cut off the log's end (`audit verify
//! --anchors-from`). A missing log socket never stops the mount.

mod common;

use common::{code, run_ok, text, tutela, TestVault};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use tutela::error::exit;

/// rsyslogd on a private socket, writing what it receives (RFC 5424 form) to a file.
struct Rsyslog {
    child: Child,
    sock: PathBuf,
    out: PathBuf,
}

impl Rsyslog {
    fn start(dir: &Path) -> Rsyslog {
        let sock = dir.join("log.sock");
        let out = dir.join("received.log");
        let conf = dir.join("rsyslog.conf");
        fs::write(
            &conf,
            format!(
                "global(workDirectory=\"{d}\")\n\
                 module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
                 input(type=\"imuxsock\" Socket=\"{s}\" UseSpecialParser=\"off\" ParseHostname=\"on\")\n\
                 *.* action(type=\"omfile\" file=\"{o}\" template=\"RSYSLOG_SyslogProtocol23Format\")\n",
                d = dir.display(),
                s = sock.display(),
                o = out.display()
            ),
        )
        .unwrap();
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslog.pid"))
            .spawn()
            .expect("start rsyslogd");
        common::wait_until(|| sock.exists(), "rsyslogd's socket");
        Rsyslog { child, sock, out }
    }

    /// What it wrote, once `want` is in it (rsyslog writes asynchronously).
    fn received(&self, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let t = fs::read_to_string(&self.out).unwrap_or_default();
            if t.contains(want) || Instant::now() > deadline {
                return t;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn verify(v: &TestVault, export: &Path) -> std::process::Output {
    tutela()
        .args(["audit", "verify"])
        .arg(&v.vault)
        .arg("--anchors-from")
        .arg(export)
        .arg("--passfile")
        .arg(&v.passfile)
        .output()
        .unwrap()
}

/// A test vault (not mounted) and an rsyslogd of its own, with its socket's path; None when
/// FUSE or rsyslogd is missing (reason printed).
fn with_rsyslog(test: &str) -> Option<(TestVault, Rsyslog, String)> {
    let v = TestVault::new(test)?;
    if !common::need("rsyslogd", test) {
        return None;
    }
    let logdir = v.tmp.path().join("rsyslog");
    fs::create_dir(&logdir).unwrap();
    let rs = Rsyslog::start(&logdir);
    let sock = rs.sock.to_str().unwrap().to_string();
    Some((v, rs, sock))
}

/// Cuts the newest records off the log's end: its last segment goes.
fn cut_newest_segment(v: &TestVault) {
    let chain = common::audit_chain_dir(&v.vault);
    let mut segs: Vec<PathBuf> = fs::read_dir(&chain)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    fs::remove_file(segs.last().unwrap()).unwrap();
}

#[test]
fn rsyslog_receives_every_record_and_the_anchors_catch_a_cut_log() {
    let Some((mut v, rs, sock)) = with_rsyslog("rsyslog_receives_every_record") else {
        return;
    };
    v.mount_env(
        &["--audit-syslog", "--anchor-every", "1s"],
        &[("TUTELA_SYSLOG_SOCKET", &sock)],
    );
    fs::write(v.p("Acme merger memo.txt"), b"confidential").unwrap();
    let _ = fs::read(v.p("Acme merger memo.txt")).unwrap();
    let _ = fs::remove_file(v.p("missing.txt"));
    std::thread::sleep(Duration::from_millis(1500));
    v.unmount();
    let got = rs.received("why=\"unmount\"");
    // Every record, as RFC 5424 with structured data; paths only as a keyed hash.
    for op in [
        "op=\"mount\"",
        "op=\"create\"",
        "op=\"open\"",
        "op=\"unmount\"",
    ] {
        assert!(
            got.lines()
                .any(|l| l.contains("[tutela@32473 ") && l.contains(op)),
            "{op} not received:\n{got}"
        );
    }
    assert!(
        got.lines()
            .any(|l| l.starts_with("<85>1 ") && l.contains(" tutela ")),
        "{got}"
    );
    assert!(got.contains("path_hash=\""), "{got}");
    assert!(
        !got.contains("merger"),
        "a plaintext name reached the system log:\n{got}"
    );
    assert!(got.contains("[tutela-anchor@32473 "), "{got}");
    assert!(got.contains("why=\"unmount\""), "{got}");

    // The anchors the system log kept all check out against the log.
    let o = verify(&v, &rs.out);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("of this vault found"), "{}", text(&o));

    // Someone cuts the newest records off the log's end (the last segment): what is left
    // still chains, but the anchors in the system log name records it no longer holds.
    let plain = tutela()
        .args(["audit", "verify"])
        .arg(&v.vault)
        .arg("--passfile")
        .arg(&v.passfile)
        .output()
        .unwrap();
    assert!(plain.status.success());
    cut_newest_segment(&v);
    let o = tutela()
        .args(["audit", "verify"])
        .arg(&v.vault)
        .arg("--passfile")
        .arg(&v.passfile)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "without anchors the cut is invisible: {}",
        text(&o)
    );
    let o = verify(&v, &rs.out);
    assert_eq!(code(&o), exit::AUDIT_TAMPERED, "{}", text(&o));
    assert!(text(&o).contains("cut off its end"), "{}", text(&o));
}

#[test]
fn paths_go_out_only_when_asked_and_a_missing_log_never_stops_the_mount() {
    let Some((mut v, rs, sock)) = with_rsyslog("paths_go_out_only_when_asked") else {
        return;
    };
    v.mount_env(
        &["--audit-syslog", "paths"],
        &[("TUTELA_SYSLOG_SOCKET", &sock)],
    );
    fs::write(v.p("ledger.txt"), b"x").unwrap();
    v.unmount();
    let got = rs.received("ledger.txt");
    assert!(got.contains("path=\"/ledger.txt\""), "{got}");

    // No system log at all: the mount serves as ever, and the audit log is complete.
    let nowhere = v.tmp.path().join("no-such-socket");
    v.mount_env(
        &["--audit-syslog", "--anchor-every", "1s"],
        &[("TUTELA_SYSLOG_SOCKET", nowhere.to_str().unwrap())],
    );
    for i in 0..200 {
        fs::write(v.p(&format!("f{i}.txt")), b"x").unwrap();
    }
    v.unmount();
    let o = run_ok(
        tutela()
            .args(["audit", "show"])
            .arg(&v.vault)
            .arg("--passfile")
            .arg(&v.passfile),
    );
    assert!(text(&o).contains("/f199.txt"));
    // Bad values are refused before anything is mounted.
    for bad in [
        &["--anchor-every", "0.1s"][..],
        &["--audit-syslog", "everything"],
    ] {
        let o = tutela()
            .arg("mount")
            .arg(&v.vault)
            .arg(&v.mnt)
            .arg("--passfile")
            .arg(&v.passfile)
            .args(bad)
            .output()
            .unwrap();
        assert_eq!(code(&o), exit::USAGE, "{bad:?}: {}", text(&o));
    }
}

#[test]
fn the_journal_receives_native_entries_named_tutela() {
    let Some(mut v) = TestVault::new("the_journal_receives_native_entries") else {
        return;
    };
    // journald's native socket, as the daemon finds it at /run/systemd/journal/socket.
    let sock = v.tmp.path().join("journal.sock");
    let journal = std::os::unix::net::UnixDatagram::bind(&sock).unwrap();
    journal
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    v.mount_env(
        &["--audit-syslog"],
        &[("TUTELA_JOURNAL_SOCKET", sock.to_str().unwrap())],
    );
    fs::write(v.p("Board minutes.txt"), b"x").unwrap();
    v.unmount();
    let mut entries = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = journal.recv(&mut buf) {
        let e = String::from_utf8_lossy(&buf[..n]).into_owned();
        let done = e.contains("TUTELA_ANCHOR=");
        entries.push(e);
        if done {
            break;
        }
    }
    let create = entries
        .iter()
        .find(|e| e.contains("TUTELA_OP=create\n"))
        .unwrap_or_else(|| panic!("no create entry: {entries:?}"));
    assert!(create.contains("SYSLOG_IDENTIFIER=tutela\n"), "{create}");
    assert!(create.contains("MESSAGE=[tutela@32473 "), "{create}");
    assert!(!entries.iter().any(|e| e.contains("Board")), "{entries:?}");
    // `journalctl -t tutela -o cat` prints the MESSAGE fields: the anchors are found there.
    let cat: String = entries
        .iter()
        .flat_map(|e| {
            e.lines()
                .filter_map(|l| l.strip_prefix("MESSAGE="))
                .map(|m| format!("{m}\n"))
        })
        .collect();
    let export = v.tmp.path().join("journal-export.txt");
    fs::write(&export, cat).unwrap();
    let o = verify(&v, &export);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains(": 1 of this vault found"), "{}", text(&o));
}

/// A client-scoped mount (a contractor's key: no audit key) forwards too: its records without
/// a path hash (it has no key for one) and with the path only when asked, and the anchors of
/// its sealed chain, which the vault's keys check.
#[test]
fn a_scoped_mount_forwards_its_records_and_anchors() {
    let Some((mut v, rs, sock)) = with_rsyslog("a_scoped_mount_forwards") else {
        return;
    };
    run_ok(
        tutela()
            .args(["client", "add"])
            .arg(&v.vault)
            .args(["acme", "--passfile"])
            .arg(&v.passfile),
    );
    v.mount_env(
        &["--client", "acme", "--audit-syslog", "--anchor-every", "1s"],
        &[("TUTELA_SYSLOG_SOCKET", &sock)],
    );
    fs::write(v.p("Acme merger memo.txt"), b"confidential").unwrap();
    v.unmount();
    let got = rs.received("why=\"unmount\"");
    assert!(got.contains("op=\"create\""), "{got}");
    assert!(got.contains("client 'acme' only"), "{got}");
    assert!(!got.contains("key ''"), "{got}");
    assert!(!got.contains("merger"), "a plaintext name went out: {got}");
    assert!(
        !got.contains("path_hash="),
        "a scoped mount has no key to hash with: {got}"
    );
    assert!(got.contains("why=\"unmount\""), "{got}");
    let o = verify(&v, &rs.out);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("of this vault found"), "{}", text(&o));
    // With paths asked for, the path goes out.
    v.mount_env(
        &["--client", "acme", "--audit-syslog", "paths"],
        &[("TUTELA_SYSLOG_SOCKET", &sock)],
    );
    fs::write(v.p("ledger.txt"), b"x").unwrap();
    v.unmount();
    let got = rs.received("ledger.txt");
    assert!(got.contains("path=\"/clients/acme/ledger.txt\""), "{got}");
}

/// Anchors kept in the system log from before a `rekey --all` (made under the key it
/// replaced) are set aside, not reported as tampering: the rotation's record names the heads
/// it superseded, and the re-sealed log must still reach them. Anchors from after it are
/// checked as ever and still catch a cut.
#[test]
fn anchors_from_before_a_rekey_all_are_set_aside_and_later_ones_still_catch_a_cut() {
    let Some((mut v, rs, sock)) = with_rsyslog("anchors_from_before_a_rekey_all") else {
        return;
    };
    let session = |v: &mut TestVault, name: &str| {
        v.mount_env(
            &["--audit-syslog", "--anchor-every", "1s"],
            &[("TUTELA_SYSLOG_SOCKET", &sock)],
        );
        fs::write(v.p(name), b"x").unwrap();
        v.unmount();
    };
    session(&mut v, "before.txt");
    let got = rs.received("why=\"unmount\"");
    assert!(got.contains("[tutela-anchor@32473 "), "{got}");
    let o = run_ok(
        tutela()
            .args(["rekey"])
            .arg(&v.vault)
            .args(["--all", "--yes", "--passfile"])
            .arg(&v.passfile),
    );
    let _ = o;
    let o = verify(&v, &rs.out);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("made before a rekey --all"),
        "{}",
        text(&o)
    );
    // After it: new anchors are checked, and catch records cut off the end.
    let before = fs::read_to_string(&rs.out)
        .unwrap()
        .matches("why=\"unmount\"")
        .count();
    session(&mut v, "after.txt");
    let deadline = Instant::now() + Duration::from_secs(20);
    while fs::read_to_string(&rs.out)
        .unwrap()
        .matches("why=\"unmount\"")
        .count()
        == before
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = verify(&v, &rs.out);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("reached unchanged"), "{}", text(&o));
    cut_newest_segment(&v);
    let o = verify(&v, &rs.out);
    assert_eq!(code(&o), exit::AUDIT_TAMPERED, "{}", text(&o));
}
