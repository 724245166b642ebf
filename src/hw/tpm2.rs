//! A secret sealed to this machine's TPM 2.0, through the TPM Software Stack (tss-esapi over
//! libtss2's ESAPI). The secret lives in a keyed-hash object under a storage primary key
//! made from the owner hierarchy's seed with a fixed template (the same key every time, never
//! stored): the object's blobs are useless on another TPM. Optional bindings: a PIN (the
//! object's auth value, so wrong guesses count towards the TPM's dictionary-attack lockout)
//! and SHA-256 PCRs (PolicyPCR, so a firmware or Secure Boot change stops the unseal).
//! Every command runs in a session salted with the primary key and encrypting its
//! parameters: the PIN and the secret never cross the bus in clear.

use crate::error::{DeviceFail, Error, Result};
use std::str::FromStr;
use tss_esapi::attributes::{ObjectAttributesBuilder, SessionAttributesBuilder};
use tss_esapi::constants::response_code::Tss2ResponseCodeKind as Rc;
use tss_esapi::constants::SessionType;
use tss_esapi::handles::KeyHandle;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Auth, Digest, EccPoint, KeyedHashScheme, PcrSelectionList, PcrSelectionListBuilder, PcrSlot,
    Private, Public, PublicBuilder, PublicEccParametersBuilder, PublicKeyedHashParameters,
    SensitiveData, SymmetricDefinition, SymmetricDefinitionObject,
};
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::{Context, TctiNameConf};
use zeroize::Zeroizing;

use crate::format::hw_slot::Tpm2Sealed;

/// Seals `secret` to the TPM reached through `tcti`.
pub fn seal(tcti: &str, secret: &[u8; 32], pin: Option<&[u8]>, pcrs: u32) -> Result<Tpm2Sealed> {
    let mut ctx = open(tcti)?;
    let primary = primary(&mut ctx)?;
    let policy = trial_policy(&mut ctx, primary, pin.is_some(), pcrs)?;
    let attrs = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        // Without a PIN there is nothing to guess: keep such objects out of the lockout count.
        .with_no_da(pin.is_none())
        .with_user_with_auth(policy.is_none())
        .build()
        .map_err(tpm_err)?;
    let public = PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attrs)
        .with_auth_policy(policy.unwrap_or_default())
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()
        .map_err(tpm_err)?;
    let auth = pin.map(pin_auth).transpose()?;
    let data = SensitiveData::try_from(secret.to_vec()).map_err(tpm_err)?;
    let session = salted_session(&mut ctx, primary, SessionType::Hmac)?;
    let made = ctx
        .execute_with_session(Some(session), |c| {
            c.create(primary, public, auth, Some(data), None, None)
        })
        .map_err(tpm_err)?;
    flush(&mut ctx, session, primary);
    Ok(Tpm2Sealed {
        pin: pin.is_some(),
        pcrs,
        public: made.out_public.marshall().map_err(tpm_err)?,
        private: made.out_private.value().to_vec(),
    })
}

/// Unseals a slot's secret. Errors say which of the documented failures it was.
pub fn unseal(tcti: &str, s: &Tpm2Sealed, pin: Option<&[u8]>) -> Result<Zeroizing<[u8; 32]>> {
    if s.pin && pin.is_none() {
        return Err(Error::Device(
            DeviceFail::WrongPin,
            "this TPM slot needs its PIN".into(),
        ));
    }
    let mut ctx = open(tcti)?;
    let primary = primary(&mut ctx)?;
    let public = Public::unmarshall(&s.public).map_err(|_| damaged())?;
    let private = Private::try_from(s.private.clone()).map_err(|_| damaged())?;
    let session = salted_session(&mut ctx, primary, SessionType::Hmac)?;
    let loaded = ctx.execute_with_session(Some(session), |c| c.load(primary, private, public));
    flush_session(&mut ctx, session);
    let object = loaded.map_err(|e| match rc(&e) {
        // The blobs were wrapped under another TPM's (or an earlier owner's) storage key.
        Some(Rc::Integrity | Rc::Size | Rc::Value | Rc::Key | Rc::Binding) => Error::Device(
            DeviceFail::OtherDevice,
            "the TPM slot was sealed by another machine's TPM (or this TPM was cleared since): unlock another way and enroll it again".into(),
        ),
        _ => tpm_err(e),
    })?;
    let auth = match pin {
        Some(p) if s.pin => pin_auth(p)?,
        _ => Auth::default(),
    };
    ctx.tr_set_auth(object.into(), auth).map_err(tpm_err)?;
    let result = if s.pin || s.pcrs != 0 {
        let session = salted_session(&mut ctx, primary, SessionType::Policy)?;
        let r = PolicySession::try_from(session)
            .map_err(tpm_err)
            .and_then(|ps| apply_policy(&mut ctx, ps, s.pin, s.pcrs))
            .and_then(|_| {
                ctx.execute_with_session(Some(session), |c| c.unseal(object.into()))
                    .map_err(unseal_err)
            });
        flush_session(&mut ctx, session);
        r
    } else {
        let session = salted_session(&mut ctx, primary, SessionType::Hmac)?;
        let r = ctx
            .execute_with_session(Some(session), |c| c.unseal(object.into()))
            .map_err(unseal_err);
        flush_session(&mut ctx, session);
        r
    };
    let _ = ctx.flush_context(object.into());
    let _ = ctx.flush_context(primary.into());
    let data = result?;
    let bytes = Zeroizing::new(data.value().to_vec());
    if bytes.len() != 32 {
        return Err(damaged());
    }
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&bytes);
    Ok(out)
}

fn open(tcti: &str) -> Result<Context> {
    // libtss2 logs every failure it returns to stderr on its own; tutela reports them itself.
    // Its logging setting is read from the environment when the library starts.
    if std::env::var_os("TSS2_LOG").is_none() {
        std::env::set_var("TSS2_LOG", "all+NONE");
    }
    let conf = TctiNameConf::from_str(tcti).map_err(|_| {
        Error::Usage(format!(
            "TPM TCTI '{tcti}' is not of the form device:PATH, swtpm:host=H,port=P, tabrmd: or mssim:..."
        ))
    })?;
    Context::new(conf).map_err(|e| {
        Error::Device(
            DeviceFail::Missing,
            format!(
                "no TPM at '{tcti}' ({e}): this machine has no TPM 2.0 (or no /dev/tpmrm0 access: run as root or join the tss group), or give its TCTI with --tpm2-tcti"
            ),
        )
    })
}

/// The storage primary key: ECC P-256, AES-128-CFB for its children, from the owner seed.
/// Made on each use from the same template, so nothing about it is stored.
fn primary(ctx: &mut Context) -> Result<KeyHandle> {
    let attrs = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_decrypt(true)
        .with_restricted(true)
        .with_no_da(true)
        .build()
        .map_err(tpm_err)?;
    let public = PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attrs)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new_restricted_decryption_key(
                SymmetricDefinitionObject::AES_128_CFB,
                EccCurve::NistP256,
            )
            .build()
            .map_err(tpm_err)?,
        )
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
        .map_err(tpm_err)?;
    ctx.execute_with_nullauth_session(|c| c.create_primary(Hierarchy::Owner, public, None, None, None, None))
        .map(|r| r.key_handle)
        .map_err(|e| match rc(&e) {
            Some(Rc::Lockout) => lockout(),
            Some(Rc::AuthFail | Rc::BadAuth) => Error::Device(
                DeviceFail::Failed,
                "the TPM's owner hierarchy has a password: tutela needs it empty to make its storage key".into(),
            ),
            _ => tpm_err(e),
        })
}

/// A session salted with the primary key, encrypting the first parameter both ways.
fn salted_session(ctx: &mut Context, primary: KeyHandle, kind: SessionType) -> Result<AuthSession> {
    let s = ctx
        .start_auth_session(
            Some(primary),
            None,
            None,
            kind,
            SymmetricDefinition::AES_128_CFB,
            HashingAlgorithm::Sha256,
        )
        .map_err(tpm_err)?
        .ok_or_else(|| {
            tpm_err(tss_esapi::Error::WrapperError(
                tss_esapi::WrapperErrorKind::WrongValueFromTpm,
            ))
        })?;
    let (attrs, mask) = SessionAttributesBuilder::new()
        .with_decrypt(true)
        .with_encrypt(true)
        .build();
    ctx.tr_sess_set_attributes(s, attrs, mask)
        .map_err(tpm_err)?;
    Ok(s)
}

/// The policy digest a slot's object requires (None: no policy, plain empty auth).
fn trial_policy(
    ctx: &mut Context,
    primary: KeyHandle,
    pin: bool,
    pcrs: u32,
) -> Result<Option<Digest>> {
    if !pin && pcrs == 0 {
        return Ok(None);
    }
    let trial = salted_session(ctx, primary, SessionType::Trial)?;
    let r = PolicySession::try_from(trial)
        .map_err(tpm_err)
        .and_then(|ps| {
            apply_policy(ctx, ps, pin, pcrs)?;
            ctx.policy_get_digest(ps).map_err(tpm_err)
        });
    flush_session(ctx, trial);
    r.map(Some)
}

/// PolicyPCR over the current values of `pcrs` (SHA-256 bank), then PolicyAuthValue.
fn apply_policy(ctx: &mut Context, ps: PolicySession, pin: bool, pcrs: u32) -> Result<()> {
    if pcrs != 0 {
        ctx.policy_pcr(ps, Digest::default(), pcr_list(pcrs)?)
            .map_err(tpm_err)?;
    }
    if pin {
        ctx.policy_auth_value(ps).map_err(tpm_err)?;
    }
    Ok(())
}

fn pcr_list(mask: u32) -> Result<PcrSelectionList> {
    let slots: Vec<PcrSlot> = (0..24)
        .filter(|i| mask & (1 << i) != 0)
        .map(|i| PcrSlot::try_from(1u32 << i).map_err(tpm_err))
        .collect::<Result<_>>()?;
    PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()
        .map_err(tpm_err)
}

/// The object's auth value: SHA-256 of the PIN (auth values are at most a digest long).
fn pin_auth(pin: &[u8]) -> Result<Auth> {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(b"tutela/v1/tpm2-pin");
    h.update(pin);
    Auth::try_from(h.finalize().to_vec()).map_err(tpm_err)
}

fn unseal_err(e: tss_esapi::Error) -> Error {
    match rc(&e) {
        Some(Rc::AuthFail | Rc::BadAuth) => Error::Device(
            DeviceFail::WrongPin,
            "wrong TPM PIN (the TPM counts it towards its lockout)".into(),
        ),
        Some(Rc::Lockout) => lockout(),
        Some(Rc::PolicyFail | Rc::PcrChanged) => Error::Device(
            DeviceFail::PcrMismatch,
            "the TPM's PCRs are not what this slot was sealed to (a firmware, boot loader or Secure Boot change?): unlock another way, then enroll the slot again".into(),
        ),
        _ => tpm_err(e),
    }
}

fn lockout() -> Error {
    Error::Device(
        DeviceFail::Lockout,
        "the TPM is in dictionary-attack lockout after too many wrong PINs: wait for it to recover, or clear it with tpm2_dictionarylockout --clear-lockout (needs the lockout password); unlock another way meanwhile".into(),
    )
}

fn damaged() -> Error {
    Error::ConfigCorrupt {
        why: "a TPM key slot's sealed object does not parse".into(),
    }
}

fn rc(e: &tss_esapi::Error) -> Option<Rc> {
    match e {
        tss_esapi::Error::Tss2Error(code) => code.kind(),
        _ => None,
    }
}

fn tpm_err(e: tss_esapi::Error) -> Error {
    Error::Device(DeviceFail::Failed, format!("TPM: {e}"))
}

fn flush_session(ctx: &mut Context, s: AuthSession) {
    let _ = ctx.flush_context(tss_esapi::handles::SessionHandle::from(s).into());
}

fn flush(ctx: &mut Context, s: AuthSession, primary: KeyHandle) {
    flush_session(ctx, s);
    let _ = ctx.flush_context(primary.into());
}
