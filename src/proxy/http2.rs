//! HTTP/2 on client connections: h2c prior knowledge recognised by its preface on plain
//! listeners, h2 chosen by ALPN on TLS ones, and hyper's HTTP/2 server configured from `http2:`
//! with the limits against stream abuse (rapid reset, header lists, reset floods).

use crate::config::{ClientLimits, Http2Settings};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;
use tokio::net::TcpStream;

/// The client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Streams a client may reset before the server has accepted them, after which the connection
/// is closed with ENHANCE_YOUR_CALM (CVE-2023-44487, "rapid reset"). hyper's default.
const MAX_PENDING_ACCEPT_RESETS: usize = 20;
/// Streams swarmgate may reset because of the client's protocol errors before it gives up on
/// the connection.
const MAX_LOCAL_ERROR_RESETS: usize = 256;

/// What a plain connection's first bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    Http1,
    H2,
    /// Closed, or nothing within the header timeout.
    Nothing,
}

/// Looks at (without consuming) the first bytes of a plain connection: the HTTP/2 preface, or
/// anything else (HTTP/1.1). Waits at most `timeout` for them.
pub async fn sniff(stream: &TcpStream, timeout: Duration) -> Sniffed {
    let look = async {
        let mut buf = [0u8; PREFACE.len()];
        loop {
            let n = match stream.peek(&mut buf).await {
                Ok(0) | Err(_) => return Sniffed::Nothing,
                Ok(n) => n,
            };
            if buf[..n] != PREFACE[..n] {
                return Sniffed::Http1;
            }
            if n == PREFACE.len() {
                return Sniffed::H2;
            }
            // A prefix of the preface: the rest is on its way (peek does not wait for more
            // than is already there).
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::time::timeout(timeout, look)
        .await
        .unwrap_or(Sniffed::Nothing)
}

/// hyper's HTTP/2 server builder for client connections.
pub fn server_builder(
    h2: &Http2Settings,
    limits: &ClientLimits,
) -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .max_concurrent_streams(h2.max_concurrent_streams)
        .initial_stream_window_size(h2.initial_stream_window)
        .initial_connection_window_size(connection_window(h2))
        .keep_alive_interval(h2.keepalive_interval)
        .keep_alive_timeout(h2.keepalive_timeout)
        .max_header_list_size(u32::try_from(limits.max_header_size).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESETS)
        .max_send_buf_size(h2.initial_stream_window as usize);
    b
}

/// The connection-level window: room for a few streams at full speed.
pub fn connection_window(h2: &Http2Settings) -> u32 {
    h2.initial_stream_window
        .saturating_mul(4)
        .min(u32::MAX >> 1)
}
