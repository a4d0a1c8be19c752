//! Simulated releases: the access logs of a service running a stable version and a canary,
//! as FireLens hands them to Fluent Bit (raw records whose `log` is Envoy's JSON access log),
//! seeded so that every run is the same.
//!
//! A release is a list of [`Request`]s; [`Release::line`] writes one as a FireLens record and
//! [`Release::tallies`] counts them as the judge would, for tests that need many releases.
#![allow(dead_code)]

use envoy_dd::canary::{Side, Tallies};

/// One endpoint of the simulated service.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// `GET /api/v1/users/{param:int}`: what the judge calls it.
    pub name: &'static str,
    pub method: &'static str,
    /// A path of this endpoint for request `n`.
    pub path: fn(u64) -> String,
    /// The GraphQL operation, logged as `x_apollo_operation_name`.
    pub operation: Option<&'static str>,
    /// Share of the traffic.
    pub share: f64,
    /// Share of requests that fail (5xx).
    pub error_rate: f64,
    /// Median duration in milliseconds (durations are log-normal).
    pub median_ms: f64,
}

/// The endpoints of the simulated service: shares add up to 1. The last one gets 1 % of the
/// traffic.
pub fn catalog() -> Vec<Endpoint> {
    let e = |name, method, path: fn(u64) -> String, share, error_rate, median_ms| Endpoint {
        name,
        method,
        path,
        operation: None,
        share,
        error_rate,
        median_ms,
    };
    let graphql = |op, share| Endpoint {
        name: if op == "GetUser" {
            "POST /graphql (GetUser)"
        } else {
            "POST /graphql (ListOrders)"
        },
        method: "POST",
        path: |_| "/graphql".into(),
        operation: Some(op),
        share,
        error_rate: 0.004,
        median_ms: 25.0,
    };
    let g1 = graphql("GetUser", 0.03);
    let g2 = graphql("ListOrders", 0.02);
    vec![
        e(
            "GET /api/v1/users/{param:int}",
            "GET",
            |n| format!("/api/v1/users/{}", 10_000 + n % 90_000),
            0.30,
            0.002,
            12.0,
        ),
        e(
            "GET /api/v1/orders/{param:int}",
            "GET",
            |n| format!("/api/v1/orders/{}?expand=items", 500 + n % 7919),
            0.15,
            0.004,
            20.0,
        ),
        e(
            "POST /api/v1/orders",
            "POST",
            |_| "/api/v1/orders".into(),
            0.08,
            0.006,
            45.0,
        ),
        e(
            "GET /api/v1/search",
            "GET",
            |n| format!("/api/v1/search?q=item{n}"),
            0.12,
            0.003,
            30.0,
        ),
        e("GET /ping", "GET", |_| "/ping".into(), 0.10, 0.0, 1.0),
        e(
            "GET /api/v1/products/{param:hex}",
            "GET",
            |n| format!("/api/v1/products/1{:06x}a", n * 2654435761 % 0x00ff_ffff),
            0.10,
            0.002,
            15.0,
        ),
        e(
            "PUT /api/v1/users/{param:int}/avatar",
            "PUT",
            |n| format!("/api/v1/users/{}/avatar", 10 + n % 1000),
            0.03,
            0.01,
            80.0,
        ),
        e(
            "DELETE /api/v1/sessions/{param:hex_id}",
            "DELETE",
            |n| {
                format!(
                    "/api/v1/sessions/{:08x}-7d3c-4a1b-9f2e-{:012x}",
                    n * 7 + 0x1000_0000,
                    n
                )
            },
            0.02,
            0.002,
            8.0,
        ),
        e(
            "GET /api/v1/reports/{param:int_id}",
            "GET",
            |n| format!("/api/v1/reports/2026-{:02}-{:02}", 1 + n % 12, 1 + n % 28),
            0.04,
            0.005,
            150.0,
        ),
        g1,
        g2,
        e(
            "GET /api/v1/export/{param:int}",
            "GET",
            |n| format!("/api/v1/export/{}", 100 + n % 900),
            0.01,
            0.005,
            200.0,
        ),
    ]
}

/// How the canary differs from the baseline on one endpoint.
#[derive(Clone, Copy, Debug)]
pub enum Change {
    /// Its error rate becomes this.
    ErrorRate(f64),
    /// Its durations are multiplied by this.
    Slower(f64),
}

/// How the two versions are labelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Labels {
    /// `phase`, `hash` and the task definition revision.
    All,
    /// No `phase` (ECS's built-in canary deployments): hash and revision only.
    NoPhase,
}

/// A simulated release.
#[derive(Clone, Debug)]
pub struct Release {
    pub seed: u64,
    pub requests: u64,
    /// The canary's share of the traffic.
    pub canary_share: f64,
    pub endpoints: Vec<Endpoint>,
    /// Changes of the canary: (endpoint index, change).
    pub changes: Vec<(usize, Change)>,
    pub labels: Labels,
}

/// One simulated request.
#[derive(Clone, Debug)]
pub struct Request {
    pub n: u64,
    pub side: Side,
    pub endpoint: usize,
    pub status: u16,
    pub duration_ms: u64,
}

impl Release {
    /// An identical release: `requests` requests, 5 % to the canary.
    pub fn identical(seed: u64, requests: u64) -> Self {
        Release {
            seed,
            requests,
            canary_share: 0.05,
            endpoints: catalog(),
            changes: Vec::new(),
            labels: Labels::All,
        }
    }

    /// The release with the canary changed on endpoint `index`.
    pub fn with(mut self, index: usize, change: Change) -> Self {
        self.changes.push((index, change));
        self
    }

    /// Every request, in order.
    pub fn requests(&self) -> impl Iterator<Item = Request> + '_ {
        let mut rng = Rng(self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5851_F42D_4C95_7F2D);
        let cumulative: Vec<f64> = self
            .endpoints
            .iter()
            .scan(0.0, |sum, e| {
                *sum += e.share;
                Some(*sum)
            })
            .collect();
        (0..self.requests).map(move |n| {
            let side = if rng.uniform() < self.canary_share {
                Side::Canary
            } else {
                Side::Baseline
            };
            let u = rng.uniform() * cumulative.last().copied().unwrap_or(1.0);
            let endpoint = cumulative
                .iter()
                .position(|&c| u < c)
                .unwrap_or(cumulative.len() - 1);
            let spec = &self.endpoints[endpoint];
            let (mut error_rate, mut slower) = (spec.error_rate, 1.0);
            if side == Side::Canary {
                for &(i, change) in &self.changes {
                    if i == endpoint {
                        match change {
                            Change::ErrorRate(r) => error_rate = r,
                            Change::Slower(f) => slower = f,
                        }
                    }
                }
            }
            let status = if rng.uniform() < error_rate {
                if rng.uniform() < 0.7 {
                    500
                } else {
                    503
                }
            } else {
                200
            };
            let duration_ms = (spec.median_ms * slower * (0.5 * rng.normal()).exp()).round() as u64;
            Request {
                n,
                side,
                endpoint,
                status,
                duration_ms,
            }
        })
    }

    /// A request as a raw FireLens record (one line, without its line end).
    pub fn line(&self, r: &Request) -> String {
        let e = &self.endpoints[r.endpoint];
        let (revision, hash, phase) = match r.side {
            Side::Baseline => (41, "4f9c2a17e0b3", "stable"),
            Side::Canary => (42, "9b1d3c5e7f20", "canary"),
        };
        let phase = match self.labels {
            Labels::All => format!(",\"phase\":\"{phase}\""),
            Labels::NoPhase => String::new(),
        };
        let op = e.operation.map_or(String::new(), |op| {
            format!(",\\\"x_apollo_operation_name\\\":\\\"{op}\\\"")
        });
        let secs = r.n / 50;
        format!(
            concat!(
                "{{\"container_id\":\"{:016x}\",\"container_name\":\"/ecs-api-{}-envoy-1a033dca6ba50cf8dd4e\",\"source\":\"stdout\",",
                "\"log\":\"{{\\\"start_time\\\":\\\"2026-12-07T{:02}:{:02}:{:02}.{:03}Z\\\",\\\"method\\\":\\\"{}\\\",\\\"path\\\":\\\"{}\\\",\\\"protocol\\\":\\\"HTTP/1.1\\\",",
                "\\\"response_code\\\":{},\\\"response_flags\\\":\\\"{}\\\",\\\"bytes_received\\\":0,\\\"bytes_sent\\\":{},\\\"duration\\\":{},",
                "\\\"request_id\\\":\\\"{:08x}-ad0f-45c4-a019-031d2bdaebbe\\\",\\\"trace_id\\\":\\\"{}\\\",\\\"span_id\\\":\\\"{}\\\",",
                "\\\"authority\\\":\\\"api.prod.local:9080\\\",\\\"user_agent\\\":\\\"okhttp/4.12.0\\\"{}}}\\n\",",
                "\"ecs_cluster\":\"arn:aws:ecs:us-east-1:123456789012:cluster/prod\",\"ecs_task_definition\":\"api:{}\",\"hash\":\"{}\"{}}}"
            ),
            self.seed ^ r.n,
            revision,
            12 + secs / 3600 % 12,
            secs / 60 % 60,
            secs % 60,
            r.n % 1000,
            e.method,
            (e.path)(r.n),
            r.status,
            if r.status == 503 { "UF" } else { "-" },
            200 + r.n % 5000,
            r.duration_ms,
            r.n,
            1_000_000_007 * (r.n + 1),
            r.n + 77,
            op,
            revision,
            hash,
            phase,
        )
    }

    /// Every request as a FireLens record, one per line.
    pub fn lines(&self) -> String {
        let mut out = String::new();
        for r in self.requests() {
            out.push_str(&self.line(&r));
            out.push('\n');
        }
        out
    }

    /// The tallies the judge would read from [`Release::lines`].
    pub fn tallies(&self) -> Tallies {
        let mut t = Tallies::new();
        for r in self.requests() {
            let name = self.endpoints[r.endpoint].name;
            t.add(
                r.side,
                name,
                r.status >= 500,
                Some(r.duration_ms as f64 * 1e6),
            );
        }
        t
    }
}

/// SplitMix64: small, fast, and good enough for simulated traffic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u = 1.0 - self.uniform();
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}
