//! The canary judge's counts from Datadog's Logs Aggregate API
//! (`POST /api/v2/logs/analytics/aggregate`), instead of from files.
//!
//! Three queries over the same window and log query, each grouped by version:
//!
//! 1. overall: requests and `@duration` percentiles per version (percentiles cannot be merged
//!    from the endpoints', so they are asked for);
//! 2. per endpoint: requests and `@duration` percentiles per version and `@http.endpoint`;
//! 3. per endpoint: errors (`status:error`) per version and `@http.endpoint`.
//!
//! Each asks for up to 10 versions × 1,000 endpoints (Datadog's limit is 10,000 buckets per
//! query) and follows the `meta.page.after` cursor while there are more, so a service with
//! 200 endpoints takes 3 calls, and one with more endpoints 3 plus one per extra page.
//! [`fetch_compared`] chooses the versions as the records' reader does (phase, else revision,
//! else hash), one more call for each label passed over.
//!
//! ```
//! use envoy_dd::datadog::aggregate::{Query, Window};
//! use envoy_dd::datadog::By;
//!
//! let query = Query::new("service:api env:prod", Window::since_minutes(30), By::Phase);
//! let body = query.body(Some("@http.endpoint"), false, None);
//! assert_eq!(body["filter"]["from"], "now-30m");
//! assert_eq!(body["group_by"][1]["facet"], "@http.endpoint");
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};

use super::{facet, label, By, Client, Error};
use crate::canary::input::{compare, Comparison, NoComparison, Skipped};
use crate::canary::{self, Sketch};

/// The API path.
pub const PATH: &str = "/api/v2/logs/analytics/aggregate";

/// The most versions and endpoints one query asks for: their product is Datadog's limit of
/// 10,000 buckets.
pub const MAX_VERSIONS: u32 = 10;
/// See [`MAX_VERSIONS`].
pub const MAX_ENDPOINTS: u32 = 1000;
/// The most pages followed per query, so that the number of calls is bounded.
pub const MAX_PAGES: u32 = 20;

/// The value Datadog is asked to put in a bucket for records without the facet.
pub const MISSING: &str = "(missing)";

/// The percentiles asked for, in the order of [`Latency`]'s fields.
const PERCENTILES: [&str; 8] = [
    "min", "median", "pc75", "pc90", "pc95", "pc98", "pc99", "max",
];

/// A time window, in Datadog's date math (`now-30m`) or timestamps (ISO 8601, milliseconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// The start.
    pub from: String,
    /// The end.
    pub to: String,
}

impl Window {
    /// The last `minutes` minutes.
    pub fn since_minutes(minutes: u64) -> Window {
        Window {
            from: format!("now-{minutes}m"),
            to: "now".to_owned(),
        }
    }
}

/// What to count.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    /// The log search query that selects the service (`service:api env:prod`).
    pub query: String,
    /// The window.
    pub window: Window,
    /// What tells versions apart.
    pub version: By,
    /// The log indexes searched (default: all).
    pub indexes: Vec<String>,
}

impl Query {
    /// A query over every index.
    pub fn new(query: &str, window: Window, version: By) -> Query {
        Query {
            query: query.to_owned(),
            window,
            version,
            indexes: Vec::new(),
        }
    }

    /// The request body: grouped by version and, if given, `by`; counting errors only if
    /// `errors`, else requests and `@duration` percentiles; from `cursor` on.
    pub fn body(&self, by: Option<&str>, errors: bool, cursor: Option<&str>) -> Value {
        let mut query = if self.query.trim().is_empty() {
            "*".to_owned()
        } else {
            self.query.clone()
        };
        if errors {
            query = format!("({query}) status:error");
        }
        let mut filter = json!({ "from": self.window.from, "to": self.window.to, "query": query });
        if !self.indexes.is_empty() {
            filter["indexes"] = json!(self.indexes);
        }
        let mut compute = vec![json!({ "aggregation": "count", "type": "total" })];
        if !errors {
            compute.extend(
                PERCENTILES
                    .iter()
                    .map(|p| json!({ "aggregation": p, "metric": "@duration", "type": "total" })),
            );
        }
        let mut group_by = vec![json!({
            "facet": facet(self.version), "limit": MAX_VERSIONS, "missing": MISSING,
        })];
        if let Some(facet) = by {
            group_by.push(json!({ "facet": facet, "limit": MAX_ENDPOINTS, "missing": MISSING }));
        }
        let mut body = json!({ "compute": compute, "filter": filter, "group_by": group_by });
        if let Some(cursor) = cursor {
            body["page"] = json!({ "cursor": cursor });
        }
        body
    }
}

/// `@duration` percentiles, in nanoseconds (the unit envoy-dd writes), as Datadog computes
/// them; `None` when no record of the group has a duration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Latency {
    /// The smallest.
    pub min: Option<f64>,
    /// 50th percentile.
    pub p50: Option<f64>,
    /// 75th.
    pub p75: Option<f64>,
    /// 90th.
    pub p90: Option<f64>,
    /// 95th.
    pub p95: Option<f64>,
    /// 98th.
    pub p98: Option<f64>,
    /// 99th.
    pub p99: Option<f64>,
    /// The largest.
    pub max: Option<f64>,
}

/// Requests, errors and latency of one version (overall, or on one endpoint).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Aggregate {
    /// Records.
    pub requests: u64,
    /// Records whose `status` is `error`.
    pub errors: u64,
    /// Their `@duration` percentiles.
    pub latency: Latency,
}

/// What Datadog counted, per version overall and per endpoint and version: what the judge
/// needs, before the versions compared are chosen ([`Aggregates::to_judge`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Aggregates {
    /// Per version (the value of the version facet; [`MISSING`] for records without one).
    pub versions: BTreeMap<String, Aggregate>,
    /// Per `http.endpoint` ([`MISSING`] for records without one), then per version.
    pub endpoints: BTreeMap<String, BTreeMap<String, Aggregate>>,
    /// Datadog's warnings (partial results) and ours (limits reached).
    pub warnings: Vec<String>,
}

/// Counts requests, errors and latency for `query` with three aggregate queries (more when
/// there are over 1,000 endpoints: one per extra page, at most [`MAX_PAGES`] per query).
pub fn fetch(client: &Client, query: &Query) -> Result<Aggregates, Error> {
    let mut found = Aggregates::default();
    fetch_versions(client, query, &mut found)?;
    fetch_endpoints(client, query, &mut found)?;
    Ok(found)
}

/// Like [`fetch`], and the two versions to compare: by `by`, or else the first of phase,
/// revision and hash under which Datadog has two versions (one more call for each passed
/// over), as the records' reader chooses. Without two versions, the counts per version of the
/// last label tried and why there is no comparison.
pub fn fetch_compared(
    client: &Client,
    query: &Query,
    by: Option<By>,
    canary: Option<&str>,
) -> Result<(Aggregates, Result<Comparison, NoComparison>), Error> {
    let choices = match by {
        Some(by) => vec![by],
        None => vec![By::Phase, By::Revision, By::Hash],
    };
    let mut query = query.clone();
    let mut found = Aggregates::default();
    let mut failures = Vec::new();
    for &by in &choices {
        query.version = by;
        found = Aggregates::default();
        fetch_versions(client, &query, &mut found)?;
        match found.compare(by, canary, choices.len() > 1) {
            Ok(comparison) => {
                fetch_endpoints(client, &query, &mut found)?;
                return Ok((found, Ok(comparison)));
            }
            Err(why) => failures.push(why.0),
        }
    }
    let why = match failures.as_slice() {
        [one] => one.clone(),
        _ => format!("no two versions to compare: {}", failures.join("; ")),
    };
    Ok((found, Err(NoComparison(why))))
}

/// Requests and latency per version.
fn fetch_versions(client: &Client, query: &Query, found: &mut Aggregates) -> Result<(), Error> {
    for bucket in pages(client, query, None, false, &mut found.warnings)? {
        let version = bucket.key(facet(query.version));
        let counts = found.versions.entry(version).or_default();
        counts.requests = bucket.count()?;
        counts.latency = bucket.latency();
    }
    Ok(())
}

/// Requests, latency and errors per endpoint and version; errors per version.
fn fetch_endpoints(client: &Client, query: &Query, found: &mut Aggregates) -> Result<(), Error> {
    let endpoint = "@http.endpoint";
    for bucket in pages(client, query, Some(endpoint), false, &mut found.warnings)? {
        let counts = found
            .endpoints
            .entry(bucket.key(endpoint))
            .or_default()
            .entry(bucket.key(facet(query.version)))
            .or_default();
        counts.requests = bucket.count()?;
        counts.latency = bucket.latency();
    }
    for bucket in pages(client, query, Some(endpoint), true, &mut found.warnings)? {
        let errors = bucket.count()?;
        let version = bucket.key(facet(query.version));
        let counts = found
            .endpoints
            .entry(bucket.key(endpoint))
            .or_default()
            .entry(version.clone())
            .or_default();
        counts.errors = errors;
        found.versions.entry(version).or_default().errors += errors;
    }
    if found.endpoints.len() >= MAX_ENDPOINTS as usize * MAX_PAGES as usize {
        found.warnings.push(format!(
            "over {} endpoints: only the busiest were counted",
            MAX_ENDPOINTS * MAX_PAGES
        ));
    }
    Ok(())
}

/// All the buckets of one query, following the cursor.
fn pages(
    client: &Client,
    query: &Query,
    by: Option<&str>,
    errors: bool,
    warnings: &mut Vec<String>,
) -> Result<Vec<Bucket>, Error> {
    let mut buckets = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 1..=MAX_PAGES {
        let answer = client.post(PATH, &query.body(by, errors, cursor.as_deref()))?;
        let answer: Response = serde_json::from_value(answer)
            .map_err(|e| Error::BadAnswer(format!("not an aggregate response: {e}")))?;
        let meta = answer.meta.unwrap_or_default();
        if meta.status.as_deref() == Some("timeout") {
            return Err(Error::BadAnswer(
                "Datadog timed out computing the aggregate (partial results); narrow the window or the query"
                    .into(),
            ));
        }
        for warning in meta.warnings.unwrap_or_default() {
            let text = [warning.title, warning.detail]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ");
            if !warnings.contains(&text) {
                warnings.push(text);
            }
        }
        buckets.extend(answer.data.and_then(|d| d.buckets).unwrap_or_default());
        cursor = meta.page.and_then(|p| p.after).filter(|c| !c.is_empty());
        if cursor.is_none() {
            return Ok(buckets);
        }
        if page == MAX_PAGES {
            warnings.push(format!(
                "stopped after {MAX_PAGES} pages of one query: results are partial"
            ));
        }
    }
    Ok(buckets)
}

/// `LogsAggregateResponse` (only the fields read).
#[derive(Deserialize)]
struct Response {
    data: Option<ResponseData>,
    meta: Option<Meta>,
}

#[derive(Deserialize)]
struct ResponseData {
    buckets: Option<Vec<Bucket>>,
}

#[derive(Deserialize, Default)]
struct Meta {
    page: Option<MetaPage>,
    status: Option<String>,
    warnings: Option<Vec<Warning>>,
}

#[derive(Deserialize)]
struct MetaPage {
    after: Option<String>,
}

#[derive(Deserialize)]
struct Warning {
    title: Option<String>,
    detail: Option<String>,
}

/// `LogsAggregateBucket`: the group's facet values (`by`) and the computes (`c0`, `c1`, ...,
/// in the order asked for).
#[derive(Deserialize)]
struct Bucket {
    #[serde(default)]
    by: BTreeMap<String, Value>,
    #[serde(default)]
    computes: BTreeMap<String, Value>,
}

impl Bucket {
    fn key(&self, facet: &str) -> String {
        match self.by.get(facet) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => MISSING.to_owned(),
            Some(other) => other.to_string(),
        }
    }

    fn number(&self, index: usize) -> Option<f64> {
        match self.computes.get(&format!("c{index}"))? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .filter(|v| v.is_finite())
    }

    fn count(&self) -> Result<u64, Error> {
        match self.number(0) {
            Some(n) if n >= 0.0 && n.fract() == 0.0 => Ok(n as u64),
            _ => Err(Error::BadAnswer(format!(
                "a bucket without a count: {:?}",
                self.computes
            ))),
        }
    }

    fn latency(&self) -> Latency {
        let p = |i: usize| self.number(i + 1);
        Latency {
            min: p(0),
            p50: p(1),
            p75: p(2),
            p90: p(3),
            p95: p(4),
            p98: p(5),
            p99: p(6),
            max: p(7),
        }
    }
}

impl Aggregates {
    /// Requests per label of `by`, as the records' reader counts them (a task definition is
    /// its revision); records without one are not listed.
    pub fn labels(&self, by: By) -> Vec<(String, u64)> {
        let mut labels: BTreeMap<String, u64> = BTreeMap::new();
        for (value, counts) in &self.versions {
            if value == MISSING || counts.requests == 0 {
                continue;
            }
            if let Some(label) = label(by, value) {
                *labels.entry(label).or_default() += counts.requests;
            }
        }
        labels.into_iter().collect()
    }

    /// The two versions to compare by `by` (see [`compare`]); `canary` names the canary's
    /// hash or revision.
    pub fn compare(
        &self,
        by: By,
        canary: Option<&str>,
        automatic: bool,
    ) -> Result<Comparison, NoComparison> {
        compare(by, self.labels(by), canary, automatic)
    }

    /// The judge's input, with latency sketches rebuilt from Datadog's percentiles (see
    /// [`sketch`]), and the requests left out: without a version label, or of another version.
    /// Requests without an endpoint are judged as the endpoint [`MISSING`].
    pub fn to_judge(&self, comparison: &Comparison) -> (canary::Tallies, Skipped) {
        let mut judge = canary::Tallies::new();
        let mut skipped = Skipped::default();
        for (endpoint, versions) in &self.endpoints {
            for (value, counts) in versions {
                let side = match (value != MISSING)
                    .then(|| label(comparison.by, value))
                    .flatten()
                {
                    None => {
                        skipped.no_version_label += counts.requests;
                        continue;
                    }
                    Some(l) if l == comparison.baseline => canary::Side::Baseline,
                    Some(l) if l == comparison.canary => canary::Side::Canary,
                    Some(_) => {
                        skipped.other_version += counts.requests;
                        continue;
                    }
                };
                let into = judge.pair_mut(endpoint).side_mut(side);
                into.requests += counts.requests;
                into.errors += counts.errors;
                into.latency
                    .merge(&sketch(counts.requests, &counts.latency));
            }
        }
        (judge, skipped)
    }
}

/// Points per interval between two known quantiles when a sketch is rebuilt.
const POINTS: u32 = 16;

/// A sketch of `count` durations whose quantiles are Datadog's: the counts between two known
/// quantiles (min, p50, p75, p90, p95, p98, p99, max) are spread evenly in rank over that interval,
/// log-uniformly in value (durations are closer to log-normal than to uniform). Its quantiles
/// at those ranks are Datadog's to within the sketch's accuracy; between them it is an
/// approximation, which the rank test and the latency effect then use.
///
/// ```
/// use envoy_dd::datadog::aggregate::{sketch, Latency};
///
/// let latency = Latency { min: Some(1e6), p50: Some(10e6), p75: Some(12e6), p90: Some(20e6),
///     p95: Some(30e6), p98: Some(50e6), p99: Some(80e6), max: Some(200e6) };
/// let sketch = sketch(10_000, &latency);
/// assert_eq!(sketch.count(), 10_000);
/// assert!((sketch.quantile(0.95).unwrap() / 30e6 - 1.0).abs() < 0.03);
/// ```
pub fn sketch(count: u64, latency: &Latency) -> Sketch {
    let knots: Vec<(f64, f64)> = [
        (0.0, latency.min),
        (0.5, latency.p50),
        (0.75, latency.p75),
        (0.9, latency.p90),
        (0.95, latency.p95),
        (0.98, latency.p98),
        (0.99, latency.p99),
        (1.0, latency.max),
    ]
    .into_iter()
    .filter_map(|(q, v)| Some((q, v?)))
    .collect();
    let mut sketch = Sketch::new();
    if count == 0 || knots.is_empty() {
        return sketch;
    }
    if knots.len() == 1 {
        sketch.add_n(knots[0].1, count);
        return sketch;
    }
    // Quantiles are not decreasing; make sure of it, whatever the answer said.
    let mut placed = 0u64;
    let mut previous = knots[0].1;
    let (first_q, last_q) = (knots[0].0, knots[knots.len() - 1].0);
    for pair in knots.windows(2) {
        let ((qa, va), (qb, vb)) = (pair[0], pair[1]);
        let (va, vb) = (va.max(previous), vb.max(va).max(previous));
        previous = vb;
        for k in 0..POINTS {
            // Rank of the sub-interval's middle, rescaled to the known range of ranks.
            let t = (f64::from(k) + 0.5) / f64::from(POINTS);
            let q = qa + (qb - qa) * (f64::from(k) + 1.0) / f64::from(POINTS);
            let share = (q - first_q) / (last_q - first_q);
            let until = (share * count as f64).round() as u64;
            let n = until.saturating_sub(placed);
            placed += n;
            let value = if va > 0.0 {
                va * (vb / va).powf(t)
            } else {
                va + (vb - va) * t
            };
            sketch.add_n(value, n);
        }
    }
    if placed < count {
        sketch.add_n(previous, count - placed);
    }
    sketch
}
