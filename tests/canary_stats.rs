//! The canary judge's statistics agree with SciPy's to 1e-9 relative: the reference values in
//! fixtures/canary/scipy-reference.json were computed once by
//! fixtures/canary/scipy_reference.py.
#![cfg(feature = "canary")]

use envoy_dd::canary::stats::{
    benjamini_hochberg, fisher_greater, holm, mann_whitney_greater, normal_sf,
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
