//! Two machines, one vault, a real sync tool: two Syncthing instances on loopback sync two
//! copies of a vault, each copy mounted by its own tutela. The same file is edited on both
//! and the same folder made and renamed on both while they do not sync, with both copies
//! mounted at once; each adds a key slot; after they sync again, both mounts show every version
//! and every file, both slots open the vault, and the merged audit log (one chain per copy)
//! verifies on both.

mod common;

use common::{run_ok, tutela, TestVault};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Instance {
    home: PathBuf,
    id: String,
    port: u16,
    child: Option<Child>,
}

impl Instance {
    fn new(home: PathBuf) -> Instance {
        run_ok(
            Command::new("syncthing")
                .args(["generate", "--no-default-folder"])
                .arg(format!("--home={}", home.display())),
        );
        let out = run_ok(
            Command::new("syncthing")
                .args(["serve", "--device-id"])
                .arg(format!("--home={}", home.display())),
        );
        Instance {
            home,
            id: String::from_utf8_lossy(&out.stdout).trim().to_string(),
            port: free_port(),
            child: None,
        }
    }

    /// Writes a config that syncs `folder` with `peer` only, on loopback, with nothing
    /// reaching the network (no discovery, relays, NAT, usage reports or upgrades).
    fn configure(&self, folder: &Path, peer: &Instance) {
        let device = |i: &Instance| {
            format!(
                "<device id=\"{}\" name=\"{}\" compression=\"metadata\"><address>tcp://127.0.0.1:{}</address></device>",
                i.id, i.id, i.port
            )
        };
        let conf = format!(
            r#"<configuration version="36">
  <folder id="vault" label="vault" path="{folder}" type="sendreceive" rescanIntervalS="1" fsWatcherEnabled="false" ignorePerms="false" autoNormalize="true">
    <filesystemType>basic</filesystemType>
    <device id="{me}"></device>
    <device id="{peer}"></device>
    <minDiskFree unit="%">0</minDiskFree>
    <maxConflicts>10</maxConflicts>
  </folder>
  {dme}
  {dpeer}
  <gui enabled="false" tls="false"><address>127.0.0.1:{gui}</address></gui>
  <options>
    <listenAddress>tcp://127.0.0.1:{port}</listenAddress>
    <globalAnnounceEnabled>false</globalAnnounceEnabled>
    <localAnnounceEnabled>false</localAnnounceEnabled>
    <relaysEnabled>false</relaysEnabled>
    <natEnabled>false</natEnabled>
    <urAccepted>-1</urAccepted>
    <startBrowser>false</startBrowser>
    <crashReportingEnabled>false</crashReportingEnabled>
    <autoUpgradeIntervalH>0</autoUpgradeIntervalH>
    <minHomeDiskFree unit="%">0</minHomeDiskFree>
    <setLowPriority>false</setLowPriority>
  </options>
</configuration>
"#,
            folder = folder.display(),
            me = self.id,
            peer = peer.id,
            dme = device(self),
            dpeer = device(peer),
            gui = free_port(),
            port = self.port,
        );
        fs::write(self.home.join("config.xml"), conf).unwrap();
        fs::create_dir_all(folder.join(".stfolder")).unwrap();
    }

    fn start(&mut self) {
        let log = fs::File::create(self.home.join("log.txt")).unwrap();
        self.child = Some(
            Command::new("syncthing")
                .args(["serve", "--no-browser", "--no-restart", "--no-upgrade"])
                .arg(format!("--home={}", self.home.display()))
                .env("STNODEFAULTFOLDER", "1")
                .env("STNOUPGRADE", "1")
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                // Its own process group: syncthing runs a monitor and a worker process, and
                // stopping it must stop both.
                .process_group(0)
                .spawn()
                .expect("syncthing"),
        );
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", c.id())])
                .status();
            let _ = c.wait();
            // The worker may outlive the monitor by a moment.
            let home = self.home.display().to_string();
            common::wait_until(
                || {
                    !Command::new("pgrep")
                        .args(["-f", &home])
                        .stdout(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success())
                },
                "syncthing to stop",
            );
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Every regular file under `dir` (Syncthing's own and temporary files left out), with its
/// content.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".st") || name.starts_with(".syncthing.") || name == "lock" {
                continue;
            }
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else if let Ok(b) = fs::read(&p) {
                out.insert(p.strip_prefix(base).unwrap().to_path_buf(), b);
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

/// Waits until both copies hold the same files (and `also` holds), for up to two minutes.
fn synced(a: &Path, b: &Path, also: impl Fn(&BTreeMap<PathBuf, Vec<u8>>) -> bool) {
    let start = Instant::now();
    let mut same_since = None;
    while start.elapsed() < Duration::from_secs(120) {
        let (fa, fb) = (files(a), files(b));
        if fa == fb && also(&fa) {
            // Stable for two seconds: nothing more in flight.
            let since = *same_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(2) {
                return;
            }
        } else {
            same_since = None;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let (fa, fb) = (files(a), files(b));
    panic!(
        "the copies did not converge:\nonly in a: {:?}\nonly in b: {:?}",
        fa.keys()
            .filter(|k| !fb.contains_key(*k))
            .collect::<Vec<_>>(),
        fb.keys()
            .filter(|k| !fa.contains_key(*k))
            .collect::<Vec<_>>()
    );
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn two_machines_edit_the_same_file_and_make_the_same_folder() {
    let Some(mut a) = TestVault::new("syncthing") else {
        return;
    };
    if !common::need("syncthing", "syncthing") {
        return;
    }
    // The laptop's copy starts empty; Syncthing brings the vault over.
    let mut b = TestVault::new_unmounted();
    fs::remove_dir_all(&b.vault).unwrap();
    fs::create_dir(&b.vault).unwrap();
    let mut sa = Instance::new(a.tmp.path().join("st"));
    let mut sb = Instance::new(b.tmp.path().join("st"));
    sa.configure(&a.vault, &sb);
    sb.configure(&b.vault, &sa);

    a.mount();
    fs::write(a.p("report.docx"), b"first draft").unwrap();
    fs::create_dir(a.p("old")).unwrap();
    fs::write(a.p("old/memo.txt"), b"the memo").unwrap();
    a.unmount();
    sa.start();
    sb.start();
    synced(&a.vault, &b.vault, |f| {
        f.keys().any(|k| k.ends_with("tutela.conf"))
    });
    sa.stop();
    sb.stop();

    // Apart, both copies mounted at once: both edit the report, both make a folder "letters"
    // with a file in it, and both rename the folder "old", each to its own name.
    a.mount();
    b.mount();
    fs::write(a.p("report.docx"), b"office's version").unwrap();
    fs::create_dir(a.p("letters")).unwrap();
    fs::write(a.p("letters/to-acme.txt"), b"from the office").unwrap();
    fs::rename(a.p("old"), a.p("old-office")).unwrap();
    // Later, so that the office's edit is the older one and becomes the conflict copy.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(fs::read(b.p("report.docx")).unwrap(), b"first draft");
    fs::write(b.p("report.docx"), b"laptop's version").unwrap();
    fs::create_dir(b.p("letters")).unwrap();
    fs::write(b.p("letters/to-bluebird.txt"), b"from the laptop").unwrap();
    fs::rename(b.p("old"), b.p("old-laptop")).unwrap();

    // They sync while both are still mounted: each mount's audit chain travels to the other
    // copy beside the chain that copy's own mount is writing.
    sa.start();
    sb.start();
    synced(&a.vault, &b.vault, |f| {
        f.keys().any(|k| {
            k.to_string_lossy().contains(".sync-conflict-") && !k.starts_with("tutela.audit")
        }) && f
            .keys()
            .filter(|k| k.starts_with("tutela.audit") && k.to_string_lossy().ends_with(".seg"))
            .filter_map(|k| k.parent())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            == 2
    });
    sa.stop();
    sb.stop();
    a.unmount();
    b.unmount();

    // Apart again: each adds a key slot (the config changes on both sides).
    for (v, label) in [(&a, "office-2"), (&b, "laptop-2")] {
        let pass = v.tmp.path().join(format!("{label}.pass"));
        fs::write(&pass, format!("{label} horse battery staple\n")).unwrap();
        run_ok(
            tutela()
                .args(["key", "add"])
                .arg(&v.vault)
                .args(["--label", label])
                .arg("--passfile")
                .arg(&v.passfile)
                .arg("--new-passfile")
                .arg(&pass),
        );
    }
    sa.start();
    sb.start();
    synced(&a.vault, &b.vault, |f| {
        f.keys()
            .any(|k| k.to_string_lossy().contains("tutela.sync-conflict-"))
    });
    sa.stop();
    sb.stop();

    // Both mounts show both versions of the report and both letters; nothing is lost.
    for v in [&mut a, &mut b] {
        // Opening the vault merges the config copies: both slots, on both machines.
        let keys = run_ok(
            tutela()
                .args(["key", "list"])
                .arg(&v.vault)
                .arg("--passfile")
                .arg(&v.passfile),
        );
        let keys = String::from_utf8_lossy(&keys.stdout).into_owned();
        assert!(
            keys.contains("office-2") && keys.contains("laptop-2"),
            "{keys}"
        );
        for label in ["office-2", "laptop-2"] {
            let pass = v.tmp.path().join(format!("{label}.pass"));
            fs::write(&pass, format!("{label} horse battery staple\n")).unwrap();
            run_ok(
                tutela()
                    .args(["key", "list"])
                    .arg(&v.vault)
                    .arg("--passfile")
                    .arg(&pass),
            );
        }
        v.mount();
        let top = listing(&v.mnt);
        let copies: Vec<&String> = top
            .iter()
            .filter(|n| n.starts_with("report (conflict ") && n.ends_with(").docx"))
            .collect();
        assert_eq!(copies.len(), 1, "{top:?}");
        let mut versions = vec![
            fs::read(v.p("report.docx")).unwrap(),
            fs::read(v.p(copies[0])).unwrap(),
        ];
        versions.sort();
        assert_eq!(
            versions,
            [b"laptop's version".to_vec(), b"office's version".to_vec()],
            "{top:?}"
        );
        assert_eq!(
            listing(&v.p("letters")),
            ["to-acme.txt", "to-bluebird.txt"],
            "a folder made on both machines"
        );
        assert_eq!(
            fs::read(v.p("letters/to-acme.txt")).unwrap(),
            b"from the office"
        );
        assert_eq!(
            fs::read(v.p("letters/to-bluebird.txt")).unwrap(),
            b"from the laptop"
        );
        // The folder renamed on both sides: the memo is still there, under a name one side
        // gave it (a sync tool carries each rename; nothing of the folder is lost).
        let memos: Vec<&String> = top
            .iter()
            .filter(|n| n.starts_with("old"))
            .filter(|n| fs::read(v.p(&format!("{n}/memo.txt"))).is_ok_and(|m| m == b"the memo"))
            .collect();
        assert!(!memos.is_empty(), "the memo is lost: {top:?}");
        v.unmount();
        // Not reported as damage: the audit log verifies (both chains), and fsck is clean.
        let out = run_ok(
            tutela()
                .args(["audit", "verify"])
                .arg(&v.vault)
                .arg("--passfile")
                .arg(&v.passfile),
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(text.contains("audit log ok"), "{text}");
        assert_eq!(
            text.matches("head: r-").count(),
            2,
            "one chain per copy: {text}"
        );
        assert!(!text.contains("copy of a segment"), "{text}");
        // Both machines' records are in the merged log.
        let out = run_ok(
            tutela()
                .args(["audit", "show"])
                .arg(&v.vault)
                .arg("--passfile")
                .arg(&v.passfile),
        );
        let shown = String::from_utf8_lossy(&out.stdout).into_owned();
        for f in ["to-acme.txt", "to-bluebird.txt"] {
            assert!(
                shown.contains(f),
                "{f} missing from the merged log:\n{shown}"
            );
        }
        let (code, text) = common::fsck(v, &[]);
        assert_eq!(code, 0, "{text}");
        assert!(text.contains("conflict copy of /report.docx"), "{text}");
    }
}
