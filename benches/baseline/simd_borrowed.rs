//! Baseline: the transform with simd-json's borrowed values, the fastest tree-based way.
//!
//! The record is copied into a reused buffer (simd-json parses in place), the `log` string into
//! another, both are parsed with reused `simd_json::Buffers`, the rules are applied to the
//! maps, and simd-json's writer appends the result to the caller's (reused) buffer.

use std::borrow::Cow;

use envoy_dd::Config;
use simd_json::prelude::*;
use simd_json::{borrowed, BorrowedValue as Value, Buffers, StaticNode};

use crate::rules::{self, Json, JsonMap, Rules, Scalar};

pub struct SimdBorrowed {
    rules: Rules,
    input: Vec<u8>,
    log: Vec<u8>,
    buffers: Buffers,
}

impl SimdBorrowed {
    pub fn new(config: &Config) -> Self {
        SimdBorrowed {
            rules: Rules::new(config),
            input: Vec::new(),
            log: Vec::new(),
            buffers: Buffers::default(),
        }
    }

    /// Appends the transformed record to `out`, or `input` unchanged when it is not a JSON
    /// object.
    pub fn transform(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.input.clear();
        self.input.extend_from_slice(input);
        let Ok(Value::Object(envelope)) =
            borrowed::to_value_with_buffers(&mut self.input, &mut self.buffers)
        else {
            out.extend_from_slice(input);
            return;
        };
        let log = match envelope.get("log") {
            Some(Value::String(log)) if log.trim_start().starts_with('{') => {
                self.log.clear();
                self.log.extend_from_slice(log.as_bytes());
                match borrowed::to_value_with_buffers(&mut self.log, &mut self.buffers) {
                    Ok(Value::Object(log)) => Some(*log),
                    _ => None,
                }
            }
            _ => None,
        };
        let record = rules::transform::<Value>(&self.rules, *envelope, log);
        Value::from(record)
            .write(out)
            .expect("writing to a Vec cannot fail");
    }
}

impl<'v> Json for Value<'v> {
    type Key = Cow<'v, str>;
    type Map = borrowed::Object<'v>;

    fn scalar(&self) -> Scalar<'_> {
        match self {
            Value::String(s) => Scalar::Str(s),
            Value::Static(StaticNode::U64(n)) => Scalar::U64(*n),
            Value::Static(StaticNode::I64(n)) => match u64::try_from(*n) {
                Ok(n) => Scalar::U64(n),
                Err(_) => Scalar::Num(Cow::Owned(n.to_string())),
            },
            Value::Static(StaticNode::F64(f)) => Scalar::Num(Cow::Owned(f.to_string())),
            Value::Static(StaticNode::Null) => Scalar::Null,
            Value::Object(_) => Scalar::Object,
            _ => Scalar::Other,
        }
    }

    fn as_map(&self) -> Option<&Self::Map> {
        self.as_object()
    }

    fn string(s: String) -> Self {
        Value::String(Cow::Owned(s))
    }

    fn uint(n: u64) -> Self {
        Value::from(n)
    }

    fn map(m: Self::Map) -> Self {
        Value::from(m)
    }

    fn key(s: &'static str) -> Cow<'v, str> {
        Cow::Borrowed(s)
    }

    fn owned_key(s: String) -> Cow<'v, str> {
        Cow::Owned(s)
    }
}

impl<'v> JsonMap for borrowed::Object<'v> {
    type Key = Cow<'v, str>;
    type Value = Value<'v>;

    fn get(&self, key: &str) -> Option<&Value<'v>> {
        borrowed::Object::get(self, key)
    }

    fn insert(&mut self, key: Cow<'v, str>, value: Value<'v>) {
        borrowed::Object::insert(self, key, value);
    }

    fn entries(&self) -> impl Iterator<Item = (&str, &Value<'v>)> {
        self.iter().map(|(k, v)| (k.as_ref(), v))
    }
}
