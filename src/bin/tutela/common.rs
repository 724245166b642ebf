//! What several commands share: opening a vault, recording an offline change in the audit
//! log, asking a live mount's daemon, new passphrases, confirmations.

use crate::cli::PassArgs;
use std::path::Path;
use std::time::Duration;
use tutela::audit::{self, Record};
use tutela::crypto::secret::Passphrase;
use tutela::error::{Error, Result};
use tutela::text::escape;
use tutela::vault::device_slots::{choose, Ask, Choice, DeviceAccess};
use tutela::vault::passphrase::{self, Source};
use tutela::vault::{Unlock, Vault};

pub fn unlock(vault: &Path, pass: &PassArgs) -> Result<Vault> {
    let how = how(vault, pass)?;
    tutela::offline::open_vault(vault, &how, pass.keystore.as_deref()).inspect(show_sync_notes)
}

/// Where the key slots' devices are (`--tpm2-tcti`, `--fido2-device`).
pub fn access(pass: &PassArgs) -> DeviceAccess {
    DeviceAccess {
        tcti: pass.tpm2_tcti.clone(),
        fido2_device: pass.fido2_device.clone(),
    }
}

/// Asks a person on the terminal (or reads the files the command line names), the
/// passphrase at most once.
pub struct CliAsk {
    src: Source,
    pin_file: Option<std::path::PathBuf>,
    pass: Option<Passphrase>,
}

impl CliAsk {
    pub fn new(pass: &PassArgs) -> CliAsk {
        CliAsk {
            src: source(pass),
            pin_file: pass.pin_file.clone(),
            pass: None,
        }
    }
}

impl Ask for CliAsk {
    fn passphrase(&mut self) -> Result<Passphrase> {
        if self.pass.is_none() {
            self.pass = Some(passphrase::existing(&self.src)?);
        }
        let p = self
            .pass
            .as_ref()
            .map(|p| p.as_bytes().to_vec())
            .unwrap_or_default();
        Ok(Passphrase::new(p))
    }
    fn pin(&mut self, label: &str) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let p = passphrase::pin(
            self.pin_file.as_deref(),
            &format!("TPM PIN for key slot '{}': ", escape(label)),
        )?;
        Ok(zeroize::Zeroizing::new(p.as_bytes().to_vec()))
    }
}

/// How to open the vault: the slot `--slot` names, else TPM slots that need nobody, else the
/// passphrase (device_slots::choose). Says on stderr which device slots failed on the way.
pub fn how(vault: &Path, pass: &PassArgs) -> Result<Unlock> {
    let (config, _) = Vault::read_config(vault)?;
    let access = access(pass);
    let choice = Choice {
        slot: pass.slot.as_deref(),
        passphrase_given: pass.passfile.is_some() || pass.extpass.is_some(),
        access: &access,
    };
    choose(&config, &choice, &mut CliAsk::new(pass), &mut |n| {
        eprintln!("tutela: {n}")
    })
}

/// Says what opening the vault did about a sync tool's copies of its config.
pub fn show_sync_notes(v: &Vault) {
    for n in &v.sync_notes {
        eprintln!("tutela: sync conflict: {n}");
    }
}

pub fn offline_record(v: &Vault, op: &str, detail: Option<String>) {
    offline_record_result(v, op, "ok", detail);
}

/// `offline_record` with another result (`started`, for a change recorded before it is made).
pub fn offline_record_result(v: &Vault, op: &str, result: &str, detail: Option<String>) {
    let mut r = Record::now(op, "/");
    r.result = result.into();
    r.user = tutela::sys::user_name(r.uid).unwrap_or_default();
    r.detail = detail;
    // While the vault is mounted the daemon holds the log: the record goes through it.
    let e = match audit::append_offline(&v.dir, v.audit_keys(), std::slice::from_ref(&r)) {
        Ok(()) => return,
        Err(Error::Busy(busy)) => match live_daemon(v) {
            Ok(Some(d)) => {
                let req = tutela::daemon::control::Request::Record {
                    what: r.op.clone(),
                    client: None,
                    detail: match (r.result.as_str(), r.detail) {
                        ("ok", d) => d.unwrap_or_default(),
                        (res, d) => format!("({res}) {}", d.unwrap_or_default()),
                    },
                };
                match tutela::daemon::control::client::call(d, &v.control_key(), &req, &mut |_| {})
                {
                    Ok(_) => return,
                    Err(e) => e,
                }
            }
            Ok(None) => Error::Busy(busy),
            Err(e) => e,
        },
        Err(e) => e,
    };
    eprintln!("tutela: warning: could not write the audit record: {e}");
}

/// The control channel of the daemon serving `v`, if the vault is mounted. A mounted vault
/// whose daemon cannot be reached is an error: offline work would race the daemon.
pub fn live_daemon(v: &Vault) -> Result<Option<std::os::unix::net::UnixStream>> {
    let Some(m) = tutela::daemon::mount::mount_of(&v.dir) else {
        return Ok(None);
    };
    // A mount of one client's folder (`mount --client`) holds no vault keys and takes no
    // client work: say so, not that its daemon is out of reach.
    let canon = std::fs::canonicalize(&v.dir).unwrap_or_else(|_| v.dir.clone());
    let scoped = tutela::daemon::status::live().into_iter().find_map(|d| {
        let same = std::fs::canonicalize(&d.vault).is_ok_and(|c| c == canon);
        same.then_some(d.client).flatten()
    });
    if let Some(client) = scoped {
        return Err(Error::Busy(format!(
            "the vault is mounted at {} as client '{}' alone (mount --client), which takes no \
             vault-wide work: unmount it first (tutela unmount {})",
            m.mountpoint.display(),
            escape(&client),
            m.mountpoint.display()
        )));
    }
    match tutela::daemon::control::client::connect(&v.config.vault_id) {
        Some(s) => Ok(Some(s)),
        None => Err(Error::Busy(format!(
            "the vault is mounted at {}, but its daemon's control channel cannot be reached \
             from this user (only root and the user who mounted it can reach it; a daemon \
             started by an older tutela has none): run the command as one of them, or \
             unmount first",
            m.mountpoint.display()
        ))),
    }
}

/// Passes `req` to the mount daemon and prints its answer.
pub fn remote(
    stream: std::os::unix::net::UnixStream,
    v: &Vault,
    req: &tutela::daemon::control::Request,
    json: bool,
) -> Result<()> {
    remote_with(stream, &v.control_key(), req, json)
}

pub fn remote_with(
    stream: std::os::unix::net::UnixStream,
    key: &tutela::crypto::secret::Key32,
    req: &tutela::daemon::control::Request,
    json: bool,
) -> Result<()> {
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} (on the live mount)")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let res = tutela::daemon::control::client::call(stream, key, req, &mut |p| {
        bar.set_message(escape(p).into_owned())
    });
    bar.finish_and_clear();
    let (message, detail) = res?;
    if json {
        println!("{detail}");
    } else {
        for line in message.lines() {
            println!("{}", escape(line));
        }
    }
    Ok(())
}

/// A new passphrase (from FILE, or asked twice), judged for strength (`strict`: refused when
/// weak).
pub fn new_passphrase(
    file: Option<&Path>,
    strict: bool,
) -> Result<tutela::crypto::secret::Passphrase> {
    let p = match file {
        Some(f) => passphrase::from_file(f, "new passphrase"),
        None => passphrase::new(&Source::default()),
    }?;
    passphrase::check_strength(&p, strict)?;
    Ok(p)
}

/// Asks on the terminal for `answer` (typed back) before something that cannot be undone;
/// without a terminal, refuses with `refusal` (scripts pass --yes instead).
pub fn confirm(refusal: &str, prompt: &str, answer: &str) -> Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(refusal.into()));
    }
    eprint!("{prompt}\nType '{answer}' to confirm: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if line.trim() != answer {
        return Err(Error::Usage("not confirmed: nothing was changed".into()));
    }
    Ok(())
}

pub fn source(p: &PassArgs) -> Source {
    Source {
        passfile: p.passfile.clone(),
        extpass: p.extpass.clone(),
    }
}

pub fn warn_test_kdf(v: &Vault) {
    if v.uses_test_kdf() {
        eprintln!("tutela: warning: this vault uses the INSECURE test-only KDF settings; do not keep real data in it");
    }
}
