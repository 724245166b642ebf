//! `tutela lock` and `tutela unlock`: one client's key out of (and back into) a live mount
//! daemon's memory, while the other clients stay open. The work is the daemon's
//! (`daemon::live`); this finds the mount, proves the vault's keys and sends the request.

use crate::cli::PassArgs;
use crate::common::{live_daemon, remote, unlock as open_vault};
use std::path::{Path, PathBuf};
use tutela::daemon::control::Request;
use tutela::error::{Error, Result};
use tutela::vault::Vault;

/// The vault behind `target`: a mountpoint of a live tutela mount, or a vault directory.
fn vault_of(target: &Path) -> Result<PathBuf> {
    if target.join(tutela::format::config::FILE_NAME).is_file() {
        return Ok(target.to_path_buf());
    }
    let canon = std::fs::canonicalize(target).unwrap_or_else(|_| target.to_path_buf());
    tutela::daemon::mount::mounts()
        .into_iter()
        .filter(|m| m.is_tutela())
        .find(|m| m.mountpoint == canon || m.mountpoint == target)
        .map(|m| PathBuf::from(m.source.trim_start_matches("tutela:")))
        .ok_or_else(|| {
            Error::NotMounted(format!(
                "{} is neither a live tutela mount nor a vault (see tutela status)",
                tutela::text::escape(&target.display().to_string())
            ))
        })
}

/// The vault, opened, and its live daemon's control channel.
fn daemon_for(
    target: &Path,
    client: &str,
    pass: &PassArgs,
) -> Result<(Vault, std::os::unix::net::UnixStream)> {
    let v = open_vault(&vault_of(target)?, pass)?;
    if !v.zones.iter().skip(1).any(|z| z.name == client) {
        return Err(Error::Usage(format!(
            "no client named '{}' (see tutela client list)",
            tutela::text::escape(client)
        )));
    }
    let Some(d) = live_daemon(&v)? else {
        return Err(Error::NotMounted(format!(
            "{} is not mounted: a client is locked on a live mount (unmounted, every key is \
             out of memory already)",
            v.dir.display()
        )));
    };
    Ok((v, d))
}

pub fn lock(target: &Path, client: &str, force: bool, json: bool, pass: &PassArgs) -> Result<()> {
    let (v, d) = daemon_for(target, client, pass)?;
    let req = Request::ClientLock {
        name: client.to_string(),
        force,
    };
    remote(d, &v, &req, json)
}

pub fn unlock(target: &Path, client: &str, json: bool, pass: &PassArgs) -> Result<()> {
    let (v, d) = daemon_for(target, client, pass)?;
    let req = Request::ClientUnlock {
        name: client.to_string(),
        zone_wrap: tutela::daemon::control::seal_zone_wrap(&v.control_key(), &v.zone_wrap_key())?,
    };
    remote(d, &v, &req, json)
}
