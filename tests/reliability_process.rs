//! Faults involving real processes: a replica process killed with SIGKILL under load, and the
//! swarmgate binary draining on SIGTERM (idle connections closed at once, early exit when
//! nothing is in flight, requests past the grace period cut with exit status 0).

mod common;
mod reliability_support;
use common::*;
use reliability_support::*;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_swarmgate");
const REPLICA: &str = env!("CARGO_BIN_EXE_swarmgate-replica");

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "{addr} did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn replica(name: &str) -> (Proc, SocketAddr) {
    let addr = free_port();
    let child = Command::new(REPLICA)
        .arg(addr.to_string())
        .env("REPLICA_NAME", name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(addr).await;
    (Proc(child), addr)
}

async fn swarmgate(tag: &str, body: &str) -> (Proc, SocketAddr) {
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
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(addr).await;
    (Proc(child), addr)
}

async fn wait_exit(p: &mut Proc, within: Duration) -> (std::process::ExitStatus, Duration) {
    let t = Instant::now();
    loop {
        if let Some(s) = p.0.try_wait().unwrap() {
            return (s, t.elapsed());
        }
        assert!(t.elapsed() < within, "did not exit within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Item 1 with a real process: a replica SIGKILLed under 4 keepalive GET loops costs no GET.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_process_sigkilled_under_load_fails_no_get() {
    let (mut ra, a) = replica("a").await;
    let (_rb, b) = replica("b").await;
    let p = proxy(&format!(
        "upstreams:\n  sigkill:\n    servers:\n      - address: '{a}'\n      - address: '{b}'\n"
    ))
    .await;
    let addr = p.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let mut loops = Vec::new();
    for _ in 0..4 {
        let stop = stop.clone();
        loops.push(tokio::spawn(async move {
            let mut c = Conn::open(addr).await;
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let (s, h, _) = c.get("/healthz").await;
                if s == 200 {
                    ok += 1;
                } else {
                    failed.push((s, h.get("x-replica").cloned()));
                }
            }
            (ok, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(&ra.0, "-KILL");
    let _ = ra.0.wait();
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::Relaxed);
    let mut ok = 0;
    for l in loops {
        let (o, failed) = l.await.unwrap();
        assert!(failed.is_empty(), "{failed:?}");
        ok += o;
    }
    eprintln!("{ok} GETs, none failed, across SIGKILL of a replica");
    assert!(ok > 100, "{ok}");
}

/// Item 5: with nothing in flight, SIGTERM closes idle keepalive connections at once and the
/// process exits long before the grace period, with status 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_idle_keepalive_at_once_and_exits_early() {
    let o = named("a").await;
    let (mut sg, addr) = swarmgate(
        "term-idle",
        &format!("shutdown_timeout: 20s\n{}", one_upstream(o.addr)),
    )
    .await;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (first, closed) = read_until_quiet(&mut idle, Duration::from_millis(300)).await;
    assert!(String::from_utf8_lossy(&first).starts_with("HTTP/1.1 200 "));
    assert!(!closed);
    // A second connection that never sent anything.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    signal(&sg.0, "-TERM");
    let (rest, closed) = read_until_quiet(&mut idle, Duration::from_secs(5)).await;
    assert!(
        closed && rest.is_empty(),
        "idle keepalive connection closed without a word"
    );
    let idle_closed = t.elapsed();
    let (_, closed) = read_until_quiet(&mut silent, Duration::from_secs(5)).await;
    assert!(
        closed,
        "a connection that never sent a request is closed too"
    );
    let (status, after) = wait_exit(&mut sg, Duration::from_secs(10)).await;
    eprintln!(
        "idle connection closed {idle_closed:?} after SIGTERM; exit {status:?} after {after:?}"
    );
    assert!(status.success(), "{status:?}");
    assert!(idle_closed < Duration::from_secs(2), "{idle_closed:?}");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "exit took {:?} (grace 20 s)",
        t.elapsed()
    );
}

/// Item 5: a request still in flight when the grace period ends is cut, and the process
/// still exits 0, shortly after the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_cuts_requests_past_the_grace_period_and_exits_zero() {
    let slow = origin(|_req| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        text(200, "too late")
    })
    .await;
    let (mut sg, addr) = swarmgate(
        "term-grace",
        &format!("shutdown_timeout: 1s\n{}", one_upstream(slow.addr)),
    )
    .await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    signal(&sg.0, "-TERM");
    let (got, closed) = read_until_quiet(&mut s, Duration::from_secs(10)).await;
    let cut = t.elapsed();
    assert!(closed, "the in-flight request must be cut");
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    let (status, _) = wait_exit(&mut sg, Duration::from_secs(10)).await;
    let exited = t.elapsed();
    eprintln!(
        "in-flight request cut {cut:?} after SIGTERM (grace 1 s); exit {status:?} at {exited:?}"
    );
    assert!(status.success(), "{status:?}");
    assert!(
        cut >= Duration::from_millis(900),
        "cut before the grace period: {cut:?}"
    );
    assert!(exited < Duration::from_secs(4), "{exited:?}");
}
