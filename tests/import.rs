//! `swarmgate import nginx PATH`: Kuscia's nginx.conf imports to a config that `swarmgate check`
//! accepts and that serves like nginx does (both run against the same TLS replicas); includes;
//! untranslated directives on stderr with file and line; SCOW's gateway locations.

mod common;
use common::*;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use swarmgate::config::{parse_config, RouteTarget};

/// Runs the real binary: (success, stdout, stderr).
fn import(path: &Path) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_swarmgate"))
        .args(["import", "nginx"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn kuscia_conf() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nginx-kuscia.conf")
}

#[test]
fn kuscia_conf_imports_to_a_config_check_accepts() {
    let path = kuscia_conf();
    let (ok, yaml, stderr) = import(&path);
    assert!(ok, "{stderr}");
    let (ok, out) = swarmgate_check(&yaml, "import-kuscia");
    assert!(ok, "{out}\n{yaml}");

    // Untranslated directives: each on stderr with its file and line.
    let file = path.display().to_string();
    for (line, directive) in [
        (3, "user"),
        (6, "error_log"),
        (7, "pid"),
        (10, "worker_connections"),
    ] {
        let want = format!("{file}:{line}: {directive}: ");
        assert!(
            stderr.lines().any(|l| l.starts_with(&want)),
            "{want}\n{stderr}"
        );
    }
    assert_eq!(stderr.lines().count(), 4, "{stderr}");

    let cfg = parse_config(&yaml).unwrap();
    assert_eq!(cfg.client.max_body_size, 2 << 20);
    assert_eq!(cfg.client.keepalive_timeout, Duration::from_secs(1200));
    assert_eq!(cfg.client.keepalive_requests, 1000);
    let u = cfg.upstream("backend").unwrap();
    assert_eq!(u.scheme.as_str(), "https");
    assert!(!u.tls.as_ref().unwrap().verify);
    assert_eq!(
        (u.keepalive, u.keepalive_timeout, u.keepalive_requests),
        (32, Duration::from_secs(600), 1000)
    );
    let servers: Vec<(String, u32, u32, Duration)> = u
        .servers
        .iter()
        .map(|s| (s.address.to_string(), s.weight, s.max_fails, s.fail_timeout))
        .collect();
    assert_eq!(
        servers,
        vec![
            ("127.0.0.2:11080".into(), 1, 5, Duration::from_secs(60)),
            ("127.0.0.1:11080".into(), 1, 5, Duration::from_secs(60)),
        ]
    );
    assert_eq!(cfg.routes.len(), 1);
    assert_eq!(cfg.routes[0].path_prefix, "/");
    // The trap is noted: the location's proxy_set_header (line 49) drops `Connection ""`.
    let start = yaml
        .find("# nginx trap")
        .unwrap_or_else(|| panic!("no trap note:\n{yaml}"));
    let lines: Vec<&str> = yaml[start..]
        .lines()
        .take_while(|l| l.trim_start().starts_with('#'))
        .map(|l| l.trim_start().trim_start_matches('#').trim())
        .collect();
    let trap = lines.join(" ");
    assert!(trap.contains(&format!("{file}:49")), "{trap}");
    assert!(trap.contains("Connection: close"), "{trap}");
    assert!(trap.contains("keepalive is on"), "{trap}");
}

#[test]
fn includes_checks_and_locations() {
    let dir = tmpdir("import-includes");
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, pki("import-includes-ca").ca_pem).unwrap();
    std::fs::write(
        dir.join("nginx.conf"),
        "worker_processes 4;\nhttp {\n    include conf.d/*.conf;\n    proxy_http_version 1.1;\n    proxy_set_header Connection \"\";\n    gzip on;\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("conf.d/10-upstreams.conf"),
        "upstream app {\n\
         \x20   server 10.0.0.1:8443 weight=3 max_fails=2 fail_timeout=5s;\n\
         \x20   server 10.0.0.2:8443 backup;\n\
         \x20   server 10.0.0.3:8443 down max_conns=10;\n\
         \x20   keepalive 16;\n\
         \x20   least_conn;\n\
         \x20   check interval=3000 rise=2 fall=5 timeout=1000 type=http;\n\
         \x20   check_http_send \"HEAD /health HTTP/1.0\\r\\nHost: app.local\\r\\n\\r\\n\";\n\
         \x20   check_http_expect_alive http_2xx http_3xx http_4xx;\n\
         }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("conf.d/20-servers.conf"),
        format!(
            "server {{\n\
             \x20   listen 127.0.0.1:18080;\n\
             \x20   proxy_connect_timeout 3s;\n\
             \x20   location = /healthz {{ proxy_pass http://10.0.0.9:9000; }}\n\
             \x20   location /api/ {{\n\
             \x20       proxy_pass https://app;\n\
             \x20       proxy_ssl_verify on;\n\
             \x20       proxy_ssl_trusted_certificate {};\n\
             \x20       proxy_read_timeout 120s;\n\
             \x20   }}\n\
             \x20   location /static/ {{ root /srv; }}\n\
             }}\n\
             server {{\n\
             \x20   listen 127.0.0.1:18081;\n\
             \x20   location / {{ proxy_pass http://partner.example:443; }}\n\
             }}\n",
            ca.display()
        ),
    )
    .unwrap();
    let main = dir.join("nginx.conf");
    let (ok, yaml, stderr) = import(&main);
    assert!(ok, "{stderr}");
    let (ok, out) = swarmgate_check(&yaml, "import-includes-check");
    assert!(ok, "{out}\n{yaml}");

    let ups = dir.join("conf.d/10-upstreams.conf").display().to_string();
    let srv = dir.join("conf.d/20-servers.conf").display().to_string();
    let main = main.display().to_string();
    for want in [
        format!("{main}:6: gzip: "),
        format!("{ups}:4: server: server parameter max_conns=10"),
        format!("{ups}:6: least_conn: "),
        format!("{srv}:11: location: /static/: no proxy_pass"),
    ] {
        assert!(
            stderr.lines().any(|l| l.starts_with(&want)),
            "{want}\n{stderr}"
        );
    }

    let cfg = parse_config(&yaml).unwrap();
    assert_eq!(cfg.workers, 4);
    let app = cfg.upstream("app").unwrap();
    assert_eq!(app.scheme.as_str(), "https");
    let tls = app.tls.as_ref().unwrap();
    assert!(tls.verify);
    assert_eq!(tls.ca.as_deref(), Some(ca.as_path()));
    assert_eq!(app.keepalive, 16);
    assert_eq!(app.connect_timeout, Duration::from_secs(3));
    assert_eq!(app.read_timeout, Duration::from_secs(120));
    let s = &app.servers;
    assert_eq!((s[0].weight, s[0].max_fails), (3, 2));
    assert_eq!(s[0].fail_timeout, Duration::from_secs(5));
    assert!(s[1].backup && !s[1].down);
    assert!(s[2].down);
    let hc = app.health_check.as_ref().unwrap();
    assert_eq!(
        (hc.interval, hc.timeout, hc.rise, hc.fall),
        (Duration::from_secs(3), Duration::from_secs(1), 2, 5)
    );
    assert_eq!(format!("{:?}", hc.kind), "Http");
    assert_eq!((hc.method.as_str(), hc.path.as_str()), ("HEAD", "/health"));
    assert_eq!(hc.host.as_deref(), Some("app.local"));
    assert_eq!(hc.expect_status.len(), 3);
    assert!(hc.default_down, "the check module's default_down=true");
    // No trap: HTTP/1.1 and `Connection ""` are inherited untouched.
    assert!(!yaml.contains("nginx trap"), "{yaml}");

    // Two servers on two ports: routes per listener; the exact location first.
    assert_eq!(cfg.listen.len(), 2);
    let routes: Vec<(String, bool, String, String)> = cfg
        .routes
        .iter()
        .map(|r| {
            (
                r.listen.unwrap().to_string(),
                r.exact,
                r.path_prefix.clone(),
                match &r.target {
                    RouteTarget::Upstream(u) => u.clone(),
                    RouteTarget::Gateway(_) => "gateway".into(),
                    RouteTarget::Table(_) => "table".into(),
                },
            )
        })
        .collect();
    assert_eq!(
        routes,
        vec![
            (
                "127.0.0.1:18080".into(),
                true,
                "/healthz".into(),
                "10.0.0.9_9000".into()
            ),
            (
                "127.0.0.1:18080".into(),
                false,
                "/api/".into(),
                "app".into()
            ),
            (
                "127.0.0.1:18081".into(),
                false,
                "/".into(),
                "partner.example_443".into()
            ),
        ]
    );
}

#[test]
fn broken_include_names_file_and_line() {
    let dir = tmpdir("import-broken");
    std::fs::write(
        dir.join("nginx.conf"),
        "http {\n  include missing.conf;\n}\n",
    )
    .unwrap();
    let (ok, _, stderr) = import(&dir.join("nginx.conf"));
    assert!(!ok);
    assert!(
        stderr.contains("nginx.conf:2: include missing.conf"),
        "{stderr}"
    );
    std::fs::write(dir.join("nginx.conf"), "http {\n  server {\n").unwrap();
    let (ok, _, stderr) = import(&dir.join("nginx.conf"));
    assert!(!ok);
    assert!(stderr.contains("unexpected end of file"), "{stderr}");
}

/// SCOW's proxy gateway nginx (as its portal writes it) becomes a `gateway` route.
#[test]
fn scow_gateway_conf_imports_to_a_gateway_route() {
    let dir = tmpdir("import-scow");
    std::fs::write(
        dir.join("scow.conf"),
        r#"http {
  server {
    listen 12031;
    proxy_http_version 1.1;
    proxy_set_header Host $http_host;
    proxy_set_header X-Real-IP $remote_addr;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection "upgrade";
    location ~ ^/scow/api/proxy/hpc01/relative/([\d|\.]*)/(\d+)(.*)$ {
      proxy_pass http://$1:$2$3$is_args$args;
    }
    location ~ ^/scow/api/proxy/hpc01/absolute/([\d|\.]*)/(\d+)(.*)$ {
      proxy_pass http://$1:$2$request_uri;
    }
  }
}
"#,
    )
    .unwrap();
    let (ok, yaml, stderr) = import(&dir.join("scow.conf"));
    assert!(ok, "{stderr}");
    let (ok, out) = swarmgate_check(&yaml, "import-scow-check");
    assert!(ok, "{out}\n{yaml}");
    let cfg = parse_config(&yaml).unwrap();
    assert_eq!(cfg.listen, vec!["0.0.0.0:12031".parse().unwrap()]);
    assert_eq!(cfg.routes.len(), 1, "{yaml}");
    assert_eq!(cfg.routes[0].path_prefix, "/scow/api/proxy/");
    let RouteTarget::Gateway(g) = &cfg.routes[0].target else {
        panic!("not a gateway route:\n{yaml}");
    };
    assert_eq!(g.clusters, Some(vec!["hpc01".to_owned()]));
    assert!(!g.allow.is_empty());
    // The open proxy nginx was is narrowed: said on stderr, with the location's line.
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("scow.conf:10: location:") && l.contains("allow")),
        "{stderr}"
    );
    // Host, X-Real-IP, X-Forwarded-For, Upgrade, Connection: all built in.
    assert!(!stderr.contains("proxy_set_header"), "{stderr}");
}

/// An HTTPS replica (no ALPN, like Kuscia's gateway) answering its name; `accepts` counts TLS
/// connections.
async fn tls_replica(
    p: &Pki,
    ip: &str,
    name: &'static str,
    accepts: Arc<AtomicUsize>,
) -> SocketAddr {
    let acceptor = tokio_rustls::TlsAcceptor::from(p.server_config(&[]));
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let accepts = accepts.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(s).await else {
                    return;
                };
                accepts.fetch_add(1, Ordering::SeqCst);
                let svc = service_fn(move |_req| async move {
                    Ok::<_, std::convert::Infallible>(text(200, name))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    addr
}

/// The nginx master; on drop it is asked to stop (SIGTERM: the master stops its workers, which
/// a SIGKILL of the master would leave running) and reaped.
struct Nginx(std::process::Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        signal(&self.0, "-TERM");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nginx_binary() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("nginx"))
                .find(|p| p.is_file())
        })
        .or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.is_file()))
}

/// `n` GETs on one keepalive connection: (status, body) counts.
async fn distribution(addr: SocketAddr, n: usize) -> HashMap<(u16, String), usize> {
    let mut c = Conn::open(addr).await;
    let mut out = HashMap::new();
    for i in 0..n {
        let req = hyper::Request::get(format!("/kuscia/{i}"))
            .header("host", "gateway.example")
            .body(empty())
            .unwrap();
        let (s, _, b) = collect(c.send(req).await.unwrap()).await;
        *out.entry((s.as_u16(), String::from_utf8_lossy(&b).into_owned()))
            .or_insert(0) += 1;
    }
    out
}

/// Status line of a POST declaring a 3 MB body (over Kuscia's 2m limit).
async fn oversized(addr: SocketAddr) -> String {
    let head = "POST /upload HTTP/1.1\r\nHost: gateway.example\r\nContent-Length: 3145728\r\n\r\n";
    let resp = raw(addr, head.as_bytes(), Duration::from_secs(2)).await;
    resp.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn nginx_and_the_imported_config_serve_the_same() {
    let Some(nginx) = nginx_binary() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "nginx required with CI=true (scripts/install-deps.sh installs nginx-light)"
        );
        eprintln!(
            "SKIPPED: nginx not installed (apt-get install nginx-light; scripts/install-deps.sh)"
        );
        return;
    };
    let pki = pki("import-same-pki");
    let accepts = Arc::new(AtomicUsize::new(0));
    let one = tls_replica(&pki, "127.0.0.2", "one", accepts.clone()).await;
    let two = tls_replica(&pki, "127.0.0.1", "two", accepts.clone()).await;
    let dir = tmpdir("import-same");
    for d in ["logs", "tmp"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let nginx_port = free_port();
    // Kuscia's file with the replica addresses pointed at the test's replicas (weights 2:1 so
    // that the distribution says something), a listen port, and no root-only paths.
    let conf = std::fs::read_to_string(kuscia_conf()).unwrap();
    let tmp = dir.join("tmp").display().to_string();
    let conf = conf
        .lines()
        .filter(|l| !["user ", "error_log ", "pid "].iter().any(|p| l.trim_start().starts_with(p)))
        .collect::<Vec<_>>()
        .join("\n")
        .replace(
            "server 127.0.0.2:11080 weight=1",
            &format!("server {one} weight=2"),
        )
        .replace("server 127.0.0.1:11080 weight=1", &format!("server {two} weight=1"))
        .replace(
            "    server {\n        location / {",
            &format!("    server {{\n        listen {nginx_port};\n        location / {{"),
        )
        .replace(
            "    client_max_body_size 2m;",
            &format!(
                "    client_max_body_size 2m;\n    client_body_temp_path {tmp}/body;\n    proxy_temp_path {tmp}/proxy;\n    fastcgi_temp_path {tmp}/fastcgi;\n    scgi_temp_path {tmp}/scgi;\n    uwsgi_temp_path {tmp}/uwsgi;"
            ),
        );
    assert!(conf.contains(&format!("listen {nginx_port};")), "{conf}");
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, &conf).unwrap();

    let child = std::process::Command::new(nginx)
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&conf_path)
        .arg("-g")
        .arg(format!(
            "daemon off; pid {}/nginx.pid; error_log stderr;",
            dir.display()
        ))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("logs/stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let _nginx = Nginx(child);
    wait_listening(nginx_port).await;

    // The same file through the importer; swarmgate on its own port, no admin listener.
    let (ok, yaml, stderr) = import(&conf_path);
    assert!(ok, "{stderr}");
    let sg_port = free_port();
    let yaml = yaml.replace(
        &format!("listen: '{nginx_port}'"),
        &format!("listen: '{sg_port}'"),
    );
    assert!(yaml.contains(&format!("listen: '{sg_port}'")), "{yaml}");
    let sg_conf = dir.join("swarmgate.yaml");
    std::fs::write(
        &sg_conf,
        format!("{yaml}admin: {{listen: ''}}\naccess_log: false\n"),
    )
    .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_swarmgate"))
        .arg("--config")
        .arg(&sg_conf)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _sg = Proc(child);
    wait_listening(sg_port).await;

    let want = HashMap::from([((200, "one".to_owned()), 20), ((200, "two".to_owned()), 10)]);
    let from_nginx = distribution(nginx_port, 30).await;
    let nginx_conns = accepts.swap(0, Ordering::SeqCst);
    let from_swarmgate = distribution(sg_port, 30).await;
    let swarmgate_conns = accepts.swap(0, Ordering::SeqCst);
    assert_eq!(from_nginx, want, "nginx");
    assert_eq!(from_swarmgate, from_nginx, "swarmgate vs nginx");
    // The trap the import notes: nginx's `keepalive 32` is unused with this file (one TLS
    // connection per request); swarmgate keeps one connection per replica.
    assert_eq!(nginx_conns, 30, "nginx upstream connections");
    assert_eq!(swarmgate_conns, 2, "swarmgate upstream connections");

    let (n, s) = (oversized(nginx_port).await, oversized(sg_port).await);
    assert!(n.starts_with("HTTP/1.1 413"), "nginx: {n}");
    assert!(s.starts_with("HTTP/1.1 413"), "swarmgate: {s}");
}
