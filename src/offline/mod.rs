//! Work on a vault that is not mounted (and the checks that live client work shares): client
//! zones, export, fsck and repair, key rotation.

pub mod archive;
pub mod clients;
pub mod export;
pub mod fsck;
pub mod rekey;
