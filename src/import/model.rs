//! The swarmgate config being built by the importer, kept as key/value text with the nginx
//! origin of each value (rendered as YAML comments by `emit.rs`).

use std::collections::BTreeMap;

/// A value and where it came from (`file:line directive ...`), for the trailing comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Val {
    /// YAML scalar text, already quoted when needed.
    pub text: String,
    pub comment: String,
}

/// One static server.
#[derive(Debug, Clone, Default)]
pub struct ServerOut {
    pub address: String,
    pub params: Vec<(&'static str, String)>,
    pub comment: String,
}

/// One upstream group.
#[derive(Debug, Clone, Default)]
pub struct UpstreamOut {
    pub name: String,
    /// Upstream keys (`scheme`, `tls_verify`, `keepalive`, ...).
    pub keys: BTreeMap<&'static str, Val>,
    pub servers: Vec<ServerOut>,
    /// `health_check` keys in order.
    pub health: Vec<(&'static str, String)>,
    pub health_comment: String,
    /// Comment lines printed above the upstream (the keepalive trap, notes).
    pub notes: Vec<String>,
    /// Where it was declared, for messages.
    pub at: String,
    /// Declared with `upstream NAME {}` (else made for a `proxy_pass http://host:port`).
    pub declared: bool,
}

/// What a route sends to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetOut {
    Upstream(String),
    /// SCOW's gateway: clusters (empty = any) and scheme.
    Gateway {
        clusters: Vec<String>,
        scheme: &'static str,
    },
}

/// One route.
#[derive(Debug, Clone)]
pub struct RouteOut {
    pub listen: Option<String>,
    pub host: Option<String>,
    pub path: String,
    pub exact: bool,
    pub target: TargetOut,
    pub comment: String,
}

/// The whole output.
#[derive(Debug, Default)]
pub struct ConfigOut {
    /// Top-level keys.
    pub top: BTreeMap<&'static str, Val>,
    pub listen: Vec<String>,
    pub tls: Option<(String, String)>,
    pub upstreams: Vec<UpstreamOut>,
    pub routes: Vec<RouteOut>,
    /// Header comment lines.
    pub notes: Vec<String>,
}

/// A YAML scalar for `s`: bare when it is a plain token, else single-quoted.
pub fn scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
        );
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}
