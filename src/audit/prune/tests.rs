use super::super::{read_all, Record, Report, Sink};
use super::*;

fn keys() -> Keys {
    crate::audit::test_keys()
}

/// One mount session per entry, each writing records at the given times (ms).
fn write_sessions(dir: &Path, sessions: &[&[u64]]) {
    for times in sessions {
        let s = Sink::start(dir, keys()).unwrap();
        for t in *times {
            let mut r = Record::now("open", "/clients/acme/a");
            r.time_ms = *t;
            s.record(r);
        }
        s.close();
    }
}

/// The one chain's report (with the whole log's verdict) and the records' times.
fn verify(dir: &Path) -> (Report, Vec<u64>) {
    let mut seen = Vec::new();
    let log = read_all(dir, &keys(), |r| seen.push(r.time_ms)).unwrap();
    let mut rep = log
        .chains
        .into_iter()
        .next()
        .map(|c| c.report)
        .unwrap_or_default();
    rep.bad = log.bad;
    (rep, seen)
}

/// The directory this machine's chain of the test vault lives in.
fn mine(dir: &Path) -> PathBuf {
    chain::local(dir, &keys().vault_id).dir
}

fn next(p: &Plan) -> Option<&Checkpoint> {
    p.parts.iter().find_map(|c| c.next.as_ref())
}

fn prune(dir: &Path, cutoff: u64) -> Plan {
    let _l = lock(dir).unwrap();
    let p = plan(dir, &keys(), cutoff, 1000, 99_000).unwrap();
    execute(&keys(), &p).unwrap();
    p
}

fn seg_files(dir: &Path) -> Vec<u64> {
    segments(&mine(dir))
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

#[test]
fn pruning_removes_whole_old_segments_and_the_rest_still_verifies() {
    let t = tempfile::tempdir().unwrap();
    write_sessions(t.path(), &[&[1000, 1100], &[2000, 2100, 2200], &[3000]]);
    let p = prune(t.path(), 2500);
    assert_eq!((p.segments, p.records), (2, 5));
    assert_eq!((p.oldest_ms, p.newest_ms), (Some(1000), Some(2200)));
    assert_eq!((p.kept_records, p.kept_from_ms), (1, Some(3000)));
    assert_eq!(seg_files(t.path()), vec![2]);
    let (rep, seen) = verify(t.path());
    assert!(rep.bad.is_none(), "{rep:?}");
    assert_eq!(seen, vec![3000]);
    let cp = rep.pruned.unwrap();
    assert_eq!(
        (cp.first_segment, cp.first_seq, cp.records_pruned),
        (2, 5, 5)
    );
    assert_eq!(cp.uid, 1000);
}

#[test]
fn a_segment_holding_any_newer_record_stays_and_so_does_the_newest() {
    let t = tempfile::tempdir().unwrap();
    write_sessions(t.path(), &[&[1000], &[2000, 4000], &[3000]]);
    let p = prune(t.path(), 2500);
    assert_eq!(p.records, 1);
    assert_eq!(seg_files(t.path()), vec![1, 2]);
    // A cutoff past everything still keeps the newest segment.
    let p = prune(t.path(), u64::MAX);
    assert_eq!(p.records, 2);
    assert_eq!(seg_files(t.path()), vec![2]);
    let (rep, seen) = verify(t.path());
    assert!(rep.bad.is_none(), "{rep:?}");
    assert_eq!(seen, vec![3000]);
    assert_eq!(rep.pruned.unwrap().records_pruned, 3);
    // Nothing older is left: a further prune changes nothing.
    let p = prune(t.path(), u64::MAX);
    assert!(next(&p).is_none() && p.records == 0);
}

#[test]
fn numbering_goes_on_after_a_prune_even_with_no_record_left() {
    let t = tempfile::tempdir().unwrap();
    write_sessions(t.path(), &[&[1000, 1001, 1002], &[1003, 1004], &[]]);
    prune(t.path(), u64::MAX);
    assert_eq!(seg_files(t.path()), vec![2]);
    write_sessions(t.path(), &[&[5000, 5001]]);
    let (rep, seen) = verify(t.path());
    assert!(rep.bad.is_none(), "{rep:?}");
    assert_eq!(seen, vec![5000, 5001]);
    assert_eq!(rep.spans.last().unwrap().end_seq, 7);
}

#[test]
fn a_segment_removed_beyond_the_pruning_point_is_detected() {
    let t = tempfile::tempdir().unwrap();
    write_sessions(t.path(), &[&[1000], &[2000], &[3000], &[4000]]);
    prune(t.path(), 1500);
    std::fs::remove_file(mine(t.path()).join(format!("{:016}.seg", 1))).unwrap();
    let bad = verify(t.path()).0.bad.expect("not detected");
    assert!(bad.contains("missing"), "{bad}");
}

#[test]
fn an_older_checkpoint_put_back_is_detected() {
    let t = tempfile::tempdir().unwrap();
    write_sessions(t.path(), &[&[1000], &[2000], &[3000], &[4000]]);
    prune(t.path(), 1500);
    let cp_path = mine(t.path()).join(FILE_NAME);
    let old = std::fs::read(&cp_path).unwrap();
    prune(t.path(), 3500);
    std::fs::write(&cp_path, old).unwrap();
    let bad = verify(t.path()).0.bad.expect("not detected");
    assert!(bad.contains("missing"), "{bad}");
}

#[test]
fn a_changed_or_removed_checkpoint_is_detected() {
    let t = tempfile::tempdir().unwrap();
    write_sessions(t.path(), &[&[1000], &[2000], &[3000]]);
    prune(t.path(), 1500);
    let cp_path = mine(t.path()).join(FILE_NAME);
    let good = std::fs::read(&cp_path).unwrap();
    for at in [10, 18, 30, 60, 70, 80, 84, LEN - 1] {
        let mut b = good.clone();
        b[at] ^= 1;
        std::fs::write(&cp_path, &b).unwrap();
        let bad = verify(t.path()).0.bad.expect("not detected");
        assert!(bad.contains("does not authenticate"), "byte {at}: {bad}");
    }
    std::fs::write(&cp_path, &good[..LEN - 1]).unwrap();
    assert!(verify(t.path()).0.bad.unwrap().contains("wrong length"));
    std::fs::remove_file(&cp_path).unwrap();
    let bad = verify(t.path()).0.bad.expect("not detected");
    assert!(bad.contains("earlier segments are missing"), "{bad}");
}

#[test]
fn a_crash_between_checkpoint_and_deletion_is_not_tampering() {
    let t = tempfile::tempdir().unwrap();
    write_sessions(t.path(), &[&[1000], &[2000], &[3000]]);
    let p = plan(t.path(), &keys(), 2500, 0, 0).unwrap();
    let c = chain::local(t.path(), &keys().vault_id);
    let dir = c.dir.clone();
    let cp = next(&p).unwrap().encode(&keys(), c.replica.as_ref());
    crate::sys::write_atomic(&dir, FILE_NAME, &cp, 0o600).unwrap();
    // The segments are still there: skipped, not an error.
    let (rep, seen) = verify(t.path());
    assert!(rep.bad.is_none(), "{rep:?}");
    assert_eq!(seen, vec![3000]);
    // The next prune removes what the interrupted one left.
    let p = prune(t.path(), 0);
    assert!(next(&p).is_none());
    assert_eq!(seg_files(t.path()), vec![2]);
    assert!(verify(t.path()).0.bad.is_none());
}

#[test]
fn a_log_that_does_not_verify_is_not_pruned() {
    let t = tempfile::tempdir().unwrap();
    write_sessions(t.path(), &[&[1000], &[2000], &[3000]]);
    let seg1 = mine(t.path()).join(format!("{:016}.seg", 1));
    let mut b = std::fs::read(&seg1).unwrap();
    let n = b.len();
    b[n - 40] ^= 1;
    std::fs::write(&seg1, b).unwrap();
    let e = plan(t.path(), &keys(), u64::MAX, 0, 0).unwrap_err();
    assert!(matches!(e, Error::AuditTampered(_)), "{e}");
    assert_eq!(seg_files(t.path()), vec![0, 1, 2]);
}

#[test]
fn a_second_prune_at_the_same_time_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let _held = lock(t.path()).unwrap();
    assert!(matches!(lock(t.path()), Err(Error::Busy(_))));
}

#[test]
fn the_checkpoint_matches_its_test_vector() {
    let cp = Checkpoint {
        first_segment: 3,
        first_seq: 42,
        prev: [0x55; 32],
        cutoff_ms: 1_764_547_200_000,
        pruned_at_ms: 1_796_083_200_000,
        records_pruned: 42,
        uid: 1000,
    };
    let original = Chain::original(Path::new("/v"));
    let b = cp.encode(&keys(), None);
    assert_eq!(chain::hex(&b), crate::format::vectors::PRUNE_VECTOR);
    assert_eq!(Checkpoint::decode(&b, &keys(), &original).unwrap(), cp);
    let mut newer = b.clone();
    newer[8] = 2;
    assert!(matches!(
        Checkpoint::decode(&newer, &keys(), &original),
        Err(Error::UnsupportedVersion { found: 2, .. })
    ));
    // A replica's checkpoint names its replica: it passes for no other chain's.
    let replica = Chain::replica(Path::new("/v"), [1, 2, 3, 4, 5, 6, 7, 8]);
    let r = cp.encode(&keys(), replica.replica.as_ref());
    assert_eq!(
        chain::hex(&r[r.len() - 32..]),
        crate::format::vectors::PRUNE_REPLICA_MAC_VECTOR
    );
    assert_eq!(Checkpoint::decode(&r, &keys(), &replica).unwrap(), cp);
    assert!(matches!(
        Checkpoint::decode(&r, &keys(), &original),
        Err(Error::AuditTampered(_))
    ));
    let other = Chain::replica(Path::new("/v"), [8, 7, 6, 5, 4, 3, 2, 1]);
    assert!(Checkpoint::decode(&r, &keys(), &other).is_err());
}

#[test]
fn each_replica_chain_is_pruned_on_its_own() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    std::fs::create_dir(&a).unwrap();
    write_sessions(&a, &[&[1000], &[2000], &[3000]]);
    // The same vault synced to another place: another chain, written beside the first.
    let b = t.path().join("b");
    super::super::sync_log_for_tests(&a, &b);
    write_sessions(&b, &[&[1500], &[2500]]);
    super::super::sync_log_for_tests(&b, &a);
    // a's chain loses its first two segments, b's its first: each keeps its newest.
    let p = prune(&a, u64::MAX);
    assert_eq!(p.parts.len(), 2);
    assert_eq!(p.segments, 3);
    assert!(p.parts.iter().all(|c| c.next.is_some()), "{p:?}");
    let log = read_all(&a, &keys(), |_| {}).unwrap();
    assert!(log.bad.is_none(), "{log:?}");
    assert_eq!(log.chains.len(), 2);
    assert!(log.chains.iter().all(|c| c.report.pruned.is_some()));
}
