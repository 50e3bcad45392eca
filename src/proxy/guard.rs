//! The end of a request, wherever it ends: when its response body is dropped the guard writes
//! the access-log line, counts the metrics and releases the in-flight counts.

use super::conn::ConnState;
use crate::metrics;
use crate::upstream::{Server, Upstream};
use http::Method;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug)]
pub struct RequestGuard {
    start: Instant,
    conn: Arc<ConnState>,
    /// Method and target, kept only when the access log is on.
    log: Option<(Method, String)>,
    upstream: Option<Arc<Upstream>>,
    server: Option<Arc<Server>>,
    status: u16,
    bytes: u64,
    error: Option<String>,
    tries: u32,
    retries: u32,
    /// `http/1.1` or `h2`.
    protocol: &'static str,
    /// The gRPC call's status (from the server's trailers or swarmgate's own answer).
    grpc_status: Option<u16>,
}

impl RequestGuard {
    /// A request re-sent on a fresh connection to the same server.
    pub fn add_retry(&mut self) {
        self.retries += 1;
    }

    pub fn begin(conn: Arc<ConnState>, log: Option<(Method, String)>) -> Self {
        RequestGuard {
            start: Instant::now(),
            conn,
            log,
            upstream: None,
            server: None,
            status: 0,
            bytes: 0,
            error: None,
            tries: 0,
            retries: 0,
            protocol: "http/1.1",
            grpc_status: None,
        }
    }

    pub fn set_protocol(&mut self, protocol: &'static str) {
        self.protocol = protocol;
    }

    pub fn set_grpc_status(&mut self, code: u16) {
        self.grpc_status = Some(code);
    }

    pub fn set_upstream(&mut self, u: Arc<Upstream>) {
        self.upstream = Some(u);
    }

    /// The server now carrying the request (counted in its in-flight requests).
    pub fn set_server(&mut self, s: Arc<Server>) {
        s.active.fetch_add(1, Ordering::Relaxed);
        if let Some(old) = self.server.replace(s) {
            old.active.fetch_sub(1, Ordering::Relaxed);
        }
        self.tries += 1;
    }

    pub fn set_status(&mut self, status: u16) {
        self.status = status;
        if let Some(u) = &self.upstream {
            u.series
                .duration(&u.name)
                .observe(self.start.elapsed().as_secs_f64());
        }
    }

    pub fn set_error(&mut self, e: &dyn std::fmt::Display) {
        self.error = Some(e.to_string());
    }

    pub fn add_bytes(&mut self, n: u64) {
        self.bytes += n;
    }

    pub fn body_error(&mut self, e: &str) {
        self.error = Some(format!("response body: {e}"));
    }

    pub fn start(&self) -> Instant {
        self.start
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.conn.end();
        metrics::bytes_out().inc_by(self.bytes);
        let upstream = self.upstream.as_ref().map_or("", |u| u.name.as_str());
        let server = self.server.as_ref().map_or("", |s| s.label.as_str());
        if let Some(s) = &self.server {
            s.active.fetch_sub(1, Ordering::Relaxed);
        }
        metrics::client_requests(self.protocol).inc();
        if let Some(g) = self.grpc_status {
            metrics::metrics()
                .grpc_responses_total
                .with_label_values(&[upstream, &g.to_string()])
                .inc();
        }
        if let Some(u) = &self.upstream {
            let code = http::StatusCode::from_u16(self.status);
            let code = code.as_ref().map_or("000", |s| s.as_str());
            match &self.server {
                Some(s) if !u.dynamic => s.responses.inc(upstream, server, self.status, code),
                _ => metrics::metrics()
                    .requests_total
                    .with_label_values(&[upstream, "", code])
                    .inc(),
            }
            let retries = self.retries + self.tries.saturating_sub(1);
            if retries > 0 {
                u.series.retries(upstream).inc_by(u64::from(retries));
            }
        }
        if let Some((method, target)) = &self.log {
            tracing::info!(
                target: "access",
                method = %method,
                path = %target,
                protocol = self.protocol,
                status = self.status,
                upstream,
                server,
                tries = self.tries,
                duration_ms = self.start.elapsed().as_secs_f64() * 1000.0,
                bytes = self.bytes,
                error = self.error.as_deref().unwrap_or(""),
                grpc_status = self.grpc_status,
            );
        }
    }
}
