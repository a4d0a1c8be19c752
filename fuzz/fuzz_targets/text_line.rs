//! Any text as an Envoy access-log line: matching must not panic, must write one JSON object
//! with string and number values when it matches and nothing when it does not, and the whole
//! transform of a FireLens record holding the line must stay one valid JSON object.
//!
//! An input that is itself a JSON object with a string `log` (the seeds are FireLens records
//! from `fixtures/text/`) stands for that `log` line, so mutations start from real lines.
#![no_main]

use std::sync::OnceLock;

use envoy_dd::{Config, Outcome, Shape, TextFormat, Transformer};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn custom() -> &'static TextFormat {
    static FORMAT: OnceLock<TextFormat> = OnceLock::new();
    FORMAT.get_or_init(|| {
        let format = include_str!("../../fixtures/text/datadog-trace.format");
        TextFormat::parse(format.trim_end()).expect("the fixture format parses")
    })
}

fuzz_target!(|data: &[u8]| {
    let line = match serde_json::from_slice::<Value>(data) {
        Ok(Value::Object(record)) => match record.get("log") {
            Some(Value::String(log)) => log.as_bytes().to_vec(),
            _ => data.to_vec(),
        },
        _ => data.to_vec(),
    };

    for format in [TextFormat::envoy_default(), custom()] {
        let mut out = Vec::new();
        if format.to_json(&line, &mut out) {
            let value: Value = serde_json::from_slice(&out).expect("a match writes valid JSON");
            let fields = value.as_object().expect("a match writes one object");
            for (key, field) in fields {
                assert!(field.is_string() || field.is_number(), "{key}: {field}");
            }
        } else {
            assert!(out.is_empty(), "a line that does not match writes nothing");
        }
    }

    // The line as a FireLens record's `log` (invalid UTF-8 becomes U+FFFD, as JSON needs).
    let text = String::from_utf8_lossy(&line);
    let record = serde_json::json!({ "source": "stdout", "log": text }).to_string();
    let mut transformer = Transformer::new(Config {
        text_format: Some(custom().clone()),
        ..Config::default()
    });
    let mut out = Vec::new();
    let Outcome::Enriched(done) = transformer.transform(record.as_bytes(), &mut out) else {
        panic!("a FireLens record with a string log is always enriched");
    };
    let value: Value = serde_json::from_slice(&out).expect("valid JSON");
    let fields = value.as_object().expect("one object");
    match done.shape {
        // The parsed fields replace `log`.
        Shape::LogText => assert!(!fields.contains_key("log")),
        // A line that is kept stays as it was.
        Shape::LogKept(_) => {
            assert_eq!(fields.get("log").and_then(Value::as_str), Some(&*text));
        }
        // A line that is a JSON object is merged like any JSON log.
        _ => {}
    }
});
