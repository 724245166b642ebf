//! Vault lifecycle: init, unlock (passphrase or recovery key), config writes. Turns a
//! passphrase into keys; holds the master key and the zone keys of an unlocked vault.

pub mod client_slots;
pub mod device_slots;
mod merge;
pub mod passphrase;

pub(crate) use merge::config_copies;

use crate::crypto::secret::{Key32, Passphrase};
use crate::crypto::{self, kdf, Id};
use crate::error::{Error, Result};
use crate::format::config::{self, Config, ParseError, Slot};
use crate::format::{keystore, recovery, zones};
use crate::sys;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Setting that selects the insecure, fast KDF at init (for tests only; the vault is marked
/// and every unlock warns).
pub const TEST_KDF_ENV: &str = "TUTELA_TEST_INSECURE_KDF";

pub use crate::crypto::kek::{passphrase_kek, KdfParams, KDF_DEFAULT, KDF_TEST};

/// The KDF parameters for a new key slot: the production ones, unless a build with the
/// `test-hooks` feature (the test suite's) is told otherwise.
pub fn kdf_from_env() -> KdfParams {
    #[cfg(feature = "test-hooks")]
    if std::env::var(TEST_KDF_ENV).is_ok_and(|v| v == "1") {
        return KDF_TEST;
    }
    KDF_DEFAULT
}

/// Associated data of a key slot: a fixed label and the slot's label. The vault ID is not in
/// it on purpose: a tampered vault ID then fails the config MAC ("tampered") instead of
/// looking like a wrong passphrase.
fn slot_aad(label: &[u8]) -> Vec<u8> {
    let mut a = b"tutela/v1/slot".to_vec();
    a.extend_from_slice(label);
    a
}

/// Where an unlocked vault keeps its zone table when that is a separate key store.
#[derive(Debug, Clone)]
pub struct KeyStoreRef {
    /// The path recorded at init (kept in the config).
    pub recorded: PathBuf,
    /// The path actually used (the override, or the recorded one).
    pub path: PathBuf,
    /// The generation the config names.
    pub generation: Id,
}

/// An unlocked vault: its config, master key and zones.
pub struct Vault {
    pub dir: PathBuf,
    pub config: Config,
    master: Key32,
    pub zones: Vec<zones::ZoneRecord>,
    /// The key slot whose passphrase unlocked the vault (None for the recovery key).
    pub unlocked_slot: Option<usize>,
    /// What opened the vault, for the audit log: "key 'LABEL'" or "recovery key".
    pub unlocked_by: String,
    pub keystore: Option<KeyStoreRef>,
    /// Keys derived from the master key that saving the zone table and the config needs:
    /// kept apart so that the mount daemon can drop the master key itself (`forget_master`)
    /// and still add, rotate and erase client zones.
    zone_wrap: Key32,
    config_mac_key: Key32,
    /// What opening the vault did about a sync tool's conflict copies of its config, one line
    /// each, for the command to show (`offline::open_vault`).
    pub sync_notes: Vec<String>,
    /// SHA-256 of the config as this process last read or wrote it: a save refuses to
    /// overwrite a config another process changed meanwhile (a command run while the mount
    /// daemon adds a client, say), which would lose that change.
    loaded: [u8; 32],
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

pub enum Unlock {
    Passphrase(Passphrase),
    RecoveryKey(String),
    /// A master key a slot already gave (a device slot, or a passphrase slot tried while
    /// choosing among slots: `device_slots::choose`), with the passphrase slot's index.
    Key {
        master: Key32,
        slot: Option<usize>,
        label: String,
    },
}

impl Vault {
    /// Creates a new vault in `dir` (missing or empty), with its zone keys in the config or,
    /// given `keystore`, in a separate key store file. Returns the vault and the recovery key.
    pub fn create(
        dir: &Path,
        pass: &Passphrase,
        label: &str,
        kdf: KdfParams,
        keystore: Option<&Path>,
    ) -> Result<(Vault, Zeroizing<String>)> {
        let keystore = match keystore {
            Some(p) => Some(new_keystore_path(dir, p)?),
            None => None,
        };
        sys::ensure_empty_dir(dir, 0o777)?;
        let master = Key32::random()?;
        let vault_id = crypto::random_id()?;
        let root_zone = zones::ZoneRecord {
            id: crypto::random_id()?,
            key: Key32::random()?,
            name: String::new(),
            path: "/".into(),
            retiring: None,
            adopting: None,
            meta: zones::ClientMeta::default(),
        };
        let mut config = Config {
            version: config::VERSION,
            flags: if kdf == KDF_TEST {
                config::FLAG_TEST_KDF
            } else {
                0
            } | if keystore.is_some() {
                config::FLAG_KEYSTORE
            } else {
                0
            },
            block_size: crypto::content::BLOCK as u32,
            vault_id,
            root_dir_id: crypto::random_id()?,
            slots: Vec::new(),
            client_slots: Vec::new(),
            device_slots: Vec::new(),
            other_slots: Vec::new(),
            zone_blob: Vec::new(),
            policy: Some(config::PolicyBinding {
                generation: 0,
                digest: [0; 32],
            }),
        };
        config.slots.push(make_slot(&master, label, pass, kdf)?);
        let mut v = Vault {
            dir: dir.to_path_buf(),
            config,
            master,
            zones: vec![root_zone],
            unlocked_slot: Some(0),
            unlocked_by: format!("key '{label}'"),
            keystore: keystore.map(|p| KeyStoreRef {
                recorded: p.clone(),
                path: p,
                generation: [0; 16],
            }),
            loaded: [0; 32],
            zone_wrap: Key32::from_bytes([0; 32]),
            config_mac_key: Key32::from_bytes([0; 32]),
            sync_notes: Vec::new(),
        };
        v.derive_saving_keys();
        v.save()?;
        let rk = recovery::encode(&v.master);
        Ok((v, rk))
    }

    /// Reads and parses the config without unlocking (for version checks and errors).
    pub fn read_config(dir: &Path) -> Result<(Config, Vec<u8>)> {
        let path = dir.join(config::FILE_NAME);
        let bytes = match sys::read_vault_file(&path, MAX_VAULT_FILE, false) {
            Ok(b) => b,
            Err(Error::NotFound | Error::NotDir) => {
                return Err(Error::NotAVault {
                    path: dir.display().to_string(),
                })
            }
            Err(e) => return Err(e),
        };
        let (cfg, _, _) = Config::parse(&bytes).map_err(|e| match e {
            ParseError::NotAConfig => Error::ConfigCorrupt {
                why: "tutela.conf has no tutela header".into(),
            },
            ParseError::UnsupportedVersion(v) => Error::UnsupportedVersion {
                found: v,
                supported: config::VERSION,
            },
            ParseError::Damaged(why) => Error::ConfigCorrupt { why },
        })?;
        Ok((cfg, bytes))
    }

    /// Reads the config again (another process may have changed it), keeping the master
    /// key: for the mount daemon before it changes the vault. Fails if the master key no
    /// longer opens it.
    pub fn reload(&mut self) -> Result<()> {
        let (config, bytes) = Self::read_config(&self.dir)?;
        // The key store stays where this vault found it (the recorded path, or --keystore).
        let keystore_at = self.keystore.as_ref().map(|k| k.path.clone());
        let fresh = Self::open_with(
            &self.dir,
            config,
            &bytes,
            (self.zone_wrap.duplicate(), self.config_mac_key.duplicate()),
            self.master.duplicate(),
            self.unlocked_slot,
            &Unlock::RecoveryKey(String::new()),
            keystore_at.as_deref(),
        )?;
        let by = std::mem::take(&mut self.unlocked_by);
        *self = fresh;
        self.unlocked_by = by;
        Ok(())
    }

    fn derive_saving_keys(&mut self) {
        self.zone_wrap = kdf::zone_wrap_key(&self.master, &self.config.vault_id);
        self.config_mac_key = kdf::config_mac_key(&self.master, &self.config.vault_id);
    }

    /// Drops the master key, keeping what saving zones needs (the mount daemon: it never
    /// holds the key that opens every passphrase slot). Whatever else would derive from the
    /// master key afterwards derives from a random key instead, and opens nothing.
    pub fn forget_master(&mut self) -> Result<()> {
        self.master = Key32::random()?;
        Ok(())
    }

    /// Unlocks the vault in `dir`. A wrong passphrase changes nothing. Not for commands:
    /// they open a vault with `offline::open_vault`, which also settles what an interrupted
    /// `rekey --all` left.
    /// `keystore_at`: where the key store is, instead of the path the vault recorded
    /// (`--keystore PATH`, after moving it to another disk).
    pub(crate) fn unlock(dir: &Path, how: &Unlock, keystore_at: Option<&Path>) -> Result<Vault> {
        let (config, bytes) = Self::read_config(dir)?;
        let (master, unlocked_slot) = match how {
            Unlock::Passphrase(p) => {
                let (k, i) = unwrap_any_slot(&config, p)?;
                (k, Some(i))
            }
            Unlock::RecoveryKey(text) => (
                recovery::decode(text)
                    .map_err(|why| Error::Passphrase(format!("recovery key: {why}")))?,
                None,
            ),
            Unlock::Key { master, slot, .. } => (master.duplicate(), *slot),
        };
        let by = match (how, unlocked_slot) {
            (Unlock::Key { label, .. }, _) => format!("key '{label}'"),
            (_, Some(i)) => format!("key '{}'", String::from_utf8_lossy(&config.slots[i].label)),
            _ => "recovery key".to_string(),
        };
        let keys = (
            kdf::zone_wrap_key(&master, &config.vault_id),
            kdf::config_mac_key(&master, &config.vault_id),
        );
        Self::open_with(
            dir,
            config,
            &bytes,
            keys,
            master,
            unlocked_slot,
            how,
            keystore_at,
        )
        .map(|mut v| {
            v.unlocked_by = by;
            v
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn open_with(
        dir: &Path,
        config: Config,
        bytes: &[u8],
        (zwk, cmk): (Key32, Key32),
        master: Key32,
        unlocked_slot: Option<usize>,
        how: &Unlock,
        keystore_at: Option<&Path>,
    ) -> Result<Vault> {
        // Check the MAC: a wrong recovery key or a tampered config fails here.
        let (_, unsigned, mac) = Config::parse(bytes).map_err(|_| Error::ConfigCorrupt {
            why: "unparsable".into(),
        })?;
        let mut m = Hmac::<Sha256>::new_from_slice(cmk.as_bytes()).map_err(|_| Error::Invalid)?;
        m.update(unsigned);
        if m.verify_slice(&mac).is_err() {
            return Err(match how {
                Unlock::RecoveryKey(_) => Error::WrongPassphrase,
                Unlock::Passphrase(_) | Unlock::Key { .. } => Error::ConfigCorrupt {
                    why: "the config's authentication code does not match (tampered or damaged)"
                        .into(),
                },
            });
        }
        let (sealed, aad, keystore) = if config.flags & config::FLAG_KEYSTORE != 0 {
            let mut r = open_keystore_ref(&zwk, &config, keystore_at)?;
            let store = read_keystore(&r.path, &config.vault_id)?;
            let aad_of = |g: &Id| {
                let mut aad = zone_aad(&config.vault_id);
                aad.extend_from_slice(g);
                aad
            };
            if store.find(&r.generation).is_none() {
                // A config restored from a backup names a generation the store has moved
                // past: the store's newest table that this master key opens is the truth
                // (minus any zone shredded since).
                let newest = store.generations.iter().rev().find(|(g, b)| {
                    crypto::open_random(zwk.as_bytes(), &aad_of(g), b, "zone table").is_ok()
                });
                match newest {
                    Some((g, _)) => {
                        log::warn!("the config names an older key store generation; using the store's current one");
                        r.generation = *g;
                    }
                    None => {
                        return Err(Error::KeyStore(format!(
                            "{} holds no keys this config can open (it belongs to a later key rotation, or to another copy of the vault)",
                            r.path.display()
                        )))
                    }
                }
            }
            let blob = store.find(&r.generation).unwrap_or_default();
            (blob.to_vec(), aad_of(&r.generation), Some(r))
        } else {
            (config.zone_blob.clone(), zone_aad(&config.vault_id), None)
        };
        let plain = Zeroizing::new(
            crypto::open_random(zwk.as_bytes(), &aad, &sealed, "zone table").map_err(|_| {
                Error::ConfigCorrupt {
                    why: "zone table does not authenticate".into(),
                }
            })?,
        );
        let zones = zones::parse(&plain).map_err(|why| Error::ConfigCorrupt { why })?;
        Ok(Vault {
            dir: dir.to_path_buf(),
            config,
            master,
            zones,
            unlocked_slot,
            unlocked_by: String::new(),
            keystore,
            loaded: sha256(bytes),
            zone_wrap: zwk,
            config_mac_key: cmk,
            sync_notes: Vec::new(),
        })
    }

    /// Gives the vault a fresh master key (rekey --all). Every passphrase slot wraps the old
    /// key and no passphrase but `pass` is known here, so the slots are replaced by one for
    /// `pass` under `label`; returns the new recovery key. Takes effect at the next save.
    pub fn rotate_master(&mut self, label: &str, pass: &Passphrase) -> Result<Zeroizing<String>> {
        let master = Key32::random()?;
        let slot = make_slot(&master, label, pass, self.slot_kdf())?;
        self.master = master;
        // Every zone gets a new key too: a client slot would open nothing. Device slots wrap
        // the old master key: the caller re-wraps those it can (`rewrap_device_slots`).
        self.config.client_slots.clear();
        self.config.device_slots.clear();
        self.derive_saving_keys();
        self.config.slots = vec![slot];
        self.unlocked_slot = Some(0);
        Ok(recovery::encode(&self.master))
    }

    /// Zones with a rekey under way.
    pub fn rekey_pending(&self) -> Vec<String> {
        self.zones
            .iter()
            .filter(|z| z.retiring.is_some())
            .map(|z| {
                if z.path == "/" {
                    "(vault root)".to_string()
                } else {
                    z.name.clone()
                }
            })
            .collect()
    }

    /// KDF settings for new slots: the same class as the vault's existing ones.
    fn slot_kdf(&self) -> KdfParams {
        if self.uses_test_kdf() {
            KDF_TEST
        } else {
            KDF_DEFAULT
        }
    }

    pub fn slot_labels(&self) -> Vec<String> {
        self.config
            .slots
            .iter()
            .map(|s| String::from_utf8_lossy(&s.label).into_owned())
            .collect()
    }

    fn slot_index(&self, label: &str) -> Option<usize> {
        self.config
            .slots
            .iter()
            .position(|s| s.label == label.as_bytes())
    }

    /// Adds a passphrase slot. The config is rewritten atomically.
    pub fn add_slot(&mut self, label: &str, pass: &Passphrase) -> Result<()> {
        self.check_new_label(label)?;
        let slot = make_slot(&self.master, label, pass, self.slot_kdf())?;
        self.config.slots.push(slot);
        self.save()
    }

    /// Removes a passphrase slot; the last one cannot go (nothing would open the vault but
    /// the recovery key).
    pub fn remove_slot(&mut self, label: &str) -> Result<()> {
        if self.slot_index(label).is_none() && self.remove_client_slot(label) {
            return self.save();
        }
        // Whatever the device slot's state (its TPM gone, its token lost), it can go, as long
        // as another slot still opens the whole vault.
        let vault_wide = self.config.slots.len() + self.config.device_slots.len();
        if self.device_slot(label).is_some() {
            if vault_wide == 1 {
                return Err(Error::Usage(
                    "that is the vault's only key slot: add another before removing it".into(),
                ));
            }
            self.remove_device_slot(label);
            return self.save();
        }
        let i = self.slot_index(label).ok_or_else(|| {
            Error::Usage(format!("no key labelled '{label}' (see tutela key list)"))
        })?;
        if vault_wide == 1 {
            return Err(Error::Usage(
                "that is the vault's only passphrase: add another before removing it".into(),
            ));
        }
        self.config.slots.remove(i);
        self.save()
    }

    /// Replaces the passphrase of slot `label` (or of the slot that unlocked the vault).
    pub fn change_passphrase(&mut self, label: Option<&str>, pass: &Passphrase) -> Result<String> {
        let i = match (label, self.unlocked_slot) {
            (Some(l), _) => self.slot_index(l).ok_or_else(|| {
                Error::Usage(format!("no key labelled '{l}' (see tutela key list)"))
            })?,
            (None, Some(i)) => i,
            (None, None) if self.config.slots.len() == 1 => 0,
            (None, None) => {
                return Err(Error::Usage(
                    "the vault has several passphrases: say which with --label".into(),
                ))
            }
        };
        let label = String::from_utf8_lossy(&self.config.slots[i].label).into_owned();
        self.config.slots[i] = make_slot(&self.master, &label, pass, self.slot_kdf())?;
        self.save()?;
        Ok(label)
    }

    /// The key that opens the zone table (for `tutela unlock`, which hands it to the mount
    /// daemon sealed under the control key).
    pub fn zone_wrap_key(&self) -> Key32 {
        self.zone_wrap.duplicate()
    }

    /// The keys `save` and `reload` use (to put them back after a failed change).
    pub fn saving_keys(&self) -> (Key32, Key32) {
        (self.zone_wrap.duplicate(), self.config_mac_key.duplicate())
    }

    pub fn set_saving_keys(&mut self, (zone_wrap, config_mac): (Key32, Key32)) {
        self.zone_wrap = zone_wrap;
        self.config_mac_key = config_mac;
    }

    /// Takes a master key made elsewhere (by the command, for a live `rekey --all`) with the
    /// one key slot that wraps it (and the device slots the command re-wrapped): as
    /// `rotate_master`, without the passphrase.
    pub fn install_master(
        &mut self,
        master: Key32,
        slot: config::Slot,
        devices: Vec<crate::format::hw_slot::DeviceSlot>,
    ) {
        self.master = master;
        self.derive_saving_keys();
        self.config.slots = vec![slot];
        self.config.client_slots.clear();
        self.config.device_slots = devices;
        self.unlocked_slot = Some(0);
    }

    pub fn master(&self) -> &Key32 {
        &self.master
    }

    pub fn policy_key(&self) -> Key32 {
        kdf::policy_key(&self.master, &self.config.vault_id)
    }

    /// The seed of the vault's report-signing key (`crypto::sign`).
    pub fn report_seed(&self) -> Key32 {
        kdf::report_sign_seed(&self.master, &self.config.vault_id)
    }

    pub fn audit_keys(&self) -> crate::audit::Keys {
        crate::audit::Keys::derive(&self.master, &self.config.vault_id)
    }

    pub fn uses_test_kdf(&self) -> bool {
        self.config.flags & config::FLAG_TEST_KDF != 0
    }

    /// Seals the zone table, signs the config and writes it atomically (temp file, fsync,
    /// rename, fsync directory): a crash leaves the old or the new config, never a mix.
    /// With a key store the table goes there as a new generation first, the config naming it
    /// second, and the old generation is dropped last (format/keystore.rs).
    pub fn save(&mut self) -> Result<()> {
        let zwk = self.zone_wrap.duplicate();
        let plain = zones::encode(&self.zones).map_err(Error::Usage)?;
        let vid = self.config.vault_id;
        let Some(ks) = self.keystore.clone() else {
            self.config.zone_blob = crypto::seal_random(zwk.as_bytes(), &zone_aad(&vid), &plain)?;
            return self.write_config();
        };
        let generation = crypto::random_id()?;
        let mut aad = zone_aad(&vid);
        aad.extend_from_slice(&generation);
        let sealed = crypto::seal_random(zwk.as_bytes(), &aad, &plain)?;
        let mut store = match read_keystore(&ks.path, &vid) {
            Ok(s) => s,
            Err(_) => keystore::KeyStore {
                vault_id: vid,
                generations: Vec::new(),
            },
        };
        store.generations.retain(|(g, _)| *g == ks.generation);
        store.generations.push((generation, sealed.clone()));
        write_keystore(&ks.path, &store)?;
        self.config.zone_blob = crypto::seal_random(
            zwk.as_bytes(),
            &keystore_ref_aad(&vid),
            &keystore::encode_ref(&generation, ks.recorded.as_os_str().as_bytes()),
        )?;
        self.write_config()?;
        if let Some(k) = self.keystore.as_mut() {
            k.generation = generation;
        }
        store.generations = vec![(generation, sealed)];
        write_keystore(&ks.path, &store)
    }

    /// The stored policy, as the config expects it (`store::read_bound`).
    pub fn read_policy(&self) -> Result<Option<String>> {
        crate::policy::store::read_bound(
            &self.dir,
            &self.policy_key(),
            &self.config.vault_id,
            self.config.policy,
        )
    }

    /// Stores `text` as the policy and binds the config to it. The file is written first: a
    /// crash before the config follows leaves a file the config does not expect, which no
    /// mount accepts until the policy is set again (never a weaker fence).
    pub fn store_policy(&mut self, text: &str) -> Result<()> {
        let bytes = crate::policy::store::seal(&self.policy_key(), &self.config.vault_id, text)?;
        sys::write_atomic(&self.dir, crate::policy::store::FILE_NAME, &bytes, 0o600)?;
        self.bind_policy(Some(crate::policy::store::digest(&bytes)));
        self.save()
    }

    /// Drops the policy: the config first (so it no longer expects one), then the file.
    pub fn clear_policy(&mut self) -> Result<()> {
        self.bind_policy(None);
        self.save()?;
        match std::fs::remove_file(self.dir.join(crate::policy::store::FILE_NAME)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Io(e)),
        }
    }

    /// Records (from the next save on) that the policy file's bytes have `digest`, or that
    /// there is no policy; the generation only goes up.
    pub fn bind_policy(&mut self, digest: Option<[u8; 32]>) {
        let generation = self.config.policy.map_or(0, |p| p.generation) + 1;
        self.config.policy = Some(config::PolicyBinding {
            generation,
            digest: digest.unwrap_or([0; 32]),
        });
    }

    /// A version 1 config is written as version 2, bound to the policy file it has now (if
    /// that opens under this vault's key): the binding starts from what was trusted before.
    fn upgrade_config(&mut self) {
        if self.config.version != config::VERSION_1 {
            return;
        }
        let bound = sys::read_vault_file(
            &self.dir.join(crate::policy::store::FILE_NAME),
            4 << 20,
            false,
        )
        .ok()
        .filter(|b| {
            crate::policy::store::open(&self.policy_key(), &self.config.vault_id, b).is_ok()
        })
        .map(|b| crate::policy::store::digest(&b));
        self.config.version = config::VERSION;
        self.config.policy = None;
        self.bind_policy(bound);
    }

    /// The key that authenticates the config, for a daemon that re-reads it
    /// (`read_policy_binding`).
    pub fn control_key(&self) -> Key32 {
        kdf::control_key(&self.master, &self.config.vault_id)
    }

    pub fn config_key(&self) -> Key32 {
        self.config_mac_key.duplicate()
    }

    /// The policy binding of the config in `dir`, if the config authenticates under `key`.
    pub fn read_policy_binding(dir: &Path, key: &Key32) -> Result<Option<config::PolicyBinding>> {
        let (cfg, bytes) = Self::read_config(dir)?;
        let (_, unsigned, mac) = Config::parse(&bytes).map_err(|_| Error::ConfigCorrupt {
            why: "unparsable".into(),
        })?;
        let mut m = Hmac::<Sha256>::new_from_slice(key.as_bytes()).map_err(|_| Error::Invalid)?;
        m.update(unsigned);
        m.verify_slice(&mac).map_err(|_| Error::ConfigCorrupt {
            why: "the config's authentication code does not match (tampered or damaged)".into(),
        })?;
        Ok(cfg.policy)
    }

    fn write_config(&mut self) -> Result<()> {
        self.upgrade_config();
        let mut bytes = self.config.encode_unsigned().map_err(Error::Usage)?;
        let mut m = Hmac::<Sha256>::new_from_slice(self.config_mac_key.as_bytes())
            .map_err(|_| Error::Invalid)?;
        m.update(&bytes);
        bytes.extend_from_slice(&m.finalize().into_bytes());
        // Compare and write under a lock on the vault directory, so that two processes
        // cannot both pass the comparison.
        let dir = std::fs::File::open(&self.dir)?;
        sys::lock_exclusive(&dir)?;
        match sys::read_vault_file(&self.dir.join(config::FILE_NAME), MAX_VAULT_FILE, false) {
            Ok(now) if sha256(&now) != self.loaded => {
                return Err(Error::Busy(
                    "the vault's config was changed by another command (or by the mount \
                     daemon) after this one read it: nothing was written; run the command again"
                        .into(),
                ))
            }
            Ok(_) | Err(Error::NotFound) => {}
            Err(e) => return Err(e),
        }
        sys::write_atomic(&self.dir, config::FILE_NAME, &bytes, 0o600)?;
        self.loaded = sha256(&bytes);
        Ok(())
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    Sha256::digest(bytes).into()
}

fn keystore_ref_aad(vault_id: &Id) -> Vec<u8> {
    let mut a = vault_id.to_vec();
    a.extend_from_slice(b"keystore");
    a
}

/// The absolute path a new key store goes to: outside the vault, not existing yet.
fn new_keystore_path(vault: &Path, p: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(p).map_err(Error::Io)?;
    let vabs = std::path::absolute(vault).map_err(Error::Io)?;
    if abs.starts_with(&vabs) {
        return Err(Error::Usage(format!(
            "the key store {} is inside the vault directory: put it elsewhere (another disk, a USB key), or leave out --keystore",
            abs.display()
        )));
    }
    if abs.exists() {
        return Err(Error::Usage(format!(
            "{} exists already: a new key store needs a new file",
            abs.display()
        )));
    }
    match abs.parent() {
        Some(d) if d.is_dir() => Ok(abs),
        _ => Err(Error::Usage(format!(
            "the folder for the key store {} does not exist",
            abs.display()
        ))),
    }
}

fn open_keystore_ref(zwk: &Key32, config: &Config, over: Option<&Path>) -> Result<KeyStoreRef> {
    let plain = crypto::open_random(
        zwk.as_bytes(),
        &keystore_ref_aad(&config.vault_id),
        &config.zone_blob,
        "key store reference",
    )
    .map_err(|_| Error::ConfigCorrupt {
        why: "the key store reference does not authenticate".into(),
    })?;
    let (generation, path) =
        keystore::parse_ref(&plain).map_err(|why| Error::ConfigCorrupt { why })?;
    let recorded = PathBuf::from(std::ffi::OsStr::from_bytes(&path));
    let path = over.map_or_else(|| recorded.clone(), Path::to_path_buf);
    Ok(KeyStoreRef {
        recorded,
        path,
        generation,
    })
}

/// Far above any config or key store tutela writes (a few KiB each).
const MAX_VAULT_FILE: u64 = 4 << 20;

fn read_keystore(path: &Path, vault_id: &Id) -> Result<keystore::KeyStore> {
    // The key store's path is the user's to choose (another disk): a symlink there is theirs.
    let bytes = sys::read_vault_file(path, MAX_VAULT_FILE, true).map_err(|e| match e {
        Error::UnsafeFile(why) => Error::UnsafeFile(why),
        e => Error::KeyStore(format!(
            "cannot read {}: {e} (the vault keeps its keys there; attach the disk that holds it, or give --keystore PATH)",
            path.display()
        )),
    })?;
    let store = keystore::KeyStore::parse(&bytes)
        .map_err(|why| Error::KeyStore(format!("{}: {why}", path.display())))?;
    if &store.vault_id != vault_id {
        return Err(Error::KeyStore(format!(
            "{} belongs to another vault",
            path.display()
        )));
    }
    Ok(store)
}

fn write_keystore(path: &Path, store: &keystore::KeyStore) -> Result<()> {
    // The key store's path is the user's to choose, a symlink to another disk included (as
    // when it is read): the write replaces the file the link leads to, never the link.
    let resolved = std::fs::canonicalize(path).ok();
    let path = resolved.as_deref().unwrap_or(path);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Err(Error::KeyStore(format!(
            "{} is not a usable file path",
            path.display()
        )));
    };
    sys::write_atomic(dir, name, &store.encode().map_err(Error::Usage)?, 0o600)
}

fn zone_aad(vault_id: &Id) -> Vec<u8> {
    let mut a = vault_id.to_vec();
    a.extend_from_slice(b"zones");
    a
}

#[cfg(test)]
fn config_mac(master: &Key32, vault_id: &Id) -> Result<Hmac<Sha256>> {
    let k = kdf::config_mac_key(master, vault_id);
    Hmac::<Sha256>::new_from_slice(k.as_bytes()).map_err(|_| Error::Invalid)
}

/// A label is printed by `key list` and in audit records: 1 to 255 bytes (its field in the
/// config is one byte long), no control characters.
pub fn check_label(label: &str) -> Result<()> {
    if label.is_empty() {
        return Err(Error::Usage("a key label may not be empty".into()));
    }
    if label.len() > 255 {
        return Err(Error::Usage(format!(
            "a key label is at most 255 bytes (this one has {})",
            label.len()
        )));
    }
    if label.chars().any(char::is_control) {
        return Err(Error::Usage(
            "a key label may not contain control characters (newlines, tabs, escapes)".into(),
        ));
    }
    Ok(())
}

pub fn make_slot(master: &Key32, label: &str, pass: &Passphrase, kdf: KdfParams) -> Result<Slot> {
    check_label(label)?;
    let mut salt = [0u8; config::SALT_LEN];
    crypto::random_bytes(&mut salt)?;
    let kek = passphrase_kek(pass, &salt, kdf)?;
    let sealed = crypto::seal_random(
        kek.as_bytes(),
        &slot_aad(label.as_bytes()),
        master.as_bytes(),
    )?;
    let mut wrapped = [0u8; config::WRAPPED_LEN];
    wrapped.copy_from_slice(&sealed);
    Ok(Slot {
        kind: config::SLOT_KIND_PASSPHRASE,
        label: label.as_bytes().to_vec(),
        m_cost_kib: kdf.m_cost_kib,
        t_cost: kdf.t_cost,
        lanes: kdf.lanes,
        salt,
        wrapped,
    })
}

pub(crate) fn unwrap_any_slot(config: &Config, pass: &Passphrase) -> Result<(Key32, usize)> {
    for (i, slot) in config.slots.iter().enumerate() {
        let p = KdfParams {
            m_cost_kib: slot.m_cost_kib,
            t_cost: slot.t_cost,
            lanes: slot.lanes,
        };
        let kek = passphrase_kek(pass, &slot.salt, p)?;
        if let Ok(mk) = crypto::open_random(
            kek.as_bytes(),
            &slot_aad(&slot.label),
            &slot.wrapped,
            "key slot",
        ) {
            let mut k = [0u8; 32];
            if mk.len() == 32 {
                k.copy_from_slice(&mk);
                let mut mk = mk;
                zeroize::Zeroize::zeroize(&mut mk);
                return Ok((Key32::from_bytes(k), i));
            }
        }
    }
    // A contractor's passphrase opens one client's keys, not the vault: say so, rather than
    // call it wrong.
    if let Some(k) = client_slots::open_any(config, pass)? {
        return Err(Error::ClientKeyOnly {
            label: k.label,
            client: k.name,
        });
    }
    if !config.other_slots.is_empty() {
        return Err(Error::WrongPassphraseSkipped(config.other_slots.len()));
    }
    Err(Error::WrongPassphrase)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(s: &str) -> Passphrase {
        Passphrase::new(s.as_bytes().to_vec())
    }

    #[test]
    fn create_unlock_and_refuse_wrong_passphrase() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("v");
        let (v, rk) = Vault::create(&dir, &pass("pw"), "default", KDF_TEST, None).unwrap();
        let before = std::fs::read(dir.join("tutela.conf")).unwrap();
        let u = Vault::unlock(&dir, &Unlock::Passphrase(pass("pw")), None).unwrap();
        assert_eq!(u.master().as_bytes(), v.master().as_bytes());
        assert_eq!(u.zones.len(), 1);
        assert!(matches!(
            Vault::unlock(&dir, &Unlock::Passphrase(pass("nope")), None),
            Err(Error::WrongPassphrase)
        ));
        assert_eq!(std::fs::read(dir.join("tutela.conf")).unwrap(), before);
        let r = Vault::unlock(&dir, &Unlock::RecoveryKey(rk.to_string()), None).unwrap();
        assert_eq!(r.master().as_bytes(), v.master().as_bytes());
    }

    /// A vault written before the policy binding (config version 1) keeps its policy, and its
    /// first rewrite binds the config to the policy file it has then.
    #[test]
    fn a_version_1_config_is_bound_to_its_policy_on_the_first_rewrite() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("v");
        let (mut v, _) = Vault::create(&dir, &pass("pw"), "default", KDF_TEST, None).unwrap();
        let sealed = crate::policy::store::seal(&v.policy_key(), &v.config.vault_id, "x").unwrap();
        sys::write_atomic(&dir, crate::policy::store::FILE_NAME, &sealed, 0o600).unwrap();
        // Write the config as version 1 would have.
        v.config.version = config::VERSION_1;
        v.config.policy = None;
        let mut bytes = v.config.encode_unsigned().unwrap();
        let mut m = config_mac(&v.master, &v.config.vault_id).unwrap();
        m.update(&bytes);
        bytes.extend_from_slice(&m.finalize().into_bytes());
        sys::write_atomic(&dir, config::FILE_NAME, &bytes, 0o600).unwrap();

        let mut old = Vault::unlock(&dir, &Unlock::Passphrase(pass("pw")), None).unwrap();
        assert_eq!(old.config.version, config::VERSION_1);
        assert_eq!(old.read_policy().unwrap().as_deref(), Some("x"));
        old.add_slot("second", &pass("pw2")).unwrap();
        let new = Vault::unlock(&dir, &Unlock::Passphrase(pass("pw")), None).unwrap();
        assert_eq!(new.config.version, config::VERSION);
        let b = new.config.policy.unwrap();
        assert_eq!(b.generation, 1);
        assert_eq!(b.digest, crate::policy::store::digest(&sealed));
        assert_eq!(new.read_policy().unwrap().as_deref(), Some("x"));
        std::fs::remove_file(dir.join(crate::policy::store::FILE_NAME)).unwrap();
        assert!(matches!(new.read_policy(), Err(Error::PolicyInvalid(_))));
        assert_eq!(
            Vault::read_policy_binding(&dir, &new.config_key()).unwrap(),
            Some(b)
        );
    }

    #[test]
    fn tampered_config_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("v");
        Vault::create(&dir, &pass("pw"), "default", KDF_TEST, None).unwrap();
        let p = dir.join("tutela.conf");
        let mut b = std::fs::read(&p).unwrap();
        // Flip a bit of the root dir id (authenticated only by the MAC).
        b[30] ^= 1;
        std::fs::write(&p, &b).unwrap();
        assert!(matches!(
            Vault::unlock(&dir, &Unlock::Passphrase(pass("pw")), None),
            Err(Error::ConfigCorrupt { .. })
        ));
    }

    #[test]
    fn init_refuses_non_empty_dir() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("x"), b"x").unwrap();
        assert!(matches!(
            Vault::create(t.path(), &pass("pw"), "default", KDF_TEST, None),
            Err(Error::VaultDirNotEmpty { .. })
        ));
    }
}
