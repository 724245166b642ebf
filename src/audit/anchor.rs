//! Anchors: what catches records cut off the end of the log. The chain proves that nothing
//! before its last record was changed, but not that the last record is the last one written:
//! deleting the newest segment leaves a shorter chain that verifies. An anchor (a record's
//! sequence number and the first 16 bytes of its MAC, as `audit verify` prints for the
//! head) kept outside the vault proves later that the log still reaches that record
//! unchanged. Without the MAC key nobody can make a record that matches one. A replica's
//! anchor names its chain (`r-<id>/SEQ:HEX`); one without a name is the original chain's.

use super::chain::{self, ReplicaId};
use crate::error::{Error, Result};
use std::fmt;

pub const DIGEST_LEN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    /// The replica whose chain it is in; `None` for the original chain.
    pub chain: Option<ReplicaId>,
    pub seq: u64,
    pub digest: [u8; DIGEST_LEN],
}

impl Anchor {
    pub fn of(chain: Option<ReplicaId>, seq: u64, mac: &[u8; 32]) -> Anchor {
        let mut digest = [0u8; DIGEST_LEN];
        digest.copy_from_slice(&mac[..DIGEST_LEN]);
        Anchor { chain, seq, digest }
    }

    /// `[r-ID/]SEQ:HEX`, as `audit verify` prints it.
    pub fn parse(s: &str) -> Result<Anchor> {
        let bad = || {
            Error::Usage(format!(
                "'{s}' is not an anchor: use [r-REPLICA/]SEQUENCE:DIGEST as `tutela audit verify` prints it (e.g. r-0123456789abcdef/1342:{})",
                "0f".repeat(DIGEST_LEN)
            ))
        };
        let (chain, rest) = match s.trim().split_once('/') {
            Some((r, rest)) => (Some(chain::parse_dir_name(r).ok_or_else(bad)?), rest),
            None => (None, s.trim()),
        };
        let (seq, hex) = rest.split_once(':').ok_or_else(bad)?;
        let seq = seq.parse::<u64>().map_err(|_| bad())?;
        if hex.len() != 2 * DIGEST_LEN || !hex.is_ascii() {
            return Err(bad());
        }
        let mut digest = [0u8; DIGEST_LEN];
        for (i, d) in digest.iter_mut().enumerate() {
            *d = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Anchor { chain, seq, digest })
    }
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(id) = &self.chain {
            write!(f, "{}/", chain::dir_name(id))?;
        }
        write!(f, "{}:", self.seq)?;
        self.digest.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// A verified record of chain `chain` against the anchors: the problem if it contradicts one.
pub(super) fn check_record(
    anchors: &[Anchor],
    chain: Option<ReplicaId>,
    seq: u64,
    mac: &[u8; 32],
) -> Option<String> {
    let a = anchors.iter().find(|a| a.chain == chain && a.seq == seq)?;
    (Anchor::of(chain, seq, mac) != *a).then(|| {
        format!("differs from anchor {a}: the log was cut back and written on, or rewritten")
    })
}

/// After the whole log (records `first_seq..next_seq`): the first anchor it no longer
/// reaches, and how many anchors lie before a pruning point (removed on purpose, by
/// someone holding the keys, so there is nothing to compare them with).
pub(super) fn check_end(
    anchors: &[Anchor],
    chain: Option<ReplicaId>,
    first_seq: u64,
    next_seq: u64,
) -> (Option<String>, u64) {
    let anchors: Vec<&Anchor> = anchors.iter().filter(|a| a.chain == chain).collect();
    let missing = anchors
        .iter()
        .filter(|a| a.seq >= next_seq)
        .min_by_key(|a| a.seq);
    let problem = missing.map(|a| {
        format!(
            "the log ends before record {} (anchor {a}): records were cut off its end",
            a.seq
        )
    });
    let pruned = anchors.iter().filter(|a| a.seq < first_seq).count() as u64;
    (problem, pruned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_print_and_parse_back() {
        let a = Anchor::of(None, 1342, &[0xab; 32]);
        let s = a.to_string();
        assert_eq!(s, format!("1342:{}", "ab".repeat(16)));
        assert_eq!(Anchor::parse(&s).unwrap(), a);
        let r = Anchor::of(Some([1, 2, 3, 4, 5, 6, 7, 0xff]), 7, &[0xcd; 32]);
        let s = r.to_string();
        assert_eq!(s, format!("r-01020304050607ff/7:{}", "cd".repeat(16)));
        assert_eq!(Anchor::parse(&s).unwrap(), r);
        for bad in [
            "",
            "1342",
            "x:ab",
            "1342:abc",
            &format!("1342:{}", "zz".repeat(16)),
            &format!("r-0102/7:{}", "cd".repeat(16)),
            &format!("tutela.audit/7:{}", "cd".repeat(16)),
        ] {
            assert!(matches!(Anchor::parse(bad), Err(Error::Usage(_))), "{bad}");
        }
    }
}
