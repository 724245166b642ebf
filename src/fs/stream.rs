//! Write-behind and drop-behind for files read or written front to back (a copy, a backup, a
//! video). The kernel already caches their plaintext above us; left alone, their ciphertext
//! would also sit in the backing page cache (twice the memory for one file) and a writer's
//! final fsync would wait for all of it at once. So once a handle has moved `STREAM_AFTER`
//! bytes in order, the ciphertext behind it is sent to disk as it is written and dropped from
//! the cache once clean. Both are hints to the kernel: nothing waits for the disk here, pages
//! still dirty or under writeback stay cached, and errors surface at fsync as before. Random
//! access (databases, editors) never reaches the threshold and is left alone.
//!
//! Dropping has one price: a file streamed in and then patched or read at random (fio's
//! layout, a database restore, a VM image) would fetch its ciphertext back from disk one
//! 4 KiB block at a time, each a disk wait inside a request. So the first random access to a
//! file whose ciphertext was dropped asks for all of it back in one sequential sweep
//! (`Refill`), when it is small next to memory.

/// Ciphertext is handed to the disk, and dropped, in steps of this many bytes.
pub const WINDOW: u64 = 8 << 20;

/// Bytes of in-order access before a handle counts as streaming.
pub const STREAM_AFTER: u64 = 8 << 20;

/// One direction (reads or writes) of one handle.
#[derive(Debug, Default)]
pub struct Stream {
    /// Plaintext offset just past the furthest access of the current run.
    next: u64,
    /// Plaintext bytes covered by the current run.
    run: u64,
    /// Ciphertext before this offset has been handed to writeback.
    started: u64,
    /// Ciphertext before this offset has been dropped from the cache.
    dropped: u64,
}

/// Ciphertext byte ranges `(offset, len)` to act on after an access.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Advice {
    pub write_back: Option<(u64, u64)>,
    pub drop: Option<(u64, u64)>,
    /// This access did not continue the handle's run (random access, or the first access).
    pub fresh: bool,
}

impl Stream {
    /// Records an access of plaintext `[off, end)` whose ciphertext is `[ct_start, ct_end)`.
    /// Requests of one sequential reader can arrive slightly out of order (the kernel's
    /// readahead runs on several threads), so an access within a window of the run's end
    /// continues the run.
    pub fn advance(
        &mut self,
        off: u64,
        end: u64,
        ct_start: u64,
        ct_end: u64,
        write: bool,
    ) -> Advice {
        let continues = self.run > 0
            && off.saturating_add(WINDOW) >= self.next
            && off <= self.next.saturating_add(WINDOW);
        if continues {
            self.run += end.saturating_sub(off);
            self.next = self.next.max(end);
        } else {
            *self = Stream {
                next: end,
                run: end.saturating_sub(off),
                started: ct_start,
                dropped: ct_start,
            };
        }
        let mut advice = Advice {
            fresh: !continues,
            ..Advice::default()
        };
        if self.run < STREAM_AFTER {
            return advice;
        }
        if write && ct_end >= self.started + WINDOW {
            advice.write_back = Some((self.started, ct_end - self.started));
            self.started = ct_end;
        }
        // Two windows of slack: the newest ciphertext is still being written back (or read
        // by a request that came in out of order).
        let behind = ct_end.saturating_sub(2 * WINDOW);
        if behind >= self.dropped + WINDOW {
            advice.drop = Some((self.dropped, behind - self.dropped));
            self.dropped = behind;
        }
        advice
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// Plaintext and ciphertext offsets equal: the arithmetic is what is under test.
    fn step(s: &mut Stream, off: u64, len: u64, write: bool) -> Advice {
        s.advance(off, off + len, off, off + len, write)
    }

    #[test]
    fn nothing_happens_before_a_run_is_long_enough() {
        let mut s = Stream::default();
        for i in 0..7 {
            let a = step(&mut s, i * MIB, MIB, true);
            assert_eq!((a.write_back, a.drop, a.fresh), (None, None, i == 0));
        }
    }

    #[test]
    fn a_long_sequential_write_is_written_back_and_dropped_behind() {
        let mut s = Stream::default();
        let mut written = 0;
        let mut dropped = 0;
        for i in 0..64 {
            let a = step(&mut s, i * MIB, MIB, true);
            if let Some((off, len)) = a.write_back {
                assert_eq!(off, written, "write-back ranges are contiguous");
                written += len;
            }
            if let Some((off, len)) = a.drop {
                assert_eq!(off, dropped, "dropped ranges are contiguous");
                dropped += len;
                assert!(
                    dropped + 2 * WINDOW <= (i + 1) * MIB,
                    "never the newest two windows"
                );
            }
        }
        assert_eq!(written, 64 * MIB);
        assert_eq!(dropped, 64 * MIB - 2 * WINDOW);
    }

    #[test]
    fn reads_are_dropped_behind_but_never_written_back() {
        let mut s = Stream::default();
        let mut dropped = 0;
        for i in 0..40 {
            let a = step(&mut s, i * MIB, MIB, false);
            assert_eq!(a.write_back, None);
            dropped += a.drop.map_or(0, |d| d.1);
        }
        assert_eq!(dropped, 40 * MIB - 2 * WINDOW);
    }

    #[test]
    fn slightly_out_of_order_requests_continue_the_run() {
        let mut s = Stream::default();
        let mut any = false;
        for i in (0..40).step_by(2) {
            any |= step(&mut s, (i + 1) * MIB, MIB, false).drop.is_some();
            any |= step(&mut s, i * MIB, MIB, false).drop.is_some();
        }
        assert!(any);
    }

    #[test]
    fn random_access_resets_the_run() {
        let mut s = Stream::default();
        for i in 0..100u64 {
            let off = (i * 7919 % 97) * 64 * MIB;
            let a = step(&mut s, off, MIB, true);
            assert_eq!((a.write_back, a.drop, a.fresh), (None, None, true));
        }
    }

    #[test]
    fn only_the_start_of_a_run_is_fresh() {
        let mut s = Stream::default();
        let fresh: Vec<bool> = (0..20)
            .map(|i| step(&mut s, i * MIB, MIB, false).fresh)
            .collect();
        assert_eq!(fresh.iter().filter(|f| **f).count(), 1);
        assert!(fresh[0]);
        assert!(
            step(&mut s, 500 * MIB, MIB, false).fresh,
            "a jump starts a new run"
        );
    }
}
