//! The `gateway` route kind (SCOW's proxy gateway node): real targets on 127.0.0.2 and
//! 127.0.0.3 allowed by exact entries, 127.0.0.1 not allowed; both path forms under SCOW's base
//! paths `/` and `/scow/`; WebSocket; every refused spelling of an address as its own case.

mod common;
use common::*;
use hyper::body::Incoming;
use hyper::Request;
use std::io::BufRead;
use std::net::SocketAddr;
use std::time::Duration;

/// An origin on `ip` answering `<ip> <method> <target> host=<Host> len=<body bytes>`.
async fn echo_at(ip: &'static str) -> Origin {
    origin_at(ip, move |req: Request<Incoming>| async move {
        let host = req
            .headers()
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("-")
            .to_owned();
        let line = format!("{ip} {} {} host={host}", req.method(), req.uri());
        let n = body_len(req.into_body()).await;
        text(200, format!("{line} len={n}"))
    })
    .await
}

/// SCOW's two base paths (`/` and `/scow/`): the first lists its clusters and ports, the
/// second accepts any cluster and port. `127.0.0.0/8` is listed too, to show that a network
/// does not open loopback addresses (no network here covers an address outside 127.0.0.0/8,
/// so that a regression cannot make a test dial out).
const ROUTES: &str = "routes:
  - path_prefix: /api/proxy/
    gateway:
      allow: ['127.0.0.0/8', '127.0.0.2/32', '127.0.0.3']
      ports: ['1024-65535']
      clusters: [hpc01, hpc02]
      keepalive: 4
  - path_prefix: /scow/api/proxy/
    gateway:
      allow: ['127.0.0.2/32', '127.0.0.3/32']
";

async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> (u16, http::HeaderMap, String) {
    let mut c = Conn::open(addr).await;
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "portal.example:8443")
        .body(full(body))
        .unwrap();
    let (s, h, b) = collect(c.send(req).await.unwrap()).await;
    (s.as_u16(), h, String::from_utf8_lossy(&b).into_owned())
}

#[tokio::test]
async fn relative_and_absolute_forms_under_both_base_paths() {
    let a = echo_at("127.0.0.2").await;
    let b = echo_at("127.0.0.3").await;
    let p = proxy(ROUTES).await;
    let mut sent = 0;
    for prefix in ["/api/proxy/", "/scow/api/proxy/"] {
        for (ip, o) in [("127.0.0.2", &a), ("127.0.0.3", &b)] {
            let port = o.addr.port();
            let base = format!("{prefix}hpc01");
            // (request target, what the target must receive)
            let cases = [
                (
                    format!("{base}/relative/{ip}/{port}/lab/tree?token=a%20b&x=1"),
                    "/lab/tree?token=a%20b&x=1".to_owned(),
                ),
                (format!("{base}/relative/{ip}/{port}"), "/".to_owned()),
                (
                    format!("{base}/relative/{ip}/{port}?x=1"),
                    "/?x=1".to_owned(),
                ),
                (format!("{base}/relative/{ip}/{port}/"), "/".to_owned()),
                (
                    format!("{base}/absolute/{ip}/{port}/notebooks/a.ipynb?kernel=py3"),
                    format!("{base}/absolute/{ip}/{port}/notebooks/a.ipynb?kernel=py3"),
                ),
                (
                    format!("{base}/absolute/{ip}/{port}"),
                    format!("{base}/absolute/{ip}/{port}"),
                ),
            ];
            for (path, want) in cases {
                let (s, _, body) = send(p.addr, "GET", &path, Vec::new()).await;
                assert_eq!(
                    (s, body.as_str()),
                    (
                        200,
                        format!("{ip} GET {want} host=portal.example:8443 len=0").as_str()
                    ),
                    "{path}"
                );
                sent += 1;
            }
            // A request body streams through (1 MiB, under the 2 MiB default limit).
            let path = format!("{base}/relative/{ip}/{port}/upload");
            let (s, _, body) = send(p.addr, "POST", &path, vec![7u8; 1 << 20]).await;
            assert_eq!(s, 200, "{body}");
            assert!(body.ends_with(" len=1048576"), "{body}");
            sent += 1;
        }
    }
    assert_eq!(a.requests() + b.requests(), sent);
    // One pooled connection per target and gateway route, whatever the client connections.
    assert_eq!((a.accepts(), b.accepts()), (2, 2));
}

#[tokio::test]
async fn websocket_through_the_gateway() {
    let ws = upgrade_echo_at("127.0.0.3").await;
    let p = proxy(ROUTES).await;
    let port = ws.addr.port();
    upgrade_roundtrip(
        p.addr,
        &format!("/api/proxy/hpc01/absolute/127.0.0.3/{port}/websockify"),
    )
    .await;
    upgrade_roundtrip(
        p.addr,
        &format!("/scow/api/proxy/hpc02/relative/127.0.0.3/{port}/websockify?token=x"),
    )
    .await;
}

/// Every refused form: (name, gateway part after `/api/proxy/`, status, reason in the body).
/// `{a}` is the port of the allowed target on 127.0.0.2, `{l}` the port of the one on
/// 127.0.0.1 that is not allowed.
const REFUSED: &[(&str, &str, u16, &str)] = &[
    // Other spellings of 127.0.0.1.
    (
        "short IPv4 127.1",
        "hpc01/relative/127.1/{l}/",
        400,
        "four dotted octets",
    ),
    (
        "IPv4 as one integer",
        "hpc01/relative/2130706433/{l}/",
        400,
        "four dotted octets",
    ),
    (
        "hex octet 0x7f",
        "hpc01/relative/0x7f.0.0.1/{l}/",
        400,
        "hostnames are not accepted",
    ),
    (
        "octal octet 0177",
        "hpc01/relative/0177.0.0.1/{l}/",
        400,
        "leading zeros",
    ),
    (
        "zero-padded octets",
        "hpc01/relative/127.000.000.001/{l}/",
        400,
        "leading zeros",
    ),
    (
        "IPv4-mapped IPv6",
        "hpc01/relative/::ffff:127.0.0.1/{l}/",
        400,
        "IPv6",
    ),
    (
        "IPv4-mapped IPv6, hex",
        "hpc01/relative/::ffff:7f00:1/{l}/",
        400,
        "IPv4-mapped",
    ),
    (
        "bracketed IPv4-mapped IPv6",
        "hpc01/relative/[::ffff:127.0.0.1]/{l}/",
        400,
        "",
    ),
    (
        "IPv4-compatible IPv6",
        "hpc01/relative/::7f00:1/{l}/",
        400,
        "IPv4-compatible",
    ),
    (
        "upper-case IPv6",
        "hpc01/relative/FD00::1/{a}/",
        400,
        "IPv6",
    ),
    (
        "hostname",
        "hpc01/relative/localhost/{l}/",
        400,
        "hostnames are not accepted",
    ),
    // Paths that normalise into something else.
    (
        "%2e%2e in the rest",
        "hpc01/relative/127.0.0.2/{a}/%2e%2e/%2E%2E/x",
        400,
        "encoded",
    ),
    (
        "%2e%2e as the cluster",
        "%2e%2e/relative/127.0.0.2/{a}/",
        400,
        "encoded",
    ),
    (
        "%2f in the node",
        "hpc01/relative/127.0.0.2%2f..%2f127.0.0.1/{l}/",
        400,
        "encoded",
    ),
    (
        "%2F in the rest",
        "hpc01/relative/127.0.0.2/{a}/a%2Fb",
        400,
        "encoded",
    ),
    (
        "%5c in the node",
        "hpc01/relative/127.0.0.2%5c/{a}/",
        400,
        "encoded",
    ),
    (
        "double slash before the cluster",
        "/hpc01/relative/127.0.0.2/{a}/",
        400,
        "empty path segment",
    ),
    (
        "double slash in the rest",
        "hpc01/relative/127.0.0.2/{a}//x",
        400,
        "empty path segment",
    ),
    (
        "dot-dot in the rest",
        "hpc01/relative/127.0.0.2/{a}/../x",
        400,
        "dot segment",
    ),
    (
        "dot-dot to another node",
        "hpc01/relative/127.0.0.2/../127.0.0.1/{l}/",
        400,
        "dot segment",
    ),
    (
        "dot segment",
        "hpc01/./relative/127.0.0.2/{a}/",
        400,
        "dot segment",
    ),
    // Ports.
    ("port 0", "hpc01/relative/127.0.0.2/0/", 400, "port 0"),
    (
        "port 65536",
        "hpc01/relative/127.0.0.2/65536/",
        400,
        "above 65535",
    ),
    (
        "port 99999999999",
        "hpc01/relative/127.0.0.2/99999999999/",
        400,
        "canonical decimal",
    ),
    (
        "port with a leading zero",
        "hpc01/relative/127.0.0.2/0{a}/",
        400,
        "canonical decimal",
    ),
    (
        "port with a suffix",
        "hpc01/relative/127.0.0.2/{a}abc",
        400,
        "canonical decimal",
    ),
    (
        "port outside ports",
        "hpc01/relative/127.0.0.2/80/",
        403,
        "port not in ports",
    ),
    (
        "port just below ports",
        "hpc01/relative/127.0.0.2/1023/",
        403,
        "port not in ports",
    ),
    // Malformed.
    (
        "unknown form",
        "hpc01/direct/127.0.0.2/{a}/",
        400,
        "relative or absolute",
    ),
    (
        "no port",
        "hpc01/relative/127.0.0.2",
        400,
        "expected <cluster>",
    ),
    (
        "cluster with a space",
        "hpc%2001/relative/127.0.0.2/{a}/",
        400,
        "invalid cluster id",
    ),
    // Addresses that networks in `allow` do not open.
    (
        "127.0.0.1 (loopback, covered by 127.0.0.0/8 only)",
        "hpc01/relative/127.0.0.1/{l}/",
        403,
        "loopback",
    ),
    (
        "127.0.0.4 (loopback, covered by 127.0.0.0/8 only)",
        "hpc01/absolute/127.0.0.4/{a}/",
        403,
        "loopback",
    ),
    (
        "0.0.0.0 (dials the local host)",
        "hpc01/relative/0.0.0.0/{l}/",
        403,
        "unspecified",
    ),
    (
        "169.254.169.254 (cloud metadata)",
        "hpc01/relative/169.254.169.254/{a}/",
        403,
        "link-local",
    ),
    ("::1", "hpc01/relative/::1/{l}/", 403, "loopback"),
    ("::", "hpc01/relative/::/{l}/", 403, "unspecified"),
    (
        "fe80::1 (link-local)",
        "hpc01/relative/fe80::1/{a}/",
        403,
        "link-local",
    ),
    (
        "224.0.0.1 (multicast)",
        "hpc01/relative/224.0.0.1/{a}/",
        403,
        "multicast",
    ),
    (
        "255.255.255.255 (broadcast)",
        "hpc01/relative/255.255.255.255/{a}/",
        403,
        "broadcast",
    ),
    (
        "10.11.0.1 (outside allow)",
        "hpc01/relative/10.11.0.1/{a}/",
        403,
        "not in allow",
    ),
    (
        "fc00::1 (outside allow)",
        "hpc01/relative/fc00::1/{a}/",
        403,
        "not in allow",
    ),
    // Clusters.
    (
        "unknown cluster",
        "hpc03/relative/127.0.0.2/{a}/",
        403,
        "unknown cluster",
    ),
    (
        "cluster id in another case",
        "HPC01/relative/127.0.0.2/{a}/",
        403,
        "unknown cluster",
    ),
];

#[tokio::test]
async fn refused_forms() {
    let allowed = echo_at("127.0.0.2").await;
    let not_allowed = echo_at("127.0.0.1").await;
    let p = proxy(ROUTES).await;
    let (a, l) = (
        allowed.addr.port().to_string(),
        not_allowed.addr.port().to_string(),
    );
    let mut failures = Vec::new();
    for (name, tail, status, reason) in REFUSED {
        let path = format!("/api/proxy/{}", tail.replace("{a}", &a).replace("{l}", &l));
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: portal.example\r\nConnection: close\r\n\r\n");
        let resp = raw(p.addr, req.as_bytes(), Duration::from_secs(10)).await;
        let want = format!("HTTP/1.1 {status} ");
        if !resp.starts_with(&want) || !resp.contains(reason) {
            failures.push(format!(
                "{name}: GET {path}: want {status} with {reason:?}, got:\n{resp}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert_eq!(not_allowed.accepts(), 0, "127.0.0.1 was reached");
    assert_eq!(allowed.accepts(), 0, "a refused request reached 127.0.0.2");
    // The same target in canonical form is served (the cases above failed for their form only).
    let (s, _, body) = send(
        p.addr,
        "GET",
        &format!("/api/proxy/hpc01/relative/127.0.0.2/{a}/"),
        Vec::new(),
    )
    .await;
    assert_eq!(s, 200, "{body}");
}

#[tokio::test]
async fn never_its_own_listeners_even_with_an_exact_entry() {
    let (listen, admin) = (free_port(), free_port());
    let local = echo_at("127.0.0.1").await;
    let p = proxy(&format!(
        "listen: '{listen}'\nadmin: {{listen: '{admin}'}}\nroutes:\n  - path_prefix: /api/proxy/\n    gateway: {{allow: ['127.0.0.1/32']}}\n"
    ))
    .await;
    // An exact entry opens a loopback target...
    let port = local.addr.port();
    let (s, _, body) = send(
        listen,
        "GET",
        &format!("/api/proxy/c/relative/127.0.0.1/{port}/x"),
        Vec::new(),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    // ...but not swarmgate's own proxy and admin ports (a loop; the admin API).
    for own in [listen.port(), admin.port()] {
        let (s, _, body) = send(
            listen,
            "GET",
            &format!("/api/proxy/c/relative/127.0.0.1/{own}/metrics"),
            Vec::new(),
        )
        .await;
        assert_eq!(
            (s, body.as_str()),
            (403, "403 Forbidden: target is swarmgate's own listener\n"),
            "port {own}"
        );
    }
    drop(p);
}

#[tokio::test]
async fn metrics_name_clusters_never_targets() {
    let a = echo_at("127.0.0.2").await;
    let p = proxy(ROUTES).await;
    let port = a.addr.port();
    for path in [
        format!("/api/proxy/hpc01/relative/127.0.0.2/{port}/"),
        format!("/api/proxy/hpc02/relative/127.0.0.2/{port}/"),
        format!("/scow/api/proxy/anything/relative/127.0.0.2/{port}/"),
    ] {
        assert_eq!(
            send(p.addr, "GET", &path, Vec::new()).await.0,
            200,
            "{path}"
        );
    }
    let admin = p.admin.expect("admin listener");
    let (s, _, m) = get(admin, "/metrics").await;
    assert_eq!(s, 200);
    let m = String::from_utf8_lossy(&m);
    for label in [
        r#"upstream="gateway/hpc01""#,
        r#"upstream="gateway/hpc02""#,
        r#"upstream="gateway/other""#,
    ] {
        assert!(m.contains(label), "{label} missing:\n{m}");
    }
    assert!(
        !m.contains("anything"),
        "a cluster id that is not configured became a label:\n{m}"
    );
    assert!(
        !m.contains("127.0.0.2"),
        "a target address became a label:\n{m}"
    );
    assert!(
        !m.contains(&format!(":{port}")),
        "a target port became a label:\n{m}"
    );
}

/// A reload keeps an unchanged gateway route (its targets' pools) and rebuilds a changed one.
#[test]
fn reload_keeps_an_unchanged_gateway() {
    use std::sync::Arc;
    use swarmgate::runtime::{Runtime, Target};
    let build = |yaml: &str, old: Option<&Runtime>| {
        let cfg = swarmgate::config::parse_config(yaml).unwrap();
        Runtime::build(Arc::new(cfg), old).unwrap()
    };
    let gateway = |rt: &Runtime| match &rt.routes[0].target {
        Target::Gateway(g) => g.clone(),
        other => panic!("{other:?}"),
    };
    let old = build(ROUTES, None);
    let same = build(ROUTES, Some(&old));
    assert!(Arc::ptr_eq(&gateway(&old), &gateway(&same)));
    let changed = build(&ROUTES.replace("keepalive: 4", "keepalive: 5"), Some(&same));
    assert!(!Arc::ptr_eq(&gateway(&same), &gateway(&changed)));
}

#[test]
fn check_fails_without_allow_naming_key_and_line() {
    let (ok, out) = swarmgate_check(
        "listen: '127.0.0.1:0'\nroutes:\n  - path_prefix: /api/proxy/\n    gateway:\n      clusters: [hpc01]\n",
        "gw-no-allow",
    );
    assert!(!ok, "{out}");
    assert!(out.contains("routes[0].gateway.allow"), "{out}");
    assert!(out.contains("required"), "{out}");
    assert!(out.contains("line 4"), "{out}");
    let (ok, out) = swarmgate_check(
        "routes:\n  - path_prefix: /api/proxy/\n    gateway:\n      allow: []\n",
        "gw-empty-allow",
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("routes[0].gateway.allow") && out.contains("line 4"),
        "{out}"
    );
}

#[test]
fn config_errors_name_key_and_line() {
    let err = |yaml: &str| match swarmgate::config::parse_config(yaml) {
        Ok(_) => panic!("accepted:\n{yaml}"),
        Err(e) => e.to_string(),
    };
    let head = "routes:\n  - path_prefix: /api/proxy/\n    gateway:\n";
    for (body, key, line, msg) in [
        (
            "      allow: ['10.10.1.0/16']\n",
            "routes[0].gateway",
            4,
            "10.10.0.0/16",
        ),
        (
            "      allow: ['127.1/32']\n",
            "routes[0].gateway",
            4,
            "four dotted octets",
        ),
        (
            "      allow: ['::ffff:127.0.0.1']\n",
            "routes[0].gateway",
            4,
            "IPv6",
        ),
        (
            "      allow: ['10.0.0.0/8']\n      ports: ['0-80']\n",
            "routes[0].gateway",
            5,
            "invalid port range",
        ),
        (
            "      allow: ['10.0.0.0/8']\n      ports: []\n",
            "routes[0].gateway.ports",
            5,
            "must not be empty",
        ),
        (
            "      allow: ['10.0.0.0/8']\n      clusters: ['a/b']\n",
            "routes[0].gateway.clusters",
            5,
            "invalid cluster id",
        ),
        (
            "      allow: ['10.0.0.0/8']\n      tls_verify: false\n",
            "routes[0].gateway.tls_verify",
            5,
            "scheme: https",
        ),
        (
            "      allow: ['10.0.0.0/8']\n      hosts: [a]\n",
            "routes[0].gateway",
            5,
            "unknown field",
        ),
    ] {
        let e = err(&format!("{head}{body}"));
        assert!(
            e.contains(key) && e.contains(&format!("line {line}")) && e.contains(msg),
            "{body}: {e}"
        );
    }
    let e = err("routes:\n  - path_prefix: /api/proxy\n    gateway: {allow: ['10.0.0.0/8']}\n");
    assert!(
        e.contains("routes[0].path_prefix") && e.contains("end with '/'") && e.contains("line 2"),
        "{e}"
    );
}

/// The refusal reason is in the access log of the real binary.
#[tokio::test]
async fn refusal_reason_in_the_access_log() {
    let config = tmpdir("gw-log").join("swarmgate.yaml");
    let addr = free_port();
    std::fs::write(
        &config,
        format!("listen: '{addr}'\nadmin: {{listen: ''}}\nroutes:\n  - path_prefix: /api/proxy/\n    gateway: {{allow: ['127.0.0.2'], clusters: [hpc01]}}\n"),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_swarmgate"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _proc = Proc(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    wait_listening(addr).await;
    let resp = raw(
        addr,
        b"GET /api/proxy/hpc09/relative/127.0.0.2/8080/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 403 "), "{resp}");
    assert!(resp.ends_with("403 Forbidden: unknown cluster\n"), "{resp}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("status=403") => {
                assert!(line.contains("forbidden: unknown cluster"), "{line}");
                break;
            }
            Ok(line) => seen.push(line),
            Err(_) => panic!(
                "no access-log line for the 403; output:\n{}",
                seen.join("\n")
            ),
        }
    }
}
