//! Sealing to the vault's audit public key, for writers that hold none of the vault's keys
//! (a client-scoped mount): RFC 9180 HPKE in base mode, DHKEM(X25519, HKDF-SHA256) with
//! HKDF-SHA256 and the export-only AEAD, through the `hpke` crate. A writer encapsulates to the
//! public key once per audit segment and exports that segment's record and MAC keys; the
//! encapsulated key goes in the segment's header. Only the holder of the audit secret key (a
//! full unlock) can derive the same keys again, so the writer cannot read back what it wrote
//! once it has dropped them, nor anything another writer sealed.

use super::secret::Key32;
use crate::error::{Error, Result};
use hpke::aead::ExportOnlyAead;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};

/// An X25519 public key, and an encapsulated key, are 32 bytes.
pub const PUBLIC_LEN: usize = 32;
pub const ENCAPPED_LEN: usize = 32;

const EXPORT_ENC: &[u8] = b"tutela/v1/audit-segment-enc";
const EXPORT_MAC: &[u8] = b"tutela/v1/audit-segment-mac";

type SuiteKem = X25519HkdfSha256;

/// The vault's audit public key, from its seed (`kdf::audit_seal_seed`).
pub fn audit_public(seed: &Key32) -> [u8; PUBLIC_LEN] {
    let (_, pk) = SuiteKem::derive_keypair(seed.as_bytes());
    let mut out = [0u8; PUBLIC_LEN];
    out.copy_from_slice(&pk.to_bytes());
    out
}

/// A segment's record and MAC keys.
pub struct SegmentKeys {
    pub enc: Key32,
    pub mac: Key32,
}

fn export(
    ctx_export: impl Fn(&[u8], &mut [u8]) -> std::result::Result<(), hpke::HpkeError>,
) -> Result<SegmentKeys> {
    let mut enc = zeroize::Zeroizing::new([0u8; 32]);
    let mut mac = zeroize::Zeroizing::new([0u8; 32]);
    ctx_export(EXPORT_ENC, &mut enc[..]).map_err(|_| Error::Invalid)?;
    ctx_export(EXPORT_MAC, &mut mac[..]).map_err(|_| Error::Invalid)?;
    Ok(SegmentKeys {
        enc: Key32::from_bytes(*enc),
        mac: Key32::from_bytes(*mac),
    })
}

/// Fresh keys for a segment, sealed to `public` with `info` (which binds them to the
/// segment's place): the keys, and the encapsulated key for the header.
pub fn seal_segment(
    public: &[u8; PUBLIC_LEN],
    info: &[u8],
) -> Result<(SegmentKeys, [u8; ENCAPPED_LEN])> {
    let pk = <SuiteKem as Kem>::PublicKey::from_bytes(public).map_err(|_| Error::Corrupt {
        what: "audit public key",
    })?;
    let (encapped, ctx) =
        hpke::setup_sender::<ExportOnlyAead, HkdfSha256, SuiteKem>(&OpModeS::Base, &pk, info)
            .map_err(|_| Error::Invalid)?;
    let keys = export(|c, out| ctx.export(c, out))?;
    let mut e = [0u8; ENCAPPED_LEN];
    e.copy_from_slice(&encapped.to_bytes());
    Ok((keys, e))
}

/// The keys of a segment sealed with `encapped` and `info`, with the audit key pair's seed.
pub fn open_segment(
    seed: &Key32,
    encapped: &[u8; ENCAPPED_LEN],
    info: &[u8],
) -> Result<SegmentKeys> {
    let (sk, _) = SuiteKem::derive_keypair(seed.as_bytes());
    let e =
        <SuiteKem as Kem>::EncappedKey::from_bytes(encapped).map_err(|_| Error::AuthFailed {
            what: "audit segment key",
        })?;
    let ctx =
        hpke::setup_receiver::<ExportOnlyAead, HkdfSha256, SuiteKem>(&OpModeR::Base, &sk, &e, info)
            .map_err(|_| Error::AuthFailed {
                what: "audit segment key",
            })?;
    export(|c, out| ctx.export(c, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_of_the_seed_derives_the_writers_segment_keys_and_nobody_else() {
        let seed = Key32::from_bytes([0x21; 32]);
        let public = audit_public(&seed);
        assert_eq!(
            crate::audit::chain::hex(&public),
            crate::format::vectors::AUDIT_PUBLIC_VECTOR
        );
        let (w, encapped) = seal_segment(&public, b"segment 3").unwrap();
        let r = open_segment(&seed, &encapped, b"segment 3").unwrap();
        assert_eq!(w.enc.as_bytes(), r.enc.as_bytes());
        assert_eq!(w.mac.as_bytes(), r.mac.as_bytes());
        // Another place, or another seed: other keys.
        let moved = open_segment(&seed, &encapped, b"segment 4").unwrap();
        assert_ne!(moved.mac.as_bytes(), w.mac.as_bytes());
        let other = open_segment(&Key32::from_bytes([0x22; 32]), &encapped, b"segment 3").unwrap();
        assert_ne!(other.mac.as_bytes(), w.mac.as_bytes());
        // Every segment gets fresh keys.
        let (w2, e2) = seal_segment(&public, b"segment 3").unwrap();
        assert_ne!(e2, encapped);
        assert_ne!(w2.mac.as_bytes(), w.mac.as_bytes());
    }
}
