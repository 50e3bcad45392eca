//! The hello before HTTP/2: the agent sends a length-prefixed JSON `{"name", "token"}`, the hub
//! answers a length-prefixed JSON `{"ok": bool, "reason"}`. Length prefixes (not lines) so that
//! neither side reads ahead into the HTTP/2 bytes that follow.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest hello or answer accepted.
const MAX_FRAME: usize = 16 << 10;

#[derive(Serialize, Deserialize)]
pub struct Hello {
    pub name: String,
    pub token: String,
}

impl std::fmt::Debug for Hello {
    // The token never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hello").field("name", &self.name).finish()
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Answer {
    pub ok: bool,
    #[serde(default)]
    pub reason: String,
}

pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    v: &T,
) -> std::io::Result<()> {
    let body = serde_json::to_vec(v).map_err(std::io::Error::other)?;
    let len =
        u16::try_from(body.len()).map_err(|_| std::io::Error::other("tunnel hello too large"))?;
    let mut buf = Vec::with_capacity(body.len() + 2);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(&body);
    w.write_all(&buf).await?;
    w.flush().await
}

pub async fn read_frame<R: AsyncRead + Unpin, T: for<'de> Deserialize<'de>>(
    r: &mut R,
) -> std::io::Result<T> {
    let mut len = [0u8; 2];
    r.read_exact(&mut len).await?;
    let len = usize::from(u16::from_be_bytes(len));
    if len > MAX_FRAME {
        return Err(std::io::Error::other("tunnel hello too large"));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    serde_json::from_slice(&body)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Equality whose time does not depend on where the inputs differ (only on their lengths).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    diff == 0
}

/// Reads a token file: its content without surrounding whitespace; empty is an error.
pub fn read_token(path: &std::path::Path) -> std::io::Result<String> {
    let t = std::fs::read_to_string(path)?.trim().to_owned();
    if t.is_empty() {
        return Err(std::io::Error::other(format!(
            "{}: empty token file",
            path.display()
        )));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[tokio::test]
    async fn frames_round_trip_without_reading_ahead() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        write_frame(
            &mut a,
            &Hello {
                name: "m".into(),
                token: "t".into(),
            },
        )
        .await
        .unwrap();
        a.write_all(b"NEXT").await.unwrap();
        let h: Hello = read_frame(&mut b).await.unwrap();
        assert_eq!((h.name.as_str(), h.token.as_str()), ("m", "t"));
        let mut rest = [0u8; 4];
        b.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"NEXT");
    }
}
