//! Envoy text access logs: golden files in `fixtures/text/`, format-string
//! errors, and properties (arbitrary text never panics and is kept when it does not match).
//!
//! `UPDATE_GOLDEN=1 cargo test --test text_formats` rewrites the expected files from the
//! current library; review the diff line by line before keeping it.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_valid, default_config};
use envoy_dd::{Config, LogKept, Outcome, Shape, TextFormat, Transformer};
use proptest::prelude::*;
use serde_json::{json, Value};

/// Golden cases: `fixtures/text/<name>.input.jsonl` through the transform (with the format in
/// `<format>.format` when given), compared with `<name>.expected.jsonl`.
const CASES: &[(&str, Option<&str>)] = &[
    ("envoy-default", None),
    ("datadog-trace", Some("datadog-trace")),
    ("bluetest", Some("bluetest")),
    ("not-matching", Some("datadog-trace")),
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/text")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn config_with(format: Option<&str>) -> Config {
    let text_format = format
        .map(|f| TextFormat::parse(&read(&format!("{f}.format"))).expect("fixture format parses"));
    Config {
        text_format,
        ..default_config()
    }
}

fn transform_lines(config: Config, input: &str) -> Vec<(String, Outcome)> {
    let mut t = Transformer::new(config);
    input
        .lines()
        .map(|line| {
            let mut out = Vec::new();
            let outcome = t.transform(line.as_bytes(), &mut out);
            (String::from_utf8(out).expect("output is UTF-8"), outcome)
        })
        .collect()
}

fn shape(outcome: &Outcome) -> Option<Shape> {
    match outcome {
        Outcome::Enriched(done) => Some(done.shape),
        Outcome::PassedThrough(_) => None,
    }
}

#[test]
fn golden_files_match() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for &(name, format) in CASES {
        let input = read(&format!("{name}.input.jsonl"));
        let got: String = transform_lines(config_with(format), &input)
            .into_iter()
            .map(|(out, _)| out + "\n")
            .collect();
        let expected_name = format!("{name}.expected.jsonl");
        if update {
            std::fs::write(fixture(&expected_name), &got).expect("write expected");
            continue;
        }
        let want = read(&expected_name);
        for (n, (w, g)) in want.lines().zip(got.lines()).enumerate() {
            if w != g {
                failures.push(format!(
                    "{expected_name}:{}:\n  expected: {w}\n  got:      {g}",
                    n + 1
                ));
            }
        }
        if want.lines().count() != got.lines().count() {
            failures.push(format!("{expected_name}: line count differs"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn golden_inputs_take_the_expected_paths() {
    for &(name, format) in CASES {
        let input = read(&format!("{name}.input.jsonl"));
        for (n, ((out, outcome), line)) in transform_lines(config_with(format), &input)
            .iter()
            .zip(input.lines())
            .enumerate()
        {
            let doc = assert_valid(out.as_bytes());
            let at = format!("{name}:{}", n + 1);
            let log_in: Value = serde_json::from_str::<Value>(line).unwrap()["log"].clone();
            let out: Value = serde_json::from_str(out).unwrap();
            match (name, shape(outcome)) {
                ("not-matching", Some(Shape::LogText)) => panic!("{at}: matched a format"),
                ("not-matching", _) => assert_eq!(out["log"], log_in, "{at}: log kept as it was"),
                (_, Some(Shape::LogText)) => {
                    assert!(out.get("log").is_none(), "{at}: log replaced by its fields");
                    assert!(
                        doc.top_keys.iter().any(|k| k == "http"),
                        "{at}: access-log attributes added"
                    );
                }
                ("bluetest", Some(Shape::LogKept(LogKept::NotJson))) => {
                    assert_eq!(out["log"], log_in, "{at}")
                }
                (_, other) => panic!("{at}: unexpected shape {other:?}"),
            }
        }
    }
}

/// The default format's fields under the names the role table knows, and the values typed.
#[test]
fn default_format_fields_and_types() {
    let line = br#"[2016-04-15T20:17:00.310Z] "POST /api/v1/locations HTTP/2" 204 - 154 0 226 100 "10.0.35.28" "nsq2http" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" "tcp://10.0.2.1:80""#;
    let mut out = Vec::new();
    assert!(TextFormat::envoy_default().to_json(line, &mut out));
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        out,
        json!({
            "start_time": "2016-04-15T20:17:00.310Z", "method": "POST", "path": "/api/v1/locations",
            "protocol": "HTTP/2", "response_code": 204, "bytes_received": 154, "bytes_sent": 0,
            "duration": 226, "x_envoy_upstream_service_time": "100", "x_forwarded_for": "10.0.35.28",
            "user_agent": "nsq2http", "x_request_id": "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2",
            "authority": "locations", "upstream_host": "tcp://10.0.2.1:80"
        })
    );
}

/// Each parsed field feeds the Datadog attribute its name maps to.
#[test]
fn text_fields_become_standard_attributes() {
    let line = "ACCESS [2024-06-03T14:00:00.120Z] \"GET /users/42?expand=orders HTTP/1.1\" 503 UH 17 1834 12 11 \"203.0.113.7, 10.0.0.1\" \"curl/8.5.0\" \"7d3c1a2b\" \"api.example.com\" \"10.0.3.17:8080\" outbound|8080||api tcp\n";
    let input = json!({"source": "stdout", "log": line, "ecs_task_definition": "api-canary:42"})
        .to_string();
    let (out, outcome) = common::run(&default_config(), input.as_bytes());
    assert_eq!(shape(&outcome), Some(Shape::LogText));
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        out["http"],
        json!({
            "status_code": 503, "method": "GET",
            "url_details": {"path": "/users/42", "queryString": {"expand": "orders"}, "host": "api.example.com"},
            "endpoint": "/users/{param:int}",
            "version": "1.1", "request_id": "7d3c1a2b", "useragent": "curl/8.5.0"
        })
    );
    assert_eq!(
        out["network"],
        json!({"client": {"ip": "203.0.113.7"}, "bytes_read": 17, "bytes_written": 1834})
    );
    assert_eq!(out["duration"], 12_000_000);
    assert_eq!(out["_log"], json!({"duration": 12}));
    assert_eq!(out["status"], "error");
    assert_eq!(out["message"], "GET /users/42?expand=orders 503 12ms UH");
    assert_eq!(out["prefix"], "ACCESS");
    assert_eq!(out["extra"], "outbound|8080||api tcp");
    assert_eq!(out["phase"], "canary");
    assert_eq!(out["hash"], common::HASH);
}

/// A custom format that logs Datadog's headers gives `dd.trace_id`/`dd.span_id`.
/// Quoted fields appended after Envoy's default format (trace headers, say) are `extra`, at
/// any count: the split whose earlier fields end first wins, also against a split without
/// `extra` where the last field swallows them.
#[test]
fn quoted_fields_after_the_default_format_are_extra() {
    let start = r#"[2024-06-03T14:00:00.120Z] "GET /x HTTP/1.1" 200 - 0 5 3 2 "-" "curl/8" "id-1" "api" "10.0.0.1:80""#;
    for appended in [1, 2, 40] {
        let extra = vec![r#""1234""#; appended].join(" ");
        let line = format!("{start} {extra}");
        let mut out = Vec::new();
        assert!(
            TextFormat::envoy_default().to_json(line.as_bytes(), &mut out),
            "{line}"
        );
        let out: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(out["upstream_host"], "10.0.0.1:80", "{appended}");
        assert_eq!(out["authority"], "api", "{appended}");
        assert_eq!(out["extra"], extra.as_str(), "{appended}");
    }
}

#[test]
fn custom_format_correlates_traces() {
    let format = TextFormat::parse("%REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %DURATION%ms dd=%REQ(X-DATADOG-TRACE-ID)%/%REQ(X-DATADOG-PARENT-ID)%\n").unwrap();
    let config = Config {
        text_format: Some(format),
        ..default_config()
    };
    let input =
        json!({"log": "GET /x 200 5ms dd=1739284736152093746/42\n", "phase": "stable"}).to_string();
    let (out, outcome) = common::run(&config, input.as_bytes());
    assert_eq!(shape(&outcome), Some(Shape::LogText));
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        out["dd"],
        json!({"trace_id": "1739284736152093746", "span_id": "42"})
    );
    assert_eq!(out["x_datadog_trace_id"], "1739284736152093746");
    assert_eq!(out["phase"], "stable");
    assert_eq!(out["message"], "GET /x 200 5ms");
}

#[test]
fn long_flag_names_and_numeric_grpc_status() {
    // `%RESPONSE_FLAGS_LONG%` logs `NoHealthyUpstream` for `UH`: it decides `status` and
    // ends `message` as the short names do. `%GRPC_STATUS(NUMBER)%` is a number, as
    // `%GRPC_STATUS_NUMBER%` is; the named forms are strings.
    let format = TextFormat::parse(
        "%RESPONSE_CODE% %RESPONSE_FLAGS_LONG% %DURATION% %GRPC_STATUS(NUMBER)% %GRPC_STATUS(CAMEL_STRING)%\n",
    )
    .unwrap();
    let config = Config {
        text_format: Some(format),
        ..default_config()
    };
    let input = json!({"log": "200 NoHealthyUpstream 5 14 Unavailable\n"}).to_string();
    let (out, outcome) = common::run(&config, input.as_bytes());
    assert_eq!(shape(&outcome), Some(Shape::LogText));
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(out["response_flags_long"], "NoHealthyUpstream");
    assert_eq!(out["status"], "error");
    assert_eq!(out["message"], "200 5ms NoHealthyUpstream");
    assert_eq!(out["grpc_status"], 14);
    assert_eq!(out["grpc_status_2"], "Unavailable");
}

#[test]
fn format_errors_say_where_and_why() {
    let cases = [
        ("[%START_TIME%] %REQ(:METHOD) %PROTOCOL%", 19, "not closed"),
        ("%RESPONSE_CODE% 100% done", 19, "`%%`"),
        ("%START_TIME% %REQ%", 13, "needs an argument"),
        ("%REQ(X-A?X-B?X-C)% x", 0, "alternative"),
        ("%DURATION%%BYTES_SENT%", 10, "no text separates"),
        ("%DURATION:abc% x", 10, "length"),
        ("[%START_TIME ] x", 12, "`%` to end"),
        ("no operators here\n", 0, "no operator"),
    ];
    for (format, position, reason) in cases {
        let error = TextFormat::parse(format).unwrap_err();
        let shown = error.to_string();
        assert_eq!(error.position(), position, "{format:?}: {shown}");
        assert!(error.reason().contains(reason), "{format:?}: {shown}");
        assert!(
            shown.starts_with(&format!("invalid Envoy format at byte {position}: ")),
            "{shown}"
        );
        assert!(
            shown.ends_with(&format!("\n  {}^", " ".repeat(position))),
            "{shown}"
        );
    }
}

#[test]
fn format_strings_parse_like_envoy() {
    // Both spellings of the default format, with the newline Envoy's docs put at its end.
    let short = r#"[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"\n"#;
    let long = short
        .replace("%REQ(", "%REQUEST_HEADER(")
        .replace("%RESP(", "%RESPONSE_HEADER(");
    let names = |f: &str| {
        TextFormat::parse(f)
            .unwrap()
            .field_names()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(names(short), names(&long));
    assert_eq!(
        names(short),
        TextFormat::envoy_default()
            .field_names()
            .collect::<Vec<_>>()
    );
    assert_eq!(
        "%REQ(:PATH)% x".parse::<TextFormat>().unwrap().as_str(),
        "%REQ(:PATH)% x"
    );

    // `%%`, arguments holding `%` and `)`, and length limits.
    let f = TextFormat::parse("%START_TIME(%s.%3f)% 100%% %REQ(USER-AGENT):5% [%CEL(size(x))%]")
        .unwrap();
    let mut out = Vec::new();
    assert!(f.to_json(b"1527590590.528 100% curl [3]", &mut out));
    assert_eq!(
        out,
        br#"{"start_time":"1527590590.528","user_agent":"curl","cel":"3"}"#
    );
    assert!(
        !f.to_json(b"1527590590.528 100% curl/8 [3]", &mut Vec::new()),
        "longer than :5"
    );
}

/// A field named twice gets a suffix; a field the envelope also has goes to `_log`, unless the
/// envelope uses `_log` itself, and an absent (`-`) field collides with nothing.
#[test]
fn repeated_and_colliding_fields_keep_every_value() {
    let format = TextFormat::parse("%REQ(X-A)% %REQ(X-A)% %RESPONSE_CODE%").unwrap();
    let config = Config {
        text_format: Some(format),
        hash: None,
        keep_source_attributes: true,
        ..Config::default()
    };
    let added = r#""http":{"status_code":200},"status":"info","message":"200""#;
    let cases = [
        (
            r#"{"log":"a b 200"}"#,
            format!(r#"{{"x_a":"a","x_a_2":"b","response_code":200,{added}}}"#),
        ),
        (
            r#"{"log":"a b 200","x_a":"top"}"#,
            format!(
                r#"{{"x_a":"top","x_a_2":"b","response_code":200,{added},"_log":{{"x_a":"a"}}}}"#
            ),
        ),
        (
            r#"{"log":"- b 200","_log":"x","x_a":"top"}"#,
            format!(r#"{{"_log":"x","x_a":"top","x_a_2":"b","response_code":200,{added}}}"#),
        ),
        (
            r#"{"log":"a b 200","_log":"x","x_a":"top"}"#,
            r#"{"log":"a b 200","_log":"x","x_a":"top"}"#.to_string(),
        ),
    ];
    // Each case on its own, and the stream repeated, so that layouts read the later records.
    let mut t = Transformer::new(config);
    for round in 0..4 {
        for (input, want) in &cases {
            let mut out = Vec::new();
            t.transform(input.as_bytes(), &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                *want,
                "round {round}: {input}"
            );
        }
    }
}

/// A user's format that looks like JSON is tried first on a `log` that opens with `{`: its
/// lines are JSON only until a value holds a quote, which Envoy does not escape. Lines it does
/// not match are read as JSON, and they teach no layout that would skip the format later.
#[test]
fn a_format_that_looks_like_json_is_tried_before_json() {
    let format = r#"{"m":"%REQ(:METHOD)%","c":"%RESPONSE_CODE%","ua":"%REQ(USER-AGENT)%"}"#;
    let config = Config {
        text_format: Some(TextFormat::parse(format).unwrap()),
        hash: None,
        keep_source_attributes: true,
        ..Config::default()
    };
    let record = |log: &str| json!({"source": "stdout", "log": log}).to_string();
    let parsed = |ua: &str| json!({"source": "stdout", "method": "GET", "response_code": 200, "user_agent": ua});
    let unmatched = record(r#"{"m":"GET","c":"abc","ua":"x"}"#);
    let mut input = vec![unmatched.clone(); 6];
    input.push(record(r#"{"m":"GET","c":"200","ua":"a "q" b"}"#));
    input.push(record(r#"{"m":"GET","c":"200","ua":"x"}"#));
    let lines = transform_lines(config, &input.join("\n"));
    for (out, outcome) in &lines[..6] {
        assert_eq!(shape(outcome), Some(Shape::LogJson), "{out}");
        let out: Value = serde_json::from_str(out).unwrap();
        assert_eq!(
            out,
            json!({"source": "stdout", "m": "GET", "c": "abc", "ua": "x"})
        );
    }
    for ((out, outcome), ua) in lines[6..].iter().zip([r#"a "q" b"#, "x"]) {
        assert_eq!(shape(outcome), Some(Shape::LogText), "{out}");
        let out: Value = serde_json::from_str(out).unwrap();
        let fields: serde_json::Map<_, _> = out
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| {
                ["source", "method", "response_code", "user_agent"].contains(&k.as_str())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(Value::Object(fields), parsed(ua), "{out}");
    }
}

#[test]
fn unmatched_lines_are_kept_with_a_custom_format_too() {
    let format = TextFormat::parse("%RESPONSE_CODE% %REQ(:PATH)%").unwrap();
    let config = Config {
        text_format: Some(format),
        hash: None,
        ..Config::default()
    };
    for log in ["abc /x", "200", "", "2000000000000000000000000 /x extra"] {
        let input = json!({"log": log}).to_string();
        let (out, outcome) = common::run(&config, input.as_bytes());
        match shape(&outcome) {
            Some(Shape::LogText) => assert!(log.starts_with("2000"), "{log:?}"),
            _ => assert_eq!(String::from_utf8(out).unwrap(), input, "{log:?}"),
        }
    }
}

// Properties.

/// Text that looks like Envoy's access logs more often than random strings do.
fn envoyish_text() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just("[2024-06-03T14:00:00.120Z] ".to_string()),
        Just("\"GET /x HTTP/1.1\" ".to_string()),
        Just("200 - 0 0 1 - ".to_string()),
        Just("\"-\" ".to_string()),
        Just("\" \"".to_string()),
        Just("ACCESS ".to_string()),
        "[0-9 \\-]{0,6}",
        "[\\[\\]\" a-zA-Z0-9:/.,|%\\-]{0,12}",
        any::<String>(),
    ];
    prop::collection::vec(pieces, 0..24).prop_map(|parts| parts.concat())
}

/// A valid default-format line from generated values, and the JSON object it stands for.
fn default_line() -> impl Strategy<Value = (String, Value)> {
    let token = "[A-Za-z0-9/._:?=&+-]{1,16}";
    let quoted = "[^\"\\n\\r]{0,24}";
    let number = prop_oneof![Just("-".to_string()), "0|[1-9][0-9]{0,12}"];
    (
        ("[0-9T:.Z-]{1,24}", token, token, token, "[1-5][0-9]{2}|0", "[A-Z,]{1,8}|-"),
        (number.clone(), number.clone(), number, token),
        (quoted, quoted, quoted, quoted, quoted),
    )
        .prop_map(|((time, method, path, protocol, code, flags), (rx, tx, ms, ust), (xff, ua, id, host, up))| {
            let line = format!(
                "[{time}] \"{method} {path} {protocol}\" {code} {flags} {rx} {tx} {ms} {ust} \"{xff}\" \"{ua}\" \"{id}\" \"{host}\" \"{up}\""
            );
            let mut expected = serde_json::Map::new();
            let mut put = |key: &str, value: &str, numeric: bool| {
                if value != "-" {
                    let v = if numeric { serde_json::from_str(value).unwrap() } else { Value::from(value) };
                    expected.insert(key.into(), v);
                }
            };
            put("start_time", &time, false);
            put("method", &method, false);
            put("path", &path, false);
            put("protocol", &protocol, false);
            put("response_code", &code, true);
            put("response_flags", &flags, false);
            put("bytes_received", &rx, true);
            put("bytes_sent", &tx, true);
            put("duration", &ms, true);
            put("x_envoy_upstream_service_time", &ust, false);
            put("x_forwarded_for", &xff, false);
            put("user_agent", &ua, false);
            put("x_request_id", &id, false);
            put("authority", &host, false);
            put("upstream_host", &up, false);
            (line, Value::Object(expected))
        })
}

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cases(512))]

    /// Any text in `log`: no panic, valid JSON out, and unless it parsed as a text access log
    /// the record comes back exactly as it went in.
    #[test]
    fn any_log_text_is_kept_unless_it_matches(log in prop_oneof![any::<String>(), envoyish_text()]) {
        let input = json!({"source": "stdout", "log": log}).to_string();
        let mut t = Transformer::new(Config::default());
        let mut out = Vec::new();
        let outcome = t.transform(input.as_bytes(), &mut out);
        assert_valid(&out);
        match shape(&outcome) {
            Some(Shape::LogText) => {}
            Some(Shape::LogKept(_)) => prop_assert_eq!(String::from_utf8(out).unwrap(), input),
            other => prop_assert!(log.trim_start().starts_with('{'), "{:?}", other),
        }
    }

    /// Generated default-format lines parse back to exactly their values.
    #[test]
    fn default_lines_round_trip((line, expected) in default_line(), newline in prop_oneof![Just(""), Just("\n"), Just("\r\n")]) {
        let mut out = Vec::new();
        prop_assert!(TextFormat::envoy_default().to_json(format!("{line}{newline}").as_bytes(), &mut out), "{}", line);
        let got: Value = serde_json::from_slice(&out).unwrap();
        prop_assert_eq!(got, expected);
    }

    /// Any format string: parsing never panics, and a compiled format never panics on any
    /// line and writes valid JSON whenever it matches.
    #[test]
    fn any_format_and_line(format in "([a-z \\[\\]\":]{0,4}(%[A-Z_]{1,8}(\\([A-Z:?%-]{0,8}\\))?(:[0-9])?%|%%|%)?){1,6}", lines in prop::collection::vec(envoyish_text(), 1..4)) {
        if let Ok(format) = TextFormat::parse(&format) {
            for line in lines {
                let mut out = b"prefix".to_vec();
                if format.to_json(line.as_bytes(), &mut out) {
                    assert_valid(&out[6..]);
                } else {
                    prop_assert_eq!(&out, b"prefix");
                }
            }
        }
    }
}

/// ECS Service Connect's TEXT lines are recognised without configuration, each field under its
/// own name: its HTTP/2 line used to pass for Envoy's default format with every field after
/// the bytes shifted (`http.request_id` got the authority).
#[test]
fn service_connect_text_lines_keep_their_fields() {
    let cases = [
        (
            r#"[2025-11-11T07:40:46.216Z] "GET / HTTP/1.1" 200 0 11 1 0 "-" "curl/8.11.1" "0f3e8d1c-5b2a-4c7d-9e6f-1a2b3c4d5e6f" "api.local:8080" "10.0.1.5:8080""#,
            json!({"response_code": 200, "bytes_received": 0, "bytes_sent": 11, "duration": 1_000_000,
                   "x_envoy_upstream_service_time": "0", "user_agent": "curl/8.11.1",
                   "x_request_id": "0f3e8d1c-5b2a-4c7d-9e6f-1a2b3c4d5e6f", "authority": "api.local:8080",
                   "upstream_host": "10.0.1.5:8080"}),
        ),
        (
            r#"[2025-11-11T07:40:47.001Z] "GET /items?page=2 HTTP/2" 200 0 512 4 3 "198.51.100.7" "okhttp/4.12" "9b1c2d3e-0000-4000-8000-000000000001" "api.local:8080" "10.0.1.5:8080" "12""#,
            json!({"response_code": 200, "bytes_sent": 512, "x_forwarded_for": "198.51.100.7",
                   "x_request_id": "9b1c2d3e-0000-4000-8000-000000000001", "authority": "api.local:8080",
                   "upstream_host": "10.0.1.5:8080", "stream_id": "12"}),
        ),
        (
            r#"[2025-11-11T07:40:48.100Z] "POST /shop.Cart/Add HTTP/2" 200 Unavailable 40 0 7 6 "-" "grpc-go/1.64.0" "5e2b7c4d-0000-4000-8000-000000000002" "cart.local:50051" "10.0.2.9:50051" "3""#,
            json!({"response_code": 200, "grpc_status": "Unavailable", "bytes_received": 40,
                   "x_request_id": "5e2b7c4d-0000-4000-8000-000000000002", "authority": "cart.local:50051",
                   "stream_id": "3"}),
        ),
        (
            r#"[2025-11-11T07:40:49.000Z] 10.0.3.4:49152 49152 1024 2048 150 - 4711"#,
            json!({"downstream_remote_address": "10.0.3.4:49152", "downstream_remote_port": 49152,
                   "bytes_received": 1024, "bytes_sent": 2048, "connection_id": 4711}),
        ),
    ];
    for (line, fields) in cases {
        let input =
            json!({"container_name": "ecs-service-connect-7Hc2Qa", "log": line}).to_string();
        let (out, outcome) = common::run(&default_config(), input.as_bytes());
        assert_eq!(shape(&outcome), Some(Shape::LogText), "{line}");
        let out: Value = serde_json::from_slice(&out).unwrap();
        for (key, value) in fields.as_object().unwrap() {
            assert_eq!(&out[key], value, "{key} in {line}");
        }
        assert!(
            out.get("response_flags").is_none() && out.get("extra").is_none(),
            "{out}"
        );
    }
}
