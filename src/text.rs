//! Text that came from files, users or the backing directory, made safe to print on a
//! terminal or in a line-oriented report: control characters (a newline would forge a whole
//! record of `audit show`; an escape sequence would drive the terminal), Unicode bidirectional
//! overrides (which reorder what is shown) and the backslash itself are written as escapes, so
//! every printed line stands for exactly one thing and escaped text cannot pose as an escape.

use std::borrow::Cow;

fn needs_escape(c: char) -> bool {
    c.is_control()
        || c == '\\'
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with control characters, bidi overrides and backslashes escaped (`\n`, `\t`, `\\`,
/// `\x1b`, `\u{202e}`); borrowed when nothing needs escaping.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x80 && needs_escape(c) => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A name given as bytes (never assumed UTF-8): invalid sequences are shown as `\xNN`, the
/// rest as `escape` does.
pub fn escape_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        out.push_str(&escape(chunk.valid()));
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newline_cannot_start_a_forged_line() {
        let forged = "/a\n2026-12-06T10:00:00Z  alice(1001)  cat[1]  open  /clients/acme/x  ok";
        let shown = escape(forged);
        assert!(!shown.contains('\n'));
        assert!(shown.starts_with("/a\\n2026"));
    }

    #[test]
    fn terminal_controls_and_bidi_overrides_are_escaped() {
        assert_eq!(escape("\x1b[2J\x07"), "\\x1b[2J\\x07");
        assert_eq!(escape("a\u{202e}txt.exe"), "a\\u{202e}txt.exe");
        assert_eq!(escape("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(escape("back\\slash"), "back\\\\slash");
        assert!(matches!(escape("plain name.txt"), Cow::Borrowed(_)));
        assert_eq!(escape("café"), "café");
    }

    #[test]
    fn invalid_utf8_is_shown_as_bytes() {
        assert_eq!(escape_bytes(b"a\xffb\n"), "a\\xffb\\n");
        assert_eq!(escape_bytes("ü".as_bytes()), "ü");
    }
}
