//! Several local users on one `--allow-other` mount: files belong to the user who created them
//! and mode bits are enforced as on a local disk. Needs root (to create users and mount for
//! others); skips with a reason elsewhere.

mod common;

use common::TestVault;
use std::fs;
use std::os::unix::fs::MetadataExt;

use common::as_user;

#[test]
fn allow_other_gives_files_to_their_creators_and_enforces_modes() {
    let reason = common::fuse_missing()
        .or_else(|| (!common::is_root()).then(|| "needs root to create users".to_string()));
    if common::skip_unless(reason, "multi-user") {
        return;
    }
    let alice = common::ensure_user("tutela_alice");
    let bob = common::ensure_user("tutela_bob");
    let mut v = TestVault::new_unmounted();
    v.mount_args(&["--allow-other"]);
    fs::create_dir(v.p("shared")).unwrap();
    fs::set_permissions(
        v.p("shared"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    let dir = v.p("shared");
    let d = dir.display();
    let out = as_user("tutela_alice", &format!("umask 077; echo private > {d}/alice-private && umask 022 && echo public > {d}/alice-public && mkdir {d}/alice-dir"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = fs::metadata(dir.join("alice-private")).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o777), (alice, 0o600));
    assert_eq!(fs::metadata(dir.join("alice-dir")).unwrap().uid(), alice);
    // bob reads the public file, not the private one, and cannot delete alice's files (sticky).
    let out = as_user("tutela_bob", &format!("cat {d}/alice-public"));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "public\n");
    let out = as_user("tutela_bob", &format!("cat {d}/alice-private"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"));
    let out = as_user("tutela_bob", &format!("rm -f {d}/alice-public"));
    assert!(
        !out.status.success(),
        "sticky directory protects alice's file"
    );
    let out = as_user(
        "tutela_bob",
        &format!("echo mine > {d}/bob-file && touch {d}/alice-dir/x"),
    );
    assert!(
        !out.status.success(),
        "bob may not write into alice's 755 directory"
    );
    assert_eq!(fs::metadata(dir.join("bob-file")).unwrap().uid(), bob);
    // The backing files carry the same owners (root daemon).
    v.unmount();
    let owners: Vec<u32> = v
        .backing_files()
        .iter()
        .map(|(p, _)| fs::metadata(p).unwrap().uid())
        .collect();
    assert!(owners.contains(&alice) && owners.contains(&bob));
}

/// The daemon writes as root, which the backing filesystem lets keep set-ID bits; the kernel
/// leaves clearing them to us (FUSE_HANDLE_KILLPRIV_V2), so an unprivileged write or truncate
/// must drop them as on a local disk, and root's own writes must not.
#[test]
fn unprivileged_writes_and_truncates_clear_set_id_bits() {
    use std::os::unix::fs::PermissionsExt;
    let reason = common::fuse_missing()
        .or_else(|| (!common::is_root()).then(|| "needs root to create users".to_string()));
    if common::skip_unless(reason, "multi-user") {
        return;
    }
    common::ensure_user("tutela_alice");
    let mut v = TestVault::new_unmounted();
    v.mount_args(&["--allow-other"]);
    let mode = |v: &TestVault, name: &str| fs::metadata(v.p(name)).unwrap().mode() & 0o7777;
    for name in ["written", "truncated", "by-root", "sgid-no-gx"] {
        fs::write(v.p(name), b"#!/bin/sh\n").unwrap();
    }
    for (name, m) in [
        ("written", 0o6777),
        ("truncated", 0o4777),
        ("by-root", 0o4777),
        ("sgid-no-gx", 0o2666),
    ] {
        fs::set_permissions(v.p(name), fs::Permissions::from_mode(m)).unwrap();
    }
    let d = v.mnt.display();
    let out = as_user(
        "tutela_alice",
        &format!(
            "echo more >> {d}/written && truncate -s 1 {d}/truncated && echo x >> {d}/sgid-no-gx"
        ),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        mode(&v, "written"),
        0o0777,
        "write drops set-user-ID and set-group-ID"
    );
    assert_eq!(mode(&v, "truncated"), 0o0777, "truncate drops set-user-ID");
    // Without group-execute, set-group-ID still goes when the writer is not in the file's
    // group (root's here), as ext4 on this kernel does (setattr_should_drop_sgid; xfstests
    // 683); tests/xfstests_findings.rs shows a member keeping it.
    assert_eq!(mode(&v, "sgid-no-gx"), 0o0666);
    std::io::Write::write_all(
        &mut fs::OpenOptions::new()
            .append(true)
            .open(v.p("by-root"))
            .unwrap(),
        b"root\n",
    )
    .unwrap();
    assert_eq!(
        mode(&v, "by-root"),
        0o4777,
        "root (CAP_FSETID) keeps the bits"
    );
    v.remount();
    assert_eq!(
        mode(&v, "written"),
        0o0777,
        "the change reached the backing file"
    );
}

/// Without `XDG_RUNTIME_DIR` a user's status directory is `/tmp/tutela-UID`; one that another
/// user made first is not used (it could hold planted files), and `tutela status` says why
/// instead of quietly showing mounts without their details.
#[test]
fn status_says_why_it_skips_a_status_directory_another_user_made() {
    if common::skip_unless(
        (!common::is_root()).then(|| "needs root to create users".to_string()),
        "foreign status directory",
    ) {
        return;
    }
    let dave = common::ensure_user("tutela_dave");
    let planted = std::path::PathBuf::from(format!("/tmp/tutela-{dave}"));
    let _ = fs::remove_dir_all(&planted);
    fs::create_dir(&planted).unwrap();
    let out = as_user(
        "tutela_dave",
        &format!(
            "env -u XDG_RUNTIME_DIR TMPDIR=/tmp {} status",
            common::bin().display()
        ),
    );
    let _ = fs::remove_dir_all(&planted);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "not using {}: it belongs to uid 0",
            planted.display()
        )),
        "{err}"
    );
}
