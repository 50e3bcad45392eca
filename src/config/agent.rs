//! The agent's configuration file (`swarmgate agent --config agent.yaml`): one `agent:` section,
//! validated like the main file (key path and line in every error).

use super::raw::RawAgentFile;
use super::validate::Validator;
use super::ConfigError;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The validated `agent:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// `hub`: `host:port` of the hub's tunnel listener; a name with several addresses means one
    /// connection to each. Required.
    pub hub: String,
    /// `name`: the agent name the hub knows (its `tunnel.agents` key). Required.
    pub name: String,
    /// `token_file`: file holding this agent's token (surrounding whitespace ignored). Required.
    pub token_file: PathBuf,
    /// `tls_ca`: PEM roots to verify the hub with. Default the system roots.
    pub tls_ca: Option<PathBuf>,
    /// `allow`: the only target networks (CIDR, or a bare IP) the hub may reach through this
    /// agent. Default empty = nothing is reachable.
    pub allow: Vec<Cidr>,
    /// `keepalive_timeout`: a silent hub connection is dropped after this long (HTTP/2 PINGs
    /// every half of it). Default 10 s.
    pub keepalive_timeout: Duration,
}

/// An IP network, `10.0.0.0/24` or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = ip
            .trim()
            .parse()
            .map_err(|_| format!("invalid network {s:?} (expected e.g. 10.0.0.0/24)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.trim().parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(format!("invalid prefix length in {s:?} (0..={max})")),
            },
        };
        Ok(Cidr { addr, prefix })
    }

    /// Whether `ip` lies in this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl AgentConfig {
    /// Reads and validates an agent file.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        parse_agent_config(&text)
    }
}

/// Parses and validates the text of an agent file.
pub fn parse_agent_config(text: &str) -> Result<AgentConfig, ConfigError> {
    let raw: RawAgentFile =
        serde_yaml::from_str(text).map_err(|e| ConfigError::Yaml(e.to_string()))?;
    let v = Validator { text };
    let a = raw.agent;
    if !a.hub.contains(':') {
        return Err(v.invalid(
            "agent.hub".into(),
            "hub",
            None,
            format!("{:?} needs a port (host:port)", a.hub),
        ));
    }
    if a.name.trim().is_empty() {
        return Err(v.invalid(
            "agent.name".into(),
            "name",
            None,
            "must not be empty".into(),
        ));
    }
    let mut allow = Vec::with_capacity(a.allow.len());
    for (i, s) in a.allow.iter().enumerate() {
        allow.push(
            Cidr::parse(s).map_err(|m| v.invalid(format!("agent.allow[{i}]"), "allow", None, m))?,
        );
    }
    Ok(AgentConfig {
        keepalive_timeout: v.keepalive(a.keepalive_timeout, "agent")?,
        hub: a.hub,
        name: a.name,
        token_file: a.token_file.into(),
        tls_ca: a.tls_ca.map(PathBuf::from),
        allow,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_contains() {
        let n = Cidr::parse("10.0.0.0/24").unwrap();
        assert!(n.contains("10.0.0.5".parse().unwrap()));
        assert!(!n.contains("10.0.1.5".parse().unwrap()));
        assert!(n.contains("::ffff:10.0.0.9".parse().unwrap()));
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
    }

    #[test]
    fn agent_file_errors_name_key_and_line() {
        let e = parse_agent_config(
            "agent:\n  hub: \"h:1\"\n  name: a\n  token_file: t\n  allow: [\"10.0.0.0/99\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("agent.allow[0]") && e.contains("line 5"), "{e}");
        let e = parse_agent_config("agent:\n  hub: h\n  name: a\n  token_file: t\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("agent.hub"), "{e}");
    }
}
