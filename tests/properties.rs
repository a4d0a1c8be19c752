//! Property tests of the failure rules: whatever the input, the transform does not panic, writes one
//! valid JSON object without duplicate keys (or the input unchanged) and loses nothing.

mod common;

use common::{
    check_json, check_json_allowing_duplicates, check_nothing_lost, check_nothing_lost_moving,
    default_config, preview,
};
use envoy_dd::{Config, Outcome, TraceIdFormat, Transformer};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use serde_json::{Map, Number, Value};

/// Keys that mean something to envoy-dd, in several spellings, each with values Envoy and
/// applications put under it (valid and not), so that roles, ids, codes and collisions are hit
/// often. Values are JSON text.
const FIELDS: &[(&[&str], &[&str])] = &[
    (
        &["response_code", "status_code", "code", "RESPONSE_CODE"],
        &[
            "200", "200.0", r#""200""#, "0", r#""-""#, "503", r#""404""#, "1000", "-1", "null",
        ],
    ),
    (
        &["method", ":method"],
        &[r#""GET""#, r#""POST""#, r#""-""#, "null"],
    ),
    (
        &["path", "x_envoy_original_path", ":path"],
        &[
            r#""/users/42?x=1&y=&x=2""#,
            r#""/""#,
            r#""/a?""#,
            r#""/q?&=&a""#,
            r#""-""#,
        ],
    ),
    (
        &["authority", "host"],
        &[r#""api.example.com""#, r#""-""#, "null"],
    ),
    (
        &["protocol"],
        &[r#""HTTP/1.1""#, r#""HTTP/2""#, r#""HTTP/""#, r#""-""#],
    ),
    (
        &["request_id", "x-request-id"],
        &[r#""9f1c6c1e-3b1a""#, r#""-""#],
    ),
    (&["user_agent"], &[r#""curl/8.7.1""#, "null"]),
    (
        &["x_forwarded_for", "downstream_remote_address"],
        &[
            r#""203.0.113.7, 10.0.0.1""#,
            r#""[::1]:443""#,
            r#""10.0.0.1:80""#,
            r#"" , x""#,
            "null",
        ],
    ),
    (
        &["bytes_received", "bytes_sent"],
        &[
            "0",
            "11576.0",
            r#""12""#,
            r#""-""#,
            "18446744073709551616",
            "1e3",
        ],
    ),
    (
        &["duration", "Duration", "response_duration"],
        &[
            "12",
            "1.50",
            "6.0",
            r#""3""#,
            r#""-""#,
            "0.0000001",
            "18446744073710",
            "null",
            "1e3",
            "2.5E-1",
            "-5",
            "1e30",
            "9223372036855",
        ],
    ),
    (
        &["response_flags"],
        &[r#""-""#, r#""UH""#, r#""UF,URX""#, r#""DC""#, r#""XYZ""#],
    ),
    (
        &[
            "trace_id",
            "span_id",
            "x-datadog-trace-id",
            "x_datadog_parent_id",
            "dd.trace_id",
        ],
        &[
            r#""1234""#,
            "18446744073709551615",
            r#""18446744073709551616""#,
            "9007199254740993",
            r#""640cfd8d00000000000000000000002a""#,
            r#""0""#,
            r#""-""#,
            "null",
            r#""""#,
        ],
    ),
    (
        &["x_datadog_tags"],
        &[
            r#""_dd.p.tid=640cfd8d00000000""#,
            r#""_dd.p.dm=-1,_dd.p.tid=640cfd8d00000000""#,
            r#""_dd.p.tid=x""#,
        ],
    ),
    (
        &["traceparent"],
        &[
            r#""00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01""#,
            r#""ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01""#,
            "null",
        ],
    ),
    (
        &["x-b3-traceid", "x-b3-spanid"],
        &[
            r#""e457b5a2e4d86bd1""#,
            r#""80f198ee56343ba864fe8b2a57d3eff7""#,
            r#""0000000000000000""#,
        ],
    ),
    (
        &["b3"],
        &[r#""e457b5a2e4d86bd1-05e3ac9a4f6e3b90-1""#, r#""1""#],
    ),
    (
        &["x-amzn-trace-id"],
        &[
            r#""Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8""#,
            r#""Root=1-5759e988-000000018000000000000000""#,
        ],
    ),
    (
        &["dd"],
        &[
            r#"{"trace_id":"1","span_id":"2"}"#,
            r#"{"trace_id":"-","span_id":null}"#,
            r#"{"trace_id":12345678901234567890,"span_id":0}"#,
            r#"{"trace_id":"abc","env":"prod"}"#,
            r#"{"service":"web"}"#,
            "{}",
            "null",
            r#""on""#,
        ],
    ),
    (
        &["hash", "phase"],
        &[
            r#""${GIT_COMMIT_SHA}""#,
            r#""""#,
            r#""-""#,
            r#"" ""#,
            r#""c0ffee""#,
            r#""canary""#,
            "null",
            "7",
        ],
    ),
    (
        &["status", "level", "severity", "message", "msg"],
        &[r#""info""#, "500", "null"],
    ),
    (
        &["log", "_log"],
        &[r#""text""#, r#"{"duration":1}"#, r#""{\"a\":1}""#, "null"],
    ),
    (&["http", "network"], &[r#"{"status_code":500}"#, "1"]),
    (
        &["source", "container_name"],
        &[r#""stdout""#, r#""envoy""#],
    ),
    (
        &["ecs_task_definition"],
        &[
            r#""api-canary:42""#,
            r#""api_stable:1""#,
            r#""api:1""#,
            r#""-""#,
        ],
    ),
];

/// A meaningful key with a value that fits it (mostly) or any value.
fn envoy_member() -> impl Strategy<Value = (String, Value)> {
    proptest::sample::select(FIELDS).prop_flat_map(|(keys, values)| {
        let fitting =
            proptest::sample::select(values).prop_map(|v| serde_json::from_str(v).unwrap());
        let key = proptest::sample::select(keys).prop_map(str::to_string);
        (key, prop_oneof![4 => fitting, 1 => value()])
    })
}

fn envoy_key() -> impl Strategy<Value = String> {
    let known =
        proptest::sample::select(FIELDS).prop_flat_map(|(keys, _)| proptest::sample::select(keys));
    prop_oneof![4 => known.prop_map(str::to_string), 1 => "[a-z_]{1,8}", 1 => any::<String>()]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        // Numbers no float or u64 can hold, kept exactly thanks to arbitrary_precision.
        "[1-9][0-9]{20,40}(\\.[0-9]{1,5}0)?(e-?[0-9]{1,3})?"
            .prop_map(|s| serde_json::from_str(&s).unwrap()),
        any::<String>().prop_map(Value::String),
        "[\\u{0}-\\u{7f}\\u{e9}\\u{2028}\\u{1F600}\"\\\\]{0,12}".prop_map(Value::String),
    ]
}

/// Any JSON value, nested a few levels, with keys from the pool or arbitrary.
fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((envoy_key(), inner), 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object of Envoy-ish members (plus the odd arbitrary one), most with a response code so
/// that the access-log rules apply.
fn envoy_object() -> impl Strategy<Value = Map<String, Value>> {
    let (code_keys, code_values) = FIELDS[0];
    let code = (
        proptest::sample::select(code_keys).prop_map(str::to_string),
        proptest::sample::select(code_values).prop_map(|v| serde_json::from_str(v).unwrap()),
    );
    let member = prop_oneof![6 => envoy_member(), 1 => (envoy_key(), value())];
    let members = proptest::collection::vec(member, 0..16);
    (proptest::option::weighted(0.7, code), members)
        .prop_map(|(code, members)| code.into_iter().chain(members).collect())
}

/// A record of any of the shapes: arbitrary, bare Envoy-ish, or FireLens-wrapped with a JSON
/// (or text) `log`.
fn record() -> impl Strategy<Value = String> {
    let any_object = proptest::collection::vec((envoy_key(), value()), 0..10)
        .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()).to_string());
    let bare = envoy_object().prop_map(|m| Value::Object(m).to_string());
    let firelens = (envoy_object(), envoy_object(), any::<bool>(), 0..10u8).prop_map(
        |(mut envelope, log, newline, text)| {
            let mut log = Value::Object(log).to_string();
            if newline {
                log.push('\n');
            }
            if text == 0 {
                log = format!("[info][main] {log}");
            }
            envelope.insert("log".into(), Value::String(log));
            Value::Object(envelope).to_string()
        },
    );
    prop_oneof![1 => any_object, 1 => bare, 2 => firelens]
}

fn config() -> impl Strategy<Value = Config> {
    let text = prop_oneof![
        Just(None),
        Just(Some("${GIT_COMMIT_SHA}".to_string())),
        ".{0,6}".prop_map(Some)
    ];
    (
        text.clone(),
        text,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(hash, phase, hex, standard, derive, keep)| Config {
            hash,
            phase,
            trace_id_128: if hex {
                TraceIdFormat::Hex
            } else {
                TraceIdFormat::Decimal
            },
            standard_attributes: standard,
            derive_phase: derive,
            keep_source_attributes: keep,
            ..Config::default()
        })
}

/// Bytes that are often almost a record: a generated record with bytes cut, flipped or
/// inserted, or just random bytes.
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    let mutated = (
        record(),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..4),
    )
        .prop_map(|(record, edits)| {
            let mut b = record.into_bytes();
            for (at, byte, op) in edits {
                if b.is_empty() {
                    break;
                }
                let i = at.index(b.len());
                match op {
                    0 => b.truncate(i.max(1)),
                    1 => b[i] = byte,
                    _ => b.insert(i, byte),
                }
            }
            b
        });
    prop_oneof![2 => mutated, 1 => proptest::collection::vec(any::<u8>(), 1..300)]
}

/// `n` cases from a fixed seed, so that every run checks the same inputs; for a longer or
/// different run set `PROPTEST_CASES` (e.g. `100000`) and `PROPTEST_RNG_SEED`.
fn cases(n: u32) -> ProptestConfig {
    let default = ProptestConfig::default();
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n);
    let rng_seed = match default.rng_seed {
        RngSeed::Random => RngSeed::Fixed(20240603),
        chosen => chosen,
    };
    ProptestConfig {
        cases,
        rng_seed,
        failure_persistence: None,
        ..default
    }
}

proptest! {
    #![proptest_config(cases(256))]

    /// On valid records: enriched, one object, no duplicate keys, nothing lost (a value that
    /// moved into its standard attribute is recoverable from it).
    #[test]
    fn any_json_object_is_enriched_without_loss(input in record(), config in config()) {
        let check = match config.keep_source_attributes {
            true => check_nothing_lost,
            false => check_nothing_lost_moving,
        };
        let mut t = Transformer::new(config);
        let mut out = Vec::new();
        let outcome = t.transform(input.as_bytes(), &mut out);
        prop_assert!(matches!(outcome, Outcome::Enriched(_)), "{:?} for {}", outcome, input);
        if let Err(e) = check(input.as_bytes(), &out) {
            return Err(TestCaseError::fail(format!("{e}\n in:  {input}\n out: {}", preview(&out))));
        }
        // The transformer is reused: a second record must not see the first one's state.
        let mut again = Vec::new();
        t.transform(input.as_bytes(), &mut again);
        prop_assert_eq!(again, out);
    }
}

proptest! {
    #![proptest_config(cases(1024))]

    /// On any bytes: no panic, never empty, the input unchanged or a valid object.
    #[test]
    fn any_bytes_are_passed_through_or_enriched(input in bytes()) {
        let mut t = Transformer::new(default_config());
        let mut out = Vec::new();
        match t.transform(&input, &mut out) {
            Outcome::PassedThrough(_) => prop_assert_eq!(&out, &input),
            // A key twice in a nested object of the input: the output has it once (the last
            // value, which `repeated_keys_below_the_top_level_keep_the_last_value` checks).
            Outcome::Enriched(_) if check_json(&input).is_err() && check_json_allowing_duplicates(&input).is_ok() => {
                if let Err(e) = check_json(&out) {
                    return Err(TestCaseError::fail(format!("{e}\n in:  {}\n out: {}", preview(&input), preview(&out))));
                }
            }
            Outcome::Enriched(_) => {
                if let Err(e) = check_json(&out) {
                    return Err(TestCaseError::fail(format!("{e}\n in:  {}\n out: {}", preview(&input), preview(&out))));
                }
                if let Err(e) = check_nothing_lost(&input, &out) {
                    return Err(TestCaseError::fail(format!("{e}\n in:  {}\n out: {}", preview(&input), preview(&out))));
                }
            }
        }
        prop_assert!(!out.is_empty());
    }
}

/// A JSON object as text whose objects may repeat a key, at any depth (keys from a small pool,
/// one of them an escaped spelling of another).
fn repeating_object() -> impl Strategy<Value = String> {
    const KEYS: &[&str] = &["a", "b", "\\u0061", "dd", "span_id", "trace_id"];
    let key = || proptest::sample::select(KEYS);
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just(r#""x""#.to_string()),
        "[1-9][0-9]{0,2}",
        Just("{}".to_string()),
    ];
    let value = leaf.prop_recursive(4, 32, 5, move |inner| {
        prop_oneof![
            proptest::collection::vec((key(), inner.clone()), 0..5).prop_map(|members| {
                let members: Vec<String> = members
                    .iter()
                    .map(|(k, v)| format!(r#""{k}":{v}"#))
                    .collect();
                format!("{{{}}}", members.join(","))
            }),
            proptest::collection::vec(inner, 0..4).prop_map(|v| format!("[{}]", v.join(","))),
        ]
    });
    proptest::collection::vec((key(), value), 1..5).prop_map(|members| {
        let members: Vec<String> = members
            .iter()
            .map(|(k, v)| format!(r#""{k}":{v}"#))
            .collect();
        format!("{{{}}}", members.join(","))
    })
}

/// `value` written as JSON with the first character of every key (a letter, digit or `_`) spelled as a
/// `\u` escape.
fn with_escaped_keys(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let members: Vec<String> = map
                .iter()
                .map(|(k, v)| {
                    let plain = Value::String(k.clone()).to_string();
                    let key = match k.chars().next() {
                        Some(c) if c.is_ascii_alphanumeric() || c == '_' => {
                            format!("\"\\u{:04x}{}", c as u32, &plain[1 + c.len_utf8()..])
                        }
                        _ => plain,
                    };
                    format!("{key}:{}", with_escaped_keys(v))
                })
                .collect();
            format!("{{{}}}", members.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(with_escaped_keys).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

proptest! {
    #![proptest_config(cases(256))]

    /// A key repeated below the top level (in a bare record, an envelope, a `log`) is read as
    /// JSON parsers read it: the output holds what serde_json (`preserve_order`) reads from
    /// the input, with no key twice at any depth.
    #[test]
    fn repeated_keys_below_the_top_level_keep_the_last_value(object in repeating_object(), place in 0..3u8) {
        let log = |inner: &str| Value::String(format!(r#"{{"response_code":200,"x":{inner}}}"#));
        let input = match place {
            0 => format!(r#"{{"response_code":200,"x":{object}}}"#),
            1 => format!(r#"{{"x":{object},"log":{}}}"#, log("1")),
            _ => format!(r#"{{"source":"stdout","log":{}}}"#, log(&object)),
        };
        let mut t = Transformer::new(default_config());
        let mut out = Vec::new();
        let outcome = t.transform(input.as_bytes(), &mut out);
        prop_assert!(matches!(outcome, Outcome::Enriched(_)), "{:?} for {}", outcome, input);
        if let Err(e) = check_json(&out) {
            return Err(TestCaseError::fail(format!("{e}\n in:  {input}\n out: {}", preview(&out))));
        }
        let out: Value = serde_json::from_slice(&out).unwrap();
        let expected: Value = serde_json::from_str(&object).unwrap();
        prop_assert_eq!(&out["x"], &expected, "in: {}", input);
    }

    /// Keys are told by their decoded names: spelling every key with an escape changes
    /// nothing but the spelling.
    #[test]
    fn escaped_keys_are_the_same_keys(input in record(), config in config()) {
        let value: Value = serde_json::from_str(&input).unwrap();
        let escaped = with_escaped_keys(&value);
        let transform = |record: &str| {
            let mut out = Vec::new();
            let outcome = Transformer::new(config.clone()).transform(record.as_bytes(), &mut out);
            (outcome, serde_json::from_slice::<Value>(&out).unwrap())
        };
        let (plain, escaped) = (transform(&input), transform(&escaped));
        prop_assert_eq!(&plain, &escaped, "in: {}", input);
    }
}
