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
    let mut v = match recovery {
        Some(f) => {
            Vault::read_config(vault)?;
            let text = passphrase::recovery_key(Some(f))?;
            tutela::offline::open_vault(
                vault,
                &Unlock::RecoveryKey(text.to_string()),
                pass.keystore.as_deref(),
            )
            .inspect(show_sync_notes)?
        }
        None => unlock(vault, pass)?,
    };
    let p = new_passphrase(new_file, strict)?;
    let label = v.change_passphrase(label, &p)?;
    offline_record(&v, "passwd", Some(format!("key '{label}'")));
    println!("passphrase '{label}' changed");
    Ok(())
}
