//! `tutela key add|list|remove`.

use crate::cli::KeyCmd;
use crate::common::*;
use tutela::error::{Error, Result};
use tutela::text::escape;

pub fn key(cmd: KeyCmd) -> Result<()> {
    match cmd {
        KeyCmd::Add {
            vault,
            label,
            pass,
            new_passfile,
            strict,
            client,
            tpm2,
            passphrase_and_tpm2,
            fido2,
            passphrase_and_fido2,
            pin,
            new_pin_file,
            pcrs,
        } => {
            let device = if tpm2 || passphrase_and_tpm2 {
                Some(Kind::Tpm2)
            } else if fido2 || passphrase_and_fido2 {
                Some(Kind::Fido2)
            } else {
                None
            };
            let pcr_mask = pcr_mask(&pcrs, device == Some(Kind::Tpm2))?;
            let mut v = unlock(&vault, &pass)?;
            if let Some(kind) = device {
                let two = passphrase_and_tpm2 || passphrase_and_fido2;
                return add_device(
                    &mut v,
                    &label,
                    kind,
                    two,
                    pin,
                    pcr_mask,
                    &pass,
                    new_passfile.as_deref(),
                    new_pin_file.as_deref(),
                    strict,
                );
            }
            // Checked before asking for the new passphrase.
            let top = client
                .as_deref()
                .map(|c| tutela::offline::clients::top_dir_id(&v, c))
                .transpose()?;
            let p = new_passphrase(new_passfile.as_deref(), strict)?;
            match (&client, top) {
                (Some(c), Some(top)) => {
                    v.add_client_slot(&label, &p, c, top)?;
                    offline_record(
                        &v,
                        "key-add",
                        Some(format!("key '{label}', client '{c}' only")),
                    );
                    println!(
                        "passphrase '{}' added: it opens client '{}' only",
                        escape(&label),
                        escape(c)
                    );
                }
                _ => {
                    v.add_slot(&label, &p)?;
                    offline_record(&v, "key-add", Some(format!("key '{label}'")));
                    println!(
                        "passphrase '{}' added ({} in all)",
                        escape(&label),
                        v.config.slots.len()
                    );
                }
            }
            Ok(())
        }
        KeyCmd::List { vault, pass, json } => {
            let v = unlock(&vault, &pass)?;
            let slots = v.all_slots();
            if json {
                // "keys" stays the list of labels it always was; "slots" says more.
                let labels: Vec<&str> = slots.iter().map(|s| s.label.as_str()).collect();
                println!("{}", serde_json::json!({ "keys": labels, "slots": slots }));
            } else {
                // Passphrases print as their label alone, client keys as before device slots
                // existed: what scripts reading this text already expect.
                for s in slots {
                    match (s.kind, &s.client) {
                        ("passphrase", _) => println!("{}", escape(&s.label)),
                        (_, Some(c)) => {
                            println!("{}  (client '{}' only)", escape(&s.label), escape(c))
                        }
                        _ => println!("{}  ({})", escape(&s.label), describe(&s)),
                    }
                }
            }
            Ok(())
        }
        KeyCmd::Remove { vault, label, pass } => {
            let mut v = unlock(&vault, &pass)?;
            v.remove_slot(&label)?;
            offline_record(&v, "key-remove", Some(format!("key '{label}'")));
            println!(
                "key '{}' removed (an old copy of the config still opens with it: see README)",
                escape(&label)
            );
            Ok(())
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tpm2,
    Fido2,
}

/// `--pcrs 0,7` as a bit mask; only for TPM slots.
fn pcr_mask(pcrs: &[u8], tpm: bool) -> Result<u32> {
    if pcrs.is_empty() {
        return Ok(0);
    }
    if !tpm {
        return Err(Error::Usage(
            "--pcrs binds a TPM slot: use it with --tpm2 or --passphrase-and-tpm2".into(),
        ));
    }
    let mut m = 0u32;
    for &p in pcrs {
        if p > 23 {
            return Err(Error::Usage(format!(
                "PCR {p} does not exist: a TPM 2.0 has PCRs 0 to 23"
            )));
        }
        m |= 1 << p;
    }
    Ok(m)
}

#[allow(clippy::too_many_arguments)]
fn add_device(
    v: &mut tutela::vault::Vault,
    label: &str,
    kind: Kind,
    two: bool,
    pin: bool,
    pcrs: u32,
    pass: &crate::cli::PassArgs,
    new_passfile: Option<&std::path::Path>,
    new_pin_file: Option<&std::path::Path>,
    strict: bool,
) -> Result<()> {
    use tutela::vault::device_slots::NewDevice;
    use tutela::vault::passphrase;
    let p = if two {
        Some(new_passphrase(new_passfile, strict)?)
    } else {
        None
    };
    let tpm_pin = if kind == Kind::Tpm2 && pin {
        let a = passphrase::pin(new_pin_file, "New TPM PIN: ")?;
        if new_pin_file.is_none() {
            let b = passphrase::pin(None, "Repeat TPM PIN: ")?;
            if a.as_bytes() != b.as_bytes() {
                return Err(Error::Passphrase(
                    "the PINs do not match; nothing was changed".into(),
                ));
            }
        }
        Some(a)
    } else {
        None
    };
    let new = match kind {
        Kind::Tpm2 => NewDevice::Tpm2 {
            pin: tpm_pin.as_ref().map(|p| p.as_bytes()),
            pcrs,
        },
        Kind::Fido2 => NewDevice::Fido2 { pin },
    };
    v.add_device_slot(label, new, p.as_ref(), &access(pass))?;
    let s = v
        .all_slots()
        .into_iter()
        .find(|s| s.label == label)
        .ok_or(Error::Invalid)?;
    offline_record(
        v,
        "key-add",
        Some(format!("key '{label}', {}", describe(&s))),
    );
    println!("key '{}' added: {}", escape(label), describe(&s));
    Ok(())
}

/// A slot in words: its kind, what opening it takes, and how many factors that is.
fn describe(s: &tutela::vault::client_slots::SlotInfo) -> String {
    let factors = |f: &[&str]| {
        let n = f
            .iter()
            .filter(|x| matches!(**x, "passphrase" | "tpm2" | "fido2"))
            .count()
            + usize::from(f.contains(&"tpm2-pin") || f.contains(&"fido2-pin"));
        let words: Vec<&str> = f
            .iter()
            .map(|x| match *x {
                "tpm2" => "this machine's TPM",
                "tpm2-pin" => "its PIN",
                "fido2" => "a FIDO2 security key",
                "fido2-pin" => "its PIN",
                other => other,
            })
            .collect();
        format!(
            "{}: {}",
            if n >= 2 { "two factors" } else { "one factor" },
            words.join(" + ")
        )
    };
    match (s.kind, &s.client) {
        (_, Some(c)) => format!("client '{}' only; {}", escape(c), factors(&s.factors)),
        ("unknown", _) => "a key slot of a later tutela: skipped, kept".into(),
        ("tpm2", _) if !s.pcrs.is_empty() => {
            let p: Vec<String> = s.pcrs.iter().map(u32::to_string).collect();
            format!("TPM 2.0, PCRs {}; {}", p.join(","), factors(&s.factors))
        }
        ("tpm2", _) => format!("TPM 2.0; {}", factors(&s.factors)),
        ("fido2", _) => format!("FIDO2; {}", factors(&s.factors)),
        _ => format!("passphrase; {}", factors(&s.factors)),
    }
}
