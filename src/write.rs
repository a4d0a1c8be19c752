//! Output writing: JSON objects assembled from raw byte spans, plus string escaping for the few
//! values envoy-dd makes up itself.
//!
//! Values copied from the input are written byte for byte (they were validated by
//! [`crate::read`]), so numbers and strings keep their exact form.

/// Writes the members of one JSON object, inserting commas.
pub(crate) struct ObjectWriter {
    empty: bool,
}

impl ObjectWriter {
    /// Writes `{`.
    #[inline(always)]
    pub fn open(out: &mut Vec<u8>) -> Self {
        out.push(b'{');
        ObjectWriter { empty: true }
    }

    /// An object whose `{` is written already, by [`ObjectWriter::start`] with its key.
    #[inline(always)]
    pub fn opened() -> Self {
        ObjectWriter { empty: true }
    }

    /// An object whose `{` and first members are written already.
    #[cfg(feature = "tracing")]
    pub fn continued() -> Self {
        ObjectWriter { empty: false }
    }

    /// Writes `,"key":` — `key` is already JSON-escaped (a raw key span or a literal).
    #[inline(always)]
    pub fn key(&mut self, out: &mut Vec<u8>, escaped_key: &[u8]) {
        if !self.empty {
            out.push(b',');
        }
        self.empty = false;
        out.push(b'"');
        out.extend_from_slice(escaped_key);
        out.extend_from_slice(b"\":");
    }

    /// Writes the start of a member given as one literal with its comma, `,"key":` and
    /// whatever follows (`,"http":{"status_code":`): one copy instead of four writes. The
    /// comma is left out for the first member.
    #[inline(always)]
    pub fn start(&mut self, out: &mut Vec<u8>, comma_key_and_more: &[u8]) {
        // Two copies of known lengths (for a literal): cheaper than one of either length.
        match self.empty {
            true => out.extend_from_slice(&comma_key_and_more[1..]),
            false => out.extend_from_slice(comma_key_and_more),
        }
        self.empty = false;
    }

    /// Writes members copied whole: `"a":1,"b":2`.
    #[inline(always)]
    pub fn members(&mut self, out: &mut Vec<u8>, members: &[u8]) {
        if !self.empty {
            out.push(b',');
        }
        self.empty = false;
        out.extend_from_slice(members);
    }

    /// Writes a member whose value is raw JSON.
    #[inline(always)]
    pub fn raw(&mut self, out: &mut Vec<u8>, escaped_key: &[u8], value: &[u8]) {
        self.key(out, escaped_key);
        out.extend_from_slice(value);
    }

    /// Writes a member whose value is string content that is already JSON-escaped.
    #[inline(always)]
    pub fn str(&mut self, out: &mut Vec<u8>, escaped_key: &[u8], escaped_content: &[u8]) {
        self.key(out, escaped_key);
        out.push(b'"');
        out.extend_from_slice(escaped_content);
        out.push(b'"');
    }

    /// Writes `}`.
    #[inline(always)]
    pub fn close(self, out: &mut Vec<u8>) {
        out.push(b'}');
    }
}

/// Appends `n` in decimal (a JSON number).
#[inline(always)]
pub(crate) fn integer(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends `s` as a JSON string, quotes included, escaping what JSON requires.
// Out of line: its callers are cold paths, and one copy keeps the Wasm module small.
#[inline(never)]
pub(crate) fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    escape_into(out, s);
    out.push(b'"');
}

/// Appends the JSON-escaped content of `s`, without quotes.
pub(crate) fn escape_into(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x08 => b'b',
            0x0c => b'f',
            0..=0x1f => 0,
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        start = i + 1;
        if short != 0 {
            out.extend_from_slice(&[b'\\', short]);
        } else {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 15) as usize],
            ]);
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_serde_json() {
        for s in [
            "plain",
            "q\"b\\s/",
            "\n\r\t\u{8}\u{c}",
            "\0\u{1}\u{1f}\u{7f}",
            "é😀",
            "}\n{\"x\":1",
        ] {
            let mut out = Vec::new();
            string(&mut out, s);
            let back: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, s);
            assert!(!out.contains(&b'\n'));
        }
    }

    #[test]
    fn object_writer_commas() {
        let mut out = Vec::new();
        let mut w = ObjectWriter::open(&mut out);
        w.start(&mut out, br#","z":"#);
        out.push(b'0');
        w.raw(&mut out, b"a", b"[1]");
        w.str(&mut out, b"b", b"x\\\"y");
        w.start(&mut out, br#","c":{"#);
        let mut c = ObjectWriter::opened();
        c.raw(&mut out, b"e", b"1");
        c.close(&mut out);
        w.close(&mut out);
        assert_eq!(out, br#"{"z":0,"a":[1],"b":"x\"y","c":{"e":1}}"#);
    }
}
