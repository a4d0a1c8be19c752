//! Planning: what the transform adds, moves and replaces, decided before anything is
//! written. The second phase of the transform.
//!
//! [`Found`] notes what the members of a [`Record`] mean (per role, the first usable value);
//! [`Plan::new`] then decides, with pure functions of what was found and the config: the
//! trace context to write ([`DdPlan`]), where `hash` and `phase` go and with which value
//! ([`ValuePlan`]), and which access-log attributes are added ([`Access`]). The writer
//! ([`crate::output`]) asks [`Plan::action`] what to do with each member it looks at.

use crate::absent::{is_debris, is_envoy_absent, is_placeholder_id};
use crate::config::{Config, Setup};
use crate::envoy::{self, Role};
use crate::error::Enriched;
use crate::join::RequestIds;
use crate::keys::{Meaning, Name, Side};
use crate::number;
use crate::read::{self, Kind, Member};
use crate::record::{Bufs, Record};
use crate::text;
use crate::trace::{self, TraceCandidates, TraceContext, TraceIdFormat, TraceKey, TraceSource};

/// Everything decided about one record before writing it.
pub(crate) struct Plan<'f> {
    pub dd: DdPlan<'f>,
    pub hash: ValuePlan<'f, 'f>,
    pub phase: ValuePlan<'f, 'f>,
    pub access: Access<'f>,
    /// The record's members that moved into the attributes made from them: not written.
    pub moved: Moved,
    /// The record's own `_log`, when the milliseconds of its `duration` go into it.
    pub own_log: Option<OwnLog>,
    /// The trace context written into `dd` (replacing invalid ids or added).
    pub resolved: Option<TraceContext>,
    /// Where `dd.trace_id` comes from, if the output has a valid one.
    pub trace_source: Option<TraceSource>,
    pub trace_id_128: TraceIdFormat,
}

/// What the writer does with a member it looks at (see [`Plan::action`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Copy it unchanged.
    Copy,
    /// Leave it out: the merged `log`, a `dd`, `hash` or `phase` written elsewhere, debris.
    Drop,
    /// Write the merged `dd` in its place.
    Dd,
    /// Write `hash` in its place.
    Hash,
    /// Write `phase` in its place.
    Phase,
    /// Write `duration` in nanoseconds in its place, and move it to `_log`.
    Duration,
    /// Move it to `_log`: another value takes its key.
    Displace,
    /// Write the record's own `_log` with the milliseconds of `duration` (see [`OwnLog`]).
    OwnLog,
    /// Copy it with each key of its nested objects once (see [`crate::dedup`]).
    Dedup,
}

/// Working memory of planning, reused across records: the members of the `dd` objects, and
/// of a record's own `_log`.
#[derive(Default)]
pub(crate) struct DdScratch {
    first: Vec<Member>,
    second: Vec<Member>,
    steps: Vec<DdStep>,
    stack: read::Stack,
    own_log: Vec<Member>,
}

impl<'f> Plan<'f> {
    /// Decides what to write for `record`, whose meaningful members are `found`; `context`
    /// is the trace source tried after the record's own, and `request_ids` (the request-id
    /// join) the last resort.
    // Out of line, the plan is built where the caller keeps it; inlined, its parts are built
    // apart and then moved into it (callgrind: 0.6 % more instructions per record).
    #[inline(never)]
    pub fn new(
        record: &Record<'f>,
        found: &'f Found<'f>,
        config: &Config,
        setup: &'f Setup,
        context: Option<&TraceContext>,
        request_ids: &RequestIds,
        scratch: &'f mut DdScratch,
    ) -> Self {
        let bufs = &record.bufs;
        let access = Access::plan(config, found);
        let DdScratch {
            first,
            second,
            steps,
            stack,
            own_log,
        } = scratch;
        let mut dd = DdPlan::new(found, bufs, first, second, stack);
        // Replacing an invalid id that is more than a placeholder moves it to `_log`; when the
        // record already uses `_log` for something else, the ids stay as they were.
        let replaceable =
            (record.can_displace || !dd.holds_data(bufs)) && !dd.replacing_conflicts(bufs);
        let resolved = match dd.managed && !dd.existing_valid && replaceable {
            true => {
                let [envelope, record] = &found.trace;
                TraceCandidates::of_sides(record, envelope)
                    .resolve_for(config.trace_id_128)
                    .or(context.copied())
                    .or_else(|| joined_context(request_ids, found.request_id))
            }
            false => None,
        };
        dd.plan_steps(bufs, resolved, steps);
        let trace_source = if dd.existing_valid {
            Some(TraceSource::Existing)
        } else {
            resolved.map(|c| c.source)
        };
        let hash = ValuePlan::new(Name::Hash, &found.hash, setup.hash_json.as_deref());
        // The phase derived from the task definition is the last resort: worked out only
        // when neither the record nor the configuration has one.
        let fallback = match setup.phase_json.as_deref() {
            Some(configured) => Some(configured),
            None if config.derive_phase && found.phase.iter().all(Option::is_none) => {
                derived_phase(found, bufs)
            }
            None => None,
        };
        let phase = ValuePlan::new(Name::Phase, &found.phase, fallback);
        let mut access = access;
        let moved = match config.keep_source_attributes {
            true => Moved::default(),
            false => {
                let trace = (dd.managed).then_some(resolved);
                Moved::plan(record, found, &mut access, config, trace)
            }
        };
        let own_log = match record.can_displace {
            true => None,
            false => OwnLog::plan(record, &mut access, stack, own_log),
        };
        Plan {
            dd,
            hash,
            phase,
            access,
            moved,
            own_log,
            resolved,
            trace_source,
            trace_id_128: config.trace_id_128,
        }
    }

    /// What the writer does with member `i` of `side`, one the record lists as needing more
    /// than copying (or any member, where none are listed).
    #[inline(always)]
    pub fn action(&self, record: &Record<'_>, side: Side, i: usize) -> Action {
        // Most of the members listed moved: decided before looking up the key's meaning, as
        // the arms below would (a moving key has a role; `dd`, `hash` and `phase`, which
        // they test first, have none, as the `keys` tests pin down).
        if side == Side::Record && self.moved.contains(i) {
            return Action::Drop;
        }
        let id = record.side(side).keys[i];
        let here = Some((side, i));
        let at = |position| match here == position {
            true => Action::Dd,
            false => Action::Drop,
        };
        match record.keys.meaning(id).name {
            _ if side == Side::Envelope && Some(i) == record.log_at => Action::Drop,
            Name::Dd if self.dd.managed => at(self.dd.position),
            // Debris is dropped; of two real values the winner takes the first place.
            Name::Hash if here == self.hash.position => Action::Hash,
            Name::Phase if here == self.phase.position => Action::Phase,
            Name::Hash | Name::Phase => Action::Drop,
            Name::Displaced if self.own_log.is_some_and(|l| l.at == (side, i)) => Action::OwnLog,
            _ if side == Side::Record && self.moved.contains(i) => Action::Drop,
            _ if side == Side::Record
                && self.access.duration_in_place.is_some_and(|d| d.0 == i) =>
            {
                Action::Duration
            }
            _ if side == Side::Record && self.access.duration_displaced == Some(i) => {
                match self.own_log {
                    Some(_) => Action::Drop,
                    None => Action::Displace,
                }
            }
            _ if side == Side::Record && record.collisions => {
                let top = record
                    .keys
                    .at_top(id)
                    .filter(|&t| Some(t as usize) != record.log_at);
                match top {
                    Some(_) => Action::Displace,
                    None => copy(record, side, i),
                }
            }
            _ => copy(record, side, i),
        }
    }

    /// The trace context the record has of its own, for the request-id join to remember:
    /// a valid existing `dd`, or one its trace keys (or `context`) gave, not one the join did.
    pub fn own_context(&self, bufs: &Bufs<'_>) -> Option<TraceContext> {
        let own = match self.dd.existing_valid {
            true => self.dd.existing_ids(bufs),
            false => self.resolved,
        };
        own.filter(|c| c.source != TraceSource::RequestId)
    }

    /// What the transform reports.
    pub fn enriched(&self, record: &Record<'_>) -> Enriched {
        Enriched {
            shape: record.shape,
            access_log: self.access.attributes.is_some(),
            trace: self.trace_source,
        }
    }
}

/// The trace context the request-id join has for `request_id`.
#[inline]
fn joined_context(ids: &RequestIds, request_id: Option<&[u8]>) -> Option<TraceContext> {
    let (trace_id, span_id) = ids.get(request_id?)?;
    Some(TraceContext {
        trace_id,
        span_id,
        source: TraceSource::RequestId,
    })
}

/// A member and the side it is on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct At {
    pub side: Side,
    pub index: usize,
    pub member: Member,
}

impl At {
    pub fn raw<'a>(&self, bufs: &Bufs<'a>) -> &'a [u8] {
        self.member.value.of(bufs.of(self.side))
    }
}

/// The meaningful members of a record. Per role the first usable value wins, the record's
/// before the envelope's.
#[derive(Default)]
pub(crate) struct Found<'a> {
    /// Each side's trace keys apart (indexed by `Side as usize`), so that ids of two contexts
    /// are never paired (see [`TraceCandidates::of_sides`]).
    pub trace: [TraceCandidates<'a>; 2],
    /// Indexed by `Side as usize`.
    pub dd: [Option<At>; 2],
    pub hash: [Option<At>; 2],
    pub phase: [Option<At>; 2],
    /// Indexed by `Side as usize`.
    pub task_definition: [Option<At>; 2],
    pub has_level: bool,
    pub has_message: bool,
    pub has_http: bool,
    pub has_network: bool,
    pub has_grpc: bool,
    pub has_graphql: bool,
    /// Index of a record member named exactly `duration`, and its value in nanoseconds if it
    /// converts.
    pub duration_key: Option<(usize, Option<envoy::Duration<'a>>)>,
    pub duration_key_on_envelope: bool,
    // Access-log fields, from the record side only.
    pub code: Option<envoy::Whole<'a>>,
    pub method: Option<&'a [u8]>,
    pub path: Option<&'a [u8]>,
    pub original_path: Option<&'a [u8]>,
    pub host: Option<&'a [u8]>,
    pub version: Option<&'a [u8]>,
    pub request_id: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
    pub client_ip: Option<&'a [u8]>,
    pub remote_ip: Option<&'a [u8]>,
    pub remote_port: Option<envoy::Whole<'a>>,
    /// A TCP access line's connection id was found.
    pub connection: bool,
    /// A gRPC status code (0 to 16).
    pub grpc_status: Option<u8>,
    pub bytes_read: Option<envoy::Whole<'a>>,
    pub bytes_written: Option<envoy::Whole<'a>>,
    /// The duration, and the index of the member it came from.
    pub duration: Option<(envoy::Duration<'a>, usize)>,
    pub flags: Option<&'a [u8]>,
    pub graphql_operation: Option<&'a [u8]>,
    /// The record members that may move into an attribute (see [`Role::may_move`]).
    pub sources: Sources,
}

/// The indexes of the record members that may move into an attribute, the first
/// [`Sources::MAX`] of them (any further one stays where it is).
#[derive(Default)]
pub(crate) struct Sources {
    /// Each member's index and role (`None` only past `len`).
    entries: [(u32, Option<Role>); Sources::MAX],
    len: usize,
}

impl Sources {
    const MAX: usize = 16;

    #[inline(always)]
    fn push(&mut self, index: usize, role: Role) {
        if let Some(entry) = self.entries.get_mut(self.len) {
            *entry = (index as u32, Some(role));
            self.len += 1;
        }
    }

    /// Each member's index and role.
    fn iter(&self) -> impl Iterator<Item = (usize, Option<Role>)> + '_ {
        let entries = self.entries.get(..self.len).unwrap_or_default();
        entries.iter().map(|&(i, role)| (i as usize, role))
    }
}

impl<'a> Found<'a> {
    /// Notes what the members of `record` mean (into a `Found::default()`: filled in place,
    /// as the struct is large enough for a move to cost a `memcpy`).
    #[inline(always)]
    pub fn note(&mut self, record: &Record<'a>) {
        // Side by side rather than in a loop over both: each call knows its side, so the
        // checks of it in `Found::member` fold away.
        self.side(Side::Record, record, None);
        self.side(Side::Envelope, record, record.log_at);
    }

    /// Notes what the members of `side` mean: those listed in `scanned` when it has a list
    /// for the side, else every member but `skip`.
    #[inline(always)]
    fn side(&mut self, side: Side, record: &Record<'a>, skip: Option<usize>) {
        let (members, buf) = (record.side(side), record.bufs.of(side));
        match record.scanned[side as usize] {
            Some(list) => {
                for &(i, meaning) in list {
                    let i = i as usize;
                    self.member(side, i, &members.members[i], meaning, buf);
                }
            }
            None => self.scan(side, record, buf, skip),
        }
    }

    fn scan(&mut self, side: Side, record: &Record<'a>, buf: &'a [u8], skip: Option<usize>) {
        let (members, keys) = (record.side(side), record.keys);
        for (index, m) in members.members.iter().enumerate() {
            if Some(index) != skip {
                self.member(side, index, m, keys.meaning(members.keys[index]), buf);
            }
        }
    }

    /// Notes what member `index` of `side` means. Members for which [`Meaning::scanned`] is false
    /// mean nothing here.
    ///
    /// One dispatch, on the role: the keys whose exact name matters (`dd`, `hash`, `phase`,
    /// `http`, `network`) have no role, and `duration`, the one name with a role, is its own
    /// arm (`keys` tests pin this down).
    #[inline(always)]
    fn member(&mut self, side: Side, index: usize, m: &Member, meaning: Meaning, buf: &'a [u8]) {
        let slot = side as usize;
        let record = side == Side::Record;
        if let Some(role) = meaning.role.filter(|&r| record && r.may_move()) {
            self.sources.push(index, role);
        }
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
                Name::Graphql => self.has_graphql = true,
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
                let exact = meaning.name == Name::Duration;
                if exact && !record {
                    self.duration_key_on_envelope = true;
                }
                if record {
                    let duration = scalar_text(m, buf).and_then(envoy::duration);
                    if exact {
                        self.duration_key = Some((index, duration));
                    }
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
                self.connection |= scalar_text(m, buf).is_some_and(|t| !is_envoy_absent(t))
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
            Some(Role::GraphqlOperation) if record => {
                first(&mut self.graphql_operation, string_content(m, buf))
            }
            Some(_) => {}
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
pub(crate) fn scalar_text<'a>(m: &Member, buf: &'a [u8]) -> Option<&'a [u8]> {
    match m.kind {
        Kind::String if !m.value_escaped => Some(m.str_content(buf)),
        Kind::Number => Some(m.value.of(buf)),
        _ => None,
    }
}

/// A string's content, escapes kept (to be copied into another JSON string); `None` when
/// not a string or Envoy's "nothing" (`""`, `"-"`).
pub(crate) fn string_content<'a>(m: &Member, buf: &'a [u8]) -> Option<&'a [u8]> {
    let content = (m.kind == Kind::String).then(|| m.str_content(buf))?;
    (!is_envoy_absent(content)).then_some(content)
}

/// Where `hash` or `phase` goes and which value it gets: the record's own, then the
/// envelope's, then the configured (or derived) one. When both sides have one, the key stays
/// at the envelope's place with the record's value, and the envelope's moves to `_log`.
pub(crate) struct ValuePlan<'f, 'c> {
    /// `Name::Hash` or `Name::Phase`.
    pub name: Name,
    pub position: Option<(Side, usize)>,
    pub winner: Option<&'f At>,
    pub loser: Option<&'f At>,
    pub fallback: Option<&'c [u8]>,
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
}

/// How a member that stays is written: copied, unless a nested object of it repeats a key.
#[inline(always)]
fn copy(record: &Record<'_>, side: Side, i: usize) -> Action {
    let repeating = record.repeating[side as usize];
    match !repeating.is_empty() && repeating.contains(&(i as u32)) {
        true => Action::Dedup,
        false => Action::Copy,
    }
}

/// Keeps one member per key of an object that repeats one, as JSON parsers read it: the last
/// value, at the first key's place (the rule for every object below the top level).
#[inline(never)]
fn keep_last(members: &mut Vec<Member>, buf: &[u8]) {
    // Objects are small: pairs are compared, but a large one is sorted by name first, so
    // that the cost stays n log n.
    let repeats = match members.len() {
        0..=32 => (1..members.len())
            .any(|j| (0..j).any(|i| read::same_key(&members[i], buf, &members[j], buf))),
        _ => {
            let mut names: Vec<Vec<u8>> = members.iter().map(|m| decoded_key(m, buf)).collect();
            names.sort_unstable();
            names.windows(2).any(|w| w[0] == w[1])
        }
    };
    if !repeats {
        return;
    }
    let names: Vec<Vec<u8>> = members.iter().map(|m| decoded_key(m, buf)).collect();
    let mut last = std::collections::HashMap::new();
    for (i, name) in names.iter().enumerate() {
        last.insert(&name[..], i);
    }
    let mut kept = Vec::with_capacity(members.len());
    for (i, name) in names.iter().enumerate() {
        if let Some(j) = last.remove(&name[..]) {
            let later = members[j];
            kept.push(Member {
                key: members[i].key,
                key_escaped: members[i].key_escaped,
                ..later
            });
        }
    }
    *members = kept;
}

/// A member's key, decoded.
fn decoded_key(m: &Member, buf: &[u8]) -> Vec<u8> {
    let mut name = Vec::new();
    match m.key_escaped {
        true => read::unescape_into(m.key.of(buf), &mut name),
        false => name.extend_from_slice(m.key.of(buf)),
    }
    name
}

/// Whether a member of a `dd` object is `trace_id` or `span_id`.
pub(crate) fn is_id(m: &Member, buf: &[u8]) -> bool {
    read::key_is(m, buf, b"trace_id") || read::key_is(m, buf, b"span_id")
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
pub(crate) struct DdPlan<'s> {
    /// Every `dd` member is an object (or null), so envoy-dd may write `dd`. A `dd` that is
    /// something else belongs to the application, and is left alone.
    pub managed: bool,
    /// The `dd` member whose place the merged object takes (the envelope's before the log's).
    pub position: Option<(Side, usize)>,
    pub at: Option<&'s At>,
    /// Members of the `dd` at `position`, then of the other side's `dd`.
    pub first: (&'s [Member], Side),
    pub second: (&'s [Member], Side),
    /// An existing `dd.trace_id` is valid, so it wins over everything.
    pub existing_valid: bool,
    /// Only the second `dd` has a valid `trace_id`: the ids are that object's.
    pub ids_in_second: bool,
    /// How `dd` is written.
    pub form: DdForm,
    /// With [`DdForm::Merged`], what is written, in order.
    pub steps: &'s [DdStep],
}

/// How `dd` is written (when it is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DdForm {
    /// The record's `dd` as it was: null or empty, and no trace context to put in it.
    AsIs,
    /// The resolved trace context alone: there are no members of `dd` objects to keep.
    Context,
    /// The members of the `dd` objects merged with the resolved ids, as [`DdPlan::steps`] say.
    Merged,
}

/// One step of writing a merged `dd`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum DdStep {
    /// Writes a member of a `dd` object as it is; a trace or span id (`id`) given as a valid
    /// decimal JSON number becomes a string.
    Keep {
        side: Side,
        member: Member,
        id: bool,
    },
    /// Moves a member of a `dd` object to `_log.dd`.
    Displace { side: Side, member: Member },
    /// Writes the resolved trace id.
    TraceId,
    /// Writes the resolved span id.
    SpanId,
}

impl<'s> DdPlan<'s> {
    fn new(
        found: &'s Found<'_>,
        bufs: &Bufs<'_>,
        first: &'s mut Vec<Member>,
        second: &'s mut Vec<Member>,
        stack: &mut read::Stack,
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
            form: DdForm::Merged,
            steps: &[],
        };
        if !managed {
            return plan;
        }
        let read_members = |at: Option<&At>, into: &mut Vec<Member>, stack: &mut read::Stack| {
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
                if into.len() > 1 {
                    keep_last(into, bufs.of(at.side));
                }
            }
            at.side
        };
        // Most records have no `dd` object: nothing to read.
        let is_object = |at: Option<&At>| at.is_some_and(|a| a.member.kind == Kind::Object);
        let first_side = match is_object(at) {
            true => read_members(at, first, stack),
            false => Side::Record,
        };
        let second_side = match is_object(other) {
            true => read_members(other, second, stack),
            false => Side::Record,
        };
        let valid = |members: &[Member], side: Side| {
            members.iter().any(|m| {
                read::key_is(m, bufs.of(side), b"trace_id")
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

    /// Decides how `dd` is written with `resolved`, the trace context written into it (see
    /// [`DdForm`]); for a merge, into `steps`: the members of the `dd` objects, the envelope's
    /// first, each kept, replaced by a resolved id or moved to `_log.dd`, then the resolved
    /// ids that replaced none.
    fn plan_steps(
        &mut self,
        bufs: &Bufs<'_>,
        resolved: Option<TraceContext>,
        steps: &'s mut Vec<DdStep>,
    ) {
        let no_members = self.first.0.is_empty() && self.second.0.is_empty();
        self.form = match (no_members, resolved) {
            (true, None) => DdForm::AsIs,
            (true, Some(_)) => DdForm::Context,
            (false, _) => DdForm::Merged,
        };
        // Most records have no `dd` object: nothing to merge.
        if !no_members {
            self.merge_steps(bufs, resolved, steps);
        }
    }

    /// [`DdPlan::plan_steps`] of a merge.
    #[inline(never)]
    fn merge_steps(
        &mut self,
        bufs: &Bufs<'_>,
        resolved: Option<TraceContext>,
        steps: &'s mut Vec<DdStep>,
    ) {
        steps.clear();
        let ((first, first_side), (second, second_side)) = (self.first, self.second);
        let (mut wrote_trace, mut wrote_span) = (false, false);
        // With valid ids, both come from one `dd`: the first whose `trace_id` is valid.
        let (source, source_side) = match self.ids_in_second {
            true => self.second,
            false => self.first,
        };
        let source_value = |name: &[u8]| {
            let buf = bufs.of(source_side);
            (source.iter().find(|s| read::key_is(s, buf, name))).map(|s| s.value.of(buf))
        };
        for (which, (members, side)) in [(first, first_side), (second, second_side)]
            .into_iter()
            .enumerate()
        {
            let buf = bufs.of(side);
            for &member in members {
                let m = &member;
                let is_trace = read::key_is(m, buf, b"trace_id");
                let is_span = !is_trace && read::key_is(m, buf, b"span_id");
                let name: &[u8] = if is_trace { b"trace_id" } else { b"span_id" };
                let keep = DdStep::Keep {
                    side,
                    member,
                    id: is_trace || is_span,
                };
                let displace = DdStep::Displace { side, member };
                if self.existing_valid && (is_trace || is_span) {
                    let from_source = (which == 1) == self.ids_in_second;
                    // A span id of the same trace completes a source that has none.
                    let completes = || {
                        let own_trace = members.iter().find(|o| read::key_is(o, buf, b"trace_id"));
                        is_span
                            && source_value(b"span_id").is_none()
                            && source_value(b"trace_id") == own_trace.map(|o| o.value.of(buf))
                    };
                    if !from_source && !completes() {
                        // The other ids are kept under `_log.dd`: invalid ones that the
                        // source replaces (placeholders are dropped), and different ones.
                        let moves = match self.ids_in_second {
                            true => !is_placeholder_id(m, buf),
                            false => source_value(name) != Some(m.value.of(buf)),
                        };
                        if moves {
                            steps.push(displace);
                        }
                        continue;
                    }
                    steps.push(keep);
                    continue;
                }
                if which == 1 {
                    // Merging the log's `dd` into the envelope's: the envelope keeps its keys.
                    let first_buf = bufs.of(first_side);
                    if let Some(theirs) =
                        first.iter().find(|f| read::same_key(f, first_buf, m, buf))
                    {
                        if theirs.value.of(first_buf) != m.value.of(buf) {
                            steps.push(displace);
                        }
                        continue;
                    }
                }
                if let (Some(ctx), true) = (resolved, is_trace || is_span) {
                    // Replace the invalid ids, once each (a `dd` that repeats a key gets it
                    // once); keep anything that was more than a placeholder.
                    if is_trace && !wrote_trace {
                        steps.push(DdStep::TraceId);
                        wrote_trace = true;
                    } else if is_span && !wrote_span && ctx.span_id.is_some() {
                        steps.push(DdStep::SpanId);
                        wrote_span = true;
                    }
                    if !is_placeholder_id(m, buf) {
                        steps.push(displace);
                    }
                    continue;
                }
                steps.push(keep);
            }
        }
        if let Some(ctx) = resolved {
            if !wrote_trace {
                steps.push(DdStep::TraceId);
            }
            if !wrote_span && ctx.span_id.is_some() {
                steps.push(DdStep::SpanId);
            }
        }
        self.steps = steps;
    }

    /// Whether replacing the invalid ids would move two values to one key of `_log.dd`: the
    /// envelope's `dd` holds an id that is more than a placeholder (it moves when replaced),
    /// and the log's `dd` a different value under the same key (it moves as the log's
    /// members that the envelope's `dd` has do). The ids then stay as they were.
    pub fn replacing_conflicts(&self, bufs: &Bufs<'_>) -> bool {
        let ((first, first_side), (second, second_side)) = (self.first, self.second);
        let (a_buf, b_buf) = (bufs.of(first_side), bufs.of(second_side));
        first.iter().any(|a| {
            is_id(a, a_buf)
                && !is_placeholder_id(a, a_buf)
                && second.iter().any(|b| {
                    read::same_key(a, a_buf, b, b_buf) && a.value.of(a_buf) != b.value.of(b_buf)
                })
        })
    }

    /// The ids of a valid existing `dd.trace_id`, and its object's `span_id` if valid.
    fn existing_ids(&self, bufs: &Bufs<'_>) -> Option<TraceContext> {
        if !self.existing_valid {
            return None;
        }
        let (members, side) = match self.ids_in_second {
            true => self.second,
            false => self.first,
        };
        let buf = bufs.of(side);
        let value = |name: &[u8]| {
            let m = members.iter().find(|m| read::key_is(m, buf, name))?;
            scalar_text(m, buf)
        };
        Some(TraceContext {
            trace_id: value(b"trace_id").and_then(trace::parse_existing_trace_id)?,
            span_id: value(b"span_id").and_then(trace::parse_decimal_id),
            source: TraceSource::Existing,
        })
    }

    /// Whether an existing `trace_id`/`span_id` holds something other than a placeholder.
    fn holds_data(&self, bufs: &Bufs<'_>) -> bool {
        [self.first, self.second].iter().any(|&(members, side)| {
            let buf = bufs.of(side);
            members
                .iter()
                .any(|m| is_id(m, buf) && !is_placeholder_id(m, buf))
        })
    }
}

/// The access-log attributes to add, decided before writing.
#[derive(Default)]
pub(crate) struct Access<'a> {
    pub attributes: Option<Attributes<'a>>,
    /// The record member `duration` whose key the nanosecond attribute takes, and its value.
    pub duration_in_place: Option<(usize, envoy::Duration<'a>)>,
    /// The record member `duration` that does not convert to nanoseconds: it moves to `_log`,
    /// and no `duration` is written (Datadog would read its milliseconds as nanoseconds).
    pub duration_displaced: Option<usize>,
    /// The milliseconds of `duration_in_place` are kept under `_log` (they are not held
    /// exactly by the nanoseconds, or the config keeps source keys), unless they go into the
    /// record's own `_log` ([`Plan::own_log`]).
    pub duration_kept: bool,
}

pub(crate) struct Attributes<'a> {
    /// The response code; none on a TCP access line, which gets no `http`, `status` or
    /// `message`.
    pub code: Option<envoy::Whole<'a>>,
    pub http: bool,
    /// Add `http.url`, the path as logged (its source key moves there).
    pub url: bool,
    pub network: bool,
    /// Add `grpc.status.code`.
    pub grpc: bool,
    /// Add `graphql.operation.name`.
    pub graphql: bool,
    /// Add `duration` at the end (no member of that name exists).
    pub duration: bool,
    pub status: bool,
    pub message: bool,
}

impl Attributes<'_> {
    /// The Datadog log level `status` gets: from the response code and flags, and a failed
    /// gRPC call is as severe as its status says, whatever the HTTP code.
    #[inline(always)]
    pub fn level(&self, found: &Found<'_>) -> envoy::Level {
        let code = self.code.map_or(0, |c| c.value);
        let level = envoy::level(code, found.flags.unwrap_or_default());
        match found.grpc_status {
            Some(status) => level.worst(envoy::grpc_level(status)),
            None => level,
        }
    }
}

impl<'a> Access<'a> {
    fn plan(config: &Config, found: &Found<'a>) -> Self {
        // A TCP line (Service Connect's) has a connection id and no response code.
        let tcp = found.connection && (found.remote_ip.is_some() || found.bytes_read.is_some());
        let code = found.code;
        if code.is_none() && !tcp {
            return Access::default();
        }
        let standard = config.standard_attributes;
        let (mut duration_in_place, mut duration_displaced) = (None, None);
        let mut duration = false;
        // A `duration` of the envelope's own is left alone (and the log's then moves to `_log`
        // as any colliding key does). Milliseconds that move go to `_log`, or into the
        // record's own (see [`OwnLog`]).
        if standard && !found.duration_key_on_envelope {
            match found.duration_key {
                Some((key, Some(nanos))) => duration_in_place = Some((key, nanos)),
                Some((key, None)) => duration_displaced = Some(key),
                None => duration = found.duration.is_some(),
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
                url: http && standard && !found.has_http && !config.keep_source_attributes,
                network: standard && !found.has_network && network,
                grpc: standard && !found.has_grpc && found.grpc_status.is_some(),
                graphql: standard && !found.has_graphql && found.graphql_operation.is_some(),
                duration,
                status: http && config.status && !found.has_level,
                message: http && config.message && !found.has_message,
            }),
            duration_in_place,
            duration_displaced,
            duration_kept: true,
        }
    }
}

/// A record that has a `_log` of its own and a `duration` whose milliseconds move to `_log`:
/// they go into that `_log`, written in its place. Nothing else moves to `_log` in such a
/// record (a log whose keys collide with the envelope's is not merged into it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OwnLog {
    /// Where the record's `_log` is.
    pub at: (Side, usize),
    /// The record member `duration`.
    pub duration: usize,
    /// The `_log` is not an object, or has a `duration` of its own: it moves to `_log._log`,
    /// next to `_log.duration`, as any value whose key another takes. Otherwise it takes
    /// `duration` as one more member.
    pub nest: bool,
    /// The `_log` is an empty object.
    pub empty: bool,
}

impl OwnLog {
    /// Plans where the milliseconds of `duration` go in a record with its own `_log`.
    #[cold]
    #[inline(never)]
    fn plan(
        record: &Record<'_>,
        access: &mut Access<'_>,
        stack: &mut read::Stack,
        members: &mut Vec<Member>,
    ) -> Option<OwnLog> {
        let kept = access.duration_in_place.filter(|_| access.duration_kept);
        let duration = access.duration_displaced.or(kept.map(|(i, _)| i))?;
        let at = [Side::Envelope, Side::Record]
            .into_iter()
            .find_map(|side| {
                let keys = record.side(side).keys;
                let is_log = |&id: &u32| record.keys.meaning(id).name == Name::Displaced;
                keys.iter().position(is_log).map(|i| (side, i))
            })?;
        let m = &record.side(at.0).members[at.1];
        let value = m.value.of(record.bufs.of(at.0));
        members.clear();
        let object = m.kind == Kind::Object && read::read_object(value, members, stack).is_ok();
        let nest = !object || members.iter().any(|m| read::key_is(m, value, b"duration"));
        // The milliseconds are written into this `_log`, not into one written last.
        access.duration_kept = false;
        Some(OwnLog {
            at,
            duration,
            nest,
            empty: members.is_empty(),
        })
    }
}

/// The record's members that move into the attributes made from them (see
/// [`Config::keep_source_attributes`]): those whose whole value an attribute holds exactly,
/// and Envoy's absent values (`null`, `"-"`) of such keys.
#[derive(Default)]
pub(crate) struct Moved {
    /// Bit `i` for member `i` below 64 (one test per member the writer looks at); the list
    /// for the rest.
    low: u64,
    indexes: [u32; Sources::MAX],
    len: usize,
}

impl Moved {
    /// Whether record member `i` moved.
    #[inline(always)]
    pub fn contains(&self, i: usize) -> bool {
        match i < 64 {
            true => self.low & (1 << i) != 0,
            false => self.indexes[..self.len].contains(&(i as u32)),
        }
    }

    fn push(&mut self, i: usize) {
        match i < 64 {
            true => self.low |= 1 << i,
            false => {
                self.indexes[self.len] = i as u32;
                self.len += 1;
            }
        }
    }

    /// Decides which of the access log's `found.sources` move; `trace` is `None` when `dd` is
    /// the application's own (left alone), else the context written into it, if any. Takes the milliseconds of a `duration` replaced in place off `_log` when the
    /// nanoseconds hold them exactly.
    fn plan(
        record: &Record<'_>,
        found: &Found<'_>,
        access: &mut Access<'_>,
        config: &Config,
        trace: Option<Option<TraceContext>>,
    ) -> Moved {
        let mut moved = Moved::default();
        let Some(attributes) = &access.attributes else {
            return moved;
        };
        let members = record.side(Side::Record);
        let buf = record.bufs.rec;
        // Per group of keys, whether its attributes are written (when the record has none of
        // its own): only then do its keys move, and their absent values go.
        let standard = config.standard_attributes;
        let durations = standard && !found.duration_key_on_envelope;
        let network = standard && !found.has_network;
        let graphql = standard && !found.has_graphql;
        let datadog = trace.flatten().filter(|c| c.source == TraceSource::Datadog);
        for (i, role) in found.sources.iter() {
            let (m, Some(role)) = (&members.members[i], role) else {
                continue;
            };
            let written = match role {
                Role::Trace(_) => trace.is_some(),
                Role::ForwardedFor
                | Role::RemoteAddress
                | Role::BytesReceived
                | Role::BytesSent => network,
                Role::Duration => durations,
                Role::GraphqlOperation => graphql,
                _ => attributes.http,
            };
            if !written {
                continue;
            }
            // `null` or `"-"` (its value three bytes long, without escapes).
            let absent = match m.kind {
                Kind::Null => true,
                Kind::String => {
                    !m.value_escaped
                        && m.value.end - m.value.start == 3
                        && buf.get(m.value.start as usize + 1) == Some(&b'-')
                }
                _ => false,
            };
            if absent || holds(role, i, m, buf, found, attributes, datadog, config) {
                moved.push(i);
            }
        }
        // A `duration` replaced in place by its nanoseconds needs no copy under `_log`.
        if let Some((i, nanos)) = access.duration_in_place {
            let m = &members.members[i];
            let exact = scalar_text(m, buf).is_some_and(|t| nanos.is_exact(m.kind, t));
            access.duration_kept = !exact;
        }
        moved
    }
}

/// Whether the attribute made from member `m` (of `role`) holds its whole value exactly, so
/// that it may move there.
#[allow(clippy::too_many_arguments)]
fn holds(
    role: Role,
    i: usize,
    m: &Member,
    buf: &[u8],
    found: &Found<'_>,
    attributes: &Attributes<'_>,
    datadog: Option<TraceContext>,
    config: &Config,
) -> bool {
    // Worked out only for the roles that compare strings.
    let content = || string_content(m, buf);
    // The value written is nearly always this member's own content (the same bytes, which
    // `Found` took as they are): told by where it is, without slicing the content out again
    // or comparing bytes, which costs a loop per byte in the Wasm interpreter.
    let same = |written: Option<&[u8]>| {
        written.is_some_and(|w| {
            let own = m.kind == Kind::String
                && w.len() + 2 == (m.value.end - m.value.start) as usize
                && core::ptr::eq(
                    w.as_ptr(),
                    buf.as_ptr().wrapping_add(m.value.start as usize + 1),
                );
            own || content().is_some_and(|c| c == w)
        })
    };
    let whole = |written: Option<envoy::Whole<'_>>| {
        let text = scalar_text(m, buf);
        written.zip(text).is_some_and(|(w, t)| w.is_held(m.kind, t))
    };
    match role {
        Role::ResponseCode => whole(attributes.code),
        Role::Method => same(found.method),
        Role::Path | Role::OriginalPath => same(found.original_path.or(found.path)),
        Role::Host => same(found.host),
        Role::RequestId => same(found.request_id),
        Role::UserAgent => same(found.user_agent),
        Role::GraphqlOperation => same(found.graphql_operation),
        // `HTTP/1.1` is held by `1.1`; `http/1.1` is not.
        Role::Protocol => content().zip(found.version).is_some_and(|(c, v)| {
            c.len() == v.len() + 5 && c.starts_with(b"HTTP/") && c.ends_with(v)
        }),
        // One address without a port: several, or a port, are more than the attribute holds.
        Role::ForwardedFor | Role::RemoteAddress => same(found.client_ip.or(found.remote_ip)),
        Role::BytesReceived => whole(found.bytes_read),
        Role::BytesSent => whole(found.bytes_written),
        Role::Duration => match (attributes.duration, found.duration, scalar_text(m, buf)) {
            (true, Some((nanos, at)), Some(text)) => at == i && nanos.is_exact(m.kind, text),
            _ => false,
        },
        Role::Trace(TraceKey::DatadogTrace) => datadog.is_some_and(|c| {
            let text = scalar_text(m, buf).unwrap_or_default();
            match config.trace_id_128 == TraceIdFormat::Hex && c.trace_id_high() != 0 {
                true => is_hex32(text, c.trace_id),
                false => is_decimal(text, c.trace_id_low()),
            }
        }),
        Role::Trace(TraceKey::DatadogSpan) => datadog.is_some_and(|c| {
            let text = scalar_text(m, buf).unwrap_or_default();
            c.span_id.is_some_and(|span| is_decimal(text, span))
        }),
        _ => false,
    }
}

/// Whether `text` is `id` in its own decimal digits (no sign, no leading zero).
fn is_decimal(text: &[u8], id: u64) -> bool {
    text.first() != Some(&b'0') && trace::parse_decimal_id(text) == Some(id)
}

/// Whether `text` is `id` in 32 lower-case hex digits, as `dd.trace_id` writes it.
fn is_hex32(text: &[u8], id: u128) -> bool {
    number::hex(text, 32) == Some(id)
}
