//! HTTP/1.1 upgrades (WebSocket and others): after the upstream's 101, bytes are copied both
//! ways until either side closes.

use crate::upstream::h1::Upgraded;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// Joins the client's upgraded connection and the upstream's in a background task.
pub fn spawn_tunnel(client: OnUpgrade, mut upstream: Upgraded, server: String) {
    tokio::spawn(async move {
        let c = match client.await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(server, error = %e, "upgrade failed");
                return;
            }
        };
        let mut c = TokioIo::new(c);
        match tokio::io::copy_bidirectional(&mut c, &mut upstream).await {
            Ok((up, down)) => tracing::debug!(server, up, down, "tunnel closed"),
            Err(e) => tracing::debug!(server, error = %e, "tunnel ended"),
        }
    });
}
