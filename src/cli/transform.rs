//! `envoy-dd transform`: JSON Lines in, exactly one line out per line in, in order.
//!
//! Lines are read as bytes, so a line that is not UTF-8 reaches the library, which passes it
//! through unchanged like any other record it cannot enrich. Such lines are reported on
//! standard error as `FILE:LINE: passed through: REASON`; they never stop the run.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Read, Write};
use std::panic::{self, AssertUnwindSafe};

use envoy_dd::{Config, Outcome, Transformer};

use super::args::{Input, TransformOptions};
use super::progress::Progress;
use super::stats::Stats;
use super::{describe, say, EXIT_IO};

/// Large buffers keep system calls out of the per-line cost.
const READ_BUFFER: usize = 1 << 20;
const WRITE_BUFFER: usize = 1 << 20;
/// Input larger than this gets a progress bar by default (when standard error is a terminal).
const PROGRESS_THRESHOLD: u64 = 8 << 20;
/// Passed-through lines reported one by one; the rest are only counted.
const MAX_REPORTS: u64 = 100;

/// Runs `envoy-dd transform`; returns the exit code.
pub fn run(options: TransformOptions) -> u8 {
    warn_about_config(&options.config);
    let total = total_size(&options.inputs);
    let show_progress = options.progress.unwrap_or_else(|| {
        io::stderr().is_terminal() && total.is_some_and(|size| size > PROGRESS_THRESHOLD)
    });
    let mut job = Job {
        transformer: Transformer::new(options.config),
        line: Vec::new(),
        record: Vec::new(),
        stats: Stats::default(),
        reports: Reports {
            quiet: options.quiet,
            shown: 0,
            hidden: 0,
        },
        progress: Progress::new(show_progress, total),
    };
    // Rust's standard output drops what is written to a closed descriptor without an error:
    // without this check, `envoy-dd transform FILE >&-` would lose every record and succeed.
    if let Err(error) = super::stdout_is_open() {
        return write_failed(&error);
    }
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, io::stdout().lock());
    let mut failed = false;

    for input in &options.inputs {
        let name = match input {
            Input::Stdin => "<stdin>".to_owned(),
            Input::File(path) => path.display().to_string(),
        };
        let result = match input {
            Input::Stdin => job.copy(
                &name,
                BufReader::with_capacity(READ_BUFFER, io::stdin().lock()),
                &mut out,
            ),
            Input::File(path) => match File::open(path) {
                Ok(file) => job.copy(&name, BufReader::with_capacity(READ_BUFFER, file), &mut out),
                Err(e) => Err(Failure::Open(e)),
            },
        };
        let (verb, error) = match result {
            Ok(()) => continue,
            Err(Failure::Write(error)) => {
                job.progress.clear();
                return write_failed(&error);
            }
            Err(Failure::Open(error)) => ("open", error),
            Err(Failure::Read(error)) => ("read", error),
        };
        // Like `cat`: report the input, go on with the next one, fail at the end.
        job.progress.clear();
        say(format_args!("cannot {verb} {name}: {}", describe(&error)));
        failed = true;
    }
    if let Err(error) = out.flush() {
        job.progress.clear();
        return write_failed(&error);
    }

    job.progress.clear();
    job.reports.finish();
    if options.stats {
        let _ = job.stats.write(&mut io::stderr().lock());
    }
    if failed {
        EXIT_IO
    } else {
        0
    }
}

/// The state of one run, shared by all of its inputs.
struct Job {
    /// One transformer for the whole run: it keeps its working memory between records.
    transformer: Transformer,
    /// The line being read.
    line: Vec<u8>,
    /// The line being written.
    record: Vec<u8>,
    stats: Stats,
    reports: Reports,
    progress: Progress,
}

/// Why an input was abandoned, or the whole run.
enum Failure {
    Open(io::Error),
    Read(io::Error),
    Write(io::Error),
}

impl Job {
    /// Transforms every line of `reader` into `out`. `name` is the input's name in reports.
    fn copy<R: Read>(
        &mut self,
        name: &str,
        mut reader: BufReader<R>,
        out: &mut impl Write,
    ) -> Result<(), Failure> {
        let mut number = 0u64;
        loop {
            // Before a read that may block, hand on what is done: `tail -f | envoy-dd transform`
            // shows each line as it comes, while a file is still written in large chunks.
            if reader.buffer().is_empty() {
                out.flush().map_err(Failure::Write)?;
            }
            self.line.clear();
            let read = reader
                .read_until(b'\n', &mut self.line)
                .map_err(Failure::Read)?;
            if read == 0 {
                return Ok(());
            }
            number += 1;
            self.progress.advance(read);

            let mut line = strip_line_end(&self.line);
            if number == 1 {
                // A byte order mark that an editor put before the first line is not data.
                line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
            }
            self.record.clear();
            if line.trim_ascii().is_empty() {
                // Not a record; kept so that output line N still matches input line N.
                self.stats.blank();
                self.record.extend_from_slice(line);
            } else {
                // The transform does not panic; should a bug make it, this line still comes
                // out unchanged and the run goes on with a fresh transformer.
                let transformer = &mut self.transformer;
                let record = &mut self.record;
                match panic::catch_unwind(AssertUnwindSafe(|| transformer.transform(line, record)))
                {
                    Ok(outcome) => {
                        self.stats.record(&outcome);
                        if let Outcome::PassedThrough(error) = outcome {
                            self.reports
                                .report(name, number, &error, &mut self.progress);
                        }
                    }
                    Err(_) => {
                        self.transformer = Transformer::new(self.transformer.config().clone());
                        self.record.clear();
                        self.record.extend_from_slice(line);
                        self.stats.internal_error();
                        let reason = "internal error (a bug in envoy-dd: please report this line)";
                        self.reports
                            .report(name, number, &reason, &mut self.progress);
                    }
                }
            }
            self.record.push(b'\n');
            out.write_all(&self.record).map_err(Failure::Write)?;
        }
    }
}

/// `line` without its `\n` or `\r\n` (a last line may have neither).
fn strip_line_end(line: &[u8]) -> &[u8] {
    match line.strip_suffix(b"\n") {
        Some(line) => line.strip_suffix(b"\r").unwrap_or(line),
        None => line,
    }
}

/// The per-line reports on standard error, capped at [`MAX_REPORTS`].
struct Reports {
    quiet: bool,
    shown: u64,
    hidden: u64,
}

impl Reports {
    /// Reports that line `number` of input `name` was passed through because of `error`.
    fn report(
        &mut self,
        name: &str,
        number: u64,
        reason: &dyn fmt::Display,
        progress: &mut Progress,
    ) {
        if self.quiet {
            return;
        }
        if self.shown == MAX_REPORTS {
            self.hidden += 1;
            return;
        }
        self.shown += 1;
        progress.clear();
        say(format_args!("{name}:{number}: passed through: {reason}"));
    }

    /// Says how many reports were left out.
    fn finish(&self) {
        if self.hidden > 0 {
            say(format_args!(
                "{} more passed-through lines not shown",
                self.hidden
            ));
        }
    }
}

/// The exit code after standard output failed. A closed pipe (`| head`) means the reader has
/// all it wants: stop quietly and successfully.
fn write_failed(error: &io::Error) -> u8 {
    if error.kind() == io::ErrorKind::BrokenPipe {
        return 0;
    }
    say(format_args!(
        "cannot write to standard output: {}",
        describe(error)
    ));
    EXIT_IO
}

/// Warns about a configured `hash` or `phase` that will not do what was probably meant.
fn warn_about_config(config: &Config) {
    for (key, value) in [("hash", &config.hash), ("phase", &config.phase)] {
        // An empty value is how to switch the environment's default off: no warning.
        let Some(value) = value.as_deref().filter(|v| !v.is_empty()) else {
            continue;
        };
        if envoy_dd::is_placeholder(value.as_bytes()) {
            say(format_args!(
                "warning: ignoring {key} '{value}': a placeholder counts as unset"
            ));
        } else if key == "phase" && value != "stable" && value != "canary" {
            say(format_args!(
                "warning: phase '{value}' is neither 'stable' nor 'canary'; using it anyway"
            ));
        }
    }
}

/// The total input size in bytes, when every input is a regular file (a missing file counts
/// as empty; it is reported when opened).
fn total_size(inputs: &[Input]) -> Option<u64> {
    inputs
        .iter()
        .map(|input| match input {
            Input::Stdin => stdin_size(),
            Input::File(path) => match fs::metadata(path) {
                Ok(meta) => meta.is_file().then_some(meta.len()),
                Err(_) => Some(0),
            },
        })
        .sum()
}

/// The size of standard input when it is a regular file (`envoy-dd transform < big.jsonl`).
#[cfg(unix)]
fn stdin_size() -> Option<u64> {
    use std::os::fd::AsFd;
    // A duplicate of the descriptor, only to ask for its metadata.
    let stdin = File::from(io::stdin().as_fd().try_clone_to_owned().ok()?);
    let meta = stdin.metadata().ok()?;
    meta.is_file().then_some(meta.len())
}

/// The size of standard input, unknown on this platform.
#[cfg(not(unix))]
fn stdin_size() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends() {
        assert_eq!(strip_line_end(b"{}\n"), b"{}");
        assert_eq!(strip_line_end(b"{}\r\n"), b"{}");
        assert_eq!(strip_line_end(b"{}"), b"{}");
        assert_eq!(strip_line_end(b"{}\r"), b"{}\r");
        assert_eq!(strip_line_end(b"\r\r\n"), b"\r");
    }
}
