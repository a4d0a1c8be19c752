//! The transform's rules (the README's rules, rule for rule as in `src/transform.rs`), written once
//! over a generic JSON value so that the two baselines differ from envoy-dd, and from each
//! other, only in how they parse, hold and write JSON.
//!
//! This is the straightforward way to write the transform: parse the record into a tree, look
//! at the tree, build a new tree, serialise it. Id parsing is envoy-dd's own
//! (`envoy_dd::trace`); the small Envoy value rules (`200.0`, `"-"`, response flags) are
//! repeated here because the crate keeps them private.

use std::borrow::Cow;

use envoy_dd::trace::{self, TraceCandidates, TraceContext, TraceKey};
use envoy_dd::{Config, TraceIdFormat};

/// A value as the rules look at it.
pub enum Scalar<'a> {
    Str(&'a str),
    /// A number that fits a `u64`.
    U64(u64),
    /// Any other number, as text.
    Num(Cow<'a, str>),
    Null,
    Object,
    Other,
}

/// What the rules need from a JSON library's value type.
pub trait Json: Clone + Default + PartialEq + Sized {
    type Key: AsRef<str>;
    type Map: JsonMap<Key = Self::Key, Value = Self>;

    fn scalar(&self) -> Scalar<'_>;
    fn as_map(&self) -> Option<&Self::Map>;
    fn string(s: String) -> Self;
    fn uint(n: u64) -> Self;
    fn map(m: Self::Map) -> Self;
    fn key(s: &'static str) -> Self::Key;
    fn owned_key(s: String) -> Self::Key;
}

/// What the rules need from a JSON library's object type.
pub trait JsonMap: Default + IntoIterator<Item = (Self::Key, Self::Value)> {
    type Key: AsRef<str>;
    type Value;

    fn get(&self, key: &str) -> Option<&Self::Value>;
    fn insert(&mut self, key: Self::Key, value: Self::Value);
    fn entries(&self) -> impl Iterator<Item = (&str, &Self::Value)>;

    fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

/// The parts of [`Config`] the rules use, with debris already removed.
pub struct Rules {
    hash: Option<String>,
    phase: Option<String>,
    trace_id_128: TraceIdFormat,
    standard_attributes: bool,
    status: bool,
    message: bool,
    derive_phase: bool,
}

impl Rules {
    pub fn new(config: &Config) -> Self {
        let clean = |v: &Option<String>| v.clone().filter(|v| !is_debris_str(v));
        Rules {
            hash: clean(&config.hash),
            phase: clean(&config.phase),
            trace_id_128: config.trace_id_128,
            standard_attributes: config.standard_attributes,
            status: config.status,
            message: config.message,
            derive_phase: config.derive_phase,
        }
    }
}

/// The envelope, and the object parsed from its `log` string if it held one.
pub fn transform<J: Json>(rules: &Rules, envelope: J::Map, log: Option<J::Map>) -> J::Map {
    // The log is merged unless a key collision would need `_log` and `_log` is taken.
    let (env, rec, merged) = match log {
        Some(log) => {
            let collides = log.entries().any(|(k, _)| envelope.contains_key(k));
            if collides && (envelope.contains_key("_log") || log.contains_key("_log")) {
                (J::Map::default(), envelope, false)
            } else {
                (envelope, log, true)
            }
        }
        None => (J::Map::default(), envelope, false),
    };
    let plan = Plan::<J>::new(rules, &env, &rec, merged);

    let mut out = Assembly {
        out: J::Map::default(),
        displaced: Vec::new(),
        env_log: None,
        merged,
        plan,
    };
    for (key, value) in env {
        out.member(Side::Envelope, key, value);
    }
    for (key, value) in rec {
        out.member(Side::Record, key, value);
    }
    out.finish()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Envelope = 0,
    Record = 1,
}

/// Everything decided before the output is built; owns its values, so the input maps can be
/// consumed afterwards.
struct Plan<J: Json> {
    dd_managed: bool,
    dd_position: Option<Side>,
    dd: Option<J>,
    dd_displaced: Vec<(J::Key, J)>,
    hash: ValuePlan<J>,
    phase: ValuePlan<J>,
    duration_in_place: Option<u64>,
    added: Vec<(J::Key, J)>,
}

/// Where `hash` or `phase` goes and which value it gets.
struct ValuePlan<J> {
    position: Option<Side>,
    value: Option<J>,
    loser: Option<J>,
}

impl<J: Json> ValuePlan<J> {
    fn new(found: &[Option<&J>; 2], fallback: Option<&str>) -> Self {
        let (rec, env) = (found[Side::Record as usize], found[Side::Envelope as usize]);
        let value = rec
            .or(env)
            .cloned()
            .or_else(|| fallback.map(|f| J::string(f.to_owned())));
        ValuePlan {
            position: env.map(|_| Side::Envelope).or(rec.map(|_| Side::Record)),
            loser: rec
                .and(env)
                .filter(|&loser| Some(loser) != value.as_ref())
                .cloned(),
            value,
        }
    }
}

impl<J: Json> Plan<J> {
    fn new(rules: &Rules, env: &J::Map, rec: &J::Map, merged: bool) -> Self {
        let mut found = Found::<J>::default();
        found.scan(Side::Record, rec, false);
        found.scan(Side::Envelope, env, merged);
        let mut candidates = TraceCandidates::default();
        for (kind, text) in &found.trace {
            candidates.offer(*kind, text.as_bytes());
        }

        let [env_dd, rec_dd] = found.dd;
        let dd_managed = [env_dd, rec_dd]
            .iter()
            .flatten()
            .all(|v| matches!(v.scalar(), Scalar::Object | Scalar::Null));
        let (at, other) = if env_dd.is_some() {
            (env_dd, rec_dd)
        } else {
            (rec_dd, None)
        };
        let (first, second) = (at.and_then(J::as_map), other.and_then(J::as_map));
        let existing_valid = [first, second].into_iter().flatten().any(|dd| {
            dd.get("trace_id")
                .and_then(scalar_text)
                .is_some_and(|t| trace::parse_existing_trace_id(t.as_bytes()).is_some())
        });
        let resolved = if existing_valid || !dd_managed {
            None
        } else {
            candidates.resolve()
        };
        let mut dd_displaced = Vec::new();
        let dd = match at {
            _ if !dd_managed => None,
            None => resolved.map(|ctx| J::map(new_dd::<J>(rules, &ctx))),
            Some(at) if is_empty(first) && is_empty(second) && resolved.is_none() => {
                Some(at.clone())
            }
            Some(_) => Some(J::map(merge_dd(
                rules,
                first,
                second,
                resolved,
                &mut dd_displaced,
            ))),
        };

        let derived = if rules.derive_phase {
            found
                .task_definition
                .and_then(string_content)
                .and_then(phase_of)
        } else {
            None
        };
        let mut plan = Plan {
            dd_managed,
            dd_position: if env_dd.is_some() {
                Some(Side::Envelope)
            } else {
                rec_dd.map(|_| Side::Record)
            },
            dd,
            dd_displaced,
            hash: ValuePlan::new(&found.hash, rules.hash.as_deref()),
            phase: ValuePlan::new(&found.phase, rules.phase.as_deref().or(derived)),
            duration_in_place: None,
            added: Vec::new(),
        };
        if let Some(code) = found.code {
            plan.access_log(
                rules,
                &found,
                code,
                !env.contains_key("_log") && !rec.contains_key("_log"),
            );
        }
        plan
    }

    /// The attributes of an access log: `http`, `network`, `duration`, `status`, `message`.
    fn access_log(&mut self, rules: &Rules, found: &Found<'_, J>, code: u64, can_displace: bool) {
        let standard = rules.standard_attributes;
        let mut duration_at_end = false;
        if let (true, Some((ns, source))) = (standard, found.duration) {
            if found.duration_key {
                if source == "duration" && can_displace && !found.duration_key_on_envelope {
                    self.duration_in_place = Some(ns);
                }
            } else {
                duration_at_end = !found.duration_key_on_envelope;
            }
        }
        let path = found.original_path.or(found.path);
        if standard && !found.has_http {
            let mut http = J::Map::default();
            http.insert(J::key("status_code"), J::uint(code));
            if let Some(method) = found.method {
                http.insert(J::key("method"), J::string(method.to_owned()));
            }
            if path.is_some() || found.host.is_some() {
                let mut url = J::Map::default();
                if let Some(path) = path {
                    let (path, query) = match path.split_once('?') {
                        Some((path, query)) => (path, query),
                        None => (path, ""),
                    };
                    url.insert(J::key("path"), J::string(path.to_owned()));
                    if !query.is_empty() {
                        url.insert(J::key("queryString"), J::map(query_params::<J>(query)));
                    }
                }
                if let Some(host) = found.host {
                    url.insert(J::key("host"), J::string(host.to_owned()));
                }
                http.insert(J::key("url_details"), J::map(url));
            }
            if let Some(path) = path {
                // envoy-dd's own endpoint inference: the baselines compare how the record is
                // read and written, not this rule.
                let mut endpoint = Vec::new();
                let method = found.method.unwrap_or_default().as_bytes();
                let routes = envoy_dd::endpoint::Routes::default();
                if routes.endpoint(method, path.as_bytes(), code as u16, &mut endpoint) {
                    let endpoint =
                        String::from_utf8(endpoint).expect("endpoints of UTF-8 paths are UTF-8");
                    http.insert(J::key("endpoint"), J::string(endpoint));
                }
            }
            let strings = [
                ("version", found.version),
                ("request_id", found.request_id),
                ("useragent", found.user_agent),
            ];
            for (key, value) in strings {
                if let Some(value) = value {
                    http.insert(J::key(key), J::string(value.to_owned()));
                }
            }
            self.added.push((J::key("http"), J::map(http)));
        }
        let client_ip = found.client_ip.or(found.remote_ip);
        let network =
            client_ip.is_some() || found.bytes_read.is_some() || found.bytes_written.is_some();
        if standard && !found.has_network && network {
            let mut net = J::Map::default();
            if let Some(ip) = client_ip {
                let mut client = J::Map::default();
                client.insert(J::key("ip"), J::string(ip.to_owned()));
                net.insert(J::key("client"), J::map(client));
            }
            for (key, value) in [
                ("bytes_read", found.bytes_read),
                ("bytes_written", found.bytes_written),
            ] {
                if let Some(n) = value {
                    net.insert(J::key(key), J::uint(n));
                }
            }
            self.added.push((J::key("network"), J::map(net)));
        }
        if let (true, Some((ns, _))) = (duration_at_end, found.duration) {
            self.added.push((J::key("duration"), J::uint(ns)));
        }
        if rules.status && !found.has_level {
            let level = level(code, found.flags.as_deref().unwrap_or_default());
            self.added
                .push((J::key("status"), J::string(level.to_owned())));
        }
        if rules.message && !found.has_message {
            let mut words: Vec<String> = Vec::new();
            words.extend(found.method.map(str::to_owned));
            words.extend(path.map(str::to_owned));
            words.push(code.to_string());
            if let Some((ns, _)) = found.duration {
                words.push(format!("{}ms", millis_text(ns)));
            }
            words.extend(
                found
                    .flags
                    .as_deref()
                    .filter(|f| !is_absent(f))
                    .map(str::to_owned),
            );
            self.added
                .push((J::key("message"), J::string(words.join(" "))));
        }
    }
}

fn is_empty<M: JsonMap>(map: Option<&M>) -> bool {
    map.is_none_or(|m| m.entries().next().is_none())
}

fn new_dd<J: Json>(rules: &Rules, ctx: &TraceContext) -> J::Map {
    let mut dd = J::Map::default();
    dd.insert(
        J::key("trace_id"),
        J::string(ctx.trace_id_string(rules.trace_id_128)),
    );
    if let Some(span) = ctx.span_id {
        dd.insert(J::key("span_id"), J::string(span.to_string()));
    }
    dd
}

/// The existing `dd` object(s), the first keeping its keys, with new ids in place of invalid
/// ones; what the new ids or the first object's keys replace goes to `_log.dd`.
fn merge_dd<J: Json>(
    rules: &Rules,
    first: Option<&J::Map>,
    second: Option<&J::Map>,
    resolved: Option<TraceContext>,
    displaced: &mut Vec<(J::Key, J)>,
) -> J::Map {
    let mut dd = J::Map::default();
    for (members, is_second) in [(first, false), (second, true)] {
        for (key, value) in members.into_iter().flat_map(|m| m.entries()) {
            if is_second {
                if let Some(theirs) = first.and_then(|f| f.get(key)) {
                    if theirs != value {
                        displaced.push((J::owned_key(key.to_owned()), value.clone()));
                    }
                    continue;
                }
            }
            let is_id = key == "trace_id" || key == "span_id";
            if let (Some(_), true) = (resolved, is_id) {
                if !is_placeholder_id(value) {
                    displaced.push((J::owned_key(key.to_owned()), value.clone()));
                }
                continue; // written below
            }
            let valid_number = match value.scalar() {
                Scalar::U64(n) => (n != 0).then(|| n.to_string()),
                Scalar::Num(text) => {
                    trace::parse_decimal_id(text.as_bytes()).map(|_| text.into_owned())
                }
                _ => None,
            };
            match valid_number {
                Some(text) if is_id => dd.insert(J::owned_key(key.to_owned()), J::string(text)),
                _ => dd.insert(J::owned_key(key.to_owned()), value.clone()),
            }
        }
    }
    if let Some(ctx) = resolved {
        for (key, value) in new_dd::<J>(rules, &ctx) {
            dd.insert(key, value);
        }
    }
    dd
}

fn is_placeholder_id<J: Json>(value: &J) -> bool {
    match value.scalar() {
        Scalar::Null => true,
        Scalar::Str(s) => matches!(s, "" | "-" | "0"),
        Scalar::U64(n) => n == 0,
        _ => false,
    }
}

/// `a=1&b=&c` → `{"a":"1","b":"","c":""}`; a repeated name keeps its first value.
fn query_params<J: Json>(query: &str) -> J::Map {
    let mut params = J::Map::default();
    let mut count = 0;
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name.is_empty() || params.contains_key(name) {
            continue;
        }
        if count == 64 {
            break;
        }
        count += 1;
        params.insert(J::owned_key(name.to_owned()), J::string(value.to_owned()));
    }
    params
}

/// Builds the output map, member by member, from the consumed input maps.
struct Assembly<J: Json> {
    out: J::Map,
    displaced: Vec<(J::Key, J)>,
    /// The envelope's `log` string, once merged (a parsed `log` key collides with it).
    env_log: Option<J>,
    merged: bool,
    plan: Plan<J>,
}

impl<J: Json> Assembly<J> {
    fn member(&mut self, side: Side, key: J::Key, value: J) {
        let name = key.as_ref();
        if side == Side::Envelope && name == "log" {
            self.env_log = Some(value);
            return;
        }
        if name == "dd" && self.plan.dd_managed {
            if self.plan.dd_position == Some(side) {
                if let Some(dd) = self.plan.dd.take() {
                    self.out.insert(key, dd);
                }
            }
            return;
        }
        if name == "hash" || name == "phase" {
            let plan = if name == "hash" {
                &mut self.plan.hash
            } else {
                &mut self.plan.phase
            };
            if plan.position == Some(side) {
                Self::place(&mut self.out, &mut self.displaced, plan, key);
            }
            return; // debris, or the losing value (already in the plan)
        }
        if let (Side::Record, "duration", Some(ns)) = (side, name, self.plan.duration_in_place) {
            self.out.insert(key, J::uint(ns));
            self.displaced.push((J::key("duration"), value));
            return;
        }
        if side == Side::Record && self.merged {
            let theirs = if name == "log" {
                self.env_log.as_ref()
            } else {
                self.out.get(name)
            };
            if let Some(theirs) = theirs {
                if *theirs != value {
                    self.displaced.push((key, value));
                }
                return;
            }
        }
        self.out.insert(key, value);
    }

    fn place(
        out: &mut J::Map,
        displaced: &mut Vec<(J::Key, J)>,
        plan: &mut ValuePlan<J>,
        key: J::Key,
    ) {
        let name = if key.as_ref() == "hash" {
            "hash"
        } else {
            "phase"
        };
        if let Some(value) = plan.value.take() {
            out.insert(key, value);
        }
        if let Some(loser) = plan.loser.take() {
            displaced.push((J::key(name), loser));
        }
    }

    fn finish(mut self) -> J::Map {
        if self.plan.dd_managed && self.plan.dd_position.is_none() {
            if let Some(dd) = self.plan.dd.take() {
                self.out.insert(J::key("dd"), dd);
            }
        }
        for name in ["hash", "phase"] {
            let plan = if name == "hash" {
                &mut self.plan.hash
            } else {
                &mut self.plan.phase
            };
            if plan.position.is_none() {
                Self::place(&mut self.out, &mut self.displaced, plan, J::key(name));
            }
        }
        for (key, value) in self.plan.added.drain(..) {
            self.out.insert(key, value);
        }
        if !self.displaced.is_empty() || !self.plan.dd_displaced.is_empty() {
            let mut log = J::Map::default();
            for (key, value) in self.displaced {
                log.insert(key, value);
            }
            if !self.plan.dd_displaced.is_empty() {
                let mut dd = J::Map::default();
                for (key, value) in self.plan.dd_displaced.drain(..) {
                    dd.insert(key, value);
                }
                log.insert(J::key("dd"), J::map(dd));
            }
            self.out.insert(J::key("_log"), J::map(log));
        }
        self.out
    }
}

/// The meaningful members of a record; per role the first usable value wins, the record's
/// before the envelope's.
#[derive(Default)]
struct Found<'a, J> {
    trace: Vec<(TraceKey, Cow<'a, str>)>,
    /// Indexed by `Side as usize`.
    dd: [Option<&'a J>; 2],
    hash: [Option<&'a J>; 2],
    phase: [Option<&'a J>; 2],
    task_definition: Option<&'a J>,
    has_level: bool,
    has_message: bool,
    has_http: bool,
    has_network: bool,
    /// The record has a member named exactly `duration`.
    duration_key: bool,
    duration_key_on_envelope: bool,
    code: Option<u64>,
    method: Option<&'a str>,
    path: Option<&'a str>,
    original_path: Option<&'a str>,
    host: Option<&'a str>,
    version: Option<&'a str>,
    request_id: Option<&'a str>,
    user_agent: Option<&'a str>,
    client_ip: Option<&'a str>,
    remote_ip: Option<&'a str>,
    bytes_read: Option<u64>,
    bytes_written: Option<u64>,
    /// Nanoseconds, and the key they came from.
    duration: Option<(u64, &'a str)>,
    flags: Option<Cow<'a, str>>,
}

impl<'a, J: Json> Found<'a, J> {
    fn scan(&mut self, side: Side, map: &'a J::Map, skip_log: bool) {
        let slot = side as usize;
        for (key, value) in map.entries() {
            match key {
                "log" if skip_log => continue,
                "dd" => first(&mut self.dd[slot], Some(value)),
                "hash" | "phase" => {
                    let values = if key == "hash" {
                        &mut self.hash
                    } else {
                        &mut self.phase
                    };
                    if !is_debris(value) {
                        first(&mut values[slot], Some(value));
                    }
                    continue;
                }
                "http" => self.has_http = true,
                "network" => self.has_network = true,
                "duration" if side == Side::Envelope => self.duration_key_on_envelope = true,
                "duration" => self.duration_key = true,
                _ => {}
            }
            let mut buf = [0u8; 32];
            let Some(role) = trace::normalize_key(key.as_bytes(), &mut buf).and_then(role) else {
                continue;
            };
            match role {
                Role::Trace(kind) => {
                    if let Some(text) = scalar_text(value) {
                        self.trace.push((kind, text));
                    }
                }
                Role::Level => self.has_level = true,
                Role::Message => self.has_message = true,
                Role::TaskDefinition => first(&mut self.task_definition, Some(value)),
                _ if side == Side::Envelope => {}
                Role::ResponseCode => {
                    first(&mut self.code, integer_of(value).filter(|&c| c < 1000))
                }
                Role::Method => first(&mut self.method, string_content(value)),
                Role::Path => first(&mut self.path, string_content(value)),
                Role::OriginalPath => first(&mut self.original_path, string_content(value)),
                Role::Host => first(&mut self.host, string_content(value)),
                Role::Protocol => first(
                    &mut self.version,
                    string_content(value).and_then(http_version),
                ),
                Role::RequestId => first(&mut self.request_id, string_content(value)),
                Role::UserAgent => first(&mut self.user_agent, string_content(value)),
                Role::ForwardedFor => first(
                    &mut self.client_ip,
                    string_content(value).and_then(first_forwarded),
                ),
                Role::RemoteAddress => first(
                    &mut self.remote_ip,
                    string_content(value).and_then(strip_port),
                ),
                Role::BytesReceived => first(&mut self.bytes_read, integer_of(value)),
                Role::BytesSent => first(&mut self.bytes_written, integer_of(value)),
                Role::Duration => first(&mut self.duration, millis_of(value).map(|ns| (ns, key))),
                Role::ResponseFlags => first(&mut self.flags, scalar_text(value)),
            }
        }
    }
}

fn first<T>(slot: &mut Option<T>, value: Option<T>) {
    if slot.is_none() {
        *slot = value;
    }
}

/// A string, or a number's text.
fn scalar_text<J: Json>(value: &J) -> Option<Cow<'_, str>> {
    match value.scalar() {
        Scalar::Str(s) => Some(Cow::Borrowed(s)),
        Scalar::U64(n) => Some(Cow::Owned(n.to_string())),
        Scalar::Num(text) => Some(text),
        _ => None,
    }
}

/// A string other than Envoy's "nothing" (`""`, `"-"`).
fn string_content<J: Json>(value: &J) -> Option<&str> {
    match value.scalar() {
        Scalar::Str(s) if !is_absent(s) => Some(s),
        _ => None,
    }
}

fn integer_of<J: Json>(value: &J) -> Option<u64> {
    match value.scalar() {
        Scalar::U64(n) => Some(n),
        Scalar::Str(s) => integer(s),
        Scalar::Num(text) => integer(&text),
        _ => None,
    }
}

fn millis_of<J: Json>(value: &J) -> Option<u64> {
    match value.scalar() {
        Scalar::U64(n) => n.checked_mul(1_000_000),
        Scalar::Str(s) => millis_to_nanos(s),
        Scalar::Num(text) => millis_to_nanos(&text),
        _ => None,
    }
}

/// Configuration debris: `null`, `""`, `"-"`, or an unexpanded `"${VAR}"`.
fn is_debris<J: Json>(value: &J) -> bool {
    match value.scalar() {
        Scalar::Null => true,
        Scalar::Str(s) => is_debris_str(s),
        _ => false,
    }
}

fn is_debris_str(s: &str) -> bool {
    let s = s.trim_ascii();
    s.is_empty() || s == "-" || (s.starts_with("${") && s.ends_with('}'))
}

fn phase_of(task_definition: &str) -> Option<&'static str> {
    let family = task_definition.split(':').next()?;
    if family.ends_with("-canary") || family.ends_with("_canary") {
        Some("canary")
    } else if family.ends_with("-stable") || family.ends_with("_stable") {
        Some("stable")
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Envoy value rules (private in the crate, so repeated here).

#[derive(Clone, Copy)]
enum Role {
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
    BytesReceived,
    BytesSent,
    Duration,
    ResponseFlags,
    Level,
    Message,
    TaskDefinition,
}

fn role(normalized: &[u8]) -> Option<Role> {
    if let Some(key) = trace::classify_key(normalized) {
        return Some(Role::Trace(key));
    }
    Some(match normalized {
        b"responsecode" | b"statuscode" | b"code" => Role::ResponseCode,
        b"method" => Role::Method,
        b"path" => Role::Path,
        b"xenvoyoriginalpath" => Role::OriginalPath,
        b"authority" | b"host" => Role::Host,
        b"protocol" => Role::Protocol,
        b"requestid" | b"xrequestid" => Role::RequestId,
        b"useragent" => Role::UserAgent,
        b"xforwardedfor" => Role::ForwardedFor,
        b"downstreamremoteaddress" => Role::RemoteAddress,
        b"bytesreceived" => Role::BytesReceived,
        b"bytessent" => Role::BytesSent,
        b"duration" => Role::Duration,
        b"responseflags" | b"responseflagslong" => Role::ResponseFlags,
        b"status" | b"level" | b"severity" => Role::Level,
        b"message" | b"msg" | b"log" => Role::Message,
        b"ecstaskdefinition" => Role::TaskDefinition,
        _ => return None,
    })
}

/// Response flags (short and long names) that make a line an error: the upstream failed.
const UPSTREAM_FLAGS: &[(&str, &str)] = &[
    ("UH", "NoHealthyUpstream"),
    ("UF", "UpstreamConnectionFailure"),
    ("UO", "UpstreamOverflow"),
    ("URX", "UpstreamRetryLimitExceeded"),
    ("NC", "NoClusterFound"),
    ("DT", "DurationTimeout"),
    ("LH", "FailedLocalHealthCheck"),
    ("UT", "UpstreamRequestTimeout"),
    ("LR", "LocalReset"),
    ("UR", "UpstreamRemoteReset"),
    ("UC", "UpstreamConnectionTermination"),
    ("UMSDR", "UpstreamMaxStreamDurationReached"),
    ("UPE", "UpstreamProtocolError"),
    ("DF", "DnsResolutionFailed"),
    ("DO", "DropOverload"),
    ("OM", "OverloadManagerTerminated"),
    ("RLSE", "RateLimitServiceError"),
    ("NFCF", "NoFilterConfigFound"),
];

/// Response flags that make a line a warning: the downstream side, or routing.
const DOWNSTREAM_FLAGS: &[(&str, &str)] = &[
    ("DC", "DownstreamConnectionTermination"),
    ("DR", "DownstreamRemoteReset"),
    ("DPE", "DownstreamProtocolError"),
    ("SI", "StreamIdleTimeout"),
    ("IH", "InvalidEnvoyRequestHeaders"),
    ("NR", "NoRouteFound"),
    ("RL", "RateLimited"),
    ("UAEX", "UnauthorizedExternalService"),
];

fn level(code: u64, flags: &str) -> &'static str {
    let has = |table: &[(&str, &str)]| {
        flags
            .split(',')
            .map(str::trim_ascii)
            .any(|f| table.iter().any(|&(short, long)| f == short || f == long))
    };
    if has(UPSTREAM_FLAGS) || (500..600).contains(&code) {
        "error"
    } else if has(DOWNSTREAM_FLAGS) || (400..500).contains(&code) || code == 0 {
        "warn"
    } else {
        "info"
    }
}

fn is_absent(s: &str) -> bool {
    s.is_empty() || s == "-"
}

/// `200`, `200.0`, `"200"` → 200; `None` for fractions, signs, exponents, `-`.
fn integer(text: &str) -> Option<u64> {
    let (whole, frac) = decimal_parts(text)?;
    frac.bytes().all(|d| d == b'0').then_some(())?;
    whole.parse().ok()
}

/// Milliseconds to nanoseconds, exactly, up to six decimals.
fn millis_to_nanos(text: &str) -> Option<u64> {
    let (whole, frac) = decimal_parts(text)?;
    let mut nanos = whole.parse::<u64>().ok()?.checked_mul(1_000_000)?;
    let mut scale = 100_000;
    for d in frac.bytes().take(6) {
        nanos = nanos.checked_add(u64::from(d - b'0') * scale)?;
        scale /= 10;
    }
    Some(nanos)
}

fn decimal_parts(text: &str) -> Option<(&str, &str)> {
    let (whole, frac) = match text.split_once('.') {
        Some((whole, frac)) if !frac.is_empty() => (whole, frac),
        Some(_) => return None,
        None => (text, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    (!whole.is_empty() && digits(whole) && digits(frac)).then_some((whole, frac))
}

/// Nanoseconds as milliseconds: `12`, `0.25`.
fn millis_text(nanos: u64) -> String {
    let (ms, frac) = (nanos / 1_000_000, nanos % 1_000_000);
    if frac == 0 {
        ms.to_string()
    } else {
        format!("{ms}.{}", format!("{frac:06}").trim_end_matches('0'))
    }
}

fn http_version(protocol: &str) -> Option<&str> {
    let version = protocol.get(5..)?;
    let ok = protocol[..5].eq_ignore_ascii_case("HTTP/")
        && !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    ok.then_some(version)
}

fn first_forwarded(xff: &str) -> Option<&str> {
    let first = xff.split(',').next()?.trim_ascii();
    (!is_absent(first)).then_some(first)
}

fn strip_port(address: &str) -> Option<&str> {
    if is_absent(address) {
        return None;
    }
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split_once(']').map(|(host, _)| host);
    }
    match address.matches(':').count() {
        1 => address.split(':').next(),
        _ => Some(address),
    }
}
