//! POSIX conformance: the pjdfstest suite (crate pjdfstest 0.2.2, pinned in .ci/run) run on
//! a tutela mount must pass every case it passes on a plain directory of this machine; plus
//! the hard-link and open-after-unlink cases it first caught, pinned down directly.

mod common;

use common::{ensure_pjdfstest_users, have, is_root, pjdfstest, skip_unless, TestVault};
use std::fs;
use std::io::{Read, Seek, Write};

#[test]
fn pjdfstest_passes_on_tutela_as_on_a_plain_directory() {
    let reason = common::fuse_missing()
        .or_else(|| (!is_root()).then(|| "pjdfstest needs root (it switches users)".into()))
        .or_else(|| {
            (!have("pjdfstest")).then(|| {
                "pjdfstest is not installed (cargo install --locked pjdfstest@0.2.2)".into()
            })
        });
    if skip_unless(reason, "pjdfstest") {
        return;
    }
    ensure_pjdfstest_users();
    let mut v = TestVault::new_unmounted();
    let plain = v.tmp.path().join("plain");
    fs::create_dir(&plain).unwrap();
    fs::set_permissions(&plain, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let (p, _) = pjdfstest(&plain);
    v.mount_args(&["--allow-other"]);
    fs::set_permissions(&v.mnt, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let (t, report) = pjdfstest(&v.mnt);
    eprintln!(
        "pjdfstest plain directory: {} failed, {} skipped, {} passed",
        p.0, p.1, p.2
    );
    eprintln!(
        "pjdfstest tutela:          {} failed, {} skipped, {} passed",
        t.0, t.1, t.2
    );
    let failed: Vec<&str> = report
        .lines()
        .filter(|l| l.trim_end().ends_with("FAILED"))
        .collect();
    assert_eq!(
        t.0,
        0,
        "pjdfstest failures on tutela:\n{}",
        failed.join("\n")
    );
    // One case more is skipped on FUSE: link_count_max (the kernel reports no LINK_MAX
    // for FUSE; see README "POSIX conformance").
    assert!(
        t.2 + 1 >= p.2,
        "tutela passed {} cases, a plain directory {}",
        t.2,
        p.2
    );
}

#[test]
fn hard_link_survives_unlink_of_the_first_name_and_open_deleted_files_stat() {
    let Some(mut v) = TestVault::new("hard links") else {
        return;
    };
    v.mount();
    fs::write(v.p("a"), b"shared").unwrap();
    fs::hard_link(v.p("a"), v.p("b")).unwrap();
    fs::hard_link(v.p("b"), v.p("c")).unwrap();
    fs::remove_file(v.p("a")).unwrap();
    // No lookup in between: the kernel still has b and c cached.
    assert_eq!(fs::read(v.p("b")).unwrap(), b"shared");
    fs::rename(v.p("b"), v.p("b2")).unwrap();
    fs::remove_file(v.p("b2")).unwrap();
    assert_eq!(fs::read(v.p("c")).unwrap(), b"shared");
    assert_eq!(
        std::os::unix::fs::MetadataExt::nlink(&fs::metadata(v.p("c")).unwrap()),
        1
    );
    // Open, unlink, then fstat, write and read through the open descriptor.
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(v.p("tmpfile"))
        .unwrap();
    fs::remove_file(v.p("tmpfile")).unwrap();
    let md = f.metadata().unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::nlink(&md), 0);
    f.write_all(b"still usable").unwrap();
    f.rewind().unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "still usable");
}
