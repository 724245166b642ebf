//! Key slots that need a device (format/hw_slot.rs): a TPM 2.0 (kind 3) or a FIDO2 security
//! key (kind 4), alone (one factor: what the machine or the key holds) or with a passphrase
//! (two factors: the slot's key is HKDF over the device's secret *and* the passphrase's
//! Argon2id key, so neither alone opens anything). The device gives a 32-byte secret: the
//! TPM unseals one it was given at enrolment, the token computes hmac-secret over the slot's
//! salt. That secret and the passphrase key make the key that wraps the master key
//! (`crypto::kdf::device_slot_key`), with aad `tutela/v1/device-slot` ‖ kind ‖ label.
//!
//! Unlocking picks slots in an order that never asks a person for what a machine can do:
//! `--slot LABEL` names one; otherwise TPM slots that need nobody (no PIN, no passphrase) go
//! first, then the passphrase (passphrase slots, then two-factor slots with it), and only a
//! vault with nothing else asks for a PIN or a touch. A failing device never hides another
//! slot: its error is shown and the next is tried; the recovery key always works.

use super::{check_label, Unlock, Vault};
use crate::crypto::kek::{passphrase_kek, KdfParams};
use crate::crypto::secret::{Key32, Passphrase};
use crate::crypto::{self, kdf};
use crate::error::{DeviceFail, Error, Result};
use crate::format::config::{Config, WRAPPED_LEN};
use crate::format::hw_slot::{Device, DeviceSlot, Fido2Cred, PassPart};
use crate::hw;
use zeroize::Zeroizing;

/// The FIDO2 relying party tutela's credentials are made for.
pub const FIDO2_RP: &str = "tutela";

/// Where the devices are: `--tpm2-tcti` and `--fido2-device`.
#[derive(Debug, Clone, Default)]
pub struct DeviceAccess {
    pub tcti: Option<String>,
    pub fido2_device: Option<String>,
}

/// The device of a new slot.
pub enum NewDevice<'a> {
    /// PCRs: bit i = PCR i of the SHA-256 bank.
    Tpm2 {
        pin: Option<&'a [u8]>,
        pcrs: u32,
    },
    Fido2 {
        pin: bool,
    },
}

/// What unlocking may need from a person. Implementations ask at most once for the
/// passphrase (and keep it) and say which slot a PIN is for.
pub trait Ask {
    fn passphrase(&mut self) -> Result<Passphrase>;
    fn pin(&mut self, label: &str) -> Result<Zeroizing<Vec<u8>>>;
}

fn aad(kind: u8, label: &[u8]) -> Vec<u8> {
    let mut a = kdf::LABEL_DEVICE_SLOT.to_vec();
    a.push(kind);
    a.extend_from_slice(label);
    a
}

fn label_of(s: &DeviceSlot) -> String {
    String::from_utf8_lossy(&s.label).into_owned()
}

/// Whether unlocking the slot needs a person (a passphrase, a PIN or a touch).
pub fn needs_person(s: &DeviceSlot) -> bool {
    s.passphrase.is_some()
        || match &s.device {
            Device::Tpm2(t) => t.pin,
            Device::Fido2(_) => true,
        }
}

/// The factors a slot needs, for `key list` and the README's table.
pub fn factors(s: &DeviceSlot) -> Vec<&'static str> {
    let mut f = Vec::new();
    if s.passphrase.is_some() {
        f.push("passphrase");
    }
    match &s.device {
        Device::Tpm2(t) => {
            f.push("tpm2");
            if t.pin {
                f.push("tpm2-pin");
            }
        }
        Device::Fido2(t) => {
            f.push("fido2");
            if t.pin {
                f.push("fido2-pin");
            }
        }
    }
    f
}

/// The device's 32-byte secret for slot `s`.
pub fn device_secret(
    s: &DeviceSlot,
    access: &DeviceAccess,
    ask: &mut dyn Ask,
) -> Result<Zeroizing<[u8; 32]>> {
    match &s.device {
        Device::Tpm2(t) => {
            let pin = if t.pin {
                Some(ask.pin(&label_of(s))?)
            } else {
                None
            };
            hw::tpm2::unseal(
                &hw::tpm2_tcti(access.tcti.as_deref()),
                t,
                pin.as_deref().map(|p| &p[..]),
            )
        }
        Device::Fido2(f) => {
            // Only tutela's own relying party: a config edited to name another site's would
            // have the token answer for that site's credential.
            if f.rp_id != FIDO2_RP {
                return Err(Error::ConfigCorrupt {
                    why: format!(
                        "FIDO2 key slot '{}' names a relying party other than '{FIDO2_RP}'",
                        crate::text::escape(&label_of(s))
                    ),
                });
            }
            hw::fido2::open(access.fido2_device.as_deref())?
                .hmac_secret(&f.rp_id, &f.cred_id, &f.salt, f.pin)
        }
    }
}

fn pass_key(part: &PassPart, pass: &Passphrase) -> Result<Key32> {
    passphrase_kek(
        pass,
        &part.salt,
        KdfParams {
            m_cost_kib: part.m_cost_kib,
            t_cost: part.t_cost,
            lanes: part.lanes,
        },
    )
}

/// Opens slot `s` with its device's secret (and the passphrase of a two-factor slot).
pub fn open_slot(s: &DeviceSlot, secret: &[u8; 32], pass: Option<&Passphrase>) -> Result<Key32> {
    let pk = match (&s.passphrase, pass) {
        (Some(part), Some(p)) => Some(pass_key(part, p)?),
        (Some(_), None) => return Err(Error::WrongPassphrase),
        (None, _) => None,
    };
    let kek = kdf::device_slot_key(s.kind(), &s.label, secret, pk.as_ref());
    let opened = crypto::open_random(kek.as_bytes(), &aad(s.kind(), &s.label), &s.wrapped, "key slot")
        .map_err(|_| {
            if s.passphrase.is_some() {
                Error::WrongPassphrase
            } else {
                Error::ConfigCorrupt {
                    why: format!(
                        "device key slot '{}' does not open with its device's secret (damaged or tampered)",
                        crate::text::escape(&label_of(s))
                    ),
                }
            }
        })?;
    let opened = Zeroizing::new(opened);
    let mut k = [0u8; 32];
    if opened.len() != 32 {
        return Err(Error::ConfigCorrupt {
            why: "a device key slot holds a key of the wrong length".into(),
        });
    }
    k.copy_from_slice(&opened);
    Ok(Key32::from_bytes(k))
}

/// Unlocks with slot `s` alone: asks for what it needs, talks to its device.
pub fn unlock_slot(s: &DeviceSlot, access: &DeviceAccess, ask: &mut dyn Ask) -> Result<Key32> {
    // Both factors are checked together (neither alone tells anything), so ask in the order
    // a person expects: the passphrase, then the PIN or touch.
    let pass = match s.passphrase {
        Some(_) => Some(ask.passphrase()?),
        None => None,
    };
    let secret = device_secret(s, access, ask)?;
    open_slot(s, &secret, pass.as_ref())
}

/// An `Ask` for when nobody is there (a re-wrap, a boot): every question fails.
struct Nobody;

impl Ask for Nobody {
    fn passphrase(&mut self) -> Result<Passphrase> {
        Err(Error::Passphrase(
            "no one is there to give a passphrase".into(),
        ))
    }
    fn pin(&mut self, _: &str) -> Result<Zeroizing<Vec<u8>>> {
        Err(Error::Passphrase("no one is there to give a PIN".into()))
    }
}

/// Wraps `master` in a new device slot.
pub fn make_slot(
    master: &Key32,
    label: &str,
    device: Device,
    secret: &[u8; 32],
    pass: Option<(&Passphrase, KdfParams)>,
) -> Result<DeviceSlot> {
    check_label(label)?;
    let (part, pk) = match pass {
        Some((p, params)) => {
            let mut salt = [0u8; 16];
            crypto::random_bytes(&mut salt)?;
            let part = PassPart {
                m_cost_kib: params.m_cost_kib,
                t_cost: params.t_cost,
                lanes: params.lanes,
                salt,
            };
            let pk = pass_key(&part, p)?;
            (Some(part), Some(pk))
        }
        None => (None, None),
    };
    let mut slot = DeviceSlot {
        label: label.as_bytes().to_vec(),
        passphrase: part,
        device,
        wrapped: [0; WRAPPED_LEN],
    };
    let kek = kdf::device_slot_key(slot.kind(), &slot.label, secret, pk.as_ref());
    let sealed = crypto::seal_random(
        kek.as_bytes(),
        &aad(slot.kind(), &slot.label),
        master.as_bytes(),
    )?;
    slot.wrapped.copy_from_slice(&sealed);
    Ok(slot)
}

/// Makes the device part of a new slot and the secret it gives.
fn enroll(
    label: &str,
    new: &NewDevice,
    access: &DeviceAccess,
) -> Result<(Device, Zeroizing<[u8; 32]>)> {
    match new {
        NewDevice::Tpm2 { pin, pcrs } => {
            let mut secret = Zeroizing::new([0u8; 32]);
            crypto::random_bytes(&mut secret[..])?;
            let sealed =
                hw::tpm2::seal(&hw::tpm2_tcti(access.tcti.as_deref()), &secret, *pin, *pcrs)?;
            Ok((Device::Tpm2(sealed), secret))
        }
        NewDevice::Fido2 { pin } => {
            let token = hw::fido2::open(access.fido2_device.as_deref())?;
            let cred_id = token.enroll(FIDO2_RP, label, *pin)?;
            let mut salt = [0u8; 32];
            crypto::random_bytes(&mut salt)?;
            // The enrolment's touch made the credential; this one proves the token answers
            // hmac-secret for it, before the vault depends on it.
            let secret = token.hmac_secret(FIDO2_RP, &cred_id, &salt, *pin)?;
            let cred = Fido2Cred {
                pin: *pin,
                rp_id: FIDO2_RP.into(),
                cred_id,
                salt,
            };
            Ok((Device::Fido2(cred), secret))
        }
    }
}

impl Vault {
    pub fn device_slot(&self, label: &str) -> Option<&DeviceSlot> {
        self.config
            .device_slots
            .iter()
            .find(|s| s.label == label.as_bytes())
    }

    /// Enrolls a device and adds a slot for it (with `pass`, a two-factor slot).
    pub fn add_device_slot(
        &mut self,
        label: &str,
        new: NewDevice,
        pass: Option<&Passphrase>,
        access: &DeviceAccess,
    ) -> Result<()> {
        self.check_new_label(label)?;
        let (device, secret) = enroll(label, &new, access)?;
        let kdf = self.slot_kdf();
        let slot = make_slot(&self.master, label, device, &secret, pass.map(|p| (p, kdf)))?;
        self.config.device_slots.push(slot);
        self.save()
    }

    /// `passwd` for a two-factor slot: the device gives its secret again (a TPM unseal, a
    /// touch), the passphrase part is made anew.
    pub fn change_device_passphrase(
        &mut self,
        label: &str,
        access: &DeviceAccess,
        ask: &mut dyn Ask,
        new: &Passphrase,
    ) -> Result<()> {
        let i = self
            .config
            .device_slots
            .iter()
            .position(|s| s.label == label.as_bytes())
            .ok_or_else(|| {
                Error::Usage(format!("no key labelled '{label}' (see tutela key list)"))
            })?;
        let s = self.config.device_slots[i].clone();
        if s.passphrase.is_none() {
            return Err(Error::Usage(format!(
                "key '{label}' has no passphrase part (it opens with its device alone): nothing to change"
            )));
        }
        let secret = device_secret(&s, access, ask)?;
        let kdf = self.slot_kdf();
        self.config.device_slots[i] =
            make_slot(&self.master, label, s.device, &secret, Some((new, kdf)))?;
        self.save()
    }

    /// For `rekey --all`, before the master key changes: the secrets of the device slots
    /// that need nobody (a TPM without PIN or passphrase), so they can be re-wrapped; every
    /// other device slot will be dropped. Returns (kept, dropped with the reason).
    pub fn device_slots_for_rekey(
        &self,
        access: &DeviceAccess,
    ) -> (
        Vec<crate::offline::rekey::DeviceSecret>,
        Vec<(String, String)>,
    ) {
        let mut keep = Vec::new();
        let mut drop = Vec::new();
        for s in &self.config.device_slots {
            if needs_person(s) {
                drop.push((
                    label_of(s),
                    "it needs a PIN, a touch or a passphrase".into(),
                ));
                continue;
            }
            match device_secret(s, access, &mut Nobody) {
                Ok(secret) => keep.push((s.clone(), secret)),
                Err(e) => drop.push((label_of(s), format!("{e}"))),
            }
        }
        (keep, drop)
    }

    /// After a new master key is in place: wraps it in the kept device slots again.
    /// Returns their labels.
    pub fn rewrap_device_slots(
        &mut self,
        kept: &[crate::offline::rekey::DeviceSecret],
    ) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for (s, secret) in kept {
            let label = label_of(s);
            let slot = make_slot(&self.master, &label, s.device.clone(), secret, None)?;
            self.config.device_slots.push(slot);
            out.push(label);
        }
        Ok(out)
    }

    pub(super) fn remove_device_slot(&mut self, label: &str) -> bool {
        let before = self.config.device_slots.len();
        self.config
            .device_slots
            .retain(|s| s.label != label.as_bytes());
        before != self.config.device_slots.len()
    }
}

/// How a command wants the vault opened.
pub struct Choice<'a> {
    /// `--slot LABEL`.
    pub slot: Option<&'a str>,
    /// A passphrase file or command was given: the person chose the passphrase route.
    pub passphrase_given: bool,
    pub access: &'a DeviceAccess,
}

/// Picks and opens a slot as the module comment says. Returns what `Vault::unlock` takes:
/// a passphrase (for passphrase and client slots, which the vault opens itself) or the master
/// key a device slot gave. `note` receives a line for each device slot that was tried and
/// failed while another route was left.
pub fn choose(
    config: &Config,
    c: &Choice,
    ask: &mut dyn Ask,
    note: &mut dyn FnMut(String),
) -> Result<Unlock> {
    let devices = &config.device_slots;
    if let Some(label) = c.slot {
        if let Some(s) = devices.iter().find(|s| s.label == label.as_bytes()) {
            let master = unlock_slot(s, c.access, ask)?;
            return Ok(Unlock::Key {
                master,
                slot: None,
                label: label.to_string(),
            });
        }
        let known = config.slots.iter().any(|s| s.label == label.as_bytes())
            || config
                .client_slots
                .iter()
                .any(|s| s.label == label.as_bytes());
        if !known {
            return Err(Error::Usage(format!(
                "no key slot labelled '{}' (see tutela key list)",
                crate::text::escape(label)
            )));
        }
        return Ok(Unlock::Passphrase(ask.passphrase()?));
    }
    if devices.is_empty() {
        return Ok(Unlock::Passphrase(ask.passphrase()?));
    }
    let mut last: Option<Error> = None;
    let mut try_slot =
        |s: &DeviceSlot, ask: &mut dyn Ask, last: &mut Option<Error>| match unlock_slot(
            s, c.access, ask,
        ) {
            Ok(master) => Some(Unlock::Key {
                master,
                slot: None,
                label: label_of(s),
            }),
            Err(e) => {
                note(format!(
                    "key slot '{}' did not open: {e}",
                    crate::text::escape(&label_of(s))
                ));
                *last = Some(e);
                None
            }
        };
    if !c.passphrase_given {
        for s in devices.iter().filter(|s| !needs_person(s)) {
            if let Some(u) = try_slot(s, ask, &mut last) {
                return Ok(u);
            }
        }
    }
    let two_factor: Vec<&DeviceSlot> = devices.iter().filter(|s| s.passphrase.is_some()).collect();
    let by_passphrase =
        !config.slots.is_empty() || !config.client_slots.is_empty() || !two_factor.is_empty();
    if by_passphrase || c.passphrase_given {
        let pass = match ask.passphrase() {
            Ok(p) => p,
            // No terminal to ask on (a boot): the device's own failure says more.
            Err(e @ Error::Passphrase(_)) => return Err(last.unwrap_or(e)),
            Err(e) => return Err(e),
        };
        if two_factor.is_empty() {
            return Ok(Unlock::Passphrase(pass));
        }
        match super::unwrap_any_slot(config, &pass) {
            Ok((master, i)) => {
                return Ok(Unlock::Key {
                    master,
                    slot: Some(i),
                    label: String::from_utf8_lossy(&config.slots[i].label).into_owned(),
                })
            }
            // A client's passphrase: the command says what that means for it.
            Err(Error::ClientKeyOnly { .. }) => return Ok(Unlock::Passphrase(pass)),
            Err(_) => {}
        }
        for s in two_factor {
            if let Some(u) = try_slot(s, ask, &mut last) {
                return Ok(u);
            }
        }
        // A device that failed says more than "wrong passphrase" (which it may not be).
        return Err(match last {
            Some(e @ Error::Device(..)) => e,
            _ if !config.other_slots.is_empty() => {
                Error::WrongPassphraseSkipped(config.other_slots.len())
            }
            _ => Error::WrongPassphrase,
        });
    }
    // Only slots that need a PIN or a touch: try them in order.
    for s in devices.iter().filter(|s| needs_person(s)) {
        if let Some(u) = try_slot(s, ask, &mut last) {
            return Ok(u);
        }
    }
    Err(last.unwrap_or(Error::Device(
        DeviceFail::Missing,
        "no key slot opened".into(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::hw_slot::Tpm2Sealed;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn device_slot_keys_match_format_md_vectors() {
        let dev: [u8; 32] = std::array::from_fn(|i| i as u8);
        let pk = Key32::from_bytes(std::array::from_fn(|i| 32 + i as u8));
        assert_eq!(
            hex(kdf::device_slot_key(3, b"office-server", &dev, None).as_bytes()),
            crate::format::vectors::DEVICE_SLOT_KEY_TPM_VECTOR
        );
        assert_eq!(
            hex(kdf::device_slot_key(4, b"laptop", &dev, Some(&pk)).as_bytes()),
            crate::format::vectors::DEVICE_SLOT_KEY_FIDO2_VECTOR
        );
    }

    fn tpm() -> Device {
        Device::Tpm2(Tpm2Sealed {
            pin: false,
            pcrs: 0,
            public: vec![1],
            private: vec![2],
        })
    }

    #[test]
    fn a_two_factor_slot_opens_with_both_factors_and_with_neither_alone() {
        let master = Key32::from_bytes([9; 32]);
        let pass = Passphrase::new(b"both of them".to_vec());
        let other = Passphrase::new(b"only one".to_vec());
        let s = make_slot(
            &master,
            "laptop",
            tpm(),
            &[5; 32],
            Some((&pass, crate::vault::KDF_TEST)),
        )
        .unwrap();
        let k = open_slot(&s, &[5; 32], Some(&pass)).unwrap();
        assert_eq!(k.as_bytes(), master.as_bytes());
        for (secret, p) in [
            ([5; 32], Some(&other)),
            ([6; 32], Some(&pass)),
            ([5; 32], None),
        ] {
            assert!(matches!(
                open_slot(&s, &secret, p),
                Err(Error::WrongPassphrase)
            ));
        }
        // A one-factor slot: another device's secret is damage (or another device), not a
        // wrong passphrase.
        let s = make_slot(&master, "srv", tpm(), &[5; 32], None).unwrap();
        assert_eq!(
            open_slot(&s, &[5; 32], None).unwrap().as_bytes(),
            master.as_bytes()
        );
        assert!(matches!(
            open_slot(&s, &[6; 32], None),
            Err(Error::ConfigCorrupt { .. })
        ));
        // The label is bound: a slot renamed in the config opens nothing.
        let mut renamed = s.clone();
        renamed.label = b"other".to_vec();
        assert!(open_slot(&renamed, &[5; 32], None).is_err());
    }

    struct NoOne;
    impl Ask for NoOne {
        fn passphrase(&mut self) -> Result<Passphrase> {
            Err(Error::Invalid)
        }
        fn pin(&mut self, _: &str) -> Result<Zeroizing<Vec<u8>>> {
            Err(Error::Invalid)
        }
    }

    /// A config edited to name another site as the relying party never reaches the token.
    #[test]
    fn a_fido2_slot_for_another_relying_party_is_refused_before_the_token_is_asked() {
        let s = DeviceSlot {
            label: b"k".to_vec(),
            passphrase: None,
            device: Device::Fido2(Fido2Cred {
                pin: false,
                rp_id: "bank.example".into(),
                cred_id: vec![1; 32],
                salt: [2; 32],
            }),
            wrapped: [0; WRAPPED_LEN],
        };
        let r = device_secret(&s, &DeviceAccess::default(), &mut NoOne);
        assert!(matches!(r, Err(Error::ConfigCorrupt { .. })));
    }
}
