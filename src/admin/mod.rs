//! The admin listener (its own port, default `127.0.0.1:9901`):
//!
//! | endpoint              | answer                                                        |
//! |-----------------------|---------------------------------------------------------------|
//! | `GET /`               | HTML status page (auto-refreshing, self-contained)            |
//! | `GET /api/upstreams`  | JSON: upstreams, servers, state, discovery status             |
//! | `GET /metrics`        | Prometheus text format                                        |
//! | `GET /healthz`        | 200 while the process runs                                    |
//! | `GET /readyz`         | 200, or 503 with the reason (shutting down, nothing selectable)|
//! | `POST /api/reload`    | re-reads the config file (200, or 422 with the error)         |

mod api;
mod rfc3339;
mod status_page;
mod view;

pub use view::{snapshot, ServerView, Snapshot, UpstreamView};

use crate::app::App;
use crate::proxy::body::ResBody;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub async fn serve(listener: TcpListener, app: Arc<App>, mut stop: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let app = app.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(req, app.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn text(status: StatusCode, body: impl Into<String>, ctype: &'static str) -> Response<ResBody> {
    let mut r = Response::new(ResBody::full(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `/readyz`: not shutting down and at least one upstream has a selectable server.
pub fn readiness(app: &App) -> Result<(), String> {
    if app.shared.is_shutting_down() {
        return Err("shutting down".into());
    }
    let rt = app.shared.runtime();
    let now = Instant::now();
    let ready = rt.upstreams.iter().any(|u| {
        let set = u.servers();
        (0..set.servers.len()).any(|i| set.selectable(i, now))
    });
    if ready {
        Ok(())
    } else {
        Err("no upstream has a selectable server".into())
    }
}

async fn handle(req: Request<Incoming>, app: Arc<App>) -> Result<Response<ResBody>, Infallible> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    Ok(match (req.method(), req.uri().path()) {
        (&Method::GET, "/") => text(
            StatusCode::OK,
            status_page::render(&app),
            "text/html; charset=utf-8",
        ),
        (&Method::GET, "/api/upstreams") => text(
            StatusCode::OK,
            api::upstreams_json(&app),
            "application/json",
        ),
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n", PLAIN),
        (&Method::GET, "/readyz") => match readiness(&app) {
            Ok(()) => text(StatusCode::OK, "ready\n", PLAIN),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
                PLAIN,
            ),
        },
        (&Method::GET, "/metrics") => text(
            StatusCode::OK,
            crate::metrics::metrics().render_live(&app.shared.runtime()),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        (&Method::POST, "/api/reload") => match app.reload().await {
            Ok(()) => text(StatusCode::OK, "reloaded\n", PLAIN),
            Err(e) => text(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("reload failed: {e}\n"),
                PLAIN,
            ),
        },
        (_, "/" | "/api/upstreams" | "/healthz" | "/readyz" | "/metrics" | "/api/reload") => {
            let mut r = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed\n",
                PLAIN,
            );
            let allow = if req.uri().path() == "/api/reload" {
                "POST"
            } else {
                "GET"
            };
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            r
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n", PLAIN),
    })
}
