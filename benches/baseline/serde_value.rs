//! Baseline: the transform as most Rust code would write it, with `serde_json::Value`.
//!
//! Parse the record into a `Value`, parse the `log` string into another, apply the rules to
//! the maps, `serde_json::to_writer` the result into the caller's (reused) buffer.

use std::borrow::Cow;

use envoy_dd::Config;
use serde_json::{Map, Value};

use crate::rules::{self, Json, JsonMap, Rules, Scalar};

pub struct SerdeValue {
    rules: Rules,
}

impl SerdeValue {
    pub fn new(config: &Config) -> Self {
        SerdeValue {
            rules: Rules::new(config),
        }
    }

    /// Appends the transformed record to `out`, or `input` unchanged when it is not a JSON
    /// object.
    pub fn transform(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let Ok(Value::Object(envelope)) = serde_json::from_slice(input) else {
            out.extend_from_slice(input);
            return;
        };
        let log = match envelope.get("log") {
            Some(Value::String(log)) if log.trim_start().starts_with('{') => {
                serde_json::from_str(log).ok()
            }
            _ => None,
        };
        let record = rules::transform::<Value>(&self.rules, envelope, log);
        serde_json::to_writer(out, &record).expect("writing to a Vec cannot fail");
    }
}

impl Json for Value {
    type Key = String;
    type Map = Map<String, Value>;

    fn scalar(&self) -> Scalar<'_> {
        match self {
            Value::String(s) => Scalar::Str(s),
            Value::Number(n) => match n.as_u64() {
                Some(n) => Scalar::U64(n),
                None => Scalar::Num(Cow::Owned(n.to_string())),
            },
            Value::Null => Scalar::Null,
            Value::Object(_) => Scalar::Object,
            Value::Bool(_) | Value::Array(_) => Scalar::Other,
        }
    }

    fn as_map(&self) -> Option<&Self::Map> {
        self.as_object()
    }

    fn string(s: String) -> Self {
        Value::String(s)
    }

    fn uint(n: u64) -> Self {
        Value::from(n)
    }

    fn map(m: Self::Map) -> Self {
        Value::Object(m)
    }

    fn key(s: &'static str) -> String {
        s.to_owned()
    }

    fn owned_key(s: String) -> String {
        s
    }
}

impl JsonMap for Map<String, Value> {
    type Key = String;
    type Value = Value;

    fn get(&self, key: &str) -> Option<&Value> {
        Map::get(self, key)
    }

    fn insert(&mut self, key: String, value: Value) {
        Map::insert(self, key, value);
    }

    fn entries(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.iter().map(|(k, v)| (k.as_str(), v))
    }
}
