//! The command line: parse the arguments, run the command, turn the result into an exit code.
//!
//! * [`args`]: the argument parser and the help texts.
//! * [`transform`]: `envoy-dd transform`, the read–transform–write loop.
//! * [`canary`]: `envoy-dd canary`, the canary judge.
//! * [`stats`]: the counters behind `--stats`.
//! * [`progress`]: the progress bar on standard error.
//! * [`datadog`]: `envoy-dd datadog`, generated Datadog configuration and counts from Datadog.

mod args;
mod canary;
#[cfg(feature = "datadog")]
mod datadog;
mod progress;
mod stats;
mod transform;

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;

use envoy_dd::Config;

use args::Command;

/// Exit code for an I/O error (an input that cannot be read, output that cannot be written).
const EXIT_IO: u8 = 1;
/// Exit code for a command line that cannot be parsed.
const EXIT_USAGE: u8 = 2;

/// Runs the command named by the process arguments.
pub fn main() -> ExitCode {
    // `hash` and `phase` default to GIT_COMMIT_SHA / DEPLOY_PHASE; options override them.
    let command = match args::parse(std::env::args_os().skip(1), Config::from_env()) {
        Ok(command) => command,
        Err(error) => {
            say(format_args!("{}", error.message));
            let _ = write!(io::stderr().lock(), "\n{}", error.topic.usage());
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let code = match command {
        Command::Help(topic) => print(topic.help()),
        Command::Version => print(&format!("{}\n", args::VERSION)),
        Command::Transform(options) => transform::run(options),
        Command::Canary(options) => canary::run(*options),
        #[cfg(feature = "datadog")]
        Command::Datadog(command) => datadog::run(command),
    };
    ExitCode::from(code)
}

/// Prints to standard output; returns the exit code. A closed pipe (`| head`) is not an error.
fn print(text: &str) -> u8 {
    match io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            say(format_args!(
                "cannot write to standard output: {}",
                describe(&e)
            ));
            EXIT_IO
        }
        _ => 0,
    }
}

/// Writes `envoy-dd: MESSAGE` as one line on standard error. Errors are ignored: there is
/// nowhere left to report them.
fn say(message: fmt::Arguments<'_>) {
    let line = format!("envoy-dd: {message}\n");
    let _ = io::stderr().lock().write_all(line.as_bytes());
}

/// An I/O error as a short phrase: `No such file or directory`, without Rust's
/// ` (os error 2)` suffix, which means nothing to a user.
fn describe(error: &io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}
