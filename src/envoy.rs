//! What envoy-dd knows about Envoy access-log fields: which keys mean what, the response-flag
//! table, and the conversions from Envoy's values to Datadog's standard attributes.
//!
//! Keys are matched by their normalised name (lower-case letters and digits only, see
//! [`crate::trace::normalize_key`]), so `x-forwarded-for`, `x_forwarded_for` and
//! `X-Forwarded-For` are one key. Envoy may print any value as a typed JSON value, a string,
//! a float (`200.0`) or `"-"`; the helpers here accept all of them.

use crate::absent::is_envoy_absent;
use crate::number::{decimal, decimal_parts};
use crate::trace::{classify_key, TraceKey};

/// The meaning of a record key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Trace(TraceKey),
    ResponseCode,
    Method,
    Path,
    OriginalPath,
    Host,
    Protocol,
    RequestId,
    UserAgent,
    ForwardedFor,
    RemoteAddress,
    /// `downstream_remote_port` (Service Connect's TCP lines).
    RemotePort,
    /// `connection_id`: a TCP access line, without a response code.
    ConnectionId,
    /// `grpc_status` (Service Connect's gRPC lines).
    GrpcStatus,
    BytesReceived,
    BytesSent,
    Duration,
    ResponseFlags,
    /// The GraphQL operation name a request header carried (`X-Apollo-Operation-Name`).
    GraphqlOperation,
    /// `status`, `level`, `severity`: the record already has a log level.
    Level,
    /// `message`, `msg`, `log`: the record already has a message.
    Message,
    TaskDefinition,
}

impl Role {
    /// Whether a member of this role may move into the standard attribute (or `dd` id) made
    /// from it, unless the config keeps source keys: the writer then looks at it rather than
    /// copying it.
    pub fn may_move(self) -> bool {
        match self {
            Role::Trace(key) => matches!(key, TraceKey::DatadogTrace | TraceKey::DatadogSpan),
            Role::ResponseCode
            | Role::Method
            | Role::Path
            | Role::OriginalPath
            | Role::Host
            | Role::Protocol
            | Role::RequestId
            | Role::UserAgent
            | Role::ForwardedFor
            | Role::RemoteAddress
            | Role::BytesReceived
            | Role::BytesSent
            | Role::GraphqlOperation
            | Role::Duration => true,
            // The port and connection id have no standard attribute of their own to hold them
            // whole, and a gRPC status name is more than its code.
            Role::RemotePort
            | Role::ConnectionId
            | Role::GrpcStatus
            | Role::ResponseFlags
            | Role::Level
            | Role::Message
            | Role::TaskDefinition => false,
        }
    }
}

/// The role of a key, given its normalised form.
pub(crate) fn role(normalized: &[u8]) -> Option<Role> {
    if let Some(key) = classify_key(normalized) {
        return Some(Role::Trace(key));
    }
    Some(match normalized {
        b"responsecode" | b"statuscode" | b"code" => Role::ResponseCode,
        b"method" => Role::Method,
        b"path" => Role::Path,
        b"xenvoyoriginalpath" => Role::OriginalPath,
        b"authority" | b"host" => Role::Host,
        b"protocol" => Role::Protocol,
        // `http.request_id`: what envoy-dd's tower layer records on the request span.
        b"requestid" | b"xrequestid" | b"httprequestid" => Role::RequestId,
        b"useragent" => Role::UserAgent,
        // Service Connect's JSON names `X-Forwarded-For` so.
        b"xforwardedfor" | b"forwardedfor" => Role::ForwardedFor,
        b"downstreamremoteaddress" => Role::RemoteAddress,
        b"downstreamremoteport" => Role::RemotePort,
        b"connectionid" => Role::ConnectionId,
        b"grpcstatus" => Role::GrpcStatus,
        b"bytesreceived" => Role::BytesReceived,
        b"bytessent" => Role::BytesSent,
        // Service Connect's JSON says `duration_ms` for HTTP/1.1 (and `duration` for HTTP/2).
        b"duration" | b"durationms" => Role::Duration,
        // `%RESPONSE_FLAGS_LONG%` logs the long names, which the flag table knows too.
        b"responseflags" | b"responseflagslong" => Role::ResponseFlags,
        b"xapollooperationname" | b"graphqloperationname" | b"operationname" => {
            Role::GraphqlOperation
        }
        b"status" | b"level" | b"severity" => Role::Level,
        b"message" | b"msg" | b"log" => Role::Message,
        b"ecstaskdefinition" => Role::TaskDefinition,
        _ => return None,
    })
}

/// How a response flag bears on the Datadog log level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FlagClass {
    /// The upstream failed: `error`.
    Upstream,
    /// The downstream went away or sent something bad, or routing refused it: `warn`.
    Downstream,
    /// Informational (fault injection, cache hits, ...).
    Other,
}

/// Envoy's response flags, short and long names (`%RESPONSE_FLAGS%`, `%RESPONSE_FLAGS_LONG%`),
/// from `source/common/stream_info/utility.cc`. Unknown codes (extensions register their own)
/// are ignored.
pub(crate) const RESPONSE_FLAGS: &[(&str, &str, FlagClass)] = &[
    ("UH", "NoHealthyUpstream", FlagClass::Upstream),
    ("UF", "UpstreamConnectionFailure", FlagClass::Upstream),
    ("UO", "UpstreamOverflow", FlagClass::Upstream),
    ("URX", "UpstreamRetryLimitExceeded", FlagClass::Upstream),
    ("NC", "NoClusterFound", FlagClass::Upstream),
    ("DT", "DurationTimeout", FlagClass::Upstream),
    ("LH", "FailedLocalHealthCheck", FlagClass::Upstream),
    ("UT", "UpstreamRequestTimeout", FlagClass::Upstream),
    ("LR", "LocalReset", FlagClass::Upstream),
    ("UR", "UpstreamRemoteReset", FlagClass::Upstream),
    ("UC", "UpstreamConnectionTermination", FlagClass::Upstream),
    (
        "UMSDR",
        "UpstreamMaxStreamDurationReached",
        FlagClass::Upstream,
    ),
    ("UPE", "UpstreamProtocolError", FlagClass::Upstream),
    ("DF", "DnsResolutionFailed", FlagClass::Upstream),
    ("DO", "DropOverload", FlagClass::Upstream),
    ("OM", "OverloadManagerTerminated", FlagClass::Upstream),
    ("RLSE", "RateLimitServiceError", FlagClass::Upstream),
    ("NFCF", "NoFilterConfigFound", FlagClass::Upstream),
    (
        "DC",
        "DownstreamConnectionTermination",
        FlagClass::Downstream,
    ),
    ("DR", "DownstreamRemoteReset", FlagClass::Downstream),
    ("DPE", "DownstreamProtocolError", FlagClass::Downstream),
    ("SI", "StreamIdleTimeout", FlagClass::Downstream),
    ("IH", "InvalidEnvoyRequestHeaders", FlagClass::Downstream),
    ("NR", "NoRouteFound", FlagClass::Downstream),
    ("RL", "RateLimited", FlagClass::Downstream),
    ("UAEX", "UnauthorizedExternalService", FlagClass::Downstream),
    ("FI", "FaultInjected", FlagClass::Other),
    ("DI", "DelayInjected", FlagClass::Other),
    ("RFCF", "ResponseFromCacheFilter", FlagClass::Other),
    ("UDO", "UnconditionalDropOverload", FlagClass::Other),
];

fn flag_class(code: &[u8]) -> Option<FlagClass> {
    // Short names have at most 7 bytes and long names more. A short one is looked up in a
    // table of them by a hash of its word: one probe, rather than a comparison per name.
    let at = match code.len() {
        0..=7 => {
            let word = flag_word(code);
            let at = FLAG_SLOTS.slots[flag_slot(word, FLAG_SLOTS.multiplier)] as usize;
            SHORT_FLAG_WORDS
                .get(at)
                .is_some_and(|&w| w == word)
                .then_some(at)
        }
        _ => RESPONSE_FLAGS
            .iter()
            .position(|(_, long, _)| code == long.as_bytes()),
    };
    RESPONSE_FLAGS.get(at?).map(|&(_, _, class)| class)
}

/// The [`flag_word`] of each short name of [`RESPONSE_FLAGS`].
const SHORT_FLAG_WORDS: [u64; RESPONSE_FLAGS.len()] = {
    let mut words = [0; RESPONSE_FLAGS.len()];
    let mut i = 0;
    while i < words.len() {
        let (short, long, _) = RESPONSE_FLAGS[i];
        assert!(short.len() <= 7 && long.len() > 7);
        words[i] = flag_word(short.as_bytes());
        i += 1;
    }
    words
};

/// The short names of [`RESPONSE_FLAGS`] by [`flag_slot`]: each slot holds the place of the
/// name there, or `u8::MAX`.
struct FlagSlots {
    multiplier: u64,
    slots: [u8; 1 << FLAG_SLOT_BITS],
}

const FLAG_SLOT_BITS: u32 = 8;

/// Built at compile time with the first multiplier (of a fixed sequence) that gives every
/// short name a slot of its own.
const FLAG_SLOTS: FlagSlots = {
    assert!(SHORT_FLAG_WORDS.len() < u8::MAX as usize);
    let mut multiplier: u64 = 0x9e37_79b9_7f4a_7c15;
    'multipliers: loop {
        let mut slots = [u8::MAX; 1 << FLAG_SLOT_BITS];
        let mut i = 0;
        while i < SHORT_FLAG_WORDS.len() {
            let slot = flag_slot(SHORT_FLAG_WORDS[i], multiplier);
            if slots[slot] != u8::MAX {
                multiplier = multiplier.wrapping_mul(6_364_136_223_846_793_005) | 1;
                continue 'multipliers;
            }
            slots[slot] = i as u8;
            i += 1;
        }
        break FlagSlots { multiplier, slots };
    }
};

/// The slot of a name's [`flag_word`]: the top bits of its product with the multiplier.
const fn flag_slot(word: u64, multiplier: u64) -> usize {
    (word.wrapping_mul(multiplier) >> (64 - FLAG_SLOT_BITS)) as usize
}

/// At most seven bytes as one word: the bytes in little-endian order, the length in the top
/// byte (so that `UH` and `UH\0` differ).
const fn flag_word(bytes: &[u8]) -> u64 {
    let (mut word, mut i) = (0, bytes.len());
    while i > 0 {
        i -= 1;
        word = word << 8 | bytes[i] as u64;
    }
    word | (bytes.len() as u64) << 56
}

/// A Datadog log level (`status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    Error,
    Warn,
    Info,
}

impl Level {
    /// The more severe of two levels.
    pub fn worst(self, other: Level) -> Level {
        match (self, other) {
            (Level::Error, _) | (_, Level::Error) => Level::Error,
            (Level::Warn, _) | (_, Level::Warn) => Level::Warn,
            _ => Level::Info,
        }
    }

    #[cfg(test)]
    fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
        }
    }
}

/// The Datadog log level of an access-log line with response `code` and response `flags`.
pub(crate) fn level(code: u64, flags: &[u8]) -> Level {
    let (mut upstream, mut downstream) = (false, false);
    // `-`, no flags, is by far the most common value: no need to look it up.
    let flags = if is_envoy_absent(flags) {
        &[][..]
    } else {
        flags
    };
    for flag in flags.split(|&b| b == b',').filter(|flag| !flag.is_empty()) {
        match flag_class(flag.trim_ascii()) {
            Some(FlagClass::Upstream) => upstream = true,
            Some(FlagClass::Downstream) => downstream = true,
            _ => {}
        }
    }
    if upstream || (500..600).contains(&code) {
        Level::Error
    } else if downstream || (400..500).contains(&code) || code == 0 {
        // Envoy logs response code 0 when the client went away before a response.
        Level::Warn
    } else {
        Level::Info
    }
}

/// The Datadog log level of a gRPC call's status code, as HTTP's 4xx and 5xx: the codes a
/// server answers for a caller's mistake are `warn`, those of a failed server `error`
/// (`Unknown`, `DeadlineExceeded`, `Unimplemented`, `Internal`, `Unavailable`, `DataLoss`).
pub(crate) fn grpc_level(code: u8) -> Level {
    match code {
        0 => Level::Info,
        2 | 4 | 12 | 13 | 14 | 15 => Level::Error,
        _ => Level::Warn,
    }
}

/// A whole number from a record (a response code, a byte count), with what it takes to write
/// it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Whole<'a> {
    pub value: u64,
    /// The logged digits when they are the number's own decimal form (`200`, not `200.0` or
    /// `0200`), as Envoy's numbers almost always are; else empty. Copying them is cheaper than
    /// formatting the number again, in Wasm most of all (one `memory.copy` instead of a loop
    /// of divisions).
    digits: &'a [u8],
}

impl Whole<'_> {
    /// Zero, for the response code of a record without one.
    pub const ZERO: Whole<'static> = Whole {
        value: 0,
        digits: b"0",
    };
    /// Whether a logged value is this number exactly: a JSON number of the same value (`200`,
    /// `200.0`), or a string of its own decimal digits (`"200"`, not `"200.0"` or `"0200"`,
    /// whose text would be lost).
    #[inline(never)]
    pub fn is_held(&self, kind: crate::read::Kind, text: &[u8]) -> bool {
        // Nearly always: the very digits this number was read from.
        if !self.digits.is_empty() && core::ptr::eq(text, self.digits) {
            return true;
        }
        let same = integer(text).is_some_and(|w| w.value == self.value);
        match kind {
            crate::read::Kind::Number => same,
            crate::read::Kind::String => {
                same && text.iter().all(u8::is_ascii_digit) && !canonical(text).is_empty()
            }
            _ => false,
        }
    }

    /// Appends the number in decimal.
    #[inline]
    pub fn write(&self, out: &mut Vec<u8>) {
        if !write_digits(out, self.digits) {
            crate::write::integer(out, self.value);
        }
    }
}

/// Appends a number's logged `digits` (see [`Whole`]) instead of formatting the number; false
/// if there are none.
#[inline(always)]
fn write_digits(out: &mut Vec<u8>, digits: &[u8]) -> bool {
    out.extend_from_slice(digits);
    !digits.is_empty()
}

/// `digits` (ASCII digits only) if they have no leading zero, else nothing.
fn canonical(digits: &[u8]) -> &[u8] {
    match digits {
        [b'0', _, ..] => &[],
        _ => digits,
    }
}

/// An unsigned integer from `200`, `200.0` or `"200"`; `None` for `-`, fractions, negatives.
#[inline]
pub(crate) fn integer(text: &[u8]) -> Option<Whole<'_>> {
    // Plain digits, the common case, need no looking for a dot.
    if let Some(value) = decimal(text).filter(|_| !text.is_empty()) {
        let digits = canonical(text);
        return Some(Whole { value, digits });
    }
    let (whole, frac) = decimal_parts(text)?;
    if frac.iter().any(|&d| d != b'0') {
        return None;
    }
    let value = decimal(whole)?;
    Some(Whole { value, digits: &[] })
}

/// A duration from a record, with what it takes to write it in nanoseconds and milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Duration<'a> {
    pub nanos: u64,
    /// The logged digits of a whole number of milliseconds above zero in its own decimal form
    /// (`27`), the common case: the nanoseconds are then these digits and six zeros. Else
    /// empty.
    millis: &'a [u8],
}

impl Duration<'_> {
    /// Whether a logged value of milliseconds is held exactly by these nanoseconds: a JSON
    /// number without an exponent and without digits below a nanosecond (`12`, `0.25`), or a
    /// string of a whole number's own digits (`"12"`).
    #[inline(never)]
    pub fn is_exact(&self, kind: crate::read::Kind, text: &[u8]) -> bool {
        match kind {
            crate::read::Kind::Number => {
                decimal_parts(text).is_some_and(|(_, frac)| frac.iter().skip(6).all(|&d| d == b'0'))
            }
            crate::read::Kind::String => !self.millis.is_empty() && self.millis.len() == text.len(),
            _ => false,
        }
    }

    /// Appends the nanoseconds in decimal.
    #[inline]
    pub fn write_nanos(&self, out: &mut Vec<u8>) {
        match write_digits(out, self.millis) {
            true => out.extend_from_slice(b"000000"),
            false => crate::write::integer(out, self.nanos),
        }
    }

    /// Appends the milliseconds for the `message` line: `12`, `0.25`.
    #[inline]
    pub fn write_millis(&self, out: &mut Vec<u8>) {
        if !write_digits(out, self.millis) {
            write_millis(self.nanos, out);
        }
    }
}

/// Milliseconds (`12`, `6.0`, `"0.25"`, `1.5e3`) as nanoseconds, exactly up to six decimals;
/// further digits, below a nanosecond, round it to the nearest. `None` for what is not a
/// number of milliseconds from zero up to `i64::MAX` nanoseconds (Datadog reads `duration` as
/// a signed 64-bit number): `-5`, `1e30`, `-`.
pub(crate) fn duration(text: &[u8]) -> Option<Duration<'_>> {
    let duration = match plain_duration(text) {
        Some(duration) => duration,
        None => with_exponent(text)?,
    };
    (duration.nanos <= i64::MAX as u64).then_some(duration)
}

/// [`duration`] of a number with an exponent (`1e3`, `2.5E-1`).
#[cold]
fn with_exponent(text: &[u8]) -> Option<Duration<'_>> {
    let e = text.iter().position(|&b| b | 0x20 == b'e')?;
    let (whole, frac) = decimal_parts(&text[..e])?;
    let nanos = scaled_nanos(whole, frac, exponent(&text[e + 1..])?)?;
    Some(Duration { nanos, millis: &[] })
}

/// [`duration`] of a number without an exponent.
fn plain_duration(text: &[u8]) -> Option<Duration<'_>> {
    let (whole, frac) = decimal_parts(text)?;
    let millis = decimal(whole)?;
    if millis > u64::MAX / 1_000_000 {
        return None;
    }
    let mut nanos = millis * 1_000_000;
    let mut scale = 100_000;
    for &d in frac.iter().take(6) {
        nanos = nanos.checked_add((d - b'0') as u64 * scale)?;
        scale /= 10;
    }
    if frac.get(6).is_some_and(|&d| d >= b'5') {
        nanos = nanos.checked_add(1)?;
    }
    // Zero is one digit in nanoseconds too, not seven.
    let plain = frac.is_empty() && whole.len() == text.len() && millis != 0;
    let millis = if plain { canonical(whole) } else { &[] };
    Some(Duration { nanos, millis })
}

/// The exponent of a number (`3`, `+3`, `-12`); a huge one is clamped, which changes nothing
/// (the value is then zero or too large either way).
fn exponent(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let magnitude = digits
        .iter()
        .fold(0i64, |n, &d| (n * 10 + i64::from(d - b'0')).min(1 << 20));
    Some(if negative { -magnitude } else { magnitude })
}

/// The nanoseconds of `whole.frac` × 10^`exponent` milliseconds, digit by digit (exact, as
/// for numbers without an exponent: the digit below a nanosecond rounds to the nearest).
fn scaled_nanos(whole: &[u8], frac: &[u8], exponent: i64) -> Option<u64> {
    let len = (whole.len() + frac.len()) as i64;
    let digit = |i: i64| -> u64 {
        let d = match i {
            _ if i < 0 || i >= len => b'0',
            _ if (i as usize) < whole.len() => whole[i as usize],
            _ => frac[i as usize - whole.len()],
        };
        u64::from(d - b'0')
    };
    // Digits `..cut` are the whole nanoseconds, digit `cut` rounds them.
    let cut = whole.len() as i64 + exponent + 6;
    let Some(first) = (0..len).find(|&i| digit(i) != 0) else {
        return Some(0);
    };
    if cut - first > 20 {
        return None;
    }
    let mut nanos = 0u64;
    for i in first..cut {
        nanos = nanos.checked_mul(10)?.checked_add(digit(i))?;
    }
    if digit(cut) >= 5 {
        nanos = nanos.checked_add(1)?;
    }
    Some(nanos)
}

/// `HTTP/1.1` → `1.1`; `None` for anything that is not an HTTP version.
pub(crate) fn http_version(protocol: &[u8]) -> Option<&[u8]> {
    // What Envoy writes, almost always.
    if let b"HTTP/1.1" | b"HTTP/2" | b"HTTP/1.0" | b"HTTP/3" = protocol {
        return protocol.get(5..);
    }
    let prefix = protocol.get(..5)?;
    let version = &protocol[5..];
    let ok = prefix.eq_ignore_ascii_case(b"HTTP/")
        && !version.is_empty()
        && version.iter().all(|&b| b.is_ascii_digit() || b == b'.');
    ok.then_some(version)
}

/// The client address from `X-Forwarded-For`: its first entry, without a port (some proxies
/// add one). An entry that is not an IP address (`unknown`, an obfuscated name) gives none.
pub(crate) fn first_forwarded(xff: &[u8]) -> Option<&[u8]> {
    let xff = xff.trim_ascii_start();
    let ip = ipv4_at_start(xff);
    if ip.is_empty() {
        return ip_address(xff.split(|&b| b == b',').next()?.trim_ascii());
    }
    // Nearly always: read no further than the address, its port and the comma.
    let rest = after_port(&xff[ip.len()..])?.trim_ascii_start();
    matches!(rest, [] | [b',', ..]).then_some(ip)
}

/// The IP address of `10.0.0.1:5432` (`10.0.0.1`), `[::1]:80` (`::1`), or of an address without
/// a port. `None` when what is left is not an IP address: `-`, a Unix socket's path (Envoy
/// logs one as the remote address of a pipe listener), a name. `network.client.ip` is read as
/// an address, so nothing else may go there.
pub(crate) fn ip_address(address: &[u8]) -> Option<&[u8]> {
    match ipv4_at_start(address) {
        [] => ipv6_address(address),
        ip => after_port(&address[ip.len()..])?.is_empty().then_some(ip),
    }
}

/// The dotted IPv4 address that `text` starts with (four numbers up to 255 without leading
/// zeros, as `core::net` reads them), or nothing. Nearly every address is one, so it is read
/// here in one pass; the rest goes to `core::net`'s parser.
fn ipv4_at_start(text: &[u8]) -> &[u8] {
    let octet = |value: u32, digits: u32| {
        value <= 255 && digits == 1 + u32::from(value >= 10) + u32::from(value >= 100)
    };
    // An octet's digits are counted from where it starts; its value may wrap on a long run
    // of them, which that count then rejects.
    let (mut dots, mut value, mut start, mut end) = (0, 0u32, 0, text.len());
    for (i, &b) in text.iter().enumerate() {
        let digit = u32::from(b).wrapping_sub(u32::from(b'0'));
        if digit < 10 {
            value = value.wrapping_mul(10).wrapping_add(digit);
        } else if b == b'.' && dots < 3 && octet(value, (i - start) as u32) {
            (dots, value, start) = (dots + 1, 0, i + 1);
        } else {
            end = i;
            break;
        }
    }
    match dots == 3 && octet(value, (end - start) as u32) {
        true => &text[..end],
        false => &[],
    }
}

/// What follows an address's `:port`, if it has one; `None` for a bad port.
fn after_port(rest: &[u8]) -> Option<&[u8]> {
    let [b':', tail @ ..] = rest else {
        return Some(rest);
    };
    let digits = tail.iter().take_while(|b| b.is_ascii_digit()).count();
    (1..=5).contains(&digits).then_some(&tail[digits..])
}

/// The IPv6 address of `[2001:db8::1]:443` or of `2001:db8::1`.
#[cold]
#[inline(never)]
fn ipv6_address(address: &[u8]) -> Option<&[u8]> {
    let ip = match address.strip_prefix(b"[") {
        Some(rest) => {
            let close = rest.iter().position(|&b| b == b']')?;
            after_port(&rest[close + 1..])?
                .is_empty()
                .then_some(&rest[..close])?
        }
        None => address,
    };
    let parsed = core::str::from_utf8(ip).map(str::parse::<core::net::Ipv6Addr>);
    matches!(parsed, Ok(Ok(_))).then_some(ip)
}

/// Formats nanoseconds as milliseconds for the `message` line: `12`, `0.25`.
fn write_millis(nanos: u64, out: &mut Vec<u8>) {
    crate::write::integer(out, nanos / 1_000_000);
    let frac = nanos % 1_000_000;
    if frac != 0 {
        let digits = format_frac(frac);
        out.push(b'.');
        out.extend_from_slice(&digits.0[..digits.1]);
    }
}

/// Six fraction digits without the trailing zeros.
fn format_frac(mut frac: u64) -> ([u8; 6], usize) {
    let mut digits = [b'0'; 6];
    for slot in digits.iter_mut().rev() {
        *slot = b'0' + (frac % 10) as u8;
        frac /= 10;
    }
    let len = 6 - digits.iter().rev().take_while(|&&d| d == b'0').count();
    (digits, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_by_normalised_key() {
        assert_eq!(role(b"responsecode"), Some(Role::ResponseCode));
        assert_eq!(role(b"code"), Some(Role::ResponseCode));
        assert_eq!(role(b"xenvoyoriginalpath"), Some(Role::OriginalPath));
        assert_eq!(
            role(b"xdatadogtraceid"),
            Some(Role::Trace(TraceKey::DatadogTrace))
        );
        assert_eq!(role(b"severity"), Some(Role::Level));
        assert_eq!(role(b"msg"), Some(Role::Message));
        assert_eq!(role(b"responseflagslong"), Some(Role::ResponseFlags));
        assert_eq!(role(b"upstreamhost"), None);
    }

    #[test]
    fn levels() {
        let cases: [(u64, &str, &str); 12] = [
            (200, "-", "info"),
            (204, "", "info"),
            (302, "-", "info"),
            (404, "-", "warn"),
            (499, "DC", "warn"),
            (0, "DC", "warn"),
            (0, "-", "warn"),
            (503, "UH", "error"),
            (200, "UF,URX", "error"),
            (200, "NoHealthyUpstream", "error"),
            (200, "NR", "warn"),
            (200, "XYZ,FI", "info"),
        ];
        for (code, flags, want) in cases {
            assert_eq!(
                level(code, flags.as_bytes()).as_str(),
                want,
                "{code} {flags}"
            );
        }
        assert_eq!(level(200, b"DC,UH"), Level::Error);
    }

    #[test]
    fn every_flag_by_either_name_and_nothing_else() {
        for &(short, long, class) in RESPONSE_FLAGS {
            assert_eq!(flag_class(short.as_bytes()), Some(class), "{short}");
            assert_eq!(flag_class(long.as_bytes()), Some(class), "{long}");
            // Near misses: cut, longer, another case, a zero byte after it.
            for name in [short, long] {
                let cut = &name.as_bytes()[..name.len() - 1];
                let longer = format!("{name}X");
                let lower = name.to_ascii_lowercase();
                let zero = format!("{name}\0");
                for near in [cut, longer.as_bytes(), lower.as_bytes(), zero.as_bytes()] {
                    let found = RESPONSE_FLAGS.iter().find(|f| near == f.0.as_bytes());
                    assert_eq!(flag_class(near), found.map(|f| f.2), "{near:?}");
                }
            }
        }
        assert_eq!(flag_class(b""), None);
        assert_eq!(flag_class(b"\0\0"), None);
    }

    #[test]
    fn flag_table_has_no_duplicates() {
        for (i, a) in RESPONSE_FLAGS.iter().enumerate() {
            for b in &RESPONSE_FLAGS[i + 1..] {
                assert!(a.0 != b.0 && a.1 != b.1, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn integers_and_durations() {
        let integer = |text| integer(text).map(|whole| whole.value);
        let millis_to_nanos = |text| duration(text).map(|d| d.nanos);
        assert_eq!(integer(b"200"), Some(200));
        assert_eq!(integer(b"200.0"), Some(200));
        assert_eq!(integer(b"200.5"), None);
        assert_eq!(integer(b"-"), None);
        assert_eq!(integer(b"-1"), None);
        assert_eq!(integer(b"2e2"), None);
        assert_eq!(integer(b"1."), None);
        assert_eq!(integer(b".5"), None);
        assert_eq!(integer(b"99999999999999999999"), None);
        // Plain digits on either side of the short path's eight, and what it must refuse.
        assert_eq!(integer(b""), None);
        assert_eq!(integer(b"0"), Some(0));
        assert_eq!(integer(b"007"), Some(7));
        assert_eq!(integer(b"12345678"), Some(12_345_678));
        assert_eq!(integer(b"123456789"), Some(123_456_789));
        assert_eq!(integer(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(integer(b"12a"), None);
        assert_eq!(integer(b"1 2"), None);
        assert_eq!(millis_to_nanos(b"12"), Some(12_000_000));
        assert_eq!(millis_to_nanos(b"6.0"), Some(6_000_000));
        assert_eq!(millis_to_nanos(b"0.25"), Some(250_000));
        assert_eq!(millis_to_nanos(b"1.0000019"), Some(1_000_002));
        assert_eq!(millis_to_nanos(b"1.0000014"), Some(1_000_001));
        assert_eq!(millis_to_nanos(b"-"), None);
        assert_eq!(millis_to_nanos(b"18446744073710"), None);
    }

    #[test]
    fn durations_with_exponents_convert_exactly_and_out_of_range_ones_do_not() {
        let millis_to_nanos = |text: &str| duration(text.as_bytes()).map(|d| d.nanos);
        for (text, nanos) in [
            ("1e3", Some(1_000_000_000)),
            ("1E3", Some(1_000_000_000)),
            ("1.5e+2", Some(150_000_000)),
            ("25e-2", Some(250_000)),
            ("1e-6", Some(1)),
            ("5e-7", Some(1)),
            ("4.9e-7", Some(0)),
            ("0e999999999999", Some(0)),
            ("0.000e5", Some(0)),
            ("12.345678912e1", Some(123_456_789)),
            ("1e-999999999999", Some(0)),
            // Datadog reads `duration` as a signed 64-bit number of nanoseconds.
            ("9223372036854", Some(9_223_372_036_854_000_000)),
            ("9223372036855", None),
            ("9.223372036854775807e12", Some(i64::MAX as u64)),
            ("9.223372036854775808e12", None),
            ("1e13", None),
            ("1e30", None),
            ("1e999999999999", None),
            ("-5", None),
            ("-0", None),
            ("-1e3", None),
            ("1e", None),
            ("1e+", None),
            ("e3", None),
            ("1.e3", None),
        ] {
            assert_eq!(millis_to_nanos(text), nanos, "{text}");
        }
    }

    #[test]
    fn numbers_are_written_as_logged_when_that_is_their_decimal_form() {
        let written = |text: &[u8]| {
            let (mut number, mut nanos, mut millis) = (Vec::new(), Vec::new(), Vec::new());
            if let Some(whole) = integer(text) {
                whole.write(&mut number);
            }
            if let Some(duration) = duration(text) {
                duration.write_nanos(&mut nanos);
                duration.write_millis(&mut millis);
            }
            [number, nanos, millis].map(|v| String::from_utf8(v).unwrap())
        };
        assert_eq!(written(b"27"), ["27", "27000000", "27"]);
        assert_eq!(written(b"0"), ["0", "0", "0"]);
        assert_eq!(written(b"007"), ["7", "7000000", "7"]);
        assert_eq!(written(b"00"), ["0", "0", "0"]);
        assert_eq!(written(b"200.0"), ["200", "200000000", "200"]);
        assert_eq!(written(b"0.25"), ["", "250000", "0.25"]);
        // The longest duration is `i64::MAX` nanoseconds (Datadog reads a signed number).
        assert_eq!(
            written(b"9223372036854"),
            ["9223372036854", "9223372036854000000", "9223372036854"]
        );
        assert_eq!(written(b"9223372036855"), ["9223372036855", "", ""]);
        assert_eq!(written(b"18446744073709"), ["18446744073709", "", ""]);
        assert_eq!(written(b"18446744073710"), ["18446744073710", "", ""]);
        assert_eq!(
            written(b"18446744073709551615"),
            ["18446744073709551615", "", ""]
        );
        assert_eq!(written(b"-"), ["", "", ""]);
    }

    #[test]
    fn millis_text() {
        let show = |n| {
            let mut v = Vec::new();
            write_millis(n, &mut v);
            String::from_utf8(v).unwrap()
        };
        assert_eq!(show(12_000_000), "12");
        assert_eq!(show(250_000), "0.25");
        assert_eq!(show(1_000_001), "1.000001");
        assert_eq!(show(0), "0");
    }

    #[test]
    fn ipv4_addresses_are_told_as_core_net_tells_them() {
        let mut texts: Vec<String> = [
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1..2.3",
            ".1.2.3",
            "1.2.3.",
            "1.2.3.4 ",
            "1.2.3.0400",
            "1000.1.1.1",
            "1.2.3.a",
            "",
        ]
        .map(String::from)
        .to_vec();
        let octets = [
            "0", "00", "7", "09", "10", "99", "100", "199", "255", "256", "999", "1000",
        ];
        for a in octets {
            for b in octets {
                texts.push(format!("{a}.{b}.1.{a}"));
            }
        }
        for text in &texts {
            let expected = text
                .parse::<core::net::Ipv4Addr>()
                .ok()
                .map(|_| text.as_bytes());
            assert_eq!(ip_address(text.as_bytes()), expected, "{text}");
            let with_port = format!("{text}:8080");
            assert_eq!(ip_address(with_port.as_bytes()), expected, "{with_port}");
        }
        for bad_port in [
            "1.2.3.4:",
            "1.2.3.4:x",
            "1.2.3.4:123456",
            "[::1]:",
            "[::1]:123456",
            "[::1]x",
            "[::1",
        ] {
            assert_eq!(ip_address(bad_port.as_bytes()), None, "{bad_port}");
        }
    }

    #[test]
    fn addresses_and_versions() {
        assert_eq!(http_version(b"HTTP/1.1"), Some(&b"1.1"[..]));
        assert_eq!(http_version(b"HTTP/2"), Some(&b"2"[..]));
        assert_eq!(http_version(b"-"), None);
        assert_eq!(http_version(b"HTTP/"), None);
        assert_eq!(http_version(b"HTTP/1.0"), Some(&b"1.0"[..]));
        assert_eq!(http_version(b"HTTP/3"), Some(&b"3"[..]));
        assert_eq!(http_version(b"http/1.1"), Some(&b"1.1"[..]));
        assert_eq!(http_version(b"HTTP/1.1 "), None);
        for (xff, client) in [
            ("173.252.99.154, 23.235.39.44", "173.252.99.154"),
            ("203.0.113.7:5555, 10.0.0.1", "203.0.113.7"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("2001:db8::1", "2001:db8::1"),
            (" 10.0.0.1 ,1.2.3.4", "10.0.0.1"),
            ("10.0.0.1:80,1.2.3.4", "10.0.0.1"),
        ] {
            assert_eq!(
                first_forwarded(xff.as_bytes()),
                Some(client.as_bytes()),
                "{xff}"
            );
        }
        assert_eq!(first_forwarded(b"-"), None);
        assert_eq!(first_forwarded(b" , 1.2.3.4"), None);
        for not_an_address in [
            &b"unknown, 1.2.3.4"[..],
            b"_hidden",
            b"1.2.3",
            b"[::1",
            b"1.2.3.4x, 5.6.7.8",
            b"1.2.3.4 x",
            b"1.2.3.4.5",
            b"1.2.3.4:, 5.6.7.8",
            b"1.2.3.1000",
        ] {
            assert_eq!(first_forwarded(not_an_address), None);
        }
        assert_eq!(ip_address(b"/var/run/envoy.sock"), None);
        assert_eq!(
            ip_address(b"::ffff:10.0.0.1"),
            Some(&b"::ffff:10.0.0.1"[..])
        );
        assert_eq!(ip_address(b"@envoy-admin"), None);
        assert_eq!(ip_address(b"172.17.0.1:62724"), Some(&b"172.17.0.1"[..]));
        assert_eq!(ip_address(b"[2001:db8::1]:443"), Some(&b"2001:db8::1"[..]));
        assert_eq!(ip_address(b"2001:db8::1"), Some(&b"2001:db8::1"[..]));
        assert_eq!(ip_address(b"10.0.0.1"), Some(&b"10.0.0.1"[..]));
        assert_eq!(ip_address(b"-"), None);
    }

    /// What [`ip_address`] should give, from `core::net` alone.
    fn ip_by_core_net(address: &str) -> Option<&str> {
        use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        let is_port =
            |port: &str| (1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit());
        if let Some(rest) = address.strip_prefix('[') {
            let (ip, port) = rest.split_once(']')?;
            let port_ok = port.is_empty() || port.strip_prefix(':').is_some_and(is_port);
            return (port_ok && ip.parse::<Ipv6Addr>().is_ok()).then_some(ip);
        }
        if address.parse::<IpAddr>().is_ok() {
            return Some(address);
        }
        let (ip, port) = address.rsplit_once(':')?;
        (ip.parse::<Ipv4Addr>().is_ok() && is_port(port)).then_some(ip)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(4096),
            failure_persistence: None,
            rng_seed: proptest::test_runner::RngSeed::Fixed(20261123),
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Addresses built from the bytes that make them up, and ones that nearly do.
        #[test]
        fn ip_addresses_are_told_as_core_net_tells_them(
            address in "[0-9.:]{0,20}|\\[[0-9a-f:.]{0,12}\\](:[0-9]{0,7})?|[0-2]?[0-9]{1,2}(\\.[0-9]{1,3}){3}(:[0-9]{0,7}x?)?[ ,]?",
        ) {
            proptest::prop_assert_eq!(
                ip_address(address.as_bytes()),
                ip_by_core_net(&address).map(str::as_bytes)
            );
        }
    }
}
