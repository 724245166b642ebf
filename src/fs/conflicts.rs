//! Sync tools' conflict copies of encrypted names. When a vault lives in a sync folder and a
//! file changes on two machines, the tool keeps both by renaming one: it decorates the
//! *backing* name (an encrypted name plus, say, `.sync-conflict-20261204-101112-ABCDEF7`),
//! which no longer decrypts. Here such a name is split into the encrypted name and the
//! decoration, so the listing can show the copy as `report (conflict 2026-12-04 10.11.12
//! ABCDEF7).docx` instead of hiding it. Pure: which part is the encrypted name is decided by
//! the caller, by decrypting it (authenticated), so a decoration that happens to look like
//! part of a name can never produce a wrong entry.
//!
//! The decorations are the tools' documented ones:
//! - Syncthing: `NAME.sync-conflict-YYYYMMDD-HHMMSS-DEVICE` (DEVICE: 7 characters of the
//!   device ID);
//! - Nextcloud and ownCloud: `NAME (conflicted copy [USER ]YYYY-MM-DD HHMMSS)`, and ownCloud's
//!   older `NAME_conflict-YYYYMMDD-HHMMSS`;
//! - Dropbox: `NAME (DEVICE's conflicted copy YYYY-MM-DD)`, perhaps followed by ` (N)`;
//! - OneDrive: `NAME-DEVICE` (the computer's name);
//! - Google Drive for desktop: `NAME (N)`;
//! - Seafile: `NAME (SFConflict EMAIL YYYY-MM-DD-HH-MM-SS)`;
//! - iCloud Drive: `NAME N`.
//!
//! Every piece taken from a decoration into a displayed name is checked against a narrow
//! character set: a name in the backing directory is anyone's to choose, and must not put a
//! `/`, a control character or a terminal escape into a listing.

/// What a conflict decoration says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoration {
    pub tool: &'static str,
    /// `YYYY-MM-DD`.
    pub date: Option<String>,
    /// `HH.MM.SS` (dots: a colon would upset Windows and macOS clients over Samba).
    pub time: Option<String>,
    /// The device or user the tool names.
    pub who: Option<String>,
    /// A copy number.
    pub n: Option<String>,
}

/// Longest decoration piece taken into a displayed name.
const MAX_PIECE: usize = 48;

fn digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

/// Device, user and e-mail names: letters, digits and `._@-` (and inner spaces and
/// apostrophes, "Alice's MacBook", where a tool allows them), at most `MAX_PIECE` bytes.
fn who_ok(s: &str, spaces: bool) -> bool {
    !s.is_empty()
        && s.len() <= MAX_PIECE
        && !s.starts_with(' ')
        && !s.ends_with(' ')
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || b"._@-".contains(&b) || (spaces && b" '".contains(&b))
        })
}

/// `YYYYMMDD` -> `YYYY-MM-DD`.
fn compact_date(s: &str) -> Option<String> {
    digits(s, 8).then(|| format!("{}-{}-{}", &s[..4], &s[4..6], &s[6..]))
}

/// `HHMMSS` -> `HH.MM.SS`.
fn compact_time(s: &str) -> Option<String> {
    digits(s, 6).then(|| format!("{}.{}.{}", &s[..2], &s[2..4], &s[4..]))
}

fn dashed_date(s: &str) -> Option<String> {
    let p: Vec<&str> = s.split('-').collect();
    (p.len() == 3 && digits(p[0], 4) && digits(p[1], 2) && digits(p[2], 2)).then(|| s.to_string())
}

fn dec(tool: &'static str) -> Decoration {
    Decoration {
        tool,
        date: None,
        time: None,
        who: None,
        n: None,
    }
}

/// Every way `name` can be an encrypted name plus a known decoration: (the encrypted name,
/// the decoration), most specific first. Empty for a name no tool makes.
pub fn candidates(name: &str) -> Vec<(&str, Decoration)> {
    let mut out = Vec::new();
    // Syncthing.
    if let Some((base, rest)) = name.rsplit_once(".sync-conflict-") {
        let p: Vec<&str> = rest.split('-').collect();
        if p.len() == 3 && p[2].len() == 7 && p[2].bytes().all(|b| b.is_ascii_alphanumeric()) {
            if let (Some(date), Some(time)) = (compact_date(p[0]), compact_time(p[1])) {
                out.push((
                    base,
                    Decoration {
                        date: Some(date),
                        time: Some(time),
                        who: Some(p[2].to_string()),
                        ..dec("Syncthing")
                    },
                ));
            }
        }
    }
    if let Some(inner) = name.strip_suffix(')') {
        // Nextcloud / ownCloud.
        if let Some((base, rest)) = inner.rsplit_once(" (conflicted copy ") {
            if let Some(d) = nextcloud(rest) {
                out.push((base, d));
            }
        }
        // Seafile.
        if let Some((base, rest)) = inner.rsplit_once(" (SFConflict ") {
            if let Some((email, stamp)) = rest.rsplit_once(' ') {
                let t: Vec<&str> = stamp.split('-').collect();
                if t.len() == 6
                    && who_ok(email, false)
                    && digits(t[0], 4)
                    && t[1..].iter().all(|x| digits(x, 2))
                {
                    out.push((
                        base,
                        Decoration {
                            date: Some(format!("{}-{}-{}", t[0], t[1], t[2])),
                            time: Some(format!("{}.{}.{}", t[3], t[4], t[5])),
                            who: Some(email.to_string()),
                            ..dec("Seafile")
                        },
                    ));
                }
            }
        }
    }
    // Dropbox, with or without a copy number after it.
    let (dropbox, n) = match name.strip_suffix(')').and_then(|s| s.rsplit_once(" (")) {
        Some((before, num)) if !num.is_empty() && num.len() <= 3 && digits(num, num.len()) => {
            (before, Some(num))
        }
        _ => (name, None),
    };
    if let Some((base, rest)) = dropbox.strip_suffix(')').and_then(|s| s.rsplit_once(" (")) {
        if let Some((who, date)) = rest.rsplit_once("'s conflicted copy ") {
            if let Some(date) = dashed_date(date).filter(|_| who_ok(who, true)) {
                out.push((
                    base,
                    Decoration {
                        date: Some(date),
                        who: Some(who.to_string()),
                        n: n.map(str::to_string),
                        ..dec("Dropbox")
                    },
                ));
            }
        }
    }
    // ownCloud's older form.
    if let Some((base, rest)) = name.rsplit_once("_conflict-") {
        if let Some((d, t)) = rest.split_once('-') {
            if let (Some(date), Some(time)) = (compact_date(d), compact_time(t)) {
                out.push((
                    base,
                    Decoration {
                        date: Some(date),
                        time: Some(time),
                        ..dec("ownCloud")
                    },
                ));
            }
        }
    }
    // Google Drive: ` (N)`.
    if let Some((base, num)) = name.strip_suffix(')').and_then(|s| s.rsplit_once(" (")) {
        if !num.is_empty() && num.len() <= 3 && digits(num, num.len()) {
            out.push((
                base,
                Decoration {
                    n: Some(num.to_string()),
                    ..dec("Google Drive")
                },
            ));
        }
    }
    // iCloud: ` N`.
    if let Some((base, num)) = name.rsplit_once(' ') {
        if !num.is_empty() && num.len() <= 3 && digits(num, num.len()) {
            out.push((
                base,
                Decoration {
                    n: Some(num.to_string()),
                    ..dec("iCloud")
                },
            ));
        }
    }
    // OneDrive: `-DEVICE`. Encrypted names contain '-' too, so every split in the last 16
    // characters is a candidate; only one whose base decrypts is taken.
    for (i, _) in name.match_indices('-') {
        let (base, device) = (&name[..i], &name[i + 1..]);
        if !base.is_empty()
            && (1..=15).contains(&device.len())
            && device
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            out.push((
                base,
                Decoration {
                    who: Some(device.to_string()),
                    ..dec("OneDrive")
                },
            ));
        }
    }
    out.retain(|(base, _)| !base.is_empty());
    out
}

/// The inside of Nextcloud's `(conflicted copy [USER ]YYYY-MM-DD HHMMSS)`.
fn nextcloud(rest: &str) -> Option<Decoration> {
    let (before, time) = rest.rsplit_once(' ')?;
    let (user, date) = match before.rsplit_once(' ') {
        Some((user, date)) => (Some(user).filter(|u| who_ok(u, true))?.into(), date),
        None => (None, before),
    };
    Some(Decoration {
        date: Some(dashed_date(date)?),
        time: Some(compact_time(time)?),
        who: user.map(str::to_string),
        ..dec("Nextcloud")
    })
}

/// The name a conflict copy of the file named `plain` is shown under: the decoration's
/// facts in parentheses before the extension, so that applications still know the type.
/// None when the result would not be a valid name (too long).
pub fn display(plain: &[u8], d: &Decoration) -> Option<Vec<u8>> {
    // The extension: from the last dot, unless that dot starts the name (".bashrc").
    let cut = plain
        .iter()
        .rposition(|&b| b == b'.')
        .filter(|&i| i > 0 && plain.len() - i <= 16);
    let (stem, ext) = plain.split_at(cut.unwrap_or(plain.len()));
    let mut parts: Vec<String> = vec!["conflict".into()];
    parts.extend(d.date.clone());
    parts.extend(d.time.clone());
    parts.extend(d.who.clone());
    if let Some(n) = &d.n {
        parts.push(format!("#{n}"));
    }
    if parts.len() == 1 {
        parts.push(d.tool.to_string());
    }
    let mut out = stem.to_vec();
    out.extend_from_slice(format!(" ({})", parts.join(" ")).as_bytes());
    out.extend_from_slice(ext);
    (out.len() <= 255).then_some(out)
}

/// For offline checks (fsck): when backing name `name` in directory `dir` (ID `dir_id`) is
/// a conflict copy of an entry whose name `names` opens: (the entry's plaintext name, the
/// name the copy is shown under, the tool).
pub(crate) fn identify(
    names: &crate::crypto::names::NameCipher,
    dir: std::os::fd::BorrowedFd<'_>,
    dir_id: &crate::crypto::Id,
    name: &[u8],
) -> Option<(Vec<u8>, Vec<u8>, &'static str)> {
    let name = std::str::from_utf8(name).ok()?;
    candidates(name).into_iter().find_map(|(base, d)| {
        let full = super::dir::full_encoded(dir, base.as_bytes()).ok()?;
        let plain = names.decrypt(dir_id, &full).ok()?;
        let shown = display(&plain, &d)?;
        Some((plain, shown, d.tool))
    })
}

/// Whether a backing name is a sync tool's own bookkeeping (Syncthing's folder marker and
/// temporary files, Dropbox's and Nextcloud's databases and logs, desktop litter): neither
/// data nor damage, so it is passed over without a warning.
pub(crate) fn sync_tool_file(name: &[u8]) -> bool {
    const EXACT: &[&[u8]] = &[
        b".stfolder",
        b".stignore",
        b".stversions",
        b".dropbox",
        b".dropbox.cache",
        b".dropbox.attr",
        b".owncloudsync.log",
        b".nextcloudsync.log",
        b".sync-exclude.lst",
        b".DS_Store",
        b"desktop.ini",
        b"Thumbs.db",
    ];
    EXACT.contains(&name)
        || (name.starts_with(b".syncthing.") && name.ends_with(b".tmp"))
        || (name.starts_with(b"~syncthing~") && name.ends_with(b".tmp"))
        || name.starts_with(b".sync_")
        || name.starts_with(b"._sync_")
        || name.starts_with(b".owncloudsync.log")
}

/// Whether a looked-up name could be a conflict copy's displayed name (cheap: a lookup that
/// found nothing asks this before scanning the directory).
pub fn may_be_display(name: &[u8]) -> bool {
    name.windows(11).any(|w| w == b" (conflict ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: &str = "Qk3x-9_abcDEF0123";

    fn only(name: &str, tool: &str) -> Decoration {
        let c: Vec<_> = candidates(name)
            .into_iter()
            .filter(|(b, d)| *b == E && d.tool == tool)
            .collect();
        assert_eq!(c.len(), 1, "{name}: {:?}", candidates(name));
        c[0].1.clone()
    }

    fn shown(d: &Decoration) -> String {
        String::from_utf8(display(b"report.docx", d).unwrap()).unwrap()
    }

    #[test]
    fn every_tools_decoration_is_recognised_and_shown_before_the_extension() {
        let cases = [
            (
                format!("{E}.sync-conflict-20261204-101112-ABCDEF7"),
                "Syncthing",
                "report (conflict 2026-12-04 10.11.12 ABCDEF7).docx",
            ),
            (
                format!("{E} (conflicted copy 2026-12-04 101112)"),
                "Nextcloud",
                "report (conflict 2026-12-04 10.11.12).docx",
            ),
            (
                format!("{E} (conflicted copy alice 2026-12-04 101112)"),
                "Nextcloud",
                "report (conflict 2026-12-04 10.11.12 alice).docx",
            ),
            (
                format!("{E}_conflict-20261204-101112"),
                "ownCloud",
                "report (conflict 2026-12-04 10.11.12).docx",
            ),
            (
                format!("{E} (LAPTOP's conflicted copy 2026-12-04)"),
                "Dropbox",
                "report (conflict 2026-12-04 LAPTOP).docx",
            ),
            (
                format!("{E} (Alice's MacBook's conflicted copy 2026-12-04) (1)"),
                "Dropbox",
                "report (conflict 2026-12-04 Alice's MacBook #1).docx",
            ),
            (
                format!("{E}-LAPTOP"),
                "OneDrive",
                "report (conflict LAPTOP).docx",
            ),
            (
                format!("{E} (1)"),
                "Google Drive",
                "report (conflict #1).docx",
            ),
            (
                format!("{E} (SFConflict alice@example.org 2026-12-04-10-11-12)"),
                "Seafile",
                "report (conflict 2026-12-04 10.11.12 alice@example.org).docx",
            ),
            (format!("{E} 2"), "iCloud", "report (conflict #2).docx"),
        ];
        for (name, tool, want) in cases {
            assert_eq!(shown(&only(&name, tool)), want, "{name}");
        }
    }

    #[test]
    fn names_with_dangerous_or_malformed_decorations_are_not_taken() {
        for name in [
            format!("{E}.sync-conflict-20261204-101112-ABC/EF7"),
            format!("{E}.sync-conflict-2026124-101112-ABCDEF7"),
            format!("{E} (\u{1b}[31m's conflicted copy 2026-12-04)"),
            format!("{E} (evil\n's conflicted copy 2026-12-04)"),
            format!("{E} (conflicted copy 2026-12-04 10:11:12)"),
            format!("{E}_conflict-20261204"),
            format!("{E} (SFConflict a/b 2026-12-04-10-11-12)"),
            format!("{E} 12345"),
            format!("{E}-{}", "X".repeat(16)),
        ] {
            assert!(
                candidates(&name).iter().all(|(b, _)| *b != E),
                "{name:?} was taken: {:?}",
                candidates(&name)
            );
        }
        // Names of the vault itself are never split into something empty.
        assert!(candidates("-LAPTOP").is_empty());
        assert!(candidates(" (1)").is_empty());
    }

    #[test]
    fn displayed_names_keep_dotfiles_and_long_extensions_whole_and_fit_255_bytes() {
        let d = Decoration {
            who: Some("PC".into()),
            ..dec("OneDrive")
        };
        assert_eq!(display(b".bashrc", &d).unwrap(), b".bashrc (conflict PC)");
        assert_eq!(display(b"Makefile", &d).unwrap(), b"Makefile (conflict PC)");
        assert_eq!(
            display(b"a.verylongextensionnotreally", &d).unwrap(),
            b"a.verylongextensionnotreally (conflict PC)"
        );
        assert!(display(&[b'x'; 250], &d).is_none());
        assert!(may_be_display(b"report (conflict PC).docx"));
        assert!(!may_be_display(b"report (conflicted).docx"));
    }
}

/// The filesystem side: conflict copies made by a sync tool in the backing directory show
/// up, read, rename (adopt) and delete through the plaintext view.
#[cfg(test)]
mod in_the_view {
    use super::super::testutil::{new_fs, ME};
    use super::super::{Ino, RenameFlags};
    use std::ffi::OsStr;

    fn names(fs: &super::super::Fs) -> Vec<String> {
        let mut v: Vec<String> = fs
            .readdir(&ME, Ino::ROOT)
            .unwrap()
            .into_iter()
            .map(|e| e.name.to_string_lossy().into_owned())
            .filter(|n| n != "." && n != "..")
            .collect();
        v.sort();
        v
    }

    fn read(fs: &super::super::Fs, name: &str) -> Vec<u8> {
        let a = fs.lookup(&ME, Ino::ROOT, OsStr::new(name)).unwrap();
        let fh = fs.open(&ME, a.ino, libc::O_RDONLY).unwrap();
        let d = fs.read(fh, 0, 1 << 16).unwrap();
        fs.release(fh);
        d
    }

    #[test]
    fn a_conflict_copy_is_listed_read_adopted_and_deleted() {
        let (t, fs) = new_fs();
        let backing = t.path().join("vault");
        let (_, fh) = fs
            .create(
                &ME,
                Ino::ROOT,
                OsStr::new("report.docx"),
                0o644,
                0,
                libc::O_RDWR,
            )
            .unwrap();
        fs.write(fh, 0, b"version from the laptop", None).unwrap();
        fs.release(fh);
        let enc = std::fs::read_dir(&backing)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .find(|n| !n.starts_with("tutela.") && !n.starts_with(".tutela"))
            .unwrap();
        // The sync tools keep the other machine's version under decorated names; a stray
        // that is no encrypted name stays hidden.
        for copy in [
            format!("{enc}.sync-conflict-20261204-101112-ABCDEF7"),
            format!("{enc}-LAPTOP"),
            "garbage.sync-conflict-20261204-101112-ABCDEF7".to_string(),
        ] {
            std::fs::copy(backing.join(&enc), backing.join(copy)).unwrap();
        }
        let fh = fs
            .open(
                &ME,
                fs.lookup(&ME, Ino::ROOT, OsStr::new("report.docx"))
                    .unwrap()
                    .ino,
                libc::O_WRONLY | libc::O_TRUNC,
            )
            .unwrap();
        fs.write(fh, 0, b"version from the office", None).unwrap();
        fs.release(fh);

        let syncthing = "report (conflict 2026-12-04 10.11.12 ABCDEF7).docx";
        let onedrive = "report (conflict LAPTOP).docx";
        assert_eq!(names(&fs), [syncthing, onedrive, "report.docx"]);
        assert_eq!(read(&fs, "report.docx"), b"version from the office");
        assert_eq!(read(&fs, syncthing), b"version from the laptop");
        // Renaming it to a plain name adopts it: an ordinary file from then on.
        fs.rename(
            &ME,
            Ino::ROOT,
            OsStr::new(syncthing),
            Ino::ROOT,
            OsStr::new("report (laptop).docx"),
            RenameFlags::default(),
        )
        .unwrap();
        assert_eq!(
            read(&fs, "report (laptop).docx"),
            b"version from the laptop"
        );
        fs.unlink(&ME, Ino::ROOT, OsStr::new(onedrive)).unwrap();
        assert_eq!(names(&fs), ["report (laptop).docx", "report.docx"]);
        assert!(backing
            .join("garbage.sync-conflict-20261204-101112-ABCDEF7")
            .exists());
        assert!(fs
            .lookup(&ME, Ino::ROOT, OsStr::new(onedrive))
            .is_err_and(|e| matches!(e, crate::error::Error::NotFound)));
    }
}
