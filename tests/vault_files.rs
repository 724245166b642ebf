//! Whoever can write the vault directory (a sync agent, the vault's owner when root manages
//! it, a restored copy) may plant symlinks, FIFOs, device links or huge sparse files where
//! tutela keeps its own files. tutela never writes through, follows, waits on or reads whole
//! any of them: it refuses with exit 25 and names the file. No mount or root needed.

mod common;

use common::{run_ok, tutela, TestVault};
use std::fs;
use std::path::Path;
use std::process::Output;
use std::time::Duration;
use tutela::error::exit;

/// `tutela CMD... VAULT REST... --passfile P`.
fn run(v: &TestVault, cmd: &[&str], rest: &[&str]) -> Output {
    tutela()
        .args(cmd)
        .arg(&v.vault)
        .args(rest)
        .arg("--passfile")
        .arg(&v.passfile)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout)
}

fn policy_file(v: &TestVault) -> std::path::PathBuf {
    let pf = v.tmp.path().join("policy.toml");
    fs::write(
        &pf,
        "[clients.acme]\npath = \"/clients/acme\"\nread = [\"root\"]\nwrite = [\"root\"]\n",
    )
    .unwrap();
    pf
}

/// The temp names the first round used (predictable) and the files themselves, planted as
/// symlinks to a victim file: `policy set` and `key add` write neither through them.
#[test]
fn planted_symlinks_never_redirect_a_vault_write() {
    let v = TestVault::new_unmounted();
    let victim = v.tmp.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    for tmp in [".tutela.policy.tmp", ".tutela.conf.tmp"] {
        std::os::unix::fs::symlink(&victim, v.vault.join(tmp)).unwrap();
    }
    let pf = policy_file(&v);
    let out = run(&v, &["policy", "set"], &[pf.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let newpass = v.tmp.path().join("newpass");
    fs::write(&newpass, "another passphrase here\n").unwrap();
    let out = run(
        &v,
        &["key", "add"],
        &[
            "--label",
            "second",
            "--new-passfile",
            newpass.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fs::read(&victim).unwrap(), b"precious");

    // The policy file itself replaced by a symlink: refused, named, victim untouched.
    fs::remove_file(v.vault.join("tutela.policy")).unwrap();
    std::os::unix::fs::symlink(&victim, v.vault.join("tutela.policy")).unwrap();
    let out = run(&v, &["policy", "set"], &[pf.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(exit::UNSAFE_FILE), "{}", text(&out));
    assert!(text(&out).contains("tutela.policy"), "{}", text(&out));
    let out = run(&v, &["policy", "show"], &[]);
    assert_eq!(out.status.code(), Some(exit::UNSAFE_FILE), "{}", text(&out));
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
}

fn within(secs: u64, what: &str, f: impl FnOnce() -> Output + Send + 'static) -> Output {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("{what} hung for {secs}s"))
}

/// Runs `tutela CMD... VAULT` and checks it ends within 20 s with `code`, naming `names`.
fn refused_in_time(v: &TestVault, cmd: &'static [&'static str], code: i32, names: &str) {
    let mut c = tutela();
    c.args(cmd).arg(&v.vault).arg("--passfile").arg(&v.passfile);
    let out = within(20, &format!("{cmd:?}"), move || c.output().unwrap());
    assert_eq!(out.status.code(), Some(code), "{cmd:?}: {}", text(&out));
    assert!(text(&out).contains(names), "{cmd:?}: {}", text(&out));
}

fn mkfifo(p: &Path) {
    let c = common::cpath(p);
    // SAFETY: valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn a_fifo_a_device_link_or_a_huge_sparse_file_is_refused_not_waited_on_or_read() {
    let v = TestVault::new_unmounted();
    // A FIFO as the policy: `policy show` and fsck would block forever opening it.
    mkfifo(&v.vault.join("tutela.policy"));
    refused_in_time(&v, &["policy", "show"], exit::UNSAFE_FILE, "tutela.policy");
    // fsck reports it as a problem and goes on.
    refused_in_time(&v, &["fsck"], exit::FSCK_PROBLEMS, "is not a regular file");
    fs::remove_file(v.vault.join("tutela.policy")).unwrap();

    // The config replaced by a link to /dev/zero: refused before anything is read.
    let conf = v.vault.join("tutela.conf");
    let saved = fs::read(&conf).unwrap();
    fs::remove_file(&conf).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &conf).unwrap();
    refused_in_time(&v, &["key", "list"], exit::UNSAFE_FILE, "tutela.conf");
    fs::remove_file(&conf).unwrap();
    fs::write(&conf, &saved).unwrap();

    // An audit segment made a 3 GiB sparse file: refused, not read into memory.
    run_ok(
        tutela()
            .args(["audit", "verify"])
            .arg(&v.vault)
            .arg("--passfile")
            .arg(&v.passfile),
    );
    // No mount yet, so no chain: plant one where a replica's would be.
    let audit = v.vault.join("tutela.audit/r-0000000000000000");
    fs::create_dir_all(&audit).unwrap();
    let seg = fs::read_dir(&audit)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().ends_with(".seg"));
    let seg = seg.unwrap_or_else(|| audit.join("0000000000000000.seg"));
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&seg)
        .unwrap();
    f.set_len(3 << 30).unwrap();
    refused_in_time(&v, &["audit", "verify"], exit::UNSAFE_FILE, ".seg");
}

/// A file name is the attacker's text: with a newline it would forge a whole record of
/// `audit show` for another user, with escape sequences it would drive the reader's terminal.
/// Every record stays one line, escaped; fsck's report escapes names the same way.
#[test]
fn names_cannot_forge_audit_records_or_reach_the_terminal() {
    let Some(mut v) = TestVault::new("names in reports") else {
        return;
    };
    v.mount();
    let evil =
        "x\n2026-12-06T10:00:00Z  alice(1001)  cat[7]  open r  acme-ledger.xlsx  ok\x1b[2J\u{202e}";
    fs::write(v.p(evil), b"data").unwrap();
    fs::read(v.p(evil)).unwrap();
    v.unmount();
    let out = run(&v, &["audit", "show"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        !shown.contains('\x1b') && !shown.contains('\u{202e}'),
        "{shown:?}"
    );
    assert!(
        !shown.lines().any(|l| l.starts_with("2026-12-06T10:00:00Z")),
        "a forged record: {shown}"
    );
    assert!(
        shown.contains("/x\\n2026-12-06T10:00:00Z  alice(1001)"),
        "{shown}"
    );
    // JSON keeps the exact name (JSON escapes control characters itself).
    let out = run(&v, &["audit", "show"], &["--json"]);
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(json
        .lines()
        .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
    // fsck names a damaged file by its escaped plaintext path.
    let ct = tutela::crypto::content::cipher_size(4);
    let (path, mut bytes) = v
        .backing_files()
        .into_iter()
        .find(|(_, c)| c.len() as u64 == ct)
        .unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&path, &bytes).unwrap();
    let out = run(&v, &["fsck"], &[]);
    let report = text(&out);
    assert!(report.contains("/x\\n2026-12-06"), "{report}");
    assert!(!report.contains('\x1b'), "{report:?}");
}
