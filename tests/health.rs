//! Active health checks over real sockets: rise/fall, expect_status, tcp checks, default_down,
//! when_all_down, and probes following membership changes on reload.

mod common;
mod obs;
use common::*;
use obs::*;
use std::time::Duration;
use swarmgate::upstream::Health;

const LIMIT: Duration = Duration::from_secs(10);

fn hc(extra: &str) -> String {
    format!("    health_check: {{interval: 100ms, rise: 2, fall: 2, timeout: 500ms, path: {HC}{extra}}}\n")
}

#[tokio::test]
async fn failing_server_goes_out_after_fall_and_back_after_rise() {
    let a = switchable(200).await;
    let b = switchable(200).await;
    let p = proxy(&format!(
        "upstreams:\n  u:\n{}    servers:\n      - address: '{}'\n      - address: '{}'\n",
        hc(""),
        a.addr(),
        b.addr()
    ))
    .await;
    wait_until("a healthy", LIMIT, || {
        health_of(&p, "u", a.addr()) == Some(Health::Healthy)
    })
    .await;

    a.set(500);
    wait_until("a unhealthy", LIMIT, || {
        health_of(&p, "u", a.addr()) == Some(Health::Unhealthy)
    })
    .await;
    let before = a.traffic();
    let mut c = Conn::open(p.addr).await;
    for _ in 0..20 {
        assert_eq!(c.get("/work").await.0, 200, "b answers");
    }
    assert_eq!(a.traffic(), before, "an unhealthy server gets no traffic");
    let v = api(&p).await;
    let sa = server_json(&v, "u", a.addr());
    assert_eq!(sa["state"], "unhealthy");
    assert_eq!(sa["healthy"], false);
    assert_eq!(sa["last_check_ok"], false);
    assert!(sa["detail"].as_str().unwrap().contains("500"), "{sa}");

    a.set(200);
    wait_until("a healthy again", LIMIT, || {
        health_of(&p, "u", a.addr()) == Some(Health::Healthy)
    })
    .await;
    let before = a.traffic();
    for _ in 0..20 {
        assert_eq!(c.get("/work").await.0, 200);
    }
    assert_eq!(a.traffic() - before, 10, "back in rotation with its weight");
}

#[tokio::test]
async fn single_failure_does_not_flip_with_fall_two() {
    // A failure followed by a success resets the count: alternating never reaches fall = 2.
    let flip = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let f = flip.clone();
    let o = origin(move |_req| {
        let n = f.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move { text(if n % 2 == 0 { 500 } else { 200 }, "x") }
    })
    .await;
    let p = proxy(&format!(
        "upstreams:\n  u:\n{}    servers:\n      - address: '{}'\n",
        hc(""),
        o.addr
    ))
    .await;
    wait_until("six probes", LIMIT, || o.requests() >= 6).await;
    assert_ne!(health_of(&p, "u", o.addr), Some(Health::Unhealthy));
}

#[tokio::test]
async fn expect_status_4xx_keeps_a_kuscia_style_401_replica() {
    let kuscia = switchable(401).await;
    let with_4xx = proxy(&format!(
        "upstreams:\n  u:\n{}    servers:\n      - address: '{}'\n",
        hc(", expect_status: ['2xx', '3xx', '4xx']"),
        kuscia.addr()
    ))
    .await;
    let default = proxy(&format!(
        "upstreams:\n  u:\n{}    servers:\n      - address: '{}'\n",
        hc(""),
        kuscia.addr()
    ))
    .await;
    wait_until("401 rejected by the default", LIMIT, || {
        health_of(&default, "u", kuscia.addr()) == Some(Health::Unhealthy)
    })
    .await;
    wait_until("401 accepted with 4xx", LIMIT, || {
        health_of(&with_4xx, "u", kuscia.addr()) == Some(Health::Healthy)
    })
    .await;
    assert_eq!(get(with_4xx.addr, "/").await.0, 401, "passed through");
    assert_eq!(get(default.addr, "/").await.0, 502, "no live upstream");
}

#[tokio::test]
async fn tcp_check_takes_out_a_closed_port() {
    let live = named("live").await;
    let dead = dead_port();
    let p = proxy(&format!(
        "upstreams:\n  u:\n    health_check: {{type: tcp, interval: 100ms, rise: 1, fall: 1}}\n    servers:\n      - address: '{}'\n      - address: '{}'\n",
        live.addr, dead.addr
    ))
    .await;
    wait_until("verdicts", LIMIT, || {
        health_of(&p, "u", live.addr) == Some(Health::Healthy)
            && health_of(&p, "u", dead.addr) == Some(Health::Unhealthy)
    })
    .await;
    assert_eq!(live.requests(), 0, "a tcp check sends no request");
    let v = api(&p).await;
    let d = server_json(&v, "u", dead.addr);
    assert!(d["detail"].as_str().unwrap().starts_with("connect"), "{d}");
    assert_eq!(d["state"], "unhealthy");
    for _ in 0..5 {
        assert_eq!(get(p.addr, "/").await.2, "live");
    }
}

#[tokio::test]
async fn default_down_starts_unhealthy_until_rise_successes() {
    let a = switchable(200).await;
    let p = proxy(&format!(
        "upstreams:\n  u:\n    health_check: {{interval: 1s, rise: 2, default_down: true, path: {HC}}}\n    servers:\n      - address: '{}'\n",
        a.addr()
    ))
    .await;
    // The first probe comes within 100 ms, the second (rise 2) only after ~1 s.
    assert_eq!(health_of(&p, "u", a.addr()), Some(Health::Unhealthy));
    assert_eq!(get(p.addr, "/").await.0, 502);
    assert_eq!(a.traffic(), 0);
    wait_until("rise", LIMIT, || {
        health_of(&p, "u", a.addr()) == Some(Health::Healthy)
    })
    .await;
    assert_eq!(get(p.addr, "/").await.0, 200);
}

#[tokio::test]
async fn when_all_down_try_all_serves_and_default_fails() {
    // Probes fail (500) while real traffic would succeed: only the policy decides.
    let probe_fails =
        origin(|req| async move { text(if req.uri().path() == HC { 500 } else { 200 }, "served") })
            .await;
    let conf = |policy: &str| {
        format!(
            "upstreams:\n  u:\n{policy}    health_check: {{interval: 100ms, rise: 1, fall: 1, path: {HC}}}\n    servers:\n      - address: '{}'\n",
            probe_fails.addr
        )
    };
    let try_all = proxy(&conf("    when_all_down: try_all\n")).await;
    let fail = proxy(&conf("")).await;
    wait_until("both unhealthy", LIMIT, || {
        health_of(&try_all, "u", probe_fails.addr) == Some(Health::Unhealthy)
            && health_of(&fail, "u", probe_fails.addr) == Some(Health::Unhealthy)
    })
    .await;
    let (s, _, body) = get(try_all.addr, "/").await;
    assert_eq!((s.as_u16(), &body[..]), (200, &b"served"[..]));
    assert_eq!(get(fail.addr, "/").await.0, 502);
}

#[tokio::test]
async fn probes_follow_reload_and_removed_servers_leave_metrics() {
    let a = switchable(200).await;
    let b = switchable(200).await;
    let dir = std::env::temp_dir().join(format!("swarmgate-health-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("reload.yaml");
    let write = |servers: &[std::net::SocketAddr]| {
        let mut y = String::from("listen: 127.0.0.1:0\nadmin: {listen: '127.0.0.1:0'}\naccess_log: false\nupstreams:\n  u:\n");
        y.push_str(&hc(""));
        y.push_str("    servers:\n");
        for s in servers {
            y.push_str(&format!("      - address: '{s}'\n"));
        }
        std::fs::write(&path, y).unwrap();
    };
    write(&[a.addr(), b.addr()]);
    let cfg = swarmgate::config::Config::load(&path).unwrap();
    let app = swarmgate::app::App::new(cfg, Some(path.clone())).unwrap();
    let task = tokio::spawn(swarmgate::app::run(app.clone()));
    let bound = app.bound().await;
    let admin = bound.admin.unwrap();
    let metrics = || async { String::from_utf8(get(admin, "/metrics").await.2.to_vec()).unwrap() };

    let probes_b = || b.origin.requests() - b.traffic();
    wait_until("b probed", LIMIT, || probes_b() >= 2).await;
    assert_eq!(get(bound.proxy[0], "/").await.0, 200);
    assert_eq!(get(bound.proxy[0], "/").await.0, 200);
    let m = metrics().await;
    let b_label = b.addr().to_string();
    assert!(sample(&m, "swarmgate_health_checks_total", &[("server", &b_label)]).is_some());
    assert!(sample(&m, "swarmgate_upstream_server_up", &[("server", &b_label)]) == Some(1.0));

    write(&[a.addr()]);
    let (s, _, _) = Conn::open(admin)
        .await
        .send(
            http::Request::post("/api/reload")
                .header("host", "admin")
                .body(empty())
                .unwrap(),
        )
        .await
        .map(|r| (r.status(), (), ()))
        .unwrap();
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(400)).await; // in-flight probes finish
    let after = probes_b();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(probes_b(), after, "a removed server is no longer probed");
    let m = metrics().await;
    assert!(
        !m.contains(&format!("server=\"{b_label}\"")),
        "series of the removed server are gone:\n{m}"
    );
    assert!(m.contains(&format!("server=\"{}\"", a.addr())));
    app.stop();
    let _ = task.await;
    let _ = std::fs::remove_dir_all(&dir);
}
