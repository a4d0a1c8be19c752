//! `envoy-dd canary`: read access logs of two versions, judge the canary, print the report,
//! exit with the verdict.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::PathBuf;

use envoy_dd::canary::input::{self, By, Options as ReadOptions, Reader};
use envoy_dd::canary::report::{self, Report};
use envoy_dd::canary::{judge, Correction, Settings, Tallies, Verdict};
use envoy_dd::endpoint::Routes;
use envoy_dd::TextFormat;

use super::args::{Arg, ArgReader, Command, Input, Topic, UsageError};
use super::{describe, say, EXIT_IO};

/// Exit code of a canary that is worse than the baseline.
pub const EXIT_FAIL: u8 = 3;
/// Exit code of a canary with too little traffic to judge.
pub const EXIT_INCONCLUSIVE: u8 = 4;

/// Printed after a usage error in `envoy-dd canary`.
pub const USAGE: &str = "\
Usage: envoy-dd canary [OPTIONS] [FILE...]
Run 'envoy-dd canary --help' for the options.
";

/// `envoy-dd canary --help`.
pub const HELP: &str = "\
Judge a canary release from access logs: per endpoint, is the canary's error rate or latency
worse than the baseline's by more than allowed, or is there too little traffic to tell?

Usage: envoy-dd canary [OPTIONS] [FILE...]

Reads each FILE (standard input when there is none, and for '-'; gzip-compressed files are
recognised): raw FireLens records or bare Envoy records (enriched on the fly, as 'transform'
does), records already enriched, or Datadog log archives (attributes under 'attributes').

Versions:
      --by phase|hash|revision
                             What tells the two versions apart [default: phase when records
                             have both 'stable' and 'canary', else the task definition
                             revision, else the hash]
      --canary VALUE         The canary's hash or revision [default: the higher revision;
                             the hash with fewer requests]
      --since TIME           Only records at or after TIME (RFC 3339, e.g.
                             2026-12-07T14:00:00Z, seconds since the epoch, or a duration
                             before now such as 30m)
      --until TIME           Only records before TIME

Endpoints:
      --route TEMPLATE       A route template such as 'GET /users/{id}', which wins over the
                             inferred endpoint (repeatable)
      --routes FILE          Route templates, one per line
      --text-format FORMAT   The Envoy format string of text access logs in 'log'

Judging:
      --alpha A              Chance that a release like the baseline fails [default: 0.05]
      --correction holm|bh   Adjustment for many tests [default: holm]
      --min-error-increase PCT
                             Smallest error-rate increase worth failing for, in percentage
                             points [default: 1]
      --min-error-ratio R    Smallest canary/baseline error-rate ratio worth failing for
                             [default: 1.5]
      --latency-quantile Q   Latency quantile compared, e.g. 0.95 or 99 [default: 0.95]
      --min-latency-increase MS
                             Smallest increase at that quantile worth failing for [default: 5]
      --min-latency-ratio R  Smallest canary/baseline ratio at that quantile [default: 1.2]
      --power P              Chance of seeing the smallest error-rate increase that an
                             endpoint needs to be conclusive [default: 0.8]

Datadog (instead of FILEs):
      --datadog              Count with Datadog's Logs Aggregate API over a window: the keys
                             from DD_API_KEY and DD_APP_KEY (scope logs_read_data), the site
                             from DD_SITE [default: datadoghq.com]; keys are never printed
      --query QUERY          The log query that selects the service [required], e.g.
                             'service:api env:prod'
      --since DURATION       The window: the last 30m, 2h, 1d [default: 30m]; or --since and
                             --until TIME as above
      --from TIME, --to TIME The window in Datadog's own terms: date math (now-1h), ISO 8601
                             or milliseconds since the epoch
      --index NAME           A log index to search (repeatable) [default: all]

Output:
      --format table|json    The report on standard output [default: table]
      --html FILE            Also write a self-contained HTML report to FILE
  -h, --help                 Show this help

Records that cannot be counted (no response code, no version label, unparseable, outside
the time window) are counted by reason on standard error.

Exit status: 0 pass, 3 fail, 4 inconclusive, 1 error (unreadable input, nothing to
compare, Datadog unreachable or refusing), 2 usage error.
";

/// The report on standard output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A table for people.
    Table,
    /// The JSON report.
    Json,
}

/// The options of `envoy-dd canary`.
#[derive(Debug)]
pub struct CanaryOptions {
    /// What tells the versions apart (`None`: choose).
    pub by: Option<By>,
    /// The canary's label value, for `hash` and `revision`.
    pub canary: Option<String>,
    /// How records are read.
    pub read: ReadOptions,
    /// How the judge decides.
    pub settings: Settings,
    /// The report on standard output.
    pub format: Format,
    /// Where to write the HTML report.
    pub html: Option<PathBuf>,
    /// The inputs in order; never empty.
    pub inputs: Vec<Input>,
    /// `--datadog`: count with Datadog's Logs Aggregate API instead of reading inputs.
    #[cfg(feature = "datadog")]
    pub datadog: Option<envoy_dd::datadog::aggregate::Query>,
}

impl PartialEq for CanaryOptions {
    fn eq(&self, other: &Self) -> bool {
        // Compared in tests of the argument parser only.
        format!("{self:?}") == format!("{other:?}")
    }
}

/// Parses the arguments after `canary`.
pub fn parse(args: impl Iterator<Item = OsString>) -> Result<Command, UsageError> {
    let usage = |message: String| UsageError {
        message,
        topic: Topic::Canary,
    };
    let mut o = CanaryOptions {
        by: None,
        canary: None,
        read: ReadOptions::default(),
        settings: Settings::default(),
        format: Format::Table,
        html: None,
        inputs: Vec::new(),
        #[cfg(feature = "datadog")]
        datadog: None,
    };
    let mut templates = String::new();
    // `--since` and `--until` are read once it is known whether they bound records or a
    // Datadog query (`--since 30m`).
    let (mut since, mut until) = (None, None);
    let mut datadog = DatadogOptions::default();
    let mut args = ArgReader::new(args, Topic::Canary);
    while let Some(arg) = args.next()? {
        let name = match arg {
            Arg::Input(input) => {
                o.inputs.push(input);
                continue;
            }
            Arg::Option(name) => name,
        };
        let name = name.as_str();
        let mut value = || args.value();
        let number = |text: String, lo: f64, hi: f64| -> Result<f64, UsageError> {
            match text.parse::<f64>() {
                Ok(v) if (lo..=hi).contains(&v) => Ok(v),
                _ => Err(usage(format!(
                    "{name} must be a number from {lo} to {hi}, not '{text}'"
                ))),
            }
        };
        let s = &mut o.settings;
        match name {
            "--by" => {
                o.by = Some(match value()?.as_str() {
                    "phase" => By::Phase,
                    "hash" => By::Hash,
                    "revision" => By::Revision,
                    other => {
                        return Err(usage(format!(
                            "--by must be phase, hash or revision, not '{other}'"
                        )))
                    }
                })
            }
            "--canary" => o.canary = Some(value()?),
            "--since" => since = Some(value()?),
            "--until" => until = Some(value()?),
            "--query" => datadog.query = Some(value()?),
            "--from" => datadog.from = Some(value()?),
            "--to" => datadog.to = Some(value()?),
            "--index" => datadog.indexes.push(value()?),
            "--route" => {
                templates.push_str(&value()?);
                templates.push('\n');
            }
            "--routes" => {
                let path = value()?;
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    usage(format!("--routes: cannot read {path}: {}", describe(&e)))
                })?;
                templates.push_str(&text);
                templates.push('\n');
            }
            "--text-format" => {
                let format = TextFormat::parse(&value()?)
                    .map_err(|e| usage(format!("--text-format: {e}")))?;
                o.read.text_format = Some(format);
            }
            "--alpha" => s.alpha = number(value()?, 1e-12, 0.5)?,
            "--correction" => {
                s.correction = match value()?.as_str() {
                    "holm" => Correction::Holm,
                    "bh" | "benjamini-hochberg" => Correction::BenjaminiHochberg,
                    other => {
                        return Err(usage(format!(
                            "--correction must be holm or bh, not '{other}'"
                        )))
                    }
                }
            }
            "--min-error-increase" => s.min_error_increase = number(value()?, 0.0, 100.0)? / 100.0,
            "--min-error-ratio" => s.min_error_ratio = number(value()?, 1.0, 1e6)?,
            "--latency-quantile" => {
                let q = number(value()?, 0.0, 100.0)?;
                s.latency_quantile = if q > 1.0 { q / 100.0 } else { q };
            }
            "--min-latency-increase" => s.min_latency_increase_ms = number(value()?, 0.0, 1e9)?,
            "--min-latency-ratio" => s.min_latency_ratio = number(value()?, 1.0, 1e6)?,
            "--power" => s.power = number(value()?, 0.01, 0.999)?,
            "--format" => {
                o.format = match value()?.as_str() {
                    "table" => Format::Table,
                    "json" => Format::Json,
                    other => {
                        return Err(usage(format!(
                            "--format must be table or json, not '{other}'"
                        )))
                    }
                }
            }
            "--html" => o.html = Some(value()?.into()),
            flag => {
                args.no_value()?;
                match flag {
                    "--datadog" => datadog.on = true,
                    "-h" | "--help" => return Ok(Command::Help(Topic::Canary)),
                    _ => return Err(args.unknown()),
                }
            }
        }
    }
    o.read.routes = Routes::parse(&templates).map_err(|e| usage(e.to_string()))?;
    if datadog.on {
        if !o.inputs.is_empty() {
            return Err(usage("--datadog reads from Datadog: give no FILE".into()));
        }
        #[cfg(feature = "datadog")]
        {
            o.datadog = Some(datadog.query(since, until).map_err(usage)?);
        }
        #[cfg(not(feature = "datadog"))]
        return Err(usage(
            "this envoy-dd was built without the 'datadog' feature".into(),
        ));
    } else {
        datadog.unused().map_err(usage)?;
        for (name, text) in [("--since", since), ("--until", until)] {
            let Some(text) = text else { continue };
            let t = time_ms(&text).ok_or_else(|| {
                usage(format!(
                    "{name}: '{text}' is not an RFC 3339 time, seconds since the epoch or a duration such as 30m"
                ))
            })?;
            if name == "--since" {
                o.read.since_ms = Some(t)
            } else {
                o.read.until_ms = Some(t)
            }
        }
    }
    if o.inputs.is_empty() {
        o.inputs.push(Input::Stdin);
    }
    Ok(Command::Canary(Box::new(o)))
}

/// Runs `envoy-dd canary`; returns the exit code.
pub fn run(options: CanaryOptions) -> u8 {
    #[cfg(feature = "datadog")]
    if let Some(query) = &options.datadog {
        return match super::datadog::judge_input(query, options.by, options.canary.as_deref()) {
            Ok((comparison, tallies, skipped, records)) => {
                report_and_exit(&options, comparison, &tallies, records, skipped)
            }
            Err(message) => {
                say(format_args!("canary: {message}"));
                EXIT_IO
            }
        };
    }
    let mut reader = Reader::new(options.read.clone());
    let mut line = Vec::new();
    for input in &options.inputs {
        let (name, result) = match input {
            Input::Stdin => (
                "<stdin>".to_owned(),
                read_all(io::stdin().lock(), &mut reader, &mut line),
            ),
            Input::File(path) => {
                let result = File::open(path).and_then(|f| read_all(f, &mut reader, &mut line));
                (path.display().to_string(), result)
            }
        };
        if let Err(e) = result {
            say(format_args!("cannot read {name}: {}", describe(&e)));
            return EXIT_IO;
        }
    }
    let records = reader.records();
    let (comparison, tallies, skipped) = match reader.finish(options.by, options.canary.as_deref())
    {
        Ok(found) => found,
        Err(e) => {
            say(format_args!("canary: {e}"));
            return EXIT_IO;
        }
    };
    report_and_exit(&options, comparison, &tallies, records, skipped)
}

/// Judges `tallies`, writes the report (standard output, `--html`) and returns the exit code
/// of the verdict: the same for records and for Datadog's counts.
fn report_and_exit(
    options: &CanaryOptions,
    comparison: input::Comparison,
    tallies: &Tallies,
    records: u64,
    skipped: input::Skipped,
) -> u8 {
    if skipped.total() > 0 {
        let reasons: Vec<String> = skipped
            .reasons()
            .iter()
            .map(|(why, n)| format!("{n} {why}"))
            .collect();
        say(format_args!(
            "canary: {records} records read, {} not counted: {}",
            skipped.total(),
            reasons.join(", ")
        ));
    }
    let judgement = judge(tallies, &options.settings);
    let verdict = judgement.verdict;
    let report = Report {
        judgement,
        comparison: Some(comparison),
        records,
        skipped,
    };
    if let Some(path) = &options.html {
        if let Err(e) = std::fs::write(path, report::html(&report, tallies)) {
            say(format_args!(
                "cannot write {}: {}",
                path.display(),
                describe(&e)
            ));
            return EXIT_IO;
        }
    }
    let text = match options.format {
        Format::Table => report.to_table(),
        Format::Json => report.to_json() + "\n",
    };
    if let Err(e) = io::stdout().lock().write_all(text.as_bytes()) {
        if e.kind() != io::ErrorKind::BrokenPipe {
            say(format_args!(
                "cannot write to standard output: {}",
                describe(&e)
            ));
            return EXIT_IO;
        }
    }
    match verdict {
        Verdict::Pass => 0,
        Verdict::Fail => EXIT_FAIL,
        Verdict::Inconclusive => EXIT_INCONCLUSIVE,
    }
}

/// The options of `--datadog`, gathered while parsing.
#[derive(Default)]
struct DatadogOptions {
    on: bool,
    query: Option<String>,
    from: Option<String>,
    to: Option<String>,
    indexes: Vec<String>,
}

impl DatadogOptions {
    /// Without `--datadog`, its options are a mistake.
    fn unused(&self) -> Result<(), String> {
        let given = [
            ("--query", self.query.is_some()),
            ("--from", self.from.is_some()),
            ("--to", self.to.is_some()),
            ("--index", !self.indexes.is_empty()),
        ];
        match given.iter().find(|(_, given)| *given) {
            Some((name, _)) => Err(format!("{name} is an option of --datadog")),
            None => Ok(()),
        }
    }

    /// The aggregate query: the window of `--since`/`--until` (a duration such as `30m`, or
    /// times) or of `--from`/`--to` (as Datadog reads them), 30 minutes by default.
    #[cfg(feature = "datadog")]
    fn query(
        self,
        since: Option<String>,
        until: Option<String>,
    ) -> Result<envoy_dd::datadog::aggregate::Query, String> {
        use envoy_dd::datadog::aggregate::{Query, Window};
        let text = self
            .query
            .ok_or("--datadog needs --query, e.g. --query 'service:api env:prod'")?;
        if since.is_some() && self.from.is_some() {
            return Err("give --since or --from, not both".into());
        }
        let window = match (since, self.from) {
            (None, None) if self.to.is_none() && until.is_none() => Window::since_minutes(30),
            (Some(since), None)
                if until.is_none() && self.to.is_none() && minutes(&since).is_ok() =>
            {
                Window::since_minutes(minutes(&since)?)
            }
            (since, from) => {
                let ms = |name: &str, text: String| match input::parse_time(text.as_bytes()) {
                    Some(t) => Ok(t.to_string()),
                    None => Err(format!(
                        "{name}: '{text}' is not an RFC 3339 time or seconds since the epoch"
                    )),
                };
                let from = match (since, from) {
                    (Some(since), _) => ms("--since", since)?,
                    (None, Some(from)) => from,
                    (None, None) => return Err("--until and --to need --since or --from".into()),
                };
                let to = match (until, self.to) {
                    (Some(_), Some(_)) => return Err("give --until or --to, not both".into()),
                    (Some(until), None) => ms("--until", until)?,
                    (None, Some(to)) => to,
                    (None, None) => "now".to_owned(),
                };
                Window { from, to }
            }
        };
        let mut query = Query::new(&text, window, By::Phase);
        query.indexes = self.indexes;
        Ok(query)
    }
}

/// `--since`/`--until` for records: a time (RFC 3339, seconds or milliseconds since the epoch)
/// or a duration before now (`30m`), in milliseconds since the epoch.
fn time_ms(text: &str) -> Option<i64> {
    if let Ok(minutes) = minutes(text) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        return Some(now.as_millis() as i64 - minutes as i64 * 60_000);
    }
    input::parse_time(text.as_bytes())
}

/// `30m`, `2h`, `1d`, `90s` (rounded up to a minute) as minutes.
pub fn minutes(value: &str) -> Result<u64, String> {
    let bad = || format!("'{value}' is not a duration such as 30m, 2h or 1d");
    let split = value.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = value.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let minutes = match unit {
        "s" => number.div_ceil(60),
        "m" => number,
        "h" => number.saturating_mul(60),
        "d" => number.saturating_mul(24 * 60),
        _ => return Err(bad()),
    };
    if minutes == 0 {
        return Err(format!("the duration '{value}' is empty"));
    }
    Ok(minutes)
}

/// Reads every line of `source`, gzip-compressed or not, into `reader`.
fn read_all(source: impl Read, reader: &mut Reader, line: &mut Vec<u8>) -> io::Result<()> {
    let mut source = BufReader::with_capacity(1 << 20, source);
    let gzip = source.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    if gzip {
        let decoder = flate2::bufread::MultiGzDecoder::new(source);
        read_lines(BufReader::with_capacity(1 << 20, decoder), reader, line)
    } else {
        read_lines(source, reader, line)
    }
}

fn read_lines(mut source: impl BufRead, reader: &mut Reader, line: &mut Vec<u8>) -> io::Result<()> {
    let mut first = true;
    loop {
        line.clear();
        if source.read_until(b'\n', line)? == 0 {
            return Ok(());
        }
        let mut text: &[u8] = line;
        if first {
            text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
            first = false;
        }
        while let [rest @ .., b'\n' | b'\r'] = text {
            text = rest;
        }
        if !text.iter().all(u8::is_ascii_whitespace) {
            reader.read(text);
        }
    }
}
