//! Argument shapes only (clap derive). Behaviour lives in main.rs and the library.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "tutela", version, about = "Encrypted FUSE filesystem for client files", long_about = None)]
pub struct Cli {
    /// More log output (-v info, -vv debug). Logs never contain plaintext names or paths.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// How to get the passphrase of an existing vault (default: ask on the terminal).
#[derive(Debug, Args, Clone, Default)]
pub struct PassArgs {
    /// Read the passphrase from the first line of FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "extpass")]
    pub passfile: Option<PathBuf>,
    /// Run CMD (with /bin/sh) and use the first line it prints as the passphrase.
    #[arg(long, value_name = "CMD")]
    pub extpass: Option<String>,
    /// With init: keep the zone keys in this separate key store file instead of the vault.
    /// Otherwise: read the key store from PATH instead of where the vault recorded it.
    #[arg(long, value_name = "PATH")]
    pub keystore: Option<PathBuf>,
    /// Open the vault with this key slot only (a TPM slot at boot: no prompt at all).
    /// Without it, TPM slots that need nobody are tried first, then the passphrase.
    #[arg(long, value_name = "LABEL")]
    pub slot: Option<String>,
    /// Where the TPM is, as tpm2-tools take it (default: $TPM2TOOLS_TCTI, else
    /// device:/dev/tpmrm0), e.g. swtpm:host=127.0.0.1,port=2321.
    #[arg(long, value_name = "TCTI")]
    pub tpm2_tcti: Option<String>,
    /// The FIDO2 security key to use (a /dev/hidraw path, as fido2-token -L lists them;
    /// default: the first one plugged in).
    #[arg(long, value_name = "DEVICE")]
    pub fido2_device: Option<String>,
    /// Read a TPM slot's PIN from the first line of FILE instead of asking.
    #[arg(long, value_name = "FILE")]
    pub pin_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new vault in an empty or missing directory.
    Init {
        /// The vault: the directory that holds the encrypted files.
        vault: PathBuf,
        #[command(flatten)]
        pass: PassArgs,
        /// Label of the first passphrase slot (e.g. its owner's name).
        #[arg(long, default_value = "default")]
        label: String,
        /// Refuse a weak passphrase instead of warning about it.
        #[arg(long)]
        strict: bool,
    },
    /// Unlock a vault and mount its plaintext view.
    Mount {
        /// The vault: the directory that holds the encrypted files.
        vault: PathBuf,
        /// An empty directory to show the plaintext in.
        mountpoint: PathBuf,
        #[command(flatten)]
        pass: PassArgs,
        /// Unlock with the recovery key instead of a passphrase (read from FILE, or asked).
        #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "-", conflicts_with_all = ["passfile", "extpass"])]
        recovery_key: Option<PathBuf>,
        /// Stay in the foreground instead of going to the background once mounted.
        #[arg(short, long)]
        foreground: bool,
        /// Mount read-only.
        #[arg(long)]
        read_only: bool,
        /// Let other local users use the mount (modes and owners enforced as on a local disk;
        /// the vault directory is closed to them, so nobody goes around the mount).
        #[arg(long)]
        allow_other: bool,
        /// Unmount after this long without access (e.g. 15m, 1h30m, 2h).
        #[arg(long, value_name = "DURATION", value_parser = tutela::daemon::mount::parse_idle)]
        idle: Option<std::time::Duration>,
        /// Lock each client after this long without access to its folder (its key leaves
        /// memory; `tutela unlock` brings it back), e.g. 15m.
        #[arg(long, value_name = "DURATION", value_parser = tutela::daemon::mount::parse_idle)]
        client_idle: Option<std::time::Duration>,
        /// Mount one client's folder alone, holding only that client's keys (with a client
        /// key from `key add --client`, or a vault passphrase, of which only the client's
        /// keys are kept).
        #[arg(long, value_name = "NAME", conflicts_with = "client_idle")]
        client: Option<String>,
        /// Threads serving requests.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
        threads: u16,
        /// Write the daemon's log to FILE (in the background it has no terminal).
        #[arg(long, value_name = "FILE")]
        log_file: Option<PathBuf>,
        /// Send every audit record to the system log too (RFC 5424, structured data; paths
        /// as a keyed hash, in the clear with `--audit-syslog paths`), for rsyslog or
        /// journald to forward to a SIEM.
        #[arg(long, value_name = "paths", num_args = 0..=1, default_missing_value = "records", value_parser = ["records", "paths"])]
        audit_syslog: Option<String>,
        /// Send the audit log's head anchor to the system log this often (and at each
        /// segment seal and on unmount), for `audit verify --anchors-from`; `off` to stop.
        #[arg(long, value_name = "DURATION", default_value = "15m")]
        anchor_every: String,
        /// Kernel mount flags, comma-separated: noexec, exec, nosuid, nodev (always on),
        /// sync, async, dirsync, noatime, relatime, strictatime. suid and dev are refused.
        #[arg(short = 'o', long = "option", value_name = "FLAG[,FLAG]", value_delimiter = ',', value_parser = tutela::daemon::mount::parse_mount_flag)]
        options: Vec<tutela::daemon::mount::MountFlag>,
    },
    /// Flush and unmount a mounted vault.
    Unmount {
        /// Where the vault is mounted.
        mountpoint: PathBuf,
    },
    /// Read and authenticate everything in the vault without mounting; report problems.
    Fsck {
        /// The vault: the directory that holds the encrypted files.
        vault: PathBuf,
        #[command(flatten)]
        pass: PassArgs,
        /// Fix what needs no guessing (lost directory-ID copies, orphaned records, temp dirs).
        #[arg(long)]
        repair: bool,
        /// With --repair, what to do with a sync tool's conflict copies: keep both versions
        /// (the default: nothing is removed), or keep the newer of the two.
        #[arg(
            long,
            value_name = "both|newest",
            default_value = "both",
            requires = "repair"
        )]
        keep: tutela::offline::fsck::Keep,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a passphrase (the one given, or with --recovery-key the one named by --label).
    Passwd {
        /// The vault: the directory that holds the encrypted files.
        vault: PathBuf,
        #[command(flatten)]
        pass: PassArgs,
        /// Unlock with the recovery key (from FILE) when every passphrase is forgotten.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["passfile", "extpass"])]
        recovery_key: Option<PathBuf>,
        /// Which passphrase to change (default: the one used to unlock).
        #[arg(long)]
        label: Option<String>,
        /// Read the new passphrase from the first line of FILE instead of asking twice.
        #[arg(long, value_name = "FILE")]
        new_passfile: Option<PathBuf>,
        /// Refuse a weak new passphrase instead of warning about it.
        #[arg(long)]
        strict: bool,
    },
    /// Several passphrases on one vault: add, list, remove.
    Key {
        #[command(subcommand)]
        cmd: KeyCmd,
    },
    /// Lock one client on a live mount: its key leaves the mount daemon's memory and its
    /// folder answers "Required key not available" (ENOKEY) until `tutela unlock`; the
    /// other clients stay open.
    Lock {
        /// The mountpoint of the live mount (or its vault).
        target: PathBuf,
        /// The client to lock.
        client: String,
        /// Lock even while the client's files are open: their handles are revoked (reads and
        /// writes on them fail).
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        pass: PassArgs,
    },
    /// Unlock a client that `tutela lock` (or --client-idle) locked on a live mount.
    Unlock {
        /// The mountpoint of the live mount (or its vault).
        target: PathBuf,
        /// The client to unlock.
        client: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        pass: PassArgs,
    },
    /// List live tutela mounts: vault, mountpoint, read-only, policy, uptime.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell to write completions for.
        shell: clap_complete::Shell,
    },
    /// Write man pages (tutela.1 and one per subcommand) into DIR.
    Manpages {
        /// The directory to write the man pages to.
        dir: PathBuf,
    },
    /// Fresh keys after a suspected breach: one client's zone, or the whole vault (--all);
    /// re-encrypts the data, resumably, then destroys the old keys.
    Rekey {
        /// The vault: the directory that holds the encrypted files.
        vault: PathBuf,
        /// Rotate this client's zone key.
        #[arg(long, conflicts_with_all = ["all", "resume"], required_unless_present_any = ["all", "resume"])]
        client: Option<String>,
        /// New master key and new keys for every zone. Other passphrases are removed (they
        /// wrap the old master key) and a new recovery key is printed.
        #[arg(long, conflicts_with = "resume")]
        all: bool,
        /// Only finish a rekey that was interrupted.
        #[arg(long)]
        resume: bool,
        /// Do not ask before --all (for scripts): it removes every other passphrase and
        /// makes earlier audit anchors stop matching.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        pass: PassArgs,
    },
    /// Client zones: a client's folder with its own key.
    Client {
        #[command(subcommand)]
        cmd: ClientCmd,
    },
    /// Per-client access policies: check, store in the vault, show.
    Policy {
        #[command(subcommand)]
        cmd: PolicyCmd,
    },
    /// The vault's tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientCmd {
    /// Make a new or empty folder the zone of client NAME, with its own random key.
    Add {
        /// The vault: the directory that holds the encrypted files.
        vault: PathBuf,
        /// The client's name (as `client list` shows it).
        name: String,
        /// The client's folder inside the vault (default /clients/NAME).
        #[arg(long)]
        path: Option<String>,
        #[command(flatten)]
        pass: PassArgs,
    },
    /// Write a client's files, decrypted, to a tar archive (OUTPUT ends in .tar) or a new
    /// folder, with a MANIFEST.sha256 of every file. No mount needed.
    Export {
        /// The vault: the directory that holds the encrypted files.
        vault: PathBuf,
        /// The client's name (as `client list` shows it).
        name: String,
        #[arg(long, short)]
        output: PathBuf,
        #[command(flatten)]
        pass: PassArgs,
        #[arg(long)]
        json: bool,
    },
    /// Crypto-erase a client: destroy its zone key and delete its files (asks first).
    Shred {
        /// The vault: the directory that holds the encrypted files.
        vault: PathBuf,
        /// The client's name (as `client list` shows it).
        name: String,
        /// Do not ask for confirmation (for scripts).
        #[arg(long)]
        yes: bool,
        /// Write the signed erasure certificate to FILE (default: NAME-erased-DATE.json in
        /// the current directory).
        #[arg(long, value_name = "FILE")]
        certificate: Option<PathBuf>,
        /// The date of the oldest backup of the vault the practice keeps (it may still hold
        /// the client's key): the certificate names it.
        #[arg(long, value_name = "DATE")]
        oldest_backup: Option<String>,
        #[command(flatten)]
        pass: PassArgs,
    },
    /// A client's life cycle metadata: matter reference, responsible person, opened and
    /// closed dates, retention rule and when it ends, legal hold.
    Info {
        /// The vault: the directory that holds the encrypted files.
        vault: PathBuf,
        /// The client's name (as `client list` shows it).
        name: String,
        #[command(flatten)]
        pass: PassArgs,
        #[arg(long)]
        json: bool,
    },
    /// Set a client's metadata.
    Set {
        /// The vault: the directory that holds the encrypted files.
        vault: PathBuf,
        /// The client's name (as `client list` shows it).
        name: String,
        /// Retention: "7y" (after close), "18m after close", or a date 2033-12-31; "none"
        /// removes it.
        #[arg(long, value_name = "RULE")]
        retain: Option<String>,
        /// The matter reference (e.g. M-2026-014).
        #[arg(long = "ref", value_name = "REF")]
        reference: Option<String>,
        /// Who is responsible for the matter.
        #[arg(long, value_name = "NAME")]
        responsible: Option<String>,
        /// When the matter was opened (YYYY-MM-DD).
        #[arg(long, value_name = "DATE")]
        opened: Option<String>,
        #[command(flatten)]
        pass: PassArgs,
    },
    /// Close a client's matter: its folder becomes read-only for everyone but the policy's
    /// admins, on the live mount at once and on every later mount, and an "after close"
    /// retention starts. Refused while the client's files are open.
    Close {
        /// The vault: the directory that holds the encrypted files.
        vault: PathBuf,
        /// The client's name (as `client list` shows it).
        name: String,
        #[arg(long, default_value = "matter closed")]
        reason: String,
        /// The date the matter closed, when not today (YYYY-MM-DD).
        #[arg(long, value_name = "DATE")]
        date: Option<String>,
        /// On a live mount with the client's files open: wait up to this long (e.g. 10m) for
        /// their users to close them, saying who holds them, instead of refusing at once.
        #[arg(long, value_name = "DURATION", value_parser = tutela::daemon::mount::parse_idle)]
        wait: Option<std::time::Duration>,
        #[command(flatten)]
        pass: PassArgs,
    },
    /// Reopen a closed matter: its folder is writable again and its retention stops.
    Reopen {
        /// The vault: the directory that holds the encrypted files.
        vault: PathBuf,
        /// The client's name (as `client list` shows it).
        name: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        pass: PassArgs,
    },
    /// Put a client under legal hold: shred and expire are refused until it is released.
    Hold {
        /// The vault: the directory that holds the encrypted files.
        vault: PathBuf,
        /// The client's name (as `client list` shows it).
        name: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        pass: PassArgs,
    },
    /// Release a client's legal hold.
    Release {
        /// The vault: the directory that holds the encrypted files.
        vault: PathBuf,
        /// The client's name (as `client list` shows it).
        name: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        pass: PassArgs,
    },
    /// Clients whose retention has ended (and those under hold, which never are).
    Due {
        /// The vault: the directory that holds the encrypted files.
        vault: PathBuf,
        #[command(flatten)]
        pass: PassArgs,
        #[arg(long)]
        json: bool,
    },
    /// Shred every client whose retention has ended, each with its erasure certificate.
    /// Asks first; safe to run from the shipped monthly timer (with --yes).
    Expire {
        /// The vault: the directory that holds the encrypted files.
        vault: PathBuf,
        /// Only say what would be shredded.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask (for the timer).
        #[arg(long)]
        yes: bool,
        /// Where the certificates go (default: the current directory).
        #[arg(long, value_name = "DIR")]
        certificates: Option<PathBuf>,
        /// The date of the oldest backup of the vault the practice keeps.
        #[arg(long, value_name = "DATE")]
        oldest_backup: Option<String>,
        /// Act even though the clock looks wrong (before the newest audit record, or more
        /// than a year after it).
        #[arg(long)]
        trust_clock: bool,
        #[command(flatten)]
        pass: PassArgs,
    },
    /// Take a client on from an existing plaintext tree: a new client zone, its files copied
    /// in with progress and checked back against a SHA-256 manifest of the source; what
    /// cannot be carried (sockets, devices, ACLs) is reported.
    Import {
        /// The vault: the directory that holds the encrypted files.
        vault: PathBuf,
        /// The client's name (as `client list` shows it).
        name: String,
        /// The tree to import (a share, another encrypted filesystem's mount).
        src: PathBuf,
        /// The client's folder in the vault (default /clients/NAME).
        #[arg(long)]
        path: Option<String>,
        /// Finish an interrupted import: the client exists, files already copied are kept.
        #[arg(long)]
        resume: bool,
        /// Write the source's SHA-256 manifest here (default NAME-import.sha256).
        #[arg(long, value_name = "FILE")]
        manifest: Option<PathBuf>,
        #[command(flatten)]
        pass: PassArgs,
        #[arg(long)]
        json: bool,
    },
    /// Check an erasure certificate's signature offline (no vault needed).
    VerifyCertificate {
        /// The certificate (a JSON file `client shred` or `expire` wrote).
        file: PathBuf,
        /// The key it must be signed by (`tutela audit pubkey`).
        #[arg(long, value_name = "HEX")]
        pubkey: Option<String>,
    },
    /// List clients with their paths, file counts and sizes.
    List {
        /// The vault: the directory that holds the encrypted files.
        vault: PathBuf,
        #[command(flatten)]
        pass: PassArgs,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Add a passphrase, labelled (e.g. with its owner's name).
    Add {
        /// The vault: the directory that holds the encrypted files.
        vault: PathBuf,
        #[arg(long)]
        label: String,
        #[command(flatten)]
        pass: PassArgs,
        /// Read the new passphrase from the first line of FILE instead of asking twice.
        #[arg(long, value_name = "FILE")]
        new_passfile: Option<PathBuf>,
        /// Refuse a weak new passphrase instead of warning about it.
        #[arg(long)]
        strict: bool,
        /// The passphrase opens this client's keys only (for a contractor): no other
        /// client, no vault-wide command. Rekeying or shredding the client removes it.
        #[arg(long, value_name = "NAME", conflicts_with_all = ["tpm2", "fido2", "passphrase_and_tpm2", "passphrase_and_fido2"])]
        client: Option<String>,
        /// A slot sealed to this machine's TPM 2.0: opens the vault at boot with nothing
        /// on disk and nobody there (one factor: this machine). See --pin, --pcrs.
        #[arg(long, group = "device")]
        tpm2: bool,
        /// A slot that needs this machine's TPM and a passphrase (two factors).
        #[arg(long, group = "device")]
        passphrase_and_tpm2: bool,
        /// A slot that needs a FIDO2 security key (hmac-secret; a touch each time).
        #[arg(long, group = "device")]
        fido2: bool,
        /// A slot that needs a passphrase and a FIDO2 security key (two factors).
        #[arg(long, group = "device")]
        passphrase_and_fido2: bool,
        /// TPM: bind a PIN (the TPM's dictionary-attack lockout counts wrong ones; asked
        /// twice, or --new-pin-file). FIDO2: require the security key's own PIN.
        #[arg(long, requires = "device")]
        pin: bool,
        /// Read the new TPM PIN from the first line of FILE instead of asking twice.
        #[arg(long, value_name = "FILE", requires = "pin")]
        new_pin_file: Option<PathBuf>,
        /// TPM: bind the slot to these PCRs of the SHA-256 bank (e.g. 7, the Secure Boot
        /// state): a change to them stops the slot, which must then be enrolled again.
        #[arg(long, value_name = "LIST", value_delimiter = ',')]
        pcrs: Vec<u8>,
    },
    /// List the keys: label, kind, and the client a client key is limited to.
    List {
        /// The vault: the directory that holds the encrypted files.
        vault: PathBuf,
        #[command(flatten)]
        pass: PassArgs,
        #[arg(long)]
        json: bool,
    },
    /// Remove a passphrase by label (the last one cannot be removed).
    Remove {
        /// The vault: the directory that holds the encrypted files.
        vault: PathBuf,
        /// The passphrase's label (as `key list` shows it).
        label: String,
        #[command(flatten)]
        pass: PassArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Validate a policy file offline (syntax, users and groups); errors as FILE:LINE:COL.
    Check {
        /// The policy file (TOML).
        file: PathBuf,
    },
    /// Store a policy in the vault, encrypted; a live mount picks it up within a second.
    Set {
        /// The vault: the directory that holds the encrypted files.
        vault: PathBuf,
        /// The policy file (TOML).
        file: PathBuf,
        #[command(flatten)]
        pass: PassArgs,
    },
    /// Print the stored policy.
    Show {
        /// The vault: the directory that holds the encrypted files.
        vault: PathBuf,
        #[command(flatten)]
        pass: PassArgs,
    },
    /// Remove the stored policy (the vault is then governed by Unix modes alone).
    Clear {
        /// The vault: the directory that holds the encrypted files.
        vault: PathBuf,
        #[command(flatten)]
        pass: PassArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Check the whole log's chain; names the first bad record. Prints the head (an anchor
    /// to keep outside the vault).
    Verify {
        /// The vault: the directory that holds the encrypted files.
        vault: PathBuf,
        #[command(flatten)]
        pass: PassArgs,
        /// An anchor printed by an earlier verify (SEQUENCE:DIGEST): fail unless the log
        /// still reaches that record unchanged, so records cut off its end are caught.
        #[arg(long, value_name = "ANCHOR")]
        expect: Vec<String>,
        /// Check every anchor of this vault that the mount daemon sent to the system log,
        /// found in FILE (a journal or syslog export: `journalctl -t tutela -o cat`,
        /// /var/log/auth.log, a SIEM's export).
        #[arg(long, value_name = "FILE")]
        anchors_from: Vec<std::path::PathBuf>,
    },
    /// Remove records older than a time, a whole segment at a time; what stays still
    /// verifies. Asks first; the newest segment always stays.
    Prune {
        /// The vault: the directory that holds the encrypted files.
        vault: PathBuf,
        /// Remove records older than this: 2026-11-20, "2026-11-20 14:00:00" (UTC), or an
        /// age such as 2555d (about seven years).
        #[arg(long)]
        before: String,
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation (for scripts and timers).
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        pass: PassArgs,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The breach-scope report: how the log verified, per client who read, created,
    /// changed, deleted, exported and was refused what, a timeline, unusual accesses, the
    /// events that changed exposure, and what the encryption means; signed. Or, with
    /// --verify FILE, check a report's signature offline.
    Report {
        /// The vault: the directory that holds the encrypted files.
        #[arg(required_unless_present = "verify")]
        vault: Option<PathBuf>,
        #[command(flatten)]
        pass: PassArgs,
        /// Only this client (repeatable; default: all).
        #[arg(long)]
        client: Vec<String>,
        /// Only this user, by name or uid (repeatable; default: everyone).
        #[arg(long)]
        user: Vec<String>,
        /// From this time: 2026-11-20, "2026-11-20 14:00:00" (UTC), or an age such as 72h.
        #[arg(long)]
        since: Option<String>,
        /// Up to this time (same forms as --since).
        #[arg(long)]
        until: Option<String>,
        /// Write the report to FILE (refused if it exists).
        #[arg(long, value_name = "FILE", required_unless_present = "verify")]
        output: Option<PathBuf>,
        /// html (one self-contained file), md or json.
        #[arg(long, default_value = "html")]
        format: String,
        /// Leave out the annex of plaintext paths.
        #[arg(long)]
        no_paths: bool,
        /// Check the signature of a report made earlier (no vault needed).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["vault", "output"])]
        verify: Option<PathBuf>,
        /// With --verify: the public key the report must be signed by (`audit pubkey`).
        #[arg(long, value_name = "HEX", requires = "verify")]
        pubkey: Option<String>,
    },
    /// Print the public key that signs the vault's reports (hex), for recipients to check
    /// reports with `audit report --verify FILE --pubkey HEX`.
    Pubkey {
        /// The vault: the directory that holds the encrypted files.
        vault: PathBuf,
        #[command(flatten)]
        pass: PassArgs,
    },
    /// Access review of one client: who may access it under the current policy, who did in
    /// the period, and who holds access but never used it.
    Review {
        /// The vault: the directory that holds the encrypted files.
        vault: PathBuf,
        #[command(flatten)]
        pass: PassArgs,
        #[arg(long)]
        client: String,
        /// The period: an age (90d) or a date.
        #[arg(long, default_value = "90d")]
        since: String,
        #[arg(long)]
        json: bool,
    },
    /// Print records, oldest first, filtered.
    Show {
        /// The vault: the directory that holds the encrypted files.
        vault: PathBuf,
        #[command(flatten)]
        pass: PassArgs,
        /// Only this client's records.
        #[arg(long)]
        client: Option<String>,
        /// Only this user's records (name or uid).
        #[arg(long)]
        user: Option<String>,
        /// Only records for this path or below it.
        #[arg(long)]
        path: Option<String>,
        /// From this time: 2026-11-20, "2026-11-20 14:00:00" (UTC), or an age such as 72h.
        #[arg(long)]
        since: Option<String>,
        /// Up to this time (same forms as --since).
        #[arg(long)]
        until: Option<String>,
        /// Only refusals.
        #[arg(long)]
        denied: bool,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}
