//! The binary as operators run it: `check`, SIGHUP reload under traffic, SIGTERM drain.

mod common;
use common::*;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_swarmgate");

fn check(yaml: &str, tag: &str) -> (bool, String) {
    let path = tmpdir(tag).join("c.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn check_validates_like_nginx_t() {
    let (ok, out) = check(
        "upstreams:\n  kuscia:\n    servers:\n      - address: 127.0.0.1:1080\n",
        "check-ok",
    );
    assert!(ok, "{out}");
    assert!(out.contains("ok"), "{out}");
    let (ok, out) = check(
        "upstreams:\n  kuscia:\n    servers:\n      - address: 127.0.0.1:1080\n        wieght: 2\n",
        "check-typo",
    );
    assert!(!ok);
    assert!(out.contains("wieght") && out.contains("line 5"), "{out}");
    let (ok, out) = check(
        "upstreams:\n  a:\n    servers: [{address: '127.0.0.1:1'}]\nroutes:\n  - upstream: nope\n",
        "check-route",
    );
    assert!(!ok);
    assert!(
        out.contains("routes[0].upstream") && out.contains("line 5"),
        "{out}"
    );
}

struct Running {
    child: Child,
    addr: SocketAddr,
    config: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(tag: &str, body: &str) -> Running {
    let dir = tmpdir(tag);
    let config = dir.join("swarmgate.yaml");
    let addr = free_port();
    std::fs::write(
        &config,
        format!("listen: '{addr}'\nadmin: {{listen: ''}}\naccess_log: false\n{body}"),
    )
    .unwrap();
    let child = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .env(
            "RUST_LOG",
            std::env::var("SG_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(if std::env::var("SG_TEST_LOG").is_ok() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "swarmgate did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Running {
        child,
        addr,
        config,
    }
}

fn rewrite(path: &Path, addr: SocketAddr, body: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(
        &tmp,
        format!("listen: '{addr}'\nadmin: {{listen: ''}}\naccess_log: false\n{body}"),
    )
    .unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reload_under_traffic_loses_nothing_and_bad_config_keeps_old() {
    let a = named("a").await;
    let b = named("b").await;
    // keepalive_requests: 0 so that the long-lived client connections are never retired.
    let only = |o: &Origin| format!("keepalive_requests: 0\n{}", one_upstream(o.addr));
    let mut sg = start("hup", &only(&a)).await;
    let addr = sg.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut loops = Vec::new();
    for _ in 0..4 {
        let stop = stop.clone();
        loops.push(tokio::spawn(async move {
            let mut c = Conn::open(addr).await;
            let (mut ok, mut failed) = (0u32, 0u32);
            let mut last = None;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let req = hyper::Request::get("/")
                    .header("host", "x")
                    .body(empty())
                    .unwrap();
                let resp = match c.send(req).await {
                    Ok(r) => r,
                    Err(e) => {
                        panic!("after {ok} ok, {failed} failed: {e}; last response: {last:?}")
                    }
                };
                let (status, headers, _) = collect(resp).await;
                match status.as_u16() {
                    200 => ok += 1,
                    _ => failed += 1,
                }
                last = Some((status, headers));
            }
            (ok, failed)
        }));
    }
    for i in 0..6 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let next = if i % 2 == 0 { &b } else { &a };
        rewrite(&sg.config, addr, &only(next));
        signal(&sg.child, "-HUP");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Now on `a`. A broken config must keep `a` serving.
    rewrite(
        &sg.config,
        addr,
        "keepalive_requests: 0\nupstreams:\n  u:\n    servers: [{address: 'bad address'}]\n",
    );
    signal(&sg.child, "-HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failed) = (0, 0);
    for l in loops {
        let (o, f) = l.await.unwrap();
        ok += o;
        failed += f;
    }
    assert_eq!(failed, 0, "{ok} ok, {failed} failed");
    assert!(ok > 100, "{ok}");
    assert!(a.requests() > 0 && b.requests() > 0);
    assert_eq!(get(addr, "/").await.2, "a");
    assert!(sg.child.try_wait().unwrap().is_none(), "still running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_slow_request_finish_and_exits_zero() {
    let slow = origin(|_req| async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        text(200, "finished")
    })
    .await;
    let mut sg = start(
        "term",
        &format!("shutdown_timeout: 10s\n{}", one_upstream(slow.addr)),
    )
    .await;
    let addr = sg.addr;
    let inflight = tokio::spawn(async move { get(addr, "/").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&sg.child, "-TERM");
    let (status, headers, body) = inflight.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, "finished");
    assert_eq!(
        headers.get("connection").map(|v| v.to_str().unwrap()),
        Some("close")
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(s) = sg.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(code.success(), "{code:?}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}
