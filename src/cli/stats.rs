//! The counters behind `envoy-dd transform --stats`, and the summary they print.

use std::io::{self, Write};

use envoy_dd::{Error, LogKept, Outcome, Shape, TraceSource};

/// What happened to the lines of a run.
#[derive(Debug, Default)]
pub struct Stats {
    /// Lines that were empty or only white space (passed through, not records).
    blank: u64,
    /// Records written enriched.
    enriched: u64,
    /// Records passed through unchanged, by [`reason_index`].
    passed_through: [u64; REASONS.len()],
    /// Records passed through because the transform panicked (a bug).
    internal_errors: u64,
    /// Enriched records by shape.
    log_json: u64,
    log_text: u64,
    log_kept: [u64; LOG_KEPT.len()],
    bare: u64,
    /// Enriched records of a shape this binary does not know by name.
    other_shape: u64,
    /// Enriched records in which a response code was found.
    access_logs: u64,
    /// Enriched records by the source of `dd.trace_id`, in [`TraceSource::ALL`] order.
    traces: [u64; TraceSource::ALL.len()],
    /// Enriched records without a valid `dd.trace_id`.
    no_trace: u64,
}

/// [`Error::reason`] of each error, in [`reason_index`] order; `other` for a kind this
/// binary does not know by name (the library's enums may grow).
const REASONS: [&str; 5] = [
    Error::Json(envoy_dd::ReadError {
        kind: envoy_dd::SyntaxError::Unexpected,
        offset: 0,
    })
    .reason(),
    Error::InvalidUtf8 { valid_up_to: 0 }.reason(),
    Error::DuplicateKey { offset: 0 }.reason(),
    Error::TooLarge { len: 0 }.reason(),
    "other",
];

/// [`LogKept::reason`] of each reason, in [`log_kept_index`] order.
const LOG_KEPT: [&str; 5] = [
    LogKept::NotJson.reason(),
    LogKept::InvalidJson.reason(),
    LogKept::DuplicateKey.reason(),
    LogKept::KeyConflict.reason(),
    "other",
];

/// Where an error is counted. `tests::reasons_match_the_library` checks every kind the
/// library has today against [`REASONS`].
fn reason_index(error: &Error) -> usize {
    match error {
        Error::Json(_) => 0,
        Error::InvalidUtf8 { .. } => 1,
        Error::DuplicateKey { .. } => 2,
        Error::TooLarge { .. } => 3,
        _ => 4,
    }
}

/// Where a kept `log` is counted (as [`reason_index`]).
fn log_kept_index(why: LogKept) -> usize {
    match why {
        LogKept::NotJson => 0,
        LogKept::InvalidJson => 1,
        LogKept::DuplicateKey => 2,
        LogKept::KeyConflict => 3,
        _ => 4,
    }
}

impl Stats {
    /// Counts a blank line.
    pub fn blank(&mut self) {
        self.blank += 1;
    }

    /// Counts a record passed through because the transform panicked.
    pub fn internal_error(&mut self) {
        self.internal_errors += 1;
    }

    /// Counts one record's outcome.
    pub fn record(&mut self, outcome: &Outcome) {
        let done = match outcome {
            Outcome::PassedThrough(error) => {
                self.passed_through[reason_index(error)] += 1;
                return;
            }
            Outcome::Enriched(done) => done,
        };
        self.enriched += 1;
        match done.shape {
            Shape::LogJson => self.log_json += 1,
            Shape::LogText => self.log_text += 1,
            Shape::LogKept(why) => self.log_kept[log_kept_index(why)] += 1,
            Shape::Bare => self.bare += 1,
            _ => self.other_shape += 1,
        }
        self.access_logs += u64::from(done.access_log);
        match done
            .trace
            .and_then(|source| TraceSource::ALL.iter().position(|&s| s == source))
        {
            Some(i) => self.traces[i] += 1,
            None => self.no_trace += 1,
        }
    }

    /// Writes the summary as aligned plain text. Breakdowns list only the non-zero rows.
    pub fn write(&self, out: &mut impl Write) -> io::Result<()> {
        let passed_through = self.passed_through.iter().sum::<u64>() + self.internal_errors;
        let log_kept: u64 = self.log_kept.iter().sum();
        let mut rows = Rows::default();
        rows.add(0, "records", Some(self.enriched + passed_through));
        rows.add(1, "enriched", Some(self.enriched));
        rows.add(1, "passed through", Some(passed_through));
        rows.breakdown(2, &REASONS, &self.passed_through);
        rows.breakdown(2, &["internal_error"], &[self.internal_errors]);
        rows.add(0, "blank lines", Some(self.blank));
        rows.add(0, "shapes (enriched)", None);
        rows.add(1, "log_json", Some(self.log_json));
        rows.add(1, "log_text", Some(self.log_text));
        rows.add(1, "log_kept", Some(log_kept));
        rows.breakdown(2, &LOG_KEPT, &self.log_kept);
        rows.add(1, "bare", Some(self.bare));
        rows.breakdown(1, &["other"], &[self.other_shape]);
        rows.add(0, "access logs", Some(self.access_logs));
        rows.add(0, "trace ids by source", None);
        rows.breakdown(1, &TraceSource::ALL.map(TraceSource::name), &self.traces);
        rows.add(1, "none", Some(self.no_trace));
        rows.write(out)
    }
}

/// Indented label–count rows, printed with the counts right-aligned in one column.
#[derive(Default)]
struct Rows(Vec<(usize, &'static str, Option<u64>)>);

impl Rows {
    /// A row at indentation `depth`; without a count it is a heading.
    fn add(&mut self, depth: usize, label: &'static str, count: Option<u64>) {
        self.0.push((depth, label, count));
    }

    /// One row per non-zero count.
    fn breakdown(&mut self, depth: usize, labels: &[&'static str], counts: &[u64]) {
        for (&label, &count) in labels.iter().zip(counts).filter(|(_, &count)| count > 0) {
            self.add(depth, label, Some(count));
        }
    }

    /// Writes the rows, labels padded to the longest counted one.
    fn write(&self, out: &mut impl Write) -> io::Result<()> {
        let digits = |n: u64| n.checked_ilog10().unwrap_or(0) as usize + 1;
        let label_width = self
            .0
            .iter()
            .filter(|r| r.2.is_some())
            .map(|&(d, l, _)| 2 * d + l.len())
            .max()
            .unwrap_or(0);
        let count_width = self
            .0
            .iter()
            .filter_map(|r| r.2)
            .map(digits)
            .max()
            .unwrap_or(1);
        for &(depth, label, count) in &self.0 {
            let indent = 2 * depth;
            match count {
                Some(n) => writeln!(
                    out,
                    "{:indent$}{label:<w$}  {n:>count_width$}",
                    "",
                    w = label_width - indent
                )?,
                None => writeln!(out, "{:indent$}{label}", "")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_dd::{Config, Transformer};

    #[test]
    fn reasons_match_the_library() {
        let mut t = Transformer::new(Config::default());
        for (input, reason) in [
            (&b"{"[..], "invalid_json"),
            (b"{\"a\":\"\xff\"}", "invalid_utf8"),
            (b"{\"a\":1,\"a\":2}", "duplicate_key"),
        ] {
            let Outcome::PassedThrough(error) = t.transform(input, &mut Vec::new()) else {
                panic!()
            };
            assert_eq!(error.reason(), reason);
            assert_eq!(REASONS[reason_index(&error)], reason);
        }
    }

    #[test]
    fn summary() {
        let mut t = Transformer::new(Config::default());
        let mut stats = Stats::default();
        for input in [
            &br#"{"method":"GET","response_code":200,"x-datadog-trace-id":"5","x-datadog-parent-id":"6"}"#[..],
            br#"{"log":"{\"response_code\":503,\"traceparent\":\"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\"}"}"#,
            br#"{"log":"[info][main] starting"}"#,
            b"not json",
        ] {
            stats.record(&t.transform(input, &mut Vec::new()));
        }
        stats.internal_error();
        stats.blank();
        let mut out = Vec::new();
        stats.write(&mut out).unwrap();
        let expected = "\
records             5
  enriched          3
  passed through    2
    invalid_json    1
    internal_error  1
blank lines         1
shapes (enriched)
  log_json          1
  log_text          0
  log_kept          1
    not_json        1
  bare              1
access logs         2
trace ids by source
  datadog           1
  w3c               1
  none              1
";
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }
}
