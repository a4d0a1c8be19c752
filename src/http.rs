//! The trace context of an incoming HTTP request (feature `http`).
//!
//! A Rust service behind Envoy sees the same trace headers that Envoy logs, so it can put the
//! same `dd.trace_id` / `dd.span_id` into its own log lines. [`trace_context`] reads them from
//! an [`http::HeaderMap`] (what hyper, axum and tonic hand you) with the README's trace-id
//! rules and precedence: Datadog (with `x-datadog-tags` for the upper 64 bits), W3C
//! `traceparent`, B3 multi, B3 single, AWS X-Ray. The parsing is [`crate::trace`]'s, the filter's own.
//!
//! ```
//! use envoy_dd::TraceIdFormat;
//! use http::HeaderMap;
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("x-datadog-trace-id", "1234".parse().unwrap());
//! headers.insert("x-datadog-parent-id", "5678".parse().unwrap());
//! headers.insert("x-datadog-tags", "_dd.p.dm=-1,_dd.p.tid=66a1b2c300000000".parse().unwrap());
//!
//! let ctx = envoy_dd::http::trace_context(&headers).unwrap();
//! assert_eq!(ctx.trace_id_string(TraceIdFormat::Decimal), "1234");
//! assert_eq!(ctx.trace_id_string(TraceIdFormat::Hex), "66a1b2c30000000000000000000004d2");
//! assert_eq!(ctx.span_id, Some(5678));
//! ```

use http::HeaderMap;

use crate::trace::{TraceCandidates, TraceContext};

/// The trace headers, by their standard names. Each is classified by
/// [`TraceCandidates::offer_raw_key`], exactly as the filter classifies the keys Envoy logs.
/// Only these names are read: other headers whose names merely normalise like a trace key
/// (`Trace-Id`, `Span-Id`) are the application's business, not trace propagation.
pub const TRACE_HEADERS: [&str; 8] = [
    "x-datadog-trace-id",
    "x-datadog-parent-id",
    "x-datadog-tags",
    "traceparent",
    "x-b3-traceid",
    "x-b3-spanid",
    "b3",
    "x-amzn-trace-id",
];

/// The trace context of a request, from the first valid source in the README's order (Datadog,
/// W3C, B3 multi, B3 single, X-Ray); `None` when no source is valid. An invalid header (`-`,
/// zero, upper-case hex, a bad form) is skipped like a missing one. When a header appears more
/// than once, the first valid value counts.
///
/// ```
/// use envoy_dd::{TraceIdFormat, TraceSource};
/// use http::HeaderMap;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("x-datadog-trace-id", "-".parse().unwrap());
/// headers.insert(
///     "traceparent",
///     "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".parse().unwrap(),
/// );
/// let ctx = envoy_dd::http::trace_context(&headers).unwrap();
/// assert_eq!(ctx.source, TraceSource::W3c);
/// assert_eq!(ctx.trace_id_string(TraceIdFormat::Decimal), "9532127138774266268");
/// assert_eq!(ctx.span_id, Some(0xb7ad6b7169203331));
///
/// assert_eq!(envoy_dd::http::trace_context(&HeaderMap::new()), None);
/// ```
#[must_use]
pub fn trace_context(headers: &HeaderMap) -> Option<TraceContext> {
    let mut candidates = TraceCandidates::default();
    for name in TRACE_HEADERS {
        for value in headers.get_all(name) {
            candidates.offer_raw_key(name.as_bytes(), value.as_bytes());
        }
    }
    candidates.resolve()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{TraceIdFormat, TraceSource};
    use crate::{Config, Transformer};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for &(name, value) in pairs {
            map.append(name, value.parse().unwrap());
        }
        map
    }

    /// `dd` of what the filter writes for an Envoy record that logged these header values.
    fn filter_dd(pairs: &[(&str, &str)], format: TraceIdFormat) -> Option<String> {
        let mut record = String::from(r#"{"response_code":200"#);
        for (name, value) in pairs {
            record.push_str(&format!(r#","{name}":"{value}""#));
        }
        record.push('}');
        let config = Config {
            trace_id_128: format,
            ..Config::default()
        };
        let mut out = Vec::new();
        Transformer::new(config)
            .try_transform(record.as_bytes(), &mut out)
            .unwrap();
        let out: serde_json::Value = serde_json::from_slice(&out).unwrap();
        out.get("dd").map(|dd| dd.to_string())
    }

    fn our_dd(pairs: &[(&'static str, &'static str)], format: TraceIdFormat) -> Option<String> {
        let ctx = trace_context(&headers(pairs))?;
        let mut dd = format!(r#"{{"trace_id":"{}""#, ctx.trace_id_string(format));
        if let Some(span) = ctx.span_id {
            dd.push_str(&format!(r#","span_id":"{span}""#));
        }
        dd.push('}');
        Some(dd)
    }

    #[test]
    fn every_header_kind_matches_the_filter() {
        type Case = (&'static [(&'static str, &'static str)], Option<TraceSource>);
        let cases: &[Case] = &[
            (&[], None),
            (
                &[
                    ("x-datadog-trace-id", "1234"),
                    ("x-datadog-parent-id", "5678"),
                ],
                Some(TraceSource::Datadog),
            ),
            (
                &[
                    ("x-datadog-trace-id", "1234"),
                    ("x-datadog-parent-id", "5678"),
                    ("x-datadog-tags", "_dd.p.dm=-1,_dd.p.tid=66a1b2c300000000"),
                ],
                Some(TraceSource::Datadog),
            ),
            (
                &[(
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                )],
                Some(TraceSource::W3c),
            ),
            (
                &[
                    ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
                    ("x-b3-spanid", "e457b5a2e4d86bd1"),
                ],
                Some(TraceSource::B3Multi),
            ),
            (
                &[("b3", "a3ce929d0e0e4736-00f067aa0ba902b7-1")],
                Some(TraceSource::B3Single),
            ),
            (
                &[(
                    "x-amzn-trace-id",
                    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
                )],
                Some(TraceSource::XRay),
            ),
            // Invalid values fall through to the next source, as in the filter.
            (
                &[
                    ("x-datadog-trace-id", "0"),
                    (
                        "traceparent",
                        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                    ),
                    ("b3", "a3ce929d0e0e4736-00f067aa0ba902b7"),
                ],
                Some(TraceSource::B3Single),
            ),
            (&[("b3", "1"), ("x-b3-traceid", "-")], None),
        ];
        for &(pairs, source) in cases {
            assert_eq!(
                trace_context(&headers(pairs)).map(|c| c.source),
                source,
                "{pairs:?}"
            );
            for format in [TraceIdFormat::Decimal, TraceIdFormat::Hex] {
                assert_eq!(
                    our_dd(pairs, format),
                    filter_dd(pairs, format),
                    "{pairs:?} {format:?}"
                );
            }
        }
    }

    #[test]
    fn repeated_headers_first_valid_wins() {
        let ctx = trace_context(&headers(&[
            ("x-datadog-trace-id", "-"),
            ("x-datadog-trace-id", "42"),
            ("x-datadog-trace-id", "43"),
            ("x-datadog-tags", "_dd.p.dm=-4"),
            ("x-datadog-tags", "_dd.p.tid=0000000000000001"),
        ]))
        .unwrap();
        assert_eq!(ctx.trace_id, (1u128 << 64) | 42);
        assert_eq!(ctx.span_id, None);
    }

    #[test]
    fn only_standard_names_count() {
        // `Trace-Id` normalises like a Datadog key, but is not a propagation header.
        assert_eq!(trace_context(&headers(&[("trace-id", "42")])), None);
        // Header names are case-insensitive in HTTP, and `HeaderMap` stores them lower-case.
        let ctx = trace_context(&headers(&[("X-Datadog-Trace-Id", "42")])).unwrap();
        assert_eq!(ctx.trace_id, 42);
    }
}
