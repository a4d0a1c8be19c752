//! envoy-dd: Envoy access logs → Datadog-correlated log records.
//!
//! The crate's heart is [`Transformer`]: give it one log record (a FireLens record whose `log`
//! holds an Envoy access-log line, or a bare Envoy JSON object) and it writes the record
//! Datadog wants: `dd.trace_id`/`dd.span_id` from whichever trace headers Envoy logged,
//! `hash` and `phase` for canary analysis, and Datadog's standard HTTP attributes.
//!
//! ```
//! use envoy_dd::{Config, Transformer};
//!
//! let mut t = Transformer::new(Config { hash: Some("4f9c2a1".into()), ..Config::default() });
//! let mut out = Vec::new();
//! t.transform(br#"{"method":"GET","path":"/ping","response_code":200,"trace_id":"42"}"#, &mut out);
//! assert_eq!(
//!     String::from_utf8(out).unwrap(),
//!     r#"{"dd":{"trace_id":"42"},"hash":"4f9c2a1","http":{"status_code":200,"method":"GET","url":"/ping","url_details":{"path":"/ping"},"endpoint":"/ping"},"status":"info","message":"GET /ping 200"}"#
//! );
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

/// Declares an item `pub` with the `internals` feature (the benchmarks and fuzz targets call
/// it), and crate-private without: not part of the stable API.
macro_rules! internal {
    ($(#[$meta:meta])* pub $($item:tt)*) => {
        #[cfg(feature = "internals")]
        $(#[$meta])*
        pub $($item)*
        #[cfg(not(feature = "internals"))]
        #[allow(dead_code)]
        $(#[$meta])*
        pub(crate) $($item)*
    };
}

// `endpoint` uses `core` and `alloc` only.
extern crate alloc;

mod absent;
// The canary judge, for the command line; never in the Fluent Bit module.
#[cfg(all(feature = "canary", not(target_arch = "wasm32")))]
pub mod canary;
mod config;
mod dedup;
pub mod endpoint;
// The Datadog API (generated configuration, the aggregate query): native targets only, never in
// the Fluent Bit module.
#[cfg(all(feature = "datadog", not(target_arch = "wasm32")))]
pub mod datadog;
mod envoy;
mod error;
mod join;
mod keys;
mod layout;
// The Fluent Bit WASM filter ABI: raw pointers from the host, so the one place with `unsafe`.
// Not in the JS package's module, whose host is wasm-bindgen's glue.
#[cfg(all(target_arch = "wasm32", not(feature = "js")))]
#[allow(unsafe_code)]
mod fluent_bit;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "js")]
mod js;
mod number;
// What the transform would write, for the canary judge.
#[cfg(all(feature = "canary", not(target_arch = "wasm32")))]
mod outline;
mod output;
mod plan;
mod read;
mod record;
// SSE2 on x86_64 for the readers' hottest loops (string ends, learned keys): the other place
// with `unsafe`, loads and a few compares, each justified where it is.
mod scan;
#[cfg(feature = "tracing")]
pub mod subscriber;
mod text;
#[cfg(feature = "tower")]
pub mod tower;
pub mod trace;
mod transform;
mod write;

pub use absent::is_placeholder;
pub use config::Config;
pub use error::{Enriched, Error, LogKept, Outcome, ReadError, Shape, SyntaxError, MAX_RECORD_LEN};
pub use text::{FormatError, TextFormat};
pub use trace::{TraceContext, TraceIdFormat, TraceSource};
pub use transform::Transformer;
