//! Several local users on one `--allow-other` mount: files belong to the user who created them
//! and mode bits are enforced as on a local disk. Needs root (to create users and mount for
//! others); skips with a reason elsewhere.

mod common;

use common::TestVault;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Output};

fn as_user(user: &str, script: &str) -> Output {
    Command::new("runuser")
        .args(["-u", user, "--", "sh", "-c", script])
        .output()
        .unwrap()
}

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
