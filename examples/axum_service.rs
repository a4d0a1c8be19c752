//! An axum service whose JSON log lines carry the trace Envoy started, plus `hash` and `phase`.
//!
//! ```sh
//! GIT_COMMIT_SHA=4f9c2a1 DEPLOY_PHASE=canary \
//!     cargo run --example axum_service --features tower -- 127.0.0.1:3000
//! curl -H 'x-datadog-trace-id: 1234' -H 'x-datadog-parent-id: 5678' 127.0.0.1:3000/hello/ana
//! ```
//!
//! prints (one line each):
//!
//! ```text
//! {"timestamp":"…","level":"info","message":"listening","logger":{"name":"axum_service"},"addr":"127.0.0.1:3000","hash":"4f9c2a1","phase":"canary"}
//! {"timestamp":"…","level":"info","message":"saying hello","logger":{"name":"axum_service"},"name":"ana","method":"GET","path":"/hello/ana","dd":{"trace_id":"1234","span_id":"5678"},"hash":"4f9c2a1","phase":"canary"}
//! ```

use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use envoy_dd::subscriber::JsonLayer;
use envoy_dd::tower::RequestSpanLayer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The service: every request runs inside a span that carries its trace context.
pub fn app() -> Router {
    Router::new()
        .route("/hello/{name}", get(hello))
        .layer(RequestSpanLayer)
}

async fn hello(Path(name): Path<String>) -> String {
    tracing::info!(name, "saying hello");
    format!("hello {name}\n")
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    // `hash` from GIT_COMMIT_SHA, `phase` from DEPLOY_PHASE.
    tracing_subscriber::registry()
        .with(LevelFilter::INFO)
        .with(JsonLayer::from_env())
        .init();
    let addr = std::env::args().nth(1);
    let listener =
        tokio::net::TcpListener::bind(addr.as_deref().unwrap_or("127.0.0.1:3000")).await?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    axum::serve(listener, app()).await
}
