//! Man pages: clap_mangen's pages for every command, and for `tutela(1)` the sections a
//! reader of a man page looks for that clap knows nothing of: exit status, examples, fstab
//! options, files and environment.

use std::io::Write;
use std::path::Path;
use tutela::error::exit;

const EXAMPLES: &[(&str, &str)] = &[
    (
        "tutela init ~/vault",
        "create a vault (asks for a passphrase twice, prints a recovery key)",
    ),
    (
        "tutela mount ~/vault ~/Clients",
        "unlock and mount; returns once the mount is live",
    ),
    (
        "tutela mount ~/vault ~/Clients --idle 15m -o noexec",
        "lock after 15 idle minutes; no programs run from the mount",
    ),
    ("tutela unmount ~/Clients", "flush and lock"),
    (
        "tutela lock ~/Clients acme",
        "lock one client on the live mount; the others stay open (tutela unlock brings it back)",
    ),
    (
        "tutela key add ~/vault --label contractor --client acme",
        "a passphrase that opens Acme's keys only",
    ),
    (
        "tutela mount ~/vault ~/acme --client acme",
        "mount Acme's folder alone, holding Acme's keys only",
    ),
    (
        "sudo tutela policy set /srv/vault policy.toml",
        "store a per-client access policy; a live mount applies it",
    ),
    (
        "sudo tutela audit show /srv/vault --client acme --since 72h",
        "who touched Acme's files in the last three days",
    ),
    (
        "tutela fsck ~/vault --repair",
        "check everything without mounting; repair what needs no guessing",
    ),
];

const FSTAB: &str = "A line of type fuse.tutela in /etc/fstab mounts through mount(8) and \
/sbin/mount.fuse.tutela: passfile=FILE or extpass=CMD (required: boot has no terminal), \
keystore=PATH, ro, allow_other, idle=DURATION, client_idle=DURATION, threads=N, log_file=FILE, verbose; the kernel \
flags noexec, exec, nosuid, nodev, sync, async, dirsync, noatime, relatime, atime and \
strictatime are applied, nodiratime accepted; suid, dev and lazytime are refused; noauto, nofail, _netdev, \
defaults, user, users, owner and x-systemd.* are mount(8)'s and systemd's own. Any other option \
is refused (exit 2).";

const FILES: &[(&str, &str)] = &[
    (
        "VAULT/tutela.conf",
        "the config: key slots, zone table, policy binding (MAC'd)",
    ),
    ("VAULT/tutela.policy", "the sealed access policy"),
    (
        "VAULT/tutela.audit/",
        "the encrypted, chained audit log: one chain per copy of the vault (r-ID/)",
    ),
    (
        "/run/tutela/, $XDG_RUNTIME_DIR/tutela/",
        "status of live mounts (tutela status)",
    ),
    (
        "/sbin/mount.fuse.tutela",
        "the mount(8) helper (a link to tutela)",
    ),
];

const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "RUST_LOG",
        "log filter for the daemon's log (-v and -vv set it too)",
    ),
    (
        "TUTELA_TEST_INSECURE_KDF",
        "test builds only (the test-hooks feature; release builds ignore it): a vault created with it uses a fast, insecure KDF",
    ),
];

/// roff text, escaped: a leading dot or quote would be read as a request, a backslash as an
/// escape.
fn roff(s: &str) -> String {
    let s = s.replace('\\', "\\\\").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

fn tagged(out: &mut Vec<u8>, title: &str, rows: &[(String, String)]) {
    let _ = writeln!(out, ".SH \"{title}\"");
    for (tag, text) in rows {
        let _ = writeln!(out, ".TP\n\\fB{}\\fR\n{}", roff(tag), roff(text));
    }
}

/// The sections appended to tutela(1).
fn extra_sections() -> Vec<u8> {
    let mut out = Vec::new();
    let codes: Vec<(String, String)> = exit::MEANINGS
        .iter()
        .map(|(c, m)| (c.to_string(), m.to_string()))
        .collect();
    tagged(&mut out, "EXIT STATUS", &codes);
    let ex: Vec<(String, String)> = EXAMPLES
        .iter()
        .map(|(c, m)| (c.to_string(), m.to_string()))
        .collect();
    tagged(&mut out, "EXAMPLES", &ex);
    let _ = writeln!(out, ".SH \"FSTAB OPTIONS\"\n{}", roff(FSTAB));
    let rows = |t: &[(&str, &str)]| -> Vec<(String, String)> {
        t.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    tagged(&mut out, "FILES", &rows(FILES));
    tagged(&mut out, "ENVIRONMENT", &rows(ENVIRONMENT));
    let _ = writeln!(
        out,
        ".SH \"SEE ALSO\"\nmount(8), fstab(5), fusermount3(1); README.md, docs/cli.md, docs/threat-model.md and FORMAT.md in the sources"
    );
    out
}

/// Writes tutela(1) and a page per command into `dir`.
pub fn write_pages(cmd: clap::Command, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(cmd.clone(), dir)?;
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut page)?;
    page.extend(extra_sections());
    std::fs::write(dir.join("tutela.1"), page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_lists_every_exit_code_the_man_page_does() {
        let readme = include_str!("../../../docs/cli.md");
        for (code, _) in exit::MEANINGS {
            assert!(
                readme.contains(&format!("\n| {code} | ")),
                "docs/cli.md's exit code table lacks {code}"
            );
        }
    }

    #[test]
    fn every_positional_argument_is_described() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_positionals() {
                if a.get_help().is_none() {
                    missing.push(format!("{path} <{}>", a.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        let cmd = <crate::cli::Cli as clap::CommandFactory>::command();
        walk(&cmd, "tutela", &mut missing);
        assert!(missing.is_empty(), "no description: {missing:?}");
    }

    #[test]
    fn the_man_page_has_the_sections_a_reader_looks_for() {
        let text = String::from_utf8(extra_sections()).unwrap();
        for s in [
            "EXIT STATUS",
            "EXAMPLES",
            "FSTAB OPTIONS",
            "FILES",
            "ENVIRONMENT",
        ] {
            assert!(text.contains(&format!(".SH \"{s}\"")), "{s}");
        }
        assert!(text.contains("\\fB25\\fR"));
        assert_eq!(roff(".hidden"), "\\&.hidden");
    }
}
