//! The example axum service (examples/axum_service.rs), run on loopback with requests carrying
//! each kind of trace header: the `dd` of its log lines must be the `dd` the filter writes for
//! an Envoy access log of the same request.

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use envoy_dd::subscriber::JsonLayer;
use envoy_dd::{Config, TraceIdFormat, Transformer};
use serde_json::Value;
use tracing_subscriber::layer::SubscriberExt as _;

#[allow(dead_code)] // its `main` is not used here
#[path = "../examples/axum_service.rs"]
mod axum_service;

/// Log lines, shared between the server thread and the test.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl io::Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().write(bytes)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn parsed(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

/// Starts the example service on an ephemeral loopback port, logging through a `JsonLayer`
/// built from `config` into the returned buffer. The server thread ends with the test process.
fn start(config: &Config) -> (SocketAddr, Lines) {
    let lines = Lines::default();
    let writer = lines.clone();
    let layer = JsonLayer::new(config).with_writer(move || writer.clone());
    let (addr_tx, addr_rx) = mpsc::channel();
    thread::spawn(move || {
        // One thread serves everything, so a thread-local default subscriber sees every line.
        let _default = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tracing::info!("listening");
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, axum_service::app()).await.unwrap();
        });
    });
    (addr_rx.recv().unwrap(), lines)
}

/// Sends `GET path` with `headers` over HTTP/1.1 and returns the status line.
fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> String {
    let mut request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.lines().next().unwrap_or_default().to_string()
}

/// The `dd` the filter writes for an Envoy JSON access log that logged these headers.
fn filter_dd(config: &Config, headers: &[(&str, &str)]) -> Option<Value> {
    let mut record = serde_json::Map::new();
    record.insert("method".into(), "GET".into());
    record.insert("response_code".into(), 200.into());
    for (name, value) in headers {
        record.insert(name.to_string(), value.to_string().into());
    }
    let record = Value::Object(record).to_string();
    let mut out = Vec::new();
    Transformer::new(config.clone())
        .try_transform(record.as_bytes(), &mut out)
        .unwrap();
    serde_json::from_slice::<Value>(&out)
        .unwrap()
        .get("dd")
        .cloned()
}

type Case = (&'static str, &'static [(&'static str, &'static str)]);

const CASES: &[Case] = &[
    (
        "datadog",
        &[
            ("x-datadog-trace-id", "1234567890123456789"),
            ("x-datadog-parent-id", "9876543210987654321"),
        ],
    ),
    (
        "datadog, 128-bit",
        &[
            ("x-datadog-trace-id", "9532127138774266268"),
            ("x-datadog-parent-id", "13235353014750950193"),
            ("x-datadog-tags", "_dd.p.dm=-1,_dd.p.tid=0af7651916cd43dd"),
        ],
    ),
    (
        "w3c",
        &[(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )],
    ),
    (
        "w3c, 64-bit",
        &[(
            "traceparent",
            "00-00000000000000008448eb211c80319c-b7ad6b7169203331-00",
        )],
    ),
    (
        "b3 multi",
        &[
            ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
            ("x-b3-spanid", "e457b5a2e4d86bd1"),
            ("x-b3-sampled", "1"),
        ],
    ),
    (
        "b3 single",
        &[("b3", "a3ce929d0e0e4736-00f067aa0ba902b7-1-5b4185666d50f68b")],
    ),
    (
        "x-ray",
        &[(
            "x-amzn-trace-id",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        )],
    ),
    (
        "invalid datadog falls through to w3c",
        &[
            ("x-datadog-trace-id", "-"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
        ],
    ),
    ("no trace headers", &[]),
    (
        "only invalid",
        &[("traceparent", "00-00-00-00"), ("b3", "0")],
    ),
];

fn check_service(config: &Config) {
    let (addr, lines) = start(config);
    for (i, &(kind, headers)) in CASES.iter().enumerate() {
        let name = format!("n{i}");
        assert_eq!(
            get(addr, &format!("/hello/{name}"), headers),
            "HTTP/1.1 200 OK",
            "{kind}"
        );
        let logged = lines.parsed();
        let line = logged
            .iter()
            .find(|line| line["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{kind}: no line for {name} in {logged:?}"));
        let want = filter_dd(config, headers);
        assert_eq!(line.get("dd"), want.as_ref(), "{kind}: {line}");
        // Strings, as the filter writes them: never JSON numbers.
        if let Some(dd) = line.get("dd") {
            assert!(dd["trace_id"].is_string(), "{kind}: {line}");
            assert!(
                dd.get("span_id").is_none_or(Value::is_string),
                "{kind}: {line}"
            );
        }
        assert_eq!(line["message"], "saying hello", "{kind}");
        assert_eq!(line["method"], "GET", "{kind}");
        assert_eq!(line["path"], format!("/hello/{name}"), "{kind}");
        assert_eq!(line["hash"], "4f9c2a1", "{kind}");
        assert_eq!(line["phase"], "canary", "{kind}");
    }
    // Outside a request: hash and phase only.
    let listening = &lines.parsed()[0];
    assert_eq!(listening["message"], "listening");
    assert_eq!(listening.get("dd"), None);
    assert_eq!(listening["hash"], "4f9c2a1");
    assert_eq!(listening["phase"], "canary");
}

fn config(trace_id_128: TraceIdFormat) -> Config {
    Config {
        hash: Some("4f9c2a1".into()),
        phase: Some("canary".into()),
        trace_id_128,
        ..Config::default()
    }
}

#[test]
fn lines_carry_the_filters_dd_decimal() {
    check_service(&config(TraceIdFormat::Decimal));
}

#[test]
fn lines_carry_the_filters_dd_hex() {
    check_service(&config(TraceIdFormat::Hex));
}

#[test]
fn expected_ids_are_the_known_ones() {
    // Pin a few values, so the comparison above cannot pass by both sides being wrong alike.
    let dd = |format, headers| filter_dd(&config(format), headers).unwrap().to_string();
    assert_eq!(
        dd(TraceIdFormat::Hex, CASES[1].1),
        r#"{"trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"13235353014750950193"}"#
    );
    assert_eq!(
        dd(TraceIdFormat::Decimal, CASES[2].1),
        r#"{"trace_id":"9532127138774266268","span_id":"13235353014750950193"}"#
    );
    assert_eq!(
        dd(TraceIdFormat::Decimal, CASES[6].1),
        r#"{"trace_id":"7043144561403045779","span_id":"6023947403358210776"}"#
    );
}

/// The service's line carries `http.request_id` from `x-request-id`, so the filter's
/// request-id join gives the Service Connect proxy's access line of the same request (which
/// logs no trace header) the service's `dd`.
#[test]
fn service_lines_join_the_proxys_access_line() {
    let config = config(TraceIdFormat::Decimal);
    let (addr, lines) = start(&config);
    let request_id = "6c1d2e3f-4a5b-4c6d-8e7f-0a1b2c3d4e5f";
    let headers = [
        ("x-request-id", request_id),
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
    ];
    assert_eq!(get(addr, "/hello/joined", &headers), "HTTP/1.1 200 OK");
    let logged = lines.parsed();
    let line = logged
        .iter()
        .find(|line| line["name"] == "joined")
        .expect("the service logged the request");
    assert_eq!(line["http.request_id"], request_id);

    let mut filter = Transformer::new(config.clone());
    let app = serde_json::json!({"container_name": "app", "log": line.to_string()}).to_string();
    let access = serde_json::json!({
        "container_name": "ecs-service-connect-7Hc2Qa",
        "log": format!(r#"[2025-11-11T07:40:46.216Z] "GET /hello/joined HTTP/1.1" 200 0 11 2 1 "-" "curl/8.11.1" "{request_id}" "api.local:8080" "127.0.0.1:3000""#),
    })
    .to_string();
    let mut out = Vec::new();
    filter.try_transform(app.as_bytes(), &mut out).unwrap();
    out.clear();
    let done = filter.try_transform(access.as_bytes(), &mut out).unwrap();
    assert_eq!(done.trace, Some(envoy_dd::TraceSource::RequestId));
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(out["dd"], line["dd"], "{out}");
}
