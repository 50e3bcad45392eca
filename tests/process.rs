//! The binary as operators run it: `check`, SIGHUP reload under traffic, SIGTERM drain.

mod common;
use common::*;
use std::time::Duration;

#[test]
fn check_validates_like_nginx_t() {
    let (ok, out) = swarmgate_check(
        "upstreams:\n  kuscia:\n    servers:\n      - address: 127.0.0.1:1080\n",
        "check-ok",
    );
    assert!(ok, "{out}");
    assert!(out.contains("ok"), "{out}");
    let (ok, out) = swarmgate_check(
        "upstreams:\n  kuscia:\n    servers:\n      - address: 127.0.0.1:1080\n        wieght: 2\n",
        "check-typo",
    );
    assert!(!ok);
    assert!(out.contains("wieght") && out.contains("line 5"), "{out}");
    let (ok, out) = swarmgate_check(
        "upstreams:\n  a:\n    servers: [{address: '127.0.0.1:1'}]\nroutes:\n  - upstream: nope\n",
        "check-route",
    );
    assert!(!ok);
    assert!(
        out.contains("routes[0].upstream") && out.contains("line 5"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reload_under_traffic_loses_nothing_and_bad_config_keeps_old() {
    let a = named("a").await;
    let b = named("b").await;
    // keepalive_requests: 0 so that the long-lived client connections are never retired.
    let only = |o: &Origin| format!("keepalive_requests: 0\n{}", one_upstream(o.addr));
    let mut sg = start_swarmgate("hup", &only(&a)).await;
    let addr = sg.addr;
    let loops = GetLoops::start(addr, 4, "/");
    for i in 0..6 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let next = if i % 2 == 0 { &b } else { &a };
        sg.rewrite(&only(next));
        signal(sg.child(), "-HUP");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Now on `a`. A broken config must keep `a` serving.
    sg.rewrite(
        "keepalive_requests: 0\nupstreams:\n  u:\n    servers: [{address: 'bad address'}]\n",
    );
    signal(sg.child(), "-HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok, failed) = loops.finish().await;
    assert!(failed.is_empty(), "{ok} ok, failed: {failed:?}");
    assert!(ok > 100, "{ok}");
    assert!(a.requests() > 0 && b.requests() > 0);
    assert_eq!(get(addr, "/").await.2, "a");
    assert!(sg.proc.0.try_wait().unwrap().is_none(), "still running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_slow_request_finish_and_exits_zero() {
    let slow = origin(|_req| async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        text(200, "finished")
    })
    .await;
    let mut sg = start_swarmgate(
        "term",
        &format!("shutdown_timeout: 10s\n{}", one_upstream(slow.addr)),
    )
    .await;
    let addr = sg.addr;
    let inflight = tokio::spawn(async move { get(addr, "/").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(sg.child(), "-TERM");
    let (status, headers, body) = inflight.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, "finished");
    assert_eq!(
        headers.get("connection").map(|v| v.to_str().unwrap()),
        Some("close")
    );
    let (code, _) = sg.wait_exit(Duration::from_secs(10)).await;
    assert!(code.success(), "{code:?}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}
