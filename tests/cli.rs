//! The command line: documented exit codes, one clear line for bad input, nothing changed on
//! disk by a failed command, background/foreground mounting, signals, busy unmounts.

mod common;

use common::{run_ok, tutela, TestVault};
use std::fs;
use std::path::Path;
use std::process::Command;
use tutela::error::exit;

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            let c = fs::read(&p).unwrap_or_default();
            out.push((p.display().to_string(), c));
        }
    }
    out.sort();
    out
}

struct Case {
    what: &'static str,
    args: Vec<String>,
    code: i32,
    says: &'static str,
}

#[test]
fn bad_input_gets_one_clear_line_and_its_exit_code_and_changes_nothing() {
    let v = TestVault::new_unmounted();
    let t = v.tmp.path();
    let s = |p: &Path| p.display().to_string();
    fs::write(t.join("wrongpass"), "not the passphrase\n").unwrap();
    fs::write(t.join("emptypass"), "").unwrap();
    fs::create_dir(t.join("notavault")).unwrap();
    fs::create_dir(t.join("nonempty")).unwrap();
    fs::write(t.join("nonempty/x"), "x").unwrap();
    fs::create_dir(t.join("damaged")).unwrap();
    let mut conf = fs::read(v.vault.join("tutela.conf")).unwrap();
    let n = conf.len();
    conf[n - 40] ^= 1;
    fs::write(t.join("damaged/tutela.conf"), &conf).unwrap();
    fs::create_dir(t.join("newer")).unwrap();
    let mut newer = fs::read(v.vault.join("tutela.conf")).unwrap();
    newer[8] = 9;
    fs::write(t.join("newer/tutela.conf"), &newer).unwrap();
    fs::create_dir(t.join("garbage")).unwrap();
    fs::write(t.join("garbage/tutela.conf"), b"hello").unwrap();
    let pf = s(&v.passfile);
    let vault = s(&v.vault);
    let mnt = s(&v.mnt);
    let cases = vec![
        Case {
            what: "wrong passphrase",
            args: vec![
                "mount".into(),
                vault.clone(),
                mnt.clone(),
                "--passfile".into(),
                s(&t.join("wrongpass")),
            ],
            code: exit::WRONG_PASSPHRASE,
            says: "wrong passphrase",
        },
        Case {
            what: "empty passfile",
            args: vec![
                "mount".into(),
                vault.clone(),
                mnt.clone(),
                "--passfile".into(),
                s(&t.join("emptypass")),
            ],
            code: exit::PASSPHRASE_INPUT,
            says: "empty",
        },
        Case {
            what: "missing passfile",
            args: vec![
                "mount".into(),
                vault.clone(),
                mnt.clone(),
                "--passfile".into(),
                s(&t.join("nope")),
            ],
            code: exit::PASSPHRASE_INPUT,
            says: "cannot read",
        },
        Case {
            what: "missing vault",
            args: vec![
                "mount".into(),
                s(&t.join("missing")),
                mnt.clone(),
                "--passfile".into(),
                pf.clone(),
            ],
            code: exit::NOT_A_VAULT,
            says: "not a tutela vault",
        },
        Case {
            what: "not a vault",
            args: vec![
                "mount".into(),
                s(&t.join("notavault")),
                mnt.clone(),
                "--passfile".into(),
                pf.clone(),
            ],
            code: exit::NOT_A_VAULT,
            says: "not a tutela vault",
        },
        Case {
            what: "damaged config",
            args: vec![
                "mount".into(),
                s(&t.join("damaged")),
                mnt.clone(),
                "--passfile".into(),
                pf.clone(),
            ],
            code: exit::CONFIG_CORRUPT,
            says: "damaged or was tampered",
        },
        Case {
            what: "garbage config",
            args: vec![
                "mount".into(),
                s(&t.join("garbage")),
                mnt.clone(),
                "--passfile".into(),
                pf.clone(),
            ],
            code: exit::CONFIG_CORRUPT,
            says: "damaged",
        },
        Case {
            what: "newer version",
            args: vec![
                "mount".into(),
                s(&t.join("newer")),
                mnt.clone(),
                "--passfile".into(),
                pf.clone(),
            ],
            code: exit::UNSUPPORTED_VERSION,
            says: "upgrade tutela",
        },
        Case {
            what: "missing mountpoint",
            args: vec![
                "mount".into(),
                vault.clone(),
                s(&t.join("nomnt")),
                "--passfile".into(),
                pf.clone(),
            ],
            code: exit::MOUNTPOINT,
            says: "does not exist",
        },
        Case {
            what: "non-empty mountpoint",
            args: vec![
                "mount".into(),
                vault.clone(),
                s(&t.join("nonempty")),
                "--passfile".into(),
                pf.clone(),
            ],
            code: exit::MOUNTPOINT,
            says: "not empty: use an empty directory",
        },
        Case {
            what: "init into non-empty dir",
            args: vec![
                "init".into(),
                s(&t.join("nonempty")),
                "--passfile".into(),
                pf.clone(),
            ],
            code: exit::VAULT_NOT_EMPTY,
            says: "not empty",
        },
        Case {
            what: "init over a vault",
            args: vec![
                "init".into(),
                vault.clone(),
                "--passfile".into(),
                pf.clone(),
            ],
            code: exit::VAULT_NOT_EMPTY,
            says: "not empty",
        },
        Case {
            what: "conflicting flags",
            args: vec![
                "mount".into(),
                vault.clone(),
                mnt.clone(),
                "--passfile".into(),
                pf.clone(),
                "--extpass".into(),
                "echo x".into(),
            ],
            code: exit::USAGE,
            says: "cannot be used with",
        },
        Case {
            what: "bad idle duration",
            args: vec![
                "mount".into(),
                vault.clone(),
                mnt.clone(),
                "--passfile".into(),
                pf.clone(),
                "--idle".into(),
                "soon".into(),
            ],
            code: exit::USAGE,
            says: "not a duration",
        },
        Case {
            what: "unmount of a plain dir",
            args: vec!["unmount".into(), s(&t.join("notavault"))],
            code: exit::NOT_MOUNTED,
            says: "not a mounted filesystem",
        },
        Case {
            what: "unmount of a missing path",
            args: vec!["unmount".into(), s(&t.join("missing"))],
            code: exit::NOT_MOUNTED,
            says: "not a mounted",
        },
        Case {
            what: "no terminal for the passphrase",
            args: vec!["mount".into(), vault.clone(), mnt.clone()],
            code: exit::PASSPHRASE_INPUT,
            says: "--passfile",
        },
        Case {
            what: "bad recovery key",
            args: vec![
                "mount".into(),
                vault.clone(),
                mnt.clone(),
                "--recovery-key".into(),
                s(&t.join("wrongpass")),
            ],
            code: exit::PASSPHRASE_INPUT,
            says: "recovery key",
        },
        Case {
            what: "a client named by dots alone",
            args: vec![
                "client".into(),
                "add".into(),
                vault.clone(),
                "..".into(),
                "--passfile".into(),
                pf.clone(),
            ],
            code: exit::USAGE,
            says: "not dots alone",
        },
    ];
    let mut cases = cases;
    // Every command that opens a vault, against every kind of bad vault or passphrase.
    let commands: &[&[&str]] = &[
        &["fsck"],
        &["passwd", "--new-passfile", "NEWPASS"],
        &["key", "list"],
        &["key", "add", "--label", "x", "--new-passfile", "NEWPASS"],
        &["key", "remove", "default"],
        &["client", "list"],
        &["client", "add", "acme", "--path", "/clients/acme"],
        &["client", "export", "acme", "--output", "OUT.tar"],
        &["client", "shred", "acme", "--yes"],
        &["rekey", "--all", "--yes"],
        &["policy", "show"],
        &["policy", "clear"],
        &["audit", "verify"],
        &["audit", "show"],
    ];
    let bad: &[(&'static str, String, String, i32, &'static str)] = &[
        (
            "missing vault",
            s(&t.join("missing")),
            pf.clone(),
            exit::NOT_A_VAULT,
            "not a tutela vault",
        ),
        (
            "not a vault",
            s(&t.join("notavault")),
            pf.clone(),
            exit::NOT_A_VAULT,
            "not a tutela vault",
        ),
        (
            "newer version",
            s(&t.join("newer")),
            pf.clone(),
            exit::UNSUPPORTED_VERSION,
            "upgrade",
        ),
        (
            "damaged config",
            s(&t.join("damaged")),
            pf.clone(),
            exit::CONFIG_CORRUPT,
            "damaged",
        ),
        (
            "wrong passphrase",
            vault.clone(),
            s(&t.join("wrongpass")),
            exit::WRONG_PASSPHRASE,
            "wrong passphrase",
        ),
        (
            "empty passfile",
            vault.clone(),
            s(&t.join("emptypass")),
            exit::PASSPHRASE_INPUT,
            "empty",
        ),
    ];
    for cmd in commands {
        for (what, target, passfile, code, says) in bad {
            // The subcommand words, then the vault, then the rest.
            let words = if matches!(cmd[0], "key" | "client" | "policy" | "audit") {
                2
            } else {
                1
            };
            let mut args: Vec<String> = cmd[..words].iter().map(|w| w.to_string()).collect();
            args.push(target.clone());
            for w in &cmd[words..] {
                args.push(match *w {
                    "NEWPASS" => pf.clone(),
                    "OUT.tar" => s(&t.join("out.tar")),
                    other => other.to_string(),
                });
            }
            args.extend(["--passfile".to_string(), passfile.clone()]);
            cases.push(Case {
                what: Box::leak(format!("{} with {what}", cmd.join(" ")).into_boxed_str()),
                args,
                code: *code,
                says,
            });
        }
    }
    for c in cases {
        let before_vault = snapshot(&v.vault);
        let before_tmp = snapshot(t);
        let out = tutela().args(&c.args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(c.code), "{}: stderr: {err}", c.what);
        assert!(
            err.contains(c.says),
            "{}: message {err:?} should say {:?}",
            c.what,
            c.says
        );
        assert!(!err.contains("panicked"), "{}: {err}", c.what);
        let lines = err
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.contains("warning"))
            .count();
        assert!(lines <= 3, "{}: one clear message, got {err}", c.what);
        assert_eq!(
            snapshot(&v.vault),
            before_vault,
            "{}: the vault changed",
            c.what
        );
        assert_eq!(snapshot(t), before_tmp, "{}: the work dir changed", c.what);
        assert!(
            !common::is_mountpoint(&v.mnt),
            "{}: something got mounted",
            c.what
        );
    }
}

#[test]
fn the_recovery_key_mounts_the_vault() {
    let Some(v) = TestVault::new("recovery key") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("v");
    let out = run_ok(
        tutela()
            .arg("init")
            .arg(&vault)
            .arg("--passfile")
            .arg(&v.passfile),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let key = text
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 80 && l.matches('-').count() == 8)
        .expect("recovery key printed");
    let kf = tmp.path().join("rk");
    fs::write(&kf, key).unwrap();
    fs::set_permissions(&kf, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mnt = tmp.path().join("m");
    fs::create_dir(&mnt).unwrap();
    run_ok(
        tutela()
            .arg("mount")
            .arg(&vault)
            .arg(&mnt)
            .arg("--recovery-key")
            .arg(&kf),
    );
    fs::write(mnt.join("f"), b"x").unwrap();
    run_ok(tutela().arg("unmount").arg(&mnt));
}

#[test]
fn sigterm_to_a_foreground_daemon_unmounts_cleanly_and_keeps_data() {
    let Some(v) = TestVault::new("sigterm") else {
        return;
    };
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let mut child = tutela()
            .arg("mount")
            .arg(&v.vault)
            .arg(&v.mnt)
            .arg("--passfile")
            .arg(&v.passfile)
            .arg("--foreground")
            .spawn()
            .unwrap();
        common::wait_until(|| common::is_mountpoint(&v.mnt), "foreground mount");
        fs::write(v.mnt.join(format!("written-before-{sig}")), b"kept").unwrap();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, sig) };
        let status = child.wait().unwrap();
        assert!(status.success(), "daemon exit after signal {sig}: {status}");
        assert!(!common::is_mountpoint(&v.mnt));
    }
    let mut v = v;
    v.mount();
    assert_eq!(
        fs::read(v.mnt.join(format!("written-before-{}", libc::SIGTERM))).unwrap(),
        b"kept"
    );
    assert_eq!(
        fs::read(v.mnt.join(format!("written-before-{}", libc::SIGINT))).unwrap(),
        b"kept"
    );
}

#[test]
fn read_only_mounts_refuse_writes() {
    let Some(mut v) = TestVault::new("read-only") else {
        return;
    };
    v.mount();
    fs::write(v.p("f"), b"x").unwrap();
    v.unmount();
    v.mount_args(&["--read-only"]);
    assert_eq!(fs::read(v.p("f")).unwrap(), b"x");
    assert_eq!(common::errno_of(fs::write(v.p("f"), b"y")), libc::EROFS);
    assert_eq!(common::errno_of(fs::write(v.p("g"), b"y")), libc::EROFS);
    assert_eq!(common::errno_of(fs::create_dir(v.p("d"))), libc::EROFS);
}

#[test]
fn mounting_twice_and_unmounting_busy_mounts_say_why() {
    let Some(mut v) = TestVault::new("busy") else {
        return;
    };
    v.mount();
    let out = tutela()
        .arg("mount")
        .arg(&v.vault)
        .arg(&v.mnt)
        .arg("--passfile")
        .arg(&v.passfile)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(exit::MOUNTPOINT));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already mounted"));
    // A process with its cwd inside keeps the mount busy.
    let mut holder = Command::new("sleep")
        .arg("30")
        .current_dir(&v.mnt)
        .spawn()
        .unwrap();
    let out = tutela().arg("unmount").arg(&v.mnt).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(exit::BUSY), "{err}");
    assert!(
        err.contains("sleep") && err.contains(&holder.id().to_string()),
        "names the holder: {err}"
    );
    assert!(common::is_mountpoint(&v.mnt));
    holder.kill().unwrap();
    holder.wait().unwrap();
    v.unmount();
}

#[test]
fn plain_fusermount_unmount_works_too() {
    let Some(mut v) = TestVault::new("fusermount") else {
        return;
    };
    v.mount();
    fs::write(v.p("f"), b"x").unwrap();
    let out = Command::new("fusermount3").arg("-u").arg(&v.mnt).output();
    match out {
        Ok(o) if o.status.success() => {}
        _ => {
            // fusermount3 can only unmount mounts listed in /etc/mtab for non-root; as root
            // a direct umount(8) is the equivalent.
            run_ok(Command::new("umount").arg(&v.mnt));
        }
    }
    common::wait_until(|| !common::is_mountpoint(&v.mnt), "unmount");
    v.mounted = false;
    v.mount();
    assert_eq!(fs::read(v.p("f")).unwrap(), b"x");
}

#[test]
fn idle_timeout_unmounts() {
    let Some(mut v) = TestVault::new("idle") else {
        return;
    };
    v.mount_args(&["--idle", "2s"]);
    fs::write(v.p("f"), b"x").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(3500));
    common::wait_until(|| !common::is_mountpoint(&v.mnt), "idle unmount");
    v.mounted = false;
}

#[test]
fn passfile_readable_by_others_gets_a_warning() {
    let Some(v) = TestVault::new("passfile perms") else {
        return;
    };
    let loose = v.tmp.path().join("loose");
    fs::write(&loose, format!("{}\n", common::PASS)).unwrap();
    fs::set_permissions(&loose, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out = tutela()
        .arg("mount")
        .arg(&v.vault)
        .arg(&v.mnt)
        .arg("--passfile")
        .arg(&loose)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("readable by other users"));
    run_ok(tutela().arg("unmount").arg(&v.mnt));
}

#[test]
fn status_completions_and_man_pages() {
    let Some(mut v) = TestVault::new("status") else {
        return;
    };
    v.mount_args(&["--read-only"]);
    let out = run_ok(tutela().args(["status", "--json"]));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let vault = fs::canonicalize(&v.vault).unwrap().display().to_string();
    let m = j["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["vault"] == vault.as_str())
        .expect("our mount is listed");
    assert_eq!(m["read_only"], true);
    assert!(m["pid"].as_u64().is_some(), "{m}");
    v.unmount();
    for shell in ["bash", "zsh", "fish"] {
        let out = run_ok(tutela().args(["completions", shell]));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("passfile"),
            "{shell}"
        );
    }
    let man = v.tmp.path().join("man");
    run_ok(tutela().arg("manpages").arg(&man));
    let page = fs::read_to_string(man.join("tutela-mount.1")).unwrap();
    assert!(
        page.contains("allow\\-other") || page.contains("allow-other"),
        "{page}"
    );
}

fn daemon_log(v: &TestVault) -> String {
    fs::read_to_string(&v.log).unwrap_or_default()
}

/// A shell holding the mount at the idle deadline used to leave the vault open for good (the
/// unmounter was spent on the first try, and SIGTERM then did nothing either). Now the idle
/// timer tries again until the mount is gone, and says who holds it.
#[test]
fn an_idle_mount_busy_at_its_deadline_is_locked_once_released() {
    let Some(mut v) = TestVault::new("idle busy") else {
        return;
    };
    v.mount_args(&["--idle", "2s"]);
    let mut holder = common::hold(&v.mnt);
    std::thread::sleep(std::time::Duration::from_millis(4500));
    assert!(common::is_mountpoint(&v.mnt), "busy: still mounted");
    let log = daemon_log(&v);
    assert!(
        log.contains("cannot unmount yet") && log.contains("sleep"),
        "{log}"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    common::wait_until(
        || !common::is_mountpoint(&v.mnt),
        "idle unmount after release",
    );
    v.mounted = false;
}

/// SIGTERM (systemd's stop, a shutdown) after the idle timer found the mount busy still
/// unmounts, as soon as nothing holds it.
#[test]
fn sigterm_after_a_failed_idle_unmount_still_unmounts() {
    let Some(mut v) = TestVault::new("sigterm after idle") else {
        return;
    };
    v.mount_args(&["--idle", "1h"]);
    let pid = common::status_of(&v.mnt)["pid"].as_u64().unwrap() as i32;
    let mut holder = common::hold(&v.mnt);
    // SAFETY: plain kill(2) of the test's own daemon.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(common::is_mountpoint(&v.mnt), "busy: still mounted");
    holder.kill().unwrap();
    holder.wait().unwrap();
    common::wait_until(
        || !common::is_mountpoint(&v.mnt),
        "unmount on SIGTERM after release",
    );
    v.mounted = false;

    // And after an idle try that failed.
    v.mount_args(&["--idle", "1s"]);
    let pid = common::status_of(&v.mnt)["pid"].as_u64().unwrap() as i32;
    let mut holder = common::hold(&v.mnt);
    common::wait_until(
        || daemon_log(&v).matches("cannot unmount yet").count() >= 2,
        "idle try",
    );
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    holder.kill().unwrap();
    holder.wait().unwrap();
    common::wait_until(|| !common::is_mountpoint(&v.mnt), "unmount on SIGTERM");
    v.mounted = false;
}

/// A second mount of a mounted vault (elsewhere) says where it is mounted and by which pid,
/// instead of "cannot open the audit log".
#[test]
fn mounting_a_mounted_vault_elsewhere_says_where_and_by_whom() {
    let Some(mut v) = TestVault::new("vault mounted twice") else {
        return;
    };
    v.mount();
    let pid = common::status_of(&v.mnt)["pid"].as_u64().unwrap();
    let other = v.tmp.path().join("other");
    fs::create_dir(&other).unwrap();
    let out = tutela()
        .arg("mount")
        .arg(&v.vault)
        .arg(&other)
        .arg("--passfile")
        .arg(&v.passfile)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(exit::BUSY), "{err}");
    assert!(
        err.contains("already mounted at")
            && err.contains(&v.mnt.display().to_string())
            && err.contains(&pid.to_string()),
        "{err}"
    );
    assert!(!common::is_mountpoint(&other));
}

/// Every duration flag takes the same forms.
#[test]
fn idle_takes_every_duration_form() {
    let Some(mut v) = TestVault::new("idle forms") else {
        return;
    };
    for (form, secs) in [("1h30m", 5400), ("15min", 900), ("2 days", 172_800)] {
        v.mount_args(&["--idle", form]);
        assert_eq!(common::status_of(&v.mnt)["idle_s"], secs, "{form}");
        v.unmount();
    }
}

/// Kernel mount flags are applied (noexec stops a script, the mount table shows it) or
/// refused by name (suid, dev, unknown ones); none is silently ignored.
#[test]
fn mount_flags_are_applied_or_refused_by_name() {
    let Some(mut v) = TestVault::new("mount flags") else {
        return;
    };
    let options = |v: &TestVault| common::mount_line(&v.mnt);
    v.mount_args(&["-o", "noexec,nosuid", "--option", "noatime"]);
    let line = options(&v);
    assert!(
        line.contains("noexec") && line.contains("noatime") && line.contains("nosuid"),
        "{line}"
    );
    let script = v.p("run.sh");
    fs::write(&script, "#!/bin/sh\necho ran\n").unwrap();
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let err = Command::new(&script).output().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EACCES), "noexec: {err}");
    v.unmount();
    v.mount();
    assert!(!options(&v).contains("noexec"));
    assert_eq!(run_ok(&mut Command::new(&script)).stdout, b"ran\n");
    if common::is_root() {
        // Root's direct mount carries the subtype like a user's (fusermount3) mount.
        assert!(options(&v).contains(" - fuse.tutela "), "{}", options(&v));
    }
    v.unmount();
    for (opt, says) in [
        ("suid", "'suid' is refused"),
        ("dev", "'dev' is refused"),
        ("lazytime", "not supported"),
        ("bogus", "unknown mount option 'bogus'"),
    ] {
        let out = tutela()
            .arg("mount")
            .arg(&v.vault)
            .arg(&v.mnt)
            .arg("--passfile")
            .arg(&v.passfile)
            .args(["-o", opt])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(exit::USAGE), "{opt}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{opt}: {out:?}"
        );
        assert!(!common::is_mountpoint(&v.mnt));
    }
}

/// A three-character passphrase was accepted silently. A weak one now gets a warning with
/// advice; `--strict` refuses it (exit 19) and nothing is created or changed.
#[test]
fn weak_passphrases_are_warned_about_and_refused_with_strict() {
    let t = tempfile::tempdir().unwrap();
    let weak = t.path().join("weak");
    fs::write(&weak, "abc\n").unwrap();
    let init = |dir: &str, extra: &[&str]| {
        tutela()
            .arg("init")
            .arg(t.path().join(dir))
            .arg("--passfile")
            .arg(&weak)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = init("warned", &[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("this passphrase is weak"));
    let out = init("refused", &["--strict"]);
    assert_eq!(out.status.code(), Some(exit::PASSPHRASE_INPUT), "{out:?}");
    assert!(!t.path().join("refused").exists(), "nothing created");

    let v = TestVault::new_unmounted();
    let before = fs::read(v.vault.join("tutela.conf")).unwrap();
    let out = tutela()
        .args(["key", "add"])
        .arg(&v.vault)
        .args(["--label", "weak", "--strict", "--new-passfile"])
        .arg(&weak)
        .arg("--passfile")
        .arg(&v.passfile)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(exit::PASSPHRASE_INPUT), "{out:?}");
    assert_eq!(fs::read(v.vault.join("tutela.conf")).unwrap(), before);
    // The tests' own passphrase is a strong one: no warning, even with --strict.
    let out = tutela()
        .arg("init")
        .arg(t.path().join("strong"))
        .arg("--passfile")
        .arg(&v.passfile)
        .arg("--strict")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("weak"));
}
