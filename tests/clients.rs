//! Client zones: `client add` makes a new or empty folder a zone with its own key, files in it
//! read back through the mount, moves across the zone boundary copy (EXDEV), and `client list`
//! reports sizes and file counts.

mod common;

use common::{run_ok, tutela, TestVault};
use std::fs;
use std::process::Command;
use tutela::error::exit;

fn client(v: &TestVault, args: &[&str]) -> std::process::Output {
    let mut c = tutela();
    c.arg("client")
        .arg(args[0])
        .arg(&v.vault)
        .args(&args[1..])
        .arg("--passfile")
        .arg(&v.passfile);
    c.output().unwrap()
}

#[test]
fn client_zones_hold_their_files_and_fence_moves() {
    let Some(mut v) = TestVault::new("client zones") else {
        return;
    };
    v.mount();
    fs::create_dir(v.p("shared")).unwrap();
    fs::write(v.p("shared/handbook.txt"), b"firm handbook").unwrap();
    // A client is added while mounted, through the daemon.
    let out = client(&v, &["add", "acme", "--path", "/clients/acme"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(v.p("clients/acme").is_dir());
    v.unmount();

    for (args, why) in [
        (
            vec!["add", "acme", "--path", "/clients/other"],
            "duplicate name",
        ),
        (
            vec!["add", "sub", "--path", "/clients/acme/sub"],
            "nested in a client",
        ),
        (vec!["add", "bad name", "--path", "/x"], "bad name"),
        (
            vec!["add", "rel", "--path", "relative/path"],
            "relative path",
        ),
    ] {
        let out = client(&v, &args);
        assert_eq!(
            out.status.code(),
            Some(exit::USAGE),
            "{why}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    v.mount();
    fs::write(
        v.p("clients/acme/engagement.txt"),
        b"Acme engagement letter",
    )
    .unwrap();
    fs::create_dir(v.p("clients/acme/2025")).unwrap();
    fs::write(
        v.p("clients/acme/2025/ledger.csv"),
        common::pattern(10_000, 1),
    )
    .unwrap();
    // A rename across the zone boundary is EXDEV, so mv copies (re-encrypting under the
    // other zone's key) and the file still reads.
    let f = common::cpath(&v.p("clients/acme/engagement.txt"));
    let t = common::cpath(&v.p("shared/engagement.txt"));
    // SAFETY: valid C strings.
    let rc = unsafe { libc::rename(f.as_ptr(), t.as_ptr()) };
    assert_eq!(rc, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EXDEV)
    );
    run_ok(
        Command::new("cp")
            .arg(v.p("clients/acme/engagement.txt"))
            .arg(v.p("shared/copy.txt")),
    );
    assert_eq!(
        fs::read(v.p("shared/copy.txt")).unwrap(),
        b"Acme engagement letter"
    );
    v.remount();
    assert_eq!(
        fs::read(v.p("clients/acme/engagement.txt")).unwrap(),
        b"Acme engagement letter"
    );
    assert_eq!(
        fs::read(v.p("clients/acme/2025/ledger.csv")).unwrap(),
        common::pattern(10_000, 1)
    );
    v.unmount();

    let out = client(&v, &["list"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "acme\t/clients/acme\t2 files\t10022 bytes\n"
    );
    let out = client(&v, &["list", "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["clients"][0]["files"], 2);
    // The client list is confidential: not in the backing dir in plaintext.
    v.assert_no_plaintext(&[b"acme", b"engagement"]);
    let out = run_ok(
        tutela()
            .args(["fsck"])
            .arg(&v.vault)
            .arg("--passfile")
            .arg(&v.passfile),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("clean"));
}

/// Every length-prefixed field at its limit works and one past it is refused with a clear
/// message, before anything is written: a 256-byte client name once made every later command
/// (the recovery key included) fail with "damaged config".
#[test]
fn names_and_labels_at_their_limit_work_and_one_past_is_refused() {
    let v = TestVault::new_unmounted();
    let at = "a".repeat(255);
    let past = "b".repeat(256);
    let out = client(&v, &["add", &past, "--path", "/clients/past"]);
    assert_eq!(out.status.code(), Some(exit::USAGE), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("at most 255 bytes"));
    let out = client(&v, &["add", &at, "--path", "/clients/at"]);
    assert!(out.status.success(), "{out:?}");
    let long_path = format!("/{}", "p/".repeat(2100));
    let out = client(&v, &["add", "deep", "--path", &long_path]);
    assert_eq!(out.status.code(), Some(exit::USAGE), "{out:?}");

    let key = |label: &str| {
        let np = v.tmp.path().join("np");
        fs::write(&np, "a second passphrase\n").unwrap();
        tutela()
            .args(["key", "add"])
            .arg(&v.vault)
            .args(["--label", label, "--new-passfile"])
            .arg(&np)
            .arg("--passfile")
            .arg(&v.passfile)
            .output()
            .unwrap()
    };
    assert_eq!(key(&"k".repeat(256)).status.code(), Some(exit::USAGE));
    assert_eq!(key("line\nbreak").status.code(), Some(exit::USAGE));
    assert_eq!(key("\x1b[2J").status.code(), Some(exit::USAGE));
    assert!(key(&"k".repeat(255)).status.success());

    // The vault still opens, lists and verifies.
    let out = client(&v, &["list"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&at));
    let out = run_ok(
        tutela()
            .args(["key", "list"])
            .arg(&v.vault)
            .arg("--passfile")
            .arg(&v.passfile),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&"k".repeat(255)));
}
