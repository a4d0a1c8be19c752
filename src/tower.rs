//! A tower middleware that opens each request's span with the trace context Envoy propagated
//! (feature `tower`, which includes `http` and `tracing`).
//!
//! With [`RequestSpanLayer`] in front of a service and [`JsonLayer`](crate::subscriber::JsonLayer)
//! installed, every line the service logs while handling a request carries that request's
//! `dd.trace_id` / `dd.span_id`, plus `hash` and `phase`:
//!
//! ```
//! use axum::{routing::get, Router};
//! use envoy_dd::subscriber::JsonLayer;
//! use envoy_dd::tower::RequestSpanLayer;
//! use tracing_subscriber::layer::SubscriberExt as _;
//! use tracing_subscriber::util::SubscriberInitExt as _;
//!
//! async fn hello() -> &'static str {
//!     tracing::info!("saying hello"); // carries dd, hash and phase
//!     "hello"
//! }
//!
//! tracing_subscriber::registry().with(JsonLayer::from_env()).init();
//! let app: Router = Router::new().route("/hello", get(hello)).layer(RequestSpanLayer);
//! // axum::serve(listener, app).await
//! ```
//!
//! The span is `request` at level INFO with target `envoy_dd::tower`. If you filter spans by
//! target (`EnvFilter` with `RUST_LOG=my_service=debug`), enable it too (`envoy_dd=info`):
//! lines logged outside an enabled request span have no `dd`.

use std::task::{Context, Poll};

use http::Request;
use tower_layer::Layer;
use tower_service::Service;
use tracing::instrument::{Instrument as _, Instrumented};

/// Wraps a service in [`RequestSpan`]: `Router::new().layer(RequestSpanLayer)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestSpanLayer;

impl<S> Layer<S> for RequestSpanLayer {
    type Service = RequestSpan<S>;

    fn layer(&self, inner: S) -> RequestSpan<S> {
        RequestSpan { inner }
    }
}

/// A service that runs `inner` for each request inside the span [`request_span`] opens.
#[derive(Clone, Copy, Debug)]
pub struct RequestSpan<S> {
    inner: S,
}

impl<S> RequestSpan<S> {
    /// Wraps `inner` (what [`RequestSpanLayer`] does).
    pub fn new(inner: S) -> Self {
        RequestSpan { inner }
    }
}

impl<S, B> Service<Request<B>> for RequestSpan<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let span = request_span(&request);
        // Work done inside `call` and inside the future both belong to the request.
        let future = span.in_scope(|| self.inner.call(request));
        future.instrument(span)
    }
}

/// The span for one request: `request`, with the fields `method`, `path` (without the query,
/// which may hold secrets), `http.request_id` (the `x-request-id` header, which Envoy and ECS
/// Service Connect set: the filter's request-id join pairs the proxy's access line with the
/// service's lines by it), and the trace context of its headers as `dd.trace_id` /
/// `dd.span_id` (see [`crate::subscriber`]), when the headers have a valid one.
///
/// ```
/// let request = http::Request::get("/users/42?token=secret")
///     .header("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
///     .body(())
///     .unwrap();
/// let span = envoy_dd::tower::request_span(&request);
/// let _entered = span.enter();
/// tracing::info!("handling"); // `"path":"/users/42"` and `dd` on the line
/// ```
pub fn request_span<B>(request: &Request<B>) -> tracing::Span {
    let ctx = crate::http::trace_context(request.headers());
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = request.uri().path(),
        http.request_id = request_id(request.headers()),
        dd.trace_id = ctx.map(|c| c.trace_id),
        dd.span_id = ctx.and_then(|c| c.span_id),
    )
}

/// The `x-request-id` header, when it is text.
fn request_id(headers: &http::HeaderMap) -> Option<&str> {
    headers.get("x-request-id")?.to_str().ok()
}
