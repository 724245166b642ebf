//! Per-client access policy: parsing (with FILE:LINE:COL diagnostics) and the pure decision
//! function. No I/O here besides the user/group resolver the caller passes in.
//!
//! Rules (README "Sharing a vault between several people"):
//! - admins may do everything everywhere; nobody is an admin unless listed (root included);
//! - inside a client subtree, `write` grants read and write, `read` grants read, anything else
//!   is denied (EACCES);
//! - outside every client subtree, `default = "allow"` (the default) leaves the decision to
//!   ordinary Unix modes; `default = "deny"` lets only admins in, except that a directory on
//!   the way to a client the caller may read can be looked up and listed.

pub mod closed;
pub mod store;

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    User(u32),
    Group(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub name: String,
    /// Normalised absolute path inside the vault, no trailing slash.
    pub path: String,
    pub read: Vec<Principal>,
    pub write: Vec<Principal>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub admins: Vec<Principal>,
    pub default_allow: bool,
    pub clients: Vec<Client>,
}

/// Reads a caller's supplementary groups (injected: this module does no I/O).
pub type GroupSource = Box<dyn Fn() -> Vec<u32> + Send + Sync>;

/// The caller of one request. Its supplementary groups are read only when a rule naming a
/// group must be matched, and at most once: they belong to this request alone and are never
/// carried over to another (a cache keyed on the process would hand one user's groups to the
/// next process, or credentials, behind the same pid).
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
    groups: std::sync::OnceLock<Vec<u32>>,
    source: Option<GroupSource>,
}

impl std::fmt::Debug for Creds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Creds")
            .field("uid", &self.uid)
            .field("gid", &self.gid)
            .field("groups", &self.groups.get())
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'a> {
    pub allowed: bool,
    /// The client whose subtree the path is in.
    pub client: Option<&'a str>,
}

/// Looks up a user (`group == false`) or group name.
pub type Resolver<'a> = &'a dyn Fn(&str, bool) -> Option<u32>;

impl Creds {
    /// A caller whose groups are known.
    pub fn new(uid: u32, gid: u32, groups: Vec<u32>) -> Creds {
        Creds {
            uid,
            gid,
            groups: std::sync::OnceLock::from(groups),
            source: None,
        }
    }

    /// A caller whose groups `source` reads when first needed.
    pub fn lazy(uid: u32, gid: u32, source: GroupSource) -> Creds {
        Creds {
            uid,
            gid,
            groups: std::sync::OnceLock::new(),
            source: Some(source),
        }
    }

    pub fn groups(&self) -> &[u32] {
        self.groups
            .get_or_init(|| self.source.as_ref().map(|s| s()).unwrap_or_default())
    }

    /// Whether the caller is `p`; supplementary groups are consulted only `with_groups`.
    fn is(&self, p: &Principal, with_groups: bool) -> bool {
        match *p {
            Principal::User(u) => u == self.uid,
            Principal::Group(g) => g == self.gid || (with_groups && self.groups().contains(&g)),
        }
    }
    fn any(&self, ps: &[Principal], with_groups: bool) -> bool {
        ps.iter().any(|p| self.is(p, with_groups))
    }
}

/// True when `path` is `root` or below it (component-wise).
pub(crate) fn within(path: &str, root: &str) -> bool {
    path == root || (path.starts_with(root) && path.as_bytes().get(root.len()) == Some(&b'/'))
}

impl Policy {
    pub fn is_admin(&self, c: &Creds) -> bool {
        c.any(&self.admins, false) || c.any(&self.admins, true)
    }

    pub fn client_of(&self, path: &str) -> Option<&Client> {
        self.clients.iter().find(|c| within(path, &c.path))
    }

    /// True when `path` is a strict ancestor of some client's top directory.
    pub fn is_above_client(&self, path: &str) -> bool {
        self.clients
            .iter()
            .any(|c| c.path != path && within(&c.path, if path == "/" { "" } else { path }))
    }

    /// The decision for `access` to plaintext `path` (absolute, as in the mount).
    /// Decides first on what the request itself says (uid, gid), and reads the caller's
    /// supplementary groups only when that alone does not allow it.
    pub fn decide(&self, c: &Creds, path: &str, access: Access) -> Decision<'_> {
        let quick = self.decide_with(c, path, access, false);
        if quick.allowed {
            return quick;
        }
        self.decide_with(c, path, access, true)
    }

    fn decide_with(&self, c: &Creds, path: &str, access: Access, groups: bool) -> Decision<'_> {
        let client = self.client_of(path);
        let name = client.map(|cl| cl.name.as_str());
        if c.any(&self.admins, groups) {
            return Decision {
                allowed: true,
                client: name,
            };
        }
        let allowed = match client {
            Some(cl) => {
                c.any(&cl.write, groups) || (access == Access::Read && c.any(&cl.read, groups))
            }
            None if self.default_allow => true,
            None => {
                access == Access::Read
                    && self.clients.iter().any(|cl| {
                        within(&cl.path, if path == "/" { "" } else { path })
                            && (c.any(&cl.read, groups) || c.any(&cl.write, groups))
                    })
            }
        };
        Decision {
            allowed,
            client: name,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    admins: Vec<Spanned<String>>,
    #[serde(default)]
    default: Option<Spanned<String>>,
    #[serde(default)]
    clients: BTreeMap<String, RawClient>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    path: Spanned<String>,
    #[serde(default)]
    read: Vec<Spanned<String>>,
    #[serde(default)]
    write: Vec<Spanned<String>>,
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map(|i| before.len() - i)
        .unwrap_or(before.len() + 1);
    (line, col)
}

/// An absolute path below / without '.' or '..', with single slashes and no trailing slash.
pub(crate) fn normalise(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() || parts.iter().any(|p| *p == "." || *p == "..") {
        return None;
    }
    Some(format!("/{}", parts.join("/")))
}

/// Parses and resolves a policy. Errors are complete lines `FILE:LINE:COL: message`.
pub fn parse(text: &str, file: &str, resolve: Resolver<'_>) -> Result<Policy, Vec<String>> {
    let at = |offset: usize, msg: &str| {
        let (l, c) = line_col(text, offset);
        format!("{file}:{l}:{c}: {msg}")
    };
    let raw: RawPolicy = toml::from_str(text).map_err(|e| {
        let off = e.span().map(|s| s.start).unwrap_or(0);
        vec![at(off, e.message().trim())]
    })?;
    let mut errs = Vec::new();
    let principal = |s: &Spanned<String>, errs: &mut Vec<String>| -> Option<Principal> {
        let v = s.get_ref().trim();
        let (is_group, name) = match v.strip_prefix("group:") {
            Some(g) => (true, g),
            None => (false, v.strip_prefix("user:").unwrap_or(v)),
        };
        let id = name.parse::<u32>().ok().or_else(|| resolve(name, is_group));
        match id {
            Some(id) if is_group => Some(Principal::Group(id)),
            Some(id) => Some(Principal::User(id)),
            None => {
                let kind = if is_group { "group" } else { "user" };
                errs.push(at(s.span().start, &format!("unknown {kind} '{name}'")));
                None
            }
        }
    };
    let admins = raw
        .admins
        .iter()
        .filter_map(|s| principal(s, &mut errs))
        .collect();
    let default_allow = match &raw.default {
        None => true,
        Some(d) if d.get_ref() == "allow" => true,
        Some(d) if d.get_ref() == "deny" => false,
        Some(d) => {
            errs.push(at(d.span().start, "default must be \"allow\" or \"deny\""));
            true
        }
    };
    let mut clients: Vec<(Client, usize)> = Vec::new();
    for (name, rc) in &raw.clients {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            errs.push(at(
                rc.path.span().start,
                &format!("client name '{name}' may use letters, digits, '.', '_' and '-' only"),
            ));
        }
        let Some(path) = normalise(rc.path.get_ref()) else {
            errs.push(at(
                rc.path.span().start,
                "client path must be an absolute path below / without '.' or '..'",
            ));
            continue;
        };
        let read = rc
            .read
            .iter()
            .filter_map(|s| principal(s, &mut errs))
            .collect();
        let write = rc
            .write
            .iter()
            .filter_map(|s| principal(s, &mut errs))
            .collect();
        clients.push((
            Client {
                name: name.clone(),
                path,
                read,
                write,
            },
            rc.path.span().start,
        ));
    }
    for (i, (a, off)) in clients.iter().enumerate() {
        for (b, _) in clients.iter().skip(i + 1) {
            if within(&a.path, &b.path) || within(&b.path, &a.path) {
                errs.push(at(
                    *off,
                    &format!(
                        "clients '{}' and '{}' overlap: a file belongs to exactly one client",
                        a.name, b.name
                    ),
                ));
            }
        }
    }
    if errs.is_empty() {
        Ok(Policy {
            admins,
            default_allow,
            clients: clients.into_iter().map(|(c, _)| c).collect(),
        })
    } else {
        Err(errs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A fixed directory of users and groups for the matrix.
    fn resolver(name: &str, group: bool) -> Option<u32> {
        match (group, name) {
            (false, "root") => Some(0),
            (false, "alice") => Some(1001),
            (false, "bob") => Some(1002),
            (false, "carol") => Some(1003),
            (false, "dave") => Some(1004),
            (true, "partners") => Some(2001),
            (true, "paralegals") => Some(2002),
            _ => None,
        }
    }

    const EXAMPLE: &str = r#"
admins = ["root", "group:partners"]

[clients.acme]
path = "/clients/acme"
read = ["alice", "group:paralegals"]
write = ["alice"]

[clients.bluebird]
path = "/clients/bluebird/"
read = ["bob"]
write = ["bob"]
"#;

    fn creds(uid: u32, groups: &[u32]) -> Creds {
        Creds::new(uid, 100, groups.to_vec())
    }

    #[test]
    fn groups_are_read_only_when_a_group_rule_must_be_matched() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let p = parse(EXAMPLE, "p.toml", &resolver).unwrap();
        let reads = Arc::new(AtomicUsize::new(0));
        let counted = |uid: u32| {
            let r = reads.clone();
            Creds::lazy(
                uid,
                100,
                Box::new(move || {
                    r.fetch_add(1, Ordering::SeqCst);
                    vec![2002]
                }),
            )
        };
        // A user named by a rule needs no groups.
        let alice = counted(1001);
        assert!(p.decide(&alice, "/clients/acme/x", Access::Write).allowed);
        assert_eq!(reads.load(Ordering::SeqCst), 0);
        // A caller matched through a group: read once for the whole request.
        let carol = counted(1003);
        assert!(p.decide(&carol, "/clients/acme/x", Access::Read).allowed);
        assert!(p.decide(&carol, "/clients/acme/y", Access::Read).allowed);
        assert_eq!(reads.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn decision_matrix_users_groups_subtrees_operations() {
        let p = parse(EXAMPLE, "p.toml", &resolver).unwrap();
        let root = creds(0, &[]);
        let alice = creds(1001, &[]);
        let bob = creds(1002, &[]);
        let carol = creds(1003, &[2002]); // paralegal
        let dave = creds(1004, &[2001]); // partner
        let nobody = creds(1005, &[]);
        use Access::*;
        // (who, path, access, allowed)
        let table: Vec<(&Creds, &str, Access, bool)> = vec![
            (&alice, "/clients/acme", Read, true),
            (&alice, "/clients/acme/deep/file", Write, true),
            (&alice, "/clients/bluebird/x", Read, false),
            (&bob, "/clients/acme", Read, false),
            (&bob, "/clients/acme/file", Write, false),
            (&bob, "/clients/bluebird/x", Write, true),
            (&carol, "/clients/acme/file", Read, true),
            (&carol, "/clients/acme/file", Write, false),
            (&carol, "/clients/bluebird", Read, false),
            (&dave, "/clients/acme/file", Write, true),
            (&dave, "/clients/bluebird/file", Write, true),
            (&root, "/clients/acme/file", Write, true),
            (&nobody, "/clients/acme", Read, false),
            (&nobody, "/clients/acmeX", Write, true), // a sibling with a common prefix is outside
            (&nobody, "/clients", Read, true),
            (&nobody, "/firm/handbook", Write, true),
        ];
        for (who, path, acc, want) in table {
            assert_eq!(
                p.decide(who, path, acc).allowed,
                want,
                "{who:?} {path} {acc:?}"
            );
        }
        assert_eq!(
            p.decide(&alice, "/clients/acme/x", Read).client,
            Some("acme")
        );
        assert_eq!(p.decide(&alice, "/elsewhere", Read).client, None);
    }

    #[test]
    fn root_is_not_admin_unless_listed_and_default_deny() {
        let text = "default = \"deny\"\n[clients.acme]\npath = \"/c/acme\"\nread = [\"alice\"]\n";
        let p = parse(text, "p.toml", &resolver).unwrap();
        let root = creds(0, &[]);
        let alice = creds(1001, &[]);
        assert!(!p.decide(&root, "/c/acme/x", Access::Read).allowed);
        assert!(!p.decide(&root, "/other", Access::Read).allowed);
        assert!(
            p.decide(&alice, "/", Access::Read).allowed,
            "the way to a readable client is open"
        );
        assert!(p.decide(&alice, "/c", Access::Read).allowed);
        assert!(!p.decide(&alice, "/c", Access::Write).allowed);
        assert!(!p.decide(&alice, "/other", Access::Read).allowed);
        assert!(!p.decide(&alice, "/c/acme/x", Access::Write).allowed);
        assert!(p.is_above_client("/c") && p.is_above_client("/") && !p.is_above_client("/c/acme"));
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e = parse("admins = [\"root\", \"ghost\"]\n", "p.toml", &resolver).unwrap_err();
        assert_eq!(e, vec!["p.toml:1:19: unknown user 'ghost'"]);
        let e = parse(
            "[clients.a]\npath = \"/x\"\nread = [\"group:nogroup\"]\n",
            "p.toml",
            &resolver,
        )
        .unwrap_err();
        assert_eq!(e, vec!["p.toml:3:9: unknown group 'nogroup'"]);
        let e = parse("admins = [\n", "p.toml", &resolver).unwrap_err();
        assert!(e[0].starts_with("p.toml:2:1: "), "{e:?}");
        let e = parse("[clients.a]\npath = \"relative\"\n", "p.toml", &resolver).unwrap_err();
        assert!(e[0].starts_with("p.toml:2:8: client path"), "{e:?}");
        let e = parse(
            "[clients.a]\npath = \"/x\"\n[clients.b]\npath = \"/x/y\"\n",
            "p.toml",
            &resolver,
        )
        .unwrap_err();
        assert!(e[0].contains("overlap"), "{e:?}");
        let e = parse("admin = []\n", "p.toml", &resolver).unwrap_err();
        assert!(e[0].starts_with("p.toml:1:1: unknown field"), "{e:?}");
    }

    #[test]
    fn numeric_ids_need_no_lookup() {
        let p = parse("admins = [\"4242\", \"group:777\"]\n", "p", &|_, _| None).unwrap();
        assert_eq!(p.admins, vec![Principal::User(4242), Principal::Group(777)]);
    }
}
