//! Throughput on Envoy text access logs: the whole transform on FireLens records whose `log` is
//! a default-format line, and the line matching alone.
//!
//! ```sh
//! cargo bench --bench text             # every group
//! cargo bench --bench text -- match    # one group
//! cargo test --benches                 # one pass of each bench
//! ```
//!
//! The lines are generated (a fixed seed, so every run measures the same bytes) in the shape
//! App Mesh writes without a JSON format: 2000 requests with varied paths, codes, flags, byte
//! counts, user agents and addresses. Throughput is in input bytes; the target for
//! default-format lines is 500 MB/s per core.

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use envoy_dd::{Config, LogKept, Outcome, Shape, TextFormat, Transformer};

#[path = "common/text_stream.rs"]
mod text_stream;
use text_stream::{default_lines, firelens, LINES};

fn main() {
    let lines = default_lines();
    let records: Vec<Vec<u8>> = lines.iter().map(|line| firelens(line)).collect();
    let envoy_own: Vec<Vec<u8>> = (0..LINES).map(|i| firelens(&envoy_message(i))).collect();

    let config = Config {
        hash: Some("4f9c2a17e0b3".into()),
        ..Config::default()
    };
    check(&config, &records, Shape::LogText);
    check(&config, &envoy_own, Shape::LogKept(LogKept::NotJson));

    let mut criterion = Criterion::default().configure_from_args();

    let mut group = criterion.benchmark_group("text");
    group.throughput(Throughput::Bytes(
        records.iter().map(|r| r.len() as u64).sum(),
    ));
    group.bench_function("transform/firelens_default_format", |b| {
        let mut t = Transformer::new(config.clone());
        let mut out = Vec::with_capacity(1 << 20);
        b.iter(|| {
            out.clear();
            for record in &records {
                black_box(t.transform(record, &mut out));
            }
        })
    });

    group.throughput(Throughput::Bytes(
        lines.iter().map(|l| l.len() as u64).sum(),
    ));
    group.bench_function("match/default_format", |b| {
        let format = TextFormat::envoy_default();
        let mut out = Vec::with_capacity(1 << 20);
        b.iter(|| {
            out.clear();
            for line in &lines {
                black_box(format.to_json(line.as_bytes(), &mut out));
            }
        })
    });

    // Envoy's own messages are tried against every built-in format and match none.
    group.throughput(Throughput::Bytes(
        envoy_own.iter().map(|r| r.len() as u64).sum(),
    ));
    group.bench_function("transform/firelens_not_matching", |b| {
        let mut t = Transformer::new(config.clone());
        let mut out = Vec::with_capacity(1 << 20);
        b.iter(|| {
            out.clear();
            for record in &envoy_own {
                black_box(t.transform(record, &mut out));
            }
        })
    });
    group.finish();
    criterion.final_summary();
}

/// Measures nothing unless every record takes the path it is meant to measure.
fn check(config: &Config, records: &[Vec<u8>], shape: Shape) {
    let mut t = Transformer::new(config.clone());
    for record in records {
        let outcome = t.transform(record, &mut Vec::new());
        assert!(
            matches!(outcome, Outcome::Enriched(done) if done.shape == shape),
            "{outcome:?}"
        );
    }
}

/// One of Envoy's own log messages, which are not access logs.
fn envoy_message(i: usize) -> String {
    format!("[2024-06-03 14:00:{:02}.{:03}][1][info][upstream] [source/common/upstream/cds_api_helper.cc:32] cds: add {} cluster(s), remove 0 cluster(s)\n", i % 60, i % 1000, i % 7)
}
