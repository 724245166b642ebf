//! Key slots that need a device: a TPM 2.0 (kind 3) or a FIDO2 security key (kind 4), alone
//! or together with a passphrase. Both kinds travel in the config's slot envelope
//! (`kind u8 | body length u16 | body`, format/config.rs); their bodies (FORMAT.md, "Device
//! key slots"):
//!
//! common head: label length u8 | label | factors u8 (bit 0: a passphrase is needed too)
//!   | if bit 0: m_cost KiB u32 | t_cost u32 | lanes u32 | salt [16]
//! TPM 2.0 (kind 3): flags u8 (bit 0: PIN) | PCR mask u32 (SHA-256 bank, bit i = PCR i)
//!   | public length u16 | TPM2B_PUBLIC contents (marshalled TPMT_PUBLIC)
//!   | private length u16 | TPM2B_PRIVATE contents
//! FIDO2 (kind 4): flags u8 (bit 0: PIN / user verification) | relying party length u8
//!   | relying party | credential id length u16 | credential id | hmac salt [32]
//! common tail: wrapped master key: nonce [12] | ciphertext [32] | tag [16]
//!
//! Unknown bits in factors or flags are refused as damage: a later tutela that adds a factor
//! uses a new kind, which this one keeps and skips.

use super::config::{SALT_LEN, WRAPPED_LEN};
use super::Reader;

pub const SLOT_KIND_TPM2: u8 = 3;
pub const SLOT_KIND_FIDO2: u8 = 4;
pub const FACTOR_PASSPHRASE: u8 = 1;
pub const FLAG_PIN: u8 = 1;
/// Bounds on the device blobs (a TPM's are a few hundred bytes; credential ids at most 1 KiB).
pub const MAX_TPM_BLOB: usize = 2048;
pub const MAX_CRED_ID: usize = 1024;

/// The passphrase half of a two-factor slot: Argon2id parameters and salt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassPart {
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub lanes: u32,
    pub salt: [u8; SALT_LEN],
}

/// A secret sealed to a TPM: the sealed object's blobs and what its policy requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tpm2Sealed {
    pub pin: bool,
    /// PCRs of the SHA-256 bank the policy binds to (bit i = PCR i; 0 = none).
    pub pcrs: u32,
    pub public: Vec<u8>,
    pub private: Vec<u8>,
}

/// A FIDO2 credential made with the hmac-secret extension, and the salt whose HMAC the
/// token returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fido2Cred {
    pub pin: bool,
    pub rp_id: String,
    pub cred_id: Vec<u8>,
    pub salt: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device {
    Tpm2(Tpm2Sealed),
    Fido2(Fido2Cred),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSlot {
    pub label: Vec<u8>,
    /// Present when the slot needs a passphrase as well as its device.
    pub passphrase: Option<PassPart>,
    pub device: Device,
    pub wrapped: [u8; WRAPPED_LEN],
}

impl DeviceSlot {
    pub fn kind(&self) -> u8 {
        match self.device {
            Device::Tpm2(_) => SLOT_KIND_TPM2,
            Device::Fido2(_) => SLOT_KIND_FIDO2,
        }
    }

    pub fn encode(&self) -> Result<Vec<u8>, String> {
        let mut b = Vec::with_capacity(256);
        b.push(super::fits::<u8>(self.label.len(), "key label")?);
        b.extend_from_slice(&self.label);
        match &self.passphrase {
            Some(p) => {
                b.push(FACTOR_PASSPHRASE);
                b.extend_from_slice(&p.m_cost_kib.to_le_bytes());
                b.extend_from_slice(&p.t_cost.to_le_bytes());
                b.extend_from_slice(&p.lanes.to_le_bytes());
                b.extend_from_slice(&p.salt);
            }
            None => b.push(0),
        }
        match &self.device {
            Device::Tpm2(t) => {
                b.push(if t.pin { FLAG_PIN } else { 0 });
                b.extend_from_slice(&t.pcrs.to_le_bytes());
                for blob in [&t.public, &t.private] {
                    b.extend_from_slice(&super::fits::<u16>(blob.len(), "TPM blob")?.to_le_bytes());
                    b.extend_from_slice(blob);
                }
            }
            Device::Fido2(f) => {
                b.push(if f.pin { FLAG_PIN } else { 0 });
                b.push(super::fits::<u8>(f.rp_id.len(), "relying party")?);
                b.extend_from_slice(f.rp_id.as_bytes());
                b.extend_from_slice(
                    &super::fits::<u16>(f.cred_id.len(), "credential id")?.to_le_bytes(),
                );
                b.extend_from_slice(&f.cred_id);
                b.extend_from_slice(&f.salt);
            }
        }
        b.extend_from_slice(&self.wrapped);
        Ok(b)
    }

    pub fn parse(kind: u8, body: &[u8]) -> Result<DeviceSlot, String> {
        let mut r = Reader::new(body);
        let len = r.u8("device slot label length")? as usize;
        let label = r.take(len, "device slot label")?.to_vec();
        let passphrase = match r.u8("device slot factors")? {
            0 => None,
            FACTOR_PASSPHRASE => {
                let m_cost_kib = r.u32("device slot m_cost")?;
                let t_cost = r.u32("device slot t_cost")?;
                let lanes = r.u32("device slot lanes")?;
                if !super::config::kdf_in_range(m_cost_kib, t_cost, lanes) {
                    return Err("key slot KDF parameters out of range".into());
                }
                Some(PassPart {
                    m_cost_kib,
                    t_cost,
                    lanes,
                    salt: r.array::<SALT_LEN>("device slot salt")?,
                })
            }
            f => return Err(format!("device slot factors {f:#04x} unknown")),
        };
        let flags = r.u8("device slot flags")?;
        if flags & !FLAG_PIN != 0 {
            return Err(format!("device slot flags {flags:#04x} unknown"));
        }
        let pin = flags & FLAG_PIN != 0;
        let device = match kind {
            SLOT_KIND_TPM2 => {
                let pcrs = r.u32("TPM slot PCR mask")?;
                if pcrs >> 24 != 0 {
                    return Err("TPM slot names a PCR above 23".into());
                }
                let mut blob = |what| -> Result<Vec<u8>, String> {
                    let n = r.u16(what)? as usize;
                    if n == 0 || n > MAX_TPM_BLOB {
                        return Err(format!("{what} of impossible length"));
                    }
                    Ok(r.take(n, what)?.to_vec())
                };
                let public = blob("TPM slot public area")?;
                let private = blob("TPM slot private area")?;
                Device::Tpm2(Tpm2Sealed {
                    pin,
                    pcrs,
                    public,
                    private,
                })
            }
            SLOT_KIND_FIDO2 => {
                let n = r.u8("FIDO2 relying party length")? as usize;
                let rp_id = String::from_utf8(r.take(n, "FIDO2 relying party")?.to_vec())
                    .map_err(|_| "FIDO2 relying party is not UTF-8".to_string())?;
                let n = r.u16("FIDO2 credential id length")? as usize;
                if n == 0 || n > MAX_CRED_ID {
                    return Err("FIDO2 credential id of impossible length".into());
                }
                let cred_id = r.take(n, "FIDO2 credential id")?.to_vec();
                let salt = r.array::<32>("FIDO2 hmac salt")?;
                Device::Fido2(Fido2Cred {
                    pin,
                    rp_id,
                    cred_id,
                    salt,
                })
            }
            k => return Err(format!("slot kind {k} is not a device slot")),
        };
        let wrapped = r.array::<WRAPPED_LEN>("device slot wrapped key")?;
        if r.remaining() != 0 {
            return Err("trailing bytes in a device slot".into());
        }
        Ok(DeviceSlot {
            label,
            passphrase,
            device,
            wrapped,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn samples() -> Vec<DeviceSlot> {
        vec![
            DeviceSlot {
                label: b"office-server".to_vec(),
                passphrase: None,
                device: Device::Tpm2(Tpm2Sealed {
                    pin: false,
                    pcrs: 1 << 7,
                    public: vec![1; 78],
                    private: vec![2; 126],
                }),
                wrapped: [3; WRAPPED_LEN],
            },
            DeviceSlot {
                label: b"laptop".to_vec(),
                passphrase: Some(PassPart {
                    m_cost_kib: 8,
                    t_cost: 1,
                    lanes: 1,
                    salt: [4; SALT_LEN],
                }),
                device: Device::Fido2(Fido2Cred {
                    pin: true,
                    rp_id: "tutela".into(),
                    cred_id: vec![5; 64],
                    salt: [6; 32],
                }),
                wrapped: [7; WRAPPED_LEN],
            },
        ]
    }

    #[test]
    fn device_slots_round_trip_and_every_cut_is_refused() {
        for s in samples() {
            let b = s.encode().unwrap();
            assert_eq!(DeviceSlot::parse(s.kind(), &b).unwrap(), s);
            for cut in 0..b.len() {
                assert!(
                    DeviceSlot::parse(s.kind(), &b[..cut]).is_err(),
                    "cut at {cut}"
                );
            }
            let mut long = b.clone();
            long.push(0);
            assert!(DeviceSlot::parse(s.kind(), &long).is_err());
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// The bodies of FORMAT.md, computed by hand from its table.
    #[test]
    fn slot_bodies_match_format_md_vectors() {
        let tpm = DeviceSlot {
            label: b"srv".to_vec(),
            passphrase: None,
            device: Device::Tpm2(Tpm2Sealed {
                pin: true,
                pcrs: 1 << 7,
                public: vec![0xaa; 4],
                private: vec![0xbb; 3],
            }),
            wrapped: [0xcc; WRAPPED_LEN],
        };
        let fido = DeviceSlot {
            label: b"k".to_vec(),
            passphrase: Some(PassPart {
                m_cost_kib: 8,
                t_cost: 1,
                lanes: 1,
                salt: [0x11; SALT_LEN],
            }),
            device: Device::Fido2(Fido2Cred {
                pin: false,
                rp_id: "tutela".into(),
                cred_id: vec![0xdd; 2],
                salt: [0xee; 32],
            }),
            wrapped: [0xcc; WRAPPED_LEN],
        };
        use crate::format::vectors::{FIDO2_SLOT_BODY_VECTOR, TPM_SLOT_BODY_VECTOR};
        assert_eq!(hex(&tpm.encode().unwrap()), TPM_SLOT_BODY_VECTOR);
        assert_eq!(hex(&fido.encode().unwrap()), FIDO2_SLOT_BODY_VECTOR);
    }

    #[test]
    fn unknown_factor_and_flag_bits_are_refused() {
        let s = &samples()[0];
        let mut b = s.encode().unwrap();
        let factors_at = 1 + s.label.len();
        b[factors_at] = 2;
        assert!(DeviceSlot::parse(3, &b).unwrap_err().contains("factors"));
        let mut b = s.encode().unwrap();
        b[factors_at + 1] = 2;
        assert!(DeviceSlot::parse(3, &b).unwrap_err().contains("flags"));
    }
}
