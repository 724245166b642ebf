//! Test vectors quoted verbatim in FORMAT.md ("Test vectors"), computed independently (with
//! Python's `cryptography` package). Unit tests assert them byte for byte: if one of these
//! changes, the on-disk format changed and needs a new version.

/// HKDF-SHA256 outputs for master key 00 01 .. 1f: config-mac, zone-wrap, names and xattr with
/// salt 16 x 0x11, content with salt 16 x 0x22.
pub const KDF_VECTORS: [&str; 5] = [
    "2ac05d3824b3e2072d074579d2d6816d672d3831bcde6dbec4caa8027ffa5b4c",
    "034713c61f08833a2dc6f2a7bd4e92b222d7c9e3cbd2a0cf5869f79925f0ca59",
    "6226feff98e3675cbc7f9475fc3b10eb468e193bbfecbb207c14724766448f64",
    "83283fed32c5d8223cb2f698415e9b91c4eeca53b9136d2ff08a1cb67ae84f34",
    "0297b83460f0b4ba647ca12b7d710393af7359f594d0e9e1b7efe38bd1800632",
];

/// HKDF-SHA256 outputs for master key 00 01 .. 1f, salt 16 x 0x11: policy, audit-enc,
/// audit-mac.
pub const KDF_VECTORS_V1_AUDIT: [&str; 3] = [
    "36d9a33d6a6d918caf629eca5012b5fc88f55d3f06c9b58e04748a013a1917a7",
    "f433534633edee5867a62be2129434fddc97e8685f554658cc2d4725190c1420",
    "17c1eac8acb5437f488aa83e99fe0833bb827cecb0998b452479dc059daa9605",
];

/// The control channel key (FORMAT.md "Control channel"), same master key and vault id.
pub const KDF_VECTOR_CONTROL: &str =
    "ee7380bdc58a18f00f3e9ce403f0a6cf5715325127f03b02ba014c3c6363d115";

/// Audit pruning checkpoint (FORMAT.md "Pruning") under audit MAC key 32 x 0x02: first
/// segment 3, first sequence 42, chain value 32 x 0x55, cutoff 1764547200000, pruned at
/// 1796083200000, 42 records pruned, uid 1000.
pub const PRUNE_VECTOR: &str = "545554454c415052010003000000000000002a000000000000005555555555555555555555555555555555555555555555555555555555555555008435d79a01000000b0e62ea20100002a00000000000000e8030000c56ff10ba9e4b152e5312500c334b5c0bc277a3d41ce7f96c7579aa10d7f29e7";

/// Audit replica id (FORMAT.md "Audit log replicas") for vault id 16 x 0x03, machine id
/// "0123456789abcdef0123456789abcdef", path "/home/ann/Sync/vault".
pub const REPLICA_ID_VECTOR: &str = "9c34baa9b45a4d29";

/// Genesis of replica 01 02 .. 08's chain under audit MAC key 32 x 0x02, vault id 16 x 0x03.
pub const REPLICA_GENESIS_VECTOR: &str =
    "f3a2ced7e700242a228abc2070bd89c5e1b146ead5b3e7ecc17716caa080d77d";

/// The MAC of the pruning checkpoint above when it is replica 01 02 .. 08's.
pub const PRUNE_REPLICA_MAC_VECTOR: &str =
    "259f992bf93401632b2c40f251061bfcd6334c6f7072bf991f39b18629276ba9";

/// The sealed payload of a client key slot (FORMAT.md "Client key slots") before sealing:
/// zone key 32 x 0x08, policy key 32 x 0x09, audit public key 32 x 0x0b, top directory id
/// 16 x 0x0a, client "acme" at
/// "/clients/acme".
pub const CLIENT_SLOT_PAYLOAD_VECTOR: &str = "01080808080808080808080808080808080808080808080808080808080808080809090909090909090909090909090909090909090909090909090909090909090b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0461636d650d002f636c69656e74732f61636d65";

/// The vault's audit public key (X25519, DHKEM(X25519, HKDF-SHA256) DeriveKeyPair) from the
/// audit seal seed 32 x 0x21.
pub const AUDIT_PUBLIC_VECTOR: &str =
    "0001566477145eb68bc33f7014eecad5b9c78950bab64cbadbd0cf17fdcefe22";

/// Name "report.pdf" sealed for directory ID 16 x 0x33 with name key 32 x 0x01.
pub const NAME_VECTOR: &str = "zH1w1uQRvHqsor1cJOFYNen8MlrQ00Z5K3U";

/// Argon2id v1.3 (passphrase "correct horse", salt 16 x 0x44, m=256 KiB, t=1, p=1), 32 bytes.
pub const ARGON2_VECTOR: &str = "4da87e64b9a771509a2c4b3448a991242b8fbc4767eae11fa0449452e4900239";

/// Content block 3 of file ID 16 x 0x22 under content key 32 x 0x05, nonce 12 x 0x66,
/// plaintext "hello, tutela": nonce || ciphertext || tag.
pub const BLOCK_VECTOR: &str =
    "666666666666666666666666f635655f7eac8d1fb2933e18b729d0a0386067fe0a591b5c8783905a6c";

/// A device slot's key (FORMAT.md, "Device key slots"): HKDF-SHA256, device secret 00..1f.
/// TPM slot (kind 3) "office-server", one factor:
pub const DEVICE_SLOT_KEY_TPM_VECTOR: &str =
    "70433970251c034a7099c76c6ddc89cb41c545605c0dd41231e9a4dc9ceb1334";
/// FIDO2 slot (kind 4) "laptop" with a passphrase whose Argon2id key is 20..3f:
pub const DEVICE_SLOT_KEY_FIDO2_VECTOR: &str =
    "a1e9d0d2b519cd06b9f7a1492f36734f212bbcdec3fb09b33987d693bfb15fd1";
/// Slot bodies: TPM "srv" with a PIN, PCR 7, public aa×4, private bb×3, wrapped cc×60.
pub const TPM_SLOT_BODY_VECTOR: &str = "037372760001800000000400aaaaaaaa0300bbbbbbcccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
/// FIDO2 "k" with a passphrase (m 8 KiB, t 1, 1 lane, salt 11×16), no PIN, relying party
/// "tutela", credential id dd dd, hmac salt ee×32, wrapped cc×60.
pub const FIDO2_SLOT_BODY_VECTOR: &str = "016b01080000000100000001000000111111111111111111111111111111110006747574656c610200ddddeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeecccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

/// The report-signing key (FORMAT.md, "Signed reports"): master key 00..1f, vault id 11×16.
pub const REPORT_SIGN_PUBLIC_VECTOR: &str =
    "6eba205834873bee3b81ddf1ba6fb4ab956f6000292257247ea16c2be50cb708";
/// Its signature of the body `hello\n` (Ed25519 is deterministic).
pub const REPORT_SIGNATURE_VECTOR: &str = "6a12874e5344174cfefbb72b2c7aab1d139daa4ecb442452573a34d996a54d10baf5c4c33b32e3c219a4c30d81b82ee66769258aab8088944c40924306f85907";

/// The key sealing erasure drafts (FORMAT.md, "Erasures under way"): master key 00..1f,
/// vault id 11×16 (computed independently with Python's `cryptography`).
pub const ERASING_KEY_VECTOR: &str =
    "b2d255fb80e1e6d9b0ce6f6f14a3b993228615e6af247a0213349e62d4783823";
/// The closed-clients list's plaintext (FORMAT.md, "Closed clients"): zone 22×16 closed at
/// 1700000000000 ms, zone 33×16 at 1 ms.
pub const CLOSED_PLAIN_VECTOR: &str = "02000000222222222222222222222222222222220068e5cf8b010000333333333333333333333333333333330100000000000000";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::content::FileCipher;
    use crate::crypto::names::NameCipher;
    use crate::crypto::secret::{Key32, Passphrase};

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The spec and the code cannot drift apart: every vector is quoted in FORMAT.md
    /// (whitespace aside, since long ones are wrapped there).
    #[test]
    fn every_vector_is_quoted_in_format_md() {
        let spec: String = include_str!("../../FORMAT.md")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let all = KDF_VECTORS
            .iter()
            .chain(KDF_VECTORS_V1_AUDIT.iter())
            .chain([KDF_VECTOR_CONTROL].iter())
            .chain(
                [
                    NAME_VECTOR,
                    ARGON2_VECTOR,
                    BLOCK_VECTOR,
                    PRUNE_VECTOR,
                    REPLICA_ID_VECTOR,
                    REPLICA_GENESIS_VECTOR,
                    PRUNE_REPLICA_MAC_VECTOR,
                    ERASING_KEY_VECTOR,
                    CLOSED_PLAIN_VECTOR,
                ]
                .iter(),
            );
        for v in all {
            assert!(spec.contains(v), "FORMAT.md does not quote {v}");
        }
    }

    #[test]
    fn name_vector() {
        let c = NameCipher::new(&Key32::from_bytes([1; 32]), &Key32::from_bytes([2; 32]));
        assert_eq!(
            c.encrypt(&[0x33; 16], b"report.pdf")
                .unwrap()
                .backing_name(),
            NAME_VECTOR
        );
    }

    #[test]
    fn argon2_vector() {
        let k = crate::vault::passphrase_kek(
            &Passphrase::new(b"correct horse".to_vec()),
            &[0x44; 16],
            crate::vault::KDF_TEST,
        )
        .unwrap();
        assert_eq!(k.as_bytes().to_vec(), unhex(ARGON2_VECTOR));
    }

    #[test]
    fn block_vector() {
        let c = FileCipher::new(&Key32::from_bytes([5; 32]), [0x22; 16]);
        let sealed = unhex(BLOCK_VECTOR);
        let mut out = vec![0u8; sealed.len() - 28];
        c.open_block(3, &sealed, &mut out).unwrap();
        assert_eq!(out, b"hello, tutela");
    }

    #[test]
    fn erasing_key_and_closed_list_vectors() {
        let master = Key32::from_bytes(core::array::from_fn(|i| i as u8));
        let k = crate::offline::pending_cert::key(&master, &[0x11; 16]);
        assert_eq!(k.as_bytes().to_vec(), unhex(ERASING_KEY_VECTOR));
        let list = vec![([0x22; 16], 1_700_000_000_000), ([0x33; 16], 1)];
        assert_eq!(
            crate::policy::closed::encode_plain(&list),
            unhex(CLOSED_PLAIN_VECTOR)
        );
    }
}
