//! The fence as a table: every operation the policy decides on, by every kind of caller, at
//! every kind of place, with the answer and the audit record it leaves. Runs without root:
//! callers are plain `Subject`s and their groups come from an injected `CredSource`.
//!
//! Roles: an admin; acme's writer; acme's reader (through a group, so the injected groups
//! are what decides); an outsider; root, who is not an admin. Places: inside acme's folder,
//! at its top, above it (`/clients`, which holds two clients' tops), and outside every client.
//! Answers: `y` allowed, `n` refused (EACCES, recorded as "denied"), `x` EXDEV and `b` EBUSY
//! (a move the fence refuses because of where it leads), `-` not applicable there (a hard
//! link to a directory, opening a directory as a file).

use super::guard::CredSource;
use super::op::Op;
use super::testutil::{new_fs, ME};
use super::Ino;
use super::{Fs, Guard, RenameFlags, SetAttr, Subject};
use crate::error::Error;
use crate::policy;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::Arc;

const ROLES: [(&str, u32); 5] = [
    ("admin", 100),
    ("writer", 101),
    ("reader", 102),
    ("outsider", 103),
    ("root", 0),
];
const READERS_GID: u32 = 2002;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Place {
    Inside,
    Top,
    Above,
    Outside,
}
const PLACES: [Place; 4] = [Place::Inside, Place::Top, Place::Above, Place::Outside];

/// The reader is in group 2002 only through its supplementary groups.
struct Groups;
impl CredSource for Groups {
    fn groups(&self, who: &Subject) -> Vec<u32> {
        if who.uid == 102 {
            vec![READERS_GID]
        } else {
            Vec::new()
        }
    }
}

/// A test case: an operation as the table names it (opening is two: for reading, writing).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Case {
    Lookup,
    Stat,
    Access,
    Readlink,
    Setattr,
    Mknod,
    Create,
    Mkdir,
    Symlink,
    Unlink,
    Rmdir,
    Link,
    Rename,
    OpenRead,
    OpenWrite,
    List,
    Setxattr,
    Removexattr,
    Getxattr,
    Listxattr,
}

impl Case {
    fn op(self) -> Op {
        match self {
            Case::Lookup => Op::Lookup,
            Case::Stat => Op::Stat,
            Case::Access => Op::Access,
            Case::Readlink => Op::Readlink,
            Case::Setattr => Op::Setattr,
            Case::Mknod | Case::Create => Op::Create,
            Case::Mkdir => Op::Mkdir,
            Case::Symlink => Op::Symlink,
            Case::Unlink => Op::Unlink,
            Case::Rmdir => Op::Rmdir,
            Case::Link => Op::Link,
            Case::Rename => Op::Rename,
            Case::OpenRead | Case::OpenWrite => Op::Open,
            Case::List => Op::List,
            Case::Setxattr => Op::Setxattr,
            Case::Removexattr => Op::Removexattr,
            Case::Getxattr => Op::Getxattr,
            Case::Listxattr => Op::Listxattr,
        }
    }
}

/// Rows: the answer at each place, one letter per role in `ROLES` order.
type Table = [(Case, [&'static str; 4]); 20];

/// `default = "allow"`: outside the clients Unix modes decide, so the fence lets everyone
/// through there, except where a move or removal would take a client's top with it.
const ALLOW: Table = [
    //                     inside   top      above    outside
    (Case::Lookup, ["yyynn", "yyynn", "yyyyy", "yyyyy"]),
    (Case::Stat, ["yyynn", "yyynn", "yyyyy", "yyyyy"]),
    (Case::Access, ["yyynn", "yyynn", "yyyyy", "yyyyy"]),
    (Case::Readlink, ["yyynn", "-----", "-----", "yyyyy"]),
    (Case::Setattr, ["yynnn", "yynnn", "yyyyy", "yyyyy"]),
    (Case::Mknod, ["yynnn", "yynnn", "yyyyy", "yyyyy"]),
    (Case::Create, ["yynnn", "yynnn", "yyyyy", "yyyyy"]),
    (Case::Mkdir, ["yynnn", "yynnn", "yyyyy", "yyyyy"]),
    (Case::Symlink, ["yynnn", "yynnn", "yyyyy", "yyyyy"]),
    (Case::Unlink, ["yynnn", "-----", "-----", "yyyyy"]),
    (Case::Rmdir, ["yynnn", "ynnnn", "ynnnn", "yyyyy"]),
    (Case::Link, ["yynnn", "-----", "-----", "yyyyy"]),
    (Case::Rename, ["yynnn", "xxnnn", "bbbbb", "yyyyy"]),
    (Case::OpenRead, ["yyynn", "-----", "-----", "yyyyy"]),
    (Case::OpenWrite, ["yynnn", "-----", "-----", "yyyyy"]),
    (Case::List, ["yyynn", "yyynn", "yyyyy", "yyyyy"]),
    (Case::Setxattr, ["yynnn", "yynnn", "yyyyy", "yyyyy"]),
    (Case::Removexattr, ["yynnn", "yynnn", "yyyyy", "yyyyy"]),
    (Case::Getxattr, ["yyynn", "yyynn", "yyyyy", "yyyyy"]),
    (Case::Listxattr, ["yyynn", "yyynn", "yyyyy", "yyyyy"]),
];

/// `default = "deny"`: outside the clients only admins, except that a directory on the way
/// to a client the caller may read can be looked up and listed.
const DENY: Table = [
    //                     inside   top      above    outside
    (Case::Lookup, ["yyynn", "yyynn", "yyynn", "ynnnn"]),
    (Case::Stat, ["yyynn", "yyynn", "yyynn", "ynnnn"]),
    (Case::Access, ["yyynn", "yyynn", "yyynn", "ynnnn"]),
    (Case::Readlink, ["yyynn", "-----", "-----", "ynnnn"]),
    (Case::Setattr, ["yynnn", "yynnn", "ynnnn", "ynnnn"]),
    (Case::Mknod, ["yynnn", "yynnn", "ynnnn", "ynnnn"]),
    (Case::Create, ["yynnn", "yynnn", "ynnnn", "ynnnn"]),
    (Case::Mkdir, ["yynnn", "yynnn", "ynnnn", "ynnnn"]),
    (Case::Symlink, ["yynnn", "yynnn", "ynnnn", "ynnnn"]),
    (Case::Unlink, ["yynnn", "-----", "-----", "ynnnn"]),
    (Case::Rmdir, ["yynnn", "ynnnn", "ynnnn", "ynnnn"]),
    (Case::Link, ["yynnn", "-----", "-----", "ynnnn"]),
    (Case::Rename, ["yynnn", "xnnnn", "bnnnn", "ynnnn"]),
    (Case::OpenRead, ["yyynn", "-----", "-----", "ynnnn"]),
    (Case::OpenWrite, ["yynnn", "-----", "-----", "ynnnn"]),
    (Case::List, ["yyynn", "yyynn", "yyynn", "ynnnn"]),
    (Case::Setxattr, ["yynnn", "yynnn", "ynnnn", "ynnnn"]),
    (Case::Removexattr, ["yynnn", "yynnn", "ynnnn", "ynnnn"]),
    (Case::Getxattr, ["yyynn", "yyynn", "yyynn", "ynnnn"]),
    (Case::Listxattr, ["yyynn", "yyynn", "yyynn", "ynnnn"]),
];

/// The tree every case starts from, made before the policy is in force; inode numbers by
/// plaintext path.
fn tree(fs: &Fs) -> HashMap<&'static str, Ino> {
    let mut ino = HashMap::new();
    ino.insert("/", Ino::ROOT);
    let dirs = [
        ("/", "clients", "/clients"),
        ("/clients", "acme", "/clients/acme"),
        ("/clients", "other", "/clients/other"),
        ("/clients/acme", "d", "/clients/acme/d"),
        ("/", "outside", "/outside"),
        ("/outside", "d", "/outside/d"),
    ];
    for (parent, name, path) in dirs {
        let a = fs
            .mkdir(&ME, ino[parent], OsStr::new(name), 0o777, 0)
            .unwrap();
        ino.insert(path, a.ino);
    }
    for (parent, path) in [
        ("/clients/acme", "/clients/acme/f"),
        ("/outside", "/outside/f"),
    ] {
        let (a, fh) = fs
            .create(&ME, ino[parent], OsStr::new("f"), 0o666, 0, libc::O_RDWR)
            .unwrap();
        fs.write(fh, 0, b"secret", None).unwrap();
        fs.release(fh);
        ino.insert(path, a.ino);
    }
    for (parent, path) in [
        ("/clients/acme", "/clients/acme/l"),
        ("/outside", "/outside/l"),
    ] {
        let a = fs.symlink(&ME, ino[parent], OsStr::new("l"), b"f").unwrap();
        ino.insert(path, a.ino);
    }
    for path in [
        "/clients/acme/f",
        "/clients/acme",
        "/clients",
        "/outside/f",
        "/clients/acme/d",
        "/outside/d",
    ] {
        fs.setxattr(&ME, ino[path], OsStr::new("user.t"), b"v", 0)
            .unwrap();
    }
    ino
}

/// (object of the operation, directory a new entry goes in, name looked up there) by place.
fn at(place: Place) -> (&'static str, &'static str, &'static str, &'static str) {
    // (parent, name, object, directory for new entries)
    match place {
        Place::Inside => ("/clients/acme", "f", "/clients/acme/f", "/clients/acme/d"),
        Place::Top => ("/clients", "acme", "/clients/acme", "/clients/acme"),
        Place::Above => ("/", "clients", "/clients", "/clients"),
        Place::Outside => ("/outside", "f", "/outside/f", "/outside"),
    }
}

/// Runs one case; the error, if any, as the fence's answer letter or the errno.
fn run(
    fs: &Fs,
    ino: &HashMap<&str, Ino>,
    who: &Subject,
    case: Case,
    place: Place,
) -> Result<(), Error> {
    let (parent, name, object, newdir) = at(place);
    let name = OsStr::new(name);
    let new = OsStr::new("new");
    // Directories to list and remove: the empty one inside or outside, else the place itself.
    let dir = match place {
        Place::Inside => "/clients/acme/d",
        Place::Outside => "/outside/d",
        _ => object,
    };
    let link = match place {
        Place::Inside => "/clients/acme/l",
        _ => "/outside/l",
    };
    match case {
        Case::Lookup => fs.lookup(who, ino[parent], name).map(drop),
        Case::Stat => fs.getattr(who, ino[object], None).map(drop),
        Case::Access => fs.access(who, ino[object], libc::F_OK),
        Case::Readlink => fs.readlink(who, ino[link]).map(drop),
        Case::Setattr => {
            let set = SetAttr {
                mode: Some(0o770),
                ..Default::default()
            };
            fs.setattr(who, ino[object], &set, None).map(drop)
        }
        Case::Mknod => fs
            .mknod(who, ino[newdir], new, libc::S_IFREG | 0o644, 0, 0)
            .map(drop),
        Case::Create => fs
            .create(who, ino[newdir], new, 0o644, 0, libc::O_WRONLY)
            .map(|(_, fh)| fs.release(fh)),
        Case::Mkdir => fs.mkdir(who, ino[newdir], new, 0o755, 0).map(drop),
        Case::Symlink => fs.symlink(who, ino[newdir], new, b"x").map(drop),
        Case::Unlink => fs.unlink(who, ino[parent], name),
        Case::Rmdir => {
            let (p, n) = dir.rsplit_once('/').unwrap();
            fs.rmdir(who, ino[if p.is_empty() { "/" } else { p }], OsStr::new(n))
        }
        Case::Link => fs
            .link(who, ino[object], ino[parent], OsStr::new("f2"))
            .map(drop),
        Case::Rename => {
            let to = format!("{}2", name.to_str().unwrap());
            fs.rename(
                who,
                ino[parent],
                name,
                ino[parent],
                OsStr::new(&to),
                RenameFlags::default(),
            )
        }
        Case::OpenRead | Case::OpenWrite => {
            let flags = if case == Case::OpenRead {
                libc::O_RDONLY
            } else {
                libc::O_WRONLY
            };
            fs.open(who, ino[object], flags).map(|fh| fs.release(fh))
        }
        Case::List => fs.readdir_at(who, ino[dir], 0, true, |_, _| true),
        Case::Setxattr => fs.setxattr(who, ino[object], OsStr::new("user.n"), b"1", 0),
        Case::Removexattr => fs.removexattr(who, ino[object], OsStr::new("user.t")),
        Case::Getxattr => fs
            .getxattr(who, ino[object], OsStr::new("user.t"))
            .map(drop),
        Case::Listxattr => fs.listxattr(who, ino[object]).map(drop),
    }
}

fn check(table: &Table, default: &str) {
    let text = format!(
        "admins = [\"100\"]\ndefault = \"{default}\"\n\
         [clients.acme]\npath = \"/clients/acme\"\nwrite = [\"101\"]\nread = [\"group:{READERS_GID}\"]\n\
         [clients.other]\npath = \"/clients/other\"\nwrite = [\"104\"]\n"
    );
    let mut wrong = Vec::new();
    let mut ran = 0;
    for (case, row) in table {
        for (place, answers) in PLACES.iter().zip(row) {
            for ((role, uid), want) in ROLES.iter().zip(answers.chars()) {
                if want == '-' {
                    continue;
                }
                let (_t, mut fs) = new_fs();
                let ino = tree(&fs);
                let policy = policy::parse(&text, "p", &|_, _| None).unwrap();
                let (guard, kept) = Guard::recording(Some(policy));
                fs.set_guard(guard.with_creds(Arc::new(Groups)));
                let who = Subject {
                    uid: *uid,
                    gid: *uid,
                    pid: std::process::id(),
                };
                let r = run(&fs, &ino, &who, *case, *place);
                ran += 1;
                let got = match &r {
                    Err(Error::PermissionDenied) => 'n',
                    Err(Error::CrossDevice) => 'x',
                    Err(Error::Busy(_)) => 'b',
                    _ => 'y',
                };
                let records = super::lock(&kept).clone();
                let op = case.op().as_str();
                let mine: Vec<_> = records.iter().filter(|r| r.op == op).collect();
                // What the log must hold: a refusal always, exactly once; an allowed request
                // of a recorded kind once, with its outcome; nothing else.
                let log_ok = match got {
                    'n' => {
                        mine.len() == 1
                            && mine[0].result == "denied"
                            && mine[0].uid == *uid
                            && records.len() == 1
                    }
                    _ if case.op().audited_when_allowed() => {
                        mine.len() == 1 && mine[0].result != "denied" && records.len() == 1
                    }
                    _ => records.is_empty(),
                };
                if got != want || !log_ok {
                    wrong.push(format!(
                        "{case:?} at {place:?} as {role}: want {want}, got {got} ({r:?}), log {:?}",
                        records
                            .iter()
                            .map(|r| format!("{} {} {}", r.op, r.path, r.result))
                            .collect::<Vec<_>>()
                    ));
                }
            }
        }
    }
    assert!(ran > 300, "only {ran} cases ran");
    assert!(
        wrong.is_empty(),
        "{} of {ran} cases differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn the_fence_with_default_allow() {
    check(&ALLOW, "allow");
}

#[test]
fn the_fence_with_default_deny() {
    check(&DENY, "deny");
}
