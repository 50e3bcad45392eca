//! The validated `gateway:` route target (SCOW's proxy gateway node) and the address grammar it
//! shares with request paths: canonical IP literals, CIDR networks and port ranges.
//!
//! Only one spelling of an address is accepted, so that what is checked is what is dialled:
//! `127.1`, `2130706433`, `0x7f.0.0.1`, `0177.0.0.1`, upper-case or uncompressed IPv6 and
//! IPv4-mapped IPv6 are refused instead of being interpreted.

use super::{Scheme, UpstreamConfig, UpstreamTls};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// `routes[].gateway`: forwards `<path_prefix><cluster>/relative|absolute/<node>/<port><rest>`
/// to `node:port` when the target is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// `allow`: networks a target may be in. Required, non-empty. Loopback, link-local,
    /// unspecified, multicast and broadcast addresses need an exact entry (`/32`, `/128` or a
    /// bare address) even when a wider network covers them.
    pub allow: Vec<Cidr>,
    /// `ports`: allowed target ports and ranges. Default any (empty list).
    pub ports: Vec<PortRange>,
    /// `clusters`: accepted cluster ids (exact, case-sensitive). Default any.
    pub clusters: Option<Vec<String>>,
    /// `scheme` towards targets. Default `http`.
    pub scheme: Scheme,
    /// `tls_verify` (default true) and `tls_ca` (default the system roots) when `https`.
    pub tls: Option<UpstreamTls>,
    /// `connect_timeout`. Default 5 s.
    pub connect_timeout: Duration,
    /// `read_timeout`: longest wait between two reads from a target (504). Default 60 s.
    pub read_timeout: Duration,
    /// `keepalive`: idle pooled connections kept per target. Default 8; 0 disables pooling.
    pub keepalive: usize,
}

impl GatewayConfig {
    /// The upstream settings every target is dialled with: this gateway's keys, the upstream
    /// defaults for the rest (keepalive_timeout 60 s, keepalive_requests 1000, send_timeout
    /// 60 s, 64 KiB response heads, 256 KiB reads, one try per request).
    pub fn upstream_template(&self, name: &str) -> UpstreamConfig {
        UpstreamConfig {
            tls: self.tls.clone(),
            keepalive: self.keepalive,
            connect_timeout: self.connect_timeout,
            read_timeout: self.read_timeout,
            ..UpstreamConfig::per_target(name, self.scheme)
        }
    }
}

/// An IPv4 or IPv6 network: `10.10.0.0/16`, `fd00::/8`; a bare address is `/32` or `/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

impl Cidr {
    /// Parses a network with canonical addresses only; host bits must be zero.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (a, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr = parse_canonical_ip(a).map_err(|e| format!("invalid network {s:?}: {e}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => match parse_decimal(l) {
                Some(n) if n <= u32::from(max) => n as u8,
                _ => return Err(format!("invalid prefix length in {s:?} (0..={max})")),
            },
        };
        let cidr = Cidr { addr, len };
        let net = cidr.network();
        if net != addr {
            return Err(format!(
                "{s:?} has host bits set (the network is {})",
                Cidr { addr: net, len }
            ));
        }
        Ok(cidr)
    }

    /// A single address (`/32` or `/128`).
    pub fn is_exact(&self) -> bool {
        self.len == if self.addr.is_ipv4() { 32 } else { 128 }
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask32(self.len);
                u32::from(ip) & mask == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask128(self.len);
                u128::from(ip) & mask == u128::from(net)
            }
            _ => false,
        }
    }

    fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(self.len))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(self.len))),
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn mask32(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask128(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

/// An inclusive port range; `8080` is `8080-8080`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    /// `8080` or `22-65535`; ports 1..=65535, low end first.
    pub fn parse(s: &str) -> Result<PortRange, String> {
        let bad = || format!("invalid port range {s:?} (expected e.g. 8080 or 22-65535)");
        let (lo, hi) = s.trim().split_once('-').unwrap_or((s.trim(), s.trim()));
        let lo = parse_port(lo.trim()).map_err(|_| bad())?;
        let hi = parse_port(hi.trim()).map_err(|_| bad())?;
        if lo > hi {
            return Err(bad());
        }
        Ok(PortRange { lo, hi })
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.lo..=self.hi).contains(&port)
    }
}

/// A cluster id as SCOW names them (its `config/clusters/<id>` directories): 1 to 64 of
/// `A-Z a-z 0-9 . _ -`, not `.` or `..`.
pub fn valid_cluster_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A decimal number as written by a canonicalising printer: ASCII digits, no sign, no leading
/// zero (except `0` itself), at most 10 digits.
fn parse_decimal(s: &str) -> Option<u32> {
    let ok = !s.is_empty()
        && s.len() <= 10
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    ok.then(|| s.parse::<u32>().ok()).flatten()
}

/// A port in canonical decimal: 1..=65535, no leading zeros.
pub fn parse_port(s: &str) -> Result<u16, &'static str> {
    match parse_decimal(s) {
        Some(0) => Err("port 0"),
        Some(n) => u16::try_from(n).map_err(|_| "port above 65535"),
        None => Err("port is not a canonical decimal number"),
    }
}

/// An IP literal in its one canonical spelling: IPv4 as four decimal octets without leading
/// zeros (`10.0.0.5`); IPv6 as RFC 5952 prints it (`fd00::5`: lower case, longest zero run
/// compressed, no brackets, no zone, no embedded dotted quad). IPv4-mapped and IPv4-compatible
/// IPv6 addresses are refused: write the IPv4 address. Hostnames are refused.
pub fn parse_canonical_ip(s: &str) -> Result<IpAddr, &'static str> {
    if s.contains(':') {
        if !s
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b':'))
        {
            return Err("IPv6 address with characters other than 0-9, a-f and ':'");
        }
        let ip: Ipv6Addr = s.parse().map_err(|_| "invalid IPv6 address")?;
        let seg = ip.segments();
        if seg[..5] == [0; 5] && seg[5] == 0xffff {
            return Err("IPv4-mapped IPv6 address (write the IPv4 address)");
        }
        if seg[..6] == [0; 6] && u32::from(seg[6]) << 16 | u32::from(seg[7]) > 1 {
            return Err("IPv4-compatible IPv6 address (write the IPv4 address)");
        }
        if ip.to_string() != s {
            return Err("IPv6 address not in canonical form (RFC 5952)");
        }
        return Ok(IpAddr::V6(ip));
    }
    if !s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err("not an IP address (hostnames are not accepted)");
    }
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return Err("IPv4 address needs four dotted octets");
    }
    let mut octets = [0u8; 4];
    for (o, part) in octets.iter_mut().zip(parts) {
        *o = parse_decimal(part)
            .filter(|_| part.len() <= 3)
            .and_then(|n| u8::try_from(n).ok())
            .ok_or("IPv4 octet is not a decimal 0-255 without leading zeros")?;
    }
    Ok(IpAddr::V4(Ipv4Addr::from(octets)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_ips_only() {
        for ok in [
            "10.0.0.5",
            "0.0.0.0",
            "255.255.255.255",
            "fd00::5",
            "::1",
            "::",
            "fe80::1",
        ] {
            let ip = parse_canonical_ip(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(ip.to_string(), ok);
        }
        for bad in [
            "127.1",
            "2130706433",
            "0x7f.0.0.1",
            "0177.0.0.1",
            "127.0.0.01",
            "127.0.0.1.",
            ".127.0.0.1",
            "127..0.1",
            "256.0.0.1",
            "1.2.3.4.5",
            "+1.2.3.4",
            "",
            "localhost",
            "FD00::5",
            "fd00:0:0:0:0:0:0:5",
            "fd00::0005",
            "[fd00::5]",
            "fe80::1%eth0",
            "::ffff:127.0.0.1",
            "::ffff:7f00:1",
            "::127.0.0.1",
            "::7f00:1",
            "1:0:0:0:0:0:0:0:0",
        ] {
            assert!(parse_canonical_ip(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn networks() {
        let n = Cidr::parse("10.10.0.0/16").unwrap();
        assert!(n.contains("10.10.255.1".parse().unwrap()));
        assert!(!n.contains("10.11.0.1".parse().unwrap()));
        assert!(!n.contains("::1".parse().unwrap()));
        assert!(!n.is_exact());
        assert!(Cidr::parse("127.0.0.2").unwrap().is_exact());
        assert!(Cidr::parse("127.0.0.2/32").unwrap().is_exact());
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("1.2.3.4".parse().unwrap()));
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        for bad in [
            "10.10.1.0/16",
            "10.10.0.0/33",
            "10.10.0.0/",
            "10.10/16",
            "fd00::/129",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Cidr::parse("10.10.1.0/16")
            .unwrap_err()
            .contains("10.10.0.0/16"));
    }

    #[test]
    fn ports() {
        assert_eq!(
            PortRange::parse("22-65535").unwrap(),
            PortRange { lo: 22, hi: 65535 }
        );
        assert_eq!(
            PortRange::parse("8080").unwrap(),
            PortRange { lo: 8080, hi: 8080 }
        );
        for bad in ["0", "65536", "10-5", "08080", "a", "-1", ""] {
            assert!(PortRange::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
