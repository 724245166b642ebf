//! Shared helpers for the mount tests: a vault in a temp dir, mounted for real through the
//! `tutela` binary, unmounted on drop. Tests that need /dev/fuse print why they skip; under
//! CI (CI=true) a missing FUSE is a failure, so the suite can never pass by skipping.

#![allow(dead_code)]

// The suite drives crash points and the fast test KDF through the environment, which only a
// build with the test-hooks feature reads.
#[cfg(not(feature = "test-hooks"))]
compile_error!("run the tests with `cargo test --all-targets --features test-hooks` (see README)");

pub mod churn;
pub mod swtpm;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub const PASS: &str = "correct horse battery staple";

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tutela"))
}

/// The tutela command with the fast test-only KDF.
pub fn tutela() -> Command {
    let mut c = Command::new(bin());
    // Commands write some files where they run (a shred's erasure certificate): never into
    // the checkout.
    let scratch = std::env::temp_dir().join("tutela-test-cwd");
    let _ = std::fs::create_dir_all(&scratch);
    c.current_dir(&scratch);
    c.env("TUTELA_TEST_INSECURE_KDF", "1");
    c.env_remove("RUST_LOG");
    c.stdin(std::process::Stdio::null());
    // No controlling terminal: a command that would prompt fails instead of waiting.
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, || {
            libc::setsid();
            Ok(())
        });
    }
    c
}

pub fn is_root() -> bool {
    // SAFETY: always succeeds.
    unsafe { libc::geteuid() == 0 }
}

fn which(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// Why FUSE mounts cannot run here, if they cannot.
pub fn fuse_missing() -> Option<String> {
    if !Path::new("/dev/fuse").exists() {
        return Some("/dev/fuse is missing".into());
    }
    if !is_root() && !which("fusermount3") {
        return Some("not root and fusermount3 is not installed".into());
    }
    None
}

/// Skips (returns true) with a printed reason; under CI a skip is a failure.
pub fn skip_unless(reason: Option<String>, test: &str) -> bool {
    match reason {
        None => false,
        Some(r) => {
            if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
                panic!("{test}: cannot run under CI: {r}");
            }
            eprintln!("SKIP {test}: {r}");
            true
        }
    }
}

pub fn run_ok(c: &mut Command) -> Output {
    let out = c.output().expect("spawn");
    assert!(
        out.status.success(),
        "command {:?} failed ({}):\nstdout: {}\nstderr: {}",
        c,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub struct TestVault {
    pub tmp: tempfile::TempDir,
    pub vault: PathBuf,
    pub mnt: PathBuf,
    pub passfile: PathBuf,
    pub log: PathBuf,
    pub mounted: bool,
}

impl TestVault {
    /// A new vault (not mounted). `None` when FUSE is unavailable (reason printed).
    pub fn new(test: &str) -> Option<TestVault> {
        if skip_unless(fuse_missing(), test) {
            return None;
        }
        Some(Self::new_unmounted())
    }

    pub fn new_unmounted() -> TestVault {
        Self::new_unmounted_with(&[])
    }

    /// A new vault made with extra `tutela init` arguments (e.g. --keystore PATH).
    pub fn new_unmounted_with(init_extra: &[&OsStr]) -> TestVault {
        let tmp = tempfile::Builder::new()
            .prefix("tutela-test")
            .tempdir()
            .expect("tempdir");
        // Let other users traverse to the mountpoint (multi-user tests).
        std::fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let vault = tmp.path().join("vault");
        let mnt = tmp.path().join("mnt");
        let passfile = tmp.path().join("pass");
        let log = tmp.path().join("daemon.log");
        std::fs::create_dir(&mnt).unwrap();
        std::fs::write(&passfile, format!("{PASS}\n")).unwrap();
        std::fs::set_permissions(
            &passfile,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        run_ok(
            tutela()
                .arg("init")
                .arg(&vault)
                .arg("--passfile")
                .arg(&passfile)
                .args(init_extra),
        );
        TestVault {
            tmp,
            vault,
            mnt,
            passfile,
            log,
            mounted: false,
        }
    }

    /// Mounts with `extra` arguments; returns what `tutela mount` printed.
    pub fn mount_args(&mut self, extra: &[&str]) -> Output {
        self.mount_env(extra, &[])
    }

    /// As `mount_args`, with variables for the daemon's environment (test hooks).
    pub fn mount_env(&mut self, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = tutela();
        c.envs(env.iter().copied());
        c.arg("mount")
            .arg(&self.vault)
            .arg(&self.mnt)
            .arg("--passfile")
            .arg(&self.passfile);
        c.arg("--log-file").arg(&self.log).arg("-vv");
        c.args(extra);
        let out = run_ok(&mut c);
        self.mounted = true;
        assert!(
            is_mountpoint(&self.mnt),
            "mount returned but nothing is mounted"
        );
        out
    }

    pub fn mount(&mut self) {
        self.mount_args(&[]);
    }

    pub fn unmount(&mut self) {
        if self.mounted {
            let names = plaintext_names(&self.mnt);
            run_ok(tutela().arg("unmount").arg(&self.mnt));
            self.mounted = false;
            wait_until(|| !is_mountpoint(&self.mnt), "unmount");
            assert_log_clean(&self.log, &names);
        }
    }

    pub fn remount(&mut self) {
        self.unmount();
        self.mount();
    }

    pub fn p(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// Every backing file under the vault: (path, contents) for regular files.
    pub fn backing_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        walk(&self.vault, &mut out);
        out
    }

    /// Asserts that no backing name or content contains any of `needles`.
    pub fn assert_no_plaintext(&self, needles: &[&[u8]]) {
        assert_no_plaintext(&self.vault, needles);
    }
}

impl Drop for TestVault {
    fn drop(&mut self) {
        if self.mounted {
            let _ = tutela().arg("unmount").arg(&self.mnt).output();
            if is_mountpoint(&self.mnt) {
                let _ = Command::new("umount").arg("-l").arg(&self.mnt).output();
                let _ = Command::new("fusermount3")
                    .arg("-uz")
                    .arg(&self.mnt)
                    .output();
            }
        }
    }
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            walk(&p, out);
        } else if ft.is_file() {
            out.push((p.clone(), std::fs::read(&p).unwrap_or_default()));
        }
    }
}

fn walk_all(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        out.push(p.clone());
        if e.file_type().unwrap().is_dir() {
            walk_all(&p, out);
        }
    }
}

pub fn is_mountpoint(p: &Path) -> bool {
    let canon = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines().any(|l| {
        l.split(' ').nth(4).map(|m| m.replace("\\040", " "))
            == Some(canon.to_string_lossy().into_owned())
    })
}

pub fn wait_until(mut f: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

pub fn errno_of(r: std::io::Result<impl Sized>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

pub fn cpath(p: &Path) -> std::ffi::CString {
    std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap()
}

pub fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

/// Deterministic pseudo-random bytes.
pub fn pattern(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The encrypted directories at the top of a vault (not tutela's own `tutela.*`), sorted.
pub fn backing_dirs(vault: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(vault)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.is_dir()
                && !p
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("tutela.")
        })
        .collect();
    dirs.sort();
    dirs
}

/// The first encrypted directory at the top of a vault.
pub fn first_backing_dir(vault: &Path) -> PathBuf {
    backing_dirs(vault)
        .into_iter()
        .next()
        .expect("an encrypted directory")
}

/// Creates local user `name` (no home) if missing; needs root.
pub fn ensure_user(name: &str) -> u32 {
    let _ = Command::new("useradd")
        .args(["--no-create-home", "--shell", "/usr/sbin/nologin", name])
        .output();
    let out = run_ok(Command::new("id").arg("-u").arg(name));
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Creates group `name` if missing; needs root.
pub fn ensure_group(name: &str) {
    let _ = Command::new("groupadd").arg(name).output();
}

/// Creates local user `name` with a shell (for `as_user` scripts) if missing, and adds it to
/// `groups`; needs root.
pub fn ensure_shell_user(name: &str, groups: &[&str]) {
    let _ = Command::new("useradd")
        .args(["--no-create-home", "--shell", "/bin/sh", name])
        .output();
    if !groups.is_empty() {
        run_ok(
            Command::new("usermod")
                .arg("-a")
                .arg("-G")
                .arg(groups.join(","))
                .arg(name),
        );
    }
}

/// Runs `script` with /bin/sh as `user` (runuser).
pub fn as_user(user: &str, script: &str) -> Output {
    Command::new("runuser")
        .args(["-u", user, "--", "sh", "-c", script])
        .output()
        .unwrap()
}

/// `tutela status --json`'s entry for mountpoint `mnt`.
pub fn status_of(mnt: &Path) -> serde_json::Value {
    status_in(run_ok(tutela().args(["status", "--json"])), mnt)
}

/// `status_of`, as `user` sees it (their daemons report in their own runtime directory).
pub fn status_of_as(mnt: &Path, user: &str) -> serde_json::Value {
    let o = run_ok(
        Command::new("runuser")
            .args(["-u", user, "--"])
            .arg(bin())
            .args(["status", "--json"]),
    );
    status_in(o, mnt)
}

fn status_in(o: Output, mnt: &Path) -> serde_json::Value {
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    j["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountpoint"] == mnt.to_str().unwrap())
        .expect("status lists the mount")
        .clone()
}

/// Asserts that nothing under `dir` (names, contents, link targets) contains any of `needles`.
pub fn assert_no_plaintext(dir: &Path, needles: &[&[u8]]) {
    let mut all = Vec::new();
    walk_all(dir, &mut all);
    for p in all {
        for n in needles {
            let name = p.as_os_str().as_bytes();
            assert!(
                !contains(name, n),
                "plaintext {:?} in backing name {:?}",
                String::from_utf8_lossy(n),
                p
            );
            if let Ok(c) = std::fs::read(&p) {
                assert!(
                    !contains(&c, n),
                    "plaintext {:?} in backing file {:?}",
                    String::from_utf8_lossy(n),
                    p
                );
            }
            if let Ok(t) = std::fs::read_link(&p) {
                assert!(
                    !contains(t.as_os_str().as_bytes(), n),
                    "plaintext in symlink target {:?}",
                    p
                );
            }
        }
    }
}

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A tool the test needs: under CI its absence fails the test, elsewhere it skips.
pub fn need(tool: &str, test: &str) -> bool {
    !skip_unless(
        (!have(tool)).then(|| format!("{tool} is not installed")),
        test,
    )
}

/// Every regular file and symlink under `dir`: relative path -> contents (or link target).
pub fn tree(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    fn go(base: &Path, d: &Path, out: &mut std::collections::BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_path_buf();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                out.insert(rel, b"<dir>".to_vec());
                go(base, &p, out);
            } else if ft.is_symlink() {
                out.insert(
                    rel,
                    std::fs::read_link(&p)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                );
            } else {
                out.insert(
                    rel,
                    std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())),
                );
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    go(dir, dir, &mut out);
    out
}

/// Distinctive plaintext names in a mounted tree (at least 6 bytes, so that they cannot turn
/// up in a log line by chance), for the log check every test does at unmount.
pub fn plaintext_names(mnt: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut stack = vec![mnt.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if out.len() > 5000 {
                return out;
            }
            let n = e.file_name().into_encoded_bytes();
            if n.len() >= 6 && !n.iter().all(|b| b.is_ascii_digit()) {
                out.push(n);
            }
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(e.path());
            }
        }
    }
    out
}

/// Secrets hygiene, checked after every unmount of every test: the daemon's log (at -vv)
/// holds none of the plaintext names the mount showed.
pub fn assert_log_clean(log: &Path, names: &[Vec<u8>]) {
    let Ok(text) = std::fs::read(log) else { return };
    for n in names {
        assert!(
            !contains(&text, n),
            "plaintext name {:?} appears in the daemon log {}",
            String::from_utf8_lossy(n),
            log.display()
        );
    }
}

/// The value of `Key=` in a systemd unit file (the first occurrence).
pub fn unit_value(unit: &str, key: &str) -> String {
    unit.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("unit has no {key}="))
        .to_string()
}

/// `tutela fsck VAULT --passfile P EXTRA...`: (exit code, stdout and stderr).
pub fn fsck(v: &TestVault, extra: &[&str]) -> (i32, String) {
    let out = tutela()
        .arg("fsck")
        .arg(&v.vault)
        .arg("--passfile")
        .arg(&v.passfile)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// The line of /proc/self/mountinfo for mountpoint `mnt` (empty if not mounted).
pub fn mount_line(mnt: &Path) -> String {
    let mnt = mnt.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(mnt.as_str()))
        .unwrap_or_default()
        .to_string()
}

/// A process whose working directory is `dir`: it keeps a mount there busy until killed.
pub fn hold(dir: &Path) -> std::process::Child {
    Command::new("sleep")
        .arg("60")
        .current_dir(dir)
        .spawn()
        .unwrap()
}

/// The recovery key a command printed (the long line after "recovery key:").
pub fn recovery_key_in(text: &str) -> String {
    text.lines()
        .skip_while(|l| !l.to_lowercase().contains("recovery key:"))
        .map(str::trim)
        .find(|l| l.len() > 40)
        .expect("a recovery key was printed")
        .to_string()
}

/// Sets the vault's passphrase again from the recovery key `rk` (proving it opens the vault).
pub fn passwd_with_recovery_key(v: &TestVault, rk: &str) {
    let rkf = v.tmp.path().join("rk");
    std::fs::write(&rkf, format!("{rk}\n")).unwrap();
    run_ok(
        tutela()
            .arg("passwd")
            .arg(&v.vault)
            .arg("--recovery-key")
            .arg(&rkf)
            .arg("--new-passfile")
            .arg(&v.passfile),
    );
}

/// Asserts that the passphrase in `passfile` no longer opens the vault (exit 10).
pub fn assert_passphrase_refused(v: &TestVault, passfile: &Path) {
    let o = tutela()
        .args(["key", "list"])
        .arg(&v.vault)
        .arg("--passfile")
        .arg(passfile)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(tutela::error::exit::WRONG_PASSPHRASE),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The directory of the audit log chain this machine writes for the vault at `vault`
/// (`tutela.audit/r-<id>/`): the one replica directory a vault used on one machine holds.
pub fn audit_chain_dir(vault: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(vault.join("tutela.audit"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && p.file_name().unwrap().to_string_lossy().starts_with("r-"))
        .collect();
    assert_eq!(dirs.len(), 1, "one chain expected: {dirs:?}");
    dirs[0].clone()
}

pub fn ensure_pjdfstest_users() {
    // pjdfstest switches to two users: nobody (group nogroup on Debian) and tests.
    let _ = Command::new("useradd")
        .args(["-U", "-M", "-s", "/usr/sbin/nologin", "tests"])
        .output();
}

/// Runs pjdfstest in `dir`; returns (failed, skipped, passed) and the report.
pub fn pjdfstest(dir: &Path) -> ((u32, u32, u32), String) {
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pjdfstest/pjdfstest.toml");
    let out = Command::new("pjdfstest")
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(dir)
        .current_dir(dir)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find(|l| l.starts_with("Summary:"))
        .unwrap_or_else(|| panic!("no summary from pjdfstest:\n{text}"))
        .to_string();
    let num = |what: &str| -> u32 {
        line.split(',')
            .find(|p| p.contains(what))
            .and_then(|p| p.split_whitespace().find_map(|w| w.parse().ok()))
            .unwrap_or(0)
    };
    ((num("failed"), num("skipped"), num("passed")), text)
}

/// fsx (random read/write/truncate/mmap with data verification) on a file of the mount.
pub fn fsx(v: &TestVault, seed: u32, ops: u32) {
    let conf = v.tmp.path().join("fsx.toml");
    // mmap reads/writes, truncation, preallocation and hole punching.
    std::fs::write(
        &conf,
        "flen = 1048576\n[opsize]\nmax = 131072\n[weights]\nclose_open = 1\nread = 10\nwrite = 10\nmapread = 5\nmapwrite = 5\n\
         truncate = 5\ninvalidate = 1\nfsync = 1\nfdatasync = 1\nposix_fallocate = 1\npunch_hole = 2\nsendfile = 1\n\
         posix_fadvise = 1\ncopy_file_range = 1\n",
    )
    .unwrap();
    let out = Command::new("fsx")
        .arg("-N")
        .arg(ops.to_string())
        .arg("-S")
        .arg(seed.to_string())
        .arg("-f")
        .arg(&conf)
        .arg("-P")
        .arg(v.tmp.path())
        .arg(v.p(&format!("fsx-{seed}")))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fsx seed {seed} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `f` with /dev/fuse open to every user, as a Debian system's udev leaves it (a
/// container may leave it 0600, root only), then puts its mode back, also when `f` panics.
pub fn with_dev_fuse_for_users<T>(f: impl FnOnce() -> T + std::panic::UnwindSafe) -> T {
    let saved = std::fs::metadata("/dev/fuse").unwrap().permissions();
    std::fs::set_permissions(
        "/dev/fuse",
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    let r = std::panic::catch_unwind(f);
    let _ = std::fs::set_permissions("/dev/fuse", saved);
    r.unwrap_or_else(|p| std::panic::resume_unwind(p))
}

pub fn daemon_pid(v: &TestVault) -> u32 {
    status_of(&v.mnt)["pid"]
        .as_u64()
        .expect("daemon pid in status") as u32
}

/// Every readable mapping of `pid`, searched for `needle`; returns the mappings that hold it.
pub fn memory_hits(pid: u32, needle: &[u8]) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut hits = Vec::new();
    for line in maps.lines() {
        let mut parts = line.split_whitespace();
        let (Some(range), Some(perm)) = (parts.next(), parts.next()) else {
            continue;
        };
        if !perm.starts_with('r') || line.contains("[vvar]") || line.contains("[vsyscall]") {
            continue;
        }
        let (a, b) = range.split_once('-').unwrap();
        let (a, b) = (
            u64::from_str_radix(a, 16).unwrap(),
            u64::from_str_radix(b, 16).unwrap(),
        );
        let mut buf = vec![0u8; (b - a) as usize];
        if mem.seek(SeekFrom::Start(a)).is_err() || mem.read_exact(&mut buf).is_err() {
            continue;
        }
        if contains(&buf, needle) {
            hits.push(line.to_string());
        }
    }
    hits
}

/// A command's exit code (-1 when a signal ended it).
pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Everything a command printed, stdout then stderr.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A small xorshift: stress and smoke tests are reproducible from their seeds.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}
