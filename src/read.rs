//! Zero-copy reading of one JSON object.
//!
//! [`read_object`] validates a whole JSON object in one pass and records, for each top-level
//! member, where its key and value lie in the input. Nested values are validated and skipped
//! without recursion, so arbitrarily deep input cannot overflow the stack. Nothing is decoded
//! or copied: the transform copies values byte for byte from the spans recorded here.
//!
//! The grammar is RFC 8259, strictly: no trailing commas, no comments, no leading zeros, no
//! control characters inside strings, and `\u` escapes must form valid UTF-16 (a lone
//! surrogate is rejected, because it cannot be turned into UTF-8). The caller checks UTF-8
//! validity of the whole buffer beforehand.

pub(crate) use crate::error::{ReadError, SyntaxError};
use crate::number;
use crate::scan;

/// A byte range in the buffer that was read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    #[inline]
    pub fn of<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.start as usize..self.end as usize]
    }
}

/// The JSON type of a member's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    String,
    Number,
    Bool,
    Null,
    Object,
    Array,
}

/// One top-level member of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Member {
    /// The key's characters, without the quotes, still escaped.
    pub key: Span,
    /// The whole value token (strings with their quotes).
    pub value: Span,
    pub kind: Kind,
    /// The key contains a backslash escape.
    pub key_escaped: bool,
    /// A string value contains a backslash escape.
    pub value_escaped: bool,
}

impl Member {
    /// The content of a string value without its quotes (still escaped).
    #[inline]
    pub fn str_content<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.value.start as usize + 1..self.value.end as usize - 1]
    }
}

type Result<T> = core::result::Result<T, ReadError>;

/// Scratch space for reading nested values, reused across calls: the open brackets (so depth
/// costs heap, not call stack), and the keys of the open objects, so that a key repeated in a
/// nested object is noticed (see [`crate::dedup`] for what is done about it).
#[derive(Default)]
pub(crate) struct Stack {
    brackets: Vec<u8>,
    /// The keys of the open objects, innermost last: where each starts and ends (without the
    /// quotes), and whether it has an escape.
    keys: Vec<(u32, u32, bool)>,
    /// For each open object, where its keys start in `keys`.
    frames: Vec<u32>,
    /// The decoded names of one object's keys, when they are compared sorted.
    names: Vec<u8>,
    order: Vec<(u32, u32)>,
    /// A nested object of the value just read repeats a key (see [`Stack::take_repeated`]).
    repeated: bool,
    /// The members of the object [`read_object`] read last whose values repeat a key in a
    /// nested object, by index.
    pub repeating: Vec<u32>,
}

/// Objects with up to this many keys compare them pair by pair; larger ones sort them.
const PAIRWISE_KEYS: usize = 16;

impl Stack {
    /// Whether a nested object of the container [`value_at`] just read repeats a key.
    #[inline]
    pub fn take_repeated(&mut self) -> bool {
        core::mem::take(&mut self.repeated)
    }

    /// Notes the keys of the object that just closed; true if one of them repeats.
    fn close_object(&mut self, buf: &[u8]) -> bool {
        let from = self.frames.pop().unwrap_or(0) as usize;
        let keys = &self.keys[from..];
        let repeats = match keys.len() {
            0 | 1 => false,
            n if n <= PAIRWISE_KEYS => {
                (1..n).any(|j| (0..j).any(|i| same_raw_key(buf, keys[i], keys[j])))
            }
            _ => {
                self.names.clear();
                self.order.clear();
                for &(start, end, escaped) in keys {
                    let at = self.names.len() as u32;
                    let raw = &buf[start as usize..end as usize];
                    match escaped {
                        true => unescape_into(raw, &mut self.names),
                        false => self.names.extend_from_slice(raw),
                    }
                    self.order.push((at, self.names.len() as u32));
                }
                let names = &self.names;
                let name = |&(s, e): &(u32, u32)| &names[s as usize..e as usize];
                self.order.sort_unstable_by(|a, b| name(a).cmp(name(b)));
                self.order.windows(2).any(|w| name(&w[0]) == name(&w[1]))
            }
        };
        self.keys.truncate(from);
        repeats
    }
}

/// Whether two keys of `buf` are the same name, decoded.
fn same_raw_key(buf: &[u8], a: (u32, u32, bool), b: (u32, u32, bool)) -> bool {
    let key =
        |(start, end, escaped): (u32, u32, bool)| (&buf[start as usize..end as usize], escaped);
    same_name(key(a), key(b))
}

/// Reads `buf` as exactly one JSON object (white space around it allowed), appending its
/// top-level members to `members`. `stack` is scratch space for nesting, reused across calls.
pub(crate) fn read_object(buf: &[u8], members: &mut Vec<Member>, stack: &mut Stack) -> Result<()> {
    read_object_decoding(buf, members, stack, None).map(drop)
}

/// Asks [`read_object_decoding`] to decode the string value of the first top-level member
/// named `key` into `into` while validating it: one pass instead of two for the FireLens
/// `log` string, which is most of a record's bytes.
pub(crate) struct Decode<'k, 'o> {
    pub key: &'k [u8],
    pub into: &'o mut Vec<u8>,
}

/// [`read_object`], decoding one member's string value on the way (see [`Decode`]). Returns
/// the index of the decoded member, if there was one.
pub(crate) fn read_object_decoding(
    buf: &[u8],
    members: &mut Vec<Member>,
    stack: &mut Stack,
    mut decode: Option<Decode<'_, '_>>,
) -> Result<Option<usize>> {
    let mut decoded = None;
    stack.repeating.clear();
    stack.repeated = false;
    if buf.len() > u32::MAX as usize {
        return Err(ReadError {
            kind: SyntaxError::TooLarge,
            offset: 0,
        });
    }
    let mut r = Reader { buf, pos: 0 };
    r.skip_ws();
    if r.peek() != Some(b'{') {
        return Err(r.err(SyntaxError::NotAnObject));
    }
    r.pos += 1;
    r.skip_ws();
    if r.peek() == Some(b'}') {
        r.pos += 1;
    } else {
        loop {
            r.skip_ws();
            if r.peek() != Some(b'"') {
                return Err(r.err_at_end_or(SyntaxError::Unexpected));
            }
            let key_start = r.pos + 1;
            let key_escaped = r.string()?;
            let key = Span {
                start: key_start as u32,
                end: (r.pos - 1) as u32,
            };
            r.skip_ws();
            r.expect(b':')?;
            r.skip_ws();
            let value_start = r.pos;
            let wanted = decoded.is_none() && r.peek() == Some(b'"');
            let (kind, value_escaped) = match decode.as_mut() {
                Some(d) if wanted && key.of(buf) == d.key => {
                    decoded = Some(members.len());
                    (Kind::String, r.string_decoding(d.into)?)
                }
                _ => r.value(stack)?,
            };
            if stack.repeated {
                stack.repeated = false;
                stack.repeating.push(members.len() as u32);
            }
            members.push(Member {
                key,
                value: Span {
                    start: value_start as u32,
                    end: r.pos as u32,
                },
                kind,
                key_escaped,
                value_escaped,
            });
            r.skip_ws();
            match r.next() {
                Some(b',') => continue,
                Some(b'}') => break,
                Some(_) => return Err(r.err_back(SyntaxError::Unexpected)),
                None => return Err(r.err(SyntaxError::Truncated)),
            }
        }
    }
    r.skip_ws();
    if r.pos != buf.len() {
        return Err(r.err(SyntaxError::TrailingData));
    }
    Ok(decoded)
}

/// Reads one JSON value of any type starting exactly at `pos` (no white space skipped), as
/// [`read_object`] reads a member's value: returns its kind, whether it is a string with an
/// escape, and where it ends. `None` if it is not a valid value.
#[inline]
pub(crate) fn value_at(buf: &[u8], pos: usize, stack: &mut Stack) -> Option<(Kind, bool, usize)> {
    let mut r = Reader { buf, pos };
    let (kind, escaped) = r.value(stack).ok()?;
    Some((kind, escaped, r.pos))
}

/// Reads a number, `true`, `false` or `null` starting exactly at `pos`: its kind and end.
#[inline]
pub(crate) fn scalar_at(buf: &[u8], pos: usize) -> Option<(Kind, usize)> {
    let mut r = Reader { buf, pos };
    let kind = r.scalar().ok()?;
    Some((kind, r.pos))
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let b = self.peek();
        self.pos += 1;
        b
    }

    fn err(&self, kind: SyntaxError) -> ReadError {
        ReadError {
            kind,
            offset: self.pos.min(self.buf.len()),
        }
    }

    fn err_back(&self, kind: SyntaxError) -> ReadError {
        ReadError {
            kind,
            offset: self.pos.saturating_sub(1).min(self.buf.len()),
        }
    }

    fn err_at_end_or(&self, kind: SyntaxError) -> ReadError {
        if self.pos >= self.buf.len() {
            self.err(SyntaxError::Truncated)
        } else {
            self.err(kind)
        }
    }

    #[inline]
    fn expect(&mut self, byte: u8) -> Result<()> {
        match self.next() {
            Some(b) if b == byte => Ok(()),
            Some(_) => Err(self.err_back(SyntaxError::Unexpected)),
            None => Err(self.err(SyntaxError::Truncated)),
        }
    }

    #[inline]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    /// Reads one value of any type, skipping nested containers iteratively. Inlined into
    /// both its callers: the dispatch is small, and the string scan must stay in the loop.
    #[inline(always)]
    fn value(&mut self, stack: &mut Stack) -> Result<(Kind, bool)> {
        let kind = match self.peek() {
            Some(b'"') => return Ok((Kind::String, self.string()?)),
            Some(b'{') => Kind::Object,
            Some(b'[') => Kind::Array,
            _ => return Ok((self.scalar()?, false)),
        };
        self.skip_container(stack)?;
        Ok((kind, false))
    }

    /// A number, `true`, `false` or `null`.
    fn scalar(&mut self) -> Result<Kind> {
        match self.peek() {
            Some(b'-' | b'0'..=b'9') => {
                self.number()?;
                Ok(Kind::Number)
            }
            Some(b't') => self.literal(b"true", Kind::Bool),
            Some(b'f') => self.literal(b"false", Kind::Bool),
            Some(b'n') => self.literal(b"null", Kind::Null),
            Some(_) => Err(self.err(SyntaxError::Unexpected)),
            None => Err(self.err(SyntaxError::Truncated)),
        }
    }

    fn literal(&mut self, word: &[u8], kind: Kind) -> Result<Kind> {
        let end = self.pos + word.len();
        if self.buf.get(self.pos..end) == Some(word) {
            self.pos = end;
            Ok(kind)
        } else if end > self.buf.len() && word.starts_with(&self.buf[self.pos..]) {
            Err(self.err(SyntaxError::Truncated))
        } else {
            Err(self.err(SyntaxError::Unexpected))
        }
    }

    /// Skips an object or array starting at `self.pos`, validating everything inside. `stack`
    /// holds the open brackets, so depth costs heap, not call stack.
    #[inline(never)]
    fn skip_container(&mut self, stack: &mut Stack) -> Result<()> {
        stack.brackets.clear();
        stack.keys.clear();
        stack.frames.clear();
        // Each iteration starts where a value is expected.
        loop {
            self.skip_ws();
            match self.peek() {
                Some(open @ (b'{' | b'[')) => {
                    self.pos += 1;
                    self.skip_ws();
                    let close = if open == b'{' { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.pos += 1;
                    } else {
                        stack.brackets.push(open);
                        if open == b'{' {
                            stack.frames.push(stack.keys.len() as u32);
                            self.member_key(stack)?;
                        }
                        continue;
                    }
                }
                Some(b'"') => {
                    self.string()?;
                }
                _ => {
                    self.scalar()?;
                }
            }
            // A value just ended: close containers or move to the next element.
            loop {
                let Some(&open) = stack.brackets.last() else {
                    return Ok(());
                };
                self.skip_ws();
                match (open, self.next()) {
                    (_, Some(b',')) => {
                        if open == b'{' {
                            self.skip_ws();
                            self.member_key(stack)?;
                        }
                        break;
                    }
                    (b'{', Some(b'}')) => {
                        stack.brackets.pop();
                        if stack.close_object(self.buf) {
                            stack.repeated = true;
                        }
                    }
                    (b'[', Some(b']')) => {
                        stack.brackets.pop();
                    }
                    (_, Some(_)) => return Err(self.err_back(SyntaxError::Unexpected)),
                    (_, None) => return Err(self.err(SyntaxError::Truncated)),
                }
            }
        }
    }

    /// `"key" :` inside a nested object.
    fn member_key(&mut self, stack: &mut Stack) -> Result<()> {
        if self.peek() != Some(b'"') {
            return Err(self.err_at_end_or(SyntaxError::Unexpected));
        }
        let start = self.pos as u32 + 1;
        let escaped = self.string()?;
        stack.keys.push((start, self.pos as u32 - 1, escaped));
        self.skip_ws();
        self.expect(b':')
    }

    /// Reads a string starting at its opening quote and leaves `pos` after the closing one.
    /// Returns whether it contained an escape.
    #[inline]
    fn string(&mut self) -> Result<bool> {
        self.pos += 1; // opening quote
        let mut escaped = false;
        loop {
            self.pos += scan::find_string_special(self.buf, self.pos);
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(escaped);
                }
                Some(b'\\') => {
                    escaped = true;
                    self.escape()?;
                }
                Some(_) => return Err(self.err(SyntaxError::BadString)),
                None => return Err(self.err(SyntaxError::Truncated)),
            }
        }
    }

    /// [`Self::string`], also decoding the content into `into` (replacing what it held).
    ///
    /// This is the loop that decodes a FireLens `log` string, where every other token is an
    /// escaped quote, so it scans a chunk at a time ([`scan::string_specials`]) and decodes the
    /// two-byte escapes inline. `into` is sized up front (decoding never grows a string) and
    /// written by index: no capacity checks in the loop.
    fn string_decoding(&mut self, into: &mut Vec<u8>) -> Result<bool> {
        self.pos += 1; // opening quote
        let src = self.buf;
        // Spare bytes: whole words are stored and the excess is overwritten or cut.
        into.clear();
        into.resize(src.len().saturating_sub(self.pos) + DECODE_SPARE, 0);
        let dst = into.as_mut_slice();
        let (mut i, mut o) = (self.pos, 0);
        let mut escaped = false;
        let result = loop {
            // The hot loop: whole chunks, and the two-byte escapes between them.
            while let Some(chunk) = src
                .get(i..)
                .and_then(<[u8]>::first_chunk::<{ scan::CHUNK }>)
            {
                if let Some(out) = dst.get_mut(o..).and_then(<[u8]>::first_chunk_mut) {
                    *out = *chunk;
                }
                let hits = scan::string_specials(chunk);
                if hits == 0 {
                    i += scan::CHUNK;
                    o += scan::CHUNK;
                    continue;
                }
                let take = scan::first(hits);
                i += take;
                o += take;
                let short = match (src[i], src.get(i + 1)) {
                    (b'\\', Some(&next)) => SHORT_ESCAPES[next as usize],
                    _ => 0,
                };
                if short == 0 {
                    break;
                }
                escaped = true;
                dst[o] = short;
                i += 2;
                o += 1;
            }
            match src.get(i) {
                Some(b'"') => {
                    i += 1;
                    break Ok(escaped);
                }
                Some(b'\\') => {
                    escaped = true;
                    let next = src.get(i + 1).copied().unwrap_or(0);
                    let short = SHORT_ESCAPES[next as usize];
                    if short != 0 {
                        dst[o] = short;
                        i += 2;
                        o += 1;
                    } else {
                        self.pos = i;
                        if let Err(e) = self.escape() {
                            break Err(e);
                        }
                        let (c, _) = decode_escape(&src[i..self.pos]);
                        let mut utf8 = [0; 4];
                        let utf8 = c.encode_utf8(&mut utf8).as_bytes();
                        dst[o..o + utf8.len()].copy_from_slice(utf8);
                        i = self.pos;
                        o += utf8.len();
                    }
                }
                Some(&c) if c >= 0x20 => {
                    // Fewer than sixteen bytes are left in the buffer: one at a time.
                    dst[o] = c;
                    i += 1;
                    o += 1;
                }
                Some(_) => {
                    self.pos = i;
                    break Err(self.err(SyntaxError::BadString));
                }
                None => {
                    self.pos = i;
                    break Err(self.err(SyntaxError::Truncated));
                }
            }
        };
        into.truncate(o);
        self.pos = i;
        result
    }

    /// Validates one escape sequence at `pos` (which holds the backslash).
    fn escape(&mut self) -> Result<()> {
        self.pos += 1;
        match self.next() {
            Some(c) if SHORT_ESCAPES[c as usize] != 0 => Ok(()),
            Some(b'u') => {
                let unit = self.hex4()?;
                match unit {
                    0xD800..=0xDBFF => {
                        // A high surrogate must be followed by an escaped low surrogate.
                        if self.buf.get(self.pos..self.pos + 2) != Some(b"\\u") {
                            return Err(self.err_at_end_or(SyntaxError::BadString));
                        }
                        self.pos += 2;
                        match self.hex4()? {
                            0xDC00..=0xDFFF => Ok(()),
                            _ => Err(self.err(SyntaxError::BadString)),
                        }
                    }
                    0xDC00..=0xDFFF => Err(self.err(SyntaxError::BadString)),
                    _ => Ok(()),
                }
            }
            Some(_) => Err(self.err_back(SyntaxError::BadString)),
            None => Err(self.err(SyntaxError::Truncated)),
        }
    }

    fn hex4(&mut self) -> Result<u16> {
        let Some(digits) = self.buf.get(self.pos..self.pos + 4) else {
            return Err(self.err(SyntaxError::Truncated));
        };
        let unit = number::hex4(digits).ok_or_else(|| self.err(SyntaxError::BadString))?;
        self.pos += 4;
        Ok(unit)
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Result<()> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.next() {
            Some(b'0') => {}
            Some(b'1'..=b'9') => self.digits(),
            Some(_) => return Err(self.err_back(SyntaxError::BadNumber)),
            None => return Err(self.err(SyntaxError::Truncated)),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.at_least_one_digit()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.at_least_one_digit()?;
        }
        Ok(())
    }

    #[inline]
    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn at_least_one_digit(&mut self) -> Result<()> {
        match self.peek() {
            Some(b'0'..=b'9') => {
                self.digits();
                Ok(())
            }
            Some(_) => Err(self.err(SyntaxError::BadNumber)),
            None => Err(self.err(SyntaxError::Truncated)),
        }
    }
}

/// How many bytes past a decoded string's longest possible length its buffer is given, for
/// stores of whole words. The layout reader (`crate::layout`) gives the same, so that a buffer
/// that has grown for a record with either reader fits that record with the other: a warm
/// transformer does not allocate, whichever reader a record meets.
pub(crate) const DECODE_SPARE: usize = 32;

/// What each two-byte escape `\x` decodes to, indexed by `x`; 0 where `x` is not one.
pub(crate) static SHORT_ESCAPES: [u8; 256] = {
    let mut table = [0u8; 256];
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table[b'/' as usize] = b'/';
    table[b'b' as usize] = 0x08;
    table[b'f' as usize] = 0x0c;
    table[b'n' as usize] = b'\n';
    table[b'r' as usize] = b'\r';
    table[b't' as usize] = b'\t';
    table
};

/// Decodes the content of a valid JSON string (as validated by [`read_object`]) into `out`.
pub(crate) fn unescape_into(content: &[u8], out: &mut Vec<u8>) {
    let mut rest = content;
    while let Some(at) = memchr::memchr(b'\\', rest) {
        out.extend_from_slice(&rest[..at]);
        let (c, consumed) = decode_escape(&rest[at..]);
        out.extend_from_slice(c.encode_utf8(&mut [0u8; 4]).as_bytes());
        rest = &rest[at + consumed..];
    }
    out.extend_from_slice(rest);
}

/// Whether the key of `m` (in `buf`) is `name`, compared decoded: `"trace\u005fid"` is
/// `trace_id`.
#[inline]
pub(crate) fn key_is(m: &Member, buf: &[u8], name: &[u8]) -> bool {
    let raw = m.key.of(buf);
    match m.key_escaped {
        false => raw == name,
        true => decodes_to(raw, name),
    }
}

/// Whether members `a` (in `a_buf`) and `b` (in `b_buf`) have the same key, decoded.
pub(crate) fn same_key(a: &Member, a_buf: &[u8], b: &Member, b_buf: &[u8]) -> bool {
    same_name(
        (a.key.of(a_buf), a.key_escaped),
        (b.key.of(b_buf), b.key_escaped),
    )
}

/// Whether two keys (their JSON string content, and whether it has an escape) are the same
/// name, decoded.
fn same_name((x, x_escaped): (&[u8], bool), (y, y_escaped): (&[u8], bool)) -> bool {
    match (x_escaped, y_escaped) {
        (false, false) => x == y,
        (true, false) => decodes_to(x, y),
        (false, true) => decodes_to(y, x),
        (true, true) => {
            let (mut x_name, mut y_name) = (Vec::new(), Vec::new());
            unescape_into(x, &mut x_name);
            unescape_into(y, &mut y_name);
            x_name == y_name
        }
    }
}

/// Whether the valid JSON string content `escaped` decodes to `name`, without decoding it
/// into a buffer.
fn decodes_to(escaped: &[u8], name: &[u8]) -> bool {
    let (mut rest, mut want) = (escaped, name);
    while let Some(at) = memchr::memchr(b'\\', rest) {
        let Some(after) = want.strip_prefix(&rest[..at]) else {
            return false;
        };
        let (c, consumed) = decode_escape(&rest[at..]);
        let Some(after) = after.strip_prefix(c.encode_utf8(&mut [0u8; 4]).as_bytes()) else {
            return false;
        };
        (rest, want) = (&rest[at + consumed..], after);
    }
    rest == want
}

/// Decodes the escape at the start of `s` (which begins with `\`); returns it and its length.
/// The input was validated, so malformed sequences cannot occur; should one slip through, it
/// decodes to U+FFFD rather than panicking.
fn decode_escape(s: &[u8]) -> (char, usize) {
    let c = match s.get(1) {
        Some(&c) if SHORT_ESCAPES[c as usize] != 0 => SHORT_ESCAPES[c as usize] as char,
        Some(b'u') => {
            let hi = s.get(2..6).and_then(number::hex4);
            if let Some(hi @ 0xD800..=0xDBFF) = hi {
                if s.get(6..8) == Some(b"\\u") {
                    if let Some(lo @ 0xDC00..=0xDFFF) = s.get(8..12).and_then(number::hex4) {
                        let c = 0x10000 + ((hi as u32 - 0xD800) << 10) + (lo as u32 - 0xDC00);
                        return (char::from_u32(c).unwrap_or('\u{FFFD}'), 12);
                    }
                }
                return ('\u{FFFD}', 6.min(s.len()));
            }
            let c = hi
                .and_then(|u| char::from_u32(u as u32))
                .unwrap_or('\u{FFFD}');
            return (c, 6.min(s.len()));
        }
        _ => return ('\u{FFFD}', 2.min(s.len()).max(1)),
    };
    (c, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(s: &str) -> core::result::Result<Vec<(String, Kind, String)>, SyntaxError> {
        let mut members = Vec::new();
        let mut stack = Stack::default();
        read_object(s.as_bytes(), &mut members, &mut stack).map_err(|e| e.kind)?;
        Ok(members
            .iter()
            .map(|m| {
                (
                    String::from_utf8(m.key.of(s.as_bytes()).to_vec()).unwrap(),
                    m.kind,
                    String::from_utf8(m.value.of(s.as_bytes()).to_vec()).unwrap(),
                )
            })
            .collect())
    }

    #[test]
    fn members_and_spans() {
        let got = read(
            r#" {"a":1, "b" : "x\"y", "c":[1,{"d":[]}], "e":{}, "f":null,"g":true,"h":-0.5e+3}  "#,
        )
        .unwrap();
        let want = [
            ("a", Kind::Number, "1"),
            ("b", Kind::String, r#""x\"y""#),
            ("c", Kind::Array, r#"[1,{"d":[]}]"#),
            ("e", Kind::Object, "{}"),
            ("f", Kind::Null, "null"),
            ("g", Kind::Bool, "true"),
            ("h", Kind::Number, "-0.5e+3"),
        ];
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert_eq!((g.0.as_str(), g.1, g.2.as_str()), w);
        }
        assert_eq!(read("{}").unwrap().len(), 0);
    }

    #[test]
    fn rejects_what_json_rejects() {
        let bad = [
            ("", SyntaxError::NotAnObject),
            ("[]", SyntaxError::NotAnObject),
            ("{", SyntaxError::Truncated),
            (r#"{"a":1"#, SyntaxError::Truncated),
            (r#"{"a":1,}"#, SyntaxError::Unexpected),
            (r#"{"a" 1}"#, SyntaxError::Unexpected),
            (r#"{"a":01}"#, SyntaxError::Unexpected),
            (r#"{"a":1.}"#, SyntaxError::BadNumber),
            (r#"{"a":-}"#, SyntaxError::BadNumber),
            (r#"{"a":1e}"#, SyntaxError::BadNumber),
            (r#"{"a":tru}"#, SyntaxError::Unexpected),
            (r#"{"a":tr"#, SyntaxError::Truncated),
            ("{\"a\":\"\u{1}\"}", SyntaxError::BadString),
            (r#"{"a":"\x"}"#, SyntaxError::BadString),
            (r#"{"a":"\ud800"}"#, SyntaxError::BadString),
            (r#"{"a":"\udc00"}"#, SyntaxError::BadString),
            (r#"{"a":"\ud800\u0041"}"#, SyntaxError::BadString),
            (r#"{"a":"\u12"}"#, SyntaxError::BadString),
            (r#"{"a":[1,]}"#, SyntaxError::Unexpected),
            (r#"{"a":[1}"#, SyntaxError::Unexpected),
            (r#"{"a":{"b"}}"#, SyntaxError::Unexpected),
            (r#"{"a":{"b":1,}}"#, SyntaxError::Unexpected),
            (r#"{"a":1} x"#, SyntaxError::TrailingData),
            (r#"{"a":1}{}"#, SyntaxError::TrailingData),
            (r#"{a:1}"#, SyntaxError::Unexpected),
        ];
        for (input, kind) in bad {
            assert_eq!(read(input).err(), Some(kind), "{input:?}");
            let serde = serde_json::from_str::<serde_json::Value>(input);
            assert!(
                !matches!(serde, Ok(serde_json::Value::Object(_))),
                "{input:?}"
            );
        }
    }

    #[test]
    fn deep_nesting_does_not_recurse() {
        let depth = 200_000;
        let s = format!("{{\"a\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
        assert_eq!(read(&s).unwrap()[0].1, Kind::Array);
        let unclosed = format!("{{\"a\":{}", "[".repeat(depth));
        assert_eq!(read(&unclosed).err(), Some(SyntaxError::Truncated));
    }

    #[test]
    fn special_byte_search_matches_naive() {
        let samples: [&[u8]; 6] = [
            b"",
            b"abcdefgh",
            b"abcdefgh\"",
            b"abc\\defghij",
            b"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\x01",
            b"01234567890123\t",
        ];
        for s in samples {
            let naive = s
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .unwrap_or(s.len());
            assert_eq!(scan::find_string_special(s, 0), naive, "{s:?}");
        }
    }

    #[test]
    fn decodes_one_member_while_reading() {
        let input = br#"{"a":"x\"y","log":"{\"k\":\"\u00e9\\n\ud83d\ude00\"}\n","log":"second"}"#;
        let (mut members, mut stack, mut text) = (Vec::new(), Stack::default(), Vec::new());
        let decode = Decode {
            key: b"log",
            into: &mut text,
        };
        let at = read_object_decoding(input, &mut members, &mut stack, Some(decode)).unwrap();
        assert_eq!(at, Some(1));
        assert_eq!(String::from_utf8(text).unwrap(), "{\"k\":\"é\\n😀\"}\n");
        assert_eq!(members.len(), 3);
        assert!(members[1].value_escaped && members[1].kind == Kind::String);
        let start = input.windows(3).position(|w| w == b"\"{\\").unwrap();
        let end = input.windows(4).position(|w| w == b"n\",\"").unwrap() + 2;
        assert_eq!(members[1].value.of(input), &input[start..end]);
    }

    #[test]
    fn decoding_a_cut_record_fails_cleanly() {
        // Every prefix: an escape may sit at any place of a word, and at the very end.
        let input = br#"{"log":"{\"k\":\"a\\\"b\u00e9\t\ud83d\ude00\"}\n"}"#;
        for end in 1..input.len() {
            let (mut members, mut stack, mut text) = (Vec::new(), Stack::default(), Vec::new());
            let decode = Decode {
                key: b"log",
                into: &mut text,
            };
            let result =
                read_object_decoding(&input[..end], &mut members, &mut stack, Some(decode));
            assert!(result.is_err(), "{end}");
        }
    }

    #[test]
    fn unescapes() {
        let mut out = Vec::new();
        unescape_into(br#"a\"b\\c\/\n\t\u00e9\ud83d\ude00z"#, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "a\"b\\c/\n\té😀z");
    }

    #[test]
    fn keys_are_compared_decoded() {
        let (mut members, mut stack) = (Vec::new(), Stack::default());
        let json =
            br#"{"trace\u005fid":1,"trace_id":2,"\u0074race_id":3,"trace_i":4,"trace_idd":5}"#;
        read_object(json, &mut members, &mut stack).unwrap();
        let is = |i: usize| key_is(&members[i], json, b"trace_id");
        assert_eq!(
            (0..5).map(is).collect::<Vec<_>>(),
            [true, true, true, false, false]
        );
        for (i, j, same) in [
            (0, 1, true),
            (0, 2, true),
            (1, 2, true),
            (2, 3, false),
            (0, 4, false),
        ] {
            assert_eq!(
                same_key(&members[i], json, &members[j], json),
                same,
                "{i} {j}"
            );
            assert_eq!(
                same_key(&members[j], json, &members[i], json),
                same,
                "{j} {i}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_serde_json(s in "\\PC*") {
            let ours = read(&s).is_ok();
            let theirs = matches!(serde_json::from_str::<serde_json::Value>(&s), Ok(serde_json::Value::Object(_)));
            proptest::prop_assert_eq!(ours, theirs);
        }

        #[test]
        fn special_byte_search(s in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            let naive = s.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).unwrap_or(s.len());
            proptest::prop_assert_eq!(scan::find_string_special(&s, 0), naive);
        }
    }
}
