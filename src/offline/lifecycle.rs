//! A client's life cycle: its metadata (matter reference, responsible person, retention rule,
//! close date, legal hold, in the sealed zone table), when its retention ends (`client due`),
//! and the erasure certificate `client shred` and `client expire` write: a signed statement
//! of what was destroyed, when, by whom, and what still holds the key.

use crate::crypto::secret::Key32;
use crate::error::{Error, Result};
use crate::format::zones::{ClientMeta, ZoneRecord};
use serde::{Deserialize, Serialize};

const DAY_MS: u64 = 86_400_000;

/// A retention rule: a span after the matter closes, or a fixed date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retain {
    AfterClose { years: u32, months: u32, days: u32 },
    Until(u64),
}

/// Days from 1970-01-01 to a civil date (proleptic Gregorian; Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// `t` plus whole years, months and days, on the calendar (a 29 February steps back to 28).
pub fn add_calendar(t: u64, years: u32, months: u32, days: u32) -> u64 {
    let day = (t / DAY_MS) as i64;
    let rest = t % DAY_MS;
    let (y, m, d) = civil_from_days(day);
    let total = (m - 1) as i64 + months as i64 + 12 * (y + years as i64);
    let (ny, nm) = (total.div_euclid(12), (total.rem_euclid(12) + 1) as u32);
    let nd = d.min(days_in_month(ny, nm));
    let nday = days_from_civil(ny, nm, nd) + days as i64;
    (nday.max(0) as u64) * DAY_MS + rest
}

/// A date `YYYY-MM-DD` (UTC midnight) in ms.
pub fn parse_date(s: &str) -> Option<u64> {
    let p: Vec<&str> = s.split('-').collect();
    if p.len() != 3 || p[0].len() != 4 || p[1].len() != 2 || p[2].len() != 2 {
        return None;
    }
    let (y, m, d) = (
        p[0].parse::<i64>().ok()?,
        p[1].parse::<u32>().ok()?,
        p[2].parse::<u32>().ok()?,
    );
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d) as u64 * DAY_MS)
}

/// The date part of `t`, `YYYY-MM-DD`.
pub fn date(t: u64) -> String {
    let (y, m, d) = civil_from_days((t / DAY_MS) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Parses a retention rule as `client set --retain` takes it: `7y`, `7y after close`,
/// `18m after close`, `90d after close`, `6y6m after close`, or a date `2033-12-31`. Errors
/// say where the rule stops making sense, as `--retain:1:COL: ...`.
pub fn parse_retain(rule: &str) -> Result<Retain> {
    let bad = |col: usize, what: &str| {
        Error::Usage(format!(
            "--retain:1:{col}: {what} (use e.g. \"7y after close\", \"18m after close\" or a date 2033-12-31)"
        ))
    };
    let t = rule.trim();
    if t.is_empty() {
        return Err(bad(1, "empty retention rule"));
    }
    if t.as_bytes()[0].is_ascii_digit() && t.len() == 10 && t.as_bytes()[4] == b'-' {
        return parse_date(t)
            .map(Retain::Until)
            .ok_or_else(|| bad(1, &format!("'{t}' is not a date")));
    }
    let lead = rule.len() - rule.trim_start().len();
    let (span, tail) = match t.find(' ') {
        Some(i) => (&t[..i], t[i..].trim()),
        None => (t, ""),
    };
    if !tail.is_empty() && tail != "after close" {
        return Err(bad(
            lead + span.len() + 2,
            &format!(
                "expected 'after close', found '{}'",
                crate::text::escape(tail)
            ),
        ));
    }
    let (mut years, mut months, mut days) = (0u32, 0u32, 0u32);
    let mut num = String::new();
    let mut any = false;
    for (i, c) in span.char_indices() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u32 = num
            .parse()
            .map_err(|_| bad(lead + i + 1, &format!("a number must come before '{c}'")))?;
        match c {
            'y' => years += n,
            'm' => months += n,
            'd' => days += n,
            _ => {
                return Err(bad(
                    lead + i + 1,
                    &format!("unknown unit '{c}' (y, m or d)"),
                ))
            }
        }
        num.clear();
        any = true;
    }
    if !num.is_empty() || !any {
        return Err(bad(
            lead + span.len() + 1,
            "a span ends with its unit: y, m or d",
        ));
    }
    if years > 100 {
        return Err(bad(lead + 1, "more than 100 years"));
    }
    Ok(Retain::AfterClose {
        years,
        months,
        days,
    })
}

/// Where a client stands on retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Standing {
    /// Its retention ended: `expire` shreds it.
    Due,
    /// Under legal hold: never due.
    Held,
    /// Retention runs until `due_ms`.
    Retained,
    /// The matter is open (a rule "after close" has not started).
    Open,
    /// No retention rule is set.
    NoRule,
}

#[derive(Debug, Clone, Serialize)]
pub struct DueEntry {
    pub client: String,
    pub standing: Standing,
    pub due_ms: Option<u64>,
    pub retain: Option<String>,
    pub closed_ms: Option<u64>,
    pub hold: Option<String>,
}

pub fn standing(z: &ZoneRecord, now: u64) -> Result<DueEntry> {
    let m = &z.meta;
    let due_ms = match m.retain.as_deref().map(parse_retain).transpose()? {
        Some(Retain::Until(t)) => Some(t),
        Some(Retain::AfterClose {
            years,
            months,
            days,
        }) => m.closed_ms.map(|c| add_calendar(c, years, months, days)),
        None => None,
    };
    let standing = match (&m.hold, &m.retain, due_ms) {
        (Some(_), _, _) => Standing::Held,
        (None, None, _) => Standing::NoRule,
        (None, Some(_), None) => Standing::Open,
        (None, Some(_), Some(d)) if d <= now => Standing::Due,
        (None, Some(_), Some(_)) => Standing::Retained,
    };
    Ok(DueEntry {
        client: z.name.clone(),
        standing,
        due_ms,
        retain: m.retain.clone(),
        closed_ms: m.closed_ms,
        hold: m.hold.as_ref().map(|h| h.reason.clone()),
    })
}

/// Every client's standing at `now`.
pub fn due(zones: &[ZoneRecord], now: u64) -> Result<Vec<DueEntry>> {
    zones.iter().skip(1).map(|z| standing(z, now)).collect()
}

/// Checks metadata that arrives from elsewhere (a control request): a retention rule that
/// parses (one that does not would stop `due` and `expire` for every client), and short
/// one-line texts.
pub fn check_meta(m: &ClientMeta) -> Result<()> {
    if let Some(r) = &m.retain {
        parse_retain(r)?;
    }
    let texts = [
        ("reference", m.reference.as_deref()),
        ("responsible", m.responsible.as_deref()),
        ("hold reason", m.hold.as_ref().map(|h| h.reason.as_str())),
        ("hold by", m.hold.as_ref().map(|h| h.by.as_str())),
    ];
    for (what, t) in texts {
        if t.is_some_and(|t| t.len() > 200 || t.chars().any(char::is_control)) {
            return Err(Error::Usage(format!(
                "{what}: at most 200 characters, no control characters"
            )));
        }
    }
    Ok(())
}

/// Refuses to destroy a client under legal hold, naming the hold.
pub fn check_not_held(meta: &ClientMeta, name: &str) -> Result<()> {
    match &meta.hold {
        Some(h) => Err(Error::Usage(format!(
            "client '{}' is under legal hold since {} (by {}: {}): release it first (tutela client release)",
            crate::text::escape(name),
            date(h.since_ms),
            crate::text::escape(&h.by),
            crate::text::escape(&h.reason)
        ))),
        None => Ok(()),
    }
}

/// An erasure certificate's content (FORMAT.md, "Erasure certificates").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Certificate {
    pub format: u32,
    pub vault_id: String,
    pub client: String,
    pub zone_id: String,
    pub folder: String,
    pub erased_ms: u64,
    pub erased_at: String,
    pub by_user: String,
    pub by_uid: u32,
    /// `shred` or `expire`.
    pub how: String,
    pub reference: Option<String>,
    pub retain: Option<String>,
    pub closed_ms: Option<u64>,
    pub files: u64,
    pub bytes: u64,
    /// The audit log's head anchor right after the erasure's own record.
    pub audit_anchor: Option<String>,
    /// Each copy of the zone key tutela destroyed.
    pub destroyed: Vec<String>,
    /// What may still hold the key, and so still read the client's files.
    pub remains: Vec<String>,
    /// When the erasure began (its draft was written, before the key went).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    /// Set on a certificate written after an interruption (the erasure finished, its
    /// certificate was not yet written): says so, and when it was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late: Option<String>,
}

pub const CERT_DOMAIN: &[u8] = b"tutela/v1/erasure-certificate";

/// The signed certificate: `{"certificate": C, "signature": {...}}`, the signature over C
/// serialized compactly.
pub fn sign_certificate(c: &Certificate, seed: &Key32) -> Result<Vec<u8>> {
    let v = serde_json::to_value(c).map_err(|_| Error::Invalid)?;
    let body = serde_json::to_vec(&v).map_err(|_| Error::Invalid)?;
    let sig = crate::crypto::sign::sign(seed, CERT_DOMAIN, &body);
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let out = serde_json::json!({
        "certificate": v,
        "signature": {"algorithm": "ed25519", "public_key": hex(&crate::crypto::sign::public(seed)), "signature": hex(&sig)},
    });
    let mut s = serde_json::to_string_pretty(&out).map_err(|_| Error::Invalid)?;
    s.push('\n');
    Ok(s.into_bytes())
}

/// `N` bytes from exactly `2N` hex digits.
pub(crate) fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Checks a certificate offline; returns it and the key that signed it.
pub fn verify_certificate(file: &[u8], expect: Option<&str>) -> Result<(Certificate, String)> {
    let bad = |why: &str| Error::AuditTampered(format!("the certificate {why}"));
    let v: serde_json::Value =
        serde_json::from_slice(file).map_err(|_| bad("is not a tutela erasure certificate"))?;
    let s = &v["signature"];
    let pk_hex = s["public_key"].as_str().unwrap_or("").to_string();
    let (Some(pk), Some(sig), Some(c)) = (
        unhex::<32>(&pk_hex),
        s["signature"].as_str().and_then(unhex::<64>),
        v.get("certificate"),
    ) else {
        return Err(bad("carries no tutela signature"));
    };
    let body = serde_json::to_vec(c).map_err(|_| Error::Invalid)?;
    if !crate::crypto::sign::verify(&pk, CERT_DOMAIN, &body, &sig) {
        return Err(bad(
            "was changed after it was signed (its signature does not match)",
        ));
    }
    if let Some(e) = expect {
        if !e.trim().eq_ignore_ascii_case(&pk_hex) {
            return Err(bad(&format!(
                "is signed by key {pk_hex}, not by the one given"
            )));
        }
    }
    let cert: Certificate = serde_json::from_value(c.clone())
        .map_err(|_| bad("does not have a certificate's fields"))?;
    Ok((cert, pk_hex))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_rules_parse_and_bad_ones_say_where() {
        assert_eq!(
            parse_retain("7y").unwrap(),
            Retain::AfterClose {
                years: 7,
                months: 0,
                days: 0
            }
        );
        assert_eq!(
            parse_retain("6y6m after close").unwrap(),
            Retain::AfterClose {
                years: 6,
                months: 6,
                days: 0
            }
        );
        assert_eq!(
            parse_retain("2033-12-31").unwrap(),
            Retain::Until(parse_date("2033-12-31").unwrap())
        );
        for (rule, col) in [
            ("7x", 2),
            ("7y after clos", 4),
            ("y", 1),
            ("7", 2),
            ("2033-13-01", 1),
            ("", 1),
        ] {
            let e = parse_retain(rule).unwrap_err().to_string();
            assert!(e.starts_with(&format!("--retain:1:{col}:")), "{rule}: {e}");
        }
    }

    #[test]
    fn calendar_arithmetic() {
        let d = |s| parse_date(s).unwrap();
        assert_eq!(date(add_calendar(d("2026-03-15"), 7, 0, 0)), "2033-03-15");
        assert_eq!(date(add_calendar(d("2024-02-29"), 1, 0, 0)), "2025-02-28");
        assert_eq!(date(add_calendar(d("2026-11-30"), 0, 3, 0)), "2027-02-28");
        assert_eq!(date(add_calendar(d("2026-12-31"), 0, 0, 1)), "2027-01-01");
        assert_eq!(date(0), "1970-01-01");
    }

    #[test]
    fn certificates_verify_and_any_edit_fails() {
        let seed = Key32::from_bytes([5; 32]);
        let c = Certificate {
            format: 1,
            vault_id: "00".repeat(16),
            client: "acme".into(),
            zone_id: "11".repeat(16),
            folder: "/clients/acme".into(),
            erased_ms: 1,
            erased_at: "1970-01-01T00:00:00Z".into(),
            by_user: "root".into(),
            by_uid: 0,
            how: "shred".into(),
            reference: None,
            retain: None,
            closed_ms: None,
            files: 3,
            bytes: 10,
            audit_anchor: None,
            destroyed: vec!["the zone table in tutela.conf".into()],
            remains: vec![],
            started_ms: Some(1),
            late: Some("written after an interruption".into()),
        };
        let f = sign_certificate(&c, &seed).unwrap();
        let (back, pk) = verify_certificate(&f, None).unwrap();
        assert_eq!(back, c);
        assert!(verify_certificate(&f, Some(&pk)).is_ok());
        let forged = String::from_utf8(f)
            .unwrap()
            .replace("\"files\": 3", "\"files\": 4");
        assert!(verify_certificate(forged.as_bytes(), None).is_err());
        // Nor can the late note be dropped to pass it off as written on time.
        let s = String::from_utf8(sign_certificate(&c, &seed).unwrap()).unwrap();
        let dropped = s.replace(",\n    \"late\": \"written after an interruption\"", "");
        assert_ne!(dropped, s);
        assert!(verify_certificate(dropped.as_bytes(), None).is_err());
    }

    #[test]
    fn metadata_from_a_request_is_checked() {
        let mut m = ClientMeta {
            retain: Some("7y after close".into()),
            reference: Some("M-1".into()),
            ..Default::default()
        };
        assert!(check_meta(&m).is_ok());
        m.retain = Some("seven years".into());
        assert!(check_meta(&m).is_err());
        m.retain = None;
        m.reference = Some("a\nb".into());
        assert!(check_meta(&m).is_err());
    }
}
