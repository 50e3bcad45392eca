//! Locations → routes in nginx's matching order; `proxy_pass` targets; the keepalive trap;
//! SCOW's gateway locations.

use super::{Ctx, ServerBlock, Translator};
use crate::import::model::{RouteOut, ServerOut, TargetOut, UpstreamOut, Val};
use crate::import::parse::Directive;

const REGEX_LOCATION: &str = "only SCOW's proxy gateway locations are translated";
const URI_PART: &str = "swarmgate forwards the request path unchanged";

impl Translator {
    /// Turns the servers' locations into routes (in nginx's matching order) and fills in the
    /// upstreams they use.
    pub(super) fn routes(&mut self, servers: Vec<ServerBlock<'_>>) {
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
                        "{}: server_name: only exact names are translated; \
                         this server's routes are left out",
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
    pub(super) fn location_route(
        &mut self,
        d: &Directive,
        ctx: &Ctx,
        first_listen: bool,
    ) -> Option<RouteOut> {
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
                            "{}: location: nginx forwarded to any address the path named; \
                             the gateway route allows the private ranges only: \
                             narrow `allow` to the cluster's nodes",
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
                        self.skip(d, format!("regex location {uri}: {REGEX_LOCATION}"));
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
                self.skip(pass, format!("URI part {p} not translated: {URI_PART}"));
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
    pub(super) fn implicit_upstream(
        &mut self,
        hostport: &str,
        scheme: &str,
        d: &Directive,
    ) -> Option<String> {
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
    pub(super) fn use_upstream(
        &mut self,
        name: &str,
        scheme: &'static str,
        ctx: &Ctx,
        pass: &Directive,
    ) {
        let mut conflicts = Vec::new();
        if let Some((old, at)) = self.uses.get(name) {
            if *old != scheme {
                conflicts.push(format!(
                    "upstream {name} is used with {old}:// at {at}; \
                     swarmgate has one scheme per upstream"
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
                        "the `proxy_set_header` at {} discards the inherited \
                         `proxy_set_header Connection \"\"` \
                         (a level with any proxy_set_header inherits none)",
                        ctx.headers_at.clone().unwrap_or_default()
                    )
                } else {
                    "no `proxy_set_header Connection \"\"` is in effect".to_owned()
                };
                let note = format!(
                    "nginx trap (location at {}): `keepalive {k}` was unused there: {why}, \
                     so nginx sent `Connection: close` and opened one upstream connection per \
                     request. Here keepalive is on: idle connections are reused.",
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
