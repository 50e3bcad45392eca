//! nginx directives → [`ConfigOut`]. Every directive is either translated (to a key, or to
//! behaviour swarmgate always has, noted as a comment) or reported in [`Translator::skipped`]
//! as `file:line: directive: reason`. Nothing is dropped silently.

use super::model::{scalar, ConfigOut, RouteOut, ServerOut, TargetOut, UpstreamOut, Val};
use super::parse::Directive;
use crate::config::units::{parse_duration, parse_size};
use std::collections::BTreeMap;

/// Settings inherited from http → server → location (nginx's merge: an inner level's value
/// wins; a level with any `proxy_set_header` replaces the whole inherited list).
#[derive(Debug, Clone, Default)]
struct Ctx {
    /// Upstream keys from `proxy_*` directives: key → (value, origin).
    proxy: BTreeMap<&'static str, (String, String)>,
    /// `proxy_set_header` list in effect and where it was set.
    headers: Vec<(String, String)>,
    headers_at: Option<String>,
    /// Whether an outer level's list had `Connection ""` (for the trap note).
    outer_connection_cleared: bool,
    http_version: Option<(String, String)>,
    client_max_body_size: Option<String>,
}

/// One `server {}` block's routing facts.
struct ServerBlock<'a> {
    listens: Vec<(String, bool)>,
    names: Vec<String>,
    locations: Vec<(&'a Directive, Ctx)>,
    at: String,
}

pub struct Translator {
    pub out: ConfigOut,
    /// `file:line: directive: reason` lines.
    pub skipped: Vec<String>,
    /// Upstreams by name, with the scheme a `proxy_pass` used and where.
    uses: BTreeMap<String, (&'static str, String)>,
}

impl Translator {
    pub fn new() -> Self {
        Translator {
            out: ConfigOut::default(),
            skipped: Vec::new(),
            uses: BTreeMap::new(),
        }
    }

    fn skip(&mut self, d: &Directive, reason: impl AsRef<str>) {
        self.skipped
            .push(format!("{}: {}: {}", d.at(), d.name, reason.as_ref()));
    }

    fn origin(d: &Directive) -> String {
        let mut s = format!("{} {}", d.at(), d.name);
        for a in &d.args {
            s.push(' ');
            if a.is_empty() || a.contains(' ') {
                s.push_str(&format!("\"{a}\""));
            } else {
                s.push_str(a);
            }
        }
        s
    }

    /// Sets a top-level key; a different value from another level is reported (swarmgate has
    /// one value for every listener).
    fn set_top(&mut self, key: &'static str, text: String, d: &Directive) {
        if let Some(old) = self.out.top.get(key) {
            if old.text != text {
                let msg = format!(
                    "swarmgate has one `{key}` for every server and location; kept {} ({})",
                    old.text, old.comment
                );
                self.skip(d, msg);
            }
            return;
        }
        let comment = Self::origin(d);
        self.out.top.insert(key, Val { text, comment });
    }

    /// The main context.
    pub fn main(&mut self, top: &[Directive]) {
        for d in top {
            match d.name.as_str() {
                "worker_processes" => match d.args.first().map(String::as_str) {
                    Some("auto") => self.set_top("workers", "0".into(), d),
                    Some(n) if n.parse::<usize>().is_ok() => self.set_top("workers", n.into(), d),
                    _ => self.skip(d, "invalid value"),
                },
                "http" => {
                    let block = d.block.clone().unwrap_or_default();
                    self.http(&block);
                }
                "events" => {
                    for e in d.block.as_deref().unwrap_or_default() {
                        self.skip(
                            e,
                            "no equivalent (swarmgate has no worker connection limit; see max_connections)",
                        );
                    }
                }
                "user" => self.skip(d, "no equivalent: run the container as that user"),
                "pid" => self.skip(d, "no equivalent: swarmgate writes no pid file"),
                "error_log" => self.skip(
                    d,
                    "no equivalent: logs go to stdout (RUST_LOG sets the level)",
                ),
                _ => self.skip(d, "no equivalent in swarmgate"),
            }
        }
    }

    fn http(&mut self, block: &[Directive]) {
        let mut ctx = Ctx::default();
        let mut servers = Vec::new();
        // Settings first (nginx merges them regardless of order), then upstreams and servers.
        for d in block {
            match d.name.as_str() {
                "upstream" | "server" => {}
                _ => {
                    if !self.common(d, &mut ctx) {
                        self.skip(d, "no equivalent in swarmgate");
                    }
                }
            }
        }
        for d in block.iter().filter(|d| d.name == "upstream") {
            self.upstream(d);
        }
        for d in block.iter().filter(|d| d.name == "server") {
            if let Some(s) = self.server(d, &ctx) {
                servers.push(s);
            }
        }
        self.routes(servers);
    }

    /// Directives valid at http, server and location level; false when not one of them.
    fn common(&mut self, d: &Directive, ctx: &mut Ctx) -> bool {
        let arg = d.args.first().cloned().unwrap_or_default();
        let origin = Self::origin(d);
        let proxy_key = match d.name.as_str() {
            "proxy_connect_timeout" => Some(("connect_timeout", true)),
            "proxy_read_timeout" => Some(("read_timeout", true)),
            "proxy_send_timeout" => Some(("send_timeout", true)),
            "proxy_buffer_size" => Some(("proxy_buffer_size", false)),
            "proxy_next_upstream_tries" => Some(("next_upstream_tries", false)),
            "proxy_ssl_trusted_certificate" => Some(("tls_ca", false)),
            "proxy_ssl_name" => Some(("tls_sni", false)),
            _ => None,
        };
        if let Some((key, is_time)) = proxy_key {
            let ok = if is_time {
                parse_duration(&arg).is_ok()
            } else if key == "proxy_buffer_size" {
                parse_size(&arg).is_ok()
            } else {
                true
            };
            if !ok || d.args.len() != 1 || arg.contains('$') {
                self.skip(d, "value not translatable");
            } else {
                ctx.proxy.insert(key, (scalar(&arg), origin));
            }
            return true;
        }
        match d.name.as_str() {
            "proxy_ssl_verify" => match arg.as_str() {
                "on" => {
                    ctx.proxy.insert("tls_verify", ("true".into(), origin));
                }
                "off" => {
                    ctx.proxy.insert("tls_verify", ("false".into(), origin));
                }
                _ => self.skip(d, "invalid value"),
            },
            "proxy_http_version" => {
                if arg != "1.1" {
                    self.skip(
                        d,
                        "swarmgate always speaks HTTP/1.1 (or HTTP/2 with `protocol`) upstream",
                    );
                }
                ctx.http_version = Some((arg, d.at()));
            }
            "proxy_set_header" => {
                // http level (server and location levels handle it themselves).
                ctx.headers
                    .push((arg, d.args.get(1).cloned().unwrap_or_default()));
                ctx.headers_at.get_or_insert_with(|| d.at());
            }
            "proxy_buffering" | "proxy_request_buffering" => {
                if arg != "off" {
                    self.skip(d, "swarmgate never buffers bodies (as with `off`)");
                }
            }
            "proxy_pass_request_headers" => {
                if arg != "on" {
                    self.skip(d, "swarmgate always passes the request headers");
                }
            }
            "ignore_invalid_headers" => {
                if arg != "off" {
                    self.skip(
                        d,
                        "swarmgate passes every header with a valid token name (as with `off`)",
                    );
                }
            }
            "proxy_next_upstream" => {
                let mut a = d.args.clone();
                a.sort();
                if a != ["error", "timeout"] {
                    self.skip(
                        d,
                        "swarmgate retries on error and timeout only, when safe (nginx's default)",
                    );
                }
            }
            "proxy_ssl_server_name" => {
                if arg != "on" {
                    self.skip(d, "swarmgate sends SNI for hostnames (as with `on`)");
                }
            }
            "client_max_body_size" => {
                if parse_size(&arg).is_err() {
                    self.skip(d, "invalid size");
                } else {
                    ctx.client_max_body_size = Some(arg.clone());
                    self.set_top("client_max_body_size", scalar(&arg), d);
                }
            }
            "client_header_timeout"
            | "client_body_timeout"
            | "lingering_time"
            | "lingering_timeout" => {
                if parse_duration(&arg).is_ok() {
                    let key = match d.name.as_str() {
                        "client_header_timeout" => "client_header_timeout",
                        "client_body_timeout" => "client_body_timeout",
                        "lingering_time" => "lingering_time",
                        _ => "lingering_timeout",
                    };
                    self.set_top(key, scalar(&arg), d);
                } else {
                    self.skip(d, "invalid time");
                }
            }
            "keepalive_timeout" => {
                if parse_duration(&arg).is_ok() {
                    self.set_top("keepalive_timeout", scalar(&arg), d);
                    if d.args.len() > 1 {
                        self.skip(
                            d,
                            "the second value (Keep-Alive: timeout= header) is not sent",
                        );
                    }
                } else {
                    self.skip(d, "invalid time");
                }
            }
            "keepalive_requests" => match arg.parse::<u64>() {
                Ok(_) => self.set_top("keepalive_requests", arg, d),
                Err(_) => self.skip(d, "invalid number"),
            },
            "client_body_buffer_size" => {
                if parse_size(&arg).is_ok() {
                    self.set_top("client_body_buffer_size", scalar(&arg), d);
                } else {
                    self.skip(d, "invalid size");
                }
            }
            "large_client_header_buffers" => {
                match (
                    d.args.first().and_then(|n| n.parse::<u64>().ok()),
                    d.args.get(1).map(|s| parse_size(s)),
                ) {
                    (Some(n), Some(Ok(size))) => {
                        self.set_top("large_client_header_buffers", (n * size).to_string(), d)
                    }
                    _ => self.skip(d, "invalid value"),
                }
            }
            "lingering_close" => match arg.as_str() {
                "on" | "off" | "always" => self.set_top("lingering_close", arg, d),
                _ => self.skip(d, "invalid value"),
            },
            "resolver" => {
                let addr = if arg.parse::<std::net::IpAddr>().is_ok() {
                    format!("{arg}:53")
                } else {
                    arg.clone()
                };
                if addr.parse::<std::net::SocketAddr>().is_ok() {
                    self.set_top("resolver", scalar(&addr), d);
                    if d.args.len() > 1 {
                        self.skip(d, "only the first address is used; swarmgate re-resolves every 5s (no valid=, ipv6=)");
                    }
                } else {
                    self.skip(d, "swarmgate needs an IP address as resolver");
                }
            }
            "access_log" => {
                if arg == "off" {
                    self.set_top("access_log", "false".into(), d);
                } else {
                    self.skip(
                        d,
                        "swarmgate logs requests to stdout in its own format (access_log: true)",
                    );
                }
            }
            _ => return false,
        }
        true
    }

    fn upstream(&mut self, d: &Directive) {
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

    fn upstream_server(&mut self, s: &Directive, u: &mut UpstreamOut) {
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
    fn check(&mut self, s: &Directive, u: &mut UpstreamOut) {
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
    fn check_send(&mut self, s: &Directive, u: &mut UpstreamOut) {
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

    fn server<'a>(&mut self, d: &'a Directive, http: &Ctx) -> Option<ServerBlock<'a>> {
        let mut ctx = http.clone();
        let mut sb = ServerBlock {
            listens: Vec::new(),
            names: Vec::new(),
            locations: Vec::new(),
            at: d.at(),
        };
        let block = d.block.as_deref().unwrap_or_default();
        let mut cert = None;
        let mut key = None;
        let mut level_headers = false;
        for s in block {
            let arg = s.args.first().cloned().unwrap_or_default();
            match s.name.as_str() {
                "location" => {}
                "listen" => self.listen(s, &mut sb),
                "server_name" => sb.names.extend(s.args.iter().cloned()),
                "ssl_certificate" => cert = Some(arg),
                "ssl_certificate_key" => key = Some(arg),
                "proxy_pass" => self.skip(s, "proxy_pass outside a location is not valid nginx"),
                "proxy_set_header" => {
                    if !level_headers {
                        ctx.outer_connection_cleared = ctx
                            .headers
                            .iter()
                            .any(|(h, v)| h.eq_ignore_ascii_case("connection") && v.is_empty());
                        ctx.headers.clear();
                        ctx.headers_at = Some(s.at());
                        level_headers = true;
                    }
                    ctx.headers
                        .push((arg, s.args.get(1).cloned().unwrap_or_default()));
                }
                _ => {
                    if !self.common(s, &mut ctx) {
                        self.skip(s, "no equivalent in swarmgate");
                    }
                }
            }
        }
        match (cert, key) {
            (Some(c), Some(k)) => {
                if self
                    .out
                    .tls
                    .as_ref()
                    .is_some_and(|t| *t != (c.clone(), k.clone()))
                {
                    self.skip(
                        d,
                        "swarmgate has one certificate for every listener; kept the first",
                    );
                } else {
                    self.out.tls = Some((c, k));
                }
            }
            (None, None) => {}
            _ => self.skip(d, "ssl_certificate and ssl_certificate_key go together"),
        }
        if sb.listens.is_empty() {
            // nginx's default: *:80 when run as root.
            let addr = "0.0.0.0:80".to_owned();
            if !self.out.listen.contains(&addr) {
                self.out.listen.push(addr.clone());
            }
            sb.listens.push((addr, false));
        }
        for s in block.iter().filter(|s| s.name == "location") {
            self.location(s, &ctx, &mut sb);
        }
        Some(sb)
    }

    fn listen(&mut self, s: &Directive, sb: &mut ServerBlock<'_>) {
        let Some(a) = s.args.first() else {
            self.skip(s, "listen without an address");
            return;
        };
        let addr = if let Ok(port) = a.parse::<u16>() {
            format!("0.0.0.0:{port}")
        } else if let Some(port) = a.strip_prefix("*:") {
            format!("0.0.0.0:{port}")
        } else {
            a.clone()
        };
        if addr.parse::<std::net::SocketAddr>().is_err() {
            self.skip(
                s,
                format!("{a}: swarmgate listens on ip:port addresses only"),
            );
            return;
        }
        let mut default = false;
        for f in &s.args[1..] {
            match f.as_str() {
                "default_server" | "default" => default = true,
                // The certificate comes from ssl_certificate; HTTP/2 is always offered.
                "ssl" | "http2" => {}
                _ => self.skip(s, format!("listen parameter {f} has no equivalent")),
            }
        }
        if !s.args.iter().any(|f| f == "ssl")
            && !self.out.listen.is_empty()
            && self.out.tls.is_some()
        {
            self.skip(s, "swarmgate's tls applies to every listener");
        }
        if !self.out.listen.contains(&addr) {
            self.out.listen.push(addr.clone());
        }
        sb.listens.push((addr, default));
    }

    fn location<'a>(&mut self, d: &'a Directive, outer: &Ctx, sb: &mut ServerBlock<'a>) {
        let mut ctx = outer.clone();
        let mut level_headers = false;
        for s in d.block.as_deref().unwrap_or_default() {
            match s.name.as_str() {
                "location" | "proxy_pass" => {}
                "proxy_set_header" => {
                    if !level_headers {
                        ctx.outer_connection_cleared = ctx
                            .headers
                            .iter()
                            .any(|(h, v)| h.eq_ignore_ascii_case("connection") && v.is_empty());
                        ctx.headers.clear();
                        ctx.headers_at = Some(s.at());
                        level_headers = true;
                    }
                    let arg = s.args.first().cloned().unwrap_or_default();
                    ctx.headers
                        .push((arg, s.args.get(1).cloned().unwrap_or_default()));
                }
                "client_max_body_size" => {
                    let arg = s.args.first().cloned().unwrap_or_default();
                    if ctx.client_max_body_size.as_deref() != Some(arg.as_str()) {
                        self.skip(
                            s,
                            "swarmgate has one client_max_body_size for every location",
                        );
                    }
                }
                _ => {
                    if !self.common(s, &mut ctx) {
                        self.skip(s, "no equivalent in swarmgate");
                    }
                }
            }
        }
        sb.locations.push((d, ctx.clone()));
        for s in d.block.as_deref().unwrap_or_default() {
            if s.name == "location" {
                self.location(s, &ctx, sb);
            }
        }
    }

    /// Turns the servers' locations into routes (in nginx's matching order) and fills in the
    /// upstreams they use.
    fn routes(&mut self, servers: Vec<ServerBlock<'_>>) {
        let multi_listen = self.out.listen.len() > 1;
        // A location is reported once, however many listeners it serves.
        let mut reported: Vec<(String, usize)> = Vec::new();
        let mut routes: Vec<(usize, usize, RouteOut)> = Vec::new();
        let listens = self.out.listen.clone();
        for (li, listen) in listens.iter().enumerate() {
            let group: Vec<&ServerBlock<'_>> = servers
                .iter()
                .filter(|s| s.listens.iter().any(|(a, _)| a == listen))
                .collect();
            let default_idx = group
                .iter()
                .position(|s| s.listens.iter().any(|(a, def)| a == listen && *def))
                .unwrap_or(0);
            for (gi, sb) in group.iter().enumerate() {
                let hosts: Vec<Option<String>> = if gi == default_idx {
                    vec![None]
                } else {
                    sb.names
                        .iter()
                        .filter(|n| {
                            !(n.is_empty()
                                || n.starts_with('~')
                                || n.contains('*')
                                || n.starts_with('.')
                                || *n == "_")
                        })
                        .map(|n| Some(n.to_ascii_lowercase()))
                        .collect()
                };
                if hosts.is_empty() {
                    self.skipped.push(format!(
                        "{}: server_name: only exact names are translated; this server's routes are left out",
                        sb.at
                    ));
                }
                for (loc, ctx) in &sb.locations {
                    let key = (loc.file.clone(), loc.line);
                    let first = !reported.contains(&key);
                    if first {
                        reported.push(key);
                    }
                    let Some(mut r) = self.location_route(loc, ctx, first) else {
                        continue;
                    };
                    r.listen = multi_listen.then(|| listen.clone());
                    // nginx: exact first, then the longest prefix (regex gateways by prefix).
                    let rank = if r.exact { 0 } else { 1 };
                    let order = (usize::from(gi == default_idx) << 1) | rank;
                    for h in &hosts {
                        let mut r = r.clone();
                        r.host = h.clone();
                        routes.push((li, order, r));
                    }
                }
            }
        }
        routes.sort_by(|a, b| {
            (a.0, a.1)
                .cmp(&(b.0, b.1))
                .then(b.2.path.len().cmp(&a.2.path.len()))
        });
        let mut seen = Vec::new();
        for (_, _, r) in routes {
            let key = (r.listen.clone(), r.host.clone(), r.path.clone(), r.exact);
            if !seen.contains(&key) {
                seen.push(key);
                self.out.routes.push(r);
            }
        }
        let unused: Vec<String> = self
            .out
            .upstreams
            .iter()
            .filter(|u| !self.uses.contains_key(&u.name))
            .map(|u| u.name.clone())
            .collect();
        for name in unused {
            if let Some(u) = self.out.upstreams.iter_mut().find(|u| u.name == name) {
                u.notes.push("no location proxies to this upstream".into());
            }
        }
    }

    /// The route of one location, or `None` (reported) when it does not proxy.
    fn location_route(&mut self, d: &Directive, ctx: &Ctx, first_listen: bool) -> Option<RouteOut> {
        let (modifier, uri) = match d.args.as_slice() {
            [uri] => ("", uri.clone()),
            [m, uri] => (m.as_str(), uri.clone()),
            _ => {
                if first_listen {
                    self.skip(d, "location not understood");
                }
                return None;
            }
        };
        let pass = d
            .block
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(|s| s.name == "proxy_pass");
        let Some(pass) = pass else {
            if first_listen {
                self.skip(
                    d,
                    format!("{modifier} {uri}: no proxy_pass; swarmgate only proxies").trim_start(),
                );
            }
            return None;
        };
        let target = pass.args.first().cloned().unwrap_or_default();
        let (scheme, rest) = match target.split_once("://") {
            Some(("http", r)) => ("http", r),
            Some(("https", r)) => ("https", r),
            _ => {
                if first_listen {
                    self.skip(pass, "only http:// and https:// targets are translated");
                }
                return None;
            }
        };
        let comment = format!(
            "{} location {}{}",
            d.at(),
            if modifier.is_empty() {
                String::new()
            } else {
                format!("{modifier} ")
            },
            uri
        );
        if matches!(modifier, "~" | "~*") {
            return match scow_gateway(&uri, rest) {
                Some((prefix, clusters)) => {
                    if first_listen {
                        self.skipped.push(format!(
                            "{}: location: nginx forwarded to any address the path named; the gateway route allows the private ranges only: narrow `allow` to the cluster's nodes",
                            d.at()
                        ));
                    }
                    Some(RouteOut {
                        listen: None,
                        host: None,
                        path: prefix,
                        exact: false,
                        target: TargetOut::Gateway { clusters, scheme },
                        comment: format!("{comment} (SCOW proxy gateway)"),
                    })
                }
                None => {
                    if first_listen {
                        self.skip(d, format!("regex location {uri}: only SCOW's proxy gateway locations are translated"));
                    }
                    None
                }
            };
        }
        if modifier == "@" || uri.starts_with('@') {
            if first_listen {
                self.skip(d, "named locations are not translated");
            }
            return None;
        }
        let exact = modifier == "=";
        if !matches!(modifier, "" | "=" | "^~") || !uri.starts_with('/') {
            if first_listen {
                self.skip(d, "location not understood");
            }
            return None;
        }
        if rest.contains('$') {
            if first_listen {
                self.skip(pass, "variables in proxy_pass are not translated");
            }
            return None;
        }
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        if let Some(p) = path {
            if p != uri && first_listen {
                self.skip(pass, format!("URI part {p} not translated: swarmgate forwards the request path unchanged"));
            }
        }
        let name = if self
            .out
            .upstreams
            .iter()
            .any(|u| u.declared && u.name == hostport)
        {
            hostport.to_owned()
        } else {
            self.implicit_upstream(hostport, scheme, pass)?
        };
        if first_listen {
            self.use_upstream(&name, scheme, ctx, pass);
        }
        Some(RouteOut {
            listen: None,
            host: None,
            path: uri,
            exact,
            target: TargetOut::Upstream(name),
            comment,
        })
    }

    /// An upstream for `proxy_pass http://host:port` without an `upstream` block.
    fn implicit_upstream(&mut self, hostport: &str, scheme: &str, d: &Directive) -> Option<String> {
        let default_port = if scheme == "https" { 443 } else { 80 };
        let address = if hostport.contains(':') && !hostport.ends_with(']') {
            hostport.to_owned()
        } else {
            format!("{hostport}:{default_port}")
        };
        if crate::config::parse_server_address(&address).is_err() {
            self.skip(d, format!("invalid address {hostport}"));
            return None;
        }
        let name: String = address
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if !self.out.upstreams.iter().any(|u| u.name == name) {
            self.out.upstreams.push(UpstreamOut {
                name: name.clone(),
                at: format!("{} {}", d.at(), d.name),
                servers: vec![ServerOut {
                    address,
                    params: Vec::new(),
                    comment: String::new(),
                }],
                ..UpstreamOut::default()
            });
        }
        Some(name)
    }

    /// Applies a location's proxy settings to the upstream it uses.
    fn use_upstream(&mut self, name: &str, scheme: &'static str, ctx: &Ctx, pass: &Directive) {
        let mut conflicts = Vec::new();
        if let Some((old, at)) = self.uses.get(name) {
            if *old != scheme {
                conflicts.push(format!(
                    "upstream {name} is used with {old}:// at {at}; swarmgate has one scheme per upstream"
                ));
            }
        } else {
            self.uses.insert(name.to_owned(), (scheme, pass.at()));
        }
        let header_notes = header_notes(ctx);
        let Some(u) = self.out.upstreams.iter_mut().find(|u| u.name == name) else {
            return;
        };
        u.keys.entry("scheme").or_insert(Val {
            text: scheme.into(),
            comment: Translator::origin(pass),
        });
        for (key, (text, origin)) in &ctx.proxy {
            if scheme == "http" && key.starts_with("tls_") {
                continue; // nginx ignores proxy_ssl_* for http:// too
            }
            match u.keys.get(key) {
                Some(old) if old.text != *text => conflicts.push(format!(
                    "{key}: upstream {name} already has {} ({}); kept it",
                    old.text, old.comment
                )),
                Some(_) => {}
                None => {
                    u.keys.insert(
                        key,
                        Val {
                            text: text.clone(),
                            comment: origin.clone(),
                        },
                    );
                }
            }
        }
        // Kuscia's trap: nginx keeps upstream connections only with HTTP/1.1 and an emptied
        // Connection header; a proxy_set_header at an inner level drops the inherited one.
        let http11 = ctx.http_version.as_ref().is_some_and(|(v, _)| v == "1.1");
        let cleared = ctx.headers.iter().any(|(h, v)| {
            h.eq_ignore_ascii_case("connection") && (v.is_empty() || v.contains('$'))
        });
        let keepalive = u.keys.get("keepalive").map(|v| v.text.clone());
        if let Some(k) = keepalive.filter(|k| k != "0") {
            if !(http11 && cleared) {
                let why = if !http11 {
                    "without `proxy_http_version 1.1` nginx speaks HTTP/1.0 upstream".to_owned()
                } else if ctx.outer_connection_cleared {
                    format!(
                        "the `proxy_set_header` at {} discards the inherited `proxy_set_header Connection \"\"` (a level with any proxy_set_header inherits none)",
                        ctx.headers_at.clone().unwrap_or_default()
                    )
                } else {
                    "no `proxy_set_header Connection \"\"` is in effect".to_owned()
                };
                let note = format!(
                    "nginx trap (location at {}): `keepalive {k}` was unused there: {why}, so nginx sent `Connection: close` and opened one upstream connection per request. Here keepalive is on: idle connections are reused.",
                    pass.at()
                );
                if !u.notes.contains(&note) {
                    u.notes.push(note);
                }
            }
        }
        for n in header_notes {
            self.skipped
                .push(format!("{}: proxy_set_header: {n}", pass.at()));
        }
        for c in conflicts {
            self.skipped.push(format!("{}: proxy_pass: {c}", pass.at()));
        }
    }
}

/// Headers in effect that swarmgate does not reproduce.
fn header_notes(ctx: &Ctx) -> Vec<String> {
    let mut out = Vec::new();
    let mut host = false;
    for (h, v) in &ctx.headers {
        let built_in = match h.to_ascii_lowercase().as_str() {
            "host" => {
                host = true;
                matches!(v.as_str(), "$host" | "$http_host")
            }
            "connection" => v.is_empty() || v == "upgrade" || v.starts_with('$'),
            "upgrade" => v == "$http_upgrade",
            "x-real-ip" => v == "$remote_addr",
            "x-forwarded-for" => v == "$proxy_add_x_forwarded_for" || v == "$remote_addr",
            "x-forwarded-proto" => v == "$scheme",
            _ => false,
        };
        if !built_in {
            out.push(format!(
                "{h} {v:?} is not set: swarmgate has no header rules"
            ));
        }
    }
    if !host && ctx.headers_at.is_some() {
        out.push(
            "nginx sent Host: the upstream name ($proxy_host); swarmgate passes the client's Host"
                .into(),
        );
    }
    out
}

/// SCOW's gateway location `^<BASE>api/proxy/<cluster>/relative|absolute/...` with a variable
/// `proxy_pass`: the route prefix `<BASE>api/proxy/` and the cluster (when literal).
fn scow_gateway(regex: &str, pass_rest: &str) -> Option<(String, Vec<String>)> {
    if !pass_rest.starts_with('$') {
        return None;
    }
    let body = regex.strip_prefix('^')?;
    let i = body.find("api/proxy/")?;
    let base = &body[..i];
    if !base.starts_with('/')
        || !base.ends_with('/')
        || base.contains(['(', '[', '.', '*', '+', '?', '\\', '|', '$'])
    {
        return None;
    }
    let after = &body[i + "api/proxy/".len()..];
    let (cluster, tail) = after.split_once('/')?;
    if !(tail.starts_with("relative/") || tail.starts_with("absolute/")) {
        return None;
    }
    let literal = !cluster.is_empty()
        && cluster
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let clusters = if literal {
        vec![cluster.to_owned()]
    } else {
        Vec::new()
    };
    Some((format!("{base}api/proxy/"), clusters))
}
