//! `tutela audit review`: the periodic access review auditors ask for (ISO 27001, SOC 2).
//! For one client: who may access it under the current policy (and since when that policy is
//! in force), who actually did in the period, and who holds access but never used it (the
//! candidates for removal), from the policy and the verified log.

use super::{kind_of, Kind};
use crate::audit;
use crate::error::{Error, Result};
use crate::policy::{Policy, Principal};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Serialize)]
pub struct Grant {
    pub user: String,
    /// "admin", "write" or "read".
    pub grant: String,
    /// "user", or "group NAME".
    pub via: String,
    pub accesses: u64,
    pub last_access_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Use {
    pub user: String,
    pub uid: u32,
    pub accesses: u64,
    pub refused: u64,
    pub last_access_ms: Option<u64>,
    /// Whether the current policy grants this user access.
    pub granted: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Review {
    pub client: String,
    pub path: String,
    pub since_ms: u64,
    /// Whether a policy is in force (without one, Unix permissions alone decide).
    pub policy: bool,
    /// When the current policy was set, as the log records it.
    pub policy_since_ms: Option<u64>,
    pub may_access: Vec<Grant>,
    pub did_access: Vec<Use>,
    /// Users the policy grants access who did not use it in the period.
    pub never_used: Vec<String>,
}

fn who(p: &Principal) -> Vec<(String, String)> {
    match p {
        Principal::User(uid) => vec![(
            crate::sys::user_name(*uid).unwrap_or_else(|| format!("uid {uid}")),
            "user".into(),
        )],
        Principal::Group(gid) => {
            let g = crate::sys::group_name(*gid).unwrap_or_else(|| format!("gid {gid}"));
            crate::sys::group_members(*gid)
                .into_iter()
                .map(|u| (u, format!("group {g}")))
                .collect()
        }
    }
}

pub fn review(
    dir: &Path,
    keys: &audit::Keys,
    policy: Option<&Policy>,
    client: &str,
    path: &str,
    since_ms: u64,
) -> Result<Review> {
    // Grants, strongest first (a user granted several ways keeps the strongest).
    let mut grants: BTreeMap<String, Grant> = BTreeMap::new();
    if let Some(p) = policy {
        let c = p
            .clients
            .iter()
            .find(|c| c.name == client || c.path == path);
        let tiers: Vec<(&str, &[Principal])> = vec![
            ("admin", &p.admins[..]),
            ("write", c.map_or(&[][..], |c| &c.write[..])),
            ("read", c.map_or(&[][..], |c| &c.read[..])),
        ];
        for (grant, ps) in tiers {
            for pr in ps {
                for (user, via) in who(pr) {
                    grants.entry(user.clone()).or_insert(Grant {
                        user,
                        grant: grant.into(),
                        via,
                        accesses: 0,
                        last_access_ms: None,
                    });
                }
            }
        }
    }
    let inside =
        |p: &str| p == path || (p.starts_with(path) && p.as_bytes().get(path.len()) == Some(&b'/'));
    let mut uses: BTreeMap<u32, Use> = BTreeMap::new();
    let mut policy_since = None;
    let rep = audit::read_all(dir, keys, |r| {
        if matches!(
            r.op.as_str(),
            "policy-set" | "policy-clear" | "policy-change"
        ) && r.result == "ok"
        {
            policy_since = Some(r.time_ms);
        }
        if r.time_ms < since_ms {
            return;
        }
        let ours = r.client.as_deref() == Some(client)
            || super::named_client(&r).as_deref() == Some(client)
            || inside(&r.path);
        let Some(kind) = kind_of(&r).filter(|_| ours) else {
            return;
        };
        let name = if r.user.is_empty() {
            crate::sys::user_name(r.uid).unwrap_or_else(|| format!("uid {}", r.uid))
        } else {
            r.user.clone()
        };
        let u = uses.entry(r.uid).or_insert(Use {
            user: name,
            uid: r.uid,
            accesses: 0,
            refused: 0,
            last_access_ms: None,
            granted: false,
        });
        if kind == Kind::Refused {
            u.refused += super::weight(&r);
        } else {
            u.accesses += 1;
            u.last_access_ms = Some(r.time_ms);
        }
    })?;
    if let Some(bad) = rep.bad {
        return Err(Error::AuditTampered(format!(
            "{bad}: the review would be incomplete"
        )));
    }
    for u in uses.values_mut() {
        if let Some(g) = grants.get_mut(&u.user) {
            u.granted = true;
            g.accesses = u.accesses;
            g.last_access_ms = u.last_access_ms;
        }
    }
    let never_used = grants
        .values()
        .filter(|g| g.accesses == 0)
        .map(|g| g.user.clone())
        .collect();
    Ok(Review {
        client: client.into(),
        path: path.into(),
        since_ms,
        policy: policy.is_some(),
        policy_since_ms: policy_since,
        may_access: grants.into_values().collect(),
        did_access: uses.into_values().collect(),
        never_used,
    })
}
