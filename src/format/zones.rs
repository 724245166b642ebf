//! The zone table, sealed inside the config under the zone-wrap key (client names and paths
//! are confidential). Plaintext layout: version u8 (1) | count u16 LE | per zone: id [16] |
//! key [32] | name length u8 | name | path length u16 LE | path.

use super::Reader;
use crate::crypto::Id;
use crate::secret::Key32;
use zeroize::Zeroizing;

pub const VERSION: u8 = 1;

#[derive(Debug)]
pub struct ZoneRecord {
    pub id: Id,
    pub key: Key32,
    /// Client name; empty for the root zone.
    pub name: String,
    /// Plaintext path of the zone's top directory inside the vault ("/" for the root zone).
    pub path: String,
}

pub fn encode(zones: &[ZoneRecord]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::new());
    out.push(VERSION);
    out.extend_from_slice(&(zones.len() as u16).to_le_bytes());
    for z in zones {
        out.extend_from_slice(&z.id);
        out.extend_from_slice(z.key.as_bytes());
        out.push(z.name.len() as u8);
        out.extend_from_slice(z.name.as_bytes());
        out.extend_from_slice(&(z.path.len() as u16).to_le_bytes());
        out.extend_from_slice(z.path.as_bytes());
    }
    out
}

pub fn parse(bytes: &[u8]) -> Result<Vec<ZoneRecord>, String> {
    let mut r = Reader::new(bytes);
    let v = r.u8("zone table version")?;
    if v != VERSION {
        return Err(format!("zone table version {v} unknown"));
    }
    let n = r.u16("zone count")? as usize;
    let mut zones = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let id = r.array::<16>("zone id")?;
        let key = Key32::from_bytes(r.array::<32>("zone key")?);
        let nl = r.u8("zone name length")? as usize;
        let name = String::from_utf8(r.take(nl, "zone name")?.to_vec())
            .map_err(|_| "zone name is not UTF-8".to_string())?;
        let pl = r.u16("zone path length")? as usize;
        let path = String::from_utf8(r.take(pl, "zone path")?.to_vec())
            .map_err(|_| "zone path is not UTF-8".to_string())?;
        zones.push(ZoneRecord {
            id,
            key,
            name,
            path,
        });
    }
    if r.remaining() != 0 {
        return Err("trailing bytes in zone table".into());
    }
    if zones.first().map(|z| z.path.as_str()) != Some("/") {
        return Err("zone table has no root zone".into());
    }
    Ok(zones)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let zs = vec![
            ZoneRecord {
                id: [1; 16],
                key: Key32::from_bytes([2; 32]),
                name: String::new(),
                path: "/".into(),
            },
            ZoneRecord {
                id: [3; 16],
                key: Key32::from_bytes([4; 32]),
                name: "acme".into(),
                path: "/clients/acme".into(),
            },
        ];
        let bytes = encode(&zs);
        let back = parse(&bytes).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].path, "/clients/acme");
        assert_eq!(back[1].key.as_bytes(), &[4; 32]);
        for n in 0..bytes.len() {
            assert!(parse(&bytes[..n]).is_err());
        }
    }
}
