//! The statistics of the judge, each as SciPy computes it (the fixtures check them to 1e-9):
//!
//! * [`fisher_greater`]: Fisher's exact test, one-sided (`scipy.stats.fisher_exact(table,
//!   alternative="greater")`), from the hypergeometric tail computed in log space;
//! * [`mann_whitney_greater`]: the Mann–Whitney U test, one-sided
//!   (`scipy.stats.mannwhitneyu(x, y, alternative="greater")`): exact when a sample has at
//!   most 8 values and there are no ties, else the normal approximation with tie and
//!   continuity corrections;
//! * [`holm`] and [`benjamini_hochberg`]: p-values adjusted for many tests;
//! * [`requests_needed`]: how many requests a test needs to show a given error rate;
//! * [`rank_requests_needed`]: how many the Mann–Whitney test needs to show a given shift
//!   (Noether's approximation), with [`scaled_superiority`] the shift's effect size.

use core::f64::consts::{FRAC_1_SQRT_2, PI};

/// P(X ≥ `canary_errors`) for the number of errors X among the canary's requests, were errors
/// spread over both versions' requests by chance: the one-sided p-value of Fisher's exact test
/// on the table `[[canary_errors, canary_ok], [baseline_errors, baseline_ok]]`.
///
/// Each term is a hypergeometric probability computed in log space (Loader's saddle-point
/// form, as R's `dhyper`), so p-values far below `1e-300`'s neighbours stay exact.
///
/// ```
/// use envoy_dd::canary::stats::fisher_greater;
///
/// // 11 of 36 canary requests failed, 2 of 342 baseline requests did.
/// let p = fisher_greater(11, 25, 2, 340);
/// assert!(p < 1e-8);
/// assert_eq!(fisher_greater(0, 36, 2, 340), 1.0);
/// ```
pub fn fisher_greater(
    canary_errors: u64,
    canary_ok: u64,
    baseline_errors: u64,
    baseline_ok: u64,
) -> f64 {
    let a = canary_errors as f64;
    let errors = (canary_errors + baseline_errors) as f64;
    let oks = (canary_ok + baseline_ok) as f64;
    let drawn = (canary_errors + canary_ok) as f64;
    let h = Hypergeometric {
        white: errors,
        black: oks,
        drawn,
    };
    let (lo, hi) = h.support();
    if a <= lo {
        return 1.0;
    }
    let mode = ((drawn + 1.0) * (errors + 1.0) / (errors + oks + 2.0)).floor();
    if a > mode {
        // The upper tail from a: its first term is the largest.
        let mut term = 1.0;
        let mut sum = 1.0;
        let mut x = a;
        while x < hi {
            term *= h.ratio_up(x);
            sum += term;
            x += 1.0;
            if term < sum * 1e-17 {
                break;
            }
        }
        (h.ln_pmf(a) + sum.ln()).exp().min(1.0)
    } else {
        // At or below the mode the tail is at least about a half: 1 − the lower tail.
        let mut term = 1.0;
        let mut sum = 1.0;
        let mut x = a - 1.0;
        while x > lo {
            term *= h.ratio_down(x);
            sum += term;
            x -= 1.0;
            if term < sum * 1e-17 {
                break;
            }
        }
        (1.0 - (h.ln_pmf(a - 1.0) + sum.ln()).exp()).clamp(0.0, 1.0)
    }
}

/// Draws of `drawn` balls from `white` white and `black` black ones; X counts white balls.
struct Hypergeometric {
    white: f64,
    black: f64,
    drawn: f64,
}

impl Hypergeometric {
    fn support(&self) -> (f64, f64) {
        (
            (self.drawn - self.black).max(0.0),
            self.drawn.min(self.white),
        )
    }

    /// P(X = x + 1) / P(X = x).
    fn ratio_up(&self, x: f64) -> f64 {
        (self.white - x) * (self.drawn - x) / ((x + 1.0) * (self.black - self.drawn + x + 1.0))
    }

    /// P(X = x − 1) / P(X = x).
    fn ratio_down(&self, x: f64) -> f64 {
        x * (self.black - self.drawn + x) / ((self.white - x + 1.0) * (self.drawn - x + 1.0))
    }

    /// ln P(X = x), as R's `dhyper`: three binomial terms at p = drawn / total.
    fn ln_pmf(&self, x: f64) -> f64 {
        let total = self.white + self.black;
        let p = self.drawn / total;
        let q = (total - self.drawn) / total;
        ln_dbinom(x, self.white, p, q) + ln_dbinom(self.drawn - x, self.black, p, q)
            - ln_dbinom(self.drawn, total, p, q)
    }
}

/// ln of the binomial probability of `x` in `n` at `p` (`q = 1 − p`), Loader's form
/// ("Fast and accurate computation of binomial probabilities", 2000; R's `dbinom_raw`).
fn ln_dbinom(x: f64, n: f64, p: f64, q: f64) -> f64 {
    if p == 0.0 {
        return if x == 0.0 { 0.0 } else { f64::NEG_INFINITY };
    }
    if q == 0.0 {
        return if x == n { 0.0 } else { f64::NEG_INFINITY };
    }
    if x == 0.0 {
        if n == 0.0 {
            return 0.0;
        }
        return if p < 0.1 {
            -bd0(n, n * q) - n * p
        } else {
            n * q.ln()
        };
    }
    if x == n {
        return if q < 0.1 {
            -bd0(n, n * p) - n * q
        } else {
            n * p.ln()
        };
    }
    if x < 0.0 || x > n {
        return f64::NEG_INFINITY;
    }
    let lc = stirlerr(n) - stirlerr(x) - stirlerr(n - x) - bd0(x, n * p) - bd0(n - x, n * q);
    let lf = (2.0 * PI).ln() + x.ln() + (-x / n).ln_1p();
    lc - 0.5 * lf
}

/// `ln(n!) − ((n + ½) ln n − n + ½ ln 2π)`, the error of Stirling's formula, for integer n ≥ 1.
fn stirlerr(n: f64) -> f64 {
    const S0: f64 = 1.0 / 12.0;
    const S1: f64 = 1.0 / 360.0;
    const S2: f64 = 1.0 / 1260.0;
    const S3: f64 = 1.0 / 1680.0;
    const S4: f64 = 1.0 / 1188.0;
    if n <= 15.0 {
        let ln_factorial: f64 = (2..=n as u32).map(|k| f64::from(k).ln()).sum();
        return ln_factorial - (n + 0.5) * n.ln() + n - 0.5 * (2.0 * PI).ln();
    }
    let nn = n * n;
    if n > 500.0 {
        (S0 - S1 / nn) / n
    } else if n > 80.0 {
        (S0 - (S1 - S2 / nn) / nn) / n
    } else if n > 35.0 {
        (S0 - (S1 - (S2 - S3 / nn) / nn) / nn) / n
    } else {
        (S0 - (S1 - (S2 - (S3 - S4 / nn) / nn) / nn) / nn) / n
    }
}

/// `x ln(x / m) + m − x`, computed without cancellation when x is near m.
fn bd0(x: f64, m: f64) -> f64 {
    if (x - m).abs() < 0.1 * (x + m) {
        let mut v = (x - m) / (x + m);
        let mut s = (x - m) * v;
        let mut ej = 2.0 * x * v;
        v *= v;
        for j in 1..1000 {
            ej *= v;
            let next = s + ej / f64::from(2 * j + 1);
            if next == s {
                return next;
            }
            s = next;
        }
        return s;
    }
    x * (x / m).ln() + m - x
}

/// The result of [`mann_whitney_greater`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MannWhitney {
    /// U of the first sample: how many (x, y) pairs have x > y, ties counting one half.
    pub u: f64,
    /// P(U ≥ u) if both samples came from one distribution.
    pub p: f64,
    /// The p-value is exact (small samples without ties), not the normal approximation.
    pub exact: bool,
}

/// The one-sided Mann–Whitney U test that values of `x` tend to be larger than those of `y`,
/// as `scipy.stats.mannwhitneyu(x, y, alternative="greater")` computes it (`method="auto"`,
/// `use_continuity=True`).
///
/// The samples come as `(count in x, count in y)` for each distinct value, in increasing order
/// of value: raw samples once sorted, or two [`super::Sketch`]es bucket by bucket (values of a
/// bucket count as ties). `None` when a sample is empty.
///
/// ```
/// use envoy_dd::canary::stats::mann_whitney_greater;
///
/// // x = [3, 4, 5], y = [1, 2]: every x is larger.
/// let r = mann_whitney_greater([(0, 1), (0, 1), (1, 0), (1, 0), (1, 0)]).unwrap();
/// assert_eq!(r.u, 6.0);
/// assert!(r.exact && (r.p - 0.1).abs() < 1e-12);
/// ```
pub fn mann_whitney_greater(groups: impl IntoIterator<Item = (u64, u64)>) -> Option<MannWhitney> {
    let (mut n1, mut n2) = (0u64, 0u64);
    let mut rank_sum = 0.0;
    let mut tie_term = 0.0;
    for (x, y) in groups {
        let t = x + y;
        if t == 0 {
            continue;
        }
        // Ranks n1 + n2 + 1 ..= n1 + n2 + t share their mean.
        let mid_rank = (n1 + n2) as f64 + (t as f64 + 1.0) / 2.0;
        rank_sum += x as f64 * mid_rank;
        let t = t as f64;
        tie_term += t * t * t - t;
        n1 += x;
        n2 += y;
    }
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let (f1, f2) = (n1 as f64, n2 as f64);
    let u = rank_sum - f1 * (f1 + 1.0) / 2.0;
    if (n1 <= 8 || n2 <= 8) && tie_term == 0.0 {
        let p = exact_u_sf(u as u64, n1.min(n2) as usize, n1.max(n2) as usize);
        return Some(MannWhitney { u, p, exact: true });
    }
    let n = f1 + f2;
    let s = (f1 * f2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)))).sqrt();
    let z = (u - f1 * f2 / 2.0 - 0.5) / s;
    let p = if s > 0.0 { normal_sf(z) } else { 1.0 };
    Some(MannWhitney { u, p, exact: false })
}

/// P(U ≥ u) for samples of `m ≤ n` values without ties. The number of arrangements with
/// U = k is the coefficient of q^k in the Gaussian binomial [m + n choose m]_q, built one
/// factor (1 − q^(n+i)) / (1 − q^i) at a time.
fn exact_u_sf(u: u64, m: usize, n: usize) -> f64 {
    let top = m * n;
    let u = u as usize;
    if u == 0 {
        return 1.0;
    }
    if u > top {
        return 0.0;
    }
    // U is symmetric about mn / 2: sum whichever tail is shorter, from its low end, where
    // the coefficients are exact sums of positive terms.
    let (upper, last) = if u > top - u {
        (true, top - u)
    } else {
        (false, u - 1)
    };
    let mut c = vec![0.0f64; top + m + 1];
    c[0] = 1.0;
    for i in 1..=m {
        let len = i * n + i + 1;
        for k in (n + i..len).rev() {
            c[k] -= c[k - n - i];
        }
        for k in i..len {
            c[k] += c[k - i];
        }
    }
    let total: f64 = (1..=m).map(|i| (n + i) as f64 / i as f64).product();
    let tail: f64 = c[..=last].iter().sum::<f64>() / total;
    if upper {
        tail.min(1.0)
    } else {
        (1.0 - tail).clamp(0.0, 1.0)
    }
}

/// P(Z > z) for a standard normal Z, as SciPy's `norm.sf` (`ndtr(−z)`) computes it.
pub fn normal_sf(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    let x = z * FRAC_1_SQRT_2;
    if x >= 0.0 {
        0.5 * erfc(x)
    } else {
        1.0 - 0.5 * erfc(-x)
    }
}

/// The z with P(Z > z) = p (0 < p < 1), by bisection on [`normal_sf`].
pub fn normal_isf(p: f64) -> f64 {
    let (mut lo, mut hi) = (-40.0f64, 40.0f64);
    // 80 / 2^64 is below the spacing of f64 near any z that matters.
    for _ in 0..64 {
        let mid = 0.5 * (lo + hi);
        if normal_sf(mid) > p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The complementary error function for x ≥ 0: 1 − erf(x) from erf's series of positive
/// terms below 2.5 (erfc(2.5) ≈ 4e-4, so at most 13 digits of 16 remain), a continued
/// fraction (Lentz's method) above.
fn erfc(x: f64) -> f64 {
    if x < 2.5 {
        // erf(x) = 2/√π e^(−x²) Σ 2ⁿ x^(2n+1) / (1·3·…·(2n+1))
        let mut term = x;
        let mut sum = x;
        let mut k = 1.0;
        loop {
            term *= 2.0 * x * x / (2.0 * k + 1.0);
            sum += term;
            k += 1.0;
            if term <= sum * 1e-17 {
                break;
            }
        }
        return 1.0 - 2.0 / PI.sqrt() * (-x * x).exp() * sum;
    }
    // erfc(x) = e^(−x²)/√π · 1 / (x + (1/2) / (x + 1 / (x + (3/2) / (x + 2 / (x + …)))))
    let tiny = 1e-300;
    let mut f = x;
    let mut c = x;
    let mut d = 0.0;
    for k in 1..100_000 {
        let a = k as f64 / 2.0;
        d = x + a * d;
        d = if d.abs() < tiny { tiny } else { d };
        c = x + a / c;
        c = if c.abs() < tiny { tiny } else { c };
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (-x * x).exp() / PI.sqrt() / f
}

/// Holm's step-down adjustment: the family-wise error rate stays at the level the adjusted
/// p-values are compared with, whatever the number of tests.
///
/// ```
/// let adjusted = envoy_dd::canary::stats::holm(&[0.01, 0.04, 0.03]);
/// assert_eq!(adjusted, [0.03, 0.06, 0.06]);
/// ```
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let order = sorted_order(p);
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

/// Benjamini and Hochberg's step-up adjustment (`scipy.stats.false_discovery_control`): the
/// expected share of false failures among failures stays at the level; with every
/// endpoint unchanged, so does the chance of any failure.
///
/// ```
/// let adjusted = envoy_dd::canary::stats::benjamini_hochberg(&[0.01, 0.04, 0.03]);
/// assert_eq!(adjusted, [0.03, 0.04, 0.04]);
/// ```
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let order = sorted_order(p);
    let mut adjusted = vec![0.0; m];
    let mut running = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(m as f64 * p[i] / (rank + 1) as f64);
        adjusted[i] = running;
    }
    adjusted
}

/// Indices of `p` in increasing order of value (stable).
fn sorted_order(p: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    order
}

/// How many canary requests a one-sided test at level `alpha` needs to show, with
/// probability `power`, that the canary's error rate `canary_rate` is above the baseline's
/// `baseline_rate`, measured on `baseline_requests` requests. Normal approximation on
/// Cohen's arcsine scale (`h = 2 asin √p₁ − 2 asin √p₀`, each rate's variance `1/n`), which
/// holds up for rates near zero. `None` when no number of canary requests is enough, because
/// the baseline has too few requests itself.
///
/// ```
/// use envoy_dd::canary::stats::requests_needed;
///
/// // From 1 % to 2 %, at the 5 % level with 80 % power, against a baseline of 100,000.
/// let n = requests_needed(0.01, 0.02, 100_000, 0.05, 0.8).unwrap();
/// // ((z₀.₀₅ + z₀.₂) / h)² = 887 with a known baseline; a bit more for its own noise.
/// assert_eq!(n, 896);
/// assert_eq!(requests_needed(0.01, 0.02, 200, 0.05, 0.8), None);
/// ```
pub fn requests_needed(
    baseline_rate: f64,
    canary_rate: f64,
    baseline_requests: u64,
    alpha: f64,
    power: f64,
) -> Option<u64> {
    let z = normal_isf(alpha) + normal_isf(1.0 - power);
    requests_needed_at(baseline_rate, canary_rate, baseline_requests, z)
}

/// The probability that a value of a distribution scaled by `ratio` is above an independent
/// value of the distribution itself (ties count one half): `P(ratio·Y > X)` for `X`, `Y` drawn
/// from `buckets`, `(value, count)` pairs in increasing order of value. This is the effect
/// size of the Mann–Whitney test (`U / mn` estimates it) for a canary whose latencies are the
/// baseline's times `ratio`; 0.5 for `ratio` 1. `None` without values.
///
/// ```
/// use envoy_dd::canary::stats::scaled_superiority;
///
/// let buckets = [(10.0, 1), (20.0, 1), (30.0, 1), (40.0, 1)];
/// assert_eq!(scaled_superiority(&buckets, 1.0), Some(0.5));
/// // Doubled: 2·10 ties 20 and beats 10; 2·20 ties 40 and beats 10, 20, 30; 60 and 80 beat all.
/// assert_eq!(scaled_superiority(&buckets, 2.0), Some((1.5 + 3.5 + 4.0 + 4.0) / 16.0));
/// ```
pub fn scaled_superiority(buckets: &[(f64, u64)], ratio: f64) -> Option<f64> {
    let total: u64 = buckets.iter().map(|&(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    // Walk the scaled values up, and the values below each of them with it.
    let (mut below, mut i, mut wins) = (0u64, 0usize, 0.0f64);
    for &(value, n) in buckets {
        let scaled = if value == 0.0 { 0.0 } else { value * ratio };
        while i < buckets.len() && buckets[i].0 < scaled {
            below += buckets[i].1;
            i += 1;
        }
        let ties = buckets.get(i).filter(|b| b.0 == scaled).map_or(0, |b| b.1);
        wins += n as f64 * (below as f64 + ties as f64 / 2.0);
    }
    Some(wins / (total as f64 * total as f64))
}

/// How many canary values a one-sided Mann–Whitney test at level `alpha` needs to show, with
/// probability `power`, an effect of size `superiority` (`P(canary > baseline)`, see
/// [`scaled_superiority`]) against `baseline` values. Noether's approximation (1987): `U / mn`
/// is normal with its variance under the null hypothesis, `(m + n + 1) / 12mn`, solved for the
/// canary's `n` with the baseline's `m` given. `None` when no number is enough: no effect, or
/// a baseline too small itself.
///
/// ```
/// use envoy_dd::canary::stats::rank_requests_needed;
///
/// // P(canary > baseline) = 0.6, at the 5 % level with 80 % power, against 100,000 values:
/// // (z₀.₀₅ + z₀.₂)² / (12 · 0.1²) = 52 with a known baseline.
/// assert_eq!(rank_requests_needed(0.6, 100_000, 0.05, 0.8), Some(52));
/// assert_eq!(rank_requests_needed(0.6, 40, 0.05, 0.8), None);
/// assert_eq!(rank_requests_needed(0.5, 100_000, 0.05, 0.8), None);
/// ```
pub fn rank_requests_needed(
    superiority: f64,
    baseline: u64,
    alpha: f64,
    power: f64,
) -> Option<u64> {
    let z = normal_isf(alpha) + normal_isf(1.0 - power);
    rank_requests_needed_at(superiority, baseline, z)
}

/// [`rank_requests_needed`] with `z = z_alpha + z_power` worked out once.
pub(crate) fn rank_requests_needed_at(superiority: f64, baseline: u64, z: f64) -> Option<u64> {
    let effect = superiority - 0.5;
    if effect <= 0.0 || baseline == 0 {
        return None;
    }
    // effect ≥ z·√((m + n + 1) / 12mn)  ⇔  n ≥ (1 + 1/m) / (12·effect²/z² − 1/m)
    let m = baseline as f64;
    let room = 12.0 * (effect / z).powi(2) - 1.0 / m;
    (room > 0.0).then(|| ((1.0 + 1.0 / m) / room).ceil() as u64)
}

/// [`requests_needed`] with `z = z_alpha + z_power` worked out once (the judge uses one level
/// for every endpoint).
pub(crate) fn requests_needed_at(
    baseline_rate: f64,
    canary_rate: f64,
    baseline_requests: u64,
    z: f64,
) -> Option<u64> {
    let h = 2.0 * canary_rate.clamp(0.0, 1.0).sqrt().asin()
        - 2.0 * baseline_rate.clamp(0.0, 1.0).sqrt().asin();
    if h <= 0.0 || baseline_requests == 0 {
        return None;
    }
    let room = (h / z).powi(2) - 1.0 / baseline_requests as f64;
    (room > 0.0).then(|| (1.0 / room).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_tails() {
        assert!((normal_sf(0.0) - 0.5).abs() < 1e-16);
        assert!((normal_sf(1.959963984540054) / 0.025 - 1.0).abs() < 1e-12);
        assert!((normal_sf(-1.959963984540054) / 0.975 - 1.0).abs() < 1e-12);
        // scipy.stats.norm.sf(10) = 7.619853024160527e-24
        assert!((normal_sf(10.0) / 7.619853024160527e-24 - 1.0).abs() < 1e-12);
        assert!((normal_isf(0.05) - 1.6448536269514729).abs() < 1e-12);
    }

    #[test]
    fn exact_u_matches_enumeration() {
        // All arrangements of 3 x and 4 y: U's distribution by brute force.
        let (m, n) = (3usize, 4usize);
        let mut counts = vec![0u32; m * n + 1];
        for mask in 0u32..(1 << (m + n)) {
            if mask.count_ones() as usize != m {
                continue;
            }
            // Bit i set: the value of rank i belongs to x; U counts the y below each x.
            let mut below = 0;
            let mut u = 0;
            for i in 0..m + n {
                if mask >> i & 1 == 1 {
                    u += below
                } else {
                    below += 1
                }
            }
            counts[u] += 1;
        }
        let total: u32 = counts.iter().sum();
        for u in 0..=m * n {
            let sf = counts[u..].iter().sum::<u32>() as f64 / total as f64;
            assert!((exact_u_sf(u as u64, m, n) - sf).abs() < 1e-14, "u {u}");
        }
    }

    #[test]
    fn holm_and_bh_keep_order_and_bounds() {
        let p = [0.5, 0.001, 0.2, 0.04, 1.0];
        for adjusted in [holm(&p), benjamini_hochberg(&p)] {
            for (a, b) in adjusted.iter().zip(p) {
                assert!(*a >= b && *a <= 1.0);
            }
            assert!(adjusted[1] <= adjusted[3] && adjusted[3] <= adjusted[2]);
        }
        assert!(holm(&[]).is_empty());
    }
}
