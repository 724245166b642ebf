//! `tutela passwd`.

use crate::cli::PassArgs;
use crate::common::*;
use std::path::Path;
use tutela::error::Result;
use tutela::vault::passphrase::{self};
use tutela::vault::{Unlock, Vault};

pub fn passwd(
    vault: &Path,
    pass: &PassArgs,
    recovery: Option<&Path>,
    label: Option<&str>,
    new_file: Option<&Path>,
    strict: bool,
) -> Result<()> {
    let how = match recovery {
        Some(f) => {
            Vault::read_config(vault)?;
            Unlock::RecoveryKey(passphrase::recovery_key(Some(f))?.to_string())
        }
        None => how(vault, pass)?,
    };
    // A two-factor slot that opened the vault is the one to change, as a passphrase slot is.
    let opened_by = match &how {
        Unlock::Key {
            slot: None, label, ..
        } => Some(label.clone()),
        _ => None,
    };
    let mut v = tutela::offline::open_vault(vault, &how, pass.keystore.as_deref())
        .inspect(show_sync_notes)?;
    drop(how);
    let device = label
        .map(str::to_string)
        .or(opened_by)
        .filter(|l| v.device_slot(l).is_some());
    if let Some(l) = device {
        let p = new_passphrase(new_file, strict)?;
        v.change_device_passphrase(&l, &access(pass), &mut CliAsk::new(pass), &p)?;
        offline_record(&v, "passwd", Some(format!("key '{l}'")));
        println!(
            "passphrase of key '{}' changed (its device part stays)",
            tutela::text::escape(&l)
        );
        return Ok(());
    }
    let p = new_passphrase(new_file, strict)?;
    let label = v.change_passphrase(label, &p)?;
    offline_record(&v, "passwd", Some(format!("key '{label}'")));
    println!("passphrase '{label}' changed");
    Ok(())
}
