//! TPM 2.0 key slots against a real (software) TPM: enrolment, unlocking with the TPM alone
//! (no prompt, no file), a PIN and the TPM's lockout, PCR binding, a slot from another
//! machine's TPM, a missing TPM, passphrase + TPM, removal, `rekey --all`, and a real mount
//! opened by the TPM slot alone.

mod common;

use common::swtpm::{secret_file, Swtpm};
use common::*;
use std::path::Path;
use std::process::Output;
use tutela::error::exit;

/// `tutela ARGS VAULT EXTRA` with the TPM's TCTI and no passphrase source unless given.
fn tv(tpm: &str, args: &[&str], vault: &Path, extra: &[&str]) -> Output {
    tutela()
        .args(args)
        .arg(vault)
        .arg("--tpm2-tcti")
        .arg(tpm)
        .args(extra)
        .output()
        .unwrap()
}

fn slots(tpm: &str, v: &TestVault) -> serde_json::Value {
    let o = tv(
        tpm,
        &["key", "list"],
        &v.vault,
        &["--json", "--passfile", v.passfile.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["slots"].clone()
}

fn add(tpm: &str, v: &TestVault, extra: &[&str]) -> Output {
    let mut args = vec!["--passfile", v.passfile.to_str().unwrap()];
    args.extend_from_slice(extra);
    tv(tpm, &["key", "add"], &v.vault, &args)
}

#[test]
fn tpm_slot_opens_the_vault_with_nobody_there_and_can_be_removed() {
    let Some(tpm) = Swtpm::start("tpm_slot_opens_the_vault_with_nobody_there") else {
        return;
    };
    let t = tpm.tcti();
    let v = TestVault::new_unmounted();
    let o = add(&t, &v, &["--label", "office-server", "--tpm2"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("one factor"), "{}", text(&o));
    let s = slots(&t, &v);
    let tpm_slot = s
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["label"] == "office-server")
        .unwrap()
        .clone();
    assert_eq!(tpm_slot["kind"], "tpm2");
    assert_eq!(tpm_slot["factors"], serde_json::json!(["tpm2"]));

    // No passphrase source, no terminal: the TPM slot is tried first and opens the vault.
    let o = tv(&t, &["key", "list"], &v.vault, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let o = tv(&t, &["key", "list"], &v.vault, &["--slot", "office-server"]);
    assert!(o.status.success(), "{}", text(&o));
    // The TPM is reached as tpm2-tools reach it: TPM2TOOLS_TCTI works too.
    let o = tutela()
        .args(["key", "list"])
        .arg(&v.vault)
        .env("TPM2TOOLS_TCTI", &t)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));

    // The passphrase may go: the TPM slot is a whole key; then the TPM slot cannot.
    let o = tv(&t, &["key", "remove"], &v.vault, &["default"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = tv(&t, &["key", "remove"], &v.vault, &["office-server"]);
    assert_eq!(code(&o), exit::USAGE, "{}", text(&o));
    // Back to a passphrase, then the TPM slot goes and names nothing any more.
    let o = tv(
        &t,
        &["key", "add"],
        &v.vault,
        &[
            "--label",
            "p2",
            "--new-passfile",
            v.passfile.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = tv(&t, &["key", "remove"], &v.vault, &["office-server"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = tv(&t, &["key", "list"], &v.vault, &["--slot", "office-server"]);
    assert_eq!(code(&o), exit::USAGE, "{}", text(&o));
    // Without it, and without a terminal, the vault asks for a passphrase it cannot get.
    let o = tv(&t, &["key", "list"], &v.vault, &[]);
    assert_eq!(code(&o), exit::PASSPHRASE_INPUT, "{}", text(&o));
}

#[test]
fn a_tpm_pin_is_checked_by_the_tpm_and_its_lockout_never_locks_the_vault() {
    let Some(tpm) = Swtpm::start("a_tpm_pin_is_checked_by_the_tpm") else {
        return;
    };
    let t = tpm.tcti();
    let v = TestVault::new_unmounted();
    let pin = secret_file(v.tmp.path(), "pin", "4711");
    let bad = secret_file(v.tmp.path(), "bad", "1234");
    let o = add(
        &t,
        &v,
        &[
            "--label",
            "srv",
            "--tpm2",
            "--pin",
            "--new-pin-file",
            pin.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        slots(&t, &v)[1]["factors"],
        serde_json::json!(["tpm2", "tpm2-pin"])
    );
    let open = |pin: &Path| {
        tv(
            &t,
            &["key", "list"],
            &v.vault,
            &["--slot", "srv", "--pin-file", pin.to_str().unwrap()],
        )
    };
    let o = open(&pin);
    assert!(o.status.success(), "{}", text(&o));
    // A PIN slot needs a person: without --slot it is not tried before the passphrase.
    let o = tv(
        &t,
        &["key", "list"],
        &v.vault,
        &["--pin-file", pin.to_str().unwrap()],
    );
    assert_eq!(code(&o), exit::PASSPHRASE_INPUT, "{}", text(&o));
    // Wrong PINs: each is refused as such, until the TPM locks out (swtpm: 3 tries).
    let mut codes = Vec::new();
    for _ in 0..5 {
        let o = open(&bad);
        codes.push(code(&o));
        if code(&o) == exit::DEVICE_LOCKOUT {
            assert!(text(&o).contains("lockout"), "{}", text(&o));
            break;
        }
        assert_eq!(code(&o), exit::WRONG_PIN, "{}", text(&o));
    }
    assert_eq!(codes.last(), Some(&exit::DEVICE_LOCKOUT), "{codes:?}");
    assert!(codes.len() >= 2, "{codes:?}");
    // In lockout even the right PIN is refused; the passphrase still opens the vault, and the
    // recovery key always does.
    assert_eq!(code(&open(&pin)), exit::DEVICE_LOCKOUT);
    let o = tv(
        &t,
        &["key", "list"],
        &v.vault,
        &["--passfile", v.passfile.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o));
    // The lockout cleared (as an admin would), the right PIN works again.
    tpm.tool(&["tpm2_dictionarylockout", "--clear-lockout"]);
    assert!(open(&pin).status.success());
}

#[test]
fn pcr_changes_another_machines_tpm_and_no_tpm_each_have_their_exit_code() {
    let Some(tpm) = Swtpm::start("pcr_changes_another_machines_tpm") else {
        return;
    };
    let Some(other) = Swtpm::start("pcr_changes_another_machines_tpm") else {
        return;
    };
    let t = tpm.tcti();
    let v = TestVault::new_unmounted();
    let o = add(&t, &v, &["--label", "srv", "--tpm2", "--pcrs", "7"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(slots(&t, &v)[1]["pcrs"], serde_json::json!([7]));
    assert!(text(&tv(
        &t,
        &["key", "list"],
        &v.vault,
        &["--passfile", v.passfile.to_str().unwrap()]
    ))
    .contains("PCRs 7"));
    let open = |tcti: &str| tv(tcti, &["key", "list"], &v.vault, &["--slot", "srv"]);
    assert!(open(&t).status.success());
    // The slot is useless on another machine (another TPM's seeds), or with no TPM at all.
    let o = open(&other.tcti());
    assert_eq!(code(&o), exit::OTHER_DEVICE, "{}", text(&o));
    let o = open("swtpm:host=127.0.0.1,port=1");
    assert_eq!(code(&o), exit::DEVICE_MISSING, "{}", text(&o));
    let o = open("device:/dev/tpmrm-none");
    assert_eq!(code(&o), exit::DEVICE_MISSING, "{}", text(&o));
    let o = open("no-such-tcti-kind:x");
    assert_ne!(code(&o), 0, "{}", text(&o));
    // A firmware update (PCR 7 extended): the slot stops, with its own code.
    tpm.tool(&[
        "tpm2_pcrextend",
        "7:sha256=0000000000000000000000000000000000000000000000000000000000000001",
    ]);
    let o = open(&t);
    assert_eq!(code(&o), exit::PCR_MISMATCH, "{}", text(&o));
    assert!(text(&o).contains("PCR"), "{}", text(&o));
    // Without --slot, the failing TPM slot is named and the passphrase opens the vault.
    let o = tv(
        &t,
        &["key", "list"],
        &v.vault,
        &["--passfile", v.passfile.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o));
    // Nobody there and only the stopped TPM slot to try: its reason is the exit code.
    let o = tv(&t, &["key", "list"], &v.vault, &[]);
    assert_eq!(code(&o), exit::PCR_MISMATCH, "{}", text(&o));
    // Bad --pcrs values are refused before anything is asked.
    for bad in [
        &["--tpm2", "--pcrs", "24"][..],
        &["--fido2", "--pcrs", "7"],
        &["--tpm2", "--pcrs", "x"],
    ] {
        let mut a = vec!["--label", "x"];
        a.extend_from_slice(bad);
        assert_eq!(code(&add(&t, &v, &a)), exit::USAGE);
    }
}

#[test]
fn passphrase_and_tpm_needs_both_and_passwd_changes_its_passphrase() {
    let Some(tpm) = Swtpm::start("passphrase_and_tpm_needs_both") else {
        return;
    };
    let t = tpm.tcti();
    let v = TestVault::new_unmounted();
    let p2 = secret_file(v.tmp.path(), "p2", "second factor passphrase orbit");
    let p3 = secret_file(v.tmp.path(), "p3", "third passphrase comes later");
    let o = add(
        &t,
        &v,
        &[
            "--label",
            "laptop",
            "--passphrase-and-tpm2",
            "--new-passfile",
            p2.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("two factors"), "{}", text(&o));
    let with = |tcti: &str, pf: &Path| {
        tv(
            tcti,
            &["key", "list"],
            &v.vault,
            &["--passfile", pf.to_str().unwrap()],
        )
    };
    assert!(with(&t, &p2).status.success());
    // The passphrase alone (no TPM here), or the TPM with another passphrase: refused.
    let o = with("swtpm:host=127.0.0.1,port=1", &p2);
    assert_eq!(code(&o), exit::DEVICE_MISSING, "{}", text(&o));
    let o = with(&t, &p3);
    assert_eq!(code(&o), exit::WRONG_PASSPHRASE, "{}", text(&o));
    // The TPM alone: it needs the passphrase, which nobody is there to give.
    let o = tv(&t, &["key", "list"], &v.vault, &["--slot", "laptop"]);
    assert_eq!(code(&o), exit::PASSPHRASE_INPUT, "{}", text(&o));
    // passwd changes the passphrase part; the TPM part stays.
    let o = tv(
        &t,
        &["passwd"],
        &v.vault,
        &[
            "--passfile",
            p2.to_str().unwrap(),
            "--new-passfile",
            p3.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("laptop"), "{}", text(&o));
    assert!(with(&t, &p3).status.success());
    assert_eq!(code(&with(&t, &p2)), exit::WRONG_PASSPHRASE);
    // The vault's own passphrase is untouched.
    assert!(with(&t, &v.passfile).status.success());
}

#[test]
fn rekey_all_enrolls_tpm_slots_again_and_names_the_ones_it_drops() {
    let Some(tpm) = Swtpm::start("rekey_all_enrolls_tpm_slots_again") else {
        return;
    };
    let t = tpm.tcti();
    let v = TestVault::new_unmounted();
    let pin = secret_file(v.tmp.path(), "pin", "4711");
    assert!(add(&t, &v, &["--label", "boot", "--tpm2"]).status.success());
    assert!(add(
        &t,
        &v,
        &[
            "--label",
            "pinned",
            "--tpm2",
            "--pin",
            "--new-pin-file",
            pin.to_str().unwrap()
        ]
    )
    .status
    .success());
    let o = tv(
        &t,
        &["rekey"],
        &v.vault,
        &["--all", "--yes", "--passfile", v.passfile.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o));
    let said = text(&o);
    assert!(
        said.contains("enrolled again") && said.contains("boot"),
        "{said}"
    );
    assert!(
        said.contains("Keys removed") && said.contains("pinned"),
        "{said}"
    );
    // The re-enrolled slot opens the new master key; the dropped one is gone.
    let o = tv(
        &t,
        &["key", "list"],
        &v.vault,
        &["--slot", "boot", "--json"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("pinned"), "{}", text(&o));
}

#[test]
fn the_shipped_unit_mounts_at_boot_with_the_tpm_slot_alone() {
    let Some(mut v) = TestVault::new("the_shipped_unit_mounts_at_boot_with_the_tpm_slot_alone")
    else {
        return;
    };
    let Some(tpm) = Swtpm::start("the_shipped_unit_mounts_at_boot_with_the_tpm_slot_alone") else {
        return;
    };
    let t = tpm.tcti();
    // As the unit's comment says to enroll it.
    let o = add(
        &t,
        &v,
        &["--label", "office-server", "--tpm2", "--pcrs", "7"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/systemd/tutela-clients-tpm.service"),
    )
    .unwrap();
    let local = |cmd: &str| {
        cmd.replace("/usr/local/bin/tutela", bin().to_str().unwrap())
            .replace("/srv/tutela/vault", v.vault.to_str().unwrap())
            .replace("/srv/clients", v.mnt.to_str().unwrap())
    };
    assert!(
        !unit.contains("LoadCredential"),
        "the TPM unit needs no credential"
    );
    // ExecStart as systemd runs it: no passphrase file, no terminal, the TPM where the
    // environment says (Environment=TPM2TOOLS_TCTI=... in a unit).
    let start = || {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(local(&unit_value(&unit, "ExecStart")))
            .env("TPM2TOOLS_TCTI", &t)
            .env("TUTELA_TEST_INSECURE_KDF", "1")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let o = start();
    assert!(o.status.success(), "{}", text(&o));
    assert!(is_mountpoint(&v.mnt));
    v.mounted = true;
    std::fs::write(v.p("memo.txt"), b"opened by the TPM").unwrap();
    run_ok(
        std::process::Command::new("sh")
            .arg("-c")
            .arg(local(&unit_value(&unit, "ExecStop"))),
    );
    wait_until(|| !is_mountpoint(&v.mnt), "ExecStop unmounts");
    v.mounted = false;
    // A firmware update changed PCR 7: the service fails with the code a boot script reads,
    // and mounts nothing.
    tpm.tool(&[
        "tpm2_pcrextend",
        "7:sha256=0000000000000000000000000000000000000000000000000000000000000002",
    ]);
    let o = start();
    assert_eq!(code(&o), exit::PCR_MISMATCH, "{}", text(&o));
    assert!(!is_mountpoint(&v.mnt));
    // A passphrase still mounts it.
    v.mount();
    assert_eq!(
        std::fs::read(v.p("memo.txt")).unwrap(),
        b"opened by the TPM"
    );
}

#[test]
fn rekey_all_on_a_live_mount_keeps_the_tpm_slot_and_a_client_rekey_opens_with_it() {
    let Some(mut v) = TestVault::new("rekey_all_on_a_live_mount_keeps_the_tpm_slot") else {
        return;
    };
    let Some(tpm) = Swtpm::start("rekey_all_on_a_live_mount_keeps_the_tpm_slot") else {
        return;
    };
    let t = tpm.tcti();
    assert!(add(&t, &v, &["--label", "boot", "--tpm2"]).status.success());
    v.mount();
    std::fs::write(v.p("memo.txt"), b"before the rekey").unwrap();
    // The command wraps the new master key in the TPM slot; the daemon installs it.
    let o = tv(
        &t,
        &["rekey"],
        &v.vault,
        &["--all", "--yes", "--passfile", v.passfile.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("enrolled again"), "{}", text(&o));
    v.unmount();
    let o = tutela()
        .arg("mount")
        .arg(&v.vault)
        .arg(&v.mnt)
        .args(["--slot", "boot", "--tpm2-tcti", &t, "--log-file"])
        .arg(&v.log)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    v.mounted = true;
    assert_eq!(std::fs::read(v.p("memo.txt")).unwrap(), b"before the rekey");
    // Commands that need the vault's keys open with the TPM slot too (no passphrase here).
    let o = tv(
        &t,
        &["client", "add"],
        &v.vault,
        &["acme", "--path", "/clients/acme", "--slot", "boot"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = tv(
        &t,
        &["rekey"],
        &v.vault,
        &["--client", "acme", "--slot", "boot"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = tv(&t, &["audit", "verify"], &v.vault, &["--slot", "boot"]);
    assert!(o.status.success(), "{}", text(&o));
}
