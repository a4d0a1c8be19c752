//! The native instruction count per record in BENCHMARKS.md: transforms the first 200 records
//! of a corpus `PASSES` times, after 3 warm-up passes, so that under callgrind
//!
//! ```text
//! instructions per record = (Ir with PASSES=20 - Ir with PASSES=0) / (20 * 200)
//! ```
//!
//! counts the transform of warm records alone: reading the file, building the transformer and
//! the warm-up passes (which learn the record layouts) are in both runs and cancel out.
//! `benches/callgrind.sh` runs both and prints the count.
//!
//! ```sh
//! cargo build --release --example callgrind
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/callgrind fixtures/input/firelens-appmesh.jsonl 20
//! ```
//!
//! Arguments: a JSON-lines file, or `text` for the generated stream of `benches/text.rs`
//! (default-format Envoy lines in FireLens records, with that benchmark's `hash`); the number
//! of passes; and optionally `--keep-source-attributes`.

use std::hint::black_box;
use std::process::ExitCode;

use envoy_dd::{Config, Transformer};

#[path = "../benches/common/text_stream.rs"]
mod text_stream;

/// Records per pass: the first of the corpus.
const RECORDS: usize = 200;
/// Passes before the counted ones, so that every record is read as a warm stream reads it.
const WARM_UP: usize = 3;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (corpus, passes, keep) = match args.as_slice() {
        [corpus, passes] => (corpus, passes, false),
        [corpus, passes, flag] if flag == "--keep-source-attributes" => (corpus, passes, true),
        _ => return usage(),
    };
    let Ok(passes) = passes.parse::<usize>() else {
        return usage();
    };
    let mut config = Config {
        keep_source_attributes: keep,
        ..Config::default()
    };
    let records = if corpus == "text" {
        config.hash = Some("4f9c2a17e0b3".into());
        let lines = text_stream::default_lines();
        lines
            .iter()
            .take(RECORDS)
            .map(|l| text_stream::firelens(l))
            .collect()
    } else {
        match std::fs::read(corpus) {
            Ok(bytes) => first_records(&bytes),
            Err(e) => {
                eprintln!("callgrind: {corpus}: {e}");
                return ExitCode::FAILURE;
            }
        }
    };

    let mut transformer = Transformer::new(config);
    let mut out = Vec::with_capacity(1 << 16);
    let mut written = 0;
    for _ in 0..WARM_UP + passes {
        for record in &records {
            out.clear();
            black_box(transformer.transform(black_box(record), &mut out));
            written += out.len();
        }
    }
    println!(
        "{} records, {passes} passes, {written} bytes written",
        records.len()
    );
    ExitCode::SUCCESS
}

/// The first [`RECORDS`] non-empty lines.
fn first_records(bytes: &[u8]) -> Vec<Vec<u8>> {
    let lines = bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    lines.take(RECORDS).map(<[u8]>::to_vec).collect()
}

fn usage() -> ExitCode {
    eprintln!("usage: callgrind <FILE.jsonl | text> <PASSES> [--keep-source-attributes]");
    ExitCode::FAILURE
}
