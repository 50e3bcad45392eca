//! Renders the imported config as YAML text with the nginx origin of each value as a comment.

use super::model::{scalar, ConfigOut, TargetOut};
use std::fmt::Write;

fn comment(c: &str) -> String {
    if c.is_empty() {
        String::new()
    } else {
        format!("  # {c}")
    }
}

/// `text` in lines of at most `width` characters (a longer word gets a line of its own).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            out.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push(line);
    }
    out
}

/// The YAML document.
pub fn render(c: &ConfigOut) -> String {
    let mut o = String::new();
    for n in &c.notes {
        for line in wrap(n, 98) {
            let _ = writeln!(o, "# {line}");
        }
    }
    match c.listen.as_slice() {
        [] => {}
        [one] => {
            let _ = writeln!(o, "listen: {}", scalar(one));
        }
        many => {
            let list: Vec<String> = many.iter().map(|l| scalar(l)).collect();
            let _ = writeln!(o, "listen: [{}]", list.join(", "));
        }
    }
    if let Some((cert, key)) = &c.tls {
        let _ = writeln!(o, "tls:\n  cert: {}\n  key: {}", scalar(cert), scalar(key));
    }
    for (k, v) in &c.top {
        let _ = writeln!(o, "{k}: {}{}", v.text, comment(&v.comment));
    }
    if !c.upstreams.is_empty() {
        o.push_str("upstreams:\n");
    }
    for u in &c.upstreams {
        for n in &u.notes {
            for line in wrap(n, 96) {
                let _ = writeln!(o, "  # {line}");
            }
        }
        let _ = writeln!(o, "  {}:{}", scalar(&u.name), comment(&u.at));
        for (k, v) in &u.keys {
            let _ = writeln!(o, "    {k}: {}{}", v.text, comment(&v.comment));
        }
        if !u.servers.is_empty() {
            o.push_str("    servers:\n");
        }
        for s in &u.servers {
            let _ = writeln!(
                o,
                "      - address: {}{}",
                scalar(&s.address),
                comment(&s.comment)
            );
            for (k, v) in &s.params {
                let _ = writeln!(o, "        {k}: {v}");
            }
        }
        if !u.health.is_empty() {
            let _ = writeln!(o, "    health_check:{}", comment(&u.health_comment));
            for (k, v) in &u.health {
                let _ = writeln!(o, "      {k}: {v}");
            }
        }
    }
    if !c.routes.is_empty() {
        o.push_str("routes:\n");
    }
    for r in &c.routes {
        let _ = writeln!(o, "  -{}", comment(&r.comment));
        if let Some(l) = &r.listen {
            let _ = writeln!(o, "    listen: {}", scalar(l));
        }
        if let Some(h) = &r.host {
            let _ = writeln!(o, "    host: {}", scalar(h));
        }
        let key = if r.exact { "path" } else { "path_prefix" };
        let _ = writeln!(o, "    {key}: {}", scalar(&r.path));
        match &r.target {
            TargetOut::Upstream(n) => {
                let _ = writeln!(o, "    upstream: {}", scalar(n));
            }
            TargetOut::Gateway { clusters, scheme } => {
                o.push_str("    gateway:\n");
                o.push_str(
                    "      # nginx forwarded to any address the path named: \
                     narrow `allow` to the cluster's nodes\n",
                );
                o.push_str("      allow: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16']\n");
                if !clusters.is_empty() {
                    let list: Vec<String> = clusters.iter().map(|c| scalar(c)).collect();
                    let _ = writeln!(o, "      clusters: [{}]", list.join(", "));
                }
                let _ = writeln!(o, "      scheme: {scheme}");
            }
        }
    }
    o
}
