//! What a live mount daemon tells `tutela status`: one small JSON file per daemon in a
//! runtime directory (`/run/tutela` for root, `$XDG_RUNTIME_DIR/tutela` or `/tmp/tutela-UID`
//! otherwise, mode 0700), removed when the daemon ends. Nothing in it is secret: the vault
//! path and mountpoint are in the mount table anyway, and clients are only counted.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub pid: u32,
    pub vault: String,
    pub mountpoint: String,
    pub started_unix: u64,
    pub read_only: bool,
    pub policy: bool,
    pub clients: usize,
    pub idle_s: Option<u64>,
    pub threads: usize,
    /// Backing names met in listings that are neither an entry nor a copy of one.
    #[serde(default)]
    pub strays: usize,
    /// Clients locked on this mount now (`tutela lock`, or `--client-idle`).
    #[serde(default)]
    pub locked: Vec<String>,
    #[serde(default)]
    pub client_idle_s: Option<u64>,
    /// The one client a client-scoped mount shows (`mount --client`).
    #[serde(default)]
    pub client: Option<String>,
}

pub fn dir() -> PathBuf {
    if crate::sys::geteuid() == 0 {
        return PathBuf::from("/run/tutela");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) => PathBuf::from(d).join("tutela"),
        None => std::env::temp_dir().join(format!("tutela-{}", crate::sys::geteuid())),
    }
}

fn file_of(pid: u32) -> PathBuf {
    dir().join(format!("{pid}.json"))
}

/// The runtime directory, if it is ours alone. Without `XDG_RUNTIME_DIR` it lives in the
/// shared /tmp, where another user could have made it first (to plant status files, or
/// symlinks that our writes would follow): such a directory is not used.
fn own_dir() -> Option<PathBuf> {
    checked_dir().map_err(|why| log::warn!("{why}")).ok()
}

/// The runtime directory, or why it is not used (for `tutela status` to say).
fn checked_dir() -> Result<PathBuf, String> {
    let d = dir();
    match crate::sys::private_dir(&d) {
        Ok(owner) if owner == crate::sys::geteuid() => Ok(d),
        Ok(owner) => Err(format!(
            "not using {}: it belongs to uid {owner}, not to us",
            d.display()
        )),
        Err(e) => Err(format!("not using {}: {e}", d.display())),
    }
}

/// Written by the daemon once its mount is live (best effort: status degrades gracefully).
pub fn publish(info: &DaemonInfo) {
    let Some(d) = own_dir() else {
        return;
    };
    if let Ok(text) = serde_json::to_vec(info) {
        let _ = crate::sys::write_atomic(&d, &format!("{}.json", info.pid), &text, 0o600);
    }
}

pub fn withdraw(pid: u32) {
    let _ = std::fs::remove_file(file_of(pid));
}

/// Every published daemon that is still alive (stale files of dead daemons are removed).
pub fn live() -> Vec<DaemonInfo> {
    live_or_why().unwrap_or_else(|why| {
        log::warn!("{why}");
        Vec::new()
    })
}

/// As `live`, or why no daemon's report can be read (the runtime directory is not ours).
pub fn live_or_why() -> Result<Vec<DaemonInfo>, String> {
    let d = checked_dir()?;
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(d) else {
        return Ok(out);
    };
    for e in rd.flatten() {
        let Ok(bytes) = std::fs::read(e.path()) else {
            continue;
        };
        let Ok(info) = serde_json::from_slice::<DaemonInfo>(&bytes) else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{}", info.pid)).exists() {
            out.push(info);
        } else {
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok(out)
}
