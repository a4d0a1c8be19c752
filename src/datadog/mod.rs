//! Datadog as the engine at scale: the configuration that keeps a canary comparison alive in
//! Datadog ([`config`]), and the counts the canary judge needs, read from Datadog's Logs
//! Aggregate API instead of files ([`aggregate`]).
//!
//! Everything here speaks the JSON of Datadog's public API (v1 dashboards and monitors, v2
//! log-based metrics and log aggregation) and reads the records this crate writes: `phase`,
//! `hash`, `http.endpoint`, `status` and `duration` (nanoseconds).
//!
//! ```
//! use envoy_dd::canary::input::By;
//! use envoy_dd::datadog::{facet, label, Site};
//!
//! let site = Site::parse("datadoghq.eu").unwrap();
//! assert_eq!(site.api_url(), "https://api.datadoghq.eu");
//! assert_eq!(site.app_url(), "https://app.datadoghq.eu");
//! assert_eq!(facet(By::Revision), "@ecs_task_definition");
//! assert_eq!(label(By::Revision, "api-canary:42").as_deref(), Some("42"));
//! ```

pub mod aggregate;
mod client;
pub mod config;

pub use client::{Client, Credentials, Error, RetryPolicy};

use std::fmt;

pub use crate::canary::input::By;

/// The log facet of a version label: `@phase`, `@hash`, `@ecs_task_definition`.
pub fn facet(by: By) -> &'static str {
    match by {
        By::Phase => "@phase",
        By::Hash => "@hash",
        By::Revision => "@ecs_task_definition",
    }
}

/// The metric tag a log-based metric gives a version label: `phase`, `hash`,
/// `task_definition`.
pub fn tag(by: By) -> &'static str {
    match by {
        By::Phase => "phase",
        By::Hash => "hash",
        By::Revision => "task_definition",
    }
}

/// The label a value of [`facet`] stands for: the revision of a task definition
/// (`api-canary:42` is `42`, as the records' reader counts it); the value itself otherwise.
pub fn label(by: By, value: &str) -> Option<String> {
    match by {
        By::Revision => {
            let revision = value.rsplit_once(':')?.1;
            revision.parse::<u64>().ok().map(|r| r.to_string())
        }
        _ => Some(value.to_owned()),
    }
}

/// A Datadog site (`DD_SITE`): where the API and the web app live.
///
/// `datadoghq.com` (the default), `datadoghq.eu`, `us3.datadoghq.com`, `ddog-gov.com`, ... as
/// Datadog's own tools take them. A full URL (`https://proxy.internal:8443`) is taken as the
/// API's address, for a proxy; plain `http://` only for a loopback address, so that keys never
/// cross a network in clear.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    api: String,
    app: String,
}

/// Why a `DD_SITE` value was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteError(String);

impl fmt::Display for SiteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SiteError {}

impl Default for Site {
    fn default() -> Site {
        Site::parse("datadoghq.com").expect("the default site is valid")
    }
}

impl Site {
    /// Reads a site name or an API URL.
    pub fn parse(site: &str) -> Result<Site, SiteError> {
        let site = site.trim().trim_end_matches('/');
        if let Some(rest) = site.strip_prefix("http://") {
            let host = rest.split(['/', ':']).next().unwrap_or("");
            let host = if rest.starts_with('[') {
                rest.split(']').next().unwrap_or("").trim_start_matches('[')
            } else {
                host
            };
            let loopback = host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                return Err(SiteError(format!(
                    "DD_SITE '{site}': plain http is only for a loopback address; use https"
                )));
            }
            return Ok(Site {
                api: site.to_owned(),
                app: site.to_owned(),
            });
        }
        if site.starts_with("https://") {
            return Ok(Site {
                api: site.to_owned(),
                app: site.to_owned(),
            });
        }
        let valid = !site.is_empty()
            && site.contains('.')
            && site
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !valid {
            return Err(SiteError(format!(
                "DD_SITE '{site}' is not a Datadog site such as datadoghq.com or datadoghq.eu"
            )));
        }
        // us3.datadoghq.com serves its app at us3.datadoghq.com; the first sites at app.<site>.
        let regional = site.matches('.').count() >= 2;
        let app = if regional {
            format!("https://{site}")
        } else {
            format!("https://app.{site}")
        };
        Ok(Site {
            api: format!("https://api.{site}"),
            app,
        })
    }

    /// The API's base URL, without a final `/`.
    pub fn api_url(&self) -> &str {
        &self.api
    }

    /// The web app's base URL (dashboard links), without a final `/`.
    pub fn app_url(&self) -> &str {
        &self.app
    }
}
