//! A separate key store: the zone table (every zone key) kept outside the backing directory,
//! so that a backup of the backing directory alone carries no zone key.
//!
//! File layout (integers little-endian): magic "TUTELAKS" | version u16 (1) | vault id [16] |
//! count u8 (1 or 2) | per generation: generation id [16] | length u32 | sealed zone table.
//! A save writes the new generation beside the current one, then the config that names it,
//! then drops the old one: a crash between the steps leaves a store the config still opens.

use super::Reader;
use crate::crypto::Id;

pub const MAGIC: &[u8; 8] = b"TUTELAKS";
pub const VERSION: u16 = 1;
pub const MAX_GENERATIONS: usize = 2;
pub const MAX_BLOB: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStore {
    pub vault_id: Id,
    /// (generation id, sealed zone table)
    pub generations: Vec<(Id, Vec<u8>)>,
}

impl KeyStore {
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.vault_id);
        out.push(super::fits::<u8>(
            self.generations.len(),
            "key generation count",
        )?);
        for (g, blob) in &self.generations {
            out.extend_from_slice(g);
            out.extend_from_slice(
                &super::fits::<u32>(blob.len(), "sealed zone table")?.to_le_bytes(),
            );
            out.extend_from_slice(blob);
        }
        Ok(out)
    }

    pub fn parse(bytes: &[u8]) -> Result<KeyStore, String> {
        if bytes.len() < 10 || &bytes[..8] != MAGIC {
            return Err("not a tutela key store".into());
        }
        let mut r = Reader::new(bytes);
        r.take(8, "magic")?;
        let v = r.u16("version")?;
        if v != VERSION {
            return Err(format!(
                "key store version {v} unknown (this tutela reads version {VERSION})"
            ));
        }
        let vault_id = r.array::<16>("vault id")?;
        let n = r.u8("generation count")? as usize;
        if n == 0 || n > MAX_GENERATIONS {
            return Err(format!("generation count {n} out of range"));
        }
        let mut generations = Vec::with_capacity(n);
        for _ in 0..n {
            let g = r.array::<16>("generation id")?;
            let len = r.u32("zone table length")? as usize;
            if len > MAX_BLOB {
                return Err("zone table too large".into());
            }
            generations.push((g, r.take(len, "zone table")?.to_vec()));
        }
        if r.remaining() != 0 {
            return Err("trailing bytes".into());
        }
        Ok(KeyStore {
            vault_id,
            generations,
        })
    }

    pub fn find(&self, generation: &Id) -> Option<&[u8]> {
        self.generations
            .iter()
            .find(|(g, _)| g == generation)
            .map(|(_, b)| b.as_slice())
    }
}

/// The config's reference to its key store (sealed in the config's zone blob): which
/// generation it expects, and where the store was put at init.
pub fn encode_ref(generation: &Id, path: &[u8]) -> Vec<u8> {
    let mut out = generation.to_vec();
    out.extend_from_slice(path);
    out
}

pub fn parse_ref(bytes: &[u8]) -> Result<(Id, Vec<u8>), String> {
    let mut r = Reader::new(bytes);
    let g = r.array::<16>("key store generation")?;
    let path = r.take(r.remaining(), "key store path")?.to_vec();
    if path.is_empty() {
        return Err("key store path empty".into());
    }
    Ok((g, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let ks = KeyStore {
            vault_id: [7; 16],
            generations: vec![([1; 16], vec![9; 40]), ([2; 16], vec![8; 3])],
        };
        let b = ks.encode().unwrap();
        assert_eq!(KeyStore::parse(&b).unwrap(), ks);
        assert_eq!(
            KeyStore::parse(&b).unwrap().find(&[2; 16]),
            Some(&[8u8; 3][..])
        );
        for n in 0..b.len() {
            assert!(KeyStore::parse(&b[..n]).is_err());
        }
        let (g, p) = parse_ref(&encode_ref(&[3; 16], b"/keys/v.keys")).unwrap();
        assert_eq!((g, p.as_slice()), ([3; 16], &b"/keys/v.keys"[..]));
    }
}
