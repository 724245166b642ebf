//! The `tutela` command: parse arguments, set up logging, run one command, and turn its error
//! into one clear line and a documented exit code.

#![deny(unsafe_code)]

mod audit;
mod cli;
mod client;
mod common;
mod fsck;
mod init;
mod key;
mod lifecycle;
mod lock;
mod manual;
mod mount;
mod passwd;
mod policy;
mod prune;
mod rekey;
mod report;
mod status;

use clap::Parser;
use cli::{Cli, Command};
use std::path::Path;
use tutela::error::{exit, Result};

fn init_logging(verbose: u8, file: Option<&Path>) -> Result<()> {
    tutela::daemon::logging::init(verbose, file)
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Init {
            vault,
            pass,
            label,
            strict,
        } => {
            init_logging(cli.verbose, None)?;
            init::run(&vault, &pass, &label, strict)
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
            client_idle,
            client,
            threads,
            log_file,
            options,
            audit_syslog,
            anchor_every,
        } => {
            init_logging(cli.verbose, log_file.as_deref())?;
            mount::run(mount::Args {
                vault,
                mountpoint,
                pass,
                recovery_key,
                foreground,
                read_only,
                allow_other,
                idle,
                client_idle,
                client,
                threads,
                log_file,
                options,
                audit_syslog,
                anchor_every,
            })
        }
        Command::Fsck {
            vault,
            pass,
            repair,
            keep,
            json,
        } => {
            init_logging(cli.verbose, None)?;
            fsck::fsck(&vault, &pass, repair, keep, json)
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
            passwd::passwd(
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
            key::key(cmd)
        }
        Command::Status { json } => status::status(json),
        Command::Lock {
            target,
            client,
            force,
            json,
            pass,
        } => lock::lock(&target, &client, force, json, &pass),
        Command::Unlock {
            target,
            client,
            json,
            pass,
        } => lock::unlock(&target, &client, json, &pass),
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
            rekey::rekey(&vault, &pass, client.as_deref(), all, resume, yes)
        }
        Command::Client { cmd } => {
            init_logging(cli.verbose, None)?;
            client::client(cmd)
        }
        Command::Policy { cmd } => {
            init_logging(cli.verbose, None)?;
            policy::policy(cmd)
        }
        Command::Audit { cmd } => {
            init_logging(cli.verbose, None)?;
            audit::audit(cmd)
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
