//! Streaming hints through a real mount: a file read front to back leaves its ciphertext out
//! of the backing page cache (drop-behind), random access afterwards brings it back in one
//! sweep, and what streams through reads back intact.

mod common;

use common::{pattern, TestVault};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

const MIB: usize = 1 << 20;
const SIZE: usize = 64 * MIB;

/// The largest regular file under `dir` (the one big file's ciphertext).
fn largest_file(dir: &Path) -> PathBuf {
    let mut best: Option<(u64, PathBuf)> = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() && best.as_ref().is_none_or(|(n, _)| m.len() > *n) {
                best = Some((m.len(), e.path()));
            }
        }
    }
    best.expect("no backing file").1
}

/// Fraction of `path`'s pages in the page cache (mincore over a read-only mapping).
fn resident_fraction(path: &Path) -> f64 {
    let f = File::open(path).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    let page = 4096usize;
    let pages = len.div_ceil(page);
    let mut vec = vec![0u8; pages];
    // SAFETY: a private read-only mapping of a file we keep open; unmapped before return.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(p, libc::MAP_FAILED, "mmap of the backing file");
        assert_eq!(libc::mincore(p, len, vec.as_mut_ptr()), 0, "mincore");
        libc::munmap(p, len);
    }
    vec.iter().filter(|b| **b & 1 == 1).count() as f64 / pages as f64
}

/// Writes back and evicts `path` from the page cache.
fn evict(path: &Path) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    f.sync_all().unwrap();
    // SAFETY: plain syscall on an open fd.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}

fn on_tmpfs(path: &Path) -> bool {
    let c = common::cpath(path);
    // SAFETY: statfs fills the struct we pass.
    unsafe {
        let mut s: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut s) == 0 && s.f_type == libc::TMPFS_MAGIC
    }
}

/// A mounted vault whose backing pages can be dropped (not tmpfs), or None with the reason
/// printed.
fn droppable_vault(what: &str) -> Option<TestVault> {
    let mut v = TestVault::new(what)?;
    if on_tmpfs(&v.vault) {
        // tmpfs pages cannot be dropped; there is nothing to observe.
        eprintln!("SKIP {what}: the backing directory is on tmpfs");
        return None;
    }
    v.mount();
    Some(v)
}

/// Writes `data` front to back in `chunk`-sized writes, then fsyncs.
fn stream_in(path: &Path, data: &[u8], chunk: usize) {
    let mut f = File::create(path).unwrap();
    for c in data.chunks(chunk) {
        f.write_all(c).unwrap();
    }
    f.sync_all().unwrap();
}

#[test]
fn a_sequential_read_drops_its_ciphertext_behind_and_reads_back_intact() {
    let Some(mut v) = droppable_vault("streaming drop-behind") else {
        return;
    };
    let data = pattern(SIZE, 7);
    stream_in(&v.p("big"), &data, MIB);
    // A fresh mount has no plaintext cached, so every read reaches the daemon.
    v.unmount();
    let backing = largest_file(&v.vault);
    evict(&backing);
    let before = resident_fraction(&backing);
    assert!(
        before < 0.1,
        "could not evict the backing file ({before:.2} resident)"
    );
    v.mount();
    let mut got = vec![0u8; SIZE];
    {
        let mut f = File::open(v.p("big")).unwrap();
        let mut at = 0;
        while at < SIZE {
            let n = f.read(&mut got[at..(at + MIB).min(SIZE)]).unwrap();
            assert!(n > 0, "short file at {at}");
            at += n;
        }
    }
    assert!(got == data, "streamed read differs from what was written");
    let after = resident_fraction(&backing);
    // Without drop-behind all 64 MiB stay cached; with it, about the newest 16 MiB.
    assert!(
        after < 0.6,
        "{:.0}% of the ciphertext is still cached after a sequential read",
        after * 100.0
    );
}

#[test]
fn a_streamed_write_reads_back_intact_after_remount() {
    let Some(mut v) = TestVault::new("streaming write") else {
        return;
    };
    v.mount();
    // Odd-sized writes straddle blocks and windows; a rewrite in the middle breaks the run.
    let data = pattern(SIZE + 12345, 3);
    stream_in(&v.p("big"), &data, MIB + 333);
    let mut model = data.clone();
    {
        use std::os::unix::fs::FileExt;
        let f = OpenOptions::new().write(true).open(v.p("big")).unwrap();
        let patch = pattern(3 * MIB, 9);
        f.write_all_at(&patch, 20 * MIB as u64 + 5).unwrap();
        model[20 * MIB + 5..23 * MIB + 5].copy_from_slice(&patch);
    }
    v.remount();
    let got = std::fs::read(v.p("big")).unwrap();
    assert_eq!(got.len(), model.len());
    assert!(
        got == model,
        "file differs after a streamed write and a patch"
    );
}

#[test]
fn random_access_after_a_streamed_write_brings_the_ciphertext_back() {
    let Some(mut v) = droppable_vault("streaming refill") else {
        return;
    };
    let data = pattern(SIZE, 5);
    stream_in(&v.p("db"), &data, MIB);
    let backing = largest_file(&v.vault);
    let written = resident_fraction(&backing);
    assert!(
        written < 0.6,
        "the streamed write left {:.0}% of its ciphertext cached (no drop-behind to undo)",
        written * 100.0
    );
    // As fio does before its random phase: drop the plaintext, so reads reach the daemon.
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(v.p("db"))
        .unwrap();
    // SAFETY: plain syscall on an open fd.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    use std::os::unix::fs::FileExt;
    let mut block = vec![0u8; 4096];
    let at = 40 * MIB + 3 * 4096;
    f.read_exact_at(&mut block, at as u64).unwrap();
    assert!(block == data[at..at + 4096], "random read differs");
    // The sweep runs in the background: give it time, but not forever.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut now = resident_fraction(&backing);
    while now < 0.9 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        now = resident_fraction(&backing);
    }
    assert!(
        now >= 0.9,
        "only {:.0}% of the ciphertext came back after the first random access",
        now * 100.0
    );
    // Random writes and reads on the refilled file stay correct.
    let mut model = data;
    for (i, off) in [7 * MIB + 100, 33 * MIB, 61 * MIB + 4095]
        .into_iter()
        .enumerate()
    {
        let patch = pattern(5000, 20 + i as u64);
        f.write_all_at(&patch, off as u64).unwrap();
        model[off..off + 5000].copy_from_slice(&patch);
    }
    drop(f);
    v.remount();
    assert!(
        std::fs::read(v.p("db")).unwrap() == model,
        "file differs after random writes on a refilled file"
    );
}
