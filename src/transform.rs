//! The hot path: one record in, one Datadog-correlated record out.
//!
//! A record is read once: by a learned layout when the stream repeats its keys
//! ([`crate::layout`]), otherwise by the general reader ([`crate::read`]), whose keys are then
//! given meanings ([`crate::envoy`]). Both give the same members. The trace context is
//! resolved ([`crate::trace`]), and the output is written in one pass from spans of the input.
//! All working memory lives in [`Transformer`] and is reused, so a warm transformer does not
//! allocate.

use core::fmt;

use crate::envoy::{self, Role};
use crate::join::{self, RequestIds};
use crate::keys::{KeyCache, Level, Meaning, Name, Seen};
use crate::layout::{self, Layouts};
use crate::read::{self, Decode, Kind, Member, ReadError, Span};
use crate::text::{self, TextFormat};
use crate::trace::{self, TraceCandidates, TraceContext, TraceIdFormat, TraceSource};
use crate::write::{self, ObjectWriter};

/// What the transform adds, and from what.
///
/// ```
/// use envoy_dd::{Config, TraceIdFormat};
///
/// let config = Config {
///     hash: Some("4f9c2a1".into()),
///     phase: Some("canary".into()),
///     trace_id_128: TraceIdFormat::Hex,
///     ..Config::default()
/// };
/// assert!(config.standard_attributes && config.status && config.message);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Git commit of the running code, used when the record carries no `hash` of its own.
    pub hash: Option<String>,
    /// `stable` or `canary`, used when the record carries no `phase` of its own.
    pub phase: Option<String>,
    /// How 128-bit trace ids are written (`dd.trace_id`).
    pub trace_id_128: TraceIdFormat,
    /// Add Datadog standard attributes (`http.*`, `network.*`, `duration`) to access logs.
    pub standard_attributes: bool,
    /// Add a Datadog `status` (log level) to access logs that have none.
    pub status: bool,
    /// Add a short `message` to access logs that have none.
    pub message: bool,
    /// Derive `phase` from an `ecs_task_definition` family ending in `-canary` / `-stable`.
    pub derive_phase: bool,
    /// The format of the Envoy text access logs in `log`, tried before the built-in ones
    /// (Envoy's default format, Istio's and ECS Service Connect's), which are always
    /// recognised.
    pub text_format: Option<TextFormat>,
    /// The request-id join: how many request ids to remember with the trace context of a
    /// record that had both (an application's own line), for access lines of the same
    /// request that have no trace id (ECS Service Connect logs none). The oldest is
    /// forgotten first; each takes 112 bytes, so the default, 8192, 0.9 MiB.
    /// 0 turns the join off.
    pub request_id_join: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hash: None,
            phase: None,
            trace_id_128: TraceIdFormat::Decimal,
            standard_attributes: true,
            status: true,
            message: true,
            derive_phase: true,
            text_format: None,
            request_id_join: join::DEFAULT_ENTRIES,
        }
    }
}

impl Config {
    /// The default config with `hash` and `phase` taken from the environment variables
    /// `GIT_COMMIT_SHA` and `DEPLOY_PHASE` (the names the Fluent Bit examples use).
    pub fn from_env() -> Self {
        Config {
            hash: std::env::var("GIT_COMMIT_SHA").ok(),
            phase: std::env::var("DEPLOY_PHASE").ok(),
            ..Config::default()
        }
    }
}

/// Why a record could not be transformed. The record is then passed through unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The record is not valid UTF-8.
    InvalidUtf8 {
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// The record is not one valid JSON object.
    Json(ReadError),
    /// The record has the same key twice; rewriting it would have to drop one.
    DuplicateKey {
        /// Byte offset of the second occurrence's key.
        offset: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidUtf8 { valid_up_to } => write!(f, "invalid UTF-8 at byte {valid_up_to}"),
            Error::Json(e) => write!(f, "{} at byte {}", e.kind, e.offset),
            Error::DuplicateKey { offset } => write!(f, "duplicate key at byte {offset}"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// A short, stable name for counting (`invalid_utf8`, `invalid_json`, `duplicate_key`).
    pub const fn reason(&self) -> &'static str {
        match self {
            Error::InvalidUtf8 { .. } => "invalid_utf8",
            Error::Json(_) => "invalid_json",
            Error::DuplicateKey { .. } => "duplicate_key",
        }
    }
}

/// Which input shape a record had (see "The rules" in the README).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A FireLens record whose `log` held a JSON object, now merged into the record.
    LogJson,
    /// A FireLens record whose `log` held an Envoy text access log line (in
    /// [`Config::text_format`] or a built-in format), now parsed and merged into the record.
    LogText,
    /// A FireLens record whose `log` was kept as it is, and why.
    LogKept(LogKept),
    /// A record without a `log` string: a bare or already flattened Envoy object.
    Bare,
}

impl Shape {
    /// A short, stable name for counting: `log_json`, `log_text`, `log_kept`, `bare`.
    pub const fn name(self) -> &'static str {
        match self {
            Shape::LogJson => "log_json",
            Shape::LogText => "log_text",
            Shape::LogKept(_) => "log_kept",
            Shape::Bare => "bare",
        }
    }

    /// The `log` was parsed and its members are merged into the record.
    fn merges_log(self) -> bool {
        matches!(self, Shape::LogJson | Shape::LogText)
    }
}

/// Why a `log` string was kept as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogKept {
    /// Not a JSON object: plain text, an Envoy text access log, Envoy's own messages.
    NotJson,
    /// It starts like a JSON object but is not valid JSON.
    InvalidJson,
    /// It is a JSON object with a key twice.
    DuplicateKey,
    /// Merging it would need `_log`, which the record already uses for something else.
    KeyConflict,
}

impl LogKept {
    /// A short, stable name for counting: `not_json`, `invalid_json`, `duplicate_key`,
    /// `key_conflict`.
    pub const fn reason(self) -> &'static str {
        match self {
            LogKept::NotJson => "not_json",
            LogKept::InvalidJson => "invalid_json",
            LogKept::DuplicateKey => "duplicate_key",
            LogKept::KeyConflict => "key_conflict",
        }
    }
}

/// What a successful transform did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enriched {
    /// The input shape.
    pub shape: Shape,
    /// A response code was found, so access-log attributes were considered.
    pub access_log: bool,
    /// Where `dd.trace_id` came from, if the output has a valid one.
    pub trace: Option<TraceSource>,
}

/// The result of [`Transformer::transform`], which always writes a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The output is the enriched record.
    Enriched(Enriched),
    /// The output is the input, unchanged.
    PassedThrough(Error),
}

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
/// assert!(out.starts_with(r#"{"source":"stdout","ecs_task_definition":"api-canary:7","method":"GET""#));
/// assert!(out.contains(r#""dd":{"trace_id":"4321","span_id":"8765"},"hash":"abc123","phase":"canary""#));
/// assert!(out.contains(r#""duration":12000000"#));
/// assert!(out.contains(r#""status":"info","message":"GET /users/42?x=1 200 12ms""#));
/// assert!(out.ends_with(r#""_log":{"duration":12}}"#));
/// ```
pub struct Transformer {
    config: Config,
    /// `hash` / `phase` from the config, already JSON-encoded; `None` if unset or debris.
    hash_json: Option<Vec<u8>>,
    phase_json: Option<Vec<u8>>,
    /// The configured text format looks like JSON (`{"method":"%REQ(:METHOD)%",...}`): it is
    /// tried first on a `log` that opens with `{` too.
    braced_text_format: bool,
    /// Read records with learned layouts (see [`crate::layout`]).
    learn_layouts: bool,
    /// The request-id join's memory (see [`crate::join`]).
    request_ids: RequestIds,
    scratch: Scratch,
}

/// Working memory, reused across records.
#[derive(Default)]
struct Scratch {
    envelope: Vec<Member>,
    record: Vec<Member>,
    /// Key ids (see [`KeyCache`]) of `envelope` and `record`, index for index, when the
    /// general path read the record (a layout has its own).
    envelope_keys: Vec<u32>,
    record_keys: Vec<u32>,
    stack: Vec<u8>,
    log_text: Vec<u8>,
    /// A text `log` rewritten as a JSON object, which then plays the part of `log`.
    log_json: Vec<u8>,
    keys: KeyCache,
    layouts: Layouts,
    /// Every member index of the envelope and of the record (see the writing loop).
    all_members: [Vec<u32>; 2],
    /// The members of a text log that need more than copying, and those that mean
    /// something, as a layout lists them (see [`special_in_record`], [`scanned`]).
    text_specials: Vec<u32>,
    text_scanned: Vec<(u32, Meaning)>,
    text_keys: TextKeys,
    /// For each member of a text log (listed in `record` by the matching), its place among
    /// its format's member names.
    text_places: Vec<u16>,
    dd_first: Vec<Member>,
    dd_second: Vec<Member>,
    displaced: Vec<Displaced>,
}

/// The key ids of each text format's member names ([`TextFormat::member_names`]), by the
/// format's place among [`text::formats`], and the key cache epoch they belong to.
#[derive(Default)]
struct TextKeys {
    formats: Vec<FormatKeys>,
}

/// The keys of one text format's members, by place (see [`TextFormat::member_names`]).
#[derive(Default)]
struct FormatKeys {
    keys: Vec<TextKey>,
    /// No two members have the same key, so a line cannot have duplicate keys.
    unique: bool,
    /// The key cache epoch the ids belong to.
    epoch: Option<u32>,
}

/// What the transform needs to know of a text format's member, looked up once.
#[derive(Clone, Copy)]
struct TextKey {
    id: u32,
    meaning: Meaning,
    special: bool,
    scanned: bool,
}

impl TextKeys {
    fn of(&mut self, format: &TextFormat, n: usize, keys: &mut KeyCache) -> &FormatKeys {
        if self.formats.len() <= n {
            self.formats.resize_with(n + 1, Default::default);
        }
        let of_format = &mut self.formats[n];
        if of_format.epoch != Some(keys.epoch()) {
            of_format.keys.clear();
            for name in format.member_names() {
                let id = keys.lookup(name.as_bytes(), false);
                let meaning = keys.meaning(id);
                of_format.keys.push(TextKey {
                    id,
                    meaning,
                    special: special_in_record(meaning),
                    scanned: scanned(meaning),
                });
            }
            let ids = &of_format.keys;
            of_format.unique = (0..ids.len()).all(|i| ids[..i].iter().all(|k| k.id != ids[i].id));
            of_format.epoch = Some(keys.epoch());
        }
        of_format
    }
}

/// Where the text of `log` is: in the input (a string without escapes), decoded into
/// `Scratch::log_text`, or rewritten from a text access log into `Scratch::log_json`.
#[derive(Clone, Copy)]
enum LogSource {
    Input(usize),
    Decoded,
    Text,
}

impl LogSource {
    fn of<'a>(
        self,
        input: &'a [u8],
        envelope: &[Member],
        log_text: &'a [u8],
        log_json: &'a [u8],
    ) -> &'a [u8] {
        match self {
            LogSource::Input(at) => envelope[at].str_content(input),
            LogSource::Decoded => log_text,
            LogSource::Text => log_json,
        }
    }
}

/// Which buffer a member lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Envelope,
    Record,
}

/// A member moved under `_log` (or `_log.dd`) because another value took its key.
#[derive(Clone, Copy)]
struct Displaced {
    side: Side,
    key: Span,
    value: Span,
    in_dd: bool,
}

impl Displaced {
    /// A member of a `dd` object, kept under `_log.dd`.
    fn in_dd(side: Side, m: &Member) -> Self {
        Displaced {
            side,
            key: m.key,
            value: m.value,
            in_dd: true,
        }
    }
}

impl Transformer {
    /// A transformer with the given config.
    pub fn new(config: Config) -> Self {
        let encode = |value: &Option<String>| {
            let value = value.as_deref().filter(|v| !is_placeholder(v.as_bytes()))?;
            let mut json = Vec::new();
            write::string(&mut json, value);
            Some(json)
        };
        let braced = |f: &TextFormat| f.as_str().trim_start().starts_with('{');
        Transformer {
            hash_json: encode(&config.hash),
            phase_json: encode(&config.phase),
            braced_text_format: config.text_format.as_ref().is_some_and(braced),
            request_ids: RequestIds::new(config.request_id_join),
            config,
            learn_layouts: true,
            scratch: Scratch::default(),
        }
    }

    /// How many records were read with a learned layout.
    #[cfg(test)]
    pub(crate) fn layout_hits(&self) -> u64 {
        self.scratch.layouts.hits
    }

    /// Turns the fast reader for repeated record layouts on (the default) or off. The output
    /// is the same either way; this exists to compare the two readers in tests and fuzzing.
    #[doc(hidden)]
    pub fn set_layout_learning(&mut self, on: bool) {
        self.learn_layouts = on;
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

    fn rewrite(
        &mut self,
        input: &[u8],
        context: Option<&TraceContext>,
        out: &mut Vec<u8>,
    ) -> Result<Enriched, Error> {
        // Enough room for the record and what is added to it, so writing never reallocates.
        out.reserve(input.len() + 1024);
        let s = &mut self.scratch;
        s.displaced.clear();
        // Before the epoch is taken: starting a record may start the key cache afresh.
        s.keys.start_record();
        let epoch = s.keys.epoch();
        let layout_read = match self.learn_layouts {
            true => s.layouts.read(
                input,
                epoch,
                &mut s.envelope,
                &mut s.record,
                &mut s.log_text,
                &mut s.stack,
            ),
            false => None,
        };
        // The layout saw every byte when it is sure they are all ASCII.
        if !layout_read.is_some_and(|hit| hit.ascii) {
            check_utf8(input)?;
        }
        #[cfg(test)]
        if let Some(hit) = layout_read {
            let record = (!hit.text_log).then_some(&s.record[..]);
            check_layout_read(input, hit.log_index, &s.envelope, record, &s.log_text);
            assert!(!hit.ascii || input.is_ascii());
        }
        // A layout of a JSON `log` read everything; one of a text `log` read the envelope.
        let fast = layout_read.filter(|hit| !hit.text_log);
        let read = match fast {
            // A learned layout read the record: a JSON `log` without collisions.
            Some(hit) => RecordRead {
                log_at: Some(hit.log_index),
                shape: Shape::LogJson,
                collisions: false,
                uses_displaced: hit.uses_displaced,
                log_source: LogSource::Decoded,
            },
            None => {
                let text = TextSetup {
                    format: self.config.text_format.as_ref(),
                    braced: self.braced_text_format,
                };
                s.read_in_full(input, layout_read, epoch, text, self.learn_layouts)?
            }
        };
        let RecordRead {
            log_at,
            shape,
            mut collisions,
            mut uses_displaced,
            log_source,
        } = read;
        let log = log_source.of(input, &s.envelope, &s.log_text, &s.log_json);
        // The key ids of the envelope's members and of the record's: the layout's own, when a
        // layout read the record, else those `read_in_full` worked out.
        let fast_ids = fast.map(|hit| s.layouts.ids(hit.layout));
        let [envelope_keys, record_keys] = fast_ids.unwrap_or([&s.envelope_keys, &s.record_keys]);

        // With a merged log, the top level is the envelope and the log is the record;
        // otherwise the top level is the record and there is no envelope.
        let merged = shape.merges_log();
        let (env, rec, bufs) = if merged {
            let env = Members {
                members: &s.envelope,
                keys: envelope_keys,
            };
            let rec = Members {
                members: &s.record,
                keys: record_keys,
            };
            (
                env,
                rec,
                Bufs {
                    env: input,
                    rec: log,
                },
            )
        } else {
            let rec = Members {
                members: &s.envelope,
                keys: envelope_keys,
            };
            (
                Members::EMPTY,
                rec,
                Bufs {
                    env: &[],
                    rec: input,
                },
            )
        };
        if !merged {
            collisions = false;
            uses_displaced = envelope_keys
                .iter()
                .any(|&id| s.keys.meaning(id).name == Name::Displaced);
        }
        let skip_env = if merged { log_at } else { None };
        let can_displace = !uses_displaced;

        // The members to look at, per side (indexed by `Side as usize`), where they are
        // known: a layout lists them for the envelope it read and for a JSON log, and
        // `read_in_full` listed a text log's. Otherwise every member is looked at.
        let mut scanned_lists: [Option<&[(u32, Meaning)]>; 2] = [None; 2];
        let mut special_lists: [Option<&[u32]>; 2] = [None; 2];
        if let (Some(hit), true) = (layout_read, merged) {
            let [envelope, record] = s.layouts.scanned(hit.layout);
            let [envelope_specials, record_specials] = s.layouts.specials(hit.layout);
            scanned_lists[Side::Envelope as usize] = Some(envelope);
            special_lists[Side::Envelope as usize] = Some(envelope_specials);
            if !hit.text_log {
                scanned_lists[Side::Record as usize] = Some(record);
                special_lists[Side::Record as usize] = Some(record_specials);
            }
        }
        if shape == Shape::LogText && !collisions {
            scanned_lists[Side::Record as usize] = Some(&s.text_scanned);
            special_lists[Side::Record as usize] = Some(&s.text_specials);
        }

        let mut found = Found::default();
        // Side by side rather than in a loop over both: each call knows its side, so the
        // checks of it in `Found::member` fold away.
        found.side(Side::Record, rec, scanned_lists, &bufs, None, &s.keys);
        found.side(Side::Envelope, env, scanned_lists, &bufs, skip_env, &s.keys);

        let config = &self.config;
        let access = Access::plan(config, &found, can_displace);
        let dd = DdPlan::new(
            &found,
            &bufs,
            &mut s.dd_first,
            &mut s.dd_second,
            &mut s.stack,
        );
        // Replacing an invalid id that is more than a placeholder moves it to `_log`; when the
        // record already uses `_log` for something else, the ids stay as they were.
        let replaceable = can_displace || !dd.holds_data(&bufs);
        let resolved = match dd.managed && !dd.existing_valid && replaceable {
            true => {
                let [envelope, record] = &found.trace;
                TraceCandidates::of_sides(record, envelope)
                    .resolve_for(config.trace_id_128)
                    .or(context.copied())
                    // The request-id join, the last resort.
                    .or_else(|| join_context(&self.request_ids, found.request_id))
            }
            false => None,
        };
        let trace_source = if dd.existing_valid {
            Some(TraceSource::Existing)
        } else {
            resolved.map(|c| c.source)
        };
        let hash = ValuePlan::new(Name::Hash, &found.hash, self.hash_json.as_deref());
        // The phase derived from the task definition is the last resort: worked out only
        // when neither the record nor the configuration has one.
        let fallback = match self.phase_json.as_deref() {
            Some(configured) => Some(configured),
            None if config.derive_phase && found.phase.iter().all(Option::is_none) => {
                derived_phase(&found, &bufs)
            }
            None => None,
        };
        let phase = ValuePlan::new(Name::Phase, &found.phase, fallback);

        // Existing members, envelope first, each in its order. The members that need more
        // than copying are looked at one by one (a layout lists them; otherwise every member
        // is looked at); those copied unchanged are gathered into runs, so that a stretch of
        // them costs one copy.
        for ((all, members), list) in s.all_members.iter_mut().zip([env, rec]).zip(special_lists) {
            all.clear();
            if list.is_none() {
                all.extend(0..members.members.len() as u32);
            }
        }
        let specials = [Side::Envelope, Side::Record]
            .map(|side| special_lists[side as usize].unwrap_or(&s.all_members[side as usize]));
        let mut w = ObjectWriter::open(out);
        for (side, members) in [(Side::Envelope, env), (Side::Record, rec)] {
            let buf = bufs.of(side);
            let mut run = Run::default();
            let mut plain = 0;
            for &i in specials[side as usize] {
                let i = i as usize;
                if plain < i {
                    // A layout's members are compact and in a row: one stretch.
                    let (first, last) = (&members.members[plain], &members.members[i - 1]);
                    run.add_stretch(&mut w, out, buf, first.key.start - 1, last.value.end);
                }
                plain = i + 1;
                let m = &members.members[i];
                let here = Some((side, i));
                let name = s.keys.meaning(members.keys[i]).name;
                let keep = match name {
                    _ if side == Side::Envelope && Some(i) == skip_env => false,
                    Name::Dd if dd.managed => {
                        if here == dd.position {
                            run.flush(&mut w, out, buf);
                            dd.write(
                                &mut w,
                                out,
                                &bufs,
                                resolved,
                                config.trace_id_128,
                                &mut s.displaced,
                            );
                        }
                        false
                    }
                    Name::Hash | Name::Phase => {
                        // Debris is dropped; of two real values the winner takes the first place.
                        let plan = if name == Name::Hash { &hash } else { &phase };
                        if here == plan.position {
                            run.flush(&mut w, out, buf);
                            plan.write(&mut w, out, &bufs, &mut s.displaced);
                        }
                        false
                    }
                    _ if side == Side::Record && access.duration_in_place == Some(i) => {
                        run.flush(&mut w, out, buf);
                        w.start(out, br#","duration":"#);
                        match found.duration {
                            Some((duration, _)) => duration.write_nanos(out),
                            None => out.push(b'0'),
                        }
                        s.displaced.push(Displaced {
                            side,
                            key: m.key,
                            value: m.value,
                            in_dd: false,
                        });
                        false
                    }
                    _ if side == Side::Record && collisions => {
                        let top = s
                            .keys
                            .at_top(members.keys[i])
                            .filter(|&t| Some(t as usize) != skip_env);
                        match top {
                            Some(_) => {
                                s.displaced.push(Displaced {
                                    side,
                                    key: m.key,
                                    value: m.value,
                                    in_dd: false,
                                });
                                false
                            }
                            None => true,
                        }
                    }
                    _ => true,
                };
                if keep {
                    run.add(&mut w, out, buf, m);
                } else {
                    run.flush(&mut w, out, buf);
                }
            }
            if let (Some(first), Some(last)) = (members.members.get(plain), members.members.last())
            {
                run.add_stretch(&mut w, out, buf, first.key.start - 1, last.value.end);
            }
            run.flush(&mut w, out, buf);
        }

        // Added members.
        if dd.managed && dd.position.is_none() && resolved.is_some() {
            dd.write(
                &mut w,
                out,
                &bufs,
                resolved,
                config.trace_id_128,
                &mut s.displaced,
            );
        }
        for plan in [&hash, &phase] {
            if plan.position.is_none() {
                plan.write(&mut w, out, &bufs, &mut s.displaced);
            }
        }
        if let Some(access) = &access.attributes {
            access.write(&mut w, out, &found);
        }
        write_displaced(&mut w, out, &bufs, &s.displaced);
        w.close(out);
        // The request-id join: remembers the trace context of a record with a request id.
        if let Some(id) = found.request_id {
            let own = resolved.or_else(|| dd.existing_ids(&bufs));
            remember(&mut self.request_ids, id, own);
        }
        Ok(Enriched {
            shape,
            access_log: access.attributes.is_some(),
            trace: trace_source,
        })
    }
}

/// The user's text format, as the general path needs it.
#[derive(Clone, Copy)]
struct TextSetup<'f> {
    /// [`Config::text_format`].
    format: Option<&'f TextFormat>,
    /// The format looks like JSON (see [`Transformer::braced_text_format`]).
    braced: bool,
}

/// What reading a record found out: by a layout, or by [`Scratch::read_in_full`].
struct RecordRead {
    /// Which envelope member is a `log` string, if one is.
    log_at: Option<usize>,
    shape: Shape,
    /// Some of the log's keys are the envelope's too (they move to `_log`).
    collisions: bool,
    /// The record already has a `_log` key of its own (see [`Name::Displaced`]).
    uses_displaced: bool,
    log_source: LogSource,
}

impl Scratch {
    /// Reads a record that no layout read whole (the general path): the envelope, with its
    /// key ids, unless `layout_read` (a layout of a text `log`) read it; what `log` holds (a
    /// JSON object, a text access log, or text to keep); and the log's key ids, collisions and
    /// duplicates. Learns a layout from the record when it is one to learn from. `Err` only
    /// when the record is not one JSON object or its top level repeats a key.
    fn read_in_full(
        &mut self,
        input: &[u8],
        layout_read: Option<layout::Hit>,
        epoch: u32,
        text: TextSetup<'_>,
        learn_layouts: bool,
    ) -> Result<RecordRead, Error> {
        let (log_at, mut shape, mut collisions, mut uses_displaced, log_source);
        let log_member = match layout_read {
            // The envelope as learned: its ids are known and unique, the top level still
            // has to know them for the log's keys.
            Some(hit) => {
                let [envelope_ids, _] = self.layouts.ids(hit.layout);
                self.envelope_keys.clear();
                self.envelope_keys.extend_from_slice(envelope_ids);
                for (i, &id) in envelope_ids.iter().enumerate() {
                    self.keys.see(id, Level::Top, i as u32);
                }
                uses_displaced = hit.uses_displaced;
                Some(hit.log_index)
            }
            None => {
                self.envelope.clear();
                // The `log` string is decoded while the record is read (it is most of
                // the bytes).
                let decode = Decode {
                    key: b"log",
                    into: &mut self.log_text,
                };
                let log_member = read::read_object_decoding(
                    input,
                    &mut self.envelope,
                    &mut self.stack,
                    Some(decode),
                )
                .map_err(Error::Json)?;

                // Key ids, meanings, and duplicates: the top level must have unique keys.
                self.envelope_keys.clear();
                uses_displaced = false;
                for (i, m) in self.envelope.iter().enumerate() {
                    let id = self
                        .keys
                        .lookup_at(Level::Top, i, m.key.of(input), m.key_escaped);
                    if self.keys.see(id, Level::Top, i as u32) == Seen::Duplicate {
                        return Err(Error::DuplicateKey {
                            offset: m.key.start as usize,
                        });
                    }
                    uses_displaced |= self.keys.meaning(id).name == Name::Displaced;
                    self.envelope_keys.push(id);
                }
                log_member
            }
        };
        self.record.clear();
        let envelope_uses_displaced = uses_displaced;

        // A `log` string holding a JSON object is merged into the record (shapes A, D);
        // other `log` strings stay as they are (B, E); without one the record is bare (C, F).
        log_at = log_member.filter(|&at| self.envelope[at].kind == Kind::String);
        let mut source = match log_at {
            Some(at) if !self.envelope[at].value_escaped => LogSource::Input(at),
            _ => LogSource::Decoded,
        };
        let decoded = source;
        let log = source.of(input, &self.envelope, &self.log_text, &[]);
        let text_log = log_at.is_some() && log.trim_ascii_start().first() != Some(&b'{');
        let custom = text.format;
        // A user's format may look like JSON (`{"method":"%REQ(:METHOD)%",...}`): a `log`
        // that opens with `{` is then matched with it first, and read as JSON only if it
        // does not match (Envoy does not escape the quotes in such a line's values).
        let braced = text.braced;
        let text_first = text_log || (log_at.is_some() && braced);
        let mut text_format = None;
        shape = match log_at {
            None => Shape::Bare,
            Some(_) if text_first => {
                let (json, places) = (&mut self.log_json, &mut self.text_places);
                match text::line_to_json(custom, log, json, &mut self.record, places) {
                    Some(n) => {
                        // The matching listed the members it wrote, and which each is.
                        text_format = text::formats(custom).nth(n).map(|f| (f, n));
                        #[cfg(test)]
                        {
                            let mut general = Vec::new();
                            text::members_of(&self.log_json, &mut general);
                            assert_eq!(self.record, general);
                        }
                        source = LogSource::Text;
                        Shape::LogText
                    }
                    None if text_log => Shape::LogKept(LogKept::NotJson),
                    None => match read::read_object(log, &mut self.record, &mut self.stack) {
                        Ok(()) => Shape::LogJson,
                        Err(_) => Shape::LogKept(LogKept::InvalidJson),
                    },
                }
            }
            Some(_) => match read::read_object(log, &mut self.record, &mut self.stack) {
                Ok(()) => Shape::LogJson,
                Err(_) => Shape::LogKept(LogKept::InvalidJson),
            },
        };
        log_source = source;
        let log = source.of(input, &self.envelope, &self.log_text, &self.log_json);

        // The log's keys must be unique among themselves; those the top level also has are
        // displaced to `_log`. The envelope's own `log` is being replaced, so its key is free.
        collisions = false;
        self.record_keys.clear();
        if shape.merges_log() {
            // A text log's keys are its format's member names, in order, some left out:
            // what they mean is known, and so are the members that mean something.
            let format_keys = text_format.map(|(f, n)| self.text_keys.of(f, n, &mut self.keys));
            self.text_specials.clear();
            self.text_scanned.clear();
            for (i, m) in self.record.iter().enumerate() {
                let (id, meaning) = match format_keys {
                    Some(format) => {
                        let key = format.keys[self.text_places[i] as usize];
                        if key.special {
                            self.text_specials.push(i as u32);
                        }
                        if key.scanned {
                            self.text_scanned.push((i as u32, key.meaning));
                        }
                        (key.id, key.meaning)
                    }
                    None => {
                        let key = m.key.of(log);
                        let id = self.keys.lookup_at(Level::Log, i, key, m.key_escaped);
                        (id, self.keys.meaning(id))
                    }
                };
                // Unique keys need no check among themselves, only against the top level.
                let seen = match format_keys {
                    Some(format) if format.unique => {
                        self.keys.at_top(id).map_or(Seen::First, Seen::AlsoAtTop)
                    }
                    _ => self.keys.see(id, Level::Log, i as u32),
                };
                match seen {
                    Seen::First => {}
                    Seen::AlsoAtTop(top) => collisions |= Some(top as usize) != log_at,
                    Seen::Duplicate => {
                        shape = Shape::LogKept(LogKept::DuplicateKey);
                        break;
                    }
                }
                uses_displaced |= meaning.name == Name::Displaced;
                self.record_keys.push(id);
            }
            if shape.merges_log() && collisions && uses_displaced {
                shape = Shape::LogKept(LogKept::KeyConflict);
            }
        }
        // The members of a text log are compact and in a row, as a layout's are: the
        // writer copies stretches of them, and `Found` looks at those that mean something
        // (listed above).
        if shape != Shape::LogText || collisions {
            self.text_specials.clear();
            self.text_scanned.clear();
        }
        // A layout is learned from records the general reader read: with a JSON `log`
        // that merges without collisions, or with a text `log` (the envelope only). Not
        // with a JSON `log` when the user's format looks like JSON: such a layout would
        // read its lines as JSON without trying the format first.
        let learn = match (log_at, layout_read.is_none() && learn_layouts) {
            (Some(at), true) if text_log => Some(at),
            (Some(at), true) if shape == Shape::LogJson && !collisions && !braced => Some(at),
            _ => None,
        };
        if let Some(log_index) = learn {
            // A text log's layout is of the envelope alone, with `log` as it was read.
            let (log, record, record_ids, uses_displaced) = match text_log {
                true => {
                    let log = decoded.of(input, &self.envelope, &self.log_text, &[]);
                    (log, &[][..], &[][..], envelope_uses_displaced)
                }
                false => (log, &self.record[..], &self.record_keys[..], uses_displaced),
            };
            let learned = layout::Learned {
                envelope: &self.envelope,
                envelope_ids: &self.envelope_keys,
                log_index,
                log,
                record,
                record_ids,
                uses_displaced,
                text_log,
            };
            let keys = &self.keys;
            let meaning_of = |id| keys.meaning(id);
            self.layouts
                .consider(input, learned, epoch, &mut self.stack, meaning_of);
        }
        Ok(RecordRead {
            log_at,
            shape,
            collisions,
            uses_displaced,
            log_source,
        })
    }
}

/// The record must be UTF-8 (JSON is), or it is passed through.
fn check_utf8(input: &[u8]) -> Result<(), Error> {
    match core::str::from_utf8(input) {
        Ok(_) => Ok(()),
        Err(e) => Err(Error::InvalidUtf8 {
            valid_up_to: e.valid_up_to(),
        }),
    }
}

/// In the crate's tests, every record a layout reads is read again by the general reader,
/// which must find exactly the same: the envelope, the decoded `log` and, for a JSON `log`,
/// its members.
#[cfg(test)]
fn check_layout_read(
    input: &[u8],
    log_at: usize,
    envelope: &[Member],
    record: Option<&[Member]>,
    log: &[u8],
) {
    let (mut envelope2, mut record2, mut log2, mut stack) = (vec![], vec![], vec![], vec![]);
    let decode = Decode {
        key: b"log",
        into: &mut log2,
    };
    let at = read::read_object_decoding(input, &mut envelope2, &mut stack, Some(decode));
    assert_eq!(at, Ok(Some(log_at)));
    if !envelope2[log_at].value_escaped {
        // The general reader leaves a string without escapes where it is.
        log2 = envelope2[log_at].str_content(input).to_vec();
    }
    match record {
        Some(record) => {
            read::read_object(&log2, &mut record2, &mut stack).unwrap();
            assert_eq!(record, &record2[..]);
        }
        None => assert_ne!(log2.trim_ascii_start().first(), Some(&b'{')),
    }
    assert_eq!((envelope, log), (&envelope2[..], &log2[..]));
}

/// The two buffers members live in: the top level and the parsed `log`.
struct Bufs<'a> {
    env: &'a [u8],
    rec: &'a [u8],
}

impl<'a> Bufs<'a> {
    #[inline]
    fn of(&self, side: Side) -> &'a [u8] {
        match side {
            Side::Envelope => self.env,
            Side::Record => self.rec,
        }
    }
}

/// The members of one side with their key ids.
#[derive(Clone, Copy)]
struct Members<'m> {
    members: &'m [Member],
    keys: &'m [u32],
}

impl Members<'_> {
    const EMPTY: Members<'static> = Members {
        members: &[],
        keys: &[],
    };
}

/// A stretch of members to copy unchanged: `"k1":v1,"k2":v2` as it stands in the input.
#[derive(Default)]
struct Run {
    start: usize,
    end: usize,
}

impl Run {
    /// Adds a member, extending the run when the member follows it directly.
    #[inline]
    fn add(&mut self, w: &mut ObjectWriter, out: &mut Vec<u8>, buf: &[u8], m: &Member) {
        let (key_start, key_end) = (m.key.start as usize - 1, m.key.end as usize);
        // Only compact members (`"key":value`, no white space) can be copied whole.
        if buf.get(key_end + 1) != Some(&b':') || m.value.start as usize != key_end + 2 {
            self.flush(w, out, buf);
            w.raw(out, m.key.of(buf), m.value.of(buf));
            return;
        }
        if self.start == self.end || self.end + 1 != key_start || buf[self.end] != b',' {
            self.flush(w, out, buf);
            self.start = key_start;
        }
        self.end = m.value.end as usize;
    }

    /// Adds compact members that follow each other directly: `buf[start..end]`.
    #[inline]
    fn add_stretch(
        &mut self,
        w: &mut ObjectWriter,
        out: &mut Vec<u8>,
        buf: &[u8],
        start: u32,
        end: u32,
    ) {
        let (start, end) = (start as usize, end as usize);
        if self.start == self.end || self.end + 1 != start || buf[self.end] != b',' {
            self.flush(w, out, buf);
            self.start = start;
        }
        self.end = end;
    }

    #[inline]
    fn flush(&mut self, w: &mut ObjectWriter, out: &mut Vec<u8>, buf: &[u8]) {
        if self.start != self.end {
            w.members(out, &buf[self.start..self.end]);
            self.start = self.end;
        }
    }
}

/// A member and the side it is on.
#[derive(Clone, Copy, Debug)]
struct At {
    side: Side,
    index: usize,
    member: Member,
}

impl At {
    fn raw<'a>(&self, bufs: &Bufs<'a>) -> &'a [u8] {
        self.member.value.of(bufs.of(self.side))
    }
}

/// The meaningful members of a record. Per role the first usable value wins, the record's
/// before the envelope's.
#[derive(Default)]
struct Found<'a> {
    /// Each side's trace keys apart (indexed by `Side as usize`), so that ids of two contexts
    /// are never paired (see [`TraceCandidates::of_sides`]).
    trace: [TraceCandidates<'a>; 2],
    /// Indexed by `Side as usize`.
    dd: [Option<At>; 2],
    hash: [Option<At>; 2],
    phase: [Option<At>; 2],
    /// Indexed by `Side as usize`.
    task_definition: [Option<At>; 2],
    has_level: bool,
    has_message: bool,
    has_http: bool,
    has_network: bool,
    has_grpc: bool,
    /// Index of a record member named exactly `duration`.
    duration_key: Option<usize>,
    duration_key_on_envelope: bool,
    // Access-log fields, from the record side only.
    code: Option<envoy::Whole<'a>>,
    method: Option<&'a [u8]>,
    path: Option<&'a [u8]>,
    original_path: Option<&'a [u8]>,
    host: Option<&'a [u8]>,
    version: Option<&'a [u8]>,
    request_id: Option<&'a [u8]>,
    user_agent: Option<&'a [u8]>,
    client_ip: Option<&'a [u8]>,
    remote_ip: Option<&'a [u8]>,
    remote_port: Option<envoy::Whole<'a>>,
    /// A TCP access line's connection id was found.
    connection: bool,
    /// A gRPC status code (0 to 16).
    grpc_status: Option<u8>,
    bytes_read: Option<envoy::Whole<'a>>,
    bytes_written: Option<envoy::Whole<'a>>,
    /// The duration, and the index of the member it came from.
    duration: Option<(envoy::Duration<'a>, usize)>,
    flags: Option<&'a [u8]>,
}

impl<'a> Found<'a> {
    /// Notes what the members of `side` mean: those listed in `scanned` when it has a list
    /// for the side, else every member but `skip`.
    #[inline(always)]
    fn side(
        &mut self,
        side: Side,
        members: Members<'_>,
        scanned: [Option<&[(u32, Meaning)]>; 2],
        bufs: &Bufs<'a>,
        skip: Option<usize>,
        keys: &KeyCache,
    ) {
        let buf = bufs.of(side);
        match scanned[side as usize] {
            Some(list) => {
                for &(i, meaning) in list {
                    let i = i as usize;
                    self.member(side, i, &members.members[i], meaning, buf);
                }
            }
            None => self.scan(side, members, buf, skip, keys),
        }
    }

    fn scan(
        &mut self,
        side: Side,
        members: Members<'_>,
        buf: &'a [u8],
        skip: Option<usize>,
        keys: &KeyCache,
    ) {
        for (index, m) in members.members.iter().enumerate() {
            if Some(index) != skip {
                self.member(side, index, m, keys.meaning(members.keys[index]), buf);
            }
        }
    }

    /// Notes what member `index` of `side` means. Members for which [`scanned`] is false
    /// mean nothing here.
    ///
    /// One dispatch, on the role: the keys whose exact name matters (`dd`, `hash`, `phase`,
    /// `http`, `network`) have no role, and `duration`, the one name with a role, is its own
    /// arm (`keys` tests pin this down).
    #[inline(always)]
    fn member(&mut self, side: Side, index: usize, m: &Member, meaning: Meaning, buf: &'a [u8]) {
        let slot = side as usize;
        let record = side == Side::Record;
        // Built only for the few members that need it.
        let at = || {
            Some(At {
                side,
                index,
                member: *m,
            })
        };
        match meaning.role {
            None => match meaning.name {
                Name::Dd => first(&mut self.dd[slot], at()),
                Name::Hash | Name::Phase => {
                    let values = if meaning.name == Name::Hash {
                        &mut self.hash
                    } else {
                        &mut self.phase
                    };
                    if !is_debris(m, buf) {
                        first(&mut values[slot], at());
                    }
                }
                Name::Http => self.has_http = true,
                Name::Network => self.has_network = true,
                Name::Grpc => self.has_grpc = true,
                _ => {}
            },
            Some(Role::Trace(kind)) => {
                if let Some(text) = scalar_text(m, buf) {
                    self.trace[slot].offer(kind, text);
                }
            }
            Some(Role::Level) => self.has_level = true,
            Some(Role::Message) => self.has_message = true,
            Some(Role::TaskDefinition) => first(&mut self.task_definition[slot], at()),
            Some(Role::Duration) => {
                if meaning.name == Name::Duration {
                    match side {
                        Side::Envelope => self.duration_key_on_envelope = true,
                        Side::Record => self.duration_key = Some(index),
                    }
                }
                if record {
                    let duration = scalar_text(m, buf).and_then(envoy::duration);
                    first(&mut self.duration, duration.map(|d| (d, index)));
                }
            }
            // The access log's fields count on the record side only.
            Some(Role::ResponseCode) if record => {
                let code = scalar_text(m, buf)
                    .and_then(envoy::integer)
                    .filter(|c| c.value < 1000);
                first(&mut self.code, code);
            }
            Some(Role::Method) if record => first(&mut self.method, string_content(m, buf)),
            Some(Role::Path) if record => first(&mut self.path, string_content(m, buf)),
            Some(Role::OriginalPath) if record => {
                first(&mut self.original_path, string_content(m, buf))
            }
            Some(Role::Host) if record => first(&mut self.host, string_content(m, buf)),
            Some(Role::Protocol) if record => first(
                &mut self.version,
                string_content(m, buf).and_then(envoy::http_version),
            ),
            Some(Role::RequestId) if record => first(&mut self.request_id, string_content(m, buf)),
            Some(Role::UserAgent) if record => first(&mut self.user_agent, string_content(m, buf)),
            Some(Role::ForwardedFor) if record => first(
                &mut self.client_ip,
                string_content(m, buf).and_then(envoy::first_forwarded),
            ),
            Some(Role::RemoteAddress) if record => first(
                &mut self.remote_ip,
                string_content(m, buf).and_then(envoy::ip_address),
            ),
            Some(Role::RemotePort) if record => first(
                &mut self.remote_port,
                scalar_text(m, buf).and_then(envoy::integer),
            ),
            Some(Role::ConnectionId) if record => {
                self.connection |= scalar_text(m, buf).is_some_and(|t| !envoy::is_absent(t))
            }
            Some(Role::GrpcStatus) if record => first(
                &mut self.grpc_status,
                scalar_text(m, buf).and_then(text::grpc_status_code),
            ),
            Some(Role::BytesReceived) if record => first(
                &mut self.bytes_read,
                scalar_text(m, buf).and_then(envoy::integer),
            ),
            Some(Role::BytesSent) if record => first(
                &mut self.bytes_written,
                scalar_text(m, buf).and_then(envoy::integer),
            ),
            Some(Role::ResponseFlags) if record => first(&mut self.flags, scalar_text(m, buf)),
            Some(_) => {}
        }
    }
}

/// Whether the writer looks at an envelope member of this meaning itself (besides `log`),
/// rather than copying it.
pub(crate) fn special_on_envelope(meaning: Meaning) -> bool {
    matches!(meaning.name, Name::Dd | Name::Hash | Name::Phase)
}

/// Whether the writer looks at a member of the log of this meaning itself, rather than
/// copying it.
pub(crate) fn special_in_record(meaning: Meaning) -> bool {
    matches!(
        meaning.name,
        Name::Dd | Name::Hash | Name::Phase | Name::Duration
    )
}

/// Whether [`Found::member`] does anything with a member of this meaning.
pub(crate) fn scanned(meaning: Meaning) -> bool {
    meaning.role.is_some()
        || matches!(
            meaning.name,
            Name::Dd
                | Name::Hash
                | Name::Phase
                | Name::Http
                | Name::Network
                | Name::Grpc
                | Name::Duration
        )
}

#[inline]
fn first<T>(slot: &mut Option<T>, value: Option<T>) {
    if slot.is_none() {
        *slot = value;
    }
}

/// The text of a scalar: a string's content (when free of escapes) or a number's token.
fn scalar_text<'a>(m: &Member, buf: &'a [u8]) -> Option<&'a [u8]> {
    match m.kind {
        Kind::String if !m.value_escaped => Some(m.str_content(buf)),
        Kind::Number => Some(m.value.of(buf)),
        _ => None,
    }
}

/// A string's content, escapes kept (to be copied into another JSON string); `None` when
/// not a string or Envoy's "nothing" (`""`, `"-"`).
fn string_content<'a>(m: &Member, buf: &'a [u8]) -> Option<&'a [u8]> {
    let content = (m.kind == Kind::String).then(|| m.str_content(buf))?;
    (!envoy::is_absent(content)).then_some(content)
}

/// Configuration debris: `null`, `""`, `"-"`, or an unexpanded `"${VAR}"`.
fn is_debris(m: &Member, buf: &[u8]) -> bool {
    match m.kind {
        Kind::Null => true,
        Kind::String => is_placeholder(m.str_content(buf)),
        _ => false,
    }
}

/// Whether a configured or logged `hash`/`phase` value is a placeholder: empty, `-`, or an
/// unexpanded `${VAR}` (what Fluent Bit's `modify` filter or a deploy script leaves behind
/// when a variable is unset). Such a value counts as absent and is never written.
///
/// ```
/// assert!(envoy_dd::is_placeholder(b"${GIT_COMMIT_SHA}"));
/// assert!(envoy_dd::is_placeholder(b" - "));
/// assert!(!envoy_dd::is_placeholder(b"4f9c2a1"));
/// ```
pub fn is_placeholder(value: &[u8]) -> bool {
    let s = value.trim_ascii();
    s.is_empty() || s == b"-" || (s.starts_with(b"${") && s.ends_with(b"}"))
}

/// Where `hash` or `phase` goes and which value it gets: the record's own, then the
/// envelope's, then the configured (or derived) one. When both sides have one, the key stays
/// at the envelope's place with the record's value, and the envelope's moves to `_log`.
struct ValuePlan<'f, 'c> {
    /// `Name::Hash` or `Name::Phase`.
    name: Name,
    position: Option<(Side, usize)>,
    winner: Option<&'f At>,
    loser: Option<&'f At>,
    fallback: Option<&'c [u8]>,
}

impl<'f, 'c> ValuePlan<'f, 'c> {
    fn new(name: Name, found: &'f [Option<At>; 2], fallback: Option<&'c [u8]>) -> Self {
        let [record, envelope] =
            [Side::Record, Side::Envelope].map(|side| found[side as usize].as_ref());
        ValuePlan {
            name,
            position: envelope.or(record).map(|a| (a.side, a.index)),
            winner: record.or(envelope),
            loser: record.and(envelope),
            fallback,
        }
    }

    fn write(
        &self,
        w: &mut ObjectWriter,
        out: &mut Vec<u8>,
        bufs: &Bufs<'_>,
        displaced: &mut Vec<Displaced>,
    ) {
        let value = match self.winner {
            Some(at) => at.raw(bufs),
            None => match self.fallback {
                Some(value) => value,
                None => return,
            },
        };
        // A constant key each: copied without a call to `memcpy`.
        match self.name {
            Name::Hash => w.start(out, br#","hash":"#),
            _ => w.start(out, br#","phase":"#),
        }
        out.extend_from_slice(value);
        if let Some(loser) = self.loser {
            if loser.raw(bufs) != value {
                let m = loser.member;
                displaced.push(Displaced {
                    side: loser.side,
                    key: m.key,
                    value: m.value,
                    in_dd: false,
                });
            }
        }
    }
}

/// `phase` from an ECS task definition family such as `api-canary:42`.
fn derived_phase<'c>(found: &Found<'_>, bufs: &Bufs<'_>) -> Option<&'c [u8]> {
    // ECS sets the envelope's; a copy inside the log is only a fallback.
    let [envelope, record] =
        [Side::Envelope, Side::Record].map(|side| found.task_definition[side as usize]);
    let at = envelope.or(record)?;
    let text = string_content(&at.member, bufs.of(at.side))?;
    let family = text.split(|&b| b == b':').next()?;
    if family.ends_with(b"-canary") || family.ends_with(b"_canary") {
        Some(b"\"canary\"")
    } else if family.ends_with(b"-stable") || family.ends_with(b"_stable") {
        Some(b"\"stable\"")
    } else {
        None
    }
}

/// What happens to the `dd` object(s).
struct DdPlan<'s> {
    /// Every `dd` member is an object (or null), so envoy-dd may write `dd`. A `dd` that is
    /// something else belongs to the application, and is left alone.
    managed: bool,
    /// The `dd` member whose place the merged object takes (the envelope's before the log's).
    position: Option<(Side, usize)>,
    at: Option<&'s At>,
    /// Members of the `dd` at `position`, then of the other side's `dd`.
    first: (&'s [Member], Side),
    second: (&'s [Member], Side),
    /// An existing `dd.trace_id` is valid, so it wins over everything.
    existing_valid: bool,
    /// Only the second `dd` has a valid `trace_id`: the ids are that object's.
    ids_in_second: bool,
}

impl<'s> DdPlan<'s> {
    fn new(
        found: &'s Found<'_>,
        bufs: &Bufs<'_>,
        first: &'s mut Vec<Member>,
        second: &'s mut Vec<Member>,
        stack: &mut Vec<u8>,
    ) -> Self {
        first.clear();
        second.clear();
        let [env, rec] =
            [Side::Envelope, Side::Record].map(|side| found.dd[side as usize].as_ref());
        let managed = [env, rec]
            .iter()
            .flatten()
            .all(|a| matches!(a.member.kind, Kind::Object | Kind::Null));
        let (at, other) = match env {
            Some(_) => (env, rec),
            None => (rec, None),
        };
        let mut plan = DdPlan {
            managed,
            position: at.map(|a| (a.side, a.index)),
            at,
            first: (&[], Side::Record),
            second: (&[], Side::Record),
            existing_valid: false,
            ids_in_second: false,
        };
        if !managed {
            return plan;
        }
        let read_members = |at: Option<&At>, into: &mut Vec<Member>, stack: &mut Vec<u8>| {
            let Some(at) = at.filter(|a| a.member.kind == Kind::Object) else {
                return Side::Record;
            };
            let span = at.member.value;
            // Validated already, so this cannot fail; spans are made absolute to the buffer.
            if read::read_object(span.of(bufs.of(at.side)), into, stack).is_ok() {
                for m in into.iter_mut() {
                    for s in [&mut m.key, &mut m.value] {
                        s.start += span.start;
                        s.end += span.start;
                    }
                }
            }
            at.side
        };
        let first_side = read_members(at, first, stack);
        let second_side = read_members(other, second, stack);
        let valid = |members: &[Member], side: Side| {
            members.iter().any(|m| {
                m.key.of(bufs.of(side)) == b"trace_id"
                    && scalar_text(m, bufs.of(side))
                        .and_then(trace::parse_existing_trace_id)
                        .is_some()
            })
        };
        // Most records have no `dd` object: nothing to look through.
        let (first_valid, second_valid) = match first.is_empty() && second.is_empty() {
            true => (false, false),
            false => (valid(first, first_side), valid(second, second_side)),
        };
        plan.existing_valid = first_valid || second_valid;
        plan.ids_in_second = !first_valid && second_valid;
        plan.first = (first, first_side);
        plan.second = (second, second_side);
        plan
    }

    /// The ids of a valid existing `dd.trace_id`, and its object's `span_id` if valid.
    fn existing_ids(&self, bufs: &Bufs<'_>) -> Option<TraceContext> {
        if !self.existing_valid {
            return None;
        }
        let (members, side) = if self.ids_in_second {
            self.second
        } else {
            self.first
        };
        let buf = bufs.of(side);
        let value = |key: &[u8]| {
            let m = members.iter().find(|m| m.key.of(buf) == key)?;
            scalar_text(m, buf)
        };
        Some(TraceContext {
            trace_id: value(b"trace_id").and_then(trace::parse_existing_trace_id)?,
            span_id: value(b"span_id")
                .and_then(trace::decimal_digits)
                .filter(|&s| s != 0),
            source: TraceSource::Existing,
        })
    }

    /// Whether an existing `trace_id`/`span_id` holds something other than a placeholder.
    fn holds_data(&self, bufs: &Bufs<'_>) -> bool {
        [self.first, self.second].iter().any(|&(members, side)| {
            let buf = bufs.of(side);
            members.iter().any(|m| {
                matches!(m.key.of(buf), b"trace_id" | b"span_id") && !is_placeholder_id(m, buf)
            })
        })
    }

    /// Writes `"dd":{...}`: the existing members, with the new ids in place of invalid ones.
    fn write(
        &self,
        w: &mut ObjectWriter,
        out: &mut Vec<u8>,
        bufs: &Bufs<'_>,
        resolved: Option<TraceContext>,
        format: TraceIdFormat,
        displaced: &mut Vec<Displaced>,
    ) {
        if let (Some(at), true, true, None) = (
            self.at,
            self.first.0.is_empty(),
            self.second.0.is_empty(),
            resolved,
        ) {
            // A `dd` that is null or empty, and nothing to put in it: keep it as it was.
            w.raw(out, b"dd", at.raw(bufs));
            return;
        }
        if let (true, true, Some(ctx)) =
            (self.first.0.is_empty(), self.second.0.is_empty(), resolved)
        {
            // No ids of a `dd` object to keep or move (most records): the resolved ones alone,
            // as the general way below writes them.
            w.start(out, br#","dd":{"trace_id":""#);
            ctx.write_trace_id(format, out);
            if ctx.span_id.is_some() {
                out.extend_from_slice(br#"","span_id":""#);
                ctx.write_span_id(out);
            }
            out.extend_from_slice(br#""}"#);
            return;
        }
        w.start(out, br#","dd":{"#);
        let mut dd = ObjectWriter::opened();
        let (mut wrote_trace, mut wrote_span) = (false, false);
        let (first, first_side) = self.first;
        let (second, second_side) = self.second;
        // With valid ids, both come from one `dd`: the first whose `trace_id` is valid.
        let (source, source_side) = match self.ids_in_second {
            true => self.second,
            false => self.first,
        };
        let source_value = |key: &[u8]| {
            let buf = bufs.of(source_side);
            (source.iter().find(|s| s.key.of(buf) == key)).map(|s| s.value.of(buf))
        };
        for (which, (members, side)) in [(first, first_side), (second, second_side)]
            .into_iter()
            .enumerate()
        {
            let buf = bufs.of(side);
            for m in members {
                let key = m.key.of(buf);
                let (is_trace, is_span) = (key == b"trace_id", key == b"span_id");
                if self.existing_valid && (is_trace || is_span) {
                    let from_source = (which == 1) == self.ids_in_second;
                    // A span id of the same trace completes a source that has none.
                    let completes = || {
                        let own_trace = members.iter().find(|o| o.key.of(buf) == b"trace_id");
                        is_span
                            && source_value(b"span_id").is_none()
                            && source_value(b"trace_id") == own_trace.map(|o| o.value.of(buf))
                    };
                    if !from_source && !completes() {
                        // The other ids are kept under `_log.dd`: invalid ones that the
                        // source replaces (placeholders are dropped), and different ones.
                        let keep = match self.ids_in_second {
                            true => !is_placeholder_id(m, buf),
                            false => source_value(key) != Some(m.value.of(buf)),
                        };
                        if keep {
                            displaced.push(Displaced::in_dd(side, m));
                        }
                        continue;
                    }
                    write_existing_id(&mut dd, out, key, m, buf);
                    continue;
                }
                if side == second_side && !second.is_empty() && members.as_ptr() == second.as_ptr()
                {
                    // Merging the log's `dd` into the envelope's: the envelope keeps its keys.
                    if let Some(theirs) =
                        first.iter().find(|f| f.key.of(bufs.of(first_side)) == key)
                    {
                        if theirs.value.of(bufs.of(first_side)) != m.value.of(buf) {
                            displaced.push(Displaced::in_dd(side, m));
                        }
                        continue;
                    }
                }
                if let (Some(ctx), true) = (resolved, is_trace || is_span) {
                    // Replace the invalid ids, once each (a `dd` that repeats a key gets it
                    // once); keep anything that was more than a placeholder.
                    if is_trace && !wrote_trace {
                        write_trace_id(&mut dd, out, &ctx, format);
                        wrote_trace = true;
                    } else if is_span && !wrote_span && ctx.span_id.is_some() {
                        write_span_id(&mut dd, out, &ctx);
                        wrote_span = true;
                    }
                    if !is_placeholder_id(m, buf) {
                        displaced.push(Displaced::in_dd(side, m));
                    }
                    continue;
                }
                match is_trace || is_span {
                    true => write_existing_id(&mut dd, out, key, m, buf),
                    false => dd.raw(out, key, m.value.of(buf)),
                }
            }
        }
        if let Some(ctx) = resolved {
            if !wrote_trace {
                write_trace_id(&mut dd, out, &ctx, format);
            }
            if !wrote_span && ctx.span_id.is_some() {
                write_span_id(&mut dd, out, &ctx);
            }
        }
        dd.close(out);
    }
}

/// The trace context that the request-id join has for `request_id`.
#[inline]
fn join_context(ids: &RequestIds, request_id: Option<&[u8]>) -> Option<TraceContext> {
    let (trace_id, span_id) = ids.get(request_id?)?;
    Some(TraceContext {
        trace_id,
        span_id,
        source: TraceSource::RequestId,
    })
}

/// Remembers for the request-id join the trace context a record has of its own (not one the
/// join gave it).
#[inline]
fn remember(ids: &mut RequestIds, request_id: &[u8], own: Option<TraceContext>) {
    if let Some(ctx) = own.filter(|c| c.source != TraceSource::RequestId) {
        ids.remember(request_id, ctx.trace_id, ctx.span_id);
    }
}

/// Writes an existing `trace_id` or `span_id`; a valid id given as a JSON number becomes a
/// string.
fn write_existing_id(dd: &mut ObjectWriter, out: &mut Vec<u8>, key: &[u8], m: &Member, buf: &[u8]) {
    let value = m.value.of(buf);
    match m.kind == Kind::Number && trace::parse_decimal_id(value).is_some() {
        true => dd.str(out, key, value),
        false => dd.raw(out, key, value),
    }
}

/// Ids that carry no information: replacing them loses nothing.
fn is_placeholder_id(m: &Member, buf: &[u8]) -> bool {
    match m.kind {
        Kind::Null => true,
        Kind::String => matches!(m.str_content(buf), b"" | b"-" | b"0"),
        Kind::Number => m.value.of(buf) == b"0",
        _ => false,
    }
}

fn write_trace_id(
    dd: &mut ObjectWriter,
    out: &mut Vec<u8>,
    ctx: &TraceContext,
    format: TraceIdFormat,
) {
    dd.start(out, br#","trace_id":""#);
    ctx.write_trace_id(format, out);
    out.push(b'"');
}

fn write_span_id(dd: &mut ObjectWriter, out: &mut Vec<u8>, ctx: &TraceContext) {
    dd.start(out, br#","span_id":""#);
    ctx.write_span_id(out);
    out.push(b'"');
}

/// The access-log attributes to add, decided before writing.
#[derive(Default)]
struct Access<'a> {
    attributes: Option<Attributes<'a>>,
    /// The record member `duration` whose key the nanosecond attribute takes.
    duration_in_place: Option<usize>,
}

struct Attributes<'a> {
    /// The response code; none on a TCP access line, which gets no `http`, `status` or
    /// `message`.
    code: Option<envoy::Whole<'a>>,
    http: bool,
    network: bool,
    /// Add `grpc.status.code`.
    grpc: bool,
    /// Add `duration` at the end (no member of that name exists).
    duration: bool,
    status: bool,
    message: bool,
}

impl<'a> Access<'a> {
    fn plan(config: &Config, found: &Found<'a>, can_displace: bool) -> Self {
        let tcp = found.connection && (found.remote_ip.is_some() || found.bytes_read.is_some());
        let code = found.code;
        if code.is_none() && !tcp {
            return Access::default();
        }
        let standard = config.standard_attributes;
        let mut duration_in_place = None;
        let mut duration = false;
        if let (true, Some((_, source))) = (standard, found.duration) {
            match found.duration_key {
                Some(key) if key == source && can_displace && !found.duration_key_on_envelope => {
                    duration_in_place = Some(key)
                }
                Some(_) => {}
                None => duration = !found.duration_key_on_envelope,
            }
        }
        let network = found.client_ip.or(found.remote_ip).is_some()
            || found.remote_port.is_some()
            || found.bytes_read.is_some()
            || found.bytes_written.is_some();
        let http = code.is_some();
        Access {
            attributes: Some(Attributes {
                code,
                http: http && standard && !found.has_http,
                network: standard && !found.has_network && network,
                grpc: standard && !found.has_grpc && found.grpc_status.is_some(),
                duration,
                status: http && config.status && !found.has_level,
                message: http && config.message && !found.has_message,
            }),
            duration_in_place,
        }
    }
}

impl Attributes<'_> {
    fn write(&self, w: &mut ObjectWriter, out: &mut Vec<u8>, found: &Found<'_>) {
        let path = found.original_path.or(found.path);
        // Each member starts with one constant (`,"key":`, `,"key":"`, or more): the added
        // members follow the record's own, and `status_code` always comes first in `http`.
        let code = self.code.unwrap_or(envoy::Whole::ZERO);
        if self.http {
            w.start(out, br#","http":{"status_code":"#);
            code.write(out);
            if let Some(method) = found.method {
                str_member(out, br#","method":""#, method);
            }
            if path.is_some() || found.host.is_some() {
                out.extend_from_slice(br#","url_details":{"#);
                if let Some(path) = path {
                    let (path, query) = match text::position(path, b'?') {
                        Some(q) => (&path[..q], Some(&path[q + 1..])),
                        None => (path, None),
                    };
                    str_member(out, br#""path":""#, path);
                    if let Some(query) = query.filter(|q| !q.is_empty()) {
                        out.extend_from_slice(br#","queryString":"#);
                        write_query(out, query);
                    }
                }
                if let Some(host) = found.host {
                    let key: &[u8] = match path {
                        Some(_) => br#","host":""#,
                        None => br#""host":""#,
                    };
                    str_member(out, key, host);
                }
                out.push(b'}');
            }
            if let Some(version) = found.version {
                str_member(out, br#","version":""#, version);
            }
            if let Some(id) = found.request_id {
                str_member(out, br#","request_id":""#, id);
            }
            if let Some(agent) = found.user_agent {
                str_member(out, br#","useragent":""#, agent);
            }
            out.push(b'}');
        }
        if self.network {
            w.start(out, br#","network":{"#);
            let mut network = ObjectWriter::opened();
            match (found.client_ip.or(found.remote_ip), found.remote_port) {
                (Some(ip), None) => {
                    network.start(out, br#","client":{"ip":""#);
                    out.extend_from_slice(ip);
                    out.extend_from_slice(br#""}"#);
                }
                (Some(ip), Some(port)) => {
                    network.start(out, br#","client":{"ip":""#);
                    out.extend_from_slice(ip);
                    out.extend_from_slice(br#"","port":"#);
                    port.write(out);
                    out.push(b'}');
                }
                (None, Some(port)) => {
                    network.start(out, br#","client":{"port":"#);
                    port.write(out);
                    out.push(b'}');
                }
                (None, None) => {}
            }
            if let Some(n) = found.bytes_read {
                network.start(out, br#","bytes_read":"#);
                n.write(out);
            }
            if let Some(n) = found.bytes_written {
                network.start(out, br#","bytes_written":"#);
                n.write(out);
            }
            network.close(out);
        }
        if let (true, Some(status)) = (self.grpc, found.grpc_status) {
            // The tag Datadog's tracers give a gRPC span (`grpc.status.code`), by number.
            w.start(out, br#","grpc":{"status":{"code":"#);
            crate::write::integer(out, u64::from(status));
            out.extend_from_slice(b"}}");
        }
        if let (true, Some((duration, _))) = (self.duration, found.duration) {
            w.start(out, br#","duration":"#);
            duration.write_nanos(out);
        }
        if self.status {
            let flags = found.flags.unwrap_or_default();
            let level = envoy::level(code.value, flags);
            let level = match found.grpc_status {
                Some(status) => level.worst(envoy::grpc_level(status)),
                None => level,
            };
            match level {
                envoy::Level::Error => w.start(out, br#","status":"error""#),
                envoy::Level::Warn => w.start(out, br#","status":"warn""#),
                envoy::Level::Info => w.start(out, br#","status":"info""#),
            }
        }
        if self.message {
            // `GET /users/42 200 12ms UH`: what a person scanning the log wants to see. Its
            // words are escaped string content already.
            w.start(out, br#","message":""#);
            if let Some(method) = found.method {
                out.extend_from_slice(method);
                out.push(b' ');
            }
            if let Some(path) = path {
                // A short line: a huge path is cut (it is kept whole in its own field).
                let cut = escaped_prefix(path, MESSAGE_PATH_MAX);
                out.extend_from_slice(cut);
                if cut.len() < path.len() {
                    out.extend_from_slice("…".as_bytes());
                }
                out.push(b' ');
            }
            code.write(out);
            if let Some((duration, _)) = found.duration {
                out.push(b' ');
                duration.write_millis(out);
                out.extend_from_slice(b"ms");
            }
            if let Some(flags) = found.flags.filter(|f| !envoy::is_absent(f)) {
                out.push(b' ');
                out.extend_from_slice(flags);
            }
            out.push(b'"');
        }
    }
}

/// Appends `key` (the member's start up to its value's opening quote, `,"key":"`), the escaped
/// string content `value`, and the closing quote.
#[inline(always)]
fn str_member(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    out.push(b'"');
}

/// The longest a path may be in the `message` line, in bytes.
const MESSAGE_PATH_MAX: usize = 200;

/// The longest prefix of escaped JSON string content `s`, at most `max` bytes, that ends
/// between two characters (never inside an escape sequence or a UTF-8 sequence).
fn escaped_prefix(s: &[u8], max: usize) -> &[u8] {
    if s.len() <= max {
        return s;
    }
    let mut end = 0;
    while end < s.len() {
        let unit = match s[end] {
            b'\\' if s.get(end + 1) == Some(&b'u') => {
                // A surrogate pair is two `\uXXXX` escapes that belong together.
                let high = s.get(end + 2..end + 6).is_some_and(|h| {
                    matches!(h[0] | 0x20, b'd') && matches!(h[1] | 0x20, b'8' | b'9' | b'a' | b'b')
                });
                if high {
                    12
                } else {
                    6
                }
            }
            b'\\' => 2,
            0xf0.. => 4,
            0xe0.. => 3,
            0xc0.. => 2,
            _ => 1,
        };
        if end + unit > max {
            break;
        }
        end += unit;
    }
    &s[..end.min(s.len())]
}

/// `a=1&b=&c` → `{"a":"1","b":"","c":""}`. Values stay as Envoy logged them (still
/// percent-encoded); a repeated name keeps its first value (the full path is kept anyway).
/// `query` is escaped JSON string content, and `&`, `=` never occur inside an escape, so
/// every piece is valid string content too.
fn write_query(out: &mut Vec<u8>, query: &[u8]) {
    const MAX_PARAMS: usize = 64;
    let mut params = ObjectWriter::open(out);
    // The names written, as where they are in `query` (half the size of slices, and so half
    // the zeros to start with).
    let mut seen = [(0u32, 0u32); MAX_PARAMS];
    let mut count = 0;
    let mut start = 0;
    for pair in query.split(|&b| b == b'&') {
        let pair_start = start;
        start += pair.len() + 1;
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        let name_of = |&(at, len): &(u32, u32)| &query[at as usize..(at + len) as usize];
        if name.is_empty() || seen[..count].iter().any(|seen| name_of(seen) == name) {
            continue;
        }
        if count == MAX_PARAMS {
            break;
        }
        seen[count] = (pair_start as u32, name.len() as u32);
        count += 1;
        params.str(out, name, value);
    }
    params.close(out);
}

fn write_displaced(
    w: &mut ObjectWriter,
    out: &mut Vec<u8>,
    bufs: &Bufs<'_>,
    displaced: &[Displaced],
) {
    if displaced.is_empty() {
        return;
    }
    w.start(out, br#","_log":{"#);
    let mut log = ObjectWriter::opened();
    for d in displaced.iter().filter(|d| !d.in_dd) {
        log.raw(out, d.key.of(bufs.of(d.side)), d.value.of(bufs.of(d.side)));
    }
    if displaced.iter().any(|d| d.in_dd) {
        log.start(out, br#","dd":{"#);
        let mut dd = ObjectWriter::opened();
        let key = |d: &Displaced| d.key.of(bufs.of(d.side));
        let value = |d: &Displaced| d.value.of(bufs.of(d.side));
        for (i, d) in displaced.iter().enumerate().filter(|(_, d)| d.in_dd) {
            if displaced[..i].iter().any(|e| e.in_dd && key(e) == key(d)) {
                continue;
            }
            // Both `dd` objects may have held an invalid id that was replaced: one key, and
            // an array of the values, so neither is lost.
            let mut same = displaced[i + 1..]
                .iter()
                .filter(|e| e.in_dd && key(e) == key(d))
                .peekable();
            if same.peek().is_none() {
                dd.raw(out, key(d), value(d));
                continue;
            }
            dd.key(out, key(d));
            out.push(b'[');
            out.extend_from_slice(value(d));
            for e in same {
                out.push(b',');
                out.extend_from_slice(value(e));
            }
            out.push(b']');
        }
        dd.close(out);
    }
    log.close(out);
}

#[cfg(test)]
mod tests {
    use super::escaped_prefix;

    #[test]
    fn prefixes_end_between_characters() {
        let cases: [(&str, usize, &str); 7] = [
            ("/short", 200, "/short"),
            ("/abcdef", 4, "/abc"),
            (r"/a\u00e9b", 4, "/a"),
            (r"/a\u00e9b", 8, r"/a\u00e9"),
            (r"/\ud83d\ude00x", 10, "/"),
            (r#"/a\"b"#, 3, "/a"),
            ("/aéb", 3, "/a"),
        ];
        for (s, max, want) in cases {
            assert_eq!(
                escaped_prefix(s.as_bytes(), max),
                want.as_bytes(),
                "{s} {max}"
            );
        }
    }
}
