//! Helpers shared by the golden, spec and property tests.
//!
//! The checker here is deliberately independent of the crate's own reader: a small strict JSON
//! parser that iterates (so 100 000 levels of nesting are fine), rejects duplicate keys (which
//! serde_json would silently collapse) and collects every scalar leaf, so tests can ask "is
//! every input value still in the output?".

#![allow(dead_code)] // each test binary uses a different subset

use envoy_dd::{Config, Outcome, TraceIdFormat, Transformer};

/// The options the fixtures use unless `fixtures/README.md` says otherwise, keeping source keys
/// (`--keep-source-attributes`): the rules each test checks, apart from moving keys.
pub const HASH: &str = "4f9c2a17e0b3";

/// `--hash 4f9c2a17e0b3 --trace-id-128 decimal`, no phase.
pub fn default_config() -> Config {
    Config {
        hash: Some(HASH.into()),
        phase: None,
        trace_id_128: TraceIdFormat::Decimal,
        keep_source_attributes: true,
        ..Config::default()
    }
}

/// [`default_config`] as the library's default has it: Envoy keys move into their standard
/// attributes.
pub fn moving_config() -> Config {
    Config {
        keep_source_attributes: false,
        ..default_config()
    }
}

/// Transforms one record with `config`; returns the output bytes and the outcome.
pub fn run(config: &Config, input: &[u8]) -> (Vec<u8>, Outcome) {
    let mut t = Transformer::new(config.clone());
    let mut out = Vec::new();
    let outcome = t.transform(input, &mut out);
    (out, outcome)
}

/// Transforms one record with [`default_config`] and returns the output as text.
pub fn out(input: &str) -> String {
    String::from_utf8(run(&default_config(), input.as_bytes()).0).expect("output is UTF-8")
}

/// A scalar value found in a JSON document.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scalar {
    /// Decoded string content.
    Str(String),
    /// A number exactly as written.
    Num(String),
    Bool(bool),
    Null,
}

/// A scalar and where it sits: its key at the top level and one level down (if any).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    pub top: Option<String>,
    pub second: Option<String>,
    pub depth: usize,
    pub value: Scalar,
}

/// Keys of the top-level object, in order (decoded).
#[derive(Debug)]
pub struct Doc {
    pub top_keys: Vec<String>,
    pub leaves: Vec<Leaf>,
}

/// Parses `bytes` as exactly one JSON object (RFC 8259, strict). Fails on invalid UTF-8,
/// syntax errors, lone surrogates and any object with a key twice.
pub fn check_json(bytes: &[u8]) -> Result<Doc, String> {
    parse(bytes, false)
}

/// [`check_json`], but a key twice in one object is allowed (for inputs that already had it).
pub fn check_json_allowing_duplicates(bytes: &[u8]) -> Result<Doc, String> {
    parse(bytes, true)
}

fn parse(bytes: &[u8], allow_duplicates: bool) -> Result<Doc, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("invalid UTF-8: {e}"))?;
    let mut p = Parser {
        b: text.as_bytes(),
        pos: 0,
        allow_duplicates,
    };
    p.ws();
    if p.peek() != Some(b'{') {
        return Err(p.err("not an object"));
    }
    let doc = p.document()?;
    p.ws();
    if p.pos != p.b.len() {
        return Err(p.err("trailing data"));
    }
    Ok(doc)
}

/// Panics with a readable message unless `bytes` is one valid JSON object without duplicate
/// keys.
pub fn assert_valid(bytes: &[u8]) -> Doc {
    check_json(bytes).unwrap_or_else(|e| panic!("{e}\n in: {}", preview(bytes)))
}

/// The first few hundred bytes of `bytes`, lossily decoded, for messages.
pub fn preview(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(400)]).into_owned();
    if bytes.len() > 400 {
        format!("{s}... ({} bytes)", bytes.len())
    } else {
        s
    }
}

enum Frame {
    Object {
        keys: std::collections::HashSet<String>,
        key: Option<String>,
    },
    Array,
}

struct Parser<'a> {
    b: &'a [u8],
    pos: usize,
    allow_duplicates: bool,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> String {
        format!("{what} at byte {}", self.pos)
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(&format!("expected {:?}", c as char)))
        }
    }

    /// The value at `pos`, which is an object; iterates with an explicit stack.
    fn document(&mut self) -> Result<Doc, String> {
        let mut doc = Doc {
            top_keys: Vec::new(),
            leaves: Vec::new(),
        };
        let mut stack: Vec<Frame> = Vec::new();
        // Path keys of the first two object levels (arrays count as levels without a key).
        let mut expecting_value = true;
        loop {
            if expecting_value {
                self.ws();
                match self.peek() {
                    Some(b'{') => {
                        self.pos += 1;
                        stack.push(Frame::Object {
                            keys: Default::default(),
                            key: None,
                        });
                        self.ws();
                        if self.peek() == Some(b'}') {
                            self.pos += 1;
                            stack.pop();
                            expecting_value = false;
                        } else {
                            self.key(&mut stack, &mut doc)?;
                            continue;
                        }
                    }
                    Some(b'[') => {
                        self.pos += 1;
                        stack.push(Frame::Array);
                        self.ws();
                        if self.peek() == Some(b']') {
                            self.pos += 1;
                            stack.pop();
                            expecting_value = false;
                        } else {
                            continue;
                        }
                    }
                    _ => {
                        let value = self.scalar()?;
                        let key_at = |level: usize| match stack.get(level) {
                            Some(Frame::Object { key, .. }) => key.clone(),
                            _ => None,
                        };
                        doc.leaves.push(Leaf {
                            top: key_at(0),
                            second: key_at(1),
                            depth: stack.len(),
                            value,
                        });
                        expecting_value = false;
                    }
                }
            }
            // After a value: a comma, or the end of the enclosing container.
            if stack.is_empty() {
                return Ok(doc);
            }
            self.ws();
            match (stack.last(), self.peek()) {
                (_, Some(b',')) => {
                    self.pos += 1;
                    if matches!(stack.last(), Some(Frame::Object { .. })) {
                        self.ws();
                        self.key(&mut stack, &mut doc)?;
                    }
                    expecting_value = true;
                }
                (Some(Frame::Object { .. }), Some(b'}')) | (Some(Frame::Array), Some(b']')) => {
                    self.pos += 1;
                    stack.pop();
                    if stack.is_empty() {
                        return Ok(doc);
                    }
                }
                _ => return Err(self.err("expected ',' or end of container")),
            }
        }
    }

    /// Reads `"key":` into the innermost object frame, failing on a duplicate.
    fn key(&mut self, stack: &mut [Frame], doc: &mut Doc) -> Result<(), String> {
        if self.peek() != Some(b'"') {
            return Err(self.err("expected a key"));
        }
        let key = self.string()?;
        self.ws();
        self.eat(b':')?;
        let depth = stack.len();
        let Some(Frame::Object { keys, key: current }) = stack.last_mut() else {
            unreachable!()
        };
        if !keys.insert(key.clone()) && !self.allow_duplicates {
            return Err(self.err(&format!("duplicate key {key:?}")));
        }
        if depth == 1 {
            doc.top_keys.push(key.clone());
        }
        *current = Some(key);
        Ok(())
    }

    fn scalar(&mut self) -> Result<Scalar, String> {
        match self.peek() {
            Some(b'"') => Ok(Scalar::Str(self.string()?)),
            Some(b't') => self.word("true", Scalar::Bool(true)),
            Some(b'f') => self.word("false", Scalar::Bool(false)),
            Some(b'n') => self.word("null", Scalar::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.err("expected a value")),
        }
    }

    fn word(&mut self, w: &str, v: Scalar) -> Result<Scalar, String> {
        if self.b[self.pos..].starts_with(w.as_bytes()) {
            self.pos += w.len();
            Ok(v)
        } else {
            Err(self.err("bad literal"))
        }
    }

    fn number(&mut self) -> Result<Scalar, String> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let s = p.pos;
            while matches!(p.peek(), Some(b'0'..=b'9')) {
                p.pos += 1;
            }
            p.pos - s
        };
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let first = self.peek();
        let n = digits(self);
        if n == 0 || (first == Some(b'0') && n > 1) {
            return Err(self.err("bad number"));
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if digits(self) == 0 {
                return Err(self.err("bad fraction"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return Err(self.err("bad exponent"));
            }
        }
        Ok(Scalar::Num(
            String::from_utf8(self.b[start..self.pos].to_vec()).unwrap(),
        ))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self
            .b
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.err("short \\u escape"))?;
        let s = std::str::from_utf8(h).map_err(|_| self.err("bad \\u escape"))?;
        let v = u32::from_str_radix(s, 16).map_err(|_| self.err("bad \\u escape"))?;
        if !h.iter().all(u8::is_ascii_hexdigit) {
            return Err(self.err("bad \\u escape"));
        }
        self.pos += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, String> {
        self.eat(b'"')?;
        let mut s = String::new();
        loop {
            let start = self.pos;
            while let Some(c) = self.peek() {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // The input was checked to be UTF-8, and we only stop at ASCII bytes.
            s.push_str(std::str::from_utf8(&self.b[start..self.pos]).unwrap());
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(s);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let c = self.peek().ok_or_else(|| self.err("truncated escape"))?;
                    self.pos += 1;
                    match c {
                        b'"' => s.push('"'),
                        b'\\' => s.push('\\'),
                        b'/' => s.push('/'),
                        b'b' => s.push('\u{8}'),
                        b'f' => s.push('\u{c}'),
                        b'n' => s.push('\n'),
                        b'r' => s.push('\r'),
                        b't' => s.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let cp = if (0xD800..0xDC00).contains(&hi) {
                                if !self.b[self.pos..].starts_with(b"\\u") {
                                    return Err(self.err("lone surrogate"));
                                }
                                self.pos += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.err("lone surrogate"));
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else if (0xDC00..0xE000).contains(&hi) {
                                return Err(self.err("lone surrogate"));
                            } else {
                                hi
                            };
                            s.push(char::from_u32(cp).ok_or_else(|| self.err("bad code point"))?);
                        }
                        _ => return Err(self.err("bad escape")),
                    }
                }
                Some(_) => return Err(self.err("control character in string")),
                None => return Err(self.err("unterminated string")),
            }
        }
    }
}

/// Whether a `hash`/`phase` value is configuration debris (README, "hash and phase"), which may vanish.
pub fn is_debris(v: &Scalar) -> bool {
    match v {
        Scalar::Null => true,
        Scalar::Str(s) => {
            let s = s.trim();
            s.is_empty() || s == "-" || (s.starts_with("${") && s.ends_with('}'))
        }
        _ => false,
    }
}

/// Whether a `dd.trace_id`/`dd.span_id` value is a placeholder that a real id may replace.
pub fn is_placeholder_id(v: &Scalar) -> bool {
    match v {
        Scalar::Null => true,
        Scalar::Str(s) => matches!(s.as_str(), "" | "-" | "0"),
        Scalar::Num(n) => n == "0",
        Scalar::Bool(_) => false,
    }
}

/// The scalars of an input record that must appear in the output (nothing is dropped): every
/// leaf, except a `log` string that was merged (its parsed leaves count instead), `hash`/`phase`
/// debris, a `null` `dd`, and placeholder ids in `dd`.
pub fn required_scalars(input: &Doc, merged_log: Option<&Doc>) -> Vec<Scalar> {
    required_leaves(input, merged_log)
        .into_iter()
        .map(|(_, value)| value)
        .collect()
}

/// [`required_scalars`], each with the top-level key of the record it was under when it was
/// a top-level member itself.
pub fn required_leaves(input: &Doc, merged_log: Option<&Doc>) -> Vec<(Option<String>, Scalar)> {
    let mut out = Vec::new();
    let mut add = |doc: &Doc, skip_log: bool| {
        for leaf in &doc.leaves {
            let top = leaf.top.as_deref();
            if skip_log && leaf.depth == 1 && top == Some("log") {
                continue;
            }
            if leaf.depth == 1 && matches!(top, Some("hash" | "phase")) && is_debris(&leaf.value) {
                continue;
            }
            // `"dd":null` is an empty `dd` that found ids may fill.
            if leaf.depth == 1 && top == Some("dd") && leaf.value == Scalar::Null {
                continue;
            }
            if leaf.depth == 2
                && top == Some("dd")
                && matches!(leaf.second.as_deref(), Some("trace_id" | "span_id"))
                && is_placeholder_id(&leaf.value)
            {
                continue;
            }
            let key = (leaf.depth == 1).then(|| leaf.top.clone()).flatten();
            out.push((key, leaf.value.clone()));
        }
    };
    add(input, merged_log.is_some());
    if let Some(log) = merged_log {
        add(log, false);
    }
    out
}

/// Checks that `output` is a valid object without duplicate keys that contains every required
/// scalar of `input` (a number may have become a string with the same digits, as ids do).
/// Returns a description of the first problem.
pub fn check_nothing_lost(input: &[u8], output: &[u8]) -> Result<(), String> {
    check_lost(input, output, false)
}

/// [`check_nothing_lost`] for the default config, where Envoy keys move into their standard
/// attributes: a value of such a key (see [`MOVING_KEYS`]) may instead be recoverable from
/// an attribute (`"HTTP/1.1"` from `http.version` `1.1`, `12` ms from `duration` `12000000`,
/// `"200"` or `200.0` from `200`), or be Envoy's "absent" (`null`, `"-"`).
pub fn check_nothing_lost_moving(input: &[u8], output: &[u8]) -> Result<(), String> {
    check_lost(input, output, true)
}

/// Normalised names (lower case, letters and digits) of the keys that may move.
/// Whether `key` is one of [`MOVING_KEYS`], compared by normalised name.
pub fn is_moving_key(key: &str) -> bool {
    let normal: String = key
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    MOVING_KEYS.contains(&normal.as_str())
}

pub const MOVING_KEYS: &[&str] = &[
    "responsecode",
    "statuscode",
    "code",
    "method",
    "path",
    "xenvoyoriginalpath",
    "authority",
    "host",
    "protocol",
    "requestid",
    "xrequestid",
    "useragent",
    "xforwardedfor",
    "forwardedfor",
    "downstreamremoteaddress",
    "bytesreceived",
    "bytessent",
    "duration",
    "durationms",
    "xapollooperationname",
    "graphqloperationname",
    "operationname",
    "traceid",
    "xdatadogtraceid",
    "ddtraceid",
    "datadogtraceid",
    "spanid",
    "parentid",
    "xdatadogparentid",
    "ddspanid",
    "datadogparentid",
];

/// Whether `want`, a value of `key`, is held by an attribute of `out` as moving keys allows.
fn recoverable(key: &str, want: &Scalar, out: &Doc) -> bool {
    let normal: String = key
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if !MOVING_KEYS.contains(&normal.as_str()) {
        return false;
    }
    let at = |top: &str, second: Option<&str>| {
        out.leaves
            .iter()
            .find(|l| {
                l.top.as_deref() == Some(top)
                    && l.second.as_deref() == second
                    && l.depth == 1 + usize::from(second.is_some())
            })
            .map(|l| &l.value)
    };
    let number = |text: &str| text.parse::<f64>().ok().filter(|n| n.abs() < 9e15);
    let same_number = |text: &str| {
        out.leaves.iter().any(|l| matches!(&l.value, Scalar::Num(n) if number(n).is_some() && number(n) == number(text)))
    };
    let text = match want {
        Scalar::Null => return true,
        Scalar::Str(s) if s == "-" => return true,
        Scalar::Str(s) | Scalar::Num(s) => s,
        Scalar::Bool(_) => return false,
    };
    if normal == "duration" || normal == "durationms" {
        return millis_to_nanos(text)
            .is_some_and(|n| at("duration", None) == Some(&Scalar::Num(n)));
    }
    if normal == "protocol" {
        let version = text.strip_prefix("HTTP/").map(|v| Scalar::Str(v.into()));
        return version.is_some() && at("http", Some("version")) == version.as_ref();
    }
    match want {
        // A string of a number's own digits, written as that number.
        Scalar::Str(s) => out.leaves.iter().any(|l| l.value == Scalar::Num(s.clone())),
        _ => same_number(text),
    }
}

/// `12.5` (milliseconds) as `12500000` (nanoseconds), digit by digit; `None` below a nanosecond.
fn millis_to_nanos(millis: &str) -> Option<String> {
    let (whole, frac) = millis.split_once('.').unwrap_or((millis, ""));
    let frac = format!("{frac:0<6}");
    if frac[6..].bytes().any(|b| b != b'0') {
        return None;
    }
    let digits = format!("{whole}{}", &frac[..6]);
    let trimmed = digits.trim_start_matches('0');
    Some(if trimmed.is_empty() { "0" } else { trimmed }.into())
}

fn check_lost(input: &[u8], output: &[u8], moving: bool) -> Result<(), String> {
    let out_doc = check_json(output).map_err(|e| format!("output: {e}"))?;
    let in_doc = check_json(input).map_err(|e| format!("input: {e}"))?;
    // The log was merged if the output has no `log` string equal to the input's.
    let log_in = in_doc
        .leaves
        .iter()
        .find(|l| l.depth == 1 && l.top.as_deref() == Some("log"));
    let merged = match log_in {
        Some(Leaf {
            value: Scalar::Str(text),
            ..
        }) => {
            let kept = out_doc.leaves.iter().any(|l| {
                l.depth == 1
                    && l.top.as_deref() == Some("log")
                    && l.value == Scalar::Str(text.clone())
            });
            if kept {
                None
            } else {
                // Merged: a JSON log's values must all be there. A text access log parsed into
                // fields is checked by the text-format tests instead.
                Some(check_json(text.as_bytes()).unwrap_or(Doc {
                    top_keys: Vec::new(),
                    leaves: Vec::new(),
                }))
            }
        }
        _ => None,
    };
    let have: std::collections::HashSet<&Scalar> =
        out_doc.leaves.iter().map(|l| &l.value).collect();
    for (key, want) in required_leaves(&in_doc, merged.as_ref()) {
        let found = have.contains(&want)
            || matches!(&want, Scalar::Num(n) if have.contains(&Scalar::Str(n.clone())))
            || (moving && key.is_some_and(|k| recoverable(&k, &want, &out_doc)));
        if !found {
            return Err(format!("input value {want:?} is missing from the output"));
        }
    }
    Ok(())
}
