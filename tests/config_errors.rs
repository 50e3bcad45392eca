//! Config errors name the key path and the line, and exit non-zero through `swarmgate check`.

use swarmgate::config::parse_config;

fn err(yaml: &str) -> String {
    match parse_config(yaml) {
        Ok(_) => panic!("config unexpectedly valid:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unknown_key_names_path_and_line() {
    let e = err(
        "upstreams:\n  kuscia:\n    servers:\n      - address: 127.0.0.1:1\n        wieght: 2\n",
    );
    assert!(e.contains("wieght"), "{e}");
    assert!(e.contains("upstreams.kuscia.servers[0]"), "{e}");
    assert!(e.contains("line 5"), "{e}");
}

#[test]
fn weight_zero_is_rejected_with_line() {
    let e =
        err("upstreams:\n  a:\n    servers:\n      - address: 127.0.0.1:1\n        weight: 0\n");
    assert!(e.contains("weight must be at least 1"), "{e}");
    // serde_yaml reports the position of the server entry holding the bad value.
    assert!(
        e.contains("upstreams.a.servers[0]") && e.contains("line 4"),
        "{e}"
    );
}

#[test]
fn bad_duration_size_and_address() {
    let e =
        err("client_header_timeout: 3x\nupstreams:\n  a:\n    servers: [{address: 127.0.0.1:1}]\n");
    assert!(
        e.contains("client_header_timeout") && e.contains("line 1"),
        "{e}"
    );
    let e =
        err("client_max_body_size: 2mb\nupstreams:\n  a:\n    servers: [{address: 127.0.0.1:1}]\n");
    assert!(
        e.contains("client_max_body_size") && e.contains("invalid size"),
        "{e}"
    );
    let e = err("upstreams:\n  a:\n    servers:\n      - address: nope\n");
    assert!(e.contains("invalid address") && e.contains("line 4"), "{e}");
}

#[test]
fn route_to_unknown_upstream() {
    let e = err("upstreams:\n  a:\n    servers: [{address: 127.0.0.1:1}]\nroutes:\n  - path_prefix: /\n    upstream: b\n");
    assert!(e.contains("routes[0].upstream"), "{e}");
    assert!(e.contains("unknown upstream \"b\""), "{e}");
    assert!(e.contains("line 6"), "{e}");
}

#[test]
fn defaults_follow_nginx_and_kuscia() {
    let c = parse_config("upstreams:\n  a:\n    servers: [{address: 'replica:1080'}]\n").unwrap();
    assert_eq!(c.client.max_body_size, 2 << 20);
    assert_eq!(c.client.keepalive_timeout.as_secs(), 1200);
    assert_eq!(c.routes.len(), 1);
    let u = &c.upstreams[0];
    assert_eq!(u.keepalive, 32);
    assert_eq!(u.servers[0].max_fails, 1);
    assert_eq!(u.servers[0].fail_timeout.as_secs(), 10);
    assert_eq!(u.servers[0].address.host, "replica");
}

#[test]
fn read_buffers_default_to_256k_and_refuse_below_hypers_minimum() {
    let c = parse_config("upstreams:\n  a:\n    servers: [{address: 127.0.0.1:1}]\n").unwrap();
    assert_eq!(c.client.read_buffer_size, 256 << 10);
    assert_eq!(c.upstreams[0].read_buffer_size, 256 << 10);
    let c = parse_config(
        "client_body_buffer_size: 16k\nupstreams:\n  a:\n    proxy_buffer_size: 1m\n    servers: [{address: 127.0.0.1:1}]\n",
    )
    .unwrap();
    assert_eq!(c.client.read_buffer_size, 16 << 10);
    assert_eq!(c.upstreams[0].read_buffer_size, 1 << 20);
    let e = err(
        "client_body_buffer_size: 4k\nupstreams:\n  a:\n    servers: [{address: 127.0.0.1:1}]\n",
    );
    assert!(
        e.contains("client_body_buffer_size") && e.contains("at least 8k") && e.contains("line 1"),
        "{e}"
    );
    let e =
        err("upstreams:\n  a:\n    proxy_buffer_size: 1k\n    servers: [{address: 127.0.0.1:1}]\n");
    assert!(
        e.contains("upstreams.a.proxy_buffer_size") && e.contains("line 3"),
        "{e}"
    );
}

/// Every example in config/ is a valid config (what `swarmgate check` accepts).
#[test]
fn example_configs_are_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // prometheus.yml is Prometheus's own config, not swarmgate's.
        if !name.ends_with(".yaml") {
            continue;
        }
        if let Err(e) = swarmgate::config::Config::load(&path) {
            panic!("{}: {e}", path.display());
        }
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} example configs found");
}

#[test]
fn via_names_an_agent_under_tunnel_agents() {
    let e = err(
        "upstreams:\n  a:\n    servers:\n      - address: 10.0.0.5:1080\n        via: member-2\n",
    );
    assert!(
        e.contains("upstreams.a.servers[0].via") && e.contains("line 5"),
        "{e}"
    );
    let e = err("tunnel:\n  listen: 0.0.0.0:8443\n  tls: {cert: c, key: k}\n  keepalive_timeout: 0s\n  agents:\n    member-1: {token_file: t}\nupstreams:\n  a:\n    servers:\n      - {address: 10.0.0.5:1080, via: member-1}\n");
    assert!(
        e.contains("tunnel.keepalive_timeout") && e.contains("line 4"),
        "{e}"
    );
    let cfg = parse_config("tunnel:\n  listen: 0.0.0.0:8443\n  tls: {cert: c, key: k}\n  agents:\n    member-1: {token_file: t}\nupstreams:\n  a:\n    servers:\n      - {address: 10.0.0.5:1080, via: member-1}\n").unwrap();
    let t = cfg.tunnel.unwrap();
    assert_eq!(t.keepalive_timeout, std::time::Duration::from_secs(10));
    assert_eq!(cfg.upstreams[0].servers[0].via.as_deref(), Some("member-1"));
}

#[test]
fn http2_block_defaults_and_protocol_checks() {
    let c = parse_config("upstreams:\n  u:\n    servers: [{address: 'a:1'}]\n").unwrap();
    assert_eq!(c.http2.max_concurrent_streams, 128);
    assert_eq!(c.http2.initial_stream_window, 1 << 20);
    assert_eq!(c.http2.keepalive_interval.as_secs(), 30);
    assert_eq!(c.http2.keepalive_timeout.as_secs(), 10);
    assert_eq!(c.upstreams[0].protocol, swarmgate::config::Protocol::Http1);

    let c = parse_config(
        "http2:\n  max_concurrent_streams: 16\n  initial_stream_window: 256k\nupstreams:\n  u:\n    protocol: h2c\n    servers: [{address: 'a:1'}]\n    health_check: {type: grpc, service: \"\"}\n",
    )
    .unwrap();
    assert_eq!(c.upstreams[0].http2.max_concurrent_streams, 16);
    assert_eq!(c.upstreams[0].http2.initial_stream_window, 256 << 10);

    let e = err("upstreams:\n  u:\n    protocol: h2\n    servers: [{address: 'a:1'}]\n");
    assert!(
        e.contains("upstreams.u.protocol") && e.contains("line 3"),
        "{e}"
    );
    assert!(e.contains("scheme: https"), "{e}");
    let e = err(
        "upstreams:\n  u:\n    scheme: https\n    protocol: h2c\n    servers: [{address: 'a:1'}]\n",
    );
    assert!(
        e.contains("upstreams.u.protocol") && e.contains("line 4"),
        "{e}"
    );
    let e = err("upstreams:\n  u:\n    protocol: h3\n    servers: [{address: 'a:1'}]\n");
    assert!(e.contains("protocol") && e.contains("line 3"), "{e}");
    let e = err(
        "http2:\n  initial_stream_window: 1k\nupstreams:\n  u:\n    servers: [{address: 'a:1'}]\n",
    );
    assert!(
        e.contains("http2.initial_stream_window") && e.contains("line 2"),
        "{e}"
    );
    let e = err(
        "http2:\n  max_concurrent_streams: 0\nupstreams:\n  u:\n    servers: [{address: 'a:1'}]\n",
    );
    assert!(
        e.contains("http2.max_concurrent_streams") && e.contains("line 2"),
        "{e}"
    );
    let e =
        err("upstreams:\n  u:\n    servers: [{address: 'a:1'}]\n    health_check: {type: grpc}\n");
    assert!(
        e.contains("health_check.type") && e.contains("line 4"),
        "{e}"
    );
}
