//! The devices a key slot can need: a TPM 2.0 (`tpm2`, through the TPM Software Stack) and a
//! FIDO2 security key (`fido2`, behind one narrow trait). Each gives back a 32-byte secret
//! that `vault::device_slots` mixes into the slot's key; nothing here knows about vaults.

pub mod fido2;

/// Where the TPM is when nothing says otherwise: the kernel's resource manager.
pub const DEFAULT_TCTI: &str = "device:/dev/tpmrm0";

/// The TCTI to use: `--tpm2-tcti`, else `TPM2TOOLS_TCTI` (as tpm2-tools), else the kernel's.
pub fn tpm2_tcti(over: Option<&str>) -> String {
    over.map(str::to_string)
        .or_else(|| {
            std::env::var("TPM2TOOLS_TCTI")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| DEFAULT_TCTI.to_string())
}
#[cfg(feature = "tpm2")]
pub mod tpm2;

/// Without the `tpm2` feature the slots are still read, listed and removed; opening or making
/// one says the build lacks support.
#[cfg(not(feature = "tpm2"))]
pub mod tpm2 {
    use crate::error::{DeviceFail, Error, Result};
    use crate::format::hw_slot::Tpm2Sealed;
    use zeroize::Zeroizing;

    fn unsupported() -> Error {
        Error::Device(
            DeviceFail::Missing,
            "this tutela was built without TPM support (the tpm2 feature)".into(),
        )
    }

    pub fn seal(_: &str, _: &[u8; 32], _: Option<&[u8]>, _: u32) -> Result<Tpm2Sealed> {
        Err(unsupported())
    }

    pub fn unseal(_: &str, _: &Tpm2Sealed, _: Option<&[u8]>) -> Result<Zeroizing<[u8; 32]>> {
        Err(unsupported())
    }
}
