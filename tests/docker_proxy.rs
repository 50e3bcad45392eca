//! Docker discovery through the proxy: swarmgate in-process (tests/common `proxy`) with Docker
//! discovery in containers mode on a fresh bridge network, replicas from the
//! `swarmgate-replica:test` image (built by scripts/build-replica-image.sh). The test process
//! reaches the containers' bridge IPs directly (Linux).
//!
//! Without a reachable engine the Docker tests are skipped, except with `CI=true` where they
//! fail. `cargo test --test docker_proxy -- --ignored --nocapture` runs the latency benchmark
//! (median of 10: `docker start` → first request routed to the replica, `docker stop` → the
//! replica leaves the proxy's server set).

mod common;
mod docker_support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{collect, empty, Conn, Proxy};
use hyper::Request;
use swarmgate::upstream::Source;

use docker_support::{docker_async, endpoint, median, ready, unique};

/// The replicas and the network of one test (removed on drop, also when the test fails).
struct Fixture {
    docker: docker_support::Fixture,
    net: String,
}

impl Fixture {
    fn new() -> Fixture {
        let docker = docker_support::Fixture::new("sg-proxy");
        let net = docker.network("net", &[]);
        Fixture { docker, net }
    }

    /// `docker run`s (or with `create_only`, `docker create`s) a replica named
    /// `<prefix>-<suffix>` on the network, without its image's health check; returns its name.
    fn replica(&self, suffix: &str, extra: &[&str], create_only: bool) -> String {
        let mut args = vec!["--no-healthcheck"];
        args.extend_from_slice(extra);
        if create_only {
            self.docker.create(suffix, &self.net, &args)
        } else {
            self.docker.replica(suffix, &self.net, &args)
        }
    }
}

/// An upstream `kuscia` fed by Docker discovery on `net`; `extra` is added to the upstream
/// (indented 4) and `docker_extra` to the docker block (indented 8).
fn yaml(net: &str, extra: &str, docker_extra: &str) -> String {
    format!(
        "upstreams:\n  kuscia:\n{extra}    discovery:\n      docker:\n        endpoint: \"{}\"\n        network: \"{net}\"\n        mode: containers\n        port: 1080\n{docker_extra}",
        endpoint()
    )
}

/// Names of the Docker-discovered servers in the proxy's live set of `upstream`.
fn live(p: &Proxy, upstream: &str) -> BTreeSet<String> {
    let rt = p.app.shared.runtime();
    let u = rt.upstream(upstream).expect("upstream");
    let set = u.servers();
    set.servers
        .iter()
        .filter_map(|s| match &s.source {
            Source::Docker(n) => Some(n.clone()),
            Source::Static | Source::Dns(_) => None,
        })
        .collect()
}

/// One GET on a keepalive connection; `Ok((status, x-replica))` or the transport error.
async fn probe(conn: &mut Conn, path: &str) -> Result<(u16, String), String> {
    let req = Request::get(path)
        .header("host", "kuscia.test")
        .body(empty())
        .expect("request");
    let resp = conn.send(req).await.map_err(|e| e.to_string())?;
    let (status, headers, _) = collect(resp).await;
    let who = headers
        .get("x-replica")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    Ok((status.as_u16(), who))
}

/// Sends requests (reconnecting after errors) until `pred` holds for the set of replicas that
/// answered 200; returns the time it took. Panics after `within`.
async fn until_seen(
    addr: SocketAddr,
    within: Duration,
    what: &str,
    pred: impl Fn(&BTreeSet<String>) -> bool,
) -> Duration {
    let t0 = Instant::now();
    let mut seen = BTreeSet::new();
    let mut conn = Conn::open(addr).await;
    loop {
        match probe(&mut conn, "/healthz").await {
            Ok((200, who)) if !who.is_empty() => {
                seen.insert(who);
            }
            Ok(_) => {}
            Err(_) => conn = Conn::open(addr).await,
        }
        if pred(&seen) {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < within,
            "timed out after {within:?} waiting for {what}; seen {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until `pred` holds for the proxy's Docker-discovered servers; returns the time waited.
async fn until_live(
    p: &Proxy,
    within: Duration,
    what: &str,
    pred: impl Fn(&BTreeSet<String>) -> bool,
) -> Duration {
    let t0 = Instant::now();
    loop {
        let now = live(p, "kuscia");
        if pred(&now) {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < within,
            "timed out after {within:?} waiting for {what}; live {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labelled_replicas_get_traffic_and_a_new_one_joins() {
    if !ready() {
        return;
    }
    let fx = Fixture::new();
    // https like Kuscia's gateway (the replica's TLS=1 mode, self-signed, not verified).
    let gw = ["--label", "role=gw", "-e", "TLS=1"];
    let r1 = fx.replica("r1", &gw, false);
    let r2 = fx.replica("r2", &gw, false);
    let stranger = fx.replica("nolabel", &["-e", "TLS=1"], false);
    let p = common::proxy(&yaml(
        &fx.net,
        "    scheme: https\n    tls_verify: false\n",
        "        labels: {role: gw}\n",
    ))
    .await;
    let t = until_seen(p.addr, Duration::from_secs(10), "r1 and r2", |s| {
        s.contains(&r1) && s.contains(&r2)
    })
    .await;
    eprintln!("r1 and r2 both answered {t:?} after the proxy started");

    // Balanced: 40 requests on one keepalive connection split 20/20, the stranger gets none.
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut conn = Conn::open(p.addr).await;
    for _ in 0..40 {
        let (status, who) = probe(&mut conn, "/").await.expect("request");
        assert_eq!(status, 401, "Kuscia-like 401 passes through");
        *counts.entry(who).or_default() += 1;
    }
    assert_eq!(
        counts,
        BTreeMap::from([(r1.clone(), 20), (r2.clone(), 20)]),
        "round robin over the labelled replicas only"
    );
    assert!(!counts.contains_key(&stranger));

    // A third labelled replica started now gets traffic within 2 s.
    let t0 = Instant::now();
    let r3 = fx.replica("r3", &gw, false);
    let run = t0.elapsed();
    until_seen(p.addr, Duration::from_secs(2), "r3", |s| s.contains(&r3)).await;
    eprintln!(
        "r3 routed {:?} after `docker run` began (the CLI itself took {run:?})",
        t0.elapsed()
    );
    assert_eq!(live(&p, "kuscia"), BTreeSet::from([r1, r2, r3]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_replica_leaves_without_failed_requests() {
    if !ready() {
        return;
    }
    let fx = Fixture::new();
    let names: Vec<String> = (1..=3)
        .map(|i| fx.replica(&format!("r{i}"), &[], false))
        .collect();
    let p = common::proxy(&yaml(&fx.net, "", "")).await;
    until_seen(p.addr, Duration::from_secs(10), "all replicas", |s| {
        names.iter().all(|n| s.contains(n))
    })
    .await;

    // Two keepalive clients loop small slow requests while r1 is stopped.
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..2 {
        let stop = stop.clone();
        let addr = p.addr;
        clients.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await;
            let (mut ok, mut failed) = (BTreeMap::<String, usize>::new(), Vec::new());
            let mut last_to: BTreeMap<String, Instant> = BTreeMap::new();
            while !stop.load(Ordering::Relaxed) {
                match probe(&mut conn, "/slow?ms=5").await {
                    Ok((200, who)) => {
                        last_to.insert(who.clone(), Instant::now());
                        *ok.entry(who).or_default() += 1;
                    }
                    Ok((status, who)) => failed.push(format!("{status} from {who:?}")),
                    Err(e) => {
                        failed.push(e);
                        conn = Conn::open(addr).await;
                    }
                }
            }
            (ok, failed, last_to)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = Instant::now();
    docker_async(&["stop", "-t", "5", &names[0]]).await;
    let cli = t0.elapsed();
    until_live(&p, Duration::from_secs(2), "r1 to leave", |s| {
        !s.contains(&names[0])
    })
    .await;
    let gone = t0.elapsed();
    eprintln!("r1 left the proxy's set {gone:?} after `docker stop` began (CLI took {cli:?})");
    // Keep the load on a little longer, then collect.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut last_r1 = None::<Instant>;
    for c in clients {
        let (ok, failed, last_to) = c.await.expect("client");
        for (k, v) in ok {
            *total.entry(k).or_default() += v;
        }
        failures.extend(failed);
        if let Some(t) = last_to.get(&names[0]) {
            last_r1 = last_r1.max(Some(*t));
        }
    }
    eprintln!("responses by replica: {total:?}");
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert!(
        total.get(&names[0]).copied().unwrap_or(0) > 0,
        "r1 had traffic"
    );
    assert!(
        total.get(&names[1]).copied().unwrap_or(0) > 0
            && total.get(&names[2]).copied().unwrap_or(0) > 0
    );
    if let Some(t) = last_r1 {
        assert!(
            t <= t0 + Duration::from_secs(2),
            "r1 answered {:?} after the stop began",
            t - t0
        );
    }
}

/// Discovery that cannot reach its engine does not take the static servers down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_docker_endpoint_keeps_static_servers_serving() {
    // Needs no engine: the endpoint is a socket that does not exist.
    let origin = common::named("static").await;
    let sock = std::env::temp_dir().join(format!("{}.sock", unique("sg-missing")));
    let upstream = unique("badep").replace('-', "_");
    let y = format!(
        "upstreams:\n  {upstream}:\n    servers: [{{address: \"{}\"}}]\n    discovery:\n      docker:\n        endpoint: \"unix://{}\"\n        network: nowhere\n        mode: containers\n",
        origin.addr,
        sock.display()
    );
    let p = common::proxy(&y).await;
    let mut conn = Conn::open(p.addr).await;
    let t0 = Instant::now();
    // Across the first connection attempt and a few retries (backoff 250 ms, 500 ms, ...).
    while t0.elapsed() < Duration::from_millis(1500) {
        let req = Request::get("/")
            .header("host", "kuscia.test")
            .body(empty())
            .expect("request");
        let (status, headers, body) = collect(conn.send(req).await.expect("send")).await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-origin"], "static");
        assert_eq!(&body[..], b"static");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = p.app.discovery.status();
    let snap = status.get(&upstream).expect("discovery running");
    assert!(!snap.up, "discovery is down: {snap:?}");
    assert!(snap.error.is_some());
    let admin = p.admin.expect("admin");
    let (_, _, metrics) = common::get(admin, "/metrics").await;
    let metrics = String::from_utf8_lossy(&metrics);
    let line = format!("swarmgate_discovery_up{{upstream=\"{upstream}\"}} 0");
    assert!(metrics.contains(&line), "missing {line:?} in /metrics");
    let (status, _, _) = common::get(admin, "/readyz").await;
    assert_eq!(status, 200, "ready: the static server is selectable");
}

fn summary(v: &[Duration]) -> String {
    format!(
        "median {:?} (min {:?}, max {:?})",
        median(v.to_vec()),
        v.iter().min().copied().unwrap_or_default(),
        v.iter().max().copied().unwrap_or_default()
    )
}

/// `docker start` → first request routed to the replica, `docker stop` → the replica leaves the
/// proxy's set (and → last request it answered), median of 10. A static origin in the same
/// upstream keeps the proxy answering meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_proxy_discovery_latency() {
    if !ready() {
        return;
    }
    let fx = Fixture::new();
    let name = fx.replica("b", &[], true);
    let origin = common::named("static").await;
    let p = common::proxy(&yaml(
        &fx.net,
        &format!("    servers: [{{address: \"{}\"}}]\n", origin.addr),
        "",
    ))
    .await;
    let (mut routed, mut left, mut cli_start, mut cli_stop) = (vec![], vec![], vec![], vec![]);
    let mut conn = Conn::open(p.addr).await;
    for _ in 0..10 {
        let t0 = Instant::now();
        docker_async(&["start", &name]).await;
        cli_start.push(t0.elapsed());
        // Alternating WRR with the static origin: a new replica is hit within two requests.
        loop {
            match probe(&mut conn, "/healthz").await {
                Ok((200, who)) if who == name => break,
                Ok(_) => {}
                Err(_) => conn = Conn::open(p.addr).await,
            }
            assert!(t0.elapsed() < Duration::from_secs(10), "start timed out");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        routed.push(t0.elapsed());
        let t0 = Instant::now();
        docker_async(&["stop", "-t", "2", &name]).await;
        cli_stop.push(t0.elapsed());
        until_live(&p, Duration::from_secs(10), "removal", |s| {
            !s.contains(&name)
        })
        .await;
        left.push(t0.elapsed());
    }
    eprintln!(
        "docker start → first request routed: {}; `docker start` CLI: {}",
        summary(&routed),
        summary(&cli_start)
    );
    eprintln!(
        "docker stop → removed from the proxy: {}; `docker stop` CLI: {}",
        summary(&left),
        summary(&cli_stop)
    );
}
