//! The admin listener: `/api/upstreams`, `/metrics` (checked with promtool when installed),
//! `/readyz`, and the HTML status page (screenshotted with headless Chromium when installed).

mod common;
mod obs;
use common::*;
use obs::*;
use std::time::Duration;
use swarmgate::upstream::Health;

const LIMIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn api_upstreams_reflects_server_state() {
    let a = named("a").await;
    let dead = dead_port();
    let off = named("off").await;
    let sick = switchable(500).await;
    let p = proxy(&format!(
        "upstreams:\n  kuscia:\n    servers:\n      - {{address: '{}', weight: 3}}\n      - {{address: '{}', max_fails: 1, fail_timeout: 60s}}\n      - {{address: '{}', down: true}}\n  checked:\n    health_check: {{interval: 100ms, rise: 1, fall: 1, path: {HC}}}\n    servers:\n      - address: '{}'\nroutes:\n  - {{path_prefix: /, upstream: kuscia}}\n",
        a.addr, dead.addr, off.addr, sick.addr()
    ))
    .await;
    for _ in 0..4 {
        assert_eq!(get(p.addr, "/").await.2, "a");
    }
    wait_until("sick unhealthy", LIMIT, || {
        health_of(&p, "checked", sick.addr()) == Some(Health::Unhealthy)
    })
    .await;
    let v = api(&p).await;
    let mut names: Vec<_> = v["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["checked", "kuscia"]);
    for u in v["upstreams"].as_array().unwrap() {
        assert!(u["discovery"].is_null(), "no discovery configured: {u}");
    }

    let sa = server_json(&v, "kuscia", a.addr);
    assert_eq!(sa["healthy"], true);
    assert_eq!(sa["state"], "up");
    assert_eq!(sa["weight"], 3);
    assert_eq!(sa["source"], "static");
    assert_eq!(sa["fails"], 0);
    assert_eq!(sa["active_requests"], 0);
    assert!(sa["last_check"].is_null(), "no active check: {sa}");
    assert_eq!(sa["requests"], 4);

    let sd = server_json(&v, "kuscia", dead.addr);
    assert_eq!(sd["healthy"], false);
    assert_eq!(sd["state"], "down", "banned by passive accounting: {sd}");
    assert_eq!(sd["fails"], 1);
    assert_eq!(sd["failures"], 1);

    let so = server_json(&v, "kuscia", off.addr);
    assert_eq!(
        (so["healthy"].clone(), so["state"].clone()),
        (false.into(), "down".into())
    );

    let ss = server_json(&v, "checked", sick.addr());
    assert_eq!(ss["healthy"], false);
    assert_eq!(ss["state"], "unhealthy");
    assert_eq!(ss["health"], "unhealthy");
    let at = ss["last_check"].as_str().unwrap();
    assert!(
        at.len() == 20 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
        "RFC 3339: {at}"
    );
    let checked = v["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "checked")
        .unwrap();
    assert_eq!(checked["health_check"]["rise"], 1);
    assert_eq!(checked["health_check"]["type"], "http");
}

#[tokio::test]
async fn metrics_count_requests_per_server_and_code() {
    let a = switchable(200).await;
    let p = proxy(&format!(
        "upstreams:\n  u:\n    health_check: {{interval: 100ms, rise: 1, fall: 3, path: {HC}}}\n    servers:\n      - address: '{}'\n",
        a.addr()
    ))
    .await;
    let mut c = Conn::open(p.addr).await;
    for _ in 0..5 {
        c.get("/x").await;
    }
    a.set(404);
    for _ in 0..2 {
        c.get("/x").await;
    }
    wait_until("a probe", LIMIT, || a.origin.requests() > a.traffic()).await;
    let m = scrape(&p).await;
    let srv = a.addr().to_string();
    let labels = |code| [("upstream", "u"), ("server", srv.as_str()), ("code", code)];
    assert_eq!(
        sample(&m, "swarmgate_requests_total", &labels("200")),
        Some(5.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "swarmgate_requests_total", &labels("404")),
        Some(2.0)
    );
    let up = [("upstream", "u"), ("server", srv.as_str())];
    assert_eq!(sample(&m, "swarmgate_upstream_server_up", &up), Some(1.0));
    assert_eq!(
        sample(
            &m,
            "swarmgate_upstream_connections",
            &[("server", srv.as_str()), ("state", "idle")]
        ),
        Some(1.0),
        "the keepalive connection is idle in the pool: {m}"
    );
    assert!(sample(
        &m,
        "swarmgate_health_checks_total",
        &[("server", srv.as_str())]
    )
    .is_some());
    promtool_check(&m).await;
}

/// Runs `promtool check metrics` on `text` when promtool is installed (Debian package
/// `prometheus`); otherwise says why it is skipped.
async fn promtool_check(text: &str) {
    let Some(promtool) = which("promtool") else {
        eprintln!("SKIPPED promtool check: promtool not installed (apt-get install prometheus)");
        return;
    };
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool failed: {report}\n{text}");
    assert!(report.trim().is_empty(), "promtool complains: {report}");
}

#[tokio::test]
async fn readyz_turns_503_when_every_server_is_down() {
    let a = switchable(200).await;
    let p = proxy(&format!(
        "upstreams:\n  u:\n    health_check: {{interval: 100ms, rise: 1, fall: 1, path: {HC}}}\n    servers:\n      - address: '{}'\n",
        a.addr()
    ))
    .await;
    let admin = p.admin.unwrap();
    assert_eq!(get(admin, "/readyz").await.0, 200);
    assert_eq!(get(admin, "/healthz").await.0, 200);
    a.set(503);
    wait_until("unhealthy", LIMIT, || {
        health_of(&p, "u", a.addr()) == Some(Health::Unhealthy)
    })
    .await;
    let (s, _, body) = get(admin, "/readyz").await;
    assert_eq!(s, 503);
    assert!(
        std::str::from_utf8(&body)
            .unwrap()
            .contains("no upstream has a selectable server"),
        "{body:?}"
    );
    assert_eq!(
        get(admin, "/healthz").await.0,
        200,
        "liveness is unaffected"
    );
    let v = api(&p).await;
    assert_eq!(v["ready"], false);
}

#[tokio::test]
async fn status_page_renders_and_screenshots() {
    let a = named("a").await;
    let b = switchable(200).await;
    let dead = dead_port();
    let p = proxy(&format!(
        "upstreams:\n  kuscia:\n    health_check: {{interval: 100ms, rise: 1, fall: 1, path: {HC}, expect_status: ['2xx', '4xx']}}\n    servers:\n      - {{address: '{}', weight: 2}}\n      - address: '{}'\n      - address: '{}'\n  backup-pool:\n    servers:\n      - {{address: '{}', backup: true}}\n      - {{address: '{}', down: true}}\nroutes:\n  - {{path_prefix: /, upstream: kuscia}}\n",
        a.addr, b.addr(), dead.addr, a.addr, b.addr()
    ))
    .await;
    b.set(500);
    wait_until("verdicts", LIMIT, || {
        health_of(&p, "kuscia", b.addr()) == Some(Health::Unhealthy)
            && health_of(&p, "kuscia", dead.addr) == Some(Health::Unhealthy)
            && health_of(&p, "kuscia", a.addr) == Some(Health::Healthy)
    })
    .await;
    let mut c = Conn::open(p.addr).await;
    for _ in 0..12 {
        c.get("/").await;
    }
    let admin = p.admin.unwrap();
    let (s, h, body) = get(admin, "/").await;
    assert_eq!(s, 200);
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    let html = String::from_utf8(body.to_vec()).unwrap();
    for needle in [
        "kuscia",
        "backup-pool",
        "UNHEALTHY",
        "UP",
        "DOWN",
        &a.addr.to_string(),
    ] {
        assert!(html.contains(needle), "page lacks {needle}");
    }
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external assets"
    );

    let Some(chromium) = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|c| which(c))
    else {
        eprintln!("SKIPPED screenshot: chromium not installed (apt-get install chromium)");
        return;
    };
    let png = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("status_page.png");
    let _ = std::fs::remove_file(&png);
    let profile = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("chromium-profile");
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--no-first-run",
                &format!("--user-data-dir={}", profile.display()),
                &format!("--screenshot={}", png.display()),
                "--window-size=1200,800",
                &format!("http://{admin}/"),
            ])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("chromium finishes within 90 s")
    .unwrap();
    let bytes = std::fs::read(&png).unwrap_or_else(|e| {
        panic!(
            "no screenshot ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert!(bytes.len() > 10_000, "non-trivial: {} bytes", bytes.len());
    eprintln!("screenshot: {}", png.display());
}
