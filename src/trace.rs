//! Trace context: finding `dd.trace_id` / `dd.span_id` in header-like values (see the trace-id
//! rules in the README).
//!
//! Every parser takes raw value bytes (JSON string content without the quotes, or the text of
//! a JSON number), never allocates and never panics. A parser returns `None` for anything the
//! rules call invalid (missing, empty, `-`, zero, wrong form, overflow), so the caller can fall
//! through to the next source. A returned [`TraceContext`] never has a zero low trace id.
//!
//! ```rust
//! use envoy_dd::trace::{parse_w3c, TraceIdFormat, TraceSource};
//!
//! let ctx = parse_w3c(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
//! assert_eq!(ctx.source, TraceSource::W3c);
//! assert_eq!(ctx.trace_id_string(TraceIdFormat::Decimal), "9532127138774266268");
//! assert_eq!(ctx.trace_id_string(TraceIdFormat::Hex), "0af7651916cd43dd8448eb211c80319c");
//! assert_eq!(ctx.span_id, Some(0xb7ad_6b71_6920_3331));
//! ```

use crate::number;

/// Which header family a trace context came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TraceSource {
    /// An existing `dd.trace_id` / `dd.span_id` already in the record (app logs).
    Existing,
    /// `x-datadog-trace-id` / `x-datadog-parent-id` (+ `x-datadog-tags`).
    Datadog,
    /// W3C `traceparent`.
    W3c,
    /// `x-b3-traceid` / `x-b3-spanid`.
    B3Multi,
    /// Single `b3` header.
    B3Single,
    /// AWS `x-amzn-trace-id`.
    XRay,
    /// The request-id join: an earlier record with the same request id (the application's
    /// own line) had this context ([`crate::Config::request_id_join`]).
    RequestId,
}

impl TraceSource {
    /// Every source, in precedence order (highest first).
    pub const ALL: [TraceSource; 7] = [
        TraceSource::Existing,
        TraceSource::Datadog,
        TraceSource::W3c,
        TraceSource::B3Multi,
        TraceSource::B3Single,
        TraceSource::XRay,
        TraceSource::RequestId,
    ];

    /// Short stable name, e.g. for diagnostics: `existing`, `datadog`, `w3c`, `b3multi`, `b3`,
    /// `xray`, `request_id`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            TraceSource::Existing => "existing",
            TraceSource::Datadog => "datadog",
            TraceSource::W3c => "w3c",
            TraceSource::B3Multi => "b3multi",
            TraceSource::B3Single => "b3",
            TraceSource::XRay => "xray",
            TraceSource::RequestId => "request_id",
        }
    }
}

/// How to print 128-bit trace ids (the `trace_id_128` option).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TraceIdFormat {
    /// Lower 64 bits in decimal (accepted everywhere).
    #[default]
    Decimal,
    /// 32 lower-case hex digits when the upper half is non-zero, else decimal.
    Hex,
}

impl core::str::FromStr for TraceIdFormat {
    type Err = &'static str;

    /// `decimal` or `hex`, as the CLI and configs spell them.
    ///
    /// ```
    /// use envoy_dd::TraceIdFormat;
    /// assert_eq!("hex".parse(), Ok(TraceIdFormat::Hex));
    /// assert!("128".parse::<TraceIdFormat>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "decimal" => Ok(TraceIdFormat::Decimal),
            "hex" => Ok(TraceIdFormat::Hex),
            _ => Err("expected `decimal` or `hex`"),
        }
    }
}

/// A resolved trace context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// Full 128-bit trace id; the low 64 bits are never zero.
    pub trace_id: u128,
    /// Span id, when the source carried a valid (non-zero) one.
    pub span_id: Option<u64>,
    /// Where the context came from.
    pub source: TraceSource,
}

impl TraceContext {
    /// The lower 64 bits of the trace id (what Datadog correlates on).
    #[must_use]
    pub fn trace_id_low(&self) -> u64 {
        self.trace_id as u64
    }

    /// The upper 64 bits of the trace id (zero for 64-bit ids).
    #[must_use]
    pub fn trace_id_high(&self) -> u64 {
        (self.trace_id >> 64) as u64
    }

    /// Appends the trace id digits (no quotes) to `out`: decimal of the low 64 bits, or with
    /// `Hex` and a non-zero upper half, 32 lower-case hex digits. Never decimal of 128 bits
    /// (dd-trace-py#10103: Datadog would not match it).
    pub fn write_trace_id(&self, format: TraceIdFormat, out: &mut Vec<u8>) {
        if format == TraceIdFormat::Hex && self.trace_id_high() != 0 {
            write_hex32(self.trace_id, out);
        } else {
            crate::write::integer(out, self.trace_id_low());
        }
    }

    /// Appends the span id in decimal (nothing when absent).
    pub fn write_span_id(&self, out: &mut Vec<u8>) {
        if let Some(span) = self.span_id {
            crate::write::integer(out, span);
        }
    }

    /// The trace id as a `String` (convenience over [`TraceContext::write_trace_id`]).
    #[must_use]
    pub fn trace_id_string(&self, format: TraceIdFormat) -> String {
        let mut out = Vec::with_capacity(32);
        self.write_trace_id(format, &mut out);
        // Only ASCII digits and hex letters were written.
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Appends `v` as exactly 32 lower-case hex digits.
fn write_hex32(v: u128, out: &mut Vec<u8>) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..32).rev() {
        out.push(DIGITS[((v >> (shift * 4)) & 0xf) as usize]);
    }
}

internal! {
/// Lower-case ASCII letters/digits of `key`, dropping every other byte, into `buf`; `None` when
/// the result would be longer than 32 bytes (no known key is that long). Non-ASCII bytes are
/// dropped.
pub fn normalize_key<'b>(key: &[u8], buf: &'b mut [u8; 32]) -> Option<&'b [u8]> {
    let mut len = 0;
    for &b in key.iter().filter(|b| b.is_ascii_alphanumeric()) {
        *buf.get_mut(len)? = b.to_ascii_lowercase();
        len += 1;
    }
    buf.get(..len)
}
}

internal! {
/// Which slot a normalised key feeds, if any (the keys column of the README's trace-id table, minus
/// the `dd` object, which the caller handles as the `Existing` source).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceKey {
    /// `traceid`, `xdatadogtraceid`, `ddtraceid`, `datadogtraceid`.
    DatadogTrace,
    /// `spanid`, `parentid`, `xdatadogparentid`, `ddspanid`, `datadogparentid`.
    DatadogSpan,
    /// `xdatadogtags`.
    DatadogTags,
    /// `traceparent`.
    TraceParent,
    /// `xb3traceid`.
    B3Trace,
    /// `xb3spanid`.
    B3Span,
    /// `b3`.
    B3Single,
    /// `xamzntraceid`.
    XRay,
}
}

/// Number of [`TraceKey`] variants (slots in [`TraceCandidates`]).
const KEY_COUNT: usize = 8;

internal! {
/// Maps a normalised key (see [`normalize_key`]) to its trace slot; `None` for other keys.
#[must_use]
pub fn classify_key(normalized: &[u8]) -> Option<TraceKey> {
    Some(match normalized {
        b"traceid" | b"xdatadogtraceid" | b"ddtraceid" | b"datadogtraceid" => {
            TraceKey::DatadogTrace
        }
        b"spanid" | b"parentid" | b"xdatadogparentid" | b"ddspanid" | b"datadogparentid" => {
            TraceKey::DatadogSpan
        }
        b"xdatadogtags" => TraceKey::DatadogTags,
        b"traceparent" => TraceKey::TraceParent,
        b"xb3traceid" => TraceKey::B3Trace,
        b"xb3spanid" => TraceKey::B3Span,
        b"b3" => TraceKey::B3Single,
        b"xamzntraceid" => TraceKey::XRay,
        _ => return None,
    })
}
}

// ---------------------------------------------------------------------------------------------
// Ids from their digits ([`crate::number`]). Hex is lower-case only everywhere (upper-case is
// invalid).

/// Exactly 32 lower-case hex digits whose low 64 bits are non-zero.
fn parse_hex32_id(s: &[u8]) -> Option<u128> {
    number::hex(s, 32).filter(|&v| v as u64 != 0)
}

/// Non-zero decimal u64: ASCII digits only (leading zeros are fine). `None` on empty input,
/// `-`, a sign, a fraction, an exponent, zero or overflow. JSON numbers are parsed from their
/// digits, never through f64, so ids above 2^53 stay exact.
#[must_use]
pub fn parse_decimal_id(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    let v = number::decimal(value)?;
    (v != 0).then_some(v)
}

/// A Datadog-family trace id: exactly 32 lower-case hex digits (OpenTelemetry-style 128-bit id,
/// checked first because 32 decimal digits are also valid hex) or a non-zero decimal u64.
fn parse_dd_trace_id(value: &[u8]) -> Option<u128> {
    if value.len() == 32 {
        return parse_hex32_id(value);
    }
    parse_decimal_id(value).map(u128::from)
}

/// An existing `dd.trace_id` / `dd.span_id` value (from an app log): decimal u64, or exactly 32
/// lower-case hex digits for a 128-bit id. Returns the 128-bit value; `None` if invalid.
#[must_use]
pub fn parse_existing_trace_id(value: &[u8]) -> Option<u128> {
    parse_dd_trace_id(value)
}

/// Upper 64 bits from an `x-datadog-tags` value: the first `_dd.p.tid` entry of the
/// comma-separated `k=v` list, when it is exactly 16 lower-case hex digits.
fn parse_dd_tid(tags: &[u8]) -> Option<u64> {
    // A key has no `=`: the entry that starts with this is the one with the key.
    const KEY: &[u8] = b"_dd.p.tid=";
    let mut rest = tags;
    loop {
        let entry = trim_spaces_start(rest);
        let end = entry.iter().position(|&b| b == b',');
        if entry.starts_with(KEY) {
            let value = &entry[KEY.len()..end.unwrap_or(entry.len())];
            return number::hex16(trim_spaces_end(value));
        }
        rest = &entry[end? + 1..];
    }
}

/// Datadog headers: `x-datadog-trace-id` (decimal u64 or 32 lower-case hex), optional
/// `x-datadog-parent-id` (decimal u64; invalid just means no span) and optional
/// `x-datadog-tags` (`_dd.p.tid=<16 hex>` supplies the upper 64 bits of a decimal trace id).
#[must_use]
pub fn parse_datadog(
    trace_id: &[u8],
    span_id: Option<&[u8]>,
    tags: Option<&[u8]>,
) -> Option<TraceContext> {
    let mut trace = parse_dd_trace_id(trace_id)?;
    // A 32-hex id already carries its upper half; only a 64-bit id takes it from the tags.
    if trace >> 64 == 0 {
        if let Some(high) = tags.and_then(parse_dd_tid) {
            trace |= u128::from(high) << 64;
        }
    }
    Some(TraceContext {
        trace_id: trace,
        span_id: span_id.and_then(parse_decimal_id),
        source: TraceSource::Datadog,
    })
}

/// W3C `traceparent`: `vv-<32 hex>-<16 hex>-<2 hex>`, lower-case only. Version `ff` is invalid,
/// version `00` must be exactly 55 bytes, later versions may append `-...` after the flags.
/// All-zero trace or parent ids are invalid, and so is a trace id whose low 64 bits are zero
/// (Datadog could not correlate it).
#[must_use]
pub fn parse_w3c(traceparent: &[u8]) -> Option<TraceContext> {
    let head = traceparent.get(..55)?;
    let rest = traceparent.get(55..).unwrap_or_default();
    let version = number::hex(head.get(..2)?, 2)?;
    if version == 0xff || (version == 0 && !rest.is_empty()) {
        return None;
    }
    if !rest.is_empty() && rest.first() != Some(&b'-') {
        return None;
    }
    if head.get(2) != Some(&b'-') || head.get(35) != Some(&b'-') || head.get(52) != Some(&b'-') {
        return None;
    }
    let trace = parse_hex32_id(head.get(3..35)?)?;
    let parent = number::hex16(head.get(36..52)?).filter(|&p| p != 0)?;
    number::hex(head.get(53..55)?, 2)?; // flags: form only, sampling is not our business
    Some(TraceContext {
        trace_id: trace,
        span_id: Some(parent),
        source: TraceSource::W3c,
    })
}

/// A B3 trace id: 16 or 32 lower-case hex digits, low 64 bits non-zero.
fn parse_b3_trace_id(s: &[u8]) -> Option<u128> {
    match s.len() {
        16 => number::hex16(s).filter(|&v| v != 0).map(u128::from),
        32 => parse_hex32_id(s),
        _ => None,
    }
}

/// B3 multi headers: `x-b3-traceid` (16 or 32 lower-case hex) and optional `x-b3-spanid`
/// (16 lower-case hex; invalid or zero just means no span).
#[must_use]
pub fn parse_b3_multi(trace_id: &[u8], span_id: Option<&[u8]>) -> Option<TraceContext> {
    Some(TraceContext {
        trace_id: parse_b3_trace_id(trace_id)?,
        span_id: span_id.and_then(number::hex16).filter(|&v| v != 0),
        source: TraceSource::B3Multi,
    })
}

/// Single `b3` header: `<trace>-<span>[-<sampled>[-<parent>]]`, trace 16 or 32 lower-case hex,
/// span and parent 16 lower-case hex, sampled one of `0`, `1`, `d`. A bare sampling flag
/// (`0`, `1`, `d`) carries no ids and is invalid. A well-formed all-zero span gives no span.
#[must_use]
pub fn parse_b3_single(b3: &[u8]) -> Option<TraceContext> {
    let mut parts = b3.split(|&b| b == b'-');
    let trace = parse_b3_trace_id(parts.next()?)?;
    let span = number::hex16(parts.next()?)?;
    if let Some(sampled) = parts.next() {
        if !matches!(sampled, b"0" | b"1" | b"d") {
            return None;
        }
        if let Some(parent) = parts.next() {
            number::hex16(parent)?;
        }
    }
    if parts.next().is_some() {
        return None;
    }
    Some(TraceContext {
        trace_id: trace,
        span_id: (span != 0).then_some(span),
        source: TraceSource::B3Single,
    })
}

/// AWS X-Ray `x-amzn-trace-id`: `;`-separated `Key=value` fields in any order, spaces allowed
/// around them. `Root=1-<8 hex>-<24 hex>` is required; `Parent=<16 hex>` gives the span id;
/// `Sampled`, `Self` and unknown fields are ignored; the first occurrence of a field counts.
/// The trace id is the last 16 of the 24 hex digits, masked with `0x7FFF_FFFF_FFFF_FFFF`
/// (how Datadog's tracers map X-Ray ids) unless the 24 digits start with `00000000` (an id that
/// was a Datadog id to begin with). X-Ray ids are 64-bit here: the upper half is zero.
///
/// Hex must be lower-case, as in every other format: X-Ray itself only emits lower-case, and
/// one rule for all sources keeps "upper-case hex is invalid" simple to reason about.
#[must_use]
pub fn parse_xray(header: &[u8]) -> Option<TraceContext> {
    let mut root = None;
    let mut parent = None;
    for field in header.split(|&b| b == b';') {
        let Some((key, value)) = split_once(trim_spaces(field), b'=') else {
            continue;
        };
        match trim_spaces(key) {
            b"Root" if root.is_none() => root = Some(trim_spaces(value)),
            b"Parent" if parent.is_none() => parent = Some(trim_spaces(value)),
            _ => {}
        }
    }
    let trace = parse_xray_root(root?)?;
    Some(TraceContext {
        trace_id: u128::from(trace),
        span_id: parent.and_then(number::hex16).filter(|&v| v != 0),
        source: TraceSource::XRay,
    })
}

/// `1-<8 hex>-<24 hex>` → the masked (or not, see [`parse_xray`]) non-zero 64-bit trace id.
fn parse_xray_root(root: &[u8]) -> Option<u64> {
    let rest = root.strip_prefix(b"1-")?;
    let (epoch, unique) = split_once(rest, b'-')?;
    number::hex(epoch, 8)?;
    number::hex(unique, 24)?;
    let low = number::hex16(unique.get(8..)?)?;
    let id = if unique.starts_with(b"00000000") {
        low
    } else {
        low & 0x7FFF_FFFF_FFFF_FFFF
    };
    (id != 0).then_some(id)
}

fn trim_spaces(s: &[u8]) -> &[u8] {
    trim_spaces_end(trim_spaces_start(s))
}

fn trim_spaces_start(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    &s[start..]
}

fn trim_spaces_end(s: &[u8]) -> &[u8] {
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |i| i + 1);
    &s[..end]
}

fn split_once(s: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let i = s.iter().position(|&b| b == sep)?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

// ---------------------------------------------------------------------------------------------

internal! {
/// Collects candidate values of one record (or one set of HTTP headers) and resolves them by the
/// Precedence: Datadog headers > W3C > B3 multi > B3 single > X-Ray. The `Existing`
/// source (a `dd` object) is handled by the caller, which checks it before calling `resolve`.
///
/// ```rust
/// use envoy_dd::trace::{TraceCandidates, TraceSource};
///
/// let tp = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
/// let mut c = TraceCandidates::default();
/// // Envoy's untyped JSON prints "-" for a missing header: it does not block a later source.
/// assert!(c.offer_raw_key(b"trace_id", b"-"));
/// assert!(c.offer_raw_key(b"traceparent", tp));
/// assert!(!c.offer_raw_key(b"method", b"GET"));
/// let ctx = c.resolve().unwrap();
/// assert_eq!(ctx.source, TraceSource::W3c);
///
/// // A valid Datadog id beats W3C.
/// c.offer_raw_key(b"X-Datadog-Trace-Id", b"1234");
/// c.offer_raw_key(b"x-datadog-parent-id", b"5678");
/// let ctx = c.resolve().unwrap();
/// assert_eq!((ctx.source, ctx.trace_id, ctx.span_id), (TraceSource::Datadog, 1234, Some(5678)));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceCandidates<'a> {
    /// One slot per [`TraceKey`], indexed by `key as usize`.
    slots: [Option<&'a [u8]>; KEY_COUNT],
}
}

// Some methods serve the benchmarks and the `http` feature only.
#[cfg_attr(not(feature = "internals"), allow(dead_code))]
impl<'a> TraceCandidates<'a> {
    /// Offer a value under its key kind. The first offered value of a kind is kept, but a later
    /// one replaces it when the kept one is invalid for that kind (e.g. first `-` then a number),
    /// so a placeholder under one key name never hides a real id under another.
    pub fn offer(&mut self, key: TraceKey, value: &'a [u8]) {
        let Some(slot) = self.slots.get_mut(key as usize) else {
            return;
        };
        match slot {
            Some(kept) if slot_valid(key, kept) => {}
            _ => *slot = Some(value),
        }
    }

    /// Convenience: normalise + classify + offer; returns whether the key was a trace key.
    pub fn offer_raw_key(&mut self, key: &[u8], value: &'a [u8]) -> bool {
        let mut buf = [0u8; 32];
        match normalize_key(key, &mut buf).and_then(classify_key) {
            Some(kind) => {
                self.offer(kind, value);
                true
            }
            None => false,
        }
    }

    /// The first valid source in precedence order, or `None` when no source is valid.
    #[must_use]
    pub fn resolve(&self) -> Option<TraceContext> {
        self.resolve_for(TraceIdFormat::Hex)
    }

    /// [`TraceCandidates::resolve`] for writing the trace id in `format`: with `Decimal`, only
    /// the lower half is written, so the upper half of a 64-bit Datadog id is not looked up in
    /// `x-datadog-tags` (it is zero then).
    pub(crate) fn resolve_for(&self, format: TraceIdFormat) -> Option<TraceContext> {
        let get = |k: TraceKey| self.slots.get(k as usize).copied().flatten();
        let tags = match format {
            TraceIdFormat::Hex => get(TraceKey::DatadogTags),
            TraceIdFormat::Decimal => None,
        };
        let datadog = || {
            parse_datadog(
                get(TraceKey::DatadogTrace)?,
                get(TraceKey::DatadogSpan),
                tags,
            )
        };
        let b3_multi = || parse_b3_multi(get(TraceKey::B3Trace)?, get(TraceKey::B3Span));
        datadog()
            .or_else(|| parse_w3c(get(TraceKey::TraceParent)?))
            .or_else(b3_multi)
            .or_else(|| parse_b3_single(get(TraceKey::B3Single)?))
            .or_else(|| parse_xray(get(TraceKey::XRay)?))
    }

    /// Whether no value has been offered at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }

    /// The candidates of a record whose own keys and its envelope's were offered apart. Per
    /// key, the record's value wins unless it is invalid, as if offered first. But a span id
    /// (and Datadog's `x-datadog-tags`, the trace id's upper half) is only taken from the side
    /// whose trace id is used, or from a side that has no valid trace id of that source: ids
    /// of two different traces are never paired.
    pub(crate) fn of_sides(record: &Self, envelope: &Self) -> Self {
        // FireLens envelopes have no trace keys: nearly always, nothing to merge.
        if envelope.is_empty() {
            return *record;
        }
        let valid = |side: &Self, key: TraceKey| {
            side.slots[key as usize].is_some_and(|value| slot_valid(key, value))
        };
        let mut merged = *record;
        for key in 0..KEY_COUNT {
            if merged.slots[key].is_none() {
                merged.slots[key] = envelope.slots[key];
            }
        }
        for key in [
            TraceKey::DatadogTrace,
            TraceKey::TraceParent,
            TraceKey::B3Trace,
            TraceKey::B3Single,
            TraceKey::XRay,
        ] {
            if !valid(record, key) && valid(envelope, key) {
                merged.slots[key as usize] = envelope.slots[key as usize];
            }
        }
        let pairs: [(TraceKey, &[TraceKey]); 2] = [
            (
                TraceKey::DatadogTrace,
                &[TraceKey::DatadogSpan, TraceKey::DatadogTags],
            ),
            (TraceKey::B3Trace, &[TraceKey::B3Span]),
        ];
        for (trace, parts) in pairs {
            let (own, other) = match valid(record, trace) || !valid(envelope, trace) {
                true => (record, envelope),
                false => (envelope, record),
            };
            for &part in parts {
                merged.slots[part as usize] = match valid(own, part) || valid(other, trace) {
                    true => own.slots[part as usize],
                    false => other.slots[part as usize].or(own.slots[part as usize]),
                };
            }
        }
        merged
    }
}

/// Whether `value` is usable in its slot; an unusable kept value may be replaced.
fn slot_valid(key: TraceKey, value: &[u8]) -> bool {
    match key {
        TraceKey::DatadogTrace => parse_dd_trace_id(value).is_some(),
        TraceKey::DatadogSpan => parse_decimal_id(value).is_some(),
        TraceKey::DatadogTags => parse_dd_tid(value).is_some(),
        TraceKey::TraceParent => parse_w3c(value).is_some(),
        TraceKey::B3Trace => parse_b3_trace_id(value).is_some(),
        TraceKey::B3Span => number::hex16(value).is_some_and(|v| v != 0),
        TraceKey::B3Single => parse_b3_single(value).is_some(),
        TraceKey::XRay => parse_xray(value).is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const W3C_OK: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const W3C_LOW: u64 = 0x8448_eb21_1c80_319c;
    const W3C_HIGH: u64 = 0x0af7_6519_16cd_43dd;
    const W3C_SPAN: u64 = 0xb7ad_6b71_6920_3331;

    /// Expected `(trace_id, span_id)` of a parse, `None` when it must fail.
    type Ids = Option<(u128, Option<u64>)>;

    fn u128_of(high: u64, low: u64) -> u128 {
        (u128::from(high) << 64) | u128::from(low)
    }

    #[test]
    fn decimal_ids() {
        let cases: &[(&str, Option<u64>)] = &[
            ("1", Some(1)),
            ("0001", Some(1)),
            ("9007199254740993", Some(9_007_199_254_740_993)), // 2^53 + 1, not f64-exact
            ("18446744073709551615", Some(u64::MAX)),
            ("018446744073709551615", Some(u64::MAX)),
            ("18446744073709551616", None), // overflow
            ("99999999999999999999999", None),
            ("0", None),
            ("000", None),
            ("", None),
            ("-", None),
            ("null", None),
            ("-1", None),
            ("+1", None),
            ("1.0", None),
            ("200.0", None),
            ("1e3", None),
            (" 1", None),
            ("1 ", None),
            ("0x10", None),
        ];
        for &(input, want) in cases {
            assert_eq!(parse_decimal_id(input.as_bytes()), want, "input {input:?}");
        }
    }

    #[test]
    fn existing_ids() {
        let cases: &[(&str, Option<u128>)] = &[
            ("123", Some(123)),
            ("18446744073709551615", Some(u128::from(u64::MAX))),
            ("18446744073709551616", None),
            (
                "0af7651916cd43dd8448eb211c80319c",
                Some(u128_of(W3C_HIGH, W3C_LOW)),
            ),
            ("0AF7651916CD43DD8448EB211C80319C", None),
            ("0af7651916cd43dd0000000000000000", None), // low half zero
            ("00000000000000000000000000000000", None),
            ("00000000000000000000000000000001", Some(1)), // 32 digits: read as hex
            ("00000000000000000000000000000010", Some(16)),
            ("0af7651916cd43dd8448eb211c80319", None), // 31 hex
            ("8448eb211c80319c", None),                // 16 hex is not a Datadog id
            ("-", None),
            ("", None),
            ("0", None),
        ];
        for &(input, want) in cases {
            assert_eq!(
                parse_existing_trace_id(input.as_bytes()),
                want,
                "input {input:?}"
            );
        }
    }

    #[test]
    fn datadog() {
        let tid = "_dd.p.dm=-4,_dd.p.tid=640cfd8d00000000";
        let high = 0x640c_fd8d_0000_0000u64;
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            Option<(u128, Option<u64>)>,
        );
        let cases: &[Case] = &[
            ("123", Some("456"), None, Some((123, Some(456)))),
            ("123", None, None, Some((123, None))),
            ("123", Some("-"), None, Some((123, None))), // invalid span: source still valid
            ("123", Some("0"), None, Some((123, None))),
            ("123", Some("18446744073709551616"), None, Some((123, None))),
            ("123", Some("1c8"), None, Some((123, None))), // span is decimal only
            (
                "9007199254740993",
                Some("9007199254740993"),
                None,
                Some((9_007_199_254_740_993, Some(9_007_199_254_740_993))),
            ),
            (
                "18446744073709551615",
                None,
                None,
                Some((u128::from(u64::MAX), None)),
            ),
            ("18446744073709551616", Some("1"), None, None),
            ("0", Some("1"), None, None),
            ("-", Some("1"), None, None),
            ("", Some("1"), None, None),
            ("1c8", Some("1"), None, None),
            (
                "0af7651916cd43dd8448eb211c80319c",
                Some("7"),
                None,
                Some((u128_of(W3C_HIGH, W3C_LOW), Some(7))),
            ),
            ("0AF7651916CD43DD8448EB211C80319C", None, None, None),
            // _dd.p.tid: valid, alone, with spaces, malformed, zero, ignored for 32-hex ids.
            ("123", None, Some(tid), Some((u128_of(high, 123), None))),
            (
                "123",
                None,
                Some("_dd.p.tid=640cfd8d00000000"),
                Some((u128_of(high, 123), None)),
            ),
            (
                "123",
                None,
                Some("_dd.p.dm=-4, _dd.p.tid=640cfd8d00000000 "),
                Some((u128_of(high, 123), None)),
            ),
            (
                "123",
                None,
                Some("_dd.p.tid=640CFD8D00000000"),
                Some((123, None)),
            ),
            (
                "123",
                None,
                Some("_dd.p.tid=640cfd8d0000000"),
                Some((123, None)),
            ),
            (
                "123",
                None,
                Some("_dd.p.tid=640cfd8d000000000"),
                Some((123, None)),
            ),
            ("123", None, Some("_dd.p.tid="), Some((123, None))),
            ("123", None, Some("_dd.p.tid"), Some((123, None))),
            (
                "123",
                None,
                Some("_dd.p.tid=0000000000000000"),
                Some((123, None)),
            ),
            ("123", None, Some("_dd.p.dm=-4"), Some((123, None))),
            ("123", None, Some("-"), Some((123, None))),
            ("123", None, Some(""), Some((123, None))),
            (
                "0af7651916cd43dd8448eb211c80319c",
                None,
                Some(tid),
                Some((u128_of(W3C_HIGH, W3C_LOW), None)),
            ),
        ];
        for &(trace, span, tags, want) in cases {
            let got = parse_datadog(
                trace.as_bytes(),
                span.map(str::as_bytes),
                tags.map(str::as_bytes),
            );
            let got = got.map(|c| {
                assert_eq!(c.source, TraceSource::Datadog);
                (c.trace_id, c.span_id)
            });
            assert_eq!(got, want, "trace {trace:?} span {span:?} tags {tags:?}");
        }
    }

    #[test]
    fn w3c() {
        let ok = Some((u128_of(W3C_HIGH, W3C_LOW), W3C_SPAN));
        let cases: &[(&str, Option<(u128, u64)>)] = &[
            (W3C_OK, ok),
            (
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
                ok,
            ),
            (
                "00-0000000000000000000000000000000a-b7ad6b7169203331-01",
                Some((10, W3C_SPAN)),
            ),
            // Future versions may carry more fields; version 00 may not.
            (
                "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-the-future",
                ok,
            ),
            (
                "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                ok,
            ),
            (
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
                None,
            ),
            (
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01 ",
                None,
            ),
            (
                "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",
                None,
            ),
            (
                "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                None,
            ),
            (
                "FF-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                None,
            ),
            (
                "0g-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                None,
            ),
            (
                "00-00000000000000000000000000000000-b7ad6b7169203331-01",
                None,
            ),
            (
                "00-0af7651916cd43dd0000000000000000-b7ad6b7169203331-01",
                None,
            ), // low 64 zero
            (
                "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
                None,
            ),
            (
                "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
                None,
            ),
            (
                "00-0af7651916cd43dd8448eb211c80319c-B7AD6B7169203331-01",
                None,
            ),
            (
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0G",
                None,
            ),
            (
                "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",
                None,
            ), // 31 hex
            (
                "00-0af7651916cd43dd8448eb211c80319c0-b7ad6b716920333-01",
                None,
            ),
            (
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",
                None,
            ),
            ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331", None),
            (
                "00_0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331_01",
                None,
            ),
            ("-", None),
            ("", None),
        ];
        for &(input, want) in cases {
            let got = parse_w3c(input.as_bytes()).map(|c| {
                assert_eq!(c.source, TraceSource::W3c);
                (c.trace_id, c.span_id.unwrap())
            });
            assert_eq!(got, want, "input {input:?}");
        }
    }

    #[test]
    fn b3_multi() {
        let cases: &[(&str, Option<&str>, Ids)] = &[
            (
                "8448eb211c80319c",
                Some("b7ad6b7169203331"),
                Some((u128::from(W3C_LOW), Some(W3C_SPAN))),
            ),
            (
                "0af7651916cd43dd8448eb211c80319c",
                Some("b7ad6b7169203331"),
                Some((u128_of(W3C_HIGH, W3C_LOW), Some(W3C_SPAN))),
            ),
            ("8448eb211c80319c", None, Some((u128::from(W3C_LOW), None))),
            (
                "8448eb211c80319c",
                Some("-"),
                Some((u128::from(W3C_LOW), None)),
            ),
            (
                "8448eb211c80319c",
                Some("0000000000000000"),
                Some((u128::from(W3C_LOW), None)),
            ),
            (
                "8448eb211c80319c",
                Some("B7AD6B7169203331"),
                Some((u128::from(W3C_LOW), None)),
            ),
            (
                "8448eb211c80319c",
                Some("b7ad6b716920333"),
                Some((u128::from(W3C_LOW), None)),
            ),
            ("8448EB211C80319C", Some("b7ad6b7169203331"), None),
            ("0000000000000000", Some("b7ad6b7169203331"), None),
            ("0af7651916cd43dd0000000000000000", None, None),
            ("8448eb211c80319", None, None),   // 15 hex
            ("08448eb211c80319c", None, None), // 17 hex
            ("123", None, None),
            ("-", None, None),
            ("", None, None),
        ];
        for &(trace, span, want) in cases {
            let got = parse_b3_multi(trace.as_bytes(), span.map(str::as_bytes)).map(|c| {
                assert_eq!(c.source, TraceSource::B3Multi);
                (c.trace_id, c.span_id)
            });
            assert_eq!(got, want, "trace {trace:?} span {span:?}");
        }
    }

    #[test]
    fn b3_single() {
        let ok64 = Some((u128::from(W3C_LOW), Some(W3C_SPAN)));
        let cases: &[(&str, Ids)] = &[
            ("8448eb211c80319c-b7ad6b7169203331", ok64),
            ("8448eb211c80319c-b7ad6b7169203331-1", ok64),
            ("8448eb211c80319c-b7ad6b7169203331-0", ok64),
            ("8448eb211c80319c-b7ad6b7169203331-d", ok64),
            ("8448eb211c80319c-b7ad6b7169203331-1-05e3ac9a4f6e3b90", ok64),
            (
                "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",
                Some((u128_of(W3C_HIGH, W3C_LOW), Some(W3C_SPAN))),
            ),
            (
                "8448eb211c80319c-0000000000000000",
                Some((u128::from(W3C_LOW), None)),
            ),
            ("0", None),
            ("1", None),
            ("d", None),
            ("8448eb211c80319c", None),
            ("8448eb211c80319c-", None),
            ("8448eb211c80319c-b7ad6b7169203331-", None),
            ("8448eb211c80319c-b7ad6b7169203331-2", None),
            ("8448eb211c80319c-b7ad6b7169203331-true", None),
            ("8448eb211c80319c-b7ad6b7169203331-1-", None),
            ("8448eb211c80319c-b7ad6b7169203331-1-05e3ac9a4f6e3b9", None),
            (
                "8448eb211c80319c-b7ad6b7169203331-1-05e3ac9a4f6e3b90-x",
                None,
            ),
            ("8448EB211C80319C-b7ad6b7169203331", None),
            ("8448eb211c80319c-B7AD6B7169203331", None),
            ("0000000000000000-b7ad6b7169203331", None),
            ("-", None),
            ("", None),
        ];
        for &(input, want) in cases {
            let got = parse_b3_single(input.as_bytes()).map(|c| {
                assert_eq!(c.source, TraceSource::B3Single);
                (c.trace_id, c.span_id)
            });
            assert_eq!(got, want, "input {input:?}");
        }
    }

    #[test]
    fn xray() {
        // Unique part bd862e3fe1be46a994272793: last 16 hex = e1be46a994272793, top bit set.
        let low = u128::from(0xe1be_46a9_9427_2793u64 & 0x7FFF_FFFF_FFFF_FFFF);
        let span = 0x5399_5c3f_42cd_8ad8u64;
        let cases: &[(&str, Ids)] = &[
            (
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
                Some((low, Some(span))),
            ),
            (
                "Sampled=1; Parent=53995c3f42cd8ad8 ;  Root=1-5759e988-bd862e3fe1be46a994272793",
                Some((low, Some(span))),
            ),
            (
                "Self=1-67891234-12456789abcdef012345678;Root=1-5759e988-bd862e3fe1be46a994272793",
                Some((low, None)),
            ),
            (
                "Root=1-5759e988-bd862e3fe1be46a994272793;",
                Some((low, None)),
            ),
            // `00000000` prefix: a Datadog id carried through X-Ray, not masked.
            (
                "Root=1-5759e988-00000000e1be46a994272793;Parent=53995c3f42cd8ad8",
                Some((0xe1be_46a9_9427_2793, Some(span))),
            ),
            ("Root=1-5759e988-000000000000000000000001", Some((1, None))),
            (
                "Root=1-5759e988-0000000100000000000004d2",
                Some((1234, None)),
            ),
            // Masking to zero leaves no id.
            ("Root=1-5759e988-bd862e3f8000000000000000", None),
            ("Root=1-5759e988-000000000000000000000000", None),
            (
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000000000",
                Some((low, None)),
            ),
            (
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995C3F42CD8AD8",
                Some((low, None)),
            ),
            ("Root=1-5759E988-bd862e3fe1be46a994272793", None),
            ("Root=1-5759e988-BD862E3FE1BE46A994272793", None),
            ("Root=2-5759e988-bd862e3fe1be46a994272793", None),
            ("Root=1-5759e98-bd862e3fe1be46a994272793", None),
            ("Root=1-5759e988-bd862e3fe1be46a99427279", None),
            ("Root=1-5759e988-bd862e3fe1be46a9942727930", None),
            ("Root=5759e988-bd862e3fe1be46a994272793", None),
            ("Parent=53995c3f42cd8ad8;Sampled=1", None),
            ("root=1-5759e988-bd862e3fe1be46a994272793", None),
            ("-", None),
            ("", None),
        ];
        for &(input, want) in cases {
            let got = parse_xray(input.as_bytes()).map(|c| {
                assert_eq!(c.source, TraceSource::XRay);
                assert_eq!(c.trace_id_high(), 0);
                (c.trace_id, c.span_id)
            });
            assert_eq!(got, want, "input {input:?}");
        }
    }

    #[test]
    fn formatting() {
        let ctx = |trace_id, span_id| TraceContext {
            trace_id,
            span_id,
            source: TraceSource::W3c,
        };
        let big = ctx(9_007_199_254_740_993, Some(u64::MAX));
        let wide = ctx(u128_of(W3C_HIGH, W3C_LOW), None);
        let small_high = ctx(u128_of(1, 2), None);
        let cases: &[(TraceContext, TraceIdFormat, &str)] = &[
            (big, TraceIdFormat::Decimal, "9007199254740993"),
            (big, TraceIdFormat::Hex, "9007199254740993"), // upper half zero: decimal
            (wide, TraceIdFormat::Decimal, "9532127138774266268"), // low 64 only
            (wide, TraceIdFormat::Hex, "0af7651916cd43dd8448eb211c80319c"),
            (small_high, TraceIdFormat::Decimal, "2"),
            (
                small_high,
                TraceIdFormat::Hex,
                "00000000000000010000000000000002",
            ),
        ];
        for &(c, format, want) in cases {
            assert_eq!(c.trace_id_string(format), want);
            let mut out = b"x".to_vec();
            c.write_trace_id(format, &mut out);
            assert_eq!(out, [b"x", want.as_bytes()].concat());
        }
        let mut out = Vec::new();
        big.write_span_id(&mut out);
        assert_eq!(out, b"18446744073709551615");
        out.clear();
        wide.write_span_id(&mut out);
        assert!(out.is_empty());
        assert_eq!(TraceIdFormat::default(), TraceIdFormat::Decimal);
        assert_eq!(
            (wide.trace_id_high(), wide.trace_id_low()),
            (W3C_HIGH, W3C_LOW)
        );
    }

    #[test]
    fn source_names() {
        let names: Vec<_> = TraceSource::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "existing",
                "datadog",
                "w3c",
                "b3multi",
                "b3",
                "xray",
                "request_id"
            ]
        );
    }

    #[test]
    fn keys() {
        // (raw key, normalised, kind)
        type Case<'a> = (&'a [u8], Option<&'a [u8]>, Option<TraceKey>);
        let cases: &[Case] = &[
            (
                b"X-Datadog-Trace-Id",
                Some(b"xdatadogtraceid"),
                Some(TraceKey::DatadogTrace),
            ),
            (
                b"x_datadog_trace_id",
                Some(b"xdatadogtraceid"),
                Some(TraceKey::DatadogTrace),
            ),
            (
                b"X-DATADOG-TRACE-ID",
                Some(b"xdatadogtraceid"),
                Some(TraceKey::DatadogTrace),
            ),
            (
                b"dd.trace_id",
                Some(b"ddtraceid"),
                Some(TraceKey::DatadogTrace),
            ),
            (b"trace_id", Some(b"traceid"), Some(TraceKey::DatadogTrace)),
            (
                b"datadog.trace_id",
                Some(b"datadogtraceid"),
                Some(TraceKey::DatadogTrace),
            ),
            (b"span_id", Some(b"spanid"), Some(TraceKey::DatadogSpan)),
            (b"parent_id", Some(b"parentid"), Some(TraceKey::DatadogSpan)),
            (
                b"x-datadog-parent-id",
                Some(b"xdatadogparentid"),
                Some(TraceKey::DatadogSpan),
            ),
            (
                b"dd.span_id",
                Some(b"ddspanid"),
                Some(TraceKey::DatadogSpan),
            ),
            (
                b"datadog_parent_id",
                Some(b"datadogparentid"),
                Some(TraceKey::DatadogSpan),
            ),
            (
                b"x-datadog-tags",
                Some(b"xdatadogtags"),
                Some(TraceKey::DatadogTags),
            ),
            (
                b"traceparent",
                Some(b"traceparent"),
                Some(TraceKey::TraceParent),
            ),
            (
                b"X-B3-TraceId",
                Some(b"xb3traceid"),
                Some(TraceKey::B3Trace),
            ),
            (b"x-b3-spanid", Some(b"xb3spanid"), Some(TraceKey::B3Span)),
            (b"b3", Some(b"b3"), Some(TraceKey::B3Single)),
            (
                b"X-Amzn-Trace-Id",
                Some(b"xamzntraceid"),
                Some(TraceKey::XRay),
            ),
            (b"x-b3-sampled", Some(b"xb3sampled"), None),
            (b"dd", Some(b"dd"), None),
            (b"tracestate", Some(b"tracestate"), None),
            (b"", Some(b""), None),
            (
                "trace\u{e9}_id".as_bytes(),
                Some(b"traceid"),
                Some(TraceKey::DatadogTrace),
            ),
            (
                b"abcdefghijklmnopqrstuvwxyz012345",
                Some(b"abcdefghijklmnopqrstuvwxyz012345"),
                None,
            ),
            (b"abcdefghijklmnopqrstuvwxyz0123456", None, None), // 33 bytes: too long
            (b"x-datadog-trace-id-and-x-datadog-parent-id", None, None),
        ];
        for &(key, want_norm, want_kind) in cases {
            let mut buf = [0u8; 32];
            let norm = normalize_key(key, &mut buf);
            assert_eq!(norm, want_norm, "key {:?}", String::from_utf8_lossy(key));
            assert_eq!(norm.and_then(classify_key), want_kind, "key {key:?}");
        }
    }

    fn resolve(pairs: &[(&str, &str)]) -> Option<(TraceSource, u128, Option<u64>)> {
        let mut c = TraceCandidates::default();
        for (k, v) in pairs {
            c.offer_raw_key(k.as_bytes(), v.as_bytes());
        }
        c.resolve()
            .map(|ctx| (ctx.source, ctx.trace_id, ctx.span_id))
    }

    #[test]
    fn candidates() {
        use TraceSource::*;
        let w3c = Some((W3c, u128_of(W3C_HIGH, W3C_LOW), Some(W3C_SPAN)));
        type Case<'a> = (
            &'a [(&'a str, &'a str)],
            Option<(TraceSource, u128, Option<u64>)>,
        );
        let cases: &[Case] = &[
            (&[], None),
            (
                &[("trace_id", "1"), ("span_id", "2"), ("traceparent", W3C_OK)],
                Some((Datadog, 1, Some(2))),
            ),
            (
                &[("traceparent", W3C_OK), ("x-datadog-trace-id", "1")],
                Some((Datadog, 1, None)),
            ),
            // Invalid Datadog falls through to W3C.
            (
                &[("trace_id", "-"), ("span_id", "-"), ("traceparent", W3C_OK)],
                w3c,
            ),
            (&[("trace_id", "0"), ("traceparent", W3C_OK)], w3c),
            (
                &[
                    ("trace_id", "18446744073709551616"),
                    ("traceparent", W3C_OK),
                ],
                w3c,
            ),
            // First invalid, then valid under another key name of the same kind.
            (
                &[
                    ("trace_id", "-"),
                    ("x-datadog-trace-id", "42"),
                    ("traceparent", W3C_OK),
                ],
                Some((Datadog, 42, None)),
            ),
            (
                &[
                    ("span_id", "-"),
                    ("trace_id", "42"),
                    ("x-datadog-parent-id", "7"),
                ],
                Some((Datadog, 42, Some(7))),
            ),
            // First valid wins over a later valid one.
            (
                &[("trace_id", "42"), ("x-datadog-trace-id", "43")],
                Some((Datadog, 42, None)),
            ),
            // Span alone is no source.
            (
                &[("span_id", "7"), ("x-b3-spanid", "b7ad6b7169203331")],
                None,
            ),
            (
                &[
                    ("x-datadog-tags", "_dd.p.tid=0000000000000001"),
                    ("trace_id", "5"),
                ],
                Some((Datadog, u128_of(1, 5), None)),
            ),
            (
                &[
                    ("x-datadog-tags", "_dd.p.dm=-4"),
                    ("x-datadog-tags", "_dd.p.tid=0000000000000001"),
                    ("trace_id", "5"),
                ],
                Some((Datadog, u128_of(1, 5), None)),
            ),
            // Order below W3C.
            (
                &[
                    ("b3", "8448eb211c80319c-b7ad6b7169203331"),
                    ("x-b3-traceid", "000000000000000a"),
                    (
                        "x-amzn-trace-id",
                        "Root=1-5759e988-000000000000000000000003",
                    ),
                ],
                Some((B3Multi, 10, None)),
            ),
            (
                &[
                    ("b3", "8448eb211c80319c-b7ad6b7169203331"),
                    (
                        "x-amzn-trace-id",
                        "Root=1-5759e988-000000000000000000000003",
                    ),
                ],
                Some((B3Single, u128::from(W3C_LOW), Some(W3C_SPAN))),
            ),
            (
                &[
                    ("b3", "1"),
                    (
                        "x-amzn-trace-id",
                        "Root=1-5759e988-000000000000000000000003",
                    ),
                ],
                Some((XRay, 3, None)),
            ),
            (
                &[
                    (
                        "traceparent",
                        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                    ),
                    ("x-b3-traceid", "000000000000000a"),
                    ("x-b3-spanid", "000000000000000b"),
                ],
                Some((B3Multi, 10, Some(11))),
            ),
            (
                &[
                    ("trace_id", "-"),
                    ("traceparent", "-"),
                    ("b3", "-"),
                    ("x-amzn-trace-id", "-"),
                ],
                None,
            ),
        ];
        for &(pairs, want) in cases {
            assert_eq!(resolve(pairs), want, "pairs {pairs:?}");
        }
    }

    #[test]
    fn candidates_bookkeeping() {
        let mut c = TraceCandidates::default();
        assert!(c.is_empty());
        assert!(!c.offer_raw_key(b"method", b"GET"));
        assert!(c.is_empty());
        assert!(c.offer_raw_key(b"trace_id", b"-"));
        assert!(!c.is_empty());
        assert_eq!(c.resolve(), None);
        c.offer(TraceKey::DatadogTrace, b"9007199254740993");
        let ctx = c.resolve().unwrap();
        assert_eq!(ctx.trace_id_string(TraceIdFormat::Hex), "9007199254740993");
    }

    fn check(ctx: Option<TraceContext>) -> Result<(), TestCaseError> {
        if let Some(c) = ctx {
            prop_assert_ne!(c.trace_id_low(), 0);
            prop_assert_ne!(c.span_id, Some(0));
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn the_tid_entry_is_the_first_entry_with_that_key(
            entries in proptest::collection::vec(
                ("[ \t]?", "_dd\\.p\\.(tid|dm)|_dd|x", "=|= |=\t| =|", "[0-9a-f]{16}|[0-9a-f]{15}|-0", "[ \t]?"),
                0..5,
            ),
        ) {
            let tags = entries
                .iter()
                .map(|(a, key, eq, value, b)| format!("{a}{key}{eq}{value}{b}"))
                .collect::<Vec<_>>()
                .join(",");
            // The list read the plain way: split at commas, trimmed, split at the first `=`.
            let expected = tags
                .split(',')
                .filter_map(|entry| entry.trim_matches([' ', '\t']).split_once('='))
                .find(|(key, _)| *key == "_dd.p.tid")
                .and_then(|(_, value)| number::hex16(value.as_bytes()));
            prop_assert_eq!(parse_dd_tid(tags.as_bytes()), expected, "{:?}", tags);
        }

        #[test]
        fn parsers_never_panic(a in proptest::collection::vec(any::<u8>(), 0..80),
                               b in proptest::collection::vec(any::<u8>(), 0..40),
                               c in proptest::collection::vec(any::<u8>(), 0..40)) {
            check(parse_datadog(&a, Some(&b), Some(&c)))?;
            check(parse_w3c(&a))?;
            check(parse_b3_multi(&a, Some(&b)))?;
            check(parse_b3_single(&a))?;
            check(parse_xray(&a))?;
            if let Some(v) = parse_existing_trace_id(&a) {
                prop_assert_ne!(v as u64, 0);
            }
            prop_assert_ne!(parse_decimal_id(&a), Some(0));
            let mut buf = [0u8; 32];
            if let Some(n) = normalize_key(&a, &mut buf) {
                prop_assert!(n.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
            }
            let mut cand = TraceCandidates::default();
            cand.offer_raw_key(&b, &a);
            cand.offer_raw_key(&c, &b);
            for k in [TraceKey::DatadogTrace, TraceKey::DatadogSpan, TraceKey::DatadogTags,
                      TraceKey::TraceParent, TraceKey::B3Trace, TraceKey::B3Span,
                      TraceKey::B3Single, TraceKey::XRay] {
                cand.offer(k, &a);
            }
            check(cand.resolve())?;
        }

        // Near-valid inputs reach the deep branches that random bytes rarely hit.
        #[test]
        fn near_valid_never_panic(s in "[0-9a-fA-F;=\\- Rot1Pan]{0,70}") {
            let s = s.as_bytes();
            check(parse_datadog(s, Some(s), Some(s)))?;
            check(parse_w3c(s))?;
            check(parse_b3_multi(s, Some(s)))?;
            check(parse_b3_single(s))?;
            check(parse_xray(s))?;
        }

        #[test]
        fn decimal_round_trip(v in 1u64..) {
            let text = v.to_string();
            let ctx = parse_datadog(text.as_bytes(), Some(text.as_bytes()), None).unwrap();
            prop_assert_eq!(ctx.trace_id_string(TraceIdFormat::Hex), v.to_string());
            let mut out = Vec::new();
            ctx.write_span_id(&mut out);
            prop_assert_eq!(out, v.to_string().into_bytes());
        }

        #[test]
        fn w3c_round_trip(trace in any::<u128>(), span in 1u64.., version in 0u8..0xff) {
            let text = format!("{version:02x}-{trace:032x}-{span:016x}-01");
            let got = parse_w3c(text.as_bytes());
            if trace as u64 == 0 {
                prop_assert_eq!(got, None);
            } else {
                let got = got.unwrap();
                prop_assert_eq!((got.trace_id, got.span_id), (trace, Some(span)));
                let want = if trace >> 64 == 0 {
                    (trace as u64).to_string()
                } else {
                    format!("{trace:032x}")
                };
                prop_assert_eq!(got.trace_id_string(TraceIdFormat::Hex), want);
            }
        }
    }
}
