//! The audit log's pruning checkpoint, `tutela.audit/pruned` (FORMAT.md, "Pruning"): where a
//! pruned log starts. The layout only; its MAC is the audit module's (it holds the key).
//!
//! ```text
//! magic "TUTELAPR" | version u16 | first segment u64 | first sequence u64 | prev MAC (32)
//! | cutoff ms u64 | pruned at ms u64 | records pruned u64 | uid u32 | MAC (32)
//! ```

use super::Reader;

pub const MAGIC: &[u8; 8] = b"TUTELAPR";
pub const VERSION: u16 = 1;
/// The bytes the MAC covers.
pub const BODY_LEN: usize = 8 + 2 + 8 + 8 + 32 + 8 + 8 + 8 + 4;
pub const LEN: usize = BODY_LEN + 32;

/// Where a pruned log starts, and who pruned it when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub first_segment: u64,
    pub first_seq: u64,
    /// The chain value the first kept segment's header continues from.
    pub prev: [u8; 32],
    /// Records older than this were asked to go (whole segments only).
    pub cutoff_ms: u64,
    pub pruned_at_ms: u64,
    /// Records removed by every prune so far.
    pub records_pruned: u64,
    pub uid: u32,
}

/// Why a checkpoint's bytes could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum CheckpointError {
    NotCheckpoint,
    Version(u16),
    Length,
}

impl Checkpoint {
    /// The bytes the MAC covers; the writer appends the MAC.
    pub fn body(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(LEN);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&self.first_segment.to_le_bytes());
        b.extend_from_slice(&self.first_seq.to_le_bytes());
        b.extend_from_slice(&self.prev);
        b.extend_from_slice(&self.cutoff_ms.to_le_bytes());
        b.extend_from_slice(&self.pruned_at_ms.to_le_bytes());
        b.extend_from_slice(&self.records_pruned.to_le_bytes());
        b.extend_from_slice(&self.uid.to_le_bytes());
        b
    }

    /// The checkpoint, the bytes its MAC covers, and the MAC (not checked here).
    pub fn parse(b: &[u8]) -> Result<(Checkpoint, &[u8], [u8; 32]), CheckpointError> {
        let mut r = Reader::new(b);
        let not = |_| CheckpointError::NotCheckpoint;
        if r.take(MAGIC.len(), "magic").map_err(not)? != MAGIC {
            return Err(CheckpointError::NotCheckpoint);
        }
        let version = r.u16("version").map_err(not)?;
        if version != VERSION {
            return Err(CheckpointError::Version(version));
        }
        if b.len() != LEN {
            return Err(CheckpointError::Length);
        }
        let len = |_| CheckpointError::Length;
        let cp = Checkpoint {
            first_segment: r.u64("first segment").map_err(len)?,
            first_seq: r.u64("first sequence").map_err(len)?,
            prev: r.array("previous MAC").map_err(len)?,
            cutoff_ms: r.u64("cutoff").map_err(len)?,
            pruned_at_ms: r.u64("pruned at").map_err(len)?,
            records_pruned: r.u64("records pruned").map_err(len)?,
            uid: r.u32("uid").map_err(len)?,
        };
        let mac = r.array("MAC").map_err(len)?;
        Ok((cp, &b[..BODY_LEN], mac))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_reads_back_and_damage_is_named() {
        let cp = Checkpoint {
            first_segment: 3,
            first_seq: 1000,
            prev: [7; 32],
            cutoff_ms: 1,
            pruned_at_ms: 2,
            records_pruned: 999,
            uid: 1001,
        };
        let mut b = cp.body();
        assert_eq!(b.len(), BODY_LEN);
        b.extend_from_slice(&[5; 32]);
        let (back, body, mac) = Checkpoint::parse(&b).unwrap();
        assert_eq!((back, body, mac), (cp, &b[..BODY_LEN], [5; 32]));
        for cut in 0..b.len() {
            assert!(Checkpoint::parse(&b[..cut]).is_err());
        }
        let mut v = b.clone();
        v[8] = 9;
        assert_eq!(
            Checkpoint::parse(&v).unwrap_err(),
            CheckpointError::Version(9)
        );
        v = b.clone();
        v.push(0);
        assert_eq!(Checkpoint::parse(&v).unwrap_err(), CheckpointError::Length);
    }
}
