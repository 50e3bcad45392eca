//! Whether a gateway may connect to a target: the cluster is accepted, the port is in `ports`,
//! the address is in `allow`, special addresses only by an exact entry, and never swarmgate's
//! own listeners.

use crate::config::GatewayConfig;
use crate::route::is_own_listener;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The reason a target is refused (answered with 403), if it is.
pub fn refusal(
    cfg: &GatewayConfig,
    cluster: &str,
    ip: IpAddr,
    port: u16,
    own: &[SocketAddr],
) -> Option<&'static str> {
    if cfg
        .clusters
        .as_ref()
        .is_some_and(|c| !c.iter().any(|c| c == cluster))
    {
        return Some("unknown cluster");
    }
    // Even an exact entry does not open a loop back into swarmgate (its proxy or admin port).
    if is_own_listener(ip, port, own) {
        return Some("target is swarmgate's own listener");
    }
    let exact = cfg.allow.iter().any(|n| n.is_exact() && n.addr() == ip);
    if !exact {
        if let Some(kind) = special(ip) {
            return Some(kind);
        }
        if !cfg.allow.iter().any(|n| n.contains(ip)) {
            return Some("target address not in allow");
        }
    }
    if !cfg.ports.is_empty() && !cfg.ports.iter().any(|r| r.contains(port)) {
        return Some("target port not in ports");
    }
    None
}

/// Addresses that a network entry does not open: they reach the gateway host itself, its link,
/// or many hosts at once. `Some(reason)` for those.
pub fn special(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if a == 127 {
                Some("loopback address needs an exact allow entry")
            } else if a == 0 {
                // 0.0.0.0 dials the local host; the rest of 0/8 is "this network".
                Some("unspecified address needs an exact allow entry")
            } else if a == 169 && b == 254 {
                Some("link-local address needs an exact allow entry")
            } else if v4 == Ipv4Addr::BROADCAST {
                Some("broadcast address needs an exact allow entry")
            } else if a >= 224 {
                // 224/4 multicast, 240/4 reserved.
                Some("multicast or reserved address needs an exact allow entry")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback address needs an exact allow entry")
            } else if v6.is_unspecified() {
                Some("unspecified address needs an exact allow entry")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local address needs an exact allow entry")
            } else if first & 0xff00 == 0xff00 {
                Some("multicast or reserved address needs an exact allow entry")
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Cidr, PortRange, Scheme};
    use std::time::Duration;

    fn cfg(allow: &[&str]) -> GatewayConfig {
        GatewayConfig {
            allow: allow.iter().map(|a| Cidr::parse(a).unwrap()).collect(),
            ports: vec![PortRange { lo: 22, hi: 65535 }],
            clusters: Some(vec!["hpc01".into()]),
            scheme: Scheme::Http,
            tls: None,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            keepalive: 1,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_do_not_open_special_addresses() {
        let c = cfg(&["0.0.0.0/0", "::/0"]);
        for special in [
            "127.0.0.1",
            "127.255.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "169.254.169.254",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "ff02::1",
        ] {
            assert!(
                refusal(&c, "hpc01", ip(special), 80, &[]).is_some(),
                "{special} allowed by a network entry"
            );
        }
        assert_eq!(refusal(&c, "hpc01", ip("10.1.2.3"), 80, &[]), None);
        assert_eq!(refusal(&c, "hpc01", ip("fd00::1"), 80, &[]), None);
        let exact = cfg(&["169.254.169.254/32", "::1/128", "127.0.0.2"]);
        for allowed in ["169.254.169.254", "::1", "127.0.0.2"] {
            assert_eq!(refusal(&exact, "hpc01", ip(allowed), 80, &[]), None);
        }
    }

    #[test]
    fn clusters_ports_and_own_listeners() {
        let c = cfg(&["10.0.0.0/8", "127.0.0.1/32"]);
        assert_eq!(
            refusal(&c, "other", ip("10.0.0.1"), 80, &[]),
            Some("unknown cluster")
        );
        assert_eq!(
            refusal(&c, "hpc01", ip("10.0.0.1"), 21, &[]),
            Some("target port not in ports")
        );
        assert_eq!(
            refusal(&c, "hpc01", ip("11.0.0.1"), 80, &[]),
            Some("target address not in allow")
        );
        let own: Vec<SocketAddr> = vec!["127.0.0.1:8080".parse().unwrap()];
        assert!(refusal(&c, "hpc01", ip("127.0.0.1"), 8080, &own).is_some());
        assert_eq!(refusal(&c, "hpc01", ip("127.0.0.1"), 8081, &own), None);
        let wildcard: Vec<SocketAddr> = vec!["0.0.0.0:9901".parse().unwrap()];
        assert!(is_own_listener(ip("127.0.0.2"), 9901, &wildcard));
        assert!(is_own_listener(ip("0.0.0.0"), 9901, &wildcard));
        assert!(!is_own_listener(ip("192.0.2.1"), 9901, &wildcard));
    }
}
