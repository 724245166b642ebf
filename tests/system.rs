//! At home on Linux: the shipped systemd unit (its ExecStart/ExecStop run as written), an
//! /etc/fstab line through the real mount(8) and the mount.fuse.tutela helper, `tutela
//! status`, and the background daemon logging to the system log without plaintext names.

mod common;

use common::unit_value;
use common::{fuse_missing, is_mountpoint, is_root, run_ok, skip_unless, tutela, wait_until};
use common::{TestVault, PASS};
use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[test]
fn systemd_service_unit_mounts_and_stops() {
    let Some(mut v) = TestVault::new("systemd unit") else {
        return;
    };
    v.mount();
    fs::write(v.p("hello.txt"), b"from before the reboot").unwrap();
    v.unmount();
    let unit = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/systemd/tutela-clients.service"),
    )
    .unwrap();
    // The credential is sealed by systemd-creds as the unit's comment says (with the host
    // key here: no TPM in a test machine), and opened as systemd opens it for
    // LoadCredentialEncrypted=: decrypted into a private directory holding the file.
    let cred = unit_value(&unit, "LoadCredentialEncrypted");
    let (name, _src) = cred.split_once(':').unwrap();
    let creds = v.tmp.path().join("credentials");
    fs::create_dir(&creds).unwrap();
    if common::have("systemd-creds") {
        let sealed = v.tmp.path().join("clients.cred");
        let mut enc = Command::new("systemd-creds")
            .args(["encrypt", "--with-key=host", &format!("--name={name}"), "-"])
            .arg(&sealed)
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut stdin = enc.stdin.take().unwrap();
            stdin.write_all(format!("{PASS}\n").as_bytes()).unwrap();
        }
        assert!(enc.wait().unwrap().success(), "systemd-creds encrypt");
        assert!(
            !common::contains(&fs::read(&sealed).unwrap(), PASS.as_bytes()),
            "the sealed credential holds the passphrase in the clear"
        );
        run_ok(
            Command::new("systemd-creds")
                .args(["decrypt", &format!("--name={name}")])
                .arg(&sealed)
                .arg(creds.join(name)),
        );
    } else {
        eprintln!("note: systemd-creds is missing; the credential is written as systemd would hand it over");
        fs::write(creds.join(name), format!("{PASS}\n")).unwrap();
    }
    fs::set_permissions(
        creds.join(name),
        std::os::unix::fs::PermissionsExt::from_mode(0o400),
    )
    .unwrap();
    let local = |cmd: &str| {
        cmd.replace("/usr/local/bin/tutela", common::bin().to_str().unwrap())
            .replace("/srv/tutela/vault", v.vault.to_str().unwrap())
            .replace("/srv/clients", v.mnt.to_str().unwrap())
    };
    assert_eq!(unit_value(&unit, "Type"), "forking");
    // ExecStart, run by a shell that expands ${CREDENTIALS_DIRECTORY} as systemd would.
    let start = local(&unit_value(&unit, "ExecStart"));
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(&start)
        .env("CREDENTIALS_DIRECTORY", &creds)
        .env("TUTELA_TEST_INSECURE_KDF", "1")
        .stdin(std::process::Stdio::null());
    run_ok(&mut sh);
    // Type=forking: the command has returned and the mount is live.
    assert!(is_mountpoint(&v.mnt));
    v.mounted = true;
    assert_eq!(
        fs::read(v.p("hello.txt")).unwrap(),
        b"from before the reboot"
    );
    let m = common::status_of(&v.mnt);
    assert_eq!(m["read_only"], false);
    assert!(m["pid"].as_u64().is_some() && m["uptime_s"].as_u64().is_some());
    assert_eq!(m["clients"], 0);
    run_ok(
        Command::new("sh")
            .arg("-c")
            .arg(local(&unit_value(&unit, "ExecStop"))),
    );
    wait_until(|| !is_mountpoint(&v.mnt), "ExecStop unmounts");
    v.mounted = false;
}

#[test]
fn fstab_line_mounts_through_mount8_and_the_helper() {
    if skip_unless(fuse_missing(), "fstab") {
        return;
    }
    let reason = (!is_root()).then(|| "mount(8) of an fstab line needs root".to_string());
    if skip_unless(reason, "fstab") {
        return;
    }
    let mut v = TestVault::new_unmounted();
    v.mount();
    fs::write(v.p("f"), b"fstab").unwrap();
    v.unmount();
    // mount(8) looks for /sbin/mount.fuse.<subtype>; link it to this build if no install did.
    let helper = Path::new("/sbin/mount.fuse.tutela");
    let made = !helper.exists();
    if made {
        std::os::unix::fs::symlink(common::bin(), helper).unwrap();
    }
    let fstab = v.tmp.path().join("fstab");
    fs::write(
        &fstab,
        format!(
            "# test fstab\n{} {} fuse.tutela noauto,passfile={},ro,idle=1h,nofail,noexec,nodev 0 0\n",
            v.vault.display(),
            v.mnt.display(),
            v.passfile.display()
        ),
    )
    .unwrap();
    let out = Command::new("mount")
        .arg("--fstab")
        .arg(&fstab)
        .arg(&v.mnt)
        .env("TUTELA_TEST_INSECURE_KDF", "1")
        .output()
        .unwrap();
    if made {
        let _ = fs::remove_file(helper);
    }
    assert!(
        out.status.success(),
        "mount --fstab failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    v.mounted = true;
    assert_eq!(fs::read(v.p("f")).unwrap(), b"fstab");
    let e = fs::write(v.p("g"), b"x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "ro option honoured");
    let m = common::status_of(&v.mnt);
    assert_eq!(m["read_only"], true);
    assert_eq!(m["idle_s"], 3600);
    // The kernel flags of the line are applied, not ignored, and the type is fuse.tutela.
    let line = common::mount_line(&v.mnt);
    assert!(
        line.contains("noexec") && line.contains(" - fuse.tutela "),
        "{line}"
    );
    run_ok(Command::new("umount").arg(&v.mnt));
    wait_until(|| !is_mountpoint(&v.mnt), "umount");
    v.mounted = false;
    // A bad option is refused with a clear message and the usage exit code.
    let out = Command::new(common::bin())
        .arg0_helper()
        .args([
            v.vault.to_str().unwrap(),
            v.mnt.to_str().unwrap(),
            "-o",
            "passfile=/x,colour=blue",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown option 'colour=blue'"));
}

trait Arg0 {
    fn arg0_helper(&mut self) -> &mut Self;
}
impl Arg0 for Command {
    fn arg0_helper(&mut self) -> &mut Self {
        std::os::unix::process::CommandExt::arg0(self, "mount.fuse.tutela")
    }
}

#[test]
fn background_daemon_logs_to_syslog_without_names() {
    let Some(mut v) = TestVault::new("syslog") else {
        return;
    };
    let sock_path = v.tmp.path().join("devlog");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut c = tutela();
    c.arg("mount")
        .arg(&v.vault)
        .arg(&v.mnt)
        .arg("--passfile")
        .arg(&v.passfile)
        .arg("-vv")
        .env("TUTELA_SYSLOG_SOCKET", &sock_path);
    run_ok(&mut c);
    v.mounted = true;
    fs::write(v.p("Secret Client Memo.txt"), b"x").unwrap();
    // A stray file in the backing dir makes the daemon warn on the next listing.
    fs::write(v.vault.join("stray-file.bin"), b"stray").unwrap();
    let _ = fs::read_dir(&v.mnt).unwrap().count();
    v.unmount();
    let mut lines = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = sock.recv(&mut buf) {
        lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        if lines.iter().any(|l| l.contains("unmounted")) {
            break;
        }
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<30>tutela[") && l.ends_with("mounted")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<28>") && l.contains("stray-file.bin")),
        "{lines:?}"
    );
    for l in &lines {
        assert!(
            !l.contains("Secret Client Memo"),
            "plaintext name in the system log: {l}"
        );
    }
}

/// A temp dir other users may enter (they run the installed binary from inside it).
fn open_tempdir(prefix: &str) -> tempfile::TempDir {
    let t = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    fs::set_permissions(
        t.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    t
}

/// `scripts/install.sh` as root used to link /usr/local/bin/tutela into root's ~/.cargo, which
/// other users cannot enter (exit 126). It now installs a real copy every user can run, and
/// points the mount helper at it.
#[test]
fn install_script_as_root_installs_a_copy_every_user_can_run() {
    if skip_unless(
        fuse_missing().or_else(|| (!is_root()).then(|| "needs root (a system install)".into())),
        "install.sh",
    ) {
        return;
    }
    let (t, root) = (
        open_tempdir("tutela-install"),
        Path::new(env!("CARGO_MANIFEST_DIR")),
    );
    run_ok(
        Command::new("bash")
            .arg(root.join("scripts/install.sh"))
            .env("TUTELA_BIN", common::bin())
            .env("PREFIX", t.path().join("usr"))
            .env("SBIN", t.path().join("sbin"))
            .env("BASH_COMPLETIONS", t.path().join("bash"))
            .env("FISH_COMPLETIONS", t.path().join("fish")),
    );
    let bin = t.path().join("usr/bin/tutela");
    let meta = fs::symlink_metadata(&bin).unwrap();
    assert!(meta.file_type().is_file(), "a copy, not a link");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o755
    );
    assert_eq!(
        fs::read_link(t.path().join("sbin/mount.fuse.tutela")).unwrap(),
        bin
    );
    assert!(t.path().join("usr/share/man/man1/tutela.1").exists());
    common::ensure_user("tutela-installed");
    let out = run_ok(
        Command::new("runuser")
            .args(["-u", "tutela-installed", "--"])
            .arg(&bin)
            .arg("--version"),
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("tutela "));

    // Without cargo (a fresh machine, Debian's packages only) it says in one line what to
    // install, instead of failing on "cargo: not found" (demo.sh runs it first).
    let out = Command::new("bash")
        .arg(root.join("scripts/install.sh"))
        .env("HOME", t.path())
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env_remove("TUTELA_BIN")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("needs Rust 1.88 or newer"), "{err}");
}

/// Office administrators install software as packages: `scripts/package.sh` builds a Debian
/// package, apt installs it, an ordinary user mounts with the installed binary, and apt
/// removes it without a trace.
#[test]
fn the_debian_package_installs_serves_an_ordinary_user_and_removes_cleanly() {
    if skip_unless(
        fuse_missing().or_else(|| (!is_root()).then(|| "needs root (apt-get install)".into())),
        "debian package",
    ) {
        return;
    }
    if Command::new("dpkg-deb").arg("--version").output().is_err() {
        skip_unless(Some("dpkg-deb is missing".into()), "debian package");
        return;
    }
    let (t, root) = (
        open_tempdir("tutela-deb"),
        Path::new(env!("CARGO_MANIFEST_DIR")),
    );
    let out = run_ok(
        Command::new("bash")
            .arg(root.join("scripts/package.sh"))
            .env("TUTELA_BIN", common::bin())
            .env("OUT", t.path()),
    );
    let deb = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(deb.ends_with(".deb") && Path::new(&deb).exists(), "{deb}");
    run_ok(
        Command::new("apt-get")
            .args(["install", "-y", "-qq"])
            .arg(&deb)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    );
    let removed = || {
        let _ = Command::new("apt-get")
            .args(["remove", "-y", "-qq", "tutela"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output();
    };
    // A Debian system's udev makes /dev/fuse 0666 so that users can mount; a container may
    // leave it 0600 (root only). Give this test what a real machine has, then put it back.
    let dev_mode = fs::metadata("/dev/fuse").unwrap().permissions();
    fs::set_permissions(
        "/dev/fuse",
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    let result = std::panic::catch_unwind(|| {
        assert!(Path::new("/usr/bin/tutela").exists());
        assert_eq!(
            fs::read_link("/usr/sbin/mount.fuse.tutela").unwrap(),
            Path::new("../bin/tutela")
        );
        assert!(Path::new("/usr/share/man/man1/tutela.1.gz").exists());
        // An ordinary user, with the installed binary only.
        let uid = common::ensure_user("tutela-deb");
        let home = t.path().join("home");
        fs::create_dir_all(home.join("mnt")).unwrap();
        fs::write(home.join("pass"), format!("{PASS}\n")).unwrap();
        fs::set_permissions(
            home.join("pass"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        for p in [home.clone(), home.join("mnt"), home.join("pass")] {
            std::os::unix::fs::chown(&p, Some(uid), None).unwrap();
        }
        let h = home.display();
        let script = format!(
            "set -e; export TUTELA_TEST_INSECURE_KDF=1; cd {h}; \
             tutela init vault --passfile pass >/dev/null 2>&1; \
             tutela mount vault mnt --passfile pass 2>/dev/null; \
             echo from-the-package > mnt/note.txt; \
             tutela unmount mnt; \
             tutela mount vault mnt --passfile pass 2>/dev/null; \
             cat mnt/note.txt; tutela unmount mnt"
        );
        let out = run_ok(
            Command::new("runuser")
                .args([
                    "-u",
                    "tutela-deb",
                    "--",
                    "env",
                    "PATH=/usr/bin:/bin",
                    "sh",
                    "-c",
                ])
                .arg(&script),
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "from-the-package\n");
    });
    let _ = fs::set_permissions("/dev/fuse", dev_mode);
    removed();
    assert!(!Path::new("/usr/bin/tutela").exists(), "removed");
    assert!(!Path::new("/usr/sbin/mount.fuse.tutela").exists());
    let st = Command::new("dpkg")
        .args(["-s", "tutela"])
        .output()
        .unwrap();
    assert!(!st.status.success(), "no trace left in dpkg");
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
