//! Ordinary tools on the mount behave as on a local disk: cp -a, tar, rsync, git, sqlite, and
//! the fsx exerciser (random read/write/truncate/mmap with data verification).

mod common;

use common::{fsx, run_ok, TestVault};
use std::fs;
use std::path::Path;
use std::process::Command;

macro_rules! mounted {
    ($name:expr) => {{
        let Some(mut v) = TestVault::new($name) else {
            return;
        };
        v.mount();
        v
    }};
}

/// A small source tree with text, binary, a symlink, a hard link, an empty dir and modes.
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("src/nested/deeper")).unwrap();
    fs::create_dir_all(root.join("empty")).unwrap();
    for i in 0..40 {
        fs::write(
            root.join(format!("src/file{i}.txt")),
            format!("line {i}\n").repeat(i * 50 + 1),
        )
        .unwrap();
    }
    fs::write(
        root.join("src/nested/deeper/blob.bin"),
        common::pattern(300_000, 3),
    )
    .unwrap();
    fs::write(root.join("run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(
        root.join("run.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::os::unix::fs::symlink("src/file1.txt", root.join("link")).unwrap();
    fs::hard_link(root.join("src/file2.txt"), root.join("hard")).unwrap();
}

fn diff(a: &Path, b: &Path) {
    let out = Command::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "trees differ:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn cp_a_tar_and_rsync_round_trip_a_tree() {
    let v = mounted!("cp tar rsync");
    let src = v.tmp.path().join("src-tree");
    make_tree(&src);
    run_ok(Command::new("cp").arg("-a").arg(&src).arg(v.p("copied")));
    diff(&src, &v.p("copied"));
    let meta = fs::metadata(v.p("copied/run.sh")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o755
    );
    // tar out of and into the mount
    let tarball = v.tmp.path().join("t.tar");
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(v.p("copied"))
            .arg("-cf")
            .arg(&tarball)
            .arg("."),
    );
    fs::create_dir(v.p("untarred")).unwrap();
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(v.p("untarred"))
            .arg("-xf")
            .arg(&tarball),
    );
    diff(&src, &v.p("untarred"));
    if common::need("rsync", "rsync") {
        run_ok(
            Command::new("rsync")
                .arg("-aH")
                .arg(format!("{}/", src.display()))
                .arg(v.p("synced")),
        );
        diff(&src, &v.p("synced"));
        // A second rsync finds nothing to do.
        let out = run_ok(
            Command::new("rsync")
                .arg("-aHi")
                .arg(format!("{}/", src.display()))
                .arg(v.p("synced")),
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).trim().is_empty(),
            "rsync found changes"
        );
    }
}

#[test]
fn git_and_sqlite_work_on_the_mount() {
    let v = mounted!("git sqlite");
    if common::need("git", "git") {
        let repo = v.p("repo");
        make_tree(&repo);
        let git = |args: &[&str]| {
            run_ok(
                Command::new("git")
                    .args([
                        "-c",
                        "user.name=T",
                        "-c",
                        "user.email=t@example.com",
                        "-c",
                        "init.defaultBranch=main",
                    ])
                    .args(args)
                    .current_dir(&repo),
            )
        };
        git(&["init", "-q"]);
        git(&["add", "-A"]);
        git(&["commit", "-qm", "first"]);
        fs::write(repo.join("src/file3.txt"), b"changed\n").unwrap();
        let st = git(&["status", "--porcelain"]);
        assert_eq!(
            String::from_utf8_lossy(&st.stdout).trim(),
            "M src/file3.txt"
        );
        git(&["commit", "-qam", "second"]);
        git(&["gc", "-q"]);
        let fsck = git(&["fsck", "--strict"]);
        assert!(fsck.status.success());
    }
    if common::need("sqlite3", "sqlite") {
        let db = v.p("clients.db");
        let sql = "PRAGMA journal_mode=WAL; CREATE TABLE c(id INTEGER PRIMARY KEY, name TEXT); \
                   WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM n WHERE x<5000) \
                   INSERT INTO c(name) SELECT 'client ' || x FROM n; \
                   UPDATE c SET name = name || '!' WHERE id % 3 = 0; DELETE FROM c WHERE id % 7 = 0; \
                   PRAGMA integrity_check; SELECT count(*) FROM c;";
        let out = run_ok(Command::new("sqlite3").arg(&db).arg(sql));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("ok"), "{text}");
        assert!(text.trim_end().ends_with("4286"), "{text}");
    }
}

#[test]
fn fsx_two_seeds_of_100k_operations_with_mmap() {
    let mut v = mounted!("fsx");
    if !common::need("fsx", "fsx") {
        return;
    }
    let ops: u32 = std::env::var("TUTELA_FSX_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    for seed in [1u32, 20261123] {
        fsx(&v, seed, ops);
    }
    v.remount();
    // The files fsx left behind still read after a remount.
    for seed in [1u32, 20261123] {
        fs::read(v.p(&format!("fsx-{seed}"))).unwrap();
    }
}
