//! The canary judge's statistics agree with SciPy's to 1e-9 relative: the reference values in
//! fixtures/canary/scipy-reference.json were computed once by
//! fixtures/canary/scipy_reference.py.
#![cfg(feature = "canary")]

use envoy_dd::canary::stats::{
    benjamini_hochberg, fisher_greater, holm, mann_whitney_greater, normal_isf, normal_sf,
    rank_requests_needed, scaled_superiority,
};
use serde_json::Value;

const TOLERANCE: f64 = 1e-9;

fn reference() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/canary/scipy-reference.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn close(got: f64, want: f64) -> bool {
    got == want || ((got - want) / want).abs() <= TOLERANCE
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn fisher_exact_greater() {
    let cases = reference()["fisher_greater"].as_array().unwrap().clone();
    assert!(cases.len() >= 40);
    for case in cases {
        let t: Vec<u64> = case["table"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let want = case["p"].as_f64().unwrap();
        let got = fisher_greater(t[0], t[1], t[2], t[3]);
        assert!(close(got, want), "{t:?}: {got:e} vs SciPy {want:e}");
    }
}

#[test]
fn mann_whitney_u_greater() {
    let cases = reference()["mannwhitneyu_greater"]
        .as_array()
        .unwrap()
        .clone();
    let mut exact = 0;
    for case in &cases {
        let groups: Vec<(u64, u64)> = case["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| (g[0].as_u64().unwrap(), g[1].as_u64().unwrap()))
            .collect();
        let r = mann_whitney_greater(groups.iter().copied()).unwrap();
        let (u, p) = (case["u"].as_f64().unwrap(), case["p"].as_f64().unwrap());
        assert_eq!(r.u, u, "{groups:?}");
        assert!(close(r.p, p), "{groups:?}: {:e} vs SciPy {p:e}", r.p);
        exact += usize::from(r.exact);
    }
    // Both of SciPy's methods are covered.
    assert!(exact >= 5 && exact < cases.len() - 10);
}

#[test]
fn adjusted_p_values() {
    for case in reference()["adjust"].as_array().unwrap() {
        let p = numbers(&case["p"]);
        for (got, want) in [
            (holm(&p), numbers(&case["holm"])),
            (benjamini_hochberg(&p), numbers(&case["bh"])),
        ] {
            for (g, w) in got.iter().zip(&want) {
                assert!(close(*g, *w), "{p:?}: {got:?} vs {want:?}");
            }
        }
    }
}

#[test]
fn normal_tail() {
    for case in reference()["norm_sf"].as_array().unwrap() {
        let (z, want) = (case["z"].as_f64().unwrap(), case["sf"].as_f64().unwrap());
        let got = normal_sf(z);
        assert!(close(got, want), "sf({z}) = {got:e} vs SciPy {want:e}");
    }
}

/// A small seeded generator (xorshift64*) for the simulations below.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// A log-normal value with median 1.
    fn log_normal(&mut self, sigma: f64) -> f64 {
        (sigma * normal_isf(self.unit())).exp()
    }
}

/// The share of simulated tests that find a canary whose values are the baseline's times
/// `ratio`, with `n` canary and `m` baseline values, significant at `alpha`.
fn simulated_power(rng: &mut Rng, ratio: f64, n: u64, m: u64, alpha: f64) -> f64 {
    let trials = 300;
    let mut found = 0;
    for _ in 0..trials {
        let mut values: Vec<(f64, bool)> = (0..m).map(|_| (rng.log_normal(0.8), false)).collect();
        values.extend((0..n).map(|_| (ratio * rng.log_normal(0.8), true)));
        values.sort_by(|a, b| a.0.total_cmp(&b.0));
        let groups = values
            .iter()
            .map(|&(_, canary)| (canary as u64, !canary as u64));
        if mann_whitney_greater(groups).unwrap().p < alpha {
            found += 1;
        }
    }
    found as f64 / trials as f64
}

#[test]
fn rank_requests_needed_gives_the_power_asked_for() {
    let mut rng = Rng(0x5EED);
    let m = 3_000;
    let mut baseline: Vec<f64> = (0..m).map(|_| rng.log_normal(0.8)).collect();
    baseline.sort_by(f64::total_cmp);
    let buckets: Vec<(f64, u64)> = baseline.iter().map(|&v| (v, 1)).collect();
    let superiority = scaled_superiority(&buckets, 1.25).unwrap();
    // The effect of a log-normal scaled by 1.25: Φ(ln 1.25 / (0.8 √2)).
    let exact = 1.0 - normal_sf(1.25f64.ln() / (0.8 * 2f64.sqrt()));
    assert!((superiority - exact).abs() < 0.01, "{superiority} {exact}");
    let n = rank_requests_needed(superiority, m, 0.05, 0.8).unwrap();
    assert!((50..400).contains(&n), "{n}");
    let power = simulated_power(&mut rng, 1.25, n, m, 0.05);
    assert!((0.7..=0.9).contains(&power), "{n} requests: power {power}");
    let power = simulated_power(&mut rng, 1.25, n / 4, m, 0.05);
    assert!(power < 0.45, "{} requests: power {power}", n / 4);
}
