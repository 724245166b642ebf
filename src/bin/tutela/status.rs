//! `tutela status`.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tutela::error::Result;
use tutela::policy::store;

#[derive(serde::Serialize)]
struct MountStatus {
    vault: String,
    mountpoint: String,
    read_only: bool,
    policy: bool,
    clients: Option<usize>,
    idle_s: Option<u64>,
    pid: Option<u32>,
    uptime_s: Option<u64>,
    strays: Option<usize>,
    /// Clients locked on the mount now.
    locked: Vec<String>,
    client_idle_s: Option<u64>,
    /// The one client a client-scoped mount shows.
    client: Option<String>,
}

pub fn status(json: bool) -> Result<()> {
    // Without the daemons' reports the mounts are still listed, with fewer details; say why.
    let daemons = tutela::daemon::status::live_or_why().unwrap_or_else(|why| {
        eprintln!("tutela: no mount details ({why})");
        Vec::new()
    });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut out = Vec::new();
    for m in tutela::daemon::mount::mounts()
        .into_iter()
        .filter(|m| m.is_tutela())
    {
        let vault = m.source.trim_start_matches("tutela:").to_string();
        let mountpoint = m.mountpoint.display().to_string();
        let d = daemons.iter().find(|d| d.mountpoint == mountpoint);
        out.push(MountStatus {
            read_only: m.options.split(',').any(|o| o == "ro"),
            // The daemon's own report when it can be read; the policy file's presence else.
            policy: d
                .map(|d| d.policy)
                .unwrap_or_else(|| Path::new(&vault).join(store::FILE_NAME).exists()),
            clients: d.map(|d| d.clients),
            idle_s: d.and_then(|d| d.idle_s),
            pid: d.map(|d| d.pid),
            uptime_s: d.map(|d| now.saturating_sub(d.started_unix)),
            strays: d.map(|d| d.strays),
            locked: d.map(|d| d.locked.clone()).unwrap_or_default(),
            client_idle_s: d.and_then(|d| d.client_idle_s),
            client: d.and_then(|d| d.client.clone()),
            vault,
            mountpoint,
        });
    }
    if json {
        println!("{}", serde_json::json!({ "mounts": out }));
    } else if out.is_empty() {
        println!("no tutela mounts");
    } else {
        for s in out {
            let mut extra = Vec::new();
            extra.push(
                if s.read_only {
                    "read-only"
                } else {
                    "read-write"
                }
                .to_string(),
            );
            if let Some(c) = &s.client {
                extra.push(format!("client '{}' only", tutela::text::escape(c)));
            }
            if s.policy {
                extra.push("access policy".into());
            }
            if let Some(c) = s.clients {
                extra.push(format!("{c} clients"));
            }
            if !s.locked.is_empty() {
                let names: Vec<String> = s
                    .locked
                    .iter()
                    .map(|n| tutela::text::escape(n).into_owned())
                    .collect();
                extra.push(format!("locked: {}", names.join(", ")));
            }
            if let Some(i) = s.client_idle_s {
                extra.push(format!(
                    "locks each client after {} idle",
                    humantime::format_duration(Duration::from_secs(i))
                ));
            }
            if let Some(n) = s.strays.filter(|n| *n > 0) {
                extra.push(format!(
                    "{n} stray file{} in the vault (tutela fsck lists them)",
                    if n == 1 { "" } else { "s" }
                ));
            }
            if let Some(i) = s.idle_s {
                extra.push(format!(
                    "unmounts after {} idle",
                    humantime::format_duration(Duration::from_secs(i))
                ));
            }
            if let Some(u) = s.uptime_s {
                extra.push(format!(
                    "up {}",
                    humantime::format_duration(Duration::from_secs(u))
                ));
            }
            if let Some(p) = s.pid {
                extra.push(format!("pid {p}"));
            }
            println!("{} on {} ({})", s.vault, s.mountpoint, extra.join(", "));
        }
    }
    Ok(())
}
