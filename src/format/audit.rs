//! Audit log segment framing (FORMAT.md, "Audit log"): a segment is a header, then record
//! frames. This file knows where each field sits; the chain MACs and the sealing of records
//! are the audit module's (it owns the keys).
//!
//! ```text
//! header  magic "TUTELAAU" (8) | version u16 | segment number u64 | prev MAC (32) | MAC (32)
//! sealed  magic "TUTELAAU" (8) | version u16 = 2 | segment number u64 | encapsulated key (32)
//!         | prev MAC (32) | MAC (32)          (a segment whose keys are sealed to the vault's
//!                                              audit public key: a client-scoped mount's)
//! frame   length u32 (of sealed) | sequence u64 | sealed (length) | MAC (32)
//! ```

use super::Reader;

pub const MAGIC: &[u8; 8] = b"TUTELAAU";
pub const VERSION: u16 = 1;
/// The header's length; its first `HEADER_SIGNED` bytes are what its MAC covers.
pub const HEADER_LEN: usize = 8 + 2 + 8 + 32 + 32;
pub const HEADER_SIGNED: usize = 8 + 2 + 8;
/// Version 2: the segment's keys are sealed to the vault's audit public key.
pub const VERSION_SEALED: u16 = 2;
pub const HEADER_LEN_SEALED: usize = 8 + 2 + 8 + 32 + 32 + 32;
pub const HEADER_SIGNED_SEALED: usize = 8 + 2 + 8 + 32;
/// A sealed record is at least a nonce and a tag (12 + 16) and never past 1 MiB.
pub const MIN_SEALED: usize = 28;
pub const MAX_SEALED: usize = 1 << 20;
/// Length and sequence before the sealed record.
const FRAME_HEAD: usize = 4 + 8;

/// A segment's header, parsed.
#[derive(Debug)]
pub struct Header<'a> {
    /// The bytes the header's MAC covers (magic, version, segment number).
    pub signed: &'a [u8],
    pub version: u16,
    pub segment: u64,
    /// Version 2: the key encapsulated to the vault's audit public key.
    pub encapped: Option<[u8; 32]>,
    /// The MAC the segment continues from: the last record's of the segment before it.
    pub prev: [u8; 32],
    pub mac: [u8; 32],
}

/// The header's length for the version in its bytes 8..10 (that of version 1 when unknown).
fn header_len(bytes: &[u8]) -> usize {
    match bytes.get(8..10) {
        Some(v) if u16::from_le_bytes([v[0], v[1]]) == VERSION_SEALED => HEADER_LEN_SEALED,
        _ => HEADER_LEN,
    }
}

/// Why a header could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Shorter than a header, and what is there is the start of one: a crash while the
    /// segment was created.
    Torn,
    Damaged,
    /// A version this tutela does not know.
    Version(u16),
}

pub fn header(bytes: &[u8]) -> Result<Header<'_>, HeaderError> {
    let len = header_len(bytes);
    if bytes.len() < len {
        return Err(
            if MAGIC.starts_with(&bytes[..bytes.len().min(MAGIC.len())]) {
                HeaderError::Torn
            } else {
                HeaderError::Damaged
            },
        );
    }
    let mut r = Reader::new(bytes);
    let bad = |_| HeaderError::Damaged;
    if r.take(MAGIC.len(), "magic").map_err(bad)? != MAGIC {
        return Err(HeaderError::Damaged);
    }
    let version = r.u16("version").map_err(bad)?;
    if version != VERSION && version != VERSION_SEALED {
        return Err(HeaderError::Version(version));
    }
    let segment = r.u64("segment number").map_err(bad)?;
    let (signed, encapped) = if version == VERSION_SEALED {
        (
            &bytes[..HEADER_SIGNED_SEALED],
            Some(r.array("encapsulated key").map_err(bad)?),
        )
    } else {
        (&bytes[..HEADER_SIGNED], None)
    };
    Ok(Header {
        signed,
        version,
        segment,
        encapped,
        prev: r.array("previous MAC").map_err(bad)?,
        mac: r.array("header MAC").map_err(bad)?,
    })
}

/// The signed part of a new sealed segment's header (version 2); the writer appends `prev`
/// and the MAC.
pub fn header_signed_sealed(segment: u64, encapped: &[u8; 32]) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN_SEALED);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&VERSION_SEALED.to_le_bytes());
    h.extend_from_slice(&segment.to_le_bytes());
    h.extend_from_slice(encapped);
    h
}

/// The signed part of a new segment's header; the writer appends `prev` and the MAC.
pub fn header_signed(segment: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&VERSION.to_le_bytes());
    h.extend_from_slice(&segment.to_le_bytes());
    h
}

/// One record frame.
#[derive(Debug)]
pub struct Frame<'a> {
    /// The sequence number as stored (the MAC covers these bytes).
    pub seq_bytes: &'a [u8],
    pub seq: u64,
    pub sealed: &'a [u8],
    pub mac: &'a [u8],
}

/// What comes next in a segment.
#[derive(Debug)]
pub enum Next<'a> {
    Frame(Frame<'a>),
    /// Nothing more.
    End,
    /// A frame cut short: a crash mid-write (it ends the segment).
    Torn,
    /// A length field out of bounds.
    BadLength,
}

/// The frames of a segment, in order, after its header.
pub struct Frames<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Frames<'a> {
    pub fn new(segment: &'a [u8]) -> Frames<'a> {
        Frames {
            bytes: segment,
            pos: header_len(segment).min(segment.len()),
        }
    }

    pub fn next_frame(&mut self) -> Next<'a> {
        let rest = &self.bytes[self.pos..];
        if rest.is_empty() {
            return Next::End;
        }
        let mut r = Reader::new(rest);
        let (Ok(len), Ok(seq_bytes)) = (r.u32("length"), r.take(8, "sequence")) else {
            return Next::Torn;
        };
        let len = len as usize;
        if !(MIN_SEALED..=MAX_SEALED).contains(&len) {
            return Next::BadLength;
        }
        let (Ok(sealed), Ok(mac)) = (r.take(len, "sealed record"), r.take(32, "record MAC")) else {
            return Next::Torn;
        };
        let mut s = [0u8; 8];
        s.copy_from_slice(seq_bytes);
        self.pos += FRAME_HEAD + len + 32;
        Next::Frame(Frame {
            seq_bytes,
            seq: u64::from_le_bytes(s),
            sealed,
            mac,
        })
    }
}

/// A frame's bytes, as the writer appends them.
pub fn encode_frame(
    out: &mut Vec<u8>,
    seq: u64,
    sealed: &[u8],
    mac: &[u8; 32],
) -> Result<(), String> {
    // A frame no reader would accept is never written.
    if !(MIN_SEALED..=MAX_SEALED).contains(&sealed.len()) {
        return Err(format!(
            "a sealed audit record of {} bytes is outside {MIN_SEALED}..={MAX_SEALED}",
            sealed.len()
        ));
    }
    let len: u32 = super::fits(sealed.len(), "sealed audit record")?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(sealed);
    out.extend_from_slice(mac);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(frames: &[(u64, usize)]) -> Vec<u8> {
        let mut b = header_signed(7);
        b.extend_from_slice(&[1; 32]);
        b.extend_from_slice(&[2; 32]);
        for (seq, len) in frames {
            encode_frame(&mut b, *seq, &vec![9; *len], &[3; 32]).unwrap();
        }
        b
    }

    #[test]
    fn a_segment_reads_back_frame_by_frame() {
        let b = segment(&[(40, 30), (41, 100)]);
        let h = header(&b).unwrap();
        assert_eq!(
            (h.version, h.segment, h.prev, h.mac),
            (1, 7, [1; 32], [2; 32])
        );
        assert_eq!(h.signed, &b[..18]);
        let mut f = Frames::new(&b);
        match f.next_frame() {
            Next::Frame(x) => assert_eq!((x.seq, x.sealed.len(), x.mac), (40, 30, &[3u8; 32][..])),
            n => panic!("{n:?}"),
        }
        assert!(matches!(f.next_frame(), Next::Frame(x) if x.seq == 41 && x.sealed.len() == 100));
        assert!(matches!(f.next_frame(), Next::End));
    }

    #[test]
    fn a_sealed_segment_reads_back_and_every_cut_is_torn() {
        let mut b = header_signed_sealed(7, &[5; 32]);
        b.extend_from_slice(&[1; 32]);
        b.extend_from_slice(&[2; 32]);
        encode_frame(&mut b, 0, &[9; 30], &[3; 32]).unwrap();
        let h = header(&b).unwrap();
        assert_eq!(
            (h.version, h.segment, h.encapped, h.prev, h.mac),
            (2, 7, Some([5; 32]), [1; 32], [2; 32])
        );
        assert_eq!(h.signed, &b[..HEADER_SIGNED_SEALED]);
        assert!(matches!(Frames::new(&b).next_frame(), Next::Frame(x) if x.seq == 0));
        for cut in 0..b.len() {
            match header(&b[..cut]) {
                Err(HeaderError::Torn) => assert!(cut < HEADER_LEN_SEALED),
                Err(e) => panic!("cut {cut}: {e:?}"),
                Ok(_) => assert!(matches!(
                    Frames::new(&b[..cut]).next_frame(),
                    Next::Torn | Next::End
                )),
            }
        }
    }

    #[test]
    fn damage_is_named_and_never_panics() {
        let b = segment(&[(0, 30)]);
        // Every cut of the segment: a torn header or frame, never a panic.
        for cut in 0..b.len() {
            let s = &b[..cut];
            match header(s) {
                Err(HeaderError::Torn) => assert!(cut < HEADER_LEN),
                Err(e) => panic!("cut {cut}: {e:?}"),
                Ok(_) => assert!(matches!(
                    Frames::new(s).next_frame(),
                    Next::Torn | Next::End
                )),
            }
        }
        let mut v = b.clone();
        v[8] = 3;
        assert_eq!(header(&v).unwrap_err(), HeaderError::Version(3));
        let mut m = b.clone();
        m[0] = b'X';
        assert_eq!(header(&m).unwrap_err(), HeaderError::Damaged);
        let mut l = b.clone();
        l[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&(MAX_SEALED as u32 + 1).to_le_bytes());
        assert!(matches!(Frames::new(&l).next_frame(), Next::BadLength));
        l[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&3u32.to_le_bytes());
        assert!(matches!(Frames::new(&l).next_frame(), Next::BadLength));
    }
}
