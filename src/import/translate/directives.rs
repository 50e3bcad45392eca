//! Directives valid at http, server and location level: `proxy_*` settings (inherited into
//! the upstream a location uses) and client settings (top-level keys).

use super::{Ctx, Translator};
use crate::config::units::{parse_duration, parse_size};
use crate::import::model::scalar;
use crate::import::parse::Directive;

const RESOLVER_EXTRA: &str =
    "only the first address is used; swarmgate re-resolves every 5s (no valid=, ipv6=)";

impl Translator {
    /// Directives valid at http, server and location level; false when not one of them.
    pub(super) fn common(&mut self, d: &Directive, ctx: &mut Ctx) -> bool {
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
                        self.skip(d, RESOLVER_EXTRA);
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
}
