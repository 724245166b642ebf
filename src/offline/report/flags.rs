//! The unusual accesses a report flags, from one pass over the records: a user reading far
//! more in an hour than they usually do, refusals in bursts, access at night (22:00-06:00 in
//! the machine's local time zone: the practice's night, not UTC's), mass deletes, and every
//! export. Thresholds are fixed and printed with each flag, so a
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

/// The clock "night" is read on: a name for the reader and the offset from UTC at a time.
pub struct Zone {
    pub name: String,
    pub offset_s: fn(i64) -> i64,
    /// The last hour asked and its offset (offsets change on the hour, if at all).
    cache: Option<(i64, i64)>,
}

impl Zone {
    /// The machine's local time zone (`TZ`, else /etc/localtime).
    pub fn local() -> Zone {
        Zone::new(crate::sys::local_zone_name(), crate::sys::utc_offset)
    }

    pub fn new(name: String, offset_s: fn(i64) -> i64) -> Zone {
        Zone {
            name,
            offset_s,
            cache: None,
        }
    }

    /// Local time of `t` (ms since the epoch), as ms since the epoch shifted by the offset.
    fn local_ms(&mut self, t: u64) -> u64 {
        let hour = (t / 3_600_000) as i64;
        let off = match self.cache {
            Some((h, off)) if h == hour => off,
            _ => {
                let off = (self.offset_s)(hour * 3600);
                self.cache = Some((hour, off));
                off
            }
        };
        (t as i64 + off * 1000).max(0) as u64
    }

    /// `Europe/Berlin, UTC+01:00` at `t`.
    fn describe(&self, t: u64) -> String {
        let off = (self.offset_s)((t / 1000) as i64);
        let sign = if off < 0 { '-' } else { '+' };
        let a = off.unsigned_abs();
        format!(
            "{}, UTC{sign}{:02}:{:02}",
            self.name,
            a / 3600,
            a % 3600 / 60
        )
    }
}

impl Default for Zone {
    fn default() -> Zone {
        Zone::local()
    }
}

#[derive(Default)]
pub(super) struct Flagger {
    zone: Zone,
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
    /// A flagger that reads "night" on `zone`'s clock.
    #[cfg(test)]
    pub(super) fn in_zone(zone: Zone) -> Flagger {
        Flagger {
            zone,
            ..Flagger::default()
        }
    }

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
        let local = self.zone.local_ms(r.time_ms);
        if kind != Kind::Listed && is_night(local) {
            let night = (local + 2 * 3_600_000) / 86_400_000;
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
                detail: format!(
                    "{n} accesses between 22:00 and 06:00 ({})",
                    self.zone.describe(*first)
                ),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: u64) -> Record {
        let mut r = Record::by("open", "/clients/acme/a.txt", 1000, 1);
        r.user = "alice".into();
        r.time_ms = t;
        r
    }

    fn nights(zone: Zone, times: &[u64]) -> Vec<Flag> {
        let mut f = Flagger::in_zone(zone);
        for t in times {
            f.see(&at(*t), Kind::Read, "acme", 1);
        }
        f.finish(&[])
            .into_iter()
            .filter(|f| f.kind == "night access")
            .collect()
    }

    #[test]
    fn night_is_read_on_the_practices_clock() {
        // 2026-12-07 23:10 and 12:00 UTC.
        let (late, noon) = (1_796_685_000_000, 1_796_644_800_000);
        let utc = || Zone::new("UTC".into(), |_| 0);
        let tokyo = || Zone::new("Asia/Tokyo".into(), |_| 9 * 3600);
        let samoa = || Zone::new("Pacific/Apia".into(), |_| 13 * 3600);
        assert_eq!(nights(utc(), &[late]).len(), 1);
        assert_eq!(nights(utc(), &[noon]).len(), 0);
        // 08:10 in Tokyo: morning, not night; noon UTC is 01:00 in Apia: night.
        assert_eq!(nights(tokyo(), &[late]).len(), 0);
        let n = nights(samoa(), &[noon, noon + 60_000]);
        assert_eq!(n.len(), 1, "one line per user and night");
        assert!(
            n[0].detail.contains("2 accesses") && n[0].detail.contains("Pacific/Apia, UTC+13:00"),
            "{}",
            n[0].detail
        );
        let west = Zone::new("America/Los_Angeles".into(), |_| -8 * 3600);
        assert!(west.describe(noon).ends_with("UTC-08:00"));
    }
}
