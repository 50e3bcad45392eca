//! A minimal RESP2 client: enough for `HGET`, `CONFIG SET`, `SUBSCRIBE` and `PING`. Replies
//! are parsed from an internal buffer, so that reading is cancel-safe (a timed-out read loses
//! nothing). Bulk strings above 64 KiB and arrays above 1024 items or nested deeper than 4 are
//! refused as protocol errors.

use bytes::{Buf, BytesMut};
use std::io;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MAX_BULK: usize = 64 << 10;
const MAX_ITEMS: usize = 1024;
const MAX_DEPTH: usize = 4;

/// A reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    /// `None` is the nil bulk string.
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

fn proto(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("redis protocol: {why}"))
}

/// One connection.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

impl Conn {
    /// Dials `authority` within `timeout`, then `AUTH` (with a password) and `SELECT` (db ≠ 0).
    pub async fn connect(url: &crate::config::RedisUrl, timeout: Duration) -> io::Result<Conn> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(url.authority()))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "redis connect timed out"))??;
        let _ = stream.set_nodelay(true);
        let mut c = Conn {
            stream,
            buf: BytesMut::with_capacity(512),
        };
        if let Some(pw) = &url.password {
            c.expect_ok(&[b"AUTH", pw.as_bytes()], timeout).await?;
        }
        if url.db != 0 {
            let db = url.db.to_string();
            c.expect_ok(&[b"SELECT", db.as_bytes()], timeout).await?;
        }
        Ok(c)
    }

    async fn expect_ok(&mut self, args: &[&[u8]], timeout: Duration) -> io::Result<()> {
        match self.call(args, timeout).await? {
            Reply::Error(e) => Err(io::Error::other(format!("redis: {e}"))),
            _ => Ok(()),
        }
    }

    /// Sends one command.
    pub async fn send(&mut self, args: &[&[u8]]) -> io::Result<()> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.stream.write_all(&out).await
    }

    /// Sends one command and reads its reply, all within `timeout`.
    pub async fn call(&mut self, args: &[&[u8]], timeout: Duration) -> io::Result<Reply> {
        tokio::time::timeout(timeout, async {
            self.send(args).await?;
            self.read().await
        })
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "redis timed out"))?
    }

    /// Reads the next reply (cancel-safe).
    pub async fn read(&mut self) -> io::Result<Reply> {
        loop {
            if let Some((reply, used)) = parse(&self.buf, 0)? {
                self.buf.advance(used);
                return Ok(reply);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "redis closed the connection",
                ));
            }
        }
    }
}

/// One reply from the start of `b`: `Ok(None)` when incomplete, else the reply and its length.
fn parse(b: &[u8], depth: usize) -> io::Result<Option<(Reply, usize)>> {
    let Some(end) = b.windows(2).position(|w| w == b"\r\n") else {
        if b.len() > MAX_BULK {
            return Err(proto("line too long"));
        }
        return Ok(None);
    };
    let Some((&kind, line)) = b[..end].split_first() else {
        return Err(proto("empty line"));
    };
    let text = || String::from_utf8_lossy(line).into_owned();
    let int = || -> io::Result<i64> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| proto("bad integer"))
    };
    let head = end + 2;
    Ok(Some(match kind {
        b'+' => (Reply::Simple(text()), head),
        b'-' => (Reply::Error(text()), head),
        b':' => (Reply::Int(int()?), head),
        b'$' => {
            let n = int()?;
            if n < 0 {
                return Ok(Some((Reply::Bulk(None), head)));
            }
            let n = usize::try_from(n).map_err(|_| proto("bad length"))?;
            if n > MAX_BULK {
                return Err(proto("bulk string too long"));
            }
            if b.len() < head + n + 2 {
                return Ok(None);
            }
            (Reply::Bulk(Some(b[head..head + n].to_vec())), head + n + 2)
        }
        b'*' => {
            let n = int()?;
            if n < 0 {
                return Ok(Some((Reply::Array(None), head)));
            }
            let n = usize::try_from(n).map_err(|_| proto("bad length"))?;
            if n > MAX_ITEMS || depth >= MAX_DEPTH {
                return Err(proto("array too large or too deep"));
            }
            let mut items = Vec::with_capacity(n);
            let mut at = head;
            for _ in 0..n {
                match parse(&b[at..], depth + 1)? {
                    Some((r, used)) => {
                        items.push(r);
                        at += used;
                    }
                    None => return Ok(None),
                }
            }
            (Reply::Array(Some(items)), at)
        }
        _ => return Err(proto("unknown reply type")),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_complete_replies_only() {
        let msg = b"*3\r\n$7\r\nmessage\r\n$5\r\nchan1\r\n$4\r\nhset\r\n";
        for cut in 0..msg.len() {
            assert!(parse(&msg[..cut], 0).unwrap().is_none(), "cut {cut}");
        }
        let (r, used) = parse(msg, 0).unwrap().unwrap();
        assert_eq!(used, msg.len());
        assert_eq!(
            r,
            Reply::Array(Some(vec![
                Reply::Bulk(Some(b"message".to_vec())),
                Reply::Bulk(Some(b"chan1".to_vec())),
                Reply::Bulk(Some(b"hset".to_vec())),
            ]))
        );
        assert_eq!(parse(b"$-1\r\n", 0).unwrap().unwrap().0, Reply::Bulk(None));
        assert_eq!(
            parse(b"+OK\r\n", 0).unwrap().unwrap().0,
            Reply::Simple("OK".into())
        );
        assert!(parse(b"?x\r\n", 0).is_err());
    }
}
