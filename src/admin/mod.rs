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
//! | `/api/tables/...`     | route tables (`tables.rs`)                                    |
//!
//! With `admin.token_file`, every call that changes something (any method but GET) and every
//! `/api/tables` call needs `Authorization: Bearer <token>` (else 401).

mod api;
mod rfc3339;
mod status_page;
mod tables;
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

/// `/readyz`: not shutting down, and at least one upstream has a selectable server or a
/// route table exists (a table serves even while its Redis is down: see [`degraded`]).
pub fn readiness(app: &App) -> Result<(), String> {
    if app.shared.is_shutting_down() {
        return Err("shutting down".into());
    }
    let rt = app.shared.runtime();
    let now = Instant::now();
    let ready = rt.tables().next().is_some()
        || rt.upstreams.iter().any(|u| {
            let set = u.servers();
            (0..set.servers.len()).any(|i| set.selectable(i, now))
        });
    if ready {
        Ok(())
    } else {
        Err("no upstream has a selectable server".into())
    }
}

/// What `/readyz` adds while ready: route tables whose store does not answer.
pub fn degraded(app: &App) -> Vec<String> {
    app.shared
        .runtime()
        .tables()
        .filter(|t| !t.store().is_up())
        .map(|t| {
            format!(
                "table {}: store unreachable, serving cached entries",
                t.name()
            )
        })
        .collect()
}

/// Whether the request carries the admin token (always true without `admin.token_file`).
/// Compared in constant time.
fn authorized(req: &Request<Incoming>, app: &App) -> bool {
    let Some(token) = app.shared.runtime().admin_token.clone() else {
        return true;
    };
    let Some(got) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
    else {
        return false;
    };
    let want = token.as_bytes();
    got.len() == want.len() && got.iter().zip(want).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

async fn handle(req: Request<Incoming>, app: Arc<App>) -> Result<Response<ResBody>, Infallible> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    let tables = req
        .uri()
        .path()
        .strip_prefix("/api/tables/")
        .map(str::to_owned);
    if (tables.is_some() || req.method() != Method::GET) && !authorized(&req, &app) {
        let mut r = text(
            StatusCode::UNAUTHORIZED,
            "unauthorized: Bearer token required\n",
            PLAIN,
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return Ok(r);
    }
    if let Some(rest) = tables {
        let method = req.method().clone();
        let (status, body, is_json) = tables::handle(&app, &method, &rest, req.into_body()).await;
        let ctype = if is_json { "application/json" } else { PLAIN };
        return Ok(text(status, body, ctype));
    }
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
            Ok(()) => {
                let notes = degraded(&app);
                if notes.is_empty() {
                    text(StatusCode::OK, "ready\n", PLAIN)
                } else {
                    text(
                        StatusCode::OK,
                        format!("ready (degraded: {})\n", notes.join("; ")),
                        PLAIN,
                    )
                }
            }
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
