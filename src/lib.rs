//! tutela: an encrypted FUSE filesystem. Layers, bottom up: `crypto` and `format` (pure),
//! `sys` (the only unsafe code), `vault` (keys from passphrases), `fs` (the filesystem core,
//! no FUSE types), `fuse` (the thin fuser adapter), `mount` (sessions, daemon, signals), and
//! the CLI in `main.rs`/`cli.rs`.

pub mod archive;
pub mod audit;
pub mod clients;
pub mod control;
pub mod crypto;
pub mod error;
pub mod export;
pub mod faults;
pub mod format;
pub mod fs;
pub mod fsck;
pub mod fuse;
#[doc(hidden)]
pub mod fuzz_targets;
pub mod helper;
pub mod live;
pub mod logging;
pub mod mount;
pub mod passphrase;
pub mod policy;
pub mod policy_store;
pub mod rekey;
pub mod runtime;
pub mod secret;
pub mod sys;
pub mod text;
pub mod vault;
