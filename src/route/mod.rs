//! Route target kinds whose target is computed per request (each in its own module). The
//! handler asks the kind for an upstream and the request target to send; errors map to
//! statuses in `proxy/error.rs`.

pub mod gateway;
pub mod table;

use http::Uri;
use std::net::{IpAddr, SocketAddr};

/// Whether `ip:port` reaches one of swarmgate's own listeners (`own`: the bound proxy and admin
/// addresses). A listener on `0.0.0.0` or `[::]` is reached through every local address: one
/// that a socket can be bound to.
pub fn is_own_listener(ip: IpAddr, port: u16, own: &[SocketAddr]) -> bool {
    own.iter().filter(|a| a.port() == port).any(|a| {
        a.ip() == ip || ip.is_unspecified() || (a.ip().is_unspecified() && is_local_address(ip))
    })
}

/// An address of this host: binding a socket to it succeeds.
fn is_local_address(ip: IpAddr) -> bool {
    ip.is_loopback() || std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// The request target `<rest>?<query of uri>` (`rest` empty = `/`), or `None` when that is not
/// a valid request target.
pub fn rest_with_query(rest: &str, uri: &Uri) -> Option<Uri> {
    let rest = if rest.is_empty() { "/" } else { rest };
    let query = uri.query();
    let mut s = String::with_capacity(rest.len() + query.map_or(0, |q| q.len() + 1));
    s.push_str(rest);
    if let Some(q) = query {
        s.push('?');
        s.push_str(q);
    }
    Uri::try_from(s).ok()
}
