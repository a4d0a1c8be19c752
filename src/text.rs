//! Envoy text access logs: format strings, parsed once, matched against each line.
//!
//! Envoy writes a text access log by substituting command operators (`%RESPONSE_CODE%`,
//! `%REQ(USER-AGENT)%`, ...) into a format string. [`TextFormat::parse`] reads such a string
//! once, with nom, into literal text and fields. [`TextFormat::to_json`] then splits a line at
//! the literals, left to right, each field ending where the next literal starts, and writes the
//! fields as a JSON object whose keys are named after the operators. The transform takes that
//! object's members (noted while they are written) as it takes a JSON `log`'s, so text and
//! JSON access logs get the same treatment.
//!
//! Envoy's default format and Istio's are recognised without configuration ([`builtins`]).

use core::fmt;
use core::str::FromStr;
use std::sync::OnceLock;

use nom::branch::alt;
use nom::bytes::complete::{tag, take_till1, take_while1};
use nom::character::complete::{char, digit1};
use nom::combinator::{map, opt};
use nom::error::{ErrorKind, ParseError};
use nom::sequence::{pair, preceded};
use nom::{Err, IResult, Parser};

use crate::read::{Kind, Member, Span};
use crate::scan::{self, position, swar};
use crate::write;

/// Envoy's default format (`usage.rst`, "Default Format String"), without its final newline.
const ENVOY_DEFAULT: &str = concat!(
    r#"[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" "#,
    r#"%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "#,
    r#"%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "#,
    r#""%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%""#,
);

/// Istio's text format (`meshConfig.accessLogFormat` left empty), since Istio 1.6 or so.
const ISTIO: &str = concat!(
    r#"[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" "#,
    r#"%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "#,
    r#""%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "#,
    r#"%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "#,
    r#""%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% "#,
    r#"%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% "#,
    r#"%REQUESTED_SERVER_NAME% %ROUTE_NAME%"#,
);

/// Istio's earlier text format, without the response code and termination details.
const ISTIO_LEGACY: &str = concat!(
    r#"[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" "#,
    r#"%RESPONSE_CODE% %RESPONSE_FLAGS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" "#,
    r#"%BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "#,
    r#""%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "#,
    r#""%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% "#,
    r#"%DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%"#,
);

/// ECS Service Connect's HTTP/1.1 format (ECS developer guide, "Amazon ECS Service Connect
/// access logs", "Access log formats"): Envoy's default without `%RESPONSE_FLAGS%`.
const SERVICE_CONNECT_HTTP: &str = concat!(
    r#"[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" "#,
    r#"%RESPONSE_CODE% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "#,
    r#"%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "#,
    r#""%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%""#,
);

/// Service Connect's HTTP/2 format: the HTTP/1.1 one and the stream id.
const SERVICE_CONNECT_HTTP2: &str = concat!(
    r#"[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" "#,
    r#"%RESPONSE_CODE% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "#,
    r#"%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "#,
    r#""%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" "%STREAM_ID%""#,
);

/// Service Connect's gRPC format: the gRPC status after the response code, and the stream id.
/// It has as many unquoted fields as Envoy's default format; what they hold tells them apart
/// (a gRPC status is never a response flag, see [`Check`]).
const SERVICE_CONNECT_GRPC: &str = concat!(
    r#"[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" "#,
    r#"%RESPONSE_CODE% %GRPC_STATUS()% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "#,
    r#"%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "#,
    r#""%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" "%STREAM_ID%""#,
);

/// Service Connect's TCP format.
const SERVICE_CONNECT_TCP: &str = concat!(
    r#"[%START_TIME%] %DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_REMOTE_PORT% %BYTES_RECEIVED% "#,
    r#"%BYTES_SENT% %DURATION% %CONNECTION_TERMINATION_DETAILS% %CONNECTION_ID%"#,
);

/// gRPC status names as Envoy's `%GRPC_STATUS()%` writes them (`CAMEL_STRING`, the default),
/// by code.
pub(crate) const GRPC_STATUS_NAMES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// Retries per line when a field's value turns out to contain the literal after it.
const RETRIES: u32 = 64;

/// Bytes of a field's [`Field::write_opening`] that are copied as one block.
const OPENING: usize = 48;

/// Most operators in one format: matching recurses once per field.
const MAX_FIELDS: usize = 256;

/// Operators whose argument names a header: the field is named after the header.
const HEADER_OPERATORS: &[&str] = &[
    "REQ",
    "RESP",
    "TRAILER",
    "REQUEST_HEADER",
    "RESPONSE_HEADER",
    "RESPONSE_TRAILER",
    "REQ_WITHOUT_QUERY",
];

/// The formats tried on every `log` that is not JSON, in this order: Envoy's default, Istio's
/// two, then ECS Service Connect's four (HTTP/1.1, HTTP/2, gRPC, TCP).
///
/// Envoy's and Istio's tolerate a prefix before the `[` (`ACCESS ` in Ambassador's format),
/// extra space-separated fields at the end (kept under `extra`), and, for Istio's, missing
/// fields at the end. Service Connect's are AWS's own, fixed, and matched exactly.
///
/// In all of them, a field that is not between quotes holds no space and no `"`, a response
/// flag is a response flag and a gRPC status a gRPC status ([`Check`]): so that a line of one
/// format is never taken for a line of another with its fields shifted.
pub(crate) fn builtins() -> &'static [TextFormat; 7] {
    static BUILTINS: OnceLock<[TextFormat; 7]> = OnceLock::new();
    BUILTINS.get_or_init(|| {
        // Constants, checked by the tests: a failure here is a bug in this file.
        let build =
            |format, mode| TextFormat::compile(format, mode).expect("built-in format parses");
        [
            build(ENVOY_DEFAULT, Mode::Lenient),
            build(ISTIO, Mode::Lenient),
            build(ISTIO_LEGACY, Mode::Lenient),
            build(SERVICE_CONNECT_HTTP, Mode::Exact),
            build(SERVICE_CONNECT_HTTP2, Mode::Exact),
            build(SERVICE_CONNECT_GRPC, Mode::Exact),
            build(SERVICE_CONNECT_TCP, Mode::Exact),
        ]
    })
}

/// How a format is matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// A user's format: exactly as written.
    User,
    /// A built-in format that tolerates a prefix, extra trailing fields and (Istio's) missing
    /// trailing fields; its values are checked ([`Check`]).
    Lenient,
    /// A built-in format matched exactly; its values are checked.
    Exact,
}

/// Writes `line` as a JSON object into `out` (cleared first) with the configured format, or
/// else the first built-in one that matches, listing its members in `members` and their
/// places among the format's [`TextFormat::member_names`] in `places`. Returns the format that
/// matched: its place among [`formats`].
pub(crate) fn line_to_json(
    custom: Option<&TextFormat>,
    line: &[u8],
    out: &mut Vec<u8>,
    members: &mut Vec<Member>,
    places: &mut Vec<u16>,
) -> Option<usize> {
    out.clear();
    members.clear();
    places.clear();
    let line = trim_newline(line);
    // A format that does not match leaves the output and the listing empty for the next.
    let n = formats(custom).position(|format| {
        let listing = Listing { members, places };
        format.write_json(line, out, Some(listing))
    })?;
    let custom = usize::from(custom.is_some());
    if n != custom + ENVOY_DEFAULT_AT || !fits_grpc_too(out, members, places) {
        return Some(n);
    }
    // The line fits Envoy's default format with one quoted field appended, with `-` or `OK`
    // as its response flags: Service Connect's gRPC format, whose stream id that field is,
    // fits it whole. The whole fit wins; failing that (more was appended), the default again.
    for at in [SERVICE_CONNECT_GRPC_AT, ENVOY_DEFAULT_AT] {
        out.clear();
        members.clear();
        places.clear();
        let listing = Listing { members, places };
        if builtins()[at].write_json(line, out, Some(listing)) {
            return Some(custom + at);
        }
    }
    None
}

/// Places among [`builtins`].
const ENVOY_DEFAULT_AT: usize = 0;
const SERVICE_CONNECT_GRPC_AT: usize = 5;

/// Whether a line that Envoy's default format matched, as listed, may be a Service Connect
/// gRPC line: something was kept as `extra`, and its response flags are none or `OK`.
fn fits_grpc_too(out: &[u8], members: &[Member], places: &[u16]) -> bool {
    // The default format's members: `prefix`, 15 fields, `extra`.
    const FLAGS: u16 = 6;
    const EXTRA: u16 = 16;
    if places.last() != Some(&EXTRA) {
        return false;
    }
    match places.iter().position(|&p| p == FLAGS) {
        Some(at) => members[at].value.of(out) == br#""OK""#,
        None => true,
    }
}

/// Where a match lists the members it writes, as it writes them: each member's key is known
/// from its place, and its value ends where the output does once it is written.
pub(crate) struct Listing<'m> {
    members: &'m mut Vec<Member>,
    places: &'m mut Vec<u16>,
}

/// The formats [`line_to_json`] tries, in order: the configured one, if any, then the
/// built-in ones.
pub(crate) fn formats(custom: Option<&TextFormat>) -> impl Iterator<Item = &TextFormat> {
    custom.into_iter().chain(builtins())
}

/// The members of an object that [`line_to_json`] wrote, found without reading it as JSON
/// again: in the tests, the check of [`TextFormat::members`].
///
/// Such an object is `{"key":value,...}`, compact, with plain lower-case keys, and values that
/// are unsigned integers or strings whose only escapes are backslash pairs: nothing to check,
/// only ends to find.
#[cfg(test)]
pub(crate) fn members_of(json: &[u8], members: &mut Vec<Member>) {
    members.clear();
    let end = json.len().saturating_sub(1); // the closing `}`
    let mut pos = 1; // a key's opening quote
    while pos < end {
        let key = pos + 1;
        let key_end = key + position(json.get(key..end).unwrap_or_default(), b'"').unwrap_or(0);
        let value = key_end + 2; // after `":`
        let (value_end, kind, value_escaped) = value_at(json, value, end);
        members.push(member(key, key_end, value, value_end, kind, value_escaped));
        pos = value_end + 1; // past the `,`
    }
}

/// The end, kind and escapes of the value at `value` in an object that [`line_to_json`] wrote
/// (and that ends at `end`): a string whose only escapes are backslash pairs, or an unsigned
/// integer.
#[cfg(test)]
fn value_at(json: &[u8], value: usize, end: usize) -> (usize, Kind, bool) {
    match json.get(value) {
        Some(b'"') => {
            let (mut at, mut escaped) = (value + 1, false);
            loop {
                at += scan::find_string_special(json, at);
                if json.get(at) != Some(&b'\\') {
                    break;
                }
                (at, escaped) = (at + 2, true);
            }
            (at + 1, Kind::String, escaped)
        }
        _ => {
            let digits = json.get(value..end).unwrap_or_default();
            let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
            (value + len, Kind::Number, false)
        }
    }
}

#[inline(always)]
fn member(
    key: usize,
    key_end: usize,
    value: usize,
    value_end: usize,
    kind: Kind,
    value_escaped: bool,
) -> Member {
    let span = |start: usize, end: usize| Span {
        start: start as u32,
        end: end as u32,
    };
    Member {
        key: span(key, key_end),
        value: span(value, value_end),
        kind,
        key_escaped: false,
        value_escaped,
    }
}

/// A compiled Envoy format string: literal text and fields, to be matched against log lines.
///
/// Build it once (at config time) with [`TextFormat::parse`], then call [`TextFormat::to_json`]
/// per line; matching a line allocates nothing beyond the growth of `out`.
///
/// ```
/// use envoy_dd::TextFormat;
///
/// let format = TextFormat::parse("%REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% trace=%REQ(X-DATADOG-TRACE-ID)%\n")?;
/// let mut out = Vec::new();
/// assert!(format.to_json(b"GET /users/42 200 trace=4321\n", &mut out));
/// assert_eq!(
///     String::from_utf8(out).unwrap(),
///     r#"{"method":"GET","path":"/users/42","response_code":200,"x_datadog_trace_id":"4321"}"#
/// );
/// # Ok::<(), envoy_dd::FormatError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextFormat {
    /// The format string as given.
    source: String,
    /// Literals and fields; two fields never follow each other.
    pieces: Vec<Piece>,
    /// Envoy's and Istio's built-in formats tolerate a prefix and extra trailing fields; a
    /// user's, and Service Connect's, are matched exactly.
    lenient: bool,
    /// A built-in format: its values are checked, and each field ends where the literal
    /// after it first occurs.
    builtin: bool,
    /// (Lenient formats) a line may end at any literal from this piece on, leaving the
    /// trailing space-separated fields absent.
    optional_from: usize,
    /// What a line's JSON adds to the line's length at most, short of escapes: keys, quotes.
    overhead: usize,
    /// The members [`TextFormat::to_json`] may write, in order ([`TextFormat::member_names`]):
    /// the length of each key as written, quoted and with its colon (`"method":`), and whether
    /// its value is a number.
    member_keys: Vec<(usize, bool)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Field(Field),
}

impl Piece {
    /// A literal of at most eight bytes as a little-endian word, and a mask of its bytes.
    fn word(&self) -> Option<(u64, u64)> {
        let Piece::Literal(literal) = self else {
            return None;
        };
        let mut word = [0; 8];
        word.get_mut(..literal.len())?
            .copy_from_slice(literal.as_bytes());
        let mask = u64::MAX.checked_shr(64 - 8 * literal.len() as u32);
        let mask = mask.unwrap_or_default();
        Some((swar::word(&word, 0), mask))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Field {
    /// The JSON key: lower-case letters, digits and `_`, so it needs no escaping.
    name: String,
    /// `,"name":`, written as it is (the first member's comma becomes the object's `{`).
    member: String,
    /// `member` and a string's opening quote, padded with zeros (if it fits), to be written
    /// by [`Field::write_opening`].
    opening: Option<[u8; OPENING]>,
    /// The literal after the field, if it has at most eight bytes: as a little-endian word, and
    /// a mask of its bytes.
    next: Option<(u64, u64)>,
    /// Codes, byte counts and durations: written as JSON numbers, and a line whose value is
    /// not an unsigned integer (or `-`) does not match.
    numeric: bool,
    /// `:N` after the operator: Envoy cut the value to at most N characters.
    max_len: Option<usize>,
    /// (Built-in formats) not between quotes, so the value contains no space and no `"`.
    spaceless: bool,
    /// (Built-in formats) what the value must be, besides `-`.
    check: Check,
    /// Its place among the format's [`TextFormat::member_names`].
    place: u16,
}

impl TextFormat {
    /// Compiles an Envoy format string, such as the `format.text` of an App Mesh access log or
    /// the `text_format` of an Envoy file access log.
    ///
    /// The syntax is Envoy's: `%OPERATOR%`, `%OPERATOR(ARG)%`, `%OPERATOR(ARG):N%` (N is a
    /// length limit), `%REQ(X?Y)%` (header X, else Y), and `%%` for a literal `%`; everything
    /// else is literal text. A final newline (or the two characters `\n`) is ignored, since
    /// lines are matched without theirs.
    ///
    /// Each field is named after its operator: header operators (`REQ`, `RESP`, `TRAILER`,
    /// their long forms `REQUEST_HEADER`, ..., and `REQ_WITHOUT_QUERY`) by the header, the
    /// alternative one when there are two (`%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%` → `path`,
    /// `%REQ(X-DATADOG-TRACE-ID)%` → `x_datadog_trace_id`); `%ENVIRONMENT(VAR)%` by the
    /// variable; every other operator by itself (`%RESPONSE_CODE%` → `response_code`). A name
    /// that repeats gets `_2`, `_3`, ...
    ///
    /// Fails if the string is not valid Envoy syntax, has no operator, or has two operators
    /// with no text between them (a line could not be split between them).
    ///
    /// ```
    /// use envoy_dd::TextFormat;
    ///
    /// let format = TextFormat::parse(r#"[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%" %DURATION%"#)?;
    /// assert_eq!(format.field_names().collect::<Vec<_>>(), ["start_time", "method", "path", "duration"]);
    ///
    /// let error = TextFormat::parse("%RESPONSE_CODE% %REQ(USER-AGENT %DURATION%").unwrap_err();
    /// assert_eq!(error.position(), 20);
    /// # Ok::<(), envoy_dd::FormatError>(())
    /// ```
    pub fn parse(format: &str) -> Result<TextFormat, FormatError> {
        TextFormat::compile(format, Mode::User)
    }

    /// Envoy's default format, as recognised without configuration: it also accepts a prefix
    /// before the `[` (kept under `prefix`) and extra fields after the last one (kept under
    /// `extra`).
    ///
    /// ```
    /// use envoy_dd::TextFormat;
    ///
    /// let line = br#"ACCESS [2022-08-04T23:00:29.383Z] "GET /ping HTTP/1.1" 200 - 0 0 1 0 "-" "Envoy/HC" "05ba7454" "blue.local:9080" "127.0.0.1:9080""#;
    /// let mut out = Vec::new();
    /// assert!(TextFormat::envoy_default().to_json(line, &mut out));
    /// let out = String::from_utf8(out).unwrap();
    /// assert!(out.starts_with(r#"{"prefix":"ACCESS","start_time":"2022-08-04T23:00:29.383Z","method":"GET","path":"/ping""#));
    /// ```
    pub fn envoy_default() -> &'static TextFormat {
        &builtins()[0]
    }

    /// The format string this was compiled from.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The JSON keys of the fields, in order.
    pub fn field_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.pieces.iter().filter_map(|piece| match piece {
            Piece::Field(field) => Some(field.name.as_str()),
            Piece::Literal(_) => None,
        })
    }

    /// The keys of the members [`TextFormat::to_json`] may write, in the order it writes
    /// them: a lenient format's `prefix`, the fields, and its `extra`.
    pub(crate) fn member_names(&self) -> impl Iterator<Item = &str> + '_ {
        let lenient = |name| self.lenient.then_some(name);
        (lenient("prefix").into_iter())
            .chain(self.field_names())
            .chain(lenient("extra"))
    }

    /// Appends `line` (one log line; a final newline is ignored) to `out` as a JSON object of
    /// its fields, and returns true; or returns false, leaving `out` as it was, if the line
    /// does not match the format (or is not UTF-8).
    ///
    /// Values are strings, except codes, byte counts and durations, which are numbers; a `-`
    /// (Envoy's "no value") is left out.
    pub fn to_json(&self, line: &[u8], out: &mut Vec<u8>) -> bool {
        self.write_json(trim_newline(line), out, None)
    }

    fn compile(format: &str, mode: Mode) -> Result<TextFormat, FormatError> {
        let lenient = mode == Mode::Lenient;
        let body = trim_format_end(format);
        let error = |at: usize, reason: String| FormatError {
            format: format.into(),
            position: at,
            reason,
        };
        let mut pieces: Vec<Piece> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let mut rest = body;
        while !rest.is_empty() {
            let at = body.len() - rest.len();
            let (next, token) = token(rest).map_err(|e| match e {
                Err::Error(stop) | Err::Failure(stop) => {
                    error(body.len() - stop.at.len(), stop.reason.into())
                }
                Err::Incomplete(_) => error(body.len(), "unexpected end".into()),
            })?;
            rest = next;
            match (token, pieces.last_mut()) {
                (Token::Text(text), Some(Piece::Literal(literal))) => literal.push_str(text),
                (Token::Text(text), _) => pieces.push(Piece::Literal(text.into())),
                (Token::Command(_), Some(Piece::Field(_))) => {
                    let reason = "no text separates this operator from the one before, so a line cannot be split between them";
                    return Err(error(at, reason.into()));
                }
                (Token::Command(_), _) if names.len() == MAX_FIELDS => {
                    return Err(error(at, format!("more than {MAX_FIELDS} operators")));
                }
                (Token::Command(command), _) => {
                    let field =
                        Field::new(&command, &mut names).map_err(|reason| error(at, reason))?;
                    pieces.push(Piece::Field(field));
                }
            }
        }
        if names.is_empty() {
            return Err(error(0, "the format has no operator (such as %RESPONSE_CODE%), so there is nothing to parse".into()));
        }
        let fields = pieces.iter().filter_map(|piece| match piece {
            Piece::Field(field) => Some(field.member.len() + 2),
            Piece::Literal(_) => None,
        });
        let overhead = fields.sum::<usize>() + r#"{,"prefix":"",,"extra":""}"#.len();
        // Each field gets the literal after it as a word, to compare at once.
        let words: Vec<_> = pieces.iter().skip(1).map(Piece::word).collect();
        for (piece, next) in pieces.iter_mut().zip(words) {
            if let Piece::Field(field) = piece {
                field.next = next;
            }
        }
        let mut format = TextFormat {
            source: format.into(),
            pieces,
            lenient,
            builtin: mode != Mode::User,
            optional_from: usize::MAX,
            overhead,
            member_keys: Vec::new(),
        };
        // The members a match may write, in the order of `member_names`, each field with its
        // place among them.
        let key = |name: &str, numeric| (name.len() + r#""":"#.len(), numeric);
        format
            .member_keys
            .extend(lenient.then(|| key("prefix", false)));
        for piece in &mut format.pieces {
            if let Piece::Field(field) = piece {
                // Fewer than MAX_FIELDS fields, and `prefix` and `extra`: the place fits.
                field.place = format.member_keys.len() as u16;
                format.member_keys.push(key(&field.name, field.numeric));
            }
        }
        format
            .member_keys
            .extend(lenient.then(|| key("extra", false)));
        if mode != Mode::User {
            format.mark_builtin_fields();
        }
        Ok(format)
    }

    /// Marks the fields of a built-in format that are not between quotes as spaceless, gives
    /// each field its [`Check`], and finds where a lenient format's optional tail of
    /// ` %FIELD%` pairs starts.
    fn mark_builtin_fields(&mut self) {
        let n = self.pieces.len();
        for i in 0..n {
            let quoted =
                |j: Option<usize>, quote_at_end: bool| match j.and_then(|j| self.pieces.get(j)) {
                    Some(Piece::Literal(l)) if quote_at_end => l.ends_with('"'),
                    Some(Piece::Literal(l)) => l.starts_with('"'),
                    _ => false,
                };
            let spaceless = !(quoted(i.checked_sub(1), true) && quoted(Some(i + 1), false));
            if let Piece::Field(field) = &mut self.pieces[i] {
                field.spaceless = spaceless;
                field.check = match field.name.as_str() {
                    "response_flags" => Check::ResponseFlags,
                    "grpc_status" => Check::GrpcStatus,
                    _ => Check::Any,
                };
            }
        }
        if !self.lenient {
            return;
        }
        // Walk back over trailing (" ", field) pairs; the first pair's field stays required.
        let mut from = n;
        while from >= 4 && matches!(&self.pieces[from - 2], Piece::Literal(l) if l == " ") {
            match (&self.pieces[from - 1], &self.pieces[from - 3]) {
                (Piece::Field(a), Piece::Field(b)) if a.spaceless && b.spaceless => from -= 2,
                _ => break,
            }
        }
        self.optional_from = if from < n { from } else { usize::MAX };
    }

    /// Appends the JSON object for `line` (without its newline) to `out`; on a mismatch leaves
    /// `out` as it was and returns false.
    ///
    /// The line is not checked for UTF-8 as a whole: each part of it is, as it is matched
    /// (literals are UTF-8, values are checked unless ASCII), and a match covers the whole
    /// line, so a line that is not UTF-8 matches nothing, without a pass of its own.
    fn write_json(&self, line: &[u8], out: &mut Vec<u8>, listing: Option<Listing>) -> bool {
        let start = out.len();
        let (pos, prefix) = match self.lenient {
            true => match self.prefix(line) {
                Some(found) => found,
                None => return false,
            },
            false => (0, ""),
        };
        out.reserve(line.len() + self.overhead);
        // Every member is written after a comma; the first comma becomes the `{` at the end.
        let extra_place = self.member_keys.len().saturating_sub(1);
        let mut search = Search::new(listing, &self.member_keys, start, extra_place);
        if !prefix.is_empty() {
            let at = out.len();
            let escaped = write_member(out, r#","prefix":"#, prefix);
            search.note(at, out.len(), 0, escaped);
        }
        let body = (out.len(), search.noted());
        // A built-in format keeps fields appended after its last one as `extra`. Where a line
        // splits both with and without them (a quoted value holding `" "`, or quoted fields
        // appended), the split whose earlier fields end first wins, as between any two splits:
        // the first occurrences, then the least backtracking.
        search.restart(self.lenient, body.1);
        // A built-in format's fields end where the literal after them first occurs: a value
        // holding that literal could be split another way too, so such a line is not taken.
        let matched = self.match_first(line, pos, out, &mut search)
            || (!self.builtin && {
                out.truncate(body.0);
                search.restart(self.lenient, body.1);
                self.match_from(line, 0, pos, out, &mut search)
            });
        if !matched {
            out.truncate(start);
            search.forget(0);
            return false;
        }
        match out.get_mut(start) {
            Some(comma) => *comma = b'{',
            None => out.push(b'{'),
        }
        out.push(b'}');
        true
    }

    /// Where a lenient format's first literal is, and the words before it, trimmed
    /// (`ACCESS [2019-08-22T09:14:59.499Z] "GET ...` → `ACCESS`).
    fn prefix<'l>(&self, line: &'l [u8]) -> Option<(usize, &'l str)> {
        let Some(Piece::Literal(first)) = self.pieces.first() else {
            return Some((0, ""));
        };
        let at = find(line, first.as_bytes())?;
        let prefix = core::str::from_utf8(line.get(..at)?).ok()?;
        let ok = at == 0 || (prefix.ends_with(' ') && !prefix.contains('"'));
        ok.then(|| (at, prefix.trim()))
    }

    /// The first match that [`TextFormat::match_from`] tries, without its recursion: each
    /// field ends where the literal after it first occurs. Most lines match so; for the others
    /// this returns false, and `match_from` searches in full.
    fn match_first(&self, line: &[u8], pos: usize, out: &mut Vec<u8>, search: &mut Search) -> bool {
        let mut rest = line.get(pos..).unwrap_or_default();
        let mut pieces = self.pieces.as_slice();
        loop {
            let i = self.pieces.len() - pieces.len();
            match pieces {
                [] => break,
                [Piece::Literal(_), ..] if rest.is_empty() && i >= self.optional_from => break,
                [Piece::Literal(literal), tail @ ..] if has_prefix(rest, literal.as_bytes()) => {
                    rest = rest.get(literal.len()..).unwrap_or_default();
                    pieces = tail;
                }
                [Piece::Literal(_), ..] => return false,
                [Piece::Field(field)] => {
                    let at = out.len();
                    match rest.split_at_checked(self.last_len(rest)) {
                        Some((value, after)) if field.write(value, out) => {
                            field.note(at, value.len(), out, search);
                            rest = after;
                        }
                        _ => return false,
                    }
                    break;
                }
                [Piece::Field(field), Piece::Literal(next), tail @ ..] => {
                    let next = next.as_bytes();
                    let mark = out.len();
                    // Most values are plain: copied while their end is sought, then checked.
                    field.write_opening(out);
                    let stop = next.first().copied().unwrap_or(b'"');
                    let len = copy_plain(rest, stop, field.spaceless, out);
                    let (value, after) = rest.split_at_checked(len).unwrap_or_default();
                    // No byte before `len` starts `next`: this is its first occurrence.
                    if starts_with(after, next, field.next) && field.check_plain(value, mark, out) {
                        field.note(mark, value.len(), out, search);
                        rest = after.get(next.len()..).unwrap_or_default();
                        pieces = tail;
                        continue;
                    }
                    // Something to escape, or to check, first: the general way.
                    out.truncate(mark);
                    let Some(end) = self.next_end(i, field, rest, len, next) else {
                        return false;
                    };
                    match rest.split_at_checked(end) {
                        Some((value, after)) if field.write(value, out) => {
                            field.note(mark, value.len(), out, search);
                            rest = after;
                        }
                        _ => return false,
                    }
                    // The line stops before the optional trailing fields.
                    if rest.is_empty() {
                        break;
                    }
                    rest = rest.get(next.len()..).unwrap_or_default();
                    pieces = tail;
                }
                // Never: `compile` rejects two fields in a row.
                [Piece::Field(_), Piece::Field(_), ..] => return false,
            }
        }
        finish(rest, out, search)
    }

    /// Matches pieces `i..` against `line[pos..]`, appending members to `out`. A field ends at
    /// the first occurrence of the literal after it that lets the rest of the line match too,
    /// so a value may contain that literal. Recurses once per field, to try the next
    /// occurrence when the rest does not match.
    fn match_from(
        &self,
        line: &[u8],
        mut i: usize,
        mut pos: usize,
        out: &mut Vec<u8>,
        search: &mut Search,
    ) -> bool {
        let field = loop {
            let rest = line.get(pos..).unwrap_or_default();
            match self.pieces.get(i) {
                Some(Piece::Field(field)) => break field,
                Some(Piece::Literal(_)) if rest.is_empty() && i >= self.optional_from => {
                    return finish(line.get(pos..).unwrap_or_default(), out, search)
                }
                Some(Piece::Literal(literal)) if has_prefix(rest, literal.as_bytes()) => {
                    pos += literal.len();
                    i += 1;
                }
                Some(Piece::Literal(_)) => return false,
                None => return finish(line.get(pos..).unwrap_or_default(), out, search),
            }
        };
        let rest = line.get(pos..).unwrap_or_default();
        let Some(Piece::Literal(next)) = self.pieces.get(i + 1) else {
            let len = self.last_len(rest);
            let at = out.len();
            let Some(value) = rest.get(..len).filter(|value| field.write(value, out)) else {
                return false;
            };
            field.note(at, value.len(), out, search);
            return finish(line.get(pos + len..).unwrap_or_default(), out, search);
        };
        let next = next.as_bytes();
        let mark = (out.len(), search.noted());
        let mut from = 0;
        loop {
            let Some(end) = self.next_end(i, field, rest, from, next) else {
                return false;
            };
            let Some(value) = rest.get(..end) else {
                return false;
            };
            if field.write(value, out) {
                field.note(mark.0, value.len(), out, search);
                // `find` saw `next` at `end` (or the line ends there): go on after it.
                if end == rest.len() {
                    return finish(line.get(pos + end..).unwrap_or_default(), out, search);
                }
                if self.match_from(line, i + 2, pos + end + next.len(), out, search) {
                    return true;
                }
                out.truncate(mark.0);
                search.forget(mark.1);
            } else if !value.is_empty() {
                // A longer value would fail the same check (a space, a non-digit, the length,
                // bytes that are not UTF-8).
                return false;
            }
            if end == rest.len() || search.retries == 0 {
                return false;
            }
            search.retries -= 1;
            from = end + 1;
        }
    }

    /// Where the value of field `i` in `rest` may end, from `from` on: at the next occurrence of
    /// `next`, the literal after the field, or, if the line may stop before the optional
    /// trailing fields, at the end of the line.
    fn next_end(
        &self,
        i: usize,
        field: &Field,
        rest: &[u8],
        from: usize,
        next: &[u8],
    ) -> Option<usize> {
        // A spaceless value cannot reach past a space, and a longer one would fail the same
        // check: `next` is sought no further than that (on lines that do not match, the
        // search is otherwise the length of the line, for each format tried).
        let limit = match field.spaceless {
            true => position(rest, b' ').map_or(rest.len(), |at| rest.len().min(at + next.len())),
            false => rest.len(),
        };
        match find(rest.get(from..limit).unwrap_or_default(), next) {
            Some(n) => Some(from + n),
            None if i + 1 >= self.optional_from => Some(rest.len()),
            None => None,
        }
    }

    /// The length of the last piece's value, a field's, in `rest`. A lenient format keeps what
    /// follows its first word as `extra`.
    fn last_len(&self, rest: &[u8]) -> usize {
        match self.lenient {
            true => position(rest, b' ').unwrap_or(rest.len()),
            false => rest.len(),
        }
    }
}

/// The state of one line's match.
struct Search<'m> {
    /// Retries left when a field's value turns out to contain the literal after it.
    retries: u32,
    /// Text after the last piece is allowed (lenient formats).
    extra: bool,
    /// The members written so far, if the caller wants them, and where the object starts.
    listing: Option<Listing<'m>>,
    start: usize,
    /// The format's [`TextFormat::member_keys`].
    member_keys: &'m [(usize, bool)],
    /// The place of `extra` among the format's member names.
    extra_place: u16,
}

impl<'m> Search<'m> {
    fn new(
        listing: Option<Listing<'m>>,
        member_keys: &'m [(usize, bool)],
        start: usize,
        extra_place: usize,
    ) -> Search<'m> {
        Search {
            retries: RETRIES,
            extra: false,
            listing,
            start,
            member_keys,
            extra_place: extra_place as u16,
        }
    }

    /// Starts a match again, with the members noted before it starts (the `prefix`).
    fn restart(&mut self, extra: bool, noted: usize) {
        (self.retries, self.extra) = (RETRIES, extra);
        self.forget(noted);
    }

    /// Notes the member the output holds from `at` to `end`: `,"name":value`, the key known
    /// from its `place`.
    #[inline]
    fn note(&mut self, at: usize, end: usize, place: u16, escaped: bool) {
        if let Some(listing) = self.listing.as_mut() {
            let (key_len, numeric) = self.member_keys[place as usize];
            let at = at - self.start;
            // The key inside the quotes, the value after the colon.
            let value = at + 1 + key_len;
            let kind = if numeric { Kind::Number } else { Kind::String };
            let end = end - self.start;
            let member = member(at + 2, value - 2, value, end, kind, escaped);
            listing.members.push(member);
            listing.places.push(place);
        }
    }

    /// How many members are noted.
    fn noted(&self) -> usize {
        self.listing.as_ref().map_or(0, |l| l.members.len())
    }

    /// Forgets the members noted after the first `noted` (the output was cut back).
    fn forget(&mut self, noted: usize) {
        if let Some(listing) = self.listing.as_mut() {
            listing.members.truncate(noted);
            listing.places.truncate(noted);
        }
    }
}

/// After the last piece, at `rest` of the line: keeps further space-separated text (Istio and
/// others append their own fields) under `extra` when allowed.
fn finish(rest: &[u8], out: &mut Vec<u8>, search: &mut Search) -> bool {
    if !rest.is_empty() {
        let Some(extra) = rest.strip_prefix(b" ") else {
            return false;
        };
        if !search.extra {
            return false;
        }
        let Ok(extra) = core::str::from_utf8(extra) else {
            return false;
        };
        let extra = extra.trim();
        if !extra.is_empty() {
            let (at, place) = (out.len(), search.extra_place);
            let escaped = write_member(out, r#","extra":"#, extra);
            search.note(at, out.len(), place, escaped);
        }
    }
    true
}

impl FromStr for TextFormat {
    type Err = FormatError;

    /// Same as [`TextFormat::parse`].
    fn from_str(format: &str) -> Result<Self, Self::Err> {
        TextFormat::parse(format)
    }
}

impl Field {
    fn new(command: &Command<'_>, names: &mut Vec<String>) -> Result<Field, String> {
        let op = command.name;
        let header = HEADER_OPERATORS.contains(&op);
        let arg = command.arg.filter(|a| !a.is_empty());
        if (header || op == "ENVIRONMENT") && arg.is_none() {
            let example = if header { "USER-AGENT" } else { "HOSTNAME" };
            return Err(format!(
                "%{op}% needs an argument in parentheses, as in %{op}({example})%"
            ));
        }
        if header && arg.is_some_and(|a| a.matches('?').count() > 1) {
            return Err(format!(
                "%{op}(...)% takes one header and at most one alternative (`X?Y`)"
            ));
        }
        let max_len = match command.max_len {
            Some(digits) => Some(
                digits
                    .parse::<usize>()
                    .map_err(|_| format!("the length :{digits} is too large"))?,
            ),
            None => None,
        };
        // `%REQ(X?Y)%` logs X, else Y: name it after Y, the more general header.
        let named_by_arg = match arg {
            Some(arg) if header => arg.rsplit('?').next(),
            Some(arg) if op == "ENVIRONMENT" => Some(arg),
            _ => None,
        };
        let base = named_by_arg
            .map(snake_case)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| snake_case(op));
        let mut name = base.clone();
        let mut n = 1;
        while names.contains(&name) {
            n += 1;
            name = format!("{base}_{n}");
        }
        names.push(name.clone());
        let member = format!(",\"{name}\":");
        let mut opening = [0; OPENING];
        let fits = opening.get_mut(..member.len() + 1).map(|block| {
            block.copy_from_slice(format!("{member}\"").as_bytes());
        });
        Ok(Field {
            opening: fits.map(|()| opening),
            next: None,
            member,
            name,
            numeric: is_numeric(op, arg),
            max_len,
            spaceless: false,
            check: Check::Any,
            place: 0,
        })
    }

    /// Notes the member that was written from `at` on for a value of `raw` bytes, if one was
    /// (not for `-`). A string value with escapes is longer than its bytes and two quotes.
    #[inline(always)]
    fn note(&self, at: usize, raw: usize, out: &[u8], search: &mut Search) {
        if out.len() > at {
            let escaped = !self.numeric && out.len() - at != self.member.len() + raw + 2;
            search.note(at, out.len(), self.place, escaped);
        }
    }

    /// Writes `,"name":`, and the opening quote if the value is a string.
    #[inline(always)]
    fn write_opening(&self, out: &mut Vec<u8>) {
        let len = self.member.len() + !self.numeric as usize;
        match &self.opening {
            // One fixed-size copy, then cut: cheaper than a call to `memcpy` for a few bytes.
            Some(block) => {
                let at = out.len();
                out.extend_from_slice(block);
                out.truncate(at + len);
            }
            None => {
                out.extend_from_slice(self.member.as_bytes());
                if !self.numeric {
                    out.push(b'"');
                }
            }
        }
    }

    /// Writes the member for `value` (`,"name":value`) and returns true, or returns false if
    /// the value cannot come from this field.
    fn write(&self, value: &[u8], out: &mut Vec<u8>) -> bool {
        if self.spaceless && value.iter().any(|&b| b == b' ' || b == b'"') {
            return false;
        }
        if !self.check.allows(value) {
            return false;
        }
        // The line's UTF-8 is checked here, value by value.
        let Ok(text) = core::str::from_utf8(value) else {
            return false;
        };
        if let Some(max) = self.max_len {
            // Envoy counts bytes or characters depending on the version; accept either.
            if value.len() > max && text.chars().count() > max {
                return false;
            }
        }
        match value {
            b"-" => true,
            _ if self.numeric => {
                let ok = is_unsigned_integer(value);
                if ok {
                    out.extend_from_slice(self.member.as_bytes());
                    out.extend_from_slice(value);
                }
                ok
            }
            _ => {
                write_member(out, &self.member, text);
                true
            }
        }
    }

    /// After [`Field::write_opening`] and [`copy_plain`] wrote `value` (a plain one) from `mark` on,
    /// checks the value as [`Field::write`] does and finishes its member (or drops it, for
    /// `-`); or returns false if the value cannot come from this field.
    #[inline(always)]
    fn check_plain(&self, value: &[u8], mark: usize, out: &mut Vec<u8>) -> bool {
        if self.max_len.is_some_and(|max| value.len() > max) || !self.check.allows(value) {
            return false;
        }
        match value {
            b"-" => out.truncate(mark),
            _ if self.numeric => return is_unsigned_integer(value),
            _ => out.push(b'"'),
        }
        true
    }
}

/// What the value of a built-in format's field must be, besides `-`: what tells formats with
/// the same shape apart (Envoy's default and Service Connect's gRPC format).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    Any,
    /// `%RESPONSE_FLAGS%`: short codes of capital letters joined by `,` (unknown codes too,
    /// as extensions register their own). Of the gRPC statuses only `OK` looks so, which
    /// [`line_to_json`] sees to.
    ResponseFlags,
    /// `%GRPC_STATUS()%`: a status name ([`GRPC_STATUS_NAMES`]) or code.
    GrpcStatus,
}

impl Check {
    #[inline]
    fn allows(self, value: &[u8]) -> bool {
        match self {
            _ if value == b"-" => true,
            Check::Any => true,
            Check::ResponseFlags => value.iter().all(|&b| b.is_ascii_uppercase() || b == b','),
            Check::GrpcStatus => grpc_status_code(value).is_some(),
        }
    }
}

/// The code of a gRPC status as Envoy logs it: a name of [`GRPC_STATUS_NAMES`] (or its
/// `SNAKE_STRING` form), or the code itself (`NUMBER`).
pub(crate) fn grpc_status_code(value: &[u8]) -> Option<u8> {
    if let Some(code) = crate::number::decimal(value).filter(|_| !value.is_empty()) {
        return (code <= 16 && is_unsigned_integer(value)).then_some(code as u8);
    }
    let snake = |name: &str, value: &[u8]| {
        let mut letters = value.iter().filter(|&&b| b != b'_');
        name.len() == value.iter().filter(|&&b| b != b'_').count()
            && name
                .bytes()
                .all(|c| letters.next() == Some(&c.to_ascii_uppercase()))
            && value.iter().all(|&b| b.is_ascii_uppercase() || b == b'_')
    };
    let at = GRPC_STATUS_NAMES.iter().position(|name| {
        name.as_bytes() == value
            || snake(name, value)
            || (*name == "Canceled" && value == b"CANCELLED")
    })?;
    Some(at as u8)
}

/// Operators whose value is a number: codes, byte counts, durations in milliseconds, ports
/// and connection ids (the ones Envoy renders as numbers in typed JSON logs).
fn is_numeric(op: &str, arg: Option<&str>) -> bool {
    match op {
        // `%GRPC_STATUS(NUMBER)%` is `%GRPC_STATUS_NUMBER%`; the other forms are names.
        "GRPC_STATUS" => arg == Some("NUMBER"),
        "RESPONSE_CODE"
        | "GRPC_STATUS_NUMBER"
        | "DOWNSTREAM_REMOTE_PORT"
        | "CONNECTION_ID"
        | "UPSTREAM_REQUEST_ATTEMPT_COUNT"
        | "PACKETS_RETRANSMITTED" => true,
        // Its unit is configurable and it can be negative.
        "COMMON_DURATION" => false,
        _ => op == "DURATION" || op.ends_with("_DURATION") || op.contains("BYTES"),
    }
}

/// `0` or digits without a leading zero: a JSON number as Envoy prints these values.
fn is_unsigned_integer(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(u8::is_ascii_digit) && (b[0] != b'0' || b.len() == 1)
}

/// `X-ENVOY-UPSTREAM-SERVICE-TIME` → `x_envoy_upstream_service_time`, `:AUTHORITY` → `authority`.
fn snake_case(s: &str) -> String {
    let mut name = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c.to_ascii_lowercase());
        } else if !name.is_empty() && !name.ends_with('_') {
            name.push('_');
        }
    }
    while name.ends_with('_') {
        name.pop();
    }
    name
}

/// Writes `member` (`,"key":`) and `value` as a JSON string, copied as it is when it needs no
/// escapes. Returns whether it needed escapes.
fn write_member(out: &mut Vec<u8>, member: &str, value: &str) -> bool {
    out.extend_from_slice(member.as_bytes());
    let plain = scan::find_string_special(value.as_bytes(), 0) == value.len();
    if plain {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else {
        write::string(out, value);
    }
    !plain
}

/// The first occurrence of `needle` (not empty) in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, tail) = needle.split_first()?;
    let mut from = 0;
    while let Some(i) = position(haystack.get(from..)?, first) {
        let at = from + i;
        if has_prefix(haystack.get(at + 1..)?, tail) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Copies `bytes` to `out` up to the first `stop` or byte that a plain value does not have:
/// `"`, `\\`, a control character, a non-ASCII byte (its UTF-8 to check) or, if `spaceless`,
/// a space; returns how many bytes it copied. A plain value needs no checks of its bytes and
/// is written as it is: one pass finds its end and copies it.
///
/// A chunk at a time ([`scan::value_specials`]): each chunk is copied whole, and the bytes
/// from the first hit on are dropped again.
#[inline(always)]
fn copy_plain(bytes: &[u8], stop: u8, spaceless: bool, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    let below = if spaceless { b'!' } else { b' ' };
    // Bytes from 0x80 are sought anyway, a non-ASCII `stop` with them.
    let stop = if stop.is_ascii() { stop } else { b'"' };
    // Values are short: a loop without set-up.
    let mut rest = bytes;
    while let Some((chunk, after)) = rest.split_first_chunk::<{ scan::CHUNK }>() {
        let hits = scan::value_specials(chunk, stop, below);
        out.extend_from_slice(chunk);
        if hits != 0 {
            let len = out.len() - scan::CHUNK + scan::first(hits);
            out.truncate(len);
            return len - start;
        }
        rest = after;
    }
    if let Some((word, after)) = rest.split_first_chunk::<8>() {
        let hits = swar::value_specials_in_word(swar::word(word, 0), stop, below);
        out.extend_from_slice(word);
        if hits != 0 {
            let len = out.len() - 8 + swar::first(hits);
            out.truncate(len);
            return len - start;
        }
        rest = after;
    }
    for &b in rest {
        if b == stop || b < below || matches!(b, b'"' | b'\\' | 0x80..) {
            break;
        }
        out.push(b);
    }
    out.len() - start
}

/// `bytes` starts with `literal`, whose [`Piece::word`] is `word`: compared at once when
/// eight bytes are at hand.
#[inline(always)]
fn starts_with(bytes: &[u8], literal: &[u8], word: Option<(u64, u64)>) -> bool {
    match word {
        Some((word, mask)) if bytes.len() >= 8 => (swar::word(bytes, 0) ^ word) & mask == 0,
        _ => has_prefix(bytes, literal),
    }
}

/// `haystack` starts with `needle`, compared inline: literals are a few bytes, too short for
/// a call to `memcmp` to pay off.
#[inline]
fn has_prefix(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.len() >= needle.len() && haystack.iter().zip(needle).all(|(a, b)| a == b)
}

fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Drops the newline that ends a format string, whether real or written as `\n`.
fn trim_format_end(format: &str) -> &str {
    let mut format = format;
    while let Some(rest) = ["\n", "\r", "\\n", "\\r"]
        .iter()
        .find_map(|end| format.strip_suffix(end))
    {
        format = rest;
    }
    format
}

/// Why a format string was rejected, and where.
///
/// Its [`Display`](fmt::Display) shows the reason, then the format with a caret under the
/// position:
///
/// ```
/// use envoy_dd::TextFormat;
///
/// let error = TextFormat::parse("%RESPONSE_CODE% %req(:path)%").unwrap_err();
/// assert_eq!(error.position(), 16);
/// assert_eq!(
///     error.to_string(),
///     "invalid Envoy format at byte 16: expected an operator name (A-Z, 0-9, _) after `%`; write `%%` for a literal `%`\n  \
///      %RESPONSE_CODE% %req(:path)%\n                  ^"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatError {
    format: String,
    position: usize,
    reason: String,
}

impl FormatError {
    /// Byte offset in the format string where the problem is.
    pub fn position(&self) -> usize {
        self.position
    }

    /// What is wrong, in words.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid Envoy format at byte {}: {}",
            self.position, self.reason
        )?;
        // The format on one line (control characters shown as spaces) and a caret below.
        let shown: String = self
            .format
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let column = self
            .format
            .get(..self.position)
            .map_or(0, |s| s.chars().count());
        write!(f, "\n  {shown}\n  {:column$}^", "")
    }
}

impl std::error::Error for FormatError {}

// The format-string grammar (Envoy's `SubstitutionFormatParser`), in nom.

/// One piece of a format string as written.
enum Token<'a> {
    Text(&'a str),
    Command(Command<'a>),
}

/// `%NAME(ARG):MAX_LEN%`.
struct Command<'a> {
    name: &'a str,
    arg: Option<&'a str>,
    max_len: Option<&'a str>,
}

/// Where parsing stopped, and why in words.
struct Stop<'a> {
    at: &'a str,
    reason: &'static str,
}

impl<'a> ParseError<&'a str> for Stop<'a> {
    fn from_error_kind(at: &'a str, _: ErrorKind) -> Self {
        Stop {
            at,
            reason: "unexpected text",
        }
    }

    fn append(_: &'a str, _: ErrorKind, other: Self) -> Self {
        other
    }
}

type Parsed<'a, T> = IResult<&'a str, T, Stop<'a>>;

/// Runs `parser`; if it does not match, fails for good, saying `reason` at that point.
fn expect<'a, T>(
    reason: &'static str,
    mut parser: impl Parser<&'a str, Output = T, Error = Stop<'a>>,
) -> impl FnMut(&'a str) -> Parsed<'a, T> {
    move |input| {
        parser.parse(input).map_err(|e| match e {
            Err::Error(_) => Err::Failure(Stop { at: input, reason }),
            e => e,
        })
    }
}

fn token(input: &str) -> Parsed<'_, Token<'_>> {
    alt((
        map(take_till1(|c| c == '%'), Token::Text),
        map(tag("%%"), |_| Token::Text("%")),
        map(command, Token::Command),
    ))
    .parse(input)
}

fn command(input: &str) -> Parsed<'_, Command<'_>> {
    let name_char = |c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_';
    let (rest, _) = char('%').parse(input)?;
    let (rest, name) = take_while1(name_char)
        .parse(rest)
        .map_err(|_: Err<Stop<'_>>| {
            // Point at the `%` itself: most often it was meant as a literal.
            let reason =
                "expected an operator name (A-Z, 0-9, _) after `%`; write `%%` for a literal `%`";
            Err::Failure(Stop { at: input, reason })
        })?;
    let (rest, arg) = opt(argument).parse(rest)?;
    let (rest, max_len) = opt(preceded(
        char(':'),
        expect("expected a length (digits) after `:`", digit1),
    ))
    .parse(rest)?;
    let (rest, _) = expect("expected `%` to end the operator", char('%'))(rest)?;
    Ok((rest, Command { name, arg, max_len }))
}

/// `:N%` or `%`, as after an argument.
fn command_end(input: &str) -> Parsed<'_, (Option<&str>, char)> {
    pair(opt(preceded(char(':'), digit1)), char('%')).parse(input)
}

/// `(ARG)`. Like Envoy's `\((.*?)\)`, the argument ends at the first `)` followed by `%` or
/// `:N%`, so it may contain `%` and `)`: `%START_TIME(%s.%3f)%`.
fn argument(input: &str) -> Parsed<'_, &str> {
    let (body, _) = char('(').parse(input)?;
    // A `):` that no length follows, if no `)` ends the argument: most likely a bad length.
    let mut bad_length = None;
    for (at, _) in body.match_indices(')') {
        let after = &body[at + 1..];
        if command_end(after).is_ok() {
            return Ok((after, &body[..at]));
        }
        if let (Some(length), None) = (after.strip_prefix(':'), bad_length) {
            bad_length = Some(length);
        }
    }
    Err(Err::Failure(match bad_length {
        Some(at) => Stop {
            at,
            reason: "expected a length (digits) after `:`, then `%`",
        },
        None => Stop {
            at: input,
            reason: "this `(` is not closed by `)` and then `%`",
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn json(format: &TextFormat, line: &str) -> Option<String> {
        let mut out = Vec::new();
        format
            .to_json(line.as_bytes(), &mut out)
            .then(|| String::from_utf8(out).unwrap())
    }

    #[test]
    fn members_of_matched_lines() {
        let mut members = vec![];
        members_of(b"{}", &mut members);
        assert!(members.is_empty());
        // A value may end in `,` (so `,"` is no sign of a member) or in an escaped backslash.
        let json = br#"{"a":",","b":1,"c":"x\"y\\","d":"-"}"#;
        members_of(json, &mut members);
        let spans: Vec<_> = members
            .iter()
            .map(|m| (m.key.of(json), m.value.of(json), m.value_escaped))
            .collect();
        let expected: [(&[u8], &[u8], bool); 4] = [
            (b"a", br#"",""#, false),
            (b"b", b"1", false),
            (b"c", br#""x\"y\\""#, true),
            (b"d", br#""-""#, false),
        ];
        assert_eq!(spans, expected);
    }

    #[test]
    fn builtins_compile() {
        let [envoy, istio, legacy, http, http2, grpc, tcp] = builtins();
        assert_eq!(envoy.field_names().count(), 15);
        assert_eq!(istio.field_names().count(), 24);
        assert_eq!(legacy.field_names().count(), 22);
        assert_eq!(envoy.optional_from, usize::MAX);
        assert!(istio.optional_from < istio.pieces.len());
        assert_eq!(http.field_names().count(), 14);
        assert_eq!(http2.field_names().count(), 15);
        assert_eq!(grpc.field_names().count(), 16);
        assert_eq!(tcp.field_names().count(), 8);
        for format in [http, http2, grpc, tcp] {
            assert!(!format.lenient);
            assert_eq!(format.optional_from, usize::MAX);
        }
    }

    #[test]
    fn default_format_names() {
        let names: Vec<_> = TextFormat::envoy_default().field_names().collect();
        assert_eq!(
            names,
            [
                "start_time",
                "method",
                "path",
                "protocol",
                "response_code",
                "response_flags",
                "bytes_received",
                "bytes_sent",
                "duration",
                "x_envoy_upstream_service_time",
                "x_forwarded_for",
                "user_agent",
                "x_request_id",
                "authority",
                "upstream_host"
            ]
        );
    }

    #[test]
    fn long_operator_names_mean_the_same() {
        let long = ENVOY_DEFAULT
            .replace("%REQ(", "%REQUEST_HEADER(")
            .replace("%RESP(", "%RESPONSE_HEADER(");
        let long = TextFormat::parse(&long).unwrap();
        assert!(long
            .field_names()
            .eq(TextFormat::envoy_default().field_names()));
    }

    #[test]
    fn tokens_follow_envoy() {
        let f =
            TextFormat::parse("%START_TIME(%Y/%m/%d %s)% 100%% %REQ(USER-AGENT):10% %CEL(f(x))%");
        let shown: Vec<String> = f
            .unwrap()
            .pieces
            .iter()
            .map(|piece| match piece {
                Piece::Literal(text) => format!("{text:?}"),
                Piece::Field(f) => {
                    format!("{} {} {:?} {}", f.member, f.numeric, f.max_len, f.spaceless)
                }
            })
            .collect();
        let want = [
            r#","start_time": false None false"#,
            r#"" 100% ""#,
            r#","user_agent": false Some(10) false"#,
            r#"" ""#,
            r#","cel": false None false"#,
        ];
        assert_eq!(shown, want);
    }

    #[test]
    fn names() {
        let f = TextFormat::parse(
            "%REQ(x-b3-traceid)% %RESP(:status)% %ENVIRONMENT(GIT_COMMIT_SHA)% %DYNAMIC_METADATA(a:b)% %REQ(:PATH)% %REQ_WITHOUT_QUERY(X-ENVOY-ORIGINAL-PATH?:PATH)%",
        )
        .unwrap();
        let names: Vec<_> = f.field_names().collect();
        assert_eq!(
            names,
            [
                "x_b3_traceid",
                "status",
                "git_commit_sha",
                "dynamic_metadata",
                "path",
                "path_2"
            ]
        );
    }

    #[test]
    fn errors_have_positions() {
        let cases = [
            ("%RESPONSE_CODE% %", 16, "operator name"),
            ("%RESPONSE_CODE% 100%", 19, "operator name"),
            ("%req(:path)%", 0, "operator name"),
            ("x %REQ(USER-AGENT %DURATION%", 6, "not closed"),
            ("%REQ% x", 0, "needs an argument"),
            ("x %REQ(A?B?C)%", 2, "one alternative"),
            ("%REQ(A):% x", 8, "length"),
            ("%REQ(USER-AGENT):abc%", 17, "length"),
            ("%REQ(A):-1%", 8, "length"),
            ("%REQ(A)x%", 4, "not closed"),
            ("%DURATION:x%", 10, "length"),
            ("%DURATION x", 9, "`%` to end"),
            ("%DURATION%%BYTES_SENT%", 10, "separates"),
            ("just text", 0, "no operator"),
            ("", 0, "no operator"),
            ("%REQ(A):99999999999999999999999% x", 0, "too large"),
        ];
        for (format, position, reason) in cases {
            let e = TextFormat::parse(format).unwrap_err();
            assert_eq!(
                (e.position(), e.reason().contains(reason)),
                (position, true),
                "{format:?}: {e}"
            );
        }
    }

    #[test]
    fn caret_points_at_position() {
        let e = TextFormat::parse("é %BAD").unwrap_err();
        let shown = e.to_string();
        let lines: Vec<_> = shown.lines().collect();
        assert_eq!(lines[1], "  é %BAD");
        assert_eq!(e.position(), "é %BAD".len());
        assert_eq!(
            lines[2],
            format!("  {}^", " ".repeat("é %BAD".chars().count()))
        );
    }

    #[test]
    fn format_newline_is_ignored() {
        let a = TextFormat::parse("%RESPONSE_CODE% x\n").unwrap();
        let b = TextFormat::parse("%RESPONSE_CODE% x\\n").unwrap();
        assert_eq!(a.pieces, b.pieces);
        assert_eq!(
            json(&a, "200 x\n").as_deref(),
            Some(r#"{"response_code":200}"#)
        );
        assert_eq!(
            json(&a, "200 x\r\n").as_deref(),
            Some(r#"{"response_code":200}"#)
        );
    }

    #[test]
    fn values_are_typed_and_checked() {
        let f = TextFormat::parse("%RESPONSE_CODE% %DURATION% %REQ(A):3% %REQ(B)%").unwrap();
        assert_eq!(
            json(&f, "200 - abc x y").as_deref(),
            Some(r#"{"response_code":200,"a":"abc","b":"x y"}"#)
        );
        assert_eq!(
            json(&f, "0 12 - \"q\"\t").as_deref(),
            Some(r#"{"response_code":0,"duration":12,"b":"\"q\"\t"}"#)
        );
        assert_eq!(json(&f, "2OO 1 a b"), None); // not a number
        assert_eq!(json(&f, "200 012 a b"), None); // leading zero
        assert_eq!(json(&f, "200 1 abcd b"), None); // longer than :3
        assert_eq!(json(&f, "200 1 a"), None); // missing field
        assert_eq!(
            json(&f, "200 1 a b"),
            Some(r#"{"response_code":200,"duration":1,"a":"a","b":"b"}"#.into())
        );
    }

    #[test]
    fn user_formats_are_exact() {
        let f = TextFormat::parse("[%START_TIME%] %RESPONSE_CODE%.").unwrap();
        assert_eq!(
            json(&f, "[t] 200."),
            Some(r#"{"start_time":"t","response_code":200}"#.into())
        );
        assert_eq!(json(&f, "[t] 200. more"), None);
        assert_eq!(json(&f, "x [t] 200."), None);
    }

    #[test]
    fn values_may_contain_the_next_literal() {
        let f =
            TextFormat::parse("BlueTestLog:%LOCAL_REPLY_BODY%:%RESPONSE_CODE%:path=%REQ(:path)%")
                .unwrap();
        assert_eq!(
            json(
                &f,
                "BlueTestLog:reset reason: connection failure:503:path=/a:b"
            )
            .as_deref(),
            Some(
                r#"{"local_reply_body":"reset reason: connection failure","response_code":503,"path":"/a:b"}"#
            )
        );
        let f = TextFormat::parse("%REQ(:METHOD)% %REQ(USER-AGENT)% %DURATION%").unwrap();
        assert_eq!(
            json(&f, "GET Mozilla/5.0 (X11; Linux) Gecko 12").as_deref(),
            Some(r#"{"method":"GET","user_agent":"Mozilla/5.0 (X11; Linux) Gecko","duration":12}"#)
        );
        // The search is bounded: a line that would need more retries does not match.
        let long = format!("GET {}x 12", "a ".repeat(RETRIES as usize + 2));
        assert_eq!(json(&f, &long), None);
    }

    #[test]
    fn too_many_operators() {
        let format = "%PROTOCOL% ".repeat(MAX_FIELDS + 1);
        let e = TextFormat::parse(&format).unwrap_err();
        assert_eq!(e.position(), MAX_FIELDS * "%PROTOCOL% ".len());
    }

    #[test]
    fn not_utf8_does_not_match() {
        let mut out = b"kept".to_vec();
        assert!(!TextFormat::parse("%PROTOCOL% x")
            .unwrap()
            .to_json(b"\xff x", &mut out));
        assert_eq!(out, b"kept");
    }

    #[test]
    fn find_literals() {
        assert_eq!(find(b"a\" \"b\" \"c", b"\" \""), Some(1));
        assert_eq!(find(b"abc", b"c"), Some(2));
        assert_eq!(find(b"ab", b"bc"), None);
        assert_eq!(find(b"", b" "), None);
        let long: Vec<u8> = (0..200u8).collect();
        for at in 0..200u8 {
            assert_eq!(position(&long, at), Some(at as usize));
            assert_eq!(position(&long[..at as usize], at), None);
        }
        assert_eq!(position(b"\x80\x00\x01\x80 ", b' '), Some(4));
    }

    /// Lines in `format`: its literals, with values of every kind in its fields (plain,
    /// quoted, with spaces, with the next literal inside, `-`, junk in numbers), mostly ones
    /// that fit, so that many lines match.
    fn lines_of(
        format: &'static TextFormat,
    ) -> impl Strategy<Value = (&'static TextFormat, Vec<u8>)> {
        let values: Vec<BoxedStrategy<String>> = format
            .pieces
            .iter()
            .map(|piece| match piece {
                Piece::Literal(literal) => Just(literal.clone()).boxed(),
                Piece::Field(field) if field.numeric => prop_oneof![
                    28 => "[0-9]{1,5}",
                    1 => Just("-".to_string()),
                    1 => "[a-z0-9 .]{0,3}",
                ]
                .boxed(),
                Piece::Field(_) => prop_oneof![
                    24 => "[a-z0-9./:_-]{1,12}",
                    2 => "[a-zA-Z0-9 \"/:,.é\\\\-]{0,16}",
                    1 => Just("-".to_string()),
                    1 => Just("\" \"".to_string()),
                ]
                .boxed(),
            })
            .collect();
        values.prop_map(move |parts| (format, parts.concat().into_bytes()))
    }

    /// A valid value for `field` of a built-in format, as Envoy would write it (`-` for
    /// none). Quoted values may hold quotes and spaces, but never a quote before a space: a
    /// value holding the `" "` between two quoted fields could be split more than one way, so
    /// such lines may match or not, and are not generated.
    fn value_of(field: &Field, last: bool) -> BoxedStrategy<String> {
        let dash = Just("-".to_string());
        if field.numeric {
            return prop_oneof![1 => dash, 6 => "0|[1-9][0-9]{0,6}"].boxed();
        }
        match field.check {
            Check::ResponseFlags => {
                let codes: Vec<_> = crate::envoy::RESPONSE_FLAGS.iter().map(|f| f.0).collect();
                let code = proptest::sample::select(codes);
                let flags = prop::collection::vec(code, 1..3).prop_map(|c| c.join(","));
                return prop_oneof![2 => dash, 1 => Just("OK".to_string()), 3 => flags].boxed();
            }
            Check::GrpcStatus => {
                let name = proptest::sample::select(GRPC_STATUS_NAMES.to_vec());
                return prop_oneof![1 => dash, 4 => name.prop_map(String::from)].boxed();
            }
            Check::Any => {}
        }
        if field.spaceless {
            return prop_oneof![1 => dash, 6 => "[A-Za-z0-9./:_?=&+,-]{1,16}"].boxed();
        }
        // The last quoted value ends at the first quote after it.
        let quoted = match last {
            true => "[a-zA-Z0-9 ./:,;()é-]{0,20}",
            false => "[a-zA-Z0-9 ./:,;()é\"-]{0,20}",
        };
        prop_oneof![1 => dash, 6 => quoted.prop_filter("no quote before a space", |v| !v.contains("\" "))].boxed()
    }

    /// A line of built-in format `at`: (line, fields written as (name, value), text appended).
    fn written_line(
        at: usize,
    ) -> impl Strategy<Value = (usize, String, Vec<(String, String)>, String)> {
        let format = &builtins()[at];
        let last_field = format
            .pieces
            .iter()
            .rposition(|p| matches!(p, Piece::Field(_)));
        let parts: Vec<BoxedStrategy<(String, Option<String>)>> = format
            .pieces
            .iter()
            .enumerate()
            .map(|(i, piece)| match piece {
                Piece::Literal(literal) => Just((literal.clone(), None)).boxed(),
                Piece::Field(field) => {
                    let name = field.name.clone();
                    value_of(field, Some(i) == last_field)
                        .prop_map(move |v| (v, Some(name.clone())))
                        .boxed()
                }
            })
            .collect();
        let lenient = format.lenient;
        let extras = match lenient {
            true => {
                prop::collection::vec(prop_oneof!["[a-z0-9|.]{1,8}", "\"[a-z0-9]{0,8}\"",], 0..3)
                    .boxed()
            }
            false => Just(vec![]).boxed(),
        };
        let prefix = match lenient {
            true => prop_oneof![Just(""), Just("ACCESS ")].boxed(),
            false => Just("").boxed(),
        };
        (parts, extras, prefix).prop_map(move |(parts, extras, prefix)| {
            let mut line = prefix.to_string();
            let mut fields = Vec::new();
            for (text, name) in parts {
                line.push_str(&text);
                if let Some(name) = name {
                    fields.push((name, text));
                }
            }
            let extra: String = extras.iter().map(|e| format!(" {e}")).collect();
            line.push_str(&extra);
            (at, line, fields, extra)
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 3000,
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        })]

        /// A line of any built-in format, with or without a prefix and extra fields, comes
        /// back with each field under its own name with the value written, or does not match
        /// at all: no format takes another's line with its fields shifted. Lines without
        /// anything appended always match.
        #[test]
        fn builtin_lines_keep_their_fields(
            (at, line, fields, extra) in (0..builtins().len()).prop_flat_map(written_line)
        ) {
            let (mut json, mut members, mut places) = (Vec::new(), Vec::new(), Vec::new());
            let matched = line_to_json(None, line.as_bytes(), &mut json, &mut members, &mut places);
            let Some(n) = matched else {
                prop_assert!(!extra.is_empty(), "no match: {}", line);
                return Ok(());
            };
            let got: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&json).unwrap();
            let written: std::collections::HashMap<_, _> = fields.iter().cloned().collect();
            for (key, value) in &got {
                let text = match value {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                match written.get(key) {
                    Some(w) => prop_assert_eq!(&text, w, "{} in {} (format {})", key, line, n),
                    // What was appended, kept whole, or as the stream id of the gRPC format.
                    None if key == "extra" => prop_assert_eq!(&text, extra.trim(), "{}", line),
                    None if key == "prefix" => prop_assert_eq!(&text, "ACCESS"),
                    None => prop_assert!(
                        (key == "stream_id" && extra == format!(" \"{text}\""))
                            || (key == "grpc_status" && written.get("response_flags") == Some(&text)),
                        "{} = {} in {} (format {})", key, text, line, n
                    ),
                }
            }
            for (name, value) in &fields {
                let kept = got.contains_key(name) || value == "-";
                // Only a `-` or `OK` response flag may go, as a gRPC status.
                let as_grpc = name == "response_flags" && value == "OK" && got.get("grpc_status").is_some_and(|s| s == "OK");
                prop_assert!(kept || as_grpc, "{} lost in {}", name, line);
            }
            if extra.is_empty() {
                prop_assert_eq!(n, at, "{}", line);
            }
        }
    }

    #[test]
    fn grpc_overlap_places() {
        let names: Vec<_> = builtins()[ENVOY_DEFAULT_AT].member_names().collect();
        assert_eq!(names[6], "response_flags");
        assert_eq!(names[16], "extra");
        assert_eq!(names.len(), 17);
        let names: Vec<_> = builtins()[SERVICE_CONNECT_GRPC_AT].field_names().collect();
        assert_eq!(names[5], "grpc_status");
    }

    #[test]
    fn grpc_statuses() {
        assert_eq!(grpc_status_code(b"OK"), Some(0));
        assert_eq!(grpc_status_code(b"Unavailable"), Some(14));
        assert_eq!(grpc_status_code(b"UNAVAILABLE"), Some(14));
        assert_eq!(grpc_status_code(b"DEADLINE_EXCEEDED"), Some(4));
        assert_eq!(grpc_status_code(b"CANCELLED"), Some(1));
        assert_eq!(grpc_status_code(b"16"), Some(16));
        for bad in [&b"17"[..], b"01", b"", b"-", b"Ok", b"UH", b"unavailable"] {
            assert_eq!(grpc_status_code(bad), None, "{:?}", bad);
        }
    }

    fn custom_format() -> &'static TextFormat {
        static FORMAT: std::sync::OnceLock<TextFormat> = std::sync::OnceLock::new();
        FORMAT.get_or_init(|| {
            TextFormat::parse(
                "[%START_TIME%] %REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %DURATION%ms \
                 trace=%REQ(X-DATADOG-TRACE-ID)% ua=\"%REQ(USER-AGENT)%\" %BYTES_SENT%",
            )
            .unwrap()
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 2000,
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        })]

        /// The members that a match notes, and those found in its JSON without the notes, are
        /// the ones a JSON reader finds; the places noted name their keys.
        #[test]
        fn members_are_found_as_a_reader_finds_them(
            (format, line) in prop_oneof![
                lines_of(&builtins()[0]),
                lines_of(&builtins()[1]),
                lines_of(&builtins()[2]),
                lines_of(custom_format()),
            ]
        ) {
            let (mut json, mut noted, mut places) = (Vec::new(), Vec::new(), Vec::new());
            if let Some(n) = line_to_json(Some(format), &line, &mut json, &mut noted, &mut places) {
                let format = formats(Some(format)).nth(n).unwrap();
                let (mut found, mut read) = (Vec::new(), Vec::new());
                let mut stack = crate::read::Stack::default();
                members_of(&json, &mut found);
                crate::read::read_object(&json, &mut read, &mut stack).unwrap();
                let fields = |m: &Member| (m.key, m.value, m.kind, m.key_escaped, m.value_escaped);
                let read: Vec<_> = read.iter().map(fields).collect();
                let text = String::from_utf8_lossy(&json);
                prop_assert_eq!(&noted.iter().map(fields).collect::<Vec<_>>(), &read, "{}", text);
                prop_assert_eq!(&found.iter().map(fields).collect::<Vec<_>>(), &read, "{}", text);
                let names: Vec<_> = format.member_names().collect();
                for (m, &place) in noted.iter().zip(&places) {
                    prop_assert_eq!(m.key.of(&json), names[place as usize].as_bytes());
                }
            }
        }

        /// The first pass is a shortcut of the full search: where it matches, the full search
        /// matches the same way.
        #[test]
        fn first_pass_agrees_with_the_full_search(
            (format, line) in prop_oneof![
                lines_of(&builtins()[0]),
                lines_of(&builtins()[1]),
                lines_of(&builtins()[2]),
                lines_of(custom_format()),
            ]
        ) {
            let (mut first, mut full) = (Vec::new(), Vec::new());
            if format.match_first(&line, 0, &mut first, &mut Search::new(None, &[], 0, 0)) {
                let matched =
                    format.match_from(&line, 0, 0, &mut full, &mut Search::new(None, &[], 0, 0));
                prop_assert!(matched, "{}", String::from_utf8_lossy(&line));
                prop_assert_eq!(
                    String::from_utf8_lossy(&first),
                    String::from_utf8_lossy(&full),
                    "{}", String::from_utf8_lossy(&line)
                );
            }
        }
    }
}
