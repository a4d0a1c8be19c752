//! Timing for the benches next to criterion's own: the CPU time of the bench thread per
//! benchmark, and the wall-clock means criterion saved, to print the tables of BENCHMARKS.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use criterion::Bencher;

/// The CPU time the bench thread spent in each benchmark, by `group/function`, next to
/// criterion's wall clock: on a shared machine the thread does not get a whole core, and the
/// ratio of the two says how much of one it got. (In a virtual machine, what the host's other
/// guests take from the core does not show in either.)
#[derive(Default)]
pub struct CpuTimes(pub BTreeMap<String, Vec<Call>>);

/// One call of criterion's timing routine: warm-up first, then one per sample.
pub struct Call {
    iterations: u64,
    cpu_nanos: u64,
}

impl CpuTimes {
    /// Times `iterations` runs of `run` for criterion (wall clock), and records their CPU time
    /// under benchmark `id`.
    pub fn measure(&mut self, id: String, b: &mut Bencher<'_>, mut run: impl FnMut()) {
        let calls = self.0.entry(id).or_default();
        b.iter_custom(|iterations| {
            let cpu = thread_cpu_nanos();
            let start = Instant::now();
            for _ in 0..iterations {
                run();
            }
            let wall = start.elapsed();
            if let (Some(before), Some(after)) = (cpu, thread_cpu_nanos()) {
                let cpu_nanos = after.saturating_sub(before);
                calls.push(Call {
                    iterations,
                    cpu_nanos,
                });
            }
            wall
        })
    }

    /// CPU seconds per iteration of benchmark `id` over its last `samples` calls (the
    /// measurement, without the warm-up), if it ran.
    pub fn seconds(&self, id: &str, samples: usize) -> Option<f64> {
        let calls = self.0.get(id)?;
        let measured = &calls[calls.len().saturating_sub(samples)..];
        let iterations: u64 = measured.iter().map(|c| c.iterations).sum();
        let nanos: u64 = measured.iter().map(|c| c.cpu_nanos).sum();
        (iterations > 0 && nanos > 0).then(|| nanos as f64 / 1e9 / iterations as f64)
    }
}

/// CPU time of this thread in nanoseconds (Linux; scheduler-tick resolution, which is plenty
/// over seconds of runs).
fn thread_cpu_nanos() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// The wall-clock means criterion saved for the benchmarks measured since a run started.
pub struct WallTimes {
    dir: PathBuf,
    started: SystemTime,
}

impl WallTimes {
    /// Criterion's estimates for a run that started at `started`, in criterion's directory
    /// (found the way criterion finds it, less `cargo metadata`).
    pub fn of_run(started: SystemTime) -> WallTimes {
        let dir = match std::env::var_os("CRITERION_HOME") {
            Some(home) => PathBuf::from(home),
            None => std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
                .join("criterion"),
        };
        WallTimes { dir, started }
    }

    /// The mean time of one iteration of benchmark `id` (`group/function`, with the function
    /// named as criterion names its folder), if it was measured by this run.
    pub fn seconds(&self, id: &str) -> Option<f64> {
        let path = self.dir.join(id).join("new/estimates.json");
        let fresh = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= self.started);
        if !fresh {
            return None;
        }
        let estimates: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        Some(estimates["mean"]["point_estimate"].as_f64()? / 1e9)
    }
}
