use super::super::{Record, Sink};
use super::*;
use crate::crypto::secret::Key32;

fn keys() -> Keys {
    Keys {
        enc: Key32::from_bytes([1; 32]),
        mac: Key32::from_bytes([2; 32]),
        vault_id: [3; 16],
    }
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

fn verify(dir: &Path) -> (super::super::Report, Vec<u64>) {
    let mut seen = Vec::new();
    let rep = read_all(dir, &keys(), |r| seen.push(r.time_ms)).unwrap();
    (rep, seen)
}

fn prune(dir: &Path, cutoff: u64) -> Plan {
    let _l = lock(dir).unwrap();
    let p = plan(dir, &keys(), cutoff, 1000, 99_000).unwrap();
    execute(dir, &keys(), &p).unwrap();
    p
}

fn seg_files(dir: &Path) -> Vec<u64> {
    segments(&dir.join(DIR_NAME))
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
    assert!(p.next.is_none() && p.records == 0);
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
    std::fs::remove_file(t.path().join(DIR_NAME).join(format!("{:016}.seg", 1))).unwrap();
    let bad = verify(t.path()).0.bad.expect("not detected");
    assert!(bad.contains("missing"), "{bad}");
}

#[test]
fn an_older_checkpoint_put_back_is_detected() {
    let t = tempfile::tempdir().unwrap();
    write_sessions(t.path(), &[&[1000], &[2000], &[3000], &[4000]]);
    prune(t.path(), 1500);
    let cp_path = t.path().join(DIR_NAME).join(FILE_NAME);
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
    let cp_path = t.path().join(DIR_NAME).join(FILE_NAME);
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
    let dir = t.path().join(DIR_NAME);
    let cp = p.next.as_ref().unwrap().encode(&keys());
    crate::sys::write_atomic(&dir, FILE_NAME, &cp, 0o600).unwrap();
    // The segments are still there: skipped, not an error.
    let (rep, seen) = verify(t.path());
    assert!(rep.bad.is_none(), "{rep:?}");
    assert_eq!(seen, vec![3000]);
    // The next prune removes what the interrupted one left.
    let p = prune(t.path(), 0);
    assert!(p.next.is_none());
    assert_eq!(seg_files(t.path()), vec![2]);
    assert!(verify(t.path()).0.bad.is_none());
}

#[test]
fn a_log_that_does_not_verify_is_not_pruned() {
    let t = tempfile::tempdir().unwrap();
    write_sessions(t.path(), &[&[1000], &[2000], &[3000]]);
    let seg1 = t.path().join(DIR_NAME).join(format!("{:016}.seg", 1));
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
    let b = cp.encode(&keys());
    assert_eq!(
        b.iter().map(|x| format!("{x:02x}")).collect::<String>(),
        crate::format::vectors::PRUNE_VECTOR
    );
    assert_eq!(Checkpoint::decode(&b, &keys()).unwrap(), cp);
    let mut newer = b.clone();
    newer[8] = 2;
    assert!(matches!(
        Checkpoint::decode(&newer, &keys()),
        Err(Error::UnsupportedVersion { found: 2, .. })
    ));
}
