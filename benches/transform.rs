//! Throughput of the transform on the fixture corpus, side by side with the same transform
//! written with `serde_json::Value` and with simd-json's borrowed values.
//!
//! ```sh
//! cargo bench --bench transform                  # every corpus file, then the trace parsers
//! cargo bench --bench transform -- firelens      # one group
//! ENVOY_DD_BENCH_CORPUS=/my/logs cargo bench --bench transform   # your own *.jsonl files
//! cargo test --benches                           # equivalence check + one pass of each bench
//! ```
//!
//! Every `*.jsonl` file of the corpus is one criterion group, measured in input bytes; one
//! iteration transforms every record of the file, reusing one output buffer. Before anything
//! is measured, the three implementations must give equivalent records for every record of
//! `firelens-appmesh.jsonl` (parsed JSON, key order and number spelling ignored), so the
//! comparison is like for like. After a `cargo bench` run, the table for BENCHMARKS.md is
//! printed: wall-clock MB/s and records/s, ratios, and MB/s per second of CPU time.
//!
//! With criterion's `--profile-time` (for a profiler), the equivalence check is skipped so the
//! profile shows only the benchmark.

#[path = "common/cpu_times.rs"]
mod cpu_times;
#[path = "common/one_envelope.rs"]
mod one_envelope;
#[path = "baseline/rules.rs"]
mod rules;
#[path = "baseline/serde_value.rs"]
mod serde_value;
#[path = "baseline/simd_borrowed.rs"]
mod simd_borrowed;

use std::hint::black_box;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use criterion::{Criterion, SamplingMode, Throughput};
use envoy_dd::trace::{self, TraceCandidates};
use envoy_dd::{Config, Transformer};

use cpu_times::{CpuTimes, WallTimes};
use serde_value::SerdeValue;
use simd_borrowed::SimdBorrowed;

/// The corpus the equivalence check and the targets in BENCHMARKS.md are about.
const MAIN_CORPUS: &str = "firelens-appmesh";

/// Samples per benchmark: one iteration of a file group is a whole file (milliseconds), so
/// fewer samples are enough there; the trace parsers keep criterion's default.
const FILE_SAMPLES: usize = 20;
const TRACE_SAMPLES: usize = 100;

/// The implementations, in table order.
const IMPLEMENTATIONS: [&str; 3] = ["envoy_dd", "serde_value", "simd_borrowed"];

fn main() {
    let corpus = Corpus::load();
    if !std::env::args().any(|arg| arg == "--profile-time") {
        equivalence::check(&corpus);
    }

    let started = SystemTime::now();
    let mut criterion = Criterion::default().configure_from_args();
    let mut cpu = CpuTimes::default();
    for file in &corpus.files {
        bench_file(&mut criterion, file, &mut cpu);
    }
    bench_trace(&mut criterion, &mut cpu);
    criterion.final_summary();
    if std::env::args().any(|arg| arg == "--bench") {
        summary::print(&corpus, &cpu, started);
    }
}

/// What the benches run with: the `hash` the golden tests configure and Envoy keys kept next to
/// their attributes (the rules the baselines implement), everything else default (all
/// attributes on, `phase` derived from the task definition).
fn config() -> Config {
    Config {
        hash: Some("4f9c2a17e0b3".into()),
        keep_source_attributes: true,
        ..Config::default()
    }
}

/// One `*.jsonl` file, split into records once.
struct CorpusFile {
    name: String,
    data: Vec<u8>,
    records: Vec<Range<usize>>,
    /// Sum of the record lengths (newlines not counted).
    bytes: u64,
}

impl CorpusFile {
    fn read(path: &Path) -> Self {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        CorpusFile::of(name, data)
    }

    /// `data`, JSON Lines, as a file named `name`.
    fn of(name: String, data: Vec<u8>) -> Self {
        let mut records = Vec::new();
        let mut start = 0;
        for line in data.split(|&b| b == b'\n') {
            let end = start + line.len();
            if !line.trim_ascii().is_empty() {
                records.push(start..end);
            }
            start = end + 1;
        }
        let bytes = records.iter().map(|r| r.len() as u64).sum();
        CorpusFile {
            name,
            data,
            records,
            bytes,
        }
    }

    fn records(&self) -> impl Iterator<Item = &[u8]> {
        self.records.iter().map(|r| &self.data[r.clone()])
    }
}

struct Corpus {
    dir: PathBuf,
    files: Vec<CorpusFile>,
}

impl Corpus {
    /// `$ENVOY_DD_BENCH_CORPUS/*.jsonl`, by default `fixtures/input/*.jsonl`, by name.
    fn load() -> Self {
        let dir = std::env::var_os("ENVOY_DD_BENCH_CORPUS")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/input"));
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()));
        let mut paths: Vec<PathBuf> = entries
            .map(|entry| entry.expect("corpus entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
            .collect();
        paths.sort();
        assert!(!paths.is_empty(), "no *.jsonl in {}", dir.display());
        let mut files: Vec<CorpusFile> = paths.iter().map(|p| CorpusFile::read(p)).collect();
        // The main corpus as one log router sees it: one container's envelope on every record.
        if let Some(main) = files.iter().find(|f| f.name == MAIN_CORPUS) {
            let lines = one_envelope::one_envelope(main.records()).join(&b'\n');
            files.push(CorpusFile::of(format!("{MAIN_CORPUS}-one-envelope"), lines));
        }
        Corpus { files, dir }
    }
}

/// Benches the three implementations on one file.
fn bench_file(c: &mut Criterion, file: &CorpusFile, cpu: &mut CpuTimes) {
    let config = config();
    let mut out = Vec::with_capacity(1 << 16);
    let mut group = c.benchmark_group(&file.name);
    group.throughput(Throughput::Bytes(file.bytes));
    // One iteration is a whole file, so equal-sized samples are enough.
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(FILE_SAMPLES);
    let id = |implementation: &str| format!("{}/{implementation}", file.name);

    let mut envoy_dd = Transformer::new(config.clone());
    group.bench_function("envoy_dd", |b| {
        cpu.measure(id("envoy_dd"), b, || {
            for record in file.records() {
                out.clear();
                black_box(envoy_dd.transform(black_box(record), &mut out));
                black_box(&out);
            }
        })
    });
    let mut serde_value = SerdeValue::new(&config);
    group.bench_function("serde_value", |b| {
        cpu.measure(id("serde_value"), b, || {
            for record in file.records() {
                out.clear();
                serde_value.transform(black_box(record), &mut out);
                black_box(&out);
            }
        })
    });
    let mut simd_borrowed = SimdBorrowed::new(&config);
    group.bench_function("simd_borrowed", |b| {
        cpu.measure(id("simd_borrowed"), b, || {
            for record in file.records() {
                out.clear();
                simd_borrowed.transform(black_box(record), &mut out);
                black_box(&out);
            }
        })
    });
    group.finish();
}

/// The id parsers on one typical value each, and a record's worth of candidates resolved.
fn bench_trace(c: &mut Criterion, cpu: &mut CpuTimes) {
    let traceparent = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let b3 = b"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1";
    let xray = b"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let parsers: [(&str, &dyn Fn() -> Option<trace::TraceContext>); 6] = [
        ("parse_datadog", &|| {
            let span = Some(black_box(&b"1764093298542618345"[..]));
            trace::parse_datadog(black_box(b"8213728164339164212"), span, None)
        }),
        ("parse_w3c", &|| trace::parse_w3c(black_box(traceparent))),
        ("parse_b3_multi", &|| {
            let span = Some(black_box(&b"e457b5a2e4d86bd1"[..]));
            trace::parse_b3_multi(black_box(b"80f198ee56343ba864fe8b2a57d3eff7"), span)
        }),
        ("parse_b3_single", &|| trace::parse_b3_single(black_box(b3))),
        ("parse_xray", &|| trace::parse_xray(black_box(xray))),
        // App Mesh's seed format with the Datadog headers missing, and a `traceparent`.
        ("candidates_resolve", &|| {
            let mut candidates = TraceCandidates::default();
            candidates.offer_raw_key(black_box(b"trace_id"), b"-");
            candidates.offer_raw_key(black_box(b"span_id"), b"-");
            candidates.offer_raw_key(black_box(b"traceparent"), traceparent);
            candidates.resolve()
        }),
    ];
    let mut group = c.benchmark_group("trace");
    group.sample_size(TRACE_SAMPLES);
    for (name, parse) in parsers {
        group.bench_function(name, |b| {
            cpu.measure(format!("trace/{name}"), b, || {
                black_box(parse());
            })
        });
    }
    group.finish();
}

/// The baselines must write what envoy-dd writes, or the comparison means nothing.
mod equivalence {
    use serde_json::{Number, Value};

    use super::*;

    /// Panics on the first record of the main corpus where an implementation differs from
    /// envoy-dd; for the other files, reports how many records agree.
    pub fn check(corpus: &Corpus) {
        let main = corpus.files.iter().find(|f| f.name == MAIN_CORPUS);
        if main.is_none() && std::env::var_os("ENVOY_DD_BENCH_CORPUS").is_none() {
            panic!("{}/{MAIN_CORPUS}.jsonl is missing", corpus.dir.display());
        }
        for file in &corpus.files {
            let (serde, simd, total) = compare_file(file, file.name == MAIN_CORPUS);
            eprintln!(
                "equivalence {}: serde_value {serde}/{total}, simd_borrowed {simd}/{total} records as envoy_dd",
                file.name
            );
        }
    }

    /// Counts the records on which each baseline agrees with envoy-dd.
    fn compare_file(file: &CorpusFile, strict: bool) -> (usize, usize, usize) {
        let config = config();
        let mut envoy_dd = Transformer::new(config.clone());
        let mut serde_value = SerdeValue::new(&config);
        let mut simd_borrowed = SimdBorrowed::new(&config);
        let (mut serde_ok, mut simd_ok, mut total) = (0, 0, 0);
        let (mut ours, mut actual) = (Vec::new(), Vec::new());
        for (i, record) in file.records().enumerate() {
            total += 1;
            ours.clear();
            envoy_dd.transform(record, &mut ours);
            let expected = parse(&ours);
            let mut agrees = |name: &str, transform: &mut dyn FnMut(&[u8], &mut Vec<u8>)| {
                actual.clear();
                transform(record, &mut actual);
                let same = actual == ours || (expected.is_some() && parse(&actual) == expected);
                if strict && !same {
                    panic!(
                        "{name} differs from envoy_dd on {}.jsonl record {}:\n  input:    {}\n  envoy_dd: {}\n  {name}: {}",
                        file.name,
                        i + 1,
                        String::from_utf8_lossy(record),
                        String::from_utf8_lossy(&ours),
                        String::from_utf8_lossy(&actual),
                    );
                }
                same as usize
            };
            serde_ok += agrees("serde_value", &mut |r, o| serde_value.transform(r, o));
            simd_ok += agrees("simd_borrowed", &mut |r, o| simd_borrowed.transform(r, o));
        }
        (serde_ok, simd_ok, total)
    }

    /// The output as a value, numbers compared by value, objects regardless of key order;
    /// `None` when serde_json cannot read it (not JSON, or nested too deeply to compare).
    fn parse(output: &[u8]) -> Option<Value> {
        serde_json::from_slice(output).ok().map(canonical)
    }

    fn canonical(value: Value) -> Value {
        match value {
            Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => u.into(),
                (_, Some(i), _) => i.into(),
                (_, _, f) => f
                    .and_then(Number::from_f64)
                    .map_or(Value::Number(n), Value::Number),
            },
            Value::Array(items) => items.into_iter().map(canonical).collect(),
            Value::Object(map) => {
                Value::Object(map.into_iter().map(|(k, v)| (k, canonical(v))).collect())
            }
            other => other,
        }
    }
}

/// The table for BENCHMARKS.md, from the estimates criterion saved during this run.
mod summary {
    use super::*;

    /// Wall clock from criterion's estimates, CPU time from `cpu`; "speed-up" is how many
    /// times faster envoy_dd is than the implementation in that row.
    pub fn print(corpus: &Corpus, cpu: &CpuTimes, started: SystemTime) {
        let wall = WallTimes::of_run(started);
        let wall = |id: &str| wall.seconds(id);
        println!("\n| corpus | implementation | MB/s | records/s | speed-up | CPU MB/s | CPU records/s | CPU speed-up | core share |");
        println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for file in &corpus.files {
            let id = |implementation: &str| format!("{}/{implementation}", file.name);
            let (ours_wall, ours_cpu) = (
                wall(&id("envoy_dd")),
                cpu.seconds(&id("envoy_dd"), FILE_SAMPLES),
            );
            for name in IMPLEMENTATIONS {
                let (Some(secs), Some(cpu_secs)) =
                    (wall(&id(name)), cpu.seconds(&id(name), FILE_SAMPLES))
                else {
                    continue;
                };
                let speed_up = |ours: Option<f64>, theirs: f64| match ours {
                    Some(ours) if name != "envoy_dd" => format!("{:.1}x", theirs / ours),
                    _ => String::new(),
                };
                let (records, bytes) = (file.records.len() as f64, file.bytes as f64);
                println!(
                    "| {} | {name} | {:.0} | {:.0} | {} | {:.0} | {:.0} | {} | {:.0} % |",
                    file.name,
                    bytes / secs / 1e6,
                    records / secs,
                    speed_up(ours_wall, secs),
                    bytes / cpu_secs / 1e6,
                    records / cpu_secs,
                    speed_up(ours_cpu, cpu_secs),
                    100.0 * cpu_secs / secs,
                );
            }
        }
        println!("\n| function | ns per call | CPU ns per call |");
        println!("|---|---:|---:|");
        for (id, _) in cpu.0.iter().filter(|(id, _)| id.starts_with("trace/")) {
            if let (Some(secs), Some(cpu_secs)) = (wall(id), cpu.seconds(id, TRACE_SAMPLES)) {
                println!("| {id} | {:.0} | {:.0} |", secs * 1e9, cpu_secs * 1e9);
            }
        }
    }
}
