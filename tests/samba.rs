//! The office setup: a real smbd (own config and state directories, loopback, unprivileged
//! port) shares a tutela mount that has a per-client policy; two staff members connect with
//! smbclient. smbd serves each connection under the user's own uid, so the policy and the
//! audit log apply per person. Needs root (users, smbd) and Samba (installed by .ci/run).

mod common;

use common::{need, run_ok, tutela, TestVault};
use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const PORT: u16 = 4450;

struct Smbd(Child);

impl Drop for Smbd {
    fn drop(&mut self) {
        // Stop exactly the smbd this test started (and its children, which follow it).
        // SAFETY: kill on a pid we own.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
        // SAFETY: the group this test created for smbd (its helper processes).
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
    }
}

fn smb_conf(state: &Path, share: &Path) -> String {
    let s = state.display();
    format!(
        "[global]
  workgroup = TUTELATEST
  server role = standalone server
  security = user
  map to guest = never
  passdb backend = tdbsam:{s}/private/passdb.tdb
  smb ports = {PORT}
  interfaces = 127.0.0.1
  bind interfaces only = yes
  lock directory = {s}/lock
  state directory = {s}/state
  cache directory = {s}/cache
  private dir = {s}/private
  pid directory = {s}/pid
  ncalrpc dir = {s}/ncalrpc
  binddns dir = {s}/bind-dns
  log file = {s}/log.%m
  load printers = no
  printing = bsd
  printcap name = /dev/null
  disable spoolss = yes
  server min protocol = SMB2

[clients]
  path = {}
  read only = no
  browseable = yes
",
        share.display()
    )
}

fn smbclient(conf: &Path, user: &str, pass: &str, cmds: &str) -> Output {
    Command::new("smbclient")
        .arg("//127.0.0.1/clients")
        .args(["-p", &PORT.to_string(), "-m", "SMB3", "-s"])
        .arg(conf)
        .arg("-U")
        .arg(format!("{user}%{pass}"))
        .arg("-c")
        .arg(cmds)
        .output()
        .unwrap()
}

#[test]
fn samba_share_applies_policy_and_audit_per_user() {
    let reason = common::fuse_missing()
        .or_else(|| (!common::is_root()).then(|| "needs root for smbd and users".to_string()));
    if common::skip_unless(reason, "samba") || !need("smbd", "samba") || !need("smbclient", "samba")
    {
        return;
    }
    common::ensure_user("tutela_alice");
    common::ensure_user("tutela_bob");
    let mut v = TestVault::new_unmounted();
    run_ok(
        tutela()
            .args(["client", "add"])
            .arg(&v.vault)
            .args(["acme", "--path", "/clients/acme", "--passfile"])
            .arg(&v.passfile),
    );
    let policy = v.tmp.path().join("policy.toml");
    fs::write(
        &policy,
        "admins = [\"root\"]\ndefault = \"allow\"\n\n[clients.acme]\npath = \"/clients/acme\"\nread = [\"tutela_alice\"]\nwrite = [\"tutela_alice\"]\n",
    )
    .unwrap();
    run_ok(
        tutela()
            .args(["policy", "set"])
            .arg(&v.vault)
            .arg(&policy)
            .arg("--passfile")
            .arg(&v.passfile),
    );
    v.mount();
    // Unix modes let both in; the policy is what tells them apart.
    fs::set_permissions(
        v.p("clients/acme"),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    fs::write(
        v.p("clients/acme/engagement.txt"),
        b"acme engagement letter\n",
    )
    .unwrap();
    fs::create_dir(v.p("shared")).unwrap();
    fs::set_permissions(
        v.p("shared"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    fs::set_permissions(
        v.p("clients/acme/engagement.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();

    let state = v.tmp.path().join("samba");
    for d in [
        "lock", "state", "cache", "private", "pid", "ncalrpc", "bind-dns",
    ] {
        fs::create_dir_all(state.join(d)).unwrap();
    }
    let conf = state.join("smb.conf");
    fs::write(&conf, smb_conf(&state, &v.mnt)).unwrap();
    for (user, pass) in [
        ("tutela_alice", "alice-smb-pw"),
        ("tutela_bob", "bob-smb-pw"),
    ] {
        let mut c = Command::new("smbpasswd")
            .arg("-c")
            .arg(&conf)
            .args(["-a", "-s", user])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        c.stdin
            .take()
            .unwrap()
            .write_all(format!("{pass}\n{pass}\n").as_bytes())
            .unwrap();
        assert!(c.wait().unwrap().success(), "smbpasswd {user}");
    }
    let smbd = Smbd(
        Command::new("smbd")
            .args(["--foreground", "--no-process-group", "--debug-stdout", "-s"])
            // Its own process group: smbd signals its whole group when it stops, and that
            // must not reach the test harness.
            .process_group(0)
            .arg(&conf)
            .stdout(fs::File::create(state.join("smbd.out")).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", PORT)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "smbd did not listen: {}",
            fs::read_to_string(state.join("smbd.out")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // alice reads and writes acme's files through the share.
    let local = v.tmp.path().join("from-alice.txt");
    fs::write(&local, b"alice's notes\n").unwrap();
    let got = v.tmp.path().join("got-alice.txt");
    let o = smbclient(
        &conf,
        "tutela_alice",
        "alice-smb-pw",
        &format!(
            "cd clients/acme; put {} notes.txt; get engagement.txt {}",
            local.display(),
            got.display()
        ),
    );
    assert!(
        o.status.success(),
        "alice: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(fs::read(&got).unwrap(), b"acme engagement letter\n");
    assert_eq!(
        fs::read(v.p("clients/acme/notes.txt")).unwrap(),
        b"alice's notes\n"
    );
    // bob is refused: he can neither read nor write there.
    let got_bob = v.tmp.path().join("got-bob.txt");
    let o = smbclient(
        &conf,
        "tutela_bob",
        "bob-smb-pw",
        &format!("get clients/acme/engagement.txt {}", got_bob.display()),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(text.contains("NT_STATUS_"), "bob was not refused: {text}");
    assert!(!got_bob.exists() || fs::read(&got_bob).unwrap().is_empty());
    let o = smbclient(
        &conf,
        "tutela_bob",
        "bob-smb-pw",
        &format!("put {} clients/acme/bob.txt", local.display()),
    );
    assert!(!v.p("clients/acme/bob.txt").exists(), "bob wrote into acme");
    let _ = o;
    // bob can still use the rest of the share.
    let o = smbclient(
        &conf,
        "tutela_bob",
        "bob-smb-pw",
        &format!("put {} shared/bob-outside.txt", local.display()),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    drop(smbd);
    v.unmount();

    // The audit log names each person and each refusal.
    let show = |extra: &[&str]| {
        let o = run_ok(
            tutela()
                .args(["audit", "show"])
                .arg(&v.vault)
                .arg("--passfile")
                .arg(&v.passfile)
                .args(extra),
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let alice_log = show(&["--user", "tutela_alice", "--client", "acme"]);
    assert!(alice_log.contains("notes.txt"), "{alice_log}");
    assert!(
        alice_log.contains("smbd"),
        "the program is recorded: {alice_log}"
    );
    let bob_denied = show(&["--user", "tutela_bob", "--denied"]);
    assert!(bob_denied.contains("/clients/acme"), "{bob_denied}");
    assert!(!show(&["--user", "tutela_alice", "--denied"]).contains("/clients/acme/notes"));
}
