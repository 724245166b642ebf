//! Where passphrases come from: the terminal, `--passfile FILE` (first line) or `--extpass CMD`
//! (the command's standard output). A passphrase never goes on a command line or into the
//! environment of a child process, and is never logged.

use crate::crypto::secret::Passphrase;
use crate::error::{Error, Result};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

#[derive(Debug, Clone, Default)]
pub struct Source {
    pub passfile: Option<PathBuf>,
    pub extpass: Option<String>,
}

/// Passphrase files and --extpass output are read up to this size (the first line counts).
const MAX_SECRET_FILE: usize = 64 * 1024;

fn first_line(bytes: &[u8]) -> Vec<u8> {
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or(&[]);
    line.strip_suffix(b"\r").unwrap_or(line).to_vec()
}

pub fn from_file(path: &Path, what: &str) -> Result<Passphrase> {
    let meta = std::fs::metadata(path).map_err(|e| {
        Error::Passphrase(format!("cannot read {what} file {}: {e}", path.display()))
    })?;
    if meta.permissions().mode() & 0o077 != 0 {
        eprintln!(
            "tutela: warning: {what} file {} is readable by other users: chmod 600 it",
            path.display()
        );
    }
    // Sized up front: a growing buffer would leave copies of the passphrase in freed memory.
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_SECRET_FILE + 1));
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SECRET_FILE as u64).read_to_end(&mut buf))
        .map_err(|e| {
            Error::Passphrase(format!("cannot read {what} file {}: {e}", path.display()))
        })?;
    let p = Passphrase::new(first_line(&buf));
    if p.is_empty() {
        return Err(Error::Passphrase(format!(
            "{what} file {} is empty (the first line is the {what})",
            path.display()
        )));
    }
    Ok(p)
}

fn from_command(cmd: &str) -> Result<Passphrase> {
    let mut child = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::inherit())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .map_err(|e| Error::Passphrase(format!("cannot run --extpass command: {e}")))?;
    // Sized up front, as in from_file.
    let mut stdout = Zeroizing::new(Vec::with_capacity(MAX_SECRET_FILE + 1));
    if let Some(out) = child.stdout.take() {
        out.take(MAX_SECRET_FILE as u64)
            .read_to_end(&mut stdout)
            .map_err(|e| Error::Passphrase(format!("cannot read --extpass output: {e}")))?;
    }
    let status = child
        .wait()
        .map_err(|e| Error::Passphrase(format!("--extpass command: {e}")))?;
    if !status.success() {
        return Err(Error::Passphrase(format!(
            "--extpass command failed ({status})"
        )));
    }
    let p = Passphrase::new(first_line(&stdout));
    if p.is_empty() {
        return Err(Error::Passphrase(
            "--extpass command printed an empty passphrase".into(),
        ));
    }
    Ok(p)
}

fn prompt(text: &str) -> Result<Passphrase> {
    let s = Zeroizing::new(rpassword::prompt_password(text).map_err(|_| {
        Error::Passphrase(
            "no terminal to ask for the passphrase: use --passfile FILE or --extpass CMD".into(),
        )
    })?);
    if s.is_empty() {
        return Err(Error::Passphrase("empty passphrase".into()));
    }
    Ok(Passphrase::new(s.as_bytes().to_vec()))
}

/// A TPM PIN: from `file` (its first line), else asked on the terminal.
pub fn pin(file: Option<&Path>, text: &str) -> Result<Passphrase> {
    if let Some(f) = file {
        return from_file(f, "PIN");
    }
    let s = Zeroizing::new(rpassword::prompt_password(text).map_err(|_| {
        Error::Passphrase("no terminal to ask for the TPM PIN: use --pin-file FILE".into())
    })?);
    if s.is_empty() {
        return Err(Error::Passphrase("empty PIN".into()));
    }
    Ok(Passphrase::new(s.as_bytes().to_vec()))
}

/// The passphrase of an existing vault.
pub fn existing(src: &Source) -> Result<Passphrase> {
    match (&src.passfile, &src.extpass) {
        (Some(f), _) => from_file(f, "passphrase"),
        (None, Some(c)) => from_command(c),
        (None, None) => prompt("Passphrase: "),
    }
}

/// A new passphrase: asked twice on a terminal.
pub fn new(src: &Source) -> Result<Passphrase> {
    match (&src.passfile, &src.extpass) {
        (None, None) => {
            let a = prompt("New passphrase: ")?;
            let b = prompt("Repeat passphrase: ")?;
            if a.as_bytes() != b.as_bytes() {
                return Err(Error::Passphrase(
                    "the passphrases do not match; nothing was changed".into(),
                ));
            }
            Ok(a)
        }
        _ => existing(src),
    }
}

/// Below this zxcvbn score (0-4) a new passphrase is called weak: 3 means "safely
/// unguessable" (about 10^10 guesses), with Argon2id on top.
const MIN_SCORE: u8 = 3;

/// Judges a new passphrase with zxcvbn: a weak one gets a warning on stderr, or with `strict`
/// is refused (exit 19, nothing changed).
pub fn check_strength(p: &Passphrase, strict: bool) -> Result<()> {
    // zxcvbn reads text; the first 128 characters are plenty to judge and keep it fast. Its
    // own copies cannot be zeroed; ours is.
    let text: Zeroizing<String> = Zeroizing::new(
        String::from_utf8_lossy(p.as_bytes())
            .chars()
            .take(128)
            .collect(),
    );
    let e = zxcvbn::zxcvbn(&text, &["tutela"]);
    let score = u8::from(e.score());
    if score >= MIN_SCORE {
        return Ok(());
    }
    let advice = e
        .feedback()
        .map(|f| {
            let mut parts: Vec<String> = f.warning().map(|w| w.to_string()).into_iter().collect();
            parts.extend(f.suggestions().iter().map(|s| s.to_string()));
            parts.join(" ")
        })
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "Use several random words.".into());
    let msg = format!("this passphrase is weak (strength {score} of 4): {advice}");
    if strict {
        return Err(Error::Passphrase(format!(
            "{msg} Refused (--strict); nothing was changed"
        )));
    }
    eprintln!("tutela: warning: {msg} (--strict refuses such a passphrase)");
    Ok(())
}

/// A recovery key from a file or the terminal.
pub fn recovery_key(file: Option<&Path>) -> Result<Zeroizing<String>> {
    match file {
        Some(f) => {
            let p = from_file(f, "recovery key")?;
            Ok(Zeroizing::new(
                String::from_utf8_lossy(p.as_bytes()).into_owned(),
            ))
        }
        None => {
            let s = rpassword::prompt_password("Recovery key: ").map_err(|_| {
                Error::Passphrase(
                    "no terminal to ask for the recovery key: give it as a file".into(),
                )
            })?;
            Ok(Zeroizing::new(s))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_passphrases_are_refused_only_when_strict() {
        let weak = Passphrase::new(b"abc".to_vec());
        assert!(check_strength(&weak, false).is_ok());
        assert!(matches!(
            check_strength(&weak, true),
            Err(Error::Passphrase(_))
        ));
        let strong = Passphrase::new(b"correct horse battery staple orbit".to_vec());
        assert!(check_strength(&strong, true).is_ok());
    }

    #[test]
    fn passfile_first_line_and_empty_file() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("p");
        std::fs::write(&f, b"secret one\r\nsecond line\n").unwrap();
        assert_eq!(
            from_file(&f, "passphrase").unwrap().as_bytes(),
            b"secret one"
        );
        std::fs::write(&f, b"\n").unwrap();
        assert!(matches!(
            from_file(&f, "passphrase"),
            Err(Error::Passphrase(_))
        ));
        assert!(from_file(&t.path().join("missing"), "passphrase").is_err());
    }

    #[test]
    fn extpass_reads_stdout() {
        let src = Source {
            passfile: None,
            extpass: Some("printf 'from-cmd\\n'".into()),
        };
        assert_eq!(existing(&src).unwrap().as_bytes(), b"from-cmd");
        let bad = Source {
            passfile: None,
            extpass: Some("exit 3".into()),
        };
        assert!(existing(&bad).is_err());
    }
}
