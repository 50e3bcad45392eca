//! Faults involving real processes: a replica process killed with SIGKILL under load, and the
//! swarmgate binary draining on SIGTERM (idle connections closed at once, early exit when
//! nothing is in flight, requests past the grace period cut with exit status 0).

mod common;
mod reliability_support;
use common::*;
use reliability_support::*;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const REPLICA: &str = env!("CARGO_BIN_EXE_swarmgate-replica");

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

/// Item 1 with a real process: a replica SIGKILLed under 4 keepalive GET loops costs no GET.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_process_sigkilled_under_load_fails_no_get() {
    let (mut ra, a) = replica("a").await;
    let (_rb, b) = replica("b").await;
    let p = proxy(&format!(
        "upstreams:\n  sigkill:\n    servers:\n      - address: '{a}'\n      - address: '{b}'\n"
    ))
    .await;
    let loops = GetLoops::start(p.addr, 4, "/healthz");
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(&ra.0, "-KILL");
    let _ = ra.0.wait();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (ok, failed) = loops.finish().await;
    assert!(failed.is_empty(), "{failed:?}");
    eprintln!("{ok} GETs, none failed, across SIGKILL of a replica");
    assert!(ok > 100, "{ok}");
}

/// Item 5: with nothing in flight, SIGTERM closes idle keepalive connections at once and the
/// process exits long before the grace period, with status 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_idle_keepalive_at_once_and_exits_early() {
    let o = named("a").await;
    let mut sg = start_swarmgate(
        "term-idle",
        &format!("shutdown_timeout: 20s\n{}", one_upstream(o.addr)),
    )
    .await;
    let addr = sg.addr;
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
    signal(sg.child(), "-TERM");
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
    let (status, after) = sg.wait_exit(Duration::from_secs(10)).await;
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
    let mut sg = start_swarmgate(
        "term-grace",
        &format!("shutdown_timeout: 1s\n{}", one_upstream(slow.addr)),
    )
    .await;
    let addr = sg.addr;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    signal(sg.child(), "-TERM");
    let (got, closed) = read_until_quiet(&mut s, Duration::from_secs(10)).await;
    let cut = t.elapsed();
    assert!(closed, "the in-flight request must be cut");
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    let (status, _) = sg.wait_exit(Duration::from_secs(10)).await;
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
