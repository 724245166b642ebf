//! FIDO2 security keys (YubiKey, SoloKey, Nitrokey) through the `hmac-secret` extension: the
//! token keeps a per-credential random key and returns HMAC-SHA256(that key, salt) after the
//! user touches it (and gives the PIN, when the slot asks for user verification). The token
//! sits behind one narrow trait, `Token`: the real one drives libfido2's own tools
//! (`fido2-token`, `fido2-cred`, `fido2-assert`, from Debian's `fido2-tools`, as gocryptfs
//! does), which prompt for the PIN on the terminal themselves; the test suite's software
//! token (`test-hooks` builds) keeps the same contract, since no software authenticator with
//! hmac-secret runs on a machine without USB.

use crate::error::{DeviceFail, Error, Result};
use base64::Engine as _;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// How long a touch may take before the unlock gives up (`TUTELA_FIDO2_TIMEOUT`, seconds).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What tutela needs from a security key.
pub trait Token {
    /// Makes a new credential with the hmac-secret extension for `rp_id`; needs a touch (and
    /// the PIN when `pin`). Returns the credential id.
    fn enroll(&self, rp_id: &str, user: &str, pin: bool) -> Result<Vec<u8>>;
    /// The token's HMAC of `salt` under credential `cred_id`; needs a touch (and the PIN
    /// when `pin`).
    fn hmac_secret(
        &self,
        rp_id: &str,
        cred_id: &[u8],
        salt: &[u8; 32],
        pin: bool,
    ) -> Result<Zeroizing<[u8; 32]>>;
}

/// The token at `device` (a hidraw path as `fido2-token -L` prints it), or the first one
/// plugged in.
pub fn open(device: Option<&str>) -> Result<Box<dyn Token>> {
    #[cfg(feature = "test-hooks")]
    if let Some(dir) = std::env::var_os(soft::ENV) {
        return Ok(Box::new(soft::SoftToken::new(dir.into())?));
    }
    let device = match device {
        Some(d) => d.to_string(),
        None => first_device()?,
    };
    Ok(Box::new(ToolToken { device }))
}

pub fn timeout() -> Duration {
    std::env::var("TUTELA_FIDO2_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs)
}

fn missing(why: String) -> Error {
    Error::Device(DeviceFail::Missing, why)
}

fn first_device() -> Result<String> {
    let out = run("fido2-token", &["-L"], b"", Duration::from_secs(10))?;
    let text = String::from_utf8_lossy(&out);
    text.lines()
        .find_map(|l| l.split_once(": ").map(|(p, _)| p.trim().to_string()))
        .filter(|p| !p.is_empty())
        .ok_or_else(|| missing("no FIDO2 security key is plugged in".into()))
}

/// A token driven through libfido2's command-line tools.
struct ToolToken {
    device: String,
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn unb64(s: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|_| Error::Device(DeviceFail::Failed, "fido2 tool printed bad base64".into()))
}

fn check_line(s: &str) -> Result<()> {
    if s.contains(['\n', '\0']) {
        return Err(Error::Usage(
            "a FIDO2 relying party or user name cannot hold a newline".into(),
        ));
    }
    Ok(())
}

impl Token for ToolToken {
    fn enroll(&self, rp_id: &str, user: &str, pin: bool) -> Result<Vec<u8>> {
        check_line(rp_id)?;
        check_line(user)?;
        let mut cdh = [0u8; 32];
        crate::crypto::random_bytes(&mut cdh)?;
        let mut uid = [0u8; 16];
        crate::crypto::random_bytes(&mut uid)?;
        let input = format!("{}\n{rp_id}\n{user}\n{}\n", b64(&cdh), b64(&uid));
        let mut args = vec!["-M", "-h"];
        if pin {
            args.push("-v");
        }
        args.push(&self.device);
        eprintln!(
            "tutela: touch the security key {} to enroll it",
            self.device
        );
        let out = run("fido2-cred", &args, input.as_bytes(), timeout())?;
        let text = String::from_utf8_lossy(&out);
        // client data hash, rp id, format, authenticator data, credential id, ...
        let line = text.lines().nth(4).ok_or_else(|| {
            Error::Device(
                DeviceFail::Failed,
                "fido2-cred printed no credential id".into(),
            )
        })?;
        unb64(line)
    }

    fn hmac_secret(
        &self,
        rp_id: &str,
        cred_id: &[u8],
        salt: &[u8; 32],
        pin: bool,
    ) -> Result<Zeroizing<[u8; 32]>> {
        check_line(rp_id)?;
        let mut cdh = [0u8; 32];
        crate::crypto::random_bytes(&mut cdh)?;
        let input = format!("{}\n{rp_id}\n{}\n{}\n", b64(&cdh), b64(cred_id), b64(salt));
        let mut args = vec!["-G", "-h", "-p"];
        if pin {
            args.push("-v");
        }
        args.push(&self.device);
        eprintln!("tutela: touch the security key {}", self.device);
        let out = Zeroizing::new(run("fido2-assert", &args, input.as_bytes(), timeout())?);
        let text = Zeroizing::new(String::from_utf8_lossy(&out).into_owned());
        // client data hash, rp id, authenticator data, signature, hmac secret
        let line = text.lines().nth(4).ok_or_else(|| {
            Error::Device(
                DeviceFail::Failed,
                "fido2-assert printed no hmac-secret: does the key support the extension?".into(),
            )
        })?;
        let secret = Zeroizing::new(unb64(line)?);
        to_secret(&secret)
    }
}

fn to_secret(b: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
    if b.len() != 32 {
        return Err(Error::Device(
            DeviceFail::Failed,
            "the security key's hmac-secret is not 32 bytes".into(),
        ));
    }
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(b);
    Ok(out)
}

/// Runs a fido2 tool with `input` on stdin, its stderr kept to classify failures; killed at
/// `limit` (a token nobody touches must not hang a boot).
fn run(tool: &str, args: &[&str], input: &[u8], limit: Duration) -> Result<Vec<u8>> {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            missing(format!(
                "cannot run {tool} ({e}): install libfido2's tools (apt-get install fido2-tools)"
            ))
        })?;
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(input);
    }
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait()? {
            Some(s) => break s,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Device(
                    DeviceFail::Timeout,
                    format!(
                        "the security key was not touched within {} s",
                        limit.as_secs()
                    ),
                ));
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let mut out = Vec::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_end(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    if status.success() {
        return Ok(out);
    }
    Err(classify(tool, &err))
}

/// libfido2 names its errors (`FIDO_ERR_...`) in the tools' messages.
fn classify(tool: &str, err: &str) -> Error {
    let has = |k: &[&str]| k.iter().any(|k| err.contains(k));
    let (why, msg) = if has(&["FIDO_ERR_PIN_INVALID", "FIDO_ERR_UV_INVALID"]) {
        (DeviceFail::WrongPin, "wrong security key PIN".to_string())
    } else if has(&[
        "FIDO_ERR_PIN_BLOCKED",
        "FIDO_ERR_PIN_AUTH_BLOCKED",
        "FIDO_ERR_UV_BLOCKED",
    ]) {
        (
            DeviceFail::Lockout,
            "the security key's PIN is blocked (too many wrong PINs): unplug and replug it, or reset it".to_string(),
        )
    } else if has(&["FIDO_ERR_NO_CREDENTIALS", "FIDO_ERR_INVALID_CREDENTIAL"]) {
        (
            DeviceFail::OtherDevice,
            "this security key is not the one the slot was made with".to_string(),
        )
    } else if has(&[
        "FIDO_ERR_ACTION_TIMEOUT",
        "FIDO_ERR_USER_ACTION_TIMEOUT",
        "FIDO_ERR_RX",
        "FIDO_ERR_TX",
    ]) {
        (
            DeviceFail::Timeout,
            "the security key was not touched in time, or was removed".to_string(),
        )
    } else if has(&["fido_dev_open", "FIDO_ERR_INTERNAL"]) && err.contains("open") {
        (
            DeviceFail::Missing,
            "the security key cannot be opened (unplugged? no access to its /dev/hidraw*?)"
                .to_string(),
        )
    } else {
        let first = err.lines().next().unwrap_or("failed");
        (
            DeviceFail::Failed,
            format!("{tool}: {}", crate::text::escape(first)),
        )
    };
    Error::Device(why, msg)
}

/// The test suite's software token: the same hmac-secret contract, its state in a directory
/// (`TUTELA_TEST_FIDO2=DIR`): `secret` (the token's own key, made on first use), `pin` (the
/// PIN it asks for, given in `TUTELA_TEST_FIDO2_PIN`), `retries`, and the files `absent`,
/// `no-touch` and `removed`, which make it behave as a token that is not plugged in, that
/// nobody touches, or that is pulled out mid-unlock.
#[cfg(feature = "test-hooks")]
pub mod soft {
    use super::*;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;
    use std::path::PathBuf;

    pub const ENV: &str = "TUTELA_TEST_FIDO2";
    pub const PIN_ENV: &str = "TUTELA_TEST_FIDO2_PIN";
    /// Wrong PINs before the token blocks it (real tokens: 8).
    const RETRIES: u32 = 3;

    pub struct SoftToken {
        dir: PathBuf,
        secret: [u8; 32],
    }

    impl SoftToken {
        pub fn new(dir: PathBuf) -> Result<SoftToken> {
            if dir.join("absent").exists() {
                return Err(missing("no FIDO2 security key is plugged in".into()));
            }
            let path = dir.join("secret");
            let secret = match std::fs::read(&path) {
                Ok(b) if b.len() == 32 => b,
                _ => {
                    let mut b = vec![0u8; 32];
                    crate::crypto::random_bytes(&mut b)?;
                    std::fs::write(&path, &b)?;
                    b
                }
            };
            let mut s = [0u8; 32];
            s.copy_from_slice(&secret);
            Ok(SoftToken { dir, secret: s })
        }

        fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
            let mut m = Hmac::<Sha256>::new_from_slice(&self.secret).expect("any key length");
            for p in parts {
                m.update(p);
            }
            m.finalize().into_bytes().into()
        }

        /// Touch and PIN, as a real token asks for them.
        fn user(&self, pin: bool) -> Result<()> {
            if self.dir.join("no-touch").exists() {
                std::thread::sleep(timeout());
                return Err(Error::Device(
                    DeviceFail::Timeout,
                    format!(
                        "the security key was not touched within {} s",
                        timeout().as_secs()
                    ),
                ));
            }
            if self.dir.join("removed").exists() {
                return Err(Error::Device(
                    DeviceFail::Timeout,
                    "the security key was not touched in time, or was removed".into(),
                ));
            }
            let Ok(want) = std::fs::read_to_string(self.dir.join("pin")) else {
                return Ok(());
            };
            if !pin {
                return Ok(());
            }
            let tries_at = self.dir.join("retries");
            let used: u32 = std::fs::read_to_string(&tries_at)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            if used >= RETRIES {
                return Err(Error::Device(
                    DeviceFail::Lockout,
                    "the security key's PIN is blocked (too many wrong PINs)".into(),
                ));
            }
            if std::env::var(PIN_ENV).ok().as_deref() != Some(want.trim()) {
                std::fs::write(&tries_at, (used + 1).to_string())?;
                return Err(Error::Device(
                    DeviceFail::WrongPin,
                    "wrong security key PIN".into(),
                ));
            }
            let _ = std::fs::remove_file(&tries_at);
            Ok(())
        }
    }

    impl Token for SoftToken {
        fn enroll(&self, rp_id: &str, _user: &str, pin: bool) -> Result<Vec<u8>> {
            self.user(pin)?;
            let mut nonce = [0u8; 16];
            crate::crypto::random_bytes(&mut nonce)?;
            let tag = self.mac(&[b"cred", rp_id.as_bytes(), &nonce]);
            Ok([&nonce[..], &tag[..16]].concat())
        }

        fn hmac_secret(
            &self,
            rp_id: &str,
            cred_id: &[u8],
            salt: &[u8; 32],
            pin: bool,
        ) -> Result<Zeroizing<[u8; 32]>> {
            self.user(pin)?;
            let ours = cred_id.len() == 32
                && self.mac(&[b"cred", rp_id.as_bytes(), &cred_id[..16]])[..16] == cred_id[16..];
            if !ours {
                return Err(Error::Device(
                    DeviceFail::OtherDevice,
                    "this security key is not the one the slot was made with".into(),
                ));
            }
            let cred_key = self.mac(&[b"cred-key", cred_id]);
            let mut m = Hmac::<Sha256>::new_from_slice(&cred_key).expect("any key length");
            m.update(salt);
            to_secret(&m.finalize().into_bytes())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(err: &str) -> DeviceFail {
        match classify("fido2-assert", err) {
            Error::Device(w, _) => w,
            _ => unreachable!(),
        }
    }

    /// libfido2's tools name their errors; each maps to its documented exit code.
    #[test]
    fn tool_errors_are_told_apart() {
        assert_eq!(
            why("fido2-assert: fido_dev_get_assert: FIDO_ERR_PIN_INVALID"),
            DeviceFail::WrongPin
        );
        assert_eq!(
            why("fido2-assert: fido_dev_get_assert: FIDO_ERR_PIN_BLOCKED"),
            DeviceFail::Lockout
        );
        assert_eq!(
            why("fido2-assert: fido_dev_get_assert: FIDO_ERR_NO_CREDENTIALS"),
            DeviceFail::OtherDevice
        );
        assert_eq!(
            why("fido2-assert: fido_dev_get_assert: FIDO_ERR_ACTION_TIMEOUT"),
            DeviceFail::Timeout
        );
        assert_eq!(
            why("fido2-assert: fido_dev_get_assert: FIDO_ERR_RX"),
            DeviceFail::Timeout
        );
        assert_eq!(
            why("fido2-assert: fido_dev_open /dev/hidraw9: FIDO_ERR_INTERNAL"),
            DeviceFail::Missing
        );
        assert_eq!(why("something \x1b[2J else"), DeviceFail::Failed);
    }
}
