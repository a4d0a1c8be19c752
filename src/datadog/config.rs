//! The Datadog configuration that watches canaries between releases: log-based metrics, the
//! per-endpoint canary monitors and a dashboard, as the API's JSON or as Terraform.
//!
//! * Two log-based metrics (`POST /api/v2/logs/config/metrics`): `<prefix>.requests`, a count,
//!   and `<prefix>.duration`, a distribution of `@duration` (nanoseconds) with percentiles. Both
//!   are tagged with the version, `endpoint` (`@http.endpoint`, never the raw path: every tag
//!   combination is a billed custom metric), `status`, `service` and `env`.
//! * Four monitors (`POST /api/v1/monitor`): the canary's error rate minus stable's per
//!   endpoint, the share of the canary's requests that fail per endpoint (above one half), the
//!   canary's traffic per endpoint, and a composite, `(difference || failing) && traffic`, so
//!   that an endpoint alerts only when the canary is worse *and* served enough requests for it
//!   to mean something. The composite's message names the endpoint and links the dashboard.
//! * A dashboard (`POST /api/v1/dashboard`): error rate and latency per version, overall and per
//!   endpoint, with `service` and `env` template variables.
//!
//! ```
//! use envoy_dd::datadog::config::{generate, Settings};
//!
//! let config = generate(&Settings::new("api"));
//! let json = config.to_json();
//! assert_eq!(json["logs_metrics"][0]["data"]["id"], "envoy_dd.api.requests");
//! assert!(config.to_terraform().contains("resource \"datadog_monitor_json\""));
//! ```

use serde_json::{json, Value};

use super::{facet, tag, By, Site};

/// What to generate the configuration for.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// The service (`service:` in Datadog); names the metrics and resources.
    pub service: String,
    /// The environment (`env:`), or `None` for every environment.
    pub env: Option<String>,
    /// More of the log query that selects the service's access logs (log search syntax).
    pub query: Option<String>,
    /// What tells versions apart on the dashboard; the monitors compare `phase` values.
    pub version: By,
    /// The prefix of the metric names (default `envoy_dd.<service>`).
    pub metric_prefix: Option<String>,
    /// The canary's error rate minus stable's, as a fraction, above which an endpoint alerts.
    pub threshold: f64,
    /// The canary requests an endpoint needs in the window before it may alert.
    pub min_requests: u64,
    /// The monitors' evaluation window in minutes.
    pub window_minutes: u32,
    /// Where the monitors' messages link to the dashboard; Terraform links the one it creates.
    pub dashboard_url: Option<String>,
    /// Who is notified (`@slack-releases`, `@pagerduty-api`), appended to the messages.
    pub notify: Vec<String>,
    /// The site, for links.
    pub site: Site,
}

impl Settings {
    /// The defaults for `service`: any env, `phase`, 2 percentage points, 100 requests, 30 min.
    pub fn new(service: &str) -> Settings {
        Settings {
            service: service.to_owned(),
            env: None,
            query: None,
            version: By::Phase,
            metric_prefix: None,
            threshold: 0.02,
            min_requests: 100,
            window_minutes: 30,
            dashboard_url: None,
            notify: Vec::new(),
            site: Site::default(),
        }
    }

    /// The log query the metrics are computed from.
    pub fn log_query(&self) -> String {
        let mut query = format!("service:{}", self.service);
        if let Some(env) = &self.env {
            query.push_str(&format!(" env:{env}"));
        }
        if let Some(extra) = &self.query {
            query.push_str(&format!(" {extra}"));
        }
        query
    }

    fn prefix(&self) -> String {
        self.metric_prefix
            .clone()
            .unwrap_or_else(|| format!("envoy_dd.{}", slug(&self.service, '_')))
    }

    /// The metric scope of the monitors (`service:api,env:prod`).
    fn scope(&self) -> String {
        let mut scope = format!("service:{}", self.service);
        if let Some(env) = &self.env {
            scope.push_str(&format!(",env:{env}"));
        }
        scope
    }
}

/// A generated configuration: the API's request bodies, in the order they can be created.
#[derive(Clone, Debug)]
pub struct Generated {
    /// Terraform resource names' stem (`api`).
    name: String,
    /// `POST /api/v2/logs/config/metrics` bodies.
    pub logs_metrics: Vec<Value>,
    /// `POST /api/v1/monitor` body: the per-endpoint error-rate difference.
    pub error_rate_monitor: Value,
    /// `POST /api/v1/monitor` body: the per-endpoint share of the canary's requests that fail,
    /// above one half: the endpoint the difference cannot see, where the canary fails every
    /// request (it has no non-error series).
    pub failing_monitor: Value,
    /// `POST /api/v1/monitor` body: the per-endpoint canary traffic.
    pub traffic_monitor: Value,
    /// `POST /api/v1/monitor` body: the composite, `(error rate || failing) && traffic`. Its
    /// `query` names the monitors as `${error_rate_monitor.id}`, `${failing_monitor.id}` and
    /// `${traffic_monitor.id}`, which the API's ids replace once they exist (Terraform does
    /// this itself).
    pub composite_monitor: Value,
    /// `POST /api/v1/dashboard` body.
    pub dashboard: Value,
    /// Where the monitors link the dashboard when it is not known yet.
    dashboard_link: Option<String>,
    app_url: String,
}

/// The placeholders the composite's query and the messages carry until the ids exist.
const ERROR_RATE_ID: &str = "${error_rate_monitor.id}";
const TRAFFIC_ID: &str = "${traffic_monitor.id}";
const FAILING_ID: &str = "${failing_monitor.id}";
const DASHBOARD_URL: &str = "${dashboard.url}";

/// Generates the configuration for `settings`.
pub fn generate(settings: &Settings) -> Generated {
    let prefix = settings.prefix();
    let requests = format!("{prefix}.requests");
    let duration = format!("{prefix}.duration");
    let link = settings.dashboard_url.clone();
    let dashboard_url = link.clone().unwrap_or_else(|| DASHBOARD_URL.to_owned());
    Generated {
        name: slug(&settings.service, '_'),
        logs_metrics: vec![
            logs_metric(settings, &requests, json!({ "aggregation_type": "count" })),
            logs_metric(
                settings,
                &duration,
                json!({ "aggregation_type": "distribution", "include_percentiles": true, "path": "@duration" }),
            ),
        ],
        error_rate_monitor: error_rate_monitor(settings, &requests),
        failing_monitor: failing_monitor(settings, &requests),
        traffic_monitor: traffic_monitor(settings, &requests),
        composite_monitor: composite_monitor(settings, &dashboard_url),
        dashboard: dashboard(settings, &requests, &duration),
        dashboard_link: link,
        app_url: settings.site.app_url().to_owned(),
    }
}

/// The group-bys of both metrics: each is a tag, and each tag multiplies the custom metrics
/// Datadog bills, so only low-cardinality attributes (never the raw path).
fn metric_group_by(settings: &Settings) -> Vec<Value> {
    let mut tags = vec![json!({ "path": "@phase", "tag_name": "phase" })];
    if settings.version != By::Phase {
        tags.push(json!({ "path": facet(settings.version), "tag_name": tag(settings.version) }));
    }
    tags.extend([
        json!({ "path": "@http.endpoint", "tag_name": "endpoint" }),
        json!({ "path": "status", "tag_name": "status" }),
        json!({ "path": "service", "tag_name": "service" }),
        json!({ "path": "env", "tag_name": "env" }),
    ]);
    tags
}

fn logs_metric(settings: &Settings, name: &str, compute: Value) -> Value {
    json!({
        "data": {
            "id": name,
            "type": "logs_metrics",
            "attributes": {
                "compute": compute,
                "filter": { "query": format!("{} @http.endpoint:*", settings.log_query()) },
                "group_by": metric_group_by(settings),
            }
        }
    })
}

/// `sum:<requests>{<scope>,phase:<phase>[,<extra>]} by {endpoint}.as_count()`.
fn count(requests: &str, scope: &str, phase: &str, extra: &str) -> String {
    format!("sum:{requests}{{{scope},phase:{phase}{extra}}} by {{endpoint}}.as_count()")
}

fn error_rate_monitor(settings: &Settings, requests: &str) -> Value {
    let scope = settings.scope();
    // The error rate is 1 − (non-error share): an endpoint with no errors still has a
    // non-error series, whereas a `status:error` series would be missing and Datadog drops a
    // group from arithmetic when any operand lacks it. So canary − stable error rate is
    // stable's non-error share − the canary's.
    let share = |phase: &str| {
        format!(
            "{} / {}",
            count(requests, &scope, phase, ",!status:error"),
            count(requests, &scope, phase, "")
        )
    };
    let window = settings.window_minutes;
    json!({
        "name": format!("[{}] canary error rate above stable on {{{{endpoint.name}}}}", settings.service),
        "type": "query alert",
        "query": format!(
            "sum(last_{window}m):({}) - ({}) > {}",
            share("stable"), share("canary"), number(settings.threshold)
        ),
        "message": format!(
            "The canary's error rate on {{{{endpoint.name}}}} of {} is {{{{value}}}} above stable's \
             (threshold {}) over the last {window} minutes. Part of the composite canary monitor, \
             which also requires {} canary requests.",
            settings.service, number(settings.threshold), settings.min_requests
        ),
        "tags": tags(settings),
        "priority": null,
        "options": {
            "thresholds": { "critical": settings.threshold },
            "notify_no_data": false,
            "require_full_window": false,
            "include_tags": true,
            "new_group_delay": 60,
        }
    })
}

/// The share of the canary's requests on an endpoint that fail, above which it alerts (with
/// the traffic condition) whatever stable does.
const FAILING_SHARE: f64 = 0.5;

fn failing_monitor(settings: &Settings, requests: &str) -> Value {
    let scope = settings.scope();
    let window = settings.window_minutes;
    json!({
        "name": format!("[{}] most canary requests fail on {{{{endpoint.name}}}}", settings.service),
        "type": "query alert",
        "query": format!(
            "sum(last_{window}m):{} / {} > {}",
            count(requests, &scope, "canary", ",status:error"),
            count(requests, &scope, "canary", ""),
            number(FAILING_SHARE)
        ),
        "message": format!(
            "More than half of the canary's requests on {{{{endpoint.name}}}} of {} failed in the \
             last {window} minutes. Part of the composite canary monitor: it catches the endpoint \
             where the canary fails every request, which the difference with stable cannot see.",
            settings.service
        ),
        "tags": tags(settings),
        "priority": null,
        "options": {
            "thresholds": { "critical": FAILING_SHARE },
            "notify_no_data": false,
            "require_full_window": false,
            "include_tags": true,
        }
    })
}

fn traffic_monitor(settings: &Settings, requests: &str) -> Value {
    let window = settings.window_minutes;
    json!({
        "name": format!("[{}] canary traffic on {{{{endpoint.name}}}}", settings.service),
        "type": "query alert",
        "query": format!(
            "sum(last_{window}m):{} >= {}",
            count(requests, &settings.scope(), "canary", ""),
            settings.min_requests
        ),
        "message": format!(
            "The canary served at least {} requests on {{{{endpoint.name}}}} of {} in the last \
             {window} minutes: enough to judge its error rate. Part of the composite canary monitor.",
            settings.min_requests, settings.service
        ),
        "tags": tags(settings),
        "priority": null,
        "options": {
            "thresholds": { "critical": settings.min_requests },
            "notify_no_data": false,
            "require_full_window": false,
            "include_tags": true,
        }
    })
}

fn composite_monitor(settings: &Settings, dashboard_url: &str) -> Value {
    let mut message = format!(
        "{{{{#is_alert}}}}The canary of {service} fails more requests than stable on endpoint \
         {{{{endpoint.name}}}}: its error rate is more than {points} percentage points above \
         stable's, or more than half of its requests fail, with at least {min} canary requests \
         in the last {window} minutes.\n\n\
         Compare the versions per endpoint on the dashboard: {dashboard_url}\n\
         Judge the release: `envoy-dd canary --datadog --query 'service:{service}' --since {window}m`\
         {{{{/is_alert}}}}\n\
         {{{{#is_recovery}}}}The canary of {service} no longer fails more than stable on \
         {{{{endpoint.name}}}}.{{{{/is_recovery}}}}",
        service = settings.service,
        points = number(settings.threshold * 100.0),
        min = settings.min_requests,
        window = settings.window_minutes,
    );
    for who in &settings.notify {
        message.push(' ');
        message.push_str(who);
    }
    json!({
        "name": format!("[{}] canary fails more than stable on {{{{endpoint.name}}}}", settings.service),
        "type": "composite",
        "query": format!("({ERROR_RATE_ID} || {FAILING_ID}) && {TRAFFIC_ID}"),
        "message": message,
        "tags": tags(settings),
        "priority": 2,
        "options": {
            "notify_no_data": false,
            "include_tags": true,
        }
    })
}

fn tags(settings: &Settings) -> Vec<String> {
    let mut tags = vec![
        format!("service:{}", settings.service),
        "source:envoy-dd".to_owned(),
    ];
    if let Some(env) = &settings.env {
        tags.push(format!("env:{env}"));
    }
    tags
}

fn dashboard(settings: &Settings, requests: &str, duration: &str) -> Value {
    let by = tag(settings.version);
    let scope = "$service,$env";
    let errors_by = |group: &str| {
        vec![
            metric_query(
                "ok",
                &format!("sum:{requests}{{{scope},!status:error}} by {{{group}}}.as_count()"),
            ),
            metric_query(
                "all",
                &format!("sum:{requests}{{{scope}}} by {{{group}}}.as_count()"),
            ),
        ]
    };
    let latency_by = |group: &str| {
        vec![
            metric_query("p50", &format!("p50:{duration}{{{scope}}} by {{{group}}}")),
            metric_query("p95", &format!("p95:{duration}{{{scope}}} by {{{group}}}")),
            metric_query("p99", &format!("p99:{duration}{{{scope}}} by {{{group}}}")),
        ]
    };
    let rate = formula("100 * (1 - ok / all)", "error rate (%)");
    let ms = |q: &str| formula(&format!("{q} / 1000000"), &format!("{q} (ms)"));
    let endpoint_by = format!("endpoint,{by}");
    let overall = json!({
        "definition": {
            "type": "group",
            "title": format!("Overall, per {by}"),
            "layout_type": "ordered",
            "widgets": [
                timeseries(&format!("Error rate per {by}"), errors_by(by), vec![rate.clone()]),
                timeseries(
                    &format!("Latency per {by} (ms)"),
                    latency_by(by),
                    vec![ms("p50"), ms("p95"), ms("p99")],
                ),
                timeseries(
                    &format!("Requests per {by}"),
                    vec![metric_query("all", &format!("sum:{requests}{{{scope}}} by {{{by}}}.as_count()"))],
                    vec![formula("all", "requests")],
                ),
            ]
        }
    });
    let per_endpoint = json!({
        "definition": {
            "type": "group",
            "title": format!("Per endpoint and {by}"),
            "layout_type": "ordered",
            "widgets": [
                table(
                    &format!("Error rate and latency per endpoint and {by}"),
                    [errors_by(&endpoint_by), latency_by(&endpoint_by)].concat(),
                    vec![
                        formula("all", "requests"),
                        rate.clone(),
                        ms("p50"),
                        ms("p95"),
                        ms("p99"),
                    ],
                ),
                timeseries(
                    &format!("Error rate per endpoint and {by}"),
                    errors_by(&endpoint_by),
                    vec![rate],
                ),
                timeseries(
                    &format!("p95 latency per endpoint and {by} (ms)"),
                    vec![metric_query("p95", &format!("p95:{duration}{{{scope}}} by {{{endpoint_by}}}"))],
                    vec![ms("p95")],
                ),
            ]
        }
    });
    let note = format!(
        "Envoy access logs of **{service}** enriched by envoy-dd, compared per {by}. Error rate: \
         records whose status is `error` (5xx or an upstream failure). Latency: `@duration`. \
         The canary monitors alert when the canary's error rate on an endpoint is more than {points} \
         percentage points above stable's with at least {min} canary requests in {window} minutes.",
        service = settings.service,
        points = number(settings.threshold * 100.0),
        min = settings.min_requests,
        window = settings.window_minutes,
    );
    json!({
        "title": format!("{} canary: stable vs canary per endpoint", settings.service),
        "description": format!("Error rate and latency of {} per version and endpoint, from the log-based metrics {requests} and {duration}.", settings.service),
        "layout_type": "ordered",
        "template_variables": [
            { "name": "service", "prefix": "service", "default": settings.service },
            { "name": "env", "prefix": "env", "default": settings.env.as_deref().unwrap_or("*") },
        ],
        "widgets": [
            { "definition": { "type": "note", "content": note, "background_color": "white", "show_tick": false } },
            overall,
            per_endpoint,
        ]
    })
}

fn metric_query(name: &str, query: &str) -> Value {
    json!({ "data_source": "metrics", "name": name, "query": query })
}

fn formula(formula: &str, alias: &str) -> Value {
    json!({ "formula": formula, "alias": alias })
}

fn timeseries(title: &str, queries: Vec<Value>, formulas: Vec<Value>) -> Value {
    json!({
        "definition": {
            "type": "timeseries",
            "title": title,
            "show_legend": true,
            "requests": [{
                "response_format": "timeseries",
                "queries": queries,
                "formulas": formulas,
                "display_type": "line",
            }]
        }
    })
}

fn table(title: &str, mut queries: Vec<Value>, formulas: Vec<Value>) -> Value {
    for query in &mut queries {
        // A table shows one number per row: the window's sum of counts, the percentile over
        // the window.
        let aggregator = if query["query"]
            .as_str()
            .is_some_and(|q| q.starts_with("sum:"))
        {
            "sum"
        } else {
            "avg"
        };
        query["aggregator"] = json!(aggregator);
    }
    json!({
        "definition": {
            "type": "query_table",
            "title": title,
            "requests": [{
                "response_format": "scalar",
                "queries": queries,
                "formulas": formulas,
            }]
        }
    })
}

/// A number as Datadog's queries write it: `0.02`, `100`.
fn number(value: f64) -> String {
    format!("{value}")
}

/// `my-api` → `my_api`: a name usable in metric names and Terraform identifiers.
fn slug(name: &str, sep: char) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with(sep) {
            out.push(sep);
        }
    }
    let out = out.trim_matches(sep).to_owned();
    if out.starts_with(|c: char| c.is_ascii_digit()) || out.is_empty() {
        format!("s{sep}{out}")
    } else {
        out
    }
}

impl Generated {
    /// Every request body in one JSON document: `logs_metrics` (v2), `monitors` (the error-rate,
    /// failing and traffic monitors first, then the composite whose `query` names them by id) and
    /// `dashboard` (v1), plus `notes` on what to replace.
    pub fn to_json(&self) -> Value {
        let mut notes = vec![Value::from(format!(
            "Create the monitors in order and replace {ERROR_RATE_ID}, {FAILING_ID} and {TRAFFIC_ID} in the composite's query with the ids Datadog returns."
        ))];
        if self.dashboard_link.is_none() {
            notes.push(Value::from(format!(
                "Create the dashboard first and replace {DASHBOARD_URL} in the composite's message with its address ({}/dashboard/...), or generate with --dashboard-url.",
                self.app_url
            )));
        }
        json!({
            "logs_metrics": self.logs_metrics,
            "monitors": [
                self.error_rate_monitor,
                self.failing_monitor,
                self.traffic_monitor,
                self.composite_monitor
            ],
            "dashboard": self.dashboard,
            "notes": notes,
        })
    }

    /// Terraform (HCL) for the Datadog provider: `datadog_logs_metric`, `datadog_monitor_json`
    /// and `datadog_dashboard_json` resources, the composite wired to the other monitors'
    /// ids and its message to the dashboard's URL.
    pub fn to_terraform(&self) -> String {
        let name = &self.name;
        let mut out = String::from(
            "# Generated by envoy-dd datadog config. Needs the Datadog provider (DataDog/datadog).\n",
        );
        for (metric, suffix) in self.logs_metrics.iter().zip(["requests", "duration"]) {
            out.push_str(&logs_metric_hcl(&format!("{name}_{suffix}"), metric));
        }
        let dashboard_ref = format!(
            "{}${{datadog_dashboard_json.{name}_canary.url}}",
            self.app_url
        );
        let refs = [
            (
                ERROR_RATE_ID,
                format!("${{datadog_monitor_json.{name}_canary_error_rate.id}}"),
            ),
            (
                TRAFFIC_ID,
                format!("${{datadog_monitor_json.{name}_canary_traffic.id}}"),
            ),
            (
                FAILING_ID,
                format!("${{datadog_monitor_json.{name}_canary_failing.id}}"),
            ),
            (DASHBOARD_URL, dashboard_ref),
        ];
        for (resource, monitor) in [
            ("canary_error_rate", &self.error_rate_monitor),
            ("canary_failing", &self.failing_monitor),
            ("canary_traffic", &self.traffic_monitor),
            ("canary", &self.composite_monitor),
        ] {
            out.push_str(&format!(
                "\nresource \"datadog_monitor_json\" \"{name}_{resource}\" {{\n  monitor = {}\n}}\n",
                heredoc(monitor, &refs)
            ));
        }
        out.push_str(&format!(
            "\nresource \"datadog_dashboard_json\" \"{name}_canary\" {{\n  dashboard = {}\n}}\n",
            heredoc(&self.dashboard, &refs)
        ));
        out
    }
}

/// A JSON value as a Terraform heredoc. Terraform interpolates `${` and `%{` in heredocs, so
/// they are escaped (`$${`, `%%{`) except in the `refs`, which become Terraform references.
fn heredoc(value: &Value, refs: &[(&str, String)]) -> String {
    let text = serde_json::to_string_pretty(value).expect("a JSON value serialises");
    let mut text = text.replace("${", "$${").replace("%{", "%%{");
    for (placeholder, reference) in refs {
        text = text.replace(&placeholder.replace("${", "$${"), reference);
    }
    format!("<<-EOT\n{text}\n  EOT")
}

fn logs_metric_hcl(resource: &str, metric: &Value) -> String {
    let data = &metric["data"];
    let attributes = &data["attributes"];
    let mut out = format!(
        "\nresource \"datadog_logs_metric\" \"{resource}\" {{\n  name = {}\n  compute {{\n",
        hcl_string(&data["id"])
    );
    if let Value::Object(compute) = &attributes["compute"] {
        for (key, value) in compute {
            out.push_str(&format!("    {key} = {}\n", hcl_value(value)));
        }
    }
    out.push_str(&format!(
        "  }}\n  filter {{\n    query = {}\n  }}\n",
        hcl_string(&attributes["filter"]["query"])
    ));
    for group in attributes["group_by"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  group_by {{\n    path     = {}\n    tag_name = {}\n  }}\n",
            hcl_string(&group["path"]),
            hcl_string(&group["tag_name"])
        ));
    }
    out.push_str("}\n");
    out
}

fn hcl_value(value: &Value) -> String {
    match value {
        Value::String(_) => hcl_string(value),
        other => other.to_string(),
    }
}

/// A string as an HCL quoted literal: JSON's escapes, plus Terraform's `${` and `%{`.
fn hcl_string(value: &Value) -> String {
    let text = value.as_str().unwrap_or_default();
    serde_json::to_string(text)
        .expect("a string serialises")
        .replace("${", "$${")
        .replace("%{", "%%{")
}
