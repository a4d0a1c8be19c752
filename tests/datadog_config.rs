//! `envoy-dd datadog config`: every generated dashboard and monitor validates against Datadog's
//! OpenAPI description of API v1 (`../shared/datadog/openapi-v1.yaml`, Datadog's own file), and
//! every log-based metric against the documented v2 shape (fixtures/datadog/v2-schemas.json);
//! the Terraform output carries the same JSON.
//!
//! The OpenAPI file is not in this repository. Without it these checks are skipped with a
//! message, except in CI (`CI` set), where a missing file fails.
#![cfg(feature = "datadog")]

mod schemas;

use std::process::Command;

use envoy_dd::datadog::config::{generate, Generated, Settings};
use envoy_dd::datadog::{By, Site};
use schemas::{v1_validator, v2_validator};
use serde_json::Value;

/// Configurations that exercise every option.
fn variants() -> Vec<Settings> {
    let mut full = Settings::new("checkout-api");
    full.env = Some("prod".into());
    full.query = Some("container_name:envoy".into());
    full.version = By::Hash;
    full.threshold = 0.005;
    full.min_requests = 250;
    full.window_minutes = 60;
    full.notify = vec!["@slack-releases".into(), "@pagerduty-api".into()];
    full.dashboard_url = Some("https://app.datadoghq.eu/dashboard/abc-def-ghi".into());
    full.site = Site::parse("datadoghq.eu").unwrap();
    let mut revision = Settings::new("api");
    revision.version = By::Revision;
    revision.metric_prefix = Some("releases.api".into());
    vec![Settings::new("api"), full, revision]
}

fn monitors(generated: &Generated) -> [&Value; 4] {
    [
        &generated.error_rate_monitor,
        &generated.failing_monitor,
        &generated.traffic_monitor,
        &generated.composite_monitor,
    ]
}

#[test]
fn dashboards_and_monitors_validate_against_datadogs_v1_schema() {
    let Some(v1) = v1_validator() else { return };
    for settings in variants() {
        let generated = generate(&settings);
        v1.dashboard.check(&generated.dashboard, "dashboard");
        for monitor in monitors(&generated) {
            v1.monitor.check(monitor, "monitor");
        }
    }
}

#[test]
fn the_schema_check_can_fail() {
    // The validator rejects what Datadog would: a misspelt field, a wrong type, a missing
    // required field, an unknown widget type.
    let Some(v1) = v1_validator() else { return };
    let generated = generate(&Settings::new("api"));
    let mut monitor = generated.error_rate_monitor.clone();
    monitor["thresholds"] = serde_json::json!({ "critical": 1 });
    assert!(
        !v1.monitor.is_valid(&monitor),
        "an unknown top-level monitor field passed"
    );
    let mut monitor = generated.traffic_monitor.clone();
    monitor["type"] = "query-alert".into();
    assert!(
        !v1.monitor.is_valid(&monitor),
        "an unknown monitor type passed"
    );
    let mut dashboard = generated.dashboard.clone();
    dashboard.as_object_mut().unwrap().remove("layout_type");
    assert!(
        !v1.dashboard.is_valid(&dashboard),
        "a dashboard without layout_type passed"
    );
    let mut dashboard = generated.dashboard.clone();
    dashboard["widgets"][1]["definition"]["widgets"][0]["definition"]["requests"][0]["queries"]
        [0]["data_source"] = "metric".into();
    assert!(
        !v1.dashboard.is_valid(&dashboard),
        "a wrong data_source passed"
    );
    let mut dashboard = generated.dashboard.clone();
    dashboard["widgets"][1]["definition"]["widgets"][0]["definition"]["requests"][0]
        ["display_typ"] = "line".into();
    assert!(
        !v1.dashboard.is_valid(&dashboard),
        "a misspelt field deep in a widget passed"
    );
    let mut monitor = generated.composite_monitor.clone();
    monitor["options"]["notify_no_dat"] = false.into();
    assert!(
        !v1.monitor.is_valid(&monitor),
        "a misspelt monitor option passed"
    );
}

#[test]
fn log_based_metrics_match_the_v2_shape_and_never_group_by_path() {
    let v2 = v2_validator();
    for settings in variants() {
        let generated = generate(&settings);
        assert_eq!(generated.logs_metrics.len(), 2);
        for metric in &generated.logs_metrics {
            v2.check("LogsMetricCreateRequest", metric);
            let groups = metric["data"]["attributes"]["group_by"].as_array().unwrap();
            let paths: Vec<&str> = groups.iter().map(|g| g["path"].as_str().unwrap()).collect();
            assert!(
                paths.contains(&"@http.endpoint")
                    && paths.contains(&"@phase")
                    && paths.contains(&"status")
            );
            assert!(
                !paths
                    .iter()
                    .any(|p| p.contains("url") || p.contains("path")),
                "{paths:?}"
            );
        }
        let [count, distribution] = [&generated.logs_metrics[0], &generated.logs_metrics[1]];
        assert_eq!(
            count["data"]["attributes"]["compute"]["aggregation_type"],
            "count"
        );
        assert_eq!(
            distribution["data"]["attributes"]["compute"]["path"],
            "@duration"
        );
    }
}

#[test]
fn monitors_compare_canary_with_stable_per_endpoint_with_a_traffic_floor() {
    let mut settings = Settings::new("api");
    settings.env = Some("prod".into());
    let generated = generate(&settings);
    let error_rate = generated.error_rate_monitor["query"].as_str().unwrap();
    assert!(error_rate.starts_with("sum(last_30m):("), "{error_rate}");
    assert!(error_rate.ends_with("> 0.02"), "{error_rate}");
    for needle in [
        "phase:canary",
        "phase:stable",
        "by {endpoint}",
        "service:api,env:prod",
        "!status:error",
    ] {
        assert!(
            error_rate.contains(needle),
            "{needle} missing from {error_rate}"
        );
    }
    assert_eq!(
        generated.error_rate_monitor["options"]["thresholds"]["critical"],
        0.02
    );
    let traffic = generated.traffic_monitor["query"].as_str().unwrap();
    assert!(
        traffic.ends_with(">= 100") && traffic.contains("phase:canary"),
        "{traffic}"
    );
    assert_eq!(
        generated.traffic_monitor["options"]["thresholds"]["critical"],
        100
    );
    let failing = generated.failing_monitor["query"].as_str().unwrap();
    assert!(
        failing.ends_with("> 0.5") && failing.contains("phase:canary,status:error} by {endpoint}"),
        "{failing}"
    );
    let composite = &generated.composite_monitor;
    assert_eq!(composite["type"], "composite");
    assert_eq!(
        composite["query"],
        "(${error_rate_monitor.id} || ${failing_monitor.id}) && ${traffic_monitor.id}"
    );
    let message = composite["message"].as_str().unwrap();
    assert!(
        message.contains("{{endpoint.name}}") && message.contains("${dashboard.url}"),
        "{message}"
    );
}

#[test]
fn the_dashboard_has_service_and_env_variables_and_both_views() {
    let generated = generate(&Settings::new("api"));
    let dashboard = &generated.dashboard;
    let variables: Vec<&str> = dashboard["template_variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(variables, ["service", "env"]);
    let text = dashboard.to_string();
    for needle in [
        "by {phase}",
        "by {endpoint,phase}",
        "p95:envoy_dd.api.duration{$service,$env}",
        "sum:envoy_dd.api.requests{$service,$env,!status:error}",
    ] {
        assert!(text.contains(needle), "{needle} missing");
    }
}

/// The JSON inside each Terraform heredoc, with Terraform's references replaced by sample
/// values and its escapes undone.
fn heredocs(terraform: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut rest = terraform;
    while let Some(start) = rest.find("resource \"datadog_") {
        rest = &rest[start + "resource \"".len()..];
        let kind = rest[..rest.find('"').unwrap()].to_owned();
        let Some(open) = rest.find("<<-EOT\n") else {
            break;
        };
        if rest[..open].contains("resource \"") {
            continue;
        }
        let body_start = open + "<<-EOT\n".len();
        let end = rest[body_start..].find("\n  EOT").unwrap() + body_start;
        let body = &rest[body_start..end];
        let mut text = String::new();
        let mut chars = body;
        while let Some(at) = chars.find("${") {
            let escaped = at > 0 && chars.as_bytes()[at - 1] == b'$';
            if escaped {
                text.push_str(&chars[..at - 1]);
                text.push_str("${");
                chars = &chars[at + 2..];
            } else {
                text.push_str(&chars[..at]);
                let close = chars[at..].find('}').unwrap() + at;
                let reference = &chars[at + 2..close];
                assert!(
                    reference.starts_with("datadog_"),
                    "unexpected reference {reference}"
                );
                text.push_str(if reference.ends_with(".url") {
                    "/dashboard/abc-def-ghi/api"
                } else {
                    "123456"
                });
                chars = &chars[close + 1..];
            }
        }
        text.push_str(chars);
        let text = text.replace("%%{", "%{");
        out.push((
            kind,
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
        ));
        rest = &rest[end..];
    }
    out
}

#[test]
fn terraform_wires_the_composite_and_the_dashboard_link() {
    let mut settings = Settings::new("api");
    settings.env = Some("prod".into());
    let terraform = generate(&settings).to_terraform();
    for needle in [
        "resource \"datadog_logs_metric\" \"api_requests\"",
        "resource \"datadog_logs_metric\" \"api_duration\"",
        "aggregation_type = \"distribution\"",
        "include_percentiles = true",
        "resource \"datadog_monitor_json\" \"api_canary\"",
        "\"query\": \"(${datadog_monitor_json.api_canary_error_rate.id} || ${datadog_monitor_json.api_canary_failing.id}) && ${datadog_monitor_json.api_canary_traffic.id}\"",
        "https://app.datadoghq.com${datadog_dashboard_json.api_canary.url}",
        "resource \"datadog_dashboard_json\" \"api_canary\"",
    ] {
        assert!(terraform.contains(needle), "{needle} missing from\n{terraform}");
    }
    // Dashboard template variables stay Datadog's: `$service` is not a Terraform reference.
    assert!(terraform.contains("{$service,$env}"));
    let docs = heredocs(&terraform);
    assert_eq!(
        docs.iter()
            .filter(|(k, _)| k == "datadog_monitor_json")
            .count(),
        4
    );
    assert_eq!(
        docs.iter()
            .filter(|(k, _)| k == "datadog_dashboard_json")
            .count(),
        1
    );
    if let Some(v1) = v1_validator() {
        for (kind, doc) in &docs {
            if kind == "datadog_monitor_json" {
                v1.monitor.check(doc, "Terraform monitor");
            } else {
                v1.dashboard.check(doc, "Terraform dashboard");
            }
        }
    }
}

#[test]
fn the_command_writes_json_and_terraform() {
    let bin = env!("CARGO_BIN_EXE_envoy-dd");
    let run = |args: &[&str]| {
        let out = Command::new(bin)
            .args(args)
            .env_remove("DD_SITE")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (code, json, _) = run(&[
        "datadog",
        "config",
        "--service",
        "api",
        "--env",
        "prod",
        "--threshold",
        "1%",
    ]);
    assert_eq!(code, Some(0));
    let json: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["monitors"].as_array().unwrap().len(), 4);
    assert!(json["monitors"][0]["query"]
        .as_str()
        .unwrap()
        .ends_with("> 0.01"));
    let (code, terraform, _) = run(&[
        "datadog",
        "config",
        "--service=api",
        "--format",
        "terraform",
    ]);
    assert_eq!(code, Some(0));
    assert!(terraform.contains("resource \"datadog_dashboard_json\""));
    let (code, _, err) = run(&["datadog", "config"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("needs --service"), "{err}");
    let (code, _, err) = run(&[
        "datadog",
        "config",
        "--service",
        "api",
        "--threshold",
        "150%",
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--threshold"), "{err}");
}
