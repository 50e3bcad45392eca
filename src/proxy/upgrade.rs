//! HTTP/1.1 upgrades (WebSocket and others): after the upstream's 101, bytes are copied both
//! ways until either side closes.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// Joins the client's and the upstream's upgraded connections in a background task.
pub fn spawn_tunnel(client: OnUpgrade, upstream: OnUpgrade, server: String) {
    tokio::spawn(async move {
        let (c, u) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(server, error = %e, "upgrade failed");
                return;
            }
        };
        let mut c = TokioIo::new(c);
        let mut u = TokioIo::new(u);
        match tokio::io::copy_bidirectional(&mut c, &mut u).await {
            Ok((up, down)) => tracing::debug!(server, up, down, "tunnel closed"),
            Err(e) => tracing::debug!(server, error = %e, "tunnel ended"),
        }
    });
}
