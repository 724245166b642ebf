//! `.tutela.dir`: a directory's ID, which seals the names of its children. Layout: version u16
//! BE (1) | dir id [16] = 18 bytes. A second copy is kept as the backing directory's xattr
//! `user.tutela.dirid` (same bytes) where the backing filesystem has xattrs, so that losing one
//! copy (as sync tools sometimes do) loses no names; either copy restores the other.

use crate::crypto::Id;

pub const FILE_NAME: &str = ".tutela.dir";
pub const XATTR_NAME: &str = "user.tutela.dirid";
pub const VERSION: u16 = 1;
pub const LEN: usize = 18;

pub fn encode(id: &Id) -> [u8; LEN] {
    let mut b = [0u8; LEN];
    b[..2].copy_from_slice(&VERSION.to_be_bytes());
    b[2..].copy_from_slice(id);
    b
}

pub fn parse(bytes: &[u8]) -> Option<Id> {
    if bytes.len() != LEN || bytes[..2] != VERSION.to_be_bytes() {
        return None;
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&bytes[2..]);
    (id != [0u8; 16]).then_some(id)
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip_and_rejects() {
        let b = super::encode(&[7; 16]);
        assert_eq!(super::parse(&b), Some([7; 16]));
        assert_eq!(super::parse(&b[..17]), None);
        assert_eq!(super::parse(&super::encode(&[0; 16])), None);
    }
}
