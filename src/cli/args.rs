//! The command-line arguments and the help texts that describe them.
//!
//! The parser is written by hand: there are a dozen flat options and two commands, which a
//! parser crate would handle no better than the `match` below, at the cost of a dependency.
//! Options may be written `--hash SHA` or `--hash=SHA`; `--` ends the options; `-` is standard
//! input; a repeated option takes its last value.

use std::ffi::OsString;
use std::path::PathBuf;

use envoy_dd::endpoint::Routes;
use envoy_dd::{Config, TextFormat};

/// `envoy-dd X.Y.Z`, printed by `--version`.
pub const VERSION: &str = concat!("envoy-dd ", env!("CARGO_PKG_VERSION"));

/// Printed after a usage error outside a command.
pub const MAIN_USAGE: &str = "\
Usage: envoy-dd transform [OPTIONS] [FILE...]
       envoy-dd canary [OPTIONS] [FILE...]
       envoy-dd datadog config|tallies [OPTIONS]
       envoy-dd help [COMMAND]
       envoy-dd --version
Run 'envoy-dd help' for more.
";

/// `envoy-dd help`.
pub const MAIN_HELP: &str = concat!(
    "envoy-dd ",
    env!("CARGO_PKG_VERSION"),
    ": turn Envoy access logs into Datadog-correlated log records.

Usage: envoy-dd <COMMAND> [ARGS]

Commands:
  transform [OPTIONS] [FILE...]  Enrich JSON Lines records: dd.trace_id/dd.span_id, hash,
                                 phase, standard HTTP attributes, status, message
  canary [OPTIONS] [FILE...]     Judge a canary release per endpoint from access logs
  datadog config|tallies [OPTIONS]
                                 Datadog monitors, dashboard and log-based metrics that
                                 compare a canary with stable; per-endpoint counts from
                                 Datadog's logs
  help [COMMAND]                 Show this help, or the help of COMMAND

Options:
  -h, --help     Show this help
  -V, --version  Show the version
"
);

/// Printed after a usage error in `envoy-dd transform`.
pub const TRANSFORM_USAGE: &str = "\
Usage: envoy-dd transform [OPTIONS] [FILE...]
Run 'envoy-dd transform --help' for the options.
";

/// `envoy-dd transform --help`.
pub const TRANSFORM_HELP: &str = "\
Enrich JSON Lines records for Datadog: dd.trace_id/dd.span_id from the logged trace headers,
hash and phase for canary analysis, Datadog's standard HTTP attributes, status and message.

Usage: envoy-dd transform [OPTIONS] [FILE...]

Reads each FILE in order (standard input when there is none, and for '-') and writes exactly
one line to standard output for each input line, in order. A line that cannot be enriched is
written unchanged and reported on standard error, and the run goes on. Blank lines stay blank.

Options:
      --hash SHA             Git commit to add as 'hash' [default: $GIT_COMMIT_SHA]
      --phase PHASE          'stable' or 'canary', added as 'phase' [default: $DEPLOY_PHASE]
      --trace-id-128 FORMAT  How to write 128-bit trace ids: 'decimal' (the lower 64 bits;
                             the default) or 'hex' (32 hex digits)
      --text-format FORMAT   The Envoy format string of the text access logs in 'log',
                             e.g. '%REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE%'
                             (Envoy's default, Istio's and Service Connect's need none)
      --text-format-file FILE
                             The same, read from FILE (a final newline is ignored)
      --request-id-join N    Remember the trace ids of the latest N request ids (from
                             records with both, such as the application's own lines) for
                             access lines of the same request without trace ids (ECS
                             Service Connect logs none); 0 turns this off [default: 8192,
                             about 1 MiB]
      --no-standard-attributes
                             Don't add http.*, network.* and duration
      --route TEMPLATE       A route template such as 'GET /users/{id}' (or '/users/{id}'
                             for any method): its path is http.endpoint for the requests
                             it matches, over the endpoint Datadog's tracers would infer.
                             Repeat it for more; the first that matches wins
      --keep-source-attributes
                             Keep each Envoy key next to the standard attribute made
                             from it (by default a key whose whole value the attribute
                             holds moves there, and its absent values are dropped)
      --no-status            Don't add a status (log level)
      --no-message           Don't add a message
      --no-derive-phase      Don't derive phase from an ecs_task_definition family
                             ending in -canary or -stable
      --stats                Print a summary on standard error at the end
  -q, --quiet                Don't report the lines that were passed through
      --progress             Show a progress bar on standard error [default: when it is
                             a terminal and the input files add up to over 8 MiB]
      --no-progress          Never show the progress bar
  -h, --help                 Show this help

A record's own hash and phase win over these. --hash '' and --phase '' ignore the
environment variables.

Exit status: 0 when all input was read (even if lines were passed through), 1 on an
I/O error, 2 on a usage error.
";

#[cfg(feature = "datadog")]
use super::datadog::{HELP as DATADOG_HELP, USAGE as DATADOG_USAGE};
/// `envoy-dd datadog` in a build without the `datadog` feature.
#[cfg(not(feature = "datadog"))]
const DATADOG_HELP: &str = "This envoy-dd was built without the 'datadog' feature.\n";
#[cfg(not(feature = "datadog"))]
const DATADOG_USAGE: &str = DATADOG_HELP;

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Command {
    /// Print a help text on standard output.
    Help(Topic),
    /// Print the version.
    Version,
    /// Run `envoy-dd transform` (boxed: the options are far larger than the other variants).
    Transform(Box<TransformOptions>),
    /// Run `envoy-dd canary`.
    Canary(Box<super::canary::CanaryOptions>),
    /// Run `envoy-dd datadog`.
    #[cfg(feature = "datadog")]
    Datadog(Box<super::datadog::DatadogCommand>),
}

/// Which part of the tool a help text or usage error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topic {
    /// The tool as a whole.
    Main,
    /// `envoy-dd transform`.
    Transform,
    /// `envoy-dd canary`.
    Canary,
    /// `envoy-dd datadog`.
    Datadog,
}

impl Topic {
    /// The full help text.
    pub fn help(self) -> &'static str {
        match self {
            Topic::Main => MAIN_HELP,
            Topic::Transform => TRANSFORM_HELP,
            Topic::Canary => super::canary::HELP,
            Topic::Datadog => DATADOG_HELP,
        }
    }

    /// The short synopsis printed after a usage error.
    pub fn usage(self) -> &'static str {
        match self {
            Topic::Main => MAIN_USAGE,
            Topic::Transform => TRANSFORM_USAGE,
            Topic::Canary => super::canary::USAGE,
            Topic::Datadog => DATADOG_USAGE,
        }
    }
}

/// The options of `envoy-dd transform`.
#[derive(Debug, PartialEq)]
pub struct TransformOptions {
    /// The transform's config: the defaults from the environment, then the options.
    pub config: Config,
    /// Print a summary at the end.
    pub stats: bool,
    /// Don't report passed-through lines.
    pub quiet: bool,
    /// `--progress` (`Some(true)`) or `--no-progress` (`Some(false)`); `None`: decide.
    pub progress: Option<bool>,
    /// The inputs in order; never empty (standard input when no file was named).
    pub inputs: Vec<Input>,
}

/// One input of `envoy-dd transform`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Standard input (no file, or `-`).
    Stdin,
    /// A named file.
    File(PathBuf),
}

/// A command line that cannot be parsed.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError {
    /// What is wrong, for a person.
    pub message: String,
    /// Whose usage to print after it.
    pub topic: Topic,
}

impl UsageError {
    fn new(topic: Topic, message: impl Into<String>) -> Self {
        UsageError {
            message: message.into(),
            topic,
        }
    }
}

/// Parses the arguments after the program name. `config` holds the defaults (from the
/// environment) that `transform`'s options override.
pub fn parse(
    args: impl IntoIterator<Item = OsString>,
    config: Config,
) -> Result<Command, UsageError> {
    let mut args = args.into_iter();
    let Some(first) = args.next() else {
        return Err(UsageError::new(Topic::Main, "missing command"));
    };
    match first.to_str() {
        Some("transform") => parse_transform(args, config),
        Some("canary") => super::canary::parse(args),
        #[cfg(feature = "datadog")]
        Some("datadog") => super::datadog::parse(args),
        Some("help") => {
            let topic = match args.next() {
                None => Topic::Main,
                Some(name) if name == "transform" => Topic::Transform,
                Some(name) if name == "canary" => Topic::Canary,
                Some(name) if name == "datadog" => Topic::Datadog,
                Some(name) => {
                    return Err(UsageError::new(
                        Topic::Main,
                        format!("unknown command '{}'", name.to_string_lossy()),
                    ))
                }
            };
            match args.next() {
                None => Ok(Command::Help(topic)),
                Some(extra) => Err(UsageError::new(
                    Topic::Main,
                    format!("unexpected argument '{}'", extra.to_string_lossy()),
                )),
            }
        }
        Some("-h" | "--help") => Ok(Command::Help(Topic::Main)),
        Some("-V" | "--version") => Ok(Command::Version),
        _ if first.to_string_lossy().starts_with('-') => Err(UsageError::new(
            Topic::Main,
            format!("unknown option '{}'", first.to_string_lossy()),
        )),
        _ => Err(UsageError::new(
            Topic::Main,
            format!("unknown command '{}'", first.to_string_lossy()),
        )),
    }
}

/// Reads a command's arguments, for its parser to match the options by name: `-` is standard
/// input, other arguments that do not start with `-` (and every argument after `--`) are
/// files. An option that takes a value takes it inline (`--name=value`) or else the next
/// argument, whatever it looks like.
pub struct ArgReader<I> {
    args: I,
    topic: Topic,
    options_ended: bool,
    /// The option read last, and its inline value while it is not taken.
    name: String,
    inline: Option<String>,
}

/// One argument read by [`ArgReader::next`].
pub enum Arg {
    /// A file, or standard input.
    Input(Input),
    /// An option's name (`--hash`, `-q`); its value, if it takes one, is
    /// [`ArgReader::value`].
    Option(String),
}

impl<I: Iterator<Item = OsString>> ArgReader<I> {
    /// Reads `args`, whose usage errors are about `topic`.
    pub fn new(args: I, topic: Topic) -> Self {
        ArgReader {
            args,
            topic,
            options_ended: false,
            name: String::new(),
            inline: None,
        }
    }

    /// The next input or option; `--` is read here.
    pub fn next(&mut self) -> Result<Option<Arg>, UsageError> {
        loop {
            let Some(arg) = self.args.next() else {
                return Ok(None);
            };
            if arg == "-" {
                return Ok(Some(Arg::Input(Input::Stdin)));
            }
            if self.options_ended || !arg.to_string_lossy().starts_with('-') {
                return Ok(Some(Arg::Input(Input::File(arg.into()))));
            }
            let Some(arg) = arg.to_str() else {
                let message = format!("unknown option '{}'", arg.to_string_lossy());
                return Err(self.usage(message));
            };
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) if name.starts_with("--") => (name, Some(value)),
                _ => (arg, None),
            };
            self.name = name.to_owned();
            self.inline = inline.map(str::to_owned);
            if self.name != "--" {
                return Ok(Some(Arg::Option(self.name.clone())));
            }
            self.no_value()?;
            self.options_ended = true;
        }
    }

    /// The value of the option read last.
    pub fn value(&mut self) -> Result<String, UsageError> {
        if let Some(value) = self.inline.take() {
            return Ok(value);
        }
        let name = &self.name;
        let message = match self.args.next().map(OsString::into_string) {
            Some(Ok(value)) => return Ok(value),
            Some(Err(_)) => format!("the value of '{name}' is not valid UTF-8"),
            None => format!("option '{name}' needs a value"),
        };
        Err(self.usage(message))
    }

    /// An error if the option read last, one that takes no value, was given one inline.
    pub fn no_value(&self) -> Result<(), UsageError> {
        match self.inline {
            Some(_) => Err(self.usage(format!("option '{}' takes no value", self.name))),
            None => Ok(()),
        }
    }

    /// The error of an unknown option, the one read last.
    pub fn unknown(&self) -> UsageError {
        self.usage(format!("unknown option '{}'", self.name))
    }

    /// A usage error of this command.
    pub fn usage(&self, message: String) -> UsageError {
        UsageError::new(self.topic, message)
    }
}

/// Parses the arguments after `transform`.
fn parse_transform(
    args: impl Iterator<Item = OsString>,
    config: Config,
) -> Result<Command, UsageError> {
    let usage = |message: String| UsageError::new(Topic::Transform, message);
    let mut options = TransformOptions {
        config,
        stats: false,
        quiet: false,
        progress: None,
        inputs: Vec::new(),
    };
    let mut routes = String::new();
    let mut args = ArgReader::new(args, Topic::Transform);
    while let Some(arg) = args.next()? {
        let name = match arg {
            Arg::Input(input) => {
                options.inputs.push(input);
                continue;
            }
            Arg::Option(name) => name,
        };
        match name.as_str() {
            "--hash" => options.config.hash = Some(args.value()?),
            "--phase" => options.config.phase = Some(args.value()?),
            "--trace-id-128" => {
                let value = args.value()?;
                options.config.trace_id_128 = value.parse().map_err(|_| {
                    usage(format!(
                        "--trace-id-128 must be 'decimal' or 'hex', not '{value}'"
                    ))
                })?
            }
            "--request-id-join" => {
                let value = args.value()?;
                options.config.request_id_join = value.parse().map_err(|_| {
                    usage(format!(
                        "--request-id-join must be a number of request ids, not '{value}'"
                    ))
                })?
            }
            "--text-format" => {
                let format = TextFormat::parse(&args.value()?)
                    .map_err(|e| usage(format!("--text-format: {e}")))?;
                options.config.text_format = Some(format);
            }
            "--route" => {
                let template = args.value()?;
                Routes::parse(&template)
                    .map_err(|e| usage(format!("--route '{template}': {}", e.reason)))?;
                routes.push_str(&template);
                routes.push('\n');
            }
            "--text-format-file" => {
                let path = args.value()?;
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| usage(format!("--text-format-file: cannot read {path}: {e}")))?;
                let format = TextFormat::parse(&text)
                    .map_err(|e| usage(format!("--text-format-file {path}: {e}")))?;
                options.config.text_format = Some(format);
            }
            flag => {
                args.no_value()?;
                match flag {
                    "-h" | "--help" => return Ok(Command::Help(Topic::Transform)),
                    "--no-standard-attributes" => options.config.standard_attributes = false,
                    "--keep-source-attributes" => options.config.keep_source_attributes = true,
                    "--no-status" => options.config.status = false,
                    "--no-message" => options.config.message = false,
                    "--no-derive-phase" => options.config.derive_phase = false,
                    "--stats" => options.stats = true,
                    "-q" | "--quiet" => options.quiet = true,
                    "--progress" => options.progress = Some(true),
                    "--no-progress" => options.progress = Some(false),
                    _ => return Err(args.unknown()),
                }
            }
        }
    }
    if !routes.is_empty() {
        // Each was checked on its own.
        options.config.routes = Routes::parse(&routes).map_err(|e| usage(e.to_string()))?;
    }
    if options.inputs.is_empty() {
        options.inputs.push(Input::Stdin);
    }
    Ok(Command::Transform(Box::new(options)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_dd::TraceIdFormat;

    fn parse_strs(args: &[&str]) -> Result<Command, UsageError> {
        parse(args.iter().map(OsString::from), Config::default())
    }

    fn transform(args: &[&str]) -> TransformOptions {
        let mut all = vec!["transform"];
        all.extend_from_slice(args);
        match parse_strs(&all) {
            Ok(Command::Transform(options)) => *options,
            other => panic!("{args:?} parsed as {other:?}"),
        }
    }

    fn error(args: &[&str]) -> UsageError {
        match parse_strs(args) {
            Err(error) => error,
            other => panic!("{args:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn commands() {
        assert_eq!(parse_strs(&["help"]), Ok(Command::Help(Topic::Main)));
        assert_eq!(parse_strs(&["--help"]), Ok(Command::Help(Topic::Main)));
        assert_eq!(
            parse_strs(&["help", "transform"]),
            Ok(Command::Help(Topic::Transform))
        );
        assert_eq!(
            parse_strs(&["transform", "--help"]),
            Ok(Command::Help(Topic::Transform))
        );
        assert_eq!(parse_strs(&["--version"]), Ok(Command::Version));
        assert_eq!(parse_strs(&["-V"]), Ok(Command::Version));
    }

    #[test]
    fn no_files_means_stdin() {
        assert_eq!(transform(&[]).inputs, [Input::Stdin]);
        assert_eq!(
            transform(&["a", "-", "b"]).inputs,
            [
                Input::File("a".into()),
                Input::Stdin,
                Input::File("b".into())
            ]
        );
    }

    #[test]
    fn every_config_option() {
        let options = transform(&[
            "--hash",
            "abc",
            "--phase=canary",
            "--trace-id-128",
            "hex",
            "--no-standard-attributes",
            "--keep-source-attributes",
            "--route",
            "GET /users/{id}",
            "--route=/orders/{id}",
            "--no-status",
            "--no-message",
            "--no-derive-phase",
            "--text-format",
            "%REQ(:METHOD)% %RESPONSE_CODE%",
            "--request-id-join=100",
            "--stats",
            "-q",
            "--no-progress",
        ]);
        let expected = Config {
            hash: Some("abc".into()),
            phase: Some("canary".into()),
            trace_id_128: TraceIdFormat::Hex,
            standard_attributes: false,
            status: false,
            message: false,
            keep_source_attributes: true,
            routes: Routes::parse("GET /users/{id}\n/orders/{id}").unwrap(),
            derive_phase: false,
            text_format: Some(TextFormat::parse("%REQ(:METHOD)% %RESPONSE_CODE%").unwrap()),
            request_id_join: 100,
        };
        assert_eq!(options.config, expected);
        assert!(options.stats && options.quiet);
        assert_eq!(options.progress, Some(false));
    }

    #[test]
    fn options_override_the_environment_defaults() {
        let env = Config {
            hash: Some("from-env".into()),
            phase: Some("stable".into()),
            ..Config::default()
        };
        let args = ["transform", "--phase", "canary"].map(OsString::from);
        let Ok(Command::Transform(options)) = parse(args, env) else {
            panic!()
        };
        assert_eq!(options.config.hash.as_deref(), Some("from-env"));
        assert_eq!(options.config.phase.as_deref(), Some("canary"));
    }

    #[test]
    fn last_value_wins_and_values_may_look_like_options() {
        let options = transform(&[
            "--progress",
            "--no-progress",
            "--progress",
            "--hash",
            "--stats",
        ]);
        assert_eq!(options.progress, Some(true));
        assert_eq!(options.config.hash.as_deref(), Some("--stats"));
        assert!(!options.stats);
    }

    #[test]
    fn double_dash_ends_options() {
        assert_eq!(
            transform(&["--", "--stats", "-"]).inputs,
            [Input::File("--stats".into()), Input::Stdin]
        );
    }

    #[test]
    fn usage_errors() {
        assert_eq!(error(&[]).message, "missing command");
        assert_eq!(
            error(&["frobnicate"]).message,
            "unknown command 'frobnicate'"
        );
        assert_eq!(
            error(&["--frobnicate"]).message,
            "unknown option '--frobnicate'"
        );
        assert_eq!(
            error(&["help", "frobnicate"]).message,
            "unknown command 'frobnicate'"
        );
        let e = error(&["transform", "--frobnicate"]);
        assert_eq!(
            (e.message.as_str(), e.topic),
            ("unknown option '--frobnicate'", Topic::Transform)
        );
        assert_eq!(
            error(&["transform", "--hash"]).message,
            "option '--hash' needs a value"
        );
        let bad_format = error(&["transform", "--text-format", "%RESPONSE_CODE"]).message;
        assert!(
            bad_format.starts_with("--text-format: invalid Envoy format at byte "),
            "{bad_format}"
        );
        assert_eq!(
            error(&["transform", "--stats=yes"]).message,
            "option '--stats' takes no value"
        );
        assert_eq!(
            error(&["transform", "--trace-id-128", "octal"]).message,
            "--trace-id-128 must be 'decimal' or 'hex', not 'octal'"
        );
        assert_eq!(
            error(&["transform", "--request-id-join", "-1"]).message,
            "--request-id-join must be a number of request ids, not '-1'"
        );
    }

    /// Both commands read inputs, `--` and option values with one reader: the same
    /// arguments give the same inputs and the same messages.
    #[test]
    fn both_commands_read_arguments_alike() {
        let inputs = |command: &str| match parse_strs(&[command, "a", "-", "--", "-b", "--c"]) {
            Ok(Command::Transform(o)) => o.inputs,
            Ok(Command::Canary(o)) => o.inputs,
            other => panic!("{other:?}"),
        };
        let want = [
            Input::File("a".into()),
            Input::Stdin,
            Input::File("-b".into()),
            Input::File("--c".into()),
        ];
        assert_eq!(inputs("transform"), want);
        assert_eq!(inputs("canary"), want);
        for (command, with_value, flag) in [
            ("transform", "--hash", "--stats"),
            ("canary", "--by", "--datadog"),
        ] {
            let message = |args: &[&str]| {
                let mut all = vec![command];
                all.extend_from_slice(args);
                error(&all).message
            };
            assert_eq!(
                message(&[with_value]),
                format!("option '{with_value}' needs a value")
            );
            assert_eq!(
                message(&[&format!("{flag}=1")]),
                format!("option '{flag}' takes no value")
            );
            assert_eq!(message(&["--=x"]), "option '--' takes no value");
            assert_eq!(message(&["--nope=1"]), "option '--nope' takes no value");
            assert_eq!(message(&["-z"]), "unknown option '-z'");
        }
    }
}
