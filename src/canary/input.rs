//! Reading log records into tallies: raw FireLens records and bare Envoy records (enriched
//! on the fly with a [`Transformer`]), records the filter already enriched, and Datadog log
//! archive lines (attributes under `attributes`).
//!
//! A raw record is not written: the transform reads and plans it, and the fields are taken
//! from what it would write (`Transformer::outline`, inside the crate), as they would be read
//! from the written record. The rare record whose output rewrites a member inside (nested
//! keys repeated) is written and read. Every JSON object is read with the transform's reader.
//!
//! Records are counted per *version* — the triple (`phase`, `hash`, task definition
//! revision) — and endpoint, so that the comparison can be chosen after reading
//! ([`Reader::finish`]): by `phase` when both `stable` and `canary` are there, else by
//! revision, else by hash. Memory grows with versions and endpoints, never with records.

use std::fmt;

use crate::endpoint::Routes;
use crate::envoy::Level;
use crate::keys::Name;
use crate::outline::{Outline, Written};
use crate::read::{self, Kind, Member};
use crate::{Config, TextFormat, Transformer};

use super::{Side, Tallies};

/// What a record is labelled with that can tell the two versions apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum By {
    /// `phase`: `stable` is the baseline, `canary` the canary.
    Phase,
    /// `hash`, the git commit: the hash with fewer requests is the canary.
    Hash,
    /// The revision of `ecs_task_definition` (`family:REVISION`): the higher is the canary.
    Revision,
}

impl By {
    /// `phase`, `hash` or `revision`.
    pub const fn name(self) -> &'static str {
        match self {
            By::Phase => "phase",
            By::Hash => "hash",
            By::Revision => "revision",
        }
    }
}

/// How [`Reader`] reads.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Route templates, which win over inferred endpoints.
    pub routes: Routes,
    /// Only records at or after this time (milliseconds since the Unix epoch).
    pub since_ms: Option<i64>,
    /// Only records before this time (milliseconds since the Unix epoch).
    pub until_ms: Option<i64>,
    /// The format of Envoy text access logs in `log`, as for `envoy-dd transform`.
    pub text_format: Option<TextFormat>,
}

/// Why records were not counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    /// Not one JSON object.
    pub unparseable: u64,
    /// No HTTP response code: not an access log (an application's log line, Envoy's own).
    pub no_response_code: u64,
    /// No time, while `--since`/`--until` asked for one.
    pub no_time: u64,
    /// Before `--since` or not before `--until`.
    pub outside_window: u64,
    /// Without the label the versions are told apart by (set by [`Reader::finish`]).
    pub no_version_label: u64,
    /// With a label of neither of the two versions compared (set by [`Reader::finish`]).
    pub other_version: u64,
}

impl Skipped {
    /// Every skipped record.
    pub fn total(&self) -> u64 {
        self.unparseable
            + self.no_response_code
            + self.no_time
            + self.outside_window
            + self.no_version_label
            + self.other_version
    }

    /// `(reason, count)` for each reason with records.
    pub fn reasons(&self) -> Vec<(&'static str, u64)> {
        [
            ("unparseable", self.unparseable),
            (
                "no response code (not an access log)",
                self.no_response_code,
            ),
            ("no time", self.no_time),
            ("outside --since/--until", self.outside_window),
            ("no version label", self.no_version_label),
            ("another version", self.other_version),
        ]
        .into_iter()
        .filter(|&(_, n)| n > 0)
        .collect()
    }
}

/// Which versions were compared, and why those.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Comparison {
    /// The label the versions were told apart by.
    pub by: By,
    /// Chosen automatically (no `--by`).
    pub automatic: bool,
    /// The baseline's label value.
    pub baseline: String,
    /// The canary's label value.
    pub canary: String,
    /// Why, in words.
    pub why: String,
}

/// No two versions to compare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoComparison(pub String);

impl fmt::Display for NoComparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A version: the labels a record carried.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Version {
    phase: Option<String>,
    hash: Option<String>,
    revision: Option<u64>,
}

impl Version {
    fn label(&self, by: By) -> Option<String> {
        match by {
            By::Phase => self.phase.clone(),
            By::Hash => self.hash.clone(),
            By::Revision => self.revision.map(|r| r.to_string()),
        }
    }
}

/// At most this many versions are told apart; records of any more are counted together.
const MAX_VERSIONS: usize = 64;
/// At most this many endpoints per version; requests to any more are counted together under
/// [`OTHER_ENDPOINTS`], so that a scan of random paths cannot exhaust memory.
pub const MAX_ENDPOINTS: usize = 5_000;
/// Where requests beyond [`MAX_ENDPOINTS`] endpoints are counted.
pub const OTHER_ENDPOINTS: &str = "(other endpoints)";
/// Where 404s that match no route template are counted: the tracers give them no endpoint.
pub const NOT_FOUND: &str = "(404 without a route)";

/// Reads records, one line at a time, into tallies per version and endpoint.
///
/// ```
/// use envoy_dd::canary::input::{Options, Reader};
/// use envoy_dd::canary::Side;
///
/// let mut reader = Reader::new(Options::default());
/// reader.read(br#"{"log":"{\"method\":\"GET\",\"path\":\"/users/42\",\"response_code\":503,\"duration\":12}","phase":"canary"}"#);
/// reader.read(br#"{"log":"{\"method\":\"GET\",\"path\":\"/users/7\",\"response_code\":200,\"duration\":10}","phase":"stable"}"#);
/// let (comparison, tallies, skipped) = reader.finish(None, None).unwrap();
/// assert_eq!(comparison.by.name(), "phase");
/// let pair = tallies.get("GET /users/{param:int}").unwrap();
/// assert_eq!((pair.canary.errors, pair.baseline.errors), (1, 0));
/// assert_eq!(skipped.total(), 0);
/// ```
pub struct Reader {
    transformer: Transformer,
    counter: Counter,
    records: u64,
    /// Finds `"log"`, the key of a FireLens record.
    log_key: memchr::memmem::Finder<'static>,
    scratch: Scratch,
    /// Records counted from their outline, not from their output.
    #[cfg(test)]
    outlined: u64,
}

#[derive(Default)]
struct Scratch {
    /// A record written by the transform, for the rare record read from its output.
    out: Vec<u8>,
    work: Work,
}

/// Working memory of reading the fields of one record.
#[derive(Default)]
struct Work {
    members: Vec<Member>,
    nested: Vec<Member>,
    stack: read::Stack,
    endpoint: Vec<u8>,
    decoded: Vec<u8>,
}

/// What records are counted into: per version, per endpoint.
struct Counter {
    options: Options,
    versions: Vec<(Version, Tallies)>,
    skipped: Skipped,
}

/// The fields of one record the judge needs, as spans of the buffers read.
#[derive(Default)]
struct Fields<'a> {
    status: Option<&'a [u8]>,
    status_code: Option<u16>,
    method: Option<&'a [u8]>,
    path: Option<&'a [u8]>,
    endpoint: Option<&'a [u8]>,
    operation: Option<&'a [u8]>,
    duration_ns: Option<f64>,
    phase: Option<&'a [u8]>,
    hash: Option<&'a [u8]>,
    task_definition: Option<&'a [u8]>,
    time: Option<&'a [u8]>,
    /// Some string had an escape: the slower path decodes it.
    escaped: bool,
}

impl Reader {
    /// A reader with the given options.
    pub fn new(options: Options) -> Self {
        let config = Config {
            hash: None,
            phase: None,
            message: false,
            text_format: options.text_format.clone(),
            // The endpoints of records enriched here are named by the templates too.
            routes: options.routes.clone(),
            // The join fills in `dd`, which the judge does not read.
            request_id_join: 0,
            ..Config::default()
        };
        Reader {
            transformer: Transformer::new(config),
            counter: Counter {
                options,
                versions: Vec::new(),
                skipped: Skipped::default(),
            },
            records: 0,
            log_key: memchr::memmem::Finder::new(b"\"log\""),
            scratch: Scratch::default(),
            #[cfg(test)]
            outlined: 0,
        }
    }

    /// Records read so far, counted or not.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Reads one record (one line, without its line end).
    pub fn read(&mut self, line: &[u8]) {
        self.read_as(line, true);
    }

    /// Reads a record; a FireLens record or a bare Envoy record from its outline when
    /// `outline` (else by writing it and reading the result, which counts alike).
    fn read_as(&mut self, line: &[u8], outline: bool) {
        self.records += 1;
        let Reader {
            transformer,
            counter,
            log_key,
            scratch: Scratch { out, work },
            ..
        } = self;
        // A FireLens record (`log`) and a bare Envoy record are read as the transform would
        // write them; a record the filter enriched and an archive line as they are.
        if log_key.find(line).is_none() {
            if !members_of(line, &mut work.members, &mut work.stack) {
                counter.skipped.unparseable += 1;
                return;
            }
            let has = |name: &[u8]| {
                (work.members.iter()).any(|m| m.kind == Kind::Object && m.key.of(line) == name)
            };
            if has(b"attributes") || has(b"http") {
                counter.count_members(line, work);
                return;
            }
        }
        let outlined = match outline {
            true => transformer.outline(line, |outline| counter.count_outline(outline, work)),
            false => Ok(false),
        };
        match outlined {
            Ok(true) => {
                #[cfg(test)]
                {
                    self.outlined += 1;
                }
            }
            // A member the writer rewrites: the record is read from its output.
            Ok(false) => {
                out.clear();
                transformer.transform(line, out);
                counter.count_buf(out, work);
            }
            // The transform would pass it through unchanged.
            Err(_) => counter.count_buf(line, work),
        }
    }
}

impl Counter {
    /// Counts a record from what the transform would write ([`Outline`]); false, having
    /// counted nothing, when it has to be written to be read.
    fn count_outline(&mut self, outline: Outline<'_>, work: &mut Work) -> bool {
        let mut fields = Fields::default();
        let mut archive = None;
        let complete = outline.for_each(|written| {
            if let Written::Copied { buf, member } = written {
                if archive.is_none() && member.kind == Kind::Object {
                    archive = (member.key.of(buf) == b"attributes").then(|| member.value.of(buf));
                }
            }
            fields.written(written, &mut work.nested, &mut work.stack);
        });
        if complete {
            self.count_archived(fields, archive, work);
        }
        complete
    }

    /// Counts the record `buf` as it is.
    fn count_buf(&mut self, buf: &[u8], work: &mut Work) {
        if !members_of(buf, &mut work.members, &mut work.stack) {
            self.skipped.unparseable += 1;
            return;
        }
        self.count_members(buf, work);
    }

    /// Counts the record `buf` whose members are `work.members`.
    fn count_members(&mut self, buf: &[u8], work: &mut Work) {
        let mut fields = Fields::default();
        let archive = (work.members.iter())
            .find(|m| m.kind == Kind::Object && m.key.of(buf) == b"attributes")
            .map(|m| m.value.of(buf));
        fields.top(buf, &work.members, &mut work.nested, &mut work.stack);
        self.count_archived(fields, archive, work);
    }

    /// Counts the `fields` of a record's top level, with those of its `attributes` object
    /// over them when it is a Datadog archive line (status and date at the top, the rest in
    /// `attributes`).
    fn count_archived<'a>(
        &mut self,
        mut fields: Fields<'a>,
        archive: Option<&'a [u8]>,
        work: &'a mut Work,
    ) {
        let Work {
            members,
            nested,
            stack,
            endpoint,
            decoded,
        } = work;
        if let Some(attributes) = archive {
            if !members_of(attributes, members, stack) {
                self.skipped.unparseable += 1;
                return;
            }
            fields.top(attributes, members, nested, stack);
        }
        self.count(fields, endpoint, decoded);
    }

    /// Counts one record's fields.
    fn count<'a>(
        &mut self,
        mut fields: Fields<'a>,
        endpoint: &mut Vec<u8>,
        decoded: &'a mut Vec<u8>,
    ) {
        let Some(code) = fields.status_code else {
            self.skipped.no_response_code += 1;
            return;
        };
        if self.options.since_ms.is_some() || self.options.until_ms.is_some() {
            match fields.time.and_then(parse_time) {
                None => {
                    self.skipped.no_time += 1;
                    return;
                }
                Some(t)
                    if self.options.since_ms.is_some_and(|s| t < s)
                        || self.options.until_ms.is_some_and(|u| t >= u) =>
                {
                    self.skipped.outside_window += 1;
                    return;
                }
                Some(_) => {}
            }
        }
        let error = match fields.status {
            Some(s) => is_error_status(s),
            None => code >= 500,
        };
        if fields.escaped {
            fields.decode(decoded);
        }
        let name = name_endpoint(&fields, code, &self.options.routes, endpoint);
        let slot = match self.versions.iter().position(|(v, _)| fields.is_version(v)) {
            Some(i) => i,
            None if self.versions.len() < MAX_VERSIONS => {
                self.versions.push((fields.version(), Tallies::new()));
                self.versions.len() - 1
            }
            None => MAX_VERSIONS - 1,
        };
        let tallies = &mut self.versions[slot].1;
        let name = if tallies.len() >= MAX_ENDPOINTS && tallies.get(name).is_none() {
            OTHER_ENDPOINTS
        } else {
            name
        };
        // Both versions are counted on one side for now; `finish` moves them to theirs.
        tallies.add(Side::Canary, name, error, fields.duration_ns);
    }
}

impl Reader {
    /// Chooses the two versions (by `by`, or automatically), and returns their tallies and
    /// what was skipped. `canary` names the canary's label value, for `hash` and `revision`
    /// when the default choice (fewer requests; higher revision) is wrong.
    pub fn finish(
        self,
        by: Option<By>,
        canary: Option<&str>,
    ) -> Result<(Comparison, Tallies, Skipped), NoComparison> {
        let choice = match by {
            Some(by) => choose(&self.counter.versions, by, canary, false)?,
            None => [By::Phase, By::Revision, By::Hash]
                .into_iter()
                .find_map(|by| choose(&self.counter.versions, by, canary, true).ok())
                .ok_or_else(|| {
                    NoComparison(
                        "no two versions to compare: the records need phase stable and canary, two task definition revisions or two hashes".into(),
                    )
                })?,
        };
        let mut tallies = Tallies::new();
        let Counter {
            versions,
            mut skipped,
            ..
        } = self.counter;
        for (version, counted) in &versions {
            let requests: u64 = counted.iter().map(|(_, p)| p.canary.requests).sum();
            let side = match version.label(choice.by) {
                None => {
                    skipped.no_version_label += requests;
                    continue;
                }
                Some(l) if l == choice.baseline => Side::Baseline,
                Some(l) if l == choice.canary => Side::Canary,
                Some(_) => {
                    skipped.other_version += requests;
                    continue;
                }
            };
            for (name, pair) in counted.iter() {
                tallies.pair_mut(name).side_mut(side).merge(&pair.canary);
            }
        }
        Ok((choice, tallies, skipped))
    }
}

/// The comparison by `by`: its two label values with most requests, if there are two.
fn choose(
    versions: &[(Version, Tallies)],
    by: By,
    canary: Option<&str>,
    automatic: bool,
) -> Result<Comparison, NoComparison> {
    let mut labels: Vec<(String, u64)> = Vec::new();
    for (version, tallies) in versions {
        let Some(label) = version.label(by) else {
            continue;
        };
        let requests: u64 = tallies.iter().map(|(_, p)| p.canary.requests).sum();
        match labels.iter_mut().find(|(l, _)| *l == label) {
            Some((_, n)) => *n += requests,
            None => labels.push((label, requests)),
        }
    }
    compare(by, labels, canary, automatic)
}

/// The comparison by `by` among label values and their requests, wherever they were counted
/// (records here; Datadog's aggregates in [`crate::datadog`]): by phase, `stable` and
/// `canary`; by revision, the higher of the two with most requests is the canary; by hash, the
/// one with fewer of the two with most requests, unless `canary` names it.
pub fn compare(
    by: By,
    mut labels: Vec<(String, u64)>,
    canary: Option<&str>,
    automatic: bool,
) -> Result<Comparison, NoComparison> {
    labels.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let found = labels
        .iter()
        .map(|(l, n)| format!("{l} ({n} requests)"))
        .collect::<Vec<_>>()
        .join(", ");
    let none = |what: &str| {
        NoComparison(format!(
            "cannot compare by {}: {what} (found: {})",
            by.name(),
            if found.is_empty() { "none" } else { &found }
        ))
    };
    let (baseline, canary_label, why) = match by {
        By::Phase => {
            let has = |p: &str| labels.iter().any(|(l, _)| l == p);
            if !(has("stable") && has("canary")) {
                return Err(none("the records need both phase stable and phase canary"));
            }
            (
                "stable".to_owned(),
                "canary".to_owned(),
                "records have both phase stable and phase canary".to_owned(),
            )
        }
        By::Hash | By::Revision => {
            if labels.len() < 2 {
                return Err(none("the records need two values"));
            }
            let (baseline, canary_label, why) = match canary {
                Some(c) => {
                    let Some(base) = labels.iter().find(|(l, _)| l != c) else {
                        return Err(none("no other value than the canary's"));
                    };
                    if !labels.iter().any(|(l, _)| l == c) {
                        return Err(none(&format!("no records with {} {c}", by.name())));
                    }
                    (
                        base.0.clone(),
                        c.to_owned(),
                        format!(
                            "canary {} given; the baseline is the other with most requests",
                            by.name()
                        ),
                    )
                }
                None if by == By::Revision => {
                    let mut two = [labels[0].clone(), labels[1].clone()];
                    two.sort_by_key(|(l, _)| l.parse::<u64>().unwrap_or(0));
                    (
                        two[0].0.clone(),
                        two[1].0.clone(),
                        "the two revisions with most requests; the higher is the canary".to_owned(),
                    )
                }
                None => (
                    labels[0].0.clone(),
                    labels[1].0.clone(),
                    "the two hashes with most requests; the one with fewer is the canary"
                        .to_owned(),
                ),
            };
            let why = if labels.len() > 2 {
                format!("{why}; others skipped (found: {found})")
            } else {
                why
            };
            (baseline, canary_label, why)
        }
    };
    Ok(Comparison {
        by,
        automatic,
        baseline,
        canary: canary_label,
        why,
    })
}

/// Writes the endpoint name of a request into `buf` and returns it: `METHOD /endpoint`, with
/// ` (operation)` for a GraphQL operation.
fn name_endpoint<'b>(f: &Fields<'_>, code: u16, routes: &Routes, buf: &'b mut Vec<u8>) -> &'b str {
    buf.clear();
    if let Some(m) = f.method {
        buf.extend_from_slice(m);
        buf.push(b' ');
    }
    let found = match (f.endpoint, f.path) {
        (Some(e), _) => {
            buf.extend_from_slice(e);
            true
        }
        (None, Some(p)) => routes.endpoint(f.method.unwrap_or_default(), p, code, buf),
        (None, None) => {
            buf.push(b'/');
            true
        }
    };
    if !found {
        buf.clear();
        buf.extend_from_slice(NOT_FOUND.as_bytes());
    }
    if let Some(op) = f.operation {
        buf.extend_from_slice(b" (");
        buf.extend_from_slice(op);
        buf.push(b')');
    }
    if std::str::from_utf8(buf).is_err() {
        let fixed = String::from_utf8_lossy(buf).into_owned();
        *buf = fixed.into_bytes();
    }
    std::str::from_utf8(buf).unwrap_or_default()
}

impl<'a> Fields<'a> {
    /// Reads the fields among the members of one object level.
    fn top(
        &mut self,
        buf: &'a [u8],
        members: &[Member],
        nested: &mut Vec<Member>,
        stack: &mut read::Stack,
    ) {
        for m in members {
            self.member(buf, m, nested, stack);
        }
    }

    /// Reads one top-level member of the output ([`Written`]) as [`Fields::top`] reads it
    /// written.
    fn written(&mut self, w: Written<'a>, nested: &mut Vec<Member>, stack: &mut read::Stack) {
        match w {
            Written::Copied { buf, member } => self.member(buf, member, nested, stack),
            Written::Label { name, value } => {
                let Some(content) = value
                    .strip_prefix(b"\"")
                    .and_then(|v| v.strip_suffix(b"\""))
                else {
                    return;
                };
                let content = Some(self.text(content));
                match name {
                    Name::Hash => self.hash = content,
                    _ => self.phase = content,
                }
            }
            Written::Duration(nanos) => self.duration_ns = Some(nanos as f64),
            Written::Http(http) => {
                self.status_code = (http.status_code < 1000).then_some(http.status_code as u16);
                if let Some(method) = http.method {
                    self.method = Some(self.text(method));
                }
                if let Some(endpoint) = http.endpoint {
                    self.endpoint = Some(self.text(endpoint));
                }
                if let Some(path) = http.path {
                    self.path = Some(self.text(path));
                }
            }
            Written::GraphqlOperation(name) => self.operation = Some(self.text(name)),
            Written::Status(level) => {
                self.status = Some(match level {
                    Level::Error => b"error",
                    Level::Warn => b"warn",
                    Level::Info => b"info",
                })
            }
        }
    }

    /// Reads one member of an object level.
    fn member(
        &mut self,
        buf: &'a [u8],
        m: &Member,
        nested: &mut Vec<Member>,
        stack: &mut read::Stack,
    ) {
        let key = m.key.of(buf);
        match (key, m.kind) {
            (b"status", Kind::String) => self.status = Some(self.string(buf, m)),
            (b"duration", Kind::Number) => self.duration_ns = number(m.value.of(buf)),
            (b"phase", Kind::String) => self.phase = Some(self.string(buf, m)),
            (b"hash", Kind::String) => self.hash = Some(self.string(buf, m)),
            (b"ecs_task_definition", Kind::String) => {
                self.task_definition = Some(self.string(buf, m))
            }
            (
                b"date" | b"timestamp" | b"@timestamp" | b"time" | b"start_time",
                Kind::String | Kind::Number,
            ) => {
                self.time = Some(if m.kind == Kind::String {
                    self.string(buf, m)
                } else {
                    m.value.of(buf)
                })
            }
            (b"http", Kind::Object) => self.http(m.value.of(buf), nested, stack),
            (b"graphql", Kind::Object) => self.graphql(m.value.of(buf), nested, stack),
            (_, Kind::String) if is_operation_key(key) => {
                self.operation = Some(self.string(buf, m)).filter(|o| !crate::is_placeholder(o))
            }
            _ => {}
        }
    }

    fn http(&mut self, http: &'a [u8], nested: &mut Vec<Member>, stack: &mut read::Stack) {
        if !members_of(http, nested, stack) {
            return;
        }
        let mut url = None;
        for m in nested.iter() {
            match (m.key.of(http), m.kind) {
                (b"status_code", Kind::Number | Kind::String) => {
                    let v = if m.kind == Kind::String {
                        m.str_content(http)
                    } else {
                        m.value.of(http)
                    };
                    self.status_code = number(v)
                        .filter(|c| (0.0..1000.0).contains(c))
                        .map(|c| c as u16);
                }
                (b"method", Kind::String) => self.method = Some(self.string(http, m)),
                (b"endpoint", Kind::String) => self.endpoint = Some(self.string(http, m)),
                (b"url_details", Kind::Object) => url = Some(m.value.of(http)),
                _ => {}
            }
        }
        if let Some(url) = url {
            if members_of(url, nested, stack) {
                if let Some(m) = nested
                    .iter()
                    .find(|m| m.kind == Kind::String && m.key.of(url) == b"path")
                {
                    self.path = Some(self.string(url, m));
                }
            }
        }
    }

    /// `graphql.operation.name`, as Datadog's GraphQL integrations name it.
    fn graphql(&mut self, graphql: &'a [u8], nested: &mut Vec<Member>, stack: &mut read::Stack) {
        if !members_of(graphql, nested, stack) {
            return;
        }
        let Some(op) = nested
            .iter()
            .find(|m| m.kind == Kind::Object && m.key.of(graphql) == b"operation")
        else {
            return;
        };
        let op = op.value.of(graphql);
        if members_of(op, nested, stack) {
            if let Some(m) = nested
                .iter()
                .find(|m| m.kind == Kind::String && m.key.of(op) == b"name")
            {
                self.operation = Some(self.string(op, m));
            }
        }
    }

    fn string(&mut self, buf: &'a [u8], m: &Member) -> &'a [u8] {
        self.escaped |= m.value_escaped;
        m.str_content(buf)
    }

    /// Escaped string content (a backslash in it starts an escape).
    fn text(&mut self, content: &'a [u8]) -> &'a [u8] {
        self.escaped |= memchr::memchr(b'\\', content).is_some();
        content
    }

    /// Replaces escaped strings by their decoded text (rare: paths and labels seldom have
    /// escapes), kept in `decoded`.
    fn decode(&mut self, decoded: &'a mut Vec<u8>) {
        decoded.clear();
        let mut spans = [
            self.status,
            self.method,
            self.path,
            self.endpoint,
            self.operation,
            self.phase,
            self.hash,
            self.task_definition,
        ];
        let mut ends = [0usize; 8];
        for (i, s) in spans.iter().enumerate() {
            if let Some(s) = s {
                read::unescape_into(s, decoded);
            }
            ends[i] = decoded.len();
        }
        let decoded: &'a [u8] = decoded;
        let mut start = 0;
        for (i, s) in spans.iter_mut().enumerate() {
            if s.is_some() {
                *s = Some(&decoded[start..ends[i]]);
            }
            start = ends[i];
        }
        [
            self.status,
            self.method,
            self.path,
            self.endpoint,
            self.operation,
            self.phase,
            self.hash,
            self.task_definition,
        ] = spans;
    }

    /// The record is of version `v` (compared without building a [`Version`]).
    fn is_version(&self, v: &Version) -> bool {
        let same = |label: Option<&[u8]>, known: &Option<String>| match (
            label.filter(|l| !crate::is_placeholder(l)),
            known,
        ) {
            (None, None) => true,
            (Some(l), Some(k)) => l == k.as_bytes(),
            _ => false,
        };
        same(self.phase, &v.phase) && same(self.hash, &v.hash) && self.revision() == v.revision
    }

    fn revision(&self) -> Option<u64> {
        let t = self.task_definition?;
        let at = t.iter().rposition(|&b| b == b':')?;
        std::str::from_utf8(&t[at + 1..]).ok()?.parse().ok()
    }

    fn version(&self) -> Version {
        let text = |v: Option<&[u8]>| {
            v.filter(|v| !crate::is_placeholder(v))
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let revision = self.task_definition.and_then(|t| {
            let at = t.iter().rposition(|&b| b == b':')?;
            std::str::from_utf8(&t[at + 1..]).ok()?.parse().ok()
        });
        Version {
            phase: text(self.phase),
            hash: text(self.hash),
            revision,
        }
    }
}

/// Keys an operation name is logged under, e.g. `%REQ(X-APOLLO-OPERATION-NAME)%`: compared by
/// normalised name (lower case, letters and digits only).
fn is_operation_key(key: &[u8]) -> bool {
    // Cheap filter first: these keys end in `name` or `operation`, and few other keys do.
    let ends = |suffix: &[u8]| {
        key.len() >= suffix.len() && key[key.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
    };
    if key.len() < 13 || key.len() > 40 || !(ends(b"name") || ends(b"operation")) {
        return false;
    }
    let mut norm = [0u8; 40];
    let mut n = 0;
    for &b in key {
        if b.is_ascii_alphanumeric() {
            norm[n] = b.to_ascii_lowercase();
            n += 1;
        }
    }
    matches!(
        &norm[..n],
        b"xapollooperationname"
            | b"apollooperationname"
            | b"graphqloperationname"
            | b"xgraphqloperationname"
            | b"graphqloperation"
    )
}

/// Datadog's error-level statuses.
fn is_error_status(s: &[u8]) -> bool {
    const ERRORS: [&[u8]; 8] = [
        b"error",
        b"err",
        b"critical",
        b"crit",
        b"alert",
        b"emergency",
        b"emerg",
        b"fatal",
    ];
    ERRORS.iter().any(|e| e.eq_ignore_ascii_case(s))
}

/// Lists the members of the JSON object `buf` into `members`; false if it is not one.
fn members_of(buf: &[u8], members: &mut Vec<Member>, stack: &mut read::Stack) -> bool {
    members.clear();
    read::read_object(buf, members, stack).is_ok()
}

fn number(text: &[u8]) -> Option<f64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// A record time in milliseconds since the Unix epoch: RFC 3339 (`2024-06-03T14:00:00.023Z`,
/// offsets allowed) or a number (seconds below 10^11, else milliseconds).
pub fn parse_time(text: &[u8]) -> Option<i64> {
    if let Some(n) = number(text) {
        return Some(if n.abs() < 1e11 {
            (n * 1e3) as i64
        } else {
            n as i64
        });
    }
    let s = std::str::from_utf8(text).ok()?;
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    if s.as_bytes().get(4) != Some(&b'-') || s.as_bytes().get(7) != Some(&b'-') {
        return None;
    }
    let (hour, minute, second) = match s.as_bytes().get(10) {
        Some(b'T' | b't' | b' ') => (digits(11..13)?, digits(14..16)?, digits(17..19)?),
        None => (0, 0, 0),
        _ => return None,
    };
    let mut rest = s.get(19..).unwrap_or("");
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let n = fraction.bytes().take_while(u8::is_ascii_digit).count();
        let ms = format!("{:0<3}", &fraction[..n.min(3)]);
        millis = ms.parse::<i64>().ok()?;
        rest = &fraction[n..];
    }
    let offset_min = match rest.as_bytes().first() {
        None | Some(b'Z' | b'z') => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let h: i64 = rest.get(1..3)?.parse().ok()?;
            let m: i64 = rest.get(rest.len() - 2..)?.parse().ok()?;
            if sign == b'+' {
                h * 60 + m
            } else {
                -(h * 60 + m)
            }
        }
        _ => return None,
    };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute - offset_min) * 60_000 + second * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time(b"1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_time(b"2024-06-03T14:00:00.023Z"),
            Some(1_717_423_200_023)
        );
        assert_eq!(
            parse_time(b"2024-06-03T16:00:00.023+02:00"),
            Some(1_717_423_200_023)
        );
        assert_eq!(parse_time(b"2024-06-03"), Some(1_717_372_800_000));
        assert_eq!(parse_time(b"1717423200"), Some(1_717_423_200_000));
        assert_eq!(parse_time(b"1717423200023"), Some(1_717_423_200_023));
        assert_eq!(parse_time(b"yesterday"), None);
        assert_eq!(parse_time(b"2024-13-03T14:00:00Z"), None);
    }

    #[test]
    fn versions_by_hash_and_revision() {
        let line = |hash: &str, revision: u32| {
            format!(
                r#"{{"http":{{"status_code":200,"method":"GET","url_details":{{"path":"/a"}}}},"hash":"{hash}","ecs_task_definition":"api:{revision}"}}"#
            )
        };
        let mut lines = vec![line("aaa", 9); 5];
        lines.extend(vec![line("bbb", 10); 2]);
        lines.push(line("ccc", 8));
        lines.push(r#"{"http":{"status_code":200}}"#.into());
        let reader = || {
            let mut r = Reader::new(Options::default());
            lines.iter().for_each(|l| r.read(l.as_bytes()));
            r
        };
        // No phase: the two highest-traffic revisions, the higher being the canary.
        let (c, t, skipped) = reader().finish(None, None).unwrap();
        assert_eq!(
            (c.by, c.baseline.as_str(), c.canary.as_str()),
            (By::Revision, "9", "10")
        );
        assert_eq!(
            (t.total().baseline.requests, t.total().canary.requests),
            (5, 2)
        );
        assert_eq!((skipped.other_version, skipped.no_version_label), (1, 1));
        // By hash: fewer requests is the canary, unless it is named.
        let (c, _, _) = reader().finish(Some(By::Hash), None).unwrap();
        assert_eq!((c.baseline.as_str(), c.canary.as_str()), ("aaa", "bbb"));
        let (c, _, _) = reader().finish(Some(By::Hash), Some("ccc")).unwrap();
        assert_eq!((c.baseline.as_str(), c.canary.as_str()), ("aaa", "ccc"));
        assert!(reader()
            .finish(Some(By::Phase), None)
            .unwrap_err()
            .0
            .contains("cannot compare by phase"));
        assert!(reader().finish(Some(By::Hash), Some("zzz")).is_err());
    }

    #[test]
    fn operation_keys() {
        assert!(is_operation_key(b"x_apollo_operation_name"));
        assert!(is_operation_key(b"X-APOLLO-OPERATION-NAME"));
        assert!(!is_operation_key(b"x_request_id_long_enough"));
    }

    fn read_all(lines: &[&str]) -> Reader {
        let mut r = Reader::new(Options::default());
        for line in lines {
            r.read(line.as_bytes());
        }
        r
    }

    /// Lines that take the less common ways through the transform: escapes in what the judge
    /// reads, collisions, a `dd` of the log's, nested keys repeated, archives, text logs.
    const ODD_LINES: &[&str] = &[
        r#"{"log":"{\"method\":\"GET\",\"path\":\"/us\\u0065rs/42\",\"response_code\":200,\"duration\":3}","phase":"can\u0061ry"}"#,
        r#"{"log":"{\"method\":\"GET\",\"path\":\"/a\\\\b/7\",\"response_code\":503,\"duration\":1.5}","phase":"stable"}"#,
        r#"{"log":"{\"method\":\"GET\",\"path\":\"/x\",\"response_code\":200,\"status\":\"error\",\"phase\":\"canary\"}","phase":"stable","status":"info"}"#,
        r#"{"log":"{\"method\":\"GET\",\"path\":\"/x\",\"response_code\":200,\"duration\":\"-\"}","duration":7,"hash":"abc"}"#,
        r#"{"log":"{\"method\":\"GET\",\"path\":\"/y\",\"response_code\":200,\"meta\":{\"a\":1,\"a\":2}}","phase":"canary"}"#,
        r#"{"log":"{\"http\":{\"status_code\":500,\"method\":\"GET\",\"url_details\":{\"path\":\"/z/1\"}},\"response_code\":200}","phase":"canary"}"#,
        r#"{"log":"{\"method\":\"POST\",\"path\":\"/graphql\",\"response_code\":200,\"x_apollo_operation_name\":\"Get\\\"User\"}","phase":"canary"}"#,
        r#"{"log":"{\"method\":\"GET\",\"path\":\"/missing/1\",\"response_code\":404}","phase":"canary","time":"2024-06-03T14:00:00Z","date":1717423200}"#,
        r#"{"log":"{\"method\":\"GET\",\"path\":\"/t\",\"response_code\":200,\"dd\":{\"trace_id\":\"-\"},\"trace_id\":\"5\"}","dd":{"trace_id":"9"},"phase":"canary"}"#,
        r#"{"log":"[2022-08-04T23:00:29.383Z] \"GET /ping HTTP/1.1\" 503 UH 0 0 1 - \"-\" \"curl\" \"id\" \"host\" \"-\"\n","phase":"canary"}"#,
        r#"{"log":"{\"method\":\"GET\",\"path\":\"/l\",\"response_code\":200}","_log":{"x":1},"phase":"canary","log2":1}"#,
        r#"{"date":"2024-06-03T14:00:00Z","status":"error","log":"x","attributes":{"phase":"canary","http":{"status_code":502,"method":"GET","url_details":{"path":"/a/1"}}}}"#,
        r#"{"method":"GET","path":"/bare/12","response_code":500,"ecs_task_definition":"api:3","duration":4}"#,
        r#"{"log":"{\"method\":\"GET\",\"path\":\"/g\",\"response_code\":200,\"grpc_status\":\"14\"}","phase":"canary"}"#,
        r#"{"log":"{\"method\":\"GET\",\"response_code\":200}","phase":"canary","ecs_task_definition":"api-canary:\u0034"}"#,
        r#"{"log":"{\"method\":\"GET\",\"path\":\"/a\",\"response_code\":200}","log":"again"}"#,
    ];

    /// Counting from the outline of the transform's output counts as reading the output.
    #[test]
    fn outlined_records_count_as_written_ones() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/input");
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| (p.display().to_string(), std::fs::read(p).unwrap()))
            .collect();
        files.sort();
        files.push(("odd lines".into(), ODD_LINES.join("\n").into_bytes()));
        let routes = Routes::parse("GET /users/{id}\n/missing/{id}").unwrap();
        for (name, text) in &files {
            for routes in [Routes::default(), routes.clone()] {
                let options = || Options {
                    routes: routes.clone(),
                    ..Options::default()
                };
                let (mut outlined, mut written) = (Reader::new(options()), Reader::new(options()));
                for line in text.split(|&b| b == b'\n') {
                    outlined.read(line);
                    written.read_as(line, false);
                }
                assert_eq!(
                    outlined.counter.versions, written.counter.versions,
                    "{name}"
                );
                assert_eq!(outlined.counter.skipped, written.counter.skipped, "{name}");
                assert!(outlined.outlined > 0, "{name}");
            }
        }
    }

    /// A JSON value for a member of a generated record: strings with escapes, numbers,
    /// placeholders, nested objects that repeat a key.
    fn value() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            Just(r#""GET""#.to_owned()),
            Just(r#""/users/42?x=1""#.to_owned()),
            Just(r#""/a\"b/7""#.to_owned()),
            Just(r#""canary""#.to_owned()),
            Just(r#""stable""#.to_owned()),
            Just(r#""${GIT_COMMIT_SHA}""#.to_owned()),
            Just(r#""-""#.to_owned()),
            Just(r#""api-canary:7""#.to_owned()),
            Just(r#""error""#.to_owned()),
            Just(r#""2024-06-03T14:00:00Z""#.to_owned()),
            Just("null".to_owned()),
            Just(r#"{"a":1,"a":2}"#.to_owned()),
            Just(r#"{"trace_id":"-","span_id":"5"}"#.to_owned()),
            (0u32..1200).prop_map(|n| n.to_string()),
            (0u32..100).prop_map(|n| format!("{n}.5")),
        ]
    }

    /// A JSON object of members with keys the transform and the judge look at.
    fn object() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let key = prop_oneof![
            Just("method"),
            Just("path"),
            Just("duration"),
            Just("status"),
            Just("level"),
            Just("phase"),
            Just("hash"),
            Just("ecs_task_definition"),
            Just("time"),
            Just("start_time"),
            Just("x_apollo_operation_name"),
            Just("response_flags"),
            Just("trace_id"),
            Just("request_id"),
            Just("dd"),
            Just("http"),
            Just("_log"),
            Just("other"),
        ];
        proptest::collection::vec((key, value()), 0..10).prop_map(|members| {
            let mut seen = Vec::new();
            let members: Vec<String> = members
                .into_iter()
                .filter(|(k, _)| {
                    let new = !seen.contains(k);
                    seen.push(*k);
                    new
                })
                .map(|(k, v)| format!("\"{k}\":{v}"))
                .collect();
            format!("{{{}}}", members.join(","))
        })
    }

    proptest::proptest! {
        /// Generated FireLens and bare records count the same from the outline as written.
        #[test]
        fn generated_records_count_as_written_ones(
            records in proptest::collection::vec(
                (object(), object(), proptest::bool::ANY, proptest::sample::select(&[200, 404, 429, 503, 0][..])),
                1..8,
            )
        ) {
            let (mut outlined, mut written) =
                (Reader::new(Options::default()), Reader::new(Options::default()));
            for (envelope, log, firelens, code) in &records {
                // An access log: a response code first.
                let log = match log.len() {
                    2 => format!("{{\"response_code\":{code}}}"),
                    _ => format!("{{\"response_code\":{code},{}", &log[1..]),
                };
                let line = match firelens {
                    // The envelope's members, and `log` holding the other object.
                    true => {
                        let log = serde_json::to_string(&log).unwrap();
                        match envelope.len() {
                            2 => format!("{{\"log\":{log}}}"),
                            _ => format!("{},\"log\":{log}}}", &envelope[..envelope.len() - 1]),
                        }
                    }
                    false => log,
                };
                outlined.read(line.as_bytes());
                written.read_as(line.as_bytes(), false);
            }
            proptest::prop_assert_eq!(&outlined.counter.versions, &written.counter.versions);
            proptest::prop_assert_eq!(&outlined.counter.skipped, &written.counter.skipped);
            proptest::prop_assert_eq!(written.outlined, 0);
        }
    }

    #[test]
    fn route_templates_name_the_endpoints_of_every_input_kind() {
        let options = Options {
            routes: Routes::parse("GET /users/{id}").unwrap(),
            ..Options::default()
        };
        let mut r = Reader::new(options);
        // Raw FireLens, bare Envoy, and enriched without `http.endpoint`.
        r.read(br#"{"log":"{\"method\":\"GET\",\"path\":\"/users/42\",\"response_code\":200}","phase":"canary"}"#);
        r.read(br#"{"method":"GET","path":"/users/abc","response_code":200,"phase":"stable"}"#);
        r.read(br#"{"http":{"status_code":200,"method":"GET","url_details":{"path":"/users/x"}},"phase":"stable"}"#);
        let (_, tallies, _) = r.finish(None, None).unwrap();
        let names: Vec<&str> = tallies.iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["GET /users/{id}"]);
    }

    #[test]
    fn every_input_kind() {
        let r = read_all(&[
            // raw FireLens
            r#"{"log":"{\"method\":\"GET\",\"path\":\"/users/42?x=1\",\"response_code\":500,\"duration\":3}","ecs_task_definition":"api:7"}"#,
            // enriched by the filter
            r#"{"ecs_task_definition":"api:8","http":{"status_code":200,"method":"GET","url_details":{"path":"/users/43"}},"duration":2000000,"status":"info"}"#,
            // Datadog archive
            r#"{"date":"2024-06-03T14:00:00.023Z","status":"error","attributes":{"ecs_task_definition":"api:8","http":{"status_code":502,"method":"GET","url_details":{"path":"/users/44"}},"duration":5000000}}"#,
            // bare Envoy, GraphQL operation
            r#"{"method":"POST","path":"/graphql","response_code":200,"x_apollo_operation_name":"GetUser","ecs_task_definition":"api:7"}"#,
            // not an access log; not JSON
            r#"{"log":"Starting server"}"#,
            "{nope",
        ]);
        let (comparison, tallies, skipped) = r.finish(None, None).unwrap();
        assert_eq!(comparison.by, By::Revision);
        assert_eq!(
            (comparison.baseline.as_str(), comparison.canary.as_str()),
            ("7", "8")
        );
        let users = tallies.get("GET /users/{param:int}").unwrap();
        assert_eq!((users.baseline.requests, users.baseline.errors), (1, 1));
        assert_eq!((users.canary.requests, users.canary.errors), (2, 1));
        assert!(tallies.get("POST /graphql (GetUser)").is_some());
        assert_eq!((skipped.unparseable, skipped.no_response_code), (1, 1));
    }
}
