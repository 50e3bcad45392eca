//! Docker discovery against the real engine. Fixtures are made with the `docker` CLI on
//! uniquely named bridge networks and removed by a drop guard, even when a test fails.
//! Without a reachable engine the tests are skipped, except with `CI=true` where they fail.
//!
//! `cargo test --test docker_discovery -- --ignored --nocapture` runs the swarm-mode test (it
//! runs `docker swarm init` when the engine is not in a swarm, and leaves it afterwards) and the
//! latency benchmark (median of 10 start→appear and stop→disappear).

mod docker_support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use swarmgate::config::{DockerDiscoveryConfig, DockerMode};
use swarmgate::discovery::docker::run;
use swarmgate::discovery::DiscoverySnapshot;
use tokio::sync::watch;

use docker_support::{docker, docker_async, endpoint, median, ready, Fixture, IMAGE};

fn cfg(network: &str, name: Option<&str>, labels: &[(&str, &str)]) -> DockerDiscoveryConfig {
    DockerDiscoveryConfig {
        endpoint: endpoint(),
        network: network.to_owned(),
        port: 1080,
        name: name.map(str::to_owned),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        mode: DockerMode::Containers,
        resync: Duration::from_secs(30),
        weight: 1,
        max_fails: 1,
        fail_timeout: Duration::from_secs(10),
    }
}

fn start(cfg: DockerDiscoveryConfig) -> watch::Receiver<DiscoverySnapshot> {
    let (tx, rx) = watch::channel(DiscoverySnapshot::default());
    tokio::spawn(run(cfg, tx));
    rx
}

/// Waits until `pred` holds for the snapshot; returns it and the time waited.
async fn wait_for(
    rx: &mut watch::Receiver<DiscoverySnapshot>,
    within: Duration,
    what: &str,
    pred: impl Fn(&DiscoverySnapshot) -> bool,
) -> (DiscoverySnapshot, Duration) {
    let t0 = Instant::now();
    loop {
        {
            let s = rx.borrow_and_update();
            if pred(&s) {
                return (s.clone(), t0.elapsed());
            }
        }
        let left = within.saturating_sub(t0.elapsed());
        match tokio::time::timeout(left, rx.changed()).await {
            Ok(Ok(())) => {}
            _ => panic!(
                "timed out after {within:?} waiting for {what}; last: {:?}",
                *rx.borrow()
            ),
        }
    }
}

fn addrs(s: &DiscoverySnapshot) -> Vec<(String, SocketAddr)> {
    s.backends
        .iter()
        .map(|b| (b.name.clone(), b.addr))
        .collect()
}

fn has(s: &DiscoverySnapshot, name: &str) -> bool {
    s.backends.iter().any(|b| b.name == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_mode_filters_and_follows_changes() {
    if !ready() {
        return;
    }
    let fx = Fixture::new("sg-test");
    let net = fx.network("net", &[]);
    let other = fx.network("other", &[]);
    let lab = ["--no-healthcheck", "--label", "role=gw"];
    let r1 = fx.replica("r1", &net, &lab);
    let r2 = fx.replica(
        "r2",
        &net,
        &[
            "--no-healthcheck",
            "--label",
            "role=gw",
            "--label",
            "swarmgate.port=1081",
            "--label",
            "swarmgate.weight=3",
            "--label",
            "swarmgate.upstream=api",
        ],
    );
    // Ignored: no label, label mismatch, disabled, other network, name not matching.
    fx.replica("nolabel", &net, &["--no-healthcheck"]);
    fx.replica("wrong", &net, &["--no-healthcheck", "--label", "role=db"]);
    fx.replica(
        "off",
        &net,
        &[
            "--no-healthcheck",
            "--label",
            "role=gw",
            "--label",
            "swarmgate.enable=false",
        ],
    );
    fx.replica("elsewhere", &other, &lab);
    let stranger = format!("x{}-stranger", fx.prefix);
    fx.track(stranger.clone());
    docker(&[
        "run",
        "-d",
        "--name",
        &stranger,
        "--network",
        &net,
        "--no-healthcheck",
        "--label",
        "role=gw",
        IMAGE,
    ])
    .expect("run stranger");
    // Dual-homed: first on `other`, then connected to `net`; must be reported with its `net` IP.
    let dual = fx.replica("dual", &other, &lab);
    docker(&["network", "connect", &net, &dual]).expect("connect");

    let name_re = format!("^{}-", regex_escape(&fx.prefix));
    let mut rx = start(cfg(&net, Some(&name_re), &[("role", "gw")]));
    let (snap, _) = wait_for(&mut rx, Duration::from_secs(5), "r1, r2, dual", |s| {
        s.up && s.backends.len() == 3
    })
    .await;
    let mut want = vec![
        (dual.clone(), SocketAddr::new(fx.ip(&dual, &net), 1080)),
        (r1.clone(), SocketAddr::new(fx.ip(&r1, &net), 1080)),
        (r2.clone(), SocketAddr::new(fx.ip(&r2, &net), 1081)),
    ];
    want.sort();
    assert_eq!(addrs(&snap), want);
    assert_ne!(fx.ip(&dual, &net), fx.ip(&dual, &other));
    let b2 = snap.backends.iter().find(|b| b.name == r2).expect("r2");
    assert_eq!((b2.weight, b2.upstream.as_deref()), (Some(3), Some("api")));
    let b1 = snap.backends.iter().find(|b| b.name == r1).expect("r1");
    assert_eq!((b1.weight, b1.upstream.as_deref()), (None, None));
    assert!(snap.error.is_none());

    // A replica started later appears; a stopped one disappears.
    let t0 = Instant::now();
    let r3 = fx.replica("r3", &net, &lab);
    wait_for(&mut rx, Duration::from_secs(2), "r3 to appear", |s| {
        has(s, &r3)
    })
    .await;
    eprintln!("r3 appeared {:?} after docker run", t0.elapsed());
    let t0 = Instant::now();
    docker_async(&["stop", "-t", "2", &r1]).await;
    wait_for(&mut rx, Duration::from_secs(2), "r1 to disappear", |s| {
        !has(s, &r1)
    })
    .await;
    eprintln!("r1 disappeared {:?} after docker stop began", t0.elapsed());
    // Disconnecting the dual-homed container from the network removes it too.
    docker_async(&["network", "disconnect", &net, &dual]).await;
    let (snap, _) = wait_for(&mut rx, Duration::from_secs(2), "dual to disappear", |s| {
        !has(s, &dual)
    })
    .await;
    let names: Vec<_> = snap.backends.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, [r2.as_str(), r3.as_str()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_healthcheck_is_excluded() {
    if !ready() {
        return;
    }
    let fx = Fixture::new("sg-test");
    let net = fx.network("net", &[]);
    let hc = [
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
        "--health-timeout",
        "2s",
    ];
    let good = fx.replica("good", &net, &hc);
    let mut bad_args = hc.to_vec();
    bad_args.extend_from_slice(&["-e", "HEALTHCHECK_PORT=1"]);
    let bad = fx.replica("bad", &net, &bad_args);
    let mut rx = start(cfg(&net, None, &[]));
    // Both start in `health: starting`: nothing until the good one turns healthy.
    let (snap, _) = wait_for(&mut rx, Duration::from_secs(2), "up", |s| s.up).await;
    assert!(!has(&snap, &bad));
    wait_for(
        &mut rx,
        Duration::from_secs(10),
        "good to become healthy",
        |s| has(s, &good),
    )
    .await;
    // Give the bad one time to be judged unhealthy; it must never show up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let health = docker(&["inspect", "-f", "{{.State.Health.Status}}", &bad]).expect("inspect");
    assert_eq!(health, "unhealthy");
    let snap = rx.borrow().clone();
    assert_eq!(
        snap.backends
            .iter()
            .map(|b| b.name.as_str())
            .collect::<Vec<_>>(),
        [good.as_str()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_endpoint_is_down_then_recovers() {
    if !ready() {
        return;
    }
    let real = endpoint();
    let Some(real_sock) = real.strip_prefix("unix://").map(str::to_owned) else {
        eprintln!("SKIPPED: recovery test needs a unix socket endpoint, have {real}");
        return;
    };
    let fx = Fixture::new("sg-test");
    let net = fx.network("net", &[]);
    let r = fx.replica("r", &net, &["--no-healthcheck"]);
    let link = std::env::temp_dir().join(format!("{}.sock", fx.prefix));
    let _ = std::fs::remove_file(&link);
    let mut c = cfg(&net, None, &[]);
    c.endpoint = format!("unix://{}", link.display());
    let mut rx = start(c);
    let (snap, _) = wait_for(&mut rx, Duration::from_secs(3), "down with an error", |s| {
        !s.up && s.error.is_some()
    })
    .await;
    eprintln!("bad endpoint error: {:?}", snap.error);
    assert!(snap.backends.is_empty());
    // The socket appears: the source recovers within the backoff (≤ 10 s).
    std::os::unix::fs::symlink(&real_sock, &link).expect("symlink");
    let res = tokio::time::timeout(
        Duration::from_secs(12),
        wait_for(&mut rx, Duration::from_secs(12), "recovery", |s| {
            s.up && has(s, &r)
        }),
    )
    .await;
    // The socket goes away again: the event stream lives on its open connection, but the relist
    // that the next event triggers fails, so the source goes down keeping the last known set.
    let _ = std::fs::remove_file(&link);
    res.expect("recovered");
    docker_async(&["stop", "-t", "1", &r]).await;
    let (snap, _) = wait_for(&mut rx, Duration::from_secs(5), "down again", |s| !s.up).await;
    assert!(
        has(&snap, &r),
        "down keeps the last known backends: {snap:?}"
    );
    assert!(snap.error.is_some());
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_ascii_alphanumeric() {
                vec![c]
            } else {
                vec!['\\', c]
            }
        })
        .collect()
}

/// Start→appear and stop→disappear latency, median of 10 (run with --ignored --nocapture).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_discovery_latency() {
    if !ready() {
        return;
    }
    let fx = Fixture::new("sg-test");
    let net = fx.network("net", &[]);
    let name = format!("{}-b", fx.prefix);
    fx.track(name.clone());
    docker(&[
        "create",
        "--name",
        &name,
        "--network",
        &net,
        "--no-healthcheck",
        IMAGE,
    ])
    .expect("create");
    let mut rx = start(cfg(&net, None, &[]));
    wait_for(&mut rx, Duration::from_secs(5), "up", |s| s.up).await;
    let (mut up, mut down, mut cli_start, mut cli_stop) = (vec![], vec![], vec![], vec![]);
    for _ in 0..10 {
        let t0 = Instant::now();
        docker_async(&["start", &name]).await;
        cli_start.push(t0.elapsed());
        wait_for(&mut rx, Duration::from_secs(5), "appear", |s| has(s, &name)).await;
        up.push(t0.elapsed());
        let t0 = Instant::now();
        docker_async(&["stop", "-t", "2", &name]).await;
        cli_stop.push(t0.elapsed());
        wait_for(&mut rx, Duration::from_secs(5), "disappear", |s| {
            !has(s, &name)
        })
        .await;
        down.push(t0.elapsed());
    }
    eprintln!(
        "docker start → backend present: median {:?} (min {:?}, max {:?}); `docker start` CLI itself: median {:?}",
        median(up.clone()),
        up.iter().min().copied().unwrap_or_default(),
        up.iter().max().copied().unwrap_or_default(),
        median(cli_start)
    );
    eprintln!(
        "docker stop → backend gone: median {:?} (min {:?}, max {:?}); `docker stop` CLI itself: median {:?}",
        median(down.clone()),
        down.iter().min().copied().unwrap_or_default(),
        down.iter().max().copied().unwrap_or_default(),
        median(cli_stop)
    );
}

/// Swarm mode on an attachable overlay: a service task and a standalone container are found.
/// Runs `docker swarm init` if needed and leaves the swarm afterwards (only if it created it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn swarm_mode_overlay() {
    if !ready() {
        return;
    }
    let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]).expect("info");
    let created = state != "active";
    if created {
        docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]).expect("swarm init");
    }
    // Dropped last (declared first): after the service and the fixture.
    let _swarm = SwarmGuard { created };
    let fx = Fixture::new("sg-test");
    let net = fx.network("ov", &["-d", "overlay", "--attachable"]);
    let standalone = fx.replica("solo", &net, &["--no-healthcheck", "--label", "role=gw"]);
    let svc = format!("{}-svc", fx.prefix);
    let _guard = ServiceGuard(svc.clone());
    docker(&[
        "service",
        "create",
        "-d",
        "--name",
        &svc,
        "--network",
        &net,
        "--replicas",
        "2",
        "--no-healthcheck",
        "--container-label",
        "role=gw",
        "--container-label",
        "swarmgate.weight=2",
        IMAGE,
    ])
    .expect("service create");
    let mut c = cfg(&net, None, &[("role", "gw")]);
    c.mode = DockerMode::Auto;
    let mut rx = start(c);
    let (snap, t) = wait_for(&mut rx, Duration::from_secs(30), "3 backends", |s| {
        s.up && s.backends.len() == 3
    })
    .await;
    eprintln!("swarm snapshot after {t:?}: {:#?}", snap.backends);
    let solo = snap
        .backends
        .iter()
        .find(|b| b.name == standalone)
        .expect("standalone");
    assert_eq!(solo.addr.ip(), fx.ip(&standalone, &net));
    let tasks: Vec<_> = snap
        .backends
        .iter()
        .filter(|b| b.name.starts_with(&svc))
        .collect();
    assert_eq!(tasks.len(), 2);
    assert!(tasks.iter().all(|b| b.weight == Some(2)));
    let t0 = Instant::now();
    docker_async(&["service", "scale", "-d", &format!("{svc}=1")]).await;
    wait_for(&mut rx, Duration::from_secs(15), "scale down", |s| {
        s.backends.len() == 2
    })
    .await;
    eprintln!("swarm scale-down seen after {:?}", t0.elapsed());
    docker_async(&["rm", "-f", &standalone]).await;
    wait_for(&mut rx, Duration::from_secs(3), "standalone gone", |s| {
        !has(s, &standalone)
    })
    .await;
}

struct ServiceGuard(String);
impl Drop for ServiceGuard {
    fn drop(&mut self) {
        let _ = docker(&["service", "rm", &self.0]);
        // Let the task containers go so the fixture can remove the overlay network.
        for _ in 0..50 {
            let left =
                docker(&["ps", "-aq", "--filter", &format!("name={}", self.0)]).unwrap_or_default();
            if left.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

struct SwarmGuard {
    created: bool,
}
impl Drop for SwarmGuard {
    fn drop(&mut self) {
        if self.created {
            let _ = docker(&["swarm", "leave", "--force"]);
            let _ = docker(&["network", "rm", "docker_gwbridge"]);
        }
    }
}
