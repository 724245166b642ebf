//! The zone table, sealed inside the config (or the key store) under the zone-wrap key (client
//! names and paths are confidential). Plaintext layout, version 2: version u8 | count u16 LE |
//! per zone: id [16] | key [32] | flags u8 | [retiring key [32] if flags bit 0] | [retiring
//! zone id [16] if flags bit 1] | name length u8 | name | path length u16 LE | path. Version 1
//! (no flags, no retiring key) is still read. Version 3 (written only when a client has life
//! cycle metadata, so vaults without any stay readable by earlier versions) adds per zone,
//! after the path: meta length u16 LE | meta (a UTF-8 JSON object, `ClientMeta`).

use super::{fits, Reader};
use crate::crypto::secret::Key32;
use crate::crypto::Id;
use zeroize::Zeroizing;

pub const VERSION: u8 = 2;
/// The version with per-zone metadata.
pub const VERSION_META: u8 = 3;
/// A zone's metadata is at most this long.
pub const MAX_META: usize = 4096;
/// Flag bit 0: a rekey is under way; entries not yet re-encrypted use the retiring key.
pub const FLAG_RETIRING: u8 = 1;
/// Flag bit 1 (with bit 0): the zone is adopting a folder that held files of another zone;
/// its retiring generation is that zone's key with that zone's id, which follows.
pub const FLAG_ADOPTING: u8 = 2;

#[derive(Debug)]
pub struct ZoneRecord {
    pub id: Id,
    pub key: Key32,
    /// Client name; empty for the root zone.
    pub name: String,
    /// Plaintext path of the zone's top directory inside the vault ("/" for the root zone).
    pub path: String,
    /// The previous key while a rekey re-encrypts the zone (destroyed when it finishes).
    pub retiring: Option<Key32>,
    /// The zone id the retiring key goes with, when it is not this zone's own (`client add`
    /// of a folder that already held files of the enclosing zone).
    pub adopting: Option<Id>,
    /// The client's life cycle: matter, retention, closing, legal hold.
    pub meta: ClientMeta,
}

/// A client's life cycle metadata (FORMAT.md, "Zone table"): JSON inside the sealed table.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientMeta {
    /// When the matter was opened (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_ms: Option<u64>,
    /// The practice's matter reference (`M-2026-014`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Who is responsible for the matter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responsible: Option<String>,
    /// The retention rule: `<N>y|m|d after close`, or a date `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain: Option<String>,
    /// When the matter was closed (its folder read-only for all but admins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_ms: Option<u64>,
    /// A legal hold: shred and expire are refused while it stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hold {
    pub reason: String,
    pub since_ms: u64,
    pub by: String,
}

impl ClientMeta {
    pub fn is_empty(&self) -> bool {
        *self == ClientMeta::default()
    }
}

impl ZoneRecord {
    /// The id the retiring key derives its name and content keys with.
    pub fn retiring_id(&self) -> Id {
        self.adopting.unwrap_or(self.id)
    }
}

pub fn encode(zones: &[ZoneRecord]) -> Result<Zeroizing<Vec<u8>>, String> {
    let mut out = Zeroizing::new(Vec::new());
    let with_meta = zones.iter().any(|z| !z.meta.is_empty());
    out.push(if with_meta { VERSION_META } else { VERSION });
    out.extend_from_slice(&fits::<u16>(zones.len(), "zone count")?.to_le_bytes());
    for z in zones {
        out.extend_from_slice(&z.id);
        out.extend_from_slice(z.key.as_bytes());
        match (&z.retiring, &z.adopting) {
            (Some(k), None) => {
                out.push(FLAG_RETIRING);
                out.extend_from_slice(k.as_bytes());
            }
            (Some(k), Some(id)) => {
                out.push(FLAG_RETIRING | FLAG_ADOPTING);
                out.extend_from_slice(k.as_bytes());
                out.extend_from_slice(id);
            }
            (None, Some(_)) => return Err("an adopting zone without its retiring key".into()),
            (None, None) => out.push(0),
        }
        out.push(fits::<u8>(z.name.len(), "client name")?);
        out.extend_from_slice(z.name.as_bytes());
        out.extend_from_slice(&fits::<u16>(z.path.len(), "client path")?.to_le_bytes());
        out.extend_from_slice(z.path.as_bytes());
        if with_meta {
            let m = if z.meta.is_empty() {
                Vec::new()
            } else {
                serde_json::to_vec(&z.meta).map_err(|e| e.to_string())?
            };
            if m.len() > MAX_META {
                return Err(format!("client '{}': its metadata is too long", z.name));
            }
            out.extend_from_slice(&fits::<u16>(m.len(), "client metadata")?.to_le_bytes());
            out.extend_from_slice(&m);
        }
    }
    Ok(out)
}

pub fn parse(bytes: &[u8]) -> Result<Vec<ZoneRecord>, String> {
    let mut r = Reader::new(bytes);
    let v = r.u8("zone table version")?;
    if !(1..=VERSION_META).contains(&v) {
        return Err(format!("zone table version {v} unknown"));
    }
    let n = r.u16("zone count")? as usize;
    let mut zones = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let id = r.array::<16>("zone id")?;
        let key = Key32::from_bytes(r.array::<32>("zone key")?);
        let flags = if v >= 2 { r.u8("zone flags")? } else { 0 };
        if flags & !(FLAG_RETIRING | FLAG_ADOPTING) != 0 || flags == FLAG_ADOPTING {
            return Err(format!("unknown zone flags {flags:#x}"));
        }
        let retiring = if flags & FLAG_RETIRING != 0 {
            Some(Key32::from_bytes(r.array::<32>("retiring zone key")?))
        } else {
            None
        };
        let adopting = if flags & FLAG_ADOPTING != 0 {
            Some(r.array::<16>("adopted zone id")?)
        } else {
            None
        };
        let nl = r.u8("zone name length")? as usize;
        let name = String::from_utf8(r.take(nl, "zone name")?.to_vec())
            .map_err(|_| "zone name is not UTF-8".to_string())?;
        let pl = r.u16("zone path length")? as usize;
        let path = String::from_utf8(r.take(pl, "zone path")?.to_vec())
            .map_err(|_| "zone path is not UTF-8".to_string())?;
        let meta = if v >= VERSION_META {
            let ml = r.u16("client metadata length")? as usize;
            if ml > MAX_META {
                return Err("client metadata too long".into());
            }
            let m = r.take(ml, "client metadata")?;
            if m.is_empty() {
                ClientMeta::default()
            } else {
                serde_json::from_slice(m).map_err(|e| format!("client metadata: {e}"))?
            }
        } else {
            ClientMeta::default()
        };
        zones.push(ZoneRecord {
            id,
            key,
            name,
            path,
            retiring,
            adopting,
            meta,
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
                retiring: None,
                adopting: None,
                meta: ClientMeta::default(),
            },
            ZoneRecord {
                id: [3; 16],
                key: Key32::from_bytes([4; 32]),
                name: "acme".into(),
                path: "/clients/acme".into(),
                retiring: Some(Key32::from_bytes([5; 32])),
                adopting: None,
                meta: ClientMeta::default(),
            },
            ZoneRecord {
                id: [6; 16],
                key: Key32::from_bytes([7; 32]),
                name: "globex".into(),
                path: "/clients/globex".into(),
                retiring: Some(Key32::from_bytes([8; 32])),
                adopting: Some([9; 16]),
                meta: ClientMeta::default(),
            },
        ];
        let bytes = encode(&zs).unwrap();
        let back = parse(&bytes).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[1].path, "/clients/acme");
        assert_eq!(back[1].key.as_bytes(), &[4; 32]);
        assert_eq!(
            back[1].retiring.as_ref().map(|k| *k.as_bytes()),
            Some([5; 32])
        );
        assert!(back[0].retiring.is_none());
        assert_eq!(back[1].retiring_id(), [3; 16]);
        assert_eq!(back[2].retiring_id(), [9; 16]);
        // Bit 1 alone, or unknown bits, are refused.
        let mut odd = bytes.to_vec();
        let flags_at = 1 + 2 + 16 + 32;
        odd[flags_at] = FLAG_ADOPTING;
        assert!(parse(&odd).is_err());
        for n in 0..bytes.len() {
            assert!(parse(&bytes[..n]).is_err());
        }
    }

    #[test]
    fn names_and_paths_at_their_limit_fit_and_one_past_is_refused() {
        let zone = |name: String, path: String| ZoneRecord {
            id: [1; 16],
            key: Key32::from_bytes([2; 32]),
            name,
            path,
            retiring: None,
            adopting: None,
            meta: ClientMeta::default(),
        };
        let root = || zone(String::new(), "/".into());
        let at = encode(&[
            root(),
            zone("n".repeat(255), format!("/{}", "p".repeat(65_534))),
        ])
        .unwrap();
        let back = parse(&at).unwrap();
        assert_eq!(back[1].name.len(), 255);
        assert_eq!(back[1].path.len(), 65_535);
        let e = encode(&[root(), zone("n".repeat(256), "/x".into())]).unwrap_err();
        assert!(e.contains("client name is too long (256"), "{e}");
        let e =
            encode(&[root(), zone("n".into(), format!("/{}", "p".repeat(65_535)))]).unwrap_err();
        assert!(e.contains("client path is too long"), "{e}");
    }

    /// Metadata makes a version 3 table; without any, version 2 as before (an earlier
    /// tutela still reads it), and both round-trip.
    #[test]
    fn metadata_round_trips_in_version_3_only_when_there_is_some() {
        let zone = |name: &str, path: &str, meta: ClientMeta| ZoneRecord {
            id: [1; 16],
            key: Key32::from_bytes([2; 32]),
            name: name.into(),
            path: path.into(),
            retiring: None,
            adopting: None,
            meta,
        };
        let plain = encode(&[zone("", "/", ClientMeta::default())]).unwrap();
        assert_eq!(plain[0], VERSION);
        let meta = ClientMeta {
            opened_ms: Some(1),
            reference: Some("M-2026-014".into()),
            responsible: None,
            retain: Some("7y after close".into()),
            closed_ms: Some(2),
            hold: Some(Hold {
                reason: "litigation".into(),
                since_ms: 3,
                by: "root".into(),
            }),
        };
        let b = encode(&[
            zone("", "/", ClientMeta::default()),
            zone("acme", "/clients/acme", meta.clone()),
        ])
        .unwrap();
        assert_eq!(b[0], VERSION_META);
        let back = parse(&b).unwrap();
        assert_eq!(back[1].meta, meta);
        assert!(back[0].meta.is_empty());
        for n in 0..b.len() {
            assert!(parse(&b[..n]).is_err());
        }
        // An unknown field in the metadata is damage, not ignored.
        let text = String::from_utf8_lossy(&b).replace("\"reference\"", "\"referenze\"");
        assert!(parse(text.as_bytes()).is_err());
    }
}
