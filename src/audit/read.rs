//! Reading the log: every chain verified record by record, then the chains checked against
//! each other and merged in time order.

use super::anchor::{self, Anchor};
use super::chain::{self, Chain};
use super::{
    hmac_chain, prune, read_segment, sealed_genesis, sealed_info, Keys, Record, REPLICA_HEADS,
};
use crate::crypto;
use crate::error::{Error, Result};
use crate::format::audit::VERSION;
use crate::format::audit::{self as frame, HeaderError, Next};
use std::path::{Path, PathBuf};

/// No real log gets near this many segments (16 MiB each); numbers past it are refused, so
/// the next number never wraps.
const MAX_SEGMENT_NO: u64 = 1 << 48;

pub(super) fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:016}.seg"))
}

/// A chain directory's segments, by number.
pub(super) fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::Io(e)),
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let Some(n) = name
            .strip_suffix(".seg")
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        // Only the names tutela writes: "1.seg" beside "0000000000000001.seg" would be a
        // second segment 1.
        if name != segment_path(Path::new(""), n).to_string_lossy() {
            continue;
        }
        if n > MAX_SEGMENT_NO {
            return Err(Error::AuditTampered(format!(
                "{name}: segment number {n} is beyond any real log (planted to make the \
                 numbering wrap)"
            )));
        }
        out.push((n, e.path()));
    }
    out.sort();
    Ok(out)
}

/// What `verify` found in one chain.
#[derive(Debug, Default)]
pub struct Report {
    pub records: u64,
    pub segments: u64,
    /// A record was cut short by a crash (the chain continues past it): not tampering.
    pub torn_tail: bool,
    /// The first problem, naming segment and record.
    pub bad: Option<String>,
    /// Where the log starts when older records were pruned.
    pub pruned: Option<prune::Checkpoint>,
    /// One entry per segment read whole, oldest first (what `prune` decides from).
    pub spans: Vec<SegmentSpan>,
    /// The last record, as an anchor to keep outside the vault.
    pub head: Option<Anchor>,
    /// Anchors given that lie before the pruning point (nothing left to compare).
    pub anchors_pruned: u64,
    /// The sequence numbers the chain holds: `first_seq..next_seq`.
    pub first_seq: u64,
    pub next_seq: u64,
    /// The first 16 bytes of each record's MAC, from `first_seq` on, when asked for (to check
    /// what other replicas saw).
    digests: Vec<[u8; anchor::DIGEST_LEN]>,
}

/// What one segment holds, as `read_all` found it.
#[derive(Debug, Clone)]
pub struct SegmentSpan {
    pub number: u64,
    pub path: PathBuf,
    pub records: u64,
    /// The newest record's time, if it holds any.
    pub newest_ms: Option<u64>,
    /// The chain value and sequence number the next segment continues from.
    pub end_mac: [u8; 32],
    pub end_seq: u64,
}

/// One chain's verdict.
#[derive(Debug)]
pub struct ChainReport {
    pub chain: Chain,
    pub report: Report,
}

/// What `verify` found in the whole log.
#[derive(Debug, Default)]
pub struct LogReport {
    pub chains: Vec<ChainReport>,
    /// The first problem in any chain (named by its directory when there are several), or
    /// between them.
    pub bad: Option<String>,
    /// Anchors given that lie before a pruning point.
    pub anchors_pruned: u64,
    /// Heads of other chains that replicas recorded, found unchanged (or pruned since).
    pub cross_checked: u64,
    /// Files beside segments that are copies of one under another name: what a sync tool
    /// leaves when two machines wrote the same segment (a cloned machine). Kept, named here.
    pub segment_copies: Vec<String>,
}

impl LogReport {
    pub fn records(&self) -> u64 {
        self.chains.iter().map(|c| c.report.records).sum()
    }
    pub fn segments(&self) -> u64 {
        self.chains.iter().map(|c| c.report.segments).sum()
    }
    pub fn torn_tail(&self) -> bool {
        self.chains.iter().any(|c| c.report.torn_tail)
    }
    /// Each chain's last record, as anchors to keep outside the vault.
    pub fn heads(&self) -> Vec<Anchor> {
        self.chains.iter().filter_map(|c| c.report.head).collect()
    }
}

/// Reads and verifies every record of every chain; `each` gets the ones that verify, in time
/// order across chains.
pub fn read_all(vault: &Path, keys: &Keys, each: impl FnMut(Record)) -> Result<LogReport> {
    read_all_anchored(vault, keys, &[], each)
}

/// `read_all`, also checking that each chain still reaches each of its anchors, unchanged,
/// and the heads replicas saw of each other's chains.
pub fn read_all_anchored(
    vault: &Path,
    keys: &Keys,
    anchors: &[Anchor],
    mut each: impl FnMut(Record),
) -> Result<LogReport> {
    let chains = chain::all(vault)?;
    let mut log = LogReport {
        segment_copies: chain::segment_copies(vault),
        ..LogReport::default()
    };
    let several = chains.len() > 1;
    // Heads seen by other replicas: (who saw it, when, what).
    let mut seen: Vec<(String, u64, Anchor)> = Vec::new();
    let reports = if several {
        merge_chains(&chains, keys, anchors, &mut seen, &mut each)
    } else {
        chains
            .iter()
            .map(|c| {
                let label = c.label();
                let mut one = |r: Record| {
                    note_heads(&r, &label, &mut seen);
                    each(r);
                };
                read_chain_inner(c, keys, anchors, false, &mut one)
            })
            .collect()
    };
    for (c, rep) in chains.into_iter().zip(reports) {
        let rep = rep?;
        let label = c.label();
        if log.bad.is_none() {
            log.bad = rep.bad.as_ref().map(|b| {
                if several {
                    format!("{label}: {b}")
                } else {
                    b.clone()
                }
            });
        }
        log.anchors_pruned += rep.anchors_pruned;
        log.chains.push(ChainReport {
            chain: c,
            report: rep,
        });
    }
    // An anchor for a chain the log does not hold at all is the strongest cut of all.
    if log.bad.is_none() {
        if let Some(a) = anchors
            .iter()
            .find(|a| !log.chains.iter().any(|c| c.chain.replica == a.chain))
        {
            log.bad = Some(format!(
                "anchor {a}: the log holds no such chain (it was removed)"
            ));
        }
    }
    if log.bad.is_none() {
        log.bad = cross_check(&mut log, &seen);
    }
    Ok(log)
}

/// Notes the heads another replica recorded of the chains it saw (`REPLICA_HEADS`).
fn note_heads(r: &Record, label: &str, seen: &mut Vec<(String, u64, Anchor)>) {
    if r.op == REPLICA_HEADS {
        for a in r.detail.iter().flat_map(|d| d.split_whitespace()) {
            if let Ok(a) = Anchor::parse(a) {
                seen.push((label.to_string(), r.time_ms, a));
            }
        }
    }
}

/// Records each chain's reader may run ahead of the merge: what a log of several chains holds
/// in memory at once, per chain, however long the log.
pub(crate) const MERGE_AHEAD: usize = 1024;

/// Reads several chains at once, one thread each, and hands their records to `each` merged in
/// time order (ties in chain order; each chain's own order is kept, so a chain whose clock
/// went back stays as written). Memory stays bounded by `MERGE_AHEAD` records per chain,
/// where collecting and sorting held the whole log.
fn merge_chains(
    chains: &[Chain],
    keys: &Keys,
    anchors: &[Anchor],
    seen: &mut Vec<(String, u64, Anchor)>,
    each: &mut dyn FnMut(Record),
) -> Vec<Result<Report>> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    use std::sync::mpsc::{sync_channel, Receiver};
    std::thread::scope(|scope| {
        let mut readers = Vec::new();
        let mut feeds: Vec<Receiver<Record>> = Vec::new();
        for c in chains {
            let (tx, rx) = sync_channel::<Record>(MERGE_AHEAD);
            feeds.push(rx);
            readers.push(scope.spawn(move || {
                // A closed receiver (the merge stopped) ends the sends, not the verification.
                let mut send = |r: Record| {
                    let _ = tx.send(r);
                };
                read_chain_inner(c, keys, anchors, true, &mut send)
            }));
        }
        // (time, chain index, arrival) -> the record, lowest first.
        let mut heads = BinaryHeap::new();
        let mut pending: Vec<Option<Record>> = (0..feeds.len()).map(|_| None).collect();
        let mut arrival = 0u64;
        for (i, f) in feeds.iter().enumerate() {
            if let Ok(r) = f.recv() {
                heads.push(Reverse((r.time_ms, i, arrival)));
                arrival += 1;
                pending[i] = Some(r);
            }
        }
        // Heads noted per chain, then chain by chain (the order cross-checking reports in).
        let mut noted: Vec<Vec<(String, u64, Anchor)>> = vec![Vec::new(); chains.len()];
        let labels: Vec<String> = chains.iter().map(Chain::label).collect();
        while let Some(Reverse((_, i, _))) = heads.pop() {
            let Some(r) = pending[i].take() else { continue };
            note_heads(&r, &labels[i], &mut noted[i]);
            each(r);
            if let Ok(next) = feeds[i].recv() {
                heads.push(Reverse((next.time_ms, i, arrival)));
                arrival += 1;
                pending[i] = Some(next);
            }
        }
        seen.extend(noted.into_iter().flatten());
        readers
            .into_iter()
            .map(|h| {
                h.join().unwrap_or(Err(Error::Corrupt {
                    what: "audit log (a chain's reader stopped)",
                }))
            })
            .collect()
    })
}

/// Checks the heads replicas recorded of each other's chains: the first contradiction.
fn cross_check(log: &mut LogReport, seen: &[(String, u64, Anchor)]) -> Option<String> {
    let mut ok = 0;
    let mut problem = None;
    for (by, when, a) in seen {
        let when = prune::stamp(*when);
        let Some(c) = log.chains.iter().find(|c| c.chain.replica == a.chain) else {
            problem.get_or_insert(format!(
                "{by} saw chain {} reach record {} on {when}, and the log no longer holds \
                 that chain (it was removed)",
                chain_of(a),
                a.seq
            ));
            continue;
        };
        let r = &c.report;
        if r.bad.is_some() || a.seq < r.first_seq {
            ok += u64::from(r.bad.is_none());
            continue;
        }
        let Some(d) = r.digests.get((a.seq - r.first_seq) as usize) else {
            problem.get_or_insert(format!(
                "{}: ends before record {} (anchor {a}), which {by} saw on {when}: records were \
                 cut off its end, or a sync tool has not yet copied them here (verify again \
                 once it has)",
                c.chain.label(),
                a.seq
            ));
            continue;
        };
        if *d != a.digest {
            problem.get_or_insert(format!(
                "{}: record {} differs from what {by} saw on {when} (anchor {a}): the chain \
                 was cut back and written on, or rewritten",
                c.chain.label(),
                a.seq
            ));
            continue;
        }
        ok += 1;
    }
    log.cross_checked = ok;
    problem
}

fn chain_of(a: &Anchor) -> String {
    match &a.chain {
        Some(id) => format!("{}/{}", super::DIR_NAME, chain::dir_name(id)),
        None => super::DIR_NAME.to_string(),
    }
}

/// Reads and verifies one chain in order; `each` gets the records that verify.
pub fn read_chain(
    c: &Chain,
    keys: &Keys,
    anchors: &[Anchor],
    mut each: impl FnMut(Record),
) -> Result<Report> {
    read_chain_inner(c, keys, anchors, false, &mut each)
}

fn read_chain_inner(
    c: &Chain,
    keys: &Keys,
    anchors: &[Anchor],
    keep_digests: bool,
    each: &mut dyn FnMut(Record),
) -> Result<Report> {
    let dir = &c.dir;
    let mut rep = Report::default();
    let mut prev = keys.genesis(c);
    let mut seq_expected = 0u64;
    let mut first_segment = 0u64;
    match prune::Checkpoint::read(c, keys) {
        Ok(Some(cp)) => {
            prev = cp.prev;
            seq_expected = cp.first_seq;
            first_segment = cp.first_segment;
            rep.pruned = Some(cp);
        }
        Ok(None) => {}
        Err(Error::AuditTampered(why)) => {
            rep.bad = Some(why);
            return Ok(rep);
        }
        Err(e) => return Err(e),
    }
    rep.first_seq = seq_expected;
    rep.next_seq = seq_expected;
    // Segments older than the pruning point are left over from an interrupted prune.
    let segs: Vec<_> = segments(dir)?
        .into_iter()
        .filter(|(n, _)| *n >= first_segment)
        .collect();
    if segs.is_empty() && rep.pruned.is_some() {
        rep.bad = Some(format!(
            "segment {first_segment:016}.seg: missing (the log was pruned up to it, and nothing is left)"
        ));
        return Ok(rep);
    }
    let start_seq = seq_expected;
    let replica_name = c.replica.map(|_| c.label());
    // Whether the chain's segments are sealed to the audit public key (a client-scoped
    // mount's): decided by its first segment, and the same for all.
    let mut sealed_chain: Option<bool> = None;
    for (i, (n, path)) in segs.iter().enumerate() {
        let last_segment = i + 1 == segs.len();
        rep.segments += 1;
        let bytes = read_segment(path)?;
        let name = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        if i == 0 && *n != first_segment {
            rep.bad = Some(format!(
                "segment {name}: earlier segments are missing (the log starts at segment {n}, not {first_segment})"
            ));
            return Ok(rep);
        }
        if i > 0 && *n != segs[i - 1].0 + 1 {
            rep.bad = Some(format!("segment {name}: the segment before it is missing"));
            return Ok(rep);
        }
        let hdr = match frame::header(&bytes) {
            Ok(h) => h,
            Err(HeaderError::Torn) if last_segment => {
                rep.torn_tail = true;
                break;
            }
            Err(HeaderError::Version(v)) => {
                return Err(Error::UnsupportedVersion {
                    found: v,
                    supported: VERSION,
                })
            }
            Err(_) => {
                rep.bad = Some(format!("segment {name}: header damaged"));
                return Ok(rep);
            }
        };
        let sealed = hdr.encapped.is_some();
        match (sealed_chain, c.replica) {
            (None, None) if sealed => {
                rep.bad = Some(format!(
                    "segment {name}: a sealed segment in the original chain (only replicas write them)"
                ));
                return Ok(rep);
            }
            (None, _) => {
                sealed_chain = Some(sealed);
                if sealed && rep.pruned.is_none() {
                    if let Some(id) = &c.replica {
                        prev = sealed_genesis(&keys.vault_id, id);
                    }
                }
            }
            (Some(s), _) if s != sealed => {
                rep.bad = Some(format!(
                    "segment {name}: sealed and unsealed segments in one chain"
                ));
                return Ok(rep);
            }
            _ => {}
        }
        // A sealed segment's keys come from its encapsulated key and the audit key pair.
        let seg_keys = match (&hdr.encapped, &c.replica) {
            (Some(e), Some(id)) => {
                match crate::crypto::sealed::open_segment(
                    &keys.seal,
                    e,
                    &sealed_info(&keys.vault_id, id, *n),
                ) {
                    Ok(k) => Some(k),
                    Err(_) => {
                        rep.bad = Some(format!("segment {name}: header does not authenticate"));
                        return Ok(rep);
                    }
                }
            }
            _ => None,
        };
        let (mac_key, enc_key) = match &seg_keys {
            Some(k) => (&k.mac, &k.enc),
            None => (&keys.mac, &keys.enc),
        };
        if hmac_chain(mac_key, &hdr.prev, &[hdr.signed]) != hdr.mac || hdr.segment != *n {
            rep.bad = Some(format!("segment {name}: header does not authenticate"));
            return Ok(rep);
        }
        if hdr.prev != prev {
            rep.bad = Some(format!(
                "segment {name}: does not continue the previous segment (records were removed, \
                 or the segment belongs to another chain)"
            ));
            return Ok(rep);
        }
        let mut frames = frame::Frames::new(&bytes);
        let mut idx = 0u64;
        let mut newest_ms = None;
        loop {
            let here = format!("segment {name}, record {idx} (sequence {seq_expected})");
            let f = match frames.next_frame() {
                Next::Frame(f) => f,
                Next::End => break,
                // A record cut short ends its segment: a crash mid-write. The next segment
                // (written after the crash) must then continue from the last whole record,
                // which the header check above enforces, so a cut made later is still caught.
                Next::Torn => {
                    rep.torn_tail = true;
                    break;
                }
                Next::BadLength => {
                    rep.bad = Some(format!("{here}: length field damaged"));
                    return Ok(rep);
                }
            };
            let mac = hmac_chain(mac_key, &prev, &[f.seq_bytes, f.sealed]);
            if mac[..] != *f.mac {
                rep.bad = Some(format!(
                    "{here}: does not authenticate (changed, inserted, deleted or reordered)"
                ));
                return Ok(rep);
            }
            let seq = f.seq;
            if seq != seq_expected {
                rep.bad = Some(format!("{here}: sequence number {seq} out of order"));
                return Ok(rep);
            }
            if let Some(why) = anchor::check_record(anchors, c.replica, seq, &mac) {
                rep.bad = Some(format!("{here}: {why}"));
                return Ok(rep);
            }
            let head = Anchor::of(c.replica, seq, &mac);
            if keep_digests {
                rep.digests.push(head.digest);
            }
            rep.head = Some(head);
            let plain = crypto::open_random(
                enc_key.as_bytes(),
                &seq.to_le_bytes(),
                f.sealed,
                "audit record",
            )?;
            let mut rec: Record = serde_json::from_slice(&plain).map_err(|_| Error::Corrupt {
                what: "audit record (authenticated but unparsable)",
            })?;
            rec.replica = replica_name.clone();
            newest_ms = newest_ms.max(Some(rec.time_ms));
            each(rec);
            prev = mac;
            seq_expected += 1;
            rep.next_seq = seq_expected;
            rep.records += 1;
            idx += 1;
        }
        rep.spans.push(SegmentSpan {
            number: *n,
            path: path.clone(),
            records: idx,
            newest_ms,
            end_mac: prev,
            end_seq: seq_expected,
        });
    }
    let (cut, pruned) = anchor::check_end(anchors, c.replica, start_seq, seq_expected);
    rep.bad = cut;
    rep.anchors_pruned = pruned;
    Ok(rep)
}
