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
        Command::Transform(options) => transform::run(*options),
        Command::Canary(options) => canary::run(*options),
        #[cfg(feature = "datadog")]
        Command::Datadog(command) => datadog::run(*command),
    };
    ExitCode::from(code)
}

/// Prints to standard output; returns the exit code. A closed pipe (`| head`) is not an error.
fn print(text: &str) -> u8 {
    let written = stdout_is_open().and_then(|()| io::stdout().lock().write_all(text.as_bytes()));
    match written {
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

/// `Err` when standard output was closed when envoy-dd started (`>&-`). Rust's runtime then
/// opens it on `/dev/null`, where everything written would be lost without an error.
fn stdout_is_open() -> io::Result<()> {
    match stdout_was_closed() {
        true => Err(io::Error::from_raw_os_error(EBADF)),
        false => Ok(()),
    }
}

/// "Bad file descriptor", the error writing to a closed descriptor gives.
const EBADF: i32 = 9;

/// Whether standard output is the `/dev/null` that Rust's runtime opens in place of a closed
/// descriptor: open for reading and writing, which no shell redirection to `/dev/null` is
/// (`>/dev/null` opens it for writing only).
#[cfg(target_os = "linux")]
fn stdout_was_closed() -> bool {
    let null = std::fs::read_link("/proc/self/fd/1").is_ok_and(|p| p.as_os_str() == "/dev/null");
    let read_write = || {
        let info = std::fs::read_to_string("/proc/self/fdinfo/1").unwrap_or_default();
        let flags = info.lines().find_map(|line| line.strip_prefix("flags:"));
        // O_ACCMODE is 3, O_RDWR 2.
        flags
            .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
            .is_some_and(|f| f & 3 == 2)
    };
    null && read_write()
}

/// Elsewhere the runtime's stand-in cannot be told from a redirection.
#[cfg(not(target_os = "linux"))]
fn stdout_was_closed() -> bool {
    false
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
