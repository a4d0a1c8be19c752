//! What the transform adds, and from what: [`Config`].

use crate::absent::is_placeholder;
use crate::endpoint::Routes;
use crate::join;
use crate::text::TextFormat;
use crate::trace::TraceIdFormat;
use crate::write;

/// What the transform adds, and from what.
///
/// ```
/// use envoy_dd::{Config, TraceIdFormat};
///
/// let config = Config {
///     hash: Some("4f9c2a1".into()),
///     phase: Some("canary".into()),
///     trace_id_128: TraceIdFormat::Hex,
///     ..Config::default()
/// };
/// assert!(config.standard_attributes && config.status && config.message);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Git commit of the running code, used when the record carries no `hash` of its own.
    pub hash: Option<String>,
    /// `stable` or `canary`, used when the record carries no `phase` of its own.
    pub phase: Option<String>,
    /// How 128-bit trace ids are written (`dd.trace_id`).
    pub trace_id_128: TraceIdFormat,
    /// Add Datadog standard attributes (`http.*`, `network.*`, `duration`) to access logs.
    pub standard_attributes: bool,
    /// Add a Datadog `status` (log level) to access logs that have none.
    pub status: bool,
    /// Add a short `message` to access logs that have none.
    pub message: bool,
    /// Route templates (`GET /users/{id}`) whose path is `http.endpoint` for the requests they
    /// match; other requests get the endpoint Datadog's tracers infer (see
    /// [`crate::endpoint`]).
    pub routes: Routes,
    /// Keep every Envoy key as it was logged, next to the standard attribute made from it.
    /// Off by default: a key whose whole value its attribute holds moves there (as Datadog's
    /// attribute remapper does unless told to preserve the source), and its absent values
    /// (`null`, `"-"`) are dropped; a key only partly carried (several `x_forwarded_for`
    /// addresses, `traceparent`, `response_flags`, ...) stays either way.
    ///
    /// ```
    /// use envoy_dd::{Config, Transformer};
    ///
    /// let line = br#"{"method":"GET","path":"/a?b=1","response_code":200,"user_agent":null}"#;
    /// let mut out = Vec::new();
    /// Transformer::new(Config::default()).transform(line, &mut out);
    /// assert_eq!(
    ///     String::from_utf8(out).unwrap(),
    ///     r#"{"http":{"status_code":200,"method":"GET","url":"/a?b=1","url_details":{"path":"/a","queryString":{"b":"1"}},"endpoint":"/a"},"status":"info","message":"GET /a?b=1 200"}"#
    /// );
    /// let keep = Config { keep_source_attributes: true, ..Config::default() };
    /// let mut out = Vec::new();
    /// Transformer::new(keep).transform(line, &mut out);
    /// assert!(out.starts_with(br#"{"method":"GET","path":"/a?b=1","response_code":200,"user_agent":null,"http""#));
    /// ```
    pub keep_source_attributes: bool,
    /// Derive `phase` from an `ecs_task_definition` family ending in `-canary` / `-stable`.
    pub derive_phase: bool,
    /// The format of the Envoy text access logs in `log`, tried before the built-in ones
    /// (Envoy's default format, Istio's and ECS Service Connect's), which are always
    /// recognised.
    pub text_format: Option<TextFormat>,
    /// The request-id join: how many request ids to remember with the trace context of a
    /// record that had both (an application's own line), for access lines of the same
    /// request that have no trace id (ECS Service Connect logs none). The oldest is
    /// forgotten first; each takes 112 bytes, so the default, 8192, 0.9 MiB.
    /// 0 turns the join off.
    pub request_id_join: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hash: None,
            phase: None,
            trace_id_128: TraceIdFormat::Decimal,
            standard_attributes: true,
            status: true,
            message: true,
            keep_source_attributes: false,
            routes: Routes::default(),
            derive_phase: true,
            text_format: None,
            request_id_join: join::DEFAULT_ENTRIES,
        }
    }
}

impl Config {
    /// The default config with `hash` and `phase` taken from the environment variables
    /// `GIT_COMMIT_SHA` and `DEPLOY_PHASE` (the names the Fluent Bit examples use).
    pub fn from_env() -> Self {
        Config {
            hash: std::env::var("GIT_COMMIT_SHA").ok(),
            phase: std::env::var("DEPLOY_PHASE").ok(),
            ..Config::default()
        }
    }
}

/// What the transform needs of a [`Config`] on every record, worked out once.
pub(crate) struct Setup {
    /// `hash` / `phase` from the config, already JSON-encoded; `None` if unset or a placeholder.
    pub hash_json: Option<Vec<u8>>,
    pub phase_json: Option<Vec<u8>>,
    /// The configured text format looks like JSON (`{"method":"%REQ(:METHOD)%",...}`): it is
    /// tried first on a `log` that opens with `{` too.
    pub braced_text_format: bool,
}

/// A configured `hash` or `phase` as a JSON string; `None` when unset or a placeholder
/// (`""`, `-`, `${GIT_COMMIT_SHA}`). The tracing layer encodes its own the same way.
pub(crate) fn json_value(value: &Option<String>) -> Option<Vec<u8>> {
    let value = value.as_deref().filter(|v| !is_placeholder(v.as_bytes()))?;
    let mut json = Vec::new();
    write::string(&mut json, value);
    Some(json)
}

impl Setup {
    pub fn of(config: &Config) -> Self {
        let braced = |f: &TextFormat| f.as_str().trim_start().starts_with('{');
        Setup {
            hash_json: json_value(&config.hash),
            phase_json: json_value(&config.phase),
            braced_text_format: config.text_format.as_ref().is_some_and(braced),
        }
    }
}
