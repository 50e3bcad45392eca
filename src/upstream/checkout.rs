//! Which connection a request goes on: a stream slot on a multiplexed HTTP/2 connection, an idle
//! pooled HTTP/1.1 connection, or a new one.

use super::pool::Conn;
use super::sender::Sender;
use super::server::Server;
use super::{connect, ConnectError, Settings};
use crate::config::Protocol;
use std::sync::Arc;
use std::time::Instant;

/// A connection to `server` for one request. `fresh` skips idle HTTP/1.1 connections (a
/// request lost on one is sent again on a new one). For `h2`/`h2c` one dial at a time per
/// server: requests arriving meanwhile wait for it and share it.
pub async fn checkout(
    server: &Arc<Server>,
    settings: &Settings,
    fresh: bool,
) -> Result<Conn, ConnectError> {
    let cfg = &settings.config;
    let max_streams = cfg.http2.max_concurrent_streams;
    let stream = |s| Conn {
        tx: Sender::H2(s),
        uses: 0,
        reused: true,
    };
    match cfg.protocol {
        Protocol::H2 | Protocol::H2c => {
            if let Some(s) = server.h2.checkout(max_streams) {
                return Ok(stream(s));
            }
            let (_dialing, failed) = server.h2.wait_dial().await;
            if let Some(s) = server.h2.checkout(max_streams) {
                return Ok(stream(s));
            }
            if failed {
                return Err(ConnectError::SharedDialFailed);
            }
            // Boxed: the dial (DNS, TCP, TLS) is a large future that would otherwise size
            // every request future, which hyper keeps allocated per client connection.
            let conn = Box::pin(connect(server, settings)).await;
            server.h2.dialed(conn.is_ok());
            conn
        }
        Protocol::Http1 | Protocol::Auto => {
            if cfg.protocol == Protocol::Auto {
                if let Some(s) = server.h2.checkout(max_streams) {
                    return Ok(stream(s));
                }
            }
            if !fresh {
                let idle = server
                    .pool
                    .checkout(Instant::now(), settings.pool.idle_timeout);
                if let Some(c) = idle {
                    return Ok(c);
                }
            }
            Box::pin(connect(server, settings)).await
        }
    }
}
