//! Endpoints: the low-cardinality name of what a request asked for, such as
//! `/api/v1/users/{param:int}`, so that `/api/v1/users/123456` groups with every other user.
//!
//! [`infer`] applies the rules Datadog's tracers use to set `http.endpoint` on a request span
//! that has no route ("resource renaming"), so that log endpoints line up with APM's. They
//! are those of dd-trace-py's `SimplifiedEndpointComputer`
//! (`ddtrace/_trace/processor/resource_renaming.py`; the cases in the tests below are those
//! of its `tests/tracer/test_resource_renaming.py`), which dd-trace-go, dd-trace-java and
//! dd-trace-dotnet implement alike:
//!
//! * the path is the URL's path: scheme and host, query and fragment are dropped;
//! * it is split at `/`; empty segments are dropped and only the first 8 segments are kept;
//! * each segment is replaced by the first placeholder whose pattern it matches in full:
//!
//! | placeholder | pattern (Python `re`) | e.g. |
//! |---|---|---|
//! | `{param:int}` | `[1-9][0-9]+` | `123` (not `5`, not `01`) |
//! | `{param:int_id}` | `(?=.*[0-9].*)[0-9._-]{3,}` | `0123`, `123-456` |
//! | `{param:hex}` | `(?=.*[0-9].*)[A-Fa-f0-9]{6,}` | `abc123` (not `deadbeef`) |
//! | `{param:hex_id}` | `(?=.*[0-9].*)[A-Fa-f0-9._-]{6,}` | `abc123-def` |
//! | `{param:str}` | `.{20,}` or `.*[%&'()*+,:=@].*` | `user@example`, `hello%20world` |
//!
//! * no segment left gives `/`.
//!
//! The tracers leave `http.endpoint` out of a route-less request answered with 404, so that
//! scanners probing random paths do not make endpoints up; [`Routes::endpoint`] does the same.
//!
//! [`Routes`] are the user's own route templates (`GET /users/{id}`), which win over
//! inference, as a framework's route (`http.route`) does in the tracers.
//!
//! Only `core` and `alloc`: this runs in the Fluent Bit module too. [`infer`] allocates
//! nothing but what it appends to its output.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// How many path segments an endpoint keeps, as in the tracers.
pub const MAX_SEGMENTS: usize = 8;

/// Appends to `out` the endpoint Datadog's tracers infer from `path` (see the
/// [module docs](self)). `path` may be a whole URL, and may carry a query and a fragment.
/// What is appended is the path's own bytes and placeholders: escape it for JSON.
///
/// ```
/// let mut out = Vec::new();
/// envoy_dd::endpoint::infer(b"/api/v2/users/123/posts/abc123?page=2", &mut out);
/// assert_eq!(out, b"/api/v2/users/{param:int}/posts/{param:hex}");
/// ```
pub fn infer(url: &[u8], out: &mut Vec<u8>) {
    infer_path(path_of(url), out);
}

/// [`infer`] for a path without scheme, host, query and fragment.
fn infer_path(path: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    for segment in segments(path).take(MAX_SEGMENTS) {
        out.push(b'/');
        match classify(segment) {
            Some(placeholder) => out.extend_from_slice(placeholder.as_bytes()),
            None => out.extend_from_slice(segment),
        }
    }
    if out.len() == start {
        out.push(b'/');
    }
}

/// The placeholder that replaces a path segment, if any (see the [module docs](self)).
///
/// ```
/// use envoy_dd::endpoint::classify;
///
/// assert_eq!(classify(b"123"), Some("{param:int}"));
/// assert_eq!(classify(b"users"), None);
/// ```
pub fn classify(segment: &[u8]) -> Option<&'static str> {
    let mut counts = Counts::default();
    for &b in segment {
        match b {
            b'0'..=b'9' => counts.digits += 1,
            b'a'..=b'f' | b'A'..=b'F' => counts.hex += 1,
            b'.' | b'_' | b'-' => counts.separators += 1,
            b'%' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b':' | b'=' | b'@' => {
                counts.special = true
            }
            b'\n' => counts.newline = true,
            _ => {}
        }
        // Python counts characters, not bytes: skip UTF-8 continuation bytes.
        counts.chars += usize::from(b & 0xC0 != 0x80);
    }
    counts.placeholder(segment)
}

/// What the patterns look at in a segment (see [`classify`]).
#[derive(Default)]
struct Counts {
    digits: usize,
    hex: usize,
    /// `.`, `_`, `-`: the separators the `_id` patterns allow.
    separators: usize,
    special: bool,
    newline: bool,
    chars: usize,
}

impl Counts {
    /// The placeholder for `segment`, whose counts these are.
    #[inline(always)]
    fn placeholder(&self, segment: &[u8]) -> Option<&'static str> {
        let Counts {
            digits,
            hex,
            separators,
            special,
            newline,
            chars,
        } = *self;
        let len = segment.len();
        if digits == 0 {
            // Every pattern but `{param:str}` needs a digit.
        } else if digits == len && len >= 2 && segment[0] != b'0' {
            return Some("{param:int}");
        } else if digits + separators == len && len >= 3 {
            return Some("{param:int_id}");
        } else if digits + hex == len && len >= 6 {
            return Some("{param:hex}");
        } else if digits + hex + separators == len && len >= 6 {
            return Some("{param:hex_id}");
        }
        // Python's `.` matches anything but a newline.
        if !newline && (chars >= 20 || special) {
            return Some("{param:str}");
        }
        None
    }

    /// The counts packed by [`PACKED`], of a segment shorter than [`PACKED_MAX`] bytes.
    #[inline(always)]
    fn unpack(packed: u64) -> Counts {
        let field = |i: u32| ((packed >> (FIELD_BITS * i)) & FIELD_MASK) as usize;
        Counts {
            digits: field(0),
            hex: field(1),
            separators: field(2),
            special: field(3) != 0,
            newline: field(4) != 0,
            chars: field(5),
        }
    }
}

/// [`infer`] in one pass over `path`, escaped JSON string content: `false`, with nothing
/// appended, at the first backslash before the endpoint is complete (the caller then decodes
/// the path first). Segments are split and their bytes counted for [`classify`] in the same
/// loop, which runs once per byte (the Fluent Bit module interprets each instruction).
///
/// Bytes after the last segment kept are not looked at: a backslash there does not change the
/// endpoint, which has the same bytes escaped or not (it holds no `"`, `\\` or control
/// character).
pub(crate) fn infer_escaped(path: &[u8], out: &mut Vec<u8>) -> bool {
    // A scheme and host: the general way (not an Envoy path, which starts with `/`).
    if path.first().is_some_and(|&b| b != b'/') {
        if memchr::memchr(b'\\', path).is_some() {
            return false;
        }
        infer(path, out);
        return true;
    }
    let start = out.len();
    let (mut kept, mut from, mut counts) = (0, 0, 0u64);
    let mut tail = true;
    for (i, &b) in path.iter().enumerate() {
        let class = PACKED[b as usize];
        if class & STOPS == 0 {
            counts = counts.wrapping_add(class);
            continue;
        }
        if class & BACKSLASH != 0 {
            out.truncate(start);
            return false;
        }
        if i > from {
            push_segment(&path[from..i], counts, out);
            kept += 1;
        }
        if class & SLASH == 0 || kept == MAX_SEGMENTS {
            tail = false;
            break;
        }
        (from, counts) = (i + 1, 0);
    }
    if tail && from < path.len() {
        push_segment(&path[from..], counts, out);
    }
    if out.len() == start {
        out.push(b'/');
    }
    true
}

/// Appends `/` and `segment` or its placeholder, given the segment's [`PACKED`] counts.
#[inline(always)]
fn push_segment(segment: &[u8], counts: u64, out: &mut Vec<u8>) {
    out.push(b'/');
    let placeholder = match segment.len() < PACKED_MAX {
        true => Counts::unpack(counts).placeholder(segment),
        false => classify(segment),
    };
    match placeholder {
        Some(placeholder) => out.extend_from_slice(placeholder.as_bytes()),
        None => out.extend_from_slice(segment),
    }
}

/// Bits per count in [`PACKED`]: a segment of fewer than [`PACKED_MAX`] bytes cannot carry
/// one count into the next.
const FIELD_BITS: u32 = 10;
const FIELD_MASK: u64 = (1 << FIELD_BITS) - 1;
const PACKED_MAX: usize = 1 << FIELD_BITS;
/// Bytes that end a segment or the pass, above the six counts.
const SLASH: u64 = 1 << 60;
const END: u64 = 1 << 61;
const BACKSLASH: u64 = 1 << 62;
const STOPS: u64 = SLASH | END | BACKSLASH;

/// Per byte, what it adds to each of [`Counts`]' fields, [`FIELD_BITS`] bits each in its
/// order (a byte of `special` or `newline` counts one there), or which stop it is.
static PACKED: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        let field = match byte {
            b'0'..=b'9' => 0,
            b'a'..=b'f' | b'A'..=b'F' => 1,
            b'.' | b'_' | b'-' => 2,
            b'%' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b':' | b'=' | b'@' => 3,
            b'\n' => 4,
            _ => 6,
        };
        let mut class = match field {
            6 => 0,
            _ => 1 << (FIELD_BITS * field),
        };
        if byte & 0xC0 != 0x80 {
            class += 1 << (FIELD_BITS * 5);
        }
        table[b] = match byte {
            b'/' => SLASH,
            b'?' | b'#' => END,
            b'\\' => BACKSLASH,
            _ => class,
        };
        b += 1;
    }
    table
};

/// The path of a URL: after `scheme://host` if there is one, up to a `?` or `#`.
fn path_of(url: &[u8]) -> &[u8] {
    let end = memchr::memchr2(b'?', b'#', url).unwrap_or(url.len());
    let url = &url[..end];
    match scheme_end(url) {
        Some(after) => {
            let host_end = memchr::memchr(b'/', &url[after..]).map_or(url.len(), |i| after + i);
            &url[host_end..]
        }
        None => url,
    }
}

/// The index after `scheme://`, if `url` starts with one.
fn scheme_end(url: &[u8]) -> Option<usize> {
    let colon = url
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b"+-.".contains(&b)))?;
    let is_scheme = colon > 0 && url[0].is_ascii_alphabetic() && url[colon..].starts_with(b"://");
    is_scheme.then_some(colon + 3)
}

/// The non-empty segments of a path.
fn segments(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&b| b == b'/').filter(|s| !s.is_empty())
}

/// The user's route templates, tried in order before inference.
///
/// One template per line: an optional method (`*` for any), then a path whose segments are literal or a
/// parameter (`{name}` or `:name`, matching any one segment). Blank lines and lines starting
/// with `#` are skipped. A template matches a path with as many segments (empty segments,
/// query and fragment aside, as for [`infer`]); the endpoint is the template's path.
///
/// ```
/// use envoy_dd::endpoint::Routes;
///
/// let routes = Routes::parse("GET /users/{id}\n/orders/{id}/items").unwrap();
/// let mut out = Vec::new();
/// routes.endpoint(b"GET", b"/users/42?x=1", 200, &mut out);
/// assert_eq!(out, b"/users/{id}");
/// out.clear();
/// routes.endpoint(b"DELETE", b"/users/42", 200, &mut out); // no template: inferred
/// assert_eq!(out, b"/users/{param:int}");
/// out.clear();
/// assert!(!routes.endpoint(b"GET", b"/wp-login.php", 404, &mut out)); // a probe: none
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Routes {
    routes: Vec<Route>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Route {
    method: Option<Box<[u8]>>,
    segments: Vec<Part>,
    /// The endpoint written for a match: the template's path, `/`-joined.
    path: Box<[u8]>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(Box<[u8]>),
    Param,
}

/// A route template that cannot be used, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteError {
    /// The line (from 1).
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "route template on line {}: {}", self.line, self.reason)
    }
}

impl Routes {
    /// Reads route templates, one per line (see [`Routes`]).
    pub fn parse(text: &str) -> Result<Routes, RouteError> {
        let mut routes = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let error = |reason: &str| RouteError {
                line: n + 1,
                reason: reason.into(),
            };
            let (method, path) = match line.split_once(char::is_whitespace) {
                Some((method, path)) => (Some(method), path.trim()),
                None => (None, line),
            };
            if !path.starts_with('/') || path.contains(char::is_whitespace) {
                return Err(error("expected [METHOD] /path, such as GET /users/{id}"));
            }
            if let Some(m) = method {
                if m != "*" && !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                    return Err(error("a method is letters only, such as GET, or * for any"));
                }
            }
            let method = method.filter(|&m| m != "*");
            let mut parts = Vec::new();
            let mut written = Vec::new();
            for s in segments(path.as_bytes()) {
                written.push(b'/');
                written.extend_from_slice(s);
                let param = (s.starts_with(b"{") && s.ends_with(b"}") && s.len() > 2)
                    || (s.starts_with(b":") && s.len() > 1);
                if param {
                    parts.push(Part::Param);
                } else if s.contains(&b'{') || s.contains(&b'}') {
                    return Err(error("a parameter is a whole segment, such as {id}"));
                } else {
                    parts.push(Part::Literal(s.into()));
                }
            }
            if written.is_empty() {
                written.push(b'/');
            }
            routes.push(Route {
                method: method.map(|m| m.as_bytes().into()),
                segments: parts,
                path: written.into(),
            });
        }
        Ok(Routes { routes })
    }

    /// No templates.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Appends the endpoint of a request to `out`: the first matching template's path, else
    /// the inferred endpoint ([`infer`]). Returns false and appends nothing for a 404 that no
    /// template matches, which the tracers give no endpoint either.
    pub fn endpoint(&self, method: &[u8], path: &[u8], status: u16, out: &mut Vec<u8>) -> bool {
        let path = path_of(path);
        if let Some(route) = self.routes.iter().find(|r| r.matches(method, path)) {
            out.extend_from_slice(&route.path);
            return true;
        }
        if status == 404 {
            return false;
        }
        infer_path(path, out);
        true
    }
}

impl Route {
    fn matches(&self, method: &[u8], path: &[u8]) -> bool {
        if self.method.as_deref().is_some_and(|m| m != method) {
            return false;
        }
        let mut parts = self.segments.iter();
        for segment in segments(path) {
            match parts.next() {
                Some(Part::Param) => {}
                Some(Part::Literal(literal)) if **literal == *segment => {}
                _ => return false,
            }
        }
        parts.next().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str) -> String {
        let mut out = Vec::new();
        infer(url.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    /// dd-trace-py's `test_compute_simplified_endpoint_path_element`.
    #[test]
    fn segments_as_the_tracers_classify_them() {
        let cases = [
            ("123", Some("{param:int}")),
            ("10", Some("{param:int}")),
            ("12345", Some("{param:int}")),
            ("0", None),
            ("01", None),
            ("123.456", Some("{param:int_id}")),
            ("123-456-789", Some("{param:int_id}")),
            ("0123", Some("{param:int_id}")),
            ("123ABC", Some("{param:hex}")),
            ("a1b2c3", Some("{param:hex}")),
            ("abcdef", None),
            ("ABCDEF", None),
            ("abcde", None),
            ("123.ABC", Some("{param:hex_id}")),
            ("a1b2-c3d4", Some("{param:hex_id}")),
            ("abc-def", None),
            ("this_is_a_very_long_string", Some("{param:str}")),
            ("with%special&chars", Some("{param:str}")),
            ("email@domain.com", Some("{param:str}")),
            ("file.with.dots", None),
            ("users", None),
            ("short", None),
            ("xyz123", None),
        ];
        for (segment, expected) in cases {
            assert_eq!(classify(segment.as_bytes()), expected, "{segment}");
        }
    }

    /// Edges of the patterns: lengths, the digit the lookaheads require, characters counted
    /// as Python counts them, and the newline Python's `.` does not match.
    #[test]
    fn pattern_edges() {
        assert_eq!(classify(b"1_2"), Some("{param:int_id}"));
        assert_eq!(classify(b"1."), None);
        assert_eq!(classify(b"..."), None);
        assert_eq!(classify(b"abcde1"), Some("{param:hex}"));
        assert_eq!(classify(b"abcd1"), None);
        assert_eq!(classify(b"ab_cd1"), Some("{param:hex_id}"));
        assert_eq!(classify(b"ab_cd-"), None);
        assert_eq!(classify("ééééééééééééééééééé".as_bytes()), None); // 19 characters
        assert_eq!(
            classify("éééééééééééééééééééé".as_bytes()),
            Some("{param:str}")
        );
        assert_eq!(classify(b"a=b"), Some("{param:str}"));
        assert_eq!(classify(b"a=b\n"), None);
        assert_eq!(classify(b""), None);
    }

    /// dd-trace-py's `test_compute_simplified_endpoint`.
    const ENDPOINT_CASES: &[(&str, &str)] = &[
        ("", "/"),
        ("http://example.com", "/"),
        ("http://example.com/", "/"),
        ("/users", "/users"),
        ("https://example.com/users", "/users"),
        ("http://example.com/api/users?id=123", "/api/users"),
        (
            "https://example.com/users/123#section",
            "/users/{param:int}",
        ),
        (
            "https://example.com/users/123?filter=active#top",
            "/users/{param:int}",
        ),
        ("/users/123", "/users/{param:int}"),
        ("/users/5", "/users/5"),
        ("/users/0123", "/users/{param:int_id}"),
        ("/items/123-456", "/items/{param:int_id}"),
        ("/commits/abc123", "/commits/{param:hex}"),
        ("/sessions/deadbeef", "/sessions/deadbeef"),
        ("/items/abc123-def", "/items/{param:hex_id}"),
        ("/files/verylongfilename12345", "/files/{param:str}"),
        ("/users/user@example", "/users/{param:str}"),
        ("/a/b/c/d/e/f/g/h/i/j/k", "/a/b/c/d/e/f/g/h"),
        ("/api//v1///users//123", "/api/v1/users/{param:int}"),
        ("///////////////////////", "/"),
        (
            "/api/v2/users/123/posts/abc123/comments/hello%20world",
            "/api/v2/users/{param:int}/posts/{param:hex}/comments/{param:str}",
        ),
        (
            "/12/123-456/abc123/abc-def-123/longstringthathastoomanycharacters",
            "/{param:int}/{param:int_id}/{param:hex}/{param:hex_id}/{param:str}",
        ),
    ];

    #[test]
    fn paths_as_the_tracers_simplify_them() {
        let cases = ENDPOINT_CASES.iter().copied();
        for (url, expected) in cases {
            assert_eq!(endpoint(url), expected, "{url}");
        }
    }

    /// The one-pass inference gives what `infer` gives, and leaves paths with escapes in
    /// their endpoint to the caller.
    #[test]
    fn one_pass_as_infer() {
        let long = format!("/a/{}/b{}", "1".repeat(1500), "x".repeat(1100));
        let mut paths = vec![
            "/",
            "",
            "/users/42/",
            "//a//b?x=/1#/2",
            "/a#b/c",
            "/é/ééééééééééééééééééé",
            "/a/b/c/d/e/f/g/h/i\\j",
            "/a/b?\\q",
            "http://h/x/123",
            "x/1",
            "/a b/12",
            "/ab_cd1/1_2/a=b/0/01/abcdef",
            &long,
        ];
        paths.extend(ENDPOINT_CASES.iter().map(|(url, _)| *url));
        for path in paths {
            let (mut want, mut got) = (b"x".to_vec(), b"x".to_vec());
            infer(path.as_bytes(), &mut want);
            assert!(infer_escaped(path.as_bytes(), &mut got), "{path}");
            assert_eq!(got, want, "{path}");
        }
        for path in [
            "/a\\/b",
            "/a/\\u0031",
            "\\/x",
            "http://h\\/x",
            "/1/2/3/4/5/6/7/\\8",
        ] {
            let mut out = b"x".to_vec();
            assert!(!infer_escaped(path.as_bytes(), &mut out), "{path}");
            assert_eq!(out, b"x");
        }
    }

    #[test]
    fn appends_to_what_is_there() {
        let mut out = b"GET ".to_vec();
        infer(b"/users/123", &mut out);
        assert_eq!(out, b"GET /users/{param:int}");
    }

    #[test]
    fn templates_win_in_order() {
        let routes = Routes::parse(
            "# ours\nGET /users/{id}\n\nPOST /users/:id/avatar\n* /health\n/users/{id}/{rest}\n/\n",
        )
        .unwrap();
        let get = |method: &str, path: &str, status| {
            let mut out = Vec::new();
            let found = routes.endpoint(method.as_bytes(), path.as_bytes(), status, &mut out);
            found.then(|| String::from_utf8(out).unwrap())
        };
        assert_eq!(get("GET", "/users/42", 200).as_deref(), Some("/users/{id}"));
        assert_eq!(
            get("GET", "/users/alice", 404).as_deref(),
            Some("/users/{id}")
        );
        assert_eq!(
            get("POST", "/users/42/avatar", 201).as_deref(),
            Some("/users/:id/avatar")
        );
        assert_eq!(
            get("GET", "/users/42/avatar", 200).as_deref(),
            Some("/users/{id}/{rest}")
        );
        assert_eq!(get("HEAD", "//health/?x", 200).as_deref(), Some("/health"));
        assert_eq!(get("GET", "/?q=1", 200).as_deref(), Some("/"));
        assert_eq!(
            get("POST", "/users/42", 500).as_deref(),
            Some("/users/{param:int}")
        );
        assert_eq!(get("GET", "/nope/42", 404), None);
    }

    #[test]
    fn bad_templates_say_where() {
        let error = Routes::parse("GET /a\nGET users").unwrap_err();
        assert_eq!(error.line, 2);
        assert!(Routes::parse("/a/b{id}").is_err());
        assert!(Routes::parse("G3T /a").is_err());
        assert!(Routes::parse("").unwrap().is_empty());
    }
}
