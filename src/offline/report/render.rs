//! A report as HTML (one self-contained file: inline CSS and SVG, no scripts, nothing fetched),
//! Markdown or JSON. Every string that came from the log (paths, users, programs, details)
//! is escaped for the format: a file named `<script>` is text in the report, never markup.

use super::{Counts, Kind, Report};
use crate::audit::prune::stamp;
use std::fmt::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Markdown,
    Json,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "html" => Some(Format::Html),
            "md" | "markdown" => Some(Format::Markdown),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// Control characters shown as escapes first (as on a terminal), then HTML's specials.
pub fn html(s: &str) -> String {
    let t = crate::text::escape(s);
    let mut o = String::with_capacity(t.len());
    for c in t.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Text for a Markdown table cell or line: escapes, and the characters Markdown reads.
fn md(s: &str) -> String {
    let t = crate::text::escape(s);
    let mut o = String::with_capacity(t.len());
    for c in t.chars() {
        match c {
            // Markdown passes HTML through: these make it text.
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '|' | '`' | '*' | '_' | '[' | ']' | '\\' | '#' => {
                o.push('\\');
                o.push(c);
            }
            c => o.push(c),
        }
    }
    o
}

fn when(t: Option<u64>) -> String {
    t.map_or_else(|| "—".into(), stamp)
}

fn window(r: &Report) -> String {
    format!(
        "{} to {}",
        r.since_ms
            .map_or_else(|| "the start of the log".into(), stamp),
        r.until_ms
            .map_or_else(|| "the time of this report".into(), stamp)
    )
}

fn scope(r: &Report) -> (String, String) {
    (
        if r.scope_clients.is_empty() {
            "all".into()
        } else {
            r.scope_clients.join(", ")
        },
        if r.scope_users.is_empty() {
            "all".into()
        } else {
            r.scope_users.join(", ")
        },
    )
}

fn cells(c: &Counts) -> [u64; 7] {
    [
        c.read, c.created, c.changed, c.deleted, c.exported, c.refused, c.listed,
    ]
}

/// Renders the report's body (the signature is added by `signed`).
pub fn render(r: &Report, f: Format) -> String {
    match f {
        Format::Json => serde_json::to_string_pretty(r).unwrap_or_default(),
        Format::Markdown => markdown(r),
        Format::Html => page(r),
    }
}

fn markdown(r: &Report) -> String {
    let mut o = String::new();
    let (clients, users) = scope(r);
    let _ = writeln!(o, "# Audit report: breach scope\n");
    let _ = writeln!(o, "- Window: {}", window(r));
    let _ = writeln!(o, "- Clients: {}; users: {}", md(&clients), md(&users));
    let _ = writeln!(o, "- Made: {} by {}", stamp(r.made_ms), md(&r.made_by));
    let _ = writeln!(o, "- Vault: {}\n", r.vault_id);
    let v = &r.verification;
    let _ = writeln!(o, "## How the log was verified\n");
    let _ = writeln!(
        o,
        "- Chain: **{}** ({} records in {} segments)",
        if v.ok { "verified" } else { "DID NOT VERIFY" },
        v.records,
        v.segments
    );
    if let Some(p) = &v.problem {
        let _ = writeln!(o, "- Problem: {}", md(p));
    }
    for c in &v.chains {
        let _ = writeln!(
            o,
            "- {}: records {}..{}, head anchor `{}`{}",
            md(&c.label),
            c.first_seq,
            c.next_seq.saturating_sub(1),
            c.head.clone().unwrap_or_default(),
            c.pruned
                .as_ref()
                .map_or(String::new(), |p| format!("; {}", md(p)))
        );
    }
    for n in &v.clock_notes {
        let _ = writeln!(o, "- Clock: {}", md(n));
    }
    let _ = writeln!(o, "\n## Per client\n");
    let _ = writeln!(o, "| client | read | created | changed | deleted | exported | refused | listed | first | last |");
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|");
    for c in &r.clients {
        let a = cells(&c.accesses);
        let fl = cells(&c.files);
        let _ = write!(o, "| {} ", md(&c.name));
        for i in 0..7 {
            let _ = write!(o, "| {} ({} files) ", a[i], fl[i]);
        }
        let _ = writeln!(o, "| {} | {} |", when(c.first_ms), when(c.last_ms));
    }
    for c in &r.clients {
        let _ = writeln!(o, "\n### {}\n", md(&c.name));
        for u in &c.users {
            let _ = writeln!(
                o,
                "- {} (uid {}): {} records ({})",
                md(&u.user),
                u.uid,
                u.counts.total(),
                kinds_text(&u.counts)
            );
        }
        let progs: Vec<String> = c
            .programs
            .iter()
            .take(10)
            .map(|(p, n)| format!("{} ({n})", md(p)))
            .collect();
        let _ = writeln!(o, "- Programs: {}", progs.join(", "));
    }
    let _ = writeln!(o, "\n## Unusual accesses\n");
    if r.flags.is_empty() {
        let _ = writeln!(o, "None flagged.");
    }
    for f in &r.flags {
        let _ = writeln!(
            o,
            "- {} — **{}**, {}{}: {}",
            stamp(f.time_ms),
            md(&f.kind),
            md(&f.user),
            f.client
                .as_ref()
                .map_or(String::new(), |c| format!(" ({})", md(c))),
            md(&f.detail)
        );
    }
    let _ = writeln!(o, "\n## Events that change exposure\n");
    for e in &r.events {
        let _ = writeln!(
            o,
            "- {} {} by {} ({}){}",
            stamp(e.time_ms),
            md(&e.op),
            md(&e.user),
            md(&e.result),
            e.detail
                .as_ref()
                .map_or(String::new(), |d| format!(": {}", md(d)))
        );
    }
    let _ = writeln!(o, "\n## What the encryption means\n");
    for s in &r.statement {
        let _ = writeln!(o, "{}\n", md(s));
    }
    if let Some(p) = &r.paths {
        let _ = writeln!(o, "## Annex: paths (CONFIDENTIAL)\n");
        for (client, paths) in p {
            let _ = writeln!(o, "### {}\n", md(client));
            for (path, n) in paths {
                let _ = writeln!(o, "- {} ({n})", md(path));
            }
        }
    }
    o
}

fn kinds_text(c: &Counts) -> String {
    let v = cells(c);
    Kind::ALL
        .iter()
        .zip(v)
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{} {n}", k.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The timeline: stacked bars of accesses and refusals per bucket, and one row per user.
fn chart(r: &Report) -> String {
    let mut o = String::new();
    if r.timeline.is_empty() {
        return "<p>No accesses in the window.</p>".into();
    }
    let (w, h) = (900.0_f64, 180.0_f64);
    let max = r
        .timeline
        .iter()
        .map(|b| b.accesses + b.refusals)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let first = r.timeline[0].start_ms;
    let last = r.timeline[r.timeline.len() - 1].start_ms;
    let n = ((last - first) / r.bucket_ms + 1) as f64;
    let bw = (w / n).max(1.0);
    let _ = write!(
        o,
        r#"<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" viewBox="0 0 {} {}" role="img" aria-label="accesses and refusals per {}">"#,
        w + 60.0,
        h + 40.0,
        w + 60.0,
        h + 40.0,
        if r.bucket_ms >= 86_400_000 {
            "day"
        } else {
            "hour"
        }
    );
    let _ = write!(
        o,
        r##"<line x1="50" y1="{h}" x2="{}" y2="{h}" stroke="#444"/>"##,
        w + 50.0
    );
    let _ = write!(
        o,
        r##"<text x="45" y="12" text-anchor="end" font-size="11">{}</text>"##,
        max as u64
    );
    let _ = write!(
        o,
        r##"<text x="45" y="{h}" text-anchor="end" font-size="11">0</text>"##
    );
    for b in &r.timeline {
        let x = 50.0 + ((b.start_ms - first) / r.bucket_ms) as f64 * bw;
        let ha = b.accesses as f64 / max * h;
        let hr = b.refusals as f64 / max * h;
        let _ = write!(
            o,
            r##"<rect class="access" x="{x:.1}" y="{:.1}" width="{:.1}" height="{ha:.1}" fill="#3b6ea5"><title>{}: {} accesses</title></rect>"##,
            h - ha,
            (bw - 0.5).max(0.5),
            stamp(b.start_ms),
            b.accesses
        );
        if b.refusals > 0 {
            let _ = write!(
                o,
                r##"<rect class="refusal" x="{x:.1}" y="{:.1}" width="{:.1}" height="{hr:.1}" fill="#c0392b"><title>{}: {} refusals</title></rect>"##,
                h - ha - hr,
                (bw - 0.5).max(0.5),
                stamp(b.start_ms),
                b.refusals
            );
        }
    }
    let _ = write!(
        o,
        r##"<text x="50" y="{}" font-size="11">{}</text><text x="{}" y="{}" text-anchor="end" font-size="11">{}</text></svg>"##,
        h + 16.0,
        stamp(first),
        w + 50.0,
        h + 16.0,
        stamp(last)
    );
    // Per user: the busiest eight, one row each.
    let mut users: std::collections::BTreeMap<&str, u64> = Default::default();
    for b in &r.timeline {
        for (u, n) in &b.by_user {
            *users.entry(u).or_default() += n;
        }
    }
    let mut top: Vec<(&str, u64)> = users.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    top.truncate(8);
    let row = 28.0;
    let _ = write!(
        o,
        r#"<svg id="per-user" xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" role="img" aria-label="records per user">"#,
        w + 160.0,
        row * top.len() as f64 + 10.0
    );
    for (i, (u, total)) in top.iter().enumerate() {
        let y = i as f64 * row + 4.0;
        let umax = r
            .timeline
            .iter()
            .map(|b| b.by_user.get(*u).copied().unwrap_or(0))
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let _ = write!(
            o,
            r##"<text x="0" y="{:.1}" font-size="11">{} ({total})</text>"##,
            y + 16.0,
            html(u)
        );
        for b in &r.timeline {
            let n = b.by_user.get(*u).copied().unwrap_or(0);
            if n == 0 {
                continue;
            }
            let x = 150.0 + ((b.start_ms - first) / r.bucket_ms) as f64 * bw;
            let bh = n as f64 / umax * (row - 6.0);
            let _ = write!(
                o,
                r##"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="#6c8ebf"><title>{}: {n}</title></rect>"##,
                y + row - 6.0 - bh,
                (bw - 0.5).max(0.5),
                stamp(b.start_ms)
            );
        }
    }
    o.push_str("</svg>");
    o
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}\
td:first-child,th:first-child{text-align:left}.bad{color:#c0392b;font-weight:bold}.ok{color:#1e7e34;font-weight:bold}\
.confidential{border:3px solid #c0392b;padding:0 1em}code{font-size:90%}";

fn page(r: &Report) -> String {
    let mut o = String::new();
    let (clients, users) = scope(r);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\"><title>tutela audit report</title><style>{STYLE}</style></head><body>\n"
    );
    let _ = write!(o, "<h1>Audit report: breach scope</h1>\n<ul><li>Window: {}</li><li>Clients: {}; users: {}</li><li>Made {} by {}</li><li>Vault {}</li></ul>\n",
        html(&window(r)), html(&clients), html(&users), stamp(r.made_ms), html(&r.made_by), r.vault_id);
    let v = &r.verification;
    let _ = write!(
        o,
        "<h2>How the log was verified</h2>\n<p id=\"verification\" class=\"{}\">{}</p><ul><li>{} records in {} segments</li>",
        if v.ok { "ok" } else { "bad" },
        if v.ok {
            "The audit log's chain verified."
        } else {
            "THE AUDIT LOG DID NOT VERIFY."
        },
        v.records,
        v.segments
    );
    if let Some(p) = &v.problem {
        let _ = write!(o, "<li class=\"bad\">Problem: {}</li>", html(p));
    }
    for c in &v.chains {
        let _ = write!(
            o,
            "<li>{}: records {} to {}, head anchor <code>{}</code>{}</li>",
            html(&c.label),
            c.first_seq,
            c.next_seq.saturating_sub(1),
            html(&c.head.clone().unwrap_or_default()),
            c.pruned
                .as_ref()
                .map_or(String::new(), |p| format!("; {}", html(p)))
        );
    }
    if v.torn_tail {
        o.push_str("<li>A record was cut short by a crash (not tampering).</li>");
    }
    for n in &v.clock_notes {
        let _ = write!(o, "<li>Clock: {}</li>", html(n));
    }
    o.push_str("</ul>\n<h2>Per client</h2>\n<table id=\"clients\"><tr><th>client</th>");
    for k in Kind::ALL {
        let _ = write!(o, "<th>{}</th>", k.name());
    }
    o.push_str("<th>first access</th><th>last access</th></tr>\n");
    for c in &r.clients {
        let _ = write!(o, "<tr><td>{}</td>", html(&c.name));
        let (a, f) = (cells(&c.accesses), cells(&c.files));
        for i in 0..7 {
            let _ = write!(o, "<td>{} <small>({} files)</small></td>", a[i], f[i]);
        }
        let _ = writeln!(
            o,
            "<td>{}</td><td>{}</td></tr>",
            when(c.first_ms),
            when(c.last_ms)
        );
    }
    o.push_str("</table>\n");
    for c in &r.clients {
        let _ = write!(
            o,
            "<h3>{}</h3><table><tr><th>user</th><th>uid</th>",
            html(&c.name)
        );
        for k in Kind::ALL {
            let _ = write!(o, "<th>{}</th>", k.name());
        }
        o.push_str("</tr>");
        for u in &c.users {
            let _ = write!(o, "<tr><td>{}</td><td>{}</td>", html(&u.user), u.uid);
            for n in cells(&u.counts) {
                let _ = write!(o, "<td>{n}</td>");
            }
            o.push_str("</tr>");
        }
        let progs: Vec<String> = c
            .programs
            .iter()
            .take(10)
            .map(|(p, n)| format!("{} ({n})", html(p)))
            .collect();
        let _ = writeln!(o, "</table><p>Programs: {}</p>", progs.join(", "));
    }
    o.push_str("<h2>Timeline</h2>\n");
    o.push_str(&chart(r));
    o.push_str("\n<h2>Unusual accesses</h2>\n");
    if r.flags.is_empty() {
        o.push_str("<p>None flagged.</p>");
    } else {
        o.push_str("<table id=\"flags\"><tr><th>time (UTC)</th><th>what</th><th>user</th><th>client</th><th>detail</th></tr>");
        for f in &r.flags {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                stamp(f.time_ms),
                html(&f.kind),
                html(&f.user),
                html(f.client.as_deref().unwrap_or("")),
                html(&f.detail)
            );
        }
        o.push_str("</table>");
    }
    o.push_str("\n<h2>Events that change exposure</h2>\n<table id=\"events\"><tr><th>time (UTC)</th><th>event</th><th>by</th><th>result</th><th>detail</th></tr>");
    for e in &r.events {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td></tr>",
            stamp(e.time_ms),
            html(&e.op),
            html(&e.user),
            e.uid,
            html(&e.result),
            html(e.detail.as_deref().unwrap_or(""))
        );
    }
    o.push_str("</table>\n<h2>What the encryption means for the notification</h2>\n");
    for s in &r.statement {
        let _ = write!(o, "<p>{}</p>", html(s));
    }
    if let Some(p) = &r.paths {
        o.push_str("\n<section class=\"confidential\" id=\"annex\"><h2>Annex: paths — CONFIDENTIAL</h2><p>Plaintext names of client files. Share only with those who must see them (leave this annex out with <code>--no-paths</code>).</p>");
        for (client, paths) in p {
            let _ = write!(o, "<h3>{}</h3><ul>", html(client));
            for (path, n) in paths {
                let _ = write!(o, "<li>{} ({n})</li>", html(path));
            }
            o.push_str("</ul>");
        }
        o.push_str("</section>");
    }
    o.push_str("\n</body></html>\n");
    o
}
