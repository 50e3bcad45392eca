//! One proxied connection through the tunnel as seen from the hub: an upgraded HTTP/2 CONNECT
//! stream that counts its bytes into `swarmgate_tunnel_bytes_total`.

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use prometheus::IntCounter;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[derive(Debug)]
pub struct TunnelStream {
    io: TokioIo<Upgraded>,
    /// Bytes received from the agent / sent to it.
    rx: IntCounter,
    tx: IntCounter,
}

impl TunnelStream {
    pub(super) fn new(io: Upgraded, agent: &str) -> Self {
        let m = &crate::metrics::metrics().tunnel_bytes_total;
        TunnelStream {
            io: TokioIo::new(io),
            rx: m.with_label_values(&[agent, "from_agent"]),
            tx: m.with_label_values(&[agent, "to_agent"]),
        }
    }
}

impl AsyncRead for TunnelStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        if n > 0 {
            self.rx.inc_by(n as u64);
        }
        r
    }
}

impl AsyncWrite for TunnelStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.tx.inc_by(n as u64);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
