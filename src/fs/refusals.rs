//! Coalescing of repeated refusals for the audit log. One user hammering a refused path (a
//! script in a loop, an indexer, an attacker filling the disk) once wrote one record per
//! request: 3.5 MB/s of log. The first refusal of each (user, operation, path) in a window
//! is recorded exactly as it happened; repeats within the window are counted, and the count
//! is written as one record ("refused N more times") when the window ends, when the same
//! refusal comes again after it, or when the log closes. Nothing is dropped: every refusal
//! is either a record or part of a count. Pure bookkeeping: no I/O here.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long repeats of one refusal are counted into one record.
pub const WINDOW: Duration = Duration::from_secs(10);
/// At most this many distinct refusals are tracked; past that, all counts are written out.
const MAX_TRACKED: usize = 4096;

/// What identifies "the same refusal".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub uid: u32,
    pub op: String,
    pub path: String,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    repeats: u64,
    /// The last repeat's request, for the summary record.
    last_pid: u32,
    last_program: String,
    client: Option<String>,
}

/// The request a refusal came with.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    pub pid: u32,
    pub program: &'a str,
    pub client: Option<&'a str>,
}

/// A summary to record: `repeats` refusals of `key` since `since` that were not recorded
/// one by one.
#[derive(Debug, PartialEq, Eq)]
pub struct Summary {
    pub key: Key,
    pub repeats: u64,
    pub pid: u32,
    pub program: String,
    pub client: Option<String>,
    pub over: Duration,
}

#[derive(Debug, Default)]
pub struct Refusals {
    open: HashMap<Key, Window>,
}

impl Refusals {
    /// Notes a refusal at `now`. Returns whether it is to be recorded exactly (the first in
    /// its window), and any summaries that are due first.
    pub fn note(&mut self, key: Key, who: Who<'_>, now: Instant) -> (bool, Vec<Summary>) {
        let mut due = Vec::new();
        if let Some(w) = self.open.get_mut(&key) {
            if now.duration_since(w.started) < WINDOW {
                w.repeats += 1;
                w.last_pid = who.pid;
                if w.last_program != who.program {
                    w.last_program = who.program.to_string();
                }
                return (false, due);
            }
            if let Some(w) = self.open.remove(&key) {
                due.extend(summary(key.clone(), w, now));
            }
        }
        if self.open.len() >= MAX_TRACKED {
            due.extend(self.flush(None));
        }
        self.open.insert(
            key,
            Window {
                started: now,
                repeats: 0,
                last_pid: who.pid,
                last_program: who.program.to_string(),
                client: who.client.map(str::to_string),
            },
        );
        (true, due)
    }

    /// Ends the windows that are over at `now` (all of them with `None`, as at close) and
    /// returns their summaries.
    pub fn flush(&mut self, now: Option<Instant>) -> Vec<Summary> {
        let at = now.unwrap_or_else(Instant::now);
        let over: Vec<Key> = self
            .open
            .iter()
            .filter(|(_, w)| now.is_none_or(|n| n.duration_since(w.started) >= WINDOW))
            .map(|(k, _)| k.clone())
            .collect();
        over.into_iter()
            .filter_map(|k| {
                let w = self.open.remove(&k)?;
                summary(k, w, at)
            })
            .collect()
    }
}

fn summary(key: Key, w: Window, now: Instant) -> Option<Summary> {
    (w.repeats > 0).then(|| Summary {
        key,
        repeats: w.repeats,
        pid: w.last_pid,
        program: w.last_program,
        client: w.client,
        over: now.duration_since(w.started),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(pid: u32, client: Option<&str>) -> Who<'_> {
        Who {
            pid,
            program: "cat",
            client,
        }
    }

    fn key(path: &str) -> Key {
        Key {
            uid: 1000,
            op: "open r".into(),
            path: path.into(),
        }
    }

    #[test]
    fn the_first_refusal_is_exact_and_repeats_become_one_counted_record() {
        let mut r = Refusals::default();
        let t0 = Instant::now();
        assert_eq!(r.note(key("/a"), who(1, None), t0), (true, vec![]));
        for i in 1..=999 {
            let (exact, due) = r.note(key("/a"), who(1, None), t0 + Duration::from_millis(i));
            assert!(!exact && due.is_empty());
        }
        // Another path is its own refusal.
        assert!(r.note(key("/b"), who(1, None), t0).0);
        assert!(
            r.flush(Some(t0 + Duration::from_secs(1))).is_empty(),
            "still open"
        );
        let due = r.flush(Some(t0 + WINDOW));
        assert_eq!(due.len(), 1, "/b had no repeats");
        assert_eq!(due[0].key.path, "/a");
        assert_eq!(due[0].repeats, 999);
    }

    #[test]
    fn a_refusal_after_its_window_writes_the_count_first_then_itself() {
        let mut r = Refusals::default();
        let t0 = Instant::now();
        r.note(key("/a"), who(1, Some("acme")), t0);
        r.note(key("/a"), who(2, Some("acme")), t0 + Duration::from_secs(1));
        let (exact, due) = r.note(key("/a"), who(3, Some("acme")), t0 + WINDOW);
        assert!(exact);
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].repeats, due[0].pid), (1, 2));
        assert_eq!(due[0].client.as_deref(), Some("acme"));
        // Closing writes what is still counted.
        r.note(
            key("/a"),
            who(4, None),
            t0 + WINDOW + Duration::from_secs(1),
        );
        assert_eq!(r.flush(None).len(), 1);
        assert!(r.flush(None).is_empty());
    }

    #[test]
    fn the_number_of_tracked_refusals_is_bounded() {
        let mut r = Refusals::default();
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED {
            r.note(key(&format!("/{i}")), who(1, None), t0);
            r.note(key(&format!("/{i}")), who(1, None), t0);
        }
        let (exact, due) = r.note(key("/new"), who(1, None), t0);
        assert!(exact);
        assert_eq!(
            due.len(),
            MAX_TRACKED,
            "every count is written before any is forgotten"
        );
        assert_eq!(r.open.len(), 1);
    }
}
