//! JSON log lines for `tracing`, correlated with the trace Envoy started (feature `tracing`).
//!
//! [`JsonLayer`] is a [`tracing_subscriber::Layer`] that writes one JSON object per event:
//!
//! ```text
//! {"timestamp":"2024-05-01T12:00:00.123Z","level":"info","message":"card charged",
//!  "logger":{"name":"billing::api"},"amount":12,"method":"POST","path":"/charge",
//!  "dd":{"trace_id":"1234","span_id":"5678"},"hash":"4f9c2a1","phase":"canary"}
//! ```
//!
//! (one line in reality). `dd` comes from the innermost span, or the event itself, that has a
//! `dd.trace_id` field ([`TRACE_ID_FIELD`]) and is written exactly as the filter writes it:
//! strings, lower 64 bits in decimal, or 32 hex digits with [`TraceIdFormat::Hex`]. Outside such
//! a span a line has no `dd`, only `hash` and `phase`.
//!
//! The `envoy_dd::tower` middleware (feature `tower`) opens that span for every request. To
//! open it yourself, record the context as `dd.trace_id` (a `u128`) and `dd.span_id` (a `u64`):
//!
//! ```
//! # fn handle(ctx: Option<envoy_dd::TraceContext>) {
//! // `ctx` from e.g. `envoy_dd::http::trace_context(request.headers())` (feature `http`)
//! let span = tracing::info_span!(
//!     "request",
//!     dd.trace_id = ctx.map(|c| c.trace_id),
//!     dd.span_id = ctx.and_then(|c| c.span_id),
//! );
//! let _entered = span.enter();
//! tracing::info!("inside the request: this line carries dd");
//! # }
//! # handle(None);
//! ```
//!
//! Ids may also be given as strings (decimal, or 32 lower-case hex digits for a trace id);
//! zero or invalid ids are ignored. The fields are consumed: they appear only in `dd`.
//!
//! Keys are never repeated. The line's own keys (`timestamp`, `level`, `logger`, `dd`) come
//! first, then the event's fields, then the fields of the spans it is in, innermost first; a
//! field whose name is already on the line is left out (an inner span's `user` shadows an outer
//! one's). An event or span field named `hash` or `phase` wins over the configured value, as
//! the application's own value does in the filter (unless it is empty or unexpanded).

use std::cell::RefCell;
use std::fmt;
use std::io::{self, Write as _};
use std::ops::Range;
use std::time::{Duration, SystemTime};

use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Level, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::config::json_value;
use crate::keys::Name;
use crate::output::{dd_member, start_canary_member};
use crate::trace::{parse_decimal_id, parse_existing_trace_id, TraceContext, TraceSource};
use crate::write::{escape_into, string, ObjectWriter};
use crate::{Config, TraceIdFormat};

/// The span (or event) field that carries the trace id: a `u128`, `u64`, or a string.
pub const TRACE_ID_FIELD: &str = "dd.trace_id";
/// The span (or event) field that carries the span id: a `u64`, or a decimal string.
pub const SPAN_ID_FIELD: &str = "dd.span_id";

/// Keys every line may have, which fields therefore cannot take.
const OWN_KEYS: [&str; 4] = ["timestamp", "level", "logger", "dd"];

/// A [`Layer`] that writes each event as one JSON line with `dd`, `hash` and `phase`.
///
/// ```
/// use std::io;
/// use std::sync::{Arc, Mutex};
///
/// use envoy_dd::subscriber::JsonLayer;
/// use envoy_dd::Config;
/// use tracing_subscriber::layer::SubscriberExt as _;
///
/// // Where the lines go: anything that implements `MakeWriter`, here a shared buffer.
/// #[derive(Clone, Default)]
/// struct Buffer(Arc<Mutex<Vec<u8>>>);
/// impl io::Write for Buffer {
///     fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
///         self.0.lock().unwrap().write(bytes)
///     }
///     fn flush(&mut self) -> io::Result<()> {
///         Ok(())
///     }
/// }
///
/// let buffer = Buffer::default();
/// let writer = buffer.clone();
/// let config = Config { hash: Some("4f9c2a1".into()), phase: Some("canary".into()), ..Config::default() };
/// let layer = JsonLayer::new(&config).with_writer(move || writer.clone()).with_timestamp(false);
/// let subscriber = tracing_subscriber::registry().with(layer);
///
/// tracing::subscriber::with_default(subscriber, || {
///     tracing::info!(target: "billing", "starting");
///     let span = tracing::info_span!("request", dd.trace_id = 1234u128, dd.span_id = 5678u64, path = "/charge");
///     span.in_scope(|| tracing::warn!(target: "billing", amount = 12, "card declined"));
/// });
///
/// let lines = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
/// assert_eq!(
///     lines,
///     concat!(
///         r#"{"level":"info","message":"starting","logger":{"name":"billing"},"hash":"4f9c2a1","phase":"canary"}"#,
///         "\n",
///         r#"{"level":"warn","message":"card declined","logger":{"name":"billing"},"amount":12,"path":"/charge","dd":{"trace_id":"1234","span_id":"5678"},"hash":"4f9c2a1","phase":"canary"}"#,
///         "\n",
///     )
/// );
/// ```
pub struct JsonLayer<W = fn() -> io::Stdout> {
    make_writer: W,
    trace_id_128: TraceIdFormat,
    /// `hash` / `phase`, JSON-encoded; `None` when unset or configuration debris.
    hash: Option<Vec<u8>>,
    phase: Option<Vec<u8>>,
    timestamps: bool,
}

impl JsonLayer {
    /// A layer writing to stdout, with `hash`, `phase` and `trace_id_128` from `config` (its
    /// other settings are about access logs and do not apply). An empty or unexpanded value
    /// (`""`, `-`, `${GIT_COMMIT_SHA}`) counts as unset, as in the filter.
    pub fn new(config: &Config) -> Self {
        JsonLayer {
            make_writer: io::stdout,
            trace_id_128: config.trace_id_128,
            hash: json_value(&config.hash),
            phase: json_value(&config.phase),
            timestamps: true,
        }
    }

    /// [`JsonLayer::new`] with [`Config::from_env`]: `hash` from `GIT_COMMIT_SHA`, `phase` from
    /// `DEPLOY_PHASE`.
    ///
    /// ```
    /// use tracing_subscriber::layer::SubscriberExt as _;
    /// use tracing_subscriber::util::SubscriberInitExt as _;
    ///
    /// tracing_subscriber::registry().with(envoy_dd::subscriber::JsonLayer::from_env()).init();
    /// tracing::info!("started");
    /// ```
    pub fn from_env() -> Self {
        JsonLayer::new(&Config::from_env())
    }
}

impl<W> JsonLayer<W> {
    /// Writes lines to `make_writer` instead (a file, a non-blocking writer, a test buffer).
    /// Each line, newline included, is handed to one writer in a single `write_all`.
    pub fn with_writer<W2>(self, make_writer: W2) -> JsonLayer<W2>
    where
        W2: for<'a> MakeWriter<'a> + 'static,
    {
        JsonLayer {
            make_writer,
            trace_id_128: self.trace_id_128,
            hash: self.hash,
            phase: self.phase,
            timestamps: self.timestamps,
        }
    }

    /// Whether lines start with a `timestamp` (RFC 3339, UTC, milliseconds); on by default.
    /// Turn it off when the log collector stamps lines itself.
    #[must_use]
    pub fn with_timestamp(mut self, timestamps: bool) -> Self {
        self.timestamps = timestamps;
        self
    }
}

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let mut extensions = span.extensions_mut();
        if extensions.get_mut::<Fields>().is_none() {
            extensions.insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<Fields>() {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        with_scratch(|scratch| {
            let Scratch {
                line,
                event_fields,
                keys,
            } = scratch;
            line.clear();
            event_fields.clear();
            keys.clear();
            event.record(event_fields);
            let meta = event.metadata();

            line.push(b'{');
            if self.timestamps {
                line.extend_from_slice(b"\"timestamp\":\"");
                write_timestamp(line, since_epoch());
                line.extend_from_slice(b"\",");
            }
            line.extend_from_slice(b"\"level\":\"");
            line.extend_from_slice(level_name(*meta.level()).as_bytes());
            line.push(b'"');
            keys.extend(OWN_KEYS);
            // The message first, for people reading the raw line.
            event_fields.write_member(line, keys, "message");
            line.extend_from_slice(b",\"logger\":{\"name\":");
            string(line, meta.target());
            line.push(b'}');
            event_fields.write_all(line, keys);

            let mut trace = event_fields.context();
            if let Some(scope) = ctx.event_scope(event) {
                for span in scope {
                    if let Some(fields) = span.extensions().get::<Fields>() {
                        fields.write_all(line, keys);
                        trace = trace.or_else(|| fields.context());
                    }
                }
            }

            // `dd`, `hash` and `phase` as the transform writes them.
            let mut object = ObjectWriter::continued();
            if let Some(ctx) = trace {
                dd_member(&mut object, line, &ctx, self.trace_id_128);
            }
            let canary = [
                (Name::Hash, "hash", &self.hash),
                (Name::Phase, "phase", &self.phase),
            ];
            for (name, key, value) in canary {
                if let (Some(value), false) = (value, keys.contains(&key)) {
                    start_canary_member(&mut object, line, name);
                    line.extend_from_slice(value);
                }
            }
            line.extend_from_slice(b"}\n");

            // A logger has nowhere to report its own write errors.
            let _ = self.make_writer.make_writer_for(meta).write_all(line);
        });
    }
}

/// Per-thread buffers for formatting one event.
#[derive(Default)]
struct Scratch {
    line: Vec<u8>,
    event_fields: Fields,
    /// Keys already on the line.
    keys: Vec<&'static str>,
}

/// Runs `f` with this thread's scratch buffers, or fresh ones when they are in use (an event
/// emitted while writing an event) or gone (thread exit).
fn with_scratch(f: impl FnOnce(&mut Scratch)) {
    thread_local! {
        static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
    }
    let mut f = Some(f);
    let _ = SCRATCH.try_with(|cell| {
        if let Ok(mut scratch) = cell.try_borrow_mut() {
            if let Some(f) = f.take() {
                f(&mut scratch);
                // Do not keep a huge buffer alive for the rest of the thread's life.
                scratch.line.shrink_to(64 * 1024);
            }
        }
    });
    if let Some(f) = f {
        f(&mut Scratch::default());
    }
}

/// The recorded fields of a span or an event, as JSON, plus the trace ids they carry.
#[derive(Default)]
struct Fields {
    /// JSON values, back to back.
    values: Vec<u8>,
    /// Each field's name and where its value is in `values`. A field recorded again points to
    /// its new value.
    index: Vec<(&'static str, Range<usize>)>,
    trace_id: Option<u128>,
    span_id: Option<u64>,
}

impl Fields {
    fn clear(&mut self) {
        self.values.clear();
        self.index.clear();
        self.trace_id = None;
        self.span_id = None;
    }

    /// The trace context these fields carry, if they have a trace id.
    fn context(&self) -> Option<TraceContext> {
        Some(TraceContext {
            trace_id: self.trace_id?,
            span_id: self.span_id,
            source: TraceSource::Existing,
        })
    }

    /// Appends `,"name":value` for the field `name`, unless a key of that name is on the line.
    fn write_member(&self, line: &mut Vec<u8>, keys: &mut Vec<&'static str>, name: &str) {
        if let Some((name, range)) = self.index.iter().find(|(n, _)| *n == name) {
            if !keys.contains(name) {
                keys.push(name);
                line.extend_from_slice(b",\"");
                escape_into(line, name);
                line.extend_from_slice(b"\":");
                line.extend_from_slice(&self.values[range.clone()]);
            }
        }
    }

    /// Appends every field whose name is not on the line yet.
    fn write_all(&self, line: &mut Vec<u8>, keys: &mut Vec<&'static str>) {
        for (name, _) in &self.index {
            self.write_member(line, keys, name);
        }
    }

    /// Records one value: `write` appends its JSON. A value recorded again replaces the old
    /// one in place, so a span that records a field often does not grow.
    fn push(&mut self, field: &Field, write: impl FnOnce(&mut Vec<u8>)) {
        let at = self
            .index
            .iter()
            .position(|(name, _)| *name == field.name());
        if let Some(at) = at {
            let old = self.index[at].1.clone();
            self.values.drain(old.clone());
            for (_, range) in &mut self.index {
                if range.start >= old.end {
                    *range = range.start - old.len()..range.end - old.len();
                }
            }
        }
        let start = self.values.len();
        write(&mut self.values);
        let range = start..self.values.len();
        match at {
            Some(at) => self.index[at].1 = range,
            None => self.index.push((field.name(), range)),
        }
    }

    /// Takes an id given as text; `false` when `field` is not an id field.
    fn id_from_text(&mut self, field: &Field, text: &str) -> bool {
        match field.name() {
            TRACE_ID_FIELD => self.trace_id = parse_existing_trace_id(text.as_bytes()),
            SPAN_ID_FIELD => self.span_id = parse_decimal_id(text.as_bytes()),
            _ => return false,
        }
        true
    }

    /// Takes an id given as a number; `false` when `field` is not an id field.
    fn id_from_number(&mut self, field: &Field, value: Option<u128>) -> bool {
        match field.name() {
            // Datadog correlates on the lower half, which must not be zero.
            TRACE_ID_FIELD => self.trace_id = value.filter(|&v| v as u64 != 0),
            SPAN_ID_FIELD => {
                self.span_id = value
                    .and_then(|v| u64::try_from(v).ok())
                    .filter(|&v| v != 0)
            }
            _ => return false,
        }
        true
    }

    fn integer(&mut self, field: &Field, value: Option<u128>, text: impl itoa::Integer) {
        if !self.id_from_number(field, value) {
            self.push(field, |out| crate::write::integer(out, text));
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        // Debris in a `hash`/`phase` field is no value: the configured one is written instead.
        if matches!(field.name(), "hash" | "phase") && is_debris(value) {
            return;
        }
        if !self.id_from_text(field, value) {
            self.push(field, |out| string(out, value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if matches!(field.name(), TRACE_ID_FIELD | SPAN_ID_FIELD) {
            self.id_from_text(field, &format!("{value:?}"));
            return;
        }
        self.push(field, |out| {
            out.push(b'"');
            // Formatting into a Vec cannot fail; a panicking `Debug` impl is the caller's.
            let _ = fmt::write(&mut Escaper(out), format_args!("{value:?}"));
            out.push(b'"');
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.integer(field, Some(u128::from(value)), value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.integer(field, u128::try_from(value).ok(), value);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.integer(field, Some(value), value);
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.integer(field, u128::try_from(value).ok(), value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, |out| {
            out.extend_from_slice(if value { b"true" } else { b"false" })
        });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            // Rust prints finite floats without exponent: always a valid JSON number.
            self.push(field, |out| {
                let _ = write!(out, "{value}");
            });
        } else {
            // JSON has no NaN or infinity.
            self.push(field, |out| string(out, &value.to_string()));
        }
    }
}

/// A `fmt::Write` that appends JSON-escaped string content.
struct Escaper<'a>(&'a mut Vec<u8>);

impl fmt::Write for Escaper<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape_into(self.0, s);
        Ok(())
    }
}

/// Configuration debris, by the filter's own rule.
fn is_debris(value: &str) -> bool {
    crate::is_placeholder(value.as_bytes())
}

/// Datadog's status names for tracing's levels.
fn level_name(level: Level) -> &'static str {
    match level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

/// Appends `1970-01-01T00:00:00.000Z` for a time since the Unix epoch.
fn write_timestamp(out: &mut Vec<u8>, since_epoch: Duration) {
    let secs = since_epoch.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60,
        since_epoch.subsec_millis()
    );
}

/// Year, month, day of the `days`-th day after 1970-01-01 (Howard Hinnant's `civil_from_days`,
/// for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let doe = z % 146_097; // day of the 400-year era
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the year starting in March
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt as _;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().write(bytes)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The lines `f` logs through a layer built from `config`, parsed.
    fn lines(config: &Config, timestamps: bool, f: impl FnOnce()) -> Vec<serde_json::Value> {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let layer = JsonLayer::new(config)
            .with_writer(move || writer.clone())
            .with_timestamp(timestamps);
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert!(text.is_empty() || text.ends_with('\n'));
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    fn raw_lines(config: &Config, f: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let layer = JsonLayer::new(config)
            .with_writer(move || writer.clone())
            .with_timestamp(false);
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text
    }

    #[test]
    fn dd_comes_from_the_innermost_span_with_ids() {
        let config = Config {
            hash: Some("abc".into()),
            phase: Some("stable".into()),
            ..Config::default()
        };
        let text = raw_lines(&config, || {
            tracing::info!("outside");
            let outer = tracing::info_span!(
                "request",
                dd.trace_id = 11u64,
                dd.span_id = 12u64,
                user = "a"
            );
            let _o = outer.enter();
            tracing::info!("in outer");
            let inner =
                tracing::info_span!("call", user = "b", dd.trace_id = tracing::field::Empty);
            let _i = inner.enter();
            tracing::info!("in inner, no ids yet");
            inner.record("dd.trace_id", "21");
            tracing::info!("in inner, with ids");
            tracing::info!(dd.trace_id = 31u128, "event ids");
        });
        let want = [
            r#"{"level":"info","message":"outside","logger":{"name":"envoy_dd::subscriber::tests"},"hash":"abc","phase":"stable"}"#,
            r#"{"level":"info","message":"in outer","logger":{"name":"envoy_dd::subscriber::tests"},"user":"a","dd":{"trace_id":"11","span_id":"12"},"hash":"abc","phase":"stable"}"#,
            r#"{"level":"info","message":"in inner, no ids yet","logger":{"name":"envoy_dd::subscriber::tests"},"user":"b","dd":{"trace_id":"11","span_id":"12"},"hash":"abc","phase":"stable"}"#,
            // The inner span's trace id comes with the inner span's (absent) span id.
            r#"{"level":"info","message":"in inner, with ids","logger":{"name":"envoy_dd::subscriber::tests"},"user":"b","dd":{"trace_id":"21"},"hash":"abc","phase":"stable"}"#,
            r#"{"level":"info","message":"event ids","logger":{"name":"envoy_dd::subscriber::tests"},"user":"b","dd":{"trace_id":"31"},"hash":"abc","phase":"stable"}"#,
        ];
        assert_eq!(text.lines().collect::<Vec<_>>(), want);
    }

    #[test]
    fn ids_in_every_form() {
        let wide = 0x0af7_6519_16cd_43dd_8448_eb21_1c80_319cu128;
        let hex = Config {
            trace_id_128: TraceIdFormat::Hex,
            ..Config::default()
        };
        let dd = |config: &Config, f: &dyn Fn()| {
            let lines = lines(config, false, f);
            lines[0].get("dd").map(|dd| dd.to_string())
        };
        let d = Config::default();
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            dd(&d, &|| tracing::info!(dd.trace_id = wide, "x")),
            some(r#"{"trace_id":"9532127138774266268"}"#)
        );
        assert_eq!(
            dd(&hex, &|| tracing::info!(dd.trace_id = wide, "x")),
            some(r#"{"trace_id":"0af7651916cd43dd8448eb211c80319c"}"#)
        );
        assert_eq!(
            dd(&hex, &|| tracing::info!(
                dd.trace_id = "0af7651916cd43dd8448eb211c80319c",
                "x"
            )),
            some(r#"{"trace_id":"0af7651916cd43dd8448eb211c80319c"}"#)
        );
        assert_eq!(
            dd(
                &d,
                &|| tracing::info!(dd.trace_id = %18446744073709551615u64, dd.span_id = ?7u64, "x")
            ),
            some(r#"{"trace_id":"18446744073709551615","span_id":"7"}"#)
        );
        assert_eq!(
            dd(&d, &|| tracing::info!(
                dd.trace_id = 5i64,
                dd.span_id = 6i128,
                "x"
            )),
            some(r#"{"trace_id":"5","span_id":"6"}"#)
        );
        assert_eq!(
            dd(&d, &|| tracing::info!(
                dd.trace_id = 5u64,
                dd.span_id = 0u64,
                "x"
            )),
            some(r#"{"trace_id":"5"}"#)
        );
        // Invalid trace ids leave the line without `dd`.
        let invalid: [&dyn Fn(); 7] = [
            &|| tracing::info!(dd.trace_id = 0u64, "x"),
            &|| tracing::info!(dd.trace_id = -5i64, "x"),
            &|| tracing::info!(dd.trace_id = 1u128 << 64, "x"),
            &|| tracing::info!(dd.trace_id = "-", "x"),
            &|| tracing::info!(dd.trace_id = "0AF7651916CD43DD8448EB211C80319C", "x"),
            &|| tracing::info!(dd.span_id = 5u64, "x"),
            &|| tracing::info!(dd.trace_id = Option::<u128>::None, "x"),
        ];
        for f in invalid {
            assert_eq!(dd(&d, f), None);
        }
    }

    #[test]
    fn values_and_escaping() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Point {
            x: i32,
        }
        let err = io::Error::other("disk \"full\"");
        let lines = lines(&Config::default(), true, || {
            tracing::error!(
                n = -3i64,
                big = u128::MAX,
                ok = true,
                ratio = 0.25,
                nan = f64::NAN,
                text = "a\"b\\c\n\u{0}",
                point = ?Point { x: 1 },
                shown = %"display",
                error = &err as &(dyn std::error::Error + 'static),
                "weird \"message\"\n"
            );
        });
        let line = &lines[0];
        assert_eq!(line["level"], "error");
        assert_eq!(line["message"], "weird \"message\"\n");
        assert_eq!(line["n"], -3);
        assert_eq!(line["big"].to_string(), u128::MAX.to_string());
        assert_eq!(line["ok"], true);
        assert_eq!(line["ratio"], 0.25);
        assert_eq!(line["nan"], "NaN");
        assert_eq!(line["text"], "a\"b\\c\n\u{0}");
        assert_eq!(line["point"], "Point { x: 1 }");
        assert_eq!(line["shown"], "display");
        assert_eq!(line["error"], "disk \"full\"");
        let ts = line["timestamp"].as_str().unwrap();
        assert_eq!(ts.len(), "2024-05-01T12:00:00.123Z".len(), "{ts}");
        assert!(ts.starts_with("20") && ts.ends_with('Z'), "{ts}");
    }

    #[test]
    fn keys_are_never_repeated() {
        let config = Config {
            hash: Some("configured".into()),
            phase: Some("${DEPLOY_PHASE}".into()),
            ..Config::default()
        };
        let text = raw_lines(&config, || {
            let span = tracing::info_span!(
                "s",
                level = "span",
                message = "span",
                x = 1,
                phase = "canary"
            );
            let _e = span.enter();
            tracing::info!(x = 2, timestamp = 3, dd = 4, logger = 5, hash = "own", "m");
            tracing::info!(y = 1);
        });
        let want = [
            r#"{"level":"info","message":"m","logger":{"name":"envoy_dd::subscriber::tests"},"x":2,"hash":"own","phase":"canary"}"#,
            r#"{"level":"info","logger":{"name":"envoy_dd::subscriber::tests"},"y":1,"message":"span","x":1,"phase":"canary","hash":"configured"}"#,
        ];
        assert_eq!(text.lines().collect::<Vec<_>>(), want);
    }

    #[test]
    fn recorded_again_keeps_its_place() {
        let text = raw_lines(&Config::default(), || {
            let span = tracing::info_span!("s", a = "first", b = 2, c = tracing::field::Empty);
            let _e = span.enter();
            for value in ["second", "a much longer third value"] {
                span.record("a", value);
            }
            span.record("c", 3);
            span.record("b", 22);
            tracing::info!("m");
        });
        assert_eq!(
            text,
            concat!(
                r#"{"level":"info","message":"m","logger":{"name":"envoy_dd::subscriber::tests"},"#,
                r#""a":"a much longer third value","b":22,"c":3}"#,
                "\n"
            )
        );
    }

    #[test]
    fn debris_is_not_configuration() {
        for value in ["", " ", "-", "${GIT_COMMIT_SHA}"] {
            assert!(is_debris(value), "{value:?}");
        }
        assert!(!is_debris("4f9c2a1"));
        let config = Config {
            hash: Some("${GIT_COMMIT_SHA}".into()),
            phase: Some(String::new()),
            ..Config::default()
        };
        let text = raw_lines(&config, || tracing::info!("m"));
        assert_eq!(
            text,
            "{\"level\":\"info\",\"message\":\"m\",\"logger\":{\"name\":\"envoy_dd::subscriber::tests\"}}\n"
        );
        let config = Config {
            hash: Some("configured".into()),
            ..Config::default()
        };
        let text = raw_lines(&config, || tracing::info!(hash = "-", phase = "", "m"));
        assert_eq!(
            text,
            "{\"level\":\"info\",\"message\":\"m\",\"logger\":{\"name\":\"envoy_dd::subscriber::tests\"},\"hash\":\"configured\"}\n"
        );
    }

    #[test]
    fn timestamps() {
        let cases = [
            (0, 0, "1970-01-01T00:00:00.000Z"),
            (951_782_400, 5_000_000, "2000-02-29T00:00:00.005Z"),
            (1_709_164_800, 0, "2024-02-29T00:00:00.000Z"),
            (1_714_564_800, 123_999_999, "2024-05-01T12:00:00.123Z"),
            (4_102_444_799, 999_000_000, "2099-12-31T23:59:59.999Z"),
            (4_107_542_400, 0, "2100-03-01T00:00:00.000Z"),
        ];
        for (secs, nanos, want) in cases {
            let mut out = Vec::new();
            write_timestamp(&mut out, Duration::new(secs, nanos));
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }
}
