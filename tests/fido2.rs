//! FIDO2 key slots, through the software token of the test hooks (`TUTELA_TEST_FIDO2`): no
//! software authenticator with hmac-secret runs here, so everything above the `Token` trait is
//! tested with one that keeps the same contract (README: the manual test with a real key).

mod common;

use common::swtpm::secret_file;
use common::*;
use std::path::Path;
use std::process::Output;
use tutela::error::exit;

/// `tutela ARGS VAULT EXTRA` with the software token in `token`.
fn tv(token: &Path, args: &[&str], vault: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    tutela()
        .args(args)
        .arg(vault)
        .args(extra)
        .env("TUTELA_TEST_FIDO2", token)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn token(dir: &Path, name: &str) -> std::path::PathBuf {
    let t = dir.join(name);
    std::fs::create_dir(&t).unwrap();
    t
}

#[test]
fn a_security_key_slot_enrolls_unlocks_and_fails_each_way_with_its_own_code() {
    let v = TestVault::new_unmounted();
    let key = token(v.tmp.path(), "yubikey");
    let lost = token(v.tmp.path(), "another-key");
    let pf = v.passfile.to_str().unwrap();
    let o = tv(
        &key,
        &["key", "add"],
        &v.vault,
        &["--passfile", pf, "--label", "yubi", "--fido2"],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = tv(
        &key,
        &["key", "add"],
        &v.vault,
        &["--passfile", pf, "--label", "spare", "--fido2"],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = tv(
        &key,
        &["key", "list"],
        &v.vault,
        &["--passfile", pf, "--json"],
        &[],
    );
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["slots"][1]["kind"], "fido2");
    assert_eq!(j["slots"][1]["factors"], serde_json::json!(["fido2"]));

    let open = |t: &Path, env: &[(&str, &str)]| {
        tv(t, &["key", "list"], &v.vault, &["--slot", "yubi"], env)
    };
    assert!(open(&key, &[]).status.success());
    // Another token (the slot's credential is not on it), no token, nobody touching it, the
    // token pulled out: each its own code, and none hangs.
    let o = open(&lost, &[]);
    assert_eq!(code(&o), exit::OTHER_DEVICE, "{}", text(&o));
    std::fs::write(key.join("absent"), b"").unwrap();
    assert_eq!(code(&open(&key, &[])), exit::DEVICE_MISSING);
    std::fs::remove_file(key.join("absent")).unwrap();
    std::fs::write(key.join("no-touch"), b"").unwrap();
    let t0 = std::time::Instant::now();
    let o = open(&key, &[("TUTELA_FIDO2_TIMEOUT", "1")]);
    assert_eq!(code(&o), exit::DEVICE_TIMEOUT, "{}", text(&o));
    assert!(t0.elapsed() < std::time::Duration::from_secs(20));
    std::fs::remove_file(key.join("no-touch")).unwrap();
    std::fs::write(key.join("removed"), b"").unwrap();
    assert_eq!(code(&open(&key, &[])), exit::DEVICE_TIMEOUT);
    std::fs::remove_file(key.join("removed")).unwrap();
    // A vault with only security-key slots tries them in order without being told which.
    let o = tv(
        &key,
        &["key", "remove"],
        &v.vault,
        &["--passfile", pf, "default"],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = tv(&key, &["key", "list"], &v.vault, &[], &[]);
    assert!(o.status.success(), "{}", text(&o));
    // A lost key is removed on its own; the other one still opens the vault.
    let o = tv(&key, &["key", "remove"], &v.vault, &["yubi"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let o = tv(&key, &["key", "list"], &v.vault, &["--slot", "spare"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("yubi"), "{}", text(&o));
}

#[test]
fn a_security_key_pin_is_counted_and_blocks() {
    let v = TestVault::new_unmounted();
    let key = token(v.tmp.path(), "key");
    std::fs::write(key.join("pin"), "123456").unwrap();
    let pf = v.passfile.to_str().unwrap();
    let right = [("TUTELA_TEST_FIDO2_PIN", "123456")];
    let wrong = [("TUTELA_TEST_FIDO2_PIN", "000000")];
    let o = tv(
        &key,
        &["key", "add"],
        &v.vault,
        &["--passfile", pf, "--label", "k", "--fido2", "--pin"],
        &right,
    );
    assert!(o.status.success(), "{}", text(&o));
    let open = |env: &[(&str, &str)]| tv(&key, &["key", "list"], &v.vault, &["--slot", "k"], env);
    assert!(open(&right).status.success());
    assert_eq!(code(&open(&wrong)), exit::WRONG_PIN);
    assert_eq!(code(&open(&wrong)), exit::WRONG_PIN);
    assert_eq!(code(&open(&wrong)), exit::WRONG_PIN);
    assert_eq!(code(&open(&right)), exit::DEVICE_LOCKOUT);
    // The passphrase still opens the vault.
    assert!(
        tv(&key, &["key", "list"], &v.vault, &["--passfile", pf], &[])
            .status
            .success()
    );
}

#[test]
fn passphrase_and_security_key_opens_a_real_mount_and_neither_alone_does() {
    let Some(mut v) = TestVault::new("passphrase_and_security_key_opens_a_real_mount") else {
        return;
    };
    let key = token(v.tmp.path(), "key");
    let lost = token(v.tmp.path(), "lost");
    let pf = v.passfile.to_str().unwrap().to_string();
    let lp = secret_file(v.tmp.path(), "laptop-pass", "laptop passphrase with a key");
    let o = tv(
        &key,
        &["key", "add"],
        &v.vault,
        &[
            "--passfile",
            &pf,
            "--label",
            "laptop",
            "--passphrase-and-fido2",
            "--new-passfile",
            lp.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("two factors"), "{}", text(&o));
    // The laptop's passphrase without its key, and the key without the passphrase: refused.
    let o = tv(
        &lost,
        &["key", "list"],
        &v.vault,
        &["--passfile", lp.to_str().unwrap()],
        &[],
    );
    assert_eq!(code(&o), exit::OTHER_DEVICE, "{}", text(&o));
    let o = tv(&key, &["key", "list"], &v.vault, &["--slot", "laptop"], &[]);
    assert_eq!(code(&o), exit::PASSPHRASE_INPUT, "{}", text(&o));
    // Both: a real mount.
    let o = tv(
        &key,
        &["mount"],
        &v.vault,
        &[
            v.mnt.to_str().unwrap(),
            "--passfile",
            lp.to_str().unwrap(),
            "--log-file",
            v.log.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    v.mounted = true;
    std::fs::write(v.p("brief.txt"), b"two factors").unwrap();
    v.unmount();
    v.mount();
    assert_eq!(std::fs::read(v.p("brief.txt")).unwrap(), b"two factors");
}

#[test]
fn without_a_security_key_the_real_driver_says_so() {
    // No software token: libfido2's own tools are asked, and find no key on this machine.
    if !need(
        "fido2-token",
        "without_a_security_key_the_real_driver_says_so",
    ) {
        return;
    }
    let v = TestVault::new_unmounted();
    let o = tutela()
        .args(["key", "add"])
        .arg(&v.vault)
        .args(["--label", "yk", "--fido2", "--passfile"])
        .arg(&v.passfile)
        .output()
        .unwrap();
    assert_eq!(code(&o), exit::DEVICE_MISSING, "{}", text(&o));
    let o = tutela()
        .args(["key", "add"])
        .arg(&v.vault)
        .args([
            "--label",
            "yk",
            "--fido2",
            "--fido2-device",
            "/dev/hidraw-none",
            "--passfile",
        ])
        .arg(&v.passfile)
        .output()
        .unwrap();
    assert_ne!(code(&o), 0, "{}", text(&o));
    assert!(!text(&o).contains("panicked"), "{}", text(&o));
}
