//! Any bytes in, as lines: for each, the transform must not panic, must write a record, and
//! must either pass the line through unchanged or write one valid JSON object without a key
//! twice at any depth (keys compared decoded), that keeps every top-level key (but those that
//! move into their standard attributes). The lines go
//! through one transformer in order, so that a layout learned from the first records reads the
//! later ones; a second transformer without layouts must write exactly the same.
#![no_main]

use envoy_dd::{Config, Outcome, Transformer};
use libfuzzer_sys::fuzz_target;

// The tests' strict JSON checker: rejects a key twice in any object, which serde_json accepts.
#[path = "../../tests/common/mod.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let config = Config {
        hash: Some("4f9c2a1".into()),
        ..Config::default()
    };
    let mut transformer = Transformer::new(config.clone());
    let mut general = Transformer::new(config);
    general.set_layout_learning(false);
    let (mut out, mut expected) = (Vec::new(), Vec::new());
    for line in data.split(|&b| b == b'\n') {
        out.clear();
        expected.clear();
        let outcome = transformer.transform(line, &mut out);
        let expected_outcome = general.transform(line, &mut expected);
        assert_eq!(outcome, expected_outcome, "outcome with and without layouts");
        assert!(out == expected, "output with and without layouts");
        check(line, outcome, &out);
    }
    // The whole input as one record too: JSON may have raw newlines between its tokens.
    if data.contains(&b'\n') {
        out.clear();
        let outcome = transformer.transform(data, &mut out);
        check(data, outcome, &out);
    }
});

fn check(data: &[u8], outcome: Outcome, out: &[u8]) {
    match outcome {
        Outcome::PassedThrough(_) => assert_eq!(out, data),
        // serde_json's `arbitrary_precision` reads this key as its own number marker and then
        // rejects valid JSON; such inputs say nothing about envoy-dd.
        Outcome::Enriched(_) if memmem(data, b"$serde_json::private") => {}
        Outcome::Enriched(_) => {
            let value: serde_json::Value = match serde_json::from_slice(out) {
                Ok(value) => value,
                // serde_json stops at 128 levels; envoy-dd reads any depth without recursion.
                Err(e) if e.to_string().contains("recursion limit") => return,
                Err(e) => panic!("output is not valid JSON: {e}"),
            };
            assert!(value.is_object(), "output is one JSON object");
            if let Err(e) = common::check_json(out) {
                panic!("output: {e}");
            }
            // The input was valid JSON too, so it parses; its top-level keys are all kept
            // (`log` only when it was not merged), but for Envoy keys that may move into their
            // standard attributes (the default; `tests/golden.rs` and `tests/properties.rs`
            // check that their values are recoverable there).
            let input: serde_json::Value =
                serde_json::from_slice(data).expect("enriched input was JSON");
            for (key, input_value) in input.as_object().unwrap() {
                // `hash`/`phase` debris (`""`, `-`, `${VAR}`, null) is removed by design.
                let debris = matches!(key.as_str(), "hash" | "phase") && is_debris(input_value);
                let moved = common::is_moving_key(key);
                assert!(
                    key == "log" || debris || moved || value.get(key).is_some(),
                    "key {key:?} lost"
                );
            }
        }
    }
}

fn is_debris(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => true,
        serde_json::Value::String(s) => {
            let s = s.trim();
            s.is_empty() || s == "-" || (s.starts_with("${") && s.ends_with('}'))
        }
        _ => false,
    }
}

fn memmem(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
