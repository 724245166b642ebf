//! Entry points for fuzzing every parser and decryptor of bytes an attacker controls. The
//! `cargo fuzz` targets in `fuzz/` call these, and `tests/fuzz_smoke.rs` runs them on stable
//! Rust over the seed corpora plus mutations in CI. Each must return (never panic, hang or
//! allocate without bound) whatever the input.

use crate::crypto::content::{self, FileCipher, OVERHEAD};
use crate::crypto::names::NameCipher;
use crate::crypto::secret::Key32;
use crate::format::{config, dirfile, keystore, recovery, zones};

/// The names of all targets, in the order of `run`.
pub const TARGETS: &[&str] = &[
    "config", "zones", "keystore", "header", "block", "name", "policy", "audit", "recovery",
];

/// Runs target `name` on `data`; false for an unknown name.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "config" => config_file(data),
        "zones" => zone_table(data),
        "keystore" => key_store(data),
        "header" => file_header(data),
        "block" => block(data),
        "name" => name_decode(data),
        "policy" => policy(data),
        "audit" => audit_segment(data),
        "recovery" => recovery_key(data),
        _ => return false,
    }
    true
}

pub fn config_file(data: &[u8]) {
    if let Ok((c, unsigned, _)) = config::Config::parse(data) {
        // What parses must re-encode to the same signed bytes.
        assert_eq!(
            c.encode_unsigned().ok().as_deref(),
            Some(unsigned),
            "config re-encoding differs"
        );
    }
}

pub fn zone_table(data: &[u8]) {
    if let Ok(z) = zones::parse(data) {
        let again = zones::encode(&z).expect("a parsed table re-encodes");
        assert!(
            zones::parse(&again).is_ok(),
            "zone table does not round-trip"
        );
    }
}

pub fn key_store(data: &[u8]) {
    if let Ok(k) = keystore::KeyStore::parse(data) {
        assert_eq!(
            k.encode().ok().as_deref(),
            Some(data),
            "key store re-encoding differs"
        );
    }
    let _ = keystore::parse_ref(data);
    let _ = dirfile::parse(data);
}

pub fn file_header(data: &[u8]) {
    let _ = content::decode_header(data);
    let _ = content::plain_size(data.len() as u64);
}

pub fn block(data: &[u8]) {
    let c = FileCipher::new(&Key32::from_bytes([7; 32]), [9; 16]);
    if data.len() as u64 > OVERHEAD && data.len() as u64 <= content::CT_BLOCK {
        let mut out = vec![0u8; data.len() - OVERHEAD as usize];
        let _ = c.open_block(
            u64::from(data.first().copied().unwrap_or(0)),
            data,
            &mut out,
        );
    }
}

pub fn name_decode(data: &[u8]) {
    let n = NameCipher::new(&Key32::from_bytes([1; 32]), &Key32::from_bytes([2; 32]));
    let _ = n.decrypt(&[3; 16], data);
    let _ = n.decrypt_symlink(data);
    let _ = n.decrypt_xattr_name(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = n.decrypt_xattr_value(s, data);
        let _ = crate::crypto::names::long_hash_name(s);
    }
    if let Ok(crate::crypto::names::Stored::Short(s)) = n.encrypt(&[3; 16], data) {
        assert_eq!(
            n.decrypt(&[3; 16], s.as_bytes()).ok().as_deref(),
            Some(data)
        );
    }
}

/// The policy text, and the same bytes as the closed-clients list's plaintext (what opens
/// from `tutela.closed`) and as the file itself.
pub fn policy(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let resolve = |name: &str, _group: bool| name.len().is_multiple_of(3).then_some(1000);
        let _ = crate::policy::parse(text, "fuzz.toml", &resolve);
    }
    if let Some(list) = crate::policy::closed::decode_plain(data) {
        assert_eq!(
            crate::policy::closed::encode_plain(&list),
            data,
            "closed list re-encoding differs"
        );
    }
    let _ = crate::policy::closed::open(&Key32::from_bytes([7; 32]), &[1; 16], data);
}

/// One audit segment (as a file of the original chain and of a replica's, in a scratch log
/// directory: a sealed one is read only there) through the verifier, and the same bytes as a
/// pruning checkpoint and a policy file envelope.
pub fn audit_segment(data: &[u8]) {
    if let Ok(h) = crate::format::audit::header(data) {
        let signed = match h.encapped {
            Some(_) => crate::format::audit::HEADER_SIGNED_SEALED,
            None => crate::format::audit::HEADER_SIGNED,
        };
        assert_eq!(h.signed.len(), signed);
        let mut frames = crate::format::audit::Frames::new(data);
        while let crate::format::audit::Next::Frame(f) = frames.next_frame() {
            assert!(f.sealed.len() <= crate::format::audit::MAX_SEALED);
        }
    }
    if let Ok((cp, body, _)) = crate::format::prune::Checkpoint::parse(data) {
        assert_eq!(cp.body(), body, "checkpoint re-encoding differs");
    }
    let _ = crate::format::policy::unwrap(data);
    thread_local! {
        static DIR: Option<tempfile_like::Scratch> = tempfile_like::Scratch::new();
    }
    DIR.with(|d| {
        let Some(d) = d else { return };
        let log = d.path.join(crate::audit::DIR_NAME);
        let replica = log.join("r-0000000000000001");
        if std::fs::create_dir_all(&replica).is_err() {
            return;
        }
        for dir in [&log, &replica] {
            if std::fs::write(dir.join("0000000000000000.seg"), data).is_err() {
                return;
            }
        }
        let keys = crate::audit::Keys {
            enc: Key32::from_bytes([4; 32]),
            mac: Key32::from_bytes([5; 32]),
            seal: Key32::from_bytes([7; 32]),
            vault_id: [6; 16],
        };
        let _ = crate::audit::read_all(&d.path, &keys, |_| {});
    });
}

pub fn recovery_key(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = recovery::decode(s);
    }
}

/// A scratch directory without a dev-dependency (the fuzz crate builds the library alone).
mod tempfile_like {
    pub struct Scratch {
        pub path: std::path::PathBuf,
    }
    impl Scratch {
        pub fn new() -> Option<Scratch> {
            let path = std::env::temp_dir().join(format!(
                "tutela-fuzz-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            std::fs::create_dir_all(path.join(crate::audit::DIR_NAME)).ok()?;
            Some(Scratch { path })
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
