//! Client-scoped key slots (kind 2): a passphrase that opens one client's keys and nothing
//! else, for a contractor who needs one client's files. An admin holding the vault's keys
//! makes one; its sealed payload (FORMAT.md, "Client key slots") is
//!
//! ```text
//! version 1 | zone key [32] | policy key [32] | audit public key [32] | top directory id [16]
//! | name length u8 | name | path length u16 | path
//! ```
//!
//! sealed under the passphrase's Argon2id KEK with aad `tutela/v1/client-slot` ‖ label ‖ zone
//! id. It holds no master key, no zone-wrap or config key, no audit key: nothing that opens
//! another client, the config's zone table or the audit log. A rekey of the client (or a
//! shred, or `rekey --all`) makes it useless and removes it.

use super::{check_label, Vault};
use crate::crypto::kek::{passphrase_kek, KdfParams};
use crate::crypto::secret::{Key32, Passphrase};
use crate::crypto::{self, Id};
use crate::error::{Error, Result};
use crate::format::config::{self, ClientSlot, Config};
use zeroize::Zeroizing;

const AAD_LABEL: &[u8] = b"tutela/v1/client-slot";
const PAYLOAD_VERSION: u8 = 1;

/// What a client slot opens.
pub struct ClientKeys {
    pub label: String,
    pub zone_id: Id,
    pub zone_key: Key32,
    pub policy_key: Key32,
    /// The vault's audit public key: a client-scoped mount seals its audit segments to it.
    pub audit_public: [u8; 32],
    pub top_dir_id: Id,
    pub name: String,
    pub path: String,
}

fn aad(label: &[u8], zone_id: &Id) -> Vec<u8> {
    let mut a = AAD_LABEL.to_vec();
    a.extend_from_slice(label);
    a.extend_from_slice(zone_id);
    a
}

fn payload(k: &ClientKeys) -> Result<Zeroizing<Vec<u8>>> {
    let mut p = Zeroizing::new(Vec::with_capacity(96 + k.name.len() + k.path.len()));
    p.push(PAYLOAD_VERSION);
    p.extend_from_slice(k.zone_key.as_bytes());
    p.extend_from_slice(k.policy_key.as_bytes());
    p.extend_from_slice(&k.audit_public);
    p.extend_from_slice(&k.top_dir_id);
    let name_len = u8::try_from(k.name.len()).map_err(|_| Error::Invalid)?;
    p.push(name_len);
    p.extend_from_slice(k.name.as_bytes());
    let path_len = u16::try_from(k.path.len()).map_err(|_| Error::Invalid)?;
    p.extend_from_slice(&path_len.to_le_bytes());
    p.extend_from_slice(k.path.as_bytes());
    Ok(p)
}

fn parse_payload(label: &str, zone_id: Id, p: &[u8]) -> Result<ClientKeys> {
    let bad = || Error::ConfigCorrupt {
        why: format!("client key slot '{label}': its keys do not parse"),
    };
    let mut r = crate::format::Reader::new(p);
    if r.u8("version").map_err(|_| bad())? != PAYLOAD_VERSION {
        return Err(Error::UnsupportedVersion {
            found: u16::from(p[0]),
            supported: u16::from(PAYLOAD_VERSION),
        });
    }
    let zone_key = Key32::from_bytes(r.array::<32>("zone key").map_err(|_| bad())?);
    let policy_key = Key32::from_bytes(r.array::<32>("policy key").map_err(|_| bad())?);
    let audit_public = r.array::<32>("audit public key").map_err(|_| bad())?;
    let top_dir_id = r.array::<16>("top dir id").map_err(|_| bad())?;
    let n = r.u8("name length").map_err(|_| bad())? as usize;
    let name =
        String::from_utf8(r.take(n, "name").map_err(|_| bad())?.to_vec()).map_err(|_| bad())?;
    let n = r.u16("path length").map_err(|_| bad())? as usize;
    let path =
        String::from_utf8(r.take(n, "path").map_err(|_| bad())?.to_vec()).map_err(|_| bad())?;
    if r.remaining() != 0 {
        return Err(bad());
    }
    Ok(ClientKeys {
        label: label.to_string(),
        zone_id,
        zone_key,
        policy_key,
        audit_public,
        top_dir_id,
        name,
        path,
    })
}

/// Seals `keys` into a client slot for passphrase `pass`.
pub fn make(keys: &ClientKeys, pass: &Passphrase, kdf: KdfParams) -> Result<ClientSlot> {
    check_label(&keys.label)?;
    let mut salt = [0u8; config::SALT_LEN];
    crypto::random_bytes(&mut salt)?;
    let kek = passphrase_kek(pass, &salt, kdf)?;
    let sealed = crypto::seal_random(
        kek.as_bytes(),
        &aad(keys.label.as_bytes(), &keys.zone_id),
        &payload(keys)?,
    )?;
    Ok(ClientSlot {
        label: keys.label.as_bytes().to_vec(),
        m_cost_kib: kdf.m_cost_kib,
        t_cost: kdf.t_cost,
        lanes: kdf.lanes,
        salt,
        zone_id: keys.zone_id,
        sealed,
    })
}

/// The client keys the first client slot that `pass` opens holds, if any.
pub fn open_any(config: &Config, pass: &Passphrase) -> Result<Option<ClientKeys>> {
    for s in &config.client_slots {
        let p = KdfParams {
            m_cost_kib: s.m_cost_kib,
            t_cost: s.t_cost,
            lanes: s.lanes,
        };
        let kek = passphrase_kek(pass, &s.salt, p)?;
        if let Ok(plain) = crypto::open_random(
            kek.as_bytes(),
            &aad(&s.label, &s.zone_id),
            &s.sealed,
            "client key slot",
        ) {
            let plain = Zeroizing::new(plain);
            let label = String::from_utf8_lossy(&s.label).into_owned();
            return parse_payload(&label, s.zone_id, &plain).map(Some);
        }
    }
    Ok(None)
}

/// A slot in `key list`: its label, and the client it is limited to (`None`: the vault).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SlotInfo {
    pub label: String,
    /// "passphrase", "client-passphrase", "tpm2", "fido2" or "unknown".
    pub kind: &'static str,
    pub client: Option<String>,
    /// What opening it takes: "passphrase", "tpm2", "tpm2-pin", "fido2", "fido2-pin".
    pub factors: Vec<&'static str>,
    /// A TPM slot's PCRs (SHA-256 bank); empty for the rest.
    pub pcrs: Vec<u32>,
}

impl Vault {
    /// Adds a passphrase that opens client `name`'s keys only. `top_dir_id` is the id of the
    /// client's top directory (where a client-scoped mount starts).
    pub fn add_client_slot(
        &mut self,
        label: &str,
        pass: &Passphrase,
        name: &str,
        top_dir_id: Id,
    ) -> Result<()> {
        self.check_new_label(label)?;
        let z = self
            .zones
            .iter()
            .skip(1)
            .find(|z| z.name == name)
            .ok_or_else(|| {
                Error::Usage(format!("no client named '{name}' (see tutela client list)"))
            })?;
        if z.retiring.is_some() {
            return Err(Error::Usage(format!(
                "client '{name}' is being rekeyed: finish it first (tutela rekey VAULT --resume)"
            )));
        }
        let keys = ClientKeys {
            label: label.to_string(),
            zone_id: z.id,
            zone_key: z.key.duplicate(),
            policy_key: self.policy_key(),
            audit_public: self.audit_keys().public(),
            top_dir_id,
            name: z.name.clone(),
            path: z.path.clone(),
        };
        let slot = make(&keys, pass, self.slot_kdf())?;
        self.config.client_slots.push(slot);
        self.save()?;
        // The closed clients as this key's scoped mounts will read them (sealed under the
        // policy key the slot holds).
        crate::policy::closed::write(
            &self.dir,
            &self.policy_key(),
            &self.config.vault_id,
            &crate::policy::closed::of_zones(&self.zones),
        )
    }

    /// Labels must be unique across every kind of slot, and the config has room for so many.
    pub(super) fn check_new_label(&self, label: &str) -> Result<()> {
        check_label(label)?;
        if self.all_slots().iter().any(|s| s.label == label) {
            return Err(Error::Usage(format!(
                "a key labelled '{label}' exists already: choose another label"
            )));
        }
        let n = self.config.slots.len()
            + self.config.client_slots.len()
            + self.config.device_slots.len()
            + self.config.other_slots.len();
        if n >= config::MAX_SLOTS {
            return Err(Error::Usage(format!(
                "a vault holds at most {} keys",
                config::MAX_SLOTS
            )));
        }
        Ok(())
    }

    /// Every slot, vault-wide ones first, for `key list`.
    pub fn all_slots(&self) -> Vec<SlotInfo> {
        let mut out: Vec<SlotInfo> = self
            .config
            .slots
            .iter()
            .map(|s| SlotInfo {
                label: String::from_utf8_lossy(&s.label).into_owned(),
                kind: "passphrase",
                client: None,
                factors: vec!["passphrase"],
                pcrs: Vec::new(),
            })
            .collect();
        out.extend(self.config.client_slots.iter().map(|s| {
            SlotInfo {
                label: String::from_utf8_lossy(&s.label).into_owned(),
                kind: "client-passphrase",
                factors: vec!["passphrase"],
                pcrs: Vec::new(),
                client: Some(
                    self.zones
                        .iter()
                        .find(|z| z.id == s.zone_id)
                        .map_or_else(|| "(a client no longer here)".into(), |z| z.name.clone()),
                ),
            }
        }));
        out.extend(self.config.device_slots.iter().map(|s| {
            use crate::format::hw_slot::Device;
            let (kind, pcrs) = match &s.device {
                Device::Tpm2(t) => ("tpm2", (0..24).filter(|i| t.pcrs & (1 << i) != 0).collect()),
                Device::Fido2(_) => ("fido2", Vec::new()),
            };
            SlotInfo {
                label: String::from_utf8_lossy(&s.label).into_owned(),
                kind,
                client: None,
                factors: super::device_slots::factors(s),
                pcrs,
            }
        }));
        out.extend(self.config.other_slots.iter().map(|s| SlotInfo {
            label: format!("(kind {})", s.kind),
            kind: "unknown",
            client: None,
            factors: Vec::new(),
            pcrs: Vec::new(),
        }));
        out
    }

    /// Removes the client slots of zone `zone_id` (its key changed or is gone: they open
    /// nothing any more). Returns their labels. The caller saves.
    pub fn drop_client_slots_of(&mut self, zone_id: &Id) -> Vec<String> {
        let (gone, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.config.client_slots)
            .into_iter()
            .partition(|s| s.zone_id == *zone_id);
        self.config.client_slots = keep;
        gone.iter()
            .map(|s| String::from_utf8_lossy(&s.label).into_owned())
            .collect()
    }

    /// Removes client slot `label`, if there is one: whether it was.
    pub(super) fn remove_client_slot(&mut self, label: &str) -> bool {
        let before = self.config.client_slots.len();
        self.config
            .client_slots
            .retain(|s| s.label != label.as_bytes());
        before != self.config.client_slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> ClientKeys {
        ClientKeys {
            label: "contractor".into(),
            zone_id: [7; 16],
            zone_key: Key32::from_bytes([8; 32]),
            policy_key: Key32::from_bytes([9; 32]),
            audit_public: [11; 32],
            top_dir_id: [10; 16],
            name: "acme".into(),
            path: "/clients/acme".into(),
        }
    }

    #[test]
    fn the_payload_matches_its_test_vector_and_round_trips() {
        let p = payload(&keys()).unwrap();
        assert_eq!(
            crate::audit::chain::hex(&p),
            crate::format::vectors::CLIENT_SLOT_PAYLOAD_VECTOR
        );
        let back = parse_payload("contractor", [7; 16], &p).unwrap();
        assert_eq!(back.zone_key.as_bytes(), &[8; 32]);
        assert_eq!(
            (back.name.as_str(), back.path.as_str()),
            ("acme", "/clients/acme")
        );
        for cut in 0..p.len() {
            assert!(
                parse_payload("contractor", [7; 16], &p[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_client_slot_opens_with_its_passphrase_only_and_is_bound_to_its_label_and_zone() {
        let pass = Passphrase::new(b"correct horse contractor".to_vec());
        let mut cfg = crate::format::config::tests_sample();
        cfg.client_slots
            .push(make(&keys(), &pass, crate::vault::KDF_TEST).unwrap());
        let k = open_any(&cfg, &pass).unwrap().expect("opens");
        assert_eq!(k.name, "acme");
        let wrong = Passphrase::new(b"another passphrase".to_vec());
        assert!(open_any(&cfg, &wrong).unwrap().is_none());
        // Moved to another zone, or relabelled: it no longer opens.
        let mut moved = cfg.clone();
        moved.client_slots[0].zone_id = [1; 16];
        assert!(open_any(&moved, &pass).unwrap().is_none());
        let mut relabelled = cfg.clone();
        relabelled.client_slots[0].label = b"admin".to_vec();
        assert!(open_any(&relabelled, &pass).unwrap().is_none());
    }
}
