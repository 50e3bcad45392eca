//! Helpers for the reliability and framing tests: a raw TCP origin that records exactly the
//! bytes it receives, a killable hyper origin whose sockets reset on kill, a minimal HTTP/1.1
//! request splitter used to check what reached the origin, and swarmgate started from a config
//! file (so that `POST /api/reload` re-reads it).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request found in a byte stream: its head (as text) and the whole message length.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub head: String,
    pub len: usize,
    /// The message ended inside the buffer (false: truncated).
    pub complete: bool,
}

impl Parsed {
    /// Values of header `name` (case-insensitive), in order.
    pub fn values(&self, name: &str) -> Vec<String> {
        self.head
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }

    pub fn request_line(&self) -> &str {
        self.head.split("\r\n").next().unwrap_or("")
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Splits the first message (request or response) off `buf`. `None` when the head is not
/// complete yet. `no_body`: a response to HEAD or a 1xx/204/304.
pub fn split_message(buf: &[u8], no_body: bool) -> Option<Parsed> {
    let end = find(buf, b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut p = Parsed {
        head,
        len: end,
        complete: true,
    };
    if no_body {
        return Some(p);
    }
    let te = p.values("transfer-encoding");
    let cl = p.values("content-length");
    if te
        .iter()
        .any(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        let mut at = end;
        loop {
            let Some(nl) = find(&buf[at..], b"\r\n") else {
                p.len = buf.len();
                p.complete = false;
                return Some(p);
            };
            let line = String::from_utf8_lossy(&buf[at..at + nl]).into_owned();
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16);
            let Ok(size) = size else {
                p.len = buf.len();
                p.complete = false;
                return Some(p);
            };
            at += nl + 2;
            if size == 0 {
                // Trailers end with an empty line.
                match find(&buf[at..], b"\r\n") {
                    Some(0) => {
                        p.len = at + 2;
                        return Some(p);
                    }
                    _ => match find(&buf[at..], b"\r\n\r\n") {
                        Some(i) => {
                            p.len = at + i + 4;
                            return Some(p);
                        }
                        None => {
                            p.len = buf.len();
                            p.complete = false;
                            return Some(p);
                        }
                    },
                }
            }
            if buf.len() < at + size + 2 {
                p.len = buf.len();
                p.complete = false;
                return Some(p);
            }
            at += size + 2;
        }
    } else if let Some(n) = cl.first().and_then(|v| v.parse::<usize>().ok()) {
        if buf.len() < end + n {
            p.len = buf.len();
            p.complete = false;
        } else {
            p.len = end + n;
        }
    }
    Some(p)
}

/// Every request in `buf`, in order (the last may be incomplete).
pub fn split_all(mut buf: &[u8]) -> Vec<Parsed> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let Some(p) = split_message(buf, false) else {
            out.push(Parsed {
                head: String::from_utf8_lossy(buf).into_owned(),
                len: buf.len(),
                complete: false,
            });
            break;
        };
        buf = &buf[p.len.min(buf.len())..];
        out.push(p);
    }
    out
}

/// Asserts what the proxy must never send: a message with both Content-Length and
/// Transfer-Encoding, or with more than one Content-Length.
pub fn assert_unambiguous(messages: &[Parsed]) {
    for m in messages {
        let cl = m.values("content-length");
        let te = m.values("transfer-encoding");
        assert!(
            !(!cl.is_empty() && !te.is_empty()),
            "CL and TE together: {:?}",
            m.head
        );
        assert!(cl.len() <= 1, "several Content-Length: {:?}", m.head);
        assert!(
            cl.iter().all(|v| v.bytes().all(|b| b.is_ascii_digit())),
            "odd Content-Length: {:?}",
            m.head
        );
        assert!(te.len() <= 1, "several Transfer-Encoding: {:?}", m.head);
    }
}

type Responder = Arc<dyn Fn(&Parsed) -> Reply + Send + Sync>;
/// Bytes received, one buffer per connection.
type ConnLogs = Arc<Mutex<Vec<Arc<Mutex<Vec<u8>>>>>>;

/// What the raw origin does with one request.
pub enum Reply {
    /// Write these bytes and keep the connection for the next request.
    Keep(Vec<u8>),
    /// Write these bytes, then close (FIN).
    Close(Vec<u8>),
    /// Write these bytes, then reset (RST).
    Reset(Vec<u8>),
    /// Write these bytes, stop reading for a while (requests sent meanwhile are lost), record
    /// what arrived, then close: a keepalive connection closed just as it is reused.
    CloseLater(Vec<u8>, Duration),
    /// Write these bytes, then stop reading and writing (hold the socket open).
    Stall(Vec<u8>),
}

/// A raw TCP origin: records every byte received (per connection) and answers each complete
/// request head with its responder.
pub struct RawOrigin {
    pub addr: SocketAddr,
    pub conns: ConnLogs,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawOrigin {
    /// All bytes received, by connection.
    pub fn received(&self) -> Vec<Vec<u8>> {
        self.conns
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.lock().unwrap().clone())
            .collect()
    }

    /// Every request received, over all connections.
    pub fn requests(&self) -> Vec<Parsed> {
        self.received().iter().flat_map(|b| split_all(b)).collect()
    }

    pub fn accepts(&self) -> usize {
        self.conns.lock().unwrap().len()
    }
}

pub async fn raw_origin<F>(respond: F) -> RawOrigin
where
    F: Fn(&Parsed) -> Reply + Send + Sync + 'static,
{
    let respond: Responder = Arc::new(respond);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns: ConnLogs = Arc::default();
    let c = conns.clone();
    let task = tokio::spawn(async move {
        let mut children = tokio::task::JoinSet::new();
        while let Ok((s, _)) = listener.accept().await {
            let log: Arc<Mutex<Vec<u8>>> = Arc::default();
            c.lock().unwrap().push(log.clone());
            children.spawn(serve_raw(s, log, respond.clone()));
        }
    });
    RawOrigin { addr, conns, task }
}

async fn serve_raw(mut s: TcpStream, log: Arc<Mutex<Vec<u8>>>, respond: Responder) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        // Answer every complete request already buffered.
        while let Some(p) = split_message(&pending, false) {
            if !p.complete {
                break;
            }
            pending.drain(..p.len);
            match respond(&p) {
                Reply::Keep(b) => {
                    if s.write_all(&b).await.is_err() {
                        return;
                    }
                }
                Reply::Close(b) => {
                    let _ = s.write_all(&b).await;
                    let _ = s.shutdown().await;
                    // Keep recording what else arrives until the peer closes.
                    drain_into(&mut s, &log).await;
                    return;
                }
                Reply::Reset(b) => {
                    let _ = s.write_all(&b).await;
                    let _ = s.set_zero_linger();
                    return;
                }
                Reply::CloseLater(b, pause) => {
                    let _ = s.write_all(&b).await;
                    tokio::time::sleep(pause).await;
                    let mut buf = vec![0u8; 65536];
                    while let Ok(Ok(n)) =
                        tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await
                    {
                        if n == 0 {
                            break;
                        }
                        log.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    return;
                }
                Reply::Stall(b) => {
                    let _ = s.write_all(&b).await;
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return;
                }
            }
        }
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                log.lock().unwrap().extend_from_slice(&buf[..n]);
                pending.extend_from_slice(&buf[..n]);
            }
        }
    }
}

async fn drain_into(s: &mut TcpStream, log: &Mutex<Vec<u8>>) {
    let mut buf = vec![0u8; 65536];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => log.lock().unwrap().extend_from_slice(&buf[..n]),
            _ => return,
        }
    }
}

/// A fixed 200 response with `body`.
pub fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads from `s` until EOF, error, or `wait` without data; returns the bytes and whether the
/// connection ended (EOF or error) as opposed to going quiet.
pub async fn read_until_quiet(s: &mut TcpStream, wait: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        match tokio::time::timeout(wait, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}
