//! Writing the log: one writer per vault copy (the mount, or an offline command), appending to
//! this copy's own chain in batches from a thread of its own.

use super::anchor::Anchor;
use super::chain::{self, Chain};
use super::read::{segment_path, segments};
use super::{
    hmac_chain, prune, read_segment, sealed_genesis, sealed_info, Keys, Record, DIR_NAME,
    REPLICA_HEADS, SEGMENT_MAX,
};
use crate::crypto;
use crate::crypto::secret::Key32;
use crate::crypto::Id;
use crate::error::{Error, Result};
use crate::format::audit::{self as frame, Next};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Takes group and other access off segments an earlier version wrote while the daemon's
/// umask was 0: anyone able to write one could cut the evidence short.
fn close_segments(dir: &Path) -> Result<()> {
    for (_, p) in segments(dir)? {
        crate::sys::private_file(&p)?;
    }
    Ok(())
}

/// The tail state a writer continues from: next segment number, next sequence, last MAC.
/// Only the newest segment(s) are read: each header names the MAC it continues from, so the
/// cost of a mount does not grow with the size of the whole log.
fn tail(c: &Chain, keys: &Keys) -> Result<(u64, u64, [u8; 32])> {
    let segs = segments(&c.dir)?;
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
        let first_seq = prune::Checkpoint::read(c, keys)
            .ok()
            .flatten()
            .map_or(0, |cp| cp.first_seq);
        return Ok((next_seg, first_seq, prev));
    }
    Ok((next_seg, 0, keys.genesis(c)))
}

/// The tail of a sealed chain, for its writer, which holds no key to check MACs with: the
/// last whole frame's sequence and MAC as stored. Bytes planted there make the next segment
/// continue from them, which `verify` (with the keys) reports.
fn tail_unverified(c: &Chain, vault_id: &Id) -> Result<(u64, u64, [u8; 32])> {
    let segs = segments(&c.dir)?;
    let next_seg = segs.last().map(|(n, _)| n + 1).unwrap_or(0);
    let mut prev_of_newest: Option<[u8; 32]> = None;
    for (_, path) in segs.iter().rev() {
        let bytes = read_segment(path)?;
        let Ok(hdr) = frame::header(&bytes) else {
            continue;
        };
        let mut last = None;
        let mut frames = frame::Frames::new(&bytes);
        while let Next::Frame(f) = frames.next_frame() {
            let mut mac = [0u8; 32];
            mac.copy_from_slice(f.mac);
            last = Some((f.seq, mac));
        }
        if let Some((seq, mac)) = last {
            return Ok((next_seg, seq + 1, prev_of_newest.unwrap_or(mac)));
        }
        prev_of_newest.get_or_insert(hdr.prev);
    }
    let replica = c.replica.ok_or(Error::Invalid)?;
    match prev_of_newest {
        Some(prev) => Ok((next_seg, 0, prev)),
        None => Ok((next_seg, 0, sealed_genesis(vault_id, &replica))),
    }
}

/// Whether chain `c` is written in sealed segments (a client-scoped mount's).
fn is_sealed(c: &Chain) -> bool {
    segments(&c.dir)
        .ok()
        .and_then(|s| s.last().map(|(_, p)| p.clone()))
        .and_then(|p| read_segment(&p).ok())
        .is_some_and(|b| frame::header(&b).is_ok_and(|h| h.encapped.is_some()))
}

/// The tail of any chain as this writer sees it: a sealed chain's as stored (its MACs are
/// checked by `verify`, which derives each segment's keys).
fn tail_of_any(c: &Chain, keys: &Keys) -> Result<(u64, u64, [u8; 32])> {
    if is_sealed(c) {
        tail_unverified(c, &keys.vault_id)
    } else {
        tail(c, keys)
    }
}

/// The heads of the vault's other chains as this copy sees them now, as anchors (chains
/// without a record are left out).
fn other_heads(vault: &Path, mine: &Chain, keys: &Keys) -> Vec<Anchor> {
    let Ok(chains) = chain::all(vault) else {
        return Vec::new();
    };
    chains
        .iter()
        .filter(|c| *c != mine)
        .filter_map(|c| match tail_of_any(c, keys) {
            Ok((_, next_seq, prev)) if next_seq > 0 => {
                Some(Anchor::of(c.replica, next_seq - 1, &prev))
            }
            _ => None,
        })
        .collect()
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

/// Who writes a chain: a mount holding the vault's audit keys, or a client-scoped mount,
/// which holds only the vault's audit public key and seals each segment's keys to it.
pub enum Sealer {
    Vault(Keys),
    Public { public: [u8; 32], vault_id: Id },
}

/// The keys the current segment's records are sealed and chained with.
struct SegKeys {
    enc: Key32,
    mac: Key32,
}

pub(super) struct Writer {
    /// Held for the writer's life: one writer per log (and so one mount per vault).
    _lock: std::fs::File,
    chain: Chain,
    sealer: Sealer,
    keys: SegKeys,
    file: std::fs::File,
    seg: u64,
    size: u64,
    seq: u64,
    prev: [u8; 32],
}

impl Writer {
    /// Opens chain `c` of vault `vault` for appending. With `note_others`, the first record
    /// names the heads of the other chains in the vault (REPLICA_HEADS).
    fn open(
        vault: &Path,
        c: &Chain,
        sealer: Sealer,
        wait: Duration,
        note_others: bool,
    ) -> Result<Writer> {
        // The vault-wide lock: one writer per copy, whichever chain it writes.
        let lock = take_lock(
            vault,
            wait,
            "the vault's audit log is in use: is the vault mounted already?",
        )?;
        crate::sys::private_dir(&c.dir)?;
        close_segments(&c.dir)?;
        let (seg, seq, prev) = match &sealer {
            Sealer::Vault(keys) => tail(c, keys)?,
            Sealer::Public { vault_id, .. } => tail_unverified(c, vault_id)?,
        };
        let (file, size, keys) = Self::new_segment(c, &sealer, seg, &prev)?;
        let others = match (&sealer, note_others) {
            (Sealer::Vault(keys), true) => other_heads(vault, c, keys),
            _ => Vec::new(),
        };
        let mut w = Writer {
            _lock: lock,
            chain: c.clone(),
            sealer,
            keys,
            file,
            seg,
            size,
            seq,
            prev,
        };
        if !others.is_empty() {
            let mut r = Record::now(REPLICA_HEADS, "/");
            r.user = crate::sys::user_name(r.uid).unwrap_or_default();
            let heads: Vec<String> = others.iter().map(|a| a.to_string()).collect();
            r.detail = Some(heads.join(" "));
            w.append(&[r])?;
        }
        Ok(w)
    }

    /// Starts segment `n` continuing from `prev`: its header, and the keys its records use
    /// (the vault's, or fresh ones sealed to the audit public key, whose encapsulation the
    /// header carries).
    fn new_segment(
        c: &Chain,
        sealer: &Sealer,
        n: u64,
        prev: &[u8; 32],
    ) -> Result<(std::fs::File, u64, SegKeys)> {
        let (mut hdr, keys) = match sealer {
            Sealer::Vault(k) => (
                frame::header_signed(n),
                SegKeys {
                    enc: k.enc.duplicate(),
                    mac: k.mac.duplicate(),
                },
            ),
            Sealer::Public { public, vault_id } => {
                let replica = c.replica.ok_or(Error::Invalid)?;
                let (k, encapped) = crate::crypto::sealed::seal_segment(
                    public,
                    &sealed_info(vault_id, &replica, n),
                )?;
                (
                    frame::header_signed_sealed(n, &encapped),
                    SegKeys {
                        enc: k.enc,
                        mac: k.mac,
                    },
                )
            }
        };
        let mac = hmac_chain(&keys.mac, prev, &[&hdr]);
        hdr.extend_from_slice(prev);
        hdr.extend_from_slice(&mac);
        let mut f = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .mode(0o600)
            .open(segment_path(&c.dir, n))?;
        f.write_all(&hdr)?;
        f.sync_all()?;
        if let Ok(d) = std::fs::File::open(&c.dir) {
            let _ = d.sync_all();
        }
        Ok((f, hdr.len() as u64, keys))
    }

    fn encode(&mut self, rec: &Record, out: &mut Vec<u8>) -> Result<()> {
        // Which chain a record is in is where it is, never a sealed claim.
        let unlabelled;
        let rec = if rec.replica.is_some() {
            unlabelled = Record {
                replica: None,
                ..rec.clone()
            };
            &unlabelled
        } else {
            rec
        };
        let plain = zeroize::Zeroizing::new(serde_json::to_vec(rec).map_err(|_| Error::Invalid)?);
        let seq = self.seq.to_le_bytes();
        let sealed = crypto::seal_random(self.keys.enc.as_bytes(), &seq, &plain)?;
        let mac = hmac_chain(&self.keys.mac, &self.prev, &[&seq, &sealed]);
        frame::encode_frame(out, self.seq, &sealed, &mac).map_err(|why| {
            log::error!("audit record not written: {why}");
            Error::Invalid
        })?;
        self.prev = mac;
        self.seq += 1;
        Ok(())
    }

    /// The chain's head: its last record, as an anchor (None before the first record).
    fn head(&self) -> Option<super::anchor::Anchor> {
        (self.seq > 0)
            .then(|| super::anchor::Anchor::of(self.chain.replica, self.seq - 1, &self.prev))
    }

    pub(super) fn append(&mut self, recs: &[Record]) -> Result<()> {
        if self.size > SEGMENT_MAX {
            self.file.sync_all()?;
            self.seg += 1;
            let (f, s, k) = Self::new_segment(&self.chain, &self.sealer, self.seg, &self.prev)?;
            self.file = f;
            self.size = s;
            // The last segment's keys go: a scoped writer cannot read back what it sealed.
            self.keys = k;
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
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<Option<super::forward::Forward>>>>,
    /// The system log forwarder between a close and a reopen.
    parked: std::sync::Mutex<Option<Box<super::forward::Forward>>>,
}

const BATCH_WAKE: usize = 512;

type Shared = std::sync::Arc<(std::sync::Mutex<Queue>, std::sync::Condvar)>;

/// The sink's writer thread: appends what is queued, syncs once a second, and on close
/// writes the rest and syncs.
/// With `fwd`, records and head anchors also go to the system log (`forward.rs`).
fn spawn_writer(
    sh: Shared,
    mut w: Writer,
    mut fwd: Option<super::forward::Forward>,
) -> Result<std::thread::JoinHandle<Option<super::forward::Forward>>> {
    Ok(std::thread::Builder::new()
        .name("audit".into())
        .spawn(move || {
            let (m, cv) = &*sh;
            let mut last_sync = std::time::Instant::now();
            let mut dirty = false;
            let label = w.chain.label();
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
                    let (first, seg) = (w.seq, w.seg);
                    if let Err(e) = w.append(chunk) {
                        log::error!("audit log write failed: {e}");
                        continue;
                    }
                    dirty = true;
                    if let Some(f) = fwd.as_mut() {
                        for (i, r) in chunk.iter().enumerate() {
                            f.record(r, first + i as u64, &label);
                        }
                        // A segment was sealed and a new one begun.
                        if w.seg != seg {
                            if let Some(h) = w.head() {
                                f.anchor(h, "seal");
                            }
                        }
                    }
                }
                if let (Some(f), Some(h)) = (fwd.as_mut(), w.head()) {
                    if closed {
                        f.anchor(h, "unmount");
                    } else if f.anchor_due() {
                        f.anchor(h, "periodic");
                    }
                }
                if closed {
                    let _ = w.file.sync_all();
                    // Kept for a reopen (a live rekey closes and opens the log again).
                    return fwd;
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
    /// Starts writing this copy's chain of the vault at `vault`.
    pub fn start(vault: &Path, keys: Keys) -> Result<Sink> {
        Self::start_forwarding(vault, keys, None)
    }

    /// `start`, also sending records and anchors to the system log as `fwd` says.
    pub fn start_forwarding(
        vault: &Path,
        keys: Keys,
        fwd: Option<super::forward::Forward>,
    ) -> Result<Sink> {
        Self::with_writer(Self::local_writer(vault, keys)?, fwd)
    }

    /// A mount's writer of this copy's chain (waiting a little for a daemon just unmounted).
    fn local_writer(vault: &Path, keys: Keys) -> Result<Writer> {
        let c = chain::local(vault, &keys.vault_id);
        Writer::open(
            vault,
            &c,
            Sealer::Vault(keys),
            Duration::from_secs(10),
            true,
        )
    }

    /// Starts writing the chain of a client-scoped mount of zone `zone_id`: sealed segments,
    /// with no vault key (`public` is the vault's audit public key); `fwd` as for
    /// `start_forwarding`.
    pub fn start_scoped(
        vault: &Path,
        vault_id: Id,
        zone_id: &Id,
        public: [u8; 32],
        fwd: Option<super::forward::Forward>,
    ) -> Result<Sink> {
        let c = chain::local_scoped(vault, &vault_id, zone_id);
        let w = Writer::open(
            vault,
            &c,
            Sealer::Public { public, vault_id },
            Duration::from_secs(10),
            false,
        )?;
        Self::with_writer(w, fwd)
    }

    fn with_writer(w: Writer, fwd: Option<super::forward::Forward>) -> Result<Sink> {
        let shared: Shared = std::sync::Arc::new((
            std::sync::Mutex::new(Queue::default()),
            std::sync::Condvar::new(),
        ));
        let thread = spawn_writer(shared.clone(), w, fwd)?;
        Ok(Sink {
            shared,
            thread: std::sync::Mutex::new(Some(thread)),
            parked: std::sync::Mutex::new(None),
        })
    }

    /// After `close`: opens the log again, with `keys` (a live `rekey --all` re-sealed it
    /// under a new master key), and takes records again.
    pub fn reopen(&self, vault: &Path, keys: Keys) -> Result<()> {
        let w = Self::local_writer(vault, keys)?;
        self.shared
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .closed = false;
        let fwd = self.parked.lock().unwrap_or_else(|p| p.into_inner()).take();
        let t = spawn_writer(self.shared.clone(), w, fwd.map(|f| *f))?;
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
            if let Ok(Some(f)) = t.join() {
                *self.parked.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(f));
            }
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.close();
    }
}

/// Takes the log's lock, waiting up to `wait`: a daemon that was just unmounted may still be
/// closing its log. The lock is a flock on the `tutela.audit` directory itself, not on a file
/// in it: a sync tool copies files between machines, and one it replaced under a live mount
/// would no longer be the file that mount holds locked.
fn take_lock(vault: &Path, wait: Duration, busy: &str) -> Result<std::fs::File> {
    let dir = vault.join(DIR_NAME);
    crate::sys::private_dir(&dir)?;
    flock_dir(&dir, wait, busy)
}

/// An exclusive flock on directory `dir`, waiting up to `wait`.
pub(super) fn flock_dir(dir: &Path, wait: Duration, busy: &str) -> Result<std::fs::File> {
    let f = std::fs::File::open(dir)?;
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

/// Appends records from a command (policy set, etc.) without a daemon, to this copy's chain.
pub fn append_offline(vault: &Path, keys: Keys, recs: &[Record]) -> Result<()> {
    let c = chain::local(vault, &keys.vault_id);
    // No waiting: a held lock means a live mount, which records the change itself.
    let mut w = Writer::open(vault, &c, Sealer::Vault(keys), Duration::ZERO, true)?;
    w.append(recs)?;
    w.file.sync_all()?;
    Ok(())
}

/// Appends `recs` to chain `c` of the log in `vault` as they are (a re-seal, which copies
/// each chain to a new log: no heads of other chains are added).
pub fn append_to_chain(vault: &Path, c: &Chain, keys: Keys, recs: &[Record]) -> Result<()> {
    let mut w = Writer::open(vault, c, Sealer::Vault(keys), Duration::ZERO, false)?;
    w.append(recs)?;
    w.file.sync_all()?;
    Ok(())
}

/// A writer on any chain, for tests that build logs older versions wrote.
#[cfg(test)]
pub(super) fn open_for_tests(vault: &Path, c: &Chain, keys: Keys) -> Writer {
    Writer::open(vault, c, Sealer::Vault(keys), Duration::ZERO, false).unwrap()
}
