//! `tutela rekey`.

use crate::cli::PassArgs;
use crate::common::*;
use std::path::Path;
use tutela::error::Result;
use tutela::text::escape;
use tutela::vault::passphrase::{self, Source};
use tutela::vault::{Unlock, Vault};

pub fn rekey(
    vault: &Path,
    pass: &PassArgs,
    client: Option<&str>,
    all: bool,
    resume: bool,
    yes: bool,
) -> Result<()> {
    use tutela::offline::rekey::Scope;
    Vault::read_config(vault)?;
    // `--all` makes one new key slot, for the passphrase given here: it needs one. A client's
    // rekey opens the vault any way (a TPM slot, say).
    let (mut v, p2) = if all && client.is_none() {
        let src = Source {
            passfile: pass.passfile.clone(),
            extpass: pass.extpass.clone(),
        };
        let p = passphrase::existing(&src)?;
        let p2 = tutela::crypto::secret::Passphrase::new(p.as_bytes().to_vec());
        let v =
            tutela::offline::open_vault(vault, &Unlock::Passphrase(p), pass.keystore.as_deref())
                .inspect(show_sync_notes)?;
        (v, p2)
    } else {
        (
            unlock(vault, pass)?,
            tutela::crypto::secret::Passphrase::new(Vec::new()),
        )
    };
    if all && client.is_none() {
        // Certificate drafts are sealed under a key of the master key this replaces: an
        // erasure that lost its certificate gets it now, while the draft still opens.
        crate::lifecycle::settle_drafts(&v);
    }
    let label = v
        .unlocked_slot
        .and_then(|i| v.slot_labels().get(i).cloned())
        .unwrap_or_else(|| "default".into());
    // Device slots wrap the old master key: those a TPM opens with nobody there are wrapped
    // again under the new one, the rest are dropped (named below, with why).
    let (kept, dropped_devices) = if all && client.is_none() {
        v.device_slots_for_rekey(&access(pass))
    } else {
        (Vec::new(), Vec::new())
    };
    if all && client.is_none() && !yes {
        let others: Vec<String> = v
            .slot_labels()
            .into_iter()
            .filter(|l| *l != label)
            .map(|l| format!("'{}'", escape(&l)))
            .collect();
        let removed = if others.is_empty() {
            "No other passphrase exists.".to_string()
        } else {
            format!("The passphrases {} will be removed.", others.join(", "))
        };
        confirm(
            "rekey --all asks first (it removes every other passphrase and makes earlier audit \
             anchors stop matching): run it on a terminal, or add --yes; nothing was changed",
            &format!(
                "rekey --all gives {} a new master key and every client a new key. {removed} \
                 Audit anchors taken before now will no longer match, and a new recovery key is \
                 printed.",
                vault.display()
            ),
            "rekey",
        )?;
    }
    if let Some(d) = live_daemon(&v)? {
        let req = match (client, all) {
            (Some(c), _) => tutela::daemon::control::Request::Rekey {
                client: c.to_string(),
            },
            (None, true) => {
                // The new master key and its key slot (for this passphrase) are made here,
                // where the passphrase is; the daemon gets the key sealed under the current
                // control key, and does the rest while the mount serves.
                let control = v.control_key();
                let dropped: Vec<String> = v
                    .slot_labels()
                    .into_iter()
                    .filter(|l| *l != label)
                    .collect();
                let rk = v.rotate_master(&label, &p2)?;
                let rewrapped = v.rewrap_device_slots(&kept)?;
                let dropped: Vec<String> = dropped
                    .into_iter()
                    .filter(|l| !rewrapped.contains(l))
                    .collect();
                let req = tutela::daemon::control::Request::RekeyAll {
                    master: tutela::daemon::control::seal_master(&control, v.master())?,
                    slot: tutela::daemon::control::WireSlot::from_slot(&v.config.slots[0]),
                    devices: v
                        .config
                        .device_slots
                        .iter()
                        .map(tutela::daemon::control::device_slot_to_wire)
                        .collect::<Result<_>>()?,
                };
                remote_with(d, &control, &req, false)?;
                print_new_master(&rk, &dropped, &rewrapped, &dropped_devices);
                return Ok(());
            }
            _ => tutela::daemon::control::Request::RekeyResume,
        };
        return remote(d, &v, &req, false);
    }
    let scope = match (client, all, resume) {
        (Some(c), _, _) => Scope::Client(c),
        (None, true, _) => Scope::All {
            label: &label,
            pass: &p2,
            devices: &kept,
        },
        _ => Scope::Resume,
    };
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} re-encrypting: {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let res = tutela::offline::rekey::run(&mut v, scope, &mut |s| {
        bar.set_message(format!("{} entries, {} MiB", s.entries, s.bytes >> 20));
        bar.tick();
    });
    bar.finish_and_clear();
    let out = res?;
    let zones = if out.zones.is_empty() {
        "nothing".to_string()
    } else {
        out.zones.join(", ")
    };
    offline_record(
        &v,
        "rekey",
        Some(format!(
            "{}{}: {} entries, {} bytes re-encrypted; old keys destroyed",
            if all { "all keys, " } else { "" },
            zones,
            out.stats.entries,
            out.stats.bytes
        )),
    );
    if out.resumed {
        println!("finished the rekey that was interrupted earlier");
    }
    println!(
        "rekeyed {zones}: {} entries ({} bytes) re-encrypted; the old keys are destroyed",
        out.stats.entries, out.stats.bytes
    );
    if let Some(rk) = &out.recovery_key {
        print_new_master(
            rk,
            &out.dropped_slots,
            &out.rewrapped_slots,
            &dropped_devices,
        );
    } else if !out.dropped_slots.is_empty() {
        let labels: Vec<String> = out
            .dropped_slots
            .iter()
            .map(|l| tutela::text::escape(l).into_owned())
            .collect();
        println!(
            "removed the client keys that held the old key (they open nothing now): {}",
            labels.join(", ")
        );
    }
    Ok(())
}

/// What a user must know after a new master key: the new recovery key (shown once), the
/// passphrases that went, and that old audit anchors no longer match.
fn print_new_master(
    rk: &str,
    dropped_slots: &[String],
    rewrapped: &[String],
    dropped_devices: &[(String, String)],
) {
    println!();
    println!("New master key. The old recovery key and every old copy of the config no longer open current data.");
    let why = |l: &String| {
        dropped_devices
            .iter()
            .find(|(d, _)| d == l)
            .map(|(_, w)| format!(" ({w})"))
            .unwrap_or_default()
    };
    if !dropped_slots.is_empty() {
        let named: Vec<String> = dropped_slots
            .iter()
            .map(|l| format!("{}{}", escape(l), why(l)))
            .collect();
        println!(
            "Keys removed (they wrapped the old key; add them again with tutela key add): {}",
            named.join(", ")
        );
    }
    if !rewrapped.is_empty() {
        let named: Vec<String> = rewrapped.iter().map(|l| escape(l).into_owned()).collect();
        println!(
            "TPM keys enrolled again under the new key (they open the vault as before): {}",
            named.join(", ")
        );
    }
    println!();
    println!("New recovery key:");
    println!();
    println!("    {}", rk);
    println!();
    println!("Write it down and store it offline; it is shown only this once.");
    println!();
    // The log was re-sealed under the new master key: old anchors name old MACs.
    println!("The audit log was re-sealed under the new key and numbered afresh: audit anchors taken before now no longer match. Take a new one with tutela audit verify.");
}
