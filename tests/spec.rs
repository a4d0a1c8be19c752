//! One test per rule of the behaviour ("The rules" in the README), through the public API, on
//! small inline records.
//!
//! Outputs are read with serde_json (`preserve_order` + `arbitrary_precision`, so key order and
//! the exact text of numbers are visible) and with `common::check_json`, which also rejects
//! duplicate keys. Tests are named after the section and rule they check.

// Test names spell `_log` as it is spelled in the output.
#![allow(non_snake_case)]

mod common;

use common::{assert_valid, check_nothing_lost, default_config, run, HASH};
use envoy_dd::{
    Config, Enriched, Error, LogKept, Outcome, Shape, TraceIdFormat, TraceSource, Transformer,
};
use serde_json::{json, Value};

/// Transforms `input` with `config`, checks the output is one valid object without duplicate
/// keys that lost nothing, and returns it parsed.
fn enrich_with(config: &Config, input: &str) -> (Value, Enriched) {
    let (out, outcome) = run(config, input.as_bytes());
    let Outcome::Enriched(enriched) = outcome else {
        panic!("expected Enriched, got {outcome:?}\n in: {input}");
    };
    assert_valid(&out);
    if let Err(e) = check_nothing_lost(input.as_bytes(), &out) {
        panic!(
            "{e}\n in:  {input}\n out: {}",
            String::from_utf8_lossy(&out)
        );
    }
    (serde_json::from_slice(&out).expect("valid JSON"), enriched)
}

/// [`enrich_with`] and the fixtures' default options (`hash` set, no `phase`, decimal ids).
fn enrich(input: &str) -> Value {
    enrich_with(&default_config(), input).0
}

/// The output as text, for byte-level assertions.
fn text(input: &str) -> String {
    common::out(input)
}

fn no_hash() -> Config {
    Config {
        hash: None,
        ..default_config()
    }
}

/// A FireLens record (shape A) around `log`.
fn firelens(log: &Value) -> String {
    json!({
        "container_name": "/ecs-api-canary-42-envoy-d4b2bcf39bd698b9a101",
        "source": "stdout",
        "log": format!("{log}\n"),
        "ecs_task_definition": "api:42",
    })
    .to_string()
}

/// `dd` of a bare record with the given trace fields.
fn dd_of(fields: Value) -> Value {
    enrich(&fields.to_string())
        .get("dd")
        .cloned()
        .unwrap_or(Value::Null)
}

fn ids(trace: &str, span: &str) -> Value {
    json!({"trace_id": trace, "span_id": span})
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// §2 Input records

#[test]
fn s2_shape_a_firelens_json_log_is_merged() {
    let input = firelens(
        &json!({"method": "GET", "path": "/x", "response_code": 200, "trace_id": "123", "span_id": "456"}),
    );
    let (out, enriched) = enrich_with(&default_config(), &input);
    assert_eq!(enriched.shape, Shape::LogJson);
    assert!(enriched.access_log);
    assert_eq!(enriched.trace, Some(TraceSource::Datadog));
    assert!(
        out.get("log").is_none(),
        "the log string is replaced by its fields"
    );
    assert_eq!(out["method"], "GET");
    assert_eq!(
        out["container_name"],
        "/ecs-api-canary-42-envoy-d4b2bcf39bd698b9a101"
    );
    assert_eq!(out["dd"], ids("123", "456"));
}

#[test]
fn s2_shape_a_log_may_end_in_newline_or_not() {
    let log = r#"{"method":"GET","path":"/x","response_code":200}"#;
    for suffix in ["", "\n", "\r\n", " \n"] {
        let input = json!({"source": "stdout", "log": format!("{log}{suffix}")}).to_string();
        let (out, enriched) = enrich_with(&default_config(), &input);
        assert_eq!(enriched.shape, Shape::LogJson, "{suffix:?}");
        assert_eq!(out["http"]["status_code"], 200);
    }
}

#[test]
fn s2_shape_b_text_access_log_is_kept_and_gets_hash_phase() {
    let line = "[2022-08-04T23:00:29.383Z] \"GET /ping HTTP/1.1\" 200 - 0 0 1 0 \"-\" \"Envoy/HC\" \"05ba7454-fce2-9360-92e3-a4da997d4f44\" \"colorteller-blue.logging.local:9080\" \"127.0.0.1:9080\"\n";
    let input = json!({"source": "stdout", "log": line, "ecs_task_definition": "api-canary:42"})
        .to_string();
    let (out, enriched) = enrich_with(&default_config(), &input);
    assert_eq!(out["hash"], HASH);
    assert_eq!(out["phase"], "canary");
    match enriched.shape {
        // Recognised: parsed like a JSON log.
        Shape::LogText => {
            assert!(out.get("log").is_none());
            assert_eq!(out["http"]["status_code"], 200);
            assert_eq!(out["http"]["url_details"]["path"], "/ping");
        }
        Shape::LogKept(LogKept::NotJson) => {
            assert_eq!(
                keys(&out),
                ["source", "log", "ecs_task_definition", "hash", "phase"]
            );
            assert_eq!(out["log"], line);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn s2_shape_c_bare_envoy_object() {
    let input = r#"{"method":"GET","path":"/x","response_code":200,"trace_id":"123"}"#;
    let (out, enriched) = enrich_with(&default_config(), input);
    assert_eq!(enriched.shape, Shape::Bare);
    assert!(enriched.access_log);
    assert_eq!(out["dd"]["trace_id"], "123");
    assert_eq!(out["http"]["status_code"], 200);
}

#[test]
fn s2_shape_d_application_json_log_with_dd() {
    let log = json!({"level": "info", "message": "order created", "dd": {"trace_id": "1739284736152093746", "span_id": "42", "service": "web"}});
    let (out, enriched) = enrich_with(&default_config(), &firelens(&log));
    assert_eq!(enriched.shape, Shape::LogJson);
    assert!(!enriched.access_log);
    assert_eq!(enriched.trace, Some(TraceSource::Existing));
    assert_eq!(
        out["dd"],
        json!({"trace_id": "1739284736152093746", "span_id": "42", "service": "web"})
    );
    assert_eq!(out["message"], "order created");
    assert!(out.get("http").is_none() && out.get("status").is_none());
}

#[test]
fn s2_shape_e_plain_text_passes_with_hash_and_phase() {
    for line in ["[2024-06-03 14:00:00.123][1][info][main] [source/server/server.cc:932] starting main dispatch loop\n", "plain text", ""] {
        let input = json!({"source": "stdout", "log": line, "ecs_task_definition": "api_stable:1"}).to_string();
        let (out, enriched) = enrich_with(&default_config(), &input);
        assert_eq!(enriched.shape, Shape::LogKept(LogKept::NotJson), "{line:?}");
        assert_eq!(out["log"], line);
        assert_eq!(out["hash"], HASH);
        assert_eq!(out["phase"], "stable");
        assert!(out.get("dd").is_none() && out.get("message").is_none());
    }
}

#[test]
fn s2_shape_f_flattened_record_keeps_envelope_keys() {
    let input = r#"{"container_name":"/ecs-x","source":"stdout","ecs_task_definition":"api-canary:3","code":"200","method":"GET","path":"/","duration":"0","response_flags":"-","x_forwarded_for":"-"}"#;
    let (out, enriched) = enrich_with(&no_hash(), input);
    assert_eq!(enriched.shape, Shape::Bare);
    assert!(enriched.access_log);
    assert_eq!(out["container_name"], "/ecs-x");
    assert_eq!(out["code"], "200");
    assert_eq!(out["http"]["status_code"], 200);
    assert_eq!(out["phase"], "canary");
    assert!(
        out.get("network").is_none(),
        "x_forwarded_for \"-\" is no address"
    );
}

#[test]
fn s2_typed_untyped_and_float_values_are_all_accepted() {
    for code in [json!(200), json!("200"), json!(200.0), json!("200.0")] {
        let out = enrich(&json!({"response_code": code, "method": "GET", "path": "/", "duration": "6", "bytes_sent": 11576.0}).to_string());
        assert_eq!(out["http"]["status_code"], 200, "{code}");
        assert_eq!(out["network"]["bytes_written"], 11576, "{code}");
        assert_eq!(out["duration"], 6_000_000, "{code}");
    }
    let out = enrich(r#"{"response_code":200,"duration":6.0}"#);
    assert_eq!(out["duration"], 6_000_000);
}

#[test]
fn s2_missing_values_null_and_dash_are_absent() {
    let out = enrich(
        r#"{"response_code":200,"method":"GET","path":"/","user_agent":null,"authority":"-","x_forwarded_for":null,"request_id":"-","protocol":null}"#,
    );
    assert_eq!(
        out["http"],
        json!({"status_code": 200, "method": "GET", "url_details": {"path": "/"}, "endpoint": "/"})
    );
    assert!(out.get("network").is_none());
}

#[test]
fn s2_unknown_response_flags_are_accepted() {
    let out =
        enrich(r#"{"response_code":200,"method":"GET","path":"/","response_flags":"XYZ,FI"}"#);
    assert_eq!(out["status"], "info");
    assert_eq!(out["message"], "GET / 200 XYZ,FI");
}

#[test]
fn s2_envoy_trace_id_operator_hex_is_not_a_datadog_id() {
    // %TRACE_ID% with the Datadog tracer prints the span id in hex; a Datadog-family key is
    // decimal only (or 32 hex digits), so 16 hex digits are not taken as an id.
    assert_eq!(dd_of(json!({"trace_id": "b7ad6b7169203331"})), Value::Null);
    assert_eq!(dd_of(json!({"trace_id": "1234567890abcdef"})), Value::Null);
}

// ---------------------------------------------------------------------------------------------
// §3 Trace context

#[test]
fn s3_ids_are_strings_never_numbers() {
    for input in [
        json!({"trace_id": "12345678901234567890", "span_id": "9007199254740993"}),
        json!({"trace_id": 12345678901234567890u64, "span_id": 9007199254740993u64}),
        json!({"dd": {"trace_id": 12345678901234567890u64, "span_id": 9007199254740993u64}}),
    ] {
        let out = text(&input.to_string());
        assert!(
            out.contains(
                r#""dd":{"trace_id":"12345678901234567890","span_id":"9007199254740993"}"#
            ),
            "{input}\n{out}"
        );
    }
}

#[test]
fn s3_numbers_are_exact_above_2_53() {
    // 2^53 + 1 is not representable as f64; parsing through f64 would give ...992.
    assert_eq!(
        dd_of(json!({"trace_id": 9007199254740993u64})),
        json!({"trace_id": "9007199254740993"})
    );
    assert_eq!(
        dd_of(json!({"trace_id": u64::MAX, "span_id": u64::MAX - 1})),
        ids("18446744073709551615", "18446744073709551614")
    );
}

#[test]
fn s3_keys_are_matched_by_normalised_name() {
    for (t, s) in [
        ("trace_id", "span_id"),
        ("traceId", "parentId"),
        ("x-datadog-trace-id", "x-datadog-parent-id"),
        ("x_datadog_trace_id", "x_datadog_parent_id"),
        ("X-DATADOG-TRACE-ID", "X-DATADOG-PARENT-ID"),
        ("dd.trace_id", "dd.span_id"),
        ("datadog-trace-id", "datadog-parent-id"),
    ] {
        assert_eq!(dd_of(json!({t: "11", s: "22"})), ids("11", "22"), "{t} {s}");
    }
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    for key in ["traceparent", "TraceParent", "trace-parent", "TRACEPARENT"] {
        assert_eq!(
            dd_of(json!({key: tp}))["trace_id"],
            "9532127138774266268",
            "{key}"
        );
    }
}

#[test]
fn s3_datadog_headers_decimal() {
    assert_eq!(
        dd_of(json!({"x_datadog_trace_id": "1234", "x_datadog_parent_id": "5678"})),
        ids("1234", "5678")
    );
}

#[test]
fn s3_w3c_low_64_bits_and_parent_id() {
    let out =
        dd_of(json!({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}));
    assert_eq!(
        out,
        ids(
            &0x8448eb211c80319cu64.to_string(),
            &0xb7ad6b7169203331u64.to_string()
        )
    );
}

#[test]
fn s3_b3_multi_16_and_32_hex() {
    let span = 0x05e3ac9a4f6e3b90u64.to_string();
    let out = dd_of(
        json!({"x-b3-traceid": "80f198ee56343ba864fe8b2a57d3eff7", "x-b3-spanid": "05e3ac9a4f6e3b90"}),
    );
    assert_eq!(out, ids(&0x64fe8b2a57d3eff7u64.to_string(), &span));
    let out = dd_of(json!({"x-b3-traceid": "e457b5a2e4d86bd1", "x-b3-spanid": "05e3ac9a4f6e3b90"}));
    assert_eq!(out, ids(&0xe457b5a2e4d86bd1u64.to_string(), &span));
}

#[test]
fn s3_b3_single_with_and_without_sampling() {
    let want = ids(
        &0xe457b5a2e4d86bd1u64.to_string(),
        &0x05e3ac9a4f6e3b90u64.to_string(),
    );
    for b3 in [
        "e457b5a2e4d86bd1-05e3ac9a4f6e3b90",
        "e457b5a2e4d86bd1-05e3ac9a4f6e3b90-1",
        "e457b5a2e4d86bd1-05e3ac9a4f6e3b90-d-1111111111111111",
    ] {
        assert_eq!(dd_of(json!({"b3": b3})), want, "{b3}");
    }
    assert_eq!(
        dd_of(json!({"b3": "1"})),
        Value::Null,
        "a bare sampling flag carries no ids"
    );
}

#[test]
fn s3_xray_masks_unless_00000000() {
    let parent = 0x53995c3f42cd8ad8u64.to_string();
    let masked = (0xe1be46a994272793u64 & 0x7fff_ffff_ffff_ffff).to_string();
    let out = dd_of(
        json!({"x-amzn-trace-id": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"}),
    );
    assert_eq!(out, ids(&masked, &parent));
    let out = dd_of(
        json!({"x-amzn-trace-id": "Root=1-5759e988-00000000e1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"}),
    );
    assert_eq!(out, ids(&0xe1be46a994272793u64.to_string(), &parent));
}

#[test]
fn s3_invalid_values_are_skipped() {
    for bad in [
        json!(null),
        json!(""),
        json!("-"),
        json!("0"),
        json!(0),
        json!("18446744073709551616"),
        json!("12a"),
        json!(" 12"),
        json!("+12"),
        json!(-12),
        json!(12.0),
        json!(1e3),
        json!(true),
        json!([1]),
        json!({"a": 1}),
    ] {
        assert_eq!(
            dd_of(json!({"trace_id": bad, "span_id": "5"})),
            Value::Null,
            "{bad}"
        );
    }
}

#[test]
fn s3_invalid_datadog_id_falls_through_to_w3c() {
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let want = ids(
        &0x8448eb211c80319cu64.to_string(),
        &0xb7ad6b7169203331u64.to_string(),
    );
    for bad in [
        json!(null),
        json!("-"),
        json!("0"),
        json!("18446744073709551616"),
    ] {
        assert_eq!(
            dd_of(json!({"trace_id": bad, "span_id": "77", "traceparent": tp})),
            want,
            "{bad}"
        );
    }
}

#[test]
fn s3_w3c_invalid_forms() {
    let ok = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    for bad in [
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c0-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
        "0-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "-",
    ] {
        assert_eq!(dd_of(json!({"traceparent": bad})), Value::Null, "{bad}");
        // Skipped, not blocking: the next source is used.
        assert_eq!(
            dd_of(json!({"traceparent": bad, "x-b3-traceid": "e457b5a2e4d86bd1"}))["trace_id"],
            0xe457b5a2e4d86bd1u64.to_string(),
            "{bad}"
        );
    }
    assert_ne!(dd_of(json!({"traceparent": ok})), Value::Null);
}

#[test]
fn s3_precedence_datadog_w3c_b3multi_b3single_xray() {
    let dd = ("trace_id", json!("1"));
    let w3c = (
        "traceparent",
        json!("00-00000000000000000000000000000002-0000000000000003-01"),
    );
    let b3m = ("x-b3-traceid", json!("0000000000000004"));
    let b3s = ("b3", json!("0000000000000005-0000000000000006"));
    let xray = (
        "x-amzn-trace-id",
        json!("Root=1-00000000-000000000000000000000007"),
    );
    let all = [dd, w3c, b3m, b3s, xray];
    for first in 0..all.len() {
        // Sources listed in reverse, so key order cannot be what decides.
        let record: serde_json::Map<String, Value> = all[first..]
            .iter()
            .rev()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let want = ["1", "2", "4", "5", "7"][first];
        assert_eq!(
            dd_of(Value::Object(record))["trace_id"],
            want,
            "from source {first}"
        );
    }
}

#[test]
fn s3_trace_and_span_come_from_the_same_source() {
    // The Datadog span id is valid but the trace id is not: the span must not be mixed in.
    let out = dd_of(json!({"trace_id": "0", "span_id": "77", "x-b3-traceid": "e457b5a2e4d86bd1"}));
    assert_eq!(out, json!({"trace_id": 0xe457b5a2e4d86bd1u64.to_string()}));
}

#[test]
fn s3_128_bit_default_is_low_64_bits_decimal() {
    let out = dd_of(
        json!({"trace_id": "1234", "span_id": "5", "x-datadog-tags": "_dd.p.tid=640cfd8d00000000,_dd.p.dm=-1"}),
    );
    assert_eq!(out, ids("1234", "5"));
    let out =
        dd_of(json!({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}));
    assert_eq!(out["trace_id"], 0x8448eb211c80319cu64.to_string());
}

#[test]
fn s3_trace_and_span_come_from_the_same_side() {
    // The log's and the envelope's ids may belong to different traces: a span id (or the
    // upper half in `x-datadog-tags`) of one side never joins the other side's trace id.
    let dd = |config: &Config, log: Value, envelope: Value| {
        let mut record = envelope;
        record["log"] = log.to_string().into();
        enrich_with(config, &record.to_string()).0["dd"].clone()
    };
    let config = default_config();
    for (log, envelope, want) in [
        // The log's trace id wins; the envelope's span id is of its own trace.
        (
            json!({"trace_id": "2"}),
            json!({"trace_id": "7", "span_id": "1"}),
            json!({"trace_id": "2"}),
        ),
        (
            json!({"trace_id": "2", "span_id": "3"}),
            json!({"trace_id": "7", "span_id": "1"}),
            ids("2", "3"),
        ),
        // The log's trace id is invalid: the envelope's ids, both.
        (
            json!({"trace_id": "-", "span_id": "3"}),
            json!({"trace_id": "7", "span_id": "1"}),
            ids("7", "1"),
        ),
        // A span id alone, beside a trace id alone: nothing says they differ.
        (
            json!({"trace_id": "2"}),
            json!({"span_id": "1"}),
            ids("2", "1"),
        ),
        (
            json!({"x_b3_traceid": "000000000000000a"}),
            json!({"x_b3_traceid": "000000000000000b", "x_b3_spanid": "000000000000000c"}),
            json!({"trace_id": "10"}),
        ),
    ] {
        assert_eq!(
            dd(&config, log.clone(), envelope.clone()),
            want,
            "{log} {envelope}"
        );
    }
    let hex = Config {
        trace_id_128: TraceIdFormat::Hex,
        ..default_config()
    };
    let tags = json!({"trace_id": "7", "x_datadog_tags": "_dd.p.tid=640cfd8d00000000"});
    assert_eq!(
        dd(&hex, json!({"trace_id": "1234"}), tags),
        json!({"trace_id": "1234"})
    );
    let tags = json!({"x_datadog_tags": "_dd.p.tid=640cfd8d00000000"});
    assert_eq!(
        dd(&hex, json!({"trace_id": "1234"}), tags)["trace_id"],
        "640cfd8d0000000000000000000004d2"
    );
}

#[test]
fn s3_trace_id_128_hex_option() {
    let hex = Config {
        trace_id_128: TraceIdFormat::Hex,
        ..default_config()
    };
    let dd = |v: Value| enrich_with(&hex, &v.to_string()).0["dd"].clone();
    assert_eq!(
        dd(json!({"trace_id": "1234", "x_datadog_tags": "_dd.p.tid=640cfd8d00000000"}))["trace_id"],
        "640cfd8d0000000000000000000004d2"
    );
    assert_eq!(
        dd(json!({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}))
            ["trace_id"],
        "0af7651916cd43dd8448eb211c80319c"
    );
    assert_eq!(
        dd(json!({"x-b3-traceid": "80f198ee56343ba864fe8b2a57d3eff7"}))["trace_id"],
        "80f198ee56343ba864fe8b2a57d3eff7"
    );
    // Upper half zero: a 64-bit id, decimal.
    assert_eq!(dd(json!({"trace_id": "1234"}))["trace_id"], "1234");
    assert_eq!(
        dd(json!({"traceparent": "00-00000000000000000000000000000001-0000000000000002-01"}))
            ["trace_id"],
        "1"
    );
}

#[test]
fn s3_128_bit_never_decimal() {
    let hex = Config {
        trace_id_128: TraceIdFormat::Hex,
        ..default_config()
    };
    let inputs = [
        json!({"trace_id": "1234", "x_datadog_tags": "_dd.p.tid=640cfd8d00000000"}),
        json!({"trace_id": "640cfd8d00000000000000000000002a"}),
        json!({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}),
        json!({"b3": "80f198ee56343ba864fe8b2a57d3eff7-05e3ac9a4f6e3b90"}),
    ];
    for config in [default_config(), hex] {
        for input in &inputs {
            let id = enrich_with(&config, &input.to_string()).0["dd"]["trace_id"]
                .as_str()
                .unwrap()
                .to_string();
            let decimal_fits = id.bytes().all(|b| b.is_ascii_digit()) && id.parse::<u64>().is_ok();
            let hex32 =
                id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            assert!(decimal_fits || hex32, "{input} gave {id}");
        }
    }
}

#[test]
fn s3_dd_p_tid_valid_and_malformed() {
    let hex = Config {
        trace_id_128: TraceIdFormat::Hex,
        ..default_config()
    };
    let dd = |tags: &str| {
        enrich_with(
            &hex,
            &json!({"trace_id": "1234", "x-datadog-tags": tags}).to_string(),
        )
        .0["dd"]["trace_id"]
            .clone()
    };
    assert_eq!(
        dd("_dd.p.dm=-1,_dd.p.tid=640cfd8d00000000"),
        "640cfd8d0000000000000000000004d2"
    );
    for bad in [
        "_dd.p.tid=640CFD8D00000000",
        "_dd.p.tid=640cfd8d",
        "_dd.p.tid=640cfd8d000000000",
        "_dd.p.tid=xyz",
        "_dd.p.tid=",
        "-",
    ] {
        assert_eq!(dd(bad), "1234", "{bad}");
    }
}

#[test]
fn s3_otel_32_hex_in_datadog_key_is_hex() {
    assert_eq!(
        dd_of(json!({"trace_id": "640cfd8d00000000000000000000002a", "span_id": "7"})),
        ids("42", "7")
    );
    assert_eq!(
        dd_of(json!({"trace_id": "640CFD8D00000000000000000000002A"})),
        Value::Null
    );
    // 20 decimal digits that are not 32 long stay decimal (and overflow here).
    assert_eq!(
        dd_of(json!({"trace_id": "99999999999999999999"})),
        Value::Null
    );
}

#[test]
fn s3_existing_dd_is_kept_and_wins() {
    let out = dd_of(
        json!({"dd": {"trace_id": "1111", "span_id": "2222", "service": "web"}, "trace_id": "3333", "span_id": "4444"}),
    );
    assert_eq!(
        out,
        json!({"trace_id": "1111", "span_id": "2222", "service": "web"})
    );
}

#[test]
fn s3_existing_dd_number_becomes_decimal_string() {
    let out = text(r#"{"dd":{"trace_id":12345678901234567890,"span_id":42}}"#);
    assert!(
        out.contains(r#""dd":{"trace_id":"12345678901234567890","span_id":"42"}"#),
        "{out}"
    );
}

#[test]
fn s3_existing_invalid_dd_is_replaced_when_another_source_is_valid() {
    for bad in [json!("-"), json!(null), json!(""), json!("0")] {
        let out = dd_of(
            json!({"dd": {"trace_id": bad, "span_id": bad}, "trace_id": "5", "span_id": "6"}),
        );
        assert_eq!(out, ids("5", "6"), "{bad}");
    }
}

#[test]
fn s3_existing_invalid_dd_is_left_exactly_as_it_was_otherwise() {
    for dd in [
        r#"{"trace_id":"-","span_id":"-"}"#,
        r#"{"trace_id":null}"#,
        r#"{"trace_id":"abc","span_id":"0"}"#,
        r#"{"trace_id":0}"#,
    ] {
        let input = format!(r#"{{"msg":"x","dd":{dd}}}"#);
        let out = text(&input);
        assert!(out.contains(&format!(r#""dd":{dd}"#)), "{out}");
    }
}

#[test]
fn s3_never_emits_dash_zero_or_garbage() {
    for input in [
        json!({"trace_id": "-", "span_id": "-"}),
        json!({"trace_id": "0", "span_id": "0"}),
        json!({"trace_id": "5", "span_id": "0"}),
        json!({"trace_id": "5", "span_id": "-"}),
        json!({"trace_id": "5", "span_id": "abc"}),
        json!({"x-b3-traceid": "e457b5a2e4d86bd1", "x-b3-spanid": "0000000000000000"}),
        json!({"b3": "e457b5a2e4d86bd1-0000000000000000"}),
    ] {
        let out = dd_of(input.clone());
        for key in ["trace_id", "span_id"] {
            if let Some(id) = out.get(key) {
                let id = id.as_str().expect("string id");
                assert!(
                    id.parse::<u64>().is_ok_and(|n| n != 0),
                    "{input}: {key} = {id}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// §4 hash and phase

#[test]
fn s4_hash_and_phase_from_config() {
    let config = Config {
        hash: Some("abc123".into()),
        phase: Some("canary".into()),
        ..Config::default()
    };
    let (out, _) = enrich_with(&config, r#"{"msg":"x"}"#);
    assert_eq!(
        out,
        json!({"msg": "x", "hash": "abc123", "phase": "canary"})
    );
}

#[test]
fn s4_precedence_log_over_envelope_over_config_over_derived() {
    let config = Config {
        hash: Some("config".into()),
        phase: Some("stable".into()),
        ..Config::default()
    };
    let record = |log: Value, env: Value| {
        let mut r = json!({"source": "stdout", "log": log.to_string(), "ecs_task_definition": "api-canary:1"});
        r.as_object_mut()
            .unwrap()
            .extend(env.as_object().unwrap().clone());
        enrich_with(&config, &r.to_string()).0
    };
    let out = record(
        json!({"hash": "log", "phase": "canary"}),
        json!({"hash": "env", "phase": "stable"}),
    );
    assert_eq!(
        (&out["hash"], &out["phase"]),
        (&json!("log"), &json!("canary"))
    );
    let out = record(
        json!({"msg": "x"}),
        json!({"hash": "env", "phase": "canary"}),
    );
    assert_eq!(
        (&out["hash"], &out["phase"]),
        (&json!("env"), &json!("canary"))
    );
    let out = record(json!({"msg": "x"}), json!({}));
    assert_eq!(
        (&out["hash"], &out["phase"]),
        (&json!("config"), &json!("stable")),
        "config beats derived"
    );
    let (out, _) = enrich_with(
        &Config::default(),
        &json!({"msg": "x", "ecs_task_definition": "api-canary:1"}).to_string(),
    );
    assert_eq!(out["phase"], "canary");
}

#[test]
fn s4_phase_derived_from_task_definition_family() {
    for (task, want) in [
        ("api-canary:42", Some("canary")),
        ("api_canary:42", Some("canary")),
        ("api-stable:41", Some("stable")),
        ("api_stable:1", Some("stable")),
        ("api-canary", Some("canary")),
        ("api:40", None),
        ("canary:1", None),
        ("api-canary-v2:1", None),
        ("api-canaryx:1", None),
        ("stable-api:1", None),
        ("", None),
        ("-", None),
    ] {
        let (out, _) = enrich_with(
            &Config::default(),
            &json!({"msg": "x", "ecs_task_definition": task}).to_string(),
        );
        assert_eq!(out.get("phase").and_then(Value::as_str), want, "{task}");
    }
}

#[test]
fn s4_phase_derived_from_the_envelope_task_definition_first() {
    // ECS sets the envelope's `ecs_task_definition`; a copy inside the log is only a fallback.
    let log = json!({"msg": "x", "ecs_task_definition": "api-stable:3"}).to_string();
    let both = json!({"log": log, "ecs_task_definition": "api-canary:4"}).to_string();
    let (out, _) = enrich_with(&Config::default(), &both);
    assert_eq!(out["phase"], "canary");
    let only_log = json!({ "log": log }).to_string();
    let (out, _) = enrich_with(&Config::default(), &only_log);
    assert_eq!(out["phase"], "stable");
}

#[test]
fn s4_phase_is_left_out_rather_than_guessed() {
    let (out, _) = enrich_with(
        &Config::default(),
        r#"{"msg":"x","container_name":"api-canary"}"#,
    );
    assert!(out.get("phase").is_none() && out.get("hash").is_none());
}

#[test]
fn s4_debris_counts_as_absent_and_is_removed() {
    for debris in ["", "-", "${GIT_COMMIT_SHA}", "${DEPLOY_PHASE}"] {
        // In the envelope, with nothing to replace it: removed.
        let (out, _) = enrich_with(
            &Config::default(),
            &json!({"msg": "x", "hash": debris, "phase": debris}).to_string(),
        );
        assert_eq!(out, json!({"msg": "x"}), "{debris:?}");
        // In the envelope, with a configured value: replaced.
        let config = Config {
            hash: Some("cfg".into()),
            phase: Some("stable".into()),
            ..Config::default()
        };
        let (out, _) = enrich_with(
            &config,
            &json!({"msg": "x", "hash": debris, "phase": debris}).to_string(),
        );
        assert_eq!(
            out,
            json!({"msg": "x", "hash": "cfg", "phase": "stable"}),
            "{debris:?}"
        );
        // In the log, with a real envelope value: the envelope's wins.
        let input = json!({"hash": "env", "phase": "canary", "log": json!({"msg": "x", "hash": debris, "phase": debris}).to_string()});
        let (out, _) = enrich_with(&Config::default(), &input.to_string());
        assert_eq!(
            out,
            json!({"hash": "env", "phase": "canary", "msg": "x"}),
            "{debris:?}"
        );
        // Configured debris is no value either.
        let config = Config {
            hash: Some(debris.into()),
            phase: Some(debris.into()),
            ..Config::default()
        };
        let (out, _) = enrich_with(&config, r#"{"msg":"x","ecs_task_definition":"a-canary:1"}"#);
        assert_eq!(
            out,
            json!({"msg": "x", "ecs_task_definition": "a-canary:1", "phase": "canary"}),
            "{debris:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// §5 Datadog attributes

const SEED: &str = r#"{"response_code":200,"method":"GET","path":"/users/42?x=1&y=","duration":12,"response_duration":11,"response_flags":"-","request_id":"rid-1","trace_id":"1234","span_id":"5678"}"#;

#[test]
fn s5_http_status_code_is_a_number_from_any_code_key() {
    for key in [
        "response_code",
        "status_code",
        "code",
        "RESPONSE_CODE",
        "statusCode",
    ] {
        let out = enrich(&json!({key: "503", "method": "GET"}).to_string());
        assert_eq!(out["http"]["status_code"], 503, "{key}");
        assert!(out["http"]["status_code"].is_u64());
    }
}

#[test]
fn s5_method_path_query_and_request_id() {
    let out = enrich(SEED);
    assert_eq!(out["http"]["method"], "GET");
    assert_eq!(out["http"]["url_details"]["path"], "/users/42");
    assert_eq!(
        out["http"]["url_details"]["queryString"],
        json!({"x": "1", "y": ""})
    );
    assert_eq!(out["http"]["request_id"], "rid-1");
    let out = enrich(r#"{"response_code":200,"path":"/plain"}"#);
    assert_eq!(
        out["http"]["url_details"],
        json!({"path": "/plain"}),
        "no queryString without a query"
    );
}

#[test]
fn s5_query_string_keeps_the_first_of_a_name_and_at_most_64_names() {
    let query = |path: &str| {
        let out = enrich(&json!({"response_code": 200, "path": path}).to_string());
        out["http"]["url_details"]["queryString"].clone()
    };
    assert_eq!(
        query("/p?a=1&b=&a=2&&=x&c&b=3"),
        json!({"a": "1", "b": "", "c": ""})
    );
    let many: Vec<String> = (0..70).map(|i| format!("k{i}={i}")).collect();
    let params = query(&format!("/p?k0=again&{}&k1=again", many.join("&")));
    let params = params.as_object().unwrap();
    assert_eq!(params.len(), 64);
    assert_eq!(params["k0"], "again");
    assert_eq!(params["k1"], "1");
    assert_eq!(params["k63"], "63");
    assert!(!params.contains_key("k64"));
}

#[test]
fn s5_original_path_is_preferred() {
    let out = enrich(
        r#"{"response_code":200,"path":"/rewritten","x_envoy_original_path":"/original?q=1"}"#,
    );
    assert_eq!(out["http"]["url_details"]["path"], "/original");
    assert_eq!(out["http"]["url_details"]["queryString"], json!({"q": "1"}));
}

#[test]
fn s5_host_version_useragent() {
    let out = enrich(
        r#"{"response_code":200,"authority":"api.example.com","protocol":"HTTP/1.1","user_agent":"curl/8.7.1"}"#,
    );
    assert_eq!(out["http"]["url_details"]["host"], "api.example.com");
    assert_eq!(out["http"]["version"], "1.1");
    assert_eq!(out["http"]["useragent"], "curl/8.7.1");
    let out = enrich(r#"{"response_code":200,"host":"h","protocol":"HTTP/2"}"#);
    assert_eq!(out["http"]["url_details"]["host"], "h");
    assert_eq!(out["http"]["version"], "2");
}

#[test]
fn s5_client_ip_from_forwarded_for_else_remote_address() {
    let ip = |v: Value| enrich(&v.to_string())["network"]["client"]["ip"].clone();
    assert_eq!(
        ip(
            json!({"response_code": 200, "x_forwarded_for": "203.0.113.7, 10.0.0.1", "downstream_remote_address": "10.9.9.9:1"})
        ),
        "203.0.113.7"
    );
    assert_eq!(
        ip(
            json!({"response_code": 200, "x_forwarded_for": null, "downstream_remote_address": "10.9.9.9:5432"})
        ),
        "10.9.9.9"
    );
    assert_eq!(
        ip(
            json!({"response_code": 200, "x_forwarded_for": "-", "downstream_remote_address": "[2001:db8::1]:443"})
        ),
        "2001:db8::1"
    );
    // Ports go, and what is not an address is no client IP.
    assert_eq!(
        ip(json!({"response_code": 200, "x_forwarded_for": "203.0.113.7:5555"})),
        "203.0.113.7"
    );
    assert_eq!(
        ip(
            json!({"response_code": 200, "x_forwarded_for": "unknown, 10.0.0.1", "downstream_remote_address": "10.9.9.9:1"})
        ),
        "10.9.9.9"
    );
    let out = enrich(
        &json!({"response_code": 200, "downstream_remote_address": "/var/run/envoy.sock"})
            .to_string(),
    );
    assert!(out.get("network").is_none(), "{out}");
}

#[test]
fn s5_bytes_are_numbers() {
    let out = enrich(r#"{"response_code":200,"bytes_received":"12","bytes_sent":3400}"#);
    assert_eq!(
        out["network"],
        json!({"bytes_read": 12, "bytes_written": 3400})
    );
    assert!(out["network"]["bytes_read"].is_u64());
}

#[test]
fn s5_duration_milliseconds_become_nanoseconds() {
    for (ms, ns) in [
        (json!(12), 12_000_000u64),
        (json!("12"), 12_000_000),
        (json!(6.0), 6_000_000),
        (json!(0), 0),
        (json!(0.25), 250_000),
        // Below a nanosecond: to the nearest.
        (json!("1.2345678"), 1_234_568),
        (json!("1.2345674999"), 1_234_567),
        (json!("0.0000005"), 1),
    ] {
        let out = enrich(&json!({"response_code": 200, "duration": ms}).to_string());
        assert_eq!(out["duration"], ns, "{ms}");
    }
    // The message shows the rounded value too.
    let out = enrich(r#"{"response_code":200,"method":"GET","path":"/","duration":1.9999999}"#);
    assert_eq!(out["message"], "GET / 200 2ms");
}

#[test]
fn s5_original_envoy_keys_stay_as_they_were() {
    let out = text(SEED);
    assert!(
        out.starts_with(
            &SEED[..SEED.len() - 1].replace(r#""duration":12,"#, r#""duration":12000000,"#)
        ),
        "{out}"
    );
    assert!(out.ends_with(r#""_log":{"duration":12}}"#), "{out}");
}

/// Transforms `input` with the library's default options (Envoy keys move into their standard
/// attributes, `hash` set), checks that nothing was lost (each value present or recoverable
/// from its attribute), and returns the output text.
fn moved(input: &str) -> String {
    let (out, outcome) = run(&common::moving_config(), input.as_bytes());
    assert!(
        matches!(outcome, Outcome::Enriched(_)),
        "{outcome:?}\n in: {input}"
    );
    assert_valid(&out);
    if let Err(e) = common::check_nothing_lost_moving(input.as_bytes(), &out) {
        panic!(
            "{e}\n in:  {input}\n out: {}",
            String::from_utf8_lossy(&out)
        );
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn s5_keys_whose_whole_value_an_attribute_holds_move_there() {
    let input = r#"{"response_code":200,"method":"GET","path":"/users/42?x=1","duration":12,"response_flags":"-","request_id":"rid-1","trace_id":"1234","span_id":"5678","authority":"api.local","protocol":"HTTP/1.1","user_agent":"curl/8","x_forwarded_for":"203.0.113.9","bytes_received":3,"bytes_sent":50,"upstream_host":"10.0.0.1:80"}"#;
    assert_eq!(
        moved(input),
        r#"{"duration":12000000,"response_flags":"-","upstream_host":"10.0.0.1:80","dd":{"trace_id":"1234","span_id":"5678"},"hash":"4f9c2a17e0b3","http":{"status_code":200,"method":"GET","url":"/users/42?x=1","url_details":{"path":"/users/42","queryString":{"x":"1"},"host":"api.local"},"endpoint":"/users/{param:int}","version":"1.1","request_id":"rid-1","useragent":"curl/8"},"network":{"client":{"ip":"203.0.113.9"},"bytes_read":3,"bytes_written":50},"status":"info","message":"GET /users/42?x=1 200 12ms"}"#
    );
    // The same keys in a FireLens record's `log`, read by a learned layout after the first.
    let firelens = json!({"source": "stdout", "log": input}).to_string();
    let mut t = Transformer::new(common::moving_config());
    for _ in 0..3 {
        let mut out = Vec::new();
        t.transform(firelens.as_bytes(), &mut out);
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.starts_with(
                r#"{"source":"stdout","duration":12000000,"response_flags":"-","upstream_host""#
            ),
            "{out}"
        );
        let parsed: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            keys(&parsed),
            [
                "source",
                "duration",
                "response_flags",
                "upstream_host",
                "dd",
                "hash",
                "http",
                "network",
                "status",
                "message"
            ]
        );
    }
}

#[test]
fn s5_keys_only_partly_carried_stay() {
    let out = moved(
        r#"{"response_code":200,"x_forwarded_for":"203.0.113.9, 10.0.0.2","downstream_remote_address":"10.0.0.2:5123","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","x_datadog_tags":"_dd.p.tid=4bf92f3577b34da6","x_b3_traceid":"4bf92f3577b34da6","x_amzn_trace_id":"Root=1-5759e988-bd862e3fe1be46a994272793","response_flags":"UF"}"#,
    );
    for key in [
        r#""x_forwarded_for":"203.0.113.9, 10.0.0.2""#,
        r#""downstream_remote_address":"10.0.0.2:5123""#,
        r#""traceparent""#,
        r#""x_datadog_tags""#,
        r#""x_b3_traceid""#,
        r#""x_amzn_trace_id""#,
        r#""response_flags":"UF""#,
    ] {
        assert!(out.contains(key), "{key} in {out}");
    }
    assert!(
        out.contains(r#""network":{"client":{"ip":"203.0.113.9"}}"#),
        "{out}"
    );
    // The W3C context is used, so no Datadog id moves; one address without a port does.
    let out = moved(
        r#"{"response_code":200,"downstream_remote_address":"10.0.0.2","trace_id":"5","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}"#,
    );
    assert!(!out.contains("downstream_remote_address"), "{out}");
    assert!(out.starts_with(r#"{"traceparent""#), "{out}");
}

#[test]
fn s5_absent_values_of_moved_keys_are_dropped() {
    let out = moved(
        r#"{"response_code":200,"method":"-","path":null,"user_agent":null,"authority":"-","x_forwarded_for":null,"trace_id":null,"span_id":"-","bytes_sent":"-","duration":"-","x_datadog_tags":null,"response_flags":"-","request_id":""}"#,
    );
    assert_eq!(
        out,
        r#"{"x_datadog_tags":null,"response_flags":"-","request_id":"","hash":"4f9c2a17e0b3","http":{"status_code":200},"status":"info","message":"200"}"#
    );
}

#[test]
fn s5_only_values_written_exactly_move() {
    let moves = |input: &str, key: &str| {
        let out: Value = serde_json::from_str(&moved(input)).unwrap();
        out.get(key).is_none()
    };
    let code = |v: &str| format!(r#"{{"response_code":{v},"method":"GET"}}"#);
    // The same number, or a string of its own digits, is held by `http.status_code`.
    for v in ["200", "200.0", r#""200""#] {
        assert!(moves(&code(v), "response_code"), "{v}");
    }
    for v in [r#""200.0""#, r#""0200""#, r#"" 200""#] {
        assert!(!moves(&code(v), "response_code"), "{v}");
    }
    let bytes = |v: &str| format!(r#"{{"response_code":200,"bytes_sent":{v}}}"#);
    assert!(moves(&bytes("11576.0"), "bytes_sent"));
    assert!(moves(&bytes(r#""11576""#), "bytes_sent"));
    assert!(!moves(&bytes("1.0e3"), "bytes_sent"));
    // Milliseconds held exactly by nanoseconds move; below a nanosecond they stay in `_log`.
    let duration = |v: &str| moved(&format!(r#"{{"response_code":200,"duration":{v}}}"#));
    assert_eq!(
        duration("1.25"),
        r#"{"duration":1250000,"hash":"4f9c2a17e0b3","http":{"status_code":200},"status":"info","message":"200 1.25ms"}"#
    );
    assert!(duration(r#""12""#).starts_with(r#"{"duration":12000000,"hash""#));
    assert!(duration("0.0000004").ends_with(r#""_log":{"duration":0.0000004}}"#));
    assert!(duration("1e3").ends_with(r#""_log":{"duration":1e3}}"#));
    assert!(duration(r#""12.0""#).ends_with(r#""_log":{"duration":"12.0"}}"#));
    // Service Connect's `duration_ms` is a duration in milliseconds too: it moves.
    let duration_ms = moved(r#"{"response_code":200,"duration_ms":7}"#);
    assert_eq!(
        duration_ms,
        r#"{"hash":"4f9c2a17e0b3","http":{"status_code":200},"duration":7000000,"status":"info","message":"200 7ms"}"#
    );
    // `HTTP/1.1` is held by `1.1`; another spelling is not.
    assert!(moves(
        r#"{"response_code":200,"protocol":"HTTP/2"}"#,
        "protocol"
    ));
    assert!(!moves(
        r#"{"response_code":200,"protocol":"http/1.1"}"#,
        "protocol"
    ));
    // Ids move when `dd` holds their very text.
    assert!(moves(
        r#"{"response_code":200,"trace_id":12,"span_id":34}"#,
        "trace_id"
    ));
    assert!(!moves(
        r#"{"response_code":200,"trace_id":"0012"}"#,
        "trace_id"
    ));
    // Of two paths, the one `http.url` holds moves.
    let out = moved(r#"{"response_code":200,"path":"/a","x_envoy_original_path":"/b"}"#);
    assert!(
        out.starts_with(r#"{"path":"/a","#) && out.contains(r#""url":"/b""#),
        "{out}"
    );
}

#[test]
fn s5_128_bit_ids_move_only_as_written() {
    let input =
        r#"{"response_code":200,"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"5"}"#;
    let hex = Config {
        trace_id_128: TraceIdFormat::Hex,
        ..common::moving_config()
    };
    let (out, _) = run(&hex, input.as_bytes());
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.starts_with(r#"{"dd":{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"5"}"#),
        "{out}"
    );
    // In decimal, `dd.trace_id` holds the lower half only: the 128-bit id stays.
    let out = moved(input);
    assert!(
        out.starts_with(r#"{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","dd""#),
        "{out}"
    );
}

#[test]
fn s5_keys_stay_when_the_record_has_its_own_attributes_or_they_are_off() {
    let out = moved(r#"{"response_code":200,"method":"GET","bytes_sent":5,"http":{"x":1}}"#);
    assert!(
        out.starts_with(r#"{"response_code":200,"method":"GET","http":{"x":1},"hash""#),
        "{out}"
    );
    assert!(out.contains(r#""network":{"bytes_written":5}"#), "{out}");
    let off = Config {
        standard_attributes: false,
        ..common::moving_config()
    };
    let input = r#"{"response_code":200,"method":"GET","user_agent":null,"duration":3}"#;
    let (out, _) = run(&off, input.as_bytes());
    assert!(
        out.starts_with(input.trim_end_matches('}').as_bytes()),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

#[test]
fn s5_endpoint_is_inferred_as_datadog_tracers_do_or_taken_from_a_route() {
    let endpoint = |config: &Config, method: &str, path: &str, code: u16| {
        let input = json!({"response_code": code, "method": method, "path": path}).to_string();
        let (out, _) = enrich_with(config, &input);
        out["http"].get("endpoint").cloned()
    };
    let config = default_config();
    let cases = [
        ("/api/v1/users/123456", "/api/v1/users/{param:int}"),
        ("/api/v1/users/98765?expand=1", "/api/v1/users/{param:int}"),
        ("/orders/a1b2c3d4/items/5", "/orders/{param:hex}/items/5"),
        ("/u/user@example.com", "/u/{param:str}"),
        ("/", "/"),
        ("/a/b/c/d/e/f/g/h/i/j", "/a/b/c/d/e/f/g/h"),
        // Non-ASCII segments are kept as they are.
        ("/café/123", "/café/{param:int}"),
    ];
    for (path, want) in cases {
        assert_eq!(
            endpoint(&config, "GET", path, 200),
            Some(json!(want)),
            "{path}"
        );
    }
    // Escaped in the log: worked out on the decoded path, escaped again.
    let escaped = r#"{"response_code":200,"path":"/caf\u00e9\/123"}"#;
    let out: Value = serde_json::from_str(&text(escaped)).unwrap();
    assert_eq!(out["http"]["endpoint"], "/café/{param:int}");
    // A 404 no route matches gets none, as the tracers give none to scanners' probes.
    assert_eq!(endpoint(&config, "GET", "/wp-login.php", 404), None);
    // Route templates win over inference, by method when they name one.
    let routed = Config {
        routes: envoy_dd::endpoint::Routes::parse("GET /users/{id}\n/orders/{id}/items").unwrap(),
        ..default_config()
    };
    assert_eq!(
        endpoint(&routed, "GET", "/users/42", 200),
        Some(json!("/users/{id}"))
    );
    assert_eq!(
        endpoint(&routed, "DELETE", "/users/42", 200),
        Some(json!("/users/{param:int}"))
    );
    assert_eq!(
        endpoint(&routed, "POST", "/orders/7/items", 404),
        Some(json!("/orders/{id}/items"))
    );
    // No path, no endpoint.
    let (out, _) = enrich_with(&config, r#"{"response_code":200,"method":"GET"}"#);
    assert_eq!(out["http"].get("endpoint"), None);
}

#[test]
fn s5_a_logged_graphql_operation_name_is_its_own_attribute() {
    for key in [
        "x_apollo_operation_name",
        "X-APOLLO-OPERATION-NAME",
        "graphql_operation_name",
        "operation_name",
    ] {
        let input =
            json!({"response_code": 200, "method": "POST", "path": "/graphql", key: "GetUser"})
                .to_string();
        let (out, _) = enrich_with(&default_config(), &input);
        assert_eq!(
            out["graphql"],
            json!({"operation": {"name": "GetUser"}}),
            "{key}"
        );
        assert_eq!(out[key], "GetUser", "{key}");
        let out: Value = serde_json::from_str(&moved(&input)).unwrap();
        assert_eq!(out["graphql"]["operation"]["name"], "GetUser", "{key}");
        assert!(out.get(key).is_none(), "{key} moves");
    }
    // Absent, empty, or a `graphql` of the record's own: none added.
    for extra in [
        r#""operation_name":null"#,
        r#""operation_name":"""#,
        r#""operation_name":"A","graphql":1"#,
    ] {
        let input = format!(r#"{{"response_code":200,{extra}}}"#);
        let (out, _) = enrich_with(&default_config(), &input);
        assert!(out.get("graphql").is_none_or(|g| g == 1), "{input}");
    }
}

#[test]
fn s5_keep_source_attributes_keeps_every_key() {
    let keep = Config {
        keep_source_attributes: true,
        ..common::moving_config()
    };
    let (out, _) = run(&keep, SEED.as_bytes());
    let out = String::from_utf8(out).unwrap();
    assert_eq!(out, text(SEED));
    assert!(
        out.starts_with(r#"{"response_code":200,"method":"GET","path""#),
        "{out}"
    );
    assert!(!out.contains(r#""url""#), "{out}");
}

#[test]
fn s5_only_access_logs_get_attributes() {
    let (out, enriched) = enrich_with(
        &default_config(),
        r#"{"method":"GET","path":"/x","duration":5,"trace_id":"42"}"#,
    );
    assert!(!enriched.access_log);
    assert_eq!(
        keys(&out),
        ["method", "path", "duration", "trace_id", "dd", "hash"]
    );
    assert_eq!(out["duration"], 5);
}

#[test]
fn s5_status_levels() {
    let level = |code: Value, flags: &str| {
        enrich(&json!({"response_code": code, "response_flags": flags}).to_string())["status"]
            .clone()
    };
    for (code, flags, want) in [
        (json!(200), "-", "info"),
        (json!(204), "-", "info"),
        (json!(302), "-", "info"),
        (json!(404), "-", "warn"),
        (json!(499), "-", "warn"),
        (json!(500), "-", "error"),
        (json!(503), "UH", "error"),
        (json!(200), "UF,URX", "error"),
        (json!(200), "UT", "error"),
        (json!(200), "NR", "warn"),
        (json!(404), "NR", "warn"),
        (json!(0), "DC", "warn"),
        (json!(0), "-", "warn"),
        (json!(200), "DC,UH", "error"),
        (json!(200), "RL", "warn"),
        (json!(200), "UAEX", "warn"),
        (json!(200), "FI", "info"),
        (json!(200), "XYZ", "info"),
        (json!(200), "NoHealthyUpstream", "error"),
    ] {
        assert_eq!(level(code.clone(), flags), want, "{code} {flags}");
    }
    for flag in [
        "UH", "UF", "UO", "URX", "NC", "DT", "LH", "UT", "LR", "UR", "UC", "UMSDR", "UPE", "DF",
        "DO", "OM", "RLSE", "NFCF",
    ] {
        assert_eq!(level(json!(200), flag), "error", "{flag}");
    }
    for flag in ["DC", "DR", "DPE", "SI", "IH", "NR", "RL", "UAEX"] {
        assert_eq!(level(json!(200), flag), "warn", "{flag}");
    }
    // The long names of `%RESPONSE_FLAGS_LONG%`, under the key Envoy's operator gives them.
    let long = |flags: &str| {
        enrich(&json!({"response_code": 200, "response_flags_long": flags}).to_string())
    };
    assert_eq!(long("UpstreamRetryLimitExceeded")["status"], "error");
    assert_eq!(long("DownstreamConnectionTermination")["status"], "warn");
    assert_eq!(long("-")["status"], "info");
    assert_eq!(long("NoRouteFound")["message"], "200 NoRouteFound");
}

#[test]
fn s5_status_only_when_no_level() {
    for key in ["status", "level", "severity", "Level"] {
        let out = enrich(&json!({"response_code": 503, key: "debug"}).to_string());
        assert_eq!(out[key], "debug", "{key}");
        assert!(key == "status" || out.get("status").is_none(), "{key}");
    }
}

#[test]
fn s5_message_format() {
    assert_eq!(enrich(SEED)["message"], "GET /users/42?x=1&y= 200 12ms");
    let out = enrich(
        r#"{"response_code":503,"method":"POST","path":"/a","duration":0,"response_flags":"UF,URX"}"#,
    );
    assert_eq!(out["message"], "POST /a 503 0ms UF,URX");
    // Missing words leave no stray spaces; Envoy's `-` and `""` count as missing.
    for (record, message) in [
        (r#"{"response_code":200,"path":"/a"}"#, "/a 200"),
        (r#"{"response_code":200,"method":"GET"}"#, "GET 200"),
        (r#"{"response_code":200,"method":"-","path":""}"#, "200"),
        (
            r#"{"response_code":200,"duration":"0.25","response_flags":"-"}"#,
            "200 0.25ms",
        ),
    ] {
        assert_eq!(enrich(record)["message"], message, "{record}");
    }
}

#[test]
fn s5_message_only_when_none() {
    for key in ["message", "msg", "log"] {
        let out = enrich(&json!({"response_code": 200, "method": "GET", key: "own"}).to_string());
        assert_eq!(out[key], "own");
        assert!(key == "message" || out.get("message").is_none(), "{key}");
    }
}

#[test]
fn s5_each_addition_can_be_turned_off() {
    let off = |f: fn(&mut Config)| {
        let mut c = default_config();
        f(&mut c);
        enrich_with(&c, SEED).0
    };
    let out = off(|c| c.standard_attributes = false);
    assert!(out.get("http").is_none() && out.get("network").is_none());
    assert_eq!(
        out["duration"], 12,
        "no nanosecond duration without standard attributes"
    );
    assert!(out.get("status").is_some() && out.get("message").is_some());
    let out = off(|c| c.status = false);
    assert!(out.get("status").is_none() && out.get("http").is_some());
    let out = off(|c| c.message = false);
    assert!(out.get("message").is_none() && out.get("status").is_some());
    let (out, _) = enrich_with(
        &Config {
            derive_phase: false,
            ..Config::default()
        },
        r#"{"msg":"x","ecs_task_definition":"a-canary:1"}"#,
    );
    assert!(out.get("phase").is_none());
}

// ---------------------------------------------------------------------------------------------
// §6 Building the output

#[test]
fn s6_unparseable_log_stays_untouched() {
    for log in ["{\"a\":1", "{not json}", "[1,2]", "{\"a\":1}{\"b\":2}"] {
        let input = json!({"source": "stdout", "log": log}).to_string();
        let (out, enriched) = enrich_with(&default_config(), &input);
        assert!(matches!(enriched.shape, Shape::LogKept(_)), "{log}");
        assert_eq!(out["log"], log);
    }
}

#[test]
fn s6_collision_moves_log_value_under__log() {
    let input =
        json!({"source": "stdout", "log": json!({"source": "envoy", "msg": "x"}).to_string()})
            .to_string();
    let out = enrich(&input);
    assert_eq!(out["source"], "stdout");
    assert_eq!(out["_log"], json!({"source": "envoy"}));
}

#[test]
fn s6_collision_with_identical_value_is_still_kept_under__log() {
    let input =
        json!({"source": "stdout", "log": json!({"source": "stdout", "msg": "x"}).to_string()})
            .to_string();
    assert_eq!(enrich(&input)["_log"], json!({"source": "stdout"}));
}

#[test]
fn s6_no_key_twice_when_envelope_uses__log() {
    // The parsed value cannot go to `_log`: the record must still keep everything, once.
    let input = json!({"source": "stdout", "_log": "mine", "log": json!({"source": "envoy", "msg": "x"}).to_string()}).to_string();
    let out = enrich(&input);
    assert_eq!(out["_log"], "mine");
    assert_eq!(out["source"], "stdout");
}

#[test]
fn s6_dd_objects_are_merged_existing_ids_win() {
    let input = json!({"dd": {"trace_id": "1", "span_id": "2"}, "log": json!({"dd": {"trace_id": "3", "env": "prod"}, "msg": "x"}).to_string()}).to_string();
    let out = enrich(&input);
    assert_eq!(out["dd"]["trace_id"], "1");
    assert_eq!(out["dd"]["span_id"], "2");
    assert_eq!(out["dd"]["env"], "prod");
    assert_eq!(
        out["_log"]["dd"]["trace_id"], "3",
        "the losing id is kept, not dropped"
    );
}

#[test]
fn s6_merged_dd_takes_both_ids_from_the_object_with_a_valid_trace_id() {
    let with = |envelope: Value, log: Value| {
        let log = json!({"dd": log, "msg": "x"}).to_string();
        enrich(&json!({"dd": envelope, "log": log}).to_string())
    };
    let log_ids = json!({"trace_id": "1", "span_id": "2"});
    // The envelope's ids are placeholders: the log's valid ones replace them.
    for placeholder in [
        json!({"trace_id": "-"}),
        json!({"trace_id": null, "span_id": null}),
    ] {
        let out = with(placeholder.clone(), log_ids.clone());
        assert_eq!(out["dd"], log_ids, "{placeholder}");
        assert!(out.get("_log").is_none(), "{placeholder}: {out}");
    }
    // Invalid ids that are more than placeholders are kept under `_log.dd`, and a span id
    // without a trace id does not pair with the log's trace id.
    let out = with(
        json!({"trace_id": "abc", "span_id": "9", "env": "prod"}),
        log_ids.clone(),
    );
    assert_eq!(
        out["dd"],
        json!({"env": "prod", "trace_id": "1", "span_id": "2"})
    );
    assert_eq!(
        out["_log"]["dd"],
        json!({"trace_id": "abc", "span_id": "9"})
    );
    // A valid envelope trace id wins; the log's span id joins it only for the same trace.
    let out = with(
        json!({"trace_id": "5"}),
        json!({"trace_id": "5", "span_id": "2"}),
    );
    assert_eq!(out["dd"], json!({"trace_id": "5", "span_id": "2"}));
    let out = with(json!({"trace_id": "5"}), log_ids.clone());
    assert_eq!(out["dd"], json!({"trace_id": "5"}));
    assert_eq!(out["_log"]["dd"], log_ids);
}

#[test]
fn s6_duration_attribute_takes_the_key_and_ms_moves_under__log() {
    let out = enrich(SEED);
    assert_eq!(out["duration"], 12_000_000);
    assert_eq!(out["_log"], json!({"duration": 12}));
    let input = firelens(&json!({"response_code": 200, "duration": 7}));
    let out = enrich(&input);
    assert_eq!(out["duration"], 7_000_000);
    assert_eq!(out["_log"]["duration"], 7);
}

#[test]
fn s6_key_order_envelope_then_parsed_then_added() {
    let input = json!({"z_env": 1, "a_env": 2, "log": json!({"response_code": 200, "b_log": 3, "a_log": 4, "trace_id": "9"}).to_string(), "m_env": 5}).to_string();
    let out = enrich(&input);
    let k = keys(&out);
    assert_eq!(
        &k[..7],
        [
            "z_env",
            "a_env",
            "m_env",
            "response_code",
            "b_log",
            "a_log",
            "trace_id"
        ]
    );
    for added in ["dd", "hash", "http", "status", "message"] {
        assert!(k[7..].contains(&added), "{added} missing from {k:?}");
    }
}

#[test]
fn s6_copied_values_are_byte_identical() {
    let inner = r#"{"response_code":200.0,"ratio":1.50,"big":1E3,"neg":-0.0,"huge":123456789012345678901234567890,"s":"caf\u00e9 \/ \"q\" \ud83d\ude00","arr":[1.0, 2 ,{"x" : null}]}"#;
    let out = text(inner);
    assert!(out.starts_with(&inner[..inner.len() - 1]), "{out}");
    // Also through the escaped log string of a FireLens record.
    let input = json!({"source": "stdout", "log": inner}).to_string();
    let out = text(&input);
    assert!(out.contains(&inner[1..inner.len() - 1]), "{out}");
}

#[test]
fn s6_no_duplicate_keys() {
    for input in [
        SEED.to_string(),
        firelens(&json!({"source": "x", "container_name": "y", "log": "z", "dd": {"trace_id": "1"}, "hash": "h", "phase": "canary", "http": 1, "status": 2, "message": 3, "duration": 4, "_log": 5, "response_code": 200})),
        json!({"hash": "a", "log": json!({"hash": "b", "phase": "stable"}).to_string(), "phase": "canary"}).to_string(),
        json!({"duration": "env", "log": json!({"response_code": 200, "duration": 5}).to_string()}).to_string(),
        json!({"dd": {"trace_id": "-"}, "log": json!({"dd": {"trace_id": null, "span_id": "x"}, "trace_id": "5"}).to_string()}).to_string(),
    ] {
        let (out, _) = run(&default_config(), input.as_bytes());
        assert_valid(&out);
    }
}

#[test]
fn s6_no_duplicate_keys_when_both_dd_objects_hold_replaced_ids() {
    for log_id in ["xyz", "-"] {
        let log = json!({"dd": {"trace_id": log_id}, "trace_id": "1234"}).to_string();
        let input = json!({"dd": {"trace_id": "abc"}, "log": log}).to_string();
        let (out, _) = run(&default_config(), input.as_bytes());
        assert_valid(&out);
        check_nothing_lost(input.as_bytes(), &out).unwrap();
    }
}

#[test]
fn s6_a_dd_that_repeats_an_id_key_gets_the_new_id_once() {
    // The first of the repeated keys takes the resolved id; other placeholders go, as
    // replaced placeholders do, and anything more is kept under `_log.dd`.
    for (input, dd, kept) in [
        (
            r#"{"dd":{"trace_id":"-","trace_id":"-"},"trace_id":"5"}"#,
            r#""dd":{"trace_id":"5"}"#,
            None,
        ),
        (
            r#"{"dd":{"span_id":null,"trace_id":"x","span_id":"y"},"trace_id":"5","span_id":"6"}"#,
            r#""dd":{"span_id":"6","trace_id":"5"}"#,
            Some(r#""_log":{"dd":{"trace_id":"x","span_id":"y"}}"#),
        ),
    ] {
        let (out, _) = run(&default_config(), input.as_bytes());
        assert_valid(&out);
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains(dd), "{out}");
        if let Some(kept) = kept {
            assert!(out.contains(kept), "{out}");
        }
    }
}

#[test]
fn s3_escaped_key_names_are_matched_decoded() {
    let input = r#"{"x\u002ddatadog\u002dtrace\u002did":"11","\u0073pan_id":"22","r\u0065sponse_code":200}"#;
    let out = enrich(input);
    assert_eq!(out["dd"], ids("11", "22"));
    assert_eq!(out["http"]["status_code"], 200);
}

// ---------------------------------------------------------------------------------------------
// §7 Failure semantics

#[test]
fn s7_nothing_is_lost() {
    for input in [
        SEED.to_string(),
        firelens(&json!({"source": "envoy", "response_code": 200, "duration": 3, "dd": {"trace_id": "abc"}, "trace_id": "5", "list": [1, "two", null, {"x": true}]})),
        json!({"_log": {"duration": 1}, "response_code": 200, "duration": 3}).to_string(),
        json!({"dd": {"trace_id": "1", "span_id": "2"}, "log": json!({"dd": {"trace_id": "3", "span_id": "4"}}).to_string()}).to_string(),
        json!({"hash": "a", "phase": "b", "log": json!({"hash": "c", "phase": "d"}).to_string()}).to_string(),
    ] {
        let (out, _) = run(&default_config(), input.as_bytes());
        if let Err(e) = check_nothing_lost(input.as_bytes(), &out) {
            panic!("{e}\n in:  {input}\n out: {}", String::from_utf8_lossy(&out));
        }
    }
}

#[test]
fn s7_bad_input_is_passed_through_unchanged() {
    let cases: [(&[u8], &str); 9] = [
        (b"not json", "invalid_json"),
        (b"[1,2]", "invalid_json"),
        (b"{\"a\":1", "invalid_json"),
        (b"{\"a\":1,}", "invalid_json"),
        (b"{\"a\":1} x", "invalid_json"),
        (b"{\"a\":\"\xff\"}", "invalid_utf8"),
        (b"{\"source\":\"caf\xe9\"}", "invalid_utf8"),
        (b"{\"a\":1,\"a\":2}", "duplicate_key"),
        (b"{\"log\":\"x\",\"\\u006cog\":\"y\"}", "duplicate_key"),
    ];
    for (input, reason) in cases {
        let (out, outcome) = run(&default_config(), input);
        assert_eq!(out, input, "{}", String::from_utf8_lossy(input));
        match outcome {
            Outcome::PassedThrough(e) => {
                assert_eq!(e.reason(), reason, "{}", String::from_utf8_lossy(input))
            }
            other => panic!("{other:?}"),
        }
    }
    let (_, outcome) = run(&default_config(), b"{\"a\":\"\xff\"}");
    assert_eq!(
        outcome,
        Outcome::PassedThrough(Error::InvalidUtf8 { valid_up_to: 6 })
    );
}

#[test]
fn s7_truncated_record_is_passed_through() {
    let full = firelens(&json!({"response_code": 200, "method": "GET"}));
    for cut in 1..full.len() {
        let (out, outcome) = run(&default_config(), &full.as_bytes()[..cut]);
        assert!(matches!(outcome, Outcome::PassedThrough(_)), "cut at {cut}");
        assert_eq!(out, &full.as_bytes()[..cut]);
    }
}

#[test]
fn s7_never_empty_output() {
    for input in [&b"x"[..], b"{}", b" ", b"{\"log\":\"\"}", b"\xff"] {
        let (out, _) = run(&default_config(), input);
        assert!(!out.is_empty(), "{input:?}");
    }
}

#[test]
fn s7_transform_appends_to_the_buffer() {
    let mut t = Transformer::new(default_config());
    let mut out = b"kept|".to_vec();
    t.transform(b"not json", &mut out);
    t.transform(br#"{"a":1}"#, &mut out);
    assert_eq!(out, br#"kept|not json{"a":1,"hash":"4f9c2a17e0b3"}"#);
}

#[test]
fn s7_values_cannot_inject_keys_or_lines() {
    let nasty = "\",\"status\":\"error\"}\n{\"x\":\"\u{0}\u{1f}\u{7f}\u{2028}\\";
    let input = json!({"response_code": 200, "method": nasty, "path": nasty, "user_agent": nasty, "x_forwarded_for": nasty, "authority": nasty, "request_id": nasty}).to_string();
    let (out, _) = run(&default_config(), input.as_bytes());
    assert!(!out.contains(&b'\n') && !out.contains(&b'\r'));
    assert!(
        !out.iter().any(|&b| b < 0x20),
        "raw control character in output"
    );
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["status"], "info");
    assert_eq!(v["http"]["method"], nasty);
    assert_eq!(v["http"]["useragent"], nasty);
    assert_valid(&out);
}

#[test]
fn s7_configured_strings_are_escaped() {
    let weird = "a\"b\\c\nd\u{0}e\u{1b}";
    let config = Config {
        hash: Some(weird.into()),
        phase: Some("x\"}".into()),
        ..Config::default()
    };
    let (out, _) = enrich_with(&config, r#"{"msg":"x"}"#);
    assert_eq!(out["hash"], weird);
    assert_eq!(out["phase"], "x\"}");
}

#[test]
fn s7_one_mib_record() {
    let big = "x".repeat(1 << 20);
    let input = firelens(
        &json!({"response_code": 200, "method": "GET", "path": format!("/{big}"), "user_agent": big, "trace_id": "7"}),
    );
    assert!(input.len() > 2 << 20);
    let (out, enriched) = enrich_with(&default_config(), &input);
    assert_eq!(enriched.shape, Shape::LogJson);
    assert_eq!(out["dd"]["trace_id"], "7");
    assert_eq!(
        out["http"]["useragent"].as_str().map(str::len),
        Some(1 << 20)
    );
}

#[test]
fn s7_deep_nesting_does_not_overflow_the_stack() {
    const DEPTH: usize = 100_000;
    let deep = format!("{}{}", "[".repeat(DEPTH), "]".repeat(DEPTH));
    let objects = format!("{}1{}", "{\"a\":".repeat(DEPTH), "}".repeat(DEPTH));
    for input in [
        format!(r#"{{"response_code":200,"deep":{deep},"trace_id":"5"}}"#),
        format!(r#"{{"response_code":200,"deep":{objects}}}"#),
        json!({"source": "stdout", "log": format!(r#"{{"response_code":200,"deep":{objects}}}"#)})
            .to_string(),
    ] {
        let (out, outcome) = run(&default_config(), input.as_bytes());
        assert!(matches!(outcome, Outcome::Enriched(_)), "{outcome:?}");
        common::check_json(&out).expect("valid output");
        check_nothing_lost(input.as_bytes(), &out).unwrap();
    }
    // Unbalanced: invalid, passed through.
    let input = format!(
        r#"{{"deep":{}{}}}"#,
        "[".repeat(DEPTH),
        "]".repeat(DEPTH - 1)
    );
    let (out, outcome) = run(&default_config(), input.as_bytes());
    assert!(matches!(outcome, Outcome::PassedThrough(_)));
    assert_eq!(out, input.as_bytes());
}

#[test]
fn s7_a_duration_that_cannot_be_converted_stays_under__log_duration() {
    // Exponents convert exactly.
    // The output's text, checked as `enrich` checks it.
    let text = |input: &str| {
        enrich(input);
        String::from_utf8(run(&default_config(), input.as_bytes()).0).unwrap()
    };
    let input = r#"{"response_code":200,"duration":1e3}"#;
    assert_eq!(enrich(input)["duration"], 1_000_000_000u64);
    assert!(text(input).ends_with(r#""_log":{"duration":1e3}}"#));
    let out = enrich(r#"{"response_code":200,"duration":"2.5E-1"}"#);
    assert_eq!(out["duration"], 250_000);
    // Negative, beyond what i64 nanoseconds hold, or not a number: no `duration` at all, the
    // value as it was under `_log`.
    for ms in [
        "-5",
        "-0",
        "1e30",
        "9223372036855",
        "18446744073709551616",
        r#""-""#,
        r#""12ms""#,
        "null",
        "true",
        r#"{"ms":3}"#,
    ] {
        let input = format!(r#"{{"response_code":200,"method":"GET","path":"/","duration":{ms}}}"#);
        let out = enrich(&input);
        assert_eq!(out.get("duration"), None, "{input}");
        assert_eq!(out["message"], "GET / 200", "{input}");
        let kept = format!(r#""_log":{{"duration":{ms}}}}}"#);
        assert!(text(&input).ends_with(&kept), "{input}");
    }
    // The same inside a FireLens record's log.
    let out = enrich(&firelens(&json!({"response_code": 200, "duration": -5})));
    assert_eq!(out.get("duration"), None);
    assert_eq!(out["_log"]["duration"], -5);
}

#[test]
fn s7_a_duration_that_cannot_be_converted_goes_into_the_records_own__log() {
    // The output's text, checked as `enrich_with` checks it.
    let text = |config: &Config, input: &str| {
        enrich_with(config, input);
        String::from_utf8(run(config, input.as_bytes()).0).unwrap()
    };
    let access = |log: &str, ms: &str| {
        format!(r#"{{"_log":{log},"response_code":200,"method":"GET","duration":{ms}}}"#)
    };
    for config in [default_config(), common::moving_config()] {
        let config = &config;
        // An object takes `duration` as one more member, in its place.
        let out = text(config, &access(r#"{"a":1}"#, "-5"));
        assert!(
            out.starts_with(r#"{"_log":{"a":1,"duration":-5},"#),
            "{out}"
        );
        assert!(!out.contains(r#""duration":-5,"#) && !out.contains(r#""duration":-5}}"#));
        let out = text(config, &access("{ }", r#""12ms""#));
        assert!(out.starts_with(r#"{"_log":{ "duration":"12ms"},"#), "{out}");
        // Anything else, or an object with a `duration` of its own, moves to `_log._log`
        // as any value whose key another takes.
        for log in [
            r#""mine""#,
            "null",
            "[1,2]",
            "7",
            r#"{"duration":1}"#,
            r#"{"dur\u0061tion":1,"b":2}"#,
        ] {
            let (out, _) = enrich_with(config, &access(log, "-5"));
            let own: Value = serde_json::from_str(log).unwrap();
            assert_eq!(out["_log"], json!({"_log": own, "duration": -5}), "{log}");
            assert_eq!(out.get("duration"), None, "{log}");
            assert_eq!(out["message"], "GET 200", "{log}");
        }
        // The envelope's `_log`, and the log's own, take the log's `duration`.
        let envelope = json!({"source": "s", "_log": {"a": 1}, "log": json!({"response_code": 200, "duration": -5}).to_string()});
        let (out, _) = enrich_with(config, &envelope.to_string());
        assert_eq!(out["_log"], json!({"a": 1, "duration": -5}));
        assert_eq!(out.get("duration"), None);
        let own = firelens(&json!({"_log": "x", "response_code": 200, "duration": "-"}));
        let (out, _) = enrich_with(config, &own);
        assert_eq!(out["_log"], json!({"_log": "x", "duration": "-"}));
        assert_eq!(out.get("duration"), None);
        // The escaped spelling of `_log` is `_log`, and is kept as written.
        let out = text(
            config,
            &access(r#"{"a":1}"#, "-5").replacen("_log", r"_l\u006fg", 1),
        );
        assert!(
            out.starts_with(r#"{"_l\u006fg":{"a":1,"duration":-5},"#),
            "{out}"
        );
    }
    // Milliseconds that convert take the key in nanoseconds; those kept (not exactly held,
    // or every source key kept) go into the record's `_log` too.
    let out = text(&default_config(), &access(r#"{"a":1}"#, "12"));
    assert!(out.starts_with(r#"{"_log":{"a":1,"duration":12},"response_code":200,"method":"GET","duration":12000000,"#), "{out}");
    let out = moved(&access(r#"{"a":1}"#, "12"));
    assert!(
        out.starts_with(r#"{"_log":{"a":1},"duration":12000000,"#),
        "{out}"
    );
    let out = moved(&access(r#""x""#, "0.0000004"));
    assert!(
        out.starts_with(r#"{"_log":{"_log":"x","duration":0.0000004},"duration":0,"#),
        "{out}"
    );
    // A stream of such records, read by a learned layout, gives each the same output.
    let record = json!({"source": "s", "_log": {"a": 1}, "log": json!({"response_code": 200, "method": "GET", "duration": -5}).to_string()}).to_string();
    let mut t = Transformer::new(default_config());
    let outs: Vec<Vec<u8>> = (0..5)
        .map(|_| {
            let mut out = Vec::new();
            t.transform(record.as_bytes(), &mut out);
            out
        })
        .collect();
    let first = String::from_utf8(outs[0].clone()).unwrap();
    assert!(first.contains(r#""_log":{"a":1,"duration":-5}"#), "{first}");
    assert!(outs.iter().all(|o| *o == outs[0]));
}

#[test]
fn s7_keys_are_compared_by_their_decoded_names() {
    // `log` spelled with an escape is the record's `log`, merged as the plain one is.
    let (out, done) = enrich_with(
        &default_config(),
        r#"{"source":"stdout","lo\u0067":"{\"response_code\":200,\"trace_id\":\"42\"}"}"#,
    );
    assert_eq!(done.shape, Shape::LogJson);
    assert_eq!(out["dd"], json!({"trace_id": "42"}));
    assert_eq!(out["http"]["status_code"], 200);
    let (_, done) = enrich_with(&default_config(), r#"{"\u006cog":"plain text"}"#);
    assert_eq!(done.shape, Shape::LogKept(LogKept::NotJson));
    // Inside `dd`: an escaped `trace_id` is the `trace_id`, replaced or kept as the plain one.
    let out = enrich(r#"{"dd":{"trace\u005fid":"-"},"trace_id":"5"}"#);
    assert_eq!(out["dd"], json!({"trace_id": "5"}));
    let (out, done) = enrich_with(
        &default_config(),
        r#"{"dd":{"trace\u005fid":"77"},"trace_id":"5"}"#,
    );
    assert_eq!(done.trace, Some(TraceSource::Existing));
    assert_eq!(out["dd"], json!({"trace_id": "77"}));
    // Two `dd` objects merged: one key, however each spells it.
    let log = r#"{\"dd\":{\"s\\u0065rvice\":\"b\",\"span\\u005fid\":\"9\"}}"#;
    let out = enrich(&format!(
        r#"{{"dd":{{"service":"a","span_id":"8"}},"log":"{log}"}}"#
    ));
    assert_eq!(out["dd"], json!({"service": "a", "span_id": "8"}));
    assert_eq!(out["_log"]["dd"], json!({"service": "b", "span_id": "9"}));
    // `hash` with an escape is still configuration debris to replace.
    let out = enrich(r#"{"h\u0061sh":"${GIT_COMMIT_SHA}","msg":"x"}"#);
    assert_eq!(out["hash"], HASH);
}

#[test]
fn s7_two_ids_for_one_key_of__log_dd_keep_the_ids_as_they_were() {
    // Replacing the envelope's invalid id would move it to `_log.dd.trace_id`, where the log's
    // different one goes too: no invented array, the ids stay, every value is kept.
    let log = json!({"dd": {"trace_id": "xyz", "span_id": "7"}, "trace_id": "1234"}).to_string();
    let input = json!({"dd": {"trace_id": "abc", "span_id": "8"}, "log": log}).to_string();
    let (out, done) = enrich_with(&default_config(), &input);
    assert_eq!(done.trace, None);
    assert_eq!(out["dd"], json!({"trace_id": "abc", "span_id": "8"}));
    assert_eq!(
        out["_log"]["dd"],
        json!({"trace_id": "xyz", "span_id": "7"})
    );
    // A placeholder in the envelope's `dd` is replaced as before.
    let log = json!({"dd": {"trace_id": "xyz"}, "trace_id": "1234"}).to_string();
    let input = json!({"dd": {"trace_id": "-"}, "log": log}).to_string();
    let out = enrich(&input);
    assert_eq!(out["dd"]["trace_id"], "1234");
    assert_eq!(out["_log"]["dd"], json!({"trace_id": "xyz"}));
}

/// Transforms `input`, which repeats a key in a nested object, and checks the output is one
/// valid object without a key twice at any depth; returns it as text and parsed.
fn enrich_repeating(input: &str) -> (String, Value) {
    let (out, outcome) = run(&default_config(), input.as_bytes());
    assert!(
        matches!(outcome, Outcome::Enriched(_)),
        "{outcome:?}\n in: {input}"
    );
    assert_valid(&out);
    let text = String::from_utf8(out).unwrap();
    let value = serde_json::from_str(&text).unwrap();
    (text, value)
}

#[test]
fn s7_a_key_repeated_below_the_top_level_keeps_its_last_value_at_its_first_place() {
    // As JSON parsers read it (serde_json with `preserve_order` too): the last value wins,
    // and stays where the key first was. At every depth, in arrays too.
    for (value, kept) in [
        (r#"{"b":1,"b":2}"#, r#"{"b":2}"#),
        (r#"{"b":1,"c":2,"b":3}"#, r#"{"b":3,"c":2}"#),
        (r#"{"b":1,"\u0062":2}"#, r#"{"b":2}"#),
        (
            r#"{"x":{"b":1,"c":[{"d":1,"d":{"e":1,"e":2}}],"b":3}}"#,
            r#"{"x":{"b":3,"c":[{"d":{"e":2}}]}}"#,
        ),
        (r#"[{"d":1,"d":2},{"d":3}]"#, r#"[{"d":2},{"d":3}]"#),
        // A value that is rewritten is written compactly.
        (r#"{ "b" : 1 , "b" : [ 1 , 2 ] }"#, r#"{"b":[1,2]}"#),
    ] {
        // In a bare record, in a FireLens record's envelope, and inside its `log`.
        let log = json!({"response_code": 200}).to_string();
        for input in [
            format!(r#"{{"response_code":200,"a":{value}}}"#),
            format!(r#"{{"a":{value},"log":{}}}"#, Value::String(log.clone())),
            format!(
                r#"{{"log":{}}}"#,
                Value::String(format!(r#"{{"response_code":200,"a":{value}}}"#))
            ),
        ] {
            let (text, out) = enrich_repeating(&input);
            assert!(text.contains(&format!(r#""a":{kept}"#)), "{input}\n{text}");
            let parsed: Value = serde_json::from_str(value).unwrap();
            assert_eq!(out["a"], parsed, "{input}");
        }
    }
    // Values that repeat nothing are copied byte for byte, white space and all.
    let (text, _) = enrich_repeating(r#"{"a":{"b":1,"c":{ "b" : 2 }},"r":{"b":1,"b":2}}"#);
    assert!(
        text.starts_with(r#"{"a":{"b":1,"c":{ "b" : 2 }},"r":{"b":2}"#),
        "{text}"
    );
}

/// A FireLens record from the Service Connect proxy around `log`.
fn service_connect(log: &Value) -> String {
    json!({
        "container_name": "ecs-service-connect-7Hc2Qa",
        "source": "stdout",
        "log": format!("{log}\n"),
        "ecs_task_definition": "api:42",
    })
    .to_string()
}

#[test]
fn s2_shape_g_service_connect_json_every_variant() {
    // AWS's documented HTTP/1.1 keys, strings and `-`; the line seen in the wild: numbers,
    // `duration` rather than `duration_ms`, `null` for a missing header, another order.
    let documented = json!({
        "start_time": "2025-11-11T07:40:46.216Z", "method": "GET", "path": "/users/42?expand=1",
        "protocol": "HTTP/1.1", "response_code": "200", "bytes_received": "0",
        "bytes_sent": "11", "duration_ms": "3", "upstream_service_time": "2",
        "forwarded_for": "203.0.113.9, 10.0.0.1", "user_agent": "curl/8.11.1",
        "request_id": "0f3e8d1c", "authority": "api.local:8080", "upstream_host": "10.0.1.5:8080"
    });
    let wild = json!({
        "authority": "api.local:8080", "bytes_received": 0, "bytes_sent": 11, "duration": 3,
        "forwarded_for": null, "method": "GET", "path": "/users/42?expand=1", "protocol": "HTTP/1.1",
        "request_id": "0f3e8d1c", "response_code": 200, "start_time": "2025-11-11T07:40:46.216Z",
        "upstream_host": "10.0.1.5:8080", "upstream_service_time": 2, "user_agent": "curl/8.11.1"
    });
    for (log, ip) in [(documented, Some("203.0.113.9")), (wild, None)] {
        let out = enrich(&service_connect(&log));
        assert_eq!(out["http"]["status_code"], 200, "{out}");
        assert_eq!(out["http"]["method"], "GET");
        assert_eq!(
            out["http"]["url_details"],
            json!({"path": "/users/42", "queryString": {"expand": "1"}, "host": "api.local:8080"})
        );
        assert_eq!(out["http"]["version"], "1.1");
        assert_eq!(out["http"]["request_id"], "0f3e8d1c");
        assert_eq!(out["http"]["useragent"], "curl/8.11.1");
        assert_eq!(out["network"]["bytes_written"], 11);
        assert_eq!(out["network"]["client"]["ip"].as_str(), ip);
        assert_eq!(out["duration"], 3_000_000);
        assert_eq!(out["status"], "info");
        assert_eq!(out["message"], "GET /users/42?expand=1 200 3ms");
    }
}

#[test]
fn s5_service_connect_grpc_status_and_level() {
    let cases = [
        (json!("OK"), 0, "info"),
        (json!("NotFound"), 5, "warn"),
        (json!("Unavailable"), 14, "error"),
        (json!(4), 4, "error"),
        (json!("16"), 16, "warn"),
    ];
    for (status, code, level) in cases {
        let log = json!({
            "start_time": "2025-11-11T07:40:48.100Z", "method": "POST", "path": "/shop.Cart/Add",
            "protocol": "HTTP/2", "response_code": 200, "grpc_status": status, "duration": 7,
            "stream_id": "3", "request_id": "5e2b7c4d"
        });
        let out = enrich(&service_connect(&log));
        assert_eq!(out["grpc"], json!({"status": {"code": code}}), "{out}");
        assert_eq!(out["status"], level, "{out}");
        assert_eq!(out["stream_id"], "3");
    }
    // Not a gRPC status: no attribute. A record's own `grpc` is left alone.
    let out = enrich(&service_connect(
        &json!({"response_code": 200, "grpc_status": "Bogus"}),
    ));
    assert!(out.get("grpc").is_none());
    let out = enrich(&service_connect(
        &json!({"response_code": 200, "grpc_status": "Internal", "grpc": {"service": "x"}}),
    ));
    assert_eq!(out["grpc"], json!({"service": "x"}));
    assert_eq!(out["status"], "error");
}

#[test]
fn s5_service_connect_tcp_lines_get_network_but_no_http() {
    for log in [
        json!({"start_time": "2025-11-11T07:40:49.000Z", "downstream_remote_address": "10.0.3.4:49152",
               "downstream_remote_port": 49152, "bytes_received": 1024, "bytes_sent": 2048,
               "duration": 150, "connection_termination_details": null, "connection_id": 4711}),
        json!({"connection_id": "4711", "duration": "150", "bytes_sent": "2048",
               "bytes_received": "1024", "downstream_remote_port": "49152",
               "downstream_remote_address": "10.0.3.4:49152", "connection_termination_details": "-",
               "start_time": "2025-11-11T07:40:49.000Z"}),
    ] {
        let out = enrich(&service_connect(&log));
        assert_eq!(
            out["network"],
            json!({"client": {"ip": "10.0.3.4", "port": 49152}, "bytes_read": 1024, "bytes_written": 2048}),
            "{out}"
        );
        assert_eq!(out["duration"], 150_000_000);
        for absent in ["http", "status", "message"] {
            assert!(out.get(absent).is_none(), "{absent} in {out}");
        }
    }
}

/// Runs `records` through one transformer with `config`; returns each output's `dd` and
/// trace source.
fn stream(config: &Config, records: &[String]) -> Vec<(Value, Option<TraceSource>)> {
    let mut t = Transformer::new(config.clone());
    records
        .iter()
        .map(|record| {
            let mut out = Vec::new();
            let done = t.try_transform(record.as_bytes(), &mut out).unwrap();
            let out: Value = serde_json::from_slice(&out).unwrap();
            (out.get("dd").cloned().unwrap_or(Value::Null), done.trace)
        })
        .collect()
}

/// An application's lograge line (FireLens record) with `request_id` and `dd`.
fn lograge(request_id: &str, dd: Option<(&str, &str)>) -> String {
    let mut log = json!({"method": "GET", "path": "/users/42", "format": "json",
        "controller": "UsersController", "action": "show", "status": 200, "duration": 12.3,
        "request_id": request_id});
    if let Some((trace, span)) = dd {
        log["dd"] = json!({"trace_id": trace, "span_id": span, "service": "api", "env": "prod"});
    }
    json!({"container_name": "app", "source": "stdout", "log": log.to_string()}).to_string()
}

/// A Service Connect TEXT access line for `request_id`.
fn proxy_line(request_id: &str) -> String {
    service_connect_text(&format!(
        r#"[2025-11-11T07:40:46.216Z] "GET /users/42 HTTP/1.1" 200 0 11 13 12 "-" "curl/8.11.1" "{request_id}" "api.local:8080" "10.0.1.5:8080""#
    ))
}

fn service_connect_text(line: &str) -> String {
    json!({"container_name": "ecs-service-connect-7Hc2Qa", "source": "stdout", "log": line})
        .to_string()
}

#[test]
fn s3_request_id_join_gives_an_access_line_the_apps_trace() {
    let out = stream(
        &default_config(),
        &[
            lograge("req-1", Some(("1234567890123", "42"))),
            proxy_line("req-1"),
        ],
    );
    assert_eq!(out[0].1, Some(TraceSource::Existing));
    assert_eq!(
        out[1],
        (ids("1234567890123", "42"), Some(TraceSource::RequestId))
    );
    // Service Connect's JSON format, its `request_id` key.
    let json_line = service_connect(&json!({"method": "GET", "path": "/", "response_code": 200,
        "request_id": "req-2", "duration_ms": 1}));
    let out = stream(
        &default_config(),
        &[lograge("req-2", Some(("77", "78"))), json_line],
    );
    assert_eq!(out[1], (ids("77", "78"), Some(TraceSource::RequestId)));
}

#[test]
fn s3_request_id_join_is_a_last_resort_and_never_pairs_across_ids() {
    let config = default_config();
    // Out of order: the access line came first, so it has none (the filter streams).
    let out = stream(&config, &[proxy_line("a"), lograge("a", Some(("5", "6")))]);
    assert_eq!(out[0], (Value::Null, None));
    // Another request id: nothing.
    let out = stream(&config, &[lograge("a", Some(("5", "6"))), proxy_line("b")]);
    assert_eq!(out[1], (Value::Null, None));
    // An app line without a trace id is no source.
    let out = stream(&config, &[lograge("a", None), proxy_line("a")]);
    assert_eq!(out[1], (Value::Null, None));
    // The access line's own trace id is never overwritten.
    let own = firelens(&json!({"response_code": 200, "request_id": "a", "trace_id": "99"}));
    let out = stream(&config, &[lograge("a", Some(("5", "6"))), own]);
    assert_eq!(
        out[1],
        (dd_of(json!({"trace_id": "99"})), Some(TraceSource::Datadog))
    );
}

#[test]
fn s7_repeated_nested_keys_are_found_in_large_objects_and_deep_nesting() {
    // Many keys: compared after sorting, not pair by pair.
    let members: Vec<String> = (0..40).map(|i| format!(r#""k{i}":{i}"#)).collect();
    let value = format!("{{{},\"k7\":\"last\"}}", members.join(","));
    let (_, out) = enrich_repeating(&format!(r#"{{"a":{value}}}"#));
    assert_eq!(out["a"]["k7"], "last");
    assert_eq!(out["a"].as_object().unwrap().len(), 40);
    // Deep nesting around the repeated key: no recursion on either side.
    let depth = 50_000;
    let input = format!(
        r#"{{"a":{}{{"b":1,"b":2}}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let (text, _) = {
        let (out, outcome) = run(&default_config(), input.as_bytes());
        assert!(matches!(outcome, Outcome::Enriched(_)));
        (String::from_utf8(out).unwrap(), ())
    };
    assert!(text.contains(r#"{"b":2}"#));
    assert!(!text.contains(r#""b":1"#));
}

#[test]
fn s7_repeated_keys_in_dd_moved_and_added_values() {
    // In a `dd` object: its own keys (the last value is the one taken), and nested in it.
    // The ids are replaced as usual: the span id of another trace moves to `_log.dd`.
    let (_, out) = enrich_repeating(
        r#"{"dd":{"span_id":"7","span_id":"8","env":{"a":1,"a":2}},"trace_id":"5"}"#,
    );
    assert_eq!(out["dd"], json!({"env": {"a": 2}, "trace_id": "5"}));
    assert_eq!(out["_log"], json!({"dd": {"span_id": "8"}}));
    let (_, out) =
        enrich_repeating(r#"{"dd":{"span_id":"7","span_id":"8"},"trace_id":"5","span_id":"6"}"#);
    assert_eq!(out["dd"], json!({"span_id": "6", "trace_id": "5"}));
    assert_eq!(out["_log"], json!({"dd": {"span_id": "8"}}));
    // A value moved under `_log` because the envelope has its key.
    let log = r#"{"x":{"k":1,"k":2},"response_code":200}"#;
    let (_, out) = enrich_repeating(&format!(r#"{{"x":0,"log":{}}}"#, Value::String(log.into())));
    assert_eq!(out["_log"]["x"], json!({"k": 2}));
    // `hash` given as an object.
    let (_, out) = enrich_repeating(r#"{"hash":{"c":1,"c":2}}"#);
    assert_eq!(out["hash"], json!({"c": 2}));
}

#[test]
fn s3_request_id_join_a_request_id_seen_twice() {
    let config = default_config();
    // The same trace twice: the first span (the request's) stays.
    let out = stream(
        &config,
        &[
            lograge("a", Some(("5", "6"))),
            lograge("a", Some(("5", "7"))),
            proxy_line("a"),
        ],
    );
    assert_eq!(out[2], (ids("5", "6"), Some(TraceSource::RequestId)));
    // Two traces for one request id: which is the access line's is unknown, so neither.
    let out = stream(
        &config,
        &[
            lograge("a", Some(("5", "6"))),
            lograge("a", Some(("8", "9"))),
            proxy_line("a"),
        ],
    );
    assert_eq!(out[2], (Value::Null, None));
    // A joined access line is not a source of its own: the next one joins the app's too.
    let out = stream(
        &config,
        &[
            lograge("a", Some(("5", "6"))),
            proxy_line("a"),
            proxy_line("a"),
        ],
    );
    assert_eq!(out[2], (ids("5", "6"), Some(TraceSource::RequestId)));
}

#[test]
fn s3_request_id_join_is_bounded_and_can_be_turned_off() {
    let off = Config {
        request_id_join: 0,
        ..default_config()
    };
    let out = stream(&off, &[lograge("a", Some(("5", "6"))), proxy_line("a")]);
    assert_eq!(out[1], (Value::Null, None));
    // Two entries: the oldest of three request ids is forgotten.
    let two = Config {
        request_id_join: 2,
        ..default_config()
    };
    let records = [
        lograge("a", Some(("1", "1"))),
        lograge("b", Some(("2", "2"))),
        lograge("c", Some(("3", "3"))),
        proxy_line("a"),
        proxy_line("b"),
        proxy_line("c"),
    ];
    let out = stream(&two, &records);
    assert_eq!(out[3], (Value::Null, None));
    assert_eq!(out[4].0, ids("2", "2"));
    assert_eq!(out[5].0, ids("3", "3"));
}

#[test]
fn s7_service_connect_durations_and_nested_keys_follow_the_reliability_rules() {
    // A `duration_ms` that does not convert exactly gives no `duration` and stays as it was.
    for ms in [json!(-5), json!("1e30"), json!("-"), json!(null)] {
        let out = enrich(&service_connect(&json!({
            "method": "GET", "path": "/", "response_code": 200, "duration_ms": ms,
        })));
        assert_eq!(out.get("duration"), None, "{ms}");
        assert_eq!(out["duration_ms"], ms);
    }
    // Exponents convert exactly.
    let out = enrich(&service_connect(
        &json!({"response_code": 200, "duration_ms": "1e3"}),
    ));
    assert_eq!(out["duration"], 1_000_000_000u64);
    // A `duration` that does not convert moves to `_log`, whatever `duration_ms` holds.
    let out = enrich(&service_connect(&json!({
        "response_code": 200, "duration_ms": 7, "duration": "-5",
    })));
    assert_eq!(
        (out.get("duration"), &out["_log"]),
        (None, &json!({"duration": "-5"}))
    );
    // A TCP line whose own `network` repeats a key: the last value, and no `network.*` added.
    let log = r#"{"downstream_remote_address":"10.0.0.1","downstream_remote_port":5,"connection_id":3,"bytes_received":1,"network":{"a":1,"a":2}}"#;
    let (text, out) = enrich_repeating(&format!(r#"{{"log":{}}}"#, Value::String(log.into())));
    assert_eq!(out["network"], json!({"a": 2}), "{text}");
    assert_eq!(out.get("http"), None);
    // An escaped `grpc_status` is read by its decoded name; an own `grpc` is kept.
    let log = r#"{"gr\u0070c_status":"Unavailable","response_code":200,"grpc":1}"#;
    let (_, out) = enrich_repeating(&format!(r#"{{"log":{}}}"#, Value::String(log.into())));
    assert_eq!((&out["grpc"], &out["status"]), (&json!(1), &json!("error")));
}
