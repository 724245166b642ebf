//! The daemon's side of the control channel: a listening socket, one thread per caller,
//! the caller's credentials and proof of the vault's keys checked before anything runs.

use super::{answer_mac, verify_request, Hello, Line, Request, Signed, MAX_LINE, VERSION};
use crate::crypto::secret::Key32;
use crate::error::{Error, Result};
use crate::sys;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Who is on the other end of the socket (from the kernel, not from what they say).
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
}

/// What the daemon does with requests.
pub trait Handler: Send + Sync {
    /// Runs an authenticated request; returns a message and details. `progress` sends a
    /// line to the caller (it may have gone: progress is best effort, the work goes on).
    fn run(
        &self,
        who: Caller,
        req: Request,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(String, serde_json::Value)>;
    /// Records a refused caller (audit).
    fn refused(&self, who: Caller, why: &str);
}

/// Gives the control key in force (a live `rekey --all` replaces it).
pub type KeySource = Arc<dyn Fn() -> Key32 + Send + Sync>;

/// The listening socket; removed when dropped (the daemon ends).
pub struct Listening {
    path: PathBuf,
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// How long a caller may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts listening at `path` (in the daemon's private runtime directory).
pub fn listen(path: PathBuf, key: KeySource, handler: Arc<dyn Handler>) -> Result<Listening> {
    let dir = path.parent().ok_or(Error::Invalid)?;
    let owner = sys::private_dir(dir)?;
    if owner != sys::geteuid() {
        return Err(Error::UnsafeFile(format!(
            "{} belongs to uid {owner}, not to the daemon: no control channel",
            dir.display()
        )));
    }
    // A socket left by a daemon that died (the vault is mounted once at a time).
    if let Ok(md) = std::fs::symlink_metadata(&path) {
        use std::os::unix::fs::FileTypeExt;
        if md.file_type().is_socket() {
            let _ = std::fs::remove_file(&path);
        }
    }
    let listener = UnixListener::bind(&path)?;
    sys::chmod_path(&path, 0o600)?;
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(stream) = conn else { continue };
                let (key, handler) = (key.clone(), handler.clone());
                let _ = std::thread::Builder::new()
                    .name("control-req".into())
                    .spawn(move || {
                        // The key of this session is the one in force when it began.
                        if let Err(e) = session(stream, &key(), handler.as_ref()) {
                            log::info!("control channel: {e}");
                        }
                    });
            }
        })?;
    Ok(Listening { path })
}

fn send(s: &mut UnixStream, line: &impl serde::Serialize) -> Result<()> {
    let mut text = serde_json::to_string(line).map_err(|e| Error::Io(e.into()))?;
    text.push('\n');
    s.write_all(text.as_bytes())?;
    Ok(())
}

fn fail(s: &mut UnixStream, e: &Error) -> Result<()> {
    send(
        s,
        &Line::Failed {
            code: e.exit_code(),
            message: e.to_string(),
        },
    )
}

fn session(mut s: UnixStream, key: &Key32, handler: &dyn Handler) -> Result<()> {
    let (uid, gid, pid) = sys::peer_cred(&s)?;
    let who = Caller { uid, gid, pid };
    if uid != 0 && uid != sys::geteuid() {
        let why = format!("uid {uid} is neither root nor the daemon's user");
        handler.refused(who, &why);
        return fail(&mut s, &Error::ControlRefused(format!("refused: {why}")));
    }
    let mut challenge = [0u8; 32];
    crate::crypto::random_bytes(&mut challenge)?;
    send(
        &mut s,
        &Hello {
            tutela_control: VERSION,
            challenge: super::hex(&challenge),
        },
    )?;
    s.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new((&s).take(MAX_LINE as u64)).read_line(&mut line)?;
    let signed: Signed = match serde_json::from_str(line.trim_end()) {
        Ok(x) => x,
        Err(_) => {
            handler.refused(who, "malformed request");
            return fail(&mut s, &Error::Usage("malformed control request".into()));
        }
    };
    if !verify_request(key, &challenge, &signed.request, &signed.mac) {
        handler.refused(who, "the request is not signed with this vault's keys");
        return fail(
            &mut s,
            &Error::ControlRefused(
                "refused: that passphrase opens another vault, or an older key of this one".into(),
            ),
        );
    }
    let req: Request = match serde_json::from_str(&signed.request) {
        Ok(r) => r,
        Err(e) => {
            handler.refused(who, "unknown request");
            return fail(
                &mut s,
                &Error::Usage(format!(
                    "the mount daemon does not know this request ({e}): is it an older tutela?"
                )),
            );
        }
    };
    s.set_read_timeout(None)?;
    let mut out = s.try_clone()?;
    let mut gone = false;
    let mut progress = |text: &str| {
        if !gone && send(&mut out, &Line::Progress(text.to_string())).is_err() {
            gone = true;
        }
    };
    match handler.run(who, req, &mut progress) {
        Ok((message, detail)) => {
            let detail_text = detail.to_string();
            let mac = answer_mac(key, &challenge, &message, &detail_text)?;
            send(
                &mut s,
                &Line::Done {
                    message,
                    detail,
                    mac,
                },
            )
        }
        Err(e) => fail(&mut s, &e),
    }
}
