//! Mounting: checks on the mountpoint, the fuser session (multithreaded, one cloned fd per
//! thread), going to the background only once the mount is live, signals, the idle timer, and
//! unmounting (with the processes holding a busy mount named).

use crate::daemon::adapter::Adapter;
use crate::error::{Error, Result};
use crate::fs::{Fs, Options};
use crate::policy::store;
use crate::policy::Policy;
use crate::sys;
use crate::vault::Vault;
use fuser::{Config, MountOption, SessionACL};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const FS_TYPE: &str = "fuse.tutela";

#[derive(Debug, Clone)]
pub struct MountArgs {
    pub mountpoint: PathBuf,
    pub foreground: bool,
    pub read_only: bool,
    pub allow_other: bool,
    pub idle: Option<Duration>,
    /// Lock each client after its own idle time (`--client-idle`).
    pub client_idle: Option<Duration>,
    pub threads: usize,
    pub log_file: Option<PathBuf>,
    /// Kernel mount flags from `-o` (or an fstab line), in the order given.
    pub flags: Vec<MountFlag>,
    /// Every audit record also to the system log (`--audit-syslog`); `Some(true)`: with
    /// plaintext paths (`--audit-syslog paths`).
    pub audit_syslog: Option<bool>,
    /// The audit chain's head anchor to the system log this often (and at each segment seal
    /// and on unmount); None: never (`--anchor-every off`).
    pub anchor_every: Option<Duration>,
}

/// journald's native protocol socket.
const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// The default of `--anchor-every`.
pub const ANCHOR_EVERY: Duration = Duration::from_secs(15 * 60);

/// `--anchor-every`: a duration, or `off`.
pub fn parse_anchor_every(s: &str) -> std::result::Result<Option<Duration>, String> {
    if s == "off" || s == "0" {
        return Ok(None);
    }
    let d = parse_duration(s)?;
    if d < Duration::from_secs(1) {
        return Err("anchors can be sent at most every second (or use off)".into());
    }
    Ok(Some(d))
}

/// The audit forwarder a full mount's daemon starts with (`audit::forward`).
/// What a mount sends to the system log (`--audit-syslog`, anchors). `mac`: the audit MAC
/// key path hashes derive from; a client-scoped mount has none (its records carry no path
/// unless `--audit-syslog paths`).
fn forwarder(
    args: &MountArgs,
    vault_id: &crate::crypto::Id,
    mac: Option<&crate::crypto::secret::Key32>,
) -> Option<crate::audit::forward::Forward> {
    if args.audit_syslog.is_none() && args.anchor_every.is_none() {
        return None;
    }
    // journald's native socket where it runs (fields a SIEM connector can select on), else
    // the syslog socket (rsyslog, or journald's own /dev/log).
    #[cfg(feature = "test-hooks")]
    let over = (
        std::env::var_os(crate::daemon::logging::SYSLOG_SOCKET_ENV),
        std::env::var_os("TUTELA_JOURNAL_SOCKET"),
    );
    #[cfg(not(feature = "test-hooks"))]
    let over: (Option<std::ffi::OsString>, Option<std::ffi::OsString>) = (None, None);
    let (path, journal) = match over {
        (_, Some(j)) => (PathBuf::from(j), true),
        (Some(s), None) => (PathBuf::from(s), false),
        (None, None) if Path::new(JOURNAL_SOCKET).exists() => (PathBuf::from(JOURNAL_SOCKET), true),
        (None, None) => (PathBuf::from("/dev/log"), false),
    };
    Some(crate::audit::forward::Forward::new(
        path,
        journal,
        vault_id,
        mac,
        crate::audit::forward::Mode {
            records: args.audit_syslog.is_some(),
            paths: args.audit_syslog == Some(true),
            anchor_every: args.anchor_every,
        },
    ))
}

/// A kernel mount flag that `tutela mount -o` applies. Every option of mount(8)'s
/// filesystem-independent list is applied or refused by name, never ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountFlag {
    NoExec,
    Exec,
    Sync,
    Async,
    DirSync,
    NoAtime,
    /// `atime` and `relatime`: the kernel's default for a new mount.
    RelAtime,
    /// `strictatime`: every read sets the access time.
    StrictAtime,
    /// `nosuid` and `nodev`: always on for a tutela mount.
    Always,
}

/// Parses one `-o` option of `tutela mount`.
pub fn parse_mount_flag(s: &str) -> std::result::Result<MountFlag, String> {
    Ok(match s {
        "noexec" => MountFlag::NoExec,
        "exec" => MountFlag::Exec,
        "sync" => MountFlag::Sync,
        "async" => MountFlag::Async,
        "dirsync" => MountFlag::DirSync,
        "noatime" => MountFlag::NoAtime,
        "atime" | "relatime" => MountFlag::RelAtime,
        "strictatime" => MountFlag::StrictAtime,
        // Directory access times are not kept apart from files' on a tutela mount (the
        // backing filesystem's own rule applies to directories): accepted, nothing to do.
        "nodiratime" | "diratime" => MountFlag::Always,
        "nosuid" | "nodev" => MountFlag::Always,
        "suid" | "dev" => {
            return Err(format!(
                "'{s}' is refused: a tutela mount is always nosuid,nodev (a set-user-ID program \
                 or a device node in a vault that others write into would act with rights \
                 they do not have)"
            ))
        }
        "lazytime" => {
            return Err(format!(
                "'{s}' is not supported on a tutela mount (the kernel leaves access times of a \
                 FUSE mount to the daemon: use noatime, relatime or strictatime)"
            ))
        }
        other => {
            return Err(format!(
                "unknown mount option '{}' (known: noexec, exec, nosuid, nodev, sync, async, \
                 dirsync, noatime, relatime, atime, strictatime, nodiratime)",
                crate::text::escape(other)
            ))
        }
    })
}

/// The last of noatime / relatime / strictatime given wins, as with mount(8).
fn last_atime_flag(flags: &[MountFlag]) -> Option<MountFlag> {
    flags
        .iter()
        .rev()
        .find(|f| {
            matches!(
                f,
                MountFlag::NoAtime | MountFlag::RelAtime | MountFlag::StrictAtime
            )
        })
        .copied()
}

/// A line of /proc/self/mountinfo that we care about.
#[derive(Debug, Clone)]
pub struct MountEntry {
    /// The mount's device number as "major:minor" (also its backing-device name in sysfs).
    pub dev: String,
    pub mountpoint: PathBuf,
    pub fstype: String,
    pub source: String,
    pub options: String,
}

fn unescape(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo (three octal digits).
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = std::str::from_utf8(&b[i + 1..i + 4])
                .ok()
                .and_then(|t| u8::from_str_radix(t, 8).ok());
            if let Some(v) = oct {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl MountEntry {
    /// Mounts show as type fuse.tutela; direct mounts by root of earlier versions showed as
    /// "fuse" (the subtype went only through fusermount3), so the source prefix counts too.
    pub fn is_tutela(&self) -> bool {
        self.fstype == FS_TYPE
            || (self.fstype.starts_with("fuse") && self.source.starts_with("tutela:"))
    }
}

pub fn mounts() -> Vec<MountEntry> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            Some(MountEntry {
                dev: pre.get(2)?.to_string(),
                mountpoint: PathBuf::from(unescape(pre.get(4)?)),
                options: pre.get(5)?.to_string(),
                fstype: post.first()?.to_string(),
                source: unescape(post.get(1)?),
            })
        })
        .collect()
}

pub fn is_mountpoint(p: &Path) -> bool {
    mounts().iter().any(|m| m.mountpoint == p)
}

fn check_mountpoint(mp: &Path) -> Result<PathBuf> {
    let canon = std::fs::canonicalize(mp).map_err(|_| {
        Error::Mountpoint(format!(
            "mountpoint {} does not exist: create an empty directory first",
            mp.display()
        ))
    })?;
    if !canon.is_dir() {
        return Err(Error::Mountpoint(format!(
            "mountpoint {} is not a directory",
            mp.display()
        )));
    }
    if is_mountpoint(&canon) {
        return Err(Error::Mountpoint(format!(
            "mountpoint {} is already mounted: unmount it first or choose another",
            mp.display()
        )));
    }
    let non_empty = std::fs::read_dir(&canon)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if non_empty {
        return Err(Error::Mountpoint(format!(
            "mountpoint {} is not empty: use an empty directory",
            mp.display()
        )));
    }
    Ok(canon)
}

fn session_config(vault_dir: &Path, args: &MountArgs) -> Config {
    let mut c = Config::default();
    c.mount_options = vec![
        MountOption::FSName(format!("tutela:{}", vault_dir.display())),
        MountOption::Subtype("tutela".into()),
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    // Shared mounts (and every mount with an access policy) let the kernel check modes for
    // each caller. A private mount serves only its owner, whose rights on the backing files
    // are the same as on the plaintext ones, so the backing filesystem checks them (as with
    // gocryptfs) and the kernel need not re-read a directory's attributes before every
    // create, lookup or unlink in it.
    if args.allow_other {
        c.mount_options.push(MountOption::DefaultPermissions);
    }
    if args.read_only {
        c.mount_options.push(MountOption::RO);
    }
    for f in &args.flags {
        c.mount_options.extend(match f {
            MountFlag::NoExec => Some(MountOption::NoExec),
            MountFlag::Exec => Some(MountOption::Exec),
            MountFlag::Sync => Some(MountOption::Sync),
            MountFlag::Async => Some(MountOption::Async),
            MountFlag::DirSync => Some(MountOption::DirSync),
            MountFlag::NoAtime => Some(MountOption::NoAtime),
            // Access times of a FUSE mount are the daemon's (Options::strictatime).
            MountFlag::StrictAtime | MountFlag::RelAtime | MountFlag::Always => None,
        });
    }
    // A direct mount by root passes the subtype in the mount data (fusermount3 does that for
    // a user's mount), so the kernel shows the type as fuse.tutela (`findmnt -t fuse.tutela`).
    if sys::geteuid() == 0 {
        c.mount_options
            .push(MountOption::CUSTOM("subtype=tutela".into()));
    }
    if args.allow_other {
        c.acl = SessionACL::All;
    }
    c.n_threads = Some(args.threads.max(1));
    c.clone_fd = true;
    c
}

fn explain_mount_error(e: std::io::Error, args: &MountArgs) -> Error {
    let msg = e.to_string();
    if args.allow_other && (msg.contains("allow_other") || msg.contains("user_allow_other")) {
        return Error::MountFailed(
            "sharing the mount with other users (--allow-other, always on for a vault with an \
             access policy) is not permitted: add 'user_allow_other' to /etc/fuse.conf or mount as root"
                .into(),
        );
    }
    if e.kind() == std::io::ErrorKind::NotFound || msg.contains("fusermount") {
        return Error::MountFailed(format!(
            "{msg}: is fuse3 installed (fusermount3) and /dev/fuse present?"
        ));
    }
    Error::MountFailed(msg)
}

/// Kernel readahead for the mount, in KiB: a sequential reader then keeps several 1 MiB reads
/// in flight, which the daemon's threads decrypt in parallel (+20% on a cold 1 GiB read here).
const READAHEAD_KB: u32 = 4096;

/// FUSE mounts get 128 KiB of readahead, and INIT can only lower it; root can raise it
/// through sysfs. Done from a thread once INIT is answered (the kernel would otherwise apply
/// INIT's limit on top); without the rights it stays at the default, which is only slower.
fn raise_readahead(mp: PathBuf) {
    let spawned = std::thread::Builder::new()
        .name("readahead".into())
        .spawn(move || {
            // Served only after INIT: until then the kernel holds the request back.
            if let Err(e) = std::fs::metadata(&mp) {
                log::debug!("readahead: mount not answering: {e}");
                return;
            }
            let Some(dev) = mounts()
                .into_iter()
                .rev()
                .find(|m| m.mountpoint == mp && m.is_tutela())
                .map(|m| m.dev)
            else {
                return;
            };
            let knob = format!("/sys/class/bdi/{dev}/read_ahead_kb");
            match std::fs::write(&knob, READAHEAD_KB.to_string()) {
                Ok(()) => log::debug!("readahead raised to {READAHEAD_KB} KiB"),
                Err(e) => log::debug!("readahead stays at the kernel default ({knob}: {e})"),
            }
        });
    if let Err(e) = spawned {
        log::debug!("readahead: no thread: {e}");
    }
}

fn now_secs(start: Instant) -> u64 {
    start.elapsed().as_secs()
}

/// Unlocks nothing itself: takes an unlocked vault, mounts it and serves until unmounted.
/// In background mode the calling process returns as soon as the mount is live.
pub fn mount(vault: Vault, args: MountArgs) -> Result<()> {
    let mp = check_mountpoint(&args.mountpoint)?;
    refuse_if_mounted(&vault.dir)?;
    let opts = Options {
        read_only: args.read_only,
        chown_new: sys::geteuid() == 0,
        // The last of noatime / relatime / atime given wins, as with mount(8).
        noatime: last_atime_flag(&args.flags) == Some(MountFlag::NoAtime),
        strictatime: last_atime_flag(&args.flags) == Some(MountFlag::StrictAtime),
    };
    let fs = Fs::new(&vault, opts)?;
    let policy = load_policy(&vault)?;
    let mut args = args;
    if policy.is_some() && !args.allow_other {
        // A policy exists to share one mount between several people.
        args.allow_other = true;
    }
    if args.allow_other {
        close_vault_to_others(&fs, &vault.dir);
    }
    let config = session_config(&vault.dir, &args);
    let clients = vault.zones.len().saturating_sub(1);
    let keep = Keep {
        clients,
        dir: vault.dir.clone(),
        vault_id: vault.config.vault_id,
        keys: Arc::new(std::sync::RwLock::new(crate::daemon::live::LiveKeys::of(
            &vault,
        ))),
        policy,
    };
    if !args.read_only {
        // An in-place re-encryption a crash interrupted is written over again before anything
        // reads the file (a handful of files at most).
        fs.recover_rekey_staging()?;
    }

    let Some(ready_pipe) = detach(&args)? else {
        return Ok(());
    };
    serve(fs, keep, vault, config, &mp, args, ready_pipe)
}

/// Goes to the background unless `--foreground`: `None` in the parent once the mount is
/// live (its failure is the parent's error); in the daemon, the pipe to say "ok" on.
#[allow(clippy::option_option)]
fn detach(args: &MountArgs) -> Result<Option<Option<std::fs::File>>> {
    if args.foreground {
        return Ok(Some(None));
    }
    let (mut r, w) = sys::pipe()?;
    match sys::fork()? {
        sys::Forked::Parent { .. } => {
            drop(w);
            let mut msg = String::new();
            let _ = r.read_to_string(&mut msg);
            if msg.starts_with("ok") {
                return Ok(None);
            }
            let text = msg.split_once(' ').map(|(_, t)| {
                let t = t.trim_end();
                t.strip_prefix("mount failed: ").unwrap_or(t).to_string()
            });
            Err(Error::MountFailed(text.unwrap_or_else(|| {
                "the mount daemon exited before the mount was live".into()
            })))
        }
        sys::Forked::Child => {
            drop(r);
            sys::detach_stdio();
            if args.log_file.is_none() {
                crate::daemon::logging::to_syslog();
            }
            Ok(Some(Some(w)))
        }
    }
}

/// Mounts one client's folder alone (`mount --client`), holding that client's keys and no
/// other: its zone key, the policy key and the vault's audit public key. The folder is found
/// by its directory id; the policy applies as on a full mount (same plaintext paths); every
/// access is recorded in a sealed chain of the audit log (FORMAT.md, "Sealed audit segments").
pub fn mount_scoped(
    dir: &Path,
    config: &crate::format::config::Config,
    keys: crate::vault::client_slots::ClientKeys,
    args: MountArgs,
) -> Result<()> {
    let mp = check_mountpoint(&args.mountpoint)?;
    refuse_if_mounted(dir)?;
    let top = crate::fs::scoped::find_dir_by_id(dir, &keys.top_dir_id).map_err(|e| match e {
        Error::NotFound => Error::MountFailed(format!(
            "client '{}': its folder is not in this vault (shredded, or this key belongs to \
             another vault)",
            keys.name
        )),
        e => e,
    })?;
    let opts = Options {
        read_only: args.read_only,
        chown_new: sys::geteuid() == 0,
        noatime: last_atime_flag(&args.flags) == Some(MountFlag::NoAtime),
        strictatime: last_atime_flag(&args.flags) == Some(MountFlag::StrictAtime),
    };
    let fs = Fs::new_scoped(
        &top,
        keys.top_dir_id,
        (keys.zone_id, &keys.zone_key, &keys.path),
        opts,
    )?;
    // The policy, as the config (which a client key cannot authenticate) says it should be:
    // a missing or foreign one refuses the mount, as on a full mount.
    let policy = load_scoped_policy(dir, &keys.policy_key)?;
    // A closed matter is read-only here too: the list comes from `tutela.closed`, the one
    // place a client key can read it (the zone table is sealed beyond it).
    let mut closed = ScopedClosed::new(dir, config.vault_id, &keys);
    closed.apply(&fs);
    let session = session_config(dir, &args);
    let Some(mut ready) = detach(&args)? else {
        return Ok(());
    };
    harden_daemon();
    let fwd = forwarder(&args, &config.vault_id, None);
    let sink = open_sink(
        crate::audit::Sink::start_scoped(
            dir,
            config.vault_id,
            &keys.zone_id,
            keys.audit_public,
            fwd,
        ),
        &args,
        &mut ready,
    )?;
    let name = keys.name.clone();
    // (No label: the vault's passphrase or recovery key, from which only this client's keys
    // were kept.)
    let key_label = if keys.label.is_empty() {
        "a vault passphrase, keeping this client's keys only".to_string()
    } else {
        format!("key '{}'", keys.label)
    };
    let policy_key = keys.policy_key.duplicate();
    // Nothing else of the client key (but the zone key, inside the filesystem) is kept.
    drop(keys);
    let running = open_session(fs, policy, sink, &session, &mp, &args, &mut ready)?;
    {
        let dir = dir.to_path_buf();
        follow_policy(
            running.fs.clone(),
            &dir.clone(),
            move || load_scoped_policy(&dir, &policy_key),
            move |fs| closed.follow(fs),
            running.session.notifier(),
        )?;
    }
    let mut info = daemon_info(&running.fs, dir, &mp, &args, 1);
    info.client = Some(name.clone());
    record_mount(&running.fs, &args, Some(&name), &key_label);
    crate::daemon::status::publish(&info);
    if let Some(mut w) = ready.take() {
        let _ = writeln!(w, "ok");
    }
    run_until_unmounted(running, &mp, &args)
}

/// On a shared mount, other local users must reach client files only through the mount,
/// where modes and the policy are enforced. A vault directory they may enter would let them
/// read the ciphertext's sizes and times, and delete, replace or roll back encrypted files
/// of clients the policy keeps them from (backing files carry the plaintext's modes). So the
/// vault directory is closed to group and others (the mount root keeps showing its mode); a
/// failure (a read-only mount; a filesystem without xattrs, or whose modes are fixed at
/// mount time) is reported, not fatal.
fn close_vault_to_others(fs: &Fs, dir: &Path) {
    match fs.close_backing_root() {
        Ok(None) => {}
        Ok(Some(mode)) => {
            let text = format!(
                "closed {} to other users (mode {mode:04o} -> {:04o}); the mount root still \
                 shows {mode:04o}",
                dir.display(),
                mode & 0o700
            );
            // Said to a person at a terminal; a script (mount(8) from fstab, a test harness
            // comparing output) finds it in the log.
            if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                eprintln!("tutela: {text}");
            } else {
                log::info!("{text}");
            }
        }
        Err(e) => eprintln!(
            "tutela: warning: {} is open to other users and could not be closed ({e}): they \
             can delete or roll back encrypted files without going through the mount; chmod \
             go-rwx it",
            dir.display()
        ),
    }
}

/// What the daemon keeps from the unlocked vault (the master key itself is dropped).
struct Keep {
    clients: usize,
    dir: PathBuf,
    vault_id: crate::crypto::Id,
    /// The policy, config-MAC, audit and control keys (a live `rekey --all` replaces them).
    keys: crate::daemon::live::SharedKeys,
    policy: Option<Policy>,
}

impl Keep {
    /// The audit keys in force now.
    fn audit_keys(&self) -> crate::audit::Keys {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .audit
            .duplicate()
    }
}

fn resolver(name: &str, group: bool) -> Option<u32> {
    if group {
        sys::group_by_name(name)
    } else {
        sys::user_by_name(name)
    }
}

/// Parses policy text against this machine's users and groups.
pub fn parse_policy(text: &str, label: &str) -> Result<Policy> {
    crate::policy::parse(text, label, &resolver)
        .map_err(|errs| Error::PolicyInvalid(errs.join("\n")))
}

/// The stored policy, as the config expects it. A missing, older or foreign policy file
/// refuses the mount (and says so in the audit log): the fence is never silently dropped.
fn load_policy(vault: &Vault) -> Result<Option<Policy>> {
    let loaded = vault
        .read_policy()
        .and_then(|t| t.map(|t| parse_policy(&t, "stored policy")).transpose());
    if let Err(e) = &loaded {
        log::error!("not mounting: {e}");
        let mut r = crate::audit::Record::now("mount", "/");
        r.user = sys::user_name(r.uid).unwrap_or_default();
        r.result = "refused".into();
        r.detail = Some(e.to_string());
        let _ = crate::audit::append_offline(&vault.dir, vault.audit_keys(), &[r]);
    }
    loaded
}

/// A file's inode, modification time and size: what changes when it is replaced.
type Stamp = (u64, i64, i64, u64);

fn file_stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.ino(), m.mtime(), m.mtime_nsec(), m.len()))
}

/// Each chain's pruning checkpoint, as a stamp: a prune of any chain changes one.
fn prune_stamps(dir: &Path) -> Vec<(crate::audit::Chain, Option<Stamp>)> {
    crate::audit::chain::all(dir)
        .unwrap_or_default()
        .into_iter()
        .map(|c| {
            let s = file_stamp(&c.dir.join(crate::audit::prune::FILE_NAME));
            (c, s)
        })
        .collect()
}

/// The policy the vault's config (re-read and authenticated) expects now.
fn load_live_policy(keep: &Keep) -> Result<Option<Policy>> {
    let keys = keep.keys.read().unwrap_or_else(|p| p.into_inner());
    let binding = Vault::read_policy_binding(&keep.dir, &keys.config)?;
    store::read_bound(&keep.dir, &keys.policy, &keep.vault_id, binding)?
        .map(|t| parse_policy(&t, "stored policy"))
        .transpose()
}

/// Publishes the daemon's status again when listings met new stray backing names, or a
/// client was locked or unlocked.
fn republish_on_change(
    fs: Arc<Fs>,
    live: Arc<crate::daemon::live::Live>,
    mut info: crate::daemon::status::DaemonInfo,
) {
    let _ = std::thread::Builder::new()
        .name("status".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_millis(500));
            let n = fs.strays_seen();
            let mut locked = live.locked_clients();
            locked.sort();
            if n != info.strays || locked != info.locked {
                info.strays = n;
                info.locked = locked;
                crate::daemon::status::publish(&info);
            }
        });
}

/// `--client-idle`: looks for clients idle that long, often enough that none stays open
/// much past its time (a tenth of it, between 1 and 30 seconds).
fn lock_idle_clients(live: Arc<crate::daemon::live::Live>, idle: Duration) {
    let every = (idle / 10).clamp(Duration::from_secs(1), Duration::from_secs(30));
    let _ = std::thread::Builder::new()
        .name("client-idle".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            live.lock_idle(idle);
        });
}

/// Reloads the policy when `tutela policy set` replaces it, so no remount is needed, and
/// records a prune of the audit log (`tutela audit prune` cannot write to a log the daemon
/// holds).
fn watch_policy(fs: Arc<Fs>, keep: Keep, notifier: fuser::Notifier) -> Result<()> {
    let dir = keep.dir.clone();
    let mut pruned = prune_stamps(&keep.dir);
    let keep = Arc::new(keep);
    let k2 = keep.clone();
    follow_policy(
        fs,
        &dir,
        move || load_live_policy(&k2),
        move |fs| {
            let now = prune_stamps(&keep.dir);
            if now == pruned {
                return;
            }
            let audit_keys = keep.audit_keys();
            for (c, stamp) in &now {
                if stamp.is_none() || pruned.iter().any(|(c0, s0)| c0 == c && s0 == stamp) {
                    continue;
                }
                match crate::audit::prune::Checkpoint::read(c, &audit_keys) {
                    Ok(Some(cp)) => fs.record_event_as(
                        cp.uid,
                        "audit-prune",
                        "ok",
                        Some(format!("{}: {}", c.label(), cp.describe())),
                    ),
                    Ok(None) => {}
                    Err(e) => fs.record_event("audit-prune", "rejected", Some(e.to_string())),
                }
            }
            pruned = now;
        },
        notifier,
    )
}

/// Every half second: flushes the audit log's pending records, runs `tick`, and when the
/// policy file or the config changed, loads the policy with `load` and puts it in force (the
/// kernel forgets what it cached under the old one). A policy that does not load leaves the
/// last one that did in force (fail closed), and says so in the audit log.
fn follow_policy(
    fs: Arc<Fs>,
    dir: &Path,
    load: impl Fn() -> Result<Option<Policy>> + Send + 'static,
    mut tick: impl FnMut(&Fs) + Send + 'static,
    notifier: fuser::Notifier,
) -> Result<()> {
    let policy_file = dir.join(store::FILE_NAME);
    let config_file = dir.join(crate::format::config::FILE_NAME);
    let stamps = move || (file_stamp(&policy_file), file_stamp(&config_file));
    let mut stamp = stamps();
    let mut current = fs.policy_in_force();
    std::thread::Builder::new()
        .name("policy".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_millis(500));
            fs.audit_tick();
            tick(&fs);
            let now = stamps();
            if now == stamp {
                continue;
            }
            // `policy set` writes the policy file, then the config that expects it: what is
            // seen between the two is not yet a verdict.
            let mut loaded = load();
            if loaded.is_err() {
                std::thread::sleep(Duration::from_millis(300));
                loaded = load();
            }
            stamp = stamps();
            match loaded {
                Ok(p) if p.as_ref() == current.as_deref() => {}
                Ok(p) => {
                    let detail = p.as_ref().map(|p| format!("{} clients", p.clients.len()));
                    fs.set_policy(p);
                    current = fs.policy_in_force();
                    // Entries are cached for a while; none may outlive the rules they were
                    // looked up under (a missing one is simply not cached: ignored), nor
                    // may an absence cached where a client's top now stands.
                    for (parent, name) in
                        fs.known_names().into_iter().chain(fs.client_top_entries())
                    {
                        let _ = notifier.inval_entry(
                            fuser::INodeNo(parent),
                            std::os::unix::ffi::OsStrExt::from_bytes(&name),
                        );
                    }
                    // So may no listing the kernel cached under the old rules.
                    for ino in fs.known_dirs() {
                        let _ = notifier.inval_inode(fuser::INodeNo(ino), 0, 0);
                    }
                    fs.record_event("policy-change", "ok", detail);
                    log::info!("access policy reloaded");
                }
                Err(e) => {
                    // Fail closed: the last policy that authenticated stays in force.
                    fs.record_event("policy-change", "rejected", Some(e.to_string()));
                    log::error!("{e}; the policy in force stays");
                }
            }
        })?;
    Ok(())
}

/// Whether a client-scoped mount's client is closed (`tutela.closed`), followed while
/// mounted: a close or reopen on another mount takes effect here within a second.
struct ScopedClosed {
    file: PathBuf,
    dir: PathBuf,
    vault_id: crate::crypto::Id,
    key: crate::crypto::secret::Key32,
    zone: crate::crypto::Id,
    path: String,
    name: String,
    stamp: Option<Stamp>,
    closed: bool,
}

impl ScopedClosed {
    fn new(
        dir: &Path,
        vault_id: crate::crypto::Id,
        keys: &crate::vault::client_slots::ClientKeys,
    ) -> ScopedClosed {
        let file = dir.join(crate::policy::closed::FILE_NAME);
        ScopedClosed {
            stamp: file_stamp(&file),
            file,
            dir: dir.to_path_buf(),
            vault_id,
            key: keys.policy_key.duplicate(),
            zone: keys.zone_id,
            path: keys.path.clone(),
            name: keys.name.clone(),
            closed: false,
        }
    }

    /// Reads the list and puts the verdict in force; a list that does not open closes the
    /// folder (fail closed) and says why.
    fn apply(&mut self, fs: &Fs) {
        let (closed, why) =
            crate::policy::closed::is_closed(&self.dir, &self.key, &self.vault_id, &self.zone);
        if let Some(e) = why {
            log::error!(
                "{}: {e}; client '{}' is treated as closed (read-only) until a full mount \
                 writes the list again",
                crate::policy::closed::FILE_NAME,
                self.name
            );
        }
        fs.set_closed(if closed {
            vec![(self.path.clone(), self.name.clone())]
        } else {
            Vec::new()
        });
        self.closed = closed;
    }

    fn follow(&mut self, fs: &Fs) {
        let now = file_stamp(&self.file);
        if now == self.stamp {
            return;
        }
        self.stamp = now;
        let was = self.closed;
        self.apply(fs);
        let closed = self.closed;
        if closed != was {
            fs.record_event(
                if closed {
                    "client-close"
                } else {
                    "client-reopen"
                },
                "ok",
                Some(format!(
                    "client '{}' {} (seen in {})",
                    self.name,
                    if closed {
                        "closed: read-only for all but admins"
                    } else {
                        "reopened"
                    },
                    crate::policy::closed::FILE_NAME
                )),
            );
        }
    }
}

/// A client-scoped mount's policy: the stored one, read with the client key's policy key, as
/// the config (read again, unauthenticated: the key cannot check it) binds it.
fn load_scoped_policy(
    dir: &Path,
    policy_key: &crate::crypto::secret::Key32,
) -> Result<Option<Policy>> {
    let (config, _) = Vault::read_config(dir)?;
    store::read_bound(dir, policy_key, &config.vault_id, config.policy)?
        .map(|t| parse_policy(&t, "stored policy"))
        .transpose()
}

fn serve(
    fs: Fs,
    mut keep: Keep,
    vault: Vault,
    config: Config,
    mp: &Path,
    args: MountArgs,
    mut ready: Option<std::fs::File>,
) -> Result<()> {
    harden_daemon();
    let audit_keys = keep.audit_keys();
    let fwd = forwarder(&args, &audit_keys.vault_id, Some(&audit_keys.mac));
    let sink = open_sink(
        crate::audit::Sink::start_forwarding(&keep.dir, audit_keys, fwd),
        &args,
        &mut ready,
    )?;
    let running = open_session(fs, keep.policy.take(), sink, &config, mp, &args, &mut ready)?;
    let fs = running.fs.clone();
    // Client work while mounted goes through the daemon (`live`), on its control socket.
    let mut vault = vault;
    let unlocked_by = std::mem::take(&mut vault.unlocked_by);
    let pending = !vault.rekey_pending().is_empty();
    let socket = crate::daemon::control::socket_path(&vault.config.vault_id);
    let shared_keys = keep.keys.clone();
    // Scoped mounts read the closed clients from `tutela.closed`: put it right where a crash
    // or an interrupted `rekey --all` left it behind the zone table.
    if !args.read_only {
        let key = shared_keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .policy
            .duplicate();
        let closed = crate::policy::closed::of_zones(&vault.zones);
        if let Err(e) =
            crate::policy::closed::write(&vault.dir, &key, &vault.config.vault_id, &closed)
        {
            log::warn!("{}: {e}", crate::policy::closed::FILE_NAME);
        }
    }
    // What the daemon keeps of the vault: the zone table and the keys that save it, not the
    // master key.
    vault.forget_master()?;
    let live = Arc::new(crate::daemon::live::Live::new(
        fs.clone(),
        vault,
        args.read_only,
        shared_keys.clone(),
    ));
    let control_key: crate::daemon::control::server::KeySource = Arc::new(move || {
        shared_keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .control
            .duplicate()
    });
    let _control = match crate::daemon::control::server::listen(socket, control_key, live.clone()) {
        Ok(l) => Some(l),
        Err(e) => {
            log::warn!("no control channel ({e}): client add, export, shred and rekey need the vault unmounted");
            None
        }
    };
    let info = daemon_info(&fs, &keep.dir, mp, &args, keep.clients);
    record_mount(&fs, &args, None, &unlocked_by);
    watch_policy(fs.clone(), keep, running.session.notifier())?;
    crate::daemon::status::publish(&info);
    republish_on_change(fs.clone(), live.clone(), info);
    if let Some(idle) = args.client_idle {
        fs.track_client_use();
        lock_idle_clients(live.clone(), idle);
    }
    if let Some(mut w) = ready.take() {
        let _ = writeln!(w, "ok");
    }
    if pending && !args.read_only {
        // A rotation or adoption was interrupted: finish it while serving.
        let live = live.clone();
        std::thread::Builder::new()
            .name("rekey-resume".into())
            .spawn(move || {
                use crate::daemon::control::server::Handler;
                let me = crate::daemon::control::server::Caller {
                    uid: sys::getuid(),
                    gid: sys::getgid(),
                    pid: std::process::id(),
                };
                let r = live.run(me, crate::daemon::control::Request::RekeyResume, &mut |p| {
                    log::info!("{p}")
                });
                match r {
                    Ok((msg, _)) => log::info!("{msg}"),
                    Err(e) => log::error!("finishing the interrupted rekey failed: {e}"),
                }
            })?;
    }
    run_until_unmounted(running, mp, &args)
}

/// What every mount daemon does first: no core dumps, no file size limit, exact modes,
/// termination signals handled by the signal thread.
fn harden_daemon() {
    sys::disable_core_dumps();
    sys::lift_file_size_limit();
    sys::set_umask(0);
    sys::block_termination_signals();
}

/// The audit sink, or why the mount cannot go on without one (a read-only mount can).
fn open_sink(
    sink: Result<crate::audit::Sink>,
    args: &MountArgs,
    ready: &mut Option<std::fs::File>,
) -> Result<Option<crate::audit::Sink>> {
    match sink {
        Ok(s) => Ok(Some(s)),
        Err(e) if args.read_only => {
            log::warn!("read-only mount: no audit log ({e})");
            Ok(None)
        }
        Err(e) => {
            let err = Error::MountFailed(format!("cannot open the audit log: {e}"));
            if let Some(w) = ready.as_mut() {
                let _ = writeln!(w, "{} {}", err.exit_code(), err);
            }
            Err(err)
        }
    }
}

/// A mount that is live in the kernel, not yet serving.
struct Running {
    fs: Arc<Fs>,
    session: fuser::Session<Adapter>,
    start: Instant,
    /// When a request last came (seconds since `start`), for `--idle`.
    last: Arc<AtomicU64>,
}

/// Puts the guard (policy and audit) in place and mounts: the kernel sees the mount from
/// here on.
fn open_session(
    mut fs: Fs,
    policy: Option<Policy>,
    sink: Option<crate::audit::Sink>,
    config: &Config,
    mp: &Path,
    args: &MountArgs,
    ready: &mut Option<std::fs::File>,
) -> Result<Running> {
    fs.set_guard(crate::fs::Guard::new(policy, sink));
    let fs = Arc::new(fs);
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let last2 = last.clone();
    let adapter = Adapter::new(
        fs.clone(),
        Arc::new(move || last2.store(now_secs(start), Ordering::Relaxed)),
        args.allow_other,
    );
    let session = match fuser::Session::new(adapter, mp, config) {
        Ok(s) => s,
        Err(e) => {
            let err = explain_mount_error(e, args);
            fs.close_audit();
            if let Some(w) = ready.as_mut() {
                let _ = writeln!(w, "{} {}", err.exit_code(), err);
            }
            return Err(err);
        }
    };
    log::info!("mounted");
    let notifier = session.notifier();
    // Attributes only (offset -1), or the cached pages too (offset 0, length 0: all).
    fs.set_invalidator(Box::new(move |ino, data| {
        let _ = notifier.inval_inode(fuser::INodeNo(ino), if data { 0 } else { -1 }, 0);
    }));
    let notifier = session.notifier();
    fs.set_entry_invalidator(Box::new(move |parent, name| {
        let _ = notifier.inval_entry(
            fuser::INodeNo(parent),
            std::os::unix::ffi::OsStrExt::from_bytes(name),
        );
    }));
    raise_readahead(mp.to_path_buf());
    Ok(Running {
        fs,
        session,
        start,
        last,
    })
}

/// The mount's own audit record: how it is mounted (and which client, for a scoped one).
/// The mount's first record: how it serves, and which key opened it (an unlock, for the
/// evidence a report gives: `audit report`'s "events that change exposure").
fn record_mount(fs: &Fs, args: &MountArgs, client: Option<&str>, key: &str) {
    fs.record_event(
        "mount",
        "ok",
        Some(format!(
            "{}{}{}, {key}",
            if args.read_only {
                "read-only"
            } else {
                "read-write"
            },
            if fs.policy_active() {
                ", policy active"
            } else {
                ""
            },
            client.map_or(String::new(), |c| format!(", client '{c}' only")),
        )),
    );
}

/// What `tutela status` shows of this daemon.
fn daemon_info(
    fs: &Fs,
    vault_dir: &Path,
    mp: &Path,
    args: &MountArgs,
    clients: usize,
) -> crate::daemon::status::DaemonInfo {
    crate::daemon::status::DaemonInfo {
        pid: std::process::id(),
        vault: vault_dir.display().to_string(),
        mountpoint: mp.display().to_string(),
        started_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        read_only: args.read_only,
        policy: fs.policy_active(),
        clients,
        idle_s: args.idle.map(|d| d.as_secs()),
        threads: args.threads,
        strays: 0,
        locked: Vec::new(),
        client_idle_s: args.client_idle.map(|d| d.as_secs()),
        client: None,
    }
}

/// Serves until the mount goes (unmounted by hand, on a signal, or when idle), then closes
/// the audit log.
fn run_until_unmounted(running: Running, mp: &Path, args: &MountArgs) -> Result<()> {
    let Running {
        fs,
        session,
        start,
        last,
    } = running;
    // Unmounting on a signal or when idle goes through the kernel (umount2, or fusermount3),
    // so a try that finds the mount busy can be made again: fuser's unmounter is spent by its
    // first try, after which an idle timer or a SIGTERM would leave the vault open for good.
    let own_mp = std::fs::canonicalize(mp).unwrap_or_else(|_| mp.to_path_buf());
    {
        let mp = own_mp.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let sig = sys::wait_for_signal();
                log::info!("signal {sig}: unmounting");
                let mut tries = 0;
                while !unmount_own(&mp, "signal", tries) {
                    tries += 1;
                    std::thread::sleep(Duration::from_secs(1));
                }
            })?;
    }
    if let Some(idle) = args.idle {
        let mp = own_mp.clone();
        std::thread::Builder::new()
            .name("idle".into())
            .spawn(move || {
                let (mut tries, mut next_try) = (0, 0);
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                    let now = now_secs(start);
                    let idle_for = now.saturating_sub(last.load(Ordering::Relaxed));
                    if idle_for < idle.as_secs() {
                        tries = 0;
                        continue;
                    }
                    if now < next_try {
                        continue;
                    }
                    log::info!("idle for {idle_for}s: unmounting");
                    if unmount_own(&mp, "idle", tries) {
                        break;
                    }
                    tries += 1;
                    next_try = now + IDLE_RETRY_SECS;
                }
            })?;
    }
    let r = session.run();
    crate::daemon::status::withdraw(std::process::id());
    log::info!("unmounted");
    fs.record_event("unmount", "ok", None);
    fs.close_audit();
    r.map_err(|e| Error::MountFailed(format!("session ended with an error: {e}")))
}

/// A vault is served by one daemon at a time: a second mount says where the first one is
/// (before, it failed on the audit log's lock with "cannot open the audit log").
/// The mount of vault `dir`, if it is mounted.
pub fn mount_of(dir: &Path) -> Option<MountEntry> {
    let canon = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let same = |p: &Path| std::fs::canonicalize(p).is_ok_and(|c| c == canon);
    mounts()
        .into_iter()
        .find(|m| m.is_tutela() && same(Path::new(m.source.trim_start_matches("tutela:"))))
}

fn refuse_if_mounted(dir: &Path) -> Result<()> {
    let canon = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let same = |p: &Path| std::fs::canonicalize(p).is_ok_and(|c| c == canon);
    let Some(m) = mount_of(dir) else {
        return Ok(());
    };
    let pid = crate::daemon::status::live()
        .into_iter()
        .find(|d| same(Path::new(&d.vault)))
        .map(|d| format!(" by tutela pid {}", d.pid))
        .unwrap_or_default();
    Err(Error::Busy(format!(
        "{} is already mounted at {}{pid}: use that mount, or `tutela unmount {}` first",
        dir.display(),
        m.mountpoint.display(),
        m.mountpoint.display()
    )))
}

/// How often an idle mount that was busy is tried again.
const IDLE_RETRY_SECS: u64 = 5;

/// Unmounts this daemon's own mount; false while it is busy, with who holds it in the log
/// (every tenth try, so a long wait does not fill the log).
fn unmount_own(mp: &Path, why: &str, tries: u32) -> bool {
    // No syncfs: the daemon would open its own mount (counted as activity); the kernel
    // writes dirty pages back through the daemon at unmount anyway.
    match kernel_unmount(mp, false) {
        Ok(()) => true,
        Err(e) => {
            if tries.is_multiple_of(10) {
                log::warn!("{why}: cannot unmount yet, will try again: {e}");
            }
            false
        }
    }
}

/// Processes with a cwd, root, open file or mapping under `mp` (as far as /proc lets us see).
pub fn holders(mp: &Path) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    let under = |p: &Path| p.starts_with(mp);
    for e in procs.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let base = e.path();
        let mut hit = ["cwd", "root", "exe"].iter().any(|l| {
            std::fs::read_link(base.join(l))
                .map(|t| under(&t))
                .unwrap_or(false)
        });
        if !hit {
            if let Ok(fds) = std::fs::read_dir(base.join("fd")) {
                hit = fds.flatten().any(|f| {
                    std::fs::read_link(f.path())
                        .map(|t| under(&t))
                        .unwrap_or(false)
                });
            }
        }
        if hit {
            let comm = std::fs::read_to_string(base.join("comm"))
                .unwrap_or_default()
                .trim()
                .to_string();
            out.push((pid, comm));
        }
    }
    out
}

fn busy_error(mp: &Path) -> Error {
    let h = holders(mp);
    let who = if h.is_empty() {
        "no holder visible to this user (another user's process, or a mount below it)".to_string()
    } else {
        h.iter()
            .map(|(p, c)| format!("{c} (pid {p})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Error::Busy(format!(
        "{} is busy, in use by: {who}. Close those programs (or cd out) and try again",
        mp.display()
    ))
}

/// Flushes and unmounts a tutela mount.
pub fn unmount(mp: &Path) -> Result<()> {
    let canon =
        std::fs::canonicalize(mp).map_err(|_| Error::NotMounted(mp.display().to_string()))?;
    let Some(entry) = mounts().into_iter().find(|m| m.mountpoint == canon) else {
        return Err(Error::NotMounted(mp.display().to_string()));
    };
    if !entry.is_tutela() {
        return Err(Error::NotMounted(format!(
            "{} (it is a {} mount, not tutela)",
            mp.display(),
            entry.fstype
        )));
    }
    // The daemon writes its last audit record and releases the vault after the kernel lets
    // go of the mount; "unmounted" should mean that too, so its pid is noted to wait for.
    let daemons: Vec<u32> = crate::daemon::status::live()
        .into_iter()
        .filter(|d| std::fs::canonicalize(&d.mountpoint).ok().as_deref() == Some(&canon))
        .map(|d| d.pid)
        .collect();
    kernel_unmount(&canon, true)?;
    wait_for_exit(&daemons, Duration::from_secs(10));
    Ok(())
}

/// True while `pid` runs (a zombie has finished its work and counts as gone).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

fn wait_for_exit(pids: &[u32], timeout: Duration) {
    let start = Instant::now();
    while pids.iter().any(|p| running(*p)) && start.elapsed() < timeout {
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn kernel_unmount(canon: &Path, sync: bool) -> Result<()> {
    // Push dirty pages (e.g. from shared mmap) to the daemon before the connection goes.
    if sync {
        if let Ok(f) = std::fs::File::open(canon) {
            let _ = sys::syncfs(&f);
        }
    }
    if sys::geteuid() == 0 {
        // The kernel releases a just-closed file asynchronously: a program that closed its
        // last file a moment ago still counts as busy for a few milliseconds.
        let start = Instant::now();
        loop {
            return match sys::umount(canon, false) {
                Ok(()) => Ok(()),
                Err(libc::EBUSY) if start.elapsed() < Duration::from_millis(1500) => {
                    if holders(canon).is_empty() {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                    Err(busy_error(canon))
                }
                Err(libc::EBUSY) => Err(busy_error(canon)),
                Err(e) => Err(Error::Io(std::io::Error::from_raw_os_error(e))),
            };
        }
    }
    let start = Instant::now();
    let out = loop {
        let out = std::process::Command::new("fusermount3")
            .arg("-u")
            .arg(canon)
            .output()
            .map_err(|e| {
                Error::Io(std::io::Error::other(format!(
                    "cannot run fusermount3: {e}"
                )))
            })?;
        let busy = String::from_utf8_lossy(&out.stderr).contains("busy");
        if busy && start.elapsed() < Duration::from_millis(1500) && holders(canon).is_empty() {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        break out;
    };
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("busy") {
        return Err(busy_error(canon));
    }
    Err(Error::Io(std::io::Error::other(err.trim().to_string())))
}

/// Waits until `mp` is no longer a mountpoint (after unmount, the daemon exits on its own).
pub fn wait_unmounted(mp: &Path, timeout: Duration) -> bool {
    let start = Instant::now();
    let canon = std::fs::canonicalize(mp).unwrap_or_else(|_| mp.to_path_buf());
    while start.elapsed() < timeout {
        if !is_mountpoint(&canon) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Parses "90", "90s", "15m", "2h", "1d".
/// The one duration grammar of every flag (`--idle`, `audit show --since`, `audit prune
/// --before`, fstab `idle=`): humantime's forms ("90s", "15m", "15min", "1h30m", "2 days"),
/// or a bare number of seconds.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    humantime::parse_duration(t).map_err(|_| {
        format!(
            "'{}' is not a duration: use e.g. 90s, 15m, 15min, 1h30m, 2days",
            crate::text::escape(s)
        )
    })
}

/// `--idle`: a duration of at least one second.
pub fn parse_idle(s: &str) -> std::result::Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(1) {
        return Err("the idle timeout must be at least 1s".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("15min").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(
            parse_duration("2 days").unwrap(),
            Duration::from_secs(172_800)
        );
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
        assert!(parse_idle("0").is_err());
        assert!(parse_idle("500ms").is_err());
        assert_eq!(parse_idle("1s").unwrap(), Duration::from_secs(1));
    }

    #[test]
    fn mountinfo_unescape() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
    }
}
