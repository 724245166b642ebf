//! The bytes on disk. Strict, versioned parsers written by hand to match FORMAT.md; no
//! serializer defines the format. Pure: parsing and encoding only, no I/O.

pub mod audit;
pub mod config;
pub mod dirfile;
pub mod hw_slot;
pub mod keystore;
pub mod policy;
pub mod prune;
pub mod recovery;
pub mod vectors;
pub mod zones;

/// A length or count for a field `N` bytes wide: a value that does not fit is an error that
/// names the field, never a truncating cast (which would write a file no reader accepts).
pub fn fits<T: TryFrom<usize>>(n: usize, field: &str) -> Result<T, String> {
    T::try_from(n).map_err(|_| {
        format!(
            "{field} is too long ({n}; at most {} fits)",
            (1u128 << (8 * std::mem::size_of::<T>())) - 1
        )
    })
}

/// A little cursor for strict parsing: every read is bounds-checked and fails with the name
/// of the field, so a damaged file is reported precisely and never panics.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }
    pub fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| format!("{field}: length overflow"))?;
        if end > self.buf.len() {
            return Err(format!("{field}: file ends early"));
        }
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    pub fn u8(&mut self, field: &str) -> Result<u8, String> {
        Ok(self.take(1, field)?[0])
    }
    pub fn u16(&mut self, field: &str) -> Result<u16, String> {
        let b = self.take(2, field)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    pub fn u32(&mut self, field: &str) -> Result<u32, String> {
        let b = self.take(4, field)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&mut self, field: &str) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }
    pub fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, field)?);
        Ok(a)
    }
    pub fn pos(&self) -> usize {
        self.pos
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_length_that_does_not_fit_its_field_is_an_error() {
        assert_eq!(super::fits::<u8>(255, "name"), Ok(255u8));
        assert_eq!(
            super::fits::<u8>(256, "name"),
            Err("name is too long (256; at most 255 fits)".to_string())
        );
        assert_eq!(super::fits::<u16>(65_535, "path"), Ok(65_535u16));
        assert!(super::fits::<u16>(65_536, "path").is_err());
    }
}
