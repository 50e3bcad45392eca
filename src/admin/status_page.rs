//! `GET /`: the HTML status page (one self-contained document, no external assets). Rendered
//! on the server so it reads fine without JavaScript (a `<noscript>` meta refresh reloads it);
//! with JavaScript it re-fetches itself every 2 s and swaps the content in place.

use super::view::{snapshot, ServerView, UpstreamView};
use crate::app::App;
use std::fmt::Write;

/// Escapes text for HTML element content and quoted attributes.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn human_duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {:02}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        s => format!("{}d {:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

const STYLE: &str = r#"
:root{--bg:#f4f6f8;--card:#fff;--ink:#1f2328;--mute:#656d76;--line:#d8dee4;
--up:#1a7f37;--up-bg:#dafbe1;--bad:#cf222e;--bad-bg:#ffebe9;--down:#9a6700;--down-bg:#fff8c5;
--drain:#57606a;--drain-bg:#eaeef2}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
header{background:#24292f;color:#fff;padding:14px 28px;display:flex;align-items:center;gap:18px;flex-wrap:wrap}
header h1{font-size:19px;margin:0;font-weight:600;letter-spacing:.2px}
header .meta{color:#c9d1d9;font-size:13px}
header .right{margin-left:auto;color:#c9d1d9;font-size:12px}
main{padding:20px 28px;max-width:1500px}
.summary{display:flex;gap:12px;margin-bottom:18px;flex-wrap:wrap}
.tile{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 16px;min-width:150px}
.tile .k{color:var(--mute);font-size:12px;text-transform:uppercase;letter-spacing:.5px}
.tile .v{font-size:20px;font-weight:600}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;margin-bottom:20px;overflow:hidden}
.card h2{font-size:16px;margin:0;display:flex;align-items:center;gap:10px;flex-wrap:wrap}
.card .head{padding:12px 16px;border-bottom:1px solid var(--line);display:flex;flex-direction:column;gap:4px}
.card .sub{color:var(--mute);font-size:12.5px}
table{border-collapse:collapse;width:100%}
th{text-align:left;font-size:11px;font-weight:600;color:var(--mute);text-transform:uppercase;
letter-spacing:.3px;padding:8px 10px;background:#f6f8fa;border-bottom:1px solid var(--line);white-space:nowrap}
td{padding:7px 10px;border-bottom:1px solid #eaeef2;vertical-align:middle}
tr:last-child td{border-bottom:0}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr.unhealthy td{background:#fff5f5}tr.down td,tr.tunnel_down td{background:#fffcf0}tr.draining td{color:var(--mute)}
.addr{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
.name{color:var(--mute);font-size:12px}
.pill{display:inline-block;padding:2px 10px;border-radius:999px;font-size:12px;font-weight:600;
text-transform:uppercase;letter-spacing:.4px;border:1px solid transparent}
.pill.up{color:var(--up);background:var(--up-bg);border-color:#aceebb}
.pill.unhealthy{color:var(--bad);background:var(--bad-bg);border-color:#ffcecb}
.pill.down,.pill.tunnel_down{color:var(--down);background:var(--down-bg);border-color:#f5e0a0}
.pill.draining{color:var(--drain);background:var(--drain-bg);border-color:var(--line)}
.badge{font-size:11.5px;font-weight:500;padding:1px 8px;border-radius:6px;background:#eaeef2;color:var(--ink)}
.badge.ok{background:var(--up-bg);color:var(--up)}.badge.warn{background:var(--down-bg);color:var(--down)}.badge.err{background:var(--bad-bg);color:var(--bad)}
.chk{font-size:12.5px}.chk .ok{color:var(--up)}.chk .fail{color:var(--bad)}
.chk .d{color:var(--mute)}
.nw{white-space:nowrap}.why{color:var(--mute);font-size:12px}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;background:#eaeef2;padding:1px 5px;border-radius:4px}
td.check{min-width:180px;max-width:300px}
.scroll{overflow-x:auto}
.bar{display:inline-block;width:50px;height:6px;background:#eaeef2;border-radius:3px;vertical-align:middle;margin-left:6px;overflow:hidden}
.bar i{display:block;height:100%;background:var(--bad)}
.empty{padding:14px 16px;color:var(--mute)}
footer{color:var(--mute);font-size:12px;padding:0 28px 24px}
a{color:#0969da}
"#;

const SCRIPT: &str = r#"
(function(){
  var busy=false;
  function tick(){
    if(busy||document.hidden)return;busy=true;
    fetch(location.pathname,{cache:'no-store'}).then(function(r){return r.text()}).then(function(t){
      var d=new DOMParser().parseFromString(t,'text/html');
      ['content','stamp'].forEach(function(id){
        var n=d.getElementById(id),o=document.getElementById(id);if(n&&o)o.innerHTML=n.innerHTML;});
      document.getElementById('live').textContent='live';
    }).catch(function(){document.getElementById('live').textContent='admin unreachable';})
      .then(function(){busy=false});
  }
  setInterval(tick,2000);
})();
"#;

fn state_label(state: &str) -> &str {
    match state {
        "up" => "UP",
        "unhealthy" => "UNHEALTHY",
        "down" => "DOWN",
        "tunnel_down" => "TUNNEL DOWN",
        _ => "DRAINING",
    }
}

fn server_row(out: &mut String, s: &ServerView) {
    let name = s.name.as_deref().map_or(String::new(), |n| {
        format!("<div class=\"name\">{}</div>", esc(n))
    });
    let backup = if s.backup {
        " <span class=\"badge\">backup</span>"
    } else {
        ""
    };
    let attempts = s.requests + s.failures;
    let rate = if attempts == 0 {
        "<span class=\"name\">–</span>".to_owned()
    } else {
        let pct = s.failures as f64 * 100.0 / attempts as f64;
        format!(
            "{pct:.1}%<span class=\"bar\"><i style=\"width:{:.0}%\"></i></span>",
            pct.clamp(0.0, 100.0)
        )
    };
    let check = match (&s.last_check, s.last_check_ok) {
        (Some(at), Some(ok)) => format!(
            "<span class=\"chk\" title=\"{}\"><b class=\"{}\">{}</b> <span>{}</span> <span class=\"d nw\">· {} ago</span></span>",
            esc(at),
            if ok { "ok" } else { "fail" },
            if ok { "✓" } else { "✗" },
            esc(&s.detail),
            human_duration(s.last_check_age.unwrap_or(0)),
        ),
        _ => "<span class=\"name\">not checked</span>".to_owned(),
    };
    let why = match (s.state, s.down_reason) {
        ("down" | "tunnel_down", Some(r)) => format!("<div class=\"why\">{}</div>", esc(r)),
        _ => String::new(),
    };
    let max_fails = if s.max_fails == 0 {
        "∞".to_owned()
    } else {
        s.max_fails.to_string()
    };
    let _ = write!(
        out,
        "<tr class=\"{state}\"><td><span class=\"pill {state}\">{label}</span></td>\
         <td class=\"nw\"><span class=\"addr\">{addr}</span>{backup}{name}{why}</td><td>{source}</td>\
         <td class=\"num\">{weight}</td><td class=\"num\">{fails}/{max_fails}</td>\
         <td class=\"num\">{active}</td><td class=\"num\">{ca} / {ci}</td>\
         <td class=\"num\">{requests}</td><td class=\"num\">{e5}</td><td class=\"num nw\">{rate}</td>\
         <td class=\"check\">{check}</td></tr>",
        state = s.state,
        label = state_label(s.state),
        addr = esc(&s.address),
        source = s.source,
        weight = s.weight,
        fails = s.fails,
        active = s.active_requests,
        ca = s.connections_active,
        ci = s.connections_idle,
        requests = s.requests,
        e5 = s.responses_5xx,
    );
}

fn upstream_card(out: &mut String, u: &UpstreamView) {
    let total = u.servers.len();
    let health_badge = if total > 0 && u.healthy_servers == total {
        "ok"
    } else if u.healthy_servers == 0 {
        "err"
    } else {
        "warn"
    };
    let mut sub = vec![format!("scheme {}", u.scheme)];
    sub.push(match &u.health_check {
        Some(h) => format!(
            "{} check {}every {} ms, timeout {} ms, rise {}, fall {}",
            h.kind,
            if h.request.is_empty() {
                String::new()
            } else {
                format!("<code>{}</code> ", esc(&h.request))
            },
            h.interval_ms,
            h.timeout_ms,
            h.rise,
            h.fall
        ),
        None => "no active health check".to_owned(),
    });
    sub.push(format!("when all down: {}", u.when_all_down));
    let discovery = match &u.discovery {
        Some(d) if d.up => format!(
            "<span class=\"badge ok\">discovery up · {} found</span>",
            d.backends
        ),
        Some(d) => format!(
            "<span class=\"badge err\" title=\"{}\">discovery down</span>",
            esc(d.error.as_deref().unwrap_or(""))
        ),
        None => String::new(),
    };
    let _ = write!(
        out,
        "<section class=\"card\"><div class=\"head\"><h2>{name} \
         <span class=\"badge {health_badge}\">{h}/{total} available</span>{discovery}</h2>\
         <div class=\"sub\">{sub}</div></div>",
        name = esc(&u.name),
        h = u.healthy_servers,
        sub = sub.join(" · "),
    );
    if u.servers.is_empty() {
        out.push_str("<div class=\"empty\">No servers.</div></section>");
        return;
    }
    out.push_str(
        "<div class=\"scroll\"><table><thead><tr><th>State</th><th>Server</th><th>Source</th>\
         <th class=\"num\">Weight</th><th class=\"num\" title=\"passive failures / max_fails\">Fails</th>\
         <th class=\"num\" title=\"requests in flight\">In-flight</th>\
         <th class=\"num\" title=\"upstream connections: busy / idle in pool\">Conns</th>\
         <th class=\"num\" title=\"responses received\">Responses</th><th class=\"num\">5xx</th>\
         <th class=\"num\" title=\"failed attempts (connect, timeout, invalid) / attempts\">Fail rate</th>\
         <th>Last check</th></tr></thead><tbody>",
    );
    for s in &u.servers {
        server_row(out, s);
    }
    out.push_str("</tbody></table></div></section>");
}

/// The whole page.
pub fn render(app: &App) -> String {
    let snap = snapshot(app);
    let ready = super::readiness(app);
    let servers: usize = snap.upstreams.iter().map(|u| u.servers.len()).sum();
    let healthy: usize = snap.upstreams.iter().map(|u| u.healthy_servers).sum();
    let in_flight: usize = snap
        .upstreams
        .iter()
        .flat_map(|u| &u.servers)
        .map(|s| s.active_requests)
        .sum();
    let mut out = String::with_capacity(8192);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>swarmgate status</title><noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>\
         <style>{STYLE}</style></head><body><header><h1>swarmgate</h1>\
         <span class=\"meta\">v{version}</span><span class=\"right\" id=\"stamp\">{stamp} UTC · \
         <span id=\"live\">auto-refresh</span></span></header><main id=\"content\">",
        version = env!("CARGO_PKG_VERSION"),
        stamp = super::rfc3339::format(std::time::SystemTime::now()),
    );
    let ready_tile = match &ready {
        Ok(()) => "<span style=\"color:var(--up)\">ready</span>".to_owned(),
        Err(why) => format!(
            "<span style=\"color:var(--bad)\" title=\"{}\">not ready</span>",
            esc(why)
        ),
    };
    let _ = write!(
        out,
        "<div class=\"summary\">\
         <div class=\"tile\"><div class=\"k\">Readiness</div><div class=\"v\">{ready_tile}</div></div>\
         <div class=\"tile\"><div class=\"k\">Servers available</div><div class=\"v\" style=\"color:var({avail})\">{healthy} / {servers}</div></div>\
         <div class=\"tile\"><div class=\"k\">Upstreams</div><div class=\"v\">{n}</div></div>\
         <div class=\"tile\"><div class=\"k\">In-flight</div><div class=\"v\">{in_flight}</div></div>\
         <div class=\"tile\"><div class=\"k\">Uptime</div><div class=\"v\">{uptime}</div></div></div>",
        n = snap.upstreams.len(),
        avail = if healthy == servers {
            "--ink"
        } else if healthy == 0 {
            "--bad"
        } else {
            "--down"
        },
        uptime = human_duration(app.uptime().as_secs()),
    );
    for u in &snap.upstreams {
        upstream_card(&mut out, u);
    }
    let _ = write!(
        out,
        "</main><footer>JSON: <a href=\"/api/upstreams\">/api/upstreams</a> · \
         Prometheus: <a href=\"/metrics\">/metrics</a> · <a href=\"/readyz\">/readyz</a></footer>\
         <script>{SCRIPT}</script></body></html>"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(125), "2m 05s");
        assert_eq!(human_duration(3 * 3600 + 60), "3h 01m");
        assert_eq!(human_duration(90_000), "1d 01h");
    }
}
