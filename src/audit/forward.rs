//! What the audit writer sends to the machine's system log, so it leaves the vault by itself:
//! every record (with `--audit-syslog`) as an RFC 5424 message with structured data, for
//! rsyslog or journald to forward to the practice's SIEM over their own transport; and the
//! chain's head anchor at each segment seal, on unmount and every few minutes, so records cut
//! off the log's end are caught later (`audit verify --anchors-from`) without anyone keeping
//! notes. Paths go out as a keyed hash (a SIEM can group accesses to one file without
//! learning its name), in the clear only with `audit_syslog=paths`.
//!
//! Sending never blocks or slows the mount: the socket is non-blocking, a full or missing
//! log drops the message (counted, and said in the daemon's log once a minute), and a
//! missing socket is tried again at most every ten seconds.

use super::anchor::Anchor;
use super::Record;
use crate::crypto::secret::Key32;
use crate::crypto::Id;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The structured-data ids (the enterprise number is IANA's example one, 32473).
pub const SD_RECORD: &str = "tutela@32473";
pub const SD_ANCHOR: &str = "tutela-anchor@32473";
/// HKDF label of the key the path hash uses (from the audit MAC key).
pub const LABEL_PATH_HASH: &[u8] = b"tutela/v1/syslog-path";

/// What goes to the system log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// Every record (`--audit-syslog`).
    pub records: bool,
    /// Plaintext paths in them (`audit_syslog=paths`).
    pub paths: bool,
    /// Head anchors every this often (and at each seal and on unmount); None: never.
    pub anchor_every: Option<Duration>,
}

pub struct Forward {
    path: PathBuf,
    /// `path` is journald's native socket: entries go as fields (SYSLOG_IDENTIFIER=tutela,
    /// TUTELA_OP=...), the RFC 5424 text as MESSAGE.
    journal: bool,
    sock: Option<UnixDatagram>,
    last_try: Option<Instant>,
    mode: Mode,
    /// The key of path hashes; none on a client-scoped mount (it holds no audit key), whose
    /// records then carry no path unless the mode sends paths.
    path_key: Option<Key32>,
    vault_hex: String,
    host: String,
    dropped: u64,
    last_warn: Option<Instant>,
    last_anchor: Instant,
    /// The head last sent (nothing new: no periodic anchor).
    sent_head: Option<Anchor>,
}

/// RFC 5424 PARAM-VALUE escaping: `"`, `\` and `]` take a backslash; control characters are
/// shown as escapes (a name with a newline cannot forge a second message).
fn sd_value(s: &str) -> String {
    let t = crate::text::escape(s);
    let mut o = String::with_capacity(t.len());
    for c in t.chars() {
        if matches!(c, '"' | '\\' | ']') {
            o.push('\\');
        }
        o.push(c);
    }
    o
}

fn timestamp(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

impl Forward {
    /// Sends to `path`, a syslog socket (`/dev/log`), or with `journal` journald's native one.
    /// `mac_key`: the audit MAC key path hashes derive from (None: no path hashes).
    pub fn new(
        path: PathBuf,
        journal: bool,
        vault_id: &Id,
        mac_key: Option<&Key32>,
        mode: Mode,
    ) -> Forward {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty() && h.is_ascii() && !h.contains(' '))
            .unwrap_or_else(|| "-".into());
        Forward {
            path,
            journal,
            sock: None,
            last_try: None,
            mode,
            path_key: mac_key.map(|k| crate::crypto::kdf::derive(k, vault_id, LABEL_PATH_HASH)),
            vault_hex: vault_id.iter().map(|b| format!("{b:02x}")).collect(),
            host,
            dropped: 0,
            last_warn: None,
            last_anchor: Instant::now(),
            sent_head: None,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The keyed hash of a path that records carry instead of the path (None without a key).
    pub fn path_hash(&self, path: &str) -> Option<String> {
        let key = self.path_key.as_ref()?;
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()).ok()?;
        m.update(path.as_bytes());
        Some(
            m.finalize().into_bytes()[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        )
    }

    /// A journald native entry: `KEY=VALUE` lines (values never hold a newline here: every
    /// field is escaped text).
    fn journal_entry(&self, pri: u8, msg: &str, fields: &[(&str, String)]) -> String {
        let mut e = format!(
            "SYSLOG_IDENTIFIER=tutela\nSYSLOG_FACILITY=10\nPRIORITY={}\nSYSLOG_PID={}\n",
            pri % 8,
            std::process::id()
        );
        // The RFC 5424 text from its structured data on: what `journalctl -o cat` prints.
        let body = msg.find('[').map_or(msg, |i| &msg[i..]);
        e.push_str(&format!("MESSAGE={}\n", body.replace('\n', " ")));
        for (k, v) in fields {
            e.push_str(&format!("{k}={}\n", v.replace('\n', " ")));
        }
        e
    }

    fn emit(&mut self, pri: u8, msg: &str, fields: &[(&str, String)]) {
        if self.journal {
            let e = self.journal_entry(pri, msg, fields);
            self.send(&e);
        } else {
            self.send(msg);
        }
    }

    /// Whether a socket is there to send to (connecting, at most every ten seconds, when
    /// not). Asked before a message is built: with no log to take it, a record costs nothing
    /// but this check.
    fn connected(&mut self) -> bool {
        if self.sock.is_none() {
            let due = self
                .last_try
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(10));
            if due {
                self.last_try = Some(Instant::now());
                self.sock = UnixDatagram::unbound()
                    .and_then(|s| {
                        s.set_nonblocking(true)?;
                        s.connect(&self.path)?;
                        Ok(s)
                    })
                    .ok();
            }
        }
        if self.sock.is_none() {
            self.dropped_one();
            return false;
        }
        true
    }

    fn dropped_one(&mut self) {
        self.dropped += 1;
        if self
            .last_warn
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
        {
            self.last_warn = Some(Instant::now());
            log::warn!(
                "system log at {} not taking audit messages: {} dropped so far (the audit log itself is complete)",
                self.path.display(),
                self.dropped
            );
        }
    }

    fn send(&mut self, msg: &str) {
        let sent = match &self.sock {
            Some(s) => match s.send(msg.as_bytes()) {
                Ok(_) => true,
                Err(e) => {
                    // Gone (the log daemon restarted): connect again later.
                    if !matches!(e.kind(), std::io::ErrorKind::WouldBlock)
                        && e.raw_os_error() != Some(libc::ENOBUFS)
                    {
                        self.sock = None;
                    }
                    false
                }
            },
            None => false,
        };
        if !sent {
            self.dropped_one();
        }
    }

    fn header(&self, pri: u8, ms: u64, msgid: &str) -> String {
        format!(
            "<{pri}>1 {} {} tutela {} {msgid} ",
            timestamp(ms),
            self.host,
            std::process::id()
        )
    }

    /// Sends one record (when records are forwarded).
    pub fn record(&mut self, r: &Record, seq: u64, chain: &str) {
        if !self.mode.records || !self.connected() {
            return;
        }
        // authpriv (10): notice (5) for what happened, warning (4) for a refusal.
        let pri = if r.result == "denied" { 84 } else { 85 };
        let mut sd = format!(
            "[{SD_RECORD} vault=\"{}\" chain=\"{}\" seq=\"{seq}\" op=\"{}\" result=\"{}\" uid=\"{}\" user=\"{}\" program=\"{}\" pid=\"{}\"",
            self.vault_hex,
            sd_value(chain),
            sd_value(&r.op),
            sd_value(&r.result),
            r.uid,
            sd_value(&r.user),
            sd_value(&r.program),
            r.pid
        );
        if let Some(c) = &r.client {
            sd.push_str(&format!(" client=\"{}\"", sd_value(c)));
        }
        if let Some(h) = self.path_hash(&r.path) {
            sd.push_str(&format!(" path_hash=\"{h}\""));
        }
        if let Some(h) = r.path2.as_deref().and_then(|p2| self.path_hash(p2)) {
            sd.push_str(&format!(" path2_hash=\"{h}\""));
        }
        if self.mode.paths {
            sd.push_str(&format!(" path=\"{}\"", sd_value(&r.path)));
            if let Some(p2) = &r.path2 {
                sd.push_str(&format!(" path2=\"{}\"", sd_value(p2)));
            }
        }
        if let Some(d) = &r.detail {
            if self.mode.paths || !r.op.starts_with("client-") {
                sd.push_str(&format!(" detail=\"{}\"", sd_value(d)));
            }
        }
        sd.push(']');
        let who = if r.user.is_empty() {
            format!("uid {}", r.uid)
        } else {
            crate::text::escape(&r.user).into_owned()
        };
        let msg = format!(
            "{}{sd} {who} {} {}",
            self.header(pri, r.time_ms, "audit"),
            crate::text::escape(&r.op),
            crate::text::escape(&r.result)
        );
        let mut fields = vec![
            ("TUTELA_OP", crate::text::escape(&r.op).into_owned()),
            ("TUTELA_RESULT", crate::text::escape(&r.result).into_owned()),
            ("TUTELA_UID", r.uid.to_string()),
            ("TUTELA_USER", crate::text::escape(&r.user).into_owned()),
            (
                "TUTELA_CLIENT",
                crate::text::escape(r.client.as_deref().unwrap_or("")).into_owned(),
            ),
            ("TUTELA_SEQ", seq.to_string()),
        ];
        if let Some(h) = self.path_hash(&r.path) {
            fields.push(("TUTELA_PATH_HASH", h));
        }
        self.emit(pri, &msg, &fields);
    }

    /// Sends the head anchor (`why`: "seal", "unmount", "periodic"), unless it was sent already.
    pub fn anchor(&mut self, head: Anchor, why: &str) {
        if self.mode.anchor_every.is_none() || self.sent_head == Some(head) || !self.connected() {
            return;
        }
        self.sent_head = Some(head);
        self.last_anchor = Instant::now();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let msg = format!(
            "{}[{SD_ANCHOR} vault=\"{}\" anchor=\"{head}\" why=\"{why}\"] audit anchor {head} of vault {}",
            self.header(85, now, "anchor"),
            self.vault_hex,
            self.vault_hex
        );
        let fields = [
            ("TUTELA_ANCHOR", head.to_string()),
            ("TUTELA_VAULT", self.vault_hex.clone()),
        ];
        self.emit(85, &msg, &fields);
    }

    /// Whether a periodic anchor is due.
    pub fn anchor_due(&self) -> bool {
        self.mode
            .anchor_every
            .is_some_and(|every| self.last_anchor.elapsed() >= every)
    }
}

/// The anchors of vault `vault_id` in a system log export (a journal export, `journalctl -o
/// cat`, or a syslog file): every `[tutela-anchor@32473 vault="..." anchor="..."]` element.
pub fn anchors_in(text: &str, vault_id: &Id) -> Vec<Anchor> {
    let vault_hex: String = vault_id.iter().map(|b| format!("{b:02x}")).collect();
    let mut out = Vec::new();
    for part in text.split(&format!("[{SD_ANCHOR} ")).skip(1) {
        let field = |k: &str| {
            part.split(&format!("{k}=\""))
                .nth(1)
                .and_then(|v| v.split('"').next())
        };
        if field("vault") != Some(vault_hex.as_str()) {
            continue;
        }
        if let Some(a) = field("anchor").and_then(|a| Anchor::parse(a).ok()) {
            if !out.contains(&a) {
                out.push(a);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_rfc5424_with_escaped_structured_data_and_hashed_paths() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("log");
        let server = UnixDatagram::bind(&sock).unwrap();
        let mode = Mode {
            records: true,
            paths: false,
            anchor_every: Some(Duration::from_secs(60)),
        };
        let mut f = Forward::new(
            sock.clone(),
            false,
            &[3; 16],
            Some(&Key32::from_bytes([2; 32])),
            mode,
        );
        let mut r = Record::by("open", "/clients/acme/x\"]\nforged.txt", 1000, 7);
        r.user = "alice".into();
        r.result = "denied".into();
        f.record(&r, 41, "r-0011223344556677");
        let mut buf = vec![0u8; 4096];
        let n = server.recv(&mut buf).unwrap();
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(msg.starts_with("<84>1 "), "{msg}");
        assert!(msg.contains(" tutela "), "{msg}");
        assert!(
            msg.contains("[tutela@32473 vault=\"03030303030303030303030303030303\""),
            "{msg}"
        );
        assert!(
            msg.contains("seq=\"41\" op=\"open\" result=\"denied\" uid=\"1000\" user=\"alice\""),
            "{msg}"
        );
        assert!(!msg.contains("acme"), "a path went out in the clear: {msg}");
        assert!(!msg.contains('\n'));
        assert!(msg.contains(&format!("path_hash=\"{}\"", f.path_hash(&r.path).unwrap())));
        // With paths: escaped so the structured data cannot be closed early.
        f.mode.paths = true;
        f.record(&r, 42, "r-0011223344556677");
        let n = server.recv(&mut buf).unwrap();
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(
            msg.contains(r#"path="/clients/acme/x\"\]\\nforged.txt""#),
            "{msg}"
        );
        // Anchors: sent once per head, and found again in an export.
        let a = Anchor::parse("r-0011223344556677/41:00112233445566778899aabbccddeeff").unwrap();
        f.anchor(a, "seal");
        f.anchor(a, "periodic");
        let n = server.recv(&mut buf).unwrap();
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        server.set_nonblocking(true).unwrap();
        assert!(
            server.recv(&mut buf).is_err(),
            "the same head was sent twice"
        );
        let export = format!("Dec 07 host tutela[1]: {msg}\nother line\n");
        assert_eq!(anchors_in(&export, &[3; 16]), vec![a]);
        assert!(anchors_in(&export, &[4; 16]).is_empty());
    }

    /// The journal's form: native fields, SYSLOG_IDENTIFIER=tutela, the structured text as
    /// MESSAGE (what `journalctl -t tutela -o cat` prints, and `--anchors-from` reads).
    #[test]
    fn the_journal_gets_native_fields() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("journal");
        let server = UnixDatagram::bind(&sock).unwrap();
        let mode = Mode {
            records: true,
            paths: false,
            anchor_every: Some(Duration::from_secs(60)),
        };
        let mut f = Forward::new(
            sock,
            true,
            &[3; 16],
            Some(&Key32::from_bytes([2; 32])),
            mode,
        );
        let mut r = Record::by("create", "/memo.txt", 1000, 7);
        r.user = "alice".into();
        f.record(&r, 5, "r-0011223344556677");
        let mut buf = vec![0u8; 4096];
        let n = server.recv(&mut buf).unwrap();
        let e = String::from_utf8_lossy(&buf[..n]).into_owned();
        for want in [
            "SYSLOG_IDENTIFIER=tutela\n",
            "PRIORITY=5\n",
            "TUTELA_OP=create\n",
            "TUTELA_USER=alice\n",
            "MESSAGE=[tutela@32473 ",
        ] {
            assert!(e.contains(want), "{want} not in {e}");
        }
        assert!(!e.contains("memo"), "{e}");
        let a = Anchor::parse("r-0011223344556677/5:00112233445566778899aabbccddeeff").unwrap();
        f.anchor(a, "unmount");
        let n = server.recv(&mut buf).unwrap();
        let e = String::from_utf8_lossy(&buf[..n]).into_owned();
        let cat: String = e
            .lines()
            .filter_map(|l| l.strip_prefix("MESSAGE="))
            .collect();
        assert_eq!(anchors_in(&cat, &[3; 16]), vec![a], "{e}");
    }

    #[test]
    fn a_missing_or_full_log_never_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("log");
        let mode = Mode {
            records: true,
            paths: false,
            anchor_every: None,
        };
        let mut f = Forward::new(
            sock.clone(),
            false,
            &[3; 16],
            Some(&Key32::from_bytes([2; 32])),
            mode,
        );
        let r = Record::by("open", "/x", 0, 1);
        let t = Instant::now();
        for i in 0..10_000 {
            f.record(&r, i, "-");
        }
        // A log that never reads: its queue fills, the rest is dropped, nothing waits.
        let _server = UnixDatagram::bind(&sock).unwrap();
        f.last_try = None;
        for i in 0..100_000 {
            f.record(&r, i, "-");
        }
        assert!(t.elapsed() < Duration::from_secs(20));
        assert!(f.dropped > 10_000, "{}", f.dropped);
    }
}
