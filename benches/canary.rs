//! Throughput of `envoy-dd canary`'s reading: raw FireLens records in, tallies per version
//! and endpoint out, against the transform alone on the same records in the same run.
//!
//! ```sh
//! cargo bench --bench canary
//! cargo test --bench canary     # one pass
//! ```
//!
//! Two corpora: a simulated release (tests/release, 20,000 requests of 12 endpoints, a fixed
//! seed) and fixtures/input/firelens-appmesh.jsonl. Throughput is in input bytes; the target
//! is 300 MB/s per core. Three ways through the same records, in one run:
//!
//! * `transform`: the transform alone, writing each record (the baseline);
//! * `canary_read`: the judge's reader, which reads and plans each record as the transform
//!   does and takes the fields it needs from the plan, without writing the record;
//! * `write_then_read`: writing each record with the transform and reading the fields from
//!   the written record (the way the reader worked before, for comparison).

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use envoy_dd::canary::input::{Options, Reader};
use envoy_dd::{Config, Transformer};

#[path = "../tests/release/mod.rs"]
mod release;

fn main() {
    let simulated: Vec<Vec<u8>> = {
        let r = release::Release::identical(11, 20_000).with(11, release::Change::ErrorRate(0.3));
        r.requests().map(|q| r.line(&q).into_bytes()).collect()
    };
    let fixture: Vec<Vec<u8>> = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/input/firelens-appmesh.jsonl"
    ))
    .unwrap()
    .split(|&b| b == b'\n')
    .filter(|l| !l.is_empty())
    .map(<[u8]>::to_vec)
    .collect();

    let mut criterion = Criterion::default().configure_from_args();
    for (name, records) in [
        ("simulated_release", &simulated),
        ("firelens_appmesh", &fixture),
    ] {
        let bytes: usize = records.iter().map(Vec::len).sum();
        let mut group = criterion.benchmark_group(format!("canary/{name}"));
        group.throughput(Throughput::Bytes(bytes as u64));
        let config = Config {
            hash: None,
            phase: None,
            message: false,
            ..Config::default()
        };
        let mut transformer = Transformer::new(config);
        let mut out = Vec::with_capacity(1 << 16);
        group.bench_function("transform", |b| {
            b.iter(|| {
                for record in records.iter() {
                    out.clear();
                    black_box(transformer.transform(record, &mut out));
                }
            })
        });
        group.bench_function("canary_read", |b| {
            b.iter(|| {
                let mut reader = Reader::new(Options::default());
                for record in records.iter() {
                    reader.read(record);
                }
                black_box(reader.records())
            })
        });
        group.bench_function("write_then_read", |b| {
            b.iter(|| {
                let mut reader = Reader::new(Options::default());
                for record in records.iter() {
                    out.clear();
                    transformer.transform(record, &mut out);
                    reader.read(&out);
                }
                black_box(reader.records())
            })
        });
        group.finish();
        // What was read is what was generated: every record counted.
        let mut reader = Reader::new(Options::default());
        for record in records.iter() {
            reader.read(record);
        }
        let (_, tallies, skipped) = reader.finish(None, None).unwrap();
        let counted = tallies.total().baseline.requests + tallies.total().canary.requests;
        assert_eq!(counted + skipped.total(), records.len() as u64);
    }
    criterion.final_summary();
}
