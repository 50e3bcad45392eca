//! `server {}` blocks: listeners, names, TLS, and their locations with inherited settings.

use super::{Ctx, ServerBlock, Translator};
use crate::import::parse::Directive;

impl Translator {
    pub(super) fn server<'a>(&mut self, d: &'a Directive, http: &Ctx) -> Option<ServerBlock<'a>> {
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
        let mut first_header = true;
        for s in block {
            let arg = s.args.first().cloned().unwrap_or_default();
            match s.name.as_str() {
                "location" => {}
                "listen" => self.listen(s, &mut sb),
                "server_name" => sb.names.extend(s.args.iter().cloned()),
                "ssl_certificate" => cert = Some(arg),
                "ssl_certificate_key" => key = Some(arg),
                "proxy_pass" => self.skip(s, "proxy_pass outside a location is not valid nginx"),
                "proxy_set_header" => ctx.set_header(s, &mut first_header),
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

    pub(super) fn listen(&mut self, s: &Directive, sb: &mut ServerBlock<'_>) {
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

    pub(super) fn location<'a>(&mut self, d: &'a Directive, outer: &Ctx, sb: &mut ServerBlock<'a>) {
        let mut ctx = outer.clone();
        let mut first_header = true;
        for s in d.block.as_deref().unwrap_or_default() {
            match s.name.as_str() {
                "location" | "proxy_pass" => {}
                "proxy_set_header" => ctx.set_header(s, &mut first_header),
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
}
