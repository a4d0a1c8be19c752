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
//! `Version::Auto`-style fallback is the caller's: see [`fetch`].
//!
//! ```
//! use envoy_dd::datadog::aggregate::{Query, Window};
//! use envoy_dd::datadog::Version;
//!
//! let query = Query::new("service:api env:prod", Window::since_minutes(30), Version::Phase);
//! let body = query.body(Some("@http.endpoint"), false, None);
//! assert_eq!(body["filter"]["from"], "now-30m");
//! assert_eq!(body["group_by"][1]["facet"], "@http.endpoint");
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};

use super::{Client, Error, Version};

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
const PERCENTILES: [&str; 6] = ["median", "pc75", "pc90", "pc95", "pc99", "max"];

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
    pub version: Version,
    /// The log indexes searched (default: all).
    pub indexes: Vec<String>,
}

impl Query {
    /// A query over every index.
    pub fn new(query: &str, window: Window, version: Version) -> Query {
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
            "facet": self.version.facet(), "limit": MAX_VERSIONS, "missing": MISSING,
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
    /// 50th percentile.
    pub p50: Option<f64>,
    /// 75th.
    pub p75: Option<f64>,
    /// 90th.
    pub p90: Option<f64>,
    /// 95th.
    pub p95: Option<f64>,
    /// 99th.
    pub p99: Option<f64>,
    /// The largest.
    pub max: Option<f64>,
}

/// Requests, errors and latency of one version (overall, or on one endpoint).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tally {
    /// Records.
    pub requests: u64,
    /// Records whose `status` is `error`.
    pub errors: u64,
    /// Their `@duration` percentiles.
    pub latency: Latency,
}

/// Everything the judge needs, per version overall and per endpoint and version.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tallies {
    /// Per version (the value of the version facet; [`MISSING`] for records without one).
    pub versions: BTreeMap<String, Tally>,
    /// Per `http.endpoint` ([`MISSING`] for records without one), then per version.
    pub endpoints: BTreeMap<String, BTreeMap<String, Tally>>,
    /// Datadog's warnings (partial results) and ours (limits reached).
    pub warnings: Vec<String>,
}

/// Counts requests, errors and latency for `query` with three aggregate queries (more when
/// there are over 1,000 endpoints: one per extra page, at most [`MAX_PAGES`] per query).
pub fn fetch(client: &Client, query: &Query) -> Result<Tallies, Error> {
    let mut tallies = Tallies::default();
    for bucket in pages(client, query, None, false, &mut tallies.warnings)? {
        let version = bucket.key(query.version.facet());
        let tally = tallies.versions.entry(version).or_default();
        tally.requests = bucket.count()?;
        tally.latency = bucket.latency();
    }
    let endpoint = "@http.endpoint";
    for bucket in pages(client, query, Some(endpoint), false, &mut tallies.warnings)? {
        let tally = tallies
            .endpoints
            .entry(bucket.key(endpoint))
            .or_default()
            .entry(bucket.key(query.version.facet()))
            .or_default();
        tally.requests = bucket.count()?;
        tally.latency = bucket.latency();
    }
    for bucket in pages(client, query, Some(endpoint), true, &mut tallies.warnings)? {
        let errors = bucket.count()?;
        let version = bucket.key(query.version.facet());
        let tally = tallies
            .endpoints
            .entry(bucket.key(endpoint))
            .or_default()
            .entry(version.clone())
            .or_default();
        tally.errors = errors;
        tallies.versions.entry(version).or_default().errors += errors;
    }
    if tallies.endpoints.len() >= MAX_ENDPOINTS as usize * MAX_PAGES as usize {
        tallies.warnings.push(format!(
            "over {} endpoints: only the busiest were counted",
            MAX_ENDPOINTS * MAX_PAGES
        ));
    }
    Ok(tallies)
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
            p50: p(0),
            p75: p(1),
            p90: p(2),
            p95: p(3),
            p99: p(4),
            max: p(5),
        }
    }
}
