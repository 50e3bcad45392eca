//! nginx directives → [`ConfigOut`]. Every directive is either translated (to a key, or to
//! behaviour swarmgate always has, noted as a comment) or reported in [`Translator::skipped`]
//! as `file:line: directive: reason`. Nothing is dropped silently.

mod directives;
mod routes;
mod server;
mod upstream;

use super::model::{ConfigOut, Val};
use super::parse::Directive;
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

impl Ctx {
    /// One `proxy_set_header` at a level. nginx inherits the outer list only when a level sets
    /// none, so the first one at a level (`*first`) replaces the inherited list.
    fn set_header(&mut self, d: &Directive, first: &mut bool) {
        if *first {
            self.outer_connection_cleared = self
                .headers
                .iter()
                .any(|(h, v)| h.eq_ignore_ascii_case("connection") && v.is_empty());
            self.headers.clear();
            self.headers_at = Some(d.at());
            *first = false;
        }
        let name = d.args.first().cloned().unwrap_or_default();
        let value = d.args.get(1).cloned().unwrap_or_default();
        self.headers.push((name, value));
    }
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
                            "no equivalent (swarmgate has no worker connection limit; \
                             see max_connections)",
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
}
