//! A small blocking client for Datadog's API: keys in headers and never anywhere else, bounded
//! retries of rate limits (HTTP 429, waiting as its `X-RateLimit-Reset` header says) and of
//! server errors and time-outs (exponential backoff), and errors that say what to do.

use std::fmt;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Site;

/// The API and application keys (`DD_API_KEY`, `DD_APP_KEY`).
///
/// Neither `Debug` nor any error shows them; they only go into the request headers.
#[derive(Clone)]
pub struct Credentials {
    api_key: String,
    app_key: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials { api_key: <redacted>, app_key: <redacted> }")
    }
}

impl Credentials {
    /// Keys given directly.
    pub fn new(api_key: &str, app_key: &str) -> Credentials {
        Credentials {
            api_key: api_key.trim().to_owned(),
            app_key: app_key.trim().to_owned(),
        }
    }

    /// `DD_API_KEY` and `DD_APP_KEY` (or `DD_APPLICATION_KEY`, as some of Datadog's tools
    /// name it), as Datadog's own tools read them.
    pub fn from_env() -> Result<Credentials, Error> {
        let read = |names: &[&str]| {
            names
                .iter()
                .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
        };
        match (
            read(&["DD_API_KEY"]),
            read(&["DD_APP_KEY", "DD_APPLICATION_KEY"]),
        ) {
            (Some(api), Some(app)) => Ok(Credentials::new(&api, &app)),
            (api, _) => Err(Error::Credentials(if api.is_none() {
                "DD_API_KEY is not set (an API key of the organisation)"
            } else {
                "DD_APP_KEY is not set (an application key with the logs_read_data scope)"
            })),
        }
    }
}

/// How long to wait and how often to try again.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub attempts: u32,
    /// The first backoff after a server error or time-out; it doubles after each.
    pub backoff: Duration,
    /// The longest single wait (a rate limit's reset beyond it is waited for this long).
    pub max_wait: Duration,
    /// The time a request may take in all, retries and waits included.
    pub deadline: Duration,
    /// The time one attempt may take, from connecting to the last byte of the answer.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, 1 s first backoff, waits of at most 60 s, 5 min in all, 60 s per attempt.
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 5,
            backoff: Duration::from_secs(1),
            max_wait: Duration::from_secs(60),
            deadline: Duration::from_secs(300),
            timeout: Duration::from_secs(60),
        }
    }
}

/// Why a request to Datadog failed, after any retries.
#[derive(Debug)]
pub enum Error {
    /// Keys are missing from the environment.
    Credentials(&'static str),
    /// 401 or 403: a wrong key, a key of another site, or an application key without the
    /// scope the endpoint needs.
    Forbidden {
        /// 401 or 403.
        status: u16,
        /// Datadog's `errors`, if any.
        detail: String,
    },
    /// Another 4xx: the request itself is wrong (Datadog's `errors` say why).
    Rejected {
        /// The HTTP status.
        status: u16,
        /// Datadog's `errors`, if any.
        detail: String,
    },
    /// Still rate limited (429) or failing (5xx) after the last attempt.
    GaveUp {
        /// The last HTTP status.
        status: u16,
        /// Attempts made.
        attempts: u32,
    },
    /// Rate limited (429) until a reset further away than the longest wait allowed.
    RateLimited {
        /// When the limit resets, from `X-RateLimit-Reset`.
        reset: Duration,
    },
    /// No answer within the time allowed, after the last attempt.
    TimedOut {
        /// Attempts made.
        attempts: u32,
    },
    /// The site could not be reached (name, connection, TLS).
    Unreachable {
        /// The API URL tried.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The answer is not what Datadog documents (cut short, not JSON, wrong shape).
    BadAnswer(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Credentials(what) => f.write_str(what),
            Error::Forbidden { status, detail } => write!(
                f,
                "Datadog refused the keys (HTTP {status}{}): check that DD_API_KEY and DD_APP_KEY \
                 belong to the organisation on DD_SITE and that the application key has the \
                 logs_read_data scope",
                if detail.is_empty() { String::new() } else { format!(": {detail}") }
            ),
            Error::Rejected { status, detail } => {
                write!(f, "Datadog rejected the request (HTTP {status}): {detail}")
            }
            Error::GaveUp { status: 429, attempts } => write!(
                f,
                "Datadog's rate limit still applies after {attempts} attempts (HTTP 429); try again later"
            ),
            Error::RateLimited { reset } => write!(
                f,
                "Datadog's rate limit applies for another {} s (HTTP 429, X-RateLimit-Reset); try again then",
                reset.as_secs()
            ),
            Error::GaveUp { status, attempts } => write!(
                f,
                "Datadog answered HTTP {status} to each of {attempts} attempts; see https://status.datadoghq.com"
            ),
            Error::TimedOut { attempts } => {
                write!(f, "Datadog did not answer in time, {attempts} attempts")
            }
            Error::Unreachable { url, reason } => write!(
                f,
                "cannot reach {url} ({reason}); check DD_SITE (datadoghq.com, datadoghq.eu, \
                 us3.datadoghq.com, ...) and the network"
            ),
            Error::BadAnswer(what) => write!(f, "unexpected answer from Datadog: {what}"),
        }
    }
}

impl std::error::Error for Error {}

/// A client for one site with one pair of keys.
#[derive(Debug)]
pub struct Client {
    site: Site,
    credentials: Credentials,
    policy: RetryPolicy,
    agent: ureq::Agent,
    calls: std::cell::Cell<u32>,
}

/// The longest wait for a connection (and a name) before the site counts as not answering.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest answer read (the aggregate API's pages are far smaller).
const MAX_ANSWER: u64 = 64 << 20;

impl Client {
    /// A client for `site`.
    pub fn new(site: Site, credentials: Credentials, policy: RetryPolicy) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(policy.timeout))
            // A site that does not even accept the connection is not worth a whole attempt.
            .timeout_connect(Some(policy.timeout.min(CONNECT_TIMEOUT)))
            .user_agent(concat!("envoy-dd/", env!("CARGO_PKG_VERSION")))
            // The API does not redirect; following one could carry the keys elsewhere.
            .max_redirects(0)
            .build()
            .new_agent();
        Client {
            site,
            credentials,
            policy,
            agent,
            calls: std::cell::Cell::new(0),
        }
    }

    /// The HTTP requests sent so far, retries included.
    pub fn calls(&self) -> u32 {
        self.calls.get()
    }

    /// POSTs `body` to `path` (`/api/v2/...`) and returns the JSON answer, retrying rate
    /// limits, server errors and time-outs within the policy's bounds.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value, Error> {
        let url = format!("{}{path}", self.site.api_url());
        let body = body.to_string();
        let start = Instant::now();
        let mut backoff = self.policy.backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.calls.set(self.calls.get() + 1);
            let outcome = self.attempt(&url, &body);
            let rate_limited = matches!(outcome, Attempt::RateLimited(_));
            let wait = match outcome {
                Attempt::Done(value) => return Ok(value),
                Attempt::Fail(error) => return Err(error),
                Attempt::RateLimited(reset) => {
                    if let Some(reset) = reset.filter(|r| *r > self.policy.max_wait) {
                        // Waiting less than the reset would only meet the limit again.
                        return Err(Error::RateLimited { reset });
                    }
                    if attempt >= self.policy.attempts {
                        return Err(Error::GaveUp {
                            status: 429,
                            attempts: attempt,
                        });
                    }
                    reset.unwrap_or(backoff)
                }
                Attempt::Retry(failure) => {
                    if attempt >= self.policy.attempts {
                        return Err(failure.into_error(attempt));
                    }
                    let wait = backoff;
                    backoff = backoff.saturating_mul(2);
                    wait
                }
            };
            let wait = wait.min(self.policy.max_wait);
            if start.elapsed() + wait + self.policy.timeout > self.policy.deadline {
                // Another attempt could not finish within the deadline.
                return Err(match rate_limited {
                    true => Error::GaveUp {
                        status: 429,
                        attempts: attempt,
                    },
                    false => Error::TimedOut { attempts: attempt },
                });
            }
            std::thread::sleep(wait);
        }
    }

    fn attempt(&self, url: &str, body: &str) -> Attempt {
        let sent = self
            .agent
            .post(url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .header("DD-API-KEY", &self.credentials.api_key)
            .header("DD-APPLICATION-KEY", &self.credentials.app_key)
            .send(body);
        let mut response = match sent {
            Ok(response) => response,
            Err(error) => return transport(url, error),
        };
        let status = response.status().as_u16();
        let reset = rate_limit_reset(&response);
        let location = response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_string();
        match status {
            200..=299 => match text {
                Ok(text) => match serde_json::from_str(&text) {
                    Ok(value) => Attempt::Done(value),
                    // A 200 cut short: a proxy or the connection dropped it; ask again.
                    Err(e) if e.is_eof() => Attempt::Retry(Failure::Truncated),
                    Err(e) => Attempt::Fail(Error::BadAnswer(format!("not JSON: {e}"))),
                },
                Err(ureq::Error::Timeout(_)) => Attempt::Retry(Failure::Timeout),
                Err(_) => Attempt::Retry(Failure::Truncated),
            },
            429 => Attempt::RateLimited(reset),
            300..=399 => Attempt::Fail(Error::Rejected {
                status,
                detail: format!(
                    "redirected to {}, which is not followed (the keys stay here); check DD_SITE",
                    location.as_deref().unwrap_or("another address")
                ),
            }),
            401 | 403 => Attempt::Fail(Error::Forbidden {
                status,
                detail: detail(text),
            }),
            408 => Attempt::Retry(Failure::Status(status)),
            400..=499 => Attempt::Fail(Error::Rejected {
                status,
                detail: detail(text),
            }),
            _ => Attempt::Retry(Failure::Status(status)),
        }
    }
}

enum Attempt {
    Done(Value),
    Fail(Error),
    /// 429, with the wait its headers ask for.
    RateLimited(Option<Duration>),
    Retry(Failure),
}

enum Failure {
    Status(u16),
    Timeout,
    Truncated,
}

impl Failure {
    fn into_error(self, attempts: u32) -> Error {
        match self {
            Failure::Status(status) => Error::GaveUp { status, attempts },
            Failure::Timeout => Error::TimedOut { attempts },
            Failure::Truncated => {
                Error::BadAnswer(format!("the answer was cut short, {attempts} attempts"))
            }
        }
    }
}

/// A transport error: time-outs and connections dropped mid-way are retried; a site that
/// cannot be resolved, refuses the connection, does not answer it or fails the TLS handshake
/// (a certificate that is not the site's) is not: it will not answer the next time either.
fn transport(url: &str, error: ureq::Error) -> Attempt {
    use std::io::ErrorKind::*;
    let unreachable = |reason: String| {
        let base = url.split("/api/").next().unwrap_or(url).to_owned();
        Attempt::Fail(Error::Unreachable { url: base, reason })
    };
    match error {
        ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => {
            unreachable("no answer to the connection".into())
        }
        ureq::Error::Timeout(_) => Attempt::Retry(Failure::Timeout),
        ureq::Error::HostNotFound => unreachable("no such host".into()),
        ureq::Error::ConnectionFailed => unreachable("connection refused".into()),
        ureq::Error::Io(e) => match e.kind() {
            TimedOut | WouldBlock => Attempt::Retry(Failure::Timeout),
            ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | Interrupted => {
                Attempt::Retry(Failure::Truncated)
            }
            ConnectionRefused => unreachable("connection refused".into()),
            // TLS (rustls reports a bad certificate as invalid data), name resolution, no route.
            _ => unreachable(e.to_string()),
        },
        ureq::Error::Protocol(_) => Attempt::Retry(Failure::Truncated),
        other => unreachable(other.to_string()),
    }
}

/// Datadog's rate-limit headers: `X-RateLimit-Reset` is the seconds until the limit resets
/// (docs: API reference, "Rate limiting").
fn rate_limit_reset(response: &ureq::http::Response<ureq::Body>) -> Option<Duration> {
    let value = response.headers().get("x-ratelimit-reset")?.to_str().ok()?;
    let seconds: f64 = value.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(3600.0)))
}

/// The `errors` of a Datadog error answer (`{"errors": ["Forbidden"]}`), shortened.
fn detail(text: Result<String, ureq::Error>) -> String {
    let Ok(text) = text else { return String::new() };
    let errors = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v.get("errors").cloned())
        .and_then(|e| e.as_array().cloned());
    let detail = match errors {
        Some(errors) => errors
            .iter()
            .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join("; "),
        None => text.trim().to_owned(),
    };
    detail.chars().take(300).collect()
}
