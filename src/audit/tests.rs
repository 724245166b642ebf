use super::read::segments;
use super::*;
use crate::crypto::secret::Key32;
use crate::error::Error;
use crate::format::audit::HEADER_LEN;
use std::path::PathBuf;

fn keys() -> Keys {
    crate::audit::test_keys()
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

fn verify(dir: &Path) -> (LogReport, Vec<u32>) {
    let mut seen = Vec::new();
    let r = read_all(dir, &keys(), |r| seen.push(r.uid)).unwrap();
    (r, seen)
}

/// This machine's chain of the test vault at `dir`.
fn mine(dir: &Path) -> Chain {
    chain::local(dir, &keys().vault_id)
}

#[test]
fn records_round_trip_across_sessions() {
    let t = tempfile::tempdir().unwrap();
    write_log(t.path(), &[3, 0, 4]);
    let (r, seen) = verify(t.path());
    assert!(r.bad.is_none() && !r.torn_tail(), "{r:?}");
    assert_eq!(seen, (0..7).collect::<Vec<_>>());
    assert_eq!(r.segments(), 3);
    // Nothing readable in the files.
    for (_, p) in segments(&mine(t.path()).dir).unwrap() {
        let b = std::fs::read(p).unwrap();
        assert!(!b.windows(7).any(|w| w == b"clients"));
    }
}

fn seg_bytes(dir: &Path, i: usize) -> (PathBuf, Vec<u8>) {
    let p = segments(&mine(dir).dir).unwrap()[i].1.clone();
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
    let dir = mine(t.path()).dir;
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
    assert!(r.torn_tail());
    assert_eq!(seen.len(), 4);
    // The next session continues the chain from the last whole record.
    write_log(t.path(), &[2]);
    let (r, seen) = verify(t.path());
    assert!(r.bad.is_none(), "{r:?}");
    assert_eq!(seen.len(), 6);
}

fn anchored(dir: &Path, anchors: &[anchor::Anchor]) -> LogReport {
    read_all_anchored(dir, &keys(), anchors, |_| {}).unwrap()
}

#[test]
fn records_cut_off_the_end_are_caught_only_by_an_anchor() {
    let t = tempfile::tempdir().unwrap();
    write_log(t.path(), &[3, 2]);
    let head = verify(t.path()).0.heads()[0];
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
    let head = verify(t.path()).0.heads()[0];
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
    let first = verify(t.path()).0.chains[0].report.spans[0].clone();
    let early = anchor::Anchor::of(mine(t.path()).replica, first.end_seq - 1, &first.end_mac);
    let p = prune::plan(t.path(), &keys(), u64::MAX, 0, 0).unwrap();
    prune::execute(&keys(), &p).unwrap();
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

// ---- Replicas: one vault, copies on several machines, each writing its own chain. ----

/// Two copies of one vault (`a`, `b`) as a sync tool keeps them: writing in one, then syncing.
struct Pair {
    _t: tempfile::TempDir,
    a: PathBuf,
    b: PathBuf,
}

fn pair() -> Pair {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("office"), t.path().join("laptop"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    Pair { _t: t, a, b }
}

/// One session in `dir` writing records with the given uids at the given times.
fn session(dir: &Path, recs: &[(u32, u64)]) {
    let s = Sink::start(dir, keys()).unwrap();
    for (uid, t) in recs {
        let mut r = rec(*uid);
        r.time_ms = *t;
        s.record(r);
    }
    s.close();
}

fn sync(p: &Pair) {
    sync_log_for_tests(&p.a, &p.b);
    sync_log_for_tests(&p.b, &p.a);
}

fn uids(dir: &Path) -> (LogReport, Vec<u32>) {
    let mut seen = Vec::new();
    let r = read_all(dir, &keys(), |r| {
        if r.op != REPLICA_HEADS {
            seen.push(r.uid)
        }
    })
    .unwrap();
    (r, seen)
}

#[test]
fn two_copies_write_two_chains_that_merge_in_time_order() {
    let p = pair();
    session(&p.a, &[(1, 1000), (3, 3000)]);
    session(&p.b, &[(2, 2000), (4, 4000)]);
    sync(&p);
    assert_ne!(mine(&p.a), mine(&p.b).moved_to(&p.a), "one chain per copy");
    for dir in [&p.a, &p.b] {
        let (r, seen) = uids(dir);
        assert!(r.bad.is_none(), "{r:?}");
        assert_eq!(r.chains.len(), 2);
        assert_eq!(seen, vec![1, 2, 3, 4], "merged by time");
    }
    // The next session in a sees b's chain and records its head; verify checks it.
    session(&p.a, &[(5, 5000)]);
    let (r, _) = uids(&p.a);
    assert!(r.bad.is_none(), "{r:?}");
    assert_eq!(r.cross_checked, 1);
    // Records say which chain they were read from.
    let mut replicas = std::collections::BTreeSet::new();
    read_all(&p.a, &keys(), |r| {
        replicas.insert(r.replica.unwrap());
    })
    .unwrap();
    assert_eq!(replicas.len(), 2);
}

#[test]
fn a_replica_chain_cut_short_or_removed_is_caught_by_what_another_copy_saw() {
    for cut in ["end", "whole"] {
        let p = pair();
        session(&p.b, &[(1, 1000)]);
        session(&p.b, &[(2, 2000)]);
        sync(&p);
        session(&p.a, &[(3, 3000)]); // sees b's head: record 1
        sync(&p);
        let b_in_a = mine(&p.b).moved_to(&p.a);
        match cut {
            "end" => {
                let segs = segments(&b_in_a.dir).unwrap();
                std::fs::remove_file(&segs.last().unwrap().1).unwrap();
            }
            _ => std::fs::remove_dir_all(&b_in_a.dir).unwrap(),
        }
        let bad = uids(&p.a)
            .0
            .bad
            .unwrap_or_else(|| panic!("{cut}: not caught"));
        let want = if cut == "end" {
            "ends before record 1"
        } else {
            "no longer holds"
        };
        assert!(bad.contains(want), "{cut}: {bad}");
    }
}

#[test]
fn a_replica_segment_passes_for_no_other_chain() {
    let p = pair();
    session(&p.a, &[(1, 1000)]);
    session(&p.b, &[(2, 2000)]);
    sync(&p);
    // b's segment put in a's chain directory in place of a's own.
    let (mine_a, b_in_a) = (mine(&p.a), mine(&p.b).moved_to(&p.a));
    std::fs::copy(
        segments(&b_in_a.dir).unwrap()[0].1.clone(),
        segments(&mine_a.dir).unwrap()[0].1.clone(),
    )
    .unwrap();
    let bad = uids(&p.a).0.bad.expect("not caught");
    assert!(bad.contains("does not continue"), "{bad}");
    // A whole chain renamed to another replica's name does not verify either.
    let p = pair();
    session(&p.a, &[(1, 1000)]);
    let fake = Chain::replica(&p.a, [9; 8]);
    std::fs::rename(&mine(&p.a).dir, &fake.dir).unwrap();
    assert!(uids(&p.a).0.bad.is_some());
}

#[test]
fn an_original_chain_is_read_and_the_first_replica_records_its_head() {
    let t = tempfile::tempdir().unwrap();
    // A log written before replicas: segments in tutela.audit/ itself.
    let original = Chain::original(t.path());
    std::fs::create_dir_all(&original.dir).unwrap();
    {
        let mut w = write::open_for_tests(t.path(), &original, keys());
        w.append(&[rec(1), rec(2)]).unwrap();
    }
    let head = verify(t.path()).0.heads()[0];
    assert_eq!(head.chain, None);
    session(t.path(), &[(3, u64::MAX / 2)]);
    let (r, seen) = uids(t.path());
    assert!(r.bad.is_none(), "{r:?}");
    assert_eq!(seen, vec![1, 2, 3]);
    assert_eq!(r.cross_checked, 1);
    // An anchor taken before the upgrade still checks the original chain.
    assert!(anchored(t.path(), &[head]).bad.is_none());
    // Cutting the original chain's end is caught by the replica's record of it.
    let segs = segments(&original.dir).unwrap();
    std::fs::remove_file(&segs[0].1).unwrap();
    assert!(uids(t.path()).0.bad.is_some());
}

#[test]
fn an_anchor_for_a_chain_that_is_gone_is_a_cut() {
    let t = tempfile::tempdir().unwrap();
    write_log(t.path(), &[2]);
    let mut head = verify(t.path()).0.heads()[0];
    head.chain = Some([7; 8]);
    let bad = anchored(t.path(), &[head]).bad.expect("not caught");
    assert!(bad.contains("no such chain"), "{bad}");
}

#[test]
fn the_replica_genesis_matches_its_test_vector() {
    let c = Chain::replica(Path::new("/v"), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(
        chain::hex(&keys().genesis(&c)),
        crate::format::vectors::REPLICA_GENESIS_VECTOR
    );
    assert_ne!(
        keys().genesis(&c),
        keys().genesis(&Chain::original(Path::new("/v")))
    );
}

// ---- Sealed chains: a client-scoped mount writes without any of the vault's keys. ----

fn scoped_session(dir: &Path, zone: &Id, recs: &[(u32, u64)]) {
    let s = Sink::start_scoped(dir, keys().vault_id, zone, keys().public(), None).unwrap();
    for (uid, t) in recs {
        let mut r = rec(*uid);
        r.time_ms = *t;
        s.record(r);
    }
    s.close();
}

#[test]
fn a_scoped_mounts_sealed_chain_verifies_with_the_full_keys_and_merges() {
    let t = tempfile::tempdir().unwrap();
    let zone = [0xac; 16];
    session(t.path(), &[(1, 1000)]);
    scoped_session(t.path(), &zone, &[(2, 2000), (3, 3000)]);
    scoped_session(t.path(), &zone, &[(4, 4000)]);
    // A full mount after it records the sealed chain's head too.
    session(t.path(), &[(5, 5000)]);
    let (r, seen) = uids(t.path());
    assert!(r.bad.is_none(), "{r:?}");
    assert_eq!(seen, vec![1, 2, 3, 4, 5]);
    assert_eq!(r.chains.len(), 2);
    assert_eq!(r.cross_checked, 1);
    let sealed = chain::local_scoped(t.path(), &keys().vault_id, &zone);
    let segs = segments(&sealed.dir).unwrap();
    assert_eq!(segs.len(), 2);
    for (_, p) in &segs {
        let b = std::fs::read(p).unwrap();
        assert_eq!(crate::format::audit::header(&b).unwrap().version, 2);
    }
    // Without the audit key pair's seed nothing opens: another vault's keys fail the header.
    let mut other = keys();
    other.seal = Key32::from_bytes([9; 32]);
    let bad = read_all(t.path(), &other, |_| {})
        .unwrap()
        .bad
        .expect("opened");
    assert!(bad.contains("header does not authenticate"), "{bad}");
}

#[test]
fn tampering_with_a_sealed_chain_is_located() {
    let zone = [0xac; 16];
    for what in ["change", "swap segments", "cut end"] {
        let t = tempfile::tempdir().unwrap();
        scoped_session(t.path(), &zone, &[(1, 1000), (2, 2000), (3, 3000)]);
        scoped_session(t.path(), &zone, &[(4, 4000)]);
        session(t.path(), &[(5, 5000)]); // records the sealed chain's head
        let sealed = chain::local_scoped(t.path(), &keys().vault_id, &zone);
        let segs = segments(&sealed.dir).unwrap();
        match what {
            "change" => {
                let mut b = std::fs::read(&segs[0].1).unwrap();
                let spans = record_spans_sealed(&b);
                b[spans[1].0 + 20] ^= 1;
                std::fs::write(&segs[0].1, b).unwrap();
            }
            "swap segments" => {
                // Segment 1's bytes put in as segment 0: its keys are bound to its number.
                std::fs::copy(&segs[1].1, &segs[0].1).unwrap();
            }
            _ => std::fs::remove_file(&segs[1].1).unwrap(),
        }
        let bad = uids(t.path())
            .0
            .bad
            .unwrap_or_else(|| panic!("{what}: not caught"));
        assert!(!bad.is_empty(), "{what}");
    }
}

/// Offsets of each record in a sealed segment (its header is 114 bytes).
fn record_spans_sealed(b: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = crate::format::audit::HEADER_LEN_SEALED;
    while pos < b.len() {
        let len = u32::from_le_bytes(b[pos..pos + 4].try_into().unwrap()) as usize;
        out.push((pos, pos + 12 + len + 32));
        pos += 12 + len + 32;
    }
    out
}

/// Several chains far longer than the merge reads ahead come out in one time order, ties in
/// chain order, each chain's own order kept (a clock set back stays where it was written).
#[test]
fn long_chains_merge_in_time_order_without_holding_the_log() {
    let t = tempfile::tempdir().unwrap();
    let zone = [0xad; 16];
    let n = 3 * super::read::MERGE_AHEAD as u64;
    // The original chain at even times, the sealed chain at odd ones and at a tie.
    let even: Vec<(u32, u64)> = (0..n).map(|i| (1, 10 + 2 * i)).collect();
    let mut odd: Vec<(u32, u64)> = (0..n).map(|i| (2, 11 + 2 * i)).collect();
    odd.push((3, 10 + 2 * (n - 1)));
    session(t.path(), &even);
    scoped_session(t.path(), &zone, &odd);
    let mut times = Vec::new();
    let mut uids = Vec::new();
    let r = read_all(t.path(), &keys(), |r| {
        if r.op == "open" {
            times.push(r.time_ms);
            uids.push(r.uid);
        }
    })
    .unwrap();
    assert!(r.bad.is_none(), "{r:?}");
    assert_eq!(times.len() as u64, 2 * n + 1);
    // The sealed chain's last record went back in time: it stays after its predecessor,
    // last (sorting the collected log moved it before it).
    assert_eq!(uids.last(), Some(&3));
    assert_eq!(times.last(), Some(&(10 + 2 * (n - 1))));
    let rest = &times[..times.len() - 1];
    assert!(rest.windows(2).all(|w| w[0] <= w[1]));
    // Ties between chains go in chain order: the original chain's record first.
    let tie = times.iter().position(|&t| t == 10 + 2 * (n - 1)).unwrap();
    assert_eq!(uids[tie], 1);
}
