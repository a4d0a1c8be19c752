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

const LINES: usize = 2000;

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

/// A FireLens record around `log`, as the Docker fluentd driver and FireLens write it.
fn firelens(log: &str) -> Vec<u8> {
    let mut record = String::from(
        r#"{"container_id":"4343d98044d26a3a3fd4ce3fb90e084220b3db26d16b212cd3556f8f84997872","container_name":"/ecs-api-canary-42-envoy-586ec283ee569bfaef62","source":"stdout","log":""#,
    );
    for c in log.chars() {
        match c {
            '"' => record.push_str("\\\""),
            '\\' => record.push_str("\\\\"),
            '\n' => record.push_str("\\n"),
            c => record.push(c),
        }
    }
    record.push_str(r#"","ecs_cluster":"arn:aws:ecs:us-east-1:123456789012:cluster/prod","ecs_task_arn":"arn:aws:ecs:us-east-1:123456789012:task/prod/0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e","ecs_task_definition":"api-canary:42"}"#);
    record.into_bytes()
}

/// Envoy default-format lines, each ending in `\n` as Envoy writes them.
fn default_lines() -> Vec<String> {
    let mut rng = Lcg(20240603);
    let methods = ["GET", "GET", "GET", "POST", "PUT", "DELETE"];
    let paths = [
        "/users/{}",
        "/orders/{}?expand=items",
        "/ping",
        "/api/v1/carts/{}/items",
        "/search?q=shoes&page={}",
    ];
    let outcomes = [
        ("200", "-"),
        ("200", "-"),
        ("201", "-"),
        ("304", "-"),
        ("404", "NR"),
        ("503", "UH"),
        ("0", "DC"),
    ];
    let agents = [
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15",
        "okhttp/4.12.0",
        "Envoy/HC",
        "-",
    ];
    (0..LINES)
        .map(|i| {
            let (code, flags) = outcomes[rng.below(outcomes.len())];
            let path = paths[rng.below(paths.len())].replace("{}", &rng.below(100_000).to_string());
            let xff = match rng.below(3) {
                0 => "-".to_string(),
                _ => format!("203.0.113.{}, 10.0.{}.{}", rng.below(255), rng.below(255), rng.below(255)),
            };
            format!(
                "[2024-06-03T14:{:02}:{:02}.{:03}Z] \"{} {} HTTP/1.1\" {} {} {} {} {} {} \"{}\" \"{}\" \"{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}\" \"api.example.com\" \"10.0.{}.{}:8080\"\n",
                i / 60 % 60,
                i % 60,
                rng.below(1000),
                methods[rng.below(methods.len())],
                path,
                code,
                flags,
                rng.below(4096),
                rng.below(65536),
                rng.below(3000),
                rng.below(3000),
                xff,
                agents[rng.below(agents.len())],
                rng.next() as u32,
                rng.below(0x10000),
                rng.below(0x1000),
                rng.below(0x1000),
                rng.next() & 0xffff_ffff_ffff,
                rng.below(255),
                rng.below(255),
            )
        })
        .collect()
}

/// One of Envoy's own log messages, which are not access logs.
fn envoy_message(i: usize) -> String {
    format!("[2024-06-03 14:00:{:02}.{:03}][1][info][upstream] [source/common/upstream/cds_api_helper.cc:32] cds: add {} cluster(s), remove 0 cluster(s)\n", i % 60, i % 1000, i % 7)
}

/// A small deterministic generator (Knuth's MMIX LCG), so the bench needs no `rand`.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 16
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
