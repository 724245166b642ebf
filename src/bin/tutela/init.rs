//! `tutela init`: a new vault, and its recovery key shown once.

use crate::cli::PassArgs;
use crate::common::source;
use std::path::Path;
use tutela::error::Result;
use tutela::vault::{self, passphrase, Vault};

pub fn run(vault: &Path, pass: &PassArgs, label: &str, strict: bool) -> Result<()> {
    let keystore = pass.keystore.clone();
    let kdf = vault::kdf_from_env();
    if kdf == vault::KDF_TEST {
        eprintln!(
            "tutela: warning: {} is set: creating a vault with INSECURE test-only KDF settings",
            vault::TEST_KDF_ENV
        );
    }
    let p = passphrase::new(&source(pass))?;
    passphrase::check_strength(&p, strict)?;
    let (v, rk) = Vault::create(vault, &p, label, kdf, keystore.as_deref())?;
    println!("Created vault {}", vault.display());
    if let Some(ks) = &v.keystore {
        println!(
            "Zone keys are kept in the key store {} (not in the vault): keep it safe and apart from backups of the vault.",
            ks.path.display()
        );
    }
    println!();
    println!("Recovery key (it unlocks the vault if every passphrase is lost):");
    println!();
    println!("    {}", rk.as_str());
    println!();
    println!(
        "Write it down and store it offline, away from the vault. It is shown only this once;"
    );
    println!("anyone who has it and a copy of the vault can read everything in it.");
    Ok(())
}
