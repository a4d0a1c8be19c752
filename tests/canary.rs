//! `envoy-dd canary` on simulated releases (tests/release): identical releases pass, an error
//! spike on a low-traffic endpoint and a latency regression fail and name the endpoint, a
//! canary with a couple of dozen requests is inconclusive, and the exit status says which.
#![cfg(feature = "canary")]

mod release;

use std::io::Write;
use std::process::{Command, Output};

use envoy_dd::canary::input::{By, Options, Reader};
use envoy_dd::canary::{judge, stats, Settings, Side, Tallies, Verdict};
use release::{Change, Labels, Release};

/// The endpoint with 1 % of the traffic, and one with 15 %.
const EXPORT: usize = 11;
const ORDERS: usize = 1;

fn read(release: &Release) -> Tallies {
    let mut reader = Reader::new(Options::default());
    for r in release.requests() {
        reader.read(release.line(&r).as_bytes());
    }
    let (comparison, tallies, skipped) = reader.finish(None, None).unwrap();
    assert_eq!(skipped.total(), 0, "{skipped:?}");
    assert_eq!(
        comparison.by,
        if release.labels == Labels::All {
            By::Phase
        } else {
            By::Revision
        }
    );
    tallies
}

#[test]
fn records_read_as_generated() {
    let release = Release::identical(7, 20_000).with(EXPORT, Change::ErrorRate(0.3));
    assert_eq!(read(&release), release.tallies());
    let no_phase = Release {
        labels: Labels::NoPhase,
        ..release.clone()
    };
    assert_eq!(read(&no_phase), release.tallies());
}

#[test]
fn identical_releases_fail_at_most_at_the_level() {
    let settings = Settings::default();
    let no_floor = Settings {
        min_error_increase: 0.0,
        min_error_ratio: 1.0,
        min_latency_increase_ms: 0.0,
        min_latency_ratio: 1.0,
        ..Settings::default()
    };
    let seeds = 200;
    let (mut failed, mut failed_without_floor, mut passed) = (0, 0, 0);
    for seed in 0..seeds {
        let tallies = Release::identical(seed, 60_000).tallies();
        let verdict = judge(&tallies, &settings).verdict;
        failed += u32::from(verdict == Verdict::Fail);
        passed += u32::from(verdict == Verdict::Pass);
        failed_without_floor += u32::from(judge(&tallies, &no_floor).verdict == Verdict::Fail);
    }
    // The level is 5 %: at most 10 of 200, by the correction alone as much as with the floors.
    assert!(
        failed <= 10,
        "{failed} of {seeds} identical releases failed"
    );
    assert!(
        failed_without_floor <= 10,
        "{failed_without_floor} of {seeds} failed without minimum effects"
    );
    assert!(
        passed >= seeds as u32 - 10,
        "only {passed} of {seeds} passed"
    );
    eprintln!("identical releases: {failed} failed, {failed_without_floor} without minimum effects, {passed} passed of {seeds}");
}

#[test]
fn an_error_spike_on_a_low_traffic_endpoint_fails_and_is_named() {
    for seed in 0..20 {
        let release = Release::identical(seed, 60_000).with(EXPORT, Change::ErrorRate(0.3));
        let tallies = if seed < 2 {
            read(&release)
        } else {
            release.tallies()
        };
        let j = judge(&tallies, &Settings::default());
        assert_eq!(j.verdict, Verdict::Fail, "seed {seed}: {}", j.summary);
        let worst = &j.endpoints[0];
        assert_eq!(
            worst.endpoint, "GET /api/v1/export/{param:int}",
            "seed {seed}"
        );
        assert!(
            worst.errors.failed && worst.reasons[0].starts_with("error rate too high"),
            "{:?}",
            worst.reasons
        );
        assert!(
            j.endpoints[1..].iter().all(|a| a.verdict != Verdict::Fail),
            "seed {seed}"
        );
    }
}

#[test]
fn a_latency_regression_fails_and_is_named() {
    for seed in 0..10 {
        let release = Release::identical(seed, 60_000).with(ORDERS, Change::Slower(1.5));
        let tallies = if seed < 2 {
            read(&release)
        } else {
            release.tallies()
        };
        let j = judge(&tallies, &Settings::default());
        assert_eq!(j.verdict, Verdict::Fail, "seed {seed}: {}", j.summary);
        let worst = &j.endpoints[0];
        assert_eq!(worst.endpoint, "GET /api/v1/orders/{param:int}");
        let latency = worst.latency.as_ref().unwrap();
        assert!(latency.failed && latency.canary_ms > latency.allowed_ms);
        assert!(
            worst.reasons.iter().any(|r| r.starts_with("too slow: p95")),
            "{:?}",
            worst.reasons
        );
    }
}

#[test]
fn a_couple_of_dozen_canary_requests_are_inconclusive() {
    for seed in 0..10 {
        let release = Release::identical(seed, 500);
        let j = judge(&read(&release), &Settings::default());
        let canary = j.overall.canary.requests;
        assert!((10..=45).contains(&canary), "{canary}");
        assert_eq!(
            j.verdict,
            Verdict::Inconclusive,
            "seed {seed}: {}",
            j.summary
        );
        // Either more canary requests would do, or the baseline is too small as well.
        assert!(j.overall.errors.requests_needed.is_none_or(|n| n > canary));
        assert!(
            j.summary.contains("needed") || j.summary.contains("too few"),
            "{}",
            j.summary
        );
    }
}

/// `n` durations spread as a log-normal distribution's quantiles (median `median_ms`, `sigma`
/// on the log scale), in nanoseconds.
fn log_normal_ns(n: u64, median_ms: f64, sigma: f64) -> impl Iterator<Item = f64> {
    (0..n).map(move |i| {
        let u = (i as f64 + 0.5) / n as f64;
        median_ms * 1e6 * (sigma * stats::normal_isf(1.0 - u)).exp()
    })
}

#[test]
fn too_few_canary_durations_for_the_latency_test_are_inconclusive() {
    // Half the requests fail in both versions, so that the error test needs few requests;
    // latencies spread widely, so that the latency test needs many.
    let tallies = |canary: u64| {
        let mut t = Tallies::new();
        for (side, n) in [(Side::Baseline, 20_000), (Side::Canary, canary)] {
            for (i, ns) in log_normal_ns(n, 20.0, 1.5).enumerate() {
                t.add(side, "GET /search", i % 2 == 0, Some(ns));
            }
        }
        t
    };
    let few = judge(&tallies(150), &Settings::default());
    let a = &few.endpoints[0];
    assert_eq!(a.verdict, Verdict::Inconclusive, "{:?}", a.reasons);
    assert!(a.errors.requests_needed.is_some_and(|n| n <= 150));
    let needed = a.latency.as_ref().unwrap().requests_needed.unwrap();
    assert!((300..5_000).contains(&needed), "{needed}");
    let reason = format!("about {} needed", thousands(needed));
    assert!(
        a.reasons.iter().any(|r| r
            .starts_with("150 timed canary requests cannot show a p95 above")
            && r.contains(&reason)),
        "{:?}",
        a.reasons
    );
    let json = serde_json::to_value(a).unwrap();
    assert_eq!(json["latency"]["requests_needed"], needed);
    // With that many, the same canary passes.
    let enough = judge(&tallies(needed), &Settings::default());
    assert_eq!(
        enough.endpoints[0].verdict,
        Verdict::Pass,
        "{:?}",
        enough.endpoints[0].reasons
    );
}

fn thousands(n: u64) -> String {
    envoy_dd::canary::judge::thousands(n)
}

fn run(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_envoy-dd"))
        .arg("canary")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn exit_status_is_zero_exactly_for_pass() {
    let pass = Release::identical(3, 30_000).lines();
    let fail = Release::identical(3, 30_000)
        .with(EXPORT, Change::ErrorRate(0.5))
        .lines();
    let inconclusive = Release::identical(3, 400).lines();
    let out = run(&[], &pass);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("verdict: PASS"));
    let out = run(&["--format", "json"], &fail);
    assert_eq!(out.status.code(), Some(3));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verdict"], "fail");
    assert_eq!(
        report["endpoints"][0]["endpoint"],
        "GET /api/v1/export/{param:int}"
    );
    assert_eq!(report["endpoints"][0]["verdict"], "fail");
    assert!(
        report["endpoints"][0]["canary"]["requests"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(report["comparison"]["by"], "phase");
    assert_eq!(run(&[], &inconclusive).status.code(), Some(4));
    // Errors: nothing to compare; a usage error.
    let stable_only: String = pass
        .lines()
        .filter(|l| l.contains("stable"))
        .map(|l| format!("{l}\n"))
        .collect();
    let out = run(&["--by", "phase"], &stable_only);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot compare by phase"));
    assert_eq!(run(&["--by", "colour"], "").status.code(), Some(2));
}

#[test]
fn gzip_html_time_window_and_skipped_records() {
    let dir = std::env::temp_dir().join(format!("envoy-dd-canary-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let release = Release::identical(5, 20_000).with(EXPORT, Change::ErrorRate(0.5));
    let gz = dir.join("release.jsonl.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    encoder.write_all(release.lines().as_bytes()).unwrap();
    encoder
        .write_all(b"{\"log\":\"Starting Envoy\"}\nnot json\n")
        .unwrap();
    encoder.finish().unwrap();
    let html = dir.join("report.html");
    let out = Command::new(env!("CARGO_BIN_EXE_envoy-dd"))
        .args([
            "canary",
            "--html",
            html.to_str().unwrap(),
            gz.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("2 not counted: 1 unparseable, 1 no response code"),
        "{stderr}"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && page.contains("GET /api/v1/export/{param:int}"));
    assert!(!page.contains("http://") && !page.contains("https://"));
    // The records' times run from 12:00:00 at 50 per second: the first minute is 3,000.
    let out = Command::new(env!("CARGO_BIN_EXE_envoy-dd"))
        .args([
            "canary",
            "--format",
            "json",
            "--until",
            "2026-12-07T12:01:00Z",
            gz.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let counted = report["overall"]["baseline"]["requests"].as_u64().unwrap()
        + report["overall"]["canary"]["requests"].as_u64().unwrap();
    assert_eq!(counted, 3_000);
    assert_eq!(report["skipped"]["outside_window"], 17_000);
    std::fs::remove_dir_all(&dir).unwrap();
}
