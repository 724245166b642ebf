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

/// The README's smb.conf, as written there, for a share of `share` with the staff group
/// `group`; only what isolates this smbd from the machine's own (port, loopback, state
/// directories) is added to its [global] section.
fn smb_conf(readme: &str, state: &Path, share: &Path, group: &str) -> String {
    let conf = readme
        .split("```\n# /etc/samba/smb.conf\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("README has the smb.conf block");
    let s = state.display();
    let isolation = format!(
        "[global]
  smb ports = {PORT}
  interfaces = 127.0.0.1
  bind interfaces only = yes
  passdb backend = tdbsam:{s}/private/passdb.tdb
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
"
    );
    conf.replacen("[global]\n", &isolation, 1)
        .replace("/srv/clients", &share.display().to_string())
        .replace("@office", &format!("@{group}"))
        .replace("= office", &format!("= {group}"))
}

/// The README's command of the step that opens the shared tree to the group, for `share`.
fn open_tree_command(readme: &str, share: &Path, group: &str) -> String {
    readme
        .lines()
        .find(|l| l.starts_with("chgrp -R office /srv/clients"))
        .expect("docs/samba.md has the chgrp step")
        .replace("/srv/clients", &share.display().to_string())
        .replace(" office ", &format!(" {group} "))
}

fn smbclient(conf: &Path, user: &str, pass: &str, cmds: &str) -> Output {
    smbclient_with(conf, user, pass, cmds, &[])
}

fn smbclient_with(conf: &Path, user: &str, pass: &str, cmds: &str, extra: &[&str]) -> Output {
    Command::new("smbclient")
        .arg("//127.0.0.1/clients")
        .args(["-p", &PORT.to_string(), "-m", "SMB3", "-s"])
        .arg(conf)
        .args(extra)
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
    // README step 1: a staff group, and an account in it per person.
    let _ = Command::new("groupadd").arg("tutela_office").output();
    for u in ["tutela_alice", "tutela_bob"] {
        common::ensure_user(u);
        run_ok(Command::new("usermod").args(["-a", "-G", "tutela_office", u]));
    }
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
    // What an administrator under `umask 077` leaves behind: nothing open to anyone else.
    fs::set_permissions(
        v.p("clients/acme"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    fs::write(
        v.p("clients/acme/engagement.txt"),
        b"acme engagement letter\n",
    )
    .unwrap();
    fs::set_permissions(
        v.p("clients/acme/engagement.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    fs::create_dir(v.p("shared")).unwrap();
    fs::set_permissions(
        v.p("shared"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    fs::set_permissions(&v.mnt, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/samba.md")).unwrap();
    // Step 3 of docs/samba.md, as written there.
    run_ok(
        Command::new("sh")
            .arg("-c")
            .arg(open_tree_command(&readme, &v.mnt, "tutela_office")),
    );

    let state = v.tmp.path().join("samba");
    for d in [
        "lock", "state", "cache", "private", "pid", "ncalrpc", "bind-dns",
    ] {
        fs::create_dir_all(state.join(d)).unwrap();
    }
    let conf = state.join("smb.conf");
    fs::write(&conf, smb_conf(&readme, &state, &v.mnt, "tutela_office")).unwrap();
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
    // New files stay in the staff group and open to it (force group, create mode).
    let meta = fs::metadata(v.p("clients/acme/notes.txt")).unwrap();
    let office = String::from_utf8_lossy(
        &run_ok(Command::new("getent").args(["group", "tutela_office"])).stdout,
    )
    .split(':')
    .nth(2)
    .unwrap()
    .parse::<u32>()
    .unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.gid(), office);
    assert_eq!(meta.mode() & 0o777, 0o660);
    // Encryption on the wire is required: an encrypting client gets in, one that refuses to
    // encrypt is turned away.
    let o = smbclient_with(
        &conf,
        "tutela_alice",
        "alice-smb-pw",
        "ls",
        &["--client-protection=encrypt"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    // A client that cannot encrypt (SMB 2.1 at most, as Windows 7 without updates) is turned
    // away: the share never serves plaintext on the wire.
    let o = smbclient_with(
        &conf,
        "tutela_alice",
        "alice-smb-pw",
        "ls",
        &["--option=client max protocol=SMB2_10"],
    );
    let text =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && text.contains("NT_STATUS_"), "{text}");
    // macOS and Windows litter is vetoed: never stored in the vault.
    let litter = v.tmp.path().join("litter");
    fs::write(&litter, b"x").unwrap();
    let _ = smbclient(
        &conf,
        "tutela_alice",
        "alice-smb-pw",
        &format!(
            "cd clients/acme; put {l} .DS_Store; put {l} ._notes.txt; put {l} Thumbs.db; put {l} desktop.ini",
            l = litter.display()
        ),
    );
    for name in [".DS_Store", "._notes.txt", "Thumbs.db", "desktop.ini"] {
        assert!(
            !v.p(&format!("clients/acme/{name}")).exists(),
            "{name} stored"
        );
    }
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

    // Client work while the share stays online: a folder alice filled becomes a client
    // (its files re-encrypted in place), acme's key is rotated and acme exported, and a
    // client is shredded while alice's Samba session is in the middle of using it.
    let o = smbclient(
        &conf,
        "tutela_alice",
        "alice-smb-pw",
        &format!(
            "mkdir shared/globex; cd shared/globex; put {l} a.txt; put {l} b.txt",
            l = local.display()
        ),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let live = |args: &[&str]| {
        run_ok(
            tutela()
                .arg(args[0])
                .arg(args[1])
                .arg(&v.vault)
                .args(&args[2..])
                .arg("--passfile")
                .arg(&v.passfile),
        )
    };
    live(&["client", "add", "globex", "--path", "/shared/globex"]);
    run_ok(
        tutela()
            .arg("rekey")
            .arg(&v.vault)
            .args(["--client", "acme", "--passfile"])
            .arg(&v.passfile),
    );
    let tarball = v.tmp.path().join("acme.tar");
    live(&[
        "client",
        "export",
        "acme",
        "--output",
        tarball.to_str().unwrap(),
    ]);
    let listing = run_ok(Command::new("tar").arg("tf").arg(&tarball));
    assert!(String::from_utf8_lossy(&listing.stdout).contains("acme/notes.txt"));
    let got2 = v.tmp.path().join("got2.txt");
    let o = smbclient(
        &conf,
        "tutela_alice",
        "alice-smb-pw",
        &format!("get clients/acme/notes.txt {}", got2.display()),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(fs::read(&got2).unwrap(), b"alice's notes\n");
    let (first, second) = (v.tmp.path().join("first"), v.tmp.path().join("second"));
    // smbd serves on while the client is shredded; alice then finds nothing of it. (An open
    // handle revoked mid-session is tested with a local user in tests/live.rs: smbclient
    // reads all its commands before it runs them, so it cannot hold a file across.)
    let o = smbclient(
        &conf,
        "tutela_alice",
        "alice-smb-pw",
        &format!("get shared/globex/a.txt {}", first.display()),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let o = live(&["client", "shred", "globex", "--yes"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("shredded"));
    let o = smbclient(
        &conf,
        "tutela_alice",
        "alice-smb-pw",
        &format!("get shared/globex/b.txt {}", second.display()),
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(fs::read(&first).unwrap(), b"alice's notes\n", "{said}");
    assert!(
        !second.exists() || fs::read(&second).unwrap().is_empty(),
        "read after the shred: {said}"
    );
    assert!(said.contains("NT_STATUS_"), "{said}");
    assert!(!v.p("shared/globex").exists());
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
