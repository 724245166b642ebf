//! `tutela mount`: check what is cheap, unlock, then hand the vault to the daemon.

use crate::cli::PassArgs;
use crate::common::{source, warn_test_kdf};
use std::path::PathBuf;
use tutela::error::{Error, Result};
use tutela::format::recovery;
use tutela::vault::{passphrase, Unlock, Vault};

/// The options of `tutela mount`, as parsed.
pub struct Args {
    pub vault: PathBuf,
    pub mountpoint: PathBuf,
    pub pass: PassArgs,
    pub recovery_key: Option<PathBuf>,
    pub foreground: bool,
    pub read_only: bool,
    pub allow_other: bool,
    pub idle: Option<std::time::Duration>,
    pub client_idle: Option<std::time::Duration>,
    pub client: Option<String>,
    pub threads: u16,
    pub log_file: Option<PathBuf>,
    pub options: Vec<tutela::daemon::mount::MountFlag>,
    pub audit_syslog: Option<String>,
    pub anchor_every: String,
}

pub fn run(a: Args) -> Result<()> {
    let Args {
        vault,
        mountpoint,
        pass,
        recovery_key,
        foreground,
        read_only,
        allow_other,
        idle,
        client_idle,
        client,
        threads,
        log_file,
        options,
        audit_syslog,
        anchor_every,
    } = a;
    let anchor_every = tutela::daemon::mount::parse_anchor_every(&anchor_every).map_err(|e| {
        Error::Usage(format!(
            "--anchor-every {}: {e}",
            tutela::text::escape(&anchor_every)
        ))
    })?;
    // Check cheap things before asking for a passphrase.
    Vault::read_config(&vault)?;
    // An absolute path names the vault in the mount table (tutela status, fsck).
    let vault = std::fs::canonicalize(&vault).unwrap_or(vault);
    if !mountpoint.exists() {
        return Err(Error::Mountpoint(format!(
            "mountpoint {} does not exist: create an empty directory first",
            mountpoint.display()
        )));
    }
    let how = match recovery_key {
        Some(f) => {
            let file = (f.as_os_str() != "-").then_some(f.as_path());
            let text = passphrase::recovery_key(file)?;
            recovery::decode(&text)
                .map_err(|why| Error::Passphrase(format!("recovery key: {why}")))?;
            Unlock::RecoveryKey(text.to_string())
        }
        // A client's key slot is a passphrase; the vault's may be any kind.
        None if client.is_some() => Unlock::Passphrase(passphrase::existing(&source(&pass))?),
        None => crate::common::how(&vault, &pass)?,
    };
    let args = tutela::daemon::mount::MountArgs {
        mountpoint,
        foreground,
        read_only,
        allow_other,
        idle,
        client_idle,
        threads: threads as usize,
        log_file,
        flags: options,
        audit_syslog: audit_syslog.map(|m| m == "paths"),
        anchor_every,
    };
    if let Some(name) = client {
        let (config, keys) =
            tutela::offline::clients::unlock_client(&vault, &how, &name, pass.keystore.as_deref())?;
        drop(how);
        return tutela::daemon::mount::mount_scoped(&vault, &config, keys, args);
    }
    let v = tutela::offline::open_vault(&vault, &how, pass.keystore.as_deref())?;
    crate::common::show_sync_notes(&v);
    // The daemon lives on with the keys only: the passphrase goes (and is zeroed) now.
    drop(how);
    warn_test_kdf(&v);
    let pending = v.rekey_pending();
    if !pending.is_empty() {
        if read_only {
            eprintln!(
                        "tutela: a rekey of {} was interrupted; this read-only mount leaves it so: mount read-write (it then finishes while serving) or run `tutela rekey {} --resume`",
                        pending.join(", "),
                        vault.display()
                    );
        } else {
            eprintln!(
                        "tutela: a rekey of {} was interrupted: the mount finishes it while serving (see tutela audit show)",
                        pending.join(", ")
                    );
        }
    }
    tutela::daemon::mount::mount(v, args)
}
