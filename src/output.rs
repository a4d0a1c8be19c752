//! Writing: the third phase of the transform, which carries out a [`Plan`].
//!
//! The output is written in one pass from spans of the input: the envelope's members, then
//! the record's, each in its order. Members that need nothing are copied in stretches
//! ([`Run`]); the few that planning lists are handled as [`Plan::action`] says (the merged
//! `dd`, `hash` and `phase` in their places, `duration` in nanoseconds, members moved to
//! `_log`). Then the added members: `dd`, `hash`, `phase`, the access-log attributes, and
//! `_log` with what was moved.

use crate::absent::is_envoy_absent;
use crate::dedup::{self, Dedup};
use crate::endpoint::{infer_escaped, Routes};
use crate::envoy;
use crate::keys::{Name, Side};
use crate::plan::{Action, Attributes, DdForm, DdStep, Found, OwnLog, Plan, ValuePlan};
use crate::read::{self, Kind, Member, Span};
use crate::record::{Bufs, Record};
use crate::scan;
use crate::trace::{self, TraceContext, TraceIdFormat};
use crate::write::{self, ObjectWriter};

/// Writes `"dd":{"trace_id":"…","span_id":"…"}` for a trace context (the span id when it
/// has one), ids as strings. The transform and the tracing layer (`crate::subscriber`) both
/// write `dd` this way.
#[inline]
pub(crate) fn dd_member(
    w: &mut ObjectWriter,
    out: &mut Vec<u8>,
    ctx: &TraceContext,
    format: TraceIdFormat,
) {
    w.start(out, br#","dd":{"trace_id":""#);
    ctx.write_trace_id(format, out);
    if ctx.span_id.is_some() {
        out.extend_from_slice(br#"","span_id":""#);
        ctx.write_span_id(out);
    }
    out.extend_from_slice(br#""}"#);
}

/// Writes the key of `hash` or `phase` (`name`), `"hash":`; its JSON value follows. The
/// transform and the tracing layer both write these keys this way.
#[inline(always)]
pub(crate) fn start_canary_member(w: &mut ObjectWriter, out: &mut Vec<u8>, name: Name) {
    // A constant key each: copied without a call to `memcpy`.
    match name {
        Name::Hash => w.start(out, br#","hash":"#),
        _ => w.start(out, br#","phase":"#),
    }
}

/// Working memory of the writer, reused across records.
#[derive(Default)]
pub(crate) struct Writer {
    /// Every member index of the envelope and of the record, for a side whose reader did
    /// not list the members to look at.
    all_members: [Vec<u32>; 2],
    displaced: Vec<Displaced>,
    dedup: Dedup,
    /// The decoded path and its endpoint, for a path with escapes.
    endpoint: [Vec<u8>; 2],
}

/// Appends `record`, rewritten as `plan` says, to `out`.
#[inline(always)]
pub(crate) fn write(
    record: &Record<'_>,
    found: &Found<'_>,
    plan: &Plan<'_>,
    routes: &Routes,
    writer: &mut Writer,
    out: &mut Vec<u8>,
) {
    let Writer {
        all_members,
        displaced,
        dedup,
        endpoint,
    } = writer;
    displaced.clear();
    let bufs = &record.bufs;
    // Existing members, envelope first, each in its order. The members that need more
    // than copying are looked at one by one (a reader lists them; otherwise every member
    // is looked at); those copied unchanged are gathered into runs, so that a stretch of
    // them costs one copy.
    for ((all, members), list) in all_members
        .iter_mut()
        .zip(record.sides)
        .zip(record.specials)
    {
        all.clear();
        if list.is_none() {
            all.extend(0..members.members.len() as u32);
        }
    }
    let mut w = ObjectWriter::open(out);
    for side in [Side::Envelope, Side::Record] {
        let specials = record.specials[side as usize].unwrap_or(&all_members[side as usize]);
        let members = record.side(side).members;
        let buf = bufs.of(side);
        let mut run = Run::default();
        let mut plain = 0;
        for &i in specials {
            let i = i as usize;
            if plain < i {
                // A layout's members are compact and in a row: one stretch.
                let (first, last) = (&members[plain], &members[i - 1]);
                run.add_stretch(&mut w, out, buf, first.key.start - 1, last.value.end);
            }
            plain = i + 1;
            let m = &members[i];
            let action = plan.action(record, side, i);
            if action == Action::Copy {
                run.add(&mut w, out, buf, m);
                continue;
            }
            run.flush(&mut w, out, buf);
            match action {
                Action::Copy | Action::Drop => {}
                Action::Dd => write_dd(&mut w, out, bufs, plan, displaced, dedup),
                Action::Hash => plan.hash.write(&mut w, out, bufs, displaced, dedup),
                Action::Phase => plan.phase.write(&mut w, out, bufs, displaced, dedup),
                Action::Duration => {
                    w.start(out, br#","duration":"#);
                    if let Some((_, nanos)) = plan.access.duration_in_place {
                        nanos.write_nanos(out);
                    }
                    if plan.access.duration_kept {
                        displaced.push(Displaced::of(side, m));
                    }
                }
                Action::Displace => displaced.push(Displaced::of(side, m)),
                Action::OwnLog => {
                    if let Some(own) = &plan.own_log {
                        write_own_log(&mut w, out, record, own, dedup);
                    }
                }
                Action::Dedup => {
                    w.key(out, m.key.of(buf));
                    dedup::write_value(out, m.value.of(buf), dedup);
                }
            }
        }
        if let (Some(first), Some(last)) = (members.get(plain), members.last()) {
            run.add_stretch(&mut w, out, buf, first.key.start - 1, last.value.end);
        }
        run.flush(&mut w, out, buf);
    }

    // Added members.
    if plan.dd.managed && plan.dd.position.is_none() && plan.resolved.is_some() {
        write_dd(&mut w, out, bufs, plan, displaced, dedup);
    }
    for value in [&plan.hash, &plan.phase] {
        if value.position.is_none() {
            value.write(&mut w, out, bufs, displaced, dedup);
        }
    }
    if let Some(access) = &plan.access.attributes {
        access.write(&mut w, out, found, (routes, endpoint));
    }
    write_displaced(&mut w, out, bufs, displaced, dedup);
    w.close(out);
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

/// A member moved under `_log` (or `_log.dd`) because another value took its key.
#[derive(Clone, Copy)]
pub(crate) struct Displaced {
    side: Side,
    key: Span,
    value: Span,
    in_dd: bool,
}

impl Displaced {
    /// A member kept under `_log`.
    fn of(side: Side, m: &Member) -> Self {
        Displaced {
            side,
            key: m.key,
            value: m.value,
            in_dd: false,
        }
    }

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

impl ValuePlan<'_, '_> {
    fn write(
        &self,
        w: &mut ObjectWriter,
        out: &mut Vec<u8>,
        bufs: &Bufs<'_>,
        displaced: &mut Vec<Displaced>,
        dedup: &mut Dedup,
    ) {
        let value = match self.winner {
            Some(at) => at.raw(bufs),
            None => match self.fallback {
                Some(value) => value,
                None => return,
            },
        };
        start_canary_member(w, out, self.name);
        dedup::write_value(out, value, dedup);
        if let Some(loser) = self.loser {
            if loser.raw(bufs) != value {
                displaced.push(Displaced::of(loser.side, &loser.member));
            }
        }
    }
}

/// Writes `"dd":{...}` as `plan.dd` says: the existing members, with the new ids
/// (`plan.resolved`) in place of invalid ones.
fn write_dd(
    w: &mut ObjectWriter,
    out: &mut Vec<u8>,
    bufs: &Bufs<'_>,
    plan: &Plan<'_>,
    displaced: &mut Vec<Displaced>,
    dedup: &mut Dedup,
) {
    let (dd_plan, resolved, format) = (&plan.dd, plan.resolved, plan.trace_id_128);
    match (dd_plan.form, resolved) {
        (DdForm::AsIs, _) => {
            if let Some(at) = dd_plan.at {
                w.raw(out, b"dd", at.raw(bufs));
            }
            return;
        }
        // Most records: no ids of a `dd` object to keep or move.
        (DdForm::Context, Some(ctx)) => {
            dd_member(w, out, &ctx, format);
            return;
        }
        _ => {}
    }
    w.start(out, br#","dd":{"#);
    let mut dd = ObjectWriter::opened();
    for step in dd_plan.steps {
        match (*step, resolved) {
            (DdStep::Keep { side, member, id }, _) => {
                let (buf, m) = (bufs.of(side), &member);
                match id {
                    true => write_existing_id(&mut dd, out, m.key.of(buf), m, buf, dedup),
                    false => {
                        dd.key(out, m.key.of(buf));
                        dedup::write_value(out, m.value.of(buf), dedup);
                    }
                }
            }
            (DdStep::Displace { side, member }, _) => {
                displaced.push(Displaced::in_dd(side, &member));
            }
            (DdStep::TraceId, Some(ctx)) => write_trace_id(&mut dd, out, &ctx, format),
            (DdStep::SpanId, Some(ctx)) => write_span_id(&mut dd, out, &ctx),
            (DdStep::TraceId | DdStep::SpanId, None) => {}
        }
    }
    dd.close(out);
}

/// Writes an existing `trace_id` or `span_id`; a valid id given as a JSON number becomes a
/// string.
fn write_existing_id(
    dd: &mut ObjectWriter,
    out: &mut Vec<u8>,
    key: &[u8],
    m: &Member,
    buf: &[u8],
    dedup: &mut Dedup,
) {
    let value = m.value.of(buf);
    match m.kind == Kind::Number && trace::parse_decimal_id(value).is_some() {
        true => dd.str(out, key, value),
        false => {
            dd.key(out, key);
            dedup::write_value(out, value, dedup);
        }
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

impl Attributes<'_> {
    /// `endpoint`: the routes, and scratch space for a path with escapes.
    fn write(
        &self,
        w: &mut ObjectWriter,
        out: &mut Vec<u8>,
        found: &Found<'_>,
        endpoint: (&Routes, &mut [Vec<u8>; 2]),
    ) {
        let path = found.original_path.or(found.path);
        // Only `http`, `status` and `message` use it, and they are planned only with one.
        let code = self.code.unwrap_or(envoy::Whole::ZERO);
        // Each member starts with one constant (`,"key":`, `,"key":"`, or more): the added
        // members follow the record's own, and `status_code` always comes first in `http`.
        if self.http {
            w.start(out, br#","http":{"status_code":"#);
            code.write(out);
            if let Some(method) = found.method {
                str_member(out, br#","method":""#, method);
            }
            if let (true, Some(path)) = (self.url, path) {
                str_member(out, br#","url":""#, path);
            }
            if path.is_some() || found.host.is_some() {
                out.extend_from_slice(br#","url_details":{"#);
                if let Some(path) = path {
                    let (path, query) = match scan::position(path, b'?') {
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
            if let Some(path) = path {
                let method = found.method.unwrap_or_default();
                write_endpoint(out, endpoint, method, path, code.value);
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
        if let (true, Some(name)) = (self.graphql, found.graphql_operation) {
            w.start(out, br#","graphql":{"operation":{"name":""#);
            out.extend_from_slice(name);
            out.extend_from_slice(br#""}}"#);
        }
        if self.network {
            w.start(out, br#","network":{"#);
            let mut network = ObjectWriter::opened();
            match (found.client_ip.or(found.remote_ip), found.remote_port) {
                (Some(ip), port) => {
                    network.start(out, br#","client":{"ip":""#);
                    out.extend_from_slice(ip);
                    out.push(b'"');
                    if let Some(port) = port {
                        out.extend_from_slice(br#","port":"#);
                        port.write(out);
                    }
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
            write::integer(out, u64::from(status));
            out.extend_from_slice(b"}}");
        }
        if let (true, Some((duration, _))) = (self.duration, found.duration) {
            w.start(out, br#","duration":"#);
            duration.write_nanos(out);
        }
        if self.status {
            match self.level(found) {
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
            if let Some(flags) = found.flags.filter(|f| !is_envoy_absent(f)) {
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

/// Appends `,"endpoint":"…"`, the endpoint of a request for `path` (escaped string content):
/// the user's route template it matches, else the one Datadog's tracers infer; nothing for a
/// 404 that no template matches (see [`Routes::endpoint`]). `scratch` holds the decoded path
/// and its endpoint when the path has escapes.
#[inline(always)]
pub(crate) fn write_endpoint(
    out: &mut Vec<u8>,
    (routes, [decoded, endpoint]): (&Routes, &mut [Vec<u8>; 2]),
    method: &[u8],
    path: &[u8],
    code: u64,
) {
    let mark = out.len();
    out.extend_from_slice(br#","endpoint":""#);
    // Without route templates, in one pass over the path (see `Routes::endpoint` for 404s).
    if routes.is_empty() {
        if code as u16 == 404 {
            out.truncate(mark);
            return;
        }
        if infer_escaped(path, out) {
            out.push(b'"');
            return;
        }
    }
    // Without escapes the path's bytes are its characters, and so are the endpoint's: it is
    // written in place. Otherwise it is worked out on the decoded path, and escaped again.
    let escaped = memchr::memchr(b'\\', path).is_some();
    if escaped {
        decode(path, decoded, endpoint);
    }
    let (path, into) = match escaped {
        true => (&decoded[..], &mut *endpoint),
        false => (path, &mut *out),
    };
    if !routes.endpoint(method, path, code as u16, into) {
        out.truncate(mark);
        return;
    }
    match escaped {
        true => escape(out, endpoint),
        false => out.push(b'"'),
    }
}

/// Decodes escaped string content `path` into `decoded`, and empties `endpoint`.
#[cold]
fn decode(path: &[u8], decoded: &mut Vec<u8>, endpoint: &mut Vec<u8>) {
    decoded.clear();
    endpoint.clear();
    read::unescape_into(path, decoded);
}

/// Appends `endpoint` as escaped string content, and the closing quote (after the opening
/// one).
#[cold]
fn escape(out: &mut Vec<u8>, endpoint: &[u8]) {
    out.pop();
    // A decoded JSON string cut at `/` is valid UTF-8.
    write::string(out, core::str::from_utf8(endpoint).unwrap_or_default());
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

/// Writes the record's own `_log` with the record's `duration` in it, as `own` says:
/// `"_log":{…,"duration":12}`, or `"_log":{"_log":…,"duration":12}`.
#[cold]
fn write_own_log(
    w: &mut ObjectWriter,
    out: &mut Vec<u8>,
    record: &Record<'_>,
    own: &OwnLog,
    dedup: &mut Dedup,
) {
    let (side, i) = own.at;
    let (log, buf) = (&record.side(side).members[i], record.bufs.of(side));
    let duration = &record.side(Side::Record).members[own.duration];
    w.key(out, log.key.of(buf));
    match own.nest {
        true => {
            out.extend_from_slice(br#"{"_log":"#);
            dedup::write_value(out, log.value.of(buf), dedup);
            out.push(b',');
        }
        false => {
            // The object without its `}`.
            dedup::write_value(out, log.value.of(buf), dedup);
            out.pop();
            if !own.empty {
                out.push(b',');
            }
        }
    }
    out.extend_from_slice(br#""duration":"#);
    dedup::write_value(out, duration.value.of(record.bufs.rec), dedup);
    out.push(b'}');
}

/// Writes `_log`: the members that other values took the keys of, in the order they were
/// moved; then `_log.dd`, the ids and keys of `dd` objects that were replaced or merged, in
/// the order of the input (the envelope's `dd` before the log's).
fn write_displaced(
    w: &mut ObjectWriter,
    out: &mut Vec<u8>,
    bufs: &Bufs<'_>,
    displaced: &mut [Displaced],
    dedup: &mut Dedup,
) {
    if displaced.is_empty() {
        return;
    }
    // `DdPlan::write` moved the ids and keys of `dd` objects in one go, in the order it met
    // them: put them in the order of the input.
    let dd_start = displaced
        .iter()
        .position(|d| d.in_dd)
        .unwrap_or(displaced.len());
    let dd_len = displaced[dd_start..].iter().take_while(|d| d.in_dd).count();
    debug_assert!(displaced[dd_start + dd_len..].iter().all(|d| !d.in_dd));
    if dd_len > 1 {
        let in_dd = &mut displaced[dd_start..dd_start + dd_len];
        in_dd.sort_by_key(|d| (d.side == Side::Record, d.value.start));
    }
    w.start(out, br#","_log":{"#);
    let mut log = ObjectWriter::opened();
    for d in displaced.iter().filter(|d| !d.in_dd) {
        log.key(out, d.key.of(bufs.of(d.side)));
        dedup::write_value(out, d.value.of(bufs.of(d.side)), dedup);
    }
    if displaced.iter().any(|d| d.in_dd) {
        log.start(out, br#","dd":{"#);
        let mut dd = ObjectWriter::opened();
        // Planning leaves one value per key here.
        for d in displaced.iter().filter(|d| d.in_dd) {
            dd.key(out, d.key.of(bufs.of(d.side)));
            dedup::write_value(out, d.value.of(bufs.of(d.side)), dedup);
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
