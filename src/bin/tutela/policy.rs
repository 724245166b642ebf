//! `tutela policy check|set|show|clear`.

use crate::cli::PolicyCmd;
use crate::common::*;
use std::path::Path;
use tutela::error::{Error, Result};

pub fn policy(cmd: PolicyCmd) -> Result<()> {
    match cmd {
        PolicyCmd::Check { file } => {
            let text = read_policy_file(&file)?;
            let p = tutela::daemon::mount::parse_policy(&text, &file.display().to_string())?;
            println!(
                "{}: ok ({} clients, {} admins)",
                file.display(),
                p.clients.len(),
                p.admins.len()
            );
            Ok(())
        }
        PolicyCmd::Set { vault, file, pass } => {
            let text = read_policy_file(&file)?;
            let p = tutela::daemon::mount::parse_policy(&text, &file.display().to_string())?;
            let mut v = unlock(&vault, &pass)?;
            v.store_policy(&text)?;
            offline_record(
                &v,
                "policy-set",
                Some(format!("{} clients", p.clients.len())),
            );
            println!(
                "policy stored ({} clients); a live mount applies it within a second",
                p.clients.len()
            );
            Ok(())
        }
        PolicyCmd::Show { vault, pass } => {
            let v = unlock(&vault, &pass)?;
            match v.read_policy()? {
                Some(t) => print!("{t}"),
                None => println!("# no policy stored: Unix owners and modes alone decide access"),
            }
            Ok(())
        }
        PolicyCmd::Clear { vault, pass } => {
            let mut v = unlock(&vault, &pass)?;
            v.clear_policy()?;
            offline_record(&v, "policy-clear", None);
            println!("policy removed");
            Ok(())
        }
    }
}

fn read_policy_file(file: &Path) -> Result<String> {
    let bytes = std::fs::read(file)
        .map_err(|e| Error::PolicyInvalid(format!("{}: cannot read: {e}", file.display())))?;
    String::from_utf8(bytes)
        .map_err(|_| Error::PolicyInvalid(format!("{}:1:1: the file is not UTF-8", file.display())))
}
