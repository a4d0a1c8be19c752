//! The JavaScript API (feature `js`): the wasm-bindgen exports under the npm package in `js/`.
//!
//! A thin shell over [`crate::Transformer`], [`crate::TextFormat`] and
//! [`crate::http::trace_context`]; `js/src/api.js` turns what these functions return into the
//! package's documented API (result objects, error classes). Everything that crosses the
//! boundary is a string, bytes or a number, so no JavaScript object has to be built from Rust:
//!
//! * a transform takes and returns the bytes of a line, and gives its [`Outcome`] as one number (see
//!   [`outcome_code`]), whose parts [`names`] spells out once;
//! * options arrive as JSON text (the JS side's `JSON.stringify` of a plain object) and are read
//!   with serde, unknown keys refused;
//! * errors are thrown as JSON text describing them (`{"kind":"options",...}`), which the JS side
//!   turns into `OptionsError` or `FormatError`.

use serde::de::{Deserializer, Error as _};
use serde::Deserialize;
use wasm_bindgen::prelude::*;

use crate::trace::{classify_key, normalize_key, TraceKey};
use crate::{
    Config, Enriched, Error, FormatError, LogKept, Outcome, ReadError, Shape, SyntaxError,
    TextFormat, TraceIdFormat, TraceSource,
};

/// The options object of the JS API: [`Config`] in camelCase. Every key is optional; a missing
/// or `undefined` key means [`Config::default`]'s value, `null` is only accepted for the
/// optional strings. A wrong type is an error naming the key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Options {
    #[serde(default, deserialize_with = "hash")]
    hash: Option<Option<String>>,
    #[serde(default, deserialize_with = "phase")]
    phase: Option<Option<String>>,
    #[serde(default, deserialize_with = "trace_id_128")]
    trace_id_128: Option<Ids>,
    #[serde(default, deserialize_with = "standard_attributes")]
    standard_attributes: Option<bool>,
    #[serde(default, deserialize_with = "status")]
    status: Option<bool>,
    #[serde(default, deserialize_with = "message")]
    message: Option<bool>,
    #[serde(default, deserialize_with = "derive_phase")]
    derive_phase: Option<bool>,
    #[serde(default, deserialize_with = "text_format")]
    text_format: Option<Option<String>>,
    #[serde(default, deserialize_with = "keep_source_attributes")]
    keep_source_attributes: Option<bool>,
    #[serde(default, deserialize_with = "request_id_join")]
    request_id_join: Option<usize>,
    #[serde(default, deserialize_with = "routes")]
    routes: Option<Vec<String>>,
}

/// `traceId128`: `"decimal"` or `"hex"` (see [`TraceIdFormat`]).
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Ids {
    Decimal,
    Hex,
}

/// One deserializer per option, which names the option in its errors (serde's own messages
/// say what was expected, not where). A key that is absent is `None` (serde's `default`); the
/// strings may also be `null`, which means unset too.
macro_rules! named {
    ($($name:ident: $type:ty = $key:literal,)*) => {$(
        fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<$type>, D::Error> {
            <$type>::deserialize(d)
                .map(Some)
                .map_err(|e| D::Error::custom(format_args!("`{}`: {e}", $key)))
        }
    )*};
}

named! {
    hash: Option<String> = "hash",
    phase: Option<String> = "phase",
    trace_id_128: Ids = "traceId128",
    standard_attributes: bool = "standardAttributes",
    status: bool = "status",
    message: bool = "message",
    derive_phase: bool = "derivePhase",
    text_format: Option<String> = "textFormat",
    keep_source_attributes: bool = "keepSourceAttributes",
    request_id_join: usize = "requestIdJoin",
    routes: Vec<String> = "routes",
}

impl Options {
    /// The options as a [`Config`], or the JSON error to throw. A `Config` field without an
    /// option here keeps its default (add the option here, in `js/src/index.d.ts` and in the
    /// playground).
    fn into_config(self) -> Result<Config, String> {
        let mut config = Config {
            hash: self.hash.flatten(),
            phase: self.phase.flatten(),
            ..Config::default()
        };
        if let Some(ids) = self.trace_id_128 {
            config.trace_id_128 = match ids {
                Ids::Hex => TraceIdFormat::Hex,
                Ids::Decimal => TraceIdFormat::Decimal,
            };
        }
        let flags = [
            (self.standard_attributes, &mut config.standard_attributes),
            (self.status, &mut config.status),
            (self.message, &mut config.message),
            (self.derive_phase, &mut config.derive_phase),
            (
                self.keep_source_attributes,
                &mut config.keep_source_attributes,
            ),
        ];
        for (option, field) in flags {
            if let Some(on) = option {
                *field = on;
            }
        }
        if let Some(entries) = self.request_id_join {
            config.request_id_join = entries;
        }
        if let Some(routes) = self.routes {
            config.routes = crate::endpoint::Routes::parse(&routes.join("\n")).map_err(|e| {
                error_json(&[
                    ("kind", "options".into()),
                    ("message", format!("`routes`: {e}").into()),
                ])
            })?;
        }
        if let Some(format) = self.text_format.flatten() {
            let parsed = TextFormat::parse(&format)
                .map_err(|e| format_error_json(&format, &e, Some("textFormat")))?;
            config.text_format = Some(parsed);
        }
        Ok(config)
    }
}

/// Reads the options' JSON text (`""` for none) into a [`Config`], or the JSON error to throw.
fn config(options: &str) -> Result<Config, String> {
    if options.is_empty() {
        return Ok(Config::default());
    }
    let options: Options = serde_json::from_str(options).map_err(|e| {
        // serde_json appends where in the JSON text it was; that text is ours, not the user's.
        let message = e.to_string();
        let at = format!(" at line {} column {}", e.line(), e.column());
        let message = message.strip_suffix(&at).unwrap_or(&message);
        error_json(&[("kind", "options".into()), ("message", message.into())])
    })?;
    options.into_config()
}

/// A JSON object of the given members, for errors.
fn error_json(members: &[(&str, serde_json::Value)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = members
        .iter()
        .map(|(key, value)| ((*key).to_owned(), value.clone()))
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// A [`FormatError`] as the JSON the JS side makes a `FormatError` of. `position` is the byte
/// offset [`FormatError::position`] gives; `index` the same place in UTF-16 code units, which
/// is what JavaScript strings (and a textarea's caret) count.
fn format_error_json(format: &str, error: &FormatError, option: Option<&str>) -> String {
    let position = error.position();
    let index = format
        .get(..position)
        .map_or(0, |s| s.encode_utf16().count());
    let mut members = vec![
        ("kind", "format".into()),
        ("message", error.to_string().into()),
        ("reason", error.reason().into()),
        ("position", position.into()),
        ("index", index.into()),
        ("format", format.into()),
    ];
    if let Some(option) = option {
        members.push(("option", option.into()));
    }
    error_json(&members)
}

/// A reusable transformer: the options once, then many records. Records are transformed in
/// order and share state, exactly as the CLI's lines of one run do.
#[wasm_bindgen]
pub struct Transformer {
    inner: crate::Transformer,
    out: Vec<u8>,
    outcome: u32,
    error: Option<Error>,
}

#[wasm_bindgen]
impl Transformer {
    /// A transformer for the options' JSON text (`""` for the defaults). Throws the JSON text
    /// of an options or format error.
    #[wasm_bindgen(constructor)]
    pub fn new(options: &str) -> Result<Transformer, JsValue> {
        let config = config(options).map_err(|e| JsValue::from_str(&e))?;
        Ok(Transformer {
            inner: crate::Transformer::new(config),
            out: Vec::new(),
            outcome: 0,
            error: None,
        })
    }

    /// The output line for the bytes of one record (without a line end, not necessarily
    /// UTF-8); then [`Transformer::outcome`] says what happened. The JS side passes strings as
    /// their UTF-8 bytes too: `TextEncoder`/`TextDecoder` are faster than the bindings' own
    /// string passing on long records.
    pub fn transform(&mut self, record: &[u8]) -> Vec<u8> {
        self.out.clear();
        let outcome = self.inner.transform(record, &mut self.out);
        self.outcome = outcome_code(outcome);
        self.error = match outcome {
            Outcome::PassedThrough(error) => Some(error),
            Outcome::Enriched(_) => None,
        };
        // `out` keeps its capacity for the next record; the bindings copy the result once more
        // into a JS array and free this one.
        self.out.clone()
    }

    /// The last record's [`Outcome`] as a number (see [`outcome_code`]).
    pub fn outcome(&self) -> u32 {
        self.outcome
    }

    /// Why the last record was passed through, in words (`invalid JSON ... at byte 12`).
    #[wasm_bindgen(js_name = passedThroughBecause)]
    pub fn passed_through_because(&self) -> Option<String> {
        self.error.map(|e| e.to_string())
    }
}

/// An [`Outcome`] packed into a number: bit 0 is set when the record was passed through, and
/// then bits 1-3 are the error's place in `names().errors`. Otherwise bits 1-3 are the shape's
/// place in `names().shapes`, bits 4-6 the kept log's reason in `names().logKept` (plus one, 0
/// for none), bit 7 is set for access logs, bits 8-11 are the trace source's place in
/// `names().traceSources` (plus one, 0 for none).
fn outcome_code(outcome: Outcome) -> u32 {
    match outcome {
        Outcome::PassedThrough(error) => {
            let error = match error {
                Error::InvalidUtf8 { .. } => 0,
                Error::Json(_) => 1,
                Error::DuplicateKey { .. } => 2,
                Error::TooLarge { .. } => 3,
            };
            1 | error << 1
        }
        Outcome::Enriched(Enriched {
            shape,
            access_log,
            trace,
        }) => {
            let (shape, kept) = match shape {
                Shape::LogJson => (0, 0),
                Shape::LogText => (1, 0),
                Shape::LogKept(kept) => {
                    (2, 1 + LOG_KEPT.iter().position(|k| *k == kept).unwrap_or(0))
                }
                Shape::Bare => (3, 0),
            };
            let trace = trace.map_or(0, |t| {
                1 + TraceSource::ALL.iter().position(|s| *s == t).unwrap_or(0)
            });
            shape << 1 | (kept as u32) << 4 | u32::from(access_log) << 7 | (trace as u32) << 8
        }
    }
}

const LOG_KEPT: [LogKept; 4] = [
    LogKept::NotJson,
    LogKept::InvalidJson,
    LogKept::DuplicateKey,
    LogKept::KeyConflict,
];

/// The names the numbers of [`outcome_code`] stand for, as JSON:
/// `{"errors":[...],"shapes":[...],"logKept":[...],"traceSources":[...],"traceHeaders":[...]}`.
/// Each is the Rust API's own stable name (`Shape::name`, `TraceSource::name`, ...).
#[wasm_bindgen]
pub fn names() -> String {
    let errors = [
        Error::InvalidUtf8 { valid_up_to: 0 }.reason(),
        Error::Json(ReadError {
            kind: SyntaxError::Truncated,
            offset: 0,
        })
        .reason(),
        Error::DuplicateKey { offset: 0 }.reason(),
        Error::TooLarge { len: 0 }.reason(),
    ];
    let shapes = [
        Shape::LogJson,
        Shape::LogText,
        Shape::LogKept(LogKept::NotJson),
        Shape::Bare,
    ]
    .map(Shape::name);
    serde_json::json!({
        "errors": errors,
        "shapes": shapes,
        "logKept": LOG_KEPT.map(LogKept::reason),
        "traceSources": TraceSource::ALL.map(TraceSource::name),
        "traceHeaders": crate::http::TRACE_HEADERS,
    })
    .to_string()
}

/// Checks an Envoy format string ([`TextFormat::parse`]): the JSON array of its fields' names,
/// or throws the JSON text of the error, with its position.
#[wasm_bindgen(js_name = parseFormat)]
pub fn parse_format(format: &str) -> Result<String, JsValue> {
    match TextFormat::parse(format) {
        Ok(parsed) => Ok(serde_json::Value::from_iter(parsed.field_names()).to_string()),
        Err(e) => Err(JsValue::from_str(&format_error_json(format, &e, None))),
    }
}

/// Which trace header a record key stands for, as the transform reads keys (case and
/// punctuation do not matter): `datadog_trace`, `datadog_span`, `datadog_tags`, `traceparent`,
/// `b3_trace`, `b3_span`, `b3`, `xray`; `None` for other keys.
#[wasm_bindgen(js_name = traceKey)]
pub fn trace_key(key: &str) -> Option<String> {
    let mut buf = [0; 32];
    let kind = classify_key(normalize_key(key.as_bytes(), &mut buf)?)?;
    Some(
        match kind {
            TraceKey::DatadogTrace => "datadog_trace",
            TraceKey::DatadogSpan => "datadog_span",
            TraceKey::DatadogTags => "datadog_tags",
            TraceKey::TraceParent => "traceparent",
            TraceKey::B3Trace => "b3_trace",
            TraceKey::B3Span => "b3_span",
            TraceKey::B3Single => "b3",
            TraceKey::XRay => "xray",
        }
        .to_owned(),
    )
}

/// The trace context of request headers given as `name\nvalue\n` pairs (names in any case;
/// values with a line break are not headers and must not be given), by
/// [`crate::http::trace_context`]'s rules. Returns JSON:
/// `{"source":"w3c","traceId":"<decimal low 64 bits>","traceId128":"<as traceId128: 'hex' writes it>","spanId":"<decimal>"|null}`,
/// or `None` when no source is valid.
#[wasm_bindgen(js_name = traceContext)]
pub fn trace_context(headers: &str) -> Option<String> {
    let mut map = http::HeaderMap::new();
    let mut lines = headers.split('\n');
    while let (Some(name), Some(value)) = (lines.next(), lines.next()) {
        let name = http::HeaderName::from_bytes(name.as_bytes());
        let value = http::HeaderValue::from_str(value);
        if let (Ok(name), Ok(value)) = (name, value) {
            map.append(name, value);
        }
    }
    let context = crate::http::trace_context(&map)?;
    Some(
        serde_json::json!({
            "source": context.source.name(),
            "traceId": context.trace_id_string(TraceIdFormat::Decimal),
            "traceId128": context.trace_id_string(TraceIdFormat::Hex),
            "spanId": context.span_id.map(|id| id.to_string()),
        })
        .to_string(),
    )
}
