//! The mount(8) helper convention: `mount -t fuse.tutela VAULT MOUNTPOINT -o OPTIONS` (and
//! /etc/fstab lines of type `fuse.tutela`) run `/sbin/mount.fuse.tutela VAULT MOUNTPOINT -o
//! OPTIONS`; `scripts/install.sh` links that name to the tutela binary. This turns those
//! options into the arguments of `tutela mount`.

use crate::error::{Error, Result};
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

/// True when the program was started under a mount helper name.
pub fn invoked_as_helper(argv0: &std::ffi::OsStr) -> bool {
    let name = std::path::Path::new(argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name == "mount.fuse.tutela" || name == "mount.tutela"
}

/// Options that mount(8), fstab and systemd act on themselves before the helper runs (when
/// to mount, who may: `user`, `users`, `owner` are checked by mount(8)), or that are the
/// default (`rw`): nothing is left for tutela to do with them.
fn handled_before(opt: &str) -> bool {
    matches!(
        opt,
        "defaults"
            | "rw"
            | "auto"
            | "noauto"
            | "nofail"
            | "_netdev"
            | "user"
            | "users"
            | "nouser"
            | "owner"
    ) || opt.starts_with("x-")
        || opt.starts_with("comment=")
}

/// Kernel mount flags, passed on to `tutela mount -o`, which applies or refuses each by name.
fn kernel_flag(opt: &str) -> bool {
    matches!(
        opt,
        "exec"
            | "noexec"
            | "suid"
            | "nosuid"
            | "dev"
            | "nodev"
            | "atime"
            | "noatime"
            | "relatime"
            | "strictatime"
            | "nodiratime"
            | "diratime"
            | "lazytime"
            | "sync"
            | "async"
            | "dirsync"
    )
}

/// `mount.fuse.tutela VAULT MOUNTPOINT [-o OPTS] [-n] [-s] [-f] [-v]` -> `tutela mount ...`.
pub fn translate(args: &[OsString]) -> Result<Vec<OsString>> {
    let usage = || {
        Error::Usage(
            "usage: mount.fuse.tutela VAULT MOUNTPOINT -o passfile=FILE|slot=LABEL[,ro][,allow_other][,idle=15m][,client_idle=15m][,keystore=PATH][,log_file=FILE][,threads=N]".into(),
        )
    };
    let mut pos = Vec::new();
    let mut opts = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("-o") => opts.push(it.next().ok_or_else(usage)?.to_string_lossy().into_owned()),
            Some(s) if s.starts_with("-o") && s.len() > 2 => opts.push(s[2..].to_string()),
            // -n (no mtab), -s (sloppy), -f (fake), -v (verbose) from mount(8).
            Some("-n") | Some("-s") | Some("-v") => {}
            Some("-f") => return Err(Error::Usage("fake mounts (-f) are not supported".into())),
            Some(s) if s.starts_with('-') => {
                return Err(Error::Usage(format!("mount.fuse.tutela: unknown flag {s}")))
            }
            _ => pos.push(a.clone()),
        }
    }
    let [vault, mountpoint] = <[OsString; 2]>::try_from(pos).map_err(|_| usage())?;
    // The source as the mount table shows it (`tutela:/srv/vault`) names the vault too, so
    // a mount can be repeated from what `findmnt` says (xfstests does).
    let vault = match vault.as_bytes().strip_prefix(b"tutela:") {
        Some(rest) => OsString::from(std::ffi::OsStr::from_bytes(rest)),
        None => vault,
    };
    let mut out: Vec<OsString> = vec!["tutela".into()];
    let mut keystore = None;
    let mut rest: Vec<OsString> = Vec::new();
    let mut have_pass = false;
    for o in opts
        .iter()
        .flat_map(|o| o.split(','))
        .filter(|o| !o.is_empty())
    {
        let (k, v) = match o.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (o, None),
        };
        match (k, v) {
            ("passfile", Some(f)) => {
                have_pass = true;
                rest.extend(["--passfile".into(), f.into()]);
            }
            ("extpass", Some(c)) => {
                have_pass = true;
                rest.extend(["--extpass".into(), c.into()]);
            }
            // A key slot that needs nobody (a TPM slot) is a way in without a terminal too.
            ("slot", Some(l)) => {
                have_pass = true;
                rest.extend(["--slot".into(), l.into()]);
            }
            // A TCTI with commas (swtpm:host=H,port=P) cannot sit in a comma-separated option
            // list: it goes in TPM2TOOLS_TCTI (docs/mounting.md).
            ("tpm2_tcti", Some(t)) => rest.extend(["--tpm2-tcti".into(), t.into()]),
            ("pin_file", Some(f)) => rest.extend(["--pin-file".into(), f.into()]),
            ("audit_syslog", None) => rest.push("--audit-syslog".into()),
            ("audit_syslog", Some(m)) => rest.extend(["--audit-syslog".into(), m.into()]),
            ("anchor_every", Some(d)) => rest.extend(["--anchor-every".into(), d.into()]),
            ("keystore", Some(p)) => keystore = Some(p.to_string()),
            // A FUSE mount cannot be switched between read-only and read-write in place
            // (xfstests 294, 306, 452): say so rather than half-do it.
            ("remount", None) => {
                return Err(Error::Usage(
                    "mount.fuse.tutela: remount is not supported (a tutela mount cannot switch \
                     between read-only and read-write in place): unmount it and mount it again \
                     with the options you want"
                        .into(),
                ))
            }
            ("ro", None) => rest.push("--read-only".into()),
            ("allow_other", None) => rest.push("--allow-other".into()),
            ("idle", Some(d)) => rest.extend(["--idle".into(), d.into()]),
            ("client_idle", Some(d)) => rest.extend(["--client-idle".into(), d.into()]),
            ("threads", Some(n)) => rest.extend(["--threads".into(), n.into()]),
            ("log_file" | "logfile", Some(f)) => rest.extend(["--log-file".into(), f.into()]),
            ("verbose", None) => rest.push("-v".into()),
            _ if kernel_flag(o) => rest.extend(["-o".into(), o.into()]),
            _ if handled_before(o) => {}
            _ => {
                return Err(Error::Usage(format!(
                    "mount.fuse.tutela: unknown option '{o}' (known: passfile=, extpass=, slot=, tpm2_tcti=, pin_file=, keystore=, audit_syslog[=paths], anchor_every=, ro, allow_other, idle=, client_idle=, threads=, log_file=, verbose, and the kernel flags noexec, exec, nosuid, nodev, sync, async, dirsync, noatime, relatime, strictatime)"
                )))
            }
        }
    }
    if !have_pass {
        return Err(Error::Usage(
            "mount.fuse.tutela: a mount from fstab or systemd has no terminal: give -o passfile=FILE (a root-only file), extpass=CMD or slot=LABEL (a TPM key slot)".into(),
        ));
    }
    out.extend(["mount".into(), vault, mountpoint]);
    if let Some(k) = keystore {
        out.extend(["--keystore".into(), k.into()]);
    }
    out.extend(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mount_tables_source_form_names_the_vault() {
        let a = t(&["tutela:/srv/v", "/srv/c", "-o", "passfile=/p"]).unwrap();
        assert!(a.contains(&"/srv/v".to_string()), "{a:?}");
    }

    fn t(args: &[&str]) -> Result<Vec<String>> {
        let a: Vec<OsString> = args.iter().map(OsString::from).collect();
        translate(&a).map(|v| v.into_iter().map(|s| s.into_string().unwrap()).collect())
    }

    #[test]
    fn fstab_options_become_mount_arguments() {
        assert_eq!(
            t(&[
                "/srv/v",
                "/srv/c",
                "-o",
                "rw,noauto,passfile=/etc/p,ro,allow_other,idle=15m,client_idle=10m,x-systemd.automount",
                "-n"
            ])
            .unwrap(),
            [
                "tutela",
                "mount",
                "/srv/v",
                "/srv/c",
                "--passfile",
                "/etc/p",
                "--read-only",
                "--allow-other",
                "--idle",
                "15m",
                "--client-idle",
                "10m"
            ]
        );
        assert_eq!(
            t(&["v", "m", "-okeystore=/k,passfile=p"]).unwrap(),
            [
                "tutela",
                "mount",
                "v",
                "m",
                "--keystore",
                "/k",
                "--passfile",
                "p"
            ]
        );
        // Kernel flags go on to `tutela mount -o`, which applies or refuses each by name.
        assert_eq!(
            t(&["v", "m", "-o", "passfile=p,noexec,users,suid"]).unwrap(),
            [
                "tutela",
                "mount",
                "v",
                "m",
                "--passfile",
                "p",
                "-o",
                "noexec",
                "-o",
                "suid"
            ]
        );
        assert!(t(&["v", "m", "-o", "ro"]).is_err(), "no passphrase source");
        assert!(t(&["v", "m", "-o", "passfile=p,bogus"]).is_err());
        // A TPM slot needs no passphrase source.
        assert_eq!(
            t(&[
                "v",
                "m",
                "-o",
                "slot=office-server,tpm2_tcti=device:/dev/tpmrm0"
            ])
            .unwrap(),
            [
                "tutela",
                "mount",
                "v",
                "m",
                "--slot",
                "office-server",
                "--tpm2-tcti",
                "device:/dev/tpmrm0"
            ]
        );
        assert!(t(&["v", "-o", "passfile=p"]).is_err());
    }
}
