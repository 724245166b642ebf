//! One error type for the whole crate, with one mapping to errno (for FUSE replies) and one
//! mapping to process exit codes (for the CLI). Variants say what happened; none carries a
//! plaintext name or path, so an error can always be logged.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // --- filesystem-level conditions (mostly straight from the backing store) ---
    #[error("no such file or directory")]
    NotFound,
    #[error("file exists")]
    Exists,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("directory not empty")]
    NotEmpty,
    #[error("name too long")]
    NameTooLong,
    #[error("invalid argument")]
    Invalid,
    #[error("operation not supported")]
    NotSupported,
    #[error("permission denied")]
    PermissionDenied,
    #[error("operation not permitted")]
    NotPermitted,
    #[error("read-only file system")]
    ReadOnly,
    #[error("no such attribute")]
    NoAttr,
    #[error("result does not fit the buffer")]
    Range,
    #[error("file too large")]
    TooBig,
    #[error("cross-device link")]
    CrossDevice,
    #[error("stale inode")]
    Stale,
    /// The file's client was shredded while it was open: the handle serves nothing more.
    #[error("the file's client was erased")]
    Revoked,

    // --- cryptographic / format damage ---
    /// Ciphertext failed authentication. `what` names the kind of object (block, name,
    /// header, ...) and never its plaintext.
    #[error("authentication failed: {what}")]
    AuthFailed { what: &'static str },
    #[error("corrupt data: {what}")]
    Corrupt { what: &'static str },

    // --- vault-level conditions, used by the CLI ---
    #[error("wrong passphrase or recovery key")]
    WrongPassphrase,
    /// No slot this tutela knows opened, and the vault has slots of kinds it does not know (a
    /// later tutela's, such as a hardware token's): they were skipped, and may be the ones.
    #[error("wrong passphrase or recovery key; {0} key slot(s) of a kind this tutela does not know (written by a later version) were skipped: a later tutela may open the vault with them")]
    WrongPassphraseSkipped(usize),
    #[error("{path} is not a tutela vault (no tutela.conf)")]
    NotAVault { path: String },
    #[error("the vault config is damaged or was tampered with: {why}")]
    ConfigCorrupt { why: String },
    #[error("the vault has format version {found}; this tutela reads versions up to {supported}: upgrade tutela")]
    UnsupportedVersion { found: u16, supported: u16 },
    #[error("{path} is not empty: use an empty or missing directory for a new vault")]
    VaultDirNotEmpty { path: String },
    #[error("{0}")]
    Mountpoint(String),
    #[error("mount failed: {0}")]
    MountFailed(String),
    #[error("{0}")]
    Busy(String),
    #[error("{0} is not a mounted filesystem")]
    NotMounted(String),
    #[error("{0}")]
    Passphrase(String),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    PolicyInvalid(String),
    #[error("the audit log was tampered with: {0}")]
    AuditTampered(String),
    #[error("{0}")]
    FsckProblems(String),
    #[error("key store: {0}")]
    KeyStore(String),
    /// A vault file that is not what tutela writes there: a symlink, a FIFO, a device, an
    /// oversized file. Never followed, waited on or read whole.
    #[error("{0}")]
    UnsafeFile(String),
    /// The mount daemon would not take a control request (who asked, or its proof of the
    /// vault's keys, was not accepted).
    #[error("{0}")]
    ControlRefused(String),
    /// A client's folder is locked on the live mount (`tutela lock`): its key is not in the
    /// daemon's memory. Holds the client's name, or its folder for FUSE replies (ENOKEY, as
    /// the kernel's own fscrypt answers for a locked directory).
    #[error("client '{0}' is locked on the live mount: unlock it first (tutela unlock)")]
    ClientLocked(String),
    /// The passphrase opens a client-scoped key slot: one client's keys, not the vault's.
    #[error("passphrase '{label}' opens only client '{client}': it cannot be used for this command, which needs a passphrase of the whole vault")]
    ClientKeyOnly { label: String, client: String },
    /// A key slot's hardware (a TPM, a FIDO2 security key) could not give its part of the key:
    /// what went wrong decides the exit code, so a boot script can tell "no TPM" from "PCRs
    /// changed after a firmware update".
    #[error("{1}")]
    Device(DeviceFail, String),
    /// An error the mount daemon reported for a control request, with its exit code.
    #[error("{msg}")]
    Daemon { code: i32, msg: String },

    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Why a key slot's hardware did not give its part of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceFail {
    /// No TPM or security key where one was looked for (or this build has no support).
    Missing,
    /// The PIN was wrong.
    WrongPin,
    /// The TPM is in dictionary-attack lockout, or the token's PIN is blocked.
    Lockout,
    /// The TPM's PCRs are not what the slot was sealed to (firmware or Secure Boot change).
    PcrMismatch,
    /// The slot was made on another machine's TPM (or that TPM was cleared), or with another
    /// security key.
    OtherDevice,
    /// Nobody touched the security key in time, or it was removed mid-unlock.
    Timeout,
    /// Anything else the device reported.
    Failed,
}

/// Documented process exit codes (docs/cli.md "Exit codes"). Stable: scripts depend on them.
pub mod exit {
    pub const OK: i32 = 0;
    pub const GENERIC: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const WRONG_PASSPHRASE: i32 = 10;
    pub const NOT_A_VAULT: i32 = 11;
    pub const CONFIG_CORRUPT: i32 = 12;
    pub const UNSUPPORTED_VERSION: i32 = 13;
    pub const MOUNTPOINT: i32 = 14;
    pub const VAULT_NOT_EMPTY: i32 = 15;
    pub const MOUNT_FAILED: i32 = 16;
    pub const BUSY: i32 = 17;
    pub const NOT_MOUNTED: i32 = 18;
    pub const PASSPHRASE_INPUT: i32 = 19;
    pub const DATA_DAMAGED: i32 = 20;
    pub const POLICY_INVALID: i32 = 21;
    pub const AUDIT_TAMPERED: i32 = 22;
    pub const FSCK_PROBLEMS: i32 = 23;
    pub const KEY_STORE: i32 = 24;
    pub const UNSAFE_FILE: i32 = 25;
    pub const CONTROL_REFUSED: i32 = 26;
    pub const CLIENT_LOCKED: i32 = 27;
    pub const CLIENT_KEY_ONLY: i32 = 28;
    pub const DEVICE_MISSING: i32 = 29;
    pub const WRONG_PIN: i32 = 30;
    pub const DEVICE_LOCKOUT: i32 = 31;
    pub const PCR_MISMATCH: i32 = 32;
    pub const OTHER_DEVICE: i32 = 33;
    pub const DEVICE_TIMEOUT: i32 = 34;
    pub const DEVICE_FAILED: i32 = 35;

    /// Every code with its meaning, for the man page (docs/cli.md "Exit codes" says the same; a
    /// test keeps them together).
    pub const MEANINGS: &[(i32, &str)] = &[
        (OK, "success"),
        (GENERIC, "other error (I/O error, ...)"),
        (
            USAGE,
            "bad command line (unknown flag, conflicting flags, bad value)",
        ),
        (
            WRONG_PASSPHRASE,
            "wrong passphrase or recovery key (nothing was changed)",
        ),
        (NOT_A_VAULT, "not a tutela vault (no tutela.conf)"),
        (
            CONFIG_CORRUPT,
            "the vault config is damaged or was tampered with",
        ),
        (
            UNSUPPORTED_VERSION,
            "the vault has a newer format version: upgrade tutela",
        ),
        (
            MOUNTPOINT,
            "mountpoint problem: missing, not a directory, not empty, already mounted",
        ),
        (VAULT_NOT_EMPTY, "init target is not empty"),
        (
            MOUNT_FAILED,
            "the mount itself failed (FUSE missing, allow_other not permitted, ...)",
        ),
        (
            BUSY,
            "mountpoint busy, or the vault is already mounted elsewhere",
        ),
        (NOT_MOUNTED, "not a mounted tutela filesystem"),
        (
            PASSPHRASE_INPUT,
            "passphrase input problem, or a weak passphrase refused by --strict",
        ),
        (DATA_DAMAGED, "data damaged (authentication failed)"),
        (
            POLICY_INVALID,
            "the policy file is invalid, missing or not the one last set",
        ),
        (AUDIT_TAMPERED, "the audit log was tampered with"),
        (
            FSCK_PROBLEMS,
            "fsck found problems (that --repair did not fix)",
        ),
        (
            KEY_STORE,
            "the key store is missing, unreadable, or belongs to another vault",
        ),
        (
            UNSAFE_FILE,
            "a vault file is a symlink, FIFO, device or oversized file: not read",
        ),
        (
            CONTROL_REFUSED,
            "the mount daemon refused the request: not root or the daemon's user, or the passphrase is not this vault's",
        ),
        (
            CLIENT_LOCKED,
            "a client is locked on the live mount (tutela lock): unlock it first",
        ),
        (
            CLIENT_KEY_ONLY,
            "the passphrase opens one client's keys only (a client key slot): the command needs a passphrase of the whole vault",
        ),
        (
            DEVICE_MISSING,
            "a key slot's TPM or security key is not there (or this tutela was built without its support)",
        ),
        (WRONG_PIN, "wrong TPM or security key PIN"),
        (
            DEVICE_LOCKOUT,
            "the TPM is in dictionary-attack lockout (too many wrong PINs), or the security key's PIN is blocked",
        ),
        (
            PCR_MISMATCH,
            "the TPM's PCRs changed since the slot was made (firmware or Secure Boot update): unlock another way and enroll the slot again",
        ),
        (
            OTHER_DEVICE,
            "the slot was made with another machine's TPM (or a cleared one), or another security key",
        ),
        (
            DEVICE_TIMEOUT,
            "nobody touched the security key in time, or it was removed during the unlock",
        ),
        (DEVICE_FAILED, "the TPM or security key reported another error"),
    ];
}

impl Error {
    /// The single mapping from error to errno used by every FUSE reply.
    pub fn errno(&self) -> i32 {
        match self {
            Error::NotFound => libc::ENOENT,
            Error::Exists => libc::EEXIST,
            Error::NotDir => libc::ENOTDIR,
            Error::IsDir => libc::EISDIR,
            Error::NotEmpty => libc::ENOTEMPTY,
            Error::NameTooLong => libc::ENAMETOOLONG,
            Error::Invalid => libc::EINVAL,
            Error::NotSupported => libc::EOPNOTSUPP,
            Error::PermissionDenied => libc::EACCES,
            Error::NotPermitted => libc::EPERM,
            Error::ReadOnly => libc::EROFS,
            Error::NoAttr => libc::ENODATA,
            Error::Range => libc::ERANGE,
            Error::TooBig => libc::EFBIG,
            Error::CrossDevice => libc::EXDEV,
            Error::Stale => libc::ESTALE,
            Error::Revoked => libc::EIO,
            Error::AuthFailed { .. } | Error::Corrupt { .. } => libc::EIO,
            Error::Busy(_) => libc::EBUSY,
            Error::ClientLocked(_) => libc::ENOKEY,
            Error::Io(e) => e.raw_os_error().unwrap_or(libc::EIO),
            Error::WrongPassphrase
            | Error::WrongPassphraseSkipped(_)
            | Error::NotAVault { .. }
            | Error::ConfigCorrupt { .. }
            | Error::UnsupportedVersion { .. }
            | Error::VaultDirNotEmpty { .. }
            | Error::Mountpoint(_)
            | Error::MountFailed(_)
            | Error::NotMounted(_)
            | Error::Passphrase(_)
            | Error::Usage(_)
            | Error::PolicyInvalid(_)
            | Error::ControlRefused(_)
            | Error::ClientKeyOnly { .. }
            | Error::Device(..)
            | Error::Daemon { .. }
            | Error::AuditTampered(_)
            | Error::FsckProblems(_)
            | Error::KeyStore(_)
            | Error::UnsafeFile(_) => libc::EIO,
        }
    }

    /// The single mapping from error to the CLI's documented exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::WrongPassphrase | Error::WrongPassphraseSkipped(_) => exit::WRONG_PASSPHRASE,
            Error::NotAVault { .. } => exit::NOT_A_VAULT,
            Error::ConfigCorrupt { .. } => exit::CONFIG_CORRUPT,
            Error::UnsupportedVersion { .. } => exit::UNSUPPORTED_VERSION,
            Error::VaultDirNotEmpty { .. } => exit::VAULT_NOT_EMPTY,
            Error::Mountpoint(_) => exit::MOUNTPOINT,
            Error::MountFailed(_) => exit::MOUNT_FAILED,
            Error::Busy(_) => exit::BUSY,
            Error::NotMounted(_) => exit::NOT_MOUNTED,
            Error::Passphrase(_) => exit::PASSPHRASE_INPUT,
            Error::Usage(_) => exit::USAGE,
            Error::PolicyInvalid(_) => exit::POLICY_INVALID,
            Error::AuditTampered(_) => exit::AUDIT_TAMPERED,
            Error::FsckProblems(_) => exit::FSCK_PROBLEMS,
            Error::KeyStore(_) => exit::KEY_STORE,
            Error::UnsafeFile(_) => exit::UNSAFE_FILE,
            Error::ControlRefused(_) => exit::CONTROL_REFUSED,
            Error::ClientLocked(_) => exit::CLIENT_LOCKED,
            Error::ClientKeyOnly { .. } => exit::CLIENT_KEY_ONLY,
            Error::Daemon { code, .. } => *code,
            Error::Device(why, _) => match why {
                DeviceFail::Missing => exit::DEVICE_MISSING,
                DeviceFail::WrongPin => exit::WRONG_PIN,
                DeviceFail::Lockout => exit::DEVICE_LOCKOUT,
                DeviceFail::PcrMismatch => exit::PCR_MISMATCH,
                DeviceFail::OtherDevice => exit::OTHER_DEVICE,
                DeviceFail::Timeout => exit::DEVICE_TIMEOUT,
                DeviceFail::Failed => exit::DEVICE_FAILED,
            },
            Error::AuthFailed { .. } | Error::Corrupt { .. } => exit::DATA_DAMAGED,
            _ => exit::GENERIC,
        }
    }

    /// Builds an error from a raw errno returned by a syscall, keeping well-known cases typed.
    pub fn from_errno(errno: i32) -> Error {
        match errno {
            libc::ENOENT => Error::NotFound,
            libc::EEXIST => Error::Exists,
            libc::ENOTDIR => Error::NotDir,
            libc::EISDIR => Error::IsDir,
            libc::ENOTEMPTY => Error::NotEmpty,
            libc::ENAMETOOLONG => Error::NameTooLong,
            libc::EINVAL => Error::Invalid,
            libc::EACCES => Error::PermissionDenied,
            libc::EPERM => Error::NotPermitted,
            libc::EROFS => Error::ReadOnly,
            libc::ENODATA => Error::NoAttr,
            libc::ERANGE => Error::Range,
            libc::EXDEV => Error::CrossDevice,
            other => Error::Io(io::Error::from_raw_os_error(other)),
        }
    }

    /// The last OS error as a typed error.
    pub fn last_os() -> Error {
        Error::from_errno(
            io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_round_trips_for_common_codes() {
        for e in [
            libc::ENOENT,
            libc::EEXIST,
            libc::ENOTDIR,
            libc::EISDIR,
            libc::ENOTEMPTY,
            libc::EACCES,
            libc::EXDEV,
            libc::ENOSPC,
        ] {
            assert_eq!(Error::from_errno(e).errno(), e);
        }
    }

    #[test]
    fn damage_maps_to_eio() {
        assert_eq!(Error::AuthFailed { what: "block" }.errno(), libc::EIO);
    }
}
