//! Sending one request upstream: pick a server, take a pooled connection or dial one, send,
//! wait for the response head; on failure, retry only when that is safe (nginx
//! `proxy_next_upstream error timeout`): the request was never sent, or it has no body and an
//! idempotent method, or an HTTP/2 server refused its stream unprocessed (REFUSED_STREAM, above
//! a GOAWAY's last id) and it has no body or a small one kept aside for that. Any other streamed
//! body that started going upstream is never replayed.

use super::body::Lease;
use super::error::ProxyError;
use super::guard::RequestGuard;
use super::headers;
use crate::body::{BodyError, BodyStatus, ReqBody};
use crate::config::WhenAllDown;
use crate::upstream::{checkout, Conn, Server, Settings, Tried, UpBody, Upstream};
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, Uri, Version};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The request as it will go upstream.
pub struct Outgoing {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: ReqBody,
    /// Present when the client sent a body.
    pub body_status: Option<Arc<BodyStatus>>,
}

pub struct Forwarded {
    pub response: Response<UpBody>,
    pub conn: Conn,
    pub server: Arc<Server>,
    pub settings: Arc<Settings>,
}

impl Forwarded {
    /// The connection's way back to its pool once the response body is complete.
    pub fn into_lease(self) -> (Response<UpBody>, Lease, Duration) {
        let read_timeout = self.settings.config.read_timeout;
        (
            self.response,
            Lease {
                conn: self.conn,
                server: self.server,
                limits: self.settings.pool,
            },
            read_timeout,
        )
    }
}

struct Template {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl Template {
    fn request(&self) -> Request<ReqBody> {
        self.request_with(ReqBody::empty())
    }

    fn request_with(&self, body: ReqBody) -> Request<ReqBody> {
        build(
            self.method.clone(),
            self.uri.clone(),
            self.headers.clone(),
            body,
        )
    }
}

fn build(method: Method, uri: Uri, headers: HeaderMap, body: ReqBody) -> Request<ReqBody> {
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = headers;
    req
}

fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    )
}

/// Why one attempt failed.
struct Failure {
    error: ProxyError,
    /// The request, when it was never sent (so it can go to another server).
    returned: Option<Request<ReqBody>>,
    /// A bodyless request that was sent: another server may have it only if it is idempotent.
    spent: Option<Request<ReqBody>>,
    /// Counts against the server's `max_fails`.
    server_fault: bool,
    /// An HTTP/2 stream the server refused unprocessed: any bodyless request may go elsewhere.
    refused: bool,
}

/// Sends `out` to a server of `up`, retrying where safe.
pub async fn forward(
    up: &Upstream,
    out: Outgoing,
    guard: &mut RequestGuard,
) -> Result<Forwarded, ProxyError> {
    let set = up.servers();
    let settings = up.settings();
    let cfg = &settings.config;
    let max_tries = match cfg.next_upstream_tries {
        0 => set.servers.len(),
        n => n as usize,
    }
    .max(1);
    // A bodyless request can be rebuilt: always after an HTTP/2 refusal, else only when its
    // method is idempotent. One with a body only after a refusal, and only when its whole
    // body was kept aside (HTTP/2 upstreams, small bodies: `BodyStatus::replayable`).
    // An HTTP/1.1 connection gives a bodyless request back after a failure (`Failure::spent`);
    // h2 keeps the head it sent, so only an upstream that may speak HTTP/2 keeps a copy.
    let idempotent = idempotent(&out.method);
    let recorded = cfg.protocol != crate::config::Protocol::Http1;
    let template = recorded.then(|| Template {
        method: out.method.clone(),
        uri: out.uri.clone(),
        headers: out.headers.clone(),
    });
    let mut replay = idempotent;
    let status = out.body_status;
    let mut pending = Some(build(out.method, out.uri, out.headers, out.body));
    let mut tried = Tried::default();
    let mut last: Option<ProxyError> = None;
    let try_all = cfg.when_all_down == WhenAllDown::TryAll;
    for _ in 0..max_tries {
        let Some(i) = set.select(&tried, Instant::now(), try_all) else {
            break;
        };
        tried.insert(i);
        let server = set.servers[i].clone();
        guard.set_server(server.clone());
        let Some(req) = pending.take().or_else(|| {
            let t = template.as_ref().filter(|_| replay)?;
            match &status {
                None => Some(t.request()),
                Some(s) => s
                    .replayable()
                    .map(|frames| t.request_with(ReqBody::replay(frames))),
            }
        }) else {
            break;
        };
        match attempt(
            &server,
            &settings,
            req,
            idempotent && status.is_none(),
            status.as_deref(),
            guard,
        )
        .await
        {
            Ok((response, conn)) => {
                server
                    .requests
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                set.report(i, true, Instant::now());
                return Ok(Forwarded {
                    response,
                    conn,
                    server,
                    settings: settings.clone(),
                });
            }
            Err(f) => {
                if let Some(e) = status.as_ref().and_then(|s| s.error()) {
                    return Err(match e {
                        BodyError::TooLarge => ProxyError::BodyTooLarge,
                        other => ProxyError::ClientBody(other),
                    });
                }
                tracing::warn!(upstream = %up.name, server = %server.label, error = %f.error, "upstream attempt failed");
                if f.server_fault {
                    server
                        .failures
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if set.report(i, false, Instant::now()) {
                        tracing::warn!(upstream = %up.name, server = %server.label,
                            fail_timeout = ?server.config.fail_timeout,
                            "upstream server temporarily disabled");
                    }
                }
                pending = f.returned.or(f.spent.filter(|_| idempotent));
                last = Some(f.error);
                replay = (idempotent && status.is_none()) || f.refused;
                if pending.is_none() && !(replay && template.is_some()) {
                    break; // the body is gone, or the server may have acted on it
                }
            }
        }
    }
    Err(match last {
        Some(e) => e,
        None => {
            tracing::error!(upstream = %up.name, "no live upstreams");
            ProxyError::NoLiveUpstreams
        }
    })
}

/// One server: pooled connections (or an HTTP/2 stream slot) first (a dead one is dropped, not
/// blamed on the server), then a fresh one. A bodyless idempotent request (`resend`) lost on a
/// pooled HTTP/1.1 connection the server had just closed is sent again on a fresh connection.
async fn attempt(
    server: &Arc<Server>,
    settings: &Settings,
    mut req: Request<ReqBody>,
    resend: bool,
    status: Option<&BodyStatus>,
    guard: &mut RequestGuard,
) -> Result<(Response<UpBody>, Conn), Failure> {
    let cfg = &settings.config;
    let mut fresh_only = false;
    loop {
        let mut conn = match checkout(server, settings, fresh_only).await {
            Ok(c) => c,
            Err(e) => {
                return Err(Failure {
                    error: ProxyError::Connect(e),
                    returned: Some(req),
                    spent: None,
                    server_fault: true,
                    refused: false,
                })
            }
        };
        if conn.reused && !conn.tx.ready_now() {
            match tokio::time::timeout(Duration::from_secs(1), conn.tx.ready()).await {
                Ok(Ok(())) => {}
                _ => continue,
            }
        }
        conn.uses += 1;
        // A request without Host (HTTP/1.0) names this server; one given back drops it again,
        // as another server has another name.
        let added_host = !req.headers().contains_key(header::HOST)
            && HeaderValue::from_str(&server.label)
                .map(|v| req.headers_mut().insert(header::HOST, v))
                .is_ok();
        let give_back = |mut r: Request<ReqBody>| {
            if added_host {
                r.headers_mut().remove(header::HOST);
            }
            r
        };
        if conn.tx.is_h2() {
            headers::to_h2_upstream(&mut req, cfg.scheme.as_str());
        }
        let reused = conn.reused;
        let waited = {
            // Pinned where it is built: the send future is large, and moving it costs a copy.
            let sent = std::pin::pin!(conn.tx.send(req));
            wait_head(sent, cfg.read_timeout, cfg.send_timeout, status).await
        };
        match waited {
            Ok(Ok(resp)) => return Ok((resp, conn)),
            Ok(Err(e)) => {
                if let Some(r) = e.returned {
                    req = give_back(r);
                    if reused {
                        continue;
                    }
                    return Err(Failure {
                        error: ProxyError::Upstream(e.error),
                        returned: Some(req),
                        spent: None,
                        server_fault: true,
                        refused: false,
                    });
                }
                let err = e.error;
                if err.refused_stream() {
                    // REFUSED_STREAM, or above a GOAWAY's last stream id: the server did not
                    // process it (RFC 9113 §8.7), so another server may have it.
                    return Err(Failure {
                        error: ProxyError::Upstream(err),
                        returned: None,
                        spent: None,
                        server_fault: false,
                        refused: true,
                    });
                }
                let spent = e.spent.map(give_back);
                match spent {
                    Some(r) if resend && reused && !fresh_only => {
                        tracing::debug!(server = %server.label, error = %err, "pooled connection failed; retrying on a fresh one");
                        guard.add_retry();
                        req = r;
                        fresh_only = true;
                        continue;
                    }
                    _ => {}
                }
                // The client's body broke off, or the request could not even be framed for
                // the server (a head h2 refuses): not the server's fault.
                let client_side = status.is_some_and(|s| s.error().is_some()) || err.is_unsent();
                let error = if err.is_head_too_large() {
                    ProxyError::UpstreamHeadTooLarge
                } else {
                    ProxyError::Upstream(err)
                };
                return Err(Failure {
                    error,
                    returned: None,
                    spent,
                    server_fault: !client_side,
                    refused: false,
                });
            }
            Err(why) => {
                return Err(Failure {
                    error: match why {
                        HeadTimeout::Read => ProxyError::UpstreamTimeout,
                        HeadTimeout::Send => ProxyError::UpstreamSendTimeout,
                    },
                    returned: None,
                    spent: None,
                    server_fault: true,
                    refused: false,
                })
            }
        }
    }
}

/// Why waiting for a response head gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeadTimeout {
    /// No response head within `read_timeout` of the request being sent.
    Read,
    /// The server stopped taking the request body for `send_timeout`.
    Send,
}

/// Waits for the response head. `read_timeout` runs once the request body (if any) has been
/// read completely: a slow upload is governed by `client_body_timeout` instead, and a server
/// that stops reading the body (its connection blocked on a frame) by `send_timeout`.
async fn wait_head<F, T>(
    fut: F,
    read_timeout: Duration,
    send_timeout: Duration,
    status: Option<&BodyStatus>,
) -> Result<T, HeadTimeout>
where
    F: std::future::Future<Output = T>,
{
    tokio::pin!(fut);
    // When the body (if any) was seen complete: `read_timeout` counts from there.
    let mut read_from: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let sending = status.is_some_and(|s| !s.finished() && s.error().is_none());
        let (deadline, why) = if sending {
            read_from = None;
            match status.and_then(BodyStatus::upstream_stalled_since) {
                Some(since) => (since + send_timeout, HeadTimeout::Send),
                // Waiting for the client: its own timer (client_body_timeout) runs; look again
                // within `send_timeout` in case the upstream stalls meanwhile.
                None => (now + send_timeout.min(read_timeout), HeadTimeout::Read),
            }
        } else {
            (
                *read_from.get_or_insert(now) + read_timeout,
                HeadTimeout::Read,
            )
        };
        match tokio::time::timeout_at(deadline.into(), &mut fut).await {
            Ok(v) => return Ok(v),
            Err(_) => {
                let still_sending = status.is_some_and(|s| !s.finished() && s.error().is_none());
                match why {
                    HeadTimeout::Send
                        if status
                            .and_then(BodyStatus::upstream_stalled_since)
                            .is_some_and(|since| since + send_timeout <= Instant::now()) =>
                    {
                        return Err(HeadTimeout::Send)
                    }
                    HeadTimeout::Read if !sending && !still_sending => {
                        return Err(HeadTimeout::Read)
                    }
                    _ => continue,
                }
            }
        }
    }
}
