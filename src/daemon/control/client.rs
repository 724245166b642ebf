//! The command's side of the control channel: find the daemon serving a vault, prove the
//! keys, pass the request and relay progress.

use super::{request_mac, socket_name, verify_answer, Hello, Line, Request, Signed, MAX_LINE};
use crate::crypto::secret::Key32;
use crate::crypto::Id;
use crate::error::{Error, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// Sockets that may belong to the daemon of vault `id`: this user's own runtime directory;
/// for root also every user's (root may act on any daemon). A socket counts only where it
/// and its directory belong to one user and the directory is closed to others.
fn candidates(id: &Id) -> Vec<PathBuf> {
    let name = socket_name(id);
    let mut dirs = vec![crate::daemon::status::dir()];
    if crate::sys::geteuid() == 0 {
        dirs.push(PathBuf::from("/run/tutela"));
        for parent in ["/run/user", "/tmp"] {
            let Ok(rd) = std::fs::read_dir(parent) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                if parent == "/run/user" {
                    dirs.push(p.join("tutela"));
                } else if e.file_name().to_string_lossy().starts_with("tutela-") {
                    dirs.push(p);
                }
            }
        }
    }
    dirs.dedup();
    dirs.into_iter()
        .map(|d| d.join(&name))
        .filter(|p| trusted(p))
        .collect()
}

fn trusted(sock: &Path) -> bool {
    let (Ok(s), Some(Ok(d))) = (
        std::fs::symlink_metadata(sock),
        sock.parent().map(std::fs::symlink_metadata),
    ) else {
        return false;
    };
    use std::os::unix::fs::FileTypeExt;
    s.file_type().is_socket() && d.is_dir() && s.uid() == d.uid() && d.mode() & 0o077 == 0
}

/// Connects to the daemon serving vault `id`, if one listens.
pub fn connect(id: &Id) -> Option<UnixStream> {
    candidates(id)
        .into_iter()
        .find_map(|p| UnixStream::connect(p).ok())
}

fn read_line(r: &mut impl BufRead) -> Result<String> {
    let mut line = String::new();
    r.take(MAX_LINE as u64 * 16).read_line(&mut line)?;
    if line.is_empty() {
        return Err(Error::Daemon {
            code: crate::error::exit::GENERIC,
            msg: "the mount daemon closed the control channel without an answer (did it stop?)"
                .into(),
        });
    }
    Ok(line)
}

fn unhex(s: &str) -> Result<Vec<u8>> {
    super::unhex(s).ok_or_else(|| Error::Usage("the daemon sent a malformed challenge".into()))
}

/// Sends `req` and waits for its answer, handing progress lines to `progress`.
pub fn call(
    stream: UnixStream,
    key: &Key32,
    req: &Request,
    progress: &mut dyn FnMut(&str),
) -> Result<(String, serde_json::Value)> {
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    let first = read_line(&mut r)?;
    let hello: Hello = match serde_json::from_str(first.trim_end()) {
        Ok(h) => h,
        Err(_) => return Err(refusal(&first)),
    };
    let challenge = unhex(&hello.challenge)?;
    let request = serde_json::to_string(req).map_err(|e| Error::Io(e.into()))?;
    let mac = request_mac(key, &challenge, &request)?;
    let mut line =
        serde_json::to_string(&Signed { request, mac }).map_err(|e| Error::Io(e.into()))?;
    line.push('\n');
    w.write_all(line.as_bytes())?;
    loop {
        let text = read_line(&mut r)?;
        match serde_json::from_str::<Line>(text.trim_end()) {
            Ok(Line::Progress(p)) => progress(&p),
            Ok(Line::Done {
                message,
                detail,
                mac,
            }) => {
                if !verify_answer(key, &challenge, &message, &detail.to_string(), &mac) {
                    return Err(Error::ControlRefused(
                        "the answer on the control socket is not signed with this vault's keys: \
                         something other than its mount daemon is listening there"
                            .into(),
                    ));
                }
                return Ok((message, detail));
            }
            Ok(Line::Failed { code, message }) => return Err(Error::Daemon { code, msg: message }),
            Err(_) => {
                return Err(Error::Daemon {
                    code: crate::error::exit::GENERIC,
                    msg: "the mount daemon sent something this tutela does not understand".into(),
                })
            }
        }
    }
}

/// A refusal sent instead of the greeting.
fn refusal(first: &str) -> Error {
    match serde_json::from_str::<Line>(first.trim_end()) {
        Ok(Line::Failed { code, message }) => Error::Daemon { code, msg: message },
        _ => Error::Daemon {
            code: crate::error::exit::GENERIC,
            msg: "the control socket did not greet as a tutela daemon".into(),
        },
    }
}
