//! DNS discovery (`discovery.dns`) and hostname server addresses, against a real DNS server of
//! the test's own (UDP on 127.0.0.1, hand-built answers) and real origins on 127.0.0.1 and
//! 127.0.0.2 sharing one port, as swarm tasks share their service port.

mod common;
use common::*;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;

/// A tiny authoritative DNS server: A records from a table the test changes at runtime, AAAA
/// answered empty, unknown names NXDOMAIN.
struct Dns {
    addr: SocketAddr,
    records: Arc<Mutex<HashMap<String, Vec<Ipv4Addr>>>>,
    queries: Arc<Mutex<usize>>,
    task: tokio::task::JoinHandle<()>,
}

impl Dns {
    async fn start() -> Dns {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let records: Arc<Mutex<HashMap<String, Vec<Ipv4Addr>>>> = Arc::default();
        let queries: Arc<Mutex<usize>> = Arc::default();
        let (r, q) = (records.clone(), queries.clone());
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            loop {
                let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                    return;
                };
                *q.lock().unwrap() += 1;
                let resp = answer(&buf[..n], &r.lock().unwrap());
                if let Some(resp) = resp {
                    let _ = sock.send_to(&resp, peer).await;
                }
            }
        });
        Dns {
            addr,
            records,
            queries,
            task,
        }
    }

    fn set(&self, name: &str, ips: &[&str]) {
        let ips = ips.iter().map(|s| s.parse().unwrap()).collect();
        self.records.lock().unwrap().insert(name.into(), ips);
    }

    fn queries(&self) -> usize {
        *self.queries.lock().unwrap()
    }

    /// Stops answering: the socket closes, so queries are refused or time out.
    fn stop(&self) {
        self.task.abort();
    }
}

/// The response to one query (RFC 1035 §4.1), or `None` for something that is not a query.
fn answer(q: &[u8], records: &HashMap<String, Vec<Ipv4Addr>>) -> Option<Vec<u8>> {
    if q.len() < 12 || q[2] & 0x80 != 0 {
        return None;
    }
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(pos)? as usize;
        pos += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(pos..pos + len)?).to_ascii_lowercase());
        pos += len;
    }
    let qtype = u16::from_be_bytes([*q.get(pos)?, *q.get(pos + 1)?]);
    let question = &q[12..pos + 4];
    let ips = records.get(&labels.join("."));
    let mut r = Vec::new();
    r.extend_from_slice(&q[0..2]);
    r.push(0x84 | (q[2] & 0x01)); // QR, AA, RD copied
    r.push(if ips.is_some() { 0x00 } else { 0x03 }); // NOERROR / NXDOMAIN
    let answers: &[Ipv4Addr] = match (ips, qtype) {
        (Some(ips), 1) => ips,
        _ => &[],
    };
    r.extend_from_slice(&[0, 1]);
    r.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(question);
    for ip in answers {
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4]);
        r.extend_from_slice(&ip.octets());
    }
    Some(r)
}

/// Origins on 127.0.0.1:P and 127.0.0.2:P (one port, as a service's tasks have).
async fn two_origins() -> (Origin, Origin, u16) {
    for _ in 0..20 {
        let a = named_at("127.0.0.1:0".parse().unwrap(), "one")
            .await
            .unwrap();
        let port = a.addr.port();
        if let Some(b) = named_at(SocketAddr::from(([127, 0, 0, 2], port)), "two").await {
            return (a, b, port);
        }
    }
    panic!("no port free on both 127.0.0.1 and 127.0.0.2");
}

async fn named_at(addr: SocketAddr, name: &'static str) -> Option<Origin> {
    origin_on(addr, move |_req| async move { text(200, name) }).await
}

/// `/api/upstreams`' first upstream: its server addresses and discovery status.
async fn servers(admin: SocketAddr) -> (Vec<String>, serde_json::Value) {
    servers_of(admin, 0).await
}

/// The same for the `i`th upstream (by name).
async fn servers_of(admin: SocketAddr, i: usize) -> (Vec<String>, serde_json::Value) {
    let (_, _, body) = get(admin, "/api/upstreams").await;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let u = &v["upstreams"][i];
    let mut list: Vec<String> = u["servers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] != "draining")
        .map(|s| {
            format!(
                "{} w{} {}",
                s["address"].as_str().unwrap(),
                s["weight"],
                s["source"].as_str().unwrap()
            )
        })
        .collect();
    list.sort();
    (list, u["discovery"].clone())
}

/// Polls until the live server list equals `want` (10 s at most).
async fn wait_servers(admin: SocketAddr, want: &[String]) {
    wait_servers_of(admin, 0, want).await
}

/// The same for the `i`th upstream.
async fn wait_servers_of(admin: SocketAddr, i: usize, want: &[String]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (got, _) = servers_of(admin, i).await;
        if got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "servers {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `n` requests; counts answers by body.
async fn spread(addr: SocketAddr, n: usize) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for _ in 0..n {
        let (s, _, b) = get(addr, "/").await;
        assert_eq!(s.as_u16(), 200);
        *out.entry(String::from_utf8_lossy(&b).into_owned())
            .or_insert(0) += 1;
    }
    out
}

#[tokio::test]
async fn dns_discovery_adds_and_removes_servers() {
    let dns = Dns::start().await;
    let (_one, _two, port) = two_origins().await;
    dns.set("tasks.web", &["127.0.0.1"]);
    let p = proxy(&format!(
        "upstreams:\n  web:\n    discovery:\n      dns: {{name: tasks.web, port: {port}, interval: 50ms, weight: 3, resolver: '{}'}}\n",
        dns.addr
    ))
    .await;
    let admin = p.admin.unwrap();
    let at = |ip: &str| format!("{ip}:{port} w3 dns");

    wait_servers(admin, &[at("127.0.0.1")]).await;
    assert_eq!(spread(p.addr, 4).await, HashMap::from([("one".into(), 4)]));

    // A second task appears: both get traffic, in equal shares (same weight).
    dns.set("tasks.web", &["127.0.0.1", "127.0.0.2"]);
    wait_servers(admin, &[at("127.0.0.1"), at("127.0.0.2")]).await;
    assert_eq!(
        spread(p.addr, 10).await,
        HashMap::from([("one".into(), 5), ("two".into(), 5)])
    );

    // The first task goes away.
    dns.set("tasks.web", &["127.0.0.2"]);
    wait_servers(admin, &[at("127.0.0.2")]).await;
    assert_eq!(spread(p.addr, 4).await, HashMap::from([("two".into(), 4)]));
    let (_, d) = servers(admin).await;
    assert_eq!(
        (d["kind"].as_str(), d["up"].as_bool()),
        (Some("dns"), Some(true))
    );

    // The resolver dies: the last set stays and keeps serving; discovery reports down.
    dns.stop();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (list, d) = servers(admin).await;
        assert_eq!(list, vec![at("127.0.0.2")]);
        if d["up"] == false {
            assert!(d["error"].as_str().is_some_and(|e| !e.is_empty()), "{d}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "discovery never went down: {d}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(spread(p.addr, 3).await, HashMap::from([("two".into(), 3)]));
    let (_, _, m) = get(admin, "/metrics").await;
    let m = String::from_utf8_lossy(&m);
    assert!(
        m.lines()
            .any(|l| l.starts_with("swarmgate_discovery_errors_total{source=\"dns\"}")),
        "{m}"
    );
    assert!(
        m.contains("swarmgate_discovery_up{upstream=\"web\"} 0"),
        "{m}"
    );
}

#[tokio::test]
async fn unknown_name_keeps_the_last_set() {
    let dns = Dns::start().await;
    let (_one, _two, port) = two_origins().await;
    dns.set("tasks.api", &["127.0.0.1", "127.0.0.2"]);
    let p = proxy(&format!(
        "upstreams:\n  api:\n    discovery:\n      dns: {{name: tasks.api, port: {port}, interval: 50ms, resolver: '{}'}}\n",
        dns.addr
    ))
    .await;
    let admin = p.admin.unwrap();
    let both = [
        format!("127.0.0.1:{port} w1 dns"),
        format!("127.0.0.2:{port} w1 dns"),
    ];
    wait_servers(admin, &both).await;
    // NXDOMAIN (e.g. every task gone for a moment during an update) is a failure, not "empty".
    dns.records.lock().unwrap().clear();
    let seen = dns.queries();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while dns.queries() < seen + 6 {
        assert!(std::time::Instant::now() < deadline, "no more queries");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (list, d) = servers(admin).await;
    assert_eq!(list, both);
    assert_eq!(d["up"], false, "{d}");
    assert!(d["error"].as_str().unwrap().contains("no such name"), "{d}");
}

#[tokio::test]
async fn hostname_server_becomes_one_server_per_address() {
    let dns = Dns::start().await;
    let (_one, _two, port) = two_origins().await;
    dns.set("replicas.test", &["127.0.0.2", "127.0.0.1"]);
    let p = proxy(&format!(
        "resolver: '{}'\nupstreams:\n  web:\n    servers: [{{address: 'replicas.test:{port}', weight: 2, max_fails: 3}}]\n\
         \x20 also:\n    servers: [{{address: 'replicas.test:{port}'}}]\n\
         routes:\n  - {{path_prefix: /also, upstream: also}}\n  - {{upstream: web}}\n",
        dns.addr
    ))
    .await;
    let admin = p.admin.unwrap();
    // Upstreams are listed by name: `also` (0), `web` (1).
    wait_servers_of(
        admin,
        1,
        &[
            format!("127.0.0.1:{port} w2 dns"),
            format!("127.0.0.2:{port} w2 dns"),
        ],
    )
    .await;
    // The other upstream naming the same host gets its own servers (with its own parameters).
    wait_servers_of(
        admin,
        0,
        &[
            format!("127.0.0.1:{port} w1 dns"),
            format!("127.0.0.2:{port} w1 dns"),
        ],
    )
    .await;
    let (_, _, body) = get(admin, "/api/upstreams").await;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    for s in v["upstreams"][1]["servers"].as_array().unwrap() {
        if s["state"] != "draining" {
            assert_eq!(s["max_fails"], 3, "{s}");
        }
    }
    assert_eq!(
        spread(p.addr, 8).await,
        HashMap::from([("one".into(), 4), ("two".into(), 4)])
    );
}

#[test]
fn dns_discovery_config_errors() {
    let err = |yaml: &str| match swarmgate::config::parse_config(yaml) {
        Ok(_) => panic!("accepted:\n{yaml}"),
        Err(e) => e.to_string(),
    };
    let e = err("upstreams:\n  a:\n    discovery:\n      docker: {}\n      dns: {name: tasks.a}\n");
    assert!(e.contains("upstreams.a.discovery"), "{e}");
    assert!(e.contains("line 5"), "{e}");
    let e = err("upstreams:\n  a:\n    discovery:\n      dns: {name: 'bad name'}\n");
    assert!(e.contains("upstreams.a.discovery.dns.name"), "{e}");
    let e = err("upstreams:\n  a:\n    discovery:\n      dns: {name: tasks.a, interval: 0s}\n");
    assert!(e.contains("discovery.dns.interval"), "{e}");
    let e = err("upstreams:\n  a:\n    discovery:\n      dns: {name: tasks.a, ttl: 5}\n");
    assert!(e.contains("ttl"), "{e}");
    let cfg = swarmgate::config::parse_config(
        "upstreams:\n  a:\n    discovery:\n      dns: {name: Tasks.A.}\n",
    )
    .unwrap();
    let d = cfg.upstreams[0].dns.clone().unwrap();
    assert_eq!((d.name.as_str(), d.port, d.weight), ("tasks.a", 1080, 1));
    assert_eq!(d.interval, Duration::from_secs(5));
    assert_eq!(d.resolver, None);
}

#[test]
fn example_config_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/dns-discovery.yaml");
    let cfg = swarmgate::config::Config::load(&path).unwrap();
    let d = cfg.upstreams[0].dns.clone().unwrap();
    assert_eq!((d.name.as_str(), d.port), ("tasks.kuscia-gateway", 1080));
}

/// An HTTPS origin on exactly `addr` answering `name`, or `None` when the address is taken.
async fn tls_origin_on(
    p: &Pki,
    addr: SocketAddr,
    name: &'static str,
) -> Option<tokio::task::JoinHandle<()>> {
    let acceptor = tokio_rustls::TlsAcceptor::from(p.server_config(&[]));
    let listener = tokio::net::TcpListener::bind(addr).await.ok()?;
    Some(tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(s).await else {
                    return;
                };
                let svc = hyper::service::service_fn(move |_req| async move {
                    Ok::<_, std::convert::Infallible>(text(200, name))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    }))
}

/// A hostname server over verified TLS: each resolved address is dialled, and the certificate
/// is still checked against the name (not the address).
#[tokio::test]
async fn hostname_server_keeps_its_tls_name() {
    let dns = Dns::start().await;
    // The certificate names only replicas.test: verifying against 127.0.0.x would fail.
    let pki = pki_for("dns-tls", &["replicas.test"]);
    let (a, b, port) = loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let Some(a) = tls_origin_on(&pki, SocketAddr::from(([127, 0, 0, 1], port)), "one").await
        else {
            continue;
        };
        match tls_origin_on(&pki, SocketAddr::from(([127, 0, 0, 2], port)), "two").await {
            Some(b) => break (a, b, port),
            None => a.abort(),
        }
    };
    dns.set("replicas.test", &["127.0.0.1", "127.0.0.2"]);
    let ca = pki.dir.join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let p = proxy(&format!(
        "resolver: '{}'\nupstreams:\n  web:\n    scheme: https\n    tls_ca: '{}'\n    servers: [{{address: 'replicas.test:{port}'}}]\n",
        dns.addr,
        ca.display()
    ))
    .await;
    wait_servers(
        p.admin.unwrap(),
        &[
            format!("127.0.0.1:{port} w1 dns"),
            format!("127.0.0.2:{port} w1 dns"),
        ],
    )
    .await;
    assert_eq!(
        spread(p.addr, 4).await,
        HashMap::from([("one".into(), 2), ("two".into(), 2)])
    );
    a.abort();
    b.abort();
}
