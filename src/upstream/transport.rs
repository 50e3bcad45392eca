//! The byte stream under an upstream connection: TCP to the server's address, or a stream
//! through the reverse tunnel when the server has `via: <agent>` (the agent resolves and dials
//! the address on its side). TLS and HTTP run on top of either unchanged.

use super::server::Server;
use crate::tunnel::{TunnelError, TunnelStream};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("resolve: {0}")]
    Resolve(std::io::Error),
    #[error("connect: {0}")]
    Io(std::io::Error),
    #[error("{0}")]
    Tunnel(#[from] TunnelError),
}

#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Tunnel(Box<TunnelStream>),
}

/// Opens a byte stream to `server`, at `port` instead of its own when given (health checks).
pub async fn open(server: &Server, port: Option<u16>) -> Result<Stream, TransportError> {
    match &server.config.via {
        Some(agent) => {
            let authority = match port {
                None => server.label.clone(),
                Some(p) => crate::config::ServerAddress {
                    port: p,
                    ..server.address.clone()
                }
                .to_string(),
            };
            let s = crate::tunnel::registry().open(agent, &authority).await?;
            Ok(Stream::Tunnel(Box::new(s)))
        }
        None => {
            let mut addr = server.resolve().await.map_err(TransportError::Resolve)?;
            if let Some(p) = port {
                addr.set_port(p);
            }
            let tcp = TcpStream::connect(addr).await.map_err(TransportError::Io)?;
            let _ = tcp.set_nodelay(true);
            Ok(Stream::Tcp(tcp))
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tunnel(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tunnel(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tunnel(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Tunnel(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tunnel(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tunnel(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
