//! `envoy-dd`, the command-line tool: enrich Envoy access logs (JSON Lines) for Datadog.
//!
//! ```text
//! envoy-dd transform [OPTIONS] [FILE...]
//! envoy-dd help [COMMAND]
//! envoy-dd --version
//! ```
//!
//! All of the work is in the `envoy_dd` library; this binary reads lines, hands them to one
//! [`envoy_dd::Transformer`] and reports what happened. See [`cli`] for the layout.
#![forbid(unsafe_code)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
