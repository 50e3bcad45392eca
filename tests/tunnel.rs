//! Reverse tunnel: the hub (a swarmgate process with `tunnel:`) reaches origins only through
//! `swarmgate agent` processes that dialled it over real TLS. Requests, a WebSocket, 64 MiB
//! both ways and 100 concurrent requests ride the tunnel; the agent's `allow` is enforced on
//! its side; wrong tokens and unknown names are refused; killing and restarting agents or the
//! hub fails fast and recovers. Timings are printed, never asserted.

mod common;
use common::*;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "s3cret-token-member-1";

/// Certificates, token files and the tunnel port shared by one test's hub and agents.
struct Setup {
    pki: Pki,
    tunnel: SocketAddr,
    token_file: PathBuf,
    /// How agents name the hub (also the TLS name verified).
    hub_host: String,
    /// Network namespace agents run in; default the test's own.
    netns: Option<String>,
}

fn setup(tag: &str) -> Setup {
    setup_at(tag, "localhost", free_port(), None)
}

fn setup_at(tag: &str, hub_host: &str, tunnel: SocketAddr, netns: Option<String>) -> Setup {
    let pki = pki_for(
        &format!("tunnel-{tag}"),
        &["localhost", "127.0.0.1", hub_host],
    );
    let token_file = pki.dir.join("member-1.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    Setup {
        pki,
        tunnel,
        token_file,
        hub_host: hub_host.to_owned(),
        netns,
    }
}

impl Setup {
    /// Hub config: the tunnel listener plus `upstreams`.
    fn hub(&self, upstreams: &str) -> String {
        format!(
            "client_max_body_size: 0\nkeepalive_requests: 0\ntunnel:\n  listen: '{}'\n  tls: {{cert: '{}', key: '{}'}}\n  agents:\n    member-1: {{token_file: '{}'}}\n{upstreams}",
            self.tunnel,
            self.pki.dir.join("cert.pem").display(),
            self.pki.dir.join("key.pem").display(),
            self.token_file.display(),
        )
    }

    /// An agent `name` with `token` allowed to reach `allow`.
    fn agent(&self, tag: &str, name: &str, token: &str, allow: &[&str]) -> Agent {
        let token_file = self.pki.dir.join(format!("{tag}.token"));
        std::fs::write(&token_file, token).unwrap();
        let allow = allow
            .iter()
            .map(|a| format!("'{a}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let config = self.pki.dir.join(format!("{tag}.yaml"));
        std::fs::write(
            &config,
            format!(
                "agent:\n  hub: '{}:{}'\n  name: {name}\n  token_file: '{}'\n  tls_ca: '{}'\n  allow: [{allow}]\n",
                self.hub_host,
                self.tunnel.port(),
                token_file.display(),
                self.pki.dir.join("ca.pem").display(),
            ),
        )
        .unwrap();
        Agent::start(&config, self.netns.clone())
    }
}

/// A `swarmgate agent` process whose log is collected.
struct Agent {
    proc: Proc,
    log: Arc<Mutex<String>>,
    config: PathBuf,
    netns: Option<String>,
}

/// `program`, inside network namespace `netns` when given.
fn command(program: &str, netns: Option<&str>) -> std::process::Command {
    match netns {
        None => std::process::Command::new(program),
        Some(ns) => {
            let mut c = std::process::Command::new("ip");
            c.args(["netns", "exec", ns, program]);
            c
        }
    }
}

impl Agent {
    fn start(config: &Path, netns: Option<String>) -> Agent {
        let mut child = command(env!("CARGO_BIN_EXE_swarmgate"), netns.as_deref())
            .arg("agent")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let l = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if std::env::var("SG_TEST_LOG").is_ok() {
                    eprintln!("agent: {line}");
                }
                let mut l = l.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Agent {
            proc: Proc(child),
            log,
            config: config.to_owned(),
            netns,
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (up to 20 s) for `needle` in the agent's log.
    async fn wait_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "agent never logged {needle:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn restart(&mut self) {
        let _ = self.proc.0.kill();
        let _ = self.proc.0.wait();
        *self = Agent::start(&self.config.clone(), self.netns.clone());
    }
}

/// Polls `GET /` on fresh connections until it answers `status` (20 s at most); returns how
/// long that took.
async fn until_status(addr: SocketAddr, status: u16) -> Duration {
    let t = Instant::now();
    loop {
        if get(addr, "/").await.0 == status {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{addr} never answered {status}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn via(addr: SocketAddr) -> String {
    format!("upstreams:\n  u:\n    servers: [{{address: '{addr}', via: member-1}}]\n")
}

#[tokio::test]
async fn requests_websocket_large_bodies_and_concurrency_ride_the_tunnel() {
    const SIZE: u64 = 64 << 20;
    let s = setup("traffic");
    let plain = named("behind-nat").await;
    let ws = upgrade_echo_at("127.0.0.1").await;
    let up = checksum_origin().await;
    let down = pattern_origin(SIZE).await;
    let hub = start_swarmgate(
        "tunnel-traffic",
        &s.hub(&format!(
            "upstreams:\n  plain:\n    servers: [{{address: '{}', via: member-1}}]\n  ws:\n    servers: [{{address: '{}', via: member-1}}]\n  up:\n    servers: [{{address: '{}', via: member-1}}]\n  down:\n    servers: [{{address: '{}', via: member-1}}]\nroutes:\n  - {{path_prefix: /ws, upstream: ws}}\n  - {{path_prefix: /up, upstream: up}}\n  - {{path_prefix: /down, upstream: down}}\n  - {{path_prefix: /, upstream: plain}}\n",
            plain.addr, ws.addr, up.addr, down.addr
        )),
    )
    .await;
    // Before any agent connects the servers are down: a fast 502.
    assert_eq!(get(hub.addr, "/").await.0, 502);
    let _agent = s.agent("traffic", "member-1", TOKEN, &["127.0.0.1/32"]);
    until_status(hub.addr, 200).await;
    let (st, h, body) = get(hub.addr, "/").await;
    assert_eq!((st.as_u16(), &body[..]), (200, &b"behind-nat"[..]));
    assert_eq!(h["x-origin"], "behind-nat");

    upgrade_roundtrip(hub.addr, "/ws").await;
    upload_pattern(hub.addr, "/up", SIZE).await;
    download_pattern(hub.addr, "/down", SIZE).await;

    let addr = hub.addr;
    let tasks: Vec<_> = (0..100)
        .map(|_| tokio::spawn(async move { get(addr, "/").await }))
        .collect();
    for t in tasks {
        let (st, _, body) = t.await.unwrap();
        assert_eq!((st.as_u16(), &body[..]), (200, &b"behind-nat"[..]));
    }
}

#[tokio::test]
async fn the_agent_refuses_targets_outside_its_allow_list() {
    let s = setup("allow");
    let inside = named("inside").await;
    // A replica on 127.0.0.2, outside the agent's allow list (the hub could reach it directly:
    // only the agent's check stands in the way).
    let outside = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let outside_addr = outside.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let a = accepted.clone();
    tokio::spawn(async move {
        while outside.accept().await.is_ok() {
            a.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let hub = start_swarmgate(
        "tunnel-allow",
        &s.hub(&format!(
            "upstreams:\n  inside:\n    servers: [{{address: '{}', via: member-1}}]\n  outside:\n    servers: [{{address: '{}', via: member-1}}]\nroutes:\n  - {{path_prefix: /outside, upstream: outside}}\n  - {{path_prefix: /, upstream: inside}}\n",
            inside.addr, outside_addr
        )),
    )
    .await;
    let agent = s.agent("allow", "member-1", TOKEN, &["127.0.0.1/32"]);
    until_status(hub.addr, 200).await;
    let (st, _, _) = get(hub.addr, "/outside").await;
    assert_eq!(st, 502);
    agent.wait_log("not in allow").await;
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the agent dialled a target outside its allow list"
    );
    assert_eq!(get(hub.addr, "/").await.0, 200);
}

#[tokio::test]
async fn wrong_token_and_unknown_name_are_refused_and_tokens_never_logged() {
    let s = setup("auth");
    let o = named("secret-replica").await;
    let hub = start_swarmgate("tunnel-auth", &s.hub(&via(o.addr))).await;
    let wrong = s.agent("wrong", "member-1", "not-the-token", &["127.0.0.1/32"]);
    let unknown = s.agent("unknown", "member-9", TOKEN, &["127.0.0.1/32"]);
    wrong.wait_log("wrong token for agent").await;
    unknown.wait_log("unknown agent name").await;
    assert_eq!(get(hub.addr, "/").await.0, 502);
    assert_eq!(o.accepts(), 0);
    for log in [wrong.log(), unknown.log()] {
        assert!(
            !log.contains("not-the-token") && !log.contains(TOKEN),
            "{log}"
        );
    }
    // A hub certificate the agent does not trust.
    let other = pki("tunnel-auth-other-ca");
    let bad_ca = s.pki.dir.join("bad-ca.yaml");
    std::fs::write(
        &bad_ca,
        format!(
            "agent:\n  hub: 'localhost:{}'\n  name: member-1\n  token_file: '{}'\n  tls_ca: '{}'\n  allow: ['127.0.0.1/32']\n",
            s.tunnel.port(),
            s.token_file.display(),
            other.dir.join("ca.pem").display()
        ),
    )
    .unwrap();
    let untrusting = Agent::start(&bad_ca, None);
    untrusting.wait_log("TLS: invalid peer certificate").await;
    assert_eq!(get(hub.addr, "/").await.0, 502);
    assert_eq!(o.accepts(), 0);
    // A correct agent gets in.
    let _good = s.agent("good", "member-1", TOKEN, &["127.0.0.1/32"]);
    until_status(hub.addr, 200).await;
}

#[tokio::test]
async fn killed_agent_fails_fast_and_restarts_and_hub_restarts_are_survived() {
    let s = setup("restart");
    let o = named("replica").await;
    let body = s.hub(&via(o.addr));
    let mut hub = start_swarmgate("tunnel-restart", &body).await;
    let mut agent = s.agent("restart", "member-1", TOKEN, &["127.0.0.1/32"]);
    let first = until_status(hub.addr, 200).await;

    let _ = agent.proc.0.kill();
    let _ = agent.proc.0.wait();
    let noticed = until_status(hub.addr, 502).await;
    let t = Instant::now();
    assert_eq!(get(hub.addr, "/").await.0, 502);
    let one_502 = t.elapsed();

    agent.restart();
    let back = until_status(hub.addr, 200).await;

    // Hub restart: same tunnel port, new proxy port; the agent reconnects with backoff.
    hub.proc.0.kill().unwrap();
    hub.proc.0.wait().unwrap();
    agent.wait_log("tunnel to hub lost").await;
    let t = Instant::now();
    hub = start_swarmgate("tunnel-restart", &body).await;
    until_status(hub.addr, 200).await;
    let hub_back = t.elapsed();
    println!(
        "first agent connect {first:?}; agent kill noticed {noticed:?}; 502 took {one_502:?}; \
         agent restart to traffic {back:?}; hub restart to traffic {hub_back:?}"
    );
}

#[tokio::test]
async fn two_agents_of_one_name_and_one_dying_under_load_fails_nothing() {
    let s = setup("pair");
    let o = named("replica").await;
    let hub = start_swarmgate("tunnel-pair", &s.hub(&via(o.addr))).await;
    let a = s.agent("pair-a", "member-1", TOKEN, &["127.0.0.1/32"]);
    let b = s.agent("pair-b", "member-1", TOKEN, &["127.0.0.1/32"]);
    a.wait_log("tunnel to hub up").await;
    b.wait_log("tunnel to hub up").await;
    until_status(hub.addr, 200).await;

    let loops = GetLoops::start(hub.addr, 8, "/");
    let wait_requests = |n: usize| {
        let o = &o;
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            let start = o.requests();
            while o.requests() < start + n {
                assert!(Instant::now() < deadline, "traffic stalled");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    wait_requests(200).await;
    drop(a); // SIGKILL under load
    wait_requests(500).await;
    let (ok, failed) = loops.finish().await;
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        failed[0]
    );
    assert!(ok >= 700, "{ok}");
}

#[tokio::test]
async fn a_frozen_agent_is_dropped_within_keepalive_timeout_and_reconnects() {
    let s = setup("frozen");
    let o = named("replica").await;
    let body = s
        .hub(&via(o.addr))
        .replace("  agents:\n", "  keepalive_timeout: 2s\n  agents:\n");
    let hub = start_swarmgate("tunnel-frozen", &body).await;
    let agent = s.agent("frozen", "member-1", TOKEN, &["127.0.0.1/32"]);
    until_status(hub.addr, 200).await;
    // SIGSTOP: the connection stays open but nothing answers the hub's PINGs.
    signal(&agent.proc.0, "-STOP");
    let dropped = until_status(hub.addr, 502).await;
    signal(&agent.proc.0, "-CONT");
    let back = until_status(hub.addr, 200).await;
    println!("frozen agent dropped after {dropped:?}; traffic again {back:?} after SIGCONT");
}

/// An in-process hub (for its admin listener) and agent: "tunnel down" in the API and the
/// status page while no agent is connected, then the tunnel metrics.
#[tokio::test]
async fn admin_shows_tunnel_down_and_metrics_count_agents_streams_and_bytes() {
    let s = setup("admin");
    let o = named("replica").await;
    // Active health checks go through the tunnel too.
    let upstream = format!(
        "upstreams:\n  u:\n    servers: [{{address: '{}', via: member-1}}]\n    health_check: {{interval: 100ms, rise: 1, fall: 1}}\n",
        o.addr
    );
    let p = proxy(&s.hub(&upstream).replace("keepalive_requests: 0\n", "")).await;
    let admin = p.admin.unwrap();
    let (_, _, api) = get(admin, "/api/upstreams").await;
    let api = String::from_utf8_lossy(&api).into_owned();
    assert!(
        api.contains("\"state\": \"tunnel_down\"") && api.contains("tunnel down"),
        "{api}"
    );
    let (_, _, page) = get(admin, "/").await;
    assert!(String::from_utf8_lossy(&page).contains("TUNNEL DOWN"));
    assert_eq!(get(p.addr, "/").await.0, 502);

    let agent_file = s.pki.dir.join("admin-agent.yaml");
    std::fs::write(
        &agent_file,
        format!(
            "agent:\n  hub: '127.0.0.1:{}'\n  name: member-1\n  token_file: '{}'\n  tls_ca: '{}'\n  allow: ['127.0.0.0/8']\n",
            s.tunnel.port(),
            s.token_file.display(),
            s.pki.dir.join("ca.pem").display()
        ),
    )
    .unwrap();
    let cfg = swarmgate::config::agent::AgentConfig::load(&agent_file).unwrap();
    let agent = tokio::spawn(swarmgate::tunnel::agent::run(cfg));
    until_status(p.addr, 200).await;
    let t = Instant::now();
    loop {
        let (_, _, api) = get(admin, "/api/upstreams").await;
        let api = String::from_utf8_lossy(&api).into_owned();
        if api.contains("\"state\": \"up\"") && api.contains("\"health\": \"healthy\"") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "{api}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, _, m) = get(admin, "/metrics").await;
    let m = String::from_utf8_lossy(&m).into_owned();
    assert!(
        m.contains("swarmgate_tunnel_agents{agent=\"member-1\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("swarmgate_tunnel_streams_total{agent=\"member-1\",result=\"opened\"}"),
        "{m}"
    );
    assert!(
        m.contains("swarmgate_tunnel_bytes_total{agent=\"member-1\",direction=\"from_agent\"}"),
        "{m}"
    );
    agent.abort();
}

/// Throughput of one large download through the tunnel against the same origin dialled
/// directly by the same hub, alternating, in one run. A measurement, not a test:
/// `cargo test --test tunnel -- --ignored --nocapture throughput` (debug build unless
/// `--profile` says otherwise).
#[tokio::test]
#[ignore]
async fn throughput_through_the_tunnel_against_direct() {
    const SIZE: u64 = 512 << 20;
    let s = setup("bench");
    let chunk = bytes::Bytes::from(vec![7u8; 256 << 10]);
    let o = origin(move |_req| {
        let chunk = chunk.clone();
        async move {
            let stream = futures_util::stream::iter(
                (0..SIZE / chunk.len() as u64)
                    .map(move |_| Ok(hyper::body::Frame::data(chunk.clone()))),
            );
            hyper::Response::new(http_body_util::BodyExt::boxed(
                http_body_util::StreamBody::new(stream),
            ))
        }
    })
    .await;
    let hub = start_swarmgate(
        "tunnel-bench",
        &s.hub(&format!(
            "upstreams:\n  direct:\n    servers: [{{address: '{0}'}}]\n  tunnel:\n    servers: [{{address: '{0}', via: member-1}}]\nroutes:\n  - {{path_prefix: /direct, upstream: direct}}\n  - {{path_prefix: /, upstream: tunnel}}\n",
            o.addr
        )),
    )
    .await;
    let _agent = s.agent("bench", "member-1", TOKEN, &["127.0.0.1/32"]);
    until_status(hub.addr, 200).await;
    let mut results: Vec<(&str, f64)> = Vec::new();
    for round in 0..3 {
        for path in ["/direct", "/tunnel"] {
            let mut c = Conn::open(hub.addr).await;
            let t = Instant::now();
            let resp = c
                .send(
                    hyper::Request::get(path)
                        .header("host", "x")
                        .body(empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            let mut body = resp.into_body();
            let mut n = 0u64;
            while let Some(f) = http_body_util::BodyExt::frame(&mut body).await {
                if let Some(d) = f.unwrap().data_ref() {
                    n += d.len() as u64;
                }
            }
            assert_eq!(n, SIZE);
            let mibs = SIZE as f64 / (1 << 20) as f64 / t.elapsed().as_secs_f64();
            println!("round {round} {path}: {mibs:.0} MiB/s");
            results.push((path, mibs));
        }
    }
    for path in ["/direct", "/tunnel"] {
        let mut v: Vec<f64> = results
            .iter()
            .filter(|r| r.0 == path)
            .map(|r| r.1)
            .collect();
        v.sort_by(|a, b| a.total_cmp(b));
        println!("median {path}: {:.0} MiB/s", v[v.len() / 2]);
    }
}

/// Two network namespaces made by the test: the agent's (`agent`), linked to this namespace by
/// `10.201.N.1 (here) – 10.201.N.2 (agent)`, and the replica's (`replica`), linked only to the
/// agent's by `10.200.N.1 (agent) – 10.200.N.2 (replica)`. This namespace gets an `unreachable`
/// route for the replica's subnet, so the hub has no way there but the agent. Removed on drop.
struct Netns {
    agent: String,
    replica: String,
    n: u32,
}

fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    /// None (test skipped) without root or `ip`, except with `CI=true`: then it fails.
    fn create() -> Option<Netns> {
        let usable = std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .is_ok_and(|o| o.status.success())
            && std::process::Command::new("id")
                .arg("-u")
                .output()
                .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        if !usable {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "network namespaces (root and iproute2) required with CI=true"
            );
            eprintln!("SKIPPED: network namespaces need root and iproute2");
            return None;
        }
        let pid = std::process::id();
        let n = 20 + pid % 200;
        let ns = Netns {
            agent: format!("sg-agent-{pid}"),
            replica: format!("sg-replica-{pid}"),
            n,
        };
        let (h, a, b, r) = (
            format!("sgh{pid}"),
            format!("sga{pid}"),
            format!("sgb{pid}"),
            format!("sgr{pid}"),
        );
        ip(&["netns", "add", &ns.agent]);
        ip(&["netns", "add", &ns.replica]);
        ip(&["link", "add", &h, "type", "veth", "peer", "name", &a]);
        ip(&["link", "set", &a, "netns", &ns.agent]);
        ip(&["addr", "add", &format!("10.201.{n}.1/24"), "dev", &h]);
        ip(&["link", "set", &h, "up"]);
        ip(&["route", "add", "unreachable", &format!("10.200.{n}.0/24")]);
        ip(&["link", "add", &b, "type", "veth", "peer", "name", &r]);
        ip(&["link", "set", &b, "netns", &ns.agent]);
        ip(&["link", "set", &r, "netns", &ns.replica]);
        for (netns, dev, addr) in [
            (&ns.agent, &a, format!("10.201.{n}.2/24")),
            (&ns.agent, &b, format!("10.200.{n}.1/24")),
            (&ns.replica, &r, format!("10.200.{n}.2/24")),
        ] {
            ip(&["-n", netns, "addr", "add", &addr, "dev", dev]);
            ip(&["-n", netns, "link", "set", dev, "up"]);
            ip(&["-n", netns, "link", "set", "lo", "up"]);
        }
        Some(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let n = self.n;
        let host_veth = format!("sgh{}", std::process::id());
        for args in [
            vec!["route", "del", "unreachable", &*format!("10.200.{n}.0/24")],
            vec!["link", "del", &*host_veth],
            vec!["netns", "del", &*self.agent],
            vec!["netns", "del", &*self.replica],
        ] {
            let _ = std::process::Command::new("ip").args(&args).output();
        }
    }
}

#[tokio::test]
async fn a_replica_only_the_agent_can_reach_is_served_through_the_hub() {
    let Some(ns) = Netns::create() else { return };
    let n = ns.n;
    let hub_ip = format!("10.201.{n}.1");
    let replica_addr = format!("10.200.{n}.2:1080");
    let _replica = Proc(
        command(env!("CARGO_BIN_EXE_swarmgate-replica"), Some(&ns.replica))
            .arg(&replica_addr)
            .env("REPLICA_NAME", "natted-replica")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let tunnel: SocketAddr = format!("{hub_ip}:{}", free_port().port()).parse().unwrap();
    let s = setup_at("netns", &hub_ip, tunnel, Some(ns.agent.clone()));
    let hub = start_swarmgate(
        "tunnel-netns",
        &s.hub(&format!(
            "upstreams:\n  natted:\n    servers: [{{address: '{replica_addr}', via: member-1}}]\n  direct:\n    servers: [{{address: '{replica_addr}'}}]\nroutes:\n  - {{path_prefix: /direct, upstream: direct}}\n  - {{path_prefix: /, upstream: natted}}\n"
        )),
    )
    .await;
    // The hub alone cannot reach the replica.
    assert_eq!(get(hub.addr, "/direct/echo").await.0, 502);
    let agent = s.agent("netns", "member-1", TOKEN, &[&format!("10.200.{n}.0/24")]);
    agent.wait_log("tunnel to hub up").await;
    // The replica answers `GET /` with Kuscia's 401; `/echo` with 200.
    let t = Instant::now();
    let (st, h, body) = loop {
        let r = get(hub.addr, "/echo").await;
        if r.0 == 200 || t.elapsed() > Duration::from_secs(20) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(h["x-replica"], "natted-replica");
    let (st, h, _) = get(hub.addr, "/").await;
    assert_eq!(st, 401);
    assert_eq!(h["x-replica"], "natted-replica");
    assert_eq!(get(hub.addr, "/direct/echo").await.0, 502);
}
