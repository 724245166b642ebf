//! The key hierarchy. Every HKDF label is a named constant here and has a known-answer test;
//! FORMAT.md lists them verbatim.
//!
//! master key --HKDF(salt=vault id)--> config MAC key, zone-wrap key
//! zone key   --HKDF(salt=zone id)---> name key, xattr key
//! zone key   --HKDF(salt=file id)---> per-file content key

use crate::crypto::secret::Key32;
use crate::crypto::Id;
use hkdf::Hkdf;
use sha2::Sha256;

pub const LABEL_CONFIG_MAC: &[u8] = b"tutela/v1/config-mac";
pub const LABEL_ZONE_WRAP: &[u8] = b"tutela/v1/zone-wrap";
pub const LABEL_NAMES: &[u8] = b"tutela/v1/names";
pub const LABEL_XATTR: &[u8] = b"tutela/v1/xattr";
pub const LABEL_CONTENT: &[u8] = b"tutela/v1/content";
pub const LABEL_POLICY: &[u8] = b"tutela/v1/policy";
pub const LABEL_AUDIT_ENC: &[u8] = b"tutela/v1/audit-enc";
/// Salt prefix of a device key slot's key (followed by the slot kind).
pub const LABEL_DEVICE_SLOT: &[u8] = b"tutela/v1/device-slot";
pub const LABEL_AUDIT_MAC: &[u8] = b"tutela/v1/audit-mac";
pub const LABEL_CONTROL: &[u8] = b"tutela/v1/control";
pub const LABEL_AUDIT_SEAL: &[u8] = b"tutela/v1/audit-seal";
/// The seed of the vault's report-signing key (ed25519): `audit report`, `audit pubkey`.
pub const LABEL_REPORT_SIGN: &[u8] = b"tutela/v1/report-sign";

/// HKDF-SHA256 (RFC 5869) with a 32-byte output.
pub fn derive(ikm: &Key32, salt: &[u8], label: &[u8]) -> Key32 {
    Key32::from_bytes(expand(ikm, salt, label))
}

fn expand(ikm: &Key32, salt: &[u8], label: &[u8]) -> [u8; 32] {
    let hk = Hkdf::<Sha256>::new(Some(salt), ikm.as_bytes());
    let mut out = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's 8160-byte limit, so expand cannot fail.
    if hk.expand(label, &mut out).is_err() {
        out = [0u8; 32];
    }
    out
}

pub fn config_mac_key(master: &Key32, vault_id: &Id) -> Key32 {
    derive(master, vault_id, LABEL_CONFIG_MAC)
}

pub fn zone_wrap_key(master: &Key32, vault_id: &Id) -> Key32 {
    derive(master, vault_id, LABEL_ZONE_WRAP)
}

pub fn policy_key(master: &Key32, vault_id: &Id) -> Key32 {
    derive(master, vault_id, LABEL_POLICY)
}

pub fn audit_enc_key(master: &Key32, vault_id: &Id) -> Key32 {
    derive(master, vault_id, LABEL_AUDIT_ENC)
}

pub fn audit_mac_key(master: &Key32, vault_id: &Id) -> Key32 {
    derive(master, vault_id, LABEL_AUDIT_MAC)
}

/// The seed of the vault's audit key pair (`sealed::audit_keypair`): writers without the
/// vault's keys (a client-scoped mount) seal their segment keys to its public half.
pub fn audit_seal_seed(master: &Key32, vault_id: &Id) -> Key32 {
    derive(master, vault_id, LABEL_AUDIT_SEAL)
}

/// The seed of the ed25519 key that signs reports (`crypto::sign`).
pub fn report_sign_seed(master: &Key32, vault_id: &Id) -> Key32 {
    derive(master, vault_id, LABEL_REPORT_SIGN)
}

/// Authenticates requests on a mount daemon's control channel (and its answers).
pub fn control_key(master: &Key32, vault_id: &Id) -> Key32 {
    derive(master, vault_id, LABEL_CONTROL)
}

pub fn name_key(zone: &Key32, zone_id: &Id) -> Key32 {
    derive(zone, zone_id, LABEL_NAMES)
}

pub fn xattr_key(zone: &Key32, zone_id: &Id) -> Key32 {
    derive(zone, zone_id, LABEL_XATTR)
}

pub fn content_key(zone: &Key32, file_id: &Id) -> Key32 {
    Key32::short_lived(expand(zone, file_id, LABEL_CONTENT))
}

/// The key that wraps the master key in a device slot: HKDF-SHA256 with salt
/// `tutela/v1/device-slot` ‖ kind, input the device's 32-byte secret followed, in a
/// two-factor slot, by the passphrase's Argon2id key, and info the slot's label. Neither
/// factor alone determines it.
pub fn device_slot_key(kind: u8, label: &[u8], device: &[u8; 32], pass: Option<&Key32>) -> Key32 {
    let mut salt = LABEL_DEVICE_SLOT.to_vec();
    salt.push(kind);
    let mut ikm = zeroize::Zeroizing::new(device.to_vec());
    if let Some(p) = pass {
        ikm.extend_from_slice(p.as_bytes());
    }
    let hk = Hkdf::<Sha256>::new(Some(&salt), &ikm);
    let mut out = [0u8; 32];
    if hk.expand(label, &mut out).is_err() {
        out = [0u8; 32];
    }
    Key32::from_bytes(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// The vectors of FORMAT.md, section "Test vectors": master key 00..1f, IDs 0x11.. / 0x22..
    #[test]
    fn labels_match_format_md_vectors() {
        let mut mk = [0u8; 32];
        for (i, b) in mk.iter_mut().enumerate() {
            *b = i as u8;
        }
        let mk = Key32::from_bytes(mk);
        let vid = [0x11u8; 16];
        let fid = [0x22u8; 16];
        let got = [
            hex(config_mac_key(&mk, &vid).as_bytes()),
            hex(zone_wrap_key(&mk, &vid).as_bytes()),
            hex(name_key(&mk, &vid).as_bytes()),
            hex(xattr_key(&mk, &vid).as_bytes()),
            hex(content_key(&mk, &fid).as_bytes()),
        ];
        let want = crate::format::vectors::KDF_VECTORS;
        assert_eq!(got.map(|s| s), want.map(|s| s.to_string()));
        let got2 = [
            hex(policy_key(&mk, &vid).as_bytes()),
            hex(audit_enc_key(&mk, &vid).as_bytes()),
            hex(audit_mac_key(&mk, &vid).as_bytes()),
        ];
        assert_eq!(
            got2.map(|s| s),
            crate::format::vectors::KDF_VECTORS_V1_AUDIT.map(|s| s.to_string())
        );
        assert_eq!(
            hex(control_key(&mk, &vid).as_bytes()),
            crate::format::vectors::KDF_VECTOR_CONTROL
        );
    }

    #[test]
    fn different_labels_give_different_keys() {
        let mk = Key32::from_bytes([7; 32]);
        let a = name_key(&mk, &[1; 16]);
        let b = xattr_key(&mk, &[1; 16]);
        assert_ne!(a.as_bytes(), b.as_bytes());
    }
}
