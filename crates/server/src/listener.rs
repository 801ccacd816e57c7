//! The HTTP listener, with the limits that keep one client from tying the
//! server up:
//!
//! - at most `http.max_connections` connections at once; one more is
//!   answered `503` with `Retry-After` and closed, and counted;
//! - the request head must arrive within `http.header_read_timeout_ms`
//!   (a slowloris client is disconnected) and fit in
//!   `http.max_header_bytes` (hyper answers `431`);
//! - a URI longer than `http.max_uri_bytes` is answered `414`.
//!
//! Written on hyper's connection builder rather than `axum::serve`, which
//! offers none of these settings. Shutdown is graceful: no new connection
//! is accepted, and each open one finishes its request in flight.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::config::HttpConfig;
use crate::metrics::Metrics;

/// The whole answer to a connection over the cap.
fn refused() -> Vec<u8> {
    let body =
        r#"{"error":{"code":"unavailable","message":"too many connections; retry in a second"}}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn uri_too_long(limit: usize) -> Response {
    let body = serde_json::json!({"error": {
        "code": "uri_too_long",
        "message": format!("the URI is longer than the limit http.max_uri_bytes = {limit}"),
    }});
    (
        StatusCode::URI_TOO_LONG,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Serves `app` on `listener` until `shutdown` resolves, then waits for the
/// open connections' requests to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpConfig,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms.max(1)))
        .max_header_size(limits.max_header_bytes.max(1024));
    let max_uri = limits.max_uri_bytes;
    tokio::pin!(shutdown);
    loop {
        let (mut stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors, say: back off instead of spinning.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics.connections_refused.inc();
            tokio::spawn(async move {
                let _ = stream.write_all(&refused()).await;
                let _ = stream.shutdown().await;
            });
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            let app = app.clone();
            async move {
                if request.uri().to_string().len() > max_uri {
                    return Ok::<_, std::convert::Infallible>(uri_too_long(max_uri));
                }
                request.extensions_mut().insert(ConnectInfo(peer));
                app.oneshot(request.map(axum::body::Body::new)).await
            }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        let open = metrics.connections_open.clone();
        open.inc();
        tokio::spawn(async move {
            // A client that goes away, or is cut off by a limit, ends here.
            let _ = connection.await;
            open.dec();
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
