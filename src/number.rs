//! Digits to numbers: decimal and hexadecimal, the one home of the crate's digit parsing.
//!
//! Everything here reads plain ASCII digits, without a sign, white space or `0x`; callers
//! decide what a value means (a trace id may not be zero, a JSON escape allows upper-case hex,
//! an id does not). Hexadecimal is lower-case, as trace ids are written, except in
//! [`hex4`], the digits of a JSON `\uXXXX` escape.

/// The value of a string of ASCII digits, leading zeros allowed (`None` for anything else,
/// or above `u64::MAX`); `Some(0)` for no digits at all.
///
/// Status codes, sizes and durations are short, and taken a digit at a time. Ids have 19 or 20
/// digits, so eight are taken at a time (SWAR). Up to 19 digits cannot overflow; only a 20th
/// is checked, by comparing before multiplying (`checked_mul` on `u64` becomes a 128-bit
/// library call on wasm32, which Fluent Bit interprets).
pub(crate) fn decimal(digits: &[u8]) -> Option<u64> {
    const LIMIT: u64 = u64::MAX / 10; // and u64::MAX % 10 == 5
    if digits.len() <= 8 {
        let mut n: u64 = 0;
        for &b in digits {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            n = n * 10 + u64::from(d);
        }
        return Some(n);
    }
    let significant = digits
        .iter()
        .position(|&b| b != b'0')
        .unwrap_or(digits.len());
    let digits = &digits[significant..];
    let (head, last) = match digits.len() {
        0..=19 => (digits, None),
        20 => (&digits[..19], Some(digits[19])),
        _ => return None, // a non-digit or an overflow, either way
    };
    let mut n: u64 = 0;
    let mut chunks = head.chunks_exact(8);
    for chunk in &mut chunks {
        n = n * 100_000_000 + eight_digits(chunk)?;
    }
    for &b in chunks.remainder() {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n * 10 + u64::from(d);
    }
    if let Some(b) = last {
        let d = b.wrapping_sub(b'0');
        if d > 9 || n > LIMIT || (n == LIMIT && d > 5) {
            return None;
        }
        n = n * 10 + u64::from(d);
    }
    Some(n)
}

/// The value of eight ASCII digits, first digit most significant; `None` if one is not a digit.
#[inline]
fn eight_digits(chunk: &[u8]) -> Option<u64> {
    let word = crate::scan::swar::word(chunk, 0);
    // Every byte is 0x30..=0x39: its high nibble is 3, and adding 6 keeps it 3.
    let high = word & 0xf0f0_f0f0_f0f0_f0f0;
    let carried = word.wrapping_add(0x0606_0606_0606_0606) & 0xf0f0_f0f0_f0f0_f0f0;
    if high != 0x3030_3030_3030_3030 || carried != 0x3030_3030_3030_3030 {
        return None;
    }
    // Little-endian: the first digit is the lowest byte. Combine pairs, then fours, then eight.
    let v = word - 0x3030_3030_3030_3030;
    let v = (v * 10 + (v >> 8)) & 0x00ff_00ff_00ff_00ff;
    let v = (v * 100 + (v >> 16)) & 0x0000_ffff_0000_ffff;
    Some((v * 10_000 + (v >> 32)) & 0xffff_ffff)
}

/// Splits a number without sign or exponent, `123.456`, into its whole and fraction digits
/// (`123`, `456`; the fraction is empty without a dot). `None` for anything else: a sign, an
/// exponent, no whole digits, or a dot without fraction digits.
pub(crate) fn decimal_parts(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let (whole, frac) = match text.iter().position(|&b| b == b'.') {
        Some(dot) => (&text[..dot], &text[dot + 1..]),
        None => (text, &text[text.len()..]),
    };
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    if whole.is_empty()
        || !digits(whole)
        || !digits(frac)
        || (frac.is_empty() && text.len() != whole.len())
    {
        return None;
    }
    Some((whole, frac))
}

/// The value of one lower-case hex digit.
#[inline]
pub(crate) fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// The value of exactly `len` lower-case hex digits (`len` at most 32, so that it fits).
pub(crate) fn hex(digits: &[u8], len: usize) -> Option<u128> {
    if digits.len() != len || len > 32 {
        return None;
    }
    digits.iter().try_fold(0u128, |acc, &b| {
        Some((acc << 4) | u128::from(hex_digit(b)?))
    })
}

/// The value of exactly 16 lower-case hex digits: a 64-bit id (zero allowed; callers decide
/// what it means).
#[inline]
pub(crate) fn hex16(digits: &[u8]) -> Option<u64> {
    hex(digits, 16).map(|v| v as u64)
}

/// The UTF-16 code unit of the four hex digits of a `\uXXXX` escape, in either case (JSON
/// allows both).
#[inline]
pub(crate) fn hex4(digits: &[u8]) -> Option<u16> {
    let [a, b, c, d] = *digits else {
        return None;
    };
    [a, b, c, d].iter().try_fold(0u16, |unit, &digit| {
        Some(unit << 4 | u16::from(hex_digit(digit.to_ascii_lowercase())?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        for (text, value) in [
            ("", Some(0)),
            ("0", Some(0)),
            ("007", Some(7)),
            ("12345678", Some(12_345_678)),
            ("123456789", Some(123_456_789)),
            ("18446744073709551615", Some(u64::MAX)),
            ("000000000018446744073709551615", Some(u64::MAX)),
            ("18446744073709551616", None),
            ("99999999999999999999", None),
            ("123456789012345678901", None),
            ("-1", None),
            ("1.0", None),
            ("1e3", None),
            (" 1", None),
            ("1234567a9", None),
            ("12345678:", None),
        ] {
            assert_eq!(decimal(text.as_bytes()), value, "{text}");
        }
    }

    #[test]
    fn decimals_agree_with_std_at_every_length() {
        let digits = b"98765432109876543210";
        for len in 1..=digits.len() {
            let text = &digits[..len];
            let want = core::str::from_utf8(text).unwrap().parse::<u64>().ok();
            assert_eq!(decimal(text), want, "{len}");
            for at in 0..len {
                let mut bad = text.to_vec();
                bad[at] = b'/';
                assert_eq!(decimal(&bad), None, "{len} {at}");
                bad[at] = b':';
                assert_eq!(decimal(&bad), None, "{len} {at}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn decimals_agree_with_std(digits in "[0-9]{0,24}", junk in "[^0-9]?", at in 0usize..24) {
            let mut text = digits.clone();
            text.insert_str(at.min(text.len()), &junk);
            let std = match text.is_empty() {
                true => Some(0),
                false => text.parse::<u64>().ok().filter(|_| !text.starts_with('+')),
            };
            proptest::prop_assert_eq!(decimal(text.as_bytes()), std, "{:?}", text);
        }
    }

    #[test]
    fn decimal_parts_split_at_the_dot() {
        fn parts(t: &str) -> Option<(&[u8], &[u8])> {
            decimal_parts(t.as_bytes())
        }
        assert_eq!(parts("12"), Some((&b"12"[..], &b""[..])));
        assert_eq!(parts("12.50"), Some((&b"12"[..], &b"50"[..])));
        for bad in ["", ".5", "12.", "-1", "+1", "1e3", "1.2.3", "1,5", "-"] {
            assert_eq!(parts(bad), None, "{bad}");
        }
    }

    #[test]
    fn hex_is_lower_case_and_of_exact_length() {
        assert_eq!(hex(b"00f067aa0ba902b7", 16), Some(0x00f0_67aa_0ba9_02b7));
        assert_eq!(hex(&[b'f'; 32], 32), Some(u128::MAX));
        assert_eq!(hex(b"00F067AA0BA902B7", 16), None);
        assert_eq!(hex(b"00f067aa0ba902b", 16), None);
        assert_eq!(hex(b"00f067aa0ba902b7", 15), None);
        assert_eq!(hex(&[b'0'; 33], 33), None);
        assert_eq!(hex(b"g0", 2), None);
        assert_eq!(hex16(b"ffffffffffffffff"), Some(u64::MAX));
        assert_eq!(hex16(b"0000000000000000"), Some(0));
        assert_eq!(hex16(b"ffffffffffffffff0"), None);
        for b in 0..=255u8 {
            let want = char::from(b)
                .to_digit(16)
                .filter(|_| !b.is_ascii_uppercase());
            assert_eq!(hex_digit(b).map(u32::from), want, "{b}");
        }
    }

    #[test]
    fn escapes_take_either_case() {
        assert_eq!(hex4(b"00e9"), Some(0xe9));
        assert_eq!(hex4(b"00E9"), Some(0xe9));
        assert_eq!(hex4(b"D83d"), Some(0xd83d));
        assert_eq!(hex4(b"ffff"), Some(0xffff));
        for bad in [&b"00g9"[..], b"00G9", b"0 e9", b"00e", b"00e90", b"-0e9"] {
            assert_eq!(hex4(bad), None, "{bad:?}");
        }
        for b in 0..=255u8 {
            let want = char::from(b).to_digit(16).map(|d| d as u16);
            assert_eq!(hex4(&[b'0', b'0', b'0', b]), want, "{b}");
        }
    }
}
