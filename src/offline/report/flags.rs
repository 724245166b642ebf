//! The unusual accesses a report flags, from one pass over the records: a user reading far
//! more in an hour than they usually do, refusals in bursts, access at night (22:00-06:00
//! UTC), mass deletes, and every export. Thresholds are fixed and printed with each flag, so a
//! reader can judge them.

use super::{Event, Flag, Kind};
use crate::audit::Record;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Refusals by one user within this window...
const BURST_WINDOW_MS: u64 = 10 * 60 * 1000;
/// ...at least this many make a burst.
const BURST_REFUSALS: usize = 10;
/// Deletes by one user within the burst window that make a mass delete.
const MASS_DELETES: usize = 20;
/// An hour of reads is unusual above this many times the user's median hour...
const READ_FACTOR: u64 = 5;
/// ...and never below this many reads.
const READ_FLOOR: u64 = 200;

#[derive(Default)]
pub(super) struct Flagger {
    refusals: HashMap<u32, VecDeque<u64>>,
    deletes: HashMap<u32, VecDeque<u64>>,
    /// (uid, hour) -> reads.
    reads: BTreeMap<(u32, u64), u64>,
    /// uid -> (night, records, first time, client).
    night: BTreeMap<(u32, u64), (u64, u64, String)>,
    names: HashMap<u32, String>,
    out: Vec<Flag>,
}

fn is_night(t: u64) -> bool {
    let hour = (t / 3_600_000) % 24;
    !(6..22).contains(&hour)
}

/// Pushes `t` (`times` times) into a sliding window; true when it just reached `n` entries.
fn burst(q: &mut VecDeque<u64>, t: u64, times: u64, n: usize) -> bool {
    for _ in 0..times.min(n as u64) {
        q.push_back(t);
    }
    while q
        .front()
        .is_some_and(|f| t.saturating_sub(*f) > BURST_WINDOW_MS)
    {
        q.pop_front();
    }
    if q.len() >= n {
        q.clear();
        return true;
    }
    false
}

impl Flagger {
    pub(super) fn see(&mut self, r: &Record, kind: Kind, client: &str, n: u64) {
        let user = if r.user.is_empty() {
            format!("uid {}", r.uid)
        } else {
            r.user.clone()
        };
        self.names.entry(r.uid).or_insert_with(|| user.clone());
        let flag = |kind: &str, detail: String| Flag {
            kind: kind.into(),
            time_ms: r.time_ms,
            user: user.clone(),
            client: Some(client.to_string()),
            detail,
        };
        let burst_of = match kind {
            Kind::Refused => Some((
                &mut self.refusals,
                BURST_REFUSALS,
                "refusal burst",
                "refusals",
            )),
            Kind::Deleted => Some((&mut self.deletes, MASS_DELETES, "mass delete", "deletions")),
            _ => None,
        };
        if let Some((windows, limit, what, of)) = burst_of {
            if burst(windows.entry(r.uid).or_default(), r.time_ms, n, limit) {
                self.out.push(flag(
                    what,
                    format!("{limit} or more {of} within 10 minutes"),
                ));
            }
        }
        if kind == Kind::Read {
            *self
                .reads
                .entry((r.uid, r.time_ms / 3_600_000))
                .or_default() += 1;
        }
        if kind != Kind::Listed && is_night(r.time_ms) {
            let night = (r.time_ms + 2 * 3_600_000) / 86_400_000;
            let e = self
                .night
                .entry((r.uid, night))
                .or_insert((0, r.time_ms, client.to_string()));
            e.0 += n;
        }
    }

    pub(super) fn finish(mut self, events: &[Event]) -> Vec<Flag> {
        // Reads: each user's hours against their own median hour.
        let mut per_user: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
        for ((uid, hour), n) in &self.reads {
            per_user.entry(*uid).or_default().push((*hour, *n));
        }
        for (uid, hours) in per_user {
            let mut counts: Vec<u64> = hours.iter().map(|h| h.1).collect();
            counts.sort_unstable();
            let median = counts[counts.len() / 2];
            let limit = if counts.len() >= 3 {
                (median * READ_FACTOR).max(READ_FLOOR)
            } else {
                READ_FLOOR * 2
            };
            for (hour, n) in hours {
                if n > limit {
                    self.out.push(Flag {
                        kind: "heavy reading".into(),
                        time_ms: hour * 3_600_000,
                        user: self.names.get(&uid).cloned().unwrap_or_default(),
                        client: None,
                        detail: format!(
                            "{n} files opened for reading in one hour (this user's median hour: {median}; flagged above {limit})"
                        ),
                    });
                }
            }
        }
        for ((uid, _), (n, first, client)) in &self.night {
            self.out.push(Flag {
                kind: "night access".into(),
                time_ms: *first,
                user: self.names.get(uid).cloned().unwrap_or_default(),
                client: Some(client.clone()),
                detail: format!("{n} accesses between 22:00 and 06:00 UTC"),
            });
        }
        for e in events.iter().filter(|e| e.op == "client-export") {
            self.out.push(Flag {
                kind: "export".into(),
                time_ms: e.time_ms,
                user: e.user.clone(),
                client: e.client.clone(),
                detail: format!(
                    "decrypted copy written outside the vault ({})",
                    e.detail.clone().unwrap_or_default()
                ),
            });
        }
        self.out.sort_by_key(|f| f.time_ms);
        self.out
    }
}
