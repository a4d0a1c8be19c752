//! `envoy-dd datadog`: the Datadog configuration that watches canaries (`config`), and the
//! counts the canary judge reads from Datadog (`tallies`).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::time::Instant;

use envoy_dd::canary::input::{Comparison, NoComparison, Skipped};
use envoy_dd::datadog::aggregate::{self, Aggregate, Aggregates, Query, Window};
use envoy_dd::datadog::config::{self, Settings};
use envoy_dd::datadog::{By, Client, Credentials, RetryPolicy, Site};
use serde_json::{json, Value};

use super::args::{Command, Topic, UsageError};
use super::canary::minutes;

/// Printed after a usage error in `envoy-dd datadog`.
pub const USAGE: &str = "\
Usage: envoy-dd datadog config --service NAME [OPTIONS]
       envoy-dd datadog tallies --query QUERY [--since DURATION | --from TIME --to TIME] [OPTIONS]
Run 'envoy-dd datadog --help' for the options.
";

/// `envoy-dd datadog --help`.
pub const HELP: &str = "\
Datadog for canary releases: the log-based metrics, monitors and dashboard that compare a
canary with stable per endpoint, and the per-endpoint counts read from Datadog's logs.

Usage: envoy-dd datadog config --service NAME [OPTIONS]
       envoy-dd datadog tallies --query QUERY [--since DURATION | --from TIME --to TIME] [OPTIONS]

config: writes the configuration on standard output, as the API's JSON or as Terraform:
  two log-based metrics (<prefix>.requests, a count, and <prefix>.duration, a distribution of
  @duration), tagged by phase, endpoint (@http.endpoint), status, service and env; monitors of
  the canary's error rate minus stable's per endpoint, of the share of the canary's requests
  that fail (above one half) and of the canary's traffic per endpoint, and a composite that
  alerts on an endpoint only when the canary is worse and had enough traffic; and a
  dashboard of error rate and latency per version, overall and per endpoint.

      --service NAME         The service (Datadog's service tag) [required]
      --env ENV              Its environment [default: every environment]
      --query QUERY          More of the log query that selects its access logs
      --by phase|hash|revision
                             What tells versions apart on the dashboard [default: phase]
      --threshold RATE       Canary minus stable error rate above which an endpoint alerts,
                             as a fraction or a percentage: 0.02 or 2% [default: 2%]
      --min-requests N       Canary requests an endpoint needs in the window to alert
                             [default: 100]
      --window DURATION      The monitors' window, e.g. 30m or 1h [default: 30m]
      --metric-prefix NAME   The metrics' prefix [default: envoy_dd.<service>]
      --dashboard-url URL    The dashboard the messages link to (JSON output; Terraform
                             links the dashboard it creates)
      --notify HANDLE        Who the composite monitor notifies, e.g. @slack-releases
                             (repeatable)
      --format json|terraform
                             Output format [default: json]

tallies: asks Datadog's Logs Aggregate API for requests, errors and @duration percentiles per
  version and per endpoint and version, and prints them.

      --query QUERY          The log query that selects the service, e.g.
                             'service:api env:prod' [required]
      --since DURATION       The window: the last 30m, 2h, 1d, ... [default: 30m]
      --from TIME, --to TIME The window between two times: ISO 8601
                             (2026-12-07T18:00:00Z), milliseconds since 1970, or date math
                             (now-1h)
      --by phase|hash|revision|auto
                             What tells versions apart [default: auto: phase if Datadog
                             has stable and canary records, else hash, else revision]
      --index NAME           A log index to search (repeatable) [default: all]
      --format table|json    Output format [default: table]

The keys come from DD_API_KEY and DD_APP_KEY (an application key with the logs_read_data
scope), the site from DD_SITE (datadoghq.com, datadoghq.eu, us3.datadoghq.com, ...)
[default: datadoghq.com]. The keys are never printed.

Exit status: 0 on success, 1 when Datadog cannot be reached or refuses the request, 2 on a
usage error.
";

/// What `envoy-dd datadog` was asked to do.
#[derive(Debug, PartialEq)]
pub enum DatadogCommand {
    /// `envoy-dd datadog config`.
    Config {
        /// What to generate.
        settings: Settings,
        /// Terraform instead of JSON.
        terraform: bool,
    },
    /// `envoy-dd datadog tallies`.
    Tallies {
        /// What to count.
        query: Query,
        /// JSON instead of a table.
        json: bool,
        /// What tells versions apart; `None` (`--by auto`): chosen as the judge does.
        by: Option<By>,
    },
}

/// Parses the arguments after `datadog`.
pub fn parse(mut args: impl Iterator<Item = OsString>) -> Result<Command, UsageError> {
    let usage = |message: String| UsageError {
        message,
        topic: Topic::Datadog,
    };
    let sub = args.next().map(|a| a.to_string_lossy().into_owned());
    let mut pairs = Vec::new();
    while let Some(arg) = args.next() {
        let arg = arg.into_string().map_err(|a| {
            usage(format!(
                "argument '{}' is not valid UTF-8",
                a.to_string_lossy()
            ))
        })?;
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help(Topic::Datadog));
        }
        let (name, value) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name.to_owned(), value.to_owned()),
            _ if arg.starts_with("--") => {
                let value = args
                    .next()
                    .ok_or_else(|| usage(format!("option '{arg}' needs a value")))?;
                (arg, value.to_string_lossy().into_owned())
            }
            _ => return Err(usage(format!("unexpected argument '{arg}'"))),
        };
        pairs.push((name, value));
    }
    let command = match sub.as_deref() {
        Some("config") => parse_config(pairs).map_err(usage)?,
        Some("tallies") => parse_tallies(pairs).map_err(usage)?,
        Some("-h" | "--help") | Some("help") => return Ok(Command::Help(Topic::Datadog)),
        Some(other) => {
            return Err(usage(format!(
                "unknown datadog command '{other}' (config or tallies)"
            )))
        }
        None => return Err(usage("missing datadog command (config or tallies)".into())),
    };
    Ok(Command::Datadog(Box::new(command)))
}

fn site() -> Result<Site, String> {
    match std::env::var("DD_SITE") {
        Ok(site) if !site.trim().is_empty() => Site::parse(&site).map_err(|e| e.to_string()),
        _ => Ok(Site::default()),
    }
}

fn parse_config(pairs: Vec<(String, String)>) -> Result<DatadogCommand, String> {
    let mut settings = Settings::new("");
    let mut terraform = false;
    for (name, value) in pairs {
        match name.as_str() {
            "--service" => settings.service = value,
            "--env" => settings.env = Some(value),
            "--query" => settings.query = Some(value),
            "--by" => settings.version = version(&value)?,
            "--threshold" => settings.threshold = rate(&value)?,
            "--min-requests" => {
                settings.min_requests = value
                    .parse()
                    .map_err(|_| format!("--min-requests must be a whole number, not '{value}'"))?
            }
            "--window" => {
                let minutes = minutes(&value)?;
                settings.window_minutes =
                    u32::try_from(minutes).map_err(|_| format!("--window {value} is too long"))?;
            }
            "--metric-prefix" => settings.metric_prefix = Some(value),
            "--dashboard-url" => settings.dashboard_url = Some(value),
            "--notify" => settings.notify.push(value),
            "--format" => {
                terraform = match value.as_str() {
                    "json" => false,
                    "terraform" => true,
                    _ => {
                        return Err(format!(
                            "--format must be 'json' or 'terraform', not '{value}'"
                        ))
                    }
                }
            }
            _ => return Err(format!("unknown option '{name}'")),
        }
    }
    if settings.service.trim().is_empty() {
        return Err("datadog config needs --service".into());
    }
    settings.site = site()?;
    Ok(DatadogCommand::Config {
        settings,
        terraform,
    })
}

fn parse_tallies(pairs: Vec<(String, String)>) -> Result<DatadogCommand, String> {
    let (mut text, mut since, mut from, mut to) = (None, None, None, None);
    let mut by = None;
    let mut indexes = Vec::new();
    let mut json = false;
    for (name, value) in pairs {
        match name.as_str() {
            "--query" => text = Some(value),
            "--since" => since = Some(minutes(&value)?),
            "--from" => from = Some(value),
            "--to" => to = Some(value),
            "--by" if value == "auto" => by = None,
            "--by" => by = Some(version(&value)?),
            "--index" => indexes.push(value),
            "--format" => {
                json = match value.as_str() {
                    "table" => false,
                    "json" => true,
                    _ => return Err(format!("--format must be 'table' or 'json', not '{value}'")),
                }
            }
            _ => return Err(format!("unknown option '{name}'")),
        }
    }
    let window = window(since, from, to)?;
    let text = text.ok_or("datadog tallies needs --query, e.g. --query 'service:api env:prod'")?;
    let mut query = Query::new(&text, window, by.unwrap_or(By::Phase));
    query.indexes = indexes;
    Ok(DatadogCommand::Tallies { query, json, by })
}

/// The window of `--since` or `--from`/`--to`.
pub fn window(
    since: Option<u64>,
    from: Option<String>,
    to: Option<String>,
) -> Result<Window, String> {
    match (since, from, to) {
        (Some(_), Some(_), _) => Err("give --since or --from, not both".into()),
        (since, None, None) => Ok(Window::since_minutes(since.unwrap_or(30))),
        (None, Some(from), to) => Ok(Window {
            from,
            to: to.unwrap_or_else(|| "now".into()),
        }),
        (_, None, Some(_)) => Err("--to needs --from".into()),
    }
}

fn version(value: &str) -> Result<By, String> {
    match value {
        "phase" => Ok(By::Phase),
        "hash" => Ok(By::Hash),
        "revision" => Ok(By::Revision),
        _ => Err(format!(
            "--by must be 'phase', 'hash', 'revision' or 'auto', not '{value}'"
        )),
    }
}

/// `0.02` or `2%` as a fraction in (0, 1].
fn rate(value: &str) -> Result<f64, String> {
    let (number, scale) = match value.strip_suffix('%') {
        Some(number) => (number, 100.0),
        None => (value, 1.0),
    };
    match number.trim().parse::<f64>() {
        Ok(n) if n / scale > 0.0 && n / scale <= 1.0 => Ok(n / scale),
        _ => Err(format!(
            "--threshold must be a rate such as 0.02 or 2%, not '{value}'"
        )),
    }
}

/// Runs the command; returns the exit code.
pub fn run(command: DatadogCommand) -> u8 {
    match command {
        DatadogCommand::Config {
            settings,
            terraform,
        } => {
            let generated = config::generate(&settings);
            let text = if terraform {
                generated.to_terraform()
            } else {
                let mut text =
                    serde_json::to_string_pretty(&generated.to_json()).expect("JSON serialises");
                text.push('\n');
                text
            };
            super::print(&text)
        }
        DatadogCommand::Tallies {
            mut query,
            json,
            by,
        } => {
            let started = Instant::now();
            let (client, tallies, comparison) = match fetch(&query, by) {
                Ok((client, tallies, comparison)) => {
                    if let Ok(c) = &comparison {
                        query.version = c.by;
                    }
                    (client, tallies, comparison)
                }
                Err(message) => {
                    super::say(format_args!("{message}"));
                    return super::EXIT_IO;
                }
            };
            for warning in &tallies.warnings {
                super::say(format_args!("Datadog: {warning}"));
            }
            if let Err(why) = &comparison {
                super::say(format_args!("{why}"));
            }
            let text = if json {
                let mut text = serde_json::to_string_pretty(&tallies_json(
                    &query,
                    &tallies,
                    comparison.as_ref().ok(),
                    client.calls(),
                ))
                .expect("JSON serialises");
                text.push('\n');
                text
            } else {
                tallies_table(&query, &tallies, comparison.as_ref().ok())
            };
            let code = super::print(&text);
            super::say(format_args!(
                "{} API call{} in {:.1} s",
                client.calls(),
                if client.calls() == 1 { "" } else { "s" },
                started.elapsed().as_secs_f64()
            ));
            code
        }
    }
}

/// Asks Datadog, with the keys and site of the environment, for the counts and the two
/// versions to compare (by `by`, else chosen as the judge chooses).
pub fn fetch(
    query: &Query,
    by: Option<By>,
) -> Result<(Client, Aggregates, Result<Comparison, NoComparison>), String> {
    let credentials = Credentials::from_env().map_err(|e| e.to_string())?;
    let client = Client::new(site()?, credentials, RetryPolicy::default());
    let (tallies, comparison) =
        aggregate::fetch_compared(&client, query, by, None).map_err(|e| e.to_string())?;
    Ok((client, tallies, comparison))
}

fn ms(ns: Option<f64>) -> Value {
    ns.map_or(Value::Null, |ns| json!((ns / 1e4).round() / 100.0))
}

fn tally_json(tally: &Aggregate) -> Value {
    let l = &tally.latency;
    json!({
        "requests": tally.requests,
        "errors": tally.errors,
        "latency_ms": { "p50": ms(l.p50), "p75": ms(l.p75), "p90": ms(l.p90), "p95": ms(l.p95), "p98": ms(l.p98), "p99": ms(l.p99), "max": ms(l.max) },
    })
}

fn tallies_json(
    query: &Query,
    tallies: &Aggregates,
    comparison: Option<&Comparison>,
    calls: u32,
) -> Value {
    let versions = |map: &std::collections::BTreeMap<String, Aggregate>| {
        Value::Object(
            map.iter()
                .map(|(v, t)| (v.clone(), tally_json(t)))
                .collect(),
        )
    };
    json!({
        "query": query.query,
        "from": query.window.from,
        "to": query.window.to,
        "by": query.version.name(),
        "comparison": comparison,
        "versions": versions(&tallies.versions),
        "endpoints": tallies.endpoints.iter().map(|(e, v)| json!({ "endpoint": e, "versions": versions(v) })).collect::<Vec<_>>(),
        "warnings": tallies.warnings,
        "api_calls": calls,
    })
}

fn tallies_table(query: &Query, tallies: &Aggregates, comparison: Option<&Comparison>) -> String {
    let compared = comparison.map_or(String::new(), |c| {
        format!(": baseline {}, canary {} ({})", c.baseline, c.canary, c.why)
    });
    let mut out = format!(
        "{} from {} to {}, by {}{compared}\n{:<48} {:<16} {:>9} {:>7} {:>7} {:>9} {:>9} {:>9}\n",
        query.query,
        query.window.from,
        query.window.to,
        query.version.name(),
        "ENDPOINT",
        "VERSION",
        "REQUESTS",
        "ERRORS",
        "RATE",
        "P50 MS",
        "P95 MS",
        "P99 MS"
    );
    let overall = [("(all endpoints)".to_owned(), tallies.versions.clone())];
    let rows = overall
        .iter()
        .chain(
            tallies
                .endpoints
                .iter()
                .map(|(e, v)| (e.clone(), v.clone()))
                .collect::<Vec<_>>()
                .iter(),
        )
        .cloned()
        .collect::<Vec<_>>();
    for (endpoint, versions) in rows {
        for (version, t) in versions {
            let rate = if t.requests == 0 {
                "-".to_owned()
            } else {
                format!("{:.2}%", 100.0 * t.errors as f64 / t.requests as f64)
            };
            let ms = |ns: Option<f64>| ns.map_or("-".to_owned(), |ns| format!("{:.1}", ns / 1e6));
            let _ = writeln!(
                out,
                "{endpoint:<48} {version:<16} {:>9} {:>7} {rate:>7} {:>9} {:>9} {:>9}",
                t.requests,
                t.errors,
                ms(t.latency.p50),
                ms(t.latency.p95),
                ms(t.latency.p99)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Command, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn durations_rates_and_windows() {
        assert_eq!(minutes("30m"), Ok(30));
        assert_eq!(minutes("2h"), Ok(120));
        assert_eq!(minutes("1d"), Ok(1440));
        assert_eq!(minutes("90s"), Ok(2));
        assert!(minutes("30").is_err() && minutes("m").is_err() && minutes("0m").is_err());
        assert_eq!(rate("2%"), Ok(0.02));
        assert_eq!(rate("0.005"), Ok(0.005));
        assert!(rate("0").is_err() && rate("120%").is_err() && rate("x").is_err());
        assert_eq!(window(None, None, None), Ok(Window::since_minutes(30)));
        assert_eq!(
            window(None, Some("1765130400000".into()), None),
            Ok(Window {
                from: "1765130400000".into(),
                to: "now".into()
            })
        );
        assert!(window(Some(5), Some("now-1h".into()), None).is_err());
        assert!(window(None, None, Some("now".into())).is_err());
    }

    #[test]
    fn commands_and_usage_errors() {
        let Ok(Command::Datadog(command)) = parse_strs(&[
            "tallies",
            "--query",
            "service:api",
            "--since=2h",
            "--by",
            "hash",
            "--index",
            "main",
            "--format",
            "json",
        ]) else {
            panic!()
        };
        let DatadogCommand::Tallies { query, json, .. } = *command else {
            panic!()
        };
        assert!(json);
        assert_eq!(
            (query.window.from.as_str(), query.version),
            ("now-120m", By::Hash)
        );
        assert_eq!(query.indexes, ["main"]);
        assert_eq!(
            parse_strs(&["config", "--help"]),
            Ok(Command::Help(Topic::Datadog))
        );
        let error = |args: &[&str]| parse_strs(args).unwrap_err().message;
        assert_eq!(error(&[]), "missing datadog command (config or tallies)");
        assert_eq!(
            error(&["tallies"]),
            "datadog tallies needs --query, e.g. --query 'service:api env:prod'"
        );
        assert_eq!(
            error(&["config", "--service"]),
            "option '--service' needs a value"
        );
        assert_eq!(
            error(&["config", "--service", "api", "--by", "colour"]),
            "--by must be 'phase', 'hash', 'revision' or 'auto', not 'colour'"
        );
        assert_eq!(
            error(&["config", "--service", "api", "extra"]),
            "unexpected argument 'extra'"
        );
    }
}

/// For `envoy-dd canary --datadog`: the judge's input from Datadog, with the keys and site of
/// the environment: the comparison, the tallies, the requests not judged and every request
/// counted. Datadog's warnings and the number of calls go to standard error.
pub fn judge_input(
    query: &Query,
    by: Option<By>,
    canary: Option<&str>,
) -> Result<(Comparison, envoy_dd::canary::Tallies, Skipped, u64), String> {
    let started = Instant::now();
    let credentials = Credentials::from_env().map_err(|e| e.to_string())?;
    let client = Client::new(site()?, credentials, RetryPolicy::default());
    let fetched = aggregate::fetch_compared(&client, query, by, canary);
    super::say(format_args!(
        "{} Datadog API call{} in {:.1} s",
        client.calls(),
        if client.calls() == 1 { "" } else { "s" },
        started.elapsed().as_secs_f64()
    ));
    let (tallies, comparison) = fetched.map_err(|e| e.to_string())?;
    for warning in &tallies.warnings {
        super::say(format_args!("Datadog: {warning}"));
    }
    let comparison = comparison.map_err(|e| e.to_string())?;
    let (judged, skipped) = tallies.to_judge(&comparison);
    let records = tallies
        .endpoints
        .values()
        .flat_map(|v| v.values())
        .map(|t| t.requests)
        .sum();
    Ok((comparison, judged, skipped, records))
}

#[cfg(test)]
mod canary_tests {
    use super::super::args::{parse, Command};
    use super::*;
    use envoy_dd::Config;

    fn canary(args: &[&str]) -> Result<Command, UsageError> {
        let mut all = vec!["canary"];
        all.extend_from_slice(args);
        parse(all.into_iter().map(OsString::from), Config::default())
    }

    fn window(args: &[&str]) -> Window {
        match canary(args) {
            Ok(Command::Canary(o)) => o.datadog.expect("a Datadog query").window,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn canary_datadog_windows() {
        let q = ["--datadog", "--query", "service:api"];
        assert_eq!(window(&q), Window::since_minutes(30));
        assert_eq!(
            window(&[&q[..], &["--since", "2h"]].concat()),
            Window::since_minutes(120)
        );
        let w = window(
            &[
                &q[..],
                &[
                    "--since",
                    "2026-12-07T18:00:00Z",
                    "--until",
                    "2026-12-07T18:30:00Z",
                ],
            ]
            .concat(),
        );
        assert_eq!(
            (w.from.as_str(), w.to.as_str()),
            ("1796666400000", "1796668200000")
        );
        let w = window(&[&q[..], &["--from", "now-1h", "--to", "now-30m"]].concat());
        assert_eq!((w.from.as_str(), w.to.as_str()), ("now-1h", "now-30m"));
    }

    #[test]
    fn canary_datadog_usage_errors() {
        let error = |args: &[&str]| canary(args).unwrap_err().message;
        assert_eq!(
            error(&["--datadog", "--query", "service:api", "logs.jsonl"]),
            "--datadog reads from Datadog: give no FILE"
        );
        assert_eq!(
            error(&["--datadog"]),
            "--datadog needs --query, e.g. --query 'service:api env:prod'"
        );
        assert_eq!(
            error(&["--query", "service:api", "logs.jsonl"]),
            "--query is an option of --datadog"
        );
        assert_eq!(
            error(&[
                "--datadog",
                "--query",
                "q",
                "--since",
                "1h",
                "--from",
                "now-1h"
            ]),
            "give --since or --from, not both"
        );
        assert!(
            matches!(canary(&["--since", "30m", "logs.jsonl"]), Ok(Command::Canary(o)) if o.read.since_ms.is_some())
        );
    }
}
