//! Datadog's schemas as validators: API v1 from Datadog's OpenAPI description (YAML, outside
//! this repository; `DATADOG_OPENAPI_V1` names another place), API v2 from the documented shapes in fixtures/datadog/v2-schemas.json.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use jsonschema::{Draft, Validator};
use serde_json::{json, Value};

/// A validator for one schema, with a name for messages.
pub struct Schema {
    name: String,
    validator: Validator,
}

impl Schema {
    /// Whether `instance` is valid.
    pub fn is_valid(&self, instance: &Value) -> bool {
        self.validator.is_valid(instance)
    }

    /// Fails the test, listing every error, unless `instance` is valid.
    pub fn check(&self, instance: &Value, what: &str) {
        let errors: Vec<String> = self
            .validator
            .iter_errors(instance)
            .map(|e| format!("  at {}: {}", e.instance_path(), e))
            .collect();
        assert!(
            errors.is_empty(),
            "{what} does not match Datadog's {}:\n{}\n{}",
            self.name,
            errors.join("\n"),
            serde_json::to_string_pretty(instance).unwrap()
        );
    }
}

/// The v1 request bodies envoy-dd generates.
pub struct V1 {
    /// `POST /api/v1/dashboard`.
    pub dashboard: Schema,
    /// `POST /api/v1/monitor`.
    pub monitor: Schema,
}

/// The v1 validators, or `None` (after saying so) when the OpenAPI file is absent outside CI.
pub fn v1_validator() -> Option<&'static V1> {
    static V1: OnceLock<Option<V1>> = OnceLock::new();
    V1.get_or_init(load_v1).as_ref()
}

/// `../shared/datadog/openapi-v1.yaml` next to the repository, or `$DATADOG_OPENAPI_V1`.
fn openapi_path() -> PathBuf {
    match std::env::var_os("DATADOG_OPENAPI_V1") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/datadog/openapi-v1.yaml"),
    }
}

fn load_v1() -> Option<V1> {
    let path = openapi_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!(
                "CI is set and Datadog's OpenAPI description {} cannot be read: {e}",
                path.display()
            )
        }
        Err(e) => {
            eprintln!(
                "SKIPPED: Datadog's OpenAPI description {} cannot be read ({e}); the generated \
                 dashboards and monitors are not checked against it",
                path.display()
            );
            return None;
        }
    };
    let mut spec: Value =
        serde_yaml_ng::from_str(&text).expect("Datadog's OpenAPI description is YAML");
    to_json_schema(&mut spec);
    let components = spec["components"].clone();
    let body = |path: &str| {
        let schema =
            &spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"];
        assert!(
            schema.is_object(),
            "no POST {path} request body in the OpenAPI description"
        );
        schema.clone()
    };
    let schema = |name: &str, root: Value| {
        let mut document = json!({ "components": components });
        for (k, v) in root.as_object().unwrap() {
            document[k] = v.clone();
        }
        let validator = jsonschema::options()
            .with_draft(Draft::Draft4)
            .should_validate_formats(false)
            .build(&document)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        Schema {
            name: name.to_owned(),
            validator,
        }
    };
    Some(V1 {
        dashboard: schema("POST /api/v1/dashboard body", body("/api/v1/dashboard")),
        monitor: schema("POST /api/v1/monitor body", body("/api/v1/monitor")),
    })
}

/// OpenAPI 3.0's schema dialect as JSON Schema (draft 4): `nullable: true` admits `null`.
/// And stricter than the file: an object schema that lists its properties admits no others
/// (Datadog's schema leaves most objects open), so a misspelt or invented field fails. The
/// file has no `allOf`/`anyOf`, so closing each object is sound.
fn to_json_schema(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("nullable") == Some(&Value::Bool(true)) {
                map.remove("nullable");
                if let Some(Value::String(ty)) = map.get("type").cloned() {
                    map.insert("type".into(), json!([ty, "null"]));
                }
                if let Some(Value::Array(values)) = map.get_mut("enum") {
                    values.push(Value::Null);
                }
            }
            if map.get("properties").is_some_and(Value::is_object)
                && !map.contains_key("additionalProperties")
            {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            // Examples and extensions are not schemas.
            map.remove("example");
            map.retain(|k, _| !k.starts_with("x-"));
            for (key, child) in map.iter_mut() {
                // `properties` maps names to schemas; a property may be called `example`.
                if key == "properties" {
                    if let Value::Object(props) = child {
                        props.values_mut().for_each(to_json_schema);
                    }
                } else {
                    to_json_schema(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(to_json_schema),
        _ => {}
    }
}

/// The v2 shapes.
pub struct V2 {
    document: Value,
}

impl V2 {
    /// The validator of the definition `name`.
    pub fn schema(&self, name: &str) -> Schema {
        let mut document = self.document.clone();
        document["$ref"] = json!(format!("#/definitions/{name}"));
        let validator = jsonschema::options()
            .with_draft(Draft::Draft4)
            .build(&document)
            .unwrap();
        Schema {
            name: format!("v2 {name}"),
            validator,
        }
    }

    /// Fails the test unless `instance` matches the definition `name`.
    pub fn check(&self, name: &str, instance: &Value) {
        self.schema(name).check(instance, name);
    }
}

/// The v2 shapes of fixtures/datadog/v2-schemas.json.
pub fn v2_validator() -> V2 {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/datadog/v2-schemas.json");
    let document = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    V2 { document }
}
