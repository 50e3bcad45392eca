//! The request handler: validate, route, forward, and turn the upstream response (or the error)
//! into the client response. Errors map to statuses in `error.rs` only.

use super::body::ResBody;
use super::conn::ConnState;
use super::error::ProxyError;
use super::forward::{self, Outgoing};
use super::grpc;
use super::guard::RequestGuard;
use super::headers;
use super::upgrade;
use crate::body::{ClientBody, ReqBody};
use crate::runtime::{Runtime, Shared, Target};
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

/// Per-connection context handed to every request on it.
#[derive(Debug)]
pub struct ConnCtx {
    pub shared: Arc<Shared>,
    /// The configured address of the listener the connection arrived on.
    pub listener: SocketAddr,
    pub peer: SocketAddr,
    /// `http` or `https` (for `X-Forwarded-Proto`).
    pub proto: &'static str,
    /// `peer`'s IP as a header value (for `X-Forwarded-For` and `X-Real-IP`).
    pub client_ip: http::HeaderValue,
    pub state: Arc<ConnState>,
}

pub async fn handle(
    req: Request<ClientBody>,
    cx: Arc<ConnCtx>,
) -> Result<Response<ResBody>, Infallible> {
    let rt = cx.shared.runtime_full();
    let seq = cx.state.begin();
    let h2 = req.version() == Version::HTTP_2;
    let grpc = grpc::is_grpc(req.headers());
    // An HTTP/1.1 request with a body: if it fails before the body was read, the client may
    // still be sending when the connection closes.
    let body_pending = !h2 && !req.body().is_end_stream();
    let deadline = grpc.then(|| grpc::timeout(req.headers())).flatten();
    let log = rt.access_log.then(|| {
        let target = req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().to_string(), |p| p.as_str().to_owned());
        (req.method().clone(), target)
    });
    let mut guard = RequestGuard::begin(cx.state.clone(), log);
    guard.set_protocol(if h2 { "h2" } else { "http/1.1" });
    // Not boxed on its own: every caller boxes `handle` per request (our HTTP/1.1 server, and
    // each HTTP/2 stream in `proxy::h2::stream`), so an idle connection holds none
    // of the forwarding state (~6 KB) and nothing moves it by value.
    let forwarding = proxy(req, &cx, &rt, &mut guard);
    // `grpc-timeout` bounds the wait for the upstream's answer (the header goes upstream too).
    let result = match deadline {
        None => forwarding.await,
        Some(d) => tokio::time::timeout(d, forwarding)
            .await
            .unwrap_or(Err(ProxyError::UpstreamTimeout)),
    };
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => {
            guard.set_error(&e);
            if body_pending || e.closes_connection() {
                cx.state.set_linger();
            }
            if grpc {
                guard.set_grpc_status(e.grpc_status());
            }
            e.to_response(grpc)
        }
    };
    guard.set_status(resp.status().as_u16());
    if grpc {
        if let Some(code) = grpc::status_of(resp.headers()) {
            guard.set_grpc_status(code); // trailers-only answer
        }
    }
    if grpc && !h2 && resp.body().may_have_trailers() {
        // hyper's HTTP/1.1 server sends only the trailer fields the response declares.
        resp.headers_mut()
            .entry(header::TRAILER)
            .or_insert(HeaderValue::from_static(grpc::TRAILER_FIELDS));
    }
    let limit = rt.client.keepalive_requests;
    // HTTP/2: connection-specific fields (RFC 9113 §8.2.2) are stripped where the head is
    // sent (`proxy::h2::stream`); shutdown is a GOAWAY instead.
    if !h2 && resp.status() != StatusCode::SWITCHING_PROTOCOLS // its `Connection: upgrade` stays
        && ((limit != 0 && seq >= limit) || cx.shared.is_shutting_down() || cx.state.is_closing())
    {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(resp.map(|b| b.with_guard(guard)))
}

/// The request target in origin form (path and query), as sent upstream.
fn origin_form(uri: &Uri) -> Uri {
    uri.path_and_query()
        .map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone()))
}

/// The host a request is for: the absolute-form authority, else the Host header, port removed.
fn request_host(req: &Request<ClientBody>) -> Option<&str> {
    let raw = match req.uri().authority() {
        Some(a) => a.as_str(),
        None => req.headers().get(header::HOST)?.to_str().ok()?,
    };
    Some(crate::config::strip_port(raw))
}

async fn proxy(
    mut req: Request<ClientBody>,
    cx: &ConnCtx,
    rt: &Runtime,
    guard: &mut RequestGuard,
) -> Result<Response<ResBody>, ProxyError> {
    let limits = &rt.client;
    if req.method() == Method::CONNECT {
        // Not a forward proxy; and a 2xx to CONNECT would turn both connections into tunnels.
        return Err(ProxyError::MethodNotAllowed("CONNECT"));
    }
    if req
        .uri()
        .path_and_query()
        .is_some_and(|pq| pq.as_str().len() > limits.max_uri_length)
    {
        return Err(ProxyError::UriTooLong);
    }
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host_count = hosts.next().map_or(0, |_| 1 + hosts.count());
    if host_count > 1 {
        return Err(ProxyError::BadRequest("more than one Host header"));
    }
    if let Some(authority) = req.uri().authority() {
        // Absolute-form target: its authority is the host (RFC 9112 §3.2.2); Host follows it.
        let v = HeaderValue::from_str(authority.as_str())
            .map_err(|_| ProxyError::BadRequest("invalid authority"))?;
        req.headers_mut().insert(header::HOST, v);
    } else if host_count == 0 && req.version() == Version::HTTP_11 {
        return Err(ProxyError::BadRequest("missing Host header"));
    }
    let route = rt
        .route(cx.listener, request_host(&req), req.uri().path())
        .ok_or(ProxyError::NoRoute)?;
    // The target kind decides the upstream and the request target sent to it.
    let (upstream, uri) = match &route.target {
        Target::Upstream(u) => (u.clone(), origin_form(req.uri())),
        Target::Gateway(g) => g.resolve(req.uri(), cx.shared.own_addrs())?,
        Target::Table(t) => t.resolve(req.uri(), cx.shared.own_addrs()).await?,
    };
    guard.set_upstream(upstream.clone());

    if limits.max_body_size != 0 {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limits.max_body_size) {
            return Err(ProxyError::BodyTooLarge);
        }
    }

    let upgrade = req.headers().contains_key(header::UPGRADE)
        && headers::connection_has(req.headers(), "upgrade")
        && !headers::upgrade_refused(req.headers());
    // Only an HTTP/1.1 connection can switch protocols.
    let client_upgrade = upgrade && req.version() != Version::HTTP_2;
    let (mut parts, body) = req.into_parts();
    let keep_te = parts.version == Version::HTTP_2 || grpc::is_grpc(&parts.headers);
    headers::to_upstream(
        &mut parts.headers,
        &cx.client_ip,
        cx.proto,
        upgrade,
        keep_te,
    );
    let (body, body_status) = if body.is_end_stream() {
        (ReqBody::empty(), None)
    } else {
        // An HTTP/2 server may refuse the stream unprocessed; a small body kept aside can
        // then go to another server.
        let record = upstream.settings().config.protocol != crate::config::Protocol::Http1;
        let (b, s) = ReqBody::streaming(body, limits.max_body_size, limits.body_timeout, record);
        (b, Some(s))
    };
    let fwd = forward::forward(
        &upstream,
        Outgoing {
            method: parts.method,
            uri,
            headers: parts.headers,
            body,
            body_status,
        },
        guard,
    )
    .await?;
    let (response, lease, read_timeout) = fwd.into_lease();

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        if !client_upgrade {
            return Err(ProxyError::Upstream101);
        }
        let (mut rparts, body) = response.into_parts();
        let upstream_upgrade = body.into_upgraded().ok_or(ProxyError::Upstream101)?;
        rparts.extensions.insert(upgrade::UpstreamUpgrade::new(
            upstream_upgrade,
            lease.server.label.clone(),
            read_timeout,
        ));
        headers::to_client(&mut rparts.headers, true);
        return Ok(Response::from_parts(rparts, ResBody::empty()));
    }
    let (mut rparts, rbody) = response.into_parts();
    headers::to_client(&mut rparts.headers, false);
    let body = ResBody::streamed(rbody, read_timeout, Some(lease));
    let body = if grpc::is_grpc(&rparts.headers) {
        body.grpc()
    } else {
        body
    };
    Ok(Response::from_parts(rparts, body))
}
