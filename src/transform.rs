//! The hot path: one record in, one Datadog-correlated record out.
//!
//! A record is read once ([`crate::read`]), its keys are given meanings ([`crate::envoy`]),
//! the trace context is resolved ([`crate::trace`]), and the output is written in one pass from
//! spans of the input. All working memory lives in [`Transformer`] and is reused, so a warm
//! transformer does not allocate.

use core::fmt;

use crate::envoy::{self, Role};
use crate::read::{self, Kind, Member, ReadError, Span};
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
    pub fn reason(&self) -> &'static str {
        match self {
            Error::InvalidUtf8 { .. } => "invalid_utf8",
            Error::Json(_) => "invalid_json",
            Error::DuplicateKey { .. } => "duplicate_key",
        }
    }
}

/// Which input shape a record had (SPEC §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A FireLens record whose `log` held a JSON object, now merged into the record.
    LogJson,
    /// A FireLens record whose `log` was kept as it is, and why.
    LogKept(LogKept),
    /// A record without a `log` string: a bare or already flattened Envoy object.
    Bare,
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
    scratch: Scratch,
}

/// Working memory, reused across records.
#[derive(Default)]
struct Scratch {
    envelope: Vec<Member>,
    record: Vec<Member>,
    stack: Vec<u8>,
    log_text: Vec<u8>,
    keys: KeyIndex,
    dd_first: Vec<Member>,
    dd_second: Vec<Member>,
    displaced: Vec<Displaced>,
    text: Vec<u8>,
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

impl Transformer {
    /// A transformer with the given config.
    pub fn new(config: Config) -> Self {
        let encode = |value: &Option<String>| {
            let value = value.as_deref().filter(|v| !is_debris_str(v.as_bytes()))?;
            let mut json = Vec::new();
            write::string(&mut json, value);
            Some(json)
        };
        Transformer { hash_json: encode(&config.hash), phase_json: encode(&config.phase), config, scratch: Scratch::default() }
    }

    /// The config this transformer was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Appends the transformed record to `out`; on any error appends `input` unchanged
    /// instead. Never fails, never panics, never writes nothing.
    pub fn transform(&mut self, input: &[u8], out: &mut Vec<u8>) -> Outcome {
        match self.try_transform(input, out) {
            Ok(done) => Outcome::Enriched(done),
            Err(error) => {
                out.extend_from_slice(input);
                Outcome::PassedThrough(error)
            }
        }
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
        if let Err(e) = core::str::from_utf8(input) {
            return Err(Error::InvalidUtf8 { valid_up_to: e.valid_up_to() });
        }
        let start = out.len();
        let result = self.rewrite(input, out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn rewrite(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Enriched, Error> {
        let s = &mut self.scratch;
        s.envelope.clear();
        s.record.clear();
        s.log_text.clear();
        s.displaced.clear();
        read::read_object(input, &mut s.envelope, &mut s.stack).map_err(Error::Json)?;

        // A `log` string holding a JSON object is merged into the record (shapes A, D);
        // other `log` strings stay as they are (B, E); without one the record is bare (C, F).
        let log_at = s.envelope.iter().position(|m| m.kind == Kind::String && m.key.of(input) == b"log");
        let mut shape = Shape::Bare;
        let mut log: &[u8] = &[];
        if let Some(at) = log_at {
            let member = s.envelope[at];
            let content = member.str_content(input);
            log = if member.value_escaped {
                read::unescape_into(content, &mut s.log_text);
                &s.log_text
            } else {
                content
            };
            shape = if log.trim_ascii_start().first() != Some(&b'{') {
                Shape::LogKept(LogKept::NotJson)
            } else if read::read_object(log, &mut s.record, &mut s.stack).is_err() {
                Shape::LogKept(LogKept::InvalidJson)
            } else {
                Shape::LogJson
            };
        }

        // Index the keys: the envelope's must be unique, and so must the log's among
        // themselves; log keys the envelope also has are displaced to `_log` (or dropped when
        // the values are identical, as after a Fluent Bit parser with `Preserve_Key`).
        let envelope = &s.envelope[..];
        let record = &s.record[..];
        let key_of = |id: u32| key_ref(id, input, envelope, log, record);
        s.keys.reset(envelope.len() + record.len());
        for (i, m) in envelope.iter().enumerate() {
            if s.keys.insert(i as u32, key_of) {
                return Err(Error::DuplicateKey { offset: m.key.start as usize });
            }
        }
        let uses_log_key = |members: &[Member], buf: &[u8]| members.iter().any(|m| m.key.of(buf) == b"_log");
        let mut collisions = false;
        if shape == Shape::LogJson {
            let base = envelope.len() as u32;
            for i in 0..record.len() as u32 {
                if s.keys.insert(base + i, key_of) {
                    match s.keys.find_other(base + i, key_of) {
                        Some(other) if other < base => collisions = true,
                        _ => {
                            shape = Shape::LogKept(LogKept::DuplicateKey);
                            break;
                        }
                    }
                }
            }
            if shape == Shape::LogJson && collisions && (uses_log_key(envelope, input) || uses_log_key(record, log)) {
                shape = Shape::LogKept(LogKept::KeyConflict);
            }
        }

        // With a merged log, the top level is the envelope and the log is the record;
        // otherwise the top level is the record and there is no envelope.
        let merged = shape == Shape::LogJson;
        let (env_members, rec_members, bufs) = if merged {
            (envelope, record, Bufs { env: input, rec: log })
        } else {
            (&[][..], envelope, Bufs { env: &[], rec: input })
        };
        let skip_env = if merged { log_at } else { None };
        let can_displace = !uses_log_key(env_members, bufs.env) && !uses_log_key(rec_members, bufs.rec);

        let mut found = Found::default();
        found.scan(Side::Record, rec_members, bufs.rec, None);
        found.scan(Side::Envelope, env_members, bufs.env, skip_env);

        let config = &self.config;
        let access = Access::plan(config, &found, can_displace);
        let dd = DdPlan::new(&found, &bufs, &mut s.dd_first, &mut s.dd_second, &mut s.stack);
        let resolved = if dd.existing_valid || !dd.managed { None } else { found.trace.resolve() };
        let trace_source = if dd.existing_valid { Some(TraceSource::Existing) } else { resolved.map(|c| c.source) };
        let hash = ValuePlan::new(b"hash", &found.hash, self.hash_json.as_deref());
        let derived = if config.derive_phase { derived_phase(&found, &bufs) } else { None };
        let phase = ValuePlan::new(b"phase", &found.phase, self.phase_json.as_deref().or(derived));

        // Existing members, envelope first, each in its order.
        let mut w = ObjectWriter::open(out);
        for (side, members) in [(Side::Envelope, env_members), (Side::Record, rec_members)] {
            let buf = bufs.of(side);
            for (i, m) in members.iter().enumerate() {
                if side == Side::Envelope && Some(i) == skip_env {
                    continue;
                }
                let here = Some((side, i));
                let key = m.key.of(buf);
                if key == b"dd" && dd.managed {
                    if here == dd.position {
                        dd.write(&mut w, out, &bufs, resolved, config.trace_id_128, &mut s.displaced);
                    }
                    continue;
                }
                if key == b"hash" || key == b"phase" {
                    // Debris is dropped; of two real values the winner takes the first place.
                    let plan = if key == b"hash" { &hash } else { &phase };
                    if here == plan.position {
                        plan.write(&mut w, out, &bufs, &mut s.displaced);
                    }
                    continue;
                }
                if side == Side::Record && access.duration_in_place == Some(i) {
                    w.uint(out, b"duration", found.duration.map_or(0, |(ns, _)| ns));
                    s.displaced.push(Displaced { side, key: m.key, value: m.value, in_dd: false });
                    continue;
                }
                if side == Side::Record && collisions {
                    let id = env_members.len() as u32 + i as u32;
                    if let Some(other) = s.keys.find_other(id, key_of) {
                        if env_members[other as usize].value.of(bufs.env) != m.value.of(buf) {
                            s.displaced.push(Displaced { side, key: m.key, value: m.value, in_dd: false });
                        }
                        continue;
                    }
                }
                w.raw(out, key, m.value.of(buf));
            }
        }

        // Added members.
        if dd.managed && dd.position.is_none() && resolved.is_some() {
            dd.write(&mut w, out, &bufs, resolved, config.trace_id_128, &mut s.displaced);
        }
        for plan in [&hash, &phase] {
            if plan.position.is_none() {
                plan.write(&mut w, out, &bufs, &mut s.displaced);
            }
        }
        if let Some(access) = &access.attributes {
            access.write(&mut w, out, &found, &mut s.text);
        }
        write_displaced(&mut w, out, &bufs, &s.displaced);
        w.close(out);
        Ok(Enriched { shape, access_log: access.attributes.is_some(), trace: trace_source })
    }
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
    trace: TraceCandidates<'a>,
    /// Indexed by `Side as usize`.
    dd: [Option<At>; 2],
    hash: [Option<At>; 2],
    phase: [Option<At>; 2],
    task_definition: Option<At>,
    has_level: bool,
    has_message: bool,
    has_http: bool,
    has_network: bool,
    /// Index of a record member named exactly `duration`.
    duration_key: Option<usize>,
    duration_key_on_envelope: bool,
    // Access-log fields, from the record side only.
    code: Option<u64>,
    method: Option<&'a [u8]>,
    path: Option<&'a [u8]>,
    original_path: Option<&'a [u8]>,
    host: Option<&'a [u8]>,
    version: Option<&'a [u8]>,
    request_id: Option<&'a [u8]>,
    user_agent: Option<&'a [u8]>,
    client_ip: Option<&'a [u8]>,
    remote_ip: Option<&'a [u8]>,
    bytes_read: Option<u64>,
    bytes_written: Option<u64>,
    /// Nanoseconds, and the index of the member it came from.
    duration: Option<(u64, usize)>,
    flags: Option<&'a [u8]>,
}

impl<'a> Found<'a> {
    fn scan(&mut self, side: Side, members: &[Member], buf: &'a [u8], skip: Option<usize>) {
        let slot = side as usize;
        let mut norm = [0u8; 32];
        for (index, m) in members.iter().enumerate() {
            if Some(index) == skip {
                continue;
            }
            let key = m.key.of(buf);
            let at = Some(At { side, index, member: *m });
            match key {
                b"dd" => first(&mut self.dd[slot], at),
                b"hash" | b"phase" => {
                    let values = if key == b"hash" { &mut self.hash } else { &mut self.phase };
                    if !is_debris(m, buf) {
                        first(&mut values[slot], at);
                    }
                    continue;
                }
                b"http" => self.has_http = true,
                b"network" => self.has_network = true,
                b"duration" if side == Side::Envelope => self.duration_key_on_envelope = true,
                b"duration" => self.duration_key = Some(index),
                _ => {}
            }
            let Some(normalized) = trace::normalize_key(key, &mut norm) else { continue };
            let Some(role) = envoy::role(normalized) else { continue };
            match role {
                Role::Trace(kind) => {
                    if let Some(text) = scalar_text(m, buf) {
                        self.trace.offer(kind, text);
                    }
                }
                Role::Level => self.has_level = true,
                Role::Message => self.has_message = true,
                Role::TaskDefinition => first(&mut self.task_definition, at),
                _ if side == Side::Envelope => {}
                Role::ResponseCode => {
                    let code = scalar_text(m, buf).and_then(envoy::integer).filter(|&c| c < 1000);
                    first(&mut self.code, code);
                }
                Role::Method => first(&mut self.method, string_content(m, buf)),
                Role::Path => first(&mut self.path, string_content(m, buf)),
                Role::OriginalPath => first(&mut self.original_path, string_content(m, buf)),
                Role::Host => first(&mut self.host, string_content(m, buf)),
                Role::Protocol => first(&mut self.version, string_content(m, buf).and_then(envoy::http_version)),
                Role::RequestId => first(&mut self.request_id, string_content(m, buf)),
                Role::UserAgent => first(&mut self.user_agent, string_content(m, buf)),
                Role::ForwardedFor => {
                    first(&mut self.client_ip, string_content(m, buf).and_then(envoy::first_forwarded))
                }
                Role::RemoteAddress => first(&mut self.remote_ip, string_content(m, buf).and_then(envoy::strip_port)),
                Role::BytesReceived => first(&mut self.bytes_read, scalar_text(m, buf).and_then(envoy::integer)),
                Role::BytesSent => first(&mut self.bytes_written, scalar_text(m, buf).and_then(envoy::integer)),
                Role::Duration => {
                    let nanos = scalar_text(m, buf).and_then(envoy::millis_to_nanos);
                    first(&mut self.duration, nanos.map(|ns| (ns, index)));
                }
                Role::ResponseFlags => first(&mut self.flags, scalar_text(m, buf)),
            }
        }
    }
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
        Kind::String => is_debris_str(m.str_content(buf)),
        _ => false,
    }
}

fn is_debris_str(s: &[u8]) -> bool {
    let s = s.trim_ascii();
    s.is_empty() || s == b"-" || (s.starts_with(b"${") && s.ends_with(b"}"))
}

/// Where `hash` or `phase` goes and which value it gets: the record's own, then the
/// envelope's, then the configured (or derived) one. When both sides have one, the key stays
/// at the envelope's place with the record's value, and the envelope's moves to `_log`.
struct ValuePlan<'c> {
    key: &'static [u8],
    position: Option<(Side, usize)>,
    winner: Option<At>,
    loser: Option<At>,
    fallback: Option<&'c [u8]>,
}

impl<'c> ValuePlan<'c> {
    fn new(key: &'static [u8], found: &[Option<At>; 2], fallback: Option<&'c [u8]>) -> Self {
        let (record, envelope) = (found[Side::Record as usize], found[Side::Envelope as usize]);
        ValuePlan {
            key,
            position: envelope.or(record).map(|a| (a.side, a.index)),
            winner: record.or(envelope),
            loser: record.and(envelope),
            fallback,
        }
    }

    fn write(&self, w: &mut ObjectWriter, out: &mut Vec<u8>, bufs: &Bufs<'_>, displaced: &mut Vec<Displaced>) {
        let value = match self.winner {
            Some(at) => at.raw(bufs),
            None => match self.fallback {
                Some(value) => value,
                None => return,
            },
        };
        w.raw(out, self.key, value);
        if let Some(loser) = self.loser {
            if loser.raw(bufs) != value {
                let m = loser.member;
                displaced.push(Displaced { side: loser.side, key: m.key, value: m.value, in_dd: false });
            }
        }
    }
}

/// `phase` from an ECS task definition family such as `api-canary:42`.
fn derived_phase<'c>(found: &Found<'_>, bufs: &Bufs<'_>) -> Option<&'c [u8]> {
    let at = found.task_definition?;
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
    at: Option<At>,
    /// Members of the `dd` at `position`, then of the other side's `dd`.
    first: (&'s [Member], Side),
    second: (&'s [Member], Side),
    /// An existing `dd.trace_id` is valid, so it wins over everything.
    existing_valid: bool,
}

impl<'s> DdPlan<'s> {
    fn new(
        found: &Found<'_>,
        bufs: &Bufs<'_>,
        first: &'s mut Vec<Member>,
        second: &'s mut Vec<Member>,
        stack: &mut Vec<u8>,
    ) -> Self {
        first.clear();
        second.clear();
        let [env, rec] = [found.dd[Side::Envelope as usize], found.dd[Side::Record as usize]];
        let managed = [env, rec].iter().flatten().all(|a| matches!(a.member.kind, Kind::Object | Kind::Null));
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
        };
        if !managed {
            return plan;
        }
        let read_members = |at: Option<At>, into: &mut Vec<Member>, stack: &mut Vec<u8>| {
            let Some(at) = at.filter(|a| a.member.kind == Kind::Object) else { return Side::Record };
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
                    && scalar_text(m, bufs.of(side)).and_then(trace::parse_existing_trace_id).is_some()
            })
        };
        plan.existing_valid = valid(first, first_side) || valid(second, second_side);
        plan.first = (first, first_side);
        plan.second = (second, second_side);
        plan
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
        if let (Some(at), true, true, None) = (self.at, self.first.0.is_empty(), self.second.0.is_empty(), resolved) {
            // A `dd` that is null or empty, and nothing to put in it: keep it as it was.
            w.raw(out, b"dd", at.raw(bufs));
            return;
        }
        w.key(out, b"dd");
        let mut dd = ObjectWriter::open(out);
        let (mut wrote_trace, mut wrote_span) = (false, false);
        let (first, first_side) = self.first;
        let (second, second_side) = self.second;
        for (members, side) in [(first, first_side), (second, second_side)] {
            let buf = bufs.of(side);
            for m in members {
                let key = m.key.of(buf);
                if side == second_side && !second.is_empty() && members.as_ptr() == second.as_ptr() {
                    // Merging the log's `dd` into the envelope's: the envelope keeps its keys.
                    if let Some(theirs) = first.iter().find(|f| f.key.of(bufs.of(first_side)) == key) {
                        if theirs.value.of(bufs.of(first_side)) != m.value.of(buf) {
                            displaced.push(Displaced { side, key: m.key, value: m.value, in_dd: true });
                        }
                        continue;
                    }
                }
                let is_trace = key == b"trace_id";
                let is_span = key == b"span_id";
                if let (Some(ctx), true) = (resolved, is_trace || is_span) {
                    // Replace the invalid ids; keep anything that was more than a placeholder.
                    if is_trace {
                        write_trace_id(&mut dd, out, &ctx, format);
                        wrote_trace = true;
                    } else if ctx.span_id.is_some() {
                        write_span_id(&mut dd, out, &ctx);
                        wrote_span = true;
                    }
                    if !is_placeholder_id(m, buf) {
                        displaced.push(Displaced { side, key: m.key, value: m.value, in_dd: true });
                    }
                    continue;
                }
                // A valid id given as a JSON number becomes a string.
                if (is_trace || is_span) && m.kind == Kind::Number && trace::parse_decimal_id(m.value.of(buf)).is_some() {
                    dd.str(out, key, m.value.of(buf));
                } else {
                    dd.raw(out, key, m.value.of(buf));
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

/// Ids that carry no information: replacing them loses nothing.
fn is_placeholder_id(m: &Member, buf: &[u8]) -> bool {
    match m.kind {
        Kind::Null => true,
        Kind::String => matches!(m.str_content(buf), b"" | b"-" | b"0"),
        Kind::Number => m.value.of(buf) == b"0",
        _ => false,
    }
}

fn write_trace_id(dd: &mut ObjectWriter, out: &mut Vec<u8>, ctx: &TraceContext, format: TraceIdFormat) {
    dd.key(out, b"trace_id");
    out.push(b'"');
    ctx.write_trace_id(format, out);
    out.push(b'"');
}

fn write_span_id(dd: &mut ObjectWriter, out: &mut Vec<u8>, ctx: &TraceContext) {
    dd.key(out, b"span_id");
    out.push(b'"');
    ctx.write_span_id(out);
    out.push(b'"');
}

/// The access-log attributes to add, decided before writing.
#[derive(Default)]
struct Access {
    attributes: Option<Attributes>,
    /// The record member `duration` whose key the nanosecond attribute takes.
    duration_in_place: Option<usize>,
}

struct Attributes {
    code: u64,
    http: bool,
    network: bool,
    /// Add `duration` at the end (no member of that name exists).
    duration: bool,
    status: bool,
    message: bool,
}

impl Access {
    fn plan(config: &Config, found: &Found<'_>, can_displace: bool) -> Self {
        let Some(code) = found.code else { return Access::default() };
        let standard = config.standard_attributes;
        let mut duration_in_place = None;
        let mut duration = false;
        if let (true, Some((_, source))) = (standard, found.duration) {
            match found.duration_key {
                Some(key) if key == source && can_displace => duration_in_place = Some(key),
                Some(_) => {}
                None => duration = !found.duration_key_on_envelope,
            }
        }
        let network = found.client_ip.or(found.remote_ip).is_some()
            || found.bytes_read.is_some()
            || found.bytes_written.is_some();
        Access {
            attributes: Some(Attributes {
                code,
                http: standard && !found.has_http,
                network: standard && !found.has_network && network,
                duration,
                status: config.status && !found.has_level,
                message: config.message && !found.has_message,
            }),
            duration_in_place,
        }
    }
}

impl Attributes {
    fn write(&self, w: &mut ObjectWriter, out: &mut Vec<u8>, found: &Found<'_>, text: &mut Vec<u8>) {
        let path = found.original_path.or(found.path);
        if self.http {
            w.key(out, b"http");
            let mut http = ObjectWriter::open(out);
            http.uint(out, b"status_code", self.code);
            if let Some(method) = found.method {
                http.str(out, b"method", method);
            }
            if path.is_some() || found.host.is_some() {
                http.key(out, b"url_details");
                let mut url = ObjectWriter::open(out);
                if let Some(path) = path {
                    let (path, query) = match path.iter().position(|&b| b == b'?') {
                        Some(q) => (&path[..q], Some(&path[q + 1..])),
                        None => (path, None),
                    };
                    url.str(out, b"path", path);
                    if let Some(query) = query.filter(|q| !q.is_empty()) {
                        url.key(out, b"queryString");
                        write_query(out, query);
                    }
                }
                if let Some(host) = found.host {
                    url.str(out, b"host", host);
                }
                url.close(out);
            }
            if let Some(version) = found.version {
                http.str(out, b"version", version);
            }
            if let Some(id) = found.request_id {
                http.str(out, b"request_id", id);
            }
            if let Some(agent) = found.user_agent {
                http.str(out, b"useragent", agent);
            }
            http.close(out);
        }
        if self.network {
            w.key(out, b"network");
            let mut net = ObjectWriter::open(out);
            if let Some(ip) = found.client_ip.or(found.remote_ip) {
                net.key(out, b"client");
                let mut client = ObjectWriter::open(out);
                client.str(out, b"ip", ip);
                client.close(out);
            }
            if let Some(n) = found.bytes_read {
                net.uint(out, b"bytes_read", n);
            }
            if let Some(n) = found.bytes_written {
                net.uint(out, b"bytes_written", n);
            }
            net.close(out);
        }
        if let (true, Some((ns, _))) = (self.duration, found.duration) {
            w.uint(out, b"duration", ns);
        }
        if self.status {
            let flags = found.flags.unwrap_or_default();
            w.str(out, b"status", envoy::level(self.code, flags).as_bytes());
        }
        if self.message {
            // `GET /users/42 200 12ms UH`: what a person scanning the log wants to see.
            text.clear();
            if let Some(method) = found.method {
                word(text, method);
            }
            if let Some(path) = path {
                word(text, path);
            }
            word(text, itoa::Buffer::new().format(self.code).as_bytes());
            if let Some((ns, _)) = found.duration {
                word(text, b"");
                envoy::write_millis(ns, text);
                text.extend_from_slice(b"ms");
            }
            if let Some(flags) = found.flags.filter(|f| !envoy::is_absent(f)) {
                word(text, flags);
            }
            w.str(out, b"message", text);
        }
    }
}

/// Appends `bytes` to a space-separated line.
fn word(text: &mut Vec<u8>, bytes: &[u8]) {
    if !text.is_empty() {
        text.push(b' ');
    }
    text.extend_from_slice(bytes);
}

/// `a=1&b=&c` → `{"a":"1","b":"","c":""}`. Values stay as Envoy logged them (still
/// percent-encoded); a repeated name keeps its first value (the full path is kept anyway).
/// `query` is escaped JSON string content, and `&`, `=` never occur inside an escape, so
/// every piece is valid string content too.
fn write_query(out: &mut Vec<u8>, query: &[u8]) {
    const MAX_PARAMS: usize = 64;
    let mut params = ObjectWriter::open(out);
    let mut seen: [&[u8]; MAX_PARAMS] = [&[]; MAX_PARAMS];
    let mut count = 0;
    for pair in query.split(|&b| b == b'&') {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        if name.is_empty() || seen[..count].contains(&name) {
            continue;
        }
        if count == MAX_PARAMS {
            break;
        }
        seen[count] = name;
        count += 1;
        params.str(out, name, value);
    }
    params.close(out);
}

fn write_displaced(w: &mut ObjectWriter, out: &mut Vec<u8>, bufs: &Bufs<'_>, displaced: &[Displaced]) {
    if displaced.is_empty() {
        return;
    }
    w.key(out, b"_log");
    let mut log = ObjectWriter::open(out);
    for d in displaced.iter().filter(|d| !d.in_dd) {
        log.raw(out, d.key.of(bufs.of(d.side)), d.value.of(bufs.of(d.side)));
    }
    if displaced.iter().any(|d| d.in_dd) {
        log.key(out, b"dd");
        let mut dd = ObjectWriter::open(out);
        for d in displaced.iter().filter(|d| d.in_dd) {
            dd.raw(out, d.key.of(bufs.of(d.side)), d.value.of(bufs.of(d.side)));
        }
        dd.close(out);
    }
    log.close(out);
}

/// A key as written in the input: raw bytes, and whether they contain escapes.
#[derive(Clone, Copy)]
struct KeyRef<'a> {
    raw: &'a [u8],
    escaped: bool,
}

/// Key ids: envelope members first, then record members.
fn key_ref<'a>(id: u32, input: &'a [u8], envelope: &[Member], log: &'a [u8], record: &[Member]) -> KeyRef<'a> {
    let (m, buf) = match envelope.get(id as usize) {
        Some(m) => (m, input),
        None => (&record[id as usize - envelope.len()], log),
    };
    KeyRef { raw: m.key.of(buf), escaped: m.key_escaped }
}

/// An open-addressing set of key ids, cleared in O(1) by bumping a generation counter, so
/// finding duplicates costs a hash per key and no allocation once warm.
#[derive(Default)]
struct KeyIndex {
    slots: Vec<Slot>,
    generation: u32,
    /// Decoding buffers for the rare keys that contain escapes (`"\u0061"` equals `"a"`).
    decoded: (Vec<u8>, Vec<u8>),
}

#[derive(Clone, Copy, Default)]
struct Slot {
    generation: u32,
    hash: u32,
    id: u32,
}

impl KeyIndex {
    fn reset(&mut self, keys: usize) {
        let wanted = (keys * 2).next_power_of_two().max(64);
        self.generation = self.generation.wrapping_add(1);
        if self.slots.len() < wanted || self.generation == 0 {
            self.slots.clear();
            self.slots.resize(wanted.max(self.slots.capacity()), Slot::default());
            self.generation = 1;
        }
    }

    /// Adds key `id`; returns true if an equal key was there already (the new one is
    /// added all the same, so [`Self::find_other`] finds both).
    fn insert<'k>(&mut self, id: u32, key_of: impl Fn(u32) -> KeyRef<'k>) -> bool {
        let key = key_of(id);
        let hash = self.hash(key);
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        let mut duplicate = false;
        loop {
            let slot = self.slots[i];
            if slot.generation != self.generation {
                self.slots[i] = Slot { generation: self.generation, hash, id };
                return duplicate;
            }
            if !duplicate && slot.hash == hash && self.same(key, key_of(slot.id)) {
                duplicate = true;
            }
            i = (i + 1) & mask;
        }
    }

    /// Another id with the same key as `id`.
    fn find_other<'k>(&mut self, id: u32, key_of: impl Fn(u32) -> KeyRef<'k>) -> Option<u32> {
        let key = key_of(id);
        let hash = self.hash(key);
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let slot = self.slots[i];
            if slot.generation != self.generation {
                return None;
            }
            if slot.id != id && slot.hash == hash && self.same(key, key_of(slot.id)) {
                return Some(slot.id);
            }
            i = (i + 1) & mask;
        }
    }

    fn hash(&mut self, key: KeyRef<'_>) -> u32 {
        if !key.escaped {
            return hash_bytes(key.raw);
        }
        let buf = &mut self.decoded.0;
        buf.clear();
        read::unescape_into(key.raw, buf);
        hash_bytes(buf)
    }

    fn same(&mut self, a: KeyRef<'_>, b: KeyRef<'_>) -> bool {
        if !a.escaped && !b.escaped {
            return a.raw == b.raw;
        }
        let (da, db) = (&mut self.decoded.0, &mut self.decoded.1);
        da.clear();
        db.clear();
        read::unescape_into(a.raw, da);
        read::unescape_into(b.raw, db);
        da == db
    }
}

/// A fast non-cryptographic hash of a short key, eight bytes at a time.
fn hash_bytes(bytes: &[u8]) -> u32 {
    let mut h = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        h = (h.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = (h.rotate_left(5) ^ u64::from_le_bytes(tail)).wrapping_mul(0x517c_c1b7_2722_0a95);
    (h >> 32) as u32
}
