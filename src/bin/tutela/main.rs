//! The `tutela` command: parse arguments, set up logging, run one command, and turn its error
//! into one clear line and a documented exit code.

#![deny(unsafe_code)]

mod cli;
mod commands;
mod manual;
mod prune;

use clap::Parser;
use cli::{Cli, Command, PassArgs};
use std::path::Path;
use tutela::error::{exit, Error, Result};
use tutela::format::recovery;
use tutela::vault::passphrase::{self, Source};
use tutela::vault::{self, Unlock, Vault};

fn source(p: &PassArgs) -> Source {
    Source {
        passfile: p.passfile.clone(),
        extpass: p.extpass.clone(),
    }
}

fn init_logging(verbose: u8, file: Option<&Path>) -> Result<()> {
    tutela::daemon::logging::init(verbose, file)
}

fn warn_test_kdf(v: &Vault) {
    if v.uses_test_kdf() {
        eprintln!("tutela: warning: this vault uses the INSECURE test-only KDF settings; do not keep real data in it");
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Init {
            vault,
            pass,
            label,
            strict,
        } => {
            let keystore = pass.keystore.clone();
            init_logging(cli.verbose, None)?;
            let kdf = vault::kdf_from_env();
            if kdf == vault::KDF_TEST {
                eprintln!("tutela: warning: {} is set: creating a vault with INSECURE test-only KDF settings", vault::TEST_KDF_ENV);
            }
            let p = passphrase::new(&source(&pass))?;
            passphrase::check_strength(&p, strict)?;
            let (v, rk) = Vault::create(&vault, &p, &label, kdf, keystore.as_deref())?;
            println!("Created vault {}", vault.display());
            if let Some(ks) = &v.keystore {
                println!(
                    "Zone keys are kept in the key store {} (not in the vault): keep it safe and apart from backups of the vault.",
                    ks.path.display()
                );
            }
            println!();
            println!("Recovery key (it unlocks the vault if every passphrase is lost):");
            println!();
            println!("    {}", rk.as_str());
            println!();
            println!("Write it down and store it offline, away from the vault. It is shown only this once;");
            println!("anyone who has it and a copy of the vault can read everything in it.");
            Ok(())
        }
        Command::Mount {
            vault,
            mountpoint,
            pass,
            recovery_key,
            foreground,
            read_only,
            allow_other,
            idle,
            threads,
            log_file,
            options,
        } => {
            init_logging(cli.verbose, log_file.as_deref())?;
            // Check cheap things before asking for a passphrase.
            Vault::read_config(&vault)?;
            // An absolute path names the vault in the mount table (tutela status, fsck).
            let vault = std::fs::canonicalize(&vault).unwrap_or(vault);
            if !mountpoint.exists() {
                return Err(Error::Mountpoint(format!(
                    "mountpoint {} does not exist: create an empty directory first",
                    mountpoint.display()
                )));
            }
            let how = match recovery_key {
                Some(f) => {
                    let file = (f.as_os_str() != "-").then_some(f.as_path());
                    let text = passphrase::recovery_key(file)?;
                    recovery::decode(&text)
                        .map_err(|why| Error::Passphrase(format!("recovery key: {why}")))?;
                    Unlock::RecoveryKey(text.to_string())
                }
                None => Unlock::Passphrase(passphrase::existing(&source(&pass))?),
            };
            let v = tutela::offline::open_vault(&vault, &how, pass.keystore.as_deref())?;
            // The daemon lives on with the keys only: the passphrase goes (and is zeroed) now.
            drop(how);
            warn_test_kdf(&v);
            let pending = v.rekey_pending();
            if !pending.is_empty() {
                if read_only {
                    eprintln!(
                        "tutela: a rekey of {} was interrupted; this read-only mount leaves it so: mount read-write (it then finishes while serving) or run `tutela rekey {} --resume`",
                        pending.join(", "),
                        vault.display()
                    );
                } else {
                    eprintln!(
                        "tutela: a rekey of {} was interrupted: the mount finishes it while serving (see tutela audit show)",
                        pending.join(", ")
                    );
                }
            }
            let args = tutela::daemon::mount::MountArgs {
                mountpoint,
                foreground,
                read_only,
                allow_other,
                idle,
                threads: threads as usize,
                log_file,
                flags: options,
            };
            tutela::daemon::mount::mount(v, args)
        }
        Command::Fsck {
            vault,
            pass,
            repair,
            json,
        } => {
            init_logging(cli.verbose, None)?;
            commands::fsck(&vault, &pass, repair, json)
        }
        Command::Passwd {
            vault,
            pass,
            recovery_key,
            label,
            new_passfile,
            strict,
        } => {
            init_logging(cli.verbose, None)?;
            commands::passwd(
                &vault,
                &pass,
                recovery_key.as_deref(),
                label.as_deref(),
                new_passfile.as_deref(),
                strict,
            )
        }
        Command::Key { cmd } => {
            init_logging(cli.verbose, None)?;
            commands::key(cmd)
        }
        Command::Status { json } => commands::status(json),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "tutela", &mut std::io::stdout());
            Ok(())
        }
        Command::Manpages { dir } => {
            let cmd = <Cli as clap::CommandFactory>::command();
            manual::write_pages(cmd, &dir)?;
            println!("man pages written to {}", dir.display());
            Ok(())
        }
        Command::Rekey {
            vault,
            client,
            all,
            resume,
            yes,
            pass,
        } => {
            init_logging(cli.verbose, None)?;
            commands::rekey(&vault, &pass, client.as_deref(), all, resume, yes)
        }
        Command::Client { cmd } => {
            init_logging(cli.verbose, None)?;
            commands::client(cmd)
        }
        Command::Policy { cmd } => {
            init_logging(cli.verbose, None)?;
            commands::policy(cmd)
        }
        Command::Audit { cmd } => {
            init_logging(cli.verbose, None)?;
            commands::audit(cmd)
        }
        Command::Unmount { mountpoint } => {
            init_logging(cli.verbose, None)?;
            tutela::daemon::mount::unmount(&mountpoint)?;
            tutela::daemon::mount::wait_unmounted(&mountpoint, std::time::Duration::from_secs(5));
            Ok(())
        }
    }
}

fn main() {
    // Every command may hold keys (offline ones too): no core dump may carry them to disk.
    tutela::sys::disable_core_dumps();
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = if argv
        .first()
        .is_some_and(|a| tutela::daemon::fstab::invoked_as_helper(a))
    {
        match tutela::daemon::fstab::translate(&argv[1..]) {
            Ok(args) => Cli::parse_from(args),
            Err(e) => {
                eprintln!("tutela: {e}");
                std::process::exit(e.exit_code());
            }
        }
    } else {
        Cli::parse()
    };
    match run(cli) {
        Ok(()) => std::process::exit(exit::OK),
        Err(e) => {
            // A message may quote a name from the vault or a file: its lines are escaped.
            let text = e.to_string();
            let shown: Vec<_> = text.lines().map(tutela::text::escape).collect();
            eprintln!("tutela: {}", shown.join("\n"));
            std::process::exit(e.exit_code());
        }
    }
}
