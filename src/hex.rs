//! Lower-case hexadecimal, for digests, tags and keys.

/// `bytes` as lower-case hex digits, two per byte.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// `N` bytes from exactly `2 * N` hex digits (either case); `None` for anything else.
pub fn decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let value = |d: u8| (d as char).to_digit(16).map(|v| v as u8);
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = value(pair[0])? << 4 | value(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::{decode, encode};

    #[test]
    fn decoding_takes_exactly_two_hex_digits_per_byte() {
        assert_eq!(decode::<2>("0fA0"), Some([0x0f, 0xa0]));
        assert_eq!(decode::<2>(&encode(&[0xde, 0xad])), Some([0xde, 0xad]));
        // `u8::from_str_radix` would read "+f" as 15: a second spelling of one value.
        for bad in ["+f00", "0f0", "0f000", "0g00", "", " f00"] {
            assert_eq!(decode::<2>(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn two_lower_case_digits_per_byte() {
        assert_eq!(encode(&[]), "");
        assert_eq!(encode(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
    }
}
