//! `tutela.conf`: the vault config. Layout (all integers little-endian; FORMAT.md has the table):
//!
//! magic "TUTELAVC" | version u16 | flags u16 | block size u32 | vault id [16] | root dir id [16]
//! | slot count u8 | slots... | zone blob length u32 | zone blob
//! | (version 2) policy generation u64 | policy digest [32] | HMAC-SHA256 [32]
//!
//! Version 2 binds the stored policy to the authenticated config: the generation counts
//! `policy set`s, the digest is SHA-256 of the exact `tutela.policy` bytes last written (all
//! zero: no policy is expected). Version 1 is still read (no binding); every write is v2.
//!
//! slot: kind u8 | label length u8 | label | m_cost KiB u32 | t_cost u32 | lanes u32
//!       | salt [16] | wrapped master key: nonce [12] ciphertext [32] tag [16]
//! slot of kind 2 and later: kind u8 | body length u16 | body (a kind this tutela does not
//!       know is kept byte for byte and skipped at unlock)
//! client slot body (kind 2): label length u8 | label | m_cost u32 | t_cost u32 | lanes u32
//!       | salt [16] | zone id [16] | sealed length u16 | sealed client keys
//! device slot bodies (kinds 3, TPM 2.0, and 4, FIDO2): format/hw_slot.rs

use super::Reader;
use crate::crypto::Id;

pub const MAGIC: &[u8; 8] = b"TUTELAVC";
pub const VERSION: u16 = 2;
/// Configs written before the policy binding; still read.
pub const VERSION_1: u16 = 1;
pub const FILE_NAME: &str = "tutela.conf";
pub const MAC_LEN: usize = 32;
pub const WRAPPED_LEN: usize = 12 + 32 + 16;
pub const SALT_LEN: usize = 16;
/// Flag bit 0: the slots use the insecure test-only KDF parameters (TUTELA_TEST_INSECURE_KDF).
pub const FLAG_TEST_KDF: u16 = 1;
/// Flag bit 1: the zone table lives in a separate key store; the zone blob then seals only
/// a reference to it (format/keystore.rs).
pub const FLAG_KEYSTORE: u16 = 2;
pub const SLOT_KIND_PASSPHRASE: u8 = 1;
/// A passphrase that opens one client's keys only (a contractor's).
pub const SLOT_KIND_CLIENT: u8 = 2;
/// A client slot's sealed keys are at most this long (keys, a name and a path).
pub const MAX_CLIENT_SEALED: usize = 8192;
/// Upper bounds a parser enforces so a hostile config cannot make unlock allocate or spin
/// without end.
pub const MAX_M_COST_KIB: u32 = 4 * 1024 * 1024;
pub const MAX_T_COST: u32 = 64;
pub const MAX_LANES: u32 = 16;
pub const MAX_SLOTS: usize = 32;
pub const MAX_ZONE_BLOB: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub kind: u8,
    pub label: Vec<u8>,
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub lanes: u32,
    pub salt: [u8; SALT_LEN],
    pub wrapped: [u8; WRAPPED_LEN],
}

/// A key slot that opens one client zone's keys, not the master key: what a contractor gets.
/// The zone id is in the clear (the admin's `key list` names the client from it); the keys,
/// the client's name and folder are sealed under the passphrase's KEK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSlot {
    pub label: Vec<u8>,
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub lanes: u32,
    pub salt: [u8; SALT_LEN],
    pub zone_id: Id,
    pub sealed: Vec<u8>,
}

/// A slot of a kind this tutela does not know (a later version's): kept as it is, so that
/// rewriting the config never drops it, and skipped at unlock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherSlot {
    pub kind: u8,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub version: u16,
    pub flags: u16,
    pub block_size: u32,
    pub vault_id: Id,
    pub root_dir_id: Id,
    pub slots: Vec<Slot>,
    /// Client-scoped slots (kind 2), written after the passphrase slots.
    pub client_slots: Vec<ClientSlot>,
    /// Slots that need a TPM or a security key (kinds 3 and 4), written after the client
    /// slots (format/hw_slot.rs).
    pub device_slots: Vec<super::hw_slot::DeviceSlot>,
    /// Slots of kinds this tutela does not know, written last, unchanged.
    pub other_slots: Vec<OtherSlot>,
    pub zone_blob: Vec<u8>,
    /// The policy the vault expects (version 2; `None` in a version 1 config).
    pub policy: Option<PolicyBinding>,
}

/// Which `tutela.policy` the config expects (version 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyBinding {
    /// How many times a policy was set or cleared; never goes back.
    pub generation: u64,
    /// SHA-256 of the policy file's bytes; all zero when no policy is in force.
    pub digest: [u8; 32],
}

impl PolicyBinding {
    pub fn expects_policy(&self) -> bool {
        self.digest != [0; 32]
    }
}

/// Why a config could not be parsed.
#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    NotAConfig,
    UnsupportedVersion(u16),
    Damaged(String),
}

impl Config {
    /// The bytes the MAC covers (everything but the MAC itself).
    pub fn encode_unsigned(&self) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(256 + self.zone_blob.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.flags.to_le_bytes());
        out.extend_from_slice(&self.block_size.to_le_bytes());
        out.extend_from_slice(&self.vault_id);
        out.extend_from_slice(&self.root_dir_id);
        let count = self.slots.len()
            + self.client_slots.len()
            + self.device_slots.len()
            + self.other_slots.len();
        out.push(super::fits::<u8>(count, "key slot count")?);
        for s in &self.slots {
            out.push(s.kind);
            out.push(super::fits::<u8>(s.label.len(), "key label")?);
            out.extend_from_slice(&s.label);
            out.extend_from_slice(&s.m_cost_kib.to_le_bytes());
            out.extend_from_slice(&s.t_cost.to_le_bytes());
            out.extend_from_slice(&s.lanes.to_le_bytes());
            out.extend_from_slice(&s.salt);
            out.extend_from_slice(&s.wrapped);
        }
        for s in &self.client_slots {
            let mut body = Vec::with_capacity(64 + s.label.len() + s.sealed.len());
            body.push(super::fits::<u8>(s.label.len(), "key label")?);
            body.extend_from_slice(&s.label);
            body.extend_from_slice(&s.m_cost_kib.to_le_bytes());
            body.extend_from_slice(&s.t_cost.to_le_bytes());
            body.extend_from_slice(&s.lanes.to_le_bytes());
            body.extend_from_slice(&s.salt);
            body.extend_from_slice(&s.zone_id);
            body.extend_from_slice(
                &super::fits::<u16>(s.sealed.len(), "client slot")?.to_le_bytes(),
            );
            body.extend_from_slice(&s.sealed);
            push_enveloped(&mut out, SLOT_KIND_CLIENT, &body)?;
        }
        for s in &self.device_slots {
            push_enveloped(&mut out, s.kind(), &s.encode()?)?;
        }
        for s in &self.other_slots {
            push_enveloped(&mut out, s.kind, &s.body)?;
        }
        out.extend_from_slice(
            &super::fits::<u32>(self.zone_blob.len(), "zone table")?.to_le_bytes(),
        );
        out.extend_from_slice(&self.zone_blob);
        match (self.version, &self.policy) {
            (VERSION_1, None) => {}
            (VERSION, Some(p)) => {
                out.extend_from_slice(&p.generation.to_le_bytes());
                out.extend_from_slice(&p.digest);
            }
            (v, _) => return Err(format!("config version {v} does not match its fields")),
        }
        Ok(out)
    }

    /// Parses a whole config file. Returns the config, the unsigned prefix and the MAC; the
    /// caller checks the MAC once it has the master key.
    pub fn parse(bytes: &[u8]) -> Result<(Config, &[u8], [u8; MAC_LEN]), ParseError> {
        if bytes.len() < 10 || &bytes[..8] != MAGIC {
            return Err(ParseError::NotAConfig);
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != VERSION && version != VERSION_1 {
            return Err(ParseError::UnsupportedVersion(version));
        }
        Self::parse_fields(bytes).map_err(ParseError::Damaged)
    }

    fn parse_fields(bytes: &[u8]) -> Result<(Config, &[u8], [u8; MAC_LEN]), String> {
        let mut r = Reader::new(bytes);
        r.take(8, "magic")?;
        let version = r.u16("version")?;
        let flags = r.u16("flags")?;
        if flags & !(FLAG_TEST_KDF | FLAG_KEYSTORE) != 0 {
            return Err(format!("unknown flags {flags:#x}"));
        }
        let block_size = r.u32("block size")?;
        if block_size as u64 != crate::crypto::content::BLOCK {
            return Err(format!("unsupported block size {block_size}"));
        }
        let vault_id = r.array::<16>("vault id")?;
        let root_dir_id = r.array::<16>("root dir id")?;
        let n = r.u8("slot count")? as usize;
        if n == 0 || n > MAX_SLOTS {
            return Err(format!("slot count {n} out of range"));
        }
        let mut slots = Vec::with_capacity(n);
        let mut client_slots = Vec::new();
        let mut other_slots = Vec::new();
        let mut device_slots = Vec::new();
        for _ in 0..n {
            let kind = r.u8("slot kind")?;
            if kind == 0 {
                return Err("key slot kind 0".into());
            }
            if kind != SLOT_KIND_PASSPHRASE {
                let len = r.u16("slot body length")? as usize;
                let body = r.take(len, "slot body")?;
                if kind == SLOT_KIND_CLIENT {
                    client_slots.push(parse_client_slot(body)?);
                } else if kind == super::hw_slot::SLOT_KIND_TPM2
                    || kind == super::hw_slot::SLOT_KIND_FIDO2
                {
                    device_slots.push(super::hw_slot::DeviceSlot::parse(kind, body)?);
                } else {
                    other_slots.push(OtherSlot {
                        kind,
                        body: body.to_vec(),
                    });
                }
                continue;
            }
            let len = r.u8("slot label length")? as usize;
            let label = r.take(len, "slot label")?.to_vec();
            let m_cost_kib = r.u32("slot m_cost")?;
            let t_cost = r.u32("slot t_cost")?;
            let lanes = r.u32("slot lanes")?;
            if !kdf_in_range(m_cost_kib, t_cost, lanes) {
                return Err("key slot KDF parameters out of range".into());
            }
            let salt = r.array::<SALT_LEN>("slot salt")?;
            let wrapped = r.array::<WRAPPED_LEN>("slot wrapped key")?;
            slots.push(Slot {
                kind,
                label,
                m_cost_kib,
                t_cost,
                lanes,
                salt,
                wrapped,
            });
        }
        let zlen = r.u32("zone blob length")? as usize;
        if zlen > MAX_ZONE_BLOB {
            return Err("zone blob too large".into());
        }
        let zone_blob = r.take(zlen, "zone blob")?.to_vec();
        let policy = if version == VERSION {
            let generation = u64::from_le_bytes(r.array::<8>("policy generation")?);
            let digest = r.array::<32>("policy digest")?;
            Some(PolicyBinding { generation, digest })
        } else {
            None
        };
        let unsigned_len = r.pos();
        let mac = r.array::<MAC_LEN>("mac")?;
        if r.remaining() != 0 {
            return Err("trailing bytes after mac".into());
        }
        let cfg = Config {
            version,
            flags,
            block_size,
            vault_id,
            root_dir_id,
            slots,
            client_slots,
            device_slots,
            other_slots,
            zone_blob,
            policy,
        };
        Ok((cfg, &bytes[..unsigned_len], mac))
    }
}

pub(crate) fn kdf_in_range(m_cost_kib: u32, t_cost: u32, lanes: u32) -> bool {
    m_cost_kib <= MAX_M_COST_KIB
        && (1..=MAX_T_COST).contains(&t_cost)
        && (1..=MAX_LANES).contains(&lanes)
}

/// `kind | body length u16 | body`: the form of every slot kind after the first.
fn push_enveloped(out: &mut Vec<u8>, kind: u8, body: &[u8]) -> Result<(), String> {
    out.push(kind);
    out.extend_from_slice(&super::fits::<u16>(body.len(), "key slot")?.to_le_bytes());
    out.extend_from_slice(body);
    Ok(())
}

fn parse_client_slot(body: &[u8]) -> Result<ClientSlot, String> {
    let mut r = Reader::new(body);
    let len = r.u8("client slot label length")? as usize;
    let label = r.take(len, "client slot label")?.to_vec();
    let m_cost_kib = r.u32("client slot m_cost")?;
    let t_cost = r.u32("client slot t_cost")?;
    let lanes = r.u32("client slot lanes")?;
    if !kdf_in_range(m_cost_kib, t_cost, lanes) {
        return Err("key slot KDF parameters out of range".into());
    }
    let salt = r.array::<SALT_LEN>("client slot salt")?;
    let zone_id = r.array::<16>("client slot zone id")?;
    let n = r.u16("client slot sealed length")? as usize;
    if !(28..=MAX_CLIENT_SEALED).contains(&n) {
        return Err("client slot sealed keys of impossible length".into());
    }
    let sealed = r.take(n, "client slot sealed keys")?.to_vec();
    if r.remaining() != 0 {
        return Err("trailing bytes in a client slot".into());
    }
    Ok(ClientSlot {
        label,
        m_cost_kib,
        t_cost,
        lanes,
        salt,
        zone_id,
        sealed,
    })
}

/// A config for tests elsewhere in the crate.
#[cfg(test)]
pub(crate) fn tests_sample() -> Config {
    tests::sample()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn sample() -> Config {
        Config {
            version: VERSION,
            flags: 0,
            block_size: 4096,
            vault_id: [1; 16],
            root_dir_id: [2; 16],
            slots: vec![Slot {
                kind: SLOT_KIND_PASSPHRASE,
                label: b"alice".to_vec(),
                m_cost_kib: 65536,
                t_cost: 3,
                lanes: 4,
                salt: [3; 16],
                wrapped: [4; WRAPPED_LEN],
            }],
            client_slots: Vec::new(),
            device_slots: Vec::new(),
            other_slots: Vec::new(),
            zone_blob: vec![5; 70],
            policy: Some(PolicyBinding {
                generation: 3,
                digest: [6; 32],
            }),
        }
    }

    #[test]
    fn encode_parse_round_trip() {
        let c = sample();
        let mut bytes = c.encode_unsigned().unwrap();
        bytes.extend_from_slice(&[9; 32]);
        let (p, unsigned, mac) = Config::parse(&bytes).unwrap();
        assert_eq!(p, c);
        assert_eq!(unsigned, &bytes[..bytes.len() - 32]);
        assert_eq!(mac, [9; 32]);
    }

    #[test]
    fn client_slots_and_slots_of_unknown_kinds_round_trip() {
        let mut c = sample();
        c.client_slots.push(ClientSlot {
            label: b"contractor".to_vec(),
            m_cost_kib: 256,
            t_cost: 1,
            lanes: 1,
            salt: [7; 16],
            zone_id: [8; 16],
            sealed: vec![9; 100],
        });
        c.device_slots = crate::format::hw_slot::tests::samples();
        // A later version's slot kind: kept byte for byte, never refused.
        c.other_slots.push(OtherSlot {
            kind: 9,
            body: b"a slot of the future".to_vec(),
        });
        let mut bytes = c.encode_unsigned().unwrap();
        bytes.extend_from_slice(&[9; 32]);
        let (p, _, _) = Config::parse(&bytes).unwrap();
        assert_eq!(p, c);
        // A client slot whose body is cut, or holds bytes past its end, is damage.
        let mut short = c.clone();
        short.client_slots[0].sealed = vec![1; 10];
        let mut bytes = short.encode_unsigned().unwrap();
        bytes.extend_from_slice(&[9; 32]);
        assert!(matches!(Config::parse(&bytes), Err(ParseError::Damaged(_))));
    }

    #[test]
    fn a_version_1_config_has_no_policy_binding_and_round_trips() {
        let mut c = sample();
        c.version = VERSION_1;
        c.policy = None;
        let mut bytes = c.encode_unsigned().unwrap();
        bytes.extend_from_slice(&[9; 32]);
        let (p, _, _) = Config::parse(&bytes).unwrap();
        assert_eq!(p, c);
        // The binding is 40 bytes of version 2 only.
        assert_eq!(
            sample().encode_unsigned().unwrap().len(),
            c.encode_unsigned().unwrap().len() + 40
        );
        c.policy = sample().policy;
        assert!(
            c.encode_unsigned().is_err(),
            "a v1 config cannot carry a binding"
        );
    }

    #[test]
    fn every_truncation_is_a_clean_error() {
        let mut bytes = sample().encode_unsigned().unwrap();
        bytes.extend_from_slice(&[9; 32]);
        for n in 0..bytes.len() {
            assert!(Config::parse(&bytes[..n]).is_err(), "prefix {n}");
        }
    }

    #[test]
    fn unknown_version_and_magic_are_named() {
        let mut bytes = sample().encode_unsigned().unwrap();
        bytes.extend_from_slice(&[9; 32]);
        bytes[8] = 3;
        assert_eq!(
            Config::parse(&bytes).unwrap_err(),
            ParseError::UnsupportedVersion(3)
        );
        bytes[0] = b'X';
        assert_eq!(Config::parse(&bytes).unwrap_err(), ParseError::NotAConfig);
    }
}
