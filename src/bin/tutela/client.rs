//! `tutela client add|export|shred|list`.

use crate::cli::ClientCmd;
use crate::common::*;
use std::time::Duration;
use tutela::error::{Error, Result};
use tutela::text::escape;

pub fn client(cmd: ClientCmd) -> Result<()> {
    match cmd {
        ClientCmd::Add {
            vault,
            name,
            path,
            pass,
        } => {
            // As `client import` does: a client's folder is under /clients unless said.
            let path = path.unwrap_or_else(|| format!("/clients/{name}"));
            let mut v = unlock(&vault, &pass)?;
            if let Some(d) = live_daemon(&v)? {
                let req = tutela::daemon::control::Request::ClientAdd {
                    name: name.clone(),
                    path: path.clone(),
                };
                return remote(d, &v, &req, false);
            }
            let bar = indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::stderr(),
            );
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} re-encrypting: {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            let res = tutela::offline::clients::add(&mut v, &name, &path, &mut |s| {
                bar.set_message(format!("{} entries, {} MiB", s.entries, s.bytes >> 20));
                bar.tick();
            });
            bar.finish_and_clear();
            let added = res?;
            offline_record(&v, "client-add", Some(format!("client '{name}'")));
            if added.adopted {
                println!(
                    "client '{name}' added: the {} entries already in {path} ({} bytes) were re-encrypted under its own key",
                    added.stats.entries, added.stats.bytes
                );
            } else {
                println!(
                    "client '{name}' added: files created in {path} are encrypted under its own key"
                );
            }
            Ok(())
        }
        ClientCmd::Export {
            vault,
            name,
            output,
            pass,
            json,
        } => {
            tutela::vault::Vault::read_config(&vault)?;
            let how = how(&vault, &pass)?;
            let v = match tutela::offline::open_vault(&vault, &how, pass.keystore.as_deref()) {
                Ok(v) => v,
                // A client key may export its own client (and nothing else).
                Err(Error::ClientKeyOnly { client, .. }) if client == name => {
                    let (config, keys) = tutela::offline::clients::unlock_client(
                        &vault,
                        &how,
                        &name,
                        pass.keystore.as_deref(),
                    )?;
                    drop(how);
                    let rep = with_export_bar(|start, progress| {
                        tutela::offline::export::export_scoped(
                            &vault, &config, &keys, &output, start, progress,
                        )
                    })?;
                    print_export(&name, &output, &rep, json);
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            drop(how);
            show_sync_notes(&v);
            if let Some(d) = live_daemon(&v)? {
                // The daemon writes the export: it needs the path from here, whole.
                let output = std::path::absolute(&output).map_err(Error::Io)?;
                let req = tutela::daemon::control::Request::ClientExport {
                    name: name.clone(),
                    output,
                };
                return remote(d, &v, &req, json);
            }
            // The export is recorded in the audit log, which a live mount holds.
            let lock = tutela::audit::lock(&v.dir)?;
            let rep = with_export_bar(|start, progress| {
                tutela::offline::export::export(&v, &name, &output, start, progress)
            })?;
            drop(lock);
            offline_record(
                &v,
                "client-export",
                Some(format!(
                    "client '{name}': {} files, {} bytes",
                    rep.files, rep.bytes
                )),
            );
            print_export(&name, &output, &rep, json);
            Ok(())
        }
        ClientCmd::Shred {
            vault,
            name,
            yes,
            certificate,
            oldest_backup,
            pass,
        } => {
            let oldest = crate::lifecycle::oldest_backup(oldest_backup.as_deref())?;
            if let Some(c) = certificate.as_ref().filter(|c| !c.is_dir()) {
                if c.symlink_metadata().is_ok() {
                    return Err(Error::Usage(format!(
                        "{} exists: a certificate is never written over a file",
                        c.display()
                    )));
                }
            }
            let mut v = unlock(&vault, &pass)?;
            crate::lifecycle::settle_drafts(&v);
            let i = tutela::offline::clients::zone_index(&v, &name)?;
            tutela::offline::lifecycle::check_not_held(&v.zones[i].meta, &name)?;
            if !yes {
                confirm(
                    "shred destroys the client's files for good: confirm on a terminal, or pass --yes",
                    &format!("This destroys client '{name}' and every file in its folder, with no undo."),
                    &name,
                )?;
            }
            let daemon = live_daemon(&v)?;
            // What the certificate says goes into the vault before the key goes.
            let draft = crate::lifecycle::draft(
                &v,
                i,
                "shred",
                certificate.as_deref(),
                oldest,
                daemon.is_some(),
            )?;
            if let Some(d) = daemon {
                let req = tutela::daemon::control::Request::ClientShred { name: name.clone() };
                if let Err(e) = remote(d, &v, &req, false) {
                    return Err(crate::lifecycle::failed(&mut v, &draft, e));
                }
                tutela::faults::point("shred-before-certificate");
                let cert = crate::lifecycle::certify(&v, &draft, None)?;
                println!("erasure certificate: {}", cert.display());
                return Ok(());
            }
            let bar = indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::stderr(),
            );
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} shredding client '{msg}'")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.set_message(name.clone());
            bar.enable_steady_tick(Duration::from_millis(120));
            offline_record_result(
                &v,
                "client-shred",
                "started",
                Some(format!("client '{name}' at {}", draft.folder)),
            );
            let res = tutela::offline::clients::shred(&mut v, &name);
            bar.finish_and_clear();
            let s = res.map_err(|e| crate::lifecycle::failed(&mut v, &draft, e))?;
            offline_record(
                &v,
                "client-shred",
                Some(format!(
                    "client '{name}' at {}: key destroyed, {} files ({} bytes) deleted",
                    s.path, s.files, s.bytes
                )),
            );
            println!(
                "client '{name}' shredded: its key is destroyed and its {} files are deleted.",
                s.files
            );
            tutela::faults::point("shred-before-certificate");
            let cert = crate::lifecycle::certify(&v, &draft, None)?;
            println!("erasure certificate: {}", cert.display());
            if v.keystore.is_none() {
                println!("note: this vault keeps its keys in its config, so a backup of the vault taken before now still holds the key (see README, Client rights).");
            }
            Ok(())
        }
        ClientCmd::Info {
            vault,
            name,
            pass,
            json,
        } => crate::lifecycle::info(&vault, &pass, &name, json),
        ClientCmd::Set {
            vault,
            name,
            retain,
            reference,
            responsible,
            opened,
            pass,
        } => crate::lifecycle::set(
            &vault,
            &pass,
            &name,
            crate::lifecycle::SetArgs {
                retain,
                reference,
                responsible,
                opened,
            },
        ),
        ClientCmd::Close {
            vault,
            name,
            reason,
            date,
            wait,
            pass,
        } => crate::lifecycle::close(
            &vault,
            &pass,
            &name,
            &reason,
            crate::lifecycle::CloseHow {
                date: date.as_deref(),
                wait,
                reopen: false,
            },
        ),
        ClientCmd::Reopen {
            vault,
            name,
            reason,
            pass,
        } => crate::lifecycle::close(
            &vault,
            &pass,
            &name,
            &reason,
            crate::lifecycle::CloseHow {
                date: None,
                wait: None,
                reopen: true,
            },
        ),
        ClientCmd::Hold {
            vault,
            name,
            reason,
            pass,
        } => crate::lifecycle::hold(&vault, &pass, &name, &reason, true),
        ClientCmd::Release {
            vault,
            name,
            reason,
            pass,
        } => crate::lifecycle::hold(&vault, &pass, &name, &reason, false),
        ClientCmd::Due { vault, pass, json } => crate::lifecycle::due(&vault, &pass, json),
        ClientCmd::Expire {
            vault,
            dry_run,
            yes,
            certificates,
            oldest_backup,
            trust_clock,
            pass,
        } => crate::lifecycle::expire(
            &vault,
            &pass,
            crate::lifecycle::ExpireArgs {
                dry_run,
                yes,
                certificates,
                oldest_backup,
                trust_clock,
            },
        ),
        ClientCmd::Import {
            vault,
            name,
            src,
            path,
            resume,
            manifest,
            pass,
            json,
        } => crate::lifecycle::import(crate::lifecycle::ImportArgs {
            vault,
            name,
            src,
            path,
            resume,
            manifest,
            pass,
            json,
        }),
        ClientCmd::VerifyCertificate { file, pubkey } => {
            crate::lifecycle::verify_certificate(&file, pubkey.as_deref())
        }
        ClientCmd::List { vault, pass, json } => {
            let v = unlock(&vault, &pass)?;
            crate::lifecycle::settle_drafts(&v);
            let list = tutela::offline::clients::list(&v)?;
            if json {
                println!("{}", serde_json::json!({ "clients": list }));
            } else {
                for c in list {
                    println!(
                        "{}\t{}\t{} files\t{} bytes",
                        escape(&c.name),
                        escape(&c.path),
                        c.files,
                        c.bytes
                    );
                }
            }
            Ok(())
        }
    }
}

/// Runs an export with a progress bar on stderr.
fn with_export_bar(
    f: impl FnOnce(&dyn Fn(u64), &dyn Fn(u64)) -> Result<tutela::offline::export::ExportReport>,
) -> Result<tutela::offline::export::ExportReport> {
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "exporting {bytes}/{total_bytes} [{bar:30}] {eta} left",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let res = f(&|total| bar.set_length(total), &|done| {
        bar.set_position(done)
    });
    bar.finish_and_clear();
    res
}

fn print_export(
    name: &str,
    output: &std::path::Path,
    rep: &tutela::offline::export::ExportReport,
    json: bool,
) {
    if json {
        println!(
            "{}",
            serde_json::json!({ "client": name, "output": output, "export": rep })
        );
    } else {
        println!(
            "exported client '{}' to {}: {} files, {} folders, {} symlinks, {} bytes; checksums in {}{}",
            escape(name),
            output.display(),
            rep.files,
            rep.dirs,
            rep.symlinks,
            rep.bytes,
            tutela::offline::export::MANIFEST,
            if rep.skipped > 0 {
                format!(" ({} special files such as FIFOs left out)", rep.skipped)
            } else {
                String::new()
            }
        );
    }
}
