//! LEB128 unsigned varints used by HDE records.

use crate::error::HdeError;

/// Appends `v` as a LEB128 varint.
#[inline]
pub fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a LEB128 varint at `*pos`, advancing it.
#[inline]
pub fn get(buf: &[u8], pos: &mut usize) -> Result<u64, HdeError> {
    let mut v = 0u64;
    let mut shift = 0u32;
    loop {
        let b = *buf.get(*pos).ok_or(HdeError::Truncated)?;
        *pos += 1;
        if shift == 63 && b > 1 {
            return Err(HdeError::Corrupt("varint overflows u64"));
        }
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
        shift += 7;
        if shift > 63 {
            return Err(HdeError::Corrupt("varint too long"));
        }
    }
}
