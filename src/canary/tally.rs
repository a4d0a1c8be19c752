//! What the judge reads: per endpoint, for each of the two versions, how many requests, how
//! many failed, and how long they took.
//!
//! This is the seam between where the numbers come from (log records, [`super::input`]; an
//! aggregate API) and the judge ([`super::judge()`]): anything that can count requests and
//! errors per version and endpoint, and put their durations in a [`Sketch`] (or a histogram,
//! with [`Sketch::add_n`]), can be judged.

use std::collections::BTreeMap;

use super::Sketch;

/// One of the two versions being compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// The version in production, that the canary is compared with (`stable`).
    Baseline,
    /// The new version.
    Canary,
}

/// The requests of one version on one endpoint.
///
/// * `requests`: every request with a response (errors included);
/// * `errors`: the requests Datadog gives the `error` status: a 5xx response or an upstream
///   failure flag (see the README's status rule);
/// * `latency`: request durations in **nanoseconds** (Datadog's `duration` unit). It may hold
///   fewer values than `requests` when some records had no duration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tally {
    /// Requests answered.
    pub requests: u64,
    /// Requests that failed (`status: error`).
    pub errors: u64,
    /// Their durations, in nanoseconds.
    pub latency: Sketch,
}

impl Tally {
    /// Counts one request: whether it failed, and its duration in nanoseconds if known.
    pub fn add(&mut self, error: bool, duration_ns: Option<f64>) {
        self.requests += 1;
        self.errors += u64::from(error);
        if let Some(ns) = duration_ns {
            self.latency.add(ns);
        }
    }

    /// Adds every request of `other`.
    pub fn merge(&mut self, other: &Tally) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.latency.merge(&other.latency);
    }

    /// The share of requests that failed (0 when there were none).
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }
}

/// One endpoint's requests, for each version.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pair {
    /// The version in production.
    pub baseline: Tally,
    /// The new version.
    pub canary: Tally,
}

impl Pair {
    /// The tally of one version.
    pub fn side(&self, side: Side) -> &Tally {
        match side {
            Side::Baseline => &self.baseline,
            Side::Canary => &self.canary,
        }
    }

    /// The tally of one version, to add to.
    pub fn side_mut(&mut self, side: Side) -> &mut Tally {
        match side {
            Side::Baseline => &mut self.baseline,
            Side::Canary => &mut self.canary,
        }
    }

    /// Adds both versions' requests of `other`.
    pub fn merge(&mut self, other: &Pair) {
        self.baseline.merge(&other.baseline);
        self.canary.merge(&other.canary);
    }
}

/// The judge's input: a [`Pair`] of tallies per endpoint.
///
/// Endpoints are names such as `GET /users/{param:int}` or `POST /graphql (GetUser)`; they
/// are kept in name order. Memory grows with the number of endpoints, never with the number
/// of requests.
///
/// ```
/// use envoy_dd::canary::{Side, Tallies};
///
/// let mut tallies = Tallies::new();
/// tallies.add(Side::Baseline, "GET /users/{param:int}", false, Some(12e6));
/// tallies.add(Side::Canary, "GET /users/{param:int}", true, Some(30e6));
/// let pair = tallies.get("GET /users/{param:int}").unwrap();
/// assert_eq!((pair.canary.requests, pair.canary.errors), (1, 1));
/// assert_eq!(tallies.total().baseline.requests, 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tallies {
    endpoints: BTreeMap<String, Pair>,
}

impl Tallies {
    /// No requests yet.
    pub fn new() -> Self {
        Tallies::default()
    }

    /// Counts one request of `side` on `endpoint` (see [`Tally::add`]).
    pub fn add(&mut self, side: Side, endpoint: &str, error: bool, duration_ns: Option<f64>) {
        self.pair_mut(endpoint)
            .side_mut(side)
            .add(error, duration_ns);
    }

    /// The tallies of `endpoint`, created empty if it has none yet: the way to load counts
    /// that were aggregated elsewhere.
    pub fn pair_mut(&mut self, endpoint: &str) -> &mut Pair {
        // Look up before inserting: a record's endpoint is almost always known already, and
        // `entry` would need an owned key each time.
        if !self.endpoints.contains_key(endpoint) {
            self.endpoints.insert(endpoint.to_owned(), Pair::default());
        }
        self.endpoints.get_mut(endpoint).expect("inserted above")
    }

    /// The tallies of `endpoint`, if it had requests.
    pub fn get(&self, endpoint: &str) -> Option<&Pair> {
        self.endpoints.get(endpoint)
    }

    /// Every endpoint and its tallies, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Pair)> {
        self.endpoints.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// How many endpoints have requests.
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// No endpoint has requests.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// Every endpoint's requests together: the service as a whole.
    pub fn total(&self) -> Pair {
        let mut total = Pair::default();
        for pair in self.endpoints.values() {
            total.merge(pair);
        }
        total
    }

    /// Adds every request of `other`.
    pub fn merge(&mut self, other: &Tallies) {
        for (endpoint, pair) in other.iter() {
            self.pair_mut(endpoint).merge(pair);
        }
    }
}
