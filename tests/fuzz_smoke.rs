//! A short fuzzing run of every target in `fuzz/` on stable Rust: the seed corpora (built
//! here from real vault files and, when present, read from fuzz/corpus/) plus deterministic
//! mutations. A panic anywhere fails the test. The long runs use `cargo fuzz` (fuzz/README.md).

mod common;

use common::Rng;
use std::path::Path;
use tutela::crypto::content::{encode_header, FileCipher, OVERHEAD};
use tutela::crypto::names::NameCipher;
use tutela::crypto::secret::{Key32, Passphrase};
use tutela::format::{recovery, zones};
use tutela::fuzz_targets::{run, TARGETS};
use tutela::vault::{Vault, KDF_TEST};

fn mutate(seed: &[u8], r: &mut Rng) -> Vec<u8> {
    let mut d = seed.to_vec();
    for _ in 0..=r.below(4) {
        match r.below(6) {
            0 if !d.is_empty() => {
                let i = r.below(d.len());
                d[i] ^= 1 << r.below(8);
            }
            1 => d.truncate(r.below(d.len() + 1)),
            2 => {
                let i = r.below(d.len() + 1);
                let n = r.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| r.next() as u8).collect();
                d.splice(i..i, bytes);
            }
            3 if !d.is_empty() => {
                let i = r.below(d.len());
                d[i] = [0, 0xff, 0x7f, 0x80][r.below(4)];
            }
            4 if d.len() > 4 => {
                let a = r.below(d.len());
                let b = (a + r.below(64)).min(d.len());
                let chunk = d[a..b].to_vec();
                let at = r.below(d.len());
                d.splice(at..at, chunk);
            }
            _ => {}
        }
    }
    d
}

/// Seeds for each target, from real objects made by the library.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let t = tempfile::tempdir().unwrap();
    let pass = Passphrase::new(b"pw".to_vec());
    Vault::create(&t.path().join("a"), &pass, "default", KDF_TEST, None).unwrap();
    out.push((
        "config",
        std::fs::read(t.path().join("a/tutela.conf")).unwrap(),
    ));
    let ks = t.path().join("k.keys");
    Vault::create(&t.path().join("b"), &pass, "alice", KDF_TEST, Some(&ks)).unwrap();
    out.push((
        "config",
        std::fs::read(t.path().join("b/tutela.conf")).unwrap(),
    ));
    out.push(("keystore", std::fs::read(&ks).unwrap()));
    let zs = vec![
        zones::ZoneRecord {
            id: [1; 16],
            key: Key32::from_bytes([2; 32]),
            name: String::new(),
            path: "/".into(),
            retiring: None,
            adopting: None,
            meta: Default::default(),
        },
        zones::ZoneRecord {
            id: [3; 16],
            key: Key32::from_bytes([4; 32]),
            name: "acme".into(),
            path: "/clients/acme".into(),
            retiring: Some(Key32::from_bytes([5; 32])),
            adopting: Some([6; 16]),
            // A version 3 table: the seed corpus holds client metadata too.
            meta: zones::ClientMeta {
                reference: Some("M-2026-014".into()),
                retain: Some("7y after close".into()),
                closed_ms: Some(1),
                ..Default::default()
            },
        },
    ];
    out.push(("zones", zones::encode(&zs).unwrap().to_vec()));
    let mut h = encode_header(&[9; 16]).to_vec();
    h.extend_from_slice(&[0xaa; 40]);
    out.push(("header", h));
    let c = FileCipher::new(&Key32::from_bytes([7; 32]), [9; 16]);
    for len in [1usize, 100, 4096] {
        let mut ct = vec![0u8; len + OVERHEAD as usize];
        c.seal_block(0, &vec![0x41; len], &mut ct).unwrap();
        out.push(("block", ct));
    }
    let n = NameCipher::new(&Key32::from_bytes([1; 32]), &Key32::from_bytes([2; 32]));
    for name in [&b"Acme report.pdf"[..], &[b'x'; 200][..], b"\xff\xfe"] {
        let s = n.encrypt(&[3; 16], name).unwrap();
        out.push(("name", s.backing_name().as_bytes().to_vec()));
        if let tutela::crypto::names::Stored::Long { full, .. } = s {
            out.push(("name", full.into_bytes()));
        }
    }
    out.push((
        "name",
        n.encrypt_symlink(b"../target/file").unwrap().into_bytes(),
    ));
    out.push(("name", n.encrypt_xattr_name(b"color").unwrap().into_bytes()));
    out.push((
        "policy",
        b"admins = [\"group:partners\"]\ndefault = \"deny\"\n\n[clients.acme]\npath = \"/clients/acme\"\nread = [\"alice\", \"group:paralegals\", 1001]\nwrite = [\"alice\"]\n".to_vec(),
    ));
    let keys = || tutela::audit::Keys {
        enc: Key32::from_bytes([4; 32]),
        mac: Key32::from_bytes([5; 32]),
        seal: Key32::from_bytes([7; 32]),
        vault_id: [6; 16],
    };
    let mut recs = Vec::new();
    for i in 0..3 {
        let mut r = tutela::audit::Record::now("open", &format!("/clients/acme/f{i}"));
        r.client = Some("acme".into());
        recs.push(r);
    }
    tutela::audit::append_offline(t.path(), keys(), &recs).unwrap();
    let seg = tutela::audit::chain::local(t.path(), &keys().vault_id)
        .dir
        .join("0000000000000000.seg");
    out.push(("audit", std::fs::read(seg).unwrap()));
    out.push((
        "recovery",
        recovery::encode(&Key32::from_bytes([8; 32]))
            .as_bytes()
            .to_vec(),
    ));
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for target in TARGETS {
        if let Ok(rd) = std::fs::read_dir(corpus.join(target)) {
            for e in rd.flatten() {
                if let Ok(b) = std::fs::read(e.path()) {
                    out.push((target, b));
                }
            }
        }
    }
    out
}

#[test]
fn every_fuzz_target_survives_seeds_and_mutations() {
    let iterations: usize = std::env::var("TUTELA_FUZZ_SMOKE_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let seeds = seeds();
    for target in TARGETS {
        let mine: Vec<&Vec<u8>> = seeds
            .iter()
            .filter(|(t, _)| t == target)
            .map(|(_, b)| b)
            .collect();
        assert!(!mine.is_empty(), "no seed for {target}");
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        for s in &mine {
            assert!(run(target, s));
        }
        for i in 0..iterations {
            let seed = mine[i % mine.len()];
            let d = mutate(seed, &mut r);
            run(target, &d);
        }
    }
}

/// Writes the seeds into fuzz/corpus/<target>/ (run once when the formats change:
/// `cargo test --test fuzz_smoke -- --ignored`).
#[test]
#[ignore]
fn write_seed_corpora() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (i, (target, bytes)) in seeds().into_iter().enumerate() {
        let d = corpus.join(target);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("seed-{i:02}")), bytes).unwrap();
    }
}
