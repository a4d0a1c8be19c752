//! Finding the bytes that end a plain run of text, a chunk at a time, and the other
//! word-at-a-time primitives of the crate: this module is their one home.
//!
//! Most of a record's bytes are inside strings, and most strings have nothing to decode, so
//! the readers spend their time looking for the next `"`, `\` or control character (the
//! learned layouts also for the first byte that is not ASCII, [`string_stops`]), and the
//! text-format matcher for the end of each value ([`value_specials`]). On x86_64 that is done
//! sixteen bytes at a time with SSE2, which every x86_64 processor has (the `sse2` module).
//! Elsewhere, wasm32 above all (Fluent Bit's interpreter runs without SIMD), it is done eight
//! bytes at a time with plain integer arithmetic (the [`swar`] module). As in `memchr`, each
//! scanner is written once here, documented once, and calls the core of its architecture.

#[cfg(target_arch = "x86_64")]
use sse2 as arch;
#[cfg(not(target_arch = "x86_64"))]
use swar as arch;

/// How many bytes [`string_specials`] and the other chunk scanners look at.
pub(crate) const CHUNK: usize = arch::CHUNK;

/// Where in `chunk` there are `"`, `\` or bytes below 0x20: zero if nowhere, else
/// [`first`] of it is the index of the first such byte.
#[inline(always)]
pub(crate) fn string_specials(chunk: &[u8; CHUNK]) -> u64 {
    arch::string_specials(chunk)
}

/// The index of the first byte a chunk scanner found, given what it returned (not zero).
#[inline(always)]
pub(crate) fn first(hits: u64) -> usize {
    arch::first(hits)
}

/// Where in `chunk` a string's plain run ends for a reader that also tells whether the
/// string is ASCII: `"`, `\`, bytes below 0x20 and bytes from 0x80. Zero if nowhere, else
/// [`first`] of it is the index of the first such byte.
#[inline(always)]
pub(crate) fn string_stops(chunk: &[u8; CHUNK]) -> u64 {
    arch::string_stops(chunk)
}

/// Where in `chunk` a plain value of a text line ends: `stop`, `"`, `\`, bytes below `below`
/// and bytes from 0x80 (UTF-8 to check). Zero if nowhere, else [`first`] of it is the index of
/// the first such byte. `stop` and `below` are ASCII.
#[inline(always)]
pub(crate) fn value_specials(chunk: &[u8; CHUNK], stop: u8, below: u8) -> u64 {
    arch::value_specials(chunk, stop, below)
}

/// How long a string [`starts_with`] compares may be.
pub(crate) const LITERAL_BYTES: usize = 32;

/// Whether `chunk` starts with `literal`: they agree on every byte where `mask` is 0xff
/// (`mask` is 0 elsewhere).
#[inline(always)]
pub(crate) fn starts_with(
    chunk: &[u8; LITERAL_BYTES],
    literal: &[u8; LITERAL_BYTES],
    mask: &[u8; LITERAL_BYTES],
) -> bool {
    arch::starts_with(chunk, literal, mask)
}

/// Whether `a` and `b` are the same bytes.
///
/// Natively that is the standard library's comparison (glibc compares with SIMD); in Wasm,
/// whose `memcmp` goes a byte at a time, it is done eight bytes at a time.
#[inline]
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    match cfg!(target_arch = "x86_64") {
        true => a == b,
        false => swar::same(a, b),
    }
}

/// Distance from `pos` to the first `"`, `\` or control character (< 0x20) in `buf`, or to
/// the end. Words may run past the string being read: the closing quote stops the search.
#[inline(always)]
pub(crate) fn find_string_special(buf: &[u8], pos: usize) -> usize {
    let rest = buf.get(pos..).unwrap_or_default();
    let mut chunks = rest.chunks_exact(CHUNK);
    let mut skipped = 0;
    for chunk in &mut chunks {
        let hits = string_specials(chunk.try_into().unwrap_or(&[0; CHUNK]));
        if hits != 0 {
            return skipped + first(hits);
        }
        skipped += CHUNK;
    }
    let mut words = chunks.remainder().chunks_exact(8);
    for chunk in &mut words {
        let hits = swar::special_bytes(swar::word(chunk, 0));
        if hits != 0 {
            return skipped + swar::first(hits);
        }
        skipped += 8;
    }
    let tail = words.remainder();
    let special = |&b: &u8| matches!(b, b'"' | b'\\' | 0..=0x1f);
    skipped + tail.iter().position(special).unwrap_or(tail.len())
}

/// The first `byte` in `haystack`. Values are mostly short, too short for memchr's setup to
/// pay off: the first bytes are searched eight at a time with plain integer arithmetic, the
/// rest with memchr's SIMD. On wasm32 (no SIMD in Fluent Bit) memchr falls back to four bytes
/// at a time, so there the whole haystack is searched eight at a time.
#[inline]
pub(crate) fn position(haystack: &[u8], byte: u8) -> Option<usize> {
    const SHORT: usize = 64;
    let short = match cfg!(target_arch = "wasm32") {
        true => haystack.len(),
        false => haystack.len().min(SHORT),
    };
    let (head, rest) = haystack.split_at(short);
    let mut chunks = head.chunks_exact(8);
    for (n, chunk) in chunks.by_ref().enumerate() {
        let hits = swar::bytes_equal(swar::word(chunk, 0), byte);
        if hits != 0 {
            return Some(n * 8 + swar::first(hits));
        }
    }
    let done = head.len() - chunks.remainder().len();
    match chunks.remainder().iter().position(|&b| b == byte) {
        Some(i) => Some(done + i),
        None if rest.is_empty() => None,
        None => memchr::memchr(byte, rest).map(|i| head.len() + i),
    }
}

/// The SSE2 cores of the chunk scanners: sixteen bytes at a time.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod sse2 {
    use super::LITERAL_BYTES;
    use core::arch::x86_64::*;

    pub const CHUNK: usize = 16;

    #[inline(always)]
    pub fn string_specials(chunk: &[u8; CHUNK]) -> u64 {
        // SAFETY: SSE2 is part of the x86_64 baseline, so these instructions always exist; the
        // unaligned load reads exactly the sixteen bytes of `chunk`.
        unsafe { _mm_movemask_epi8(specials_of(_mm_loadu_si128(chunk.as_ptr().cast()))) as u64 }
    }

    /// 0xff for each of the sixteen bytes that is `"`, `\` or below 0x20, 0 for the others.
    #[inline(always)]
    fn specials_of(bytes: __m128i) -> __m128i {
        // SAFETY: SSE2 is part of the x86_64 baseline, so these instructions always exist.
        unsafe {
            let quote = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'\\' as i8));
            // Below 0x20 exactly when the unsigned maximum with 0x1f is 0x1f.
            let limit = _mm_set1_epi8(0x1f);
            let control = _mm_cmpeq_epi8(_mm_max_epu8(bytes, limit), limit);
            _mm_or_si128(_mm_or_si128(quote, backslash), control)
        }
    }

    /// A movemask has one bit per byte.
    #[inline(always)]
    pub fn first(hits: u64) -> usize {
        hits.trailing_zeros() as usize
    }

    #[inline(always)]
    pub fn string_stops(chunk: &[u8; CHUNK]) -> u64 {
        // SAFETY: as in `string_specials`.
        unsafe {
            let bytes = _mm_loadu_si128(chunk.as_ptr().cast());
            // The high bit of each byte is its own mark for bytes from 0x80.
            (_mm_movemask_epi8(specials_of(bytes)) | _mm_movemask_epi8(bytes)) as u64
        }
    }

    #[inline(always)]
    pub fn value_specials(chunk: &[u8; CHUNK], stop: u8, below: u8) -> u64 {
        // SAFETY: as in `string_specials`.
        unsafe {
            let bytes = _mm_loadu_si128(chunk.as_ptr().cast());
            let equal = |byte: u8| _mm_cmpeq_epi8(bytes, _mm_set1_epi8(byte as i8));
            let limit = _mm_set1_epi8(below.wrapping_sub(1) as i8);
            let low = _mm_cmpeq_epi8(_mm_max_epu8(bytes, limit), limit);
            let found = _mm_or_si128(
                _mm_or_si128(equal(stop), equal(b'"')),
                _mm_or_si128(equal(b'\\'), low),
            );
            // The high bit of each byte is its own mark for bytes from 0x80.
            (_mm_movemask_epi8(found) | _mm_movemask_epi8(bytes)) as u64
        }
    }

    /// Two sixteen-byte compares.
    #[inline(always)]
    pub fn starts_with(
        chunk: &[u8; LITERAL_BYTES],
        literal: &[u8; LITERAL_BYTES],
        mask: &[u8; LITERAL_BYTES],
    ) -> bool {
        // SAFETY: as in `string_specials`; each unaligned load reads sixteen bytes of one of
        // the three 32-byte arrays.
        unsafe {
            let load = |bytes: &[u8; LITERAL_BYTES], half: usize| {
                _mm_loadu_si128(bytes.as_ptr().add(16 * half).cast())
            };
            let differ = |half| {
                let equal = _mm_cmpeq_epi8(load(chunk, half), load(literal, half));
                _mm_andnot_si128(equal, load(mask, half))
            };
            _mm_movemask_epi8(_mm_or_si128(differ(0), differ(1))) == 0
        }
    }
}

/// Eight bytes at a time with plain integer arithmetic (SWAR): the portable cores of the
/// chunk scanners, and the crate's word-at-a-time helpers. A scanner returns the high bit of
/// each byte that is one of those sought; bits above the lowest may be spurious (borrows), so
/// only the lowest one may be used ([`first`](swar::first)).
pub(crate) mod swar {
    #[cfg(any(test, not(target_arch = "x86_64")))]
    use super::LITERAL_BYTES;

    /// Eight copies of the byte 1.
    pub(crate) const ONES: u64 = 0x0101_0101_0101_0101;

    #[cfg(not(target_arch = "x86_64"))]
    pub const CHUNK: usize = 8;

    /// The little-endian word of the eight bytes of `bytes` from `at`.
    #[inline(always)]
    pub(crate) fn word(bytes: &[u8], at: usize) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(w)
    }

    /// The little-endian word of the four bytes of `bytes` from `at`.
    #[inline(always)]
    pub(crate) fn half(bytes: &[u8], at: usize) -> u32 {
        let mut w = [0u8; 4];
        w.copy_from_slice(&bytes[at..at + 4]);
        u32::from_le_bytes(w)
    }

    /// The index of the lowest byte marked in `hits` (not zero).
    #[inline(always)]
    pub(crate) fn first(hits: u64) -> usize {
        (hits.trailing_zeros() / 8) as usize
    }

    /// The bytes of `word` equal to `byte`.
    #[inline(always)]
    pub(crate) fn bytes_equal(word: u64, byte: u8) -> u64 {
        let word = word ^ (ONES * byte as u64);
        word.wrapping_sub(ONES) & !word & (ONES << 7)
    }

    /// The bytes of `word` that are `"`, `\` or below 0x20.
    #[inline(always)]
    pub(crate) fn special_bytes(word: u64) -> u64 {
        let quote = word ^ (ONES * b'"' as u64);
        let backslash = word ^ (ONES * b'\\' as u64);
        (quote.wrapping_sub(ONES) & !quote
            | backslash.wrapping_sub(ONES) & !backslash
            | word.wrapping_sub(ONES * 0x20) & !word)
            & (ONES * 0x80)
    }

    #[cfg(not(target_arch = "x86_64"))]
    #[inline(always)]
    pub fn string_specials(chunk: &[u8; CHUNK]) -> u64 {
        special_bytes(u64::from_le_bytes(*chunk))
    }

    #[cfg(not(target_arch = "x86_64"))]
    #[inline(always)]
    pub fn string_stops(chunk: &[u8; CHUNK]) -> u64 {
        string_stops_in_word(u64::from_le_bytes(*chunk))
    }

    /// [`string_stops`](super::string_stops) of eight bytes.
    ///
    /// It is [`special_bytes`] without its `& !word`, which only keeps bytes from 0x80 out:
    /// without it, one of the three differences marks every such byte (only 0xa2 escapes the
    /// first and only 0xdc the second, and both are above 0x9f, which the third marks). A
    /// difference borrows only below a byte that is sought, so the lowest mark is exact. On
    /// wasm32 that is four instructions a word fewer, and telling ASCII costs no separate OR
    /// of the bytes.
    #[inline(always)]
    pub(crate) fn string_stops_in_word(word: u64) -> u64 {
        let quote = (word ^ (ONES * b'"' as u64)).wrapping_sub(ONES);
        let backslash = (word ^ (ONES * b'\\' as u64)).wrapping_sub(ONES);
        (quote | backslash | word.wrapping_sub(ONES * 0x20)) & (ONES << 7)
    }

    #[cfg(not(target_arch = "x86_64"))]
    #[inline(always)]
    pub fn value_specials(chunk: &[u8; CHUNK], stop: u8, below: u8) -> u64 {
        value_specials_in_word(u64::from_le_bytes(*chunk), stop, below)
    }

    /// [`value_specials`](super::value_specials) of eight bytes.
    #[inline(always)]
    pub(crate) fn value_specials_in_word(word: u64, stop: u8, below: u8) -> u64 {
        // A byte that wraps below zero sets its high bit; so does a byte from 0x80, sought too.
        let equal = |b: u8| (word ^ (ONES * b as u64)).wrapping_sub(ONES);
        let low = word.wrapping_sub(ONES * below as u64);
        (equal(stop) | equal(b'"') | equal(b'\\') | low | word) & (ONES << 7)
    }

    /// Whether `a` and `b` are the same bytes, compared eight at a time without a branch per
    /// word (short names, or Wasm, where `memcmp` goes a byte at a time; no call to it).
    #[inline]
    pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() || a.len() < 8 {
            return a == b;
        }
        // Whole words, then the last eight bytes (overlapping the last word).
        let last = a.len() - 8;
        let whole = a.chunks_exact(8).zip(b.chunks_exact(8));
        whole.fold(0, |differ, (x, y)| differ | (word(x, 0) ^ word(y, 0))) == 0
            && word(a, last) == word(b, last)
    }

    /// [`same`] for short names (keys): a word at a time, stopping at the first that differs,
    /// which costs fewer instructions than [`same`] on one or two words and more on long runs.
    #[inline]
    pub(crate) fn same_name(a: &[u8], b: &[u8]) -> bool {
        let len = a.len();
        if len != b.len() {
            return false;
        }
        if len < 8 {
            return a == b;
        }
        let mut i = 0;
        while i + 8 < len {
            if word(a, i) != word(b, i) {
                return false;
            }
            i += 8;
        }
        // The last eight bytes, overlapping the last word.
        word(a, len - 8) == word(b, len - 8)
    }

    /// [`starts_with`](super::starts_with) eight bytes at a time.
    #[cfg(any(test, not(target_arch = "x86_64")))]
    #[inline(always)]
    pub(crate) fn starts_with(
        chunk: &[u8; LITERAL_BYTES],
        literal: &[u8; LITERAL_BYTES],
        mask: &[u8; LITERAL_BYTES],
    ) -> bool {
        let differ = |words: core::ops::Range<usize>| {
            words
                .map(|i| (word(chunk, 8 * i) ^ word(literal, 8 * i)) & word(mask, 8 * i))
                .fold(0, |all, d| all | d)
        };
        // Most keys fit in the first half: the second is compared only when the mask reaches it.
        const HALF: usize = LITERAL_BYTES / 16;
        differ(0..HALF) == 0 && (mask[8 * HALF] == 0 || differ(HALF..2 * HALF) == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_are_found_the_same() {
        let a: Vec<u8> = (0..40).collect();
        for len in 0..a.len() {
            for same in [same, swar::same, swar::same_name] {
                assert!(same(&a[..len], &a[..len]));
                assert!(!same(&a[..len], &a[..len + 1]));
                for at in 0..len {
                    let mut b = a[..len].to_vec();
                    b[at] ^= 0x80;
                    assert!(!same(&a[..len], &b), "{len} {at}");
                }
            }
        }
    }

    #[test]
    fn the_first_special_byte_is_found() {
        for at in 0..CHUNK {
            for special in [b'"', b'\\', 0, 0x1f, b'\n'] {
                let mut chunk = [b'a'; CHUNK];
                chunk[at] = special;
                // Bytes that are not special around it, high and low.
                if at > 0 {
                    chunk[at - 1] = 0xff;
                }
                if at + 1 < CHUNK {
                    chunk[at + 1] = b' ';
                }
                assert_eq!(first(string_specials(&chunk)), at);
                // A later special byte does not change which is first.
                chunk[CHUNK - 1] = b'"';
                assert_eq!(first(string_specials(&chunk)), at);
            }
        }
    }

    #[test]
    fn only_quotes_backslashes_and_control_bytes_are_special() {
        for byte in 0..=0xff {
            let special = matches!(byte, b'"' | b'\\' | 0..=0x1f);
            assert_eq!(
                string_specials(&[byte; CHUNK]) != 0,
                special,
                "byte {byte:#x}"
            );
        }
    }

    #[test]
    fn values_end_where_the_matcher_needs_to_look() {
        for (stop, below) in [(b' ', b'!'), (b'"', b' '), (b']', b' '), (b'"', b'!')] {
            for byte in 0..=0xff {
                let ends = byte == stop || byte < below || matches!(byte, b'"' | b'\\' | 0x80..);
                let chunk = [byte; CHUNK];
                assert_eq!(
                    value_specials(&chunk, stop, below) != 0,
                    ends,
                    "byte {byte:#x}"
                );
                let word = u64::from_le_bytes([byte; 8]);
                assert_eq!(swar::value_specials_in_word(word, stop, below) != 0, ends);
            }
            for at in 0..CHUNK {
                let mut chunk = [b'a'; CHUNK];
                chunk[at] = stop;
                chunk[CHUNK - 1] = 0xc3;
                assert_eq!(first(value_specials(&chunk, stop, below)), at);
            }
        }
    }

    #[test]
    fn literals_are_compared_only_as_far_as_they_go() {
        let text = b"0123456789abcdefghijklmnopqrstuvwxyz";
        for len in 0..=LITERAL_BYTES {
            let mut literal = [0; LITERAL_BYTES];
            let mut mask = [0; LITERAL_BYTES];
            literal[..len].copy_from_slice(&text[..len]);
            mask[..len].fill(0xff);
            let mut chunk: [u8; LITERAL_BYTES] = text[..LITERAL_BYTES].try_into().unwrap();
            // Bytes past the literal do not matter; every byte within it does.
            for at in 0..LITERAL_BYTES {
                let mut other = chunk;
                other[at] ^= 0x20;
                let same = at >= len;
                assert_eq!(starts_with(&other, &literal, &mask), same, "{len} {at}");
                assert_eq!(swar::starts_with(&other, &literal, &mask), same);
            }
            assert!(starts_with(&chunk, &literal, &mask));
            chunk[LITERAL_BYTES - 1] = 0xff;
            assert_eq!(starts_with(&chunk, &literal, &mask), len < LITERAL_BYTES);
        }
    }

    #[test]
    fn strings_stop_at_special_and_non_ascii_bytes() {
        let stops = |byte: u8| matches!(byte, b'"' | b'\\' | 0..=0x1f | 0x80..);
        let first_stop = |bytes: &[u8]| bytes.iter().position(|&b| stops(b));
        // Bytes that are not sought, in many orders, before the one under test.
        let plain: Vec<u8> = (0x20..0x80).filter(|&b| !stops(b)).collect();
        for at in 0..CHUNK {
            for byte in 0..=0xff {
                for after in [b'a', b'"', 0, 0x7f, 0x80, 0xa2, 0xdc, 0xff] {
                    let mut chunk = [after; CHUNK];
                    for (i, b) in chunk[..at].iter_mut().enumerate() {
                        *b = plain[(i * 7 + byte as usize) % plain.len()];
                    }
                    chunk[at] = byte;
                    let hits = string_stops(&chunk);
                    let found = (hits != 0).then(|| first(hits));
                    assert_eq!(found, first_stop(&chunk), "{chunk:x?}");
                    let word: [u8; 8] = chunk[..8].try_into().unwrap();
                    let hits = swar::string_stops_in_word(u64::from_le_bytes(word));
                    let found = (hits != 0).then(|| (hits.trailing_zeros() / 8) as usize);
                    assert_eq!(found, first_stop(&word), "{word:x?}");
                }
            }
        }
    }
}
