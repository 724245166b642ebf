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
        } => {
            let mut v = unlock(&vault, &pass)?;
            let p = new_passphrase(new_passfile.as_deref(), strict)?;
            v.add_slot(&label, &p)?;
            offline_record(&v, "key-add", Some(format!("key '{label}'")));
            println!(
                "passphrase '{label}' added ({} in all)",
                v.config.slots.len()
            );
            Ok(())
        }
        KeyCmd::List { vault, pass, json } => {
            let v = unlock(&vault, &pass)?;
            let labels = v.slot_labels();
            if json {
                println!("{}", serde_json::json!({ "keys": labels }));
            } else {
                for l in labels {
                    println!("{}", escape(&l));
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
