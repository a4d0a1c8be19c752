//! Writes a simulated release to standard output: FireLens records of a stable version and a
//! canary (5 % of the traffic), for trying `envoy-dd canary`.
//!
//! ```text
//! cargo run --example canary_release -- [REQUESTS] [SEED] [spike|slow|same] > release.jsonl
//! envoy-dd canary release.jsonl
//! ```
//!
//! `spike`: the canary fails 30 % of the requests of an endpoint with 1 % of the traffic;
//! `slow`: the canary is 1.5 times slower on an endpoint with 15 % of it; `same` (default):
//! the canary behaves as the baseline.

#[path = "../tests/release/mod.rs"]
mod release;

use std::io::{self, BufWriter, Write};

use release::{Change, Release};

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let requests = args.first().and_then(|a| a.parse().ok()).unwrap_or(60_000);
    let seed = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let mut release = Release::identical(seed, requests);
    match args.get(2).map(String::as_str) {
        Some("spike") => release = release.with(11, Change::ErrorRate(0.3)),
        Some("slow") => release = release.with(1, Change::Slower(1.5)),
        _ => {}
    }
    let mut out = BufWriter::new(io::stdout().lock());
    for r in release.requests() {
        writeln!(out, "{}", release.line(&r))?;
    }
    out.flush()
}
