//! Work on a vault that is not mounted (and the checks that live client work shares): client
//! zones, export, fsck and repair, key rotation.

pub mod archive;
pub mod clients;
pub mod export;
pub mod fsck;
pub mod import;
pub mod lifecycle;
pub mod pending_cert;
pub mod rekey;
pub mod report;

/// The one way for a command to open a vault for work: unlock it (passphrase or recovery
/// key), then settle what an interrupted `rekey --all` left between its commit and its
/// cleanup. (`Vault::unlock`, which does not settle, is not callable from outside.)
pub fn open_vault(
    dir: &std::path::Path,
    how: &crate::vault::Unlock,
    keystore: Option<&std::path::Path>,
) -> crate::error::Result<crate::vault::Vault> {
    rekey::unlock(dir, how, keystore)
}
