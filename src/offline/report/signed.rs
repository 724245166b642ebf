//! A report's signature: Ed25519 by the vault's report key (`crypto::sign`, domain
//! `tutela/v1/report`), checkable offline with the public key alone (`audit pubkey` prints
//! it). HTML and Markdown reports end with one line,
//! `<!-- tutela-signature v1 ed25519 public=HEX signature=HEX -->`, over every byte before
//! it; a JSON report is `{"report": R, "signature": {"algorithm", "public_key",
//! "signature"}}`, the signature over R serialized compactly.

use super::render::Format;
use crate::crypto::secret::Key32;
use crate::crypto::sign;
use crate::error::{Error, Result};

pub const DOMAIN: &[u8] = b"tutela/v1/report";
const MARK: &str = "<!-- tutela-signature v1 ed25519 public=";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Public keys print as hex.
pub fn public_hex(seed: &Key32) -> String {
    hex(&sign::public(seed))
}

/// The signed file for `body` (rendered in format `f`).
pub fn sign_body(body: &str, f: Format, seed: &Key32) -> Result<Vec<u8>> {
    let pk = sign::public(seed);
    match f {
        Format::Json => {
            let v: serde_json::Value = serde_json::from_str(body).map_err(|_| Error::Invalid)?;
            let bytes = serde_json::to_vec(&v).map_err(|_| Error::Invalid)?;
            let sig = sign::sign(seed, DOMAIN, &bytes);
            let out = serde_json::json!({
                "report": v,
                "signature": {"algorithm": "ed25519", "public_key": hex(&pk), "signature": hex(&sig)},
            });
            let mut s = serde_json::to_string_pretty(&out).map_err(|_| Error::Invalid)?;
            s.push('\n');
            Ok(s.into_bytes())
        }
        _ => {
            let mut out = body.as_bytes().to_vec();
            if !out.ends_with(b"\n") {
                out.push(b'\n');
            }
            let sig = sign::sign(seed, DOMAIN, &out);
            out.extend_from_slice(
                format!("{MARK}{} signature={} -->\n", hex(&pk), hex(&sig)).as_bytes(),
            );
            Ok(out)
        }
    }
}

fn tampered(why: &str) -> Error {
    Error::AuditTampered(format!("the report {why}"))
}

/// Checks a signed report; returns the public key that signed it. With `expect`, a report
/// signed by any other key fails too.
pub fn verify(file: &[u8], expect: Option<&str>) -> Result<String> {
    let (pk, sig, body): ([u8; 32], [u8; 64], Vec<u8>) = if file.starts_with(b"{") {
        let v: serde_json::Value = serde_json::from_slice(file)
            .map_err(|_| tampered("is not a signed tutela JSON report"))?;
        let s = &v["signature"];
        let pk = s["public_key"].as_str().and_then(unhex::<32>);
        let sig = s["signature"].as_str().and_then(unhex::<64>);
        let (Some(pk), Some(sig), Some(r)) = (pk, sig, v.get("report")) else {
            return Err(tampered("carries no tutela signature"));
        };
        (pk, sig, serde_json::to_vec(r).map_err(|_| Error::Invalid)?)
    } else {
        let text = std::str::from_utf8(file).map_err(|_| tampered("is not text"))?;
        let body_len = text.trim_end_matches('\n').rfind('\n').map_or(0, |i| i + 1);
        let last = text[body_len..].trim_end_matches('\n');
        let rest = last
            .strip_prefix(MARK)
            .and_then(|r| r.strip_suffix(" -->"))
            .ok_or_else(|| tampered("carries no tutela signature on its last line"))?;
        let (p, s) = rest
            .split_once(" signature=")
            .ok_or_else(|| tampered("has a malformed signature line"))?;
        let (Some(pk), Some(sig)) = (unhex::<32>(p), unhex::<64>(s)) else {
            return Err(tampered("has a malformed signature line"));
        };
        (pk, sig, file[..body_len].to_vec())
    };
    if !sign::verify(&pk, DOMAIN, &body, &sig) {
        return Err(tampered(
            "was changed after it was signed (its signature does not match)",
        ));
    }
    let got = hex(&pk);
    if let Some(e) = expect {
        if !e.trim().eq_ignore_ascii_case(&got) {
            return Err(tampered(&format!(
                "is signed by key {got}, not by {} (the key `tutela audit pubkey` printed for the vault)",
                crate::text::escape(e.trim())
            )));
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_of(b: &[u8]) -> String {
        hex(b)
    }

    /// FORMAT.md's vectors, computed independently (Python's `cryptography`).
    #[test]
    fn the_report_key_and_signature_match_format_md_vectors() {
        let mk = Key32::from_bytes(std::array::from_fn(|i| i as u8));
        let seed = crate::crypto::kdf::report_sign_seed(&mk, &[0x11; 16]);
        assert_eq!(
            public_hex(&seed),
            crate::format::vectors::REPORT_SIGN_PUBLIC_VECTOR
        );
        let signed = sign_body("hello\n", Format::Markdown, &seed).unwrap();
        let line = String::from_utf8(signed[6..].to_vec()).unwrap();
        let sig = crate::crypto::sign::sign(&seed, DOMAIN, b"hello\n");
        assert_eq!(
            hex_of(&sig),
            crate::format::vectors::REPORT_SIGNATURE_VECTOR
        );
        assert!(line.contains(crate::format::vectors::REPORT_SIGNATURE_VECTOR));
    }

    #[test]
    fn signed_reports_verify_and_any_edit_fails() {
        let seed = Key32::from_bytes([3; 32]);
        for (f, body) in [
            (Format::Html, "<html><body>12 files read</body></html>\n"),
            (Format::Markdown, "# report\n12 files read\n"),
            (Format::Json, "{\"files\": 12, \"who\": \"alice\"}"),
        ] {
            let signed = sign_body(body, f, &seed).unwrap();
            let pk = verify(&signed, None).unwrap();
            assert_eq!(pk, public_hex(&seed));
            assert!(verify(&signed, Some(&pk)).is_ok());
            assert!(verify(&signed, Some(&"00".repeat(32))).is_err());
            let text = String::from_utf8(signed.clone()).unwrap();
            let edited = text.replacen("12", "2", 1);
            assert!(matches!(
                verify(edited.as_bytes(), None),
                Err(Error::AuditTampered(_))
            ));
            // Cut the signature off, or sign with another key: refused.
            let other = sign_body(body, f, &Key32::from_bytes([4; 32])).unwrap();
            assert!(verify(&other, Some(&pk)).is_err());
        }
        assert!(verify(b"<html></html>\n", None).is_err());
        assert!(verify(b"", None).is_err());
        assert!(verify(b"{\"report\": {}}", None).is_err());
    }
}
