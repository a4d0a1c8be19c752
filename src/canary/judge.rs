//! The verdict: for each endpoint and for the service as a whole, is the canary worse than the
//! baseline by more than is worth failing for, is it not, or is there too little traffic to say?
//!
//! * **Errors**: Fisher's exact test, one-sided, on the counts; the canary fails only if the
//!   test is significant after the correction for many tests *and* its error rate is above
//!   what is allowed: `max(baseline + min_error_increase, baseline × min_error_ratio)`.
//! * **Latency**: the Mann–Whitney U test, one-sided, on the two duration sketches; the canary
//!   fails only if the test is significant *and* its latency at `latency_quantile` is above
//!   `max(baseline + min_latency_increase, baseline × min_latency_ratio)`.
//! * **Correction**: every test of every endpoint and of the whole is one family, adjusted by
//!   Holm (default) or Benjamini–Hochberg, so that a release identical to the baseline fails
//!   with probability at most `alpha`, however many endpoints there are.
//! * **Too little data**: an endpoint whose canary requests are too few for the error test
//!   to show the allowed rate, or for the latency test to show the allowed latency, with
//!   probability `power` (at level `alpha` divided by the number of tests) is inconclusive,
//!   with the number of requests that would do. For latency the effect is the baseline's
//!   durations scaled so that their quantile is the allowed latency, and the number is
//!   Noether's approximation for the Mann–Whitney test ([`stats::rank_requests_needed`]).
//!
//! The service's verdict is `fail` if any endpoint or the whole fails, else `inconclusive` if
//! the whole is, else `pass`.

use serde::Serialize;

use super::stats::{self, MannWhitney};
use super::{Pair, Sketch, Tallies, Tally};

/// How the judge decides. The defaults suit request/response services.
///
/// ```
/// let settings = envoy_dd::canary::Settings::default();
/// assert_eq!(settings.alpha, 0.05);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Settings {
    /// The chance that a release identical to the baseline fails (default 0.05).
    pub alpha: f64,
    /// How p-values are adjusted for the number of tests.
    pub correction: Correction,
    /// The smallest increase of the error rate worth failing for, absolute (default 0.01,
    /// one percentage point).
    pub min_error_increase: f64,
    /// The smallest ratio of the canary's error rate to the baseline's worth failing for
    /// (default 1.5).
    pub min_error_ratio: f64,
    /// The latency quantile compared (default 0.95).
    pub latency_quantile: f64,
    /// The smallest latency increase at that quantile worth failing for, in milliseconds
    /// (default 5).
    pub min_latency_increase_ms: f64,
    /// The smallest ratio of the canary's latency at that quantile to the baseline's worth
    /// failing for (default 1.2).
    pub min_latency_ratio: f64,
    /// The chance of catching an error rate at the allowed limit that an endpoint needs to be
    /// conclusive (default 0.8).
    pub power: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            alpha: 0.05,
            correction: Correction::Holm,
            min_error_increase: 0.01,
            min_error_ratio: 1.5,
            latency_quantile: 0.95,
            min_latency_increase_ms: 5.0,
            min_latency_ratio: 1.2,
            power: 0.8,
        }
    }
}

/// The adjustment of p-values for many tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Correction {
    /// Holm's step-down: the chance of any false failure stays at `alpha`.
    Holm,
    /// Benjamini–Hochberg: the share of false failures among failures stays at `alpha`
    /// (and, when nothing changed, the chance of any failure).
    BenjaminiHochberg,
}

/// A verdict, of an endpoint or of the release.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The canary is worse than the baseline by more than the allowed margin.
    Fail,
    /// Too few requests to tell.
    Inconclusive,
    /// The canary is not worse by more than the allowed margin, and there were enough
    /// requests to see it.
    Pass,
}

impl Verdict {
    /// `pass`, `fail` or `inconclusive`.
    pub const fn name(self) -> &'static str {
        match self {
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Pass => "pass",
        }
    }
}

/// What the judge found.
#[derive(Clone, Debug, Serialize)]
pub struct Judgement {
    /// The release's verdict.
    pub verdict: Verdict,
    /// Why, in one line.
    pub summary: String,
    /// Every endpoint together.
    pub overall: Assessment,
    /// Each endpoint, worst first: failures (smallest p-value first), then inconclusive ones
    /// (most requests missing first), then passes.
    pub endpoints: Vec<Assessment>,
    /// How many tests the correction covered.
    pub tests: usize,
    /// The settings used.
    pub settings: Settings,
}

/// The verdict on one endpoint (or on all of them, [`Judgement::overall`]).
#[derive(Clone, Debug, Serialize)]
pub struct Assessment {
    /// The endpoint (`(all endpoints)` for the whole).
    pub endpoint: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// The baseline's requests.
    pub baseline: Counts,
    /// The canary's requests.
    pub canary: Counts,
    /// The error-rate test.
    pub errors: ErrorTest,
    /// The latency test, when both versions have durations.
    pub latency: Option<LatencyTest>,
    /// The verdict's reasons, in words.
    pub reasons: Vec<String>,
}

/// One version's requests on one endpoint.
#[derive(Clone, Debug, Serialize)]
pub struct Counts {
    /// Requests answered.
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// `errors / requests` (0 without requests).
    pub error_rate: f64,
    /// Latency quantiles in milliseconds (within 1 %), when there are durations.
    pub latency_ms: Option<Quantiles>,
}

/// Latency quantiles, in milliseconds.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Quantiles {
    /// The median.
    pub p50: f64,
    /// The 95th percentile.
    pub p95: f64,
    /// The 99th percentile.
    pub p99: f64,
}

/// Fisher's exact test of the canary's error rate against the baseline's.
#[derive(Clone, Debug, Serialize)]
pub struct ErrorTest {
    /// The one-sided p-value.
    pub p: f64,
    /// The p-value adjusted for the number of tests.
    pub p_adjusted: f64,
    /// The highest canary error rate that passes.
    pub allowed_rate: f64,
    /// The canary requests the test needs to show a rate above `allowed_rate`; `null` when
    /// no number would do (the baseline has too few requests itself).
    pub requests_needed: Option<u64>,
    /// The canary's rate is above the allowed one and the adjusted p-value below `alpha`.
    pub failed: bool,
}

/// The Mann–Whitney U test of the canary's durations against the baseline's.
#[derive(Clone, Debug, Serialize)]
pub struct LatencyTest {
    /// The quantile compared.
    pub quantile: f64,
    /// The baseline's latency at that quantile, in milliseconds.
    pub baseline_ms: f64,
    /// The canary's latency at that quantile, in milliseconds.
    pub canary_ms: f64,
    /// The highest canary latency at that quantile that passes, in milliseconds.
    pub allowed_ms: f64,
    /// U of the canary's durations.
    pub u: f64,
    /// The one-sided p-value.
    pub p: f64,
    /// The p-value adjusted for the number of tests.
    pub p_adjusted: f64,
    /// The canary requests with a duration the test needs to show a latency at `allowed_ms`;
    /// `null` when no number would do (the baseline has too few durations itself).
    pub requests_needed: Option<u64>,
    /// The canary is slower than allowed and the adjusted p-value below `alpha`.
    pub failed: bool,
}

/// The name of the row of every endpoint together.
pub const OVERALL: &str = "(all endpoints)";

/// Judges a canary on its tallies.
///
/// ```
/// use envoy_dd::canary::{judge, Settings, Side, Tallies, Verdict};
///
/// let mut tallies = Tallies::new();
/// for i in 0..20_000u64 {
///     let error = i % 200 == 0;
///     tallies.add(Side::Baseline, "GET /users/{param:int}", error, Some(12e6));
///     if i % 10 == 0 {
///         tallies.add(Side::Canary, "GET /users/{param:int}", i % 20 == 0, Some(12e6));
///     }
/// }
/// let judgement = judge(&tallies, &Settings::default());
/// assert_eq!(judgement.verdict, Verdict::Fail);
/// assert_eq!(judgement.endpoints[0].endpoint, "GET /users/{param:int}");
/// ```
pub fn judge(tallies: &Tallies, settings: &Settings) -> Judgement {
    let total = tallies.total();
    let mut rows: Vec<Row<'_>> = Vec::with_capacity(tallies.len() + 1);
    rows.push(Row::new(OVERALL, &total, &total.baseline));
    for (name, pair) in tallies.iter() {
        rows.push(Row::new(name, pair, &total.baseline));
    }
    // One family: every row's error test, and its latency test where there is one.
    let mut p = Vec::with_capacity(rows.len() * 2);
    for row in &rows {
        p.push(row.p_errors);
        p.extend(row.mann_whitney.map(|m| m.p));
    }
    let adjusted = match settings.correction {
        Correction::Holm => stats::holm(&p),
        Correction::BenjaminiHochberg => stats::benjamini_hochberg(&p),
    };
    let tests = p.len();
    // The power calculation's level: the strictest a single test meets (Bonferroni).
    let level = settings.alpha / tests.max(1) as f64;
    let z = stats::normal_isf(level) + stats::normal_isf(1.0 - settings.power);
    let mut next = adjusted.into_iter();
    let mut assessed: Vec<Assessment> = rows
        .iter()
        .map(|row| {
            let p_errors = next.next().unwrap_or(1.0);
            let p_latency = row.mann_whitney.map(|_| next.next().unwrap_or(1.0));
            row.assess(settings, z, p_errors, p_latency)
        })
        .collect();
    let overall = assessed.remove(0);
    assessed.sort_by(|a, b| {
        a.rank()
            .total_cmp(&b.rank())
            .then_with(|| a.endpoint.cmp(&b.endpoint))
    });
    let failed: Vec<&str> = core::iter::once(&overall)
        .chain(&assessed)
        .filter(|a| a.verdict == Verdict::Fail)
        .map(|a| a.endpoint.as_str())
        .collect();
    let (verdict, summary) = if !failed.is_empty() {
        let names = failed
            .iter()
            .take(5)
            .copied()
            .collect::<Vec<_>>()
            .join(", ");
        let more = failed.len().saturating_sub(5);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        (
            Verdict::Fail,
            format!("the canary is worse on {names}{more}"),
        )
    } else if overall.verdict == Verdict::Inconclusive {
        (
            Verdict::Inconclusive,
            format!("too little canary traffic: {}", overall.reasons.join("; ")),
        )
    } else {
        let unsure = assessed
            .iter()
            .filter(|a| a.verdict == Verdict::Inconclusive)
            .count();
        let note = if unsure > 0 {
            format!(" ({unsure} endpoints with too few requests to judge alone)")
        } else {
            String::new()
        };
        (
            Verdict::Pass,
            format!("no endpoint is worse than allowed{note}"),
        )
    };
    Judgement {
        verdict,
        summary,
        overall,
        endpoints: assessed,
        tests,
        settings: settings.clone(),
    }
}

/// One row's tests before the correction.
struct Row<'a> {
    name: &'a str,
    pair: &'a Pair,
    /// The baseline the error rate is compared with: the endpoint's own, or the whole
    /// baseline's for an endpoint only the canary has.
    baseline: &'a Tally,
    p_errors: f64,
    mann_whitney: Option<MannWhitney>,
}

impl<'a> Row<'a> {
    fn new(name: &'a str, pair: &'a Pair, all_baseline: &'a Tally) -> Self {
        let baseline = if pair.baseline.requests > 0 {
            &pair.baseline
        } else {
            all_baseline
        };
        let (c, b) = (&pair.canary, baseline);
        let p_errors = if c.requests > 0 && b.requests > 0 {
            stats::fisher_greater(
                c.errors,
                c.requests - c.errors,
                b.errors,
                b.requests - b.errors,
            )
        } else {
            1.0
        };
        let mann_whitney =
            stats::mann_whitney_greater(aligned_buckets(&c.latency, &pair.baseline.latency));
        Row {
            name,
            pair,
            baseline,
            p_errors,
            mann_whitney,
        }
    }

    /// The verdict, with `z` the power calculation's `z_level + z_power`.
    fn assess(&self, s: &Settings, z: f64, p_errors: f64, p_latency: Option<f64>) -> Assessment {
        let (c, b) = (&self.pair.canary, self.baseline);
        let base_rate = b.error_rate();
        let allowed_rate = (base_rate + s.min_error_increase)
            .max(base_rate * s.min_error_ratio)
            .min(1.0);
        let requests_needed = stats::requests_needed_at(base_rate, allowed_rate, b.requests, z);
        let errors = ErrorTest {
            p: self.p_errors,
            p_adjusted: p_errors,
            allowed_rate,
            requests_needed,
            failed: p_errors < s.alpha && c.error_rate() > allowed_rate,
        };
        let latency = self
            .mann_whitney
            .zip(p_latency)
            .and_then(|(m, p_adjusted)| {
                let q = s.latency_quantile;
                let baseline_ms = self.pair.baseline.latency.quantile(q)? / 1e6;
                let canary_ms = c.latency.quantile(q)? / 1e6;
                let allowed_ms = (baseline_ms + s.min_latency_increase_ms)
                    .max(baseline_ms * s.min_latency_ratio);
                Some(LatencyTest {
                    quantile: q,
                    baseline_ms,
                    canary_ms,
                    allowed_ms,
                    u: m.u,
                    p: m.p,
                    p_adjusted,
                    requests_needed: latency_requests_needed(
                        &self.pair.baseline.latency,
                        allowed_ms / baseline_ms,
                        z,
                    ),
                    failed: p_adjusted < s.alpha && canary_ms > allowed_ms,
                })
            });
        let enough = requests_needed.is_some_and(|n| c.requests >= n)
            && latency.as_ref().is_none_or(|l| l.enough(c));
        let verdict = if errors.failed || latency.as_ref().is_some_and(|l| l.failed) {
            Verdict::Fail
        } else if !enough {
            Verdict::Inconclusive
        } else {
            Verdict::Pass
        };
        let mut a = Assessment {
            endpoint: self.name.to_owned(),
            verdict,
            baseline: counts(&self.pair.baseline),
            canary: counts(c),
            errors,
            latency,
            reasons: Vec::new(),
        };
        let timed = (c.latency.count(), self.pair.baseline.latency.count());
        a.reasons = reasons(&a, self.pair.baseline.requests == 0, timed);
        a
    }
}

/// The canary durations the rank test needs to show the baseline's durations scaled by
/// `ratio` (the allowed latency over the baseline's, at the quantile compared).
fn latency_requests_needed(baseline: &Sketch, ratio: f64, z: f64) -> Option<u64> {
    let buckets: Vec<(f64, u64)> = (baseline.buckets())
        .map(|(bucket, n)| (Sketch::bucket_value(bucket), n))
        .collect();
    let superiority = stats::scaled_superiority(&buckets, ratio)?;
    stats::rank_requests_needed_at(superiority, baseline.count(), z)
}

impl LatencyTest {
    /// Whether the canary's durations are enough for the test.
    fn enough(&self, canary: &Tally) -> bool {
        self.requests_needed
            .is_some_and(|n| canary.latency.count() >= n)
    }
}

/// The buckets of two sketches side by side, in increasing order of value:
/// `(count in canary, count in baseline)`.
fn aligned_buckets<'s>(
    canary: &'s Sketch,
    baseline: &'s Sketch,
) -> impl Iterator<Item = (u64, u64)> + 's {
    let mut c = canary.buckets().peekable();
    let mut b = baseline.buckets().peekable();
    core::iter::from_fn(move || match (c.peek().copied(), b.peek().copied()) {
        (None, None) => None,
        (Some((ci, cn)), Some((bi, bn))) => Some(match ci.cmp(&bi) {
            core::cmp::Ordering::Less => (c.next().map_or(0, |_| cn), 0),
            core::cmp::Ordering::Greater => (0, b.next().map_or(0, |_| bn)),
            core::cmp::Ordering::Equal => {
                c.next();
                b.next();
                (cn, bn)
            }
        }),
        (Some((_, cn)), None) => c.next().map(|_| (cn, 0)),
        (None, Some((_, bn))) => b.next().map(|_| (0, bn)),
    })
}

fn counts(t: &Tally) -> Counts {
    let q = |q| t.latency.quantile(q).map(|ns| ns / 1e6);
    Counts {
        requests: t.requests,
        errors: t.errors,
        error_rate: t.error_rate(),
        latency_ms: q(0.5)
            .zip(q(0.95))
            .zip(q(0.99))
            .map(|((p50, p95), p99)| Quantiles { p50, p95, p99 }),
    }
}

impl Assessment {
    /// Sort key, worst first.
    fn rank(&self) -> f64 {
        let p = self
            .latency
            .as_ref()
            .map_or(1.0, |l| l.p_adjusted)
            .min(self.errors.p_adjusted);
        match self.verdict {
            Verdict::Fail => p,
            Verdict::Inconclusive => {
                let missing = |needed: Option<u64>, have: u64| {
                    needed.map_or(f64::INFINITY, |n| n.saturating_sub(have) as f64)
                };
                let errors = missing(self.errors.requests_needed, self.canary.requests);
                let latency = (self.latency.as_ref())
                    .map_or(0.0, |l| missing(l.requests_needed, self.canary.requests));
                2.0 + 1.0 / (1.0 + errors.max(latency))
            }
            Verdict::Pass => 4.0 + p,
        }
    }
}

/// The reasons for a verdict, in words.
/// `timed`: the canary's and the baseline's requests with a duration.
fn reasons(a: &Assessment, no_baseline: bool, timed: (u64, u64)) -> Vec<String> {
    let (c, b, e) = (&a.canary, &a.baseline, &a.errors);
    let mut out = Vec::new();
    let compared = if no_baseline {
        "the whole baseline"
    } else {
        "baseline"
    };
    let errors = format!(
        "canary {}/{} errors ({}) vs {compared} {}; needs ≤ {} (adjusted p = {})",
        c.errors,
        c.requests,
        percent(c.error_rate),
        if no_baseline {
            percent(a.errors.allowed_rate.min(1.0))
        } else {
            format!("{}/{} ({})", b.errors, b.requests, percent(b.error_rate))
        },
        percent(e.allowed_rate),
        p_value(e.p_adjusted),
    );
    if no_baseline {
        out.push("no baseline requests on this endpoint: its errors are compared with the whole baseline".into());
    }
    if e.failed || a.verdict == Verdict::Pass || c.errors > 0 {
        out.push(if e.failed {
            format!("error rate too high: {errors}")
        } else {
            format!("errors: {errors}")
        });
    }
    if let Some(l) = &a.latency {
        let text = format!(
            "p{} canary {} vs baseline {}; needs ≤ {} (adjusted p = {})",
            (l.quantile * 100.0).round(),
            ms(l.canary_ms),
            ms(l.baseline_ms),
            ms(l.allowed_ms),
            p_value(l.p_adjusted)
        );
        out.push(if l.failed {
            format!("too slow: {text}")
        } else {
            format!("latency: {text}")
        });
    }
    if a.verdict != Verdict::Inconclusive {
        return out;
    }
    let errors_enough = e.requests_needed.is_some_and(|n| c.requests >= n);
    if !errors_enough {
        out.push(match (c.requests, e.requests_needed) {
            (0, _) => "no canary requests".into(),
            (n, Some(needed)) => format!(
                "{n} canary requests cannot show an error rate above {}: about {} needed ({} more)",
                percent(e.allowed_rate),
                thousands(needed),
                thousands(needed - n)
            ),
            (n, None) => format!(
                "{n} canary requests, and the baseline's {} are too few to show an error rate above {} however many the canary gets",
                b.requests,
                percent(e.allowed_rate)
            ),
        });
    }
    if let Some(l) = a.latency.as_ref() {
        let n = timed.0;
        let what = format!(
            "p{} above {}",
            (l.quantile * 100.0).round(),
            ms(l.allowed_ms)
        );
        match l.requests_needed {
            Some(needed) if n < needed => out.push(format!(
                "{n} timed canary requests cannot show a {what}: about {} needed ({} more)",
                thousands(needed),
                thousands(needed - n)
            )),
            Some(_) => {}
            None => out.push(format!(
                "{n} timed canary requests, and the baseline's {} are too few to show a {what} however many the canary gets",
                timed.1
            )),
        }
    }
    out
}

/// A rate as a percentage: `30.6 %`, `1.25 %`, `0.58 %`, `0.0058 %`.
pub fn percent(rate: f64) -> String {
    let pct = rate * 100.0;
    if pct <= 0.0 || pct >= 100.0 {
        format!("{pct:.0} %")
    } else if pct >= 10.0 {
        format!("{pct:.1} %")
    } else if pct >= 1.0 {
        format!("{pct:.2} %")
    } else {
        // Two significant digits.
        let digits = (1.0 - pct.log10().floor()).clamp(0.0, 8.0) as usize;
        format!("{pct:.digits$} %")
    }
}

/// Milliseconds with a sensible number of digits.
pub fn ms(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0} ms")
    } else if value >= 10.0 {
        format!("{value:.1} ms")
    } else {
        format!("{value:.2} ms")
    }
}

/// A p-value with two significant digits.
pub fn p_value(p: f64) -> String {
    if p >= 0.001 {
        format!("{p:.3}")
    } else {
        format!("{p:.1e}")
    }
}

/// `1,700`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}
