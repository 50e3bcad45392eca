//! The gateway part of a request path, `<cluster>/relative|absolute/<node>/<port><rest>`, parsed
//! strictly: one spelling per address and port, and nothing that a proxy or application in
//! front or behind could normalise into a different path.

use crate::config::gateway::{parse_canonical_ip, parse_port, valid_cluster_id};
use std::net::IpAddr;

/// SCOW's two forms: `relative` sends `<rest>`, `absolute` the original request target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Relative,
    Absolute,
}

#[derive(Debug, PartialEq, Eq)]
pub struct GatewayPath<'a> {
    pub cluster: &'a str,
    pub form: Form,
    pub ip: IpAddr,
    pub port: u16,
    /// Empty or starting with `/`.
    pub rest: &'a str,
}

/// Parses the path after the route's prefix (which ends with `/`). Refused (the reason is
/// returned): empty segments (`//`), `.` and `..` segments, percent-encoded `.`, `/` and `\`
/// and raw `\` anywhere in it; a cluster id outside [`valid_cluster_id`]; a form other than
/// `relative` or `absolute`; a node that is not a canonical IP literal; a port that is not
/// canonical decimal 1..=65535; anything but `/` right after the port.
pub fn parse(tail: &str) -> Result<GatewayPath<'_>, &'static str> {
    if tail.contains("//") || tail.starts_with('/') {
        return Err("empty path segment");
    }
    if tail.split('/').any(|s| s == "." || s == "..") {
        return Err("dot segment in path");
    }
    if tail.contains('\\') || has_encoded_separator(tail) {
        return Err("encoded '.', '/' or '\\' in path");
    }
    let mut parts = tail.splitn(4, '/');
    let (Some(cluster), Some(form), Some(node), Some(port_rest)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("expected <cluster>/relative|absolute/<node>/<port>");
    };
    if !valid_cluster_id(cluster) {
        return Err("invalid cluster id");
    }
    let form = match form {
        "relative" => Form::Relative,
        "absolute" => Form::Absolute,
        _ => return Err("expected relative or absolute after the cluster id"),
    };
    let ip = parse_canonical_ip(node)?;
    let (port, rest) = match port_rest.find('/') {
        Some(i) => port_rest.split_at(i),
        None => (port_rest, ""),
    };
    let port = parse_port(port)?;
    Ok(GatewayPath {
        cluster,
        form,
        ip,
        port,
        rest,
    })
}

/// `%2e`, `%2f` or `%5c` in any case.
fn has_encoded_separator(s: &str) -> bool {
    s.as_bytes().windows(3).any(|w| {
        w[0] == b'%'
            && matches!(
                (w[1], w[2].to_ascii_lowercase()),
                (b'2', b'e') | (b'2', b'f') | (b'5', b'c')
            )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let p = parse("hpc01/relative/10.0.0.5/8888/lab/tree").unwrap();
        assert_eq!(
            p,
            GatewayPath {
                cluster: "hpc01",
                form: Form::Relative,
                ip: "10.0.0.5".parse().unwrap(),
                port: 8888,
                rest: "/lab/tree",
            }
        );
        let p = parse("c/absolute/fd00::5/80").unwrap();
        assert_eq!((p.form, p.port, p.rest), (Form::Absolute, 80, ""));
        assert_eq!(parse("c/relative/10.0.0.5/80/").unwrap().rest, "/");
    }

    #[test]
    fn refused() {
        for bad in [
            "c/relative/10.0.0.5/80abc",
            "c/relative/10.0.0.5",
            "c/relative/10.0.0.5/",
            "c/other/10.0.0.5/80",
            "c/relative/10.0.0.5/0",
            "c/relative/10.0.0.5/65536",
            "c/relative/10.0.0.5/080",
            "c/relative/10.0.0.5/80//x",
            "c/relative/10.0.0.5/80/a/../b",
            "c/relative/10.0.0.5/80/a/%2E%2e/b",
            "c/relative/10.0.0.5/80/a%2fb",
            "c/relative/10.0.0.5/80/a%5Cb",
            "c/relative/10.0.0.5/80/a\\b",
            "/c/relative/10.0.0.5/80",
            "../relative/10.0.0.5/80",
            "c%2e/relative/10.0.0.5/80",
            "c/relative/127.1/80",
            "c/relative/node01/80",
            "",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
