//! The control channel of a mount daemon: how `client add`, `client export`, `client shred`
//! and `rekey` reach a vault that is mounted, so that an office never takes its share
//! offline for client work.
//!
//! A Unix socket `control-<vault id>.sock` in the daemon's private runtime directory
//! (`runtime::dir`, mode 0700; the socket 0600). Only root and the daemon's own user can
//! reach it, and the daemon checks the caller's credentials again (SO_PEERCRED). The caller
//! must then prove it holds the vault's keys: the daemon sends a random challenge, the
//! request comes with HMAC-SHA256 under the control key (HKDF of the master key,
//! `tutela/v1/control`) over the challenge and the request, and the daemon's final answer
//! carries a MAC over the challenge and the answer, so a process squatting on the socket
//! name can neither act nor fake a success. The protocol is one JSON object per line
//! (FORMAT.md, "Control channel").

pub mod client;
pub mod server;

use crate::crypto::secret::Key32;
use crate::error::{Error, Result};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::path::PathBuf;

/// Protocol version, in the daemon's greeting.
pub const VERSION: u32 = 1;

/// A request line is at most this long (a path and a name or two).
pub const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    ClientAdd {
        name: String,
        path: String,
    },
    ClientExport {
        name: String,
        output: PathBuf,
    },
    ClientShred {
        name: String,
    },
    /// Closes a client's matter (its folder read-only for all but admins) or, with
    /// `reopen`, opens it again; `reason` goes to the audit log.
    ClientClose {
        name: String,
        reopen: bool,
        reason: String,
        /// The close date (ms), when not now (`client close --date`).
        #[serde(default)]
        closed_ms: Option<u64>,
    },
    /// Changes a client's life cycle metadata (`client set`, `hold`, `release`): the
    /// command computed `after` from its copy of `before`; the daemon refuses if the zone
    /// table says otherwise by now (a change made meanwhile is never undone). `change`
    /// names it for the audit log: `set`, `hold` or `release`; `detail` says what.
    ClientMeta {
        name: String,
        change: MetaChange,
        before: Box<crate::format::zones::ClientMeta>,
        after: Box<crate::format::zones::ClientMeta>,
        detail: String,
    },
    /// An audit record a command made while the vault is mounted (the daemon holds the
    /// log): `client import`, `audit report`, a late erasure certificate... Recorded as the
    /// caller (its uid and pid from the kernel), with `what` as the record's operation
    /// (lowercase letters and dashes) and `detail` as given.
    Record {
        what: String,
        #[serde(default)]
        client: Option<String>,
        detail: String,
    },
    /// A new key for one client, re-encrypting its files while the mount serves them.
    Rekey {
        client: String,
    },
    /// Finishes a rotation that was interrupted.
    RekeyResume,
    /// A new master key (made by the command, which knows the passphrase) and new keys for
    /// every zone. `master` is the new key sealed under the current control key
    /// (AES-256-GCM-SIV, aad `tutela/control/new-master`), hex; `slot` is the one key slot
    /// that wraps it, for the passphrase the command was given.
    RekeyAll {
        master: String,
        slot: WireSlot,
        /// Device slots the command wrapped the new master key in (hex of `kind ‖ body`,
        /// as in the config); absent from an older tutela's request.
        #[serde(default)]
        devices: Vec<String>,
    },
    /// Drops one client's key from the daemon's memory (`tutela lock`). With open files of the
    /// client it is refused, unless `force`, which revokes their handles.
    ClientLock {
        name: String,
        #[serde(default)]
        force: bool,
    },
    /// Brings a locked client's key back (`tutela unlock`): `zone_wrap` is the vault's
    /// zone-wrap key sealed under the control key (aad `tutela/control/zone-wrap`), hex; the
    /// daemon re-reads the zone table with it and takes the client's key from there.
    ClientUnlock {
        name: String,
        zone_wrap: String,
    },
}

/// Which life cycle change a `client-meta` request is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum MetaChange {
    Set,
    Hold,
    Release,
}

/// A key slot on the wire (FORMAT.md "tutela.conf": the same fields).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WireSlot {
    pub label: String,
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub lanes: u32,
    pub salt: String,
    pub wrapped: String,
}

/// The associated data sealing a new master key on the channel.
pub const NEW_MASTER_AAD: &[u8] = b"tutela/control/new-master";

/// A device slot on the wire: hex of its kind byte and body.
pub fn device_slot_to_wire(s: &crate::format::hw_slot::DeviceSlot) -> Result<String> {
    let mut b = vec![s.kind()];
    b.extend_from_slice(&s.encode().map_err(Error::Usage)?);
    Ok(hex(&b))
}

pub fn device_slot_from_wire(w: &str) -> Result<crate::format::hw_slot::DeviceSlot> {
    let bad =
        |why: String| Error::Usage(format!("malformed device key slot in the request: {why}"));
    let b = unhex(w).ok_or_else(|| bad("not hex".into()))?;
    let (kind, body) = b.split_first().ok_or_else(|| bad("empty".into()))?;
    crate::format::hw_slot::DeviceSlot::parse(*kind, body).map_err(bad)
}

impl WireSlot {
    pub fn from_slot(s: &crate::format::config::Slot) -> WireSlot {
        WireSlot {
            label: String::from_utf8_lossy(&s.label).into_owned(),
            m_cost_kib: s.m_cost_kib,
            t_cost: s.t_cost,
            lanes: s.lanes,
            salt: hex(&s.salt),
            wrapped: hex(&s.wrapped),
        }
    }

    pub fn to_slot(&self) -> Result<crate::format::config::Slot> {
        use crate::format::config::{MAX_LANES, MAX_M_COST_KIB, MAX_T_COST};
        let bad = || Error::Usage("malformed key slot in the request".into());
        // What the config's reader accepts, or the vault would not open again.
        if self.label.is_empty()
            || self.label.len() > 255
            || self.m_cost_kib > MAX_M_COST_KIB
            || !(1..=MAX_T_COST).contains(&self.t_cost)
            || !(1..=MAX_LANES).contains(&self.lanes)
        {
            return Err(bad());
        }
        Ok(crate::format::config::Slot {
            kind: crate::format::config::SLOT_KIND_PASSPHRASE,
            label: self.label.as_bytes().to_vec(),
            m_cost_kib: self.m_cost_kib,
            t_cost: self.t_cost,
            lanes: self.lanes,
            salt: unhex(&self.salt)
                .and_then(|v| v.try_into().ok())
                .ok_or_else(bad)?,
            wrapped: unhex(&self.wrapped)
                .and_then(|v| v.try_into().ok())
                .ok_or_else(bad)?,
        })
    }
}

/// Seals a new master key for the channel.
pub fn seal_master(control: &Key32, master: &Key32) -> Result<String> {
    Ok(hex(&crate::crypto::seal_random(
        control.as_bytes(),
        NEW_MASTER_AAD,
        master.as_bytes(),
    )?))
}

/// Opens a new master key sealed by `seal_master`.
pub fn open_master(control: &Key32, sealed: &str) -> Result<Key32> {
    let bytes = unhex(sealed).ok_or(Error::Invalid)?;
    let plain = zeroize::Zeroizing::new(crate::crypto::open_random(
        control.as_bytes(),
        NEW_MASTER_AAD,
        &bytes,
        "new master key",
    )?);
    let arr: [u8; 32] = plain.as_slice().try_into().map_err(|_| Error::Invalid)?;
    Ok(Key32::from_bytes(arr))
}

/// The associated data sealing the zone-wrap key on the channel.
const ZONE_WRAP_AAD: &[u8] = b"tutela/control/zone-wrap";

/// Seals the zone-wrap key for an unlock request.
pub fn seal_zone_wrap(control: &Key32, zone_wrap: &Key32) -> Result<String> {
    Ok(hex(&crate::crypto::seal_random(
        control.as_bytes(),
        ZONE_WRAP_AAD,
        zone_wrap.as_bytes(),
    )?))
}

/// Opens a zone-wrap key sealed by `seal_zone_wrap`.
pub fn open_zone_wrap(control: &Key32, sealed: &str) -> Result<Key32> {
    let bytes = unhex(sealed).ok_or(Error::Invalid)?;
    let plain = zeroize::Zeroizing::new(crate::crypto::open_random(
        control.as_bytes(),
        ZONE_WRAP_AAD,
        &bytes,
        "zone-wrap key",
    )?);
    let arr: [u8; 32] = plain.as_slice().try_into().map_err(|_| Error::Invalid)?;
    Ok(Key32::from_bytes(arr))
}

impl Request {
    /// The audit operation name.
    pub fn op(&self) -> &'static str {
        match self {
            Request::ClientLock { .. } => "client-lock",
            Request::ClientUnlock { .. } => "client-unlock",
            Request::ClientAdd { .. } => "client-add",
            Request::ClientExport { .. } => "client-export",
            Request::ClientShred { .. } => "client-shred",
            Request::ClientClose { reopen: false, .. } => "client-close",
            Request::ClientClose { reopen: true, .. } => "client-reopen",
            Request::ClientMeta { change, .. } => match change {
                MetaChange::Set => "client-set",
                MetaChange::Hold => "client-hold",
                MetaChange::Release => "client-release",
            },
            Request::Record { .. } => "record",
            Request::Rekey { .. } | Request::RekeyResume => "rekey",
            Request::RekeyAll { .. } => "rekey-all",
        }
    }
}

/// The daemon's first line.
#[derive(Debug, Serialize, Deserialize)]
pub struct Hello {
    pub tutela_control: u32,
    /// 32 random bytes, hex.
    pub challenge: String,
}

/// The caller's line: the request as JSON text, and its MAC (hex).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signed {
    pub request: String,
    pub mac: String,
}

/// The daemon's further lines: progress, then one final answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Line {
    Progress(String),
    /// Success: a message for the terminal and details for --json; `mac` covers both.
    Done {
        message: String,
        detail: serde_json::Value,
        mac: String,
    },
    Failed {
        code: i32,
        message: String,
    },
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn mac_of(key: &Key32, parts: &[&[u8]]) -> Result<Hmac<Sha256>> {
    let mut m = Hmac::<Sha256>::new_from_slice(key.as_bytes()).map_err(|_| Error::Invalid)?;
    for p in parts {
        m.update(&(p.len() as u64).to_be_bytes());
        m.update(p);
    }
    Ok(m)
}

/// MAC of a request under `challenge` (length-prefixed parts: no two inputs collide).
pub fn request_mac(key: &Key32, challenge: &[u8], request: &str) -> Result<String> {
    let m = mac_of(
        key,
        &[b"tutela/control/request", challenge, request.as_bytes()],
    )?;
    Ok(hex(&m.finalize().into_bytes()))
}

pub fn verify_request(key: &Key32, challenge: &[u8], request: &str, mac: &str) -> bool {
    let Some(tag) = unhex(mac) else { return false };
    mac_of(
        key,
        &[b"tutela/control/request", challenge, request.as_bytes()],
    )
    .is_ok_and(|m| m.verify_slice(&tag).is_ok())
}

/// MAC of a final answer.
pub fn answer_mac(key: &Key32, challenge: &[u8], message: &str, detail: &str) -> Result<String> {
    let m = mac_of(
        key,
        &[
            b"tutela/control/answer",
            challenge,
            message.as_bytes(),
            detail.as_bytes(),
        ],
    )?;
    Ok(hex(&m.finalize().into_bytes()))
}

pub fn verify_answer(
    key: &Key32,
    challenge: &[u8],
    message: &str,
    detail: &str,
    mac: &str,
) -> bool {
    let Some(tag) = unhex(mac) else { return false };
    mac_of(
        key,
        &[
            b"tutela/control/answer",
            challenge,
            message.as_bytes(),
            detail.as_bytes(),
        ],
    )
    .is_ok_and(|m| m.verify_slice(&tag).is_ok())
}

/// The socket's file name for a vault.
pub fn socket_name(vault_id: &crate::crypto::Id) -> String {
    format!("control-{}.sock", hex(vault_id))
}

/// Where a daemon of this user puts its socket.
pub fn socket_path(vault_id: &crate::crypto::Id) -> PathBuf {
    crate::daemon::status::dir().join(socket_name(vault_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_bind_challenge_and_text() {
        let k = Key32::from_bytes([3; 32]);
        let m = request_mac(&k, b"c1", "{}").unwrap();
        assert!(verify_request(&k, b"c1", "{}", &m));
        assert!(!verify_request(&k, b"c2", "{}", &m));
        assert!(!verify_request(&k, b"c1", "{ }", &m));
        assert!(!verify_request(
            &Key32::from_bytes([4; 32]),
            b"c1",
            "{}",
            &m
        ));
        assert!(!verify_request(&k, b"c1", "{}", "zz"));
        // A request MAC is not an answer MAC.
        assert!(!verify_answer(&k, b"c1", "{}", "", &m));
        let a = answer_mac(&k, b"c1", "done", "{}").unwrap();
        assert!(verify_answer(&k, b"c1", "done", "{}", &a));
        assert!(!verify_answer(&k, b"c1", "done!", "{}", &a));
    }

    #[test]
    fn requests_parse_strictly() {
        let r: Request =
            serde_json::from_str(r#"{"op":"client-add","name":"acme","path":"/c/acme"}"#).unwrap();
        assert_eq!(r.op(), "client-add");
        assert!(serde_json::from_str::<Request>(r#"{"op":"client-add","name":"a"}"#).is_err());
        assert!(
            serde_json::from_str::<Request>(r#"{"op":"client-shred","name":"a","extra":1}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<Request>(r#"{"op":"format-disk"}"#).is_err());
    }
}
