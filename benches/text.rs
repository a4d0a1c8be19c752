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
//! default-format lines is 500 MB/s per core. One output buffer is reused, cleared before each
//! record. After a `cargo bench` run, the table for BENCHMARKS.md is printed: MB/s by the wall
//! clock and per second of the bench thread's CPU time, and the share of a core the thread got.

use std::hint::black_box;
use std::time::SystemTime;

use criterion::{Criterion, Throughput};
use envoy_dd::{Config, LogKept, Outcome, Shape, TextFormat, Transformer};

#[path = "common/cpu_times.rs"]
mod cpu_times;
#[path = "common/text_stream.rs"]
mod text_stream;
use cpu_times::{CpuTimes, WallTimes};
use text_stream::{default_lines, firelens, LINES};

/// Samples per benchmark (criterion's default).
const SAMPLES: usize = 100;

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

    let started = SystemTime::now();
    let mut criterion = Criterion::default().configure_from_args();
    let mut cpu = CpuTimes::default();
    let mut bytes = Vec::new();

    let mut group = criterion.benchmark_group("text");
    group.sample_size(SAMPLES);
    // One output buffer, cleared before each record, as in `benches/transform.rs`.
    let mut out = Vec::with_capacity(1 << 16);
    let record_bytes: usize = records.iter().map(|r| r.len()).sum();
    bytes.push(("transform/firelens_default_format", record_bytes));
    group.throughput(Throughput::Bytes(record_bytes as u64));
    let mut t = Transformer::new(config.clone());
    group.bench_function("transform/firelens_default_format", |b| {
        cpu.measure("text/transform_firelens_default_format".into(), b, || {
            for record in &records {
                out.clear();
                black_box(t.transform(black_box(record), &mut out));
                black_box(&out);
            }
        })
    });

    let line_bytes: usize = lines.iter().map(|l| l.len()).sum();
    bytes.push(("match/default_format", line_bytes));
    group.throughput(Throughput::Bytes(line_bytes as u64));
    let format = TextFormat::envoy_default();
    group.bench_function("match/default_format", |b| {
        cpu.measure("text/match_default_format".into(), b, || {
            for line in &lines {
                out.clear();
                black_box(format.to_json(black_box(line.as_bytes()), &mut out));
                black_box(&out);
            }
        })
    });

    // Envoy's own messages are tried against every built-in format and match none.
    let own_bytes: usize = envoy_own.iter().map(|r| r.len()).sum();
    bytes.push(("transform/firelens_not_matching", own_bytes));
    group.throughput(Throughput::Bytes(own_bytes as u64));
    let mut t = Transformer::new(config.clone());
    group.bench_function("transform/firelens_not_matching", |b| {
        cpu.measure("text/transform_firelens_not_matching".into(), b, || {
            for record in &envoy_own {
                out.clear();
                black_box(t.transform(black_box(record), &mut out));
                black_box(&out);
            }
        })
    });
    group.finish();
    criterion.final_summary();

    // After a `cargo bench` run: the table for BENCHMARKS.md, wall clock and CPU time.
    if std::env::args().any(|arg| arg == "--bench") {
        let wall = WallTimes::of_run(started);
        println!("\n| benchmark | MB/s | CPU MB/s | core share |");
        println!("|---|---:|---:|---:|");
        for (name, bytes) in bytes {
            let id = format!("text/{}", name.replace('/', "_"));
            if let (Some(secs), Some(cpu_secs)) = (wall.seconds(&id), cpu.seconds(&id, SAMPLES)) {
                let bytes = bytes as f64;
                println!(
                    "| text/{name} | {:.0} | {:.0} | {:.0} % |",
                    bytes / secs / 1e6,
                    bytes / cpu_secs / 1e6,
                    100.0 * cpu_secs / secs,
                );
            }
        }
    }
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
