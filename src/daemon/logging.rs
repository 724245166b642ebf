//! Logging: env_logger on the terminal or into `--log-file`; once a mount daemon goes to the
//! background without a log file, the same records go to the system log (syslog's /dev/log
//! socket, which the systemd journal also serves). Levels: warn by default, `-v` info, `-vv`
//! debug. No log line carries a plaintext name or path (see the log sites).

use crate::error::{Error, Result};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

/// Where the system log listens; a test points this elsewhere.
pub const SYSLOG_SOCKET_ENV: &str = "TUTELA_SYSLOG_SOCKET";

static SYSLOG: OnceLock<Mutex<Option<UnixDatagram>>> = OnceLock::new();

struct Logger {
    inner: env_logger::Logger,
}

fn syslog() -> &'static Mutex<Option<UnixDatagram>> {
    SYSLOG.get_or_init(|| Mutex::new(None))
}

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        self.inner.enabled(m)
    }

    fn log(&self, r: &log::Record<'_>) {
        if !self.inner.matches(r) {
            return;
        }
        let guard = syslog().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sock) = guard.as_ref() {
            // RFC 3164 without a timestamp (the receiver adds it): facility daemon (3).
            let severity = match r.level() {
                log::Level::Error => 3,
                log::Level::Warn => 4,
                log::Level::Info => 6,
                log::Level::Debug | log::Level::Trace => 7,
            };
            let line = format!(
                "<{}>tutela[{}]: {}",
                3 * 8 + severity,
                std::process::id(),
                r.args()
            );
            let _ = sock.send(line.as_bytes());
            return;
        }
        drop(guard);
        self.inner.log(r);
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// Sets up logging once per process: to stderr, or appended to `file`.
pub fn init(verbose: u8, file: Option<&Path>) -> Result<()> {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level));
    // fuser's debug lines carry plaintext names from requests; they never reach our logs.
    b.filter_module("fuser", log::LevelFilter::Warn);
    // Its session warns "failed to umount" on its way out whenever the mount was taken down
    // from outside it (`tutela unmount`, fusermount3, our own idle and signal unmounts):
    // the expected case, not a problem.
    b.filter_module("fuser::session", log::LevelFilter::Error);
    // The TPM stack reports each failure it passes back to us (no TPM, wrong PIN, lockout);
    // tutela says what it means, once, in its own words.
    if verbose < 2 {
        b.filter_module("tss_esapi", log::LevelFilter::Off);
    }
    if let Some(f) = file {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(f)
            .map_err(|e| Error::Usage(format!("cannot open log file {}: {e}", f.display())))?;
        b.target(env_logger::Target::Pipe(Box::new(out)));
    }
    let inner = b.build();
    let max = inner.filter();
    if log::set_boxed_logger(Box::new(Logger { inner })).is_ok() {
        log::set_max_level(max);
    }
    Ok(())
}

/// Sends further records to the system log (a background daemon without `--log-file`).
/// Without a reachable system log they are dropped, as stderr is /dev/null by then.
pub fn to_syslog() {
    #[cfg(feature = "test-hooks")]
    let path = std::env::var_os(SYSLOG_SOCKET_ENV).unwrap_or_else(|| "/dev/log".into());
    #[cfg(not(feature = "test-hooks"))]
    let path = std::ffi::OsString::from("/dev/log");
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    if sock.connect(&path).is_ok() {
        *syslog().lock().unwrap_or_else(|p| p.into_inner()) = Some(sock);
    }
}
