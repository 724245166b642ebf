//! The machine's local time zone, as the C library reads it (`TZ`, else /etc/localtime): a
//! report judges "night" by the practice's clock, not by UTC.

/// The local time's offset from UTC, in seconds, at `t` (seconds since the epoch); 0 when
/// the C library cannot say.
pub fn utc_offset(t: i64) -> i64 {
    let tt = t as libc::time_t;
    // SAFETY: `tm` is plain data the call fills in; localtime_r is the re-entrant form.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::localtime_r(&tt, &mut tm) };
    if r.is_null() {
        0
    } else {
        tm.tm_gmtoff as i64
    }
}

/// The local time zone's name: `TZ` when set, else what /etc/localtime links to
/// (`Europe/Berlin`), else `UTC`.
pub fn local_zone_name() -> String {
    if let Ok(tz) = std::env::var("TZ") {
        let tz = tz.trim_start_matches(':');
        if !tz.is_empty() {
            return tz.to_string();
        }
    }
    std::fs::read_link("/etc/localtime")
        .ok()
        .and_then(|p| {
            let s = p.to_string_lossy().into_owned();
            s.split_once("zoneinfo/").map(|(_, z)| z.to_string())
        })
        .unwrap_or_else(|| "UTC".into())
}
