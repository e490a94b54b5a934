//! Hex, both ways: digests written as Vonage writes them (lowercase), and claimed digests read in
//! either case, since SDKs write both. What is decoded here is public (a `payload_hash` or a
//! `sig` from the request), so a data-dependent early exit leaks nothing.

/// Lowercase hex of `bytes`.
pub(crate) fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 15)]));
    }
    out
}

/// Decodes `hex` (either case, whole bytes) into the front of `out`; how many bytes it wrote.
/// `None` for a digit that is not hex, an odd length, or more than `out` holds.
pub(crate) fn decode_into(hex: &str, out: &mut [u8]) -> Option<usize> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let hex = hex.as_bytes();
    if !hex.len().is_multiple_of(2) || hex.len() / 2 > out.len() {
        return None;
    }
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(hex.len() / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn either_case_in_whole_bytes_that_fit() {
        let mut out = [0u8; 4];
        assert_eq!(decode_into("0aFf", &mut out), Some(2));
        assert_eq!(&out[..2], [10, 255]);
        assert_eq!(decode_into("0g", &mut out), None);
        assert_eq!(decode_into("abc", &mut out), None);
        assert_eq!(decode_into("é", &mut out), None);
        assert_eq!(decode_into(&"00".repeat(5), &mut out), None);
        assert_eq!(decode_into("", &mut out), Some(0));
        assert_eq!(encode(&[10, 255]), "0aff");
    }
}
