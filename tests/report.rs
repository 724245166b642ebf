//! The breach-scope report and the access review, from a real shared mount worked on by real
//! local users (some refused): its numbers checked against the log's own records, the HTML
//! opened in headless Chromium (screenshot checked for the chart, no script run from a file
//! name), signatures checked offline, and a tampered report or log caught.

mod common;

use common::{code, run_ok, text, tutela, TestVault};
use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use tutela::error::exit;

use common::{as_user, ensure_group, ensure_shell_user as ensure_user};

const POLICY: &str = r#"admins = ["group:tutela_rpartners"]

[clients.acme]
path = "/clients/acme"
read = ["tutela_ralice", "group:tutela_rparalegals"]
write = ["tutela_ralice"]

[clients.bluebird]
path = "/clients/bluebird"
read = ["tutela_rbob"]
write = ["tutela_rbob"]
"#;

fn tv(v: &TestVault, args: &[&str]) -> Output {
    tutela()
        .args(&args[..2])
        .arg(&v.vault)
        .args(&args[2..])
        .arg("--passfile")
        .arg(&v.passfile)
        .output()
        .unwrap()
}

/// A shared mount, a policy, and a day's work: alice writes and reads acme's files (one named
/// like markup), bob works on bluebird and is refused acme, carol hammers acme and is refused
/// again and again, dan (a paralegal) never comes, the admin exports acme.
fn workload() -> Option<TestVault> {
    let reason = common::fuse_missing()
        .or_else(|| (!common::is_root()).then(|| "needs root to create users".to_string()));
    if common::skip_unless(reason, "report") {
        return None;
    }
    ensure_group("tutela_rparalegals");
    ensure_group("tutela_rpartners");
    ensure_user("tutela_ralice", &[]);
    ensure_user("tutela_rbob", &[]);
    ensure_user("tutela_rcarol", &[]);
    ensure_user("tutela_rdan", &["tutela_rparalegals"]);
    let mut v = TestVault::new_unmounted();
    for (c, p) in [("acme", "/clients/acme"), ("bluebird", "/clients/bluebird")] {
        let o = tv(&v, &["client", "add", c, "--path", p]);
        assert!(o.status.success(), "{}", text(&o));
    }
    v.mount_args(&[]);
    // Unix modes wide open: the policy alone fences the clients.
    for d in ["clients", "clients/acme", "clients/bluebird"] {
        fs::set_permissions(v.p(d), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    }
    let pf = v.tmp.path().join("policy.toml");
    fs::write(&pf, POLICY).unwrap();
    v.unmount();
    let o = tv(&v, &["policy", "set", pf.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    v.mount_args(&["--allow-other"]);
    let acme = v.p("clients/acme");
    let bb = v.p("clients/bluebird");
    let a = acme.display();
    for s in [
        format!(
            "echo one > {a}/memo1.txt && echo two > {a}/memo2.txt && echo three > {a}/memo3.txt"
        ),
        format!("cat {a}/memo1.txt {a}/memo2.txt {a}/memo3.txt {a}/memo1.txt > /dev/null"),
        format!("rm {a}/memo3.txt"),
        format!("echo x > '{a}/<img src=x onerror=alert(1)>.txt'"),
    ] {
        let o = as_user("tutela_ralice", &s);
        assert!(o.status.success(), "{s}: {}", text(&o));
    }
    let o = as_user(
        "tutela_rbob",
        &format!("echo b > {}/plan.txt && cat {a}/memo1.txt", bb.display()),
    );
    assert!(!o.status.success());
    for _ in 0..12 {
        let o = as_user("tutela_rcarol", &format!("cat {a}/memo1.txt"));
        assert!(!o.status.success());
    }
    v.unmount();
    let out = v.tmp.path().join("acme.tar");
    let o = tv(
        &v,
        &[
            "client",
            "export",
            "acme",
            "--output",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    Some(v)
}

/// What the log itself says about acme, computed here from `audit show --json` (independently
/// of the report's code): (reads, created, deleted, refusals).
fn from_log(v: &TestVault) -> (u64, u64, u64, u64) {
    let o = tv(v, &["audit", "show", "--path", "/clients/acme", "--json"]);
    assert!(o.status.success());
    let (mut r, mut c, mut d, mut x) = (0, 0, 0, 0);
    for l in text(&o).lines() {
        let Ok(j) = serde_json::from_str::<serde_json::Value>(l) else {
            continue;
        };
        let detail = j["detail"].as_str().unwrap_or("");
        match (j["op"].as_str().unwrap(), j["result"].as_str().unwrap()) {
            (_, "denied") => {
                x += detail
                    .strip_prefix("refused ")
                    .and_then(|d| d.split_whitespace().next())
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(1)
            }
            ("open", "ok") if !detail.contains('w') => r += 1,
            ("create", "ok") => c += 1,
            ("unlink", "ok") => d += 1,
            _ => {}
        }
    }
    (r, c, d, x)
}

fn report(v: &TestVault, name: &str, extra: &[&str]) -> std::path::PathBuf {
    let out = v.tmp.path().join(name);
    let mut args = vec!["audit", "report", "--output", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = tv(v, &args);
    assert!(o.status.success(), "{}", text(&o));
    out
}

#[test]
fn the_report_counts_what_the_log_holds_and_is_signed() {
    let Some(v) = workload() else {
        return;
    };
    let file = report(&v, "acme.json", &["--client", "acme", "--format", "json"]);
    let j: serde_json::Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    let r = &j["report"];
    assert_eq!(r["verification"]["ok"], true);
    let acme = r["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "acme")
        .unwrap();
    assert_eq!(
        r["clients"].as_array().unwrap().len(),
        1,
        "only acme in scope"
    );
    let (reads, created, deleted, refused) = from_log(&v);
    let a = &acme["accesses"];
    assert_eq!(a["read"], reads);
    assert_eq!(a["created"], created);
    assert_eq!(a["deleted"], deleted);
    assert_eq!(a["refused"], refused);
    assert!(refused >= 13, "bob once and carol twelve times: {refused}");
    assert_eq!(a["exported"], 1);
    // Alice read memo1 twice, memo2 and memo3 once: three files.
    assert_eq!(a["read"], 4);
    assert_eq!(acme["files"]["read"], 3, "three distinct files read");
    let users: Vec<&str> = acme["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user"].as_str().unwrap())
        .collect();
    for u in ["tutela_ralice", "tutela_rbob", "tutela_rcarol", "root"] {
        assert!(users.contains(&u), "{u} in {users:?}");
    }
    let flags: Vec<(&str, &str)> = r["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["kind"].as_str().unwrap(), f["user"].as_str().unwrap()))
        .collect();
    assert!(
        flags.contains(&("refusal burst", "tutela_rcarol")),
        "{flags:?}"
    );
    assert!(flags.iter().any(|f| f.0 == "export"), "{flags:?}");
    let events: Vec<String> = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["op"].as_str().unwrap(),
                e["detail"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("mount") && e.contains("key 'default'")),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| e.starts_with("policy-set")),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| e.starts_with("client-export")),
        "{events:?}"
    );
    assert!(
        r["paths"]["acme"]["/clients/acme/memo1.txt"]
            .as_u64()
            .unwrap()
            >= 2
    );
    assert!(r["statement"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s.as_str().unwrap().contains("mounted period")));

    // The signature: checked offline, against the key `audit pubkey` prints.
    let pk = text(&tv(&v, &["audit", "pubkey"])).trim().to_string();
    assert_eq!(pk.len(), 64, "{pk}");
    let check = |f: &Path, extra: &[&str]| {
        tutela()
            .args(["audit", "report", "--verify"])
            .arg(f)
            .args(extra)
            .output()
            .unwrap()
    };
    assert!(check(&file, &["--pubkey", &pk]).status.success());
    let forged = v.tmp.path().join("forged.json");
    fs::write(
        &forged,
        fs::read_to_string(&file)
            .unwrap()
            .replacen("\"refused\": 1", "\"refused\": 0", 1)
            .replacen("tutela_rcarol", "tutela_rbobby", 1),
    )
    .unwrap();
    let o = check(&forged, &[]);
    assert_eq!(code(&o), exit::AUDIT_TAMPERED, "{}", text(&o));
    assert_eq!(
        code(&check(&file, &["--pubkey", &"ab".repeat(32)])),
        exit::AUDIT_TAMPERED
    );

    // Without the annex no path is in the file.
    let np = report(
        &v,
        "acme-np.md",
        &["--client", "acme", "--format", "md", "--no-paths"],
    );
    let body = fs::read_to_string(&np).unwrap();
    assert!(!body.contains("memo1"), "{body}");
    assert!(check(&np, &[]).status.success());
    // Bad input: a report is never written over a file; unknown client, format, user.
    for bad in [
        &["audit", "report", "--output", np.to_str().unwrap()][..],
        &[
            "audit",
            "report",
            "--output",
            "/tmp/x.html",
            "--client",
            "nobody",
        ],
        &[
            "audit",
            "report",
            "--output",
            "/tmp/x.pdf",
            "--format",
            "pdf",
        ],
        &[
            "audit",
            "report",
            "--output",
            "/tmp/x.html",
            "--user",
            "no_such_user_here",
        ],
    ] {
        assert_eq!(code(&tv(&v, bad)), exit::USAGE);
    }
}

/// Pixels of about this colour in a PNG (8-bit RGB or RGBA, as Chromium writes them).
fn count_colour(png: &[u8], want: [u8; 3]) -> usize {
    use std::io::Read;
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let (mut w, mut h, mut bpp) = (0usize, 0usize, 0usize);
    let mut idat = Vec::new();
    let mut i = 8;
    while i + 8 <= png.len() {
        let len = u32::from_be_bytes(png[i..i + 4].try_into().unwrap()) as usize;
        let kind = &png[i + 4..i + 8];
        let data = &png[i + 8..i + 8 + len];
        match kind {
            b"IHDR" => {
                w = u32::from_be_bytes(data[0..4].try_into().unwrap()) as usize;
                h = u32::from_be_bytes(data[4..8].try_into().unwrap()) as usize;
                assert_eq!(data[8], 8, "8-bit samples");
                bpp = match data[9] {
                    2 => 3,
                    6 => 4,
                    t => panic!("colour type {t}"),
                };
            }
            b"IDAT" => idat.extend_from_slice(data),
            _ => {}
        }
        i += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .unwrap();
    let stride = w * bpp;
    let mut prev = vec![0u8; stride];
    let mut n = 0;
    for y in 0..h {
        let row = &raw[y * (stride + 1)..(y + 1) * (stride + 1)];
        let mut cur = row[1..].to_vec();
        for x in 0..stride {
            let a = if x >= bpp { cur[x - bpp] as i32 } else { 0 };
            let b = prev[x] as i32;
            let c = if x >= bpp { prev[x - bpp] as i32 } else { 0 };
            let add = match row[0] {
                0 => 0,
                1 => a,
                2 => b,
                3 => (a + b) / 2,
                4 => {
                    let p = a + b - c;
                    let (pa, pb, pc) = ((p - a).abs(), (p - b).abs(), (p - c).abs());
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                f => panic!("filter {f}"),
            };
            cur[x] = (cur[x] as i32 + add) as u8;
        }
        for px in cur.chunks(bpp) {
            if (0..3).all(|k| (px[k] as i32 - want[k] as i32).abs() <= 8) {
                n += 1;
            }
        }
        prev = cur;
    }
    n
}

#[test]
fn the_html_report_shows_its_chart_in_a_browser_and_runs_nothing_from_a_file_name() {
    let Some(v) = workload() else {
        return;
    };
    if !common::need("chromium", "the_html_report_shows_its_chart_in_a_browser") {
        return;
    }
    let file = report(&v, "report.html", &[]);
    let html = fs::read_to_string(&file).unwrap();
    // The file name that looks like markup is text in the report, never an element.
    assert!(!html.contains("<img"), "a name became markup");
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;.txt"));
    assert!(!html.contains("<script"), "the report needs no script");
    let shot = v.tmp.path().join("report.png");
    let url = format!("file://{}", file.display());
    let o = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1200,1400",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let log = String::from_utf8_lossy(&o.stderr);
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    let png = fs::read(&shot).unwrap();
    // The timeline's bars: accesses in blue, refusals in red.
    let blue = count_colour(&png, [0x3b, 0x6e, 0xa5]);
    let red = count_colour(&png, [0xc0, 0x39, 0x2b]);
    assert!(blue > 2000, "no access bars in the screenshot ({blue} px)");
    assert!(red > 200, "no refusal bars in the screenshot ({red} px)");
    // As the browser built it: no image element from the file name, the two charts there.
    let dom = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(&url)
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("id=\"timeline\"") && dom.contains("id=\"per-user\""));
    assert!(
        !dom.contains("<img"),
        "the browser made an element from a file name"
    );
    // A check that the screenshot test can fail: a report without accesses has no bars.
    let empty = report(
        &v,
        "empty.html",
        &["--since", "2001-01-01", "--until", "2001-01-02"],
    );
    let shot2 = v.tmp.path().join("empty.png");
    run_ok(
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--window-size=1200,1400",
            ])
            .arg(format!("--screenshot={}", shot2.display()))
            .arg(format!("file://{}", empty.display())),
    );
    assert!(count_colour(&fs::read(&shot2).unwrap(), [0x3b, 0x6e, 0xa5]) < 50);
}

#[test]
fn a_tampered_log_shows_in_the_report_and_the_review_names_unused_access() {
    let Some(v) = workload() else {
        return;
    };
    // The review first, on the intact log.
    let o = tv(
        &v,
        &[
            "audit", "review", "--client", "acme", "--since", "90d", "--json",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let may: Vec<(String, String)> = r["may_access"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["user"].as_str().unwrap().to_string(),
                g["grant"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        may.contains(&("tutela_ralice".into(), "write".into())),
        "{may:?}"
    );
    assert!(
        may.contains(&("tutela_rdan".into(), "read".into())),
        "{may:?}"
    );
    let did = r["did_access"].as_array().unwrap();
    let carol = did.iter().find(|u| u["user"] == "tutela_rcarol").unwrap();
    assert_eq!(carol["granted"], false);
    assert!(carol["refused"].as_u64().unwrap() >= 12);
    assert_eq!(carol["accesses"], 0);
    let never: Vec<&str> = r["never_used"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert!(
        never.contains(&"tutela_rdan") && !never.contains(&"tutela_ralice"),
        "{never:?}"
    );
    let o = tv(&v, &["audit", "review", "--client", "acme"]);
    assert!(text(&o).contains("candidates for removal"), "{}", text(&o));

    // Now change one byte in the middle of the log: the report says so.
    let chain = common::audit_chain_dir(&v.vault);
    let mut segs: Vec<_> = fs::read_dir(&chain)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "seg")
                || p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("seg"))
        })
        .collect();
    segs.sort();
    let target = segs
        .iter()
        .find(|p| fs::metadata(p).unwrap().len() > 400)
        .expect("a segment");
    let mut b = fs::read(target).unwrap();
    let at = b.len() / 2;
    b[at] ^= 0x40;
    fs::write(target, &b).unwrap();
    let file = report(&v, "tampered.md", &["--format", "md"]);
    let body = fs::read_to_string(&file).unwrap();
    assert!(body.contains("DID NOT VERIFY"), "{body}");
    assert!(body.contains("Problem:"), "{body}");
}

/// "Night access" is read on the practice's clock (`TZ`, else /etc/localtime), not UTC's: the
/// same log, reported with a zone where now is midnight, flags the night; with one where it is
/// noon, flags nothing; the flag names the zone and its offset.
#[test]
fn night_access_follows_the_local_time_zone() {
    let Some(mut v) = TestVault::new("night_access_follows_the_local_time_zone") else {
        return;
    };
    v.mount();
    fs::write(v.p("brief.txt"), b"x").unwrap();
    assert_eq!(fs::read(v.p("brief.txt")).unwrap(), b"x");
    v.unmount();
    let hour = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600)
        % 24;
    let nights = |local_hour: u64| {
        // POSIX TZ "ZZZ-5" is UTC+5.
        let off = (local_hour + 24 - hour) % 24;
        let out = v.tmp.path().join(format!("night-{local_hour}.json"));
        let o = tutela()
            .args(["audit", "report"])
            .arg(&v.vault)
            .arg("--output")
            .arg(&out)
            .args(["--format", "json", "--passfile"])
            .arg(&v.passfile)
            .env("TZ", format!("ZZZ-{off}"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        let j: serde_json::Value = serde_json::from_slice(&fs::read(&out).unwrap()).unwrap();
        let flags: Vec<String> = j["report"]["flags"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["kind"] == "night access")
            .map(|f| f["detail"].as_str().unwrap().to_string())
            .collect();
        (off, flags)
    };
    let (off, at_midnight) = nights(0);
    assert_eq!(at_midnight.len(), 1, "{at_midnight:?}");
    assert!(
        at_midnight[0].contains(&format!("ZZZ-{off}, UTC+{off:02}:00")),
        "{at_midnight:?}"
    );
    let (_, at_noon) = nights(12);
    assert!(at_noon.is_empty(), "{at_noon:?}");
}
