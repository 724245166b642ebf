//! The audit log: encrypted, hash-chained, append-only records in segment files under
//! `VAULT/tutela.audit/`. Separate from the debug log (which never holds paths); this one holds
//! plaintext paths, so every record is sealed, and every record carries an HMAC over the
//! previous record's MAC, so changing, deleting, inserting or reordering a record breaks the
//! chain at a place `verify` names. Layout in FORMAT.md ("Audit log").

use crate::crypto::secret::Key32;
use crate::crypto::{self, Id};
use crate::error::{Error, Result};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const DIR_NAME: &str = "tutela.audit";
use crate::format::audit::{self as frame, HeaderError, Next, HEADER_LEN};
pub use crate::format::audit::{MAGIC, VERSION};
/// A new segment starts past this size (and at every mount).
const SEGMENT_MAX: u64 = 16 * 1024 * 1024;

/// A segment's bytes; a segment never grows far past SEGMENT_MAX (one record more), so
/// anything much larger (a sparse file, a link to a device) is refused, not read.
fn read_segment(path: &Path) -> Result<Vec<u8>> {
    crate::sys::read_vault_file(path, 4 * SEGMENT_MAX, false)
}

pub mod anchor;
pub mod prune;

/// One audited event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub uid: u32,
    pub user: String,
    pub pid: u32,
    pub program: String,
    pub op: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// "ok", "denied", or an error name such as "ENOENT".
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Record {
    /// A record made by this process now.
    pub fn now(op: &str, path: &str) -> Record {
        Record::by(op, path, crate::sys::getuid(), std::process::id())
    }

    /// A record of something process `pid` of user `uid` did now.
    pub fn by(op: &str, path: &str, uid: u32, pid: u32) -> Record {
        Record {
            time_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            uid,
            user: String::new(),
            pid,
            program: "tutela".into(),
            op: op.into(),
            path: path.into(),
            path2: None,
            client: None,
            result: "ok".into(),
            detail: None,
        }
    }
}

/// The two audit keys, derived from the master key at unlock and kept by the daemon.
pub struct Keys {
    pub enc: Key32,
    pub mac: Key32,
    pub vault_id: Id,
}

impl Keys {
    /// The audit log's keys for vault `vault_id` (labels: FORMAT.md, "Key derivation").
    /// Derived here, where they are used; the vault only lends its master key.
    pub fn derive(master: &Key32, vault_id: &Id) -> Keys {
        Keys {
            enc: crate::crypto::kdf::audit_enc_key(master, vault_id),
            mac: crate::crypto::kdf::audit_mac_key(master, vault_id),
            vault_id: *vault_id,
        }
    }

    pub fn duplicate(&self) -> Keys {
        Keys {
            enc: self.enc.duplicate(),
            mac: self.mac.duplicate(),
            vault_id: self.vault_id,
        }
    }

    fn chain(&self, prev: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(self.mac.as_bytes())
            .unwrap_or_else(|_| unreachable!());
        m.update(prev);
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    fn genesis(&self) -> [u8; 32] {
        self.chain(&[0u8; 32], &[b"tutela/v1/audit-genesis", &self.vault_id])
    }
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:016}.seg"))
}

/// Names in the log directory that start as a segment's name and are not one: a sync tool's
/// conflict copy (`0000000000000002.sync-conflict-20261204-101112-ABCDEF7.seg`) or the like.
fn segment_copies(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.len() > 16
                && n.as_bytes()[..16].iter().all(u8::is_ascii_digit)
                && !(n.len() == 20 && n.ends_with(".seg"))
        })
        .collect();
    out.sort();
    out
}

fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
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

/// No real log gets near this many segments (16 MiB each); numbers past it are refused, so
/// the next number never wraps.
const MAX_SEGMENT_NO: u64 = 1 << 48;

/// Takes group and other access off segments an earlier version wrote while the daemon's
/// umask was 0: anyone able to write one could cut the evidence short.
fn close_segments(dir: &Path) -> Result<()> {
    for (_, p) in segments(dir)? {
        crate::sys::private_file(&p)?;
    }
    Ok(())
}

/// What `verify` found.
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
    pub head: Option<anchor::Anchor>,
    /// Anchors given that lie before the pruning point (nothing left to compare).
    pub anchors_pruned: u64,
    /// Files in the log's directory that are copies of a segment under another name: what a
    /// sync tool leaves when two machines wrote the same segment (their records are not in
    /// this log; the file is kept, and named here).
    pub segment_copies: Vec<String>,
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

/// Reads and verifies every record in order; `each` gets the ones that verify.
pub fn read_all(vault: &Path, keys: &Keys, each: impl FnMut(Record)) -> Result<Report> {
    read_all_anchored(vault, keys, &[], each)
}

/// `read_all`, also checking that the log still reaches each anchor, unchanged.
pub fn read_all_anchored(
    vault: &Path,
    keys: &Keys,
    anchors: &[anchor::Anchor],
    mut each: impl FnMut(Record),
) -> Result<Report> {
    let dir = vault.join(DIR_NAME);
    let mut rep = Report {
        segment_copies: segment_copies(&dir),
        ..Report::default()
    };
    let mut prev = keys.genesis();
    let mut seq_expected = 0u64;
    let mut first_segment = 0u64;
    match prune::Checkpoint::read(&dir, keys) {
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
    // Segments older than the pruning point are left over from an interrupted prune.
    let segs: Vec<_> = segments(&dir)?
        .into_iter()
        .filter(|(n, _)| *n >= first_segment)
        .collect();
    if segs.is_empty() && rep.pruned.is_some() {
        rep.bad = Some(format!(
            "segment {first_segment:016}.seg: missing (the log was pruned up to it, and nothing is left)"
        ));
        return Ok(rep);
    }
    let cipher_key = keys.enc.as_bytes();
    let start_seq = seq_expected;
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
        if keys.chain(&hdr.prev, &[hdr.signed]) != hdr.mac || hdr.segment != *n {
            rep.bad = Some(format!("segment {name}: header does not authenticate"));
            return Ok(rep);
        }
        if hdr.prev != prev {
            rep.bad = Some(format!(
                "segment {name}: does not continue the previous segment (records were removed)"
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
            let mac = keys.chain(&prev, &[f.seq_bytes, f.sealed]);
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
            if let Some(why) = anchor::check_record(anchors, seq, &mac) {
                rep.bad = Some(format!("{here}: {why}"));
                return Ok(rep);
            }
            rep.head = Some(anchor::Anchor::of(seq, &mac));
            let plain =
                crypto::open_random(cipher_key, &seq.to_le_bytes(), f.sealed, "audit record")?;
            let rec: Record = serde_json::from_slice(&plain).map_err(|_| Error::Corrupt {
                what: "audit record (authenticated but unparsable)",
            })?;
            newest_ms = newest_ms.max(Some(rec.time_ms));
            each(rec);
            prev = mac;
            seq_expected += 1;
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
    let (cut, pruned) = anchor::check_end(anchors, start_seq, seq_expected);
    rep.bad = cut;
    rep.anchors_pruned = pruned;
    Ok(rep)
}

/// The tail state a writer continues from: next segment number, next sequence, last MAC.
/// Only the newest segment(s) are read: each header names the MAC it continues from, so the
/// cost of a mount does not grow with the size of the whole log.
fn tail(vault: &Path, keys: &Keys) -> Result<(u64, u64, [u8; 32])> {
    let segs = segments(&vault.join(DIR_NAME))?;
    let next_seg = segs.last().map(|(n, _)| n + 1).unwrap_or(0);
    for (_, path) in segs.iter().rev() {
        let bytes = read_segment(path)?;
        let Ok(hdr) = frame::header(&bytes) else {
            continue; // torn at creation: the one before it holds the tail
        };
        let mut prev = hdr.prev;
        let mut last_seq = None;
        let mut frames = frame::Frames::new(&bytes);
        while let Next::Frame(f) = frames.next_frame() {
            let mac = keys.chain(&prev, &[f.seq_bytes, f.sealed]);
            if mac[..] != *f.mac {
                break;
            }
            prev = mac;
            last_seq = Some(f.seq);
        }
        if let Some(seq) = last_seq {
            return Ok((next_seg, seq + 1, prev));
        }
        // A segment without records continues from its header; keep looking back for the
        // sequence number, but the chain value stays the newest header's.
        if let Some(seq) = last_record_seq_before(&segs, path)? {
            return Ok((next_seg, seq + 1, prev));
        }
        // No record left at all: after a prune, numbering goes on from the pruning point.
        let first_seq = prune::Checkpoint::read(&vault.join(DIR_NAME), keys)
            .ok()
            .flatten()
            .map_or(0, |cp| cp.first_seq);
        return Ok((next_seg, first_seq, prev));
    }
    Ok((next_seg, 0, keys.genesis()))
}

/// The sequence number of the last record in segments older than `path` (header-only walk
/// back; record MACs were checked when those segments were continued from).
fn last_record_seq_before(segs: &[(u64, PathBuf)], path: &Path) -> Result<Option<u64>> {
    let idx = segs.iter().position(|(_, p)| p == path).unwrap_or(0);
    for (_, p) in segs[..idx].iter().rev() {
        let bytes = read_segment(p)?;
        let mut last = None;
        if frame::header(&bytes).is_ok() {
            let mut frames = frame::Frames::new(&bytes);
            while let Next::Frame(f) = frames.next_frame() {
                last = Some(f.seq);
            }
        }
        if last.is_some() {
            return Ok(last);
        }
    }
    Ok(None)
}

struct Writer {
    /// Held for the writer's life: one writer per log (and so one mount per vault).
    _lock: std::fs::File,
    dir: PathBuf,
    keys: Keys,
    file: std::fs::File,
    seg: u64,
    size: u64,
    seq: u64,
    prev: [u8; 32],
}

impl Writer {
    fn open(vault: &Path, keys: Keys, wait: Duration) -> Result<Writer> {
        let dir = vault.join(DIR_NAME);
        let lock = take_lock(
            vault,
            wait,
            "the vault's audit log is in use: is the vault mounted already?",
        )?;
        close_segments(&dir)?;
        let (seg, seq, prev) = tail(vault, &keys)?;
        let (file, size) = Self::new_segment(&dir, &keys, seg, &prev)?;
        Ok(Writer {
            _lock: lock,
            dir,
            keys,
            file,
            seg,
            size,
            seq,
            prev,
        })
    }

    fn new_segment(
        dir: &Path,
        keys: &Keys,
        n: u64,
        prev: &[u8; 32],
    ) -> Result<(std::fs::File, u64)> {
        let mut hdr = frame::header_signed(n);
        let mac = keys.chain(prev, &[&hdr]);
        hdr.extend_from_slice(prev);
        hdr.extend_from_slice(&mac);
        let mut f = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .mode(0o600)
            .open(segment_path(dir, n))?;
        f.write_all(&hdr)?;
        f.sync_all()?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok((f, HEADER_LEN as u64))
    }

    fn encode(&mut self, rec: &Record, out: &mut Vec<u8>) -> Result<()> {
        let plain = zeroize::Zeroizing::new(serde_json::to_vec(rec).map_err(|_| Error::Invalid)?);
        let seq = self.seq.to_le_bytes();
        let sealed = crypto::seal_random(self.keys.enc.as_bytes(), &seq, &plain)?;
        let mac = self.keys.chain(&self.prev, &[&seq, &sealed]);
        frame::encode_frame(out, self.seq, &sealed, &mac).map_err(|why| {
            log::error!("audit record not written: {why}");
            Error::Invalid
        })?;
        self.prev = mac;
        self.seq += 1;
        Ok(())
    }

    fn append(&mut self, recs: &[Record]) -> Result<()> {
        if self.size > SEGMENT_MAX {
            self.file.sync_all()?;
            self.seg += 1;
            let (f, s) = Self::new_segment(&self.dir, &self.keys, self.seg, &self.prev)?;
            self.file = f;
            self.size = s;
        }
        let mut buf = Vec::new();
        for r in recs {
            self.encode(r, &mut buf)?;
        }
        // One write per batch: a crash tears at most the batch being written.
        self.file.write_all(&buf)?;
        self.size += buf.len() as u64;
        Ok(())
    }
}

/// Records waiting for the writer thread.
#[derive(Default)]
struct Queue {
    recs: Vec<Record>,
    closed: bool,
}

/// The daemon's handle to the log: records are queued and a writer thread writes them in
/// batches, every 20 ms at most (or at once when many are waiting), and fsyncs at least every
/// second. Queuing wakes nobody: a per-record wake-up cost more than the record itself.
pub struct Sink {
    shared: std::sync::Arc<(std::sync::Mutex<Queue>, std::sync::Condvar)>,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

const BATCH_WAKE: usize = 512;

type Shared = std::sync::Arc<(std::sync::Mutex<Queue>, std::sync::Condvar)>;

/// The sink's writer thread: appends what is queued, syncs once a second, and on close
/// writes the rest and syncs.
fn spawn_writer(sh: Shared, mut w: Writer) -> Result<std::thread::JoinHandle<()>> {
    Ok(std::thread::Builder::new()
        .name("audit".into())
        .spawn(move || {
            let (m, cv) = &*sh;
            let mut last_sync = std::time::Instant::now();
            let mut dirty = false;
            loop {
                let (batch, closed) = {
                    let mut q = m.lock().unwrap_or_else(|p| p.into_inner());
                    if q.recs.is_empty() && !q.closed {
                        q = cv
                            .wait_timeout(q, Duration::from_millis(20))
                            .map(|(g, _)| g)
                            .unwrap_or_else(|p| p.into_inner().0);
                    }
                    (std::mem::take(&mut q.recs), q.closed)
                };
                for chunk in batch.chunks(1024) {
                    if let Err(e) = w.append(chunk) {
                        log::error!("audit log write failed: {e}");
                    }
                    dirty = true;
                }
                if closed {
                    let _ = w.file.sync_all();
                    return;
                }
                if dirty && last_sync.elapsed() >= Duration::from_secs(1) {
                    let _ = w.file.sync_data();
                    dirty = false;
                    last_sync = std::time::Instant::now();
                }
            }
        })?)
}

impl Sink {
    pub fn start(vault: &Path, keys: Keys) -> Result<Sink> {
        let w = Writer::open(vault, keys, Duration::from_secs(10))?;
        let shared: Shared = std::sync::Arc::new((
            std::sync::Mutex::new(Queue::default()),
            std::sync::Condvar::new(),
        ));
        let thread = spawn_writer(shared.clone(), w)?;
        Ok(Sink {
            shared,
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    /// After `close`: opens the log again, with `keys` (a live `rekey --all` re-sealed it
    /// under a new master key), and takes records again.
    pub fn reopen(&self, vault: &Path, keys: Keys) -> Result<()> {
        let w = Writer::open(vault, keys, Duration::from_secs(10))?;
        self.shared
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .closed = false;
        let t = spawn_writer(self.shared.clone(), w)?;
        *self.thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(t);
        Ok(())
    }

    pub fn record(&self, r: Record) {
        let (m, cv) = &*self.shared;
        let mut q = m.lock().unwrap_or_else(|p| p.into_inner());
        if q.closed {
            return;
        }
        q.recs.push(r);
        if q.recs.len() >= BATCH_WAKE {
            cv.notify_one();
        }
    }

    /// Writes everything queued and syncs (also done on drop). Later records are dropped.
    pub fn close(&self) {
        {
            let (m, cv) = &*self.shared;
            m.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
            cv.notify_one();
        }
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.close();
    }
}

/// Takes the log's lock file, waiting up to `wait`: a daemon that was just unmounted may
/// still be closing its log.
fn take_lock(vault: &Path, wait: Duration, busy: &str) -> Result<std::fs::File> {
    take_named_lock(vault, "lock", wait, busy)
}

/// Takes lock file `name` in the log's directory (flock), waiting up to `wait`.
fn take_named_lock(vault: &Path, name: &str, wait: Duration, busy: &str) -> Result<std::fs::File> {
    let dir = vault.join(DIR_NAME);
    crate::sys::private_dir(&dir)?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(dir.join(name))?;
    // Another user able to take the lock could keep the vault from mounting.
    let _ = crate::sys::private_file(&dir.join(name));
    let start = std::time::Instant::now();
    while !crate::sys::try_lock_exclusive(&f) {
        if start.elapsed() >= wait {
            return Err(Error::Busy(busy.into()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(f)
}

/// Takes the vault's log lock for an offline command that must not run beside a mount.
pub fn lock(vault: &Path) -> Result<std::fs::File> {
    take_lock(
        vault,
        Duration::from_secs(3),
        "the vault is mounted: unmount it first",
    )
}

/// Appends records from a command (policy set, etc.) without a daemon.
pub fn append_offline(vault: &Path, keys: Keys, recs: &[Record]) -> Result<()> {
    // No waiting: a held lock means a live mount, which records the change itself.
    let mut w = Writer::open(vault, keys, Duration::ZERO)?;
    w.append(recs)?;
    w.file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys {
            enc: Key32::from_bytes([1; 32]),
            mac: Key32::from_bytes([2; 32]),
            vault_id: [3; 16],
        }
    }

    fn rec(i: u32) -> Record {
        let mut r = Record::now("open", &format!("/clients/acme/file{i}"));
        r.uid = i;
        r
    }

    fn write_log(dir: &Path, sessions: &[u32]) {
        let mut i = 0;
        for n in sessions {
            let s = Sink::start(dir, keys()).unwrap();
            for _ in 0..*n {
                s.record(rec(i));
                i += 1;
            }
            s.close();
        }
    }

    fn verify(dir: &Path) -> (Report, Vec<u32>) {
        let mut seen = Vec::new();
        let r = read_all(dir, &keys(), |r| seen.push(r.uid)).unwrap();
        (r, seen)
    }

    #[test]
    fn records_round_trip_across_sessions() {
        let t = tempfile::tempdir().unwrap();
        write_log(t.path(), &[3, 0, 4]);
        let (r, seen) = verify(t.path());
        assert!(r.bad.is_none() && !r.torn_tail, "{r:?}");
        assert_eq!(seen, (0..7).collect::<Vec<_>>());
        assert_eq!(r.segments, 3);
        // Nothing readable in the files.
        for (_, p) in segments(&t.path().join(DIR_NAME)).unwrap() {
            let b = std::fs::read(p).unwrap();
            assert!(!b.windows(7).any(|w| w == b"clients"));
        }
    }

    fn seg_bytes(dir: &Path, i: usize) -> (PathBuf, Vec<u8>) {
        let p = segments(&dir.join(DIR_NAME)).unwrap()[i].1.clone();
        let b = std::fs::read(&p).unwrap();
        (p, b)
    }

    /// Offsets of each record in a segment.
    fn record_spans(b: &[u8]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut pos = HEADER_LEN;
        while pos < b.len() {
            let len = u32::from_le_bytes(b[pos..pos + 4].try_into().unwrap()) as usize;
            out.push((pos, pos + 12 + len + 32));
            pos += 12 + len + 32;
        }
        out
    }

    #[test]
    fn every_kind_of_tampering_is_located() {
        type Tamper = fn(&mut Vec<u8>, &[(usize, usize)]);
        let cases: Vec<(&str, Tamper, &str)> = vec![
            ("changed", |b, s| b[s[2].0 + 20] ^= 1, "record 2"),
            (
                "deleted",
                |b, s| {
                    b.drain(s[1].0..s[1].1);
                },
                "record 1",
            ),
            (
                "reordered",
                |b, s| {
                    let r1: Vec<u8> = b[s[1].0..s[1].1].to_vec();
                    let r2: Vec<u8> = b[s[2].0..s[2].1].to_vec();
                    let mut both = r2;
                    both.extend_from_slice(&r1);
                    b.splice(s[1].0..s[2].1, both);
                },
                "record 1",
            ),
            (
                "inserted",
                |b, s| {
                    let copy: Vec<u8> = b[s[0].0..s[0].1].to_vec();
                    b.splice(s[3].0..s[3].0, copy);
                },
                "record 3",
            ),
        ];
        for (what, f, at) in cases {
            let t = tempfile::tempdir().unwrap();
            write_log(t.path(), &[6, 2]);
            let (p, mut b) = seg_bytes(t.path(), 0);
            let spans = record_spans(&b);
            f(&mut b, &spans);
            std::fs::write(&p, &b).unwrap();
            let (r, _) = verify(t.path());
            let bad = r.bad.unwrap_or_else(|| panic!("{what}: not detected"));
            assert!(bad.contains(at), "{what}: {bad}");
        }
    }

    #[test]
    fn a_planted_segment_number_at_the_limit_is_refused_not_wrapped() {
        let t = tempfile::tempdir().unwrap();
        write_log(t.path(), &[2]);
        let dir = t.path().join(DIR_NAME);
        // Another spelling of segment 0 is not a segment.
        std::fs::write(dir.join("0.seg"), b"junk").unwrap();
        assert_eq!(verify(t.path()).1, vec![0, 1]);
        std::fs::write(dir.join(format!("{}.seg", u64::MAX)), b"junk").unwrap();
        let e = read_all(t.path(), &keys(), |_| {}).unwrap_err();
        assert!(matches!(e, Error::AuditTampered(_)), "{e}");
        assert!(
            Sink::start(t.path(), keys()).is_err(),
            "no writer continues past it"
        );
    }

    #[test]
    fn a_torn_last_record_is_a_crash_not_tampering() {
        let t = tempfile::tempdir().unwrap();
        write_log(t.path(), &[5]);
        let (p, b) = seg_bytes(t.path(), 0);
        std::fs::write(&p, &b[..b.len() - 7]).unwrap();
        let (r, seen) = verify(t.path());
        assert!(r.bad.is_none(), "{r:?}");
        assert!(r.torn_tail);
        assert_eq!(seen.len(), 4);
        // The next session continues the chain from the last whole record.
        write_log(t.path(), &[2]);
        let (r, seen) = verify(t.path());
        assert!(r.bad.is_none(), "{r:?}");
        assert_eq!(seen.len(), 6);
    }

    fn anchored(dir: &Path, anchors: &[anchor::Anchor]) -> Report {
        read_all_anchored(dir, &keys(), anchors, |_| {}).unwrap()
    }

    #[test]
    fn records_cut_off_the_end_are_caught_only_by_an_anchor() {
        let t = tempfile::tempdir().unwrap();
        write_log(t.path(), &[3, 2]);
        let head = verify(t.path()).0.head.unwrap();
        assert_eq!(head.seq, 4);
        assert!(anchored(t.path(), &[head]).bad.is_none());
        let (last, _) = seg_bytes(t.path(), 1);
        std::fs::remove_file(last).unwrap();
        // The shorter chain verifies on its own: this is what anchors are for.
        assert!(verify(t.path()).0.bad.is_none());
        let bad = anchored(t.path(), &[head]).bad.expect("not caught");
        assert!(bad.contains("cut off its end"), "{bad}");
    }

    #[test]
    fn a_log_cut_back_and_written_on_differs_from_its_anchor() {
        let t = tempfile::tempdir().unwrap();
        write_log(t.path(), &[3, 2]);
        let head = verify(t.path()).0.head.unwrap();
        let (last, _) = seg_bytes(t.path(), 1);
        std::fs::remove_file(last).unwrap();
        // The next mount numbers its records from where the cut log ends.
        write_log(t.path(), &[2]);
        assert!(verify(t.path()).0.bad.is_none());
        let bad = anchored(t.path(), &[head]).bad.expect("not caught");
        assert!(
            bad.contains("differs from anchor") && bad.contains("sequence 4"),
            "{bad}"
        );
    }

    #[test]
    fn an_anchor_before_a_pruning_point_is_counted_not_failed() {
        let t = tempfile::tempdir().unwrap();
        write_log(t.path(), &[2, 2, 1]);
        // The last record of the first segment, which the prune removes.
        let first = verify(t.path()).0.spans[0].clone();
        let early = anchor::Anchor::of(first.end_seq - 1, &first.end_mac);
        let p = prune::plan(t.path(), &keys(), u64::MAX, 0, 0).unwrap();
        prune::execute(t.path(), &keys(), &p).unwrap();
        let rep = anchored(t.path(), &[early]);
        assert!(rep.bad.is_none(), "{rep:?}");
        assert_eq!(rep.anchors_pruned, 1);
    }

    #[test]
    fn a_removed_segment_is_detected() {
        let t = tempfile::tempdir().unwrap();
        write_log(t.path(), &[2, 2, 2]);
        let (p, _) = seg_bytes(t.path(), 1);
        std::fs::remove_file(p).unwrap();
        assert!(verify(t.path()).0.bad.unwrap().contains("missing"));
    }
}
