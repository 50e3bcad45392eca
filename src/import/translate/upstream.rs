//! `upstream {}` blocks: servers, keepalive, nginx_upstream_check_module's `check*`.

use super::Translator;
use crate::config::units::parse_duration;
use crate::import::model::{scalar, ServerOut, UpstreamOut, Val};
use crate::import::parse::Directive;

impl Translator {
    pub(super) fn upstream(&mut self, d: &Directive) {
        let Some(name) = d.args.first().cloned() else {
            self.skip(d, "upstream without a name");
            return;
        };
        let mut u = UpstreamOut {
            name: name.clone(),
            at: format!("{} upstream {name}", d.at()),
            declared: true,
            ..UpstreamOut::default()
        };
        for s in d.block.as_deref().unwrap_or_default() {
            let arg = s.args.first().cloned().unwrap_or_default();
            match s.name.as_str() {
                "server" => self.upstream_server(s, &mut u),
                "keepalive" => match arg.parse::<usize>() {
                    Ok(_) => {
                        u.keys.insert(
                            "keepalive",
                            Val {
                                text: arg,
                                comment: Self::origin(s),
                            },
                        );
                    }
                    Err(_) => self.skip(s, "invalid number"),
                },
                "keepalive_timeout" if parse_duration(&arg).is_ok() => {
                    u.keys.insert(
                        "keepalive_timeout",
                        Val {
                            text: scalar(&arg),
                            comment: Self::origin(s),
                        },
                    );
                }
                "keepalive_requests" if arg.parse::<u64>().is_ok() => {
                    u.keys.insert(
                        "keepalive_requests",
                        Val {
                            text: arg,
                            comment: Self::origin(s),
                        },
                    );
                }
                "check" => self.check(s, &mut u),
                "check_http_send" => self.check_send(s, &mut u),
                "check_http_expect_alive" => {
                    let mut list = Vec::new();
                    for a in &s.args {
                        match a
                            .strip_prefix("http_")
                            .filter(|c| matches!(*c, "2xx" | "3xx" | "4xx" | "5xx"))
                        {
                            Some(c) => list.push(c.to_owned()),
                            None => self.skip(s, format!("unknown status class {a}")),
                        }
                    }
                    if !list.is_empty() {
                        u.health.retain(|(k, _)| *k != "expect_status");
                        u.health
                            .push(("expect_status", format!("[{}]", list.join(", "))));
                    }
                }
                "zone" => self.skip(s, "not needed: swarmgate's workers share one state"),
                "least_conn" | "ip_hash" | "hash" | "random" | "sticky" => self.skip(
                    s,
                    "swarmgate balances with smooth weighted round robin only (nginx's default)",
                ),
                _ => self.skip(s, "no equivalent in swarmgate"),
            }
        }
        if u.servers.is_empty() {
            self.skip(d, "no translatable server: the upstream is left out");
            return;
        }
        self.out.upstreams.push(u);
    }

    pub(super) fn upstream_server(&mut self, s: &Directive, u: &mut UpstreamOut) {
        let Some(addr) = s.args.first() else {
            self.skip(s, "server without an address");
            return;
        };
        if addr.starts_with("unix:") {
            self.skip(s, "unix sockets are not supported");
            return;
        }
        let address = if addr.starts_with('[') {
            if addr.contains("]:") {
                addr.clone()
            } else {
                format!("{addr}:80")
            }
        } else if addr.contains(':') {
            addr.clone()
        } else {
            format!("{addr}:80")
        };
        if crate::config::parse_server_address(&address).is_err() {
            self.skip(s, format!("invalid address {addr}"));
            return;
        }
        let mut out = ServerOut {
            address,
            comment: Self::origin(s),
            ..ServerOut::default()
        };
        for p in &s.args[1..] {
            let (k, v) = p.split_once('=').unwrap_or((p.as_str(), ""));
            match k {
                "weight" | "max_fails" if v.parse::<u32>().is_ok() => {
                    let key = if k == "weight" { "weight" } else { "max_fails" };
                    out.params.push((key, v.to_owned()));
                }
                "fail_timeout" if parse_duration(v).is_ok() => {
                    out.params.push(("fail_timeout", scalar(v)));
                }
                "backup" => out.params.push(("backup", "true".into())),
                "down" => out.params.push(("down", "true".into())),
                "resolve" => {}
                _ => self.skip(s, format!("server parameter {p} has no equivalent")),
            }
        }
        u.servers.push(out);
    }

    /// `check interval=ms rise=n fall=n timeout=ms type=... default_down=... port=n`.
    pub(super) fn check(&mut self, s: &Directive, u: &mut UpstreamOut) {
        u.health_comment = Self::origin(s);
        let mut kind = "tcp"; // the module's default
        for p in &s.args {
            let (k, v) = p.split_once('=').unwrap_or((p.as_str(), ""));
            let ms = v.parse::<u64>().ok();
            match (k, ms) {
                ("interval", Some(n)) => u.health.push(("interval", format!("{n}ms"))),
                ("timeout", Some(n)) => u.health.push(("timeout", format!("{n}ms"))),
                ("rise", Some(n)) => u.health.push(("rise", n.to_string())),
                ("fall", Some(n)) => u.health.push(("fall", n.to_string())),
                ("port", Some(n)) if n > 0 => u.health.push(("port", n.to_string())),
                ("port", Some(0)) => {}
                ("default_down", _) if v == "true" || v == "false" => {
                    u.health.push(("default_down", v.to_owned()))
                }
                ("type", _) => match v {
                    "http" | "tcp" => kind = if v == "http" { "http" } else { "tcp" },
                    _ => {
                        self.skip(
                            s,
                            format!("check type={v} is not supported; a tcp check is used"),
                        );
                        kind = "tcp";
                    }
                },
                _ => self.skip(s, format!("check parameter {p} has no equivalent")),
            }
        }
        // The module's defaults where swarmgate's differ.
        if !u.health.iter().any(|(k, _)| *k == "interval") {
            u.health.push(("interval", "30s".into()));
        }
        if !u.health.iter().any(|(k, _)| *k == "default_down") {
            u.health.push(("default_down", "true".into()));
        }
        u.health.insert(0, ("type", kind.into()));
    }

    /// `check_http_send "GET /path HTTP/1.0\r\nHost: x\r\n\r\n"` → method, path, host.
    pub(super) fn check_send(&mut self, s: &Directive, u: &mut UpstreamOut) {
        let req = s.args.first().cloned().unwrap_or_default();
        let mut lines = req.split("\r\n").flat_map(|l| l.split('\n'));
        let mut first = lines.next().unwrap_or_default().split_whitespace();
        match (first.next(), first.next()) {
            (Some(m), Some(p)) if p.starts_with('/') => {
                u.health.push(("method", scalar(m)));
                u.health.push(("path", scalar(p)));
            }
            _ => {
                self.skip(s, "request line not understood");
                return;
            }
        }
        for l in lines.filter(|l| !l.is_empty()) {
            match l.split_once(':') {
                Some((h, v)) if h.trim().eq_ignore_ascii_case("host") => {
                    u.health.push(("host", scalar(v.trim())))
                }
                _ => self.skip(s, format!("probe header {l:?} is not sent")),
            }
        }
    }
}
