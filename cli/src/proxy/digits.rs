//! Decimal digits written by hand, for the log line's numbers and the upstream request's
//! `Content-Length`: `fmt`'s integer formatting, with its padding and width machinery, was over
//! a third of a log number field's cost.

/// Writes `value`'s decimal digits at the end of `digits` (which must be long enough) and
/// returns where they start; what is before them is left as it was, so a field filled with
/// `'0'` beforehand comes out zero-padded to its width.
pub fn fill(digits: &mut [u8], mut value: u64) -> usize {
    let mut start = digits.len();
    loop {
        start -= 1;
        // `value % 10` is below 10, so it fits.
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            return start;
        }
    }
}

/// `value`'s digits appended to `out`.
pub fn append(out: &mut Vec<u8>, value: u64) {
    let mut digits = [0; 20];
    let start = fill(&mut digits, value);
    out.extend_from_slice(&digits[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_digit_is_written() {
        for n in [0, 7, 10, 2048, u64::MAX] {
            let mut out = Vec::new();
            append(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }

    #[test]
    fn a_field_filled_beforehand_is_zero_padded() {
        let mut field = [b'0'; 6];
        assert_eq!(fill(&mut field, 42), 4);
        assert_eq!(&field, b"000042");
    }
}
