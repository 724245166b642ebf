//! tutela: an encrypted FUSE filesystem. The folders are the layers, bottom up (a layer calls
//! only the ones above it in this list; ARCHITECTURE.md has the map):
//! - `crypto` (pure: keys, KDFs, AEAD of names and contents) and `format` (every byte layout
//!   of FORMAT.md, on one strict reader);
//! - `sys` (the only unsafe code: system calls) and `hw` (a key slot's devices: a TPM 2.0
//!   through the TPM Software Stack, FIDO2 security keys behind one trait);
//! - `vault` (keys from passphrases, the config and zone table), `policy` (who may do what,
//!   and its sealed file), `audit` (the tamper-evident log);
//! - `fs` (the filesystem core: plaintext operations over the backing directory, no FUSE
//!   types, the policy fence on every operation);
//! - `daemon` (the fuser adapter, mounting and serving, the control channel for live client
//!   work, status files, logging) and `offline` (work on an unmounted vault: clients,
//!   export, fsck, rekey);
//! - the command line in `bin/tutela/`.
//!
//! `error`, `text` (escaping for terminals) and `faults` (test crash points) are shared.

// Only `sys` may use `unsafe` (it allows it for itself, with a SAFETY note on each block).
#![deny(unsafe_code)]

pub mod audit;
pub mod crypto;
pub mod daemon;
pub mod error;
pub mod faults;
pub mod format;
pub mod fs;
#[doc(hidden)]
pub mod fuzz_targets;
pub mod hw;
pub mod offline;
pub mod policy;
pub mod sys;
pub mod text;
pub mod vault;
