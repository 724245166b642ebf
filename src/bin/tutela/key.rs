//! `tutela key add|list|remove`.

use crate::cli::KeyCmd;
use crate::common::*;
use tutela::error::Result;
use tutela::text::escape;

pub fn key(cmd: KeyCmd) -> Result<()> {
    match cmd {
        KeyCmd::Add {
            vault,
            label,
            pass,
            new_passfile,
            strict,
            client,
        } => {
            let mut v = unlock(&vault, &pass)?;
            // Checked before asking for the new passphrase.
            let top = client
                .as_deref()
                .map(|c| tutela::offline::clients::top_dir_id(&v, c))
                .transpose()?;
            let p = new_passphrase(new_passfile.as_deref(), strict)?;
            match (&client, top) {
                (Some(c), Some(top)) => {
                    v.add_client_slot(&label, &p, c, top)?;
                    offline_record(
                        &v,
                        "key-add",
                        Some(format!("key '{label}', client '{c}' only")),
                    );
                    println!(
                        "passphrase '{}' added: it opens client '{}' only",
                        escape(&label),
                        escape(c)
                    );
                }
                _ => {
                    v.add_slot(&label, &p)?;
                    offline_record(&v, "key-add", Some(format!("key '{label}'")));
                    println!(
                        "passphrase '{}' added ({} in all)",
                        escape(&label),
                        v.config.slots.len()
                    );
                }
            }
            Ok(())
        }
        KeyCmd::List { vault, pass, json } => {
            let v = unlock(&vault, &pass)?;
            let slots = v.all_slots();
            if json {
                // "keys" stays the list of labels it always was; "slots" says more.
                let labels: Vec<&str> = slots.iter().map(|s| s.label.as_str()).collect();
                println!("{}", serde_json::json!({ "keys": labels, "slots": slots }));
            } else {
                for s in slots {
                    match &s.client {
                        Some(c) => println!("{}  (client '{}' only)", escape(&s.label), escape(c)),
                        None if s.kind == "unknown" => println!(
                            "{}  (a key slot of a later tutela: skipped, kept)",
                            escape(&s.label)
                        ),
                        None => println!("{}", escape(&s.label)),
                    }
                }
            }
            Ok(())
        }
        KeyCmd::Remove { vault, label, pass } => {
            let mut v = unlock(&vault, &pass)?;
            v.remove_slot(&label)?;
            offline_record(&v, "key-remove", Some(format!("key '{label}'")));
            println!("passphrase '{label}' removed (an old copy of the config still opens with it: see README)");
            Ok(())
        }
    }
}
