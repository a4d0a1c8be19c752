//! The Datadog client and the aggregate queries against a local server on 127.0.0.1 that
//! answers as Datadog's Logs Aggregate API documents: buckets over pages, 429 with its
//! rate-limit headers, 5xx, slow and cut-short answers, 403, and a site that is not there.
#![cfg(feature = "datadog")]

mod release;
mod schemas;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use envoy_dd::datadog::aggregate::{self, Query, Window, MISSING};
use envoy_dd::datadog::{By, Client, Credentials, Error, RetryPolicy, Site};
use serde_json::{json, Value};

const API_KEY: &str = "0123456789abcdef0123456789abcdef";
const APP_KEY: &str = "fedcba9876543210fedcba9876543210fedcba98";

/// One request as the server saw it.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    headers: BTreeMap<String, String>,
    body: Value,
}

/// What the server does with a request.
enum Reply {
    /// A status, extra headers and a JSON body.
    Json(u16, Vec<(&'static str, String)>, Value),
    /// The same, after a pause.
    Slow(Duration, Value),
    /// Headers announcing more bytes than are sent, then the connection closes.
    Truncated(Value),
}

type Script = dyn Fn(&Seen, usize) -> Reply + Send + Sync;

/// A one-thread HTTP/1.1 server on 127.0.0.1 that answers every request with `script` (given
/// the request and its index) and records the requests.
struct Server {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn start(script: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let script: Arc<Script> = Arc::new(script);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (log, script) = (Arc::clone(&log), Arc::clone(&script));
                // One thread per connection, so that a slow answer does not hold up a retry.
                thread::spawn(move || serve(stream, &log, &*script));
            }
        });
        Server { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn client(&self, policy: RetryPolicy) -> Client {
        Client::new(
            Site::parse(&self.url).unwrap(),
            Credentials::new(API_KEY, APP_KEY),
            policy,
        )
    }
}

fn serve(stream: TcpStream, log: &Mutex<Vec<Seen>>, script: &Script) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let path = line.split(' ').nth(1).unwrap_or("").to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap();
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers
        .get("content-length")
        .map_or(0, |l| l.parse().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let seen = Seen {
        path,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    let index = {
        let mut log = log.lock().unwrap();
        log.push(seen.clone());
        log.len() - 1
    };
    let mut stream = stream;
    let (status, extra, body, cut) = match script(&seen, index) {
        Reply::Json(status, extra, body) => (status, extra, body.to_string(), false),
        Reply::Slow(pause, body) => {
            thread::sleep(pause);
            (200, Vec::new(), body.to_string(), false)
        }
        Reply::Truncated(body) => (200, Vec::new(), body.to_string(), true),
    };
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n",
        reason(status),
        if cut { body.len() * 2 } else { body.len() }
    );
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let body = if cut {
        &body[..body.len() / 2]
    } else {
        &body[..]
    };
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
    let _ = stream.flush();
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        403 => "Forbidden",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// A fast policy for tests: short backoffs; time-outs long enough for a busy test machine.
fn quick() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        backoff: Duration::from_millis(10),
        max_wait: Duration::from_millis(1500),
        deadline: Duration::from_secs(60),
        timeout: Duration::from_secs(8),
    }
}

/// [`quick`] with a time-out of one second, for the server that answers after [`SLOW`].
fn impatient() -> RetryPolicy {
    RetryPolicy {
        timeout: Duration::from_secs(1),
        ..quick()
    }
}

/// How long the slow server takes to answer.
const SLOW: Duration = Duration::from_secs(4);

fn query() -> Query {
    Query::new("service:api env:prod", Window::since_minutes(30), By::Phase)
}

/// A service with `endpoints` endpoints: stable serves 1,000 requests on each, the canary 50,
/// and endpoint 7 of the canary fails 20 of them; stable fails 1 in 500 everywhere.
struct Service {
    endpoints: usize,
}

impl Service {
    fn endpoint(i: usize) -> String {
        format!("GET /api/v1/resource{i}/{{param:int}}")
    }

    fn counts(&self, version: &str, endpoint: usize) -> (u64, u64) {
        match version {
            "stable" => (1000, 2),
            _ if endpoint == 7 => (50, 20),
            _ => (50, 0),
        }
    }

    /// The buckets Datadog would compute for an aggregate request body.
    fn buckets(&self, body: &Value) -> Vec<Value> {
        let errors = body["filter"]["query"]
            .as_str()
            .unwrap()
            .ends_with("status:error");
        let by_endpoint = body["group_by"].as_array().unwrap().len() == 2;
        let computes = |requests: u64, errors_n: u64, scale: f64| {
            let mut c = serde_json::Map::new();
            c.insert("c0".into(), json!(if errors { errors_n } else { requests }));
            if !errors {
                for (i, p) in [0.2, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 9.0].iter().enumerate() {
                    c.insert(format!("c{}", i + 1), json!(p * scale * 1e6));
                }
            }
            Value::Object(c)
        };
        let mut buckets = Vec::new();
        for version in ["stable", "canary"] {
            if by_endpoint {
                for e in 0..self.endpoints {
                    let (requests, errors_n) = self.counts(version, e);
                    if errors && errors_n == 0 {
                        continue; // Datadog has no bucket for a group without records.
                    }
                    buckets.push(json!({
                        "by": { "@phase": version, "@http.endpoint": Self::endpoint(e) },
                        "computes": computes(requests, errors_n, 10.0 + e as f64),
                    }));
                }
            } else {
                let (requests, errors_n) = (0..self.endpoints)
                    .map(|e| self.counts(version, e))
                    .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
                buckets.push(json!({ "by": { "@phase": version }, "computes": computes(requests, errors_n, 12.0) }));
            }
        }
        if !errors && by_endpoint {
            // Records without an endpoint label.
            buckets.push(json!({ "by": { "@phase": "stable", "@http.endpoint": MISSING }, "computes": computes(3, 0, 1.0) }));
        }
        buckets
    }

    /// The answer to `body`, `page_size` buckets a page, with Datadog's cursor.
    fn answer(&self, body: &Value, page_size: usize) -> Value {
        let buckets = self.buckets(body);
        let start: usize = body["page"]["cursor"]
            .as_str()
            .map_or(0, |c| c.trim_start_matches("cursor-").parse().unwrap());
        let end = (start + page_size).min(buckets.len());
        let mut meta = json!({ "elapsed": 42, "request_id": "pddv1ChZ", "status": "done" });
        if end < buckets.len() {
            meta["page"] = json!({ "after": format!("cursor-{end}") });
        }
        json!({ "data": { "buckets": buckets[start..end] }, "meta": meta })
    }
}

#[test]
fn two_hundred_endpoints_over_thirty_minutes_take_a_bounded_number_of_calls() {
    let service = Arc::new(Service { endpoints: 200 });
    let answers = Arc::clone(&service);
    let server =
        Server::start(move |seen, _| Reply::Json(200, Vec::new(), answers.answer(&seen.body, 250)));
    let client = server.client(quick());
    let tallies = aggregate::fetch(&client, &query()).unwrap();

    // Overall: one call. Per endpoint: 401 buckets in pages of 250, two calls. Errors: 202
    // buckets, one call.
    assert_eq!(client.calls(), 4);
    assert_eq!(server.seen().len(), 4);
    assert_eq!(tallies.endpoints.len(), 201);
    let canary7 = &tallies.endpoints[&Service::endpoint(7)]["canary"];
    assert_eq!((canary7.requests, canary7.errors), (50, 20));
    assert_eq!(canary7.latency.p95, Some(2.5 * 17.0 * 1e6));
    let stable3 = &tallies.endpoints[&Service::endpoint(3)]["stable"];
    assert_eq!((stable3.requests, stable3.errors), (1000, 2));
    assert_eq!(tallies.endpoints[&Service::endpoint(3)]["canary"].errors, 0);
    assert_eq!(tallies.endpoints[MISSING]["stable"].requests, 3);
    assert_eq!(
        (
            tallies.versions["stable"].requests,
            tallies.versions["stable"].errors
        ),
        (200_000, 400)
    );
    assert_eq!(
        (
            tallies.versions["canary"].requests,
            tallies.versions["canary"].errors
        ),
        (10_000, 20)
    );
    assert!(tallies.warnings.is_empty(), "{:?}", tallies.warnings);

    // Every request is a documented aggregate request with the keys in Datadog's headers.
    let v2 = schemas::v2_validator();
    for seen in server.seen() {
        assert_eq!(seen.path, "/api/v2/logs/analytics/aggregate");
        assert_eq!(seen.headers["dd-api-key"], API_KEY);
        assert_eq!(seen.headers["dd-application-key"], APP_KEY);
        assert_eq!(seen.headers["content-type"], "application/json");
        v2.check("LogsAggregateRequest", &seen.body);
        assert_eq!(seen.body["filter"]["from"], "now-30m");
        assert_eq!(seen.body["filter"]["to"], "now");
        let limits: u64 = seen.body["group_by"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["limit"].as_u64().unwrap())
            .product();
        assert!(
            limits <= 10_000,
            "Datadog allows at most 10,000 buckets per query"
        );
    }
    assert_eq!(server.seen()[2].body["page"]["cursor"], "cursor-250");
    // And what the server answered, which the client parsed, is a documented answer.
    let response = v2.schema("LogsAggregateResponse");
    for seen in server.seen() {
        response.check(&service.answer(&seen.body, 250), "LogsAggregateResponse");
    }
}

#[test]
fn a_whole_page_of_one_thousand_endpoints_is_three_calls() {
    let service = Arc::new(Service { endpoints: 1000 });
    let server = Server::start(move |seen, _| {
        Reply::Json(200, Vec::new(), service.answer(&seen.body, 10_000))
    });
    let client = server.client(quick());
    let tallies = aggregate::fetch(&client, &query()).unwrap();
    assert_eq!(client.calls(), 3);
    assert_eq!(tallies.endpoints.len(), 1001);
}

/// A server that answers `first` to the first `n` requests and then as Datadog would.
fn failing_first(n: usize, first: impl Fn() -> Reply + Send + Sync + 'static) -> Server {
    let service = Service { endpoints: 3 };
    Server::start(move |seen, i| {
        if i < n {
            first()
        } else {
            Reply::Json(200, Vec::new(), service.answer(&seen.body, 1000))
        }
    })
}

#[test]
fn rate_limits_wait_for_the_reset_the_headers_give() {
    let server = failing_first(1, || {
        Reply::Json(
            429,
            vec![
                ("X-RateLimit-Limit", "300".into()),
                ("X-RateLimit-Period", "3600".into()),
                ("X-RateLimit-Remaining", "0".into()),
                ("X-RateLimit-Reset", "1".into()),
                ("X-RateLimit-Name", "logs_aggregate".into()),
            ],
            json!({ "errors": ["Too many requests"] }),
        )
    });
    let client = server.client(quick());
    let started = std::time::Instant::now();
    let tallies = aggregate::fetch(&client, &query()).unwrap();
    assert_eq!(client.calls(), 4, "one retry of the rate-limited call");
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "the reset was not waited for"
    );
    assert_eq!(tallies.endpoints.len(), 4);
}

#[test]
fn a_rate_limit_that_persists_gives_up_after_the_allowed_attempts() {
    let server = Server::start(|_, _| {
        Reply::Json(
            429,
            vec![("X-RateLimit-Reset", "0".into())],
            json!({ "errors": ["Too many requests"] }),
        )
    });
    let client = server.client(quick());
    let error = aggregate::fetch(&client, &query()).unwrap_err();
    assert!(
        matches!(
            error,
            Error::GaveUp {
                status: 429,
                attempts: 3
            }
        ),
        "{error:?}"
    );
    assert_eq!(server.seen().len(), 3);
    assert!(error.to_string().contains("rate limit"), "{error}");
}

#[test]
fn a_rate_limit_resetting_beyond_the_longest_wait_stops_at_once() {
    let server = Server::start(|_, _| {
        Reply::Json(
            429,
            vec![("X-RateLimit-Reset", "1800".into())],
            json!({ "errors": ["Too many requests"] }),
        )
    });
    let error = aggregate::fetch(&server.client(quick()), &query()).unwrap_err();
    assert!(matches!(error, Error::RateLimited { .. }), "{error:?}");
    assert_eq!(server.seen().len(), 1);
    assert!(error.to_string().contains("1800 s"), "{error}");
}

#[test]
fn server_errors_are_retried_with_backoff_then_reported() {
    let server = failing_first(2, || {
        Reply::Json(
            500,
            Vec::new(),
            json!({ "errors": ["Internal Server Error"] }),
        )
    });
    let client = server.client(quick());
    assert!(aggregate::fetch(&client, &query()).is_ok());
    assert_eq!(client.calls(), 5, "two retries of the first call");

    let server = Server::start(|_, _| {
        Reply::Json(
            503,
            Vec::new(),
            json!({ "errors": ["Service Unavailable"] }),
        )
    });
    let client = server.client(quick());
    let error = aggregate::fetch(&client, &query()).unwrap_err();
    assert!(
        matches!(
            error,
            Error::GaveUp {
                status: 503,
                attempts: 3
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("503"), "{error}");
}

#[test]
fn slow_answers_time_out_and_are_retried() {
    let server = failing_first(1, || {
        Reply::Slow(SLOW, json!({ "data": { "buckets": [] } }))
    });
    let client = server.client(impatient());
    let tallies = aggregate::fetch(&client, &query()).unwrap();
    assert_eq!(client.calls(), 4);
    assert_eq!(tallies.versions.len(), 2);

    let server = Server::start(|_, _| Reply::Slow(SLOW, json!({})));
    let client = server.client(impatient());
    let error = aggregate::fetch(&client, &query()).unwrap_err();
    assert!(
        matches!(error, Error::TimedOut { attempts: 3 }),
        "{error:?}"
    );
}

#[test]
fn answers_cut_short_are_asked_again() {
    let service = Service { endpoints: 3 };
    let server = Server::start(move |seen, i| {
        let answer = service.answer(&seen.body, 1000);
        if i == 0 {
            Reply::Truncated(answer)
        } else {
            Reply::Json(200, Vec::new(), answer)
        }
    });
    let client = server.client(quick());
    let tallies = aggregate::fetch(&client, &query()).unwrap();
    assert_eq!(client.calls(), 4);
    assert_eq!(tallies.versions["stable"].requests, 3000);

    let server = Server::start(|_, _| {
        Reply::Truncated(json!({ "data": { "buckets": [] }, "meta": { "status": "done" } }))
    });
    let error = aggregate::fetch(&server.client(quick()), &query()).unwrap_err();
    assert!(error.to_string().contains("cut short"), "{error}");
}

#[test]
fn forbidden_is_not_retried_and_says_which_scope() {
    let server =
        Server::start(|_, _| Reply::Json(403, Vec::new(), json!({ "errors": ["Forbidden"] })));
    let client = server.client(quick());
    let error = aggregate::fetch(&client, &query()).unwrap_err();
    assert!(
        matches!(error, Error::Forbidden { status: 403, .. }),
        "{error:?}"
    );
    assert_eq!(client.calls(), 1);
    let message = error.to_string();
    assert!(
        message.contains("logs_read_data") && message.contains("Forbidden"),
        "{message}"
    );
    assert!(!message.contains(API_KEY) && !message.contains(APP_KEY));
    assert!(
        !format!("{client:?}").contains(API_KEY),
        "Debug shows a key"
    );
}

#[test]
fn a_bad_request_is_reported_with_datadogs_errors() {
    let server = Server::start(|_, _| {
        Reply::Json(
            400,
            Vec::new(),
            json!({ "errors": ["invalid query: unbalanced parenthesis"] }),
        )
    });
    let error = aggregate::fetch(&server.client(quick()), &query()).unwrap_err();
    assert!(
        error.to_string().contains("unbalanced parenthesis"),
        "{error}"
    );
}

#[test]
fn redirects_are_not_followed_so_the_keys_stay_with_the_site() {
    let elsewhere = Server::start(|_, _| Reply::Json(200, Vec::new(), json!({})));
    let to = format!("{}/api/v2/logs/analytics/aggregate", elsewhere.url);
    let server =
        Server::start(move |_, _| Reply::Json(302, vec![("Location", to.clone())], json!({})));
    let error = aggregate::fetch(&server.client(quick()), &query()).unwrap_err();
    assert!(
        matches!(error, Error::Rejected { status: 302, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("DD_SITE"), "{error}");
    assert_eq!(server.seen().len(), 1);
    assert!(
        elsewhere.seen().is_empty(),
        "the keys went to the redirect's address"
    );
}

#[test]
fn a_site_without_a_name_or_with_the_wrong_certificate_is_not_retried() {
    // `.invalid` never resolves (RFC 2606).
    let site = Site::parse("datadoghq.invalid").unwrap();
    let client = Client::new(site, Credentials::new(API_KEY, APP_KEY), quick());
    let error = aggregate::fetch(&client, &query()).unwrap_err();
    assert!(matches!(error, Error::Unreachable { .. }), "{error:?}");
    assert_eq!(client.calls(), 1);
    // TLS to a server that answers in plain HTTP: the handshake fails.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            thread::sleep(Duration::from_millis(200));
        }
    });
    let site = Site::parse(&format!("https://{address}")).unwrap();
    let client = Client::new(site, Credentials::new(API_KEY, APP_KEY), quick());
    let error = aggregate::fetch(&client, &query()).unwrap_err();
    assert!(matches!(error, Error::Unreachable { .. }), "{error:?}");
    assert_eq!(client.calls(), 1);
}

#[test]
fn a_site_that_does_not_answer_is_a_clear_error() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let site = Site::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let client = Client::new(site, Credentials::new(API_KEY, APP_KEY), quick());
    let error = aggregate::fetch(&client, &query()).unwrap_err();
    assert!(matches!(error, Error::Unreachable { .. }), "{error:?}");
    assert_eq!(client.calls(), 1, "a refused connection is not retried");
    assert!(error.to_string().contains("DD_SITE"), "{error}");
}

#[test]
fn a_query_that_timed_out_at_datadog_and_warnings_are_reported() {
    let server = Server::start(|_, _| {
        Reply::Json(
            200,
            Vec::new(),
            json!({ "data": { "buckets": [] }, "meta": { "status": "timeout" } }),
        )
    });
    let error = aggregate::fetch(&server.client(quick()), &query()).unwrap_err();
    assert!(error.to_string().contains("timed out"), "{error}");

    let server = Server::start(|_, _| {
        Reply::Json(
            200,
            Vec::new(),
            json!({
                "data": { "buckets": [] },
                "meta": { "status": "done", "warnings": [{ "code": "unknown_index", "title": "Unknown index", "detail": "indexes: foo" }] }
            }),
        )
    });
    let tallies = aggregate::fetch(&server.client(quick()), &query()).unwrap();
    assert_eq!(tallies.warnings, ["Unknown index: indexes: foo"]);
}

#[test]
fn plain_http_is_refused_except_on_loopback() {
    assert!(Site::parse("http://api.datadoghq.com").is_err());
    assert!(Site::parse("http://127.0.0.1:8126").is_ok());
    assert!(Site::parse("http://[::1]:8126").is_ok());
    assert!(Site::parse("http://localhost:8126").is_ok());
    assert_eq!(
        Site::parse("us3.datadoghq.com").unwrap().api_url(),
        "https://api.us3.datadoghq.com"
    );
    assert_eq!(
        Site::parse("us3.datadoghq.com").unwrap().app_url(),
        "https://us3.datadoghq.com"
    );
    assert_eq!(
        Site::parse("ddog-gov.com").unwrap().app_url(),
        "https://app.ddog-gov.com"
    );
    assert!(Site::parse("not a site").is_err());
}

fn cli(server_url: &str, args: &[&str], keys: bool) -> (Option<i32>, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_envoy-dd"));
    command
        .args(args)
        .env("DD_SITE", server_url)
        .env_remove("DD_APPLICATION_KEY");
    if keys {
        command
            .env("DD_API_KEY", API_KEY)
            .env("DD_APP_KEY", APP_KEY);
    } else {
        command.env_remove("DD_API_KEY").env_remove("DD_APP_KEY");
    }
    let out = command.output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn the_tallies_command_prints_counts_and_never_the_keys() {
    let service = Service { endpoints: 200 };
    let server = Server::start(move |seen, _| {
        Reply::Json(200, Vec::new(), service.answer(&seen.body, 10_000))
    });
    let args = [
        "datadog",
        "tallies",
        "--query",
        "service:api env:prod",
        "--since",
        "30m",
        "--format",
        "json",
    ];
    let (code, out, err) = cli(&server.url, &args, true);
    assert_eq!(code, Some(0), "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["api_calls"], 3);
    assert_eq!(report["endpoints"].as_array().unwrap().len(), 201);
    assert_eq!(report["versions"]["canary"]["errors"], 20);
    assert!(err.contains("3 API calls"), "{err}");
    for text in [&out, &err] {
        assert!(!text.contains(API_KEY) && !text.contains(APP_KEY));
    }
    let (code, table, _) = cli(
        &server.url,
        &[
            "datadog",
            "tallies",
            "--query",
            "service:api",
            "--from",
            "2026-12-07T18:00:00Z",
            "--to",
            "2026-12-07T18:30:00Z",
        ],
        true,
    );
    assert_eq!(code, Some(0));
    assert!(
        table.contains("GET /api/v1/resource7/{param:int}"),
        "{table}"
    );
    assert_eq!(
        server.seen().last().unwrap().body["filter"]["from"],
        "2026-12-07T18:00:00Z"
    );

    let forbidden =
        Server::start(|_, _| Reply::Json(403, Vec::new(), json!({ "errors": ["Forbidden"] })));
    let (code, out, err) = cli(&forbidden.url, &args, true);
    assert_eq!(code, Some(1));
    assert!(err.contains("logs_read_data"), "{err}");
    assert!(!out.contains(API_KEY) && !err.contains(API_KEY) && !err.contains(APP_KEY));

    let (code, _, err) = cli(&server.url, &args, false);
    assert_eq!(code, Some(1));
    assert!(err.contains("DD_API_KEY is not set"), "{err}");
}

/// One access-log record, as Datadog would index it.
struct Record {
    /// `""` when the record has no phase.
    phase: &'static str,
    hash: &'static str,
    task_definition: &'static str,
    endpoint: String,
    error: bool,
    duration_ns: f64,
}

/// Records of a release: 40 endpoints, stable 95 %, canary 5 %, log-normal-ish durations, the
/// canary slower and failing more on endpoint 3.
fn release(n: usize) -> Vec<Record> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let phase = if next() < 0.05 { "canary" } else { "stable" };
            let e = (next() * next() * 40.0) as usize;
            let slow = if phase == "canary" && e == 3 {
                1.5
            } else {
                1.0
            };
            let duration_ns = 1e6 * (5.0 + e as f64) * (2.0 * next() - 1.0).exp() * slow;
            let error = next()
                < if phase == "canary" && e == 3 {
                    0.2
                } else {
                    0.01
                };
            Record {
                phase,
                hash: if phase == "canary" {
                    "9b1d3c5e7f20"
                } else {
                    "4f9c2a17e0b3"
                },
                task_definition: if phase == "canary" {
                    "api:42"
                } else {
                    "api:41"
                },
                endpoint: format!("GET /e{e}/{{param:int}}"),
                error,
                duration_ns,
            }
        })
        .collect()
}

/// What Datadog computes for an aggregate request over `records` (one page).
fn aggregate_of(records: &[Record], body: &Value) -> Value {
    let errors_only = body["filter"]["query"]
        .as_str()
        .unwrap()
        .ends_with("status:error");
    let by_endpoint = body["group_by"].as_array().unwrap().len() == 2;
    let facet = body["group_by"][0]["facet"].as_str().unwrap().to_owned();
    let mut groups: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for r in records.iter().filter(|r| !errors_only || r.error) {
        let endpoint = if by_endpoint {
            r.endpoint.clone()
        } else {
            String::new()
        };
        let version = match facet.as_str() {
            "@phase" if r.phase.is_empty() => MISSING,
            "@phase" => r.phase,
            "@hash" => r.hash,
            _ => r.task_definition,
        };
        groups
            .entry((version.to_owned(), endpoint))
            .or_default()
            .push(r.duration_ns);
    }
    let buckets: Vec<Value> = groups
        .into_iter()
        .map(|((phase, endpoint), mut d)| {
            d.sort_by(f64::total_cmp);
            let q = |q: f64| d[((q * (d.len() - 1) as f64).round()) as usize];
            let mut by = json!({ facet.clone(): phase });
            if by_endpoint {
                by["@http.endpoint"] = json!(endpoint);
            }
            let computes = if errors_only {
                json!({ "c0": d.len() })
            } else {
                json!({ "c0": d.len(), "c1": q(0.0), "c2": q(0.5), "c3": q(0.75), "c4": q(0.9), "c5": q(0.95), "c6": q(0.98), "c7": q(0.99), "c8": q(1.0) })
            };
            json!({ "by": by, "computes": computes })
        })
        .collect();
    json!({ "data": { "buckets": buckets }, "meta": { "status": "done", "elapsed": 12 } })
}

#[test]
fn the_judge_gets_the_same_counts_as_from_the_records_themselves() {
    use envoy_dd::canary::{Side, Tallies as FileTallies};

    let records = Arc::new(release(60_000));
    let mut from_files = FileTallies::new();
    for r in records.iter() {
        let side = if r.phase == "canary" {
            Side::Canary
        } else {
            Side::Baseline
        };
        from_files.add(side, &r.endpoint, r.error, Some(r.duration_ns));
    }
    let served = Arc::clone(&records);
    let server = Server::start(move |seen, _| {
        Reply::Json(200, Vec::new(), aggregate_of(&served, &seen.body))
    });
    let client = server.client(quick());
    let tallies = aggregate::fetch(&client, &query()).unwrap();
    assert_eq!(client.calls(), 3);
    let response = schemas::v2_validator().schema("LogsAggregateResponse");
    for seen in server.seen() {
        response.check(&aggregate_of(&records, &seen.body), "LogsAggregateResponse");
    }
    let comparison = tallies.compare(By::Phase, None, false).unwrap();
    let (judged, skipped) = tallies.to_judge(&comparison);
    assert_eq!(skipped, Default::default());

    assert_eq!(judged.len(), from_files.len());
    for (endpoint, file) in from_files.iter() {
        let dd = judged.get(endpoint).unwrap();
        for side in [Side::Baseline, Side::Canary] {
            let (a, b) = (file.side(side), dd.side(side));
            assert_eq!(
                (a.requests, a.errors),
                (b.requests, b.errors),
                "{endpoint} {side:?}"
            );
            assert_eq!(b.latency.count(), b.requests);
            if a.requests >= 200 {
                for q in [0.5, 0.9, 0.95, 0.99] {
                    let (x, y) = (
                        a.latency.quantile(q).unwrap(),
                        b.latency.quantile(q).unwrap(),
                    );
                    assert!(
                        (y / x - 1.0).abs() < 0.05,
                        "{endpoint} {side:?} q{q}: files {x}, Datadog {y}"
                    );
                }
            }
        }
    }
    let total = judged.total();
    assert_eq!(total.canary.errors, from_files.total().canary.errors);
}

#[test]
fn versions_by_hash_or_revision_are_chosen_as_the_records_reader_chooses() {
    let server = Server::start(|seen, _| {
        let facet = seen.body["group_by"][0]["facet"]
            .as_str()
            .unwrap()
            .to_owned();
        let by_endpoint = seen.body["group_by"].as_array().unwrap().len() == 2;
        let values: &[(&str, u64)] = match facet.as_str() {
            "@hash" => &[("4f9c2a1", 9500), ("77ab3e0", 500), (MISSING, 7)],
            _ => &[
                ("api-stable:12", 9000),
                ("api-canary:13", 400),
                ("api-stable:11", 100),
                (MISSING, 7),
            ],
        };
        let buckets: Vec<Value> = values
            .iter()
            .map(|(v, n)| {
                let mut by = json!({ facet.clone(): v });
                if by_endpoint {
                    by["@http.endpoint"] = json!("GET /");
                }
                json!({ "by": by, "computes": { "c0": n } })
            })
            .collect();
        Reply::Json(200, Vec::new(), json!({ "data": { "buckets": buckets } }))
    });
    let client = server.client(quick());
    let query = Query::new("service:api", Window::since_minutes(30), By::Hash);
    let tallies = aggregate::fetch(&client, &query).unwrap();
    let comparison = tallies.compare(By::Hash, None, false).unwrap();
    assert_eq!(
        (comparison.baseline.as_str(), comparison.canary.as_str()),
        ("4f9c2a1", "77ab3e0")
    );
    let (_, skipped) = tallies.to_judge(&comparison);
    assert_eq!(skipped.no_version_label, 7);
    assert!(tallies.compare(By::Phase, None, false).is_err());

    // By revision: task definitions count as their revisions, the higher of the two busiest
    // is the canary, and the third is another version.
    let query = Query::new("service:api", Window::since_minutes(30), By::Revision);
    let tallies = aggregate::fetch(&client, &query).unwrap();
    let comparison = tallies.compare(By::Revision, None, false).unwrap();
    assert_eq!(
        (comparison.baseline.as_str(), comparison.canary.as_str()),
        ("12", "13")
    );
    let (judged, skipped) = tallies.to_judge(&comparison);
    assert_eq!((skipped.no_version_label, skipped.other_version), (7, 100));
    let pair = judged.get("GET /").unwrap();
    assert_eq!((pair.baseline.requests, pair.canary.requests), (9000, 400));
}

#[test]
fn without_phase_or_revision_labels_the_choice_falls_to_hash_one_call_each() {
    let server = Server::start(|seen, _| {
        let facet = seen.body["group_by"][0]["facet"]
            .as_str()
            .unwrap()
            .to_owned();
        let by_endpoint = seen.body["group_by"].as_array().unwrap().len() == 2;
        // Phase labels are missing: every record falls in the `missing` bucket.
        let values: &[(&str, u64)] = if facet == "@phase" {
            &[(MISSING, 10_000)]
        } else {
            &[("4f9c2a1", 9_500), ("77ab3e0", 500)]
        };
        let buckets: Vec<Value> = values
            .iter()
            .map(|(v, n)| {
                let mut by = json!({ facet.clone(): v });
                if by_endpoint {
                    by["@http.endpoint"] = json!("GET /");
                }
                json!({ "by": by, "computes": { "c0": n } })
            })
            .collect();
        Reply::Json(200, Vec::new(), json!({ "data": { "buckets": buckets } }))
    });
    let client = server.client(quick());
    let (tallies, comparison) = aggregate::fetch_compared(&client, &query(), None, None).unwrap();
    let comparison = comparison.unwrap();
    assert_eq!((comparison.by, comparison.automatic), (By::Hash, true));
    assert_eq!(comparison.canary, "77ab3e0");
    assert_eq!(client.calls(), 5);
    assert_eq!(tallies.endpoints["GET /"]["77ab3e0"].requests, 500);
    let facets: Vec<String> = server
        .seen()
        .iter()
        .map(|s| s.body["group_by"][0]["facet"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        facets,
        ["@phase", "@ecs_task_definition", "@hash", "@hash", "@hash"]
    );
}

/// The records of a simulated release (tests/release) as Datadog indexes them.
fn indexed(release: &release::Release) -> Vec<Record> {
    release
        .requests()
        .map(|r| {
            let canary = r.side == envoy_dd::canary::Side::Canary;
            Record {
                phase: match (release.labels, canary) {
                    (release::Labels::NoPhase, _) => "",
                    (_, true) => "canary",
                    (_, false) => "stable",
                },
                hash: if canary {
                    "9b1d3c5e7f20"
                } else {
                    "4f9c2a17e0b3"
                },
                task_definition: if canary { "api:42" } else { "api:41" },
                endpoint: release.endpoints[r.endpoint].name.to_owned(),
                error: r.status >= 500,
                duration_ns: r.duration_ms as f64 * 1e6,
            }
        })
        .collect()
}

/// `envoy-dd canary` on the release's records as a file, and `envoy-dd canary --datadog`
/// against a server that aggregates the same records as Datadog would: (exit code, report).
fn both_modes(release: &release::Release, extra: &[&str]) -> [(Option<i32>, Value); 2] {
    let dir = std::env::temp_dir().join(format!(
        "envoy-dd-datadog-{}-{}",
        std::process::id(),
        release.seed
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("release.jsonl");
    std::fs::write(&file, release.lines()).unwrap();
    let records = Arc::new(indexed(release));
    let server = Server::start(move |seen, _| {
        Reply::Json(200, Vec::new(), aggregate_of(&records, &seen.body))
    });
    let run = |args: Vec<&str>| {
        let out = Command::new(env!("CARGO_BIN_EXE_envoy-dd"))
            .args(&args)
            .env("DD_SITE", &server.url)
            .env("DD_API_KEY", API_KEY)
            .env("DD_APP_KEY", APP_KEY)
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(!stderr.contains(API_KEY) && !stderr.contains(APP_KEY));
        let report: Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
        (out.status.code(), report)
    };
    let html = dir.join("report.html");
    let mut files = vec!["canary", "--format", "json"];
    files.extend_from_slice(extra);
    files.push(file.to_str().unwrap());
    let mut datadog = vec![
        "canary",
        "--datadog",
        "--query",
        "service:api env:prod",
        "--since",
        "30m",
        "--format",
        "json",
        "--html",
    ];
    datadog.push(html.to_str().unwrap());
    datadog.extend_from_slice(extra);
    let result = [run(files), run(datadog)];
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && page.contains("</html>"));
    std::fs::remove_dir_all(&dir).unwrap();
    result
}

/// The endpoints of a report: name → (verdict, baseline and canary requests and errors).
fn endpoints(report: &Value) -> BTreeMap<String, (String, Value)> {
    report["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let counts = json!([
                e["baseline"]["requests"],
                e["baseline"]["errors"],
                e["canary"]["requests"],
                e["canary"]["errors"]
            ]);
            (
                e["endpoint"].as_str().unwrap().to_owned(),
                (e["verdict"].as_str().unwrap().to_owned(), counts),
            )
        })
        .collect()
}

#[test]
fn canary_datadog_gives_the_file_modes_verdicts_counts_and_exit_status() {
    const EXPORT: usize = 11;
    const ORDERS: usize = 1;
    let cases = [
        (release::Release::identical(3, 60_000), 0),
        (
            release::Release::identical(5, 60_000).with(EXPORT, release::Change::ErrorRate(0.3)),
            3,
        ),
        (
            release::Release::identical(8, 60_000).with(ORDERS, release::Change::Slower(1.5)),
            3,
        ),
        (
            release::Release {
                canary_share: 0.0005,
                ..release::Release::identical(9, 40_000)
            },
            4,
        ),
        (
            release::Release {
                labels: release::Labels::NoPhase,
                ..release::Release::identical(4, 60_000)
            },
            0,
        ),
    ];
    for (release, code) in cases {
        let [(file_code, file), (dd_code, dd)] = both_modes(&release, &[]);
        assert_eq!(file_code, Some(code), "file mode, seed {}", release.seed);
        assert_eq!(dd_code, file_code, "seed {}: {dd:#}", release.seed);
        assert_eq!(dd["verdict"], file["verdict"]);
        assert_eq!(dd["comparison"]["by"], file["comparison"]["by"]);
        assert_eq!(dd["comparison"]["canary"], file["comparison"]["canary"]);
        assert!(endpoints(&file).len() > 10, "{file:#}");
        assert_eq!(endpoints(&dd), endpoints(&file), "seed {}", release.seed);
        if code == 3 {
            let failed = endpoints(&dd)
                .into_iter()
                .filter(|(_, (v, _))| v == "fail")
                .count();
            assert!(failed >= 1, "{dd:#}");
        }
    }
}
