//! The `table` route kind: a real redis-server (started here on a free port, no persistence)
//! holding the openresty seed's layout (`HSET hosts <key> <ip:port>`), and the embedded redb
//! store written through the admin API, in-process and as the real binary (restart, SIGKILL).

mod common;
use common::*;
use http::StatusCode;
use hyper::body::Incoming;
use hyper::Request;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// An origin answering `<name> <request target>`.
async fn echo(name: &'static str) -> Origin {
    origin(move |req: Request<Incoming>| async move { text(200, format!("{name} {}", req.uri())) })
        .await
}

/// A redis-server on `port` (no snapshots, no AOF), killed when dropped.
struct Redis {
    port: u16,
    _proc: Proc,
}

impl Redis {
    async fn start(port: u16) -> Redis {
        let child = std::process::Command::new("redis-server")
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .args(["--port", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (scripts/install-deps.sh installs it)");
        wait_listening(SocketAddr::from(([127, 0, 0, 1], port))).await;
        Redis {
            port,
            _proc: Proc(child),
        }
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "redis-cli {args:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

/// GETs `path` until the status is `want` (panics after `within`); returns the body.
async fn until(addr: SocketAddr, path: &str, want: u16, within: Duration) -> String {
    let t = Instant::now();
    loop {
        let (s, _, b) = get(addr, path).await;
        if s.as_u16() == want {
            return String::from_utf8_lossy(&b).into_owned();
        }
        assert!(
            t.elapsed() < within,
            "{path}: still {s} after {within:?}: {}",
            String::from_utf8_lossy(&b)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn admin_get(admin: SocketAddr, path: &str) -> String {
    let (_, _, b) = get(admin, path).await;
    String::from_utf8_lossy(&b).into_owned()
}

#[tokio::test]
async fn redis_table_routes_follows_changes_and_outlives_redis() {
    let a = echo("a").await;
    let port = free_port().port();
    let redis = Redis::start(port).await;
    let p = proxy(&format!(
        "routes:
  - path_prefix: /ws/
    table:
      name: hosts
      store: redis
      redis: redis://127.0.0.1:{port}/0
      cache_ttl: 1s
      allow: ['127.0.0.0/8']
  - path_prefix: /long/
    table:
      name: long
      store: redis
      redis: redis://127.0.0.1:{port}
      cache_ttl: 1h
"
    ))
    .await;
    let admin = p.admin.unwrap();
    let target = a.addr.to_string();
    redis.cli(&["HSET", "hosts", "k1", &target]);
    let body = until(p.addr, "/ws/k1/?folder=/root", 200, Duration::from_secs(5)).await;
    assert_eq!(body, "a /?folder=/root");
    let (s, _, b) = get(p.addr, "/ws/k1/x/y?a=1").await;
    assert_eq!((s.as_u16(), &b[..]), (200, &b"a /x/y?a=1"[..]));
    // No trailing slash: redirected, query kept.
    let (s, h, _) = get(p.addr, "/ws/k1?a=1").await;
    assert_eq!(s, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(h["location"], "/ws/k1/?a=1");
    // Unknown key: 404 with a short body.
    let (s, _, b) = get(p.addr, "/ws/nope/").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(b.len() < 64, "{b:?}");
    // A stored target outside `allow` is refused without being dialled.
    redis.cli(&["HSET", "hosts", "outside", "10.255.255.1:80"]);
    let (s, _, b) = get(p.addr, "/ws/outside/").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b:?}");
    // So is one that is not ip:port (a hostname would be checked at every resolution).
    redis.cli(&["HSET", "hosts", "named", "pod.example:80"]);
    let (s, _, b) = get(p.addr, "/ws/named/").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b:?}");
    // HDEL: gone within cache_ttl (keyspace notifications make it sooner).
    redis.cli(&["HDEL", "hosts", "k1"]);
    until(p.addr, "/ws/k1/", 404, Duration::from_secs(3)).await;
    // With a ttl of an hour, only keyspace notifications can make a change visible.
    redis.cli(&["HSET", "long", "k", &target]);
    until(p.addr, "/long/k/", 200, Duration::from_secs(5)).await;
    redis.cli(&["HDEL", "long", "k"]);
    until(p.addr, "/long/k/", 404, Duration::from_secs(5)).await;
    redis.cli(&["HSET", "long", "k", &target]);
    until(p.addr, "/long/k/", 200, Duration::from_secs(5)).await;
    let metrics = admin_get(admin, "/metrics").await;
    assert!(
        metrics.contains("swarmgate_table_store_up{table=\"hosts\"} 1"),
        "{metrics}"
    );
    for result in ["hit", "miss", "unknown"] {
        let series =
            format!("swarmgate_table_lookups_total{{result=\"{result}\",table=\"hosts\"}}");
        assert!(metrics.contains(&series), "{series} missing:\n{metrics}");
    }

    // Redis goes away: a cached key keeps serving (past its ttl), a new key is 503.
    redis.cli(&["HSET", "hosts", "k2", &target]);
    until(p.addr, "/ws/k2/", 200, Duration::from_secs(5)).await;
    drop(redis);
    let t = Instant::now();
    while !admin_get(admin, "/readyz").await.contains("degraded") {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "readyz never said degraded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await; // past cache_ttl
    let (s, _, b) = get(p.addr, "/ws/k2/z").await;
    assert_eq!((s.as_u16(), &b[..]), (200, &b"a /z"[..]));
    let (s, _, _) = get(p.addr, "/ws/k3/").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    let metrics = admin_get(admin, "/metrics").await;
    assert!(
        metrics.contains("swarmgate_table_store_up{table=\"hosts\"} 0"),
        "{metrics}"
    );

    // Redis back on the same port (empty: no persistence): recovers.
    let redis = Redis::start(port).await;
    redis.cli(&["HSET", "hosts", "k3", &target]);
    assert_eq!(
        until(p.addr, "/ws/k3/", 200, Duration::from_secs(10)).await,
        "a /"
    );
    let t = Instant::now();
    while admin_get(admin, "/readyz").await.contains("degraded") {
        assert!(
            t.elapsed() < Duration::from_secs(35),
            "readyz still degraded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // k2 is not in the new Redis: once the watcher is back, it is gone.
    until(p.addr, "/ws/k2/", 404, Duration::from_secs(5)).await;
}

const TOKEN: &str = "s3cret-token";

fn embedded_yaml(state: &std::path::Path, token_file: &std::path::Path) -> String {
    format!(
        "state_dir: '{}'
admin:
  listen: '127.0.0.1:0'
  token_file: '{}'
routes:
  - path_prefix: /ws/
    table:
      name: hosts
      allow: ['127.0.0.0/8']
",
        state.display(),
        token_file.display()
    )
}

/// A request to the admin API; `token` goes in `Authorization: Bearer`.
async fn call(
    admin: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut c = Conn::open(admin).await;
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "admin");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let (s, _, b) = collect(
        c.send(req.body(full(body.to_owned())).unwrap())
            .await
            .unwrap(),
    )
    .await;
    (s.as_u16(), String::from_utf8_lossy(&b).into_owned())
}

fn put_body(target: impl std::fmt::Display) -> String {
    format!("{{\"target\":\"{target}\"}}")
}

#[tokio::test]
async fn embedded_table_admin_api_needs_the_token_and_validates() {
    let a = echo("a").await;
    let dir = tmpdir("table-api");
    let state = dir.join("state");
    let _ = std::fs::remove_dir_all(&state);
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let p = proxy(&embedded_yaml(&state, &token_file)).await;
    let admin = p.admin.unwrap();
    let key = "/api/tables/hosts/abcd123";
    let body = put_body(a.addr);

    for token in [None, Some("wrong"), Some("s3cret-token-but-longer")] {
        assert_eq!(call(admin, "PUT", key, token, &body).await.0, 401);
        assert_eq!(call(admin, "DELETE", key, token, "").await.0, 401);
        assert_eq!(call(admin, "GET", key, token, "").await.0, 401);
        assert_eq!(call(admin, "POST", "/api/reload", token, "").await.0, 401);
    }
    // Nothing was written.
    assert_eq!(get(p.addr, "/ws/abcd123/").await.0, StatusCode::NOT_FOUND);

    let (s, b) = call(admin, "PUT", key, Some(TOKEN), &body).await;
    assert_eq!(s, 201, "{b}");
    assert!(b.contains(&format!("\"target\": \"{}\"", a.addr)), "{b}");
    assert_eq!(call(admin, "PUT", key, Some(TOKEN), &body).await.0, 200);
    let (s, _, b) = get(p.addr, "/ws/abcd123/lab?x=1").await;
    assert_eq!((s.as_u16(), &b[..]), (200, &b"a /lab?x=1"[..]));
    let (s, b) = call(admin, "GET", key, Some(TOKEN), "").await;
    assert_eq!(s, 200);
    for field in [
        "\"key\": \"abcd123\"",
        "\"created\": \"20",
        "\"last_activity\": \"20",
    ] {
        assert!(b.contains(field), "{field} missing: {b}");
    }
    let (s, b) = call(admin, "GET", "/api/tables/hosts", Some(TOKEN), "").await;
    assert_eq!(s, 200);
    assert!(b.contains("\"abcd123\""), "{b}");

    // Validation: address syntax, allow, body shape, key syntax, unknown table.
    for (bad, why) in [
        (put_body("localhost:80"), "not an IP"),
        (put_body("127.1:80"), "IPv4"),
        (put_body("127.0.0.1"), "expected ip:port"),
        (put_body("10.1.2.3:80"), "allow"),
        ("{\"target\": 1}".to_owned(), "target"),
        ("not json".to_owned(), "target"),
    ] {
        let (s, b) = call(admin, "PUT", "/api/tables/hosts/k2", Some(TOKEN), &bad).await;
        assert_eq!(s, 400, "{bad}: {b}");
        assert!(b.contains(why), "{bad}: {b}");
    }
    assert_eq!(
        call(admin, "GET", "/api/tables/hosts/k2", Some(TOKEN), "")
            .await
            .0,
        404
    );
    assert_eq!(
        call(admin, "PUT", "/api/tables/hosts/a%2Fb", Some(TOKEN), &body)
            .await
            .0,
        400
    );
    assert_eq!(
        call(admin, "GET", "/api/tables/nope", Some(TOKEN), "")
            .await
            .0,
        404
    );
    assert_eq!(
        call(admin, "PUT", "/api/tables/nope/k", Some(TOKEN), &body)
            .await
            .0,
        404
    );

    let metrics = admin_get(admin, "/metrics").await;
    assert!(
        metrics.contains("swarmgate_table_entries{table=\"hosts\"} 1"),
        "{metrics}"
    );
    assert_eq!(call(admin, "DELETE", key, Some(TOKEN), "").await.0, 204);
    assert_eq!(call(admin, "DELETE", key, Some(TOKEN), "").await.0, 404);
    assert_eq!(get(p.addr, "/ws/abcd123/").await.0, StatusCode::NOT_FOUND);
    // Reads of other admin endpoints stay open.
    assert_eq!(get(admin, "/healthz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn websocket_through_a_table_route() {
    let ws = upgrade_echo_at("127.0.0.1").await;
    let dir = tmpdir("table-ws");
    let state = dir.join("state");
    let _ = std::fs::remove_dir_all(&state);
    let token_file = dir.join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let p = proxy(&embedded_yaml(&state, &token_file)).await;
    let (s, b) = call(
        p.admin.unwrap(),
        "PUT",
        "/api/tables/hosts/ws1",
        Some(TOKEN),
        &put_body(ws.addr),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    upgrade_roundtrip(p.addr, "/ws/ws1/socket?x=1").await;
}

/// The real binary with an admin listener on `admin` and an embedded table in `state`.
fn spawn_binary(config: &std::path::Path) -> Proc {
    Proc(
        std::process::Command::new(env!("CARGO_BIN_EXE_swarmgate"))
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    )
}

#[tokio::test]
async fn embedded_entries_survive_restart_and_sigkill_during_writes() {
    let dir = tmpdir("table-durable");
    let state = dir.join("state");
    let _ = std::fs::remove_dir_all(&state);
    let token_file = dir.join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let (addr, admin) = (free_port(), free_port());
    let config = dir.join("swarmgate.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: '{addr}'\naccess_log: false\nstate_dir: '{}'\nadmin:\n  listen: '{admin}'\n  token_file: '{}'\nroutes:\n  - path_prefix: /ws/\n    table: {{name: hosts}}\n",
            state.display(),
            token_file.display()
        ),
    )
    .unwrap();
    let a = echo("a").await;
    let mut sg = spawn_binary(&config);
    wait_listening(admin).await;
    for k in ["one", "two", "three"] {
        let path = format!("/api/tables/hosts/{k}");
        assert_eq!(
            call(admin, "PUT", &path, Some(TOKEN), &put_body(a.addr))
                .await
                .0,
            201
        );
    }
    assert_eq!(get(addr, "/ws/two/").await.0, StatusCode::OK);
    // Graceful restart.
    signal(&sg.0, "-TERM");
    let _ = sg.0.wait();
    let mut sg = spawn_binary(&config);
    wait_listening(addr).await;
    let (s, _, b) = get(addr, "/ws/two/x").await;
    assert_eq!((s.as_u16(), &b[..]), (200, &b"a /x"[..]));
    let list = call(admin, "GET", "/api/tables/hosts", Some(TOKEN), "")
        .await
        .1;
    for k in ["one", "two", "three"] {
        assert!(list.contains(&format!("\"{k}\"")), "{k} lost: {list}");
    }

    // A reload that changes the route reopens nothing: the store (one redb open per process)
    // is the live one.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "table: {name: hosts}",
            "table: {name: hosts, allow: ['127.0.0.0/8']}",
        ),
    )
    .unwrap();
    signal(&sg.0, "-HUP");
    let t = Instant::now();
    while call(
        admin,
        "PUT",
        "/api/tables/hosts/x",
        Some(TOKEN),
        &put_body("10.1.2.3:80"),
    )
    .await
    .0 != 400
    {
        assert!(t.elapsed() < Duration::from_secs(10), "reload not applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (s, _, b) = get(addr, "/ws/two/y").await;
    assert_eq!((s.as_u16(), &b[..]), (200, &b"a /y"[..]));
    call(admin, "DELETE", "/api/tables/hosts/x", Some(TOKEN), "").await;

    // A burst of PUTs from four clients; SIGKILL in the middle of it.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let acked = acked.clone();
            let target = a.addr;
            tokio::spawn(async move {
                for i in 0.. {
                    let key = format!("w{w}-{i}");
                    if tokio::net::TcpStream::connect(admin).await.is_err() {
                        return; // killed
                    }
                    let mut c = Conn::open(admin).await;
                    let req = Request::put(format!("/api/tables/hosts/{key}"))
                        .header("host", "admin")
                        .header("authorization", format!("Bearer {TOKEN}"))
                        .body(full(put_body(target)))
                        .unwrap();
                    match c.send(req).await {
                        Ok(r) if r.status().is_success() => acked.lock().unwrap().push(key),
                        _ => return,
                    }
                }
            })
        })
        .collect();
    let t = Instant::now();
    while acked.lock().unwrap().len() < 40 {
        assert!(t.elapsed() < Duration::from_secs(30), "PUTs too slow");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    signal(&sg.0, "-KILL");
    let _ = sg.0.wait();
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().unwrap().clone();
    let _sg = spawn_binary(&config);
    wait_listening(admin).await;
    let list = call(admin, "GET", "/api/tables/hosts", Some(TOKEN), "")
        .await
        .1;
    for k in acked
        .iter()
        .map(String::as_str)
        .chain(["one", "two", "three"])
    {
        assert!(
            list.contains(&format!("\"{k}\"")),
            "acknowledged {k} lost after SIGKILL"
        );
    }
    assert_eq!(
        get(addr, &format!("/ws/{}/", acked[0])).await.0,
        StatusCode::OK
    );
}

#[test]
fn config_errors_name_the_key_and_line() {
    let (ok, out) = swarmgate_check(
        "admin:\n  listen: '0.0.0.0:9901'\nroutes:\n  - path_prefix: /ws/\n    table: {name: hosts}\n",
        "table-cfg1",
    );
    assert!(
        !ok && out.contains("admin.token_file") && out.contains("line 1"),
        "{out}"
    );
    let (ok, out) = swarmgate_check(
        "upstreams:\n  a:\n    servers: [{address: 127.0.0.1:1}]\nroutes:\n  - path_prefix: /ws/\n    upstream: a\n    table: {name: hosts}\n",
        "table-cfg2",
    );
    assert!(
        !ok && out.contains("routes[0]")
            && out.contains("more than one target")
            && out.contains("line 7"),
        "{out}"
    );
    let (ok, out) = swarmgate_check(
        "routes:\n  - path_prefix: /ws/\n    table:\n      name: hosts\n      store: redis\n",
        "table-cfg3",
    );
    assert!(
        !ok && out.contains("routes[0].table.redis") && out.contains("line 5"),
        "{out}"
    );
    let (ok, out) = swarmgate_check(
        "routes:\n  - path_prefix: /ws\n    table: {name: hosts}\n",
        "table-cfg4",
    );
    assert!(!ok && out.contains("routes[0].path_prefix"), "{out}");
    let (ok, out) = swarmgate_check(
        "routes:\n  - path_prefix: /a/\n    table: {name: hosts}\n  - path_prefix: /b/\n    table: {name: hosts, store: redis, redis: 'redis://127.0.0.1'}\n",
        "table-cfg5",
    );
    assert!(!ok && out.contains("routes[1].table.name"), "{out}");
}
