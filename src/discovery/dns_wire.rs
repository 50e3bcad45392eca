//! A minimal DNS client for `resolver: ip:port`: one A and one AAAA query over UDP (RFC 1035
//! §4), answers read from the answer section. No caching, no TCP fallback (a truncated answer
//! uses what arrived), no search domains: the name is asked as written. The system resolver
//! (`tokio::net::lookup_host`) is used when no resolver is configured.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use tokio::net::UdpSocket;

/// How long one query waits for its answer.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const RCODE_NXDOMAIN: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("dns socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("no answer from {0} within {QUERY_TIMEOUT:?}")]
    Timeout(SocketAddr),
    #[error("{0}: no such name")]
    NoSuchName(String),
    #[error("{name}: server failure (rcode {rcode})")]
    Rcode { name: String, rcode: u8 },
    #[error("malformed dns answer")]
    Malformed,
    #[error("invalid name {0:?}")]
    BadName(String),
}

/// Every A and AAAA address of `name` according to `server`.
pub async fn lookup(server: SocketAddr, name: &str) -> Result<Vec<IpAddr>, DnsError> {
    let (a, aaaa) = tokio::join!(query(server, name, TYPE_A), query(server, name, TYPE_AAAA));
    let (a, aaaa) = (a?, aaaa?);
    if a.is_none() && aaaa.is_none() {
        return Err(DnsError::NoSuchName(name.to_owned()));
    }
    let mut out: Vec<IpAddr> = a.into_iter().chain(aaaa).flatten().collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// One query; `None` for NXDOMAIN.
async fn query(
    server: SocketAddr,
    name: &str,
    qtype: u16,
) -> Result<Option<Vec<IpAddr>>, DnsError> {
    let bind: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(bind).await?;
    sock.connect(server).await?;
    let id: u16 = {
        use rand::{Rng, SeedableRng};
        rand::rngs::SmallRng::from_os_rng().random()
    };
    let msg = encode_query(id, name, qtype)?;
    sock.send(&msg).await?;
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + QUERY_TIMEOUT;
    loop {
        let n = tokio::time::timeout_at(deadline, sock.recv(&mut buf))
            .await
            .map_err(|_| DnsError::Timeout(server))??;
        match decode_answer(&buf[..n], id, qtype) {
            Ok(Answer::Other) => continue, // not ours (stale id): keep waiting
            Ok(Answer::NxDomain) => return Ok(None),
            Ok(Answer::Rcode(rcode)) => {
                return Err(DnsError::Rcode {
                    name: name.to_owned(),
                    rcode,
                })
            }
            Ok(Answer::Addrs(v)) => return Ok(Some(v)),
            Err(e) => return Err(e),
        }
    }
}

fn encode_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, DnsError> {
    let mut m = Vec::with_capacity(18 + name.len());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00]); // RD
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QD=1
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(DnsError::BadName(name.to_owned()));
        }
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]); // IN
    Ok(m)
}

enum Answer {
    Addrs(Vec<IpAddr>),
    NxDomain,
    Rcode(u8),
    Other,
}

fn decode_answer(m: &[u8], id: u16, qtype: u16) -> Result<Answer, DnsError> {
    if m.len() < 12 || u16::from_be_bytes([m[0], m[1]]) != id || m[2] & 0x80 == 0 {
        return Ok(Answer::Other);
    }
    match m[3] & 0x0f {
        0 => {}
        RCODE_NXDOMAIN => return Ok(Answer::NxDomain),
        rcode => return Ok(Answer::Rcode(rcode)),
    }
    let qd = u16::from_be_bytes([m[4], m[5]]);
    let an = u16::from_be_bytes([m[6], m[7]]);
    let mut pos = 12;
    for _ in 0..qd {
        pos = skip_name(m, pos)? + 4;
    }
    let mut out = Vec::new();
    for _ in 0..an {
        pos = skip_name(m, pos)?;
        let head = m.get(pos..pos + 10).ok_or(DnsError::Malformed)?;
        let rtype = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[8], head[9]]));
        let data = m.get(pos + 10..pos + 10 + len).ok_or(DnsError::Malformed)?;
        pos += 10 + len;
        if rtype != qtype {
            continue; // CNAME and the like: the addresses follow
        }
        match (rtype, <[u8; 4]>::try_from(data), <[u8; 16]>::try_from(data)) {
            (TYPE_A, Ok(b), _) => out.push(IpAddr::from(b)),
            (TYPE_AAAA, _, Ok(b)) => out.push(IpAddr::from(b)),
            _ => return Err(DnsError::Malformed),
        }
    }
    Ok(Answer::Addrs(out))
}

/// Position after the (possibly compressed) name at `pos`.
fn skip_name(m: &[u8], mut pos: usize) -> Result<usize, DnsError> {
    loop {
        let len = *m.get(pos).ok_or(DnsError::Malformed)?;
        match len {
            0 => return Ok(pos + 1),
            l if l & 0xc0 == 0xc0 => return Ok(pos + 2),
            l => pos += 1 + usize::from(l),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_encodes_labels() {
        let q = encode_query(7, "tasks.web", TYPE_A).unwrap();
        assert_eq!(&q[12..], b"\x05tasks\x03web\x00\x00\x01\x00\x01");
        assert!(encode_query(7, "a..b", TYPE_A).is_err());
    }

    #[test]
    fn answer_with_compressed_names() {
        let mut m = encode_query(9, "x", TYPE_A).unwrap();
        m[2] = 0x81;
        m[3] = 0x80;
        m[7] = 2;
        for ip in [[10, 0, 0, 1], [10, 0, 0, 2]] {
            m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4]);
            m.extend_from_slice(&ip);
        }
        match decode_answer(&m, 9, TYPE_A).unwrap() {
            Answer::Addrs(v) => assert_eq!(
                v,
                vec![IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2])]
            ),
            _ => panic!("expected addresses"),
        }
        assert!(matches!(decode_answer(&m, 8, TYPE_A), Ok(Answer::Other)));
    }
}
