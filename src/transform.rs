//! The transform's public face: [`Transformer`], one record in, one Datadog-correlated record
//! out.
//!
//! A record takes three steps, each in a module of its own:
//!
//! 1. [`crate::record`] reads it: by a learned layout when the stream repeats its keys,
//!    otherwise by the general JSON reader, with the text-format matcher for a text `log`.
//! 2. [`crate::plan`] finds what its members mean and decides what to write: the trace context,
//!    `hash` and `phase`, the access-log attributes, what moves to `_log`.
//! 3. [`crate::output`] writes it in one pass from spans of the input, as planned. (The canary
//!    judge, which reads a few of the output's members, takes them from `crate::outline`
//!    instead: what the writer would write, without writing it.)
//!
//! The request-id join ([`crate::join`]) is the one state carried from record to record:
//! planning looks up a record's request id as the last trace source, and a record written
//! with a trace context of its own leaves it under its request id for later access lines.
//!
//! All working memory lives in [`Transformer`] and is reused, so a warm transformer does not
//! allocate.

use crate::config::{Config, Setup};
use crate::error::{Enriched, Error, Outcome};
use crate::join::RequestIds;
#[cfg(all(feature = "canary", not(target_arch = "wasm32")))]
use crate::outline::{self, Outline};
use crate::output::{self, Writer};
use crate::plan::{DdScratch, Found, Plan};
use crate::record::Reader;
use crate::trace::TraceContext;

/// Turns records into Datadog-correlated records. Build it once and reuse it: it keeps its
/// working buffers between calls.
///
/// ```
/// use envoy_dd::{Config, Transformer};
///
/// let mut t = Transformer::new(Config { hash: Some("abc123".into()), ..Config::default() });
/// let record = br#"{"source":"stdout","log":"{\"method\":\"GET\",\"path\":\"/users/42?x=1\",\"response_code\":200,\"duration\":12,\"response_flags\":\"-\",\"trace_id\":\"4321\",\"span_id\":\"8765\"}","ecs_task_definition":"api-canary:7"}"#;
/// let mut out = Vec::new();
/// t.transform(record, &mut out);
/// let out = String::from_utf8(out).unwrap();
/// assert!(out.starts_with(r#"{"source":"stdout","ecs_task_definition":"api-canary:7","duration":12000000,"response_flags":"-""#));
/// assert!(out.contains(r#""dd":{"trace_id":"4321","span_id":"8765"},"hash":"abc123","phase":"canary""#));
/// assert!(out.contains(r#""http":{"status_code":200,"method":"GET","url":"/users/42?x=1""#));
/// assert!(out.ends_with(r#""status":"info","message":"GET /users/42?x=1 200 12ms"}"#));
/// ```
pub struct Transformer {
    config: Config,
    setup: Setup,
    reader: Reader,
    planning: DdScratch,
    writer: Writer,
    /// The request-id join's memory (see [`crate::join`]).
    request_ids: RequestIds,
    #[cfg(all(feature = "canary", not(target_arch = "wasm32")))]
    outline: outline::Scratch,
}

impl Transformer {
    /// A transformer with the given config.
    pub fn new(config: Config) -> Self {
        Transformer {
            setup: Setup::of(&config),
            request_ids: RequestIds::new(config.request_id_join),
            config,
            reader: Reader::default(),
            planning: DdScratch::default(),
            writer: Writer::default(),
            #[cfg(all(feature = "canary", not(target_arch = "wasm32")))]
            outline: outline::Scratch::default(),
        }
    }

    /// How many records were read with a learned layout.
    #[cfg(test)]
    pub(crate) fn layout_hits(&self) -> u64 {
        self.reader.layout_hits()
    }

    internal! {
    /// Turns the fast reader for repeated record layouts on (the default) or off. The output
    /// is the same either way; this exists to compare the two readers in tests and fuzzing.
    pub fn set_layout_learning(&mut self, on: bool) {
        self.reader.learn_layouts = on;
    }
    }

    /// The config this transformer was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Appends the transformed record to `out`; on any error appends `input` unchanged
    /// instead. Never fails, never panics, never writes nothing.
    pub fn transform(&mut self, input: &[u8], out: &mut Vec<u8>) -> Outcome {
        self.transform_with_context(input, None, out)
    }

    /// Appends the transformed record to `out`, or returns why it cannot be transformed
    /// (leaving `out` as it was).
    ///
    /// ```
    /// use envoy_dd::{Config, Error, Transformer};
    ///
    /// let mut t = Transformer::new(Config::default());
    /// let mut out = Vec::new();
    /// assert!(matches!(t.try_transform(b"{\"a\":", &mut out), Err(Error::Json(_))));
    /// assert!(out.is_empty());
    /// ```
    pub fn try_transform(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Enriched, Error> {
        self.try_transform_with_context(input, None, out)
    }

    /// [`Self::transform`] for a record that belongs to a known trace — an application's own
    /// log line, written while it served a request whose headers gave `context` (see
    /// [`crate::trace`]). The context is the last trace source tried: ids in the record itself
    /// win. `dd` is then written exactly as for Envoy's records.
    ///
    /// ```
    /// use envoy_dd::{Config, TraceContext, TraceSource, Transformer};
    ///
    /// let mut t = Transformer::new(Config { hash: Some("4f9c2a1".into()), ..Config::default() });
    /// let ctx = TraceContext { trace_id: 1234, span_id: Some(5678), source: TraceSource::W3c };
    /// let mut out = Vec::new();
    /// t.transform_with_context(br#"{"msg":"card charged","dd":{"service":"billing"}}"#, Some(&ctx), &mut out);
    /// assert_eq!(
    ///     String::from_utf8(out).unwrap(),
    ///     r#"{"msg":"card charged","dd":{"service":"billing","trace_id":"1234","span_id":"5678"},"hash":"4f9c2a1"}"#
    /// );
    /// ```
    pub fn transform_with_context(
        &mut self,
        input: &[u8],
        context: Option<&TraceContext>,
        out: &mut Vec<u8>,
    ) -> Outcome {
        match self.try_transform_with_context(input, context, out) {
            Ok(done) => Outcome::Enriched(done),
            Err(error) => {
                out.extend_from_slice(input);
                Outcome::PassedThrough(error)
            }
        }
    }

    /// [`Self::try_transform`] with a fallback trace context, as in
    /// [`Self::transform_with_context`].
    pub fn try_transform_with_context(
        &mut self,
        input: &[u8],
        context: Option<&TraceContext>,
        out: &mut Vec<u8>,
    ) -> Result<Enriched, Error> {
        let start = out.len();
        let result = self.rewrite(input, context, out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    /// Reads and plans `input` as [`Self::transform`] does, and gives `f` what the output
    /// would be ([`Outline`]) instead of writing it: for readers of a few of the output's
    /// members (the canary judge). `Err` where [`Self::try_transform`] fails. The request-id
    /// join is looked up but not taught: its readers do not read `dd`.
    #[cfg(all(feature = "canary", not(target_arch = "wasm32")))]
    pub(crate) fn outline<R>(
        &mut self,
        input: &[u8],
        f: impl FnOnce(Outline<'_>) -> R,
    ) -> Result<R, Error> {
        let format = self.config.text_format.as_ref();
        let read = self.reader.read(input, format, &self.setup)?;
        let record = self.reader.record(input, read);
        let mut found = Found::default();
        found.note(&record);
        let plan = Plan::new(
            &record,
            &found,
            &self.config,
            &self.setup,
            None,
            &self.request_ids,
            &mut self.planning,
        );
        Ok(f(Outline {
            record: &record,
            found: &found,
            plan: &plan,
            routes: &self.config.routes,
            scratch: &mut self.outline,
        }))
    }

    fn rewrite(
        &mut self,
        input: &[u8],
        context: Option<&TraceContext>,
        out: &mut Vec<u8>,
    ) -> Result<Enriched, Error> {
        let format = self.config.text_format.as_ref();
        let read = self.reader.read(input, format, &self.setup)?;
        let record = self.reader.record(input, read);
        let mut found = Found::default();
        found.note(&record);
        let plan = Plan::new(
            &record,
            &found,
            &self.config,
            &self.setup,
            context,
            &self.request_ids,
            &mut self.planning,
        );
        // Enough room for the record and what is added to it, so writing never reallocates.
        out.reserve(input.len() + 1024);
        let routes = &self.config.routes;
        output::write(&record, &found, &plan, routes, &mut self.writer, out);
        // The request-id join remembers the trace context of a record that has its own.
        if let Some(id) = found.request_id {
            if let Some(own) = plan.own_context(&record.bufs) {
                self.request_ids.remember(id, own.trace_id, own.span_id);
            }
        }
        Ok(plan.enriched(&record))
    }
}
