//! HTTP/1.1 upgrades (WebSocket and others): after the upstream's 101, bytes are copied both
//! ways until either side closes. The handler hands the upstream's upgraded connection to the
//! client connection's loop (`h1::serve`) in the 101 response's extensions; the loop writes the
//! 101 and then joins the two connections in a task of their own.

use crate::upstream::h1::Upgraded;
use bytes::{Buf, BytesMut};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// The upstream's side of an upgrade, riding in the 101 response's extensions.
#[derive(Clone)]
pub struct UpstreamUpgrade {
    conn: Arc<Mutex<Option<Upgraded>>>,
    server: String,
}

impl UpstreamUpgrade {
    pub fn new(conn: Upgraded, server: String) -> Self {
        UpstreamUpgrade {
            conn: Arc::new(Mutex::new(Some(conn))),
            server,
        }
    }

    fn take(&self) -> Option<Upgraded> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Joins the client's connection (after the 101 went out; `prefix`: bytes the client sent
/// after its request head, already read) and the upstream's in a background task.
pub fn spawn_tunnel<C>(mut client: C, mut prefix: BytesMut, upstream: UpstreamUpgrade)
where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let server = upstream.server.clone();
    let Some(mut up) = upstream.take() else {
        return;
    };
    tokio::spawn(async move {
        while prefix.has_remaining() {
            match up.write(&prefix).await {
                Ok(0) | Err(_) => return,
                Ok(n) => prefix.advance(n),
            }
        }
        drop(prefix);
        match tokio::io::copy_bidirectional(&mut client, &mut up).await {
            Ok((up, down)) => tracing::debug!(server, up, down, "tunnel closed"),
            Err(e) => tracing::debug!(server, error = %e, "tunnel ended"),
        }
    });
}
